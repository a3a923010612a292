//! Node labels and the name rule: `labels::parse` accepts only what `check` accepts, and
//! a map of checked labels written as `k=v` items parses back to itself.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use portcullis_proto::labels::{self, MAX_KEY, MAX_VALUE};
use portcullis_proto::name::{self, MAX_LEN};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Items as `--labels a=1,b=2` gives them (the CLI splits on commas), and by line.
    for items in [text.split(',').collect::<Vec<_>>(), text.lines().collect()] {
        if let Ok(map) = labels::parse(&items) {
            for (key, value) in &map {
                assert!(labels::check(key, value).is_ok(), "{key:?}={value:?}");
                assert!(key.len() <= MAX_KEY && value.len() <= MAX_VALUE);
            }
            let written: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
            assert_eq!(labels::parse(&written).as_ref(), Ok(&map));
        }
    }

    // Pairs from the input that pass check: written and parsed, they come back unchanged,
    // except that items are trimmed, so a value's edge spaces do not survive.
    let mut checked = BTreeMap::new();
    for item in text.split('\n') {
        if let Some((key, value)) = item.split_once('=')
            && labels::check(key, value).is_ok()
            && value.trim() == value
        {
            checked.insert(key.to_owned(), value.to_owned());
        }
    }
    let written: Vec<String> = checked.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(labels::parse(&written), Ok(checked));

    for word in text.split(['@', '\n', ' ']) {
        let valid = name::is_valid(word);
        let rule = (1..=MAX_LEN).contains(&word.len())
            && word.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            && !word.starts_with(['.', '-']);
        assert_eq!(valid, rule, "{word:?}");
    }
});
