//! `kind: process`: a `ProcessPoolExecutor` of this program's worker processes (`max_tasks_per_child`); tasks may wait on the run's futures, through their parent.

use std::sync::Arc;

use futuretop_engine::{BuildError, ProcessPoolExecutor};
use serde_json::Value;

use super::{Backend, BuildCx, Job, Keys, Pool, Spec};
use futuretop_engine::{Future, SubmitError};
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
        Ok(Box::new(Chunked(b.build()?)))
    }

    fn own_processes(&self) -> bool {
        true
    }

    fn reaches_run(&self) -> bool {
        true
    }
}

/// A process pool that sends a `map:` task's chunk to a worker in one message.
struct Chunked(ProcessPoolExecutor);

impl Pool for Chunked {
    fn submit(&self, name: &str, job: Box<dyn Job>) -> Result<Future<Value>, SubmitError> {
        self.0.submit_named(Some(name), job.remote())
    }

    fn submit_chunk(&self, jobs: Vec<(String, Box<dyn Job>)>) -> Vec<Result<Future<Value>, SubmitError>> {
        let n = jobs.len();
        let calls = jobs.into_iter().map(|(name, job)| (Some(name), job.remote())).collect();
        match self.0.submit_chunk(calls) {
            Ok(futures) => futures.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); n],
        }
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.0.shutdown(wait, cancel_futures);
    }
}
