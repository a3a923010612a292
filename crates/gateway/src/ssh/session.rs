//! Opening one user session on a node: authorize, connect, mirror the requests, then relay.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_proto::sftp::SftpWatcher;
use russh::server::Session;
use russh::{ChannelId, ChannelMsg, client};

use super::front::{Pending, PtyRequest, SignedIn};
use super::relay::{self, Relay};
use super::user_side::{SshUser, UserIn, UserOut};
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::node::{self, NodeError};
use crate::policy::{self, Action, Authorized, Identity, NodeInfo};
use crate::recording::RecordingMeta;
use crate::sessions::{Live, new_id};
use crate::store::{NodeRow, SessionRow, now};

/// How long the node may take to answer a shell, exec or subsystem request.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What a user is told when the audit log cannot be written (the details go to the log).
const AUDIT_DOWN: &str = "session refused by gateway";

/// What the user asked the channel to run.
#[derive(Debug, Clone)]
pub enum Start {
    /// An interactive shell.
    Shell,
    /// One command.
    Exec(Vec<u8>),
    /// A subsystem; only `sftp` is relayed.
    Subsystem(String),
}

impl Start {
    fn action(&self) -> Option<Action> {
        match self {
            Start::Shell => Some(Action::Shell),
            Start::Exec(_) => Some(Action::Exec),
            Start::Subsystem(name) if name == "sftp" => Some(Action::FileTransfer),
            Start::Subsystem(_) => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Start::Shell => "shell",
            Start::Exec(_) => "exec",
            Start::Subsystem(_) => "sftp",
        }
    }
}

/// What a user asks a node session for; the SSH front and the web terminal both fill one in.
pub struct Request<'a> {
    /// The signed-in user's name and resolved roles.
    pub identity: &'a Identity,
    /// The node, when one by that name exists (a missing one denies like a forbidden one).
    pub node: Option<&'a NodeRow>,
    /// The node name as asked, for audit.
    pub node_name: &'a str,
    /// The login asked for; `None` picks the role's first.
    pub login: Option<&'a str>,
    /// The client's address (after a trusted PROXY header or X-Forwarded-For).
    pub client: IpAddr,
    /// What to run.
    pub start: Start,
    /// The terminal, if any.
    pub pty: Option<PtyRequest>,
    /// Environment to pass on (LANG and LC_* only).
    pub env: Vec<(String, String)>,
}

/// A session opened on a node, ready to relay to whatever carries the user's side.
pub struct Opened {
    relay: Relay,
    live: Arc<Live>,
    node_channel: russh::Channel<client::Msg>,
    node_session: node::NodeSession,
}

/// Authorizes, connects the node, mirrors the requests, starts the recording and registers
/// the session; `Err` is the one line to show the user (the reason is already audited).
pub async fn prepare(gateway: &Arc<Gateway>, request: Request<'_>) -> anyhow::Result<Result<Opened, String>> {
    let client = request.client;
    let identity = request.identity;
    let user = identity.user.clone();
    let node_info = request.node.map(|n| NodeInfo { name: n.name.clone(), labels: n.labels.clone() });
    let Some(action) = request.start.action() else {
        let subsystem = if let Start::Subsystem(name) = &request.start { name.clone() } else { String::new() };
        deny(gateway, &user, request.node_name, client, "subsystem", &subsystem).await?;
        return Ok(Err(format!("subsystem {subsystem:?} is not available")));
    };
    let grant = match policy::authorize(identity, node_info.as_ref(), request.login, client, action) {
        Ok(grant) => grant,
        Err(denied) => {
            let why = policy::explain(identity, node_info.as_ref(), request.login, client, action);
            deny(gateway, &user, request.node_name, client, action.as_str(), &why).await?;
            return Ok(Err(denied.to_string()));
        }
    };
    let Some(node_row) = request.node else { return Ok(Err("access denied".into())) };
    let node_session = match node::connect(gateway, node_row, &grant).await {
        Ok(s) => s,
        Err(NodeError::HostKeyMismatch { pinned, presented }) => {
            let event = Event::new("node.hostkey_mismatch")
                .user(Some(&user))
                .node(Some(&node_row.name))
                .src_ip(client)
                .field("pinned", pinned)
                .field("presented", presented);
            gateway.audit.log(event).await?;
            return Ok(Err("the node's host key has changed; the session is refused (ask the operator)".into()));
        }
        Err(NodeError::Unavailable(err)) => {
            tracing::warn!(node = %node_row.name, "node unavailable: {err:#}");
            let event = Event::new("node.unreachable")
                .user(Some(&user))
                .node(Some(&node_row.name))
                .field("error", format!("{err:#}"));
            gateway.audit.log(event).await?;
            return Ok(Err("the node cannot be reached".into()));
        }
    };
    let node_channel =
        match start_on_node(node_session.handle(), request.pty.as_ref(), &request.env, &request.start).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(node = %node_row.name, "node refused the session: {err:#}");
                return Ok(Err("the node refused the session".into()));
            }
        };

    let id = new_id();
    let row = SessionRow {
        id: id.clone(),
        user: user.clone(),
        node: grant.node().to_string(),
        login: grant.login().to_string(),
        client_addr: client.to_string(),
        kind: request.start.kind().to_string(),
        recorded: grant.record(),
        started_at: now(),
        ended_at: None,
    };
    let recording = if grant.record() {
        let (cols, rows, term) =
            request.pty.as_ref().map_or((80, 24, None), |p| (p.cols, p.rows, Some(p.term.clone())));
        let meta = RecordingMeta {
            session_id: id.clone(),
            user: user.clone(),
            node: row.node.clone(),
            login: row.login.clone(),
            client_addr: row.client_addr.clone(),
            command: command_text(&request.start),
            width: cols.min(u16::MAX as u32) as u16,
            height: rows.min(u16::MAX as u32) as u16,
            term,
        };
        match gateway.recorder.start(meta).await {
            Ok(r) => Some(r),
            Err(err) if gateway.config.recordings.fail_closed => {
                tracing::error!("cannot start a recording, refusing the session: {err:#}");
                let _ = node_channel.close().await;
                return Ok(Err("session closed by gateway".into()));
            }
            Err(err) => {
                tracing::error!("cannot start a recording (fail_closed = false, continuing): {err:#}");
                None
            }
        }
    } else {
        None
    };
    gateway.store.insert_session(&row).await?;
    if let Err(err) = started(gateway, &row, &grant, &request.start).await {
        // A session the audit log cannot show does not run.
        tracing::error!("cannot audit the session's start, refusing it: {err:#}");
        let _ = node_channel.close().await;
        if let Some(recording) = recording
            && let Err(err) = recording.finish(&gateway.store).await
        {
            tracing::error!("cannot finish the refused session's recording: {err:#}");
        }
        gateway.store.end_session(&id).await?;
        return Ok(Err(AUDIT_DOWN.into()));
    }
    let live = gateway.sessions.register(row);
    if let Some(pty) = &request.pty {
        live.set_size(pty.cols, pty.rows);
    }
    let relay = Relay {
        gateway: gateway.clone(),
        live: live.clone(),
        recording,
        sftp: matches!(request.start, Start::Subsystem(_)).then(SftpWatcher::new),
        max_session: grant.max_session(),
        terminal: request.pty.is_some(),
    };
    Ok(Ok(Opened { relay, live, node_channel, node_session }))
}

impl Opened {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.live.row.id
    }

    /// Runs the relay between the user's side and the node in a task of its own.
    pub fn spawn(self, user_in: impl UserIn, user_out: impl UserOut) {
        let Opened { relay, live, node_channel, node_session } = self;
        let gateway = relay.gateway.clone();
        let span = tracing::info_span!("session", id = %live.row.id, user = %live.row.user, node = %live.row.node);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let outcome = relay::run(relay, user_in, user_out, node_channel.split()).await;
                finish(&gateway, &live, outcome).await;
                drop(node_session);
            },
            span,
        ));
    }
}

/// Opens the node side for an SSH channel and starts the relay; on refusal the user gets
/// a short message and status 255.
pub async fn open(
    gateway: Arc<Gateway>,
    signed_in: Arc<SignedIn>,
    peer: Peer,
    channel: ChannelId,
    pending: Pending,
    start: Start,
    session: &mut Session,
) -> anyhow::Result<()> {
    let request = Request {
        identity: &signed_in.identity,
        node: signed_in.node.as_ref(),
        node_name: &signed_in.target.node,
        login: signed_in.target.login.as_deref(),
        client: peer.client.ip(),
        start,
        pty: pending.pty,
        env: pending.env,
    };
    let opened = match prepare(&gateway, request).await? {
        Ok(opened) => opened,
        Err(message) => return refuse(session, channel, &message),
    };
    let Some(user_channel) = pending.channel else { return refuse(session, channel, "no such channel") };
    session.channel_success(channel)?;
    let (user_in, user_channel) = user_channel.split();
    opened.spawn(user_in, SshUser { channel: user_channel, handle: session.handle() });
    Ok(())
}

/// Answers a refused request. OpenSSH exits at once on a failed request, losing any message
/// sent before it; so the request succeeds, the message goes to stderr, and the channel
/// ends with status 255.
fn refuse(session: &mut Session, channel: ChannelId, message: &str) -> anyhow::Result<()> {
    session.channel_success(channel)?;
    session.extended_data(channel, 1, format!("portcullis: {message}\r\n").into_bytes())?;
    session.exit_status_request(channel, 255)?;
    session.eof(channel)?;
    session.close(channel)?;
    Ok(())
}

/// Opens a session channel on the node, mirrors PTY and environment, then starts it.
async fn start_on_node(
    handle: &client::Handle<node::NodeClient>,
    pty: Option<&PtyRequest>,
    env: &[(String, String)],
    start: &Start,
) -> anyhow::Result<russh::Channel<client::Msg>> {
    let mut channel = handle.channel_open_session().await.context("open a channel on the node")?;
    if let Some(pty) = pty {
        channel.request_pty(false, &pty.term, pty.cols, pty.rows, pty.pix_width, pty.pix_height, &pty.modes).await?;
    }
    for (name, value) in env {
        channel.set_env(false, name.as_str(), value.as_str()).await?;
    }
    match start {
        Start::Shell => channel.request_shell(true).await?,
        Start::Exec(command) => channel.exec(true, command.clone()).await?,
        Start::Subsystem(name) => channel.request_subsystem(true, name.as_str()).await?,
    }
    let answer = tokio::time::timeout(START_TIMEOUT, async {
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(()),
                Some(ChannelMsg::Failure) => anyhow::bail!("the node refused the request"),
                Some(ChannelMsg::Close) | None => anyhow::bail!("the node closed the channel"),
                Some(_) => {}
            }
        }
    })
    .await
    .context("the node did not answer in time")?;
    answer?;
    Ok(channel)
}

fn command_text(start: &Start) -> Option<String> {
    match start {
        Start::Exec(command) => Some(String::from_utf8_lossy(command).into_owned()),
        Start::Subsystem(name) => Some(format!("subsystem {name}")),
        Start::Shell => None,
    }
}

async fn deny(gateway: &Gateway, user: &str, node: &str, client: IpAddr, what: &str, why: &str) -> anyhow::Result<()> {
    let event = Event::new("session.denied")
        .user(Some(user))
        .node(Some(node))
        .src_ip(client)
        .field("action", what)
        .field("reason", why);
    gateway.audit.log(event).await
}

async fn started(gateway: &Gateway, row: &SessionRow, grant: &Authorized, start: &Start) -> anyhow::Result<()> {
    let base = |kind: &str| {
        let mut event = Event::new(kind)
            .user(Some(&row.user))
            .node(Some(&row.node))
            .session(&row.id)
            .field("login", row.login.as_str());
        if let Ok(ip) = row.client_addr.parse() {
            event = event.src_ip(ip);
        }
        event
    };
    let roles = grant.roles().join(",");
    gateway.audit.log(base("session.start").field("kind", row.kind.as_str()).field("roles", roles)).await?;
    if let Start::Exec(command) = start {
        gateway.audit.log(base("exec").field("command", String::from_utf8_lossy(command).into_owned())).await?;
    }
    Ok(())
}

async fn finish(gateway: &Gateway, live: &crate::sessions::Live, outcome: relay::Outcome) {
    use std::sync::atomic::Ordering;
    let row = &live.row;
    if let Err(err) = gateway.store.end_session(&row.id).await {
        tracing::error!("cannot store the session's end: {err:#}");
    }
    gateway.sessions.remove(&row.id);
    let mut event = Event::new("session.end")
        .user(Some(&row.user))
        .node(Some(&row.node))
        .session(&row.id)
        .field("login", row.login.as_str())
        .field("bytes_out", live.bytes_out.load(Ordering::Relaxed))
        .field("bytes_in", live.bytes_in.load(Ordering::Relaxed));
    if let Some(status) = outcome.exit_status {
        event = event.field("exit_status", status);
    }
    if let Some(signal) = outcome.exit_signal {
        event = event.field("exit_signal", signal);
    }
    if let Some(reason) = outcome.ended_by_gateway {
        event = event.field("ended_by", reason);
    } else if outcome.node_lost {
        event = event.field("ended_by", "node connection lost");
    }
    if outcome.recording_failed {
        event = event.field("recording_failed", true);
    }
    if let Err(err) = gateway.audit.log(event).await {
        tracing::error!("cannot audit the session's end: {err:#}");
    }
}
