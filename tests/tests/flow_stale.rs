//! A flow whose agent stops sending goes stale: the real agent probes the
//! bundled demo site (served by the real collector) in headless Chromium every
//! two seconds, is stopped after a few results, and the collector's
//! `flow_stale` rule mails a real SMTP server exactly once; the flow is stale
//! in the flow-health read the dashboard uses and firing in `/api/v1/alerts`.
//! When the agent comes back, its first result resolves the alert with an
//! email threaded under the firing one.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vitalsign_collector::store::flows::{self, FlowHealth};
use vitalsign_test_support::agent::{AgentProcess, agent_config};
use vitalsign_test_support::wait::wait_for;
use vitalsign_test_support::{CollectorProcess, Process, SmtpSink, workspace_root};

const AGENT_TOKEN: &str = "agent-secret-token";
const QUERY_TOKEN: &str = "query-token";
const FLOW: &str = "stale-demo";
const LOCATION: &str = "eu-west";

fn collector_config(smtp_port: u16) -> String {
    format!(
        r#"agent_tokens = ["{AGENT_TOKEN}"]
query_tokens = ["{QUERY_TOKEN}"]
demo_site_dir = "{demo}"

[alerts]
evaluate_every_secs = 1
public_url = "https://vitals.example"

# Three intervals of silence alone decide (the default also waits 2 min).
[alerts.flow]
stale_min_secs = 0

[alerts.routes.default]
to = ["oncall@example.com"]

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "plain"
from = "vitalsign <alerts@vitals.example>"
timeout_secs = 5
retry_initial_secs = 0.2
retry_max_secs = 1.0
poll_ms = 100
"#,
        demo = workspace_root().join("deploy/demo-site").display()
    )
}

/// The first steps of `deploy/flows/demo.toml` (home, hero, product page) on
/// a two-second schedule, against the demo site the collector serves.
fn write_flow(dir: &Path, collector_url: &str) {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("stale-demo.toml"),
        format!(
            r##"name = "{FLOW}"
base_url = "{collector_url}/demo/"
profile = "desktop"
schedule = "2s"

[timeouts]
step = "15s"
flow = "30s"

[[steps]]
name = "home"
goto = "/"

[[steps]]
assert = {{ visible = "#hero" }}

[[steps]]
name = "open product"
click = "#product-link"

[[steps]]
wait_for = {{ selector = "#add-to-cart" }}
"##
        ),
    )
    .unwrap();
}

fn start_agent(dir: &Path, collector_url: &str) -> Process {
    let config =
        agent_config(dir, collector_url, AGENT_TOKEN, LOCATION) + "shutdown_grace_secs = 10\n";
    AgentProcess::start(dir, &config).process
}

/// Outcomes of the stored runs of the flow, oldest first.
fn stored_outcomes(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT outcome FROM runs WHERE flow = ?1 ORDER BY started_at_ms")
        .unwrap();
    stmt.query_map([FLOW], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The flow as the dashboard's overview reads it.
fn health(db: &Path) -> FlowHealth {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let now = vitalsign_collector::clock::Clock::system().now_ms();
    let mut all = flows::flow_health(&conn, now, 0).unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .bearer_auth(QUERY_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// The dashboard's flows page as a signed-in person sees it: the row of
/// this flow × location, as text between its tags.
async fn flows_page_row(base: &str) -> String {
    // The sign-in answer is a redirect whose cookie is the session.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = plain
        .post(format!("{base}/signin"))
        .form(&[("token", QUERY_TOKEN), ("next", "/flows")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "sign-in");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = plain
        .get(format!("{base}/flows"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let row = html
        .split("<tr")
        .skip(1)
        .find(|r| r.contains(&format!(">{FLOW}<")) && r.contains(&format!(">{LOCATION}<")))
        .unwrap_or_else(|| panic!("no row for {FLOW} at {LOCATION} on /flows:\n{html}"));
    // Text only: what a reader of the row sees.
    let mut text = String::new();
    // `row` starts inside its `<tr …>` tag.
    let mut in_tag = true;
    for c in row.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A gauge or counter from `/metrics`.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = get_text(client, &format!("{base}/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// The flow's stale alert as `/api/v1/alerts` lists it.
async fn stale_alert(client: &reqwest::Client, base: &str) -> Option<Value> {
    let v: Value =
        serde_json::from_str(&get_text(client, &format!("{base}/api/v1/alerts")).await).unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "flow_stale" && a["flow"] == FLOW && a["location"] == LOCATION)
        .cloned()
}

fn subjects(mail: &[Value]) -> Vec<String> {
    mail.iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_makes_its_flow_stale_and_the_alert_is_mailed_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&dir.path().join("mail"));
    let collector = CollectorProcess::start(dir.path(), &collector_config(sink.port));
    let base = collector.base_url.clone();
    let client = reqwest::Client::new();
    write_flow(dir.path(), &base);

    // Three passing results, so the collector knows the flow's usual interval.
    let mut agent = start_agent(dir.path(), &base);
    wait_for(
        "three results of the flow",
        Duration::from_secs(90),
        async || (stored_outcomes(&collector.db).len() >= 3).then_some(()),
    )
    .await;
    let fresh = health(&collector.db);
    assert!(!fresh.stale, "{fresh:?}");
    let interval = fresh.median_gap_ms.expect("an interval after three runs");
    assert!((1_500..=10_000).contains(&interval), "{fresh:?}");
    let before = stale_alert(&client, &base).await;
    assert!(
        before.as_ref().is_none_or(|a| a["state"] != "firing"),
        "stale while the agent runs: {before:?}"
    );

    // The agent stops (SIGTERM, so its last results are delivered first).
    assert!(
        tokio::task::block_in_place(|| agent.terminate(Duration::from_secs(30))),
        "the agent did not stop gracefully; its log:\n{}",
        agent.log().join("\n")
    );
    let outcomes = stored_outcomes(&collector.db);
    assert!(
        outcomes.iter().all(|o| o == "pass"),
        "the demo flow should pass: {outcomes:?}; the agent's log:\n{}",
        agent.log().join("\n")
    );
    let stopped = Instant::now();

    let firing = wait_for(
        "the stale-flow email",
        Duration::from_secs(60),
        async || sink.received().into_iter().next(),
    )
    .await;
    let subject = firing["subject"].as_str().unwrap();
    let prefix = format!("[FIRING] flow {FLOW} at {LOCATION}: no result for ");
    assert!(
        subject.starts_with(&prefix) && subject.contains(" (usually every "),
        "{subject}"
    );
    let text = firing["text"].as_str().unwrap().replace("\r\n", "\n");
    eprintln!(
        "stale-flow email after {:?}:\n{subject}\n\n{text}",
        stopped.elapsed()
    );
    assert!(
        text.contains(&format!(
            "  open        https://vitals.example/flows/runs?flow={FLOW}&location={LOCATION}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("  check       is the agent at {LOCATION} running")),
        "{text}"
    );
    // Stale means more than three intervals of silence (the test measures
    // from the stop, which came after the last result).
    assert!(
        stopped.elapsed() < Duration::from_millis(3 * interval as u64 + 20_000),
        "the alert took {:?} for a {interval} ms interval",
        stopped.elapsed()
    );

    // The API shows it firing with the numbers the email gave.
    let alert = stale_alert(&client, &base).await.expect("the stale alert");
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["notified"], true, "{alert}");
    assert_eq!(alert["message_id"], firing["message_id"], "{alert}");
    let numbers = &alert["fired_numbers"];
    let silent = numbers["silent_ms"].as_i64().unwrap();
    let fired_interval = numbers["interval_ms"].as_i64().unwrap();
    assert!(silent > 3 * fired_interval, "{alert}");
    let firing_list = get_text(&client, &format!("{base}/api/v1/alerts?state=firing")).await;
    assert!(firing_list.contains("\"flow_stale\""), "{firing_list}");
    // And the dashboard's read marks the flow stale.
    let gone = health(&collector.db);
    assert!(gone.stale, "{gone:?}");
    // And the page shows it: the word "stale" in the flow's row.
    let row = flows_page_row(&base).await;
    // The word itself (the flow's name, stale-demo, holds it too).
    let says_stale = |row: &str| row.split_whitespace().any(|w| w == "stale");
    assert!(
        says_stale(&row),
        "the flows page does not mark it stale: {row}"
    );

    // Once: several more evaluations and an empty outbox later, still one email.
    let ticks = metric(&client, &base, "vitalsign_alert_evaluation_seconds_count").await;
    wait_for(
        "five more evaluations with nothing left to send",
        Duration::from_secs(30),
        async || {
            let now = metric(&client, &base, "vitalsign_alert_evaluation_seconds_count").await;
            let depth = metric(&client, &base, "vitalsign_alert_outbox_depth").await;
            (now >= ticks + 5.0 && depth == 0.0).then_some(())
        },
    )
    .await;
    let mail = sink.received();
    assert_eq!(subjects(&mail), [subject], "exactly one email");

    // The agent comes back: its first result resolves the alert, in the same thread.
    let agent = start_agent(dir.path(), &base);
    let resolved = wait_for("the resolved email", Duration::from_secs(90), async || {
        sink.received().into_iter().nth(1)
    })
    .await;
    let subject = resolved["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!(
            "[RESOLVED] flow {FLOW} at {LOCATION} delivering again (silent for "
        )),
        "{subject}"
    );
    assert_eq!(resolved["in_reply_to"], firing["message_id"]);
    assert_eq!(resolved["references"], firing["message_id"]);
    eprintln!(
        "{subject}\n\n{}",
        resolved["text"].as_str().unwrap().replace("\r\n", "\n")
    );
    let alert = stale_alert(&client, &base).await.unwrap();
    assert_eq!(alert["state"], "resolved", "{alert}");
    assert!(!health(&collector.db).stale);
    let row = flows_page_row(&base).await;
    assert!(
        !says_stale(&row),
        "still marked stale after the agent came back: {row}"
    );
    assert_eq!(sink.received().len(), 2);
    let mut agent = agent;
    assert!(tokio::task::block_in_place(
        || agent.terminate(Duration::from_secs(30))
    ));
}
