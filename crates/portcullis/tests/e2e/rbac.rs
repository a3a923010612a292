//! The RBAC matrix (issue #8): users of the built-in roles and of test roles try every
//! action over SSH (stock `ssh`, `sftp`, `scp`) and over the web API, and every cell must
//! see its expected answer. All cells run; the test then prints the matrix and fails
//! listing every mismatch. `PORTCULLIS_WRITE_MATRIX=docs/security.md` writes the table
//! between its markers there (a relative path is from the workspace root).

mod cells;
mod matrix;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_proto::totp;
use serde_json::{Value, json};

use self::cells::{
    Subject, WS_LIMIT, answered, bounded, ctl_as, file_client, forward_cell, forwards_denied, judged, local_forward,
    terminal, unix_now, watch, with_agent,
};
use self::matrix::{Expect, Matrix, Seen};
use crate::admin_web::admin;
use crate::support::agents::Spawned;
use crate::support::lab::Lab;
use crate::support::text;
use crate::web::client::Browser;
use crate::web::{PASSWORD, add_user};

/// A `ctl` that reached the admin socket and was sent away by its peer-credential check.
const CLOSED: &str = "!the gateway closed the connection";
/// A `ctl` that could not reach the socket at all (mode 0600 in a 0700 data dir).
const OUT_OF_REACH: &str = "!socket out of reach (permission denied)";

/// The matrix's columns: the role each user holds (the last, no account at all).
const COLUMNS: [&str; 8] = [
    "admin",
    "restricted-dev",
    "vendor-test",
    "no-files",
    "observer",
    "vendor-test + far-away",
    "far-away",
    "anonymous",
];

/// Roles beside the Lab's `vendor-test` (recorded, `gpu=h800`, one login): one without
/// `file_transfer`, an observer with no node at all, and one granting everything but only
/// from 10.0.0.0/8, which must count for nothing from 127.0.0.1.
fn test_roles(login: &str) -> String {
    format!(
        r#"[[role]]
name = "no-files"
nodes = {{ gpu = "h800" }}
logins = ["{login}"]
allow = ["shell", "exec"]
source_cidrs = ["127.0.0.0/8"]

[[role]]
name = "observer"
allow = ["sessions.observe", "recordings.read"]
source_cidrs = ["127.0.0.0/8"]

[[role]]
name = "far-away"
nodes = {{ "*" = "*" }}
logins = ["{login}", "nobody"]
allow = ["shell", "exec", "file_transfer", "port_forward", "agent_forward", "x11", "recordings.read", "audit.read",
         "sessions.observe", "sessions.kill", "users.manage", "nodes.manage", "roles.manage"]
record = false
source_cidrs = ["10.0.0.0/8"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_its_grants_over_ssh_and_the_web() {
    let started = Instant::now();
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let node_login = lab.node.user.clone();
    let roles_file = gw.dir.path().join("rbac-roles.toml");
    std::fs::write(&roles_file, test_roles(&node_login)).unwrap();
    gw.ctl_ok(&["roles", "apply", roles_file.to_str().unwrap()]);
    // An invite that lives 2 s, redeemed at the end (at least 3 s later).
    let brief = gw.ctl_ok(&["users", "add", "brief", "--roles", "vendor-test", "--ttl", "2s"]);
    let brief_token = brief.trim().rsplit('/').next().unwrap().to_owned();
    let brief_made = Instant::now();

    let subjects = [
        Subject::new(&lab, COLUMNS[0], "admin", "root", Some(admin(&lab))),
        Subject::new(&lab, COLUMNS[1], "rdev", "vendor", Some(add_user(gw, "rdev", "restricted-dev", None))),
        Subject::new(&lab, COLUMNS[2], "vend", &node_login, Some(add_user(gw, "vend", "vendor-test", None))),
        Subject::new(&lab, COLUMNS[3], "nofiles", &node_login, Some(add_user(gw, "nofiles", "no-files", None))),
        Subject::new(&lab, COLUMNS[4], "watcher", &node_login, Some(add_user(gw, "watcher", "observer", None))),
        Subject::new(&lab, COLUMNS[5], "mixed", &node_login, Some(add_user(gw, "mixed", "vendor-test,far-away", None))),
        Subject::new(&lab, COLUMNS[6], "remote", &node_login, Some(add_user(gw, "remote", "far-away", None))),
        Subject::new(&lab, COLUMNS[7], "nobody-at-all", &node_login, None),
    ];
    let mut m = Matrix::default();
    let port = gw.addr.port();
    let probe = lab.node.dir.path().join("probe.txt");
    std::fs::write(&probe, "probe\n").unwrap();
    let probe = probe.to_str().unwrap().to_owned();
    let agent_sock = gw.dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent");
    agent.args(["-D", "-a"]).arg(&agent_sock);
    let _agent = Spawned::start(agent, &gw.dir.path().join("ssh-agent.log"));
    crate::support::eventually("ssh-agent's socket", Duration::from_secs(10), || agent_sock.exists());
    let ssh_setup = started.elapsed();

    // SSH, one row at a time; each row's expectations in COLUMNS order.
    type Cmd<'a> = Box<dyn Fn(&Subject) -> Seen + 'a>;
    let target = |s: &Subject, node: &str| format!("{}@{node}", s.login);
    let ssh_rows: Vec<(&str, [&'static str; 8], Cmd)> = vec![
        (
            "ssh: shell (-tt) on gpu-01",
            ["A", "A", "A", "A", "D", "A", "D", "D"],
            Box::new(|s| {
                let mut cmd = lab.ssh(&s.key, &target(s, "gpu-01"));
                cmd.arg("-tt");
                judged(&bounded(cmd, "echo shell-$((6*7))\nexit\n"), "shell-42")
            }),
        ),
        (
            "ssh: exec on gpu-01",
            ["A", "A", "A", "A", "D", "A", "D", "D"],
            Box::new(|s| {
                let mut cmd = lab.ssh(&s.key, &target(s, "gpu-01"));
                cmd.arg("echo exec-$((6*7))");
                judged(&bounded(cmd, ""), "exec-42")
            }),
        ),
        (
            "ssh: exec on gpu-02 (outside the role's labels)",
            ["A", "D", "D", "D", "D", "D", "D", "D"],
            Box::new(|s| {
                let mut cmd = lab.ssh(&s.key, &target(s, "gpu-02"));
                cmd.arg("echo exec-$((6*7))");
                judged(&bounded(cmd, ""), "exec-42")
            }),
        ),
        (
            "ssh: exec as login `nobody` (not the role's)",
            ["D"; 8],
            Box::new(|s| {
                let mut cmd = lab.ssh(&s.key, "nobody@gpu-01");
                cmd.arg("echo exec-$((6*7))");
                judged(&bounded(cmd, ""), "exec-42")
            }),
        ),
        ("ssh -L (port forward)", ["D"; 8], Box::new(|s| local_forward(&lab, s))),
        (
            "ssh -A (agent forward; SSH_AUTH_SOCK on the node)",
            ["D"; 8],
            Box::new(|s| {
                let mut cmd = with_agent(lab.ssh(&s.key, &target(s, "gpu-01")), &agent_sock);
                cmd.arg("echo \"SSH_AUTH_SOCK=[${SSH_AUTH_SOCK:-}]\"");
                forward_cell(&lab, s, "agent", "SSH_AUTH_SOCK", cmd)
            }),
        ),
        (
            "ssh -X (X11; DISPLAY on the node)",
            ["D"; 8],
            Box::new(|s| {
                let mut cmd = lab.ssh(&s.key, &target(s, "gpu-01"));
                cmd.env("DISPLAY", ":99").args(["-Y", "-o", "XAuthLocation=/nonexistent"]);
                cmd.arg("echo \"DISPLAY=[${DISPLAY:-}]\"");
                forward_cell(&lab, s, "x11", "DISPLAY", cmd)
            }),
        ),
        (
            "sftp",
            ["A", "A", "A", "D", "D", "A", "D", "D"],
            Box::new(|s| {
                let mut cmd = file_client("sftp", &s.key, port);
                cmd.args(["-b", "-"]).arg(format!("{}@127.0.0.1", target(s, "gpu-01")));
                judged(&bounded(cmd, "pwd\n"), "Remote working directory")
            }),
        ),
        (
            "scp (download)",
            ["A", "A", "A", "D", "D", "A", "D", "D"],
            Box::new(|s| {
                let to = lab.gw.dir.path().join(format!("scp-{}", s.user));
                let mut cmd = file_client("scp", &s.key, port);
                cmd.arg(format!("{}@127.0.0.1:{probe}", target(s, "gpu-01"))).arg(&to);
                let out = bounded(cmd, "");
                let got = std::fs::read_to_string(&to).unwrap_or_default();
                if out.status.success() && got == "probe\n" { Seen::allow("ran") } else { judged(&out, "\u{0}") }
            }),
        ),
    ];
    for (action, expects, run) in &ssh_rows {
        for (s, expect) in subjects.iter().zip(expects) {
            m.record(s.column, action, Expect(expect), run(s));
        }
    }
    // Recording: a role that records is never escaped by holding one that does not.
    for (s, expect) in subjects.iter().zip(["D", "D", "A", "A", "D", "A", "D", "D"]) {
        let n = gw.ctl_json(&["recordings", "ls", "--user", &s.user]).len();
        let seen = if n > 0 { Seen::allow(format!("{n} recorded")) } else { Seen::deny("none recorded") };
        m.record(s.column, "ssh sessions above recorded", Expect(expect), seen);
    }
    let ssh_done = started.elapsed();

    // The web. Recordings of vendor-test's sessions exist by now.
    let recordings = gw.ctl_json(&["recordings", "ls", "--user", "vend"]);
    let rec = recordings.first().and_then(|r| r["id"].as_str()).expect("vend's sessions are recorded").to_owned();
    let upload = gw.dir.path().join("upload.txt");
    std::fs::write(&upload, "uploaded\n").unwrap();
    type Get<'a> = (&'a str, [&'static str; 8], String);
    for (s, expect) in subjects.iter().zip(["200", "200", "200", "200", "200", "200", "401", "401"]) {
        let Some((secret, step)) = &s.totp else {
            let answer = Browser::new(gw)
                .post("/api/login", Some(json!({ "user": s.user, "password": PASSWORD, "totp_code": "123456" })));
            m.record(s.column, "web: sign in (password + TOTP)", Expect(expect), answered(answer.status, &answer.body));
            continue;
        };
        let code = totp::code(secret, step + 1);
        let body = json!({ "user": s.user, "password": PASSWORD, "totp_code": code });
        let answer = Browser::new(gw).post("/api/login", Some(body));
        m.record(s.column, "web: sign in (password + TOTP)", Expect(expect), answered(answer.status, &answer.body));
    }
    let nodes = ["=gpu-01 gpu-02", "=gpu-01", "=gpu-01", "=gpu-01", "=", "=gpu-01", "=", "401"];
    for (s, expect) in subjects.iter().zip(nodes) {
        let answer = s.browser.get("/api/nodes");
        let seen = if answer.status == 200 {
            let names: Vec<String> = answer.json()["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_owned())
                .collect();
            Seen { allowed: !names.is_empty(), status: Some(200), detail: names.join(" ") }
        } else {
            Seen::status(answer.status, "")
        };
        m.record(s.column, "web: GET /api/nodes (nodes listed)", Expect(expect), seen);
    }
    // The session far-away's user has is the one its invite's redemption gave (signing in
    // is refused from where no role applies); it holds no permission from here.
    let everything = "=shell exec file_transfer port_forward recordings.read audit.read sessions.observe sessions.kill \
                      users.manage nodes.manage roles.manage";
    let vendor = "=shell exec file_transfer";
    let me = [everything, vendor, vendor, "=shell exec", "=recordings.read sessions.observe", vendor, "=", "401"];
    for (s, expect) in subjects.iter().zip(me) {
        let answer = s.browser.get("/api/me");
        let seen = if answer.status == 200 {
            let me = answer.json();
            let perms: Vec<&str> = me["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            Seen { allowed: !perms.is_empty(), status: Some(200), detail: perms.join(" ") }
        } else {
            Seen::status(answer.status, "")
        };
        m.record(s.column, "web: GET /api/me (permissions)", Expect(expect), seen);
    }
    for (node, expects) in
        [("gpu-01", ["A", "A", "A", "A", "D", "A", "D", "401"]), ("gpu-02", ["A", "D", "D", "D", "D", "D", "D", "401"])]
    {
        for (s, expect) in subjects.iter().zip(expects) {
            let seen = terminal(&s.browser, node, &s.login).await;
            m.record(s.column, &format!("web: terminal on {node}"), Expect(expect), seen);
        }
    }
    for (s, expect) in subjects.iter().zip(["200", "A", "200", "403", "403", "200", "403", "401"]) {
        let to = gw.dir.path().join(format!("download-{}", s.user));
        let answer = s.browser.download(&format!("/api/files?node=gpu-01&login={}&path={probe}", s.login), &to);
        let body = std::fs::read_to_string(&to).unwrap_or_default();
        let seen = if answer.status == 200 && body != "probe\n" {
            Seen::deny(format!("200 but the file differs: {body:?}"))
        } else {
            answered(answer.status, &body)
        };
        m.record(s.column, "web: GET /api/files (download)", Expect(expect), seen);
        let path = lab.node.dir.path().join(format!("up-{}", s.user));
        let query = format!("/api/files?node=gpu-01&login={}&path={}", s.login, path.display());
        let answer = s.browser.upload(&query, &upload);
        m.record(s.column, "web: POST /api/files (upload)", Expect(expect), answered(answer.status, &answer.body));
    }
    let reads = ["200", "404", "404", "404", "200", "404", "404", "404"];
    let admin_only = ["200", "404", "404", "404", "404", "404", "404", "404"];
    let gets: Vec<Get> = vec![
        ("web: recordings list", reads, "/api/recordings".into()),
        ("web: recordings search", reads, "/api/recordings/search?q=exec".into()),
        ("web: recording read", reads, format!("/api/recordings/{rec}")),
        ("web: recording play (frames)", reads, format!("/api/recordings/{rec}/frames?from=0")),
        ("web: recording export (.cast)", reads, format!("/api/recordings/{rec}/cast")),
        ("web: audit read", admin_only, "/api/audit".into()),
        ("web: audit verify", admin_only, "/api/audit/verify".into()),
        ("web: sessions list", reads, "/api/sessions".into()),
        ("web: users list", admin_only, "/api/users".into()),
        ("web: tokens list", admin_only, "/api/tokens".into()),
        ("web: roles list", admin_only, "/api/roles".into()),
    ];
    for (action, expects, path) in &gets {
        for (s, expect) in subjects.iter().zip(expects) {
            let answer = s.browser.get(path);
            m.record(s.column, action, Expect(expect), answered(answer.status, &answer.body));
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        // Re-pin takes no body, and is sent none, as the UI does (a body the handler never
        // reads can make curl fail on HTTP/2).
        let changes: [(&str, &str, &str, Option<Value>); 5] = [
            (
                "web: users invite",
                "POST",
                "/api/users",
                Some(json!({ "name": format!("probe-{i}"), "roles": ["restricted-dev"], "ttl": "1h" })),
            ),
            ("web: node labels", "PUT", "/api/nodes/gpu-02/labels", Some(json!({ "labels": { "gpu": "a100" } }))),
            ("web: node re-pin", "POST", "/api/nodes/gpu-02/repin", None),
            ("web: token create", "POST", "/api/tokens", Some(json!({ "ttl": "10m", "labels": {} }))),
            (
                "web: role apply",
                "POST",
                "/api/roles",
                Some(json!({ "toml": format!("[[role]]\nname = \"probe-{i}\"\n") })),
            ),
        ];
        for (action, method, path, body) in changes {
            let answer = s.browser.request(method, path, body, true);
            m.record(s.column, action, Expect(admin_only[i]), answered(answer.status, &answer.body));
        }
    }

    // A live session of vendor-test's, watched and then killed (by the admin last).
    let mut live = lab
        .ssh(&subjects[2].key, &format!("{node_login}@gpu-01"))
        .arg("echo started; sleep 120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::relay::wait_started(&mut live);
    let id = gw
        .ctl_json(&["sessions", "ls", "--active"])
        .iter()
        .find(|r| r["user"] == "vend")
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .expect("the live session is listed");
    for (s, expect) in subjects.iter().zip(["101", "404", "404", "404", "101", "404", "404", "404"]) {
        m.record(s.column, "web: watch a live session (WebSocket)", Expect(expect), watch(&s.browser, &id).await);
    }
    for (s, expect) in subjects.iter().zip(admin_only).rev() {
        let answer = s.browser.post(&format!("/api/sessions/{id}/kill"), None);
        let mut seen = answered(answer.status, &answer.body);
        if seen.allowed {
            let deadline = Instant::now() + WS_LIMIT;
            while matches!(live.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = live.kill();
            let mut stderr = String::new();
            let _ = live.stderr.take().unwrap().read_to_string(&mut stderr);
            seen.detail = if stderr.contains("session closed by gateway") {
                "killed".into()
            } else {
                format!("not ended: {stderr}")
            };
            seen.allowed = stderr.contains("session closed by gateway");
        }
        m.record(s.column, "web: kill a live session", Expect(expect), seen);
    }
    let _ = live.kill();
    let _ = live.wait();
    let web_done = started.elapsed();

    // Account states: a locked user, an expired invite.
    let lockme =
        Subject::new(&lab, "locked user", "lockme", &node_login, Some(add_user(gw, "lockme", "vendor-test", None)));
    let before = lab.exec(&lockme.key, "gpu-01", "echo pre-$((6*7))");
    assert_eq!(text(&before.stdout), "pre-42\n", "lockme works before the lock: {}", text(&before.stderr));
    assert_eq!(lockme.browser.get("/api/me").status, 200);
    gw.ctl_ok(&["users", "lock", "lockme"]);
    let out = bounded(
        {
            let mut c = lab.ssh(&lockme.key, &format!("{node_login}@gpu-01"));
            c.arg("echo exec-$((6*7))");
            c
        },
        "",
    );
    m.record("locked user", "ssh: exec on gpu-01", Expect("D"), judged(&out, "exec-42"));
    let (secret, step) = lockme.totp.clone().unwrap();
    let body = json!({ "user": "lockme", "password": PASSWORD, "totp_code": totp::code(&secret, step + 1) });
    let answer = Browser::new(gw).post("/api/login", Some(body));
    m.record(
        "locked user",
        "web: sign in (right password and code)",
        Expect("401"),
        answered(answer.status, &answer.body),
    );
    let answer = lockme.browser.get("/api/me");
    m.record(
        "locked user",
        "web: GET /api/me with the session from before",
        Expect("401"),
        answered(answer.status, &answer.body),
    );
    let seen = terminal(&lockme.browser, "gpu-01", &node_login).await;
    m.record("locked user", "web: terminal with the session from before", Expect("401"), seen);
    // A fresh enrollment link for the locked account (reset-totp) cannot be used while locked.
    let reset = gw.ctl_ok(&["users", "reset-totp", "lockme"]);
    let reset_token = reset.trim().rsplit('/').next().unwrap().to_owned();
    let enrolled = Browser::new(gw).post(&format!("/api/invite/{reset_token}/enroll"), None);
    let seen = answered(enrolled.status, &enrolled.body);
    m.record("locked user", "web: enroll with a reset-totp link", Expect("404"), seen);
    let secret = (enrolled.status == 200).then(|| enrolled.json()["secret_base32"].as_str().map(str::to_owned));
    let secret = secret.flatten().and_then(|b32| totp::base32_decode(&b32).ok());
    let code = secret.map_or_else(|| "000000".to_owned(), |s| totp::code(&s, totp::step_at(unix_now())));
    let body = json!({ "password": PASSWORD, "totp_code": code });
    let redeemed = Browser::new(gw).post(&format!("/api/invite/{reset_token}"), Some(body));
    let seen = answered(redeemed.status, &redeemed.body);
    m.record("locked user", "web: redeem a reset-totp link (sets password and TOTP)", Expect("404"), seen);
    gw.ctl_ok(&["users", "unlock", "lockme"]);
    let shown = Browser::new(gw).get(&format!("/api/invite/{reset_token}"));
    let seen = answered(shown.status, &shown.body);
    m.record("locked user, unlocked again", "web: GET /api/invite/{token} of that link", Expect("200"), seen);

    // users.manage hands out only what its holder holds: it cannot make an admin.
    let file = gw.dir.path().join("rbac-user-admin.toml");
    std::fs::write(
        &file,
        "[[role]]\nname = \"user-admin\"\nallow = [\"users.manage\"]\nsource_cidrs = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    gw.ctl_ok(&["roles", "apply", file.to_str().unwrap()]);
    let manager = add_user(gw, "manager", "user-admin", None);
    let body = json!({ "name": "made-admin", "roles": ["admin"], "ttl": "1h" });
    let made = manager.browser.post("/api/users", Some(body));
    let seen = answered(made.status, &made.body);
    m.record("users.manage only", "web: invite a user with role admin", Expect("403"), seen);
    let answer = manager.browser.get("/api/roles");
    m.record("users.manage only", "web: roles list", Expect("404"), answered(answer.status, &answer.body));

    let wait = Duration::from_secs(3).saturating_sub(brief_made.elapsed());
    std::thread::sleep(wait);
    let stranger = Browser::new(gw);
    let answer = stranger.get(&format!("/api/invite/{brief_token}"));
    m.record(
        "invite, ttl 2s, after 3s",
        "web: GET /api/invite/{token}",
        Expect("404"),
        answered(answer.status, &answer.body),
    );
    let answer = stranger.post(&format!("/api/invite/{brief_token}/enroll"), None);
    m.record("invite, ttl 2s, after 3s", "web: enroll", Expect("404"), answered(answer.status, &answer.body));
    let body = json!({ "password": PASSWORD, "totp_code": "000000" });
    let answer = stranger.post(&format!("/api/invite/{brief_token}"), Some(body));
    m.record("invite, ttl 2s, after 3s", "web: redeem", Expect("404"), answered(answer.status, &answer.body));

    // The admin socket: only its owner (root, here) and root may use it.
    m.record("Unix user root (owner)", "ctl recordings ls", Expect("A"), ctl_as(&lab, &[], &["recordings", "ls"]));
    let nobody = ["runuser", "-u", "nobody", "--"];
    m.record(
        "Unix user nobody",
        "ctl recordings ls",
        Expect(OUT_OF_REACH),
        ctl_as(&lab, &nobody, &["recordings", "ls"]),
    );
    // With CAP_DAC_OVERRIDE nobody reaches the 0600 socket in the 0700 data dir; the
    // gateway's peer-credential check must still refuse it.
    let reaching = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
    ];
    let subject = "Unix user nobody + CAP_DAC_OVERRIDE";
    m.record(subject, "ctl recordings ls", Expect(CLOSED), ctl_as(&lab, &reaching, &["recordings", "ls"]));
    let export = gw.dir.path().join("exported.cast");
    let seen = ctl_as(&lab, &reaching, &["recordings", "export", &rec, "-o", export.to_str().unwrap()]);
    let seen =
        if export.exists() && std::fs::metadata(&export).unwrap().len() > 0 { Seen::allow("exported") } else { seen };
    m.record(subject, "ctl recordings export", Expect(CLOSED), seen);
    m.record(
        subject,
        "ctl users add",
        Expect(CLOSED),
        ctl_as(&lab, &reaching, &["users", "add", "intruder", "--roles", "admin"]),
    );

    // Audit: every forward refused after sign-in was logged, for every user who signed in.
    for s in subjects.iter().filter(|s| ["admin", "vend", "mixed"].contains(&s.user.as_str())) {
        for kind in ["direct-tcpip", "agent", "x11"] {
            let n = forwards_denied(&lab, &s.user, kind);
            m.record(
                s.column,
                &format!("audit: forward.denied {kind} logged"),
                Expect("A"),
                if n > 0 { Seen::allow(format!("{n} event(s)")) } else { Seen::deny("none") },
            );
        }
    }

    let table = m.markdown(&COLUMNS);
    eprintln!(
        "\nRBAC matrix (✓ allowed, ✗ denied, ‼ not as expected); setup {ssh_setup:?}, ssh cells done at {ssh_done:?}, web at {web_done:?}, all {:?}:\n\n{table}",
        started.elapsed()
    );
    if let Ok(target) = std::env::var("PORTCULLIS_WRITE_MATRIX") {
        matrix::write(&target, &table);
    }
    let mismatches = m.mismatches();
    assert!(
        mismatches.is_empty(),
        "{} of {} cells not as expected:\n{}",
        mismatches.len(),
        m.cells.len(),
        mismatches.join("\n")
    );
}
