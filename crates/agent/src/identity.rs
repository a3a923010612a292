//! The agent's data dir: its SSH host key, and after a join its identity.
//!
//! ```text
//! DATA_DIR/                      0700
//!   ssh_host_ed25519_key         0600  OpenSSH private key: the agent's SSH host key (both SSH layers)
//!   ssh_host_ed25519_key.pub     0644  its public half, as sent in the join request
//!   client_cert.pem              0600  client certificate for mutual TLS (from the join)
//!   client_key.pem               0600  its private key
//!   identity.json                0600  node name, gateway address, TLS pin, user CA; written last
//! ```

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use russh::keys::ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// The SSH host key file.
pub const HOST_KEY: &str = "ssh_host_ed25519_key";
/// The identity file; its presence means the agent has joined.
pub const IDENTITY: &str = "identity.json";
/// The client certificate file.
pub const CLIENT_CERT: &str = "client_cert.pem";
/// The client key file.
pub const CLIENT_KEY: &str = "client_key.pem";

/// What a join established, kept in `identity.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The node name the gateway gave.
    pub node: String,
    /// The gateway joined (`HOST:PORT`).
    pub gateway: String,
    /// Lower-case hex SHA-256 of the gateway's TLS certificate.
    pub pin: String,
    /// The gateway's SSH user CA (OpenSSH public key line).
    pub user_ca: String,
}

/// An identity with its client certificate and key (PEM).
#[derive(Clone)]
pub struct Joined {
    /// identity.json.
    pub identity: Identity,
    /// client_cert.pem.
    pub cert_pem: String,
    /// client_key.pem.
    pub key_pem: String,
}

/// The agent's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (making it, 0700) the data dir; tightens a dir others can read.
    pub fn open(root: &Path) -> anyhow::Result<DataDir> {
        if !root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .with_context(|| format!("cannot make the data dir {}", root.display()))?;
        }
        let meta = std::fs::metadata(root).with_context(|| format!("cannot read the data dir {}", root.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {} to its owner (0700)", root.display()))?;
            tracing::warn!(dir = %root.display(), "the data dir was open to others; restricted to 0700");
        }
        Ok(DataDir { root: root.to_path_buf() })
    }

    /// A path inside the data dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The SSH host key, made on first use.
    pub fn host_key(&self) -> anyhow::Result<PrivateKey> {
        let path = self.path(HOST_KEY);
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            return PrivateKey::from_openssh(&text)
                .with_context(|| format!("{} is not an OpenSSH private key (corrupt?)", path.display()));
        }
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).context("cannot make the host key")?;
        let private = key.to_openssh(LineEnding::LF).context("cannot encode the host key")?;
        let mut public = key.public_key().clone();
        public.set_comment("portcullis-agent");
        write_file(&self.path(&format!("{HOST_KEY}.pub")), public.to_openssh()?.as_bytes(), 0o644)?;
        write_file(&path, private.as_bytes(), 0o600)?;
        tracing::info!(fingerprint = %public.fingerprint(Default::default()), "made the agent's SSH host key");
        Ok(key)
    }

    /// The identity of a joined agent; `None` before the join.
    pub fn joined(&self) -> anyhow::Result<Option<Joined>> {
        let path = self.path(IDENTITY);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let identity: Identity = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid identity (corrupt?)", path.display()))?;
        PublicKey::from_openssh(&identity.user_ca)
            .with_context(|| format!("{}: user_ca is not an OpenSSH public key", path.display()))?;
        let read = |name: &str| {
            let path = self.path(name);
            std::fs::read_to_string(&path).with_context(|| {
                format!("cannot read {} (delete {IDENTITY} and join again with a new token)", path.display())
            })
        };
        Ok(Some(Joined { identity, cert_pem: read(CLIENT_CERT)?, key_pem: read(CLIENT_KEY)? }))
    }

    /// Saves a join's result; identity.json last, so a crash midway leaves an agent that joins again.
    pub fn save(&self, joined: &Joined) -> anyhow::Result<()> {
        write_file(&self.path(CLIENT_CERT), joined.cert_pem.as_bytes(), 0o600)?;
        write_file(&self.path(CLIENT_KEY), joined.key_pem.as_bytes(), 0o600)?;
        let mut json = serde_json::to_string_pretty(&joined.identity)?;
        json.push('\n');
        write_file(&self.path(IDENTITY), json.as_bytes(), 0o600)
    }
}

/// Writes a file whole (temporary file, then rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_host_key_is_made_once_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("agent");
        let dir = DataDir::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        let key = dir.host_key().unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        assert_eq!(mode(&dir.path(HOST_KEY)), 0o600);
        assert_eq!(dir.host_key().unwrap().public_key(), key.public_key());
        let public = std::fs::read_to_string(dir.path("ssh_host_ed25519_key.pub")).unwrap();
        assert_eq!(PublicKey::from_openssh(&public).unwrap().key_data(), key.public_key().key_data());
    }

    #[test]
    fn an_identity_round_trips_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        assert_eq!(mode(tmp.path()), 0o700);
        assert!(dir.joined().unwrap().is_none());
        let ca = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let identity = Identity {
            node: "gpu-01".into(),
            gateway: "gw.example.com:443".into(),
            pin: "ab".repeat(32),
            user_ca: ca.public_key().to_openssh().unwrap(),
        };
        let joined = Joined { identity: identity.clone(), cert_pem: "CERT".into(), key_pem: "KEY".into() };
        dir.save(&joined).unwrap();
        let loaded = dir.joined().unwrap().unwrap();
        assert_eq!(loaded.identity, identity);
        assert_eq!((loaded.cert_pem.as_str(), loaded.key_pem.as_str()), ("CERT", "KEY"));
        for name in [IDENTITY, CLIENT_CERT, CLIENT_KEY] {
            assert_eq!(mode(&dir.path(name)), 0o600, "{name}");
        }
        std::fs::remove_file(dir.path(CLIENT_KEY)).unwrap();
        let err = format!("{:#}", dir.joined().err().unwrap());
        assert!(err.contains("join again"), "{err}");
        std::fs::write(dir.path(IDENTITY), "{").unwrap();
        assert!(dir.joined().is_err());
    }
}
