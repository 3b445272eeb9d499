//! Flow files and the runners that walk them: headless Chromium for user
//! flows (lab vitals per step, measured by the web snippet itself) and reqwest
//! for HTTP checks. Checks a flow's `schedule` but never runs one; knows nothing
//! of collectors or storage.
//!
//! # Layout
//! - [`flow`]: the TOML flow format and its validation (file, step, key, what is valid),
//!   its document types and the JSON Schema derived from them; `flow::step` parses
//!   one `[[steps]]` table.
//! - [`profile`]: desktop / mobile / custom device emulation.
//! - [`runner`]: [`Runner`] — one shared browser, a context per run, crash recovery,
//!   and the run assembled from its iterations. Inside it: `browser` (launching and
//!   ending Chromium, [`runner::InfraError`]), `walk` (the steps of one iteration in one
//!   page), `actions` (what each step kind does in the page), `network` (CDP request
//!   and console counters), `read_back` (the measurement injected and read back),
//!   `iteration` (medians over iterations).
//! - [`step_result`]: the one constructor of a step's result, and [`StepError`]:
//!   the site's trouble (`fail`) told apart from ours (`error`) by type.
//! - [`measure`]: the injected snippet and the recorder beside it, read-back, medians.
//! - [`attribution`]: page views, and each step's numbers by what it caused.
//! - [`input`]: real CDP key events.
//! - [`http_check`]: `request` steps over HTTP.
//! - [`process`]: killing a browser's whole process tree.
//!
//! ```no_run
//! # async fn demo() {
//! use vitalsign_probes::{Flow, Runner, RunnerConfig, RunOptions};
//! let flow = Flow::load(std::path::Path::new("deploy/flows/demo.toml")).unwrap();
//! let runner = Runner::new(RunnerConfig::default());
//! let run = runner.run(&flow, &RunOptions::default()).await;
//! println!("{:?}", run.outcome);
//! runner.shutdown().await;
//! # }
//! ```

pub mod attribution;
pub mod flow;
pub mod http_check;
pub mod input;
pub mod measure;
pub mod process;
pub mod profile;
pub mod runner;
pub mod step_result;

pub use flow::{Flow, FlowError};
pub use runner::{RunOptions, Runner, RunnerConfig};
pub use step_result::StepError;
