//! `Token`: names one canary image, minted per page view. It lives with the store's rows,
//! which it keys, so every module above (canary, record, evidence) shares one type.
//!
//! A token is 128 random bits behind the millisecond it was minted (48 bits, big-endian):
//! the random part makes it unguessable, the time part makes tokens minted one after another
//! sort one after another, so the store's token index grows at its end instead of at a
//! scattered place per page view (each scattered insert dirtied a page of the index). The
//! time tells a client nothing it did not know: when it fetched the page.
//!
//! Written URL-safe (base64url, no padding): 30 characters. Tokens of earlier versions, the
//! 128 random bits alone (22 characters), are still read. The edge mints sealed tokens
//! (`canary::seal`, 48 bytes, 64 characters): their seeds and origin encrypted under the
//! deployment secret, so that any replica serves them without a lookup.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;
use std::str::FromStr;

/// Bytes of a token: 6 of time, 16 random.
pub const TOKEN_BYTES: usize = 22;
/// Bytes of a sealed token (`canary::seal`).
pub const SEALED_TOKEN_BYTES: usize = 48;
/// Bytes of a token minted before tokens had a time part.
pub const OLD_TOKEN_BYTES: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    bytes: [u8; SEALED_TOKEN_BYTES],
    len: u8,
}

/// A string that is not a token.
#[derive(Debug, thiserror::Error)]
#[error(
    "not a faceprobe token: {0:?} (expected 64 or 30 characters of base64url, or 22 for an older token)"
)]
pub struct BadToken(pub String);

impl Token {
    /// A fresh token: the current time and 128 bits from the operating system's random source.
    pub fn random() -> Token {
        Token::minted_at(super::now_ms())
    }

    /// A fresh token with a given mint time (milliseconds since the epoch).
    pub fn minted_at(ms: i64) -> Token {
        let mut bytes = [0u8; SEALED_TOKEN_BYTES];
        bytes[..6].copy_from_slice(&(ms.max(0) as u64).to_be_bytes()[2..]);
        rand::fill(&mut bytes[6..TOKEN_BYTES]);
        Token {
            bytes,
            len: TOKEN_BYTES as u8,
        }
    }

    /// The token stored as `bytes` (48 bytes sealed, 22, or 16 for an older token).
    pub fn from_bytes(bytes: &[u8]) -> Option<Token> {
        if ![SEALED_TOKEN_BYTES, TOKEN_BYTES, OLD_TOKEN_BYTES].contains(&bytes.len()) {
            return None;
        }
        let mut t = Token {
            bytes: [0u8; SEALED_TOKEN_BYTES],
            len: bytes.len() as u8,
        };
        t.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(t)
    }

    /// The bytes as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.as_bytes(), &mut buf)
            .map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
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
        // 64 characters hold 48 bytes, 30 characters 22, 22 characters 16.
        if ![64, 30, 22].contains(&s.len()) {
            return Err(BadToken(s.to_string()));
        }
        let mut buf = [0u8; SEALED_TOKEN_BYTES];
        let n = URL_SAFE_NO_PAD
            .decode_slice(s, &mut buf)
            .map_err(|_| BadToken(s.to_string()))?;
        Token::from_bytes(&buf[..n]).ok_or_else(|| BadToken(s.to_string()))
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
        assert_eq!(s.len(), 30);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(s.parse::<Token>().unwrap(), t);
        assert_eq!(Token::from_bytes(t.as_bytes()), Some(t));
    }

    #[test]
    fn older_tokens_of_128_random_bits_are_still_read() {
        let old = [7u8; 16];
        let t = Token::from_bytes(&old).unwrap();
        assert_eq!(t.as_bytes(), &old);
        let s = t.to_string();
        assert_eq!(s.len(), 22);
        assert_eq!(s.parse::<Token>().unwrap(), t);
        assert_ne!(t, Token::from_bytes(&[7u8; 22]).unwrap());
    }

    #[test]
    fn tokens_sort_by_mint_time_and_keep_128_random_bits() {
        let early = Token::minted_at(1_700_000_000_000);
        let late = Token::minted_at(1_700_000_000_001);
        assert!(early.as_bytes() < late.as_bytes());
        assert_eq!(
            &early.as_bytes()[..6],
            &1_700_000_000_000u64.to_be_bytes()[2..]
        );
        // Same millisecond: the random part differs.
        let (a, b) = (Token::minted_at(5), Token::minted_at(5));
        assert_eq!(&a.as_bytes()[..6], &b.as_bytes()[..6]);
        assert_ne!(a.as_bytes()[6..], b.as_bytes()[6..]);
    }

    #[test]
    fn rejects_wrong_length_and_alphabet() {
        assert!("abc".parse::<Token>().is_err());
        assert!("++++++++++++++++++++++".parse::<Token>().is_err());
        assert!("A".repeat(26).parse::<Token>().is_err());
        assert!(Token::from_bytes(&[0u8; 17]).is_none());
        assert!(Token::from_bytes(&[0u8; 49]).is_none());
        assert!("A".repeat(63).parse::<Token>().is_err());
        let sealed = Token::from_bytes(&[9u8; 48]).unwrap();
        assert_eq!(sealed.to_string().len(), 64);
        assert_eq!(sealed.to_string().parse::<Token>().unwrap(), sealed);
    }
}
