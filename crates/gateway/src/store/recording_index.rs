//! The index of recordings for the admin console: keyset pages of the recordings table,
//! each recording's keyframes and text lines, and how far indexing got.
//!
//! Keyframes live in a table, not in sidecar files next to the `.cast`: a recording's
//! keyframes, text lines and progress are written in one transaction, so a crash
//! mid-way leaves either all of a batch or none of it, and indexing resumes from the
//! stored offset; the recordings dir may be a separate mount where the gateway keeps
//! nothing but recordings; and nothing needs tidying up beside the files.
//!
//! The text index is an SQLite FTS5 table (`recording_text`); a PostgreSQL backend
//! would need its own full-text table here.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::Store;
use super::recordings::{COLUMNS, recording_row};
use crate::store::{RecordingRow, now};

/// Filters and position of one page of `GET /api/recordings`.
#[derive(Debug, Default, Clone)]
pub struct RecordingQuery {
    /// User.
    pub user: Option<String>,
    /// Node.
    pub node: Option<String>,
    /// Started at or after, Unix seconds.
    pub since: Option<i64>,
    /// Started before, Unix seconds.
    pub until: Option<i64>,
    /// Complete (true) or not (false: cut off or still running).
    pub complete: Option<bool>,
    /// Only recordings before this `(started_at, id)`, in newest-first order.
    pub after: Option<(i64, String)>,
    /// Page size.
    pub limit: i64,
}

/// How far a recording has been indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexState {
    /// Bytes of the `.cast` read, whole lines only.
    pub offset: u64,
    /// Text bytes indexed so far.
    pub text_bytes: u64,
    /// Output after the last newline, not yet indexed.
    pub pending: String,
    /// When the pending line began, seconds into the recording.
    pub pending_t: f64,
    /// The recording had ended and all of it was read.
    pub done: bool,
}

/// A screen snapshot for seeking.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyframe {
    /// Seconds into the recording.
    pub t: f64,
    /// Byte offset in the `.cast` of the first event after the snapshot.
    pub offset: u64,
    /// Columns at that moment.
    pub cols: u16,
    /// Rows at that moment.
    pub rows: u16,
    /// Terminal output that redraws the screen on a reset terminal.
    pub screen: Vec<u8>,
}

/// One line of recorded text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    /// Seconds into the recording at which the line began.
    pub t: f64,
    /// The line, escapes stripped.
    pub line: String,
}

/// What one indexing step of one recording adds.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBatch {
    /// The recording.
    pub recording_id: String,
    /// Lines to add.
    pub lines: Vec<TextLine>,
    /// Keyframes to add.
    pub keyframes: Vec<Keyframe>,
    /// The state after this step.
    pub state: IndexState,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    /// Position in the text index; newer lines have larger ones.
    pub hit: i64,
    /// The recording.
    pub recording_id: String,
    /// Its user.
    pub user: String,
    /// Its node.
    pub node: String,
    /// Its start, Unix seconds.
    pub started_at: i64,
    /// Seconds into the recording.
    pub t: f64,
    /// The line.
    pub line: String,
}

/// Rows per multi-row `INSERT` (3 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 200;

impl Store {
    /// One page of recordings, newest first (by start, then id), after the cursor.
    pub async fn page_recordings(&self, query: &RecordingQuery) -> anyhow::Result<Vec<RecordingRow>> {
        // Only the conditions in use, so SQLite can pick the (user|node, started_at, id) index.
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM recordings WHERE 1 = 1"));
        if let Some(user) = &query.user {
            sql.push(" AND user_name = ").push_bind(user.clone());
        }
        if let Some(node) = &query.node {
            sql.push(" AND node = ").push_bind(node.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND started_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            sql.push(" AND started_at < ").push_bind(until);
        }
        if let Some(complete) = query.complete {
            sql.push(" AND complete = ").push_bind(i64::from(complete));
        }
        if let Some((started_at, id)) = &query.after {
            sql.push(" AND (started_at, id) < (").push_bind(*started_at).push(", ").push_bind(id.clone()).push(")");
        }
        sql.push(" ORDER BY started_at DESC, id DESC LIMIT ").push_bind(query.limit.max(0));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(recording_row).collect()
    }

    /// Recordings whose index is not finished, oldest first, from `(started_at, id)` on
    /// (that one included if `inclusive`).
    pub async fn recordings_to_index(
        &self,
        from: Option<&(i64, String)>,
        inclusive: bool,
        limit: i64,
    ) -> anyhow::Result<Vec<(RecordingRow, Option<IndexState>)>> {
        let (at, id) = from.map_or((i64::MIN, String::new()), |(at, id)| (*at, id.clone()));
        let compare = if inclusive { ">=" } else { ">" };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, i.cast_offset, i.text_bytes, i.pending, i.pending_t, i.done \
             FROM recordings LEFT JOIN recording_index i ON i.recording_id = recordings.id \
             WHERE (started_at, id) {compare} ($1, $2) AND (i.done IS NULL OR i.done = 0) \
             ORDER BY started_at, id LIMIT $3"
        ));
        let rows = sqlx::query(sql).bind(at).bind(id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((recording_row(row)?, index_state(row)?))).collect()
    }

    /// Stores indexing steps, each all or nothing, all in one transaction.
    pub async fn store_index_batches(&self, batches: &[IndexBatch]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for batch in batches {
            for chunk in batch.lines.chunks(INSERT_CHUNK) {
                let mut sql: QueryBuilder<Sqlite> =
                    QueryBuilder::new("INSERT INTO recording_text (line, recording_id, t) ");
                sql.push_values(chunk, |mut row, line| {
                    row.push_bind(line.line.clone()).push_bind(batch.recording_id.clone()).push_bind(line.t);
                });
                sql.build().execute(&mut *tx).await?;
            }
            for frame in &batch.keyframes {
                sqlx::query(
                    "INSERT OR REPLACE INTO recording_keyframes (recording_id, t, cast_offset, cols, rows, screen) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&batch.recording_id)
                .bind(frame.t)
                .bind(frame.offset as i64)
                .bind(i64::from(frame.cols))
                .bind(i64::from(frame.rows))
                .bind(&frame.screen)
                .execute(&mut *tx)
                .await?;
            }
            let state = &batch.state;
            sqlx::query(
                "INSERT OR REPLACE INTO recording_index \
                 (recording_id, cast_offset, text_bytes, pending, pending_t, done, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&batch.recording_id)
            .bind(state.offset as i64)
            .bind(state.text_bytes as i64)
            .bind(&state.pending)
            .bind(state.pending_t)
            .bind(i64::from(state.done))
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The times of a recording's keyframes, in order.
    pub async fn keyframe_times(&self, recording_id: &str) -> anyhow::Result<Vec<f64>> {
        let rows = sqlx::query("SELECT t FROM recording_keyframes WHERE recording_id = $1 ORDER BY cast_offset")
            .bind(recording_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("t")?)).collect()
    }

    /// The last keyframe at or before `t` seconds (`None`: the last one of all).
    pub async fn keyframe_before(&self, recording_id: &str, t: Option<f64>) -> anyhow::Result<Option<Keyframe>> {
        let row = sqlx::query(
            "SELECT t, cast_offset, cols, rows, screen FROM recording_keyframes \
             WHERE recording_id = $1 AND ($2 IS NULL OR t <= $2) ORDER BY cast_offset DESC LIMIT 1",
        )
        .bind(recording_id)
        .bind(t)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> anyhow::Result<Keyframe> {
            Ok(Keyframe {
                t: row.try_get("t")?,
                offset: row.try_get::<i64, _>("cast_offset")?.max(0) as u64,
                cols: u16::try_from(row.try_get::<i64, _>("cols")?)?,
                rows: u16::try_from(row.try_get::<i64, _>("rows")?)?,
                screen: row.try_get("screen")?,
            })
        })
        .transpose()
    }

    /// Lines matching an FTS5 query (see `recording::index::fts_query`), newest first,
    /// before the hit `before`.
    pub async fn search_text(&self, fts: &str, before: Option<i64>, limit: i64) -> anyhow::Result<Vec<TextHit>> {
        let rows = sqlx::query(
            "SELECT x.rowid AS hit, x.recording_id, x.t, x.line, r.user_name, r.node, r.started_at \
             FROM recording_text x JOIN recordings r ON r.id = x.recording_id \
             WHERE recording_text MATCH $1 AND x.rowid < $2 ORDER BY x.rowid DESC LIMIT $3",
        )
        .bind(fts)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TextHit {
                    hit: row.try_get("hit")?,
                    recording_id: row.try_get("recording_id")?,
                    user: row.try_get("user_name")?,
                    node: row.try_get("node")?,
                    started_at: row.try_get("started_at")?,
                    t: row.try_get("t")?,
                    line: row.try_get("line")?,
                })
            })
            .collect()
    }
}

fn index_state(row: &SqliteRow) -> anyhow::Result<Option<IndexState>> {
    let Some(offset) = row.try_get::<Option<i64>, _>("cast_offset")? else { return Ok(None) };
    Ok(Some(IndexState {
        offset: offset.max(0) as u64,
        text_bytes: row.try_get::<i64, _>("text_bytes")?.max(0) as u64,
        pending: row.try_get("pending")?,
        pending_t: row.try_get("pending_t")?,
        done: row.try_get::<i64, _>("done")? != 0,
    }))
}
