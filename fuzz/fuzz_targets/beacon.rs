//! `cargo +nightly fuzz run --features libfuzzer beacon`: the checks are
//! [`vitalsign_fuzz::beacon`], which the corpus replay test runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vitalsign_fuzz::beacon(data));
