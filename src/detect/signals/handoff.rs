//! Token hand-off: a canary or trap token is minted for the client whose page view it was
//! planted in; fetched by another client, it ties the two into one actor (a pool of
//! addresses, or a crawler that hands URLs from its parser to its downloaders). The engine
//! joins them into a cluster; this signal scores the fetcher.

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;

/// The client the token was minted for, when it is another one.
pub fn other_owner<'a>(facts: &'a Facts) -> Option<&'a str> {
    let s = facts.seen;
    if !matches!(s.kind(), Kind::Canary | Kind::Trap) {
        return None;
    }
    s.token_owner
        .as_deref()
        .filter(|owner| *owner != s.client_key && owner.starts_with("c:"))
}

pub struct TokenHandoff;

impl Signal for TokenHandoff {
    fn id(&self) -> SignalId {
        SignalId::TokenHandoff
    }

    fn observe(&self, _: &DetectConfig, _: &mut Client, facts: &Facts) -> Option<String> {
        let owner = other_owner(facts)?;
        Some(format!(
            "fetched {} minted for another client, {owner}",
            facts.seen.path
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn only_a_token_minted_for_another_client_is_a_handoff() {
        let config = DetectConfig::default();
        let mut own = seen(1, 0, Kind::Canary, "/_fp/c/a.jpg");
        own.token_owner = Some(own.client_key.clone());
        let mut other = seen(2, 0, Kind::Canary, "/_fp/c/b.jpg");
        other.token_owner = Some("c:someoneelse".into());
        let mut cli = seen(3, 0, Kind::Canary, "/_fp/c/c.jpg");
        cli.token_owner = Some("cli".into());
        let mut c = client_for(&own, &config);
        assert_eq!(run(&TokenHandoff, &mut c, &[own, cli], true), 0);
        assert_eq!(run(&TokenHandoff, &mut c, &[other], true), 1);
    }
}
