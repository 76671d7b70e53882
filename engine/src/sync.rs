//! The synchronisation primitives the Future core is built on: std's, or loom's under `--cfg loom`.
//!
//! Everything in `future` that races (the state mutex, the waiters' condition variables)
//! takes its primitives from here, so `RUSTFLAGS="--cfg loom" cargo test -p futuretop-engine --test loom`
//! model-checks the real code rather than a copy.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning: every critical section in the engine leaves its
/// data consistent before it can panic (user code never runs under these locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
