//! Retention pruning under ingest load: the real collector binary prunes
//! a day of raw rows past retention (200,000 page views, 1 M samples) while
//! beacons keep coming, and beacon latency stays within the
//! ingest goal (p99 < 25 ms, or twice the p99 of the same load without a
//! prune when the shared machine is slower than that): the pruner deletes in
//! slices queued one after another, so ingest batches run between them
//! instead of waiting behind one long `DELETE`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vitalsign_test_support::CollectorProcess;
use vitalsign_test_support::fixtures::demo_beacon;

const CONFIG: &str = r#"
retention_days = 1
prune_interval_secs = 2
rate_limit_per_second = 100000.0
rate_limit_burst = 100000.0
[sites.demo]
origins = ["*"]
"#;

const OLD_ROWS: i64 = 200_000;

/// Rows a day past retention, written the way the collector lays them out.
fn insert_old_rows(db: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day_start = now - 3 * 86_400_000;
    let tx = conn.transaction().unwrap();
    let series: i64 = tx
        .query_row(
            "INSERT INTO series (site, page_group, device, source, flow, step, location)
             VALUES ('demo', '/old', 'mobile', 'rum', '', '', '') RETURNING id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO measurements (ts_ms, series, origin_id, step_index, lcp, cls, inp, fcp, ttfb)
                 VALUES (?1, ?2, ?3, -1, 1500, 0.02, 120, 700, 80)",
            )
            .unwrap();
        for i in 0..OLD_ROWS {
            let ts = day_start + i * 86_400_000 / OLD_ROWS;
            insert
                .execute(rusqlite::params![ts, series, format!("v1-{ts}-{i:08}")])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

fn old_rows_left(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM measurements WHERE origin_id NOT LIKE 'load-%'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Latencies (ms, sorted) of beacons sent open-loop for `seconds`: 4
/// clients, one beacon each per 8 ms (500 beacons/s), so a stall shows as
/// latency instead of as fewer requests. Panics on any failed beacon.
async fn load(base: &str, prefix: &str, seconds: u64) -> Vec<f64> {
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (client, base, prefix) = (client.clone(), base.to_string(), prefix.to_string());
            let (latencies, failures) = (latencies.clone(), failures.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(8));
                let mut n = 0;
                while Instant::now() < stop_at {
                    tick.tick().await;
                    n += 1;
                    let sent = Instant::now();
                    let answer = client
                        .post(format!("{base}/v1/rum"))
                        .header("content-type", "text/plain")
                        .body(demo_beacon(&format!("{prefix}-{c}-{n}")))
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().as_u16() == 204 => latencies
                            .lock()
                            .unwrap()
                            .push(sent.elapsed().as_secs_f64() * 1000.0),
                        Ok(r) => failures.lock().unwrap().push(r.status().to_string()),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed beacons: {failures:?}");
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    assert!(latencies.len() >= 500, "{} beacons", latencies.len());
    latencies
}

fn p(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_a_day_of_rows_keeps_ingest_latency_within_the_goal() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(dir.path(), CONFIG);
    let base = collector.base_url.clone();
    // The same load without a prune: what this (debug) build on this machine
    // does at the moment.
    let quiet = load(&base, "load-quiet", 3).await;
    // The next prune (every 2 s) finds these rows.
    insert_old_rows(&collector.db);
    let inserted_at = Instant::now();
    let pruning = load(&base, "load-prune", 6).await;
    let load_ended = inserted_at.elapsed();

    let log = collector.process.log().join("\n");
    let pruned = format!("rows={OLD_ROWS}");
    assert!(
        log.lines()
            .any(|l| l.contains("retention pruning done") && l.contains(&pruned)),
        "no prune of the {OLD_ROWS} old rows within {load_ended:?} of load; the log:\n{log}"
    );
    assert_eq!(old_rows_left(&collector.db), 0);
    eprintln!(
        "without a prune: {} beacons, p50 {:.1} ms, p99 {:.1} ms; during the prune: {} beacons, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quiet.len(),
        p(&quiet, 0.5),
        p(&quiet, 0.99),
        pruning.len(),
        p(&pruning, 0.5),
        p(&pruning, 0.99),
        pruning[pruning.len() - 1]
    );
    // The goal is the ingest bench's (p99 < 25 ms); a busy shared machine
    // can slow a debug build past it with no prune at all, so the bar is
    // also never below twice what the same load got without one.
    let bar = 25.0f64.max(2.0 * p(&quiet, 0.99));
    assert!(
        p(&pruning, 0.99) < bar,
        "ingest p99 {:.1} ms while pruning, {:.1} ms without (bar {bar:.1} ms)",
        p(&pruning, 0.99),
        p(&quiet, 0.99)
    );
}
