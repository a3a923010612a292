//! The audit log, filtered and paged, and the state of its hash chain.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::MaybeCaller;
use super::super::error::ApiError;
use crate::gateway::Gateway;
use crate::policy::Permission;
use crate::store::AuditQuery;

/// The filters of `GET /api/audit`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    r#type: Option<String>,
    user: Option<String>,
    node: Option<String>,
    session: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/audit` (`audit.read`): events newest first, a page at a time.
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::AuditRead)?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = super::limit(params.limit)?;
    let before = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| ApiError::BadRequest("bad cursor".into()))?),
    };
    let query = AuditQuery {
        kind: nonempty(params.r#type),
        user: nonempty(params.user),
        node: nonempty(params.node),
        session: nonempty(params.session),
        since: time(params.since, "since")?,
        until: time(params.until, "until")?,
        before,
    };
    let page = gateway.store.page_audit(&query, limit).await?;
    let next_cursor = (page.len() as i64 == limit).then(|| page.last().map(|(seq, _)| seq.to_string())).flatten();
    let events = page
        .iter()
        .map(|(_, line)| serde_json::from_str(line))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(anyhow::Error::from)?;
    Ok(Json(json!({ "events": events, "next_cursor": next_cursor })))
}

/// `GET /api/audit/verify` (`audit.read`): the chain checked end to end.
pub async fn verify(State(gateway): State<Arc<Gateway>>, maybe: MaybeCaller) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::AuditRead)?;
    let report = gateway.audit.check_chain().await?;
    Ok(Json(json!({
        "ok": report.broken_at.is_none(),
        "events": report.events,
        "verified_up_to": report.verified_up_to,
        "broken_at": report.broken_at,
        "error": report.error,
    })))
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A time from the query, in the log's own format (so text order is time order).
fn time(value: Option<String>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(text) = nonempty(value) else { return Ok(None) };
    let at: SystemTime = humantime::parse_rfc3339_weak(&text)
        .map_err(|_| ApiError::BadRequest(format!("{name}: {text:?} is not an RFC 3339 time")))?;
    Ok(Some(humantime::format_rfc3339_micros(at).to_string()))
}
