//! The harness itself works: a throwaway sshd serves the stock ssh client.

use crate::support::{ssh_base, sshd::SshdNode};

#[test]
fn sshd_node_serves_the_stock_client() {
    let node = SshdNode::start("");
    let out = ssh_base(&node.client_key, node.port)
        .arg(format!("{}@127.0.0.1", node.user))
        .arg("echo $((6*7))")
        .output()
        .expect("ssh runs");
    assert!(out.status.success(), "ssh failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    assert!(node.host_public.starts_with("ssh-ed25519 "));
    assert!(node.dir.path().join("sshd_config").exists());
}

#[test]
fn a_node_may_trust_the_gateways_own_key_instead_of_its_ca() {
    use crate::support::gateway::TestGateway;
    let gw = TestGateway::start("", "");
    let node = SshdNode::start("");
    let own = std::fs::read_to_string(gw.data_dir.join("ssh_host_ed25519_key.pub")).unwrap();
    let authorized = node.dir.path().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&own);
    std::fs::write(&authorized, keys).unwrap();
    gw.ctl_ok(&["nodes", "add", "plain", "--addr", &format!("127.0.0.1:{}", node.port)]);
    let key = gw.user_with_key("opal", "admin");
    let out = ssh_base(&key, gw.addr.port())
        .arg(format!("{}@plain@127.0.0.1", node.user))
        .arg("echo own-key")
        .output()
        .unwrap();
    if node.user == "root" || node.user == "ubuntu" {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "own-key\n", "{}", String::from_utf8_lossy(&out.stderr));
    } else {
        eprintln!("SKIPPED: the built-in admin role offers root and ubuntu only; tests run as {}", node.user);
    }
}
