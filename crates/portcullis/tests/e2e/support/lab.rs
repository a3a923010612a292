//! A gateway with one real sshd node trusting its user CA, test roles and users.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::gateway::TestGateway;
use super::ssh_base;
use super::sshd::SshdNode;

/// Gateway + node + a recorded vendor and an unrecorded operator.
pub struct Lab {
    /// The gateway.
    pub gw: TestGateway,
    /// The node, registered as `gpu-01` with `gpu=h800`.
    pub node: SshdNode,
    /// Key of `vendor` (role `vendor-test`: recorded, gpu=h800 only).
    pub vendor_key: PathBuf,
    /// Key of `ops` (role `ops-test`: unrecorded, every node, loopback only).
    pub ops_key: PathBuf,
}

impl Lab {
    /// Starts everything; `listen` and `extra` go to the gateway's config.
    pub fn start(listen: &str, extra: &str) -> Lab {
        let gw = TestGateway::start(listen, extra);
        let ca = gw.ctl_ok(&["ca", "export", "--kind", "user"]);
        let ca_file = gw.dir.path().join("user_ca.pub");
        std::fs::write(&ca_file, ca).unwrap();
        let node = SshdNode::start(&format!("TrustedUserCAKeys {}", ca_file.display()));
        let login = &node.user;
        let roles = gw.dir.path().join("test-roles.toml");
        std::fs::write(
            &roles,
            format!(
                r#"[[role]]
name = "vendor-test"
nodes = {{ gpu = "h800" }}
logins = ["{login}"]
allow = ["shell", "exec", "file_transfer"]
record = true
source_cidrs = ["127.0.0.0/8"]

[[role]]
name = "ops-test"
nodes = {{ "*" = "*" }}
logins = ["{login}"]
allow = ["shell", "exec", "file_transfer"]
record = false
source_cidrs = ["127.0.0.0/8"]
"#
            ),
        )
        .unwrap();
        gw.ctl_ok(&["roles", "apply", roles.to_str().unwrap()]);
        gw.ctl_ok(&["nodes", "add", "gpu-01", "--addr", &format!("127.0.0.1:{}", node.port), "--labels", "gpu=h800"]);
        gw.ctl_ok(&["nodes", "add", "gpu-02", "--addr", &format!("127.0.0.1:{}", node.port), "--labels", "gpu=a100"]);
        let vendor_key = gw.user_with_key("vendor", "vendor-test");
        let ops_key = gw.user_with_key("ops", "ops-test");
        Lab { gw, node, vendor_key, ops_key }
    }

    /// `ssh -p PORT LOGIN@NODE@127.0.0.1 ARGS...` with a key.
    pub fn ssh(&self, key: &Path, target: &str) -> Command {
        let mut cmd = ssh_base(key, self.gw.addr.port());
        cmd.arg(format!("{target}@127.0.0.1"));
        cmd
    }

    /// The node's login at `node`.
    pub fn target(&self, node: &str) -> String {
        format!("{}@{node}", self.node.user)
    }

    /// Runs a command as `who` on `node`, returning the output.
    pub fn exec(&self, key: &Path, node: &str, command: &str) -> Output {
        self.ssh(key, &self.target(node)).arg(command).output().expect("ssh runs")
    }
}
