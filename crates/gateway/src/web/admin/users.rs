//! Accounts: the list, invites, lock and unlock, expiry, TOTP reset.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::MaybeCaller;
use super::super::error::{ApiError, Body};
use crate::admin::Request;
use crate::gateway::Gateway;
use crate::policy::Permission;
use crate::store::rfc3339;

/// `GET /api/users` (`users.manage`): every account, by name.
pub async fn list(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::UsersManage)?;
    let users: Vec<Value> = gateway.store.list_users().await?.iter().map(user_json).collect();
    Ok(Json(json!({ "users": users })))
}

fn user_json(u: &crate::store::UserRow) -> Value {
    json!({
        "name": u.name, "roles": u.roles, "enrolled": u.enrolled, "keys": u.keys, "locked": u.locked,
        "expires": u.expires_at.map(|e| rfc3339(Some(e))),
    })
}

/// `POST /api/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    roles: Vec<String>,
    ttl: Option<String>,
}

/// `POST /api/users` (`users.manage`): a new account and its one-time invite URL.
pub async fn invite(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    body: Result<Body<NewUser>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::UsersManage)?;
    let Body(new) = body?;
    let mut granted = Vec::new();
    for row in gateway.store.list_roles().await?.into_iter().filter(|r| new.roles.contains(&r.name)) {
        granted.extend(crate::policy::parse_roles_toml(&row.definition)?);
    }
    super::may_grant(&caller, &granted)?;
    let ttl = new.ttl.filter(|t| !t.is_empty());
    let request = Request::UsersAdd { name: new.name.clone(), roles: new.roles, ttl };
    let url = super::text(super::run(&gateway, &caller, request).await?);
    Ok(Json(json!({ "name": new.name, "invite_url": url })))
}

/// `POST /api/users/{name}/{action}` (`users.manage`): lock, unlock, expire or reset-totp.
pub async fn act(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    Path((name, action)): Path<(String, String)>,
    _: super::NoBody,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::UsersManage)?;
    let request = match action.as_str() {
        "lock" => Request::UsersLock { name: name.clone() },
        "unlock" => Request::UsersUnlock { name: name.clone() },
        "expire" => Request::UsersExpire { name: name.clone() },
        "reset-totp" => Request::UsersResetTotp { name: name.clone() },
        _ => return Err(ApiError::NotFound),
    };
    if gateway.store.get_user(&name).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let answer = super::run(&gateway, &caller, request).await?;
    let user = gateway.store.list_users().await?.into_iter().find(|u| u.name == name).as_ref().map(user_json);
    let mut out = json!({ "user": user });
    if action == "reset-totp" {
        out["invite_url"] = json!(super::text(answer));
    }
    Ok(Json(out))
}
