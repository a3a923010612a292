//! The shared port: accept, allowlist, sniff, PROXY header, then route.
//!
//! The source allowlist is checked on the TCP peer before a byte is read. Then the first
//! bytes are read under a short timeout and classified by `proto::sniff`; the bytes read
//! are replayed to whichever protocol handler takes the connection.

mod prefixed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use portcullis_proto::proxy_header::{self, Parsed};
use portcullis_proto::sniff::{Protocol, SNIFF_MAX, Sniff, sniff};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, info_span, warn};

pub use prefixed::Prefixed;

use crate::config::ProxyProtocol;
use crate::gateway::Gateway;

/// How long a new connection may stay silent before it is treated as SSH.
pub const SNIFF_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the PROXY header may take to arrive once it started.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest PROXY v2 header accepted (addresses plus TLVs).
const PROXY_HEADER_MAX: usize = 4096;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer.
    pub tcp: SocketAddr,
    /// The client: the PROXY header's source when a trusted proxy sent one, else `tcp`.
    pub client: SocketAddr,
}

/// A connection after sniffing: the stream with its sniffed bytes put back.
pub type Stream = Prefixed<TcpStream>;

/// Accepts connections until shutdown.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener) {
    let listen = &gateway.config.listen;
    let limit = Arc::new(Semaphore::new(listen.max_connections));
    let per_source = Arc::new(SourceCounts::new(listen.max_connections_per_source));
    let mut denied_log = RateLimitedLog::new(Duration::from_secs(10));
    let mut limited_log = RateLimitedLog::new(Duration::from_secs(10));
    let mut backoff = Duration::from_millis(5);
    let mut shutdown = gateway.shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("semaphore never closed"),
            _ = shutdown.wait() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        let (socket, tcp) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(err) => {
                // Out of descriptors or a transient error: back off rather than spin.
                warn!(%err, "accept failed; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if !gateway.config.listen.allow.iter().any(|net| net.contains(&tcp.ip())) {
            gateway.metrics.denied_by_allowlist.fetch_add(1, Ordering::Relaxed);
            drop(socket);
            if let Some(count) = denied_log.hit() {
                warn!(peer = %tcp, count, "connections from outside listen.allow closed");
            }
            continue;
        }
        let trusted = gateway.config.listen.trusted_proxies.iter().any(|net| net.contains(&tcp.ip()));
        let held = if trusted { None } else { Some(per_source.clone()) };
        let source = match held.map(|counts| SourceCounts::take(&counts, tcp.ip())) {
            Some(None) => {
                gateway.metrics.denied_by_source_limit.fetch_add(1, Ordering::Relaxed);
                drop(socket);
                if let Some(count) = limited_log.hit() {
                    warn!(peer = %tcp, count, "connections over listen.max_connections_per_source closed");
                }
                continue;
            }
            Some(Some(slot)) => Some(slot),
            None => None,
        };
        gateway.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let gateway = gateway.clone();
        let span = info_span!("conn", peer = %tcp, client = tracing::field::Empty);
        tokio::spawn(
            async move {
                let mut shutdown = gateway.shutdown.subscribe();
                tokio::select! {
                    result = handle(gateway.clone(), socket, tcp) => {
                        if let Err(err) = result {
                            debug!("connection ended: {err:#}");
                        }
                    }
                    _ = shutdown.wait() => {}
                }
                drop(permit);
                drop(source);
            }
            .instrument(span),
        );
    }
}

/// How many connections each source address holds, against a cap.
struct SourceCounts {
    max: usize,
    held: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One held connection of a source; dropping it gives the slot back.
struct SourceSlot {
    counts: Arc<SourceCounts>,
    ip: std::net::IpAddr,
}

impl SourceCounts {
    fn new(max: usize) -> SourceCounts {
        SourceCounts { max, held: Default::default() }
    }

    /// A slot for `ip`, or `None` when it already holds `max` connections.
    fn take(counts: &Arc<SourceCounts>, ip: std::net::IpAddr) -> Option<SourceSlot> {
        let mut held = counts.held.lock().expect("source counts lock poisoned");
        let count = held.entry(ip).or_default();
        if *count >= counts.max {
            return None;
        }
        *count += 1;
        Some(SourceSlot { counts: counts.clone(), ip })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().expect("source counts lock poisoned");
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

async fn handle(gateway: Arc<Gateway>, mut socket: TcpStream, tcp: SocketAddr) -> anyhow::Result<()> {
    let _ = socket.set_nodelay(true);
    let listen = &gateway.config.listen;
    let trusted = listen.trusted_proxies.iter().any(|net| net.contains(&tcp.ip()));
    let mut peer = Peer { tcp, client: tcp };
    let mut buf = Vec::with_capacity(SNIFF_MAX);
    let mut protocol = read_sniff(&mut socket, &mut buf, SNIFF_TIMEOUT).await?;
    if matches!(protocol, Some(Protocol::ProxyV1 | Protocol::ProxyV2)) {
        if listen.proxy_protocol == ProxyProtocol::Off || !trusted {
            gateway.metrics.proxy_refused.fetch_add(1, Ordering::Relaxed);
            bail!("PROXY header from {tcp}, which is not a trusted proxy (or proxy_protocol is off): closed");
        }
        let (header, consumed) = read_proxy_header(&mut socket, &mut buf).await?;
        if let Some(source) = header.source {
            peer.client = source;
        }
        buf.drain(..consumed);
        tracing::Span::current().record("client", tracing::field::display(peer.client));
        protocol = read_sniff(&mut socket, &mut buf, SNIFF_TIMEOUT).await?;
    } else if listen.proxy_protocol == ProxyProtocol::Required {
        gateway.metrics.proxy_refused.fetch_add(1, Ordering::Relaxed);
        bail!("connection without the required PROXY header: closed");
    }
    let stream = Prefixed::new(buf, socket);
    match protocol {
        // A silent client may be an SSH client waiting for our banner.
        // Boxed so that a connection's task holds only the protocol it speaks.
        None | Some(Protocol::Ssh) => Box::pin(crate::ssh::serve(gateway, crate::ssh::buffered(stream), peer)).await,
        Some(Protocol::Tls) => Box::pin(crate::tls::serve(gateway, stream, peer)).await,
        Some(Protocol::Http) => answer_plain_http(stream).await,
        Some(Protocol::ProxyV1 | Protocol::ProxyV2) => bail!("a second PROXY header: closed"),
        Some(Protocol::Unknown) => bail!("unrecognised protocol: closed"),
    }
}

/// Reads until the sniffer decides; `None` when the client stayed silent for `timeout`.
async fn read_sniff<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<Option<Protocol>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Sniff::Is(protocol) = sniff(buf) {
            return Ok(Some(protocol));
        }
        let mut chunk = [0u8; SNIFF_MAX];
        let room = SNIFF_MAX.saturating_sub(buf.len()).max(1);
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk[..room])).await {
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => bail!("client sent a partial greeting then went silent"),
            Ok(Ok(0)) => bail!("client closed before sending a greeting"),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(err)) => return Err(err).context("read failed"),
        }
    }
}

async fn read_proxy_header<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(proxy_header::ProxyHeader, usize)> {
    let deadline = tokio::time::Instant::now() + PROXY_HEADER_TIMEOUT;
    loop {
        if let Parsed::Done { header, consumed } = proxy_header::parse(buf).context("bad PROXY header")? {
            return Ok((header, consumed));
        }
        if buf.len() >= PROXY_HEADER_MAX {
            bail!("PROXY header longer than {PROXY_HEADER_MAX} bytes");
        }
        let mut chunk = [0u8; 512];
        let room = (PROXY_HEADER_MAX - buf.len()).min(chunk.len());
        let n = tokio::time::timeout_at(deadline, socket.read(&mut chunk[..room]))
            .await
            .context("PROXY header timed out")??;
        if n == 0 {
            bail!("closed inside the PROXY header");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer_plain_http(mut stream: Stream) -> anyhow::Result<()> {
    const BODY: &str = "This port speaks HTTPS. Use https:// in the address.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Counts events and lets one through per interval, with the count since the last.
struct RateLimitedLog {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(every: Duration) -> Self {
        RateLimitedLog { every, last: None, suppressed: 0 }
    }

    /// Returns the number of events to report, when it is time to log.
    fn hit(&mut self) -> Option<u64> {
        self.suppressed += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.every);
        if !due {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_hold_at_most_their_share_and_give_it_back() {
        let counts = Arc::new(SourceCounts::new(2));
        let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let first = SourceCounts::take(&counts, a).expect("first");
        let second = SourceCounts::take(&counts, a).expect("second");
        assert!(SourceCounts::take(&counts, a).is_none(), "a third from the same source");
        let other = SourceCounts::take(&counts, b).expect("another source is not affected");
        drop(first);
        let again = SourceCounts::take(&counts, a).expect("a slot given back");
        drop((second, again, other));
        assert!(counts.held.lock().unwrap().is_empty(), "nothing left behind");
    }

    #[test]
    fn rate_limited_log_reports_counts() {
        let mut log = RateLimitedLog::new(Duration::from_secs(3600));
        assert_eq!(log.hit(), Some(1));
        assert_eq!(log.hit(), None);
        assert_eq!(log.hit(), None);
        log.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(log.hit(), Some(3));
    }

    #[tokio::test]
    async fn sniff_reads_across_fragments_and_times_out_on_silence() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"SS").await.unwrap();
        let task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let p = read_sniff(&mut b, &mut buf, Duration::from_secs(5)).await.unwrap();
            (p, buf)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.write_all(b"H-2.0-x\r\n").await.unwrap();
        let (p, buf) = task.await.unwrap();
        assert_eq!(p, Some(Protocol::Ssh));
        assert!(buf.starts_with(b"SSH-"));

        let (_quiet, mut c) = tokio::io::duplex(64);
        let mut buf = Vec::new();
        let p = read_sniff(&mut c, &mut buf, Duration::from_millis(30)).await.unwrap();
        assert_eq!(p, None);
    }
}
