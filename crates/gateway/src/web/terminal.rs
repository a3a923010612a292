//! `GET /api/terminal?node=N&login=L&cols=C&rows=R`: a WebSocket into the same relay,
//! recorder and policy the SSH front uses (`ssh::session::prepare` + `Opened::spawn`).
//!
//! The upgrade needs an `Origin` naming this gateway over https and a live session
//! cookie. Binary frames carry keystrokes in and terminal output out; text frames carry
//! the JSON messages of [`portcullis_proto::web_terminal`]. A frame or message over
//! [`MAX_MESSAGE`] closes the socket with 1009.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use portcullis_proto::web_terminal::{self, CLOSE_TOO_BIG, ClientMessage, MAX_MESSAGE, ServerMessage};
use russh::Sig;
use serde::Deserialize;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::auth::{Caller, Client};
use super::error::ApiError;
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::ssh::front::PtyRequest;
use crate::ssh::relay::CLOSED_BY_GATEWAY;
use crate::ssh::session::{self, Request, Start};
use crate::ssh::user_side::{UserIn, UserInput, UserOut};
use crate::store::now;

/// A write to the browser that takes longer than this ends the session (a stalled client).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Pings keep proxies in between from closing an idle terminal.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a shell has to end after the browser is gone before the gateway ends the session.
const HANGUP_GRACE: Duration = Duration::from_secs(5);
/// TERM on the node; xterm.js emulates xterm.
const TERM: &str = "xterm-256color";

/// The query of the upgrade request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalQuery {
    node: String,
    login: Option<String>,
    cols: Option<u32>,
    rows: Option<u32>,
}

/// Checks origin and session, then upgrades; the node session opens once the socket is up,
/// so a refusal reaches the browser as a `closed` message.
pub async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    Client(client): Client,
    headers: HeaderMap,
    query: Result<Query<TerminalQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !super::origin::allowed(origin, &super::addresses(&gateway)) {
        let user = Caller::of_websocket(&gateway, &headers, client).await.ok().map(|c| c.user.name);
        let event = Event::new("terminal.origin_refused")
            .user(user.as_deref())
            .src_ip(client)
            .field("origin", origin.chars().take(200).collect::<String>());
        gateway.audit.log(event).await?;
        return Err(ApiError::Forbidden);
    }
    let caller = Caller::of_websocket(&gateway, &headers, client).await?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let response = ws.max_frame_size(MAX_MESSAGE).max_message_size(MAX_MESSAGE).on_upgrade(move |socket| async move {
        if let Err(err) = open(gateway, caller, query, socket).await {
            tracing::warn!("web terminal: {err:#}");
        }
    });
    Ok(response.into_response())
}

/// Opens the node session and hands both halves of the socket to the relay.
async fn open(gateway: Arc<Gateway>, caller: Caller, query: TerminalQuery, socket: WebSocket) -> anyhow::Result<()> {
    let (sink, stream) = socket.split();
    let sink = Arc::new(Mutex::new(sink));
    let node = gateway.store.get_node(&query.node).await?;
    let pty = PtyRequest {
        term: TERM.into(),
        cols: web_terminal::clamp(query.cols.unwrap_or(80)),
        rows: web_terminal::clamp(query.rows.unwrap_or(24)),
        pix_width: 0,
        pix_height: 0,
        modes: Vec::new(),
    };
    let request = Request {
        identity: &caller.identity,
        node: node.as_ref(),
        node_name: &query.node,
        login: query.login.as_deref(),
        client: caller.client,
        start: Start::Shell,
        pty: Some(pty),
        env: vec![("LANG".into(), "C.UTF-8".into())],
    };
    let opened = match session::prepare(&gateway, request).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(message)) => {
            close(&sink, &message, 1000).await;
            return Ok(());
        }
        Err(err) => {
            close(&sink, "the session could not be opened", 1011).await;
            return Err(err);
        }
    };
    let live_id = opened.id().to_owned();
    let web_session = caller.session.id_hash.clone();
    gateway.web.terminal_opened(&web_session, &live_id);
    let user_out = WebOut {
        to_browser: writer(sink.clone()),
        gateway: gateway.clone(),
        web_session: web_session.clone(),
        live_id: live_id.clone(),
        closed_by_gateway: AtomicBool::new(false),
    };
    let user_in = WebIn { stream, sink: sink.clone(), hung_up: false };
    opened.spawn(user_in, user_out);
    tokio::spawn(ping(sink));
    // A lock, expiry or logout may have landed while the node session opened.
    let still = gateway.store.web_session(&web_session).await?.is_some()
        && gateway.store.get_user(&caller.user.name).await?.is_some_and(|u| u.active_at(now()));
    if !still && let Some(live) = gateway.sessions.get(&live_id) {
        live.kill();
    }
    Ok(())
}

type Sink = Arc<Mutex<SplitSink<WebSocket, Message>>>;

/// Sends one message, failing on a stalled browser.
async fn send(sink: &Sink, message: Message) -> anyhow::Result<()> {
    let mut sink = sink.lock().await;
    tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await.map_err(|_| anyhow::anyhow!("send timed out"))??;
    Ok(())
}

/// Tells the browser why, then closes the socket.
async fn close(sink: &Sink, reason: &str, code: u16) {
    let text = ServerMessage::Closed { reason: reason.to_owned() }.to_json();
    let _ = send(sink, Message::Text(text.into())).await;
    let _ = send(sink, Message::Close(Some(CloseFrame { code, reason: "".into() }))).await;
}

async fn ping(sink: Sink) {
    let mut every = tokio::time::interval(PING_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        if send(&sink, Message::Ping(Bytes::new())).await.is_err() {
            return;
        }
    }
}

/// The browser's side of the socket, read by the relay.
struct WebIn {
    stream: SplitStream<WebSocket>,
    sink: Sink,
    hung_up: bool,
}

impl UserIn for WebIn {
    async fn recv(&mut self) -> Option<UserInput> {
        if self.hung_up {
            return self.after_hangup().await;
        }
        loop {
            let message = match self.stream.next().await {
                Some(Err(err)) => {
                    if too_big(err) {
                        let frame = CloseFrame { code: CLOSE_TOO_BIG, reason: "message too big".into() };
                        let _ = send(&self.sink, Message::Close(Some(frame))).await;
                    }
                    return self.hang_up();
                }
                None | Some(Ok(Message::Close(_))) => return self.hang_up(),
                Some(Ok(message)) => message,
            };
            return Some(match message {
                Message::Binary(data) => UserInput::Data(data),
                Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                    Ok(ClientMessage::Resize { cols, rows }) => {
                        UserInput::Resize { cols, rows, pix_width: 0, pix_height: 0 }
                    }
                    Err(_) => UserInput::Ignored,
                },
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
            });
        }
    }
}

impl WebIn {
    /// The browser is gone: hang up the terminal, as a closed terminal window does, so the
    /// shell ends and the relay ends with it.
    fn hang_up(&mut self) -> Option<UserInput> {
        self.hung_up = true;
        Some(UserInput::Signal(Sig::HUP))
    }

    /// The relay ends when the node closes the channel; if the shell outlives the hangup
    /// (ignores SIGHUP, or the node does not take signals), the user side ends here and the
    /// relay closes the node's channel: the user left, the gateway ended nothing.
    async fn after_hangup(&mut self) -> Option<UserInput> {
        tokio::time::sleep(HANGUP_GRACE).await;
        None
    }
}

/// Whether a read failed on the size limit.
fn too_big(err: axum::Error) -> bool {
    err.into_inner().downcast_ref::<tungstenite::Error>().is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// The browser's side of the socket, written by the relay through [`writer`].
struct WebOut {
    to_browser: mpsc::Sender<Outgoing>,
    gateway: Arc<Gateway>,
    web_session: String,
    live_id: String,
    closed_by_gateway: AtomicBool,
}

/// What the relay sends the browser, in order.
enum Outgoing {
    /// Terminal output: merged with output already waiting into frames of up to [`MAX_MESSAGE`].
    Output(Bytes),
    /// A message sent as it is.
    Message(Message),
    /// Answered once everything before it is sent.
    Flush(oneshot::Sender<()>),
}

/// Output chunks waiting for the browser before the relay waits too (back-pressure).
const OUTGOING_QUEUE: usize = 16;

/// Starts the task that writes to the browser. Output that piles up while a frame is being
/// sent goes out as one frame: browsers pay per frame, and a node writes its output in
/// small chunks. A lone chunk (a keystroke's echo) is sent at once, never held back.
fn writer(sink: Sink) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTGOING_QUEUE);
    tokio::spawn(async move {
        let mut next = rx.recv().await;
        while let Some(item) = next.take() {
            let sent = match item {
                Outgoing::Output(first) => {
                    let mut frame = bytes::BytesMut::from(first.as_ref());
                    loop {
                        match rx.try_recv() {
                            Ok(Outgoing::Output(more)) if frame.len() + more.len() <= MAX_MESSAGE => {
                                frame.extend_from_slice(&more);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    send(&sink, Message::Binary(frame.freeze())).await
                }
                Outgoing::Message(message) => send(&sink, message).await,
                Outgoing::Flush(done) => {
                    let _ = done.send(());
                    Ok(())
                }
            };
            if sent.is_err() {
                return;
            }
            if next.is_none() {
                next = rx.recv().await;
            }
        }
    });
    tx
}

impl WebOut {
    async fn push(&self, item: Outgoing) -> anyhow::Result<()> {
        self.to_browser.send(item).await.map_err(|_| anyhow::anyhow!("the browser is gone"))
    }
}

impl UserOut for WebOut {
    async fn data(&self, bytes: Bytes) -> anyhow::Result<()> {
        self.push(Outgoing::Output(bytes)).await
    }

    async fn stderr(&self, bytes: Bytes) -> anyhow::Result<()> {
        if bytes.as_ref() == CLOSED_BY_GATEWAY {
            self.closed_by_gateway.store(true, Ordering::Relaxed);
        }
        self.push(Outgoing::Output(bytes)).await
    }

    async fn eof(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn exit_status(&self, status: u32) -> anyhow::Result<()> {
        let text = ServerMessage::Exit { status: Some(status), signal: None }.to_json();
        self.push(Outgoing::Message(Message::Text(text.into()))).await
    }

    async fn exit_signal(&self, signal: Sig, _core_dumped: bool, _message: String) -> anyhow::Result<()> {
        let name = match signal {
            Sig::Custom(name) => name,
            other => format!("{other:?}"),
        };
        let text = ServerMessage::Exit { status: None, signal: Some(name) }.to_json();
        self.push(Outgoing::Message(Message::Text(text.into()))).await
    }

    async fn close(&self) {
        self.gateway.web.terminal_closed(&self.web_session, &self.live_id);
        let reason =
            if self.closed_by_gateway.load(Ordering::Relaxed) { "session closed by gateway" } else { "session ended" };
        let text = ServerMessage::Closed { reason: reason.to_owned() }.to_json();
        let _ = self.push(Outgoing::Message(Message::Text(text.into()))).await;
        let frame = CloseFrame { code: 1000, reason: "".into() };
        let _ = self.push(Outgoing::Message(Message::Close(Some(frame)))).await;
        // Returns once the browser has been told (or the writer gave up on it).
        let (done, sent) = oneshot::channel();
        if self.push(Outgoing::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(SEND_TIMEOUT, sent).await;
        }
    }
}
