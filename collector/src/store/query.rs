//! Reads: percentiles and rating shares, time series, top page groups, runs.
//!
//! Short ranges (up to [`RAW_RANGE_MS`]) read raw samples and are exact. Longer
//! ranges read the hourly rollups (whole hours that overlap the range; each
//! percentile within ±1 % of the exact value), so a 30-day p75 merges at most
//! 720 small histograms per series instead of scanning millions of rows.

use rusqlite::types::{Type, Value};
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_core::wire::ProbeRun;

use super::StoreError;
use super::measurements::raw_query;
use crate::histogram::{Accumulator, exact_quantile};

pub const RAW_RANGE_MS: i64 = 6 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Dimensions a query can filter on; absent means "all".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    /// `rum` or `synthetic`.
    pub source: Option<String>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
}

impl Filter {
    /// ` AND col = ?` for every set dimension, with its parameters.
    pub(super) fn clause(&self) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        let dims = [
            ("site", &self.site),
            ("page_group", &self.page_group),
            ("device", &self.device),
            ("source", &self.source),
            ("flow", &self.flow),
            ("step", &self.step),
            ("location", &self.location),
        ];
        for (column, value) in dims {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                params.push(Value::Text(v.clone()));
            }
        }
        (sql, params)
    }
}

/// Distribution of one metric over a range.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    /// Shares of good / needs-improvement / poor samples, 0..1.
    pub good: f64,
    pub needs_improvement: f64,
    pub poor: f64,
    /// `raw` (exact) or `rollup` (hourly histograms, ±1 %).
    pub resolution: &'static str,
}

/// Values of the raw samples in a range (also what the alert engine's rank test reads).
pub fn raw_values(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Vec<f64>, StoreError> {
    let (sql, all) = raw_query(metric, &["value"], from_ms, to_ms, filter, "");
    let mut stmt = conn.prepare_cached(&sql)?;
    let values = stmt
        .query_map(params_from_iter(all), |r| r.get::<_, f64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(values)
}

/// The leading parameters of every sample and rollup query.
fn head(metric: Metric, from: i64, to: i64) -> [Value; 3] {
    [
        Value::Text(metric.as_str().to_string()),
        Value::Integer(from),
        Value::Integer(to),
    ]
}

pub(crate) fn summary_from_raw(metric: Metric, mut values: Vec<f64>) -> Summary {
    let count = values.len() as u64;
    let mut shares = [0u64; 3];
    for v in &values {
        shares[rating_index(metric.rate(*v))] += 1;
    }
    Summary {
        count,
        p50: exact_quantile(&mut values, 0.5),
        p75: exact_quantile(&mut values, 0.75),
        p90: exact_quantile(&mut values, 0.9),
        p99: exact_quantile(&mut values, 0.99),
        good: share(shares[0], count),
        needs_improvement: share(shares[1], count),
        poor: share(shares[2], count),
        resolution: "raw",
    }
}

fn rating_index(r: Rating) -> usize {
    match r {
        Rating::Good => 0,
        Rating::NeedsImprovement => 1,
        Rating::Poor => 2,
    }
}

fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// Merged rollups: histogram plus exact rating counts (the PostgreSQL
/// backend fills the same from its per-bucket rows).
#[derive(Default)]
pub(crate) struct Merged {
    pub(crate) histogram: Accumulator,
    pub(crate) good: u64,
    pub(crate) ni: u64,
    pub(crate) poor: u64,
}

impl Merged {
    pub(crate) fn summary(&self) -> Summary {
        let count = self.histogram.count();
        Summary {
            count,
            p50: self.histogram.quantile(0.5),
            p75: self.histogram.quantile(0.75),
            p90: self.histogram.quantile(0.9),
            p99: self.histogram.quantile(0.99),
            good: share(self.good, count),
            needs_improvement: share(self.ni, count),
            poor: share(self.poor, count),
            resolution: "rollup",
        }
    }
}

/// Which rollup rows a read may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grain {
    /// Hourly rows only: the caller places each row by its hour.
    Hours,
    /// Daily rows for the whole UTC days inside the range, hourly rows for
    /// the hours at its edges: for callers that do not split a day (a total,
    /// or buckets on day boundaries). Each daily row is visited with its
    /// day's first hour.
    Days,
}

/// How rollup rows fall into time buckets of `bucket_ms` (a whole number of
/// hours) from `from_ms`: the grain to read and where the buckets start.
/// Buckets of whole days start at UTC midnight, the first one holding the
/// range's first hours, so every daily row lies in one bucket and a 30-day
/// daily series reads ~30 rows per series instead of ~720. Other widths start
/// at `from_ms` and are read from hours.
pub(crate) fn rollup_buckets(from_ms: i64, bucket_ms: i64) -> (Grain, i64) {
    if bucket_ms % DAY_MS == 0 {
        (Grain::Days, from_ms.div_euclid(DAY_MS) * DAY_MS)
    } else {
        (Grain::Hours, from_ms)
    }
}

/// Visit the rollup rows overlapping the range as (hour, group label, good,
/// needs-improvement, poor, histogram blob), borrowed from SQLite's row: a long
/// range is hundreds of thousands of rows, and nothing of them is kept.
// The arguments are the query itself (what, when, which rows, how grouped).
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_each_rollup(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    group_by: &str,
    grain: Grain,
    mut visit: impl FnMut(i64, &str, i64, i64, i64, &[u8]),
) -> Result<(), StoreError> {
    let from_hour = from_ms.div_euclid(HOUR_MS);
    let to_hour = (to_ms + HOUR_MS - 1).div_euclid(HOUR_MS);
    let (first_day, end_day) = ((from_hour + 23).div_euclid(24), to_hour.div_euclid(24));
    if grain == Grain::Hours || first_day >= end_day {
        return scan(
            conn,
            Table::Hourly,
            metric,
            from_hour,
            to_hour,
            filter,
            group_by,
            &mut visit,
        );
    }
    scan(
        conn,
        Table::Hourly,
        metric,
        from_hour,
        first_day * 24,
        filter,
        group_by,
        &mut visit,
    )?;
    scan(
        conn,
        Table::Daily,
        metric,
        first_day,
        end_day,
        filter,
        group_by,
        &mut visit,
    )?;
    scan(
        conn,
        Table::Hourly,
        metric,
        end_day * 24,
        to_hour,
        filter,
        group_by,
        &mut visit,
    )
}

#[derive(Clone, Copy)]
enum Table {
    Hourly,
    Daily,
}

impl Table {
    /// (table, time column, hours per unit)
    fn parts(self) -> (&'static str, &'static str, i64) {
        match self {
            Table::Hourly => ("rollups", "hour", 1),
            Table::Daily => ("rollups_daily", "day", 24),
        }
    }
}

/// The rows of one rollup table in `[from, to)` of its time unit.
#[allow(clippy::too_many_arguments)]
fn scan(
    conn: &Connection,
    table: Table,
    metric: Metric,
    from: i64,
    to: i64,
    filter: &Filter,
    group_by: &str,
    visit: &mut impl FnMut(i64, &str, i64, i64, i64, &[u8]),
) -> Result<(), StoreError> {
    if from >= to {
        return Ok(());
    }
    let (name, unit, hours) = table.parts();
    let (clause, params) = filter.clause();
    let (sql, all): (String, Vec<Value>) = if let (Table::Hourly, Some(site), Some(page_group)) =
        (table, &filter.site, &filter.page_group)
    {
        // One page group's hours: seek each of its series' hour range along
        // the primary key (metric, site, page_group, device, source, flow,
        // step, location, hour). Walking the whole page group instead reads
        // every hour it ever had: the few hours at the edges of a 30-day
        // daily series read ~2,000 rows for ~60. Its series come from the
        // daily rows, ~24x fewer, written with the hourly ones.
        let pinned = || {
            [
                Value::Text(metric.as_str().to_string()),
                Value::Text(site.clone()),
                Value::Text(page_group.clone()),
            ]
        };
        let sql = format!(
            "SELECT r.hour, {group_by}, r.good, r.needs_improvement, r.poor, r.histogram
             FROM (SELECT DISTINCT device AS k_device, source AS k_source, flow AS k_flow,
                                   step AS k_step, location AS k_location
                   FROM rollups_daily WHERE metric = ? AND site = ? AND page_group = ?)
             CROSS JOIN rollups AS r
             WHERE r.metric = ? AND r.site = ? AND r.page_group = ? AND r.device = k_device
               AND r.source = k_source AND r.flow = k_flow AND r.step = k_step
               AND r.location = k_location AND r.hour >= ? AND r.hour < ?{clause}"
        );
        let all = pinned()
            .into_iter()
            .chain(pinned())
            .chain([Value::Integer(from), Value::Integer(to)])
            .chain(params)
            .collect();
        (sql, all)
    } else {
        // `+hour` keeps SQLite off the (metric, hour) index so it walks the primary
        // key, where a series' rows sit together with their histograms: a seek per
        // row through the hour index costs ~15x a step along the primary key.
        let time = if walk_primary_key(conn, table, metric, from, to, filter)? {
            format!("+{unit}")
        } else {
            unit.to_string()
        };
        let sql = format!(
            "SELECT {unit}, {group_by}, good, needs_improvement, poor, histogram FROM {name}
             WHERE metric = ? AND {time} >= ? AND {time} < ?{clause}"
        );
        (
            sql,
            head(metric, from, to).into_iter().chain(params).collect(),
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(all))?;
    let bad = |column: usize, kind| {
        move |e| rusqlite::Error::FromSqlConversionFailure(column, kind, Box::new(e))
    };
    while let Some(r) = rows.next()? {
        visit(
            r.get::<_, i64>(0)? * hours,
            r.get_ref(1)?.as_str().map_err(bad(1, Type::Text))?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get_ref(5)?.as_blob().map_err(bad(5, Type::Blob))?,
        );
    }
    Ok(())
}

/// Whether reading all of the metric's rollups along the primary key
/// (`metric, site, page_group, …, hour`) beats seeking each row of the range
/// through the `(metric, hour)` index: yes when site and page group pin the
/// key prefix to one page group, or when the range covers at least 1/16 of
/// the time stored for the metric (rollups are kept for ever, so a short
/// range over a long history still takes the time index).
fn walk_primary_key(
    conn: &Connection,
    table: Table,
    metric: Metric,
    from: i64,
    to: i64,
    filter: &Filter,
) -> Result<bool, StoreError> {
    if filter.site.is_some() && filter.page_group.is_some() {
        return Ok(true);
    }
    let (name, unit, _) = table.parts();
    // Two single-aggregate queries: SQLite answers each with one index seek.
    let edge = |aggregate: &str| -> Result<Option<i64>, StoreError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {aggregate}({unit}) FROM {name} WHERE metric = ?1"
            ))?
            .query_row([metric.as_str()], |r| r.get(0))?)
    };
    let (Some(first), Some(last)) = (edge("min")?, edge("max")?) else {
        return Ok(true);
    };
    let stored = last - first + 1;
    let wanted = to.min(last + 1) - from.max(first);
    Ok(wanted * 16 >= stored)
}

fn merge_into(m: &mut Merged, good: i64, ni: i64, poor: i64, blob: &[u8]) {
    m.histogram.add_encoded(blob);
    m.good += good.max(0) as u64;
    m.ni += ni.max(0) as u64;
    m.poor += poor.max(0) as u64;
}

pub fn summary(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Summary, StoreError> {
    if to_ms - from_ms <= RAW_RANGE_MS {
        return Ok(summary_from_raw(
            metric,
            raw_values(conn, metric, from_ms, to_ms, filter)?,
        ));
    }
    let mut merged = Merged::default();
    for_each_rollup(
        conn,
        metric,
        from_ms,
        to_ms,
        filter,
        "''",
        Grain::Days,
        |_, _, good, ni, poor, blob| merge_into(&mut merged, good, ni, poor, blob),
    )?;
    Ok(merged.summary())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// Start of the bucket, Unix milliseconds.
    pub start_ms: i64,
    #[serde(flatten)]
    pub summary: Summary,
}

/// One summary per `bucket_ms` bucket (empty buckets omitted).
pub fn series(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    filter: &Filter,
) -> Result<Vec<SeriesPoint>, StoreError> {
    use std::collections::BTreeMap;
    let bucket_of = |ts: i64| from_ms + (ts - from_ms).div_euclid(bucket_ms) * bucket_ms;
    if to_ms - from_ms <= RAW_RANGE_MS || bucket_ms < HOUR_MS || bucket_ms % HOUR_MS != 0 {
        let (sql, all) = raw_query(metric, &["ts_ms", "value"], from_ms, to_ms, filter, "");
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        let rows = stmt.query_map(params_from_iter(all), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
        })?;
        for row in rows {
            let (ts, value) = row?;
            buckets.entry(bucket_of(ts)).or_default().push(value);
        }
        return Ok(buckets
            .into_iter()
            .map(|(start_ms, values)| SeriesPoint {
                start_ms,
                summary: summary_from_raw(metric, values),
            })
            .collect());
    }
    let mut buckets: BTreeMap<i64, Merged> = BTreeMap::new();
    let (grain, origin) = rollup_buckets(from_ms, bucket_ms);
    let bucket_of = |ts: i64| origin + (ts - origin).div_euclid(bucket_ms) * bucket_ms;
    for_each_rollup(
        conn,
        metric,
        from_ms,
        to_ms,
        filter,
        "''",
        grain,
        |hour, _, good, ni, poor, blob| {
            merge_into(
                buckets.entry(bucket_of(hour * HOUR_MS)).or_default(),
                good,
                ni,
                poor,
                blob,
            )
        },
    )?;
    Ok(buckets
        .into_iter()
        .map(|(start_ms, m)| SeriesPoint {
            start_ms,
            summary: m.summary(),
        })
        .collect())
}

/// Everything a view draws of one metric in one pass over the stored data:
/// the range's summary, the previous period's, the buckets of its chart,
/// the distribution and the split by device.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Breakdown {
    pub current: Summary,
    /// The period of the same length before `from` (when asked for).
    pub previous: Option<Summary>,
    pub points: Vec<SeriesPoint>,
    /// (lower, upper, count) of each stored log bucket, for a histogram.
    pub distribution: Vec<(f64, f64, u64)>,
    /// The current range per device class, in name order.
    pub devices: Vec<(String, Summary)>,
}

/// One read where a view would otherwise make six to ten: [`summary`],
/// [`series`] and the device split of `[from_ms, to_ms)` (and the summary of
/// the period before it when `previous` is set) from the same rows, each
/// the same numbers those functions give.
pub fn breakdown(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
) -> Result<Breakdown, StoreError> {
    let mut all = breakdowns(
        conn, metric, from_ms, to_ms, bucket_ms, previous, filter, false,
    )?;
    // Nothing stored: the empty summaries the separate queries give.
    Ok(all.pop().map(|(_, b)| b).unwrap_or_else(|| {
        let empty = if to_ms - from_ms <= RAW_RANGE_MS || bucket_ms % HOUR_MS != 0 {
            summary_from_raw(metric, Vec::new())
        } else {
            Merged::default().summary()
        };
        Breakdown {
            previous: previous.then(|| empty.clone()),
            current: empty,
            ..Breakdown::default()
        }
    }))
}

/// [`breakdown`] of every site at once (`by_site`), from one read of the
/// metric's rows instead of one per site; in site order. Without `by_site`,
/// one entry (site `""`) for everything the filter matches.
#[allow(clippy::too_many_arguments)]
pub fn breakdowns(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
    by_site: bool,
) -> Result<Vec<(String, Breakdown)>, StoreError> {
    use std::collections::BTreeMap;
    let start_ms = if previous {
        from_ms - (to_ms - from_ms)
    } else {
        from_ms
    };
    let site = if by_site { "site" } else { "''" };
    if to_ms - from_ms <= RAW_RANGE_MS || bucket_ms < HOUR_MS || bucket_ms % HOUR_MS != 0 {
        /// Raw values of one site.
        #[derive(Default)]
        struct Raw {
            current: Vec<f64>,
            before: Vec<f64>,
            buckets: BTreeMap<i64, Vec<f64>>,
            devices: BTreeMap<String, Vec<f64>>,
        }
        let bucket_of = |ts: i64| from_ms + (ts - from_ms).div_euclid(bucket_ms) * bucket_ms;
        let (sql, all) = raw_query(
            metric,
            &["ts_ms", "value", "device", site],
            start_ms,
            to_ms,
            filter,
            "",
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(all))?;
        let mut sites: BTreeMap<String, Raw> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let (ts, value): (i64, f64) = (r.get(0)?, r.get(1)?);
            let name = r.get_ref(3)?.as_str().unwrap_or("");
            if !sites.contains_key(name) {
                sites.insert(name.to_string(), Raw::default());
            }
            let s = sites.get_mut(name).expect("inserted above");
            if ts < from_ms {
                s.before.push(value);
                continue;
            }
            s.current.push(value);
            s.buckets.entry(bucket_of(ts)).or_default().push(value);
            let device = r.get_ref(2)?.as_str().unwrap_or("unknown");
            match s.devices.get_mut(device) {
                Some(v) => v.push(value),
                None => {
                    s.devices.insert(device.to_string(), vec![value]);
                }
            }
        }
        return Ok(sites
            .into_iter()
            .map(|(name, s)| {
                let mut histogram = crate::histogram::Histogram::default();
                for v in &s.current {
                    histogram.add(*v, 1);
                }
                let mut distribution = Accumulator::default();
                distribution.add_encoded(&histogram.encode());
                let b = Breakdown {
                    current: summary_from_raw(metric, s.current),
                    previous: previous.then(|| summary_from_raw(metric, s.before)),
                    points: s
                        .buckets
                        .into_iter()
                        .map(|(start_ms, values)| SeriesPoint {
                            start_ms,
                            summary: summary_from_raw(metric, values),
                        })
                        .collect(),
                    distribution: distribution.buckets(),
                    devices: s
                        .devices
                        .into_iter()
                        .map(|(d, values)| (d, summary_from_raw(metric, values)))
                        .collect(),
                };
                (name, b)
            })
            .collect());
    }
    /// Merged rollups of one site.
    #[derive(Default)]
    struct Rolled {
        current: Merged,
        before: Merged,
        buckets: BTreeMap<i64, Merged>,
        devices: BTreeMap<String, Merged>,
    }
    let mut sites: BTreeMap<String, Rolled> = BTreeMap::new();
    // The period before: a total, so whole days may come from the daily rows.
    if previous {
        for_each_rollup(
            conn,
            metric,
            start_ms,
            from_ms,
            filter,
            site,
            Grain::Days,
            |_, name, good, ni, poor, blob| {
                if !sites.contains_key(name) {
                    sites.insert(name.to_string(), Rolled::default());
                }
                let s = sites.get_mut(name).expect("inserted above");
                merge_into(&mut s.before, good, ni, poor, blob)
            },
        )?;
    }
    let (grain, origin) = rollup_buckets(from_ms, bucket_ms);
    let bucket_of = |ts: i64| origin + (ts - origin).div_euclid(bucket_ms) * bucket_ms;
    let label = format!("{site} || char(31) || device");
    for_each_rollup(
        conn,
        metric,
        from_ms,
        to_ms,
        filter,
        &label,
        grain,
        |hour, label, good, ni, poor, blob| {
            let (name, device) = label.split_once('\u{1f}').unwrap_or(("", label));
            if !sites.contains_key(name) {
                sites.insert(name.to_string(), Rolled::default());
            }
            let s = sites.get_mut(name).expect("inserted above");
            merge_into(&mut s.current, good, ni, poor, blob);
            merge_into(
                s.buckets.entry(bucket_of(hour * HOUR_MS)).or_default(),
                good,
                ni,
                poor,
                blob,
            );
            match s.devices.get_mut(device) {
                Some(m) => merge_into(m, good, ni, poor, blob),
                None => {
                    let mut m = Merged::default();
                    merge_into(&mut m, good, ni, poor, blob);
                    s.devices.insert(device.to_string(), m);
                }
            }
        },
    )?;
    Ok(sites
        .into_iter()
        .map(|(name, s)| {
            let b = Breakdown {
                current: s.current.summary(),
                previous: previous.then(|| s.before.summary()),
                points: s
                    .buckets
                    .into_iter()
                    .map(|(start_ms, m)| SeriesPoint {
                        start_ms,
                        summary: m.summary(),
                    })
                    .collect(),
                distribution: s.current.histogram.buckets(),
                devices: s
                    .devices
                    .into_iter()
                    .map(|(d, m)| (d, m.summary()))
                    .collect(),
            };
            (name, b)
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PageRank {
    pub site: String,
    pub page_group: String,
    pub count: u64,
    pub p75: Option<f64>,
    pub good: f64,
    pub poor: f64,
}

/// Page groups ordered by p75 (worst first), with their sample counts.
pub fn top_pages(
    conn: &Connection,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<PageRank>, StoreError> {
    use std::collections::HashMap;
    if to_ms - from_ms <= RAW_RANGE_MS {
        let (sql, all) = raw_query(
            metric,
            &["site || char(31) || page_group", "value"],
            from_ms,
            to_ms,
            filter,
            " AND source = 'rum'",
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(all), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
        })?;
        let mut raw: HashMap<String, Vec<f64>> = HashMap::new();
        for row in rows {
            let (key, value) = row?;
            raw.entry(key).or_default().push(value);
        }
        let mut ranks: Vec<PageRank> = raw
            .into_iter()
            .map(|(key, values)| {
                let s = summary_from_raw(metric, values);
                page_rank(&key, &s)
            })
            .collect();
        sort_ranks(&mut ranks, limit);
        return Ok(ranks);
    }
    let mut filter = filter.clone();
    filter.source.get_or_insert_with(|| "rum".to_string());
    // Walking the primary key, a group's rows come one after another: only a
    // change of group costs a map lookup.
    let mut groups: Vec<(String, Merged)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    for_each_rollup(
        conn,
        metric,
        from_ms,
        to_ms,
        &filter,
        "site || char(31) || page_group",
        Grain::Days,
        |_, key, good, ni, poor, blob| {
            let at = match current {
                Some(at) if groups[at].0 == key => at,
                _ => match index.get(key) {
                    Some(&at) => at,
                    None => {
                        index.insert(key.to_string(), groups.len());
                        groups.push((key.to_string(), Merged::default()));
                        groups.len() - 1
                    }
                },
            };
            current = Some(at);
            merge_into(&mut groups[at].1, good, ni, poor, blob);
        },
    )?;
    let mut ranks: Vec<PageRank> = groups
        .iter()
        .map(|(key, m)| page_rank(key, &m.summary()))
        .collect();
    sort_ranks(&mut ranks, limit);
    Ok(ranks)
}

fn page_rank(key: &str, s: &Summary) -> PageRank {
    let (site, page_group) = key.split_once('\u{1f}').unwrap_or(("", key));
    PageRank {
        site: site.to_string(),
        page_group: page_group.to_string(),
        count: s.count,
        p75: s.p75,
        good: s.good,
        poor: s.poor,
    }
}

pub(crate) fn sort_ranks(ranks: &mut Vec<PageRank>, limit: usize) {
    ranks.sort_by(|a, b| {
        b.p75
            .unwrap_or(0.0)
            .total_cmp(&a.p75.unwrap_or(0.0))
            .then_with(|| a.page_group.cmp(&b.page_group))
    });
    ranks.truncate(limit);
}

/// Recent probe runs, newest first.
pub fn recent_runs(
    conn: &Connection,
    flow: Option<&str>,
    location: Option<&str>,
    outcome: Option<&str>,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    let mut sql = String::from("SELECT document FROM runs WHERE 1 = 1");
    let mut params: Vec<Value> = Vec::new();
    for (column, value) in [("flow", flow), ("location", location), ("outcome", outcome)] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            params.push(Value::Text(v.to_string()));
        }
    }
    if let Some(since) = since_ms {
        sql.push_str(" AND started_at_ms >= ?");
        params.push(Value::Integer(since));
    }
    sql.push_str(" ORDER BY started_at_ms DESC, run_id DESC LIMIT ?");
    params.push(Value::Integer(limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let docs = stmt
        .query_map(params_from_iter(params), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    docs.iter()
        .map(|d| {
            serde_json::from_str(d)
                .map_err(|e| StoreError::Corrupt(format!("stored run is unreadable: {e}")))
        })
        .collect()
}

/// Counts for tests and operators: raw samples and runs stored.
pub fn counts(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let samples: i64 = conn.query_row(
        "SELECT coalesce(sum((lcp IS NOT NULL) + (cls IS NOT NULL) + (inp IS NOT NULL)
                             + (fcp IS NOT NULL) + (ttfb IS NOT NULL) + (tbt IS NOT NULL)), 0)
         FROM measurements",
        [],
        |r| r.get(0),
    )?;
    let runs: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
    Ok((samples as u64, runs as u64))
}

/// An artifact's content type and bytes.
pub fn artifact(
    conn: &Connection,
    run_id: &str,
    name: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row(
            "SELECT content_type, content FROM artifacts WHERE run_id = ?1 AND name = ?2",
            [run_id, name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}
