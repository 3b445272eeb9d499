//! A full disk, simulated with a file-size limit on the real collector binary
//! (`RLIMIT_FSIZE`, with SIGXFSZ ignored so a write past it fails with EFBIG
//! as it would with ENOSPC): `/readyz` must say 503 with the reason, and the
//! log must not grow with every failed request (issue 18, finding 7).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;
use vitalsign_test_support::CollectorProcess;

const CONFIG: &str = r#"
rate_limit_per_second = 100000.0
rate_limit_burst = 100000.0
min_free_disk_mb = 0
[sites.demo]
origins = ["*"]
"#;

/// Big enough for the migrated database, small enough to fill in seconds.
const FILE_SIZE_LIMIT: u64 = 2_000_000;

fn beacon(i: usize) -> String {
    json!({"schema_version": 1, "site": "demo", "page_view_id": format!("pv-{i}"),
           "url": format!("https://shop.example/p/{i}"),
           "navigation_type": "navigate", "snippet_version": "0.1.0",
           "reports": [
               {"metric": "LCP", "value": 1200, "rating": "good",
                "attribution": {"target": format!("#hero-{i} > img.{}", "x".repeat(150)),
                                "url": format!("https://cdn.example/{i}/{}.jpg", "y".repeat(400))}},
               {"metric": "FCP", "value": 800, "rating": "good"},
               {"metric": "TTFB", "value": 90, "rating": "good"},
               {"metric": "CLS", "value": 0.01, "rating": "good",
                "attribution": {"target": format!("div.banner-{i}-{}", "z".repeat(150))}}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_readyz_fail_with_the_reason_and_logs_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("collector-small-disk.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntrap '' XFSZ\nexec prlimit --fsize={FILE_SIZE_LIMIT} -- {} \"$@\"\n",
            vitalsign_test_support::binary("vitalsign-collector").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let collector = CollectorProcess::start_binary(&wrapper, dir.path(), CONFIG, "127.0.0.1:0");
    let base = collector.base_url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    // Fill the "disk": beacons until the collector answers 503.
    let started = Instant::now();
    let mut i = 0;
    let mut failed = 0;
    while failed < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "no write failed after {i} beacons"
        );
        let batch: Vec<_> = (i..i + 16)
            .map(|n| {
                tokio::spawn(
                    client
                        .post(format!("{base}/v1/rum"))
                        .header("content-type", "text/plain")
                        .body(beacon(n))
                        .send(),
                )
            })
            .collect();
        i += 16;
        for task in batch {
            let r = task.await.unwrap().unwrap();
            match r.status().as_u16() {
                204 => {}
                503 => failed += 1,
                other => panic!("beacon answered {other}"),
            }
        }
    }

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    let status = ready.status();
    let reason = ready.text().await.unwrap();
    eprintln!("after {i} beacons, {failed} failed: {reason}");
    assert_eq!(status, 503, "{reason}");
    assert!(reason.starts_with("writes failing: "), "{reason}");
    assert!(
        reason.contains("full") || reason.contains("disk") || reason.contains("I/O"),
        "the reason does not say what failed: {reason}"
    );

    let log = collector.process.log();
    let errors = log.iter().filter(|l| l.contains("ERROR")).count();
    assert!(
        errors <= 6,
        "{errors} ERROR lines for {failed} failed beacons:\n{}",
        log.join("\n")
    );
}
