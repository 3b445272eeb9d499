//! `cargo +nightly fuzz run --features libfuzzer histogram`: the checks are
//! [`vitalsign_fuzz::histogram`], which the corpus replay test runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vitalsign_fuzz::histogram(data));
