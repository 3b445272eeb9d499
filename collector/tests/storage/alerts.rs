//! Alert states, silences, acknowledgements, the outbox, the evaluator lease.
//!
//! The checks under `contract!` run on both backends. The ones in
//! [`replicas`] need two stores on one database, which only PostgreSQL has
//! (a SQLite file belongs to one collector process): two `PgStore`s
//! connected to one URL are two replicas.

use std::collections::BTreeMap;

use vitalsign_collector::alerts::detector::Numbers;
use vitalsign_collector::alerts::email::{NoticeKind, OutboxMessage};
use vitalsign_collector::alerts::engine::{Evaluation, alert_id};
use vitalsign_collector::alerts::rules::RuleKind;
use vitalsign_collector::alerts::rules::SeriesKey;
use vitalsign_collector::alerts::silences::{Matchers, Silence};
use vitalsign_collector::alerts::state::{AlertRecord, State, Transition};
use vitalsign_collector::alerts::windows::HourHist;
use vitalsign_collector::histogram::Histogram;
use vitalsign_collector::store::alerts::Delivery;
use vitalsign_collector::store::{NewRun, Store, StoreError, WriteOutcome};
use vitalsign_core::metric::{Metric, Source};
use vitalsign_core::wire::run::Outcome;

use crate::*;

contract!(
    silences_and_acknowledgements_answer_with_typed_errors,
    an_evaluation_is_stored_whole_and_read_back,
    acknowledging_needs_a_firing_alert_and_lasts_while_it_fires,
    the_outbox_is_claimed_delivered_and_counted_in_order,
    an_unrecorded_claim_comes_back_after_it_expires,
    only_the_lease_term_may_write_an_evaluation,
    the_snapshot_holds_hourly_histograms_runs_and_freshness,
);

/// How long the lease lasts in these checks (long enough not to expire).
const TTL_MS: i64 = 15_000;

pub async fn silences_and_acknowledgements_answer_with_typed_errors(store: &Store) {
    let silence = Silence {
        id: "s-1".into(),
        created_ms: T0,
        starts_ms: T0,
        ends_ms: T0 + HOUR_MS,
        matchers: Matchers {
            site: Some("shop".into()),
            ..Matchers::default()
        },
        comment: "deploy".into(),
        created_by: "ops".into(),
    };
    store.add_silence(silence.clone()).await.unwrap();
    assert_eq!(store.silences(T0 + 1).await.unwrap(), [silence]);
    assert!(store.silences(T0 + HOUR_MS).await.unwrap().is_empty());
    store.end_silence("s-1").await.unwrap();
    assert!(matches!(
        store.end_silence("s-1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.silences(T0 + 1).await.unwrap().is_empty());
    assert!(matches!(
        store.acknowledge("no-such-alert", "ops", T0).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.alert_states(None).await.unwrap().is_empty());
    assert!(store.claim_outbox(T0, 10).await.unwrap().is_empty());
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead, stats.sent), (0, 0, 0));
}

/// A regression alert of the shop's `page` in `state` since `T0`.
fn record(page: &str, state: State) -> AlertRecord {
    AlertRecord {
        site: "shop".into(),
        state,
        numbers: Numbers {
            baseline: Some(2100.0),
            current: Some(2800.0),
            ..Numbers::default()
        },
        ..AlertRecord::new(
            format!("regression|default-regression|LCP|shop|{page}|mobile"),
            "default-regression".into(),
            RuleKind::Regression,
            "default".into(),
            T0,
        )
    }
}

fn transition(r: &AlertRecord, from: State, at_ms: i64) -> Transition {
    Transition {
        key: r.key.clone(),
        rule: r.rule.clone(),
        at_ms,
        from,
        to: r.state,
        numbers: r.numbers.clone(),
    }
}

/// An email about `alerts`, queued at `created_ms`.
fn message(n: usize, alerts: &[&AlertRecord], created_ms: i64) -> OutboxMessage {
    OutboxMessage {
        message_id: format!("<m-{n}@vitals.example>"),
        kind: NoticeKind::Firing,
        created_ms,
        route: "default".into(),
        recipients: vec!["oncall@example.com".into()],
        subject: format!("message {n}"),
        text: "text".into(),
        html: "<p>html</p>".into(),
        in_reply_to: None,
        references: Vec::new(),
        alerts: alerts.iter().map(|r| alert_id(&r.key)).collect(),
    }
}

/// An evaluation that only queues `count` emails about nothing in particular.
fn emails(count: usize) -> Evaluation {
    Evaluation {
        outbox: (0..count).map(|n| message(n, &[], T0)).collect(),
        ..Evaluation::default()
    }
}

async fn term(store: &Store) -> i64 {
    store
        .evaluator_lease(TTL_MS)
        .await
        .unwrap()
        .expect("the only store takes the lease")
}

pub async fn an_evaluation_is_stored_whole_and_read_back(store: &Store) {
    let term = term(store).await;
    let firing = record("/checkout", State::Firing);
    let ok = record("/cart", State::Ok);
    let eval = Evaluation {
        records: vec![firing.clone(), ok.clone()],
        transitions: vec![transition(&firing, State::Pending, T0 + 1)],
        outbox: vec![message(1, &[&firing], T0 + 1), message(2, &[], T0 + 2)],
        evaluated: 2,
    };
    assert_eq!(
        store.record_evaluation(eval, T0 + 1, term).await.unwrap(),
        WriteOutcome::Stored
    );

    let records = store.alert_records().await.unwrap();
    let expected: BTreeMap<String, AlertRecord> = [
        (firing.key.clone(), firing.clone()),
        (ok.key.clone(), ok.clone()),
    ]
    .into();
    assert_eq!(records, expected);
    // Site, rule, key order: "/cart" before "/checkout".
    let all = store.alert_states(None).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        [alert_id(&ok.key), alert_id(&firing.key)]
    );
    let fire_id = alert_id(&firing.key);
    let in_firing = store.alert_states(Some("firing".into())).await.unwrap();
    assert_eq!(in_firing.len(), 1);
    assert_eq!(in_firing[0].id, fire_id);
    assert_eq!(in_firing[0].record, firing);
    let mut counts = store.alert_counts().await.unwrap();
    counts.sort();
    assert_eq!(counts, [("firing".into(), 1), ("ok".into(), 1)]);
    let page = store.alerts_in_state("ok", 0, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert!(store.alerts_in_state("ok", 1, 10).await.unwrap().is_empty());
    let one = store.alert(&fire_id).await.unwrap().unwrap();
    assert_eq!((one.record, one.acked_ms), (firing.clone(), None));
    assert!(store.alert("nope").await.unwrap().is_none());

    let ts = store.transitions(None, T0, 10).await.unwrap();
    assert_eq!(ts.len(), 1);
    assert_eq!(
        (
            ts[0].alert_id.as_str(),
            ts[0].from.as_str(),
            ts[0].to.as_str(),
            ts[0].at_ms
        ),
        (fire_id.as_str(), "pending", "firing", T0 + 1)
    );
    assert_eq!(ts[0].numbers["current"], 2800.0);
    assert_eq!(
        store
            .transitions(Some(fire_id.clone()), T0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .transitions(Some(alert_id(&ok.key)), T0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .transitions(None, T0 + 2, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let outbox = store.outbox_all().await.unwrap();
    assert_eq!(
        outbox
            .iter()
            .map(|r| (r.message.message_id.as_str(), r.status.as_str(), r.attempts))
            .collect::<Vec<_>>(),
        [
            ("<m-1@vitals.example>", "pending", 0),
            ("<m-2@vitals.example>", "pending", 0)
        ]
    );
    assert_eq!(outbox[0].message, message(1, &[&firing], T0 + 1));
    let about = store.outbox_for_alert(&fire_id, 10).await.unwrap();
    assert_eq!(about.len(), 1);
    assert_eq!(about[0].message.message_id, "<m-1@vitals.example>");
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.oldest_pending_ms,
            stats.sent,
            stats.dead
        ),
        (2, Some(T0 + 1), 0, 0)
    );

    // All or nothing: an evaluation whose email repeats a Message-ID is
    // refused whole, and its state change is not written either.
    let resolved = AlertRecord {
        state: State::Resolved,
        ..firing.clone()
    };
    let clash = Evaluation {
        records: vec![resolved.clone()],
        transitions: vec![transition(&resolved, State::Firing, T0 + 5)],
        outbox: vec![message(1, &[&resolved], T0 + 5)],
        evaluated: 1,
    };
    assert!(store.record_evaluation(clash, T0 + 5, term).await.is_err());
    assert_eq!(store.alert_records().await.unwrap(), expected);
    assert_eq!(store.transitions(None, T0, 10).await.unwrap().len(), 1);
    assert_eq!(store.outbox_all().await.unwrap().len(), 2);
}

pub async fn acknowledging_needs_a_firing_alert_and_lasts_while_it_fires(store: &Store) {
    let term = term(store).await;
    let firing = record("/checkout", State::Firing);
    let ok = record("/cart", State::Ok);
    let eval = Evaluation {
        records: vec![firing.clone(), ok.clone()],
        ..Evaluation::default()
    };
    store.record_evaluation(eval, T0, term).await.unwrap();
    let (fire_id, ok_id) = (alert_id(&firing.key), alert_id(&ok.key));

    assert!(matches!(
        store.acknowledge(&ok_id, "ops", T0 + 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.acknowledge("0000000000000000", "ops", T0 + 1).await,
        Err(StoreError::NotFound(_))
    ));
    store.acknowledge(&fire_id, "ops", T0 + 2).await.unwrap();
    let acked = store.alert(&fire_id).await.unwrap().unwrap();
    assert_eq!(
        (acked.acked_ms, acked.acked_by.as_deref()),
        (Some(T0 + 2), Some("ops"))
    );
    assert_eq!(acked.record.acked_ms, Some(T0 + 2));
    assert_eq!(
        store.alert_records().await.unwrap()[&firing.key].acked_ms,
        Some(T0 + 2)
    );

    // Still firing at the next evaluation: the acknowledgement stays.
    let again = Evaluation {
        records: vec![firing.clone()],
        ..Evaluation::default()
    };
    store.record_evaluation(again, T0 + 3, term).await.unwrap();
    let still = store.alert(&fire_id).await.unwrap().unwrap();
    assert_eq!(still.acked_by.as_deref(), Some("ops"));
    // Resolved: it is cleared, and a resolved alert cannot be acknowledged.
    let resolved = AlertRecord {
        state: State::Resolved,
        ..firing.clone()
    };
    let end = Evaluation {
        records: vec![resolved],
        ..Evaluation::default()
    };
    store.record_evaluation(end, T0 + 4, term).await.unwrap();
    let after = store.alert(&fire_id).await.unwrap().unwrap();
    assert_eq!((after.acked_ms, after.acked_by), (None, None));
    assert!(matches!(
        store.acknowledge(&fire_id, "ops", T0 + 5).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn the_outbox_is_claimed_delivered_and_counted_in_order(store: &Store) {
    let term = term(store).await;
    store.record_evaluation(emails(4), T0, term).await.unwrap();
    let claimed = store.claim_outbox(T0, 3).await.unwrap();
    let seqs: Vec<i64> = claimed.iter().map(|r| r.seq).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(claimed[0].message.message_id, "<m-0@vitals.example>");

    store
        .record_delivery(seqs[0], Delivery::Sent, T0 + 10)
        .await
        .unwrap();
    store
        .record_delivery(
            seqs[1],
            Delivery::Retry {
                next_attempt_ms: T0 + 60_000,
                error: "421 try later".into(),
            },
            T0 + 11,
        )
        .await
        .unwrap();
    store
        .record_delivery(
            seqs[2],
            Delivery::Dead {
                error: "550 no such user".into(),
            },
            T0 + 12,
        )
        .await
        .unwrap();
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(
        (
            stats.pending,
            stats.oldest_pending_ms,
            stats.sent,
            stats.dead
        ),
        (2, Some(T0), 1, 1)
    );
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].seq, dead[0].attempts, dead[0].last_error.as_deref()),
        (seqs[2], 1, Some("550 no such user"))
    );
    let all = store.outbox_all().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| (r.status.as_str(), r.attempts, r.done_ms))
            .collect::<Vec<_>>(),
        [
            ("sent", 1, Some(T0 + 10)),
            ("pending", 1, None),
            ("dead", 1, Some(T0 + 12)),
            ("pending", 0, None)
        ]
    );
    assert_eq!(all[1].next_attempt_ms, T0 + 60_000);

    // The retried email waits out its backoff, and the one queued after it
    // waits with it: a later email never overtakes an earlier one.
    assert!(
        store
            .claim_outbox(T0 + 59_999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let next = store.claim_outbox(T0 + 60_000, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [seqs[1], all[3].seq]
    );
    for r in &next {
        store
            .record_delivery(r.seq, Delivery::Sent, T0 + 60_001)
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_outbox(T0 + 70_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.sent, stats.dead), (0, 3, 1));

    // Pruning forgets sent emails done before the cut; dead letters stay.
    store.prune_alerts(T0 + 60_000).await.unwrap();
    assert_eq!(store.outbox_all().await.unwrap().len(), 3);
    store.prune_alerts(T0 + 60_002).await.unwrap();
    let left = store.outbox_all().await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ["dead"]
    );
}

/// A claim nobody records (the sender crashed) is handed out again once it
/// has expired. (SQLite's one outbox worker claims by reading, so there the
/// rows are handed out again at once; PostgreSQL holds the k-th row of a
/// claim for k × `CLAIM_MS`, see `replicas::a_claimed_email_is_not_handed_out_twice`.)
pub async fn an_unrecorded_claim_comes_back_after_it_expires(store: &Store) {
    use vitalsign_collector::store::pg::alerts::CLAIM_MS;
    let term = term(store).await;
    store.record_evaluation(emails(2), T0, term).await.unwrap();
    let first = store.claim_outbox(T0, 10).await.unwrap();
    assert_eq!(first.len(), 2);
    // The second row of a claim is held for two sends.
    let again = store.claim_outbox(T0 + 2 * CLAIM_MS, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|r| r.seq).collect::<Vec<_>>(),
        first.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    assert_eq!(again[0].attempts, 0);
}

/// The lease's term is what an evaluation is written under: renewing keeps
/// it, and an evaluation under any other term writes nothing.
pub async fn only_the_lease_term_may_write_an_evaluation(store: &Store) {
    let term = term(store).await;
    assert_eq!(
        store.evaluator_lease(TTL_MS).await.unwrap(),
        Some(term),
        "renewing keeps the term"
    );
    let firing = record("/checkout", State::Firing);
    let eval = || Evaluation {
        records: vec![firing.clone()],
        transitions: vec![transition(&firing, State::Pending, T0)],
        outbox: vec![message(1, &[&firing], T0)],
        evaluated: 1,
    };
    assert!(matches!(
        store.record_evaluation(eval(), T0, term + 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.alert_records().await.unwrap().is_empty());
    assert!(store.transitions(None, 0, 10).await.unwrap().is_empty());
    assert!(store.outbox_all().await.unwrap().is_empty());
    store.record_evaluation(eval(), T0, term).await.unwrap();
    assert_eq!(store.alert_records().await.unwrap().len(), 1);
}

/// What the engine reads: the hours asked for of every series (from the
/// rollups ingest keeps, re-reports moved rather than added), the runs since
/// a time, and every flow's freshness.
pub async fn the_snapshot_holds_hourly_histograms_runs_and_freshness(store: &Store) {
    let h = T0.div_euclid(HOUR_MS);
    let at = |hour: i64| hour * HOUR_MS + 60_000;
    store
        .append_page_views(vec![
            page_view("pv-before", Metric::Lcp, 900.0, at(h - 1)),
            page_view("pv-1", Metric::Lcp, 1000.0, at(h)),
            page_view("pv-2", Metric::Lcp, 1200.0, at(h)),
            page_view("pv-3", Metric::Lcp, 3000.0, at(h + 1)),
            page_view("pv-after", Metric::Lcp, 900.0, at(h + 2)),
        ])
        .await
        .unwrap();
    // A re-report replaces pv-2's value: its hour still counts two views.
    store
        .append_page_views(vec![page_view("pv-2", Metric::Lcp, 5000.0, at(h) + 1)])
        .await
        .unwrap();
    let run = fixture_run();
    let started = run.started_at_ms as i64;
    store
        .record_run(NewRun {
            run: run.clone(),
            page_view_groups: Vec::new(),
            received_ms: T0 + 5_000,
        })
        .await
        .unwrap();

    let snapshot = store
        .alert_snapshot(Some((h, h + 2)), started - 1)
        .await
        .unwrap();
    let key = SeriesKey {
        metric: Metric::Lcp,
        site: "shop".into(),
        page_group: "/product/:id".into(),
        device: "mobile".into(),
        source: Source::Rum,
        flow: String::new(),
        step: String::new(),
        location: String::new(),
    };
    let hist = |values: &[f64]| {
        let mut h = Histogram::default();
        for v in values {
            h.add(*v, 1);
        }
        HourHist::from_histogram(&h)
    };
    let expected: BTreeMap<i64, HourHist> =
        [(h, hist(&[1000.0, 5000.0])), (h + 1, hist(&[3000.0]))].into();
    assert_eq!(snapshot.series.get(&key), Some(&expected));
    // The run's steps are series of their own, within the hours asked.
    for (k, hours) in &snapshot.series {
        assert!(hours.keys().all(|hour| (h..h + 2).contains(hour)), "{k:?}");
    }

    let flow = (run.flow.clone(), run.location.clone());
    let runs = &snapshot.runs[&flow];
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].run_id.as_str(),
            runs[0].started_ms,
            runs[0].outcome,
            runs[0].reason.as_deref()
        ),
        (
            run.run_id.as_str(),
            started,
            Outcome::Fail,
            Some("text \"1 item\" not found in #cart (found \"0 items\")")
        )
    );
    let fresh = &snapshot.freshness[&flow];
    assert_eq!(
        (
            fresh.last_run_id.as_str(),
            fresh.last_outcome.as_str(),
            fresh.last_received_ms,
            fresh.recent_starts_ms.as_slice()
        ),
        (run.run_id.as_str(), "fail", T0 + 5_000, &[started][..])
    );

    // No hours asked: no series; runs only after the time given.
    let later = store.alert_snapshot(None, started).await.unwrap();
    assert!(later.series.is_empty());
    assert!(later.runs.is_empty());
    assert_eq!(
        later.freshness.len(),
        1,
        "freshness does not depend on the time"
    );
}

/// Two replicas on one PostgreSQL database.
mod replicas {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use vitalsign_collector::alerts::evaluator::Evaluator;
    use vitalsign_collector::clock::Clock;
    use vitalsign_collector::config::CollectorConfig;
    use vitalsign_collector::metrics::Metrics;
    use vitalsign_collector::store::PgStore;
    use vitalsign_collector::store::pg::alerts::{CLAIM_MS, MOST_CLAIMED};

    use super::*;

    struct Replicas {
        a: Store,
        b: Store,
        a_name: String,
        _db: vitalsign_test_support::pg::TestDb,
    }

    async fn two_replicas() -> Replicas {
        let db = vitalsign_test_support::pg::test_db();
        let a = PgStore::connect(&db.url).await.unwrap();
        let b = PgStore::connect(&db.url).await.unwrap();
        assert_ne!(a.replica(), b.replica());
        let a_name = a.replica().to_string();
        Replicas {
            a: Store::new(Arc::new(a), Clock::fixed(T0)),
            b: Store::new(Arc::new(b), Clock::fixed(T0)),
            a_name,
            _db: db,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_replica_holds_the_lease_and_another_takes_it_after_the_ttl() {
        let Replicas { a, b, a_name, _db } = two_replicas().await;
        const SHORT_TTL_MS: i64 = 1_000;
        let term = a.evaluator_lease(SHORT_TTL_MS).await.unwrap().unwrap();
        assert_eq!(b.evaluator_lease(SHORT_TTL_MS).await.unwrap(), None);
        assert_eq!(b.lease_holder(), Some((a_name.clone(), term)));
        assert_eq!(a.lease_holder(), Some((a_name.clone(), term)));

        // The holder renews past the first TTL and keeps the lease.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(SHORT_TTL_MS as u64 / 2)).await;
            assert_eq!(a.evaluator_lease(SHORT_TTL_MS).await.unwrap(), Some(term));
            assert_eq!(b.evaluator_lease(SHORT_TTL_MS).await.unwrap(), None);
        }

        // `a` evaluates, then stalls past the TTL before it writes.
        let firing = record("/checkout", State::Firing);
        let eval = || Evaluation {
            records: vec![firing.clone()],
            transitions: vec![transition(&firing, State::Pending, T0)],
            outbox: vec![message(1, &[&firing], T0)],
            evaluated: 1,
        };
        tokio::time::sleep(Duration::from_millis(SHORT_TTL_MS as u64 + 200)).await;
        let taken = b.evaluator_lease(SHORT_TTL_MS).await.unwrap();
        assert_eq!(
            taken,
            Some(term + 1),
            "an expired lease is taken with term + 1"
        );
        let b_name = b.lease_holder().unwrap().0;
        assert_ne!(b_name, a_name);
        assert_eq!(a.evaluator_lease(SHORT_TTL_MS).await.unwrap(), None);
        assert_eq!(a.lease_holder(), Some((b_name, term + 1)));

        // The old holder's evaluation is refused whole, under its old term
        // and under the new one alike (the new term is not its).
        for t in [term, term + 1] {
            assert!(matches!(
                a.record_evaluation(eval(), T0, t).await,
                Err(StoreError::Conflict(_))
            ));
        }
        assert!(b.alert_records().await.unwrap().is_empty());
        assert!(b.transitions(None, 0, 10).await.unwrap().is_empty());
        assert!(b.outbox_all().await.unwrap().is_empty());
        // The new holder's is written.
        b.record_evaluation(eval(), T0, term + 1).await.unwrap();
        assert_eq!(a.alert_records().await.unwrap().len(), 1);
        assert_eq!(a.outbox_all().await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_lease_holder_evaluates() {
        let Replicas { a, b, _db, .. } = two_replicas().await;
        let config = Arc::new(CollectorConfig::default());
        let metrics = Arc::new(Metrics::default());
        let mut on_a = Evaluator::new(a.clone(), config.clone(), metrics.clone());
        let mut on_b = Evaluator::new(b.clone(), config, metrics);
        // An empty database evaluates to nothing, but the whole tick runs:
        // lease, snapshot, silences, states.
        let eval = on_a.tick(T0).await.unwrap();
        assert!(eval.records.is_empty() && eval.outbox.is_empty());
        assert!(matches!(on_b.tick(T0).await, Err(StoreError::Conflict(_))));
        assert!(on_a.lease().await.unwrap().is_some());
        assert_eq!(on_b.lease().await.unwrap(), None);
    }

    /// The evaluator tasks themselves: both ask for the lease every third of
    /// the TTL; one holds it and keeps it, and when its task stops the
    /// other takes over within the TTL (and a third of it) under term + 1.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_evaluator_tasks_keep_one_holder_and_hand_over_when_it_stops() {
        use tokio_util::sync::CancellationToken;
        use vitalsign_collector::alerts::evaluator;

        let Replicas { a, b, a_name, _db } = two_replicas().await;
        let mut config = CollectorConfig::default();
        config.alerts.lease_ttl_secs = 1;
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
        let task_a = tokio::spawn(evaluator::run(
            Evaluator::new(a.clone(), config.clone(), metrics.clone()),
            stop_a.clone(),
        ));
        // `a` starts first and takes the lease.
        let held = async |store: &Store, name: &str| {
            for _ in 0..100 {
                if let Some((holder, term)) = store.lease_holder()
                    && holder == name
                {
                    return term;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("{name} did not take the lease: {:?}", store.lease_holder());
        };
        let term = held(&a, &a_name).await;
        let task_b = tokio::spawn(evaluator::run(
            Evaluator::new(b.clone(), config, metrics),
            stop_b.clone(),
        ));
        // Three TTLs later `a` still holds it under the same term.
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(b.lease_holder(), Some((a_name.clone(), term)));
        assert_eq!(a.lease_holder(), Some((a_name.clone(), term)));

        stop_a.cancel();
        task_a.await.unwrap();
        let stopped = std::time::Instant::now();
        let b_name = loop {
            match b.lease_holder() {
                Some((holder, t)) if holder != a_name => {
                    assert_eq!(t, term + 1);
                    break holder;
                }
                _ => {}
            }
            assert!(
                stopped.elapsed() < Duration::from_millis(1_000 + 333 + 500),
                "no takeover within the TTL: {:?}",
                b.lease_holder()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_ne!(b_name, a_name);
        stop_b.cancel();
        task_b.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claimed_email_is_not_handed_out_twice() {
        let Replicas { a, b, _db, .. } = two_replicas().await;
        let term = a.evaluator_lease(TTL_MS).await.unwrap().unwrap();
        a.record_evaluation(emails(6), T0, term).await.unwrap();

        // Both claim at once: disjoint sets (here one gets the queue's head
        // and the other stops before it, so order holds).
        let (x, y) = tokio::join!(a.claim_outbox(T0, 4), b.claim_outbox(T0, 4));
        let (x, y) = (x.unwrap(), y.unwrap());
        let mut both: Vec<i64> = x.iter().chain(&y).map(|r| r.seq).collect();
        both.sort();
        let n = both.len();
        both.dedup();
        assert_eq!(both.len(), n, "a row claimed twice: {x:?} {y:?}");
        assert_eq!(n, 4, "the first four rows, by one replica");
        let (holder, other) = if x.is_empty() { (&b, &a) } else { (&a, &b) };
        let claimed: Vec<i64> = x.iter().chain(&y).map(|r| r.seq).collect();

        // Before the claimant records anything, nobody gets more.
        assert!(other.claim_outbox(T0 + 1, 10).await.unwrap().is_empty());
        assert!(holder.claim_outbox(T0 + 1, 10).await.unwrap().is_empty());
        // Recorded: the claim is released and the rest are handed out.
        for seq in &claimed {
            holder
                .record_delivery(*seq, Delivery::Sent, T0 + 2)
                .await
                .unwrap();
        }
        let rest = other.claim_outbox(T0 + 3, 10).await.unwrap();
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|r| !claimed.contains(&r.seq)));
        // The claimant "crashes": after the claim expires the rows come back,
        // the k-th after k × CLAIM_MS (it was to be sent after k − 1 others).
        assert!(holder.claim_outbox(T0 + 4, 10).await.unwrap().is_empty());
        let back = holder.claim_outbox(T0 + 3 + CLAIM_MS, 10).await.unwrap();
        assert_eq!(
            back.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [rest[0].seq]
        );
        let back = other.claim_outbox(T0 + 3 + 2 * CLAIM_MS, 10).await.unwrap();
        assert_eq!(
            back.iter().map(|r| r.seq).collect::<Vec<_>>(),
            rest.iter().map(|r| r.seq).collect::<Vec<_>>()
        );
    }

    /// A claim hands out at most `MOST_CLAIMED` rows, and holds each for
    /// the sends before it: a slow server does not let another replica take
    /// a row the claimant has yet to send.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_holds_each_row_for_the_sends_before_it() {
        let Replicas { a, b, _db, .. } = two_replicas().await;
        let term = a.evaluator_lease(TTL_MS).await.unwrap().unwrap();
        a.record_evaluation(emails(10), T0, term).await.unwrap();
        let claimed = a.claim_outbox(T0, 32).await.unwrap();
        assert_eq!(claimed.len(), MOST_CLAIMED as usize);
        // `a` sends the first three slowly, one CLAIM_MS each: `b` gets none
        // of what `a` still holds, nor what queues behind it.
        for (k, row) in claimed.iter().take(3).enumerate() {
            let now = T0 + k as i64 * CLAIM_MS + CLAIM_MS - 1;
            assert!(b.claim_outbox(now, 32).await.unwrap().is_empty(), "{k}");
            a.record_delivery(row.seq, Delivery::Sent, now)
                .await
                .unwrap();
        }
        assert_eq!(a.outbox_stats().await.unwrap().sent, 3);
    }

    /// Four senders on two replicas drain one queue: every email is sent
    /// exactly once, and in queue order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_send_each_email_once_in_order() {
        let Replicas { a, b, _db, .. } = two_replicas().await;
        let term = a.evaluator_lease(TTL_MS).await.unwrap().unwrap();
        const EMAILS: usize = 40;
        a.record_evaluation(emails(EMAILS), T0, term).await.unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut senders = Vec::new();
        for store in [&a, &b, &a, &b] {
            let (store, sent) = (store.clone(), sent.clone());
            senders.push(tokio::spawn(async move {
                loop {
                    let rows = store.claim_outbox(T0, 3).await.unwrap();
                    for r in &rows {
                        sent.lock().unwrap().push(r.seq);
                        store
                            .record_delivery(r.seq, Delivery::Sent, T0)
                            .await
                            .unwrap();
                    }
                    if rows.is_empty() && store.outbox_stats().await.unwrap().pending == 0 {
                        break;
                    }
                    if rows.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }));
        }
        for s in senders {
            s.await.unwrap();
        }
        let sent = sent.lock().unwrap().clone();
        let all: Vec<i64> = a
            .outbox_all()
            .await
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(sent, all, "each once, in queue order");
        assert_eq!(a.outbox_stats().await.unwrap().sent, EMAILS as i64);
    }
}
