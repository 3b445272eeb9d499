//! Queries and the dashboard's reads.

use vitalsign_collector::store::Store;
use vitalsign_core::metric::Metric;

use crate::*;

contract!(the_site_choices_come_from_field_data_with_lcp_or_fcp);

pub async fn the_site_choices_come_from_field_data_with_lcp_or_fcp(store: &Store) {
    assert_eq!(store.readiness(0), Ok(()));
    store.ping().await.unwrap();
    store.maintain().await.unwrap();
    assert!(store.dimensions().await.unwrap().sites.is_empty());
    store
        .append_page_views(vec![page_view("pv-cls", Metric::Cls, 0.1, T0)])
        .await
        .unwrap();
    assert!(
        store.dimensions().await.unwrap().sites.is_empty(),
        "a CLS alone makes no site choice"
    );
    store
        .append_page_views(vec![page_view(
            "pv-lcp",
            Metric::Lcp,
            1800.0,
            T0 + 2 * DAY_MS,
        )])
        .await
        .unwrap();
    assert_eq!(store.dimensions().await.unwrap().sites, ["shop"]);
}
