//! Agents: nodes with no inbound route join and serve sessions through the one port,
//! through an HTTP CONNECT proxy, and the installer the gateway serves.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::agents::{Spawned, agent_command, apply_roles, me, node, online};
use crate::support::connect_proxy::ConnectProxy;
use crate::support::gateway::{BIN, TestGateway};
use crate::support::ssh_base;
use crate::support::{eventually, text};

/// `portcullis agent` against `gw`, its output logged beside `data_dir`.
fn agent(gw: &TestGateway, args: &[&str], data_dir: &std::path::Path) -> Spawned {
    let cmd = agent_command(Command::new(BIN), &gw.addr.to_string(), data_dir, args);
    Spawned::start(cmd, &data_dir.with_extension("log"))
}

fn roles(gw: &TestGateway) {
    apply_roles(gw, &[("edge", r#"site = "edge""#)]);
}

#[test]
fn an_agent_joins_through_a_proxy_serves_recorded_sessions_and_can_be_revoked() {
    let gw = TestGateway::start("", "");
    roles(&gw);
    let key = gw.user_with_key("edgeuser", "edge");
    let token = gw.ctl_ok(&["tokens", "create", "--ttl", "10m", "--labels", "site=edge"]).trim().to_string();
    assert!(token.starts_with("pcj1."), "{token}");
    let proxy = ConnectProxy::start(Some("u:p"));
    let data = gw.dir.path().join("agent-data");
    let proxy_url = format!("http://u:p@{}", proxy.addr);
    let mut running = agent(&gw, &["--token", &token, "--name", "edge-01", "--proxy", &proxy_url], &data);
    eventually("edge-01 online", Duration::from_secs(30), || online(&gw, "edge-01"));
    assert!(proxy.tunnels.load(Ordering::Relaxed) >= 2, "join and tunnel both went through the proxy");
    let edge = node(&gw, "edge-01").unwrap();
    assert_eq!(edge["labels"]["site"], "edge", "{edge:?}");
    assert_eq!(edge["source"], "agent");
    assert!(!gw.audit("node.join").is_empty());

    // A session through the tunnel: same relay, same recorder.
    let target = format!("{}@edge-01@127.0.0.1", me());
    let out = ssh_base(&key, gw.addr.port()).arg(&target).arg("echo $((6*7)); exit 3").output().unwrap();
    assert_eq!(text(&out.stdout), "42\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3));
    let out = ssh_base(&key, gw.addr.port())
        .arg("-tt")
        .arg(&target)
        .arg("tty >/dev/null && echo has-a-tty")
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("has-a-tty"), "{}", text(&out.stderr));
    let recs = gw.ctl_json(&["recordings", "ls", "--node", "edge-01"]);
    assert_eq!(recs.len(), 2, "{recs:?}");

    // The token is one-time.
    let other = gw.dir.path().join("agent-2");
    let mut second = agent(&gw, &["--token", &token, "--name", "edge-02"], &other);
    let status = second.wait_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| !s.success()), "a used token is refused");
    assert!(gw.audit("node.join_failed").iter().any(|e| e["reason"].as_str().unwrap_or("").contains("token")));

    // The agent keeps its identity: it reconnects without the token.
    drop(running);
    eventually("edge-01 offline", Duration::from_secs(30), || {
        node(&gw, "edge-01").is_some_and(|n| n["online"] == false)
    });
    running = agent(&gw, &[], &data);
    eventually("edge-01 back online", Duration::from_secs(30), || online(&gw, "edge-01"));

    // Removing the node revokes the identity: the tunnel drops and is refused after.
    gw.ctl_ok(&["nodes", "rm", "edge-01"]);
    let out = ssh_base(&key, gw.addr.port()).arg(&target).arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    std::thread::sleep(Duration::from_secs(3));
    assert!(node(&gw, "edge-01").is_none());
    assert_eq!(gw.ctl_json(&["status"])[0]["agents"], 0);
    drop(running);
}

#[test]
fn the_gateway_serves_its_own_installer() {
    let gw = TestGateway::start("", "");
    roles(&gw);
    let key = gw.user_with_key("edgeuser", "edge");
    let token = gw.ctl_ok(&["tokens", "create", "--labels", "site=edge"]).trim().to_string();
    let prefix = gw.dir.path().join("prefix");
    let script = format!(
        "curl -fsSL --cacert {} https://127.0.0.1:{}/install.sh | sh -s -- --token {token} --name inst-01 --prefix {} --data-dir {} --foreground",
        gw.data_dir.join("tls_cert.pem").display(),
        gw.addr.port(),
        prefix.display(),
        gw.dir.path().join("inst-data").display()
    );
    let mut installer = Command::new("sh");
    installer.args(["-c", &script]).env_remove("HTTPS_PROXY");
    let _installed = Spawned::start(installer, &gw.dir.path().join("installer.log"));
    eventually("inst-01 online", Duration::from_secs(60), || online(&gw, "inst-01"));
    assert!(prefix.join("bin/portcullis").exists());
    let out = ssh_base(&key, gw.addr.port())
        .arg(format!("{}@inst-01@127.0.0.1", me()))
        .arg("echo installed")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "installed\n", "{}", text(&out.stderr));
    let bad = Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(gw.data_dir.join("tls_cert.pem"))
        .arg(format!("https://127.0.0.1:{}/install.sh.bak", gw.addr.port()))
        .output()
        .unwrap();
    assert_eq!(text(&bad.stdout), "404");
}

#[test]
fn start_demo_serves_a_local_node_as_the_current_user() {
    let mut gw = TestGateway::start_with("", "", &["--demo"]);
    eventually("the demo node online", Duration::from_secs(30), || online(&gw, "demo"));
    let printed = gw.stdout.lock().unwrap().join("\n");
    assert!(printed.contains("demo node:") && printed.contains("@demo@127.0.0.1"), "{printed}");
    let key = gw.user_with_key("me", "demo");
    let out = ssh_base(&key, gw.addr.port()).arg(format!("{}@demo@127.0.0.1", me())).arg("id -un").output().unwrap();
    assert_eq!(text(&out.stdout).trim(), me(), "{}", text(&out.stderr));
    // A restart reuses the demo agent's identity: no second join, same node.
    gw.restart();
    eventually("the demo node back online", Duration::from_secs(30), || online(&gw, "demo"));
    assert_eq!(gw.audit("node.join").len(), 1);
    let out =
        ssh_base(&key, gw.addr.port()).arg(format!("{}@demo@127.0.0.1", me())).arg("echo again").output().unwrap();
    assert_eq!(text(&out.stdout), "again\n", "{}", text(&out.stderr));
}

#[test]
fn a_woken_tunnel_left_unused_goes_back_to_idle_and_the_node_stays_reachable() {
    let gw = TestGateway::start_logged("", "[agents]\nawake_idle = \"2s\"\n", "info,russh=warn,sqlx=warn");
    roles(&gw);
    let key = gw.user_with_key("edgeuser", "edge");
    let token = gw.ctl_ok(&["tokens", "create", "--ttl", "10m", "--labels", "site=edge"]).trim().to_string();
    let data = gw.dir.path().join("agent-data");
    let _running = agent(&gw, &["--token", &token, "--name", "edge-01"], &data);
    eventually("edge-01 online", Duration::from_secs(30), || online(&gw, "edge-01"));
    let connected = || gw.stderr().matches("agent connected").count();
    let rested = || gw.stderr().matches("closed so the agent reconnects idle").count();
    assert_eq!((connected(), rested()), (1, 0));

    let target = format!("{}@edge-01@127.0.0.1", me());
    let echo = || {
        let out = ssh_base(&key, gw.addr.port()).arg(&target).arg("echo $((6*7))").output().unwrap();
        assert_eq!(text(&out.stdout), "42\n", "{}", text(&out.stderr));
    };
    echo();
    // The pool holds the node connection (and so the tunnel) for a minute; a lock closes
    // the user's pooled connections at once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rested(), 0, "a pooled connection keeps the tunnel awake");
    gw.ctl_ok(&["users", "lock", "edgeuser"]);
    gw.ctl_ok(&["users", "unlock", "edgeuser"]);

    // Unused for 2 s: the gateway closes it, the agent dials again and is idle; the node
    // never shows offline meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut offline_seen = 0;
    while !(rested() == 1 && connected() == 2) {
        assert!(std::time::Instant::now() < deadline, "no rest and reconnect:\n{}", gw.stderr());
        offline_seen += usize::from(!online(&gw, "edge-01"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(offline_seen, 0, "the node showed offline while its agent reconnected");
    assert!(online(&gw, "edge-01"));

    // The next session wakes the new, idle tunnel; the node works as before.
    echo();
    assert_eq!(connected(), 2, "no further reconnect");
}
