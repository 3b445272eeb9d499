//! Alerts, silences, lease, outbox (STUB: helper C replaces this file).

use std::collections::BTreeMap;

use super::PgStore;
use crate::alerts::engine::{Evaluation, Snapshot};
use crate::alerts::silences::Silence;
use crate::alerts::state::AlertRecord;
use crate::store::alerts::{Delivery, OutboxRow, OutboxStats, StoredState, TransitionView};
use crate::store::{StoreError, WriteOutcome};

#[derive(Debug, Default)]
pub struct LeaseState {}

pub async fn alert_records(_s: &PgStore) -> Result<BTreeMap<String, AlertRecord>, StoreError> {
    todo!()
}

pub async fn alert_snapshot(
    _s: &PgStore,
    _hours: Option<(i64, i64)>,
    _runs_since_ms: i64,
) -> Result<Snapshot, StoreError> {
    todo!()
}

pub async fn record_evaluation(
    _s: &PgStore,
    _evaluation: Evaluation,
    _now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn prune_alerts(_s: &PgStore, _before_ms: i64) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn alert_states(
    _s: &PgStore,
    _state: Option<String>,
) -> Result<Vec<StoredState>, StoreError> {
    todo!()
}

pub async fn alert_counts(_s: &PgStore) -> Result<Vec<(String, u64)>, StoreError> {
    todo!()
}

pub async fn alerts_in_state(
    _s: &PgStore,
    _state: &str,
    _offset: usize,
    _limit: usize,
) -> Result<Vec<StoredState>, StoreError> {
    todo!()
}

pub async fn alert(_s: &PgStore, _id: &str) -> Result<Option<StoredState>, StoreError> {
    todo!()
}

pub async fn transitions(
    _s: &PgStore,
    _alert: Option<String>,
    _since_ms: i64,
    _limit: i64,
) -> Result<Vec<TransitionView>, StoreError> {
    todo!()
}

pub async fn acknowledge(
    _s: &PgStore,
    _id: &str,
    _by: &str,
    _now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn silences(_s: &PgStore, _now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    todo!()
}

pub async fn add_silence(_s: &PgStore, _silence: Silence) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn end_silence(_s: &PgStore, _id: &str) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn claim_outbox(
    _s: &PgStore,
    _now_ms: i64,
    _limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    todo!()
}

pub async fn record_delivery(
    _s: &PgStore,
    _seq: i64,
    _outcome: Delivery,
    _now_ms: i64,
) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn dead_letters(_s: &PgStore, _limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    todo!()
}

pub async fn outbox_for_alert(
    _s: &PgStore,
    _alert_id: &str,
    _limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    todo!()
}

pub async fn outbox_all(_s: &PgStore) -> Result<Vec<OutboxRow>, StoreError> {
    todo!()
}

pub async fn outbox_stats(_s: &PgStore) -> Result<OutboxStats, StoreError> {
    todo!()
}
