//! Beacon ingest throughput of the real release collector against this
//! machine's HTTP ceilings, measured in the same run with the same load.
//!
//! 1. **Ceilings**: a bare axum server (this bench binary re-started as a child
//!    process, a multi-thread tokio runtime like the collector's) whose
//!    `POST /v1/rum` answers 204 without looking at the body; then Debian's
//!    nginx (`nginx-light`, one worker per core, its own config in a temp
//!    directory, `return 204`). nginx is required: the bench fails, naming
//!    the package, when `/usr/sbin/nginx` is missing
//!    (`apt-get install -y nginx-light`).
//! 2. **Collector**: `vitalsign-collector serve` (release) on `127.0.0.1:0`
//!    with a fresh temp database, sites from `VITALSIGN_SITES`, default rate
//!    limits; clients look like 65,536 visitors through `X-Forwarded-For`
//!    (`trusted_proxies = ["127.0.0.1"]`, as behind a reverse proxy).
//! 3. **Ceilings** again: the machine is shared, so each ceiling is the mean
//!    of its runs before and after, and the goal is against the slower one.
//!
//! The load: `VITALSIGN_BENCH_CONCURRENCY` (default 32) workers, each with one
//! keep-alive HTTP/1.1 connection, post 5-metric beacons (LCP, CLS, INP, FCP,
//! TTFB with attribution, `text/plain`, a new page-view id each, varied sites,
//! URLs and devices) back to back for 2 s of warm-up plus
//! `VITALSIGN_BENCH_SECONDS` (default 10 s), at most `VITALSIGN_BENCH_MAX`
//! (default 1,000,000) beacons per phase. Latency is from sending the request to
//! the end of the response, over requests started after the warm-up.
//!
//! After SIGTERM (the collector drains and commits) the bench counts rows in
//! SQLite: every 2xx beacon must be there with its 5 samples, nothing else;
//! and the bytes of every table and index (`dbstat`) per stored sample.
//! Server CPU per request (user + system time of the server process and its
//! children from `/proc/PID/stat`, over the phase) shows where a throughput
//! gap comes from.
//!
//!     apt-get install -y nginx-light   # once
//!     cargo bench -p vitalsign-tests --bench ingest
//!
//! With `VITALSIGN_BENCH_DB=postgres` it measures replicas instead (see
//! [`postgres_replicas`]): the collector on SQLite, then one and two replicas
//! on one PostgreSQL cluster (Debian's `postgresql`), and the ratio.
//!
//!     VITALSIGN_BENCH_DB=postgres cargo bench -p vitalsign-tests --bench ingest

#[path = "collector_bench/mod.rs"]
mod collector_bench;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use collector_bench::{print_table, verdict};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, ORIGIN};
use hyper_util::rt::TokioIo;
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::beacon::{
    Attribution, Beacon, DeviceClass, EffectiveType, InteractionType, NavigationType, Report,
};
use vitalsign_test_support::env::env_u64;
use vitalsign_test_support::pg::{Durability, PgCluster};
use vitalsign_test_support::process::listening_addr;
use vitalsign_test_support::procfs::{cpu_ms_tree, rss_mib};
use vitalsign_test_support::stats::percentile_sorted;
use vitalsign_test_support::{CollectorProcess, HeldPort, Process};

const BARE_SERVER_VAR: &str = "VITALSIGN_BENCH_BARE_SERVER";

fn main() {
    if std::env::var_os(BARE_SERVER_VAR).is_some() {
        bare_server();
        return;
    }
    let load = Load {
        concurrency: env_u64("VITALSIGN_BENCH_CONCURRENCY", 32) as usize,
        warmup: Duration::from_secs(2),
        window: Duration::from_secs(env_u64("VITALSIGN_BENCH_SECONDS", 10)),
        max_requests: env_u64("VITALSIGN_BENCH_MAX", 1_000_000),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Ok(target) = std::env::var("VITALSIGN_BENCH_TARGET") {
        // Load only, against a server someone else started (e.g. under `perf record`).
        let o = runtime.block_on(run_load(&[target.parse().expect("HOST:PORT")], &load, 0));
        println!(
            "{target}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} × 2xx, statuses {:?}, {} errors",
            o.per_second(),
            o.p(0.5),
            o.p(0.99),
            o.ok_total,
            o.statuses,
            o.errors
        );
        return;
    }
    match std::env::var("VITALSIGN_BENCH_DB").as_deref() {
        Err(_) | Ok("sqlite") => {}
        Ok("postgres") => {
            postgres_replicas(&runtime, &load);
            return;
        }
        Ok(other) => {
            panic!("VITALSIGN_BENCH_DB={other:?}: use `sqlite` (the default) or `postgres`")
        }
    }
    let bin = collector_bench::release_collector();
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-ingest-")
        .tempdir()
        .unwrap();
    // Page-view ids differ between phases so no phase re-reports another's.
    let mut next_base = 0u64;
    let mut phase = |addr: SocketAddr, pid: u32, name: &str| {
        eprintln!(
            "{name}: {} workers, {:?} warm-up + {:?}…",
            load.concurrency, load.warmup, load.window
        );
        let base = next_base;
        next_base += load.max_requests + 1_000_000;
        let cpu_before = cpu_ms_tree(pid);
        let mut outcome = runtime.block_on(run_load(&[addr], &load, base));
        outcome.server_cpu_ms = cpu_ms_tree(pid) - cpu_before;
        eprintln!(
            "{name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} × 2xx, statuses {:?}, {} errors",
            outcome.per_second(),
            outcome.p(0.5),
            outcome.p(0.99),
            outcome.ok_total,
            outcome.statuses,
            outcome.errors
        );
        outcome
    };

    let bare_before = {
        let server = start_bare_server();
        let o = phase(server.1, server.0.child.id(), "bare 204 (before)");
        drop(server);
        o
    };
    let nginx_before = {
        let nginx = Nginx::start();
        phase(nginx.addr, nginx.pid(), "nginx 204 (before)")
    };

    let db = dir.path().join("collector.db");
    let collector = collector_bench::start_collector(&bin, dir.path(), &db, &collector_env());
    let (_, rss_idle) = rss_mib(collector.pid());
    let collected = phase(collector.addr(), collector.pid(), "collector");
    let (_, peak_rss) = rss_mib(collector.pid());
    let writer = runtime.block_on(writer_stats(&collector.base_url));
    collector.stop();
    let stored = count_stored(&db);

    let nginx_after = {
        let nginx = Nginx::start();
        phase(nginx.addr, nginx.pid(), "nginx 204 (after)")
    };
    let bare_after = {
        let server = start_bare_server();
        let o = phase(server.1, server.0.child.id(), "bare 204 (after)");
        drop(server);
        o
    };

    // The machine is shared: each ceiling is the mean of its runs before and
    // after the collector's, and the goal is against the slower of the two.
    let mean = |a: &Outcome, b: &Outcome| (a.per_second() + b.per_second()) / 2.0;
    let bare = mean(&bare_before, &bare_after);
    let nginx = mean(&nginx_before, &nginx_after);
    let ceiling = bare.min(nginx);
    let cpu = |a: &Outcome, b: &Outcome| (a.cpu_us_per_request() + b.cpu_us_per_request()) / 2.0;
    let bare_cpu = cpu(&bare_before, &bare_after);
    let nginx_cpu = cpu(&nginx_before, &nginx_after);
    let ratio = collected.per_second() / ceiling;
    let ms = |v: f64| format!("{v:.2}");
    let row = |name: &str, o: &Outcome| {
        vec![
            name.to_string(),
            format!("{:.0}", o.per_second()),
            format!("{:.2}", o.per_second() / bare),
            format!("{:.2}", o.per_second() / nginx),
            ms(o.p(0.5)),
            ms(o.p(0.99)),
            ms(o.p(1.0)),
            format!("{:.1}", o.cpu_us_per_request()),
            o.ok_total.to_string(),
            (o.errors
                + o.statuses
                    .iter()
                    .filter(|(s, _)| **s >= 300)
                    .map(|(_, n)| n)
                    .sum::<u64>())
            .to_string(),
        ]
    };
    println!();
    println!(
        "ingest: {} workers (keep-alive HTTP/1.1), {:?} measured after {:?} warm-up, 5-metric text/plain beacons",
        load.concurrency, load.window, load.warmup
    );
    print_table(
        &[
            "server",
            "beacons/s",
            "× axum",
            "× nginx",
            "p50 ms",
            "p99 ms",
            "max ms",
            "server CPU µs/req",
            "2xx",
            "non-2xx/errors",
        ],
        &[
            row("bare axum 204 (before)", &bare_before),
            row("nginx 204 (before)", &nginx_before),
            row("vitalsign-collector", &collected),
            row("nginx 204 (after)", &nginx_after),
            row("bare axum 204 (after)", &bare_after),
        ],
    );
    println!();
    let lossless = stored.page_views == collected.ok_total
        && stored.samples == 5 * collected.ok_total
        && stored.duplicate_free;
    print_table(
        &["collector check", "value", "goal", "status"],
        &[
            vec![
                "throughput / slower ceiling".into(),
                format!(
                    "{ratio:.2} ({:.0} vs {:.0}/s, {})",
                    collected.per_second(),
                    ceiling,
                    if bare <= nginx { "axum" } else { "nginx" }
                ),
                "≥ 0.50".into(),
                verdict(ratio >= 0.5).into(),
            ],
            vec![
                "p99 latency".into(),
                format!("{:.2} ms", collected.p(0.99)),
                "< 25 ms".into(),
                verdict(collected.p(0.99) < 25.0).into(),
            ],
            vec![
                "server CPU per request / axum, / nginx".into(),
                format!(
                    "{:.1}x, {:.1}x ({:.1} vs {:.1}, {:.1} µs)",
                    collected.cpu_us_per_request() / bare_cpu,
                    collected.cpu_us_per_request() / nginx_cpu,
                    collected.cpu_us_per_request(),
                    bare_cpu,
                    nginx_cpu
                ),
                "".into(),
                "".into(),
            ],
            vec![
                "2xx answers".into(),
                collected.ok_total.to_string(),
                "".into(),
                "".into(),
            ],
            vec![
                "page views stored (SQLite, after SIGTERM)".into(),
                stored.page_views.to_string(),
                "= 2xx".into(),
                verdict(stored.page_views == collected.ok_total).into(),
            ],
            vec![
                "sample rows stored".into(),
                stored.samples.to_string(),
                "= 5 × 2xx".into(),
                verdict(stored.samples == 5 * collected.ok_total).into(),
            ],
            vec![
                "zero loss".into(),
                if lossless { "yes" } else { "no" }.into(),
                "yes".into(),
                verdict(lossless).into(),
            ],
            vec![
                "peak RSS (VmHWM)".into(),
                format!("{peak_rss:.1} MiB (idle {rss_idle:.1})"),
                "< 150 MB".into(),
                verdict(peak_rss * 1.048_576 < 150.0).into(),
            ],
            vec![
                "bytes on disk per sample (raw rows, indexes, rollups)".into(),
                format!(
                    "{:.0} B ({:.1} MiB for {} samples)",
                    stored.bytes as f64 / stored.samples.max(1) as f64,
                    stored.bytes as f64 / 1048576.0,
                    stored.samples
                ),
                "≤ 60 B".into(),
                verdict(stored.bytes as f64 <= 60.0 * stored.samples as f64).into(),
            ],
            vec![
                "write batches, mean beacons per batch".into(),
                writer,
                "".into(),
                "".into(),
            ],
        ],
    );
}

struct Load {
    concurrency: usize,
    warmup: Duration,
    window: Duration,
    max_requests: u64,
}

struct Outcome {
    /// Every 2xx, warm-up included (what the database must hold).
    ok_total: u64,
    /// Requests started after the warm-up, and how long that window lasted.
    measured: u64,
    window: Duration,
    /// Latencies in ms of requests started after the warm-up, sorted.
    latencies: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    /// CPU the server process used during the phase (warm-up included).
    server_cpu_ms: f64,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.measured as f64 / self.window.as_secs_f64()
    }

    fn cpu_us_per_request(&self) -> f64 {
        let answered: u64 = self.statuses.values().sum();
        self.server_cpu_ms * 1000.0 / answered.max(1) as f64
    }

    fn p(&self, q: f64) -> f64 {
        percentile_sorted(&self.latencies, q)
    }
}

#[derive(Default)]
struct WorkerTally {
    ok_total: u64,
    measured: u64,
    latencies: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

/// Closed-loop load: each worker sends its next beacon as soon as the last is answered.
/// `addrs`: the servers under test; worker `w` keeps its connection to
/// `addrs[w % addrs.len()]` (replicas behind a load balancer).
async fn run_load(addrs: &[SocketAddr], load: &Load, base: u64) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let deadline = measure_from + load.window;
    let max = load.max_requests;
    let workers: Vec<_> = (0..load.concurrency)
        .map(|w| {
            let next = next.clone();
            let addr = addrs[w % addrs.len()];
            tokio::spawn(async move {
                let mut tally = WorkerTally::default();
                let mut sender = None;
                loop {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= max {
                        break;
                    }
                    if sender.is_none() {
                        match connect(addr).await {
                            Ok(s) => sender = Some(s),
                            Err(_) => {
                                tally.errors += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        }
                    }
                    let s = sender.as_mut().unwrap();
                    let request = beacon_request(addr, base + i);
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(Duration::from_secs(10), async {
                        s.ready().await?;
                        let response = s.send_request(request).await?;
                        let status = response.status().as_u16();
                        response.into_body().collect().await?;
                        Ok::<u16, hyper::Error>(status)
                    })
                    .await;
                    let took = sent.elapsed();
                    match answer {
                        Ok(Ok(status)) => {
                            *tally.statuses.entry(status).or_insert(0) += 1;
                            if (200..300).contains(&status) {
                                tally.ok_total += 1;
                            }
                            if sent >= measure_from {
                                tally.measured += 1;
                                tally.latencies.push(took.as_secs_f64() * 1000.0);
                            }
                        }
                        _ => {
                            tally.errors += 1;
                            sender = None;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut outcome = Outcome {
        ok_total: 0,
        measured: 0,
        window: Duration::ZERO,
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
        errors: 0,
        server_cpu_ms: f64::NAN,
    };
    for worker in workers {
        let t = worker.await.unwrap();
        outcome.ok_total += t.ok_total;
        outcome.measured += t.measured;
        outcome.latencies.extend(t.latencies);
        outcome.errors += t.errors;
        for (status, n) in t.statuses {
            *outcome.statuses.entry(status).or_insert(0) += n;
        }
    }
    outcome.window = Instant::now().saturating_duration_since(measure_from);
    outcome.latencies.sort_by(f64::total_cmp);
    outcome
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Cheap deterministic pseudo-randomness (splitmix64): beacon `i` is always the same.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A value in 0..1 from `seed`.
fn unit(seed: u64) -> f64 {
    (mix(seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Roughly log-normal around `median` (sum of uniforms as the normal).
fn around(seed: u64, median: f64, spread: f64) -> f64 {
    let z: f64 = (0..4).map(|k| unit(seed * 8 + k)).sum::<f64>() - 2.0;
    median * (spread * z * 1.7).exp()
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

const SITES: [(&str, &str); 3] = [
    ("shop", "https://shop.example"),
    ("blog", "https://blog.example"),
    ("docs", "https://docs.example"),
];

/// The `i`-th beacon: a new page view of a varied URL, device and set of values.
fn beacon(i: u64) -> (Beacon, &'static str) {
    let r = |k: u64| mix(i.wrapping_mul(31).wrapping_add(k));
    let (site, origin) = match r(1) % 10 {
        0..=6 => SITES[0],
        7 | 8 => SITES[1],
        _ => SITES[2],
    };
    let path = match (site, r(2) % 8) {
        ("shop", 0) => "/".to_string(),
        ("shop", 1..=3) => format!("/product/{}", 1000 + r(3) % 50_000),
        ("shop", 4) => format!(
            "/category/{}",
            ["shoes", "bags", "hats", "sale"][(r(3) % 4) as usize]
        ),
        ("shop", 5) => format!("/search?q=item{}", r(3) % 100),
        ("shop", 6) => "/cart".to_string(),
        ("shop", _) => "/checkout".to_string(),
        ("blog", 0 | 1) => "/".to_string(),
        ("blog", _) => format!("/posts/{}/{:08x}", 2020 + r(3) % 6, r(4) as u32),
        (_, 0) => "/".to_string(),
        (_, _) => format!("/guide/section-{}/page-{}", r(3) % 12, r(4) % 40),
    };
    let device = match r(5) % 20 {
        0..=10 => DeviceClass::Mobile,
        11 => DeviceClass::Tablet,
        _ => DeviceClass::Desktop,
    };
    let slow = if device == DeviceClass::Mobile {
        1.4
    } else {
        1.0
    };
    let value = |metric: Metric, median: f64, spread: f64, k: u64| -> (Metric, f64) {
        let v = around(r(k), median * slow, spread).min(metric.max_plausible());
        (metric, v)
    };
    let report = |(metric, value): (Metric, f64), attribution: Attribution| Report {
        metric,
        value,
        rating: metric.rate(value),
        attribution,
    };
    let (_, lcp) = value(Metric::Lcp, 1900.0, 0.5, 10);
    let (_, fcp) = value(Metric::Fcp, 1000.0, 0.5, 11);
    let (_, ttfb) = value(Metric::Ttfb, 320.0, 0.6, 12);
    let (_, inp) = value(Metric::Inp, 140.0, 0.7, 13);
    let cls = if r(14) % 3 == 0 {
        0.0
    } else {
        round(around(r(15), 0.05, 0.9), 4).min(10.0)
    };
    let (lcp, fcp, ttfb, inp) = (round(lcp, 1), round(fcp, 1), round(ttfb, 1), inp.round());
    let input_delay = (inp * 0.1).round();
    let presentation = (inp * 0.25).round();
    let beacon = Beacon {
        schema_version: 1,
        site: site.to_string(),
        page_view_id: format!("v1-{}-{:010}", 1_763_870_000_000 + i, r(6) % 10_000_000_000),
        url: format!("{origin}{path}"),
        navigation_type: if r(7) % 10 == 0 {
            NavigationType::Reload
        } else {
            NavigationType::Navigate
        },
        device: Some(device),
        effective_type: Some(if r(8) % 5 == 0 {
            EffectiveType::G3
        } else {
            EffectiveType::G4
        }),
        snippet_version: "0.1.0".into(),
        reports: vec![
            report(
                (Metric::Lcp, lcp),
                Attribution {
                    target: Some("main>img.hero".into()),
                    url: Some(format!("{origin}/img/hero-{}.jpg", r(9) % 500)),
                    ..Default::default()
                },
            ),
            report((Metric::Fcp, fcp), Attribution::default()),
            report((Metric::Ttfb, ttfb), Attribution::default()),
            report(
                (Metric::Cls, cls),
                Attribution {
                    target: (cls > 0.0).then(|| "#promo-banner".into()),
                    ..Default::default()
                },
            ),
            report(
                (Metric::Inp, inp),
                Attribution {
                    target: Some("button#add-to-cart".into()),
                    input_delay: Some(input_delay),
                    processing: Some((inp - input_delay - presentation).max(0.0)),
                    presentation: Some(presentation),
                    interaction: Some(InteractionType::Pointer),
                    ..Default::default()
                },
            ),
        ],
    };
    (beacon, origin)
}

fn beacon_request(addr: SocketAddr, i: u64) -> hyper::Request<Full<Bytes>> {
    let (beacon, origin) = beacon(i);
    let body = serde_json::to_vec(&beacon).unwrap();
    // 65,536 visitors behind a proxy, each well inside the default rate limit.
    let client = mix(i ^ 0xC0FFEE) as u16;
    hyper::Request::post("/v1/rum")
        .header(HOST, addr.to_string())
        .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
        .header(ORIGIN, origin)
        .header(
            "x-forwarded-for",
            format!("10.1.{}.{}", client >> 8, client & 0xff),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// The ceiling: this binary again, as a child process serving a bare 204.
fn start_bare_server() -> (Process, SocketAddr) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.env(BARE_SERVER_VAR, "1");
    let mut process = Process::spawn("bare 204 server", command);
    let line = process.wait_for_line("listening on http://", Duration::from_secs(30));
    let addr = listening_addr(&line);
    (process, addr)
}

fn bare_server() {
    // Same runtime shape as the collector's `main` (multi-thread, one worker per core).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/v1/rum",
            axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// `batches, mean per batch` from the collector's `/metrics`.
async fn writer_stats(base_url: &str) -> String {
    let text = match reqwest::get(format!("{base_url}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return format!("/metrics unreadable: {e}"),
    };
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let batches = value("vitalsign_write_batches_total");
    let writes = value("vitalsign_writes_total");
    let commit = value("vitalsign_commit_seconds_sum");
    format!(
        "{batches:.0} batches, {:.1} per batch, {:.2} ms per batch",
        writes / batches,
        commit / batches * 1000.0
    )
}

struct Stored {
    page_views: u64,
    samples: u64,
    duplicate_free: bool,
    /// Pages of every table and index (SQLite's `dbstat`), WAL included.
    bytes: u64,
}

fn count_stored(db: &std::path::Path) -> Stored {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    let bytes = one("SELECT sum(pgsize) FROM dbstat");
    // Schema 5 and older kept one row per sample; a collector built from an
    // older commit (VITALSIGN_COLLECTOR_BIN) is measured the same way.
    let per_sample = one("SELECT count(*) FROM sqlite_master WHERE name = 'samples'") == 1;
    if per_sample {
        return Stored {
            page_views: one("SELECT count(DISTINCT origin_id) FROM samples WHERE source = 'rum'"),
            samples: one("SELECT count(*) FROM samples"),
            duplicate_free: one(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM samples GROUP BY origin_id)",
            ) <= 5,
            bytes,
        };
    }
    // One row per page view (unique by page-view id), a column per metric.
    Stored {
        page_views: one("SELECT count(*) FROM measurements WHERE step_index = -1"),
        samples: one(
            "SELECT coalesce(sum((lcp IS NOT NULL) + (cls IS NOT NULL) + (inp IS NOT NULL)
                                 + (fcp IS NOT NULL) + (ttfb IS NOT NULL) + (tbt IS NOT NULL)), 0)
             FROM measurements",
        ),
        duplicate_free: one("SELECT count(*) FROM measurements WHERE step_index = -1 AND
                 (lcp IS NULL OR cls IS NULL OR inp IS NULL OR fcp IS NULL OR ttfb IS NULL)")
            == 0,
        bytes,
    }
}

/// The collector's environment in every phase: three sites, and clients
/// behind a proxy on loopback.
fn collector_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "VITALSIGN_SITES",
            "{shop={origins=[\"https://shop.example\"]},blog={origins=[\"https://blog.example\"]},docs={origins=[\"https://docs.example\"]}}".into(),
        ),
        ("VITALSIGN_TRUSTED_PROXIES", "[\"127.0.0.1\"]".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// `VITALSIGN_BENCH_DB=postgres`: the same load against the release collector
/// on SQLite (the reference), then on one PostgreSQL cluster with PostgreSQL's
/// default durability (`fsync` on, as deployed): one replica, two replicas
/// (the workers' connections alternate between them, as behind a round-robin
/// balancer), one replica again (the machine is shared: the one-replica figure
/// is the mean of before and after). Each phase gets a fresh database; after
/// SIGTERM every 2xx beacon must be stored with its 5 samples. Server CPU
/// counts the collectors and PostgreSQL (its backends are children of its
/// server process).
fn postgres_replicas(runtime: &tokio::runtime::Runtime, load: &Load) {
    let bin = collector_bench::release_collector();
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-ingest-pg-")
        .tempdir()
        .unwrap();
    let cluster = PgCluster::start(Durability::Durable);
    let mut next_base = 0u64;
    let mut phase = |name: &str, servers: &[&CollectorProcess]| {
        eprintln!(
            "{name}: {} workers over {} server(s), {:?} warm-up + {:?}…",
            load.concurrency,
            servers.len(),
            load.warmup,
            load.window
        );
        let base = next_base;
        next_base += load.max_requests + 1_000_000;
        let cpu = || {
            servers.iter().map(|s| cpu_ms_tree(s.pid())).sum::<f64>() + cpu_ms_tree(cluster.pid())
        };
        let cpu_before = cpu();
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr()).collect();
        let mut outcome = runtime.block_on(run_load(&addrs, load, base));
        outcome.server_cpu_ms = cpu() - cpu_before;
        eprintln!(
            "{name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} × 2xx, statuses {:?}, {} errors",
            outcome.per_second(),
            outcome.p(0.5),
            outcome.p(0.99),
            outcome.ok_total,
            outcome.statuses,
            outcome.errors
        );
        outcome
    };
    let mut results: Vec<(String, Outcome, Stored)> = Vec::new();

    // SQLite, the reference.
    let db = dir.path().join("collector.db");
    let sqlite = collector_bench::start_collector(&bin, dir.path(), &db, &collector_env());
    let outcome = phase("SQLite, 1 collector", &[&sqlite]);
    sqlite.stop();
    results.push(("SQLite, 1 collector".into(), outcome, count_stored(&db)));

    for (name, replicas) in [
        ("PostgreSQL, 1 replica (before)", 1),
        ("PostgreSQL, 2 replicas", 2),
        ("PostgreSQL, 1 replica (after)", 1),
    ] {
        let url = cluster.database();
        let database = url.rsplit('/').next().unwrap().to_string();
        let servers: Vec<CollectorProcess> = (0..replicas)
            .map(|i| {
                let home = dir.path().join(format!("{database}-{i}"));
                std::fs::create_dir_all(&home).unwrap();
                collector_bench::start_collector(&bin, &home, Path::new(&url), &collector_env())
            })
            .collect();
        let outcome = phase(name, &servers.iter().collect::<Vec<_>>());
        for s in servers {
            s.stop();
        }
        results.push((name.into(), outcome, count_stored_pg(&cluster, &database)));
    }

    let one = (results[1].1.per_second() + results[3].1.per_second()) / 2.0;
    let two = results[2].1.per_second();
    let sqlite_rate = results[0].1.per_second();
    println!();
    println!(
        "ingest on PostgreSQL: {} workers (keep-alive HTTP/1.1), {:?} measured after {:?} warm-up, 5-metric text/plain beacons; \
         PostgreSQL {} with fsync on, on this machine ({} cores) with the collectors and the load",
        load.concurrency,
        load.window,
        load.warmup,
        cluster
            .psql("postgres", "SHOW server_version")
            .unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(name, o, stored)| {
            let lossless = stored.page_views == o.ok_total
                && stored.samples == 5 * o.ok_total
                && stored.duplicate_free;
            vec![
                name.clone(),
                format!("{:.0}", o.per_second()),
                format!("{:.2}", o.per_second() / one),
                format!("{:.2}", o.per_second() / sqlite_rate),
                format!("{:.2}", o.p(0.5)),
                format!("{:.2}", o.p(0.99)),
                format!("{:.1}", o.cpu_us_per_request()),
                o.ok_total.to_string(),
                (o.errors
                    + o.statuses
                        .iter()
                        .filter(|(s, _)| **s >= 300)
                        .map(|(_, n)| n)
                        .sum::<u64>())
                .to_string(),
                format!("{} {}", stored.page_views, verdict(lossless)),
                format!("{:.0}", stored.bytes as f64 / stored.samples.max(1) as f64),
            ]
        })
        .collect();
    print_table(
        &[
            "server",
            "beacons/s",
            "× PG 1 replica",
            "× SQLite",
            "p50 ms",
            "p99 ms",
            "server+PG CPU µs/req",
            "2xx",
            "non-2xx/errors",
            "stored (= 2xx)",
            "B/sample",
        ],
        &rows,
    );
    println!();
    println!(
        "two replicas / one replica: {:.2} ({two:.0} vs {one:.0} beacons/s, one = mean of before {:.0} and after {:.0}); \
         PostgreSQL one replica / SQLite: {:.2}",
        two / one,
        results[1].1.per_second(),
        results[3].1.per_second(),
        one / sqlite_rate
    );
}

/// What a PostgreSQL database holds after a phase (psql on `database`).
fn count_stored_pg(cluster: &PgCluster, database: &str) -> Stored {
    let one = |sql: &str| -> u64 {
        let out = cluster
            .psql(database, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.parse()
            .unwrap_or_else(|_| panic!("{sql}: {out:?} is not a count"))
    };
    Stored {
        page_views: one("SELECT count(*) FROM measurements WHERE step_index = -1"),
        samples: one(
            "SELECT coalesce(sum((lcp IS NOT NULL)::int + (cls IS NOT NULL)::int + (inp IS NOT NULL)::int
                                 + (fcp IS NOT NULL)::int + (ttfb IS NOT NULL)::int + (tbt IS NOT NULL)::int), 0)
             FROM measurements",
        ),
        duplicate_free: one(
            "SELECT count(*) FROM (SELECT origin_id FROM measurements WHERE step_index = -1
                                   GROUP BY origin_id HAVING count(*) > 1) AS twice",
        ) == 0
            && one(
                "SELECT count(*) FROM measurements WHERE step_index = -1 AND
                 (lcp IS NULL OR cls IS NULL OR inp IS NULL OR fcp IS NULL OR ttfb IS NULL)",
            ) == 0,
        // Tables (partitions included), their indexes and TOAST: what the
        // data costs, without the catalog every database has.
        bytes: one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
        ),
    }
}

/// Debian's nginx (`nginx-light`): where the bench looks for it.
const NGINX: &str = "/usr/sbin/nginx";

/// nginx answering 204 on loopback with its own config: a master and one
/// worker per core (as a production nginx runs), no access log, keep-alive
/// connections that last the whole phase. SIGTERM on drop, so its workers
/// never outlive the bench.
struct Nginx {
    process: Process,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "{NGINX} is missing: the ingest bench measures nginx answering 204 as one of its ceilings; \
             install it with `apt-get install -y nginx-light` (Debian)"
        );
        let dir = tempfile::Builder::new()
            .prefix("vitalsign-bench-nginx-")
            .tempdir()
            .unwrap();
        // nginx takes this socket over (its `NGINX=fd;` hand-over, meant for
        // binary upgrades) instead of binding a port that was free a moment ago.
        let held = HeldPort::new();
        held.listen();
        let port = held.port();
        let d = dir.path().display();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let config = format!(
            "worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/rum {{ return 204; }}
    }}
}}
"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let mut command = std::process::Command::new(NGINX);
        command
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg("stderr");
        command.env("NGINX", format!("{};", held.fd()));
        let mut process = Process::spawn_holding("nginx", command, held);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Ready once its workers run (the socket queued connections from the start).
        process.wait_for_line("start worker process", Duration::from_secs(10));
        Nginx {
            process,
            addr,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits.
        self.process.terminate(Duration::from_secs(10));
    }
}
