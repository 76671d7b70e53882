//! The keeper of a run in the foreground: the process the shell waits on, so that `d` can leave the run going in the background.
//!
//! `futuretop FILE` with the monitor starts itself again as its own child, in the same
//! terminal and the same foreground process group: the child is the run and its monitor,
//! the parent (the keeper) reads nothing and draws nothing. The keeper passes on the
//! signals sent to it (as SIGUSR2, which the run takes as Ctrl-C: a signal the terminal
//! sends reaches both, and a second SIGINT would mean "stop at once") and exits with the
//! run's exit code, or with 0 as soon as the run has detached. On `d` the run restores
//! the terminal, says how to come back, leaves the terminal's session (`setsid`), sends
//! its output to a file and tells the keeper (SIGUSR1), whose exit gives the shell its
//! prompt back while the run goes on.

use std::io;
use std::path::Path;
use std::process::{Command, ExitStatus};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};

/// The signal the keeper sends the run for one it was sent: stop, as Ctrl-C does.
pub const STOP: Signal = Signal::SIGUSR2;

/// Starts the run (`run`: this program again, told it is kept) and keeps it: returns the
/// exit code to exit with, the run's (128 + the signal that killed it), or 0 once the
/// run has left for the background. An error only if the run could not be started.
pub fn keep(mut run: Command) -> Result<u8, String> {
    // Listened for before the run starts, so that none of its signals is missed.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGCHLD])
        .map_err(|e| format!("futuretop: cannot take signals: {e}"))?;
    let mut child = run.spawn().map_err(|e| format!("futuretop: cannot start the run: {e}"))?;
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| format!("futuretop: the run's pid: {e}"))?);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(exit_code(status)),
            Ok(None) => {}
            // Started: it is waited for, whatever happens.
            Err(_) => return Ok(child.wait().map_or(1, exit_code)),
        }
        for signal in signals.wait() {
            match signal {
                // Only the run, once it leads a session of its own, says it has detached.
                SIGUSR1 if nix::unistd::getsid(Some(pid)) == Ok(pid) => return Ok(0),
                SIGUSR1 | SIGCHLD => {}
                _ => {
                    let _ = kill(pid, STOP);
                }
            }
        }
    }
}

/// A process's end as an exit code: its own, or 128 + the signal that killed it.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

/// In the run, at its start: the run stops as on a hang-up if its keeper dies (killed
/// outright, the terminal is as good as gone). An error if the keeper has gone already.
pub fn watch(keeper: u32) -> Result<(), String> {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGHUP);
    if u32::try_from(nix::unistd::getppid().as_raw()).ok() != Some(keeper) {
        return Err("futuretop: the process that started this run has gone".into());
    }
    Ok(())
}

/// Sends the run to the background (its monitor left, the terminal restored): `say`
/// says so on the terminal once nothing that can fail is left to do first; then the run
/// leaves the terminal's session, its standard input reads nothing, its output goes to
/// `out` (created, 0600), and its keeper is told to exit. On an error the run is where
/// it was: in the terminal, kept.
pub fn detach(keeper: u32, out: &Path, say: impl FnOnce()) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let keeper = Pid::from_raw(i32::try_from(keeper).map_err(io::Error::other)?);
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(out)?;
    let null = std::fs::File::open("/dev/null")?;
    // The run leads no process group (its keeper does): setsid cannot fail but for that.
    nix::unistd::setsid().map_err(io::Error::from)?;
    let _ = nix::sys::prctl::set_pdeathsig(None);
    say();
    nix::unistd::dup2_stdin(null).map_err(io::Error::from)?;
    nix::unistd::dup2_stdout(&file).map_err(io::Error::from)?;
    nix::unistd::dup2_stderr(&file).map_err(io::Error::from)?;
    kill(keeper, Signal::SIGUSR1).map_err(io::Error::from)
}
