//! The shared fixtures under `tests/fixtures/` are the contract between the
//! Rust side and the snippet: every valid one must round-trip unchanged, every
//! invalid one must be rejected with an error that names its `field`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vitalsign_core::wire::{self, ValidationError};

fn fixtures(kind: &str, validity: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(kind)
        .join(validity);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

type Parse = fn(&[u8]) -> Result<Value, ValidationError>;

fn parse_beacon(body: &[u8]) -> Result<Value, ValidationError> {
    wire::parse_beacon(body).map(|b| serde_json::to_value(b).unwrap())
}

fn parse_run(body: &[u8]) -> Result<Value, ValidationError> {
    wire::parse_run(body).map(|r| serde_json::to_value(r).unwrap())
}

fn check_valid(kind: &str, parse: Parse) -> usize {
    let files = fixtures(kind, "valid");
    for path in &files {
        let bytes = read(path);
        let parsed = parse(&bytes)
            .unwrap_or_else(|e| panic!("{} should be valid, got: {e}", path.display()));
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            normalise(parsed),
            normalise(original),
            "{} does not round-trip",
            path.display()
        );
    }
    files.len()
}

/// Numbers compare as f64 (`520` and `520.0` are the same value) and defaulted
/// fields (`iterations: 1`) may be written out on the way back.
fn normalise(value: Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, v)| {
                    !(matches!(k.as_str(), "iterations" | "attempt") && v.as_u64() == Some(1)
                        || matches!(
                            k.as_str(),
                            "requests" | "transfer_bytes" | "failed_requests" | "console_errors"
                        ) && v.as_u64() == Some(0))
                })
                .map(|(k, v)| (k, normalise(v)))
                .collect(),
        ),
        other => other,
    }
}

fn check_invalid(kind: &str, parse: Parse) -> usize {
    let files = fixtures(kind, "invalid");
    for path in &files {
        let case: Value = serde_json::from_slice(&read(path)).unwrap();
        let field = case["field"]
            .as_str()
            .expect("invalid fixture names its field");
        let body = serde_json::to_vec(&case["document"]).unwrap();
        let err = parse(&body)
            .err()
            .unwrap_or_else(|| panic!("{} should be rejected", path.display()));
        assert_eq!(
            err.field,
            field,
            "{}: wrong field in `{err}`",
            path.display()
        );
        assert!(!err.reason.is_empty());
    }
    files.len()
}

#[test]
fn valid_beacons_round_trip() {
    assert!(check_valid("beacon", parse_beacon) >= 3);
}

#[test]
fn valid_runs_round_trip() {
    assert!(check_valid("run", parse_run) >= 3);
}

#[test]
fn invalid_beacons_name_the_field() {
    assert!(check_invalid("beacon", parse_beacon) >= 10);
}

#[test]
fn invalid_runs_name_the_field() {
    assert!(check_invalid("run", parse_run) >= 10);
}

#[test]
fn malformed_json_is_reported_as_such() {
    let err = wire::parse_beacon(b"{\"schema_version\": 1,").unwrap_err();
    assert!(err.reason.starts_with("malformed JSON"), "{err}");
    let err = wire::parse_beacon(b"[]").unwrap_err();
    assert_eq!(err.field, ".");
    let err = wire::parse_run(b"{} trailing").unwrap_err();
    assert!(
        err.to_string().contains("trailing") || err.to_string().contains("missing"),
        "{err}"
    );
}

/// Errors quote at most a short excerpt of what was sent, with control
/// characters escaped, and always name a field (issue 18, finding 5).
#[test]
fn errors_quote_a_bounded_excerpt_and_name_the_field() {
    let valid: Value = serde_json::from_slice(&read(&fixtures("beacon", "valid")[0])).unwrap();
    let long = format!("\u{1b}[31m{}\u{0}", "x".repeat(65_000));
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for (pointer, value) in [
        ("/navigation_type", Value::String(long.clone())),
        ("/reports/0/metric", Value::String(long.clone())),
        ("/url", Value::String(long.clone())),
        ("/site", Value::String(long.clone())),
        ("/reports/0/value", Value::String(long.clone())),
        ("/snippet_version", Value::String(long.clone())),
        ("/device", serde_json::json!(5)),
        ("/navigation_type", serde_json::json!([])),
        ("/reports/0/metric", serde_json::json!({})),
        ("/reports/0/rating", serde_json::json!({"a": 1})),
        ("/reports/0", serde_json::json!(1)),
        ("/reports", serde_json::json!("a")),
    ] {
        let mut doc = valid.clone();
        match doc.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => doc[&pointer[1..]] = value,
        }
        cases.push(serde_json::to_vec(&doc).unwrap());
    }
    let mut unknown_key = valid.clone();
    unknown_key
        .as_object_mut()
        .unwrap()
        .insert(long.clone(), Value::Bool(true));
    cases.push(serde_json::to_vec(&unknown_key).unwrap());
    cases.push(long.clone().into_bytes());
    cases.push(format!("{{\"site\": {long}").into_bytes());
    for body in cases {
        let err = wire::parse_beacon(&body).unwrap_err();
        let message = err.to_string();
        assert!(
            !message.contains(&"x".repeat(201)),
            "quotes more than 200 bytes of input: {}",
            &message[..message.len().min(300)]
        );
        assert!(
            !message.chars().any(char::is_control),
            "control characters in {message:?}"
        );
        assert!(
            !err.field.is_empty() && !err.field.contains('?'),
            "no field named in {message:?}"
        );
        assert!(message.len() < 1_000, "{message}");
    }
}

/// A body that is not UTF-8 is refused at the string that breaks it; the
/// same bytes with that string repaired are accepted (the fast path checks
/// the whole body before parsing it as text).
#[test]
fn a_body_that_is_not_utf8_is_refused_at_its_field() {
    let valid: Value = serde_json::from_slice(&read(&fixtures("beacon", "valid")[0])).unwrap();
    let mut doc = valid.clone();
    doc["url"] = Value::String("https://shop.example/cafe".to_string());
    let good = serde_json::to_vec(&doc).unwrap();
    assert!(wire::parse_beacon(&good).is_ok());
    // "cafe" with its "e" as a lone Latin-1 byte.
    let at = good.windows(4).position(|w| w == b"cafe").unwrap() + 3;
    let mut broken = good.clone();
    broken[at] = 0xe9;
    assert!(std::str::from_utf8(&broken).is_err());
    let err = wire::parse_beacon(&broken).unwrap_err();
    assert_eq!(err.field, "url", "{err}");
    assert!(
        err.reason.contains("unicode") || err.reason.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn urls_without_a_real_host_are_refused() {
    let valid: Value = serde_json::from_slice(&read(&fixtures("beacon", "valid")[0])).unwrap();
    for url in [
        "https:// /",
        "https://shop example/",
        "http://:8080/",
        "https://@/",
        "https://?q",
    ] {
        let mut doc = valid.clone();
        doc["url"] = Value::String(url.to_string());
        let err = wire::parse_beacon(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert_eq!(err.field, "url", "{url}: {err}");
    }
}
