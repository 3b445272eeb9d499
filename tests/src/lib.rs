//! End-to-end fixtures shared by the tests in `tests/tests/`.
//!
//! # Layout
//! - [`workspace_root`]: where the repository is, to find binaries and fixtures.

use std::path::PathBuf;

/// The repository root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
