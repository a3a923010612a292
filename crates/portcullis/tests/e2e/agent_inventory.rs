//! Inventory labels: an agent reports its host (name, OS, kernel, CPUs, memory) and, with an
//! `nvidia-smi` on PATH (here a stand-in printing an 8-GPU H800 machine's recorded output),
//! its GPUs; role selectors match them. A missing or hanging nvidia-smi never stops a join.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::agents::{
    Spawned, agent_command, apply_roles, labels_text, me, node, nvidia_smi_dir, online, path_without_nvidia_smi,
};
use crate::support::gateway::{BIN, TestGateway};
use crate::support::{ssh_base, text};

fn agent(gw: &TestGateway, name: &str, path: &str, env: &[(&str, &str)]) -> Spawned {
    let token = gw.ctl_ok(&["tokens", "create"]).trim().to_string();
    let data = gw.dir.path().join(format!("agent-{name}"));
    let mut cmd = agent_command(
        Command::new(BIN),
        &gw.addr.to_string(),
        &data,
        &["--token", &token, "--name", name, "--proxy", "none"],
    );
    cmd.env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Spawned::start(cmd, &gw.dir.path().join(format!("agent-{name}.log")))
}

/// The labels a node joined with, exactly, from its `node.join` audit event.
fn joined_labels(gw: &TestGateway, name: &str) -> serde_json::Map<String, Value> {
    let joins = gw.audit("node.join");
    let join = joins.iter().find(|e| e["node"] == name).unwrap_or_else(|| panic!("no node.join for {name}: {joins:?}"));
    join["labels"].as_object().unwrap_or_else(|| panic!("labels: {join}")).clone()
}

fn file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn agents_report_host_and_gpu_labels_that_role_selectors_match() {
    let gw = TestGateway::start("", "");
    apply_roles(&gw, &[("h800", "\"gpu.model\" = \"NVIDIA H800\""), ("a100", "\"gpu.model\" = \"NVIDIA A100\"")]);
    let h800_key = gw.user_with_key("h800user", "h800");
    let a100_key = gw.user_with_key("a100user", "a100");
    let stand_in = nvidia_smi_dir(gw.dir.path());
    let with_gpus = path_without_nvidia_smi(Some(&stand_in));
    let without = path_without_nvidia_smi(None);
    let gpu = agent(&gw, "gpu-h800", &with_gpus, &[]);
    let plain = agent(&gw, "plain-01", &without, &[]);
    // An nvidia-smi that never answers: the agent gives up on it after 5 s and joins anyway.
    let hung = agent(&gw, "hung-01", &with_gpus, &[("NVIDIA_SMI_MODE", "hang")]);
    for (name, spawned) in [("gpu-h800", &gpu), ("plain-01", &plain), ("hung-01", &hung)] {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !online(&gw, name) {
            assert!(Instant::now() < deadline, "{name} not online: {}", spawned.output());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let labels = joined_labels(&gw, "gpu-h800");
    for (key, value) in
        [("gpu.model", "NVIDIA H800"), ("gpu.count", "8"), ("gpu.memory_gib", "80"), ("gpu.driver", "535.129.03")]
    {
        assert_eq!(labels.get(key).and_then(Value::as_str), Some(value), "{key} in {labels:?}");
    }
    let listed = node(&gw, "gpu-h800").unwrap();
    let listed = labels_text(&listed);
    assert!(listed.contains("gpu.model=NVIDIA H800") && listed.contains("gpu.count=8"), "{listed}");
    for name in ["gpu-h800", "plain-01", "hung-01"] {
        let labels = joined_labels(&gw, name);
        assert_eq!(labels["host.name"], file("/proc/sys/kernel/hostname"), "{labels:?}");
        assert_eq!(labels["kernel"], file("/proc/sys/kernel/osrelease"), "{labels:?}");
        for key in ["cpu.count", "memory_gib"] {
            let n: u64 = labels[key].as_str().unwrap().parse().unwrap();
            assert!(n >= 1, "{key} in {labels:?}");
        }
        if std::path::Path::new("/etc/os-release").exists() {
            assert!(labels["os"].as_str().is_some_and(|s| !s.is_empty()), "{labels:?}");
        }
        if name != "gpu-h800" {
            assert!(!labels.keys().any(|k| k.starts_with("gpu.")), "{name}: {labels:?}");
        }
    }

    // Role selectors match the GPU model.
    let target = |node: &str| format!("{}@{node}@127.0.0.1", me());
    let out = ssh_base(&h800_key, gw.addr.port()).arg(target("gpu-h800")).arg("echo on-h800").output().unwrap();
    assert_eq!(text(&out.stdout), "on-h800\n", "{}", text(&out.stderr));
    let out = ssh_base(&a100_key, gw.addr.port()).arg(target("gpu-h800")).arg("echo on-h800").output().unwrap();
    assert_eq!(out.status.code(), Some(255), "an A100 role does not reach an H800 node");
    assert!(out.stdout.is_empty());
    let out = ssh_base(&h800_key, gw.addr.port()).arg(target("plain-01")).arg("echo plain").output().unwrap();
    assert_eq!(out.status.code(), Some(255), "a node without GPUs is not an H800 node");
}
