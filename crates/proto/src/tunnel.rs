//! Agent tunnels: the join token and the join exchange, as plain data.
//!
//! An agent dials the gateway's shared port with TLS and ALPN [`ALPN`]. Without a client
//! certificate it may only join: it sends one [`JoinRequest`] line and reads one
//! [`JoinResponse`] line, then closes. With the client certificate the join issued, the
//! same TLS connection carries SSH, the agent being the server: every session is a
//! `direct-tcpip` channel to [`SESSION_HOST`], inside which the gateway runs a second,
//! end-to-end SSH connection that logs in with a user-CA certificate for one login.
//!
//! A tunnel starts idle, without SSH, which would cost the gateway ~95 KiB per tunnel:
//! the gateway sends [`IDLE_PING`] every [`IDLE_PING_EVERY`], the agent answers
//! [`IDLE_PONG`], and either side drops a tunnel it has not heard from in time. The
//! gateway wakes it for the first session by starting SSH: its identification line
//! (`SSH-2.0-…`, never a ping) tells the agent to start its SSH server. Late pongs reach
//! the gateway's SSH client as lines before the server's identification, which SSH
//! allows and skips (RFC 4253 §4.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// ALPN protocol id of agent tunnels.
pub const ALPN: &str = "portcullis-agent/1";
/// Host name the gateway opens `direct-tcpip` channels to for one session.
pub const SESSION_HOST: &str = "portcullis-session";
/// Longest join line either side accepts.
pub const MAX_JOIN_LINE: usize = 64 * 1024;
/// What the gateway sends an idle tunnel.
pub const IDLE_PING: &[u8] = b"ping\n";
/// What the agent answers.
pub const IDLE_PONG: &[u8] = b"pong\n";
/// How often the gateway pings an idle tunnel; it drops one that answered no ping since
/// the previous one.
pub const IDLE_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
/// How long an idle agent waits for a ping before it counts the tunnel as dead.
pub const IDLE_SILENCE_MAX: std::time::Duration = std::time::Duration::from_secs(65);

/// A one-time join token: a secret and the pin of the gateway's TLS certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The secret the gateway stores a hash of.
    pub secret: String,
    /// Lower-case hex SHA-256 of the gateway's TLS certificate (DER).
    pub pin: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("JoinToken").field("secret", &"<redacted>").field("pin", &self.pin).finish()
    }
}

/// Why a token string is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a portcullis join token (expected pcj1.SECRET.PIN)")]
pub struct BadToken;

impl JoinToken {
    /// `pcj1.SECRET.PIN`.
    pub fn encode(&self) -> String {
        format!("pcj1.{}.{}", self.secret, self.pin)
    }

    /// Parses `pcj1.SECRET.PIN`.
    pub fn parse(text: &str) -> Result<JoinToken, BadToken> {
        let mut parts = text.trim().split('.');
        let (Some("pcj1"), Some(secret), Some(pin), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadToken);
        };
        let secret_ok = (16..=128).contains(&secret.len())
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let pin_ok = pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !secret_ok || !pin_ok {
            return Err(BadToken);
        }
        Ok(JoinToken { secret: secret.to_string(), pin: pin.to_string() })
    }
}

/// What a joining agent sends, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The token's secret.
    pub token: String,
    /// The node name asked for.
    pub name: String,
    /// Labels the agent reports (GPU inventory and the like); the token's labels win.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The agent's SSH host key (OpenSSH public key line), pinned by the gateway.
    pub host_key: String,
}

/// The gateway's answer to a join, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case", deny_unknown_fields)]
pub enum JoinResponse {
    /// Joined: the identity to reconnect with.
    Joined {
        /// The node's name.
        node: String,
        /// Client certificate (PEM) for mutual TLS from now on.
        cert_pem: String,
        /// Its private key (PEM).
        key_pem: String,
        /// The gateway's SSH user CA (OpenSSH public key line): session logins are certificates from it.
        user_ca: String,
    },
    /// Refused; the reason is safe to show.
    Refused {
        /// Why.
        reason: String,
    },
}

impl JoinResponse {
    /// One JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("join response serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = JoinToken { secret: "a".repeat(43), pin: "0f".repeat(32) };
        assert_eq!(JoinToken::parse(&token.encode()), Ok(token.clone()));
        assert_eq!(JoinToken::parse(&format!("  {}\n", token.encode())), Ok(token));
        for bad in [
            "",
            "pcj1",
            "pcj2.aaaaaaaaaaaaaaaaaaaa.0f0f",
            &format!("pcj1.{}.{}", "a".repeat(20), "0F".repeat(32)),
            &format!("pcj1.{}.{}", "a b".repeat(10), "0f".repeat(32)),
            &format!("pcj1.{}.{}.x", "a".repeat(20), "0f".repeat(32)),
            &format!("pcj1.short.{}", "0f".repeat(32)),
        ] {
            assert_eq!(JoinToken::parse(bad), Err(BadToken), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = JoinToken { secret: "s3cr3t-s3cr3t-s3cr3t".into(), pin: "0f".repeat(32) };
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    #[test]
    fn join_messages_are_tagged_json_lines() {
        let refused = JoinResponse::Refused { reason: "token expired".into() };
        let line = refused.to_line();
        assert_eq!(line, r#"{"result":"refused","reason":"token expired"}"#);
        assert_eq!(serde_json::from_str::<JoinResponse>(&line).unwrap(), refused);
        let request = r#"{"token":"t","name":"gpu-01","host_key":"ssh-ed25519 AAAA"}"#;
        let parsed: JoinRequest = serde_json::from_str(request).unwrap();
        assert!(parsed.labels.is_empty());
        assert!(serde_json::from_str::<JoinRequest>(r#"{"token":"t","name":"n","host_key":"k","x":1}"#).is_err());
    }
}
