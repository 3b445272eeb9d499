//! Attribution kept at ingest: beacons sent through the real `POST /v1/rum`,
//! ranked through `GET /api/v1/attribution` over 30 days, re-reports that move
//! a count, and a database from schema version 2 migrated in place.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use vitalsign_collector::CollectorConfig;
use vitalsign_collector::config::{Database, SiteConfig};
use vitalsign_collector::store::migrations::{MIGRATIONS, current_version};
use vitalsign_core::secret::Secret;
use vitalsign_test_support::collector::InProcess;

const QUERY: &str = "query-token-1";
const ORIGIN: &str = "https://shop.example";

/// The collector in this process (the one harness), with this file's requests.
type TestApp = InProcess;

fn config(db: &Path) -> CollectorConfig {
    let mut c = CollectorConfig {
        listen: "127.0.0.1:0".into(),
        db: Database::Sqlite(db.to_path_buf()),
        query_tokens: vec![Secret::new(QUERY)],
        ..CollectorConfig::default()
    };
    c.sites.insert(
        "demo".into(),
        SiteConfig {
            origins: vec![ORIGIN.into()],
        },
    );
    c
}

async fn spawn_app(config: CollectorConfig) -> TestApp {
    InProcess::start(config).await
}

/// A page view's beacon: `device`, `navigation_type` and the optional
/// `effective_type` as the snippet sends them.
fn beacon(
    pv: &str,
    device: &str,
    navigation: &str,
    connection: Option<&str>,
    reports: Value,
) -> Value {
    let mut b = json!({"schema_version": 1, "site": "demo", "page_view_id": pv,
           "url": "https://shop.example/product/1", "navigation_type": navigation,
           "device": device, "snippet_version": "0.1.0", "reports": reports});
    if let Some(c) = connection {
        b["effective_type"] = json!(c);
    }
    b
}

fn rating(metric: &str, value: f64) -> &'static str {
    let (good, poor) = match metric {
        "LCP" => (2500.0, 4000.0),
        "INP" => (200.0, 500.0),
        "CLS" => (0.1, 0.25),
        "FCP" => (1800.0, 3000.0),
        _ => panic!("no bounds for {metric} in this test"),
    };
    if value <= good {
        "good"
    } else if value <= poor {
        "needs-improvement"
    } else {
        "poor"
    }
}

fn report(metric: &str, value: f64, attribution: Value) -> Value {
    let mut r = json!({"metric": metric, "value": value, "rating": rating(metric, value)});
    if attribution != json!({}) {
        r["attribution"] = attribution;
    }
    r
}

fn inp_report(value: f64, target: &str, split: [f64; 3]) -> Value {
    report(
        "INP",
        value,
        json!({"target": target, "input_delay": split[0], "processing": split[1],
               "presentation": split[2], "interaction": "pointer"}),
    )
}

/// Requests this file makes, on the in-process collector.
trait Requests {
    fn app(&self) -> &InProcess;

    async fn send(&self, body: &Value) {
        let r = self
            .app()
            .client
            .post(format!("{}/v1/rum", self.app().base))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", ORIGIN)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{}",
            r.text().await.unwrap()
        );
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.app().client.get(format!("{}{path}", self.app().base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `/api/v1/attribution?…`, which must answer 200.
    async fn attribution(&self, query: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/v1/attribution?{query}"), Some(QUERY))
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body
    }

    /// The (item, count) pairs of a ranking, in order.
    async fn ranking(&self, query: &str) -> Vec<(String, u64)> {
        let body = self.app().attribution(query).await;
        body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {body}"))
            .iter()
            .map(|i| {
                (
                    i["item"].as_str().unwrap().to_string(),
                    i["count"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    async fn error(&self, query: &str) -> String {
        let (status, body) = self
            .get(&format!("/api/v1/attribution?{query}"), Some(QUERY))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        body["error"].as_str().unwrap().to_string()
    }
}

impl Requests for InProcess {
    fn app(&self) -> &InProcess {
        self
    }
}

fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
    expected.iter().map(|(i, c)| (i.to_string(), *c)).collect()
}

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Four page views: two on mobile with the hero image, one desktop reload on
/// 3G with a text LCP, one back-forward visit without attribution or connection.
async fn seed(app: &TestApp) {
    app.send(&beacon(
        "pv-1",
        "mobile",
        "navigate",
        Some("4g"),
        json!([
            report(
                "LCP",
                3000.0,
                json!({"target": "main>img.hero",
                   "url": "https://shop.example/img/hero.jpg?w=800&sig=abc"})
            ),
            report("CLS", 0.2, json!({"target": "#promo"})),
            inp_report(300.0, "button#buy", [20.0, 250.0, 30.0]),
        ]),
    ))
    .await;
    app.send(&beacon(
        "pv-2",
        "mobile",
        "navigate",
        Some("4g"),
        json!([
            report(
                "LCP",
                2000.0,
                json!({"target": "main>img.hero",
                   "url": "https://shop.example/img/hero.jpg#main"})
            ),
            report("CLS", 0.05, json!({"target": "#promo"})),
            inp_report(100.0, "button#buy", [10.0, 70.0, 20.0]),
        ]),
    ))
    .await;
    app.send(&beacon(
        "pv-3",
        "desktop",
        "reload",
        Some("3g"),
        json!([
            report("LCP", 1000.0, json!({"target": "h1.title"})),
            report("CLS", 0.3, json!({"target": "div.ad"})),
            inp_report(500.0, "a.menu", [50.0, 400.0, 50.0]),
        ]),
    ))
    .await;
    app.send(&beacon(
        "pv-4",
        "mobile",
        "back-forward",
        None,
        json!([
            report("LCP", 1500.0, json!({})),
            report("FCP", 800.0, json!({}))
        ]),
    ))
    .await;
}

#[tokio::test]
async fn beacon_attribution_is_ranked_over_30_days() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let app = spawn_app(config(&db)).await;
    seed(&app).await;

    let lcp = app
        .attribution("metric=LCP&kind=lcp_element&range=30d")
        .await;
    assert_eq!(lcp["metric"], "LCP");
    assert_eq!(lcp["kind"], "lcp_element");
    let hero = &lcp["items"][0];
    assert_eq!(hero["item"], "main>img.hero", "{lcp}");
    assert_eq!(hero["count"], 2);
    assert!(close(&hero["share"], 0.5), "{hero}");
    assert!(close(&hero["mean_value"], 2500.0), "{hero}");
    assert!(
        hero["mean_input_delay"].is_null(),
        "no split for LCP: {hero}"
    );
    // The page view without a selector counts under "", so shares are of all LCPs.
    assert_eq!(
        app.ranking("metric=LCP&kind=lcp_element&range=30d").await,
        pairs(&[("main>img.hero", 2), ("", 1), ("h1.title", 1)])
    );
    // The query string and fragment are gone: both hero URLs are one item.
    assert_eq!(
        app.ranking("metric=LCP&kind=lcp_resource&range=30d").await,
        pairs(&[("", 2), ("https://shop.example/img/hero.jpg", 2)])
    );

    let inp = app
        .attribution("metric=INP&kind=inp_target&range=30d")
        .await;
    let buy = &inp["items"][0];
    assert_eq!(buy["item"], "button#buy", "{inp}");
    assert_eq!(buy["count"], 2);
    assert!(close(&buy["mean_value"], 200.0), "{buy}");
    assert!(close(&buy["mean_input_delay"], 15.0), "{buy}");
    assert!(close(&buy["mean_processing"], 160.0), "{buy}");
    assert!(close(&buy["mean_presentation"], 25.0), "{buy}");
    assert_eq!(inp["items"][1]["item"], "a.menu");
    assert!(close(&inp["items"][1]["mean_processing"], 400.0), "{inp}");
    assert_eq!(inp["items"].as_array().unwrap().len(), 2, "{inp}");

    assert_eq!(
        app.ranking("metric=CLS&kind=cls_source&range=30d").await,
        pairs(&[("#promo", 2), ("div.ad", 1)])
    );

    // Navigation and connection count each page view once per metric.
    assert_eq!(
        app.ranking("metric=LCP&kind=navigation_type&range=30d")
            .await,
        pairs(&[("navigate", 2), ("back-forward", 1), ("reload", 1)])
    );
    assert_eq!(
        app.ranking("metric=LCP&kind=connection&range=30d").await,
        pairs(&[("4g", 2), ("3g", 1), ("unknown", 1)])
    );
    assert_eq!(
        app.ranking("metric=FCP&kind=connection&range=30d").await,
        pairs(&[("unknown", 1)])
    );
    let reload = app
        .attribution("metric=INP&kind=navigation_type&range=30d")
        .await;
    assert_eq!(reload["items"][1]["item"], "reload", "{reload}");
    assert!(close(&reload["items"][1]["mean_value"], 500.0), "{reload}");

    // Filters, limit, and a range that ends before the data.
    let desktop = app
        .attribution("metric=LCP&kind=lcp_element&range=30d&device=desktop&site=demo&page_group=/product/:id")
        .await;
    assert_eq!(desktop["items"][0]["item"], "h1.title", "{desktop}");
    assert!(close(&desktop["items"][0]["share"], 1.0), "{desktop}");
    assert_eq!(desktop["items"].as_array().unwrap().len(), 1);
    assert_eq!(desktop["filter"]["device"], "desktop");
    assert!(
        app.ranking("metric=LCP&kind=lcp_element&range=30d&site=elsewhere")
            .await
            .is_empty()
    );
    let top = app
        .attribution("metric=LCP&kind=lcp_element&range=30d&limit=1")
        .await;
    assert_eq!(top["items"].as_array().unwrap().len(), 1, "{top}");
    assert!(
        close(&top["items"][0]["share"], 0.5),
        "share of all items: {top}"
    );
    let before = now_ms() - 2 * 3_600_000;
    assert!(
        app.ranking(&format!(
            "metric=LCP&kind=lcp_element&range=30d&to={before}"
        ))
        .await
        .is_empty()
    );

    // Every rejection names what was wrong and what would be valid.
    let e = app.error("metric=LCP&kind=lcp_selector&range=30d").await;
    assert!(
        e.contains("`kind`") && e.contains("lcp_element") && e.contains("connection"),
        "{e}"
    );
    let e = app.error("metric=LCP&kind=inp_target").await;
    assert!(
        e.contains("`kind`") && e.contains("lcp_resource") && !e.contains("cls_source"),
        "{e}"
    );
    let e = app.error("metric=CLS").await;
    assert!(
        e.contains("`kind` is required") && e.contains("cls_source"),
        "{e}"
    );
    let e = app.error("metric=TBT&kind=connection").await;
    assert!(e.contains("`metric`"), "{e}");
    let e = app.error("metric=LCP&kind=lcp_element&flow=checkout").await;
    assert!(e.contains("`flow`"), "{e}");
    let e = app.error("metric=LCP&kind=lcp_element&limit=0").await;
    assert!(e.contains("`limit`"), "{e}");
    let (status, _) = app
        .get("/api/v1/attribution?metric=LCP&kind=lcp_element", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;

    // One dictionary row per distinct text: 6 selectors, 1 URL, 3 navigation
    // types, 3 connection types, however often each came.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let texts: Vec<(String, i64)> = conn
        .prepare("SELECT kind, count(*) FROM attribution_texts GROUP BY kind ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        texts,
        vec![
            ("connection".to_string(), 3),
            ("navigation_type".to_string(), 3),
            ("selector".to_string(), 6),
            ("url".to_string(), 1)
        ]
    );
}

#[tokio::test]
async fn a_re_report_moves_the_count_to_its_new_item() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(&dir.path().join("c.db"))).await;
    app.send(&beacon(
        "pv-a",
        "mobile",
        "navigate",
        Some("4g"),
        json!([
            inp_report(150.0, "button#open", [10.0, 120.0, 20.0]),
            report("CLS", 0.02, json!({"target": "img.logo"}))
        ]),
    ))
    .await;
    app.send(&beacon(
        "pv-b",
        "mobile",
        "navigate",
        Some("4g"),
        json!([inp_report(180.0, "button#open", [20.0, 140.0, 20.0])]),
    ))
    .await;
    // pv-a's worst interaction is now another one, and its CLS grew from the
    // same source; the page view's connection changed meanwhile.
    app.send(&beacon(
        "pv-a",
        "mobile",
        "navigate",
        Some("3g"),
        json!([
            inp_report(400.0, "ul.menu", [30.0, 340.0, 30.0]),
            report("CLS", 0.3, json!({"target": "img.logo"}))
        ]),
    ))
    .await;

    let inp = app
        .attribution("metric=INP&kind=inp_target&range=30d")
        .await;
    let items = inp["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{inp}");
    assert_eq!(
        (&items[0]["item"], &items[0]["count"]),
        (&json!("button#open"), &json!(1)),
        "{inp}"
    );
    assert!(close(&items[0]["mean_value"], 180.0), "{inp}");
    assert!(
        close(&items[0]["mean_input_delay"], 20.0),
        "only pv-b's split is left: {inp}"
    );
    assert_eq!(
        (&items[1]["item"], &items[1]["count"]),
        (&json!("ul.menu"), &json!(1)),
        "{inp}"
    );
    assert!(close(&items[1]["mean_value"], 400.0), "{inp}");
    assert!(close(&items[1]["mean_processing"], 340.0), "{inp}");
    assert!(close(&items[0]["share"], 0.5), "{inp}");

    let cls = app
        .attribution("metric=CLS&kind=cls_source&range=30d")
        .await;
    assert_eq!(cls["items"][0]["count"], 1, "{cls}");
    assert!(
        close(&cls["items"][0]["mean_value"], 0.3),
        "latest value only: {cls}"
    );

    assert_eq!(
        app.ranking("metric=INP&kind=navigation_type&range=30d")
            .await,
        pairs(&[("navigate", 2)])
    );
    assert_eq!(
        app.ranking("metric=INP&kind=connection&range=30d").await,
        pairs(&[("3g", 1), ("4g", 1)])
    );
    let (_, summary) = app
        .get("/api/v1/summary?metric=INP&range=1h", Some(QUERY))
        .await;
    assert_eq!(summary["summary"]["count"], 2, "{summary}");

    // Back to the first target: the count moves again, never doubles.
    app.send(&beacon(
        "pv-a",
        "mobile",
        "navigate",
        Some("3g"),
        json!([inp_report(450.0, "button#open", [40.0, 380.0, 30.0])]),
    ))
    .await;
    assert_eq!(
        app.ranking("metric=INP&kind=inp_target&range=30d").await,
        pairs(&[("button#open", 2)])
    );
    app.stop().await;
}

#[tokio::test]
async fn a_schema_2_database_is_migrated_and_keeps_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let stored_ms = now_ms() - 20 * 60_000;
    {
        // What a collector of schema version 2 left behind.
        let conn = rusqlite::Connection::open(&db).unwrap();
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO samples (ts_ms, site, page_group, metric, value, device, source, flow, step, location, origin_id, step_index)
             VALUES (?1, 'demo', '/product/:id', 'CLS', 0.05, 'mobile', 'rum', '', '', '', 'pv-old', 0)",
            [stored_ms],
        )
        .unwrap();
    }
    let app = spawn_app(config(&db)).await;
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, current_version());
        assert!(current_version() >= 3);
    }
    let (status, summary) = app
        .get("/api/v1/summary?metric=CLS&range=1h", Some(QUERY))
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["summary"]["count"], 1, "{summary}");
    assert_eq!(summary["summary"]["p75"], 0.05, "{summary}");
    // The old sample added nothing to the attribution counts...
    assert!(
        app.ranking("metric=CLS&kind=cls_source&range=30d")
            .await
            .is_empty()
    );

    // ...so its re-report adds once and takes nothing back.
    app.send(&beacon(
        "pv-old",
        "mobile",
        "navigate",
        Some("4g"),
        json!([report("CLS", 0.2, json!({"target": "div.banner"}))]),
    ))
    .await;
    let (_, summary) = app
        .get("/api/v1/summary?metric=CLS&range=1h", Some(QUERY))
        .await;
    assert_eq!(summary["summary"]["count"], 1, "{summary}");
    assert_eq!(summary["summary"]["p75"], 0.2, "{summary}");
    assert_eq!(
        app.ranking("metric=CLS&kind=cls_source&range=30d").await,
        pairs(&[("div.banner", 1)])
    );
    assert_eq!(
        app.ranking("metric=CLS&kind=navigation_type&range=30d")
            .await,
        pairs(&[("navigate", 1)])
    );
    app.stop().await;
}
