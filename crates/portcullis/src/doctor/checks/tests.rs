use std::path::PathBuf;

use super::*;
use crate::doctor::Status;
use crate::doctor::docker::{ContainerFacts, DockerUser};
use crate::doctor::facts::CertFacts;

fn listen_of(toml: &str) -> Listen {
    Config::parse(&format!("[listen]\n{toml}")).unwrap().listen
}

/// (config lines, check index, status, text the detail holds)
#[test]
fn listen_checks() {
    let cases = [
        ("", 0, Status::Ok, "127.0.0.1:3080, allow 127.0.0.0/8, ::1/128 (this host only)"),
        ("addr = \"0.0.0.0:3080\"\nallow = [\"0.0.0.0/0\"]", 0, Status::Finding, "every interface"),
        ("addr = \"[::]:3080\"\nallow = [\"10.0.0.0/8\", \"::/0\"]", 0, Status::Finding, "(::/0)"),
        ("addr = \"0.0.0.0:3080\"\nallow = [\"100.64.0.0/10\"]", 0, Status::Ok, "the networks allowed"),
        ("addr = \"10.0.0.5:3080\"\nallow = [\"0.0.0.0/0\"]", 0, Status::Ok, "10.0.0.5:3080"),
        ("addr = \"0.0.0.0:3080\"\nallow = []", 0, Status::Finding, "listen.allow is empty"),
        ("", 1, Status::Ok, "none"),
        ("trusted_proxies = [\"10.0.0.2/32\", \"10.1.0.0/16\"]", 1, Status::Ok, "10.0.0.2/32, 10.1.0.0/16"),
        ("trusted_proxies = [\"0.0.0.0/0\"]", 1, Status::Finding, "includes 0.0.0.0/0"),
        ("trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.2\"]", 1, Status::Finding, "includes 10.0.0.0/8:"),
        ("trusted_proxies = [\"2001:db8::/32\"]", 1, Status::Finding, "2001:db8::/32"),
        ("", 2, Status::Ok, "off"),
        ("proxy_protocol = \"optional\"", 2, Status::Finding, "no trusted_proxies"),
        ("proxy_protocol = \"optional\"\ntrusted_proxies = [\"127.0.0.1\"]", 2, Status::Ok, "optional"),
        ("proxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.1\"]", 2, Status::Ok, "required"),
    ];
    for (toml, index, status, text) in cases {
        let out = listen(&listen_of(toml));
        assert_eq!(out.len(), 3);
        let c = &out[index];
        assert_eq!(c.status, status, "{toml:?}: {c:?}");
        assert!(c.detail.contains(text), "{toml:?}: {:?} lacks {text:?}", c.detail);
        assert_eq!(c.fix.is_some(), status == Status::Finding, "{toml:?}: {c:?}");
    }
}

fn info(kind: FileKind, mode: u32, uid: u32) -> Option<FileInfo> {
    Some(FileInfo { kind, mode, uid })
}

#[test]
fn data_dir_and_admin_socket_checks() {
    let dir = Path::new("/d");
    let cases = [
        (data_dir(dir, None), Status::Skipped, "does not exist yet"),
        (data_dir(dir, info(FileKind::Dir, 0o700, 5)), Status::Ok, "mode 0700"),
        (data_dir(dir, info(FileKind::Dir, 0o755, 5)), Status::Finding, "mode 0755"),
        (data_dir(dir, info(FileKind::Dir, 0o710, 5)), Status::Finding, "mode 0710"),
        (data_dir(dir, info(FileKind::Other, 0o700, 5)), Status::Finding, "not a directory"),
    ];
    let sock = Path::new("/d/admin.sock");
    let sockets = [
        (admin_socket(sock, None, Some(5)), Status::Skipped, "not running"),
        (admin_socket(sock, info(FileKind::Socket, 0o600, 5), Some(5)), Status::Ok, "mode 0600, owner uid 5"),
        (admin_socket(sock, info(FileKind::Socket, 0o666, 5), Some(5)), Status::Finding, "mode 0666"),
        (admin_socket(sock, info(FileKind::Socket, 0o660, 5), Some(5)), Status::Finding, "mode 0660"),
        (
            admin_socket(sock, info(FileKind::Socket, 0o600, 0), Some(5)),
            Status::Finding,
            "uid 0, the data dir by uid 5",
        ),
        (admin_socket(sock, info(FileKind::Other, 0o600, 5), Some(5)), Status::Finding, "not a socket"),
    ];
    for (c, status, text) in cases.into_iter().chain(sockets) {
        assert_eq!(c.status, status, "{c:?}");
        assert!(c.detail.contains(text), "{:?} lacks {text:?}", c.detail);
        assert_eq!(c.fix.is_some(), status == Status::Finding, "{c:?}");
    }
    let fix = admin_socket(sock, info(FileKind::Socket, 0o666, 5), Some(5)).fix.unwrap();
    assert!(fix.starts_with("chmod 600 /d/admin.sock"), "{fix}");
}

fn node(name: &str, agent: bool, pinned: bool, reach: Option<Result<(), String>>, online: Option<bool>) -> NodeFacts {
    let addr = (!agent).then(|| "10.0.0.11:22".to_string());
    NodeFacts { name: name.into(), addr, agent, pinned, reach, online }
}

#[test]
fn node_checks() {
    let list = NodeList::Nodes(vec![
        node("a", false, true, Some(Ok(())), None),
        node("b", false, false, Some(Err("Connection refused (os error 111)".into())), None),
        node("c", true, true, None, None),
        node("d", true, true, None, Some(true)),
        node("e", true, true, None, Some(false)),
    ]);
    let got: Vec<(String, Status)> = nodes(&list).into_iter().map(|c| (c.check, c.status)).collect();
    let want = [
        ("node.a", Status::Ok),
        ("node.a.host_key", Status::Ok),
        ("node.b", Status::Finding),
        ("node.b.host_key", Status::Finding),
        ("node.c", Status::Skipped),
        ("node.c.host_key", Status::Ok),
        ("node.d", Status::Ok),
        ("node.d.host_key", Status::Ok),
        ("node.e", Status::Finding),
        ("node.e.host_key", Status::Ok),
    ];
    assert_eq!(got, want.map(|(c, s)| (c.to_string(), s)));
    let out = nodes(&list);
    assert!(out[2].detail.contains("10.0.0.11:22 is unreachable: Connection refused"), "{:?}", out[2]);
    assert!(out[3].fix.as_deref().unwrap().starts_with("connect once as an operator"));
    assert_eq!(out[4].detail, "agent (online state is known to the running gateway: ctl nodes ls)");

    assert_eq!(nodes(&NodeList::Nodes(vec![]))[0].status, Status::Ok);
    assert_eq!(nodes(&NodeList::NoDatabase("/d/portcullis.db".into()))[0].status, Status::Skipped);
    assert_eq!(nodes(&NodeList::Failed("locked".into()))[0].status, Status::Skipped);
}

fn dir(info: Option<FileInfo>, write: Result<(), String>, free: Option<u64>) -> RecordingFacts {
    RecordingFacts::Dir { path: "/d/recordings".into(), info, write, free }
}

#[test]
fn recording_checks() {
    let gib = 1u64 << 30;
    let private = info(FileKind::Dir, 0o700, 5);
    let cases = [
        (dir(private, Ok(()), Some(60 * gib)), true, Status::Ok, "writable, 60.0 GiB free"),
        (dir(private, Ok(()), None), true, Status::Ok, "free space unknown"),
        (dir(private, Ok(()), Some(gib - 1)), true, Status::Finding, "only 1023 MiB free"),
        (dir(private, Err("Permission denied (os error 13)".into()), Some(gib)), true, Status::Finding, "cannot write"),
        (dir(info(FileKind::Dir, 0o755, 5), Ok(()), Some(gib)), true, Status::Finding, "mode 0755"),
        (dir(info(FileKind::Other, 0o600, 5), Ok(()), Some(gib)), true, Status::Finding, "not a directory"),
        (dir(None, Err("absent".into()), None), true, Status::Finding, "does not exist"),
        (dir(None, Err("absent".into()), None), false, Status::Skipped, "not made yet"),
        (RecordingFacts::Remote("s3://bucket/p".into()), true, Status::Skipped, "only file://"),
    ];
    for (facts, data_dir_exists, status, text) in cases {
        let c = recordings(&facts, data_dir_exists);
        assert_eq!(c.status, status, "{c:?}");
        assert!(c.detail.contains(text), "{:?} lacks {text:?}", c.detail);
        assert_eq!(c.fix.is_some(), status == Status::Finding, "{c:?}");
    }
}

#[test]
fn a_config_checked_before_first_start_has_no_findings() {
    let config = Config::parse("data_dir = \"/nonexistent/portcullis-data\"").unwrap();
    let facts = Facts {
        now: 1_900_000_000,
        data_dir: None,
        admin_socket: None,
        certificate: CertFacts { path: PathBuf::from("/nonexistent/tls_cert.pem"), configured: false, pem: Ok(None) },
        nodes: NodeList::NoDatabase("/nonexistent/portcullis-data/portcullis.db".into()),
        recordings: dir(None, Err("absent".into()), None),
        container: ContainerFacts { dockerenv: false, cgroup: "0::/init.scope\n".into(), mountinfo: String::new() },
        docker_user: DockerUser::NoIptables,
    };
    let report = all(&config, &facts);
    let checks: Vec<&str> = report.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(
        checks,
        [
            "listen.exposure",
            "listen.trusted_proxies",
            "listen.proxy_protocol",
            "data_dir",
            "admin.socket",
            "tls.cert",
            "tls.names",
            "nodes",
            "recordings",
            "docker.container",
            "docker.firewall",
        ]
    );
    assert!(report.iter().all(|c| c.status != Status::Finding), "{report:?}");
}
