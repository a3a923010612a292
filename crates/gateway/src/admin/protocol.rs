//! The admin socket's wire format: one JSON request line, one JSON response line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::AuditFilter;

/// Largest request line accepted (a role file or a public key fits easily).
pub const MAX_REQUEST: usize = 1 << 20;

/// What `portcullis ctl` asks the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Counters and addresses.
    Status,
    /// Create a user and print a one-time invite URL.
    UsersAdd {
        /// User name.
        name: String,
        /// Role names.
        roles: Vec<String>,
        /// Account lifetime (humantime, e.g. `72h`).
        ttl: Option<String>,
    },
    /// List users.
    UsersLs,
    /// Remove a user.
    UsersRm {
        /// User name.
        name: String,
    },
    /// Lock a user.
    UsersLock {
        /// User name.
        name: String,
    },
    /// Unlock a user.
    UsersUnlock {
        /// User name.
        name: String,
    },
    /// End a user's account now: their sessions end within the expiry check's interval.
    UsersExpire {
        /// User name.
        name: String,
    },
    /// Forget a user's TOTP secret and print a one-time URL to enroll again.
    UsersResetTotp {
        /// User name.
        name: String,
    },
    /// Register an OpenSSH public key for a user.
    UsersAddKey {
        /// User name.
        name: String,
        /// One `authorized_keys` line.
        key: String,
    },
    /// List roles.
    RolesLs,
    /// Show one role as TOML.
    RolesShow {
        /// Role name.
        name: String,
    },
    /// Add or replace roles from a TOML file's text.
    RolesApply {
        /// `[[role]]` tables.
        toml: String,
    },
    /// List nodes.
    NodesLs,
    /// Add an agentless node.
    NodesAdd {
        /// Node name.
        name: String,
        /// `host:port` of its sshd.
        addr: String,
        /// Static labels.
        labels: BTreeMap<String, String>,
    },
    /// Remove a node.
    NodesRm {
        /// Node name.
        name: String,
    },
    /// Forget a node's pinned host key; the next contact pins anew.
    NodesRepin {
        /// Node name.
        name: String,
    },
    /// Replace a node's static labels (an agent's inventory labels stay).
    NodesLabel {
        /// Node name.
        name: String,
        /// The new static labels.
        labels: BTreeMap<String, String>,
    },
    /// List sessions (newest first).
    SessionsLs {
        /// Only live ones.
        active: bool,
    },
    /// End a live session; its user sees a generic close.
    SessionsKill {
        /// Session id.
        id: String,
    },
    /// Stream a live session's output (after the response line, raw bytes until it ends).
    SessionsWatch {
        /// Session id.
        id: String,
    },
    /// List recordings.
    RecordingsLs {
        /// Only this user's.
        user: Option<String>,
        /// Only this node's.
        node: Option<String>,
        /// Only those started at or after this RFC 3339 time.
        since: Option<String>,
        /// Only those whose output contains this text (ANSI stripped).
        grep: Option<String>,
        /// Most rows.
        limit: Option<i64>,
    },
    /// Stream a recording's .cast file (after the response line, raw bytes).
    RecordingsGet {
        /// Recording id.
        id: String,
    },
    /// Make a one-time agent join token (it pins this gateway's TLS certificate).
    TokensCreate {
        /// Lifetime (humantime), default 1h.
        ttl: Option<String>,
        /// Labels a node joining with it gets.
        labels: BTreeMap<String, String>,
    },
    /// List join tokens.
    TokensLs,
    /// Revoke a join token by the id `tokens ls` shows.
    TokensRevoke {
        /// Token id.
        id: String,
    },
    /// Print a CA public key in OpenSSH form.
    CaExport {
        /// `user` or `host`.
        kind: String,
    },
    /// List audit events.
    AuditLs {
        /// Filters.
        filter: AuditFilter,
        /// Most events returned (newest ones).
        limit: Option<i64>,
    },
    /// Verify the audit hash chain.
    AuditVerify,
}

/// The gateway's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// What went wrong, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Column names, in display order, for a listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Rows of a listing, keyed by column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Free text (a URL, a key, a TOML document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Response {
    /// A failure with a message.
    pub fn error(message: impl Into<String>) -> Response {
        Response { ok: false, error: Some(message.into()), ..Default::default() }
    }

    /// A success carrying text.
    pub fn text(text: impl Into<String>) -> Response {
        Response { ok: true, text: Some(text.into()), ..Default::default() }
    }

    /// A success carrying a table; each row must serialize to an object with these columns.
    pub fn table<T: Serialize>(columns: &[&str], rows: &[T]) -> anyhow::Result<Response> {
        let rows = rows
            .iter()
            .map(|row| match serde_json::to_value(row)? {
                serde_json::Value::Object(map) => Ok(map),
                other => anyhow::bail!("row is not an object: {other}"),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Response { ok: true, columns: columns.iter().map(|c| c.to_string()).collect(), rows, ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_reject_unknown_fields() {
        let req = Request::UsersAdd { name: "v".into(), roles: vec!["restricted-dev".into()], ttl: Some("72h".into()) };
        let line = serde_json::to_string(&req).unwrap();
        assert!(line.contains(r#""cmd":"users_add""#), "{line}");
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(matches!(back, Request::UsersAdd { ref name, .. } if name == "v"));
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"users_rm","name":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format_disk"}"#).is_err());
    }

    #[test]
    fn table_rows_keep_columns() {
        #[derive(Serialize)]
        struct Row {
            a: u8,
            b: &'static str,
        }
        let r = Response::table(&["a", "b"], &[Row { a: 1, b: "x" }]).unwrap();
        assert_eq!(r.rows[0]["b"], "x");
        assert_eq!(r.columns, ["a", "b"]);
    }
}
