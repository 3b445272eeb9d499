//! What each step kind does in the page: real CDP input, waits and assertions.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::Page;

use super::Runner;
use super::network::{Counters, wait_network_idle};
use crate::flow::{Action, Assertion, Flow, WaitFor};

impl Runner {
    pub(super) async fn act(
        &self,
        page: &Page,
        flow: &Flow,
        action: &Action,
        counters: &Arc<std::sync::Mutex<Counters>>,
    ) -> Result<(), String> {
        match action {
            Action::Goto(target) => {
                let url = flow.url(target);
                page.goto(url.as_str())
                    .await
                    .map_err(|e| format!("could not open {url}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(300)).await;
                let status = counters.lock().unwrap().document_status;
                match status {
                    Some(s) if s >= 400 => Err(format!("{url} answered {s}")),
                    _ => Ok(()),
                }
            }
            Action::Click(selector) => {
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| format!("could not click {selector}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Type { selector, text } => {
                let value = text.resolve()?;
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| format!("could not focus {selector}: {e}"))?;
                // The error must not echo the text: it may be a secret.
                element
                    .type_str(value)
                    .await
                    .map_err(|_| format!("could not type into {selector}"))?;
                Ok(())
            }
            Action::Press(key) => {
                crate::input::press(page, key)
                    .await
                    .map_err(|e| format!("could not press {key}: {e}"))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Hover(selector) => {
                find(page, selector)
                    .await?
                    .hover()
                    .await
                    .map_err(|e| format!("could not hover {selector}: {e}"))?;
                Ok(())
            }
            Action::Scroll(selector) => {
                find(page, selector)
                    .await?
                    .scroll_into_view()
                    .await
                    .map_err(|e| format!("could not scroll to {selector}: {e}"))?;
                Ok(())
            }
            Action::Select { selector, value } => {
                let script = format!(
                    "(function(){{var e=document.querySelector({s});if(!e)return 'missing';var ok=[].some.call(e.options||[],function(o){{return o.value==={v}}});if(!ok)return 'no-option';e.value={v};e.dispatchEvent(new Event('input',{{bubbles:true}}));e.dispatchEvent(new Event('change',{{bubbles:true}}));return 'ok'}})()",
                    s = js_string(selector),
                    v = js_string(value)
                );
                match eval::<String>(page, &script).await?.as_str() {
                    "ok" => Ok(()),
                    "missing" => Err(format!("no element matches {selector}")),
                    _ => Err(format!("{selector} has no option with value {value:?}")),
                }
            }
            Action::WaitFor(condition) => wait_for(page, condition, counters).await,
            Action::Assert(assertion) => assert(page, assertion, counters).await,
            Action::Screenshot(_) => Ok(()),
            Action::Request(request) => {
                let result = crate::http_check::run_request(
                    &self.http,
                    flow,
                    "request",
                    request,
                    flow.step_timeout,
                )
                .await;
                match result.error {
                    None => Ok(()),
                    Some(e) => Err(e),
                }
            }
        }
    }
}

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, script: &str) -> Result<T, String> {
    let params = EvaluateParams::builder()
        .expression(script)
        .return_by_value(true)
        .build()
        .map_err(|e| e.to_string())?;
    page.evaluate(params)
        .await
        .map_err(|e| format!("evaluating in the page: {e}"))?
        .into_value::<T>()
        .map_err(|e| format!("reading the page's answer: {e}"))
}

async fn find(page: &Page, selector: &str) -> Result<chromiumoxide::element::Element, String> {
    page.find_element(selector)
        .await
        .map_err(|_| format!("no element matches {selector}"))
}

fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

async fn wait_for(
    page: &Page,
    condition: &WaitFor,
    counters: &Arc<std::sync::Mutex<Counters>>,
) -> Result<(), String> {
    let check = match condition {
        WaitFor::Delay(d) => {
            tokio::time::sleep(*d).await;
            return Ok(());
        }
        WaitFor::NetworkIdle(quiet) => {
            wait_network_idle(counters, *quiet).await;
            return Ok(());
        }
        WaitFor::Selector(s) => format!(
            "(function(){{var e=document.querySelector({});if(!e)return false;var r=e.getBoundingClientRect();return r.width>0&&r.height>0&&getComputedStyle(e).visibility!=='hidden'}})()",
            js_string(s)
        ),
        WaitFor::Text(t) => format!(
            "!!(document.body&&document.body.innerText.indexOf({})>=0)",
            js_string(t)
        ),
        WaitFor::UrlContains(u) => format!("location.href.indexOf({})>=0", js_string(u)),
    };
    // Polls until the step timeout around this call ends it.
    loop {
        if eval::<bool>(page, &check).await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert(
    page: &Page,
    assertion: &Assertion,
    counters: &Arc<std::sync::Mutex<Counters>>,
) -> Result<(), String> {
    match assertion {
        Assertion::TextContains { selector, text } => {
            let script = format!(
                "(function(){{var e=document.querySelector({});return e?e.innerText:null}})()",
                js_string(selector)
            );
            match eval::<Option<String>>(page, &script).await? {
                None => Err(format!("no element matches {selector}")),
                Some(found) if found.contains(text.as_str()) => Ok(()),
                Some(found) => {
                    let shown: String = found.trim().chars().take(80).collect();
                    Err(format!(
                        "text {text:?} not found in {selector} (found {shown:?})"
                    ))
                }
            }
        }
        Assertion::Visible(selector) | Assertion::Hidden(selector) => {
            let script = format!(
                "(function(){{var e=document.querySelector({});if(!e)return 'absent';var r=e.getBoundingClientRect();return r.width>0&&r.height>0&&getComputedStyle(e).visibility!=='hidden'?'visible':'hidden'}})()",
                js_string(selector)
            );
            let state = eval::<String>(page, &script).await?;
            let want_visible = matches!(assertion, Assertion::Visible(_));
            match (want_visible, state.as_str()) {
                (true, "visible") | (false, "hidden") | (false, "absent") => Ok(()),
                (true, "absent") => Err(format!("{selector} is not on the page, expected visible")),
                (true, _) => Err(format!("{selector} is hidden, expected visible")),
                (false, _) => Err(format!("{selector} is visible, expected hidden")),
            }
        }
        Assertion::UrlContains(part) => {
            let url = eval::<String>(page, "location.href").await?;
            if url.contains(part.as_str()) {
                Ok(())
            } else {
                Err(format!("URL is {url}, expected it to contain {part:?}"))
            }
        }
        Assertion::Status(expected) => {
            let status = counters.lock().unwrap().document_status;
            match status {
                Some(s) if s == *expected => Ok(()),
                Some(s) => Err(format!("document status is {s}, expected {expected}")),
                None => Err(format!(
                    "no document was loaded, expected status {expected}"
                )),
            }
        }
    }
}
