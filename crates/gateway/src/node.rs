//! The node connector: "give me an SSH session to this node as this login".
//!
//! Agentless nodes are reached over TCP to their sshd; nodes behind an agent through a
//! channel of the agent's tunnel. Either way the gateway gets a byte stream and runs the
//! same SSH login over it. The node's host key is pinned on
//! first contact and must match every time after. The gateway logs in with a fresh key
//! and a certificate from its user CA valid for five minutes and one principal (the
//! login); a node that does not trust the CA may instead authorize the gateway's own
//! host key (`ssh_host_ed25519_key.pub`).

mod pool;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use russh::client;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::{Algorithm, HashAlg, PrivateKey, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::net::TcpStream;

use crate::audit::Event;
use crate::gateway::Gateway;
use crate::policy::Authorized;
use crate::store::NodeRow;

/// How long TCP connect plus the SSH handshake to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of the login certificate the gateway presents to a node.
pub const CERT_LIFETIME: Duration = Duration::from_secs(300);

pub use pool::{Lease, Pool, close as close_pooled, reap};

/// An authenticated SSH connection to a node, as one login (pooled; dropping it frees its slot).
pub type NodeSession = Lease;

/// Why a node could not be reached; the user sees only a generic refusal.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node presented a host key other than the pinned one.
    #[error("the node's host key does not match the pinned key")]
    HostKeyMismatch {
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key presented.
        presented: String,
    },
    /// Anything else: unreachable, refused, authentication failed.
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

/// The russh client side: checks the node's host key against the pin.
pub struct NodeClient {
    pinned: Option<PublicKey>,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for NodeClient {
    type Error = anyhow::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        let ok = self.pinned.as_ref().is_none_or(|p| p.key_data() == presented.key_data());
        *self.presented.lock().expect("presented key lock") = Some(presented);
        Ok(ok)
    }
}

/// A connection to `node` as the authorized login: a pooled one, or a new one.
pub async fn connect(gateway: &Gateway, node: &NodeRow, grant: &Authorized) -> Result<NodeSession, NodeError> {
    let key = (grant.user().to_string(), node.name.clone(), grant.login().to_string());
    if let Some(lease) = gateway.node_pool.take(&key) {
        return Ok(lease);
    }
    let handle = dial(gateway, node, grant).await?;
    Ok(gateway.node_pool.insert(key, handle))
}

/// Connects and logs in to `node` as the authorized login.
async fn dial(gateway: &Gateway, node: &NodeRow, grant: &Authorized) -> Result<client::Handle<NodeClient>, NodeError> {
    let addr = node.addr.as_deref();
    if addr.is_none() && node.source != "agent" {
        return Err(NodeError::Unavailable(anyhow::anyhow!("node has no address")));
    }
    let pinned = match node.host_key.as_deref() {
        Some(text) => Some(PublicKey::from_openssh(text).map_err(|e| NodeError::Unavailable(e.into()))?),
        None => None,
    };
    let presented = Arc::new(Mutex::new(None));
    let client = NodeClient { pinned: pinned.clone(), presented: presented.clone() };
    let config = crate::ssh::client_config(Duration::from_secs(30), 4);
    let connecting = async {
        match addr {
            Some(addr) => {
                let tcp = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
                let _ = tcp.set_nodelay(true);
                let tcp = crate::ssh::buffered(tcp);
                client::connect_stream(config, tcp, client).await.context("SSH handshake with the node")
            }
            None => {
                let stream = crate::tunnel::open_session(gateway, &node.name).await?;
                client::connect_stream(config, stream, client).await.context("SSH handshake with the node's agent")
            }
        }
    };
    let result = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
    let seen = presented.lock().expect("presented key lock").clone();
    let mut handle = match result {
        Ok(Ok(handle)) => handle,
        Ok(Err(err)) => {
            if let (Some(pinned), Some(seen)) = (&pinned, &seen)
                && pinned.key_data() != seen.key_data()
            {
                return Err(NodeError::HostKeyMismatch { pinned: fingerprint(pinned), presented: fingerprint(seen) });
            }
            return Err(NodeError::Unavailable(err));
        }
        Err(_) => return Err(NodeError::Unavailable(anyhow::anyhow!("connecting to node {} timed out", node.name))),
    };
    if pinned.is_none()
        && let Some(seen) = &seen
    {
        pin(gateway, &node.name, seen).await.map_err(NodeError::Unavailable)?;
    }
    login(gateway, &mut handle, grant).await.map_err(NodeError::Unavailable)?;
    Ok(handle)
}

async fn pin(gateway: &Gateway, node: &str, key: &PublicKey) -> anyhow::Result<()> {
    let text = key.to_openssh()?;
    if gateway.store.pin_host_key(node, &text).await? {
        let event = Event::new("node.hostkey_pinned").node(Some(node)).field("fingerprint", fingerprint(key));
        gateway.audit.log(event).await?;
    }
    Ok(())
}

/// Tries the user-CA certificate first, then the gateway's own key.
async fn login(gateway: &Gateway, handle: &mut client::Handle<NodeClient>, grant: &Authorized) -> anyhow::Result<()> {
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).context("cannot make a login key")?;
    let cert = login_certificate(&gateway.data.user_ca, &key, grant)?;
    let auth = handle.authenticate_openssh_cert(grant.login(), Arc::new(key), cert).await?;
    if auth.success() {
        return Ok(());
    }
    let own = PrivateKeyWithHashAlg::new(Arc::new(gateway.data.host_key.clone()), None);
    let auth = handle.authenticate_publickey(grant.login(), own).await?;
    if auth.success() {
        return Ok(());
    }
    bail!(
        "the node refused login {:?} (does it trust the user CA in TrustedUserCAKeys, or the gateway's key?)",
        grant.login()
    )
}

/// A user certificate for one login, valid from a minute ago (clock skew) for [`CERT_LIFETIME`].
pub fn login_certificate(
    ca: &PrivateKey,
    key: &PrivateKey,
    grant: &Authorized,
) -> anyhow::Result<russh::keys::Certificate> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut builder = Builder::new_with_random_nonce(
        &mut rand::rng(),
        key.public_key().key_data().clone(),
        now - 60,
        now + CERT_LIFETIME.as_secs(),
    )?;
    builder
        .cert_type(CertType::User)?
        .key_id(format!("portcullis:{}@{}", grant.user(), grant.node()))?
        .serial(rand::random())?
        .valid_principal(grant.login())?
        .extension("permit-pty", "")?
        .extension("permit-user-rc", "")?;
    Ok(builder.sign(ca)?)
}

/// `SHA256:...` of a key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `SHA256:...` of a key in OpenSSH text form, if it parses.
pub fn fingerprint_of(openssh: &str) -> Option<String> {
    PublicKey::from_openssh(openssh).ok().map(|k| fingerprint(&k))
}
