//! The SSH relay with the stock clients: shells, exec, bulk data, scp and sftp, confinement.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::lab::Lab;
use crate::support::text;

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    text(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn exec_and_pty_shell_carry_output_status_stdin_and_env() {
    let lab = Lab::start("", "");
    let out = lab.exec(&lab.vendor_key, "gpu-01", "echo $((6*7))");
    assert_eq!(text(&out.stdout), "42\n", "stderr: {}", text(&out.stderr));
    assert_eq!(lab.exec(&lab.vendor_key, "gpu-01", "exit 3").status.code(), Some(3));
    // A command killed by a signal: the client sees what it sees from sshd directly.
    let through = lab.exec(&lab.vendor_key, "gpu-01", "kill -TERM $$");
    let direct = crate::support::ssh_base(&lab.node.client_key, lab.node.port)
        .arg(format!("{}@127.0.0.1", lab.node.user))
        .arg("kill -TERM $$")
        .output()
        .unwrap();
    assert_eq!(through.status.code(), direct.status.code(), "exit signal propagated");
    let ends = lab.gw.audit("session.end");
    assert!(ends.iter().any(|e| e["exit_signal"].as_str().is_some_and(|s| s.contains("TERM"))), "{ends:?}");

    let mut child = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .arg("wc -c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "5", "stdin EOF reaches the node");

    let out = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .env("LC_GWTEST", "xyz")
        .args(["-o", "SendEnv=LC_GWTEST"])
        .arg("echo lc=$LC_GWTEST; env")
        .output()
        .unwrap();
    let env = text(&out.stdout);
    assert!(env.starts_with("lc=xyz\n"), "{env}");
    let lower = env.to_lowercase();
    assert!(
        !lower.contains("portcullis_") && !lower.contains("record"),
        "nothing about recording in the vendor's env: {env}"
    );

    let mut child = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"echo $((6*7))\nexit 3\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stdout).contains("42"), "{}", text(&out.stdout));
    assert_eq!(out.status.code(), Some(3));
    assert!(!text(&out.stderr).to_lowercase().contains("record"), "no trace of recording: {}", text(&out.stderr));
}

#[test]
fn stty_size_follows_a_window_resize() {
    let lab = Lab::start("", "");
    let socket = lab.gw.dir.path().join("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux").arg("-S").arg(&socket).args(args).output().expect("tmux runs (install-deps installs it)")
    };
    let ssh = format!(
        "ssh -F /dev/null -i {} -p {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -tt {}@127.0.0.1",
        lab.vendor_key.display(),
        lab.gw.addr.port(),
        lab.target("gpu-01")
    );
    assert!(tmux(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &ssh]).status.success());
    let screen_shows = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let shown = text(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout);
            if shown.contains(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    tmux(&["send-keys", "-t", "t", "stty size | sed s/^/size=/", "Enter"]);
    assert!(screen_shows("size=24 80"), "{}", text(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout));
    tmux(&["resize-window", "-t", "t", "-x", "100", "-y", "40"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", "t", "clear; stty size | sed s/^/size=/", "Enter"]);
    assert!(screen_shows("size=40 100"), "{}", text(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout));
    tmux(&["kill-server"]);
}

#[test]
fn bulk_data_scp_and_sftp_are_byte_exact() {
    let lab = Lab::start("", "");
    let dir = lab.node.dir.path();
    let source = dir.join("source.bin");
    let status = Command::new("head")
        .args(["-c", "67108864", "/dev/urandom"])
        .stdout(std::fs::File::create(&source).unwrap())
        .status();
    assert!(status.unwrap().success());
    let want = sha256(&source);

    // download through exec
    let down = dir.join("down.bin");
    let out = lab
        .ssh(&lab.ops_key, &lab.target("gpu-01"))
        .arg(format!("cat {}", source.display()))
        .stdout(std::fs::File::create(&down).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256(&down), want, "download is byte-exact");

    // upload through exec
    let up = dir.join("up.bin");
    let out = lab
        .ssh(&lab.ops_key, &lab.target("gpu-01"))
        .arg(format!("cat > {}", up.display()))
        .stdin(std::fs::File::open(&source).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256(&up), want, "upload is byte-exact");

    // scp both ways (OpenSSH 9 speaks sftp underneath)
    let scp = |from: String, to: String| {
        Command::new("scp")
            .args(["-F", "/dev/null", "-i"])
            .arg(&lab.ops_key)
            .args(["-P", &lab.gw.addr.port().to_string(), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg(from)
            .arg(to)
            .output()
            .unwrap()
    };
    let remote = |path: &std::path::Path| format!("{}@127.0.0.1:{}", lab.target("gpu-01"), path.display());
    let scp_up = dir.join("scp-up.bin");
    let out = scp(source.display().to_string(), remote(&scp_up));
    assert!(out.status.success(), "scp up: {}", text(&out.stderr));
    assert_eq!(sha256(&scp_up), want);
    let scp_down = dir.join("scp-down.bin");
    let out = scp(remote(&source), scp_down.display().to_string());
    assert!(out.status.success(), "scp down: {}", text(&out.stderr));
    assert_eq!(sha256(&scp_down), want);

    // sftp both ways, plus rename and remove, every operation audited
    let sftp_up = dir.join("sftp-up.bin");
    let sftp_down = dir.join("sftp-down.bin");
    let renamed = dir.join("sftp-renamed.bin");
    let batch = format!(
        "put {src} {up}\nget {up} {down}\nrename {up} {renamed}\nrm {renamed}\nmkdir {d}\nrmdir {d}\n",
        src = source.display(),
        up = sftp_up.display(),
        down = sftp_down.display(),
        renamed = renamed.display(),
        d = dir.join("newdir").display()
    );
    let mut child = Command::new("sftp")
        .args(["-F", "/dev/null", "-i"])
        .arg(&lab.ops_key)
        .args(["-P", &lab.gw.addr.port().to_string(), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-b",
            "-",
        ])
        .arg(format!("{}@127.0.0.1", lab.target("gpu-01")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sftp: {}", text(&out.stderr));
    assert_eq!(sha256(&sftp_down), want);
    assert!(!renamed.exists() && !sftp_up.exists());
    std::thread::sleep(Duration::from_millis(500));
    let files = lab.gw.audit("file");
    let kinds: Vec<&str> = files.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["file.open", "file.close", "file.rename", "file.remove", "file.mkdir", "file.rmdir"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let upload_close = files
        .iter()
        .find(|e| e["type"] == "file.close" && e["path"].as_str() == Some(sftp_up.to_str().unwrap()))
        .expect("the sftp upload's close is audited with its path");
    assert_eq!(upload_close["bytes_written"], 67_108_864);
}

#[test]
fn vendors_are_confined_and_forwards_are_refused_and_audited() {
    let lab = Lab::start("", "");
    let denied = |target: String| {
        let out = lab.ssh(&lab.vendor_key, &target).arg("true").output().unwrap();
        (out.status.code(), text(&out.stderr).replace(&target, "TARGET"))
    };
    let outside_labels = denied(lab.target("gpu-02"));
    let unknown_node = denied(lab.target("gpu-99"));
    let wrong_login = denied("nobody@gpu-01".to_string());
    assert_eq!(outside_labels.0, Some(255));
    assert!(outside_labels.1.contains("Permission denied"), "{}", outside_labels.1);
    assert_eq!(outside_labels, unknown_node, "a forbidden node looks exactly like a missing one");
    assert_eq!(outside_labels, wrong_login, "a forbidden login looks exactly like a missing node");

    let out = lab.ssh(&lab.vendor_key, &lab.target("gpu-01")).args(["-W", "127.0.0.1:22"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("prohibited") || stderr.contains("forwarding failed"), "{stderr}");
    let out = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .args(["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "-N"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "remote forwarding is refused: {}", text(&out.stderr));
    let out = lab.ssh(&lab.vendor_key, &lab.target("gpu-01")).args(["-s", "netconf"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "unknown subsystems are refused");
    let forwards = lab.gw.audit("forward.denied");
    assert!(forwards.iter().any(|e| e["kind"] == "direct-tcpip" && e["user"] == "vendor"), "{forwards:?}");
    assert!(forwards.iter().any(|e| e["kind"] == "tcpip-forward"), "{forwards:?}");
    let denials = lab.gw.audit("session.denied");
    assert!(denials.iter().any(|e| e["action"] == "subsystem"), "{denials:?}");
    let failed = lab.gw.audit("user.login_failed");
    assert!(failed.len() >= 3, "each refused target is audited: {failed:?}");
}

#[test]
fn certificates_other_key_types_and_default_logins_sign_in() {
    let lab = Lab::start("", "");
    // A user certificate from the gateway's user CA signs in a user with no registered key.
    lab.gw.ctl_ok(&["users", "add", "certuser", "--roles", "vendor-test"]);
    let key = lab.gw.dir.path().join("cert_ed25519");
    crate::support::keygen(&key);
    let ca = lab.gw.data_dir.join("user_ca");
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "test-cert", "-n", "certuser", "-V", "-5m:+5m"])
        .arg(key.with_extension("pub"))
        .status()
        .unwrap();
    assert!(signed.success());
    let out = lab.exec(&key, "gpu-01", "echo cert-ok");
    assert_eq!(text(&out.stdout), "cert-ok\n", "{}", text(&out.stderr));
    let logins = lab.gw.audit("user.login");
    assert!(logins.iter().any(|e| e["user"] == "certuser" && e["method"] == "certificate"), "{logins:?}");

    // A certificate from another CA is refused like a wrong key.
    let rogue_ca = lab.gw.dir.path().join("rogue_ca");
    crate::support::keygen(&rogue_ca);
    let key2 = lab.gw.dir.path().join("rogue_user");
    crate::support::keygen(&key2);
    Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&rogue_ca)
        .args(["-I", "x", "-n", "certuser"])
        .arg(key2.with_extension("pub"))
        .status()
        .unwrap();
    let out = lab.exec(&key2, "gpu-01", "echo no");
    assert_eq!(out.status.code(), Some(255));

    // ECDSA keys work; with no login in the target the role's first login is used.
    lab.gw.ctl_ok(&["users", "add", "ecuser", "--roles", "vendor-test"]);
    let ec = lab.gw.dir.path().join("ec_key");
    let made = Command::new("ssh-keygen").args(["-q", "-t", "ecdsa", "-N", "", "-f"]).arg(&ec).status().unwrap();
    assert!(made.success());
    lab.gw.ctl_ok(&["users", "add-key", "ecuser", "--key-file", ec.with_extension("pub").to_str().unwrap()]);
    let out = lab.ssh(&ec, "gpu-01").arg("id -un").output().unwrap();
    assert_eq!(text(&out.stdout).trim(), lab.node.user, "{}", text(&out.stderr));

    // Locking a user ends their live sessions.
    let mut child = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .arg("echo started; sleep 60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_started(&mut child);
    lab.gw.ctl_ok(&["users", "lock", "vendor"]);
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stderr).contains("session closed by gateway"));
    assert_eq!(lab.exec(&lab.vendor_key, "gpu-01", "true").status.code(), Some(255), "a locked user cannot sign in");
}

#[test]
fn a_session_ends_when_its_user_goes_away() {
    let lab = Lab::start("", "");
    let mut child = lab
        .ssh(&lab.vendor_key, &lab.target("gpu-01"))
        .args(["-tt"])
        .arg("echo started; sleep 120")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_started(&mut child);
    assert!(!lab.gw.ctl_json(&["sessions", "ls", "--active"]).is_empty());
    child.kill().unwrap();
    let _ = child.wait();
    crate::support::eventually("the session to end", Duration::from_secs(10), || {
        lab.gw.ctl_json(&["sessions", "ls", "--active"]).is_empty()
    });
    assert!(lab.gw.audit("session.end").iter().any(|e| e["user"] == "vendor"));
    let recs = lab.gw.ctl_json(&["recordings", "ls"]);
    assert_eq!(recs[0]["complete"], true, "the recording is finished: {recs:?}");
}

/// Reads the child's stdout until its command printed `started`: the login shell's start-up
/// files have run by then (killing a shell inside them can leave their locks behind, e.g.
/// pyenv's rehash lock, which stalls every later login on the machine).
pub fn wait_started(child: &mut std::process::Child) {
    use std::io::Read;
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !text(&seen).contains("started") && seen.len() < 4096 {
        match stdout.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    assert!(text(&seen).contains("started"), "the command did not start: {}", text(&seen));
}
