//! Giving freed heap back to the system.
//!
//! glibc keeps what a burst of sessions freed (their buffers, their handshakes) in its
//! arenas, so a gateway that held a thousand sessions would stay at that size once they
//! end. A periodic `malloc_trim(0)` returns the free pages; it walks only free chunks,
//! a fraction of a millisecond on an idle gateway's heap.
//!
//! Between trims, glibc's own trimming is held back: by default it hands the top of an
//! arena back as soon as 128 KiB of it is free, and a relay allocates and frees a packet
//! buffer per SSH packet, so each packet's buffer faulted its pages in afresh (page
//! faults, zeroing, cgroup accounting: 12-15 % of the gateway's CPU in a bulk transfer).
//!
//! This is the binary's one exception to `deny(unsafe_code)`: the call is FFI.
#![allow(unsafe_code)]

use std::time::Duration;

/// How often free heap is handed back.
const EVERY: Duration = Duration::from_secs(10);
/// Free heap at an arena's top that glibc keeps between trims.
const KEEP_BETWEEN_TRIMS: i32 = 8 << 20;

/// Trims the heap every [`EVERY`] for as long as the runtime runs, and leaves free heap
/// alone in between.
pub fn spawn_periodic() {
    keep_free_heap_between_trims();
    tokio::spawn(async {
        let mut interval = tokio::time::interval(EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            release_free_heap();
        }
    });
}

/// Raises glibc's trim threshold to [`KEEP_BETWEEN_TRIMS`] (this also fixes its mmap
/// threshold at the default 128 KiB instead of letting it grow).
fn keep_free_heap_between_trims() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers and only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_BETWEEN_TRIMS);
    }
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
