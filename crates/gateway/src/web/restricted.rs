//! Paths only some callers may know of. To a caller whose roles (from where they are) do
//! not grant the permission, or who is not signed in, each answers exactly like a path
//! that does not exist. Read-only lists for now; the admin console builds on them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::{Caller, MaybeCaller};
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::policy::{self, Permission};
use crate::store::{AuditFilter, RecordingFilter, rfc3339};

/// Longest list answered.
const LIMIT: i64 = 500;

/// The caller, if they hold `permission` from where they are; else the 404 of an unknown path.
fn holding(maybe: MaybeCaller, permission: Permission) -> Result<Caller, ApiError> {
    match maybe.0 {
        Some(caller) if policy::permitted(&caller.identity, caller.client, permission) => Ok(caller),
        _ => Err(ApiError::NotFound),
    }
}

/// `GET /api/recordings` (`recordings.read`): the most recent recordings.
pub async fn recordings(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    holding(maybe, Permission::RecordingsRead)?;
    let filter = RecordingFilter { limit: Some(LIMIT), ..Default::default() };
    let rows: Vec<Value> = gateway
        .store
        .list_recordings(&filter)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "session_id": r.session_id, "user": r.user, "node": r.node, "login": r.login,
                "client": r.client_addr, "command": r.command, "bytes": r.bytes, "complete": r.complete,
                "start": rfc3339(Some(r.started_at)), "end": r.ended_at.map(|e| rfc3339(Some(e))),
            })
        })
        .collect();
    Ok(Json(json!({ "recordings": rows })))
}

/// `GET /api/audit` (`audit.read`): the most recent audit events, newest last.
pub async fn audit(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    holding(maybe, Permission::AuditRead)?;
    let lines = gateway.store.query_audit(&AuditFilter::default(), LIMIT).await?;
    let events = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(anyhow::Error::from)?;
    Ok(Json(json!({ "events": events })))
}

/// `GET /api/sessions` (`sessions.observe`): live sessions.
pub async fn sessions(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    holding(maybe, Permission::SessionsObserve)?;
    let rows: Vec<Value> = gateway
        .sessions
        .list()
        .iter()
        .map(|l| {
            let r = &l.row;
            json!({
                "id": r.id, "user": r.user, "node": r.node, "login": r.login, "client": r.client_addr,
                "kind": r.kind, "recorded": r.recorded, "start": rfc3339(Some(r.started_at)),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": rows })))
}

/// `GET /api/users` (`users.manage`): every account.
pub async fn users(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    holding(maybe, Permission::UsersManage)?;
    let rows: Vec<Value> = gateway
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| {
            json!({
                "name": u.name, "roles": u.roles, "enrolled": u.enrolled, "keys": u.keys, "locked": u.locked,
                "expires": u.expires_at.map(|e| rfc3339(Some(e))),
            })
        })
        .collect();
    Ok(Json(json!({ "users": rows })))
}
