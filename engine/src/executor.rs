//! The `Executor` trait (submit, map, shutdown), what a pool runs (`Call`), and `map`'s iterator.
//!
//! An executor runs *calls*. For a thread pool a call is any closure; for a process pool
//! (and later a cluster backend) it is a named, serialisable call: `Executor<C>` is
//! generic over the call type so that each backend accepts what it can really run, and
//! callers written against the trait (`submit`, `map_calls`, `shutdown`) do not change.

pub mod process_pool;
pub mod protocol;
#[cfg(feature = "slurm")]
pub mod slurm_pool;
pub mod thread_pool;
pub mod worker;

pub use process_pool::{OutputHook, ProcessCall, ProcessPoolBuilder, ProcessPoolExecutor, RequestHook, ValueHook};
#[cfg(feature = "slurm")]
pub use slurm_pool::{serve_slurm_job_if_requested, SlurmPool, SlurmPoolBuilder, SLURM_JOB_ARG};
pub use thread_pool::{default_thread_workers, ThreadPoolBuilder, ThreadPoolExecutor};
pub use worker::{serve_worker_if_requested, Callable, Callables, RawCallable, WorkerContext, WORKER_ARG};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{Exception, FutureError, SubmitError, TimeoutError};
use crate::future::{deadline, Future};

/// One unit of work an executor can run, producing `Output` or an [`Exception`].
///
/// Every `FnOnce() -> T` closure is a call whose errors are panics. Wrap a closure that
/// returns `Result<T, E>` in [`Fallible`] to make its `Err` the future's exception.
pub trait Call: Send + 'static {
    /// What the call returns.
    type Output: Send + 'static;
    /// Runs the call.
    fn call(self) -> Result<Self::Output, Exception>;
}

impl<F, T> Call for F
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    fn call(self) -> Result<T, Exception> {
        Ok(self())
    }
}

/// A closure returning `Result<T, E>`: `Ok` is the future's value, `Err` its exception
/// (Python: the function raised).
pub struct Fallible<F>(pub F);

impl<F, T, E> Call for Fallible<F>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<Exception>,
{
    type Output = T;
    fn call(self) -> Result<T, Exception> {
        (self.0)().map_err(Into::into)
    }
}

/// A function `map` applies to each item: a closure returning the value (its errors are
/// panics), or [`Fallible`] around one returning `Result<T, E>`, whose `Err` is the call's
/// exception (Python: the function raised).
pub trait MapFn<I>: Send + Sync + 'static {
    /// What the function returns.
    type Output: Send + 'static;
    /// Applies the function to one item.
    fn apply(&self, item: I) -> Result<Self::Output, Exception>;
}

impl<F, I, T> MapFn<I> for F
where
    F: Fn(I) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    type Output = T;
    fn apply(&self, item: I) -> Result<T, Exception> {
        Ok(self(item))
    }
}

impl<F, I, T, E> MapFn<I> for Fallible<F>
where
    F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: Into<Exception>,
{
    type Output = T;
    fn apply(&self, item: I) -> Result<T, Exception> {
        (self.0)(item).map_err(Into::into)
    }
}

/// One item of a thread pool's `map`, as a call.
pub(crate) struct MapCall<F, I> {
    pub(crate) f: std::sync::Arc<F>,
    pub(crate) item: I,
}

impl<F: MapFn<I>, I: Send + 'static> Call for MapCall<F, I> {
    type Output = F::Output;
    fn call(self) -> Result<F::Output, Exception> {
        self.f.apply(self.item)
    }
}

/// Options of [`Executor::map_calls`] (Python's `map(..., timeout, chunksize, buffersize)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    /// A deadline for the whole iteration, counted from the call to `map`.
    pub timeout: Option<Duration>,
    /// Calls per message to a worker (process pools; thread pools ignore it). At least 1.
    pub chunksize: usize,
    /// At most this many calls submitted ahead of the consumer (Python 3.14's
    /// `buffersize`); `None` submits every call at once, as Python did before.
    pub buffersize: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self { timeout: None, chunksize: 1, buffersize: None }
    }
}

/// Something that runs calls of type `C` on workers and returns futures for them.
///
/// Dropping an executor shuts it down and waits, like leaving Python's `with` block.
///
/// ```
/// use futuretop_engine::{Executor, MapOptions, ThreadPoolExecutor};
///
/// // Code written against the trait runs on any executor of closures.
/// fn squares(e: &impl Executor<Box<dyn FnOnce() -> u64 + Send>>) -> Vec<u64> {
///     let calls = (1..=3u64).map(|n| Box::new(move || n * n) as Box<dyn FnOnce() -> u64 + Send>);
///     e.map_calls(calls, MapOptions::default()).unwrap().map(Result::unwrap).collect()
/// }
/// let pool = ThreadPoolExecutor::new(2)?;
/// assert_eq!(squares(&pool), [1, 4, 9]);
/// pool.shutdown(true, false);
/// assert!(pool.submit(|| 0).is_err(), "no submit after shutdown");
/// # Ok::<(), futuretop_engine::Error>(())
/// ```
pub trait Executor<C: Call> {
    /// Schedules `call` and returns its future; `name` is what events and the monitor
    /// call it (`task-N` when `None`).
    fn submit_named(&self, name: Option<&str>, call: C) -> Result<Future<C::Output>, SubmitError>;

    /// Schedules `call` (Python's `submit(fn, *args)`: a closure captures the arguments).
    fn submit(&self, call: C) -> Result<Future<C::Output>, SubmitError> {
        self.submit_named(None, call)
    }

    /// Schedules `calls` (with their names) as one chunk, where the executor can send them
    /// to a worker together (a chunk of Python's `map(..., chunksize=n)`; a process pool
    /// does); by default one by one. Each call keeps its own future, or gets the error
    /// that refused it.
    fn submit_chunk(&self, calls: Vec<(Option<String>, C)>) -> Vec<Result<Future<C::Output>, SubmitError>> {
        calls.into_iter().map(|(name, call)| self.submit_named(name.as_deref(), call)).collect()
    }

    /// Submits every call (or `buffersize` ahead) and returns an iterator over their
    /// results in input order. If a submit fails, the calls already submitted are
    /// cancelled and the error is returned.
    fn map_calls<I>(&self, calls: I, options: MapOptions) -> Result<MapIter<'_, C::Output>, SubmitError>
    where
        I: IntoIterator<Item = C>,
        I::IntoIter: 'static,
        Self: Sized,
    {
        MapIter::start(options, calls.into_iter(), move |c| self.submit(c))
    }

    /// Stops accepting calls. With `cancel_futures`, pending calls are cancelled; with
    /// `wait`, returns once every running and remaining call is done and the workers have
    /// exited. Idempotent (Python's `shutdown(wait=True, *, cancel_futures=False)`).
    fn shutdown(&self, wait: bool, cancel_futures: bool);
}

type NextCall<'a, T> = Box<dyn FnMut() -> Option<Result<Submitted<T>, SubmitError>> + 'a>;

/// What one step of a `map`'s input submitted: one call's future, or a chunk's.
pub(crate) enum Submitted<T> {
    /// One call.
    One(Future<T>),
    /// A chunk of this many calls run as one, its future's value holding their results
    /// (Python's `_process_chunk`): the map's `unpack` splits it.
    Packed(Future<T>, usize),
}

impl<T> Submitted<T> {
    /// The future and how many of the map's calls it stands for.
    fn split(self) -> (Future<T>, usize) {
        match self {
            Self::One(f) => (f, 1),
            Self::Packed(f, n) => (f, n),
        }
    }
}

/// Splits a chunk's value into its calls' results, in order (see [`Submitted::Packed`]).
pub(crate) type Unpack<T> = fn(T) -> Vec<T>;

/// The results of `map`, in input order (Python's `Executor.map` generator).
///
/// `next()` waits for the next call's result until the common deadline; a call that
/// failed, or the deadline passing, yields the error and ends the iteration. Dropping
/// the iterator (or ending it with an error) cancels every call not yet yielded.
pub struct MapIter<'a, T> {
    /// Each submitted future not yet yielded, and how many calls it stands for.
    futures: VecDeque<(Future<T>, usize)>,
    /// Submits the next input call (or chunk of calls), while `buffersize` holds some back.
    next_call: Option<NextCall<'a, T>>,
    /// How many futures may be submitted and not yet yielded (unbounded without `buffersize`).
    ahead: usize,
    /// For a map of chunks: splits a chunk's value into its calls' results.
    unpack: Option<Unpack<T>>,
    /// The results of the chunk being yielded that are still to come.
    ready: std::vec::IntoIter<T>,
    deadline: Option<Instant>,
    submitted: usize,
    ended: bool,
    /// A submit refused while topping the buffer up: the next `next()` yields it.
    refused: Option<SubmitError>,
}

impl<'a, T: 'a> MapIter<'a, T> {
    /// Starts a map: submits every call, or the first `buffersize` of them.
    pub(crate) fn start<C, I>(
        options: MapOptions,
        calls: I,
        mut submit: impl FnMut(C) -> Result<Future<T>, SubmitError> + 'a,
    ) -> Result<Self, SubmitError>
    where
        C: Call<Output = T>,
        I: Iterator<Item = C> + 'a,
    {
        let mut calls = calls;
        let ahead = options.buffersize.unwrap_or(usize::MAX);
        Self::start_chunks(options, ahead, None, Box::new(move || calls.next().map(|c| submit(c).map(Submitted::One))))
    }

    /// Starts a map whose calls go in chunks (a process pool's `chunksize`): `next_chunk`
    /// submits the next chunk, a future for the chunk whose value `unpack` splits.
    /// `ahead` counts futures (`buffersize` counts chunks, as Python's does).
    pub(crate) fn start_chunks(
        options: MapOptions,
        ahead: usize,
        unpack: Option<Unpack<T>>,
        mut next_chunk: NextCall<'a, T>,
    ) -> Result<Self, SubmitError> {
        if options.chunksize == 0 {
            return Err(SubmitError::ZeroChunksize);
        }
        if options.buffersize == Some(0) {
            return Err(SubmitError::ZeroBuffersize);
        }
        let deadline = deadline(options.timeout);
        let mut it = Self {
            futures: VecDeque::new(),
            next_call: None,
            ahead,
            unpack,
            ready: Vec::new().into_iter(),
            deadline,
            submitted: 0,
            ended: false,
            refused: None,
        };
        while it.futures.len() < ahead {
            match next_chunk() {
                None => return Ok(it),
                Some(Ok(fs)) => {
                    let (f, n) = fs.split();
                    it.submitted += n;
                    it.futures.push_back((f, n));
                }
                Some(Err(e)) => {
                    it.cancel_rest();
                    return Err(e);
                }
            }
        }
        it.next_call = Some(next_chunk);
        Ok(it)
    }

    /// The futures of the calls submitted and not yet returned by the iterator, in input
    /// order (an extension: to cancel or kill one call of a map). A process pool's map
    /// with a `chunksize` above 1 has one future a chunk, as Python's.
    pub fn pending_futures(&self) -> impl Iterator<Item = &Future<T>> {
        self.futures.iter().map(|(f, _)| f)
    }

    fn cancel_rest(&mut self) {
        for (f, _) in self.futures.drain(..) {
            f.cancel();
        }
        self.next_call = None;
        self.ended = true;
    }

    /// Tops the buffer up, if there are more calls. A refused submit (shutdown, broken
    /// pool) ends the input there, and is kept for `next()` to yield.
    fn refill(&mut self) {
        while self.futures.len() < self.ahead {
            let Some(next_call) = self.next_call.as_mut() else { return };
            match next_call() {
                Some(Ok(fs)) => {
                    let (f, n) = fs.split();
                    self.submitted += n;
                    self.futures.push_back((f, n));
                }
                Some(Err(e)) => {
                    self.refused = Some(e);
                    self.next_call = None;
                }
                None => self.next_call = None,
            }
        }
    }
}

impl<'a, T: Clone + 'a> Iterator for MapIter<'a, T> {
    type Item = Result<T, FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(v) = self.ready.next() {
                return Some(Ok(v));
            }
            match self.next_future()? {
                Ok(v) => match self.unpack {
                    None => return Some(Ok(v)),
                    // A chunk's results come out one by one.
                    Some(unpack) => self.ready = unpack(v).into_iter(),
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<'a, T: Clone + 'a> MapIter<'a, T> {
    /// Waits for the next future's value (a call's result, or a chunk's).
    fn next_future(&mut self) -> Option<Result<T, FutureError>> {
        if self.ended {
            return None;
        }
        let Some((f, n)) = self.futures.pop_front() else {
            self.ended = true;
            return None;
        };
        self.refill();
        if let Some(e) = self.refused.take() {
            // As Python's `map`: the submit's error comes out of the iteration at once,
            // and the calls submitted and not yet yielded are cancelled.
            f.cancel();
            self.cancel_rest();
            return Some(Err(FutureError::Refused(e)));
        }
        let timeout = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match f.result(timeout) {
            Ok(v) => Some(Ok(v)),
            Err(e) => {
                f.cancel();
                let unfinished = self.futures.iter().map(|(_, n)| n).sum::<usize>() + n;
                self.cancel_rest();
                Some(Err(match e {
                    FutureError::Timeout(_) => FutureError::Timeout(TimeoutError {
                        unfinished: Some((unfinished, self.submitted)),
                        limit: None,
                    }),
                    other => other,
                }))
            }
        }
    }
}

impl<T> Drop for MapIter<'_, T> {
    fn drop(&mut self) {
        for (f, _) in self.futures.drain(..) {
            f.cancel();
        }
    }
}

/// Runs a call, turning a panic into the future's exception (the worker survives).
pub(crate) fn run_call<C: Call>(call: C) -> Result<C::Output, Exception> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.call())) {
        Ok(outcome) => outcome,
        Err(payload) => {
            Err(Exception::Task { message: crate::future::panic_message(payload.as_ref()), panicked: true })
        }
    }
}
