//! Nodes and the join tokens agents use: static labels, host-key re-pinning, tokens.

use std::collections::BTreeMap;
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

/// `PUT /api/nodes/{name}/labels`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    labels: BTreeMap<String, String>,
}

/// `PUT /api/nodes/{name}/labels` (`nodes.manage`): replaces the node's static labels.
pub async fn set_labels(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    Path(name): Path<String>,
    body: Result<Body<Labels>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::NodesManage)?;
    if gateway.store.get_node(&name).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let Body(Labels { labels }) = body?;
    super::run(&gateway, &caller, Request::NodesLabel { name: name.clone(), labels }).await?;
    let node = gateway.store.get_node(&name).await?;
    Ok(Json(json!({ "name": name, "labels": node.map(|n| n.labels) })))
}

/// `POST /api/nodes/{name}/repin` (`nodes.manage`): forgets the pinned host key.
pub async fn repin(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    Path(name): Path<String>,
    _: super::NoBody,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::NodesManage)?;
    if gateway.store.get_node(&name).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let message = super::text(super::run(&gateway, &caller, Request::NodesRepin { name }).await?);
    Ok(Json(json!({ "message": message })))
}

/// `GET /api/tokens` (`nodes.manage`): join tokens, newest first.
pub async fn tokens(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::NodesManage)?;
    let listed = super::run(&gateway, &caller, Request::TokensLs).await?;
    Ok(Json(json!({ "tokens": listed.rows })))
}

/// `POST /api/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    ttl: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `POST /api/tokens` (`nodes.manage`): a one-time join token, shown once.
pub async fn create_token(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    body: Result<Body<NewToken>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::NodesManage)?;
    let Body(NewToken { ttl, labels }) = body?;
    for (key, value) in &labels {
        portcullis_proto::labels::check(key, value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let ttl = ttl.filter(|t| !t.is_empty());
    let token = super::text(super::run(&gateway, &caller, Request::TokensCreate { ttl, labels }).await?);
    Ok(Json(json!({ "token": token })))
}

/// `POST /api/tokens/{id}/revoke` (`nodes.manage`).
pub async fn revoke_token(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    Path(id): Path<String>,
    _: super::NoBody,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::NodesManage)?;
    let message = super::text(super::run(&gateway, &caller, Request::TokensRevoke { id }).await?);
    Ok(Json(json!({ "message": message })))
}
