//! A stand-in for the gateway's side of a tunnel: a russh client over an in-memory pipe.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_agent::sessions::{Logins, Node};
use portcullis_proto::tunnel::SESSION_HOST;
use russh::client;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, PrivateKey, PublicKey};
use russh::keys::{Certificate, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncWrite};

/// The gateway's SSH client: the agent's host key must be the pinned one.
pub struct Client {
    pub pinned: PublicKey,
}

impl client::Handler for Client {
    type Error = anyhow::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else { return Ok(false) };
        Ok(key.key_data() == self.pinned.key_data())
    }
}

pub fn key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

/// A user certificate from `ca` for `principals`, valid for five minutes.
pub fn certificate(ca: &PrivateKey, key: &PrivateKey, principals: &[&str]) -> Certificate {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut builder =
        Builder::new_with_random_nonce(&mut rand::rng(), key.public_key().key_data().clone(), now - 60, now + 300)
            .unwrap();
    builder.cert_type(CertType::User).unwrap().key_id("portcullis:test").unwrap().serial(1).unwrap();
    for principal in principals {
        builder.valid_principal(*principal).unwrap();
    }
    if principals.is_empty() {
        builder.all_principals_valid().unwrap();
    }
    builder.extension("permit-pty", "").unwrap();
    builder.sign(ca).unwrap()
}

pub fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config { inactivity_timeout: None, ..Default::default() })
}

/// The agent's SSH host key, user CA and an established tunnel to it.
pub struct Tunnel {
    pub ca: PrivateKey,
    pub host_key: PrivateKey,
    pub outer: client::Handle<Client>,
}

/// Who the tests log in as: the user running them (as root, root).
pub async fn own_login() -> String {
    portcullis_agent::account::current().await.expect("the test user has a passwd entry").name
}

impl Tunnel {
    /// Serves a tunnel on one end of a pipe and logs in to it on the other, as the gateway does.
    pub async fn start() -> Tunnel {
        let (agent_end, gateway_end) = tokio::io::duplex(1 << 20);
        let (ca, host_key) = (key(), key());
        let node = Arc::new(Node::new(host_key.clone(), ca.public_key().clone(), Logins::detect().await.unwrap()));
        let config = portcullis_agent::tunnel::config(host_key.clone());
        tokio::spawn(async move {
            let mut never = std::pin::pin!(std::future::pending::<()>());
            portcullis_agent::tunnel::serve(config, node, agent_end, never.as_mut()).await
        });
        let outer = tunnel_client(gateway_end, host_key.public_key().clone()).await.unwrap();
        Tunnel { ca, host_key, outer }
    }

    /// A session connection logged in as `login` with a certificate for `principals`.
    pub async fn session(&self, login: &str, principals: &[&str]) -> anyhow::Result<client::Handle<Client>> {
        let key = key();
        let cert = certificate(&self.ca, &key, principals);
        self.session_with(login, key, cert).await
    }

    pub async fn session_with(
        &self,
        login: &str,
        key: PrivateKey,
        cert: Certificate,
    ) -> anyhow::Result<client::Handle<Client>> {
        let channel = self.outer.channel_open_direct_tcpip(SESSION_HOST, 22, "127.0.0.1", 0).await?;
        let pinned = self.host_key.public_key().clone();
        let mut inner = client::connect_stream(client_config(), channel.into_stream(), Client { pinned }).await?;
        let auth = inner.authenticate_openssh_cert(login, Arc::new(key), cert).await?;
        anyhow::ensure!(auth.success(), "the session server refused the login");
        Ok(inner)
    }
}

/// The gateway's tunnel login: SSH on `stream`, host key pinned, auth `none`.
pub async fn tunnel_client<S>(stream: S, pinned: PublicKey) -> anyhow::Result<client::Handle<Client>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut outer = client::connect_stream(client_config(), stream, Client { pinned }).await?;
    let auth = outer.authenticate_none("portcullis").await?;
    anyhow::ensure!(auth.success(), "the agent refused the tunnel login");
    Ok(outer)
}

/// What a finished channel produced.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<u32>,
    pub signal: Option<String>,
    pub eof: bool,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads a channel until it closes.
pub async fn collect(channel: &mut russh::Channel<client::Msg>) -> Output {
    let mut out = Output::default();
    let reading = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => out.signal = Some(signal_name_text(&signal_name)),
                ChannelMsg::Eof => out.eof = true,
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading).await.expect("the channel closes");
    out
}

fn signal_name_text(sig: &Sig) -> String {
    format!("{sig:?}")
}

/// Runs `command` without a PTY.
pub async fn exec(session: &client::Handle<Client>, command: &str) -> Output {
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, command).await.unwrap();
    collect(&mut channel).await
}
