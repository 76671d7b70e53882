//! Rust counterparts of CPython's process-pool tests (repository python/cpython,
//! `Lib/test/test_concurrent_futures/`): every case the catalogue marks [P] or [B], run
//! against `ProcessPoolExecutor` with the real `futuretop` binary as the worker program.
//!
//! How the Rust design differs, and how these tests deal with it:
//! - **No pickling.** A call is a registered callable's name plus JSON arguments
//!   (`ProcessCall`); the tests use the built-ins (`BUILTIN_CALL` with a serialised
//!   `Builtin`) and external commands (`COMMAND_CALL` with a `CommandPlan`).
//! - **No fork contexts.** Workers are always this program re-executed
//!   (`__futuretop_worker`), so `mp_context` variants collapse into one test each, and
//!   `test_max_tasks_per_child_defaults_to_spawn_context` cannot apply (there is only one
//!   way to start a worker; nothing to default).
//! - `event.wait` tasks: a worker task calls the `wait_on` built-in, which the worker
//!   proxies to the parent; this file's request hook ([`Gates`]) answers it with a future
//!   the test sets. The task is really blocked in its worker process until then.
//! - `os.getpid()` in a task: the `pid` of the future's `Running` observation (the pool
//!   reports which worker process runs each call), or, in a command, its nearest ancestor that is a worker (`$PPID` is its supervisor).
//! - `executor._processes`: `worker_pids()`, and `/proc` to check a pid is gone.
//!
//! Cases that cannot apply, and why:
//! - `test_ressources_gced_in_workers`, `test_no_stale_references`, `test_free_reference`
//!   and `test_free_reference_yielded_future` watch Python objects being collected. A
//!   process call holds none of the caller's objects: its arguments are copied into a
//!   frame, its result is a fresh `serde_json::Value`; there is no reference whose life a
//!   test could observe. The engine's side (a finished future drops what it held) is the
//!   same `Future` as the thread pool's, tested in `tests/engine/cf_executor.rs` and
//!   `tests/engine/cf_as_completed.rs`.
//! - `test_python_finalization_error`, `test_submit_after_interpreter_shutdown`: Python
//!   interpreter finalization (atexit hooks); a Rust program has no such phase. What a
//!   program exit does to queued work is `test_interpreter_shutdown` below.
//! - `test_deadlock.py`'s pickle cases: "pickling" is the protocol's JSON encoding. An
//!   argument or result that is a `serde_json::Value` always encodes, so
//!   `test_error_at_task_pickle`, `test_crash_during_result_pickle_on_worker`,
//!   `test_exit_during_result_pickle_on_worker` and
//!   `test_error_during_result_pickle_on_worker` have no trigger short of a 256 MiB frame
//!   (the worker then reports "cannot send the result" as that call's error).
//!   `test_exit_at_task_unpickle` and `test_crash_at_task_unpickle` (exit or crash *while
//!   decoding the call*) cannot be injected from outside the worker; for the parent an
//!   exit or a crash at any point of a call is the same event (the pipe closes, the status
//!   says how), tested by `test_exit_during_func_exec_on_worker` and
//!   `test_crash_during_func_exec_on_worker`. `test_error_during_result_unpickle_in_result_handler`
//!   and `test_exit_during_result_unpickle_in_result_handler` (garbage from a worker) are
//!   covered by the protocol's unit test in `engine/src/executor/protocol.rs`
//!   (`frames_round_trip_and_garbage_is_an_error_not_a_panic`: a huge length, a truncated
//!   body and an undecodable body are each an error, never a panic), and by the parent
//!   killing a worker that sends one (`exchange` in `engine/src/executor/process_pool.rs`).
//! - `test_max_workers_negative`: `max_workers` is a `usize`, so -1 does not compile;
//!   0 is refused.

// Helpers are test code too: a failed unwrap is a failed test (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use futuretop::builtins::{self, Builtin};
use futuretop::config::CommandPlan;
use futuretop::tasks::BUILTIN_CALL;
use futuretop::tasks::COMMAND_CALL;
use futuretop_engine::as_completed;
use futuretop_engine::executor::RequestHook;
use futuretop_engine::wait;
use futuretop_engine::BuildError;
use futuretop_engine::Exception;
use futuretop_engine::Executor;
use futuretop_engine::Future;
use futuretop_engine::FutureError;
use futuretop_engine::MapOptions;
use futuretop_engine::Observation;
use futuretop_engine::Outcome;
use futuretop_engine::ProcessCall;
use futuretop_engine::ProcessPoolBuilder;
use futuretop_engine::ProcessPoolExecutor;
use futuretop_engine::ReturnWhen;
use futuretop_engine::Sink;
use futuretop_engine::SubmitError;
use serde_json::{json, Value};

use crate::common::procs::{alive, processes_exact, workers_of};
use crate::common::scratch;

/// The worker program: the real binary, which serves worker requests first thing.
const EXE: &str = env!("CARGO_BIN_EXE_futuretop");
/// Upper bound for anything that should happen soon; a passing test never waits this long.
const LONG: Duration = Duration::from_secs(20);
/// A wait meant to time out.
const SHORT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn builder(workers: usize) -> ProcessPoolBuilder {
    ProcessPoolExecutor::builder().program(EXE).max_workers(workers)
}

fn call(b: &Builtin) -> ProcessCall {
    ProcessCall::new(BUILTIN_CALL, serde_json::to_value(b).unwrap())
}

fn pow(base: i64, exp: u32) -> ProcessCall {
    call(&Builtin::Pow(builtins::Pow { base, exp }))
}

fn sleep(secs: f64) -> ProcessCall {
    call(&Builtin::Sleep(builtins::Sleep { secs }))
}

fn fail(message: &str) -> ProcessCall {
    call(&Builtin::Fail(builtins::Fail { message: message.into() }))
}

fn sh(script: &str) -> ProcessCall {
    let plan =
        CommandPlan { argv: vec!["sh".into(), "-c".into(), script.into()], env: Vec::new(), cwd: None, timeout: None };
    ProcessCall::new(COMMAND_CALL, serde_json::to_value(plan).unwrap())
}

/// A task blocked in its worker until the test opens gate `k` (Python's `event.wait`).
fn blocked(k: usize) -> ProcessCall {
    call(&Builtin::WaitOn(builtins::WaitOn { task: k, timeout: None }))
}

/// Futures the test holds, by number, that worker tasks can wait on: the pool's request
/// hook answers a worker's `wait_on { task: k }` with gate `k`'s result, waiting for it
/// in the requesting task's context (so the wait is observed and can be broken).
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashMap<usize, Future<Value>>>>);

impl Gates {
    fn get(&self, k: usize) -> Future<Value> {
        self.0.lock().unwrap().entry(k).or_default().clone()
    }

    fn open(&self, k: usize, v: Value) {
        let _ = self.get(k).set_result(v);
    }

    fn hook(&self) -> RequestHook {
        let gates = self.clone();
        Arc::new(move |_, body| {
            let k = usize::try_from(body["task"].as_u64().unwrap_or(0)).unwrap_or(0);
            let timeout = body["timeout"].as_f64().map_or(LONG, Duration::from_secs_f64);
            gates.get(k).result(Some(timeout)).map_err(Exception::from)
        })
    }
}

/// What a pool reported to its sink.
struct Seen {
    rx: Receiver<(Instant, Observation)>,
    all: Vec<Observation>,
}

impl Seen {
    fn new() -> (Arc<dyn Sink>, Self) {
        let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Observation)>();
        (Arc::new(tx), Self { rx, all: Vec::new() })
    }

    fn drain(&mut self) -> &[Observation] {
        self.all.extend(self.rx.try_iter().map(|(_, o)| o));
        &self.all
    }

    /// Waits until `pred` holds for what was seen.
    #[track_caller]
    fn until(&mut self, what: &str, pred: impl Fn(&[Observation]) -> bool) {
        let deadline = Instant::now() + LONG;
        loop {
            if pred(self.drain()) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not seen within {LONG:?}: {:#?}", self.all);
            if let Ok((_, o)) = self.rx.recv_timeout(Duration::from_millis(10)) {
                self.all.push(o);
            }
        }
    }

    /// The pid of the worker process that ran future `id`.
    fn pid_of(&mut self, id: futuretop_engine::FutureId) -> u32 {
        self.drain()
            .iter()
            .find_map(|o| match o {
                Observation::Running { id: i, pid, .. } if *i == id => *pid,
                _ => None,
            })
            .unwrap_or_else(|| panic!("no Running observation with a pid for {id}"))
    }

    fn started_pids(&mut self) -> Vec<u32> {
        self.drain()
            .iter()
            .filter_map(|o| match o {
                Observation::WorkerStarted { pid, .. } => *pid,
                _ => None,
            })
            .collect()
    }
}

/// Polls `cond` until it holds (failing after [`LONG`]).
#[track_caller]
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: still false after {LONG:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `f` on a thread and fails if it does not return within [`LONG`] (a hang).
#[track_caller]
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LONG) {
        Ok(v) => v,
        Err(_) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what} did not return within {LONG:?} (hang)"),
        },
    }
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
}

#[track_caller]
fn broken(f: &Future<Value>) -> futuretop_engine::BrokenExecutor {
    match f.result(Some(LONG)) {
        Err(FutureError::Failed(Exception::Broken(b))) => {
            assert_eq!(b.type_name(), "BrokenProcessPool");
            b
        }
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    }
}

#[track_caller]
fn ids(fs: &[Future<Value>]) -> BTreeSet<u64> {
    fs.iter().map(|f| f.id().0).collect()
}

// ---------------------------------------------------------------------------------------
// executor.py [B]
// ---------------------------------------------------------------------------------------

// CPython: test_submit
#[test]
fn test_submit() {
    let pool = builder(2).build().unwrap();
    let future = pool.submit(pow(2, 8)).unwrap();
    assert_eq!(future.result(Some(LONG)), Ok(json!(256)));
    // Beyond 64 bits the value crosses the pipe exactly (as digits).
    let big = pool.submit(pow(2, 100)).unwrap();
    assert_eq!(big.result(Some(LONG)), Ok(json!("1267650600228229401496703205376")));
}

// CPython: test_submit_keyword (keyword arguments are the fields of the call's JSON object,
// in any order)
#[test]
fn test_submit_keyword() {
    let pool = builder(1).build().unwrap();
    let f = pool.submit(ProcessCall::new(BUILTIN_CALL, json!({"Pow": {"exp": 3, "base": 2}}))).unwrap();
    assert_eq!(f.result(Some(LONG)), Ok(json!(8)));
    let f = pool.submit(ProcessCall::new(BUILTIN_CALL, json!({"Pow": {"base": 3, "exp": 2}}))).unwrap();
    assert_eq!(f.result(Some(LONG)), Ok(json!(9)));
}

// CPython: test_map (order kept; `map(pow, range(10), range(10))`, the zip of two iterables
// built into each call's arguments)
#[test]
fn test_map() {
    let pool = builder(2).build().unwrap();
    let items = (0..10i64)
        .zip(0..10u32)
        .map(|(b, e)| serde_json::to_value(Builtin::Pow(builtins::Pow { base: b, exp: e })).unwrap());
    let got: Vec<Value> = pool.map(BUILTIN_CALL, items, Some(LONG), 1).unwrap().map(Result::unwrap).collect();
    let expected: Vec<Value> = (0..10i64).map(|i| json!(i.pow(u32::try_from(i).unwrap()))).collect();
    assert_eq!(got, expected);
    // The Executor trait's map_calls (one call per message) gives the same.
    let calls = (0..10i64).map(|i| pow(i, u32::try_from(i).unwrap())).collect::<Vec<_>>();
    let got: Vec<Value> = pool.map_calls(calls, MapOptions::default()).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, expected);
}

// CPython: test_map_exception
#[test]
fn test_map_exception() {
    let pool = builder(2).build().unwrap();
    let items = vec![
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 1 })).unwrap(),
        serde_json::to_value(Builtin::Fail(builtins::Fail { message: "division by zero".into() })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 3 })).unwrap(),
    ];
    let mut i = pool.map(BUILTIN_CALL, items, Some(LONG), 1).unwrap();
    assert_eq!(i.next(), Some(Ok(json!(2))));
    match i.next() {
        Some(Err(FutureError::Failed(Exception::Task { message, .. }))) => assert_eq!(message, "division by zero"),
        other => panic!("expected the task's error, got {other:?}"),
    }
    assert_eq!(i.next(), None, "an error ends the iteration");
}

// CPython: test_map_timeout
#[test]
fn test_map_timeout() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let items = vec![
        serde_json::to_value(Builtin::Sleep(builtins::Sleep { secs: 0.0 })).unwrap(),
        serde_json::to_value(Builtin::Sleep(builtins::Sleep { secs: 0.0 })).unwrap(),
        serde_json::to_value(Builtin::WaitOn(builtins::WaitOn { task: 1, timeout: None })).unwrap(),
    ];
    let start = Instant::now();
    let mut results = Vec::new();
    let mut timed_out = false;
    for r in pool.map(BUILTIN_CALL, items, Some(Duration::from_millis(500)), 1).unwrap() {
        match r {
            Ok(v) => results.push(v),
            Err(FutureError::Timeout(t)) => {
                assert_eq!(t.to_string(), "1 (of 3) futures unfinished");
                timed_out = true;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(timed_out, "map did not time out");
    assert_eq!(results, vec![Value::Null, Value::Null]);
    // The deadline counts from the call to map.
    assert!(start.elapsed() >= Duration::from_millis(500) && start.elapsed() < LONG);
    gates.open(1, json!(0));
}

// CPython: test_map_buffersize [3.14] (through the Executor trait: at most `buffersize`
// calls are submitted ahead of the consumer)
#[test]
fn test_map_buffersize() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(2).sink(sink).build().unwrap();
    let calls: Vec<ProcessCall> = (0..6).map(|i| pow(i, 2)).collect();
    let options = MapOptions { buffersize: Some(2), ..MapOptions::default() };
    let mut it = pool.map_calls(calls, options).unwrap();
    let pending = |s: &[Observation]| s.iter().filter(|o| matches!(o, Observation::Pending { .. })).count();
    assert_eq!(pending(seen.drain()), 2, "only buffersize calls are submitted before the first next()");
    assert_eq!(it.next(), Some(Ok(json!(0))));
    assert_eq!(pending(seen.drain()), 3);
    let rest: Vec<Value> = it.map(Result::unwrap).collect();
    assert_eq!(rest, vec![json!(1), json!(4), json!(9), json!(16), json!(25)]);
    assert!(matches!(
        pool.map_calls(vec![pow(1, 1)], MapOptions { buffersize: Some(0), ..MapOptions::default() }),
        Err(SubmitError::ZeroBuffersize)
    ));
}

// CPython: test_shutdown_race_issue12456
#[test]
fn test_shutdown_race_issue12456() {
    let pool = builder(2).build().unwrap();
    // Issue #12456: race condition at shutdown where trying to post a sentinel in the
    // call queue blocks (the queue is full while processes have exited).
    let it = pool.map(
        BUILTIN_CALL,
        vec![serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 2 })).unwrap(); 3],
        None,
        1,
    );
    drop(it);
    within("shutdown after map", move || pool.shutdown(true, false));
}

// CPython: test_max_workers_negative (0 refused; a negative count does not compile)
#[test]
fn test_max_workers_negative() {
    assert_eq!(builder(0).build().err(), Some(BuildError::ZeroWorkers));
    assert_eq!(builder(1).max_tasks_per_child(0).build().err(), Some(BuildError::ZeroTasksPerChild));
    // The default is the number of CPUs; building starts no process.
    let pool = ProcessPoolExecutor::builder().program(EXE).build().unwrap();
    assert!(pool.worker_pids().is_empty(), "workers start at the first submit");
}

// ---------------------------------------------------------------------------------------
// test_wait.py [B]
// ---------------------------------------------------------------------------------------

fn done_future(v: Value) -> Future<Value> {
    let f = Future::new();
    f.set_result(v).unwrap();
    f
}

fn failed_future() -> Future<Value> {
    let f = Future::new();
    f.set_exception(Exception::task("OSError")).unwrap();
    f
}

fn cancelled_and_notified() -> Future<Value> {
    let f = Future::new();
    assert!(f.cancel());
    assert_eq!(f.set_running_or_notify_cancel(), Ok(false));
    f
}

// CPython: test_20369 (duplicate futures in the input)
#[test]
fn test_20369() {
    let pool = builder(1).build().unwrap();
    let future = pool.submit(pow(2, 1)).unwrap();
    let r = wait(&[future.clone(), future.clone()], Some(LONG), ReturnWhen::AllCompleted);
    assert_eq!(ids(&r.done), ids(&[future]));
    assert!(r.not_done.is_empty());
}

// CPython: test_first_completed
#[test]
fn test_first_completed() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(pow(21, 1)).unwrap();
    let future2 = pool.submit(blocked(1)).unwrap();
    let r = wait(&[future1.clone(), future2.clone()], Some(LONG), ReturnWhen::FirstCompleted);
    assert_eq!(ids(&r.done), ids(&[future1]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));
    gates.open(1, json!(1));
    assert_eq!(future2.result(Some(LONG)), Ok(json!(1)));
}

// CPython: test_first_completed_some_already_completed
#[test]
fn test_first_completed_some_already_completed() {
    let gates = Gates::default();
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(blocked(1)).unwrap();
    let (cn, ok) = (cancelled_and_notified(), done_future(json!(42)));
    let r = wait(&[cn.clone(), ok.clone(), future1.clone()], Some(LONG), ReturnWhen::FirstCompleted);
    assert_eq!(ids(&r.done), ids(&[cn, ok]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future1)));
    gates.open(1, json!(1));
    future1.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception
#[test]
fn test_first_exception() {
    let gates = Gates::default();
    let pool = builder(3).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(pow(21, 2)).unwrap();
    // Fails once gate 1 opens: the wait_on raises gate 1's exception.
    let future2 = pool.submit(blocked(1)).unwrap();
    let future3 = pool.submit(blocked(2)).unwrap();
    future1.result(Some(LONG)).unwrap();
    let _ = gates.get(1).set_exception(Exception::task("this is an exception"));
    let r = wait(&[future1.clone(), future2.clone(), future3.clone()], Some(LONG), ReturnWhen::FirstException);
    assert_eq!(ids(&r.done), ids(&[future1, future2.clone()]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future3)));
    assert_eq!(future2.exception(Some(LONG)), Ok(Some(Exception::task("this is an exception"))));
    gates.open(2, json!(2));
    future3.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception_some_already_complete
#[test]
fn test_first_exception_some_already_complete() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(fail("division by zero")).unwrap();
    let future2 = pool.submit(blocked(1)).unwrap();
    future1.exception(Some(LONG)).unwrap();
    let (cn, ok) = (cancelled_and_notified(), done_future(json!(42)));
    let r = wait(&[ok.clone(), cn.clone(), future1.clone(), future2.clone()], Some(LONG), ReturnWhen::FirstException);
    assert_eq!(ids(&r.done), ids(&[ok, cn, future1]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));
    gates.open(1, json!(1));
    future2.result(Some(LONG)).unwrap();
}

// CPython: test_first_exception_one_already_failed
#[test]
fn test_first_exception_one_already_failed() {
    let gates = Gates::default();
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(blocked(1)).unwrap();
    let failed = failed_future();
    let r = wait(&[failed.clone(), future1.clone()], Some(LONG), ReturnWhen::FirstException);
    assert_eq!(ids(&r.done), ids(&[failed]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future1)));
    gates.open(1, json!(1));
    future1.result(Some(LONG)).unwrap();
}

// CPython: test_all_completed
#[test]
fn test_all_completed() {
    let pool = builder(2).build().unwrap();
    let future1 = pool.submit(fail("division by zero")).unwrap();
    let future2 = pool.submit(pow(2, 10)).unwrap();
    let (ok, failed, cn) = (done_future(json!(42)), failed_future(), cancelled_and_notified());
    let all = [ok, failed, cn, future1, future2];
    let r = wait(&all, Some(LONG), ReturnWhen::AllCompleted);
    assert_eq!(ids(&r.done), ids(&all));
    assert!(r.not_done.is_empty());
}

// CPython: test_timeout (returns what is done, no error)
#[test]
fn test_timeout() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let future1 = pool.submit(pow(6, 7)).unwrap();
    let future2 = pool.submit(blocked(1)).unwrap();
    future1.result(Some(LONG)).unwrap();
    let (ok, failed, cn) = (done_future(json!(42)), failed_future(), cancelled_and_notified());
    let r = wait(
        &[ok.clone(), failed.clone(), cn.clone(), future1.clone(), future2.clone()],
        Some(SHORT),
        ReturnWhen::AllCompleted,
    );
    assert_eq!(ids(&r.done), ids(&[ok, failed, cn, future1]));
    assert_eq!(ids(&r.not_done), ids(std::slice::from_ref(&future2)));
    gates.open(1, json!(1));
    future2.result(Some(LONG)).unwrap();
}

// ---------------------------------------------------------------------------------------
// test_as_completed.py [B]
// ---------------------------------------------------------------------------------------

// CPython: test_no_timeout (finished, cancelled and running futures are all yielded)
#[test]
fn test_no_timeout() {
    let pool = builder(2).build().unwrap();
    let future1 = pool.submit(pow(2, 2)).unwrap();
    let future2 = pool.submit(pow(3, 3)).unwrap();
    let (cn, ok, failed) = (cancelled_and_notified(), done_future(json!(42)), failed_future());
    let all = [cn, ok, failed, future1, future2];
    let yielded: Vec<Future<Value>> = as_completed(&all, Some(LONG)).map(Result::unwrap).collect();
    assert_eq!(ids(&yielded), ids(&all));
    assert_eq!(yielded.len(), all.len());
}

// CPython: test_future_times_out (TimeoutError after yielding the done ones)
#[test]
fn test_future_times_out() {
    let gates = Gates::default();
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let running = pool.submit(blocked(1)).unwrap();
    let (ok, failed) = (done_future(json!(42)), failed_future());
    let mut yielded = Vec::new();
    let mut timed_out = None;
    for r in as_completed(&[ok.clone(), failed.clone(), running.clone()], Some(SHORT)) {
        match r {
            Ok(f) => yielded.push(f),
            Err(e) => timed_out = Some(e),
        }
    }
    assert_eq!(ids(&yielded), ids(&[ok, failed]));
    assert_eq!(timed_out.map(|e| e.to_string()).as_deref(), Some("1 (of 3) futures unfinished"));
    gates.open(1, json!(1));
    running.result(Some(LONG)).unwrap();
}

// CPython: test_duplicate_futures (each yielded once)
#[test]
fn test_duplicate_futures() {
    let pool = builder(1).build().unwrap();
    let future1 = pool.submit(pow(2, 3)).unwrap();
    let completed: Vec<_> = as_completed(&[future1.clone(), future1.clone()], Some(LONG)).map(Result::unwrap).collect();
    assert_eq!(completed.len(), 1);
    assert!(completed[0].same_as(&future1));
}

// CPython: test_correct_timeout_exception_msg ("N (of M) futures unfinished")
#[test]
fn test_correct_timeout_exception_msg() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let futures = [done_future(json!(1)), pool.submit(blocked(1)).unwrap(), pool.submit(blocked(2)).unwrap()];
    let mut it = as_completed(&futures, Some(SHORT));
    assert!(it.next().unwrap().is_ok());
    let e = it.next().unwrap().unwrap_err();
    assert_eq!(e.to_string(), "2 (of 3) futures unfinished");
    gates.open(1, json!(1));
    gates.open(2, json!(2));
}

// ---------------------------------------------------------------------------------------
// test_shutdown.py [B]
// ---------------------------------------------------------------------------------------

// CPython: test_run_after_shutdown
#[test]
fn test_run_after_shutdown() {
    let pool = builder(1).build().unwrap();
    pool.shutdown(true, false);
    assert_eq!(pool.submit(pow(2, 5)).err(), Some(SubmitError::Shutdown));
}

const CHILD_ENV: &str = "FUTURETOP_PROCESS_POOL_CHILD";

/// Runs test `name` of this binary in a child process (CPython's `assert_python_ok`);
/// returns its stdout once it has exited, failing if it hangs, and checks it left no
/// worker process behind.
fn run_child(name: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([&crate::common::cf::test_path(module_path!(), name), "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child process for {name} hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap();
    assert!(status.success(), "{name} child: {status}\n{out}");
    until("the child's workers are gone", || workers_of(pid).is_empty());
    out
}

// CPython: test_interpreter_shutdown (the program's main ends with work queued and no
// explicit shutdown: leaving the pool's scope waits for it, as Python's atexit hook does)
#[test]
fn test_interpreter_shutdown() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("test_interpreter_shutdown") {
        let pool = builder(5).on_output(Arc::new(|_, _, line, _| println!("{line}"))).build().unwrap();
        let _ = pool.submit(sh("sleep 0.2; echo apple")).unwrap();
        return; // the pool is dropped here: shutdown(wait=True)
    }
    let out = run_child("test_interpreter_shutdown");
    assert!(out.lines().any(|l| l.trim() == "apple"), "{out}");
}

// CPython: test_interpreter_shutdown (the abrupt variant: std::process::exit with work
// running and queued; the workers and the command's process go with the program)
#[test]
fn test_interpreter_shutdown_process_exit() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("test_interpreter_shutdown_process_exit") {
        let pool = builder(2).build().unwrap();
        let running = pool.submit(sh("sleep 1000.4711")).unwrap();
        let _queued: Vec<_> = (0..5).map(|_| pool.submit(sleep(60.0)).unwrap()).collect();
        until("the command runs", || !processes_exact("sleep 1000.4711").is_empty() && running.running());
        std::process::exit(0);
    }
    run_child("test_interpreter_shutdown_process_exit");
    until("the command's process is gone", || processes_exact("sleep 1000.4711").is_empty());
}

// CPython: test_hang_issue12364
#[test]
fn test_hang_issue12364() {
    let pool = builder(2).build().unwrap();
    let fs: Vec<_> = (0..50).map(|_| pool.submit(sleep(0.005)).unwrap()).collect();
    within("shutdown", move || {
        pool.shutdown(true, false);
        for f in fs {
            f.result(Some(Duration::ZERO)).unwrap();
        }
    });
}

// CPython: test_hang_gh83386 (shutdown(wait=False), then the program ends: no hang)
#[test]
fn test_hang_gh83386() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("test_hang_gh83386") {
        let pool = builder(2).build().unwrap();
        let f = pool.submit(sleep(0.1)).unwrap();
        pool.shutdown(false, false);
        println!("shut down: {}", f.done());
        return;
    }
    let out = run_child("test_hang_gh83386");
    assert!(out.contains("shut down: false"), "shutdown(wait=False) returned before the work ended: {out}");
}

// CPython: test_cancel_futures (pending ones cancelled, running ones finish)
#[test]
fn test_cancel_futures() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let running: Vec<_> = (1..=2).map(|k| pool.submit(blocked(k)).unwrap()).collect();
    let queued: Vec<_> = (0..10).map(|i| pool.submit(pow(2, i)).unwrap()).collect();
    until("both workers run", || running.iter().all(Future::running));
    let (q2, g2) = (queued.clone(), gates.clone());
    let opener = std::thread::spawn(move || {
        // Running work is waited for: open the gates once shutdown has cancelled the queue.
        until("shutdown cancelled the queue", || q2.iter().all(Future::cancelled));
        g2.open(1, json!(1));
        g2.open(2, json!(2));
    });
    within("shutdown(cancel_futures)", move || pool.shutdown(true, true));
    opener.join().unwrap();
    assert!(queued.iter().all(Future::cancelled), "every pending future is cancelled");
    assert_eq!(running[0].result(Some(Duration::ZERO)), Ok(json!(1)));
    assert_eq!(running[1].result(Some(Duration::ZERO)), Ok(json!(2)));
}

// CPython: test_cancel_futures_wait_false
#[test]
fn test_cancel_futures_wait_false() {
    let gates = Gates::default();
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let running = pool.submit(blocked(1)).unwrap();
    let queued: Vec<_> = (0..5).map(|i| pool.submit(pow(3, i)).unwrap()).collect();
    until("the first task runs", || running.running());
    let start = Instant::now();
    pool.shutdown(false, true);
    assert!(start.elapsed() < Duration::from_secs(2), "shutdown(wait=False) returns at once");
    assert!(queued.iter().all(Future::cancelled));
    assert!(!running.done());
    gates.open(1, json!("ok"));
    assert_eq!(running.result(Some(LONG)), Ok(json!("ok")));
}

// CPython: test_context_manager_shutdown / test_del_shutdown (leaving scope waits for the
// work, and the workers are gone afterwards)
#[test]
fn test_context_manager_shutdown() {
    let (sink, mut seen) = Seen::new();
    let f;
    {
        let pool = builder(2).sink(sink).build().unwrap();
        f = pool.submit(sleep(0.1)).unwrap();
        let _ = pool.submit(pow(2, 2)).unwrap();
    }
    assert!(f.done(), "dropping the pool waited for its work");
    let pids = seen.started_pids();
    assert!(!pids.is_empty());
    assert!(pids.iter().all(|&p| !alive(p)), "a worker outlived the pool");
}

// CPython: test_del_shutdown (dropping the executor: the map's work completes, the
// worker processes end)
#[test]
fn test_del_shutdown() {
    let (sink, mut seen) = Seen::new();
    let executor = builder(2).sink(sink).build().unwrap();
    let items: Vec<Value> =
        (-5i64..5).map(|b| serde_json::to_value(Builtin::Pow(builtins::Pow { base: b, exp: 2 })).unwrap()).collect();
    let res = executor.map(BUILTIN_CALL, items, Some(LONG), 1).unwrap();
    seen.until("a worker started", |s| s.iter().any(|o| matches!(o, Observation::WorkerStarted { .. })));
    within("drop", move || drop(executor));
    let pids = seen.started_pids();
    assert!(pids.iter().all(|&p| !alive(p)), "a worker outlived the executor");
    // Make sure the results were all computed before the executor got dropped.
    let got: Vec<Value> = res.map(Result::unwrap).collect();
    assert_eq!(got, (-5i64..5).map(|b| json!(b * b)).collect::<Vec<_>>());
}

// CPython: test_shutdown_no_wait (returns at once, work still completes)
#[test]
fn test_shutdown_no_wait() {
    let gates = Gates::default();
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    let fs: Vec<_> = (1..=2).map(|k| pool.submit(blocked(k)).unwrap()).collect();
    let start = Instant::now();
    pool.shutdown(false, false);
    assert!(start.elapsed() < Duration::from_secs(2));
    gates.open(1, json!(1));
    gates.open(2, json!(2));
    assert_eq!(fs[0].result(Some(LONG)), Ok(json!(1)));
    assert_eq!(fs[1].result(Some(LONG)), Ok(json!(2)));
}

// CPython: test_processes_terminate (workers gone after shutdown)
#[test]
fn test_processes_terminate() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(3).sink(sink).build().unwrap();
    let fs: Vec<_> = (0..9).map(|i| pool.submit(sleep(0.01 * f64::from(i))).unwrap()).collect();
    for f in &fs {
        f.result(Some(LONG)).unwrap();
    }
    let pids = seen.started_pids();
    assert!(pids.iter().all(|&p| alive(p)), "workers idle between tasks stay up");
    pool.shutdown(true, false);
    assert!(pool.worker_pids().is_empty());
    for p in pids {
        assert!(!alive(p), "worker {p} is still alive after shutdown(wait=True)");
    }
    let exits = seen.drain().iter().filter(|o| matches!(o, Observation::WorkerExited { .. })).count();
    assert_eq!(exits, seen.started_pids().len(), "every worker's exit is reported");
}

// ---------------------------------------------------------------------------------------
// test_init.py [B]
// ---------------------------------------------------------------------------------------

// CPython: test_initializer (it runs in every worker before that worker's first task)
#[test]
fn test_initializer() {
    let dir = scratch("init");
    let file = dir.join("initialized");
    let (sink, mut seen) = Seen::new();
    // The initializer records its worker's pid; each task succeeds only if its own
    // worker's pid is already there.
    // A command runs under a supervisor: its worker is the nearest ancestor that is one.
    let worker = "w=$PPID; until tr '\\0' ' ' < /proc/$w/cmdline | grep -q '^[^ ]* __futuretop_[w]orker'; do w=$(cut -d' ' -f4 /proc/$w/stat); done";
    let pool =
        builder(2).initializer(sh(&format!("{worker}; echo $w >> {}", file.display()))).sink(sink).build().unwrap();
    let check = format!("{worker}; grep -qx \"$w\" {} && sleep 0.3", file.display());
    let fs: Vec<_> = (0..2).map(|_| pool.submit(sh(&check)).unwrap()).collect();
    for f in &fs {
        f.result(Some(LONG)).unwrap();
    }
    let task_pids: BTreeSet<u32> = fs.iter().map(|f| seen.pid_of(f.id())).collect();
    assert_eq!(task_pids.len(), 2, "both workers ran a task");
    let init_pids: Vec<u32> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(init_pids.len(), 2, "the initializer ran once per worker: {init_pids:?}");
    assert_eq!(init_pids.into_iter().collect::<BTreeSet<_>>(), task_pids);
    let _ = std::fs::remove_dir_all(dir);
}

// CPython: test_initializer (FailingInitializerMixin: every future BrokenProcessPool,
// later submits refused, the initializer's error reported)
#[test]
fn test_initializer_failing() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(2).initializer(fail("error in initializer")).sink(sink).build().unwrap();
    let fs: Vec<_> = (0..5).map(|i| pool.submit(pow(2, i)).unwrap()).collect();
    for f in &fs {
        let b = broken(f);
        assert!(b.reason.contains("error in initializer"), "{}", b.reason);
        assert!(b.reason.contains("initializer failed"), "{}", b.reason);
    }
    until("the pool is broken", || pool.broken().is_some());
    assert!(matches!(pool.submit(pow(2, 8)), Err(SubmitError::Broken(_))));
    seen.until("PoolBroken names the initializer's error", |s| {
        s.iter().any(|o| matches!(o, Observation::PoolBroken { error, .. } if error.contains("error in initializer")))
    });
}

// ---------------------------------------------------------------------------------------
// test_process_pool.py [P]
// ---------------------------------------------------------------------------------------

// CPython: test_killed_child (a worker killed by a signal: BrokenProcessPool for the
// running and the pending futures, later submits refused; beyond Python, the error names
// the worker's pid, the signal and the task)
#[test]
fn test_killed_child() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).sink(sink).build().unwrap();
    let running = pool.submit_named(Some("sleeper"), sleep(30.0)).unwrap();
    let pending: Vec<_> = (0..3).map(|i| pool.submit(pow(2, i)).unwrap()).collect();
    until("the task runs", || running.running());
    let pid = pool.worker_pids()[0];
    sigkill(pid);
    let b = broken(&running);
    assert!(b.reason.contains(&format!("pid {pid}")), "{}", b.reason);
    assert!(b.reason.contains("SIGKILL"), "{}", b.reason);
    assert!(b.reason.contains("'sleeper'"), "{}", b.reason);
    for f in &pending {
        assert_eq!(broken(f), b, "the pending futures get the same error");
    }
    assert_eq!(pool.submit(pow(2, 8)).err(), Some(SubmitError::Broken(b.clone())));
    assert_eq!(pool.broken(), Some(b));
    seen.until("the worker's exit is reported with the signal", |s| {
        s.iter().any(|o| {
            matches!(o, Observation::WorkerExited { pid: Some(p), status, .. } if *p == pid && status.contains("SIGKILL"))
        })
    });
    assert!(!alive(pid));
}

// CPython: test_map_chunksize (several chunk sizes, same results; 0 rejected)
#[test]
fn test_map_chunksize() {
    let pool = builder(2).build().unwrap();
    let items: Vec<Value> =
        (0..40i64).map(|i| serde_json::to_value(Builtin::Pow(builtins::Pow { base: i, exp: 2 })).unwrap()).collect();
    let expected: Vec<Value> = (0..40i64).map(|i| json!(i * i)).collect();
    for chunksize in [1, 2, 3, 7, 40, 100] {
        let got: Vec<Value> =
            pool.map(BUILTIN_CALL, items.clone(), Some(LONG), chunksize).unwrap().map(Result::unwrap).collect();
        assert_eq!(got, expected, "chunksize {chunksize}");
    }
    assert!(matches!(pool.map(BUILTIN_CALL, items.clone(), None, 0), Err(SubmitError::ZeroChunksize)));
    assert!(matches!(
        pool.map_calls(vec![pow(1, 1)], MapOptions { chunksize: 0, ..MapOptions::default() }),
        Err(SubmitError::ZeroChunksize)
    ));
}

// CPython: test_map_chunksize (a chunk is one work item, Python's `_process_chunk`: one
// future, one message, its items run in order on one worker)
#[test]
fn test_map_chunksize_batches_calls() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).sink(sink).build().unwrap();
    let items: Vec<Value> =
        (0..12i64).map(|i| serde_json::to_value(Builtin::Pow(builtins::Pow { base: i, exp: 1 })).unwrap()).collect();
    let got: Vec<Value> = pool.map(BUILTIN_CALL, items.clone(), Some(LONG), 5).unwrap().map(Result::unwrap).collect();
    assert_eq!(got, (0..12i64).map(|i| json!(i)).collect::<Vec<_>>());
    let order: Vec<(bool, u64)> = seen
        .drain()
        .iter()
        .filter_map(|o| match o {
            Observation::Running { id, .. } => Some((true, id.0)),
            Observation::Finished { id, .. } => Some((false, id.0)),
            _ => None,
        })
        .collect();
    // Three chunks (5, 5 and 2 items), each a future that runs and finishes once.
    let pattern: Vec<bool> = order.iter().map(|(r, _)| *r).collect();
    assert_eq!(pattern, [true, false].repeat(3), "{order:?}");
    // With chunksize 1, each call is sent after the previous one finished.
    seen.all.clear();
    let _: Vec<_> = pool.map(BUILTIN_CALL, items, Some(LONG), 1).unwrap().collect();
    let pattern: Vec<bool> = seen
        .drain()
        .iter()
        .filter_map(|o| match o {
            Observation::Running { .. } => Some(true),
            Observation::Finished { .. } => Some(false),
            _ => None,
        })
        .collect();
    assert_eq!(pattern, [true, false].repeat(12));
}

// CPython: test_traceback (the worker's error detail reaches the parent, with its type)
#[test]
fn test_traceback() {
    let gates = Gates::default();
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let f = pool.submit(fail("This is a test exception with some context")).unwrap();
    assert_eq!(
        f.exception(Some(LONG)),
        Ok(Some(Exception::Task { message: "This is a test exception with some context".into(), panicked: false }))
    );
    assert_eq!(f.exception(Some(LONG)).unwrap().unwrap().type_name(), "TaskError");
    // A worker task's wait that times out raises TimeoutError, the type intact across the pipe.
    let f = pool.submit(call(&Builtin::WaitOn(builtins::WaitOn { task: 9, timeout: Some(0.05) }))).unwrap();
    assert!(matches!(f.exception(Some(LONG)), Ok(Some(Exception::Timeout(_)))), "{:?}", f.exception(None));
    // A command's failure carries its status and last line.
    let f = pool.submit(sh("echo the last words >&2; exit 7")).unwrap();
    match f.exception(Some(LONG)) {
        Ok(Some(Exception::CommandFailed(m))) => {
            assert!(m.contains("exited with status 7") && m.contains("the last words"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

// CPython: test_max_tasks_per_child (pids change after N tasks)
#[test]
fn test_max_tasks_per_child() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).max_tasks_per_child(3).sink(sink).build().unwrap();
    let mut pids = Vec::new();
    for i in 0..7 {
        let f = pool.submit(pow(2, i)).unwrap();
        f.result(Some(LONG)).unwrap();
        pids.push(seen.pid_of(f.id()));
        assert!(pool.worker_pids().len() <= 1);
    }
    let original_pid = pids[0];
    // The worker pid remains the same as the worker could be reused.
    assert_eq!(&pids[..3], &[original_pid; 3]);
    // A new worker is spawned, while the previous was reaped.
    assert_ne!(pids[3], original_pid);
    assert_eq!(&pids[3..6], &[pids[3]; 3]);
    assert_ne!(pids[6], pids[3]);
    assert!(!alive(original_pid));
    seen.until("the retired worker's exit is reported", |s| {
        s.iter().any(|o| {
            matches!(o, Observation::WorkerExited { pid: Some(p), status, .. }
                if *p == original_pid && status.contains("max_tasks_per_child"))
        })
    });
    assert_eq!(seen.started_pids().len(), 3);
}

// CPython: test_max_tasks_early_shutdown
#[test]
fn test_max_tasks_early_shutdown() {
    let pool = builder(3).max_tasks_per_child(1).build().unwrap();
    let futures: Vec<_> = (0..6).map(|i| pool.submit(pow(i, 2)).unwrap()).collect();
    within("shutdown", move || pool.shutdown(true, false));
    for (i, f) in (0i64..).zip(&futures) {
        assert_eq!(f.result(Some(Duration::ZERO)), Ok(json!(i * i)));
    }
}

// CPython: test_force_shutdown_workers and test_force_shutdown_workers_stops_pool [3.14]
// (terminate_workers sends SIGTERM, kill_workers SIGKILL, after shutdown(cancel_futures):
// queued futures end cancelled, running ones BrokenProcessPool, a later submit is refused
// as after shutdown; nothing hangs, no process is left)
#[test]
fn test_force_shutdown_workers() {
    for (terminate, signal) in [(true, "SIGTERM"), (false, "SIGKILL")] {
        let pool = builder(2).build().unwrap();
        let running: Vec<_> = (0..2).map(|_| pool.submit(sleep(30.0)).unwrap()).collect();
        let pending: Vec<_> = (0..4).map(|_| pool.submit(sleep(30.0)).unwrap()).collect();
        until("both workers run", || running.iter().all(Future::running));
        let pids = pool.worker_pids();
        assert_eq!(pids.len(), 2);
        let start = Instant::now();
        if terminate {
            pool.terminate_workers();
        } else {
            pool.kill_workers();
        }
        assert_eq!(pool.submit(pow(2, 2)).err(), Some(SubmitError::Shutdown), "{signal}");
        for f in &pending {
            assert_eq!(f.result(Some(LONG)), Err(FutureError::Cancelled(futuretop_engine::CancelledError)), "{signal}");
        }
        for f in &running {
            let b = broken(f);
            assert!(b.reason.contains(&format!("killed by signal {signal}")), "{signal}: {}", b.reason);
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        until("the workers are gone", || pids.iter().all(|&p| !alive(p)));
        assert_eq!(pool.broken(), None, "shut down, not broken");
        within("shutdown after a forced one", move || pool.shutdown(true, false));
    }
}

// CPython: test_force_shutdown_workers on an idle pool (the workers go; nothing was running)
#[test]
fn test_force_shutdown_idle_workers() {
    let pool = builder(1).build().unwrap();
    assert_eq!(pool.submit(pow(3, 2)).unwrap().result(Some(LONG)), Ok(json!(9)));
    let pids = pool.worker_pids();
    pool.terminate_workers();
    until("the idle worker is gone", || pids.iter().all(|&p| !alive(p)));
    assert_eq!(pool.submit(pow(3, 2)).err(), Some(SubmitError::Shutdown));
}

// map and map_with: the iterator outlives the borrow of the pool (as the thread pool's),
// and buffersize holds chunks back.
#[test]
fn test_map_buffersize_counts_chunks_and_the_iterator_is_owned() {
    fn owned<T: 'static>(t: T) -> T {
        t
    }
    let pool = builder(2).build().unwrap();
    let items: Vec<Value> =
        (0..10).map(|i| serde_json::to_value(Builtin::Pow(builtins::Pow { base: i, exp: 2 })).unwrap()).collect();
    let options = MapOptions { timeout: Some(LONG), chunksize: 3, buffersize: Some(2) };
    let it = owned(pool.map_with(BUILTIN_CALL, items, options).unwrap());
    // Two chunks of three are submitted ahead, no more: a future each, as Python's.
    assert_eq!(it.pending_futures().count(), 2);
    let got: Vec<Value> = it.map(Result::unwrap).collect();
    assert_eq!(got, (0..10).map(|i| json!(i * i)).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// test_deadlock.py [P]: failure modes that must never hang
// ---------------------------------------------------------------------------------------

// CPython: test_error_at_task_unpickle (arguments the worker cannot decode into the call:
// that future's error, the pool goes on)
#[test]
fn test_error_at_task_unpickle() {
    let pool = builder(1).build().unwrap();
    let f = pool.submit(ProcessCall::new(BUILTIN_CALL, json!({"Pow": {"base": "two"}}))).unwrap();
    match f.exception(Some(LONG)) {
        Ok(Some(Exception::Task { message, .. })) => assert!(message.contains("malformed"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.submit(pow(2, 2)).unwrap().result(Some(LONG)), Ok(json!(4)));
}

// CPython: test_error_at_task_unpickle (a call name the worker has not registered: the
// analogue of a function the child cannot import)
#[test]
fn test_error_at_task_unpickle_unknown_callable() {
    let pool = builder(1).build().unwrap();
    let f = pool.submit(ProcessCall::new("no.such.callable", Value::Null)).unwrap();
    match f.exception(Some(LONG)) {
        Ok(Some(Exception::Task { message, .. })) => {
            assert!(message.contains("no callable named 'no.such.callable'"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(pool.broken().is_none());
    assert_eq!(pool.submit(pow(3, 2)).unwrap().result(Some(LONG)), Ok(json!(9)));
}

// CPython: test_crash_during_func_exec_on_worker
#[test]
fn test_crash_during_func_exec_on_worker() {
    let pool = builder(2).build().unwrap();
    let f = pool.submit_named(Some("crasher"), call(&Builtin::Crash(builtins::Crash))).unwrap();
    let b = broken(&f);
    assert!(b.reason.contains("was killed by signal SIGKILL") && b.reason.contains("'crasher'"), "{}", b.reason);
    assert!(matches!(pool.submit(pow(1, 1)), Err(SubmitError::Broken(_))));
}

// CPython: test_exit_during_func_exec_on_worker
#[test]
fn test_exit_during_func_exec_on_worker() {
    let pool = builder(2).build().unwrap();
    let f = pool.submit_named(Some("exiter"), call(&Builtin::Exit(builtins::Exit { code: 3 }))).unwrap();
    let others: Vec<_> = (0..3).map(|_| pool.submit(sleep(30.0)).unwrap()).collect();
    let b = broken(&f);
    assert!(b.reason.contains("exited with status 3") && b.reason.contains("'exiter'"), "{}", b.reason);
    for o in &others {
        broken(o);
    }
}

// CPython: test_error_during_func_exec_on_worker
#[test]
fn test_error_during_func_exec_on_worker() {
    let pool = builder(1).build().unwrap();
    let f = pool.submit(fail("error during func")).unwrap();
    assert_eq!(f.exception(Some(LONG)), Ok(Some(Exception::task("error during func"))));
    assert!(pool.broken().is_none());
}

// CPython: test_shutdown_deadlock (shutdown while a worker crashes: no hang)
#[test]
fn test_shutdown_deadlock() {
    let pool = builder(2).build().unwrap();
    let f = pool.submit(call(&Builtin::Crash(builtins::Crash))).unwrap();
    within("shutdown while crashing", move || pool.shutdown(true, false));
    broken(&f);
}

// CPython: test_shutdown_deadlock_pickle (shutdown(wait=False), then the task fails: the
// error still reaches the future, nothing hangs)
#[test]
fn test_shutdown_deadlock_pickle() {
    let pool = builder(2).build().unwrap();
    let f = pool.submit(fail("failed after shutdown")).unwrap();
    pool.shutdown(false, false);
    assert_eq!(f.exception(Some(LONG)), Ok(Some(Exception::task("failed after shutdown"))));
    within("the final shutdown", move || drop(pool));
}

// CPython: test_crash_big_data (a result far larger than a pipe buffer round-trips; a
// crash right after sending one breaks the pool cleanly)
#[test]
fn test_crash_big_data() {
    let pool = builder(1).build().unwrap();
    // 50 lines of 4,000 bytes: the result (the output's tail) is ~200 KB, the argument
    // of the failing call ~300 KB; a pipe buffer holds 64 KB.
    let big = pool.submit(sh(r#"yes "$(printf "%4000s" | tr " " x)" | head -n 50"#)).unwrap();
    let v = big.result(Some(LONG)).unwrap();
    assert_eq!(v.as_str().unwrap().len(), 50 * 4001 - 1);
    let message = "y".repeat(300_000);
    let f = pool.submit(fail(&message)).unwrap();
    assert_eq!(f.exception(Some(LONG)), Ok(Some(Exception::task(message))));
    // One message holding a big result and then a crash (a chunk of calls with a future
    // each, as the runner submits a `chunksize:` map's).
    let chunk = vec![(None, fail(&"z".repeat(200_000))), (None, call(&Builtin::Crash(builtins::Crash)))];
    let fs = pool.submit_chunk(chunk).unwrap();
    match fs[0].exception(Some(LONG)) {
        Ok(Some(Exception::Task { message, .. })) => assert_eq!(message.len(), 200_000),
        other => panic!("{:?}", other.map_err(|e| e.to_string())),
    }
    assert!(matches!(fs[1].exception(Some(LONG)), Ok(Some(Exception::Broken(_)))));
    until("the pool breaks", || pool.broken().is_some());
}

// CPython: test_gh105829_should_not_deadlock_if_wakeup_pipe_full (many submits in a
// burst while workers run: nothing blocks the submitter, everything completes)
#[test]
fn test_gh105829_should_not_deadlock_if_wakeup_pipe_full() {
    let pool = builder(2).build().unwrap();
    let fs = within("a burst of submits", move || {
        let fs: Vec<_> = (0..2000).map(|i| pool.submit(pow(i % 50, 2)).unwrap()).collect();
        pool.shutdown(true, false);
        fs
    });
    for (i, f) in (0i64..).zip(&fs) {
        assert_eq!(f.result(Some(Duration::ZERO)), Ok(json!((i % 50) * (i % 50))));
    }
}

// ---------------------------------------------------------------------------------------
// Extensions (documented as such): kill, process groups, waits from worker tasks
// ---------------------------------------------------------------------------------------

/// `Future::kill` on a running process task: it ends `Killed`, its worker is replaced,
/// the pool stays healthy.
#[test]
fn extension_kill_running_process_task() {
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).sink(sink).build().unwrap();
    let f = pool.submit(sleep(30.0)).unwrap();
    let queued = pool.submit(pow(2, 5)).unwrap();
    until("the task runs", || f.running());
    let pid = pool.worker_pids()[0];
    assert!(pool.submit(pow(1, 1)).is_ok());
    assert!(f.kill(), "kill of a running process task");
    match f.exception(Some(LONG)) {
        Ok(Some(Exception::Killed(m))) => assert!(m.contains(&format!("pid {pid}")), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(queued.result(Some(LONG)), Ok(json!(32)), "the queue goes on, on a fresh worker");
    assert!(pool.broken().is_none());
    assert_eq!(pool.submit(pow(2, 3)).unwrap().result(Some(LONG)), Ok(json!(8)));
    let new_pid = seen.pid_of(queued.id());
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    assert!(!f.kill() && !queued.kill(), "kill of a finished task does nothing");
    // cancel keeps Python's meaning: a running task cannot be cancelled.
    let g = pool.submit(sleep(30.0)).unwrap();
    until("the task runs", || g.running());
    assert!(!g.cancel());
    assert!(g.kill());
    assert!(matches!(g.exception(Some(LONG)), Ok(Some(Exception::Killed(_)))));
}

/// Killing a running command kills its whole process group: the children it started too.
#[test]
fn extension_kill_command_kills_its_process_group() {
    let pool = builder(1).build().unwrap();
    let f = pool.submit(sh("sleep 1000.1234 & sleep 1000.1235 & wait")).unwrap();
    until("the command's children run", || {
        processes_exact("sleep 1000.1234").len() == 1 && processes_exact("sleep 1000.1235").len() == 1
    });
    let children = [processes_exact("sleep 1000.1234")[0], processes_exact("sleep 1000.1235")[0]];
    assert!(f.kill());
    assert!(matches!(f.exception(Some(LONG)), Ok(Some(Exception::Killed(_)))));
    until("the command's children are gone", || children.iter().all(|&p| !alive(p)));
    assert_eq!(pool.submit(pow(5, 2)).unwrap().result(Some(LONG)), Ok(json!(25)));
}

/// A worker task's wait on another future is made by the parent, reported as that
/// task's wait, and can be broken (the deadlock breaker's `DeadlockError`).
#[test]
fn extension_wait_from_a_worker_is_observed_and_breakable() {
    let gates = Gates::default();
    let (sink, mut seen) = Seen::new();
    let pool = builder(2).on_request(gates.hook()).sink(sink).build().unwrap();
    let waiter = pool.submit(blocked(1)).unwrap();
    let target = gates.get(1).id();
    seen.until("the worker task's wait is observed", |s| {
        s.iter().any(
            |o| matches!(o, Observation::WaitStart { waiter: w, target: t, .. } if *w == waiter.id() && *t == target),
        )
    });
    assert!(waiter.break_wait());
    match waiter.exception(Some(LONG)) {
        Ok(Some(e)) => assert_eq!(e.type_name(), "DeadlockError", "{e}"),
        other => panic!("{other:?}"),
    }
    seen.until("the wait's end is observed", |s| {
        s.iter().any(|o| matches!(o, Observation::WaitEnd { waiter: w, .. } if *w == waiter.id()))
    });
    // The worker survived: the break ended the task, not the process.
    assert!(pool.broken().is_none());
    let second = pool.submit(blocked(2)).unwrap();
    gates.open(2, json!("answered"));
    assert_eq!(second.result(Some(LONG)), Ok(json!("answered")));
    let finished = seen
        .drain()
        .iter()
        .any(|o| matches!(o, Observation::Finished { id, outcome: Outcome::Done } if *id == second.id()));
    assert!(finished);
}

/// Killing a worker task that is blocked in a wait ends that wait too: the parent's
/// helper thread answering the request does not stay blocked on the target.
#[test]
fn extension_kill_a_waiting_process_task_ends_its_wait() {
    let gates = Gates::default();
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).on_request(gates.hook()).sink(sink).build().unwrap();
    let waiter = pool.submit(blocked(1)).unwrap();
    seen.until("the wait starts", |s| {
        s.iter().any(|o| matches!(o, Observation::WaitStart { waiter: w, .. } if *w == waiter.id()))
    });
    assert!(waiter.kill());
    assert!(matches!(waiter.exception(Some(LONG)), Ok(Some(Exception::Killed(_)))));
    // Well before the hook's own 20 s bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ended =
        |s: &[Observation]| s.iter().any(|o| matches!(o, Observation::WaitEnd { waiter: w, .. } if *w == waiter.id()));
    while !ended(seen.drain()) {
        assert!(Instant::now() < deadline, "the killed task's wait goes on in the parent");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(pool.broken().is_none());
    assert_eq!(pool.submit(pow(2, 2)).unwrap().result(Some(LONG)), Ok(json!(4)));
}

/// A `kill` of a running `map` chunk ends that chunk (its items share the worker that is
/// killed), not the chunks queued behind it: those run on the replacement worker, and can
/// still be cancelled while they wait.
#[test]
fn extension_a_kill_in_a_map_chunk_spares_the_chunks_behind_it() {
    let pool = builder(1).build().unwrap();
    let items = [
        serde_json::to_value(Builtin::Sleep(builtins::Sleep { secs: 30.0 })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 1 })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 2 })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 3 })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 4 })).unwrap(),
        serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 5 })).unwrap(),
    ];
    let mut it = pool.map(BUILTIN_CALL, items, Some(LONG), 2).unwrap();
    let fs: Vec<Future<Value>> = it.pending_futures().cloned().collect();
    assert_eq!(fs.len(), 3, "one future a chunk of two");
    until("the first chunk runs", || fs[0].running());
    // The second chunk (items 2 and 3) waits in the queue: still pending.
    assert!(!fs[1].running() && !fs[1].done());
    assert!(fs[1].cancel(), "a queued chunk of a map can be cancelled");
    assert!(fs[0].kill());
    assert!(matches!(fs[0].exception(Some(LONG)), Ok(Some(Exception::Killed(_)))));
    // The chunk behind runs on the replacement worker.
    assert_eq!(fs[2].result(Some(LONG)), Ok(json!([16, 32])));
    assert!(fs[1].cancelled());
    assert!(pool.broken().is_none());
    // The iteration raises the killed chunk's error at its first item, and ends.
    assert!(matches!(it.next(), Some(Err(FutureError::Failed(Exception::Killed(_))))));
    assert!(it.next().is_none());
}

/// As Python's `_process_chunk`: an item's error fails its whole chunk; the iteration
/// yields the chunks before it, then raises the error at the failed chunk's first item.
#[test]
fn test_map_chunk_error_fails_the_chunk_and_raises_at_its_first_item() {
    let pool = builder(2).build().unwrap();
    let items: Vec<Value> =
        [pow(2, 1), pow(2, 2), pow(2, 3), fail("item 3"), pow(2, 5), pow(2, 6)].into_iter().map(|c| c.args).collect();
    let mut it = pool.map(BUILTIN_CALL, items, Some(LONG), 2).unwrap();
    assert_eq!(it.next(), Some(Ok(json!(2))));
    assert_eq!(it.next(), Some(Ok(json!(4))));
    // Item 2 succeeded, but shares its chunk with item 3.
    match it.next() {
        Some(Err(FutureError::Failed(Exception::Task { message, .. }))) => assert_eq!(message, "item 3"),
        other => panic!("expected the chunk's error, got {other:?}"),
    }
    assert_eq!(it.next(), None);
}

// ---------------------------------------------------------------------------------------
// Calls sent ahead to a busy worker (issue 15: batch the sends at chunksize 1)
// ---------------------------------------------------------------------------------------

/// Keeps a free worker busy on gate 3, queues a call blocked on gate 1 and `n` commands
/// that each create a file in `dir`, then opens gate 3: the worker's slot sends them all
/// at once as the first call ends. Returns them once the worker runs the first and holds
/// the others, sent ahead.
fn blocked_then_ahead(
    pool: &ProcessPoolExecutor,
    gates: &Gates,
    dir: &std::path::Path,
    n: usize,
) -> (Future<Value>, Vec<Future<Value>>) {
    let lead = pool.submit(blocked(3)).unwrap();
    until("the worker asks for gate 3", || gates.0.lock().unwrap().contains_key(&3));
    let first = pool.submit(blocked(1)).unwrap();
    let behind: Vec<Future<Value>> =
        (0..n).map(|i| pool.submit(sh(&format!("touch {}/{i}", dir.display()))).unwrap()).collect();
    gates.open(3, json!(3));
    assert_eq!(lead.result(Some(LONG)), Ok(json!(3)));
    until("the first call runs in the worker", || gates.0.lock().unwrap().contains_key(&1));
    until("the calls behind are sent ahead to the busy worker", || first.running() && pool.calls_ahead() == n);
    (first, behind)
}

/// Starts both workers of a two-worker pool, then has one of them block on gate 2 (its
/// request is in); returns that call.
fn one_of_two_workers_on_gate_2(pool: &ProcessPoolExecutor, gates: &Gates) -> Future<Value> {
    let warm: Vec<Future<Value>> = (0..2).map(|_| pool.submit(sleep(0.2)).unwrap()).collect();
    for f in &warm {
        assert!(f.result(Some(LONG)).is_ok());
    }
    let other = pool.submit(blocked(2)).unwrap();
    until("the worker asks for gate 2", || gates.0.lock().unwrap().contains_key(&2));
    other
}

/// A call sent ahead is still pending: cancelling it takes it back from the worker, which
/// never runs it, while the call before it still runs; the others behind run in order.
#[test]
fn extension_a_call_sent_ahead_is_pending_and_a_cancel_takes_it_back() {
    let gates = Gates::default();
    let dir = scratch("ahead-cancel");
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let (first, behind) = blocked_then_ahead(&pool, &gates, &dir, 5);
    assert!(behind.iter().all(|f| f.state() == futuretop_engine::FutureState::Pending), "sent ahead, not started");
    assert!(behind[1].cancel(), "a call the worker holds and has not started can be cancelled");
    assert!(behind[3].cancel());
    assert!(behind[3].cancel(), "cancelled already: true again");
    assert_eq!(pool.calls_ahead(), 3);
    gates.open(1, json!("go"));
    assert_eq!(first.result(Some(LONG)), Ok(json!("go")));
    for i in [0, 2, 4] {
        assert!(behind[i].result(Some(LONG)).is_ok(), "call {i}");
        assert!(dir.join(i.to_string()).exists(), "call {i} ran");
    }
    for i in [1, 3] {
        assert!(behind[i].cancelled());
        assert!(!dir.join(i.to_string()).exists(), "cancelled call {i} never ran");
    }
    assert_eq!(pool.calls_ahead(), 0);
    assert!(!behind[0].cancel(), "a finished call cannot be cancelled");
}

/// Killing the running call kills its worker; the calls sent ahead behind it had not
/// started: they run on the next worker, and none of them fails.
#[test]
fn extension_a_kill_spares_the_calls_sent_ahead_behind_it() {
    let gates = Gates::default();
    let dir = scratch("ahead-kill");
    let (sink, mut seen) = Seen::new();
    let pool = builder(1).sink(sink).on_request(gates.hook()).build().unwrap();
    let (first, behind) = blocked_then_ahead(&pool, &gates, &dir, 3);
    let pid = pool.worker_pids()[0];
    assert!(first.kill());
    assert!(matches!(first.exception(Some(LONG)), Ok(Some(Exception::Killed(_)))));
    for (i, f) in behind.iter().enumerate() {
        assert!(f.result(Some(LONG)).is_ok(), "call {i} behind the killed one: {:?}", f.result(Some(LONG)));
        assert!(dir.join(i.to_string()).exists());
        assert_ne!(seen.pid_of(f.id()), pid, "it ran on the next worker");
    }
    assert!(pool.broken().is_none());
    assert!(!alive(pid));
}

/// A worker blocked on a long call holds calls sent ahead: a worker with nothing to do
/// takes them back and runs them, so none waits for the long call (as with Python's
/// shared call queue).
#[test]
fn extension_an_idle_worker_takes_the_calls_waiting_behind_a_long_one() {
    let gates = Gates::default();
    let dir = scratch("ahead-steal");
    let pool = builder(2).on_request(gates.hook()).build().unwrap();
    // One worker blocks on gate 2; the other takes a call blocked on gate 1, and the
    // calls behind are sent ahead to it.
    let other = one_of_two_workers_on_gate_2(&pool, &gates);
    let (first, behind) = blocked_then_ahead(&pool, &gates, &dir, 6);
    gates.open(2, json!(2));
    assert_eq!(other.result(Some(LONG)), Ok(json!(2)));
    for (i, f) in behind.iter().enumerate() {
        assert!(f.result(Some(LONG)).is_ok(), "call {i} ran while the first still blocks");
    }
    assert!(first.running(), "gate 1 is still shut");
    assert_eq!(pool.calls_ahead(), 0);
    gates.open(1, json!(1));
    assert_eq!(first.result(Some(LONG)), Ok(json!(1)));
}

/// A cancel from a done-callback, which runs on the slot's own thread, of a call sent
/// ahead to that slot's worker: no deadlock (the call is treated as started: it runs).
#[test]
fn extension_a_cancel_from_the_slots_own_thread_does_not_deadlock() {
    let gates = Gates::default();
    let dir = scratch("ahead-own-thread");
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let (first, behind) = blocked_then_ahead(&pool, &gates, &dir, 2);
    let target = behind[1].clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    first.add_done_callback(move |_| {
        let _ = tx.send(target.cancel());
    });
    gates.open(1, json!(1));
    let cancelled = rx.recv_timeout(LONG).expect("the callback ran and its cancel returned");
    assert_eq!(behind[1].cancelled(), cancelled);
    if !cancelled {
        assert!(behind[1].result(Some(LONG)).is_ok());
    }
    assert!(behind[0].result(Some(LONG)).is_ok());
}

/// A kill of a call its worker holds and has not started (a chunk's later call: all of a
/// chunk is running once sent): the worker drops it, and it ends `Killed` without running,
/// while the call before it goes on in the same worker.
#[test]
fn extension_a_kill_of_a_call_not_started_in_its_worker_drops_it_unrun() {
    let gates = Gates::default();
    let dir = scratch("doomed");
    let pool = builder(1).on_request(gates.hook()).build().unwrap();
    let touch = sh(&format!("touch {}/x", dir.display()));
    let fs = pool.submit_chunk(vec![(None, blocked(1)), (None, touch)]).unwrap();
    until("the first call runs in the worker", || gates.0.lock().unwrap().contains_key(&1));
    let pid = pool.worker_pids()[0];
    assert!(fs[1].running(), "a chunk's calls are all running once sent");
    assert!(fs[1].kill());
    gates.open(1, json!(1));
    assert_eq!(fs[0].result(Some(LONG)), Ok(json!(1)), "the call the worker ran goes on");
    match fs[1].exception(Some(LONG)) {
        Ok(Some(Exception::Killed(m))) => assert!(m.contains("before it started"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!dir.join("x").exists(), "the killed call never ran");
    assert!(pool.broken().is_none());
    assert_eq!(pool.submit(pow(2, 3)).unwrap().result(Some(LONG)), Ok(json!(8)));
    assert_eq!(pool.worker_pids(), vec![pid], "the same worker goes on");
}

/// A worker with nothing to do takes back the calls waiting behind a long one in the
/// order they were submitted (as Python's shared call queue hands them out), not the last
/// first: a later call never overtakes an earlier one that waits.
#[test]
fn extension_calls_taken_back_run_in_submission_order() {
    let gates = Gates::default();
    let dir = scratch("ahead-order");
    let (sink, mut seen) = Seen::new();
    let pool = builder(2).sink(sink).on_request(gates.hook()).build().unwrap();
    let other = one_of_two_workers_on_gate_2(&pool, &gates);
    let (first, behind) = blocked_then_ahead(&pool, &gates, &dir, 3);
    gates.open(2, json!(2));
    assert_eq!(other.result(Some(LONG)), Ok(json!(2)));
    for f in &behind {
        assert!(f.result(Some(LONG)).is_ok());
    }
    let ids: Vec<futuretop_engine::FutureId> = behind.iter().map(Future::id).collect();
    let started: Vec<futuretop_engine::FutureId> = seen
        .drain()
        .iter()
        .filter_map(|o| match o {
            Observation::Running { id, .. } if ids.contains(id) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(started, ids, "taken back and run in the order submitted");
    gates.open(1, json!(1));
    assert_eq!(first.result(Some(LONG)), Ok(json!(1)));
}
