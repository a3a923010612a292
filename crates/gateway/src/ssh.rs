//! The SSH front: users come in here, on the shared port (plain, or inside TLS).
//!
//! Users authenticate with a registered public key (passwords are for the web only).
//! A key whose user is unknown, locked or expired, or none of whose roles apply from the
//! client's address, fails exactly like a wrong key. The relay to nodes arrives with the
//! SSH gateway issue; until then an authenticated session gets a clear message.

mod deadline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use russh::keys::HashAlg;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncWrite};

use self::deadline::Deadline;
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::store::{UserRow, now};

/// The SSH server settings shared by every connection.
pub fn server_config(host_key: russh::keys::PrivateKey) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-portcullis_{}", env!("CARGO_PKG_VERSION")).into()),
        methods,
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    })
}

/// What the SSH user name asks for: `LOGIN@NODE` or `NODE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The login on the node, if given.
    pub login: Option<String>,
    /// The node's name.
    pub node: String,
}

impl Target {
    /// Splits the SSH user name on its last `@`.
    pub fn parse(ssh_user: &str) -> Option<Target> {
        let (login, node) = match ssh_user.rsplit_once('@') {
            Some((login, node)) => (Some(login.to_string()), node),
            None => (None, ssh_user),
        };
        let valid = |s: &str| !s.is_empty() && s.len() <= 64 && !s.contains(['@', '/', ' ', '\0']);
        if !valid(node) || login.as_deref().is_some_and(|l| !valid(l)) {
            return None;
        }
        Some(Target { login, node: node.to_string() })
    }
}

/// Runs the SSH protocol on one connection until it ends.
pub async fn serve<S>(gateway: Arc<Gateway>, stream: S, peer: Peer) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + gateway.config.listen.handshake_timeout;
    let (stream, authenticated) = Deadline::new(stream, deadline);
    let handler = Front { gateway: gateway.clone(), peer, user: None, authenticated };
    russh::server::run_stream(gateway.ssh.clone(), stream, handler).await.context("SSH handshake")?.await
}

struct Front {
    gateway: Arc<Gateway>,
    peer: Peer,
    user: Option<UserRow>,
    authenticated: Arc<AtomicBool>,
}

impl Front {
    async fn fail(&self, ssh_user: &str, user: Option<&str>, reason: &str) -> anyhow::Result<Auth> {
        self.gateway
            .audit
            .log(
                Event::new("user.login_failed")
                    .user(user)
                    .src_ip(self.peer.client.ip())
                    .field("method", "publickey")
                    .field("ssh_user", ssh_user)
                    .field("reason", reason),
            )
            .await?;
        Ok(Auth::reject())
    }
}

impl russh::server::Handler for Front {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        _ssh_user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
        Ok(match self.gateway.store.user_by_key(&fingerprint).await? {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        ssh_user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        let Some(user) = self.gateway.store.user_by_key(&fingerprint).await? else {
            return self.fail(ssh_user, None, "unknown key").await;
        };
        if !user.active_at(now()) {
            return self.fail(ssh_user, Some(&user.name), "user locked or expired").await;
        }
        let identity = self.gateway.identity(&user).await?;
        let client = self.peer.client.ip();
        if !identity.roles.iter().any(|role| role.applies_from(client)) {
            return self.fail(ssh_user, Some(&user.name), "no role applies from this address").await;
        }
        if Target::parse(ssh_user).is_none() {
            return self.fail(ssh_user, Some(&user.name), "malformed target").await;
        }
        self.gateway
            .audit
            .log(
                Event::new("user.login")
                    .user(Some(&user.name))
                    .src_ip(client)
                    .field("method", "publickey")
                    .field("fingerprint", fingerprint.as_str())
                    .field("ssh_user", ssh_user),
            )
            .await?;
        tracing::Span::current().record("user", user.name.as_str());
        self.user = Some(user);
        self.authenticated.store(true, Ordering::Relaxed);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.not_available(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.not_available(channel, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.not_available(channel, session)
    }
}

impl Front {
    fn not_available(&self, channel: ChannelId, session: &mut Session) -> anyhow::Result<()> {
        let user = self.user.as_ref().map_or("?", |u| u.name.as_str());
        let message =
            format!("portcullis: signed in as {user}; sessions to nodes are not available in this version\r\n");
        session.channel_success(channel)?;
        session.extended_data(channel, 1, message.into_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_on_the_last_at() {
        let t = Target::parse("vendor@gpu-01").unwrap();
        assert_eq!((t.login.as_deref(), t.node.as_str()), (Some("vendor"), "gpu-01"));
        let t = Target::parse("gpu-01").unwrap();
        assert_eq!((t.login, t.node.as_str()), (None, "gpu-01"));
        for bad in ["", "@gpu", "vendor@", "a b@c", "x/y", "a@b@gpu-01"] {
            assert_eq!(Target::parse(bad), None, "{bad:?}");
        }
    }
}
