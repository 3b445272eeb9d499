//! Metric names, the Core Web Vitals rating bounds, and where a measurement
//! came from ([`Source`]).

use serde::{Deserialize, Serialize};

/// A measured metric. Times are milliseconds; CLS is unitless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Metric {
    Lcp,
    Cls,
    Inp,
    Fcp,
    Ttfb,
    /// Total blocking time: lab only (probes), it has no field counterpart.
    Tbt,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Lcp,
        Metric::Cls,
        Metric::Inp,
        Metric::Fcp,
        Metric::Ttfb,
        Metric::Tbt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Lcp => "LCP",
            Metric::Cls => "CLS",
            Metric::Inp => "INP",
            Metric::Fcp => "FCP",
            Metric::Ttfb => "TTFB",
            Metric::Tbt => "TBT",
        }
    }

    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    /// Upper bounds of "good" and "needs improvement" (web.dev's published
    /// thresholds; TBT uses Lighthouse's 200/600 ms scoring bounds).
    pub fn bounds(self) -> (f64, f64) {
        match self {
            Metric::Lcp => (2500.0, 4000.0),
            Metric::Cls => (0.1, 0.25),
            Metric::Inp => (200.0, 500.0),
            Metric::Fcp => (1800.0, 3000.0),
            Metric::Ttfb => (800.0, 1800.0),
            Metric::Tbt => (200.0, 600.0),
        }
    }

    /// The largest value we accept from outside. Anything above is a broken
    /// clock or a forged beacon, not a slow page: ten minutes for times, 10 for CLS.
    pub fn max_plausible(self) -> f64 {
        match self {
            Metric::Cls => 10.0,
            _ => 600_000.0,
        }
    }

    pub fn is_time(self) -> bool {
        self != Metric::Cls
    }

    /// Rate a value; a value exactly on a bound is still the better class,
    /// as in `web-vitals`.
    pub fn rate(self, value: f64) -> Rating {
        let (good, poor) = self.bounds();
        if value <= good {
            Rating::Good
        } else if value <= poor {
            Rating::NeedsImprovement
        } else {
            Rating::Poor
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a measurement came from: real visitors' browsers (the snippet's
/// beacons) or the agent's probes. Stored and queried as `rum` / `synthetic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Field data: beacons from visitors' browsers.
    Rum,
    /// Lab data: probe runs of flows.
    Synthetic,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Rum, Source::Synthetic];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rum => "rum",
            Source::Synthetic => "synthetic",
        }
    }

    pub fn parse(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Rating {
    Good,
    NeedsImprovement,
    Poor,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::NeedsImprovement => "needs-improvement",
            Rating::Poor => "poor",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_belong_to_the_better_class() {
        assert_eq!(Metric::Lcp.rate(2500.0), Rating::Good);
        assert_eq!(Metric::Lcp.rate(2500.1), Rating::NeedsImprovement);
        assert_eq!(Metric::Lcp.rate(4000.0), Rating::NeedsImprovement);
        assert_eq!(Metric::Lcp.rate(4000.1), Rating::Poor);
        assert_eq!(Metric::Cls.rate(0.1), Rating::Good);
        assert_eq!(Metric::Cls.rate(0.26), Rating::Poor);
        assert_eq!(Metric::Inp.rate(201.0), Rating::NeedsImprovement);
        assert_eq!(Metric::Ttfb.rate(1801.0), Rating::Poor);
        assert_eq!(Metric::Fcp.rate(1800.0), Rating::Good);
    }

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
        }
        assert_eq!(Metric::parse("lcp"), Some(Metric::Lcp));
        assert_eq!(Metric::parse("FID"), None);
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(Source::parse("lab"), None);
    }
}
