//! Probe runs and their artifacts.

use vitalsign_collector::store::{NewRun, Store, StoreError, WriteOutcome};

use crate::*;

contract!(a_run_is_stored_once_and_its_artifact_round_trips);

pub async fn a_run_is_stored_once_and_its_artifact_round_trips(store: &Store) {
    let run = fixture_run();
    let id = run.run_id.clone();
    let new_run = || NewRun {
        run: run.clone(),
        page_view_groups: Vec::new(),
        received_ms: T0 + 5_000,
    };
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store.record_run(new_run()).await.unwrap(),
        WriteOutcome::AlreadyStored
    );
    let runs = store
        .recent_runs(Some("checkout".into()), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let (stored, received_ms) = store.run(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.run_id.as_str(), received_ms),
        (id.as_str(), T0 + 5_000)
    );

    // The artifact: refused before its run exists or with the wrong hash;
    // stored once; read back byte for byte.
    match store
        .record_artifact(artifact("r-none", b"test", TEST_SHA256))
        .await
    {
        Err(StoreError::NotFound(m)) => assert!(m.contains("upload the run first"), "{m}"),
        other => panic!("an artifact of an unknown run: {other:?}"),
    }
    match store.record_artifact(artifact(&id, b"tset", "00")).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("an artifact with the wrong hash: {other:?}"),
    }
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::Stored
    );
    assert_eq!(
        store
            .record_artifact(artifact(&id, b"test", TEST_SHA256))
            .await
            .unwrap(),
        WriteOutcome::AlreadyStored
    );
    assert_eq!(
        store.artifact(&id, "step-2-failure.png").await.unwrap(),
        Some(("image/png".to_string(), b"test".to_vec()))
    );
    assert_eq!(
        store.stored_artifacts(&id).await.unwrap(),
        [("step-2-failure.png".to_string(), "image/png".to_string(), 4)]
    );
    assert_eq!(store.artifact(&id, "other.png").await.unwrap(), None);
}

// ---- reads of runs (paging, latest, before, flow health) ----

contract!(
    runs_page_count_latest_and_before_in_start_order,
    flow_health_gives_last_result_pass_rate_interval_and_staleness,
);

/// The fixture run as `id` of `flow` at `location`, started at `started_ms`.
fn run_at(id: &str, flow: &str, location: &str, pass: bool, started_ms: i64) -> ProbeRun {
    let mut run = fixture_run();
    run.run_id = id.into();
    run.flow = flow.into();
    run.location = location.into();
    run.started_at_ms = started_ms as u64;
    run.finished_at_ms = started_ms as u64 + 4_200;
    if pass {
        run.outcome = vitalsign_core::wire::run::Outcome::Pass;
        run.failure = None;
    }
    run
}

async fn record(store: &Store, run: ProbeRun, received_ms: i64) {
    let outcome = store
        .record_run(NewRun {
            run,
            page_view_groups: Vec::new(),
            received_ms,
        })
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Stored);
}

fn ids(runs: &[ProbeRun]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

pub async fn runs_page_count_latest_and_before_in_start_order(store: &Store) {
    assert_eq!(store.latest_runs(10).await.unwrap().len(), 0);
    assert_eq!(store.count_runs(None, None).await.unwrap(), 0);
    // checkout at eu-west every minute (c0 … c4), two of them at the same
    // start (ties go to the larger run id first); search at us-east twice.
    let m = 60_000;
    for (id, flow, location, pass, started) in [
        ("c0", "checkout", "eu-west", true, T0),
        ("c1", "checkout", "eu-west", false, T0 + m),
        ("c2", "checkout", "eu-west", true, T0 + 2 * m),
        ("c3", "checkout", "eu-west", true, T0 + 2 * m),
        ("c4", "checkout", "eu-west", true, T0 + 3 * m),
        ("s0", "search", "us-east", true, T0 + m / 2),
        ("s1", "search", "us-east", false, T0 + 5 * m),
    ] {
        record(
            store,
            run_at(id, flow, location, pass, started),
            started + 1_000,
        )
        .await;
    }
    let all = store
        .recent_runs(None, None, None, None, 100)
        .await
        .unwrap();
    assert_eq!(ids(&all), ["s1", "c4", "c3", "c2", "c1", "s0", "c0"]);
    let failed = store
        .recent_runs(None, None, Some("fail".into()), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(&failed), ["s1", "c1"]);
    let since = store
        .recent_runs(Some("checkout".into()), None, None, Some(T0 + 2 * m), 2)
        .await
        .unwrap();
    assert_eq!(ids(&since), ["c4", "c3"]);

    // Pages of two, newest first; the last says nothing follows.
    let flow = || Some("checkout".to_string());
    let (page, more) = store.runs_page(flow(), None, 0, 2).await.unwrap();
    assert_eq!((ids(&page), more), (vec!["c4", "c3"], true));
    let (page, more) = store.runs_page(flow(), None, 2, 2).await.unwrap();
    assert_eq!((ids(&page), more), (vec!["c2", "c1"], true));
    let (page, more) = store.runs_page(flow(), None, 4, 2).await.unwrap();
    assert_eq!((ids(&page), more), (vec!["c0"], false));
    let (page, more) = store
        .runs_page(None, Some("us-east".into()), 0, 2)
        .await
        .unwrap();
    assert_eq!((ids(&page), more), (vec!["s1", "s0"], false));
    assert_eq!(store.count_runs(None, None).await.unwrap(), 7);
    assert_eq!(store.count_runs(flow(), None).await.unwrap(), 5);
    assert_eq!(
        store
            .count_runs(flow(), Some("us-east".into()))
            .await
            .unwrap(),
        0
    );

    // Runs started at or before a time, newest first.
    let before = store
        .runs_before("checkout", "eu-west", T0 + 2 * m, 10)
        .await
        .unwrap();
    assert_eq!(ids(&before), ["c3", "c2", "c1", "c0"]);
    let before = store
        .runs_before("checkout", "eu-west", T0 + 2 * m - 1, 1)
        .await
        .unwrap();
    assert_eq!(ids(&before), ["c1"]);
    assert!(
        store
            .runs_before("checkout", "us-east", T0 + 9 * m, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The latest of each flow × location, by flow then location.
    assert_eq!(ids(&store.latest_runs(10).await.unwrap()), ["c4", "s1"]);
    assert_eq!(ids(&store.latest_runs(1).await.unwrap()), ["c4"]);
    let dims = store.dimensions().await.unwrap();
    assert_eq!(
        (dims.flows, dims.locations),
        (
            vec!["checkout".to_string(), "search".to_string()],
            vec!["eu-west".to_string(), "us-east".to_string()]
        )
    );
    assert!(store.stored_artifacts("c0").await.unwrap().is_empty());
    assert_eq!(store.run("nope").await.unwrap(), None);
}

pub async fn flow_health_gives_last_result_pass_rate_interval_and_staleness(store: &Store) {
    assert!(store.flow_health(T0, T0).await.unwrap().is_empty());
    let s = 1_000;
    // checkout at eu-west every 20 s (the 4th failed), received 1 s after
    // its start; at us-east twice (no interval yet); search at eu-west
    // delivered late and out of order (an agent's spool after an outage).
    for i in 0..6 {
        let started = T0 + i * 20 * s;
        let run = run_at(&format!("c-{i}"), "checkout", "eu-west", i != 3, started);
        record(store, run, started + s).await;
    }
    record(
        store,
        run_at("u-0", "checkout", "us-east", true, T0),
        T0 + 500,
    )
    .await;
    let u1 = run_at("u-1", "checkout", "us-east", true, T0 + 60 * s);
    record(store, u1, T0 + 60 * s + 500).await;
    for (i, (started, received, pass)) in [
        (0, 2 * s, true),
        (10 * s, 12 * s, true),
        (20 * s, 300 * s, false),
        (30 * s, 290 * s, true),
    ]
    .into_iter()
    .enumerate()
    {
        let run = run_at(&format!("s-{i}"), "search", "eu-west", pass, T0 + started);
        record(store, run, T0 + received).await;
    }

    // Exactly 3 intervals after checkout's last arrival: not stale yet.
    let now = T0 + 101 * s + 3 * 20 * s;
    let health = store.flow_health(now, T0 + 40 * s).await.unwrap();
    let keys: Vec<(&str, &str)> = health
        .iter()
        .map(|h| (h.flow.as_str(), h.location.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("checkout", "eu-west"),
            ("checkout", "us-east"),
            ("search", "eu-west")
        ]
    );
    let c = &health[0];
    assert_eq!(
        (
            c.last_run_id.as_str(),
            c.last_outcome.as_str(),
            c.last_started_ms,
            c.last_received_ms
        ),
        ("c-5", "pass", T0 + 100 * s, T0 + 101 * s)
    );
    assert_eq!((c.runs, c.passes, c.pass_rate), (4, 3, Some(0.75)));
    assert_eq!(
        (c.median_gap_ms, c.silent_ms, c.stale),
        (Some(20 * s), 60 * s, false)
    );
    let later = store.flow_health(now + 1, T0 + 40 * s).await.unwrap();
    assert!(later[0].stale, "one millisecond past 3 intervals");
    let u = &health[1];
    assert_eq!(
        (u.median_gap_ms, u.stale, u.runs, u.pass_rate),
        (None, false, 1, Some(1.0))
    );
    let search = &health[2];
    assert_eq!(
        (
            search.last_run_id.as_str(),
            search.last_outcome.as_str(),
            search.last_received_ms
        ),
        ("s-3", "pass", T0 + 300 * s),
        "last run by start, last arrival by receipt"
    );
    assert_eq!((search.median_gap_ms, search.stale), (Some(10 * s), false));
    let empty = store.flow_health(now, now).await.unwrap();
    assert!(empty.iter().all(|h| h.runs == 0 && h.pass_rate.is_none()));
}
