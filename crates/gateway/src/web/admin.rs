//! The admin console's API (docs/admin.md): live sessions, the audit log, users, nodes,
//! join tokens and roles. Every path needs one permission and answers the common 404 to
//! anyone without it. Changes go through [`crate::admin::handle`], the same code the admin
//! socket runs, so both faces validate and audit alike; the web user is the `actor`.
//!
//! Handlers take their JSON body as a `Result` and look at it only after the permission
//! check: a body rejected first would answer 400 where the caller must get 404.

pub mod audit;
pub mod nodes;
pub mod roles;
pub mod sessions;
pub mod users;

use axum::extract::FromRequest;

use super::auth::Caller;
use super::error::ApiError;
use crate::admin::{self, Request, Response};
use crate::gateway::Gateway;

/// Longest page of a list.
pub const MAX_LIMIT: i64 = 500;
/// A page's length when none is asked for.
pub const DEFAULT_LIMIT: i64 = 50;

/// Runs one admin request as the web user `caller`; a refusal is 400 with its reason.
pub async fn run(gateway: &Gateway, caller: &Caller, request: Request) -> Result<Response, ApiError> {
    let actor = format!("web {}", caller.user.name);
    match admin::handle(gateway, request, &actor).await {
        Ok(response) if response.ok => Ok(response),
        Ok(response) => Err(ApiError::BadRequest(response.error.unwrap_or_else(|| "refused".into()))),
        Err(err) => Err(ApiError::BadRequest(format!("{err:#}"))),
    }
}

/// The body of a request that needs none, read (up to 16 KiB) and dropped: a refusal sent
/// before an HTTP/2 request's body was read resets the stream, which clients report as an
/// error rather than the 404 they must see.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let _ = axum::body::to_bytes(request.into_body(), 16 * 1024).await;
        Ok(NoBody)
    }
}

/// Refuses (403) to hand out a permission the caller does not hold themselves (from where
/// they are): a user manager cannot make an admin, a role manager cannot write a role
/// stronger than their own.
pub fn may_grant(caller: &Caller, roles: &[crate::policy::Role]) -> Result<(), ApiError> {
    for role in roles {
        let missing: Vec<&str> = role
            .allow()
            .iter()
            .filter(|&&perm| !crate::policy::permitted(&caller.identity, caller.client, perm))
            .map(|perm| perm.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::Refused(format!(
                "role {:?} grants {} which you do not hold",
                role.name(),
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// The one-line text of an admin answer (a URL, a message).
pub fn text(response: Response) -> String {
    response.text.unwrap_or_default()
}

/// A page's length from the query: the default, or at most [`MAX_LIMIT`].
pub fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit {n}: between 1 and {MAX_LIMIT}"))),
    }
}
