//! Invites as the web redeems them: looked up by token hash, enrolled, used once.

use sqlx::Row;

use super::{Store, now};

/// An invite, found by the hash of its token.
#[derive(Clone)]
pub struct InviteRow {
    /// The invited user.
    pub user: String,
    /// Unix seconds after which it is void.
    pub expires_at: i64,
    /// When it was redeemed, if it was.
    pub used_at: Option<i64>,
    /// Base32 TOTP secret made by the last enroll call, not yet confirmed.
    pub pending_totp: Option<String>,
}

impl std::fmt::Debug for InviteRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteRow")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("pending_totp", &self.pending_totp.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Store {
    /// The invite with this token hash, used or not.
    pub async fn invite(&self, token_hash: &str) -> anyhow::Result<Option<InviteRow>> {
        let row = sqlx::query("SELECT user_name, expires_at, used_at, pending_totp FROM invites WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(InviteRow {
                user: r.try_get("user_name")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                pending_totp: r.try_get("pending_totp")?,
            })
        })
        .transpose()
    }

    /// Keeps a TOTP secret with an unused, unexpired invite until it is confirmed; false if
    /// the invite is no longer redeemable.
    pub async fn set_pending_totp(&self, token_hash: &str, secret_base32: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE invites SET pending_totp = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(secret_base32)
        .bind(token_hash)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems an invite in one transaction: marks it used (only if unused and unexpired),
    /// then sets the user's password hash, TOTP secret and the step its first code used.
    /// False if the invite was no longer redeemable (a second redeem loses the race).
    pub async fn redeem_invite(
        &self,
        token_hash: &str,
        user: &str,
        password_hash: &str,
        totp_secret: &str,
        totp_step: i64,
    ) -> anyhow::Result<bool> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE invites SET used_at = $1, pending_totp = NULL \
             WHERE token_hash = $2 AND user_name = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(at)
        .bind(token_hash)
        .bind(user)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Ok(false);
        }
        let set =
            sqlx::query("UPDATE users SET password_hash = $1, totp_secret = $2, totp_last_step = $3 WHERE name = $4")
                .bind(password_hash)
                .bind(totp_secret)
                .bind(totp_step)
                .bind(user)
                .execute(&mut *tx)
                .await?;
        if set.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
