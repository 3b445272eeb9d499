//! `cargo +nightly fuzz run --features libfuzzer run`: the checks are
//! [`vitalsign_fuzz::run`], which the corpus replay test runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vitalsign_fuzz::run(data));
