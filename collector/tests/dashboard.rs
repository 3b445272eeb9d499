//! The dashboard's flows and alerts views over real HTTP on 127.0.0.1 with a
//! temp SQLite file: sign-in, the numbers of runs sent through `/v1/runs` on
//! the flows, runs and run pages, screenshots behind the session, the alert
//! pages with the email from the outbox, and forms that change nothing
//! without a session and its CSRF token. Every view also answers CSV and JSON.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vitalsign_collector::CollectorConfig;
use vitalsign_collector::config::{AlertRoute, Database, SmtpConfig};
use vitalsign_collector::store::NewRun;
use vitalsign_collector::store::alerts::Delivery;
use vitalsign_core::secret::Secret;
use vitalsign_core::wire::ProbeRun;
use vitalsign_test_support::HeldPort;
use vitalsign_test_support::collector::InProcess;
use vitalsign_test_support::wait::wait_for;

const AGENT: &str = "agent-token-1";
const QUERY: &str = "query-token-1";

/// The collector in this process (the one harness), with this file's requests.
type App = InProcess;

/// A port nothing listens on: the SMTP server of a collector whose emails
/// stay in the outbox (the alert page shows them from there). Held (bound,
/// refusing) for the life of the test binary, so nothing else takes it.
fn closed_port() -> u16 {
    Box::leak(Box::new(HeldPort::new())).port()
}

fn config(db: &Path) -> CollectorConfig {
    let mut c = CollectorConfig {
        listen: "127.0.0.1:0".into(),
        db: Database::Sqlite(db.to_path_buf()),
        agent_tokens: vec![Secret::new(AGENT)],
        query_tokens: vec![Secret::new(QUERY)],
        ..CollectorConfig::default()
    };
    c.alerts.enabled = false;
    c
}

/// Alerts evaluated every second and emailed to a server that is not there,
/// retried only after an hour: each email stays `pending` in the outbox.
fn alerting_config(db: &Path) -> CollectorConfig {
    let mut c = config(db);
    c.alerts.enabled = true;
    c.alerts.evaluate_every_secs = 1;
    c.alerts.routes.insert(
        "default".into(),
        AlertRoute {
            to: vec!["oncall@example.com".into()],
        },
    );
    c.smtp = SmtpConfig {
        host: "127.0.0.1".into(),
        port: closed_port(),
        tls: vitalsign_collector::config::SmtpTls::Plain,
        from: "vitalsign <alerts@vitals.example>".into(),
        timeout_secs: 2,
        retry_initial_secs: 3600.0,
        retry_max_secs: 3600.0,
        poll_ms: 100,
        ..SmtpConfig::default()
    };
    c
}

async fn spawn(config: CollectorConfig) -> App {
    InProcess::start(config).await
}

fn now_ms() -> i64 {
    vitalsign_collector::clock::Clock::system().now_ms()
}

/// Text as maud writes it into a page.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The value of the first form field `name="NAME" value="…"` in a page.
fn field_value(html: &str, name: &str) -> String {
    let start = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in the page"))
        + name.len()
        + 15;
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

struct Page {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: String,
}

/// Requests this file makes, on the in-process collector.
trait Requests {
    fn app(&self) -> &InProcess;

    /// Sign in through the form; the session cookie (`vs_session=…`).
    async fn sign_in(&self) -> String {
        let r = self
            .app()
            .client
            .post(format!("{}/signin", self.app().base))
            .form(&[("token", QUERY), ("next", "/flows")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], "/flows");
        let cookie = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| v.starts_with("vs_session="))
            .expect("a session cookie")
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(!cookie.contains(QUERY), "the cookie never holds the token");
        cookie.split(';').next().unwrap().to_string()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut req = self.app().client.get(format!("{}{path}", self.app().base));
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        page(req.send().await.unwrap()).await
    }

    /// A page that must answer 200 with HTML.
    async fn html(&self, path: &str, cookie: &str) -> String {
        let p = self.app().get(path, Some(cookie)).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(
            p.content_type.starts_with("text/html"),
            "{path}: {}",
            p.content_type
        );
        assert!(
            !p.body.contains(QUERY) && !p.body.contains(AGENT),
            "{path} shows a token"
        );
        p.body
    }

    async fn post_form(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
        let mut req = self
            .app()
            .client
            .post(format!("{}{path}", self.app().base))
            .form(fields);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        page(req.send().await.unwrap()).await
    }

    async fn api(&self, path: &str) -> Value {
        let r = self
            .app()
            .client
            .get(format!("{}/api/v1/{path}", self.app().base))
            .bearer_auth(QUERY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn post_run(&self, run: &Value) {
        let r = self
            .app()
            .client
            .post(format!("{}/v1/runs", self.app().base))
            .bearer_auth(AGENT)
            .json(run)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn put_artifact(&self, run_id: &str, name: &str, content_type: &str, bytes: &[u8]) {
        let r = self
            .app()
            .client
            .put(format!(
                "{}/v1/runs/{run_id}/artifacts/{name}",
                self.app().base
            ))
            .bearer_auth(AGENT)
            .header(CONTENT_TYPE, content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    /// Export of a view: CSV (its header line) and JSON.
    async fn exports(&self, path: &str, cookie: &str, csv_header: &str) -> Value {
        let sep = if path.contains('?') { '&' } else { '?' };
        let csv = self
            .get(&format!("{path}{sep}format=csv"), Some(cookie))
            .await;
        assert_eq!(csv.status, StatusCode::OK, "{path} csv: {}", csv.body);
        assert!(
            csv.content_type.starts_with("text/csv"),
            "{path}: {}",
            csv.content_type
        );
        assert!(
            csv.body.starts_with(csv_header),
            "{path} csv starts {:?}",
            &csv.body[..csv.body.len().min(200)]
        );
        let json = self
            .get(&format!("{path}{sep}format=json"), Some(cookie))
            .await;
        assert_eq!(json.status, StatusCode::OK, "{path} json: {}", json.body);
        assert!(json.content_type.starts_with("application/json"));
        serde_json::from_str(&json.body).unwrap()
    }
}

impl Requests for InProcess {
    fn app(&self) -> &InProcess {
        self
    }
}

async fn page(r: reqwest::Response) -> Page {
    let header = |name| {
        r.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
    };
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    let location = header(LOCATION);
    Page {
        status: r.status(),
        content_type,
        location,
        body: r.text().await.unwrap(),
    }
}

fn step(name: &str, kind: &str, pass: bool, duration: f64, vitals: Value) -> Value {
    json!({"name": name, "kind": kind, "outcome": if pass { "pass" } else { "fail" },
           "duration_ms": duration, "vitals": vitals, "status": 200,
           "requests": 12, "transfer_bytes": 48_200, "failed_requests": 1, "console_errors": 2})
}

fn run(id: &str, flow: &str, location: &str, started: i64, steps: Vec<Value>) -> Value {
    let pass = steps.iter().all(|s| s["outcome"] == "pass");
    json!({
        "schema_version": 1, "run_id": id, "flow": flow, "location": location,
        "agent_version": "0.1.0", "profile": "desktop",
        "started_at_ms": started, "finished_at_ms": started + 4_200,
        "outcome": if pass { "pass" } else { "fail" }, "steps": steps,
    })
}

#[tokio::test]
async fn every_page_needs_a_session_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(config(&dir.path().join("c.db"))).await;
    for (path, next) in [
        ("/", "/"),
        ("/pages", "/pages"),
        ("/series?metric=INP", "/series%3Fmetric%3DINP"),
        ("/flows", "/flows"),
        (
            "/flows/runs?flow=a&location=b",
            "/flows/runs%3Fflow%3Da%26location%3Db",
        ),
        ("/runs/r-1", "/runs/r-1"),
        (
            "/runs/r-1/artifacts/shot.png",
            "/runs/r-1/artifacts/shot.png",
        ),
        ("/alerts?state=firing", "/alerts%3Fstate%3Dfiring"),
        ("/alerts/0123456789abcdef", "/alerts/0123456789abcdef"),
    ] {
        let p = app.get(path, None).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            p.location.as_deref(),
            Some(format!("/signin?next={next}").as_str()),
            "{path}"
        );
        // A forged or stale cookie is no session either.
        let forged = app
            .get(path, Some("vs_session=v1.9999999999999.00.00"))
            .await;
        assert_eq!(
            forged.status,
            StatusCode::SEE_OTHER,
            "{path} with a forged cookie"
        );
    }

    let wrong = app
        .post_form(
            "/signin",
            None,
            &[("token", "not-the-token"), ("next", "/alerts")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("That token is not one of this collector&#39;s query tokens")
            || wrong
                .body
                .contains("That token is not one of this collector's query tokens"),
        "{}",
        wrong.body
    );
    assert!(
        !wrong.body.contains("not-the-token"),
        "the page never echoes a token"
    );
    // The agent's token is not a query token.
    let agent = app.post_form("/signin", None, &[("token", AGENT)]).await;
    assert_eq!(agent.status, StatusCode::UNAUTHORIZED);

    let cookie = app.sign_in().await;
    for path in ["/flows", "/flows/runs", "/alerts"] {
        app.html(path, &cookie).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn flows_runs_and_a_run_show_what_the_agent_sent() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(config(&dir.path().join("c.db"))).await;
    let t0 = now_ms() - 600_000;

    // Three passing runs of checkout at eu-west, 20 s apart, then a failed one
    // with a screenshot of the failed step.
    for (i, (d, lcp)) in [(800.0, 1500.0), (900.0, 1700.0), (1000.0, 1900.0)]
        .iter()
        .enumerate()
    {
        app.post_run(&run(
            &format!("ok-{i}"),
            "checkout",
            "eu-west",
            t0 + i as i64 * 20_000,
            vec![
                step(
                    "open home",
                    "goto",
                    true,
                    *d,
                    json!({"lcp": lcp, "cls": 0.05}),
                ),
                step("pay", "click", true, 300.0, json!({"inp": 150.0})),
            ],
        ))
        .await;
    }
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\nnot really a png".to_vec();
    let html_file = b"<script>alert(1)</script>".to_vec();
    let mut failed = run(
        "bad-1",
        "checkout",
        "eu-west",
        t0 + 60_000,
        vec![
            step(
                "open home",
                "goto",
                true,
                850.0,
                json!({"lcp": 2100.0, "cls": 0.3}),
            ),
            step("pay", "click", false, 5000.0, json!({})),
        ],
    );
    failed["steps"][1]["error"] = json!("no element matches button#pay");
    failed["steps"][1]["artifacts"] = json!(["step-2-failure.png"]);
    failed["failure"] =
        json!({"step": 1, "reason": "pay: no element matches button#pay within 5 s"});
    failed["artifacts"] = json!([
        {"name": "step-2-failure.png", "content_type": "image/png", "bytes": png.len(),
         "sha256": hex::encode(Sha256::digest(&png))},
        {"name": "page.html", "content_type": "text/html", "bytes": html_file.len(),
         "sha256": hex::encode(Sha256::digest(&html_file))},
    ]);
    app.post_run(&failed).await;
    app.put_artifact("bad-1", "step-2-failure.png", "image/png", &png)
        .await;
    app.put_artifact("bad-1", "page.html", "text/html", &html_file)
        .await;

    // A flow whose agent went quiet an hour ago: 53 runs a minute apart,
    // received then (written to the store as the ingest endpoint would).
    let quiet = now_ms() - 3_600_000;
    for i in 0..53i64 {
        let doc = run(
            &format!("s-{i:02}"),
            "search",
            "us-east",
            quiet - 53 * 60_000 + i * 60_000,
            vec![step(
                "open search",
                "goto",
                true,
                400.0,
                json!({"lcp": 900.0}),
            )],
        );
        let run: ProbeRun = serde_json::from_value(doc).unwrap();
        let received_ms = run.started_at_ms as i64 + 5_000;
        app.store
            .record_run(NewRun {
                run,
                page_view_groups: Vec::new(),
                received_ms,
            })
            .await
            .unwrap();
    }

    let cookie = app.sign_in().await;

    // Every flow × location: last outcome, pass rate, interval, staleness.
    let page = app.html("/flows", &cookie).await;
    let flows = &page[page.find("<table").unwrap()..];
    let checkout = &flows[flows.find(">checkout<").unwrap()..];
    let checkout = &checkout[..checkout.find("</tr>").unwrap()];
    assert!(checkout.contains("eu-west"), "{checkout}");
    assert!(
        checkout.contains(">fail<"),
        "last outcome as a word: {checkout}"
    );
    assert!(checkout.contains("75 % of 4 runs"), "{checkout}");
    assert!(checkout.contains("every 20 s"), "{checkout}");
    assert!(!checkout.contains("stale"), "{checkout}");
    assert!(checkout.contains("href=\"/runs/bad-1\""), "{checkout}");
    assert!(checkout.contains("href=\"/flows/runs?flow=checkout&amp;location=eu-west\""));
    let search = &flows[flows.find(">search<").unwrap()..];
    assert!(flows.contains("<tr class=\"stale\"><th scope=\"row\"><a href=\"/flows/runs?flow=search&amp;location=us-east\">"), "{flows}");
    assert!(
        search.contains(">stale<"),
        "the word, not only a colour: {search}"
    );
    assert!(search.contains("100 % of 53 runs"), "{search}");
    assert!(search.contains("every 60 s"), "{search}");
    let data = app
        .exports("/flows", &cookie, "flow,location,last_outcome,last_run_id")
        .await;
    let by_flow = |name: &str| {
        data["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flow"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_flow("checkout")["runs"], 4);
    assert_eq!(by_flow("checkout")["passes"], 3);
    assert_eq!(by_flow("search")["stale"], true);

    // The runs of checkout at eu-west, newest first, with outcome, duration and reason.
    let runs = app
        .html("/flows/runs?flow=checkout&location=eu-west", &cookie)
        .await;
    let order: Vec<usize> = ["bad-1", "ok-2", "ok-1", "ok-0"]
        .iter()
        .map(|id| runs.find(&format!("href=\"/runs/{id}\"")).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first: {order:?}"
    );
    assert!(runs.contains("Runs of checkout at eu-west"));
    assert!(runs.contains(">fail<") && runs.contains(">pass<"));
    assert!(runs.contains("4.2 s"), "duration of a run");
    assert!(runs.contains(&esc("pay: no element matches button#pay within 5 s")));
    assert!(runs.contains("4 runs, newest first"));
    assert!(!runs.contains("/runs/s-"), "only the chosen flow's runs");
    let data = app
        .exports(
            "/flows/runs?flow=checkout&location=eu-west",
            &cookie,
            "run_id,flow,location,outcome,started_at_ms,duration_ms",
        )
        .await;
    let ids: Vec<&str> = data["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad-1", "ok-2", "ok-1", "ok-0"]);
    assert_eq!(data["runs"][0]["failed_step"], "pay");

    // Paginated on the server: 53 runs are 50 and 3.
    let first = app.html("/flows/runs?flow=search", &cookie).await;
    assert!(first.contains("page 1 of 2"), "caption says which page");
    assert_eq!(first.matches("href=\"/runs/s-").count(), 50);
    assert!(first.contains("href=\"/runs/s-52\"") && !first.contains("href=\"/runs/s-02\""));
    assert!(
        first.contains("href=\"/flows/runs?flow=search&amp;page=2\""),
        "next page link keeps the flow"
    );
    let second = app.html("/flows/runs?flow=search&page=2", &cookie).await;
    assert_eq!(second.matches("href=\"/runs/s-").count(), 3);
    assert!(second.contains("href=\"/runs/s-00\""));
    let bad_page = app.get("/flows/runs?page=0", Some(&cookie)).await;
    assert_eq!(bad_page.status, StatusCode::BAD_REQUEST);
    assert!(bad_page.body.contains("`page`"), "{}", bad_page.body);

    // One run: every step beside its median over the previous runs.
    let page = app.html("/runs/bad-1", &cookie).await;
    assert!(
        page.contains("median over the previous 3 runs of checkout at eu-west"),
        "{page}"
    );
    let steps = &page[page.find("id=\"steps-h\"").unwrap()..];
    let open = &steps[steps.find(">open home<").unwrap()..steps.find(">pay<").unwrap()];
    assert!(
        open.contains("850 ms") && open.contains("median 900 ms"),
        "{open}"
    );
    assert!(
        open.contains("2.1 s</span> <span class=\"rating good\">good</span>"),
        "{open}"
    );
    // The median is a muted value under the run's own (its rating is the run's to show).
    assert!(open.contains("median 1.7 s"), "{open}");
    assert!(
        open.contains("0.30</span> <span class=\"rating poor\">poor</span>"),
        "CLS as a word: {open}"
    );
    assert!(open.contains("median 0.05"), "{open}");
    assert!(
        open.contains(">12<") && open.contains("48.2 kB") && open.contains(">200<"),
        "{open}"
    );
    let pay = &steps[steps.find(">pay<").unwrap()..];
    assert!(
        pay.contains("5.0 s") && pay.contains("median 300 ms"),
        "{pay}"
    );
    assert!(pay.contains("median 150 ms"), "{pay}");
    assert!(pay.contains(&esc("no element matches button#pay")));
    assert!(page.contains(&esc("pay: no element matches button#pay within 5 s")));
    assert!(
        page.contains("<img class=\"screenshot\" src=\"/runs/bad-1/artifacts/step-2-failure.png\""),
        "screenshot inline"
    );
    assert!(
        !page.contains("src=\"/runs/bad-1/artifacts/page.html\""),
        "only images inline"
    );
    assert!(
        page.contains("href=\"/runs/bad-1/artifacts/page.html\""),
        "others are a download"
    );
    let data = app
        .exports(
            "/runs/bad-1",
            &cookie,
            "index,step,kind,outcome,duration_ms,median_duration_ms",
        )
        .await;
    assert_eq!(data["compared_runs"], 3);
    assert_eq!(data["medians"][0]["duration_ms"], 900.0);
    assert_eq!(data["medians"][0]["vitals"]["lcp"], 1700.0);
    let csv = app.get("/runs/bad-1?format=csv", Some(&cookie)).await.body;
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("0,open home,goto,pass,850,900,"),
        "{csv}"
    );

    // Screenshots behind the session, as themselves; anything else a download.
    let shot = app
        .client
        .get(format!(
            "{}/runs/bad-1/artifacts/step-2-failure.png",
            app.base
        ))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(shot.status(), StatusCode::OK);
    assert_eq!(shot.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(shot.headers()["x-content-type-options"], "nosniff");
    assert_eq!(shot.bytes().await.unwrap().as_ref(), png.as_slice());
    let other = app
        .client
        .get(format!("{}/runs/bad-1/artifacts/page.html", app.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(other.headers()[CONTENT_TYPE], "application/octet-stream");
    assert!(
        other.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(other.headers()["x-content-type-options"], "nosniff");
    let anonymous = app
        .get("/runs/bad-1/artifacts/step-2-failure.png", None)
        .await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    let missing = app
        .get("/runs/bad-1/artifacts/nope.png", Some(&cookie))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let unknown = app.get("/runs/no-such-run", Some(&cookie)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body.contains("There is no run with id"),
        "{}",
        unknown.body
    );
    app.stop().await;
}

/// Two failed runs of checkout a second apart: the flow-failure rule fires.
async fn fail_checkout_twice(app: &App) {
    let t = now_ms() - 60_000;
    for (i, id) in ["c-1", "c-2"].iter().enumerate() {
        let mut doc = run(
            id,
            "checkout",
            "eu-west",
            t + i as i64 * 1000,
            vec![step("open home", "goto", false, 812.0, json!({}))],
        );
        doc["failure"] =
            json!({"step": 0, "reason": "open home: HTTP 503 from https://shop.example/"});
        app.post_run(&doc).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_pages_and_forms_that_need_a_session_and_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(alerting_config(&dir.path().join("c.db"))).await;
    fail_checkout_twice(&app).await;
    let id = wait_for(
        "the flow alert to fire",
        Duration::from_secs(20),
        async || {
            let v = app.api("alerts?state=firing").await;
            v["alerts"][0]["id"].as_str().map(str::to_string)
        },
    )
    .await;
    let store = app.store.clone();
    let email = wait_for(
        "its email in the outbox",
        Duration::from_secs(20),
        async || {
            let rows = store.outbox_all().await.unwrap();
            rows.into_iter().find(|r| r.message.alerts.contains(&id))
        },
    )
    .await;
    let cookie = app.sign_in().await;

    // The list: by state, with the headline, since, acknowledged.
    let list = app.html("/alerts", &cookie).await;
    assert!(list.contains("Firing (1)"), "{list}");
    assert!(list.contains(&format!(
        "<a href=\"/alerts/{id}\">flow checkout failing at eu-west (2 failed runs in a row)</a>"
    )));
    assert!(list.contains(">no<"), "not acknowledged yet");
    assert!(list.contains("No silences.") && list.contains("No dead letters"));
    let data = app
        .exports("/alerts", &cookie, "id,state,rule,kind,headline,since_ms")
        .await;
    assert_eq!(data["groups"][0]["state"], "firing");
    assert_eq!(data["groups"][0]["alerts"][0]["id"], id.as_str());
    let bad = app.get("/alerts?state=burning", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("`state`"));

    // The alert: transitions with the numbers, the exact email, the forms.
    let path = format!("/alerts/{id}");
    let detail = app.html(&path, &cookie).await;
    let transitions =
        &detail[detail.find("id=\"transitions-h\"").unwrap()..detail.find("id=\"ack-h\"").unwrap()];
    let pending = transitions.find(">pending<").unwrap();
    assert!(transitions[pending..].contains(">firing<"), "{transitions}");
    assert!(
        transitions.contains("Failed in a row") && transitions.contains("<td class=\"num\">2</td>"),
        "{transitions}"
    );
    assert!(transitions.contains(&esc("open home: HTTP 503 from https://shop.example/")));
    assert!(detail.contains("href=\"/flows/runs?flow=checkout&amp;location=eu-west\""));
    assert!(detail.contains(&esc(&email.message.subject)), "the subject");
    assert!(
        email
            .message
            .subject
            .starts_with("[FIRING] flow checkout failing at eu-west")
    );
    assert!(detail.contains("oncall@example.com"));
    assert!(
        detail.contains(&format!("{}</pre>", esc(&email.message.text))),
        "the text body, exactly"
    );
    assert!(
        detail.contains("<dd>pending · delivery attempts: "),
        "the email's status"
    );
    assert!(detail.contains("action=\"/alerts/") && detail.contains("/ack\""));
    let data = app
        .exports(&path, &cookie, "at_ms,from,to,baseline_p75")
        .await;
    assert_eq!(
        data["emails"][0]["message"]["subject"],
        email.message.subject.as_str()
    );
    assert_eq!(data["transitions"][0]["numbers"]["failures"], 2);
    let csrf = field_value(&detail, "csrf");
    assert!(csrf.len() >= 32);

    // Acknowledge: without the token, with a wrong one, or without a session: 403, nothing changes.
    let ack = format!("/alerts/{id}/ack");
    let refused = app.post_form(&ack, Some(&cookie), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("security token is missing"),
        "{}",
        refused.body
    );
    let forged = app
        .post_form(&ack, Some(&cookie), &[("csrf", "00ff")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let anonymous = app.post_form(&ack, None, &[("csrf", &csrf)]).await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
    assert!(
        anonymous.body.contains("you are not signed in"),
        "{}",
        anonymous.body
    );
    // Another session's token is not this session's.
    let other = app.sign_in().await;
    let foreign = app.post_form(&ack, Some(&other), &[("csrf", &csrf)]).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let alerts = app.api("alerts").await;
    assert_eq!(alerts["alerts"][0]["rule"], "default-flow-failure");
    assert_eq!(
        alerts["alerts"][0]["acked_by"],
        Value::Null,
        "nothing changed"
    );

    let done = app.post_form(&ack, Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(path.as_str()));
    let alerts = app.api("alerts").await;
    assert_eq!(alerts["alerts"][0]["acked_by"], "dashboard");
    let detail = app.html(&path, &cookie).await;
    assert!(detail.contains("Acknowledged by dashboard"));
    assert!(!detail.contains("/ack\""), "no second acknowledge form");
    let unknown = app
        .post_form(
            "/alerts/0000000000000000/ack",
            Some(&cookie),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Silence: the same guard; then the API's own validation.
    let silence = [
        ("csrf", csrf.as_str()),
        ("alert", id.as_str()),
        ("rule", "default-flow-failure"),
        ("flow", "checkout"),
        ("location", "eu-west"),
        ("site", ""),
        ("duration", "2h"),
        ("comment", "payment provider maintenance"),
    ];
    let refused = app
        .post_form("/silences", Some(&cookie), &silence[1..])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let anonymous = app.post_form("/silences", None, &silence).await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.api("silences").await["silences"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let mut bad = silence.to_vec();
    bad.push(("metric", "FID"));
    let invalid = app.post_form("/silences", Some(&cookie), &bad).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(invalid.body.contains("matchers.metric"), "{}", invalid.body);
    let no_comment: Vec<_> = silence
        .iter()
        .filter(|(k, _)| *k != "comment")
        .copied()
        .collect();
    let invalid = app.post_form("/silences", Some(&cookie), &no_comment).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(
        invalid.body.contains("`comment` is required"),
        "{}",
        invalid.body
    );

    let created = app.post_form("/silences", Some(&cookie), &silence).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(created.location.as_deref(), Some(path.as_str()));
    let silences = app.api("silences").await;
    let s = &silences["silences"][0];
    assert_eq!(
        s["matchers"],
        json!({"rule": "default-flow-failure", "flow": "checkout", "location": "eu-west", "site": null, "page_group": null, "metric": null})
    );
    assert_eq!(s["created_by"], "dashboard");
    assert_eq!(s["comment"], "payment provider maintenance");
    let two_hours = s["ends_ms"].as_i64().unwrap() - s["starts_ms"].as_i64().unwrap();
    assert_eq!(two_hours, 7_200_000);
    let sid = s["id"].as_str().unwrap().to_string();
    let detail = app.html(&path, &cookie).await;
    assert!(detail.contains("rule = default-flow-failure, flow = checkout, location = eu-west"));
    assert!(detail.contains("payment provider maintenance"));
    assert!(detail.contains(&format!("action=\"/silences/{sid}/expire\"")));
    assert!(detail.contains("silenced now"));
    let list = app.html("/alerts", &cookie).await;
    assert!(
        list.contains("payment provider maintenance"),
        "the list shows silences"
    );

    let expire = format!("/silences/{sid}/expire");
    let refused = app
        .post_form(&expire, Some(&cookie), &[("alert", &id)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.api("silences").await["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let expired = app
        .post_form(&expire, Some(&cookie), &[("csrf", &csrf), ("alert", &id)])
        .await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert_eq!(expired.location.as_deref(), Some(path.as_str()));
    assert_eq!(
        app.api("silences").await["silences"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // A refused email becomes a dead letter on both pages.
    let seq = email.seq;
    app.store
        .record_delivery(
            seq,
            Delivery::Dead {
                error: "550 mailbox unavailable".into(),
            },
            now_ms(),
        )
        .await
        .unwrap();
    for page in ["/alerts", path.as_str()] {
        let html = app.html(page, &cookie).await;
        let dead = &html[html.find("id=\"dead-h\"").unwrap()..];
        assert!(
            dead.contains(&esc(&email.message.subject)),
            "{page}: {dead}"
        );
        assert!(dead.contains("550 mailbox unavailable"), "{page}");
    }
    let unknown = app.get("/alerts/0000000000000000", Some(&cookie)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn a_public_dashboard_still_needs_a_session_to_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("c.db"));
    c.public_dashboard = true;
    let app = spawn(c).await;
    let list = app.get("/alerts", None).await;
    assert_eq!(list.status, StatusCode::OK, "reading is public");
    for path in [
        "/alerts/0123456789abcdef/ack",
        "/silences",
        "/silences/abc/expire",
    ] {
        let p = app
            .post_form(
                path,
                None,
                &[("csrf", "0123"), ("duration", "1h"), ("comment", "x")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            p.body.contains("even where the pages are public"),
            "{path}: {}",
            p.body
        );
    }
    assert_eq!(
        app.api("silences").await["silences"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_regression_alert_shows_the_detectors_numbers_and_links_its_series_view() {
    use vitalsign_collector::alerts::detector::Numbers;
    use vitalsign_collector::alerts::engine::{Evaluation, alert_id};
    use vitalsign_collector::alerts::rules::{RuleKind, SeriesKey};
    use vitalsign_collector::alerts::state::{AlertRecord, State, Transition};
    use vitalsign_core::metric::Metric;

    let dir = tempfile::tempdir().unwrap();
    let app = spawn(config(&dir.path().join("c.db"))).await;
    let hour = 3_600_000;
    let t = now_ms() / hour * hour;
    let numbers = Numbers {
        baseline: Some(2100.0),
        current: Some(2814.0),
        baseline_count: 84_000,
        current_count: 1510,
        change: Some(0.34),
        p_value: Some(3.2e-9),
        threshold: Some(0.16),
        window_from_ms: t - 3 * hour,
        window_to_ms: t,
        baseline_from_ms: t - 171 * hour,
        baseline_to_ms: t - 3 * hour,
        ..Numbers::default()
    };
    let key = "regression|default-regression|rum|shop|/checkout|LCP|mobile|||";
    let record = AlertRecord {
        site: "shop".into(),
        series: Some(SeriesKey {
            source: vitalsign_core::metric::Source::Rum,
            site: "shop".into(),
            page_group: "/checkout".into(),
            metric: Metric::Lcp,
            device: "mobile".into(),
            flow: String::new(),
            step: String::new(),
            location: String::new(),
        }),
        state: State::Firing,
        started_ms: Some(t - 3 * hour),
        fired_ms: Some(t),
        numbers: numbers.clone(),
        fired_numbers: Some(numbers.clone()),
        ..AlertRecord::new(
            key.into(),
            "default-regression".into(),
            RuleKind::Regression,
            "default".into(),
            t,
        )
    };
    let eval = Evaluation {
        records: vec![record],
        transitions: vec![Transition {
            key: key.into(),
            rule: "default-regression".into(),
            at_ms: t,
            from: State::Pending,
            to: State::Firing,
            numbers,
        }],
        ..Evaluation::default()
    };
    app.store
        .record_evaluation(
            eval,
            t,
            vitalsign_collector::store::alerts::SQLITE_LEASE_TERM,
        )
        .await
        .unwrap();
    let id = alert_id(key);
    let cookie = app.sign_in().await;

    let list = app.html("/alerts?state=firing", &cookie).await;
    assert!(list.contains(&format!(
        "<a href=\"/alerts/{id}\">LCP p75 2.1 s → 2.8 s (+34 %) /checkout mobile</a>"
    )));
    let detail = app.html(&format!("/alerts/{id}"), &cookie).await;
    let transitions = &detail[detail.find("id=\"transitions-h\"").unwrap()..];
    let row =
        &transitions[transitions.find("<tbody>").unwrap()..transitions.find("</tbody>").unwrap()];
    for cell in [
        ">2.1 s<",
        ">2.8 s<",
        ">84000<",
        ">1510<",
        ">3.20e-9<",
        ">+16 %<",
        ">+34 %<",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(
        row.contains(">pending</span> → <span class=\"state firing\">firing<"),
        "{row}"
    );
    let series = format!(
        "href=\"/series?metric=LCP&amp;site=shop&amp;page_group=/checkout&amp;device=mobile&amp;source=rum&amp;from={}&amp;to=",
        t - 3 * hour - 24 * hour
    );
    assert!(detail.contains(&series), "{series}");
    assert!(detail.contains(&format!("&amp;alert={id}\"")));
    // The silence form starts from this alert's rule and series.
    for (name, value) in [
        ("rule", "default-regression"),
        ("site", "shop"),
        ("page_group", "/checkout"),
        ("metric", "LCP"),
    ] {
        assert_eq!(field_value(&detail, name), value, "{name}");
    }
    assert!(
        detail.contains("no SMTP server configured"),
        "why there is no email"
    );
    app.stop().await;
}
