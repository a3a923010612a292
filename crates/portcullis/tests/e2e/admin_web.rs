//! The admin console's API end to end (docs/admin.md): watching a vendor's live web
//! terminal silently, killing it, the audit log's filters, pages and chain state, and
//! managing users, nodes, join tokens and roles; a vendor gets the common 404 on all of it.

use serde_json::{Value, json};

use crate::support::lab::Lab;
use crate::web::client::Browser;
use crate::web::{Account, WAIT, add_user, redeem};

/// The first-start admin, through the setup URL the gateway printed.
pub fn admin(lab: &Lab) -> Account {
    let printed = lab.gw.stdout.lock().unwrap().clone();
    let setup = printed.iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_owned()));
    redeem(&lab.gw, &setup.expect("the setup URL is printed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_watches_a_live_terminal_silently_and_kills_it() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let admin = admin(&lab);
    let acme = add_user(gw, "acme", "vendor-test", None);
    let mut vendor = acme.browser.terminal("node=gpu-01&cols=90&rows=30", Some(&acme.browser.origin())).await.unwrap();
    vendor.keys("echo before-$((2+2))\r").await;
    assert!(vendor.until("before-4", WAIT).await, "{:?}", vendor.output);

    let listed = admin.browser.get("/api/sessions").json();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    let session = &sessions[0];
    assert_eq!(
        (&session["user"], &session["node"], &session["kind"]),
        (&json!("acme"), &json!("gpu-01"), &json!("shell"))
    );
    assert!(session["bytes_out"].as_u64().unwrap() > 0 && session["bytes_in"].as_u64().unwrap() > 0, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();

    // The watcher starts from the current screen and sees what follows, live.
    let origin = admin.browser.origin();
    let mut watch = admin.browser.websocket(&format!("/api/sessions/{id}/watch"), Some(&origin)).await.unwrap();
    assert!(watch.until("before-4", WAIT).await, "the current screen first: {:?}", watch.output);
    assert_eq!(watch.messages.first(), Some(&json!({ "type": "start", "cols": 90, "rows": 30 })));
    watch.keys("echo injected\r").await;
    vendor.keys("echo watched-$((6*7))\r").await;
    assert!(watch.until("watched-42", WAIT).await, "{:?}", watch.output);
    vendor.resize(100, 40).await;
    assert!(
        watch.until_message(&json!({ "type": "resize", "cols": 100, "rows": 40 }), WAIT).await,
        "{:?}",
        watch.messages
    );
    // Nothing of the watcher reached the session or its user.
    vendor.keys("echo after-$((3+3))\r").await;
    assert!(vendor.until("after-6", WAIT).await);
    assert!(!vendor.output.contains("injected"), "the watcher typed into the session: {:?}", vendor.output);
    assert!(vendor.messages.is_empty(), "the vendor was told something: {:?}", vendor.messages);
    let observed = gw.audit("session.observe");
    assert!(observed.iter().any(|e| e["session_id"] == id && e["actor"] == "web admin"), "{observed:?}");

    // Killing: the vendor sees the generic close, the watcher the end.
    let killed = admin.browser.post(&format!("/api/sessions/{id}/kill"), None);
    assert_eq!((killed.status, killed.json()), (200, json!({ "killed": true })));
    assert!(vendor.until_closed(WAIT).await);
    assert_eq!(vendor.closed_reason().as_deref(), Some("session closed by gateway"));
    assert!(watch.until_closed(WAIT).await);
    assert_eq!(watch.closed_reason().as_deref(), Some("session ended"));
    let kills = admin.browser.get(&format!("/api/audit?type=session.kill&session={id}")).json();
    assert_eq!(kills["events"].as_array().unwrap().len(), 1, "{kills}");
    assert_eq!(kills["events"][0]["actor"], "web admin");
    assert_eq!(admin.browser.post(&format!("/api/sessions/{id}/kill"), None).status, 404, "a session no longer live");
    let foreign = admin.browser.websocket(&format!("/api/sessions/{id}/watch"), Some("https://evil.example")).await;
    assert!(foreign.is_err(), "a foreign origin cannot watch");
}

#[test]
fn the_audit_log_pages_filters_and_shows_its_chain() {
    let lab = Lab::start("", "");
    let admin = admin(&lab);
    let browser = &admin.browser;
    let first = browser.get("/api/audit?limit=3").json();
    let seqs = |page: &Value| -> Vec<u64> {
        page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    };
    let page1 = seqs(&first);
    assert_eq!(page1.len(), 3);
    assert!(page1.windows(2).all(|w| w[0] > w[1]), "newest first: {page1:?}");
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let page2 = seqs(&browser.get(&format!("/api/audit?limit=3&cursor={cursor}")).json());
    assert_eq!(page2.first().copied(), Some(page1[2] - 1), "the next page starts right after: {page1:?} {page2:?}");

    let roles = browser.get("/api/audit?type=role&limit=500").json();
    let types: Vec<&str> = roles["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(!types.is_empty() && types.iter().all(|t| t.starts_with("role.")), "{types:?}");
    let nodes = browser.get("/api/audit?node=gpu-02").json();
    assert!(nodes["events"].as_array().unwrap().iter().all(|e| e["node"] == "gpu-02"), "{nodes}");
    let future = browser.get("/api/audit?since=2999-01-01T00:00:00Z").json();
    assert_eq!(future["events"], json!([]));
    assert_eq!(future["next_cursor"], Value::Null);
    assert_eq!(browser.get("/api/audit?since=yesterday").status, 400);
    assert_eq!(browser.get("/api/audit?cursor=x").status, 400);
    assert_eq!(browser.get("/api/audit?limit=0").status, 400);

    let verify = browser.get("/api/audit/verify").json();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["verified_up_to"].as_u64().unwrap() >= page1[0], "{verify}");
    assert_eq!(verify["broken_at"], Value::Null);
}

#[test]
fn users_nodes_tokens_and_roles_are_managed_and_audited() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let admin = admin(&lab);
    let browser = &admin.browser;

    // Users: invite, lock, unlock, expire, reset TOTP; bad input says why.
    let made = browser.post("/api/users", Some(json!({ "name": "temp", "roles": ["vendor-test"], "ttl": "1h" })));
    assert_eq!(made.status, 200, "{made:?}");
    let url = made.json()["invite_url"].as_str().unwrap().to_owned();
    assert!(url.contains("/invite/"), "{url}");
    let temp = redeem(gw, &url);
    assert_eq!(temp.browser.get("/api/me").status, 200);
    let locked = browser.post("/api/users/temp/lock", None).json();
    assert_eq!(locked["user"]["locked"], true, "{locked}");
    assert_eq!(temp.browser.get("/api/me").status, 401, "a lock ends the web session");
    assert_eq!(browser.post("/api/users/temp/unlock", None).json()["user"]["locked"], false);
    let reset = browser.post("/api/users/temp/reset-totp", None).json();
    assert_eq!(reset["user"]["enrolled"], false, "{reset}");
    assert!(reset["invite_url"].as_str().unwrap().contains("/invite/"), "{reset}");
    let expired = browser.post("/api/users/temp/expire", None).json();
    assert!(expired["user"]["expires"].is_string(), "{expired}");
    let bad = browser.post("/api/users", Some(json!({ "name": "x", "roles": ["no-such-role"], "ttl": null })));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("no-such-role"), "{bad:?}");
    assert_eq!(browser.post("/api/users/nobody/lock", None).status, 404);
    assert_eq!(browser.post("/api/users/temp/format", None).status, 404);
    for kind in ["user.lock", "user.unlock", "user.reset_totp", "user.expire"] {
        assert!(gw.audit(kind).iter().any(|e| e["user"] == "temp" && e["actor"] == "web admin"), "{kind}");
    }

    // Nodes: managers see every node with how it is reached; labels and re-pinning.
    let nodes = browser.get("/api/nodes").json();
    let listed = nodes["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{nodes}");
    assert_eq!(listed[1]["manage"]["addr"], format!("127.0.0.1:{}", lab.node.port));
    let vendor_view = temp_vendor(&lab).get("/api/nodes").json();
    assert!(vendor_view["nodes"][0].get("manage").is_none(), "{vendor_view}");
    let labelled = browser.request(
        "PUT",
        "/api/nodes/gpu-02/labels",
        Some(json!({ "labels": { "gpu": "a100", "site": "lab-2" } })),
        true,
    );
    assert_eq!(labelled.status, 200, "{labelled:?}");
    assert_eq!(labelled.json()["labels"], json!({ "gpu": "a100", "site": "lab-2" }));
    let refused =
        browser.request("PUT", "/api/nodes/gpu-02/labels", Some(json!({ "labels": { "bad key": "x" } })), true);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(browser.request("PUT", "/api/nodes/nope/labels", Some(json!({ "labels": {} })), true).status, 404);
    let out = lab.exec(&lab.vendor_key, "gpu-01", "true");
    assert!(out.status.success(), "a session pins gpu-01's host key");
    let pinned = browser.get("/api/nodes").json();
    assert!(pinned["nodes"][0]["manage"]["host_key"].as_str().is_some_and(|k| k.starts_with("SHA256:")), "{pinned}");
    assert_eq!(browser.post("/api/nodes/gpu-01/repin", None).status, 200);
    assert_eq!(browser.get("/api/nodes").json()["nodes"][0]["manage"]["host_key"], Value::Null);
    assert!(gw.audit("node.repin").iter().any(|e| e["node"] == "gpu-01" && e["actor"] == "web admin"));

    // Join tokens: created once, listed without the secret, revoked.
    let token = browser.post("/api/tokens", Some(json!({ "ttl": "10m", "labels": { "site": "lab-3" } }))).json();
    let secret = token["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pcj1."), "{token}");
    let tokens = browser.get("/api/tokens").json();
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");
    assert!(!tokens.to_string().contains(&secret), "the list never shows a token");
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(browser.post(&format!("/api/tokens/{id}/revoke"), None).status, 200);
    assert_ne!(browser.get("/api/tokens").json()["tokens"][0]["state"], "valid");

    // Roles: read as TOML, applied from TOML; bad TOML says where.
    let roles = browser.get("/api/roles").json();
    assert!(roles["roles"].as_array().unwrap().iter().any(|r| r["name"] == "vendor-test"), "{roles}");
    let toml = "[[role]]\nname = \"auditor\"\nnodes = { \"*\" = \"*\" }\nlogins = []\nallow = [\"audit.read\"]\n";
    let applied = browser.post("/api/roles", Some(json!({ "toml": toml })));
    assert_eq!(applied.json(), json!({ "applied": ["auditor"] }), "{applied:?}");
    // Nobody hands out what they do not hold: a user and role manager without admin rights
    // can invite vendors but not admins, and cannot write a role stronger than their own.
    let manager_role = "[[role]]\nname = \"people\"\nnodes = { \"*\" = \"*\" }\nlogins = []\n\
                        allow = [\"users.manage\", \"roles.manage\", \"shell\", \"exec\", \"file_transfer\"]\n\
                        source_cidrs = [\"127.0.0.0/8\"]\n";
    assert_eq!(browser.post("/api/roles", Some(json!({ "toml": manager_role }))).status, 200);
    let people = add_user(gw, "hr", "people", None).browser;
    let escalate = people.post("/api/users", Some(json!({ "name": "boss", "roles": ["admin"], "ttl": null })));
    assert_eq!(escalate.status, 403, "{escalate:?}");
    assert!(escalate.json()["error"].as_str().unwrap().contains("audit.read"), "{escalate:?}");
    let vendor = people.post("/api/users", Some(json!({ "name": "vend", "roles": ["vendor-test"], "ttl": "1h" })));
    assert_eq!(vendor.status, 200, "{vendor:?}");
    let stronger = "[[role]]\nname = \"people\"\nnodes = { \"*\" = \"*\" }\nlogins = []\nallow = [\"audit.read\"]\n\
                    source_cidrs = [\"127.0.0.0/8\"]\n";
    assert_eq!(people.post("/api/roles", Some(json!({ "toml": stronger }))).status, 403);

    let broken = browser.post("/api/roles", Some(json!({ "toml": "[[role]\nname = " })));
    assert_eq!(broken.status, 400);
    assert!(broken.json()["error"].as_str().unwrap().contains("line"), "{broken:?}");
}

/// A vendor signed in, to compare views.
fn temp_vendor(lab: &Lab) -> Browser {
    add_user(&lab.gw, "viewer", "vendor-test", None).browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_finds_no_admin_path() {
    let lab = Lab::start("", "");
    let acme = add_user(&lab.gw, "acme", "vendor-test", None);
    let unknown = acme.browser.get("/api/nonexistent");
    let gets = [
        "/api/sessions",
        "/api/audit",
        "/api/audit/verify",
        "/api/users",
        "/api/tokens",
        "/api/roles",
        "/api/sessions/x/watch",
    ];
    let posts = [
        "/api/sessions/x/kill",
        "/api/users",
        "/api/users/acme/unlock",
        "/api/nodes/gpu-01/repin",
        "/api/tokens",
        "/api/tokens/x/revoke",
        "/api/roles",
    ];
    for browser in [&acme.browser, &Browser::new(&lab.gw)] {
        for path in gets {
            let answer = browser.get(path);
            assert_eq!((answer.status, &answer.body), (404, &unknown.body), "GET {path}");
        }
        for path in posts {
            let answer = browser.post(path, Some(json!({})));
            assert_eq!((answer.status, &answer.body), (404, &unknown.body), "POST {path}");
        }
        let put = browser.request("PUT", "/api/nodes/gpu-01/labels", Some(json!({ "labels": {} })), true);
        assert_eq!((put.status, &put.body), (404, &unknown.body), "PUT labels");
    }
    let origin = acme.browser.origin();
    assert!(acme.browser.websocket("/api/sessions/x/watch", Some(&origin)).await.is_err());
}
