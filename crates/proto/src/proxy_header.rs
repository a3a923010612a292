//! PROXY protocol v1 and v2 headers (haproxy's proxy-protocol.txt).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::sniff::PROXY_V2_SIGNATURE;

/// Longest v1 header, CRLF included.
pub const V1_MAX_LEN: usize = 107;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED_LEN: usize = 16;

/// The original endpoints a proxy reported for the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// The client's address; `None` for v1 UNKNOWN, v2 LOCAL, AF_UNSPEC or AF_UNIX.
    pub source: Option<SocketAddr>,
    /// The address the client connected to; `None` when `source` is.
    pub destination: Option<SocketAddr>,
}

/// The outcome of parsing the bytes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The header is not complete yet; read more and parse again.
    Incomplete,
    /// The header, and how many bytes it took; the rest is the proxied stream.
    Done {
        /// The parsed header.
        header: ProxyHeader,
        /// The header's length in bytes.
        consumed: usize,
    },
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither the v1 nor the v2 signature.
    #[error("not a PROXY protocol header")]
    BadSignature,
    /// A v1 header with no CRLF within 107 bytes.
    #[error("PROXY v1 header longer than {V1_MAX_LEN} bytes")]
    TooLong,
    /// A v2 header with a version other than 2.
    #[error("unsupported PROXY protocol version")]
    UnsupportedVersion,
    /// A v2 header with a command other than LOCAL or PROXY.
    #[error("unsupported PROXY v2 command {0:#x}")]
    UnsupportedCommand(u8),
    /// A v2 address family or transport we do not relay (e.g. UDP).
    #[error("unsupported PROXY v2 family/transport {0:#04x}")]
    UnsupportedFamily(u8),
    /// Syntax that breaks the spec.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Parses a v1 or v2 header at the start of `buf`; bytes after it are left alone.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.starts_with(&PROXY_V2_SIGNATURE) {
        parse_v2(buf)
    } else if buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if PROXY_V2_SIGNATURE.starts_with(buf) || V1_PREFIX.starts_with(buf) {
        Ok(Parsed::Incomplete)
    } else {
        Err(ProxyHeaderError::BadSignature)
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX_LEN { Err(ProxyHeaderError::TooLong) } else { Ok(Parsed::Incomplete) };
    };
    if window[lf - 1] != b'\r' {
        return Err(ProxyHeaderError::Malformed("line must end with CRLF"));
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1])
        .map_err(|_| ProxyHeaderError::Malformed("non-ASCII bytes"))?;
    let header = parse_v1_line(line)?;
    Ok(Parsed::Done { header, consumed: lf + 1 })
}

fn parse_v1_line(line: &str) -> Result<ProxyHeader, ProxyHeaderError> {
    use ProxyHeaderError::Malformed;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        // The spec has receivers ignore whatever follows UNKNOWN.
        return Ok(ProxyHeader::default());
    }
    let mut parts = line.split(' ');
    let mut next = || parts.next().ok_or(Malformed("too few fields"));
    let (family, src, dst, sport, dport) = (next()?, next()?, next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err(Malformed("too many fields"));
    }
    let (src, dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (parse_ip::<Ipv4Addr>(src)?.into(), parse_ip::<Ipv4Addr>(dst)?.into()),
        "TCP6" => (parse_ip::<Ipv6Addr>(src)?.into(), parse_ip::<Ipv6Addr>(dst)?.into()),
        _ => return Err(Malformed("protocol must be TCP4, TCP6 or UNKNOWN")),
    };
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(src, parse_port(sport)?)),
        destination: Some(SocketAddr::new(dst, parse_port(dport)?)),
    })
}

fn parse_ip<T: std::str::FromStr>(text: &str) -> Result<T, ProxyHeaderError> {
    text.parse().map_err(|_| ProxyHeaderError::Malformed("address does not match protocol family"))
}

/// Decimal 0..=65535, no sign, no leading zeros.
fn parse_port(text: &str) -> Result<u16, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed("bad port");
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let sig = PROXY_V2_SIGNATURE.len();
    if let Some(&ver_cmd) = buf.get(sig) {
        if ver_cmd >> 4 != 2 {
            return Err(ProxyHeaderError::UnsupportedVersion);
        }
        if ver_cmd & 0x0f > 1 {
            return Err(ProxyHeaderError::UnsupportedCommand(ver_cmd & 0x0f));
        }
    }
    if buf.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete);
    }
    let local = buf[sig] & 0x0f == 0;
    let fam = buf[sig + 1];
    let len = usize::from(u16::from_be_bytes([buf[sig + 2], buf[sig + 3]]));
    let consumed = V2_FIXED_LEN + len;
    let Some(body) = buf.get(V2_FIXED_LEN..consumed) else {
        return Ok(Parsed::Incomplete);
    };
    let (addr_len, header) = match (local, fam) {
        // LOCAL: the proxy's own connection (e.g. a health check); the body is ignored.
        (true, _) => (len, ProxyHeader::default()),
        (false, 0x00) => (0, ProxyHeader::default()),
        (false, 0x11) => (12, v2_inet(body, 4)?),
        (false, 0x21) => (36, v2_inet(body, 16)?),
        (false, 0x31) => (216, ProxyHeader::default()),
        (false, f) if f >> 4 > 3 || f & 0x0f > 2 => {
            return Err(ProxyHeaderError::Malformed("unknown address family or transport"));
        }
        (false, f) => return Err(ProxyHeaderError::UnsupportedFamily(f)),
    };
    if body.len() < addr_len {
        return Err(ProxyHeaderError::Malformed("length shorter than addresses"));
    }
    if !local {
        check_tlvs(&body[addr_len..])?;
    }
    Ok(Parsed::Done { header, consumed })
}

/// Reads `src dst sport dport` for an address of `n` bytes (4 or 16).
fn v2_inet(body: &[u8], n: usize) -> Result<ProxyHeader, ProxyHeaderError> {
    let Some(block) = body.get(..2 * n + 4) else {
        return Err(ProxyHeaderError::Malformed("length shorter than addresses"));
    };
    let ip = |bytes: &[u8]| -> IpAddr {
        match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes).map(IpAddr::from),
            _ => <[u8; 16]>::try_from(bytes).map(IpAddr::from),
        }
        .expect("slice length fixed by n")
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    Ok(ProxyHeader {
        source: Some(SocketAddr::new(ip(&block[..n]), port(2 * n))),
        destination: Some(SocketAddr::new(ip(&block[n..2 * n]), port(2 * n + 2))),
    })
}

/// TLVs are skipped, but they must tile the rest of the header exactly.
fn check_tlvs(mut rest: &[u8]) -> Result<(), ProxyHeaderError> {
    while !rest.is_empty() {
        let [_, hi, lo, ..] = *rest else {
            return Err(ProxyHeaderError::Malformed("truncated TLV"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest.get(end..).ok_or(ProxyHeaderError::Malformed("truncated TLV"))?;
    }
    Ok(())
}

/// Both addresses in one family: IPv4 pairs stay IPv4, mixed pairs become IPv6.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (IpAddr, IpAddr) {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (s.into(), d.into()),
        (s, d) => (to_v6(s).into(), to_v6(d).into()),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Builds a v1 header; a mixed IPv4/IPv6 pair is sent as TCP6 with mapped addresses.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(src, dst);
    let family = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {family} {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
}

/// Builds a v2 PROXY/STREAM header without TLVs; mixed pairs are sent as IPv6.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (fam, addrs): (u8, Vec<u8>) = match same_family(src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (0x11, [s.octets(), d.octets()].concat()),
        (s, d) => (0x21, [to_v6(s).octets(), to_v6(d).octets()].concat()),
    };
    let len = u16::try_from(addrs.len() + 4).expect("at most 36 bytes");
    let mut out = PROXY_V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, fam]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&addrs);
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests;
