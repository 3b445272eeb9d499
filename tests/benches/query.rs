//! Query latency of the real release collector over 10 million samples
//! spread over 30 days, and bytes on disk per million samples.
//!
//! The dataset (`VITALSIGN_BENCH_SAMPLES`, default 10,000,000) is built once
//! and cached under `target/bench-data/`: the schema comes from the
//! collector's own migrations, raw rows (one per page view, a column per
//! metric, dimensions in `series`) are inserted in time order (as a live
//! collector appends them), and the hourly
//! rollups are computed with the collector's own `Histogram` and rating code,
//! so the file holds what a collector that had ingested those beacons holds.
//! The spread: 3 sites (60/25/15 % of page views) with 111 page groups (Zipf
//! weighted), mobile/desktop/tablet, 5 metrics per page view, a daily and
//! weekly traffic cycle, per-page-group speed and one LCP regression in the
//! last week.
//!
//! Then `vitalsign-collector serve` (release) opens it and the bench times
//! queries through the HTTP API: one warm-up ("first") request, then
//! `VITALSIGN_BENCH_REPS` (default 15) repetitions; median and max.
//!
//!     cargo bench -p vitalsign-tests --bench query

#[path = "collector_bench/mod.rs"]
mod collector_bench;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_bench::{QUERY_TOKEN, print_table, verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};
use vitalsign_collector::histogram::Histogram;
use vitalsign_core::metric::{Metric, Rating};
use vitalsign_test_support::env::env_u64;
use vitalsign_test_support::procfs::rss_mib;
use vitalsign_test_support::stats::median;
use vitalsign_test_support::target_dir;

const DAYS: i64 = 30;
const HOUR_MS: i64 = 3_600_000;
/// Bump when the generator changes, so a stale cached dataset is rebuilt.
const GENERATOR_VERSION: u32 = 5;

fn main() {
    let samples = env_u64("VITALSIGN_BENCH_SAMPLES", 10_000_000);
    let reps = env_u64("VITALSIGN_BENCH_REPS", 15) as usize;
    let bin = collector_bench::release_collector();
    let dataset = dataset(samples);
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-query-")
        .tempdir()
        .unwrap();
    let collector = collector_bench::start_collector(
        &bin,
        dir.path(),
        &dataset.path,
        &[
            ("VITALSIGN_QUERY_TOKENS", format!("[\"{QUERY_TOKEN}\"]")),
            // The cached dataset must outlive the pruner: keep raw rows for 10 years.
            ("VITALSIGN_RETENTION_DAYS", "3650".into()),
            // The alert evaluator would write its states into the cached file
            // and compete with the timed queries; it is not what is measured.
            ("VITALSIGN_ALERTS__ENABLED", "false".into()),
            // The dashboard pages are timed without a sign-in round trip.
            ("VITALSIGN_PUBLIC_DASHBOARD", "true".into()),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let (from, to) = (dataset.from_ms.to_string(), dataset.to_ms.to_string());
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
        params.push(("from", &from));
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
        rows.push(vec![
            name,
            items.to_string(),
            format!("{first:.1}"),
            format!("{med:.1}"),
            format!("{max:.1}"),
            format!("< {goal:.0}"),
            format!("{:.2}", med / goal),
            verdict(med < goal).to_string(),
        ]);
    }
    let pages = dashboard_pages(&runtime, &client, &collector.base_url, &from, &to, reps);
    let (_, peak_rss) = rss_mib(collector.pid());
    collector.stop();

    println!();
    println!(
        "query: {} samples ({} page views) over {DAYS} days, {} rollup rows; {reps} repetitions after one warm-up; HTTP API of the release collector",
        dataset.samples, dataset.page_views, dataset.rollup_rows
    );
    print_table(
        &[
            "query",
            "items",
            "first ms",
            "median ms",
            "max ms",
            "goal ms",
            "median/goal",
            "status",
        ],
        &rows,
    );
    println!();
    println!(
        "dashboard pages over the same data (issue 13): server-rendered HTML of each view, time to the last byte on loopback"
    );
    print_table(
        &[
            "page",
            "bytes",
            "first ms",
            "median ms",
            "max ms",
            "goal ms",
            "median/goal",
            "status",
        ],
        &pages,
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
    print_table(
        &["on disk", "total", "per million samples", "per sample"],
        &storage,
    );
    println!();
    println!(
        "collector peak RSS while querying: {peak_rss:.1} MiB; dataset {} ({})",
        dataset.path.display(),
        if dataset.reused {
            "cached".to_string()
        } else {
            format!("generated in {:.0} s", dataset.generated_secs)
        }
    );
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
) -> Vec<Vec<String>> {
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
        rows.push(vec![
            name.to_string(),
            bytes.to_string(),
            format!("{first:.1}"),
            format!("{med:.1}"),
            format!("{max:.1}"),
            format!("< {goal:.0}"),
            format!("{:.2}", med / goal),
            verdict(med < goal).to_string(),
        ]);
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

/// The cached dataset, built first if missing or from another generator/schema.
fn dataset(samples: u64) -> Dataset {
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
            let meta = generate(&dir, &path, samples);
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
        bytes: meta["bytes"].as_u64().unwrap(),
        by_object,
        path,
        reused,
        generated_secs,
    }
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

const DEVICES: [(&str, f64, f64); 3] = [
    // (device, share of page views, slowness factor)
    ("mobile", 0.55, 1.35),
    ("desktop", 0.40, 0.85),
    ("tablet", 0.05, 1.1),
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

#[derive(Default)]
struct Acc {
    histogram: Histogram,
    count: i64,
    good: i64,
    ni: i64,
    poor: i64,
}

fn generate(dir: &Path, path: &Path, samples: u64) -> serde_json::Value {
    let page_views = samples / 5;
    assert_eq!(
        page_views * 5,
        samples,
        "VITALSIGN_BENCH_SAMPLES must be a multiple of 5"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let to_ms = now.div_euclid(HOUR_MS) * HOUR_MS;
    let from_ms = to_ms - DAYS * 24 * HOUR_MS;
    let hours = (DAYS * 24) as usize;
    eprintln!(
        "generating {samples} samples over {DAYS} days into {} (once; cached for later runs)…",
        path.display()
    );
    let partial = dir.join("query-partial.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let mut conn = Connection::open(&partial).unwrap();
    vitalsign_collector::store::migrations::migrate(&mut conn).unwrap();
    // Speed only: the data is derived, and a crash just means generating again.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -400000;",
    )
    .unwrap();

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
    let mut rollup_rows = 0u64;
    let mut series: HashMap<(usize, usize, usize), i64> = HashMap::new();
    let started = Instant::now();
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
        let tx = conn.transaction().unwrap();
        let mut rollups: HashMap<(usize, usize, usize, usize), Acc> = HashMap::new();
        {
            // One raw row per page view, a column per metric, as the writer stores it.
            let columns: Vec<String> = METRICS
                .iter()
                .map(|(m, _, _)| m.as_str().to_ascii_lowercase())
                .collect();
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO measurements (ts_ms, series, origin_id, step_index, {})
                     VALUES (?1, ?2, ?3, -1, ?4, ?5, ?6, ?7, ?8)",
                    columns.join(", ")
                ))
                .unwrap();
            let mut series_id = |s: usize, g: usize, d: usize| -> i64 {
                *series.entry((s, g, d)).or_insert_with(|| {
                    tx.query_row(
                        "INSERT INTO series (site, page_group, device, source, flow, step, location)
                         VALUES (?1, ?2, ?3, 'rum', '', '', '') RETURNING id",
                        params![sites[s].key, sites[s].groups[g], DEVICES[d].0],
                        |r| r.get(0),
                    )
                    .unwrap()
                })
            };
            for ts in stamps {
                let s = pick(&mut rng, &site_cum);
                let g = pick(&mut rng, &group_cum[s]);
                let d = pick(&mut rng, &device_cum);
                let origin_id = format!("v1-{ts}-{:010}", rng.random_range(0..10_000_000_000u64));
                let mut values = [0.0f64; 5];
                for (m, (metric, median, sigma)) in METRICS.iter().enumerate() {
                    let mut factor = group_speed[s][g] * DEVICES[d].2;
                    if *metric == Metric::Lcp && s == 0 && g == 1 && ts >= regression_from {
                        factor *= 1.3; // a slower product page in the last week
                    }
                    let value = if *metric == Metric::Cls {
                        if rng.random::<f64>() < 0.35 {
                            0.0
                        } else {
                            ((median * factor * (sigma * normal(&mut rng)).exp()) * 1e4).round()
                                / 1e4
                        }
                    } else {
                        ((median * factor * (sigma * normal(&mut rng)).exp()) * 10.0).round() / 10.0
                    }
                    .min(metric.max_plausible());
                    values[m] = value;
                    let acc = rollups.entry((s, g, d, m)).or_default();
                    acc.histogram.add(value, 1);
                    acc.count += 1;
                    match metric.rate(value) {
                        Rating::Good => acc.good += 1,
                        Rating::NeedsImprovement => acc.ni += 1,
                        Rating::Poor => acc.poor += 1,
                    }
                }
                let id = series_id(s, g, d);
                insert
                    .execute(params![
                        ts, id, origin_id, values[0], values[1], values[2], values[3], values[4]
                    ])
                    .unwrap();
            }
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO rollups (metric, site, page_group, device, source, flow, step, location, hour,
                                          count, good, needs_improvement, poor, histogram)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .unwrap();
            for ((s, g, d, m), acc) in rollups {
                upsert
                    .execute(params![
                        METRICS[m].0.as_str(),
                        sites[s].key,
                        sites[s].groups[g],
                        DEVICES[d].0,
                        "rum",
                        "",
                        "",
                        "",
                        hour_start / HOUR_MS,
                        acc.count,
                        acc.good,
                        acc.ni,
                        acc.poor,
                        acc.histogram.encode()
                    ])
                    .unwrap();
                rollup_rows += 1;
            }
        }
        tx.commit().unwrap();
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
    // The collector's writer keeps daily rollups beside the hourly ones; the
    // generator wrote hourly ones only, so sum them as the migration does.
    let tx = conn.transaction().unwrap();
    vitalsign_collector::store::migrations::fill_daily_rollups(&tx).unwrap();
    // The rollups count every raw row: the collector must not add them again
    // when it opens the file (as it would for rows a crash left uncounted).
    tx.execute(
        "UPDATE rollup_state SET rolled_up_through = (SELECT max(id) FROM measurements)",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    let bytes = std::fs::metadata(&partial).unwrap().len();
    std::fs::rename(&partial, path).unwrap();
    serde_json::json!({
        "samples": samples,
        "page_views": page_views,
        "rollup_rows": rollup_rows,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "bytes": bytes,
    })
}
