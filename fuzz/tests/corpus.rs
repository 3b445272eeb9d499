//! Replays every fuzz target's corpus through the same checks the fuzzer runs:
//! the seeds (the repository's own fixtures, flows and example configs), the
//! minimised corpus a fuzzing run left in `fuzz/corpus/<target>/`, and every
//! input that once crashed a target (`fuzz/regressions/<target>/`). A crash
//! found by a long run stays fixed because its input is replayed here.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Files directly in `dir` and its subdirectories (fixtures keep valid and
/// invalid documents apart), sorted so a failure names the same file each time.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Runs `check` on every input for `target` and returns how many there were.
/// The fuzzing corpus must be there: an empty one would make this test pass
/// without replaying anything.
fn replay(target: &str, seeds: &[&str], check: fn(&[u8])) -> usize {
    let corpus = root().join("fuzz/corpus").join(target);
    let from_corpus = files_under(&corpus);
    assert!(
        !from_corpus.is_empty(),
        "{} holds no inputs: see fuzz/README.md for how to make the corpus",
        corpus.display()
    );
    let mut inputs = from_corpus;
    inputs.extend(files_under(&root().join("fuzz/regressions").join(target)));
    for seed in seeds {
        inputs.extend(files_under(&root().join(seed)));
    }
    for path in &inputs {
        let data = std::fs::read(path).expect("a readable input");
        // Each input on a thread of its own with a deadline: an input that
        // hangs a parser (the flow target once found a cron expression that
        // took 213 s to validate) fails here instead of stalling the suite.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| check(&data));
            let _ = done.send(outcome.is_ok());
        });
        match finished.recv_timeout(PER_INPUT_DEADLINE) {
            Ok(true) => {}
            Ok(false) => panic!("fuzz target {target} fails on {}", path.display()),
            Err(_) => panic!(
                "fuzz target {target} takes more than {PER_INPUT_DEADLINE:?} on {}",
                path.display()
            ),
        }
    }
    inputs.len()
}

/// Far above what any input takes in a debug build on a loaded machine
/// (milliseconds), far below a parser that hangs.
const PER_INPUT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

#[test]
fn beacon_corpus() {
    let n = replay("beacon", &["tests/fixtures/beacon"], vitalsign_fuzz::beacon);
    assert!(n > 20, "only {n} beacon inputs");
}

#[test]
fn run_corpus() {
    let n = replay("run", &["tests/fixtures/run"], vitalsign_fuzz::run);
    assert!(n > 15, "only {n} run inputs");
}

#[test]
fn flow_corpus() {
    let n = replay("flow", &["deploy/flows"], vitalsign_fuzz::flow);
    assert!(n > 10, "only {n} flow inputs");
}

#[test]
fn config_corpus() {
    let n = replay("config", &[], vitalsign_fuzz::config);
    assert!(n > 2, "only {n} config inputs");
}

#[test]
fn histogram_corpus() {
    let n = replay("histogram", &[], vitalsign_fuzz::histogram);
    assert!(n > 2, "only {n} histogram inputs");
}
