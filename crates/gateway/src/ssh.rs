//! The SSH front: users come in here, on the shared port (plain, or inside TLS).
//!
//! Users authenticate with a registered public key (passwords are for the web only).
//! The SSH user name names the target, `LOGIN@NODE` or `NODE`. A key whose user is
//! unknown, locked or expired, none of whose roles apply from the client's address, or
//! who cannot reach that node, fails exactly like a wrong key: no enumeration.

mod deadline;
pub mod front;
pub mod relay;
pub mod session;
pub mod user_side;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::{MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncWrite};

use self::deadline::Deadline;
use self::front::Front;
use crate::gateway::Gateway;
use crate::listen::Peer;

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

/// The settings of every SSH connection the gateway makes as a client (to a node's sshd,
/// to an agent's tunnel): no inactivity cut, keepalives as given, no Nagle delay, and
/// [`client_preferred`]'s algorithms.
pub fn client_config(keepalive_interval: Duration, keepalive_max: usize) -> Arc<russh::client::Config> {
    Arc::new(russh::client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(keepalive_interval),
        keepalive_max,
        nodelay: true,
        preferred: client_preferred(),
        ..Default::default()
    })
}

/// The algorithms the gateway asks for when it is the SSH client (to a node's sshd, to
/// an agent's tunnel). The client's order decides, so this picks the hop's cipher.
/// Where the CPU has AES and carry-less multiply instructions (every x86 GPU node of
/// the last decade), AES-256-GCM comes first: it costs the gateway and the node's sshd
/// far less per byte than chacha20-poly1305, whose Poly1305 OpenSSH computes in plain C.
/// Everything russh offers by default stays on the list, so any node still connects.
pub fn client_preferred() -> russh::Preferred {
    use russh::cipher;
    if !aes_in_hardware() {
        return russh::Preferred::default();
    }
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(&[
            cipher::AES_256_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_CTR,
            cipher::AES_192_CTR,
            cipher::AES_128_CTR,
        ]),
        ..russh::Preferred::default()
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return false;
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

/// Read-ahead for an SSH connection on a bare socket: russh reads each packet as its
/// length, then its body, and this makes that one `recvfrom` for a small packet instead
/// of two. Large reads bypass it. (TLS streams buffer already.)
const READ_AHEAD: usize = 4096;

/// A bare socket with SSH's read-ahead.
pub fn buffered<S: AsyncRead>(stream: S) -> tokio::io::BufReader<S> {
    tokio::io::BufReader::with_capacity(READ_AHEAD, stream)
}

/// Runs the SSH protocol on one connection until it ends.
pub async fn serve<S>(gateway: Arc<Gateway>, stream: S, peer: Peer) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + gateway.config.listen.handshake_timeout;
    let (stream, authenticated) = Deadline::new(stream, deadline);
    let handler = Front::new(gateway.clone(), peer, authenticated);
    russh::server::run_stream(gateway.ssh.clone(), stream, handler).await.context("SSH handshake")?.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_asks_for_aes_gcm_first_where_the_cpu_has_aes_and_keeps_every_default_cipher() {
        let preferred = client_preferred();
        let default = russh::Preferred::default();
        for name in default.cipher.iter() {
            assert!(preferred.cipher.contains(name), "{name:?} dropped");
        }
        assert_eq!(preferred.cipher.len(), default.cipher.len());
        let first = if aes_in_hardware() { russh::cipher::AES_256_GCM } else { default.cipher[0] };
        assert_eq!(preferred.cipher[0], first);
        assert_eq!(preferred.kex, default.kex);
    }

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
