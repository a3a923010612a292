use super::*;
use serde_json::json;

fn event(kind: &str, user: &str) -> AuditEvent {
    AuditEvent {
        user: Some(user.into()),
        src_ip: Some("192.0.2.1".into()),
        ..AuditEvent::new(kind, "2025-01-31T12:00:00.123Z")
    }
}

/// Five sealed events as lines, and the state after them.
fn chain() -> (Vec<String>, ChainState) {
    let mut state = ChainState::default();
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let lines = users
        .iter()
        .map(|user| {
            let e = event("login", user).with_field("method", "password").unwrap();
            state.append(e).unwrap().to_line()
        })
        .collect();
    (lines, state)
}

fn verify_lines(lines: &[String], start: Option<ChainState>) -> Verification {
    verify(lines.iter().map(String::as_str), start)
}

fn broken_at(v: &Verification) -> (u64, usize, &str) {
    match v {
        Verification::Broken { seq, line, reason } => (*seq, *line, reason.as_str()),
        ok => panic!("expected a broken chain, got {ok:?}"),
    }
}

#[test]
fn line_format_is_pinned() {
    let mut e = AuditEvent {
        seq: 1,
        node: Some("db-1".into()),
        session_id: Some("s-42".into()),
        ..event("session_start", "alice")
    };
    e = e.with_field("rows", json!({"b": 2, "a": [1, "x"]})).unwrap();
    let canonical = r#"{"node":"db-1","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","rows":{"a":[1,"x"],"b":2},"seq":1,"session_id":"s-42","src_ip":"192.0.2.1","time":"2025-01-31T12:00:00.123Z","type":"session_start","user":"alice"}"#;
    assert_eq!(String::from_utf8(e.canonical_bytes()).unwrap(), canonical);
    // sha256 of `canonical`, computed outside Rust.
    let hash = "10f5be1e428ad81d81fbf2b1332ce6f263c90d63093f235761087cc28fe016c4";
    let e = e.sealed().unwrap();
    assert_eq!(e.hash, hash);
    let line = e.to_line();
    assert_eq!(line, canonical.replacen("{", &format!(r#"{{"hash":"{hash}","#), 1));
    assert_eq!(AuditEvent::parse_line(&line).unwrap(), e);
}

#[test]
fn lines_round_trip() {
    let (lines, _) = chain();
    for line in &lines {
        let parsed = AuditEvent::parse_line(line).unwrap();
        assert_eq!(&parsed.to_line(), line);
        assert_eq!(parsed.compute_hash(), parsed.hash);
    }
    let bare = ChainState::default().append(AuditEvent::new("boot", "2025-01-31T00:00:00Z")).unwrap();
    assert!(!bare.to_line().contains("user"));
    assert_eq!(AuditEvent::parse_line(&bare.to_line()).unwrap(), bare);
}

#[test]
fn null_optional_reads_as_absent() {
    let e = ChainState::default().append(event("login", "alice")).unwrap();
    let line = e.to_line().replacen("{", r#"{"node":null,"#, 1);
    assert_eq!(AuditEvent::parse_line(&line).unwrap(), e);
}

#[test]
fn five_events_verify() {
    let (lines, state) = chain();
    assert_eq!(state.next_seq, 6);
    assert_eq!(verify_lines(&lines, None), Verification::Ok { events: 5, last: state });
    let text = lines.join("\n") + "\n";
    assert!(matches!(verify(text.split('\n'), None), Verification::Ok { events: 5, .. }));
}

#[test]
fn edited_field_breaks_at_its_seq() {
    let (mut lines, _) = chain();
    lines[2] = lines[2].replace("carol", "mallory");
    let v = verify_lines(&lines, None);
    assert_eq!(broken_at(&v), (3, 3, "hash does not match the event's content"));
}

#[test]
fn edited_hash_breaks() {
    let (mut lines, _) = chain();
    let e = AuditEvent::parse_line(&lines[2]).unwrap();
    lines[2] = lines[2].replace(&e.hash, &"a".repeat(64));
    assert_eq!(broken_at(&verify_lines(&lines, None)).0, 3);
}

#[test]
fn deleted_line_breaks() {
    let (mut lines, _) = chain();
    lines.remove(2);
    let v = verify_lines(&lines, None);
    assert_eq!(broken_at(&v), (3, 3, "expected seq 3, found 4"));
}

#[test]
fn deleted_line_renumbered_breaks() {
    let (mut lines, _) = chain();
    lines.remove(2);
    let mut next = AuditEvent::parse_line(&lines[2]).unwrap();
    next.seq = 3;
    lines[2] = next.sealed().unwrap().to_line();
    let v = verify_lines(&lines, None);
    assert_eq!(broken_at(&v).0, 3);
    assert!(broken_at(&v).2.contains("prev_hash"));
}

#[test]
fn swapped_lines_break_at_the_first() {
    let (mut lines, _) = chain();
    lines.swap(1, 2);
    let v = verify_lines(&lines, None);
    assert_eq!(broken_at(&v), (2, 2, "expected seq 2, found 3"));
}

#[test]
fn inserted_lines_break() {
    let (lines, _) = chain();
    let after_two = ChainState { next_seq: 3, last_hash: AuditEvent::parse_line(&lines[1]).unwrap().hash };
    // A forger without the rest of the chain: a well-sealed line pushes later seqs out.
    let forged = after_two.clone().append(event("login", "mallory")).unwrap().to_line();
    let mut inserted = lines.clone();
    inserted.insert(2, forged);
    assert_eq!(broken_at(&verify_lines(&inserted, None)), (4, 4, "expected seq 4, found 3"));
    // A copied line with a new name and its seq set to fit.
    let mut copy = AuditEvent::parse_line(&lines[1]).unwrap();
    copy.seq = 3;
    copy.user = Some("mallory".into());
    let mut inserted = lines.clone();
    inserted.insert(2, copy.to_line());
    assert_eq!(broken_at(&verify_lines(&inserted, None)).0, 3);
}

#[test]
fn garbage_line_breaks_with_reason() {
    let (mut lines, _) = chain();
    lines[2] = "not json at all".into();
    let v = verify_lines(&lines, None);
    let (seq, line, reason) = broken_at(&v);
    assert_eq!((seq, line), (3, 3));
    assert!(reason.starts_with("unreadable event: not JSON"), "{reason}");
    lines[2] = "[1,2]".into();
    assert!(broken_at(&verify_lines(&lines, None)).2.contains("not a JSON object"));
    lines[2] = r#"{"seq":3}"#.into();
    assert!(broken_at(&verify_lines(&lines, None)).2.contains("missing or mistyped"));
}

#[test]
fn empty_lines_are_skipped_but_counted() {
    let (mut lines, _) = chain();
    lines.insert(1, String::new());
    lines[3] = "{".into();
    let v = verify_lines(&lines, None);
    assert_eq!((broken_at(&v).0, broken_at(&v).1), (3, 4));
}

#[test]
fn continues_across_day_files() {
    let (lines, end) = chain();
    let (day1, day2) = lines.split_at(3);
    let Verification::Ok { events: 3, last } = verify_lines(day1, None) else {
        panic!("day 1 should verify");
    };
    assert_eq!(last.next_seq, 4);
    let v = verify_lines(day2, Some(last.clone()));
    assert_eq!(v, Verification::Ok { events: 2, last: end });
    let from_genesis = verify_lines(day2, None);
    assert_eq!(broken_at(&from_genesis), (1, 1, "expected seq 1, found 4"));
    let wrong = ChainState { last_hash: GENESIS_HASH.into(), ..last.clone() };
    assert!(broken_at(&verify_lines(day2, Some(wrong))).2.contains("prev_hash"));
    assert_eq!(verify_lines(&[], Some(last.clone())), Verification::Ok { events: 0, last });
}

#[test]
fn reserved_keys_are_refused() {
    for key in RESERVED_KEYS {
        let err = event("login", "a").with_field(key, "x").unwrap_err();
        assert!(matches!(err, AuditError::ReservedField(k) if k == key));
    }
    let mut e = event("login", "a");
    e.fields.insert("user".into(), json!("mallory"));
    assert!(matches!(e.sealed(), Err(AuditError::ReservedField(_))));
}

#[test]
fn floats_are_refused() {
    let err = event("login", "a").with_field("ratio", 0.5).unwrap_err();
    assert!(matches!(err, AuditError::FloatField(k) if k == "ratio"));
    let line = ChainState::default().append(event("login", "a")).unwrap().to_line();
    let line = line.replacen("{", r#"{"ratio":[1.5],"#, 1);
    assert!(matches!(AuditEvent::parse_line(&line), Err(AuditError::FloatField(_))));
}

#[test]
fn fixed_keys_are_typed() {
    let line = ChainState::default().append(event("login", "a")).unwrap().to_line();
    let cases = [
        (r#""seq":1"#, r#""seq":-1"#),
        (r#""seq":1"#, r#""seq":"1""#),
        (r#""user":"a""#, r#""user":7"#),
        ("2025-01-31T12:00:00.123Z", "yesterday"),
        (r#""prev_hash":"0"#, r#""prev_hash":"O"#),
    ];
    for (from, to) in cases {
        let edited = line.replace(from, to);
        assert_ne!(edited, line);
        assert!(AuditEvent::parse_line(&edited).is_err(), "{edited}");
    }
}

#[test]
fn rfc3339_times() {
    for ok in [
        "2025-01-31T12:00:00Z",
        "2025-01-31T12:00:00.1Z",
        "2025-01-31T23:59:60.123456789+05:30",
        "1999-12-31T00:00:00-00:00",
    ] {
        assert!(is_rfc3339(ok), "{ok}");
    }
    for bad in [
        "",
        "2025-01-31",
        "2025-01-31 12:00:00Z",
        "2025-13-01T12:00:00Z",
        "2025-01-00T12:00:00Z",
        "2025-01-31T24:00:00Z",
        "2025-01-31T12:00:00",
        "2025-01-31T12:00:00.Z",
        "2025-01-31T12:00:00+0530",
        "2025-01-31T12:00:00Zjunk",
        "2025-01-31T12:00:00+05:60",
        "２025-01-31T12:00:00Z",
    ] {
        assert!(!is_rfc3339(bad), "{bad}");
    }
    let err = AuditEvent::new("x", "now").sealed().unwrap_err();
    assert!(matches!(err, AuditError::BadTime(_)));
}
