//! `portcullis agent`: run the node agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use portcullis_agent::{AgentConfig, ProxySetting};
use portcullis_proto::tunnel::JoinToken;

/// Arguments of `agent`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gateway's shared port, HOST:PORT; remembered in the data dir after the join.
    #[arg(long, value_name = "HOST:PORT", env = "PORTCULLIS_GATEWAY")]
    gateway: Option<String>,
    /// One-time join token (`portcullis ctl tokens create`); needed only until the agent has joined.
    #[arg(long, value_name = "TOKEN", env = "PORTCULLIS_JOIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Node name to join as [default: this host's name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// HTTP CONNECT proxy, http://[user:pass@]host:port, or "none" [default: HTTPS_PROXY unless NO_PROXY matches].
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Labels reported at the join, k=v,... (GPU inventory labels are added).
    #[arg(long, value_name = "K=V,...", value_delimiter = ',')]
    labels: Vec<String>,
    /// Data directory: SSH host key and, after the join, the agent's identity.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_AGENT_DATA_DIR", default_value = "portcullis-agent")]
    data_dir: PathBuf,
    /// Longest wait between reconnects.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    reconnect_max: Duration,
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(portcullis_agent::run(config, wait_for_signal()))?;
    Ok(ExitCode::SUCCESS)
}

fn config(args: Args) -> anyhow::Result<AgentConfig> {
    let name = match args.name {
        Some(name) => name,
        None => portcullis_agent::default_name()?,
    };
    if !portcullis_agent::valid_name(&name) {
        bail!("--name {name:?}: 1-64 of a-z 0-9 . _ -, not starting with . or -");
    }
    let mut config = AgentConfig::new(name, args.data_dir);
    config.gateway = args.gateway;
    config.token = args.token.map(|t| JoinToken::parse(&t)).transpose().context("--token")?;
    config.proxy = match args.proxy.as_deref() {
        None => ProxySetting::FromEnv,
        Some("none") => ProxySetting::Direct,
        Some(url) => ProxySetting::Url(url.to_string()),
    };
    config.labels = parse_labels(&args.labels)?;
    config.reconnect_max = args.reconnect_max;
    Ok(config)
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    portcullis_proto::labels::parse(pairs).map_err(|e| anyhow::anyhow!("--labels: {e}"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
