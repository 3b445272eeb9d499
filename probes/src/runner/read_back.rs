//! The measurement in a page: injected into every document before the
//! first step, read back after each.

use std::time::Duration;

use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EvaluateParams};
use chromiumoxide::page::Page;

use crate::flow::Action;
use crate::measure::{self, Packet};
use crate::profile::Profile;

pub(super) async fn prepare(page: &Page, profile: &Profile) -> Result<(), String> {
    profile.apply(page).await?;
    page.execute(AddBindingParams::new(measure::BINDING))
        .await
        .map_err(|e| format!("Runtime.addBinding: {e}"))?;
    page.evaluate_on_new_document(measure::init_script())
        .await
        .map_err(|e| format!("Page.addScriptToEvaluateOnNewDocument: {e}"))?;
    Ok(())
}

/// Read the step's vitals. A step that started a navigation (a form submitted
/// with Enter, a link followed by a script) may still be swapping documents:
/// the old context is gone before the new one exists, so try again briefly
/// rather than lose the new page's numbers.
pub(super) async fn read_back(page: &Page, script: &str) -> Result<Option<Packet>, String> {
    let mut attempts = 0;
    loop {
        match read_back_once(page, script).await {
            Err(e) if attempts < 10 && navigating(&e) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The page's URL after a step, as [`Step::url`](StepResult::url) carries it.
/// chromiumoxide tracks the main frame's URL from navigation events (same
/// document ones too), so this asks no JavaScript of a page that may be
/// between documents.
pub(super) async fn current_url(page: &Page) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), page.url()).await {
        Ok(Ok(Some(url))) => vitalsign_core::wire::run::page_url(&url),
        _ => None,
    }
}

fn navigating(error: &str) -> bool {
    error.contains("Cannot find context")
        || error.contains("context was destroyed")
        || error.contains("Inspected target navigated")
}

/// How long a step's read-back waits: what the step did that may still be on
/// its way. Input waits for its event-timing entries (frames and a margin); a
/// navigation or a wait for content, for its paints (frames); a step that only
/// looks at the page caused nothing, and the step before waited for its own.
pub(super) fn read_back_script(action: &Action) -> &'static str {
    match action {
        Action::Assert(_) | Action::Screenshot(_) | Action::Request(_) => measure::READ_BACK_NOW,
        Action::Goto(_) | Action::WaitFor(_) => measure::READ_BACK_FRAMES,
        Action::Click(_)
        | Action::Type { .. }
        | Action::Press(_)
        | Action::Hover(_)
        | Action::Select { .. }
        | Action::Scroll(_) => measure::READ_BACK,
    }
}

async fn read_back_once(page: &Page, script: &str) -> Result<Option<Packet>, String> {
    let params = EvaluateParams::builder()
        .expression(script)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(|e| e.to_string())?;
    let result = page.evaluate(params).await.map_err(|e| e.to_string())?;
    result
        .into_value::<Option<Packet>>()
        .map_err(|e| e.to_string())
}
