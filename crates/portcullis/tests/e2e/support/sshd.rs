//! A throwaway OpenSSH sshd node on 127.0.0.1 with its own keys and config (never /etc/ssh).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::whoami;

/// sshd from Debian's openssh-server.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct SshdNode {
    /// Holds keys, config and logs.
    pub dir: TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The login it accepts (the user running the tests).
    pub user: String,
    /// A client key in its authorized_keys.
    pub client_key: PathBuf,
    /// Its host public key (OpenSSH line).
    pub host_public: String,
    extra: String,
    child: Child,
}

impl SshdNode {
    /// Starts sshd; `extra` is appended to its sshd_config (e.g. a TrustedUserCAKeys line).
    pub fn start(extra: &str) -> SshdNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        super::keygen(&host_key);
        super::keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).expect("authorized_keys");
        let host_public = std::fs::read_to_string(host_key.with_extension("pub")).expect("host pub");
        let user = whoami();
        // sshd refuses to start without its privilege-separation directory (made by install-deps.sh too).
        let _ = std::fs::create_dir_all("/run/sshd");
        for _attempt in 0..5 {
            let port = free_port();
            if let Some(child) = launch(dir.path(), port, extra) {
                let extra = extra.to_string();
                return SshdNode { dir, port, user, client_key, host_public, extra, child };
            }
        }
        let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
        panic!("sshd did not start: {log}");
    }

    /// Stops sshd, makes it a new host key, and starts it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.kill();
        let host_key = self.dir.path().join("host_ed25519");
        let _ = std::fs::remove_file(&host_key);
        let _ = std::fs::remove_file(host_key.with_extension("pub"));
        super::keygen(&host_key);
        self.host_public = std::fs::read_to_string(host_key.with_extension("pub")).expect("host pub");
        for _attempt in 0..50 {
            if let Some(child) = launch(self.dir.path(), self.port, &self.extra) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sshd did not restart on port {}", self.port);
    }

    /// Kills sshd (and so every session it serves).
    pub fn kill(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-P", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts sshd with the config in `dir` on `port`; `None` if it did not come up.
fn launch(dir: &std::path::Path, port: u16, extra: &str) -> Option<Child> {
    let host_key = dir.join("host_ed25519");
    let authorized = dir.join("authorized_keys");
    let config = dir.join("sshd_config");
    let text = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
         StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n\
         AcceptEnv LANG LC_*\n{extra}\n",
        host_key.display(),
        dir.join("sshd.pid").display(),
        authorized.display(),
    );
    std::fs::write(&config, text).expect("sshd_config");
    let log = std::fs::File::create(dir.join("sshd.log")).expect("log");
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("sshd starts (is openssh-server installed? run scripts/install-deps.sh)");
    if wait_for_banner(port, &mut child) {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for SshdNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 0").port()
}

/// Waits up to 10 s for an SSH banner on the port; false if sshd exited (port taken).
fn wait_for_banner(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4];
            if stream.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
