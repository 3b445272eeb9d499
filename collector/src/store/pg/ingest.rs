//! The per-replica writer (STUB: helper A replaces this file).

use std::sync::Arc;

use deadpool_postgres::Pool;

use super::PgStore;
use crate::store::storage::{NewArtifact, NewPageView, NewRun};
use crate::store::writer::WriterStats;
use crate::store::{StoreError, WriteOutcome};

#[derive(Clone)]
pub struct PgWriter {
    pub stats: Arc<WriterStats>,
}

impl PgWriter {
    pub fn start(_pool: Pool, _retention_days: u32) -> PgWriter {
        todo!()
    }

    pub async fn append_page_views(&self, _views: Vec<NewPageView>) -> Result<(), StoreError> {
        todo!()
    }

    pub async fn record_run(&self, _run: NewRun) -> Result<WriteOutcome, StoreError> {
        todo!()
    }

    pub fn queue_depth(&self) -> usize {
        todo!()
    }
}

pub async fn record_artifact(_s: &PgStore, _a: NewArtifact) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn prune(_s: &PgStore, _before_ms: i64) -> Result<WriteOutcome, StoreError> {
    todo!()
}

pub async fn maintain(_s: &PgStore) -> Result<(), StoreError> {
    todo!()
}
