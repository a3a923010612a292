//! TLS on the shared port; ALPN picks what runs inside.
//!
//! The ClientHello is read first: a client offering the agent ALPN gets a configuration
//! that asks for (but does not require) a client certificate from the agent CA; browsers
//! and everything else get one that never asks, so no certificate prompt ever appears.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio_rustls::LazyConfigAcceptor;

use crate::gateway::Gateway;
use crate::listen::{Peer, Stream};

/// ALPN of the browser and JSON API over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of the browser and JSON API over HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// ALPN of agent tunnels.
pub const ALPN_AGENT: &[u8] = portcullis_proto::tunnel::ALPN.as_bytes();
/// ALPN of SSH carried inside TLS (for clients behind TLS-only middleboxes).
pub const ALPN_SSH: &[u8] = b"portcullis-ssh/1";
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The two server configurations and the certificate's pin.
pub struct TlsConfigs {
    /// For browsers, the API and SSH-in-TLS.
    pub web: Arc<ServerConfig>,
    /// For agents: client certificates from the agent CA are asked for.
    pub agent: Arc<ServerConfig>,
    /// Hex SHA-256 of the certificate (DER) agents pin.
    pub pin: String,
}

/// Builds both configurations from PEM text; `origin` names where the PEM came from.
pub fn server_configs(cert_pem: &str, key_pem: &str, agent_ca_pem: &str, origin: &str) -> anyhow::Result<TlsConfigs> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{origin}: the TLS certificate is not valid PEM (corrupt?)"))?;
    let Some(leaf) = certs.first() else { bail!("{origin}: no certificate in the TLS certificate file") };
    let pin = hex::encode(Sha256::digest(leaf.as_ref()));
    let key = || {
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .with_context(|| format!("{origin}: the TLS key is not a valid PEM private key (corrupt?)"))
    };
    let mut web = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key()?)
        .with_context(|| format!("{origin}: the TLS certificate and key do not form a usable pair"))?;
    web.alpn_protocols = [ALPN_H2, ALPN_HTTP1, ALPN_SSH].iter().map(|p| p.to_vec()).collect();

    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(agent_ca_pem.as_bytes()) {
        roots.add(ca.context("the agent CA certificate is not valid PEM")?)?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build()?;
    let mut agent = ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(certs, key()?)?;
    agent.alpn_protocols = vec![ALPN_AGENT.to_vec()];
    Ok(TlsConfigs { web: Arc::new(web), agent: Arc::new(agent), pin })
}

/// Completes the TLS handshake and hands the stream to the protocol its ALPN names.
pub async fn serve(gateway: Arc<Gateway>, stream: Stream, peer: Peer) -> anyhow::Result<()> {
    let limit = gateway.config.listen.handshake_timeout.min(HANDSHAKE_TIMEOUT);
    let deadline = tokio::time::Instant::now() + limit;
    // The handshake's futures are boxed: this future lives as long as the connection, and
    // would otherwise keep their size (kilobytes) for every idle agent tunnel.
    let start = tokio::time::timeout_at(deadline, Box::pin(LazyConfigAcceptor::new(Acceptor::default(), stream)))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake failed")?;
    let wants_agent = start.client_hello().alpn().is_some_and(|mut offered| offered.any(|p| p == ALPN_AGENT));
    let config = if wants_agent { gateway.tls.agent.clone() } else { gateway.tls.web.clone() };
    let tls = match tokio::time::timeout_at(deadline, Box::pin(start.into_stream(config))).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) if wants_agent => {
            // Most often an agent whose token pins another certificate: it refuses ours.
            let event = crate::audit::Event::new("node.tunnel_refused")
                .src_ip(peer.client.ip())
                .field("reason", format!("agent TLS handshake failed: {err}"));
            Box::pin(gateway.audit.log(event)).await?;
            return Err(err).context("agent TLS handshake failed");
        }
        Ok(Err(err)) => return Err(err).context("TLS handshake failed"),
        Err(_) => anyhow::bail!("TLS handshake timed out"),
    };
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    // Each protocol's future boxed: a connection's task then holds only its own protocol's
    // state, not the largest of the three (10,000 idle agent tunnels add that up).
    match alpn.as_deref() {
        None | Some(ALPN_H2) | Some(ALPN_HTTP1) => Box::pin(crate::web::serve(gateway, tls, peer)).await,
        Some(ALPN_SSH) => Box::pin(crate::ssh::serve(gateway, tls, peer)).await,
        Some(ALPN_AGENT) => Box::pin(crate::tunnel::serve(gateway, Box::new(tls), peer)).await,
        Some(other) => bail!("unexpected ALPN {:?}", String::from_utf8_lossy(other)),
    }
}
