//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_future.py`
//! (class `FutureTests`, repository python/cpython), case for case, on a bare
//! [`Future`] made with `Future::new()` as Python's `Future()` "for testing".
//!
//! Where Rust differs, and how these tests deal with it:
//! - CPython builds its fixtures by poking `_state` (`create_future`); here each fixture is
//!   driven into its state through the public API (`crate::common::cf::running_future()` etc.).
//! - A raising callback becomes a panicking one. Python logs it to stderr; futuretop
//!   prints it to stderr when the future has no sink. Rust tests cannot capture their own
//!   stderr, so the two `..._raises...` tests run their body in a child process
//!   (`crate::common::cf::run_child`) and read its stderr, as `captured_stderr()` does.
//! - `test_result_with_success`/`..._with_cancel`/`test_exception_with_success` sleep one
//!   second in CPython so the main thread is waiting first. Here the waiting side runs as
//!   a pool task whose wait the pool's sink reports (`WaitStart`): the future is completed
//!   only once the wait has certainly begun, with no sleep.
//! - `test_multiple_set_*`: Python's message names the state and the repr; Rust returns
//!   an `InvalidStateError { operation, state, future }`, checked field by field and by
//!   its message (the state and the future's repr, as CPython's).
//!
//! Cases that cannot apply:
//! - `test_class_str`: checks Python class reprs (`<class 'concurrent.futures.Future'>`);
//!   Rust types have no runtime class objects. The Python names futuretop reports are
//!   checked instead (`type_name`).
//! - `test_get_snapshot` (3.15, the private `_get_snapshot`): mirrored by the public
//!   `try_result()`, which reads state and value under one lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::common::cf::{
    cancelled_and_notified_future, cancelled_future, exception_future, observed_pool, os_error, pending_future,
    run_child, running_future, successful_future, LONG,
};
use crossbeam_channel::unbounded;
use futuretop_engine::BrokenExecutor;
use futuretop_engine::BrokenKind;
use futuretop_engine::CancelledError;
use futuretop_engine::Exception;
use futuretop_engine::Future;
use futuretop_engine::FutureError;
use futuretop_engine::FutureState;
use futuretop_engine::Observation;
use futuretop_engine::TimeoutError;

/// `timeout=0`.
const NOW: Option<std::time::Duration> = Some(std::time::Duration::ZERO);

// CPython: test_done_callback_with_result
#[test]
fn test_done_callback_with_result() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    f.add_done_callback(move |cf| tx.send((cf.result(None), thread::current().id())).unwrap());
    assert!(rx.try_recv().is_err(), "the callback ran before the future was done");
    f.set_result(5).unwrap();
    // Called by set_result itself, in this thread.
    assert_eq!(rx.try_recv().unwrap(), (Ok(5), thread::current().id()));
}

// CPython: test_done_callback_with_exception
#[test]
fn test_done_callback_with_exception() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    f.add_done_callback(move |cf| tx.send(cf.exception(None)).unwrap());
    f.set_exception(Exception::task("test")).unwrap();
    assert_eq!(rx.try_recv().unwrap(), Ok(Some(Exception::task("test"))));
}

// CPython: test_done_callback_with_cancel
#[test]
fn test_done_callback_with_cancel() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    f.add_done_callback(move |cf| tx.send(cf.cancelled()).unwrap());
    assert!(f.cancel());
    assert!(rx.try_recv().unwrap());
}

// CPython: test_done_callback_raises
#[test]
fn test_done_callback_raises() {
    const NAME: &str = "test_done_callback_raises";
    if crate::common::cf::is_child(NAME) {
        let raising_was_called = Arc::new(AtomicUsize::new(0));
        let fn_was_called = Arc::new(AtomicUsize::new(0));
        let f = Future::<i32>::new();
        let r = Arc::clone(&raising_was_called);
        f.add_done_callback(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            panic!("doh!");
        });
        let c = Arc::clone(&fn_was_called);
        f.add_done_callback(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        // The panic does not reach the caller of set_result...
        f.set_result(5).unwrap();
        // ...and the callback after the raising one still ran.
        assert_eq!(raising_was_called.load(Ordering::SeqCst), 1);
        assert_eq!(fn_was_called.load(Ordering::SeqCst), 1);
        assert_eq!(f.result(None), Ok(5));
        return;
    }
    let out = run_child(module_path!(), NAME);
    assert!(out.status.success(), "{out:#?}");
    assert!(
        out.stderr.lines().any(|l| l.contains("exception calling callback for future") && l.contains("doh!")),
        "the callback's panic was not logged: {out:#?}"
    );
}

// CPython: test_done_callback_already_successful
#[test]
fn test_done_callback_already_successful() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    f.set_result(5).unwrap();
    f.add_done_callback(move |cf| tx.send(cf.result(None)).unwrap());
    // Already done: called at once, by add_done_callback.
    assert_eq!(rx.try_recv().unwrap(), Ok(5));
}

// CPython: test_done_callback_already_failed
#[test]
fn test_done_callback_already_failed() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    f.set_exception(Exception::task("test")).unwrap();
    f.add_done_callback(move |cf| tx.send(cf.exception(None)).unwrap());
    assert_eq!(rx.try_recv().unwrap(), Ok(Some(Exception::task("test"))));
}

// CPython: test_done_callback_already_cancelled
#[test]
fn test_done_callback_already_cancelled() {
    let (tx, rx) = unbounded();
    let f = Future::<i32>::new();
    assert!(f.cancel());
    f.add_done_callback(move |cf| tx.send(cf.cancelled()).unwrap());
    assert!(rx.try_recv().unwrap());
}

// CPython: test_done_callback_raises_already_succeeded
#[test]
fn test_done_callback_raises_already_succeeded() {
    const NAME: &str = "test_done_callback_raises_already_succeeded";
    if crate::common::cf::is_child(NAME) {
        let f = Future::<i32>::new();
        // Set the result first to simulate a future that runs instantly, so that the
        // callback is run immediately, by add_done_callback.
        f.set_result(5).unwrap();
        f.add_done_callback(|_| panic!("doh!"));
        assert_eq!(f.result(None), Ok(5));
        return;
    }
    let out = run_child(module_path!(), NAME);
    assert!(out.status.success(), "{out:#?}");
    assert!(out.stderr.contains("exception calling callback for"), "{out:#?}");
    assert!(out.stderr.contains("doh!"), "{out:#?}");
}

// Not in CPython's file, but a documented rule of add_done_callback: callbacks run in
// the order they were added.
// CPython: test_done_callback_with_result (ordering)
#[test]
fn test_done_callback_with_result_runs_callbacks_in_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let f = Future::<i32>::new();
    for i in 0..5 {
        let order = Arc::clone(&order);
        f.add_done_callback(move |_| order.lock().unwrap().push(i));
    }
    f.set_result(1).unwrap();
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[track_caller]
fn assert_repr(f: &Future<i32>, state: &str) {
    let repr = format!("{f:?}");
    let id = f.id().0;
    assert_eq!(repr, format!("<Future #{id} {state}>"));
}

// CPython: test_repr
#[test]
fn test_repr() {
    assert_repr(&pending_future(), "state=pending");
    assert_repr(&running_future(), "state=running");
    assert_repr(&cancelled_future(), "state=cancelled");
    assert_repr(&cancelled_and_notified_future(), "state=cancelled");
    // Python shows the exception's class (`raised OSError`); futuretop its type name.
    assert_repr(&exception_future(), "state=finished raised TaskError");
    // Python shows the result's class (`returned int`); futuretop the value's type.
    assert_repr(&successful_future(), "state=finished returned i32");
}

// CPython: test_class_str (the Python-facing names futuretop reports instead)
#[test]
fn test_class_str_type_names() {
    assert_eq!(Exception::task("x").type_name(), "TaskError");
    assert_eq!(Exception::Timeout(TimeoutError::single()).type_name(), "TimeoutError");
    assert_eq!(Exception::Cancelled(CancelledError).type_name(), "CancelledError");
    let broken = BrokenExecutor { kind: BrokenKind::ThreadPool, reason: "r".into() };
    assert_eq!(broken.type_name(), "BrokenThreadPool");
    assert_eq!(BrokenExecutor { kind: BrokenKind::ProcessPool, ..broken }.type_name(), "BrokenProcessPool");
}

// CPython: test_cancel
#[test]
fn test_cancel() {
    let f1 = pending_future();
    let f2 = running_future();
    let f3 = cancelled_future();
    let f4 = cancelled_and_notified_future();
    let f5 = exception_future();
    let f6 = successful_future();

    assert!(f1.cancel());
    assert_eq!(f1.state(), FutureState::Cancelled);

    assert!(!f2.cancel());
    assert_eq!(f2.state(), FutureState::Running);

    assert!(f3.cancel());
    assert_eq!(f3.state(), FutureState::Cancelled);
    // Still CANCELLED (not notified): the executor may still be told once.
    assert_eq!(f3.set_running_or_notify_cancel(), Ok(false));

    assert!(f4.cancel());
    assert_eq!(f4.state(), FutureState::Cancelled);
    // Still CANCELLED_AND_NOTIFIED: telling the executor again is an error.
    assert!(f4.set_running_or_notify_cancel().is_err());

    assert!(!f5.cancel());
    assert_eq!(f5.state(), FutureState::Finished);
    assert_eq!(f5.exception(NOW), Ok(Some(os_error())));

    assert!(!f6.cancel());
    assert_eq!(f6.state(), FutureState::Finished);
    assert_eq!(f6.result(NOW), Ok(42));
}

// CPython: test_cancelled
#[test]
fn test_cancelled() {
    assert!(!pending_future().cancelled());
    assert!(!running_future().cancelled());
    assert!(cancelled_future().cancelled());
    assert!(cancelled_and_notified_future().cancelled());
    assert!(!exception_future().cancelled());
    assert!(!successful_future().cancelled());
}

// CPython: test_done
#[test]
fn test_done() {
    assert!(!pending_future().done());
    assert!(!running_future().done());
    assert!(cancelled_future().done());
    assert!(cancelled_and_notified_future().done());
    assert!(exception_future().done());
    assert!(successful_future().done());
}

// CPython: test_running
#[test]
fn test_running() {
    assert!(!pending_future().running());
    assert!(running_future().running());
    assert!(!cancelled_future().running());
    assert!(!cancelled_and_notified_future().running());
    assert!(!exception_future().running());
    assert!(!successful_future().running());
}

// CPython: test_result_with_timeout
#[test]
fn test_result_with_timeout() {
    let timeout = Err(FutureError::Timeout(TimeoutError::single()));
    assert_eq!(pending_future().result(NOW), timeout);
    assert_eq!(running_future().result(NOW), timeout);
    assert_eq!(cancelled_future().result(NOW), Err(FutureError::Cancelled(CancelledError)));
    assert_eq!(cancelled_and_notified_future().result(NOW), Err(FutureError::Cancelled(CancelledError)));
    assert_eq!(exception_future().result(NOW), Err(FutureError::Failed(os_error())));
    assert_eq!(successful_future().result(NOW), Ok(42));
}

// CPython: test_result_with_timeout (a positive timeout really waits, then re-checks)
#[test]
fn test_result_with_timeout_waits_the_timeout() {
    let f = pending_future();
    let start = std::time::Instant::now();
    assert_eq!(f.result(Some(crate::common::cf::SHORT)), Err(FutureError::Timeout(TimeoutError::single())));
    assert!(start.elapsed() >= crate::common::cf::SHORT, "returned after {:?}", start.elapsed());
    // A later result is still delivered.
    f.set_result(7).unwrap();
    assert_eq!(f.result(NOW), Ok(7));
}

/// Runs `wait(&f1)` as a task of an observed pool, then `complete(&f1)` once the task's
/// wait on `f1` has started; returns what the wait returned.
fn complete_while_waited<R: Clone + Send + 'static>(
    wait: impl FnOnce(&Future<i32>) -> R + Send + 'static,
    complete: impl FnOnce(&Future<i32>),
) -> R {
    let (pool, mut observer) = observed_pool("waiter", 1);
    let f1 = pending_future();
    let target = f1.id();
    let waiting = f1.clone();
    let task = pool.submit(move || wait(&waiting)).expect("the pool accepts work");
    observer
        .wait_for("the task waits on f1", |o| matches!(o, Observation::WaitStart { target: t, .. } if *t == target));
    assert!(!task.done(), "the wait returned before f1 was completed");
    complete(&f1);
    task.result(Some(LONG)).expect("the waiting task returns")
}

// CPython: test_result_with_success
#[test]
fn test_result_with_success() {
    let got = complete_while_waited(|f1| f1.result(Some(LONG)), |f1| f1.set_result(42).unwrap());
    assert_eq!(got, Ok(42));
}

// CPython: test_result_with_cancel
#[test]
fn test_result_with_cancel() {
    let got = complete_while_waited(|f1| f1.result(Some(LONG)), |f1| assert!(f1.cancel()));
    assert_eq!(got, Err(FutureError::Cancelled(CancelledError)));
}

// CPython: test_exception_with_timeout
#[test]
fn test_exception_with_timeout() {
    let timeout = Err(FutureError::Timeout(TimeoutError::single()));
    assert_eq!(pending_future().exception(NOW), timeout);
    assert_eq!(running_future().exception(NOW), timeout);
    assert_eq!(cancelled_future().exception(NOW), Err(FutureError::Cancelled(CancelledError)));
    assert_eq!(cancelled_and_notified_future().exception(NOW), Err(FutureError::Cancelled(CancelledError)));
    assert_eq!(exception_future().exception(NOW), Ok(Some(os_error())));
    assert_eq!(successful_future().exception(NOW), Ok(None));
}

// CPython: test_exception_with_success
#[test]
fn test_exception_with_success() {
    let got = complete_while_waited(|f1| f1.exception(Some(LONG)), |f1| f1.set_exception(os_error()).unwrap());
    assert_eq!(got, Ok(Some(os_error())));
}

// CPython: (catalogue) exception_with_cancel
#[test]
fn test_exception_with_cancel() {
    let got = complete_while_waited(|f1| f1.exception(Some(LONG)), |f1| assert!(f1.cancel()));
    assert_eq!(got, Err(FutureError::Cancelled(CancelledError)));
}

// CPython: test_multiple_set_result
#[test]
fn test_multiple_set_result() {
    let f = pending_future();
    f.set_result(1).unwrap();
    let e = f.set_result(2).unwrap_err();
    assert_eq!((e.operation, e.state), ("set_result", "finished"));
    // CPython: InvalidStateError('FINISHED: <Future at 0x... state=finished returned int>').
    assert_eq!(
        e.to_string(),
        format!("FINISHED: <Future {} state=finished returned i32> (set_result refused)", f.id())
    );
    assert_eq!(e.future, format!("{f:?}"));
    assert!(f.done());
    assert_eq!(f.result(None), Ok(1));

    // 3.8+: a cancelled future refuses a result too, and stays cancelled.
    let c = cancelled_future();
    let e = c.set_result(2).unwrap_err();
    assert_eq!((e.operation, e.state), ("set_result", "cancelled"));
    assert_eq!(e.to_string(), format!("CANCELLED: <Future {} state=cancelled> (set_result refused)", c.id()));
    assert!(c.cancelled());
}

// CPython: test_multiple_set_exception
#[test]
fn test_multiple_set_exception() {
    let f = pending_future();
    let e = Exception::task("ValueError");
    f.set_exception(e.clone()).unwrap();
    let err = f.set_exception(Exception::task("Exception")).unwrap_err();
    assert_eq!((err.operation, err.state), ("set_exception", "finished"));
    assert_eq!(err.future, format!("<Future {} state=finished raised TaskError>", f.id()));
    assert_eq!(f.exception(None), Ok(Some(e)));

    let c = cancelled_and_notified_future();
    let err = c.set_exception(Exception::task("Exception")).unwrap_err();
    assert_eq!((err.operation, err.state), ("set_exception", "cancelled"));
    assert!(c.cancelled());
}

// CPython: (catalogue) set_running_or_notify_cancel from each state
#[test]
fn test_set_running_or_notify_cancel_from_each_state() {
    // PENDING -> RUNNING, true.
    let f = pending_future();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(true));
    assert_eq!(f.state(), FutureState::Running);

    // RUNNING: Python raises RuntimeError('Future in unexpected state').
    let err = running_future().set_running_or_notify_cancel().unwrap_err();
    assert_eq!((err.operation, err.state), ("set_running_or_notify_cancel", "running"));
    assert!(err.to_string().starts_with("RUNNING: <Future #"), "{err}");

    // CANCELLED -> CANCELLED_AND_NOTIFIED, false; still cancelled.
    let f = cancelled_future();
    assert_eq!(f.set_running_or_notify_cancel(), Ok(false));
    assert!(f.cancelled());

    // CANCELLED_AND_NOTIFIED: unexpected state.
    let err = cancelled_and_notified_future().set_running_or_notify_cancel().unwrap_err();
    assert_eq!(err.state, "cancelled");

    // FINISHED: unexpected state, the value is kept.
    let f = successful_future();
    assert_eq!(f.set_running_or_notify_cancel().unwrap_err().state, "finished");
    assert_eq!(f.result(NOW), Ok(42));
    assert_eq!(exception_future().set_running_or_notify_cancel().unwrap_err().state, "finished");

    // A running future finishes normally.
    let f = running_future();
    f.set_result(3).unwrap();
    assert_eq!(f.result(NOW), Ok(3));
}

// CPython: test_get_snapshot (through the public try_result)
#[test]
fn test_get_snapshot() {
    assert_eq!(pending_future().try_result(), None);
    assert_eq!(running_future().try_result(), None);
    assert_eq!(successful_future().try_result(), Some(Ok(42)));
    assert_eq!(exception_future().try_result(), Some(Err(FutureError::Failed(os_error()))));
    assert_eq!(cancelled_future().try_result(), Some(Err(FutureError::Cancelled(CancelledError))));

    // Concurrent readers of a finished future all see the same thing.
    let f = Future::new();
    f.set_result(100).unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            thread::spawn(move || (0..1000).all(|_| f.try_result() == Some(Ok(100)) && f.done()))
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap());
    }
}
