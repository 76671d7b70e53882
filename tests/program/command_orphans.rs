//! No command outlives futuretop: a thread-pool task's command (and the children it
//! started) dies with futuretop even when futuretop itself is SIGKILLed, through the
//! command supervisor (`__futuretop_exec`), which asks the kernel for a signal when its
//! parent dies. A command's own status still reads the same through the supervisor.

use crate::common::scratch;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[track_caller]
fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_sigkilled_futuretop_takes_its_commands_and_their_children_with_it() {
    let dir = scratch("kill");
    // Unique sleep lengths, so that only this test's processes match.
    let (a, b) = (3000 + std::process::id() % 997, 4000 + std::process::id() % 991);
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 2 }}\ntasks:\n  - name: tree\n    pool: io\n    command: [\"sh\", \"-c\", \"sleep {a} & sleep {b}; wait\"]\n"
    );
    std::fs::write(dir.join("tree.yaml"), yaml).expect("write the task file");
    let log = dir.join("events.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", "tree.yaml", "--headless", "--events", "events.jsonl"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("futuretop starts");
    until("the command and its child to run", Duration::from_secs(15), || {
        events(&log).contains("\"event\":\"running\"")
            && !processes_with(&format!("sleep {a}")).is_empty()
            && !processes_with(&format!("sleep {b}")).is_empty()
    });
    child.kill().expect("SIGKILL futuretop");
    let _ = child.wait();
    until("every process of the command to be gone", Duration::from_secs(15), || {
        processes_with(&format!("sleep {a}")).is_empty() && processes_with(&format!("sleep {b}")).is_empty()
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_command_status_reads_the_same_through_the_supervisor() {
    let dir = scratch("status");
    let yaml = "pools:\n  io: { kind: thread, max_workers: 2 }\ntasks:\n  - name: ok\n    pool: io\n    command: [\"sh\", \"-c\", \"echo fine\"]\n  - name: three\n    pool: io\n    command: [\"sh\", \"-c\", \"exit 3\"]\n  - name: segv\n    pool: io\n    command: [\"sh\", \"-c\", \"kill -SEGV $$\"]\n  - name: missing\n    pool: io\n    command: [\"no-such-program-futuretop\"]\n";
    std::fs::write(dir.join("s.yaml"), yaml).expect("write the task file");
    let out = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", "s.yaml", "--headless", "--events", "e.jsonl"])
        .current_dir(&dir)
        .output()
        .expect("futuretop runs");
    assert_eq!(out.status.code(), Some(1));
    let log = events(&dir.join("e.jsonl"));
    assert!(log.contains("\"task\":\"ok\",\"id\":1,\"pool\":\"io\",\"result\":\"fine\""), "{log}");
    assert!(log.contains("`sh` exited with status 3"), "{log}");
    assert!(log.contains("`sh` was killed by signal SIGSEGV"), "{log}");
    assert!(log.contains("no-such-program-futuretop"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Which of SIGINT and SIGTERM this process catches (`SigCgt` in /proc/self/status).
fn caught_int_term() -> (bool, bool) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .expect("a SigCgt line");
    (mask & (1 << (2 - 1)) != 0, mask & (1 << (15 - 1)) != 0)
}

/// Only a process-pool worker kills its commands' groups on SIGTERM or SIGINT: a command
/// run through `Callables` in any other process (a Slurm job, a library user's own)
/// leaves those signals as they were.
#[test]
fn a_command_run_outside_a_worker_leaves_sigterm_and_sigint_alone() {
    struct Quiet;
    impl futuretop_engine::WorkerContext for Quiet {
        fn request(&mut self, _: serde_json::Value) -> Result<serde_json::Value, futuretop_engine::Exception> {
            Err(futuretop_engine::Exception::task("no parent here"))
        }
        fn output(&mut self, _: futuretop_engine::Stream, _: String) {}
        fn group(&mut self, _: i32) {}
    }
    let before = caught_int_term();
    let plan = futuretop::config::CommandPlan { argv: vec!["true".into()], env: Vec::new(), cwd: None, timeout: None };
    let args = serde_json::to_value(plan).expect("a plan serialises");
    let done = futuretop::tasks::callables().call(futuretop::tasks::COMMAND_CALL, &args, &mut Quiet);
    assert!(done.is_ok(), "{done:?}");
    assert_eq!(caught_int_term(), before);
}

/// Unique sleep lengths for one test's processes (so that only they match).
fn markers(base: u32, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("sleep {}", base + 10 * (std::process::id() % 97) + i)).collect()
}

fn gone(marks: &[String]) -> bool {
    marks.iter().all(|m| processes_with(m).is_empty())
}

/// A command that escapes its process group two ways: a daemon's double fork into a new
/// session (`(setsid sleep A &)`, re-parented at once) and a `setsid` child it keeps.
fn escaping(marks: &[String], then: &str) -> String {
    format!(
        "[\"sh\", \"-c\", \"({} &) ; setsid {} & {then}\"]",
        marks[0].replacen("sleep", "setsid sleep", 1),
        marks[1]
    )
}

#[test]
fn what_a_command_starts_in_a_new_session_ends_when_the_command_ends() {
    let dir = scratch("daemon");
    let (t, p) = (markers(5000, 2), markers(6000, 2));
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 2 }}\n  cpu: {{ kind: process, max_workers: 1 }}\ntasks:\n  - name: t\n    pool: io\n    command: {}\n  - name: p\n    pool: cpu\n    command: {}\n",
        escaping(&t, "echo started"),
        escaping(&p, "echo started")
    );
    std::fs::write(dir.join("d.yaml"), yaml).expect("write the task file");
    let out = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", "d.yaml", "--headless"])
        .current_dir(&dir)
        .output()
        .expect("futuretop runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let all: Vec<String> = t.iter().chain(&p).cloned().collect();
    until("the escaped processes to be gone", Duration::from_secs(15), || gone(&all));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sigkilled_futuretop_takes_what_its_commands_started_in_new_sessions() {
    let dir = scratch("kill-setsid");
    let (t, p) = (markers(7000, 3), markers(8000, 3));
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 2 }}\n  cpu: {{ kind: process, max_workers: 1 }}\ntasks:\n  - name: t\n    pool: io\n    command: {}\n  - name: p\n    pool: cpu\n    command: {}\n",
        escaping(&t, &t[2]),
        escaping(&p, &p[2])
    );
    std::fs::write(dir.join("k.yaml"), yaml).expect("write the task file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", "k.yaml", "--headless"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("futuretop starts");
    let all: Vec<String> = t.iter().chain(&p).cloned().collect();
    until("every process to run", Duration::from_secs(15), || all.iter().all(|m| !processes_with(m).is_empty()));
    child.kill().expect("SIGKILL futuretop");
    let _ = child.wait();
    until("every process, escaped or not, to be gone", Duration::from_secs(15), || gone(&all));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_timeout_kills_a_command_that_left_its_group_and_what_it_started() {
    let dir = scratch("timeout-setsid");
    let (t, s) = (markers(9000, 3), markers(9500, 1));
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 2 }}\ntasks:\n  - name: t\n    pool: io\n    timeout: 0.5\n    command: {}\n  - name: s\n    pool: io\n    timeout: 0.5\n    command: [\"setsid\", {:?}, {:?}]\n",
        escaping(&t, &t[2]),
        "sleep",
        s[0].trim_start_matches("sleep ")
    );
    std::fs::write(dir.join("t.yaml"), yaml).expect("write the task file");
    let out = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["run", "t.yaml", "--headless"])
        .current_dir(&dir)
        .output()
        .expect("futuretop runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for task in ["t", "s"] {
        let line = format!("{task}: TimeoutError: ran past its timeout of 0.5 s and was stopped");
        assert!(stdout.contains(&line), "{stdout}");
    }
    let all: Vec<String> = t.iter().chain(&s).cloned().collect();
    until("the timed-out commands' processes to be gone", Duration::from_secs(15), || gone(&all));
    let _ = std::fs::remove_dir_all(&dir);
}
