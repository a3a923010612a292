//! Web sessions: the browser holds a random id in a cookie; the database keeps only its
//! SHA-256, the user, the CSRF token and the session's times.

use sqlx::Row;

use super::{Store, now};

/// A signed-in browser.
#[derive(Clone)]
pub struct WebSessionRow {
    /// Hex SHA-256 of the cookie's id.
    pub id_hash: String,
    /// The user.
    pub user: String,
    /// The token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf: String,
    /// Client address at sign-in.
    pub client_addr: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last request.
    pub last_seen: i64,
    /// Unix seconds after which the session is over, however active.
    pub expires_at: i64,
}

impl std::fmt::Debug for WebSessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSessionRow")
            .field("id_hash", &&self.id_hash[..self.id_hash.len().min(12)])
            .field("user", &self.user)
            .field("csrf", &"<redacted>")
            .field("client_addr", &self.client_addr)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn web_session_row(r: &sqlx::sqlite::SqliteRow) -> anyhow::Result<WebSessionRow> {
    Ok(WebSessionRow {
        id_hash: r.try_get("id_hash")?,
        user: r.try_get("user_name")?,
        csrf: r.try_get("csrf")?,
        client_addr: r.try_get("client_addr")?,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
        expires_at: r.try_get("expires_at")?,
    })
}

const COLUMNS: &str = "id_hash, user_name, csrf, client_addr, created_at, last_seen, expires_at";

impl Store {
    /// Stores a new web session.
    pub async fn insert_web_session(&self, row: &WebSessionRow) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_name, csrf, client_addr, created_at, last_seen, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id_hash)
        .bind(&row.user)
        .bind(&row.csrf)
        .bind(&row.client_addr)
        .bind(row.created_at)
        .bind(row.last_seen)
        .bind(row.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The web session with this id hash, expired or not.
    pub async fn web_session(&self, id_hash: &str) -> anyhow::Result<Option<WebSessionRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM web_sessions WHERE id_hash = $1")))
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(web_session_row).transpose()
    }

    /// Every web session, for the reaper.
    pub async fn list_web_sessions(&self) -> anyhow::Result<Vec<WebSessionRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM web_sessions")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(web_session_row).collect()
    }

    /// Notes activity on a web session.
    pub async fn touch_web_session(&self, id_hash: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE id_hash = $2")
            .bind(now())
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends one web session; false if there was none.
    pub async fn delete_web_session(&self, id_hash: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every web session of a user; returns how many there were.
    pub async fn delete_user_web_sessions(&self, user: &str) -> anyhow::Result<u64> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE user_name = $1").bind(user).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
