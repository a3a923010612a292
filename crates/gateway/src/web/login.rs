//! `POST /api/login`, `POST /api/logout`, `GET /api/me`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{Caller, Client};
use super::error::{ApiError, Body};
use super::session;
use crate::accounts::login::{self, Attempt, Refused};
use crate::gateway::Gateway;
use crate::policy::{self, Permission};
use crate::store::rfc3339;

/// `POST /api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    user: String,
    password: String,
    totp_code: String,
}

/// What a new session tells the browser.
#[derive(Serialize)]
pub struct SignedIn {
    /// The user.
    pub user: String,
    /// Echo this in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    /// When the session ends at the latest (RFC 3339).
    pub session_expires: String,
}

/// The response to a new session: the cookie and [`SignedIn`].
pub fn signed_in(started: session::Started) -> Response {
    let body = SignedIn {
        user: started.row.user.clone(),
        csrf: started.row.csrf.clone(),
        session_expires: rfc3339(Some(started.row.expires_at)),
    };
    ([(header::SET_COOKIE, started.set_cookie)], Json(body)).into_response()
}

/// Signs in with user name, password and TOTP code.
pub async fn login(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    Body(body): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let attempt = Attempt { user: &body.user, password: &body.password, totp_code: &body.totp_code, client };
    match login::login(&gateway, &attempt).await? {
        Ok(user) => Ok(signed_in(session::start(&gateway, &user.name, client).await?)),
        Err(Refused::Invalid) => Err(ApiError::LoginRefused),
        Err(Refused::Throttled) => Err(ApiError::TooManyAttempts),
    }
}

/// Ends the caller's session and its terminals.
pub async fn logout(State(gateway): State<Arc<Gateway>>, caller: Caller) -> Result<Response, ApiError> {
    session::end(&gateway, &caller.session.id_hash).await?;
    let event = crate::audit::Event::new("user.logout").user(Some(&caller.user.name)).src_ip(caller.client);
    gateway.audit.log(event).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, session::clear_cookie())]).into_response())
}

/// `GET /api/me`.
#[derive(Serialize)]
pub struct Me {
    /// The user.
    pub user: String,
    /// Permissions the user's roles grant from this client address.
    pub permissions: Vec<Permission>,
    /// When the account expires (RFC 3339), if it does.
    pub expires: Option<String>,
    /// When this session ends at the latest (RFC 3339).
    pub session_expires: String,
    /// The session's CSRF token, so a reloaded page can carry on.
    pub csrf: String,
}

/// Who the caller is and what they may do from here.
pub async fn me(caller: Caller) -> Json<Me> {
    let permissions =
        Permission::ALL.into_iter().filter(|&p| policy::permitted(&caller.identity, caller.client, p)).collect();
    Json(Me {
        user: caller.user.name.clone(),
        permissions,
        expires: caller.user.expires_at.map(|e| rfc3339(Some(e))),
        session_expires: rfc3339(Some(caller.session.expires_at)),
        csrf: caller.session.csrf.clone(),
    })
}
