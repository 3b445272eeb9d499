//! `request` steps: plain HTTP checks with reqwest, no browser.

use std::time::{Duration, Instant};

use vitalsign_core::wire::run::{Outcome, Step as StepResult};

use crate::flow::{Flow, Request};
use crate::step_result::{self, StepError};

/// Run one request step: its result, and why it did not pass. Failures say
/// what was expected and what came back. Header and body values that came
/// from `${env:…}` never appear in the result.
pub async fn run_request(
    client: &reqwest::Client,
    flow: &Flow,
    name: &str,
    request: &Request,
    timeout: Duration,
) -> (StepResult, Result<(), StepError>) {
    let started = Instant::now();
    let mut step = step_result::new(name, "request", Outcome::Pass);
    step.url = vitalsign_core::wire::run::page_url(&flow.url(&request.url));
    step.requests = 1;
    let result = check(client, flow, request, timeout, &mut step).await;
    step.duration_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    if let Err(error) = &result {
        step_result::record_failure(&mut step, error);
    }
    (step, result)
}

async fn check(
    client: &reqwest::Client,
    flow: &Flow,
    request: &Request,
    timeout: Duration,
    step: &mut StepResult,
) -> Result<(), StepError> {
    let url = flow.url(&request.url);
    // Flow validation accepts only the methods reqwest knows.
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| StepError::Request(format!("method {}: {e}", request.method)))?;
    let mut builder = client.request(method, &url).timeout(timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name, value.resolve().map_err(StepError::Secret)?);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.resolve().map_err(StepError::Secret)?);
    }
    check_response(request, &url, timeout, builder, step)
        .await
        .map_err(StepError::Request)
}

/// Send the request and judge the answer; every failure here is the site's.
async fn check_response(
    request: &Request,
    url: &str,
    timeout: Duration,
    builder: reqwest::RequestBuilder,
    step: &mut StepResult,
) -> Result<(), String> {
    let started = Instant::now();
    let response = builder.send().await.map_err(|e| {
        step.failed_requests = 1;
        if e.is_timeout() {
            format!("{} {url}: no answer within {timeout:?}", request.method)
        } else {
            format!("{} {url}: {}", request.method, root_cause(&e))
        }
    })?;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    step.status = Some(status);
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body of {url}: {}", root_cause(&e)))?;
    step.transfer_bytes = body.len() as u64;
    if let Some(expected) = request.expect_status
        && status != expected
    {
        return Err(format!("status {status}, expected {expected}"));
    }
    if request.expect_status.is_none() && status >= 400 {
        return Err(format!("status {status}"));
    }
    if let Some(needle) = &request.expect_body_contains {
        let text = String::from_utf8_lossy(&body);
        if !text.contains(needle.as_str()) {
            let head: String = text.chars().take(120).collect();
            return Err(format!(
                "body does not contain {needle:?} (starts with {head:?})"
            ));
        }
    }
    for (name, expected) in &request.expect_headers {
        let actual = headers.get(name).and_then(|v| v.to_str().ok());
        if actual != Some(expected.as_str()) {
            return Err(format!(
                "header {name} is {actual:?}, expected {expected:?}"
            ));
        }
    }
    if let Some(max) = request.max_latency
        && latency > max
    {
        return Err(format!(
            "answered in {} ms, more than the {} ms allowed",
            latency.as_millis(),
            max.as_millis()
        ));
    }
    Ok(())
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        deepest = e.to_string();
        source = e.source();
    }
    deepest
}
