//! What the checks look at, gathered from the system: files' modes and owners, the TLS
//! certificate, the nodes in the database and whether they answer, the recording dir,
//! container markers and the `DOCKER-USER` chain. All I/O of `doctor` is here.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portcullis_gateway::Config;
use portcullis_gateway::admin::{Request, Response};
use portcullis_gateway::datadir::{self, ADMIN_SOCK, TLS_CERT};
use sqlx::{Connection, Row};

use super::docker::{ContainerFacts, DockerUser};

/// How long a node's sshd may take to accept a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything the checks need to know about the system.
pub struct Facts {
    /// Unix seconds when the facts were gathered.
    pub now: i64,
    /// The data dir (`None`: absent).
    pub data_dir: Option<FileInfo>,
    /// `DATA_DIR/admin.sock` (`None`: absent).
    pub admin_socket: Option<FileInfo>,
    /// The certificate the gateway serves.
    pub certificate: CertFacts,
    /// Nodes in the database.
    pub nodes: NodeList,
    /// The recording store.
    pub recordings: RecordingFacts,
    /// Signs of running inside a container.
    pub container: ContainerFacts,
    /// The host's `DOCKER-USER` chain.
    pub docker_user: DockerUser,
}

/// Type, mode and owner of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// What it is.
    pub kind: FileKind,
    /// Permission bits (`0o777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
}

/// Kind of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// A Unix socket.
    Socket,
    /// Anything else.
    Other,
}

/// The served certificate's file.
pub struct CertFacts {
    /// Where it is.
    pub path: PathBuf,
    /// Named by `[tls]` (else self-signed in the data dir).
    pub configured: bool,
    /// Its text; `Ok(None)` when the file does not exist.
    pub pem: Result<Option<String>, String>,
}

/// The nodes, or why they could not be read.
pub enum NodeList {
    /// No database yet.
    NoDatabase(PathBuf),
    /// The database could not be read.
    Failed(String),
    /// Every node, by name.
    Nodes(Vec<NodeFacts>),
}

/// One node as the database and the network see it.
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// `host:port` of an agentless node's sshd.
    pub addr: Option<String>,
    /// Joined as an agent.
    pub agent: bool,
    /// A host key is pinned.
    pub pinned: bool,
    /// Agentless: whether a TCP connection to `addr` succeeded.
    pub reach: Option<Result<(), String>>,
    /// Agent: whether the running gateway has its tunnel (`None`: the admin socket did not answer).
    pub online: Option<bool>,
}

/// The recording store.
pub enum RecordingFacts {
    /// Not a local directory (`s3://...`).
    Remote(String),
    /// A local directory.
    Dir {
        /// Where it is.
        path: PathBuf,
        /// Type, mode, owner (`None`: absent).
        info: Option<FileInfo>,
        /// Whether a probe file could be made and removed.
        write: Result<(), String>,
        /// Bytes free for unprivileged users (`None`: unknown).
        free: Option<u64>,
    },
}

/// Gathers the facts for `config`.
pub async fn gather(config: &Config) -> Facts {
    let root = &config.data_dir;
    let socket = root.join(ADMIN_SOCK);
    let admin_socket = file_info(&socket);
    let online = if admin_socket.is_some() { agents_online(&socket) } else { None };
    let certificate = match &config.tls {
        Some(files) => cert_facts(&files.cert, true),
        None => cert_facts(&root.join(TLS_CERT), false),
    };
    let nodes = match datadir::sqlite_file(config) {
        Some(db) if db.exists() => node_facts(&db, online.as_ref()).await,
        Some(db) => NodeList::NoDatabase(db),
        None => NodeList::Failed(format!("{}: not a SQLite database", config.storage_url)),
    };
    Facts {
        now: portcullis_gateway::store::now(),
        data_dir: file_info(root),
        admin_socket,
        certificate,
        nodes,
        recordings: recording_facts(config),
        container: container_facts(),
        docker_user: docker_user(),
    }
}

fn file_info(path: &Path) -> Option<FileInfo> {
    let meta = fs::metadata(path).ok()?;
    let kind = if meta.is_dir() {
        FileKind::Dir
    } else if meta.file_type().is_socket() {
        FileKind::Socket
    } else {
        FileKind::Other
    };
    Some(FileInfo { kind, mode: meta.mode() & 0o777, uid: meta.uid() })
}

fn cert_facts(path: &Path, configured: bool) -> CertFacts {
    let pem = match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.to_string()),
    };
    CertFacts { path: path.to_path_buf(), configured, pem }
}

/// Agents' online state from the running gateway (`ctl nodes ls`), if it answers.
fn agents_online(socket: &Path) -> Option<BTreeMap<String, bool>> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = serde_json::to_vec(&Request::NodesLs).ok()?;
    line.push(b'\n');
    stream.write_all(&line).ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    let response: Response = serde_json::from_str(&answer).ok()?;
    if !response.ok {
        return None;
    }
    let online = response
        .rows
        .iter()
        .filter_map(|row| Some((row.get("name")?.as_str()?.to_string(), row.get("online")?.as_bool()?)))
        .collect();
    Some(online)
}

/// Reads the nodes read-only (the running gateway keeps its own connections) and dials agentless ones.
async fn node_facts(db: &Path, online: Option<&BTreeMap<String, bool>>) -> NodeList {
    let rows = match read_nodes(db).await {
        Ok(rows) => rows,
        Err(err) => return NodeList::Failed(format!("cannot read {}: {err:#}", db.display())),
    };
    let dials = rows.iter().map(|(_, addr, agent, _)| async move {
        match addr {
            Some(addr) if !agent => Some(dial(addr).await),
            _ => None,
        }
    });
    let reaches = futures_util::future::join_all(dials).await;
    let nodes = rows
        .into_iter()
        .zip(reaches)
        .map(|((name, addr, agent, pinned), reach)| {
            let online = if agent { online.map(|o| o.get(&name).copied().unwrap_or(false)) } else { None };
            NodeFacts { name, addr, agent, pinned, reach, online }
        })
        .collect();
    NodeList::Nodes(nodes)
}

async fn read_nodes(db: &Path) -> anyhow::Result<Vec<(String, Option<String>, bool, bool)>> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let rows = sqlx::query("SELECT name, addr, host_key, source FROM nodes ORDER BY name").fetch_all(&mut conn).await?;
    let nodes = rows
        .iter()
        .map(|row| {
            let host_key: Option<String> = row.try_get("host_key")?;
            let source: String = row.try_get("source")?;
            Ok((row.try_get("name")?, row.try_get("addr")?, source == "agent", host_key.is_some()))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    conn.close().await?;
    Ok(nodes)
}

async fn dial(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// The recording dir, resolved as the gateway resolves it, probed with a file made and removed.
fn recording_facts(config: &Config) -> RecordingFacts {
    let Some(dir) = config.recordings.url.strip_prefix("file://") else {
        return RecordingFacts::Remote(config.recordings.url.clone());
    };
    let path = config.data_dir.join(dir);
    let info = file_info(&path);
    let write = if info.is_some() { probe(&path) } else { Err("absent".into()) };
    let free = free_bytes(&path);
    RecordingFacts::Dir { path, info, write, free }
}

fn probe(dir: &Path) -> Result<(), String> {
    let file = dir.join(format!(".doctor-probe-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| f.write_all(b"portcullis doctor\n").and_then(|()| f.sync_all()));
    let removed = fs::remove_file(&file);
    written.and(removed).map_err(|e| e.to_string())
}

fn free_bytes(path: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_df(&String::from_utf8_lossy(&out.stdout))
}

/// Bytes available from `df -Pk` output (the 4th column of the line after the header).
pub fn parse_df(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn container_facts() -> ContainerFacts {
    ContainerFacts {
        dockerenv: Path::new("/.dockerenv").exists(),
        cgroup: fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
        mountinfo: fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    }
}

fn docker_user() -> DockerUser {
    match Command::new("iptables").args(["-w", "2", "-S", "DOCKER-USER"]).output() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => DockerUser::NoIptables,
        Err(err) => DockerUser::Failed(format!("cannot run iptables: {err}")),
        Ok(out) => super::docker::classify_iptables(
            out.status.success(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_gives_available_bytes() {
        let text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                    /dev/vda         264212084 32905084  62380804      35% /\n";
        assert_eq!(parse_df(text), Some(62380804 * 1024));
        assert_eq!(parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n"), None);
        assert_eq!(parse_df("header\n/dev/x 1 2 lots 5% /\n"), None);
    }
}
