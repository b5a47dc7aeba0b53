//! Detection end to end (issue 4): the traffic harness of `examples/traffic` at CI size (40
//! person sessions with think times of 300..1500 ms, a polite crawler for 15 s, one bulk, one
//! disguised harvester over 50 addresses and one rendering harvester, each harvester 300
//! requests) against the real binary, with the targets asserted: every bulk harvester
//! flagged `harvester` within 100 requests, >= 90 % of the disguised and rendering harvesters'
//! addresses flagged >= suspect within 300 requests of the actor, no person and not the polite
//! crawler above `watch`. The harness bounds every wait; the run takes about a minute.
//!
//! The full run (1,000 sessions, think times of seconds) is
//! `cargo run --release --example traffic`.

#[allow(dead_code)]
#[path = "../examples/traffic/gen.rs"]
mod gen;

#[test]
fn harvesters_are_flagged_and_people_and_the_polite_crawler_are_not() {
    let config = gen::Config::small(env!("CARGO_BIN_EXE_faceprobe").into());
    let report = gen::run(&config).unwrap_or_else(|e| panic!("the harness could not run: {e}"));
    let text = report.text();
    eprintln!("{text}");
    if let Err(e) = &report.detection {
        panic!("detection cannot be scored: {e}\n\n{text}");
    }
    let failures = report.failures();
    assert!(failures.is_empty(), "{}\n\n{text}", failures.join("\n"));
}
