//! Query latency of the real release collector over 10 million samples
//! spread over 30 days, and bytes on disk per million samples.
//!
//! The dataset (`VITALSIGN_BENCH_SAMPLES`, default 10,000,000) is written
//! through the collector's own storage trait (`Storage::append_page_views`,
//! the call its beacon handler makes), so raw rows, rollups and dictionaries
//! are what a collector that received those beacons holds, on either backend.
//! The SQLite file is built once and cached under `target/bench-data/`.
//! The spread: 3 sites (60/25/15 % of page views) with 111 page groups (Zipf
//! weighted), mobile/desktop/tablet, 5 metrics per page view, a daily and
//! weekly traffic cycle, per-page-group speed and one LCP regression in the
//! last week.
//!
//! Then `vitalsign-collector serve` (release) opens it and the bench times
//! queries through the HTTP API: one warm-up ("first") request, then
//! `VITALSIGN_BENCH_REPS` (default 15) repetitions; median and max.
//!
//! With `VITALSIGN_BENCH_DB=postgres` the same page views (same seed, same
//! hours) also go through the PostgreSQL backend's ingest into a database on
//! a cluster of the bench's own (fsync on; regenerated every run, a cluster
//! is not cached), and the same queries and pages are timed against a
//! collector on it, printed beside the SQLite figures with their ratio.
//!
//!     cargo bench -p vitalsign-tests --bench query
//!     VITALSIGN_BENCH_DB=postgres cargo bench -p vitalsign-tests --bench query

#[path = "collector_bench/mod.rs"]
mod collector_bench;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_bench::{QUERY_TOKEN, print_table, verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

use rusqlite::Connection;
use vitalsign_collector::store::{NewPageView, PgStore, SqliteStore, Storage};
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::beacon::{Attribution, Beacon, DeviceClass, NavigationType, Report};
use vitalsign_test_support::env::env_u64;
use vitalsign_test_support::pg::{Durability, PgCluster};
use vitalsign_test_support::procfs::rss_mib;
use vitalsign_test_support::stats::median;
use vitalsign_test_support::target_dir;

const DAYS: i64 = 30;
const HOUR_MS: i64 = 3_600_000;
/// Bump when the generator changes, so a stale cached dataset is rebuilt.
const GENERATOR_VERSION: u32 = 6;

fn main() {
    let samples = env_u64("VITALSIGN_BENCH_SAMPLES", 10_000_000);
    let reps = env_u64("VITALSIGN_BENCH_REPS", 15) as usize;
    let postgres = match std::env::var("VITALSIGN_BENCH_DB").as_deref() {
        Err(_) | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => {
            panic!("VITALSIGN_BENCH_DB={other:?}: use `sqlite` (the default) or `postgres`")
        }
    };
    let bin = collector_bench::release_collector();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dataset = dataset(&runtime, samples);
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-query-")
        .tempdir()
        .unwrap();
    let sqlite = measure(&runtime, &bin, dir.path(), &dataset.path, &dataset, reps);

    // The same page views (same seed, same hours) through the same ingest
    // path into PostgreSQL, then the same queries.
    let pg = postgres.then(|| {
        let cluster = PgCluster::start(Durability::Durable);
        let url = cluster.database();
        let database = url.rsplit('/').next().unwrap().to_string();
        eprintln!("generating {samples} samples into PostgreSQL (through its ingest)…");
        let started = Instant::now();
        let store = runtime
            .block_on(PgStore::connect(&url))
            .expect("connecting to PostgreSQL");
        let meta = runtime.block_on(generate(Arc::new(store), samples, dataset.to_ms));
        let generated_secs = started.elapsed().as_secs_f64();
        assert_eq!(meta["page_views"], dataset.page_views);
        let count = |sql: &str| -> u64 {
            let out = cluster
                .psql(&database, sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            out.parse().unwrap_or_else(|_| panic!("{sql}: {out:?}"))
        };
        let stored = count(
            "SELECT sum((lcp IS NOT NULL)::int + (cls IS NOT NULL)::int + (inp IS NOT NULL)::int
                        + (fcp IS NOT NULL)::int + (ttfb IS NOT NULL)::int + (tbt IS NOT NULL)::int)
             FROM measurements",
        );
        assert_eq!(stored, samples, "PostgreSQL holds {stored} samples");
        cluster.psql(&database, "VACUUM ANALYZE").unwrap();
        let bytes = count(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
        );
        let timings = measure(&runtime, &bin, dir.path(), Path::new(&url), &dataset, reps);
        (timings, bytes, generated_secs, cluster)
    });

    println!();
    println!(
        "query: {} samples ({} page views) over {DAYS} days, {} rollup rows (SQLite); {reps} repetitions after one warm-up; HTTP API of the release collector",
        dataset.samples, dataset.page_views, dataset.rollup_rows
    );
    let table = |sqlite_rows: &[Timing], pg_rows: Option<&[Timing]>, what: &str| {
        let mut header = vec![
            what,
            "items",
            "first ms",
            "median ms",
            "max ms",
            "goal ms",
            "median/goal",
            "status",
        ];
        if pg_rows.is_some() {
            header.extend([
                "PG items",
                "PG first ms",
                "PG median ms",
                "PG max ms",
                "PG/SQLite",
                "PG status",
            ]);
        }
        let rows: Vec<Vec<String>> = sqlite_rows
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut row = vec![
                    t.name.clone(),
                    t.items.to_string(),
                    format!("{:.1}", t.first),
                    format!("{:.1}", t.median),
                    format!("{:.1}", t.max),
                    format!("< {:.0}", t.goal),
                    format!("{:.2}", t.median / t.goal),
                    verdict(t.median < t.goal).to_string(),
                ];
                if let Some(pg) = pg_rows {
                    let p = &pg[i];
                    row.extend([
                        p.items.to_string(),
                        format!("{:.1}", p.first),
                        format!("{:.1}", p.median),
                        format!("{:.1}", p.max),
                        format!("{:.2}", p.median / t.median),
                        verdict(p.median < p.goal).to_string(),
                    ]);
                }
                row
            })
            .collect();
        print_table(&header, &rows);
    };
    let pg_timings = pg.as_ref().map(|(t, ..)| t);
    table(
        &sqlite.queries,
        pg_timings.map(|t| t.queries.as_slice()),
        "query",
    );
    println!();
    println!(
        "dashboard pages over the same data (issue 13): server-rendered HTML of each view, time to the last byte on loopback"
    );
    table(
        &sqlite.pages,
        pg_timings.map(|t| t.pages.as_slice()),
        "page",
    );
    println!();
    let per_million = dataset.bytes as f64 / (dataset.samples as f64 / 1e6);
    let mut storage = vec![vec![
        "database file".to_string(),
        format!("{:.1} MiB", dataset.bytes as f64 / 1048576.0),
        format!("{:.1} MiB", per_million / 1048576.0),
        format!("{:.0} B", per_million / 1e6),
    ]];
    let (big, small): (Vec<_>, Vec<_>) = dataset
        .by_object
        .iter()
        .partition(|(_, bytes)| *bytes >= 1 << 20);
    let rest: u64 = small.iter().map(|(_, b)| b).sum();
    let rest = (format!("{} other tables and indexes", small.len()), rest);
    for (name, bytes) in big.into_iter().chain([&rest]) {
        storage.push(vec![
            format!("  {name}"),
            format!("{:.1} MiB", *bytes as f64 / 1048576.0),
            format!(
                "{:.1} MiB",
                *bytes as f64 / (dataset.samples as f64 / 1e6) / 1048576.0
            ),
            format!("{:.0} B", *bytes as f64 / dataset.samples as f64),
        ]);
    }
    if let Some((_, bytes, ..)) = &pg {
        storage.push(vec![
            "PostgreSQL tables, indexes, TOAST".to_string(),
            format!("{:.1} MiB", *bytes as f64 / 1048576.0),
            format!(
                "{:.1} MiB",
                *bytes as f64 / (dataset.samples as f64 / 1e6) / 1048576.0
            ),
            format!("{:.0} B", *bytes as f64 / dataset.samples as f64),
        ]);
    }
    print_table(
        &["on disk", "total", "per million samples", "per sample"],
        &storage,
    );
    println!();
    println!(
        "collector peak RSS while querying: {:.1} MiB (SQLite){}; dataset {} ({})",
        sqlite.peak_rss,
        pg_timings.map_or(String::new(), |t| format!(
            ", {:.1} MiB (PostgreSQL)",
            t.peak_rss
        )),
        dataset.path.display(),
        if dataset.reused {
            "cached".to_string()
        } else {
            format!(
                "generated through the SQLite ingest in {:.0} s",
                dataset.generated_secs
            )
        }
    );
    if let Some((_, _, secs, _)) = &pg {
        println!(
            "PostgreSQL dataset: generated through the PostgreSQL ingest (append_page_views) in {secs:.0} s ({:.0} page views/s), fsync on",
            dataset.page_views as f64 / secs
        );
    }
}

/// Raw rows are kept this long by the collectors under test, so the pruner
/// leaves the dataset alone.
const RETENTION_DAYS: u32 = 3650;

/// One query's or page's timings, in ms.
struct Timing {
    name: String,
    items: usize,
    first: f64,
    median: f64,
    max: f64,
    goal: f64,
}

struct Measured {
    queries: Vec<Timing>,
    pages: Vec<Timing>,
    peak_rss: f64,
}

/// The release collector on `db` (a SQLite file or a PostgreSQL URL), the
/// API queries and the dashboard pages timed against it.
fn measure(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    dir: &Path,
    db: &Path,
    dataset: &Dataset,
    reps: usize,
) -> Measured {
    let collector = collector_bench::start_collector(
        bin,
        dir,
        db,
        &[
            ("VITALSIGN_QUERY_TOKENS", format!("[\"{QUERY_TOKEN}\"]")),
            // The cached dataset must outlive the pruner: keep raw rows for 10 years.
            ("VITALSIGN_RETENTION_DAYS", RETENTION_DAYS.to_string()),
            // The alert evaluator would write its states into the cached file
            // and compete with the timed queries; it is not what is measured.
            ("VITALSIGN_ALERTS__ENABLED", "false".into()),
            // The dashboard pages are timed without a sign-in round trip.
            ("VITALSIGN_PUBLIC_DASHBOARD", "true".into()),
        ],
    );
    let client = reqwest::Client::new();
    let (from, to) = (dataset.from_ms.to_string(), dataset.to_ms.to_string());
    // The last 6 hours: short enough that answers come from the raw rows.
    let six_hours_before = (dataset.to_ms - 6 * HOUR_MS).to_string();
    let group = "/product/:id";
    let series = |bucket: &'static str| Query {
        name: format!(
            "30-day p75 series, 1 page group, {} ({group})",
            if bucket == "1d" { "daily" } else { "hourly" }
        ),
        endpoint: "series",
        params: vec![
            ("metric", "LCP"),
            ("site", "shop"),
            ("page_group", group),
            ("bucket", bucket),
        ],
        goal_ms: 50.0,
    };
    let queries = vec![
        series("1d"),
        series("1h"),
        Query {
            name: format!("6-hour p75 series from raw rows, 1 page group ({group})"),
            endpoint: "series",
            params: vec![
                ("metric", "LCP"),
                ("site", "shop"),
                ("page_group", group),
                ("bucket", "1h"),
                ("from", &six_hours_before),
            ],
            goal_ms: 50.0,
        },
        Query {
            name: "6-hour p75 series from raw rows, whole site (shop)".into(),
            endpoint: "series",
            params: vec![
                ("metric", "LCP"),
                ("site", "shop"),
                ("bucket", "1h"),
                ("from", &six_hours_before),
            ],
            goal_ms: 50.0,
        },
        Query {
            name: "30-day top pages, 1 site (shop)".into(),
            endpoint: "top-pages",
            params: vec![("metric", "LCP"), ("site", "shop"), ("limit", "20")],
            goal_ms: 200.0,
        },
        Query {
            name: "30-day top pages, all 3 sites".into(),
            endpoint: "top-pages",
            params: vec![("metric", "LCP"), ("limit", "20")],
            goal_ms: 200.0,
        },
    ];
    let mut rows = Vec::new();
    for Query {
        name,
        endpoint,
        mut params,
        goal_ms: goal,
    } in queries
    {
        if !params.iter().any(|(k, _)| *k == "from") {
            params.push(("from", &from));
        }
        params.push(("to", &to));
        let url = format!("{}/api/v1/{endpoint}", collector.base_url);
        let mut times = Vec::new();
        let mut items = 0;
        for _ in 0..=reps {
            let started = Instant::now();
            let response = runtime.block_on(async {
                let r = client
                    .get(&url)
                    .bearer_auth(QUERY_TOKEN)
                    .query(&params)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("query request");
                let status = r.status();
                let body: serde_json::Value = r.json().await.expect("JSON answer");
                assert!(status.is_success(), "{url} {params:?}: {status} {body}");
                body
            });
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let list = &response[if endpoint == "series" {
                "points"
            } else {
                "pages"
            }];
            items = list.as_array().map_or(0, Vec::len);
            assert!(items > 0, "{name}: empty answer {response}");
        }
        let first = times.remove(0);
        let med = median(&times);
        let max = times.iter().copied().fold(0.0, f64::max);
        eprintln!("{name}: first {first:.1} ms, median {med:.1} ms, max {max:.1} ms");
        rows.push(Timing {
            name,
            items,
            first,
            median: med,
            max,
            goal,
        });
    }
    let pages = dashboard_pages(runtime, &client, &collector.base_url, &from, &to, reps);
    let (_, peak_rss) = rss_mib(collector.pid());
    collector.stop();
    Measured {
        queries: rows,
        pages,
        peak_rss,
    }
}

/// Every dashboard view over the whole dataset (its 30 days as a custom
/// range), each timed like the API queries: one warm-up, then `reps`.
fn dashboard_pages(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    from: &str,
    to: &str,
    reps: usize,
) -> Vec<Timing> {
    let range = format!("from={from}&to={to}");
    let last_day = format!("from={}&to={to}", to.parse::<i64>().unwrap() - 24 * HOUR_MS);
    let pages = [
        ("overview, 30 days, 3 sites", format!("/?{range}")),
        ("overview, last day", format!("/?{last_day}")),
        (
            "pages, 30 days, all sites (LCP)",
            format!("/pages?{range}&metric=LCP"),
        ),
        (
            "pages, 30 days, shop, by samples",
            format!("/pages?{range}&metric=INP&site=shop&sort=samples"),
        ),
        (
            "series, 30 days, 1 page group",
            format!("/series?{range}&metric=LCP&site=shop&page_group=/product/:id"),
        ),
        (
            "series, 30 days, whole site",
            format!("/series?{range}&metric=LCP&site=shop"),
        ),
        (
            "series, last day, 1 page group",
            format!("/series?{last_day}&metric=INP&site=shop&page_group=/product/:id"),
        ),
        ("flows", format!("/flows?{range}")),
        ("alerts", "/alerts".to_string()),
    ];
    let goal = 150.0;
    let mut rows = Vec::new();
    for (name, path) in pages {
        let url = format!("{base}{path}");
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..=reps {
            let started = Instant::now();
            let body = runtime.block_on(async {
                let r = client
                    .get(&url)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("page request");
                let status = r.status();
                let body = r.text().await.expect("page body");
                assert!(status.is_success(), "{url}: {status} {body}");
                body
            });
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        let first = times.remove(0);
        let med = median(&times);
        let max = times.iter().copied().fold(0.0, f64::max);
        eprintln!("{name}: first {first:.1} ms, median {med:.1} ms, max {max:.1} ms");
        rows.push(Timing {
            name: name.to_string(),
            items: bytes,
            first,
            median: med,
            max,
            goal,
        });
    }
    rows
}

struct Query<'a> {
    name: String,
    endpoint: &'static str,
    params: Vec<(&'static str, &'a str)>,
    goal_ms: f64,
}

struct Dataset {
    path: PathBuf,
    samples: u64,
    page_views: u64,
    rollup_rows: u64,
    from_ms: i64,
    to_ms: i64,
    bytes: u64,
    by_object: Vec<(String, u64)>,
    reused: bool,
    generated_secs: f64,
}

/// The cached SQLite dataset, built first if missing or from another
/// generator/schema.
fn dataset(runtime: &tokio::runtime::Runtime, samples: u64) -> Dataset {
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let schema = vitalsign_collector::store::migrations::current_version();
    let name = format!("query-{samples}-s{schema}-g{GENERATOR_VERSION}");
    let path = dir.join(format!("{name}.db"));
    let meta_path = dir.join(format!("{name}.json"));
    let mut reused = true;
    let mut generated_secs = 0.0;
    let meta: serde_json::Value = match std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|_| path.exists())
    {
        Some(meta) => {
            eprintln!("using the cached dataset {}", path.display());
            meta
        }
        None => {
            reused = false;
            let started = Instant::now();
            let meta = generate_sqlite(runtime, &dir, &path, samples);
            generated_secs = started.elapsed().as_secs_f64();
            std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
            meta
        }
    };
    let conn =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    let stored = count(
        "SELECT sum((lcp IS NOT NULL) + (cls IS NOT NULL) + (inp IS NOT NULL) + (fcp IS NOT NULL)
                    + (ttfb IS NOT NULL) + (tbt IS NOT NULL)) FROM measurements",
    );
    assert_eq!(stored, samples, "{} holds {stored} samples", path.display());
    let by_object = object_sizes(&conn);
    Dataset {
        samples,
        page_views: count("SELECT count(*) FROM measurements"),
        rollup_rows: count("SELECT count(*) FROM rollups"),
        from_ms: meta["from_ms"].as_i64().unwrap(),
        to_ms: meta["to_ms"].as_i64().unwrap(),
        bytes: std::fs::metadata(&path).unwrap().len(),
        by_object,
        path,
        reused,
        generated_secs,
    }
}

/// The dataset through `SqliteStore`'s ingest into a new file, then
/// checkpointed and moved to `path`.
fn generate_sqlite(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    path: &Path,
    samples: u64,
) -> serde_json::Value {
    let partial = dir.join("query-partial.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    eprintln!(
        "generating {samples} samples over {DAYS} days into {} through the collector's ingest (once; cached for later runs)…",
        path.display()
    );
    let to_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / HOUR_MS
        * HOUR_MS;
    let store = SqliteStore::open(&partial).expect("creating the dataset file");
    let meta = runtime.block_on(generate(Arc::new(store), samples, to_ms));
    // The store is dropped: its writer thread closes the last connection,
    // which folds the WAL into the file and deletes it. (Opening the file
    // meanwhile fails: the writer holds it exclusively.)
    let wal = PathBuf::from(format!("{}-wal", partial.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Whatever is left beside it moves with it.
    for suffix in ["-wal", "-shm"] {
        let from = format!("{}{suffix}", partial.display());
        if Path::new(&from).exists() {
            std::fs::rename(&from, format!("{}{suffix}", path.display())).unwrap();
        }
    }
    std::fs::rename(&partial, path).unwrap();
    meta
}

/// Bytes per table and index (SQLite's `dbstat`, where the build has it).
fn object_sizes(conn: &Connection) -> Vec<(String, u64)> {
    let Ok(mut stmt) = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

struct Site {
    key: &'static str,
    share: f64,
    groups: Vec<String>,
}

fn sites() -> Vec<Site> {
    let mut shop: Vec<String> = [
        "/",
        "/product/:id",
        "/search",
        "/cart",
        "/checkout",
        "/checkout/payment",
        "/checkout/done",
        "/account",
        "/account/orders",
        "/account/orders/:id",
        "/login",
        "/wishlist",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for c in [
        "shoes", "bags", "hats", "sale", "new", "men", "women", "kids", "sport", "outdoor", "home",
        "garden", "kitchen", "toys", "books", "music", "beauty", "watches", "jewelry", "socks",
        "coats", "shirts", "jeans", "dresses", "gifts", "brands", "outlet", "travel",
    ] {
        shop.push(format!("/c/{c}"));
    }
    let mut blog: Vec<String> = ["/", "/posts/:id", "/about", "/archive/:id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for t in 0..21 {
        blog.push(format!("/tags/topic-{t}"));
    }
    let mut docs: Vec<String> = vec!["/".into(), "/search".into()];
    for s in 0..30 {
        docs.push(format!("/guide/section-{s}"));
    }
    for a in 0..14 {
        docs.push(format!("/api/module-{a}"));
    }
    vec![
        Site {
            key: "shop",
            share: 0.60,
            groups: shop,
        },
        Site {
            key: "blog",
            share: 0.25,
            groups: blog,
        },
        Site {
            key: "docs",
            share: 0.15,
            groups: docs,
        },
    ]
}

const DEVICES: [(&str, f64, f64, DeviceClass); 3] = [
    // (device, share of page views, slowness factor, as the beacon says it)
    ("mobile", 0.55, 1.35, DeviceClass::Mobile),
    ("desktop", 0.40, 0.85, DeviceClass::Desktop),
    ("tablet", 0.05, 1.1, DeviceClass::Tablet),
];

/// (metric, median ms or score, log-normal sigma)
const METRICS: [(Metric, f64, f64); 5] = [
    (Metric::Lcp, 1900.0, 0.55),
    (Metric::Fcp, 1100.0, 0.5),
    (Metric::Ttfb, 350.0, 0.65),
    (Metric::Inp, 130.0, 0.75),
    (Metric::Cls, 0.05, 1.0),
];

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Pick an index by cumulative weights.
fn pick(rng: &mut StdRng, cumulative: &[f64]) -> usize {
    let x = rng.random::<f64>() * cumulative.last().unwrap();
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len() - 1)
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut sum = 0.0;
    weights
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

/// Page views of the dataset, hour by hour in time order, written through
/// `store`'s own ingest (`Storage::append_page_views`, as the collector's
/// HTTP handler calls it) by up to 4 concurrent callers of 2,000 page views
/// each: the raw rows, rollups and dictionaries are exactly what a collector
/// that received those beacons holds, on either backend. The same seed and
/// `to_ms` give the same page views.
async fn generate(store: Arc<dyn Storage>, samples: u64, to_ms: i64) -> serde_json::Value {
    let page_views = samples / 5;
    assert_eq!(
        page_views * 5,
        samples,
        "VITALSIGN_BENCH_SAMPLES must be a multiple of 5"
    );
    let from_ms = to_ms - DAYS * 24 * HOUR_MS;
    let hours = (DAYS * 24) as usize;

    let mut rng = StdRng::seed_from_u64(20_261_124);
    let sites = sites();
    let site_cum = cumulative(sites.iter().map(|s| s.share));
    let group_cum: Vec<Vec<f64>> = sites
        .iter()
        .map(|s| cumulative((0..s.groups.len()).map(|i| 1.0 / (i as f64 + 1.0).powf(1.1))))
        .collect();
    let group_speed: Vec<Vec<f64>> = sites
        .iter()
        .map(|s| {
            s.groups
                .iter()
                .map(|_| rng.random_range(0.6..1.9))
                .collect()
        })
        .collect();
    let device_cum = cumulative(DEVICES.iter().map(|d| d.1));
    // Daily cycle (peak mid-afternoon UTC) and quieter weekends.
    let weights: Vec<f64> = (0..hours)
        .map(|h| {
            let ts = from_ms + h as i64 * HOUR_MS;
            let hour_of_day = (ts / HOUR_MS).rem_euclid(24) as f64;
            let day_of_week = (ts / (24 * HOUR_MS) + 4).rem_euclid(7); // 0 = Sunday
            let weekend = if day_of_week == 0 || day_of_week == 6 {
                0.75
            } else {
                1.0
            };
            (1.0 + 0.55 * ((hour_of_day - 9.0) / 24.0 * std::f64::consts::TAU).sin()) * weekend
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let regression_from = to_ms - 7 * 24 * HOUR_MS;

    let mut done = 0u64;
    let started = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut chunk: Vec<NewPageView> = Vec::with_capacity(CHUNK);
    for (h, weight) in weights.iter().enumerate() {
        let hour_start = from_ms + h as i64 * HOUR_MS;
        let n = if h == hours - 1 {
            page_views - done
        } else {
            ((page_views as f64 * weight / total_weight).round() as u64).min(page_views - done)
        };
        let mut stamps: Vec<i64> = (0..n)
            .map(|_| hour_start + rng.random_range(0..HOUR_MS))
            .collect();
        stamps.sort_unstable();
        for ts in stamps {
            let s = pick(&mut rng, &site_cum);
            let g = pick(&mut rng, &group_cum[s]);
            let d = pick(&mut rng, &device_cum);
            let page_view_id = format!("v1-{ts}-{:010}", rng.random_range(0..10_000_000_000u64));
            let mut reports = Vec::with_capacity(METRICS.len());
            for (metric, median, sigma) in METRICS {
                let mut factor = group_speed[s][g] * DEVICES[d].2;
                if metric == Metric::Lcp && s == 0 && g == 1 && ts >= regression_from {
                    factor *= 1.3; // a slower product page in the last week
                }
                let value = if metric == Metric::Cls {
                    if rng.random::<f64>() < 0.35 {
                        0.0
                    } else {
                        ((median * factor * (sigma * normal(&mut rng)).exp()) * 1e4).round() / 1e4
                    }
                } else {
                    ((median * factor * (sigma * normal(&mut rng)).exp()) * 10.0).round() / 10.0
                }
                .min(metric.max_plausible());
                reports.push(Report {
                    metric,
                    value,
                    rating: metric.rate(value),
                    attribution: Attribution::default(),
                });
            }
            chunk.push(NewPageView {
                beacon: Beacon {
                    schema_version: 1,
                    site: sites[s].key.to_string(),
                    page_view_id,
                    url: format!("https://{}.example{}", sites[s].key, sites[s].groups[g]),
                    navigation_type: NavigationType::Navigate,
                    device: Some(DEVICES[d].3),
                    effective_type: None,
                    snippet_version: "0.1.0".into(),
                    reports,
                },
                page_group: sites[s].groups[g].clone(),
                received_ms: ts,
            });
            if chunk.len() == CHUNK {
                if in_flight.len() >= 4 {
                    in_flight.join_next().await.unwrap().unwrap();
                }
                let (store, views) = (store.clone(), std::mem::take(&mut chunk));
                in_flight.spawn(async move {
                    store
                        .append_page_views(views)
                        .await
                        .expect("writing the dataset")
                });
            }
        }
        done += n;
        if h % 72 == 71 {
            eprintln!(
                "  day {:>2}/{DAYS}: {} samples, {:.0} s",
                (h + 1) / 24,
                done * 5,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if !chunk.is_empty() {
        store
            .append_page_views(chunk)
            .await
            .expect("writing the dataset");
    }
    while let Some(result) = in_flight.join_next().await {
        result.unwrap();
    }
    serde_json::json!({
        "samples": samples,
        "page_views": page_views,
        "from_ms": from_ms,
        "to_ms": to_ms,
    })
}

/// Page views per `append_page_views` call while generating.
const CHUNK: usize = 2000;
