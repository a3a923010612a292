//! The agent's life: join once, then keep a tunnel to the gateway, reconnecting with back-off.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use portcullis_proto::tunnel::{JoinRequest, JoinResponse, JoinToken};
use russh::keys::ssh_key::{PrivateKey, PublicKey};

use crate::backoff::{Backoff, STABLE_AFTER};
use crate::dial::{GatewayAddr, ProxySetting, dial};
use crate::identity::{DataDir, Identity, Joined};
use crate::sessions::{Logins, Node};
use crate::tunnel::{self, Ended};

/// Default cap of the reconnect back-off.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(60);

/// Everything the agent needs to run.
#[derive(Clone)]
pub struct AgentConfig {
    /// The gateway, `HOST:PORT`; may be left out once joined (identity.json has it).
    pub gateway: Option<String>,
    /// The join token; needed only until the agent has joined.
    pub token: Option<JoinToken>,
    /// The node name to join as.
    pub name: String,
    /// How to reach the gateway.
    pub proxy: ProxySetting,
    /// Labels to report at join (inventory labels are added; these win).
    pub labels: BTreeMap<String, String>,
    /// The data dir (host key, identity).
    pub data_dir: PathBuf,
    /// Cap of the reconnect back-off.
    pub reconnect_max: Duration,
    /// Whether to add inventory labels (host, OS, kernel, CPUs, memory, `nvidia-smi` GPUs) at join.
    pub inventory: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the token's secret nor a proxy password reaches a log line.
        let proxy = match &self.proxy {
            ProxySetting::Url(url) => crate::proxy::Proxy::parse(url).map_or("(invalid)".into(), |p| p.to_string()),
            other => format!("{other:?}"),
        };
        f.debug_struct("AgentConfig")
            .field("gateway", &self.gateway)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("name", &self.name)
            .field("proxy", &proxy)
            .field("labels", &self.labels)
            .field("data_dir", &self.data_dir)
            .field("reconnect_max", &self.reconnect_max)
            .field("inventory", &self.inventory)
            .finish()
    }
}

impl AgentConfig {
    /// A configuration with defaults: proxy from the environment, no labels, back-off up to a minute.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            gateway: None,
            token: None,
            name: name.into(),
            proxy: ProxySetting::FromEnv,
            labels: BTreeMap::new(),
            data_dir: data_dir.into(),
            reconnect_max: DEFAULT_RECONNECT_MAX,
            inventory: true,
        }
    }
}

/// Whether `name` is a valid node name (1-64 of `a-z 0-9 . _ -`, not starting with `.` or `-`).
pub fn valid_name(name: &str) -> bool {
    portcullis_proto::name::is_valid(name)
}

/// This machine's host name, lower-cased, as a node name.
pub fn default_name() -> anyhow::Result<String> {
    let from_file = std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string());
    let name = match from_file.filter(|s| !s.is_empty()) {
        Some(name) => name,
        None => {
            let output = std::process::Command::new("hostname").output().context("cannot run `hostname`")?;
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        }
    };
    let name = name.to_ascii_lowercase();
    if !valid_name(&name) {
        bail!("the host name {name:?} is not a valid node name (a-z 0-9 . _ -): give one with --name");
    }
    Ok(name)
}

/// Runs the agent until `shutdown` completes: joins if it has no identity yet, then keeps
/// the tunnel up. Fails on a refused join or a broken data dir; network trouble is retried.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut shutdown = std::pin::pin!(shutdown);
    if let ProxySetting::Url(url) = &config.proxy {
        crate::proxy::Proxy::parse(url).context("--proxy")?;
    }
    let dir = DataDir::open(&config.data_dir)?;
    let host_key = dir.host_key()?;
    let joined = match dir.joined()? {
        Some(joined) => {
            tracing::info!(node = %joined.identity.node, "joined earlier; the data dir's identity applies");
            joined
        }
        None => match join(&config, &dir, &host_key, shutdown.as_mut()).await? {
            Some(joined) => joined,
            None => return Ok(()),
        },
    };
    let gateway_text = config.gateway.clone().unwrap_or_else(|| joined.identity.gateway.clone());
    let gateway = GatewayAddr::parse(&gateway_text)?;
    let user_ca = PublicKey::from_openssh(&joined.identity.user_ca).context("identity.json: user_ca")?;
    let node = Arc::new(Node::new(host_key.clone(), user_ca, Logins::detect().await?));
    let tls = crate::pin::client_config(&joined.identity.pin, Some((&joined.cert_pem, &joined.key_pem)))?;
    let ssh = tunnel::config(host_key);
    let span = tracing::info_span!("tunnel", node = %joined.identity.node, %gateway);
    let mut backoff = Backoff::new(config.reconnect_max);
    loop {
        let started = Instant::now();
        let attempt = async {
            let stream = tokio::select! {
                stream = dial(&gateway, &config.proxy, tls.clone()) => stream?,
                () = shutdown.as_mut() => return Ok(Ended::Shutdown),
            };
            tracing::debug!("connected");
            tunnel::serve(ssh.clone(), node.clone(), stream, shutdown.as_mut()).await
        };
        match tracing::Instrument::instrument(attempt, span.clone()).await {
            Ok(Ended::Shutdown) => return Ok(()),
            // After a while: most likely an unused tunnel sent back to idle, so no alarm.
            Ok(Ended::Closed) if started.elapsed() > STABLE_AFTER => {
                span.in_scope(|| tracing::info!("tunnel closed by the gateway"))
            }
            Ok(Ended::Closed) => span.in_scope(|| tracing::warn!("tunnel closed by the gateway")),
            Err(err) => span.in_scope(|| tracing::warn!("tunnel down: {}", explain(&err))),
        }
        if started.elapsed() > STABLE_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        span.in_scope(|| tracing::info!("reconnecting in {delay:.1?}"));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.as_mut() => return Ok(()),
        }
    }
}

/// Joins with the token, retrying network failures; `None` when shut down first.
async fn join<F: Future<Output = ()>>(
    config: &AgentConfig,
    dir: &DataDir,
    host_key: &PrivateKey,
    mut shutdown: Pin<&mut F>,
) -> anyhow::Result<Option<Joined>> {
    let Some(token) = &config.token else {
        bail!("{} has no identity yet: give a join token (--token) to join", config.data_dir.display());
    };
    let Some(gateway_text) = &config.gateway else { bail!("the agent has not joined yet: give --gateway HOST:PORT") };
    let gateway = GatewayAddr::parse(gateway_text)?;
    if !valid_name(&config.name) {
        bail!("{:?} is not a valid node name (1-64 of a-z 0-9 . _ -, not starting with . or -)", config.name);
    }
    let mut labels = config.labels.clone();
    if config.inventory {
        for (key, value) in crate::inventory::collect().await {
            labels.entry(key).or_insert(value);
        }
    }
    let mut public = host_key.public_key().clone();
    public.set_comment("");
    let request =
        JoinRequest { token: token.secret.clone(), name: config.name.clone(), labels, host_key: public.to_openssh()? };
    let tls = crate::pin::client_config(&token.pin, None)?;
    let mut backoff = Backoff::new(config.reconnect_max);
    let span = tracing::info_span!("join", name = %config.name, %gateway);
    loop {
        let attempt = async {
            let stream = dial(&gateway, &config.proxy, tls.clone()).await?;
            crate::join::exchange(stream, &request).await
        };
        let result = tokio::select! {
            result = tracing::Instrument::instrument(attempt, span.clone()) => result,
            () = shutdown.as_mut() => return Ok(None),
        };
        match result {
            Ok(JoinResponse::Joined { node, cert_pem, key_pem, user_ca }) => {
                PublicKey::from_openssh(&user_ca).context("the gateway sent a user CA that is not an OpenSSH key")?;
                let identity = Identity { node, gateway: gateway.to_string(), pin: token.pin.clone(), user_ca };
                let joined = Joined { identity, cert_pem, key_pem };
                dir.save(&joined)?;
                span.in_scope(|| tracing::info!(node = %joined.identity.node, "joined"));
                return Ok(Some(joined));
            }
            Ok(JoinResponse::Refused { reason }) => bail!("the gateway refused the join: {reason}"),
            // Whoever answered is not the gateway that made the token: retrying cannot help,
            // and the token was not sent.
            Err(err) if pin_mismatch(&err) => bail!(
                "{err:#}: the gateway's TLS certificate does not match the token's pin, so the token was not \
                 sent. Is {gateway} the gateway that made the token, or is something (a TLS-inspecting proxy) \
                 intercepting the connection?"
            ),
            Err(err) => span.in_scope(|| tracing::warn!("join failed: {}", explain(&err))),
        }
        let delay = backoff.next_delay();
        span.in_scope(|| tracing::info!("retrying in {delay:.1?}"));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.as_mut() => return Ok(None),
        }
    }
}

/// The TLS errors in an error chain, whether bare or inside an I/O error.
fn tls_errors(err: &anyhow::Error) -> impl Iterator<Item = &rustls::Error> {
    err.chain().filter_map(|cause| {
        cause
            .downcast_ref::<rustls::Error>()
            .or_else(|| cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()?.downcast_ref()))
    })
}

/// Whether the dial failed because the gateway's certificate is not the pinned one.
fn pin_mismatch(err: &anyhow::Error) -> bool {
    tls_errors(err).any(|tls| {
        matches!(tls, rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
    })
}

/// An error chain, with a hint when the gateway refused the agent's TLS certificate or
/// presented one that is not the pinned one.
fn explain(err: &anyhow::Error) -> String {
    if pin_mismatch(err) {
        return format!(
            "{err:#} (the gateway's TLS certificate is not the one pinned at the join: if the gateway's \
             certificate was replaced, join again with a new token; otherwise something is intercepting \
             the connection)"
        );
    }
    let refused = tls_errors(err).any(|tls| {
        matches!(
            tls,
            rustls::Error::AlertReceived(
                rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::CertificateRevoked
                    | rustls::AlertDescription::CertificateUnknown
                    | rustls::AlertDescription::CertificateRequired
                    | rustls::AlertDescription::AccessDenied
            )
        )
    });
    if refused {
        format!(
            "{err:#} (the gateway refused this agent's certificate: was the node removed? To join again, delete {} \
             from the data dir and run with a new token)",
            crate::identity::IDENTITY
        )
    } else {
        format!("{err:#}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_the_gateways_rule() {
        for good in ["gpu-01", "dgx.a100_7", "x", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "GPU-01", "-gpu", ".gpu", "gpu 01", "gpu/01", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_token_and_proxy_password() {
        let mut config = AgentConfig::new("gpu-01", "/tmp/x");
        config.token = Some(JoinToken { secret: "topsecret-0123456789".into(), pin: "ab".repeat(32) });
        config.proxy = ProxySetting::Url("http://u:hunter2@proxy:3128".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("topsecret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("proxy:3128"), "{shown}");
    }

    #[tokio::test]
    async fn a_data_dir_without_identity_needs_a_token() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::new("gpu-01", tmp.path());
        config.gateway = Some("127.0.0.1:1".into());
        let err = run(config, std::future::pending()).await.unwrap_err();
        assert!(err.to_string().contains("--token"), "{err}");
    }
}
