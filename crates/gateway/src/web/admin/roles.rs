//! Roles: each as TOML, and applying a TOML document of `[[role]]` tables.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::MaybeCaller;
use super::super::error::{ApiError, Body};
use crate::admin::Request;
use crate::gateway::Gateway;
use crate::policy::{self, Permission};

/// `GET /api/roles` (`roles.manage`): every role, by name, as TOML.
pub async fn list(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::RolesManage)?;
    let mut roles = Vec::new();
    for row in gateway.store.list_roles().await? {
        for role in policy::parse_roles_toml(&row.definition)? {
            let toml = policy::to_toml(std::slice::from_ref(&role));
            roles.push(json!({ "name": role.name(), "builtin": row.builtin, "toml": toml }));
        }
    }
    Ok(Json(json!({ "roles": roles })))
}

/// `POST /api/roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    toml: String,
}

/// `POST /api/roles` (`roles.manage`): adds or replaces the document's roles.
pub async fn apply(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    body: Result<Body<Apply>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::RolesManage)?;
    let Body(Apply { toml }) = body?;
    let roles = policy::parse_roles_toml(&toml).map_err(|e| ApiError::BadRequest(format!("{e:#}")))?;
    super::may_grant(&caller, &roles)?;
    let names: Vec<String> = roles.iter().map(|r| r.name().to_string()).collect();
    super::run(&gateway, &caller, Request::RolesApply { toml }).await?;
    Ok(Json(json!({ "applied": names })))
}
