//! Formatting shared by the PDF and the HTML: dates, numbers and client strings shown as inert,
//! visible text. It never decides what a report says, only how a value is written.

use std::time::{Duration, UNIX_EPOCH};

use super::Lang;

/// `2026-12-03 09:14:05 UTC`; `—` for a time the store did not have (0 or negative).
pub(crate) fn datetime(ms: i64) -> String {
    match utc(ms) {
        Some(s) => format!("{} {} UTC", &s[..10], &s[11..19]),
        None => "—".into(),
    }
}

/// `2026-12-03 09:14:05` (captions, where the zone is said once above).
pub(crate) fn datetime_short(ms: i64) -> String {
    match utc(ms) {
        Some(s) => format!("{} {}", &s[..10], &s[11..19]),
        None => "—".into(),
    }
}

/// `09:14` (chart axis).
pub(crate) fn clock(ms: i64) -> String {
    match utc(ms) {
        Some(s) => s[11..16].to_string(),
        None => String::new(),
    }
}

/// `09:14:05`, for a chart that spans minutes rather than hours.
pub(crate) fn clock_seconds(ms: i64) -> String {
    match utc(ms) {
        Some(s) => s[11..19].to_string(),
        None => String::new(),
    }
}

/// `2026-12-03T09:14:05Z`, the one format humantime writes.
fn utc(ms: i64) -> Option<String> {
    let ms = u64::try_from(ms).ok().filter(|&m| m > 0)?;
    let t = UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    let s = humantime::format_rfc3339_seconds(t).to_string();
    (s.len() >= 20).then_some(s)
}

/// The date part alone, `(year, month, day)`, for Typst's `today()` and the PDF's date.
pub(crate) fn ymd_hms(ms: i64) -> Option<(i32, u8, u8, u8, u8, u8)> {
    let s = utc(ms)?;
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<u32>().ok());
    Some((
        n(0..4)? as i32,
        n(5..7)? as u8,
        n(8..10)? as u8,
        n(11..13)? as u8,
        n(14..16)? as u8,
        n(17..19)? as u8,
    ))
}

/// An integer with the language's digit grouping: `1 234` (narrow no-break space) or `1,234`.
pub fn int(lang: Lang, n: u64) -> String {
    let digits = n.to_string();
    let sep = match lang {
        Lang::Fr => '\u{202f}',
        Lang::En => ',',
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// A decimal with `places` digits: `0,97` or `0.97`.
pub(crate) fn dec(lang: Lang, x: f64, places: usize) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let s = format!("{:.*}", places, x.abs());
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    let whole = int(lang, whole.parse().unwrap_or(0));
    let sign = if x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "−"
    } else {
        ""
    };
    match (frac.is_empty(), lang) {
        (true, _) => format!("{sign}{whole}"),
        (false, Lang::Fr) => format!("{sign}{whole},{frac}"),
        (false, Lang::En) => format!("{sign}{whole}.{frac}"),
    }
}

/// A byte count in the unit a reader expects: `18,4 Mo` / `18.4 MB` (powers of 1000).
pub(crate) fn bytes(lang: Lang, n: u64) -> String {
    const UNITS: [(&str, &str); 5] = [
        ("o", "B"),
        ("ko", "kB"),
        ("Mo", "MB"),
        ("Go", "GB"),
        ("To", "TB"),
    ];
    let mut exp = 0;
    while exp + 1 < UNITS.len() && n as f64 >= 1000f64.powi(exp as i32 + 1) {
        exp += 1;
    }
    let unit = match lang {
        Lang::Fr => UNITS[exp].0,
        Lang::En => UNITS[exp].1,
    };
    if exp == 0 {
        format!("{} {unit}", int(lang, n))
    } else {
        format!(
            "{}\u{a0}{unit}",
            dec(lang, n as f64 / 1000f64.powi(exp as i32), 1)
        )
    }
}

/// A span of time in words a reader takes in at once: `40 min`, `2 h 05 min`, `3 j 4 h`.
pub(crate) fn span(lang: Lang, ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    let (m, h, d) = (s / 60 % 60, s / 3600 % 24, s / 86400);
    let day = match lang {
        Lang::Fr => "j",
        Lang::En => "d",
    };
    if d > 0 {
        format!("{d} {day} {h} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min")
    } else if ms % 1000 != 0 && ms < 10_000 {
        // A burst of a few seconds has buckets shorter than a second: 0.2 s, not 0 s.
        let tenths = format!("{:.1}", ms.max(0) as f64 / 1000.0);
        match lang {
            Lang::Fr => format!("{} s", tenths.replace('.', ",")),
            Lang::En => format!("{tenths} s"),
        }
    } else {
        format!("{s} s")
    }
}

pub use crate::record::event::visible;

/// `visible`, cut to `max` characters with an ellipsis and the full length said, for places
/// where the whole string would drown the page (a 4 KB agent in a summary sentence).
pub fn cut(lang: Lang, s: &str, max: usize) -> String {
    let v = visible(s);
    let n = v.chars().count();
    if n <= max {
        return v;
    }
    let head: String = v.chars().take(max).collect();
    match lang {
        Lang::Fr => format!("{head}… ({} caractères)", int(lang, n as u64)),
        Lang::En => format!("{head}… ({} characters)", int(lang, n as u64)),
    }
}

/// The first characters of a token or digest, for captions: `aB3x9Kq2…`.
pub(crate) fn short(s: &str, n: usize) -> String {
    let v = visible(s);
    if v.chars().count() <= n {
        v
    } else {
        format!("{}…", v.chars().take(n).collect::<String>())
    }
}

/// `1 requête` / `2 requêtes`; French takes the singular for 0 too.
pub(crate) fn plural<'a>(lang: Lang, n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 || (n == 0 && lang == Lang::Fr) {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_under_a_second_is_not_shown_as_nothing() {
        assert_eq!(span(Lang::Fr, 120), "0,1 s");
        assert_eq!(span(Lang::En, 1_500), "1.5 s");
        assert_eq!(span(Lang::En, 42_000), "42 s");
        assert_eq!(span(Lang::Fr, 3 * 3_600_000 + 5 * 60_000), "3 h 05 min");
    }

    #[test]
    fn clock_seconds_keeps_the_seconds() {
        // 2026-12-03T14:06:06Z
        let ms = 1_796_306_766_000;
        assert_eq!(clock(ms), "14:06");
        assert_eq!(clock_seconds(ms), "14:06:06");
    }
}
