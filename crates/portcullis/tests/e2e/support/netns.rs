//! An isolated node network made with `ip netns` and a veth pair, and Debian's tinyproxy as
//! the node's only way out.
//!
//! ```text
//!  node namespace pcn-PID-N              root namespace (the proxy host and the gateway)
//!  ┌──────────────────────┐  veth pair   ┌──────────────────────────────────────────┐
//!  │ lo                   │              │ tinyproxy on 10.X.Y.1:P ──CONNECT──┐     │
//!  │ 10.X.Y.2/30 ─────────┼──────────────┼─ 10.X.Y.1/30                       ▼     │
//!  │ no default route     │              │               gateway on 127.0.0.1:G    │
//!  └──────────────────────┘              └──────────────────────────────────────────┘
//! ```
//!
//! The node's namespace has its own loopback and one /30 with no default route, so the only
//! address it can reach is 10.X.Y.1, where only the proxy listens for it; the gateway listens
//! on the root namespace's loopback, which the proxy reaches and the node does not. Every
//! address lives in namespaces the test made: nothing leaves the machine. Names and subnets
//! are unique per process and test; everything is removed on drop, panics included.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A node namespace reachable only from (and reaching only) its peer address in the root namespace.
pub struct NodeNet {
    /// The namespace's name, for `ip netns exec`.
    pub ns: String,
    /// The node's address inside the namespace.
    pub node_ip: Ipv4Addr,
    /// The root namespace's end of the pair: the one address the node can reach (the proxy's).
    pub host_ip: Ipv4Addr,
    veth: String,
}

impl NodeNet {
    /// Makes the namespace; `None` after printing `SKIPPED: …` when this process may not
    /// (not root, no CAP_NET_ADMIN, no `ip`).
    pub fn create(test: &str) -> Option<NodeNet> {
        let _quiet = network_changes();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        sweep();
        let ns = format!("pcn-{pid}-{n}");
        match Command::new("ip").args(["netns", "add", &ns]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "SKIPPED: {test}: `ip netns add` is not permitted here ({}); run as root",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return None;
            }
            Err(err) => {
                eprintln!("SKIPPED: {test}: cannot run `ip` ({err}); scripts/install-deps.sh installs iproute2");
                return None;
            }
        }
        // From here on Drop cleans up, whatever fails.
        let mut net = NodeNet {
            ns,
            node_ip: Ipv4Addr::UNSPECIFIED,
            host_ip: Ipv4Addr::UNSPECIFIED,
            veth: format!("pc{pid}n{n}"),
        };
        let peer = format!("pc{pid}m{n}");
        ip(&["link", "add", &net.veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &net.ns]);
        let (host_ip, node_ip) = free_subnet(pid, n);
        net.host_ip = host_ip;
        net.node_ip = node_ip;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &net.veth]);
        ip(&["link", "set", &net.veth, "up"]);
        ip(&["-n", &net.ns, "addr", "add", &format!("{node_ip}/30"), "dev", &peer]);
        ip(&["-n", &net.ns, "link", "set", &peer, "up"]);
        ip(&["-n", &net.ns, "link", "set", "lo", "up"]);
        Some(net)
    }

    /// `ip netns exec NS PROGRAM`: a command to run inside the node's namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }

    /// Whether a TCP connection from inside the namespace to `host:port` succeeds within 3 s.
    pub fn can_connect(&self, host: &str, port: u16) -> bool {
        self.exec("timeout")
            .args(["3", "bash", "-c", "exec 3<>/dev/tcp/$0/$1", host, &port.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Kills (with `ss -K`) every TCP connection inside the namespace to `ip:port`: both ends see
    /// it drop at once, as when a firewall or a proxy cuts it.
    pub fn kill_connections(&self, ip: Ipv4Addr, port: u16) -> Output {
        self.exec("ss")
            .args(["-K", "-t", "dst", &ip.to_string(), "dport", "=", &port.to_string()])
            .output()
            .expect("ss runs")
    }

    /// The namespace's TCP connections to `ip:port` that are established.
    pub fn established(&self, ip: Ipv4Addr, port: u16) -> usize {
        let out = self
            .exec("ss")
            .args(["-H", "-t", "state", "established", "dst", &ip.to_string(), "dport", "=", &port.to_string()])
            .output()
            .expect("ss runs");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
    }
}

impl Drop for NodeNet {
    fn drop(&mut self) {
        let _quiet = network_changes();
        // Deleting the root end deletes the pair; deleting the namespace the rest.
        let _ = Command::new("ip").args(["link", "del", &self.veth]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
    }
}

/// Held while the host's interfaces change (a namespace's veth pair made or deleted) and
/// while a browser runs: Chromium aborts its requests and sockets when it sees interfaces
/// change (`net::ERR_NETWORK_CHANGED`), so the two must not overlap.
pub fn network_changes() -> std::sync::MutexGuard<'static, ()> {
    static CHANGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    CHANGES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes what test processes that were killed (and so never ran Drop) left behind.
fn sweep() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some((pid, n)) = name.strip_prefix("pcn-").and_then(|rest| rest.split_once('-')) else { continue };
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["link", "del", &format!("pc{pid}n{n}")]).stderr(Stdio::null()).status();
            let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A /30 in 10.200.0.0-10.249.255.255 that no interface on this machine uses: (root end, node end).
fn free_subnet(pid: u32, n: u32) -> (Ipv4Addr, Ipv4Addr) {
    let used = String::from_utf8_lossy(&Command::new("ip").args(["-4", "-o", "addr", "show"]).output().unwrap().stdout)
        .into_owned();
    const BLOCKS: u32 = 50 * 256 * 64;
    let start = pid.wrapping_mul(97).wrapping_add(n.wrapping_mul(7919)) % BLOCKS;
    for i in 0..BLOCKS {
        let block = (start + i) % BLOCKS;
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + block * 4;
        let (host, node) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        if !used.contains(&format!(" {host}/")) && !used.contains(&format!(" {node}/")) {
            return (host, node);
        }
    }
    panic!("no free /30 in 10.200.0.0/10");
}

/// Debian's tinyproxy, started by the test with its own configuration: listening on one
/// address, allowing one client network, CONNECT to the given ports only.
pub struct Tinyproxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Tinyproxy {
    /// Starts tinyproxy on `listen` (a free port), for clients from `allow` (a CIDR), allowing
    /// CONNECT only to `connect_ports`. Panics when tinyproxy is not installed.
    pub fn start(listen: Ipv4Addr, allow: &str, connect_ports: &[u16]) -> Tinyproxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind((listen, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        let mut text = format!(
            "Port {port}\nListen {listen}\nTimeout 3600\nMaxClients 1000\nAllow {allow}\nLogLevel Info\n\
             LogFile \"{}\"\nPidFile \"{}\"\nDisableViaHeader Yes\n",
            log.display(),
            dir.path().join("tinyproxy.pid").display()
        );
        for p in connect_ports {
            text.push_str(&format!("ConnectPort {p}\n"));
        }
        std::fs::write(&config, text).expect("write tinyproxy.conf");
        let child = Tinyproxy::spawn(&config);
        let mut proxy = Tinyproxy { addr: SocketAddr::from((listen, port)), log, config, _dir: dir, child };
        proxy.wait_listening();
        proxy
    }

    fn spawn(config: &Path) -> Child {
        match Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => panic!("cannot start tinyproxy ({err}): scripts/install-deps.sh installs it"),
        }
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tinyproxy exited at start ({status}): {}", self.log_text());
            }
            assert!(Instant::now() < deadline, "tinyproxy did not listen on {}: {}", self.addr, self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills tinyproxy, dropping every tunnel through it, and starts it again on the same address.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Tinyproxy::spawn(&self.config);
        self.wait_listening();
    }

    /// `http://ADDR`, for `--proxy`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What tinyproxy logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CONNECT tunnels it opened to `target` (`HOST:PORT`), from its log.
    pub fn tunnels_to(&self, target: &str) -> usize {
        let (host, port) = target.rsplit_once(':').expect("HOST:PORT");
        let established = format!("Established connection to host \"{host}\" using file descriptor");
        let connect = format!("CONNECT {host}:{port} ");
        let log = self.log_text();
        log.lines()
            .filter(|l| l.contains(&connect))
            .count()
            .max(log.lines().filter(|l| l.contains(&established)).count())
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
