//! A RUM beacon: one flush of metric reports from one page view in a real browser.
//!
//! CLS and INP can be reported more than once per page view (they keep growing
//! until the page is hidden); every report carries the page-view id and the
//! collector keeps the latest value per (page view, metric).

use serde::{Deserialize, Serialize};

use super::{
    MAX_SELECTOR_LEN, MAX_URL_LEN, SCHEMA_VERSION, Validated, ValidationError, check_http_url,
    check_ident, check_len, check_no_control, check_range,
};
use crate::metric::{Metric, Rating};

/// At most this many reports in one beacon: five metrics, each at most once.
pub const MAX_REPORTS: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1))]
    pub schema_version: u32,
    /// The site key from the embedding tag's `data-site`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,64}$"))]
    pub site: String,
    /// Random id of the page view; a bfcache restore or SPA route change starts a new one.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,64}$"))]
    pub page_view_id: String,
    /// Page URL, without the query string unless the site opted in.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^https?://[^/]", max_length = 2048)
    )]
    pub url: String,
    pub navigation_type: NavigationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceClass>,
    /// `navigator.connection.effectiveType` where the browser has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_type: Option<EffectiveType>,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 32))]
    pub snippet_version: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 5))]
    pub reports: Vec<Report>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub metric: Metric,
    pub value: f64,
    pub rating: Rating,
    #[serde(default, skip_serializing_if = "Attribution::is_empty")]
    pub attribution: Attribution,
}

/// What caused the value; every part optional and bounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Attribution {
    /// Short CSS selector: the LCP element, the INP target, or the largest shift source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// LCP resource URL (image), absent for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// INP split: input delay, processing, presentation (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_delay: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation: Option<f64>,
    /// INP interaction type: `pointer` or `keyboard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<InteractionType>,
}

impl Attribution {
    pub fn is_empty(&self) -> bool {
        *self == Attribution::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum NavigationType {
    Navigate,
    Reload,
    BackForward,
    /// Restored from the back/forward cache: a new page view of an old document.
    BackForwardCache,
    Prerender,
    Restore,
    /// An SPA route change inside the same document.
    Route,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeviceClass {
    Mobile,
    Tablet,
    Desktop,
}

impl DeviceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Mobile => "mobile",
            DeviceClass::Tablet => "tablet",
            DeviceClass::Desktop => "desktop",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EffectiveType {
    #[serde(rename = "slow-2g")]
    Slow2g,
    #[serde(rename = "2g")]
    G2,
    #[serde(rename = "3g")]
    G3,
    #[serde(rename = "4g")]
    G4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum InteractionType {
    Pointer,
    Keyboard,
}

impl Beacon {
    /// Semantic checks beyond the types: lengths, ranges, ratings that match values.
    pub fn validate(&self) -> Validated<()> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(ValidationError::new(
                "schema_version",
                format!(
                    "{} is not supported; this collector accepts {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        check_ident("site", &self.site, 64)?;
        check_ident("page_view_id", &self.page_view_id, 64)?;
        check_http_url("url", &self.url)?;
        check_len("snippet_version", &self.snippet_version, 1, 32)?;
        check_no_control("snippet_version", &self.snippet_version)?;
        if self.reports.is_empty() {
            return Err(ValidationError::new(
                "reports",
                "must hold at least one report",
            ));
        }
        if self.reports.len() > MAX_REPORTS {
            return Err(ValidationError::new(
                "reports",
                format!(
                    "holds {} reports; at most {MAX_REPORTS} (one per metric) are allowed",
                    self.reports.len()
                ),
            ));
        }
        for (i, report) in self.reports.iter().enumerate() {
            if self.reports[..i].iter().any(|r| r.metric == report.metric) {
                return Err(ValidationError::new(
                    format!("reports[{i}].metric"),
                    format!("{} is reported twice in one beacon", report.metric),
                ));
            }
            report
                .validate()
                .map_err(|e| e.under(format_args!("reports[{i}]")))?;
        }
        Ok(())
    }
}

impl Report {
    fn validate(&self) -> Validated<()> {
        if self.metric == Metric::Tbt {
            return Err(ValidationError::new(
                "metric",
                "TBT is a lab metric and is not accepted from browsers",
            ));
        }
        check_range("value", self.value, 0.0, self.metric.max_plausible())?;
        let expected = self.metric.rate(self.value);
        if self.rating != expected {
            return Err(ValidationError::new(
                "rating",
                format!(
                    "{} does not match {} {}; expected {}",
                    self.rating.as_str(),
                    self.metric,
                    self.value,
                    expected.as_str()
                ),
            ));
        }
        self.attribution
            .validate(self.metric)
            .map_err(|e| e.under("attribution"))
    }
}

impl Attribution {
    fn validate(&self, metric: Metric) -> Validated<()> {
        if let Some(target) = &self.target {
            check_len("target", target, 1, MAX_SELECTOR_LEN)?;
            check_no_control("target", target)?;
        }
        if let Some(url) = &self.url {
            check_len("url", url, 1, MAX_URL_LEN)?;
            check_no_control("url", url)?;
        }
        let split = [
            ("input_delay", self.input_delay),
            ("processing", self.processing),
            ("presentation", self.presentation),
        ];
        for (name, value) in split {
            if let Some(v) = value {
                if metric != Metric::Inp {
                    return Err(ValidationError::new(
                        name,
                        format!("belongs to INP only, not {metric}"),
                    ));
                }
                check_range(name, v, 0.0, metric.max_plausible())?;
            }
        }
        if self.interaction.is_some() && metric != Metric::Inp {
            return Err(ValidationError::new(
                "interaction",
                format!("belongs to INP only, not {metric}"),
            ));
        }
        Ok(())
    }
}
