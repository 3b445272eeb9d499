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
