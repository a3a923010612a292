//! Classifying the first bytes of a connection on the shared port.

/// Bytes enough for [`sniff`] to always decide.
pub const SNIFF_MAX: usize = 16;

/// The 12-byte signature that opens a PROXY protocol v2 header.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A protocol a connection can open with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// An SSH identification string (`SSH-`).
    Ssh,
    /// A TLS handshake record.
    Tls,
    /// A PROXY protocol v1 header (`PROXY `).
    ProxyV1,
    /// A PROXY protocol v2 header (binary signature).
    ProxyV2,
    /// A plain HTTP/1 request line.
    Http,
    /// None of the above.
    Unknown,
}

/// The verdict on the bytes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sniff {
    /// Not enough bytes yet to decide.
    Need,
    /// The connection speaks this protocol.
    Is(Protocol),
}

/// Literal prefixes that identify a protocol on their own.
const PREFIXES: &[(&[u8], Protocol)] = &[
    (b"SSH-", Protocol::Ssh),
    (b"PROXY ", Protocol::ProxyV1),
    (&PROXY_V2_SIGNATURE, Protocol::ProxyV2),
    (b"GET ", Protocol::Http),
    (b"HEAD ", Protocol::Http),
    (b"POST ", Protocol::Http),
    (b"PUT ", Protocol::Http),
    (b"DELETE ", Protocol::Http),
    (b"OPTIONS ", Protocol::Http),
    (b"PATCH ", Protocol::Http),
    (b"CONNECT ", Protocol::Http),
    (b"TRACE ", Protocol::Http),
];

/// Classifies `first`, the bytes a client sent before we said anything.
pub fn sniff(first: &[u8]) -> Sniff {
    if first.is_empty() {
        return Sniff::Need;
    }
    if let Some(verdict) = sniff_tls(first) {
        return verdict;
    }
    let mut could_become = false;
    for (prefix, protocol) in PREFIXES {
        if first.starts_with(prefix) {
            return Sniff::Is(*protocol);
        }
        could_become |= prefix.starts_with(first);
    }
    if could_become { Sniff::Need } else { Sniff::Is(Protocol::Unknown) }
}

/// A TLS record header: content type 0x16 (handshake), version 3.0 to 3.4.
fn sniff_tls(first: &[u8]) -> Option<Sniff> {
    match first {
        [0x16] | [0x16, 0x03] => Some(Sniff::Need),
        [0x16, 0x03, minor, ..] if *minor <= 0x04 => Some(Sniff::Is(Protocol::Tls)),
        [0x16, ..] => Some(Sniff::Is(Protocol::Unknown)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(p: Protocol) -> Sniff {
        Sniff::Is(p)
    }

    #[test]
    fn empty_needs_more() {
        assert_eq!(sniff(b""), Sniff::Need);
    }

    #[test]
    fn ssh() {
        assert_eq!(sniff(b"S"), Sniff::Need);
        assert_eq!(sniff(b"SS"), Sniff::Need);
        assert_eq!(sniff(b"SSH"), Sniff::Need);
        assert_eq!(sniff(b"SSH-"), is(Protocol::Ssh));
        assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.6\r\n"), is(Protocol::Ssh));
        assert_eq!(sniff(b"SSX"), is(Protocol::Unknown));
    }

    #[test]
    fn tls() {
        assert_eq!(sniff(b"\x16"), Sniff::Need);
        assert_eq!(sniff(b"\x16\x03"), Sniff::Need);
        assert_eq!(sniff(b"\x16\x03\x01"), is(Protocol::Tls));
        assert_eq!(sniff(b"\x16\x03\x00\x02\x00"), is(Protocol::Tls));
        assert_eq!(sniff(b"\x16\x03\x04"), is(Protocol::Tls));
        assert_eq!(sniff(b"\x16\x03\x05"), is(Protocol::Unknown));
        assert_eq!(sniff(b"\x16\x02"), is(Protocol::Unknown));
        assert_eq!(sniff(b"\x15\x03\x01"), is(Protocol::Unknown));
    }

    #[test]
    fn proxy_v1() {
        assert_eq!(sniff(b"P"), Sniff::Need);
        assert_eq!(sniff(b"PRO"), Sniff::Need);
        assert_eq!(sniff(b"PROXY"), Sniff::Need);
        assert_eq!(sniff(b"PROXY "), is(Protocol::ProxyV1));
        assert_eq!(sniff(b"PROXY TCP4 1.2.3.4"), is(Protocol::ProxyV1));
        assert_eq!(sniff(b"PROXY\r\n"), is(Protocol::Unknown));
    }

    #[test]
    fn proxy_v2() {
        assert_eq!(sniff(b"\r"), Sniff::Need);
        assert_eq!(sniff(b"\r\n\r"), Sniff::Need);
        assert_eq!(sniff(b"\r\n\r\n\0\r\nQUIT"), Sniff::Need);
        assert_eq!(sniff(b"\r\n\r\n\0\r\nQUIT\n"), is(Protocol::ProxyV2));
        assert_eq!(sniff(b"\r\n\r\n\0\r\nQUIT\n\x21\x11"), is(Protocol::ProxyV2));
        assert_eq!(sniff(b"\r\n\r\n\0\r\nQUIX"), is(Protocol::Unknown));
        assert_eq!(sniff(b"\r\n\r\n\r\n"), is(Protocol::Unknown));
    }

    #[test]
    fn http_methods() {
        for line in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"HEAD / HTTP/1.1\r\n",
            b"POST /api HTTP/1.1\r\n",
            b"PUT /x HTTP/1.1\r\n",
            b"DELETE /x HTTP/1.1\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
            b"PATCH /x HTTP/1.1\r\n",
            b"CONNECT host:443 HTTP/1.1\r\n",
            b"TRACE / HTTP/1.1\r\n",
        ] {
            assert_eq!(sniff(line), is(Protocol::Http), "{line:?}");
        }
        assert_eq!(sniff(b"GE"), Sniff::Need);
        assert_eq!(sniff(b"GET"), Sniff::Need);
        assert_eq!(sniff(b"OPTIONS"), Sniff::Need);
        assert_eq!(sniff(b"P"), Sniff::Need);
        assert_eq!(sniff(b"PA"), Sniff::Need);
        assert_eq!(sniff(b"GETX / HTTP/1.1"), is(Protocol::Unknown));
        assert_eq!(sniff(b"get / HTTP/1.1"), is(Protocol::Unknown));
    }

    #[test]
    fn unknown_bytes() {
        assert_eq!(sniff(b"\0"), is(Protocol::Unknown));
        assert_eq!(sniff(b"hello"), is(Protocol::Unknown));
        assert_eq!(sniff(b"\xff\xfe"), is(Protocol::Unknown));
    }

    #[test]
    fn sniff_max_always_decides() {
        // Any prefix of a candidate, padded with a byte no candidate has there, decides.
        let mut candidates: Vec<&[u8]> = PREFIXES.iter().map(|(p, _)| *p).collect();
        candidates.push(b"\x16\x03\x01");
        for candidate in candidates {
            assert!(candidate.len() <= SNIFF_MAX);
            for len in 0..candidate.len() {
                let mut bytes = candidate[..len].to_vec();
                bytes.resize(SNIFF_MAX, 0xff);
                assert_ne!(sniff(&bytes), Sniff::Need, "{bytes:?}");
            }
        }
    }
}
