//! Where the repository and its built binaries are.

use std::path::PathBuf;
use std::process::Command;

/// The repository root (this crate lives in `test-support/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The variable that names a prebuilt binary: `vitalsign-collector` → `VITALSIGN_COLLECTOR_BIN`.
fn bin_var(name: &str) -> String {
    format!("{}_BIN", name.to_uppercase().replace('-', "_"))
}

/// A built binary of the workspace: `$VITALSIGN_<NAME>_BIN` or `target/debug/<name>`.
/// `test.sh` builds them before the tests run.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(bin_var(name)) {
        return PathBuf::from(path);
    }
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (test.sh does)",
        path.display()
    );
    path
}

/// Release builds of `names` (benchmarks): each from `$VITALSIGN_<NAME>_BIN`
/// when all are set, else built here with `cargo build --release` (cargo's
/// build lock is free while a bench runs).
pub fn release_binaries<const N: usize>(names: [&str; N]) -> [PathBuf; N] {
    if names.iter().all(|n| std::env::var_os(bin_var(n)).is_some()) {
        return names.map(|n| PathBuf::from(std::env::var(bin_var(n)).unwrap()));
    }
    eprintln!("building release binaries {names:?} (cargo build --release)…");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["build", "--release", "--quiet"]);
    for name in names {
        command.args(["-p", name, "--bin", name]);
    }
    let status = command
        .current_dir(workspace_root())
        .status()
        .expect("running cargo build");
    assert!(
        status.success(),
        "building the release binaries failed; run `cargo build --release --bins` to see why, \
         or point the VITALSIGN_…_BIN variables at built binaries"
    );
    names.map(|name| {
        let path = target_dir().join("release").join(name);
        assert!(
            path.exists(),
            "{} is missing after the build",
            path.display()
        );
        path
    })
}
