//! What every dashboard page shares: the frame (bar, navigation, who is signed in), and the
//! small pieces pages are made of (times, counts, levels, links to a client, pagers). Text a
//! client controls goes through `shown`: control and invisible characters become visible
//! escapes, long values are cut, and maud escapes the HTML.

use super::web::Signed;
use crate::evidence::report::{self, Lang};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a query value or a path segment must have encoded (everything but unreserved).
pub const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// A key in a path segment: `:` kept (keys are `c:…` and `k:…`), `/` encoded.
const SEGMENT_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// The stylesheet, served at /static/app.css.
pub const CSS: &str = include_str!("app.css");

/// The sections in the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Flags,
    Fleet,
    Cases,
    Match,
    Allow,
}

const SECTIONS: [(Nav, &str, &str); 6] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Flags, "/flags", "Flags"),
    (Nav::Fleet, "/fleet", "Fleet"),
    (Nav::Cases, "/cases", "Cases"),
    (Nav::Match, "/match", "Match"),
    (Nav::Allow, "/allow", "Allow-list"),
];

/// A page of the signed-in dashboard.
pub fn page(title: &str, nav: Nav, me: &Signed, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.bar {
                    a.brand href="/" { span.mark { "◉" } " faceprobe" }
                    nav aria-label="Sections" {
                        @for (n, href, label) in SECTIONS {
                            a href=(href) aria-current=[(n == nav).then_some("page")] { (label) }
                        }
                    }
                    div.me {
                        span.who title="Signed in as" { (shown(&me.reviewer, 40)) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                footer { "faceprobe " (env!("CARGO_PKG_VERSION")) " · times in UTC" }
            }
        }
    }
}

/// A page outside the session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                header.bar { a.brand href="/" { span.mark { "◉" } " faceprobe" } }
                main.narrow { (body) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="robots" content="noindex, nofollow";
            title { (title) " · faceprobe" }
            link rel="stylesheet" href="/static/app.css";
            link rel="icon" href="data:,";
        }
    }
}

/// An error or refusal, with a way back.
pub fn message(title: &str, text: &str) -> Markup {
    bare(
        title,
        html! {
            section.card {
                h1 { (title) }
                p { (text) }
                p { a href="/" { "Back to the overview" } }
            }
        },
    )
}

/// A time as the dashboard shows it: `2026-12-06 16:27:42 UTC`, machine-readable inside.
pub fn when(ms: i64) -> Markup {
    let iso = crate::evidence::bundle::rfc3339(ms);
    html! { time datetime=(iso) { (iso.replace('T', " ").replace('Z', " UTC")) } }
}

/// A time without its seconds, for tables.
pub fn when_short(ms: i64) -> Markup {
    let iso = crate::evidence::bundle::rfc3339(ms);
    let short = format!("{} {}", &iso[..10], &iso[11..16]);
    html! { time datetime=(iso) title=(iso) { (short) } }
}

/// A time to the second without the zone, for long tables (their header says UTC).
pub fn when_seconds(ms: i64) -> Markup {
    let iso = crate::evidence::bundle::rfc3339(ms);
    html! { time datetime=(iso) { (format!("{} {}", &iso[..10], &iso[11..19])) } }
}

/// How long ago, in words: "4 min ago".
pub fn ago(ms: i64, now: i64) -> String {
    let s = (now - ms).max(0) / 1000;
    match s {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A count with thousands separators.
pub fn int(n: u64) -> String {
    report::int(Lang::En, n)
}

/// Text a client sent, safe to show: control characters as escapes, cut at `max` characters.
pub fn shown(s: &str, max: usize) -> String {
    report::cut(Lang::En, s, max)
}

/// A level as a coloured badge; a dismissed key says so instead.
pub fn level(level: Option<&str>, dismissed: bool) -> Markup {
    let (class, text) = match (dismissed, level) {
        (true, _) => ("badge dismissed", "dismissed"),
        (false, Some("harvester")) => ("badge harvester", "harvester"),
        (false, Some("suspect")) => ("badge suspect", "suspect"),
        (false, Some("watch")) => ("badge watch", "watch"),
        _ => ("badge none", "not flagged"),
    };
    html! { span class=(class) { (text) } }
}

/// The page of a client or cluster.
pub fn client_href(key: &str) -> String {
    format!("/clients/{}", utf8_percent_encode(key, SEGMENT_SET))
}

/// A link to a client or cluster, showing its key.
pub fn client_link(key: &str) -> Markup {
    html! { a.key href=(client_href(key)) { (shown(key, 64)) } }
}

/// A query value, encoded.
pub fn q(value: &str) -> String {
    utf8_percent_encode(value, QUERY_SET).to_string()
}

/// A confirmation shown after a form was carried out.
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// Previous / next links: `href(page)` makes each page's address.
pub fn pager(page: u64, pages: u64, href: impl Fn(u64) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a href=(href(page - 1)) rel="prev" { "← Previous" } }
                span { "Page " (page) " of " (int(pages)) }
                @if page < pages { a href=(href(page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

/// A chart (SVG made by `chart`) with its caption; with a narrow drawing too, a phone shows
/// that one (the wide one's text would be too small scaled down).
pub fn figure(wide: &str, narrow: Option<&str>, caption: &str) -> Markup {
    html! {
        figure.chart {
            @match narrow {
                Some(n) => {
                    div.wide { (PreEscaped(wide)) }
                    div.narrow { (PreEscaped(n)) }
                }
                None => (PreEscaped(wide)),
            }
            figcaption { (caption) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_escaped_and_made_visible() {
        let me = Signed {
            reviewer: "<script>alert(1)</script>\u{1b}[31m".into(),
            csrf: "x".into(),
        };
        let html = page("t", Nav::Flags, &me, html! {}).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\u{1b}[31m"));
        assert!(shown(&"a".repeat(70_000), 10).contains("70,000 characters"));
    }

    #[test]
    fn keys_become_links_that_cannot_leave_their_segment() {
        assert_eq!(client_href("c:0a1b"), "/clients/c:0a1b");
        assert_eq!(client_href("../x?y"), "/clients/..%2Fx%3Fy");
        assert_eq!(q("a b&c=<d>"), "a%20b%26c%3D%3Cd%3E");
    }
}
