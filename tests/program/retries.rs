//! Retries (`retries:`, `retry_delay:`, `backoff:`): each attempt a new future, the
//! `retry` event and the next `pending`'s `attempt`, the waits between attempts (checked
//! on the events' own times, in order), dependents waiting for the last attempt, and what
//! is never retried (a kill) or stops a retry (a cancel, the run's end).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use futuretop::control::Control;
use futuretop::events::{CancelReason, Event, EventKind};
use futuretop::runner::{start, RunHandle, RunOptions};
use futuretop_engine::ErrorKind;

/// Upper bound for anything that should happen soon; a passing test never waits this long.
const DEADLINE: Duration = Duration::from_secs(20);

fn run(yaml: &str) -> (RunHandle, Receiver<Arc<Event>>) {
    let plan = futuretop::config::load_str_offline("t.yaml", "t", yaml).expect("a valid file");
    let (tx, rx) = crossbeam_channel::unbounded();
    (start(plan, &RunOptions::default(), vec![tx]).expect("the run starts"), rx)
}

/// Every event until `run_finished`.
fn all(rx: &Receiver<Arc<Event>>) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    while let Ok(e) = rx.recv_timeout(DEADLINE) {
        let last = matches!(e.kind, EventKind::RunFinished { .. });
        out.push(e);
        if last {
            return out;
        }
    }
    panic!("the run did not finish: {out:#?}");
}

/// Events until (and with) the first that `stop` accepts.
fn until(rx: &Receiver<Arc<Event>>, mut stop: impl FnMut(&Event) -> bool) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    while let Ok(e) = rx.recv_timeout(DEADLINE) {
        let found = stop(&e);
        out.push(e);
        if found {
            return out;
        }
    }
    panic!("the awaited event never came: {out:#?}");
}

fn finished(events: &[Arc<Event>]) -> (futuretop::events::Counts, i32) {
    match events.last().map(|e| &e.kind) {
        Some(EventKind::RunFinished { counts, exit_code }) => (*counts, *exit_code),
        other => panic!("the last event is {other:?}"),
    }
}

/// The future id the last event of `seen` names (a `pending`, `running` or `retry`).
fn last_id(seen: &[Arc<Event>]) -> futuretop_engine::observe::FutureId {
    match seen.last().map(|e| &e.kind) {
        Some(EventKind::Pending { id, .. } | EventKind::Running { id, .. } | EventKind::Retry { id, .. }) => {
            futuretop_engine::observe::FutureId(*id)
        }
        other => panic!("no future named by {other:?}"),
    }
}

/// Two maps paired item by item on a one-worker pool (`first[2]` sleeps `last` s), beside
/// a task that holds the run open: `first[2]` is cancelled while it is queued, and
/// `second[2]`, paired with it, is cancelled for it. Returns the events so far.
fn paired_maps_with_a_cancelled_pair(last: f64) -> (RunHandle, Receiver<Arc<Event>>, Vec<Arc<Event>>) {
    let (handle, rx) = run(&format!(
        "pools: {{ one: {{ kind: thread, max_workers: 1 }}, hold: {{ kind: thread, max_workers: 1 }} }}\n\
         tasks:\n\
         \x20 - {{ name: hold, pool: hold, call: spin, args: {{ secs: 60 }} }}\n\
         \x20 - {{ name: first, pool: one, call: sleep, map: {{ secs: [0.3, 0.01, {last}] }} }}\n\
         \x20 - {{ name: second, pool: one, call: pow, map: {{ base: [1, 2, 3] }}, args: {{ exp: 2 }}, depends_on: [{{ each: first }}] }}\n"
    ));
    let mut seen = until(&rx, |e| matches!(&e.kind, EventKind::Pending { task, .. } if &**task == "first[2]"));
    handle.control().send(Control::Cancel(last_id(&seen))).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Cancelled { task, .. } if &**task == "second[2]")));
    (handle, rx, seen)
}

/// A command that fails until its third attempt (it reads `FUTURETOP_ATTEMPT`) runs three
/// times, with the waits `retry_delay` × `backoff`ⁿ between attempts, each attempt a new
/// future; its dependent runs once, after the third.
#[test]
fn a_task_is_retried_with_backoff_and_its_dependent_waits_for_the_last_attempt() {
    let (handle, rx) = run(r#"
pools: { io: { kind: thread, max_workers: 2 } }
tasks:
  - name: flaky
    pool: io
    command: [sh, -c, '[ "$FUTURETOP_ATTEMPT" -ge 3 ]']
    retries: 4
    retry_delay: 0.05
    backoff: 3
  - { name: after, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [flaky] }
"#);
    let events = all(&rx);
    assert_eq!(handle.join().exit_code, 0);
    let (counts, code) = finished(&events);
    assert_eq!((counts.done, counts.exception, counts.cancelled, code), (2, 0, 0, 0), "{events:#?}");
    // flaky's futures, in order: (id, attempt, when pending, when it ended, how).
    let mut attempts: Vec<(u64, Option<u32>, f64)> = Vec::new();
    let mut ends: Vec<(u64, f64, &'static str)> = Vec::new();
    let mut retries: Vec<(u64, u32, u32, f64, f64)> = Vec::new();
    let mut after_pending = None;
    for e in &events {
        match &e.kind {
            EventKind::Pending { task, id, attempt, .. } if &**task == "flaky" => attempts.push((*id, *attempt, e.t)),
            EventKind::Pending { task, .. } if &**task == "after" => after_pending = Some(e.t),
            EventKind::Exception { task, id, error, .. } if &**task == "flaky" => {
                assert_eq!(error.kind, ErrorKind::CommandFailed);
                ends.push((*id, e.t, "exception"));
            }
            EventKind::Done { task, id, .. } if &**task == "flaky" => ends.push((*id, e.t, "done")),
            EventKind::Retry { task, id, attempt, attempts, delay } => {
                assert_eq!(&**task, "flaky");
                retries.push((*id, *attempt, *attempts, *delay, e.t));
            }
            _ => {}
        }
    }
    assert_eq!(attempts.iter().map(|a| a.1).collect::<Vec<_>>(), [None, Some(2), Some(3)], "{events:#?}");
    let ids: Vec<u64> = attempts.iter().map(|a| a.0).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "each attempt is a future of its own: {ids:?}");
    assert_eq!(
        ends.iter().map(|e| (e.0, e.2)).collect::<Vec<_>>(),
        [(ids[0], "exception"), (ids[1], "exception"), (ids[2], "done")]
    );
    // A retry event right after each failed attempt, saying when the next one comes.
    assert_eq!(retries.len(), 2);
    for (k, &(id, attempt, of, delay, t)) in retries.iter().enumerate() {
        let want = 0.05 * 3f64.powi(i32::try_from(k).unwrap());
        assert_eq!((id, attempt, of), (ids[k], u32::try_from(k).unwrap() + 1, 5));
        assert!((delay - want).abs() < 1e-9, "delay {delay}, want {want}");
        assert!(t >= ends[k].1, "the retry event follows the failure");
        // The next attempt is not submitted before its time (the event clock is the run's).
        let next = attempts[k + 1].2;
        assert!(next - ends[k].1 >= want - 0.002, "attempt {} came {:.3}s after the failure", k + 2, next - ends[k].1);
    }
    let after = after_pending.expect("the dependent ran");
    assert!(after >= ends[2].1, "the dependent waited for the last attempt");
}

/// Retries run out: the task fails with its last attempt's error, its dependent is
/// cancelled naming it, and the run exits 1. Pool defaults apply to tasks that give none.
#[test]
fn retries_run_out_and_pool_defaults_apply() {
    let (handle, rx) = run(r"
pools: { io: { kind: thread, max_workers: 2, retries: 2, retry_delay: 0 } }
tasks:
  - { name: hopeless, pool: io, call: fail, args: { message: no } }
  - { name: after, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [hopeless] }
");
    let events = all(&rx);
    assert_eq!(handle.join().exit_code, 1);
    let (counts, _) = finished(&events);
    assert_eq!((counts.done, counts.exception, counts.cancelled), (0, 1, 1));
    let retried: Vec<u32> = events
        .iter()
        .filter_map(|e| if let EventKind::Retry { attempt, .. } = e.kind { Some(attempt) } else { None })
        .collect();
    assert_eq!(retried, [1, 2], "two retries (three attempts) from the pool's default");
    let cancelled = events.iter().find_map(|e| match &e.kind {
        EventKind::Cancelled { task, reason, .. } if &**task == "after" => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(cancelled, Some(Some(CancelReason::DependencyFailed("hopeless".into()))));
}

/// A kill is never retried: the task ends `Killed` at once, though it has retries left.
#[test]
fn a_killed_task_is_not_retried() {
    let (handle, rx) = run(r"
pools: { io: { kind: thread, max_workers: 1 } }
tasks:
  - { name: long, pool: io, call: spin, args: { secs: 30 }, retries: 3, retry_delay: 0 }
");
    let mut seen = until(&rx, |e| matches!(e.kind, EventKind::Running { .. }));
    handle.control().send(Control::Kill(last_id(&seen))).unwrap();
    seen.extend(all(&rx));
    assert_eq!(handle.join().exit_code, 1);
    assert!(!seen.iter().any(|e| matches!(e.kind, EventKind::Retry { .. })), "{seen:#?}");
    let (counts, _) = finished(&seen);
    assert_eq!(counts.exception, 1);
}

/// `c` on a task whose retry waits for its time cancels the retry: a `pending` of the
/// attempt that never ran, then `cancelled`; its dependent is cancelled in turn, and the
/// run ends without waiting out the delay.
#[test]
fn cancelling_a_waiting_retry_ends_the_task_and_its_dependents() {
    let (handle, rx) = run(r"
pools: { io: { kind: thread, max_workers: 1 } }
tasks:
  - { name: flaky, pool: io, call: fail, retries: 3, retry_delay: 600 }
  - { name: after, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [flaky] }
");
    let mut seen = until(&rx, |e| matches!(e.kind, EventKind::Retry { .. }));
    handle.control().send(Control::Cancel(last_id(&seen))).unwrap();
    seen.extend(all(&rx));
    assert_eq!(handle.join().exit_code, 0, "a user's cancel is not a failure");
    let second = seen.iter().find_map(|e| match &e.kind {
        EventKind::Pending { task, attempt: Some(2), id, .. } if &**task == "flaky" => Some(*id),
        _ => None,
    });
    let second = second.expect("the second attempt's future");
    assert!(seen.iter().any(|e| matches!(&e.kind, EventKind::Cancelled { id, reason: None, .. } if *id == second)));
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.exception, counts.cancelled), (0, 0, 2));
}

/// Stopping the run while a retry waits ends it cancelled, `the run was stopped`.
#[test]
fn stopping_the_run_cancels_a_waiting_retry() {
    let (handle, rx) = run(r"
pools: { io: { kind: thread, max_workers: 1 } }
tasks:
  - { name: flaky, pool: io, call: fail, retries: 1, retry_delay: 600 }
");
    let mut seen = until(&rx, |e| matches!(e.kind, EventKind::Retry { .. }));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    assert_eq!(handle.join().exit_code, 130);
    assert!(seen.iter().any(|e| matches!(
        &e.kind,
        EventKind::Cancelled { task, reason: Some(CancelReason::RunStopped), .. } if &**task == "flaky"
    )));
    let (counts, _) = finished(&seen);
    assert_eq!((counts.cancelled, counts.unfinished), (1, 0));
}

/// A worker's crash breaks its process pool and fails the futures it held (Python's
/// `BrokenProcessPool`); a task with retries left runs again on a new pool of the same
/// name (`pool_restarted`), whose workers are numbered on from the old one's.
#[test]
fn a_task_is_retried_on_a_renewed_pool_after_its_process_pool_broke() {
    let dir = crate::common::scratch("retry-broken");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "pools: { cpu: { kind: process, max_workers: 1 } }\n\
         tasks:\n\
         \x20 - { name: boom, pool: cpu, call: crash }\n\
         \x20 - { name: victim, pool: cpu, call: pow, args: { base: 2, exp: 5 }, retries: 2, retry_delay: 0 }\n",
    )
    .unwrap();
    let log = dir.join("run.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .arg("run")
        .arg(&file)
        .args(["--headless", "--events"])
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "boom failed: {}", String::from_utf8_lossy(&out.stderr));
    let events = futuretop::events::read_log(&log).unwrap();
    let kinds: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PoolBroken { .. } => Some("pool_broken".to_owned()),
            EventKind::Retry { task, .. } => Some(format!("retry {task}")),
            EventKind::PoolRestarted { pool } => Some(format!("pool_restarted {pool}")),
            EventKind::Running { task, worker, .. } => Some(format!("running {task} on {worker}")),
            EventKind::Done { task, result, .. } => Some(format!("done {task} {result}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "running boom on cpu-1",
            "pool_broken",
            "retry victim",
            "pool_restarted cpu",
            "running victim on cpu-2",
            "done victim 32"
        ]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("retries: 1 (1 task succeeded only after a retry)"), "{stdout}");
}

/// `r`: a failed task runs again as a new attempt; the tasks it had cancelled, and those
/// they had cancelled, wait for it again and run; the counts at the end hold each once.
#[test]
fn a_resubmitted_task_runs_again_and_its_cancelled_dependents_follow() {
    let (handle, rx) = run(r#"
pools: { io: { kind: thread, max_workers: 2 }, hold: { kind: thread, max_workers: 1 } }
tasks:
  - { name: flaky, pool: io, command: [sh, -c, '[ "$FUTURETOP_ATTEMPT" -ge 2 ]'] }
  - { name: b, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [flaky] }
  - { name: c, pool: io, call: pow, args: { base: 2, exp: 4 }, depends_on: [b] }
  - { name: m, pool: io, call: pow, map: { base: [1, 2, 3] }, args: { exp: 2 }, depends_on: [flaky] }
  - { name: slow, pool: hold, call: spin, args: { secs: 60 } }
"#);
    let cancelled = |e: &Event, name: &str| matches!(&e.kind, EventKind::Cancelled { task, .. } if &**task == name);
    let mut seen = until(&rx, |e| cancelled(e, "c"));
    handle.control().send(Control::Resubmit("flaky".into())).unwrap();
    let done = |e: &Event, name: &str| matches!(&e.kind, EventKind::Done { task, .. } if &**task == name);
    let mut left: std::collections::HashSet<&str> = ["flaky", "b", "c", "m[0]", "m[1]", "m[2]"].into();
    seen.extend(until(&rx, |e| {
        left.retain(|n| !done(e, n));
        left.is_empty()
    }));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    assert_eq!(handle.join().exit_code, 130);
    let resubmit = seen.iter().find_map(|e| match &e.kind {
        EventKind::Resubmit { task, attempt, revived, .. } => {
            Some((task.to_string(), *attempt, revived.iter().map(|w| w.task.clone()).collect::<Vec<_>>()))
        }
        _ => None,
    });
    let (task, attempt, mut revived) = resubmit.expect("a resubmit event");
    revived.sort();
    assert_eq!((task.as_str(), attempt, revived), ("flaky", 2, vec!["b".to_owned(), "c".into(), "m".into()]));
    let second =
        seen.iter().any(|e| matches!(&e.kind, EventKind::Pending { task, attempt: Some(2), .. } if &**task == "flaky"));
    assert!(second, "the second attempt's future");
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.exception, counts.cancelled, counts.unfinished), (6, 1, 0, 0), "slow was killed");
}

/// `r` on a map item a user cancelled: it runs, and the item paired with it
/// (`{ each: }`), cancelled for it, runs after it.
#[test]
fn a_resubmitted_item_brings_back_its_paired_item() {
    let (handle, rx, mut seen) = paired_maps_with_a_cancelled_pair(0.01);
    handle.control().send(Control::Resubmit("first[2]".into())).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Done { task, .. } if &**task == "second[2]")));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    handle.join();
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.cancelled, counts.unfinished), (6, 0, 0), "{counts:?}");
}

/// A dependent cancelled because one of its two dependencies failed while the other still
/// ran: `r` on the failed one brings it back once, and it runs once, after both.
#[test]
fn a_dependent_of_two_runs_once_after_a_resubmit() {
    let (handle, rx) = run(r#"
pools: { io: { kind: thread, max_workers: 2 }, hold: { kind: thread, max_workers: 1 } }
tasks:
  - { name: hold, pool: hold, call: spin, args: { secs: 60 } }
  - { name: a, pool: io, command: [sh, -c, '[ "$FUTURETOP_ATTEMPT" -ge 2 ]'] }
  - { name: b, pool: io, call: sleep, args: { secs: 1 } }
  - { name: d, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [a, b] }
"#);
    let mut seen = until(&rx, |e| matches!(&e.kind, EventKind::Cancelled { task, .. } if &**task == "d"));
    handle.control().send(Control::Resubmit("a".into())).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Done { task, .. } if &**task == "d")));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    handle.join();
    let of_d = |kind: &str| {
        seen.iter()
            .filter(|e| {
                let (name, task) = match &e.kind {
                    EventKind::Pending { task, .. } => ("pending", task),
                    EventKind::Running { task, .. } => ("running", task),
                    EventKind::Done { task, .. } => ("done", task),
                    _ => return false,
                };
                name == kind && &**task == "d"
            })
            .count()
    };
    assert_eq!((of_d("pending"), of_d("running"), of_d("done")), (2, 1, 1), "{seen:#?}");
    let t_of = |kind: &str, name: &str| {
        seen.iter().rev().find_map(|e| match &e.kind {
            EventKind::Done { task, .. } if kind == "done" && &**task == name => Some(e.t),
            EventKind::Running { task, .. } if kind == "running" && &**task == name => Some(e.t),
            _ => None,
        })
    };
    assert!(t_of("running", "d") >= t_of("done", "b") && t_of("running", "d") >= t_of("done", "a"), "d ran after both");
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.cancelled, counts.unfinished), (3, 0, 0), "{counts:?}");
}

/// A task a user cancelled while it waited on another: `r` makes it wait again, and it
/// runs once that one is done.
#[test]
fn a_task_cancelled_while_waiting_waits_again_after_a_resubmit() {
    let (handle, rx) = run(r"
pools: { io: { kind: thread, max_workers: 2 }, hold: { kind: thread, max_workers: 1 } }
tasks:
  - { name: hold, pool: hold, call: spin, args: { secs: 60 } }
  - { name: first, pool: io, call: sleep, args: { secs: 0.5 } }
  - { name: later, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [first] }
");
    let mut seen = until(&rx, |e| matches!(&e.kind, EventKind::Running { task, .. } if &**task == "first"));
    handle.control().send(Control::CancelUnsubmitted("later".into())).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Cancelled { task, .. } if &**task == "later")));
    handle.control().send(Control::Resubmit("later".into())).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Done { task, .. } if &**task == "later")));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    handle.join();
    let resubmit = seen.iter().find_map(|e| match &e.kind {
        EventKind::Resubmit { attempt, revived, .. } => Some((*attempt, revived.len())),
        _ => None,
    });
    assert_eq!(resubmit, Some((1, 1)), "it waits again, whole: no new attempt");
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.cancelled, counts.unfinished), (2, 0, 0), "{counts:?}");
}

/// `c` on an item waiting again for its pair after an `r` (its row says `m[2]`, not yet
/// submitted) cancels that item alone.
#[test]
fn an_item_waiting_again_for_its_pair_can_be_cancelled() {
    let (handle, rx, mut seen) = paired_maps_with_a_cancelled_pair(2.0);
    handle.control().send(Control::Resubmit("first[2]".into())).unwrap();
    seen.extend(until(&rx, |e| matches!(&e.kind, EventKind::Running { task, .. } if &**task == "first[2]")));
    handle.control().send(Control::CancelUnsubmitted("second[2]".into())).unwrap();
    // The run is stopped once the rest has ended: `first[2]`, and the two items of
    // `second` that its pairs let go (queued behind `first[2]` on the one worker, they
    // may end after it; an interrupt sent as `first[2]` ended could catch them pending).
    let done = |e: &Event, t: &str| matches!(&e.kind, EventKind::Done { task, .. } if &**task == t);
    let mut left: Vec<&str> =
        ["first[2]", "second[0]", "second[1]"].into_iter().filter(|t| !seen.iter().any(|e| done(e, t))).collect();
    seen.extend(until(&rx, |e| {
        if let EventKind::Done { task, .. } = &e.kind {
            left.retain(|t| *t != &**task);
        }
        left.is_empty()
    }));
    handle.control().send(Control::Interrupt).unwrap();
    seen.extend(all(&rx));
    handle.join();
    let ran = seen.iter().any(|e| matches!(&e.kind, EventKind::Running { task, .. } if &**task == "second[2]"));
    assert!(!ran, "second[2] was cancelled while it waited for its pair");
    let (counts, _) = finished(&seen);
    assert_eq!((counts.done, counts.cancelled, counts.unfinished), (5, 1, 0), "{counts:?}");
}
