//! `cargo +nightly fuzz run --features libfuzzer config`: the checks are
//! [`vitalsign_fuzz::config`], which the corpus replay test runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vitalsign_fuzz::config(data));
