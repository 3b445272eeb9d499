//! A view's state as it travels in the URL: parsed once from the query string
//! (every error names the parameter), turned into store filters, and written
//! back into links so that any view can be pasted into an email or a chat.

use std::collections::HashMap;
use std::fmt::Write;

use vitalsign_core::metric::Metric;

use crate::store::query::Filter;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest custom range a view accepts (rollups are kept for ever, but a
/// chart over more than this says little).
const MAX_RANGE_MS: i64 = 400 * DAY_MS;

/// The preset ranges of the time filter, as written in URLs.
pub const RANGES: [(&str, i64); 5] = [
    ("1h", HOUR_MS),
    ("24h", DAY_MS),
    ("7d", 7 * DAY_MS),
    ("30d", 30 * DAY_MS),
    ("90d", 90 * DAY_MS),
];

/// Which measurements a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    Both,
    Rum,
    Synthetic,
}

impl SourceChoice {
    pub fn shows_field(self) -> bool {
        self != SourceChoice::Synthetic
    }
    pub fn shows_lab(self) -> bool {
        self != SourceChoice::Rum
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SourceChoice::Both => "both",
            SourceChoice::Rum => "rum",
            SourceChoice::Synthetic => "synthetic",
        }
    }
}

/// How a view answers: the page, or the same query as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Csv,
    Json,
}

/// Every parameter any view takes; each view says which of them it reads.
#[derive(Debug, Clone)]
pub struct ViewParams {
    /// The raw non-empty pairs, in a stable order, for building links.
    raw: Vec<(String, String)>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The preset the range came from (`24h`), or none for a custom range.
    pub preset: Option<&'static str>,
    pub metric: Metric,
    pub source: SourceChoice,
    pub site: Option<String>,
    pub page_group: Option<String>,
    pub device: Option<String>,
    pub flow: Option<String>,
    pub step: Option<String>,
    pub location: Option<String>,
    pub format: Format,
}

/// What a bad parameter was and how to fix it (shown on a 400 page).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError(pub String);

pub const KNOWN: [&str; 19] = [
    "range",
    "from",
    "to",
    "metric",
    "source",
    "site",
    "page_group",
    "device",
    "flow",
    "step",
    "location",
    "format",
    "alert",
    "sort",
    "dir",
    "page",
    "state",
    "run",
    "live",
];

impl ViewParams {
    pub fn parse(raw: &HashMap<String, String>, now_ms: i64) -> Result<ViewParams, ParamError> {
        if let Some(unknown) = raw.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ParamError(format!(
                "unknown parameter `{unknown}`; the dashboard takes {}",
                KNOWN.join(", ")
            )));
        }
        let mut pairs: Vec<(String, String)> = raw
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        pairs.sort_by_key(|(k, _)| KNOWN.iter().position(|n| n == k));
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let metric = match get("metric") {
            None => Metric::Lcp,
            Some(m) => Metric::parse(&m).ok_or_else(|| {
                ParamError(format!(
                    "parameter `metric`: {m:?} is not one of LCP, INP, CLS, FCP, TTFB, TBT"
                ))
            })?,
        };
        let source = match get("source").as_deref() {
            None | Some("both") => SourceChoice::Both,
            Some("rum") => SourceChoice::Rum,
            Some("synthetic") => SourceChoice::Synthetic,
            Some(other) => {
                return Err(ParamError(format!(
                    "parameter `source`: {other:?} is not rum, synthetic or both"
                )));
            }
        };
        let format = match get("format").as_deref() {
            None | Some("html") => Format::Html,
            Some("csv") => Format::Csv,
            Some("json") => Format::Json,
            Some(other) => {
                return Err(ParamError(format!(
                    "parameter `format`: {other:?} is not html, csv or json"
                )));
            }
        };
        let (from_ms, to_ms, preset) = time_range(
            get("range").as_deref(),
            get("from").as_deref(),
            get("to").as_deref(),
            now_ms,
        )?;
        for (name, value) in &pairs {
            if value.len() > 512 || value.chars().any(char::is_control) {
                return Err(ParamError(format!(
                    "parameter `{name}` is longer than 512 characters or holds control characters"
                )));
            }
        }
        Ok(ViewParams {
            metric,
            source,
            site: get("site"),
            // Stored groups have no trailing slash (`/docs/` is `/docs`).
            page_group: get("page_group").map(|g| match g.trim_end_matches('/') {
                "" => "/".to_string(),
                trimmed => trimmed.to_string(),
            }),
            device: get("device"),
            flow: get("flow"),
            step: get("step"),
            location: get("location"),
            format,
            from_ms,
            to_ms,
            preset,
            raw: pairs,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A positive page number (`page`), 1 when absent.
    pub fn page(&self) -> Result<usize, ParamError> {
        match self.get("page") {
            None => Ok(1),
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| ParamError(format!("parameter `page`: {p:?} is not a page number"))),
        }
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }

    /// The period of the same length just before this one.
    pub fn previous(&self) -> (i64, i64) {
        (self.from_ms - self.span_ms(), self.from_ms)
    }

    /// Filter of the field (RUM) side of a view.
    pub fn field_filter(&self) -> Filter {
        Filter {
            site: self.site.clone(),
            page_group: self.page_group.clone(),
            device: self.device.clone(),
            source: Some("rum".into()),
            ..Filter::default()
        }
    }

    /// Filter of the lab (synthetic) side of a view.
    pub fn lab_filter(&self) -> Filter {
        Filter {
            device: self.device.clone(),
            source: Some("synthetic".into()),
            flow: self.flow.clone(),
            step: self.step.clone(),
            location: self.location.clone(),
            ..Filter::default()
        }
    }

    /// `path?…` with this view's parameters, changed by `set` (an empty value
    /// removes the parameter). Always a relative link into this collector.
    pub fn href(&self, path: &str, set: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .raw
            .iter()
            .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
            .cloned()
            .collect();
        for (k, v) in set {
            if !v.is_empty() {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
        // A preset and a custom range exclude each other.
        if set.iter().any(|(k, v)| *k == "range" && !v.is_empty()) {
            pairs.retain(|(k, _)| k != "from" && k != "to");
        }
        pairs.sort_by_key(|(k, _)| KNOWN.iter().position(|n| n == k));
        link(path, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Only the parameters named, as `path?…`.
    pub fn href_only(&self, path: &str, keep: &[&str], set: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .raw
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()) && !set.iter().any(|(s, _)| s == k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.extend(set.iter().filter(|(_, v)| !v.is_empty()).copied());
        pairs.sort_by_key(|(k, _)| KNOWN.iter().position(|n| n == k));
        link(path, pairs.into_iter())
    }
}

/// `path?k=v&…`, percent-encoded.
pub fn link<'a>(path: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in pairs.enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn time_range(
    range: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now_ms: i64,
) -> Result<(i64, i64, Option<&'static str>), ParamError> {
    if let Some(r) = range {
        if from.is_some() || to.is_some() {
            return Err(ParamError(
                "give either `range` or `from`/`to`, not both".into(),
            ));
        }
        let (name, span) = RANGES.iter().find(|(n, _)| *n == r).ok_or_else(|| {
            ParamError(format!(
                "parameter `range`: {r:?} is not one of 1h, 24h, 7d, 30d, 90d (or give from/to)"
            ))
        })?;
        return Ok((now_ms - span, now_ms, Some(name)));
    }
    let (Some(from), to) = (from, to) else {
        if to.is_some() {
            return Err(ParamError("parameter `to` needs `from` too".into()));
        }
        return Ok((now_ms - DAY_MS, now_ms, Some("24h")));
    };
    let from_ms = instant("from", from)?;
    let to_ms = match to {
        Some(t) => instant("to", t)?,
        None => now_ms,
    };
    if from_ms >= to_ms {
        return Err(ParamError("parameter `from` must be before `to`".into()));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(ParamError(
            "the time range may span at most 400 days".into(),
        ));
    }
    Ok((from_ms, to_ms, None))
}

/// Unix milliseconds, or a UTC date and time as a `datetime-local` control
/// sends it (`2026-11-24T09:00`, seconds optional), or a date alone.
pub fn instant(name: &str, value: &str) -> Result<i64, ParamError> {
    if let Ok(ms) = value.parse::<i64>() {
        if (946_684_800_000..=4_102_444_800_000).contains(&ms) {
            return Ok(ms);
        }
        return Err(ParamError(format!(
            "parameter `{name}`: {value} is not Unix time in milliseconds between 2000 and 2100"
        )));
    }
    parse_datetime(value).ok_or_else(|| {
        ParamError(format!(
            "parameter `{name}`: {value:?} is not a date and time like 2026-11-24T09:00 (UTC) or Unix milliseconds"
        ))
    })
}

fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.trim_end_matches('Z').splitn(3, ':');
    let hour = t.next()?.parse::<i64>().ok()?;
    let minute = t.next().unwrap_or("0").parse::<i64>().ok()?;
    let second = t.next().unwrap_or("0").parse::<f64>().ok()?;
    if !(2000..=2100).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0.0..60.0).contains(&second)
    {
        return None;
    }
    Some(
        days_from_civil(y, m, day) * DAY_MS
            + hour * HOUR_MS
            + minute * 60_000
            + (second * 1000.0) as i64,
    )
}

/// Days since 1970-01-01 (Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-24T09:00` for a `datetime-local` control's value.
pub fn datetime_local(ms: i64) -> String {
    // email::utc gives `2026-11-24 09:00 UTC`.
    crate::alerts::email::utc(ms)
        .trim_end_matches(" UTC")
        .replacen(' ', "T", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ViewParams, ParamError> {
        let raw = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ViewParams::parse(&raw, 1_800_000_000_000)
    }

    #[test]
    fn datetime_local_round_trips() {
        let ms = parse_datetime("2026-11-24T09:30").unwrap();
        assert_eq!(datetime_local(ms), "2026-11-24T09:30");
        assert_eq!(parse_datetime("2026-02-30T00:00").map(|_| ()), Some(()));
        assert_eq!(parse_datetime("1999-01-01"), None);
        assert_eq!(parse_datetime("2026-11-24T25:00"), None);
    }

    #[test]
    fn errors_name_the_parameter() {
        assert!(
            parse(&[("metric", "LCPX")])
                .unwrap_err()
                .0
                .contains("`metric`")
        );
        assert!(parse(&[("range", "2w")]).unwrap_err().0.contains("`range`"));
        assert!(
            parse(&[("colour", "red")])
                .unwrap_err()
                .0
                .contains("`colour`")
        );
        assert!(
            parse(&[("from", "yesterday")])
                .unwrap_err()
                .0
                .contains("`from`")
        );
        assert!(
            parse(&[("range", "1h"), ("from", "2026-11-24")])
                .unwrap_err()
                .0
                .contains("not both")
        );
    }

    #[test]
    fn links_keep_the_view_and_change_what_is_asked() {
        let p = parse(&[("metric", "INP"), ("site", "shop & co"), ("range", "7d")]).unwrap();
        assert_eq!(p.preset, Some("7d"));
        assert_eq!(
            p.href("/series", &[("page_group", "/p/:id")]),
            "/series?range=7d&metric=INP&site=shop%20%26%20co&page_group=/p/:id"
        );
        let custom = parse(&[("from", "2026-11-24T00:00"), ("to", "2026-11-25T00:00")]).unwrap();
        assert_eq!(custom.span_ms(), DAY_MS);
        assert_eq!(custom.href("/", &[("range", "1h")]), "/?range=1h");
    }
}
