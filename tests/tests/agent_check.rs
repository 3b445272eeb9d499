//! `vitalsign-agent check` and `once` in real Chromium: the same flow against
//! a fast and a deliberately slow variant of a loopback page, judged by the
//! Core Web Vitals "good" budget. The fast one passes (exit 0), the slow one
//! breaks its budget (exit 1), a flow that cannot run is exit 2, and the JUnit
//! and Markdown reports say which rule broke.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use vitalsign_test_support::{binary, workspace_root};

const PAGE: &str = r#"<!doctype html><html><head><title>shop</title></head><body>
<h1>Shop</h1><p style="font-size:28px">Everything you need, delivered tomorrow.</p>
<img id="hero" src="/hero.png?variant=VARIANT" width="600" height="300" alt="hero">
<button id="buy">buy</button><p id="done"></p>
<script>document.getElementById('buy').addEventListener('click', function () {
  document.getElementById('done').textContent = 'in the cart';
});</script></body></html>"#;

/// A loopback shop whose hero image arrives at once (`/fast`) or after 3 s
/// (`/slow`): the slow variant's LCP is the late image, over the 2.5 s budget.
/// The image is the fixture pages' photo-like PNG: Chromium leaves images of
/// too little detail (a flat SVG rectangle, say) out of LCP.
fn shop() -> String {
    let hero = std::fs::read(workspace_root().join("tests/fixtures/pages/late-image-lcp/hero.png"))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let hero = hero.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                // Drain the headers so the browser sees a well-behaved server.
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
                let (kind, body) = if path.starts_with("/hero.png") {
                    if path.ends_with("variant=slow") {
                        std::thread::sleep(Duration::from_millis(3000));
                    }
                    ("image/png", hero.clone())
                } else if let Some(variant) = path
                    .strip_prefix('/')
                    .filter(|v| *v == "fast" || *v == "slow")
                {
                    ("text/html", PAGE.replace("VARIANT", variant).into_bytes())
                } else {
                    ("text/plain", b"not found".to_vec())
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    format!("http://{addr}")
}

fn shop_flow(dir: &Path, site: &str, variant: &str) -> PathBuf {
    let path = dir.join(format!("shop-{variant}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"shop\"\nbase_url = \"{site}\"\n\
             [[steps]]\nname = \"home\"\ngoto = \"/{variant}\"\n\
             [[steps]]\nname = \"buy\"\nclick = \"#buy\"\n\
             [[steps]]\nassert = {{ text_contains = \"in the cart\", selector = \"#done\" }}\n"
        ),
    )
    .unwrap();
    path
}

struct Checked {
    out: Output,
    junit: String,
    markdown: String,
}

fn check(dir: &Path, flow: &Path, name: &str) -> Checked {
    let budgets = dir.join("budgets.toml");
    std::fs::write(
        &budgets,
        "[[budget]]\nflow = \"shop\"\nrules = [\"lcp <= 2500ms\", \"cls <= 0.1\", \"inp <= 200ms\"]\n",
    )
    .unwrap();
    let junit = dir.join(format!("{name}.xml"));
    let markdown = dir.join(format!("{name}.md"));
    let out = Command::new(binary("vitalsign-agent"))
        .args(["check", "--iterations", "2", "--budgets"])
        .arg(&budgets)
        .arg("--junit")
        .arg(&junit)
        .arg("--markdown")
        .arg(&markdown)
        .arg(flow)
        .current_dir(dir)
        .output()
        .unwrap();
    Checked {
        out,
        junit: std::fs::read_to_string(&junit).unwrap_or_default(),
        markdown: std::fs::read_to_string(&markdown).unwrap_or_default(),
    }
}

/// The JUnit file parses, its counts agree with its test cases, and it names
/// the test cases that failed.
fn junit_failures(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml)
        .unwrap_or_else(|e| panic!("invalid JUnit XML ({e}):\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert!(!cases.is_empty(), "no test cases:\n{xml}");
    let count = |attr: &str| root.attribute(attr).and_then(|v| v.parse::<usize>().ok());
    assert_eq!(count("tests"), Some(cases.len()), "{xml}");
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c.children().any(|f| f.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap_or("").to_string())
        .collect();
    assert_eq!(count("failures"), Some(failed.len()), "{xml}");
    failed
}

#[test]
fn check_passes_the_fast_variant_and_fails_the_slow_one() {
    let dir = tempfile::tempdir().unwrap();
    let site = shop();

    let fast = check(dir.path(), &shop_flow(dir.path(), &site, "fast"), "fast");
    let stdout = String::from_utf8_lossy(&fast.out.stdout);
    assert_eq!(
        fast.out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&fast.out.stderr)
    );
    assert_eq!(junit_failures(&fast.junit), Vec::<String>::new());
    assert!(fast.junit.contains("lcp"), "{}", fast.junit);
    assert!(fast.markdown.contains("lcp"), "{}", fast.markdown);

    let slow = check(dir.path(), &shop_flow(dir.path(), &site, "slow"), "slow");
    let stdout = String::from_utf8_lossy(&slow.out.stdout);
    assert_eq!(
        slow.out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&slow.out.stderr)
    );
    let failed = junit_failures(&slow.junit);
    assert!(
        !failed.is_empty() && failed.iter().all(|name| name.contains("lcp")),
        "only the LCP budget breaks: {failed:?}\n{}",
        slow.junit
    );
    assert!(slow.markdown.contains("lcp"), "{}", slow.markdown);
    assert!(
        stdout.contains("lcp"),
        "the summary names the broken rule: {stdout}"
    );

    // A flow file that cannot be read means the check could not be done: exit 2.
    let missing = check(dir.path(), &dir.path().join("missing.toml"), "missing");
    assert_eq!(
        missing.out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.out.stderr)
    );
    assert!(String::from_utf8_lossy(&missing.out.stderr).contains("missing.toml"));
}

#[test]
fn once_prints_every_step_measured() {
    let dir = tempfile::tempdir().unwrap();
    let site = shop();
    let flow = shop_flow(dir.path(), &site, "fast");
    let out = Command::new(binary("vitalsign-agent"))
        .args(["once", "--json"])
        .arg(&flow)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(run["outcome"], "pass");
    assert_eq!(run["steps"][0]["name"], "home");
    assert!(run["steps"][0]["vitals"]["lcp"].as_f64().unwrap() > 0.0);
    assert_eq!(run["steps"][0]["status"], 200);
    // One page view, opened by "home", with the LCP its step carries.
    assert_eq!(run["schema_version"], 2);
    assert_eq!(run["page_views"][0]["name"], "home");
    assert_eq!(run["page_views"][0]["navigation_type"], "navigate");
    assert_eq!(
        run["page_views"][0]["vitals"]["lcp"],
        run["steps"][0]["vitals"]["lcp"]
    );
    assert!(run["page_views"][1].is_null(), "{run}");

    // The readable table: one row per step, with ratings.
    let out = Command::new(binary("vitalsign-agent"))
        .arg("once")
        .arg(&flow)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("home") && table.contains("buy"), "{table}");
    assert!(table.contains("page view"), "the page views table: {table}");
    assert!(table.contains("good"), "ratings in the table: {table}");
}
