//! The node's session server: the inner SSH connection the gateway runs per session,
//! logging in with a user certificate from its CA, as it would to an agentless node's sshd.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::Certificate;
use russh::keys::ssh_key::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Pty};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::account::{self, Account};
use crate::login::check_certificate;
use crate::process::{self, Launch, Program, PtyRequest};
use crate::unix::Credentials;

/// Session channels one connection may hold open.
const MAX_CHANNELS: usize = 16;
/// Environment variables kept per channel.
const MAX_ENV: usize = 32;

/// Who sessions may log in as.
#[derive(Debug, Clone)]
pub enum Logins {
    /// Any local account (the agent runs as root and switches to the login).
    Any,
    /// Only the agent's own account (the agent is unprivileged).
    Own(Account),
}

impl Logins {
    /// `Any` as root, else the agent's own account.
    pub async fn detect() -> anyhow::Result<Logins> {
        let uid = crate::unix::effective_uid();
        if uid == 0 {
            return Ok(Logins::Any);
        }
        let own = account::current()
            .await
            .ok_or_else(|| anyhow::anyhow!("user id {uid} has no passwd entry; sessions need a login"))?;
        Ok(Logins::Own(own))
    }
}

/// What every session connection of this node shares.
pub struct Node {
    /// The SSH server configuration (host key, methods).
    pub config: Arc<russh::server::Config>,
    /// The gateway's user CA.
    pub user_ca: PublicKey,
    /// Who may log in.
    pub logins: Logins,
}

impl Node {
    /// A node serving sessions with `host_key`, trusting `user_ca`.
    pub fn new(host_key: PrivateKey, user_ca: PublicKey, logins: Logins) -> Node {
        let config = russh::server::Config {
            server_id: russh::SshId::Standard(concat!("SSH-2.0-portcullis-agent_", env!("CARGO_PKG_VERSION")).into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![host_key],
            auth_rejection_time: Duration::from_millis(200),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: None,
            keepalive_interval: None,
            nodelay: true,
            ..Default::default()
        };
        Node { config: Arc::new(config), user_ca, logins }
    }
}

/// Serves one session connection on `stream` until it ends.
pub async fn serve<S>(node: Arc<Node>, stream: S) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = Sessions {
        node: node.clone(),
        span: tracing::Span::current(),
        login: None,
        channels: HashMap::new(),
        running: HashMap::new(),
    };
    let running = russh::server::run_stream(node.config.clone(), stream, handler).await?;
    running.await
}

/// The signed-in login.
struct Login {
    account: Account,
    credentials: Option<Credentials>,
}

/// A channel's requests before its shell, exec or subsystem.
struct Pending {
    channel: Channel<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
}

/// One session connection's handler.
struct Sessions {
    node: Arc<Node>,
    /// The caller's span (russh runs the handler in a task of its own).
    span: tracing::Span,
    login: Option<Login>,
    channels: HashMap<ChannelId, Pending>,
    /// Running sessions; sending (or dropping, with the connection) hangs up.
    running: HashMap<ChannelId, oneshot::Sender<()>>,
}

impl Sessions {
    async fn start(&mut self, channel: ChannelId, program: Program, session: &mut Session) -> anyhow::Result<()> {
        let (Some(pending), Some(login)) = (self.channels.remove(&channel), &self.login) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let kind = match &program {
            Program::Shell => "shell",
            Program::Exec(_) => "exec",
            Program::Sftp(_) => "sftp",
        };
        let launch = Launch {
            account: &login.account,
            credentials: login.credentials.clone(),
            program,
            pty: pending.pty.as_ref(),
            env: &pending.env,
        };
        let process = match process::spawn(launch) {
            Ok(process) => process,
            Err(err) => {
                let _entered = self.span.enter();
                tracing::warn!(login = %login.account.name, kind, "cannot start the session: {err:#}");
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        session.channel_success(channel)?;
        let (hang_up, closed) = oneshot::channel();
        self.running.insert(channel, hang_up);
        let span = tracing::info_span!(parent: &self.span, "session", login = %login.account.name, kind, pty = pending.pty.is_some());
        let handle = session.handle();
        tokio::spawn(
            async move {
                tracing::info!("session started");
                crate::relay::run(pending.channel, handle, process, closed).await;
                tracing::info!("session ended");
            }
            .instrument(span),
        );
        Ok(())
    }
}

impl russh::server::Handler for Sessions {
    type Error = anyhow::Error;

    async fn auth_openssh_certificate(&mut self, login: &str, cert: &Certificate) -> Result<Auth, Self::Error> {
        if let Err(refusal) = check_certificate(&self.node.user_ca, cert, login) {
            let _entered = self.span.enter();
            tracing::warn!(login, key_id = cert.key_id(), %refusal, "session login refused");
            return Ok(Auth::reject());
        }
        let (account, credentials) = match &self.node.logins {
            Logins::Own(own) if own.name == login => (Some(own.clone()), None),
            Logins::Own(_) => (None, None),
            Logins::Any => match account::by_name(login).await {
                Some(account) => {
                    let credentials = account::credentials(&account).await;
                    (Some(account), Some(credentials))
                }
                None => (None, None),
            },
        };
        let Some(account) = account else {
            let _entered = self.span.enter();
            tracing::warn!(login, key_id = cert.key_id(), "session login refused: no such login here");
            return Ok(Auth::reject());
        };
        self.span.in_scope(|| tracing::info!(login, key_id = cert.key_id(), serial = cert.serial(), "session login"));
        self.login = Some(Login { account, credentials });
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.running.retain(|_, hang_up| !hang_up.is_closed());
        if self.login.is_none() || self.channels.len() + self.running.len() >= MAX_CHANNELS {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(channel.id(), Pending { channel, pty: None, env: Vec::new() });
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        if let Some(hang_up) = self.running.remove(&channel) {
            let _ = hang_up.send(());
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(pending) = self.channels.get_mut(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let term = term.chars().filter(|c| !c.is_control()).take(64).collect();
        pending.pty = Some(PtyRequest { term, cols, rows, pix_width, pix_height, modes: modes.to_vec() });
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = name == "LANG" || name.starts_with("LC_");
        match self.channels.get_mut(&channel) {
            Some(pending) if allowed && pending.env.len() < MAX_ENV => {
                pending.env.push((name.to_string(), value.to_string()));
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.start(channel, Program::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Program::Exec(data.to_vec()), session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, process::sftp_server()) {
            ("sftp", Some(server)) => self.start(channel, Program::Sftp(server), session).await,
            ("sftp", None) => {
                tracing::warn!("sftp requested but no sftp-server is installed ({:?})", process::SFTP_SERVERS);
                self.channels.remove(&channel);
                session.channel_failure(channel)?;
                Ok(())
            }
            _ => {
                self.channels.remove(&channel);
                session.channel_failure(channel)?;
                Ok(())
            }
        }
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The relay resizes the PTY from the channel's own copy of this request.
        session.channel_success(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn streamlocal_forward(&mut self, _path: &str, _session: &mut Session) -> Result<bool, Self::Error> {
        Ok(false)
    }
}
