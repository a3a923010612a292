//! Invite and setup links: `GET /api/invite/{token}`, `POST /api/invite/{token}/enroll`,
//! `POST /api/invite/{token}`. The UI shows them at `/invite/{token}` and `/setup/{token}`;
//! the API is the same for both. An unknown, used or expired token is 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::auth::Client;
use super::error::{ApiError, Body};
use super::login::signed_in;
use super::session;
use crate::accounts::invite::{self, RedeemRefused};
use crate::gateway::Gateway;
use crate::store::rfc3339;

/// `GET /api/invite/{token}`.
#[derive(Serialize)]
pub struct InviteInfo {
    /// The invited user's name.
    pub user: String,
    /// When the link stops working (RFC 3339).
    pub expires: String,
}

/// Who an invite is for.
pub async fn show(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<InviteInfo>, ApiError> {
    let invite = invite::lookup(&gateway, &token, client).await?.map_err(|_| ApiError::NotFound)?;
    Ok(Json(InviteInfo { user: invite.user, expires: rfc3339(Some(invite.expires_at)) }))
}

/// `POST /api/invite/{token}/enroll`.
#[derive(Serialize)]
pub struct EnrollInfo {
    /// The TOTP secret, base32, for typing into an authenticator.
    pub secret_base32: String,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// Makes a TOTP secret for the invite (a new one each call; the last one counts).
pub async fn enroll(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<EnrollInfo>, ApiError> {
    let invite = invite::lookup(&gateway, &token, client).await?.map_err(|_| ApiError::NotFound)?;
    let enrollment = invite::enroll(&gateway, &token, &invite).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(EnrollInfo { secret_base32: enrollment.secret_base32, otpauth_uri: enrollment.otpauth_uri }))
}

/// `POST /api/invite/{token}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    password: String,
    totp_code: String,
}

/// Sets password and TOTP, uses the invite up, and signs the user in.
pub async fn redeem(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    Path(token): Path<String>,
    Body(body): Body<RedeemBody>,
) -> Result<Response, ApiError> {
    let invite = invite::lookup(&gateway, &token, client).await?.map_err(|_| ApiError::NotFound)?;
    match invite::redeem(&gateway, &token, &invite, &body.password, &body.totp_code, client).await? {
        Ok(()) => {
            let event = crate::audit::Event::new("user.login")
                .user(Some(&invite.user))
                .src_ip(client)
                .field("method", "invite");
            gateway.audit.log(event).await?;
            Ok(signed_in(session::start(&gateway, &invite.user, client).await?))
        }
        Err(RedeemRefused::Void) => Err(ApiError::NotFound),
        Err(RedeemRefused::Rejected(why)) => Err(ApiError::BadRequest(why)),
    }
}
