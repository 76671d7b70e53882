//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_wait.py`
//! (`WaitTests`, and `ThreadPoolWaitTests.test_pending_calls_race`; repository
//! python/cpython), run against a `ThreadPoolExecutor` of 5 workers (`ThreadPoolMixin`).
//!
//! Where Rust differs, and how these tests deal with it:
//! - `event.wait` tasks become tasks blocked on a `crate::common::cf::Gate` the test opens.
//! - Python compares sets of futures; here the sets of their ids.
//! - `divmod(21, 0)` raising `ZeroDivisionError` becomes a `Fallible` task returning `Err`.
//! - **A `CANCELLED` future is done for `wait`.** In CPython a future cancelled but not
//!   yet seen by its executor (`CANCELLED_FUTURE`) is *not* in `done` (only
//!   `CANCELLED_AND_NOTIFIED` is), so `test_first_completed` and
//!   `test_first_exception_some_already_complete` expect it in `not_done`. futuretop
//!   deliberately wakes `wait` at `cancel()` (see `engine/src/future.rs`, and cf-semantics.md:
//!   "Already-done futures (finished or cancelled) go to done at once"), so here it is in
//!   `done`; `test_first_completed` checks that case on its own.
//! - `wait` on an empty list returns at once in Python whatever `return_when` is
//!   (`len(done) == len(fs)`); checked by `test_first_completed_empty_input`.
//!
//! The process-pool variants (`ProcessPool*WaitTest`) belong to the process pool's tests.

use std::time::Instant;

use crate::common::cf::{
    cancelled_and_notified_future, cancelled_future, exception_future, ids, pool, successful_future, within, Gate,
    LONG, SHORT,
};
use futuretop_engine::wait;
use futuretop_engine::Exception;
use futuretop_engine::Fallible;
use futuretop_engine::Future;
use futuretop_engine::ReturnWhen;

fn mul(x: i32, y: i32) -> i32 {
    x * y
}

/// Submits a task that blocks on `gate` (Python: `executor.submit(event.wait)`).
fn submit_blocked(pool: &futuretop_engine::ThreadPoolExecutor, gate: &Gate) -> Future<i32> {
    let gate = gate.clone();
    pool.submit(move || i32::from(gate.wait())).expect("the pool accepts work")
}

/// Python's `divmod(x, 0)`: a task that raises.
fn submit_zero_division(pool: &futuretop_engine::ThreadPoolExecutor) -> Future<i32> {
    pool.submit_named(None, Fallible(|| Err::<i32, _>(Exception::task("integer division or modulo by zero"))))
        .expect("the pool accepts work")
}

// CPython: test_20369
#[test]
fn test_20369() {
    let pool = pool();
    let future = pool.submit(|| mul(1, 2)).unwrap();
    let r = wait(&[future.clone(), future.clone()], None, ReturnWhen::AllCompleted);
    assert_eq!(r.done.len(), 1, "a duplicate was counted twice");
    assert_eq!(ids(&r.done), ids(&[future]));
    assert!(r.not_done.is_empty());
}

// CPython: test_first_completed
#[test]
fn test_first_completed() {
    let pool = pool();
    let event = Gate::new();
    let future1 = pool.submit(|| 21 * 2).unwrap();
    let future2 = submit_blocked(&pool, &event);

    let r = wait(&[future1.clone(), future2.clone()], None, ReturnWhen::FirstCompleted);
    assert_eq!(ids(&r.done), ids(&[future1]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));

    // CPython's list also holds CANCELLED_FUTURE, which it leaves in not_done; futuretop
    // counts a cancelled future as done at once, so the wait returns with it at once.
    let cancelled = cancelled_future();
    let r = wait(&[cancelled.clone(), future2.clone()], None, ReturnWhen::FirstCompleted);
    assert_eq!(ids(&r.done), ids(&[cancelled]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));

    event.open();
    assert_eq!(future2.result(Some(LONG)), Ok(1)); // wait for job to finish
}

// CPython: test_first_completed (an empty input returns at once, as len(done) == len(fs))
#[test]
fn test_first_completed_empty_input() {
    for return_when in [ReturnWhen::FirstCompleted, ReturnWhen::FirstException, ReturnWhen::AllCompleted] {
        let r = within("wait on no futures", move || wait::<i32>(&[], None, return_when));
        assert!(r.done.is_empty() && r.not_done.is_empty(), "{return_when:?}");
    }
}

// CPython: test_first_completed_some_already_completed
#[test]
fn test_first_completed_some_already_completed() {
    let pool = pool();
    let event = Gate::new();
    let future1 = submit_blocked(&pool, &event);
    let cn = cancelled_and_notified_future();
    let ok = successful_future();

    let r = wait(&[cn.clone(), ok.clone(), future1.clone()], None, ReturnWhen::FirstCompleted);
    assert_eq!(ids(&r.done), ids(&[cn, ok]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future1)));

    event.open();
    future1.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception
#[test]
fn test_first_exception() {
    let pool = pool();
    let event1 = Gate::new();
    let event2 = Gate::new();
    let future1 = pool.submit(|| 2 * 21).unwrap();
    let e1 = event1.clone();
    let future2 = pool
        .submit_named(
            None,
            Fallible(move || {
                e1.wait();
                Err::<i32, _>("this is an exception")
            }),
        )
        .unwrap();
    let future3 = submit_blocked(&pool, &event2);

    // Ensure that future1 is completed before future2 finishes.
    let (f1, e1) = (future1.clone(), event1.clone());
    let t = std::thread::spawn(move || {
        f1.result(Some(LONG)).unwrap();
        e1.open();
    });

    let r = wait(&[future1.clone(), future2.clone(), future3.clone()], None, ReturnWhen::FirstException);
    assert_eq!(ids(&r.done), ids(&[future1, future2]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future3)));

    t.join().unwrap();
    event2.open();
    future3.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception_some_already_complete
#[test]
fn test_first_exception_some_already_complete() {
    let pool = pool();
    let event = Gate::new();
    let future1 = submit_zero_division(&pool);
    let future2 = submit_blocked(&pool, &event);
    let (ok, cancelled, cn) = (successful_future(), cancelled_future(), cancelled_and_notified_future());

    let r = wait(
        &[ok.clone(), cancelled.clone(), cn.clone(), future1.clone(), future2.clone()],
        None,
        ReturnWhen::FirstException,
    );
    // CPython leaves CANCELLED_FUTURE in not_done; futuretop counts it as done (see the header).
    assert_eq!(ids(&r.done), ids(&[ok, cancelled, cn, future1]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));

    event.open();
    future2.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception_one_already_failed
#[test]
fn test_first_exception_one_already_failed() {
    let pool = pool();
    let event = Gate::new();
    let future1 = submit_blocked(&pool, &event);
    let failed = exception_future();

    let r = wait(&[failed.clone(), future1.clone()], None, ReturnWhen::FirstException);
    assert_eq!(ids(&r.done), ids(&[failed]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future1)));

    event.open();
    future1.result(Some(LONG)).unwrap();
}

// CPython: test_all_completed
#[test]
fn test_all_completed() {
    let pool = pool();
    let future1 = submit_zero_division(&pool);
    let future2 = pool.submit(|| 2 * 21).unwrap();
    let all = [successful_future(), cancelled_and_notified_future(), exception_future(), future1, future2];

    let r = wait(&all, None, ReturnWhen::AllCompleted);
    assert_eq!(ids(&r.done), ids(&all));
    assert!(r.not_done.is_empty());
}

// CPython: test_timeout
#[test]
fn test_timeout() {
    let pool = pool();
    let event = Gate::new();
    let future = submit_blocked(&pool, &event);
    let done_ones = [cancelled_and_notified_future(), exception_future(), successful_future()];
    let mut all = done_ones.to_vec();
    all.push(future.clone());

    let start = Instant::now();
    let r = wait(&all, Some(SHORT), ReturnWhen::AllCompleted);
    // No error: the wait returns what is done when the time is up.
    assert!(start.elapsed() >= SHORT, "returned after {:?}", start.elapsed());
    assert_eq!(ids(&r.done), ids(&done_ones));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future)));

    event.open();
    future.result(Some(LONG)).unwrap();
}

// CPython: test_pending_calls_race (ThreadPoolWaitTests)
#[test]
fn test_pending_calls_race() {
    let pool = pool();
    let event = Gate::new();
    let fs: Vec<_> = (0..100).map(|_| submit_blocked(&pool, &event)).collect();
    event.open();
    let r = wait(&fs, Some(LONG), ReturnWhen::AllCompleted);
    assert_eq!(r.done.len(), 100);
    assert!(r.not_done.is_empty());
}

// CPython: test_pending_calls_race (the wait starts while another thread is still submitting)
#[test]
fn test_pending_calls_race_submitting_concurrently() {
    let pool = std::sync::Arc::new(pool());
    for _ in 0..20 {
        let first: Vec<_> = (0..5).map(|i| pool.submit(move || i).unwrap()).collect();
        let submitter = {
            let pool = std::sync::Arc::clone(&pool);
            std::thread::spawn(move || (0..50).map(|i| pool.submit(move || i).unwrap()).collect::<Vec<_>>())
        };
        let r = wait(&first, Some(LONG), ReturnWhen::AllCompleted);
        assert!(r.not_done.is_empty());
        let rest = submitter.join().unwrap();
        let r = wait(&rest, Some(LONG), ReturnWhen::AllCompleted);
        assert_eq!(r.done.len(), 50);
    }
}
