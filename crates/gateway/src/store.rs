//! Persistent state behind one interface: users, keys, roles, nodes, invites, tokens,
//! sessions, recordings metadata and the audit index.
//!
//! SQL is kept portable (`$N` placeholders, INTEGER times and flags, TEXT JSON) so a
//! PostgreSQL backend can share it.

mod accounts;
mod catalog;
mod invites;
mod recording_index;
mod recordings;
mod schema;
mod sessions;
mod tokens;
mod users;
mod web_sessions;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use accounts::Credentials;
pub use catalog::{AuditFilter, AuditIndexEntry, AuditQuery, NodeRow, RoleRow};
pub use invites::InviteRow;
pub use recording_index::{IndexBatch, IndexState, Keyframe, RecordingQuery, TextHit, TextLine};
pub use recordings::{RecordingEnd, RecordingFilter, RecordingRow};
pub use sessions::SessionRow;
pub use tokens::TokenRow;
pub use users::{KeyRow, UserRow};
pub use web_sessions::WebSessionRow;

/// The gateway's database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Each pool connection's page cache, KiB.
const CACHE_KIB: u32 = 512;

impl Store {
    /// Opens (creating on first start) the database named by `url`, relative to `data_dir`.
    pub async fn open(url: &str, data_dir: &Path, create: bool) -> anyhow::Result<Store> {
        let file = url.strip_prefix("sqlite://").context("storage.url must be sqlite://FILE")?;
        let path = data_dir.join(file);
        if !create && !path.exists() {
            anyhow::bail!(
                "database {} is missing while the data dir's keys exist; restore it from backup (refusing to start empty)",
                path.display()
            );
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // SQLite's page cache is per connection (2 MiB each by default). The working set
            // is small (nodes, users, sessions); the OS caches the file for everyone, and a
            // fleet reconnecting after a restart would otherwise keep the four caches full.
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open database {}", path.display()))?;
        // SQLite gives its -wal and -shm files the database file's mode.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
        let store = Store { pool };
        schema::migrate(&store.pool)
            .await
            .with_context(|| format!("database {} is unreadable or corrupt", path.display()))?;
        Ok(store)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Formats Unix seconds as RFC 3339 (UTC), or `-` for none.
pub fn rfc3339(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_pool_connection_keeps_a_small_page_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open("sqlite://t.db", tmp.path(), true).await.unwrap();
        // Hold several connections at once, so that more than the first one is asked.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.unwrap();
            let (kib,): (i64,) = sqlx::query_as("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
            assert_eq!(kib, -i64::from(CACHE_KIB), "negative: KiB rather than pages");
            held.push(conn);
        }
    }
}
