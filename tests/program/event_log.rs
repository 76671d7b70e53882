//! The `--events` log (DESIGN §5, docs/events.md) of real runs of the binary, checked
//! line by line:
//!
//! - the first line is `run_started` with the format's `version`; the last is
//!   `run_finished`, once, with counts that match the tasks' final states and the
//!   process's exit code;
//! - `seq` counts from 1 without gaps; `t` never goes backwards;
//! - each future's states follow Python's order, `pending` → (`cancelled` | `running` →
//!   (`done` | `exception`)), and each future ends exactly once; the one other order
//!   Python has, `pending` → `exception`, only for a broken pool's queued futures (CPython
//!   calls `set_exception(BrokenProcessPool(...))` on futures still PENDING);
//! - waits end after they begin, workers run tasks only between their start and exit,
//!   every deadlock reported is resolved before the end;
//! - the final states and results are the expected ones (task by task);
//! - the same holds for a run interrupted by SIGINT: nothing is missing.
//!
//! Every line is also read back with the library's `read_log`, so the documented format
//! and the Rust types agree.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::scratch;
use serde_json::{json, Value};

/// Upper bound for anything that should happen soon; a passing test never waits this long.
const DEADLINE: Duration = Duration::from_secs(20);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn command(args: &[&str], log: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_futuretop"));
    c.args(args)
        .args(["--headless", "--events"])
        .arg(log)
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// How one future ended, as the log tells it.
#[derive(Debug, Clone)]
struct Ended {
    /// `done`, `exception` or `cancelled`.
    state: String,
    /// The whole final event.
    event: Value,
}

impl Ended {
    fn result(&self) -> &Value {
        assert_eq!(self.state, "done", "{}", self.event);
        &self.event["result"]
    }

    fn error_type(&self) -> &str {
        assert_eq!(self.state, "exception", "{}", self.event);
        self.event["error"]["type"].as_str().unwrap()
    }
}

/// Runs `args` headless with `--events`, checks every invariant of the log, and returns
/// how each future ended, by task name.
fn run(args: &[&str], expected_exit: i32) -> BTreeMap<String, Ended> {
    let dir = scratch("run");
    let log = dir.join("events.jsonl");
    let out = command(args, &log).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expected_exit), "{args:?}: {}{stderr}", String::from_utf8_lossy(&out.stdout));
    let ended = check_log(&log, expected_exit);
    let _ = std::fs::remove_dir_all(dir);
    ended
}

const FUTURE_EVENTS: [&str; 5] = ["pending", "running", "done", "exception", "cancelled"];
const ALL_EVENTS: [&str; 21] = [
    "retry",
    "resubmit",
    "pool_restarted",
    "stall",
    "run_started",
    "pending",
    "running",
    "done",
    "cancelled",
    "exception",
    "wait",
    "wait_end",
    "worker_started",
    "worker_exited",
    "pool_broken",
    "output",
    "system",
    "deadlock",
    "deadlock_resolved",
    "run_finished",
    "unserialisable",
];

/// Every invariant of an event log; returns how each future ended, by task name.
#[allow(clippy::too_many_lines)] // one check after the other, in the order of the module doc
fn check_log(path: &Path, exit_code: i32) -> BTreeMap<String, Ended> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the log's last line is cut");
    let log: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"))).collect();
    let typed = futuretop::events::read_log(path).unwrap();
    assert_eq!(typed.len(), log.len());

    // First and last lines.
    let first = &log[0];
    assert_eq!(first["event"], "run_started", "{first}");
    assert_eq!(first["version"], futuretop::events::EVENTS_VERSION);
    assert_eq!(first["version"], 1, "docs/events.md documents version 1");
    assert!(first["run"].is_string() && first["file"].is_string(), "{first}");
    for p in first["pools"].as_array().unwrap() {
        assert!(p["name"].is_string() && p["max_workers"].as_u64().unwrap() >= 1, "{p}");
        assert!(matches!(p["kind"].as_str(), Some("thread" | "process" | "slurm")), "{p}");
    }
    let planned = first["tasks"].as_u64().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last["event"], "run_finished", "{last}");
    assert_eq!(last["exit_code"], exit_code);
    assert_eq!(log.iter().filter(|e| e["event"] == "run_started").count(), 1);
    assert_eq!(log.iter().filter(|e| e["event"] == "run_finished").count(), 1);

    // seq and t.
    let mut last_t = 0.0;
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1, "seq gap at line {}: {e}", i + 1);
        let t = e["t"].as_f64().unwrap_or_else(|| panic!("no t: {e}"));
        assert!(t >= last_t, "t goes backwards at seq {}: {t} < {last_t}", i + 1);
        last_t = t;
        let kind = e["event"].as_str().unwrap();
        assert!(ALL_EVENTS.contains(&kind) && kind != "unserialisable", "unknown event {e}");
    }

    // Each future: Python's state order, one end, the same name and pool throughout.
    let mut states: HashMap<u64, Vec<&str>> = HashMap::new();
    let mut names: HashMap<u64, (&str, &str)> = HashMap::new();
    let mut ended: BTreeMap<String, Ended> = BTreeMap::new();
    let mut running_on: HashMap<u64, (String, String)> = HashMap::new();
    let mut live_workers: HashSet<(String, String, Option<u64>)> = HashSet::new();
    let mut exited_workers: HashSet<(String, String, Option<u64>)> = HashSet::new();
    let mut open_waits: Vec<(u64, u64)> = Vec::new();
    // Each wait's names, to check that its end names the same tasks.
    let mut wait_names: HashMap<(u64, u64), (String, String)> = HashMap::new();
    let mut deadlocks: Vec<Vec<String>> = Vec::new();
    for e in &log {
        let kind = e["event"].as_str().unwrap();
        if FUTURE_EVENTS.contains(&kind) {
            let id = e["id"].as_u64().unwrap();
            let (task, pool) = (e["task"].as_str().unwrap(), e["pool"].as_str().unwrap());
            assert_eq!(*names.entry(id).or_insert((task, pool)), (task, pool), "future {id} changed name: {e}");
            let seen = states.entry(id).or_default();
            let broken = matches!(e["error"]["type"].as_str(), Some("BrokenProcessPool" | "BrokenThreadPool"));
            let ok = match (seen.as_slice(), kind) {
                ([], "pending") | (["pending"], "running" | "cancelled") => true,
                (["pending", "running"], "done" | "exception") => true,
                // Python too: a broken pool calls set_exception on its still-PENDING futures.
                (["pending"], "exception") => broken,
                _ => false,
            };
            assert!(ok, "future {id} ({task}): {kind} after {seen:?}");
            seen.push(kind);
            match kind {
                "running" => {
                    let worker = e["worker"].as_str().unwrap().to_owned();
                    let key = (pool.to_owned(), worker.clone(), e["pid"].as_u64());
                    assert!(live_workers.contains(&key), "{task} runs on a worker that has not started: {e}");
                    running_on.insert(id, (pool.to_owned(), worker));
                }
                "done" => assert!(e.get("result").is_some(), "done without result: {e}"),
                "exception" => {
                    let t = e["error"]["type"].as_str().unwrap();
                    let known = [
                        "TaskError",
                        "TimeoutError",
                        "CancelledError",
                        "BrokenProcessPool",
                        "BrokenThreadPool",
                        "Killed",
                        "DeadlockError",
                        "CommandFailed",
                    ];
                    assert!(known.contains(&t), "unknown error type: {e}");
                    assert!(e["error"]["message"].is_string(), "{e}");
                }
                _ => {}
            }
            if matches!(kind, "done" | "exception" | "cancelled") {
                let previous = ended.insert(task.to_owned(), Ended { state: kind.to_owned(), event: e.clone() });
                assert!(previous.is_none(), "two futures named {task} ended");
                running_on.remove(&id);
            }
        }
        match kind {
            "worker_started" => {
                let key = (
                    e["pool"].as_str().unwrap().to_owned(),
                    e["worker"].as_str().unwrap().to_owned(),
                    e["pid"].as_u64(),
                );
                assert!(live_workers.insert(key), "worker started twice: {e}");
            }
            "worker_exited" => {
                let key = (
                    e["pool"].as_str().unwrap().to_owned(),
                    e["worker"].as_str().unwrap().to_owned(),
                    e["pid"].as_u64(),
                );
                assert!(live_workers.remove(&key), "a worker exited that was not running: {e}");
                assert!(e["status"].is_string(), "{e}");
                exited_workers.insert(key);
            }
            "wait" => {
                let (id, on) = (e["id"].as_u64().unwrap(), e["on_id"].as_u64().unwrap());
                assert_eq!(
                    states.get(&id).and_then(|s| s.last()).copied(),
                    Some("running"),
                    "a waiter that is not running: {e}"
                );
                open_waits.push((id, on));
                wait_names
                    .insert((id, on), (e["task"].as_str().unwrap().to_owned(), e["on"].as_str().unwrap().to_owned()));
            }
            "wait_end" => {
                let key = (e["id"].as_u64().unwrap(), e["on_id"].as_u64().unwrap());
                let i =
                    open_waits.iter().position(|w| *w == key).unwrap_or_else(|| panic!("wait_end without wait: {e}"));
                open_waits.remove(i);
                let (task, on) = &wait_names[&key];
                assert_eq!(
                    (e["task"].as_str().unwrap(), e["on"].as_str().unwrap()),
                    (task.as_str(), on.as_str()),
                    "{e}"
                );
                assert!(
                    matches!(e["outcome"].as_str(), Some("completed" | "timed_out" | "interrupted" | "killed")),
                    "{e}"
                );
            }
            "system" => {
                let cpu = e["cpu"].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&cpu), "{e}");
                let (used, total) = (e["mem_used"].as_u64().unwrap(), e["mem_total"].as_u64().unwrap());
                assert!(used > 0 && used <= total, "{e}");
                // Only live worker processes are watched.
                for p in e["procs"].as_array().into_iter().flatten() {
                    let pid = p["pid"].as_u64();
                    assert!(live_workers.iter().any(|w| w.2 == pid), "a sample of a process that is no worker: {e}");
                    assert!(p["cpu"].as_f64().unwrap() >= 0.0 && p["mem"].as_u64().unwrap() > 0, "{e}");
                }
            }
            "retry" => {
                // The attempt that failed is not its task's end: the next attempt's is.
                let (task, id) = (e["task"].as_str().unwrap(), e["id"].as_u64().unwrap());
                let attempt = ended.remove(task).unwrap_or_else(|| panic!("a retry of a task that did not end: {e}"));
                assert_eq!((attempt.state.as_str(), attempt.event["id"].as_u64()), ("exception", Some(id)), "{e}");
                assert!(e["attempt"].as_u64().unwrap() < e["attempts"].as_u64().unwrap(), "{e}");
                assert!(e["delay"].as_f64().unwrap() >= 0.0, "{e}");
            }
            "deadlock" => {
                assert!(matches!(e["kind"].as_str(), Some("cycle" | "starvation")), "{e}");
                assert!(!e["message"].as_str().unwrap().is_empty());
                deadlocks.push(serde_json::from_value(e["tasks"].clone()).unwrap());
            }
            "deadlock_resolved" => {
                let tasks: Vec<String> = serde_json::from_value(e["tasks"].clone()).unwrap();
                let i = deadlocks
                    .iter()
                    .position(|d| *d == tasks)
                    .unwrap_or_else(|| panic!("resolved, never reported: {e}"));
                deadlocks.remove(i);
                assert!(matches!(e["how"].as_str(), Some("timeout" | "cancel" | "kill" | "break" | "finished")), "{e}");
            }
            _ => {}
        }
    }
    for (id, s) in &states {
        assert!(matches!(s.last(), Some(&("done" | "exception" | "cancelled"))), "future {id} never ended: {s:?}");
    }
    assert!(open_waits.is_empty(), "waits that never ended: {open_waits:?}");
    // After an interrupt (130) or a deadlock failure (3) the runner does not join thread
    // workers (one might be stuck in a task); they end with the process, and their
    // worker_exited may come after run_finished, that is never. Worker processes are
    // killed and reaped first: they always exit in the log.
    if exit_code == 130 || exit_code == 3 {
        live_workers.retain(|(_, _, pid)| pid.is_some());
    }
    assert!(live_workers.is_empty(), "workers that never exited: {live_workers:?}");
    assert!(deadlocks.is_empty(), "deadlocks never resolved: {deadlocks:?}");

    // run_finished's counts are the plan's tasks' final states (`submit`'s inner futures,
    // named task/call, are not plan tasks).
    let plan: Vec<&Ended> = ended.iter().filter(|(name, _)| !name.contains('/')).map(|(_, e)| e).collect();
    assert_eq!(plan.len() as u64, planned, "every planned task has a future");
    let count = |s: &str| plan.iter().filter(|e| e.state == s).count();
    let expected = json!({
        "done": count("done"),
        "exception": count("exception"),
        "cancelled": count("cancelled"),
        "unfinished": 0,
    });
    assert_eq!(last["counts"], expected, "run_finished's counts");
    ended
}

fn results(ended: &BTreeMap<String, Ended>, prefix: &str, n: usize) -> Vec<Value> {
    (0..n).map(|i| ended[&format!("{prefix}[{i}]")].result().clone()).collect()
}

#[test]
fn primes_log() {
    let ended = run(&["demo", "primes"], 0);
    assert_eq!(ended.len(), 6);
    // Python: [True, True, True, True, True, False].
    assert_eq!(results(&ended, "is_prime", 6), [true, true, true, true, true, false].map(Value::Bool));
}

#[test]
fn batch_log() {
    let ended = run(&["demo", "batch"], 1);
    assert_eq!(results(&ended, "download", 4), vec![Value::Null; 4]);
    // 1000000007 and 998244353 are prime, 1000000008 is even.
    assert_eq!(results(&ended, "checksum", 3), [true, false, true].map(Value::Bool));
    assert_eq!(ended["compress"].result(), "compressing\ndone");
    assert_eq!(ended["upload"].error_type(), "TaskError");
    assert_eq!(ended["upload"].event["error"]["message"], "upload refused: quota exceeded");
    assert_eq!(ended["notify"].state, "cancelled");
    assert_eq!(ended["notify"].event["reason"], "dependency 'upload' failed");
    for t in ["segfault", "after-crash[0]", "after-crash[1]"] {
        assert_eq!(ended[t].error_type(), "BrokenProcessPool", "{t}");
    }
}

#[test]
fn urls_log() {
    let ended = run(&["demo", "urls"], 1);
    for (i, v) in results(&ended, "load_url", 4).iter().enumerate() {
        assert!(v.as_u64().unwrap() >= 1000, "load_url[{i}]: {v}");
    }
    assert_eq!(ended["load_url[4]"].error_type(), "TaskError");
}

#[test]
fn deadlock_starvation_broken_log() {
    let ended = run(&["demo", "deadlock-starvation", "--on-deadlock", "break"], 1);
    assert_eq!(ended["wait_on_future"].error_type(), "DeadlockError");
    // The inner future of the docs' wait_on_future: pow(5, 2), which runs once the wait is broken.
    assert_eq!(ended["wait_on_future/pow"].result(), 25);
}

#[test]
fn deadlock_cycle_logs() {
    let ended = run(&["demo", "deadlock-cycle", "--on-deadlock", "break"], 1);
    assert_eq!(ended["a"].error_type(), "DeadlockError");
    assert_eq!(ended["b"].error_type(), "DeadlockError");
    let ended = run(&["demo", "deadlock-cycle", "--on-deadlock", "fail"], 3);
    assert_eq!(ended["a"].error_type(), "Killed");
    assert_eq!(ended["b"].error_type(), "Killed");
}

#[test]
fn default_demo_log() {
    let ended = run(&["demo", "example", "--on-deadlock", "break"], 1);
    assert_eq!(ended["warmup"].result(), &Value::Null);
    assert_eq!(ended["square"].result(), 25);
    assert_eq!(ended["square/pow"].result(), 25);
    assert_eq!(ended["flaky"].error_type(), "TaskError", "its last attempt's error (retries: 2)");
    assert_eq!(ended["publish"].state, "cancelled");
    assert_eq!(ended["broken-command"].error_type(), "CommandFailed");
    assert_eq!(
        ended["shell"].result(),
        "step 1 of 3 from futuretop\nstep 2 of 3 from futuretop\nstep 3 of 3 from futuretop"
    );
    assert_eq!(results(&ended, "primes", 6), [true, true, true, true, true, false].map(Value::Bool));
}

#[test]
fn interrupted_log_is_complete() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let dir = scratch("sigint");
    let log = dir.join("events.jsonl");
    let mut child = command(&["run", "tests/fixtures/run/interrupt.yaml"], &log).spawn().unwrap();
    let end = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches(r#""event":"running""#).count() == 4 {
            break;
        }
        assert!(Instant::now() < end, "the tasks never ran:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "no exit after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
    let ended = check_log(&log, 130);
    for t in ["nap", "shell", "crunch", "grind"] {
        assert_eq!(ended[t].error_type(), "Killed", "{t}");
    }
    assert_eq!(ended["later"].state, "cancelled");
    let _ = std::fs::remove_dir_all(dir);
}

/// The log's invariants at 1,000,000 futures (issue 15): a map of a million `pow` calls,
/// handed to its pool a window at a time, run headless with the log. Every future has
/// one `pending`, one `running` and one `done`, in that order; `seq` has no gap;
/// `run_finished` counts them all. The log (about 300 MB) is read line by line.
#[test]
fn a_million_futures_each_end_once_and_seq_has_no_gap() {
    use std::io::BufRead;
    const N: u64 = 1_000_000;
    #[derive(serde::Deserialize)]
    struct Line {
        seq: u64,
        event: String,
        id: Option<u64>,
        counts: Option<Value>,
    }
    let dir = scratch("million");
    let file = dir.join("million.yaml");
    std::fs::write(
        &file,
        format!(
            "pools:\n  cpu: {{ kind: thread, max_workers: 2 }}\n\
             tasks:\n  - {{ name: p, pool: cpu, call: pow, args: {{ exp: 2 }}, map: {{ base: {{ range: {N} }} }} }}\n"
        ),
    )
    .unwrap();
    let log = dir.join("events.jsonl");
    let out = command(&["run", file.to_str().unwrap()], &log).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Per future: 1 after `pending`, 2 after `running`, 3 once ended.
    let mut stage: HashMap<u64, u8> = HashMap::with_capacity(1 << 20);
    let (mut expected_seq, mut first, mut last, mut last_event) = (1u64, None, None, String::new());
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&log).unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        let l: Line = serde_json::from_str(&line).unwrap_or_else(|e| panic!("line {expected_seq}: {e}: {line}"));
        assert_eq!(l.seq, expected_seq, "seq has a gap or goes back: {line}");
        expected_seq += 1;
        first.get_or_insert_with(|| l.event.clone());
        last_event.clone_from(&l.event);
        let next = match l.event.as_str() {
            "pending" => 1,
            "running" => 2,
            "done" | "exception" | "cancelled" => 3,
            "run_finished" => {
                last = l.counts.clone();
                continue;
            }
            _ => continue,
        };
        let id = l.id.unwrap_or_else(|| panic!("a future event without an id: {line}"));
        let now = stage.entry(id).or_insert(0);
        assert_eq!(*now + 1, next, "future {id} out of order at {line}");
        *now = next;
    }
    assert_eq!((first.as_deref(), last_event.as_str()), (Some("run_started"), "run_finished"));
    assert_eq!(stage.len() as u64, N, "one future an item");
    assert!(stage.values().all(|&s| s == 3), "every future ended");
    let counts = last.expect("run_finished is the last event");
    assert_eq!(counts, json!({ "done": N, "exception": 0, "cancelled": 0, "unfinished": 0 }));
    let _ = std::fs::remove_dir_all(dir);
}
