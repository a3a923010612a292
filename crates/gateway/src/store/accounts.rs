//! Web credentials of users (password hash, TOTP secret, last TOTP step used) and the
//! login failures that throttling counts.

use sqlx::Row;

use super::{Store, now};

/// What a web login checks, read in one query.
#[derive(Clone)]
pub struct Credentials {
    /// Argon2id PHC string, once the invite is redeemed.
    pub password_hash: Option<String>,
    /// Base32 TOTP secret, once enrolled.
    pub totp_secret: Option<String>,
    /// The last TOTP step accepted; no code at or before it is accepted again.
    pub totp_last_step: Option<i64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the hash nor the secret may reach a log.
        f.debug_struct("Credentials")
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("totp_secret", &self.totp_secret.as_ref().map(|_| "<redacted>"))
            .field("totp_last_step", &self.totp_last_step)
            .finish()
    }
}

impl Store {
    /// A user's web credentials; `None` if there is no such user.
    pub async fn credentials(&self, user: &str) -> anyhow::Result<Option<Credentials>> {
        let row = sqlx::query("SELECT password_hash, totp_secret, totp_last_step FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Credentials {
                password_hash: r.try_get("password_hash")?,
                totp_secret: r.try_get("totp_secret")?,
                totp_last_step: r.try_get("totp_last_step")?,
            })
        })
        .transpose()
    }

    /// Marks a TOTP step used; false if it (or a later one) was used already, so two
    /// logins racing with one code cannot both win.
    pub async fn use_totp_step(&self, user: &str, step: i64) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE name = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes one failed login for `subject` (`user:NAME` or `addr:IP`).
    pub async fn add_login_failure(&self, subject: &str) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
            .bind(subject)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failed logins for `subject` at or after `since` (Unix seconds).
    pub async fn login_failures(&self, subject: &str, since: i64) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM login_failures WHERE subject = $1 AND at >= $2")
            .bind(subject)
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Forgets the failures of `subject` (after a successful login).
    pub async fn clear_login_failures(&self, subject: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE subject = $1").bind(subject).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets failures older than `before`.
    pub async fn prune_login_failures(&self, before: i64) -> anyhow::Result<u64> {
        let done = sqlx::query("DELETE FROM login_failures WHERE at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Names of users whose account expired at or before `at`.
    pub async fn expired_users(&self, at: i64) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM users WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(at)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }
}
