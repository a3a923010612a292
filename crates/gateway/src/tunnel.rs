//! Agent tunnels (ALPN `portcullis-agent/1`).
//!
//! The agent registry arrives with the agents issue; until then the route is real (TLS,
//! ALPN) and the gateway answers with a clear refusal line and closes.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::gateway::Gateway;
use crate::listen::Peer;

/// The line an agent receives while tunnels are not served.
pub const NOT_AVAILABLE: &[u8] = b"portcullis: agent tunnels are not available in this version\n";

/// Serves one agent tunnel.
pub async fn serve<S>(_gateway: Arc<Gateway>, mut stream: S, peer: Peer) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tracing::info!(client = %peer.client, "agent tunnel refused: not available in this version");
    stream.write_all(NOT_AVAILABLE).await?;
    stream.shutdown().await?;
    Ok(())
}
