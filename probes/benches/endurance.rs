//! Many consecutive runs with one browser: does the browser's memory stay put,
//! and is nothing left behind after `Runner::shutdown`?
//!
//! Runs the 3-step loopback flow `VITALSIGN_BENCH_RUNS` times (default 500)
//! with one `Runner`. After every 50th run (no page open) it sums RSS, PSS and
//! USS over the browser's whole process tree from /proc (PSS counts shared
//! pages once, so it is the honest total, but moves when other Chromiums on
//! the machine share the same pages; USS, the private pages, does not and is
//! the leak indicator). Baseline: the reading at run 50. After
//! shutdown it counts live processes whose command line still holds the
//! browser's `--user-data-dir` (goal: none).
//!
//!     cargo bench -p vitalsign-probes --bench endurance
//!     VITALSIGN_BENCH_RUNS=100 cargo bench -p vitalsign-probes --bench endurance

mod common;

use std::time::Instant;

use vitalsign_core::wire::run::Outcome;
use vitalsign_probes::{RunOptions, Runner, RunnerConfig};
use vitalsign_test_support::env::env_usize;
use vitalsign_test_support::stats::ratio;

fn main() {
    common::runtime().block_on(bench());
}

struct Sample {
    run: usize,
    pid: u32,
    memory: common::TreeMemory,
    elapsed_s: f64,
}

async fn bench() {
    let runs = env_usize("VITALSIGN_BENCH_RUNS", 500);
    let every = env_usize("VITALSIGN_BENCH_SAMPLE_EVERY", 50).max(1);
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
            let sample = Sample {
                run: i,
                pid,
                memory: common::tree_memory(pid),
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            let m = &sample.memory;
            eprintln!(
                "run {:>4}: browser pid {}, {} processes, RSS {:.1} MiB, PSS {:.1} MiB, USS {:.1} MiB, {:.0} s",
                sample.run, sample.pid, m.processes, m.rss, m.pss, m.uss, sample.elapsed_s
            );
            samples.push(sample);
        }
    }
    let restarts = runner.restarts();
    runner.shutdown().await;
    let orphans_now = || -> Vec<u32> {
        profile_dirs
            .iter()
            .flat_map(|d| common::live_processes_matching(&d.display().to_string()))
            .collect()
    };
    // The tree goes down after `shutdown` returns: wait for it, bounded.
    vitalsign_test_support::wait::poll_until(std::time::Duration::from_secs(5), || {
        orphans_now().is_empty()
    });
    let orphans = orphans_now();
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
        "{:>6} {:>9} {:>6} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "run", "pid", "procs", "RSS MiB", "PSS MiB", "USS MiB", "PSS vs base", "USS vs base"
    );
    let (base_pss, base_uss) = baseline.map_or((0.0, 0.0), |b| (b.memory.pss, b.memory.uss));
    for s in &samples {
        let m = &s.memory;
        println!(
            "{:>6} {:>9} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>12} {:>12}",
            s.run,
            s.pid,
            m.processes,
            m.rss,
            m.pss,
            m.uss,
            ratio(m.pss, base_pss),
            ratio(m.uss, base_uss)
        );
    }
    if let (Some(b), Some(last)) = (baseline, samples.last()) {
        let change = |now: f64, then: f64| (now / then - 1.0) * 100.0;
        let pss = change(last.memory.pss, b.memory.pss);
        let uss = change(last.memory.uss, b.memory.uss);
        let rss = change(last.memory.rss, b.memory.rss);
        let verdict = |c: f64| if c.abs() <= 10.0 { "met" } else { "MISSED" };
        println!(
            "browser memory run {} -> run {}: PSS {pss:+.1} % (goal within 10 %: {}), \
             USS {uss:+.1} % ({}), RSS {rss:+.1} %",
            b.run,
            last.run,
            verdict(pss),
            verdict(uss)
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
