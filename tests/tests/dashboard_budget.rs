//! Dogfooding: `vitalsign-agent check` walks the dashboard (sign-in, overview,
//! pages, series, flows, alerts) of a real collector holding field and lab
//! data in real Chromium, and holds every page view to the dashboard's budget
//! (`deploy/budgets.dashboard.toml`: LCP ≤ 1 s, CLS ≤ 0.01).

use std::process::Command;

use serde_json::{Value, json};
use vitalsign_test_support::fixtures::{checkout_run, now_ms};
use vitalsign_test_support::{CollectorProcess, binary, workspace_root};

const QUERY_TOKEN: &str = "dashboard-budget-query-token";
const AGENT_TOKEN: &str = "dashboard-budget-agent-token";

fn beacon(i: usize, page: &str) -> Value {
    let lcp = 900.0 + (i % 17) as f64 * 90.0;
    json!({
        "schema_version": 1, "site": "shop", "page_view_id": format!("pv-budget-{i}"),
        "url": format!("http://127.0.0.1:9{page}"), "navigation_type": "navigate",
        "device": if i.is_multiple_of(3) { "mobile" } else { "desktop" }, "snippet_version": "0.1.0",
        "reports": [
            { "metric": "LCP", "value": lcp, "rating": if lcp <= 2500.0 { "good" } else { "needs-improvement" },
              "attribution": { "target": "main>img.hero" } },
            { "metric": "CLS", "value": 0.02, "rating": "good", "attribution": { "target": "div.ad" } },
            { "metric": "INP", "value": 120.0, "rating": "good", "attribution": { "target": "button#buy", "input_delay": 10.0, "processing": 80.0, "presentation": 30.0 } }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_keeps_its_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(
        dir.path(),
        &format!(
            "query_tokens = [\"{QUERY_TOKEN}\"]\nagent_tokens = [\"{AGENT_TOKEN}\"]\n\
             public_dashboard = true\n\
             rate_limit_per_second = 10000.0\nrate_limit_burst = 10000.0\n\
             [sites.shop]\norigins = [\"http://127.0.0.1:9\"]\n"
        ),
    );
    let base = collector.base_url.clone();
    let client = reqwest::Client::new();
    // Field data through the public endpoint, lab data through the agents' one.
    for i in 0..200 {
        let page = ["/", "/checkout", "/product/7", "/cart"][i % 4];
        let status = client
            .post(format!("{base}/v1/rum"))
            .header("content-type", "text/plain")
            .header("origin", "http://127.0.0.1:9")
            .body(beacon(i, page).to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }
    let now = now_ms();
    for i in 0..5u64 {
        let run = checkout_run(&format!("budget-run-{i}"), now - (5 - i) * 60_000);
        let status = client
            .post(format!("{base}/v1/runs"))
            .bearer_auth(AGENT_TOKEN)
            .json(&run)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "run upload: {status}");
    }

    let flow_text = std::fs::read_to_string(workspace_root().join("deploy/flows/dashboard.toml"))
        .unwrap()
        .replace("http://127.0.0.1:8080/", &format!("{base}/"));
    let flow = dir.path().join("dashboard.toml");
    std::fs::write(&flow, flow_text).unwrap();
    let markdown = dir.path().join("report.md");
    let out = Command::new(binary("vitalsign-agent"))
        .args(["check", "--iterations", "2", "--budgets"])
        .arg(workspace_root().join("deploy/budgets.dashboard.toml"))
        .arg("--markdown")
        .arg(&markdown)
        .arg(&flow)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&markdown).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{report}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the dashboard broke its budget or a step failed:\n{stdout}\n{}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The walk really measured every page: each page view (named after the
    // step that opened it) has its LCP row.
    for step in [
        "sign-in page",
        "overview",
        "pages",
        "series",
        "flows",
        "alerts",
    ] {
        assert!(
            report.contains(&format!("| dashboard | page view {step} | LCP |")),
            "no LCP for step {step}:\n{report}"
        );
    }
}
