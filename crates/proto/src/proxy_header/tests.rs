use super::*;

fn done(buf: &[u8]) -> (ProxyHeader, usize) {
    match parse(buf) {
        Ok(Parsed::Done { header, consumed }) => (header, consumed),
        other => panic!("expected a header, got {other:?}"),
    }
}

fn addr(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap())
}

fn malformed(buf: &[u8]) -> bool {
    matches!(parse(buf), Err(ProxyHeaderError::Malformed(_)))
}

#[test]
fn v1_tcp4() {
    let buf = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nSSH-2.0-x\r\n";
    let (header, consumed) = done(buf);
    assert_eq!(header.source, addr("192.0.2.1:56324"));
    assert_eq!(header.destination, addr("198.51.100.7:443"));
    assert_eq!(&buf[consumed..], b"SSH-2.0-x\r\n");
}

#[test]
fn v1_tcp6() {
    let buf = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    let (header, consumed) = done(buf);
    assert_eq!(header.source, addr("[2001:db8::1]:65535"));
    assert_eq!(header.destination, addr("[::1]:0"));
    assert_eq!(consumed, buf.len());
}

#[test]
fn v1_unknown() {
    for buf in [&b"PROXY UNKNOWN\r\n"[..], b"PROXY UNKNOWN ffff::1 ::1 1 2\r\nrest"] {
        let (header, consumed) = done(buf);
        assert_eq!(header, ProxyHeader::default());
        assert_eq!(&buf[consumed - 2..consumed], b"\r\n");
    }
}

#[test]
fn v1_truncated_is_incomplete() {
    let full = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
    for len in 0..full.len() {
        assert_eq!(parse(&full[..len]), Ok(Parsed::Incomplete), "{len}");
    }
}

#[test]
fn v1_longest_header_fits() {
    let buf =
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(buf.len(), V1_MAX_LEN - 3);
    assert_eq!(done(buf).1, buf.len());
    let mut unknown = b"PROXY UNKNOWN ".to_vec();
    unknown.resize(V1_MAX_LEN - 2, b'x');
    unknown.extend_from_slice(b"\r\n");
    assert_eq!(done(&unknown).1, V1_MAX_LEN);
}

#[test]
fn v1_oversized() {
    let mut buf = b"PROXY UNKNOWN ".to_vec();
    buf.resize(V1_MAX_LEN, b'x');
    assert_eq!(parse(&buf), Err(ProxyHeaderError::TooLong));
    buf.extend_from_slice(b"\r\n");
    assert_eq!(parse(&buf), Err(ProxyHeaderError::TooLong));
    assert_eq!(parse(&buf[..V1_MAX_LEN - 1]), Ok(Parsed::Incomplete));
}

#[test]
fn wrong_signature() {
    assert_eq!(parse(b"PROXX TCP4"), Err(ProxyHeaderError::BadSignature));
    assert_eq!(parse(b"proxy TCP4"), Err(ProxyHeaderError::BadSignature));
    assert_eq!(parse(b"SSH-2.0-x\r\n"), Err(ProxyHeaderError::BadSignature));
    assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX\n"), Err(ProxyHeaderError::BadSignature));
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PROXY"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete));
}

#[test]
fn v1_bad_address() {
    assert!(malformed(b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"));
    assert!(malformed(b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.01 192.0.2.2 1 2\r\n"));
    assert!(malformed(b"PROXY TCP4 localhost 192.0.2.2 1 2\r\n"));
    assert!(malformed(b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"));
}

#[test]
fn v1_bad_syntax() {
    assert!(malformed(b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"));
    assert!(malformed(b"PROXY \r\n"));
    assert!(malformed(b"PROXY TCP4 192.0.2.1 192.0.2.\xff 1 2\r\n"));
}

#[test]
fn v1_bad_port() {
    for port in ["65536", "-1", "+1", "01", "", "1a", "99999999999999999999"] {
        let buf = format!("PROXY TCP4 192.0.2.1 192.0.2.2 {port} 22\r\n");
        assert!(malformed(buf.as_bytes()), "{port:?}");
    }
}

const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap().to_be_bytes();
    [SIG, &[ver_cmd, fam], &len, body].concat()
}

const V4_BODY: &[u8] = b"\xc0\x00\x02\x01\xc6\x33\x64\x07\xdc\x04\x01\xbb";

#[test]
fn v2_ipv4() {
    let buf = v2(0x21, 0x11, V4_BODY);
    assert_eq!(buf.len(), 28);
    let (header, consumed) = done(&buf);
    assert_eq!(header.source, addr("192.0.2.1:56324"));
    assert_eq!(header.destination, addr("198.51.100.7:443"));
    assert_eq!(consumed, 28);
}

#[test]
fn v2_ipv6() {
    let mut body = vec![0x20, 0x01, 0x0d, 0xb8];
    body.resize(15, 0);
    body.push(1); // 2001:db8::1
    body.resize(31, 0);
    body.push(1); // ::1
    body.extend_from_slice(b"\x00\x16\x00\x50");
    let (header, consumed) = done(&v2(0x21, 0x21, &body));
    assert_eq!(header.source, addr("[2001:db8::1]:22"));
    assert_eq!(header.destination, addr("[::1]:80"));
    assert_eq!(consumed, 16 + 36);
}

#[test]
fn v2_local_and_unspec() {
    let (header, consumed) = done(&v2(0x20, 0x00, b""));
    assert_eq!((header, consumed), (ProxyHeader::default(), 16));
    // LOCAL ignores whatever family and body a proxy sends.
    let (header, consumed) = done(&v2(0x20, 0x11, V4_BODY));
    assert_eq!((header, consumed), (ProxyHeader::default(), 28));
    let (header, consumed) = done(&v2(0x21, 0x00, b"\x01\x00\x00"));
    assert_eq!((header, consumed), (ProxyHeader::default(), 19));
    let (header, consumed) = done(&v2(0x21, 0x31, &[b'/'; 216]));
    assert_eq!((header, consumed), (ProxyHeader::default(), 16 + 216));
}

#[test]
fn v2_with_tlvs() {
    // PP2_TYPE_ALPN "h2", then PP2_TYPE_NOOP with three bytes of padding.
    let body = [V4_BODY, b"\x01\x00\x02h2", b"\x04\x00\x03\0\0\0"].concat();
    let (header, consumed) = done(&v2(0x21, 0x11, &body));
    assert_eq!(header.source, addr("192.0.2.1:56324"));
    assert_eq!(consumed, 16 + 12 + 5 + 6);
    let broken = [V4_BODY, b"\x01\x00\x05h2"].concat();
    assert!(malformed(&v2(0x21, 0x11, &broken)));
    let stub = [V4_BODY, b"\x01\x00"].concat();
    assert!(malformed(&v2(0x21, 0x11, &stub)));
}

#[test]
fn v2_truncated_is_incomplete() {
    let body = [V4_BODY, b"\x01\x00\x02h2"].concat();
    let full = v2(0x21, 0x11, &body);
    for len in 0..full.len() {
        assert_eq!(parse(&full[..len]), Ok(Parsed::Incomplete), "{len}");
    }
}

#[test]
fn v2_wrong_version_and_command() {
    let err = |buf: &[u8]| parse(buf).unwrap_err();
    assert_eq!(err(&v2(0x11, 0x11, V4_BODY)), ProxyHeaderError::UnsupportedVersion);
    assert_eq!(err(&v2(0x31, 0x11, V4_BODY)), ProxyHeaderError::UnsupportedVersion);
    assert_eq!(err(&[SIG, b"\x11"].concat()), ProxyHeaderError::UnsupportedVersion);
    assert_eq!(err(&v2(0x22, 0x11, V4_BODY)), ProxyHeaderError::UnsupportedCommand(2));
    assert_eq!(err(&v2(0x21, 0x12, V4_BODY)), ProxyHeaderError::UnsupportedFamily(0x12));
    assert!(malformed(&v2(0x21, 0x41, V4_BODY)));
    assert!(malformed(&v2(0x21, 0x11, &V4_BODY[..11])));
    assert!(malformed(&v2(0x21, 0x21, V4_BODY)));
}

#[test]
fn v2_trailing_payload_not_consumed() {
    let buf = [v2(0x21, 0x11, V4_BODY), b"SSH-2.0-x\r\n".to_vec()].concat();
    let (_, consumed) = done(&buf);
    assert_eq!(&buf[consumed..], b"SSH-2.0-x\r\n");
}

#[test]
fn encode_round_trips() {
    let pairs = [
        ("192.0.2.1:56324", "198.51.100.7:443"),
        ("[2001:db8::1]:22", "[::1]:0"),
        ("0.0.0.0:0", "255.255.255.255:65535"),
    ];
    for (src, dst) in pairs {
        let (src, dst) = (addr(src).unwrap(), addr(dst).unwrap());
        for encoded in [encode_v1(src, dst), encode_v2(src, dst)] {
            let (header, consumed) = done(&encoded);
            assert_eq!((header.source, header.destination), (Some(src), Some(dst)));
            assert_eq!(consumed, encoded.len());
        }
    }
    assert_eq!(
        encode_v1(addr("192.0.2.1:1").unwrap(), addr("192.0.2.2:2").unwrap()),
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"
    );
    assert_eq!(encode_v2(addr("192.0.2.1:56324").unwrap(), addr("198.51.100.7:443").unwrap()), v2(0x21, 0x11, V4_BODY));
}

#[test]
fn encode_mixed_families_as_ipv6() {
    let (src, dst) = (addr("192.0.2.1:1").unwrap(), addr("[::1]:2").unwrap());
    let mapped = addr("[::ffff:192.0.2.1]:1");
    for encoded in [encode_v1(src, dst), encode_v2(src, dst)] {
        let (header, _) = done(&encoded);
        assert_eq!((header.source, header.destination), (mapped, Some(dst)));
    }
}
