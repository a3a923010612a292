//! Whether a WebSocket's `Origin` is this gateway: `https://` and one of the addresses it
//! is reached on (the listen address and every `public_addr`), default port 443.

/// Whether `origin` (the header's value) names one of `addresses` (`host:port` each) over https.
pub fn allowed(origin: &str, addresses: &[String]) -> bool {
    let Some((host, port)) = origin_host_port(origin) else { return false };
    addresses.iter().filter_map(|a| address_host_port(a)).any(|(h, p)| p == port && h.eq_ignore_ascii_case(&host))
}

/// `https://HOST[:PORT]` → (HOST, PORT); anything else (another scheme, a path, `null`) → none.
fn origin_host_port(origin: &str) -> Option<(String, u16)> {
    let rest = origin.trim().strip_prefix("https://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    split_host_port(rest, 443)
}

/// `HOST:PORT` as written in config → (HOST, PORT).
fn address_host_port(address: &str) -> Option<(String, u16)> {
    split_host_port(address.trim(), 443)
}

fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((format!("[{}]", host.to_ascii_lowercase()), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_ascii_lowercase(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((text.to_ascii_lowercase(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_gateways_own_addresses_over_https_pass() {
        let ours = addrs(&["127.0.0.1:3080", "gw.example.com:443", "[::1]:3080"]);
        for origin in [
            "https://127.0.0.1:3080",
            "https://gw.example.com",
            "https://gw.example.com:443",
            "https://GW.Example.com",
            "https://[::1]:3080",
        ] {
            assert!(allowed(origin, &ours), "{origin}");
        }
    }

    #[test]
    fn other_origins_fail() {
        let ours = addrs(&["127.0.0.1:3080", "gw.example.com:443"]);
        for origin in [
            "http://127.0.0.1:3080",
            "https://127.0.0.1:3081",
            "https://127.0.0.1",
            "https://evil.example.com",
            "https://gw.example.com.evil.example",
            "https://gw.example.com:443/path",
            "https://user@gw.example.com",
            "null",
            "",
            "https://",
        ] {
            assert!(!allowed(origin, &ours), "{origin}");
        }
    }
}
