//! Python's `concurrent.futures` in Rust, behaviour for behaviour: [`Future`], [`wait`],
//! [`as_completed`], [`ThreadPoolExecutor`], [`ProcessPoolExecutor`] (and, with the
//! `slurm` feature, a pool whose workers are Slurm jobs), `map` and `shutdown`.
//!
//! The names are Python's; where the two differ, the item's documentation says so. The
//! extensions — `kill` of a running call, breaking a deadlocked wait, observing every
//! state change through a [`Sink`] — are marked as such. This crate knows nothing of
//! YAML or terminals: the `futuretop` program builds its monitor on it.
//!
//! # The `ThreadPoolExecutor` example of the Python documentation
//!
//! The URLs are stood in for by a local computation, so the example runs offline:
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use futuretop_engine::{as_completed, Executor, Fallible, ThreadPoolExecutor};
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
//! # Ok::<(), futuretop_engine::Error>(())
//! ```
//!
//! # The `ProcessPoolExecutor` example of the Python documentation
//!
//! A process pool runs *named* callables: a worker is this program started again, and it
//! must serve them first thing in `main` (the analogue of Python pickling a top-level
//! function). `is_prime` is the documentation's. The example runs as a doctest: its own
//! binary serves as the workers.
//!
//! ```
//! use futuretop_engine::{Callables, ProcessPoolExecutor};
//! use serde_json::{json, Value};
//!
//! const PRIMES: [u64; 6] =
//!     [112272535095293, 112582705942171, 112272535095293, 115280095190773, 115797848077099, 1099726899285419];
//!
//! fn is_prime(n: u64) -> bool {
//!     if n < 2 { return false }
//!     if n == 2 { return true }
//!     if n % 2 == 0 { return false }
//!     let sqrt_n = n.isqrt();
//!     (3..=sqrt_n).step_by(2).all(|i| n % i != 0)
//! }
//!
//! fn main() -> Result<(), futuretop_engine::Error> {
//!     let mut callables = Callables::new();
//!     callables.register("is_prime", |n, _| Ok(Value::Bool(n.as_u64().is_some_and(is_prime))));
//!     // In a worker this serves calls and exits; in the parent it returns at once.
//!     futuretop_engine::serve_worker_if_requested(&callables);
//!
//!     let executor = ProcessPoolExecutor::new(2)?;
//!     let results = executor.map("is_prime", PRIMES.iter().map(|&n| json!(n)), None, 1)?;
//!     for (number, prime) in PRIMES.iter().zip(results) {
//!         println!("{number} is prime: {}", prime?);
//!     }
//!     Ok(())
//! }
//! ```

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod context;
pub mod error;
pub mod executor;
pub mod future;
pub mod observe;
mod signal;
pub mod status;
mod sync;

pub use context::{checkpoint, current_task, in_task, InterruptReason, Kill};
pub use error::{
    BrokenExecutor, BrokenKind, BuildError, CancelledError, Error, ErrorKind, Exception, FutureError,
    InvalidStateError, SubmitError, TimeoutError,
};
#[cfg(feature = "slurm")]
pub use executor::{serve_slurm_job_if_requested, SlurmPool, SlurmPoolBuilder};
pub use executor::{
    serve_worker_if_requested, Call, Callables, Executor, Fallible, MapFn, MapIter, MapOptions, ProcessCall,
    ProcessPoolBuilder, ProcessPoolExecutor, ThreadPoolBuilder, ThreadPoolExecutor, WorkerContext,
};
pub use future::{as_completed, wait, AsCompleted, Future, FutureState, ReturnWhen, WaitResult};
pub use observe::{FutureId, Observation, Outcome, Sink, WaitOutcome};
pub use status::Stream;
