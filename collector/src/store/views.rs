//! Reads the dashboard needs beyond the query API: the dimensions to offer
//! in filters, runs by page and by id, a step's recent medians, and a
//! metric's distribution from the stored rollups; alerts by state and by id,
//! the emails of one alert, and which artifacts of a run were uploaded.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::alerts::state::AlertRecord;
use crate::alerts::store::{OutboxRow, StoredState};

/// How many alerts are in each state (the alert list's group headings).
pub fn alert_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT state, count(*) FROM alert_states GROUP BY state")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn stored_state(
    id: String,
    acked_ms: Option<i64>,
    acked_by: Option<String>,
    json: &str,
) -> Result<StoredState, StoreError> {
    let mut record: AlertRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::Conflict(format!("stored alert state is unreadable: {e}")))?;
    record.acked_ms = acked_ms;
    Ok(StoredState {
        id,
        acked_ms,
        acked_by,
        record,
    })
}

/// One page of the alerts in one state, in the API's order (site, rule,
/// key): a collector with a regression rule on 10,000 page groups has tens
/// of thousands of `ok` alerts, and the list shows a page of them.
pub fn alerts_in_state(
    conn: &Connection,
    state: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<StoredState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, acked_ms, acked_by, record FROM alert_states WHERE state = ?1
         ORDER BY site, rule, key LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt
        .query_map(params![state, limit as i64, offset as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, acked, by, json)| stored_state(id, acked, by, &json))
        .collect()
}

/// One alert by its id.
pub fn alert(conn: &Connection, id: &str) -> Result<Option<StoredState>, StoreError> {
    let row: Option<(String, Option<i64>, Option<String>, String)> = conn
        .prepare_cached("SELECT id, acked_ms, acked_by, record FROM alert_states WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(id, acked, by, json)| stored_state(id, acked, by, &json))
        .transpose()
}

/// The emails (outbox rows, any status) that name this alert, oldest first.
pub fn outbox_for_alert(
    conn: &Connection,
    alert_id: &str,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, status, attempts, next_attempt_ms, last_error, done_ms, message FROM outbox
         WHERE EXISTS (SELECT 1 FROM json_each(message, '$.alerts') WHERE value = ?1)
         ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![alert_id, limit as i64], |r| {
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
                    message: serde_json::from_str(&json).map_err(|e| {
                        StoreError::Conflict(format!("stored outbox message is unreadable: {e}"))
                    })?,
                })
            },
        )
        .collect()
}

/// The artifacts of a run that were uploaded: (name, content type, bytes),
/// so a run's page links only what it can serve.
pub fn stored_artifacts(
    conn: &Connection,
    run_id: &str,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, content_type, length(content) FROM artifacts WHERE run_id = ?1 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
