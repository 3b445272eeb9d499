//! Building and running the collector: the same path for `main` and the tests
//! (port 0, temp database), as zero2prod's `Application` does.
//!
//! Shutdown is one [`CancellationToken`]: `main` cancels it on SIGTERM or
//! SIGINT, a test when it is done. The server, the alert evaluator, the
//! outbox worker, the pruner and the checkpointer all watch it and are tasks
//! of one [`TaskTracker`], so stopping is "cancel, then wait for the tracker"
//! (bounded), never an `abort` in the middle of a write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::alerts::evaluator::{self, Evaluator};
use crate::alerts::outbox::{self, OutboxWorker};
use crate::clock::Clock;
use crate::config::CollectorConfig;
use crate::http::{self, AppState, ops::SnippetAsset};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::{Store, WriteOutcome};

/// How long a collector waits at startup for its PostgreSQL to answer
/// (started beside it by compose or Kubernetes) before it gives up.
const DATABASE_STARTUP_WAIT: Duration = Duration::from_secs(60);

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// Present when `smtp.host` is set; built here so a bad TLS setup fails at start.
    outbox: Option<OutboxWorker>,
}

impl Application {
    /// Open the database (migrating it) and bind the listener.
    pub async fn build(config: CollectorConfig) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// [`Application::build`] with `clock` as "now" for everything the
    /// collector does (tests drive a fixed one).
    pub async fn build_with_clock(
        config: CollectorConfig,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        let store = Store::connect(&config.db, clock, DATABASE_STARTUP_WAIT)
            .await
            .with_context(|| format!("opening the database {} (key `db`)", config.db))?;
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {} (key `listen` / --listen)", config.listen))?;
        let metrics = Arc::new(Metrics::default());
        let outbox = if config.smtp.enabled() {
            Some(
                OutboxWorker::new(store.clone(), config.smtp.clone(), metrics.clone())
                    .map_err(anyhow::Error::msg)
                    .context("setting up the SMTP transport (key `smtp`)")?,
            )
        } else {
            None
        };
        let state = AppState {
            limiter: Arc::new(RateLimiter::new(
                config.rate_limit_per_second,
                config.rate_limit_burst,
            )),
            sessions: Arc::new(crate::dashboard::session::Sessions::new(&config)),
            config: Arc::new(config),
            store,
            metrics,
            snippet: Arc::new(SnippetAsset::new()),
        };
        Ok(Application {
            listener,
            state,
            outbox,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serve until `shutdown` is cancelled, then stop accepting, let
    /// in-flight requests finish (each is answered only after its write
    /// committed) and the background tasks finish what they are writing or
    /// sending.
    pub async fn run_until_cancelled(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        info!("listening on http://{addr}");
        let background = TaskTracker::new();
        background.spawn(prune_forever(self.state.clone(), shutdown.clone()));
        background.spawn(checkpoint_forever(
            self.state.store.clone(),
            shutdown.clone(),
        ));
        if self.state.config.alerts.enabled {
            let evaluator = Evaluator::new(
                self.state.store.clone(),
                self.state.config.clone(),
                self.state.metrics.clone(),
            );
            background.spawn(evaluator::run(evaluator, shutdown.clone()));
        }
        if let Some(worker) = self.outbox {
            background.spawn(outbox::run(worker, shutdown.clone()));
        }
        background.close();
        let app = http::router(self.state.clone());
        let served = crate::server::serve(
            self.listener,
            app,
            self.state.config.connections.clone(),
            shutdown,
        )
        .await
        .context("serving HTTP");
        // An SMTP conversation in flight is bounded by its timeout; a prune
        // slice or checkpoint by the database.
        let drain = Duration::from_secs(self.state.config.smtp.timeout_secs + 5);
        if tokio::time::timeout(drain, background.wait())
            .await
            .is_err()
        {
            warn!(
                left = background.len(),
                "background tasks did not stop within {drain:?}; leaving them"
            );
        }
        served?;
        info!("stopped; every acknowledged write is committed");
        Ok(())
    }
}

/// Delete raw rows and runs past the retention window, on an interval. Each
/// write deletes one slice (`writer::PRUNE_SLICE` rows), and the next is
/// queued only when it is answered, so ingest batches run between slices and
/// pruning a day of rows never holds the writer for long.
async fn prune_forever(state: AppState, shutdown: CancellationToken) {
    let every = Duration::from_secs(state.config.prune_interval_secs);
    let retention_ms = i64::from(state.config.retention_days) * 86_400_000;
    let clock = state.store.clock.clone();
    while !shutdown.is_cancelled() {
        let before_ms = state.store.clock.now_ms() - retention_ms;
        let (mut rows, mut runs) = (0, 0);
        // Between slices too: a long prune does not hold up the shutdown.
        while !shutdown.is_cancelled() {
            match state.store.prune(before_ms).await {
                Ok(WriteOutcome::Pruned {
                    rows: r,
                    runs: n,
                    more,
                }) => {
                    rows += r;
                    runs += n;
                    if !more {
                        info!(rows, runs, "retention pruning done");
                        break;
                    }
                }
                Ok(other) => {
                    warn!(?other, "retention pruning: unexpected answer");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, rows, runs, "retention pruning failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = clock.sleep(every) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

/// Keep the WAL bounded: a truncating checkpoint every minute (see
/// `Store::checkpoint`); a failure is logged and retried at the next tick.
async fn checkpoint_forever(store: crate::store::Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        if let Err(e) = store.maintain().await {
            crate::store::health::error_limited("WAL checkpoint failed", &e.to_string())
        }
    }
}
