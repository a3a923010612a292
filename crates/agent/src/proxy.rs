//! HTTP CONNECT proxies as plain data: the proxy URL, `NO_PROXY`, the request and the reply head.
//!
//! [`crate::dial`] does the I/O; everything here is pure so it can be tested on literals.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;

/// Longest reply head (status line and headers) read from a proxy.
pub const MAX_REPLY_HEAD: usize = 16 * 1024;

/// An HTTP proxy to tunnel through with CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User and password for Basic Proxy-Authorization.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never reaches a log line.
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", authority(&self.host, self.port))
    }
}

/// Why a proxy could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxy URL is malformed or names an unsupported scheme.
    #[error("proxy URL {url:?}: {why}")]
    BadUrl {
        /// The URL without its credentials.
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The proxy answered CONNECT with a status other than 2xx.
    #[error("the proxy refused to tunnel: HTTP {status} {reason}{hint}")]
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// A hint for common statuses.
        hint: &'static str,
    },
    /// The proxy's answer is not an HTTP/1.x status line.
    #[error("the proxy's answer is not HTTP: {0:?}")]
    NotHttp(String),
    /// The proxy's reply head did not end within [`MAX_REPLY_HEAD`] bytes.
    #[error("the proxy's reply head exceeds {MAX_REPLY_HEAD} bytes")]
    TooLong,
}

impl Proxy {
    /// Parses `http://[user:pass@]host[:port][/]`; a URL without a scheme is taken as http, the port defaults to 80.
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        let url = url.trim();
        let bad = |why| ProxyError::BadUrl { url: redact(url), why };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad("TLS to the proxy (https://) is not supported; use http://"));
            }
            Some(_) => return Err(bad("only http:// proxies are supported")),
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let credentials = userinfo.map(|info| {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            (percent_decode(user), percent_decode(pass))
        });
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("expected host[:port]"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(text) => text.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("bad port"))?,
            None => 80,
        };
        Ok(Proxy { host: host.to_string(), port, credentials })
    }

    /// The CONNECT request for `host:port`, ending with the blank line.
    pub fn connect_request(&self, host: &str, port: u16) -> String {
        let target = authority(host, port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, pass)) = &self.credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        request
    }
}

/// The proxy to use for `host:port`: an explicit URL, else `HTTPS_PROXY`/`https_proxy` unless `NO_PROXY`/`no_proxy` matches.
pub fn choose(
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    host: &str,
    port: u16,
) -> Result<Option<Proxy>, ProxyError> {
    if let Some(url) = explicit {
        return Proxy::parse(url).map(Some);
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let Some(url) = non_empty("HTTPS_PROXY").or_else(|| non_empty("https_proxy")) else {
        return Ok(None);
    };
    let no_proxy = non_empty("NO_PROXY").or_else(|| non_empty("no_proxy")).unwrap_or_default();
    if no_proxy_matches(&no_proxy, host, port) {
        return Ok(None);
    }
    Proxy::parse(&url).map(Some)
}

/// Whether a `NO_PROXY` list (hosts, `.suffix` domains, `host:port`, IPs, CIDRs, `*`) exempts `host:port`.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.to_ascii_lowercase();
        if let Some((net, bits)) = entry.split_once('/') {
            return match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
                _ => false,
            };
        }
        let (name, entry_port) = match split_host_port(&entry) {
            Some((name, Some(p))) if entry.parse::<IpAddr>().is_err() => (name.to_string(), p.parse::<u16>().ok()),
            _ => (entry.trim_start_matches('[').trim_end_matches(']').to_string(), None),
        };
        if entry_port.is_some_and(|p| p != port) {
            return false;
        }
        if let (Ok(a), Some(b)) = (name.parse::<IpAddr>(), host_ip) {
            return a == b;
        }
        let domain = name.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

/// Checks a reply head read so far: `Ok(None)` while incomplete, `Ok(Some(len))` once a 2xx head of `len` bytes ended.
pub fn parse_reply(head: &[u8]) -> Result<Option<usize>, ProxyError> {
    let end = find(head, b"\r\n\r\n").map(|i| i + 4).or_else(|| find(head, b"\n\n").map(|i| i + 2));
    let Some(end) = end else {
        if head.len() >= MAX_REPLY_HEAD {
            return Err(ProxyError::TooLong);
        }
        if head.len() >= 5 && !head.starts_with(b"HTTP/") {
            return Err(ProxyError::NotHttp(first_line(head)));
        }
        return Ok(None);
    };
    let line = first_line(&head[..end]);
    let mut parts = line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ProxyError::NotHttp(line));
    };
    let reason = parts.next().unwrap_or_default().trim().to_string();
    let status = match code.parse::<u16>() {
        Ok(status) if version.starts_with("HTTP/1.") && (100..600).contains(&status) => status,
        _ => return Err(ProxyError::NotHttp(line)),
    };
    if (200..300).contains(&status) {
        return Ok(Some(end));
    }
    let hint = match status {
        407 => " (give credentials as http://user:password@host:port)",
        403 | 405 => " (does the proxy allow CONNECT to this port?)",
        _ => "",
    };
    Err(ProxyError::Refused { status, reason, hint })
}

/// `host:port`, bracketing IPv6 addresses.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when malformed.
pub fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((text, None)),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn first_line(head: &[u8]) -> String {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line).trim_end_matches('\r').to_string();
    line.chars().take(200).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let prefix = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{prefix}{user}:***@{hostport}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
