//! Request handling: any header names and values, any path. The client's address is taken
//! from `X-Forwarded-For` / `Forwarded` only from a trusted proxy; the event made of the request
//! keeps every value within its bound; a token is read from a path or refused, never a panic.
#![no_main]

use faceprobe::edge::client::{event_of, token_in, Keys, Trusted, Visitor};
use faceprobe::record::event::MAX_FIELD_BYTES;
use http::header::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fuzz_target!(|input: (bool, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>)| {
    let (from_proxy, headers, target) = input;
    let trusted = Trusted::new(vec!["127.0.0.1/32".parse().unwrap()]);
    let peer: IpAddr = if from_proxy {
        [127, 0, 0, 1].into()
    } else {
        [192, 0, 2, 1].into()
    };
    let mut request = http::Request::builder().method("GET");
    if let Ok(uri) = http::Uri::try_from(target.as_slice()) {
        request = request.uri(uri);
    }
    let Ok(mut request) = request.body(()) else {
        return;
    };
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            request.headers_mut().append(n, v);
        }
    }
    let (parts, ()) = request.into_parts();
    let ip = trusted.client_ip(peer, &parts.headers);
    if !from_proxy {
        assert_eq!(ip, peer, "only a trusted proxy says who the client is");
    }
    let keys = Keys::new(&[7; 32]);
    let client = Visitor::new(peer, &trusted).client(&trusted, &keys, &parts.headers);
    let event = event_of(&parts, &client, 0);
    for (name, value) in [
        ("user_agent", &event.user_agent),
        ("referer", &event.referer),
        ("accept", &event.accept),
        ("accept_language", &event.accept_language),
        ("host", &event.host),
        ("query", &event.query),
    ] {
        if let Some(v) = value {
            assert!(v.len() <= MAX_FIELD_BYTES, "{name} is {} bytes", v.len());
        }
    }
    assert!(event.header_order.len() <= MAX_FIELD_BYTES);
    if let Some(rest) = parts.uri.path().strip_prefix("/_fp/c/") {
        let _ = token_in(rest);
    }
});
