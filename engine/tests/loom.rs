//! Loom model check of the `Future` state machine: every interleaving of the races that
//! matter (cancel against start, set_result against cancel, a callback added while the
//! future completes, a timed wait against completion) is explored, and each must leave
//! the future in a state consistent with exactly one winner, with no lost wakeup.
//!
//! Run it as CI does (the whole file is empty without `--cfg loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!   CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
//!   cargo test --release -p futuretop-engine --test loom
//! ```
#![cfg(loom)]

use std::time::Duration;

use futuretop_engine::as_completed;
use futuretop_engine::wait;
use futuretop_engine::FutureError;
use futuretop_engine::FutureState;
use futuretop_engine::ReturnWhen;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

type Future = futuretop_engine::Future<u32>;

/// `cancel()` against the worker's `set_running_or_notify_cancel()`: exactly one wins.
/// If the cancel wins the worker is told (`Ok(false)`) and never runs the call; if the
/// worker wins, the cancel fails and the call runs to FINISHED.
#[test]
fn cancel_races_set_running() {
    loom::model(|| {
        let f = Future::new();
        let worker = {
            let f = f.clone();
            thread::spawn(move || {
                let started = f.set_running_or_notify_cancel().expect("a fresh future can start or be notified");
                if started {
                    f.set_result(1).expect("a running future accepts its result");
                }
                started
            })
        };
        let cancelled = f.cancel();
        let started = worker.join().unwrap();
        assert_ne!(cancelled, started, "exactly one of cancel and start wins");
        if cancelled {
            assert_eq!(f.state(), FutureState::Cancelled);
            assert!(f.cancelled() && f.done());
            assert_eq!(f.result(None), Err(FutureError::Cancelled(futuretop_engine::CancelledError)));
            // The executor has been notified: a second notification is an error.
            let again = f.set_running_or_notify_cancel().unwrap_err();
            assert_eq!(again.state, "cancelled");
        } else {
            assert_eq!(f.state(), FutureState::Finished);
            assert!(!f.cancelled() && f.done());
            assert_eq!(f.result(None), Ok(1));
            assert!(!f.cancel(), "a finished future cannot be cancelled");
        }
    });
}

/// `set_result()` against `cancel()` on a PENDING future: exactly one succeeds, the loser
/// gets `false` / `InvalidStateError`, and the final state is the winner's.
#[test]
fn set_result_races_cancel() {
    loom::model(|| {
        let f = Future::new();
        let setter = {
            let f = f.clone();
            thread::spawn(move || f.set_result(7))
        };
        let cancelled = f.cancel();
        let set = setter.join().unwrap();
        assert_ne!(cancelled, set.is_ok(), "exactly one of set_result and cancel succeeds");
        if cancelled {
            let err = set.unwrap_err();
            assert_eq!((err.operation, err.state), ("set_result", "cancelled"));
            assert_eq!(f.state(), FutureState::Cancelled);
            assert_eq!(f.try_result(), Some(Err(FutureError::Cancelled(futuretop_engine::CancelledError))));
        } else {
            assert_eq!(f.state(), FutureState::Finished);
            assert_eq!(f.try_result(), Some(Ok(7)));
            // The result stays: a later set or cancel changes nothing.
            assert!(!f.cancel());
            assert_eq!(f.set_result(8).unwrap_err().state, "finished");
            assert_eq!(f.result(None), Ok(7));
        }
    });
}

/// A done-callback added while another thread completes the future runs exactly once,
/// whether the adder (future already done) or the completer (callback queued) runs it,
/// and it always sees the future done with its value.
#[test]
fn done_callback_added_while_completing() {
    loom::model(|| {
        let f = Future::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let completer = {
            let f = f.clone();
            thread::spawn(move || f.set_result(3).expect("nobody else completes it"))
        };
        {
            let runs = Arc::clone(&runs);
            f.add_done_callback(move |done| {
                assert!(done.done());
                assert_eq!(done.try_result(), Some(Ok(3)));
                runs.fetch_add(1, Ordering::SeqCst);
            });
        }
        completer.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the callback runs exactly once");
    });
}

/// The same with cancellation as the completion: the callback runs once and sees CANCELLED.
#[test]
fn done_callback_added_while_cancelling() {
    loom::model(|| {
        let f = Future::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let canceller = {
            let f = f.clone();
            thread::spawn(move || assert!(f.cancel()))
        };
        {
            let runs = Arc::clone(&runs);
            f.add_done_callback(move |done| {
                assert!(done.cancelled());
                runs.fetch_add(1, Ordering::SeqCst);
            });
        }
        canceller.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the callback runs exactly once");
    });
}

/// `result(timeout)` against completion, beside an untimed waiter. The timed wait (a zero
/// timeout: loom cannot let time pass) returns the value or `Timeout`; either way its
/// waiter is installed and removed while the future completes, and the untimed
/// `result(None)` waiter must always wake with the value (no lost wakeup).
#[test]
fn timed_result_races_completion() {
    loom::model(|| {
        let f = Future::new();
        let completer = {
            let f = f.clone();
            thread::spawn(move || f.set_result(9).expect("nobody else completes it"))
        };
        let timed = {
            let f = f.clone();
            thread::spawn(move || f.result(Some(Duration::ZERO)))
        };
        assert_eq!(f.result(None), Ok(9), "an untimed waiter always wakes");
        match timed.join().unwrap() {
            Ok(v) => assert_eq!(v, 9),
            Err(FutureError::Timeout(t)) => assert_eq!(t.unfinished, None),
            Err(other) => panic!("a timed result() can only time out, got {other:?}"),
        }
        completer.join().unwrap();
        assert_eq!(f.state(), FutureState::Finished);
    });
}

/// A timed wait alone against completion: value or timeout, and after a timeout the
/// future's waiter list is clean (a later untimed wait still wakes).
#[test]
fn timed_result_then_untimed_wait() {
    loom::model(|| {
        let f = Future::new();
        let completer = {
            let f = f.clone();
            thread::spawn(move || f.set_result(4).expect("nobody else completes it"))
        };
        let first = f.result(Some(Duration::ZERO));
        assert!(matches!(first, Ok(4) | Err(FutureError::Timeout(_))), "got {first:?}");
        assert_eq!(f.result(None), Ok(4));
        completer.join().unwrap();
    });
}

/// `wait(ALL_COMPLETED)` on two futures completed by two threads (one finishes, one is
/// cancelled) always returns with both done: the shared signal loses no wakeup.
#[test]
fn wait_all_completed_races_completions() {
    loom::model(|| {
        let a = Future::new();
        let b = Future::new();
        let ta = {
            let a = a.clone();
            thread::spawn(move || a.set_result(1).expect("nobody else completes it"))
        };
        let tb = {
            let b = b.clone();
            thread::spawn(move || assert!(b.cancel()))
        };
        let r = wait(&[a.clone(), b.clone()], None, ReturnWhen::AllCompleted);
        assert_eq!(r.done.len(), 2);
        assert!(r.not_done.is_empty());
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(a.result(None), Ok(1));
        assert!(b.cancelled());
    });
}

/// `as_completed` over two futures that complete while it iterates (one finishes, one is
/// cancelled) yields each exactly once and then ends: no lost wakeup, no duplicate.
#[test]
fn as_completed_races_completions() {
    loom::model(|| {
        let a = Future::new();
        let b = Future::new();
        let ta = {
            let a = a.clone();
            thread::spawn(move || a.set_result(1).expect("nobody else completes it"))
        };
        let tb = {
            let b = b.clone();
            thread::spawn(move || assert!(b.cancel()))
        };
        let mut ids: Vec<_> =
            as_completed(&[a.clone(), b.clone()], None).map(|f| f.expect("no timeout was set").id()).collect();
        ids.sort();
        let mut expected = vec![a.id(), b.id()];
        expected.sort();
        assert_eq!(ids, expected);
        ta.join().unwrap();
        tb.join().unwrap();
    });
}
