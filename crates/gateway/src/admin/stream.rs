//! Admin requests that answer with a stream: live watching and recording downloads.
//!
//! The response line comes first; raw bytes follow until the end of the stream.

use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::broadcast::error::RecvError;

use super::{Response, send};
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::store::{RecordingFilter, rfc3339};

/// Streams a live session's output: its recent tail, then what follows, until it ends.
pub async fn watch(gateway: &Gateway, id: &str, uid: u32, mut write: OwnedWriteHalf) -> anyhow::Result<()> {
    let Some(live) = gateway.sessions.get(id) else {
        send(&mut write, &Response::error(format!("no live session {id:?}"))).await?;
        return Ok(());
    };
    let (tail, mut output) = live.watch();
    let event = Event::new("session.observe")
        .session(id)
        .user(Some(&live.row.user))
        .node(Some(&live.row.node))
        .field("actor", format!("admin.sock uid={uid}"));
    // Holding the session would keep its output channel open after it ends.
    drop(live);
    gateway.audit.log(event).await?;
    send(&mut write, &Response { ok: true, ..Default::default() }).await?;
    write.write_all(&tail).await?;
    let mut shutdown = gateway.shutdown.subscribe();
    loop {
        let chunk = tokio::select! {
            chunk = output.recv() => chunk,
            _ = shutdown.wait() => break,
        };
        match chunk {
            Ok(bytes) => {
                if tokio::time::timeout(Duration::from_secs(30), write.write_all(&bytes)).await.is_err() {
                    break;
                }
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}

/// Streams one recording's .cast file.
pub async fn recording(gateway: &Gateway, id: &str, uid: u32, mut write: OwnedWriteHalf) -> anyhow::Result<()> {
    let row = match gateway.store.get_recording(id).await? {
        Some(row) => row,
        None => {
            send(&mut write, &Response::error(format!("no recording {id:?}"))).await?;
            return Ok(());
        }
    };
    let file = match tokio::fs::File::open(&row.path).await {
        Ok(file) => file,
        Err(err) => {
            send(&mut write, &Response::error(format!("recording {id} is unreadable: {err}"))).await?;
            return Ok(());
        }
    };
    let event = Event::new("recording.read")
        .user(Some(&row.user))
        .node(Some(&row.node))
        .session(&row.session_id)
        .field("recording", id)
        .field("actor", format!("admin.sock uid={uid}"));
    gateway.audit.log(event).await?;
    send(&mut write, &Response { ok: true, ..Default::default() }).await?;
    let mut file = file;
    tokio::io::copy(&mut file, &mut write).await.context("sending the recording")?;
    write.shutdown().await?;
    Ok(())
}

/// The recordings table, filtered; `grep` scans each file's output with ANSI stripped.
pub async fn list_recordings(
    gateway: &Gateway,
    user: Option<String>,
    node: Option<String>,
    since: Option<String>,
    grep: Option<String>,
    limit: Option<i64>,
) -> anyhow::Result<Response> {
    let since = match since {
        None => None,
        Some(text) => {
            let at = humantime::parse_rfc3339_weak(&text).with_context(|| format!("--since {text:?}"))?;
            Some(at.duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64)
        }
    };
    let limit = limit.unwrap_or(1000).clamp(1, 100_000);
    let filter = RecordingFilter { user, node, since, limit: Some(limit) };
    let rows = gateway.store.list_recordings(&filter).await?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(needle) = &grep
            && !output_contains(std::path::Path::new(&row.path), needle).await
        {
            continue;
        }
        out.push(serde_json::json!({
            "id": row.id, "session": row.session_id, "user": row.user, "node": row.node, "login": row.login,
            "client": row.client_addr, "command": row.command, "start": rfc3339(Some(row.started_at)),
            "end": rfc3339(row.ended_at), "bytes": row.bytes, "complete": row.complete,
        }));
    }
    Response::table(&["id", "user", "node", "login", "start", "end", "bytes", "complete", "command"], &out)
}

async fn output_contains(path: &std::path::Path, needle: &str) -> bool {
    // A crash can cut a file inside a UTF-8 character: read it lossily.
    let Ok(bytes) = tokio::fs::read(path).await else { return false };
    let text = String::from_utf8_lossy(&bytes);
    let Ok((_, events, _)) = portcullis_proto::asciicast::read_cast(&text) else { return false };
    let output: String = events
        .iter()
        .filter(|e| e.kind == portcullis_proto::asciicast::EventKind::Output)
        .map(|e| e.data.as_str())
        .collect();
    portcullis_proto::asciicast::strip_ansi(&output).contains(needle)
}
