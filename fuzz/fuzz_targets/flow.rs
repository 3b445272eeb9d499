//! `cargo +nightly fuzz run --features libfuzzer flow`: the checks are
//! [`vitalsign_fuzz::flow`], which the corpus replay test runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vitalsign_fuzz::flow(data));
