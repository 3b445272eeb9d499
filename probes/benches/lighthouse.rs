//! Wall time to measure one loopback page once: our runner (warm browser, and
//! cold: launch + run + shutdown) against the `lighthouse` CLI, in the same run.
//!
//! Lighthouse 12 comes from npm into `target/bench-node` (installed by this
//! bench if missing) and drives Debian's Chromium (`CHROME_PATH`), headless,
//! performance category only, JSON report to a temp file. Runs are interleaved
//! so machine load drifts alike for all three; `VITALSIGN_BENCH_RUNS` (default 3)
//! sets how many of each.
//!
//!     cargo bench -p vitalsign-probes --bench lighthouse

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::ms;
use vitalsign_core::wire::run::Outcome;
use vitalsign_probes::{RunOptions, Runner, RunnerConfig};
use vitalsign_test_support::env::env_usize;
use vitalsign_test_support::stats::{median, ratio};

fn main() {
    let lighthouse = install_lighthouse();
    common::runtime().block_on(bench(&lighthouse));
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn install_lighthouse() -> PathBuf {
    let prefix = workspace_target().join("bench-node");
    let bin = prefix.join("node_modules/.bin/lighthouse");
    if !bin.exists() {
        eprintln!("installing lighthouse@12 into {}", prefix.display());
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("lighthouse@12")
            .status()
            .expect("npm is needed for this bench");
        assert!(status.success(), "npm install lighthouse@12 failed");
    }
    bin
}

struct LighthouseRun {
    wall_ms: f64,
    lcp_ms: Option<f64>,
}

/// One `lighthouse` CLI run; its Chromium gets its own profile directory,
/// which is checked for leftovers afterwards.
fn run_lighthouse(bin: &Path, url: &str) -> LighthouseRun {
    let dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-lh-")
        .tempdir()
        .unwrap();
    let report = dir.path().join("report.json");
    let profile = dir.path().join("profile");
    let started = Instant::now();
    let output = Command::new(bin)
        .arg(url)
        .arg(format!(
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-component-update --user-data-dir={}",
            profile.display()
        ))
        .args([
            "--only-categories=performance",
            "--output=json",
            "--quiet",
        ])
        .arg(format!("--output-path={}", report.display()))
        .env("CHROME_PATH", "/usr/bin/chromium")
        .output()
        .expect("running lighthouse");
    let wall_ms = ms(started.elapsed());
    assert!(
        output.status.success(),
        "lighthouse failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let lcp_ms = json["audits"]["largest-contentful-paint"]["numericValue"].as_f64();
    let leftovers = common::live_processes_matching(&profile.display().to_string());
    for pid in &leftovers {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    if !leftovers.is_empty() {
        eprintln!(
            "lighthouse left {} Chromium processes; killed",
            leftovers.len()
        );
    }
    LighthouseRun { wall_ms, lcp_ms }
}

async fn bench(lighthouse: &Path) {
    let runs = env_usize("VITALSIGN_BENCH_RUNS", 3);
    let (base, _timings) = common::serve().await;
    let url = format!("{base}/");
    let flow = common::one_page_flow(&base);
    let options = RunOptions {
        artifacts_dir: std::env::temp_dir().join("vitalsign-bench-artifacts"),
        ..RunOptions::default()
    };
    let warm_runner = Runner::new(RunnerConfig::default());
    let warm_up = warm_runner.run(&flow, &options).await;
    assert_eq!(warm_up.outcome, Outcome::Pass, "{:?}", warm_up.failure);

    let (mut warm, mut cold, mut lh) = (vec![], vec![], vec![]);
    let (mut our_lcp, mut lh_lcp) = (vec![], vec![]);
    for i in 0..runs {
        let started = Instant::now();
        let run = warm_runner.run(&flow, &options).await;
        warm.push(ms(started.elapsed()));
        assert_eq!(run.outcome, Outcome::Pass, "{:?}", run.failure);
        if let Some(lcp) = run.steps[0].vitals.lcp {
            our_lcp.push(lcp);
        }

        let started = Instant::now();
        let runner = Runner::new(RunnerConfig::default());
        let run = runner.run(&flow, &options).await;
        runner.shutdown().await;
        cold.push(ms(started.elapsed()));
        assert_eq!(run.outcome, Outcome::Pass, "{:?}", run.failure);

        let bin = lighthouse.to_path_buf();
        let page = url.clone();
        let lh_run = tokio::task::spawn_blocking(move || run_lighthouse(&bin, &page))
            .await
            .unwrap();
        lh.push(lh_run.wall_ms);
        lh_lcp.extend(lh_run.lcp_ms);
        eprintln!(
            "round {}: ours warm {:.0} ms, cold {:.0} ms, lighthouse {:.0} ms",
            i + 1,
            warm[i],
            cold[i],
            lh[i]
        );
    }
    warm_runner.shutdown().await;

    let baseline = median(&lh);
    println!();
    println!("measure one loopback page once: wall time, median of {runs} interleaved rounds");
    println!("{:<44} {:>10} {:>14}", "", "median", "vs lighthouse");
    for (name, v) in [
        ("lighthouse CLI (baseline)", &lh),
        ("vitalsign runner, warm browser", &warm),
        ("vitalsign runner, cold (launch+run+close)", &cold),
    ] {
        println!(
            "{:<44} {:>7.0} ms {:>14}",
            name,
            median(v),
            ratio(median(v), baseline)
        );
    }
    println!(
        "LCP reported: ours {:.0} ms (measured), lighthouse {:.0} ms (simulated throttling)",
        median(&our_lcp),
        median(&lh_lcp)
    );
    let worst = median(&cold) / baseline;
    println!(
        "goal <= 0.2x: warm {}, cold {}",
        if median(&warm) / baseline <= 0.2 {
            "met"
        } else {
            "MISSED"
        },
        if worst <= 0.2 { "met" } else { "MISSED" }
    );
}
