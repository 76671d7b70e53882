//! What a blocked wait sleeps on: the signal futures fire when they complete, and an interrupt wakes.

use std::time::Instant;

use crate::observe::{FutureId, WaitOutcome};
use crate::sync::{lock, Condvar, Mutex};

/// What waits on futures: a flag, the ids that fired it, and a condition variable.
/// One type serves `result()`, `wait()` and `as_completed()` (Python's `_Waiter`s).
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    cv: Condvar,
}

#[derive(Default)]
pub(crate) struct SignalState {
    /// Futures that completed since the signal was installed, in completion order.
    pub(crate) fired: Vec<FutureId>,
    /// Set by an interrupt.
    woken: bool,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new(SignalState::default()), cv: Condvar::new() }
    }

    pub(crate) fn fire(&self, id: FutureId) {
        lock(&self.state).fired.push(id);
        self.cv.notify_all();
    }

    pub(crate) fn wake(&self) {
        lock(&self.state).woken = true;
        self.cv.notify_all();
    }

    /// Blocks until `ready` says so, `deadline` passes or `interrupted` says the waiting
    /// task is interrupted. `ready` sees the ids fired so far and may drain them.
    pub(crate) fn block(
        &self,
        deadline: Option<Instant>,
        interrupted: impl Fn() -> bool,
        mut ready: impl FnMut(&mut Vec<FutureId>) -> bool,
    ) -> WaitOutcome {
        let mut s = lock(&self.state);
        loop {
            if ready(&mut s.fired) {
                return WaitOutcome::Completed;
            }
            if interrupted() {
                return WaitOutcome::Interrupted;
            }
            s.woken = false;
            match deadline {
                None => {
                    s = self.cv.wait(s).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return WaitOutcome::TimedOut;
                    }
                    s = self.cv.wait_timeout(s, d - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
                }
            }
        }
    }
}
