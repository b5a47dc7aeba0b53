//! Sealed tokens: what a replica needs to serve and attribute a canary, carried by the token
//! itself, encrypted and authenticated under a key derived from the deployment secret. Every
//! replica of a deployment shares the secret (`store.secret_file`), so any of them renders and
//! records a token another minted, with no lookup; a token altered by one bit, made up, or
//! minted by another deployment does not open.
//!
//! 48 bytes, 64 characters of base64url:
//!
//! | bytes | what                                                     |
//! |-------|----------------------------------------------------------|
//! | 0     | format (1), in clear, authenticated                      |
//! | 1–6   | mint time, ms since the epoch, big-endian; in clear, authenticated (tokens sort by time, as the store's index wants) |
//! | 7–22  | AES-SIV synthetic IV (the authentication tag)            |
//! | 23–47 | encrypted: variant seed (6), identity pool slot (4), minting client's key (12), minting replica (2), gallery depth (1) |
//!
//! AES-SIV (RFC 5297) needs no nonce to be unique: the synthetic IV is a MAC of the whole
//! token, and 48 random variant bits with the millisecond make each plaintext unique anyway.
//! Format 1 draws with `render::RENDERER_VERSION` 1; a new drawing gets a new format.

use super::Token;
use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;
use sha2::{Digest, Sha256};

/// Format byte of the tokens sealed here.
pub const FORMAT: u8 = 1;
/// The drawing a format-1 token names.
pub const FORMAT_RENDERER: u32 = 1;
// A new drawing needs a new format: the tokens sealed before name the old one.
const _: () = assert!(super::render::RENDERER_VERSION == FORMAT_RENDERER);
const TAG: usize = 16;
const CLEAR: usize = 7;
const PLAIN: usize = 25;
const VARIANT_BITS: u64 = (1 << 48) - 1;

/// What a sealed token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub created_ms: i64,
    /// 48 bits: the variant seed of the drawing.
    pub variant_seed: u64,
    /// The identity pool slot (`mint::pool_identity` gives its seed).
    pub pool_slot: u32,
    /// The 12 bytes of the minting client's key (`c:` and 24 hex digits).
    pub client: [u8; 12],
    /// The replica that minted it (`Sealer::replica_of`).
    pub replica: u16,
    /// Gallery depth, 0 for a token planted in a site page (at most 255).
    pub depth: u8,
}

impl Sealed {
    /// The minting client's key as the edge writes it.
    pub fn client_key(&self) -> String {
        format!("c:{}", hex::encode(self.client))
    }
}

/// The 12 bytes of a client key `c:` + 24 hex digits; `None` for any other key.
pub fn client_bytes(client_key: &str) -> Option<[u8; 12]> {
    let hex_part = client_key.strip_prefix("c:")?;
    let mut out = [0u8; 12];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// Seals and opens the tokens of one deployment.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
    replica: u16,
}

impl Sealer {
    /// The sealer of the deployment with `secret`, minting as `replica`.
    pub fn new(secret: &[u8; 32], replica: u16) -> Sealer {
        let key: [u8; 32] = Sha256::new()
            .chain_update(secret)
            .chain_update(b"faceprobe token seal v1")
            .finalize()
            .into();
        Sealer { key, replica }
    }

    /// The replica number of an instance name: 16 bits of its SHA-256.
    pub fn replica_of(instance: &str) -> u16 {
        let d = Sha256::digest(instance.as_bytes());
        u16::from_be_bytes([d[0], d[1]])
    }

    pub fn replica(&self) -> u16 {
        self.replica
    }

    fn cipher(&self) -> Aes128Siv {
        Aes128Siv::new((&self.key).into())
    }

    /// A new sealed token; `replica` is this sealer's.
    pub fn seal(&self, s: &Sealed) -> Token {
        let mut clear = [0u8; CLEAR];
        clear[0] = FORMAT;
        clear[1..].copy_from_slice(&(s.created_ms.max(0) as u64).to_be_bytes()[2..]);
        let mut plain = [0u8; PLAIN];
        plain[..6].copy_from_slice(&(s.variant_seed & VARIANT_BITS).to_be_bytes()[2..]);
        plain[6..10].copy_from_slice(&s.pool_slot.to_be_bytes());
        plain[10..22].copy_from_slice(&s.client);
        plain[22..24].copy_from_slice(&self.replica.to_be_bytes());
        plain[24] = s.depth;
        let sealed = self
            .cipher()
            .encrypt([&clear[..]], &plain)
            .expect("a 25-byte plaintext under one header always seals");
        let mut bytes = [0u8; CLEAR + TAG + PLAIN];
        bytes[..CLEAR].copy_from_slice(&clear);
        bytes[CLEAR..].copy_from_slice(&sealed);
        Token::from_bytes(&bytes).expect("48 bytes are a token")
    }

    /// What a sealed token of this deployment carries; `None` when the token is not sealed,
    /// was altered, or was sealed under another secret.
    pub fn open(&self, token: &Token) -> Option<Sealed> {
        let b = token.as_bytes();
        if !is_sealed(token) {
            return None;
        }
        let plain = self.cipher().decrypt([&b[..CLEAR]], &b[CLEAR..]).ok()?;
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&b[1..CLEAR]);
        let mut variant = [0u8; 8];
        variant[2..].copy_from_slice(&plain[..6]);
        let mut client = [0u8; 12];
        client.copy_from_slice(&plain[10..22]);
        Some(Sealed {
            created_ms: u64::from_be_bytes(ms) as i64,
            variant_seed: u64::from_be_bytes(variant),
            pool_slot: u32::from_be_bytes(plain[6..10].try_into().ok()?),
            client,
            replica: u16::from_be_bytes([plain[22], plain[23]]),
            depth: plain[24],
        })
    }
}

/// Whether a token has the shape of a sealed one (it may still fail to open).
pub fn is_sealed(token: &Token) -> bool {
    let b = token.as_bytes();
    b.len() == CLEAR + TAG + PLAIN && b[0] == FORMAT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sealed {
        Sealed {
            created_ms: 1_790_000_000_123,
            variant_seed: 0x0000_a1b2_c3d4_e5f6,
            pool_slot: 77_001,
            client: client_bytes("c:0123456789abcdef01234567").unwrap(),
            replica: 0,
            depth: 3,
        }
    }

    #[test]
    fn a_sealed_token_is_64_url_safe_characters_and_opens_on_any_replica_of_the_deployment() {
        let minter = Sealer::new(&[1; 32], Sealer::replica_of("pod-a"));
        let other_replica = Sealer::new(&[1; 32], Sealer::replica_of("pod-b"));
        let token = minter.seal(&sample());
        let text = token.to_string();
        assert_eq!(text.len(), 64);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let parsed: Token = text.parse().unwrap();
        let opened = other_replica
            .open(&parsed)
            .expect("opens on another replica");
        assert_eq!(
            opened,
            Sealed {
                replica: Sealer::replica_of("pod-a"),
                ..sample()
            }
        );
        assert_eq!(opened.client_key(), "c:0123456789abcdef01234567");
    }

    #[test]
    fn an_altered_made_up_or_foreign_token_does_not_open() {
        let sealer = Sealer::new(&[1; 32], 7);
        let token = sealer.seal(&sample());
        for i in 0..48 {
            for bit in [0x01u8, 0x80] {
                let mut b = token.as_bytes().to_vec();
                b[i] ^= bit;
                let altered = Token::from_bytes(&b).unwrap();
                assert!(sealer.open(&altered).is_none(), "byte {i} bit {bit:#x}");
            }
        }
        assert!(Sealer::new(&[2; 32], 7).open(&token).is_none());
        let mut made_up = [0u8; 48];
        made_up[0] = FORMAT;
        rand::fill(&mut made_up[1..]);
        assert!(sealer.open(&Token::from_bytes(&made_up).unwrap()).is_none());
        assert!(sealer.open(&Token::random()).is_none());
    }

    #[test]
    fn sealed_tokens_differ_per_view_and_sort_by_mint_time() {
        let sealer = Sealer::new(&[1; 32], 7);
        let a = sealer.seal(&sample());
        let b = sealer.seal(&Sealed {
            variant_seed: 1,
            ..sample()
        });
        assert_ne!(a, b);
        let later = sealer.seal(&Sealed {
            created_ms: sample().created_ms + 1,
            variant_seed: 0,
            ..sample()
        });
        assert!(a.as_bytes() < later.as_bytes() && b.as_bytes() < later.as_bytes());
    }

    #[test]
    fn only_edge_client_keys_are_carried() {
        assert!(client_bytes("c:0123456789abcdef01234567").is_some());
        assert!(client_bytes("c:a").is_none());
        assert!(client_bytes("0123456789abcdef01234567").is_none());
        assert!(client_bytes("c:0123456789abcdef0123456z").is_none());
    }
}
