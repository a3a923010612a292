//! Users, their public keys and invites.

use anyhow::{Context, bail};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, now};

/// A user account.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    /// Account name.
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Unix seconds after which the account is expired.
    pub expires_at: Option<i64>,
    /// Locked by an admin.
    pub locked: bool,
    /// Whether a password has been set (invite redeemed).
    pub enrolled: bool,
    /// Number of registered public keys.
    pub keys: i64,
}

impl UserRow {
    /// Whether the account may be used at `at` (Unix seconds).
    pub fn active_at(&self, at: i64) -> bool {
        !self.locked && self.expires_at.is_none_or(|e| at < e)
    }
}

/// A registered public key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    /// Owner.
    pub user: String,
    /// `SHA256:...` fingerprint.
    pub fingerprint: String,
    /// Key algorithm and comment, for display.
    pub comment: String,
}

const USER_COLUMNS: &str = "u.name, u.roles, u.expires_at, u.locked, \
     (u.password_hash IS NOT NULL AND u.totp_secret IS NOT NULL) AS enrolled, \
     (SELECT COUNT(*) FROM user_keys k WHERE k.user_name = u.name) AS keys";

fn user_row(row: &SqliteRow) -> anyhow::Result<UserRow> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRow {
        name: row.try_get("name")?,
        roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect(),
        expires_at: row.try_get("expires_at")?,
        locked: row.try_get::<i64, _>("locked")? != 0,
        enrolled: row.try_get::<i64, _>("enrolled")? != 0,
        keys: row.try_get("keys")?,
    })
}

impl Store {
    /// Creates a user; fails if the name is taken.
    pub async fn create_user(&self, name: &str, roles: &[String], expires_at: Option<i64>) -> anyhow::Result<()> {
        let result =
            sqlx::query("INSERT INTO users (name, roles, expires_at, locked, created_at) VALUES ($1, $2, $3, 0, $4)")
                .bind(name)
                .bind(roles.join(","))
                .bind(expires_at)
                .bind(now())
                .execute(&self.pool)
                .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => bail!("user {name:?} already exists"),
            other => other.map(|_| ()).context("cannot create user"),
        }
    }

    /// All users, by name.
    pub async fn list_users(&self) -> anyhow::Result<Vec<UserRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_row).collect()
    }

    /// One user.
    pub async fn get_user(&self, name: &str) -> anyhow::Result<Option<UserRow>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// The user owning a key fingerprint.
    pub async fn user_by_key(&self, fingerprint: &str) -> anyhow::Result<Option<UserRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN user_keys k ON k.user_name = u.name WHERE k.fingerprint = $1"
        )))
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Removes a user with its keys and invites; false if there was none.
    pub async fn remove_user(&self, name: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Locks or unlocks a user; false if there was none.
    pub async fn set_locked(&self, name: &str, locked: bool) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE users SET locked = $1 WHERE name = $2")
            .bind(i64::from(locked))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets (or clears) when a user's account ends; false if there was no such user.
    pub async fn set_expiry(&self, name: &str, expires_at: Option<i64>) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE users SET expires_at = $1 WHERE name = $2")
            .bind(expires_at)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a user's TOTP secret (and the step last used with it): they cannot sign in on
    /// the web until they enroll again through an invite. False if there was no such user.
    pub async fn reset_totp(&self, name: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE users SET totp_secret = NULL, totp_last_step = NULL WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Registers a public key (OpenSSH text) for a user.
    pub async fn add_key(&self, user: &str, fingerprint: &str, public_key: &str, comment: &str) -> anyhow::Result<()> {
        let result = sqlx::query(
            "INSERT INTO user_keys (fingerprint, user_name, public_key, comment, added_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(fingerprint)
        .bind(user)
        .bind(public_key)
        .bind(comment)
        .bind(now())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                bail!("key {fingerprint} is already registered")
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => bail!("no user {user:?}"),
            other => other.map(|_| ()).context("cannot add key"),
        }
    }

    /// Keys of one user.
    pub async fn list_keys(&self, user: &str) -> anyhow::Result<Vec<KeyRow>> {
        let rows =
            sqlx::query("SELECT user_name, fingerprint, comment FROM user_keys WHERE user_name = $1 ORDER BY added_at")
                .bind(user)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    user: r.try_get("user_name")?,
                    fingerprint: r.try_get("fingerprint")?,
                    comment: r.try_get("comment")?,
                })
            })
            .collect()
    }

    /// Stores an invite (by the hash of its token) for an existing user.
    pub async fn create_invite(&self, user: &str, token_hash: &str, expires_at: i64) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO invites (token_hash, user_name, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user)
            .bind(expires_at)
            .bind(now())
            .execute(&self.pool)
            .await
            .context("cannot store invite")?;
        Ok(())
    }

    /// Reads a setting.
    pub async fn setting(&self, key: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Writes a setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
