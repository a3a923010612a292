//! Account expiry: once a user's `expires_at` passes, their live SSH and web terminals end
//! (with the relay's generic message), their web sessions are deleted, and one
//! `user.expired` event says so. Also forgets login failures older than the throttle window.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Event;
use crate::gateway::Gateway;
use crate::store::now;

/// How often expiry is checked; an expired user's sessions end within this.
pub const EVERY: Duration = Duration::from_secs(2);

/// Checks for expired accounts until shutdown.
pub async fn run(gateway: Arc<Gateway>) {
    let mut shutdown = gateway.shutdown.subscribe();
    let mut every = tokio::time::interval(EVERY);
    let mut ended = HashSet::new();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait() => return,
        }
        if let Err(err) = sweep(&gateway, &mut ended).await {
            tracing::warn!("account expiry: {err:#}");
        }
    }
}

/// One pass; `ended` remembers sessions already told to end, which stay listed until their
/// relay finishes, so each is counted (and audited) once.
pub async fn sweep(gateway: &Gateway, ended: &mut HashSet<String>) -> anyhow::Result<()> {
    let live = gateway.sessions.list();
    ended.retain(|id| live.iter().any(|l| &l.row.id == id));
    for name in gateway.store.expired_users(now()).await? {
        let mut sessions_ended = 0;
        for session in live.iter().filter(|l| l.row.user == name) {
            if ended.insert(session.row.id.clone()) {
                session.kill();
                sessions_ended += 1;
            }
        }
        let web_sessions_ended = gateway.store.delete_user_web_sessions(&name).await?;
        if sessions_ended > 0 {
            crate::node::close_pooled(gateway.node_pool.forget_user(&name)).await;
        }
        if sessions_ended > 0 || web_sessions_ended > 0 {
            let event = Event::new("user.expired")
                .user(Some(&name))
                .field("sessions_ended", sessions_ended)
                .field("web_sessions_ended", web_sessions_ended);
            gateway.audit.log(event).await?;
        }
    }
    gateway.store.prune_login_failures(now() - super::login::WINDOW_SECS).await?;
    Ok(())
}
