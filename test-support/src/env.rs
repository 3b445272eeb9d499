//! Benchmark knobs from environment variables (`VITALSIGN_BENCH_…`): a value
//! that is set but does not parse fails loudly rather than silently falling
//! back to the default.

use std::str::FromStr;

/// `$name` parsed, or `default` when unset.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| {
            panic!(
                "{name}={text:?} is not a valid {}",
                std::any::type_name::<T>()
            )
        }),
        Err(_) => default,
    }
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    env_or(name, default)
}

pub fn env_usize(name: &str, default: usize) -> usize {
    env_or(name, default)
}
