//! The web backend end to end: invites with TOTP, sign-in with throttling, CSRF, the
//! vendor's view of nodes and of the paths it may not know of, and the terminal
//! WebSocket into the real relay and a real sshd node.

pub mod client;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_proto::totp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use self::client::{Answer, Browser};
use crate::support::gateway::TestGateway;
use crate::support::lab::Lab;

pub const PASSWORD: &str = "correct horse battery staple";
pub const WAIT: Duration = Duration::from_secs(20);

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An account made by `ctl users add` and redeemed through the invite API.
pub struct Account {
    /// Signed in as the account.
    pub browser: Browser,
    /// Its TOTP secret.
    pub secret: Vec<u8>,
    /// The TOTP step the redeeming code used.
    pub step: u64,
}

/// Redeems an invite or setup URL: show, enroll, redeem with a computed code.
pub fn redeem(gw: &TestGateway, url: &str) -> Account {
    let token = url.trim().rsplit('/').next().unwrap().to_owned();
    let mut browser = Browser::new(gw);
    let shown = browser.get(&format!("/api/invite/{token}"));
    assert_eq!(shown.status, 200, "{shown:?}");
    let user = shown.json()["user"].as_str().unwrap().to_owned();
    let enrolled = browser.post(&format!("/api/invite/{token}/enroll"), None);
    assert_eq!(enrolled.status, 200, "{enrolled:?}");
    let enrolled = enrolled.json();
    let secret_b32 = enrolled["secret_base32"].as_str().unwrap();
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("otpauth://totp/portcullis:{user}?secret={secret_b32}&")), "{uri}");
    let secret = totp::base32_decode(secret_b32).unwrap();
    // A wrong code and a short password leave the invite usable.
    let step = totp::step_at(unix_now());
    let wrong = browser.post(
        &format!("/api/invite/{token}"),
        Some(json!({ "password": PASSWORD, "totp_code": totp::code(&secret, step + 5) })),
    );
    assert_eq!(wrong.status, 400, "{wrong:?}");
    let short = browser.post(
        &format!("/api/invite/{token}"),
        Some(json!({ "password": "short", "totp_code": totp::code(&secret, step) })),
    );
    assert_eq!(short.status, 400, "{short:?}");
    let redeemed = browser.post(
        &format!("/api/invite/{token}"),
        Some(json!({ "password": PASSWORD, "totp_code": totp::code(&secret, step) })),
    );
    browser.take_session(&redeemed);
    assert_eq!(redeemed.json()["user"], user.as_str());
    // One-time: a replay is 404, like an unknown token, and audited.
    let again = Browser::new(gw).get(&format!("/api/invite/{token}"));
    assert_eq!(again.status, 404);
    assert_eq!(Browser::new(gw).get("/api/invite/nonexistent").status, 404);
    Account { browser, secret, step }
}

pub fn add_user(gw: &TestGateway, name: &str, roles: &str, ttl: Option<&str>) -> Account {
    let mut args = vec!["users", "add", name, "--roles", roles];
    if let Some(ttl) = ttl {
        args.extend(["--ttl", ttl]);
    }
    let url = gw.ctl_ok(&args);
    assert!(url.contains("/invite/"), "{url}");
    redeem(gw, &url)
}

fn login(gw: &TestGateway, user: &str, password: &str, code: &str) -> Answer {
    Browser::new(gw).post("/api/login", Some(json!({ "user": user, "password": password, "totp_code": code })))
}

fn reasons(gw: &TestGateway, user: &str) -> Vec<String> {
    gw.audit("user.login_failed")
        .iter()
        .filter(|e| e["user"] == user || e["attempted_user"] == user)
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// Headers that may differ between two identical answers.
fn stable_headers(answer: &Answer) -> Vec<(String, String)> {
    let mut headers: Vec<_> = answer.headers.iter().filter(|(n, _)| n != "date").cloned().collect();
    headers.sort();
    headers
}

#[test]
fn invites_redeem_once_and_logins_need_password_and_a_fresh_code() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let mut acme = add_user(gw, "acme", "vendor-test", None);
    assert_eq!(gw.audit("invite.redeem").iter().filter(|e| e["user"] == "acme").count(), 1);
    let refused = gw.audit("invite.refused");
    assert!(refused.iter().any(|e| e["user"] == "acme" && e["reason"] == "invite already used"), "{refused:?}");

    // The redeeming browser is signed in.
    let me = acme.browser.get("/api/me");
    assert_eq!(me.status, 200, "{me:?}");
    let me = me.json();
    assert_eq!(me["user"], "acme");
    assert_eq!(me["permissions"], json!(["shell", "exec", "file_transfer"]));
    assert_eq!(me["csrf"], acme.browser.csrf.clone().unwrap().as_str());

    // Every refusal is the same 401 and audited with its real reason.
    let code_now = |step: u64| totp::code(&acme.secret, step);
    let refusals = [
        login(gw, "acme", "wrong password here", &code_now(acme.step + 1)),
        login(gw, "acme", PASSWORD, &code_now(acme.step + 7)),
        login(gw, "acme", PASSWORD, &code_now(acme.step)),
        login(gw, "nobody", PASSWORD, &code_now(acme.step + 1)),
    ];
    for answer in &refusals {
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.body, refusals[0].body);
        assert!(answer.header("set-cookie").is_none());
    }
    assert_eq!(reasons(gw, "acme"), ["wrong password", "wrong code", "reused code"]);
    assert_eq!(reasons(gw, "nobody"), ["unknown user"]);

    // The next step's code works once.
    let good = login(gw, "acme", PASSWORD, &code_now(acme.step + 1));
    assert_eq!(good.status, 200, "{good:?}");
    let cookie = good.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(good.header("cache-control"), Some("no-store"));
    let replay = login(gw, "acme", PASSWORD, &code_now(acme.step + 1));
    assert_eq!(replay.status, 401);
    assert_eq!(reasons(gw, "acme").last().unwrap(), "reused code");
    let logins = gw.audit("user.login");
    assert!(logins.iter().any(|e| e["user"] == "acme" && e["method"] == "web" && e["src_ip"] == "127.0.0.1"));

    // CSRF: a state change without the session's token is 403 and changes nothing.
    let mut browser = Browser::new(gw);
    browser.take_session(&good);
    assert_eq!(browser.request("POST", "/api/logout", None, false).status, 403);
    let mut forged = browser.clone();
    forged.csrf = Some("forged".into());
    assert_eq!(forged.post("/api/logout", None).status, 403);
    assert_eq!(browser.get("/api/me").status, 200);
    let out = browser.post("/api/logout", None);
    assert_eq!(out.status, 204, "{out:?}");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(browser.get("/api/me").status, 401);
    // The other session lives on until its user is locked.
    assert_eq!(acme.browser.get("/api/me").status, 200);
    gw.ctl_ok(&["users", "lock", "acme"]);
    assert_eq!(acme.browser.get("/api/me").status, 401);
    gw.ctl_ok(&["users", "unlock", "acme"]);
    assert_eq!(acme.browser.get("/api/me").status, 401, "a lock ends sessions for good");
    acme.browser.cookie = None;
    assert_eq!(acme.browser.get("/api/me").status, 401);
}

#[test]
fn an_expired_invite_is_refused_like_an_unknown_one_and_audited() {
    let gw = TestGateway::start("", "");
    // An invite lives at most as long as its account: 2 seconds here.
    let url = gw.ctl_ok(&["users", "add", "brief", "--roles", "restricted-dev", "--ttl", "2s"]);
    let token = url.trim().rsplit('/').next().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(2500));
    let browser = Browser::new(&gw);
    let unknown = browser.get("/api/invite/nonexistent");
    let shown = browser.get(&format!("/api/invite/{token}"));
    assert_eq!((shown.status, &shown.body), (404, &unknown.body), "{shown:?}");
    let body = json!({ "password": PASSWORD, "totp_code": "000000" });
    let redeemed = browser.post(&format!("/api/invite/{token}"), Some(body));
    assert_eq!((redeemed.status, &redeemed.body), (404, &unknown.body), "{redeemed:?}");
    let refused = gw.audit("invite.refused");
    assert!(
        refused.iter().any(|e| e["user"] == "brief" && e["reason"].as_str().unwrap_or_default().contains("expired")),
        "{refused:?}"
    );
}

#[test]
fn vendors_see_their_nodes_and_nothing_they_may_not_know_of() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let acme = add_user(gw, "acme", "vendor-test", None);
    let nodes = acme.browser.get("/api/nodes");
    assert_eq!(nodes.status, 200, "{nodes:?}");
    assert_eq!(
        nodes.json(),
        json!({ "nodes": [{ "name": "gpu-01", "labels": { "gpu": "h800" }, "logins": [lab.node.user], "online": null, "file_transfer": true }] })
    );
    assert_eq!(Browser::new(gw).get("/api/nodes").status, 401);

    // Restricted paths answer the vendor exactly like a path that does not exist.
    let unknown = acme.browser.get("/api/nonexistent");
    assert_eq!(unknown.status, 404);
    for path in ["/api/recordings", "/api/audit", "/api/sessions", "/api/users", "/api/recordings/x"] {
        for browser in [&acme.browser, &Browser::new(gw)] {
            let answer = browser.get(path);
            assert_eq!((answer.status, &answer.body), (404, &unknown.body), "{path}");
            assert_eq!(stable_headers(&answer), stable_headers(&unknown), "{path}");
            let post = browser.post(path, Some(json!({})));
            assert_eq!((post.status, &post.body), (404, &unknown.body), "POST {path}");
        }
    }
    let doc = acme.browser.get("/api/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.json()["paths"].get("/api/nodes").is_some());
    assert!(!doc.body.contains("record") && !doc.body.contains("/api/audit"), "{}", doc.body);

    // The first-start setup link makes the admin, whose role grants them.
    let setup = gw.stdout.lock().unwrap().iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_owned()));
    let setup = setup.expect("the setup URL is printed");
    assert!(setup.contains("/setup/"), "{setup}");
    let admin = redeem(gw, &setup);
    let recordings = admin.browser.get("/api/recordings");
    assert_eq!(recordings.status, 200, "{recordings:?}");
    assert!(recordings.json()["recordings"].is_array());
    assert_eq!(admin.browser.get("/api/users").json()["users"].as_array().unwrap().len(), 4);
    assert!(admin.browser.get("/api/openapi.json").json()["paths"].get("/api/recordings").is_some());
    let admin_nodes = admin.browser.get("/api/nodes").json();
    assert_eq!(admin_nodes["nodes"].as_array().unwrap().len(), 2, "{admin_nodes}");
}

#[test]
fn files_upload_and_download_through_sftp_on_the_node_and_are_audited() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let acme = add_user(gw, "acme", "vendor-test", None);
    let browser = &acme.browser;
    let nodes = browser.get("/api/nodes").json();
    assert_eq!(nodes["nodes"][0]["file_transfer"], true, "{nodes}");

    // 3 MiB and a bit of bytes no text codec would keep: every byte value, repeated, then noise.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    bytes.extend((0..12_345u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&source, &bytes).unwrap();
    let remote = dir.path().join("on-node.bin");
    let remote = remote.to_str().unwrap();

    let up = browser.upload(&format!("/api/files?node=gpu-01&path={remote}"), &source);
    assert_eq!(up.status, 200, "{up:?}");
    assert_eq!(up.json()["bytes"], bytes.len() as u64);
    assert_eq!(std::fs::read(remote).unwrap(), bytes, "the node's file differs");

    let copy = dir.path().join("copy.bin");
    let down = browser.download(&format!("/api/files?node=gpu-01&path={remote}"), &copy);
    assert_eq!(down.status, 200, "{down:?}");
    assert_eq!(down.header("content-disposition"), Some("attachment; filename=\"on-node.bin\""));
    assert_eq!(std::fs::read(&copy).unwrap(), bytes, "the download differs");

    // Refusals: a node outside the role and an unknown one answer alike; a missing file
    // is the node's error; no CSRF token, no upload.
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "not for gpu-02\n").unwrap();
    let outside = browser.upload(&format!("/api/files?node=gpu-02&path={remote}"), &small);
    let unknown = browser.upload(&format!("/api/files?node=nope&path={remote}"), &small);
    assert_eq!((outside.status, outside.body.clone()), (403, unknown.body.clone()), "{outside:?} {unknown:?}");
    assert_eq!(unknown.status, 403);
    let missing = browser.download("/api/files?node=gpu-01&path=/nonexistent/file", &copy);
    assert_eq!(missing.status, 422, "{missing:?}");
    let mut no_csrf = browser.clone();
    no_csrf.csrf = None;
    assert_eq!(no_csrf.upload(&format!("/api/files?node=gpu-01&path={remote}"), &small).status, 403);
    assert_eq!(Browser::new(gw).download(&format!("/api/files?node=gpu-01&path={remote}"), &copy).status, 401);

    // The same file.* events sftp over SSH writes, for both transfers.
    crate::support::eventually("file.close events", WAIT, || {
        let closes = gw.audit("file.close");
        let mine: Vec<&Value> = closes.iter().filter(|e| e["user"] == "acme" && e["path"] == remote).collect();
        mine.iter().any(|e| e["bytes_written"] == bytes.len() as u64)
            && mine.iter().any(|e| e["bytes_read"] == bytes.len() as u64)
    });
    let denied = gw.audit("session.denied");
    assert!(denied.iter().any(|e| e["user"] == "acme" && e["node"] == "gpu-02"), "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_runs_in_the_relay_is_recorded_and_ends_when_the_user_is_locked() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let acme = add_user(gw, "acme", "vendor-test", None);
    let browser = &acme.browser;
    let origin = browser.origin();

    let mut term = browser.terminal("node=gpu-01&cols=80&rows=24", Some(&origin)).await.expect("upgrade");
    term.keys("echo $((7*6))\r").await;
    assert!(term.until("42", WAIT).await, "no 42 in {:?}", term.output);
    term.resize(100, 40).await;
    term.keys("stty size\r").await;
    assert!(term.until("40 100", WAIT).await, "no resize in {:?}", term.output);
    term.keys("exit 3\r").await;
    assert!(term.until_closed(WAIT).await);
    assert!(term.messages.contains(&json!({ "type": "exit", "status": 3 })), "{:?}", term.messages);
    assert_eq!(term.closed_reason().as_deref(), Some("session ended"));
    assert_eq!(term.close_code(), Some(1000));

    let recordings = gw.ctl_json(&["recordings", "ls"]);
    let mine: Vec<&Value> = recordings.iter().filter(|r| r["user"] == "acme" && r["node"] == "gpu-01").collect();
    assert_eq!(mine.len(), 1, "{recordings:?}");
    let starts = gw.audit("session.start");
    assert!(starts.iter().any(|e| e["user"] == "acme" && e["src_ip"] == "127.0.0.1"), "{starts:?}");

    // A node outside the role opens and closes with the same refusal SSH gives.
    let mut denied = browser.terminal("node=gpu-02", Some(&origin)).await.expect("upgrade");
    assert!(denied.until_closed(WAIT).await);
    assert_eq!(denied.closed_reason().as_deref(), Some("access denied"));

    // Locking the user ends the live terminal at once, with the generic message.
    let mut live = browser.terminal("node=gpu-01", Some(&origin)).await.expect("upgrade");
    live.keys("echo ready-$((1+1))\r").await;
    assert!(live.until("ready-2", WAIT).await, "{:?}", live.output);
    let started = Instant::now();
    gw.ctl_ok(&["users", "lock", "acme"]);
    assert!(live.until_closed(WAIT).await, "the terminal outlived the lock: {:?}", live.output);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(live.closed_reason().as_deref(), Some("session closed by gateway"));
    assert!(live.output.contains("session closed by gateway"));
    assert_eq!(browser.get("/api/me").status, 401);
    assert!(browser.terminal("node=gpu-01", Some(&origin)).await.is_err(), "no new terminal for a locked user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_refuses_foreign_origins_strangers_and_oversized_frames() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let acme = add_user(gw, "acme", "vendor-test", None);
    let browser = &acme.browser;

    for origin in [Some("https://evil.example"), Some("http://127.0.0.1"), None] {
        match browser.terminal("node=gpu-01", origin).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403, "{origin:?}"),
            Err(other) => panic!("{origin:?}: {other}"),
            Ok(_) => panic!("{origin:?} was let in"),
        }
    }
    let refused = gw.audit("terminal.origin_refused");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().any(|e| e["origin"] == "https://evil.example" && e["user"] == "acme"));
    assert_eq!(gw.audit("session.start").len(), 0);

    let stranger = Browser::new(gw);
    match stranger.terminal("node=gpu-01", Some(&browser.origin())).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a stranger got {:?}", other.map(|_| ())),
    }

    let mut term = browser.terminal("node=gpu-01", Some(&browser.origin())).await.expect("upgrade");
    term.keys("echo up-$((2+3))\r").await;
    assert!(term.until("up-5", WAIT).await);
    let _ = term.send(Message::Binary(vec![b'x'; 70 * 1024].into())).await;
    assert!(term.until_closed(WAIT).await);
    assert_eq!(term.close_code(), Some(1009), "{:?}", term.close);
    // The shell is hung up, as when a terminal window closes, and the session ends on its own.
    crate::support::eventually("the oversized frame to end the session", WAIT, || gw.audit("session.end").len() == 1);
    let end = &gw.audit("session.end")[0];
    assert!(end.get("ended_by").is_none(), "ended by the hangup, not by the gateway: {end}");

    // A browser that closes the socket (a closed tab) ends its session the same way.
    let mut tab = browser.terminal("node=gpu-01", Some(&browser.origin())).await.expect("upgrade");
    tab.keys("echo tab-$((4+4))\r").await;
    assert!(tab.until("tab-8", WAIT).await);
    tab.send(Message::Close(None)).await.unwrap();
    crate::support::eventually("the closed tab to end the session", WAIT, || gw.audit("session.end").len() == 2);
    assert!(gw.audit("session.end")[1].get("ended_by").is_none());
}

#[test]
fn failed_logins_lock_out_and_forwarded_addresses_count_only_from_trusted_proxies() {
    let lab = Lab::start(r#"trusted_proxies = ["127.0.0.1/32"]"#, "");
    let gw = &lab.gw;
    let acme = add_user(gw, "acme", "vendor-test", None);
    let code = totp::code(&acme.secret, acme.step + 1);

    // Unknown users cost what known ones do.
    let time = |user: &str| {
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(login(gw, user, "not the password", "000000").status, 401);
        }
        start.elapsed()
    };
    let (known, unknown) = (time("acme"), time("nobody-at-all"));
    assert!(unknown * 2 > known && known * 2 > unknown, "known {known:?} vs unknown {unknown:?}");
    // Two more failures make five: acme is locked out, even with the right password and code.
    for _ in 0..2 {
        assert_eq!(login(gw, "acme", "still wrong", "000000").status, 401);
    }
    let lockouts = gw.audit("user.lockout");
    assert!(lockouts.iter().any(|e| e["user"] == "acme" && e["scope"] == "user"), "{lockouts:?}");
    let locked_out = login(gw, "acme", PASSWORD, &code);
    assert_eq!(locked_out.status, 429, "{locked_out:?}");
    assert_eq!(reasons(gw, "acme").last().unwrap(), "throttled");

    // Behind a trusted proxy, X-Forwarded-For names the client: from there no role applies.
    let mut proxied = Browser::new(gw);
    proxied.extra = vec![("X-Forwarded-For".into(), "10.1.1.1, 198.51.100.7".into())];
    let answer = proxied.post("/api/login", Some(json!({ "user": "nobody", "password": "x", "totp_code": "1" })));
    assert_eq!(answer.status, 401);
    let failed = gw.audit("user.login_failed");
    assert_eq!(failed.last().unwrap()["src_ip"], "198.51.100.7", "{failed:?}");
    let mut viewed = acme.browser.clone();
    viewed.extra = proxied.extra.clone();
    assert_eq!(viewed.get("/api/nodes").json(), json!({ "nodes": [] }));
    assert_eq!(viewed.get("/api/me").json()["permissions"], json!([]));
    viewed.extra = vec![("X-Forwarded-For".into(), "not-an-address".into())];
    assert_eq!(viewed.get("/api/me").status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_account_loses_its_live_terminal_and_its_session() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let ttl_secs = 15;
    let created = Instant::now();
    let temp = add_user(gw, "temp", "vendor-test", Some(&format!("{ttl_secs}s")));
    let mut term = temp.browser.terminal("node=gpu-01", Some(&temp.browser.origin())).await.expect("upgrade");
    term.keys("echo alive-$((3*3))\r").await;
    assert!(term.until("alive-9", WAIT).await);
    assert!(created.elapsed() < Duration::from_secs(ttl_secs - 2), "setup took too long to test expiry");
    assert!(term.until_closed(Duration::from_secs(ttl_secs + 10)).await, "the terminal outlived the account");
    assert!(created.elapsed() >= Duration::from_secs(ttl_secs - 1));
    assert_eq!(term.closed_reason().as_deref(), Some("session closed by gateway"));
    // The terminal may close a moment before the sweep writes its audit event.
    crate::support::eventually("user.expired audited", WAIT, || {
        gw.audit("user.expired").iter().any(|e| e["user"] == "temp" && e["sessions_ended"] == 1)
    });
    assert_eq!(temp.browser.get("/api/me").status, 401);
    let code = totp::code(&temp.secret, totp::step_at(unix_now()) + 1);
    assert_eq!(login(gw, "temp", PASSWORD, &code).status, 401);
    assert_eq!(reasons(gw, "temp").last().unwrap(), "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_terminal_reaches_a_node_behind_an_agent() {
    // `--demo` runs the real agent code in-process: join, mutual-TLS tunnel, inner SSH login.
    let gw = TestGateway::start_with("", "", &["--demo"]);
    crate::support::eventually("the demo node online", WAIT, || {
        gw.ctl_json(&["nodes", "ls"]).iter().any(|n| n["name"] == "demo" && n["online"] == true)
    });
    let acme = add_user(&gw, "acme", "demo", None);
    let nodes = acme.browser.get("/api/nodes").json();
    let demo = nodes["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "demo").cloned();
    assert_eq!(demo.as_ref().map(|n| n["online"].clone()), Some(json!(true)), "{nodes}");
    let origin = acme.browser.origin();
    let mut term = acme.browser.terminal("node=demo&cols=80&rows=24", Some(&origin)).await.expect("upgrade");
    term.keys("echo agent-$((7*6))\r").await;
    assert!(term.until("agent-42", WAIT).await, "no agent-42 in {:?}", term.output);
    term.keys("exit\r").await;
    assert!(term.until_closed(WAIT).await);
    let recordings = gw.ctl_json(&["recordings", "ls", "--node", "demo"]);
    assert_eq!(recordings.len(), 1, "recorded like an agentless session: {recordings:?}");
}
