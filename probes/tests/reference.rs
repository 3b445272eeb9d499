//! One yardstick: the probe's LCP, CLS and INP equal Google's `web-vitals`
//! library's on the same page load, in Debian's Chromium, on the fixture pages
//! the web snippet's own tests use (`tests/fixtures/pages/`).
//!
//! The probe measures as it always does (the snippet injected before any page
//! script, values read back over CDP after every step). The test server puts
//! web-vitals 6.2.3 (from `web-snippet/node_modules`, installed by `test.sh`)
//! into every page's `<head>` with a few lines that post each of its reports
//! back to the server, so both numbers come from one page load.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use vitalsign_core::wire::run::{Outcome, ProbeRun};
use vitalsign_probes::{Flow, RunOptions, Runner, RunnerConfig};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every web-vitals report, in order, as the page posted it.
#[derive(Debug, Clone, Deserialize)]
struct Report {
    name: String,
    value: f64,
}

#[derive(Clone)]
struct Site {
    web_vitals: Arc<String>,
    reports: Arc<Mutex<Vec<Report>>>,
}

/// Posts every web-vitals report (all changes) to `/__ref`, so the value the
/// library would have reported last is known after the page has closed.
const REFERENCE: &str = r#"
['onLCP', 'onCLS', 'onINP'].forEach(function (fn) {
  webVitals[fn](function (m) {
    navigator.sendBeacon('/__ref', JSON.stringify({ name: m.name, value: m.value }));
  }, { reportAllChanges: true });
});
"#;

#[derive(Deserialize)]
struct Delay {
    delay: Option<u64>,
}

/// Fixture files, with `?delay=N` holding a response back N ms (as the
/// snippet's harness does) and web-vitals injected before `</head>`.
async fn fixture(State(site): State<Site>, uri: Uri, Query(delay): Query<Delay>) -> Response {
    if let Some(ms) = delay.delay {
        tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    }
    let path = uri.path().trim_start_matches('/');
    let js = |body: String| ([(header::CONTENT_TYPE, "text/javascript")], body).into_response();
    match path {
        "__harness/web-vitals.js" => return js(site.web_vitals.to_string()),
        "__harness/reference.js" => return js(REFERENCE.to_string()),
        _ => {}
    }
    if path.contains("..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let file = repo().join("tests/fixtures/pages").join(path);
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html",
        Some("js") => "text/javascript",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    let body = if kind == "text/html" {
        String::from_utf8_lossy(&bytes)
            .replace(
                "</head>",
                "<script src=\"/__harness/web-vitals.js\"></script>\
                 <script src=\"/__harness/reference.js\"></script></head>",
            )
            .into_bytes()
    } else {
        bytes
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn serve() -> (String, Site) {
    let iife = repo().join("web-snippet/node_modules/web-vitals/dist/web-vitals.iife.js");
    let web_vitals = std::fs::read_to_string(&iife).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the reference comes from the snippet's npm packages: run ./test.sh (or npm ci in web-snippet/)",
            iife.display()
        )
    });
    let site = Site {
        web_vitals: Arc::new(web_vitals),
        reports: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/__ref",
            post(|State(site): State<Site>, body: Bytes| async move {
                let report: Report = serde_json::from_slice(&body).expect("a web-vitals report");
                site.reports.lock().unwrap().push(report);
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(fixture)
        .with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), site)
}

/// The probe's value for the page: the last step that reported LCP (it can
/// only grow until the first input), and the worst step for CLS and INP (each
/// step is its own window, as a route is in the field).
fn probe_value(run: &ProbeRun, metric: &str) -> Option<f64> {
    let mut values = run.steps.iter().filter_map(|s| match metric {
        "LCP" => s.vitals.lcp,
        "CLS" => s.vitals.cls,
        _ => s.vitals.inp,
    });
    if metric == "LCP" {
        values.next_back()
    } else {
        values.reduce(f64::max)
    }
}

struct Scenario {
    page: &'static str,
    steps: &'static str,
    /// The metrics compared, and a floor each must reach so a scenario that
    /// measured nothing at all cannot pass.
    expect: &'static [(&'static str, f64)],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        page: "late-image-lcp",
        steps: "[[steps]]\nwait_for = { delay = \"300ms\" }\n",
        expect: &[("LCP", 700.0)],
    },
    Scenario {
        page: "late-text-lcp",
        steps: "[[steps]]\nwait_for = { selector = \"#late\" }\n[[steps]]\nwait_for = { delay = \"300ms\" }\n",
        expect: &[("LCP", 400.0)],
    },
    Scenario {
        page: "cls-two-windows",
        steps: "[[steps]]\nwait_for = { delay = \"2500ms\" }\n",
        expect: &[("CLS", 0.01)],
    },
    Scenario {
        page: "shift-after-input",
        steps: "[[steps]]\nwait_for = { delay = \"600ms\" }\n[[steps]]\nclick = \"#grow\"\n\
                [[steps]]\nwait_for = { delay = \"300ms\" }\n",
        expect: &[("CLS", 0.001)],
    },
    Scenario {
        page: "interactions-worst-wins",
        steps: "[[steps]]\nclick = \"#b60\"\n[[steps]]\nclick = \"#b220\"\n[[steps]]\nclick = \"#b120\"\n",
        expect: &[("INP", 220.0)],
    },
    Scenario {
        page: "key-press",
        steps: "[[steps]]\ntype = \"#field\"\ntext = \"a\"\n",
        expect: &[("INP", 120.0)],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_vitals_equal_web_vitals_on_the_same_page_load() {
    let (base, site) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(RunnerConfig::default());
    let mut mismatches = Vec::new();
    for scenario in SCENARIOS {
        site.reports.lock().unwrap().clear();
        let text = format!(
            "name = \"{page}\"\nbase_url = \"{base}\"\n[[steps]]\ngoto = \"/{page}/index.html\"\n{steps}",
            page = scenario.page,
            steps = scenario.steps
        );
        let flow = Flow::parse(&text, "reference.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let options = RunOptions {
            run_id: scenario.page.into(),
            artifacts_dir: dir.path().join(scenario.page),
            ..RunOptions::default()
        };
        let run = runner.run(&flow, &options).await;
        assert_eq!(
            run.outcome,
            Outcome::Pass,
            "{}: {:#?}",
            scenario.page,
            run.failure
        );
        // The page closed with the run; its last beacons may still be in flight.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reports = site.reports.lock().unwrap().clone();
        for &(metric, floor) in scenario.expect {
            let reference = reports
                .iter()
                .rev()
                .find(|r| r.name == metric)
                .map(|r| r.value);
            let ours = probe_value(&run, metric);
            let tolerance = if metric == "CLS" { 1e-4 } else { 1.0 };
            eprintln!(
                "{:<24} {metric}: probe {ours:?}, web-vitals {reference:?}",
                scenario.page
            );
            match (ours, reference) {
                (Some(a), Some(b)) if (a - b).abs() <= tolerance && a >= floor => {}
                _ => mismatches.push(format!(
                    "{} {metric}: probe {ours:?}, web-vitals {reference:?} (at least {floor})",
                    scenario.page
                )),
            }
        }
    }
    runner.shutdown().await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
