//! Requests, bytes, failures and console errors counted from a page's CDP events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    ResourceType,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::Page;
use futures::StreamExt;

use super::browser::InfraError;

#[derive(Debug, Default, Clone)]
pub(super) struct Counters {
    in_flight: i64,
    last_activity: Option<Instant>,
    pub(super) document_status: Option<u16>,
    pub(super) step_requests: u32,
    pub(super) step_bytes: u64,
    pub(super) step_failed: u32,
    pub(super) step_console_errors: u32,
}

impl Counters {
    pub(super) fn start_step(&mut self) {
        self.step_requests = 0;
        self.step_bytes = 0;
        self.step_failed = 0;
        self.step_console_errors = 0;
    }
}

/// Count requests, bytes, failures and console errors from CDP events.
pub(super) async fn listen(
    page: &Page,
    counters: Arc<std::sync::Mutex<Counters>>,
) -> Result<tokio::task::JoinHandle<()>, InfraError> {
    let err = |e: chromiumoxide::error::CdpError| InfraError::Cdp {
        what: "subscribing to page events".into(),
        reason: e.to_string(),
    };
    let mut sent = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .map_err(err)?;
    let mut responses = page
        .event_listener::<EventResponseReceived>()
        .await
        .map_err(err)?;
    let mut finished = page
        .event_listener::<EventLoadingFinished>()
        .await
        .map_err(err)?;
    let mut failed = page
        .event_listener::<EventLoadingFailed>()
        .await
        .map_err(err)?;
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .map_err(err)?;
    let mut exceptions = page
        .event_listener::<EventExceptionThrown>()
        .await
        .map_err(err)?;
    Ok(tokio::spawn(async move {
        loop {
            let now = Instant::now();
            tokio::select! {
                Some(_) = sent.next() => { let mut c = counters.lock().unwrap(); c.in_flight += 1; c.step_requests += 1; c.last_activity = Some(now); }
                Some(e) = responses.next() => {
                    if e.r#type == ResourceType::Document {
                        counters.lock().unwrap().document_status = u16::try_from(e.response.status).ok();
                    }
                }
                Some(e) = finished.next() => { let mut c = counters.lock().unwrap(); c.in_flight -= 1; c.step_bytes += e.encoded_data_length.max(0.0) as u64; c.last_activity = Some(now); }
                Some(_) = failed.next() => { let mut c = counters.lock().unwrap(); c.in_flight -= 1; c.step_failed += 1; c.last_activity = Some(now); }
                Some(e) = console.next() => { if e.r#type == ConsoleApiCalledType::Error { counters.lock().unwrap().step_console_errors += 1; } }
                Some(_) = exceptions.next() => { counters.lock().unwrap().step_console_errors += 1; }
                else => break,
            }
        }
    }))
}

/// No request in flight for `quiet`, bounded by the step timeout around it.
pub(super) async fn wait_network_idle(counters: &Arc<std::sync::Mutex<Counters>>, quiet: Duration) {
    loop {
        let (in_flight, last) = {
            let c = counters.lock().unwrap();
            (c.in_flight, c.last_activity)
        };
        if in_flight <= 0 && last.is_none_or(|t| t.elapsed() >= quiet) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
