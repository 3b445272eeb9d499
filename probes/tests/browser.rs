#![allow(unsafe_code)] // one std::env::set_var, see below
//! The runner against Debian's real Chromium and pages served on loopback.
//! One test function walks several scenarios in order with one shared runner,
//! the way the agent uses it, so the suite launches the browser rarely.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use sha2::Digest;
use vitalsign_core::wire::run::{Outcome, ProbeRun};
use vitalsign_probes::{Flow, RunOptions, Runner, RunnerConfig};
use vitalsign_test_support::procfs::alive;
use vitalsign_test_support::wait::wait_until;

const HOME: &str = r#"<!doctype html><html><head><title>Probe test</title></head><body>
<h1 id="title">Welcome to the test shop</h1>
<p style="font-size:32px">Some text large enough to be the largest paint.</p>
<a id="next" href="/second">next page</a>
<button id="slow">slow button</button>
<input id="secret-field" type="password">
<input id="echo-field"><p id="echo"></p>
<select id="size"><option value="s">S</option><option value="m">M</option></select>
<p id="chosen"></p>
<span id="hover-me">hover</span><p id="hovered"></p>
<p id="hidden-thing" style="display:none">invisible</p>
<div style="height:3000px"></div><p id="footer">footer</p>
<script>
document.getElementById('slow').addEventListener('click', function () {
  var until = performance.now() + 120; while (performance.now() < until) {}
  document.getElementById('title').textContent = 'Clicked';
});
document.getElementById('echo-field').addEventListener('input', function (e) {
  document.getElementById('echo').textContent = 'You typed ' + e.target.value;
});
document.getElementById('size').addEventListener('change', function (e) {
  document.getElementById('chosen').textContent = 'size ' + e.target.value;
});
document.getElementById('hover-me').addEventListener('mouseover', function () {
  document.getElementById('hovered').textContent = 'hovered!';
});
document.addEventListener('keydown', function (e) {
  if (e.key === 'Enter') document.getElementById('title').textContent = 'Entered';
});
setTimeout(function () {
  var late = document.createElement('p'); late.id = 'late'; late.textContent = 'late arrival';
  document.body.appendChild(late);
}, 200);
</script></body></html>"#;

async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(HOME) }))
        .route(
            "/second",
            get(|| async { Html("<!doctype html><h1>Second page</h1>") }),
        )
        // A document whose one image never arrives: the load event never fires.
        .route(
            "/stuck",
            get(|| async { Html("<!doctype html><h1>almost there</h1><img src=\"/never\">") }),
        )
        .route(
            "/never",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, Html("<h1>gone</h1>")) }),
        )
        .route(
            "/api/health",
            get(|| async {
                (
                    [(header::HeaderName::from_static("x-shop"), "open")],
                    r#"{"ok":true}"#,
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn flow(base: &str, body: &str) -> Flow {
    let text = format!("name = \"test\"\nbase_url = \"{base}\"\n{body}");
    Flow::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn options(dir: &std::path::Path, run_id: &str) -> RunOptions {
    RunOptions {
        run_id: run_id.into(),
        artifacts_dir: dir.join(run_id),
        ..RunOptions::default()
    }
}

fn assert_valid(run: &ProbeRun) {
    run.validate()
        .unwrap_or_else(|e| panic!("runner produced an invalid run: {e}\n{run:#?}"));
}

#[test]
fn runner_walks_real_pages_in_chromium() {
    // SAFETY: set before this test starts its runtime; the only other test in
    // this binary never touches the environment.
    unsafe { std::env::set_var("VITALSIGN_TEST_PASSWORD", "hunter2-very-secret") };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(walk_real_pages());
}

async fn walk_real_pages() {
    let base = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(RunnerConfig::default());

    // --- every step kind passes, and vitals are measured where they belong ---
    let every_kind = flow(
        &base,
        r##"
[[steps]]
name = "home"
goto = "/?from=probe#top"
[[steps]]
assert = { status = 200 }
[[steps]]
wait_for = { selector = "#late" }
[[steps]]
wait_for = { text = "late arrival" }
[[steps]]
wait_for = { network_idle = "200ms" }
[[steps]]
name = "slow click"
click = "#slow"
[[steps]]
assert = { text_contains = "Clicked", selector = "#title" }
[[steps]]
type = "#secret-field"
text = "${env:VITALSIGN_TEST_PASSWORD}"
[[steps]]
type = "#echo-field"
text = "plain words"
[[steps]]
assert = { text_contains = "You typed plain words" }
[[steps]]
press = "Enter"
[[steps]]
assert = { text_contains = "Entered", selector = "#title" }
[[steps]]
select = "#size"
value = "m"
[[steps]]
assert = { text_contains = "size m", selector = "#chosen" }
[[steps]]
hover = "#hover-me"
[[steps]]
assert = { text_contains = "hovered!", selector = "#hovered" }
[[steps]]
scroll = "#footer"
[[steps]]
assert = { visible = "#footer" }
[[steps]]
assert = { hidden = "#hidden-thing" }
[[steps]]
wait_for = { delay = "50ms" }
[[steps]]
screenshot = "home"
[[steps]]
click = "#next"
[[steps]]
wait_for = { url_contains = "/second" }
[[steps]]
assert = { url_contains = "/second" }
"##,
    );
    let run = runner
        .run(&every_kind, &options(dir.path(), "every-kind"))
        .await;
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Pass, "{:#?}", run.failure);
    assert!(
        run.browser_version
            .as_deref()
            .unwrap_or("")
            .contains("Chrome")
    );
    let home = &run.steps[0];
    assert_eq!(home.status, Some(200));
    assert!(
        home.vitals.lcp.is_some() && home.vitals.fcp.is_some() && home.vitals.ttfb.is_some(),
        "{home:#?}"
    );
    assert!(home.requests >= 1);
    assert_eq!(
        home.url.as_deref(),
        Some(format!("{base}/").as_str()),
        "a step's URL drops the query and fragment"
    );
    assert_eq!(
        run.steps.last().unwrap().url.as_deref(),
        Some(format!("{base}/second").as_str()),
        "a step's URL is where the page ended up after it"
    );
    let click = run.steps.iter().find(|s| s.name == "slow click").unwrap();
    let inp = click.vitals.inp.expect("a real click has an INP");
    assert!(inp >= 120.0, "INP {inp} misses the 120 ms handler");
    let shot = run
        .artifacts
        .iter()
        .find(|a| a.name.contains("home"))
        .expect("screenshot artifact");
    let bytes = std::fs::read(dir.path().join("every-kind").join(&shot.name)).unwrap();
    assert_eq!(bytes.len() as u64, shot.bytes);
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), shot.sha256);
    assert!(bytes.starts_with(b"\x89PNG"), "screenshots are PNG");
    let json = serde_json::to_string(&run).unwrap();
    assert!(!json.contains("hunter2"), "a secret leaked into the result");

    // --- a failing assertion names the step and the reason, with a screenshot ---
    let failing = flow(
        &base,
        r##"
[[steps]]
goto = "/"
[[steps]]
type = "#echo-field"
text = "${env:VITALSIGN_TEST_PASSWORD}"
[[steps]]
name = "expect price"
assert = { text_contains = "Price: 10 EUR", selector = "body" }
[[steps]]
click = "#slow"
"##,
    );
    let run = runner.run(&failing, &options(dir.path(), "failing")).await;
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Fail);
    let failure = run.failure.clone().unwrap();
    assert_eq!(failure.step, Some(2));
    assert!(
        failure.reason.contains("Price: 10 EUR"),
        "{}",
        failure.reason
    );
    assert_eq!(run.steps[3].outcome, Outcome::Skipped);
    let evidence = &run.steps[2].artifacts;
    assert_eq!(evidence.len(), 1, "a failing step keeps a screenshot");
    assert!(dir.path().join("failing").join(&evidence[0]).exists());
    let json = serde_json::to_string(&run).unwrap();
    assert!(
        !json.contains("hunter2"),
        "a secret leaked into a failure: {json}"
    );

    // --- every assertion kind fails with a reason a person can act on ---
    let cases = [
        (
            "assert = { visible = \"#hidden-thing\" }",
            "#hidden-thing is hidden, expected visible",
        ),
        (
            "assert = { visible = \"#nowhere\" }",
            "#nowhere is not on the page, expected visible",
        ),
        (
            "assert = { hidden = \"#title\" }",
            "#title is visible, expected hidden",
        ),
        (
            "assert = { url_contains = \"/checkout\" }",
            "expected it to contain \"/checkout\"",
        ),
        (
            "assert = { status = 201 }",
            "document status is 200, expected 201",
        ),
        (
            "assert = { text_contains = \"Goodbye\", selector = \"#title\" }",
            "Goodbye",
        ),
    ];
    for (i, (assertion, expected)) in cases.iter().enumerate() {
        let body = format!("[[steps]]\ngoto = \"/\"\n[[steps]]\n{assertion}\n");
        let run = runner
            .run(
                &flow(&base, &body),
                &options(dir.path(), &format!("assert-{i}")),
            )
            .await;
        assert_eq!(run.outcome, Outcome::Fail, "{assertion}");
        let reason = run.failure.unwrap().reason;
        assert!(reason.starts_with("step 2 (assert"), "{reason}");
        assert!(reason.contains(expected), "{assertion}: {reason}");
    }

    // --- a 404 document fails a status assertion ---
    let missing = flow(
        &base,
        "[[steps]]\ngoto = \"/missing\"\n[[steps]]\nassert = { status = 200 }\n",
    );
    let run = runner.run(&missing, &options(dir.path(), "missing")).await;
    assert_eq!(run.outcome, Outcome::Fail);
    assert!(run.failure.unwrap().reason.contains("404"));

    // --- a step that never completes times out within its bound ---
    let slow = flow(
        &base,
        "[timeouts]\nstep = \"1s\"\n[[steps]]\ngoto = \"/\"\n[[steps]]\nwait_for = { selector = \"#never\" }\n",
    );
    let started = Instant::now();
    let run = runner.run(&slow, &options(dir.path(), "slow")).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.outcome, Outcome::Fail);
    let reason = run.failure.unwrap().reason;
    assert!(
        reason.contains("#never") && reason.contains("1s"),
        "{reason}"
    );

    // --- a page that never finishes loading fails its goto within the bound ---
    let stuck = flow(
        &base,
        "[timeouts]\nstep = \"2s\"\n[[steps]]\ngoto = \"/stuck\"\n[[steps]]\nassert = { status = 200 }\n",
    );
    let started = Instant::now();
    let run = runner.run(&stuck, &options(dir.path(), "stuck")).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_valid(&run);
    assert_eq!(
        run.outcome,
        Outcome::Fail,
        "a page that never loads is the site's failure"
    );
    let failure = run.failure.unwrap();
    assert_eq!(failure.step, Some(0));
    assert!(
        failure.reason.contains("/stuck") && failure.reason.contains("2s"),
        "{}",
        failure.reason
    );
    assert_eq!(run.steps[1].outcome, Outcome::Skipped);

    // --- whose trouble: a site that refuses connections fails its goto ---
    // A port nothing listens on (Chromium refuses the well-known ones, as port 9,
    // before it tries them).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = flow(
        &format!("http://127.0.0.1:{closed}"),
        "[[steps]]\ngoto = \"/\"\n",
    );
    let run = runner.run(&refused, &options(dir.path(), "refused")).await;
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Fail, "{:#?}", run.failure);
    assert_eq!(run.steps[0].outcome, Outcome::Fail);
    let reason = run.failure.unwrap().reason;
    assert!(
        reason.contains(&format!("could not open http://127.0.0.1:{closed}/"))
            && reason.contains("ERR_CONNECTION_REFUSED"),
        "{reason}"
    );

    // --- ... and a secret the agent was not given is ours: error, not fail ---
    let unset = flow(
        &base,
        "[[steps]]\ngoto = \"/\"\n[[steps]]\ntype = \"#echo-field\"\ntext = \"${env:VITALSIGN_TEST_NEVER_SET}\"\n[[steps]]\nclick = \"#slow\"\n",
    );
    let run = runner.run(&unset, &options(dir.path(), "unset")).await;
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Error, "{:#?}", run.failure);
    let outcomes: Vec<Outcome> = run.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(outcomes, [Outcome::Pass, Outcome::Error, Outcome::Skipped]);
    let failure = run.failure.unwrap();
    assert_eq!(failure.step, Some(1));
    assert!(
        failure
            .reason
            .contains("VITALSIGN_TEST_NEVER_SET is not set"),
        "{}",
        failure.reason
    );

    // --- a browser killed mid-run is an infrastructure error, then a relaunch ---
    let first_pid = runner.browser_pid().await.expect("a browser is running");
    let long = flow(
        &base,
        "[[steps]]\ngoto = \"/\"\n[[steps]]\nwait_for = { delay = \"4s\" }\n",
    );
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let tree = vitalsign_probes::process::descendants(first_pid);
        vitalsign_probes::process::kill_tree(first_pid);
        tree
    });
    let run = runner.run(&long, &options(dir.path(), "killed")).await;
    let old_tree = killer.await.unwrap();
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Error, "{:#?}", run.failure);
    let again = runner
        .run(&every_kind, &options(dir.path(), "after-crash"))
        .await;
    assert_eq!(again.outcome, Outcome::Pass, "{:#?}", again.failure);
    assert_eq!(runner.restarts(), 1);
    let new_pid = runner.browser_pid().await.unwrap();
    assert_ne!(new_pid, first_pid);
    for pid in old_tree.iter().chain([&first_pid]) {
        wait_until(
            &format!("process {pid} of the killed browser to be gone"),
            Duration::from_secs(5),
            || !alive(*pid),
        );
    }

    // --- shutdown leaves no browser process behind ---
    let tree = vitalsign_probes::process::descendants(new_pid);
    assert!(!tree.is_empty(), "chromium runs helper processes");
    runner.shutdown().await;
    for pid in tree.iter().chain([&new_pid]) {
        wait_until(
            &format!("process {pid} to be gone after shutdown"),
            Duration::from_secs(5),
            || !alive(*pid),
        );
    }
}

#[tokio::test]
async fn http_checks_assert_status_body_headers_and_latency() {
    let base = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(RunnerConfig::default());
    let ok = flow(
        &base,
        r#"
[[steps]]
request = { url = "/api/health?key=not-for-the-collector", expect_status = 200, expect_body_contains = "\"ok\":true", expect_headers = { x-shop = "open" }, max_latency = "5s" }
"#,
    );
    let run = runner.run(&ok, &options(dir.path(), "http-ok")).await;
    assert_valid(&run);
    assert_eq!(run.outcome, Outcome::Pass, "{:#?}", run.failure);
    assert_eq!(run.steps[0].status, Some(200));
    assert_eq!(
        run.steps[0].url.as_deref(),
        Some(format!("{base}/api/health").as_str()),
        "an HTTP check's URL drops the query"
    );
    assert!(
        run.browser_version.is_none(),
        "an HTTP check starts no browser"
    );
    assert!(runner.browser_pid().await.is_none());

    let wrong = flow(
        &base,
        "[[steps]]\nrequest = { url = \"/missing\", expect_status = 200 }\n",
    );
    let run = runner.run(&wrong, &options(dir.path(), "http-404")).await;
    assert_eq!(run.outcome, Outcome::Fail);
    let reason = run.failure.unwrap().reason;
    assert!(reason.contains("404") && reason.contains("200"), "{reason}");

    let refused = flow(
        "http://127.0.0.1:9",
        "[[steps]]\nrequest = { url = \"/\" }\n",
    );
    let run = runner
        .run(&refused, &options(dir.path(), "http-refused"))
        .await;
    assert_eq!(
        run.outcome,
        Outcome::Fail,
        "an unreachable site is a site failure"
    );
}
