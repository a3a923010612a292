//! Redeeming invites (and the first-start setup link, which is an invite for `admin`):
//! look up by the token's hash, enroll a TOTP secret kept with the invite, then set the
//! password and confirm the secret with a first code, once.

use std::net::IpAddr;

use portcullis_proto::totp;

use super::{TOTP_ISSUER, password};
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::secret;
use crate::store::{InviteRow, now};

/// Why an invite cannot be used; the client learns only "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Void {
    /// No invite has this token.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Redeemed before.
    Used,
    /// The account is gone past its own expiry.
    AccountExpired,
    /// The account is locked: nobody may set its password or TOTP until it is unlocked.
    AccountLocked,
}

impl Void {
    fn reason(self) -> &'static str {
        match self {
            Void::Unknown => "unknown token",
            Void::Expired => "invite expired",
            Void::Used => "invite already used",
            Void::AccountExpired => "account expired",
            Void::AccountLocked => "account locked",
        }
    }
}

/// What enrolling gives the user to put in an authenticator app.
pub struct Enrollment {
    /// The secret, base32.
    pub secret_base32: String,
    /// The `otpauth://` URI for a QR code.
    pub otpauth_uri: String,
}

/// Why a redeem is refused, in words the user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemRefused {
    /// The invite cannot be used (answered as "not found").
    Void,
    /// The password breaks the policy, or no secret was enrolled, or the code is wrong.
    Rejected(String),
}

/// A usable invite, or why not; refusals worth knowing of are audited.
pub async fn lookup(gateway: &Gateway, token: &str, client: IpAddr) -> anyhow::Result<Result<InviteRow, Void>> {
    let hash = secret::hash(token);
    // An unknown token is noise (or a typo) and is not audited; a used or expired one is a replay.
    let Some(invite) = gateway.store.invite(&hash).await? else { return Ok(Err(Void::Unknown)) };
    let account = gateway.store.get_user(&invite.user).await?;
    let account_expired = account.as_ref().is_none_or(|user| user.expires_at.is_some_and(|e| e <= now()));
    let account_locked = account.as_ref().is_some_and(|user| user.locked);
    let void = if invite.used_at.is_some() {
        Void::Used
    } else if invite.expires_at <= now() {
        Void::Expired
    } else if account_expired {
        Void::AccountExpired
    } else if account_locked {
        Void::AccountLocked
    } else {
        return Ok(Ok(invite));
    };
    let event = Event::new("invite.refused")
        .user(Some(&invite.user))
        .src_ip(client)
        .field("reason", void.reason())
        .field("invite", &hash[..12]);
    gateway.audit.log(event).await?;
    Ok(Err(void))
}

/// Makes a new TOTP secret and keeps it with the invite until a code confirms it.
pub async fn enroll(gateway: &Gateway, token: &str, invite: &InviteRow) -> anyhow::Result<Option<Enrollment>> {
    let secret = super::new_totp_secret();
    let secret_base32 = totp::base32_encode(&secret);
    if !gateway.store.set_pending_totp(&secret::hash(token), &secret_base32).await? {
        return Ok(None);
    }
    let otpauth_uri = totp::otpauth_uri(TOTP_ISSUER, &invite.user, &secret);
    Ok(Some(Enrollment { secret_base32, otpauth_uri }))
}

/// Sets the password and TOTP secret from a valid first code, and uses the invite up.
pub async fn redeem(
    gateway: &Gateway,
    token: &str,
    invite: &InviteRow,
    new_password: &str,
    totp_code: &str,
    client: IpAddr,
) -> anyhow::Result<Result<(), RedeemRefused>> {
    if let Err(why) = password::check_policy(new_password) {
        return Ok(Err(RedeemRefused::Rejected(why)));
    }
    let Some(pending) = invite.pending_totp.as_deref() else {
        return Ok(Err(RedeemRefused::Rejected("enroll an authenticator first".into())));
    };
    let secret = totp::base32_decode(pending)?;
    let unix = u64::try_from(now()).unwrap_or_default();
    let Some(step) = totp::verify(&secret, totp_code, unix, None) else {
        let event = Event::new("invite.code_failed").user(Some(&invite.user)).src_ip(client);
        gateway.audit.log(event).await?;
        return Ok(Err(RedeemRefused::Rejected(
            "the code does not match; check the authenticator's clock and try the next code".into(),
        )));
    };
    let hash = gateway.accounts.hash_password(new_password).await?;
    let token_hash = secret::hash(token);
    if !gateway.store.redeem_invite(&token_hash, &invite.user, &hash, pending, step as i64).await? {
        return Ok(Err(RedeemRefused::Void));
    }
    let event = Event::new("invite.redeem").user(Some(&invite.user)).src_ip(client).field("invite", &token_hash[..12]);
    gateway.audit.log(event).await?;
    Ok(Ok(()))
}
