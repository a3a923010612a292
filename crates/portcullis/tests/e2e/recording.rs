//! Recording, the privileged path, crashes, full disks and live operations.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_proto::proxy_header::encode_v1;

use crate::support::forward::ProxyForwarder;
use crate::support::lab::Lab;
use crate::support::ssh_base;
use crate::support::{asciinema_cat, eventually, text};

/// Starts `command` on gpu-01 in the background, stdout piped.
fn background(lab: &Lab, key: &std::path::Path, command: &str) -> Child {
    lab.ssh(key, &lab.target("gpu-01")).arg(command).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn vendor_sessions_are_recorded_and_privileged_ones_are_not() {
    let lab = Lab::start(
        r#"proxy_protocol = "optional"
trusted_proxies = ["127.0.0.1/32"]"#,
        "",
    );
    let out = lab.exec(&lab.vendor_key, "gpu-01", "echo marker-$((40+2)); printf 'caf\\303\\251\\n'");
    assert_eq!(text(&out.stdout), "marker-42\ncafé\n");
    let out = lab.exec(&lab.ops_key, "gpu-01", "echo private-$((40+2))");
    assert_eq!(text(&out.stdout), "private-42\n");

    let recs = lab.gw.ctl_json(&["recordings", "ls"]);
    assert_eq!(recs.len(), 1, "only the vendor's session is recorded: {recs:?}");
    assert_eq!((recs[0]["user"].as_str(), recs[0]["complete"].as_bool()), (Some("vendor"), Some(true)));
    assert!(recs[0]["command"].as_str().unwrap().contains("marker"));
    let id = recs[0]["id"].as_str().unwrap();
    let file = lab.gw.dir.path().join("export.cast");
    lab.gw.ctl_ok(&["recordings", "export", id, "-o", file.to_str().unwrap()]);
    let cast = std::fs::read_to_string(&file).unwrap();
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let played = asciinema_cat(&file);
    assert!(played.contains("marker-42") && played.contains("café"), "{played:?}");
    let found = lab.gw.ctl_json(&["recordings", "ls", "--grep", "marker-42"]);
    assert_eq!(found.len(), 1);
    assert!(lab.gw.ctl_json(&["recordings", "ls", "--grep", "private-42"]).is_empty());
    let played = lab.gw.ctl_ok(&["recordings", "play", id, "--speed", "10"]);
    assert!(played.contains("marker-42"));

    let starts = lab.gw.audit("session.start");
    assert!(starts.iter().any(|e| e["user"] == "ops"), "the privileged path is still audited: {starts:?}");
    eventually("the ops session's end audited", Duration::from_secs(10), || {
        lab.gw.audit("session.end").iter().any(|e| e["user"] == "ops" && e["exit_status"] == 0)
    });
    assert!(lab.gw.audit("exec").iter().any(|e| e["command"].as_str().is_some_and(|c| c.contains("private"))));

    // The same privileged role from outside its source_cidrs is refused.
    let header = encode_v1("203.0.113.7:5555".parse().unwrap(), lab.gw.addr);
    let fwd = ProxyForwarder::start(lab.gw.addr, header, 1);
    let out = ssh_base(&lab.ops_key, fwd.addr.port())
        .arg(format!("{}@127.0.0.1", lab.target("gpu-01")))
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied"));

    // Binary output is stored compactly: no per-byte escapes.
    let out = lab.exec(&lab.vendor_key, "gpu-01", "head -c 1048576 /dev/urandom");
    assert_eq!(out.stdout.len(), 1_048_576);
    let recs = lab.gw.ctl_json(&["recordings", "ls"]);
    let newest = recs.iter().find(|r| r["command"].as_str().is_some_and(|c| c.contains("urandom"))).unwrap();
    let exported = lab.gw.dir.path().join("random.cast");
    lab.gw.ctl_ok(&["recordings", "export", newest["id"].as_str().unwrap(), "-o", exported.to_str().unwrap()]);
    let size = std::fs::metadata(&exported).unwrap().len();
    println!("recording of 1 MiB of random bytes: {size} bytes ({:.2} per byte)", size as f64 / 1_048_576.0);
    assert!(size < 4 * 1_048_576, "{size}");
}

#[test]
fn a_crash_leaves_a_playable_recording_marked_incomplete() {
    let mut lab = Lab::start("", "");
    let mut child =
        background(&lab, &lab.vendor_key, "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done");
    let mut first = [0u8; 7];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"tick-1\n");
    std::thread::sleep(Duration::from_millis(2500));
    lab.gw.kill9();
    let _ = child.kill();
    let _ = child.wait();
    let casts: Vec<_> = walk(&lab.gw.data_dir.join("recordings"));
    assert_eq!(casts.len(), 1, "{casts:?}");
    let played = asciinema_cat(&casts[0]);
    assert!(played.contains("tick-1") && played.contains("tick-10"), "readable up to the last flush: {played:?}");
    lab.gw.start_again();
    let recs = lab.gw.ctl_json(&["recordings", "ls"]);
    assert_eq!(recs[0]["complete"], false, "{recs:?}");
    assert_ne!(recs[0]["end"], "-");
    assert!(!lab.gw.audit("gateway.recovered").is_empty());
    assert!(lab.gw.ctl_ok(&["audit", "verify"]).contains("intact"));
    assert!(lab.gw.ctl_json(&["sessions", "ls", "--active"]).is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else if path.extension().is_some_and(|x| x == "cast") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_full_recording_disk_ends_recorded_sessions_only() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(mount.path()).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the full-disk case is not exercised");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let lab = Lab::start("", &format!("[recordings]\nurl = \"file://{}\"\n", mount.path().display()));
    let mut ops =
        background(&lab, &lab.ops_key, "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo ops-$i; sleep 0.1; done");
    let started = Instant::now();
    let out = lab.exec(&lab.vendor_key, "gpu-01", "head -c 4000000 /dev/zero | tr '\\0' a; sleep 30; echo survived");
    assert!(started.elapsed() < Duration::from_secs(25), "the recorded session was ended, not left running");
    assert!(!text(&out.stdout).contains("survived"));
    assert!(text(&out.stderr).contains("session closed by gateway"), "{}", text(&out.stderr));
    assert!(ops.try_wait().unwrap().is_none(), "the unrecorded session keeps running");
    let mut buf = [0u8; 6];
    ops.stdout.as_mut().unwrap().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ops-1\n");
    let _ = ops.kill();
    // The client may see its session end a moment before the gateway writes why.
    eventually("the vendor session's end audited", Duration::from_secs(10), || {
        lab.gw.audit("session.end").iter().any(|e| e["user"] == "vendor" && e["ended_by"] == "recording failed")
    });
}

#[test]
fn sessions_can_be_listed_watched_silently_and_killed() {
    let lab = Lab::start("", "");
    let mut vendor =
        background(&lab, &lab.vendor_key, "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.1; done");
    let mut first = [0u8; 7];
    vendor.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    let mut id = String::new();
    eventually("the session to be listed", Duration::from_secs(10), || {
        let live = lab.gw.ctl_json(&["sessions", "ls", "--active"]);
        if let Some(s) = live.iter().find(|s| s["user"] == "vendor") {
            id = s["id"].as_str().unwrap().to_string();
            true
        } else {
            false
        }
    });
    let mut watch = Command::new(crate::support::gateway::BIN)
        .args(["ctl", "--data-dir"])
        .arg(&lab.gw.data_dir)
        .args(["sessions", "watch", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && text(&seen).matches("tick-").count() < 5 {
        let n = watch.stdout.as_mut().unwrap().read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(text(&seen).matches("tick-").count() >= 5, "the watcher sees live output: {}", text(&seen));
    lab.gw.ctl_ok(&["sessions", "kill", &id]);
    let out = vendor.wait_with_output().unwrap();
    assert!(text(&out.stderr).contains("session closed by gateway"), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("observ") && !text(&out.stderr).contains("observ"),
        "the watched user is not told"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(lab.gw.audit("session.observe").iter().any(|e| e["session_id"] == id.as_str()));
    assert!(lab.gw.audit("session.kill").iter().any(|e| e["session_id"] == id.as_str()));
    eventually("the session to end", Duration::from_secs(10), || {
        lab.gw.ctl_json(&["sessions", "ls", "--active"]).is_empty()
    });
}

#[test]
fn a_changed_host_key_is_refused_until_repinned() {
    let mut lab = Lab::start("", "");
    assert_eq!(text(&lab.exec(&lab.ops_key, "gpu-01", "echo first").stdout), "first\n");
    let nodes = lab.gw.ctl_json(&["nodes", "ls"]);
    let pinned = nodes.iter().find(|n| n["name"] == "gpu-01").unwrap()["host_key"].as_str().unwrap().to_string();
    assert!(pinned.starts_with("SHA256:"), "pinned on first contact: {nodes:?}");
    lab.node.restart_with_new_host_key();
    let out = lab.exec(&lab.ops_key, "gpu-01", "echo second");
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("host key has changed"), "{}", text(&out.stderr));
    let mismatch = lab.gw.audit("node.hostkey_mismatch");
    assert_eq!(mismatch.len(), 1);
    assert_eq!(mismatch[0]["pinned"].as_str(), Some(pinned.as_str()));
    lab.gw.ctl_ok(&["nodes", "repin", "gpu-01"]);
    assert_eq!(text(&lab.exec(&lab.ops_key, "gpu-01", "echo third").stdout), "third\n");
    let node_key_sshd = lab.node.host_public.split_whitespace().nth(1).unwrap().to_string();
    let nodes = lab.gw.ctl_json(&["nodes", "ls"]);
    let repinned = nodes.iter().find(|n| n["name"] == "gpu-01").unwrap()["host_key"].as_str().unwrap().to_string();
    assert_ne!(repinned, pinned);
    assert!(!node_key_sshd.is_empty());
    // The node's sshd being killed mid-session closes the user's session cleanly, with an audit event.
    let mut child = background(&lab, &lab.ops_key, "echo started; sleep 60");
    let mut first = [0u8; 8];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"started\n");
    lab.node.kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.try_wait().unwrap().is_some(), "the user's session closed when the node went away");
    eventually("session.end", Duration::from_secs(10), || {
        lab.gw.audit("session.end").iter().any(|e| e["user"] == "ops" && e["ended_by"] == "node connection lost")
    });
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stderr).contains("connection to the node was lost"), "{}", text(&out.stderr));
}

#[test]
fn sessions_are_refused_while_the_audit_log_cannot_be_written() {
    let lab = Lab::start("", "");
    let audit_dir = lab.gw.data_dir.join("audit");
    assert!(lab.exec(&lab.vendor_key, "gpu-01", "true").status.success());
    eventually("the first session's end audited", Duration::from_secs(10), || !lab.gw.audit("session.end").is_empty());
    // Put the audit log on a tmpfs of its own, the day files copied across.
    let saved = tempfile::tempdir().unwrap();
    let files: Vec<_> = std::fs::read_dir(&audit_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!files.is_empty(), "the day file");
    for file in &files {
        std::fs::copy(file, saved.path().join(file.file_name().unwrap())).unwrap();
    }
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"]).arg(&audit_dir).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the unwritable audit log is not exercised");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(audit_dir.clone());
    for file in &files {
        std::fs::copy(saved.path().join(file.file_name().unwrap()), file).unwrap();
    }
    // Read-only: every append fails, as on a full or failed disk (a full tmpfs still takes
    // lines into the day file's last page, so filling it would not be enough).
    let remount = |mode: &str| {
        let done = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&audit_dir).status();
        assert!(done.is_ok_and(|s| s.success()), "remount {mode}");
    };
    remount("ro");

    // Signing in is audited too, so the refusal comes before any session: the connection ends.
    let out = lab.exec(&lab.vendor_key, "gpu-01", "echo ran");
    assert!(!text(&out.stdout).contains("ran"), "a session ran unaudited");
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
    let ops = lab.exec(&lab.ops_key, "gpu-01", "echo ran");
    assert!(!text(&ops.stdout).contains("ran"), "an unrecorded session ran unaudited too");
    assert!(lab.gw.ctl_json(&["sessions", "ls", "--active"]).is_empty(), "no refused session left open");

    // Writable again: sessions work, and the chain has no half-written line.
    remount("rw");
    let out = lab.exec(&lab.vendor_key, "gpu-01", "echo ran");
    assert_eq!(text(&out.stdout), "ran\n", "{}", text(&out.stderr));
    let verified = lab.gw.ctl_ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}
