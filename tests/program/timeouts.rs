//! `timeout:` on every task: a thread task stops at its next wait or checkpoint, a
//! process task's worker is killed, a command's process group is killed; each ends with
//! a `TimeoutError` that names the limit, counted from when the task started running
//! (checked on the events' own times), and a task with retries is retried after it.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use futuretop::events::EventKind;
use futuretop_engine::ErrorKind;

#[test]
fn every_kind_of_task_ends_at_its_timeout_with_a_timeout_error() {
    let dir = crate::common::scratch("timeouts");
    let file = dir.join("t.yaml");
    std::fs::write(
        &file,
        r"
pools:
  io: { kind: thread, max_workers: 4 }
  cpu: { kind: process, max_workers: 1 }
tasks:
  - { name: spinning, pool: io, call: spin, args: { secs: 60 }, timeout: 0.3 }
  - { name: sleeping, pool: io, call: sleep, args: { secs: 60 }, timeout: 0.4, retries: 1, retry_delay: 0 }
  - { name: long, pool: io, call: sleep, args: { secs: 60 } }
  - { name: waiting, pool: io, call: wait_on, args: { task: long }, timeout: 0.5 }
  - { name: in-process, pool: cpu, call: spin, args: { secs: 60 }, timeout: 0.3 }
  - { name: after, pool: cpu, call: pow, args: { base: 2, exp: 4 }, timeout: 30 }
  - { name: command, pool: io, command: [sleep, '60'], timeout: 0.3 }
",
    )
    .unwrap();
    let log = dir.join("run.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .arg("run")
        .arg(&file)
        .args(["--headless", "--events"])
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `long` never ends by itself: the run is stopped once everything else has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut ended: HashMap<String, (f64, ErrorKind, String)> = HashMap::new();
    let mut started: HashMap<u64, f64> = HashMap::new();
    let mut names: HashMap<u64, String> = HashMap::new();
    while ended.len() < 7 {
        assert!(std::time::Instant::now() < deadline, "the timeouts did not all come: {ended:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let Ok(text) = std::fs::read_to_string(&log) else { continue };
        for line in text.lines().filter(|l| l.ends_with('}')) {
            let e: futuretop::events::Event = serde_json::from_str(line).unwrap();
            match &e.kind {
                EventKind::Pending { task, id, .. } => {
                    names.insert(*id, task.to_string());
                }
                EventKind::Running { id, .. } => {
                    started.insert(*id, e.t);
                }
                EventKind::Exception { id, error, task, .. } => {
                    let ran = e.t - started.get(id).copied().unwrap_or(f64::NAN);
                    ended.insert(format!("{task}#{id}"), (ran, error.kind, error.message.clone()));
                }
                EventKind::Done { id, task, .. } => {
                    ended.insert(format!("{task}#{id}"), (e.t - started[id], ErrorKind::TaskError, "done".into()));
                }
                _ => {}
            }
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    );
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let by_task = |name: &str| -> Vec<&(f64, ErrorKind, String)> {
        let mut v: Vec<(&String, &(f64, ErrorKind, String))> =
            ended.iter().filter(|(k, _)| k.split('#').next() == Some(name)).collect();
        v.sort_by_key(|(k, _)| k.split('#').nth(1).and_then(|n| n.parse::<u64>().ok()));
        v.into_iter().map(|(_, x)| x).collect()
    };
    for (task, limit, attempts) in
        [("spinning", 0.3, 1), ("sleeping", 0.4, 2), ("waiting", 0.5, 1), ("in-process", 0.3, 1), ("command", 0.3, 1)]
    {
        let ends = by_task(task);
        assert_eq!(ends.len(), attempts, "{task}: {ended:?}");
        for (ran, kind, message) in ends {
            assert_eq!(*kind, ErrorKind::TimeoutError, "{task}: {message}");
            assert_eq!(message, &format!("ran past its timeout of {limit} s and was stopped"));
            assert!(*ran >= limit - 0.01 && *ran < limit + 5.0, "{task} ran {ran:.3} s for a limit of {limit} s");
        }
    }
    assert_eq!(by_task("after")[0].2, "done", "the process pool goes on with a new worker");
}
