//! Agent tunnels (ALPN `portcullis-agent/1`): joins, and the registry of connected agents.
//!
//! An agent without a client certificate may only join: one request line, one answer
//! line (see `proto::tunnel`). With the certificate its join issued, the TLS stream carries
//! SSH with the agent as the server; the gateway keeps the client handle in the
//! [`Registry`], and the node connector opens one `direct-tcpip` channel per session, in
//! which it runs the same end-to-end SSH login as for an agentless node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use portcullis_proto::tunnel::{IDLE_PING, IDLE_PING_EVERY, JoinRequest, JoinResponse, MAX_JOIN_LINE};
use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::PublicKey;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::audit::Event;
use crate::config::validate_name;
use crate::datadir::agent_ca_params;
use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::store::NodeRow;

/// How long an agent may take to send its join request.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of an agent's client certificate; `ctl nodes rm` revokes it sooner.
const AGENT_CERT_DAYS: u64 = 5 * 365;

/// How long a session waits for an idle tunnel's SSH to start.
const WAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Read-ahead on an idle tunnel: pongs are 5 bytes, SSH's large reads bypass it.
const IDLE_READ: usize = 64;
/// How long a session waits for a tunnel that went back to idle to reconnect (the agent
/// dials again within a second or so).
const REJOIN_WAIT: Duration = Duration::from_secs(10);
/// Longest gap between checks of whether a woken tunnel has been quiet long enough.
const REST_CHECK_MAX: Duration = Duration::from_secs(30);

/// The tunnel's client handle, shared by every session through it.
pub type TunnelHandle = Arc<client::Handle<TunnelClient>>;
/// A session waiting for an idle tunnel to wake; answered with its handle, or dropped.
type Waiter = tokio::sync::oneshot::Sender<TunnelHandle>;

/// Connected agents by node name.
#[derive(Default)]
pub struct Registry {
    agents: Mutex<HashMap<String, Connected>>,
    generation: AtomicU64,
    /// Nodes whose woken tunnel the gateway closed to go back to idle, and when: their
    /// agents are reconnecting, so they count as online and sessions wait for them.
    resting: Mutex<HashMap<String, std::time::Instant>>,
    /// Rung whenever a tunnel registers.
    joined: tokio::sync::Notify,
}

/// A tunnel handed to a session; while it (or the stream opened with it) lives, the
/// tunnel counts as in use and stays awake.
pub struct Tunnel {
    /// The SSH client handle.
    pub handle: TunnelHandle,
    in_use: InUse,
}

/// One use of a tunnel, counted in its [`Shared`] until dropped.
struct InUse(Arc<Shared>);

impl InUse {
    /// A use of the tunnel, unless it is closed (or closing to go back to idle).
    fn take(shared: &Arc<Shared>) -> Option<InUse> {
        let mut doors = shared.doors();
        if doors.closed {
            return None;
        }
        doors.in_use += 1;
        Some(InUse(shared.clone()))
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut doors = self.0.doors();
        doors.in_use -= 1;
        doors.quiet_since = Some(std::time::Instant::now());
    }
}

/// One agent's tunnel, as the registry holds it. Dropping it ends the tunnel.
struct Connected {
    shared: Arc<Shared>,
    generation: u64,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// What the registry and a tunnel's task share: the sessions waiting for it to wake, and
/// its SSH handle once awake. One small allocation, where a channel cost ten times as
/// much: ten thousand idle tunnels are mostly their TLS streams and this.
#[derive(Default)]
struct Shared {
    doors: Mutex<Doors>,
    /// Rung for each waiter and at the close; only the tunnel's task listens.
    bell: tokio::sync::Notify,
    /// The SSH handle once the tunnel has woken.
    awake: OnceLock<TunnelHandle>,
}

#[derive(Default)]
struct Doors {
    waiting: Vec<Waiter>,
    /// The registry let go, or the tunnel's task ended.
    closed: bool,
    /// Sessions holding the tunnel (from asking for it to closing their stream).
    in_use: usize,
    /// When the last one let go.
    quiet_since: Option<std::time::Instant>,
}

impl Doors {
    /// None holds the tunnel, and the last let go at least `rest` ago (a tunnel never used
    /// is not quiet: its agent woke it).
    fn quiet_for(&self, rest: Duration) -> bool {
        self.in_use == 0 && self.quiet_since.is_some_and(|t| t.elapsed() >= rest)
    }
}

impl Shared {
    fn doors(&self) -> std::sync::MutexGuard<'_, Doors> {
        self.doors.lock().expect("tunnel lock poisoned")
    }

    fn alive(&self) -> bool {
        !self.doors().closed && self.awake.get().is_none_or(|h| !h.is_closed())
    }

    /// Queues a session for the tunnel's handle; false once it is closed.
    fn knock(&self, waiter: Waiter) -> bool {
        let mut doors = self.doors();
        if doors.closed {
            return false;
        }
        doors.waiting.push(waiter);
        self.bell.notify_one();
        true
    }

    /// The next waiting session, or none once closed (the waiting are answered first).
    async fn next(&self) -> Option<Waiter> {
        loop {
            {
                let mut doors = self.doors();
                if let Some(waiter) = doors.waiting.pop() {
                    return Some(waiter);
                }
                if doors.closed {
                    return None;
                }
            }
            // A knock since the check left its permit: this returns at once.
            self.bell.notified().await;
        }
    }

    /// Whether nobody has used the tunnel for `rest` ([`Doors::quiet_for`]).
    fn quiet_for(&self, rest: Duration) -> bool {
        self.doors().quiet_for(rest)
    }

    /// Closes the tunnel if it is quiet for `rest`, in one step with that check, so no
    /// session can take it up in between.
    fn try_rest(&self, rest: Duration) -> bool {
        let mut doors = self.doors();
        let quiet = doors.quiet_for(rest);
        doors.closed |= quiet;
        quiet
    }

    /// Ends the tunnel: no more knocks; the task sees it at its next wait.
    fn close(&self) {
        self.doors().closed = true;
        self.bell.notify_one();
    }
}

impl Registry {
    /// The tunnel to a node's agent, if it is connected; an idle one is woken (its SSH
    /// started) first, and one going back to idle is waited for while its agent redials.
    pub async fn get(&self, node: &str) -> Option<Tunnel> {
        let deadline = tokio::time::Instant::now() + REJOIN_WAIT;
        // Counted from the start, so the tunnel cannot go back to idle under a starting session.
        let (shared, in_use) = loop {
            let joined = self.joined.notified();
            tokio::pin!(joined);
            joined.as_mut().enable();
            if let Some(shared) = self.alive(node)
                && let Some(in_use) = InUse::take(&shared)
            {
                break (shared, in_use);
            }
            if !self.resting(node) {
                return None;
            }
            tokio::time::timeout_at(deadline, joined).await.ok()?;
        };
        if let Some(handle) = shared.awake.get() {
            return Some(Tunnel { handle: handle.clone(), in_use });
        }
        let (waiter, answer) = tokio::sync::oneshot::channel();
        if !shared.knock(waiter) {
            return None;
        }
        drop(shared);
        let handle = tokio::time::timeout(WAKE_TIMEOUT, answer).await.ok()?.ok()?;
        Some(Tunnel { handle, in_use })
    }

    fn alive(&self, node: &str) -> Option<Arc<Shared>> {
        let agents = self.agents.lock().expect("registry lock poisoned");
        agents.get(node).filter(|c| c.shared.alive()).map(|c| c.shared.clone())
    }

    /// Whether a node's tunnel went back to idle a moment ago (its agent is redialling).
    fn resting(&self, node: &str) -> bool {
        let resting = self.resting.lock().expect("registry lock poisoned");
        resting.get(node).is_some_and(|since| since.elapsed() < REJOIN_WAIT)
    }

    /// Whether a node's agent is connected (or reconnecting after its tunnel went back to idle).
    pub fn online(&self, node: &str) -> bool {
        self.alive(node).is_some() || self.resting(node)
    }

    /// How many agents are connected.
    pub fn count(&self) -> usize {
        self.agents.lock().expect("registry lock poisoned").values().filter(|c| c.shared.alive()).count()
    }

    /// Drops a node's tunnel (the node was removed).
    pub fn disconnect(&self, node: &str) {
        drop(self.agents.lock().expect("registry lock poisoned").remove(node));
    }

    /// Registers a node's new tunnel, ending any older one.
    fn insert(&self, node: &str, shared: Arc<Shared>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let old = self
            .agents
            .lock()
            .expect("registry lock poisoned")
            .insert(node.to_string(), Connected { shared, generation });
        drop(old);
        self.resting.lock().expect("registry lock poisoned").remove(node);
        self.joined.notify_waiters();
        generation
    }

    /// Notes that a node's tunnel is closing to go back to idle.
    fn rest(&self, node: &str) {
        let mut resting = self.resting.lock().expect("registry lock poisoned");
        resting.retain(|_, since| since.elapsed() < REJOIN_WAIT);
        resting.insert(node.to_string(), std::time::Instant::now());
    }

    fn remove_if(&self, node: &str, generation: u64) {
        let mut agents = self.agents.lock().expect("registry lock poisoned");
        if agents.get(node).is_some_and(|c| c.generation == generation) {
            agents.remove(node);
        }
    }
}

/// The gateway's side of a tunnel's SSH: the agent's host key must be the one pinned at join.
pub struct TunnelClient {
    pinned: Option<PublicKey>,
    /// Dropped with the handler when the tunnel's SSH session ends, which ends
    /// [`awake_tunnel`]'s wait without a polling timer.
    _alive: tokio::sync::oneshot::Sender<()>,
}

impl client::Handler for TunnelClient {
    type Error = anyhow::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else { return Ok(false) };
        Ok(self.pinned.as_ref().is_some_and(|p| p.key_data() == key.key_data()))
    }
}

/// Serves one agent connection: a join, or a tunnel for an agent with a certificate.
///
/// The stream comes boxed: it then lives in one allocation of its own size for the
/// tunnel's whole life, instead of a slot in each future it passes through.
pub async fn serve<S>(
    gateway: Arc<Gateway>,
    stream: Box<tokio_rustls::server::TlsStream<S>>,
    peer: Peer,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let presented =
        stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| hex::encode(Sha256::digest(c)));
    match presented {
        None => Box::pin(join(&gateway, stream, peer)).await,
        Some(fingerprint) => {
            let Some(node) = Box::pin(gateway.store.node_by_agent_cert(&fingerprint)).await? else {
                let event = Event::new("node.tunnel_refused")
                    .src_ip(peer.client.ip())
                    .field("reason", "certificate of a removed node")
                    .field("certificate", fingerprint.as_str());
                Box::pin(gateway.audit.log(event)).await?;
                bail!("agent certificate {fingerprint} belongs to no node (removed?): closed");
            };
            Box::pin(tunnel(gateway, stream, &node)).await
        }
    }
}

async fn join<S>(gateway: &Gateway, stream: S, peer: Peer) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut limited = (&mut reader).take(MAX_JOIN_LINE as u64);
    let read = tokio::time::timeout(JOIN_TIMEOUT, limited.read_line(&mut line)).await;
    let received = match read {
        Err(_) => Err("join request timed out"),
        Ok(Err(_)) => Err("join request is not a text line"),
        Ok(Ok(0)) => Err("no join request"),
        Ok(Ok(_)) => Ok(()),
    };
    let answer = match received {
        Err(reason) => Err(reason.to_string()),
        Ok(()) => admit(gateway, &line, peer).await,
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(reason) => {
            let event = Event::new("node.join_failed").src_ip(peer.client.ip()).field("reason", reason.as_str());
            gateway.audit.log(event).await?;
            JoinResponse::Refused { reason }
        }
    };
    let mut out = answer.to_line();
    out.push('\n');
    let stream = reader.get_mut();
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Checks a join request and makes the node; `Err` is a reason safe to tell the agent.
async fn admit(gateway: &Gateway, line: &str, peer: Peer) -> Result<JoinResponse, String> {
    let request: JoinRequest = serde_json::from_str(line.trim()).map_err(|_| "malformed join request".to_string())?;
    validate_name(&request.name).map_err(|e| format!("node name: {e:#}"))?;
    let host_key =
        PublicKey::from_openssh(request.host_key.trim()).map_err(|_| "host_key is not an OpenSSH public key")?;
    let internal = |e: anyhow::Error| {
        tracing::error!("join: {e:#}");
        "internal error".to_string()
    };
    if gateway.store.get_node(&request.name).await.map_err(internal)?.is_some() {
        return Err(format!("node name {:?} is taken", request.name));
    }
    let hash = crate::secret::hash(&request.token);
    let Some(token_labels) = gateway.store.redeem_token(&hash).await.map_err(internal)? else {
        return Err("token unknown, used or expired".into());
    };
    let mut labels = request.labels.clone();
    labels.extend(token_labels);
    let (cert_pem, key_pem, fingerprint) = issue_certificate(gateway, &request.name).map_err(internal)?;
    let node = NodeRow {
        name: request.name.clone(),
        addr: None,
        labels,
        host_key: Some(host_key.to_openssh().map_err(|e| internal(e.into()))?),
        source: "agent".into(),
    };
    gateway.store.add_agent_node(&node, &fingerprint).await.map_err(|e| format!("{e:#}"))?;
    let event = Event::new("node.join")
        .node(Some(&node.name))
        .src_ip(peer.client.ip())
        .field("labels", serde_json::to_value(&node.labels).unwrap_or_default())
        .field("host_key", crate::node::fingerprint(&host_key));
    gateway.audit.log(event).await.map_err(internal)?;
    let mut user_ca = gateway.data.user_ca.public_key().clone();
    user_ca.set_comment("portcullis-user-ca");
    Ok(JoinResponse::Joined {
        node: node.name,
        cert_pem,
        key_pem,
        user_ca: user_ca.to_openssh().map_err(|e| internal(e.into()))?,
    })
}

/// A client certificate for `node` from the agent CA: (cert PEM, key PEM, SHA-256 of the DER).
fn issue_certificate(gateway: &Gateway, node: &str) -> anyhow::Result<(String, String, String)> {
    let ca_key = rcgen::KeyPair::from_pem(&gateway.data.agent_ca_key_pem)?;
    let issuer = rcgen::Issuer::new(agent_ca_params(), ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![node.to_string()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, node);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - Duration::from_secs(300);
    params.not_after = now + Duration::from_secs(AGENT_CERT_DAYS * 86_400);
    let cert = params.signed_by(&key, &issuer)?;
    let fingerprint = hex::encode(Sha256::digest(cert.der()));
    Ok((cert.pem(), key.serialize_pem(), fingerprint))
}

/// Holds the tunnel until the agent goes away: idle (pinged) until a session wakes it,
/// then as the SSH client of the agent's session server.
async fn tunnel<S>(gateway: Arc<Gateway>, stream: S, node: &str) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let generation = gateway.tunnels.insert(node, shared.clone());
    tracing::info!(node, "agent connected");
    let mut shutdown = gateway.shutdown.subscribe();
    let mut stream = BufReader::with_capacity(IDLE_READ, stream);
    let woken = tokio::select! {
        woken = idle(&mut stream, &shared, IDLE_PING_EVERY) => woken,
        _ = shutdown.wait() => Ok(Wake::Ended),
    };
    let result = match woken {
        Ok(Wake::Ended) => Ok(Awake::Ended),
        Ok(wake) => {
            let first = if let Wake::Session(waiter) = wake { Some(waiter) } else { None };
            Box::pin(awake_tunnel(&gateway, node, stream, first, &shared)).await
        }
        Err(err) => Err(err),
    };
    // Sessions knocking from now on hear at once that it is gone.
    shared.close();
    gateway.tunnels.remove_if(node, generation);
    if let Ok(Awake::Rested) = result {
        let rest = gateway.config.agents.awake_idle;
        tracing::info!(node, "agent tunnel unused for {rest:?}: closed so the agent reconnects idle");
    } else {
        tracing::info!(node, "agent disconnected");
    }
    result.map(|_| ())
}

/// Why an idle tunnel stopped idling.
enum Wake {
    /// A session needs it.
    Session(Waiter),
    /// The agent began SSH by itself (an agent from before idle tunnels).
    AgentStartedSsh,
    /// The registry let it go (node removed, or a newer tunnel), or the gateway stops.
    Ended,
}

/// Pings the idle tunnel `every` so often and reads its pongs until a session wants it.
async fn idle<S>(stream: &mut BufReader<S>, shared: &Shared, every: Duration) -> anyhow::Result<Wake>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A timer inside this future rather than an interval's boxed one.
    let ping = tokio::time::sleep(every);
    tokio::pin!(ping);
    let mut heard = true;
    loop {
        tokio::select! {
            waiter = shared.next() => return Ok(waiter.map_or(Wake::Ended, Wake::Session)),
            () = &mut ping => {
                if !heard {
                    bail!("the agent answered no ping in {every:?}");
                }
                heard = false;
                stream.get_mut().write_all(IDLE_PING).await?;
                stream.get_mut().flush().await?;
                ping.as_mut().reset(tokio::time::Instant::now() + every);
            }
            read = stream.fill_buf() => {
                let buffered = read?;
                match buffered.first() {
                    None => bail!("the agent closed the tunnel"),
                    Some(b'S') => return Ok(Wake::AgentStartedSsh),
                    Some(_) => {}
                }
                // Anything else is a pong: proof of life, nothing more.
                let n = buffered.len();
                stream.consume(n);
                heard = true;
            }
        }
    }
}

/// How an awake tunnel ended.
enum Awake {
    /// The agent, the registry or the gateway's shutdown ended it.
    Ended,
    /// Nobody used it for `agents.awake_idle`: closed so that the agent reconnects idle.
    Rested,
}

/// Starts the tunnel's SSH and serves sessions' requests for its handle until it closes,
/// or (when a session woke it) until it has been unused for `agents.awake_idle`.
async fn awake_tunnel<S>(
    gateway: &Gateway,
    node: &str,
    stream: BufReader<S>,
    first: Option<Waiter>,
    shared: &Shared,
) -> anyhow::Result<Awake>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The agent's host key as pinned now (read at wake-up, not held by every idle tunnel).
    let pinned = match gateway.store.get_node(node).await?.and_then(|n| n.host_key) {
        Some(text) => Some(PublicKey::from_openssh(&text).context("stored agent host key")?),
        None => None,
    };
    let config = crate::ssh::client_config(Duration::from_secs(20), 3);
    // What was read ahead (an agent's own SSH identification) goes to the SSH client first.
    let stream = crate::listen::Prefixed::new(stream.buffer().to_vec(), stream.into_inner());
    let (alive, mut gone) = tokio::sync::oneshot::channel();
    let mut handle = client::connect_stream(config, stream, TunnelClient { pinned, _alive: alive })
        .await
        .context("tunnel SSH handshake")?;
    let auth = handle.authenticate_none("portcullis").await?;
    if !auth.success() {
        bail!("the agent refused the tunnel login");
    }
    let handle = Arc::new(handle);
    let _ = shared.awake.set(handle.clone());
    // An agent that started SSH by itself predates idle tunnels and would only start it
    // again: only a tunnel a session woke goes back to idle.
    let may_rest = first.is_some();
    if let Some(waiter) = first {
        let _ = waiter.send(handle.clone());
    }
    let rest = gateway.config.agents.awake_idle;
    let mut check = tokio::time::interval((rest / 4).min(REST_CHECK_MAX));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = gateway.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = &mut gone => break,
            _ = shutdown.wait() => break,
            _ = check.tick(), if may_rest => {
                if shared.quiet_for(rest) {
                    // Marked resting first: a session that then finds it closed waits for the agent.
                    gateway.tunnels.rest(node);
                    if shared.try_rest(rest) {
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, "tunnel unused: reconnect idle", "en").await;
                        return Ok(Awake::Rested);
                    }
                }
            }
            waiter = shared.next() => match waiter {
                Some(waiter) => { let _ = waiter.send(handle.clone()); }
                None => {
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "tunnel closed by the gateway", "en").await;
                    break;
                }
            },
        }
    }
    Ok(Awake::Ended)
}

/// Opens a byte stream to a connected agent's session server; the tunnel stays awake
/// while the stream lives.
pub async fn open_session(gateway: &Gateway, node: &str) -> anyhow::Result<TunnelStream> {
    let tunnel =
        gateway.tunnels.get(node).await.with_context(|| format!("the agent of node {node} is not connected"))?;
    let channel = tunnel
        .handle
        .channel_open_direct_tcpip(portcullis_proto::tunnel::SESSION_HOST, 22, "127.0.0.1", 0)
        .await
        .context("open a session channel in the tunnel")?;
    Ok(TunnelStream { stream: channel.into_stream(), _in_use: tunnel.in_use })
}

/// A session's stream through an agent tunnel, counted as a use of the tunnel.
pub struct TunnelStream {
    stream: russh::ChannelStream<client::Msg>,
    _in_use: InUse,
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_proto::tunnel::IDLE_PONG;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// Short, but far above a loaded CI machine's scheduling delays: the answering test
    /// fails if one pong takes longer than this.
    const EVERY: Duration = Duration::from_millis(250);
    /// Bound on every wait that should succeed.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn pair() -> (BufReader<DuplexStream>, DuplexStream) {
        let (gateway, agent) = tokio::io::duplex(1024);
        (BufReader::with_capacity(IDLE_READ, gateway), agent)
    }

    async fn read_ping(agent: &mut DuplexStream) {
        let mut ping = [0u8; 5];
        tokio::time::timeout(PATIENCE, agent.read_exact(&mut ping)).await.expect("a ping in time").unwrap();
        assert_eq!(&ping, IDLE_PING);
    }

    #[tokio::test]
    async fn an_answering_agent_stays_idle_until_a_session_wakes_it() {
        let (mut stream, mut agent) = pair();
        let shared = Arc::new(Shared::default());
        let knocking = shared.clone();
        let idling = tokio::spawn(async move { idle(&mut stream, &shared, EVERY).await.map(|w| (w, stream)) });
        for _ in 0..4 {
            read_ping(&mut agent).await;
            agent.write_all(IDLE_PONG).await.unwrap();
        }
        assert!(!idling.is_finished(), "four answered pings keep it idle");
        let (waiter, _answer) = tokio::sync::oneshot::channel();
        assert!(knocking.knock(waiter));
        let (woken, stream) = tokio::time::timeout(PATIENCE, idling).await.unwrap().unwrap().unwrap();
        assert!(matches!(woken, Wake::Session(_)));
        assert!(stream.buffer().is_empty(), "pongs are consumed, nothing is left for SSH");
    }

    #[tokio::test]
    async fn a_silent_agent_is_dropped_after_one_unanswered_ping() {
        let (mut stream, mut agent) = pair();
        let started = tokio::time::Instant::now();
        let idling = tokio::spawn(async move { idle(&mut stream, &Shared::default(), EVERY).await });
        read_ping(&mut agent).await;
        let ended = tokio::time::timeout(PATIENCE, idling).await.unwrap().unwrap();
        let Err(err) = ended else { panic!("a silent agent must be dropped") };
        let err = err.to_string();
        assert!(err.contains("answered no ping"), "{err}");
        assert!(started.elapsed() >= EVERY * 2, "only at the second ping's turn");
    }

    #[tokio::test]
    async fn an_agent_that_starts_ssh_itself_wakes_the_tunnel_with_its_bytes_kept() {
        let (mut stream, mut agent) = pair();
        agent.write_all(b"SSH-2.0-old-agent\r\n").await.unwrap();
        let woken = idle(&mut stream, &Shared::default(), EVERY).await.unwrap();
        assert!(matches!(woken, Wake::AgentStartedSsh));
        assert_eq!(stream.buffer(), b"SSH-2.0-old-agent\r\n", "left for the SSH client");
    }

    #[tokio::test]
    async fn every_knock_is_taken_and_the_registry_letting_go_closes_the_tunnel() {
        let shared = Arc::new(Shared::default());
        let answers: Vec<_> = (0..3)
            .map(|_| {
                let (waiter, answer) = tokio::sync::oneshot::channel();
                assert!(shared.knock(waiter));
                answer
            })
            .collect();
        for _ in &answers {
            tokio::time::timeout(PATIENCE, shared.next()).await.unwrap().expect("a waiting session");
        }
        let registry = Registry::default();
        registry.insert("gpu-01", shared.clone());
        assert!(registry.online("gpu-01") && registry.count() == 1);
        registry.disconnect("gpu-01");
        assert!(tokio::time::timeout(PATIENCE, shared.next()).await.unwrap().is_none());
        assert!(!shared.alive());
        assert!(registry.get("gpu-01").await.is_none());
    }

    #[test]
    fn a_used_tunnel_is_quiet_only_once_every_use_let_go() {
        let shared = Arc::new(Shared::default());
        assert!(!shared.quiet_for(Duration::ZERO), "never used by a session: its agent woke it");
        let first = InUse::take(&shared).unwrap();
        let second = InUse::take(&shared).unwrap();
        drop(first);
        assert!(!shared.quiet_for(Duration::ZERO) && !shared.try_rest(Duration::ZERO), "one session still holds it");
        drop(second);
        assert!(shared.quiet_for(Duration::ZERO));
        assert!(!shared.try_rest(Duration::from_secs(60)), "quiet, but not for that long");
        assert!(shared.alive());
        assert!(shared.try_rest(Duration::ZERO));
        assert!(!shared.alive() && InUse::take(&shared).is_none(), "resting: closed to new sessions");
    }

    #[tokio::test]
    async fn a_resting_node_stays_online_and_its_sessions_wait_for_the_agent_to_redial() {
        let registry = Arc::new(Registry::default());
        let started = tokio::time::Instant::now();
        assert!(registry.get("gpu-01").await.is_none());
        assert!(started.elapsed() < REJOIN_WAIT / 2, "a node that is not resting is not waited for");
        assert!(!registry.online("gpu-01"));

        registry.rest("gpu-01");
        assert!(registry.online("gpu-01"), "online while its agent redials");
        let asking = registry.clone();
        let session = tokio::spawn(async move { asking.get("gpu-01").await.is_some() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!session.is_finished(), "the session waits for the agent");
        let shared = Arc::new(Shared::default());
        registry.insert("gpu-01", shared.clone());
        let waiter = tokio::time::timeout(PATIENCE, shared.next()).await.unwrap();
        assert!(waiter.is_some(), "the waiting session knocked on the new tunnel");
        assert!(!shared.quiet_for(Duration::ZERO), "and holds it while it waits");
        drop(waiter);
        assert!(!tokio::time::timeout(PATIENCE, session).await.unwrap().unwrap(), "no handle came: none");
        assert!(registry.resting.lock().unwrap().is_empty(), "the new tunnel ended the rest");
    }

    #[tokio::test]
    async fn the_registry_letting_go_or_the_agent_closing_ends_the_idle_tunnel() {
        let (mut stream, _agent) = pair();
        let shared = Shared::default();
        shared.close();
        assert!(matches!(idle(&mut stream, &shared, EVERY).await.unwrap(), Wake::Ended));
        let (waiter, _answer) = tokio::sync::oneshot::channel();
        assert!(!shared.knock(waiter), "no knocking on a closed tunnel");

        let (mut stream, agent) = pair();
        drop(agent);
        let Err(err) = idle(&mut stream, &Shared::default(), EVERY).await else {
            panic!("a closed agent ends the tunnel")
        };
        let err = err.to_string();
        assert!(err.contains("closed the tunnel"), "{err}");
    }
}
