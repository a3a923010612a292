use super::encode::*;
use super::frame::{DATA, OPEN, STATUS, WRITE};
use super::track::{MAX_ENTRIES, MAX_TABLE_BYTES};
use super::*;

const RWCT: u32 = 0x1b;
const EOF: u32 = 1;
const NO_SUCH_FILE: u32 = 2;
const PERMISSION_DENIED: u32 = 3;

/// Who sent a packet.
enum Sent {
    User(Vec<u8>),
    Node(Vec<u8>),
}
use Sent::{Node, User};

/// Feeds each packet whole, in order; returns every event.
fn run(watcher: &mut SftpWatcher, packets: &[Sent]) -> Vec<FileEvent> {
    run_chunked(watcher, packets, usize::MAX)
}

/// Feeds each packet in chunks of `chunk` bytes.
fn run_chunked(watcher: &mut SftpWatcher, packets: &[Sent], chunk: usize) -> Vec<FileEvent> {
    let mut events = Vec::new();
    for packet in packets {
        let (bytes, user) = match packet {
            User(bytes) => (bytes, true),
            Node(bytes) => (bytes, false),
        };
        for part in bytes.chunks(chunk.min(bytes.len()).max(1)) {
            events.extend(if user { watcher.client_bytes(part) } else { watcher.server_bytes(part) });
        }
    }
    events
}

fn opened(path: &str, flags: u32, status: Status) -> FileEvent {
    FileEvent::Open { path: path.into(), flags: OpenFlags(flags), status }
}

fn path(p: &str) -> String {
    p.to_owned()
}

fn closed(path: &str, bytes_read: u64, bytes_written: u64, status: Status) -> FileEvent {
    FileEvent::Close { path: path.into(), bytes_read, bytes_written, status }
}

fn upload() -> Vec<Sent> {
    vec![
        User(init()),
        Node(version()),
        User(open(1, "/tmp/a", RWCT)),
        Node(handle(1, "h1")),
        User(write(2, "h1", 0, &[7; 1000])),
        User(write(3, "h1", 1000, &[7; 500])),
        Node(status(2, 0)),
        Node(status(3, 0)),
        User(close(4, "h1")),
        Node(status(4, 0)),
    ]
}

#[test]
fn open_write_close_byte_by_byte() {
    let mut watcher = SftpWatcher::new();
    let events = run_chunked(&mut watcher, &upload(), 1);
    assert_eq!(events, [opened("/tmp/a", RWCT, Status::Ok), closed("/tmp/a", 0, 1500, Status::Ok)]);
    assert!(watcher.finish().is_empty());
    assert!(!watcher.desynced());
}

#[test]
fn any_chunking_gives_the_same_events() {
    // Runs of packets from one side go in as one stream, so chunks straddle packets.
    let mut runs: Vec<Sent> = Vec::new();
    for packet in upload() {
        match (runs.last_mut(), packet) {
            (Some(User(run)), User(bytes)) | (Some(Node(run)), Node(bytes)) => run.extend(bytes),
            (_, packet) => runs.push(packet),
        }
    }
    assert_eq!(runs.len(), 8);
    for chunk in [2, 3, 7, 64, 1009, 4096] {
        let mut watcher = SftpWatcher::new();
        let events = run_chunked(&mut watcher, &runs, chunk);
        assert_eq!(events, [opened("/tmp/a", RWCT, Status::Ok), closed("/tmp/a", 0, 1500, Status::Ok)], "{chunk}");
    }
}

#[test]
fn reads_count_data_replies() {
    let mut watcher = SftpWatcher::new();
    let events = run(
        &mut watcher,
        &[
            User(open(1, "/etc/hosts", 0x1)),
            Node(handle(1, "h")),
            User(read(2, "h", 0, 100)),
            User(read(3, "h", 100, 100)),
            User(read(4, "h", 200, 100)),
            Node(data(2, &[1; 100])),
            Node(data(3, &[1; 50])),
            Node(status(4, EOF)),
            User(close(5, "h")),
            Node(status(5, 0)),
        ],
    );
    assert_eq!(events, [opened("/etc/hosts", 0x1, Status::Ok), closed("/etc/hosts", 150, 0, Status::Ok)]);
}

#[test]
fn refused_open() {
    let mut watcher = SftpWatcher::new();
    let events = run(&mut watcher, &[User(open(1, "/root/x", 0x1)), Node(status(1, PERMISSION_DENIED))]);
    assert_eq!(events, [opened("/root/x", 0x1, Status::Error(PERMISSION_DENIED))]);
    assert_eq!(events[0].fields().last(), Some(&("status", "error code 3".into())));
    assert!(watcher.finish().is_empty());
}

#[test]
fn path_operations_report_the_reply_status() {
    let cases: [(Vec<u8>, fn(Status) -> FileEvent); 5] = [
        (remove(7, "/a"), |status| FileEvent::Remove { path: path("/a"), status }),
        (rename(7, "/a", "/b"), |status| FileEvent::Rename { path: path("/a"), new_path: path("/b"), status }),
        (mkdir(7, "/d"), |status| FileEvent::Mkdir { path: path("/d"), status }),
        (rmdir(7, "/d"), |status| FileEvent::Rmdir { path: path("/d"), status }),
        (chmod(7, "/a", 0o100644), |status| FileEvent::Setstat { path: path("/a"), attrs: path("mode=0644"), status }),
    ];
    for (request, expected) in cases {
        for (code, answer) in [(0, Status::Ok), (NO_SUCH_FILE, Status::Error(NO_SUCH_FILE))] {
            let mut watcher = SftpWatcher::new();
            assert!(watcher.client_bytes(&request).is_empty(), "events wait for the reply");
            assert_eq!(watcher.server_bytes(&status(7, code)), [expected(answer)]);
            assert!(watcher.finish().is_empty());
        }
    }
}

#[test]
fn openssh_extensions() {
    let mut watcher = SftpWatcher::new();
    let lsetstat = Packet::new(200).u32(3).string("lsetstat@openssh.com").string("/l").u32(0x2).u32(0).u32(0);
    let events = run(
        &mut watcher,
        &[
            User(extended(1, "posix-rename@openssh.com", "/old", "/new")),
            User(extended(2, "hardlink@openssh.com", "/old", "/link")),
            User(lsetstat.build()),
            Node(status(1, 0)),
            Node(status(2, 0)),
            Node(status(3, 0)),
        ],
    );
    let rename = FileEvent::Rename { path: "/old".into(), new_path: "/new".into(), status: Status::Ok };
    let setstat = FileEvent::Setstat { path: "/l".into(), attrs: "uid=0,gid=0".into(), status: Status::Ok };
    assert_eq!(events, [rename, setstat]);
}

#[test]
fn fsetstat_names_the_open_file() {
    let mut watcher = SftpWatcher::new();
    let events = run(
        &mut watcher,
        &[User(open(1, "/f", 0x2)), Node(handle(1, "h")), User(fchmod(2, "h", 0o600)), Node(status(2, 0))],
    );
    assert_eq!(events[1], FileEvent::Setstat { path: "/f".into(), attrs: "mode=0600".into(), status: Status::Ok });
}

#[test]
fn attrs_are_described() {
    let attrs = Packet::new(9).u32(1).string("/x").u32(0xf).u64(10).u32(0).u32(50).u32(0o4755).u32(1).u32(2);
    let mut watcher = SftpWatcher::new();
    let events = run(&mut watcher, &[User(attrs.build()), Node(status(1, 0))]);
    let FileEvent::Setstat { attrs, .. } = &events[0] else { panic!("{events:?}") };
    assert_eq!(attrs, "size=10,uid=0,gid=50,mode=4755,atime=1,mtime=2");
}

#[test]
fn finish_reports_unanswered_and_open() {
    let mut watcher = SftpWatcher::new();
    let packets = [
        User(open(1, "/one", 0x2)),
        Node(handle(1, "a")),
        User(open(2, "/two", 0x1)),
        Node(handle(2, "b")),
        User(write(3, "a", 0, b"abc")),
        User(remove(4, "/gone")),
        User(close(5, "b")),
    ];
    assert_eq!(run(&mut watcher, &packets).len(), 2);
    let gone = FileEvent::Remove { path: "/gone".into(), status: Status::ChannelClosed };
    let expected = [gone, closed("/one", 0, 3, Status::ChannelClosed), closed("/two", 0, 0, Status::ChannelClosed)];
    assert_eq!(watcher.finish(), expected);
    assert!(watcher.finish().is_empty());
    assert_eq!(expected[1].fields().last(), Some(&("status", "channel closed".into())));
}

#[test]
fn close_error_still_ends_the_handle() {
    let mut watcher = SftpWatcher::new();
    let packets = [User(open(1, "/f", 0x2)), Node(handle(1, "h")), User(close(2, "h")), Node(status(2, 4))];
    assert_eq!(run(&mut watcher, &packets)[1], closed("/f", 0, 0, Status::Error(4)));
    assert!(watcher.finish().is_empty());
}

#[test]
fn directories_and_untracked_requests_are_silent() {
    let mut watcher = SftpWatcher::new();
    let opendir = Packet::new(11).u32(1).string("/home").build();
    let readdir = Packet::new(12).u32(2).string("d").build();
    let name = Packet::new(104).u32(2).u32(1).string("f").string("-rw f").u32(0).build();
    let stat = Packet::new(17).u32(4).string("/home").build();
    let attrs = Packet::new(105).u32(4).u32(0).build();
    let packets = [
        User(opendir),
        Node(handle(1, "d")),
        User(readdir),
        Node(name),
        User(read(9, "d", 0, 10)),
        User(write(10, "d", 0, b"x")),
        User(close(3, "d")),
        Node(status(3, 0)),
        User(stat),
        Node(attrs),
    ];
    assert!(run(&mut watcher, &packets).is_empty());
    assert!(watcher.finish().is_empty());
}

#[test]
fn wrong_reply_type_is_unknown() {
    let mut watcher = SftpWatcher::new();
    let events = run(&mut watcher, &[User(remove(1, "/a")), Node(data(1, b"?"))]);
    assert_eq!(events, [FileEvent::Remove { path: "/a".into(), status: Status::Unknown }]);
}

#[test]
fn reused_handle_closes_the_old_file() {
    let mut watcher = SftpWatcher::new();
    let packets = [User(open(1, "/a", 1)), Node(handle(1, "h")), User(open(2, "/b", 1)), Node(handle(2, "h"))];
    let events = run(&mut watcher, &packets);
    assert_eq!(events[1], closed("/a", 0, 0, Status::Unknown));
    assert_eq!(events[2], opened("/b", 1, Status::Ok));
}

#[test]
fn non_utf8_paths_are_lossy() {
    let mut watcher = SftpWatcher::new();
    let events = run(&mut watcher, &[User(open(1, b"/tmp/\xffx", 1)), Node(status(1, NO_SUCH_FILE))]);
    assert_eq!(events[0].path(), "/tmp/\u{fffd}x");
}

#[test]
fn big_writes_and_reads_are_counted_not_buffered() {
    let mut watcher = SftpWatcher::new();
    run(&mut watcher, &[User(open(1, "/big", 0x3)), Node(handle(1, "h"))]);
    let payload = vec![0xab; 256 * 1024];
    for chunk in write(2, "h", 0, &payload).chunks(1000) {
        watcher.client_bytes(chunk);
        assert!(watcher.client.buffered() <= 512, "{}", watcher.client.buffered());
    }
    watcher.client_bytes(&read(3, "h", 0, 256 * 1024));
    for chunk in data(3, &payload).chunks(1000) {
        watcher.server_bytes(chunk);
        assert!(watcher.server.buffered() <= 512, "{}", watcher.server.buffered());
    }
    assert_eq!(watcher.finish(), [closed("/big", 256 * 1024, 256 * 1024, Status::ChannelClosed)]);
}

#[test]
fn declared_lengths_past_the_packet_count_what_it_holds() {
    let mut watcher = SftpWatcher::new();
    run(&mut watcher, &[User(open(1, "/f", 3)), Node(handle(1, "h")), User(read(2, "h", 0, 9))]);
    let write = Packet::new(WRITE).u32(3).string("h").u64(0).u32(1_000_000).raw(b"abc").build();
    let data = Packet::new(DATA).u32(2).u32(1_000_000).raw(b"xy").build();
    run(&mut watcher, &[User(write), Node(data)]);
    assert_eq!(watcher.finish(), [closed("/f", 2, 3, Status::ChannelClosed)]);
}

#[test]
fn long_open_keeps_only_its_head() {
    let mut watcher = SftpWatcher::new();
    let open = Packet::new(OPEN).u32(1).string("/p").u32(1).raw(&[0; 100_000]).build();
    let events = run(&mut watcher, &[User(open), User(remove(2, "/r")), Node(status(1, 0)), Node(status(2, 0))]);
    assert_eq!(events.len(), 2);
    assert!(watcher.client.buffered() < 17 * 1024);
}

#[test]
fn oversized_length_desyncs_that_direction_only() {
    let mut watcher = SftpWatcher::new();
    watcher.client_bytes(&remove(1, "/kept"));
    let header = [&(MAX_PACKET_LEN + 1).to_be_bytes()[..], &[WRITE]].concat();
    assert!(watcher.client_bytes(&header).is_empty());
    assert!(watcher.desynced());
    for _ in 0..64 {
        assert!(watcher.client_bytes(&[0x41; 64 * 1024]).is_empty());
        assert!(watcher.client_bytes(&remove(9, "/ignored")).is_empty());
    }
    assert_eq!(watcher.client.buffered(), 0);
    let events = watcher.server_bytes(&status(1, 0));
    assert_eq!(events, [FileEvent::Remove { path: "/kept".into(), status: Status::Ok }]);
    assert!(watcher.server_bytes(&status(9, 0)).is_empty());
}

#[test]
fn max_length_is_followed() {
    let mut watcher = SftpWatcher::new();
    let header = [&MAX_PACKET_LEN.to_be_bytes()[..], &[STATUS]].concat();
    watcher.server_bytes(&header);
    watcher.server_bytes(&vec![0; MAX_PACKET_LEN as usize - 1]);
    assert!(!watcher.desynced());
    watcher.client_bytes(&mkdir(1, "/d"));
    assert_eq!(watcher.server_bytes(&status(1, 0)).len(), 1);
}

#[test]
fn zero_length_desyncs() {
    let mut watcher = SftpWatcher::new();
    watcher.server_bytes(&[0, 0, 0, 0, STATUS, 0, 0, 0, 1]);
    assert!(watcher.desynced());
}

#[test]
fn short_bodies_are_skipped_without_desync() {
    let mut watcher = SftpWatcher::new();
    let truncated_open = Packet::new(OPEN).u32(1).u32(50).raw(b"/p").build();
    let bare_status = Packet::new(STATUS).u32(2).build();
    let events =
        run(&mut watcher, &[User(truncated_open), User(rmdir(2, "/d")), Node(bare_status), Node(status(1, 0))]);
    assert_eq!(events, [FileEvent::Rmdir { path: "/d".into(), status: Status::Unknown }]);
    assert!(!watcher.desynced());
}

#[test]
fn tables_are_capped() {
    let mut watcher = SftpWatcher::new();
    for id in 0..MAX_ENTRIES as u32 + 100 {
        watcher.client_bytes(&open(id, "/f", 1));
    }
    assert_eq!(watcher.tracker.tracked().0, MAX_ENTRIES);
    let mut watcher = SftpWatcher::new();
    let long = "x".repeat(4000);
    for id in 0..2000 {
        watcher.client_bytes(&rename(id, &long, &long));
    }
    let (entries, bytes, ..) = watcher.tracker.tracked();
    assert!(entries < 2000 && bytes <= MAX_TABLE_BYTES, "{entries} {bytes}");
    for id in 0..2000 {
        watcher.server_bytes(&status(id, 0));
    }
    assert_eq!(watcher.tracker.tracked(), (0, 0, 0, 0));
}

#[test]
fn flags_read_as_words() {
    assert_eq!(OpenFlags(0x1b).to_string(), "read,write,creat,trunc");
    assert_eq!(OpenFlags(0x26).to_string(), "write,append,excl");
    assert_eq!(OpenFlags(0x41).to_string(), "read,0x40");
    assert_eq!(OpenFlags(0).to_string(), "none");
}

#[test]
fn kinds_and_fields() {
    let close = closed("/f", 1, 2, Status::Ok);
    assert_eq!(close.kind(), "file.close");
    let fields = close.fields();
    let expected: Vec<(&str, Value)> =
        vec![("path", "/f".into()), ("bytes_read", 1.into()), ("bytes_written", 2.into()), ("status", "ok".into())];
    assert_eq!(fields, expected);
    assert_eq!(opened("/f", 0x1b, Status::Ok).fields()[1], ("flags", "read,write,creat,trunc".into()));
    let rename = FileEvent::Rename { path: "/a".into(), new_path: "/b".into(), status: Status::Error(4) };
    assert_eq!(rename.kind(), "file.rename");
    assert_eq!(rename.fields()[1..], [("new_path", "/b".into()), ("status", "error code 4".into())]);
    let kinds = [
        FileEvent::Remove { path: String::new(), status: Status::Ok }.kind(),
        FileEvent::Mkdir { path: String::new(), status: Status::Ok }.kind(),
        FileEvent::Rmdir { path: String::new(), status: Status::Ok }.kind(),
        FileEvent::Setstat { path: String::new(), attrs: String::new(), status: Status::Ok }.kind(),
        opened("", 0, Status::Ok).kind(),
    ];
    assert_eq!(kinds, ["file.remove", "file.mkdir", "file.rmdir", "file.setstat", "file.open"]);
}
