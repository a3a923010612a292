//! Debian's nginx, started by a test with its own prefix, in front of a gateway, serving
//! the `server` block `portcullis config nginx` prints, included verbatim.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::gateway::{BIN, TestGateway};
use super::{text, whoami};

/// A running nginx, stopped on drop.
pub struct Nginx {
    /// Its prefix: config, certificate, logs, temp files.
    pub dir: TempDir,
    /// The address it listens on.
    pub addr: String,
    child: Child,
}

impl Nginx {
    /// A free port on `ip`, for the gateway's `public_addr` before nginx starts.
    pub fn free_addr(ip: &str) -> String {
        let port = TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).expect("a free port").port();
        format!("{ip}:{port}")
    }

    /// Starts nginx on `addr` with a fresh self-signed certificate, proxying to `gw`
    /// and checking the gateway's certificate.
    pub fn start(addr: &str, gw: &TestGateway) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = dir.path();
        let (cert, key) = (prefix.join("nginx.crt"), prefix.join("nginx.key"));
        let ip = addr.rsplit_once(':').expect("IP:PORT").0;
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", &format!("/CN={ip}"), "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "openssl could not make nginx's certificate");
        let printed = Command::new(BIN)
            .args(["config", "nginx", "--server-name", ip, "--listen", addr])
            .args(["--upstream", &gw.addr.to_string(), "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--upstream-ca")
            .arg(gw.data_dir.join("tls_cert.pem"))
            .output()
            .expect("portcullis config nginx runs");
        assert!(printed.status.success(), "config nginx failed: {}", text(&printed.stderr));
        std::fs::write(prefix.join("portcullis.conf"), &printed.stdout).unwrap();
        std::fs::write(prefix.join("nginx.conf"), main_config(prefix)).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts (install-deps installs it)");
        let mut nginx = Nginx { dir, addr: addr.to_owned(), child };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen on {} within 10 s", self.addr);
    }
}

/// The smallest nginx.conf around the printed block: everything under the prefix,
/// in the foreground, workers as the user running the test.
fn main_config(prefix: &Path) -> String {
    let p = prefix.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser {user};\npid {p}/nginx.pid;\n\
         error_log {p}/error.log info;\nevents {{ worker_connections 256; }}\n\
         http {{\n    access_log {p}/access.log;\n    client_body_temp_path {p}/body;\n    \
         proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    \
         scgi_temp_path {p}/scgi;\n    include {p}/portcullis.conf;\n}}\n",
        user = whoami(),
    )
}

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers (SIGKILL would leave them running).
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-s", "TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
