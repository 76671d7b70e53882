//! `crash`: the worker process dies by a signal; only pools whose workers are processes of their own may run it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use futuretop_engine::Exception;

/// `crash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crash;

impl Callable for Crash {
    const NAME: &'static str = "crash";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        p.needs_own_process().then_some(Self)
    }

    fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception> {
        if cx.in_worker {
            futuretop_engine::executor::worker::kill_process_groups();
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
            // SIGKILL cannot be caught; this line is never reached.
            std::process::abort()
        }
        Err(Exception::task("crash only ends a process worker"))
    }
}
