//! What the runner adds around a flow's own work, with a warm browser.
//!
//! A 3-step flow (open the page, click, assert) on a loopback page, run
//! `VITALSIGN_BENCH_RUNS` times (default 30) after 3 warm-up runs. For every run:
//! - wall time of `Runner::run`;
//! - the steps' own durations (`ProbeRun.steps[].duration_ms`: the action plus
//!   the runner's network-quiet windows, 300 ms after a `goto`, 200 ms after a click);
//! - the page's own work, reported by the page (navigation start → load end,
//!   and the click handler's time);
//! - **overhead = wall − Σ step durations**: context, page, emulation,
//!   injection, event listeners, read-backs, page close and context dispose.
//!
//! Baseline in the same run: the fixed CDP work done bare with chromiumoxide
//! in a second warm browser (create context, create page, add the init
//! script, one settled read-back per step, close, dispose), phase by phase;
//! the ratio says how the runner compares with that floor. Below it, what one
//! read-back's wait costs: settled (two frames and a 50 ms margin for
//! event-timing entries; the runner's choice after input steps), two frames
//! (after `goto` and `wait_for`), and none (after steps that only look at the
//! page, such as `assert`).
//!
//!     cargo bench -p vitalsign-probes --bench overhead

mod common;

use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::target::{
    CloseTargetParams, CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use common::ms;
use futures::StreamExt;
use vitalsign_core::wire::run::Outcome;
use vitalsign_probes::{RunOptions, Runner, RunnerConfig, measure};
use vitalsign_test_support::env::env_usize;
use vitalsign_test_support::stats::{median, percentile, ratio};

#[derive(Default)]
struct Bare {
    context: Vec<f64>,
    page: Vec<f64>,
    inject: Vec<f64>,
    read_back: Vec<f64>,
    close: Vec<f64>,
    total: Vec<f64>,
    /// `Target.createTarget` + `Target.closeTarget` alone, without
    /// chromiumoxide attaching to the page and enabling its domains.
    raw_target: Vec<f64>,
    /// One read-back without the 50 ms margin (two frames only), and one with
    /// no wait at all: what the read-back's waiting costs.
    frames_only: Vec<f64>,
    no_wait: Vec<f64>,
}

fn main() {
    common::runtime().block_on(bench());
}

async fn bench() {
    let runs = env_usize("VITALSIGN_BENCH_RUNS", 30);
    let (base, timings) = common::serve().await;
    let flow = common::three_step_flow(&base);
    let runner = Runner::new(RunnerConfig::default());
    let options = RunOptions {
        artifacts_dir: std::env::temp_dir().join("vitalsign-bench-artifacts"),
        ..RunOptions::default()
    };

    let bare_dir = tempfile::Builder::new()
        .prefix("vitalsign-bench-bare-")
        .tempdir()
        .unwrap();
    let (mut bare_browser, bare_handler) = launch_bare(bare_dir.path()).await;

    for _ in 0..3 {
        let run = runner.run(&flow, &options).await;
        assert_eq!(
            run.outcome,
            Outcome::Pass,
            "warm-up run failed: {:?}",
            run.failure
        );
        bare_iteration(&bare_browser, &base, &mut Bare::default()).await;
    }

    let (mut wall, mut steps, mut own, mut overhead) = (vec![], vec![], vec![], vec![]);
    let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); flow.steps.len()];
    let mut bare = Bare::default();
    let mut failed = 0;
    for _ in 0..runs {
        *timings.lock().unwrap() = Default::default();
        let started = Instant::now();
        let run = runner.run(&flow, &options).await;
        let elapsed = ms(started.elapsed());
        // The page's beacons are in before the steps' network-quiet windows end.
        let page = timings.lock().unwrap().clone();
        if run.outcome != Outcome::Pass {
            failed += 1;
            eprintln!("run failed: {:?}", run.failure);
            continue;
        }
        let in_steps: f64 = run.steps.iter().map(|s| s.duration_ms).sum();
        for (i, step) in run.steps.iter().enumerate() {
            per_step[i].push(step.duration_ms);
        }
        wall.push(elapsed);
        steps.push(in_steps);
        own.push(page.navigation_ms.iter().sum::<f64>() + page.click_ms.iter().sum::<f64>());
        overhead.push(elapsed - in_steps);

        bare_iteration(&bare_browser, &base, &mut bare).await;
    }

    runner.shutdown().await;
    close_bare(&mut bare_browser, bare_handler).await;

    let floor = median(&bare.total);
    println!();
    println!(
        "runner overhead, 3-step flow on a loopback page, warm browser: {} runs ({failed} failed)",
        wall.len()
    );
    println!(
        "{:<52} {:>9} {:>9} {:>12}",
        "", "median", "p90", "vs CDP floor"
    );
    let row = |name: &str, v: &[f64]| {
        println!(
            "{:<52} {:>6.1} ms {:>6.1} ms {:>12}",
            name,
            median(v),
            percentile(v, 0.9),
            ratio(median(v), floor)
        );
    };
    row("Runner::run wall time", &wall);
    row("  steps (actions + network-quiet windows)", &steps);
    for (step, durations) in flow.steps.iter().zip(&per_step) {
        row(&format!("    step {:?}", step.name), durations);
    }
    row("    of which the page's own work (load, click)", &own);
    row("  OVERHEAD around the steps (goal < 250 ms)", &overhead);
    println!("baseline: bare chromiumoxide, warm browser, a settled read-back per step");
    row("  create browser context", &bare.context);
    row("  create page", &bare.page);
    row(
        "    (raw Target.createTarget + closeTarget, no attach)",
        &bare.raw_target,
    );
    row("  add init script (snippet injection)", &bare.inject);
    row(
        "  3 settled read-backs (2 frames + 50 ms each)",
        &bare.read_back,
    );
    row("  close page + dispose context", &bare.close);
    row("  CDP floor (sum of the above)", &bare.total);
    println!("what one read-back's wait costs (same page, bare):");
    let per_read: Vec<f64> = bare.read_back.iter().map(|v| v / 3.0).collect();
    row("  2 frames + 50 ms (runner: after input steps)", &per_read);
    row(
        "  2 frames (runner: after goto, wait_for)",
        &bare.frames_only,
    );
    row(
        "  no wait (runner: after assert, screenshot)",
        &bare.no_wait,
    );
    let goal = median(&overhead) < 250.0;
    println!(
        "goal median overhead < 250 ms: {} ({:.1} ms)",
        if goal { "met" } else { "MISSED" },
        median(&overhead)
    );
}

async fn launch_bare(dir: &std::path::Path) -> (Browser, tokio::task::JoinHandle<()>) {
    // The runner's own launch settings (see Runner::launch).
    let config = BrowserConfig::builder()
        .chrome_executable("/usr/bin/chromium")
        .new_headless_mode()
        .no_sandbox()
        .arg("disable-gpu")
        .arg("disable-component-update")
        .user_data_dir(dir)
        .viewport(None)
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let task = tokio::spawn(async move { while let Some(Ok(_)) = handler.next().await {} });
    (browser, task)
}

async fn close_bare(browser: &mut Browser, handler: tokio::task::JoinHandle<()>) {
    let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
    if let Some(pid) = pid {
        for p in common::descendants(pid).into_iter().chain([pid]) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    handler.abort();
}

async fn bare_iteration(browser: &Browser, base: &str, out: &mut Bare) {
    let t0 = Instant::now();
    let ctx = browser
        .create_browser_context(CreateBrowserContextParams::default())
        .await
        .unwrap();
    let t1 = Instant::now();
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(ctx.clone())
        .build()
        .unwrap();
    let page = browser.new_page(target).await.unwrap();
    let t2 = Instant::now();
    page.evaluate_on_new_document(measure::init_script())
        .await
        .unwrap();
    let t3 = Instant::now();
    page.goto(format!("{base}/")).await.unwrap();
    let t4 = Instant::now();
    for _ in 0..3 {
        let params = EvaluateParams::builder()
            .expression(measure::READ_BACK)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .unwrap();
        page.evaluate(params).await.unwrap();
    }
    let t5 = Instant::now();
    for (script, out) in [
        (measure::READ_BACK_FRAMES, &mut out.frames_only),
        (measure::READ_BACK_NOW, &mut out.no_wait),
    ] {
        let params = EvaluateParams::builder()
            .expression(script)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .unwrap();
        let started = Instant::now();
        page.evaluate(params).await.unwrap();
        out.push(ms(started.elapsed()));
    }
    page.close().await.unwrap();
    browser.dispose_browser_context(ctx).await.unwrap();
    let t6 = Instant::now();
    // What creating a target costs Chromium alone, in its own context.
    let ctx = browser
        .create_browser_context(CreateBrowserContextParams::default())
        .await
        .unwrap();
    let raw = Instant::now();
    let created = browser
        .execute(
            CreateTargetParams::builder()
                .url("about:blank")
                .browser_context_id(ctx.clone())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    browser
        .execute(CloseTargetParams::new(created.result.target_id.clone()))
        .await
        .unwrap();
    out.raw_target.push(ms(raw.elapsed()));
    browser.dispose_browser_context(ctx).await.unwrap();
    let parts = [
        ms(t1 - t0),
        ms(t2 - t1),
        ms(t3 - t2),
        ms(t5 - t4),
        ms(t6 - t5),
    ];
    out.context.push(parts[0]);
    out.page.push(parts[1]);
    out.inject.push(parts[2]);
    out.read_back.push(parts[3]);
    out.close.push(parts[4]);
    out.total.push(parts.iter().sum());
}
