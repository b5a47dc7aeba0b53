//! The scheduling policy of `faceprobe serve`'s threads (`serve.scheduling`).
//!
//! Set on the thread that starts the server, before it starts any other: threads inherit
//! their creator's policy, so every thread of the process runs under it, except the one that
//! renders canaries ahead of need, which puts itself under `SCHED_IDLE` (`background`).

use crate::config::Scheduling;

/// Puts the calling thread (and every thread it starts afterwards) under `policy`.
#[cfg(target_os = "linux")]
pub fn apply(policy: Scheduling) -> std::io::Result<()> {
    set(match policy {
        Scheduling::Batch => libc::SCHED_BATCH,
        Scheduling::Normal => libc::SCHED_OTHER,
    })
}

/// Other systems have no such policy: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn apply(_policy: Scheduling) -> std::io::Result<()> {
    Ok(())
}

/// Puts the calling thread under `SCHED_IDLE`: it runs when nothing else wants the core, and
/// any other thread that wakes takes the core from it at once. For work done ahead of need
/// (rendering canaries before their first fetch), which must never delay a request.
#[cfg(target_os = "linux")]
pub fn background() -> std::io::Result<()> {
    set(libc::SCHED_IDLE)
}

/// Other systems: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn background() -> std::io::Result<()> {
    Ok(())
}

/// sched_setscheduler(2) on the calling thread.
#[cfg(target_os = "linux")]
fn set(policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread (pid 0) with a valid parameter
    // block; SCHED_BATCH, SCHED_OTHER and SCHED_IDLE need no privilege.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
