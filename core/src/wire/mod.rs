//! The wire contract: the JSON documents that cross from browsers and agents to
//! the collector. Defined once here; `tests/fixtures/` holds valid and invalid
//! examples that both the Rust tests and the snippet's tests read.
//!
//! Parsing goes through [`parse_beacon`] / [`parse_run`], which report type errors
//! with the JSON path of the field (`reports[1].value`), then run the semantic
//! checks of [`beacon::Beacon::validate`] / [`run::ProbeRun::validate`].

pub mod beacon;
pub mod run;

pub use beacon::Beacon;
pub use run::ProbeRun;

/// The schema version this build writes and accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// A document that is not acceptable, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// JSON path of the field, for example `reports[2].value`; `.` for the whole document.
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub type Validated<T> = Result<T, ValidationError>;

/// Parse and validate a beacon body.
pub fn parse_beacon(body: &[u8]) -> Validated<Beacon> {
    let beacon: Beacon = parse_json(body)?;
    beacon.validate()?;
    Ok(beacon)
}

/// Parse and validate a probe run body.
pub fn parse_run(body: &[u8]) -> Validated<ProbeRun> {
    let run: ProbeRun = parse_json(body)?;
    run.validate()?;
    Ok(run)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Validated<T> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        let reason = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            strip_position(&inner.to_string())
        };
        // serde reports a missing key at its parent; name the key itself.
        if let Some(key) = named_key(&reason) {
            path = if path == "." {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
        }
        ValidationError::new(path, reason)
    })?;
    de.end()
        .map_err(|e| ValidationError::new(".", format!("trailing data after the document: {e}")))?;
    Ok(value)
}

fn named_key(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.split('`').next()
}

/// serde_json appends "at line 1 column 80" to type errors; with the field path
/// in front that position only adds noise.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

// Shared field checks, so beacon and run phrase their errors the same way.

pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Validated<()> {
    let len = value.chars().count();
    if len < min {
        return Err(ValidationError::new(
            field,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Identifiers (site keys, run ids, locations) are plain ASCII so they are safe
/// in URLs, logs and file names.
pub(crate) fn check_ident(field: &str, value: &str, max: usize) -> Validated<()> {
    check_len(field, value, 1, max)?;
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(ValidationError::new(
            field,
            format!("contains {bad:?}; only letters, digits, '-', '_', '.' and ':' are allowed"),
        ));
    }
    Ok(())
}

pub(crate) fn check_no_control(field: &str, value: &str) -> Validated<()> {
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "contains control characters"));
    }
    Ok(())
}

pub(crate) fn check_http_url(field: &str, value: &str) -> Validated<()> {
    check_len(field, value, 1, MAX_URL_LEN)?;
    check_no_control(field, value)?;
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| ValidationError::new(field, "must be an absolute http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(ValidationError::new(field, "has no host"));
    }
    Ok(())
}

pub(crate) fn check_range(field: &str, value: f64, min: f64, max: f64) -> Validated<()> {
    if !value.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    if value < min || value > max {
        return Err(ValidationError::new(
            field,
            format!("{value} is out of range; expected {min} to {max}"),
        ));
    }
    Ok(())
}

pub const MAX_URL_LEN: usize = 2048;
/// Selectors are truncated by the snippet well below this; longer ones are not ours.
pub const MAX_SELECTOR_LEN: usize = 200;
