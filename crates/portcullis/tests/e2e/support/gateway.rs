//! A real gateway process on 127.0.0.1:0 with a temporary data dir, stopped on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A running gateway.
pub struct TestGateway {
    /// Holds the config and the data dir.
    pub dir: TempDir,
    /// The data dir.
    pub data_dir: PathBuf,
    /// The bound shared port.
    pub addr: SocketAddr,
    /// Every line the gateway printed on stdout.
    pub stdout: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
    args: Vec<String>,
    logging: Option<Logging>,
    child: Child,
}

/// A log filter for the gateway, and the file its stderr is appended to (instead of the
/// test's own stderr), for tests that read what the gateway logged.
struct Logging {
    rust_log: String,
    stderr: PathBuf,
}

impl TestGateway {
    /// Starts a gateway; `listen` is extra lines for the `[listen]` table, `extra` further tables.
    pub fn start(listen: &str, extra: &str) -> TestGateway {
        TestGateway::start_with(listen, extra, &[])
    }

    /// Like [`TestGateway::start`], with more arguments for `portcullis start` (e.g. `--demo`).
    pub fn start_with(listen: &str, extra: &str, args: &[&str]) -> TestGateway {
        TestGateway::launch(listen, extra, args, None)
    }

    /// Like [`TestGateway::start`], logging with the filter `rust_log` (as `RUST_LOG`) to a
    /// file in its temporary dir instead of the test's stderr; see [`TestGateway::stderr`].
    pub fn start_logged(listen: &str, extra: &str, rust_log: &str) -> TestGateway {
        TestGateway::launch(listen, extra, &[], Some(rust_log))
    }

    fn launch(listen: &str, extra: &str, args: &[&str], rust_log: Option<&str>) -> TestGateway {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("portcullis.toml");
        let text = format!("data_dir = {data_dir:?}\n[listen]\naddr = \"127.0.0.1:0\"\n{listen}\n{extra}\n");
        std::fs::write(&config, text).expect("write config");
        let logging =
            rust_log.map(|filter| Logging { rust_log: filter.to_owned(), stderr: dir.path().join("gateway.stderr") });
        let (child, addr, stdout) = spawn(&config, &args, logging.as_ref());
        TestGateway { dir, data_dir, addr, stdout, config, args, logging, child }
    }

    /// What the gateway wrote on stderr, when started with [`TestGateway::start_logged`].
    pub fn stderr(&self) -> String {
        self.logging.as_ref().and_then(|l| std::fs::read_to_string(&l.stderr).ok()).unwrap_or_default()
    }

    /// Stops the gateway (SIGTERM) and starts it again on the same data dir.
    pub fn restart(&mut self) {
        self.stop();
        let (child, addr, stdout) = spawn(&self.config, &self.args, self.logging.as_ref());
        self.child = child;
        self.addr = addr;
        self.stdout = stdout;
    }

    /// Stops the gateway with SIGTERM and waits (bounded) for it to exit.
    pub fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the gateway with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the gateway again on the same data dir after a stop or a crash.
    pub fn start_again(&mut self) {
        let (child, addr, stdout) = spawn(&self.config, &self.args, self.logging.as_ref());
        self.child = child;
        self.addr = addr;
        self.stdout = stdout;
    }

    /// Runs `portcullis ctl ARGS` against this gateway.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("ctl").arg("--data-dir").arg(&self.data_dir).args(args).output().expect("ctl runs")
    }

    /// Runs `ctl ARGS`, asserting success, and returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "ctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs `ctl ARGS --json` and parses the array.
    pub fn ctl_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ctl_ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ctl {args:?} --json: {e}: {text}"))
    }

    /// Audit events of a type, oldest first.
    pub fn audit(&self, kind: &str) -> Vec<Value> {
        self.ctl_json(&["audit", "ls", "--type", kind])
    }

    /// Whether the gateway process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and waits (bounded) for its "listening on" line.
fn spawn(
    config: &std::path::Path,
    args: &[String],
    logging: Option<&Logging>,
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let (rust_log, stderr) = match logging {
        None => ("info,portcullis_gateway=debug", Stdio::inherit()),
        Some(l) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&l.stderr).expect("the log file");
            (l.rust_log.as_str(), Stdio::from(file))
        }
    };
    let mut child = Command::new(BIN)
        .args(["start", "--config"])
        .arg(config)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the gateway");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("portcullis listening on ") {
                let _ = tx.send(addr.parse::<SocketAddr>().expect("address"));
            }
            seen.lock().unwrap().push(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => (child, addr, lines),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            panic!("gateway did not start: {status:?}; printed {:?}", lines.lock().unwrap());
        }
    }
}

impl TestGateway {
    /// Creates a user with roles and a fresh SSH key; returns the private key's path.
    pub fn user_with_key(&self, name: &str, roles: &str) -> PathBuf {
        let url = self.ctl_ok(&["users", "add", name, "--roles", roles]);
        assert!(url.contains("/invite/"), "users add prints an invite URL: {url}");
        let key = self.dir.path().join(format!("{name}_ed25519"));
        super::keygen(&key);
        let pub_path = key.with_extension("pub");
        self.ctl_ok(&["users", "add-key", name, "--key-file", pub_path.to_str().expect("utf-8 path")]);
        key
    }
}
