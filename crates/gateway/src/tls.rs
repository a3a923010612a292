//! TLS on the shared port; ALPN picks what runs inside.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::gateway::Gateway;
use crate::listen::{Peer, Stream};

/// ALPN of the browser and JSON API over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of the browser and JSON API over HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
/// ALPN of agent tunnels.
pub const ALPN_AGENT: &[u8] = b"portcullis-agent/1";
/// ALPN of SSH carried inside TLS (for clients behind TLS-only middleboxes).
pub const ALPN_SSH: &[u8] = b"portcullis-ssh/1";
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the server config from PEM text; `origin` names where the PEM came from.
pub fn server_config(cert_pem: &str, key_pem: &str, origin: &str) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{origin}: the TLS certificate is not valid PEM (corrupt?)"))?;
    if certs.is_empty() {
        bail!("{origin}: no certificate in the TLS certificate file");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .with_context(|| format!("{origin}: the TLS key is not a valid PEM private key (corrupt?)"))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("{origin}: the TLS certificate and key do not form a usable pair"))?;
    config.alpn_protocols = [ALPN_H2, ALPN_HTTP1, ALPN_AGENT, ALPN_SSH].iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Completes the TLS handshake and hands the stream to the protocol its ALPN names.
pub async fn serve(gateway: Arc<Gateway>, stream: Stream, peer: Peer) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(gateway.tls.clone());
    let limit = gateway.config.listen.handshake_timeout.min(HANDSHAKE_TIMEOUT);
    let tls = tokio::time::timeout(limit, acceptor.accept(stream))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake failed")?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        None | Some(ALPN_H2) | Some(ALPN_HTTP1) => crate::web::serve(gateway, tls, peer).await,
        Some(ALPN_SSH) => crate::ssh::serve(gateway, tls, peer).await,
        Some(ALPN_AGENT) => crate::tunnel::serve(gateway, tls, peer).await,
        Some(other) => bail!("unexpected ALPN {:?}", String::from_utf8_lossy(other)),
    }
}
