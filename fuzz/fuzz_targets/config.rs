//! The gateway's config loader: any TOML text is a validated config or an error, never a
//! panic, and what it accepts keeps the documented limits. Needs `--features config`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = Config::parse(text) else { return };
    let listen = &config.listen;
    assert!(!listen.handshake_timeout.is_zero() && listen.handshake_timeout.as_secs() <= 600);
    assert!((1..=listen.max_connections).contains(&listen.max_connections_per_source));
    assert!(config.recordings.max_bytes >= 4096);
    for (i, node) in config.nodes.iter().enumerate() {
        assert!(portcullis_proto::name::is_valid(&node.name), "{:?}", node.name);
        assert!(config.nodes[..i].iter().all(|n| n.name != node.name), "{:?} twice", node.name);
    }
});
