//! A database of schema version 5 (one raw row per sample, as collectors
//! before migration 6 wrote it) opens in place with every sample, run,
//! artifact, alert state, transition, outbox row and silence it held, and
//! keeps answering re-reports as re-reports.

use std::collections::BTreeSet;

use rusqlite::{Connection, params};
use vitalsign_collector::store::migrations::{MIGRATIONS, current_version};
use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{NewPageView, Store};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::{Beacon, ProbeRun};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A sample row as the schema-5 writer stored it.
struct OldSample {
    ts_ms: i64,
    origin_id: &'static str,
    source: &'static str,
    step_index: i64,
    metric: &'static str,
    value: f64,
    device: &'static str,
    flow: &'static str,
    step: &'static str,
    attribution: Option<OldAttribution>,
}

/// navigation, connection, target, resource, split (ids and ms).
type OldAttribution = (i64, i64, Option<i64>, Option<i64>, Option<[f64; 3]>);

fn old_samples(t: i64) -> Vec<OldSample> {
    let rum = |origin_id, ts_ms, metric, value, device, attribution| OldSample {
        ts_ms,
        origin_id,
        source: "rum",
        step_index: 0,
        metric,
        value,
        device,
        flow: "",
        step: "",
        attribution,
    };
    let synthetic = |step_index, step, metric, value| OldSample {
        ts_ms: t - 2 * HOUR_MS + step_index * 2_000,
        origin_id: "r-migrated",
        source: "synthetic",
        step_index,
        metric,
        value,
        device: "mobile",
        flow: "checkout",
        step,
        attribution: None,
    };
    vec![
        // A full page view with attribution.
        rum(
            "pv-1",
            t,
            "LCP",
            2100.0,
            "mobile",
            Some((3, 4, Some(1), Some(2), None)),
        ),
        rum(
            "pv-1",
            t,
            "FCP",
            900.0,
            "mobile",
            Some((3, 4, None, None, None)),
        ),
        rum(
            "pv-1",
            t,
            "TTFB",
            210.0,
            "mobile",
            Some((3, 4, None, None, None)),
        ),
        rum(
            "pv-1",
            t,
            "CLS",
            0.05,
            "mobile",
            Some((3, 4, Some(6), None, None)),
        ),
        rum(
            "pv-1",
            t,
            "INP",
            180.0,
            "mobile",
            Some((3, 4, Some(5), None, Some([20.0, 120.0, 40.0]))),
        ),
        // CLS re-reported a minute later kept the first timestamp; INP came in
        // a later beacon with its own.
        rum(
            "pv-2",
            t - 600_000,
            "LCP",
            3100.0,
            "desktop",
            Some((3, 4, Some(1), None, None)),
        ),
        rum(
            "pv-2",
            t - 600_000,
            "CLS",
            0.2,
            "desktop",
            Some((3, 4, None, None, None)),
        ),
        rum(
            "pv-2",
            t - 540_000,
            "INP",
            90.0,
            "desktop",
            Some((3, 4, Some(5), None, None)),
        ),
        // Stored before attribution was kept (schema 2): NULL ids.
        rum("pv-3", t - HOUR_MS, "LCP", 1800.0, "tablet", None),
        // A probe run's steps.
        synthetic(0, "open home", "LCP", 1650.2),
        synthetic(0, "open home", "TBT", 40.0),
        synthetic(1, "add to cart", "INP", 88.0),
    ]
}

/// Everything of the alert tables, one line per row, in a stable order.
fn alert_rows(conn: &Connection) -> Vec<String> {
    let mut lines = Vec::new();
    for (table, order) in [
        ("alert_states", "key"),
        ("alert_transitions", "seq"),
        ("outbox", "seq"),
        ("silences", "id"),
        ("runs", "run_id"),
        ("artifacts", "run_id, name"),
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cells.join(" | ")))
            })
            .unwrap();
        lines.extend(rows.map(Result::unwrap));
    }
    lines
}

fn write_schema_5(db: &std::path::Path, t: i64) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    for sql in &MIGRATIONS[..5] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 5).unwrap();
    conn.execute_batch(
        "INSERT INTO attribution_texts (id, kind, text) VALUES
            (1, 'selector', 'img.hero'), (2, 'url', 'https://shop.example/hero.jpg'),
            (3, 'navigation_type', 'navigate'), (4, 'connection', '4g'),
            (5, 'selector', 'button#buy'), (6, 'selector', 'div.banner');",
    )
    .unwrap();
    for s in old_samples(t) {
        let a = s.attribution;
        let split = |i: usize| a.and_then(|a| a.4).map(|x| x[i]);
        conn.execute(
            "INSERT INTO samples (ts_ms, site, page_group, metric, value, device, source, flow, step, location,
                                  origin_id, step_index, attr_navigation, attr_connection, attr_target,
                                  attr_resource, attr_input_delay, attr_processing, attr_presentation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            params![
                s.ts_ms,
                if s.source == "rum" { "shop" } else { "" },
                if s.source == "rum" { "/product/:id" } else { "" },
                s.metric,
                s.value,
                s.device,
                s.source,
                s.flow,
                s.step,
                if s.source == "rum" { "" } else { "eu-west" },
                s.origin_id,
                s.step_index,
                a.map(|a| a.0),
                a.map(|a| a.1),
                a.and_then(|a| a.2),
                a.and_then(|a| a.3),
                split(0),
                split(1),
                split(2)
            ],
        )
        .unwrap();
    }
    let mut run: ProbeRun = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/run/valid/checkout-fail-with-screenshot.json"
        ))
        .unwrap(),
    )
    .unwrap();
    run.run_id = "r-migrated".into();
    run.started_at_ms = (t - 2 * HOUR_MS) as u64;
    conn.execute(
        "INSERT INTO runs (run_id, flow, location, outcome, started_at_ms, received_ms, document)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run.run_id,
            run.flow,
            run.location,
            run.outcome.as_str(),
            run.started_at_ms as i64,
            t - 2 * HOUR_MS + 5_000,
            serde_json::to_string(&run).unwrap()
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO artifacts (run_id, name, content_type, sha256, content)
         VALUES ('r-migrated', 'step-2-failure.png', 'image/png', ?1, ?2)",
        params![
            run.artifacts[0].sha256,
            vec![0x89u8, b'P', b'N', b'G', 1, 2, 3]
        ],
    )
    .unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO alert_states (key, id, rule, kind, site, state, since_ms, record, acked_ms, acked_by, updated_ms)
             VALUES ('regression|lcp|shop', 'a1b2c3', 'lcp', 'regression', 'shop', 'firing', {t}, '{{\"any\":1}}', NULL, NULL, {t});
         INSERT INTO alert_transitions (alert_key, rule, at_ms, from_state, to_state, numbers)
             VALUES ('regression|lcp|shop', 'lcp', {t}, 'pending', 'firing', '{{}}');
         INSERT INTO outbox (message_id, kind, created_ms, route, message, status, attempts, next_attempt_ms)
             VALUES ('<m1@vitalsign>', 'firing', {t}, 'ops', '{{}}', 'pending', 0, {t});
         INSERT INTO silences (id, created_ms, starts_ms, ends_ms, matchers, comment, created_by)
             VALUES ('s1', {t}, {t}, {}, '{{}}', 'deploy', 'ops');",
        t + HOUR_MS
    ))
    .unwrap();
    alert_rows(&conn)
}

/// Every sample of the migrated rows as (origin, step, metric, value).
fn stored_samples(conn: &Connection) -> BTreeSet<(String, i64, String, String)> {
    let mut out = BTreeSet::new();
    let mut stmt = conn
        .prepare("SELECT origin_id, step_index, lcp, cls, inp, fcp, ttfb, tbt FROM measurements")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        for (i, metric) in ["LCP", "CLS", "INP", "FCP", "TTFB", "TBT"]
            .iter()
            .enumerate()
        {
            if let Some(v) = r.get::<_, Option<f64>>(2 + i).unwrap() {
                out.insert((
                    r.get(0).unwrap(),
                    r.get(1).unwrap(),
                    metric.to_string(),
                    format!("{v}"),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_schema_5_database_opens_in_place_with_everything_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("schema5.db");
    let t = now_ms() - 10 * 60_000;
    let before = write_schema_5(&db, t);

    let store = Store::open(&db).unwrap();
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, current_version());
    // Migration 7: raw rows are found by time, the series beside it; no
    // per-series index (it cost a page write per beacon).
    let indexes: Vec<(String, String)> = conn
        .prepare(
            "SELECT il.name, group_concat(ii.name, ',') FROM pragma_index_list('measurements') AS il,
                    pragma_index_info(il.name) AS ii WHERE il.origin = 'c' GROUP BY il.name ORDER BY il.name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        vec![
            (
                "measurements_identity".to_string(),
                "origin_id,step_index".to_string()
            ),
            ("measurements_time".to_string(), "ts_ms,series".to_string()),
        ]
    );

    // Every sample, now one row per page view (step index -1) or probe step.
    let expected: BTreeSet<(String, i64, String, String)> = old_samples(t)
        .iter()
        .map(|s| {
            let step = if s.source == "rum" { -1 } else { s.step_index };
            (
                s.origin_id.to_string(),
                step,
                s.metric.to_string(),
                format!("{}", s.value),
            )
        })
        .collect();
    assert_eq!(stored_samples(&conn), expected);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM measurements", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 5, "3 page views and 2 probe steps");
    // A page view's row is at its first sample's time, with its attribution.
    let pv2: (i64, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT ts_ms, inp_target, navigation FROM measurements WHERE origin_id = 'pv-2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(pv2, (t - 600_000, Some(5), Some(3)));
    type Split = (
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<i64>,
        Option<i64>,
    );
    let pv1_split: Split = conn
        .query_row(
            "SELECT inp_input_delay, inp_processing, inp_presentation, lcp_resource, cls_source
             FROM measurements WHERE origin_id = 'pv-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        pv1_split,
        (Some(20.0), Some(120.0), Some(40.0), Some(2), Some(6))
    );

    // Runs, artifacts, alert states, transitions, outbox rows and silences
    // are as they were, byte for byte.
    assert_eq!(alert_rows(&conn), before);

    // The queries read the migrated rows: raw summaries per metric and filter.
    let (from, to) = (t - 3 * HOUR_MS, t + 60_000);
    let lcp = store
        .summary(Metric::Lcp, from, to, &Filter::default())
        .await
        .unwrap();
    assert_eq!(lcp.count, 4, "three page views and one probe step");
    let mobile_rum = Filter {
        device: Some("mobile".into()),
        source: Some("rum".into()),
        ..Filter::default()
    };
    let inp = store
        .raw_values(Metric::Inp, from, to, &mobile_rum)
        .await
        .unwrap();
    assert_eq!(inp, vec![180.0]);
    let runs = store
        .recent_runs(Some("checkout".into()), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, "r-migrated");
    let artifact = store
        .artifact("r-migrated", "step-2-failure.png")
        .await
        .unwrap();
    assert_eq!(
        artifact,
        Some((
            "image/png".to_string(),
            vec![0x89u8, b'P', b'N', b'G', 1, 2, 3]
        ))
    );

    // A re-report of a migrated page view replaces its value, adds no row.
    let beacon: Beacon = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "site": "shop", "page_view_id": "pv-1",
        "url": "https://shop.example/product/7", "navigation_type": "navigate",
        "device": "mobile", "snippet_version": "0.1.0",
        "reports": [{"metric": "CLS", "value": 0.3, "rating": "poor"}]
    }))
    .unwrap();
    store
        .append_page_views(vec![NewPageView {
            beacon,
            page_group: "/product/:id".into(),
            received_ms: now_ms(),
        }])
        .await
        .unwrap();
    let (rows, cls): (i64, f64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM measurements), cls FROM measurements WHERE origin_id = 'pv-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, cls), (5, 0.3));
}
