//! The checks: given the config and the gathered facts, what is fine, what to fix, and how.
//! Pure functions; the TLS and Docker checks live in their own files.

use std::path::Path;

use portcullis_gateway::Config;
use portcullis_gateway::config::{Listen, ProxyProtocol};

use super::facts::{Facts, FileInfo, FileKind, NodeFacts, NodeList, RecordingFacts};
use super::{Check, certificate, docker};

/// Less free space than this under the recordings is a finding.
pub const MIN_FREE_BYTES: u64 = 1 << 30;

/// Every check, in report order.
pub fn all(config: &Config, facts: &Facts) -> Vec<Check> {
    let mut report = listen(&config.listen);
    report.push(data_dir(&config.data_dir, facts.data_dir));
    let socket = config.data_dir.join(portcullis_gateway::datadir::ADMIN_SOCK);
    report.push(admin_socket(&socket, facts.admin_socket, facts.data_dir.map(|d| d.uid)));
    report.extend(certificate::checks(&config.listen.public_addr, &facts.certificate, facts.now));
    report.extend(nodes(&facts.nodes));
    report.push(recordings(&facts.recordings, facts.data_dir.is_some()));
    report.extend(docker::checks(config, &facts.container, &facts.docker_user));
    report
}

/// `listen.exposure`, `listen.trusted_proxies`, `listen.proxy_protocol`.
pub fn listen(listen: &Listen) -> Vec<Check> {
    let addr = listen.addr;
    let list = |nets: &[ipnet::IpNet]| nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let allow_all: Vec<_> = listen.allow.iter().filter(|n| n.prefix_len() == 0).copied().collect();
    let exposure = if listen.allow.is_empty() {
        Check::finding(
            "listen.exposure",
            format!("listen.allow is empty: every connection to {addr} is closed before a byte is read"),
            "list the networks users, agents and proxies connect from, e.g. allow = [\"10.0.0.0/8\"]",
        )
    } else if addr.ip().is_unspecified() && !allow_all.is_empty() {
        Check::finding(
            "listen.exposure",
            format!(
                "{addr} listens on every interface and listen.allow admits every address ({}): anyone who can route to this host reaches the gateway",
                list(&allow_all)
            ),
            format!(
                "narrow listen.allow to the networks users and agents come from (e.g. allow = [\"100.64.0.0/10\"]), or bind one interface (listen.addr = \"10.0.0.5:{}\")",
                addr.port()
            ),
        )
    } else {
        let reach = if addr.ip().is_loopback() { "this host only" } else { "the networks allowed" };
        Check::ok("listen.exposure", format!("{addr}, allow {} ({reach})", list(&listen.allow)))
    };
    let wide: Vec<_> = listen.trusted_proxies.iter().filter(|n| too_wide(n)).copied().collect();
    let proxies = if listen.trusted_proxies.is_empty() {
        Check::ok("listen.trusted_proxies", "none: clients' own addresses are used")
    } else if !wide.is_empty() {
        Check::finding(
            "listen.trusted_proxies",
            format!(
                "listen.trusted_proxies includes {}: any client there can claim any source address (PROXY header, X-Forwarded-For), defeating roles' source_cidrs and the audit's src_ip",
                list(&wide)
            ),
            "list only your proxies' own addresses, e.g. trusted_proxies = [\"10.0.0.2/32\"]",
        )
    } else {
        Check::ok("listen.trusted_proxies", list(&listen.trusted_proxies))
    };
    let mode = match listen.proxy_protocol {
        ProxyProtocol::Off => "off",
        ProxyProtocol::Optional => "optional",
        ProxyProtocol::Required => "required",
    };
    let proxy_protocol = if mode != "off" && listen.trusted_proxies.is_empty() {
        Check::finding(
            "listen.proxy_protocol",
            format!(
                "proxy_protocol = \"{mode}\" with no trusted_proxies: every PROXY header is refused (the connection closed)"
            ),
            "add the proxy's address to listen.trusted_proxies, or set proxy_protocol = \"off\"",
        )
    } else {
        Check::ok("listen.proxy_protocol", mode)
    };
    vec![exposure, proxies, proxy_protocol]
}

/// A trusted network wider than a proxy needs: under /16 (IPv4) or /48 (IPv6).
fn too_wide(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V4(n) => n.prefix_len() < 16,
        ipnet::IpNet::V6(n) => n.prefix_len() < 48,
    }
}

fn loose(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// `data_dir`: exists, a directory, 0700.
pub fn data_dir(path: &Path, info: Option<FileInfo>) -> Check {
    let path = path.display();
    match info {
        None => Check::skipped("data_dir", format!("{path} does not exist yet (made 0700 on first start)")),
        Some(info) if info.kind != FileKind::Dir => Check::finding(
            "data_dir",
            format!("{path} is not a directory"),
            "point data_dir (or --data-dir) at the data directory",
        ),
        Some(info) if loose(info.mode) => Check::finding(
            "data_dir",
            format!("{path} has mode {:04o}: other users can look inside (keys, database, recordings)", info.mode),
            format!("chmod 700 {path}"),
        ),
        Some(info) => Check::ok("data_dir", format!("{path}, mode 0700, owner uid {}", info.uid)),
    }
}

/// `admin.socket`: a socket, 0600, owned by the data dir's owner.
pub fn admin_socket(path: &Path, info: Option<FileInfo>, owner: Option<u32>) -> Check {
    let path = path.display();
    match info {
        None => Check::skipped("admin.socket", format!("{path} absent: the gateway is not running on this data dir")),
        Some(info) if info.kind != FileKind::Socket => Check::finding(
            "admin.socket",
            format!("{path} is not a socket"),
            format!("stop the gateway, remove {path}, start the gateway (it binds the socket)"),
        ),
        Some(info) if loose(info.mode) => Check::finding(
            "admin.socket",
            format!(
                "{path} has mode {:04o}: other local users may connect to the admin API (the gateway refuses other uids, but that must not be the only guard)",
                info.mode
            ),
            format!("chmod 600 {path} (the gateway makes it 0600 at start: find what changed it)"),
        ),
        Some(info) if owner.is_some_and(|o| o != info.uid) => Check::finding(
            "admin.socket",
            format!("{path} is owned by uid {}, the data dir by uid {}", info.uid, owner.unwrap_or_default()),
            "run the gateway as the data dir's owner, then restart it (it binds the socket anew)",
        ),
        Some(info) => Check::ok("admin.socket", format!("{path}, mode {:04o}, owner uid {}", info.mode, info.uid)),
    }
}

/// One or two checks per node: reachability (agentless) or tunnel (agent), and the pinned host key.
pub fn nodes(list: &NodeList) -> Vec<Check> {
    let nodes = match list {
        NodeList::NoDatabase(path) => {
            return vec![Check::skipped(
                "nodes",
                format!("no database at {} yet (made on first start)", path.display()),
            )];
        }
        NodeList::Failed(err) => return vec![Check::skipped("nodes", err.clone())],
        NodeList::Nodes(nodes) if nodes.is_empty() => return vec![Check::ok("nodes", "no nodes registered")],
        NodeList::Nodes(nodes) => nodes,
    };
    nodes.iter().flat_map(node).collect()
}

fn node(n: &NodeFacts) -> Vec<Check> {
    let name = &n.name;
    let id = format!("node.{name}");
    let addr = n.addr.as_deref().unwrap_or("-");
    let state = match (n.agent, &n.reach, n.online) {
        (true, _, None) => Check::skipped(id, "agent (online state is known to the running gateway: ctl nodes ls)"),
        (true, _, Some(true)) => Check::ok(id, "agent, tunnel connected"),
        (true, _, Some(false)) => Check::finding(
            id,
            "agent, not connected to the gateway",
            format!(
                "on the node, check that `portcullis agent` runs and reaches the gateway (its log says why not); if the node is gone: portcullis ctl nodes rm {name}"
            ),
        ),
        (false, Some(Ok(())), _) => Check::ok(id, format!("{addr} accepts TCP connections")),
        (false, Some(Err(err)), _) => Check::finding(
            id,
            format!("{addr} is unreachable: {err}"),
            format!(
                "check that the node is up, its sshd listens on {addr} and this host may connect (firewall, routes); a wrong address: portcullis ctl nodes rm {name}, then nodes add {name} --addr HOST:PORT"
            ),
        ),
        (false, None, _) => Check::skipped(id, "no address to dial"),
    };
    let key_id = format!("node.{name}.host_key");
    let key = if n.pinned {
        Check::ok(key_id, "host key pinned")
    } else {
        Check::finding(
            key_id,
            "no host key pinned yet: the first connection, by anyone, decides which key is trusted",
            format!(
                "connect once as an operator (ssh -p PORT LOGIN@{name}@GATEWAY) and verify: the fingerprint in `portcullis ctl nodes ls` must match `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node"
            ),
        )
    };
    vec![state, key]
}

/// `recordings`: a directory, private, writable, with room.
pub fn recordings(facts: &RecordingFacts, data_dir_exists: bool) -> Check {
    let (path, info, write, free) = match facts {
        RecordingFacts::Remote(url) => {
            return Check::skipped("recordings", format!("{url}: only file:// stores are checked"));
        }
        RecordingFacts::Dir { path, info, write, free } => (path.display(), info, write, free),
    };
    let Some(info) = info else {
        if !data_dir_exists {
            return Check::skipped("recordings", format!("{path} not made yet (made on first start)"));
        }
        return Check::finding(
            "recordings",
            format!("{path} does not exist: recorded sessions cannot start"),
            format!("restart the gateway (it makes the directory), or: install -d -m 700 -o GATEWAY_USER {path}"),
        );
    };
    let free_text = free.map_or_else(|| "free space unknown".to_string(), |b| format!("{} free", size(b)));
    if info.kind != FileKind::Dir {
        return Check::finding(
            "recordings",
            format!("{path} is not a directory"),
            "point recordings.url at a directory",
        );
    }
    if let Err(err) = write {
        return Check::finding(
            "recordings",
            format!("cannot write to {path}: {err}"),
            format!("make it the gateway user's: chown GATEWAY_USER {path} && chmod 700 {path}"),
        );
    }
    if loose(info.mode) {
        return Check::finding(
            "recordings",
            format!("{path} has mode {:04o}: other users can read recorded sessions", info.mode),
            format!("chmod 700 {path}"),
        );
    }
    if free.is_some_and(|b| b < MIN_FREE_BYTES) {
        return Check::finding(
            "recordings",
            format!(
                "{path}: only {free_text}; with fail_closed, recorded sessions end when a recording cannot be written"
            ),
            "free space on that file system, or move recordings.url to a larger one",
        );
    }
    Check::ok("recordings", format!("{path} writable, {free_text}"))
}

fn size(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    if bytes >= 1 << 30 { format!("{:.1} GiB", bytes as f64 / GIB) } else { format!("{} MiB", bytes >> 20) }
}

#[cfg(test)]
mod tests;
