//! A browser that is not one: a browser user agent on requests without the headers every
//! current browser sends (`Sec-Fetch-*` since Chrome 76, Firefox 90 and Safari 16.4;
//! `Accept-Language` always), or with headers in an order or shape no browser uses (an HTTP
//! library puts `Accept-Encoding` before `Accept`, or sends no `Accept`, or `*/*` for a page).

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;

pub struct BrowserHeadersMissing;

impl Signal for BrowserHeadersMissing {
    fn id(&self) -> SignalId {
        SignalId::BrowserHeadersMissing
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let s = facts.seen;
        let sec_fetch_missing = !s.sec_fetch && config.expect_sec_fetch;
        if !client.browser || (!sec_fetch_missing && s.accept_language) {
            return None;
        }
        let mut missing = Vec::new();
        if sec_fetch_missing {
            missing.push("Sec-Fetch-*");
        }
        if !s.accept_language {
            missing.push("Accept-Language");
        }
        Some(format!(
            "browser user agent without {}",
            missing.join(" or ")
        ))
    }
}

/// Why a browser's header set looks like a library's, if it does. `navigation` is a page
/// fetched without `Sec-Fetch-*` (with them, `*/*` can be a script's `fetch()` of HTML).
pub fn unlike_a_browser(
    order: &str,
    accept: Option<&str>,
    navigation: bool,
) -> Option<&'static str> {
    // The first position of each, in one pass and without collecting (runs for every event).
    let (mut at_accept, mut at_encoding) = (None, None);
    for (i, h) in order.split(',').enumerate() {
        if h == "accept" && at_accept.is_none() {
            at_accept = Some(i);
        } else if h == "accept-encoding" && at_encoding.is_none() {
            at_encoding = Some(i);
        }
        if at_accept.is_some() && at_encoding.is_some() {
            break;
        }
    }
    match (at_accept, at_encoding) {
        (None, _) => return Some("no Accept header"),
        (Some(a), Some(e)) if e < a => return Some("Accept-Encoding sent before Accept"),
        _ => {}
    }
    if navigation && accept.is_some_and(|a| a.trim() == "*/*") {
        return Some("Accept: */* for a page");
    }
    None
}

pub struct HeaderOrder;

impl Signal for HeaderOrder {
    fn id(&self) -> SignalId {
        SignalId::HeaderOrder
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let s = facts.seen;
        if !client.browser || s.header_order.is_empty() {
            return None;
        }
        let navigation = s.kind() == Kind::Page && !s.sec_fetch;
        let why = unlike_a_browser(&s.header_order, s.accept.as_deref(), navigation)?;
        Some(format!(
            "browser user agent, but {why} (headers: {})",
            s.header_order
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn browser_headers_missing_needs_a_browser_agent() {
        let config = DetectConfig::default();
        let mut bare = seen(1, 0, Kind::Page, "/");
        bare.sec_fetch = false;
        let mut c = client_for(&bare, &config);
        assert_eq!(
            run(
                &BrowserHeadersMissing,
                &mut c,
                &[bare.clone(), bare.clone()],
                false
            ),
            2
        );
        let full = seen(2, 0, Kind::Page, "/");
        assert_eq!(run(&BrowserHeadersMissing, &mut c, &[full], false), 0);
        // A site served over plain http gets no Sec-Fetch-* from browsers.
        let plain_http = DetectConfig {
            expect_sec_fetch: false,
            ..DetectConfig::default()
        };
        let f = Facts {
            seen: &bare,
            disallowed: false,
        };
        assert!(BrowserHeadersMissing
            .observe(&plain_http, &mut c, &f)
            .is_none());
        bare.accept_language = false;
        let f = Facts {
            seen: &bare,
            disallowed: false,
        };
        assert!(BrowserHeadersMissing
            .observe(&plain_http, &mut c, &f)
            .is_some());
        bare.user_agent = Some("curl/8.5.0".into());
        let mut curl = client_for(&bare, &config);
        assert_eq!(run(&BrowserHeadersMissing, &mut curl, &[bare], false), 0);
    }

    #[test]
    fn library_header_orders_are_told_from_browsers() {
        let firefox = "host,user-agent,accept,accept-language,accept-encoding,connection,\
                       upgrade-insecure-requests,sec-fetch-dest,sec-fetch-mode,sec-fetch-site";
        assert_eq!(
            unlike_a_browser(CHROME_ORDER, Some("text/html"), true),
            None
        );
        assert_eq!(unlike_a_browser(firefox, Some("text/html"), true), None);
        assert_eq!(unlike_a_browser(firefox, Some("*/*"), false), None);
        let requests = "host,user-agent,accept-encoding,accept,connection";
        assert!(unlike_a_browser(requests, Some("*/*"), false).is_some());
        assert!(unlike_a_browser("host,user-agent,accept-encoding", None, false).is_some());
        assert!(unlike_a_browser("host,user-agent,accept", Some("*/*"), true).is_some());
        // A script's fetch() of an HTML fragment sends */* with Sec-Fetch-Mode: cors.
        assert_eq!(unlike_a_browser(CHROME_ORDER, Some("*/*"), false), None);
        let config = DetectConfig::default();
        let mut s = seen(1, 0, Kind::Image, "/a.jpg");
        s.header_order = requests.into();
        let mut c = client_for(&s, &config);
        assert_eq!(run(&HeaderOrder, &mut c, &[s], false), 1);
    }
}
