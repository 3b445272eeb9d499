//! Reads the dashboard needs beyond the query API: the dimensions to offer
//! in filters, runs by page and by id, a step's recent medians, and a
//! metric's distribution from the stored rollups; alerts by state and by id,
//! the emails of one alert, and which artifacts of a run were uploaded.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Serialize;
use vitalsign_core::wire::ProbeRun;

use super::StoreError;

use crate::alerts::state::AlertRecord;
use crate::store::alerts::{OutboxRow, StoredState};

/// Distinct values of the filterable dimensions, for the filter form's choices.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dimensions {
    pub sites: Vec<String>,
    pub flows: Vec<String>,
    pub locations: Vec<String>,
}

/// Sites seen in rollups, and flows and locations seen in runs. Each value
/// is one seek along an index (a skip scan written out), so the cost grows
/// with the number of distinct values, not with the rows behind them: a
/// `DISTINCT` over the rollups of 10 M samples took 130 ms.
pub fn dimensions(conn: &Connection) -> Result<Dimensions, StoreError> {
    const MOST: usize = 500;
    let walk = |sql: &str, fixed: Option<&str>| -> Result<Vec<String>, StoreError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut out: Vec<String> = Vec::new();
        let mut after = String::new();
        while out.len() < MOST {
            let next: Option<String> = match fixed {
                Some(f) => stmt.query_row(params![f, after], |r| r.get(0)),
                None => stmt.query_row(params![after], |r| r.get(0)),
            }
            .optional()?;
            match next {
                Some(v) => {
                    after.clone_from(&v);
                    out.push(v);
                }
                None => break,
            }
        }
        Ok(out)
    };
    // Field data always has an FCP or an LCP; the primary key starts (metric, site).
    let mut sites = walk(
        "SELECT site FROM rollups WHERE metric = ?1 AND site > ?2 ORDER BY site LIMIT 1",
        Some("LCP"),
    )?;
    for site in walk(
        "SELECT site FROM rollups WHERE metric = ?1 AND site > ?2 ORDER BY site LIMIT 1",
        Some("FCP"),
    )? {
        if !sites.contains(&site) {
            sites.push(site);
        }
    }
    sites.sort();
    let flows = walk(
        "SELECT flow FROM runs WHERE flow > ?1 ORDER BY flow LIMIT 1",
        None,
    )?;
    let mut locations: Vec<String> = Vec::new();
    for flow in &flows {
        for location in walk(
            "SELECT location FROM runs WHERE flow = ?1 AND location > ?2 ORDER BY location LIMIT 1",
            Some(flow),
        )? {
            if !locations.contains(&location) {
                locations.push(location);
            }
        }
    }
    locations.sort();
    Ok(Dimensions {
        sites,
        flows,
        locations,
    })
}

/// One page of a flow's runs at a location (or everywhere), newest first,
/// and whether there is another page after it.
pub fn runs_page(
    conn: &Connection,
    flow: Option<&str>,
    location: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<ProbeRun>, bool), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT document FROM runs WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR location = ?2)
         ORDER BY started_at_ms DESC, run_id DESC LIMIT ?3 OFFSET ?4",
    )?;
    let docs = stmt
        .query_map(
            params![flow, location, limit as i64 + 1, offset as i64],
            |r| r.get::<_, String>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = docs.len() > limit;
    let runs = docs
        .iter()
        .take(limit)
        .map(|d| parse_run(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((runs, more))
}

fn parse_run(document: &str) -> Result<ProbeRun, StoreError> {
    serde_json::from_str(document)
        .map_err(|e| StoreError::Corrupt(format!("stored run is unreadable: {e}")))
}

/// A run by id, with when the collector received it.
pub fn run(conn: &Connection, run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached("SELECT document, received_ms FROM runs WHERE run_id = ?1")?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(d, received)| Ok((parse_run(&d)?, received)))
        .transpose()
}

/// The runs of a flow at a location that started before `before_ms`, newest
/// first: what a run's page compares its steps with.
pub fn runs_before(
    conn: &Connection,
    flow: &str,
    location: &str,
    before_ms: i64,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT document FROM runs WHERE flow = ?1 AND location = ?2 AND started_at_ms <= ?3
         ORDER BY started_at_ms DESC, run_id DESC LIMIT ?4",
    )?;
    let docs = stmt
        .query_map(params![flow, location, before_ms, limit as i64], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    docs.iter().map(|d| parse_run(d)).collect()
}

/// The latest run of every flow × location (what maps flow steps to pages).
pub fn latest_runs(conn: &Connection, limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.document FROM runs r
         JOIN (SELECT flow, location, max(started_at_ms) AS last FROM runs GROUP BY flow, location) l
           ON r.flow = l.flow AND r.location = l.location AND r.started_at_ms = l.last
         ORDER BY r.flow, r.location LIMIT ?1",
    )?;
    let docs = stmt
        .query_map([limit as i64], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    docs.iter().map(|d| parse_run(d)).collect()
}

/// Every value of the given parameters for raw queries that the dashboard
/// composes itself (kept here so that SQL stays in the store).
pub fn count_runs(
    conn: &Connection,
    flow: Option<&str>,
    location: Option<&str>,
) -> Result<u64, StoreError> {
    let params: Vec<Value> = vec![
        flow.map_or(Value::Null, |f| Value::Text(f.into())),
        location.map_or(Value::Null, |l| Value::Text(l.into())),
    ];
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM runs WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR location = ?2)",
        )?
        .query_row(params_from_iter(params), |r| r.get(0))?;
    Ok(n as u64)
}

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
        .map_err(|e| StoreError::Corrupt(format!("stored alert state is unreadable: {e}")))?;
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
    crate::store::alerts::outbox_rows(
        conn,
        &format!(
            "SELECT {} FROM outbox
             WHERE EXISTS (SELECT 1 FROM json_each(message, '$.alerts') WHERE value = ?1)
             ORDER BY seq LIMIT ?2",
            crate::store::alerts::OUTBOX_COLUMNS
        ),
        &[&alert_id, &(limit as i64)],
    )
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
