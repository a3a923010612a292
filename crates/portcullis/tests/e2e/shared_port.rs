//! One port: SSH, TLS (ALPN), PROXY headers, allowlist, and hostile first bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_proto::proxy_header::{encode_v1, encode_v2};

use crate::support::forward::ProxyForwarder;
use crate::support::gateway::TestGateway;
use crate::support::lab::Lab;
use crate::support::ssh_base;

fn keyscan(addr: SocketAddr) -> String {
    let out = Command::new("ssh-keyscan")
        .args(["-T", "10", "-t", "ed25519", "-p", &addr.port().to_string(), &addr.ip().to_string()])
        .output()
        .expect("ssh-keyscan runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads until EOF or error, at most `limit`; returns the bytes and how long it took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, start.elapsed())
}

#[test]
fn ssh_keyscan_gets_the_gateways_host_key() {
    let gw = TestGateway::start("", "");
    let scanned = keyscan(gw.addr);
    let host_pub = std::fs::read_to_string(gw.data_dir.join("ssh_host_ed25519_key.pub")).unwrap();
    let key_b64 = host_pub.split_whitespace().nth(1).unwrap();
    assert!(scanned.contains(key_b64), "keyscan saw {scanned:?}, expected {host_pub:?}");
    let mut raw = TcpStream::connect(gw.addr).unwrap();
    raw.write_all(b"SSH-2.0-probe\r\n").unwrap();
    let mut banner = [0u8; 19];
    raw.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-portcullis_");
}

#[tokio::test]
async fn tls_with_alpn_routes_web_agent_and_ssh() {
    let gw = TestGateway::start("", "");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(gw.data_dir.join("tls_cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let roots = Arc::new(roots);
    let connect = |alpn: &'static [u8]| {
        let roots = roots.clone();
        let addr = gw.addr;
        async move {
            let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            connector.connect(name, tcp).await.expect("TLS handshake with the pinned self-signed cert")
        }
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h2 = connect(b"h2").await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut agent = connect(b"portcullis-agent/1").await;
    assert_eq!(agent.get_ref().1.alpn_protocol(), Some(&b"portcullis-agent/1"[..]));
    agent.write_all(b"{\"token\":\"nope\",\"name\":\"x\",\"host_key\":\"garbage\"}\n").await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), agent.read_to_string(&mut line)).await.unwrap().ok();
    assert!(line.starts_with(r#"{"result":"refused""#), "an agent without a certificate may only join: {line:?}");
    let mut ssh = connect(b"portcullis-ssh/1").await;
    ssh.write_all(b"SSH-2.0-probe\r\n").await.unwrap();
    let mut banner = [0u8; 19];
    ssh.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-portcullis_");

    // curl over HTTP/2 and HTTP/1.1, trusting only the gateway's own certificate.
    for version in ["--http2", "--http1.1"] {
        let out = Command::new("curl")
            .args(["-sS", "-i", version, "--cacert"])
            .arg(gw.data_dir.join("tls_cert.pem"))
            .arg(format!("https://127.0.0.1:{}/api/health", gw.addr.port()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.contains(r#""status":"ok""#), "{version}: {text}");
        assert!(text.contains("content-security-policy:") && text.contains("strict-transport-security:"), "{text}");
    }
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(gw.data_dir.join("tls_cert.pem"))
        .arg(format!("https://127.0.0.1:{}/api/recordings", gw.addr.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

#[test]
fn stock_ssh_client_works_inside_tls() {
    let lab = Lab::start("", "");
    let proxy = format!(
        "ProxyCommand=openssl s_client -quiet -verify_quiet -verify_return_error -alpn portcullis-ssh/1 -CAfile {} -connect {}",
        lab.gw.data_dir.join("tls_cert.pem").display(),
        lab.gw.addr
    );
    let out = lab
        .ssh(&lab.ops_key, &lab.target("gpu-01"))
        .args(["-o", &proxy])
        .arg("echo via-$((1+1))-tls")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-2-tls\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lab.gw.audit("user.login").len(), 1);
}

#[test]
fn sources_outside_the_allowlist_get_no_byte() {
    let gw = TestGateway::start(r#"allow = ["127.0.0.1/32"]"#, "");
    for _ in 0..3 {
        let socket = socket2_bind("127.0.0.2");
        let mut stream = connect_from(socket, gw.addr);
        let _ = stream.write_all(b"SSH-2.0-probe\r\n");
        let (got, took) = read_until_closed(&mut stream, Duration::from_secs(5));
        assert!(got.is_empty(), "a denied peer received {got:?}");
        assert!(took < Duration::from_secs(4), "closed at once, not after a timeout ({took:?})");
    }
    let status = gw.ctl_json(&["status"]);
    assert_eq!(status[0]["denied_by_allowlist"], 3, "{status:?}");
    assert!(keyscan(gw.addr).contains("ssh-ed25519"), "allowed peers still served");
}

#[test]
fn proxy_headers_from_a_trusted_peer_set_the_client_address() {
    let gw = TestGateway::start(
        r#"proxy_protocol = "optional"
trusted_proxies = ["127.0.0.1/32"]"#,
        "",
    );
    let roles = gw.dir.path().join("roles.toml");
    std::fs::write(
        &roles,
        r#"[[role]]
name = "remote-ops"
nodes = { "*" = "*" }
logins = ["ops"]
allow = ["shell", "exec"]
record = true
source_cidrs = ["203.0.113.0/24", "2001:db8::/32"]
"#,
    )
    .unwrap();
    gw.ctl_ok(&["roles", "apply", roles.to_str().unwrap()]);
    // A node nothing listens for: signing in works, the session then reports the node unreachable.
    gw.ctl_ok(&["nodes", "add", "gpu-01", "--addr", "127.0.0.1:9"]);
    let key = gw.user_with_key("carol", "remote-ops");
    let dst: SocketAddr = gw.addr;
    let cases = [
        (encode_v1("203.0.113.7:40000".parse().unwrap(), dst), "203.0.113.7"),
        (encode_v2("203.0.113.8:40001".parse().unwrap(), dst), "203.0.113.8"),
        (encode_v2("[2001:db8::9]:40002".parse().unwrap(), "[2001:db8::1]:3080".parse().unwrap()), "2001:db8::9"),
    ];
    for (header, declared) in cases {
        let fwd = ProxyForwarder::start(gw.addr, header, 1);
        let out = ssh_base(&key, fwd.addr.port()).arg("gpu-01@127.0.0.1").arg("true").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("node cannot be reached"), "via PROXY from {declared}: {stderr}");
        let logins = gw.audit("user.login");
        assert_eq!(logins.last().unwrap()["src_ip"], declared, "{logins:?}");
    }
    // Without a header the client is 127.0.0.1, outside the role's source_cidrs: refused like a wrong key.
    let out = ssh_base(&key, gw.addr.port()).arg("gpu-01@127.0.0.1").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    let failed = gw.audit("user.login_failed");
    let last = failed.last().expect("a failed login event");
    assert_eq!((last["src_ip"].as_str(), last["user"].as_str()), (Some("127.0.0.1"), Some("carol")));
}

#[test]
fn proxy_headers_from_untrusted_peers_are_refused() {
    let gw = TestGateway::start(
        r#"proxy_protocol = "optional"
trusted_proxies = ["127.0.0.1/32"]"#,
        "",
    );
    let header = encode_v1("203.0.113.7:40000".parse().unwrap(), gw.addr);
    let mut stream = connect_from(socket2_bind("127.0.0.3"), gw.addr);
    stream.write_all(&header).unwrap();
    // The gateway may already have closed: that is the point.
    let _ = stream.write_all(b"SSH-2.0-probe\r\n");
    let (got, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(got.is_empty(), "untrusted PROXY peer got {got:?}");
    // With proxy_protocol off, even the trusted address may not send one.
    let off = TestGateway::start("", "");
    let mut stream = TcpStream::connect(off.addr).unwrap();
    stream.write_all(&encode_v2("203.0.113.7:1".parse().unwrap(), off.addr)).unwrap();
    let (got, _) = read_until_closed(&mut stream, Duration::from_secs(5));
    assert!(got.is_empty(), "PROXY with proxy_protocol=off got {got:?}");
    assert_eq!(gw.ctl_json(&["status"])[0]["proxy_refused"], 1);
    assert_eq!(off.ctl_json(&["status"])[0]["proxy_refused"], 1);
}

#[test]
fn hostile_and_silent_clients_are_closed_and_the_gateway_survives() {
    let mut gw = TestGateway::start(r#"handshake_timeout = "3s""#, "");
    // Random bytes that no protocol starts with.
    let mut junk = TcpStream::connect(gw.addr).unwrap();
    let bytes: Vec<u8> = (0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
    junk.write_all(&bytes).unwrap();
    let (got, took) = read_until_closed(&mut junk, Duration::from_secs(10));
    assert!(got.is_empty() && took < Duration::from_secs(3), "junk: {got:?} after {took:?}");
    // Plain HTTP is told to use https.
    let mut http = TcpStream::connect(gw.addr).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, _) = read_until_closed(&mut http, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400") && text.contains("https://"), "{text}");
    // A silent client is answered as SSH, then closed by the handshake timeout.
    let mut silent = TcpStream::connect(gw.addr).unwrap();
    let (got, took) = read_until_closed(&mut silent, Duration::from_secs(20));
    assert!(got.starts_with(b"SSH-2.0-portcullis_"), "{:?}", String::from_utf8_lossy(&got));
    assert!(took < Duration::from_secs(8), "silent client held for {took:?}");
    // A client that sends a banner and then nothing is closed by the same timeout.
    let mut stalled = TcpStream::connect(gw.addr).unwrap();
    stalled.write_all(b"SSH-2.0-stall\r\n").unwrap();
    let (_, took) = read_until_closed(&mut stalled, Duration::from_secs(20));
    assert!(took < Duration::from_secs(8), "stalled client held for {took:?}");
    // Truncated TLS.
    let mut tls = TcpStream::connect(gw.addr).unwrap();
    tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let (got, took) = read_until_closed(&mut tls, Duration::from_secs(20));
    assert!(took < Duration::from_secs(8), "truncated TLS held for {took:?} ({got:?})");
    assert!(gw.alive());
    assert!(keyscan(gw.addr).contains("ssh-ed25519"), "still serving");
}

fn socket2_bind(ip: &str) -> std::net::SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

/// Connects from a chosen loopback source address.
fn connect_from(source: SocketAddr, target: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(source).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = rt.block_on(socket.connect(target)).expect("connect from a chosen source");
    let std_stream = stream.into_std().unwrap();
    std_stream.set_nonblocking(false).unwrap();
    std_stream
}
