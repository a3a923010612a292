//! The web terminal's text frames: anything is a clamped resize or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::web_terminal::{ClientMessage, MAX_DIMENSION, MAX_MESSAGE, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(MAX_MESSAGE)]) else { return };
    if let Ok(message) = ClientMessage::parse(text) {
        let ClientMessage::Resize { cols, rows } = message;
        assert!((1..=MAX_DIMENSION).contains(&cols) && (1..=MAX_DIMENSION).contains(&rows), "{message:?}");
        let line = serde_json::to_string(&message).expect("a message serializes");
        assert_eq!(ClientMessage::parse(&line), Ok(message));
    }
    // What the browser reads back: the gateway's own messages.
    if let Ok(message) = serde_json::from_str::<ServerMessage>(text) {
        assert_eq!(serde_json::from_str::<ServerMessage>(&message.to_json()).expect("reads back"), message);
    }
});
