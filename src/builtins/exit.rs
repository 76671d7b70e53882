//! `exit(code)`: the worker process exits with `code`; only pools whose workers are processes of their own may run it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use futuretop_engine::Exception;

/// `exit(code)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status.
    pub code: i32,
}

impl Callable for Exit {
    const NAME: &'static str = "exit";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        let own_process = p.needs_own_process();
        let code = match p.get("code") {
            None => Some(1),
            Some((v, path)) => p.int(v, &path, "code", 0, 255).and_then(|c| i32::try_from(c).ok()),
        };
        code.filter(|_| own_process).map(|code| Self { code })
    }

    fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception> {
        if cx.in_worker {
            futuretop_engine::executor::worker::kill_process_groups();
            std::process::exit(self.code)
        }
        Err(Exception::task(format!(
            "exit({}) only ends a process worker; in a thread pool it would end the whole program",
            self.code
        )))
    }
}
