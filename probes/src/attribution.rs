//! Page views and per-step numbers from the recorder's packets
//! ([`crate::measure::Packet`]).
//!
//! A page view's vitals are the snippet's, exactly what it would have sent for
//! that page view in a real browser: the latest value of each metric over all
//! packets that carried the page view.
//!
//! A step owns what it caused, matched by time on the page's own clock, never
//! by which read-back happened to collect an entry: the step that ran between
//! two read-backs of a document owns every entry that *started* between them,
//! even when the browser delivered it later (an interaction whose next paint
//! waited for a long task, a shift observed a frame late). So:
//! - a step's INP is the worst interaction (longest event-timing entry of one
//!   interaction id) whose input started during it; a step without input has none;
//! - a step's CLS is the largest session window of the shifts (without recent
//!   input) that started during it, 0 when there were none;
//! - a step's TBT is the blocking time of the long tasks that started during it;
//! - LCP, FCP and TTFB belong to the navigation: the step that started a page
//!   view carries that page view's final values, whenever the candidate came.

use std::collections::BTreeMap;

use vitalsign_core::metric::Metric;
use vitalsign_core::wire::beacon::NavigationType;
use vitalsign_core::wire::run::{PageView, Step, Vitals, page_url};

use crate::measure::Packet;

/// Packets of one iteration, each with the index of the step during which the
/// runner received it.
#[derive(Debug, Default)]
pub struct Recorder {
    packets: Vec<(usize, Packet)>,
}

/// One interaction of a document: its first input and its longest entry.
struct Interaction {
    start: f64,
    latency: f64,
}

impl Recorder {
    pub fn add(&mut self, step: usize, packet: Packet) {
        self.packets.push((step, packet));
    }

    /// Set each step's vitals (INP, CLS, TBT by cause; LCP, FCP, TTFB on the
    /// step that started the page view) and list the page views in the order
    /// they started.
    pub fn finish(&self, steps: &mut [Step]) -> Vec<PageView> {
        let views = self.page_views(steps);
        let mut docs: Vec<&str> = Vec::new();
        for (_, packet) in &self.packets {
            if !docs.contains(&packet.doc.as_str()) {
                docs.push(&packet.doc);
            }
        }
        let mut by_step: Vec<StepEntries> =
            (0..steps.len()).map(|_| StepEntries::default()).collect();
        for doc in docs {
            self.attribute(doc, &mut by_step);
        }
        for (i, step) in steps.iter_mut().enumerate() {
            let entries = &by_step[i];
            let mut vitals = Vitals::default();
            if entries.observed {
                vitals.inp = entries
                    .interactions
                    .iter()
                    .map(|it| it.latency)
                    .reduce(f64::max);
                let cls = largest_session_window(&entries.shifts);
                vitals.cls = (cls > 0.0 || entries.cls_measured).then_some(round_cls(cls));
                vitals.tbt = Some(round1(entries.blocking));
            }
            step.vitals = vitals;
        }
        for view in &views {
            if view.navigation_type == NavigationType::Route {
                continue;
            }
            if let Some(step) = steps.get_mut(view.step) {
                step.vitals.lcp = view.vitals.lcp;
                step.vitals.fcp = view.vitals.fcp;
                step.vitals.ttfb = view.vitals.ttfb;
            }
        }
        views
    }

    /// The snippet's page views: each named after the step during which it
    /// was first seen, with the latest value of each metric (packets of one
    /// page view share a clock, so "latest" is the largest `at`).
    fn page_views(&self, steps: &[Step]) -> Vec<PageView> {
        struct Acc<'a> {
            id: &'a str,
            step: usize,
            navigation_type: NavigationType,
            url: Option<String>,
            latest: BTreeMap<Metric, (f64, f64)>,
        }
        let mut accs: Vec<Acc> = Vec::new();
        for (step, packet) in &self.packets {
            let Some(view) = &packet.view else { continue };
            let index = match accs.iter().position(|a| a.id == view.page_view_id) {
                Some(i) => i,
                None => {
                    accs.push(Acc {
                        id: &view.page_view_id,
                        step: *step,
                        navigation_type: serde_json::from_value(serde_json::Value::String(
                            view.navigation_type.clone(),
                        ))
                        .unwrap_or(NavigationType::Navigate),
                        url: view.url.as_deref().and_then(page_url),
                        latest: BTreeMap::new(),
                    });
                    accs.len() - 1
                }
            };
            let acc = &mut accs[index];
            for report in &view.reports {
                let Some(metric) = Metric::parse(&report.metric) else {
                    continue;
                };
                if metric == Metric::Tbt || report.value.is_nan() || report.value < 0.0 {
                    continue;
                }
                let newer = acc
                    .latest
                    .get(&metric)
                    .is_none_or(|(at, _)| packet.at >= *at);
                if newer {
                    acc.latest.insert(metric, (packet.at, report.value));
                }
            }
        }
        let mut views: Vec<PageView> = Vec::new();
        for acc in accs {
            let base = steps.get(acc.step).map_or("page view", |s| s.name.as_str());
            let mut name = base.to_string();
            let mut n = 1;
            while views.iter().any(|v| v.name == name) {
                n += 1;
                name = format!("{base} ({n})");
            }
            let mut vitals = Vitals::default();
            for (metric, (_, value)) in acc.latest {
                vitals.set(metric, Some(value));
            }
            views.push(PageView {
                name,
                step: acc.step,
                navigation_type: acc.navigation_type,
                url: acc.url,
                vitals,
                spread: None,
            });
        }
        views
    }

    /// Give each entry of one document to the step that owns its start time:
    /// the step of the first packet taken at or after it.
    fn attribute(&self, doc: &str, by_step: &mut [StepEntries]) {
        let mut marks: Vec<(f64, usize)> = Vec::new();
        let mut interactions: BTreeMap<u64, Interaction> = BTreeMap::new();
        let mut shifts: Vec<(f64, f64)> = Vec::new();
        let mut tasks: Vec<(f64, f64)> = Vec::new();
        for (step, packet) in self.packets.iter().filter(|(_, p)| p.doc == doc) {
            marks.push((packet.at, *step));
            if let Some(entries) = by_step.get_mut(*step) {
                entries.observed = true;
                if packet
                    .view
                    .as_ref()
                    .is_some_and(|v| v.reports.iter().any(|r| r.metric == "CLS"))
                {
                    entries.cls_measured = true;
                }
            }
            for &(id, start, duration) in &packet.events {
                let it = interactions.entry(id as u64).or_insert(Interaction {
                    start,
                    latency: duration,
                });
                it.start = it.start.min(start);
                it.latency = it.latency.max(duration);
            }
            shifts.extend(&packet.shifts);
            tasks.extend(&packet.tasks);
        }
        marks.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The step of the first packet taken at or after `time`; an entry can
        // only travel in a packet taken after it started, so there is one.
        let steps = by_step.len();
        let owner = |time: f64| {
            marks
                .iter()
                .find(|(at, _)| *at >= time)
                .or(marks.last())
                .map(|&(_, step)| step)
                .filter(|&step| step < steps)
        };
        for it in interactions.into_values() {
            if let Some(step) = owner(it.start) {
                by_step[step].interactions.push(it);
            }
        }
        shifts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (start, value) in shifts {
            if let Some(step) = owner(start) {
                by_step[step].shifts.push((start, value));
            }
        }
        for (start, duration) in tasks {
            if let Some(step) = owner(start) {
                by_step[step].blocking += (duration - 50.0).max(0.0);
            }
        }
    }
}

#[derive(Default)]
struct StepEntries {
    /// A packet was taken during the step (its read-back worked).
    observed: bool,
    /// The snippet measures CLS on the page (so no shift means 0, not unknown).
    cls_measured: bool,
    interactions: Vec<Interaction>,
    shifts: Vec<(f64, f64)>,
    blocking: f64,
}

/// CLS's rule applied to some shifts (sorted by start time): session windows
/// of shifts less than 1 s apart and at most 5 s long; the largest window.
fn largest_session_window(shifts: &[(f64, f64)]) -> f64 {
    let mut largest: f64 = 0.0;
    let mut window = 0.0;
    let mut first = f64::NEG_INFINITY;
    let mut last = f64::NEG_INFINITY;
    for &(start, value) in shifts {
        if window > 0.0 && start - last < 1000.0 && start - first < 5000.0 {
            window += value;
        } else {
            window = value;
            first = start;
        }
        last = start;
        largest = largest.max(window);
    }
    largest
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// As the snippet rounds CLS.
fn round_cls(v: f64) -> f64 {
    (v * 1e5).round() / 1e5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{Report, Snapshot};
    use vitalsign_core::wire::run::Outcome;

    fn step(name: &str) -> Step {
        let mut step = crate::step_result::new(name, "click", Outcome::Pass);
        step.duration_ms = 1.0;
        step
    }

    fn view(id: &str, kind: &str, reports: &[(&str, f64)]) -> Option<Snapshot> {
        Some(Snapshot {
            page_view_id: id.into(),
            url: Some("http://127.0.0.1:1/a/index.html?q=1".into()),
            navigation_type: kind.into(),
            reports: reports
                .iter()
                .map(|&(metric, value)| Report {
                    metric: metric.into(),
                    value,
                })
                .collect(),
        })
    }

    fn packet(doc: &str, at: f64, view: Option<Snapshot>) -> Packet {
        Packet {
            doc: doc.into(),
            at,
            view,
            events: Vec::new(),
            shifts: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// The two phantoms: an interaction delivered during a later
    /// `wait_for` still belongs to the click, and a late LCP candidate seen
    /// during the wait belongs to the `goto`.
    #[test]
    fn entries_belong_to_the_step_during_which_they_started() {
        let mut steps = vec![step("open"), step("click"), step("wait")];
        let mut r = Recorder::default();
        r.add(
            0,
            packet(
                "d",
                400.0,
                view(
                    "v1",
                    "navigate",
                    &[("LCP", 140.0), ("FCP", 140.0), ("TTFB", 20.0), ("CLS", 0.0)],
                ),
            ),
        );
        r.add(
            1,
            packet(
                "d",
                700.0,
                view(
                    "v1",
                    "navigate",
                    &[("LCP", 140.0), ("CLS", 0.0), ("INP", 8.0)],
                ),
            ),
        );
        let mut late = packet(
            "d",
            1300.0,
            view(
                "v1",
                "navigate",
                &[("LCP", 1020.0), ("CLS", 0.0), ("INP", 312.0)],
            ),
        );
        // The click at 500 ms, its entries delivered only after the heavy render.
        late.events = vec![(7.0, 500.0, 8.0), (7.0, 510.0, 312.0)];
        late.tasks = vec![(900.0, 250.0)];
        late.shifts = vec![(1000.0, 0.05)];
        r.add(2, late);
        let views = r.finish(&mut steps);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].name, "open");
        assert_eq!(
            views[0].url.as_deref(),
            Some("http://127.0.0.1:1/a/index.html")
        );
        assert_eq!(views[0].vitals.lcp, Some(1020.0));
        assert_eq!(views[0].vitals.inp, Some(312.0));
        assert_eq!(
            steps[0].vitals.lcp,
            Some(1020.0),
            "the goto carries the final LCP"
        );
        assert_eq!(steps[0].vitals.inp, None);
        assert_eq!(
            steps[1].vitals.inp,
            Some(312.0),
            "the click owns its interaction"
        );
        assert_eq!(steps[1].vitals.lcp, None);
        assert_eq!(steps[2].vitals.inp, None, "no input, no INP");
        assert_eq!(steps[2].vitals.lcp, None);
        assert_eq!(steps[2].vitals.tbt, Some(200.0));
        assert_eq!(steps[2].vitals.cls, Some(0.05));
        assert_eq!(steps[1].vitals.cls, Some(0.0));
        assert_eq!(steps[1].vitals.tbt, Some(0.0));
    }

    #[test]
    fn a_new_document_or_route_is_a_new_page_view() {
        let mut steps = vec![step("open"), step("next"), step("next")];
        let mut r = Recorder::default();
        r.add(
            0,
            packet("a", 300.0, view("v1", "navigate", &[("LCP", 100.0)])),
        );
        // Handed over at pagehide during step 1, then the new document's read-back.
        let mut gone = packet("a", 900.0, view("v1", "navigate", &[("INP", 48.0)]));
        gone.events = vec![(3.0, 850.0, 48.0)];
        r.add(1, gone);
        r.add(
            1,
            packet(
                "b",
                200.0,
                view("v2", "navigate", &[("LCP", 150.0), ("TTFB", 9.0)]),
            ),
        );
        r.add(
            2,
            packet(
                "b",
                600.0,
                view("v3", "route", &[("INP", 8.0), ("CLS", 0.0)]),
            ),
        );
        let views = r.finish(&mut steps);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["open", "next", "next (2)"]);
        assert_eq!(views[0].vitals.inp, Some(48.0));
        assert_eq!(views[0].vitals.lcp, Some(100.0));
        assert_eq!(views[2].navigation_type, NavigationType::Route);
        assert_eq!(steps[1].vitals.inp, Some(48.0));
        assert_eq!(
            steps[1].vitals.lcp,
            Some(150.0),
            "the click loaded the second document"
        );
        assert_eq!(steps[2].vitals.lcp, None, "a route has no LCP");
    }

    #[test]
    fn a_late_packet_does_not_overwrite_a_newer_value() {
        let mut steps = vec![step("open")];
        let mut r = Recorder::default();
        r.add(
            0,
            packet("a", 500.0, view("v1", "navigate", &[("CLS", 0.2)])),
        );
        r.add(
            0,
            packet("a", 300.0, view("v1", "navigate", &[("CLS", 0.1)])),
        );
        let views = r.finish(&mut steps);
        assert_eq!(views[0].vitals.cls, Some(0.2));
    }

    #[test]
    fn session_windows_as_cls() {
        assert_eq!(largest_session_window(&[]), 0.0);
        let two = [(300.0, 0.01), (400.0, 0.02), (1900.0, 0.03), (2000.0, 0.04)];
        assert!((largest_session_window(&two) - 0.07).abs() < 1e-12);
        let long: Vec<(f64, f64)> = (0..12).map(|i| (f64::from(i) * 500.0, 0.01)).collect();
        assert!(
            (largest_session_window(&long) - 0.10).abs() < 1e-9,
            "a window ends after 5 s"
        );
    }
}
