//! `wait` and `as_completed`: blocking on many futures at once.
//!
//! Both install one [`Signal`] on every unfinished future; each future fires it with its
//! id when it completes, so the cost of a wakeup is the number of futures that just
//! completed, not the number waited on. Waits made from inside a task are reported to
//! the task's sink when every target must complete (`ALL_COMPLETED`, and
//! `FIRST_EXCEPTION` while nothing failed is the same wait); an "any of them" wait
//! (`FIRST_COMPLETED`, `as_completed`) is not, since no single target blocks it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use super::{deadline, Future, Signal, WaitScope};
use crate::error::{FutureError, TimeoutError};
use crate::observe::{FutureId, IdHasher, WaitOutcome};
use crate::sync::Arc;

/// When `wait` returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any future finishes or is cancelled.
    FirstCompleted,
    /// As soon as any future finishes with an exception; if none does, when all are done.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// What `wait` returns: Python's `DoneAndNotDoneFutures(done, not_done)`.
#[derive(Debug)]
pub struct WaitResult<T> {
    /// The futures that were done (finished or cancelled) when `wait` returned.
    pub done: Vec<Future<T>>,
    /// The others.
    pub not_done: Vec<Future<T>>,
}

type IdMap<V> = HashMap<FutureId, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<FutureId, BuildHasherDefault<IdHasher>>;

fn distinct<T>(fs: &[Future<T>]) -> Vec<Future<T>> {
    let mut seen = IdSet::with_capacity_and_hasher(fs.len(), BuildHasherDefault::default());
    fs.iter().filter(|f| seen.insert(f.id())).cloned().collect()
}

/// `distinct(fs)` split into the done futures and the others, in one pass.
fn distinct_by_done<T>(fs: &[Future<T>]) -> (Vec<Future<T>>, Vec<Future<T>>) {
    let mut seen = IdSet::with_capacity_and_hasher(fs.len(), BuildHasherDefault::default());
    let (mut done, mut not_done) = (Vec::with_capacity(fs.len()), Vec::new());
    for f in fs {
        if seen.insert(f.id()) {
            if f.done() {
                done.push(f.clone());
            } else {
                not_done.push(f.clone());
            }
        }
    }
    (done, not_done)
}

/// Waits for the futures in `fs` (duplicates count once) until `return_when` holds or
/// `timeout` passes, then returns which are done. A timeout is not an error: the caller
/// looks at `not_done` (Python's `concurrent.futures.wait`). A wait from a task that is
/// killed or chosen to break a deadlock returns early in the same way.
///
/// ```
/// use std::time::Duration;
/// use futuretop_engine::{wait, ReturnWhen, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let quick = pool.submit(|| 1)?;
/// let slow = pool.submit(|| std::thread::sleep(Duration::from_millis(200)))?;
/// let first = wait(&[quick.clone()], None, ReturnWhen::FirstCompleted);
/// assert_eq!(first.done.len(), 1);
/// let both = wait(&[slow], Some(Duration::from_millis(1)), ReturnWhen::AllCompleted);
/// assert_eq!(both.not_done.len(), 1, "the timeout passed first");
/// # Ok::<(), futuretop_engine::Error>(())
/// ```
pub fn wait<T>(fs: &[Future<T>], timeout: Option<Duration>, return_when: ReturnWhen) -> WaitResult<T> {
    let deadline = deadline(timeout);
    let (mut done, not_done) = distinct_by_done(fs);
    // As in Python, every mode returns at once when nothing is left to wait for
    // (`len(done) == len(fs)`), an empty `fs` included.
    let satisfied = |done: &[Future<T>], not_done: usize| {
        not_done == 0
            || match return_when {
                ReturnWhen::FirstCompleted => !done.is_empty(),
                ReturnWhen::FirstException => done.iter().any(Future::has_exception),
                ReturnWhen::AllCompleted => false,
            }
    };
    if satisfied(&done, not_done.len()) {
        return WaitResult { done, not_done };
    }

    let signal = Arc::new(Signal::new());
    let mut already = 0usize;
    let index: IdMap<usize> = not_done.iter().enumerate().map(|(i, f)| (f.id(), i)).collect();
    let mut seen = Vec::new();
    for f in &not_done {
        if !f.install_waiter(&signal) {
            already += 1;
            seen.push(f.id());
        }
    }
    let reported =
        if return_when == ReturnWhen::FirstCompleted { Vec::new() } else { not_done.iter().map(Future::id).collect() };
    let scope = WaitScope::begin(&signal, reported, timeout);
    let total = not_done.len();
    let mut completed = already;
    let mut failed = seen.iter().any(|id| not_done[index[id]].has_exception());
    let outcome = signal.block(
        deadline,
        || scope.interrupted(),
        |fired| {
            for id in fired.drain(..) {
                if let Some(&i) = index.get(&id) {
                    completed += 1;
                    failed = failed || not_done[i].has_exception();
                }
            }
            match return_when {
                ReturnWhen::FirstCompleted => completed > 0,
                ReturnWhen::FirstException => failed || completed >= total,
                ReturnWhen::AllCompleted => completed >= total,
            }
        },
    );
    for f in &not_done {
        f.remove_waiter(&signal);
    }
    // The waiter learns of an interruption through `checkpoint`; `wait` itself returns
    // what is done, as on a timeout.
    let _ = scope.end(outcome);
    let (finished_meanwhile, still_pending): (Vec<_>, Vec<_>) = not_done.into_iter().partition(Future::done);
    done.extend(finished_meanwhile);
    WaitResult { done, not_done: still_pending }
}

/// Returns an iterator over the distinct futures of `fs` that yields each as it
/// completes (finished or cancelled), the already-done ones first (Python's
/// `concurrent.futures.as_completed`).
///
/// `timeout` counts from this call: once it passes, the iterator yields one
/// `Err(FutureError::Timeout)` whose message says how many futures were unfinished
/// ("2 (of 5) futures unfinished"), then ends. The iterator keeps no handle on a future
/// it has yielded.
///
/// ```
/// use futuretop_engine::{as_completed, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(4)?;
/// let futures = (1..=4u64).map(|n| pool.submit(move || n * n)).collect::<Result<Vec<_>, _>>()?;
/// let mut total = 0;
/// for f in as_completed(&futures, None) {
///     total += f?.result(None)?;
/// }
/// assert_eq!(total, 1 + 4 + 9 + 16);
/// # Ok::<(), futuretop_engine::Error>(())
/// ```
pub fn as_completed<T>(fs: &[Future<T>], timeout: Option<Duration>) -> AsCompleted<T> {
    let all = distinct(fs);
    let total = all.len();
    let signal = Arc::new(Signal::new());
    let mut finished = VecDeque::new();
    let mut pending = IdMap::default();
    for f in all {
        if f.done() || !f.install_waiter(&signal) {
            finished.push_back(f);
        } else {
            pending.insert(f.id(), f);
        }
    }
    AsCompleted { finished, pending, signal, deadline: deadline(timeout), timeout, total, ended: false }
}

/// The iterator `as_completed` returns.
pub struct AsCompleted<T> {
    finished: VecDeque<Future<T>>,
    pending: IdMap<Future<T>>,
    signal: Arc<Signal>,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    total: usize,
    ended: bool,
}

impl<T> AsCompleted<T> {
    /// How many futures have not been yielded yet.
    pub fn remaining(&self) -> usize {
        self.finished.len() + self.pending.len()
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Result<Future<T>, FutureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = self.finished.pop_front() {
            return Some(Ok(f));
        }
        if self.ended || self.pending.is_empty() {
            return None;
        }
        let scope = WaitScope::begin(&self.signal, Vec::new(), self.timeout);
        let pending = &mut self.pending;
        let finished = &mut self.finished;
        let outcome = self.signal.block(
            self.deadline,
            || scope.interrupted(),
            |fired| {
                for id in fired.drain(..) {
                    if let Some(f) = pending.remove(&id) {
                        finished.push_back(f);
                    }
                }
                !finished.is_empty()
            },
        );
        let interrupted = scope.end(outcome);
        match (outcome, interrupted) {
            (WaitOutcome::Completed, _) => self.finished.pop_front().map(Ok),
            (_, Some(e)) => {
                self.ended = true;
                Some(Err(FutureError::Interrupted(e)))
            }
            _ => {
                self.ended = true;
                Some(Err(FutureError::Timeout(TimeoutError {
                    unfinished: Some((self.pending.len(), self.total)),
                    limit: None,
                })))
            }
        }
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for f in self.pending.values() {
            f.remove_waiter(&self.signal);
        }
    }
}
