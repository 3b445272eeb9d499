//! Shared by the probe benchmarks: a loopback page served with axum, the
//! 3-step flow that walks it, order statistics, and /proc readings of a
//! browser's process tree. Everything stays on 127.0.0.1.

#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};
use vitalsign_probes::Flow;

/// The page's own work reported by the page itself: its navigation
/// (`startTime` → `loadEventEnd`) and its click handler, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct PageTimings {
    pub navigation_ms: Vec<f64>,
    pub click_ms: Vec<f64>,
}

pub type Timings = Arc<Mutex<PageTimings>>;

/// A small page with a hero text (the LCP), a button whose handler does
/// 30 ms of work, and a script that reports both timings to `/timing`.
pub const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>bench page</title>
<style>body{font-family:sans-serif;margin:2em}.hero{font-size:40px}</style></head><body>
<h1 id="title">Loopback bench shop</h1>
<p class="hero">A paragraph large enough to be the largest contentful paint.</p>
<button id="go">add to cart</button><p id="out"></p>
<ul>
<li>one</li><li>two</li><li>three</li><li>four</li><li>five</li>
</ul>
<script>
function report(kind, ms) {
  navigator.sendBeacon('/timing', JSON.stringify({ kind: kind, ms: ms }));
}
addEventListener('load', function () {
  setTimeout(function () {
    var n = performance.getEntriesByType('navigation')[0];
    report('nav', n.loadEventEnd - n.startTime);
  }, 0);
});
document.getElementById('go').addEventListener('click', function () {
  var t0 = performance.now();
  while (performance.now() < t0 + 30) {}
  document.getElementById('out').textContent = 'Cart: 1 item';
  report('click', performance.now() - t0);
});
</script></body></html>"#;

/// Serve [`PAGE`] on `127.0.0.1:0`; returns the base URL and the timings the
/// page reports.
pub async fn serve() -> (String, Timings) {
    let timings: Timings = Arc::default();
    let sink = timings.clone();
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/timing",
            post(move |body: String| {
                let sink = sink.clone();
                async move {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                        let ms = v["ms"].as_f64().unwrap_or(0.0);
                        let mut t = sink.lock().unwrap();
                        match v["kind"].as_str() {
                            Some("nav") => t.navigation_ms.push(ms),
                            Some("click") => t.click_ms.push(ms),
                            _ => {}
                        }
                    }
                    ""
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), timings)
}

/// Open the page, click the button, check the page reacted.
pub fn three_step_flow(base: &str) -> Flow {
    let text = format!(
        r##"name = "bench"
base_url = "{base}"
[[steps]]
name = "home"
goto = "/"
[[steps]]
name = "add to cart"
click = "#go"
[[steps]]
assert = {{ text_contains = "Cart: 1 item", selector = "#out" }}
"##
    );
    Flow::parse(&text, "bench.toml").unwrap()
}

/// Just open the page: what Lighthouse does too.
pub fn one_page_flow(base: &str) -> Flow {
    let text = format!(
        "name = \"bench-load\"\nbase_url = \"{base}\"\n[[steps]]\nname = \"home\"\ngoto = \"/\"\n"
    );
    Flow::parse(&text, "bench-load.toml").unwrap()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Pids of `root`'s descendants: the runner's own walk of /proc, so the
/// bench counts exactly the processes the runner would kill.
pub use vitalsign_probes::process::descendants;

/// Resident memory of one process, in KiB: (RSS, PSS, USS). PSS splits shared
/// pages among the processes that share them, so a tree's PSS sums honestly;
/// but it also shares them with *other* Chromiums on the machine, so it moves
/// when they come and go. USS (private pages only) is the leak indicator.
pub fn memory_kib(pid: u32) -> (u64, u64, u64) {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("Rss:"),
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

/// Memory of a browser and every process it started, in MiB.
pub struct TreeMemory {
    pub processes: usize,
    pub rss: f64,
    pub pss: f64,
    pub uss: f64,
}

pub fn tree_memory(root: u32) -> TreeMemory {
    let mut pids = descendants(root);
    pids.push(root);
    let (mut rss, mut pss, mut uss) = (0, 0, 0);
    for pid in &pids {
        let (r, p, u) = memory_kib(*pid);
        rss += r;
        pss += p;
        uss += u;
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    TreeMemory {
        processes: pids.len(),
        rss: mib(rss),
        pss: mib(pss),
        uss: mib(uss),
    }
}

/// The `--user-data-dir` on a process's command line.
pub fn user_data_dir(pid: u32) -> Option<PathBuf> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmd.split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .find_map(|a| a.strip_prefix("--user-data-dir=").map(PathBuf::from))
}

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn live_processes_matching(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) {
            found.push(pid);
        }
    }
    found
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
