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
        let row = sqlx::query("SELECT name FROM nodes WHERE agent_cert = $1 AND source = 'agent'")
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }
}
