//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_as_completed.py`
//! (`AsCompletedTests`, repository python/cpython), run against a `ThreadPoolExecutor`
//! of 5 workers (`ThreadPoolMixin`).
//!
//! Where Rust differs, and how these tests deal with it:
//! - `time.sleep(n)` tasks that must still be running become tasks blocked on a
//!   `crate::common::cf::Gate`, opened by the test when it is done with them.
//! - Python's iterator *raises* `TimeoutError`; futuretop's yields one
//!   `Err(FutureError::Timeout(..))` and then ends.
//! - `test_free_reference_yielded_future` uses `weakref` and `gc_collect()`. Rust has no
//!   weak reference to a future's shared state, and no GC: a future's state (and its
//!   value) is freed the moment its last handle drops. So each future holds a
//!   `crate::common::cf::Tracked` value that counts its drop: once the test drops its own handle
//!   of a yielded future, the value must be freed at once, which proves that the
//!   iterator kept no handle. The cancelled future holds no value and so cannot be
//!   checked this way; the other nine are.
//!
//! The process-pool variants belong to the process pool's tests.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::cf::{
    cancelled_and_notified_future, exception_future, ids, pending_future, pool, running_future, successful_future,
    Gate, Tracked,
};
use futuretop_engine::as_completed;
use futuretop_engine::Future;
use futuretop_engine::FutureError;
use futuretop_engine::TimeoutError;

// CPython: test_no_timeout
#[test]
fn test_no_timeout() {
    let pool = pool();
    let gate = Gate::new();
    let future1 = pool.submit(|| 2 * 21).unwrap();
    let future2 = pool.submit(|| 7 * 6).unwrap();
    let g = gate.clone();
    // Still running when as_completed starts: yielded once it completes.
    let running = pool.submit(move || i32::from(g.wait())).unwrap();
    let all =
        [cancelled_and_notified_future(), exception_future(), successful_future(), future1, future2, running.clone()];

    let mut completed = Vec::new();
    for f in as_completed(&all, None) {
        completed.push(f.unwrap());
        if completed.len() == 5 {
            assert!(!completed.iter().any(|f| f.same_as(&running)), "yielded before it completed");
            gate.open();
        }
    }
    assert_eq!(completed.len(), 6, "each future is yielded exactly once");
    assert_eq!(ids(&completed), ids(&all));
    assert!(completed.last().unwrap().same_as(&running));
}

// CPython: test_future_times_out
#[test]
fn test_future_times_out() {
    let pool = pool();
    let gate = Gate::new();
    let already_completed = [cancelled_and_notified_future(), exception_future(), successful_future()];
    for timeout in [Duration::ZERO, Duration::from_millis(100)] {
        let g = gate.clone();
        let future = pool.submit(move || i32::from(g.wait())).unwrap();
        let mut fs = already_completed.to_vec();
        fs.push(future.clone());

        let mut completed_futures = Vec::new();
        let mut timed_out = None;
        for f in as_completed(&fs, Some(timeout)) {
            match f {
                Ok(f) => completed_futures.push(f),
                Err(e) => timed_out = Some(e),
            }
        }
        // Check that `future` wasn't completed, and the iteration ended with a timeout.
        assert_eq!(ids(&completed_futures), ids(&already_completed), "timeout {timeout:?}");
        assert!(matches!(timed_out, Some(FutureError::Timeout(_))), "timeout {timeout:?}: {timed_out:?}");
        assert!(!future.done());
    }
    gate.open();
}

// CPython: test_duplicate_futures
#[test]
fn test_duplicate_futures() {
    let pool = pool();
    let gate = Gate::new();
    let g = gate.clone();
    let future1 = pool.submit(move || i32::from(g.wait())).unwrap();
    let it = as_completed(&[future1.clone(), future1.clone(), future1.clone()], None);
    assert_eq!(it.remaining(), 1);
    gate.open();
    let completed: Vec<_> = it.collect();
    assert_eq!(completed.len(), 1);
    assert!(completed[0].as_ref().unwrap().same_as(&future1));
}

/// Removes `yielded` from `list`, drops it, and checks that its value was freed: no other
/// handle (the iterator's in particular) was left.
#[track_caller]
fn remove_and_check_freed(list: &mut Vec<Future<Tracked>>, yielded: Future<Tracked>, drops: &Arc<AtomicUsize>) {
    let had_value = matches!(yielded.exception(Some(Duration::ZERO)), Ok(None));
    let before = list.len();
    list.retain(|f| !f.same_as(&yielded));
    assert_eq!(list.len(), before - 1);
    let freed_before = drops.load(Ordering::SeqCst);
    drop(yielded);
    if had_value {
        assert_eq!(drops.load(Ordering::SeqCst), freed_before + 1, "the yielded future is still referenced");
    }
}

// CPython: test_free_reference_yielded_future
#[test]
fn test_free_reference_yielded_future() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut futures_list: Vec<Future<Tracked>> = (0..8).map(|_| Future::new()).collect();
    let cancelled = Future::new();
    assert!(cancelled.cancel());
    assert_eq!(cancelled.set_running_or_notify_cancel(), Ok(false));
    futures_list.push(cancelled);
    let finished = Future::new();
    finished.set_result(Tracked::new(&drops)).unwrap();
    futures_list.push(finished);

    let mut timed_out = false;
    for future in as_completed(&futures_list, Some(Duration::ZERO)) {
        match future {
            Ok(future) => remove_and_check_freed(&mut futures_list, future, &drops),
            Err(e) => {
                assert!(matches!(e, FutureError::Timeout(_)));
                timed_out = true;
            }
        }
    }
    assert!(timed_out);
    assert_eq!(futures_list.len(), 8);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    futures_list[0].set_result(Tracked::new(&drops)).unwrap();
    for future in as_completed(&futures_list, None) {
        remove_and_check_freed(&mut futures_list, future.unwrap(), &drops);
        if let Some(next) = futures_list.first() {
            next.set_result(Tracked::new(&drops)).unwrap();
        }
    }
    assert!(futures_list.is_empty());
    assert_eq!(drops.load(Ordering::SeqCst), 9);
}

// CPython: test_correct_timeout_exception_msg
#[test]
fn test_correct_timeout_exception_msg() {
    let futures_list = [cancelled_and_notified_future(), pending_future(), running_future(), successful_future()];
    let results: Vec<_> = as_completed(&futures_list, Some(Duration::ZERO)).collect();
    assert_eq!(results.len(), 3);
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!(*err, FutureError::Timeout(TimeoutError { unfinished: Some((2, 4)), limit: None }));
    assert_eq!(err.to_string(), "2 (of 4) futures unfinished");
    let yielded: BTreeSet<_> = results.iter().filter_map(|r| r.as_ref().ok()).map(Future::id).collect();
    assert_eq!(yielded, ids(&[futures_list[0].clone(), futures_list[3].clone()]));
}

// CPython: test_correct_timeout_exception_msg (a positive timeout counts from the call)
#[test]
fn test_correct_timeout_exception_msg_after_waiting() {
    let fs = [pending_future(), pending_future(), successful_future()];
    let mut it = as_completed(&fs, Some(Duration::from_millis(50)));
    assert!(it.next().unwrap().is_ok());
    let err = it.next().unwrap().unwrap_err();
    assert_eq!(err.to_string(), "2 (of 3) futures unfinished");
    assert!(it.next().is_none(), "the iteration ends after the timeout");
    // Completing one afterwards changes nothing for the ended iterator.
    fs[0].set_result(1).unwrap();
    assert!(it.next().is_none());
}
