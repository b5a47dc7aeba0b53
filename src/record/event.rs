//! One request as recorded: what the edge saw, and its canonical encoding for the hash chain.
//!
//! The encoding is the contract of the chain: fixed field order, every field tagged and
//! length-prefixed, the client address present only as a commitment. It must never change
//! for version 1; a new layout is a new version tag.

use crate::store::Token;
use std::net::IpAddr;

/// Longest value kept of any one recorded header or of the path or query: bounds the memory
/// of a queued event whatever a client sends.
pub const MAX_FIELD_BYTES: usize = 1024;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Page,
    Image,
    Asset,
    Robots,
    Canary,
    Trap,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::Image => "image",
            Kind::Asset => "asset",
            Kind::Robots => "robots",
            Kind::Canary => "canary",
            Kind::Trap => "trap",
            Kind::Other => "other",
        }
    }

    pub const ALL: [Kind; 7] = [
        Kind::Page,
        Kind::Image,
        Kind::Asset,
        Kind::Robots,
        Kind::Canary,
        Kind::Trap,
        Kind::Other,
    ];

    /// Its counter in `Metrics` (`metrics::REQUEST_KINDS`).
    pub fn counter(self) -> usize {
        self as usize
    }

    /// Evidence that must never be dropped when the queue is full.
    pub fn is_evidence(self) -> bool {
        matches!(self, Kind::Robots | Kind::Canary | Kind::Trap)
    }
}

/// A token minted while answering a request (a page view, a trap gallery).
#[derive(Debug, Clone, PartialEq)]
pub struct Mint {
    pub token: Token,
    pub identity_seed: u64,
    pub variant_seed: u64,
    pub size: u32,
    pub renderer: u32,
    pub created_ms: i64,
    pub client_key: String,
    /// The gallery token whose page minted this one, if any.
    pub parent: Option<Token>,
    /// Gallery depth: 0 for a token planted in a site page, n for one on the n-th gallery.
    pub depth: u32,
}

/// Perceptual hashes of a served canary, stored with its token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenHashes {
    pub scheme_id: i64,
    pub hashes: crate::store::tokens::Hashes,
}

/// One request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub ts_ms: i64,
    pub ip: Option<IpAddr>,
    pub client_key: String,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub bytes: u64,
    pub duration_us: u64,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub accept: Option<String>,
    pub accept_language: Option<String>,
    pub accept_encoding: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub sec_fetch_mode: Option<String>,
    pub sec_fetch_dest: Option<String>,
    pub sec_fetch_user: Option<String>,
    pub cookie_sent: bool,
    /// Header names in the order the client sent them, lower case, comma separated.
    pub header_order: String,
    pub kind: Option<Kind>,
    pub token: Option<Token>,
    /// The robots.txt version served (its SHA-256), for robots fetches.
    pub robots_sha256: Option<[u8; 32]>,
    /// Tokens minted by this request.
    pub mints: Vec<Mint>,
    /// For a canary fetch: the token row to create if its minting page event was dropped.
    pub ensure_token: Option<Mint>,
    /// For a canary fetch: the hashes of the image served.
    pub hashes: Option<TokenHashes>,
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Other)
    }
}

/// Cuts a client-supplied value to `MAX_FIELD_BYTES` on a character boundary.
pub fn bounded(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_string();
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A client string (agent, path, address) as inert visible text: control characters, line and
/// paragraph separators, and the bidirectional controls that could reorder what a reader sees
/// are written as `\u{…}`, so what is printed is what was sent, character for character, on
/// one line, and nothing is hidden.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_separator(c) || is_bidi_control(c) || is_invisible(c) {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: a line break in a renderer.
fn is_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}')
}

/// The commitment to a client address: SHA-256 over a domain tag, the address as text and a
/// 16-byte nonce. Opening it needs the address and the nonce, which the purge removes.
pub fn ip_commitment(ip: &str, nonce: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(b"faceprobe-ip-commit-v1\0")
        .chain_update(ip.as_bytes())
        .chain_update([0u8])
        .chain_update(nonce)
        .finalize()
        .into()
}

/// The fields of a stored event that the chain covers, as read back from SQLite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chained {
    pub id: i64,
    pub ts_ms: i64,
    pub ip_commit: Option<Vec<u8>>,
    pub client_key: String,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub status: i64,
    pub bytes: i64,
    pub duration_us: i64,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub accept: Option<String>,
    pub accept_language: Option<String>,
    pub accept_encoding: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub sec_fetch_mode: Option<String>,
    pub sec_fetch_dest: Option<String>,
    pub sec_fetch_user: Option<String>,
    pub cookie_sent: bool,
    pub header_order: Option<String>,
    pub kind: String,
    pub token: Option<Vec<u8>>,
    pub robots_sha256: Option<Vec<u8>>,
}

/// The columns of `Chained`, in its order, for SELECTs.
pub const CHAINED_COLUMNS: &str = "id, ts_ms, ip_commit, client_key, method, host, path, query, \
     status, bytes, duration_us, user_agent, referer, accept, accept_language, accept_encoding, \
     sec_fetch_site, sec_fetch_mode, sec_fetch_dest, sec_fetch_user, cookie_sent, header_order, \
     kind, token, robots_sha256";

impl Chained {
    pub fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Chained> {
        Ok(Chained {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            ip_commit: r.get(2)?,
            client_key: r.get(3)?,
            method: r.get(4)?,
            host: r.get(5)?,
            path: r.get(6)?,
            query: r.get(7)?,
            status: r.get(8)?,
            bytes: r.get(9)?,
            duration_us: r.get(10)?,
            user_agent: r.get(11)?,
            referer: r.get(12)?,
            accept: r.get(13)?,
            accept_language: r.get(14)?,
            accept_encoding: r.get(15)?,
            sec_fetch_site: r.get(16)?,
            sec_fetch_mode: r.get(17)?,
            sec_fetch_dest: r.get(18)?,
            sec_fetch_user: r.get(19)?,
            cookie_sent: r.get(20)?,
            header_order: r.get(21)?,
            kind: r.get(22)?,
            token: r.get(23)?,
            robots_sha256: r.get(24)?,
        })
    }

    /// The values stored once per distinct combination (`header_sets`), in its column order.
    pub fn header_values(&self) -> super::headers::Values<'_> {
        [
            self.user_agent.as_deref(),
            self.accept.as_deref(),
            self.accept_language.as_deref(),
            self.accept_encoding.as_deref(),
            self.sec_fetch_site.as_deref(),
            self.sec_fetch_mode.as_deref(),
            self.sec_fetch_dest.as_deref(),
            self.sec_fetch_user.as_deref(),
            self.header_order.as_deref(),
        ]
    }

    /// The canonical encoding (version 1): a version tag, then every field in declaration
    /// order; each present field is 0x01, its length (u32 big-endian) and its bytes; an absent
    /// one is 0x00. Integers are 8 bytes big-endian, text is UTF-8, booleans one byte.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"faceprobe-event-v1\0");
        let int = |out: &mut Vec<u8>, v: i64| field(out, Some(&v.to_be_bytes()));
        int(&mut out, self.id);
        int(&mut out, self.ts_ms);
        field(&mut out, self.ip_commit.as_deref());
        let text = |out: &mut Vec<u8>, v: Option<&String>| field(out, v.map(|s| s.as_bytes()));
        text(&mut out, Some(&self.client_key));
        text(&mut out, Some(&self.method));
        text(&mut out, self.host.as_ref());
        text(&mut out, Some(&self.path));
        text(&mut out, self.query.as_ref());
        int(&mut out, self.status);
        int(&mut out, self.bytes);
        int(&mut out, self.duration_us);
        for v in [
            &self.user_agent,
            &self.referer,
            &self.accept,
            &self.accept_language,
            &self.accept_encoding,
            &self.sec_fetch_site,
            &self.sec_fetch_mode,
            &self.sec_fetch_dest,
            &self.sec_fetch_user,
        ] {
            text(&mut out, v.as_ref());
        }
        field(&mut out, Some(&[u8::from(self.cookie_sent)]));
        text(&mut out, self.header_order.as_ref());
        text(&mut out, Some(&self.kind));
        field(&mut out, self.token.as_deref());
        field(&mut out, self.robots_sha256.as_deref());
        out
    }
}

/// One field of the canonical encoding: absent (0x00), or present (0x01, length as u32
/// big-endian, bytes). Also what makes a header set's digest (`headers::digest`).
pub(super) fn field(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// The digest of an event: SHA-256 of its canonical encoding. The chain links digests, so a
/// bundle can carry another visitor's event as these 32 bytes alone.
pub fn digest(event: &Chained) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(event.canonical()).into()
}

/// One link of the chain (rule 2): SHA-256 over the previous value and the event's digest.
pub fn chain_link(prev: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(prev)
        .chain_update(digest)
        .finalize()
        .into()
}

/// The chain value of an event (rule 2): `chain_link(prev, digest(event))`. The first
/// event's previous value is 32 zero bytes.
pub fn chain_next(prev: &[u8; 32], event: &Chained) -> [u8; 32] {
    chain_link(prev, &digest(event))
}

/// The chain value of an event under rule 1, which events written before schema 8 used:
/// SHA-256 over the previous value and the whole canonical encoding.
pub fn chain_next_v1(prev: &[u8; 32], event: &Chained) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(prev)
        .chain_update(event.canonical())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_under_its_own_name() {
        assert_eq!(Kind::ALL.len(), crate::metrics::REQUEST_KINDS.len());
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind.counter(), i);
            assert_eq!(crate::metrics::REQUEST_KINDS[i], kind.as_str());
        }
    }

    #[test]
    fn absent_and_empty_fields_encode_differently() {
        let a = Chained {
            host: None,
            ..Chained::default()
        };
        let b = Chained {
            host: Some(String::new()),
            ..Chained::default()
        };
        assert_ne!(a.canonical(), b.canonical());
    }

    #[test]
    fn fields_cannot_be_shifted_between_neighbours() {
        let a = Chained {
            path: "/ab".into(),
            query: Some("c".into()),
            ..Chained::default()
        };
        let b = Chained {
            path: "/a".into(),
            query: Some("bc".into()),
            ..Chained::default()
        };
        assert_ne!(chain_next(&[0; 32], &a), chain_next(&[0; 32], &b));
        assert_ne!(chain_next_v1(&[0; 32], &a), chain_next_v1(&[0; 32], &b));
    }

    #[test]
    fn rule_2_links_the_digest_and_differs_from_rule_1() {
        let e = Chained {
            id: 7,
            path: "/p".into(),
            ..Chained::default()
        };
        let prev = [5u8; 32];
        let d = digest(&e);
        let mut joined = prev.to_vec();
        joined.extend_from_slice(&d);
        use sha2::{Digest, Sha256};
        let by_hand: [u8; 32] = Sha256::digest(&joined).into();
        assert_eq!(chain_next(&prev, &e), by_hand);
        assert_ne!(chain_next(&prev, &e), chain_next_v1(&prev, &e));
    }

    #[test]
    fn commitment_depends_on_address_and_nonce() {
        let n1 = [1u8; 16];
        let n2 = [2u8; 16];
        assert_ne!(
            ip_commitment("10.0.0.1", &n1),
            ip_commitment("10.0.0.1", &n2)
        );
        assert_ne!(
            ip_commitment("10.0.0.1", &n1),
            ip_commitment("10.0.0.2", &n1)
        );
        assert_eq!(
            ip_commitment("10.0.0.1", &n1),
            ip_commitment("10.0.0.1", &n1)
        );
    }

    #[test]
    fn bounded_cuts_on_a_char_boundary() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_FIELD_BYTES && cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short"), "short");
    }
}
