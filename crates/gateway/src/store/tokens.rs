//! Agent join tokens (stored as hashes) and agent identities on nodes.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use sqlx::Row;

use super::{NodeRow, Store, now};

/// A join token as listed (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    /// First 12 hex digits of the secret's hash: enough to name it.
    pub id: String,
    /// Labels a node joining with it gets.
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds, once used.
    pub used_at: Option<i64>,
}

impl Store {
    /// Stores a new token by the hash of its secret.
    pub async fn create_token(
        &self,
        hash: &str,
        labels: &BTreeMap<String, String>,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO join_tokens (token_hash, labels, expires_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(serde_json::to_string(labels)?)
            .bind(expires_at)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a live, unused token used and returns its labels; `None` for an unknown, used or expired one.
    pub async fn redeem_token(&self, hash: &str) -> anyhow::Result<Option<BTreeMap<String, String>>> {
        let done = sqlx::query(
            "UPDATE join_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now())
        .bind(hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT labels FROM join_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_one(&self.pool)
            .await?;
        let labels: String = row.try_get("labels")?;
        Ok(Some(serde_json::from_str(&labels).context("corrupt token labels")?))
    }

    /// Every token, newest first.
    pub async fn list_tokens(&self) -> anyhow::Result<Vec<TokenRow>> {
        let rows =
            sqlx::query("SELECT token_hash, labels, expires_at, used_at FROM join_tokens ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let hash: String = r.try_get("token_hash")?;
                let labels: String = r.try_get("labels")?;
                Ok(TokenRow {
                    id: hash.chars().take(12).collect(),
                    labels: serde_json::from_str(&labels)?,
                    expires_at: r.try_get("expires_at")?,
                    used_at: r.try_get("used_at")?,
                })
            })
            .collect()
    }

    /// Deletes the token whose hash starts with `id` (at least 8 hex digits); false if none.
    pub async fn revoke_token(&self, id: &str) -> anyhow::Result<bool> {
        if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("token id {id:?}: expected the hex id shown by `ctl tokens ls`");
        }
        let done = sqlx::query("DELETE FROM join_tokens WHERE substr(token_hash, 1, $1) = $2")
            .bind(id.len() as i64)
            .bind(id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() >= 1)
    }

    /// Adds the node an agent joined as, with its pinned host key and client certificate fingerprint.
    pub async fn add_agent_node(&self, node: &NodeRow, cert_fingerprint: &str) -> anyhow::Result<()> {
        let result = sqlx::query(
            "INSERT INTO nodes (name, addr, labels, host_key, source, created_at, agent_cert) VALUES ($1, NULL, $2, $3, 'agent', $4, $5)",
        )
        .bind(&node.name)
        .bind(serde_json::to_string(&node.labels)?)
        .bind(&node.host_key)
        .bind(now())
        .bind(cert_fingerprint)
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                anyhow::bail!("node name {:?} is taken", node.name)
            }
            other => other.map(|_| ()).context("cannot add the agent's node"),
        }
    }

    /// The agent node whose client certificate has this fingerprint.
    pub async fn node_by_agent_cert(&self, fingerprint: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(NODE_BY_AGENT_CERT).bind(fingerprint).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }
}

/// Every agent tunnel's lookup. The index is named: without statistics, a pool connection
/// sometimes planned a scan of the whole table (one in four in the test below), and a fleet
/// reconnecting after a restart would then scan it once per agent.
const NODE_BY_AGENT_CERT: &str =
    "SELECT name FROM nodes INDEXED BY nodes_agent_cert WHERE agent_cert = $1 AND source = 'agent'";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tunnel_finds_its_node_by_certificate_through_an_index_not_a_scan() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open("sqlite://t.db", tmp.path(), true).await.unwrap();
        // A fleet's worth of agent nodes: SQLite scans tables it estimates tiny anyway.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
             INSERT INTO nodes (name, labels, source, created_at, agent_cert)
             SELECT 'node-' || i, '', 'agent', 0, 'cert-' || i FROM n",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        // On every pool connection: they did not all plan alike.
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut conn = store.pool.acquire().await.unwrap();
            let explain = format!("EXPLAIN QUERY PLAN {NODE_BY_AGENT_CERT}");
            let plan = sqlx::query(sqlx::AssertSqlSafe(explain)).bind("cert-500").fetch_all(&mut *conn).await.unwrap();
            let steps: Vec<String> = plan.iter().map(|r| r.try_get("detail").unwrap()).collect();
            assert!(steps.iter().any(|s| s.contains("USING INDEX nodes_agent_cert")), "{steps:?}");
            held.push(conn);
        }
        drop(held);
        assert_eq!(store.node_by_agent_cert("cert-500").await.unwrap().as_deref(), Some("node-500"));
        assert_eq!(store.node_by_agent_cert("cert-1000").await.unwrap(), None);
    }
}
