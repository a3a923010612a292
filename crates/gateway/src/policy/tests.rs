//! Table-driven checks of `authorize`, `permitted` and `visible_nodes` on the built-in roles.

use super::*;

const INSIDE: &str = "127.0.0.1";
const OUTSIDE: &str = "203.0.113.9";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo { name: name.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

/// A user holding the named built-in roles, in that order.
fn user(roles: &[&str]) -> Identity {
    let builtin = builtin_roles();
    Identity {
        user: "u".into(),
        roles: roles.iter().map(|name| builtin.iter().find(|r| r.name() == *name).unwrap().clone()).collect(),
    }
}

/// What a granted case must show: login, record, max_session in hours.
type Grant = (&'static str, bool, Option<u64>);

#[test]
fn authorize_table() {
    let h800 = node("gpu-01", &[("gpu", "h800")]);
    let a100 = node("gpu-02", &[("gpu", "a100")]);
    let bare = node("cpu-01", &[]);
    let dev: &[&str] = &["restricted-dev"];
    let admin: &[&str] = &["admin"];
    let both: &[&str] = &["restricted-dev", "admin"];
    let both_admin_first: &[&str] = &["admin", "restricted-dev"];
    use Action::*;
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], Option<&NodeInfo>, Option<&str>, &str, Action, Result<Grant, Denied>)] = &[
        ("vendor shell on h800", dev, Some(&h800), Some("vendor"), OUTSIDE, Shell, Ok(("vendor", true, Some(8)))),
        ("vendor exec on h800", dev, Some(&h800), Some("vendor"), OUTSIDE, Exec, Ok(("vendor", true, Some(8)))),
        ("vendor scp on h800", dev, Some(&h800), Some("vendor"), INSIDE, FileTransfer, Ok(("vendor", true, Some(8)))),
        ("vendor over IPv6", dev, Some(&h800), Some("vendor"), "2001:db8::7", Shell, Ok(("vendor", true, Some(8)))),
        ("vendor default login", dev, Some(&h800), None, OUTSIDE, Shell, Ok(("vendor", true, Some(8)))),
        ("vendor on a100", dev, Some(&a100), Some("vendor"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("vendor on unlabelled", dev, Some(&bare), Some("vendor"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("vendor on unknown node", dev, None, Some("vendor"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("vendor as root", dev, Some(&h800), Some("root"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("vendor port_forward", dev, Some(&h800), Some("vendor"), OUTSIDE, PortForward, Err(Denied::NotPermitted(PortForward))),
        ("vendor agent_forward", dev, Some(&h800), Some("vendor"), OUTSIDE, AgentForward, Err(Denied::NotPermitted(AgentForward))),
        ("vendor x11, default login", dev, Some(&h800), None, OUTSIDE, X11, Err(Denied::NotPermitted(X11))),
        ("vendor port_forward on a100", dev, Some(&a100), Some("vendor"), OUTSIDE, PortForward, Err(Denied::NoAccess)),
        ("admin root from loopback", admin, Some(&a100), Some("root"), INSIDE, Shell, Ok(("root", false, None))),
        ("admin ubuntu over ::1", admin, Some(&bare), Some("ubuntu"), "::1", Exec, Ok(("ubuntu", false, None))),
        ("admin from mapped loopback", admin, Some(&h800), Some("root"), "::ffff:127.0.0.1", Shell, Ok(("root", false, None))),
        ("admin from tailnet", admin, Some(&h800), None, "100.64.0.5", PortForward, Ok(("root", false, None))),
        ("admin default login", admin, Some(&h800), None, INSIDE, Shell, Ok(("root", false, None))),
        ("admin from outside", admin, Some(&h800), Some("root"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("admin from outside, default login", admin, Some(&h800), None, OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("admin as vendor", admin, Some(&h800), Some("vendor"), INSIDE, Shell, Err(Denied::NoAccess)),
        ("admin x11", admin, Some(&h800), Some("root"), INSIDE, X11, Err(Denied::NotPermitted(X11))),
        ("both: vendor stays recorded", both, Some(&h800), Some("vendor"), INSIDE, Shell, Ok(("vendor", true, Some(8)))),
        ("both: root unrecorded", both, Some(&h800), Some("root"), INSIDE, Shell, Ok(("root", false, None))),
        ("both: default login, dev first", both, Some(&h800), None, INSIDE, Shell, Ok(("vendor", true, Some(8)))),
        ("both: default login, admin first", both_admin_first, Some(&h800), None, INSIDE, Shell, Ok(("root", false, None))),
        ("both: port_forward default login skips dev", both, Some(&h800), None, INSIDE, PortForward, Ok(("root", false, None))),
        ("both: vendor port_forward", both, Some(&h800), Some("vendor"), INSIDE, PortForward, Err(Denied::NotPermitted(PortForward))),
        ("both from outside: root", both, Some(&h800), Some("root"), OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("both from outside: a100", both, Some(&a100), None, OUTSIDE, Shell, Err(Denied::NoAccess)),
        ("no roles", &[], Some(&h800), None, INSIDE, Shell, Err(Denied::NoAccess)),
    ];
    for (what, roles, node, login, client, action, want) in cases {
        let identity = user(roles);
        let got = authorize(&identity, *node, *login, ip(client), *action);
        match (got, want) {
            (Ok(granted), Ok((login, record, hours))) => {
                let node = node.unwrap();
                assert_eq!(granted.user(), "u", "{what}");
                assert_eq!(granted.node(), node.name, "{what}");
                assert_eq!(granted.login(), *login, "{what}");
                assert_eq!(granted.action(), *action, "{what}");
                assert_eq!(granted.client(), ip(client), "{what}");
                assert_eq!(granted.record(), *record, "{what}");
                let limit = hours.map(|h| Duration::from_secs(h * 3600));
                assert_eq!(granted.max_session(), limit, "{what}");
                assert!(!granted.roles().is_empty(), "{what}");
            }
            (Err(denied), Err(want)) => assert_eq!(denied, *want, "{what}"),
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

fn custom(text: &str) -> Identity {
    Identity { user: "u".into(), roles: parse_roles_toml(text).unwrap() }
}

#[test]
fn an_unrecorded_role_never_lifts_recording_of_the_same_login() {
    // A second role grants the vendor login unrecorded exec; the recorded role still wins.
    let identity = custom(
        r#"
        [[role]]
        name = "vendor"
        nodes = { gpu = "*" }
        logins = ["vendor"]
        allow = ["shell"]
        source_cidrs = ["0.0.0.0/0"]
        max_session = "1h"

        [[role]]
        name = "loophole"
        nodes = { "*" = "*" }
        logins = ["vendor"]
        allow = ["exec", "shell"]
        record = false
        source_cidrs = ["0.0.0.0/0"]
        max_session = "2h"
        "#,
    );
    let gpu = node("gpu-01", &[("gpu", "h800")]);
    let cpu = node("cpu-01", &[]);
    let cases = [
        (&gpu, Action::Exec, true, 2, &["loophole"][..]),
        (&gpu, Action::Shell, true, 2, &["vendor", "loophole"]),
        (&cpu, Action::Shell, false, 2, &["loophole"]),
    ];
    for (node, action, record, hours, roles) in cases {
        let granted = authorize(&identity, Some(node), Some("vendor"), ip(OUTSIDE), action).unwrap();
        assert_eq!(granted.record(), record, "{} {action}", node.name);
        let limit = Some(Duration::from_secs(hours * 3600));
        assert_eq!(granted.max_session(), limit, "{} {action}", node.name);
        assert_eq!(granted.roles(), roles, "{} {action}", node.name);
    }
}

#[test]
fn max_session_is_unlimited_if_any_granting_role_is() {
    let identity = custom(
        r#"
        [[role]]
        name = "short"
        nodes = { "*" = "*" }
        logins = ["ops"]
        allow = ["shell"]
        source_cidrs = ["::/0", "0.0.0.0/0"]
        max_session = "30m"

        [[role]]
        name = "open"
        nodes = { "*" = "*" }
        logins = ["ops"]
        allow = ["shell"]
        source_cidrs = ["10.0.0.0/8"]
        "#,
    );
    let n = node("n", &[]);
    let cases = [("10.1.1.1", None), (OUTSIDE, Some(Duration::from_secs(1800)))];
    for (client, want) in cases {
        let granted = authorize(&identity, Some(&n), None, ip(client), Action::Shell).unwrap();
        assert_eq!(granted.max_session(), want, "{client}");
    }
}

#[test]
fn permitted_table() {
    use Permission::*;
    let cases: &[(&[&str], &str, Permission, bool)] = &[
        (&["restricted-dev"], INSIDE, RecordingsRead, false),
        (&["restricted-dev"], OUTSIDE, AuditRead, false),
        (&["restricted-dev"], OUTSIDE, Shell, true),
        (&["admin"], INSIDE, RecordingsRead, true),
        (&["admin"], "::1", RolesManage, true),
        (&["admin"], "100.64.0.1", SessionsObserve, true),
        (&["admin"], OUTSIDE, RecordingsRead, false),
        (&["admin"], INSIDE, AgentForward, false),
        (&["restricted-dev", "admin"], OUTSIDE, RecordingsRead, false),
        (&["restricted-dev", "admin"], INSIDE, UsersManage, true),
        (&[], INSIDE, Shell, false),
    ];
    for (roles, client, perm, want) in cases {
        let got = permitted(&user(roles), ip(client), *perm);
        assert_eq!(got, *want, "{roles:?} from {client}: {perm}");
    }
}

#[test]
fn visible_nodes_table() {
    let nodes = [node("gpu-01", &[("gpu", "h800")]), node("gpu-02", &[("gpu", "a100")]), node("cpu-01", &[])];
    let cases: &[(&[&str], &str, &[(&str, &[&str])])] = &[
        (&["restricted-dev"], OUTSIDE, &[("gpu-01", &["vendor"])]),
        (&["admin"], OUTSIDE, &[]),
        (
            &["admin"],
            INSIDE,
            &[("gpu-01", &["root", "ubuntu"]), ("gpu-02", &["root", "ubuntu"]), ("cpu-01", &["root", "ubuntu"])],
        ),
        (
            &["restricted-dev", "admin"],
            INSIDE,
            &[
                ("gpu-01", &["vendor", "root", "ubuntu"]),
                ("gpu-02", &["root", "ubuntu"]),
                ("cpu-01", &["root", "ubuntu"]),
            ],
        ),
        (&["restricted-dev", "admin"], OUTSIDE, &[("gpu-01", &["vendor"])]),
    ];
    for (roles, client, want) in cases {
        let got: Vec<(&str, Vec<String>)> = visible_nodes(&user(roles), ip(client), &nodes)
            .into_iter()
            .map(|(n, logins)| (n.name.as_str(), logins))
            .collect();
        let want: Vec<(&str, Vec<String>)> =
            want.iter().map(|(n, logins)| (*n, logins.iter().map(|l| l.to_string()).collect())).collect();
        assert_eq!(got, want, "{roles:?} from {client}");
    }
}

#[test]
fn nodes_only_for_management_roles_are_not_visible() {
    let identity = custom(
        r#"
        [[role]]
        name = "auditor"
        nodes = { "*" = "*" }
        logins = ["root"]
        allow = ["audit.read"]
        source_cidrs = ["0.0.0.0/0"]
        "#,
    );
    let nodes = [node("n", &[])];
    assert!(visible_nodes(&identity, ip(INSIDE), &nodes).is_empty());
    let got = authorize(&identity, Some(&nodes[0]), None, ip(INSIDE), Action::Shell);
    assert_eq!(got.unwrap_err(), Denied::NotPermitted(Action::Shell));
    assert!(permitted(&identity, ip(INSIDE), Permission::AuditRead));
}

#[test]
fn denials_tell_the_user_nothing_but_explain_tells_the_audit() {
    let dev = user(&["restricted-dev", "admin"]);
    let h800 = node("gpu-01", &[("gpu", "h800")]);
    let a100 = node("gpu-02", &[("gpu", "a100")]);
    let cases: &[(Option<&NodeInfo>, Option<&str>, Action, &str, &str)] = &[
        (None, None, Action::Shell, "access denied", "no such node"),
        (
            Some(&a100),
            None,
            Action::Shell,
            "access denied",
            "roles [admin] select node gpu-02 but not from 203.0.113.9",
        ),
        (Some(&h800), Some("root"), Action::Shell, "access denied", "login root is offered by no role"),
        (
            Some(&h800),
            Some("vendor"),
            Action::PortForward,
            "port_forward is not permitted",
            "no role allows port_forward as vendor",
        ),
        (Some(&h800), None, Action::Shell, "", "granted shell as vendor on gpu-01 by roles [restricted-dev]"),
    ];
    for (node, login, action, shown, detail) in cases {
        let result = authorize(&dev, *node, *login, ip(OUTSIDE), *action);
        let shown_now = result.err().map(|d| d.to_string()).unwrap_or_default();
        assert_eq!(shown_now, *shown);
        let why = explain(&dev, *node, *login, ip(OUTSIDE), *action);
        assert!(why.contains(detail), "{why:?} lacks {detail:?}");
    }
    let nobody = user(&[]);
    let why = explain(&nobody, Some(&h800), None, ip(OUTSIDE), Action::Shell);
    assert_eq!(why, "no role of u selects node gpu-01");
}
