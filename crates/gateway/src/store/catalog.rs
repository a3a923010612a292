//! Roles, nodes and the audit index.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, now};

/// A stored role: its TOML definition.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    /// Role name.
    pub name: String,
    /// One `[[role]]` table in TOML.
    pub definition: String,
    /// Made at first start.
    pub builtin: bool,
}

/// A node known to the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// Name users type.
    pub name: String,
    /// `host:port` of its sshd (agentless).
    pub addr: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Pinned host key (OpenSSH public key text), once known.
    pub host_key: Option<String>,
    /// `admin`, `config` or `agent`.
    pub source: String,
}

fn node_row(row: &SqliteRow) -> anyhow::Result<NodeRow> {
    let labels: String = row.try_get("labels")?;
    Ok(NodeRow {
        name: row.try_get("name")?,
        addr: row.try_get("addr")?,
        labels: serde_json::from_str(&labels).context("corrupt node labels")?,
        host_key: row.try_get("host_key")?,
        source: row.try_get("source")?,
    })
}

impl Store {
    /// All roles, by name.
    pub async fn list_roles(&self) -> anyhow::Result<Vec<RoleRow>> {
        let rows =
            sqlx::query("SELECT name, definition, builtin FROM roles ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(RoleRow {
                    name: r.try_get("name")?,
                    definition: r.try_get("definition")?,
                    builtin: r.try_get::<i64, _>("builtin")? != 0,
                })
            })
            .collect()
    }

    /// Adds or replaces roles in one transaction.
    pub async fn put_roles(&self, roles: &[(String, String)], builtin: bool) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for (name, definition) in roles {
            sqlx::query(
                "INSERT INTO roles (name, definition, builtin, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(definition)
            .bind(i64::from(builtin))
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a node; fails if the name is taken.
    pub async fn add_node(&self, node: &NodeRow) -> anyhow::Result<()> {
        let result = sqlx::query(
            "INSERT INTO nodes (name, addr, labels, host_key, source, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&node.name)
        .bind(&node.addr)
        .bind(serde_json::to_string(&node.labels)?)
        .bind(&node.host_key)
        .bind(&node.source)
        .bind(now())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => bail!("node {:?} already exists", node.name),
            other => other.map(|_| ()).context("cannot add node"),
        }
    }

    /// Makes the config file's nodes present with their declared address and labels.
    pub async fn sync_config_node(&self, node: &NodeRow) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO nodes (name, addr, labels, source, created_at) VALUES ($1, $2, $3, 'config', $4) \
             ON CONFLICT (name) DO UPDATE SET addr = excluded.addr, labels = excluded.labels",
        )
        .bind(&node.name)
        .bind(&node.addr)
        .bind(serde_json::to_string(&node.labels)?)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All nodes, by name.
    pub async fn list_nodes(&self) -> anyhow::Result<Vec<NodeRow>> {
        let rows = sqlx::query("SELECT name, addr, labels, host_key, source FROM nodes ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(node_row).collect()
    }

    /// One node.
    pub async fn get_node(&self, name: &str) -> anyhow::Result<Option<NodeRow>> {
        let row = sqlx::query("SELECT name, addr, labels, host_key, source FROM nodes WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_row).transpose()
    }

    /// Removes a node; false if there was none.
    pub async fn remove_node(&self, name: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM nodes WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pins a node's host key if none is pinned yet; false if one already was.
    pub async fn pin_host_key(&self, name: &str, key: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE nodes SET host_key = $1 WHERE name = $2 AND host_key IS NULL")
            .bind(key)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a node's labels; false if there was no such node.
    pub async fn set_node_labels(&self, name: &str, labels: &BTreeMap<String, String>) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE nodes SET labels = $1 WHERE name = $2")
            .bind(serde_json::to_string(labels)?)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a node's pinned host key so the next contact pins anew; false if no such node.
    pub async fn unpin_host_key(&self, name: &str) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE nodes SET host_key = NULL WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Indexes one audit event (its full line is kept too).
    pub async fn index_audit(&self, entry: &AuditIndexEntry<'_>) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO audit (seq, time, type, user_name, src_ip, node, session_id, line) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(entry.seq as i64)
        .bind(entry.time)
        .bind(entry.kind)
        .bind(entry.user)
        .bind(entry.src_ip)
        .bind(entry.node)
        .bind(entry.session_id)
        .bind(entry.line)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The highest indexed audit seq (0 for none).
    pub async fn last_audit_seq(&self) -> anyhow::Result<u64> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit").fetch_one(&self.pool).await?;
        Ok(row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0) as u64)
    }

    /// Audit lines matching the filters, oldest first, at most `limit`.
    pub async fn query_audit(&self, filter: &AuditFilter, limit: i64) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT line FROM (SELECT seq, line FROM audit \
             WHERE ($1 IS NULL OR time >= $1) AND ($2 IS NULL OR type = $2 OR type LIKE $2 || '.%') \
             AND ($3 IS NULL OR user_name = $3) ORDER BY seq DESC LIMIT $4) AS recent ORDER BY seq",
        )
        .bind(&filter.since)
        .bind(&filter.kind)
        .bind(&filter.user)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("line")?)).collect()
    }
}

/// One page of the audit log, newest first, and where the next one starts.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Exact type, or a prefix like `user` (matching `user.*`).
    pub kind: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Node.
    pub node: Option<String>,
    /// Session id.
    pub session: Option<String>,
    /// Lower bound, as the log writes times (RFC 3339, microseconds).
    pub since: Option<String>,
    /// Upper bound, likewise.
    pub until: Option<String>,
    /// Only events before this sequence number (the previous page's last).
    pub before: Option<i64>,
}

impl Store {
    /// Up to `limit` events matching `query`, newest first, as `(seq, line)`.
    pub async fn page_audit(&self, query: &AuditQuery, limit: i64) -> anyhow::Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, line FROM audit \
             WHERE ($1 IS NULL OR type = $1 OR type LIKE $1 || '.%') AND ($2 IS NULL OR user_name = $2) \
             AND ($3 IS NULL OR node = $3) AND ($4 IS NULL OR session_id = $4) \
             AND ($5 IS NULL OR time >= $5) AND ($6 IS NULL OR time <= $6) AND ($7 IS NULL OR seq < $7) \
             ORDER BY seq DESC LIMIT $8",
        )
        .bind(&query.kind)
        .bind(&query.user)
        .bind(&query.node)
        .bind(&query.session)
        .bind(&query.since)
        .bind(&query.until)
        .bind(query.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("seq")?, r.try_get("line")?))).collect()
    }
}

/// The indexed columns of one audit event.
pub struct AuditIndexEntry<'a> {
    /// Sequence number.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: &'a str,
    /// Event type.
    pub kind: &'a str,
    /// Acting or affected user.
    pub user: Option<&'a str>,
    /// Client address.
    pub src_ip: Option<&'a str>,
    /// Node.
    pub node: Option<&'a str>,
    /// Session.
    pub session_id: Option<&'a str>,
    /// The full JSON line.
    pub line: &'a str,
}

/// Filters of `audit ls`.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditFilter {
    /// RFC 3339 lower bound.
    pub since: Option<String>,
    /// Type, or a prefix like `user`.
    pub kind: Option<String>,
    /// User.
    pub user: Option<String>,
}
