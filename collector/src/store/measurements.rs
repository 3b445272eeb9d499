//! Raw rows: one per measured page load, a RUM page view or one step of a
//! probe run, with each metric in its own column (`measurements`), and the
//! dimensions a query filters on (site, page group, device, source, flow,
//! step, location) dictionary-encoded once as an integer series id
//! (`series`).
//!
//! One row per page view instead of one per metric costs one insert and three
//! index entries for a five-metric beacon instead of five inserts and fifteen,
//! and the dimensions are stored once per series instead of on every sample.
//! A re-report (CLS and INP grow while the page lives) finds the row by its
//! `(origin_id, step_index)` key, replaces the values it carries and leaves
//! the others; the caller's rollup deltas take the old values back.
//!
//! A page view has one navigation and connection type, its latest report's:
//! every metric's attribution counts under them, and a re-report that changes
//! them moves the counts of the metrics it does not carry as well, so what a
//! row contributed is always what it says.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use vitalsign_core::metric::Metric;

use super::attribution::StoredAttribution;
use super::query::Filter;

/// `step_index` of a RUM page view: probe steps count from 0, so a page-view
/// id and a run id never share a key.
pub(crate) const PAGE_VIEW_STEP: i64 = -1;

/// The column holding `metric`'s values.
pub(crate) fn value_column(metric: Metric) -> &'static str {
    match metric {
        Metric::Lcp => "lcp",
        Metric::Cls => "cls",
        Metric::Inp => "inp",
        Metric::Fcp => "fcp",
        Metric::Ttfb => "ttfb",
        Metric::Tbt => "tbt",
    }
}

/// Position of `metric` in [`Row::values`] ([`Metric::ALL`] order).
fn slot(metric: Metric) -> usize {
    match metric {
        Metric::Lcp => 0,
        Metric::Cls => 1,
        Metric::Inp => 2,
        Metric::Fcp => 3,
        Metric::Ttfb => 4,
        Metric::Tbt => 5,
    }
}

/// `SELECT {columns}` over the raw rows of `metric` in `[from_ms, to_ms)` that
/// match `filter`, with its parameters. A column is `value` (the metric's),
/// `ts_ms`, or a series dimension (`site`, `page_group`, `device`, …) or an
/// expression of those; `extra` is appended to the `WHERE` clause.
pub(crate) fn raw_query(
    metric: Metric,
    columns: &[&str],
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    extra: &str,
) -> (String, Vec<Value>) {
    let (clause, params) = filter.clause();
    let value = value_column(metric);
    let columns: Vec<String> = columns
        .iter()
        .map(|c| match *c {
            "value" => format!("m.{value}"),
            "ts_ms" => "m.ts_ms".to_string(),
            other => other.to_string(),
        })
        .collect();
    // The time index (`ts_ms, series`) is walked in time order and the
    // filter's series are tested on its entries, so only matching rows are
    // read; `CROSS JOIN` keeps SQLite from looping over the series instead,
    // which would walk the whole time range once per matching series.
    let of_series = if clause.is_empty() {
        String::new()
    } else {
        format!(" AND m.series IN (SELECT id FROM series WHERE 1{clause})")
    };
    let sql = format!(
        "SELECT {} FROM measurements AS m INDEXED BY measurements_time CROSS JOIN series AS s ON s.id = m.series
         WHERE m.ts_ms >= ? AND m.ts_ms < ?{of_series} AND m.{value} IS NOT NULL{extra}",
        columns.join(", ")
    );
    let all = [Value::Integer(from_ms), Value::Integer(to_ms)]
        .into_iter()
        .chain(params)
        .collect();
    (sql, all)
}

/// A series' dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SeriesDims {
    pub site: String,
    pub page_group: String,
    pub device: String,
    pub source: String,
    pub flow: String,
    pub step: String,
    pub location: String,
}

impl SeriesDims {
    pub(super) fn as_ref(&self) -> SeriesRef<'_> {
        SeriesRef {
            site: &self.site,
            page_group: &self.page_group,
            device: &self.device,
            source: &self.source,
            flow: &self.flow,
            step: &self.step,
            location: &self.location,
        }
    }
}

/// The same, borrowed from a beacon or run.
#[derive(Clone, Copy)]
pub(super) struct SeriesRef<'a> {
    pub site: &'a str,
    pub page_group: &'a str,
    pub device: &'a str,
    pub source: &'a str,
    pub flow: &'a str,
    pub step: &'a str,
    pub location: &'a str,
}

impl SeriesRef<'_> {
    pub(super) fn parts(&self) -> [&str; 7] {
        [
            self.site,
            self.page_group,
            self.device,
            self.source,
            self.flow,
            self.step,
            self.location,
        ]
    }
}

/// Past this many series the writer's map is dropped between batches and
/// refilled from SQLite as series come again.
const MAX_CACHED_SERIES: usize = 100_000;

/// The writer's view of `series`: a series seen before costs a map lookup
/// with no allocation; a new one a `SELECT` and an `INSERT`.
#[derive(Default)]
pub(super) struct SeriesIds {
    /// The dimensions joined by U+001F (which identifiers and page groups
    /// cannot hold) → id.
    ids: HashMap<String, i64>,
    dims: HashMap<i64, Rc<SeriesDims>>,
    key: String,
}

impl SeriesIds {
    pub(super) fn id(&mut self, conn: &Connection, s: &SeriesRef) -> rusqlite::Result<i64> {
        self.key.clear();
        for (i, part) in s.parts().iter().enumerate() {
            if i > 0 {
                self.key.push('\u{1f}');
            }
            let _ = self.key.write_str(part);
        }
        if let Some(&id) = self.ids.get(self.key.as_str()) {
            return Ok(id);
        }
        let p = s.parts();
        let found: Option<i64> = conn
            .prepare_cached(
                "SELECT id FROM series WHERE site = ?1 AND page_group = ?2 AND device = ?3
                 AND source = ?4 AND flow = ?5 AND step = ?6 AND location = ?7",
            )?
            .query_row(params![p[0], p[1], p[2], p[3], p[4], p[5], p[6]], |r| {
                r.get(0)
            })
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached(
                    "INSERT INTO series (site, page_group, device, source, flow, step, location)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![p[0], p[1], p[2], p[3], p[4], p[5], p[6]])?;
                conn.last_insert_rowid()
            }
        };
        self.ids.insert(self.key.clone(), id);
        self.dims.insert(
            id,
            Rc::new(SeriesDims {
                site: s.site.to_string(),
                page_group: s.page_group.to_string(),
                device: s.device.to_string(),
                source: s.source.to_string(),
                flow: s.flow.to_string(),
                step: s.step.to_string(),
                location: s.location.to_string(),
            }),
        );
        Ok(id)
    }

    /// The dimensions of a series this batch used (or read from SQLite).
    pub(super) fn dims(&mut self, conn: &Connection, id: i64) -> rusqlite::Result<Rc<SeriesDims>> {
        if let Some(d) = self.dims.get(&id) {
            return Ok(d.clone());
        }
        let dims = conn
            .prepare_cached(
                "SELECT site, page_group, device, source, flow, step, location FROM series WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok(SeriesDims {
                    site: r.get(0)?,
                    page_group: r.get(1)?,
                    device: r.get(2)?,
                    source: r.get(3)?,
                    flow: r.get(4)?,
                    step: r.get(5)?,
                    location: r.get(6)?,
                })
            })?;
        let dims = Rc::new(dims);
        self.dims.insert(id, dims.clone());
        Ok(dims)
    }

    /// The batch did not commit: ids it inserted may be handed out again.
    pub(super) fn batch_failed(&mut self) {
        *self = SeriesIds::default();
    }

    /// Between batches: keep the maps bounded.
    pub(super) fn trim(&mut self) {
        if self.ids.len() > MAX_CACHED_SERIES || self.dims.len() > MAX_CACHED_SERIES {
            *self = SeriesIds::default();
        }
    }
}

/// The measured part of a raw row: values by metric and dictionary ids of
/// their attribution.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Row {
    /// By [`Metric::ALL`] order; `None`: not reported.
    pub values: [Option<f64>; 6],
    pub navigation: Option<i64>,
    pub connection: Option<i64>,
    pub lcp_element: Option<i64>,
    pub lcp_resource: Option<i64>,
    pub inp_target: Option<i64>,
    pub cls_source: Option<i64>,
    /// INP input delay, processing, presentation (ms).
    pub inp_split: Option<[f64; 3]>,
}

impl Row {
    pub(super) fn value(&self, metric: Metric) -> Option<f64> {
        self.values[slot(metric)]
    }

    /// What `metric` contributed to the attribution counts: nothing without a
    /// navigation and connection (probe steps; rows stored before
    /// attribution was kept).
    pub(super) fn attribution(&self, metric: Metric) -> Option<StoredAttribution> {
        let (navigation, connection) = (self.navigation?, self.connection?);
        Some(StoredAttribution {
            navigation,
            connection,
            target: match metric {
                Metric::Lcp => self.lcp_element,
                Metric::Inp => self.inp_target,
                Metric::Cls => self.cls_source,
                _ => None,
            },
            resource: if metric == Metric::Lcp {
                self.lcp_resource
            } else {
                None
            },
            split: if metric == Metric::Inp {
                self.inp_split
            } else {
                None
            },
        })
    }

    /// Set `metric`'s value and replace its attribution columns with `a`'s.
    pub(super) fn set(&mut self, metric: Metric, value: f64, a: Option<&StoredAttribution>) {
        self.values[slot(metric)] = Some(value);
        let target = a.and_then(|a| a.target);
        match metric {
            Metric::Lcp => {
                self.lcp_element = target;
                self.lcp_resource = a.and_then(|a| a.resource);
            }
            Metric::Inp => {
                self.inp_target = target;
                self.inp_split = a.and_then(|a| a.split);
            }
            Metric::Cls => self.cls_source = target,
            Metric::Fcp | Metric::Ttfb | Metric::Tbt => {}
        }
    }

    /// The metrics that have a value, in [`Metric::ALL`] order.
    pub(super) fn present(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        Metric::ALL
            .into_iter()
            .filter_map(|m| self.value(m).map(|v| (m, v)))
    }
}

/// A stored row found by its key.
pub(super) struct Stored {
    pub id: i64,
    pub ts_ms: i64,
    pub series: i64,
    pub row: Row,
}

const COLUMNS: &str =
    "lcp, cls, inp, fcp, ttfb, tbt, navigation, connection, lcp_element, lcp_resource,
                       inp_target, cls_source, inp_input_delay, inp_processing, inp_presentation";

/// Insert a new row; `false` when one with the same key exists (a re-report).
pub(super) fn insert(
    conn: &Connection,
    ts_ms: i64,
    series: i64,
    origin_id: &str,
    step_index: i64,
    row: &Row,
) -> rusqlite::Result<bool> {
    let v = &row.values;
    let split = |i: usize| row.inp_split.map(|s| s[i]);
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO measurements (ts_ms, series, origin_id, step_index, {COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT (origin_id, step_index) DO NOTHING"
        ))?
        .execute(params![
            ts_ms,
            series,
            origin_id,
            step_index,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            row.navigation,
            row.connection,
            row.lcp_element,
            row.lcp_resource,
            row.inp_target,
            row.cls_source,
            split(0),
            split(1),
            split(2)
        ])?;
    Ok(inserted == 1)
}

/// A row as `SELECT id, ts_ms, series, {COLUMNS}` reads it.
fn stored_from(r: &rusqlite::Row) -> rusqlite::Result<Stored> {
    let split: [Option<f64>; 3] = [r.get(15)?, r.get(16)?, r.get(17)?];
    Ok(Stored {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        series: r.get(2)?,
        row: Row {
            values: [
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ],
            navigation: r.get(9)?,
            connection: r.get(10)?,
            lcp_element: r.get(11)?,
            lcp_resource: r.get(12)?,
            inp_target: r.get(13)?,
            cls_source: r.get(14)?,
            inp_split: match split {
                [Some(d), Some(p), Some(s)] => Some([d, p, s]),
                _ => None,
            },
        },
    })
}

/// The stored row with this key.
pub(super) fn find(
    conn: &Connection,
    origin_id: &str,
    step_index: i64,
) -> rusqlite::Result<Option<Stored>> {
    conn.prepare_cached(&format!(
        "SELECT id, ts_ms, series, {COLUMNS} FROM measurements WHERE origin_id = ?1 AND step_index = ?2"
    ))?
    .query_row(params![origin_id, step_index], stored_from)
    .optional()
}

/// At most `limit` rows inserted after `id`, in id order (whose rollup
/// contributions a crash may have lost).
pub(super) fn rows_after(
    conn: &Connection,
    id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Stored>> {
    conn.prepare_cached(&format!(
        "SELECT id, ts_ms, series, {COLUMNS} FROM measurements WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?
    .query_map(params![id, limit as i64], stored_from)?
    .collect()
}

/// Remember a row as the rollups count it, before a re-report changes it
/// while its rollup changes are not yet written (the first snapshot stays).
pub(super) fn journal(conn: &Connection, stored: &Stored) -> rusqlite::Result<()> {
    let v = &stored.row.values;
    let row = &stored.row;
    let split = |i: usize| row.inp_split.map(|s| s[i]);
    conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO rollup_journal (id, ts_ms, series, {COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?
    .execute(params![
        stored.id,
        stored.ts_ms,
        stored.series,
        v[0],
        v[1],
        v[2],
        v[3],
        v[4],
        v[5],
        row.navigation,
        row.connection,
        row.lcp_element,
        row.lcp_resource,
        row.inp_target,
        row.cls_source,
        split(0),
        split(1),
        split(2)
    ])?;
    Ok(())
}

/// Journaled rows: each as the rollups count it and as it is now (`None`:
/// pruned since).
pub(super) fn journaled(conn: &Connection) -> rusqlite::Result<Vec<(Stored, Option<Stored>)>> {
    let snapshots: Vec<Stored> = conn
        .prepare(&format!(
            "SELECT id, ts_ms, series, {COLUMNS} FROM rollup_journal ORDER BY id"
        ))?
        .query_map([], stored_from)?
        .collect::<rusqlite::Result<_>>()?;
    let mut current = conn.prepare(&format!(
        "SELECT id, ts_ms, series, {COLUMNS} FROM measurements WHERE id = ?1"
    ))?;
    snapshots
        .into_iter()
        .map(|s| {
            let now = current.query_row([s.id], stored_from).optional()?;
            Ok((s, now))
        })
        .collect()
}

/// Overwrite a stored row's measured columns.
pub(super) fn update(conn: &Connection, id: i64, row: &Row) -> rusqlite::Result<()> {
    let v = &row.values;
    let split = |i: usize| row.inp_split.map(|s| s[i]);
    conn.prepare_cached(
        "UPDATE measurements SET lcp = ?1, cls = ?2, inp = ?3, fcp = ?4, ttfb = ?5, tbt = ?6,
                navigation = ?7, connection = ?8, lcp_element = ?9, lcp_resource = ?10,
                inp_target = ?11, cls_source = ?12, inp_input_delay = ?13, inp_processing = ?14,
                inp_presentation = ?15
         WHERE id = ?16",
    )?
    .execute(params![
        v[0],
        v[1],
        v[2],
        v[3],
        v[4],
        v[5],
        row.navigation,
        row.connection,
        row.lcp_element,
        row.lcp_resource,
        row.inp_target,
        row.cls_source,
        split(0),
        split(1),
        split(2),
        id
    ])?;
    Ok(())
}
