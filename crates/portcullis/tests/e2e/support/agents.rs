//! Helpers for agent tests: agent processes (killed with their process group on drop, their
//! log kept), roles for agent nodes, node lookups, the nvidia-smi stand-in.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::gateway::TestGateway;
use super::text;

/// A process (an agent, or an installer pipeline ending in one) in its own process group,
/// killed with the whole group on drop; stdout and stderr go to a log file.
pub struct Spawned {
    /// The process.
    pub child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Spawned {
    /// Starts `cmd` in a new process group, output to `log`.
    pub fn start(mut cmd: Command, log: &Path) -> Spawned {
        let out = std::fs::File::create(log).expect("create the log");
        let err = out.try_clone().expect("clone the log");
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Spawned { child, log: log.to_path_buf() }
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `portcullis agent --gateway GW --data-dir DIR ARGS…` as a command, the environment's proxy removed.
pub fn agent_command(program: Command, gateway: &str, data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = program;
    cmd.args(["agent", "--gateway", gateway, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("PORTCULLIS_JOIN_TOKEN")
        .env("RUST_LOG", "info");
    cmd
}

/// The user the tests run as.
pub fn me() -> String {
    text(&Command::new("id").arg("-un").output().expect("id runs").stdout).trim().to_string()
}

/// A node of `ctl nodes ls --json` by name.
pub fn node(gw: &TestGateway, name: &str) -> Option<Value> {
    gw.ctl_json(&["nodes", "ls"]).into_iter().find(|n| n["name"] == name)
}

/// A listed node's labels (an object in `ctl nodes ls --json`) as `k=v,k=v` text.
pub fn labels_text(node: &Value) -> String {
    let labels = node["labels"].as_object().expect("labels are an object");
    labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
}

/// Whether the node is listed and online.
pub fn online(gw: &TestGateway, name: &str) -> bool {
    node(gw, name).is_some_and(|n| n["online"] == true)
}

/// Applies roles: `(name, selector)` pairs, each allowing shell, exec and file transfer as the
/// test's own user from loopback, recorded. `selector` is TOML inline-table content.
pub fn apply_roles(gw: &TestGateway, roles: &[(&str, &str)]) {
    let mut toml = String::new();
    for (name, selector) in roles {
        toml.push_str(&format!(
            "[[role]]\nname = \"{name}\"\nnodes = {{ {selector} }}\nlogins = [\"{}\"]\n\
             allow = [\"shell\", \"exec\", \"file_transfer\"]\nrecord = true\nsource_cidrs = [\"127.0.0.0/8\"]\n\n",
            me()
        ));
    }
    let file = gw.dir.path().join(format!("roles-{}.toml", roles.iter().map(|r| r.0).collect::<Vec<_>>().join("-")));
    std::fs::write(&file, toml).expect("write roles");
    gw.ctl_ok(&["roles", "apply", file.to_str().expect("utf-8 path")]);
}

/// A directory holding the nvidia-smi stand-in of an 8-GPU H800 machine (and its recorded
/// output), for the front of an agent's PATH.
pub fn nvidia_smi_dir(parent: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures");
    let dir = parent.join("nvidia-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for name in ["nvidia-smi", "nvidia-smi-h800x8.csv"] {
        std::fs::copy(fixtures.join(name), dir.join(name)).expect("copy the nvidia-smi stand-in");
    }
    std::fs::set_permissions(dir.join("nvidia-smi"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// `PATH` with every directory holding an `nvidia-smi` left out, and `front` (if any) put first.
pub fn path_without_nvidia_smi(front: Option<&Path>) -> String {
    let current = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let kept = current.split(':').filter(|d| !d.is_empty() && !Path::new(d).join("nvidia-smi").exists());
    front.map(|f| f.display().to_string()).into_iter().chain(kept.map(str::to_string)).collect::<Vec<_>>().join(":")
}

/// The audit events of a type naming a node.
pub fn audit_for(gw: &TestGateway, kind: &str, node: &str) -> Vec<Value> {
    gw.audit(kind).into_iter().filter(|e| e["node"] == node).collect()
}
