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

/// The beacon schema version this build writes and accepts. Probe runs have
/// their own, [`run::RUN_SCHEMA_VERSION`].
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
    /// Both parts pass through [`bounded`]: a reason may quote the input (serde
    /// names the string it could not parse), and an error body must not echo
    /// kilobytes of it or its control characters back to the client or the log.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: bounded_path(&field.into()),
            reason: bounded(&reason.into()),
        }
    }

    /// The same error one level down: `value` under `reports[2]` becomes
    /// `reports[2].value`. Validation names the parent only on this error
    /// path, so an accepted document costs no path strings.
    pub fn under(self, parent: impl std::fmt::Display) -> Self {
        Self::new(format!("{parent}.{}", self.field), self.reason)
    }
}

/// The longest excerpt of the input an error quotes, in characters.
pub const MAX_EXCERPT_CHARS: usize = 64;
/// The longest message an error carries, in characters (quoted excerpts included).
pub const MAX_MESSAGE_CHARS: usize = 400;
/// The longest field path an error names, in characters as written (escapes
/// included); client-chosen keys are cut with `…`.
pub const MAX_PATH_CHARS: usize = 128;

/// A short, printable excerpt of client input for an error message: control
/// characters escaped, at most [`MAX_EXCERPT_CHARS`] characters of the input
/// (so at most 4 × that many bytes), with the rest counted, not shown.
pub fn excerpt(input: &str) -> String {
    let total = input.chars().count();
    let mut out: String = input
        .chars()
        .take(MAX_EXCERPT_CHARS)
        .flat_map(escape_control)
        .collect();
    if total > MAX_EXCERPT_CHARS {
        out.push_str(&format!(
            "… ({} more characters)",
            total - MAX_EXCERPT_CHARS
        ));
    }
    out
}

fn escape_control(c: char) -> Vec<char> {
    if c.is_control() {
        c.escape_unicode().collect()
    } else {
        vec![c]
    }
}

/// A field path is ours except for map keys and unknown keys, which the client
/// chose: cap it like an excerpt, and name the document when there is no path.
/// The cap counts the path as written in the error, escapes included: a key of
/// 128 DEL characters once became 768 characters of `\u{7f}` (found by the
/// `run` fuzz target).
fn bounded_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let mut out = String::new();
    let mut written = 0;
    for c in path.chars() {
        let piece = escape_control(c);
        if written + piece.len() > MAX_PATH_CHARS {
            out.push('…');
            break;
        }
        written += piece.len();
        out.extend(piece);
    }
    out
}

/// Shorten every quoted segment (between backticks or double quotes, as serde
/// and our own messages quote input) to an [`excerpt`], escape control
/// characters elsewhere, and cap the whole message.
fn bounded(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap();
        out.extend(rest[..open].chars().flat_map(escape_control));
        let after = &rest[open + 1..];
        match after.find(quote) {
            Some(close) => {
                out.push(quote);
                out.push_str(&excerpt(&after[..close]));
                out.push(quote);
                rest = &after[close + 1..];
            }
            None => {
                out.push(quote);
                out.push_str(&excerpt(after));
                rest = "";
            }
        }
    }
    out.extend(rest.chars().flat_map(escape_control));
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
    }
    out
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
    // Almost every body is well-formed: parse it plainly, and only when that
    // fails parse again with path tracking to say where. Tracking the path
    // on every beacon cost a tenth of the collector's ingest CPU. The body is
    // checked for UTF-8 once, as a whole: parsed from bytes, serde_json checks
    // each string and key on its own, which cost more than the whole body's
    // check (about 50 strings in a beacon). Invalid UTF-8 takes the slow path,
    // which names where it is.
    if let Ok(text) = std::str::from_utf8(body) {
        let mut de = serde_json::Deserializer::from_str(text);
        if let Ok(value) = <T as serde::Deserialize>::deserialize(&mut de)
            && de.end().is_ok()
        {
            return Ok(value);
        }
    }
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
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    // The characters RFC 3986 allows in an authority; anything else (a space
    // in `https:// /`) is not a host a browser could have loaded.
    if let Some(bad) = authority.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '%'
                    | ':'
                    | '@'
                    | '['
                    | ']'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
            ))
    }) {
        return Err(ValidationError::new(
            field,
            format!("has {bad:?} in its host; a host is letters, digits, '-' and '.'"),
        ));
    }
    let hostname = if host.starts_with('[') {
        host
    } else {
        host.split(':').next().unwrap_or("")
    };
    if hostname.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_chosen_key_is_capped_as_written() {
        // An unknown key of 300 DEL characters: each is written `\u{7f}` (six
        // characters), and the cap counts what is written, not what was sent.
        let key = "\u{7f}".repeat(300);
        let body = format!(r#"{{"{key}": 1}}"#);
        let error = parse_run(body.as_bytes()).unwrap_err();
        assert!(error.field.starts_with("\\u{7f}"), "{:?}", error.field);
        assert!(error.field.ends_with('…'));
        assert!(
            error.field.chars().count() <= MAX_PATH_CHARS + 1,
            "{} characters",
            error.field.chars().count()
        );
        assert!(error.to_string().chars().count() <= MAX_PATH_CHARS + MAX_MESSAGE_CHARS + 4);
    }
}
