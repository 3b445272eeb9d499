//! The real agent's own memory (its process only, not the browser it drives)
//! over `VITALSIGN_BENCH_RUNS` browser runs (default 1000): goal under 50 MB
//! RSS and flat.
//!
//! Release binaries on loopback: a collector, and `vitalsign-agent run` with
//! `VITALSIGN_BENCH_FLOWS` (default 2) copies of a one-step flow (open a tiny
//! page served by this bench), each every second, concurrency 2. Every second
//! the bench reads the agent's VmRSS from /proc and counts the runs it logged
//! as finished. Baseline for the ratios: the reading at run N/10 (100).
//!
//!     cargo bench -p vitalsign-tests --bench agent_memory
//!     VITALSIGN_BENCH_RUNS=200 cargo bench -p vitalsign-tests --bench agent_memory

#[path = "agent_bench/mod.rs"]
mod agent_bench;

use std::time::{Duration, Instant};

use vitalsign_test_support::env::env_u64;
use vitalsign_test_support::procfs::rss_mib;
use vitalsign_test_support::site;
use vitalsign_test_support::stats::ratio;

const PAGE: &str = "<!doctype html><html><head><title>tiny</title></head><body>\
<h1>Tiny page</h1><p style=\"font-size:30px\">Largest paint of a tiny page.</p></body></html>";

/// A loopback site that answers every request with [`PAGE`].
fn tiny_site() -> String {
    site::serve(|_| ("200 OK", "text/html", PAGE.into()))
}

struct Sample {
    runs: usize,
    secs: f64,
    rss: f64,
}

fn main() {
    let target = env_u64("VITALSIGN_BENCH_RUNS", 1000) as usize;
    let flows = env_u64("VITALSIGN_BENCH_FLOWS", 2) as usize;
    let (agent_bin, collector_bin) = agent_bench::release_binaries();
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-agent-mem-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let site = tiny_site();
    for i in 1..=flows {
        std::fs::write(
            dir.path().join(format!("flows/tiny-{i}.toml")),
            format!(
                "name = \"tiny-{i}\"\nbase_url = \"{site}\"\nschedule = \"1s\"\n\
                 [[steps]]\nname = \"open\"\ngoto = \"/\"\n"
            ),
        )
        .unwrap();
    }
    let collector = agent_bench::start_collector(&collector_bin, dir.path());
    let agent = agent_bench::start_agent(&agent_bin, dir.path(), &collector.base_url, 2);
    let pid = agent.pid;

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_progress = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let runs = agent.finished();
        let (rss, _) = rss_mib(pid);
        if samples.last().is_none_or(|s| s.runs < runs) {
            last_progress = Instant::now();
        }
        samples.push(Sample {
            runs,
            secs: started.elapsed().as_secs_f64(),
            rss,
        });
        if runs % 100 < 3 && runs >= 100 || runs >= target {
            eprintln!(
                "{runs} runs, agent RSS {rss:.1} MiB, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        if runs >= target {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(120) {
            eprintln!("no run finished for 120 s; stopping early");
            break;
        }
    }
    let (_, peak) = rss_mib(pid);
    let elapsed = started.elapsed().as_secs_f64();
    let failed = agent
        .agent
        .process
        .log()
        .iter()
        .filter(|l| l.contains("flow finished") && !l.contains("\"pass\""))
        .count();
    agent.stop();
    let delivered = agent_bench::stored_runs(&collector.db).len();

    let at = |mark: usize| samples.iter().find(|s| s.runs >= mark);
    let first = samples.iter().find(|s| s.runs >= 10);
    let marks: Vec<usize> = [10, 4, 2]
        .iter()
        .map(|d| target / d)
        .chain([target * 3 / 4, target])
        .filter(|m| *m > 0)
        .collect();
    let mut marks = marks;
    marks.sort();
    marks.dedup();
    let baseline = at(target / 10).map_or(f64::NAN, |s| s.rss);
    let finished = samples.last().map_or(0, |s| s.runs);
    println!();
    println!(
        "agent memory (agent process only, VmRSS): {finished} runs of a one-step browser flow in {elapsed:.0} s \
         ({:.2} runs/s, {flows} flows offered {flows}/s, concurrency 2, {failed} not passed, {delivered} stored by the collector)",
        finished as f64 / elapsed
    );
    println!(
        "{:>8} {:>9} {:>10} {:>12}",
        "run", "at s", "RSS MiB", "vs baseline"
    );
    if let Some(s) = first {
        println!(
            "{:>8} {:>9.0} {:>10.1} {:>12}",
            s.runs,
            s.secs,
            s.rss,
            ratio(s.rss, baseline)
        );
    }
    for mark in marks {
        if let Some(s) = at(mark) {
            println!(
                "{:>8} {:>9.0} {:>10.1} {:>12}",
                mark,
                s.secs,
                s.rss,
                ratio(s.rss, baseline)
            );
        } else {
            println!("{mark:>8} {:>9} {:>10} {:>12}", "-", "-", "-");
        }
    }
    let last = samples.last().map_or(f64::NAN, |s| s.rss);
    println!(
        "peak RSS {peak:.1} MiB; goal < 50 MB: {}; flat (last within 10 % of run {}): {}",
        if peak * 1.048_576 < 50.0 {
            "met"
        } else {
            "MISSED"
        },
        target / 10,
        if (last / baseline - 1.0).abs() <= 0.10 {
            "yes"
        } else {
            "NO"
        }
    );
}
