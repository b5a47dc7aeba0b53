//! `Token`: the 128 random bits minted per page view that name one canary image.
//!
//! Written URL-safe (base64url, no padding, 22 characters) so it fits a path segment and an
//! XMP field unchanged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub [u8; 16]);

/// A string that is not a token.
#[derive(Debug, thiserror::Error)]
#[error("not a faceprobe token: {0:?} (expected 22 characters of base64url)")]
pub struct BadToken(pub String);

impl Token {
    /// A fresh token from the operating system's random source.
    pub fn random() -> Token {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        Token(bytes)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

impl FromStr for Token {
    type Err = BadToken;
    fn from_str(s: &str) -> Result<Token, BadToken> {
        if s.len() != 22 {
            return Err(BadToken(s.to_string()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| BadToken(s.to_string()))?;
        bytes
            .try_into()
            .map(Token)
            .map_err(|_| BadToken(s.to_string()))
    }
}

impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let t = Token::random();
        let s = t.to_string();
        assert_eq!(s.len(), 22);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(s.parse::<Token>().unwrap(), t);
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(Token::random(), Token::random());
    }

    #[test]
    fn rejects_wrong_length_and_alphabet() {
        assert!("abc".parse::<Token>().is_err());
        assert!("++++++++++++++++++++++".parse::<Token>().is_err());
    }
}
