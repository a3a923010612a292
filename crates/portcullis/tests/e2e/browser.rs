//! The browser UI end to end: Debian's Chromium, headless, driven by playwright-core
//! (`web/tests/vendor_flow.mjs`), against the real gateway and a real sshd node, directly
//! and through real nginx configured by `portcullis config nginx`.
//!
//! The script does what a vendor does (redeems the invite with a TOTP code it computes,
//! opens a terminal, types, resizes, uploads and downloads) and reports what the page
//! showed; the assertions here check that report against the node, the recordings and
//! the audit log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_proto::asciicast::strip_ansi;
use serde_json::{Value, json};

use crate::support::gateway::TestGateway;
use crate::support::lab::Lab;
use crate::support::nginx::Nginx;
use crate::support::{asciinema_cat, eventually, text};

const PASSWORD: &str = "correct horse battery staple";
/// How long one browser flow may take, start to end.
const FLOW_LIMIT: Duration = Duration::from_secs(240);

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Runs the vendor's Playwright flow and returns its report; panics with its log on failure.
pub fn run_flow(flow: &Value) -> Value {
    run_flow_script("vendor_flow.mjs", flow)
}

/// Runs `web/tests/SCRIPT` with `flow` and returns its report; panics with its log on failure.
fn run_flow_script(script: &str, flow: &Value) -> Value {
    assert!(Path::new("/usr/bin/chromium").exists(), "no /usr/bin/chromium: run scripts/install-deps.sh");
    assert!(web_dir().join("node_modules/playwright-core").exists(), "no playwright-core: run `make ui`");
    let log = tempfile::NamedTempFile::new().unwrap();
    let _quiet = crate::support::netns::network_changes();
    let mut child = Command::new("node")
        .arg(web_dir().join("tests").join(script))
        .env("FLOW", flow.to_string())
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("node runs");
    let deadline = Instant::now() + FLOW_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("the browser flow failed ({status}):\n{log}"),
        None => panic!("the browser flow took over {FLOW_LIMIT:?}:\n{log}"),
    }
    let stdout = text(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report:\n{log}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad report ({e}): {last}"))
}

/// An invite for `user` with `role`: the path of its one-time URL.
pub fn invite(gw: &TestGateway, user: &str, role: &str) -> String {
    let url = gw.ctl_ok(&["users", "add", user, "--roles", role, "--ttl", "72h"]);
    let path = url.trim().split_once("/invite/").map(|(_, token)| format!("/invite/{token}"));
    path.unwrap_or_else(|| panic!("no invite URL in {url:?}"))
}

/// A file the browser uploads to `remote` on the node, then downloads to `saved`.
pub struct Transfer {
    /// The file picked in the browser.
    pub local: PathBuf,
    /// Where it goes on the node (the node shares this machine's file system).
    pub remote: String,
    /// Where the browser saves the download.
    pub saved: PathBuf,
}

impl Transfer {
    /// `len` bytes no text path would keep intact, in `dir`.
    pub fn new(dir: &Path, len: usize) -> Transfer {
        let bytes: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let local = dir.join("upload.bin");
        std::fs::write(&local, bytes).unwrap();
        Transfer {
            local,
            remote: dir.join("on-node.bin").to_string_lossy().into_owned(),
            saved: dir.join("downloaded.bin"),
        }
    }
}

/// Rows and columns from `stty size` output.
fn size(report: &Value, key: &str) -> (u32, u32) {
    let text = report[key].as_str().unwrap_or_else(|| panic!("no {key} in {report}"));
    let mut parts = text.split_whitespace().map(|n| n.parse::<u32>().unwrap_or_else(|_| panic!("{key}: {text:?}")));
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Everything a vendor does, for `user` at `base_url` on `node`.
pub fn vendor_flow(base_url: &str, invite_path: &str, user: &str, node: &str, transfer: &Transfer) -> Value {
    json!({
        "base_url": base_url,
        "invite_path": invite_path,
        "user": user,
        "password": PASSWORD,
        "node": node,
        "expect_nodes": [node],
        "commands": [{ "type": "echo $((7*6))", "expect": "42" }],
        "resize": { "width": 900, "height": 500 },
        "upload": { "local": transfer.local, "remote": transfer.remote },
        "download": { "remote": transfer.remote, "save_to": transfer.saved },
        // The expected output is not in the pasted text: only the shell running it shows it.
        "paste": { "text": "echo pasted-$((5*5))", "expect": "pasted-25" },
        "second_tab": { "close_with": "exit 3" },
        "forbidden_paths": ["/api/recordings", "/api/audit", "/api/sessions", "/api/users"],
        "screenshots": std::env::var("PORTCULLIS_SCREENSHOTS").ok(),
    })
}

/// What every flow must have shown, wherever the browser connected: only `node`, and
/// each step's effect on it.
pub fn check_report(report: &Value, node: &str, transfer: &Transfer) {
    assert_eq!(report["nodes_seen"], json!([node]), "the vendor sees {node} only: {report}");
    let terminal = report["terminal_text"].as_str().unwrap_or_default();
    assert!(terminal.lines().any(|l| l.trim() == "42"), "no 42 in the terminal:\n{terminal}");
    let (before, after) = (size(report, "stty_before"), size(report, "stty_after"));
    assert!(
        after.0 < before.0 && after.1 < before.1,
        "a smaller window, fewer rows and columns: {before:?} → {after:?}"
    );
    let sent = std::fs::read(&transfer.local).unwrap();
    assert_eq!(std::fs::read(&transfer.remote).unwrap(), sent, "the node's copy differs");
    assert_eq!(std::fs::read(&transfer.saved).unwrap(), sent, "the download differs");
    assert_eq!(report["pasted"], "pasted-25", "{report}");
    let tabs = report["tabs"].as_array().map(Vec::len);
    assert_eq!(tabs, Some(2), "two terminals in tabs: {report}");
    let closed = report["closed_message"].as_str().unwrap_or_default();
    assert!(closed.contains("session ended") && closed.contains('3'), "the ended tab says why: {closed:?}");
    assert_eq!(report["page_errors"], json!([]), "errors on the page (CSP included): {report}");
    for path in ["/api/recordings", "/api/audit", "/api/sessions", "/api/users"] {
        assert_eq!(report["forbidden_status"][path], 404, "{path}: {report}");
    }
    let links = report["links"].to_string().to_lowercase();
    let page = report["page_text"].as_str().unwrap_or_default().to_lowercase();
    for word in ["recording", "audit", "watch", "observe"] {
        assert!(!links.contains(word) && !page.contains(word), "the vendor's page mentions {word:?}: {report}");
    }
}

/// The transfers' `file.*` events, with the byte counts of both directions.
pub fn assert_transfers_audited(gw: &TestGateway, user: &str, transfer: &Transfer) {
    let len = std::fs::metadata(&transfer.local).unwrap().len();
    eventually("file events for the browser's transfers", Duration::from_secs(20), || {
        let closes = gw.audit("file.close");
        let mine: Vec<&Value> = closes.iter().filter(|e| e["user"] == user && e["path"] == transfer.remote).collect();
        mine.iter().any(|e| e["bytes_written"] == len) && mine.iter().any(|e| e["bytes_read"] == len)
    });
}

#[test]
fn a_vendor_redeems_an_invite_and_works_in_the_browser_terminal() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let invite_path = invite(gw, "alice", "vendor-test");
    let dir = tempfile::tempdir().unwrap();
    let transfer = Transfer::new(dir.path(), 300_000);

    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    let report = run_flow(&vendor_flow(&base, &invite_path, "alice", "gpu-01", &transfer));
    check_report(&report, "gpu-01", &transfer);
    assert_eq!(report["nodes_online"]["gpu-01"], "direct", "an agentless node: {report}");

    // The browser session was recorded like an SSH one, and plays.
    let recordings = gw.ctl_json(&["recordings", "ls", "--user", "alice"]);
    let shell = recordings.iter().find(|r| r["node"] == "gpu-01" && r["command"].is_null());
    let shell = shell.unwrap_or_else(|| panic!("no recording of the terminal: {recordings:?}"));
    let cast = dir.path().join("terminal.cast");
    gw.ctl_ok(&["recordings", "export", shell["id"].as_str().unwrap(), "-o", cast.to_str().unwrap()]);
    let played = strip_ansi(&asciinema_cat(&cast));
    assert!(played.lines().any(|l| l.trim() == "42"), "the recording does not show 42:\n{played}");

    // Redeeming and both transfers are in the audit log.
    assert!(gw.audit("invite.redeem").iter().any(|e| e["user"] == "alice"));
    assert_transfers_audited(gw, "alice", &transfer);
}

#[test]
fn the_browser_terminal_works_behind_real_nginx_with_the_generated_config() {
    // The browser reaches nginx on 127.0.0.2; nginx reaches the gateway on 127.0.0.1.
    let public = Nginx::free_addr("127.0.0.2");
    let lab = Lab::start(&format!("public_addr = [\"{public}\"]\ntrusted_proxies = [\"127.0.0.1/32\"]"), "");
    let gw = &lab.gw;
    let nginx = Nginx::start(&public, gw);
    let invite_path = invite(gw, "bob", "vendor-test");
    let dir = tempfile::tempdir().unwrap();
    // Over nginx's default 1 MiB body limit, which the generated config lifts.
    let transfer = Transfer::new(dir.path(), 3 << 20);

    let base = format!("https://{}", nginx.addr);
    let report = run_flow(&vendor_flow(&base, &invite_path, "bob", "gpu-01", &transfer));
    check_report(&report, "gpu-01", &transfer);
    assert_transfers_audited(gw, "bob", &transfer);

    // Everything went through nginx: the page, the terminal's WebSocket, both transfers.
    // (Which X-Forwarded-For the gateway believes is web.rs's test: here the browser and
    // nginx share 127.0.0.1 as their source address.)
    let access = std::fs::read_to_string(nginx.dir.path().join("access.log")).unwrap();
    for request in ["GET /invite/", "GET /api/terminal?", "POST /api/files?", "GET /api/files?"] {
        assert!(access.contains(request), "no {request} through nginx:\n{access}");
    }
    assert!(gw.audit("session.start").iter().any(|e| e["user"] == "bob" && e["kind"] == "shell"));
}

#[test]
fn an_admin_watches_kills_finds_and_replays_a_vendor_session_in_the_browser() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let printed = gw.stdout.lock().unwrap().clone();
    let setup = printed.iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_owned()));
    let setup = setup.expect("the setup URL is printed");
    let setup_path = format!("/setup/{}", setup.trim().rsplit('/').next().unwrap());
    let invite_path = invite(gw, "carol", "vendor-test");
    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    let flow = json!({
        "base_url": base,
        "admin": { "setup_path": setup_path, "user": "admin", "password": PASSWORD },
        "vendor": { "invite_path": invite_path, "user": "carol", "password": PASSWORD },
        "node": "gpu-01",
        "marker": "zebra-quartz",
        "screenshots": std::env::var("PORTCULLIS_SCREENSHOTS").ok(),
    });
    let report = run_flow_script("admin_flow.mjs", &flow);

    // Watching: the vendor's output reached the admin at once, and the vendor saw nothing of it.
    let latency = report["watch_latency_ms"].as_f64().unwrap_or_else(|| panic!("no latency: {report}"));
    eprintln!("watch latency (vendor Enter → admin's screen): {latency:.0} ms");
    assert!(latency < 2000.0, "the watcher saw the output after {latency} ms");
    assert_eq!(report["vendor_text_before"], report["vendor_text_after"], "the vendor's page changed: {report}");
    let closed = report["vendor_closed_message"].as_str().unwrap_or_default();
    assert!(closed.contains("session closed by gateway"), "the vendor's close is generic: {closed:?}");

    // The recording played while it ran: its slider reached past the start and grew, and
    // the playing player showed what the vendor printed next.
    let first = report["running_seek_max"].as_f64().unwrap_or_default();
    let later = report["running_seek_max_later"].as_f64().unwrap_or_default();
    assert!(first > 0.0 && later > first, "the running recording's slider: {first} then {later}");
    let shown = report["running_player_text"].as_str().unwrap_or_default();
    assert!(shown.contains("zebra-quartz-42"), "the running recording's player:\n{shown}");
    let follow = report["running_follow_ms"].as_f64().unwrap_or_else(|| panic!("no follow time: {report}"));
    eprintln!("a running recording's player showed new output {follow:.0} ms after the vendor's Enter");
    assert_eq!(report["running_player_state"], "playing", "{report}");
    // Once killed, the followed recording played to its end there and stopped growing.
    let (end, still) = (report["ended_seek_max"].as_f64(), report["ended_seek_max_later"].as_f64());
    assert!(end.is_some_and(|e| e > later) && end == still, "after the end: {end:?} then {still:?}");
    let shown_at_end = report["ended_time"].as_f64().unwrap_or(-1.0);
    assert!((shown_at_end - end.unwrap_or_default()).abs() < 0.01, "the time shown at the end: {report}");
    let last = report["ended_text"].as_str().unwrap_or_default();
    assert!(last.contains("zebra-quartz-later-6"), "the followed recording at its end:\n{last}");

    // Search and replay: the hit opens the player where the word is on screen; the end plays.
    // The hit may be the typed command's line or its output's: either shows the word.
    let at_hit = report["player_text_at_hit"].as_str().unwrap_or_default();
    assert!(at_hit.contains("zebra-quartz"), "the player at the hit:\n{at_hit}\n{report}");
    // The vendor saw the close only once the recording was finished, so it has an end.
    let duration = report["player_duration"].as_f64().unwrap_or_default();
    assert!(duration > 0.0, "the player opened a recording without an end: {report}");
    let at_end = report["player_text_at_end"].as_str().unwrap_or_default();
    assert!(at_end.contains("zebra-quartz-42"), "the player at the end:\n{at_end}");
    let recording = gw.ctl_json(&["recordings", "ls", "--user", "carol"]);
    assert!(recording.iter().any(|r| r["complete"] == true), "{recording:?}");

    // The audit page shows an intact chain and what the admin did.
    assert_eq!(report["audit_chain_ok"], true, "{report}");
    let types = report["audit_types"].to_string();
    assert!(types.contains("session.kill") && types.contains("session.observe"), "{types}");

    // The management pages did what they show: an invite, a lock, pinned keys, a token, roles.
    let shown = report["invite_url_shown"].as_str().unwrap_or_default();
    assert!(shown.contains("/invite/"), "{report}");
    let users = gw.ctl_json(&["users", "ls"]);
    assert!(users.iter().any(|u| u["name"] == "dave" && u["locked"] == true), "{users:?}");
    assert!(report["admin_nodes"]["gpu-01"].as_str().is_some_and(|k| k.starts_with("SHA256:")), "{report}");
    assert!(report["admin_nodes"].get("gpu-02").is_some(), "a manager sees every node: {report}");
    assert!(report["token_shown"].as_str().is_some_and(|t| t.starts_with("pcj1.")), "{report}");
    assert_eq!(gw.ctl_json(&["tokens", "ls"]).len(), 1);
    assert!(report["roles_listed"].to_string().contains("vendor-test"), "{report}");

    // Every admin path answers the vendor like an unknown one.
    let statuses = report["vendor_admin_status"].as_object().expect("statuses");
    assert!(statuses.len() >= 10, "{report}");
    for (path, status) in statuses {
        assert_eq!(status, 404, "{path}: {report}");
        assert_eq!(report["vendor_admin_same_as_unknown"][path], true, "{path}: {report}");
    }
}
