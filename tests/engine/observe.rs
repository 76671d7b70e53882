//! The engine's extensions beyond Python's `concurrent.futures`: what a pool's sink is
//! told, the reported and interruptible waits a task makes on other futures
//! (`Future::kill`, `Future::break_wait`), and the engine surviving panics in tasks and
//! in done-callbacks.
//!
//! There is no CPython counterpart: Python cannot observe a pool, kill a running task or
//! break a wait. Where an extension touches a Python behaviour, the test names it:
//! the order of observations is Python's state order (PENDING, RUNNING, FINISHED, or
//! PENDING, CANCELLED); a panicking callback is Python's "a callback that raises is
//! logged and ignored; the other callbacks still run"; a panicking task is Python's
//! "exceptions from the callable are stored with `set_exception`".
//!
//! Every pool here reports to a crossbeam channel (`crate::common::cf::observed_pool`); tasks are
//! held with `crate::common::cf::Gate`s and the tests synchronise on the observations themselves
//! (a `WaitStart` says the task is blocked in its wait), never on sleeps.

use std::time::{Duration, Instant};

use crate::common::cf::{observed_pool, Arrivals, Gate, Observer, LONG, SHORT};
use crossbeam_channel::unbounded;
use futuretop_engine::checkpoint;
use futuretop_engine::current_task;
use futuretop_engine::wait;
use futuretop_engine::Exception;
use futuretop_engine::Fallible;
use futuretop_engine::Future;
use futuretop_engine::FutureError;
use futuretop_engine::FutureId;
use futuretop_engine::FutureState;
use futuretop_engine::Observation;
use futuretop_engine::Outcome;
use futuretop_engine::ReturnWhen;
use futuretop_engine::WaitOutcome;

/// Waits until `waiter` has started its `n`-th wait on `target`, and returns its timeout.
#[track_caller]
fn wait_started(observer: &mut Observer, waiter: FutureId, target: FutureId, n: usize) -> Option<Duration> {
    let is_it = move |o: &Observation| matches!(o, Observation::WaitStart { waiter: w, target: t, .. } if *w == waiter && *t == target);
    observer.wait_count(n, "WaitStart", is_it);
    match observer.seen.iter().filter(|o| is_it(o)).nth(n - 1) {
        Some(Observation::WaitStart { timeout, .. }) => *timeout,
        _ => unreachable!(),
    }
}

/// The outcomes of the ended waits of `waiter` on `target`, in order.
fn wait_ends(observer: &mut Observer, waiter: FutureId, target: FutureId) -> Vec<WaitOutcome> {
    observer
        .drain()
        .iter()
        .filter_map(|o| match o {
            Observation::WaitEnd { waiter: w, target: t, outcome } if *w == waiter && *t == target => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// A short label per lifecycle observation of one future, for order checks.
fn lifecycle(observer: &mut Observer, id: FutureId) -> Vec<String> {
    observer
        .of(id)
        .iter()
        .filter_map(|o| match o {
            Observation::Pending { .. } => Some("pending".to_owned()),
            Observation::Running { .. } => Some("running".to_owned()),
            Observation::Finished { outcome: Outcome::Done, .. } => Some("finished".to_owned()),
            Observation::Finished { outcome: Outcome::Cancelled, .. } => Some("cancelled".to_owned()),
            Observation::Finished { outcome: Outcome::Exception(e), .. } => Some(format!("raised {}", e.type_name())),
            Observation::WaitStart { .. } => Some("wait".to_owned()),
            Observation::WaitEnd { outcome, .. } => Some(format!("wait ended {outcome:?}")),
            _ => None,
        })
        .collect()
}

// Extension (no CPython test): observations follow Python's state order per future.
#[test]
fn sink_reports_pending_running_finished_in_python_order() {
    let (pool, mut observer) = observed_pool("io", 1);
    let gate = Gate::new();
    let g = gate.clone();
    let ok = pool
        .submit_named(
            Some("job"),
            Fallible(move || {
                g.wait();
                Ok::<_, Exception>(1)
            }),
        )
        .unwrap();
    let failing = pool.submit_named(Some("bad"), Fallible(|| Err::<i32, _>("no"))).unwrap();
    let cancelled = pool.submit_named(None, Fallible(|| Ok::<_, Exception>(3))).unwrap();
    assert!(cancelled.cancel());
    gate.open();
    assert_eq!(ok.result(Some(LONG)), Ok(1));
    assert!(failing.result(Some(LONG)).is_err());

    assert_eq!(lifecycle(&mut observer, ok.id()), ["pending", "running", "finished"]);
    assert_eq!(lifecycle(&mut observer, failing.id()), ["pending", "running", "raised TaskError"]);
    assert_eq!(lifecycle(&mut observer, cancelled.id()), ["pending", "cancelled"]);

    // Pending names the pool and the task; Running names the worker.
    let obs = observer.of(ok.id());
    assert!(matches!(&obs[0], Observation::Pending { pool, name, .. } if &**pool == "io" && &**name == "job"));
    let Observation::Running { worker, pid, .. } = &obs[1] else { panic!("{obs:?}") };
    assert_eq!(&**worker, "io-1");
    assert_eq!(*pid, None, "a thread worker has no pid");
    let unnamed = observer.of(cancelled.id());
    let expected = format!("task-{}", cancelled.id().0);
    assert!(matches!(&unnamed[0], Observation::Pending { name, .. } if **name == *expected));
    let Observation::Finished { outcome: Outcome::Exception(e), .. } = &observer.of(failing.id())[2] else {
        panic!("no exception outcome")
    };
    assert_eq!(*e, Exception::task("no"));
    // The worker reported itself under the same name.
    assert_eq!(
        observer.count(
            |o| matches!(o, Observation::WorkerStarted { worker, pool, .. } if &**worker == "io-1" && &**pool == "io")
        ),
        1
    );
}

// Extension (no CPython test): a task's blocking result() is reported with waiter, target, timeout.
#[test]
fn blocking_result_reports_wait_start_and_wait_end() {
    let (pool, mut observer) = observed_pool("waits", 2);
    let target = Future::<i32>::new();
    let slow = Future::<i32>::new();
    let (t, s) = (target.clone(), slow.clone());
    let waiter = pool
        .submit(move || {
            let timed_out = s.result(Some(SHORT));
            (t.result(Some(LONG)), timed_out, current_task())
        })
        .unwrap();
    // The second wait starts only after the first timed out.
    assert_eq!(wait_started(&mut observer, waiter.id(), target.id(), 1), Some(LONG));
    assert_eq!(wait_ends(&mut observer, waiter.id(), slow.id()), [WaitOutcome::TimedOut]);
    target.set_result(9).unwrap();
    let (got, timed_out, me) = waiter.result(Some(LONG)).unwrap();
    assert_eq!(got, Ok(9));
    assert!(matches!(timed_out, Err(FutureError::Timeout(_))));
    assert_eq!(me, Some(waiter.id()), "current_task() inside the task");
    assert_eq!(current_task(), None, "outside a task");

    assert_eq!(wait_ends(&mut observer, waiter.id(), target.id()), [WaitOutcome::Completed]);
    assert_eq!(
        lifecycle(&mut observer, waiter.id()),
        ["pending", "running", "wait", "wait ended TimedOut", "wait", "wait ended Completed", "finished"]
    );
    assert!(matches!(
        observer.seen.iter().find(|o| matches!(o, Observation::WaitStart { target: t, .. } if *t == slow.id())),
        Some(Observation::WaitStart { timeout: Some(t), .. }) if *t == SHORT
    ));
    // A wait made outside any task is not reported.
    let before = observer.drain().len();
    let bare = Future::<i32>::new();
    assert!(bare.result(Some(Duration::ZERO)).is_err());
    assert_eq!(observer.drain().len(), before);
}

// Extension (no CPython test): wait(ALL_COMPLETED) from a task reports one wait per target.
#[test]
fn wait_all_completed_from_a_task_reports_every_target() {
    let (pool, mut observer) = observed_pool("waitall", 2);
    let targets = [Future::<i32>::new(), Future::<i32>::new()];
    let ts = targets.clone();
    let waiter = pool.submit(move || wait(&ts, Some(LONG), ReturnWhen::AllCompleted).not_done.len()).unwrap();
    for t in &targets {
        wait_started(&mut observer, waiter.id(), t.id(), 1);
    }
    for t in &targets {
        t.set_result(1).unwrap();
    }
    assert_eq!(waiter.result(Some(LONG)), Ok(0));
    for t in &targets {
        assert_eq!(wait_ends(&mut observer, waiter.id(), t.id()), [WaitOutcome::Completed]);
    }
}

// Extension (no CPython test): Python cannot kill a running task.
#[test]
fn kill_interrupts_a_task_blocked_in_result() {
    let (pool, mut observer) = observed_pool("kill", 2);
    let target = Future::<i32>::new();
    let (tx, wait_returned) = unbounded();
    let t = target.clone();
    let victim = pool
        .submit_named(
            Some("victim"),
            Fallible(move || {
                let r = t.result(None);
                tx.send(r.clone()).unwrap();
                r // `?`-style propagation of the wait's error
            }),
        )
        .unwrap();
    assert_eq!(wait_started(&mut observer, victim.id(), target.id(), 1), None);
    assert!(victim.running());
    assert!(victim.kill());

    let r = wait_returned.recv_timeout(LONG).unwrap();
    assert!(matches!(r, Err(FutureError::Interrupted(Exception::Killed(_)))), "{r:?}");
    let end = victim.result(Some(LONG));
    assert!(matches!(end, Err(FutureError::Failed(Exception::Killed(_)))), "{end:?}");
    assert_eq!(wait_ends(&mut observer, victim.id(), target.id()), [WaitOutcome::Killed]);
    assert_eq!(lifecycle(&mut observer, victim.id()).last().unwrap(), "raised Killed");
    // The target is untouched; a finished future cannot be killed again.
    assert_eq!(target.state(), FutureState::Pending);
    assert!(!victim.kill());
    // The worker lives on.
    assert_eq!(pool.submit(|| 5).unwrap().result(Some(LONG)), Ok(5));
}

// Extension (no CPython test): `Future::kill` promises the future ends `Killed`.
#[test]
fn kill_ends_the_future_killed_whatever_the_task_returns() {
    let (pool, mut observer) = observed_pool("kill2", 1);
    let target = Future::<i32>::new();
    let t = target.clone();
    // The task turns the interruption into an error of its own, as Rust code often does.
    let victim = pool
        .submit_named(
            None,
            Fallible(move || t.result(None).map_err(|e| Exception::task(format!("could not load: {e}")))),
        )
        .unwrap();
    wait_started(&mut observer, victim.id(), target.id(), 1);
    assert!(victim.kill());
    let end = victim.result(Some(LONG));
    assert!(matches!(end, Err(FutureError::Failed(Exception::Killed(_)))), "{end:?}");

    // A task that swallows the interruption and returns a value ends killed as well.
    let t = target.clone();
    let victim = pool.submit(move || t.result(None).unwrap_or(-1)).unwrap();
    wait_started(&mut observer, victim.id(), target.id(), 1);
    assert!(victim.kill());
    let end = victim.result(Some(LONG));
    assert!(matches!(end, Err(FutureError::Failed(Exception::Killed(_)))), "{end:?}");
}

// Extension (no CPython test): cooperative kill through `checkpoint()`; cancel() stays for pending.
#[test]
fn kill_stops_a_task_polling_checkpoint_and_refuses_pending_futures() {
    let (pool, _observer) = observed_pool("checkpoint", 1);
    let arrivals = Arrivals::new();
    let a = arrivals.clone();
    let busy = pool
        .submit_named(
            None,
            Fallible(move || {
                a.arrive();
                let deadline = Instant::now() + LONG;
                while Instant::now() < deadline {
                    checkpoint()?;
                    std::thread::yield_now();
                }
                Ok::<_, Exception>("ran to the end")
            }),
        )
        .unwrap();
    let queued = pool.submit(|| "queued").unwrap();
    arrivals.expect(1);
    // Only a running future can be killed: not a queued one, nor a bare one.
    assert!(!queued.kill());
    assert!(!queued.break_wait());
    assert!(!Future::<i32>::new().kill());
    assert!(busy.kill());
    let end = busy.result(Some(LONG));
    assert!(matches!(end, Err(FutureError::Failed(Exception::Killed(_)))), "{end:?}");
    assert_eq!(queued.result(Some(LONG)), Ok("queued"));
    assert_eq!(checkpoint(), Ok(()), "outside a task");
}

// Extension (no CPython test): the deadlock breaker's victim gets an error and goes on.
#[test]
fn break_wait_interrupts_one_wait_and_the_task_goes_on() {
    let (pool, mut observer) = observed_pool("deadlock", 2);
    let target = Future::<i32>::new();
    let (tx, first_wait) = unbounded();
    let t = target.clone();
    let victim = pool
        .submit(move || {
            tx.send(t.result(None)).unwrap();
            // The task goes on and waits again: this wait is not interrupted.
            t.result(Some(LONG))
        })
        .unwrap();
    wait_started(&mut observer, victim.id(), target.id(), 1);
    assert!(victim.break_wait());
    let r = first_wait.recv_timeout(LONG).unwrap();
    assert!(matches!(r, Err(FutureError::Interrupted(Exception::Deadlock(_)))), "{r:?}");

    wait_started(&mut observer, victim.id(), target.id(), 2);
    assert!(victim.running());
    target.set_result(5).unwrap();
    assert_eq!(victim.result(Some(LONG)), Ok(Ok(5)));
    assert_eq!(wait_ends(&mut observer, victim.id(), target.id()), [WaitOutcome::Interrupted, WaitOutcome::Completed]);
    assert_eq!(lifecycle(&mut observer, victim.id()).last().unwrap(), "finished");
    assert!(!victim.break_wait(), "not running any more");
}

// Python: an exception from the callable is stored with set_exception; the worker lives on.
#[test]
fn a_panicking_task_leaves_the_worker_alive() {
    let (pool, mut observer) = observed_pool("panic", 1);
    let f1 = pool.submit(|| -> i32 { panic!("boom") }).unwrap();
    assert_eq!(
        f1.result(Some(LONG)),
        Err(FutureError::Failed(Exception::Task { message: "boom".into(), panicked: true }))
    );
    let f2 = pool.submit(|| 2).unwrap();
    assert_eq!(f2.result(Some(LONG)), Ok(2));
    assert_eq!(pool.threads_started(), 1, "the same worker ran both");
    let worker_of = |obs: Vec<Observation>| {
        obs.into_iter().find_map(|o| match o {
            Observation::Running { worker, .. } => Some(worker),
            _ => None,
        })
    };
    assert_eq!(worker_of(observer.of(f1.id())), worker_of(observer.of(f2.id())));
    assert_eq!(observer.count(|o| matches!(o, Observation::WorkerExited { .. })), 0);
}

// Python: a callback that raises is logged and ignored (test_done_callback_raises), here via the sink.
#[test]
fn a_panicking_done_callback_is_reported_and_the_others_still_run() {
    let (pool, mut observer) = observed_pool("callbacks", 1);
    let gate = Gate::new();
    let g = gate.clone();
    let f = pool.submit(move || g.wait()).unwrap();
    let (tx, ran) = unbounded();
    let tx2 = tx.clone();
    f.add_done_callback(|_| panic!("doh!"));
    f.add_done_callback(move |cf| tx.send(cf.result(None)).unwrap());
    gate.open();
    // Callbacks run in the worker, after the panicking one.
    assert_eq!(ran.recv_timeout(LONG).unwrap(), Ok(true));
    let reported = observer.wait_for("CallbackPanicked", |o| matches!(o, Observation::CallbackPanicked { .. }));
    assert_eq!(reported, Observation::CallbackPanicked { id: f.id(), message: "doh!".into() });
    // The future is unaffected, and so is the worker.
    assert_eq!(f.result(None), Ok(true));
    assert_eq!(pool.submit(|| 3).unwrap().result(Some(LONG)), Ok(3));

    // On a future already done, the callback runs (and is reported) at once, in this thread.
    f.add_done_callback(|_| panic!("late"));
    f.add_done_callback(move |_| tx2.send(Ok(false)).unwrap());
    assert_eq!(ran.try_recv().unwrap(), Ok(false));
    assert_eq!(observer.count(|o| matches!(o, Observation::CallbackPanicked { message, .. } if message == "late")), 1);
}
