//! The command supervisor: the small process between futuretop and a command that keeps
//! every process the command starts within reach, and kills what is left of it.
//!
//! futuretop starts a command as `PROGRAM __futuretop_exec PARENT_PID COMMAND ARGS...`
//! (this program re-executed). The supervisor
//! - asks the kernel for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`);
//! - becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`): a descendant of the command
//!   that is orphaned, a daemon's double fork or a `setsid` included, is re-parented to
//!   the supervisor instead of to init, so it stays in the supervisor's tree;
//! - starts the command in the process group its parent made for it, then leaves that
//!   group for its parent's, so that killing the command's group never kills it;
//! - when the command ends, however it ends, kills every descendant that is left
//!   (SIGKILL, in rounds until none is left), then exits with the command's status;
//! - on SIGTERM or SIGHUP (futuretop died, or stops the command) kills the command,
//!   which ends it the same way. SIGINT and SIGQUIT from the terminal are futuretop's to
//!   act on: the supervisor ignores them.
//!
//! The limit: a process that the command does not start itself but asks a daemon to
//! start (`systemd-run`, `at`, `docker run -d`) is the daemon's, not the command's; and a
//! supervisor killed on its own with SIGKILL (by hand, or by the OOM killer) cannot clean
//! up after its command.

use std::ffi::OsString;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The hidden first argument that makes this program supervise one command
/// (`PROGRAM __futuretop_exec PARENT_PID COMMAND ARGS...`, `PARENT_PID` being the process
/// that started it); see [`supervise_command_if_requested`].
pub const EXEC_ARG: &str = "__futuretop_exec";

/// Rounds of "find every descendant, kill it, reap" before the supervisor gives up on a
/// tree that keeps growing (each round kills all it sees; a SIGKILLed process cannot fork).
const KILL_ROUNDS: u32 = 1000;

/// If this process was started as a command supervisor, runs the command, kills what it
/// leaves behind and exits with the command's status; else returns.
pub fn supervise_command_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(EXEC_ARG)) {
        return;
    }
    std::process::exit(supervise(&args.collect::<Vec<_>>()));
}

/// The command, once started, and whether a signal asked to stop it.
#[derive(Default)]
struct Stop {
    command: Option<Pid>,
    asked: bool,
}

fn supervise(argv: &[OsString]) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    // The parent's pid comes as an argument, not in the environment, which is the
    // command's own (its task's `env:` included) and passed on as it is.
    let Some((parent, argv)) = argv.split_first() else { return 2 };
    let Some(parent) = parent.to_str().and_then(|p| p.parse::<i32>().ok()) else { return 2 };
    if nix::unistd::getppid().as_raw() != parent {
        return 1;
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let stop = Arc::new(Mutex::new(Stop::default()));
    watch_signals(&stop);
    let Some((program, rest)) = argv.split_first() else { return 2 };
    // The command inherits the process group the parent made (this process leads it).
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start `{}`: {e}", program.to_string_lossy());
            return 127;
        }
    };
    let command = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    {
        let mut s = stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.command = Some(command);
        if s.asked {
            let _ = kill(command, Signal::SIGKILL);
        }
    }
    // Leave the command's group for the parent's: the parent kills the command by its
    // group, and this process must outlive that to clean up.
    if let Ok(home) = nix::unistd::getpgid(Some(nix::unistd::getppid())) {
        let _ = nix::unistd::setpgid(Pid::from_raw(0), home);
    }
    let status = wait_for(command);
    kill_descendants();
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => {
            // Die the way the command died, so that its status reads the same.
            let _ = signal_hook::low_level::emulate_default_handler(sig as i32);
            let _ = kill(nix::unistd::getpid(), sig);
            128 + sig as i32
        }
        _ => 1,
    }
}

/// SIGTERM and SIGHUP kill the command (the main thread then cleans up and exits);
/// SIGINT and SIGQUIT are ignored (this process shares futuretop's group, and so its
/// terminal's signals, once the command runs).
fn watch_signals(stop: &Arc<Mutex<Stop>>) {
    // A handler that only sets a flag nobody reads: the signal does nothing.
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&ignored));
    }
    let Ok(mut signals) =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP])
    else {
        return;
    };
    let stop = Arc::clone(stop);
    let _ = std::thread::Builder::new().name("supervisor".into()).spawn(move || {
        for _ in signals.forever() {
            let mut s = stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.asked = true;
            if let Some(command) = s.command {
                let _ = kill(command, Signal::SIGKILL);
            }
        }
    });
}

/// Waits for the command to end, reaping on the way the orphans that ended under this
/// subreaper.
fn wait_for(command: Pid) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(s @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == command => return s,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            // No child left (cannot happen while the command lives): nothing to wait for.
            Err(_) => return WaitStatus::Exited(command, 1),
        }
    }
}

/// Kills every descendant of this process, in rounds: each round finds the whole tree,
/// kills all of it and reaps what died; the children of a killed process come to this
/// subreaper and are found in the next round.
fn kill_descendants() {
    let mut pause = Duration::from_micros(200);
    for _ in 0..KILL_ROUNDS {
        let tree = descendants();
        if tree.is_empty() {
            return;
        }
        for &pid in &tree {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
        reap();
    }
}

/// Reaps every child that has ended, without waiting for the others.
fn reap() {
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Every descendant of this process (children first), from `/proc/PID/task/*/children`.
fn descendants() -> Vec<i32> {
    let mut out = children_of(nix::unistd::getpid().as_raw());
    let mut i = 0;
    while i < out.len() {
        let more = children_of(out[i]);
        out.extend(more);
        i += 1;
    }
    out
}

/// The children of one process, over all its threads (an orphan is re-parented to a
/// thread of its subreaper, not always the main one).
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let mut path = task.path();
        path.push("children");
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(text.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// In the parent: waits (briefly) until the supervisor `pid` has left the process group
/// it leads, so that killing that group from now on kills the command and never the
/// supervisor. Returns at once if the supervisor has ended (it could not start the
/// command), and after two seconds in any case.
pub(crate) fn await_supervisor(child: &mut std::process::Child) {
    let pid = child.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut pause = Duration::from_micros(50);
    loop {
        match group_of(pid) {
            Some(g) if g != pid => return,
            None => return,
            Some(_) => {}
        }
        if !matches!(child.try_wait(), Ok(None)) || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// The process group of `pid` (field 5 of `/proc/PID/stat`), or `None` if it is gone.
fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold anything but ends at the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(1)?.parse().ok()
}
