//! An event as a bundle carries it (`events.jsonl`): every field the chain covers, the raw
//! address and nonce that open its commitment, and the chain value stored with it. Both the
//! builder and `evidence verify` go through this type, so they read one encoding.

use crate::canary::Token;
use crate::record::event::{ip_commitment, Chained};
use serde::{Deserialize, Serialize};

/// One line of `events.jsonl` (docs/evidence-format.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    pub id: i64,
    pub ts_ms: i64,
    pub client_ip: Option<String>,
    pub ip_nonce: Option<String>,
    pub ip_commit: Option<String>,
    pub ip_pseudonym: Option<String>,
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
    pub token: Option<String>,
    pub token_text: Option<String>,
    pub robots_sha256: Option<String>,
    pub chain: String,
}

/// An event of the actor as read from the store: what the chain covers and what opens it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub event: Chained,
    pub chain: [u8; 32],
    pub client_ip: Option<String>,
    pub ip_nonce: Option<Vec<u8>>,
    pub ip_pseudonym: Option<String>,
}

impl Stored {
    pub fn line(&self) -> EventLine {
        let e = &self.event;
        EventLine {
            id: e.id,
            ts_ms: e.ts_ms,
            client_ip: self.client_ip.clone(),
            ip_nonce: self.ip_nonce.as_ref().map(hex::encode),
            ip_commit: e.ip_commit.as_ref().map(hex::encode),
            ip_pseudonym: self.ip_pseudonym.clone(),
            client_key: e.client_key.clone(),
            method: e.method.clone(),
            host: e.host.clone(),
            path: e.path.clone(),
            query: e.query.clone(),
            status: e.status,
            bytes: e.bytes,
            duration_us: e.duration_us,
            user_agent: e.user_agent.clone(),
            referer: e.referer.clone(),
            accept: e.accept.clone(),
            accept_language: e.accept_language.clone(),
            accept_encoding: e.accept_encoding.clone(),
            sec_fetch_site: e.sec_fetch_site.clone(),
            sec_fetch_mode: e.sec_fetch_mode.clone(),
            sec_fetch_dest: e.sec_fetch_dest.clone(),
            sec_fetch_user: e.sec_fetch_user.clone(),
            cookie_sent: e.cookie_sent,
            header_order: e.header_order.clone(),
            kind: e.kind.clone(),
            token: e.token.as_ref().map(hex::encode),
            token_text: e
                .token
                .as_deref()
                .and_then(Token::from_bytes)
                .map(|t| t.to_string()),
            robots_sha256: e.robots_sha256.as_ref().map(hex::encode),
            chain: hex::encode(self.chain),
        }
    }

    /// The address as a report shows it: raw while kept, else its pseudonym.
    pub fn address(&self) -> (String, bool) {
        match (&self.client_ip, &self.ip_pseudonym) {
            (Some(ip), _) => (ip.clone(), true),
            (None, Some(p)) => (p.clone(), false),
            (None, None) => ("-".into(), false),
        }
    }
}

impl EventLine {
    /// The fields the chain covers, decoded; `Err` names the field that is not valid hex.
    pub fn chained(&self) -> Result<Chained, String> {
        let bytes = |name: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, String> {
            v.as_deref()
                .map(|h| hex::decode(h).map_err(|_| format!("{name} is not hex")))
                .transpose()
        };
        Ok(Chained {
            id: self.id,
            ts_ms: self.ts_ms,
            ip_commit: bytes("ip_commit", &self.ip_commit)?,
            client_key: self.client_key.clone(),
            method: self.method.clone(),
            host: self.host.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            status: self.status,
            bytes: self.bytes,
            duration_us: self.duration_us,
            user_agent: self.user_agent.clone(),
            referer: self.referer.clone(),
            accept: self.accept.clone(),
            accept_language: self.accept_language.clone(),
            accept_encoding: self.accept_encoding.clone(),
            sec_fetch_site: self.sec_fetch_site.clone(),
            sec_fetch_mode: self.sec_fetch_mode.clone(),
            sec_fetch_dest: self.sec_fetch_dest.clone(),
            sec_fetch_user: self.sec_fetch_user.clone(),
            cookie_sent: self.cookie_sent,
            header_order: self.header_order.clone(),
            kind: self.kind.clone(),
            token: bytes("token", &self.token)?,
            robots_sha256: bytes("robots_sha256", &self.robots_sha256)?,
        })
    }

    /// Whether the address given opens the commitment: `None` when there is nothing to open
    /// (no raw address kept), `Some(false)` when it does not.
    pub fn opens(&self) -> Option<bool> {
        let (ip, nonce, commit) = (
            self.client_ip.as_deref()?,
            self.ip_nonce.as_deref()?,
            self.ip_commit.as_deref()?,
        );
        let nonce = hex::decode(nonce).ok()?;
        Some(hex::encode(ip_commitment(ip, &nonce)) == commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_to_the_same_encoding_and_opens_its_commitment() {
        let nonce = [7u8; 16];
        let stored = Stored {
            event: Chained {
                id: 9,
                ts_ms: 1234,
                ip_commit: Some(ip_commitment("203.0.113.7", &nonce).to_vec()),
                client_key: "c:x".into(),
                method: "GET".into(),
                path: "/_fp/c/t.jpg".into(),
                user_agent: Some("img2dataset/1.5".into()),
                kind: "canary".into(),
                token: Some(vec![1; 22]),
                ..Chained::default()
            },
            chain: [3; 32],
            client_ip: Some("203.0.113.7".into()),
            ip_nonce: Some(nonce.to_vec()),
            ip_pseudonym: None,
        };
        let line = stored.line();
        let text = serde_json::to_string(&line).unwrap();
        let back: EventLine = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.chained().unwrap().canonical(),
            stored.event.canonical()
        );
        assert_eq!(back.opens(), Some(true));
        let mut moved = back.clone();
        moved.client_ip = Some("203.0.113.8".into());
        assert_eq!(moved.opens(), Some(false));
    }
}
