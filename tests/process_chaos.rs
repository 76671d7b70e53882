//! Chaos test of `ProcessPoolExecutor`: 1,000 tasks on 2 workers while a helper thread
//! kills worker processes at random, then a walk of `/proc` for anything left behind.
//!
//! Two kinds of chaos, several rounds each:
//! - **SIGKILL from outside** (an OOM kill, say). As in Python, the first death breaks the
//!   pool: the running calls and everything queued end with `BrokenProcessPool`. The
//!   property is Python's "never hang": every future reaches a final state within a
//!   generous deadline, each either done (with the right value) or `BrokenProcessPool`.
//!   Kills land anywhere: in a call, between calls, while a worker is starting, in the
//!   middle of a `map` chunk.
//! - **`Future::kill`** (the extension): the pool must stay healthy, a fresh worker
//!   replacing each killed one; only a future whose `kill()` returned true may end
//!   `Killed`, every other one ends done with its value.
//!
//! Afterwards no worker process of this test process may survive: no live process whose
//! command line holds `__futuretop_worker` and whose `FUTURETOP_PARENT_PID` is our pid.
//! The random seed is printed; set `CHAOS_SEED` to replay one.

// Helpers are test code too: a failed unwrap is a failed test (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use futuretop::builtins::{self, Builtin};
use futuretop::tasks::BUILTIN_CALL;
use futuretop_engine::wait;
use futuretop_engine::Exception;
use futuretop_engine::Future;
use futuretop_engine::FutureError;
use futuretop_engine::Observation;
use futuretop_engine::ProcessCall;
use futuretop_engine::ProcessPoolExecutor;
use futuretop_engine::ReturnWhen;
use futuretop_engine::Sink;
use serde_json::{json, Value};

mod common;
use common::procs::workers_of;

const EXE: &str = env!("CARGO_BIN_EXE_futuretop");
const TASKS: usize = 1_000;
/// Generous: a round takes a second or two.
const DEADLINE: Duration = Duration::from_mins(1);

/// xorshift64*: enough randomness for choosing victims and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

fn call(b: &Builtin) -> ProcessCall {
    ProcessCall::new(BUILTIN_CALL, serde_json::to_value(b).unwrap())
}

/// Task `i`: a short sleep now and then, else `i ** 2`.
fn task(i: usize) -> (ProcessCall, Value) {
    if i.is_multiple_of(7) {
        (call(&Builtin::Sleep(builtins::Sleep { secs: 0.002 })), Value::Null)
    } else {
        let base = i64::try_from(i).unwrap();
        (call(&Builtin::Pow(builtins::Pow { base, exp: 2 })), json!(base * base))
    }
}

fn pool(sink: Arc<dyn Sink>) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder().program(EXE).max_workers(2).name("chaos").sink(sink).build().unwrap()
}

/// Waits until every future the pool reported pending has been reported final.
#[track_caller]
fn every_pending_finished(rx: &Receiver<(Instant, Observation)>, what: &str) -> usize {
    let mut open: HashSet<u64> = HashSet::new();
    let mut total = 0;
    let deadline = Instant::now() + DEADLINE;
    loop {
        for (_, o) in rx.try_iter() {
            match o {
                Observation::Pending { id, .. } => {
                    open.insert(id.0);
                    total += 1;
                }
                Observation::Finished { id, .. } => {
                    assert!(open.remove(&id.0), "{what}: {id} finished twice, or before it was pending");
                }
                _ => {}
            }
        }
        if open.is_empty() {
            return total;
        }
        assert!(Instant::now() < deadline, "{what}: {} futures never reached a final state", open.len());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every future done within the deadline (the "never hang" property).
#[track_caller]
fn all_final(fs: &[Future<Value>], what: &str) {
    let r = wait(fs, Some(DEADLINE), ReturnWhen::AllCompleted);
    assert!(r.not_done.is_empty(), "{what}: {} of {} futures never reached a final state", r.not_done.len(), fs.len());
}

fn sigkill(pid: u32) {
    // The worker may be gone already: ESRCH is fine.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// One round of outside SIGKILLs. Returns how many kills were sent.
fn sigkill_round(rng: &mut Rng, use_map: bool) -> usize {
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Observation)>();
    let pool = Arc::new(pool(Arc::new(tx)));
    let stop = Arc::new(AtomicBool::new(false));
    let first_delay = Duration::from_micros(rng.next() % 300_000);
    let seed = rng.next() | 1;
    let killer = {
        let (pool, stop) = (Arc::clone(&pool), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Rng(seed);
            let mut kills = 0;
            std::thread::sleep(first_delay);
            while !stop.load(Ordering::SeqCst) {
                let pids = pool.worker_pids();
                if !pids.is_empty() {
                    sigkill(pids[rng.below(pids.len())]);
                    kills += 1;
                }
                std::thread::sleep(Duration::from_micros(rng.next() % 3_000));
            }
            kills
        })
    };
    let mut futures = Vec::with_capacity(TASKS);
    let mut expected = Vec::with_capacity(TASKS);
    if use_map {
        // One map, chunks of 25 calls per message; its iterator stops at the first error
        // (and cancels the rest), so the sink's record is what shows every future ended.
        let items: Vec<Value> = (0..TASKS).map(|i| task(i).0.args).collect();
        if let Ok(results) = pool.map(BUILTIN_CALL, items, Some(DEADLINE), 25) {
            for (i, r) in results.enumerate() {
                match r {
                    Ok(v) => assert_eq!(v, task(i).1),
                    Err(FutureError::Failed(Exception::Broken(_))) => break,
                    Err(e) => panic!("map item {i}: unexpected outcome: {e}"),
                }
            }
        }
    } else {
        for i in 0..TASKS {
            let (c, v) = task(i);
            match pool.submit(c) {
                Ok(f) => {
                    futures.push(f);
                    expected.push(v);
                }
                Err(e) => {
                    assert!(pool.broken().is_some(), "a refused submit on a healthy pool: {e}");
                    break;
                }
            }
        }
    }
    all_final(&futures, "SIGKILL round");
    let total = every_pending_finished(&rx, "SIGKILL round");
    assert!(total > 0);
    stop.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    for (f, v) in futures.iter().zip(&expected) {
        match f.result(Some(Duration::ZERO)) {
            Ok(got) => assert_eq!(&got, v),
            Err(FutureError::Failed(Exception::Broken(b))) => assert_eq!(b.type_name(), "BrokenProcessPool"),
            Err(FutureError::Cancelled(_)) => {}
            Err(e) => panic!("unexpected outcome: {e}"),
        }
    }
    if kills > 0 && futures.iter().any(|f| f.exception(Some(Duration::ZERO)).is_ok_and(|e| e.is_some())) {
        assert!(pool.broken().is_some(), "futures failed but the pool is not broken");
    }
    let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| panic!("the killer still holds the pool"));
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        drop(pool);
        let _ = tx.send(());
    });
    rx.recv_timeout(DEADLINE).expect("dropping a broken pool hangs");
    kills
}

/// One round of `Future::kill` on random running futures: the pool stays healthy.
fn future_kill_round(rng: &mut Rng) -> usize {
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Observation)>();
    let pool = pool(Arc::new(tx));
    let mut futures = Vec::with_capacity(TASKS);
    let mut expected = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let (c, v) = task(i);
        futures.push(pool.submit(c).unwrap());
        expected.push(v);
    }
    let kill_log: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (fs, kill_log, stop, seed) = (futures.clone(), Arc::clone(&kill_log), Arc::clone(&stop), rng.next() | 1);
        std::thread::spawn(move || {
            let mut rng = Rng(seed);
            while !stop.load(Ordering::SeqCst) {
                // Look for a running future near a random spot.
                let start = rng.below(fs.len());
                if let Some(f) = fs[start..].iter().chain(&fs[..start]).find(|f| f.running()) {
                    // Record before killing: the future may end Killed before kill() returns.
                    // A second kill of the same future may find it already dying (false).
                    let fresh = kill_log.lock().unwrap().insert(f.id().0);
                    if !f.kill() && fresh {
                        kill_log.lock().unwrap().remove(&f.id().0);
                    }
                }
                std::thread::sleep(Duration::from_micros(500 + rng.next() % 3_000));
            }
        })
    };
    all_final(&futures, "Future::kill round");
    assert_eq!(every_pending_finished(&rx, "Future::kill round"), TASKS);
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kill_log = kill_log.lock().unwrap();
    let mut n = 0;
    for (f, v) in futures.iter().zip(&expected) {
        match f.result(Some(Duration::ZERO)) {
            Ok(got) => assert_eq!(&got, v),
            Err(FutureError::Failed(Exception::Killed(m))) => {
                assert!(kill_log.contains(&f.id().0), "future {} ended Killed but was never killed: {m}", f.id());
                n += 1;
            }
            Err(e) => panic!("future {}: unexpected outcome on a healthy pool: {e}", f.id()),
        }
    }
    assert!(pool.broken().is_none(), "Future::kill broke the pool: {:?}", pool.broken());
    assert_eq!(
        pool.submit(call(&Builtin::Pow(builtins::Pow { base: 2, exp: 4 }))).unwrap().result(Some(DEADLINE)),
        Ok(json!(16))
    );
    n
}

#[test]
fn chaos_random_worker_kills_every_future_final_nothing_left_behind() {
    let seed = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        u64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % (1 << 63),
        )
        .unwrap()
            | 1
    });
    println!("CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut sigkills = 0;
    for round in 0..10 {
        sigkills += sigkill_round(&mut rng, round % 2 == 1);
    }
    let mut future_kills = 0;
    for _ in 0..3 {
        future_kills += future_kill_round(&mut rng);
    }
    println!("{sigkills} SIGKILLs, {future_kills} futures killed, in {:.1} s", start.elapsed().as_secs_f64());
    assert!(sigkills > 0, "the helper never found a worker to kill");
    assert!(future_kills > 0, "no Future::kill landed");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = workers_of(std::process::id());
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "worker processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
