//! The collector over real HTTP on 127.0.0.1 with a temp SQLite file: every
//! endpoint, every rejection, dedup, idempotency, grouping, retention, restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vitalsign_collector::config::{Database, SiteConfig};
use vitalsign_collector::{Application, CollectorConfig};
use vitalsign_core::secret::Secret;
use vitalsign_test_support::collector::InProcess;
use vitalsign_test_support::wait::wait_for;

const AGENT: &str = "agent-token-1";
const QUERY: &str = "query-token-1";

/// The collector in this process (the one harness), with this file's requests.
type TestApp = InProcess;

fn config(db: &Path) -> CollectorConfig {
    let mut c = CollectorConfig {
        listen: "127.0.0.1:0".into(),
        db: Database::Sqlite(db.to_path_buf()),
        agent_tokens: vec![Secret::new(AGENT)],
        query_tokens: vec![Secret::new(QUERY)],
        ..CollectorConfig::default()
    };
    c.sites.insert(
        "demo".into(),
        SiteConfig {
            origins: vec!["https://shop.example".into()],
        },
    );
    c
}

async fn spawn_app(config: CollectorConfig) -> TestApp {
    InProcess::start(config).await
}

fn fixture(path: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn beacon(pv: &str, url: &str, reports: Value) -> Value {
    json!({"schema_version": 1, "site": "demo", "page_view_id": pv, "url": url,
           "navigation_type": "navigate", "device": "mobile", "snippet_version": "0.1.0",
           "reports": reports})
}

/// Requests this file makes, on the in-process collector.
trait Requests {
    fn app(&self) -> &InProcess;

    async fn post_beacon(&self, body: &Value, origin: Option<&str>) -> reqwest::Response {
        let mut req = self
            .app()
            .client
            .post(format!("{}/v1/rum", self.app().base))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body.to_string());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }

    async fn query(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .app()
            .client
            .get(format!("{}{path}", self.app().base))
            .bearer_auth(QUERY)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_run(&self, run: &Value, token: &str) -> reqwest::Response {
        self.app()
            .client
            .post(format!("{}/v1/runs", self.app().base))
            .bearer_auth(token)
            .json(run)
            .send()
            .await
            .unwrap()
    }
}

impl Requests for InProcess {
    fn app(&self) -> &InProcess {
        self
    }
}

#[tokio::test]
async fn beacons_are_stored_grouped_and_re_reports_replace() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(&dir.path().join("c.db"))).await;

    let valid = fixture("beacon/valid/full-page-view.json");
    let mut first = valid.clone();
    first["site"] = json!("demo");
    let r = app.post_beacon(&first, Some("https://shop.example")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    // CLS grows and is re-reported for the same page view: latest wins.
    let again = beacon(
        "v1-1763870000000-8841027731",
        "https://shop.example/product/987",
        json!([
        {"metric": "CLS", "value": 0.3, "rating": "poor"}]),
    );
    assert_eq!(
        app.post_beacon(&again, None).await.status(),
        StatusCode::NO_CONTENT
    );

    let (status, body) = app.query("/api/v1/summary?metric=CLS&range=1h").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["summary"]["count"], 1, "{body}");
    assert_eq!(body["summary"]["p75"], 0.3);
    assert_eq!(body["summary"]["poor"], 1.0);

    let (_, pages) = app.query("/api/v1/top-pages?metric=LCP&range=1h").await;
    assert_eq!(pages["pages"][0]["page_group"], "/product/:id", "{pages}");
    assert_eq!(pages["pages"][0]["site"], "demo");

    let (_, series) = app
        .query("/api/v1/series?metric=LCP&range=1h&bucket=10m")
        .await;
    assert_eq!(series["points"].as_array().unwrap().len(), 1, "{series}");
    assert_eq!(series["points"][0]["count"], 1);
    app.stop().await;
}

#[tokio::test]
async fn every_beacon_rejection_is_a_clear_4xx_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("c.db"));
    c.rate_limit_burst = 20.0;
    c.rate_limit_per_second = 0.001;
    let app = spawn_app(c).await;
    let ok = beacon(
        "pv-1",
        "https://shop.example/",
        json!([{"metric": "LCP", "value": 100, "rating": "good"}]),
    );

    let too_big = "x".repeat(70 * 1024);
    let r = app
        .client
        .post(format!("{}/v1/rum", app.base))
        .header("content-type", "text/plain")
        .body(too_big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let r = app
        .client
        .post(format!("{}/v1/rum", app.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("malformed JSON"));

    let invalid = fixture("beacon/invalid/negative-lcp.json");
    let mut doc = invalid["document"].clone();
    doc["site"] = json!("demo");
    let r = app.post_beacon(&doc, None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("reports[0].value"));

    let mut unknown = ok.clone();
    unknown["site"] = json!("elsewhere");
    let r = app.post_beacon(&unknown, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("not configured"));

    let r = app.post_beacon(&ok, Some("https://evil.example")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("evil.example"));

    let r = app
        .client
        .post(format!("{}/v1/rum", app.base))
        .header("content-type", "application/xml")
        .body(ok.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (_, summary) = app.query("/api/v1/summary?metric=LCP&range=1h").await;
    assert_eq!(
        summary["summary"]["count"], 0,
        "nothing from rejected bodies: {summary}"
    );

    // Burn the rest of the burst, then expect 429 with Retry-After.
    let mut limited = None;
    for i in 0..30 {
        let r = app
            .post_beacon(
                &beacon(
                    &format!("pv-r{i}"),
                    "https://shop.example/",
                    ok["reports"].clone(),
                ),
                None,
            )
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the rate limit kicks in");
    assert!(limited.headers().contains_key("retry-after"));

    let r = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/rum", app.base))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in [
        "too_large",
        "invalid",
        "unknown_site",
        "origin_not_allowed",
        "rate_limited",
        "content_type",
    ] {
        assert!(
            metrics.contains(&format!(
                "vitalsign_rejections_total{{reason=\"{reason}\"}}"
            )),
            "{reason} in {metrics}"
        );
    }
    assert!(metrics.contains("vitalsign_db_size_bytes"));
    app.stop().await;
}

#[tokio::test]
async fn runs_are_idempotent_authenticated_and_queryable_with_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(&dir.path().join("c.db"))).await;
    let mut run = fixture("run/valid/checkout-fail-with-screenshot.json");
    let png = b"\x89PNG\r\n\x1a\n not really a picture".to_vec();
    use sha2::Digest;
    run["artifacts"][0]["sha256"] = json!(hex::encode(sha2::Sha256::digest(&png)));
    run["artifacts"][0]["bytes"] = json!(png.len());

    assert_eq!(
        app.post_run(&run, "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_run(&run, AGENT).await.status(),
        StatusCode::CREATED
    );
    let again = app.post_run(&run, AGENT).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap()["status"],
        "already_stored"
    );

    let bad = fixture("run/invalid/finished-before-started.json");
    let r = app.post_run(&bad["document"], AGENT).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("finished_at_ms"));

    let url = format!(
        "{}/v1/runs/{}/artifacts/step-2-failure.png",
        app.base,
        run["run_id"].as_str().unwrap()
    );
    let put = |body: Vec<u8>| {
        app.client
            .put(&url)
            .bearer_auth(AGENT)
            .header("content-type", "image/png")
            .body(body)
            .send()
    };
    assert_eq!(
        put(b"tampered".to_vec()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put(png.clone()).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(put(png.clone()).await.unwrap().status(), StatusCode::OK);
    let got = app
        .client
        .get(&url)
        .bearer_auth(QUERY)
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), png);

    let (status, runs) = app.query("/api/v1/runs?flow=checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "stored once: {runs}"
    );
    assert_eq!(runs["runs"][0]["steps"][2]["outcome"], "fail");

    // Synthetic samples come from step vitals.
    let (_, s) = app
        .query("/api/v1/summary?metric=LCP&source=synthetic&flow=checkout&step=open%20home&from=1763869000000&to=1763871000000")
        .await;
    assert_eq!(s["summary"]["count"], 1, "{s}");
    assert_eq!(s["summary"]["p75"], 1650.2);

    // A version-2 run: each page view is a synthetic series of its own
    // (`page view NAME`), tagged with the page group of its URL.
    let v2 = fixture("run/valid/flow-page-views.json");
    assert_eq!(app.post_run(&v2, AGENT).await.status(), StatusCode::CREATED);
    let window = "from=1763869000000&to=1763871000000";
    let (_, s) = app
        .query(&format!("/api/v1/summary?metric=INP&source=synthetic&flow=checkout&step=page%20view%20open%20reviews&{window}"))
        .await;
    assert_eq!(s["summary"]["count"], 1, "{s}");
    assert_eq!(s["summary"]["p75"], 152.0);
    let (_, s) = app
        .query(&format!(
            "/api/v1/summary?metric=LCP&source=synthetic&page_group=%2Fproduct%2Flantern&{window}"
        ))
        .await;
    assert_eq!(
        s["summary"]["count"], 1,
        "the page view, tagged with its page group: {s}"
    );
    assert_eq!(s["summary"]["p75"], 480.0);
    // The step that opened it keeps its own series.
    let (_, s) = app
        .query(&format!(
            "/api/v1/summary?metric=INP&source=synthetic&flow=checkout&step=open%20product&{window}"
        ))
        .await;
    assert_eq!(s["summary"]["p75"], 96.0, "{s}");

    let (status, body) = app.query("/api/v1/summary?metric=FID").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("`metric`"));
    let (status, body) = app.query("/api/v1/summary?metric=LCP&sourse=rum").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("`sourse`"));
    let unauth = app
        .client
        .get(format!("{}/api/v1/runs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn snippet_health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(&dir.path().join("c.db"))).await;
    let r = app
        .client
        .get(format!("{}/v1/snippet.js", app.base))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let served = r.bytes().await.unwrap();
    let built = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web-snippet/dist/vitalsign.min.js"),
    )
    .unwrap();
    assert_eq!(served.to_vec(), built, "served byte for byte");
    let r = app
        .client
        .get(format!("{}/v1/snippet.js", app.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    for path in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn retention_prunes_raw_rows_and_restart_keeps_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let app = spawn_app(config(&db)).await;
    let run = fixture("run/valid/checkout-pass.json"); // started in Nov 2025
    assert_eq!(
        app.post_run(&run, AGENT).await.status(),
        StatusCode::CREATED
    );
    for i in 0..20 {
        let b = beacon(
            &format!("pv-{i}"),
            &format!("https://shop.example/item/{i}"),
            json!([{"metric": "TTFB", "value": 100 + i, "rating": "good"}]),
        );
        assert_eq!(
            app.post_beacon(&b, None).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    app.stop().await;

    // Restart on the same file: everything acknowledged is there.
    let mut c = config(&db);
    c.retention_days = 1;
    let app = spawn_app(c).await;
    let (_, s) = app.query("/api/v1/summary?metric=TTFB&range=1h").await;
    assert_eq!(s["summary"]["count"], 20, "{s}");
    // The pruner runs at startup: the year-old run is past a 1-day retention.
    wait_for("the old run pruned", Duration::from_secs(5), async || {
        let (_, runs) = app.query("/api/v1/runs").await;
        runs["runs"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    // Hourly rollups outlive raw rows: the run's LCP is still in a long-range summary.
    let (_, s) = app
        .query("/api/v1/summary?metric=LCP&source=synthetic&from=1763856000000&to=1763942400000")
        .await;
    assert_eq!(s["summary"]["resolution"], "rollup");
    assert_eq!(s["summary"]["count"], 1, "{s}");
    app.stop().await;
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Application::build(config(&db)).await.err().unwrap();
    assert!(
        format!("{err:#}").contains("newer than this collector"),
        "{err:#}"
    );
}

/// Shutdown (the token `main` cancels on SIGTERM) while eight clients post
/// beacons: every beacon answered 204 is in the database afterwards, and
/// every request the server had started is answered rather than cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_drains_requests_in_flight_and_keeps_every_acknowledged_beacon() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let mut c = config(&db);
    c.rate_limit_per_second = 100_000.0;
    c.rate_limit_burst = 100_000.0;
    let app = spawn_app(c).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for w in 0..8 {
        let (url, acked) = (app.url("/v1/rum"), acked.clone());
        let client = reqwest::Client::new();
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("pv-{w}-{i}");
                let body = beacon(
                    &id,
                    "https://shop.example/p/1",
                    json!([{"metric": "TTFB", "value": 90, "rating": "good"}]),
                );
                let sent = client
                    .post(&url)
                    .header("content-type", "text/plain;charset=UTF-8")
                    .header("origin", "https://shop.example")
                    .body(body.to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => acked.lock().unwrap().push(id),
                    Ok(r) => panic!("{id}: {}", r.status()),
                    // Closed after its last answer, then refused: the shutdown is under way.
                    Err(_) => break,
                }
            }
        }));
    }
    wait_for(
        "200 acknowledged beacons",
        Duration::from_secs(30),
        async || (acked.lock().unwrap().len() >= 200).then_some(()),
    )
    .await;
    app.stop().await;
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: std::collections::HashSet<String> = conn
        .prepare("SELECT origin_id FROM measurements WHERE step_index = -1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged beacons lost in the shutdown: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
