//! The outbox worker: sends queued alert emails in order, with exponential
//! backoff on temporary failures (SMTP 4xx, refused connections, timeouts) and
//! a dead-letter status for permanent ones (5xx), recorded in the database so
//! a restart neither loses nor repeats a message.
//!
//! Each message is marked sent right after the server accepted it. A crash in
//! the milliseconds between the server's `250` and that commit would resend it
//! once; the Message-ID stays the same, so mail clients show it once.

use std::sync::Arc;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::email::{self, SendError};
use super::evaluator::refresh_outbox_metrics;
use crate::config::SmtpConfig;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::alerts::{Delivery, OutboxRow};

/// Delay before attempt `attempts + 1`: `initial × 2^attempts`, at most `max`.
pub fn backoff_ms(smtp: &SmtpConfig, attempts: i64) -> i64 {
    let factor = 2f64.powi(attempts.clamp(0, 30) as i32);
    ((smtp.retry_initial_secs * factor).min(smtp.retry_max_secs) * 1000.0) as i64
}

pub struct OutboxWorker {
    store: Store,
    smtp: SmtpConfig,
    metrics: Arc<Metrics>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl OutboxWorker {
    pub fn new(store: Store, smtp: SmtpConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let transport = email::transport(&smtp)?;
        Ok(OutboxWorker {
            store,
            smtp,
            metrics,
            transport,
        })
    }

    /// Deliver what is due now; returns how many attempts were made.
    pub async fn deliver_due(&self, now_ms: i64) -> usize {
        let due = match self.store.claim_outbox(now_ms, 32).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "reading the outbox failed");
                return 0;
            }
        };
        let mut attempts = 0;
        for row in due {
            attempts += 1;
            // After a temporary failure the rest waits too: order is kept, and
            // the server that just failed would most likely fail them as well.
            if !self.attempt(row).await {
                break;
            }
        }
        attempts
    }

    /// One delivery attempt, recorded; false when it is to be retried later.
    async fn attempt(&self, row: OutboxRow) -> bool {
        let result = email::send(&self.transport, &self.smtp.from, &row.message).await;
        let now_ms = self.store.clock.now_ms();
        let am = &self.metrics.alerts;
        let outcome = match result {
            Ok(()) => {
                am.notifications_sent.inc();
                info!(message_id = %row.message.message_id, subject = %row.message.subject, attempts = row.attempts + 1, "alert email sent");
                Delivery::Sent
            }
            Err(SendError::Permanent(error)) => {
                am.notifications_dead.inc();
                warn!(message_id = %row.message.message_id, %error, "alert email refused permanently; dead-lettered");
                Delivery::Dead { error }
            }
            Err(SendError::Temporary(error)) => {
                am.delivery_retries.inc();
                let wait = backoff_ms(&self.smtp, row.attempts);
                warn!(message_id = %row.message.message_id, %error, retry_in_ms = wait, "alert email delivery failed; will retry");
                Delivery::Retry {
                    next_attempt_ms: now_ms + wait,
                    error,
                }
            }
        };
        let retry = matches!(outcome, Delivery::Retry { .. });
        let seq = row.seq;
        let write = self.store.record_delivery(seq, outcome, now_ms).await;
        if let Err(e) = write {
            warn!(error = %e, seq, "recording an email delivery failed");
        }
        !retry
    }
}

/// Poll the outbox every `smtp.poll_ms` of the store's clock until
/// `shutdown` is cancelled; a message being sent then is finished first
/// (bounded by `smtp.timeout_secs`).
pub async fn run(worker: OutboxWorker, shutdown: CancellationToken) {
    let every = Duration::from_millis(worker.smtp.poll_ms);
    let clock = worker.store.clock.clone();
    while !shutdown.is_cancelled() {
        worker.deliver_due(clock.now_ms()).await;
        refresh_outbox_metrics(&worker.store, &worker.metrics).await;
        tokio::select! {
            () = clock.sleep(every) => {}
            () = shutdown.cancelled() => break,
        }
    }
}
