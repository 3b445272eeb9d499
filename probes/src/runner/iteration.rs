//! One pass through a flow's steps, and the per-step and per-page-view
//! medians over the passes of a run.

use vitalsign_core::wire::run::{Failure, Outcome, PageView, Step as StepResult, Vitals};

use super::browser::InfraError;
use crate::flow::Flow;
use crate::measure;
use crate::step_result;

#[derive(Debug)]
pub(super) struct Iteration {
    pub(super) outcome: Outcome,
    pub(super) failure: Option<Failure>,
    pub(super) steps: Vec<StepResult>,
    pub(super) page_views: Vec<PageView>,
}

impl Default for Iteration {
    fn default() -> Self {
        Iteration {
            outcome: Outcome::Pass,
            failure: None,
            steps: Vec::new(),
            page_views: Vec::new(),
        }
    }
}

impl Iteration {
    pub(super) fn failed(outcome: Outcome, step: Option<usize>, reason: String) -> Iteration {
        Iteration {
            outcome,
            failure: Some(Failure { step, reason }),
            steps: Vec::new(),
            page_views: Vec::new(),
        }
    }

    /// An iteration our own trouble ended before its first step.
    pub(super) fn infra(error: InfraError) -> Iteration {
        Iteration::failed(Outcome::Error, None, error.to_string())
    }

    /// Steps after a failure did not run; say so rather than leave them out.
    pub(super) fn fill_skipped(&mut self, flow: &Flow) {
        if self.outcome == Outcome::Pass || self.steps.is_empty() {
            return;
        }
        for step in flow.steps.iter().skip(self.steps.len()) {
            self.steps.push(step_result::new(
                &step.name,
                step.action.kind(),
                Outcome::Skipped,
            ));
        }
    }
}

/// Per-step medians over passing iterations.
pub(super) fn combine(iterations: &[Iteration]) -> Vec<StepResult> {
    let first = &iterations[0];
    first
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let samples: Vec<Vitals> = iterations
                .iter()
                .filter_map(|it| it.steps.get(i))
                .map(|s| s.vitals.clone())
                .collect();
            let durations: Vec<Vitals> = iterations
                .iter()
                .filter_map(|it| it.steps.get(i))
                .map(|s| Vitals {
                    lcp: Some(s.duration_ms),
                    ..Vitals::default()
                })
                .collect();
            let (vitals, spread) = measure::summarise(&samples);
            let (duration, _) = measure::summarise(&durations);
            let mut combined = step.clone();
            combined.vitals = vitals;
            combined.spread = spread;
            combined.duration_ms = duration.lcp.unwrap_or(step.duration_ms);
            combined
        })
        .collect()
}

/// Per-page-view medians over passing iterations. Page views are matched by
/// name (the step that started them); one that not every iteration opened
/// is summarised over those that did.
pub(super) fn combine_page_views(iterations: &[Iteration]) -> Vec<PageView> {
    let mut combined: Vec<PageView> = Vec::new();
    for it in iterations {
        for view in &it.page_views {
            if !combined.iter().any(|v| v.name == view.name) {
                combined.push(view.clone());
            }
        }
    }
    for view in &mut combined {
        let samples: Vec<Vitals> = iterations
            .iter()
            .filter_map(|it| it.page_views.iter().find(|v| v.name == view.name))
            .map(|v| v.vitals.clone())
            .collect();
        let (vitals, spread) = measure::summarise(&samples);
        view.vitals = vitals;
        view.spread = spread;
    }
    combined
}
