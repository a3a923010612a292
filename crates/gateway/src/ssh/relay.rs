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
                while let Some(msg) = node_rx.wait().await {
                    let sent = match msg {
                        ChannelMsg::Data { data } => {
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
