//! Fuzz-style tests: pseudo-random input never panics and never grows the buffers.

use super::SftpWatcher;
use super::packet::Packet;

/// xorshift64*: deterministic pseudo-random numbers for the fuzz loops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Up to `max - 1` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Feeds `bytes` in random chunks to one side; checks memory stays within the largest head.
fn feed_randomly(watcher: &mut SftpWatcher, rng: &mut Rng, bytes: &[u8], user: bool) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (part, tail) = rest.split_at(rest.len().min(1 + rng.below(300)));
        rest = tail;
        let _ = if user { watcher.client_bytes(part) } else { watcher.server_bytes(part) };
        assert!(watcher.client.buffered() < 17 * 1024 && watcher.server.buffered() < 17 * 1024);
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let mut watcher = SftpWatcher::new();
        for _ in 0..4 {
            let garbage = rng.bytes(2000);
            let user = rng.below(2) == 0;
            feed_randomly(&mut watcher, &mut rng, &garbage, user);
        }
        watcher.finish();
    }
}

#[test]
fn plausible_garbage_packets_never_panic() {
    // Well-framed packets of real types with random bodies reach the field parsers.
    const TYPES: [u8; 14] = [1, 3, 4, 5, 6, 9, 10, 13, 14, 18, 200, 101, 102, 103];
    let mut rng = Rng(42);
    let mut reported = 0;
    for _ in 0..100 {
        let mut watcher = SftpWatcher::new();
        for _ in 0..50 {
            let kind = TYPES[rng.below(TYPES.len())];
            let mut body = Packet::new(kind).u32(rng.below(8) as u32);
            if rng.below(2) == 0 {
                body = body.string(rng.bytes(3));
            }
            let packet = body.raw(&rng.bytes(40)).build();
            feed_randomly(&mut watcher, &mut rng, &packet, kind < 100 || kind == 200);
        }
        assert!(!watcher.desynced());
        reported += watcher.finish().len();
    }
    assert!(reported > 0, "the bodies should sometimes parse");
}
