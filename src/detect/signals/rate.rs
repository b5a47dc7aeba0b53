//! Volume: many images and no CSS or JS (a client that does not render), distinct images per
//! hour, and requests per minute. Each fires once per window and scores as configured.

use super::{fnv, Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;

fn is_image(kind: Kind) -> bool {
    matches!(kind, Kind::Image | Kind::Canary)
}

pub struct NoRender;

impl Signal for NoRender {
    fn id(&self) -> SignalId {
        SignalId::NoRender
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, _: &Facts) -> Option<String> {
        let c = &config.signals.no_render;
        let n = &client.counts;
        if client.reason(SignalId::NoRender).is_some()
            || n.assets > 0
            || n.images < u64::from(c.min_images)
            || (n.images as f64) < c.images_per_page * n.pages.max(1) as f64
        {
            return None;
        }
        Some(format!(
            "{} images over {} pages and no CSS or JS: does not render pages",
            n.images, n.pages
        ))
    }
}

pub struct ImageRate;

impl Signal for ImageRate {
    fn id(&self) -> SignalId {
        SignalId::ImageRate
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let s = facts.seen;
        if !is_image(s.kind()) {
            return None;
        }
        let hour = s.ts_ms.div_euclid(3_600_000);
        let d = &mut client.images;
        if d.hour != hour {
            d.reset(hour);
        }
        d.insert(fnv(&[s.path.as_bytes()]));
        let estimate = d.estimate();
        if d.fired_hour == hour || estimate <= f64::from(config.signals.image_rate.per_hour) {
            return None;
        }
        d.fired_hour = hour;
        Some(format!("about {estimate:.0} distinct images in one hour"))
    }
}

pub struct RequestRate;

impl Signal for RequestRate {
    fn id(&self) -> SignalId {
        SignalId::RequestRate
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let minute = facts.seen.ts_ms.div_euclid(60_000);
        let r = &mut client.rate;
        if r.minute != minute {
            r.minute = minute;
            r.count = 0;
        }
        r.count += 1;
        if r.fired_minute == minute || r.count <= config.signals.request_rate.per_minute {
            return None;
        }
        r.fired_minute = minute;
        Some(format!("more than {} requests in one minute", r.count - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn no_render_needs_many_images_few_pages_and_no_assets() {
        let config = DetectConfig::default();
        let img = seen(1, 0, Kind::Image, "/a.jpg");
        let mut c = client_for(&img, &config);
        c.counts.images = 7;
        assert_eq!(run(&NoRender, &mut c, std::slice::from_ref(&img), false), 0);
        c.counts.images = 8;
        assert_eq!(run(&NoRender, &mut c, std::slice::from_ref(&img), false), 1);
        // Once only.
        c.reason_mut(SignalId::NoRender).count = 1;
        assert_eq!(run(&NoRender, &mut c, std::slice::from_ref(&img), false), 0);
        let mut person = client_for(&img, &config);
        person.counts.images = 40;
        person.counts.pages = 10;
        person.counts.assets = 20;
        assert_eq!(
            run(&NoRender, &mut person, std::slice::from_ref(&img), false),
            0
        );
        let mut reader = client_for(&img, &config);
        reader.counts.images = 20;
        reader.counts.pages = 10;
        assert_eq!(run(&NoRender, &mut reader, &[img], false), 0);
    }

    #[test]
    fn image_rate_counts_distinct_images_per_hour() {
        let config = DetectConfig::default();
        let same: Vec<_> = (0..1000)
            .map(|i| seen(i, i, Kind::Image, "/same.jpg"))
            .collect();
        let mut c = client_for(&same[0], &config);
        assert_eq!(run(&ImageRate, &mut c, &same, false), 0);
        let many: Vec<_> = (0..1000)
            .map(|i| seen(i, i, Kind::Image, &format!("/img/{i}.jpg")))
            .collect();
        let mut c = client_for(&many[0], &config);
        assert_eq!(run(&ImageRate, &mut c, &many, false), 1);
        // Spread over hours, 200 an hour stays under 300.
        let slow: Vec<_> = (0..1000)
            .map(|i| seen(i, i * 18_000, Kind::Image, &format!("/img/{i}.jpg")))
            .collect();
        let mut c = client_for(&slow[0], &config);
        assert_eq!(run(&ImageRate, &mut c, &slow, false), 0);
    }

    #[test]
    fn request_rate_fires_once_per_busy_minute() {
        let config = DetectConfig::default();
        let burst: Vec<_> = (0..300)
            .map(|i| seen(i, i * 100, Kind::Page, "/"))
            .collect();
        let mut c = client_for(&burst[0], &config);
        // 600 requests a minute for 30 s: one busy minute.
        assert_eq!(run(&RequestRate, &mut c, &burst, false), 1);
        let calm: Vec<_> = (0..300)
            .map(|i| seen(i, i * 1000, Kind::Page, "/"))
            .collect();
        let mut c = client_for(&calm[0], &config);
        assert_eq!(run(&RequestRate, &mut c, &calm, false), 0);
    }
}
