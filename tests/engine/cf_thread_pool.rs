//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/test_thread_pool.py`
//! (`ThreadPoolExecutorTest`, repository python/cpython), plus the two thread-name tests
//! CPython keeps in `test_shutdown.py` (`test_thread_names_assigned`,
//! `test_thread_names_default`), which the catalogue lists with the thread pool.
//!
//! Where Rust differs, and how these tests deal with it:
//! - `executor._threads` / `executor._max_workers` are private in Python and read by
//!   the tests; futuretop exposes `threads_started()` and `max_workers()`.
//! - Thread names are read from inside the tasks (`thread::current().name()`), since
//!   the pool does not hand out its join handles.
//! - `test_map_submits_without_iteration` discards the `map` generator in Python, which
//!   never started and so cancels nothing. Dropping a `MapIter` cancels what it has not
//!   yielded (Python does the same once the generator has run), so the iterator is
//!   kept alive, unconsumed, across the shutdown: what is checked is that `map`
//!   submitted every call before the first `next()`.
//! - `test_idle_thread_reuse` is skipped by CPython without the GIL (gh-117344: the
//!   worker signals "idle" only after the future's waiters are woken). futuretop counts
//!   a worker idle before it completes the future, so the check holds without a GIL.
//!
//! Cases that cannot apply:
//! - `test_hang_global_shutdown_lock` (bpo-45021) forks process pools while a thread pool
//!   task resubmits itself, to check that `_global_shutdown_lock` is reinitialised in
//!   the forked child. futuretop has no global shutdown lock and never forks with
//!   threads running; the resubmitting task part is kept (it must not hang shutdown).
//! - `test_process_fork_from_a_threadpool` (bpo-43944, `_threads_queues` after fork):
//!   Rust does not fork; mirrored by starting a child process from a pool task.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::cf::{pool, within, Arrivals, Gate, LONG};
use futuretop_engine::executor::default_thread_workers;
use futuretop_engine::FutureError;
use futuretop_engine::SubmitError;
use futuretop_engine::ThreadPoolExecutor;

fn mul(x: i32, y: i32) -> i32 {
    x * y
}

// CPython: test_map_submits_without_iteration
#[test]
fn test_map_submits_without_iteration() {
    // Tests verifying issue 11777.
    let pool = pool();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&finished);
    let it = pool.map(move |n: u32| record.lock().unwrap().push(n), 0..10, None, 1).unwrap();
    pool.shutdown(true, false);
    let mut finished = finished.lock().unwrap().clone();
    finished.sort_unstable();
    assert_eq!(finished, (0..10).collect::<Vec<_>>());
    drop(it);
}

// CPython: test_default_workers
#[test]
fn test_default_workers() {
    let executor = ThreadPoolExecutor::builder().build().unwrap();
    let cpus = thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let expected = 32.min(cpus + 4);
    assert_eq!(executor.max_workers(), expected);
    assert_eq!(default_thread_workers(), expected);
}

// CPython: test_saturation
#[test]
fn test_saturation() {
    let executor = ThreadPoolExecutor::new(4).unwrap();
    let sem = Gate::new();
    let jobs = 15 * executor.max_workers();
    let fs: Vec<_> = (0..jobs)
        .map(|_| {
            let sem = sem.clone();
            executor.submit(move || sem.wait()).unwrap()
        })
        .collect();
    assert_eq!(executor.threads_started(), executor.max_workers());
    sem.release(jobs);
    executor.shutdown(true, false);
    assert!(fs.iter().all(|f| f.result(None) == Ok(true)));
    assert_eq!(executor.threads_started(), 4, "never more than max_workers threads");
}

// CPython: test_idle_thread_reuse
#[test]
fn test_idle_thread_reuse() {
    // Repeated to give a late "idle" signal every chance to show.
    for _ in 0..200 {
        let executor = ThreadPoolExecutor::builder().build().unwrap();
        assert_eq!(executor.submit(|| mul(21, 2)).unwrap().result(None), Ok(42));
        assert_eq!(executor.submit(|| mul(6, 7)).unwrap().result(None), Ok(42));
        assert_eq!(executor.submit(|| mul(3, 14)).unwrap().result(None), Ok(42));
        assert_eq!(executor.threads_started(), 1);
        executor.shutdown(true, false);
    }
}

/// Submits a task that resubmits itself until its pool refuses (shutdown).
fn resubmit(pool: &Arc<ThreadPoolExecutor>, count: &Arc<AtomicUsize>) -> Result<(), SubmitError> {
    let (p, c) = (Arc::clone(pool), Arc::clone(count));
    pool.submit(move || {
        c.fetch_add(1, Ordering::SeqCst);
        resubmit(&p, &c)
    })
    .map(drop)
}

// CPython: test_hang_global_shutdown_lock (the resubmitting task; there is no fork)
#[test]
fn test_hang_global_shutdown_lock() {
    let pool = Arc::new(ThreadPoolExecutor::new(1).unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    resubmit(&pool, &count).unwrap();
    crate::common::cf::eventually("the task to resubmit itself 50 times", || count.load(Ordering::SeqCst) >= 50);
    let p = Arc::clone(&pool);
    within("shutdown while a task keeps resubmitting", move || p.shutdown(true, false));
    let after = count.load(Ordering::SeqCst);
    assert_eq!(resubmit(&pool, &count), Err(SubmitError::Shutdown));
    // Dropping the last handle (the queue is empty: every task ran or was refused) is quick.
    within("drop the pool", move || drop(pool));
    assert_eq!(count.load(Ordering::SeqCst), after, "work ran after shutdown returned");
}

// CPython: test_process_fork_from_a_threadpool (a child process started from a task)
#[test]
fn test_process_fork_from_a_threadpool() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let exe = std::env::current_exe().unwrap();
    let code = pool
        .submit(move || {
            std::process::Command::new(exe)
                .args(["--list"])
                .stdout(std::process::Stdio::null())
                .status()
                .map(|s| s.code())
                .map_err(|e| e.to_string())
        })
        .unwrap();
    assert_eq!(code.result(Some(LONG)), Ok(Ok(Some(0))));
}

// CPython: test_executor_map_current_future_cancel
#[test]
fn test_executor_map_current_future_cancel() {
    let stop_event = Gate::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_n_wait = {
        let (log, stop_event) = (Arc::clone(&log), stop_event.clone());
        move |ident: &'static str| {
            log.lock().unwrap().push(format!("ident='{ident}' started"));
            stop_event.wait();
            log.lock().unwrap().push(format!("ident='{ident}' stopped"));
        }
    };
    let pool = ThreadPoolExecutor::new(1).unwrap();
    // submit work to saturate the pool
    let first = log_n_wait.clone();
    let fut = pool.submit(move || first("first")).unwrap();
    {
        let mut gen = pool.map(log_n_wait, ["second", "third"], Some(Duration::ZERO), 1).unwrap();
        assert!(matches!(gen.next(), Some(Err(FutureError::Timeout(_)))));
    }
    stop_event.open();
    fut.result(Some(LONG)).unwrap();
    drop(pool);
    // 'second' is cancelled as a result of raising a TimeoutError; 'third' because it
    // remained in the collection of futures.
    assert_eq!(*log.lock().unwrap(), ["ident='first' started", "ident='first' stopped"]);
}

/// Runs `n` tasks that all wait until `n` are running, so `n` distinct workers run them;
/// returns the names of those threads.
fn thread_names(executor: &ThreadPoolExecutor, n: usize) -> BTreeSet<String> {
    let arrivals = Arrivals::new();
    let gate = Gate::new();
    let fs: Vec<_> = (0..n)
        .map(|_| {
            let (arrivals, gate) = (arrivals.clone(), gate.clone());
            executor
                .submit(move || {
                    arrivals.arrive();
                    gate.wait();
                    thread::current().name().unwrap_or("<unnamed>").to_owned()
                })
                .expect("the pool accepts work")
        })
        .collect();
    arrivals.expect(n);
    gate.open();
    fs.iter().map(|f| f.result(Some(LONG)).expect("the task returns its thread's name")).collect()
}

// CPython: test_thread_names_assigned (test_shutdown.py)
#[test]
fn test_thread_names_assigned() {
    let executor = ThreadPoolExecutor::builder().max_workers(5).thread_name_prefix("SpecialPool").build().unwrap();
    let names = thread_names(&executor, 5);
    let expected: BTreeSet<String> = (0..5).map(|i| format!("SpecialPool_{i}")).collect();
    assert_eq!(names, expected);
    drop(executor);
}

// CPython: test_thread_names_default (test_shutdown.py)
#[test]
fn test_thread_names_default() {
    let executor = ThreadPoolExecutor::new(5).unwrap();
    let names = thread_names(&executor, 5);
    let mut indices = BTreeSet::new();
    let mut prefixes = BTreeSet::new();
    for name in &names {
        // r'ThreadPoolExecutor-\d+_[0-4]$'
        let (prefix, index) = name.rsplit_once('_').unwrap_or_else(|| panic!("bad thread name {name}"));
        let n = prefix.strip_prefix("ThreadPoolExecutor-").unwrap_or_else(|| panic!("bad thread name {name}"));
        assert!(!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()), "bad thread name {name}");
        prefixes.insert(prefix.to_owned());
        indices.insert(index.parse::<usize>().unwrap());
    }
    assert_eq!(indices, (0..5).collect(), "{names:?}");
    assert_eq!(prefixes.len(), 1, "one pool, one prefix: {names:?}");

    // Reasonably unique: another pool gets another prefix.
    let other = ThreadPoolExecutor::new(1).unwrap();
    let other_names = thread_names(&other, 1);
    assert!(other_names.iter().all(|n| !n.starts_with(&format!("{}_", prefixes.first().unwrap()))));
}

// map's rules are the process pool's: the iterator does not borrow the pool, and a
// `Fallible` function's `Err` is that call's exception (Python: the function raised),
// which ends the iteration and cancels the rest.
#[test]
fn test_map_is_owned_and_takes_fallible_functions() {
    use futuretop_engine::{Exception, Fallible};
    fn owned<T: 'static>(t: T) -> T {
        t
    }
    let pool = pool();
    let halves = owned(
        pool.map(
            Fallible(|n: u32| if n.is_multiple_of(2) { Ok(n / 2) } else { Err(format!("{n} is odd")) }),
            [0, 2, 4, 5, 6],
            Some(LONG),
            1,
        )
        .unwrap(),
    );
    let got: Vec<Result<u32, FutureError>> = halves.collect();
    assert_eq!(got[..3], [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(got[3], Err(FutureError::Failed(Exception::task("5 is odd"))));
    assert_eq!(got.len(), 4, "the first error ends the iteration");
}
