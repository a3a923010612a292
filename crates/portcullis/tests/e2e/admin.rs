//! The admin socket and `portcullis ctl`: every subcommand round-trips, changes are audited,
//! and a restart keeps keys, users and roles.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::gateway::{BIN, TestGateway};

#[test]
fn admin_socket_is_private_and_every_subcommand_round_trips() {
    let gw = TestGateway::start("", "");
    let mode = std::fs::metadata(gw.data_dir.join("admin.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(&gw.data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let setup = gw.stdout.lock().unwrap().iter().find(|l| l.contains("/setup/")).cloned();
    assert!(
        setup.is_some_and(|l| l.contains(&format!("https://{}/setup/", gw.addr))),
        "first start prints a setup URL"
    );

    // users
    let url = gw.ctl_ok(&["users", "add", "vendor1", "--roles", "restricted-dev", "--ttl", "72h"]);
    assert!(url.trim().starts_with(&format!("https://{}/invite/", gw.addr)), "{url}");
    let users = gw.ctl_json(&["users", "ls"]);
    let v = users.iter().find(|u| u["name"] == "vendor1").expect("vendor1 listed");
    assert_eq!(v["roles"], "restricted-dev");
    assert_ne!(v["expires"], "-");
    assert!(users.iter().any(|u| u["name"] == "admin"), "the setup admin exists");
    let key = gw.dir.path().join("k");
    crate::support::keygen(&key);
    gw.ctl_ok(&["users", "add-key", "vendor1", "--key-file", key.with_extension("pub").to_str().unwrap()]);
    assert_eq!(gw.ctl_json(&["users", "ls"]).iter().find(|u| u["name"] == "vendor1").unwrap()["keys"], 1);
    gw.ctl_ok(&["users", "lock", "vendor1"]);
    assert_eq!(gw.ctl_json(&["users", "ls"]).iter().find(|u| u["name"] == "vendor1").unwrap()["locked"], true);
    gw.ctl_ok(&["users", "unlock", "vendor1"]);
    assert_eq!(gw.ctl_json(&["users", "ls"]).iter().find(|u| u["name"] == "vendor1").unwrap()["locked"], false);

    // roles
    let roles = gw.ctl_json(&["roles", "ls"]);
    let names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "restricted-dev"]);
    let shown = gw.ctl_ok(&["roles", "show", "restricted-dev"]);
    assert!(shown.contains("h800") && shown.contains("vendor"), "{shown}");
    let file = gw.dir.path().join("roles.toml");
    std::fs::write(&file, "[[role]]\nname = \"a100-dev\"\nnodes = { gpu = \"a100\" }\nlogins = [\"dev\"]\nallow = [\"shell\"]\nsource_cidrs = [\"10.0.0.0/8\"]\n").unwrap();
    gw.ctl_ok(&["roles", "apply", file.to_str().unwrap()]);
    let a100 = gw.ctl_json(&["roles", "ls"]).into_iter().find(|r| r["name"] == "a100-dev").expect("applied");
    assert_eq!((a100["logins"].as_str(), a100["record"].as_bool()), (Some("dev"), Some(true)));

    // nodes
    gw.ctl_ok(&["nodes", "add", "gpu-01", "--addr", "10.0.0.11:22", "--labels", "gpu=h800,rack=r1"]);
    let nodes = gw.ctl_json(&["nodes", "ls"]);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["addr"], "10.0.0.11:22");
    assert_eq!(nodes[0]["labels"], serde_json::json!({ "gpu": "h800", "rack": "r1" }));
    assert!(gw.ctl_ok(&["nodes", "ls"]).contains("gpu=h800,rack=r1"), "tables show labels as k=v");
    gw.ctl_ok(&["nodes", "rm", "gpu-01"]);
    assert!(gw.ctl_json(&["nodes", "ls"]).is_empty());

    // ca
    let user_ca = gw.ctl_ok(&["ca", "export", "--kind", "user"]);
    let host_ca = gw.ctl_ok(&["ca", "export", "--kind", "host"]);
    assert!(user_ca.starts_with("ssh-ed25519 ") && host_ca.starts_with("ssh-ed25519 "));
    assert_ne!(user_ca, host_ca);
    let check = Command::new("ssh-keygen").args(["-l", "-f", "/dev/stdin"]).stdin(std::process::Stdio::piped()).spawn();
    let mut check = check.unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(user_ca.as_bytes()).unwrap();
    assert!(check.wait().unwrap().success(), "ssh-keygen reads the exported CA");

    // removal
    gw.ctl_ok(&["users", "rm", "vendor1"]);
    assert!(!gw.ctl_json(&["users", "ls"]).iter().any(|u| u["name"] == "vendor1"));

    // every change is an audit event, and the chain verifies
    let all = gw.ctl_json(&["audit", "ls"]);
    let kinds: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in [
        "user.add",
        "invite.create",
        "user.add_key",
        "user.lock",
        "user.unlock",
        "role.apply",
        "node.add",
        "node.rm",
        "user.rm",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    assert!(gw.ctl_ok(&["audit", "verify"]).contains("intact"));
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let gw = TestGateway::start("", "");
    let cases: &[(&[&str], &str)] = &[
        (&["users", "add", "x", "--roles", "no-such-role"], "no role"),
        (&["users", "add", "Bad Name", "--roles", "admin"], "not a valid name"),
        (&["users", "add", "x", "--roles", "admin", "--ttl", "soon"], "--ttl"),
        (&["users", "add", "admin", "--roles", "admin"], "already exists"),
        (&["users", "rm", "ghost"], "no user"),
        (&["users", "lock", "ghost"], "no user"),
        (&["nodes", "add", "n1", "--addr", "nohost"], "--addr"),
        (&["nodes", "add", "n1", "--addr", "h:22", "--labels", "novalue"], "k=v"),
        (&["nodes", "rm", "ghost"], "no node"),
        (&["roles", "show", "ghost"], "no role"),
    ];
    for (args, want) in cases {
        let out = gw.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    let bad_roles = gw.dir.path().join("bad.toml");
    std::fs::write(&bad_roles, "[[role]]\nname = \"r\"\nlogins = [\"x\"]\nallow = [\"teleport\"]\n").unwrap();
    let out = gw.ctl(&["roles", "apply", bad_roles.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("teleport"), "unknown permission is named");
    let short_rsa = gw.dir.path().join("rsa1024");
    let status =
        Command::new("ssh-keygen").args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"]).arg(&short_rsa).status();
    if status.is_ok_and(|s| s.success()) {
        gw.ctl_ok(&["users", "add", "rsauser", "--roles", "admin"]);
        let out =
            gw.ctl(&["users", "add-key", "rsauser", "--key-file", short_rsa.with_extension("pub").to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("2048"), "weak RSA refused");
    }
    assert_eq!(gw.ctl_json(&["nodes", "ls"]).len(), 0);
    assert_eq!(gw.ctl_json(&["roles", "ls"]).len(), 2);
    // ctl with no gateway behind the socket says so.
    let out = Command::new(BIN)
        .args(["ctl", "--data-dir"])
        .arg(gw.dir.path().join("nowhere"))
        .args(["users", "ls"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the gateway"));
}

#[test]
fn restart_keeps_keys_users_and_roles_and_corruption_is_named() {
    let mut gw = TestGateway::start("", "");
    gw.user_with_key("dana", "restricted-dev");
    let before = (
        gw.ctl_ok(&["ca", "export", "--kind", "user"]),
        gw.ctl_ok(&["ca", "export", "--kind", "host"]),
        std::fs::read_to_string(gw.data_dir.join("ssh_host_ed25519_key.pub")).unwrap(),
        std::fs::read_to_string(gw.data_dir.join("tls_cert.pem")).unwrap(),
    );
    gw.restart();
    assert!(!gw.stdout.lock().unwrap().iter().any(|l| l.contains("/setup/")), "no second setup URL");
    let after = (
        gw.ctl_ok(&["ca", "export", "--kind", "user"]),
        gw.ctl_ok(&["ca", "export", "--kind", "host"]),
        std::fs::read_to_string(gw.data_dir.join("ssh_host_ed25519_key.pub")).unwrap(),
        std::fs::read_to_string(gw.data_dir.join("tls_cert.pem")).unwrap(),
    );
    assert_eq!(before, after);
    let dana = gw.ctl_json(&["users", "ls"]).into_iter().find(|u| u["name"] == "dana").expect("dana kept");
    assert_eq!(dana["keys"], 1);
    assert_eq!(gw.ctl_json(&["roles", "ls"]).len(), 2);
    assert!(gw.ctl_ok(&["audit", "verify"]).contains("intact"), "the chain continues across restarts");

    // An edited audit line is caught, naming its seq.
    gw.stop();
    let day = std::fs::read_dir(gw.data_dir.join("audit")).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(&day).unwrap();
    let edited = text.replacen("\"dana\"", "\"mallory\"", 1);
    assert_ne!(text, edited);
    std::fs::write(&day, &edited).unwrap();
    gw.restart();
    let out = gw.ctl(&["audit", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("broken at seq"), "{err}");
    std::fs::write(&day, &text).unwrap();

    // A corrupt database or key refuses to start, naming the file; nothing is re-initialised.
    gw.stop();
    let key = gw.data_dir.join("user_ca");
    let good_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, b"not a key").unwrap();
    let out = Command::new(BIN).args(["start", "--data-dir"]).arg(&gw.data_dir).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("user_ca"));
    std::fs::write(&key, good_key).unwrap();
    let cert = gw.data_dir.join("tls_cert.pem");
    let good_cert = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n").unwrap();
    let out = Command::new(BIN).args(["start", "--data-dir"]).arg(&gw.data_dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tls_cert.pem"), "{err}");
    std::fs::write(&cert, good_cert).unwrap();
    for f in ["portcullis.db-wal", "portcullis.db-shm"] {
        let _ = std::fs::remove_file(gw.data_dir.join(f));
    }
    std::fs::write(gw.data_dir.join("portcullis.db"), vec![0x42u8; 8192]).unwrap();
    let out = Command::new(BIN).args(["start", "--data-dir"]).arg(&gw.data_dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("portcullis.db"), "{err}");
    let kept = std::fs::read_to_string(gw.data_dir.join("user_ca.pub")).unwrap();
    assert_eq!(kept.split_whitespace().nth(1), before.0.split_whitespace().nth(1), "the user CA was not replaced");
}
