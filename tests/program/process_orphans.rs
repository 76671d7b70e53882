//! No orphans: the real `futuretop` binary runs a task file whose process pool does long
//! sleeps and a command with a child of its own; once every worker is up, the parent is
//! killed (SIGKILL, which it cannot catch, and SIGTERM, which it handles) and the test
//! polls `/proc` until neither a worker nor the command's process survives.
//!
//! The workers are found two ways that must agree: the `worker_started` events (with
//! their pids) in the run's `--events` log, and a walk of `/proc` for processes whose
//! command line holds `__futuretop_worker` and whose `FUTURETOP_PARENT_PID` is the run's
//! pid. Every wait is a poll with a generous deadline, never a bare sleep.

// Helpers are test code too: a failed unwrap is a failed test (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futuretop::events::read_log;
use futuretop::events::EventKind;

use crate::common::procs::{alive, processes_exact, workers_of};
use crate::common::scratch;

const EXE: &str = env!("CARGO_BIN_EXE_futuretop");
const DEADLINE: Duration = Duration::from_secs(30);

#[track_caller]
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: still false after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The worker pids the run's event log reports started.
fn started_workers(events: &Path) -> Vec<u32> {
    // The log may end in a half-written line while the run goes on: read whole lines only.
    let Ok(text) = std::fs::read_to_string(events) else { return Vec::new() };
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let tmp = events.with_extension("snapshot.jsonl");
    std::fs::write(&tmp, complete).unwrap();
    read_log(&tmp)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkerStarted { pid, .. } => *pid,
            _ => None,
        })
        .collect()
}

/// Starts a run of a process pool with three workers: two long sleeps and a command that
/// starts a child of its own (`sleep <marker>`); returns once all are running.
fn start_run(name: &str, marker: &str) -> (Child, Vec<u32>, PathBuf) {
    let dir = scratch(name);
    let file = dir.join("sleepers.yaml");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &file,
        format!(
            "name: sleepers\n\
             pools:\n  cpu: {{ kind: process, max_workers: 3 }}\n\
             tasks:\n\
             \x20 - name: nap\n    pool: cpu\n    call: sleep\n    map: {{ secs: [600, 600] }}\n\
             \x20 - name: cmd\n    pool: cpu\n    command: [\"sh\", \"-c\", \"sleep {marker} & wait\"]\n"
        ),
    )
    .unwrap();
    let child = Command::new(EXE)
        .arg("run")
        .arg(&file)
        .arg("--headless")
        .arg("--events")
        .arg(&events)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let parent = child.id();
    let mut workers = Vec::new();
    until("three workers started and the command's child runs", || {
        workers = started_workers(&events);
        workers.len() == 3 && processes_exact(&format!("sleep {marker}")).len() == 1
    });
    let mut seen = workers_of(parent);
    seen.sort_unstable();
    workers.sort_unstable();
    assert_eq!(seen, workers, "the /proc walk and the event log disagree on the workers");
    (child, workers, dir)
}

fn assert_nothing_left(parent: u32, workers: &[u32], marker: &str) {
    until("every worker process is gone", || workers.iter().all(|&p| !alive(p)) && workers_of(parent).is_empty());
    until("the command's child is gone", || processes_exact(&format!("sleep {marker}")).is_empty());
}

#[test]
fn sigkill_of_the_parent_leaves_no_worker_behind() {
    let marker = "1000.31337";
    let (mut child, workers, dir) = start_run("sigkill", marker);
    let parent = child.id();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_nothing_left(parent, &workers, marker);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_of_the_parent_leaves_no_worker_behind() {
    let marker = "1000.31338";
    let (mut child, workers, dir) = start_run("sigterm", marker);
    let parent = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(parent).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the run ignores SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130), "SIGTERM stops the run as interrupted");
    assert_nothing_left(parent, &workers, marker);
    let _ = std::fs::remove_dir_all(dir);
}
