//! Giving freed heap back to the system.
//!
//! glibc keeps what a burst of sessions freed (their buffers, their handshakes) in its
//! arenas, so a gateway that held a thousand sessions would stay at that size once they
//! end. A periodic `malloc_trim(0)` returns the free pages; it walks only free chunks,
//! a fraction of a millisecond on an idle gateway's heap.
//!
//! This is the binary's one exception to `deny(unsafe_code)`: the call is FFI.
#![allow(unsafe_code)]

use std::time::Duration;

/// How often free heap is handed back.
const EVERY: Duration = Duration::from_secs(10);

/// Trims the heap every [`EVERY`] for as long as the runtime runs.
pub fn spawn_periodic() {
    tokio::spawn(async {
        let mut interval = tokio::time::interval(EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            release_free_heap();
        }
    });
}

/// Returns free heap pages to the system now.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe; it only releases
    // memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
