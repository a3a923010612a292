//! Permissions a role grants, and the session actions that need them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A right a role grants, named in role TOML by [`Permission::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// An interactive shell on a node.
    Shell,
    /// A single command on a node (`ssh node cmd`).
    Exec,
    /// scp and sftp to and from a node.
    FileTransfer,
    /// TCP port forwarding through a session.
    PortForward,
    /// SSH agent forwarding into a node.
    AgentForward,
    /// X11 forwarding from a node.
    X11,
    /// Listing, playing and exporting recordings.
    RecordingsRead,
    /// Listing and verifying the audit log.
    AuditRead,
    /// Watching another user's live session.
    SessionsObserve,
    /// Ending another user's live session.
    SessionsKill,
    /// Adding, removing, locking and inviting users.
    UsersManage,
    /// Adding and removing nodes and join tokens.
    NodesManage,
    /// Applying roles.
    RolesManage,
}

impl Permission {
    /// Every permission, in the order DESIGN.md lists them.
    pub const ALL: [Permission; 13] = [
        Permission::Shell,
        Permission::Exec,
        Permission::FileTransfer,
        Permission::PortForward,
        Permission::AgentForward,
        Permission::X11,
        Permission::RecordingsRead,
        Permission::AuditRead,
        Permission::SessionsObserve,
        Permission::SessionsKill,
        Permission::UsersManage,
        Permission::NodesManage,
        Permission::RolesManage,
    ];

    /// The name used in role TOML and the API, e.g. `recordings.read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Shell => "shell",
            Permission::Exec => "exec",
            Permission::FileTransfer => "file_transfer",
            Permission::PortForward => "port_forward",
            Permission::AgentForward => "agent_forward",
            Permission::X11 => "x11",
            Permission::RecordingsRead => "recordings.read",
            Permission::AuditRead => "audit.read",
            Permission::SessionsObserve => "sessions.observe",
            Permission::SessionsKill => "sessions.kill",
            Permission::UsersManage => "users.manage",
            Permission::NodesManage => "nodes.manage",
            Permission::RolesManage => "roles.manage",
        }
    }
}

/// A permission name that no [`Permission`] has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Something a user does in a session on a node; each needs one [`Permission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// An interactive shell.
    Shell,
    /// A single command.
    Exec,
    /// scp or sftp.
    FileTransfer,
    /// A TCP port forward.
    PortForward,
    /// SSH agent forwarding.
    AgentForward,
    /// X11 forwarding.
    X11,
}

impl Action {
    /// Every session action.
    pub const ALL: [Action; 6] =
        [Action::Shell, Action::Exec, Action::FileTransfer, Action::PortForward, Action::AgentForward, Action::X11];

    /// The permission a role must allow for this action.
    pub fn permission(self) -> Permission {
        match self {
            Action::Shell => Permission::Shell,
            Action::Exec => Permission::Exec,
            Action::FileTransfer => Permission::FileTransfer,
            Action::PortForward => Permission::PortForward,
            Action::AgentForward => Permission::AgentForward,
            Action::X11 => Permission::X11,
        }
    }

    /// The action's name, the same as its permission's.
    pub fn as_str(self) -> &'static str {
        self.permission().as_str()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for perm in Permission::ALL {
            assert_eq!(perm.as_str().parse::<Permission>(), Ok(perm));
        }
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Permission>(), Ok(action.permission()));
        }
    }

    #[test]
    fn names_are_the_design_names() {
        let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "shell",
                "exec",
                "file_transfer",
                "port_forward",
                "agent_forward",
                "x11",
                "recordings.read",
                "audit.read",
                "sessions.observe",
                "sessions.kill",
                "users.manage",
                "nodes.manage",
                "roles.manage",
            ]
        );
    }

    #[test]
    fn unknown_name_is_named_in_the_error() {
        let err = "sudo".parse::<Permission>().unwrap_err();
        assert_eq!(err, UnknownPermission("sudo".into()));
        assert_eq!(err.to_string(), "unknown permission \"sudo\"");
    }

    #[test]
    fn serde_uses_the_names() {
        let json = serde_json::to_string(&Permission::RecordingsRead).unwrap();
        assert_eq!(json, "\"recordings.read\"");
        let back: Permission = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Permission::RecordingsRead);
        assert!(serde_json::from_str::<Permission>("\"root\"").is_err());
    }
}
