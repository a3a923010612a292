//! The admin console's recordings API end to end: a real vendor SSH session is listed,
//! found by a word it printed while it still runs, sought into by keyframe, downloaded
//! byte for byte; vendors and strangers get the common 404 on every path.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::lab::Lab;
use crate::support::{eventually, ssh_base};
use crate::web::client::{Answer, Browser};
use crate::web::{add_user, redeem};

/// A shell session on gpu-01 with a terminal: a line, a clear screen, the word, then
/// ticks for a few seconds, then quiet until it ends (about 25 s in all).
const SESSION: &str = "echo before-$((1+1)); sleep 1; printf '\\033[2J\\033[H'; echo quetzal$((40+2)) appears; \
     for i in 1 2 3 4 5 6 7; do echo tick-$i; sleep 1; done; sleep 15; echo bye";

fn hits(answer: &Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["hits"].as_array().unwrap().clone()
}

fn same_as(answer: &Answer, unknown: &Answer, what: &str) {
    assert_eq!((answer.status, &answer.body), (404, &unknown.body), "{what}");
    let stable = |a: &Answer| {
        let mut headers: Vec<_> = a.headers.iter().filter(|(n, _)| n != "date").cloned().collect();
        headers.sort();
        headers
    };
    assert_eq!(stable(answer), stable(unknown), "{what}");
}

#[test]
fn admins_list_search_seek_and_download_recordings_and_nobody_else_sees_them() {
    let lab = Lab::start("", "");
    let gw = &lab.gw;
    let setup = gw.stdout.lock().unwrap().iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_owned()));
    let admin = redeem(gw, &setup.expect("the setup URL is printed")).browser;
    let vendor_web = add_user(gw, "acme", "vendor-test", None).browser;

    let mut session = ssh_base(&lab.vendor_key, gw.addr.port())
        .arg("-tt")
        .arg(format!("{}@127.0.0.1", lab.target("gpu-01")))
        .arg(SESSION)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();

    // Listed at once; found by its word while it still runs.
    let mut id = String::new();
    eventually("the running recording listed", Duration::from_secs(15), || {
        let list = admin.get("/api/recordings?user=vendor&node=gpu-01");
        let rows = list.json()["recordings"].as_array().cloned().unwrap_or_default();
        if let [row] = rows.as_slice() {
            id = row["id"].as_str().unwrap().to_owned();
        }
        !id.is_empty()
    });
    let mut found = Vec::new();
    eventually("the word searchable in the running session", Duration::from_secs(20), || {
        found = hits(&admin.get("/api/recordings/search?q=QUETZAL42"));
        !found.is_empty()
    });
    let live_for = began.elapsed();
    assert!(session.try_wait().unwrap().is_none(), "the session ended before its word was found");
    eprintln!("a word printed at ~1 s was searchable {live_for:?} after the session began");
    assert_eq!(found.len(), 1, "{found:?}");
    let hit = &found[0];
    assert_eq!((hit["recording_id"].as_str(), hit["user"].as_str()), (Some(id.as_str()), Some("vendor")));
    assert_eq!(hit["node"], "gpu-01");
    assert_eq!(hit["line"], "quetzal42 appears");
    let t = hit["t"].as_f64().unwrap();
    assert!((0.5..8.0).contains(&t), "printed after a second's sleep: t = {t}");
    let running = admin.get(&format!("/api/recordings/{id}")).json();
    assert_eq!((running["end"].clone(), running["duration"].clone()), (Value::Null, Value::Null));

    // Followed while it runs: an answer is complete up to its `through`, which is no later
    // than the present, so asking on from there once it ended (as the player does) loses
    // no event and repeats none.
    let written = running["written"].as_f64().unwrap_or_else(|| panic!("how much is written: {running}"));
    let live = admin.get(&format!("/api/recordings/{id}/frames?from=0&until=1000")).json();
    let age = began.elapsed().as_secs_f64();
    assert!(written <= age, "{written} s written of a session {age} s old");
    let through = live["through"].as_f64().unwrap_or_else(|| panic!("no through: {live}"));
    assert!(through <= age && live["end"] == false, "through {through} s of a session {age} s old: {live}");
    let live_events = live["events"].as_array().unwrap().clone();
    assert!(!live_events.is_empty() && live_events.iter().all(|e| e[0].as_f64().unwrap() <= through), "{live}");

    // Quiet after its last tick (15 s of it): once that is written out, nothing is left
    // unwritten, and `written` keeps up with the present through the silence, no further
    // than the session's age.
    eventually("the last tick in the recording", Duration::from_secs(30), || {
        let frames = admin.get(&format!("/api/recordings/{id}/frames?from=0&until=1000")).json();
        frames["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e[2].as_str().is_some_and(|o| o.contains("tick-7"))))
    });
    std::thread::sleep(Duration::from_secs(1));
    let written_at = |admin: &Browser| admin.get(&format!("/api/recordings/{id}")).json()["written"].as_f64();
    let first = written_at(&admin).expect("still running");
    std::thread::sleep(Duration::from_millis(1500));
    let second = written_at(&admin).expect("still running");
    let age = began.elapsed().as_secs_f64();
    assert!(second - first >= 1.4 && second <= age, "written {first} then {second} s, 1.5 s apart, at {age} s");
    eprintln!("written {second:.3} s of a session {age:.3} s old (the ssh connection took the rest)");

    let status = session.wait().unwrap();
    assert!(status.success(), "{status:?}");
    eventually("the recording complete and fully indexed", Duration::from_secs(20), || {
        let row = admin.get(&format!("/api/recordings/{id}")).json();
        row["complete"] == true && !hits(&admin.get("/api/recordings/search?q=bye")).is_empty()
    });

    let ended = admin.get(&format!("/api/recordings/{id}")).json();
    assert_eq!(ended["written"], Value::Null, "{ended}");
    let rest = admin.get(&format!("/api/recordings/{id}/frames?from={through}&until=1000&events_only=true")).json();
    assert_eq!(rest["end"], true, "{rest}");
    let whole = admin.get(&format!("/api/recordings/{id}/frames?from=0&until=1000")).json();
    let followed: Vec<Value> = live_events.iter().chain(rest["events"].as_array().unwrap()).cloned().collect();
    assert_eq!(&followed, whole["events"].as_array().unwrap(), "followed while running, then after");
    assert!(followed.iter().any(|e| e[2].as_str().is_some_and(|o| o.contains("bye"))), "{whole}");

    // Filters and keyset paging, with a second, shorter recording.
    let out = lab.exec(&lab.vendor_key, "gpu-01", "echo second-one");
    assert!(out.status.success());
    let page = admin.get("/api/recordings?user=vendor&limit=1");
    let page = page.json();
    let newest = page["recordings"][0]["id"].as_str().unwrap().to_owned();
    assert_ne!(newest, id, "newest first");
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let second = admin.get(&format!("/api/recordings?user=vendor&limit=1&cursor={cursor}")).json();
    assert_eq!(second["recordings"][0]["id"], id.as_str());
    assert_eq!(second["next_cursor"], Value::Null);
    let row = &second["recordings"][0];
    assert_eq!(
        (row["user"].as_str(), row["node"].as_str(), row["complete"].as_bool()),
        (Some("vendor"), Some("gpu-01"), Some(true))
    );
    assert!(row["duration"].as_f64().unwrap() >= 20.0, "{row}");
    for (query, expect) in [
        ("user=ops", 0),
        ("node=gpu-02", 0),
        ("since=2999-01-01T00:00:00Z", 0),
        ("until=2000-01-01T00:00:00%2B02:00", 0),
        ("since=2000-01-01T00:00:00Z&complete=true&user=vendor", 2),
        ("complete=false", 0),
    ] {
        let list = admin.get(&format!("/api/recordings?{query}"));
        assert_eq!(list.json()["recordings"].as_array().unwrap().len(), expect, "{query}: {list:?}");
    }
    for bad in ["cursor=nonsense", "since=yesterday", "limit=0", "complete=maybe"] {
        assert_eq!(admin.get(&format!("/api/recordings?{bad}")).status, 400, "{bad}");
    }
    assert_eq!(admin.get("/api/recordings/search?q=%22%2A").status, 400, "no word to search for");
    assert!(hits(&admin.get("/api/recordings/search?q=NEAR%28quetzal42%20OR")).is_empty());

    // Details, and seeking: before the first keyframe the events carry the word; from a
    // keyframe the screen does (the clear screen removed the line before it).
    let on_disk = walk(&gw.data_dir.join("recordings")).into_iter().find(|p| p.ends_with(format!("{id}.cast")));
    let on_disk = std::fs::read(on_disk.expect("the recording's file")).unwrap();
    let header: Value = serde_json::from_slice(on_disk.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let details = admin.get(&format!("/api/recordings/{id}")).json();
    assert_eq!((&details["width"], &details["height"]), (&header["width"], &header["height"]), "{details}");
    let keyframes: Vec<f64> = details["keyframes"].as_array().unwrap().iter().map(|k| k.as_f64().unwrap()).collect();
    assert!(!keyframes.is_empty() && keyframes.iter().all(|k| *k >= 5.0), "{keyframes:?}");
    let frames = admin.get(&format!("/api/recordings/{id}/frames?from={t}&until={}", t + 0.5)).json();
    assert_eq!(frames["start"], 0.0, "no keyframe before 5 s: {frames}");
    // ssh -tt without a terminal asks for 0x0; the screen is emulated at 80x24 then.
    assert_eq!((frames["cols"].as_u64(), frames["rows"].as_u64()), (Some(80), Some(24)));
    let events = frames["events"].as_array().unwrap();
    let output: String = events.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().unwrap()).collect();
    assert!(output.contains("quetzal42") && output.contains("\u{1b}[2J"), "{output:?}");
    assert!(events.iter().all(|e| e[0].as_f64().unwrap() <= t + 0.5));
    let k = keyframes[0];
    let seek = admin.get(&format!("/api/recordings/{id}/frames?from={}&until={}", k + 0.1, k + 3.0)).json();
    assert_eq!(seek["start"].as_f64(), Some(k));
    assert_eq!((seek["cols"].as_u64(), seek["rows"].as_u64()), (Some(80), Some(24)));
    let screen = seek["screen"].as_str().unwrap();
    assert!(screen.contains("quetzal42") && screen.contains("tick-") && !screen.contains("before-2"), "{screen:?}");
    assert!(seek["events"].as_array().unwrap().iter().all(|e| e[0].as_f64().unwrap() > k));
    assert_eq!(seek["end"], false);
    let rest = admin.get(&format!("/api/recordings/{id}/frames?from={k}&until=1000&events_only=true")).json();
    assert_eq!((rest["screen"].as_str(), rest["end"].as_bool()), (Some(""), Some(true)), "{rest}");
    let rest_output: String = rest["events"].as_array().unwrap().iter().map(|e| e[2].as_str().unwrap()).collect();
    assert!(rest_output.contains("bye") && !rest_output.contains("quetzal42"), "{rest_output:?}");

    // The download is the file on disk, byte for byte, and reading it is audited.
    let copy = gw.dir.path().join("download.cast");
    let download = admin.download(&format!("/api/recordings/{id}/cast"), &copy);
    assert_eq!(download.status, 200, "{download:?}");
    assert_eq!(download.header("content-disposition"), Some(format!("attachment; filename=\"{id}.cast\"").as_str()));
    assert_eq!(std::fs::read(&copy).unwrap(), on_disk);
    let reads = gw.audit("recording.read");
    assert!(
        reads.iter().any(|e| e["recording"] == id.as_str() && e["actor"] == "admin" && e["read"] == "cast"),
        "{reads:?}"
    );

    // Every path answers a vendor and a stranger like a path that does not exist; an
    // unknown id answers the admin the same.
    let unknown = vendor_web.get("/api/nonexistent");
    let paths = [
        "/api/recordings".to_owned(),
        "/api/recordings/search?q=quetzal42".to_owned(),
        "/api/recordings/search".to_owned(),
        format!("/api/recordings/{id}"),
        format!("/api/recordings/{id}/cast"),
        format!("/api/recordings/{id}/frames?from=0"),
        "/api/recordings?cursor=nonsense".to_owned(),
    ];
    for path in &paths {
        for browser in [&vendor_web, &Browser::new(gw)] {
            same_as(&browser.get(path), &unknown, path);
            same_as(&browser.post(path, None), &unknown, &format!("POST {path}"));
        }
    }
    for path in [
        "/api/recordings/0123456789abcdef0123456789abcdef",
        "/api/recordings/nothex/cast",
        "/api/recordings/%2e%2e%2fetc/frames",
    ] {
        same_as(&admin.get(path), &unknown, path);
    }
    let list = admin.get("/api/recordings").json();
    assert_eq!(list["recordings"].as_array().unwrap().len(), 2, "search is not taken for an id: {list}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let out = Command::new("find").arg(dir).args(["-type", "f"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(Into::into).collect()
}
