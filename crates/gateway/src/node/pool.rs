//! Reuse of gateway→node SSH connections.
//!
//! A connection is kept per (user, node, login): the node sees the login certificate that
//! names the user, so connections are never shared between users. Each carries at most
//! [`MAX_CHANNELS`] sessions (OpenSSH's MaxSessions defaults to 10) and is closed after
//! [`IDLE`] without one. Authorization is still decided per session, before a connection
//! is taken from the pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client;

use super::NodeClient;

/// Sessions one pooled connection carries at most.
pub const MAX_CHANNELS: usize = 8;
/// How long an unused connection is kept.
pub const IDLE: Duration = Duration::from_secs(60);

/// (user, node, login).
pub type Key = (String, String, String);

/// Pooled connections.
#[derive(Default)]
pub struct Pool {
    entries: Mutex<HashMap<Key, Vec<Arc<Entry>>>>,
}

/// One pooled connection.
pub struct Entry {
    /// The connection.
    pub handle: client::Handle<NodeClient>,
    active: AtomicUsize,
    last_used: Mutex<Instant>,
}

/// A session's use of a pooled connection; dropping it gives the slot back.
pub struct Lease {
    entry: Arc<Entry>,
}

impl Lease {
    /// The connection to open channels on.
    pub fn handle(&self) -> &client::Handle<NodeClient> {
        &self.entry.handle
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.entry.last_used.lock().expect("pool lock poisoned") = Instant::now();
        self.entry.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A lease on a live pooled connection with a free slot, if there is one.
    pub fn take(&self, key: &Key) -> Option<Lease> {
        let mut entries = self.entries.lock().expect("pool lock poisoned");
        let list = entries.get_mut(key)?;
        list.retain(|e| !e.handle.is_closed());
        for entry in list.iter() {
            let claimed = entry
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_CHANNELS).then_some(n + 1))
                .is_ok();
            if claimed {
                return Some(Lease { entry: entry.clone() });
            }
        }
        None
    }

    /// Adds a new connection and leases it.
    pub fn insert(&self, key: Key, handle: client::Handle<NodeClient>) -> Lease {
        let entry = Arc::new(Entry { handle, active: AtomicUsize::new(1), last_used: Mutex::new(Instant::now()) });
        self.entries.lock().expect("pool lock poisoned").entry(key).or_default().push(entry.clone());
        Lease { entry }
    }

    /// Removes connections idle for longer than [`IDLE`] (or closed); returns them to close.
    pub fn expired(&self) -> Vec<Arc<Entry>> {
        let mut gone = Vec::new();
        let mut entries = self.entries.lock().expect("pool lock poisoned");
        for list in entries.values_mut() {
            list.retain(|e| {
                let idle = e.active.load(Ordering::Acquire) == 0
                    && e.last_used.lock().expect("pool lock poisoned").elapsed() >= IDLE;
                if idle || e.handle.is_closed() {
                    gone.push(e.clone());
                    false
                } else {
                    true
                }
            });
        }
        entries.retain(|_, list| !list.is_empty());
        gone
    }

    /// Forgets every connection to a node (removed, or its host key re-pinned).
    pub fn forget_node(&self, node: &str) -> Vec<Arc<Entry>> {
        let mut entries = self.entries.lock().expect("pool lock poisoned");
        let keys: Vec<Key> = entries.keys().filter(|k| k.1 == node).cloned().collect();
        keys.into_iter().filter_map(|k| entries.remove(&k)).flatten().collect()
    }

    /// Forgets every connection of a user (locked or removed).
    pub fn forget_user(&self, user: &str) -> Vec<Arc<Entry>> {
        let mut entries = self.entries.lock().expect("pool lock poisoned");
        let keys: Vec<Key> = entries.keys().filter(|k| k.0 == user).cloned().collect();
        keys.into_iter().filter_map(|k| entries.remove(&k)).flatten().collect()
    }
}

/// Closes pooled connections that went idle, until shutdown.
pub async fn reap(gateway: Arc<crate::gateway::Gateway>) {
    let mut shutdown = gateway.shutdown.subscribe();
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = every.tick() => close(gateway.node_pool.expired()).await,
            _ = shutdown.wait() => return,
        }
    }
}

/// Disconnects connections taken out of the pool.
pub async fn close(entries: Vec<Arc<Entry>>) {
    for entry in entries {
        let _ = entry.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}
