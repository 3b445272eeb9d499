//! SIGKILL the real collector binary during sustained ingest, restart it on the
//! same database, and find every beacon and run it acknowledged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vitalsign_test_support::CollectorProcess;
use vitalsign_test_support::fixtures::{checkout_run, demo_beacon, now_ms};

const CONFIG: &str = r#"
agent_tokens = ["crash-agent"]
query_tokens = ["crash-query"]
rate_limit_per_second = 100000.0
rate_limit_burst = 100000.0
[sites.demo]
origins = ["*"]
"#;

/// Recent, or the restarted collector's retention pruner would rightly delete it.
fn run(id: &str) -> serde_json::Value {
    checkout_run(id, now_ms())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = CollectorProcess::start(dir.path(), CONFIG);
    let base = collector.base_url.clone();
    let acked_beacons = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, base, beacons, runs) = (
            client.clone(),
            base.clone(),
            acked_beacons.clone(),
            acked_runs.clone(),
        );
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut i = 0;
            while Instant::now() < deadline {
                i += 1;
                if i % 10 == 0 {
                    let id = format!("run-{w}-{i}");
                    let r = client
                        .post(format!("{base}/v1/runs"))
                        .bearer_auth("crash-agent")
                        .json(&run(&id))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => runs.lock().unwrap().push(id),
                        Ok(_) => {}
                        Err(_) => break, // killed
                    }
                } else {
                    let id = format!("pv-{w}-{i}");
                    let r = client
                        .post(format!("{base}/v1/rum"))
                        .header("content-type", "text/plain")
                        .body(demo_beacon(&id))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => beacons.lock().unwrap().push(id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }));
    }
    // Let ingest run, then kill without warning.
    let wait = Instant::now() + Duration::from_secs(8);
    while acked_beacons.lock().unwrap().len() < 2000 && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    collector.process.kill_hard();
    for w in workers {
        let _ = w.await;
    }
    let beacons = acked_beacons.lock().unwrap().clone();
    let runs = acked_runs.lock().unwrap().clone();
    assert!(
        beacons.len() >= 100,
        "sustained ingest before the kill: {} beacons",
        beacons.len()
    );
    assert!(!runs.is_empty());

    // Restart on the same database; recovery replays the WAL.
    let restarted = CollectorProcess::start(dir.path(), CONFIG);
    drop(restarted);
    let conn = rusqlite::Connection::open(&collector.db).unwrap();
    let stored_views: HashSet<String> = conn
        .prepare("SELECT origin_id FROM measurements WHERE step_index = -1 AND lcp IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let stored_runs: HashSet<String> = conn
        .prepare("SELECT run_id FROM runs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lost_beacons: Vec<_> = beacons
        .iter()
        .filter(|b| !stored_views.contains(*b))
        .collect();
    let lost_runs: Vec<_> = runs.iter().filter(|r| !stored_runs.contains(*r)).collect();
    assert!(
        lost_beacons.is_empty(),
        "{} acknowledged beacons lost: {:?}",
        lost_beacons.len(),
        &lost_beacons[..lost_beacons.len().min(5)]
    );
    assert!(
        lost_runs.is_empty(),
        "acknowledged runs lost: {lost_runs:?}"
    );
    // Each beacon has all five metrics: a batch commits whole or not at all.
    let partial: i64 = conn
        .query_row(
            "SELECT count(*) FROM measurements WHERE step_index = -1
                 AND (lcp IS NULL OR cls IS NULL OR inp IS NULL OR fcp IS NULL OR ttfb IS NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(partial, 0, "no half-stored beacon");
}
