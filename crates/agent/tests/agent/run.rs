//! The whole agent against a stand-in gateway: join, mutual TLS, tunnel, sessions, reconnects,
//! through an HTTP CONNECT proxy.

use std::sync::Arc;
use std::time::Duration;

use portcullis_agent::{AgentConfig, ProxySetting};
use portcullis_proto::tunnel::{JoinRequest, JoinResponse, JoinToken};
use russh::client;
use russh::keys::ssh_key::{PrivateKey, PublicKey};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::{Client, exec, key, own_login, tunnel_client};

/// The gateway's part: joins answered, tunnels logged in to and handed to the test.
struct Gateway {
    addr: std::net::SocketAddr,
    pin: String,
    user_ca: PrivateKey,
    joins: mpsc::UnboundedReceiver<JoinRequest>,
    tunnels: mpsc::UnboundedReceiver<client::Handle<Client>>,
}

impl Gateway {
    async fn start(refusal: Option<&'static str>) -> Gateway {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["gateway.test".to_string()]).unwrap().self_signed(&key).unwrap();
        let pin = portcullis_agent::pin::pin_of(cert.der());
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Arc::new(rcgen::Issuer::new(ca_params, ca_key));
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build().unwrap();
        let server_key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let mut config = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der().clone()], server_key)
            .unwrap();
        config.alpn_protocols = vec![portcullis_proto::tunnel::ALPN.as_bytes().to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let user_ca = key_for_ca();
        let ca_line = user_ca.public_key().to_openssh().unwrap();
        let (join_tx, joins) = mpsc::unbounded_channel();
        let (tunnel_tx, tunnels) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut host_key: Option<PublicKey> = None;
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(tls) = acceptor.accept(tcp).await else { continue };
                if tls.get_ref().1.peer_certificates().is_none() {
                    let mut reader = BufReader::new(tls);
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    let request: JoinRequest = serde_json::from_str(&line).unwrap();
                    host_key = Some(PublicKey::from_openssh(&request.host_key).unwrap());
                    let answer = match refusal {
                        Some(reason) => JoinResponse::Refused { reason: reason.into() },
                        None => {
                            let node_key = rcgen::KeyPair::generate().unwrap();
                            let mut params = rcgen::CertificateParams::new(vec![request.name.clone()]).unwrap();
                            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
                            let node_cert = params.signed_by(&node_key, &issuer).unwrap();
                            JoinResponse::Joined {
                                node: request.name.clone(),
                                cert_pem: node_cert.pem(),
                                key_pem: node_key.serialize_pem(),
                                user_ca: ca_line.clone(),
                            }
                        }
                    };
                    join_tx.send(request).unwrap();
                    let stream = reader.get_mut();
                    stream.write_all(format!("{}\n", answer.to_line()).as_bytes()).await.unwrap();
                    stream.shutdown().await.unwrap();
                } else {
                    let pinned = host_key.clone().expect("a tunnel after a join");
                    let handle = tunnel_client(tls, pinned).await.unwrap();
                    tunnel_tx.send(handle).unwrap();
                }
            }
        });
        Gateway { addr, pin, user_ca, joins, tunnels }
    }

    fn token(&self) -> JoinToken {
        JoinToken { secret: "s3cret-join-token-0123456789".into(), pin: self.pin.clone() }
    }

    async fn next_tunnel(&mut self) -> client::Handle<Client> {
        tokio::time::timeout(Duration::from_secs(20), self.tunnels.recv()).await.expect("the agent connects").unwrap()
    }
}

fn key_for_ca() -> PrivateKey {
    key()
}

/// A one-connection-at-a-time HTTP CONNECT proxy; counts the tunnels it opened.
async fn connect_proxy() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(client);
                let mut head = String::new();
                while !head.ends_with("\r\n\r\n") {
                    if reader.read_line(&mut head).await.unwrap() == 0 {
                        return;
                    }
                }
                let target = head.split_whitespace().nth(1).unwrap().to_string();
                let mut upstream = TcpStream::connect(&target).await.unwrap();
                let mut client = reader.into_inner();
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                tx.send(target).unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, rx)
}

fn config(gateway: &Gateway, dir: &std::path::Path) -> AgentConfig {
    let mut config = AgentConfig::new("gpu-test-01", dir);
    config.gateway = Some(gateway.addr.to_string());
    config.token = Some(gateway.token());
    config.labels.insert("rack".into(), "r7".into());
    config.inventory = false;
    config.reconnect_max = Duration::from_secs(1);
    config
}

#[tokio::test]
async fn the_agent_joins_through_a_proxy_then_serves_sessions_and_reconnects() {
    let mut gateway = Gateway::start(None).await;
    let (proxy_port, mut connects) = connect_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent_config = config(&gateway, dir.path());
    agent_config.proxy = ProxySetting::Url(format!("http://127.0.0.1:{proxy_port}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(portcullis_agent::run(agent_config.clone(), async move {
        let _ = stopped.await;
    }));

    let request = gateway.joins.recv().await.unwrap();
    assert_eq!(request.name, "gpu-test-01");
    assert_eq!(request.token, "s3cret-join-token-0123456789");
    assert_eq!(request.labels.get("rack").map(String::as_str), Some("r7"));
    let host_key = std::fs::read_to_string(dir.path().join("ssh_host_ed25519_key.pub")).unwrap();
    assert_eq!(
        PublicKey::from_openssh(&request.host_key).unwrap().key_data(),
        PublicKey::from_openssh(&host_key).unwrap().key_data()
    );

    let tunnel = gateway.next_tunnel().await;
    for name in ["identity.json", "client_cert.pem", "client_key.pem", "ssh_host_ed25519_key"] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    let identity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("identity.json")).unwrap()).unwrap();
    assert_eq!(identity["node"], "gpu-test-01");
    assert_eq!(identity["pin"], gateway.pin);
    let login = own_login().await;
    let session = open_session(&tunnel, &gateway, &host_key, &login).await;
    assert_eq!(exec(&session, "echo through the tunnel").await.stdout(), "through the tunnel\n");
    assert_eq!(connects.recv().await.unwrap(), gateway.addr.to_string(), "the join went through the proxy");
    assert_eq!(connects.recv().await.unwrap(), gateway.addr.to_string(), "so did the tunnel");

    // The gateway drops the tunnel: the agent comes back on its own.
    tunnel.disconnect(russh::Disconnect::ByApplication, "bye", "en").await.unwrap();
    let again = gateway.next_tunnel().await;
    let session = open_session(&again, &gateway, &host_key, &login).await;
    assert_eq!(exec(&session, "echo back").await.stdout(), "back\n");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), agent).await.expect("the agent stops").unwrap().unwrap();

    // Restarted without a token, it uses its identity and joins nothing.
    let mut restarted = agent_config;
    restarted.token = None;
    restarted.proxy = ProxySetting::Direct;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(portcullis_agent::run(restarted, async move {
        let _ = stopped.await;
    }));
    let tunnel = gateway.next_tunnel().await;
    let session = open_session(&tunnel, &gateway, &host_key, &login).await;
    assert_eq!(exec(&session, "echo restarted").await.stdout(), "restarted\n");
    assert!(gateway.joins.try_recv().is_err());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), agent).await.expect("the agent stops").unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_join_ends_the_agent_with_the_reason() {
    let gateway = Gateway::start(Some("token unknown, used or expired")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&gateway, dir.path());
    config.proxy = ProxySetting::Direct;
    let result = tokio::time::timeout(Duration::from_secs(20), portcullis_agent::run(config, std::future::pending()))
        .await
        .expect("a refusal is final");
    let err = result.unwrap_err().to_string();
    assert!(err.contains("token unknown, used or expired"), "{err}");
    assert!(!dir.path().join("identity.json").exists());
}

#[tokio::test]
async fn a_wrong_pin_never_sends_the_token() {
    let mut gateway = Gateway::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&gateway, dir.path());
    config.proxy = ProxySetting::Direct;
    config.token = Some(JoinToken { secret: "s3cret-join-token-0123456789".into(), pin: "0f".repeat(32) });
    let run = portcullis_agent::run(config, std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(10), run).await.expect("a wrong pin is final").unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("does not match the token's pin") && text.contains("not sent"), "{text}");
    assert!(gateway.joins.try_recv().is_err(), "the token went to an unpinned gateway");
    assert!(!dir.path().join("identity.json").exists());
}

async fn open_session(
    tunnel: &client::Handle<Client>,
    gateway: &Gateway,
    host_key: &str,
    login: &str,
) -> client::Handle<Client> {
    let channel =
        tunnel.channel_open_direct_tcpip(portcullis_proto::tunnel::SESSION_HOST, 22, "127.0.0.1", 0).await.unwrap();
    let pinned = PublicKey::from_openssh(host_key).unwrap();
    let mut inner = client::connect_stream(crate::support::client_config(), channel.into_stream(), Client { pinned })
        .await
        .unwrap();
    let user_key = key();
    let cert = crate::support::certificate(&gateway.user_ca, &user_key, &[login]);
    assert!(inner.authenticate_openssh_cert(login, Arc::new(user_key), cert).await.unwrap().success());
    inner
}
