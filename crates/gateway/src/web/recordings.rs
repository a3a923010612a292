//! `/api/recordings...` (`recordings.read`): the admin console's recordings — keyset
//! pages, search of the recorded text, one recording's details, its `.cast` file, and
//! windows of events from a keyframe for seeking. To anyone without the permission, and
//! for unknown ids, every path answers the common 404. Ids from requests are only ever
//! looked up in the store; files are opened by the stored path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Json, http::StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::admin::{DEFAULT_LIMIT, MAX_LIMIT};
use super::auth::{Caller, MaybeCaller};
use super::error::ApiError;
use crate::audit::Event;
use crate::gateway::Gateway;
use crate::policy::Permission;
use crate::recording::index::{clamp_size, fts_query, read_header, read_window};
use crate::store::{RecordingQuery, RecordingRow, rfc3339};

/// Event bytes per frames answer; past it, `end` is false and the client continues.
const FRAMES_MAX_BYTES: u64 = 1 << 20;
/// Seconds of events a frames answer covers when `until` is not given.
const DEFAULT_WINDOW_SECS: f64 = 30.0;
/// Longest search text.
const MAX_QUERY: usize = 1000;

/// Query of `GET /api/recordings` (all text: an empty value means absent).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    user: Option<String>,
    node: Option<String>,
    since: Option<String>,
    until: Option<String>,
    complete: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// Query of `GET /api/recordings/search`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// Query of `GET /api/recordings/{id}/frames`.
#[derive(Debug, Default, Deserialize)]
pub struct FramesParams {
    from: Option<String>,
    until: Option<String>,
    events_only: Option<String>,
}

/// `GET /api/recordings`: newest first, filtered, in keyset pages.
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::RecordingsRead)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page_limit(p.limit)?;
    let complete = match given(p.complete).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::BadRequest("complete must be true or false".into())),
    };
    let query = RecordingQuery {
        user: given(p.user),
        node: given(p.node),
        since: given(p.since).map(|t| parse_time("since", &t)).transpose()?,
        until: given(p.until).map(|t| parse_time("until", &t)).transpose()?,
        complete,
        after: given(p.cursor).map(|c| list_cursor(&c)).transpose()?,
        limit: limit + 1,
    };
    let mut rows = gateway.store.page_recordings(&query).await?;
    let next = more(&mut rows, limit).map(|r| URL_SAFE_NO_PAD.encode(format!("{}:{}", r.started_at, r.id)));
    let rows: Vec<Value> = rows.iter().map(|r| summary(&gateway, r)).collect();
    Ok(Json(json!({ "recordings": rows, "next_cursor": next })))
}

/// `GET /api/recordings/search`: indexed lines containing every word of `q`, newest first.
pub async fn search(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::RecordingsRead)?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page_limit(p.limit)?;
    let q = given(p.q).ok_or_else(|| ApiError::BadRequest("q is required".into()))?;
    if q.len() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!("q is longer than {MAX_QUERY} bytes")));
    }
    let fts = fts_query(&q).ok_or_else(|| ApiError::BadRequest("q has no word to search for".into()))?;
    let before = given(p.cursor).map(|c| search_cursor(&c)).transpose()?;
    let mut hits = gateway.store.search_text(&fts, before, limit + 1).await?;
    let next = more(&mut hits, limit).map(|h| URL_SAFE_NO_PAD.encode(h.hit.to_string()));
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            json!({
                "recording_id": h.recording_id, "user": h.user, "node": h.node,
                "start": rfc3339(Some(h.started_at)), "t": h.t, "line": h.line,
            })
        })
        .collect();
    Ok(Json(json!({ "hits": hits, "next_cursor": next })))
}

/// `GET /api/recordings/{id}`: the list's fields, the terminal size and the keyframe times.
pub async fn show(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    maybe.holding(Permission::RecordingsRead)?;
    let row = recording(&gateway, id).await?;
    let path = PathBuf::from(&row.path);
    let header = tokio::task::spawn_blocking(move || read_header(&path)).await.map_err(anyhow::Error::from)?;
    let keyframes = gateway.store.keyframe_times(&row.id).await?;
    let mut answer = summary(&gateway, &row);
    let (width, height) = header.map_or((None, None), |(h, _)| (Some(h.width), Some(h.height)));
    answer["width"] = json!(width);
    answer["height"] = json!(height);
    answer["keyframes"] = json!(keyframes);
    Ok(Json(answer))
}

/// `GET /api/recordings/{id}/cast`: the file as an attachment, streamed.
pub async fn cast(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let caller = maybe.holding(Permission::RecordingsRead)?;
    let row = recording(&gateway, id).await?;
    let file = tokio::fs::File::open(&row.path)
        .await
        .map_err(|e| anyhow::anyhow!("recording {} is unreadable: {e}", row.id))?;
    // What is there now; a running recording's later output is not part of this answer.
    let len = file.metadata().await.map_err(anyhow::Error::from)?.len();
    audit_read(&gateway, &caller, &row, "cast").await?;
    let stream = futures_util::stream::unfold(Some(file.take(len)), |file| async move {
        let mut file = file?;
        let mut buffer = vec![0u8; 64 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    let headers = [
        (header::CONTENT_TYPE, "application/x-asciicast".to_owned()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.cast\"", row.id)),
        (header::CONTENT_LENGTH, len.to_string()),
    ];
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

/// `GET /api/recordings/{id}/frames`: the screen at the last keyframe at or before `from`
/// and the events after it up to `until`, or with `events_only` the events after `from`.
pub async fn frames(
    State(gateway): State<Arc<Gateway>>,
    maybe: MaybeCaller,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<FramesParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = maybe.holding(Permission::RecordingsRead)?;
    let row = recording(&gateway, id).await?;
    let Query(p) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let from = given(p.from).map(|t| parse_secs("from", &t)).transpose()?.unwrap_or(0.0);
    let until = given(p.until).map(|t| parse_secs("until", &t)).transpose()?.unwrap_or(from + DEFAULT_WINDOW_SECS);
    if until < from {
        return Err(ApiError::BadRequest("until is before from".into()));
    }
    let events_only = match given(p.events_only).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::BadRequest("events_only must be true or false".into())),
    };
    let keyframe = gateway.store.keyframe_before(&row.id, Some(from)).await?;
    let screen = match (&keyframe, events_only) {
        (Some(k), false) => String::from_utf8_lossy(&k.screen).into_owned(),
        _ => String::new(),
    };
    let resume = keyframe.map(|k| (k.offset, (k.cols, k.rows), k.t));
    let (path, ended) = (PathBuf::from(&row.path), row.ended_at.is_some());
    // Taken before the file is read: what was surely written by then is in what is read.
    let written_by_read = written(&gateway, &row);
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (header, header_len) = read_header(&path)?;
        let (offset, size, start) = resume.unwrap_or((header_len, clamp_size(header.width, header.height), 0.0));
        let after = events_only.then_some(from);
        let window = read_window(&path, offset, size, after, until, FRAMES_MAX_BYTES)?;
        Ok((window, if events_only { from } else { start }))
    });
    let (mut window, start) = read.await.map_err(anyhow::Error::from)??;
    if !events_only {
        audit_read(&gateway, &caller, &row, "frames").await?;
    }
    let running = written_by_read.filter(|_| window.at_end);
    // Events past the mark wait for it: one not yet written may share their microsecond.
    if let Some(written) = running {
        window.events.retain(|e| e.time <= written);
    }
    let last = window.events.last().map(|e| e.time);
    let through = complete_through(last, start, until, running);
    let events: Vec<Value> = window.events.iter().map(|e| json!([e.time, e.kind.code(), e.data])).collect();
    Ok(Json(json!({
        "start": start, "cols": window.cols, "rows": window.rows, "screen": screen,
        "events": events, "end": window.at_end && ended, "through": through,
    })))
}

/// The recording an `{id}` names, or the common 404.
async fn recording(gateway: &Gateway, id: Result<Path<String>, PathRejection>) -> Result<RecordingRow, ApiError> {
    let Ok(Path(id)) = id else { return Err(ApiError::NotFound) };
    if !is_id(&id) {
        return Err(ApiError::NotFound);
    }
    gateway.store.get_recording(&id).await?.ok_or(ApiError::NotFound)
}

async fn audit_read(gateway: &Gateway, caller: &Caller, row: &RecordingRow, what: &str) -> Result<(), ApiError> {
    let event = Event::new("recording.read")
        .user(Some(&row.user))
        .node(Some(&row.node))
        .session(&row.session_id)
        .field("recording", row.id.as_str())
        .field("read", what)
        .field("actor", caller.user.name.as_str());
    gateway.audit.log(event).await?;
    Ok(())
}

fn summary(gateway: &Gateway, r: &RecordingRow) -> Value {
    json!({
        "id": r.id, "session_id": r.session_id, "user": r.user, "node": r.node, "login": r.login,
        "client": r.client_addr, "command": r.command, "bytes": r.bytes, "complete": r.complete,
        "start": rfc3339(Some(r.started_at)), "end": r.ended_at.map(|e| rfc3339(Some(e))),
        "duration": duration(r),
        "written": written(gateway, r),
    })
}

/// Where an answer's events are complete up to, so the next request starts after it:
/// `last` is its last event's time, `start` where its events begin, and `running` how much
/// of a running recording is surely written, when its file ended inside the window.
fn complete_through(last: Option<f64>, start: f64, until: f64, running: Option<f64>) -> f64 {
    match running {
        // What the file holds, and whatever else is surely in it by now.
        Some(written) => last.unwrap_or(start).max(written.min(until)),
        // Stopped at the byte limit or at an event past `until`, or the recording ended.
        None => last.unwrap_or(until),
    }
}

/// Seconds of a running recording that are surely in its file: every event at or before
/// is there. Its writer tells the live session how far, in the recording's own clock:
/// up to the present while nothing seen is unwritten, else the last write out. None once
/// the recording ended; 0 when its session is gone but the row not yet ended.
fn written(gateway: &Gateway, r: &RecordingRow) -> Option<f64> {
    let live = || gateway.sessions.get(&r.session_id).and_then(|live| live.recorded());
    r.ended_at.is_none().then(|| at_or_before(live().unwrap_or_default()))
}

/// The last microsecond before `through`, in seconds: events are stamped in whole
/// microseconds, and those before `through` are at or before it.
fn at_or_before(through: Duration) -> f64 {
    through.as_micros().saturating_sub(1) as f64 / 1e6
}

/// Seconds, to the microsecond where the recording said; whole seconds from the row's
/// times for one cut off before it could.
fn duration(r: &RecordingRow) -> Option<f64> {
    let exact = r.duration_us.map(|us| us as f64 / 1e6);
    exact.or_else(|| r.ended_at.map(|e| (e - r.started_at).max(0) as f64))
}

/// Drops the look-ahead row; returns the last row kept if there is a next page.
fn more<T>(rows: &mut Vec<T>, limit: i64) -> Option<&T> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
    } else {
        None
    }
}

/// A parameter, unless absent or empty.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn page_limit(limit: Option<String>) -> Result<i64, ApiError> {
    match given(limit) {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n.min(MAX_LIMIT)),
            _ => Err(ApiError::BadRequest("limit must be a whole number from 1".into())),
        },
    }
}

/// Recording ids are hex.
fn is_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn bad_cursor() -> ApiError {
    ApiError::BadRequest("bad cursor".into())
}

/// `started_at:id` of the last recording of the previous page.
fn list_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?).map_err(|_| bad_cursor())?;
    let (at, id) = text.split_once(':').ok_or_else(bad_cursor)?;
    let at = at.parse::<i64>().map_err(|_| bad_cursor())?;
    if !is_id(id) {
        return Err(bad_cursor());
    }
    Ok((at, id.to_owned()))
}

/// The position of the last hit of the previous page.
fn search_cursor(cursor: &str) -> Result<i64, ApiError> {
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad_cursor())?).map_err(|_| bad_cursor())?;
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad_cursor)
}

/// Seconds into a recording.
fn parse_secs(name: &str, text: &str) -> Result<f64, ApiError> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(ApiError::BadRequest(format!("{name} must be seconds from the recording's start"))),
    }
}

/// An RFC 3339 time (`Z` or an offset), as Unix seconds rounded up: recordings start on
/// whole seconds, so `started_at >= since` and `started_at < until` stay exact.
pub fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::BadRequest(format!("{name} must be an RFC 3339 time"));
    let (local, offset) = split_offset(text).ok_or_else(bad)?;
    let at = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let since_epoch = at.duration_since(UNIX_EPOCH).map_err(|_| bad())?;
    let secs = since_epoch.as_secs() as i64 + i64::from(since_epoch.subsec_nanos() > 0);
    Ok(secs - offset)
}

/// The time without its zone, and the zone's offset from UTC in seconds.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    let (local, zone) = text.split_at_checked(text.len().checked_sub(6)?)?;
    let zone = zone.as_bytes();
    let sign = match zone[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Some((text, 0)),
    };
    if zone[3] != b':' || !local.contains(['T', 't', ' ']) {
        return None;
    }
    let digits = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i64>().ok();
    let (hours, minutes) = (digits(&zone[1..3])?, digits(&zone[4..6])?);
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_utc_and_offsets_and_round_up() {
        let at = |t: &str| parse_time("since", t).ok();
        assert_eq!(at("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(at("1970-01-01T00:01:00.25Z"), Some(61));
        assert_eq!(at("1970-01-01T02:01:00+02:00"), Some(60));
        assert_eq!(at("1970-01-01T00:00:00-01:30"), Some(5400));
        for bad in ["yesterday", "1970-01-01", "1970-01-01T00:00:00+0200", "", "1970-01-01T00:00:00+xx:00"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = URL_SAFE_NO_PAD.encode("1700000000:0123abcd");
        assert_eq!(list_cursor(&cursor).ok(), Some((1_700_000_000, "0123abcd".to_owned())));
        for bad in ["", "!!", &URL_SAFE_NO_PAD.encode("x:ab"), &URL_SAFE_NO_PAD.encode("1:../../etc"), "MTo"] {
            assert!(list_cursor(bad).is_err(), "{bad}");
        }
        assert_eq!(search_cursor(&URL_SAFE_NO_PAD.encode("42")).ok(), Some(42));
        assert!(search_cursor(&URL_SAFE_NO_PAD.encode("-1")).is_err());
        assert!(search_cursor("%%%").is_err());
    }

    #[test]
    fn a_running_recording_is_complete_only_as_far_as_written() {
        // Ended, or cut short: after the last event, or the whole window when it has none.
        assert_eq!(complete_through(Some(12.5), 10.0, 40.0, None), 12.5);
        assert_eq!(complete_through(None, 10.0, 40.0, None), 40.0);
        // Running, its file ended inside the window: as far as surely written, never less
        // than what arrived, never past the window.
        assert_eq!(complete_through(Some(12.5), 10.0, 40.0, Some(20.0)), 20.0);
        assert_eq!(complete_through(Some(12.5), 10.0, 40.0, Some(11.0)), 12.5);
        assert_eq!(complete_through(None, 10.0, 40.0, Some(3.0)), 10.0);
        assert_eq!(complete_through(None, 10.0, 40.0, Some(99.0)), 40.0);
    }

    #[test]
    fn written_is_the_last_microsecond_before_what_the_writer_completed() {
        assert_eq!(at_or_before(Duration::from_micros(2_500_000)), 2.499_999);
        assert_eq!(at_or_before(Duration::from_micros(1)), 0.0);
        assert_eq!(at_or_before(Duration::ZERO), 0.0, "never negative");
        // An event stamped at the writer's mark is not in the file yet: it lies after.
        let stamped_at_mark: f64 = "2.500000".parse().unwrap();
        assert!(stamped_at_mark > at_or_before(Duration::from_micros(2_500_000)));
    }

    #[test]
    fn limits_default_clamp_and_refuse_nonsense() {
        assert_eq!(page_limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(page_limit(Some(String::new())).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(page_limit(Some("9999".into())).ok(), Some(MAX_LIMIT));
        assert!(page_limit(Some("0".into())).is_err());
        assert!(page_limit(Some("ten".into())).is_err());
    }
}
