//! The web terminal's messages over its WebSocket, as plain data.
//!
//! Keystrokes (client → server) and terminal output (server → client) travel as binary
//! frames, untouched. Everything else is a JSON text frame with a `type`:
//! `{"type":"resize","cols":N,"rows":N}` from the client; `{"type":"exit","status":N}`
//! (or `"signal":"NAME"`) and `{"type":"closed","reason":"..."}` from the server.

use serde::{Deserialize, Serialize};

/// Largest WebSocket frame or message either side may send (a pasted block, a burst of output).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Close code for a message over [`MAX_MESSAGE`] (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a text frame that is no known message (RFC 6455 "unsupported data").
pub const CLOSE_UNSUPPORTED: u16 = 1003;
/// Largest terminal dimension accepted; larger asks are clamped.
pub const MAX_DIMENSION: u32 = 1000;

/// A JSON message from the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The terminal now has this many columns and rows.
    Resize {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}

/// A JSON message to the browser.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The remote process ended with a status or a signal.
    Exit {
        /// Exit status, when it exited.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        status: Option<u32>,
        /// Signal name (`TERM`, `KILL`, ...), when a signal ended it.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signal: Option<String>,
    },
    /// The session is over; `reason` is for the user and says nothing of internals.
    Closed {
        /// One line for the user.
        reason: String,
    },
}

/// Why a text frame is not a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a web terminal message")]
pub struct BadMessage;

impl ClientMessage {
    /// Parses one text frame; dimensions are clamped to `1..=MAX_DIMENSION`.
    pub fn parse(text: &str) -> Result<ClientMessage, BadMessage> {
        match serde_json::from_str(text).map_err(|_| BadMessage)? {
            ClientMessage::Resize { cols, rows } => Ok(ClientMessage::Resize { cols: clamp(cols), rows: clamp(rows) }),
        }
    }
}

impl ServerMessage {
    /// The text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize")
    }
}

/// Clamps a terminal dimension to `1..=MAX_DIMENSION`.
pub fn clamp(value: u32) -> u32 {
    value.clamp(1, MAX_DIMENSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_parses_and_clamps() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"resize","cols":100,"rows":40}"#),
            Ok(ClientMessage::Resize { cols: 100, rows: 40 })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"resize","cols":0,"rows":99999}"#),
            Ok(ClientMessage::Resize { cols: 1, rows: MAX_DIMENSION })
        );
    }

    #[test]
    fn other_text_is_refused() {
        for bad in [
            "",
            "ls\r",
            r#"{"type":"resize","cols":-1,"rows":2}"#,
            r#"{"type":"resize","cols":1}"#,
            r#"{"type":"resize","cols":1,"rows":2,"extra":3}"#,
            r#"{"type":"input","data":"x"}"#,
        ] {
            assert_eq!(ClientMessage::parse(bad), Err(BadMessage), "{bad:?}");
        }
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        assert_eq!(ServerMessage::Exit { status: Some(3), signal: None }.to_json(), r#"{"type":"exit","status":3}"#);
        assert_eq!(
            ServerMessage::Exit { status: None, signal: Some("KILL".into()) }.to_json(),
            r#"{"type":"exit","signal":"KILL"}"#
        );
        assert_eq!(
            ServerMessage::Closed { reason: "session ended".into() }.to_json(),
            r#"{"type":"closed","reason":"session ended"}"#
        );
    }
}
