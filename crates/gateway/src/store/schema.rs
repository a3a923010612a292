//! Embedded, ordered schema migrations.

use sqlx::{Row, SqlitePool};

/// Each entry is applied once, in order, inside a transaction.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    roles TEXT NOT NULL,
    password_hash TEXT,
    totp_secret TEXT,
    expires_at INTEGER,
    locked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE user_keys (
    fingerprint TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    comment TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE INDEX user_keys_user ON user_keys(user_name);
CREATE TABLE roles (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    builtin INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    addr TEXT,
    labels TEXT NOT NULL,
    host_key TEXT,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE invites (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    node TEXT NOT NULL,
    login TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    kind TEXT NOT NULL,
    recorded INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    node TEXT NOT NULL,
    login TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    command TEXT,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX recordings_started ON recordings(started_at);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    type TEXT NOT NULL,
    user_name TEXT,
    src_ip TEXT,
    node TEXT,
    session_id TEXT,
    line TEXT NOT NULL
);
CREATE INDEX audit_type ON audit(type);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE recordings ADD COLUMN capped_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN replaced_bytes INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
ALTER TABLE nodes ADD COLUMN agent_cert TEXT;
"#,
    r#"
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE invites ADD COLUMN pending_totp TEXT;
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_name);
CREATE TABLE login_failures (
    subject TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures(subject, at);
"#,
    // Recordings: keyset paging (newest first, by filter), and the index of each
    // recording's contents (see `store::recording_index`).
    r#"
DROP INDEX recordings_started;
CREATE INDEX recordings_started ON recordings(started_at, id);
CREATE INDEX recordings_user_started ON recordings(user_name, started_at, id);
CREATE INDEX recordings_node_started ON recordings(node, started_at, id);
CREATE TABLE recording_index (
    recording_id TEXT PRIMARY KEY,
    cast_offset INTEGER NOT NULL,
    text_bytes INTEGER NOT NULL,
    pending TEXT NOT NULL,
    pending_t REAL NOT NULL,
    done INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE recording_keyframes (
    recording_id TEXT NOT NULL,
    t REAL NOT NULL,
    cast_offset INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    screen BLOB NOT NULL,
    PRIMARY KEY (recording_id, cast_offset)
);
CREATE VIRTUAL TABLE recording_text USING fts5(line, recording_id UNINDEXED, t UNINDEXED);
"#,
    // A recording's length in its own clock, in microseconds; `ended_at` is whole
    // seconds, too coarse for a player's end.
    r#"
ALTER TABLE recordings ADD COLUMN duration_us INTEGER;
"#,
    // Every agent tunnel looks its node up by certificate: without an index a fleet's
    // reconnect after a restart scanned the whole table once per agent.
    r#"
CREATE INDEX nodes_agent_cert ON nodes(agent_cert);
"#,
];

/// Brings the schema up to date.
pub async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").execute(pool).await?;
    let row = sqlx::query("SELECT MAX(version) AS v FROM schema_version").fetch_one(pool).await?;
    let current: i64 = row.try_get::<Option<i64>, _>("v")?.unwrap_or(0);
    if current > MIGRATIONS.len() as i64 {
        anyhow::bail!("database schema version {current} is newer than this binary knows ({})", MIGRATIONS.len());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)").bind(i as i64 + 1).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}
