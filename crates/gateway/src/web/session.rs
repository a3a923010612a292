//! Web sessions: a random id in an `HttpOnly; Secure; SameSite=Strict` cookie, kept
//! server-side by its hash with a CSRF token; ended by logout, by an hour without
//! requests (an open terminal counts as activity), after 12 hours in any case, or when
//! the user is locked, expired or removed. Ending one ends its terminals.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::gateway::Gateway;
use crate::secret;
use crate::store::{WebSessionRow, now};

/// The session cookie's name.
pub const COOKIE: &str = "pc_session";
/// A session without requests (and without a live terminal) for this long is over.
pub const IDLE_SECS: i64 = 3600;
/// A session is over this long after sign-in, however active.
pub const LIFETIME_SECS: i64 = 12 * 3600;
/// How often ended sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// A new session: the cookie to set and the stored row.
pub struct Started {
    /// The `Set-Cookie` value.
    pub set_cookie: HeaderValue,
    /// The stored session.
    pub row: WebSessionRow,
}

/// Starts a session for a user who just proved who they are.
pub async fn start(gateway: &Gateway, user: &str, client: IpAddr) -> anyhow::Result<Started> {
    let id = secret::token();
    let at = now();
    let row = WebSessionRow {
        id_hash: secret::hash(&id),
        user: user.to_owned(),
        csrf: secret::token(),
        client_addr: client.to_string(),
        created_at: at,
        last_seen: at,
        expires_at: at + LIFETIME_SECS,
    };
    gateway.store.insert_web_session(&row).await?;
    let cookie = format!("{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={LIFETIME_SECS}");
    Ok(Started { set_cookie: HeaderValue::try_from(cookie)?, row })
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("pc_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

/// Ends a session and its terminals.
pub async fn end(gateway: &Gateway, id_hash: &str) -> anyhow::Result<()> {
    gateway.store.delete_web_session(id_hash).await?;
    for id in gateway.web.terminals_of(id_hash) {
        if let Some(live) = gateway.sessions.get(&id) {
            live.kill();
        }
    }
    Ok(())
}

/// The session cookie's value, from any `Cookie` header.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a session is still on at `at`; `terminals_open` counts as activity.
pub fn alive(row: &WebSessionRow, at: i64, terminals_open: bool) -> bool {
    at < row.expires_at && (terminals_open || at - row.last_seen < IDLE_SECS)
}

/// Sweeps ended sessions until shutdown.
pub async fn reap(gateway: Arc<Gateway>) {
    let mut shutdown = gateway.shutdown.subscribe();
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait() => return,
        }
        if let Err(err) = sweep(&gateway).await {
            tracing::warn!("web session sweep: {err:#}");
        }
    }
}

/// Ends every session that is over, or whose user may no longer sign in.
pub async fn sweep(gateway: &Gateway) -> anyhow::Result<()> {
    let at = now();
    for row in gateway.store.list_web_sessions().await? {
        let open = !gateway.web.terminals_of(&row.id_hash).is_empty();
        let user_ok = gateway.store.get_user(&row.user).await?.is_some_and(|u| u.active_at(at));
        if !user_ok || !alive(&row, at, open) {
            end(gateway, &row.id_hash).await?;
        } else if open && at - row.last_seen >= IDLE_SECS / 2 {
            gateway.store.touch_web_session(&row.id_hash).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(created: i64, last_seen: i64) -> WebSessionRow {
        WebSessionRow {
            id_hash: "h".into(),
            user: "u".into(),
            csrf: "c".into(),
            client_addr: "127.0.0.1".into(),
            created_at: created,
            last_seen,
            expires_at: created + LIFETIME_SECS,
        }
    }

    #[test]
    fn idle_and_absolute_limits() {
        let r = row(1000, 1000);
        assert!(alive(&r, 1000 + IDLE_SECS - 1, false));
        assert!(!alive(&r, 1000 + IDLE_SECS, false));
        assert!(alive(&r, 1000 + IDLE_SECS, true), "an open terminal is activity");
        assert!(!alive(&r, 1000 + LIFETIME_SECS, true), "nothing outlives the absolute cap");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; pc_session=abc ; b=2"));
        assert_eq!(cookie_value(&headers), Some("abc"));
        let mut split = HeaderMap::new();
        split.append(header::COOKIE, HeaderValue::from_static("a=1"));
        split.append(header::COOKIE, HeaderValue::from_static("pc_session=xyz"));
        assert_eq!(cookie_value(&split), Some("xyz"));
        let mut none = HeaderMap::new();
        none.append(header::COOKIE, HeaderValue::from_static("pc_sessionx=1; pc_session="));
        assert_eq!(cookie_value(&none), None);
    }
}
