//! The tunnel: SSH over the agent's outbound TLS stream, with the agent as the server. TLS
//! already authenticated both ends, so the outer login is `none`; every session is a
//! `direct-tcpip` channel to [`SESSION_HOST`] carrying its own end-to-end SSH connection.
//!
//! Until the gateway has a session for this node the tunnel idles without SSH, answering
//! the gateway's pings (see `portcullis_proto::tunnel`); the gateway's SSH identification
//! line wakes it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use portcullis_proto::tunnel::{IDLE_PING, IDLE_PONG, IDLE_SILENCE_MAX, SESSION_HOST};
use russh::keys::ssh_key::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tracing::Instrument as _;

use crate::sessions::{self, Node};

/// Keepalive interval on the tunnel.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// Unanswered keepalives before the tunnel counts as dead.
pub const KEEPALIVE_MAX: usize = 3;
/// How long the gateway may take to start the tunnel's SSH.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The tunnel's SSH server configuration.
pub fn config(host_key: PrivateKey) -> Arc<russh::server::Config> {
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(concat!("SSH-2.0-portcullis-agent_", env!("CARGO_PKG_VERSION")).into()),
        methods: MethodSet::from(&[MethodKind::None][..]),
        keys: vec![host_key],
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: KEEPALIVE_MAX,
        ..Default::default()
    })
}

/// How a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection closed or failed.
    Closed,
    /// Shutdown was asked for.
    Shutdown,
}

/// Serves the tunnel on `stream` until it closes or `shutdown` completes.
pub async fn serve<S, F>(
    config: Arc<russh::server::Config>,
    node: Arc<Node>,
    stream: S,
    shutdown: std::pin::Pin<&mut F>,
) -> anyhow::Result<Ended>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = ()>,
{
    let mut shutdown = shutdown;
    // A small read-ahead: idle pings are 5 bytes, and SSH's large reads bypass it.
    let mut stream = BufReader::with_capacity(256, stream);
    tokio::select! {
        woken = idle(&mut stream, IDLE_SILENCE_MAX) => woken?,
        () = shutdown.as_mut() => return Ok(Ended::Shutdown),
    }
    // russh runs the handler in its own task: the caller's span goes along by hand.
    let tunnel = Tunnel { node, span: tracing::Span::current() };
    let starting = tokio::time::timeout(HANDSHAKE_TIMEOUT, russh::server::run_stream(config, stream, tunnel));
    let mut running = tokio::select! {
        started = starting => started
            .map_err(|_| anyhow::anyhow!("the gateway did not start SSH in the tunnel"))?
            .context("the gateway ended the tunnel before SSH began (was this node removed from the gateway?)")?,
        () = shutdown.as_mut() => return Ok(Ended::Shutdown),
    };
    let handle = running.handle();
    tokio::select! {
        result = &mut running => result.map(|()| Ended::Closed),
        () = shutdown => {
            let _ = handle.disconnect(russh::Disconnect::ByApplication, "agent shutting down".into(), "en".into()).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), running).await;
            Ok(Ended::Shutdown)
        }
    }
}

/// Answers the gateway's pings until its SSH identification line arrives (left unread,
/// for the SSH server); fails when the gateway closes the tunnel or is silent for `silence`.
async fn idle<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>, silence: Duration) -> anyhow::Result<()> {
    loop {
        let first = match tokio::time::timeout(silence, stream.fill_buf()).await {
            Err(_) => anyhow::bail!("the gateway sent nothing for {silence:?}"),
            Ok(read) => read.context("reading the idle tunnel")?.first().copied(),
        };
        match first {
            None => anyhow::bail!("the gateway closed the tunnel"),
            Some(b'S') => return Ok(()),
            Some(_) => {
                let mut line = Vec::with_capacity(IDLE_PING.len());
                let mut limited = (&mut *stream).take(IDLE_PING.len() as u64);
                let read = limited.read_until(b'\n', &mut line);
                tokio::time::timeout(silence, read).await.context("a ping cut short")??;
                if line != IDLE_PING {
                    anyhow::bail!("the gateway sent {:?} in the idle tunnel", String::from_utf8_lossy(&line));
                }
                stream.get_mut().write_all(IDLE_PONG).await?;
                stream.get_mut().flush().await?;
            }
        }
    }
}

/// The tunnel's handler: accepts the gateway's `none` login and its session channels.
struct Tunnel {
    node: Arc<Node>,
    span: tracing::Span,
}

impl russh::server::Handler for Tunnel {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.span.in_scope(|| tracing::info!("tunnel up"));
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        _port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if host != SESSION_HOST {
            self.span.in_scope(|| tracing::warn!(host, "refused a tunnel channel to an unknown host"));
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        reply.accept().await;
        let node = self.node.clone();
        let span = tracing::info_span!(parent: &self.span, "connection", channel = %channel.id());
        tokio::spawn(
            async move {
                if let Err(err) = sessions::serve(node, channel.into_stream()).await {
                    tracing::debug!("session connection ended: {err:#}");
                }
            }
            .instrument(span),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long the agent waits for the gateway in these tests: short for the silent case,
    /// far above a loaded machine's scheduling delays for the answering one.
    const SILENCE: Duration = Duration::from_millis(100);
    const PATIENT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn pings_are_answered_and_the_gateways_ssh_line_is_left_for_the_server() {
        let (agent, mut gateway) = tokio::io::duplex(1024);
        let mut stream = BufReader::with_capacity(256, agent);
        let idling = tokio::spawn(async move { idle(&mut stream, PATIENT).await.map(|()| stream) });
        for _ in 0..3 {
            gateway.write_all(IDLE_PING).await.unwrap();
            let mut pong = [0u8; 5];
            tokio::time::timeout(PATIENT, gateway.read_exact(&mut pong)).await.unwrap().unwrap();
            assert_eq!(&pong, IDLE_PONG);
        }
        gateway.write_all(b"SSH-2.0-portcullis_test\r\n").await.unwrap();
        let mut stream = tokio::time::timeout(PATIENT, idling).await.unwrap().unwrap().unwrap();
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert_eq!(line, "SSH-2.0-portcullis_test\r\n");
    }

    #[tokio::test]
    async fn a_silent_or_garbled_gateway_ends_the_idle_tunnel() {
        let (agent, _gateway) = tokio::io::duplex(1024);
        let started = std::time::Instant::now();
        let err = idle(&mut BufReader::new(agent), SILENCE).await.expect_err("silence").to_string();
        assert!(err.contains("sent nothing"), "{err}");
        assert!(started.elapsed() >= SILENCE);

        let (agent, mut gateway) = tokio::io::duplex(1024);
        gateway.write_all(b"hello\n").await.unwrap();
        let err = idle(&mut BufReader::new(agent), SILENCE).await.expect_err("garbage").to_string();
        assert!(err.contains("hello"), "{err}");

        let (agent, gateway) = tokio::io::duplex(1024);
        drop(gateway);
        let err = idle(&mut BufReader::new(agent), SILENCE).await.expect_err("closed").to_string();
        assert!(err.contains("closed the tunnel"), "{err}");
    }
}
