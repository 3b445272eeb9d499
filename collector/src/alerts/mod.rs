//! Alerts: rules over stored vitals and probe runs, one state machine, grouped
//! emails through a transactional outbox.
//!
//! - [`rules`]: which rule applies to which series (configured, then built-in).
//! - [`windows`]: hourly rollup histograms merged into windows; Mann-Whitney U on them.
//! - [`detector`]: regression and budget observations with the numbers behind them.
//! - [`state`]: the `ok → pending → firing → resolved` (+ `insufficient_data`, `error`) machine.
//! - [`engine`]: the pure evaluation: (rules, data, states, silences, now) → changes and emails.
//! - [`email`]: subject and bodies of alert emails; lettre transport and sending.
//! - [`silences`]: API silences and recurring maintenance windows.
//! - [`evaluator`]: the interval task that loads, evaluates and writes.
//! - [`outbox`]: the worker that delivers queued emails with backoff and dead-letters.
//!
//! Their tables are read and written by `crate::store::alerts`.

pub mod detector;
pub mod email;
pub mod engine;
pub mod evaluator;
pub mod outbox;
pub mod rules;
pub mod silences;
pub mod state;
pub mod windows;
