//! Agents on an isolated network: a node namespace whose only route is Debian's tinyproxy
//! (see support/netns.rs). The agent joins through the proxy, the stock ssh client reaches
//! the node through the gateway, sessions are recorded and audited; a tunnel cut mid-session
//! ends that session cleanly and the agent comes back by itself; the installer fetched from
//! the gateway through the proxy installs a working agent and its systemd unit.
//!
//! These tests need root (`ip netns`); elsewhere they print `SKIPPED: …` and pass.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::browser;
use crate::support::agents::{Spawned, agent_command, apply_roles, audit_for, labels_text, me, node, online};
use crate::support::gateway::{BIN, TestGateway};
use crate::support::netns::{NodeNet, Tinyproxy};
use crate::support::{eventually, ssh_base, text};

/// A gateway on 127.0.0.1, a node namespace and tinyproxy on the namespace's one reachable
/// address, allowing CONNECT to the gateway's port only.
struct Isolated {
    // Dropped in this order: proxy, then the namespace, then the gateway.
    proxy: Tinyproxy,
    net: NodeNet,
    gw: TestGateway,
}

impl Isolated {
    fn start(test: &str) -> Option<Isolated> {
        let net = NodeNet::create(test)?;
        let gw = TestGateway::start("", "");
        let proxy = Tinyproxy::start(net.host_ip, &format!("{}/32", net.node_ip), &[gw.addr.port()]);
        Some(Isolated { proxy, net, gw })
    }

    /// The gateway as the agent names it: the proxy, in the root namespace, resolves and dials it.
    fn gateway(&self) -> String {
        self.gw.addr.to_string()
    }
}

/// The node's namespace reaches the proxy and nothing else; the proxy reaches the gateway.
fn assert_isolated(lab: &Isolated) {
    let (net, gw) = (&lab.net, &lab.gw);
    eventually("the proxy reachable from the node", Duration::from_secs(10), || {
        net.can_connect(&net.host_ip.to_string(), lab.proxy.addr.port())
    });
    assert!(!net.can_connect("127.0.0.1", gw.addr.port()), "the node's own loopback has no gateway");
    assert!(!net.can_connect(&net.host_ip.to_string(), gw.addr.port()), "the gateway listens on loopback only");
    let route = net.exec("ip").args(["route", "get", "192.0.2.1"]).output().unwrap();
    assert!(!route.status.success(), "the node has no route out: {}", text(&route.stdout));
    // Through the proxy: the gateway's port and nothing else.
    let curl = |target: &str| {
        net.exec("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_connect}", "--max-time", "5", "--proxytunnel", "--proxy"])
            .arg(lab.proxy.url())
            .arg(target)
            .output()
            .unwrap()
    };
    let denied = curl("http://127.0.0.1:22/");
    assert_eq!(text(&denied.stdout), "403", "the proxy refuses CONNECT to other ports");
    let health = net
        .exec("curl")
        .args(["-fsS", "--max-time", "10", "--proxy", &lab.proxy.url(), "--cacert"])
        .arg(gw.data_dir.join("tls_cert.pem"))
        .arg(format!("https://{}/api/health", gw.addr))
        .output()
        .unwrap();
    assert!(text(&health.stdout).contains("\"ok\""), "{} {}", text(&health.stdout), text(&health.stderr));
}

#[test]
fn an_agent_whose_only_route_is_tinyproxy_serves_recorded_sessions_and_survives_a_cut_tunnel() {
    let Some(mut lab) = Isolated::start("agent_netns") else { return };
    assert_isolated(&lab);
    let gateway = lab.gateway();
    let Isolated { proxy, net, gw } = &mut lab;
    let (gw, net) = (&*gw, &*net);
    apply_roles(gw, &[("isolated", "site = \"isolated\"")]);
    let key = gw.user_with_key("vendor", "isolated");
    let token = gw.ctl_ok(&["tokens", "create", "--ttl", "10m", "--labels", "site=isolated"]).trim().to_string();
    let data = gw.dir.path().join("ns-agent");
    let cmd = agent_command(
        net.exec(BIN),
        &gateway,
        &data,
        &["--token", &token, "--name", "ns-01", "--proxy", &proxy.url(), "--reconnect-max", "2s"],
    );
    let mut agent = Spawned::start(cmd, &gw.dir.path().join("ns-agent.log"));
    eventually("ns-01 online", Duration::from_secs(30), || online(gw, "ns-01"));
    assert!(proxy.tunnels_to(&gateway) >= 2, "join and tunnel went through tinyproxy:\n{}", proxy.log_text());
    let listed = node(gw, "ns-01").unwrap();
    assert_eq!(listed["source"], "agent", "{listed}");
    assert!(labels_text(&listed).contains("site=isolated"), "{listed}");
    let join = audit_for(gw, "node.join", "ns-01");
    assert_eq!(join.len(), 1, "{join:?}");
    assert_eq!(join[0]["src_ip"], "127.0.0.1", "the gateway sees the proxy, not the node: {join:?}");

    // The stock ssh client reaches the node through the gateway; sessions are recorded and audited.
    let target = format!("{}@ns-01@127.0.0.1", me());
    let ssh = || ssh_base(&key, gw.addr.port());
    let out = ssh().arg(&target).arg("echo $((6*7)); exit 3").output().unwrap();
    assert_eq!(text(&out.stdout), "42\n", "{}\n{}", text(&out.stderr), agent.output());
    assert_eq!(out.status.code(), Some(3));
    let out = ssh().arg("-tt").arg(&target).arg("tty >/dev/null && echo has-a-tty").output().unwrap();
    assert!(text(&out.stdout).contains("has-a-tty"), "{}", text(&out.stderr));
    eventually("two recordings of ns-01", Duration::from_secs(10), || {
        gw.ctl_json(&["recordings", "ls", "--node", "ns-01"]).len() == 2
    });
    let starts = audit_for(gw, "session.start", "ns-01");
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts.iter().all(|e| e["user"] == "vendor"), "{starts:?}");
    eventually("two session.end of ns-01", Duration::from_secs(10), || {
        audit_for(gw, "session.end", "ns-01").len() == 2
    });

    // A session running when the tunnel is cut: it ends, promptly, with an audit event.
    let mut running = ssh()
        .arg("-tt")
        .arg(&target)
        .arg("echo started; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (stdout, printed) = (running.stdout.take().unwrap(), printed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                printed.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    eventually("the session ticking", Duration::from_secs(20), || printed.lock().unwrap().contains("tick 3"));
    let live = gw.ctl_json(&["sessions", "ls"]);
    let session =
        live.iter().find(|s| s["node"] == "ns-01" && s["active"] == true).unwrap_or_else(|| panic!("{live:?}"))["id"]
            .clone();
    assert!(net.established(net.host_ip, proxy.addr.port()) >= 1);
    let cut_at = Instant::now();
    let cut = net.kill_connections(net.host_ip, proxy.addr.port());
    assert!(cut.status.success(), "ss -K: {}", text(&cut.stderr));
    if net.established(net.host_ip, proxy.addr.port()) > 0 {
        // A kernel without socket destruction (CONFIG_INET_DIAG_DESTROY): cut at the proxy instead.
        eprintln!("note: `ss -K` cannot destroy sockets here; restarting the proxy to cut the tunnel");
        proxy.restart();
    }
    let status = loop {
        if let Some(status) = running.try_wait().unwrap() {
            break status;
        }
        assert!(cut_at.elapsed() < Duration::from_secs(30), "the session hangs after its tunnel was cut");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ended_in = cut_at.elapsed();
    reader.join().unwrap();
    assert!(!status.success(), "a cut session does not report success: {status}");
    eventually("session.end of the cut session", Duration::from_secs(10), || {
        gw.audit("session.end").iter().any(|e| e["session_id"] == session)
    });
    eprintln!("tunnel cut: the user's ssh exited ({status}) {ended_in:.1?} after the cut");
    let listed = gw.ctl_json(&["sessions", "ls"]);
    assert!(listed.iter().all(|s| s["active"] == false), "no session left behind: {listed:?}");
    eventually("the cut session's recording", Duration::from_secs(10), || {
        gw.ctl_json(&["recordings", "ls", "--node", "ns-01"]).len() == 3
    });

    // The agent was not restarted: it reconnects by itself, and a new session works.
    eventually("ns-01 back online", Duration::from_secs(30), || online(gw, "ns-01"));
    assert!(agent.alive(), "the agent kept running: {}", agent.output());
    let out = ssh().arg(&target).arg("echo again").output().unwrap();
    assert_eq!(text(&out.stdout), "again\n", "{}\n{}", text(&out.stderr), agent.output());
    assert_eq!(audit_for(gw, "node.join", "ns-01").len(), 1, "a reconnect is not a second join");
    assert!(proxy.tunnels_to(&gateway) >= 3, "the new tunnel also went through tinyproxy");

    // The browser too: the UI shows the node online, and its terminals and file transfers
    // reach the node through the agent's tunnel, recorded and audited the same way.
    let invite_path = browser::invite(gw, "web-vendor", "isolated");
    let files = tempfile::tempdir().unwrap();
    let transfer = browser::Transfer::new(files.path(), 200_000);
    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    let report = browser::run_flow(&browser::vendor_flow(&base, &invite_path, "web-vendor", "ns-01", &transfer));
    browser::check_report(&report, "ns-01", &transfer);
    assert_eq!(report["nodes_online"]["ns-01"], "online", "{report}");
    browser::assert_transfers_audited(gw, "web-vendor", &transfer);
    let web = gw.ctl_json(&["recordings", "ls", "--user", "web-vendor"]);
    assert!(
        web.iter().any(|r| r["node"] == "ns-01" && r["command"].is_null()),
        "the web terminal's recording: {web:?}"
    );
}

#[test]
fn the_installer_fetched_through_the_proxy_installs_an_agent_and_its_systemd_unit() {
    let Some(lab) = Isolated::start("agent_netns installer") else { return };
    assert_isolated(&lab);
    let (gw, net, proxy) = (&lab.gw, &lab.net, &lab.proxy);
    apply_roles(gw, &[("isolated", "site = \"isolated\"")]);
    let key = gw.user_with_key("vendor", "isolated");
    let token = gw.ctl_ok(&["tokens", "create", "--labels", "site=isolated"]).trim().to_string();
    let dir = gw.dir.path();
    let (prefix, data) = (dir.join("prefix"), dir.join("inst-data"));
    // systemd is absent here: a stand-in systemctl logs its calls, and /run/systemd/system and
    // /etc are made writable copies in a private mount namespace (an overlay over /etc), so the
    // installer takes its systemd path and writes the unit where the test can read it.
    let (upper, work, fake_bin) = (dir.join("etc-upper"), dir.join("etc-work"), dir.join("fake-bin"));
    for d in [&upper, &work, &fake_bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    let calls = dir.join("systemctl.calls");
    let systemctl = fake_bin.join("systemctl");
    std::fs::write(&systemctl, format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display())).unwrap();
    std::fs::set_permissions(&systemctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && \
         mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system || exit 90\n\
         curl -fsSL --proxy {proxy} --cacert {cert} https://{gateway}/install.sh | \
         sh -s -- --token {token} --proxy {proxy} --name ns-inst --prefix {prefix} --data-dir {data}",
        upper = upper.display(),
        work = work.display(),
        proxy = proxy.url(),
        cert = gw.data_dir.join("tls_cert.pem").display(),
        gateway = lab.gateway(),
        prefix = prefix.display(),
        data = data.display(),
    );
    let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = net
        .exec("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("PATH", &path)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap();
    if out.status.code() == Some(90) {
        eprintln!("SKIPPED: the installer's systemd path: cannot overlay /etc here ({})", text(&out.stderr).trim());
        return;
    }
    assert!(out.status.success(), "installer ({}): {}\n{}", out.status, text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("installed and started"), "{}", text(&out.stdout));
    // The script and the binary both came through the proxy.
    assert!(proxy.tunnels_to(&lab.gateway()) >= 2, "{}", proxy.log_text());
    let installed = prefix.join("bin/portcullis");
    assert_eq!(std::fs::read(&installed).unwrap(), std::fs::read(BIN).unwrap(), "the gateway's own binary");

    // What the installer left for systemd.
    let unit = std::fs::read_to_string(upper.join("systemd/system/portcullis-agent.service")).expect("the unit");
    let env_file = upper.join("portcullis-agent.env");
    let env_text = std::fs::read_to_string(&env_file).expect("the environment file");
    let proxy_url = proxy.url();
    assert_eq!(env_text, format!("PORTCULLIS_JOIN_TOKEN={token}\nHTTPS_PROXY={proxy_url}\n"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&env_file).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the token file is the owner's only: {mode:o}");
    assert!(unit.contains("EnvironmentFile=/etc/portcullis-agent.env"), "{unit}");
    assert!(unit.contains("Restart=always") && unit.contains("WantedBy=multi-user.target"), "{unit}");
    assert!(!unit.contains(&token), "the token stays out of the unit: {unit}");
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(calls.contains("daemon-reload") && calls.contains("enable --now portcullis-agent.service"), "{calls}");
    let exec_start = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let words: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(words[0], installed.to_str().unwrap(), "{unit}");
    for expected in ["agent", "--gateway", lab.gateway().as_str(), "--name", "ns-inst"] {
        assert!(words.contains(&expected), "{expected} in {exec_start}");
    }
    assert!(!exec_start.contains("proxy"), "a proxy URL (maybe with a password) stays out of the unit: {exec_start}");

    // systemd is absent: start the unit's command the way it would, in the node's namespace.
    let mut cmd = net.exec("env");
    cmd.arg("-i").arg("PATH=/usr/local/bin:/usr/bin:/bin").arg("RUST_LOG=info").args(env_text.lines()).args(&words);
    let agent = Spawned::start(cmd, &dir.join("unit-agent.log"));
    eventually("ns-inst online", Duration::from_secs(30), || online(gw, "ns-inst"));
    let out = ssh_base(&key, gw.addr.port())
        .arg(format!("{}@ns-inst@127.0.0.1", me()))
        .arg("echo installed")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "installed\n", "{}\n{}", text(&out.stderr), agent.output());
    assert!(proxy.tunnels_to(&lab.gateway()) >= 4, "join and tunnel went through the proxy too");
}
