//! Runs, artifacts, flow health (STUB: helper B replaces this file).

use vitalsign_core::wire::ProbeRun;

use super::PgStore;
use crate::store::StoreError;
use crate::store::flows::FlowHealth;

pub async fn recent_runs(
    _s: &PgStore,
    _flow: Option<String>,
    _location: Option<String>,
    _outcome: Option<String>,
    _since_ms: Option<i64>,
    _limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    todo!()
}

pub async fn artifact(
    _s: &PgStore,
    _run_id: &str,
    _name: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    todo!()
}

pub async fn runs_page(
    _s: &PgStore,
    _flow: Option<String>,
    _location: Option<String>,
    _offset: usize,
    _limit: usize,
) -> Result<(Vec<ProbeRun>, bool), StoreError> {
    todo!()
}

pub async fn count_runs(
    _s: &PgStore,
    _flow: Option<String>,
    _location: Option<String>,
) -> Result<u64, StoreError> {
    todo!()
}

pub async fn run(_s: &PgStore, _run_id: &str) -> Result<Option<(ProbeRun, i64)>, StoreError> {
    todo!()
}

pub async fn runs_before(
    _s: &PgStore,
    _flow: &str,
    _location: &str,
    _before_ms: i64,
    _limit: usize,
) -> Result<Vec<ProbeRun>, StoreError> {
    todo!()
}

pub async fn latest_runs(_s: &PgStore, _limit: usize) -> Result<Vec<ProbeRun>, StoreError> {
    todo!()
}

pub async fn stored_artifacts(
    _s: &PgStore,
    _run_id: &str,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    todo!()
}

pub async fn flow_health(
    _s: &PgStore,
    _now_ms: i64,
    _since_ms: i64,
) -> Result<Vec<FlowHealth>, StoreError> {
    todo!()
}
