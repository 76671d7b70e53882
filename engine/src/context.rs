//! The task a thread is running right now, and the interrupts (kill, deadlock break) it can receive.
//!
//! A worker installs a task context while it runs a task. A blocking wait made from
//! inside the task (`Future::result`, `wait`, `as_completed`) finds it here, reports
//! itself as "this task waits on that future" to the pool's sink, and can be
//! interrupted: `Future::kill` and the deadlock breaker set a flag and wake the wait,
//! which then returns [`FutureError::Interrupted`](crate::FutureError::Interrupted).
//! Built-in long-running tasks poll [`checkpoint`] for the same flag (cooperative kill).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::error::Exception;
use crate::observe::{FutureId, SinkRef};
use crate::signal::Signal;

/// Why a running task is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptReason {
    /// The user killed the task.
    Kill,
    /// The task's current wait was chosen to break a deadlock.
    Deadlock,
    /// The task ran past its time limit (an extension: a task's `timeout`); it ends with
    /// a `TimeoutError` that names the limit.
    TimedOut(std::time::Duration),
}

// Ranked: a raised flag only goes up (a kill outranks a timeout, which outranks a
// deadlock break).
const NONE: u8 = 0;
const DEADLOCK: u8 = 1;
const TIMEOUT: u8 = 2;
const KILL: u8 = 3;

/// The interrupt flag of one worker's current task, and the wait it is blocked in (to
/// wake it). One per worker, reused from task to task: an interrupt names the task it is
/// for, so a late kill never hits the next task.
#[derive(Default)]
pub(crate) struct Interrupt {
    flag: AtomicU8,
    inner: std::sync::Mutex<InterruptInner>,
}

#[derive(Default)]
struct InterruptInner {
    task: Option<FutureId>,
    blocked_on: Option<crate::sync::Arc<Signal>>,
    /// The limit of a [`InterruptReason::TimedOut`] raised.
    limit: Option<std::time::Duration>,
}

impl Interrupt {
    fn inner(&self) -> std::sync::MutexGuard<'_, InterruptInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The worker starts running `task`.
    pub(crate) fn begin_task(&self, task: FutureId) {
        let mut inner = self.inner();
        inner.task = Some(task);
        inner.blocked_on = None;
        inner.limit = None;
        self.flag.store(NONE, Ordering::SeqCst);
    }

    /// The worker is done with its task.
    pub(crate) fn end_task(&self) {
        let mut inner = self.inner();
        inner.task = None;
        inner.blocked_on = None;
        self.flag.store(NONE, Ordering::SeqCst);
    }

    /// Raises the flag for `task` and wakes its current wait; false if the worker no
    /// longer runs `task`.
    pub(crate) fn raise(&self, task: FutureId, reason: InterruptReason) -> bool {
        let v = match reason {
            InterruptReason::Kill => KILL,
            InterruptReason::Deadlock => DEADLOCK,
            InterruptReason::TimedOut(_) => TIMEOUT,
        };
        let mut inner = self.inner();
        if inner.task != Some(task) {
            return false;
        }
        if let InterruptReason::TimedOut(limit) = reason {
            inner.limit.get_or_insert(limit);
        }
        // A kill outranks a deadlock break; never downgrade.
        self.flag.fetch_max(v, Ordering::SeqCst);
        if let Some(signal) = inner.blocked_on.as_ref() {
            signal.wake();
        }
        true
    }

    /// The pending interrupt, if any.
    pub(crate) fn pending(&self) -> Option<InterruptReason> {
        match self.flag.load(Ordering::SeqCst) {
            KILL => Some(InterruptReason::Kill),
            DEADLOCK => Some(InterruptReason::Deadlock),
            TIMEOUT => Some(InterruptReason::TimedOut(self.inner().limit.unwrap_or_default())),
            _ => None,
        }
    }

    /// Clears a deadlock interrupt once the wait it targeted has returned (the task may
    /// go on and wait again). A kill stays.
    pub(crate) fn consume_deadlock(&self) {
        let _ = self.flag.compare_exchange(DEADLOCK, NONE, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(crate) fn set_blocked_on(&self, signal: Option<crate::sync::Arc<Signal>>) {
        self.inner().blocked_on = signal;
    }
}

/// Something that can stop a running task: installed by the worker that runs it.
pub trait Kill: Send + Sync {
    /// Stops `task`, which this worker runs, for `reason`; returns false if it could not
    /// (the worker has moved on to another task, say).
    fn kill(&self, task: FutureId, reason: InterruptReason) -> bool;
}

/// Something that can take back a call sent ahead to a worker before it starts: installed
/// on a pending future by the process pool that sent it, and asked by
/// [`Future::cancel`](crate::Future::cancel).
pub(crate) trait Withdraw: Send + Sync {
    /// Takes `task` back: true if it will not run where it was sent (it can be
    /// cancelled), false if it has started there (or the worker did not answer).
    fn withdraw(&self, task: FutureId) -> bool;
}

impl Kill for Interrupt {
    fn kill(&self, task: FutureId, reason: InterruptReason) -> bool {
        self.raise(task, reason)
    }
}

/// The task running on this thread.
#[derive(Clone)]
pub(crate) struct TaskContext {
    pub(crate) id: FutureId,
    pub(crate) sink: SinkRef,
    pub(crate) interrupt: Arc<Interrupt>,
}

thread_local! {
    static CURRENT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
}

/// Installs `ctx` as this thread's current task until the guard drops.
pub(crate) fn enter(ctx: TaskContext) -> ContextGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(ctx));
    ContextGuard { previous }
}

/// Restores the previous task context on drop.
pub(crate) struct ContextGuard {
    previous: Option<TaskContext>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// This thread's current task, if it runs one.
pub(crate) fn current() -> Option<TaskContext> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The id of the future whose task this thread is running, if any.
pub fn current_task() -> Option<FutureId> {
    current().map(|c| c.id)
}

/// For long-running task code: returns `Err(Killed)` once the task has been killed (or
/// `Err(Timeout)` once it ran past its time limit), so it can stop early
/// (`futuretop_engine::checkpoint()?` in a loop). Outside a task it is always `Ok`.
pub fn checkpoint() -> Result<(), Exception> {
    match current().and_then(|c| c.interrupt.pending()) {
        Some(InterruptReason::Kill) => Err(Exception::Killed("stopped at a checkpoint".into())),
        Some(InterruptReason::TimedOut(limit)) => Err(Exception::Timeout(crate::error::TimeoutError::limit(limit))),
        _ => Ok(()),
    }
}

/// True while this thread runs a task (used by the binary's panic hook to keep a task's
/// panic off the terminal: the panic is stored in the future instead).
pub fn in_task() -> bool {
    CURRENT.try_with(|c| c.borrow().is_some()).unwrap_or(false)
}
