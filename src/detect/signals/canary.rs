//! Hidden canaries fetched: the canary block is `display:none` and its image lazy, so no
//! browser loads it; a client that does has parsed the markup for images. Fetching more after
//! the first came with `X-Robots-Tag: noai, noimageai` and `tdm-reservation: 1` is the opt-out
//! seen and ignored.

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;

fn is_canary(facts: &Facts) -> bool {
    facts.seen.kind() == Kind::Canary && facts.seen.status < 400
}

pub struct Fetched;

impl Signal for Fetched {
    fn id(&self) -> SignalId {
        SignalId::CanaryFetched
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        if !is_canary(facts) {
            return None;
        }
        client.counts.canaries += 1;
        Some(format!(
            "{} hidden canary image(s) fetched, latest {}",
            client.counts.canaries, facts.seen.path
        ))
    }
}

pub struct OptOutIgnored;

impl Signal for OptOutIgnored {
    fn id(&self) -> SignalId {
        SignalId::OptOutIgnored
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        // Runs after `Fetched`, which has counted this canary.
        let after = config.signals.opt_out_ignored.after;
        if !is_canary(facts) || client.counts.canaries <= u64::from(after) {
            return None;
        }
        Some(format!(
            "kept fetching canaries served with X-Robots-Tag: noai, noimageai and \
             tdm-reservation: 1 ({} so far)",
            client.counts.canaries
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn canaries_count_and_the_opt_out_is_ignored_after_the_configured_number() {
        let config = DetectConfig::default();
        let events: Vec<_> = (0..4)
            .map(|i| seen(i, i * 1000, Kind::Canary, "/_fp/c/t.jpg"))
            .collect();
        let mut c = client_for(&events[0], &config);
        let mut opt = 0;
        for e in &events {
            assert_eq!(run(&Fetched, &mut c, std::slice::from_ref(e), true), 1);
            opt += run(&OptOutIgnored, &mut c, std::slice::from_ref(e), true);
        }
        assert_eq!(c.counts.canaries, 4);
        // after = 2: the third and fourth ignore the opt-out.
        assert_eq!(opt, 2);
        // A page or a failed canary fetch is not a canary taken.
        let mut failed = seen(9, 9, Kind::Canary, "/_fp/c/x.jpg");
        failed.status = 404;
        assert_eq!(run(&Fetched, &mut c, &[failed], true), 0);
        assert_eq!(
            run(&Fetched, &mut c, &[seen(10, 10, Kind::Page, "/")], false),
            0
        );
    }
}
