//! Roles files: `[[role]]` tables in TOML, read into checked roles and written back.

use anyhow::{anyhow, bail};
use serde::Deserialize;

use super::role::{RawRole, Role};

/// The two roles every gateway has from its first start, exactly as DESIGN.md shows them.
pub const BUILTIN_ROLES_TOML: &str = r#"[[role]]
name = "restricted-dev"
nodes = { gpu = "h800" }            # label selector; "*" matches all
logins = ["vendor"]
allow = ["shell", "exec", "file_transfer"]
record = true                       # sessions recorded
source_cidrs = ["0.0.0.0/0", "::/0"]
max_session = "8h"

[[role]]
name = "admin"
nodes = { "*" = "*" }
logins = ["root", "ubuntu"]
allow = ["shell", "exec", "file_transfer", "port_forward", "recordings.read", "audit.read", "sessions.observe", "sessions.kill", "users.manage", "nodes.manage", "roles.manage"]
record = false
source_cidrs = ["127.0.0.0/8", "::1/128", "100.64.0.0/10"]
"#;

/// A roles file as written: `[[role]]` tables and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    role: Vec<RawRole>,
}

/// Parses and checks a roles file (`[[role]]` tables); role names must be unique.
pub fn parse_roles_toml(text: &str) -> anyhow::Result<Vec<Role>> {
    let file: RawFile = toml::from_str(text).map_err(|err| match culprit(text) {
        Some(role) => anyhow!("role {role}: {err}"),
        None => anyhow!("{err}"),
    })?;
    let mut roles: Vec<Role> = Vec::with_capacity(file.role.len());
    for raw in file.role {
        let role = Role::check(raw)?;
        if roles.iter().any(|r| r.name() == role.name()) {
            bail!("role {:?}: defined more than once", role.name());
        }
        roles.push(role);
    }
    Ok(roles)
}

/// The role whose table broke parsing, so the error names it beside toml's line and column.
fn culprit(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let roles = table.get("role")?.as_array()?;
    roles.iter().enumerate().find_map(|(i, value)| {
        let broken = value.clone().try_into::<RawRole>().is_err();
        broken.then(|| match value.get("name").and_then(|n| n.as_str()) {
            Some(name) => format!("{name:?}"),
            None => format!("#{}", i + 1),
        })
    })
}

/// Keys in the order DESIGN.md writes them; `to_toml` puts any others after these.
const KEY_ORDER: [&str; 7] = ["name", "nodes", "logins", "allow", "record", "source_cidrs", "max_session"];

/// Writes roles as a roles file that [`parse_roles_toml`] reads back equal.
pub fn to_toml(roles: &[Role]) -> String {
    let mut out = String::new();
    for role in roles {
        // A role serializes to strings, lists, a string map and a bool, which TOML always holds.
        let table = toml::Table::try_from(role).expect("a role is a TOML table");
        let rest = table.keys().filter(|key| !KEY_ORDER.contains(&key.as_str()));
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("[[role]]\n");
        for key in KEY_ORDER.iter().copied().chain(rest.map(String::as_str)) {
            if let Some(value) = table.get(key) {
                // A value displays inline, so `nodes` reads `{ gpu = "h800" }` as in DESIGN.md.
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    out
}

/// The built-in roles, parsed from [`BUILTIN_ROLES_TOML`].
pub fn builtin_roles() -> Vec<Role> {
    parse_roles_toml(BUILTIN_ROLES_TOML).expect("built-in roles are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml_and_json() {
        let mut roles = builtin_roles();
        roles.extend(
            parse_roles_toml(
                r#"
                [[role]]
                name = "bare"

                [[role]]
                name = "odd.one_2"
                nodes = { rack = "*", gpu = "a100", "gpu.model" = "H800 \"SXM\"" }
                logins = ["ml-user"]
                allow = ["x11", "agent_forward"]
                source_cidrs = ["10.1.2.3", "fd00::/8"]
                max_session = "1h 30m"
                "#,
            )
            .unwrap(),
        );
        let text = to_toml(&roles);
        assert_eq!(parse_roles_toml(&text).unwrap(), roles, "{text}");
        let json = serde_json::to_string(&roles).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Role>>(&json).unwrap(), roles, "{json}");
    }

    #[test]
    fn bad_roles_are_errors_naming_role_and_key() {
        let cases = [
            ("name = \"x\"\ncolour = \"red\"", &["role \"x\"", "colour", "line 3"][..]),
            ("name = \"x\"\nsource_cidrs = [\"10.0.0.0/33\"]", &["role \"x\"", "source_cidrs", "10.0.0.0/33"]),
            ("name = \"x\"\nallow = [\"shell\", \"sudo\"]", &["role \"x\"", "allow", "sudo"]),
            ("name = \"x\"\nmax_session = \"forever\"", &["role \"x\"", "max_session", "forever"]),
            ("name = \"x\"\nmax_session = \"0s\"", &["role \"x\"", "max_session"]),
            ("name = \"X y\"", &["role \"X y\"", "name"]),
            ("name = \"\"", &["name"]),
            ("name = \"x\"\nlogins = [\"*\"]", &["role \"x\"", "logins", "\"*\""]),
            ("name = \"x\"\nlogins = [\"-oProxyCommand\"]", &["role \"x\"", "logins"]),
            ("name = \"x\"\nnodes = { \"*\" = \"h800\" }", &["role \"x\"", "nodes"]),
            ("name = \"x\"\nrecord = \"yes\"", &["role \"x\"", "record", "line 3"]),
            ("logins = []", &["role #1", "name"]),
            ("name = \"x\"\n[[role]]\nname = \"x\"", &["role \"x\"", "more than once"]),
        ];
        for (body, needles) in cases {
            let text = format!("[[role]]\n{body}\n");
            let err = parse_roles_toml(&text).unwrap_err().to_string();
            for needle in needles {
                assert!(err.contains(needle), "{body:?}: {err:?} lacks {needle:?}");
            }
        }
        let err = parse_roles_toml("[[roles]]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("roles"), "{err}");
    }
}
