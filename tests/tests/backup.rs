//! `vitalsign-collector backup` against a running collector under a beacon
//! load: the copy opens, passes `PRAGMA integrity_check`, and holds every
//! beacon acknowledged before the backup began; restored in place of the
//! database (docs/operations.md), a collector serves them.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vitalsign_test_support::http::request as http;
use vitalsign_test_support::wait::wait_until;
use vitalsign_test_support::{CollectorProcess, binary};

const TOKEN: &str = "backup-query-token";

fn config() -> String {
    format!(
        "query_tokens = [\"{TOKEN}\"]\nrate_limit_per_second = 100000.0\nrate_limit_burst = 100000.0\n\
         [sites.shop]\norigins = [\"*\"]\n"
    )
}

fn beacon(page_view_id: &str) -> String {
    serde_json::json!({
        "schema_version": 1,
        "site": "shop",
        "page_view_id": page_view_id,
        "url": "https://shop.example/cart",
        "navigation_type": "navigate",
        "device": "desktop",
        "snippet_version": "0.1.0",
        "reports": [{ "metric": "LCP", "value": 1200, "rating": "good" }],
    })
    .to_string()
}

/// Page-view ids of the RUM page views in a database file.
fn stored_ids(db: &std::path::Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT origin_id FROM measurements WHERE step_index = -1")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_backup_under_load_holds_every_acknowledged_beacon_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let collector = CollectorProcess::start(&live, &config());
    let addr = collector.addr().to_string();

    // Two senders, bounded in count and time, each recording what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|worker| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                for n in 0..5000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let id = format!("pv-{worker}-{n}");
                    let (status, body) = http(&addr, "POST", "/v1/rum", &beacon(&id), None);
                    assert_eq!(status, 204, "beacon {id}: {body}");
                    acked.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    wait_until("1000 beacons acknowledged", Duration::from_secs(30), || {
        acked.lock().unwrap().len() >= 1000
    });

    let before: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let copy = dir.path().join("backup.db");
    let output = Command::new(binary("vitalsign-collector"))
        .arg("backup")
        .arg("--db")
        .arg(&collector.db)
        .arg("--to")
        .arg(&copy)
        .output()
        .unwrap();
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "backup failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("integrity ok"), "{stdout}");
    assert!(
        during > 0,
        "the load went on while the backup ran (else this test proves nothing about a live copy)"
    );

    let conn = rusqlite::Connection::open(&copy).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    drop(conn);
    let in_copy = stored_ids(&copy);
    let missing: Vec<_> = before.difference(&in_copy).collect();
    assert!(
        missing.is_empty(),
        "{} of {} beacons acknowledged before the backup are missing from it, e.g. {:?}",
        missing.len(),
        before.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let all_acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        in_copy.is_subset(&all_acked),
        "the copy holds only beacons that were sent"
    );

    // A backup never overwrites: the same target again is refused, the copy kept.
    let again = Command::new(binary("vitalsign-collector"))
        .args(["backup", "--db"])
        .arg(&collector.db)
        .arg("--to")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(collector);

    // Restore as docs/operations.md says: the copy becomes the database of a
    // fresh collector, which serves what it holds.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir_all(&restored_dir).unwrap();
    std::fs::copy(&copy, restored_dir.join("collector.db")).unwrap();
    let restored = CollectorProcess::start(&restored_dir, &config());
    let (status, body) = http(
        &restored.addr().to_string(),
        "GET",
        "/api/v1/summary?metric=LCP&range=1d&site=shop",
        "",
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        summary["summary"]["count"].as_u64(),
        Some(in_copy.len() as u64),
        "the restored collector counts every beacon in the copy: {body}"
    );
    assert!(in_copy.len() >= before.len());
}
