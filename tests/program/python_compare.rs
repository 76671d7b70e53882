//! futuretop against Python's `concurrent.futures`, task by task.
//!
//! For the task files Python can express (`assets/primes.yaml`, the docs' example, and
//! `tests/fixtures/python/work.yaml`: sleep, pow, is_prime, fail, map, wait_on with and
//! without a timeout, submit, and worker processes that crash or exit), the test loads
//! the plan with the library, hands it to `tests/python/compare.py`, which runs the same
//! calls on ThreadPoolExecutor / ProcessPoolExecutor, runs the file with the real binary
//! (`--events`), and compares every task's final state, result and error type.
//!
//! Skipped, with a message, when `python3` is not installed.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::scratch;
use futuretop::config::Plan;
use futuretop::config::Work;
use serde_json::{json, Value};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn python3_available() -> bool {
    static HERE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let here = *HERE.get_or_init(|| crate::common::installed("python3", &["--version"]));
    crate::common::can_run("python_compare", "python3", here, "FUTURETOP_PYTHON_TESTS")
}

/// The plan as compare.py reads it.
fn spec(plan: &Plan) -> Value {
    let pools: Vec<Value> = plan
        .pools
        .iter()
        .map(|p| json!({ "name": p.name, "kind": p.kind.as_str(), "max_workers": p.max_workers }))
        .collect();
    let tasks: Vec<Value> = (0..plan.len())
        .map(|i| {
            let (t, name) = (plan.task_of(i).unwrap(), plan.name_of(i));
            let Some(Work::Call(call)) = plan.work(i) else { panic!("{name}: Python cannot run a command") };
            assert!(t.depends_on.is_empty() && t.each.is_empty(), "{name}: depends_on has no Python counterpart");
            json!({ "name": name, "pool": t.pool, "call": call })
        })
        .collect();
    json!({ "pools": pools, "tasks": tasks })
}

/// Task name → `{state, result | error}` from Python.
fn run_python(plan: &Plan) -> BTreeMap<String, Value> {
    let mut child = Command::new("python3")
        .arg(manifest_dir().join("tests/python/compare.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(spec(plan).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "compare.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Task name → `{state, result | error}` from futuretop's event log, in compare.py's shape.
fn run_futuretop(file: &str) -> BTreeMap<String, Value> {
    let dir = scratch("run");
    let log = dir.join("events.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", file, "--headless", "--events", log.to_str().unwrap()])
        .current_dir(manifest_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let mut states = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let Some(task) = e["task"].as_str().filter(|t| !t.contains('/')) else { continue };
        let state = match e["event"].as_str() {
            Some("done") => json!({ "state": "done", "result": e["result"] }),
            Some("exception") => json!({ "state": "exception", "error": e["error"]["type"] }),
            Some("cancelled") => json!({ "state": "cancelled" }),
            _ => continue,
        };
        assert!(states.insert(task.to_owned(), state).is_none(), "{task} ended twice");
    }
    let _ = std::fs::remove_dir_all(dir);
    states
}

/// Compares `file` task by task; returns Python's outcome (`None` when skipped).
fn compare(file: &str) -> Option<BTreeMap<String, Value>> {
    if !python3_available() {
        return None;
    }
    let plan = futuretop::config::load(&manifest_dir().join(file)).unwrap();
    let python = run_python(&plan);
    let ours = run_futuretop(file);
    let names: Vec<String> = (0..plan.len()).map(|i| plan.name_of(i)).collect();
    assert_eq!(python.keys().map(String::as_str).collect::<Vec<_>>().len(), names.len(), "{python:?}");
    let mut differences = Vec::new();
    for name in names {
        let (p, o) = (&python[&name], ours.get(&name));
        if Some(p) != o {
            differences
                .push(format!("  {name}: Python {p}, futuretop {}", o.map_or("nothing".into(), Value::to_string)));
        }
    }
    assert!(differences.is_empty(), "{file}: futuretop differs from concurrent.futures:\n{}", differences.join("\n"));
    Some(python)
}

#[test]
fn primes_example_matches_python() {
    let Some(python) = compare("assets/primes.yaml") else { return };
    let results: Vec<&Value> = (0..6).map(|i| &python[&format!("is_prime[{i}]")]["result"]).collect();
    assert_eq!(results, [true, true, true, true, true, false].map(Value::Bool).iter().collect::<Vec<_>>());
}

#[test]
fn sleep_pow_fail_map_wait_submit_and_broken_pools_match_python() {
    let Some(python) = compare("tests/fixtures/python/work.yaml") else { return };
    // What was compared is what the fixture means (so a vacuous comparison cannot pass).
    let expect = [
        ("naps[0]", json!({ "state": "done", "result": null })),
        ("small", json!({ "state": "done", "result": 1024 })),
        ("zero", json!({ "state": "done", "result": 1 })),
        ("edge[0]", json!({ "state": "done", "result": 4_611_686_018_427_387_904_i64 })),
        ("edge[1]", json!({ "state": "done", "result": i64::MIN })),
        ("edge[2]", json!({ "state": "done", "result": "12157665459056928801" })),
        ("negative", json!({ "state": "done", "result": "-36472996377170786403" })),
        ("boom", json!({ "state": "exception", "error": "TaskError" })),
        ("primes[4]", json!({ "state": "done", "result": true })),
        ("primes[5]", json!({ "state": "done", "result": false })),
        ("cpu_pow", json!({ "state": "done", "result": "22539340290692258087863249" })),
        ("cpu_fail", json!({ "state": "exception", "error": "TaskError" })),
        ("waiter", json!({ "state": "done", "result": true })),
        ("impatient", json!({ "state": "exception", "error": "TimeoutError" })),
        ("relay", json!({ "state": "exception", "error": "TaskError" })),
        ("square", json!({ "state": "done", "result": 25 })),
        ("segfault", json!({ "state": "exception", "error": "BrokenProcessPool" })),
        ("after-crash[1]", json!({ "state": "exception", "error": "BrokenProcessPool" })),
        ("leave", json!({ "state": "exception", "error": "BrokenProcessPool" })),
    ];
    for (task, outcome) in expect {
        assert_eq!(python[task], outcome, "{task}");
    }
    assert_eq!(python["big"]["result"].as_str().map(str::len), Some(3099));
}
