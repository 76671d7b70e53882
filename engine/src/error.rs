//! The error family of the engine: what a future, a wait, a submit or a builder can fail with.
//!
//! Python raises one exception class per failure; here each failure surface has its own
//! enum, so a caller matches only on what can really happen:
//!
//! | Python                               | futuretop                                    |
//! |--------------------------------------|----------------------------------------------|
//! | `CancelledError`                     | [`CancelledError`], [`FutureError::Cancelled`] |
//! | `TimeoutError`                       | [`TimeoutError`], [`FutureError::Timeout`]     |
//! | the exception a task raised          | [`Exception`], [`FutureError::Failed`]         |
//! | `InvalidStateError`                  | [`InvalidStateError`]                          |
//! | `RuntimeError` (submit after shutdown) | [`SubmitError::Shutdown`]                    |
//! | `BrokenThreadPool` / `BrokenProcessPool` | [`BrokenExecutor`] (in [`Exception`] and [`SubmitError`]) |
//! | `ValueError` (`max_workers <= 0`)    | [`BuildError`]                                 |
//!
//! Each converts into the crate-level [`Error`], so a caller can use `?` across
//! operations of different kinds.

use std::fmt;

/// The future was cancelled before it ran (Python's `concurrent.futures.CancelledError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the future was cancelled")]
pub struct CancelledError;

/// A wait ran out of time (Python's builtin `TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct TimeoutError {
    /// How many futures were still unfinished, and of how many, when the wait gave up
    /// (`as_completed` and `map` fill this in; a single future's wait leaves it `None`).
    pub unfinished: Option<(usize, usize)>,
    /// For a task stopped because it ran past its time limit (an extension: a task's
    /// `timeout`): that limit. `None` for a wait that timed out.
    pub limit: Option<std::time::Duration>,
}

impl TimeoutError {
    /// A timeout of a wait on one future.
    pub const fn single() -> Self {
        Self { unfinished: None, limit: None }
    }

    /// A task stopped because it ran past its time limit.
    pub const fn limit(limit: std::time::Duration) -> Self {
        Self { unfinished: None, limit: Some(limit) }
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.unfinished, self.limit) {
            (Some((n, of)), _) => write!(f, "{n} (of {of}) futures unfinished"),
            (None, Some(limit)) => write!(f, "ran past its timeout of {} s and was stopped", limit.as_secs_f64()),
            (None, None) => f.write_str("the wait timed out"),
        }
    }
}

/// A state change that Python refuses with `InvalidStateError` (or, for
/// `set_running_or_notify_cancel`, a `RuntimeError`): the future is not in a state
/// that allows it. The future is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {future} ({operation} refused)", .state.to_uppercase())]
pub struct InvalidStateError {
    /// The refused operation (`set_result`, `set_exception`, `set_running_or_notify_cancel`).
    pub operation: &'static str,
    /// The state the future was in, lower-case (`finished`, `cancelled`, `running`).
    pub state: &'static str,
    /// The future, as Python's repr names it: `<Future #3 state=finished returned i32>`.
    pub future: String,
}

/// Which kind of executor broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenKind {
    /// A [`ThreadPoolExecutor`](crate::ThreadPoolExecutor): an initializer failed.
    ThreadPool,
    /// A process pool: a worker process died or an initializer failed.
    ProcessPool,
    /// A Slurm pool (an extension): its controller stopped answering, or a job could not
    /// be submitted.
    Slurm,
}

/// The type of an error as events, reports and the worker protocol name it: Python's
/// class name where Python has one (`TimeoutError`, `BrokenProcessPool`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task's own failure (an error it returned, or a panic).
    TaskError,
    /// A wait timed out.
    TimeoutError,
    /// A waited-on future was cancelled.
    CancelledError,
    /// A thread pool broke.
    BrokenThreadPool,
    /// A process pool broke.
    BrokenProcessPool,
    /// A Slurm pool broke (an extension).
    BrokenSlurmPool,
    /// The task was killed (an extension).
    Killed,
    /// The task's wait was broken to end a deadlock (an extension).
    DeadlockError,
    /// An external command failed.
    CommandFailed,
}

impl ErrorKind {
    /// The name, as events and reports write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TaskError => "TaskError",
            Self::TimeoutError => "TimeoutError",
            Self::CancelledError => "CancelledError",
            Self::BrokenThreadPool => "BrokenThreadPool",
            Self::BrokenProcessPool => "BrokenProcessPool",
            Self::BrokenSlurmPool => "BrokenSlurmPool",
            Self::Killed => "Killed",
            Self::DeadlockError => "DeadlockError",
            Self::CommandFailed => "CommandFailed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The executor can no longer run work (Python's `BrokenExecutor` and its subclasses
/// `BrokenThreadPool` and `BrokenProcessPool`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BrokenExecutor {
    /// Which pool kind broke; gives the Python class name through [`BrokenExecutor::type_name`].
    pub kind: BrokenKind,
    /// Why, in a sentence (names the worker and the task where known).
    pub reason: String,
}

impl BrokenExecutor {
    /// Python's class name: `BrokenThreadPool` or `BrokenProcessPool` (`BrokenSlurmPool`
    /// for a Slurm pool).
    pub const fn type_name(&self) -> &'static str {
        self.error_kind().as_str()
    }

    /// Its type, as events name it.
    pub const fn error_kind(&self) -> ErrorKind {
        match self.kind {
            BrokenKind::ThreadPool => ErrorKind::BrokenThreadPool,
            BrokenKind::ProcessPool => ErrorKind::BrokenProcessPool,
            BrokenKind::Slurm => ErrorKind::BrokenSlurmPool,
        }
    }
}

/// The failure a task ended with: what `Future::exception` returns and what
/// `Future::result` re-raises. Cloneable, because every handle of a future sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Exception {
    /// The task's own failure: an error it returned, or a panic (`panicked` is then true).
    #[error("{message}")]
    Task {
        /// The error's or the panic's message.
        message: String,
        /// True when the task panicked rather than returned an error.
        panicked: bool,
    },
    /// A wait inside the task timed out and the task let the error propagate.
    #[error(transparent)]
    Timeout(TimeoutError),
    /// A wait inside the task found its target cancelled.
    #[error(transparent)]
    Cancelled(CancelledError),
    /// The pool broke before or while the task ran.
    #[error(transparent)]
    Broken(BrokenExecutor),
    /// The task was killed while it ran (an extension: Python cannot kill a running task).
    #[error("killed: {0}")]
    Killed(String),
    /// The task was chosen as the victim that breaks a deadlock (an extension).
    #[error("deadlock broken: {0}")]
    Deadlock(String),
    /// An external command ended with a failure status or a signal.
    #[error("{0}")]
    CommandFailed(String),
}

impl Exception {
    /// A task error with this message (Python: `raise Exception(message)`).
    pub fn task(message: impl Into<String>) -> Self {
        Self::Task { message: message.into(), panicked: false }
    }

    /// What happened, in words, without the prefix that names its kind again: a kill's
    /// `while running on a thread worker`, where `to_string()` says `killed: while running
    /// on a thread worker`. Events and the monitor show it after the type
    /// (`Killed: while running on a thread worker`), so that no word comes twice.
    pub fn detail(&self) -> String {
        match self {
            Self::Killed(what) | Self::Deadlock(what) => what.clone(),
            other => other.to_string(),
        }
    }

    /// The type name used in events and reports (`TaskError`, `TimeoutError`, ...).
    pub const fn type_name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Its type, as events and the worker protocol name it.
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Self::Task { .. } => ErrorKind::TaskError,
            Self::Timeout(_) => ErrorKind::TimeoutError,
            Self::Cancelled(_) => ErrorKind::CancelledError,
            Self::Broken(b) => b.error_kind(),
            Self::Killed(_) => ErrorKind::Killed,
            Self::Deadlock(_) => ErrorKind::DeadlockError,
            Self::CommandFailed(_) => ErrorKind::CommandFailed,
        }
    }
}

impl From<TimeoutError> for Exception {
    fn from(e: TimeoutError) -> Self {
        Self::Timeout(e)
    }
}

impl From<CancelledError> for Exception {
    fn from(e: CancelledError) -> Self {
        Self::Cancelled(e)
    }
}

impl From<BrokenExecutor> for Exception {
    fn from(e: BrokenExecutor) -> Self {
        Self::Broken(e)
    }
}

impl From<String> for Exception {
    fn from(message: String) -> Self {
        Self::task(message)
    }
}

impl From<&str> for Exception {
    fn from(message: &str) -> Self {
        Self::task(message)
    }
}

/// Why `Future::result` / `Future::exception` / a blocking wait did not give a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FutureError {
    /// The future was cancelled.
    #[error(transparent)]
    Cancelled(#[from] CancelledError),
    /// The future did not finish within the timeout.
    #[error(transparent)]
    Timeout(#[from] TimeoutError),
    /// The task failed; this is its exception.
    #[error(transparent)]
    Failed(#[from] Exception),
    /// This wait itself was stopped: the waiting task was killed
    /// ([`Exception::Killed`]) or chosen to break a deadlock ([`Exception::Deadlock`]).
    #[error(transparent)]
    Interrupted(Exception),
    /// A `map` with a `buffersize` could not submit its next call: the pool was shut down
    /// or broke while it was being iterated (Python's `map` raises the submit's error).
    #[error(transparent)]
    Refused(SubmitError),
}

impl From<FutureError> for Exception {
    /// A task that waits on another future and lets its error propagate (`?`) ends with
    /// the same error, as `f.result()` re-raises in Python.
    fn from(e: FutureError) -> Self {
        match e {
            FutureError::Cancelled(c) => Self::Cancelled(c),
            FutureError::Timeout(t) => Self::Timeout(t),
            FutureError::Failed(x) | FutureError::Interrupted(x) => x,
            FutureError::Refused(SubmitError::Broken(b)) => Self::Broken(b),
            FutureError::Refused(other) => Self::task(other.to_string()),
        }
    }
}

/// Why `submit` refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// `shutdown` was called (Python: `RuntimeError('cannot schedule new futures after shutdown')`).
    #[error("cannot schedule new futures after shutdown")]
    Shutdown,
    /// The pool is broken (Python raises the `BrokenExecutor` subclass).
    #[error(transparent)]
    Broken(#[from] BrokenExecutor),
    /// `map` was given `chunksize: 0` (Python: `ValueError('chunksize must be >= 1.')`).
    #[error("chunksize must be >= 1")]
    ZeroChunksize,
    /// `map` was given `buffersize: 0` (Python: `ValueError('buffersize must be None or > 0')`).
    #[error("buffersize must be None or > 0")]
    ZeroBuffersize,
}

/// Why a pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// `max_workers` was 0 (Python: `ValueError('max_workers must be greater than 0')`).
    #[error("max_workers must be greater than 0")]
    ZeroWorkers,
    /// `max_tasks_per_child` was 0.
    #[error("max_tasks_per_child must be greater than 0")]
    ZeroTasksPerChild,
    /// A Slurm pool's cluster, or its partition, does not answer (an extension).
    #[error("{0}")]
    Cluster(String),
    /// The system refused what the pool needs to start (its directory, its thread).
    #[error("{0}")]
    System(String),
}

/// Any error of the engine's operations, for a caller that uses `?` across them (as
/// crossbeam's per-operation errors, each converts into it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A pool could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A submit (or `map`) was refused.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A future gave no value: cancelled, timed out, failed or interrupted.
    #[error(transparent)]
    Future(#[from] FutureError),
    /// A future was set twice, or set after it was cancelled.
    #[error(transparent)]
    InvalidState(#[from] InvalidStateError),
}

impl From<Exception> for Error {
    /// A task's exception, as `result()` raises it.
    fn from(e: Exception) -> Self {
        Self::Future(FutureError::Failed(e))
    }
}
