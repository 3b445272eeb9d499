//! Charts rendered on the server as SVG: sparklines, rating share bars, the
//! distribution histogram and the series chart. No script is needed to see
//! them; each carries a text alternative, and the numbers are also in a table.

use std::fmt::Write;

use maud::{Markup, PreEscaped, html};
use vitalsign_core::metric::Metric;

use super::layout::{percent, value};

/// One bucket of a series as the chart draws it.
#[derive(Debug, Clone)]
pub struct Point {
    pub start_ms: i64,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub count: u64,
}

/// A period to shade on the chart (an alert's pending or firing time).
#[derive(Debug, Clone)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub label: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small trend line of p75 values, scaled to its own min and max; a lone
/// point (one bucket with data, or one between gaps) is a dot.
pub fn sparkline(values: &[Option<f64>], label: &str) -> Markup {
    let (w, h) = (120.0, 28.0);
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        esc(label)
    );
    if !present.is_empty() {
        let (lo, hi) = present
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        let span = (hi - lo).max(hi.abs() * 0.05).max(1e-9);
        let step = w / (values.len().max(2) - 1) as f64;
        let at = |i: usize, v: f64| (i as f64 * step, h - 2.0 - (v - lo) / span * (h - 4.0));
        let empty = |i: Option<usize>| i.and_then(|i| values.get(i)).is_none_or(Option::is_none);
        let mut d = String::new();
        let mut pen_up = true;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let (x, y) = at(i, *v);
                    if empty(i.checked_sub(1)) && empty(Some(i + 1)) {
                        let _ = write!(
                            svg,
                            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="currentColor"/>"#
                        );
                    }
                    let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" });
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="currentColor" stroke-width="1.5"/>"#
        );
    }
    svg.push_str("</svg>");
    PreEscaped(svg)
}

/// Good / needs improvement / poor as one stacked bar, with the shares as text.
pub fn share_bar(good: f64, ni: f64, poor: f64) -> Markup {
    let w = 120.0;
    let (g, n) = (good * w, ni * w);
    let p = (w - g - n).max(0.0);
    let label = format!(
        "{} good, {} needs improvement, {} poor",
        percent(good),
        percent(ni),
        percent(poor)
    );
    html! {
        span.shares {
            (PreEscaped(format!(
                r#"<svg class="bar" viewBox="0 0 {w} 10" width="{w}" height="10" aria-hidden="true"><rect class="good" width="{g:.1}" height="10"/><rect class="ni" x="{g:.1}" width="{n:.1}" height="10"/><rect class="poor" x="{:.1}" width="{p:.1}" height="10"/></svg>"#,
                g + n
            )))
            span.share-text { (label) }
        }
    }
}

/// Distribution of values in bins, with the good / poor bounds drawn.
pub fn histogram(metric: Metric, bins: &[(f64, f64, u64)]) -> Markup {
    let (w, h, pad) = (640.0, 180.0, 28.0);
    let max_count = bins.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
    let hi = bins.last().map_or(1.0, |b| b.1).max(1e-9);
    let x = |v: f64| pad + (v / hi).min(1.0) * (w - 2.0 * pad);
    let mut svg = format!(
        r#"<svg class="histogram" viewBox="0 0 {w} {h}" role="img" aria-label="Distribution of {} values">"#,
        metric.as_str()
    );
    for (lo, up, count) in bins {
        let bh = *count as f64 / max_count * (h - 2.0 * pad);
        let _ = write!(
            svg,
            r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}"><title>{} – {}: {count}</title></rect>"#,
            match metric.rate((lo + up) / 2.0) {
                vitalsign_core::metric::Rating::Good => "good",
                vitalsign_core::metric::Rating::NeedsImprovement => "ni",
                vitalsign_core::metric::Rating::Poor => "poor",
            },
            x(*lo),
            h - pad - bh,
            (x(*up) - x(*lo) - 1.0).max(1.0),
            value(metric, Some(*lo)),
            value(metric, Some(*up)),
        );
    }
    let (good, poor) = metric.bounds();
    // Each label on its own row above the bars: the two bounds are often a
    // few pixels apart (LCP 2.5 s and 4 s on a 30 s axis), and labels side by
    // side ran into each other. Near an edge a label grows inwards.
    for (row, (bound, name)) in [(good, "good"), (poor, "poor")].into_iter().enumerate() {
        if bound <= hi {
            let at = x(bound);
            let anchor = if at < pad + 60.0 {
                "start"
            } else if at > w - pad - 60.0 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                svg,
                r#"<line class="bound" x1="{at:.1}" x2="{at:.1}" y1="{}" y2="{}"/><text class="axis" x="{at:.1}" y="{}" text-anchor="{anchor}">{name} bound {}</text>"#,
                pad - 3.0,
                h - pad,
                10.0 + 12.0 * row as f64,
                value(metric, Some(bound))
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{pad}" y="{}">0</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        h - 8.0,
        w - pad,
        h - 8.0,
        value(metric, Some(hi))
    );
    PreEscaped(svg)
}

/// The series chart: field p75 with its p50–p90 band, the lab p75 line, the
/// CWV bounds, alert periods shaded, and sample counts as bars underneath.
pub fn series_chart(
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    field: &[Point],
    lab: &[Point],
    periods: &[Period],
) -> Markup {
    let (w, h, left, right, top, chart_h, counts_h) = (720.0, 300.0, 56.0, 12.0, 16.0, 200.0, 50.0);
    let span = (to_ms - from_ms).max(1) as f64;
    let x = |t: i64| left + ((t - from_ms) as f64 / span).clamp(0.0, 1.0) * (w - left - right);
    let (good, poor) = metric.bounds();
    let top_value = field
        .iter()
        .chain(lab)
        .filter_map(|p| p.p90.or(p.p75))
        .fold(good * 1.2, f64::max)
        .min(poor * 3.0)
        .max(
            field
                .iter()
                .chain(lab)
                .filter_map(|p| p.p75)
                .fold(0.0, f64::max),
        );
    let y = |v: f64| top + chart_h - (v / top_value).min(1.0) * chart_h;
    let mut svg = format!(
        r#"<svg class="series" viewBox="0 0 {w} {h}" role="img" aria-label="{} p75 over time: field line with p50 to p90 band, lab line dashed">"#,
        metric.as_str()
    );
    for p in periods {
        let _ = write!(
            svg,
            r#"<rect class="period {}" x="{:.1}" y="{top}" width="{:.1}" height="{chart_h}"><title>{}</title></rect>"#,
            esc(&p.state),
            x(p.from_ms),
            (x(p.to_ms) - x(p.from_ms)).max(2.0),
            esc(&p.label)
        );
    }
    for (bound, name) in [(good, "good"), (poor, "poor")] {
        if bound <= top_value {
            let _ = write!(
                svg,
                r#"<line class="bound" x1="{left}" x2="{0:.1}" y1="{1:.1}" y2="{1:.1}"/><text class="axis" x="{0:.1}" y="{2:.1}" text-anchor="end">{name} {3}</text>"#,
                w - right,
                y(bound),
                y(bound) - 3.0,
                value(metric, Some(bound))
            );
        }
    }
    // Axis labels: value at the top, and the range's two ends.
    let _ = write!(
        svg,
        r#"<text class="axis" x="{}" y="{}" text-anchor="end">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">0</text>"#,
        left - 4.0,
        top + 8.0,
        value(metric, Some(top_value)),
        left - 4.0,
        top + chart_h
    );
    let half = bucket_ms / 2;
    // The band: p90 forward, p50 back.
    let band: Vec<&Point> = field
        .iter()
        .filter(|p| p.p50.is_some() && p.p90.is_some())
        .collect();
    if band.len() >= 2 {
        let mut d = String::new();
        for (i, p) in band.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                x(p.start_ms + half),
                y(p.p90.unwrap())
            );
        }
        for p in band.iter().rev() {
            let _ = write!(d, "L{:.1},{:.1} ", x(p.start_ms + half), y(p.p50.unwrap()));
        }
        let _ = write!(svg, r#"<path class="band" d="{d}Z"/>"#);
    }
    for (points, class) in [(field, "field"), (lab, "lab")] {
        let mut d = String::new();
        for (i, p) in points.iter().filter(|p| p.p75.is_some()).enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                x(p.start_ms + half),
                y(p.p75.unwrap())
            );
        }
        if !d.is_empty() {
            let _ = write!(svg, r#"<path class="line {class}" d="{d}"/>"#);
        }
        for p in points.iter().filter(|p| p.p75.is_some()) {
            let _ = write!(
                svg,
                r#"<circle class="dot {class}" cx="{:.1}" cy="{:.1}" r="2.5"><title>{class} p75 {} ({} samples) at {}</title></circle>"#,
                x(p.start_ms + half),
                y(p.p75.unwrap()),
                value(metric, p.p75),
                p.count,
                crate::alerts::email::utc(p.start_ms)
            );
        }
    }
    // Sample counts per bucket (field and lab together).
    let counts_top = top + chart_h + 24.0;
    let max_count = field
        .iter()
        .chain(lab)
        .map(|p| p.count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar_w = ((bucket_ms as f64 / span) * (w - left - right) - 1.0).max(1.0);
    for (points, class) in [(field, "field"), (lab, "lab")] {
        for p in points {
            let bh = p.count as f64 / max_count * counts_h;
            let _ = write!(
                svg,
                r#"<rect class="count {class}" x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}"><title>{} {class} samples</title></rect>"#,
                // Field and lab bars of a bucket side by side, not on top of each other.
                x(p.start_ms) + if class == "lab" { bar_w / 2.0 } else { 0.0 },
                counts_top + counts_h - bh,
                (bar_w / 2.0).max(1.0),
                p.count
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{}" y="{}" text-anchor="end">samples</text><text class="axis" x="{left}" y="{}">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
        left - 4.0,
        counts_top + 10.0,
        h - 2.0,
        crate::alerts::email::utc(from_ms),
        w - right,
        h - 2.0,
        crate::alerts::email::utc(to_ms)
    );
    PreEscaped(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `y` of each bound label of a histogram, by its text.
    fn bound_label_rows(svg: &str) -> Vec<(String, String)> {
        svg.split("<text ")
            .skip(1)
            .filter_map(|t| {
                let (attrs, rest) = t.split_once('>')?;
                let text = rest.split('<').next()?;
                let y = attrs.split("y=\"").nth(1)?.split('"').next()?;
                text.contains(" bound ")
                    .then(|| (text.to_string(), y.to_string()))
            })
            .collect()
    }

    #[test]
    fn bound_labels_of_a_histogram_are_on_rows_of_their_own() {
        // LCP bins up to 30 s: the 2.5 s and 4 s bounds are 29 px apart,
        // closer than a label is wide.
        let bins: Vec<(f64, f64, u64)> = (0..30)
            .map(|i| (i as f64 * 1000.0, (i + 1) as f64 * 1000.0, 30 - i as u64))
            .collect();
        let svg = histogram(Metric::Lcp, &bins).into_string();
        let labels = bound_label_rows(&svg);
        assert_eq!(labels.len(), 2, "{svg}");
        assert!(labels[0].0.starts_with("good bound"), "{labels:?}");
        assert!(labels[1].0.starts_with("poor bound"), "{labels:?}");
        assert_ne!(labels[0].1, labels[1].1, "labels share a row: {labels:?}");
    }
}
