//! Docker and the host firewall: whether the gateway runs in a container, and whether the
//! host's `DOCKER-USER` chain filters the gateway's port. Pure: text in, verdicts out.
//!
//! Docker DNATs a published port in `PREROUTING` and accepts it in `FORWARD`, so the host's
//! `INPUT` rules (ufw, firewalld) never see it; `DOCKER-USER` is the one chain Docker leaves
//! to the operator, evaluated before its own.

use ipnet::IpNet;
use portcullis_gateway::Config;

use super::Check;

/// What was read to tell whether this process runs in a container.
pub struct ContainerFacts {
    /// `/.dockerenv` exists.
    pub dockerenv: bool,
    /// `/proc/1/cgroup`.
    pub cgroup: String,
    /// `/proc/self/mountinfo`.
    pub mountinfo: String,
}

/// The host's `DOCKER-USER` chain, as `iptables -S DOCKER-USER` showed it.
#[derive(Debug, PartialEq, Eq)]
pub enum DockerUser {
    /// No `iptables` command.
    NoIptables,
    /// `iptables` ran but could not list the chain (often: not root).
    Failed(String),
    /// No such chain: Docker does not manage this host's firewall.
    NoChain,
    /// The chain's rules, in `iptables -S` form.
    Rules(String),
}

const RUNTIMES: [&str; 4] = ["docker", "containerd", "kubepods", "kubelet"];

/// Why this process looks containerised, or `None`.
pub fn container_marker(facts: &ContainerFacts) -> Option<String> {
    if facts.dockerenv {
        return Some("/.dockerenv exists".into());
    }
    for line in facts.cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        if RUNTIMES.iter().any(|r| path.contains(r)) {
            return Some(format!("/proc/1/cgroup: {path}"));
        }
    }
    // A host running containers lists their mounts too, so only the root and the files
    // a runtime bind-mounts into every container tell.
    for line in facts.mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else { continue };
        if !["/", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].contains(mount_point) {
            continue;
        }
        let source = line.split(" - ").nth(1).unwrap_or_default();
        if RUNTIMES.iter().any(|r| root.contains(r) || source.contains(r)) {
            return Some(format!("/proc/self/mountinfo: {mount_point} comes from {}", shorten(root, source)));
        }
    }
    None
}

fn shorten(root: &str, source: &str) -> String {
    let text = if RUNTIMES.iter().any(|r| root.contains(r)) { root } else { source };
    match text.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Classifies the result of `iptables -S DOCKER-USER`.
pub fn classify_iptables(success: bool, stdout: &str, stderr: &str) -> DockerUser {
    if success {
        return DockerUser::Rules(stdout.to_string());
    }
    let err = stderr.trim();
    if err.contains("No chain") || err.contains("does not exist") {
        DockerUser::NoChain
    } else {
        DockerUser::Failed(err.lines().next().unwrap_or("iptables failed").to_string())
    }
}

/// The first `DOCKER-USER` rule that drops or rejects new TCP connections to `port`, if any
/// comes before the chain's unconditional end (`-j RETURN` or `-j ACCEPT`).
pub fn protecting_rule(rules: &str, port: u16) -> Option<&str> {
    for line in rules.lines().map(str::trim) {
        let Some(rule) = line.strip_prefix("-A DOCKER-USER ") else { continue };
        let tokens: Vec<&str> = rule.split_whitespace().collect();
        let target = tokens.iter().position(|t| *t == "-j").and_then(|i| tokens.get(i + 1)).copied();
        if matches!(target, Some("RETURN" | "ACCEPT")) && tokens.len() == 2 {
            return None;
        }
        if !matches!(target, Some("DROP" | "REJECT")) {
            continue;
        }
        if matches_tcp(&tokens) && port_matches(&tokens, port) != Some(false) {
            return Some(line);
        }
    }
    None
}

/// Whether a rule's `-p` (if any) lets TCP through.
fn matches_tcp(tokens: &[&str]) -> bool {
    match tokens.iter().position(|t| *t == "-p") {
        None => true,
        Some(i) => {
            let negated = i > 0 && tokens[i - 1] == "!";
            let tcp = matches!(tokens.get(i + 1), Some(&"tcp" | &"6" | &"all"));
            tcp != negated
        }
    }
}

/// `None` when the rule has no destination-port match, else whether it matches `port`.
fn port_matches(tokens: &[&str], port: u16) -> Option<bool> {
    let i = tokens.iter().position(|t| matches!(*t, "--dport" | "--dports" | "--destination-port"))?;
    let negated = i > 0 && tokens[i - 1] == "!";
    let list = tokens.get(i + 1)?;
    let hit = list.split(',').any(|part| match part.split_once(':') {
        Some((lo, hi)) => {
            let lo = lo.parse().unwrap_or(0);
            let hi = hi.parse().unwrap_or(u16::MAX);
            (lo..=hi).contains(&port)
        }
        None => part.parse() == Ok(port),
    });
    Some(hit != negated)
}

/// The `iptables` commands that admit only `allow`'s IPv4 networks to `port` through Docker.
pub fn drop_rules(port: u16, allow: &[IpNet]) -> Vec<String> {
    let port = if port == 0 { "PORT".to_string() } else { port.to_string() };
    let nets: Vec<&IpNet> = allow.iter().filter(|n| matches!(n, IpNet::V4(_)) && n.prefix_len() > 0).collect();
    let base = format!("iptables -I DOCKER-USER -p tcp --dport {port}");
    match nets.as_slice() {
        [] => vec![format!("{base} ! -s YOUR_NETWORK/PREFIX -j DROP")],
        [one] => vec![format!("{base} ! -s {one} -j DROP")],
        many => {
            // -I inserts at the top: the DROP first, then the ACCEPTs above it, in order.
            let mut rules = vec![format!("{base} -j DROP")];
            rules.extend(many.iter().rev().map(|net| format!("{base} -s {net} -j ACCEPT")));
            rules
        }
    }
}

/// `docker.container` and `docker.firewall`.
pub fn checks(config: &Config, container: &ContainerFacts, docker_user: &DockerUser) -> Vec<Check> {
    let port = config.listen.addr.port();
    let fix_rules = drop_rules(port, &config.listen.allow).join("; ");
    let published = if port == 0 { "PORT:PORT".to_string() } else { format!("{port}:{port}") };
    let marker = container_marker(container);
    let in_container = match &marker {
        Some(why) if config.listen.addr.ip().is_loopback() => Check::ok(
            "docker.container",
            format!("in a container ({why}), listening on loopback only: no port Docker publishes reaches it"),
        ),
        Some(why) => Check::finding(
            "docker.container",
            format!(
                "the gateway runs in a container ({why}): a port Docker publishes is forwarded before the host's INPUT chain, so host firewall rules (ufw, firewalld) do not apply to it; only listen.allow and the host's DOCKER-USER chain do"
            ),
            format!(
                "publish the port on one address (docker run -p 127.0.0.1:{published}, or the VPN address), or on the host: {fix_rules}; then run portcullis doctor on the host"
            ),
        ),
        None => Check::ok("docker.container", "not in a container (no /.dockerenv; cgroup and mounts name no runtime)"),
    };
    let firewall = match docker_user {
        _ if marker.is_some() => Check::skipped(
            "docker.firewall",
            "inside a container: DOCKER-USER is the host's chain; run doctor on the host",
        ),
        DockerUser::NoIptables => {
            Check::skipped("docker.firewall", "iptables not found: no Docker-managed firewall to check")
        }
        DockerUser::Failed(err) => Check::skipped(
            "docker.firewall",
            format!("cannot list DOCKER-USER ({err}); run doctor as root to check it"),
        ),
        DockerUser::NoChain => {
            Check::ok("docker.firewall", "no DOCKER-USER chain: Docker does not manage this host's firewall")
        }
        DockerUser::Rules(rules) => match protecting_rule(rules, port) {
            Some(rule) => Check::ok("docker.firewall", format!("DOCKER-USER filters port {port}: {rule}")),
            None => Check::finding(
                "docker.firewall",
                format!(
                    "Docker manages this host's firewall and DOCKER-USER has no rule for port {port} before its end: if Docker publishes the gateway's port, every address that routes to this host reaches it, whatever ufw or firewalld say"
                ),
                format!("{fix_rules} (then make it persistent, e.g. with iptables-persistent)"),
            ),
        },
    };
    vec![in_container, firewall]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const DEFAULT_OLD: &str = "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n";
    const DEFAULT_NEW: &str = "-N DOCKER-USER\n";
    const PROTECTED: &str = "-N DOCKER-USER\n\
        -A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A DOCKER-USER ! -s 10.0.0.0/8 -p tcp -m tcp --dport 3080 -j DROP\n\
        -A DOCKER-USER -j RETURN\n";
    const OTHER_PORT: &str = "-N DOCKER-USER\n\
        -A DOCKER-USER ! -s 192.168.1.0/24 -i eth0 -p tcp -m tcp --dport 8080 -j DROP\n\
        -A DOCKER-USER -j RETURN\n";
    const AFTER_RETURN: &str = "-N DOCKER-USER\n\
        -A DOCKER-USER -j RETURN\n\
        -A DOCKER-USER ! -s 10.0.0.0/8 -p tcp -m tcp --dport 3080 -j DROP\n";
    const INTERFACE_WIDE: &str = "-N DOCKER-USER\n-A DOCKER-USER -i eth0 ! -s 10.0.0.0/8 -j DROP\n";
    const MULTIPORT: &str = "-N DOCKER-USER\n\
        -A DOCKER-USER -p tcp -m multiport --dports 22,3000:3100 -j REJECT --reject-with icmp-port-unreachable\n";
    const UDP_ONLY: &str = "-N DOCKER-USER\n-A DOCKER-USER -p udp -m udp --dport 3080 -j DROP\n";
    const ALL_BUT_SSH: &str = "-N DOCKER-USER\n-A DOCKER-USER -p tcp -m tcp ! --dport 22 -j DROP\n";
    const ONLY_SSH: &str = "-N DOCKER-USER\n-A DOCKER-USER -p tcp -m tcp ! --dport 3080 -j DROP\n";

    #[test]
    fn docker_user_rules_protect_the_port_or_not() {
        let cases = [
            (DEFAULT_OLD, false),
            (DEFAULT_NEW, false),
            (PROTECTED, true),
            (OTHER_PORT, false),
            (AFTER_RETURN, false),
            (INTERFACE_WIDE, true),
            (MULTIPORT, true),
            (UDP_ONLY, false),
            (ALL_BUT_SSH, true),
            (ONLY_SSH, false),
        ];
        for (rules, protected) in cases {
            assert_eq!(protecting_rule(rules, 3080).is_some(), protected, "{rules}");
        }
        assert_eq!(
            protecting_rule(PROTECTED, 3080),
            Some("-A DOCKER-USER ! -s 10.0.0.0/8 -p tcp -m tcp --dport 3080 -j DROP")
        );
        assert!(protecting_rule(OTHER_PORT, 8080).is_some());
    }

    #[test]
    fn iptables_results_are_classified() {
        assert_eq!(classify_iptables(true, DEFAULT_OLD, ""), DockerUser::Rules(DEFAULT_OLD.into()));
        let no_chain = "iptables: No chain/target/match by that name.\n";
        assert_eq!(classify_iptables(false, "", no_chain), DockerUser::NoChain);
        let nft =
            "iptables v1.8.9 (nf_tables): chain `DOCKER-USER' in table `filter' is incompatible, use 'nft' tool.\n";
        assert!(matches!(classify_iptables(false, "", nft), DockerUser::Failed(_)));
        let denied = "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n";
        assert_eq!(classify_iptables(false, "", denied), DockerUser::Failed(denied.trim().into()));
    }

    #[test]
    fn drop_rules_admit_the_allowed_networks() {
        let nets = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
        assert_eq!(
            drop_rules(3080, &nets(&["10.0.0.0/8", "::1/128"])),
            ["iptables -I DOCKER-USER -p tcp --dport 3080 ! -s 10.0.0.0/8 -j DROP"]
        );
        assert_eq!(
            drop_rules(443, &nets(&["10.0.0.0/8", "100.64.0.0/10"])),
            [
                "iptables -I DOCKER-USER -p tcp --dport 443 -j DROP",
                "iptables -I DOCKER-USER -p tcp --dport 443 -s 100.64.0.0/10 -j ACCEPT",
                "iptables -I DOCKER-USER -p tcp --dport 443 -s 10.0.0.0/8 -j ACCEPT",
            ]
        );
        assert_eq!(
            drop_rules(0, &nets(&["0.0.0.0/0"])),
            ["iptables -I DOCKER-USER -p tcp --dport PORT ! -s YOUR_NETWORK/PREFIX -j DROP"]
        );
    }

    const HOST_CGROUP: &str = "0::/init.scope\n";
    const HOST_MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
410 22 0:52 / /var/lib/docker/overlay2/5d1e0c7b/merged rw,relatime shared:230 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/QX3:/var/lib/docker/overlay2/l/B7Q,upperdir=/var/lib/docker/overlay2/5d1e0c7b/diff,workdir=/var/lib/docker/overlay2/5d1e0c7b/work
";
    const DOCKER_MOUNTINFO: &str = "\
634 598 0:52 / / rw,relatime master:287 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,upperdir=/var/lib/docker/overlay2/123/diff,workdir=/var/lib/docker/overlay2/123/work
635 634 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
651 634 254:1 /var/lib/docker/containers/5d1e0c7b/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
652 634 254:1 /var/lib/docker/containers/5d1e0c7b/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw
";
    const CONTAINERD_MOUNTINFO: &str = "\
1201 1100 0:310 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs
";
    const K8S_CGROUP: &str =
        "12:memory:/kubepods/burstable/pod7c1d/3f1c2a\n11:cpu,cpuacct:/kubepods/burstable/pod7c1d/3f1c2a\n";
    const DOCKER_V1_CGROUP: &str = "12:pids:/docker/3f1c2a9b\n1:name=systemd:/docker/3f1c2a9b\n";

    #[test]
    fn container_markers_are_found_and_hosts_are_not_containers() {
        let facts = |dockerenv, cgroup: &str, mountinfo: &str| ContainerFacts {
            dockerenv,
            cgroup: cgroup.into(),
            mountinfo: mountinfo.into(),
        };
        let cases = [
            (facts(false, HOST_CGROUP, HOST_MOUNTINFO), None),
            (facts(false, "", ""), None),
            (facts(true, HOST_CGROUP, HOST_MOUNTINFO), Some("/.dockerenv")),
            (facts(false, DOCKER_V1_CGROUP, ""), Some("/proc/1/cgroup: /docker/3f1c2a9b")),
            (facts(false, K8S_CGROUP, ""), Some("kubepods")),
            (facts(false, "0::/\n", DOCKER_MOUNTINFO), Some("/var/lib/docker")),
            (facts(false, "0::/\n", CONTAINERD_MOUNTINFO), Some("containerd")),
        ];
        for (i, (facts, want)) in cases.iter().enumerate() {
            let got = container_marker(facts);
            match want {
                None => assert_eq!(got, None, "case {i}"),
                Some(text) => assert!(got.as_deref().is_some_and(|g| g.contains(text)), "case {i}: {got:?}"),
            }
        }
    }

    #[test]
    fn checks_report_container_and_firewall() {
        let config = Config::parse("[listen]\naddr = \"0.0.0.0:3080\"\nallow = [\"10.0.0.0/8\"]").unwrap();
        let host = ContainerFacts { dockerenv: false, cgroup: HOST_CGROUP.into(), mountinfo: HOST_MOUNTINFO.into() };
        let inside = ContainerFacts { dockerenv: true, cgroup: String::new(), mountinfo: String::new() };
        let status = |c: &ContainerFacts, d: DockerUser| {
            let out = checks(&config, c, &d);
            (out[0].status, out[1].status, out[1].fix.clone())
        };
        assert_eq!(status(&host, DockerUser::NoIptables).1, Status::Skipped);
        assert_eq!(status(&host, DockerUser::NoChain).1, Status::Ok);
        assert_eq!(status(&host, DockerUser::Failed("denied".into())).1, Status::Skipped);
        assert_eq!(status(&host, DockerUser::Rules(PROTECTED.into())).1, Status::Ok);
        let (container, firewall, fix) = status(&host, DockerUser::Rules(OTHER_PORT.into()));
        assert_eq!((container, firewall), (Status::Ok, Status::Finding));
        assert!(fix.unwrap().starts_with("iptables -I DOCKER-USER -p tcp --dport 3080 ! -s 10.0.0.0/8 -j DROP"));
        let (container, firewall, _) = status(&inside, DockerUser::Rules(DEFAULT_OLD.into()));
        assert_eq!((container, firewall), (Status::Finding, Status::Skipped));
        let out = checks(&config, &inside, &DockerUser::NoIptables);
        assert!(out[0].fix.as_deref().unwrap().contains("-p 127.0.0.1:3080:3080"), "{:?}", out[0].fix);
        let loopback = Config::parse("").unwrap();
        let out = checks(&loopback, &inside, &DockerUser::NoIptables);
        assert_eq!((out[0].status, out[1].status), (Status::Ok, Status::Skipped), "{out:?}");
        assert!(out[0].detail.contains("loopback only"), "{:?}", out[0].detail);
    }
}
