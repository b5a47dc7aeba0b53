//! The attribution targets on a small set (the full-size figures come from
//! `cargo run --release --example attribution`): top-1 after every damage of the issue's
//! list, and no false attribution of images that are not canaries.

use faceprobe::canary::eval::{run_attribution, Plan};
use faceprobe::config::MatchConfig;

#[test]
fn small_set_meets_the_attribution_and_false_match_targets() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Plan {
        tokens: 1500,
        identities: 30,
        probes: 30,
        decoys_per_kind: 20,
        size: 256,
        threads: 2,
        seed: 77,
        photos: Vec::new(),
    };
    let report = run_attribution(dir.path(), &plan, &MatchConfig::default()).unwrap();
    assert_eq!(report.tokens, 1500);
    for r in &report.results {
        assert_eq!(r.tries, plan.probes, "{r:?}");
        let rate = r.top1 as f64 / r.tries as f64;
        let target = if r.hard { 0.95 } else { 0.99 };
        assert!(
            rate >= target,
            "{}: {}/{} top-1, target {target}; misses: {:#?}",
            r.damage,
            r.top1,
            r.tries,
            report.misses
        );
    }
    assert_eq!(report.decoys, 80);
    assert_eq!(report.false_matches, 0, "{:?}", report.false_examples);
}
