//! futuretop: Python's `concurrent.futures` in Rust, behaviour for behaviour, with a
//! monitor that shows every future, worker and wait — and the deadlocks they form.
//!
//! The engine is usable on its own, with no YAML and no terminal UI. This is the
//! `ThreadPoolExecutor` example from the Python documentation, in Rust (the URLs are
//! stood in for by a local computation, so the example runs offline):
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use futuretop::{as_completed, Fallible, ThreadPoolExecutor};
//!
//! fn load_url(url: &str, timeout: Duration) -> Result<usize, String> {
//!     // A real program would fetch the page; we pretend its size is its name's length.
//!     if url.contains("nonexistant") { Err(format!("{url}: no such host")) } else { Ok(url.len() * 100) }
//! }
//!
//! let urls = ["http://www.foxnews.com/", "http://www.cnn.com/", "http://some-made-up-domain-nonexistant.com/"];
//! let executor = ThreadPoolExecutor::new(5)?;
//! // Start the load operations and mark each future with its URL.
//! let mut future_to_url = HashMap::new();
//! let mut futures = Vec::new();
//! for url in urls {
//!     let f = executor.submit_named(Some(url), Fallible(move || load_url(url, Duration::from_secs(60))))?;
//!     future_to_url.insert(f.id(), url);
//!     futures.push(f);
//! }
//! let mut failed = 0;
//! for future in as_completed(&futures, None) {
//!     let future = future?;
//!     let url = future_to_url[&future.id()];
//!     match future.result(None) {
//!         Ok(bytes) => println!("{url} page is {bytes} bytes"),
//!         Err(exc) => { println!("{url} generated an exception: {exc}"); failed += 1 }
//!     }
//! }
//! assert_eq!(failed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Where the two differ, the item's documentation says so; the extensions (`kill`,
//! deadlock breaking, observation) are marked as such.

mod config;
mod context;
mod deadlock;
mod demo;
mod error;
mod events;
mod executor;
mod future;
mod headless;
mod observe;
mod runner;
mod sync;
mod tasks;
pub mod tui;

pub use config::{
    load as load_task_file, load_str as load_task_str, load_str_offline as load_task_str_offline, CommandPlan,
    ConfigError, ConfigErrors, Plan, PoolKind, PoolPlan, Pos, TaskPlan, Work,
};
pub use context::{checkpoint, current_task, in_task, InterruptReason};
pub use deadlock::{Deadlock, DeadlockKind, Model as DeadlockModel, WaitEdge};
pub use demo::{scenario, start_local_http, Scenario, DEFAULT_DEMO, SCENARIOS};
pub use error::{
    BrokenExecutor, BrokenKind, BuildError, CancelledError, Exception, FutureError, InvalidStateError, SubmitError,
    TimeoutError,
};
pub use events::{read_log, Counts, ErrorInfo, Event, EventKind, PoolInfo, EVENTS_VERSION};
pub use executor::protocol;
pub use executor::thread_pool::default_thread_workers;
pub use executor::{serve_slurm_job_if_requested, SlurmPool, SlurmPoolBuilder, SLURM_JOB_ARG};
pub use executor::{
    serve_worker_if_requested, Call, Callable, Callables, Executor, Fallible, MapIter, MapOptions, OutputHook,
    ProcessCall, ProcessPoolBuilder, ProcessPoolExecutor, RequestHook, ThreadPoolBuilder, ThreadPoolExecutor,
    ValueHook, WorkerContext, BUILTIN_CALL, COMMAND_CALL, WORKER_ARG,
};
pub use future::{as_completed, wait, AsCompleted, Future, FutureState, Kill, ReturnWhen, WaitResult};
pub use headless::{report as report_headless, Tally};
pub use observe::{FutureId, Observation, Outcome, Sink, WaitOutcome};
pub use runner::{start as start_run, Control, OnDeadlock, RunHandle, RunOptions, RunReport};
pub use tasks::{supervise_command_if_requested, Builtin, Stream, BUILTIN_NAMES, EXEC_ARG};
