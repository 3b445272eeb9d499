//! Reads (STUB: helper B replaces this file).

use vitalsign_core::metric::Metric;

use super::PgStore;
use crate::store::StoreError;
use crate::store::attribution::{AttributionKind, AttributionRank};
use crate::store::query::{Breakdown, Filter, PageRank, SeriesPoint, Summary};
use crate::store::views::Dimensions;

pub async fn summary(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _filter: &Filter,
) -> Result<Summary, StoreError> {
    todo!()
}

pub async fn raw_values(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _filter: &Filter,
) -> Result<Vec<f64>, StoreError> {
    todo!()
}

pub async fn series(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _bucket_ms: i64,
    _filter: &Filter,
) -> Result<Vec<SeriesPoint>, StoreError> {
    todo!()
}

#[allow(clippy::too_many_arguments)]
pub async fn breakdown(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _bucket_ms: i64,
    _previous: bool,
    _filter: &Filter,
) -> Result<Breakdown, StoreError> {
    todo!()
}

#[allow(clippy::too_many_arguments)]
pub async fn breakdowns(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _bucket_ms: i64,
    _previous: bool,
    _filter: &Filter,
    _by_site: bool,
) -> Result<Vec<(String, Breakdown)>, StoreError> {
    todo!()
}

pub async fn top_pages(
    _s: &PgStore,
    _metric: Metric,
    _from_ms: i64,
    _to_ms: i64,
    _filter: &Filter,
    _limit: usize,
) -> Result<Vec<PageRank>, StoreError> {
    todo!()
}

#[allow(clippy::too_many_arguments)]
pub async fn top_attribution(
    _s: &PgStore,
    _metric: Metric,
    _kind: AttributionKind,
    _from_ms: i64,
    _to_ms: i64,
    _filter: &Filter,
    _limit: usize,
) -> Result<Vec<AttributionRank>, StoreError> {
    todo!()
}

pub async fn dimensions(_s: &PgStore) -> Result<Dimensions, StoreError> {
    todo!()
}
