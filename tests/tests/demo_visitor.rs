//! The demo's pretend visitor (`vitalsign-agent demo-visitor`) against the real
//! collector serving the bundled demo site: the real snippet, as the collector
//! serves it, sends field data for both devices and every page the visitor
//! browsed, none of it refused; SIGTERM ends the visitor and its browser with
//! every process the browser started.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vitalsign_probes::process::{descendants, running};
use vitalsign_test_support::{CollectorProcess, Process, binary, workspace_root};

const QUERY_TOKEN: &str = "query-token";

fn collector_config() -> String {
    format!(
        "agent_tokens = [\"agent-token\"]\nquery_tokens = [\"{QUERY_TOKEN}\"]\n\
         demo_site_dir = \"{}\"\n\
         # The port is chosen by the OS, so the origin cannot be listed in advance.\n\
         [sites.demo]\norigins = [\"*\"]\n",
        workspace_root().join("deploy/demo-site").display()
    )
}

async fn query(client: &reqwest::Client, collector: &CollectorProcess, path: &str) -> Value {
    let response = client
        .get(format!("{}{path}", collector.base_url))
        .bearer_auth(QUERY_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn rum_lcp_count(
    client: &reqwest::Client,
    collector: &CollectorProcess,
    device: &str,
) -> u64 {
    let summary = query(
        client,
        collector,
        &format!("/api/v1/summary?metric=LCP&source=rum&site=demo&device={device}&range=1h"),
    )
    .await;
    summary["summary"]["count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_sends_field_data_for_both_devices_and_leaves_no_browser_behind() {
    let dir = tempfile::tempdir().unwrap();
    let collector = CollectorProcess::start(dir.path(), &collector_config());
    let mut command = Command::new(binary("vitalsign-agent"));
    command
        .args(["demo-visitor", "--every", "1s", "--base"])
        .arg(format!("{}/demo/", collector.base_url))
        .current_dir(dir.path());
    let mut visitor = Process::spawn("vitalsign-agent demo-visitor", command);
    let launched = visitor.wait_for_line("browser launched", Duration::from_secs(30));
    let browser: u32 = launched
        .split("pid=Some(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no browser pid in {launched:?}"));

    // Visits alternate desktop and mobile, product and search journeys; the
    // first two take about 15 s and cover both devices and all three pages.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let desktop = rum_lcp_count(&client, &collector, "desktop").await;
        let mobile = rum_lcp_count(&client, &collector, "mobile").await;
        let pages = query(
            &client,
            &collector,
            "/api/v1/top-pages?metric=FCP&source=rum&site=demo&range=1h&limit=50",
        )
        .await;
        let groups: Vec<&str> = pages["pages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["page_group"].as_str())
            .collect();
        let every_page = ["/demo", "/demo/product.html", "/demo/search.html"]
            .iter()
            .all(|page| groups.contains(page));
        if desktop > 0 && mobile > 0 && every_page {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "within 90 s: RUM LCP desktop {desktop}, mobile {mobile}; FCP for pages {groups:?}; visitor log:\n{}",
            visitor.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = client
        .get(format!("{}/metrics", collector.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rum: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("vitalsign_http_requests_total{route=\"/v1/rum\""))
        .collect();
    assert!(
        !rum.is_empty() && rum.iter().all(|l| l.contains("status=\"204\"")),
        "every beacon is accepted: {rum:?}"
    );

    let mut family = descendants(browser);
    family.push(browser);
    assert!(family.len() > 1, "a running Chromium has helper processes");
    assert!(
        visitor.terminate(Duration::from_secs(15)),
        "the visitor did not stop within 15 s of SIGTERM; its log:\n{}",
        visitor.log().join("\n")
    );
    let status = visitor.child.try_wait().unwrap().expect("exited");
    assert!(status.success(), "exit status {status} after SIGTERM");
    let log = visitor.log().join("\n");
    assert!(log.contains("visit finished"), "{log}");
    assert!(
        !log.contains("killing it"),
        "the browser had to be killed instead of closing: {log}"
    );
    let left: Vec<u32> = family.into_iter().filter(|p| running(*p)).collect();
    assert!(left.is_empty(), "browser processes left running: {left:?}");
}
