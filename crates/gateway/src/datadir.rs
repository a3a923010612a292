//! The data directory: keys, CAs and the TLS certificate, made on first start and reused after.
//!
//! A first start is a data dir holding none of the key files; once any exists, all must
//! exist and parse. A missing or corrupt file is an error naming it, never a silent
//! re-initialisation that would lose keys (and with them every node's trust).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use russh::keys::ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::config::{self, Config};

/// File names inside the data dir.
pub const HOST_KEY: &str = "ssh_host_ed25519_key";
/// The SSH user CA: signs short-lived certificates the gateway logs in to nodes with.
pub const USER_CA: &str = "user_ca";
/// The SSH host CA: signs host certificates the gateway presents for `ssh -J`.
pub const HOST_CA: &str = "host_ca";
/// Self-signed TLS certificate (PEM), used when the config names none.
pub const TLS_CERT: &str = "tls_cert.pem";
/// Key of the self-signed TLS certificate (PEM).
pub const TLS_KEY: &str = "tls_key.pem";
/// X.509 CA that signs agents' client certificates (mutual TLS on agent tunnels).
pub const AGENT_CA_CERT: &str = "agent_ca_cert.pem";
/// Key of the agent CA.
pub const AGENT_CA_KEY: &str = "agent_ca_key.pem";
/// The admin API's Unix socket.
pub const ADMIN_SOCK: &str = "admin.sock";

/// Paths and key material of an opened data dir.
pub struct DataDir {
    /// The directory itself.
    pub root: PathBuf,
    /// The gateway's SSH host key.
    pub host_key: PrivateKey,
    /// SSH user CA.
    pub user_ca: PrivateKey,
    /// SSH host CA.
    pub host_ca: PrivateKey,
    /// TLS certificate chain (PEM text).
    pub tls_cert_pem: String,
    /// TLS private key (PEM text).
    pub tls_key_pem: String,
    /// Agent CA certificate (PEM).
    pub agent_ca_cert_pem: String,
    /// Agent CA key (PEM).
    pub agent_ca_key_pem: String,
    /// Whether this open created the data dir's keys.
    pub first_start: bool,
}

impl DataDir {
    /// Opens the data dir, creating it and its keys on first start.
    pub fn open(config: &Config) -> anyhow::Result<DataDir> {
        let root = config.data_dir.clone();
        create_private_dir(&root)?;
        let ssh_files = [HOST_KEY, USER_CA, HOST_CA];
        let present: Vec<&str> = ssh_files.iter().copied().filter(|f| root.join(f).exists()).collect();
        let first_start = present.is_empty();
        if first_start && let Some(db) = sqlite_file(config).filter(|db| db.exists()) {
            bail!(
                "data dir {} has a database ({}) but no keys: restore the keys from backup (refusing to make new ones)",
                root.display(),
                db.display()
            );
        }
        if first_start {
            for name in ssh_files {
                let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                    .context("cannot generate an Ed25519 key")?;
                let pem = key.to_openssh(LineEnding::LF)?;
                write_private(&root.join(name), pem.as_bytes())?;
                write_private(&root.join(format!("{name}.pub")), key.public_key().to_openssh()?.as_bytes())?;
            }
        } else if present.len() != ssh_files.len() {
            let missing: Vec<_> = ssh_files.iter().filter(|f| !present.contains(f)).collect();
            bail!(
                "data dir {} is incomplete: {missing:?} missing while {present:?} exist; restore them from backup (refusing to make new keys)",
                root.display()
            );
        }
        let host_key = read_key(&root.join(HOST_KEY))?;
        let user_ca = read_key(&root.join(USER_CA))?;
        let host_ca = read_key(&root.join(HOST_CA))?;
        let (tls_cert_pem, tls_key_pem) = match &config.tls {
            Some(files) => (read_text(&files.cert)?, read_text(&files.key)?),
            None => self_signed(&root, config, first_start)?,
        };
        let (agent_ca_cert_pem, agent_ca_key_pem) = agent_ca(&root)?;
        Ok(DataDir {
            root,
            host_key,
            user_ca,
            host_ca,
            tls_cert_pem,
            tls_key_pem,
            agent_ca_cert_pem,
            agent_ca_key_pem,
            first_start,
        })
    }

    /// Path of a file inside the data dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn self_signed(root: &Path, config: &Config, first_start: bool) -> anyhow::Result<(String, String)> {
    let (cert_path, key_path) = (root.join(TLS_CERT), root.join(TLS_KEY));
    if !cert_path.exists() && !key_path.exists() {
        if !first_start {
            tracing::warn!("no TLS certificate in the data dir: making a new self-signed one");
        }
        let names = certificate_names(config);
        let made = rcgen::generate_simple_self_signed(names).context("cannot make a self-signed TLS certificate")?;
        write_private(&key_path, made.signing_key.serialize_pem().as_bytes())?;
        write_private(&cert_path, made.cert.pem().as_bytes())?;
    }
    Ok((read_text(&cert_path)?, read_text(&key_path)?))
}

/// Parameters of the agent CA; issued certificates name it as their issuer.
pub fn agent_ca_params() -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "portcullis agent CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

/// Loads the agent CA, making it when absent (no agent can hold a certificate from a CA that never existed).
fn agent_ca(root: &Path) -> anyhow::Result<(String, String)> {
    let (cert_path, key_path) = (root.join(AGENT_CA_CERT), root.join(AGENT_CA_KEY));
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => {
            let key = rcgen::KeyPair::generate().context("cannot make the agent CA key")?;
            let cert = agent_ca_params().self_signed(&key).context("cannot make the agent CA")?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_private(&cert_path, cert.pem().as_bytes())?;
        }
        (true, true) => {}
        _ => bail!(
            "{} and {} must both exist; restore the missing one from backup (agents' identities depend on it)",
            cert_path.display(),
            key_path.display()
        ),
    }
    let key_pem = read_text(&key_path)?;
    rcgen::KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a valid PEM private key (corrupt?)", key_path.display()))?;
    Ok((read_text(&cert_path)?, key_pem))
}

/// The SQLite database file the config names, if it is SQLite.
pub fn sqlite_file(config: &Config) -> Option<PathBuf> {
    config.storage_url.strip_prefix("sqlite://").map(|f| config.data_dir.join(f))
}

/// Subject names of the self-signed certificate: the listen address and every public name.
pub fn certificate_names(config: &Config) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    let ip = config.listen.addr.ip();
    if ip.is_unspecified() {
        names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    } else {
        names.push(ip.to_string());
    }
    for public in &config.listen.public_addr {
        names.push(config::host_of(public).to_string());
    }
    names.sort();
    names.dedup();
    names
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = read_text(path)?;
    PrivateKey::from_openssh(text.as_bytes())
        .with_context(|| format!("{} is not a valid OpenSSH private key (corrupt?)", path.display()))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates a directory readable by its owner only (or tightens an existing one).
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", path.display()))
}

/// Writes a new file with mode 0600, failing if it already exists.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::parse("[listen]\npublic_addr = [\"gw.example.com:443\"]").unwrap();
        c.data_dir = dir.join("data");
        c
    }

    #[test]
    fn first_start_creates_then_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path());
        let first = DataDir::open(&c).unwrap();
        assert!(first.first_start);
        let mode = fs::metadata(&c.data_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let key_mode = fs::metadata(c.data_dir.join(USER_CA)).unwrap().permissions().mode() & 0o777;
        assert_eq!(key_mode, 0o600);
        let again = DataDir::open(&c).unwrap();
        assert!(!again.first_start);
        assert_eq!(first.host_key.public_key(), again.host_key.public_key());
        assert_eq!(first.user_ca.public_key(), again.user_ca.public_key());
        assert_eq!(first.tls_cert_pem, again.tls_cert_pem);
        assert_ne!(first.user_ca.public_key(), first.host_ca.public_key());
    }

    #[test]
    fn corrupt_or_missing_key_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path());
        DataDir::open(&c).unwrap();
        fs::write(c.data_dir.join(HOST_CA), "garbage").unwrap();
        let err = format!("{:#}", DataDir::open(&c).err().unwrap());
        assert!(err.contains(HOST_CA) && err.contains("corrupt"), "{err}");
        fs::remove_file(c.data_dir.join(HOST_CA)).unwrap();
        let err = format!("{:#}", DataDir::open(&c).err().unwrap());
        assert!(err.contains("host_ca") && err.contains("missing"), "{err}");
    }

    #[test]
    fn certificate_names_cover_listen_and_public_addr() {
        let tmp = tempfile::tempdir().unwrap();
        let names = certificate_names(&config(tmp.path()));
        assert!(names.contains(&"127.0.0.1".to_string()));
        assert!(names.contains(&"gw.example.com".to_string()));
    }
}
