//! PROXY protocol v1/v2: any bytes parse or fail cleanly; a parsed header's length is
//! honest; what we encode parses back to the same addresses.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use portcullis_proto::proxy_header::{Parsed, encode_v1, encode_v2, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Done { header, consumed }) = parse(data) {
        assert!(consumed <= data.len());
        assert_eq!(header.source.is_some(), header.destination.is_some());
        // The header alone parses the same, and any shorter cut of it is incomplete.
        assert_eq!(parse(&data[..consumed]), Ok(Parsed::Done { header, consumed }));
        for cut in [consumed - 1, consumed / 2, 13, 16] {
            if cut < consumed {
                assert_eq!(parse(&data[..cut]), Ok(Parsed::Incomplete), "cut at {cut} of {consumed}");
            }
        }
    }
    round_trip(data);
});

/// Two addresses from the input's first 37 bytes, encoded both ways and parsed back.
fn round_trip(data: &[u8]) {
    let mut bytes = [0u8; 37];
    let n = data.len().min(bytes.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let ip = |b: &[u8], v4: bool| -> IpAddr {
        if v4 {
            IpAddr::from(<[u8; 4]>::try_from(&b[..4]).expect("4 bytes"))
        } else {
            IpAddr::from(<[u8; 16]>::try_from(&b[..16]).expect("16 bytes"))
        }
    };
    let src = SocketAddr::new(ip(&bytes[1..17], bytes[0] & 1 == 0), u16::from_be_bytes([bytes[33], bytes[34]]));
    let dst = SocketAddr::new(ip(&bytes[17..33], bytes[0] & 2 == 0), u16::from_be_bytes([bytes[35], bytes[36]]));
    // A mixed pair travels as IPv6 with the IPv4 side mapped.
    let expect = |a: SocketAddr| match (src.is_ipv4() && dst.is_ipv4(), a.ip()) {
        (false, IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        _ => a,
    };
    for encoded in [encode_v1(src, dst), encode_v2(src, dst)] {
        let Ok(Parsed::Done { header, consumed }) = parse(&encoded) else {
            panic!("our own header does not parse: {encoded:?}");
        };
        assert_eq!(consumed, encoded.len());
        assert_eq!(header.source, Some(expect(src)), "{encoded:?}");
        assert_eq!(header.destination, Some(expect(dst)), "{encoded:?}");
    }
}
