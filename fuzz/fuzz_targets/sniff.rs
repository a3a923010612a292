//! The connection sniffer: any bytes get a verdict, and a verdict never changes as more arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::sniff::{SNIFF_MAX, Sniff, sniff};

fuzz_target!(|data: &[u8]| {
    let verdict = sniff(data);
    if data.len() >= SNIFF_MAX {
        assert_ne!(verdict, Sniff::Need, "{SNIFF_MAX} bytes must always decide");
    }
    // Every prefix either needed more or already said the same thing.
    for len in 0..data.len().min(SNIFF_MAX + 1) {
        let earlier = sniff(&data[..len]);
        assert!(earlier == Sniff::Need || earlier == verdict, "{:?}: {earlier:?} then {verdict:?}", &data[..len]);
    }
});
