//! What each fuzz target checks, shared by the libFuzzer binaries
//! (`fuzz_targets/`, built only by `cargo fuzz`) and the corpus replay test
//! (`tests/corpus.rs`, part of `./test.sh`), so a crash the fuzzer found stays
//! a test case once its input is in `corpus/`.
//!
//! Layout:
//! - [`beacon`], [`run`]: the wire parsers with validation (`POST /v1/rum`,
//!   `POST /v1/runs`): never panic; what they accept survives a JSON round
//!   trip unchanged; what they refuse gets a short, printable error that names
//!   a field.
//! - [`flow`]: the flow-file parser and its validation (`vitalsign-agent
//!   validate`): never panics; errors are bounded and printable.
//! - [`config`]: the collector's and the agent's config loaders, from a file as
//!   in production: never panic; every error names the file.
//! - [`histogram`]: the rollup histogram codec: decoding any blob never
//!   panics; encode/decode is a fixed point; the dense accumulator agrees
//!   with the tree histogram on every count and quantile.
//!
//! A check that fails panics with what it saw: that is what libFuzzer records
//! as a crash, and what fails the replay test.

use std::cell::RefCell;
use std::io::Write;

use vitalsign_agent::config::AgentConfig;
use vitalsign_collector::config::CollectorConfig;
use vitalsign_collector::histogram::{Accumulator, Histogram};
use vitalsign_core::wire::{self, ValidationError};
use vitalsign_probes::Flow;

/// The longest `field: reason` a client can get: both parts are capped (each
/// may end in `…`) and joined by `": "`.
const MAX_CLIENT_ERROR_CHARS: usize = wire::MAX_PATH_CHARS + 1 + 2 + wire::MAX_MESSAGE_CHARS + 1;
/// Flow errors quote at most 200 bytes of input; with the file name, the step
/// and the wording they stay well under this.
const MAX_FLOW_ERROR_BYTES: usize = 1024;

/// `POST /v1/rum`: parse and validate a beacon body.
pub fn beacon(data: &[u8]) {
    match wire::parse_beacon(data) {
        Ok(beacon) => {
            let again = serde_json::to_vec(&beacon).expect("an accepted beacon serializes");
            let reparsed = wire::parse_beacon(&again)
                .unwrap_or_else(|e| panic!("an accepted beacon, written back, is refused: {e}"));
            assert_eq!(reparsed, beacon, "a beacon changed in a JSON round trip");
        }
        Err(error) => check_client_error(&error),
    }
}

/// `POST /v1/runs`: parse and validate a probe run body.
pub fn run(data: &[u8]) {
    match wire::parse_run(data) {
        Ok(run) => {
            let again = serde_json::to_vec(&run).expect("an accepted run serializes");
            let reparsed = wire::parse_run(&again)
                .unwrap_or_else(|e| panic!("an accepted run, written back, is refused: {e}"));
            assert_eq!(reparsed, run, "a run changed in a JSON round trip");
        }
        Err(error) => check_client_error(&error),
    }
}

fn check_client_error(error: &ValidationError) {
    assert!(
        !error.field.is_empty(),
        "an error names no field: {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.chars().count() <= MAX_CLIENT_ERROR_CHARS,
        "an error of {} characters: {message:.200}",
        message.chars().count()
    );
    assert!(
        !message.chars().any(char::is_control),
        "an error carries a control character: {message:?}"
    );
}

/// `vitalsign-agent validate` and every flow the agent loads.
pub fn flow(data: &[u8]) {
    // Flow files are read as UTF-8 text (`read_to_string`); other bytes never
    // reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = Flow::parse(text, "fuzz.toml") {
        let message = error.to_string();
        assert!(
            message.starts_with("fuzz.toml"),
            "a flow error does not name its file: {message:.200}"
        );
        assert!(
            message.len() <= MAX_FLOW_ERROR_BYTES,
            "a flow error of {} bytes: {message:.200}",
            message.len()
        );
        assert!(
            !message.chars().any(char::is_control),
            "a flow error carries a control character: {message:?}"
        );
    }
}

thread_local! {
    /// One scratch directory for the config target: the loaders read a file,
    /// as in production, and creating a directory per input would cost more
    /// than the parse.
    static CONFIG_DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// `vitalsign-collector --config FILE` and `vitalsign-agent --config FILE`.
pub fn config(data: &[u8]) {
    CONFIG_DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        let dir = dir.get_or_insert_with(scratch_dir);
        let path = dir.path().join("fuzz.toml");
        let mut file = std::fs::File::create(&path).expect("the scratch config file");
        file.write_all(data).expect("the scratch config file");
        drop(file);

        // Both loaders validate as they load; an error is an answer, a panic
        // is the failure.
        if let Err(error) = CollectorConfig::load(Some(&path)) {
            check_config_error(&error.to_string());
        }
        if let Err(error) = AgentConfig::load(Some(&path)) {
            check_config_error(&error.to_string());
        }
    });
}

/// The config target's scratch directory: in memory where the system has one.
/// On ext4, rewriting a file in place flushes it to disk at close (the
/// replace-by-truncate heuristic), which took a quarter of the target's time.
fn scratch_dir() -> tempfile::TempDir {
    let in_memory = std::path::Path::new("/dev/shm");
    if in_memory.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(in_memory)
    {
        return dir;
    }
    tempfile::tempdir().expect("a scratch directory")
}

fn check_config_error(message: &str) {
    // "Config errors name the file and key": at least the file, always.
    assert!(
        message.contains("fuzz.toml"),
        "a config error does not name its file: {message:.200}"
    );
}

/// The rollup histograms stored as blobs (hourly and daily rollups).
pub fn histogram(data: &[u8]) {
    let decoded = Histogram::decode(data);
    let blob = decoded.encode();
    assert_eq!(
        Histogram::decode(&blob),
        decoded,
        "decode(encode(h)) is not h"
    );
    assert_eq!(decoded.encode(), blob, "encoding is not deterministic");

    let mut dense = Accumulator::default();
    dense.add_encoded(&blob);
    assert_eq!(dense.count(), decoded.count(), "counts disagree");
    for q in [0.0, 0.5, 0.75, 0.9, 0.99, 1.0] {
        assert_eq!(
            dense.quantile(q),
            decoded.quantile(q),
            "quantile {q} disagrees"
        );
    }
    // The blob, read as values, fed through `add`: any f64 a writer could
    // see, NaN and infinities included, must land in some bucket.
    let mut built = Histogram::default();
    for chunk in data.chunks_exact(8) {
        let value = f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        built.add(value, 1);
    }
    assert_eq!(built.count(), (data.len() / 8) as u64);
    let rebuilt = Histogram::decode(&built.encode());
    assert_eq!(rebuilt, built, "a built histogram changed in a round trip");
}
