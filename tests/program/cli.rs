//! The command line of DESIGN §4, through the real binary: `--help` and `--version` on
//! every subcommand, `demo` listing the bundled scenarios, `validate` accepting every
//! bundled file, every bundled scenario run headless with its exit code and summary, and
//! SIGINT (Ctrl-C), SIGTERM and SIGHUP in the middle of a run: exit 130, a complete event
//! log, and no child process left behind.
//!
//! Nothing here sleeps to let something happen: the tests poll a condition (a line in the
//! event log, a process in /proc) against a generous deadline.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::procs::{descendants, proc_stat};
use crate::common::scratch;

/// What the concurrent.futures documentation prints for its ProcessPoolExecutor example
/// (`is_prime` over PRIMES): `[True, True, True, True, True, False]`.
const PYTHON_PRIMES: [bool; 6] = [true, true, true, true, true, false];

/// Upper bound for anything that should happen soon; a passing test never waits this long.
const DEADLINE: Duration = Duration::from_secs(20);

const SUBCOMMANDS: [&str; 4] = ["run", "validate", "demo", "replay"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_futuretop"));
    c.args(args).current_dir(manifest_dir()).env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

fn futuretop(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The event log as JSON values, one a line.
fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The final event (`done`, `exception`, `cancelled`) of the future named `task`.
fn final_event<'a>(log: &'a [Value], task: &str) -> &'a Value {
    let ends: Vec<&Value> = log
        .iter()
        .filter(|e| e["task"] == task && matches!(e["event"].as_str(), Some("done" | "exception" | "cancelled")))
        .collect();
    assert_eq!(ends.len(), 1, "{task} should end exactly once: {ends:?}");
    ends[0]
}

/// A scenario run headless with an event log: its output and its events.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    log: Vec<Value>,
}

fn run_headless(args: &[&str]) -> Run {
    let dir = scratch("run");
    let log = dir.join("events.jsonl");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--headless", "--events", log.to_str().unwrap()]);
    let out = futuretop(&all);
    let run = Run { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr), log: events(&log) };
    assert!(!run.stderr.contains("panicked"), "{args:?} panicked:\n{}", run.stderr);
    assert_eq!(run.log.last().unwrap()["event"], "run_finished", "{args:?}: the log does not end with run_finished");
    assert_eq!(run.log.last().unwrap()["exit_code"], run.code.unwrap(), "{args:?}: run_finished's exit code");
    assert!(
        run.stdout.ends_with(&format!("event log: {}\nexit code {}\n", log.display(), run.code.unwrap())),
        "{args:?}: the summary should end with the event log's path and the exit code:\n{}",
        run.stdout
    );
    let _ = std::fs::remove_dir_all(dir);
    run
}

/// Runs `yaml` (written to a scratch file) headless; see [`run_headless`].
fn run_yaml(tag: &str, yaml: &str) -> Run {
    let dir = scratch(tag);
    let file = dir.join(format!("{tag}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let run = run_headless(&["run", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(dir);
    run
}

/// The `seq` of the first `event` of `task` in the log.
fn seq(log: &[Value], event: &str, task: &str) -> Option<u64> {
    log.iter().find(|e| e["event"] == event && e["task"] == task).and_then(|e| e["seq"].as_u64())
}

// ---------------------------------------------------------------------------------------
// --help, --version, demo, validate

#[test]
fn help_works_for_the_program_and_every_subcommand() {
    let out = futuretop(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Usage: futuretop"), "{stdout}");
    for sub in SUBCOMMANDS {
        assert!(stdout.contains(sub), "the top-level help should list {sub}:\n{stdout}");
        for args in [vec![sub, "--help"], vec!["help", sub]] {
            let out = futuretop(&args);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            assert!(stdout.contains(&format!("Usage: futuretop {sub}")), "{args:?}:\n{stdout}");
        }
    }
    // The run options are documented where they apply.
    let run_help = text(&futuretop(&["run", "--help"]).stdout);
    for option in ["--headless", "--events", "--on-deadlock"] {
        assert!(run_help.contains(option), "run --help should document {option}:\n{run_help}");
    }
}

#[test]
fn version_works_for_the_program_and_every_subcommand() {
    // DESIGN §4: "`--help` and `--version` everywhere".
    let version = env!("CARGO_PKG_VERSION");
    let mut failures = Vec::new();
    for args in [vec!["--version"], vec!["-V"]].into_iter().chain(SUBCOMMANDS.iter().map(|sub| vec![*sub, "--version"]))
    {
        let out = futuretop(&args);
        let stdout = text(&out.stdout);
        if out.status.code() != Some(0) || !stdout.contains("futuretop") || !stdout.contains(version) {
            failures.push(format!(
                "{args:?}: exit {:?}, stdout {stdout:?}, stderr {:?}",
                out.status.code(),
                text(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "--version failed:\n{}", failures.join("\n"));
}

#[test]
fn demo_lists_every_bundled_scenario() {
    let out = futuretop(&["demo"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for name in ["example", "deadlock-cycle", "deadlock-starvation", "primes", "urls", "batch", "flaky"] {
        assert!(stdout.lines().any(|l| l.split_whitespace().next() == Some(name)), "{name} missing from:\n{stdout}");
    }
    let out = futuretop(&["demo", "no-such-demo", "--headless"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown demo 'no-such-demo'"), "{}", text(&out.stderr));
}

#[test]
fn validate_says_ok_for_every_bundled_file() {
    let mut files = vec!["config.example.yaml".to_owned()];
    for entry in std::fs::read_dir(manifest_dir().join("assets")).unwrap() {
        files.push(format!("assets/{}", entry.unwrap().file_name().to_string_lossy()));
    }
    assert!(files.len() >= 6, "{files:?}");
    // Validating a slurm pool asks the cluster (sinfo): only where there is one.
    let slurm = Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success());
    for file in files {
        let yaml = std::fs::read_to_string(manifest_dir().join(&file)).unwrap();
        if !slurm && yaml.contains("kind: slurm") {
            println!("validate {file}: skipped, no Slurm cluster answers here");
            continue;
        }
        let out = futuretop(&["validate", &file]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        assert!(stdout.starts_with(&format!("{file}: ok (")), "{file}: {stdout}");
    }
}

// ---------------------------------------------------------------------------------------
// Every bundled scenario, headless

#[test]
fn primes_runs_and_matches_python() {
    for args in [&["demo", "primes"][..], &["run", "assets/primes.yaml"][..]] {
        let run = run_headless(args);
        assert_eq!(run.code, Some(0), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("6 futures: 6 done, 0 failed, 0 cancelled"), "{}", run.stdout);
        let results: Vec<Value> =
            (0..6).map(|i| final_event(&run.log, &format!("is_prime[{i}]"))["result"].clone()).collect();
        assert_eq!(results, PYTHON_PRIMES.map(Value::Bool), "{args:?}");
        // A process pool: every task ran in a worker process with a pid.
        assert!(run.log.iter().filter(|e| e["event"] == "running").all(|e| e["pid"].as_u64().is_some()));
    }
}

#[test]
fn urls_starts_its_own_server_and_one_url_fails() {
    let run = run_headless(&["demo", "urls"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("serving the demo pages on http://127.0.0.1:"), "{}", run.stderr);
    assert!(run.stdout.contains("5 futures: 4 done, 1 failed, 0 cancelled"), "{}", run.stdout);
    let failed = final_event(&run.log, "load_url[4]");
    assert_eq!(failed["event"], "exception");
    assert_eq!(failed["error"]["type"], "TaskError");
    assert!(run.stdout.contains("load_url[4]: TaskError: http://127.0.0.1:1/nonexistant-subdomain"), "{}", run.stdout);
    for i in 0..4 {
        let done = final_event(&run.log, &format!("load_url[{i}]"));
        assert_eq!(done["event"], "done");
        assert!(done["result"].as_u64().unwrap() >= 1000, "page size {}", done["result"]);
    }
}

#[test]
fn batch_fails_with_a_broken_process_pool_that_names_the_worker() {
    let run = run_headless(&["demo", "batch"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("13 futures: 8 done, 4 failed, 1 cancelled"), "{}", run.stdout);
    // The worker that ran 'segfault' is named by its pid.
    let running = run.log.iter().find(|e| e["event"] == "running" && e["task"] == "segfault").unwrap();
    let pid = running["pid"].as_u64().unwrap();
    let crashed = final_event(&run.log, "segfault");
    assert_eq!(crashed["error"]["type"], "BrokenProcessPool");
    let message = crashed["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("(pid {pid})")), "{message}");
    assert!(message.contains("while running 'segfault'"), "{message}");
    assert!(message.contains("killed by signal"), "{message}");
    let line = run.stdout.lines().find(|l| l.trim_start().starts_with("segfault: BrokenProcessPool:")).unwrap();
    assert!(line.contains(&format!("(pid {pid})")) && line.contains("'segfault'"), "{line}");
    // The pool's pending futures fail the same way; the rest of the batch is unaffected.
    for t in ["after-crash[0]", "after-crash[1]"] {
        assert_eq!(final_event(&run.log, t)["error"]["type"], "BrokenProcessPool");
    }
    assert!(run.stdout.contains("upload: TaskError: upload refused: quota exceeded"), "{}", run.stdout);
    assert!(run.stdout.contains("notify: dependency 'upload' failed"), "{}", run.stdout);
    assert!(run.stderr.contains("pool 'fragile' broke"), "{}", run.stderr);
}

/// A task submitted to a pool that broke before it: it fails with the pool's error (as
/// those queued when it broke do, and as Python's submit raises it), not cancelled —
/// whichever comes first, the crash or the submit, the counts are the same.
#[test]
fn a_task_submitted_to_a_broken_pool_fails_with_its_error() {
    let run = run_yaml(
        "broken-pool",
        "pools:\n  io: { kind: thread, max_workers: 1 }\n  fragile: { kind: process, max_workers: 1 }\n\
         tasks:\n\
         \x20 - { name: segfault, pool: fragile, call: crash }\n\
         \x20 - { name: later, pool: io, call: sleep, args: { secs: 0.3 } }\n\
         \x20 - { name: after, pool: fragile, call: sleep, args: { secs: 0 }, depends_on: [later] }\n",
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("3 futures: 1 done, 2 failed, 0 cancelled"), "{}", run.stdout);
    let after = final_event(&run.log, "after");
    assert_eq!(after["event"], "exception", "{after}");
    assert_eq!(after["error"]["type"], "BrokenProcessPool", "{after}");
    assert!(after["error"]["message"].as_str().unwrap().contains("while running 'segfault'"), "{after}");
}

/// `depends_on: [a_map]` is one edge to the whole map: its dependents start once every item
/// is done; the first item that fails cancels them, naming that item, and the
/// cancellation goes on down the chain.
#[test]
fn a_dependency_on_a_map_waits_for_all_its_items_and_a_failed_item_cancels_with_its_name() {
    let run = run_yaml(
        "groups",
        "pools:\n  io: { kind: thread, max_workers: 3 }\n\
         tasks:\n\
         \x20 - { name: a, call: sleep, map: { secs: [0.05, 0.15, 0.1] } }\n\
         \x20 - { name: b, call: sleep, map: { secs: [0, 0] }, depends_on: [a] }\n\
         \x20 - { name: f, call: fail, map: { message: [x, y] } }\n\
         \x20 - { name: g, call: sleep, args: { secs: 0 }, depends_on: [f, a] }\n\
         \x20 - { name: h, call: sleep, args: { secs: 0 }, depends_on: [g] }\n",
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("9 futures: 5 done, 2 failed, 2 cancelled"), "{}", run.stdout);
    let last_a = (0..3).map(|i| seq(&run.log, "done", &format!("a[{i}]")).unwrap()).max().unwrap();
    for i in 0..2 {
        let started = seq(&run.log, "running", &format!("b[{i}]")).unwrap();
        assert!(started > last_a, "b[{i}] ran before every item of a was done");
        assert_eq!(final_event(&run.log, &format!("b[{i}]"))["event"], "done");
    }
    let g = final_event(&run.log, "g");
    assert_eq!(g["event"], "cancelled", "{g}");
    let reason = g["reason"].as_str().unwrap();
    assert!(reason.starts_with("dependency 'f[") && reason.ends_with("]' failed"), "{reason}");
    assert_eq!(final_event(&run.log, "h")["reason"], "dependency 'g' was cancelled");
}

/// `depends_on: [{ each: download }]`: item i waits on item i only (a download-then-process
/// pipeline), and a failed item cancels only its partner, naming it.
#[test]
fn each_item_of_a_map_waits_on_the_same_item_of_another() {
    let run = run_yaml(
        "each",
        "pools:\n  io: { kind: thread, max_workers: 4 }\n\
         tasks:\n\
         \x20 - { name: download, call: sleep, map: { secs: [0.4, 0, 0] } }\n\
         \x20 - { name: process, call: sleep, map: { secs: [0, 0, 0] }, depends_on: [{ each: download }] }\n\
         \x20 - { name: fetch, call: fail, map: { message: [a, b] } }\n\
         \x20 - { name: use, call: sleep, map: { secs: [0, 0] }, depends_on: [{ each: fetch }] }\n",
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("10 futures: 6 done, 2 failed, 2 cancelled"), "{}", run.stdout);
    for i in 0..3 {
        let started = seq(&run.log, "running", &format!("process[{i}]")).unwrap();
        assert!(
            started > seq(&run.log, "done", &format!("download[{i}]")).unwrap(),
            "process[{i}] before its download"
        );
    }
    // The quick items do not wait for the slow first download.
    assert!(seq(&run.log, "running", "process[1]").unwrap() < seq(&run.log, "done", "download[0]").unwrap());
    for (i, item) in ["a", "b"].iter().enumerate() {
        let e = final_event(&run.log, &format!("use[{i}]"));
        assert_eq!(e["event"], "cancelled", "{item}: {e}");
        assert_eq!(e["reason"], format!("dependency 'fetch[{i}]' failed"));
    }
}

/// `chunksize:` on a process pool's `map:` task sends its items to a worker that many at
/// a time (Python's `map(..., chunksize=n)`): a chunk's items are all running before the
/// first of them is done; results and events are each item's own.
#[test]
fn chunksize_sends_a_maps_items_to_a_worker_in_chunks() {
    let run = run_yaml(
        "chunks",
        "pools:\n  cpu: { kind: process, max_workers: 1 }\n\
         tasks:\n\
         \x20 - { name: p, pool: cpu, call: pow, args: { exp: 2 }, map: { base: [1, 2, 3, 4, 5, 6, 7] }, chunksize: 3 }\n",
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("7 futures: 7 done"), "{}", run.stdout);
    for i in 0..7u64 {
        let done = final_event(&run.log, &format!("p[{i}]"));
        assert_eq!(done["result"], (i + 1) * (i + 1), "{done}");
    }
    // [0, 1, 2], [3, 4, 5], [6]: a chunk is sent whole, so all of it runs before any of it ends.
    for chunk in [&[0, 1, 2][..], &[3, 4, 5], &[6]] {
        let first_done = chunk.iter().map(|i| seq(&run.log, "done", &format!("p[{i}]")).unwrap()).min().unwrap();
        for i in chunk {
            assert!(seq(&run.log, "running", &format!("p[{i}]")).unwrap() < first_done, "p[{i}] of chunk {chunk:?}");
        }
    }
    // Without chunks the one worker runs an item at a time.
    let plain = run_yaml(
        "no-chunks",
        "pools:\n  cpu: { kind: process, max_workers: 1 }\n\
         tasks:\n\
         \x20 - { name: p, pool: cpu, call: pow, args: { exp: 2 }, map: { base: [1, 2] } }\n",
    );
    assert!(seq(&plain.log, "done", "p[0]").unwrap() < seq(&plain.log, "running", "p[1]").unwrap());
}

#[test]
fn deadlock_cycle_fails_with_exit_3_or_is_broken() {
    let run = run_headless(&["demo", "deadlock-cycle", "--on-deadlock", "fail"]);
    assert_eq!(run.code, Some(3), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("deadlock: 'a' waits on 'b' and 'b' waits on 'a'"), "{}", run.stderr);
    assert!(run.stderr.contains("  stopping the run (--on-deadlock fail)"), "{}", run.stderr);
    assert!(run.stdout.contains("stopped: deadlock 'a' → 'b' (--on-deadlock fail)\n"), "{}", run.stdout);
    // Headless, nobody can press a key: no message names one.
    assert!(!run.stderr.contains("press") && !run.stderr.contains("Press"), "{}", run.stderr);

    let run = run_headless(&["demo", "deadlock-cycle", "--on-deadlock", "break"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("2 futures: 0 done, 2 failed"), "{}", run.stdout);
    assert!(!run.stdout.contains("stopped: deadlock"), "{}", run.stdout);
    // The victim gets the DeadlockError; the other re-raises it from its wait, as
    // `b.result()` re-raises b's exception in Python.
    for t in ["a", "b"] {
        assert_eq!(final_event(&run.log, t)["error"]["type"], "DeadlockError");
    }
    // The summary tells them apart: the one chosen, and the one that waited on it.
    let victim = run
        .log
        .iter()
        .find(|e| e["event"] == "deadlock")
        .and_then(|e| e["victim"].as_str())
        .expect("the deadlock names its victim")
        .to_owned();
    let other = if victim == "a" { "b" } else { "a" };
    assert!(run.stdout.contains(&format!("  {victim}: DeadlockError (chosen to break 'a' → 'b')\n")), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("  {other}: failed because '{victim}', which it waited on, raised DeadlockError\n")),
        "{}",
        run.stdout
    );
}

#[test]
fn deadlock_starvation_is_broken_and_the_inner_pow_then_runs() {
    let run = run_headless(&["demo", "deadlock-starvation", "--on-deadlock", "break"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("pool 'single' has 1 worker"), "{}", run.stderr);
    assert!(run.stdout.contains("wait_on_future: DeadlockError"), "{}", run.stdout);
    let pow = final_event(&run.log, "wait_on_future/pow");
    assert_eq!(pow["event"], "done");
    assert_eq!(pow["result"], 25);
}

#[test]
fn the_default_demo_runs_headless() {
    // The embedded config.example.yaml; break its deadlock rather than wait 8 s for a timeout.
    let run = run_headless(&["demo", "example", "--on-deadlock", "break"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("24 futures: 19 done, 4 failed, 1 cancelled"), "{}", run.stdout);
    assert!(run.stdout.contains("retries: 2 (0 tasks succeeded only after a retry)"), "{}", run.stdout);
    for line in [
        "flaky: TaskError: upstream returned 503",
        "broken-command: CommandFailed: `sh` exited with status 3: disk full",
        "publish: dependency 'flaky' failed",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing:\n{}", run.stdout);
    }
    assert_eq!(final_event(&run.log, "square")["result"], 25);
    assert_eq!(final_event(&run.log, "primes[5]")["result"], false);
    assert_eq!(final_event(&run.log, "power")["result"].as_str().map(str::len), Some(3099));
}

#[test]
fn the_flaky_demo_retries_times_out_and_stalls_then_succeeds() {
    let run = run_headless(&["demo", "flaky"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("9 futures: 9 done, 0 failed, 0 cancelled"), "{}", run.stdout);
    assert!(run.stdout.contains("retries: 3 (2 tasks succeeded only after a retry)"), "{}", run.stdout);
    for line in
        ["retry: 'fetch-orders' attempt 2/3 failed; attempt 3 in 1.0s", "retry: 'fetch-stock' attempt 1/3 failed"]
    {
        assert!(run.stderr.contains(line), "{line:?} missing:\n{}", run.stderr);
    }
    // After 3 s or a little more (the check comes every half second).
    let stall = run.stderr.lines().find(|l| l.starts_with("stalled: no future has changed state for "));
    assert!(stall.is_some_and(|l| l.contains("; running: 'report' for ")), "{}", run.stderr);
}

#[test]
fn replay_prints_the_recorded_runs_summary() {
    let dir = scratch("replay");
    let log = dir.join("events.jsonl");
    let out = futuretop(&["demo", "primes", "--headless", "--events", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let replay = futuretop(&["replay", log.to_str().unwrap(), "--headless"]);
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay.stderr));
    let first = |o: &Output| text(&o.stdout).lines().next().unwrap().split(" in ").next().unwrap().to_owned();
    assert_eq!(first(&replay), first(&out));
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// Ctrl-C

/// Polls `cond` every 10 ms until it holds or the deadline passes.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigint_mid_run_exits_130_with_a_complete_log_and_no_child_left() {
    signal_mid_run(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_mid_run_exits_130_with_a_complete_log_and_no_child_left() {
    signal_mid_run(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sighup_mid_run_exits_130_with_a_complete_log_and_no_child_left() {
    signal_mid_run(nix::sys::signal::Signal::SIGHUP);
}

/// A headless run with two thread-pool commands, two process-pool workers and a queued
/// task, stopped by `signal` in the middle.
fn signal_mid_run(signal: nix::sys::signal::Signal) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let dir = scratch(&format!("{signal:?}").to_lowercase());
    let log = dir.join("events.jsonl");
    let mut child =
        command(&["run", "tests/fixtures/run/interrupt.yaml", "--headless", "--events", log.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let pid = child.id();

    // Mid-run: the four long tasks are running ...
    let long_tasks = ["nap", "shell", "crunch", "grind"];
    eventually("the long tasks to be running", || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        long_tasks.iter().all(|t| log.contains(&format!(r#""event":"running","task":"{t}""#)))
    });
    // ... and both commands have started their `sleep`.
    let mut tree = Vec::new();
    eventually("both commands' sleep processes", || {
        tree = descendants(pid);
        tree.iter().filter(|(_, _, cmd)| cmd.starts_with("sleep ")).count() == 2
    });
    let workers = tree.iter().filter(|(_, _, cmd)| cmd.contains("__futuretop_worker")).count();
    assert_eq!(workers, 2, "two worker processes expected: {tree:?}");

    kill(Pid::from_raw(i32::try_from(pid).unwrap()), signal).unwrap();
    let mut status = None;
    eventually("futuretop to exit after the signal", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(status.unwrap().code(), Some(130), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("exit code 130"), "{stdout}");

    // The log is complete: it ends with run_finished, and every future that started ended.
    let events = events(&log);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["exit_code"], 130);
    assert_eq!(last["counts"]["unfinished"], 0, "{last}");
    for t in long_tasks {
        assert_eq!(final_event(&events, t)["error"]["type"], "Killed", "{t}");
    }
    assert_eq!(final_event(&events, "later")["event"], "cancelled");

    // No child is left: every process that was below futuretop is gone (a pid reused
    // since then has another start time).
    eventually("every child process to be gone", || {
        tree.iter().all(|(p, start, _)| proc_stat(*p).is_none_or(|(_, s)| s != *start))
    });
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// The environment a command sees

/// A process-pool worker is started with variables for its own sake (a smaller mimalloc
/// arena, no transparent huge pages) and with its parent's pid; a command, in a worker or
/// in a thread pool, sees none of them, and gets transparent huge pages as futuretop has
/// them (the worker turned them off only for its own start-up). What the user's
/// environment or the task's `env:` sets always reaches it.
#[test]
fn a_command_does_not_inherit_what_futuretop_set_for_itself() {
    let dir = scratch("env");
    let file = dir.join("env.yaml");
    let show = r#"["sh", "-c", "echo vars: ${MIMALLOC_ARENA_RESERVE-unset} ${MIMALLOC_ALLOW_THP-unset} ${FUTURETOP_ADDED_ENV-unset} ${FUTURETOP_PARENT_PID-unset} thp:$(grep -s THP_enabled /proc/self/status | tr -dc 0-9)"]"#;
    // Transparent huge pages as this test process has them (futuretop inherits them).
    let thp = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("THP_enabled"))
        .map(|l| l.chars().filter(char::is_ascii_digit).collect::<String>())
        .unwrap_or_default();
    std::fs::write(
        &file,
        format!(
            "name: env\npools:\n  pr: {{ kind: process, max_workers: 1 }}\n  th: {{ kind: thread, max_workers: 1 }}\n\
             tasks:\n\
             \x20 - {{ name: in-process-pool, pool: pr, command: {show} }}\n\
             \x20 - {{ name: in-thread-pool, pool: th, command: {show} }}\n\
             \x20 - {{ name: own-value, pool: pr, command: {show}, env: {{ MIMALLOC_ARENA_RESERVE: 8M }} }}\n\
             \x20 - {{ name: own-pid-var, pool: th, command: {show}, env: {{ FUTURETOP_PARENT_PID: '7' }} }}\n\
             \x20 - {{ name: own-pid-var-in-worker, pool: pr, command: {show}, env: {{ FUTURETOP_PARENT_PID: '7' }} }}\n"
        ),
    )
    .unwrap();
    // `user`: a value of MIMALLOC_ARENA_RESERVE in futuretop's own environment;
    // `thp_off`: futuretop is started with transparent huge pages turned off.
    let run = |user: Option<&str>, thp_off: bool| {
        let log = dir.join("events.jsonl");
        let args = ["run", file.to_str().unwrap(), "--headless", "--events", log.to_str().unwrap()];
        let mut c = if thp_off {
            // PR_SET_THP_DISABLE is 41; the tests forbid `unsafe`, so python3 (which
            // .ci/run installs) sets it and execs futuretop.
            let mut c = Command::new("python3");
            c.args([
                "-c",
                "import ctypes, os, sys; ctypes.CDLL(None).prctl(41, 1, 0, 0, 0); os.execv(sys.argv[1], sys.argv[1:])",
            ])
            .arg(env!("CARGO_BIN_EXE_futuretop"))
            .args(args)
            .current_dir(manifest_dir())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
            c
        } else {
            command(&args)
        };
        for name in ["MIMALLOC_ARENA_RESERVE", "MIMALLOC_ALLOW_THP", "FUTURETOP_ADDED_ENV", "FUTURETOP_PARENT_PID"] {
            c.env_remove(name);
        }
        if let Some(v) = user {
            c.env("MIMALLOC_ARENA_RESERVE", v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
        let log = events(&log);
        move |task: &str| {
            let done = log.iter().find(|e| e["event"] == "done" && e["task"] == task);
            done.unwrap_or_else(|| panic!("{task} is not done: {log:?}"))["result"].as_str().unwrap().trim().to_owned()
        }
    };
    let result = run(None, false);
    assert_eq!(result("in-process-pool"), format!("vars: unset unset unset unset thp:{thp}"));
    assert_eq!(result("in-thread-pool"), format!("vars: unset unset unset unset thp:{thp}"));
    assert_eq!(result("own-value"), format!("vars: 8M unset unset unset thp:{thp}"));
    assert_eq!(result("own-pid-var"), format!("vars: unset unset unset 7 thp:{thp}"));
    assert_eq!(result("own-pid-var-in-worker"), format!("vars: unset unset unset 7 thp:{thp}"));
    // The user's own setting is theirs: passed on, not replaced, not removed.
    let result = run(Some("16M"), false);
    assert_eq!(result("in-process-pool"), format!("vars: 16M unset unset unset thp:{thp}"));
    assert_eq!(result("in-thread-pool"), format!("vars: 16M unset unset unset thp:{thp}"));
    // Started with THP off, futuretop leaves it off for its commands too (python3 turns
    // it off before it starts futuretop).
    let python3 = crate::common::installed("python3", &["--version"]);
    let python3 = crate::common::can_run(
        "a_command_does_not_inherit_what_futuretop_set_for_itself (THP off)",
        "python3",
        python3,
        "FUTURETOP_PYTHON_TESTS",
    );
    if !thp.is_empty() && python3 {
        let result = run(None, true);
        assert_eq!(result("in-process-pool"), "vars: unset unset unset unset thp:0");
        assert_eq!(result("in-thread-pool"), "vars: unset unset unset unset thp:0");
    }
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// Issue 16: bounded reads, EPIPE, an honest event log

/// A task file or a log with no end (`/dev/zero`) is refused after its bound, not read
/// until memory runs out.
#[test]
fn endless_inputs_are_refused_at_their_bound() {
    let out = futuretop(&["validate", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("larger than 16777216 bytes"), "{}", text(&out.stderr));
    let out = futuretop(&["replay", "/dev/zero", "--headless"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(":1: a line longer than 16 MiB"), "{}", text(&out.stderr));
}

/// Output cut by a closed pipe (`| head`) ends the program quietly with its own exit
/// code: no panic (which would be 101).
#[test]
fn a_closed_pipe_ends_the_program_quietly_with_its_exit_code() {
    if !crate::common::installed("bash", &["--version"]) {
        eprintln!("bash is not installed: skipped");
        return;
    }
    let dir = scratch("epipe");
    let file = dir.join("many.yaml");
    // 3,000 unknown pools: well over the 64 KiB a pipe holds.
    let mut yaml = String::from("tasks:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  - {{ name: t{i}, pool: nowhere, call: sleep, args: {{ secs: 0 }} }}\n"));
    }
    std::fs::write(&file, yaml).unwrap();
    let script = format!(
        "{} validate {} 2>&1 | head -c 100 > /dev/null; echo \"${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_futuretop"),
        file.display()
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    assert_eq!(text(&out.stdout).trim(), "2", "validate's own exit code, not a panic's: {}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// A run whose event log cannot be written in full (`/dev/full`) exits 4, saying so.
#[test]
fn a_run_whose_log_fills_the_disk_exits_4() {
    let dir = scratch("full");
    let file = dir.join("one.yaml");
    std::fs::write(&file, "tasks:\n  - { name: a, call: sleep, args: { secs: 0 } }\n").unwrap();
    let out = futuretop(&["run", file.to_str().unwrap(), "--headless", "--events", "/dev/full"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the event log is incomplete") && stderr.contains("exit code 4"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `replay` shows every whole event of a log that is cut, damaged, of a newer kind or
/// unfinished, says what was wrong, and exits with the recorded exit code only for a
/// whole log (4 otherwise); it refuses a newer format outright.
#[test]
fn replay_is_honest_about_cut_damaged_unknown_and_unfinished_logs() {
    let dir = scratch("honest");
    let file = dir.join("two.yaml");
    std::fs::write(
        &file,
        "tasks:\n  - { name: a, call: sleep, args: { secs: 0 } }\n  - { name: b, call: fail, args: { message: no } }\n",
    )
    .unwrap();
    let log = dir.join("run.jsonl");
    let out = futuretop(&["run", file.to_str().unwrap(), "--headless", "--events", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let whole = std::fs::read_to_string(&log).unwrap();
    let replay = |name: &str, text_of_log: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text_of_log).unwrap();
        let out = futuretop(&["replay", path.to_str().unwrap(), "--headless"]);
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // Whole: the recorded exit code.
    let (code, stdout, _) = replay("whole.jsonl", &whole);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("2 futures: 1 done, 1 failed"), "{stdout}");
    // An unknown kind in the middle is skipped (docs/events.md), the rest is whole.
    let lines: Vec<&str> = whole.lines().collect();
    let mut with_unknown = lines.clone();
    with_unknown.insert(2, r#"{"seq":99,"t":0.1,"event":"from_the_future","x":1}"#);
    let (code, stdout, stderr) = replay("unknown.jsonl", &(with_unknown.join("\n") + "\n"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.contains("2 futures: 1 done, 1 failed"), "{stdout}");
    assert!(stderr.contains("1 events of kinds this version does not know were skipped"), "{stderr}");
    // Cut in the middle of its last line: what is whole is shown; it did not finish.
    let cut = &whole[..whole.len() - 20];
    let (code, stdout, stderr) = replay("cut.jsonl", cut);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stdout.contains("2 futures"), "{stdout}");
    assert!(stderr.contains("the log ends in the middle of this line"), "{stderr}");
    assert!(stderr.contains("the run did not finish"), "{stderr}");
    // A damaged line in the middle costs only itself.
    let mut damaged = lines.clone();
    damaged[2] = "{ not json";
    let (code, stdout, stderr) = replay("damaged.jsonl", &(damaged.join("\n") + "\n"));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains(":3: not an event"), "{stderr}");
    assert!(stdout.contains("exit code"), "{stdout}");
    // A newer format is refused, before anything is shown.
    let newer = whole.replacen("\"version\":1", "\"version\":99", 1);
    let (code, stdout, stderr) = replay("newer.jsonl", &newer);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("format version 99") && stdout.is_empty(), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--events` in a directory that does not exist names the path; a command whose `cwd`
/// does not exist fails naming the directory, not the program. (A missing `cwd` is not
/// refused at validation: an earlier task may create it.)
#[test]
fn a_missing_directory_is_named() {
    let dir = scratch("missing-dir");
    let file = dir.join("cwd.yaml");
    std::fs::write(&file, "tasks:\n  - { name: here, command: [\"true\"], cwd: /no/such/dir }\n").unwrap();
    let out = futuretop(&["run", file.to_str().unwrap(), "--headless", "--events", "/no/such/dir/x.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot write the event log /no/such/dir/x.jsonl: "), "{}", text(&out.stderr));
    let run = run_headless(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    let failed = final_event(&run.log, "here");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("its working directory \"/no/such/dir\" does not exist"), "{failed}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Names, messages and errors reach the terminal with their control characters shown
/// escaped: a `fail` message that retitles the window or clears the screen, a task name
/// with a newline, an unknown name in an error (issue 16).
#[test]
fn control_characters_never_reach_the_terminal_raw() {
    let dir = scratch("inject");
    let file = dir.join("inject.yaml");
    std::fs::write(
        &file,
        "tasks:\n\
         \x20 - { name: \"two\\nlines\", call: fail, args: { message: \"\\e]0;owned\\a \\e(0 \\e[2J\" } }\n\
         \x20 - { name: after, call: sleep, args: { secs: 0 }, depends_on: [\"two\\nlines\"] }\n",
    )
    .unwrap();
    let run = run_headless(&["run", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    for stream in [&run.stdout, &run.stderr] {
        assert!(!stream.contains('\u{1b}') && !stream.contains('\u{7}'), "a raw control character: {stream:?}");
    }
    assert!(
        run.stdout.contains("two\\nlines: TaskError: \\u{1b}]0;owned\\u{7} \\u{1b}(0 \\u{1b}[2J"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("after: dependency 'two\\nlines' failed"), "{}", run.stdout);
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "tasks:\n  - { name: a, call: sleep, args: { secs: 0 }, depends_on: [\"\\e[2J\"] }\n")
        .unwrap();
    let out = futuretop(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains('\u{1b}') && stderr.contains("unknown task '\\u{1b}[2J'"), "{stderr:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--events` on a FIFO that no process reads is refused at once, naming it: it used to
/// block before anything ran, with SIGTERM then ending it 143 (issue 16).
#[test]
fn an_events_fifo_without_a_reader_is_refused_at_once() {
    let dir = scratch("fifo");
    let fifo = dir.join("events.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let file = dir.join("one.yaml");
    std::fs::write(&file, "tasks:\n  - { name: a, call: sleep, args: { secs: 0 } }\n").unwrap();
    let started = Instant::now();
    let out = futuretop(&["run", file.to_str().unwrap(), "--headless", "--events", fifo.to_str().unwrap()]);
    assert!(started.elapsed() < Duration::from_secs(10), "it waited for a reader");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("a FIFO that no process reads"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// A `sinfo` that never answers, or prints garbage, during validation: the probe gives up
/// after its deadline, and a message is one short printable line (issue 16).
#[test]
fn a_slurm_probe_has_a_deadline_and_a_bounded_message() {
    let dir = scratch("sinfo");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let file = dir.join("slurm.yaml");
    std::fs::write(&file, "pools:\n  hpc: { kind: slurm, partition: debug }\ntasks:\n  - { name: a, pool: hpc, call: sleep, args: { secs: 0 } }\n").unwrap();
    let fake = |body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let sinfo = bin.join("sinfo");
        std::fs::write(&sinfo, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&sinfo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let started = Instant::now();
        let out = command(&["validate", file.to_str().unwrap()]).env("PATH", path).output().unwrap();
        (out, started.elapsed())
    };
    let (out, took) = fake("exec sleep 1000");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(20), "the probe waited {took:?}");
    assert!(
        text(&out.stderr).contains("the Slurm controller does not answer: sinfo did not answer within 10 s"),
        "{}",
        text(&out.stderr)
    );
    // 200 KB of bytes, control characters included, and a success.
    let (out, _) = fake("head -c 200000 /dev/urandom; exit 0");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown Slurm partition 'debug'"), "{stderr}");
    assert!(stderr.len() < 4096, "{} bytes of message", stderr.len());
    assert!(!stderr.chars().any(|c| c.is_control() && c != '\n'), "{stderr:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// clap quotes a bad argument in its error, and on a terminal (here forced with
/// `CLICOLOR_FORCE`, as a terminal would have it) it printed it raw: a window title set
/// by `futuretop validate x $'\e]0;owned\a'`. The message now comes without colours
/// through the sanitiser when an argument holds a control character, and keeps its
/// colours otherwise.
#[test]
fn a_control_character_in_an_argument_never_reaches_the_terminal_raw() {
    let exe = env!("CARGO_BIN_EXE_futuretop");
    let hostile =
        Command::new(exe).args(["validate", "x", "y\u{1b}]0;owned\u{7}"]).env("CLICOLOR_FORCE", "1").output().unwrap();
    assert_eq!(hostile.status.code(), Some(2));
    let stderr = text(&hostile.stderr);
    assert!(!stderr.contains('\u{1b}') && !stderr.contains('\u{7}'), "{stderr:?}");
    assert!(stderr.contains("unexpected argument"), "{stderr:?}");
    let plain = Command::new(exe).args(["validate", "x", "y"]).env("CLICOLOR_FORCE", "1").output().unwrap();
    assert_eq!(plain.status.code(), Some(2));
    assert!(text(&plain.stderr).contains("\u{1b}["), "clap's colours stay for ordinary arguments");
}

/// A command that floods its output, on a thread and on a process pool: the log holds
/// 200 lines a second a stream, then `[N more lines not shown]` with `dropped: N`, then
/// the last lines printed; every line is published or counted.
#[test]
fn a_flooding_command_logs_where_it_dropped_lines_and_its_last_lines() {
    let run = run_yaml(
        "flood",
        "pools:\n  th: { kind: thread, max_workers: 1 }\n  pr: { kind: process, max_workers: 1 }\n\
         tasks:\n\
         \x20 - { name: t, pool: th, command: [seq, 1, 20000] }\n\
         \x20 - { name: p, pool: pr, command: [seq, 1, 20000] }\n",
    );
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    for task in ["t", "p"] {
        let out: Vec<&Value> = run.log.iter().filter(|e| e["event"] == "output" && e["task"] == task).collect();
        let lines: Vec<&str> =
            out.iter().filter(|e| e.get("dropped").is_none()).filter_map(|e| e["line"].as_str()).collect();
        let dropped: u64 = out.iter().filter_map(|e| e["dropped"].as_u64()).sum();
        assert!(dropped > 0, "{task}: the flood was held back");
        assert_eq!(lines.len() as u64 + dropped, 20_000, "{task}: every line published or counted");
        assert_eq!(lines.last(), Some(&"20000"), "{task}: the last line is in the log");
        let marker = out.iter().find(|e| e.get("dropped").is_some()).expect("a marker");
        assert_eq!(marker["line"], format!("[{} more lines not shown]", marker["dropped"]), "{task}");
    }
}

/// Records a run of `yaml` headless into `log`; its exit code.
fn record(dir: &std::path::Path, tag: &str, yaml: &str) -> (std::path::PathBuf, Option<i32>) {
    let file = dir.join(format!("{tag}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let log = dir.join(format!("{tag}.jsonl"));
    let out = futuretop(&["run", file.to_str().unwrap(), "--headless", "--events", log.to_str().unwrap()]);
    (log, out.status.code())
}

/// `diff` on two recorded runs: what changed, task by task, and exit 1 when a task that
/// succeeded before no longer does; `--json` for scripts.
#[test]
fn diff_compares_two_recorded_runs_and_fails_on_a_lost_success() {
    let dir = scratch("diff");
    let tasks = |second: &str| {
        format!(
            "name: nightly\npools:\n  io: {{ kind: thread, max_workers: 1 }}\ntasks:\n\
             \x20 - {{ name: steady, pool: io, call: sleep, args: {{ secs: 0 }} }}\n\
             \x20 - {{ name: check, pool: io, {second} }}\n"
        )
    };
    let (old, code) = record(&dir, "old", &tasks("call: sleep, args: { secs: 0 }"));
    assert_eq!(code, Some(0));
    let (new, code) = record(&dir, "new", &tasks("call: fail, args: { message: checksum mismatch }"));
    assert_eq!(code, Some(1));
    let out = futuretop(&["diff", old.to_str().unwrap(), new.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a lost success:\n{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("run: ") && stdout.contains("exit 0 → exit 1"), "{stdout}");
    assert!(stdout.contains("changed: 1 tasks (1 unchanged)"), "{stdout}");
    assert!(stdout.contains("check  done → failed") && stdout.contains("(TaskError: checksum mismatch)"), "{stdout}");
    assert!(stdout.contains("regressions: 1 done in OLD and not in NEW: check"), "{stdout}");
    let out = futuretop(&["diff", "--json", old.to_str().unwrap(), new.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["regressions"], serde_json::json!(["check"]));
    assert_eq!(v["tasks"][0]["task"], "check");
    assert_eq!(v["tasks"][0]["old"]["state"], "done");
    assert_eq!(v["tasks"][0]["new"]["state"], "failed");
    // The other way round, nothing was lost: exit 0.
    let out = futuretop(&["diff", new.to_str().unwrap(), old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Not a log: exit 2, with the path.
    let out = futuretop(&["diff", "/dev/null", old.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/dev/null"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

/// `export --chrome-trace` writes what Perfetto reads: every trace event with its
/// required fields, a track per worker, tasks as slices, a wait as a flow.
#[test]
fn export_writes_a_chrome_trace_with_the_required_fields() {
    let dir = scratch("export");
    let (log, code) = record(
        &dir,
        "run",
        "pools:\n  io: { kind: thread, max_workers: 2 }\n  cpu: { kind: process, max_workers: 1 }\ntasks:\n\
         \x20 - { name: target, pool: io, call: sleep, args: { secs: 0.2 } }\n\
         \x20 - { name: waiter, pool: io, call: wait_on, args: { task: target } }\n\
         \x20 - { name: crunch, pool: cpu, call: pow, args: { base: 3, exp: 5 } }\n",
    );
    assert_eq!(code, Some(0));
    let out = futuretop(&["export", "--chrome-trace", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let trace: Value = serde_json::from_slice(&out.stdout).expect("a JSON trace");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        assert!(ph == "M" || e["ts"].is_number(), "{e}");
        assert!(ph != "X" || e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
        assert!(!matches!(ph, "s" | "f") || e["id"].is_u64(), "{e}");
    }
    let slices: Vec<&str> =
        events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "task").filter_map(|e| e["name"].as_str()).collect();
    for t in ["target", "waiter", "crunch"] {
        assert!(slices.contains(&t), "{t} is a slice: {slices:?}");
    }
    let threads = events.iter().filter(|e| e["ph"] == "M" && e["name"] == "thread_name").count();
    assert!(threads >= 3, "a track per worker: {threads}");
    assert_eq!(events.iter().filter(|e| e["ph"] == "s").count(), 1, "the wait's flow");
    assert_eq!(events.iter().filter(|e| e["ph"] == "f").count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// A command that sleeps holds the run still: after `--stall-after` seconds a `stall`
/// event names it (and how long it has run), headless says so, and `--stall-after 0`
/// turns it off.
#[test]
fn a_run_that_stops_moving_reports_a_stall() {
    let dir = scratch("stall");
    let file = dir.join("stall.yaml");
    std::fs::write(&file, "tasks:\n  - { name: hang, command: [sleep, '2.5'] }\n").unwrap();
    let log = dir.join("stall.jsonl");
    let out = futuretop(&[
        "run",
        file.to_str().unwrap(),
        "--headless",
        "--stall-after",
        "1",
        "--events",
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stalls: Vec<Value> = events(&log).into_iter().filter(|e| e["event"] == "stall").collect();
    assert_eq!(stalls.len(), 1, "once a quiet stretch: {stalls:?}");
    let s = &stalls[0];
    assert!(s["after"].as_f64().is_some_and(|a| (1.0..2.5).contains(&a)), "{s}");
    assert_eq!(s["running"][0]["task"], "hang", "{s}");
    assert!(s["running"][0]["running_for"].as_f64().is_some_and(|r| r >= 1.0), "{s}");
    assert_eq!(s["pending"], 0);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("stalled: no future has changed state for 1s; running: 'hang' for "), "{stderr}");
    let out = futuretop(&[
        "run",
        file.to_str().unwrap(),
        "--headless",
        "--stall-after",
        "0",
        "--events",
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(events(&log).iter().all(|e| e["event"] != "stall"), "--stall-after 0: never");
    let _ = std::fs::remove_dir_all(dir);
}
