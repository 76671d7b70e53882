//! `ThreadPoolExecutor`: Python's thread pool — lazy threads, idle reuse, initializer, shutdown.
//!
//! As in `Lib/concurrent/futures/thread.py`: work items go through one queue (here a
//! crossbeam channel); `submit` starts a new thread only when no worker is idle and
//! fewer than `max_workers` exist (the "idle semaphore" is an atomic count); shutdown
//! drops the sending side, so workers drain the queue and exit. A failing initializer
//! breaks the pool: queued futures get `BrokenThreadPool`, later submits are refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use super::{run_call, Call, Executor, MapCall, MapFn, MapIter, MapOptions};
use crate::context::Kill;
use crate::context::{self, Interrupt, InterruptReason, TaskContext};
use crate::error::{BrokenExecutor, BrokenKind, BuildError, Exception, SubmitError};
use crate::future::Future;
use crate::observe::{emit, Observation, Sink, SinkRef};

type Initializer = Arc<dyn Fn() -> Result<(), Exception> + Send + Sync>;

/// A queued call, type-erased: run it on a worker, or end it without running.
trait Work: Send {
    /// Runs the call; `idle` is bumped once the worker is done with it (see `Job::run`).
    fn run(self: Box<Self>, worker: &WorkerCtx, idle: &AtomicUsize);
    fn cancel(self: Box<Self>);
    fn fail(self: Box<Self>, error: Exception);
}

struct Job<C: Call> {
    future: Future<C::Output>,
    call: C,
}

impl<C: Call> Work for Job<C> {
    fn run(self: Box<Self>, worker: &WorkerCtx, idle: &AtomicUsize) {
        let Self { future, call } = *self;
        let killer: Arc<dyn Kill> = Arc::clone(&worker.interrupt) as Arc<dyn Kill>;
        worker.interrupt.begin_task(future.id());
        // Ok(false): cancelled while queued; Err: someone else started it. Either way, skip.
        if !matches!(future.start_running(Some((&worker.name, None, killer))), Ok(true)) {
            worker.interrupt.end_task();
            idle.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let outcome = {
            let _current = context::enter(TaskContext {
                id: future.id(),
                sink: worker.sink.clone(),
                interrupt: Arc::clone(&worker.interrupt),
            });
            run_call(call)
        };
        // A killed task ends `Killed` whatever it made of the interruption: a value, or
        // an error of its own wrapping the interrupted wait (as `Future::kill` promises).
        let outcome = match (worker.interrupt.pending(), outcome) {
            (Some(InterruptReason::Kill), Err(e @ Exception::Killed(_))) => Err(e),
            (Some(InterruptReason::Kill), _) => Err(Exception::Killed("while running on a thread worker".into())),
            (Some(InterruptReason::TimedOut(_)), Err(e @ Exception::Timeout(_))) => Err(e),
            (Some(InterruptReason::TimedOut(limit)), _) => Err(Exception::Timeout(crate::TimeoutError::limit(limit))),
            (_, outcome) => outcome,
        };
        worker.interrupt.end_task();
        // The worker counts as idle *before* the future completes: a caller woken by
        // `result()` that submits again must find it idle and not start a thread
        // (Python releases its idle semaphore after `set_result`, a race CPython's
        // `test_idle_thread_reuse` only escapes under the GIL).
        idle.fetch_add(1, Ordering::SeqCst);
        // Only a future already finished by someone else refuses this; nothing to do then.
        let _ = future.finish(outcome, "set_result");
    }

    fn cancel(self: Box<Self>) {
        self.future.cancel();
    }

    fn fail(self: Box<Self>, error: Exception) {
        let _ = self.future.set_exception(error);
    }
}

struct WorkerCtx {
    name: Arc<str>,
    sink: SinkRef,
    interrupt: Arc<Interrupt>,
}

struct Control {
    /// `None` once shut down: workers see the channel close after draining it.
    tx: Option<Sender<Box<dyn Work>>>,
    threads: Vec<JoinHandle<()>>,
    broken: Option<BrokenExecutor>,
}

struct Shared {
    name: Arc<str>,
    thread_name_prefix: String,
    max_workers: usize,
    initializer: Option<Initializer>,
    sink: SinkRef,
    rx: Receiver<Box<dyn Work>>,
    control: Mutex<Control>,
    /// Workers waiting for work (Python's `_idle_semaphore`).
    idle: AtomicUsize,
    /// Threads started so far (also the next worker's index).
    started: AtomicUsize,
    /// Set once `control.broken` is: what workers check between tasks, without the lock.
    broken_flag: AtomicBool,
}

impl Shared {
    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Python's `_initializer_failed`: mark broken, fail every queued future.
    fn break_pool(&self, reason: String) {
        let error = BrokenExecutor { kind: BrokenKind::ThreadPool, reason };
        {
            let mut control = self.control();
            if control.broken.is_some() {
                return;
            }
            control.broken = Some(error.clone());
            self.broken_flag.store(true, Ordering::SeqCst);
        }
        emit(&self.sink, || Observation::PoolBroken { pool: Arc::clone(&self.name), error: error.reason.clone() });
        while let Ok(work) = self.rx.try_recv() {
            work.fail(Exception::Broken(error.clone()));
        }
    }

    fn is_broken(&self) -> Option<BrokenExecutor> {
        self.control().broken.clone()
    }
}

/// Python's `ThreadPoolExecutor`: runs closures on up to `max_workers` threads.
///
/// ```
/// use futuretop_engine::ThreadPoolExecutor;
/// let pool = ThreadPoolExecutor::new(4)?;
/// let f = pool.submit(|| 6 * 7)?;
/// assert_eq!(f.result(None)?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<Shared>,
}

/// Builds a [`ThreadPoolExecutor`] (Python's constructor arguments, plus a name and a sink).
#[must_use]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    thread_name_prefix: Option<String>,
    name: Option<String>,
    initializer: Option<Initializer>,
    sink: SinkRef,
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Python's default `max_workers`: `min(32, cpus + 4)`.
pub fn default_thread_workers() -> usize {
    let cpus = thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cpus + 4).min(32)
}

impl ThreadPoolBuilder {
    /// A builder with Python's defaults.
    pub fn new() -> Self {
        Self { max_workers: None, thread_name_prefix: None, name: None, initializer: None, sink: None }
    }

    /// At most this many threads (default `min(32, cpus + 4)`; 0 is refused by `build`).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Threads are named `{prefix}_{index}` (default `ThreadPoolExecutor-{N}`).
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }

    /// The pool's name in events and the monitor (default: the thread name prefix).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Runs in every worker thread before its first call. If it fails (returns `Err` or
    /// panics) the pool breaks, as in Python.
    pub fn initializer<E: Into<Exception>>(mut self, f: impl Fn() -> Result<(), E> + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(move || f().map_err(Into::into)));
        self
    }

    /// Reports every state change and wait to `sink` (which must not block).
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Builds the pool; no thread starts until the first submit.
    pub fn build(self) -> Result<ThreadPoolExecutor, BuildError> {
        static POOLS: AtomicUsize = AtomicUsize::new(0);
        let max_workers = self.max_workers.unwrap_or_else(default_thread_workers);
        if max_workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        let prefix = self.thread_name_prefix.unwrap_or_else(|| {
            self.name.clone().unwrap_or_else(|| format!("ThreadPoolExecutor-{}", POOLS.fetch_add(1, Ordering::Relaxed)))
        });
        let name: Arc<str> = self.name.unwrap_or_else(|| prefix.clone()).into();
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(ThreadPoolExecutor {
            shared: Arc::new(Shared {
                name,
                thread_name_prefix: prefix,
                max_workers,
                initializer: self.initializer,
                sink: self.sink,
                rx,
                control: Mutex::new(Control { tx: Some(tx), threads: Vec::new(), broken: None }),
                idle: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                broken_flag: AtomicBool::new(false),
            }),
        })
    }
}

impl ThreadPoolExecutor {
    /// A pool of at most `max_workers` threads (Python: `ThreadPoolExecutor(max_workers)`).
    pub fn new(max_workers: usize) -> Result<Self, BuildError> {
        ThreadPoolBuilder::new().max_workers(max_workers).build()
    }

    /// A builder for the other options.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The most threads this pool starts.
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// How many threads it has started so far.
    pub fn threads_started(&self) -> usize {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// Calls queued and not yet taken by a worker.
    pub fn queue_len(&self) -> usize {
        self.shared.rx.len()
    }

    /// Schedules `f()` and returns its future (Python's `submit`).
    pub fn submit<F, T>(&self, f: F) -> Result<Future<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_named(None, f)
    }

    /// Schedules any [`Call`] under a name shown in events and the monitor.
    pub fn submit_named<C: Call>(&self, name: Option<&str>, call: C) -> Result<Future<C::Output>, SubmitError> {
        submit(&self.shared, name, call)
    }

    /// Python's `map(fn, iterable, timeout=..., chunksize=...)`: submits `f(item)` for every
    /// item at once and yields the results in input order (several inputs: zip them).
    /// `f` is a closure returning the value, or [`Fallible`](super::Fallible) around one
    /// returning a `Result` whose `Err` is the call's exception. The iterator does not
    /// borrow the pool, as with [`ProcessPoolExecutor::map`](super::ProcessPoolExecutor::map).
    pub fn map<I, F>(
        &self,
        f: F,
        items: I,
        timeout: Option<std::time::Duration>,
        chunksize: usize,
    ) -> Result<MapIter<'static, F::Output>, SubmitError>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Send + 'static,
        F: MapFn<I::Item>,
    {
        self.map_with(f, items, MapOptions { timeout, chunksize, buffersize: None })
    }

    /// `map` with every option, including `buffersize` (Python 3.14).
    pub fn map_with<I, F>(
        &self,
        f: F,
        items: I,
        options: MapOptions,
    ) -> Result<MapIter<'static, F::Output>, SubmitError>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Send + 'static,
        F: MapFn<I::Item>,
    {
        let f = Arc::new(f);
        let calls = items.into_iter().map(move |item| MapCall { f: Arc::clone(&f), item });
        let shared = Arc::clone(&self.shared);
        MapIter::start(options, calls, move |c| submit(&shared, None, c))
    }

    /// Python's `shutdown(wait=True, *, cancel_futures=False)`.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        let threads = {
            let mut control = self.shared.control();
            if cancel_futures {
                while let Ok(work) = self.shared.rx.try_recv() {
                    work.cancel();
                }
            }
            control.tx = None;
            if wait {
                std::mem::take(&mut control.threads)
            } else {
                Vec::new()
            }
        };
        let me = thread::current().id();
        for handle in threads {
            // A task that shuts down its own pool must not join itself.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    /// The error that broke the pool, if it is broken.
    pub fn broken(&self) -> Option<BrokenExecutor> {
        self.shared.is_broken()
    }
}

impl<C: Call> Executor<C> for ThreadPoolExecutor {
    fn submit_named(&self, name: Option<&str>, call: C) -> Result<Future<C::Output>, SubmitError> {
        ThreadPoolExecutor::submit_named(self, name, call)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ThreadPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}

impl Drop for ThreadPoolExecutor {
    /// Leaving Python's `with` block: `shutdown(wait=True)`.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl std::fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("name", &self.shared.name)
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &self.threads_started())
            .finish_non_exhaustive()
    }
}

/// Schedules `call` on the pool `shared` is the state of (see [`ThreadPoolExecutor::submit_named`]).
fn submit<C: Call>(shared: &Arc<Shared>, name: Option<&str>, call: C) -> Result<Future<C::Output>, SubmitError> {
    let mut control = shared.control();
    if let Some(broken) = &control.broken {
        return Err(SubmitError::Broken(broken.clone()));
    }
    let Some(tx) = control.tx.as_ref() else {
        return Err(SubmitError::Shutdown);
    };
    let future = Future::with_sink(shared.sink.clone());
    emit(&shared.sink, || Observation::Pending {
        id: future.id(),
        pool: Arc::clone(&shared.name),
        name: name.map_or_else(|| format!("task-{}", future.id().0).into(), Into::into),
    });
    let work: Box<dyn Work> = Box::new(Job { future: future.clone(), call });
    if tx.send(work).is_err() {
        // The receiver lives in `shared`, which we hold: the channel cannot be closed.
        return Err(SubmitError::Shutdown);
    }
    adjust_thread_count(shared, &mut control);
    Ok(future)
}

/// Python's `_adjust_thread_count`: reuse an idle worker, else start one if allowed.
fn adjust_thread_count(shared: &Arc<Shared>, control: &mut Control) {
    let took_idle = shared.idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if took_idle || control.threads.len() >= shared.max_workers {
        return;
    }
    let index = shared.started.fetch_add(1, Ordering::SeqCst);
    let thread_name = format!("{}_{index}", shared.thread_name_prefix);
    let worker = WorkerCtx {
        name: format!("{}-{}", shared.name, index + 1).into(),
        sink: shared.sink.clone(),
        interrupt: Arc::new(Interrupt::default()),
    };
    let for_thread = Arc::clone(shared);
    match thread::Builder::new().name(thread_name).spawn(move || worker_loop(&for_thread, &worker)) {
        Ok(handle) => control.threads.push(handle),
        Err(e) => {
            shared.started.fetch_sub(1, Ordering::SeqCst);
            if control.threads.is_empty() {
                // No thread will ever run the queue: fail it rather than hang.
                let error = BrokenExecutor {
                    kind: BrokenKind::ThreadPool,
                    reason: format!("could not start a worker thread: {e}"),
                };
                control.broken = Some(error.clone());
                shared.broken_flag.store(true, Ordering::SeqCst);
                while let Ok(work) = shared.rx.try_recv() {
                    work.fail(Exception::Broken(error.clone()));
                }
            }
        }
    }
}

fn worker_loop(shared: &Shared, worker: &WorkerCtx) {
    emit(&shared.sink, || Observation::WorkerStarted {
        pool: Arc::clone(&shared.name),
        worker: Arc::clone(&worker.name),
        pid: None,
    });
    let exited = |status: &str| {
        emit(&shared.sink, || Observation::WorkerExited {
            pool: Arc::clone(&shared.name),
            worker: Arc::clone(&worker.name),
            pid: None,
            status: status.to_owned(),
        });
    };
    if let Some(init) = &shared.initializer {
        let init = Arc::clone(init);
        let outcome = run_call(move || init());
        if let Err(e) = outcome.and_then(|r| r) {
            shared.break_pool(format!(
                "A thread initializer failed, the thread pool is not usable anymore ({}: {e})",
                e.type_name()
            ));
            exited("initializer failed");
            return;
        }
    }
    while let Ok(work) = shared.rx.recv() {
        if shared.broken_flag.load(Ordering::SeqCst) {
            if let Some(broken) = shared.is_broken() {
                work.fail(Exception::Broken(broken));
                continue;
            }
        }
        work.run(worker, &shared.idle);
    }
    exited("ok");
}
