//! Which address a web request comes from, for roles and audit.
//!
//! The connection's client is the TCP peer, or the source a trusted proxy put in a PROXY
//! header. When that client is itself a trusted proxy (nginx in front), the last hop of
//! its `X-Forwarded-For` is the client: the address that proxy saw and appended
//! (`$proxy_add_x_forwarded_for`). Earlier hops are whatever the client sent and are
//! never believed. Anyone else's `X-Forwarded-For` is ignored.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// A trusted proxy sent an `X-Forwarded-For` that is not a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed X-Forwarded-For from a trusted proxy")]
pub struct BadForwardedFor;

/// The request's client address; `forwarded_for` holds every `X-Forwarded-For` header value in order.
pub fn client_address(
    connection_client: IpAddr,
    forwarded_for: &[&str],
    trusted: &[IpNet],
) -> Result<IpAddr, BadForwardedFor> {
    if !trusted.iter().any(|net| net.contains(&connection_client)) {
        return Ok(connection_client);
    }
    let last = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).rfind(|e| !e.is_empty());
    match last {
        None => Ok(connection_client),
        Some(hop) => parse_hop(hop).ok_or(BadForwardedFor),
    }
}

/// One hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:5678`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)))
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so `source_cidrs` written for IPv4 match.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_clients_headers_are_ignored() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(client_address(ip("203.0.113.9"), &["10.0.0.1"], &trusted), Ok(ip("203.0.113.9")));
        assert_eq!(client_address(ip("203.0.113.9"), &["garbage"], &trusted), Ok(ip("203.0.113.9")));
        assert_eq!(client_address(ip("127.0.0.1"), &["10.0.0.1"], &[]), Ok(ip("127.0.0.1")));
    }

    #[test]
    fn a_trusted_proxy_names_the_last_hop() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(client_address(ip("127.0.0.1"), &["198.51.100.7"], &trusted), Ok(ip("198.51.100.7")));
        // The client may send its own header; nginx appends the address it saw, which wins.
        assert_eq!(client_address(ip("127.0.0.1"), &["10.9.9.9, 198.51.100.7"], &trusted), Ok(ip("198.51.100.7")));
        assert_eq!(client_address(ip("127.0.0.1"), &["10.9.9.9", "198.51.100.7"], &trusted), Ok(ip("198.51.100.7")));
        assert_eq!(client_address(ip("127.0.0.1"), &[], &trusted), Ok(ip("127.0.0.1")));
        assert_eq!(client_address(ip("127.0.0.1"), &[" "], &trusted), Ok(ip("127.0.0.1")));
    }

    #[test]
    fn only_the_last_hop_is_believed() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // A client on a trusted address cannot pass off an earlier hop as itself.
        assert_eq!(client_address(ip("127.0.0.1"), &["6.6.6.6, 127.0.0.1"], &trusted), Ok(ip("127.0.0.1")));
        assert_eq!(client_address(ip("127.0.0.1"), &["192.0.2.1, 10.0.0.2"], &trusted), Ok(ip("10.0.0.2")));
        // Garbage the client put first does not matter.
        assert_eq!(client_address(ip("127.0.0.1"), &["garbage, 198.51.100.7"], &trusted), Ok(ip("198.51.100.7")));
    }

    #[test]
    fn hop_forms_and_mapped_addresses() {
        let trusted = nets(&["::1/128", "127.0.0.1/32"]);
        for (hop, want) in [
            ("198.51.100.7:4242", "198.51.100.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4242", "2001:db8::1"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            assert_eq!(client_address(ip("::1"), &[hop], &trusted), Ok(ip(want)), "{hop}");
        }
    }

    #[test]
    fn malformed_headers_from_a_trusted_proxy_are_refused() {
        let trusted = nets(&["127.0.0.1/32"]);
        for bad in ["unknown", "198.51.100.7, nope", "1.2.3.4.5", "[::1"] {
            assert_eq!(client_address(ip("127.0.0.1"), &[bad], &trusted), Err(BadForwardedFor), "{bad}");
        }
    }
}
