//! Web accounts: argon2id passwords, TOTP second factor, throttled logins, invite
//! redemption, and the end of expired accounts' sessions.
//!
//! This is the HTTP-free half of signing in; `web/` maps its answers to status codes.

pub mod expiry;
pub mod invite;
pub mod login;
pub mod password;

use tokio::sync::Semaphore;

/// Issuer shown by authenticator apps.
pub const TOTP_ISSUER: &str = "portcullis";
/// Argon2 hashes computed at once; more wait, so a login flood cannot exhaust memory.
const CONCURRENT_HASHES: usize = 2;

/// Gateway-wide state of accounts.
pub struct Accounts {
    /// Bounds concurrent password hashing (each takes ~19 MiB and a core for a moment).
    hashing: Semaphore,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts { hashing: Semaphore::new(CONCURRENT_HASHES) }
    }
}

impl Accounts {
    /// Verifies a password against a stored hash off the async threads; with no hash, spends
    /// the same time on a dummy one and answers false (unknown users cost what known ones do).
    pub async fn verify_password(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.hashing.acquire().await?;
        let (password, hash) = (password.to_owned(), hash.map(str::to_owned));
        Ok(tokio::task::spawn_blocking(move || password::verify(&password, hash.as_deref())).await?)
    }

    /// Hashes a new password off the async threads.
    pub async fn hash_password(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.hashing.acquire().await?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&password)).await?
    }
}

/// A fresh TOTP secret (160 random bits).
pub fn new_totp_secret() -> [u8; portcullis_proto::totp::SECRET_LEN] {
    rand::random()
}
