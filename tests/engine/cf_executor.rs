//! Rust counterparts of CPython's `Lib/test/test_concurrent_futures/executor.py`
//! (`ExecutorTest`, the tests shared by every pool; repository python/cpython), run
//! against a `ThreadPoolExecutor` of 5 workers (`ThreadPoolMixin`). The process pool
//! runs its own copy.
//!
//! Where Rust differs, and how these tests deal with it:
//! - Positional and keyword arguments: a Rust call is a closure that captures its
//!   arguments (`submit(move || mul(2, y))`), so `submit_keyword` checks the capture.
//! - `map(fn, *iterables)`: one input iterator; several iterables are `zip`ped first
//!   (`map(pow, a, b)` is `map(|(x, y)| pow(x, y), a.zip(b))`).
//! - A function that raises: `map` takes `Fn(item) -> T`, where a panic is the exception;
//!   a call returning `Err` goes through the `Executor` trait's `map_calls` with `Fallible`.
//! - `test_map_exception`, `test_map_timeout_from_callable`: futuretop follows 3.11–3.14
//!   (cf-semantics.md): the first error ends the iteration (and cancels the rest).
//!   CPython's main branch (3.15) goes on past a raising call; these tests check 3.14.
//! - Python's `test_no_stale_references`/`test_free_reference` use `weakref`; here a
//!   value that signals its drop, or an `Arc`'s `Weak`, show that the pool freed it.
//!
//! Cases that cannot apply:
//! - `test_submit_keyword`'s `TypeError` cases (`submit(fn=capture, arg=1)`, `submit(arg=1)`):
//!   a call without a callable does not compile in Rust.
//! - `test_max_workers_negative` with -1: `max_workers` is a `usize`, so only 0 is checked.
//! - `test_map_buffersize_type_validation` (`buffersize="foo"`/`2.0`), and -1 in
//!   `test_map_buffersize_value_validation`: `buffersize` is an `Option<usize>`.
//! - `test_swallows_falsey_exceptions` (exceptions whose `__bool__`/`__len__` is false):
//!   Rust errors have no truthiness; mirrored by an error with an empty message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::cf::{eventually, pool, DropSignal, Gate, LONG, WORKER_COUNT};
use crossbeam_channel::unbounded;
use futuretop_engine::BuildError;
use futuretop_engine::Call;
use futuretop_engine::Exception;
use futuretop_engine::Executor;
use futuretop_engine::Fallible;
use futuretop_engine::FutureError;
use futuretop_engine::MapOptions;
use futuretop_engine::SubmitError;
use futuretop_engine::ThreadPoolBuilder;
use futuretop_engine::ThreadPoolExecutor;
use futuretop_engine::TimeoutError;

fn mul(x: i32, y: i32) -> i32 {
    x * y
}

/// Python's `divmod`, raising `ZeroDivisionError` on 0.
fn divmod(x: i32, y: i32) -> Result<(i32, i32), Exception> {
    if y == 0 {
        Err(Exception::task("integer division or modulo by zero"))
    } else {
        Ok((x.div_euclid(y), x.rem_euclid(y)))
    }
}

// CPython: test_submit
#[test]
fn test_submit() {
    let pool = pool();
    let future = pool.submit(|| 2_i64.pow(8)).unwrap();
    assert_eq!(future.result(None), Ok(256));
}

// CPython: test_submit (through the Executor trait, as code generic over pools uses it)
#[test]
fn test_submit_via_executor_trait() {
    fn run<C: Call, E: Executor<C>>(executor: &E, call: C) -> Result<C::Output, FutureError>
    where
        C::Output: Clone,
    {
        executor.submit(call).expect("the pool accepts work").result(None)
    }
    let pool = pool();
    assert_eq!(run(&pool, Fallible(|| Ok::<_, Exception>(2_i64.pow(8)))), Ok(256));
    assert_eq!(run(&pool, Fallible(|| Err::<i64, _>("no"))), Err(FutureError::Failed(Exception::task("no"))));
    assert_eq!(run(&pool, || 2_i64.pow(8)), Ok(256));
}

// CPython: test_submit_keyword
#[test]
fn test_submit_keyword() {
    let pool = pool();
    let y = 8;
    let future = pool.submit(move || mul(2, y)).unwrap();
    assert_eq!(future.result(None), Ok(16));

    // capture(1, self=2, fn=3): names that would clash with submit's own parameters in
    // Python are plain captured values here.
    let (self_, fn_) = (2, 3);
    let future = pool.submit(move || (vec![1], vec![("self", self_), ("fn", fn_)])).unwrap();
    assert_eq!(future.result(None), Ok((vec![1], vec![("self", 2), ("fn", 3)])));
}

// CPython: test_map
#[test]
fn test_map() {
    let pool = pool();
    let expected: Vec<u64> = (0..10_u64).zip(0..10_u32).map(|(x, y)| x.pow(y)).collect();
    for chunksize in [1, 3] {
        let got: Vec<u64> = pool
            .map(|(x, y): (u64, u32)| x.pow(y), (0..10_u64).zip(0..10_u32), None, chunksize)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
}

// CPython: test_map_exception
#[test]
fn test_map_exception() {
    let pool = pool();
    let calls = [1, 1, 1, 1].into_iter().zip([2, 3, 0, 5]).map(|(x, y)| Fallible(move || divmod(x, y)));
    let mut i = Executor::map_calls(&pool, calls, MapOptions::default()).unwrap();
    assert_eq!(i.next(), Some(Ok((0, 1))));
    assert_eq!(i.next(), Some(Ok((0, 1))));
    assert_eq!(i.next(), Some(Err(FutureError::Failed(Exception::task("integer division or modulo by zero")))));
    // 3.11–3.14: the iteration ends at the first error.
    assert_eq!(i.next(), None);
    assert_eq!(i.next(), None);
}

// CPython: test_map_exception (a panicking function is the exception)
#[test]
fn test_map_exception_panic() {
    let pool = pool();
    let mut i = pool
        .map(
            |(x, y): (i32, i32)| {
                assert!(y != 0, "integer division or modulo by zero");
                (x / y, x % y)
            },
            [1, 1, 1, 1].into_iter().zip([2, 3, 0, 5]),
            None,
            1,
        )
        .unwrap();
    assert_eq!(i.next(), Some(Ok((0, 1))));
    assert_eq!(i.next(), Some(Ok((0, 1))));
    match i.next() {
        Some(Err(FutureError::Failed(Exception::Task { message, panicked: true }))) => {
            assert!(message.contains("integer division or modulo by zero"), "{message}");
        }
        other => panic!("expected the task's panic, got {other:?}"),
    }
    assert_eq!(i.next(), None);
}

// CPython: test_map_timeout_from_callable
#[test]
fn test_map_timeout_from_callable() {
    // A TimeoutError from the callable is not the map() timeout, whether or not a map()
    // timeout is set: it is the call's exception.
    let pool = pool();
    for timeout in [None, Some(LONG)] {
        let calls = (0..4)
            .map(|x| Fallible(move || if x == 1 { Err(Exception::Timeout(TimeoutError::single())) } else { Ok(x) }));
        let mut i = Executor::map_calls(&pool, calls, MapOptions { timeout, ..MapOptions::default() }).unwrap();
        assert_eq!(i.next(), Some(Ok(0)));
        assert_eq!(i.next(), Some(Err(FutureError::Failed(Exception::Timeout(TimeoutError::single())))));
        assert_eq!(i.next(), None, "3.11–3.14: the iteration ends at the first error");
    }
}

// CPython: test_map_timeout
#[test]
fn test_map_timeout() {
    let pool = pool();
    let gate = Gate::new();
    let g = gate.clone();
    // time.sleep(0), time.sleep(0), time.sleep(6) with timeout=5: the third is blocked.
    let mut i = pool
        .map(
            move |blocked: bool| {
                if blocked {
                    g.wait();
                }
            },
            [false, false, true],
            Some(Duration::from_secs(1)),
            1,
        )
        .unwrap();
    let mut results = Vec::new();
    let mut error = None;
    for r in i.by_ref() {
        match r {
            Ok(v) => results.push(v),
            Err(e) => error = Some(e),
        }
    }
    assert!(matches!(error, Some(FutureError::Timeout(_))), "expected TimeoutError, got {error:?}");
    assert_eq!(results, vec![(), ()]);
    // The remaining calls are cancelled, so the iterator is exhausted.
    assert_eq!(i.next(), None);
    assert_eq!(i.next(), None);
    gate.open();
}

// CPython: test_map_timeout (the deadline counts from the call to map, not per item)
#[test]
fn test_map_timeout_counts_from_the_call() {
    let pool = pool();
    let gate = Gate::new();
    let g = gate.clone();
    let timeout = Duration::from_millis(600);
    let start = Instant::now();
    let mut i = pool
        .map(
            move |x: u32| {
                if x == 1 {
                    g.wait();
                }
                x
            },
            [0, 1],
            Some(timeout),
            1,
        )
        .unwrap();
    // Let the whole timeout pass before consuming anything: this is the time being measured.
    std::thread::sleep(timeout.saturating_sub(start.elapsed()));
    // The first call finished long ago: a done future is returned whatever the deadline.
    assert_eq!(i.next(), Some(Ok(0)));
    // The deadline has passed: the second next() fails at once (per-item timing would
    // give it another full `timeout`).
    let second = Instant::now();
    let r = i.next();
    assert!(matches!(r, Some(Err(FutureError::Timeout(_)))), "{r:?}");
    assert!(second.elapsed() < timeout / 2, "next() waited {:?} past the deadline", second.elapsed());
    gate.open();
}

// CPython: test_map_close
#[test]
fn test_map_close() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (g, l) = (gate.clone(), Arc::clone(&log));
    let mut i = pool
        .map(
            move |x: u32| {
                l.lock().unwrap().push(x);
                if x == 1 {
                    g.wait();
                }
                x
            },
            0..4,
            None,
            1,
        )
        .unwrap();
    assert_eq!(i.next(), Some(Ok(0)));
    // Closing the iterator (dropping it) cancels every call not yet yielded that has not started.
    drop(i);
    gate.open();
    pool.shutdown(true, false);
    let log = log.lock().unwrap().clone();
    assert!(log == [0] || log == [0, 1], "calls ran after the iterator was closed: {log:?}");
}

// CPython: test_map_buffersize_value_validation
#[test]
fn test_map_buffersize_value_validation() {
    let pool = pool();
    let r = pool.map_with(|x: u32| x.to_string(), 0..4, MapOptions { buffersize: Some(0), ..MapOptions::default() });
    let err = r.err().unwrap();
    assert_eq!(err, SubmitError::ZeroBuffersize);
    assert_eq!(err.to_string(), "buffersize must be None or > 0");
}

fn buffered(buffersize: usize) -> MapOptions {
    MapOptions { buffersize: Some(buffersize), ..MapOptions::default() }
}

// CPython: test_map_buffersize
#[test]
fn test_map_buffersize() {
    let pool = pool();
    for buffersize in [1, 2, 4, 8] {
        let res: Vec<_> =
            pool.map_with(|x: u32| x.to_string(), 0..4, buffered(buffersize)).unwrap().map(Result::unwrap).collect();
        assert_eq!(res, ["0", "1", "2", "3"], "buffersize {buffersize}");
    }
}

// CPython: test_map_buffersize_on_multiple_iterables
#[test]
fn test_map_buffersize_on_multiple_iterables() {
    let pool = pool();
    for buffersize in [1, 2, 4, 8] {
        let res: Vec<_> = pool
            .map_with(|(a, b): (u32, u32)| a + b, (0..4).zip(0..4), buffered(buffersize))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(res, [0, 2, 4, 6], "buffersize {buffersize}");
    }
}

// CPython: test_map_buffersize_on_infinite_iterable
#[test]
fn test_map_buffersize_on_infinite_iterable() {
    let pool = pool();
    let mut res = pool.map_with(|x: u64| x.to_string(), 0_u64.., buffered(2)).unwrap();
    assert_eq!(res.next(), Some(Ok("0".to_owned())));
    assert_eq!(res.next(), Some(Ok("1".to_owned())));
    assert_eq!(res.next(), Some(Ok("2".to_owned())));
}

// CPython: test_map_buffersize_on_multiple_infinite_iterables
#[test]
fn test_map_buffersize_on_multiple_infinite_iterables() {
    let pool = pool();
    let mut res = pool.map_with(|(a, b): (u64, u64)| a + b, (0_u64..).zip(0_u64..), buffered(2)).unwrap();
    assert_eq!(res.next(), Some(Ok(0)));
    assert_eq!(res.next(), Some(Ok(2)));
    assert_eq!(res.next(), Some(Ok(4)));
}

// CPython: test_map_buffersize_on_empty_iterable
#[test]
fn test_map_buffersize_on_empty_iterable() {
    let pool = pool();
    let mut res = pool.map_with(|x: u32| x.to_string(), Vec::<u32>::new(), buffered(2)).unwrap();
    assert_eq!(res.next(), None);
}

// CPython: test_map_buffersize_without_iterable
#[test]
fn test_map_buffersize_without_iterable() {
    let pool = pool();
    let mut res = pool.map_with(|x: u32| x.to_string(), std::iter::empty::<u32>(), buffered(2)).unwrap();
    assert_eq!(res.next(), None);
}

// CPython: test_map_buffersize_when_buffer_is_full
#[test]
fn test_map_buffersize_when_buffer_is_full() {
    let pool = pool();
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetched);
    let ints = (0..4).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let buffersize = 2;
    let res = pool.map_with(|x: u32| x.to_string(), ints, buffered(buffersize)).unwrap();
    pool.shutdown(true, false); // wait for tasks to complete
    assert_eq!(fetched.load(Ordering::SeqCst), buffersize, "should have fetched only `buffersize` elements");
    drop(res);
}

// CPython: test_shutdown_race_issue12456
#[test]
fn test_shutdown_race_issue12456() {
    let pool = pool();
    let res = pool.map(|x: i32| x.to_string(), vec![2; WORKER_COUNT + 1], None, 1).unwrap();
    pool.shutdown(true, false);
    let res: Vec<_> = res.map(Result::unwrap).collect();
    assert_eq!(res, vec!["2"; WORKER_COUNT + 1]);
}

/// Python's `MyObject`: its method does nothing; the value signals when it is freed.
struct MyObject(#[allow(dead_code)] DropSignal);

impl MyObject {
    #[allow(clippy::unused_self)]
    fn my_method(&self) {}
}

// CPython: test_no_stale_references
#[test]
fn test_no_stale_references() {
    let pool = pool();
    let (tx, my_object_collected) = unbounded();
    let my_object = MyObject(DropSignal(tx));
    // Deliberately discarding the future.
    drop(pool.submit(move || my_object.my_method()).unwrap());
    assert!(my_object_collected.recv_timeout(LONG).is_ok(), "Stale reference not collected within timeout.");
}

// CPython: test_no_stale_references (the result, once every handle is dropped)
#[test]
fn test_no_stale_references_result() {
    let pool = pool();
    let (tx, collected) = unbounded();
    let f = pool.submit(move || Arc::new(MyObject(DropSignal(tx)))).unwrap();
    assert_eq!(f.wait_done(Some(LONG)), Ok(true));
    assert!(collected.try_recv().is_err(), "the result was freed while a handle remains");
    drop(f);
    assert!(collected.recv_timeout(LONG).is_ok(), "the pool kept the finished future's result");
}

// CPython: test_max_workers_negative
#[test]
fn test_max_workers_negative() {
    let err = ThreadPoolExecutor::new(0).unwrap_err();
    assert_eq!(err, BuildError::ZeroWorkers);
    assert_eq!(err.to_string(), "max_workers must be greater than 0");
    assert_eq!(ThreadPoolBuilder::new().max_workers(0).build().unwrap_err(), BuildError::ZeroWorkers);
}

// CPython: test_free_reference
#[test]
fn test_free_reference() {
    let pool = pool();
    for obj in pool.map(|_: u32| Arc::new(AtomicUsize::new(0)), 0..10, None, 1).unwrap() {
        let wr = Arc::downgrade(&obj.unwrap());
        // The iterator and the pool drop their references; only the worker's handle on
        // the finished future may linger a moment.
        eventually("the yielded result to be freed", || wr.upgrade().is_none());
    }
}

// CPython: test_swallows_falsey_exceptions
#[test]
fn test_swallows_falsey_exceptions() {
    let pool = pool();
    let f = pool.submit_named(None, Fallible(|| Err::<i32, _>(""))).unwrap();
    assert_eq!(f.result(None), Err(FutureError::Failed(Exception::task(""))));
    assert_eq!(f.exception(None), Ok(Some(Exception::task(""))));
}

// Python 3.14's map(buffersize=...) submits as the consumer goes: a submit the pool
// refuses (shut down meanwhile) comes out of the iteration as its error, at once, and
// the calls not yet yielded are cancelled.
#[test]
fn test_map_buffersize_reports_a_refused_submit() {
    let pool = pool();
    let mut res =
        pool.map_with(|x: u32| x * 10, 0..10, MapOptions { buffersize: Some(2), ..MapOptions::default() }).unwrap();
    assert_eq!(res.next(), Some(Ok(0)));
    pool.shutdown(true, false);
    match res.next() {
        Some(Err(FutureError::Refused(SubmitError::Shutdown))) => {}
        other => panic!("expected the refused submit, got {other:?}"),
    }
    assert_eq!(res.next(), None, "the iteration ended there");
}
