//! Local accounts: `/etc/passwd` and `/etc/group` as plain text, then NSS through `getent`
//! and `id` for directory users (LDAP, SSSD) common on clusters.

use std::path::PathBuf;

use crate::unix::Credentials;

/// One account a session may run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell (`/bin/sh` when the entry names none).
    pub shell: PathBuf,
}

impl Account {
    /// `PATH` for this account's sessions.
    pub fn path(&self) -> &'static str {
        if self.uid == 0 {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        } else {
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
        }
    }
}

/// Parses one `passwd(5)` line.
pub fn parse_passwd_line(line: &str) -> Option<Account> {
    let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(':').collect();
    let [name, _password, uid, gid, _gecos, home, shell] = fields[..] else { return None };
    if name.is_empty() || name.starts_with(['+', '-', '#']) {
        return None;
    }
    let shell = if shell.is_empty() { "/bin/sh" } else { shell };
    Some(Account {
        name: name.to_string(),
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        home: PathBuf::from(home),
        shell: PathBuf::from(shell),
    })
}

/// Supplementary groups of `name` from `group(5)` text, the primary `gid` first.
pub fn parse_groups(text: &str, name: &str, gid: u32) -> Vec<u32> {
    let mut groups = vec![gid];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [_group, _password, id, members] = fields[..] else { continue };
        let Ok(id) = id.parse::<u32>() else { continue };
        if members.split(',').any(|m| m.trim() == name) && !groups.contains(&id) {
            groups.push(id);
        }
    }
    groups
}

/// Whether `name` is a plausible login name (also keeps it from reading as an option to `getent`/`id`).
pub fn valid_login(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$' | b'@'))
}

/// Looks an account up by name: `/etc/passwd`, then `getent passwd`.
pub async fn by_name(name: &str) -> Option<Account> {
    if !valid_login(name) {
        return None;
    }
    let local = tokio::fs::read_to_string("/etc/passwd").await.unwrap_or_default();
    if let Some(found) = local.lines().filter_map(parse_passwd_line).find(|a| a.name == name) {
        return Some(found);
    }
    getent_passwd(name).await.filter(|a| a.name == name)
}

/// Looks an account up by user id: `/etc/passwd`, then `getent passwd`.
pub async fn by_uid(uid: u32) -> Option<Account> {
    let local = tokio::fs::read_to_string("/etc/passwd").await.unwrap_or_default();
    if let Some(found) = local.lines().filter_map(parse_passwd_line).find(|a| a.uid == uid) {
        return Some(found);
    }
    getent_passwd(&uid.to_string()).await.filter(|a| a.uid == uid)
}

/// The account the agent runs as.
pub async fn current() -> Option<Account> {
    by_uid(crate::unix::effective_uid()).await
}

/// The credentials of an account: `id -G` (NSS), else `/etc/group`.
pub async fn credentials(account: &Account) -> Credentials {
    let mut groups = vec![account.gid];
    let from_nss = run(&["id", "-G", "--", &account.name])
        .await
        .and_then(|out| out.split_whitespace().map(|g| g.parse::<u32>().ok()).collect::<Option<Vec<u32>>>());
    match from_nss {
        Some(ids) if !ids.is_empty() => groups.extend(ids.into_iter().filter(|&g| g != account.gid)),
        _ => {
            let text = tokio::fs::read_to_string("/etc/group").await.unwrap_or_default();
            groups = parse_groups(&text, &account.name, account.gid);
        }
    }
    groups.dedup();
    Credentials { uid: account.uid, gid: account.gid, groups }
}

async fn getent_passwd(key: &str) -> Option<Account> {
    let out = run(&["getent", "passwd", "--", key]).await?;
    out.lines().find_map(parse_passwd_line)
}

/// Runs a lookup tool for its standard output; any failure is `None`.
async fn run(argv: &[&str]) -> Option<String> {
    let mut command = tokio::process::Command::new(argv[0]);
    command.args(&argv[1..]).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(5), command.output()).await.ok()?.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse() {
        let root = parse_passwd_line("root:x:0:0:root:/root:/bin/bash\n").unwrap();
        assert_eq!((root.name.as_str(), root.uid, root.gid), ("root", 0, 0));
        assert_eq!(root.home, PathBuf::from("/root"));
        assert_eq!(root.shell, PathBuf::from("/bin/bash"));
        assert_eq!(root.path(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let vendor = parse_passwd_line("vendor:x:1001:1001:Vendor,,,:/home/vendor:").unwrap();
        assert_eq!(vendor.shell, PathBuf::from("/bin/sh"));
        assert!(!vendor.path().contains("sbin"));
        for bad in ["", "# comment", "+::::::", "x:x:notanumber:0::/:/bin/sh", "short:x:1:1", "a:b:1:1:c:d:e:f"] {
            assert_eq!(parse_passwd_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn groups_come_from_membership_lists_after_the_primary_group() {
        let text = "root:x:0:\nsudo:x:27:alice,bob\nvideo:x:44:bob\nusers:x:100:alice\nbroken\nbob:x:1001:\n";
        assert_eq!(parse_groups(text, "alice", 1000), vec![1000, 27, 100]);
        assert_eq!(parse_groups(text, "bob", 1001), vec![1001, 27, 44]);
        assert_eq!(parse_groups(text, "ali", 1002), vec![1002]);
    }

    #[test]
    fn login_names_are_checked_before_any_lookup() {
        for good in ["root", "vendor", "svc_gpu-01", "machine$", "first.last", "user@realm"] {
            assert!(valid_login(good), "{good}");
        }
        for bad in ["", "-n", "a b", "a:b", "a/b", "\u{e9}", &"x".repeat(65)] {
            assert!(!valid_login(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_agents_own_account_is_found() {
        let me = current().await.expect("the test user has a passwd entry");
        assert_eq!(by_name(&me.name).await, Some(me.clone()));
        let credentials = credentials(&me).await;
        assert_eq!(credentials.groups.first(), Some(&me.gid));
        assert_eq!(by_name("no-such-user-portcullis").await, None);
        assert_eq!(by_name("-x").await, None);
    }
}
