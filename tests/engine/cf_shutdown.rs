//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_shutdown.py`
//! (`ExecutorShutdownTest` and `ThreadPoolShutdownTest`, repository python/cpython), run
//! against `ThreadPoolExecutor`. The thread-name tests of that file are in
//! `cf_thread_pool.rs`, beside the other thread-pool cases.
//!
//! Where Rust differs, and how these tests deal with it:
//! - **No interpreter exit hook.** Python joins pool threads at interpreter exit (an
//!   `atexit`-like hook). In Rust the pool's `Drop` is that hook: leaving the scope that
//!   owns it waits for queued and running work, as leaving a `with` block does. The
//!   `assert_python_ok` tests (`test_interpreter_shutdown`, `test_hang_gh83386`) run the
//!   same script in a child process (`crate::common::cf::run_child`): a pool is left with work
//!   when the program ends, and the child must print `apple` and exit, not hang.
//! - `with ThreadPoolExecutor() as e` / `del executor` / `gc_collect()` become leaving a
//!   scope / `drop(executor)`; both join the workers before returning.
//! - `executor._threads` + `t.join()` become the pool's sink: every worker reports
//!   `WorkerStarted` and, just before its thread ends, `WorkerExited`; after a waiting
//!   shutdown, as many workers must have exited as started.
//! - `test_del_shutdown`/`test_shutdown_no_wait` keep a `map` iterator across the
//!   shutdown in Python; a Rust `MapIter` borrows its pool and cannot outlive it, so the
//!   futures are submitted one by one instead.
//! - `time.sleep(0.1)` tasks that must still be running become tasks blocked on a
//!   `crate::common::cf::Gate` (or counted in with `Arrivals`), released by the test.
//!
//! Cases that cannot apply:
//! - `test_submit_after_interpreter_shutdown`: an `atexit` hook submits to a pool after
//!   the interpreter began shutting down. In Rust nothing runs after `main` returns that
//!   could still reach a pool (`Drop` has consumed it; ownership forbids a later
//!   submit); a submit after `shutdown()` is `test_run_after_shutdown`.
//! - `test_processes_terminate` and the other `ProcessPoolShutdownTest` cases belong to
//!   the process pool's tests.

use std::thread;

use crate::common::cf::{observed_pool, pool, run_child, within, Arrivals, Gate, Observer, LONG, WORKER_COUNT};
use futuretop_engine::FutureError;
use futuretop_engine::Observation;
use futuretop_engine::Outcome;
use futuretop_engine::SubmitError;
use futuretop_engine::ThreadPoolExecutor;

fn is_worker_started(o: &Observation) -> bool {
    matches!(o, Observation::WorkerStarted { .. })
}

fn is_worker_exited(o: &Observation) -> bool {
    matches!(o, Observation::WorkerExited { .. })
}

/// Checks, without waiting, that every worker the pool started has exited.
#[track_caller]
fn assert_workers_exited(observer: &mut Observer, expected: usize) {
    assert_eq!(observer.count(is_worker_started), expected, "workers started");
    assert_eq!(observer.count(is_worker_exited), expected, "workers exited by now");
}

/// The child's stdout holds a line `apple` and nothing went wrong.
#[track_caller]
fn assert_apple(test: &str) {
    let out = run_child(module_path!(), test);
    assert!(out.status.success(), "{out:#?}");
    assert!(out.stdout.lines().any(|l| l.trim() == "apple"), "{out:#?}");
    assert!(!out.stderr.contains("panicked"), "{out:#?}");
}

/// Python's `sleep_and_print(t, msg)`: still running when the program ends.
fn sleep_and_print(msg: &'static str) {
    thread::sleep(std::time::Duration::from_millis(100));
    println!("{msg}");
}

// CPython: test_run_after_shutdown
#[test]
fn test_run_after_shutdown() {
    let executor = pool();
    executor.shutdown(true, false);
    let err = executor.submit(|| 2_i32.pow(5)).unwrap_err();
    assert_eq!(err, SubmitError::Shutdown);
    assert_eq!(err.to_string(), "cannot schedule new futures after shutdown");
}

// CPython: test_interpreter_shutdown
#[test]
fn test_interpreter_shutdown() {
    const NAME: &str = "test_interpreter_shutdown";
    if crate::common::cf::is_child(NAME) {
        let t = ThreadPoolExecutor::new(5).unwrap();
        t.submit(|| sleep_and_print("apple")).unwrap();
        return; // the end of the program, with the task running
    }
    assert_apple(NAME);
}

// CPython: test_interpreter_shutdown (work still queued when the program ends)
#[test]
fn test_interpreter_shutdown_with_queued_work() {
    const NAME: &str = "test_interpreter_shutdown_with_queued_work";
    if crate::common::cf::is_child(NAME) {
        let t = ThreadPoolExecutor::new(1).unwrap();
        t.submit(|| sleep_and_print("apple")).unwrap();
        for i in 0..3 {
            t.submit(move || println!("queued-{i}")).unwrap();
        }
        return; // the end of the program: one call running, three queued
    }
    let out = run_child(module_path!(), NAME);
    assert!(out.status.success(), "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    let pos = |l: &str| lines.iter().position(|x| *x == l).unwrap_or_else(|| panic!("no `{l}` in {out:#?}"));
    // Every queued call ran, in order, after the running one.
    assert!(pos("apple") < pos("queued-0") && pos("queued-0") < pos("queued-1") && pos("queued-1") < pos("queued-2"));
}

// CPython: test_hang_issue12364
#[test]
fn test_hang_issue12364() {
    let executor = pool();
    let fs: Vec<_> =
        (0..50).map(|_| executor.submit(|| thread::sleep(std::time::Duration::from_millis(2))).unwrap()).collect();
    executor.shutdown(true, false);
    for f in &fs {
        assert_eq!(f.result(Some(std::time::Duration::ZERO)), Ok(()));
    }
}

// CPython: test_cancel_futures
#[test]
fn test_cancel_futures() {
    let (executor, mut observer) = observed_pool("cancel", WORKER_COUNT);
    let (arrivals, gate) = (Arrivals::new(), Gate::new());
    let fs: Vec<_> = (0..50)
        .map(|_| {
            let (arrivals, gate) = (arrivals.clone(), gate.clone());
            executor
                .submit(move || {
                    arrivals.arrive();
                    gate.wait()
                })
                .unwrap()
        })
        .collect();
    arrivals.expect(WORKER_COUNT);
    // The running calls are released only once shutdown has cancelled the 45 queued ones.
    let releaser = thread::spawn(move || {
        observer.wait_count(45, "queued calls cancelled", |o| {
            matches!(o, Observation::Finished { outcome: Outcome::Cancelled, .. })
        });
        gate.open();
    });
    let executor = within("shutdown(wait=True, cancel_futures=True)", move || {
        executor.shutdown(true, true);
        executor
    });
    releaser.join().unwrap();

    let cancelled = fs.iter().filter(|f| f.cancelled()).count();
    assert_eq!(cancelled, 50 - WORKER_COUNT);
    // The others (the running ones) finished normally before shutdown returned.
    let others: Vec<_> = fs.iter().filter(|f| !f.cancelled()).collect();
    assert_eq!(others.len(), WORKER_COUNT);
    for f in others {
        assert!(f.done(), "{f:?}");
        assert_eq!(f.exception(None), Ok(None));
    }
    drop(executor);
}

// CPython: test_hang_gh83386
#[test]
fn test_hang_gh83386() {
    const NAME: &str = "test_hang_gh83386";
    if crate::common::cf::is_child(NAME) {
        let t = ThreadPoolExecutor::new(3).unwrap();
        t.submit(|| sleep_and_print("apple")).unwrap();
        t.shutdown(false, false);
        return; // shutdown(wait=False), then the end of the program: no hang, apple printed
    }
    assert_apple(NAME);
}

// CPython: test_hang_gh94440
#[test]
fn test_hang_gh94440() {
    let executor = ThreadPoolExecutor::new(1).unwrap();
    assert_eq!(executor.submit(|| 0).unwrap().result(None), Ok(0));
    // Submitted and quickly cancelled right before shutdown: shutdown must not hang.
    let _ = executor.submit(|| 0).unwrap().cancel();
    within("shutdown(wait=True) after a cancel", move || executor.shutdown(true, false));
}

// CPython: test_threads_terminate
#[test]
fn test_threads_terminate() {
    let (executor, mut observer) = observed_pool("terminate", WORKER_COUNT);
    let sem = Gate::new();
    let fs: Vec<_> = (0..3)
        .map(|_| {
            let sem = sem.clone();
            executor.submit(move || sem.wait()).unwrap()
        })
        .collect();
    assert_eq!(executor.threads_started(), 3);
    sem.release(3);
    executor.shutdown(true, false);
    assert_workers_exited(&mut observer, 3);
    assert!(fs.iter().all(|f| f.result(None) == Ok(true)));
}

// CPython: test_context_manager_shutdown
#[test]
fn test_context_manager_shutdown() {
    let (sink, mut observer) = Observer::new();
    let started;
    {
        let e = ThreadPoolExecutor::builder().max_workers(5).sink(sink).build().unwrap();
        let got: Vec<i32> = e.map(i32::abs, -5..5, None, 1).unwrap().map(Result::unwrap).collect();
        assert_eq!(got, [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]);
        started = e.threads_started();
    } // leaving the scope shuts the pool down and joins its threads
    assert!(started >= 1);
    assert_workers_exited(&mut observer, started);
}

// CPython: test_del_shutdown
#[test]
fn test_del_shutdown() {
    let (executor, mut observer) = observed_pool("del", 5);
    let gate = Gate::new();
    let res: Vec<_> = (-5..5)
        .map(|v: i32| {
            let gate = gate.clone();
            executor
                .submit(move || {
                    gate.wait();
                    v.abs()
                })
                .unwrap()
        })
        .collect();
    let threads = executor.threads_started();
    gate.open();
    drop(executor);
    assert_workers_exited(&mut observer, threads);
    // Make sure the results were all computed before the executor got shut down.
    for (r, v) in res.iter().zip(-5..5) {
        assert_eq!(r.result(Some(std::time::Duration::ZERO)), Ok(i32::abs(v)));
    }
}

// CPython: test_shutdown_no_wait
#[test]
fn test_shutdown_no_wait() {
    let (executor, mut observer) = observed_pool("nowait", 5);
    let gate = Gate::new();
    let res: Vec<_> = (-5..5)
        .map(|v: i32| {
            let gate = gate.clone();
            executor
                .submit(move || {
                    gate.wait();
                    v.abs()
                })
                .unwrap()
        })
        .collect();
    let threads = executor.threads_started();
    // Returns at once, although every call is still blocked.
    executor.shutdown(false, false);
    assert!(res.iter().all(|f| !f.done()), "shutdown(wait=False) waited for work");
    assert_eq!(executor.submit(|| 0).unwrap_err(), SubmitError::Shutdown);
    gate.open();
    // The work still completes, and the threads end by themselves.
    for (r, v) in res.iter().zip(-5..5) {
        assert_eq!(r.result(Some(LONG)), Ok(i32::abs(v)));
    }
    observer.wait_count(threads, "workers to exit after shutdown(wait=False)", is_worker_exited);
    drop(executor);
}

// CPython: test_cancel_futures_wait_false
#[test]
fn test_cancel_futures_wait_false() {
    let t = ThreadPoolExecutor::new(1).unwrap();
    let (arrivals, gate) = (Arrivals::new(), Gate::new());
    let (a, g) = (arrivals.clone(), gate.clone());
    let running = t
        .submit(move || {
            a.arrive();
            g.wait();
            "apple"
        })
        .unwrap();
    arrivals.expect(1);
    let queued = t.submit(|| "never").unwrap();
    t.shutdown(false, true);
    // No wait: the running call is still blocked; the queued one was cancelled.
    assert!(!running.done());
    assert!(queued.cancelled());
    assert_eq!(queued.result(None), Err(FutureError::Cancelled(futuretop_engine::CancelledError)));
    gate.open();
    assert_eq!(running.result(Some(LONG)), Ok("apple"));
    within("drop after shutdown(wait=False, cancel_futures=True)", move || drop(t));
}
