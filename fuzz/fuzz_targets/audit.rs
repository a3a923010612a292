//! The audit log: the verifier reads any lines without panicking, a readable line writes
//! back to one that reads the same, and a chain we seal always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::audit::{AuditEvent, ChainState, Verification, verify};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    match verify(lines.iter().copied(), None) {
        Verification::Ok { events, last } => {
            assert!(events <= lines.iter().filter(|l| !l.is_empty()).count() as u64);
            assert_eq!(last.next_seq, events + 1);
        }
        Verification::Broken { line, .. } => assert!((1..=lines.len()).contains(&line)),
    }

    let mut state = ChainState::default();
    let mut sealed = Vec::new();
    for line in lines.iter().take(32) {
        let Ok(event) = AuditEvent::parse_line(line) else { continue };
        let again = AuditEvent::parse_line(&event.to_line()).expect("a written line reads back");
        assert_eq!(again, event);
        let event = state.append(event).expect("a readable event can be sealed");
        sealed.push(event.to_line());
    }
    let verdict = verify(sealed.iter().map(String::as_str), None);
    assert_eq!(verdict, Verification::Ok { events: sealed.len() as u64, last: state });
});
