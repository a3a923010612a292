//! What an agent may not do: join with a reused, expired or forged token (refused and
//! audited), trust a gateway whose certificate is not the token's pin (refused by the agent,
//! which never sends the secret), or send garbage on the agent ALPN (refused, audited); the
//! gateway keeps serving through all of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use portcullis_proto::tunnel::JoinToken;

use crate::support::agents::{Spawned, agent_command, apply_roles, me, node, online};
use crate::support::gateway::{BIN, TestGateway};
use crate::support::{eventually, ssh_base, text};

fn agent(gw: &TestGateway, name: &str, token: &str) -> Spawned {
    let data = gw.dir.path().join(format!("agent-{name}"));
    let args = ["--token", token, "--name", name, "--proxy", "none", "--reconnect-max", "2s"];
    let cmd = agent_command(std::process::Command::new(BIN), &gw.addr.to_string(), &data, &args);
    Spawned::start(cmd, &gw.dir.path().join(format!("agent-{name}.log")))
}

/// Starts an agent that must give up: returns what it printed.
fn refused(gw: &TestGateway, name: &str, token: &str) -> String {
    let mut agent = agent(gw, name, token);
    let status = agent.wait_exit(Duration::from_secs(20));
    let printed = agent.output();
    assert!(status.is_some_and(|s| !s.success()), "{name}: the agent must exit with an error: {status:?}\n{printed}");
    assert!(node(gw, name).is_none(), "{name} must not be a node");
    printed
}

fn join_failures(gw: &TestGateway, reason: &str) -> usize {
    gw.audit("node.join_failed").iter().filter(|e| e["reason"].as_str().is_some_and(|r| r.contains(reason))).count()
}

/// Speaks TLS with ALPN `portcullis-agent/1` to the gateway (pinned, no client certificate),
/// sends `bytes`, and returns what came back before the gateway closed.
fn garbage(gw: &TestGateway, pin: &str, bytes: &[u8]) -> String {
    let config = portcullis_agent::pin::client_config(pin, None).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    let tcp = TcpStream::connect(gw.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(portcullis_proto::tunnel::ALPN.as_bytes()));
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    text(&answer)
}

#[test]
fn reused_expired_forged_and_mispinned_tokens_and_garbage_are_refused_and_the_gateway_keeps_serving() {
    let gw = TestGateway::start("", "");
    apply_roles(&gw, &[("edge", "site = \"edge\"")]);
    let key = gw.user_with_key("edgeuser", "edge");
    let create = |args: &[&str]| {
        let mut all = vec!["tokens", "create", "--labels", "site=edge"];
        all.extend_from_slice(args);
        gw.ctl_ok(&all).trim().to_string()
    };
    let first = create(&[]);
    let pin = JoinToken::parse(&first).unwrap().pin;
    let _ok = agent(&gw, "ok-01", &first);
    eventually("ok-01 online", Duration::from_secs(30), || online(&gw, "ok-01"));

    // Reused: the token was spent by ok-01.
    let printed = refused(&gw, "reuse-01", &first);
    assert!(printed.contains("token unknown, used or expired"), "{printed}");
    // Expired.
    let expiring = create(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let printed = refused(&gw, "expired-01", &expiring);
    assert!(printed.contains("token unknown, used or expired"), "{printed}");
    // Forged: a well-formed token with the right pin and a made-up secret.
    let forged = JoinToken { secret: random_secret(), pin: pin.clone() }.encode();
    let printed = refused(&gw, "forged-01", &forged);
    assert!(printed.contains("token unknown, used or expired"), "{printed}");
    eventually("three audited token refusals", Duration::from_secs(10), || {
        join_failures(&gw, "token unknown, used or expired") == 3
    });
    let failed = gw.audit("node.join_failed");
    assert!(failed.iter().all(|e| e["src_ip"] == "127.0.0.1"), "{failed:?}");
    let token_created = gw.audit("token.create");
    assert!(
        !serde_json::to_string(&failed).unwrap().contains(&JoinToken::parse(&expiring).unwrap().secret),
        "no secret reaches the audit log: {failed:?} {token_created:?}"
    );

    // A wrong pin: the agent refuses the gateway before it sends anything.
    let good = create(&[]);
    let mut wrong = JoinToken::parse(&good).unwrap();
    wrong.pin = if pin.starts_with("0f") { "1e".repeat(32) } else { "0f".repeat(32) };
    let before = gw.audit("node.join_failed").len();
    let printed = refused(&gw, "pin-01", &wrong.encode());
    assert!(printed.contains("does not match the token's pin") && printed.contains("not sent"), "{printed}");
    assert_eq!(gw.audit("node.join_failed").len(), before, "the gateway saw no join attempt");
    // The secret was never spent: with the right pin the same token still joins.
    let _pinned = agent(&gw, "pin-01", &good);
    eventually("pin-01 online with the unspent token", Duration::from_secs(30), || online(&gw, "pin-01"));

    // Garbage on the agent ALPN.
    let before = join_failures(&gw, "malformed join request");
    for junk in [
        b"this is not a join request\n".to_vec(),
        b"{\"token\": 42}\n".to_vec(),
        // A line as long as the gateway reads, with no end.
        vec![b'A'; portcullis_proto::tunnel::MAX_JOIN_LINE],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ] {
        let answer = garbage(&gw, &pin, &junk);
        assert!(answer.contains("\"refused\"") && answer.contains("malformed join request"), "{answer}");
    }
    // Bytes that are not even text: the connection is closed without an answer.
    let answer = garbage(&gw, &pin, b"\xff\xfe\x00\x01\x02garbage\n");
    assert!(!answer.contains("joined"), "{answer}");
    eventually("the garbage audited", Duration::from_secs(10), || {
        join_failures(&gw, "malformed join request") >= before + 4
    });

    // The gateway kept serving: both agents are online and carry sessions.
    assert!(online(&gw, "ok-01") && online(&gw, "pin-01"));
    assert_eq!(gw.ctl_json(&["status"])[0]["agents"], 2);
    for name in ["ok-01", "pin-01"] {
        let out =
            ssh_base(&key, gw.addr.port()).arg(format!("{}@{name}@127.0.0.1", me())).arg("echo ok").output().unwrap();
        assert_eq!(text(&out.stdout), "ok\n", "{name}: {}", text(&out.stderr));
    }
}

/// A join that fails before a request line is read (bytes that are not UTF-8, or a client
/// that goes silent) is refused and audited too.
#[test]
fn garbage_that_is_not_text_and_a_silent_joiner_are_audited() {
    let gw = TestGateway::start("", "");
    let pin = JoinToken::parse(gw.ctl_ok(&["tokens", "create"]).trim()).unwrap().pin;
    garbage(&gw, &pin, b"\xff\xfe\x00\x01\x02garbage\n");
    eventually("binary garbage audited", Duration::from_secs(10), || !gw.audit("node.join_failed").is_empty());
    garbage(&gw, &pin, b"{\"token\": \"no newline and then silence");
    eventually("a silent joiner audited", Duration::from_secs(20), || gw.audit("node.join_failed").len() >= 2);
}

fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 43];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
    bytes.iter().map(|b| ALPHABET[usize::from(b & 63)] as char).collect()
}
