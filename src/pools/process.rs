//! `kind: process`: a `ProcessPoolExecutor` of this program's worker processes (`max_tasks_per_child`); tasks may wait on the run's futures, through their parent.

use std::sync::Arc;

use futuretop_engine::{BuildError, ProcessPoolExecutor};
use serde_json::Value;

use super::{Backend, BuildCx, Keys, Pool, Remote, Spec};
use crate::schema::{join, positive, Report};

/// The process pool kind.
pub struct Process;

impl Backend for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["max_tasks_per_child"]
    }

    fn worker_limit(&self) -> usize {
        1024
    }

    fn default_workers(&self) -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }

    fn settings(&self, r: &mut dyn Report, path: &str, keys: &Keys<'_>, _probe: bool) -> Value {
        let key = "max_tasks_per_child";
        keys.get(key).and_then(|v| positive(r, &join(path, key), key, v)).map_or(Value::Null, Value::from)
    }

    fn build(&self, spec: &Spec<'_>, cx: &BuildCx) -> Result<Box<dyn Pool>, BuildError> {
        let mut b = ProcessPoolExecutor::builder()
            .name(spec.name)
            .max_workers(spec.max_workers)
            .sink(Arc::clone(&cx.sink))
            .on_value(Arc::clone(&cx.on_value))
            .on_output(Arc::clone(&cx.on_output))
            .on_request(Arc::clone(&cx.on_request));
        b = crate::worker_env::for_workers(b);
        if let Some(n) = spec.settings.as_u64().and_then(|n| usize::try_from(n).ok()) {
            b = b.max_tasks_per_child(n);
        }
        if let Some(program) = &cx.program {
            b = b.program(program);
        }
        Ok(Box::new(Remote(b.build()?)))
    }

    fn own_processes(&self) -> bool {
        true
    }

    fn reaches_run(&self) -> bool {
        true
    }
}

