//! The served OpenAPI description against the live collector binary:
//! schemathesis (from the venv `./test.sh` makes) generates requests for every
//! operation, with a bounded number of examples each, and fails on any 5xx,
//! undocumented status, wrong content type, or response that does not match
//! its described schema. The database is seeded first (beacons, runs with an
//! artifact, a silence) so the query responses have rows to check.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use vitalsign_test_support::{CollectorProcess, workspace_root};

const TOKEN: &str = "openapi-test-token";

fn schemathesis() -> PathBuf {
    let path = match std::env::var_os("VITALSIGN_TEST_SCHEMATHESIS") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("target/test-venv/bin/schemathesis"),
    };
    assert!(
        path.exists(),
        "{} is missing: run ./test.sh once (it installs schemathesis==4.32.5 into target/test-venv)",
        path.display()
    );
    path
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join("tests/fixtures").join(path)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_description_matches_what_the_collector_answers() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "agent_tokens = [\"{TOKEN}\"]\nquery_tokens = [\"{TOKEN}\"]\n\
         rate_limit_per_second = 100000.0\nrate_limit_burst = 100000.0\n\
         [sites.demo]\norigins = [\"*\"]\n[sites.shop_eu]\norigins = [\"*\"]\n"
    );
    let collector = CollectorProcess::start(dir.path(), &config);
    let base = collector.base_url.clone();
    let client = reqwest::Client::new();

    // The description itself needs no token and is OpenAPI 3.1.
    let doc: serde_json::Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/rum",
        "/v1/runs",
        "/v1/runs/{run_id}/artifacts/{name}",
        "/api/v1/summary",
        "/api/v1/series",
        "/api/v1/top-pages",
        "/api/v1/attribution",
        "/api/v1/runs",
        "/api/v1/alerts",
        "/api/v1/alerts/transitions",
        "/api/v1/alerts/dead-letters",
        "/api/v1/alerts/{id}/ack",
        "/api/v1/silences",
        "/api/v1/silences/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is described");
    }

    // Rows for the queries to return, so their response schemas are exercised.
    for name in [
        "full-page-view",
        "minimal",
        "spa-route",
        "cls-re-report-after-bfcache",
    ] {
        let r = client
            .post(format!("{base}/v1/rum"))
            .header("content-type", "text/plain")
            .body(fixture(&format!("beacon/valid/{name}.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{name}: {}", r.text().await.unwrap());
    }
    for name in [
        "checkout-pass",
        "checkout-fail-with-screenshot",
        "http-check-error",
    ] {
        let r = client
            .post(format!("{base}/v1/runs"))
            .bearer_auth(TOKEN)
            .body(fixture(&format!("run/valid/{name}.json")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{name}: {}", r.text().await.unwrap());
    }
    let silence = client
        .post(format!("{base}/api/v1/silences"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "matchers": { "site": "demo" },
            "duration": "2h",
            "comment": "deploy window",
            "created_by": "openapi test",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(silence.status(), 201);

    let started = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::process::Command::from({
            let mut c = Command::new(&schemathesis);
            c.arg("run")
                .arg(format!("{base}/api/v1/openapi.json"))
                .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
                // Bounded: at most 20 generated cases per operation and phase.
                .args(["--max-examples", "20", "--seed", "19"])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ])
                .args(["--request-timeout", "10", "--no-color"])
                .current_dir(dir.path())
                .env("NO_COLOR", "1");
            c
        })
        .kill_on_drop(true)
        .output(),
    )
    .await
    .expect("schemathesis finished within 150 s")
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems ({:?}):\n{report}\ncollector log:\n{}",
        output.status,
        collector.process.log().join("\n")
    );
    // A run that tested nothing would also exit 0: every operation was tested.
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        // schemathesis sends no OPTIONS requests (the CORS preflight).
        .map(|item| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| *m != "options")
                .count()
        })
        .sum();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "schemathesis tested all {operations} operations:\n{report}"
    );
    assert!(
        !report.contains(" 0 generated"),
        "schemathesis generated cases:\n{report}"
    );
    eprintln!(
        "schemathesis passed in {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        report
            .lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
