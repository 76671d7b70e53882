//! `kind: process`: a `ProcessPoolExecutor` of this program's worker processes (`max_tasks_per_child`); tasks may wait on the run's futures, through their parent.

use std::sync::{Arc, RwLock};

use futuretop_engine::{BuildError, Future, ProcessPoolExecutor, SubmitError};
use serde_json::Value;

use super::{Backend, BuildCx, Job, Keys, Pool, Remote, Spec};
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
        let (name, max_workers, settings) = (spec.name.to_owned(), spec.max_workers, spec.settings.clone());
        let cx = cx.clone();
        let make = move |first: usize| executor(&Spec { name: &name, max_workers, settings: &settings }, &cx, first);
        let first = make(0)?;
        Ok(Box::new(Renewable { current: RwLock::new(Remote(first)), make: Box::new(make) }))
    }

    fn own_processes(&self) -> bool {
        true
    }

    fn reaches_run(&self) -> bool {
        true
    }
}

/// A process pool that a broken one can be replaced by ([`Pool::renew`]): Python's pool
/// stays broken, and so does each executor here; the run goes on with a new one for the
/// retries of the tasks the old one failed.
struct Renewable {
    current: RwLock<Remote<ProcessPoolExecutor>>,
    make: Box<dyn Fn(usize) -> Result<ProcessPoolExecutor, BuildError> + Send + Sync>,
}

impl Renewable {
    fn current(&self) -> std::sync::RwLockReadGuard<'_, Remote<ProcessPoolExecutor>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Pool for Renewable {
    fn submit(&self, name: &str, job: Box<dyn Job>) -> Result<Future<Value>, SubmitError> {
        self.current().submit(name, job)
    }

    fn submit_chunk(&self, jobs: Vec<(String, Box<dyn Job>)>) -> Vec<Result<Future<Value>, SubmitError>> {
        self.current().submit_chunk(jobs)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.current().shutdown(wait, cancel_futures);
    }

    fn is_broken(&self) -> bool {
        self.current().0.broken().is_some()
    }

    fn renew(&self) -> Result<bool, BuildError> {
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0.broken().is_none() {
            return Ok(false);
        }
        let fresh = (self.make)(current.0.workers_started())?;
        let old = std::mem::replace(&mut *current, Remote(fresh));
        drop(current);
        old.shutdown(false, true);
        Ok(true)
    }
}

/// A process pool's executor as `spec` and `cx` give it, its workers numbered from `first + 1`.
fn executor(spec: &Spec<'_>, cx: &BuildCx, first: usize) -> Result<ProcessPoolExecutor, BuildError> {
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
    b.first_worker(first).build()
}

