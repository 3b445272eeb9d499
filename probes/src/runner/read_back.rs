//! The measurement in a page: injected into every document before the
//! first step, read back after each.

use std::time::Duration;

use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EvaluateParams};
use chromiumoxide::error::CdpError;
use chromiumoxide::page::Page;

use super::browser::InfraError;

use crate::flow::Action;
use crate::measure::{self, Packet};
use crate::profile::Profile;

/// Emulate the flow's device, and inject the snippet and its recorder into
/// every document the page will load. Any failure here is ours.
pub(super) async fn prepare(page: &Page, profile: &Profile) -> Result<(), InfraError> {
    let cdp = |what: &str| {
        let what = what.to_string();
        move |e: CdpError| InfraError::Cdp {
            what,
            reason: e.to_string(),
        }
    };
    profile
        .apply(page)
        .await
        .map_err(|reason| InfraError::Cdp {
            what: format!("emulating the {} profile", profile.name),
            reason,
        })?;
    page.execute(AddBindingParams::new(measure::BINDING))
        .await
        .map_err(cdp("Runtime.addBinding"))?;
    page.evaluate_on_new_document(measure::init_script())
        .await
        .map_err(cdp("Page.addScriptToEvaluateOnNewDocument"))?;
    Ok(())
}

/// Read the step's vitals. A step that started a navigation (a form submitted
/// with Enter, a link followed by a script) may still be swapping documents:
/// the old context is gone before the new one exists, so try again briefly
/// rather than lose the new page's numbers.
pub(super) async fn read_back(page: &Page, script: &str) -> Result<Option<Packet>, CdpError> {
    let mut attempts = 0;
    loop {
        match read_back_once(page, script).await {
            Err(e) if attempts < 10 && document_replaced(&e) => {
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

/// Chrome refused the evaluation itself (a protocol error), rather than
/// running it and answering or reporting an exception. The read-back script
/// is ours and valid, so what Chrome refuses is the context it was to run in:
/// destroyed or not yet created while a document is replaced ("Execution
/// context was destroyed", "Cannot find context with specified id",
/// "Inspected target navigated or closed" all arrive as this variant). A
/// broken connection is a different variant and is not retried.
fn document_replaced(error: &CdpError) -> bool {
    matches!(error, CdpError::Chrome(_))
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

async fn read_back_once(page: &Page, script: &str) -> Result<Option<Packet>, CdpError> {
    let params = EvaluateParams::builder()
        .expression(script)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(CdpError::ChromeMessage)?;
    let result = page.evaluate(params).await?;
    Ok(result.into_value::<Option<Packet>>()?)
}
