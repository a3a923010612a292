//! The admin API on `DATA_DIR/admin.sock` (mode 0600, never on TCP).
//!
//! One request per connection: a JSON line in, a JSON line out. Only the socket's
//! owner (the gateway's user) and root may talk to it; every change is audited.

pub mod protocol;
mod stream;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use russh::keys::ssh_key::{HashAlg, PublicKey, public::KeyData};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub use protocol::{Request, Response};

use crate::audit::Event;
use crate::config::{validate_host_port, validate_name};
use crate::gateway::Gateway;
use crate::policy;
use crate::secret;
use crate::store::{NodeRow, now, rfc3339};

/// Longest an invite link stays valid, whatever the account's lifetime.
pub const INVITE_TTL_SECS: i64 = 24 * 3600;
/// How long one admin request may take to arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the admin socket with mode 0600, refusing if another gateway is serving it.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!("{} is in use: another gateway runs on this data dir", path.display());
        }
        fs::remove_file(path).with_context(|| format!("cannot remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode 0600 on {}", path.display()))?;
    Ok(listener)
}

/// Serves admin requests until shutdown.
pub async fn serve(gateway: Arc<Gateway>, listener: UnixListener) {
    let owner = fs::metadata(&gateway.data.root).map(|m| m.uid()).ok();
    let mut shutdown = gateway.shutdown.subscribe();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(%err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return,
        };
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        if uid.is_none() || (uid != Some(0) && uid != owner) {
            tracing::warn!(?uid, "admin socket connection from another user refused");
            continue;
        }
        let gateway = gateway.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(gateway, stream, uid.unwrap_or_default()).await {
                tracing::debug!("admin connection: {err:#}");
            }
        });
    }
}

async fn connection(gateway: Arc<Gateway>, stream: UnixStream, uid: u32) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await.context("request timed out")??;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(err) => Response::error(format!("bad request: {err}")),
        Ok(Request::SessionsWatch { id }) => return stream::watch(&gateway, &id, uid, write).await,
        Ok(Request::RecordingsGet { id }) => return stream::recording(&gateway, &id, uid, write).await,
        Ok(request) => handle(&gateway, request, &format!("admin.sock uid={uid}"))
            .await
            .unwrap_or_else(|err| Response::error(format!("{err:#}"))),
    };
    send(&mut write, &response).await?;
    write.shutdown().await?;
    Ok(())
}

/// Writes one response line.
async fn send(write: &mut (impl AsyncWriteExt + Unpin), response: &Response) -> anyhow::Result<()> {
    let mut out = serde_json::to_vec(response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

const MAX_LINE: u64 = protocol::MAX_REQUEST as u64;

/// Answers one request.
pub async fn handle(gateway: &Gateway, request: Request, actor: &str) -> anyhow::Result<Response> {
    let store = &gateway.store;
    let audit = |kind: &str| Event::new(kind).field("actor", actor);
    match request {
        Request::Status => {
            let m = gateway.metrics.snapshot();
            let row = serde_json::json!({
                "listen": gateway.local_addr.get().map(|a| a.to_string()),
                "url": gateway.base_url(),
                "accepted": m.accepted,
                "denied_by_allowlist": m.denied_by_allowlist,
                "denied_by_source_limit": m.denied_by_source_limit,
                "proxy_refused": m.proxy_refused,
                "agents": gateway.tunnels.count(),
                "sessions": gateway.sessions.list().len(),
            });
            let columns = [
                "listen",
                "url",
                "accepted",
                "denied_by_allowlist",
                "denied_by_source_limit",
                "proxy_refused",
                "agents",
                "sessions",
            ];
            Response::table(&columns, &[row])
        }
        Request::UsersAdd { name, roles, ttl } => {
            validate_name(&name).context("user name")?;
            if roles.is_empty() {
                bail!("a user needs at least one role (--roles)");
            }
            let known = store.list_roles().await?;
            for role in &roles {
                if !known.iter().any(|k| &k.name == role) {
                    bail!("no role {role:?} (see `ctl roles ls`)");
                }
            }
            let lifetime = match &ttl {
                None => None,
                Some(text) => Some(humantime::parse_duration(text).with_context(|| format!("--ttl {text:?}"))?),
            };
            let expires_at = lifetime.map(|d| now() + d.as_secs() as i64);
            store.create_user(&name, &roles, expires_at).await?;
            let token = secret::token();
            let invite_until = expires_at.map_or(now() + INVITE_TTL_SECS, |e| e.min(now() + INVITE_TTL_SECS));
            store.create_invite(&name, &secret::hash(&token), invite_until).await?;
            let add = audit("user.add")
                .user(Some(&name))
                .field("roles", roles.join(","))
                .field("expires", rfc3339(expires_at));
            gateway.audit.log(add).await?;
            gateway
                .audit
                .log(audit("invite.create").user(Some(&name)).field("expires", rfc3339(Some(invite_until))))
                .await?;
            Ok(Response::text(format!("{}/invite/{token}", gateway.base_url())))
        }
        Request::UsersLs => {
            let rows: Vec<_> = store
                .list_users()
                .await?
                .into_iter()
                .map(|u| {
                    serde_json::json!({
                        "name": u.name, "roles": u.roles.join(","), "enrolled": u.enrolled, "keys": u.keys,
                        "locked": u.locked, "expires": rfc3339(u.expires_at),
                    })
                })
                .collect();
            Response::table(&["name", "roles", "enrolled", "keys", "locked", "expires"], &rows)
        }
        Request::UsersRm { name } => {
            if !store.remove_user(&name).await? {
                bail!("no user {name:?}");
            }
            let ended = gateway.sessions.kill_user(&name);
            crate::node::close_pooled(gateway.node_pool.forget_user(&name)).await;
            gateway.audit.log(audit("user.rm").user(Some(&name)).field("sessions_ended", ended)).await?;
            Ok(Response::text(format!("removed user {name}")))
        }
        Request::UsersLock { name } => set_locked(gateway, &name, true, actor).await,
        Request::UsersUnlock { name } => set_locked(gateway, &name, false, actor).await,
        Request::UsersExpire { name } => {
            if !store.set_expiry(&name, Some(now())).await? {
                bail!("no user {name:?}");
            }
            gateway.audit.log(audit("user.expire").user(Some(&name))).await?;
            Ok(Response::text(format!("user {name} expired; their sessions end within seconds")))
        }
        Request::UsersResetTotp { name } => {
            let user = store.get_user(&name).await?.with_context(|| format!("no user {name:?}"))?;
            store.reset_totp(&name).await?;
            let ended = store.delete_user_web_sessions(&name).await?;
            let token = secret::token();
            let invite_until = user.expires_at.map_or(now() + INVITE_TTL_SECS, |e| e.min(now() + INVITE_TTL_SECS));
            store.create_invite(&name, &secret::hash(&token), invite_until).await?;
            gateway.audit.log(audit("user.reset_totp").user(Some(&name)).field("web_sessions_ended", ended)).await?;
            gateway
                .audit
                .log(audit("invite.create").user(Some(&name)).field("expires", rfc3339(Some(invite_until))))
                .await?;
            Ok(Response::text(format!("{}/invite/{token}", gateway.base_url())))
        }
        Request::UsersAddKey { name, key } => {
            let public = parse_public_key(&key)?;
            let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
            let comment = format!("{} {}", public.algorithm().as_str(), public.comment());
            if store.get_user(&name).await?.is_none() {
                bail!("no user {name:?}");
            }
            store.add_key(&name, &fingerprint, &public.to_openssh()?, comment.trim()).await?;
            gateway
                .audit
                .log(audit("user.add_key").user(Some(&name)).field("fingerprint", fingerprint.as_str()))
                .await?;
            Ok(Response::text(format!("added key {fingerprint} for {name}")))
        }
        Request::RolesLs => {
            let mut rows = Vec::new();
            for row in store.list_roles().await? {
                for role in policy::parse_roles_toml(&row.definition)? {
                    rows.push(RoleSummary::of(&role, row.builtin));
                }
            }
            Response::table(&["name", "builtin", "nodes", "logins", "allow", "record", "source_cidrs"], &rows)
        }
        Request::RolesShow { name } => {
            let row = store.list_roles().await?.into_iter().find(|r| r.name == name);
            let row = row.with_context(|| format!("no role {name:?}"))?;
            Ok(Response::text(row.definition))
        }
        Request::RolesApply { toml } => {
            let roles = policy::parse_roles_toml(&toml)?;
            if roles.is_empty() {
                bail!("the file defines no [[role]]");
            }
            let rows: Vec<(String, String)> =
                roles.iter().map(|r| (r.name().to_string(), policy::to_toml(std::slice::from_ref(r)))).collect();
            store.put_roles(&rows, false).await?;
            let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
            gateway.audit.log(audit("role.apply").field("roles", names.join(","))).await?;
            Ok(Response::text(format!("applied {}", names.join(", "))))
        }
        Request::NodesLs => {
            let rows: Vec<_> = store
                .list_nodes()
                .await?
                .into_iter()
                .map(|n| {
                    serde_json::json!({
                        "name": n.name, "addr": n.addr.unwrap_or_else(|| "-".into()),
                        "labels": n.labels, "host_key": host_key_fingerprint(n.host_key.as_deref()),
                        "online": if n.source == "agent" { serde_json::json!(gateway.tunnels.online(&n.name)) } else { serde_json::json!("-") },
                        "source": n.source,
                    })
                })
                .collect();
            Response::table(&["name", "addr", "labels", "online", "host_key", "source"], &rows)
        }
        Request::NodesAdd { name, addr, labels } => {
            validate_name(&name).context("node name")?;
            validate_host_port(&addr).context("--addr")?;
            let row = NodeRow {
                name: name.clone(),
                addr: Some(addr.clone()),
                labels,
                host_key: None,
                source: "admin".into(),
            };
            store.add_node(&row).await?;
            gateway
                .audit
                .log(
                    audit("node.add")
                        .node(Some(&name))
                        .field("addr", addr.as_str())
                        .field("labels", labels_text(&row.labels)),
                )
                .await?;
            Ok(Response::text(format!("added node {name}")))
        }
        Request::NodesRm { name } => {
            if !store.remove_node(&name).await? {
                bail!("no node {name:?}");
            }
            // An agent's identity is its node row: with the row gone its certificate opens nothing.
            gateway.tunnels.disconnect(&name);
            crate::node::close_pooled(gateway.node_pool.forget_node(&name)).await;
            gateway.audit.log(audit("node.rm").node(Some(&name))).await?;
            Ok(Response::text(format!("removed node {name}")))
        }
        Request::NodesRepin { name } => {
            if !store.unpin_host_key(&name).await? {
                bail!("no node {name:?}");
            }
            crate::node::close_pooled(gateway.node_pool.forget_node(&name)).await;
            gateway.audit.log(audit("node.repin").node(Some(&name))).await?;
            Ok(Response::text(format!("node {name}: host key forgotten; the next connection pins the key it presents")))
        }
        Request::NodesLabel { name, labels } => {
            let node = store.get_node(&name).await?.with_context(|| format!("no node {name:?}"))?;
            if node.source == "config" {
                bail!("node {name:?} is defined in the config file: change its labels there");
            }
            for (key, value) in &labels {
                portcullis_proto::labels::check(key, value)?;
                if node.source == "agent" && is_inventory_label(key) {
                    bail!("label {key:?} comes from the agent's inventory and cannot be set");
                }
            }
            let mut merged: BTreeMap<String, String> =
                node.labels.into_iter().filter(|(k, _)| node.source == "agent" && is_inventory_label(k)).collect();
            merged.extend(labels);
            store.set_node_labels(&name, &merged).await?;
            gateway.audit.log(audit("node.label").node(Some(&name)).field("labels", labels_text(&merged))).await?;
            Ok(Response::text(format!("node {name}: labels {}", labels_text(&merged))))
        }
        Request::SessionsLs { active } => {
            let live: std::collections::HashMap<String, _> =
                gateway.sessions.list().into_iter().map(|l| (l.row.id.clone(), l)).collect();
            let rows: Vec<_> = store
                .list_sessions(1000)
                .await?
                .into_iter()
                .filter(|s| !active || live.contains_key(&s.id))
                .map(|s| {
                    let now_live = live.get(&s.id);
                    serde_json::json!({
                        "id": s.id, "user": s.user, "node": s.node, "login": s.login, "client": s.client_addr,
                        "kind": s.kind, "active": now_live.is_some(), "start": rfc3339(Some(s.started_at)),
                        "end": rfc3339(s.ended_at),
                        "bytes_out": now_live.map(|l| l.bytes_out.load(std::sync::atomic::Ordering::Relaxed)),
                    })
                })
                .collect();
            Response::table(&["id", "user", "node", "login", "client", "kind", "active", "start", "end"], &rows)
        }
        Request::SessionsKill { id } => {
            let live = gateway.sessions.get(&id).with_context(|| format!("no live session {id:?}"))?;
            live.kill();
            let event = audit("session.kill").session(&id).user(Some(&live.row.user)).node(Some(&live.row.node));
            gateway.audit.log(event).await?;
            Ok(Response::text(format!("session {id} ended")))
        }
        Request::SessionsWatch { .. } | Request::RecordingsGet { .. } => bail!("streaming request on the wrong path"),
        Request::RecordingsLs { user, node, since, grep, limit } => {
            stream::list_recordings(gateway, user, node, since, grep, limit).await
        }
        Request::TokensCreate { ttl, labels } => {
            let ttl_text = ttl.unwrap_or_else(|| "1h".into());
            let lifetime = humantime::parse_duration(&ttl_text).with_context(|| format!("--ttl {ttl_text:?}"))?;
            if lifetime.is_zero() || lifetime.as_secs() > 30 * 86_400 {
                bail!("--ttl must be between 1s and 30 days");
            }
            let secret = secret::token();
            let hash = secret::hash(&secret);
            let expires_at = now() + lifetime.as_secs() as i64;
            store.create_token(&hash, &labels, expires_at).await?;
            let event = audit("token.create")
                .field("token", &hash[..12])
                .field("labels", labels_text(&labels))
                .field("expires", rfc3339(Some(expires_at)));
            gateway.audit.log(event).await?;
            let token = portcullis_proto::tunnel::JoinToken { secret, pin: gateway.tls.pin.clone() };
            Ok(Response::text(token.encode()))
        }
        Request::TokensLs => {
            let rows: Vec<_> = store
                .list_tokens()
                .await?
                .into_iter()
                .map(|t| {
                    let state = if t.used_at.is_some() {
                        "used"
                    } else if t.expires_at <= now() {
                        "expired"
                    } else {
                        "valid"
                    };
                    serde_json::json!({
                        "id": t.id, "labels": labels_text(&t.labels), "expires": rfc3339(Some(t.expires_at)),
                        "used": rfc3339(t.used_at), "state": state,
                    })
                })
                .collect();
            Response::table(&["id", "labels", "expires", "used", "state"], &rows)
        }
        Request::TokensRevoke { id } => {
            if !store.revoke_token(&id).await? {
                bail!("no token {id:?}");
            }
            gateway.audit.log(audit("token.revoke").field("token", id.as_str())).await?;
            Ok(Response::text(format!("revoked token {id}")))
        }
        Request::CaExport { kind } => {
            let (key, comment) = match kind.as_str() {
                "user" => (&gateway.data.user_ca, "portcullis-user-ca"),
                "host" => (&gateway.data.host_ca, "portcullis-host-ca"),
                other => bail!("--kind {other:?}: expected user or host"),
            };
            let mut public = key.public_key().clone();
            public.set_comment(comment);
            Ok(Response::text(public.to_openssh()?))
        }
        Request::AuditLs { filter, limit } => {
            let lines = store.query_audit(&filter, limit.unwrap_or(1000).clamp(1, 100_000)).await?;
            let rows: Vec<serde_json::Value> =
                lines.iter().map(|l| serde_json::from_str(l)).collect::<Result<_, _>>()?;
            Response::table(&["seq", "time", "type", "user", "src_ip", "node", "session_id"], &rows)
        }
        Request::AuditVerify => gateway.audit.verify().await,
    }
}

async fn set_locked(gateway: &Gateway, name: &str, locked: bool, actor: &str) -> anyhow::Result<Response> {
    if !gateway.store.set_locked(name, locked).await? {
        bail!("no user {name:?}");
    }
    let kind = if locked { "user.lock" } else { "user.unlock" };
    let ended = if locked { gateway.sessions.kill_user(name) } else { 0 };
    if locked {
        crate::node::close_pooled(gateway.node_pool.forget_user(name)).await;
    }
    gateway.audit.log(Event::new(kind).user(Some(name)).field("actor", actor).field("sessions_ended", ended)).await?;
    Ok(Response::text(format!("{} user {name}", if locked { "locked" } else { "unlocked" })))
}

/// Parses one `authorized_keys`-style line, refusing weak keys.
fn parse_public_key(text: &str) -> anyhow::Result<PublicKey> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    let line = line.context("the key file holds no public key")?;
    let key = PublicKey::from_openssh(line).context("not an OpenSSH public key line (ssh-ed25519 AAAA... comment)")?;
    match key.key_data() {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => Ok(key),
        KeyData::Rsa(rsa) => {
            let bits = rsa.n().as_positive_bytes().map_or(0, |b| b.len() * 8);
            if bits < 2048 {
                bail!("RSA keys must have at least 2048 bits (this one has {bits})");
            }
            Ok(key)
        }
        _ => bail!("unsupported key type {} (use Ed25519, ECDSA or RSA >= 2048)", key.algorithm().as_str()),
    }
}

/// Labels an agent reports from its node's inventory (see the agent's inventory module).
pub fn is_inventory_label(key: &str) -> bool {
    ["os", "kernel", "hostname", "memory_gib"].contains(&key)
        || ["os.", "cpu.", "gpu."].iter().any(|prefix| key.starts_with(prefix))
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() { "-".into() } else { parts.join(",") }
}

fn host_key_fingerprint(key: Option<&str>) -> String {
    key.and_then(crate::node::fingerprint_of).unwrap_or_else(|| "-".into())
}

#[derive(Serialize)]
struct RoleSummary {
    name: String,
    builtin: bool,
    nodes: String,
    logins: String,
    allow: String,
    record: bool,
    source_cidrs: String,
}

impl RoleSummary {
    fn of(role: &policy::Role, builtin: bool) -> RoleSummary {
        RoleSummary {
            name: role.name().to_string(),
            builtin,
            nodes: labels_text(role.nodes()),
            logins: role.logins().join(","),
            allow: role.allow().iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
            record: role.record(),
            source_cidrs: role.source_cidrs().iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        }
    }
}
