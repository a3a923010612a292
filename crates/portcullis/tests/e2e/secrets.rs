//! No secret of a run reaches a log (issue #8): one gateway, logging everything at debug
//! level, goes through a representative flow (setup, invite, sign-ins good and bad, a join
//! token and an agent joined with it, an SSH session with a user key), and then nothing it
//! printed, nothing the agent printed and no audit line may hold a password, invite or
//! setup token, TOTP secret or code, join token secret, session cookie, CSRF token, or any
//! piece of a private key.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use portcullis_proto::totp;
use serde_json::json;

use crate::support::agents::{Spawned, agent_command, apply_roles, me, online};
use crate::support::gateway::{BIN, TestGateway};
use crate::support::{eventually, ssh_base, text};
use crate::web::client::Browser;
use crate::web::{Account, PASSWORD, redeem};

/// Every module at its most verbose, the gateway's own and every library's (russh, h2,
/// rustls, sqlx): a superset of what `RUST_LOG=debug` shows.
const RUST_LOG: &str = "trace";
/// Passwords typed wrong: a user's other password may be one of these.
const WRONG_PASSWORD: &str = "Tr0ub4dor&3 is not it";

/// A secret and where it came from.
struct Secret {
    what: String,
    value: String,
    /// Matched only as a whole word (TOTP codes: six digits could be part of a longer number).
    word: bool,
}

fn secret(what: impl Into<String>, value: impl Into<String>) -> Secret {
    Secret { what: what.into(), value: value.into(), word: false }
}

/// A browser's cookie value and CSRF token.
fn session_secrets(whose: &str, browser: &Browser, out: &mut Vec<Secret>) {
    let cookie = browser.cookie.as_deref().expect("signed in");
    out.push(secret(format!("{whose}'s session cookie"), cookie.trim_start_matches("pc_session=")));
    out.push(secret(format!("{whose}'s CSRF token"), browser.csrf.clone().expect("signed in")));
}

/// An account's TOTP secret and the codes its redemption used (see `web::redeem`).
fn account_secrets(whose: &str, account: &Account, out: &mut Vec<Secret>) {
    out.push(secret(format!("{whose}'s TOTP secret"), totp::base32_encode(&account.secret)));
    for step in [account.step, account.step + 5] {
        out.push(Secret {
            what: format!("{whose}'s TOTP code of step {step}"),
            value: totp::code(&account.secret, step),
            word: true,
        });
    }
    session_secrets(whose, &account.browser, out);
}

/// 20-character pieces of every base64 body line of the private keys in `dir`, leaving out
/// pieces shared by two key files (format headers) or found in a public file (`.pub`,
/// certificates): those are not secret.
fn private_key_pieces(dir: &Path, out: &mut Vec<Secret>) -> usize {
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    let mut public = String::new();
    for entry in std::fs::read_dir(dir).expect("read the dir").flatten() {
        let Ok(body) = std::fs::read_to_string(entry.path()) else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if !body.contains("PRIVATE KEY-----") {
            public.push_str(&body);
            continue;
        }
        let pieces = body
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.is_empty())
            .flat_map(|l| l.as_bytes().chunks(20).filter(|c| c.len() == 20).map(text).collect::<Vec<_>>())
            .collect();
        keys.push((name, pieces));
    }
    let mut added = 0;
    for (name, pieces) in &keys {
        for piece in pieces {
            let shared = keys.iter().any(|(other, p)| other != name && p.contains(piece));
            if !shared && !public.contains(piece.as_str()) {
                out.push(secret(format!("private key {}/{name}", dir.display()), piece.clone()));
                added += 1;
            }
        }
    }
    added
}

/// Whether `haystack` holds `s` (a word secret only between non-alphanumerics, and not as
/// the fraction of a number such as a log timestamp's microseconds).
fn holds(haystack: &str, s: &Secret) -> bool {
    if !s.word {
        return haystack.contains(&s.value);
    }
    haystack.match_indices(&s.value).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + s.value.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '.') && !after.is_some_and(char::is_alphanumeric)
    })
}

#[test]
fn no_secret_of_a_run_reaches_a_log() {
    let gw = TestGateway::start_logged("", "", RUST_LOG);
    let mut secrets: Vec<Secret> = vec![secret("the password", PASSWORD), secret("a wrong password", WRONG_PASSWORD)];

    // The setup URL, redeemed with a password and a TOTP code.
    let printed = gw.stdout.lock().unwrap().clone();
    let setup = printed.iter().find_map(|l| l.split_once(" at ").map(|(_, u)| u.to_owned())).expect("the setup URL");
    let setup_token = setup.trim().rsplit('/').next().unwrap().to_owned();
    let admin = redeem(&gw, &setup);
    account_secrets("admin", &admin, &mut secrets);

    // An invite made on the web, redeemed; sign-ins: good, wrong password, wrong code.
    apply_roles(&gw, &[("edge", r#"site = "edge""#)]);
    let made = admin.browser.post("/api/users", Some(json!({ "name": "acme", "roles": ["edge"], "ttl": null })));
    assert_eq!(made.status, 200, "{made:?}");
    let invite = made.json()["invite_url"].as_str().unwrap().to_owned();
    let invite_token = invite.rsplit('/').next().unwrap().to_owned();
    let acme = redeem(&gw, &invite);
    account_secrets("acme", &acme, &mut secrets);
    let login = |password: &str, step: u64| {
        let code = totp::code(&acme.secret, step);
        let body = json!({ "user": "acme", "password": password, "totp_code": code });
        (Browser::new(&gw).post("/api/login", Some(body)), code)
    };
    let (wrong_password, code1) = login(WRONG_PASSWORD, acme.step + 1);
    let (wrong_code, code2) = login(PASSWORD, acme.step + 9);
    let (good, code3) = login(PASSWORD, acme.step + 1);
    assert_eq!((wrong_password.status, wrong_code.status, good.status), (401, 401, 200));
    let mut signed_in = Browser::new(&gw);
    signed_in.take_session(&good);
    session_secrets("acme's second session", &signed_in, &mut secrets);
    for (i, code) in [code1, code2, code3].into_iter().enumerate() {
        secrets.push(Secret { what: format!("acme's sign-in code #{i}"), value: code, word: true });
    }
    secrets.push(secret("the setup token", setup_token.clone()));
    secrets.push(secret("acme's invite token", invite_token));

    // A join token from the web; an agent joins with it (logging at debug too).
    let token = admin.browser.post("/api/tokens", Some(json!({ "ttl": "10m", "labels": { "site": "edge" } })));
    assert_eq!(token.status, 200, "{token:?}");
    let token = token.json()["token"].as_str().unwrap().to_owned();
    let join_secret = token.split('.').nth(1).expect("pcj1.SECRET.PIN").to_owned();
    secrets.push(secret("the join token's secret", join_secret));
    let agent_dir = gw.dir.path().join("agent-data");
    let mut cmd = agent_command(Command::new(BIN), &gw.addr.to_string(), &agent_dir, &["--name", "edge-01"]);
    cmd.env("PORTCULLIS_JOIN_TOKEN", &token).env("RUST_LOG", RUST_LOG);
    let agent = Spawned::start(cmd, &gw.dir.path().join("agent.log"));
    eventually("edge-01 online", Duration::from_secs(30), || online(&gw, "edge-01"));

    // An SSH session with a user key, through the agent.
    let key = gw.user_with_key("sshuser", "edge");
    let out =
        ssh_base(&key, gw.addr.port()).arg(format!("{}@edge-01@127.0.0.1", me())).arg("echo ok-$((6*7))").output();
    let out = out.unwrap();
    assert_eq!(text(&out.stdout), "ok-42\n", "{}", text(&out.stderr));
    let key_dir = gw.dir.path().join("user-key");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::copy(&key, key_dir.join("sshuser_ed25519")).unwrap();
    let key_pieces = [
        private_key_pieces(&gw.data_dir, &mut secrets),
        private_key_pieces(&agent_dir, &mut secrets),
        private_key_pieces(&key_dir, &mut secrets),
    ];
    assert!(key_pieces.iter().all(|&n| n > 0), "pieces of private keys to look for: {key_pieces:?}");

    // Everything written: the gateway's stdout (less the one line that shows the setup URL
    // on first start, as it must for the operator to set up the admin), its stderr, the
    // agent's output, the audit files and the audit index as `ctl` reads it.
    let stdout = gw.stdout.lock().unwrap().clone();
    let shown: Vec<&String> = stdout.iter().filter(|l| l.contains(&setup_token)).collect();
    assert_eq!(shown.len(), 1, "the setup URL is printed once: {shown:?}");
    assert!(shown[0].starts_with("first start: set up the admin account"), "{}", shown[0]);
    let stdout: Vec<&String> = stdout.iter().filter(|l| !l.starts_with("first start: ")).collect();
    let stderr = gw.stderr();
    assert!(stderr.contains(" DEBUG "), "the gateway logged at debug level: {} bytes", stderr.len());
    let agent_log = agent.output();
    assert!(agent_log.contains(" DEBUG "), "the agent logged at debug level: {agent_log}");
    let mut places: Vec<(String, String)> = vec![
        ("gateway stdout".into(), stdout.iter().map(|l| format!("{l}\n")).collect()),
        ("gateway stderr".into(), stderr),
        ("agent output".into(), agent_log),
        ("ctl audit ls --json".into(), gw.ctl_ok(&["audit", "ls", "--json"])),
    ];
    for entry in std::fs::read_dir(gw.data_dir.join("audit")).expect("the audit dir").flatten() {
        places.push((entry.path().display().to_string(), std::fs::read_to_string(entry.path()).unwrap()));
    }
    assert!(places.iter().any(|(p, t)| p.ends_with(".jsonl") && t.contains("invite.redeem")), "audit files read");
    let mut leaks = Vec::new();
    for (place, haystack) in &places {
        for s in secrets.iter().filter(|s| holds(haystack, s)) {
            let at = haystack.find(&s.value).unwrap_or(0);
            let line = haystack[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = haystack[at..].find('\n').map_or(haystack.len(), |i| at + i);
            leaks.push(format!("{} in {place}: {}", s.what, &haystack[line..end.min(line + 300)]));
        }
    }
    eprintln!(
        "looked for {} secrets ({} private key pieces) in {} places ({} bytes)",
        secrets.len(),
        key_pieces.iter().sum::<usize>(),
        places.len(),
        places.iter().map(|(_, t)| t.len()).sum::<usize>()
    );
    assert!(leaks.is_empty(), "{} secrets leaked:\n{}", leaks.len(), leaks.join("\n"));
}

#[test]
fn the_leak_check_finds_codes_as_words_only() {
    let code = Secret { what: "code".into(), value: "123456".into(), word: true };
    for haystack in ["totp_code=123456 ok", "\"123456\"", "code 123456"] {
        assert!(holds(haystack, &code), "{haystack}");
    }
    for haystack in ["2026-01-01T00:00:00.123456Z", "bytes=91234567", "id a123456b"] {
        assert!(!holds(haystack, &code), "{haystack}");
    }
    assert!(holds("xyzsecretxyz", &secret("s", "secret")));
}
