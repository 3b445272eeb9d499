//! What is injected into every document a flow opens, and how it is read back.
//!
//! The measurement is the web snippet itself (`web-snippet/dist/vitalsign.min.js`,
//! the same bytes the collector serves): injected without `data-site` it runs in
//! lab mode and never sends, and `window.__vitalsign.flush()` hands back the
//! values of the step that just ended. TBT has no field counterpart, so a small
//! long-task observer of our own sits beside it.

use serde::Deserialize;
use vitalsign_core::metric::Metric;
use vitalsign_core::wire::run::Vitals;

pub const SNIPPET: &str = include_str!("../../web-snippet/dist/vitalsign.min.js");

/// Total blocking time of the current step: sum of (duration − 50 ms) over
/// long tasks; `__vitalsignTbt()` returns it and starts the next step at 0.
const TBT_OBSERVER: &str = r#"
(function () {
  var total = 0;
  try {
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(function (e) { total += Math.max(e.duration - 50, 0); });
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  window.__vitalsignTbt = function () { var t = total; total = 0; return t; };
})();
"#;

pub fn init_script() -> String {
    format!("{SNIPPET}\n{TBT_OBSERVER}")
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
            "        var vs = window.__vitalsign;\n",
            "        resolve({\n",
            "          snapshot: vs ? vs.flush() : null,\n",
            "          tbt: window.__vitalsignTbt ? window.__vitalsignTbt() : null\n",
            "        });\n",
            "      }, ",
            $margin,
            ");\n",
            "    });\n",
            "  });\n",
            "})\n"
        )
    };
}

/// Read the step's values once event-timing entries have been delivered
/// (they arrive after the next frame is presented).
pub const READ_BACK: &str = read_back_after_frames!(50);

/// Read the step's values after two frames but without [`READ_BACK`]'s 50 ms
/// margin, for steps that change the page without input (`goto`, `wait_for`):
/// the margin is there for event-timing entries, which only input produces;
/// the frames let paints and shifts of the step's last moments be presented
/// and observed.
pub const READ_BACK_FRAMES: &str = read_back_after_frames!(0);

/// Read the step's values at once, for steps that only look at the page
/// (assertions, screenshots, HTTP requests): they cause no input, paint or
/// navigation, so nothing of theirs is still on its way, and what the step
/// before left behind was already waited for by that step's own read-back.
/// Saves [`READ_BACK`]'s two frames and 50 ms on every such step.
pub const READ_BACK_NOW: &str = r#"
Promise.resolve({
  snapshot: window.__vitalsign ? window.__vitalsign.flush() : null,
  tbt: window.__vitalsignTbt ? window.__vitalsignTbt() : null
})
"#;

#[derive(Debug, Deserialize)]
pub struct ReadBack {
    pub snapshot: Option<Snapshot>,
    pub tbt: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Snapshot {
    pub page_view_id: String,
    pub reports: Vec<Report>,
}

#[derive(Debug, Deserialize)]
pub struct Report {
    pub metric: String,
    pub value: f64,
}

impl ReadBack {
    pub fn vitals(&self) -> Vitals {
        let mut vitals = Vitals::default();
        if let Some(snapshot) = &self.snapshot {
            for report in &snapshot.reports {
                if let Some(metric) = Metric::parse(&report.metric) {
                    vitals.set(metric, Some(report.value));
                }
            }
        }
        vitals.tbt = self.tbt.map(|t| (t * 10.0).round() / 10.0);
        vitals
    }
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
