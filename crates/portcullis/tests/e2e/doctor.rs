//! `portcullis doctor` against a real gateway, a real sshd node and config files.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::gateway::{BIN, TestGateway};
use crate::support::lab::Lab;
use crate::support::text;

/// `doctor --json` on a config: whether it exited 0, and the parsed report.
fn doctor(config: &Path) -> (bool, Vec<Value>) {
    let out = Command::new(BIN).args(["doctor", "--json", "--config"]).arg(config).output().expect("doctor runs");
    let report: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}{}", text(&out.stdout), text(&out.stderr)));
    for check in &report {
        let keys: BTreeSet<&str> = check.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["check", "status", "detail", "fix"]), "{check}");
        let status = check["status"].as_str().expect("status is a string");
        assert!(["ok", "finding", "skipped"].contains(&status), "{check}");
        assert!(!check["detail"].as_str().expect("detail is a string").is_empty(), "{check}");
        assert_eq!(check["fix"].is_string(), status == "finding", "a fix for each finding, only: {check}");
    }
    eprintln!("doctor --config {}: exit {:?}, findings {:?}", config.display(), out.status.code(), findings(&report));
    (out.status.success(), report)
}

fn get<'a>(report: &'a [Value], name: &str) -> &'a Value {
    report.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name} in {report:#?}"))
}

fn status<'a>(report: &'a [Value], name: &str) -> &'a str {
    get(report, name)["status"].as_str().unwrap()
}

fn findings(report: &[Value]) -> BTreeSet<String> {
    report.iter().filter(|c| c["status"] == "finding").map(|c| c["check"].as_str().unwrap().to_owned()).collect()
}

/// Findings that depend on where the test runs, not on the gateway: this machine being a
/// container (its detection is unit-tested on recorded /proc files; a finding only for a
/// config that listens beyond loopback) and a nearly full disk.
fn findings_of_this_machine(report: &[Value], data_dir: &Path, loopback: bool) -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    let container = get(report, "docker.container");
    let detail = container["detail"].as_str().unwrap();
    let marked = ["/.dockerenv", "/proc/1/cgroup", "/proc/self/mountinfo"].iter().any(|m| detail.contains(m));
    if Path::new("/.dockerenv").exists() {
        assert!(marked, "{container}");
    }
    if marked {
        assert_eq!(status(report, "docker.firewall"), "skipped", "DOCKER-USER is the host's");
    }
    if marked && !loopback {
        assert_eq!(container["status"], "finding", "{container}");
        expected.insert("docker.container".to_owned());
    } else {
        assert_eq!(container["status"], "ok", "{container}");
    }
    let firewall = get(report, "docker.firewall");
    assert!(["ok", "skipped"].contains(&firewall["status"].as_str().unwrap()), "no Docker here: {firewall}");
    let df = Command::new("df").arg("-Pk").arg(data_dir).output().expect("df runs");
    let free_kib: u64 =
        text(&df.stdout).lines().nth(1).and_then(|l| l.split_whitespace().nth(3)?.parse().ok()).unwrap();
    if free_kib < 1 << 20 {
        expected.insert("recordings".to_owned());
    }
    expected
}

#[test]
fn doctor_passes_a_healthy_gateway_then_finds_a_loose_socket_and_an_unreachable_node() {
    let lab = Lab::start("public_addr = [\"localhost:443\"]", "");
    let config = lab.gw.dir.path().join("portcullis.toml");
    // gpu-02 is the same sshd under another name: one session each pins both.
    for node in ["gpu-01", "gpu-02"] {
        let out = lab.exec(&lab.ops_key, node, "true");
        assert!(out.status.success(), "ssh to {node}: {}", text(&out.stderr));
    }

    let (clean, report) = doctor(&config);
    let machine = findings_of_this_machine(&report, &lab.gw.data_dir, true);
    assert_eq!(findings(&report), machine, "{report:#?}");
    assert_eq!(clean, machine.is_empty(), "exit status follows the findings");
    for name in [
        "listen.exposure",
        "listen.trusted_proxies",
        "listen.proxy_protocol",
        "data_dir",
        "admin.socket",
        "tls.cert",
        "tls.names",
        "node.gpu-01",
        "node.gpu-01.host_key",
        "node.gpu-02",
        "node.gpu-02.host_key",
    ] {
        assert_eq!(status(&report, name), "ok", "{}", get(&report, name));
    }
    if !machine.contains("recordings") {
        assert_eq!(status(&report, "recordings"), "ok", "{}", get(&report, "recordings"));
    }
    assert!(get(&report, "tls.names")["detail"].as_str().unwrap().contains("localhost"));

    // A socket others may connect to.
    let socket = lab.gw.data_dir.join("admin.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (clean, report) = doctor(&config);
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!clean);
    let mut want = machine.clone();
    want.insert("admin.socket".to_owned());
    assert_eq!(findings(&report), want, "{report:#?}");
    let socket_check = get(&report, "admin.socket");
    assert!(socket_check["detail"].as_str().unwrap().contains("mode 0666"), "{socket_check}");
    assert_eq!(socket_check["fix"].as_str().unwrap().split(' ').take(2).collect::<Vec<_>>(), ["chmod", "600"]);

    // A node whose port nothing listens on, never connected to, so nothing is pinned either.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    lab.gw.ctl_ok(&["nodes", "add", "gpu-03", "--addr", &format!("127.0.0.1:{closed}")]);
    let (clean, report) = doctor(&config);
    assert!(!clean);
    let mut want = machine.clone();
    want.extend(["node.gpu-03".to_owned(), "node.gpu-03.host_key".to_owned()]);
    assert_eq!(findings(&report), want, "{report:#?}");
    let unreachable = get(&report, "node.gpu-03")["detail"].as_str().unwrap();
    assert!(unreachable.contains(&format!("127.0.0.1:{closed} is unreachable")), "{unreachable}");
    assert!(get(&report, "node.gpu-03.host_key")["fix"].as_str().unwrap().contains("connect once as an operator"));

    // The plain report: one line per check, each finding's fix under it, then the tally.
    let out = Command::new(BIN).args(["doctor", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let plain = text(&out.stdout);
    let lines: Vec<&str> = plain.lines().collect();
    let verdicts = lines.iter().filter(|l| ["ok ", "FINDING ", "skipped "].iter().any(|s| l.starts_with(s))).count();
    assert_eq!(verdicts, report.len(), "{plain}");
    assert_eq!(lines.iter().filter(|l| l.trim_start().starts_with("fix: ")).count(), want.len(), "{plain}");
    assert!(lines.last().unwrap().starts_with(&format!("{} findings, ", want.len())), "{plain}");
}

#[test]
fn doctor_reads_exposure_from_the_config() {
    let gw = TestGateway::start("", "");
    // The running gateway stays on loopback; doctor reads another config for the same data dir.
    let exposed = gw.dir.path().join("exposed.toml");
    std::fs::write(
        &exposed,
        format!(
            "data_dir = {:?}\n[listen]\naddr = \"0.0.0.0:3080\"\nallow = [\"0.0.0.0/0\", \"::/0\"]\n\
             trusted_proxies = [\"0.0.0.0/0\"]\nproxy_protocol = \"optional\"\npublic_addr = [\"gw.example.com:443\"]\n",
            gw.data_dir
        ),
    )
    .unwrap();
    let (clean, report) = doctor(&exposed);
    assert!(!clean);
    let mut want = findings_of_this_machine(&report, &gw.data_dir, false);
    want.extend(["listen.exposure", "listen.trusted_proxies", "tls.names"].map(str::to_owned));
    assert_eq!(findings(&report), want, "{report:#?}");
    let exposure = get(&report, "listen.exposure");
    assert!(exposure["detail"].as_str().unwrap().contains("0.0.0.0:3080 listens on every interface"), "{exposure}");
    assert!(exposure["fix"].as_str().unwrap().contains("narrow listen.allow"), "{exposure}");
    assert!(get(&report, "tls.names")["detail"].as_str().unwrap().contains("does not name gw.example.com"));
    assert_eq!(status(&report, "listen.proxy_protocol"), "ok");
    assert_eq!(status(&report, "nodes"), "ok");

    let no_proxies = gw.dir.path().join("no-proxies.toml");
    std::fs::write(
        &no_proxies,
        format!("data_dir = {:?}\n[listen]\naddr = \"127.0.0.1:3080\"\nproxy_protocol = \"optional\"\n", gw.data_dir),
    )
    .unwrap();
    let (_, report) = doctor(&no_proxies);
    let mut want = findings_of_this_machine(&report, &gw.data_dir, true);
    want.insert("listen.proxy_protocol".to_owned());
    assert_eq!(findings(&report), want, "{report:#?}");
}
