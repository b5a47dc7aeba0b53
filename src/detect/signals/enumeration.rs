//! Sequential enumeration: image URLs stepped through by number (`/img/41.jpg`, `/img/42.jpg`,
//! …), found or not, which is how a harvester lists a site's images without reading its pages.
//! A browser showing a gallery also loads its images in order, but names the page they are
//! on (`Referer`) and never asks for one that does not exist: only fetches without a referer,
//! or that find nothing, count.

use super::{fnv, Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;

const IMAGE_EXTENSIONS: [&str; 7] = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".bmp"];

/// The template (path with its last number taken out) and that number, for image paths.
fn numbered(path: &str) -> Option<(u64, u64)> {
    let lower = path.to_ascii_lowercase();
    if !IMAGE_EXTENSIONS.iter().any(|e| lower.ends_with(e)) {
        return None;
    }
    let bytes = path.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    if end - start > 18 {
        return None;
    }
    let n = path[start..end].parse().ok()?;
    Some((fnv(&[&bytes[..start], &bytes[end..]]), n))
}

pub struct Enumeration;

impl Signal for Enumeration {
    fn id(&self) -> SignalId {
        SignalId::Enumeration
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let s = facts.seen;
        if s.referer && s.status < 400 {
            return None;
        }
        let (template, n) = numbered(&s.path)?;
        let r = &mut client.run;
        if r.template == template && n == r.last.wrapping_add(1) {
            r.length += 1;
        } else if r.template != template || n != r.last {
            r.template = template;
            r.length = 1;
        }
        r.last = n;
        if r.length != config.signals.enumeration.run {
            return None;
        }
        Some(format!(
            "{} numbered image URLs in sequence, up to {}",
            r.length, facts.seen.path
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::record::Kind;

    #[test]
    fn numbered_paths_split_into_template_and_number() {
        let (t1, n1) = numbered("/static/img/41.jpg").unwrap();
        let (t2, n2) = numbered("/static/img/42.jpg").unwrap();
        assert_eq!((t1 == t2, n1, n2), (true, 41, 42));
        assert_ne!(numbered("/other/42.jpg").unwrap().0, t1);
        assert_eq!(numbered("/gallery/4"), None);
        assert_eq!(numbered("/static/img/cat.jpg"), None);
    }

    #[test]
    fn a_run_fires_once_when_it_reaches_the_configured_length() {
        let config = DetectConfig::default();
        let walk: Vec<_> = (1..=12)
            .map(|i| {
                let mut s = seen(i, i, Kind::Image, &format!("/static/img/{i}.jpg"));
                s.referer = false;
                s
            })
            .collect();
        let mut c = client_for(&walk[0], &config);
        assert_eq!(run(&Enumeration, &mut c, &walk, false), 1);
        // A browser loading a gallery's images in page order names the page.
        let shown: Vec<_> = (1..=12)
            .map(|i| {
                let mut s = seen(i, i, Kind::Image, &format!("/static/img/{i}.jpg"));
                s.referer = true;
                s
            })
            .collect();
        let mut c = client_for(&shown[0], &config);
        assert_eq!(run(&Enumeration, &mut c, &shown, false), 0);
        // Guessing past the end finds nothing, referer or not.
        let guessed: Vec<_> = (10..=16)
            .map(|i| {
                let mut s = seen(i, i, Kind::Page, &format!("/static/img/{i}.jpg"));
                s.referer = true;
                s.status = 404;
                s
            })
            .collect();
        let mut c = client_for(&guessed[0], &config);
        assert_eq!(run(&Enumeration, &mut c, &guessed, false), 1);
        // Out of order, never a run of 5.
        let mixed: Vec<_> = [3, 1, 4, 2, 8, 6, 5, 7]
            .iter()
            .map(|i| {
                let mut s = seen(*i, *i, Kind::Image, &format!("/static/img/{i}.jpg"));
                s.referer = false;
                s
            })
            .collect();
        let mut c = client_for(&mixed[0], &config);
        assert_eq!(run(&Enumeration, &mut c, &mixed, false), 0);
    }
}
