//! The scheduling policy of `faceprobe serve`'s threads (`serve.scheduling`).
//!
//! Set on the thread that starts the server, before it starts any other: threads inherit
//! their creator's policy, so every thread of the process runs under it.

use crate::config::Scheduling;

/// Puts the calling thread (and every thread it starts afterwards) under `policy`.
#[cfg(target_os = "linux")]
pub fn apply(policy: Scheduling) -> std::io::Result<()> {
    let policy = match policy {
        Scheduling::Batch => libc::SCHED_BATCH,
        Scheduling::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread (pid 0) with a valid parameter
    // block; SCHED_BATCH and SCHED_OTHER need no privilege.
    match unsafe { libc::sched_setscheduler(0, policy, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Other systems have no such policy: nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn apply(_policy: Scheduling) -> std::io::Result<()> {
    Ok(())
}
