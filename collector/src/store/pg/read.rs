//! Reads: percentiles and rating shares, series, breakdowns, top pages and
//! attribution, and the dashboard's filter choices, with the results the
//! SQLite backend gives (`store::query`, `store::attribution`, `store::views`
//! are the specification, and their pure parts are reused here).
//!
//! Short ranges (up to [`RAW_RANGE_MS`]) read raw rows and are exact. Longer
//! ranges read the rollups of every hour that overlaps the range, as SQLite
//! does: the daily rows for the whole UTC days inside it (the sums of the
//! same hours) and the hourly rows at its edges, unless time buckets that
//! do not fall on UTC days need every hour placed. The
//! histogram of a rollup is a row per bucket here: a read sums the counts per
//! bucket in SQL (`GROUP BY` the bucket, and the time bucket or group the
//! caller splits by) and feeds the sums to [`crate::histogram::Accumulator`],
//! the one codec both backends take quantiles with.
//!
//! A filter is equality on the dimensions of `series`, joined to the rows
//! read; every value is a parameter.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use vitalsign_core::metric::Metric;

use super::PgStore;
use crate::histogram::{Accumulator, Histogram};
use crate::store::StoreError;
use crate::store::attribution::{
    AttributionKind, AttributionRank, OVERFLOW, OVERFLOW_LABEL, attribution_kinds_for,
};
use crate::store::measurements::value_column;
use crate::store::query::{
    Breakdown, Filter, Merged, PageRank, RAW_RANGE_MS, SeriesPoint, Summary, rollup_buckets,
    sort_ranks, summary_from_raw,
};
use crate::store::views::Dimensions;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A statement's text and its parameters, numbered as they are bound.
#[derive(Default)]
pub(super) struct Bound {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Bound {
    /// Bind `value`; its placeholder (`$n`).
    pub(super) fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    /// ` AND {alias}.col = $n` for every dimension `filter` sets.
    fn filter(&mut self, filter: &Filter, alias: &str) -> String {
        let mut sql = String::new();
        for (column, value) in [
            ("site", &filter.site),
            ("page_group", &filter.page_group),
            ("device", &filter.device),
            ("source", &filter.source),
            ("flow", &filter.flow),
            ("step", &filter.step),
            ("location", &filter.location),
        ] {
            if let Some(v) = value {
                let at = self.bind(v.clone());
                sql.push_str(&format!(" AND {alias}.{column} = {at}"));
            }
        }
        sql
    }
}

/// An hour or day number as the `integer` rollup columns hold it (hours since the
/// epoch fit an i32 until the year 246,000; the clamp keeps a hostile range
/// from failing the bind).
fn hour_param(hour: i64) -> i32 {
    hour.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

// ---------------------------------------------------------------------------
// Raw rows

/// The raw rows of `metric` in `[from_ms, to_ms)` matching `filter` (and
/// `rum_only`: page views alone), as (ts_ms, value, device, label), where
/// `label` is the expression `label_sql` over the series (`s.`) columns.
async fn raw_rows(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    label_sql: &str,
    rum_only: bool,
) -> Result<Vec<(i64, f64, String, String)>, StoreError> {
    let value = value_column(metric);
    let mut b = Bound::default();
    let (from, to) = (b.bind(from_ms), b.bind(to_ms));
    let clause = b.filter(filter, "s");
    let rum = if rum_only {
        " AND s.source = 'rum'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT m.ts_ms, m.{value}, s.device, {label_sql}
         FROM measurements AS m JOIN series AS s ON s.id = m.series
         WHERE m.ts_ms >= {from} AND m.ts_ms < {to} AND m.{value} IS NOT NULL{clause}{rum}"
    );
    let rows = c.query(&sql, &b.refs()).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

pub(super) async fn raw_values_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Vec<f64>, StoreError> {
    let value = value_column(metric);
    let mut b = Bound::default();
    let (from, to) = (b.bind(from_ms), b.bind(to_ms));
    let clause = b.filter(filter, "s");
    // The join only when a filter needs the series' dimensions.
    let sql = if clause.is_empty() {
        format!(
            "SELECT m.{value} FROM measurements AS m
             WHERE m.ts_ms >= {from} AND m.ts_ms < {to} AND m.{value} IS NOT NULL"
        )
    } else {
        format!(
            "SELECT m.{value} FROM measurements AS m JOIN series AS s ON s.id = m.series
             WHERE m.ts_ms >= {from} AND m.ts_ms < {to} AND m.{value} IS NOT NULL{clause}"
        )
    };
    let rows = c.query(&sql, &b.refs()).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

// ---------------------------------------------------------------------------
// Rollups

/// How rollup rows are split: by a label over the series' dimensions, and
/// by time bucket.
struct Split<'a> {
    /// An SQL expression over `s.` (series) columns, or `''`: code, never
    /// user input.
    label: &'a str,
    /// (origin, width) of time buckets in ms: an hour `h` counts in the bucket
    /// starting at `origin + ⌊(h·3600000 − origin) / width⌋·width`.
    buckets: Option<(i64, i64)>,
}

/// What one grouped row of the rollups adds to a [`Merged`].
#[derive(Clone, Copy)]
enum Part {
    /// Rating counts (summed over the group's rollup rows).
    Ratings { good: u64, ni: u64, poor: u64 },
    /// Values in one histogram bucket.
    Bucket { bucket: i16, count: u64 },
}

impl Part {
    fn add_to(self, m: &mut Merged) {
        match self {
            Part::Ratings { good, ni, poor } => {
                m.good += good;
                m.ni += ni;
                m.poor += poor;
            }
            Part::Bucket { bucket, count } => m.histogram.add_bucket(bucket, count),
        }
    }
}

/// One rollup grain's tables: counts, histogram buckets, their time column
/// and the length of its unit.
#[derive(Clone, Copy)]
struct Grain {
    counts: &'static str,
    buckets: &'static str,
    time: &'static str,
    unit_ms: i64,
}

const HOURS: Grain = Grain {
    counts: "rollups",
    buckets: "rollup_buckets",
    time: "hour",
    unit_ms: HOUR_MS,
};

const DAYS: Grain = Grain {
    counts: "rollups_daily",
    buckets: "rollup_buckets_daily",
    time: "day",
    unit_ms: DAY_MS,
};

/// Visit the rollups of `metric` of every hour overlapping `[from_ms,
/// to_ms)` that match `filter`, grouped per (label, time bucket) in SQL: for
/// each group first its rating counts (every rollup row counts, one whose
/// samples were all re-reported away too, as in SQLite), then its histogram
/// a bucket at a time. A group may be visited more than once (its hours at
/// the range's edges, then its whole days): callers add what they are given.
///
/// Whole UTC days inside the range come from the daily tables (the sums of
/// the same hours, ~24x fewer rows), the partial days at its edges from the
/// hourly ones, where SQLite reads `Grain::Days`: when no time buckets are
/// asked for, or when they start and end on UTC days, so that each daily row
/// lies wholly inside one bucket. Any other bucketing reads hours alone.
async fn for_each_rollup(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    split: &Split<'_>,
    mut visit: impl FnMut(&str, i64, Part),
) -> Result<(), StoreError> {
    let from_hour = from_ms.div_euclid(HOUR_MS);
    let to_hour = (to_ms + HOUR_MS - 1).div_euclid(HOUR_MS);
    if from_hour >= to_hour {
        return Ok(());
    }
    let (first_day, end_day) = ((from_hour + 23).div_euclid(24), to_hour.div_euclid(24));
    let days_fit = match split.buckets {
        None => true,
        Some((origin, width)) => origin.rem_euclid(DAY_MS) == 0 && width % DAY_MS == 0,
    };
    // (grain, from, to) in the grain's units, as SQLite's `query::for_each_rollup`.
    let ranges = if days_fit && first_day < end_day {
        vec![
            (HOURS, from_hour, first_day * 24),
            (DAYS, first_day, end_day),
            (HOURS, end_day * 24, to_hour),
        ]
    } else {
        vec![(HOURS, from_hour, to_hour)]
    };
    // How many series the filter keeps, of how many.
    let mut narrow = false;
    if *filter != Filter::default() {
        let mut b = Bound::default();
        let clause = b.filter(filter, "s");
        let sql = format!("SELECT count(*) FILTER (WHERE true{clause}), count(*) FROM series AS s");
        let row = c.query_one(&sql, &b.refs()).await?;
        let (kept, all): (i64, i64) = (row.get(0), row.get(1));
        if kept == 0 {
            return Ok(());
        }
        narrow = kept * 16 <= all;
    }
    // The same WHERE and grouping for both tables of a grain. `t` is the
    // table read; `d` the one the range and filter select on. A filter that
    // keeps at most 1/16 of the series (a page group, a site of many) has a
    // bucket read go through the counts table and its series index
    // (`rollups_series`, `rollups_daily_series`) to the buckets of the rows
    // selected (a probe of the buckets table's primary key each) instead of
    // scanning every bucket row of the range; a wider one (`source = 'rum'`,
    // one site of three) scans, which measured faster (772 against 1,056 ms
    // for the 30-day top pages over 2 M hourly samples).
    let statement = |grain: Grain, from: i64, to: i64, columns: &str, bucket: bool| {
        let Grain {
            counts,
            buckets,
            time: unit,
            unit_ms,
        } = grain;
        let table = if bucket { buckets } else { counts };
        let mut b = Bound::default();
        let m = b.bind(metric.as_str());
        let (from, to) = (b.bind(hour_param(from)), b.bind(hour_param(to)));
        let clause = b.filter(filter, "s");
        let through_counts = bucket && narrow;
        let d = if through_counts { "d" } else { "t" };
        let time = match split.buckets {
            Some((origin, width)) => {
                let (o, w) = (b.bind(origin), b.bind(width));
                let at = format!("({d}.{unit}::bigint * {unit_ms} - {o})");
                // Floored, as div_euclid: the first hour may start before `origin`.
                format!("{o} + {at} - mod(mod({at}, {w}) + {w}, {w})")
            }
            None => "0::bigint".to_string(),
        };
        let mut from_sql = if through_counts {
            format!(
                "{counts} AS d JOIN {table} AS t
                   ON t.metric = d.metric AND t.{unit} = d.{unit} AND t.series = d.series"
            )
        } else {
            format!("{table} AS t")
        };
        if !clause.is_empty() || split.label != "''" {
            from_sql.push_str(&format!(" JOIN series AS s ON s.id = {d}.series"));
        }
        let (bucket_column, bucket_group) = if bucket {
            (", t.bucket", ", 3")
        } else {
            ("", "")
        };
        let sql = format!(
            "SELECT {label}, {time}{bucket_column}, {columns}
             FROM {from_sql}
             WHERE {d}.metric = {m} AND {d}.{unit} >= {from} AND {d}.{unit} < {to}{clause}
             GROUP BY 1, 2{bucket_group}",
            label = split.label,
        );
        (sql, b)
    };
    for (grain, from, to) in ranges {
        if from >= to {
            continue;
        }
        let (sql, b) = statement(
            grain,
            from,
            to,
            "sum(greatest(t.good, 0))::bigint, sum(greatest(t.needs_improvement, 0))::bigint,
             sum(greatest(t.poor, 0))::bigint",
            false,
        );
        for r in c.query(&sql, &b.refs()).await? {
            let part = Part::Ratings {
                good: r.get::<_, i64>(2) as u64,
                ni: r.get::<_, i64>(3) as u64,
                poor: r.get::<_, i64>(4) as u64,
            };
            visit(r.get(0), r.get(1), part);
        }
        let (sql, b) = statement(grain, from, to, "sum(t.count)::bigint", true);
        for r in c.query(&sql, &b.refs()).await? {
            let count: i64 = r.get(3);
            if count > 0 {
                let part = Part::Bucket {
                    bucket: r.get(2),
                    count: count as u64,
                };
                visit(r.get(0), r.get(1), part);
            }
        }
    }
    Ok(())
}

/// [`for_each_rollup`] merged per (label, time bucket).
async fn rollups(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    split: &Split<'_>,
) -> Result<BTreeMap<(String, i64), Merged>, StoreError> {
    let mut merged: BTreeMap<(String, i64), Merged> = BTreeMap::new();
    for_each_rollup(
        c,
        metric,
        from_ms,
        to_ms,
        filter,
        split,
        |label, at, part| part.add_to(merged.entry((label.to_string(), at)).or_default()),
    )
    .await?;
    Ok(merged)
}

// ---------------------------------------------------------------------------
// Queries

pub(super) async fn summary_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Summary, StoreError> {
    if to_ms - from_ms <= RAW_RANGE_MS {
        return Ok(summary_from_raw(
            metric,
            raw_values_on(c, metric, from_ms, to_ms, filter).await?,
        ));
    }
    let split = Split {
        label: "''",
        buckets: None,
    };
    let merged = rollups(c, metric, from_ms, to_ms, filter, &split).await?;
    Ok(merged.into_values().next().unwrap_or_default().summary())
}

pub(super) async fn series_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    filter: &Filter,
) -> Result<Vec<SeriesPoint>, StoreError> {
    if bucket_ms <= 0 {
        return Err(StoreError::Invalid(format!(
            "a series bucket must be longer than 0 ms (got {bucket_ms})"
        )));
    }
    if to_ms - from_ms <= RAW_RANGE_MS || bucket_ms < HOUR_MS || bucket_ms % HOUR_MS != 0 {
        let bucket_of = |ts: i64| from_ms + (ts - from_ms).div_euclid(bucket_ms) * bucket_ms;
        let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (ts, value, _, _) in raw_rows(c, metric, from_ms, to_ms, filter, "''", false).await? {
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
    let split = Split {
        label: "''",
        buckets: Some((rollup_buckets(from_ms, bucket_ms).1, bucket_ms)),
    };
    Ok(rollups(c, metric, from_ms, to_ms, filter, &split)
        .await?
        .into_iter()
        .map(|((_, start_ms), m)| SeriesPoint {
            start_ms,
            summary: m.summary(),
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn breakdown_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
) -> Result<Breakdown, StoreError> {
    let mut all = breakdowns_on(
        c, metric, from_ms, to_ms, bucket_ms, previous, filter, false,
    )
    .await?;
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

/// Raw values of one site, split as a breakdown shows them.
#[derive(Default)]
struct RawSite {
    current: Vec<f64>,
    before: Vec<f64>,
    buckets: BTreeMap<i64, Vec<f64>>,
    devices: BTreeMap<String, Vec<f64>>,
}

/// Merged rollups of one site, split as a breakdown shows them.
#[derive(Default)]
struct RolledSite {
    current: Merged,
    before: Merged,
    buckets: BTreeMap<i64, Merged>,
    devices: BTreeMap<String, Merged>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn breakdowns_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
    by_site: bool,
) -> Result<Vec<(String, Breakdown)>, StoreError> {
    if bucket_ms <= 0 {
        return Err(StoreError::Invalid(format!(
            "a breakdown bucket must be longer than 0 ms (got {bucket_ms})"
        )));
    }
    let start_ms = if previous {
        from_ms - (to_ms - from_ms)
    } else {
        from_ms
    };
    let site = if by_site { "s.site" } else { "''" };
    if to_ms - from_ms <= RAW_RANGE_MS || bucket_ms < HOUR_MS || bucket_ms % HOUR_MS != 0 {
        let bucket_of = |ts: i64| from_ms + (ts - from_ms).div_euclid(bucket_ms) * bucket_ms;
        let mut sites: BTreeMap<String, RawSite> = BTreeMap::new();
        for (ts, value, device, name) in
            raw_rows(c, metric, start_ms, to_ms, filter, site, false).await?
        {
            let entry = sites.entry(name).or_default();
            if ts < from_ms {
                entry.before.push(value);
                continue;
            }
            entry.current.push(value);
            entry.buckets.entry(bucket_of(ts)).or_default().push(value);
            entry.devices.entry(device).or_default().push(value);
        }
        return Ok(sites
            .into_iter()
            .map(|(name, site)| {
                let mut histogram = Histogram::default();
                for v in &site.current {
                    histogram.add(*v, 1);
                }
                let mut distribution = Accumulator::default();
                distribution.add_encoded(&histogram.encode());
                let b = Breakdown {
                    current: summary_from_raw(metric, site.current),
                    previous: previous.then(|| summary_from_raw(metric, site.before)),
                    points: site
                        .buckets
                        .into_iter()
                        .map(|(start_ms, values)| SeriesPoint {
                            start_ms,
                            summary: summary_from_raw(metric, values),
                        })
                        .collect(),
                    distribution: distribution.buckets(),
                    devices: site
                        .devices
                        .into_iter()
                        .map(|(d, values)| (d, summary_from_raw(metric, values)))
                        .collect(),
                };
                (name, b)
            })
            .collect());
    }
    let mut sites: BTreeMap<String, RolledSite> = BTreeMap::new();
    if previous {
        let split = Split {
            label: site,
            buckets: None,
        };
        for ((name, _), m) in rollups(c, metric, start_ms, from_ms, filter, &split).await? {
            sites.entry(name).or_default().before = m;
        }
    }
    let (_, origin) = rollup_buckets(from_ms, bucket_ms);
    let label = format!("{site} || chr(31) || s.device");
    let split = Split {
        label: &label,
        buckets: Some((origin, bucket_ms)),
    };
    for_each_rollup(
        c,
        metric,
        from_ms,
        to_ms,
        filter,
        &split,
        |label, at, part| {
            let (name, device) = label.split_once('\u{1f}').unwrap_or(("", label));
            if !sites.contains_key(name) {
                sites.insert(name.to_string(), RolledSite::default());
            }
            let site = sites.get_mut(name).expect("inserted above");
            part.add_to(&mut site.current);
            part.add_to(site.buckets.entry(at).or_default());
            match site.devices.get_mut(device) {
                Some(m) => part.add_to(m),
                None => part.add_to(site.devices.entry(device.to_string()).or_default()),
            }
        },
    )
    .await?;
    Ok(sites
        .into_iter()
        .map(|(name, site)| {
            let b = Breakdown {
                current: site.current.summary(),
                previous: previous.then(|| site.before.summary()),
                points: site
                    .buckets
                    .into_iter()
                    .map(|(start_ms, m)| SeriesPoint {
                        start_ms,
                        summary: m.summary(),
                    })
                    .collect(),
                distribution: site.current.histogram.buckets(),
                devices: site
                    .devices
                    .into_iter()
                    .map(|(d, m)| (d, m.summary()))
                    .collect(),
            };
            (name, b)
        })
        .collect())
}

pub(super) async fn top_pages_on(
    c: &Client,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<PageRank>, StoreError> {
    let label = "s.site || chr(31) || s.page_group";
    let page_rank = |key: &str, summary: &Summary| {
        let (site, page_group) = key.split_once('\u{1f}').unwrap_or(("", key));
        PageRank {
            site: site.to_string(),
            page_group: page_group.to_string(),
            count: summary.count,
            p75: summary.p75,
            good: summary.good,
            poor: summary.poor,
        }
    };
    let mut ranks: Vec<PageRank> = if to_ms - from_ms <= RAW_RANGE_MS {
        let mut groups: HashMap<String, Vec<f64>> = HashMap::new();
        for (_, value, _, key) in raw_rows(c, metric, from_ms, to_ms, filter, label, true).await? {
            groups.entry(key).or_default().push(value);
        }
        groups
            .into_iter()
            .map(|(key, values)| page_rank(&key, &summary_from_raw(metric, values)))
            .collect()
    } else {
        let mut filter = filter.clone();
        filter.source.get_or_insert_with(|| "rum".to_string());
        let split = Split {
            label,
            buckets: None,
        };
        rollups(c, metric, from_ms, to_ms, &filter, &split)
            .await?
            .into_iter()
            .map(|((key, _), m)| page_rank(&key, &m.summary()))
            .collect()
    };
    sort_ranks(&mut ranks, limit);
    Ok(ranks)
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn top_attribution_on(
    c: &Client,
    metric: Metric,
    kind: AttributionKind,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<AttributionRank>, StoreError> {
    // Attribution comes from RUM beacons alone (as in `store::attribution`).
    let synthetic_only = filter.source.as_deref().is_some_and(|s| s != "rum")
        || [&filter.flow, &filter.step, &filter.location]
            .iter()
            .any(|d| d.as_deref().is_some_and(|v| !v.is_empty()));
    if synthetic_only || limit == 0 || !attribution_kinds_for(metric).contains(&kind) {
        return Ok(Vec::new());
    }
    let mut b = Bound::default();
    let m = b.bind(metric.as_str());
    let k = b.bind(kind.as_str());
    let from = b.bind(hour_param(from_ms.div_euclid(HOUR_MS)));
    let to = b.bind(hour_param((to_ms + HOUR_MS - 1).div_euclid(HOUR_MS)));
    let mut clause = String::new();
    for (column, value) in [
        ("site", &filter.site),
        ("page_group", &filter.page_group),
        ("device", &filter.device),
    ] {
        if let Some(v) = value {
            let at = b.bind(v.clone());
            clause.push_str(&format!(" AND {column} = {at}"));
        }
    }
    let lim = b.bind(limit.min(i64::MAX as usize) as i64);
    let overflow = b.bind(OVERFLOW as i32);
    let overflow_label = b.bind(OVERFLOW_LABEL);
    // Aggregate per item first, then look up only the texts of the items
    // kept; the window total is taken before LIMIT, so shares are of every
    // item. Labels compare byte by byte, as SQLite's do.
    let sql = format!(
        "SELECT (CASE WHEN g.item = {overflow} THEN {overflow_label}::text
                      ELSE coalesce(t.text, '') END) COLLATE \"C\" AS label,
                g.n, sum(g.n) OVER ()::bigint, g.value_sum, g.split_n,
                g.input_delay, g.processing, g.presentation
         FROM (SELECT item, sum(count)::bigint AS n, sum(value_sum) AS value_sum,
                      sum(split_count)::bigint AS split_n, sum(input_delay_sum) AS input_delay,
                      sum(processing_sum) AS processing, sum(presentation_sum) AS presentation
               FROM attribution_rollups
               WHERE metric = {m} AND kind = {k} AND hour >= {from} AND hour < {to}{clause}
               GROUP BY item HAVING sum(count) > 0) AS g
         LEFT JOIN attribution_texts AS t ON t.id = g.item
         ORDER BY g.n DESC, label ASC
         LIMIT {lim}"
    );
    Ok(c.query(&sql, &b.refs())
        .await?
        .iter()
        .map(|r| {
            let count: i64 = r.get(1);
            let total: i64 = r.get(2);
            let value_sum: f64 = r.get(3);
            let split_count: i64 = r.get(4);
            let split_mean = |sum: f64| (split_count > 0).then(|| sum / split_count as f64);
            AttributionRank {
                item: r.get(0),
                count: count as u64,
                share: count as f64 / total.max(1) as f64,
                mean_value: Some(value_sum / count as f64),
                mean_input_delay: split_mean(r.get(5)),
                mean_processing: split_mean(r.get(6)),
                mean_presentation: split_mean(r.get(7)),
            }
        })
        .collect())
}

/// Most values of each dimension offered (SQLite's limit per walk).
const MOST_CHOICES: i64 = 500;

/// Sites seen in the LCP or FCP rollups (field data always has one of them),
/// flows and locations seen in runs. Each list walks an index a value at a
/// time (a recursive CTE: PostgreSQL 15 has no skip scan), so its cost grows
/// with the number of distinct values, not the rows behind them.
pub(super) async fn dimensions_on(c: &Client) -> Result<Dimensions, StoreError> {
    // The series of each site, then whether any has an LCP or FCP rollup:
    // one index probe per series (`rollups_series`), none per rollup row.
    let site_rows = c
        .query(
            "SELECT site FROM (
                 SELECT DISTINCT s.site COLLATE \"C\" AS site FROM series AS s
                 WHERE EXISTS (SELECT 1 FROM rollups AS r
                               WHERE r.metric = $1 AND r.series = s.id)
                 ORDER BY 1 LIMIT $3) AS lcp
             UNION
             SELECT site FROM (
                 SELECT DISTINCT s.site COLLATE \"C\" AS site FROM series AS s
                 WHERE EXISTS (SELECT 1 FROM rollups AS r
                               WHERE r.metric = $2 AND r.series = s.id)
                 ORDER BY 1 LIMIT $3) AS fcp",
            &[&Metric::Lcp.as_str(), &Metric::Fcp.as_str(), &MOST_CHOICES],
        )
        .await?;
    let mut sites: Vec<String> = site_rows.iter().map(|r| r.get(0)).collect();
    sites.sort();
    let mut flows: Vec<String> = c
        .query(
            "WITH RECURSIVE f AS (
                 SELECT min(flow) AS flow FROM runs
                 UNION ALL
                 SELECT (SELECT min(flow) FROM runs WHERE flow > f.flow) FROM f
                 WHERE f.flow IS NOT NULL
             )
             SELECT flow FROM f WHERE flow IS NOT NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    flows.sort();
    flows.truncate(MOST_CHOICES as usize);
    let mut locations: Vec<String> = Vec::new();
    // The locations of the flows offered.
    for (flow, location) in super::runs::pairs(c).await? {
        if flows.binary_search(&flow).is_ok() && !locations.contains(&location) {
            locations.push(location);
        }
    }
    locations.sort();
    Ok(Dimensions {
        sites,
        flows,
        locations,
    })
}

// ---------------------------------------------------------------------------
// The backend's entry points: a pooled connection each.

pub async fn summary(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Summary, StoreError> {
    summary_on(&*s.client().await?, metric, from_ms, to_ms, filter).await
}

pub async fn raw_values(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
) -> Result<Vec<f64>, StoreError> {
    raw_values_on(&*s.client().await?, metric, from_ms, to_ms, filter).await
}

pub async fn series(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    filter: &Filter,
) -> Result<Vec<SeriesPoint>, StoreError> {
    series_on(
        &*s.client().await?,
        metric,
        from_ms,
        to_ms,
        bucket_ms,
        filter,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn breakdown(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
) -> Result<Breakdown, StoreError> {
    let client = s.client().await?;
    breakdown_on(&client, metric, from_ms, to_ms, bucket_ms, previous, filter).await
}

#[allow(clippy::too_many_arguments)]
pub async fn breakdowns(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    previous: bool,
    filter: &Filter,
    by_site: bool,
) -> Result<Vec<(String, Breakdown)>, StoreError> {
    let client = s.client().await?;
    breakdowns_on(
        &client, metric, from_ms, to_ms, bucket_ms, previous, filter, by_site,
    )
    .await
}

pub async fn top_pages(
    s: &PgStore,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<PageRank>, StoreError> {
    top_pages_on(&*s.client().await?, metric, from_ms, to_ms, filter, limit).await
}

#[allow(clippy::too_many_arguments)]
pub async fn top_attribution(
    s: &PgStore,
    metric: Metric,
    kind: AttributionKind,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<AttributionRank>, StoreError> {
    let client = s.client().await?;
    top_attribution_on(&client, metric, kind, from_ms, to_ms, filter, limit).await
}

pub async fn dimensions(s: &PgStore) -> Result<Dimensions, StoreError> {
    dimensions_on(&*s.client().await?).await
}

/// The same page views stored by the SQLite backend (its own writer) and
/// written here as rows the way the schema holds them (raw rows, rollups
/// with a row per histogram bucket from [`Histogram`]): every read must
/// answer the same. The PostgreSQL writer is another area's; the
/// conformance suite (`tests/storage`) runs the same reads over it.
#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;

    use tokio_postgres::{Client, NoTls};
    use vitalsign_core::metric::{Metric, Rating};
    use vitalsign_core::wire::Beacon;

    use super::*;
    use crate::histogram::{Histogram, pairs};
    use crate::store::query::Filter;
    use crate::store::storage::{NewPageView, Storage};
    use crate::store::{SqliteStore, pg::schema};

    pub(in crate::store::pg) async fn connect(url: &str) -> Client {
        let (mut client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        schema::migrate(&mut client).await.unwrap();
        client
    }

    /// Day 20,415 (UTC midnight), where the data starts.
    const D0: i64 = 20_415 * DAY_MS;

    struct View {
        id: String,
        site: &'static str,
        page_group: &'static str,
        device: &'static str,
        at_ms: i64,
        lcp: f64,
        cls: Option<f64>,
    }

    fn views() -> Vec<View> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 33
        };
        (0..400)
            .map(|i| {
                let r = next();
                View {
                    id: format!("pv-{i}"),
                    site: ["shop", "shop", "blog"][(r % 3) as usize],
                    page_group: ["/", "/a", "/b", "/a"][(r / 3 % 4) as usize],
                    device: ["mobile", "desktop", "tablet"][(r / 12 % 3) as usize],
                    at_ms: D0 + (next() % (3 * DAY_MS as u64)) as i64,
                    lcp: 300.0 + (next() % 6000) as f64,
                    cls: (r % 3 != 0).then(|| (next() % 30) as f64 / 100.0),
                }
            })
            .collect()
    }

    async fn sqlite(views: &[View]) -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("same.db")).unwrap();
        let page_views = views
            .iter()
            .map(|v| {
                let mut reports = vec![serde_json::json!({"metric": "LCP", "value": v.lcp,
                    "rating": Metric::Lcp.rate(v.lcp).as_str()})];
                if let Some(cls) = v.cls {
                    reports.push(serde_json::json!({"metric": "CLS", "value": cls,
                        "rating": Metric::Cls.rate(cls).as_str()}));
                }
                let beacon: Beacon = serde_json::from_value(serde_json::json!({
                    "schema_version": 1, "site": v.site, "page_view_id": v.id,
                    "url": "https://x.example/", "navigation_type": "navigate",
                    "device": v.device, "snippet_version": "0.1.0", "reports": reports
                }))
                .unwrap();
                NewPageView {
                    beacon,
                    page_group: v.page_group.into(),
                    received_ms: v.at_ms,
                }
            })
            .collect();
        store.append_page_views(page_views).await.unwrap();
        (store, dir)
    }

    /// The rows the schema holds for `views`.
    async fn write_rows(c: &Client, views: &[View]) {
        for day in D0 / DAY_MS - 2..D0 / DAY_MS + 5 {
            c.batch_execute(&format!(
                "CREATE TABLE {} PARTITION OF measurements FOR VALUES FROM ({}) TO ({})",
                schema::partition_name(day),
                day * DAY_MS,
                (day + 1) * DAY_MS
            ))
            .await
            .unwrap();
        }
        let mut series: HashMap<(&str, &str, &str), i32> = HashMap::new();
        let mut rollups: BTreeMap<(Metric, i32, i32), Vec<f64>> = BTreeMap::new();
        for v in views {
            let next = series.len() as i32 + 1;
            let id = *series
                .entry((v.site, v.page_group, v.device))
                .or_insert(next);
            if id == next {
                c.execute(
                    "INSERT INTO series (id, site, page_group, device, source, flow, step, location)
                     VALUES ($1, $2, $3, $4, 'rum', '', '', '')",
                    &[&id, &v.site, &v.page_group, &v.device],
                )
                .await
                .unwrap();
            }
            c.execute(
                "INSERT INTO measurements (ts_ms, series, origin_id, step_index, lcp, cls)
                 VALUES ($1, $2, $3, -1, $4, $5)",
                &[&v.at_ms, &id, &v.id, &v.lcp, &v.cls],
            )
            .await
            .unwrap();
            let hour = (v.at_ms / HOUR_MS) as i32;
            rollups
                .entry((Metric::Lcp, hour, id))
                .or_default()
                .push(v.lcp);
            if let Some(cls) = v.cls {
                rollups
                    .entry((Metric::Cls, hour, id))
                    .or_default()
                    .push(cls);
            }
        }
        // The daily tables hold the same samples per UTC day, as the writer
        // merges its deltas.
        let mut daily: BTreeMap<(Metric, i32, i32), Vec<f64>> = BTreeMap::new();
        for ((metric, hour, id), values) in &rollups {
            daily
                .entry((*metric, hour.div_euclid(24), *id))
                .or_default()
                .extend(values);
        }
        for (rows, counts, buckets, unit) in [
            (rollups, "rollups", "rollup_buckets", "hour"),
            (daily, "rollups_daily", "rollup_buckets_daily", "day"),
        ] {
            for ((metric, at, id), values) in rows {
                let mut h = Histogram::default();
                let mut ratings = [0i64; 3];
                for v in &values {
                    h.add(*v, 1);
                    ratings[match metric.rate(*v) {
                        Rating::Good => 0,
                        Rating::NeedsImprovement => 1,
                        Rating::Poor => 2,
                    }] += 1;
                }
                c.execute(
                    &format!(
                        "INSERT INTO {counts} (metric, {unit}, series, count, good, needs_improvement, poor)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ),
                    &[
                        &metric.as_str(),
                        &at,
                        &id,
                        &(values.len() as i64),
                        &ratings[0],
                        &ratings[1],
                        &ratings[2],
                    ],
                )
                .await
                .unwrap();
                for (bucket, count) in pairs(&h.encode()) {
                    c.execute(
                        &format!(
                            "INSERT INTO {buckets} (metric, {unit}, series, bucket, count)
                             VALUES ($1, $2, $3, $4, $5)"
                        ),
                        &[&metric.as_str(), &at, &id, &bucket, &i64::from(count)],
                    )
                    .await
                    .unwrap();
                }
            }
        }
    }

    fn filters() -> Vec<Filter> {
        let f = |site: Option<&str>, group: Option<&str>, device: Option<&str>| Filter {
            site: site.map(Into::into),
            page_group: group.map(Into::into),
            device: device.map(Into::into),
            ..Filter::default()
        };
        vec![
            Filter::default(),
            f(Some("shop"), None, None),
            f(Some("blog"), None, Some("mobile")),
            f(None, Some("/a"), None),
            f(Some("shop"), Some("/b"), Some("tablet")),
            f(Some("nowhere"), None, None),
            Filter {
                source: Some("synthetic".into()),
                ..Filter::default()
            },
        ]
    }

    /// (from, to, bucket): raw and rollup ranges, hour-aligned or not, on
    /// day boundaries or not; daily buckets from midnight and from mid-day
    /// (a series then places every hour, a breakdown floors its buckets to
    /// midnight and takes whole days from the daily rows, as SQLite does).
    const RANGES: [(i64, i64, i64); 7] = [
        (D0, D0 + HOUR_MS, 600_000),
        (D0 + 1_800_000, D0 + 5 * HOUR_MS, HOUR_MS),
        (D0 + 8_100_000, D0 + 2 * DAY_MS + 7 * HOUR_MS, 6 * HOUR_MS),
        (D0 + DAY_MS, D0 + 3 * DAY_MS, DAY_MS),
        (D0 - DAY_MS, D0 + 4 * DAY_MS, DAY_MS),
        (D0 + 8_100_000, D0 + DAY_MS + 8_100_000, HOUR_MS),
        (D0 + 8_100_000, D0 + 3 * DAY_MS - HOUR_MS, DAY_MS),
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_read_answers_as_sqlite_does_over_the_same_page_views() {
        let views = views();
        let (lite, _dir) = sqlite(&views).await;
        let db = vitalsign_test_support::pg::test_db();
        let c = connect(&db.url).await;
        write_rows(&c, &views).await;

        let mut rollup_reads = 0;
        for metric in [Metric::Lcp, Metric::Cls] {
            for filter in filters() {
                for (from, to, bucket) in RANGES {
                    let at = format!("{metric} {from}..{to} by {bucket} {filter:?}");
                    let want = lite.summary(metric, from, to, &filter).await.unwrap();
                    let got = summary_on(&c, metric, from, to, &filter).await.unwrap();
                    assert_eq!(got, want, "summary {at}");
                    rollup_reads += usize::from(got.resolution == "rollup" && got.count > 0);
                    let mut want = lite.raw_values(metric, from, to, &filter).await.unwrap();
                    let mut got = raw_values_on(&c, metric, from, to, &filter).await.unwrap();
                    want.sort_by(f64::total_cmp);
                    got.sort_by(f64::total_cmp);
                    assert_eq!(got, want, "raw values {at}");
                    assert_eq!(
                        series_on(&c, metric, from, to, bucket, &filter)
                            .await
                            .unwrap(),
                        lite.series(metric, from, to, bucket, &filter)
                            .await
                            .unwrap(),
                        "series {at}"
                    );
                    for by_site in [false, true] {
                        assert_eq!(
                            breakdowns_on(&c, metric, from, to, bucket, true, &filter, by_site)
                                .await
                                .unwrap(),
                            lite.breakdowns(metric, from, to, bucket, true, &filter, by_site)
                                .await
                                .unwrap(),
                            "breakdowns (by site: {by_site}) {at}"
                        );
                    }
                    assert_eq!(
                        breakdown_on(&c, metric, from, to, bucket, false, &filter)
                            .await
                            .unwrap(),
                        lite.breakdown(metric, from, to, bucket, false, &filter)
                            .await
                            .unwrap(),
                        "breakdown {at}"
                    );
                    // Ties of p75 and page group (one group on two sites)
                    // come in no set order from either backend.
                    let key = |r: &PageRank| (r.site.clone(), r.page_group.clone());
                    let mut got = top_pages_on(&c, metric, from, to, &filter, 100)
                        .await
                        .unwrap();
                    let mut want = lite
                        .top_pages(metric, from, to, &filter, 100)
                        .await
                        .unwrap();
                    got.sort_by_key(key);
                    want.sort_by_key(key);
                    assert_eq!(got, want, "top pages {at}");
                    let p75s =
                        |ranks: Vec<PageRank>| ranks.into_iter().map(|r| r.p75).collect::<Vec<_>>();
                    assert_eq!(
                        p75s(
                            top_pages_on(&c, metric, from, to, &filter, 3)
                                .await
                                .unwrap()
                        ),
                        p75s(lite.top_pages(metric, from, to, &filter, 3).await.unwrap()),
                        "top 3 pages {at}"
                    );
                }
            }
        }
        assert!(rollup_reads > 20, "the rollups were read: {rollup_reads}");
        let (got, want) = (
            dimensions_on(&c).await.unwrap(),
            lite.dimensions().await.unwrap(),
        );
        assert_eq!(got.sites, ["blog", "shop"]);
        assert_eq!(
            (got.sites, got.flows, got.locations),
            (want.sites, want.flows, want.locations)
        );
    }
}
