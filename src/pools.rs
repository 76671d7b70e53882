//! The pool kinds: one implementation of [`Backend`] each (its keys and their validation, its cluster probe, how it is built, and what its tasks may do), registered in one list.
//!
//! To add a kind: write `pools/NAME.rs` with a type implementing [`Backend`], and add its
//! line (`module::Type`) to the `pools!` list at the end of this file. Validation, the runner, events and
//! the built-ins' checks all go through [`PoolKind`] and its backend.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::schema::{join, positive, Report};
use futuretop_engine::executor::{OutputHook, RequestHook, ValueHook};
use futuretop_engine::{BuildError, Exception, Executor, Future, ProcessCall, Sink, SubmitError};

/// A validated pool's keys, by name.
pub type Keys<'m> = HashMap<&'m str, &'m Yaml>;

/// A pool kind.
pub trait Backend: Sync {
    /// Its `kind:` in task files.
    fn name(&self) -> &'static str;

    /// The keys of its own, beside `kind` and `max_workers`.
    fn keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// `max_workers` when the file does not give it.
    fn default_workers(&self) -> usize;

    /// Its worker count from its keys (`max_workers`, or a key of its own).
    fn max_workers(&self, r: &mut dyn Report, path: &str, keys: &Keys<'_>) -> usize {
        match keys.get("max_workers") {
            Some(v) => positive(r, &join(path, "max_workers"), "max_workers", v).unwrap_or(1),
            None => self.default_workers(),
        }
    }

    /// The most workers a pool of this kind may have: a documented limit, far above any
    /// machine's (a thread or a process each), so that a typo cannot start a million.
    fn worker_limit(&self) -> usize;

    /// Its own keys' values, checked (`probe`: also ask whatever it runs on, a cluster,
    /// whether it is there); kept in the plan until the pool is built.
    fn settings(&self, _r: &mut dyn Report, _path: &str, _keys: &Keys<'_>, _probe: bool) -> Value {
        Value::Null
    }

    /// Builds the pool.
    fn build(&self, spec: &Spec<'_>, cx: &BuildCx) -> Result<Box<dyn Pool>, BuildError>;

    /// True when each worker is a process of its own (a task may end it: `exit`, `crash`).
    fn own_processes(&self) -> bool;

    /// True when its tasks can reach the run's other futures (`wait_on`, `submit`).
    fn reaches_run(&self) -> bool;
}

/// A pool as the plan gives it to [`Backend::build`].
pub struct Spec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its worker count.
    pub max_workers: usize,
    /// What [`Backend::settings`] returned.
    pub settings: &'a Value,
}

/// What a pool is built with: where it reports, and the run's hooks.
#[derive(Clone)]
pub struct BuildCx {
    /// Every state change and wait.
    pub sink: Arc<dyn Sink>,
    /// A value, just before its future finishes (worker processes).
    pub on_value: ValueHook,
    /// A line a task's command printed (worker processes).
    pub on_output: OutputHook,
    /// A task's request to the run (worker processes: `wait_on`, `submit`).
    pub on_request: RequestHook,
    /// The program workers run as (default: this one).
    pub program: Option<PathBuf>,
}

/// One task's work, as a pool takes it: run here, or sent to a worker process.
pub trait Job: Send {
    /// Runs the work in this process (on the pool's thread).
    fn run_here(self: Box<Self>) -> Result<Value, Exception>;
    /// The work as a call a worker process runs.
    fn remote(self: Box<Self>) -> ProcessCall;
}

/// A job as an engine call, run where the pool runs it.
pub struct Here(pub Box<dyn Job>);

impl futuretop_engine::Call for Here {
    type Output = Value;
    fn call(self) -> Result<Value, Exception> {
        self.0.run_here()
    }
}

/// A built pool, as the runner uses it.
pub trait Pool: Send + Sync {
    /// Schedules `job` under `name`.
    fn submit(&self, name: &str, job: Box<dyn Job>) -> Result<Future<Value>, SubmitError>;
    /// Schedules `jobs` (with their names) as one chunk where the pool can send them to a
    /// worker together (`chunksize:`); by default, one by one.
    fn submit_chunk(&self, jobs: Vec<(String, Box<dyn Job>)>) -> Vec<Result<Future<Value>, SubmitError>> {
        jobs.into_iter().map(|(name, job)| self.submit(&name, job)).collect()
    }
    /// Python's `shutdown(wait, cancel_futures)`.
    fn shutdown(&self, wait: bool, cancel_futures: bool);
    /// True when the pool is broken: it refuses every submit.
    fn is_broken(&self) -> bool {
        false
    }
    /// Replaces a broken pool by a new one of the same kind, name and settings (for the
    /// retries of its tasks); true if it did. A pool that cannot be renewed says false.
    fn renew(&self) -> Result<bool, BuildError> {
        Ok(false)
    }
}

/// A pool whose calls run in worker processes (or jobs): each task's work goes as a
/// call ([`Job::remote`]), to any engine executor of process calls (in chunks, where it
/// takes them: a process pool).
pub struct Remote<E>(pub E);

impl<E: Executor<ProcessCall> + Send + Sync> Pool for Remote<E> {
    fn submit(&self, name: &str, job: Box<dyn Job>) -> Result<Future<Value>, SubmitError> {
        self.0.submit_named(Some(name), job.remote())
    }

    fn submit_chunk(&self, jobs: Vec<(String, Box<dyn Job>)>) -> Vec<Result<Future<Value>, SubmitError>> {
        self.0.submit_chunk(jobs.into_iter().map(|(name, job)| (Some(name), job.remote())).collect())
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.0.shutdown(wait, cancel_futures);
    }
}

/// Registers the pool kinds: declares each one's module, [`PoolKind`] (named as task files
/// and events name it), and its backend.
macro_rules! pools {
    ($($module:ident :: $variant:ident),* $(,)?) => {
        $(
            mod $module;
            pub use $module::$variant;
        )*

        /// The kind of a pool.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PoolKind {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant,
            )*
        }

        impl PoolKind {
            /// Every kind, in the registration's order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// Its backend.
            pub fn backend(self) -> &'static dyn Backend {
                match self {
                    $(Self::$variant => &$variant,)*
                }
            }
        }
    };
}

pools! {
    thread::Thread,
    process::Process,
    slurm::Slurm,
}

impl PoolKind {
    /// `thread`, `process` or `slurm`, as task files and events name it.
    pub fn as_str(self) -> &'static str {
        self.backend().name()
    }

    /// The kind named `name` in task files.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// True when each worker is a process of its own (a built-in may end it: `exit`).
    pub fn own_processes(self) -> bool {
        self.backend().own_processes()
    }

    /// True when its tasks can reach the run's other futures (`wait_on`, `submit`).
    pub fn reaches_run(self) -> bool {
        self.backend().reaches_run()
    }
}

impl std::fmt::Display for PoolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PoolKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for PoolKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::named(&s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            serde::de::Error::custom(format!("unknown pool kind '{s}' (kinds: {})", names.join(", ")))
        })
    }
}
