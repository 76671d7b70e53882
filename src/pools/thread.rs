//! `kind: thread`: a `ThreadPoolExecutor`; tasks run in this process, and may wait on any future of the run.

use futuretop_engine::{BuildError, Future, SubmitError, ThreadPoolExecutor};
use serde_json::Value;

use super::{Backend, BuildCx, Here, Job, Pool, Spec};

/// The thread pool kind.
pub struct Thread;

impl Backend for Thread {
    fn name(&self) -> &'static str {
        "thread"
    }

    fn worker_limit(&self) -> usize {
        4096
    }

    fn default_workers(&self) -> usize {
        futuretop_engine::executor::default_thread_workers()
    }

    fn build(&self, spec: &Spec<'_>, cx: &BuildCx) -> Result<Box<dyn Pool>, BuildError> {
        let pool = ThreadPoolExecutor::builder()
            .name(spec.name)
            .max_workers(spec.max_workers)
            .sink(std::sync::Arc::clone(&cx.sink))
            .build()?;
        Ok(Box::new(pool))
    }

    fn own_processes(&self) -> bool {
        false
    }

    fn reaches_run(&self) -> bool {
        true
    }
}

impl Pool for ThreadPoolExecutor {
    fn submit(&self, name: &str, job: Box<dyn Job>) -> Result<Future<Value>, SubmitError> {
        self.submit_named(Some(name), Here(job))
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ThreadPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}
