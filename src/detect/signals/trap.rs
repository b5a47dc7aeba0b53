//! Trap galleries: the link to `/_fp/g/{token}` is hidden and `rel="nofollow"`, so a person
//! never follows it. Each gallery links deeper ones; reaching `depth` means walking the trap.

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;
use crate::record::Kind;

pub struct Fetched;

impl Signal for Fetched {
    fn id(&self) -> SignalId {
        SignalId::TrapFetched
    }

    fn observe(&self, _: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        if facts.seen.kind() != Kind::Trap {
            return None;
        }
        client.counts.traps += 1;
        Some(format!(
            "{} hidden trap link(s) followed, latest {}",
            client.counts.traps, facts.seen.path
        ))
    }
}

pub struct Depth;

impl Signal for Depth {
    fn id(&self) -> SignalId {
        SignalId::GalleryDepth
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let s = facts.seen;
        if !matches!(s.kind(), Kind::Trap | Kind::Canary) {
            return None;
        }
        // A trap page's own depth is its token's depth + 1 (the page holds depth+1 tokens).
        let depth = match (s.kind(), s.token_depth) {
            (Kind::Trap, Some(d)) => d + 1,
            (_, Some(d)) => d,
            _ => return None,
        };
        let was = client.max_depth;
        client.max_depth = client.max_depth.max(depth);
        let threshold = config.signals.gallery_depth.depth;
        if was >= threshold || client.max_depth < threshold {
            return None;
        }
        Some(format!(
            "walked trap galleries to depth {}",
            client.max_depth
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn trap(id: i64, depth: u32) -> crate::detect::Seen {
        let mut s = seen(id, id, Kind::Trap, "/_fp/g/t");
        s.token_depth = Some(depth);
        s
    }

    #[test]
    fn trap_fetches_count_and_depth_fires_once_at_the_threshold() {
        let config = DetectConfig::default();
        let events = vec![trap(1, 0), trap(2, 1), trap(3, 2), trap(4, 3)];
        let mut c = client_for(&events[0], &config);
        assert_eq!(run(&Fetched, &mut c, &events, true), 4);
        assert_eq!(c.counts.traps, 4);
        let mut c = client_for(&events[0], &config);
        assert_eq!(run(&Depth, &mut c, &events, true), 1);
        assert_eq!(c.max_depth, 4);
        let mut c = client_for(&events[0], &config);
        assert_eq!(run(&Depth, &mut c, &events[..1], true), 0);
        assert_eq!(
            run(&Fetched, &mut c, &[seen(5, 5, Kind::Page, "/")], false),
            0
        );
    }
}
