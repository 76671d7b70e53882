//! Helpers shared by the CPython-counterpart test files (`tests/cf_*.rs`, `tests/engine/observe.rs`).
//!
//! - the fixtures of CPython's `util.py` (`PENDING_FUTURE`, `RUNNING_FUTURE`, ...), made
//!   fresh for each test because a Rust future cannot be poked into a state directly;
//! - [`Gate`]: what a task blocks on until the test releases it (Python's `Event`/`Semaphore`
//!   in the CPython tests), always with an upper bound so that a bug fails instead of hangs;
//! - [`Observer`]: a pool whose sink is a crossbeam channel, and queries over what it saw;
//! - drop counters (Rust has no weakref to a value inside a future);
//! - [`within`] and [`eventually`]: upper bounds for "does not hang" and "soon";
//! - [`run_child`]: runs one test of the current binary in a child process, for the
//!   CPython tests that run a whole interpreter (`assert_python_ok`).
//!
//! Each test crate uses a different subset, hence the `dead_code` allowance; and these
//! helpers are test code, where a failed unwrap is a failed test (as `clippy.toml`
//! allows inside `#[test]` functions).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use futuretop_engine::Exception;
use futuretop_engine::Future;
use futuretop_engine::FutureId;
use futuretop_engine::Observation;
use futuretop_engine::Sink;
use futuretop_engine::ThreadPoolExecutor;

/// The upper bound for anything that should happen soon; a passing test never waits this long.
pub const LONG: Duration = Duration::from_secs(5);

/// Python's `support.SHORT_TIMEOUT` role for waits that are meant to time out.
pub const SHORT: Duration = Duration::from_millis(50);

/// Python's `ExecutorMixin.worker_count`.
pub const WORKER_COUNT: usize = 5;

// ---------------------------------------------------------------------------------------
// util.py fixtures
// ---------------------------------------------------------------------------------------

/// `PENDING_FUTURE`.
pub fn pending_future() -> Future<i32> {
    Future::new()
}

/// `RUNNING_FUTURE`.
#[track_caller]
pub fn running_future() -> Future<i32> {
    let f = Future::new();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(true));
    f
}

/// `CANCELLED_FUTURE`: cancelled, the executor not told yet.
#[track_caller]
pub fn cancelled_future() -> Future<i32> {
    let f = Future::new();
    assert!(f.cancel());
    f
}

/// `CANCELLED_AND_NOTIFIED_FUTURE`: cancelled, and `set_running_or_notify_cancel` saw it.
#[track_caller]
pub fn cancelled_and_notified_future() -> Future<i32> {
    let f = cancelled_future();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(false));
    f
}

/// `EXCEPTION_FUTURE`: finished with `OSError()` (here a task error named so).
#[track_caller]
pub fn exception_future() -> Future<i32> {
    let f = Future::new();
    f.set_exception(os_error()).unwrap();
    f
}

/// The exception `EXCEPTION_FUTURE` holds.
pub fn os_error() -> Exception {
    Exception::task("OSError")
}

/// `SUCCESSFUL_FUTURE`: finished with 42.
#[track_caller]
pub fn successful_future() -> Future<i32> {
    let f = Future::new();
    f.set_result(42).unwrap();
    f
}

/// The ids of `fs`, as a set (Python compares `set`s of futures).
pub fn ids<T>(fs: &[Future<T>]) -> BTreeSet<FutureId> {
    fs.iter().map(Future::id).collect()
}

/// A pool of [`WORKER_COUNT`] threads (CPython's `ThreadPoolMixin`).
pub fn pool() -> ThreadPoolExecutor {
    ThreadPoolExecutor::new(WORKER_COUNT).unwrap()
}

// ---------------------------------------------------------------------------------------
// Gate: block a task until the test says so
// ---------------------------------------------------------------------------------------

/// A one-way gate: tasks [`Gate::wait`] on it until the test [`Gate::open`]s it (all at
/// once) or [`Gate::release`]s some. Cloning shares the gate. A wait gives up after
/// [`LONG`] and returns false, so a bug fails a test rather than hanging it.
#[derive(Clone)]
pub struct Gate {
    rx: Receiver<()>,
    tx: Arc<Mutex<Option<Sender<()>>>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self { rx, tx: Arc::new(Mutex::new(Some(tx))) }
    }

    /// Opens the gate for every waiter, present and future.
    pub fn open(&self) {
        self.tx.lock().unwrap().take();
    }

    /// Lets `n` waiters through (Python's `Semaphore.release()`, n times).
    pub fn release(&self, n: usize) {
        if let Some(tx) = self.tx.lock().unwrap().as_ref() {
            for _ in 0..n {
                tx.send(()).unwrap();
            }
        }
    }

    /// Blocks until the gate lets this caller through; false if it did not within [`LONG`].
    pub fn wait(&self) -> bool {
        !matches!(self.rx.recv_timeout(LONG), Err(RecvTimeoutError::Timeout))
    }
}

/// Counts arrivals: tasks call [`Arrivals::arrive`], the test waits for `n` of them.
#[derive(Clone)]
pub struct Arrivals {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self::new()
    }
}

impl Arrivals {
    /// None arrived yet.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self { tx, rx }
    }

    /// One more arrived.
    pub fn arrive(&self) {
        self.tx.send(()).unwrap();
    }

    /// Waits until `n` more have arrived (each within [`LONG`]).
    #[track_caller]
    pub fn expect(&self, n: usize) {
        for i in 0..n {
            assert!(self.rx.recv_timeout(LONG).is_ok(), "only {i} of {n} arrived within {LONG:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------------------

/// The receiving end of a pool's sink, and everything received so far.
pub struct Observer {
    rx: Receiver<(Instant, Observation)>,
    /// Everything received, in order.
    pub seen: Vec<Observation>,
}

impl Observer {
    /// A sink for a builder, and the observer that reads it.
    pub fn new() -> (Arc<dyn Sink>, Self) {
        let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Observation)>();
        (Arc::new(tx), Self { rx, seen: Vec::new() })
    }

    /// Takes in whatever has arrived, without waiting.
    pub fn drain(&mut self) -> &[Observation] {
        self.seen.extend(self.rx.try_iter().map(|(_, o)| o));
        &self.seen
    }

    /// How many observations so far match `pred`.
    pub fn count(&mut self, pred: impl Fn(&Observation) -> bool) -> usize {
        self.drain().iter().filter(|o| pred(o)).count()
    }

    /// Waits until at least `n` observations match `pred` (within [`LONG`]).
    #[track_caller]
    pub fn wait_count(&mut self, n: usize, what: &str, pred: impl Fn(&Observation) -> bool) {
        let deadline = Instant::now() + LONG;
        while self.count(&pred) < n {
            let Ok((_, o)) = self.rx.recv_deadline(deadline) else {
                panic!("{what}: saw {} of {n} within {LONG:?}; saw {:#?}", self.count(&pred), self.seen)
            };
            self.seen.push(o);
        }
    }

    /// Waits for the first observation matching `pred` (within [`LONG`]) and returns it.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Observation) -> bool) -> Observation {
        self.wait_count(1, what, &pred);
        self.seen.iter().find(|o| pred(o)).cloned().unwrap()
    }

    /// What was seen about the future `id` (its own lifecycle, waits it made, callbacks).
    pub fn of(&mut self, id: FutureId) -> Vec<Observation> {
        self.drain().iter().filter(|o| future_of(o) == Some(id)).cloned().collect()
    }
}

/// The future an observation is about (the waiter, for waits).
pub fn future_of(o: &Observation) -> Option<FutureId> {
    match o {
        Observation::Pending { id, .. }
        | Observation::Running { id, .. }
        | Observation::Finished { id, .. }
        | Observation::CallbackPanicked { id, .. } => Some(*id),
        Observation::WaitStart { waiter, .. } | Observation::WaitEnd { waiter, .. } => Some(*waiter),
        _ => None,
    }
}

/// A pool named `name` with `max_workers` threads reporting to an [`Observer`].
pub fn observed_pool(name: &str, max_workers: usize) -> (ThreadPoolExecutor, Observer) {
    let (sink, observer) = Observer::new();
    let pool = ThreadPoolExecutor::builder().name(name).max_workers(max_workers).sink(sink).build().unwrap();
    (pool, observer)
}

// ---------------------------------------------------------------------------------------
// Drop tracking (Python's weakref checks)
// ---------------------------------------------------------------------------------------

/// A value that counts its drops in a shared counter.
#[derive(Debug)]
pub struct Tracked {
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    /// A value reporting to `drops`.
    pub fn new(drops: &Arc<AtomicUsize>) -> Self {
        Self { drops: Arc::clone(drops) }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value that sends one message when dropped (Python's `weakref.ref(obj, callback)`).
#[derive(Debug)]
pub struct DropSignal(pub Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

// ---------------------------------------------------------------------------------------
// Upper bounds
// ---------------------------------------------------------------------------------------

/// Runs `f` on its own thread and returns its value; fails the test if it does not return
/// within [`LONG`] (the thread is then left behind: the test reports a hang instead of
/// becoming one). A panic in `f` is re-raised here.
#[track_caller]
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LONG) {
        Ok(v) => v,
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the thread returned without sending"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {LONG:?} (hang)"),
    }
}

/// Polls `cond` until it holds, failing the test after [`LONG`] (CPython's
/// `support.sleeping_retry`). For conditions no channel can announce, such as a value
/// being freed by another thread.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: still false after {LONG:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// Child processes (CPython's assert_python_ok)
// ---------------------------------------------------------------------------------------

const CHILD_ENV: &str = "FUTURETOP_TEST_CHILD";

/// True when this process is the child [`run_child`] started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == test)
}

/// The full name the test harness knows test `test` of module `module` by
/// (`module_path!()` of the test's file: its crate's name, then the module's path).
pub fn test_path(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}

/// What a child process printed, and how it ended.
#[derive(Debug)]
pub struct ChildOutput {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs the test `test` of module `module` (`module_path!()`) of this very binary in a child process (its body checks
/// [`is_child`]), and returns its output. Fails if the child runs longer than [`LONG`]
/// (it is killed: a hang is the failure these tests look for).
#[track_caller]
pub fn run_child(module: &str, test: &str) -> ChildOutput {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([&test_path(module, test), "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, test)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The outputs are small; read them on threads so a full pipe cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child `{test}` still running after {LONG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    ChildOutput { status, stdout: out.join().unwrap().unwrap(), stderr: err.join().unwrap().unwrap() }
}
