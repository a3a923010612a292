//! The relay: user side ⇄ node channel, with the recorder and the SFTP watcher as taps.
//!
//! The user side is anything implementing [`UserIn`] and [`UserOut`] (an SSH channel, a
//! web terminal), so every interactive byte takes this one path.
//!
//! The two directions run as independent pumps so a full window one way never stalls
//! the other. Each pump awaits the far side's window before reading more, and russh's
//! channel buffers are bounded, so memory per session stays bounded whatever the two
//! sides' speeds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use portcullis_proto::sftp::{FileEvent, SftpWatcher};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client};

use super::user_side::{UserIn, UserInput, UserOut};

use crate::audit::Event;
use crate::gateway::Gateway;
use crate::recording::Recording;
use crate::sessions::Live;

/// The one message a user sees when the gateway ends their session.
pub const CLOSED_BY_GATEWAY: &[u8] = b"\r\nsession closed by gateway\r\n";
/// What a user sees when the node's side of the session vanished.
pub const NODE_LOST: &[u8] = b"\r\nportcullis: the connection to the node was lost\r\n";
/// How long the node may take to report an exit status after the user's side went away.
const USER_GONE_GRACE: Duration = Duration::from_secs(2);
/// How soon after a recording sees something it is flushed to disk. An idle session's
/// ticker sleeps until then, so a thousand idle sessions cost no wake-ups.
const TICK: Duration = Duration::from_millis(500);

/// Output waiting from the node is joined into chunks of at most this (OpenSSH's packet size).
const GATHER: usize = 32 * 1024;
/// A terminal's chunk of output at least this large, with room for as much again, is bulk
/// output (a build log, `cat` of a file): it waits up to [`LINGER`] for more to join it.
/// A keystroke's echo, or a prompt, is smaller and goes on at once.
const LINGER_FROM: usize = 1024;
/// How long bulk output waits for more: a terminal shows nothing faster than its frame
/// rate (~16 ms), and a pty on the node yields 4 KiB per read.
const LINGER: Duration = Duration::from_millis(1);

/// What the relay needs besides the two channels.
pub struct Relay {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The live session (watchers, kill).
    pub live: Arc<Live>,
    /// The recording, when the session is recorded.
    pub recording: Option<Recording>,
    /// Present for the sftp subsystem.
    pub sftp: Option<SftpWatcher>,
    /// Longest the session may last.
    pub max_session: Option<Duration>,
    /// The session has a terminal: its bulk output may linger (see [`LINGER`]). Other
    /// sessions may carry a request-response protocol (git, rsync, SFTP), whose every
    /// round trip would wait.
    pub terminal: bool,
}

/// How the session ended.
#[derive(Default)]
pub struct Outcome {
    /// Exit status the node reported.
    pub exit_status: Option<u32>,
    /// Exit signal the node reported.
    pub exit_signal: Option<String>,
    /// Why the gateway ended it, if it did.
    pub ended_by_gateway: Option<&'static str>,
    /// The connection to the node went away without the channel closing.
    pub node_lost: bool,
    /// Whether writing the recording failed.
    pub recording_failed: bool,
}

struct Taps {
    recording: Option<Recording>,
    recording_failed: bool,
    sftp: Option<SftpWatcher>,
    /// The ticker has been told of unflushed recording data.
    armed: bool,
}

impl Taps {
    /// Feeds the recording, if the session has one: a failure is remembered, and the
    /// ticker is told there is something to flush (once per tick).
    fn record(&mut self, ticker: &tokio::sync::Notify, write: impl FnOnce(&mut Recording) -> std::io::Result<()>) {
        let Some(recording) = self.recording.as_mut() else { return };
        self.recording_failed |= write(recording).is_err();
        if !self.armed {
            self.armed = true;
            ticker.notify_one();
        }
    }

    /// Writes what the recording has seen out to its file (the ticker's next wake-up is
    /// needed again for more); true once writing the recording has failed.
    fn write_out(&mut self) -> bool {
        self.armed = false;
        if let Some(recording) = self.recording.as_mut() {
            self.recording_failed |= recording.tick().is_err();
        }
        self.recording_failed
    }
}

/// Runs the session until either side closes, the gateway kills it, or it times out.
pub async fn run(
    relay: Relay,
    mut user_rx: impl UserIn,
    user_tx: impl UserOut,
    node: (ChannelReadHalf, ChannelWriteHalf<client::Msg>),
) -> Outcome {
    let (mut node_rx, node_tx) = node;
    if let Some(recording) = &relay.recording {
        relay.live.set_recording(recording.mark());
    }
    let fail_closed = relay.gateway.config.recordings.fail_closed;
    let terminal = relay.terminal;
    let taps = Arc::new(Mutex::new(Taps {
        recording: relay.recording,
        recording_failed: false,
        sftp: relay.sftp,
        armed: false,
    }));
    let wake = Arc::new(tokio::sync::Notify::new());
    let gateway = relay.gateway.clone();
    let live = relay.live.clone();

    let user_closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut outcome = {
        let up = {
            let user_closed = user_closed.clone();
            let taps = taps.clone();
            let gateway = gateway.clone();
            let live = live.clone();
            let wake = wake.clone();
            async move {
                while let Some(input) = user_rx.recv().await {
                    let sent = match input {
                        UserInput::Data(data) => {
                            live.input(data.len());
                            let events = tap(&taps, |t| {
                                t.record(&wake, |r| r.input(&data));
                                t.sftp.as_mut().map(|s| s.client_bytes(&data)).unwrap_or_default()
                            });
                            audit_files(&gateway, &live, events).await;
                            node_tx.data_bytes(data).await
                        }
                        UserInput::Eof => node_tx.eof().await,
                        UserInput::Resize { cols, rows, pix_width, pix_height } => {
                            live.set_size(cols, rows);
                            tap(&taps, |t| {
                                t.record(&wake, |r| r.resize(cols as u16, rows as u16));
                            });
                            node_tx.window_change(cols, rows, pix_width, pix_height).await
                        }
                        UserInput::Signal(signal) => node_tx.signal(signal).await,
                        UserInput::Ignored => Ok(()),
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                user_closed.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = node_tx.close().await;
            }
        };

        let down = {
            let taps = taps.clone();
            let gateway = gateway.clone();
            let live = live.clone();
            let user_tx = &user_tx;
            let wake = wake.clone();
            async move {
                let mut outcome = Outcome::default();
                // Whether the channel ended as channels do: a Close, or the user's side failing.
                let mut ended = false;
                // A message taken while gathering output, handled next.
                let mut next = None;
                // The node's stream ended while output lingered: send that, then stop.
                let mut drained = false;
                loop {
                    let msg = match next.take() {
                        Some(msg) => msg,
                        None if drained => break,
                        None => match node_rx.wait().await {
                            Some(msg) => msg,
                            None => break,
                        },
                    };
                    let sent = match msg {
                        ChannelMsg::Data { data } => {
                            let mut data = gather(data, || node_rx.ready(), &mut next);
                            if terminal && next.is_none() && lingers(data.len()) {
                                (data, drained) = linger(data, &mut node_rx, &mut next).await;
                            }
                            live.output(&data);
                            let events = tap(&taps, |t| {
                                t.record(&wake, |r| r.output(&data));
                                t.sftp.as_mut().map(|s| s.server_bytes(&data)).unwrap_or_default()
                            });
                            audit_files(&gateway, &live, events).await;
                            user_tx.data(data).await
                        }
                        ChannelMsg::ExtendedData { data, .. } => {
                            live.output(&data);
                            tap(&taps, |t| {
                                t.record(&wake, |r| r.output(&data));
                            });
                            user_tx.stderr(data).await
                        }
                        ChannelMsg::Eof => user_tx.eof().await,
                        ChannelMsg::ExitStatus { exit_status } => {
                            outcome.exit_status = Some(exit_status);
                            user_tx.exit_status(exit_status).await
                        }
                        ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, .. } => {
                            outcome.exit_signal = Some(format!("{signal_name:?}"));
                            user_tx.exit_signal(signal_name, core_dumped, error_message).await
                        }
                        ChannelMsg::Close => {
                            ended = true;
                            break;
                        }
                        _ => Ok(()),
                    };
                    if sent.is_err() {
                        ended = true;
                        break;
                    }
                }
                // Our own close (the user went first) also ends the node's stream without a Close.
                let user_went_first = user_closed.load(std::sync::atomic::Ordering::Relaxed);
                outcome.node_lost =
                    !ended && !user_went_first && outcome.exit_status.is_none() && outcome.exit_signal.is_none();
                outcome
            }
        };

        let ticker = {
            let taps = taps.clone();
            async move {
                loop {
                    wake.notified().await;
                    tokio::time::sleep(TICK).await;
                    let failed = tap(&taps, Taps::write_out);
                    if failed && fail_closed {
                        return "recording failed";
                    }
                }
            }
        };
        let deadline = async {
            match relay.max_session {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };

        // When the user's side ends first, russh drops the node channel on our close and
        // never reports the node's close: wait briefly for an exit status, then stop.
        let user_gone = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(up, down, ticker, deadline, user_gone);
        let mut up_done = false;
        loop {
            tokio::select! {
                // A kill wins over anything that became ready with it (a lock also closes
                // the user's pooled node connections, which ends `down`).
                biased;
                () = live.killed() => break Outcome { ended_by_gateway: Some("killed"), ..Default::default() },
                outcome = &mut down => break outcome,
                () = &mut up, if !up_done => {
                    up_done = true;
                    user_gone.as_mut().reset(tokio::time::Instant::now() + USER_GONE_GRACE);
                }
                () = &mut user_gone, if up_done => break Outcome::default(),
                reason = &mut ticker => break Outcome { ended_by_gateway: Some(reason), ..Default::default() },
                () = &mut deadline => break Outcome { ended_by_gateway: Some("max_session"), ..Default::default() },
            }
        }
    };
    // Everything seen goes to the file before anything waits on the user's side (a client
    // that stopped reading): a player following the recording counts on that.
    tap(&taps, Taps::write_out);
    if outcome.node_lost {
        let _ = user_tx.stderr(bytes::Bytes::from_static(NODE_LOST)).await;
    }
    if outcome.ended_by_gateway.is_some() {
        let _ = user_tx.stderr(bytes::Bytes::from_static(CLOSED_BY_GATEWAY)).await;
        let _ = user_tx.eof().await;
    }
    // The recording is finished before the user's side closes: whoever saw the session
    // end finds its recording complete, never still running.
    let (recording, failed) = tap(&taps, |t| (t.recording.take(), t.recording_failed));
    if let Some(recording) = recording
        && let Err(err) = recording.finish(&gateway.store).await
    {
        tracing::error!("cannot finish the recording: {err:#}");
    }
    user_tx.close().await;
    let events = tap(&taps, |t| t.sftp.as_mut().map(|s| s.finish()).unwrap_or_default());
    audit_files(&gateway, &live, events).await;
    outcome.recording_failed = failed;
    outcome
}

/// Joins the output already waiting behind `first` into one chunk of up to [`GATHER`]
/// bytes: a terminal's output comes from the node in small packets, and each costs the
/// user's side a wake-up, a packet and a write. Nothing waits for more: a lone chunk (a
/// keystroke's echo) goes on at once. `waiting` gives the next message if one is already
/// there; one that does not join is left in `next`.
fn gather(
    first: bytes::Bytes,
    waiting: impl FnMut() -> Option<ChannelMsg>,
    next: &mut Option<ChannelMsg>,
) -> bytes::Bytes {
    let mut chunk = Chunk::new(first);
    chunk.join(waiting, next);
    chunk.into_bytes()
}

/// Output being joined: copied only once something joins it.
struct Chunk {
    first: bytes::Bytes,
    joined: Option<bytes::BytesMut>,
}

impl Chunk {
    fn new(first: bytes::Bytes) -> Chunk {
        Chunk { first, joined: None }
    }

    fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), |j| j.len())
    }

    /// Joins the output `waiting` gives while it fits; the first message that does not
    /// (output past [`GATHER`], or anything else) is left in `next`.
    fn join(&mut self, mut waiting: impl FnMut() -> Option<ChannelMsg>, next: &mut Option<ChannelMsg>) {
        if self.len() >= GATHER {
            return;
        }
        while let Some(msg) = waiting() {
            match msg {
                ChannelMsg::Data { data } if self.len() + data.len() <= GATHER => {
                    let first = &self.first;
                    self.joined.get_or_insert_with(|| bytes::BytesMut::from(first.as_ref())).extend_from_slice(&data);
                }
                other => {
                    *next = Some(other);
                    break;
                }
            }
        }
    }

    fn into_bytes(self) -> bytes::Bytes {
        self.joined.map_or(self.first, bytes::BytesMut::freeze)
    }
}

/// Whether a chunk of output is bulk output worth waiting for more behind.
fn lingers(len: usize) -> bool {
    (LINGER_FROM..=GATHER / 2).contains(&len)
}

/// Waits up to [`LINGER`] for more output to join `data` (up to [`GATHER`]): bulk output
/// arrives from the node a pty read at a time, and each chunk costs the user's side a
/// packet, a write and a wake-up. Stops early at anything but output that fits, which is
/// left in `next`; true once the node's stream has ended.
async fn linger(
    data: bytes::Bytes,
    node: &mut impl NodeMessages,
    next: &mut Option<ChannelMsg>,
) -> (bytes::Bytes, bool) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut chunk = Chunk::new(data);
    let mut ended = false;
    while next.is_none() && chunk.len() < GATHER {
        let msg = tokio::select! {
            // What has arrived joins, even if the deadline passed meanwhile.
            biased;
            msg = node.wait() => msg,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let Some(msg) = msg else {
            ended = true;
            break;
        };
        let mut arrived = Some(msg);
        chunk.join(|| arrived.take().or_else(|| node.ready()), next);
    }
    (chunk.into_bytes(), ended)
}

/// The node's messages, as the relay reads them (a trait so the tests can feed them).
trait NodeMessages: Send {
    /// The next message; `None` once the stream has ended.
    fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send;
    /// The next message if one is already there.
    fn ready(&mut self) -> Option<ChannelMsg>;
}

impl NodeMessages for ChannelReadHalf {
    fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send {
        ChannelReadHalf::wait(self)
    }

    fn ready(&mut self) -> Option<ChannelMsg> {
        ChannelReadHalf::wait(self).now_or_never().flatten()
    }
}

fn tap<T>(taps: &Mutex<Taps>, f: impl FnOnce(&mut Taps) -> T) -> T {
    f(&mut taps.lock().expect("taps lock poisoned"))
}

async fn audit_files(gateway: &Gateway, live: &Live, events: Vec<FileEvent>) {
    for event in events {
        let mut record = Event::new(event.kind())
            .user(Some(&live.row.user))
            .node(Some(&live.row.node))
            .session(&live.row.id)
            .field("login", live.row.login.as_str());
        if let Ok(ip) = live.row.client_addr.parse() {
            record = record.src_ip(ip);
        }
        for (key, value) in event.fields() {
            record = record.field(key, value);
        }
        if let Err(err) = gateway.audit.log(record).await {
            tracing::error!("cannot audit a file operation: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;

    use super::*;

    fn data(text: &str) -> ChannelMsg {
        ChannelMsg::Data { data: Bytes::copy_from_slice(text.as_bytes()) }
    }

    /// Gathers behind `first` from `queue`: the chunk, what was left in `next`, what is still queued.
    fn run(first: &[u8], queue: Vec<ChannelMsg>) -> (Bytes, Option<ChannelMsg>, usize) {
        let mut queue = VecDeque::from(queue);
        let mut next = None;
        let joined = gather(Bytes::copy_from_slice(first), || queue.pop_front(), &mut next);
        (joined, next, queue.len())
    }

    /// The node's side, fed by the test.
    struct Fed(tokio::sync::mpsc::UnboundedReceiver<ChannelMsg>);

    impl NodeMessages for Fed {
        fn wait(&mut self) -> impl Future<Output = Option<ChannelMsg>> + Send {
            self.0.recv()
        }

        fn ready(&mut self) -> Option<ChannelMsg> {
            self.0.try_recv().ok()
        }
    }

    fn bulk(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn only_bulk_output_with_room_behind_it_lingers() {
        assert!(!lingers(1), "a keystroke's echo waits for nothing");
        assert!(!lingers(LINGER_FROM - 1));
        assert!(lingers(LINGER_FROM) && lingers(4096) && lingers(GATHER / 2));
        assert!(!lingers(GATHER / 2 + 1), "a chunk with no room for as much again goes on");
    }

    #[tokio::test]
    async fn lingering_joins_output_that_arrives_and_stops_at_anything_else() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut node = Fed(rx);
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(ChannelMsg::Data { data: bulk(b'b', 4096) }).unwrap();
            tx.send(ChannelMsg::Data { data: bulk(b'c', 4096) }).unwrap();
            tx.send(ChannelMsg::Eof).unwrap();
            tx.send(ChannelMsg::Data { data: bulk(b'd', 1) }).unwrap();
            tx
        });
        let mut next = None;
        let (chunk, ended) = linger(bulk(b'a', 4096), &mut node, &mut next).await;
        let _tx = sender.await.unwrap();
        let expected: Vec<u8> = [bulk(b'a', 4096), bulk(b'b', 4096), bulk(b'c', 4096)].concat();
        assert_eq!((chunk.as_ref(), ended), (expected.as_slice(), false));
        assert!(matches!(next, Some(ChannelMsg::Eof)), "{next:?}");
        assert!(matches!(node.ready(), Some(ChannelMsg::Data { ref data }) if data.as_ref() == b"d"));
    }

    #[tokio::test]
    async fn lingering_never_passes_a_full_chunk_and_keeps_what_does_not_fit() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..5 {
            tx.send(ChannelMsg::Data { data: bulk(b'x', 8192) }).unwrap();
        }
        let mut next = None;
        let (chunk, ended) = linger(bulk(b'a', 4096), &mut Fed(rx), &mut next).await;
        assert_eq!((chunk.len(), ended), (4096 + 3 * 8192, false));
        assert!(matches!(next, Some(ChannelMsg::Data { ref data }) if data.len() == 8192), "{next:?}");
    }

    #[tokio::test]
    async fn lingering_ends_at_its_deadline_or_with_the_stream() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut node = Fed(rx);
        let mut next = None;
        let started = std::time::Instant::now();
        let (chunk, ended) = linger(bulk(b'a', 2048), &mut node, &mut next).await;
        assert!(started.elapsed() >= LINGER, "returned before its deadline: {:?}", started.elapsed());
        assert_eq!((chunk.len(), ended, next.is_none()), (2048, false, true));
        // The stream ends behind more output: that output is joined and the end reported.
        tx.send(ChannelMsg::Data { data: bulk(b'b', 10) }).unwrap();
        drop(tx);
        let (chunk, ended) = linger(bulk(b'a', 2048), &mut node, &mut next).await;
        assert_eq!((chunk.len(), ended, next.is_none()), (2058, true, true));
    }

    #[test]
    fn output_waiting_is_joined_in_order_and_nothing_else_is_lost() {
        let (joined, next, left) = run(b"a", vec![data("b"), data("c")]);
        assert_eq!((joined.as_ref(), next.is_none(), left), (&b"abc"[..], true, 0));
        // Stops at anything but output, and keeps it for the relay.
        let (joined, next, left) = run(b"a", vec![data("b"), ChannelMsg::Eof, data("c")]);
        assert_eq!((joined.as_ref(), left), (&b"ab"[..], 1));
        assert!(matches!(next, Some(ChannelMsg::Eof)), "{next:?}");
        // Never past GATHER: the chunk that would not fit waits in `next`.
        let big = "x".repeat(GATHER - 1);
        let (joined, next, _) = run(b"a", vec![data(&big), data("yz")]);
        assert_eq!(joined.len(), GATHER);
        assert!(matches!(next, Some(ChannelMsg::Data { ref data }) if data.as_ref() == b"yz"), "{next:?}");
        // A full chunk goes on as it is, without looking at the queue.
        let full = "x".repeat(GATHER);
        let (joined, next, left) = run(full.as_bytes(), vec![data("b")]);
        assert_eq!((joined.len(), next.is_none(), left), (GATHER, true, 1));
    }
}
