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
