//! Web sign-in: user name, password and a TOTP code, throttled per user and per client
//! address, audited, and telling the client nothing beyond "no".
//!
//! Every attempt costs one argon2 verification, whether or not the user exists, is
//! enrolled, locked or throttled, so neither the answer nor its timing tells which.

use std::net::IpAddr;

use portcullis_proto::totp;

use crate::audit::Event;
use crate::gateway::Gateway;
use crate::store::{UserRow, now};

/// Failures counted over this window.
pub const WINDOW_SECS: i64 = 15 * 60;
/// Failures for one user name within the window that lock it out (for the rest of the window).
pub const MAX_USER_FAILURES: i64 = 5;
/// Failures from one client address within the window that lock it out.
pub const MAX_ADDRESS_FAILURES: i64 = 10;

/// One sign-in attempt.
pub struct Attempt<'a> {
    /// The user name typed.
    pub user: &'a str,
    /// The password typed.
    pub password: &'a str,
    /// The TOTP code typed.
    pub totp_code: &'a str,
    /// Where it came from.
    pub client: IpAddr,
}

/// What a refused client may learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong name, password or code, or an account that may not sign in: one answer for all.
    Invalid,
    /// Too many failures lately for this name or address.
    Throttled,
}

/// Checks an attempt; `Ok(Err(_))` is a refusal (already audited), `Err` a gateway fault.
pub async fn login(gateway: &Gateway, attempt: &Attempt<'_>) -> anyhow::Result<Result<UserRow, Refused>> {
    let store = &gateway.store;
    let at = now();
    let name = attempt.user.trim();
    let plausible = crate::config::validate_name(name).is_ok();
    let user_subject = format!("user:{}", printable(name));
    let addr_subject = format!("addr:{}", attempt.client);
    let since = at - WINDOW_SECS;
    let throttled = store.login_failures(&user_subject, since).await? >= MAX_USER_FAILURES
        || store.login_failures(&addr_subject, since).await? >= MAX_ADDRESS_FAILURES;

    let (user, credentials) =
        if plausible { (store.get_user(name).await?, store.credentials(name).await?) } else { (None, None) };
    let hash = credentials.as_ref().and_then(|c| c.password_hash.as_deref());
    let password_ok = gateway.accounts.verify_password(attempt.password, hash).await?;

    let reason = match (&user, &credentials) {
        _ if throttled => "throttled",
        (None, _) | (_, None) => "unknown user",
        (Some(_), Some(c)) if c.password_hash.is_none() || c.totp_secret.is_none() => "not enrolled",
        _ if !password_ok => "wrong password",
        (Some(u), _) if u.locked => "locked",
        (Some(u), _) if !u.active_at(at) => "expired",
        (Some(u), Some(c)) => match check_code(gateway, u, c, attempt.totp_code, at).await? {
            Some(reason) => reason,
            None => match no_role_applies(gateway, u, attempt.client).await? {
                true => "no role applies from this address",
                false => return succeed(gateway, u.clone(), attempt.client, &user_subject).await.map(Ok),
            },
        },
    };
    fail(gateway, user.as_ref().map(|u| u.name.as_str()), name, attempt.client, reason, &user_subject, &addr_subject)
        .await?;
    Ok(Err(if throttled { Refused::Throttled } else { Refused::Invalid }))
}

/// `None` when the code is good and now used; else why not.
async fn check_code(
    gateway: &Gateway,
    user: &UserRow,
    credentials: &crate::store::Credentials,
    code: &str,
    at: i64,
) -> anyhow::Result<Option<&'static str>> {
    let Some(secret) = credentials.totp_secret.as_deref().and_then(|s| totp::base32_decode(s).ok()) else {
        return Ok(Some("not enrolled"));
    };
    let last = credentials.totp_last_step.and_then(|s| u64::try_from(s).ok());
    let unix = u64::try_from(at).unwrap_or_default();
    let Some(step) = totp::verify(&secret, code, unix, last) else {
        let reused = totp::verify(&secret, code, unix, None).is_some();
        return Ok(Some(if reused { "reused code" } else { "wrong code" }));
    };
    if !gateway.store.use_totp_step(&user.name, step as i64).await? {
        return Ok(Some("reused code"));
    }
    Ok(None)
}

async fn no_role_applies(gateway: &Gateway, user: &UserRow, client: IpAddr) -> anyhow::Result<bool> {
    let identity = gateway.identity(user).await?;
    Ok(!identity.roles.iter().any(|role| role.applies_from(client)))
}

async fn succeed(gateway: &Gateway, user: UserRow, client: IpAddr, user_subject: &str) -> anyhow::Result<UserRow> {
    gateway.store.clear_login_failures(user_subject).await?;
    let event = Event::new("user.login").user(Some(&user.name)).src_ip(client).field("method", "web");
    gateway.audit.log(event).await?;
    Ok(user)
}

async fn fail(
    gateway: &Gateway,
    known: Option<&str>,
    typed: &str,
    client: IpAddr,
    reason: &str,
    user_subject: &str,
    addr_subject: &str,
) -> anyhow::Result<()> {
    let store = &gateway.store;
    store.add_login_failure(user_subject).await?;
    store.add_login_failure(addr_subject).await?;
    let mut event =
        Event::new("user.login_failed").user(known).src_ip(client).field("method", "web").field("reason", reason);
    if known.is_none() {
        event = event.field("attempted_user", printable(typed));
    }
    gateway.audit.log(event).await?;
    let since = now() - WINDOW_SECS;
    if store.login_failures(user_subject, since).await? == MAX_USER_FAILURES {
        let event = Event::new("user.lockout")
            .user(known)
            .src_ip(client)
            .field("scope", "user")
            .field("attempted_user", printable(typed))
            .field("failures", MAX_USER_FAILURES)
            .field("window_secs", WINDOW_SECS);
        gateway.audit.log(event).await?;
    }
    if store.login_failures(addr_subject, since).await? == MAX_ADDRESS_FAILURES {
        let event = Event::new("user.lockout")
            .src_ip(client)
            .field("scope", "address")
            .field("failures", MAX_ADDRESS_FAILURES)
            .field("window_secs", WINDOW_SECS);
        gateway.audit.log(event).await?;
    }
    Ok(())
}

/// A typed user name as it may appear in the audit log and throttle keys: at most 64
/// characters, control characters replaced.
fn printable(name: &str) -> String {
    name.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}
