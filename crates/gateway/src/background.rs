//! Background work that must not slow the relays: it runs on a thread of its own at the
//! lowest CPU priority.
//!
//! The recording indexer emulates a terminal over every byte a session printed. On a
//! busy gateway that competed with the relays for the same cores: a recorded 64 MiB
//! terminal transfer cost the gateway twice the CPU with the indexer running beside it.
//! At nice 19 the kernel gives such a thread about 1/70 of a core's share while relays
//! want the CPU, and all of whatever is idle.
//!
//! The crate's one exception to `deny(unsafe_code)`: setting a thread's priority is FFI.
#![allow(unsafe_code)]

use anyhow::Context;

/// The nice value background threads run at (the lowest priority).
pub const NICE: i32 = 19;

/// Runs `work` on a new thread named `name` at [`NICE`] and answers its result; an error
/// if the thread cannot start or `work` panicked.
pub async fn run<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_thread();
            let _ = done.send(work());
        })
        .with_context(|| format!("cannot start the {name} thread"))?;
    result.await.with_context(|| format!("the {name} thread failed"))
}

/// Lowers the calling thread's CPU priority to [`NICE`]; the process's other threads keep theirs.
fn lower_this_thread() {
    // On Linux the nice value belongs to a thread: PRIO_PROCESS with 0 names the caller alone.
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes no pointers; it only changes the calling thread's nice value.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) } != 0;
    #[cfg(not(target_os = "linux"))]
    let failed = false;
    if failed {
        // Raising one's own nice value needs no privilege; should it fail, the work still runs.
        tracing::debug!("cannot lower a background thread's priority: {}", std::io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of thread `tid` of this process, from /proc (field 19 of its stat).
    fn nice_of(tid: &str) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    fn this_tid() -> String {
        std::fs::read_link("/proc/thread-self").unwrap().file_name().unwrap().to_string_lossy().into_owned()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_work_runs_at_the_lowest_priority_and_no_other_thread_is_lowered() {
        let caller = this_tid();
        let before = nice_of(&caller);
        let (tid, nice, name) = run("test-background", || {
            let tid = this_tid();
            (tid.clone(), nice_of(&tid), std::thread::current().name().map(str::to_owned))
        })
        .await
        .unwrap();
        assert_ne!(tid, caller, "the work ran on the caller's thread");
        assert_eq!(nice, NICE);
        assert_eq!(name.as_deref(), Some("test-background"));
        assert_eq!(nice_of(&caller), before, "the caller's priority changed");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_not_a_hang() {
        let result: anyhow::Result<()> = run("test-panic", || panic!("boom")).await;
        assert!(format!("{:#}", result.unwrap_err()).contains("the test-panic thread failed"));
    }
}
