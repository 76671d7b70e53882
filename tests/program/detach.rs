//! Detached runs (issue 19, first slice): `run --detach` starts the run in a session of its
//! own and returns; `ls` lists it, `attach --headless` follows it from its start, `wait`
//! returns its exit code, `stop` stops it as Ctrl-C would; its event log replays. Bad input
//! still exits 2 before anything detaches, and a state directory another user could
//! reach is refused. Each test has a state directory of its own (`XDG_RUNTIME_DIR`).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::scratch;
use serde_json::Value;

/// Upper bound for anything that should happen soon; a passing test never waits this long.
const DEADLINE: Duration = Duration::from_secs(30);

/// A runtime directory of its own (mode 0700, as a login's is); on drop, whatever a
/// test left running there is stopped (a failed assertion leaves no run behind).
struct Runtime(PathBuf);

impl std::ops::Deref for Runtime {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(self.0.join("futuretop"), std::fs::Permissions::from_mode(0o700));
        let out = futuretop(&self.0, &["ls", "--json"]);
        let live: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for run in live {
            if let Some(id) = run["id"].as_str() {
                let _ = futuretop(&self.0, &["stop", id]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime() -> Runtime {
    let dir = scratch("detach");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    Runtime(dir)
}

/// [`runtime`] under the temp directory, which another user can walk through.
fn runtime_in_tmp() -> Runtime {
    let dir = std::env::temp_dir().join(format!("ft-other-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    Runtime(dir)
}

fn futuretop(runtime: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `yaml` detached; returns its id.
fn detach(runtime: &Path, yaml: &str) -> String {
    let file = runtime.join("job.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = futuretop(runtime, &["run", file.to_str().unwrap(), "--detach"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    // `started run ID (job) — futuretop attach ID --headless`
    let id = said.strip_prefix("started run ").and_then(|r| r.split(' ').next()).unwrap().to_owned();
    assert!(said.contains(&format!("(job) — futuretop attach {id}")), "{said}");
    id
}

/// `ls --all --json`, the run `id`'s entry.
fn listed(runtime: &Path, id: &str) -> Value {
    let out = futuretop(runtime, &["ls", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} is not listed: {}", text(&out.stdout)))
}

/// Whether process `pid` runs: not gone, and not a zombie (a detached run's parent has
/// exited, so whoever adopted it reaps it, perhaps late).
fn alive(pid: i32) -> bool {
    u32::try_from(pid).is_ok_and(|p| futuretop::session::proc_start(p).is_some())
}

#[test]
fn a_detached_run_is_listed_followed_and_waited_for() {
    let rt = runtime();
    let id = detach(
        &rt,
        "pools:\n  t: { kind: thread, max_workers: 2 }\ntasks:\n\
         \x20 - { name: a, pool: t, call: sleep, args: { secs: 0.5 } }\n\
         \x20 - { name: b, pool: t, call: fail, args: { message: boom }, depends_on: [a] }\n",
    );
    let entry = listed(&rt, &id);
    assert_eq!(entry["name"], "job");
    // Its status may not be written yet (the bus writes it about once a second).
    assert!(matches!(entry["total"].as_u64(), Some(0 | 2)), "{entry}");
    // Followed from its start to its end: the summary, and the run's exit code.
    let attached = futuretop(&rt, &["attach", &id, "--headless"]);
    let summary = text(&attached.stdout);
    assert_eq!(attached.status.code(), Some(1), "{summary}{}", text(&attached.stderr));
    assert!(summary.contains("b: TaskError: boom") && summary.contains("exit code 1"), "{summary}");
    assert_eq!(futuretop(&rt, &["wait", &id]).status.code(), Some(1));
    let entry = listed(&rt, &id);
    assert_eq!((entry["state"].as_str(), entry["exit_code"].as_i64()), (Some("finished"), Some(1)), "{entry}");
    assert_eq!((entry["done"].as_u64(), entry["total"].as_u64()), (Some(2), Some(2)), "{entry}");
    // Gone from the live list; its log replays.
    let live = text(&futuretop(&rt, &["ls"]).stdout);
    assert!(!live.contains(&id), "{live}");
    let log = entry["log"].as_str().unwrap();
    assert_eq!(futuretop(&rt, &["replay", "--headless", log]).status.code(), Some(1));
}

#[test]
fn stop_ends_a_detached_run_as_ctrl_c_does() {
    let rt = runtime();
    let (id, _) = blocked_run(&rt);
    let pid = i32::try_from(listed(&rt, &id)["pid"].as_u64().unwrap()).unwrap();
    // A session of its own: no terminal's hangup reaches it.
    assert_eq!(nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid))).unwrap().as_raw(), pid);
    let started = Instant::now();
    let out = futuretop(&rt, &["stop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("stopped run {id} (job), exit code 130")), "{}", text(&out.stdout));
    assert!(started.elapsed() < DEADLINE);
    assert!(!alive(pid), "the run's process is gone once stop returns");
    assert_eq!(futuretop(&rt, &["wait", &id]).status.code(), Some(130));
    // Its log is complete: pending work cancelled, running work killed, 130 recorded.
    let entry = listed(&rt, &id);
    let log = std::fs::read_to_string(entry["log"].as_str().unwrap()).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["exit_code"].as_i64()), (Some("run_finished"), Some(130)));
    assert_eq!(last["counts"]["exception"], 1, "{last}");
    assert_eq!(last["counts"]["cancelled"], 1, "{last}");
    // Asked through the run's control socket, and logged with who asked.
    assert!(log.lines().any(|l| l.contains("\"event\":\"client\"") && l.contains("\"action\":\"stop\"")), "{log}");
    // Stopping it again says so.
    let again = futuretop(&rt, &["stop", &id]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("is not running (finished)"), "{}", text(&again.stderr));
}

#[test]
fn sigterm_ends_a_detached_run_as_stop_does() {
    let rt = runtime();
    let (id, _) = blocked_run(&rt);
    let pid = i32::try_from(listed(&rt, &id)["pid"].as_u64().unwrap()).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(futuretop(&rt, &["wait", &id]).status.code(), Some(130));
    assert!(!alive(pid));
    let log = log_of(&rt, &id);
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!((last["event"].as_str(), last["exit_code"].as_i64()), (Some("run_finished"), Some(130)));
}

#[test]
fn bad_input_exits_2_before_anything_detaches() {
    let rt = runtime();
    let file = rt.join("bad.yaml");
    std::fs::write(&file, "pools:\n  t: { kind: thread, max_workers: 0 }\ntasks: []\n").unwrap();
    let out = futuretop(&rt, &["run", file.to_str().unwrap(), "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad.yaml:2"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(text(&futuretop(&rt, &["ls", "--all"]).stdout).trim(), "no runs");
    // Nothing to wait for, and the message says so.
    let waited = futuretop(&rt, &["wait"]);
    assert_eq!(waited.status.code(), Some(2));
    assert!(text(&waited.stderr).contains("no live run"), "{}", text(&waited.stderr));
}

#[test]
fn a_state_directory_others_could_reach_is_refused() {
    let rt = runtime();
    let dir = rt.join("futuretop");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = futuretop(&rt, &["ls"]);
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out.stderr);
    assert!(said.contains("refusing the state directory") && said.contains("its mode is 0755"), "{said}");
    // A symlink, even to a good directory, is refused too.
    std::fs::remove_dir(&dir).unwrap();
    let elsewhere = rt.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    let out = futuretop(&rt, &["run", "--detach", "whatever.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let file = rt.join("ok.yaml");
    std::fs::write(&file, "pools:\n  t: { kind: thread, max_workers: 1 }\ntasks:\n  - { name: p, pool: t, call: pow, args: { base: 2, exp: 2 } }\n").unwrap();
    let out = futuretop(&rt, &["run", file.to_str().unwrap(), "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("it is a symlink"), "{}", text(&out.stderr));
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "nothing was written through the symlink");
}

/// Pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        if String::from_utf8_lossy(&cmd).replace('\0', " ").contains(needle) {
            out.push(pid);
        }
    }
    out
}

#[track_caller]
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sigkilled_detached_run_leaves_no_worker_and_no_command_behind() {
    let rt = runtime();
    // Unique sleep lengths, so that only this test's processes match.
    let (a, b) = (5000 + std::process::id() % 997, 6000 + std::process::id() % 991);
    let id = detach(
        &rt,
        &format!(
            "pools:\n  io: {{ kind: thread, max_workers: 1 }}\n  cpu: {{ kind: process, max_workers: 1 }}\ntasks:\n\
             \x20 - {{ name: cmd, pool: io, command: [\"sleep\", \"{a}\"] }}\n\
             \x20 - {{ name: proc, pool: cpu, command: [\"sleep\", \"{b}\"] }}\n"
        ),
    );
    let pid = i32::try_from(listed(&rt, &id)["pid"].as_u64().unwrap()).unwrap();
    until("both commands to run", || {
        !processes_with(&format!("sleep {a}")).is_empty() && !processes_with(&format!("sleep {b}")).is_empty()
    });
    // The run's own workers (other tests run theirs meanwhile).
    let parent = |w: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{w}/stat")).unwrap_or_default();
        stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse::<i32>().ok())
    };
    let workers: Vec<u32> =
        processes_with("__futuretop_worker").into_iter().filter(|&w| parent(w) == Some(pid)).collect();
    assert!(!workers.is_empty(), "the process pool's worker is the run's child");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    until("the commands to die with the run", || {
        processes_with(&format!("sleep {a}")).is_empty() && processes_with(&format!("sleep {b}")).is_empty()
    });
    until("its workers to die with it", || workers.iter().all(|w| !alive(i32::try_from(*w).unwrap())));
    // Killed before it could record its end: `ls` says so, `wait` too.
    until("the run to be gone", || listed(&rt, &id)["state"] == "lost");
    let waited = futuretop(&rt, &["wait", &id]);
    assert_eq!(waited.status.code(), Some(4), "{}", text(&waited.stderr));
    assert!(text(&waited.stderr).contains("ended without recording its end"), "{}", text(&waited.stderr));
}

/// A run with a long blocker and a task queued behind it; returns its id and the
/// queued task's future id (from the log).
fn blocked_run(rt: &Path) -> (String, u64) {
    let id = detach(
        rt,
        "pools:\n  t: { kind: thread, max_workers: 1 }\ntasks:\n\
         \x20 - { name: blocker, pool: t, call: sleep, args: { secs: 60 } }\n\
         \x20 - { name: later, pool: t, call: pow, args: { base: 2, exp: 2 } }\n",
    );
    let log = PathBuf::from(listed(rt, &id)["log"].as_str().unwrap());
    let mut later = None;
    until("the queued task's pending event", || {
        later = std::fs::read_to_string(&log).unwrap_or_default().lines().find_map(|l| {
            let e: Value = serde_json::from_str(l).ok()?;
            (e["event"] == "pending" && e["task"] == "later").then(|| e["id"].as_u64()).flatten()
        });
        later.is_some()
    });
    (id, later.unwrap())
}

/// The run's log, as text.
fn log_of(rt: &Path, id: &str) -> String {
    std::fs::read_to_string(listed(rt, id)["log"].as_str().unwrap()).unwrap()
}

#[test]
fn a_client_that_sends_garbage_is_dropped_and_a_good_one_steers_the_run() {
    use futuretop::attach::{Client, ToRun};
    use std::io::{Read, Write};
    let rt = runtime();
    let (id, later) = blocked_run(&rt);
    let socket = rt.join("futuretop").join(format!("{id}.sock"));
    // Garbage, an oversized frame, a frame that is no request: each client is dropped
    // (the run closes its end), and the run goes on.
    for bytes in [&b"\xff\xfe garbage, not a frame at all"[..], &u32::MAX.to_le_bytes()[..], b"\x05\0\0\0{\"a\":"] {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(bytes).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no answer to garbage: {rest:?}");
    }
    // A hello of another version is refused, with the reason.
    assert_eq!(listed(&rt, &id)["state"], "running");
    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    futuretop::attach::write_frame(&mut s, &ToRun::Hello { version: 999 }).unwrap();
    let answer: Option<futuretop::attach::ToClient> = futuretop::attach::read_frame(&mut s).unwrap();
    assert!(matches!(answer, Some(futuretop::attach::ToClient::Refused { ref reason }) if reason.contains("999")));
    // A good client cancels the queued task; the log says who asked.
    let mut client = Client::connect(&socket).unwrap();
    client.send(&ToRun::Cancel { id: later }).unwrap();
    until("the cancel", || log_of(&rt, &id).contains("\"event\":\"cancelled\",\"task\":\"later\""));
    let log = log_of(&rt, &id);
    let asked = log
        .lines()
        .find(|l| l.contains("\"event\":\"client\"") && l.contains("\"action\":\"cancel\""))
        .unwrap_or_else(|| panic!("no client event:\n{log}"));
    assert!(asked.contains(&format!("\"target\":\"#{later}\"")), "{asked}");
    assert!(asked.contains(&format!("uid {}", nix::unistd::geteuid())), "{asked}");
    client.send(&ToRun::Stop).unwrap();
    assert_eq!(futuretop(&rt, &["wait", &id]).status.code(), Some(130));
}

/// Another user reaching the socket (the state directory opened up for the test) is
/// refused by its peer credentials, and the refusal is logged. Needs root, `setpriv`
/// and a python3 any user may run, in `/usr/bin` (the other user's client);
/// `FUTURETOP_OTHER_USER=1` requires them.
#[test]
fn another_user_is_refused_and_the_refusal_is_logged() {
    let test = "another_user_is_refused_and_the_refusal_is_logged";
    let here = nix::unistd::geteuid().is_root()
        && crate::common::installed("setpriv", &["--version"])
        && crate::common::installed("/usr/bin/python3", &["--version"]);
    if !crate::common::can_run(test, "root with setpriv and /usr/bin/python3", here, "FUTURETOP_OTHER_USER") {
        return;
    }
    let rt = runtime_in_tmp();
    let (id, _) = blocked_run(&rt);
    let log_path = PathBuf::from(listed(&rt, &id)["log"].as_str().unwrap());
    let log_of = |_: &Path, _: &str| std::fs::read_to_string(&log_path).unwrap();
    let dir = rt.join("futuretop");
    let socket = dir.join(format!("{id}.sock"));
    for (path, mode) in [(&*rt, 0o711), (dir.as_path(), 0o711), (socket.as_path(), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let script = "import socket, struct, sys\n\
                  s = socket.socket(socket.AF_UNIX)\n\
                  s.connect(sys.argv[1])\n\
                  body = b'{\"op\":\"hello\",\"version\":1}'\n\
                  s.sendall(struct.pack('<I', len(body)) + body)\n\
                  n = struct.unpack('<I', s.recv(4))[0]\n\
                  print(s.recv(n).decode())\n";
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script])
        .arg(&socket)
        .output()
        .unwrap();
    let answer = text(&out.stdout);
    assert!(answer.contains("\"op\":\"refused\""), "{answer}{}", text(&out.stderr));
    until("the refusal in the log", || log_of(&rt, &id).contains("\"action\":\"refused\""));
    let log = log_of(&rt, &id);
    let refused = log.lines().find(|l| l.contains("\"action\":\"refused\"")).unwrap();
    assert!(refused.contains("uid 65534"), "{refused}");
    assert!(!log.contains("\"action\":\"attached\""), "the other user never got in:\n{log}");
    // While the directory is open to others, the owner's own commands refuse it too.
    let refused = futuretop(&rt, &["stop", &id]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("its mode is 0711"), "{}", text(&refused.stderr));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(futuretop(&rt, &["stop", &id]).status.code(), Some(0));
}

/// A run in the foreground is listed too: `ls` shows it, `stop` stops it (its process
/// exits 130, as on Ctrl-C), and `attach` follows it when it writes a log, or says why not.
#[test]
fn a_foreground_run_is_listed_stopped_and_attached_to() {
    let rt = runtime();
    let file = rt.join("fg.yaml");
    std::fs::write(
        &file,
        "pools:\n  t: { kind: thread, max_workers: 1 }\ntasks:\n\
         \x20 - { name: blocker, pool: t, call: sleep, args: { secs: 60 } }\n",
    )
    .unwrap();
    let start = |events: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_futuretop"));
        c.args(["run", file.to_str().unwrap(), "--headless"]).env("XDG_RUNTIME_DIR", &*rt);
        if let Some(log) = events {
            c.arg("--events").arg(log);
        }
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    let live =
        || -> Vec<Value> { serde_json::from_slice(&futuretop(&rt, &["ls", "--json"]).stdout).unwrap_or_default() };
    // Without a log: listed, but nothing to follow.
    let mut quiet = start(None);
    until("the run without a log to be listed", || live().len() == 1);
    let id = live()[0]["id"].as_str().unwrap().to_owned();
    assert!(live()[0]["log"].is_null());
    let attached = futuretop(&rt, &["attach", &id, "--headless"]);
    assert_eq!(attached.status.code(), Some(2));
    assert!(text(&attached.stderr).contains("writes no event log"), "{}", text(&attached.stderr));
    assert_eq!(futuretop(&rt, &["stop", &id]).status.code(), Some(0));
    assert_eq!(quiet.wait().unwrap().code(), Some(130));
    // With a log: another terminal follows it, and stops it.
    let log = rt.join("fg.jsonl");
    let mut logged = start(Some(&log));
    until("the run with a log to be listed", || live().len() == 1);
    let id = live()[0]["id"].as_str().unwrap().to_owned();
    let follower = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(["attach", &id, "--headless"])
        .env("XDG_RUNTIME_DIR", &*rt)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until("the blocker to run", || std::fs::read_to_string(&log).unwrap_or_default().contains("\"event\":\"running\""));
    assert_eq!(futuretop(&rt, &["stop", &id]).status.code(), Some(0));
    assert_eq!(logged.wait().unwrap().code(), Some(130));
    let summary = follower.wait_with_output().unwrap();
    assert_eq!(summary.status.code(), Some(130));
    assert!(text(&summary.stdout).contains("blocker: Killed"), "{}", text(&summary.stdout));
    let ended = listed(&rt, &id);
    assert_eq!((ended["state"].as_str(), ended["exit_code"].as_i64()), (Some("finished"), Some(130)), "{ended}");
}
