//! What a task runs outside the run's own threads: external commands (run, supervised, their output read), and the callables a process worker serves (the built-ins and commands).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::builtins::{secs, Builtin, RunCx, TaskEnv};
use futuretop_engine::executor::worker::{guard_process_groups, remember_process_group};
use futuretop_engine::{Callables, Exception, Stream, WorkerContext};
use serde::Deserialize;

/// An external program to run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandPlan {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Killed (with its process group) after this many seconds.
    pub timeout: Option<f64>,
}

/// The name under which built-in calls travel to a worker (their args are a serialised
/// [`Builtin`]).
pub const BUILTIN_CALL: &str = "futuretop.builtin";
/// The name under which external commands travel to a worker (args: a serialised
/// [`CommandPlan`]).
pub const COMMAND_CALL: &str = "futuretop.command";

/// What a YAML task's work becomes for a process or Slurm pool's worker: the built-in
/// callables ([`BUILTIN_CALL`], decoded straight into [`Builtin`]) and external commands
/// ([`COMMAND_CALL`]). Commands run without a supervisor: see [`callables_supervised`].
pub fn callables() -> Callables {
    callables_supervised(None)
}

/// [`callables`], with commands run under `supervisor` (a program that serves
/// [`EXEC_ARG`] first thing, as this one does: see [`crate::supervisor`]), so that nothing
/// a command starts outlives it. The program serves these in its workers.
pub fn callables_supervised(supervisor: Option<std::path::PathBuf>) -> Callables {
    let mut c = Callables::new();
    c.register_raw(BUILTIN_CALL, |args, ctx| {
        let b: Builtin =
            serde_json::from_str(args.get()).map_err(|e| Exception::task(format!("a malformed built-in call: {e}")))?;
        run_in_worker(&b, ctx)
    });
    c.register(COMMAND_CALL, move |args, ctx| {
        let cmd = CommandPlan::deserialize(args).map_err(|e| Exception::task(format!("a malformed command: {e}")))?;
        let lines: Arc<Mutex<Vec<(Stream, String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = Arc::clone(&lines);
        let sink: OutputSink = Arc::new(move |stream, line, dropped| {
            if let Ok(mut l) = sink_lines.lock() {
                l.push((stream, line, dropped));
            }
        });
        guard_process_groups();
        let ctx = std::cell::RefCell::new(ctx);
        let result = run_command(
            &cmd,
            &sink,
            &|pgid| {
                remember_process_group(pgid);
                ctx.borrow_mut().group(pgid);
            },
            supervisor.as_deref(),
        );
        let ctx = ctx.into_inner();
        let lines = lines.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
        for (stream, line, dropped) in lines {
            if dropped > 0 {
                ctx.output_dropped(stream, dropped, line);
            } else {
                ctx.output(stream, line);
            }
        }
        result
    });
    c
}

/// Runs a built-in inside a worker: `exit` and `crash` end the process here, waits go
/// to the parent.
fn run_in_worker(b: &Builtin, ctx: &mut dyn WorkerContext) -> Result<Value, Exception> {
    let task = ctx.task_name().to_owned();
    let env = Proxy { ctx: std::cell::RefCell::new(ctx) };
    b.run(&RunCx { task: &task, env: Some(&env), in_worker: true })
}

/// What a process worker's task asks of the run in the parent: sent over the pipe, so
/// the parent's deadlock detector sees the wait like any other.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TaskRequest {
    /// `wait_on`: wait on a plan task's future.
    WaitOn {
        /// The task waited on (index into the plan's tasks).
        task: usize,
        /// Seconds, or forever.
        timeout: Option<f64>,
    },
    /// `submit`: submit a call to a pool and wait on it.
    Submit {
        /// The pool (index into the plan's pools).
        pool: usize,
        /// The inner future's name.
        name: String,
        /// The call.
        call: Builtin,
        /// Seconds, or forever.
        timeout: Option<f64>,
    },
}

/// `wait_on` and `submit` from a worker: asked of the parent over the pipe.
struct Proxy<'a, 'b> {
    ctx: std::cell::RefCell<&'a mut (dyn WorkerContext + 'b)>,
}

impl Proxy<'_, '_> {
    fn ask(&self, request: &TaskRequest) -> Result<Value, Exception> {
        let body = serde_json::to_value(request).map_err(|e| Exception::task(e.to_string()))?;
        self.ctx.borrow_mut().request(body)
    }
}

impl TaskEnv for Proxy<'_, '_> {
    fn wait_on(&self, task: usize, timeout: Option<f64>) -> Result<Value, Exception> {
        self.ask(&TaskRequest::WaitOn { task, timeout })
    }

    fn submit_and_wait(
        &self,
        pool: usize,
        name: String,
        call: Builtin,
        timeout: Option<f64>,
    ) -> Result<Value, Exception> {
        self.ask(&TaskRequest::Submit { pool, name, call, timeout })
    }
}

pub use crate::supervisor::{supervise_command_if_requested, EXEC_ARG};

/// Lines of a command's output kept for its result and the detail view.
pub const OUTPUT_TAIL_LINES: usize = 50;
/// Longest output line kept (longer lines are cut, with a marker).
pub const MAX_LINE_BYTES: usize = 4096;
/// Output lines per second and stream published as events; beyond that they are counted,
/// kept in the tail, and summed up in one line a second (a command printing megabytes a
/// second must not flood the event log or the monitor): `[N more lines not shown]`, then
/// the last [`OUTPUT_TAIL_LINES`] of the lines held back that second, so that the last
/// lines a command printed are always published.
pub const OUTPUT_LINES_PER_SEC: u32 = 200;

/// Receives each line a command prints: its stream, the line, and 0; or, for lines held
/// back ([`OUTPUT_LINES_PER_SEC`]), a line saying so and how many.
pub(crate) type OutputSink = Arc<dyn Fn(Stream, String, u64) + Send + Sync>;

/// Runs an external command in its own process group. Exit 0 gives the output's tail;
/// anything else is a [`Exception::CommandFailed`] that names the status or signal. A
/// kill, or the command's `timeout`, kills the whole process group.
///
/// With a `supervisor` (this program, which serves [`EXEC_ARG`]), the command runs under a
/// small supervisor process that asks for a signal when futuretop dies and then kills the
/// command's whole group: no command outlives futuretop, even a SIGKILLed one.
pub(crate) fn run_command(
    cmd: &CommandPlan,
    output: &OutputSink,
    on_spawn: &dyn Fn(i32),
    supervisor: Option<&std::path::Path>,
) -> Result<Value, Exception> {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = cmd.argv.split_first() else {
        return Err(Exception::CommandFailed("empty command".into()));
    };
    // What futuretop set in its own environment for itself is not the command's; the
    // supervisor, if any, passes the environment on as it gets it.
    let mut command = Command::new(supervisor.map_or(program.as_ref(), |shim| shim.as_os_str()));
    crate::worker_env::command_env(&mut command);
    if supervisor.is_some() {
        command.arg(EXEC_ARG).arg(std::process::id().to_string()).arg(program);
    }
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    if let Some(cwd) = &cmd.cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().map_err(|e| {
        // A missing working directory fails the spawn too: name it, not the program.
        match &cmd.cwd {
            Some(cwd) if !std::path::Path::new(cwd).is_dir() => Exception::CommandFailed(format!(
                "cannot start `{program}`: its working directory {cwd:?} does not exist"
            )),
            _ => Exception::CommandFailed(format!("cannot start `{program}`: {e}")),
        }
    })?;
    let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(2);
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, Stream::Stdout, Arc::clone(&tail), Arc::clone(output), done_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, Stream::Stderr, Arc::clone(&tail), Arc::clone(output), done_tx.clone());
    }
    drop(done_tx);
    if supervisor.is_some() {
        // Until the supervisor has left the group it leads, killing the group would kill
        // it before it can clean up: nobody is told of the group before then.
        crate::supervisor::await_supervisor(&mut child);
    }
    on_spawn(pgid.as_raw());
    let started = Instant::now();
    let limit = cmd.timeout.map(secs);
    let kill_group = || {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        if supervisor.is_some() {
            // The command may have left its group (`setsid`): the supervisor kills it by
            // its pid, then every descendant it left, then exits.
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill_group();
                return Err(Exception::CommandFailed(format!("lost track of `{program}`: {e}")));
            }
        }
        if let Err(e) = futuretop_engine::checkpoint() {
            kill_group();
            wait_killed(&mut child);
            return Err(match e {
                // The task's own limit, as the runner enforces it for every task.
                Exception::Timeout(t) => Exception::Timeout(t),
                _ => Exception::Killed(format!("`{program}` and its process group")),
            });
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            kill_group();
            wait_killed(&mut child);
            // Whatever it was doing: the limit is what it ran into.
            return Err(Exception::Timeout(futuretop_engine::TimeoutError::limit(limit.unwrap_or_default())));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the command left running in its group goes with it (a supervisor has
    // killed all it left, in its group or not, before it exited).
    if supervisor.is_none() {
        kill_group();
    }
    // Wait for the readers to drain the pipes, but not forever: a grandchild that left
    // the group may hold them open.
    let deadline = Instant::now() + Duration::from_secs(2);
    while done_rx.recv_deadline(deadline).is_ok() {}
    let tail: Vec<String> = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
    if status.success() {
        return Ok(Value::String(tail.join("\n")));
    }
    let how = futuretop_engine::status::describe_status(status);
    let last = tail.last().map(|l| format!(": {l}")).unwrap_or_default();
    Err(Exception::CommandFailed(format!("`{program}` {how}{last}")))
}

/// Waits for a killed command (or its supervisor, which cleans up first) to end: five
/// seconds at most, then it is SIGKILLed and reaped.
fn wait_killed(child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Skips to the next newline without holding more than the reader's buffer.
fn skip_rest_of_line(reader: &mut impl BufRead) {
    loop {
        let (found, n) = match reader.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(chunk) => match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, chunk.len()),
            },
        };
        reader.consume(n);
        if found {
            return;
        }
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tail: Arc<Mutex<VecDeque<String>>>,
    output: OutputSink,
    done: crossbeam_channel::Sender<()>,
) {
    // One thread reads the lines; another publishes them at most OUTPUT_LINES_PER_SEC a
    // second, and sums up the rest once a second even while the command prints nothing
    // more (a command that floods, then sleeps, has its last lines shown at once).
    let (lines_tx, lines_rx) = crossbeam_channel::bounded::<String>(1024);
    let reading = std::thread::Builder::new().name("command-output".into()).spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let cut = buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n');
            let mut line = String::from_utf8_lossy(&buf[..buf.len().min(MAX_LINE_BYTES)]).trim_end().to_owned();
            if cut {
                skip_rest_of_line(&mut reader);
                line.push_str(" [...]");
            }
            if let Ok(mut t) = tail.lock() {
                if t.len() == OUTPUT_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.clone());
            }
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    if reading.is_err() {
        // Without a reader thread the output is lost, but the command still runs and ends.
        let _ = done.send(());
        return;
    }
    let done_if_not_started = done.clone();
    let publishing = std::thread::Builder::new().name("command-output".into()).spawn(move || {
        let mut second = Instant::now();
        let (mut shown, mut hidden) = (0u32, 0u64);
        // The last lines held back this second: published after the count of the others.
        let mut held: VecDeque<String> = VecDeque::new();
        let flush = |hidden: &mut u64, held: &mut VecDeque<String>| {
            let not_shown = *hidden - held.len() as u64;
            if not_shown > 0 {
                output(stream, format!("[{not_shown} more lines not shown]"), not_shown);
            }
            for line in held.drain(..) {
                output(stream, line, 0);
            }
            *hidden = 0;
        };
        loop {
            let wait = Duration::from_secs(1).saturating_sub(second.elapsed());
            let next = lines_rx.recv_timeout(wait);
            if second.elapsed() >= Duration::from_secs(1) {
                flush(&mut hidden, &mut held);
                second = Instant::now();
                shown = 0;
            }
            let line = match next {
                Ok(line) => line,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            if shown < OUTPUT_LINES_PER_SEC {
                shown += 1;
                output(stream, line, 0);
            } else {
                hidden += 1;
                if held.len() == OUTPUT_TAIL_LINES {
                    held.pop_front();
                }
                held.push_back(line);
            }
        }
        flush(&mut hidden, &mut held);
        let _ = done.send(());
    });
    if publishing.is_err() {
        let _ = done_if_not_started.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandPlan {
        CommandPlan {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: None,
            timeout: Some(60.0),
        }
    }

    /// Runs `script`, counting the output lines published and their bytes.
    fn run_counting(script: &str) -> (Result<Value, Exception>, usize, usize) {
        let lines = Arc::new(Mutex::new((0usize, 0usize)));
        let seen = Arc::clone(&lines);
        let sink: OutputSink = Arc::new(move |_, line: String, _| {
            let mut l = seen.lock().unwrap();
            l.0 += 1;
            l.1 += line.len();
        });
        let r = run_command(&sh(script), &sink, &|_| {}, None);
        let (n, bytes) = *lines.lock().unwrap();
        (r, n, bytes)
    }

    #[test]
    fn a_flood_of_output_is_rate_limited_and_summed_up() {
        // About 5 million lines in well under a few seconds.
        let (r, published, _) = run_counting("yes | head -n 5000000");
        let tail = r.unwrap();
        assert_eq!(tail.as_str().unwrap().lines().count(), OUTPUT_TAIL_LINES, "the result keeps a bounded tail");
        assert!(published < 5_000, "only ~200 lines a second are published, got {published}");
    }

    /// However fast a command prints, its last lines are published, and every line is
    /// accounted for: published, or counted in a `[N more lines not shown]`.
    #[test]
    fn a_flood_still_publishes_its_last_lines_and_counts_the_rest() {
        let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let sink: OutputSink =
            Arc::new(move |_, line: String, dropped| sink_seen.lock().unwrap().push((line, dropped)));
        run_command(&sh("seq 1 100000"), &sink, &|_| {}, None).unwrap();
        let seen = seen.lock().unwrap();
        let lines: Vec<&str> = seen.iter().filter(|(_, d)| *d == 0).map(|(l, _)| l.as_str()).collect();
        let dropped: u64 = seen.iter().map(|(_, d)| d).sum();
        assert_eq!(lines.len() as u64 + dropped, 100_000, "every line published or counted");
        assert!(dropped > 0, "a flood is held back");
        let last: Vec<String> = (99_951..=100_000).map(|k| k.to_string()).collect();
        assert_eq!(lines[lines.len() - 50..], last.iter().map(String::as_str).collect::<Vec<_>>()[..]);
        assert!(seen.iter().any(|(l, d)| *d > 0 && *l == format!("[{d} more lines not shown]")));
    }

    #[test]
    fn an_endless_line_is_cut_without_holding_it() {
        // 20 MB without a newline, then one more line.
        let (r, published, bytes) = run_counting("head -c 20000000 /dev/zero | tr '\\0' x; echo; echo after");
        let tail = r.unwrap();
        assert!(tail.as_str().unwrap().ends_with("after"), "{tail}");
        assert!(published <= 3, "{published}");
        assert!(bytes < 2 * MAX_LINE_BYTES + 100, "the cut line is at most {MAX_LINE_BYTES} bytes, got {bytes}");
    }

    #[test]
    fn a_command_that_closes_its_pipes_is_waited_for_not_taken_as_ended() {
        // Closing stdout and stderr is not the end of the command: its exit is.
        let start = std::time::Instant::now();
        let (r, _, _) = run_counting("echo before; exec >&- 2>&-; sleep 0.3; exit 3");
        assert!(start.elapsed() >= std::time::Duration::from_millis(300), "ended at pipe EOF");
        let e = r.unwrap_err();
        assert_eq!(e.type_name(), "CommandFailed");
        assert!(e.to_string().contains("status 3"), "{e}");
    }

    #[test]
    fn a_command_that_never_exits_ends_at_its_timeout_with_its_children() {
        // The command and a child of its own, both endless: the timeout kills the group.
        let mut plan = sh("sleep 30 & echo child=$!; sleep 30");
        plan.timeout = Some(0.5);
        let child = Arc::new(Mutex::new(None::<i32>));
        let seen = Arc::clone(&child);
        let sink: OutputSink = Arc::new(move |_, line: String, _| {
            if let Some(pid) = line.strip_prefix("child=") {
                *seen.lock().unwrap() = pid.trim().parse().ok();
            }
        });
        let start = std::time::Instant::now();
        let r = run_command(&plan, &sink, &|_| {}, None);
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the timeout held");
        let e = r.unwrap_err();
        assert_eq!(e.type_name(), "TimeoutError", "{e}");
        assert_eq!(e.to_string(), "ran past its timeout of 0.5 s and was stopped");
        let pid = child.lock().unwrap().expect("the child's pid was printed");
        // The child is gone (or a zombie about to be reaped by init), not sleeping on.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().and_then(|a| a.split_whitespace().next()).map(str::to_owned));
            if state.as_deref().is_none_or(|s| s == "Z") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the command's child {pid} survived its timeout");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
