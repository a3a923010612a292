//! Dialing the gateway: TCP, directly or through an HTTP CONNECT proxy, then pinned TLS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::proxy::{self, Proxy};

/// How long TCP, the proxy's CONNECT and the TLS handshake may take together.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Which proxy to dial through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// `HTTPS_PROXY` / `https_proxy`, unless `NO_PROXY` / `no_proxy` exempts the gateway.
    FromEnv,
    /// Never a proxy.
    Direct,
    /// This proxy URL (`http://[user:pass@]host:port`).
    Url(String),
}

/// The gateway's address, `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayAddr {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl GatewayAddr {
    /// Parses `HOST:PORT` or `[V6]:PORT`.
    pub fn parse(text: &str) -> anyhow::Result<GatewayAddr> {
        let text = text.trim();
        let parsed = proxy::split_host_port(text)
            .and_then(|(host, port)| Some((host, port?.parse::<u16>().ok().filter(|&p| p != 0)?)));
        match parsed {
            Some((host, port)) if !host.is_empty() => Ok(GatewayAddr { host: host.to_string(), port }),
            _ => bail!("gateway address {text:?}: expected HOST:PORT"),
        }
    }
}

impl std::fmt::Display for GatewayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&proxy::authority(&self.host, self.port))
    }
}

/// TCP then TLS to the gateway, within [`DIAL_TIMEOUT`]; checks the gateway speaks the agent protocol.
pub async fn dial(
    gateway: &GatewayAddr,
    proxy: &ProxySetting,
    tls: Arc<ClientConfig>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let dialing = async {
        let tcp = tcp(gateway, proxy).await?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let tls = connector
            .connect(crate::pin::server_name(&gateway.host), tcp)
            .await
            .with_context(|| format!("TLS handshake with the gateway {gateway}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(portcullis_proto::tunnel::ALPN.as_bytes()) {
            bail!(
                "the gateway {gateway} does not speak the agent protocol (no ALPN {})",
                portcullis_proto::tunnel::ALPN
            );
        }
        Ok(tls)
    };
    tokio::time::timeout(DIAL_TIMEOUT, dialing).await.with_context(|| format!("dialing {gateway} timed out"))?
}

/// A TCP stream to the gateway, through the proxy the setting picks.
pub async fn tcp(gateway: &GatewayAddr, setting: &ProxySetting) -> anyhow::Result<TcpStream> {
    let chosen = match setting {
        ProxySetting::Direct => None,
        ProxySetting::Url(url) => proxy::choose(Some(url), |_| None, &gateway.host, gateway.port)?,
        ProxySetting::FromEnv => proxy::choose(None, |name| std::env::var(name).ok(), &gateway.host, gateway.port)?,
    };
    let Some(proxy) = chosen else {
        let tcp = TcpStream::connect((gateway.host.as_str(), gateway.port))
            .await
            .with_context(|| format!("cannot connect to the gateway {gateway}"))?;
        let _ = tcp.set_nodelay(true);
        return Ok(tcp);
    };
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .with_context(|| format!("cannot connect to the proxy {proxy}"))?;
    let _ = tcp.set_nodelay(true);
    connect_through(&mut tcp, &proxy, gateway).await.with_context(|| format!("proxy {proxy}"))?;
    tracing::debug!(%proxy, "tunnelled through the proxy");
    Ok(tcp)
}

/// Sends CONNECT and reads the reply head byte by byte, so no byte of the tunnel is consumed.
async fn connect_through(tcp: &mut TcpStream, proxy: &Proxy, gateway: &GatewayAddr) -> anyhow::Result<()> {
    tcp.write_all(proxy.connect_request(&gateway.host, gateway.port).as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    loop {
        let byte = tcp.read_u8().await.context("the proxy closed the connection before answering CONNECT")?;
        head.push(byte);
        let worth_parsing = byte == b'\n' || head.len() <= 5 || head.len() >= proxy::MAX_REPLY_HEAD;
        if worth_parsing && proxy::parse_reply(&head)?.is_some() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn gateway_addresses_need_a_port() {
        assert_eq!(GatewayAddr::parse("gw:3080").unwrap(), GatewayAddr { host: "gw".into(), port: 3080 });
        assert_eq!(GatewayAddr::parse("[::1]:443").unwrap().to_string(), "[::1]:443");
        for bad in ["gw", ":3080", "gw:0", "gw:x", "::1:443", ""] {
            assert!(GatewayAddr::parse(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot CONNECT proxy answering `reply`; what it received comes back on the channel.
    async fn proxy(reply: &'static [u8]) -> (u16, tokio::sync::oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut reader = tokio::io::BufReader::new(stream);
            let mut request = String::new();
            while !request.ends_with("\r\n\r\n") {
                if reader.read_line(&mut request).await.unwrap() == 0 {
                    break;
                }
            }
            let mut stream = reader.into_inner();
            stream.write_all(reply).await.unwrap();
            let _ = tx.send(request);
            // Echo what follows, as the tunnelled gateway would answer.
            let mut buf = [0u8; 5];
            if stream.read_exact(&mut buf).await.is_ok() {
                stream.write_all(&buf).await.unwrap();
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn connect_goes_through_the_proxy_with_credentials() {
        let (port, request) = proxy(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        let gateway = GatewayAddr::parse("gw.internal:3080").unwrap();
        let setting = ProxySetting::Url(format!("http://agent:pw@127.0.0.1:{port}"));
        let mut tcp = tcp(&gateway, &setting).await.unwrap();
        let request = request.await.unwrap();
        assert!(request.starts_with("CONNECT gw.internal:3080 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Proxy-Authorization: Basic YWdlbnQ6cHc=\r\n"), "{request}");
        tcp.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        tcp.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello");
    }

    #[tokio::test]
    async fn a_refusing_proxy_is_a_clear_error() {
        let (port, _request) = proxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        let gateway = GatewayAddr::parse("gw:3080").unwrap();
        let err = tcp(&gateway, &ProxySetting::Url(format!("127.0.0.1:{port}"))).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("407"), "{text}");
    }
}
