//! Token parsing: any text is a token or an error, never a panic; a token reads back as itself.
#![no_main]

use faceprobe::canary::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(token) = text.parse::<Token>() {
        assert_eq!(
            token.to_string(),
            text,
            "a token reads back as the text it came from"
        );
        assert_eq!(Token::from_bytes(token.as_bytes()), Some(token));
    }
    let _ = faceprobe::edge::client::token_in(text);
});
