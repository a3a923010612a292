//! `start --demo`: a local node named `demo`, served by an in-process agent as the current
//! user, so a newcomer has a terminal at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_agent::{AgentConfig, ProxySetting};
use portcullis_gateway::Gateway;
use portcullis_gateway::audit::Event;
use portcullis_gateway::policy;
use portcullis_gateway::secret;
use portcullis_gateway::store::now;
use portcullis_proto::tunnel::JoinToken;

/// The demo node's name.
pub const NODE: &str = "demo";
/// The role that reaches it.
pub const ROLE: &str = "demo";

/// Prepares the demo node's role and token, then runs its agent until the gateway stops.
pub async fn start(gateway: Arc<Gateway>, local: SocketAddr) -> anyhow::Result<String> {
    let login = current_user();
    ensure_role(&gateway, &login).await?;
    let data_dir = gateway.data.path("demo-agent");
    let joined = data_dir.join(portcullis_agent::identity::IDENTITY).exists();
    let mut config = AgentConfig::new(NODE, &data_dir);
    let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
    config.gateway = Some(format!("{host}:{}", local.port()));
    config.proxy = ProxySetting::Direct;
    config.inventory = true;
    if !joined {
        // A demo node left by an earlier data dir without its agent identity: make it anew.
        if gateway.store.get_node(NODE).await?.is_some_and(|n| n.source == "agent") {
            gateway.store.remove_node(NODE).await?;
        }
        let secret = secret::token();
        let labels = BTreeMap::from([(ROLE.to_string(), "true".to_string())]);
        gateway.store.create_token(&secret::hash(&secret), &labels, now() + 600).await?;
        config.token = Some(JoinToken { secret, pin: gateway.tls.pin.clone() });
    }
    let mut shutdown = gateway.shutdown.subscribe();
    tokio::spawn(async move {
        if let Err(err) = portcullis_agent::run(config, async move { shutdown.wait().await }).await {
            tracing::error!("demo agent stopped: {err:#}");
        }
    });
    Ok(login)
}

async fn ensure_role(gateway: &Gateway, login: &str) -> anyhow::Result<()> {
    if gateway.store.list_roles().await?.iter().any(|r| r.name == ROLE) {
        return Ok(());
    }
    let text = format!(
        "[[role]]\nname = \"{ROLE}\"\nnodes = {{ {ROLE} = \"true\" }}\nlogins = [\"{login}\"]\n\
         allow = [\"shell\", \"exec\", \"file_transfer\"]\nrecord = true\nsource_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n"
    );
    let roles = policy::parse_roles_toml(&text)?;
    let rows: Vec<(String, String)> =
        roles.iter().map(|r| (r.name().to_string(), policy::to_toml(std::slice::from_ref(r)))).collect();
    gateway.store.put_roles(&rows, false).await?;
    gateway.audit.log(Event::new("role.apply").field("roles", ROLE).field("actor", "start --demo")).await
}

/// The user this process runs as.
pub fn current_user() -> String {
    if let Ok(user) = std::env::var("USER")
        && !user.is_empty()
    {
        return user;
    }
    std::process::Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}
