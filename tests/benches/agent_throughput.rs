//! How many demo-flow runs per minute the real agent does on this machine at
//! concurrency 1 and 2, and how late scheduled runs start under that load.
//!
//! Real release binaries on loopback: a collector serving the bundled demo
//! site at `/demo/`, and `vitalsign-agent run` with the demo flow
//! (deploy/flows/demo.toml). For each concurrency `c`, with a fresh agent:
//!
//! 1. **Throughput** (saturated): the flow is scheduled every second, more
//!    often than it can run, so the `c` browser slots never idle. Runs that
//!    finished inside a `VITALSIGN_BENCH_SECONDS` window (default 60 s, after
//!    10 s of warm-up) are counted from the collector's database.
//! 2. **Skew** (sustainable load at the same concurrency): `c` copies of the
//!    flow on a cron schedule `*/P * * * * *`, `P` the smallest divisor of 60
//!    at least 1.25 × the run time measured in step 1, so all `c` slots are
//!    busy at once but no queue builds. Skew = `started_at_ms` (when the runner
//!    began) − the cron fire time, over `VITALSIGN_BENCH_SKEW_SECONDS`
//!    (default 90 s); first runs (browser launch) and retries are left out.
//!
//! Baseline for the ratios: concurrency 1 in the same run.
//!
//!     cargo bench -p vitalsign-tests --bench agent_throughput

#[path = "agent_bench/mod.rs"]
mod agent_bench;

use std::collections::HashSet;
use std::time::Duration;

use agent_bench::{now_ms, stored_runs};
use vitalsign_test_support::env::env_u64;
use vitalsign_test_support::stats::{percentile, ratio};

struct Throughput {
    concurrency: usize,
    runs: usize,
    failed: usize,
    per_minute: f64,
    median_run_s: f64,
}

struct Skew {
    period_s: u64,
    samples: Vec<f64>,
    failed: usize,
}

fn main() {
    let window = env_u64("VITALSIGN_BENCH_SECONDS", 60);
    let skew_window = env_u64("VITALSIGN_BENCH_SKEW_SECONDS", 90);
    let (agent_bin, collector_bin) = agent_bench::release_binaries();
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-agent-")
        .tempdir()
        .unwrap();
    let collector = agent_bench::start_collector(&collector_bin, dir.path());
    let base = collector.base_url.clone();

    let mut results = Vec::new();
    for c in [1usize, 2] {
        let t = throughput(&agent_bin, dir.path(), &collector, &base, c, window);
        eprintln!(
            "c={c}: {:.1} runs/min, median run {:.2} s",
            t.per_minute, t.median_run_s
        );
        let s = skew(
            &agent_bin,
            dir.path(),
            &collector,
            &base,
            c,
            t.median_run_s,
            skew_window,
        );
        eprintln!(
            "c={c}: skew p99 {:.0} ms over {} starts (every {} s)",
            percentile(&s.samples, 0.99),
            s.samples.len(),
            s.period_s
        );
        results.push((t, s));
    }

    let base_rate = results[0].0.per_minute;
    println!();
    println!("agent throughput, demo flow (10 steps) on loopback, release binaries");
    println!(
        "{:>11} {:>10} {:>12} {:>8} {:>7} {:>14}",
        "concurrency", "runs/min", "vs c=1", "runs", "failed", "median run"
    );
    for (t, _) in &results {
        println!(
            "{:>11} {:>10.1} {:>12} {:>8} {:>7} {:>12.2} s",
            t.concurrency,
            t.per_minute,
            ratio(t.per_minute, base_rate),
            t.runs,
            t.failed,
            t.median_run_s
        );
    }
    let base_p99 = percentile(&results[0].1.samples, 0.99);
    println!();
    println!("schedule skew (runner start - cron fire time), all slots busy at once");
    println!(
        "{:>11} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>12}",
        "concurrency", "schedule", "runs/min", "starts", "p50 ms", "p99 ms", "max ms", "p99 vs c=1"
    );
    for (t, s) in &results {
        let p99 = percentile(&s.samples, 0.99);
        println!(
            "{:>11} {:>10} {:>10.1} {:>8} {:>9.0} {:>9.0} {:>9.0} {:>12}",
            t.concurrency,
            format!("*/{}s x{}", s.period_s, t.concurrency),
            60.0 / s.period_s as f64 * t.concurrency as f64,
            s.samples.len(),
            percentile(&s.samples, 0.5),
            p99,
            percentile(&s.samples, 1.0),
            ratio(p99, base_p99)
        );
        if s.failed > 0 {
            println!("{:>11} ({} runs did not pass)", "", s.failed);
        }
    }
}

fn phase_dir(root: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    dir
}

fn throughput(
    agent_bin: &std::path::Path,
    root: &std::path::Path,
    collector: &agent_bench::Collector,
    base: &str,
    c: usize,
    window: u64,
) -> Throughput {
    let name = format!("demo-throughput-c{c}");
    let dir = phase_dir(root, &name);
    std::fs::write(
        dir.join("flows/demo.toml"),
        agent_bench::demo_flow(base, &name, "1s"),
    )
    .unwrap();
    let agent = agent_bench::start_agent(agent_bin, &dir, &collector.base_url, c);
    let from = now_ms() + 10_000;
    let to = from + window * 1000;
    std::thread::sleep(Duration::from_millis(to - now_ms()));
    agent.stop();
    let runs: Vec<_> = stored_runs(&collector.db)
        .into_iter()
        .filter(|r| r.flow == name)
        .collect();
    let durations: Vec<f64> = runs
        .iter()
        .map(|r| (r.finished_ms.saturating_sub(r.started_ms)) as f64 / 1000.0)
        .collect();
    if let Some(reason) = runs.iter().find_map(|r| r.failure.as_ref()) {
        eprintln!("c={c}: a run did not pass: {reason}");
    }
    let counted: Vec<_> = runs
        .iter()
        .filter(|r| r.finished_ms >= from && r.finished_ms < to)
        .collect();
    Throughput {
        concurrency: c,
        runs: counted.len(),
        failed: counted.iter().filter(|r| r.outcome != "pass").count(),
        per_minute: counted.len() as f64 * 60.0 / window as f64,
        median_run_s: percentile(&durations, 0.5),
    }
}

fn skew(
    agent_bin: &std::path::Path,
    root: &std::path::Path,
    collector: &agent_bench::Collector,
    base: &str,
    c: usize,
    run_s: f64,
    window: u64,
) -> Skew {
    let period_s = [2u64, 3, 4, 5, 6, 10, 12, 15, 20, 30]
        .into_iter()
        .find(|p| *p as f64 >= run_s * 1.25)
        .unwrap_or(30);
    let dir = phase_dir(root, &format!("skew-c{c}"));
    let names: Vec<String> = (1..=c).map(|i| format!("demo-skew-c{c}-{i}")).collect();
    for name in &names {
        std::fs::write(
            dir.join(format!("flows/{name}.toml")),
            agent_bench::demo_flow(base, name, &format!("*/{period_s} * * * * *")),
        )
        .unwrap();
    }
    let agent = agent_bench::start_agent(agent_bin, &dir, &collector.base_url, c);
    std::thread::sleep(Duration::from_secs(window));
    agent.stop();
    let period_ms = period_s * 1000;
    let mut seen: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    let mut failed = 0;
    for run in stored_runs(&collector.db) {
        if !names.contains(&run.flow) || run.attempt > 1 {
            continue;
        }
        if run.outcome != "pass" {
            failed += 1;
            eprintln!("c={c}: a run did not pass: {:?}", run.failure);
        }
        // Its first run also launches the browser: not a steady-state start.
        if seen.insert(run.flow.clone()) {
            continue;
        }
        let planned = run.started_ms / period_ms * period_ms;
        samples.push((run.started_ms - planned) as f64);
    }
    Skew {
        period_s,
        samples,
        failed,
    }
}
