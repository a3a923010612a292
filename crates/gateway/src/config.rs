//! `portcullis.toml`: parsed into raw structs, then validated into a typed [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// Default listen address: loopback only until the operator says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "portcullis-data";

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where keys, database, recordings and the admin socket live.
    pub data_dir: PathBuf,
    /// The shared port.
    pub listen: Listen,
    /// Operator-supplied TLS certificate and key (PEM); `None` means self-signed.
    pub tls: Option<TlsFiles>,
    /// Database location.
    pub storage_url: String,
    /// Recording settings.
    pub recordings: Recordings,
    /// Statically configured agentless nodes.
    pub nodes: Vec<StaticNode>,
    /// Agent tunnels.
    pub agents: Agents,
}

/// Agent tunnel settings.
#[derive(Debug, Clone)]
pub struct Agents {
    /// A woken tunnel (one that carried sessions) with none open for this long goes back to
    /// idle: the gateway closes it, the agent reconnects at once, and it costs what an
    /// idle tunnel costs until the next session.
    pub awake_idle: std::time::Duration,
}

/// `agents.awake_idle` unless set.
pub const DEFAULT_AWAKE_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// The shared listener's settings.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Source CIDRs allowed to connect; everything else is closed before a byte is read.
    pub allow: Vec<IpNet>,
    /// Whether a PROXY protocol header is expected.
    pub proxy_protocol: ProxyProtocol,
    /// Peers whose PROXY header and X-Forwarded-For are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Names and addresses clients use to reach the gateway (`host:port`).
    pub public_addr: Vec<String>,
    /// How long a connection may take from accept to an authenticated SSH session or a TLS handshake.
    pub handshake_timeout: std::time::Duration,
    /// Most connections handled at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most connections one source address may hold at once (trusted proxies are exempt);
    /// further ones are closed at once.
    pub max_connections_per_source: usize,
}

/// `listen.max_connections` unless set.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// `listen.max_connections_per_source` unless set.
pub const DEFAULT_MAX_PER_SOURCE: usize = 256;

/// PROXY protocol mode of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// Headers are refused.
    Off,
    /// Headers from trusted proxies are honoured; plain connections are fine too.
    Optional,
    /// Every connection must come from a trusted proxy with a header.
    Required,
}

/// Certificate and key files given by the operator.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Recording settings.
#[derive(Debug, Clone)]
pub struct Recordings {
    /// `file://DIR` (relative to the data dir) or `s3://bucket/prefix`.
    pub url: String,
    /// End a recorded session when its recording cannot be written.
    pub fail_closed: bool,
    /// Record keystrokes too.
    pub record_input: bool,
    /// Most output bytes recorded per session; past it only a summary is kept.
    pub max_bytes: u64,
}

/// A node declared in the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticNode {
    /// Node name, as users type it.
    pub name: String,
    /// `host:port` of the node's sshd.
    pub addr: String,
    /// Static labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    listen: RawListen,
    tls: Option<RawTls>,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    recordings: RawRecordings,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    agents: RawAgents,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgents {
    awake_idle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    addr: Option<String>,
    allow: Option<Vec<String>>,
    proxy_protocol: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    public_addr: Option<Vec<String>>,
    handshake_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    url: Option<String>,
    fail_closed: Option<bool>,
    record_input: Option<bool>,
    max_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    addr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Config {
    /// Reads and validates a config file; `None` gives the embedded defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        match path {
            None => Config::parse(""),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Config::parse(&text).with_context(|| format!("in config file {}", path.display()))
            }
        }
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        raw.validate()
    }
}

impl RawConfig {
    fn validate(self) -> anyhow::Result<Config> {
        let listen = self.listen.validate()?;
        let tls = match self.tls {
            None => None,
            Some(RawTls { cert: None, key: None }) => None,
            Some(RawTls { cert: Some(cert), key: Some(key) }) => Some(TlsFiles { cert, key }),
            Some(_) => bail!("tls.cert and tls.key must be given together"),
        };
        let storage_url = self.storage.url.unwrap_or_else(|| "sqlite://portcullis.db".into());
        if !storage_url.starts_with("sqlite://") {
            bail!(
                "storage.url: {storage_url:?} is not supported by this build (only sqlite://FILE; postgres:// arrives with multi-gateway support)"
            );
        }
        let recordings = Recordings {
            url: self.recordings.url.unwrap_or_else(|| "file://recordings".into()),
            fail_closed: self.recordings.fail_closed.unwrap_or(true),
            record_input: self.recordings.record_input.unwrap_or(false),
            max_bytes: self.recordings.max_bytes.unwrap_or(64 << 20),
        };
        if recordings.max_bytes < 4096 {
            bail!("recordings.max_bytes must be at least 4096");
        }
        if !recordings.url.starts_with("file://") && !recordings.url.starts_with("s3://") {
            bail!("recordings.url: {:?} must start with file:// or s3://", recordings.url);
        }
        let mut nodes: Vec<StaticNode> = Vec::new();
        for (i, node) in self.nodes.into_iter().enumerate() {
            let key = format!("nodes[{i}]");
            validate_name(&node.name).with_context(|| format!("{key}.name"))?;
            validate_host_port(&node.addr).with_context(|| format!("{key}.addr"))?;
            if nodes.iter().any(|n| n.name == node.name) {
                bail!("{key}.name: node {:?} is declared twice", node.name);
            }
            nodes.push(StaticNode { name: node.name, addr: node.addr, labels: node.labels });
        }
        let awake_idle = match self.agents.awake_idle {
            None => DEFAULT_AWAKE_IDLE,
            Some(text) => parse_duration("agents.awake_idle", &text, 86_400, "24h")?,
        };
        Ok(Config {
            data_dir: self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen,
            tls,
            storage_url,
            recordings,
            nodes,
            agents: Agents { awake_idle },
        })
    }
}

impl RawListen {
    fn validate(self) -> anyhow::Result<Listen> {
        let addr_text = self.addr.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let addr: SocketAddr =
            addr_text.parse().map_err(|_| anyhow::anyhow!("listen.addr: {addr_text:?} is not an IP:PORT address"))?;
        let allow = match self.allow {
            None => vec!["127.0.0.0/8".parse()?, "::1/128".parse()?],
            Some(list) => parse_cidrs("listen.allow", &list)?,
        };
        let proxy_protocol = match self.proxy_protocol.as_deref() {
            None | Some("off") => ProxyProtocol::Off,
            Some("optional") => ProxyProtocol::Optional,
            Some("required") => ProxyProtocol::Required,
            Some(other) => bail!("listen.proxy_protocol: {other:?} is not one of \"off\", \"optional\", \"required\""),
        };
        let trusted_proxies = match self.trusted_proxies {
            None => Vec::new(),
            Some(list) => parse_cidrs("listen.trusted_proxies", &list)?,
        };
        if proxy_protocol == ProxyProtocol::Required && trusted_proxies.is_empty() {
            bail!("listen.proxy_protocol = \"required\" needs listen.trusted_proxies");
        }
        let public_addr = self.public_addr.unwrap_or_default();
        for (i, a) in public_addr.iter().enumerate() {
            validate_host_port(a).with_context(|| format!("listen.public_addr[{i}]"))?;
        }
        let handshake_timeout = match self.handshake_timeout {
            None => std::time::Duration::from_secs(30),
            Some(text) => parse_duration("listen.handshake_timeout", &text, 600, "10m")?,
        };
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=1_000_000).contains(&max_connections) {
            bail!("listen.max_connections: {max_connections} is not from 1 to 1000000");
        }
        let max_connections_per_source = self.max_connections_per_source.unwrap_or(DEFAULT_MAX_PER_SOURCE);
        if !(1..=max_connections).contains(&max_connections_per_source) {
            bail!("listen.max_connections_per_source: {max_connections_per_source} is not from 1 to max_connections");
        }
        Ok(Listen {
            addr,
            allow,
            proxy_protocol,
            trusted_proxies,
            public_addr,
            handshake_timeout,
            max_connections,
            max_connections_per_source,
        })
    }
}

/// A duration setting from 1 s up to `max_secs` (`max_text` in the error).
fn parse_duration(key: &str, text: &str, max_secs: u64, max_text: &str) -> anyhow::Result<std::time::Duration> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() <= max_secs)
        .ok_or_else(|| anyhow::anyhow!("{key}: {text:?} is not a duration from 1s to {max_text}"))
}

fn parse_cidrs(key: &str, list: &[String]) -> anyhow::Result<Vec<IpNet>> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| anyhow::anyhow!("{key}[{i}]: {s:?} is not a CIDR (like 10.0.0.0/8)"))
        })
        .collect()
}

/// Checks a node or user name: lower-case letters, digits, `.`, `_`, `-`.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    if !portcullis_proto::name::is_valid(name) {
        bail!("{name:?} is not a valid name (1-64 of a-z 0-9 . _ -, not starting with . or -)");
    }
    Ok(())
}

/// Checks a `host:port` string (host a name or an IP, `[v6]` bracketed).
pub fn validate_host_port(s: &str) -> anyhow::Result<()> {
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        bail!("{s:?} is not HOST:PORT");
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok =
        !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if !port_ok || !host_ok {
        bail!("{s:?} is not HOST:PORT");
    }
    Ok(())
}

/// Splits a `host:port` into its host part (brackets removed).
pub fn host_of(s: &str) -> &str {
    let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.addr.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.listen.proxy_protocol, ProxyProtocol::Off);
        assert!(c.recordings.fail_closed);
        assert!(c.tls.is_none());
    }

    #[test]
    fn full_design_example_parses() {
        let text = r#"
data_dir = "/var/lib/portcullis"
[listen]
addr = "0.0.0.0:3080"
allow = ["127.0.0.0/8", "::1/128", "100.64.0.0/10"]
proxy_protocol = "optional"
trusted_proxies = ["127.0.0.1/32"]
public_addr = ["gw.example.com:443", "100.64.0.5:3080"]
[tls]
cert = "c.pem"
key = "k.pem"
[storage]
url = "sqlite://portcullis.db"
[recordings]
url = "file://recordings"
fail_closed = true
record_input = false
[[nodes]]
name = "gpu-01"
addr = "10.0.0.11:22"
labels = { gpu = "h800" }
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.listen.allow.len(), 3);
        assert_eq!(c.listen.proxy_protocol, ProxyProtocol::Optional);
        assert_eq!(c.nodes[0].labels["gpu"], "h800");
        assert_eq!(c.listen.public_addr[0], "gw.example.com:443");
    }

    #[test]
    fn agents_awake_idle_defaults_and_parses() {
        assert_eq!(Config::parse("").unwrap().agents.awake_idle, DEFAULT_AWAKE_IDLE);
        let c = Config::parse("[agents]\nawake_idle = \"90s\"").unwrap();
        assert_eq!(c.agents.awake_idle, std::time::Duration::from_secs(90));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[listen]\nallow = [\"10.0.0.0/33\"]", "listen.allow[0]"),
            ("[listen]\naddr = \"localhost\"", "listen.addr"),
            ("[listen]\nbogus = 1", "bogus"),
            ("[listen]\nproxy_protocol = \"maybe\"", "listen.proxy_protocol"),
            ("[listen]\nproxy_protocol = \"required\"", "trusted_proxies"),
            ("[tls]\ncert = \"x\"", "tls.cert and tls.key"),
            ("[storage]\nurl = \"mysql://x\"", "storage.url"),
            ("[[nodes]]\nname = \"Bad Name\"\naddr = \"h:22\"", "nodes[0].name"),
            ("[[nodes]]\nname = \"a\"\naddr = \"h:0\"", "nodes[0].addr"),
            ("[[nodes]]\nname=\"a\"\naddr=\"h:22\"\n[[nodes]]\nname=\"a\"\naddr=\"h:23\"", "twice"),
            ("[recordings]\nurl = \"ftp://x\"", "recordings.url"),
            ("listen = 3", "listen"),
            ("[listen]\nhandshake_timeout = \"forever\"", "listen.handshake_timeout"),
            ("[agents]\nawake_idle = \"0s\"", "agents.awake_idle"),
            ("[agents]\nawake_idle = \"2d\"", "agents.awake_idle"),
            ("[agents]\nidle = \"5m\"", "unknown field"),
            ("[listen]\nmax_connections = 0", "listen.max_connections"),
            ("[listen]\nmax_connections = 10\nmax_connections_per_source = 11", "listen.max_connections_per_source"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", Config::parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn unknown_key_error_has_a_line() {
        let err = Config::parse("\n\n[listen]\nallowed = []\n").unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn host_port_checks() {
        for ok in ["gw.example.com:443", "10.0.0.1:22", "[::1]:22", "node-1:2222"] {
            validate_host_port(ok).unwrap();
        }
        for bad in ["gw", ":22", "a b:22", "h:99999", "h:x"] {
            assert!(validate_host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(host_of("[::1]:22"), "::1");
        assert_eq!(host_of("gw.example.com:443"), "gw.example.com");
    }
}
