//! Many consecutive runs with one browser: does the browser's memory stay put,
//! and is nothing left behind after `Runner::shutdown`?
//!
//! Runs the 3-step loopback flow `VITALSIGN_BENCH_RUNS` times (default 500)
//! with one `Runner`. After every 50th run (no page open) it sums RSS and PSS
//! over the browser's whole process tree from /proc (PSS counts shared pages
//! once, so it is the honest total). Baseline: the reading at run 50. After
//! shutdown it counts live processes whose command line still holds the
//! browser's `--user-data-dir` (goal: none).
//!
//!     cargo bench -p vitalsign-probes --bench endurance
//!     VITALSIGN_BENCH_RUNS=100 cargo bench -p vitalsign-probes --bench endurance

mod common;

use std::time::Instant;

use common::ratio;
use vitalsign_core::wire::run::Outcome;
use vitalsign_probes::{RunOptions, Runner, RunnerConfig};

fn main() {
    common::runtime().block_on(bench());
}

struct Sample {
    run: usize,
    pid: u32,
    processes: usize,
    rss_mib: f64,
    pss_mib: f64,
    elapsed_s: f64,
}

async fn bench() {
    let runs = common::env_usize("VITALSIGN_BENCH_RUNS", 500);
    let every = common::env_usize("VITALSIGN_BENCH_SAMPLE_EVERY", 50).max(1);
    let (base, _timings) = common::serve().await;
    let flow = common::three_step_flow(&base);
    let runner = Runner::new(RunnerConfig::default());
    let options = RunOptions {
        artifacts_dir: std::env::temp_dir().join("vitalsign-bench-artifacts"),
        ..RunOptions::default()
    };

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut not_passed = 0;
    let mut profile_dirs = std::collections::BTreeSet::new();
    for i in 1..=runs {
        let run = runner.run(&flow, &options).await;
        if run.outcome != Outcome::Pass {
            not_passed += 1;
            eprintln!("run {i}: {:?} {:?}", run.outcome, run.failure);
        }
        let Some(pid) = runner.browser_pid().await else {
            continue;
        };
        if let Some(dir) = common::user_data_dir(pid) {
            profile_dirs.insert(dir);
        }
        if i % every == 0 || i == runs {
            let (processes, rss_mib, pss_mib) = common::tree_memory_mib(pid);
            let sample = Sample {
                run: i,
                pid,
                processes,
                rss_mib,
                pss_mib,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            eprintln!(
                "run {:>4}: browser pid {}, {} processes, RSS {:.1} MiB, PSS {:.1} MiB, {:.0} s",
                sample.run, sample.pid, processes, rss_mib, pss_mib, sample.elapsed_s
            );
            samples.push(sample);
        }
    }
    let restarts = runner.restarts();
    runner.shutdown().await;
    // Give the kernel a moment to finish tearing the tree down.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let orphans: Vec<u32> = profile_dirs
        .iter()
        .flat_map(|d| common::live_processes_matching(&d.display().to_string()))
        .collect();
    for pid in &orphans {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    let baseline = samples
        .iter()
        .find(|s| s.run >= 50.min(runs))
        .or(samples.first());
    println!();
    println!(
        "endurance: {runs} runs of the 3-step loopback flow with one runner in {:.0} s \
         ({not_passed} not passed, {restarts} browser restarts)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:>6} {:>9} {:>6} {:>10} {:>10} {:>14}",
        "run", "pid", "procs", "RSS MiB", "PSS MiB", "PSS vs base"
    );
    for s in &samples {
        println!(
            "{:>6} {:>9} {:>6} {:>10.1} {:>10.1} {:>14}",
            s.run,
            s.pid,
            s.processes,
            s.rss_mib,
            s.pss_mib,
            ratio(s.pss_mib, baseline.map_or(0.0, |b| b.pss_mib))
        );
    }
    if let (Some(b), Some(last)) = (baseline, samples.last()) {
        let change = (last.pss_mib / b.pss_mib - 1.0) * 100.0;
        let rss_change = (last.rss_mib / b.rss_mib - 1.0) * 100.0;
        println!(
            "browser memory run {} -> run {}: PSS {:+.1} %, RSS {:+.1} % (goal within 10 %: {})",
            b.run,
            last.run,
            change,
            rss_change,
            if change.abs() <= 10.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    println!(
        "orphaned Chromium processes after shutdown: {} (goal 0: {}){}",
        orphans.len(),
        if orphans.is_empty() { "met" } else { "MISSED" },
        if orphans.is_empty() {
            ""
        } else {
            "; the bench killed them"
        }
    );
}
