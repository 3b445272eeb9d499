//! How a person reads a metric value, the same in alert emails, dashboard pages
//! and the agent's CLI tables (`tests/browser/lib/view.mjs` mirrors it for the
//! browser tests).

use crate::metric::Metric;

/// `850 ms`, `2.8 s`, `0.12` (CLS, unitless).
///
/// Times below a second are whole milliseconds, from a second on seconds with
/// one decimal; CLS has two decimals. Rounding is `format!`'s (to the nearest,
/// an exact tie to the even digit). A time that rounds to 1000 ms is written
/// `1.0 s`, never `1000 ms`.
pub fn metric_value(metric: Metric, value: f64) -> String {
    if metric.is_time() {
        duration_ms(value)
    } else {
        format!("{value:.2}")
    }
}

/// `812 ms`, `2.1 s`: a time in milliseconds (a metric, a step, a run),
/// whole milliseconds below a second, seconds with one decimal from one on.
pub fn duration_ms(ms: f64) -> String {
    if ms < 999.5 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_to_whole_ms_then_tenths_of_seconds() {
        assert_eq!(metric_value(Metric::Inp, 0.0), "0 ms");
        assert_eq!(metric_value(Metric::Inp, 240.4), "240 ms");
        assert_eq!(metric_value(Metric::Inp, 240.6), "241 ms");
        assert_eq!(metric_value(Metric::Ttfb, 999.4), "999 ms");
        // Would print as "1000 ms": a second is written in seconds.
        assert_eq!(metric_value(Metric::Ttfb, 999.5), "1.0 s");
        assert_eq!(metric_value(Metric::Ttfb, 999.7), "1.0 s");
        assert_eq!(metric_value(Metric::Lcp, 1000.0), "1.0 s");
        assert_eq!(metric_value(Metric::Lcp, 2814.0), "2.8 s");
        assert_eq!(metric_value(Metric::Lcp, 2850.0), "2.9 s");
        assert_eq!(metric_value(Metric::Lcp, 1650.2), "1.7 s");
        assert_eq!(metric_value(Metric::Lcp, 9960.0), "10.0 s");
        assert_eq!(metric_value(Metric::Tbt, 125_000.0), "125.0 s");
        assert_eq!(duration_ms(812.3), "812 ms");
        assert_eq!(duration_ms(4_249.0), "4.2 s");
    }

    #[test]
    fn cls_has_two_decimals_with_ties_to_even() {
        assert_eq!(metric_value(Metric::Cls, 0.0), "0.00");
        assert_eq!(metric_value(Metric::Cls, 0.123), "0.12");
        assert_eq!(metric_value(Metric::Cls, 0.126), "0.13");
        // 0.125 is exact in binary: the tie goes to the even digit.
        assert_eq!(metric_value(Metric::Cls, 0.125), "0.12");
        assert_eq!(metric_value(Metric::Cls, 1.5), "1.50");
    }
}
