//! `wait_on(task, timeout)`: that task's result, as `result(timeout)` gives it; needs a pool whose tasks can reach the run's futures.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use crate::schema::describe;
use futuretop_engine::Exception;

/// `wait_on(task, timeout)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitOn {
    /// The task waited on (index into the plan's tasks).
    pub task: usize,
    /// Seconds, or forever.
    pub timeout: Option<f64>,
}

impl Callable for WaitOn {
    const NAME: &'static str = "wait_on";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        if !p.needs_waits() {
            return None;
        }
        let task = p.required("task").and_then(|(v, path)| {
            let Some(t) = v.as_str() else {
                p.error(&path, format!("expected a task name, found {}", describe(v)));
                return None;
            };
            p.task(t, &path)
        });
        let mut ok = true;
        let timeout = p.optional_seconds("timeout", &mut ok);
        task.filter(|_| ok).map(|task| Self { task, timeout })
    }

    fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception> {
        let env = cx.env.ok_or_else(|| Exception::task("wait_on needs the run's futures"))?;
        env.wait_on(self.task, self.timeout)
    }

    fn awaited(&self, mark: &mut dyn FnMut(usize)) {
        mark(self.task);
    }
}
