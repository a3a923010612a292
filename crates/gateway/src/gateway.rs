//! The gateway: its state, made once at start, and the loops that serve it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use serde::Serialize;
use tokio::net::{TcpListener, UnixListener};

use crate::audit::{Audit, Event};
use crate::config::Config;
use crate::datadir::{ADMIN_SOCK, DataDir};
use crate::policy::{self, Identity, Role};
use crate::recording::Recorder;
use crate::sessions::Sessions;
use crate::shutdown::Shutdown;
use crate::store::{NodeRow, Store, UserRow};
use crate::{admin, listen, secret};

/// How long the first-start admin setup link stays valid.
pub const SETUP_TTL_SECS: i64 = 24 * 3600;

/// Everything a connection handler may need, with named fields.
pub struct Gateway {
    /// Validated configuration.
    pub config: Config,
    /// Keys and paths of the data dir.
    pub data: DataDir,
    /// The database.
    pub store: Store,
    /// The audit log.
    pub audit: Audit,
    /// TLS server settings.
    pub tls: crate::tls::TlsConfigs,
    /// Connected agents.
    pub tunnels: crate::tunnel::Registry,
    /// Reusable gateway→node connections.
    pub node_pool: crate::node::Pool,
    /// SSH server settings.
    pub ssh: Arc<russh::server::Config>,
    /// Counters.
    pub metrics: Metrics,
    /// Live sessions.
    pub sessions: Sessions,
    /// Writes session recordings.
    pub recorder: Recorder,
    /// Stops every loop.
    pub shutdown: Shutdown,
    /// The address actually bound, once bound.
    pub local_addr: OnceLock<SocketAddr>,
    /// The one-time admin setup token, made on first start.
    pub setup_token: Option<String>,
    /// Web accounts (password hashing limits).
    pub accounts: crate::accounts::Accounts,
    /// Web terminals per web session.
    pub web: crate::web::WebState,
}

/// Counters of the shared port.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted past the allowlist.
    pub accepted: AtomicU64,
    /// Connections closed because their source is outside `listen.allow`.
    pub denied_by_allowlist: AtomicU64,
    /// Connections closed for a PROXY header from an untrusted peer (or a missing required one).
    pub proxy_refused: AtomicU64,
    /// Connections closed because their source already held `listen.max_connections_per_source`.
    pub denied_by_source_limit: AtomicU64,
}

/// A snapshot of [`Metrics`].
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSnapshot {
    /// See [`Metrics::accepted`].
    pub accepted: u64,
    /// See [`Metrics::denied_by_allowlist`].
    pub denied_by_allowlist: u64,
    /// See [`Metrics::proxy_refused`].
    pub proxy_refused: u64,
    /// See [`Metrics::denied_by_source_limit`].
    pub denied_by_source_limit: u64,
}

impl Metrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            denied_by_allowlist: self.denied_by_allowlist.load(Ordering::Relaxed),
            proxy_refused: self.proxy_refused.load(Ordering::Relaxed),
            denied_by_source_limit: self.denied_by_source_limit.load(Ordering::Relaxed),
        }
    }
}

impl Gateway {
    /// Opens the data dir, database and audit log, initialising them on first start.
    pub async fn open(config: Config) -> anyhow::Result<Arc<Gateway>> {
        rustls::crypto::aws_lc_rs::default_provider().install_default().ok();
        let data = DataDir::open(&config)?;
        let tls_origin = match &config.tls {
            Some(files) => format!("{} / {}", files.cert.display(), files.key.display()),
            None => format!(
                "{} / {}",
                data.path(crate::datadir::TLS_CERT).display(),
                data.path(crate::datadir::TLS_KEY).display()
            ),
        };
        let tls =
            crate::tls::server_configs(&data.tls_cert_pem, &data.tls_key_pem, &data.agent_ca_cert_pem, &tls_origin)?;
        let ssh = crate::ssh::server_config(data.host_key.clone());
        let store = Store::open(&config.storage_url, &data.root, data.first_start).await?;
        let audit = Audit::open(data.path("audit"), store.clone()).await?;
        let recordings_dir = match config.recordings.url.strip_prefix("file://") {
            Some(dir) => data.root.join(dir),
            None => {
                anyhow::bail!("recordings.url {:?}: only file:// is supported by this build", config.recordings.url)
            }
        };
        let recorder =
            Recorder::new(recordings_dir, store.clone(), config.recordings.max_bytes, config.recordings.record_input)?;
        let orphaned_recordings = recorder.mark_incomplete_at_start().await?;
        let orphaned_sessions = store.end_orphaned_sessions().await?;
        if orphaned_recordings + orphaned_sessions > 0 {
            let event = Event::new("gateway.recovered")
                .field("sessions_ended", orphaned_sessions)
                .field("recordings_incomplete", orphaned_recordings);
            audit.log(event).await?;
        }
        let mut setup_token = None;
        if data.first_start {
            let roles = policy::builtin_roles();
            let rows: Vec<(String, String)> =
                roles.iter().map(|r| (r.name().to_string(), policy::to_toml(std::slice::from_ref(r)))).collect();
            store.put_roles(&rows, true).await?;
            store.create_user("admin", &["admin".to_string()], None).await?;
            let token = secret::token();
            store.create_invite("admin", &secret::hash(&token), crate::store::now() + SETUP_TTL_SECS).await?;
            audit.log(Event::new("gateway.init").field("data_dir", data.root.display().to_string())).await?;
            audit.log(Event::new("invite.create").user(Some("admin")).field("purpose", "setup")).await?;
            setup_token = Some(token);
        }
        for node in &config.nodes {
            let row = NodeRow {
                name: node.name.clone(),
                addr: Some(node.addr.clone()),
                labels: node.labels.clone(),
                host_key: None,
                source: "config".into(),
            };
            store.sync_config_node(&row).await?;
        }
        Ok(Arc::new(Gateway {
            config,
            data,
            store,
            audit,
            tls,
            ssh,
            metrics: Metrics::default(),
            sessions: Sessions::default(),
            tunnels: crate::tunnel::Registry::default(),
            node_pool: crate::node::Pool::default(),
            recorder,
            shutdown: Shutdown::default(),
            local_addr: OnceLock::new(),
            setup_token,
            accounts: crate::accounts::Accounts::default(),
            web: crate::web::WebState::default(),
        }))
    }

    /// Binds the shared port (as configured) and the admin socket.
    pub async fn bind(&self) -> anyhow::Result<(TcpListener, UnixListener)> {
        let addr = self.config.listen.addr;
        let tcp = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let unix = admin::bind(&self.admin_socket()).await?;
        Ok((tcp, unix))
    }

    /// Serves the shared port and the admin socket until [`Gateway::shutdown`].
    pub async fn run(self: Arc<Self>, tcp: TcpListener, unix: UnixListener) -> anyhow::Result<()> {
        let local = tcp.local_addr()?;
        let _ = self.local_addr.set(local);
        self.audit.log(Event::new("gateway.start").field("listen", local.to_string())).await?;
        let admin = tokio::spawn(admin::serve(self.clone(), unix));
        tokio::spawn(crate::node::reap(self.clone()));
        tokio::spawn(crate::accounts::expiry::run(self.clone()));
        tokio::spawn(crate::web::reap(self.clone()));
        tokio::spawn(crate::recording::indexer::run(self.clone()));
        listen::serve(self.clone(), tcp).await;
        let _ = admin.await;
        let _ = std::fs::remove_file(self.admin_socket());
        self.audit.log(Event::new("gateway.stop")).await?;
        self.store.close().await;
        Ok(())
    }

    /// Stops every loop; [`Gateway::run`] then returns.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Path of the admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.data.path(ADMIN_SOCK)
    }

    /// The base URL users reach the web on: the first `public_addr`, else the bound address.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.public_address())
    }

    /// `host:port` users and agents reach the gateway at: the first `public_addr`, else the bound address.
    pub fn public_address(&self) -> String {
        match self.config.listen.public_addr.first() {
            Some(public) => public.clone(),
            None => self.bound_address().to_string(),
        }
    }

    /// The address actually bound, or the configured one before binding.
    pub fn bound_address(&self) -> SocketAddr {
        self.local_addr.get().copied().unwrap_or(self.config.listen.addr)
    }

    /// The first-start admin setup URL, if this start made one.
    pub fn setup_url(&self) -> Option<String> {
        self.setup_token.as_ref().map(|t| format!("{}/setup/{t}", self.base_url()))
    }

    /// Resolves a user's role names into roles; unknown role names grant nothing.
    pub async fn identity(&self, user: &UserRow) -> anyhow::Result<Identity> {
        let stored = self.store.list_roles().await?;
        let mut roles: Vec<Role> = Vec::new();
        for name in &user.roles {
            let Some(row) = stored.iter().find(|r| &r.name == name) else { continue };
            let parsed = policy::parse_roles_toml(&row.definition)
                .with_context(|| format!("stored role {name:?} is corrupt"))?;
            roles.extend(parsed);
        }
        Ok(Identity { user: user.name.clone(), roles })
    }
}
