//! The test harness every later test uses: a gateway, sshd nodes, ssh clients.

pub mod agents;
pub mod connect_proxy;
pub mod forward;
pub mod gateway;
pub mod lab;
pub mod netns;
pub mod nginx;
pub mod sshd;

use std::path::Path;
use std::process::{Command, Stdio};

/// Makes an Ed25519 key pair at `path` (and `path.pub`) with ssh-keygen.
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
}

/// ssh options for tests: no config, no agent, no known_hosts prompts, no passwords.
pub fn ssh_base(key: &Path, port: u16) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-p", &port.to_string()])
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
        .env_remove("SSH_AUTH_SOCK");
    cmd
}

/// The user running the tests.
pub fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    text(&out.stdout).trim().to_owned()
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits (bounded) until `f` holds; panics naming `what` otherwise.
pub fn eventually(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// What `asciinema cat` prints for a recording (Debian's asciinema opens /dev/tty even
/// for `cat`, so it runs under `script`, which gives it one).
pub fn asciinema_cat(path: &Path) -> String {
    let out = Command::new("script")
        .args(["-qec", &format!("asciinema cat {}", path.display()), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("asciinema runs (install-deps installs it)");
    assert!(out.status.success(), "asciinema cat failed: {}", text(&out.stderr));
    text(&out.stdout)
}
