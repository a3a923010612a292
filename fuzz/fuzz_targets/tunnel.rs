//! Agent joins: the join token and the two JSON join lines read back what they write.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proto::tunnel::{JoinRequest, JoinResponse, JoinToken, MAX_JOIN_LINE};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(&data[..data.len().min(MAX_JOIN_LINE)]);
    if let Ok(token) = JoinToken::parse(&text) {
        assert_eq!(token.encode(), text.trim());
        assert_eq!(JoinToken::parse(&token.encode()), Ok(token.clone()));
        if !token.pin.contains(&token.secret) {
            assert!(!format!("{token:?}").contains(&token.secret), "Debug shows the secret");
        }
    }
    if let Ok(request) = serde_json::from_str::<JoinRequest>(&text) {
        let line = serde_json::to_string(&request).expect("a request serializes");
        assert_eq!(serde_json::from_str::<JoinRequest>(&line).expect("our line reads back"), request);
    }
    if let Ok(response) = serde_json::from_str::<JoinResponse>(&text) {
        let line = response.to_line();
        assert!(!line.contains('\n'), "a join line is one line");
        assert_eq!(serde_json::from_str::<JoinResponse>(&line).expect("our line reads back"), response);
    }
});
