//! A committed event as its readers see it: only what the detector's signals look at, with
//! the client the event's token was minted for (to see token hand-offs). The writer hands each
//! committed batch over in this form (`Record::Feed`); the detector reads older events back
//! from the store into the same form (`detect::seen`). The recorder owns it: it produces it.

use super::Kind;
use std::borrow::Cow;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub id: i64,
    pub ts_ms: i64,
    /// The raw address while the store keeps it (None once pseudonymized).
    pub ip: Option<String>,
    pub client_key: String,
    pub kind: Option<Kind>,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub accept_language: bool,
    /// Any of the `Sec-Fetch-*` headers was sent.
    pub sec_fetch: bool,
    pub referer: bool,
    pub cookie: bool,
    pub header_order: String,
    pub robots_sha256: Option<[u8; 32]>,
    /// For a canary or trap fetch: the client its token was minted for, and its gallery depth.
    pub token_owner: Option<String>,
    pub token_depth: Option<u32>,
}

impl Seen {
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Other)
    }

    /// The path with its query, as robots.txt rules see it (borrowed when there is no query:
    /// this runs for every event).
    pub fn target(&self) -> Cow<'_, str> {
        match &self.query {
            Some(q) => Cow::Owned(format!("{}?{}", self.path, q)),
            None => Cow::Borrowed(&self.path),
        }
    }
}

/// A stored status as the signals see it (the store holds any integer).
pub fn status_of(stored: i64) -> u16 {
    stored.clamp(0, 999) as u16
}

/// A stored gallery depth as the signals see it.
pub fn depth_of(stored: i64) -> u32 {
    stored.clamp(0, 1 << 20) as u32
}
