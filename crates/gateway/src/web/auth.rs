//! Who is asking: the client address of every request, and the signed-in caller behind
//! the session cookie, checked afresh on every request (session alive, user neither
//! locked, expired nor removed) with the CSRF token on every state-changing method.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};

use super::client_addr::client_address;
use super::error::ApiError;
use super::session;
use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::policy::{self, Identity, Permission};
use crate::secret;
use crate::store::{UserRow, WebSessionRow, now};

/// The header state-changing requests carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session's `last_seen` is written at most this often.
const TOUCH_AFTER_SECS: i64 = 60;

/// A request's client address (see [`client_address`]).
#[derive(Debug, Clone, Copy)]
pub struct Client(pub IpAddr);

impl FromRequestParts<Arc<Gateway>> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<Peer>().ok_or_else(|| anyhow::anyhow!("no peer on the request"))?;
        let values: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        client_address(peer.client.ip(), &values, &gateway.config.listen.trusted_proxies)
            .map(Client)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    }
}

/// A signed-in user making this request.
pub struct Caller {
    /// The web session.
    pub session: WebSessionRow,
    /// The user, as stored.
    pub user: UserRow,
    /// The user's roles.
    pub identity: Identity,
    /// The request's client address.
    pub client: IpAddr,
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        let Client(client) = Client::from_request_parts(parts, gateway).await?;
        authenticate(gateway, &parts.headers, client, !is_safe(&parts.method)).await
    }
}

impl Caller {
    /// The caller of a WebSocket upgrade. A browser cannot add headers to one, so there is
    /// no CSRF token: the caller must have checked `Origin` first.
    pub async fn of_websocket(gateway: &Gateway, headers: &HeaderMap, client: IpAddr) -> Result<Caller, ApiError> {
        authenticate(gateway, headers, client, false).await
    }
}

/// The caller if signed in (and, for state changes, carrying the CSRF token); never rejects,
/// for paths that answer 404 to anyone who may not know of them.
pub struct MaybeCaller(pub Option<Caller>);

impl MaybeCaller {
    /// The caller, if they hold `permission` from where they are; else the 404 of an unknown path.
    pub fn holding(self, permission: Permission) -> Result<Caller, ApiError> {
        match self.0 {
            Some(caller) if policy::permitted(&caller.identity, caller.client, permission) => Ok(caller),
            _ => Err(ApiError::NotFound),
        }
    }
}

impl FromRequestParts<Arc<Gateway>> for MaybeCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(Caller::from_request_parts(parts, gateway).await.ok()))
    }
}

async fn authenticate(
    gateway: &Gateway,
    headers: &HeaderMap,
    client: IpAddr,
    csrf_required: bool,
) -> Result<Caller, ApiError> {
    let token = session::cookie_value(headers).ok_or(ApiError::Unauthorized)?;
    let id_hash = secret::hash(token);
    let row = gateway.store.web_session(&id_hash).await?.ok_or(ApiError::Unauthorized)?;
    let at = now();
    let open = !gateway.web.terminals_of(&id_hash).is_empty();
    if !session::alive(&row, at, open) {
        session::end(gateway, &id_hash).await?;
        return Err(ApiError::Unauthorized);
    }
    let user = match gateway.store.get_user(&row.user).await? {
        Some(user) if user.active_at(at) => user,
        _ => {
            // Locked, expired or removed: every session and terminal of theirs ends now.
            gateway.store.delete_user_web_sessions(&row.user).await?;
            gateway.sessions.kill_user(&row.user);
            return Err(ApiError::Unauthorized);
        }
    };
    if csrf_required {
        let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !secret::equal(sent, row.csrf.as_bytes()) {
            return Err(ApiError::Forbidden);
        }
    }
    if at - row.last_seen >= TOUCH_AFTER_SECS {
        gateway.store.touch_web_session(&id_hash).await?;
    }
    let identity = gateway.identity(&user).await?;
    Ok(Caller { session: row, user, identity, client })
}

/// Methods that never change state (and so need no CSRF token).
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
