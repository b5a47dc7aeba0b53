//! Machine-regular timing: a program fetching on a timer leaves gaps of nearly equal length;
//! people and browsers are bursty (a page and its assets at once, then seconds of reading).
//! Measured as the coefficient of variation of the gaps over a series of requests; a long
//! pause starts a new series.

use super::{Facts, Signal, SignalId};
use crate::config::detect::DetectConfig;
use crate::detect::client::Client;

pub struct RegularTiming;

impl Signal for RegularTiming {
    fn id(&self) -> SignalId {
        SignalId::RegularTiming
    }

    fn observe(&self, config: &DetectConfig, client: &mut Client, facts: &Facts) -> Option<String> {
        let c = &config.signals.regular_timing;
        let now = facts.seen.ts_ms;
        let t = &mut client.timing;
        if t.last_ms == 0 {
            t.last_ms = now;
            return None;
        }
        let gap = (now - t.last_ms).max(0);
        t.last_ms = now;
        if gap > (c.max_gap_secs * 1000) as i64 {
            t.gaps = 0;
            t.mean = 0.0;
            t.m2 = 0.0;
            return None;
        }
        t.gaps += 1;
        let x = gap as f64;
        let delta = x - t.mean;
        t.mean += delta / f64::from(t.gaps);
        t.m2 += delta * (x - t.mean);
        if t.fired || t.gaps < c.min_gaps || t.mean < 1.0 {
            return None;
        }
        let cv = (t.m2 / f64::from(t.gaps)).sqrt() / t.mean;
        if cv >= c.max_cv {
            return None;
        }
        t.fired = true;
        Some(format!(
            "{} requests {:.0} ms apart, varying by only {:.0} %",
            t.gaps + 1,
            t.mean,
            cv * 100.0
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::record::Kind;

    #[test]
    fn a_timer_is_regular_and_a_person_is_not() {
        let config = DetectConfig::default();
        let timer: Vec<_> = (0..40)
            .map(|i| seen(i, 1_000_000 + i * 1000 + (i % 3) * 20, Kind::Page, "/"))
            .collect();
        let mut c = client_for(&timer[0], &config);
        assert_eq!(run(&RegularTiming, &mut c, &timer, false), 1);
        // A page and four assets at once, then 3 to 20 s of reading, repeated.
        let mut t = 1_000_000;
        let mut person = Vec::new();
        for i in 0..40 {
            t += if i % 5 == 0 {
                3000 + (i * 7919 % 17_000)
            } else {
                15
            };
            person.push(seen(i, t, Kind::Page, "/"));
        }
        let mut c = client_for(&person[0], &config);
        assert_eq!(run(&RegularTiming, &mut c, &person, false), 0);
    }
}
