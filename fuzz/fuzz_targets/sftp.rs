//! SFTP: the audit watcher fed arbitrary client and server streams in arbitrary chunks,
//! and the gateway's own reply framer fed the server's stream.
//!
//! Input: records of `[direction: u8][len: u16 BE][bytes]`; an odd direction byte is the
//! server. However the records cut the streams, the events must be the same as when
//! every byte comes alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::sftp::client::{Replies, Reply};
use portcullis_proto::sftp::{FileEvent, SftpWatcher};

/// One record: which side sent it, and its bytes.
fn records(mut data: &[u8]) -> Vec<(bool, &[u8])> {
    let mut out = Vec::new();
    while let [dir, hi, lo, rest @ ..] = data {
        let (chunk, tail) = rest.split_at(rest.len().min(usize::from(u16::from_be_bytes([*hi, *lo]))));
        out.push((dir & 1 == 1, chunk));
        data = tail;
    }
    out
}

fn watch(records: &[(bool, &[u8])], bytewise: bool) -> (Vec<FileEvent>, bool) {
    let mut watcher = SftpWatcher::new();
    let mut events = Vec::new();
    for (server, chunk) in records {
        let step = if bytewise { 1 } else { chunk.len().max(1) };
        for part in chunk.chunks(step) {
            events.extend(if *server { watcher.server_bytes(part) } else { watcher.client_bytes(part) });
        }
    }
    let desynced = watcher.desynced();
    events.extend(watcher.finish());
    (events, desynced)
}

fn replies(records: &[(bool, &[u8])], bytewise: bool) -> Vec<Result<Reply, String>> {
    let mut framer = Replies::default();
    let mut out = Vec::new();
    for (_, chunk) in records.iter().filter(|(server, _)| *server) {
        let step = if bytewise { 1 } else { chunk.len().max(1) };
        for part in chunk.chunks(step) {
            framer.feed(part);
            loop {
                match framer.next_reply() {
                    Ok(Some(reply)) => out.push(Ok(reply)),
                    Ok(None) => break,
                    // The stream is unreadable from here on.
                    Err(err) => {
                        out.push(Err(err.to_string()));
                        return out;
                    }
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let records = records(data);
    let (events, desynced) = watch(&records, false);
    for event in &events {
        assert!(!event.kind().is_empty());
        assert_eq!(event.fields().first().map(|(key, _)| *key), Some("path"));
    }
    assert_eq!(watch(&records, true), (events, desynced), "events depend on how the stream was cut");
    assert_eq!(replies(&records, false), replies(&records, true), "replies depend on how the stream was cut");
});
