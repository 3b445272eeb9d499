//! Attribution kept at ingest, so "why is it slow" can be ranked over 30 days
//! without reading raw rows.
//!
//! What a beacon says about a report (the LCP element and resource, the INP
//! target and its input-delay / processing / presentation split, the CLS
//! source, the page view's navigation and connection type) is stored in two
//! places:
//!
//! - `attribution_texts`: a dictionary of the texts (selectors, URLs and
//!   labels), each bounded in length and given an integer id. The writer
//!   keeps a map of them in memory ([`Dictionary`]), so a selector seen before
//!   costs no SQL; a new one costs one `SELECT` and one `INSERT`.
//! - `attribution_rollups`: per (metric, kind, hour, site, page group, device,
//!   item) a count and sums of the value and of the INP split, so a ranking
//!   shows each item's share and mean split. [`AttributionDeltas`] collects the
//!   changes of a batch in memory and writes each touched row once.
//!
//! Counting: every RUM sample counts once under every kind that applies to its
//! metric ([`attribution_kinds_for`]). A sample is one per page view and metric,
//! so `navigation_type` and `connection` count page views (those that reported
//! that metric), with the metric's mean per navigation or connection type. A
//! report without a part (a text LCP has no resource, a target that left the
//! DOM has no selector) counts under the item `""`, so shares are of all the
//! metric's samples. Each sample row keeps the ids it added; a re-report (CLS
//! and INP grow while the page lives) takes that contribution back and adds
//! its own, so the count moves from the old item to the new one.
//!
//! Bounds: selectors are cut to [`MAX_SELECTOR_LEN`] characters and URLs lose
//! any query string or fragment and are cut to [`MAX_URL_LEN`] (the beacon
//! validation already rejects longer ones; this is the storage's own guard).
//! The beacon endpoint is public, so the dictionary holds at most
//! [`MAX_TEXTS_PER_KIND`] selectors and as many URLs: past that, new texts count
//! under the item `"(other)"`.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::beacon::{EffectiveType, NavigationType, Report};
use vitalsign_core::wire::{Beacon, MAX_SELECTOR_LEN, MAX_URL_LEN};

use super::StoreError;
use super::measurements::SeriesIds;
use super::query::Filter;

const HOUR_MS: i64 = 3_600_000;

/// Most distinct selectors (and, separately, URLs) the dictionary takes.
pub const MAX_TEXTS_PER_KIND: i64 = 100_000;
/// The writer's in-memory dictionary is dropped past this many bytes of text
/// and refilled from SQLite as texts come again.
const MAX_CACHED_BYTES: usize = 8 << 20;

/// Item id of a report that had no such attribution.
const NOT_ATTRIBUTED: i64 = 0;
/// Item id of a text that found the dictionary full.
pub(crate) const OVERFLOW: i64 = -1;
/// Label of [`OVERFLOW`] in rankings.
pub const OVERFLOW_LABEL: &str = "(other)";

/// What an attribution item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionKind {
    /// CSS selector of the LCP element.
    LcpElement,
    /// URL of the LCP image (`""`: a text element).
    LcpResource,
    /// CSS selector of the INP interaction's target.
    InpTarget,
    /// CSS selector of the largest layout-shift source.
    ClsSource,
    /// How the page view started: `navigate`, `reload`, `back-forward`, …
    NavigationType,
    /// `navigator.connection.effectiveType` (`4g`, `3g`, …) or `unknown`.
    Connection,
}

impl AttributionKind {
    pub const ALL: [AttributionKind; 6] = [
        AttributionKind::LcpElement,
        AttributionKind::LcpResource,
        AttributionKind::InpTarget,
        AttributionKind::ClsSource,
        AttributionKind::NavigationType,
        AttributionKind::Connection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttributionKind::LcpElement => "lcp_element",
            AttributionKind::LcpResource => "lcp_resource",
            AttributionKind::InpTarget => "inp_target",
            AttributionKind::ClsSource => "cls_source",
            AttributionKind::NavigationType => "navigation_type",
            AttributionKind::Connection => "connection",
        }
    }

    pub fn parse(name: &str) -> Option<AttributionKind> {
        AttributionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
    }

    /// The dictionary section its texts live in: selectors are shared by the
    /// LCP element, INP target and CLS source.
    fn texts(self) -> TextKind {
        match self {
            AttributionKind::LcpElement
            | AttributionKind::InpTarget
            | AttributionKind::ClsSource => TextKind::Selector,
            AttributionKind::LcpResource => TextKind::Url,
            AttributionKind::NavigationType => TextKind::NavigationType,
            AttributionKind::Connection => TextKind::Connection,
        }
    }
}

impl std::fmt::Display for AttributionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds stored for a metric, in the order a dashboard would show them.
/// TBT is lab only and has none.
pub fn attribution_kinds_for(metric: Metric) -> &'static [AttributionKind] {
    use AttributionKind::*;
    match metric {
        Metric::Lcp => &[LcpElement, LcpResource, NavigationType, Connection],
        Metric::Inp => &[InpTarget, NavigationType, Connection],
        Metric::Cls => &[ClsSource, NavigationType, Connection],
        Metric::Fcp | Metric::Ttfb => &[NavigationType, Connection],
        Metric::Tbt => &[],
    }
}

/// One item of a ranking.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributionRank {
    /// The selector, URL or label; `""` for samples without this attribution,
    /// `"(other)"` for texts that came after the dictionary was full.
    pub item: String,
    /// Samples (one per page view and metric) attributed to the item.
    pub count: u64,
    /// `count` over all of the kind's samples in the range and filter, 0..1.
    pub share: f64,
    /// Mean value of the metric for this item.
    pub mean_value: Option<f64>,
    /// INP only: mean split (ms) over the item's samples that carried one.
    pub mean_input_delay: Option<f64>,
    pub mean_processing: Option<f64>,
    pub mean_presentation: Option<f64>,
}

/// Items of one kind over the whole hours that overlap `[from_ms, to_ms)`,
/// most counted first (then by item), at most `limit`. Reads only the hourly
/// table. Attribution comes from RUM beacons alone: a filter on another
/// source, or on a flow, step or location, matches nothing.
pub fn top_attribution(
    conn: &Connection,
    metric: Metric,
    kind: AttributionKind,
    from_ms: i64,
    to_ms: i64,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<AttributionRank>, StoreError> {
    let synthetic_only = filter.source.as_deref().is_some_and(|s| s != "rum")
        || [&filter.flow, &filter.step, &filter.location]
            .iter()
            .any(|d| d.as_deref().is_some_and(|v| !v.is_empty()));
    if synthetic_only || limit == 0 || !attribution_kinds_for(metric).contains(&kind) {
        return Ok(Vec::new());
    }
    let mut clause = String::new();
    let mut values = vec![
        Value::Text(metric.as_str().to_string()),
        Value::Text(kind.as_str().to_string()),
        Value::Integer(from_ms.div_euclid(HOUR_MS)),
        Value::Integer((to_ms + HOUR_MS - 1).div_euclid(HOUR_MS)),
    ];
    for (column, value) in [
        ("site", &filter.site),
        ("page_group", &filter.page_group),
        ("device", &filter.device),
    ] {
        if let Some(v) = value {
            clause.push_str(&format!(" AND {column} = ?"));
            values.push(Value::Text(v.clone()));
        }
    }
    values.push(Value::Integer(limit.min(i64::MAX as usize) as i64));
    // With a site, the hours are visited one by one (a CTE counting them):
    // the key is (metric, kind, hour, site, …), so each hour is a seek to the
    // site's rows, where a range over the hours walks every site's rows too
    // (a dashboard series of one site over 30 days read ~3x the rows it kept).
    let hours = if filter.site.is_some() {
        "WITH RECURSIVE hours(h) AS (SELECT ?3 WHERE ?3 < ?4 UNION ALL SELECT h + 1 FROM hours WHERE h + 1 < ?4)
         SELECT a.* FROM hours CROSS JOIN attribution_rollups AS a
         WHERE a.metric = ?1 AND a.kind = ?2 AND a.hour = hours.h"
    } else {
        "SELECT * FROM attribution_rollups WHERE metric = ?1 AND kind = ?2 AND hour >= ?3 AND hour < ?4"
    };
    // Aggregate per item first, then look up only the texts of the items kept;
    // the window total is taken before LIMIT, so shares are of every item.
    let sql = format!(
        "SELECT CASE g.item WHEN {OVERFLOW} THEN '{OVERFLOW_LABEL}' ELSE coalesce(t.text, '') END AS label,
                g.n, sum(g.n) OVER (), g.value_sum, g.split_n, g.input_delay, g.processing, g.presentation
         FROM (SELECT item, sum(count) AS n, sum(value_sum) AS value_sum, sum(split_count) AS split_n,
                      sum(input_delay_sum) AS input_delay, sum(processing_sum) AS processing,
                      sum(presentation_sum) AS presentation
               FROM ({hours}) AS r
               WHERE true{clause}
               GROUP BY item HAVING sum(count) > 0) AS g
         LEFT JOIN attribution_texts AS t ON t.id = g.item
         ORDER BY g.n DESC, label ASC
         LIMIT ?"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let ranks = stmt
        .query_map(params_from_iter(values), |r| {
            let count: i64 = r.get(1)?;
            let total: i64 = r.get(2)?;
            let value_sum: f64 = r.get(3)?;
            let split_count: i64 = r.get(4)?;
            let split_mean = |sum: f64| (split_count > 0).then(|| sum / split_count as f64);
            Ok(AttributionRank {
                item: r.get(0)?,
                count: count as u64,
                share: count as f64 / total.max(1) as f64,
                mean_value: Some(value_sum / count as f64),
                mean_input_delay: split_mean(r.get(5)?),
                mean_processing: split_mean(r.get(6)?),
                mean_presentation: split_mean(r.get(7)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ranks)
}

// ---------------------------------------------------------------------------
// Ingest side: used by the writer thread only.

/// A section of the dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum TextKind {
    Selector,
    Url,
    NavigationType,
    Connection,
}

impl TextKind {
    const COUNT: usize = 4;

    fn index(self) -> usize {
        self as usize
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            TextKind::Selector => "selector",
            TextKind::Url => "url",
            TextKind::NavigationType => "navigation_type",
            TextKind::Connection => "connection",
        }
    }

    fn parse(name: &str) -> Option<TextKind> {
        [
            TextKind::Selector,
            TextKind::Url,
            TextKind::NavigationType,
            TextKind::Connection,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// Navigation and connection labels are a fixed handful: never capped.
    pub(super) fn capped(self) -> bool {
        matches!(self, TextKind::Selector | TextKind::Url)
    }
}

/// A report's attribution as the samples row keeps it: dictionary ids.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct StoredAttribution {
    pub navigation: i64,
    pub connection: i64,
    /// The selector: LCP element, INP target or CLS source, by the metric.
    pub target: Option<i64>,
    /// LCP resource URL.
    pub resource: Option<i64>,
    /// INP input delay, processing, presentation (ms), when all three came.
    pub split: Option<[f64; 3]>,
}

impl StoredAttribution {
    fn item(&self, kind: AttributionKind) -> i64 {
        match kind.texts() {
            TextKind::Selector => self.target.unwrap_or(NOT_ATTRIBUTED),
            TextKind::Url => self.resource.unwrap_or(NOT_ATTRIBUTED),
            TextKind::NavigationType => self.navigation,
            TextKind::Connection => self.connection,
        }
    }
}

fn navigation_label(n: NavigationType) -> &'static str {
    // The wire names (serde kebab-case); no wildcard, so a new variant fails to build here.
    match n {
        NavigationType::Navigate => "navigate",
        NavigationType::Reload => "reload",
        NavigationType::BackForward => "back-forward",
        NavigationType::BackForwardCache => "back-forward-cache",
        NavigationType::Prerender => "prerender",
        NavigationType::Restore => "restore",
        NavigationType::Route => "route",
    }
}

fn connection_label(e: Option<EffectiveType>) -> &'static str {
    match e {
        Some(EffectiveType::Slow2g) => "slow-2g",
        Some(EffectiveType::G2) => "2g",
        Some(EffectiveType::G3) => "3g",
        Some(EffectiveType::G4) => "4g",
        None => "unknown",
    }
}

/// At most `max` characters of `s`, cut on a character boundary.
fn truncate_chars(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// A URL as stored: no query string or fragment (they can carry tokens and
/// make every image its own item), bounded in length.
fn normalize_url(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    truncate_chars(&url[..end], MAX_URL_LEN)
}

fn normalize(kind: TextKind, text: &str) -> &str {
    match kind {
        TextKind::Url => normalize_url(text),
        _ => truncate_chars(text, MAX_SELECTOR_LEN),
    }
}

/// The attribution texts one report of a beacon carries, normalised as the
/// dictionary stores them: only the parts its metric keeps. Pure, so both
/// backends turn a report into the same texts and the same stored ids.
pub(super) struct AttributionParts<'a> {
    pub target: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub navigation: &'static str,
    pub connection: &'static str,
    pub split: Option<[f64; 3]>,
}

impl<'a> AttributionParts<'a> {
    pub(super) fn of(beacon: &'a Beacon, report: &'a Report) -> AttributionParts<'a> {
        let a = &report.attribution;
        let kinds = attribution_kinds_for(report.metric);
        let wants = |t: TextKind| kinds.iter().any(|k| k.texts() == t);
        AttributionParts {
            target: a
                .target
                .as_deref()
                .filter(|_| wants(TextKind::Selector))
                .map(|t| normalize(TextKind::Selector, t)),
            resource: a
                .url
                .as_deref()
                .filter(|_| wants(TextKind::Url))
                .map(|u| normalize(TextKind::Url, u)),
            navigation: navigation_label(beacon.navigation_type),
            connection: connection_label(beacon.effective_type),
            split: match (a.input_delay, a.processing, a.presentation) {
                (Some(d), Some(p), Some(s)) if report.metric == Metric::Inp => Some([d, p, s]),
                _ => None,
            },
        }
    }

    /// Each dictionary section with the text this report has in it, in the
    /// order selector, URL, navigation type, connection.
    pub(super) fn texts(&self) -> [(TextKind, Option<&'a str>); 4] {
        [
            (TextKind::Selector, self.target),
            (TextKind::Url, self.resource),
            (TextKind::NavigationType, Some(self.navigation)),
            (TextKind::Connection, Some(self.connection)),
        ]
    }

    /// The stored form, with `id` giving each present text's dictionary id.
    pub(super) fn stored(&self, mut id: impl FnMut(TextKind, &str) -> i64) -> StoredAttribution {
        StoredAttribution {
            navigation: id(TextKind::NavigationType, self.navigation),
            connection: id(TextKind::Connection, self.connection),
            target: self.target.map(|t| id(TextKind::Selector, t)),
            resource: self.resource.map(|u| id(TextKind::Url, u)),
            split: self.split,
        }
    }
}

/// The writer's view of `attribution_texts`: ids of texts it has seen, and
/// how to forget the ones a rolled-back write inserted (SQLite hands a
/// rolled-back id out again, so a stale entry would point at another text).
pub(super) struct Dictionary {
    ids: [HashMap<String, i64>; TextKind::COUNT],
    cached_bytes: usize,
    /// Rows per section in SQLite; `None` until read (and after a failed commit).
    stored: Option<[i64; TextKind::COUNT]>,
    /// Texts the current write inserted: dropped from the map if it rolls back.
    inserted_by_job: Vec<(TextKind, String)>,
}

impl Default for Dictionary {
    fn default() -> Self {
        Dictionary {
            ids: std::array::from_fn(|_| HashMap::new()),
            cached_bytes: 0,
            stored: None,
            inserted_by_job: Vec::new(),
        }
    }
}

impl Dictionary {
    /// Ids for what `report` of `beacon` carries; only the parts its metric keeps.
    pub(super) fn resolve(
        &mut self,
        conn: &Connection,
        beacon: &Beacon,
        report: &Report,
    ) -> rusqlite::Result<StoredAttribution> {
        let parts = AttributionParts::of(beacon, report);
        let mut texts = [None; 4];
        for (slot, (kind, text)) in texts.iter_mut().zip(parts.texts()) {
            if let Some(text) = text {
                *slot = Some(self.id(conn, kind, text)?);
            }
        }
        Ok(parts.stored(|kind, _| match kind {
            TextKind::Selector => texts[0].unwrap_or(NOT_ATTRIBUTED),
            TextKind::Url => texts[1].unwrap_or(NOT_ATTRIBUTED),
            TextKind::NavigationType => texts[2].unwrap_or(NOT_ATTRIBUTED),
            TextKind::Connection => texts[3].unwrap_or(NOT_ATTRIBUTED),
        }))
    }

    fn id(&mut self, conn: &Connection, kind: TextKind, raw: &str) -> rusqlite::Result<i64> {
        let text = normalize(kind, raw);
        if let Some(&id) = self.ids[kind.index()].get(text) {
            return Ok(id);
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM attribution_texts WHERE kind = ?1 AND text = ?2")?
            .query_row(params![kind.as_str(), text], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                let stored = self.stored(conn)?;
                if kind.capped() && stored[kind.index()] >= MAX_TEXTS_PER_KIND {
                    // Not cached: the map must not grow with what the table refused.
                    return Ok(OVERFLOW);
                }
                conn.prepare_cached("INSERT INTO attribution_texts (kind, text) VALUES (?1, ?2)")?
                    .execute(params![kind.as_str(), text])?;
                stored[kind.index()] += 1;
                self.inserted_by_job.push((kind, text.to_string()));
                conn.last_insert_rowid()
            }
        };
        self.cached_bytes += text.len() + 48;
        self.ids[kind.index()].insert(text.to_string(), id);
        Ok(id)
    }

    fn stored(&mut self, conn: &Connection) -> rusqlite::Result<&mut [i64; TextKind::COUNT]> {
        if self.stored.is_none() {
            let mut counts = [0; TextKind::COUNT];
            let mut stmt =
                conn.prepare_cached("SELECT kind, count(*) FROM attribution_texts GROUP BY kind")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                if let Some(kind) = TextKind::parse(r.get_ref(0)?.as_str().unwrap_or("")) {
                    counts[kind.index()] = r.get(1)?;
                }
            }
            self.stored = Some(counts);
        }
        Ok(self.stored.as_mut().expect("filled above"))
    }

    /// The current write committed to its savepoint (`kept`) or rolled back.
    pub(super) fn job_done(&mut self, kept: bool) {
        for (kind, text) in self.inserted_by_job.drain(..) {
            if !kept {
                self.ids[kind.index()].remove(&text);
                if let Some(stored) = &mut self.stored {
                    stored[kind.index()] -= 1;
                }
            }
        }
    }

    /// The batch did not commit: ids handed out in it may be given to other
    /// texts later, so forget everything and read again from SQLite.
    pub(super) fn batch_failed(&mut self) {
        *self = Dictionary::default();
    }

    /// Between batches: keep the map's memory bounded.
    pub(super) fn trim(&mut self) {
        if self.cached_bytes > MAX_CACHED_BYTES {
            let stored = self.stored;
            *self = Dictionary::default();
            self.stored = stored;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeriesKey {
    metric: Metric,
    hour: i64,
    /// `series.id`: for RUM rows, site, page group and device.
    series: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub count: i64,
    pub value: f64,
    pub split_count: i64,
    pub split: [f64; 3],
}

/// The sample a contribution belongs to: where it is counted.
pub(super) struct Counted {
    pub metric: Metric,
    pub ts_ms: i64,
    pub series: i64,
}

/// Changes to `attribution_rollups` collected over a batch and written once at
/// its end, one upsert per touched row.
#[derive(Default)]
pub(super) struct AttributionDeltas {
    // Keyed by our own ids: the fast hasher (see Cargo.toml).
    deltas: rustc_hash::FxHashMap<SeriesKey, rustc_hash::FxHashMap<(AttributionKind, i64), Sums>>,
}

impl AttributionDeltas {
    /// Add (`sign` 1) or take back (`sign` -1) one sample's contribution.
    pub(super) fn add(&mut self, at: &Counted, a: &StoredAttribution, value: f64, sign: i64) {
        let kinds = attribution_kinds_for(at.metric);
        if kinds.is_empty() {
            return;
        }
        let key = SeriesKey {
            metric: at.metric,
            hour: at.ts_ms.div_euclid(HOUR_MS),
            series: at.series,
        };
        let items = self.deltas.entry(key).or_default();
        let s = sign as f64;
        for &kind in kinds {
            let sums = items.entry((kind, a.item(kind))).or_default();
            sums.count += sign;
            sums.value += s * value;
            if let Some(split) = a.split {
                sums.split_count += sign;
                for (total, part) in sums.split.iter_mut().zip(split) {
                    *total += s * part;
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    /// Every change that is not zero: metric, hour, series, kind, item and
    /// the sums to add (for a backend that writes them its own way).
    pub(super) fn entries(
        &self,
    ) -> impl Iterator<Item = (Metric, i64, i64, AttributionKind, i64, &Sums)> + '_ {
        self.deltas.iter().flat_map(|(k, items)| {
            items
                .iter()
                .filter(|(_, s)| **s != Sums::default())
                .map(move |((kind, item), s)| (k.metric, k.hour, k.series, *kind, *item, s))
        })
    }

    pub(super) fn flush(self, conn: &Connection, series: &mut SeriesIds) -> rusqlite::Result<()> {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO attribution_rollups (metric, kind, hour, site, page_group, device, item,
                 count, value_sum, split_count, input_delay_sum, processing_sum, presentation_sum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (metric, kind, hour, site, page_group, device, item) DO UPDATE SET
                 count = count + excluded.count,
                 value_sum = value_sum + excluded.value_sum,
                 split_count = split_count + excluded.split_count,
                 input_delay_sum = input_delay_sum + excluded.input_delay_sum,
                 processing_sum = processing_sum + excluded.processing_sum,
                 presentation_sum = presentation_sum + excluded.presentation_sum",
        )?;
        for (k, items) in self.deltas {
            let d = series.dims(conn, k.series)?;
            for ((kind, item), s) in items {
                // A re-report within the batch that took back what it added.
                if s == Sums::default() {
                    continue;
                }
                upsert.execute(params![
                    k.metric.as_str(),
                    kind.as_str(),
                    k.hour,
                    d.site,
                    d.page_group,
                    d.device,
                    item,
                    s.count,
                    s.value,
                    s.split_count,
                    s.split[0],
                    s.split[1],
                    s.split[2]
                ])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_and_fragment_and_texts_are_bounded() {
        assert_eq!(
            normalize_url("https://a.example/i.jpg?w=800&token=x#top"),
            "https://a.example/i.jpg"
        );
        assert_eq!(
            normalize_url("https://a.example/i.jpg#x"),
            "https://a.example/i.jpg"
        );
        let long = format!("https://a.example/{}", "é".repeat(3000));
        assert_eq!(normalize_url(&long).chars().count(), MAX_URL_LEN);
        let selector = "div>".repeat(100);
        assert_eq!(
            normalize(TextKind::Selector, &selector).chars().count(),
            MAX_SELECTOR_LEN
        );
        // Selectors may contain '#' and '?': only URLs are cut there.
        assert_eq!(normalize(TextKind::Selector, "#cart"), "#cart");
    }

    #[test]
    fn every_kind_parses_from_its_name_and_belongs_to_a_metric() {
        for kind in AttributionKind::ALL {
            assert_eq!(AttributionKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
            assert!(
                Metric::ALL
                    .iter()
                    .any(|m| attribution_kinds_for(*m).contains(&kind)),
                "{kind}"
            );
        }
        assert_eq!(AttributionKind::parse("LCP_element"), None);
    }

    #[test]
    fn navigation_labels_are_the_wire_names() {
        for n in [
            NavigationType::Navigate,
            NavigationType::Reload,
            NavigationType::BackForward,
            NavigationType::BackForwardCache,
            NavigationType::Prerender,
            NavigationType::Restore,
            NavigationType::Route,
        ] {
            assert_eq!(
                serde_json::to_value(n).unwrap(),
                serde_json::json!(navigation_label(n))
            );
        }
        for e in [
            EffectiveType::Slow2g,
            EffectiveType::G2,
            EffectiveType::G3,
            EffectiveType::G4,
        ] {
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                serde_json::json!(connection_label(Some(e)))
            );
        }
    }

    fn dictionary_db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn a_rolled_back_insert_is_forgotten_so_its_id_is_not_reused_for_another_text() {
        let mut conn = dictionary_db();
        let mut dict = Dictionary::default();
        let mut tx = conn.transaction().unwrap();
        {
            let mut sp = tx.savepoint().unwrap();
            let id = dict.id(&sp, TextKind::Selector, "#gone").unwrap();
            assert_eq!(id, 1);
            sp.rollback().unwrap();
            dict.job_done(false);
        }
        let other = dict.id(&tx, TextKind::Selector, "#kept").unwrap();
        dict.job_done(true);
        // SQLite hands id 1 out again; "#gone" must not map to it any more.
        assert_eq!(other, 1);
        let gone = dict.id(&tx, TextKind::Selector, "#gone").unwrap();
        assert_ne!(gone, other);
        assert_eq!(dict.id(&tx, TextKind::Selector, "#kept").unwrap(), other);
        tx.commit().unwrap();
    }

    #[test]
    fn a_full_dictionary_counts_new_texts_as_other() {
        let conn = dictionary_db();
        let mut dict = Dictionary::default();
        let known = dict
            .id(&conn, TextKind::Url, "https://a.example/1.jpg")
            .unwrap();
        dict.stored.as_mut().unwrap()[TextKind::Url.index()] = MAX_TEXTS_PER_KIND;
        assert_eq!(
            dict.id(&conn, TextKind::Url, "https://a.example/2.jpg")
                .unwrap(),
            OVERFLOW
        );
        assert_eq!(
            dict.id(&conn, TextKind::Url, "https://a.example/1.jpg")
                .unwrap(),
            known
        );
        // Labels are never capped.
        dict.stored.as_mut().unwrap()[TextKind::Connection.index()] = MAX_TEXTS_PER_KIND;
        assert!(dict.id(&conn, TextKind::Connection, "4g").unwrap() > 0);
    }
}
