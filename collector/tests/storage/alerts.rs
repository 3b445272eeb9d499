//! Alert states, silences, acknowledgements, the outbox.

use vitalsign_collector::alerts::silences::{Matchers, Silence};
use vitalsign_collector::store::{Store, StoreError};

use crate::*;

contract!(silences_and_acknowledgements_answer_with_typed_errors);

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
