//! `Future<T>`: the result of an asynchronous call, its state machine, callbacks and blocking waits.
//!
//! The state machine is Python's (`Lib/concurrent/futures/_base.py`):
//!
//! ```text
//! PENDING ──cancel()──────────────> CANCELLED ──set_running_or_notify_cancel()──> (notified)
//!    │
//!    └─set_running_or_notify_cancel()─> RUNNING ──set_result / set_exception──> FINISHED
//! ```
//!
//! `set_result`/`set_exception` are also accepted on a PENDING future (Python allows it:
//! that is how tests and executor authors use a bare `Future`). One deliberate
//! difference: `cancel()` wakes `wait` and `as_completed` at once, where Python only
//! tells them when the executor later dequeues the cancelled item; a monitor whose user
//! pressed `c` should not have to wait for that.
//!
//! Every handle is a clone of one shared core; the value is cloned out by
//! [`Future::result`], so `T: Clone` there (wrap large values in an `Arc`).

mod wait;

pub use wait::{as_completed, wait, AsCompleted, ReturnWhen, WaitResult};

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::context::Kill;
use crate::context::{self, InterruptReason, TaskContext};
use crate::error::{CancelledError, Exception, FutureError, InvalidStateError, TimeoutError};
use crate::observe::{emit, FutureId, Observation, Outcome, SinkRef, WaitOutcome};
pub(crate) use crate::signal::Signal;
use crate::sync::{lock, Arc, Mutex};

/// The public state of a future (Python's `_state`, with both cancelled states as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FutureState {
    /// Created, not yet started.
    Pending,
    /// A worker runs it.
    Running,
    /// Cancelled before it ran.
    Cancelled,
    /// Ended with a value or an exception.
    Finished,
}

impl FutureState {
    /// Lower-case name, as Python's repr shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Cancelled => "cancelled",
            Self::Finished => "finished",
        }
    }
}

enum Phase<T> {
    Pending,
    Running,
    Cancelled { notified: bool },
    Finished(Result<T, Exception>),
}

type Callback<T> = Box<dyn FnOnce(&Future<T>) + Send>;

/// Where a future runs: the worker's name, its pid (process pools) and what can kill it.
pub(crate) type RunningOn<'a> = (&'a std::sync::Arc<str>, Option<u32>, std::sync::Arc<dyn Kill>);

struct State<T> {
    phase: Phase<T>,
    callbacks: Vec<Callback<T>>,
    waiters: Vec<Arc<Signal>>,
    killer: Option<std::sync::Arc<dyn Kill>>,
    /// Pending, but sent ahead to a worker: what takes it back before a cancel.
    ahead: Option<std::sync::Arc<dyn crate::context::Withdraw>>,
}

struct Core<T> {
    id: FutureId,
    sink: SinkRef,
    state: Mutex<State<T>>,
}

/// A handle on the result of an asynchronous call (Python's `concurrent.futures.Future`).
///
/// Cloning gives another handle on the same future. Executors create futures in
/// `submit`; [`Future::new`] makes a bare one for tests and executor authors.
///
/// ```
/// use futuretop_engine::{Future, FutureError, FutureState};
///
/// let f = Future::new();
/// let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
/// let record = std::sync::Arc::clone(&seen);
/// f.add_done_callback(move |f| *record.lock().unwrap() = f.try_result());
/// assert_eq!(f.set_running_or_notify_cancel(), Ok(true));
/// f.set_result(42)?;
/// assert_eq!(f.state(), FutureState::Finished);
/// assert_eq!(f.result(None), Ok(42));
/// assert_eq!(*seen.lock().unwrap(), Some(Ok(42)));
/// // A finished future cannot be set again, nor cancelled.
/// assert!(f.set_result(7).is_err());
/// assert!(!f.cancel());
/// # Ok::<(), futuretop_engine::Error>(())
/// ```
pub struct Future<T> {
    core: Arc<Core<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Self { core: Arc::clone(&self.core) }
    }
}

/// The deadline `timeout` from now; `None` for no timeout or one too far to represent.
/// The longest a thread watches a future before it sleeps on it (see `spin_until_done`).
#[cfg(not(loom))]
const SPIN_MAX: Duration = Duration::from_micros(50);
/// Below this a watch is not worth its first yield: the thread stops watching.
#[cfg(not(loom))]
const SPIN_MIN: Duration = Duration::from_micros(5);
/// A thread that stopped watching tries a full watch again every this many waits.
#[cfg(not(loom))]
const SPIN_PROBE: u32 = 16;

pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// A blocking wait made on some futures, reported and interruptible when made from a task.
pub(crate) struct WaitScope {
    ctx: Option<TaskContext>,
    targets: Vec<FutureId>,
}

impl WaitScope {
    /// Starts a wait on `targets`: if this thread runs a task, the wait is reported to the
    /// task's sink and `signal` becomes what an interrupt wakes.
    pub(crate) fn begin(signal: &Arc<Signal>, targets: Vec<FutureId>, timeout: Option<Duration>) -> Self {
        let ctx = context::current();
        if let Some(c) = &ctx {
            c.interrupt.set_blocked_on(Some(Arc::clone(signal)));
            for &target in &targets {
                emit(&c.sink, || Observation::WaitStart { waiter: c.id, target, timeout });
            }
        }
        Self { ctx, targets }
    }

    /// Whether the waiting task (if a task waits) has been interrupted.
    pub(crate) fn interrupted(&self) -> bool {
        self.ctx.as_ref().is_some_and(|c| c.interrupt.pending().is_some())
    }

    /// Ends the wait; for an interrupted one, returns the error the waiter gets.
    pub(crate) fn end(self, outcome: WaitOutcome) -> Option<Exception> {
        let c = self.ctx?;
        c.interrupt.set_blocked_on(None);
        let reason = c.interrupt.pending();
        let outcome = match (outcome, reason) {
            (WaitOutcome::Interrupted, Some(InterruptReason::Kill | InterruptReason::TimedOut(_))) => {
                WaitOutcome::Killed
            }
            (o, _) => o,
        };
        for target in self.targets {
            emit(&c.sink, || Observation::WaitEnd { waiter: c.id, target, outcome });
        }
        c.interrupt.consume_deadlock();
        match (outcome, reason) {
            (WaitOutcome::Killed, Some(InterruptReason::TimedOut(limit))) => {
                Some(Exception::Timeout(crate::error::TimeoutError::limit(limit)))
            }
            (WaitOutcome::Killed, _) => Some(Exception::Killed("while waiting on another future".into())),
            (WaitOutcome::Interrupted, _) => {
                Some(Exception::Deadlock("this wait was chosen to break a deadlock".into()))
            }
            (WaitOutcome::Completed | WaitOutcome::TimedOut, _) => None,
        }
    }
}

impl<T> Default for Future<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Future<T> {
    /// A new PENDING future with no executor (Python: `Future()`, "for testing").
    pub fn new() -> Self {
        Self::with_sink(None)
    }

    pub(crate) fn with_sink(sink: SinkRef) -> Self {
        Self {
            core: Arc::new(Core {
                id: FutureId::next(),
                sink,
                state: Mutex::new(State {
                    phase: Phase::Pending,
                    callbacks: Vec::new(),
                    waiters: Vec::new(),
                    killer: None,
                    ahead: None,
                }),
            }),
        }
    }

    /// This future's id (the same for every clone).
    pub fn id(&self) -> FutureId {
        self.core.id
    }

    /// True if `other` is a handle on the same future.
    pub fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    /// The current state.
    pub fn state(&self) -> FutureState {
        match lock(&self.core.state).phase {
            Phase::Pending => FutureState::Pending,
            Phase::Running => FutureState::Running,
            Phase::Cancelled { .. } => FutureState::Cancelled,
            Phase::Finished(_) => FutureState::Finished,
        }
    }

    /// Attempts to cancel the call. A pending future becomes CANCELLED, its waiters wake
    /// and its callbacks run, and `true` is returned; an already cancelled one returns
    /// `true`; a running or finished one cannot be cancelled and returns `false`.
    ///
    /// A call a process pool has sent ahead to a busy worker is still pending: the worker
    /// is asked to drop it first (a round trip to its process, not the length of the call
    /// before it), and `false` comes back if it had started it just then.
    pub fn cancel(&self) -> bool {
        loop {
            let ahead = {
                let mut st = lock(&self.core.state);
                match st.phase {
                    Phase::Running | Phase::Finished(_) => return false,
                    Phase::Cancelled { .. } => return true,
                    Phase::Pending => match st.ahead.clone() {
                        // Not at a worker: cancelled here, under the same lock (a pool
                        // that sends it ahead later sees it cancelled).
                        None => {
                            st.phase = Phase::Cancelled { notified: false };
                            emit(&self.core.sink, || Observation::Finished {
                                id: self.core.id,
                                outcome: Outcome::Cancelled,
                            });
                            self.settle(st);
                            return true;
                        }
                        Some(w) => w,
                    },
                }
            };
            if !ahead.withdraw(self.core.id) {
                return self.cancelled();
            }
            // Taken back: looked at again (it may have been sent ahead anew meanwhile).
        }
    }

    /// True if the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.state() == FutureState::Cancelled
    }

    /// True if the call is running now.
    pub fn running(&self) -> bool {
        self.state() == FutureState::Running
    }

    /// True if the future was cancelled or finished.
    pub fn done(&self) -> bool {
        matches!(self.state(), FutureState::Cancelled | FutureState::Finished)
    }

    /// Blocks until the future is done, for at most `timeout` (`None`: no limit).
    /// Returns true if it is done.
    ///
    /// From inside a task this is a reported, interruptible wait, like `result`.
    pub fn wait_done(&self, timeout: Option<Duration>) -> Result<bool, Exception> {
        self.block_until_done(timeout).map(|()| self.done())
    }

    fn block_until_done(&self, timeout: Option<Duration>) -> Result<(), Exception> {
        let deadline = deadline(timeout);
        if self.spin_until_done(deadline) {
            return Ok(());
        }
        let signal = {
            let mut st = lock(&self.core.state);
            if matches!(st.phase, Phase::Cancelled { .. } | Phase::Finished(_)) {
                return Ok(());
            }
            let signal = Arc::new(Signal::new());
            st.waiters.push(Arc::clone(&signal));
            signal
        };
        let scope = WaitScope::begin(&signal, vec![self.core.id], timeout);
        let outcome = signal.block(deadline, || scope.interrupted(), |fired| !fired.is_empty());
        lock(&self.core.state).waiters.retain(|w| !Arc::ptr_eq(w, &signal));
        match scope.end(outcome) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Before a thread that is not a task goes to sleep on a future, it watches it for a
    /// few microseconds: a call on another thread or a process worker often finishes
    /// that soon, and a sleeping thread costs a wake-up (on a VM, an idle vCPU takes
    /// 10-20 µs to wake: more than a whole process-pool call). The watch yields the CPU
    /// between looks, and it adapts, per thread: a watch that saw the future finish
    /// sets the next one to [`SPIN_MAX`]; one that did not halves it, down to nothing
    /// but one look, with a full watch every [`SPIN_PROBE`] waits to find out whether
    /// watching pays again. So a thread whose waits are long (a `map` over slow calls)
    /// soon stops spending CPU on them. Tasks never watch (their waits are reported at
    /// once, for the deadlock detector). Returns true if the future is done.
    #[cfg(not(loom))]
    fn spin_until_done(&self, deadline: Option<Instant>) -> bool {
        thread_local! {
            /// This thread's watch, and how many waits it has skipped watching.
            static BUDGET: std::cell::Cell<(Duration, u32)> = const { std::cell::Cell::new((SPIN_MAX, 0)) };
        }
        if crate::context::in_task() {
            return false;
        }
        let (mut budget, skipped) = BUDGET.with(std::cell::Cell::get);
        if budget.is_zero() {
            if skipped + 1 < SPIN_PROBE {
                BUDGET.with(|b| b.set((budget, skipped + 1)));
                return false;
            }
            budget = SPIN_MAX;
        }
        let start = Instant::now();
        let until = deadline.map_or(start + budget, |d| d.min(start + budget));
        let finished = loop {
            if let Ok(st) = self.core.state.try_lock() {
                if matches!(st.phase, Phase::Cancelled { .. } | Phase::Finished(_)) {
                    break true;
                }
            }
            if Instant::now() >= until {
                break false;
            }
            // Yield rather than spin: a thread that needs this CPU (the worker itself,
            // when CPUs are scarce) gets it.
            std::thread::yield_now();
        };
        let next = if finished {
            SPIN_MAX
        } else if budget / 2 < SPIN_MIN {
            Duration::ZERO
        } else {
            budget / 2
        };
        BUDGET.with(|b| b.set((next, 0)));
        finished
    }

    /// Under loom every wait blocks at once (a spin would only multiply the schedules).
    #[cfg(loom)]
    #[allow(clippy::unused_self)]
    fn spin_until_done(&self, _deadline: Option<Instant>) -> bool {
        false
    }

    /// Returns the call's value, waiting up to `timeout` (`None`: forever). Python's
    /// `Future.result(timeout)`.
    ///
    /// Errors: [`FutureError::Cancelled`] if it was cancelled, [`FutureError::Timeout`] if
    /// it did not finish in time, [`FutureError::Failed`] with the task's exception, and
    /// [`FutureError::Interrupted`] if this wait itself was killed or broken.
    pub fn result(&self, timeout: Option<Duration>) -> Result<T, FutureError>
    where
        T: Clone,
    {
        self.block_until_done(timeout).map_err(FutureError::Interrupted)?;
        match &lock(&self.core.state).phase {
            Phase::Finished(Ok(v)) => Ok(v.clone()),
            Phase::Finished(Err(e)) => Err(FutureError::Failed(e.clone())),
            Phase::Cancelled { .. } => Err(FutureError::Cancelled(CancelledError)),
            Phase::Pending | Phase::Running => Err(FutureError::Timeout(TimeoutError::single())),
        }
    }

    /// Returns the call's exception (`None` if it returned a value), waiting up to
    /// `timeout`. Python's `Future.exception(timeout)`: fails only with `Cancelled`,
    /// `Timeout` or `Interrupted`.
    pub fn exception(&self, timeout: Option<Duration>) -> Result<Option<Exception>, FutureError> {
        self.block_until_done(timeout).map_err(FutureError::Interrupted)?;
        match &lock(&self.core.state).phase {
            Phase::Finished(Ok(_)) => Ok(None),
            Phase::Finished(Err(e)) => Ok(Some(e.clone())),
            Phase::Cancelled { .. } => Err(FutureError::Cancelled(CancelledError)),
            Phase::Pending | Phase::Running => Err(FutureError::Timeout(TimeoutError::single())),
        }
    }

    /// The value or exception if the future is done, without waiting.
    pub fn try_result(&self) -> Option<Result<T, FutureError>>
    where
        T: Clone,
    {
        match &lock(&self.core.state).phase {
            Phase::Finished(Ok(v)) => Some(Ok(v.clone())),
            Phase::Finished(Err(e)) => Some(Err(FutureError::Failed(e.clone()))),
            Phase::Cancelled { .. } => Some(Err(FutureError::Cancelled(CancelledError))),
            Phase::Pending | Phase::Running => None,
        }
    }

    /// Runs `f(&future)` when the future is done (finished or cancelled); at once, in this
    /// thread, if it already is. Callbacks run in the order added, in the thread that
    /// completes the future. A callback that panics is reported (to the pool's sink, or
    /// on stderr without one) and the others still run.
    pub fn add_done_callback(&self, f: impl FnOnce(&Self) + Send + 'static) {
        let mut st = lock(&self.core.state);
        if matches!(st.phase, Phase::Cancelled { .. } | Phase::Finished(_)) {
            drop(st);
            self.invoke(Box::new(f));
        } else {
            st.callbacks.push(Box::new(f));
        }
    }

    /// For executors: marks the future RUNNING and returns `Ok(true)`, or, if it was
    /// cancelled, records that the executor saw it and returns `Ok(false)` (the call must
    /// then not run). Any other state is an error (Python raises `RuntimeError`).
    pub fn set_running_or_notify_cancel(&self) -> Result<bool, InvalidStateError> {
        self.start_running(None)
    }

    /// `set_running_or_notify_cancel` for a worker: reports which worker runs it, and
    /// installs what can kill it.
    pub(crate) fn start_running(&self, on: Option<RunningOn<'_>>) -> Result<bool, InvalidStateError> {
        let mut st = lock(&self.core.state);
        match st.phase {
            Phase::Pending => {
                st.phase = Phase::Running;
                st.ahead = None;
                if let Some((worker, pid, killer)) = on {
                    st.killer = Some(killer);
                    emit(&self.core.sink, || Observation::Running {
                        id: self.core.id,
                        worker: std::sync::Arc::clone(worker),
                        pid,
                    });
                }
                Ok(true)
            }
            Phase::Cancelled { notified: false } => {
                st.phase = Phase::Cancelled { notified: true };
                Ok(false)
            }
            Phase::Cancelled { notified: true } | Phase::Running | Phase::Finished(_) => {
                Err(invalid(self.core.id, &st.phase, "set_running_or_notify_cancel"))
            }
        }
    }

    /// For a process pool: marks a pending future as sent ahead to a worker, with what
    /// takes it back (see [`Future::cancel`]), and returns `Ok(true)`; or, if it was
    /// cancelled, does what [`Future::set_running_or_notify_cancel`] does.
    pub(crate) fn send_ahead(
        &self,
        w: std::sync::Arc<dyn crate::context::Withdraw>,
    ) -> Result<bool, InvalidStateError> {
        let mut st = lock(&self.core.state);
        if matches!(st.phase, Phase::Pending) {
            st.ahead = Some(w);
            return Ok(true);
        }
        drop(st);
        self.start_running(None)
    }

    /// For a process pool: the call is no longer ahead at a worker (it was taken back, or
    /// its worker died before it started).
    pub(crate) fn back_from_ahead(&self) {
        lock(&self.core.state).ahead = None;
    }

    /// Finishes the future with `value`, waking waiters and running callbacks.
    /// A cancelled or finished future is left unchanged: `InvalidStateError`.
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError> {
        self.finish(Ok(value), "set_result")
    }

    /// Finishes the future with `exception`. A cancelled or finished future is left
    /// unchanged: `InvalidStateError`.
    pub fn set_exception(&self, exception: impl Into<Exception>) -> Result<(), InvalidStateError> {
        self.finish(Err(exception.into()), "set_exception")
    }

    pub(crate) fn finish(
        &self,
        outcome: Result<T, Exception>,
        operation: &'static str,
    ) -> Result<(), InvalidStateError> {
        let mut st = lock(&self.core.state);
        match st.phase {
            Phase::Pending | Phase::Running => {
                emit(&self.core.sink, || Observation::Finished {
                    id: self.core.id,
                    outcome: match &outcome {
                        Ok(_) => Outcome::Done,
                        Err(e) => Outcome::Exception(e.clone()),
                    },
                });
                st.phase = Phase::Finished(outcome);
                st.killer = None;
                st.ahead = None;
                self.settle(st);
                Ok(())
            }
            Phase::Cancelled { .. } | Phase::Finished(_) => Err(invalid(self.core.id, &st.phase, operation)),
        }
    }

    /// Kills the running call (an extension: Python cannot stop a running future).
    /// Thread tasks are interrupted cooperatively (their waits return at once, built-ins
    /// poll [`checkpoint`](crate::checkpoint)); the future then ends with
    /// [`Exception::Killed`]. Returns false if the future is not running or its worker
    /// cannot kill it.
    pub fn kill(&self) -> bool {
        self.interrupt(InterruptReason::Kill)
    }

    /// Stops the running call because it ran past `limit` (an extension: a task's
    /// `timeout`): as [`Future::kill`] does, but the call ends with a `TimeoutError` that
    /// names the limit. A thread call stops at its next wait or checkpoint; a process
    /// call's worker is killed; a Slurm job is cancelled. Returns false if the future is
    /// not running.
    pub fn time_out(&self, limit: std::time::Duration) -> bool {
        self.interrupt(InterruptReason::TimedOut(limit))
    }

    /// Interrupts the running call's current wait so that it fails with a
    /// [`Exception::Deadlock`] error (how a deadlock is broken). Returns false if the
    /// future is not running.
    pub fn break_wait(&self) -> bool {
        self.interrupt(InterruptReason::Deadlock)
    }

    fn interrupt(&self, reason: InterruptReason) -> bool {
        let killer = {
            let st = lock(&self.core.state);
            match (&st.phase, &st.killer) {
                (Phase::Running, Some(k)) => std::sync::Arc::clone(k),
                _ => return false,
            }
        };
        killer.kill(self.core.id, reason)
    }

    /// Wakes waiters and runs callbacks after a transition to a done state; takes the lock
    /// guard so that user code never runs under it.
    fn settle(&self, mut st: crate::sync::MutexGuard<'_, State<T>>) {
        let waiters = std::mem::take(&mut st.waiters);
        let callbacks = std::mem::take(&mut st.callbacks);
        drop(st);
        for w in waiters {
            w.fire(self.core.id);
        }
        for cb in callbacks {
            self.invoke(cb);
        }
    }

    fn invoke(&self, cb: Callback<T>) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb(self))) {
            let message = panic_message(payload.as_ref());
            if self.core.sink.is_some() {
                emit(&self.core.sink, || Observation::CallbackPanicked { id: self.core.id, message });
            } else {
                eprintln!("exception calling callback for future {}: {message}", self.core.id);
            }
        }
    }

    /// Installs `signal` to be fired when this future is done; returns false (and installs
    /// nothing) if it already is.
    pub(crate) fn install_waiter(&self, signal: &Arc<Signal>) -> bool {
        let mut st = lock(&self.core.state);
        if matches!(st.phase, Phase::Cancelled { .. } | Phase::Finished(_)) {
            false
        } else {
            st.waiters.push(Arc::clone(signal));
            true
        }
    }

    pub(crate) fn remove_waiter(&self, signal: &Arc<Signal>) {
        lock(&self.core.state).waiters.retain(|w| !Arc::ptr_eq(w, signal));
    }

    /// True if done with an exception (for `wait(FIRST_EXCEPTION)`).
    pub(crate) fn has_exception(&self) -> bool {
        matches!(lock(&self.core.state).phase, Phase::Finished(Err(_)))
    }
}

impl<T> fmt::Debug for Future<T> {
    /// Python's repr: `<Future #3 state=finished raised TaskError>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.core.state);
        f.write_str(&repr(self.core.id, &st.phase))
    }
}

/// Python's repr of a future in `phase`: `<Future #3 state=finished returned i32>`.
fn repr<T>(id: FutureId, phase: &Phase<T>) -> String {
    match phase {
        Phase::Pending => format!("<Future {id} state=pending>"),
        Phase::Running => format!("<Future {id} state=running>"),
        Phase::Cancelled { .. } => format!("<Future {id} state=cancelled>"),
        Phase::Finished(Ok(_)) => format!("<Future {id} state=finished returned {}>", short_type_name::<T>()),
        Phase::Finished(Err(e)) => format!("<Future {id} state=finished raised {}>", e.type_name()),
    }
}

/// `operation` refused on the future `id` in `phase` (Python: `InvalidStateError` with
/// the state and the future's repr).
fn invalid<T>(id: FutureId, phase: &Phase<T>, operation: &'static str) -> InvalidStateError {
    let state = match phase {
        Phase::Pending => "pending",
        Phase::Running => "running",
        Phase::Cancelled { .. } => "cancelled",
        Phase::Finished(_) => "finished",
    };
    InvalidStateError { operation, state, future: repr(id, phase) }
}

/// `T`'s name without module paths: `Vec<String>` for `alloc::vec::Vec<alloc::string::String>`.
fn short_type_name<T>() -> String {
    fn last(path: &str) -> &str {
        path.rsplit("::").next().unwrap_or(path)
    }
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut path = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            out.push_str(last(&path));
            path.clear();
            out.push(c);
        }
    }
    out.push_str(last(&path));
    out
}

/// The message of a panic payload (`&str` or `String`; anything else is named as such).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn a_type_is_named_without_its_module_paths() {
        assert_eq!(short_type_name::<i32>(), "i32");
        assert_eq!(short_type_name::<Vec<String>>(), "Vec<String>");
        assert_eq!(short_type_name::<std::collections::HashMap<u8, Option<String>>>(), "HashMap<u8, Option<String>>");
    }
}
