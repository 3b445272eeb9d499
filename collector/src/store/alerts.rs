//! The alert tables in SQLite: read a snapshot for the engine, write one
//! evaluation (states, transitions, outbox rows) in one transaction, and the
//! outbox, silence and acknowledgement queries the worker and the API use.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use vitalsign_core::metric::{Metric, Source};
use vitalsign_core::wire::run::Outcome;

use super::{StoreError, WriteOutcome};
use crate::alerts::detector::HOUR_MS;
use crate::alerts::email::OutboxMessage;
use crate::alerts::engine::{Evaluation, RunRecord, Snapshot, alert_id};
use crate::alerts::rules::SeriesKey;
use crate::alerts::silences::{Matchers, Silence};
use crate::alerts::state::AlertRecord;
use crate::alerts::windows::HourHist;
use crate::config::AlertsConfig;

/// The evaluator lease's only term on SQLite. The lease exists so that of
/// several collectors sharing one database exactly one evaluates alerts; a
/// SQLite database is opened by one collector process (its single writer
/// thread owns the file), so that process always holds the lease and never
/// loses it: one term for its whole life.
pub const SQLITE_LEASE_TERM: i64 = 1;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} is unreadable: {e}"))
}

pub fn load_states(conn: &Connection) -> Result<BTreeMap<String, AlertRecord>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT key, record, acked_ms FROM alert_states")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let mut states = BTreeMap::new();
    for row in rows {
        let (key, json, acked) = row?;
        let mut record: AlertRecord =
            serde_json::from_str(&json).map_err(|e| corrupt("alert state", e))?;
        record.acked_ms = acked;
        states.insert(key, record);
    }
    Ok(states)
}

/// Hours of rollups the regression and budget rules may read at `now_ms`.
pub fn series_hours(
    cfg: &AlertsConfig,
    states: &BTreeMap<String, AlertRecord>,
    now_ms: i64,
) -> (i64, i64) {
    let end = now_ms.div_euclid(HOUR_MS);
    let mut from = end
        - i64::from(cfg.regression.max_window_hours)
        - i64::from(cfg.regression.baseline_hours)
        - 1;
    // A baseline frozen while firing may lie further back.
    for r in states.values() {
        if let Some(frozen) = r.frozen_end {
            from = from.min(frozen - i64::from(cfg.regression.baseline_hours));
        }
    }
    (from.max(end - 24 * 400), end)
}

/// Load what the rules read: rollups of `[from_hour, end_hour)` when
/// `with_series`, probe runs started after `runs_since_ms`, and the
/// freshness (last arrival, recent starts) of every flow × location.
pub fn load_snapshot(
    conn: &Connection,
    hours: Option<(i64, i64)>,
    runs_since_ms: i64,
) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot::default();
    if let Some((from, to)) = hours {
        let mut stmt = conn.prepare_cached(
            "SELECT metric, site, page_group, device, source, flow, step, location, hour, histogram
             FROM rollups WHERE hour >= ?1 AND hour < ?2",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        // Rows of one series come together (primary-key order): build its key
        // and map once per series, not once per hour.
        let mut current: Option<(SeriesKey, BTreeMap<i64, HourHist>)> = None;
        while let Some(row) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<&str> {
                row.get_ref(i)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            };
            let same = current.as_ref().is_some_and(|(k, _)| {
                k.metric.as_str() == text(0).unwrap_or("")
                    && k.site == text(1).unwrap_or("")
                    && k.page_group == text(2).unwrap_or("")
                    && k.device == text(3).unwrap_or("")
                    && k.source.as_str() == text(4).unwrap_or("")
                    && k.flow == text(5).unwrap_or("")
                    && k.step == text(6).unwrap_or("")
                    && k.location == text(7).unwrap_or("")
            });
            if !same {
                let (Some(metric), Some(source)) =
                    (Metric::parse(text(0)?), Source::parse(text(4)?))
                else {
                    continue;
                };
                if let Some((key, hours)) = current.take() {
                    snapshot.series.entry(key).or_default().extend(hours);
                }
                let key = SeriesKey {
                    metric,
                    site: text(1)?.to_string(),
                    page_group: text(2)?.to_string(),
                    device: text(3)?.to_string(),
                    source,
                    flow: text(5)?.to_string(),
                    step: text(6)?.to_string(),
                    location: text(7)?.to_string(),
                };
                current = Some((key, BTreeMap::new()));
            }
            let hour: i64 = row.get(8)?;
            let hist = HourHist::decode(row.get_ref(9)?.as_blob().unwrap_or(&[]));
            if hist.count > 0
                && let Some((_, hours)) = current.as_mut()
            {
                hours.insert(hour, hist);
            }
        }
        if let Some((key, hours)) = current.take() {
            snapshot.series.entry(key).or_default().extend(hours);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT flow, location, started_at_ms, run_id, outcome, json_extract(document, '$.failure.reason')
         FROM runs WHERE started_at_ms > ?1 ORDER BY started_at_ms, run_id",
    )?;
    let mut rows = stmt.query([runs_since_ms])?;
    while let Some(row) = rows.next()? {
        let outcome = match row.get::<_, String>(4)?.as_str() {
            "pass" => Outcome::Pass,
            "fail" => Outcome::Fail,
            "error" => Outcome::Error,
            _ => Outcome::Skipped,
        };
        snapshot
            .runs
            .entry((row.get(0)?, row.get(1)?))
            .or_default()
            .push(RunRecord {
                started_ms: row.get(2)?,
                run_id: row.get(3)?,
                outcome,
                reason: row.get(5)?,
            });
    }
    snapshot.freshness = crate::store::flows::freshness(conn)?;
    Ok(snapshot)
}

/// Write an evaluation: every changed state, every transition and every email
/// in the caller's transaction (the writer's savepoint), so a crash leaves
/// either all of it or none — never a state change without its email.
pub fn apply(
    conn: &Connection,
    eval: &Evaluation,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO alert_states (key, id, rule, kind, site, state, since_ms, record, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(key) DO UPDATE SET rule = excluded.rule, state = excluded.state,
             since_ms = excluded.since_ms, record = excluded.record, updated_ms = excluded.updated_ms,
             acked_ms = CASE WHEN excluded.state = 'firing' THEN acked_ms END,
             acked_by = CASE WHEN excluded.state = 'firing' THEN acked_by END",
    )?;
    for r in &eval.records {
        let json = serde_json::to_string(r).expect("a record always serialises");
        upsert.execute(params![
            r.key,
            alert_id(&r.key),
            r.rule,
            r.kind.as_str(),
            r.site,
            r.state.as_str(),
            r.since_ms,
            json,
            now_ms
        ])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO alert_transitions (alert_key, rule, at_ms, from_state, to_state, numbers)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for t in &eval.transitions {
        insert.execute(params![
            t.key,
            t.rule,
            t.at_ms,
            t.from.as_str(),
            t.to.as_str(),
            serde_json::to_string(&t.numbers).expect("numbers serialise")
        ])?;
    }
    let mut queue = conn.prepare_cached(
        "INSERT INTO outbox (message_id, kind, created_ms, route, message, status, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?3)",
    )?;
    for m in &eval.outbox {
        queue.execute(params![
            m.message_id,
            serde_json::to_value(m.kind)
                .expect("kind serialises")
                .as_str(),
            m.created_ms,
            m.route,
            serde_json::to_string(m).expect("message serialises")
        ])?;
    }
    Ok(WriteOutcome::Stored)
}

/// An outbox row as the worker and the API see it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub seq: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub done_ms: Option<i64>,
    pub message: OutboxMessage,
}

pub(crate) fn outbox_rows(
    conn: &Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(seq, status, attempts, next_attempt_ms, last_error, done_ms, json)| {
                Ok(OutboxRow {
                    seq,
                    status,
                    attempts,
                    next_attempt_ms,
                    last_error,
                    done_ms,
                    message: serde_json::from_str(&json)
                        .map_err(|e| corrupt("outbox message", e))?,
                })
            },
        )
        .collect()
}

pub(crate) const OUTBOX_COLUMNS: &str =
    "seq, status, attempts, next_attempt_ms, last_error, done_ms, message";

/// Pending messages in queue order, up to the first that is not due yet:
/// strict order keeps a resolved email from overtaking its firing one while
/// that one waits out a backoff.
pub fn due(conn: &Connection, now_ms: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    let mut rows = outbox_rows(
        conn,
        &format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT ?1"
        ),
        &[&limit],
    )?;
    let due = rows
        .iter()
        .position(|r| r.next_attempt_ms > now_ms)
        .unwrap_or(rows.len());
    rows.truncate(due);
    Ok(rows)
}

/// Dead letters (5xx or unbuildable), newest first.
pub fn dead_letters(conn: &Connection, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    outbox_rows(
        conn,
        &format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY seq DESC LIMIT ?1"
        ),
        &[&limit],
    )
}

/// Every outbox row, oldest first (tests and operators).
pub fn outbox_all(conn: &Connection) -> Result<Vec<OutboxRow>, StoreError> {
    outbox_rows(
        conn,
        &format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY seq"),
        &[],
    )
}

/// What a delivery attempt came to.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent,
    Retry { next_attempt_ms: i64, error: String },
    Dead { error: String },
}

pub fn record_delivery(
    conn: &Connection,
    seq: i64,
    outcome: &Delivery,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    match outcome {
        Delivery::Sent => conn.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, done_ms = ?2, last_error = NULL WHERE seq = ?1",
            params![seq, now_ms],
        )?,
        Delivery::Retry { next_attempt_ms, error } => conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE seq = ?1",
            params![seq, next_attempt_ms, error],
        )?,
        Delivery::Dead { error } => conn.execute(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, done_ms = ?2, last_error = ?3 WHERE seq = ?1",
            params![seq, now_ms, error],
        )?,
    };
    Ok(WriteOutcome::Stored)
}

/// Numbers for `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboxStats {
    pub pending: i64,
    pub oldest_pending_ms: Option<i64>,
    pub dead: i64,
    pub sent: i64,
}

pub fn outbox_stats(conn: &Connection) -> Result<OutboxStats, StoreError> {
    Ok(conn.query_row(
        "SELECT
            coalesce(sum(status = 'pending'), 0),
            min(CASE WHEN status = 'pending' THEN created_ms END),
            coalesce(sum(status = 'dead'), 0),
            coalesce(sum(status = 'sent'), 0)
         FROM outbox",
        [],
        |r| {
            Ok(OutboxStats {
                pending: r.get(0)?,
                oldest_pending_ms: r.get(1)?,
                dead: r.get(2)?,
                sent: r.get(3)?,
            })
        },
    )?)
}

/// An alert state as stored, with the API-owned acknowledgement.
#[derive(Debug, Clone)]
pub struct StoredState {
    pub id: String,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub record: AlertRecord,
}

pub fn states(conn: &Connection, state: Option<&str>) -> Result<Vec<StoredState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, acked_ms, acked_by, record FROM alert_states
         WHERE ?1 IS NULL OR state = ?1 ORDER BY site, rule, key",
    )?;
    let rows = stmt
        .query_map([state], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, acked, by, json)| {
            let mut record: AlertRecord =
                serde_json::from_str(&json).map_err(|e| corrupt("alert state", e))?;
            record.acked_ms = acked;
            Ok(StoredState {
                id,
                acked_ms: acked,
                acked_by: by,
                record,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionView {
    pub seq: i64,
    pub alert_id: String,
    pub rule: String,
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    pub numbers: serde_json::Value,
}

pub fn transitions(
    conn: &Connection,
    alert: Option<&str>,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<TransitionView>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.seq, s.id, t.rule, t.at_ms, t.from_state, t.to_state, t.numbers
         FROM alert_transitions t JOIN alert_states s ON s.key = t.alert_key
         WHERE (?1 IS NULL OR s.id = ?1) AND t.at_ms >= ?2
         ORDER BY t.seq DESC LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![alert, since_ms, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(seq, alert_id, rule, at_ms, from, to, numbers)| {
            Ok(TransitionView {
                seq,
                alert_id,
                rule,
                at_ms,
                from,
                to,
                numbers: serde_json::from_str(&numbers).map_err(|e| corrupt("transition", e))?,
            })
        })
        .collect()
}

/// Acknowledge a firing alert by id; stops reminders until it resolves.
pub fn acknowledge(
    conn: &Connection,
    id: &str,
    by: &str,
    now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    let state: Option<String> = conn
        .query_row("SELECT state FROM alert_states WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match state.as_deref() {
        None => Err(StoreError::NotFound(format!("no alert with id {id:?}"))),
        Some("firing") => {
            conn.execute(
                "UPDATE alert_states SET acked_ms = ?2, acked_by = ?3 WHERE id = ?1",
                params![id, now_ms, by],
            )?;
            Ok(WriteOutcome::Stored)
        }
        Some(other) => Err(StoreError::Conflict(format!(
            "alert {id} is {other}; only a firing alert can be acknowledged"
        ))),
    }
}

pub fn insert_silence(conn: &Connection, s: &Silence) -> Result<WriteOutcome, StoreError> {
    conn.execute(
        "INSERT INTO silences (id, created_ms, starts_ms, ends_ms, matchers, comment, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.id,
            s.created_ms,
            s.starts_ms,
            s.ends_ms,
            serde_json::to_string(&s.matchers).expect("matchers serialise"),
            s.comment,
            s.created_by
        ],
    )?;
    Ok(WriteOutcome::Stored)
}

pub fn delete_silence(conn: &Connection, id: &str) -> Result<WriteOutcome, StoreError> {
    if conn.execute("DELETE FROM silences WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound(format!("no silence with id {id:?}")));
    }
    Ok(WriteOutcome::Stored)
}

/// Silences that have not ended by `now_ms` (the engine needs the active ones; the API lists upcoming too).
pub fn silences(conn: &Connection, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_ms, starts_ms, ends_ms, matchers, comment, created_by
         FROM silences WHERE ends_ms > ?1 ORDER BY starts_ms, id",
    )?;
    let rows = stmt
        .query_map([now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(id, created_ms, starts_ms, ends_ms, matchers, comment, created_by)| {
                let matchers: Matchers =
                    serde_json::from_str(&matchers).map_err(|e| corrupt("silence", e))?;
                Ok(Silence {
                    id,
                    created_ms,
                    starts_ms,
                    ends_ms,
                    matchers,
                    comment,
                    created_by,
                })
            },
        )
        .collect()
}

/// Forget delivered emails and expired silences older than `before_ms` (the
/// retention window). Dead letters, states and transitions stay: they are
/// few, and they are the history an operator asks about.
pub fn prune(conn: &Connection, before_ms: i64) -> Result<WriteOutcome, StoreError> {
    conn.execute(
        "DELETE FROM outbox WHERE status = 'sent' AND done_ms < ?1",
        [before_ms],
    )?;
    conn.execute("DELETE FROM silences WHERE ends_ms < ?1", [before_ms])?;
    Ok(WriteOutcome::Stored)
}
