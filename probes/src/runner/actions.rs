//! What each step kind does in the page: real CDP input, waits and assertions.
//! Each returns a [`StepError`] that says whose trouble a failure was.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::Page;

use super::Runner;
use super::network::{Counters, wait_network_idle};
use crate::flow::{Action, Assertion, Flow, Text, WaitFor};
use crate::step_result::{StepError, lost_the_browser};

impl Runner {
    pub(super) async fn act(
        &self,
        page: &Page,
        flow: &Flow,
        action: &Action,
        counters: &Arc<std::sync::Mutex<Counters>>,
    ) -> Result<(), StepError> {
        match action {
            Action::Goto(target) => {
                let url = flow.url(target);
                // Chromium's `net::ERR_…` and a load that never finished are
                // the site's; a lost connection to the browser is ours.
                page.goto(url.as_str()).await.map_err(|e| {
                    let reason = e.to_string();
                    if lost_the_browser(&e) {
                        StepError::Browser {
                            what: format!("could not open {url}"),
                            reason,
                        }
                    } else {
                        StepError::Navigation {
                            url: url.clone(),
                            reason,
                        }
                    }
                })?;
                wait_network_idle(counters, Duration::from_millis(300)).await;
                let status = counters.lock().unwrap().document_status;
                match status {
                    Some(status) if status >= 400 => Err(StepError::ErrorStatus { url, status }),
                    _ => Ok(()),
                }
            }
            Action::Click(selector) => {
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| StepError::from_cdp(format!("could not click {selector}"), e))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Type { selector, text } => {
                let value = secret(text)?;
                let element = find(page, selector).await?;
                element
                    .click()
                    .await
                    .map_err(|e| StepError::from_cdp(format!("could not focus {selector}"), e))?;
                // The error must not echo the text (it may be a secret), so
                // the reason says whose trouble it was, not what CDP said.
                element.type_str(value).await.map_err(|e| {
                    let what = format!("could not type into {selector}");
                    if lost_the_browser(&e) {
                        StepError::Browser {
                            what,
                            reason: "the connection to the browser broke".into(),
                        }
                    } else {
                        StepError::Page {
                            what,
                            reason: "the page did not take the keys".into(),
                        }
                    }
                })?;
                Ok(())
            }
            Action::Press(key) => {
                crate::input::press(page, key)
                    .await
                    .map_err(|e| StepError::from_cdp(format!("could not press {key}"), e))?;
                wait_network_idle(counters, Duration::from_millis(200)).await;
                Ok(())
            }
            Action::Hover(selector) => {
                find(page, selector)
                    .await?
                    .hover()
                    .await
                    .map_err(|e| StepError::from_cdp(format!("could not hover {selector}"), e))?;
                Ok(())
            }
            Action::Scroll(selector) => {
                find(page, selector)
                    .await?
                    .scroll_into_view()
                    .await
                    .map_err(|e| {
                        StepError::from_cdp(format!("could not scroll to {selector}"), e)
                    })?;
                Ok(())
            }
            Action::Select { selector, value } => {
                let script = page_check("select", &[selector, value]);
                match eval::<String>(page, &script).await?.as_str() {
                    "ok" => Ok(()),
                    "missing" => Err(StepError::NoElement(selector.clone())),
                    _ => Err(StepError::Assertion(format!(
                        "{selector} has no option with value {value:?}"
                    ))),
                }
            }
            Action::WaitFor(condition) => wait_for(page, condition, counters).await,
            Action::Assert(assertion) => assert(page, assertion, counters).await,
            Action::Screenshot(_) => Ok(()),
            Action::Request(request) => {
                let (_, checked) = crate::http_check::run_request(
                    &self.http,
                    flow,
                    "request",
                    request,
                    flow.step_timeout,
                )
                .await;
                checked
            }
        }
    }
}

/// The value of a `type` step's text; a secret the agent was not given is
/// our trouble, not the site's.
fn secret(text: &Text) -> Result<String, StepError> {
    text.resolve().map_err(StepError::Secret)
}

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, script: &str) -> Result<T, StepError> {
    let params = EvaluateParams::builder()
        .expression(script)
        .return_by_value(true)
        .build()
        .map_err(|e| StepError::Browser {
            what: "building Runtime.evaluate".into(),
            reason: e,
        })?;
    page.evaluate(params)
        .await
        .map_err(|e| StepError::from_cdp("evaluating in the page", e))?
        .into_value::<T>()
        .map_err(|e| StepError::Page {
            what: "reading the page's answer".into(),
            reason: e.to_string(),
        })
}

/// The first element `selector` matches. chromiumoxide reports "no match" as
/// an error too, so only a lost connection is told apart from it.
async fn find(page: &Page, selector: &str) -> Result<chromiumoxide::element::Element, StepError> {
    page.find_element(selector).await.map_err(|e| {
        if lost_the_browser(&e) {
            StepError::from_cdp(format!("looking for {selector}"), e)
        } else {
            StepError::NoElement(selector.to_string())
        }
    })
}

/// The page-side half of `wait_for`, `assert` and `select`, kept as JavaScript
/// in its own file so it reads (and lints) as JavaScript.
const PAGE_CHECKS: &str = include_str!("page_checks.js");

/// An expression that calls `function` of [`PAGE_CHECKS`] with `args` as JSON
/// strings (so a selector or text can hold any character). The newline keeps
/// a comment on the file's last line from swallowing the closing parenthesis.
fn page_check(function: &str, args: &[&str]) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| serde_json::to_string(a).expect("strings serialise"))
        .collect();
    format!("({PAGE_CHECKS}\n).{function}({})", args.join(","))
}

async fn wait_for(
    page: &Page,
    condition: &WaitFor,
    counters: &Arc<std::sync::Mutex<Counters>>,
) -> Result<(), StepError> {
    let check = match condition {
        WaitFor::Delay(d) => {
            tokio::time::sleep(*d).await;
            return Ok(());
        }
        WaitFor::NetworkIdle(quiet) => {
            wait_network_idle(counters, *quiet).await;
            return Ok(());
        }
        WaitFor::Selector(s) => format!("{}==='visible'", page_check("visibility", &[s])),
        WaitFor::Text(t) => page_check("bodyContains", &[t]),
        WaitFor::UrlContains(u) => page_check("urlContains", &[u]),
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
) -> Result<(), StepError> {
    match assertion {
        Assertion::TextContains { selector, text } => {
            let script = page_check("text", &[selector]);
            match eval::<Option<String>>(page, &script).await? {
                None => Err(StepError::NoElement(selector.clone())),
                Some(found) if found.contains(text.as_str()) => Ok(()),
                Some(found) => {
                    let shown: String = found.trim().chars().take(80).collect();
                    Err(StepError::Assertion(format!(
                        "text {text:?} not found in {selector} (found {shown:?})"
                    )))
                }
            }
        }
        Assertion::Visible(selector) | Assertion::Hidden(selector) => {
            let state = eval::<String>(page, &page_check("visibility", &[selector])).await?;
            let want_visible = matches!(assertion, Assertion::Visible(_));
            let problem = match (want_visible, state.as_str()) {
                (true, "visible") | (false, "hidden") | (false, "absent") => return Ok(()),
                (true, "absent") => format!("{selector} is not on the page, expected visible"),
                (true, _) => format!("{selector} is hidden, expected visible"),
                (false, _) => format!("{selector} is visible, expected hidden"),
            };
            Err(StepError::Assertion(problem))
        }
        Assertion::UrlContains(part) => {
            let url = eval::<String>(page, "location.href").await?;
            if url.contains(part.as_str()) {
                Ok(())
            } else {
                Err(StepError::Assertion(format!(
                    "URL is {url}, expected it to contain {part:?}"
                )))
            }
        }
        Assertion::Status(expected) => {
            let status = counters.lock().unwrap().document_status;
            let problem = match status {
                Some(s) if s == *expected => return Ok(()),
                Some(s) => format!("document status is {s}, expected {expected}"),
                None => format!("no document was loaded, expected status {expected}"),
            };
            Err(StepError::Assertion(problem))
        }
    }
}
