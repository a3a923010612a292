//! Who may do what, where and from where: roles in, an [`Authorized`] proof out.
//!
//! A user's access is the union of their roles' grants. A role counts only for
//! clients inside its `source_cidrs`; outside them it grants nothing.

mod permission;
mod role;
mod role_file;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub use permission::{Action, Permission, UnknownPermission};
pub use role::Role;
pub use role_file::{BUILTIN_ROLES_TOML, builtin_roles, parse_roles_toml, to_toml};

/// A signed-in user with their role names resolved; expired or locked users get none.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's name.
    pub user: String,
    /// The user's roles, in the order the user's record lists them.
    pub roles: Vec<Role>,
}

/// A node as policy sees it: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's unique name.
    pub name: String,
    /// Static and inventory labels.
    pub labels: BTreeMap<String, String>,
}

/// Proof that a user may do one action as one login on one node; only [`authorize`] makes it.
#[derive(Debug)]
pub struct Authorized {
    user: String,
    node: String,
    login: String,
    action: Action,
    client: IpAddr,
    record: bool,
    max_session: Option<Duration>,
    roles: Vec<String>,
}

impl Authorized {
    /// The user granted.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The login on the node, as asked for or as picked.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// The action granted.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The client address the grant was judged for.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    /// Whether the session must be recorded.
    pub fn record(&self) -> bool {
        self.record
    }

    /// The longest the session may last, if limited.
    pub fn max_session(&self) -> Option<Duration> {
        self.max_session
    }

    /// Names of the roles that grant this action here, for the audit log.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }
}

/// A refusal, saying no more than the user may know; [`explain`] gives the audit detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The node is unknown, outside the user's roles, or not open to that login.
    #[error("access denied")]
    NoAccess,
    /// The user reaches this node as this login, but no role allows the action.
    #[error("{0} is not permitted")]
    NotPermitted(Action),
}

/// Decides whether `identity`, connecting from `client`, may do `action` as `login` on `node`.
///
/// `node` is `None` when no node has the asked name; that denies exactly as a node
/// outside the user's roles does, and so does a login no role offers there, so a
/// refusal never tells which nodes or logins exist. `login: None` picks the first
/// login of the first role that grants the action on the node.
///
/// Recording: the session is recorded if any applying role that reaches this node as
/// this login says `record = true`, whichever action that role allows; it is unrecorded
/// only when every such role says `record = false`. So holding an unrecorded role
/// never frees a login from a recorded role's recording, but an admin's own login
/// (one no recorded role offers) stays unrecorded.
///
/// `max_session` is the longest among the roles that grant the action, and no limit
/// if any of them has none: grants are a union.
pub fn authorize(
    identity: &Identity,
    node: Option<&NodeInfo>,
    login: Option<&str>,
    client: IpAddr,
    action: Action,
) -> Result<Authorized, Denied> {
    let node = node.ok_or(Denied::NoAccess)?;
    let perm = action.permission();
    let on_node: Vec<&Role> =
        identity.roles.iter().filter(|role| role.applies_from(client) && role.selects(&node.labels)).collect();
    let login = match login {
        Some(login) => login,
        None => on_node
            .iter()
            .filter(|role| role.allows(perm))
            .chain(&on_node)
            .flat_map(|role| role.logins())
            .next()
            .ok_or(Denied::NoAccess)?,
    };
    let reaching: Vec<&Role> = on_node.into_iter().filter(|role| role.logins().iter().any(|l| l == login)).collect();
    if reaching.is_empty() {
        return Err(Denied::NoAccess);
    }
    let granting: Vec<&Role> = reaching.iter().copied().filter(|role| role.allows(perm)).collect();
    if granting.is_empty() {
        return Err(Denied::NotPermitted(action));
    }
    let max_session = granting
        .iter()
        .map(|role| role.max_session())
        .collect::<Option<Vec<Duration>>>()
        .and_then(|limits| limits.into_iter().max());
    Ok(Authorized {
        user: identity.user.clone(),
        node: node.name.clone(),
        login: login.to_owned(),
        action,
        client,
        record: reaching.iter().any(|role| role.record()),
        max_session,
        roles: granting.iter().map(|role| role.name().to_owned()).collect(),
    })
}

/// Says in detail why [`authorize`] decides as it does, for the audit log only; never show it to the user.
pub fn explain(
    identity: &Identity,
    node: Option<&NodeInfo>,
    login: Option<&str>,
    client: IpAddr,
    action: Action,
) -> String {
    let Some(node) = node else {
        return "no such node".to_owned();
    };
    let selecting = |applies: bool| -> Vec<&str> {
        identity
            .roles
            .iter()
            .filter(|role| role.applies_from(client) == applies && role.selects(&node.labels))
            .map(|role| role.name())
            .collect()
    };
    if selecting(true).is_empty() {
        let elsewhere = selecting(false);
        return if elsewhere.is_empty() {
            format!("no role of {} selects node {}", identity.user, node.name)
        } else {
            format!("roles [{}] select node {} but not from {client}", elsewhere.join(", "), node.name)
        };
    }
    let login_text = login.unwrap_or("(default login)");
    match authorize(identity, Some(node), login, client, action) {
        Ok(granted) => format!(
            "granted {action} as {} on {} by roles [{}]",
            granted.login(),
            node.name,
            granted.roles().join(", ")
        ),
        Err(Denied::NotPermitted(_)) => format!(
            "no role allows {action} as {login_text} on {} (roles [{}] select it)",
            node.name,
            selecting(true).join(", ")
        ),
        Err(Denied::NoAccess) => format!(
            "login {login_text} is offered by no role selecting {} (roles [{}])",
            node.name,
            selecting(true).join(", ")
        ),
    }
}

/// Whether any role applying from `client` grants `perm` (for `recordings.read` and the like).
pub fn permitted(identity: &Identity, client: IpAddr, perm: Permission) -> bool {
    identity.roles.iter().any(|role| role.applies_from(client) && role.allows(perm))
}

/// The nodes a user may open a session on from `client`, each with its logins in preference order.
pub fn visible_nodes<'a>(
    identity: &Identity,
    client: IpAddr,
    nodes: &'a [NodeInfo],
) -> Vec<(&'a NodeInfo, Vec<String>)> {
    let session_roles: Vec<&Role> = identity
        .roles
        .iter()
        .filter(|role| role.applies_from(client))
        .filter(|role| Action::ALL.iter().any(|a| role.allows(a.permission())))
        .collect();
    nodes
        .iter()
        .filter_map(|node| {
            let mut logins: Vec<String> = Vec::new();
            for role in session_roles.iter().filter(|r| r.selects(&node.labels)) {
                for login in role.logins() {
                    if !logins.contains(login) {
                        logins.push(login.clone());
                    }
                }
            }
            (!logins.is_empty()).then_some((node, logins))
        })
        .collect()
}
