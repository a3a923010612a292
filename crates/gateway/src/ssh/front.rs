//! The russh server handler: sign-in, target, per-channel requests, then the relay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, Pty};

use super::Target;
use super::session::{Start, open};
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::policy::{self, Action, Identity, NodeInfo};
use crate::store::{NodeRow, UserRow, now};

/// Who signed in, and what they asked to reach.
pub struct SignedIn {
    /// The account.
    pub user: UserRow,
    /// Its resolved roles.
    pub identity: Identity,
    /// The target from the SSH user name.
    pub target: Target,
    /// The node, when it exists (a missing one denies like a forbidden one).
    pub node: Option<NodeRow>,
}

impl SignedIn {
    /// The node as policy sees it.
    pub fn node_info(&self) -> Option<NodeInfo> {
        self.node.as_ref().map(|n| NodeInfo { name: n.name.clone(), labels: n.labels.clone() })
    }
}

/// A channel's requests before its shell, exec or subsystem starts.
#[derive(Default)]
pub struct Pending {
    /// The user side of the channel.
    pub channel: Option<Channel<Msg>>,
    /// The PTY asked for.
    pub pty: Option<PtyRequest>,
    /// Environment to pass on (LANG and LC_* only).
    pub env: Vec<(String, String)>,
}

/// A PTY request as the client sent it.
#[derive(Debug, Clone)]
pub struct PtyRequest {
    /// TERM.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// Width in pixels.
    pub pix_width: u32,
    /// Height in pixels.
    pub pix_height: u32,
    /// Terminal modes.
    pub modes: Vec<(Pty, u32)>,
}

/// One SSH connection's handler.
pub struct Front {
    gateway: Arc<Gateway>,
    peer: Peer,
    authenticated: Arc<AtomicBool>,
    signed_in: Option<Arc<SignedIn>>,
    channels: HashMap<ChannelId, Pending>,
}

impl Front {
    /// A handler for a new connection.
    pub fn new(gateway: Arc<Gateway>, peer: Peer, authenticated: Arc<AtomicBool>) -> Front {
        Front { gateway, peer, authenticated, signed_in: None, channels: HashMap::new() }
    }

    fn client(&self) -> IpAddr {
        self.peer.client.ip()
    }

    async fn fail(&self, ssh_user: &str, user: Option<&str>, method: &str, reason: &str) -> anyhow::Result<Auth> {
        let event = Event::new("user.login_failed")
            .user(user)
            .src_ip(self.client())
            .field("method", method)
            .field("ssh_user", ssh_user)
            .field("reason", reason);
        self.gateway.audit.log(event).await?;
        Ok(Auth::reject())
    }

    /// Checks user, source and target; on success remembers who signed in.
    async fn sign_in(
        &mut self,
        ssh_user: &str,
        user: Option<UserRow>,
        method: &str,
        credential: &str,
    ) -> anyhow::Result<Auth> {
        let Some(user) = user else {
            return self.fail(ssh_user, None, method, "unknown key").await;
        };
        if !user.active_at(now()) {
            return self.fail(ssh_user, Some(&user.name), method, "user locked or expired").await;
        }
        let identity = self.gateway.identity(&user).await?;
        let client = self.client();
        if !identity.roles.iter().any(|role| role.applies_from(client)) {
            return self.fail(ssh_user, Some(&user.name), method, "no role applies from this address").await;
        }
        let Some(target) = Target::parse(ssh_user) else {
            return self.fail(ssh_user, Some(&user.name), method, "malformed target").await;
        };
        let node = self.gateway.store.get_node(&target.node).await?;
        let info = node.as_ref().map(|n| NodeInfo { name: n.name.clone(), labels: n.labels.clone() });
        let reachable = [Action::Shell, Action::Exec, Action::FileTransfer].iter().any(|&action| {
            !matches!(
                policy::authorize(&identity, info.as_ref(), target.login.as_deref(), client, action),
                Err(policy::Denied::NoAccess)
            )
        });
        if !reachable {
            let why = policy::explain(&identity, info.as_ref(), target.login.as_deref(), client, Action::Shell);
            return self.fail(ssh_user, Some(&user.name), method, &why).await;
        }
        let event = Event::new("user.login")
            .user(Some(&user.name))
            .src_ip(client)
            .node(Some(&target.node))
            .field("method", method)
            .field("credential", credential)
            .field("ssh_user", ssh_user);
        self.gateway.audit.log(event).await?;
        tracing::Span::current().record("user", user.name.as_str());
        self.signed_in = Some(Arc::new(SignedIn { user, identity, target, node }));
        self.authenticated.store(true, Ordering::Relaxed);
        Ok(Auth::Accept)
    }

    async fn deny_forward(&self, kind: &str, detail: String) -> anyhow::Result<()> {
        let user = self.signed_in.as_ref().map(|s| s.user.name.as_str());
        let node = self.signed_in.as_ref().map(|s| s.target.node.as_str());
        let event = Event::new("forward.denied")
            .user(user)
            .node(node)
            .src_ip(self.client())
            .field("kind", kind)
            .field("detail", detail);
        self.gateway.audit.log(event).await
    }

    async fn start(&mut self, channel: ChannelId, start: Start, session: &mut Session) -> anyhow::Result<()> {
        let pending = self.channels.remove(&channel).unwrap_or_default();
        let Some(signed_in) = self.signed_in.clone() else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        // Boxed: russh keeps the connection's future, which inlines every handler's, for the
        // connection's whole life; opening (node dial and handshake included) is its largest.
        Box::pin(open(self.gateway.clone(), signed_in, self.peer, channel, pending, start, session)).await
    }
}

impl russh::server::Handler for Front {
    type Error = anyhow::Error;

    /// Every offer gets a signature request: the offered key may be a certificate's, and
    /// answering alike for every key tells a prober nothing about which keys are registered.
    async fn auth_publickey_offered(
        &mut self,
        _ssh_user: &str,
        _offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        ssh_user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let user = self.gateway.store.user_by_key(&fingerprint).await?;
        Box::pin(self.sign_in(ssh_user, user, "publickey", &fingerprint)).await
    }

    async fn auth_openssh_certificate(&mut self, ssh_user: &str, cert: &Certificate) -> Result<Auth, Self::Error> {
        // russh checked the validity window and the signature by the key inside the
        // certificate; trust is ours to decide: our CA, a user certificate, no unknown options.
        let ours = cert.signature_key() == self.gateway.data.user_ca.public_key().key_data();
        if !ours || cert.cert_type() != CertType::User || !cert.critical_options().is_empty() {
            return self.fail(ssh_user, None, "certificate", "certificate not from this gateway's user CA").await;
        }
        let mut user = None;
        for principal in cert.valid_principals() {
            if let Some(found) = self.gateway.store.get_user(principal).await? {
                user = Some(found);
                break;
            }
        }
        let credential = format!("cert serial {} key_id {}", cert.serial(), cert.key_id());
        Box::pin(self.sign_in(ssh_user, user, "certificate", &credential)).await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let id = channel.id();
        self.channels.insert(id, Pending { channel: Some(channel), ..Default::default() });
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.deny_forward("direct-tcpip", format!("{host}:{port}")).await?;
        reply.reject(russh::ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.deny_forward("tcpip-forward", format!("{address}:{port}")).await?;
        Ok(false)
    }

    async fn streamlocal_forward(&mut self, path: &str, _session: &mut Session) -> Result<bool, Self::Error> {
        self.deny_forward("streamlocal-forward", path.to_string()).await?;
        Ok(false)
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        self.deny_forward("agent", String::new()).await?;
        Ok(false)
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
        self.deny_forward("x11", String::new()).await?;
        session.channel_failure(channel)?;
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
        let term = term.to_string();
        pending.pty = Some(PtyRequest { term, cols, rows, pix_width, pix_height, modes: modes.to_vec() });
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = name == "LANG" || name.starts_with("LC_");
        if let Some(pending) = self.channels.get_mut(&channel)
            && allowed
            && pending.env.len() < 32
        {
            pending.env.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.start(channel, Start::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Start::Exec(data.to_vec()), session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Start::Subsystem(name.to_string()), session).await
    }
}
