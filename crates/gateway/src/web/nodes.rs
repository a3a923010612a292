//! `GET /api/nodes`: the nodes the caller may open a session on from where they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::auth::Caller;
use super::error::ApiError;
use crate::gateway::Gateway;
use crate::policy::{self, Action, NodeInfo, Permission};

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
    /// For callers holding `nodes.manage`: how the node is reached and pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manage: Option<Manage>,
}

/// What a node manager sees of a node besides what a vendor sees.
#[derive(Serialize)]
pub struct Manage {
    /// `agent`, `admin` (added by `ctl nodes add` or the console) or `config`.
    pub source: String,
    /// The sshd's `host:port`, for agentless nodes.
    pub addr: Option<String>,
    /// SHA-256 fingerprint of the pinned host key, if one is pinned.
    pub host_key: Option<String>,
    /// The labels an operator set (an agent's inventory labels left out).
    pub labels_static: BTreeMap<String, String>,
}

/// `GET /api/nodes`.
#[derive(Serialize)]
pub struct Nodes {
    /// By name.
    pub nodes: Vec<Node>,
}

/// Lists the caller's nodes; a caller holding `nodes.manage` gets every node, with [`Manage`].
pub async fn list(State(gateway): State<Arc<Gateway>>, caller: Caller) -> Result<Json<Nodes>, ApiError> {
    let rows = gateway.store.list_nodes().await?;
    let infos: Vec<NodeInfo> =
        rows.iter().map(|n| NodeInfo { name: n.name.clone(), labels: n.labels.clone() }).collect();
    let manager = policy::permitted(&caller.identity, caller.client, Permission::NodesManage);
    let mut usable: BTreeMap<&str, Vec<String>> = policy::visible_nodes(&caller.identity, caller.client, &infos)
        .into_iter()
        .map(|(info, logins)| (info.name.as_str(), logins))
        .collect();
    let nodes = rows
        .iter()
        .filter_map(|row| {
            let logins = usable.remove(row.name.as_str());
            (manager || logins.is_some()).then(|| (row, logins.unwrap_or_default()))
        })
        .map(|(row, logins)| {
            let info = NodeInfo { name: row.name.clone(), labels: row.labels.clone() };
            let file_transfer = logins.iter().any(|login| {
                policy::authorize(&caller.identity, Some(&info), Some(login), caller.client, Action::FileTransfer)
                    .is_ok()
            });
            let agent = row.source == "agent";
            Node {
                name: row.name.clone(),
                labels: row.labels.clone(),
                logins,
                online: agent.then(|| gateway.tunnels.online(&row.name)),
                file_transfer,
                manage: manager.then(|| Manage {
                    source: row.source.clone(),
                    addr: row.addr.clone(),
                    host_key: row.host_key.as_deref().and_then(crate::node::fingerprint_of),
                    labels_static: row
                        .labels
                        .iter()
                        .filter(|(k, _)| !agent || !crate::admin::is_inventory_label(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }),
            }
        })
        .collect();
    Ok(Json(Nodes { nodes }))
}
