//! Session rows: one per user session on a node, live or ended.

use serde::Serialize;
use sqlx::Row;

use super::{Store, now};

/// A session as stored.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    /// Session id.
    pub id: String,
    /// User.
    pub user: String,
    /// Node.
    pub node: String,
    /// Login on the node.
    pub login: String,
    /// Client address.
    pub client_addr: String,
    /// `shell`, `exec` or `sftp`.
    pub kind: String,
    /// Whether it is recorded.
    pub recorded: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, once ended.
    pub ended_at: Option<i64>,
}

impl Store {
    /// Records a session's start.
    pub async fn insert_session(&self, row: &SessionRow) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_name, node, login, client_addr, kind, recorded, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.user)
        .bind(&row.node)
        .bind(&row.login)
        .bind(&row.client_addr)
        .bind(&row.kind)
        .bind(i64::from(row.recorded))
        .bind(row.started_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a session's end.
    pub async fn end_session(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sessions left open by a crash are ended at the next start; returns how many.
    pub async fn end_orphaned_sessions(&self) -> anyhow::Result<u64> {
        let done = sqlx::query("UPDATE sessions SET ended_at = $1 WHERE ended_at IS NULL")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The newest sessions first, at most `limit`.
    pub async fn list_sessions(&self, limit: i64) -> anyhow::Result<Vec<SessionRow>> {
        let rows = sqlx::query(
            "SELECT id, user_name, node, login, client_addr, kind, recorded, started_at, ended_at \
             FROM sessions ORDER BY started_at DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionRow {
                    id: r.try_get("id")?,
                    user: r.try_get("user_name")?,
                    node: r.try_get("node")?,
                    login: r.try_get("login")?,
                    client_addr: r.try_get("client_addr")?,
                    kind: r.try_get("kind")?,
                    recorded: r.try_get::<i64, _>("recorded")? != 0,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                })
            })
            .collect()
    }
}
