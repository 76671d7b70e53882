//! End-to-end deadlock detection: the real `futuretop` binary, headless, on
//! `assets/deadlock-cycle.yaml` and `assets/deadlock-starvation.yaml`, under each
//! `--on-deadlock` mode, read through its `--events` log.
//!
//! - `warn`: the `deadlock` event appears and the run waits, as Python would; SIGINT
//!   (sent once the event is in the log) ends it with exit code 130.
//! - `fail`: exit code 3 after the report.
//! - `break`: the victim (the waiter whose wait began last) gets `DeadlockError`, a
//!   `deadlock_resolved` with `how: break` follows, the run ends with exit code 1.
//! - each report comes less than 0.2 s after the last `wait` event before it (their `t`).
//! - a wait with a timeout: reported (with the time left), then `deadlock_resolved` with
//!   `how: timeout` when it expires.
//! - the same two deadlocks on process pools, where the waits are made by worker
//!   processes and proxied through the parent.

// Helpers are test code too: a failed unwrap is a failed test (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::scratch;
use futuretop::events::Event;
use futuretop::events::EventKind;

const EXE: &str = env!("CARGO_BIN_EXE_futuretop");
const CYCLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/deadlock-cycle.yaml");
const STARVATION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/deadlock-starvation.yaml");
const DEADLINE: Duration = Duration::from_secs(30);
/// The contract: a report within 200 ms of the deadlock forming.
const REPORT_WITHIN: f64 = 0.2;

/// The run: the binary on `file`, headless, its events in `dir/events.jsonl`, its
/// stderr in `dir/stderr.txt`.
struct Run {
    child: Child,
    events: PathBuf,
    stderr: PathBuf,
}

impl Run {
    fn start(file: &Path, mode: &str, dir: &Path) -> Self {
        let events = dir.join("events.jsonl");
        let stderr = dir.join("stderr.txt");
        let child = Command::new(EXE)
            .arg("run")
            .arg(file)
            .args(["--headless", "--on-deadlock", mode, "--events"])
            .arg(&events)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self { child, events, stderr }
    }

    /// The complete lines of the log so far.
    fn events(&self) -> Vec<Event> {
        let Ok(text) = std::fs::read_to_string(&self.events) else { return Vec::new() };
        text.lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a bad event line ({e}): {l}")))
            .collect()
    }

    /// Polls the log until `pred` holds.
    #[track_caller]
    fn until(&self, what: &str, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let es = self.events();
            if pred(&es) {
                return es;
            }
            assert!(Instant::now() < deadline, "{what}: not in the log within {DEADLINE:?}: {es:#?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the run to exit (failing if it does not), returns its status and whole log.
    #[track_caller]
    fn finish(mut self) -> (ExitStatus, Vec<Event>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.events());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the run did not exit within {DEADLINE:?}: {:#?}", self.events());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigint(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
    }
}

fn has_deadlock(es: &[Event]) -> bool {
    es.iter().any(|e| matches!(e.kind, EventKind::Deadlock { .. }))
}

/// The first `deadlock` event: (its time, kind, tasks, victim, expires_in), checked to
/// come less than 0.2 s after the last `wait` event before it.
#[track_caller]
fn deadlock(es: &[Event]) -> (String, Vec<String>, Option<String>, Option<f64>) {
    let i = es.iter().position(|e| matches!(e.kind, EventKind::Deadlock { .. })).expect("a deadlock event");
    let EventKind::Deadlock { kind, tasks, victim, expires_in, message, .. } = &es[i].kind else { unreachable!() };
    let last_wait = es[..i].iter().rev().find(|e| matches!(e.kind, EventKind::Wait { .. })).expect("a wait before it");
    let delay = es[i].t - last_wait.t;
    assert!((0.0..REPORT_WITHIN).contains(&delay), "reported {delay:.3} s after the last wait");
    assert!(!message.is_empty());
    (kind.to_string(), tasks.clone(), victim.clone(), *expires_in)
}

fn exception_of<'a>(es: &'a [Event], task: &str) -> Option<&'a str> {
    es.iter().find_map(|e| match &e.kind {
        EventKind::Exception { task: t, error, .. } if &**t == task => Some(error.kind.as_str()),
        _ => None,
    })
}

fn resolved(es: &[Event]) -> Vec<String> {
    es.iter()
        .filter_map(|e| match &e.kind {
            EventKind::DeadlockResolved { how, .. } => Some(how.to_string()),
            _ => None,
        })
        .collect()
}

fn set(v: &[String]) -> std::collections::BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// The seed's cycle: a waits on b, b waits on a
// ---------------------------------------------------------------------------------------

#[test]
fn cycle_warn_reports_and_waits_until_interrupted() {
    let dir = scratch("cycle-warn");
    let run = Run::start(Path::new(CYCLE), "warn", &dir);
    run.until("the deadlock report", has_deadlock);
    let stderr = run.stderr.clone();
    run.sigint();
    let (status, es) = run.finish();
    assert_eq!(status.code(), Some(130));
    // Headless there is no key to press: the report names the flags that would act.
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(text.contains("deadlock: 'a' waits on 'b' and 'b' waits on 'a'"), "{text}");
    assert!(text.contains("  the run waits on it (--on-deadlock warn): Ctrl-C stops the run; "), "{text}");
    assert!(text.contains("--on-deadlock fail|break"), "{text}");
    assert!(!text.contains("press") && !text.contains("Press"), "{text}");
    let (kind, tasks, _, expires) = deadlock(&es);
    assert_eq!(kind, "cycle");
    assert_eq!(set(&tasks), set(&["a".into(), "b".into()]));
    assert_eq!(expires, None);
}

#[test]
fn cycle_fail_exits_3() {
    let dir = scratch("cycle-fail");
    let (status, es) = Run::start(Path::new(CYCLE), "fail", &dir).finish();
    assert_eq!(status.code(), Some(3));
    let (kind, _, _, _) = deadlock(&es);
    assert_eq!(kind, "cycle");
    assert!(matches!(es.last().map(|e| &e.kind), Some(EventKind::RunFinished { exit_code: 3, .. })));
}

#[test]
fn cycle_break_gives_the_victim_a_deadlock_error() {
    let dir = scratch("cycle-break");
    let (status, es) = Run::start(Path::new(CYCLE), "break", &dir).finish();
    assert_eq!(status.code(), Some(1));
    let (kind, _, victim, _) = deadlock(&es);
    assert_eq!(kind, "cycle");
    let victim = victim.expect("the report names its victim");
    // The victim is the waiter whose wait began last (by the events' times); whether that
    // is a or b depends on which of the two workers got to its wait first.
    let began = |task: &str| {
        es.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Wait { task: t, .. } if &**t == task => Some(e.t),
                _ => None,
            })
            .fold(f64::MIN, f64::max)
    };
    let (a, b) = (began("a"), began("b"));
    let last: &[&str] = match a.total_cmp(&b) {
        std::cmp::Ordering::Greater => &["a"],
        std::cmp::Ordering::Less => &["b"],
        std::cmp::Ordering::Equal => &["a", "b"],
    };
    assert!(last.contains(&victim.as_str()), "victim {victim}: a's wait began at {a}, b's at {b}");
    assert_eq!(exception_of(&es, &victim), Some("DeadlockError"));
    assert_eq!(resolved(&es), vec!["break".to_owned()]);
}

// ---------------------------------------------------------------------------------------
// The seed's starvation: the only worker waits on a task queued behind it
// ---------------------------------------------------------------------------------------

#[test]
fn starvation_warn_reports_and_waits_until_interrupted() {
    let dir = scratch("starvation-warn");
    let run = Run::start(Path::new(STARVATION), "warn", &dir);
    run.until("the deadlock report", has_deadlock);
    run.sigint();
    let (status, es) = run.finish();
    assert_eq!(status.code(), Some(130));
    let (kind, tasks, _, _) = deadlock(&es);
    assert_eq!(kind, "starvation");
    assert_eq!(tasks, vec!["wait_on_future".to_owned(), "wait_on_future/pow".to_owned()]);
}

#[test]
fn starvation_fail_exits_3() {
    let dir = scratch("starvation-fail");
    let (status, es) = Run::start(Path::new(STARVATION), "fail", &dir).finish();
    assert_eq!(status.code(), Some(3));
    assert_eq!(deadlock(&es).0, "starvation");
}

#[test]
fn starvation_break_gives_the_victim_a_deadlock_error_and_the_queue_runs() {
    let dir = scratch("starvation-break");
    let (status, es) = Run::start(Path::new(STARVATION), "break", &dir).finish();
    assert_eq!(status.code(), Some(1));
    let (kind, _, victim, _) = deadlock(&es);
    assert_eq!(kind, "starvation");
    assert_eq!(victim.as_deref(), Some("wait_on_future"));
    assert_eq!(exception_of(&es, "wait_on_future"), Some("DeadlockError"));
    assert_eq!(resolved(&es), vec!["break".to_owned()]);
    // The worker is free again: the queued pow runs (5 ** 2).
    assert!(es.iter().any(|e| matches!(&e.kind,
        EventKind::Done { task, result, .. } if &**task == "wait_on_future/pow" && *result == serde_json::json!(25))));
}

// ---------------------------------------------------------------------------------------
// A wait with a timeout: reported while it lasts, resolved when it expires
// ---------------------------------------------------------------------------------------

#[test]
fn cycle_with_a_timeout_is_reported_then_resolved_by_the_timeout() {
    let dir = scratch("cycle-timeout");
    let file = dir.join("cycle-timeout.yaml");
    std::fs::write(
        &file,
        "name: cycle-timeout\n\
         pools:\n  pool: { kind: thread, max_workers: 2 }\n\
         tasks:\n\
         \x20 - name: a\n    pool: pool\n    call: wait_on\n    args: { task: b, timeout: 1 }\n\
         \x20 - name: b\n    pool: pool\n    call: wait_on\n    args: { task: a }\n",
    )
    .unwrap();
    let (status, es) = Run::start(&file, "warn", &dir).finish();
    assert_eq!(status.code(), Some(1), "a times out, b gets a's error");
    let (kind, _, _, expires) = deadlock(&es);
    assert_eq!(kind, "cycle");
    let expires = expires.expect("the report says when the wait times out");
    assert!(expires > 0.0 && expires <= 1.0, "{expires}");
    assert_eq!(resolved(&es), vec!["timeout".to_owned()]);
    assert_eq!(exception_of(&es, "a"), Some("TimeoutError"));
    // Resolved once the timeout expired, not before.
    let at = |pred: &dyn Fn(&EventKind) -> bool| es.iter().find(|e| pred(&e.kind)).map(|e| e.t).unwrap();
    let reported = at(&|k| matches!(k, EventKind::Deadlock { .. }));
    let ended = at(&|k| matches!(k, EventKind::DeadlockResolved { .. }));
    // (The report's `t` is stamped when the bus publishes it, after the detector worked out
    // `expires_in`: on a loaded machine that can be a few tens of milliseconds later.)
    assert!(ended - reported >= expires - 0.15, "resolved {:.3} s after the report", ended - reported);
}

// ---------------------------------------------------------------------------------------
// The same on process pools: waits made by worker processes, proxied through the parent
// ---------------------------------------------------------------------------------------

fn on_process_pool(asset: &str, dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(asset).unwrap().replace("kind: thread", "kind: process");
    assert!(yaml.contains("kind: process"));
    let file = dir.join(Path::new(asset).file_name().unwrap());
    std::fs::write(&file, yaml).unwrap();
    file
}

#[test]
fn process_pool_cycle_break() {
    let dir = scratch("process-cycle-break");
    let file = on_process_pool(CYCLE, &dir);
    let (status, es) = Run::start(&file, "break", &dir).finish();
    assert_eq!(status.code(), Some(1));
    let (kind, tasks, victim, _) = deadlock(&es);
    assert_eq!(kind, "cycle");
    assert_eq!(set(&tasks), set(&["a".into(), "b".into()]));
    assert_eq!(exception_of(&es, victim.as_deref().unwrap()), Some("DeadlockError"));
    assert_eq!(resolved(&es), vec!["break".to_owned()]);
    // The break ended a wait, not a process: no worker died, the pool did not break.
    assert!(!es.iter().any(|e| matches!(e.kind, EventKind::PoolBroken { .. })));
}

#[test]
fn process_pool_starvation_fail() {
    let dir = scratch("process-starvation-fail");
    let file = on_process_pool(STARVATION, &dir);
    let (status, es) = Run::start(&file, "fail", &dir).finish();
    assert_eq!(status.code(), Some(3));
    let (kind, tasks, _, _) = deadlock(&es);
    assert_eq!(kind, "starvation");
    assert_eq!(tasks, vec!["wait_on_future".to_owned(), "wait_on_future/pow".to_owned()]);
}
