//! How each kind of RBAC cell is run and judged: SSH commands (bounded in time), forwards,
//! web answers, terminals, watchers and `ctl` as another Unix user.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use super::matrix::Seen;
use crate::support::gateway::BIN;
use crate::support::lab::Lab;
use crate::support::{keygen, text};
use crate::web::Account;
use crate::web::client::Browser;

/// The longest one SSH cell may take.
pub const CELL_LIMIT: Duration = Duration::from_secs(20);
/// The longest a web terminal or watch cell waits.
pub const WS_LIMIT: Duration = Duration::from_secs(10);

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// One column's user: an SSH key, a web session, and the login its role offers.
pub struct Subject {
    /// The matrix column (the role).
    pub column: &'static str,
    /// The user's name.
    pub user: String,
    /// Its SSH private key (registered, except for the anonymous column).
    pub key: PathBuf,
    /// The login its role offers on gpu-01.
    pub login: String,
    /// Signed in as the user (or no session, for the anonymous column).
    pub browser: Browser,
    /// TOTP secret and the step last used, for a fresh sign-in.
    pub totp: Option<(Vec<u8>, u64)>,
}

impl Subject {
    pub fn new(lab: &Lab, column: &'static str, user: &str, login: &str, account: Option<Account>) -> Subject {
        let key = lab.gw.dir.path().join(format!("rbac-{user}"));
        keygen(&key);
        if account.is_some() {
            let public = key.with_extension("pub");
            lab.gw.ctl_ok(&["users", "add-key", user, "--key-file", public.to_str().unwrap()]);
        }
        let browser = account.as_ref().map_or_else(|| Browser::new(&lab.gw), |a| a.browser.clone());
        let totp = account.map(|a| (a.secret, a.step));
        Subject { column, user: user.into(), key, login: login.into(), browser, totp }
    }
}

/// `sftp`/`scp` with the options `ssh_base` gives `ssh`.
pub fn file_client(program: &str, key: &Path, port: u16) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-P", &port.to_string(), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
        .env_remove("SSH_AUTH_SOCK");
    cmd
}

/// `cmd` (from `ssh_base`) with `-A` and an agent: OpenSSH asks to forward an agent only
/// when one answers at `SSH_AUTH_SOCK`, which `IdentityAgent=none` would unset.
pub fn with_agent(cmd: Command, sock: &Path) -> Command {
    let args: Vec<&OsStr> = cmd.get_args().collect();
    let mut with = Command::new(cmd.get_program());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-o" && args.get(i + 1).is_some_and(|a| *a == "IdentityAgent=none") {
            i += 2;
            continue;
        }
        with.arg(args[i]);
        i += 1;
    }
    with.env("SSH_AUTH_SOCK", sock).arg("-A");
    with
}

/// Runs `cmd` with `input` on stdin, killed after [`CELL_LIMIT`].
pub fn bounded(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let deadline = Instant::now() + CELL_LIMIT;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("wait")
}

/// A refusal the node gave after the gateway granted the session (restricted-dev's `vendor`
/// login does not exist on the test node).
pub fn node_side(line: &str) -> bool {
    line.contains("cannot be reached") || line.contains("node refused")
}

/// What an SSH command's outcome says: it ran (`marker` printed), the gateway refused the
/// sign-in or the session, or the gateway granted it and the node refused.
pub fn judged(out: &Output, marker: &str) -> Seen {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    if out.status.success() && stdout.contains(marker) {
        return Seen::allow("ran");
    }
    if stderr.contains("Permission denied") {
        return Seen::deny("sign-in refused");
    }
    if let Some(line) = stderr.lines().find_map(|l| l.trim().strip_prefix("portcullis: ")) {
        if node_side(line) {
            return Seen::allow(format!("granted; node: {line}"));
        }
        return Seen::deny(line.to_owned());
    }
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    Seen::deny(format!("exit {:?} {last}", out.status.code()))
}

/// Counts the `forward.denied` events of a user and kind.
pub fn forwards_denied(lab: &Lab, user: &str, kind: &str) -> usize {
    lab.gw.audit("forward.denied").iter().filter(|e| e["user"] == user && e["kind"] == kind).count()
}

/// A forwarding cell: the variable `var` set on the node means forwarded; a new
/// `forward.denied` event means refused (and audited).
pub fn forward_cell(lab: &Lab, s: &Subject, kind: &str, var: &str, cmd: Command) -> Seen {
    let before = forwards_denied(lab, &s.user, kind);
    let out = bounded(cmd, "");
    let stdout = text(&out.stdout);
    if stdout.contains(&format!("{var}=[/")) || stdout.contains(&format!("{var}=[localhost")) {
        return Seen::allow(format!("{var} set on the node"));
    }
    if forwards_denied(lab, &s.user, kind) > before {
        let ran = if stdout.contains(&format!("{var}=[]")) { format!("; {var} unset") } else { String::new() };
        return Seen::deny(format!("refused, audited{ran}"));
    }
    let seen = judged(&out, &format!("{var}="));
    if seen.allowed { Seen::allow(format!("not refused: {stdout}")) } else { seen }
}

/// `ssh -L`: a local port forwarded to the node's sshd must not carry its banner.
pub fn local_forward(lab: &Lab, s: &Subject) -> Seen {
    let before = forwards_denied(lab, &s.user, "direct-tcpip");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let spec = format!("127.0.0.1:{port}:127.0.0.1:{}", lab.node.port);
    let mut child = lab
        .ssh(&s.key, &format!("{}@gpu-01", s.login))
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L", &spec])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let deadline = Instant::now() + CELL_LIMIT;
    let seen = loop {
        if let Ok(Some(_)) = child.try_wait() {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            break if stderr.contains("Permission denied") {
                Seen::deny("sign-in refused")
            } else {
                Seen::deny(format!("ssh exited: {}", stderr.trim()))
            };
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut banner = [0u8; 4];
            break if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                Seen::allow("forwarded")
            } else {
                Seen::deny("channel refused")
            };
        }
        if Instant::now() > deadline {
            break Seen::deny("no local listener");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    if !seen.allowed && seen.detail == "channel refused" {
        // The refusal reaches the audit log shortly after the channel closes.
        std::thread::sleep(Duration::from_millis(200));
        if forwards_denied(lab, &s.user, "direct-tcpip") > before {
            return Seen::deny("channel refused, audited");
        }
    }
    seen
}

/// A web answer as a cell sees it; a refusal's error text when it is not the common 404.
pub fn answered(status: u16, body: &str) -> Seen {
    let error = serde_json::from_str::<Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
    match error {
        Some(error) if status == 403 && node_side(&error) => Seen::allow(format!("granted; node: {error}")),
        Some(error) if status != 404 && status != 401 => Seen::status(status, error),
        _ => Seen::status(status, ""),
    }
}

/// A web terminal on `node` as `login`: allowed when a command runs in it.
pub async fn terminal(browser: &Browser, node: &str, login: &str) -> Seen {
    let query = format!("node={node}&login={login}&cols=80&rows=24");
    match browser.terminal(&query, Some(&browser.origin())).await {
        Err(tungstenite::Error::Http(response)) => Seen::status(response.status().as_u16(), ""),
        Err(err) => Seen::deny(format!("error: {err}")),
        Ok(mut term) => {
            term.keys("echo term-$((6*7))\r").await;
            if term.until("term-42", WS_LIMIT).await {
                term.keys("exit\r").await;
                let _ = term.until_closed(WS_LIMIT).await;
                return Seen::allow("ran");
            }
            match term.closed_reason() {
                Some(reason) if node_side(&reason) => Seen::allow(format!("granted; node: {reason}")),
                Some(reason) => Seen::deny(format!("closed: {reason}")),
                None => Seen::deny("no output"),
            }
        }
    }
}

/// Watching session `id`: allowed when the watcher gets the session's start message.
pub async fn watch(browser: &Browser, id: &str) -> Seen {
    match browser.websocket(&format!("/api/sessions/{id}/watch"), Some(&browser.origin())).await {
        Err(tungstenite::Error::Http(response)) => Seen::status(response.status().as_u16(), ""),
        Err(err) => Seen::deny(format!("error: {err}")),
        Ok(mut watcher) => {
            let start = json!({ "type": "start", "cols": 80, "rows": 24 });
            if watcher.until_message(&start, WS_LIMIT).await {
                Seen::status(101, "watching")
            } else {
                Seen::deny(format!("upgraded, nothing sent: {:?}", watcher.messages))
            }
        }
    }
}

/// `ctl ARGS` run by `prefix` (e.g. `runuser -u nobody --`) against the lab's admin socket.
pub fn ctl_as(lab: &Lab, prefix: &[&str], args: &[&str]) -> Seen {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(BIN));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(BIN);
    }
    cmd.arg("ctl").arg("--data-dir").arg(&lab.gw.data_dir).args(args);
    let out = bounded(cmd, "");
    if out.status.success() {
        return Seen::allow("answered");
    }
    // In words that do not change from run to run (the error and the path do).
    let stderr = text(&out.stderr).replace(&lab.gw.data_dir.display().to_string(), "DATA_DIR");
    if stderr.contains("Permission denied") {
        Seen::deny("socket out of reach (permission denied)")
    } else if ["Broken pipe", "reset by peer", "no answer"].iter().any(|e| stderr.contains(e)) {
        Seen::deny("the gateway closed the connection")
    } else {
        Seen::deny(stderr.lines().next().unwrap_or_default().chars().take(90).collect::<String>())
    }
}
