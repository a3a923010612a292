//! `GET /api/nodes`: the nodes the caller may open a session on from where they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Caller;
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::policy::{self, Action, NodeInfo};

/// One node as the UI lists it.
#[derive(Serialize)]
pub struct Node {
    /// Unique name.
    pub name: String,
    /// Static and inventory labels (`gpu.model`, `gpu.count`, ...).
    pub labels: BTreeMap<String, String>,
    /// Logins the caller may use there, the default first.
    pub logins: Vec<String>,
    /// For agent nodes, whether the agent is connected; `null` for agentless nodes.
    pub online: Option<bool>,
    /// Whether the caller may upload and download files there (`file_transfer`).
    pub file_transfer: bool,
}

/// `GET /api/nodes`.
#[derive(Serialize)]
pub struct Nodes {
    /// By name.
    pub nodes: Vec<Node>,
}

/// Lists the caller's nodes.
pub async fn list(State(gateway): State<Arc<Gateway>>, caller: Caller) -> Result<Json<Nodes>, ApiError> {
    let rows = gateway.store.list_nodes().await?;
    let infos: Vec<NodeInfo> =
        rows.iter().map(|n| NodeInfo { name: n.name.clone(), labels: n.labels.clone() }).collect();
    let mut nodes: Vec<Node> = policy::visible_nodes(&caller.identity, caller.client, &infos)
        .into_iter()
        .map(|(info, logins)| {
            let agent = rows.iter().any(|r| r.name == info.name && r.source == "agent");
            let file_transfer = logins.iter().any(|login| {
                policy::authorize(&caller.identity, Some(info), Some(login), caller.client, Action::FileTransfer)
                    .is_ok()
            });
            Node {
                name: info.name.clone(),
                labels: info.labels.clone(),
                logins,
                online: agent.then(|| gateway.tunnels.online(&info.name)),
                file_transfer,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Nodes { nodes }))
}
