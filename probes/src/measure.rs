//! What is injected into every document a flow opens, and how it is read back.
//!
//! The measurement is the web snippet itself (`web-snippet/dist/vitalsign.min.js`,
//! the same bytes the collector serves): injected without `data-site` it runs in
//! lab mode and never sends. `window.__vitalsign.read()` gives the current page
//! view's values, and what a real page would send at a route change or when it
//! is left goes to `window.__vitalsignLab`, which the recorder below defines.
//!
//! The recorder sits beside the snippet and keeps the entries a *step* is
//! judged by: interactions (event timing, observed exactly as the snippet does),
//! layout shifts without recent input, and long tasks (TBT has no field
//! counterpart). It never computes a page view's vitals: those are the
//! snippet's. Every read-back and every page-view end hands the runner a
//! [`Packet`] stamped with the page's clock; [`crate::attribution`] then gives
//! each entry to the step during which it started.

use serde::Deserialize;
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::run::Vitals;

pub const SNIPPET: &str = include_str!("../../web-snippet/dist/vitalsign.min.js");

/// The CDP binding (`Runtime.addBinding`) the recorder calls with a packet when
/// a page view ends (route change, hide, pagehide): the document may be gone
/// before the next read-back could ask.
pub const BINDING: &str = "__vitalsignPacket";

/// Runs after the snippet in every document. `take()` empties what was
/// recorded since the last packet, so each entry travels exactly once.
const RECORDER: &str = r#"
(function () {
  var doc = Math.random().toString(36).slice(2);
  var events = [], shifts = [], tasks = [], observers = [];
  var hasIds = window.PerformanceEventTiming && 'interactionId' in PerformanceEventTiming.prototype;
  function keep(entry) {
    var type = entry.entryType;
    if (type == 'layout-shift') {
      if (!entry.hadRecentInput) shifts.push([entry.startTime, entry.value]);
    } else if (type == 'longtask') {
      tasks.push([entry.startTime, entry.duration]);
    } else if (hasIds ? entry.interactionId : type == 'first-input') {
      events.push([entry.interactionId || 0, entry.startTime, entry.duration]);
    }
  }
  // The snippet's choices: 40 ms threshold for 'event' (web-vitals' too), plus
  // 'first-input', which has none; so a step sees the interactions its page view sees.
  [['event', 40], ['first-input'], ['layout-shift'], ['longtask']].forEach(function (t) {
    try {
      var po = new PerformanceObserver(function (list) { list.getEntries().forEach(keep); });
      po.observe({ type: t[0], buffered: true, durationThreshold: t[1] });
      observers.push(po);
    } catch (e) {}
  });
  function take(view) {
    observers.forEach(function (po) { po.takeRecords().forEach(keep); });
    var packet = { doc: doc, at: performance.now(), view: view || null, events: events, shifts: shifts, tasks: tasks };
    events = []; shifts = []; tasks = [];
    return packet;
  }
  window.__vitalsignLab = function (view) {
    try {
      var send = window.__vitalsignPacket;
      if (send) send(JSON.stringify(take(view)));
    } catch (e) {}
  };
  window.__vitalsignRecorder = function () {
    var vs = window.__vitalsign;
    return take(vs ? vs.read() : null);
  };
})();
"#;

pub fn init_script() -> String {
    format!("{SNIPPET}\n{RECORDER}")
}

/// A read-back that waits two frames (so the step's last paints, shifts and
/// event-timing entries are presented and observed) and then `$margin` ms.
macro_rules! read_back_after_frames {
    ($margin:literal) => {
        concat!(
            "new Promise(function (resolve) {\n",
            "  requestAnimationFrame(function () {\n",
            "    requestAnimationFrame(function () {\n",
            "      setTimeout(function () {\n",
            "        resolve(window.__vitalsignRecorder ? window.__vitalsignRecorder() : null);\n",
            "      }, ",
            $margin,
            ");\n",
            "    });\n",
            "  });\n",
            "})\n"
        )
    };
}

/// Read back after input: event-timing entries arrive after the next frame is
/// presented. Entries that come later still count for the step that caused
/// them (they are matched by start time), so this wait only makes the step's
/// numbers complete sooner; it is not what makes them right.
pub const READ_BACK: &str = read_back_after_frames!(50);

/// Read back after two frames but without [`READ_BACK`]'s 50 ms margin, for
/// steps that change the page without input (`goto`, `wait_for`): the margin
/// is there for event-timing entries, which only input produces; the frames
/// let paints and shifts of the step's last moments be presented and observed.
pub const READ_BACK_FRAMES: &str = read_back_after_frames!(0);

/// Read back at once, for steps that only look at the page (assertions,
/// screenshots, HTTP requests): they cause no input, paint or navigation.
pub const READ_BACK_NOW: &str =
    "Promise.resolve(window.__vitalsignRecorder ? window.__vitalsignRecorder() : null)";

/// What the recorder hands over: the page's clock when it was taken, the
/// snippet's current page view (absent when the snippet did not run), and
/// the entries recorded since the document's previous packet.
#[derive(Debug, Clone, Deserialize)]
pub struct Packet {
    /// Random id of the document: entries' times are on its clock.
    pub doc: String,
    /// `performance.now()` when the packet was taken.
    pub at: f64,
    pub view: Option<Snapshot>,
    /// `[interaction id, start time, duration]` of event-timing entries.
    #[serde(default)]
    pub events: Vec<(f64, f64, f64)>,
    /// `[start time, value]` of layout shifts without recent input.
    #[serde(default)]
    pub shifts: Vec<(f64, f64)>,
    /// `[start time, duration]` of long tasks.
    #[serde(default)]
    pub tasks: Vec<(f64, f64)>,
}

/// The snippet's page view, as `read()` returns it (or only its changed
/// reports, when the snippet handed it over at the end of a page view).
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub page_view_id: String,
    pub url: Option<String>,
    pub navigation_type: String,
    pub reports: Vec<Report>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub metric: String,
    pub value: f64,
}

/// Median and spread (max − min) of each metric over several iterations.
pub fn summarise(samples: &[Vitals]) -> (Vitals, Option<Vitals>) {
    let mut median = Vitals::default();
    let mut spread = Vitals::default();
    for metric in Metric::ALL {
        let mut values: Vec<f64> = samples.iter().filter_map(|v| v.get(metric)).collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let m = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        median.set(metric, Some(m));
        spread.set(metric, Some(values[values.len() - 1] - values[0]));
    }
    let spread = (samples.len() > 1 && !spread.is_empty()).then_some(spread);
    (median, spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        let v = |lcp: f64| Vitals {
            lcp: Some(lcp),
            ..Vitals::default()
        };
        let (m, s) = summarise(&[v(100.0), v(300.0), v(200.0)]);
        assert_eq!(m.lcp, Some(200.0));
        assert_eq!(s.unwrap().lcp, Some(200.0));
        let (m, s) = summarise(&[v(100.0), v(300.0)]);
        assert_eq!(m.lcp, Some(200.0));
        assert!(s.is_some());
        let (_, s) = summarise(&[v(100.0)]);
        assert!(s.is_none());
    }

    #[test]
    fn the_injected_snippet_is_the_built_one() {
        let built = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../web-snippet/dist/vitalsign.min.js"
        ))
        .unwrap();
        assert_eq!(SNIPPET, built);
        assert!(SNIPPET.contains("__vitalsign"));
    }
}
