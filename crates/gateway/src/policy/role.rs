//! A role: checked from one `[[role]]` table, then matched against nodes and clients.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::permission::Permission;

/// A checked role: which nodes and logins it reaches, what it allows, and from where.
///
/// Everything a role leaves out is denied: no `nodes` selects no node, no `logins`
/// reaches no login, no `allow` permits nothing, and no `source_cidrs` means the role
/// applies from nowhere (write `["0.0.0.0/0", "::/0"]` for everywhere). `record`
/// left out means recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    name: String,
    nodes: BTreeMap<String, String>,
    logins: Vec<String>,
    allow: Vec<Permission>,
    record: bool,
    source_cidrs: Vec<IpNet>,
    max_session: Option<Duration>,
}

/// One `[[role]]` table as written, before any checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    name: String,
    #[serde(default)]
    nodes: BTreeMap<String, String>,
    #[serde(default)]
    logins: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default = "recorded_unless_said")]
    record: bool,
    #[serde(default)]
    source_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_session: Option<String>,
}

fn recorded_unless_said() -> bool {
    true
}

impl Role {
    /// The role's name, unique among roles.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label selector: every entry must match a node's labels.
    pub fn nodes(&self) -> &BTreeMap<String, String> {
        &self.nodes
    }

    /// The logins this role reaches on the nodes it selects, in preference order.
    pub fn logins(&self) -> &[String] {
        &self.logins
    }

    /// The permissions this role grants.
    pub fn allow(&self) -> &[Permission] {
        &self.allow
    }

    /// Whether sessions under this role are recorded.
    pub fn record(&self) -> bool {
        self.record
    }

    /// Client networks this role applies from; outside them it grants nothing.
    pub fn source_cidrs(&self) -> &[IpNet] {
        &self.source_cidrs
    }

    /// The longest a session under this role may last, if limited.
    pub fn max_session(&self) -> Option<Duration> {
        self.max_session
    }

    /// Whether this role grants `perm` (wherever it applies).
    pub fn allows(&self, perm: Permission) -> bool {
        self.allow.contains(&perm)
    }

    /// Whether this role applies to a client at `client`.
    pub fn applies_from(&self, client: IpAddr) -> bool {
        // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; judge the IPv4 address.
        let client = client.to_canonical();
        self.source_cidrs.iter().any(|net| net.contains(&client))
    }

    /// Whether the selector matches a node with these labels; an empty selector matches none.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nodes.is_empty()
            && self.nodes.iter().all(|(key, value)| match (key.as_str(), value.as_str()) {
                ("*", _) => true,
                (_, "*") => labels.contains_key(key),
                _ => labels.get(key) == Some(value),
            })
    }

    /// Checks a role as written; errors name the role and the key.
    pub(super) fn check(raw: RawRole) -> anyhow::Result<Role> {
        let name = raw.name;
        if !valid_name(&name) {
            bail!("role {name:?}: name: use one or more of a-z 0-9 _ . -");
        }
        for (key, value) in &raw.nodes {
            if key.is_empty() {
                bail!("role {name:?}: nodes: empty label name");
            }
            if key == "*" && value != "*" {
                bail!("role {name:?}: nodes: \"*\" takes only \"*\" (all nodes), not {value:?}");
            }
        }
        let mut logins: Vec<String> = Vec::new();
        for login in raw.logins {
            if !valid_login(&login) {
                bail!(
                    "role {name:?}: logins: {login:?} is not a login name (no wildcards; use a-z A-Z 0-9 _ . -, not starting with -)"
                );
            }
            if !logins.contains(&login) {
                logins.push(login);
            }
        }
        let mut allow: Vec<Permission> = Vec::new();
        for perm in &raw.allow {
            let perm: Permission = perm.parse().map_err(|err| anyhow!("role {name:?}: allow: {err}"))?;
            if !allow.contains(&perm) {
                allow.push(perm);
            }
        }
        let source_cidrs = raw
            .source_cidrs
            .iter()
            .map(|text| parse_net(text).ok_or_else(|| anyhow!("role {name:?}: source_cidrs: invalid CIDR {text:?}")))
            .collect::<anyhow::Result<Vec<IpNet>>>()?;
        let max_session = match raw.max_session.as_deref() {
            None => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => bail!("role {name:?}: max_session: must be longer than zero"),
                Err(err) => bail!("role {name:?}: max_session: invalid duration {text:?}: {err}"),
            },
        };
        Ok(Role { name, nodes: raw.nodes, logins, allow, record: raw.record, source_cidrs, max_session })
    }
}

impl From<&Role> for RawRole {
    fn from(role: &Role) -> RawRole {
        RawRole {
            name: role.name.clone(),
            nodes: role.nodes.clone(),
            logins: role.logins.clone(),
            allow: role.allow.iter().map(|p| p.as_str().to_owned()).collect(),
            record: role.record,
            source_cidrs: role.source_cidrs.iter().map(IpNet::to_string).collect(),
            max_session: role.max_session.map(|d| humantime::format_duration(d).to_string()),
        }
    }
}

/// Serialized as written in TOML, so JSON and TOML show the same keys and values.
impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawRole::from(self).serialize(serializer)
    }
}

/// Deserialized through the same checks as [`parse_roles_toml`].
impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRole::deserialize(deserializer)?;
        Role::check(raw).map_err(serde::de::Error::custom)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && !login.starts_with('-')
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A network in CIDR form; a bare address means that one host.
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{builtin_roles, parse_roles_toml};

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn builtin_roles_are_the_design_roles() {
        use Permission::*;
        let expected = vec![
            Role {
                name: "restricted-dev".into(),
                nodes: labels(&[("gpu", "h800")]),
                logins: vec!["vendor".into()],
                allow: vec![Shell, Exec, FileTransfer],
                record: true,
                source_cidrs: vec![net("0.0.0.0/0"), net("::/0")],
                max_session: Some(Duration::from_secs(8 * 3600)),
            },
            Role {
                name: "admin".into(),
                nodes: labels(&[("*", "*")]),
                logins: vec!["root".into(), "ubuntu".into()],
                allow: vec![
                    Shell,
                    Exec,
                    FileTransfer,
                    PortForward,
                    RecordingsRead,
                    AuditRead,
                    SessionsObserve,
                    SessionsKill,
                    UsersManage,
                    NodesManage,
                    RolesManage,
                ],
                record: false,
                source_cidrs: vec![net("127.0.0.0/8"), net("::1/128"), net("100.64.0.0/10")],
                max_session: None,
            },
        ];
        assert_eq!(builtin_roles(), expected);
    }

    #[test]
    fn left_out_keys_deny_but_record() {
        let role = &parse_roles_toml("[[role]]\nname = \"bare\"\n").unwrap()[0];
        assert!(role.record());
        assert!(role.logins().is_empty() && role.allow().is_empty());
        assert!(!role.selects(&labels(&[])));
        assert!(!role.applies_from("127.0.0.1".parse().unwrap()));
        assert_eq!(role.max_session(), None);
    }

    #[test]
    fn selector_matching() {
        let cases: &[(&[(&str, &str)], &[(&str, &str)], bool)] = &[
            (&[("*", "*")], &[], true),
            (&[("*", "*")], &[("gpu", "a100")], true),
            (&[("gpu", "h800")], &[("gpu", "h800"), ("rack", "3")], true),
            (&[("gpu", "h800")], &[("gpu", "a100")], false),
            (&[("gpu", "h800")], &[], false),
            (&[("gpu", "*")], &[("gpu", "a100")], true),
            (&[("gpu", "*")], &[("rack", "3")], false),
            (&[("gpu", "*"), ("rack", "3")], &[("gpu", "a100"), ("rack", "4")], false),
            (&[("*", "*"), ("rack", "3")], &[("rack", "3")], true),
            (&[("*", "*"), ("rack", "3")], &[("gpu", "a100")], false),
            (&[], &[("gpu", "h800")], false),
        ];
        for (selector, node, want) in cases {
            let mut role = builtin_roles().remove(0);
            role.nodes = labels(selector);
            assert_eq!(role.selects(&labels(node)), *want, "{selector:?} on {node:?}");
        }
    }

    #[test]
    fn source_cidrs_judge_mapped_ipv4_as_ipv4() {
        let admin = &builtin_roles()[1];
        let cases = [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("100.100.1.1", true),
            ("203.0.113.9", false),
            ("::ffff:203.0.113.9", false),
            ("2001:db8::1", false),
        ];
        for (client, want) in cases {
            assert_eq!(admin.applies_from(client.parse().unwrap()), want, "{client}");
        }
    }
}
