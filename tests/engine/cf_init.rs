//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_init.py`
//! (`InitializerMixin` and `FailingInitializerMixin`, each run by `ThreadPoolMixin`;
//! repository python/cpython), against `ThreadPoolExecutor` with 2 workers.
//!
//! Where Rust differs, and how these tests deal with it:
//! - `initializer=init, initargs=('initialized',)`: the initializer is a closure that
//!   captures its arguments. Python's `init` sets a module global; here it sets a
//!   thread-local, which also shows that *each* worker ran it before its first task.
//! - `init_fail` sleeps 0.1 s "to let some futures be scheduled", then raises; here it
//!   blocks on a `crate::common::cf::Gate` until the test has submitted, then fails (returns
//!   `Err`, or panics in the second test).
//! - `_assert_logged('ValueError: error in initializer')` reads the `concurrent.futures`
//!   logger. futuretop reports to the pool's sink instead: the pool's `PoolBroken`
//!   observation and the `BrokenThreadPool` reason both carry the initializer's error,
//!   and the worker reports `WorkerExited { status: "initializer failed" }`.
//! - `self.executor._broken`: the public `broken()`.
//!
//! Cases that cannot apply:
//! - a non-callable `initializer` (`TypeError`): the builder takes a closure; anything
//!   else does not compile.
//! - `FailingInitializerResourcesTest` (multiprocessing resource tracker) and the
//!   process-pool variants: process pools only.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::cf::{Arrivals, Gate, Observer, LONG};
use futuretop_engine::BrokenKind;
use futuretop_engine::Exception;
use futuretop_engine::FutureError;
use futuretop_engine::Observation;
use futuretop_engine::SubmitError;
use futuretop_engine::ThreadPoolExecutor;

const WORKER_COUNT: usize = 2;

thread_local! {
    static INITIALIZER_STATUS: Cell<&'static str> = const { Cell::new("uninitialized") };
}

fn get_init_status() -> &'static str {
    INITIALIZER_STATUS.with(Cell::get)
}

// CPython: test_initializer (InitializerMixin)
#[test]
fn test_initializer() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let x = "initialized";
    let executor = ThreadPoolExecutor::builder()
        .max_workers(WORKER_COUNT)
        .initializer(move || {
            r.fetch_add(1, Ordering::SeqCst);
            INITIALIZER_STATUS.with(|s| s.set(x));
            Ok::<(), Exception>(())
        })
        .build()
        .unwrap();
    // Every worker busy at once, so each one's initializer must have run.
    let (arrivals, gate) = (Arrivals::new(), Gate::new());
    let futures: Vec<_> = (0..WORKER_COUNT)
        .map(|_| {
            let (arrivals, gate) = (arrivals.clone(), gate.clone());
            executor
                .submit(move || {
                    arrivals.arrive();
                    gate.wait();
                    get_init_status()
                })
                .unwrap()
        })
        .collect();
    arrivals.expect(WORKER_COUNT);
    gate.open();
    for f in &futures {
        assert_eq!(f.result(Some(LONG)), Ok("initialized"));
    }
    // A later task on an existing worker: the initializer does not run again.
    assert_eq!(executor.submit(get_init_status).unwrap().result(Some(LONG)), Ok("initialized"));
    executor.shutdown(true, false);
    assert_eq!(executor.threads_started(), WORKER_COUNT);
    assert_eq!(runs.load(Ordering::SeqCst), WORKER_COUNT, "once per worker thread");
    // The test thread itself was never initialized.
    assert_eq!(get_init_status(), "uninitialized");
}

/// FailingInitializerMixin.test_initializer, with an initializer that fails by `fail`.
fn failing_initializer(fail: fn() -> Result<(), Exception>) {
    let (sink, mut observer) = Observer::new();
    let gate = Gate::new();
    let g = gate.clone();
    let executor = ThreadPoolExecutor::builder()
        .name("init")
        .max_workers(WORKER_COUNT)
        .initializer(move || {
            g.wait(); // let some futures be scheduled
            fail()
        })
        .sink(sink)
        .build()
        .expect("a valid pool");
    let futures: Vec<_> = (0..4).map(|_| executor.submit(get_init_status).expect("not broken yet")).collect();
    gate.open();

    for future in &futures {
        match future.result(Some(LONG)) {
            Err(FutureError::Failed(Exception::Broken(broken))) => {
                assert_eq!(broken.kind, BrokenKind::ThreadPool);
                assert_eq!(broken.type_name(), "BrokenThreadPool");
                assert!(
                    broken.reason.starts_with("A thread initializer failed, the thread pool is not usable anymore"),
                    "{}",
                    broken.reason
                );
                assert!(broken.reason.contains("error in initializer"), "the error is not reported: {}", broken.reason);
            }
            other => panic!("expected BrokenThreadPool, got {other:?}"),
        }
    }
    // At some point the executor is broken, and from then on submit() fails.
    assert!(executor.broken().is_some());
    match executor.submit(get_init_status) {
        Err(SubmitError::Broken(b)) => assert_eq!(b.kind, BrokenKind::ThreadPool),
        other => panic!("expected BrokenThreadPool, got {other:?}"),
    }
    // The initializer's error is reported (Python logs it at CRITICAL).
    let broken = observer.wait_for("PoolBroken", |o| matches!(o, Observation::PoolBroken { .. }));
    let Observation::PoolBroken { pool, error } = broken else { unreachable!() };
    assert_eq!(&*pool, "init");
    assert!(error.contains("error in initializer"), "{error}");
    observer.wait_for(
        "a worker exiting",
        |o| matches!(o, Observation::WorkerExited { status, .. } if status == "initializer failed"),
    );
    // Nothing ever ran: no future was started.
    assert_eq!(observer.count(|o| matches!(o, Observation::Running { .. })), 0);
    drop(executor);
}

// CPython: test_initializer (FailingInitializerMixin)
#[test]
fn test_initializer_failing() {
    failing_initializer(|| Err(Exception::task("error in initializer")));
}

// CPython: test_initializer (FailingInitializerMixin; a panicking initializer)
#[test]
fn test_initializer_failing_panic() {
    failing_initializer(|| panic!("error in initializer"));
}
