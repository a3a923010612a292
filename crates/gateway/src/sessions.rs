//! Live sessions: what `ctl sessions ls | kill | watch` reach.
//!
//! Each live session keeps the tail of its output (so a watcher starts from the current
//! screen rather than a blank one) and a broadcast of new output for silent watchers;
//! nothing here ever writes to the watched user's side.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::recording::WrittenMark;
use crate::store::SessionRow;

/// How much recent output a live session keeps for watchers joining late.
pub const SCREEN_TAIL: usize = 64 * 1024;
/// Output chunks buffered per watcher before it starts skipping.
const WATCH_BUFFER: usize = 1024;

/// The registry of live sessions.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Arc<Live>>>,
}

/// One live session.
pub struct Live {
    /// Its stored row.
    pub row: SessionRow,
    /// Bytes from the node to the user.
    pub bytes_out: AtomicU64,
    /// Bytes from the user to the node.
    pub bytes_in: AtomicU64,
    kill: watch::Sender<bool>,
    /// The terminal's columns (high 16 bits) and rows (low 16 bits); 0 without a terminal.
    size: AtomicU32,
    /// How far its recording's file is complete, when it is recorded.
    recording: OnceLock<Arc<WrittenMark>>,
    /// Made by the first watcher: most sessions are never watched.
    output: Mutex<Option<broadcast::Sender<Bytes>>>,
    screen: Mutex<VecDeque<u8>>,
}

impl Sessions {
    /// Adds a session; it stays until [`Sessions::remove`].
    pub fn register(&self, row: SessionRow) -> Arc<Live> {
        let live = Arc::new(Live {
            row,
            bytes_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            kill: watch::channel(false).0,
            size: AtomicU32::new(0),
            recording: OnceLock::new(),
            output: Mutex::new(None),
            screen: Mutex::new(VecDeque::new()),
        });
        self.lock().insert(live.row.id.clone(), live.clone());
        live
    }

    /// Removes a session that ended.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// One live session.
    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.lock().get(id).cloned()
    }

    /// Every live session, oldest first.
    pub fn list(&self) -> Vec<Arc<Live>> {
        let mut all: Vec<Arc<Live>> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| (a.row.started_at, &a.row.id).cmp(&(b.row.started_at, &b.row.id)));
        all
    }

    /// Asks every session of `user` to end (lock, expiry, removal).
    pub fn kill_user(&self, user: &str) -> usize {
        let live = self.list();
        let mine: Vec<_> = live.iter().filter(|l| l.row.user == user).collect();
        for session in &mine {
            session.kill();
        }
        mine.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().expect("sessions lock poisoned")
    }
}

impl Live {
    /// Notes output sent to the user: kept for late watchers and sent to current ones.
    pub fn output(&self, bytes: &[u8]) {
        self.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut screen = self.screen.lock().expect("screen lock poisoned");
        screen.extend(bytes);
        let excess = screen.len().saturating_sub(SCREEN_TAIL);
        screen.drain(..excess);
        // Sent under the screen lock, so a watcher joining now misses nothing and sees nothing twice.
        let output = self.output.lock().expect("output lock poisoned");
        if let Some(sender) = output.as_ref().filter(|s| s.receiver_count() > 0) {
            let _ = sender.send(Bytes::copy_from_slice(bytes));
        }
    }

    /// Notes the terminal's size (at start and on every resize), for watchers.
    pub fn set_size(&self, cols: u32, rows: u32) {
        let clamp = |n: u32| n.min(u32::from(u16::MAX));
        self.size.store((clamp(cols) << 16) | clamp(rows), Ordering::Relaxed);
    }

    /// The terminal's columns and rows, if it has a terminal.
    pub fn size(&self) -> Option<(u16, u16)> {
        let packed = self.size.load(Ordering::Relaxed);
        (packed != 0).then_some(((packed >> 16) as u16, packed as u16))
    }

    /// Notes the session's recording, for those who follow it while it runs.
    pub fn set_recording(&self, mark: Arc<WrittenMark>) {
        let _ = self.recording.set(mark);
    }

    /// How far the session's recording is surely in its file, in the recording's clock
    /// (see [`WrittenMark::through`]); none when it is not recorded.
    pub fn recorded(&self) -> Option<Duration> {
        self.recording.get().map(|mark| mark.through())
    }

    /// Notes input from the user.
    pub fn input(&self, len: usize) {
        self.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// The recent output and a receiver of what follows, taken together so nothing is lost between.
    pub fn watch(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        let screen = self.screen.lock().expect("screen lock poisoned");
        let mut output = self.output.lock().expect("output lock poisoned");
        let receiver = output.get_or_insert_with(|| broadcast::channel(WATCH_BUFFER).0).subscribe();
        (screen.iter().copied().collect(), receiver)
    }

    /// Asks the session to end.
    pub fn kill(&self) {
        self.kill.send_replace(true);
    }

    /// Resolves once the session is asked to end.
    pub async fn killed(&self) {
        let mut receiver = self.kill.subscribe();
        let _ = receiver.wait_for(|k| *k).await;
    }
}

/// A new session id: 64 random bits, hex.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, user: &str) -> SessionRow {
        SessionRow {
            id: id.into(),
            user: user.into(),
            node: "n".into(),
            login: "l".into(),
            client_addr: "127.0.0.1".into(),
            kind: "shell".into(),
            recorded: true,
            started_at: 1,
            ended_at: None,
        }
    }

    #[tokio::test]
    async fn watchers_get_the_tail_then_live_output() {
        let sessions = Sessions::default();
        let live = sessions.register(row("a", "u"));
        live.output(b"before ");
        let (tail, mut rx) = live.watch();
        live.output(b"after");
        assert_eq!(tail, b"before ");
        assert_eq!(&rx.recv().await.unwrap()[..], b"after");
        live.output(&vec![b'x'; SCREEN_TAIL + 10]);
        assert_eq!(live.watch().0.len(), SCREEN_TAIL);
        assert_eq!(live.bytes_out.load(Ordering::Relaxed), (7 + 5 + SCREEN_TAIL + 10) as u64);
    }

    #[tokio::test]
    async fn kill_reaches_the_session_and_kill_user_only_theirs() {
        let sessions = Sessions::default();
        let a = sessions.register(row("a", "u1"));
        let b = sessions.register(row("b", "u2"));
        assert_eq!(sessions.kill_user("u1"), 1);
        a.killed().await;
        assert!(!*b.kill.borrow());
        sessions.remove("a");
        assert!(sessions.get("a").is_none());
        assert_eq!(sessions.list().len(), 1);
        assert_eq!(new_id().len(), 16);
    }
}
