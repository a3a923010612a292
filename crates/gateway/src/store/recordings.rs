//! Recording metadata: one row per recorded session, the file's key and its totals.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Store;

/// One recording's metadata.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    /// Random hex id; also the file's name.
    pub id: String,
    /// The recorded session.
    pub session_id: String,
    /// The portcullis user.
    pub user: String,
    /// The node.
    pub node: String,
    /// The login on the node.
    pub login: String,
    /// The client's address.
    pub client_addr: String,
    /// The exec command; none for a shell.
    pub command: Option<String>,
    /// The file's absolute path (`RECORDINGS_DIR/YYYY-MM-DD/ID.cast`).
    pub path: String,
    /// Output bytes the session sent to the user, recorded or not.
    pub bytes: i64,
    /// Output bytes past the size cap, not recorded.
    pub capped_bytes: i64,
    /// Output bytes that were not UTF-8 and were recorded as U+FFFD.
    pub replaced_bytes: i64,
    /// Finished cleanly: flushed, synced and closed.
    pub complete: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; none while the recording runs.
    pub ended_at: Option<i64>,
    /// Microseconds from the start to the end in the recording's own clock; none while
    /// it runs, and for one that was cut off before it could say.
    pub duration_us: Option<i64>,
}

/// How a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingEnd {
    /// Unix seconds.
    pub ended_at: i64,
    /// Microseconds since the recording started, in its own clock.
    pub duration_us: i64,
    /// Output bytes seen.
    pub bytes: i64,
    /// Output bytes past the cap.
    pub capped_bytes: i64,
    /// Output bytes recorded as U+FFFD.
    pub replaced_bytes: i64,
    /// Whether the file was finished cleanly.
    pub complete: bool,
}

/// Filters of `recordings ls`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RecordingFilter {
    /// User.
    pub user: Option<String>,
    /// Node.
    pub node: Option<String>,
    /// Started at or after, Unix seconds.
    pub since: Option<i64>,
    /// At most this many, the most recent.
    pub limit: Option<i64>,
}

pub(super) const COLUMNS: &str = "id, session_id, user_name, node, login, client_addr, command, path, bytes, capped_bytes, \
     replaced_bytes, complete, started_at, ended_at, duration_us";

pub(super) fn recording_row(row: &SqliteRow) -> anyhow::Result<RecordingRow> {
    Ok(RecordingRow {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        user: row.try_get("user_name")?,
        node: row.try_get("node")?,
        login: row.try_get("login")?,
        client_addr: row.try_get("client_addr")?,
        command: row.try_get("command")?,
        path: row.try_get("path")?,
        bytes: row.try_get("bytes")?,
        capped_bytes: row.try_get("capped_bytes")?,
        replaced_bytes: row.try_get("replaced_bytes")?,
        complete: row.try_get::<i64, _>("complete")? != 0,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        duration_us: row.try_get("duration_us")?,
    })
}

impl Store {
    /// Adds a running recording's row (totals and `complete` start at zero).
    pub async fn insert_recording(&self, row: &RecordingRow) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO recordings (id, session_id, user_name, node, login, client_addr, command, path, bytes, \
             complete, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9)",
        )
        .bind(&row.id)
        .bind(&row.session_id)
        .bind(&row.user)
        .bind(&row.node)
        .bind(&row.login)
        .bind(&row.client_addr)
        .bind(&row.command)
        .bind(&row.path)
        .bind(row.started_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a recording ended.
    pub async fn finish_recording(&self, id: &str, end: &RecordingEnd) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE recordings SET ended_at = $2, bytes = $3, capped_bytes = $4, replaced_bytes = $5, complete = $6, \
             duration_us = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(end.ended_at)
        .bind(end.bytes)
        .bind(end.capped_bytes)
        .bind(end.replaced_bytes)
        .bind(i64::from(end.complete))
        .bind(end.duration_us)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a recording that never finished (a crash, a dropped session) as incomplete;
    /// `bytes` replaces the count when known. False if it had already ended.
    pub async fn mark_incomplete(&self, id: &str, ended_at: i64, bytes: Option<i64>) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE recordings SET ended_at = $2, complete = 0, bytes = COALESCE($3, bytes) \
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .bind(ended_at)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Recordings matching the filter: the most recent `limit`, oldest first.
    pub async fn list_recordings(&self, filter: &RecordingFilter) -> anyhow::Result<Vec<RecordingRow>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM recordings \
             WHERE ($1 IS NULL OR user_name = $1) AND ($2 IS NULL OR node = $2) AND ($3 IS NULL OR started_at >= $3) \
             ORDER BY started_at DESC, id DESC LIMIT $4) AS recent ORDER BY started_at, id"
        ));
        let rows = sqlx::query(sql)
            .bind(&filter.user)
            .bind(&filter.node)
            .bind(filter.since)
            .bind(filter.limit.unwrap_or(i64::MAX).max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recording_row).collect()
    }

    /// One recording.
    pub async fn get_recording(&self, id: &str) -> anyhow::Result<Option<RecordingRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(recording_row).transpose()
    }

    /// Recordings without an end: running, or cut off by a crash.
    pub async fn unended_recordings(&self) -> anyhow::Result<Vec<RecordingRow>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM recordings WHERE ended_at IS NULL ORDER BY id"));
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(recording_row).collect()
    }
}
