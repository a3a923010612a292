//! The audit log: `DATA_DIR/audit/YYYY-MM-DD.jsonl`, one hash-chained event per line
//! (across day files), indexed in the database for queries.
//!
//! Appends are serialised by a short std mutex: seal the event, append its line, advance
//! the chain. The file is the record; the index follows it.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, bail};
use portcullis_proto::audit::{AuditEvent, ChainState, GENESIS_HASH, Verification, verify};
use serde_json::{Map, Value};

use crate::admin::Response;
use crate::datadir::create_private_dir;
use crate::store::{AuditIndexEntry, Store};

/// An event being built, before it gets its place in the chain.
#[derive(Debug, Clone)]
pub struct Event {
    kind: String,
    user: Option<String>,
    src_ip: Option<String>,
    node: Option<String>,
    session_id: Option<String>,
    fields: Map<String, Value>,
}

impl Event {
    /// An event of type `kind` (`user.login`, `session.start`, ...).
    pub fn new(kind: &str) -> Event {
        Event { kind: kind.into(), user: None, src_ip: None, node: None, session_id: None, fields: Map::new() }
    }

    /// Sets the user.
    pub fn user(mut self, user: Option<&str>) -> Event {
        self.user = user.map(str::to_string);
        self
    }

    /// Sets the client address.
    pub fn src_ip(mut self, ip: IpAddr) -> Event {
        self.src_ip = Some(ip.to_string());
        self
    }

    /// Sets the node.
    pub fn node(mut self, node: Option<&str>) -> Event {
        self.node = node.map(str::to_string);
        self
    }

    /// Sets the session id.
    pub fn session(mut self, id: &str) -> Event {
        self.session_id = Some(id.to_string());
        self
    }

    /// Adds a further field.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

/// The append side of the audit log.
pub struct Audit {
    dir: PathBuf,
    store: Store,
    chain: Mutex<ChainState>,
}

impl Audit {
    /// Opens the log, recovering the chain's end from the newest day file.
    pub async fn open(dir: PathBuf, store: Store) -> anyhow::Result<Audit> {
        create_private_dir(&dir)?;
        let chain = match day_files(&dir)?.last() {
            None => ChainState { next_seq: 1, last_hash: GENESIS_HASH.to_string() },
            Some(file) => chain_end(file)?,
        };
        Ok(Audit { dir, store, chain: Mutex::new(chain) })
    }

    /// Appends one event to the chain and indexes it.
    pub async fn log(&self, event: Event) -> anyhow::Result<()> {
        let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let sealed = {
            let mut chain = self.chain.lock().expect("audit chain lock poisoned");
            let sealed = AuditEvent {
                seq: chain.next_seq,
                time,
                kind: event.kind,
                user: event.user,
                src_ip: event.src_ip,
                node: event.node,
                session_id: event.session_id,
                fields: event.fields,
                prev_hash: chain.last_hash.clone(),
                hash: String::new(),
            }
            .sealed()
            .map_err(|e| anyhow::anyhow!("audit event {}: {e}", chain.next_seq))?;
            let path = self.dir.join(format!("{}.jsonl", &sealed.time[..10]));
            let mut line = sealed.to_line();
            line.push('\n');
            if let Err(err) = append(&path, line.as_bytes()) {
                // Whatever asked for this event is refused; the operator must hear of it.
                tracing::error!(path = %path.display(), "cannot write the audit log, refusing what needs it: {err}");
                return Err(anyhow::Error::new(err).context(format!("cannot write audit log {}", path.display())));
            }
            chain.next_seq += 1;
            chain.last_hash = sealed.hash.clone();
            sealed
        };
        let line = sealed.to_line();
        self.store
            .index_audit(&AuditIndexEntry {
                seq: sealed.seq,
                time: &sealed.time,
                kind: &sealed.kind,
                user: sealed.user.as_deref(),
                src_ip: sealed.src_ip.as_deref(),
                node: sealed.node.as_deref(),
                session_id: sealed.session_id.as_deref(),
                line: &line,
            })
            .await
            .context("cannot index audit event")
    }

    /// Checks the whole chain, file by file, then against the index's last sequence number.
    pub async fn check_chain(&self) -> anyhow::Result<ChainReport> {
        let mut state: Option<ChainState> = None;
        let mut total = 0u64;
        for file in day_files(&self.dir)? {
            let text = fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match verify(text.lines(), state.take()) {
                Verification::Ok { events, last } => {
                    total += events;
                    state = Some(last);
                }
                Verification::Broken { seq, line, reason } => {
                    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let verified = seq.saturating_sub(1);
                    let error = format!("{name} line {line}: {reason}");
                    return Ok(ChainReport {
                        events: total,
                        verified_up_to: verified,
                        broken_at: Some(seq),
                        error: Some(error),
                    });
                }
            }
        }
        let last = state.map_or(0, |s| s.next_seq.saturating_sub(1));
        // The index is an anchor kept apart from the files: lines cut off the end show here.
        let indexed = self.store.last_audit_seq().await?;
        if indexed > last {
            let error = format!("the files end at seq {last} but the index holds events up to seq {indexed}");
            return Ok(ChainReport {
                events: total,
                verified_up_to: last,
                broken_at: Some(last + 1),
                error: Some(error),
            });
        }
        Ok(ChainReport { events: total, verified_up_to: last, broken_at: None, error: None })
    }

    /// `ctl audit verify`: the chain's state in one line.
    pub async fn verify(&self) -> anyhow::Result<Response> {
        let report = self.check_chain().await?;
        Ok(match (report.broken_at, &report.error) {
            (Some(seq), Some(error)) => Response::error(format!("audit chain broken at seq {seq} ({error})")),
            _ => Response::text(format!(
                "audit chain intact: {} events, verified up to seq {}",
                report.events, report.verified_up_to
            )),
        })
    }
}

/// What checking the chain found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainReport {
    /// Events checked.
    pub events: u64,
    /// The last sequence number whose line and links check out.
    pub verified_up_to: u64,
    /// The first sequence number that does not, if any.
    pub broken_at: Option<u64>,
    /// Where and why, when broken.
    pub error: Option<String>,
}

/// Appends whole lines or nothing: a write cut short (a full disk) is cut back off, so the
/// file never ends in half a line the chain check would call tampering.
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let before = file.metadata()?.len();
    let written = file.write_all(bytes).and_then(|()| file.flush());
    if written.is_err() {
        let _ = file.set_len(before);
    }
    written
}

/// Day files in chain order (their names sort by date).
fn day_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads the chain's end from the last complete line of `file`.
fn chain_end(file: &Path) -> anyhow::Result<ChainState> {
    let text = fs::read_to_string(file).with_context(|| format!("cannot read audit log {}", file.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        bail!(
            "audit log {} ends in a partial line (a crash mid-write?); inspect it and remove the partial tail to continue",
            file.display()
        );
    }
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Ok(ChainState { next_seq: 1, last_hash: GENESIS_HASH.to_string() });
    };
    let event = AuditEvent::parse_line(last)
        .map_err(|e| anyhow::anyhow!("audit log {}: last line unreadable: {e}", file.display()))?;
    Ok(ChainState { next_seq: event.seq + 1, last_hash: event.hash })
}
