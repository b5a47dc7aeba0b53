//! Operator log lines about requests, rate-limited with `governor` per client prefix and
//! overall, so a flood cannot fill the disk through logs. Suppressed lines are counted and
//! summarised once a minute ("suppressed 12,345 lines from 10.1.2.0/24 in the last minute").
//! Lines name clients by their pseudonymous key, never by raw address.

use crate::metrics::Metrics;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

/// What a client sent, fit for a log line: the recorder's `visible` form (controls, line
/// separators, bidirectional and invisible characters as `\u{..}`), so that one record stays
/// one line and a terminal showing the log runs no escape sequence a client chose.
pub fn escaped(s: &str) -> String {
    crate::record::event::visible(s)
}

/// Prefixes tracked by the per-client limiter at most; beyond it only the global limit applies.
const MAX_TRACKED: usize = 100_000;
/// Prefixes named in one summary; the rest are added up.
const MAX_NAMED: usize = 10;

pub struct LogGate {
    per_client: DefaultKeyedRateLimiter<String>,
    total: DefaultDirectRateLimiter,
    suppressed: Mutex<HashMap<String, u64>>,
    metrics: Arc<Metrics>,
}

impl LogGate {
    pub fn new(
        per_client_per_minute: u32,
        total_per_second: u32,
        metrics: Arc<Metrics>,
    ) -> LogGate {
        let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        LogGate {
            per_client: RateLimiter::keyed(Quota::per_minute(nz(per_client_per_minute))),
            total: RateLimiter::direct(Quota::per_second(nz(total_per_second))),
            suppressed: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Whether a line about a client in `prefix` may be written now; counts it if not.
    pub fn allow(&self, prefix: &str) -> bool {
        let key = prefix.to_string();
        let client_ok =
            self.per_client.len() >= MAX_TRACKED || self.per_client.check_key(&key).is_ok();
        if client_ok && self.total.check().is_ok() {
            return true;
        }
        self.metrics.log_lines_suppressed.fetch_add(1, Relaxed);
        let mut s = super::canary::lock(&self.suppressed);
        let slot = if s.len() < MAX_TRACKED || s.contains_key(&key) {
            key
        } else {
            "other prefixes".to_string()
        };
        *s.entry(slot).or_default() += 1;
        false
    }

    /// Writes the summary of what was suppressed since the last call, and forgets limiter
    /// state that has gone back to fresh (keeps memory bounded).
    pub fn summarize(&self) -> Vec<String> {
        let taken = std::mem::take(&mut *super::canary::lock(&self.suppressed));
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
        let mut by_count: Vec<(String, u64)> = taken.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut lines = Vec::new();
        let mut rest = (0u64, 0usize);
        for (i, (prefix, n)) in by_count.into_iter().enumerate() {
            if i < MAX_NAMED {
                lines.push(format!(
                    "suppressed {} lines from {prefix} in the last minute",
                    thousands(n)
                ));
            } else {
                rest.0 += n;
                rest.1 += 1;
            }
        }
        if rest.1 > 0 {
            lines.push(format!(
                "suppressed {} lines from {} other prefixes in the last minute",
                thousands(rest.0),
                rest.1
            ));
        }
        for line in &lines {
            tracing::warn!("{line}");
        }
        lines
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_prefix_is_cut_and_summarised() {
        let m = Arc::new(Metrics::default());
        let gate = LogGate::new(5, 1000, m.clone());
        let allowed = (0..12_350).filter(|_| gate.allow("10.1.2.0/24")).count();
        assert_eq!(allowed, 5);
        assert!(
            gate.allow("192.0.2.0/24"),
            "another client still gets its lines"
        );
        let lines = gate.summarize();
        assert_eq!(
            lines,
            vec!["suppressed 12,345 lines from 10.1.2.0/24 in the last minute"]
        );
        assert_eq!(m.log_lines_suppressed.load(Relaxed), 12_345);
        assert!(
            gate.summarize().is_empty(),
            "counts restart after a summary"
        );
    }

    #[test]
    fn the_global_limit_holds_across_many_prefixes() {
        let gate = LogGate::new(100, 3, Arc::new(Metrics::default()));
        let allowed = (0..50)
            .filter(|i| gate.allow(&format!("10.0.{i}.0/24")))
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_log_line_shows_controls_as_escapes() {
        assert_eq!(
            escaped("curl/8 \u{9b}31m\u{85}x\u{2028}y\n"),
            "curl/8 \\u{9b}31m\\u{85}x\\u{2028}y\\u{a}"
        );
        assert_eq!(
            escaped("Mozilla/5.0 (X11) \"q\" ${jndi:x}"),
            "Mozilla/5.0 (X11) \"q\" ${jndi:x}"
        );
    }
}
