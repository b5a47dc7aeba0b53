//! Coarse timers for the edge's per-request deadlines: the wait for a request head
//! (`serve.header_timeout_secs`, hyper's timer) and for the upstream's answer
//! (`serve.upstream_timeout_secs`).
//!
//! Each request arms both and nearly always disarms them long before they fire. tokio's timer
//! reads the clock and files every deadline in its wheel to the millisecond, which cost ~1.6 µs
//! per request on the edge benchmark (4 % of faceprobe's CPU per request). Deadlines of seconds
//! need no such precision: here a deadline is a count of ticks (`RESOLUTION`), "now" is read
//! from a counter that a ticker thread advances, and arming or disarming is an insert or a
//! removal in a slab behind a mutex that only the owning worker (and the ticker, once a tick)
//! takes. A deadline fires between one and two ticks late, never early.

use hyper::rt::{Sleep, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How far apart the ticks are: the precision of a deadline.
pub const RESOLUTION: Duration = Duration::from_millis(100);

/// One worker's coarse timer; cheap to clone (all clones share the same ticks and sleepers).
#[derive(Clone)]
pub struct Coarse(Arc<Shared>);

struct Shared {
    start: Instant,
    /// Ticks since `start`, advanced by the ticker thread.
    ticks: AtomicU64,
    /// The armed deadlines: (tick due, waker of the future waiting for it, taken once fired).
    sleepers: Mutex<slab::Slab<(u64, Option<Waker>)>>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.ticks.load(Ordering::Acquire)
    }

    fn sleepers(&self) -> std::sync::MutexGuard<'_, slab::Slab<(u64, Option<Waker>)>> {
        self.sleepers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Coarse {
    /// A timer and its ticker thread (named `name`), which ends once every clone is dropped.
    pub fn start(name: &str) -> std::io::Result<Coarse> {
        let shared = Arc::new(Shared {
            start: Instant::now(),
            ticks: AtomicU64::new(0),
            sleepers: Mutex::new(slab::Slab::new()),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || tick(weak))?;
        Ok(Coarse(shared))
    }

    /// A future that completes once `duration` has passed (one or two ticks later at most).
    pub fn sleep(&self, duration: Duration) -> CoarseSleep {
        let ticks = duration.as_nanos().div_ceil(RESOLUTION.as_nanos());
        CoarseSleep {
            // One tick more: the counter may be just about to advance.
            due: self.0.now() + u64::try_from(ticks).unwrap_or(u64::MAX / 2) + 1,
            shared: self.0.clone(),
            slot: None,
        }
    }

    /// `fut`, or `Err(Elapsed)` if it has not completed after `duration`.
    pub async fn timeout<F: Future>(
        &self,
        duration: Duration,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let sleep = self.sleep(duration);
        tokio::select! {
            biased;
            out = fut => Ok(out),
            () = sleep => Err(Elapsed),
        }
    }
}

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// The ticker: advances the counter every `RESOLUTION` and wakes the sleepers now due.
fn tick(shared: Weak<Shared>) {
    loop {
        std::thread::sleep(RESOLUTION);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = (shared.start.elapsed().as_nanos() / RESOLUTION.as_nanos()) as u64;
        shared.ticks.store(now, Ordering::Release);
        let due: Vec<Waker> = shared
            .sleepers()
            .iter_mut()
            .filter(|(_, (at, _))| *at <= now)
            .filter_map(|(_, (_, waker))| waker.take())
            .collect();
        for waker in due {
            waker.wake();
        }
    }
}

/// A coarse deadline; disarmed when dropped.
pub struct CoarseSleep {
    shared: Arc<Shared>,
    due: u64,
    /// Its place among the sleepers once it has been polled and is waiting.
    slot: Option<usize>,
}

impl CoarseSleep {
    fn disarm(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.shared.sleepers().remove(slot);
        }
    }
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.now() >= this.due {
            this.disarm();
            return Poll::Ready(());
        }
        let mut sleepers = this.shared.sleepers();
        match this.slot {
            Some(slot) => {
                let waker = &mut sleepers[slot].1;
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
            }
            None => this.slot = Some(sleepers.insert((this.due, Some(cx.waker().clone())))),
        }
        drop(sleepers);
        // The ticker may have passed the deadline between the check and the insert.
        if this.shared.now() >= this.due {
            this.disarm();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl Sleep for CoarseSleep {}

/// hyper's timer (the head-read timeout): its "now" is the tick counter, not the clock.
impl Timer for Coarse {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(Coarse::sleep(self, duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let from = self.now();
        Box::pin(Coarse::sleep(
            self,
            deadline.saturating_duration_since(from),
        ))
    }

    fn now(&self) -> Instant {
        let ticks = u32::try_from(self.0.now()).unwrap_or(u32::MAX);
        self.0.start + RESOLUTION.saturating_mul(ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_deadline_fires_after_its_duration_and_never_before() {
        let timer = Coarse::start("test-timer").unwrap();
        let started = Instant::now();
        runtime().block_on(timer.sleep(Duration::from_millis(250)));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "fired early: {took:?}");
        assert!(
            took < Duration::from_millis(250) + RESOLUTION * 4,
            "fired late: {took:?}"
        );
    }

    #[test]
    fn a_timeout_gives_the_output_of_a_future_that_completes_in_time_and_disarms() {
        let timer = Coarse::start("test-timer").unwrap();
        let out = runtime().block_on(timer.timeout(Duration::from_secs(5), async { 7 }));
        assert_eq!(out, Ok(7));
        let waiting = runtime().block_on(timer.timeout(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_millis(20)).await
        }));
        assert_eq!(waiting, Ok(()));
        assert!(
            timer.0.sleepers().is_empty(),
            "a finished timeout left its deadline armed"
        );
    }

    #[test]
    fn a_timeout_ends_a_future_that_does_not_complete() {
        let timer = Coarse::start("test-timer").unwrap();
        let started = Instant::now();
        let out = runtime()
            .block_on(timer.timeout(Duration::from_millis(150), std::future::pending::<()>()));
        assert_eq!(out, Err(Elapsed));
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(timer.0.sleepers().is_empty());
    }

    #[test]
    fn the_ticker_thread_ends_with_the_last_clone() {
        let timer = Coarse::start("test-timer-end").unwrap();
        let ticker_alive = || {
            std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| {
                tasks.flatten().any(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "test-timer-end")
                })
            })
        };
        if !ticker_alive() {
            return; // no /proc here: nothing to observe
        }
        drop(timer);
        std::thread::sleep(RESOLUTION * 3);
        assert!(!ticker_alive(), "the ticker outlived its timer");
    }
}
