//! Page views, re-reports and retention.

use vitalsign_collector::store::query::Filter;
use vitalsign_collector::store::{NewRun, Store, WriteOutcome};
use vitalsign_core::metric::Metric;

use crate::*;

contract!(
    re_reports_replace_and_a_batch_is_stored_whole,
    pruning_deletes_raw_rows_and_runs_before_the_cut_only,
);

pub async fn re_reports_replace_and_a_batch_is_stored_whole(store: &Store) {
    let t = T0 + HOUR_MS;
    store
        .append_page_views(vec![page_view("pv-1", Metric::Cls, 0.05, t)])
        .await
        .unwrap();
    // CLS grows; the snippet reports it again for the same page view.
    store
        .append_page_views(vec![page_view("pv-1", Metric::Cls, 0.3, t)])
        .await
        .unwrap();
    assert_eq!(cls_values(store, t - HOUR_MS, t + HOUR_MS).await, [0.3]);
    // Several page views in one call, one of them a re-report again.
    store
        .append_page_views(vec![
            page_view("pv-2", Metric::Cls, 0.01, t),
            page_view("pv-3", Metric::Cls, 0.02, t + 1),
            page_view("pv-1", Metric::Cls, 0.4, t),
        ])
        .await
        .unwrap();
    assert_eq!(
        cls_values(store, t - HOUR_MS, t + HOUR_MS).await,
        [0.01, 0.02, 0.4]
    );
    let summary = store
        .summary(Metric::Cls, t - HOUR_MS, t + HOUR_MS, &Filter::default())
        .await
        .unwrap();
    assert_eq!(summary.count, 3);
    // Over more than a few hours the answer comes from the rollups, which
    // moved pv-1's count instead of adding to it.
    let rolled = store
        .summary(Metric::Cls, t - 2 * DAY_MS, t + DAY_MS, &Filter::default())
        .await
        .unwrap();
    assert_eq!((rolled.resolution, rolled.count), ("rollup", 3));
}

pub async fn pruning_deletes_raw_rows_and_runs_before_the_cut_only(store: &Store) {
    let cut = T0 + DAY_MS;
    store
        .append_page_views(vec![
            page_view("pv-old", Metric::Cls, 0.11, T0),
            page_view("pv-new", Metric::Cls, 0.12, cut + HOUR_MS),
        ])
        .await
        .unwrap();
    let mut old_run = fixture_run();
    old_run.run_id = "r-old".into();
    old_run.artifacts.clear();
    store
        .record_run(NewRun {
            run: old_run,
            page_view_groups: Vec::new(),
            received_ms: T0,
        })
        .await
        .unwrap();
    let before = cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS).await.len();
    assert!(before >= 1);
    let mut pruned = (0, 0);
    loop {
        match store.prune(cut).await.unwrap() {
            WriteOutcome::Pruned { rows, runs, more } => {
                pruned = (pruned.0 + rows, pruned.1 + runs);
                if !more {
                    break;
                }
            }
            other => panic!("prune answered {other:?}"),
        }
    }
    assert!(pruned.0 >= before && pruned.1 >= 1, "{pruned:?}");
    assert!(
        cls_values(store, T0 - HOUR_MS, T0 + HOUR_MS)
            .await
            .is_empty()
    );
    assert_eq!(
        cls_values(store, cut, cut + 2 * HOUR_MS).await,
        [0.12],
        "rows after the cut stay"
    );
    assert_eq!(store.run("r-old").await.unwrap(), None);
}
