//! Live sessions: the list, silent watching over a WebSocket, and the kill switch.
//!
//! A watcher gets the session's recent output (what redraws its current screen), then its
//! output as it happens, and the terminal's size whenever it changes. Nothing a watcher
//! sends reaches the session, and nothing in the session tells the user.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::super::auth::{Caller, Client, MaybeCaller};
use super::super::error::ApiError;
use crate::admin::Request;
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::policy::Permission;
use crate::sessions::Live;
use crate::store::rfc3339;

/// How often a watcher checks the terminal's size.
const SIZE_EVERY: Duration = Duration::from_millis(500);
/// A watcher that cannot take output this long is dropped (the session never waits for it).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /api/sessions` (`sessions.observe`): every live session, oldest first.
pub async fn list(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::SessionsObserve)?;
    let mut live = gateway.sessions.list();
    live.sort_by(|a, b| (a.row.started_at, &a.row.id).cmp(&(b.row.started_at, &b.row.id)));
    let rows: Vec<Value> = live.iter().map(|l| row(l)).collect();
    Ok(Json(json!({ "sessions": rows })))
}

fn row(live: &Live) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let r = &live.row;
    json!({
        "id": r.id, "user": r.user, "node": r.node, "login": r.login, "client": r.client_addr,
        "kind": r.kind, "recorded": r.recorded, "start": rfc3339(Some(r.started_at)),
        "bytes_in": live.bytes_in.load(Relaxed), "bytes_out": live.bytes_out.load(Relaxed),
    })
}

/// `POST /api/sessions/{id}/kill` (`sessions.kill`): ends the session with the generic message.
pub async fn kill(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    Path(id): Path<String>,
    _: super::NoBody,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::SessionsKill)?;
    if gateway.sessions.get(&id).is_none() {
        return Err(ApiError::NotFound);
    }
    super::run(&gateway, &caller, Request::SessionsKill { id }).await?;
    Ok(Json(json!({ "killed": true })))
}

/// `GET /api/sessions/{id}/watch` (`sessions.observe`): a read-only WebSocket of the session.
pub async fn watch(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // An upgrade carries no CSRF token (over HTTP/2 it is a CONNECT): the Origin check
    // below stands in for it, as for the terminal.
    let caller = Caller::of_websocket(&gateway, &headers, client).await.ok();
    let caller = MaybeCaller(caller).holding(Permission::SessionsObserve)?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !super::super::origin::allowed(origin, &super::super::addresses(&gateway)) {
        let event = Event::new("terminal.origin_refused")
            .user(Some(&caller.user.name))
            .src_ip(client)
            .field("origin", origin.chars().take(200).collect::<String>());
        gateway.audit.log(event).await?;
        return Err(ApiError::Forbidden);
    }
    let Some(live) = gateway.sessions.get(&id) else { return Err(ApiError::NotFound) };
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let event = Event::new("session.observe")
        .session(&id)
        .user(Some(&live.row.user))
        .node(Some(&live.row.node))
        .src_ip(client)
        .field("actor", format!("web {}", caller.user.name));
    gateway.audit.log(event).await?;
    Ok(ws.on_upgrade(move |socket| relay(gateway, live, socket)).into_response())
}

/// Sends the session to the watcher until either ends.
async fn relay(gateway: Arc<Gateway>, live: Arc<Live>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tail, mut output) = live.watch();
    let id = live.row.id.clone();
    let mut size = live.size();
    // Holding the session would keep its output channel open after it ends.
    drop(live);
    let (cols, rows) = size.unwrap_or((80, 24));
    let start = json!({ "type": "start", "cols": cols, "rows": rows }).to_string();
    let mut send_ok = send(&mut sink, Message::Text(start.into())).await;
    send_ok = send_ok && send(&mut sink, Message::Binary(tail.into())).await;
    let mut shutdown = gateway.shutdown.subscribe();
    let mut every = tokio::time::interval(SIZE_EVERY);
    let reason = loop {
        if !send_ok {
            break None;
        }
        tokio::select! {
            chunk = output.recv() => match chunk {
                Ok(bytes) => send_ok = send(&mut sink, Message::Binary(bytes)).await,
                // A watcher too slow for the session misses output rather than slowing it.
                Err(RecvError::Lagged(missed)) => tracing::debug!(missed, "a watcher lagged"),
                Err(RecvError::Closed) => break Some("session ended"),
            },
            _ = every.tick() => {
                let now = gateway.sessions.get(&id).and_then(|l| l.size());
                if now.is_some() && now != size {
                    size = now;
                    let (cols, rows) = now.unwrap_or_default();
                    let resize = json!({ "type": "resize", "cols": cols, "rows": rows }).to_string();
                    send_ok = send(&mut sink, Message::Text(resize.into())).await;
                }
            }
            message = stream.next() => match message {
                // What a watcher sends is ignored; only its going away matters.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                Some(Ok(_)) => {}
            },
            _ = shutdown.wait() => break Some("gateway shutting down"),
        }
    };
    if let Some(reason) = reason {
        let closed = json!({ "type": "closed", "reason": reason }).to_string();
        if send(&mut sink, Message::Text(closed.into())).await {
            let frame = CloseFrame { code: 1000, reason: "".into() };
            let _ = send(&mut sink, Message::Close(Some(frame))).await;
        }
    }
}

async fn send(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, message: Message) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await, Ok(Ok(())))
}
