//! `kind: slurm`: a `SlurmPool`, each task a cluster job (`partition`, `max_jobs`, `time_limit`, `dir`); its cluster is asked at validation; its tasks cannot reach the run's futures.

use std::sync::Arc;

use futuretop_engine::{BuildError, SlurmPool};
use serde_json::Value;

use super::{Backend, BuildCx, Keys, Pool, Remote, Spec};
use crate::schema::{describe, join, positive, Report};

/// The Slurm pool kind.
pub struct Slurm;

/// A Slurm pool's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The partition (default: the cluster's default).
    pub partition: Option<String>,
    /// Each job's time limit in seconds (Slurm counts in whole seconds).
    pub time_limit: Option<u64>,
    /// The directory shared with the nodes.
    pub dir: Option<String>,
}

impl Backend for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["partition", "max_jobs", "time_limit", "dir"]
    }

    fn worker_limit(&self) -> usize {
        100_000
    }

    fn default_workers(&self) -> usize {
        100
    }

    /// `max_jobs`, or `max_workers`, not both.
    fn max_workers(&self, r: &mut dyn Report, path: &str, keys: &Keys<'_>) -> usize {
        match (keys.get("max_workers"), keys.get("max_jobs")) {
            (Some(_), Some(_)) => {
                r.at_key(
                    &join(path, "max_workers"),
                    "give max_jobs (or max_workers) for a slurm pool, not both".into(),
                );
                1
            }
            (None, Some(v)) => positive(r, &join(path, "max_jobs"), "max_jobs", v).unwrap_or(1),
            (Some(v), None) => positive(r, &join(path, "max_workers"), "max_workers", v).unwrap_or(1),
            (None, None) => self.default_workers(),
        }
    }

    /// Its keys; asks the cluster whether it (and the partition) is there.
    fn settings(&self, r: &mut dyn Report, path: &str, keys: &Keys<'_>, probe: bool) -> Value {
        let mut text = |k: &str| match keys.get(k) {
            None => None,
            Some(serde_yaml::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                r.at_value(&join(path, k), format!("expected a string for {k}, found {}", describe(other)));
                None
            }
        };
        let partition = text("partition");
        let dir = text("dir");
        let time_limit = keys
            .get("time_limit")
            .and_then(|v| positive(r, &join(path, "time_limit"), "time_limit (seconds)", v))
            .map(|s| s as u64);
        if let Some(Err(e)) = probe.then(|| futuretop_engine::executor::slurm_pool::check_cluster(partition.as_deref()))
        {
            let at = if keys.contains_key("partition") { join(path, "partition") } else { join(path, "kind") };
            r.at_value(&at, e.to_string());
        }
        serde_json::to_value(Settings { partition, time_limit, dir }).unwrap_or(Value::Null)
    }

    fn build(&self, spec: &Spec<'_>, cx: &BuildCx) -> Result<Box<dyn Pool>, BuildError> {
        let settings: Settings = if spec.settings.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(spec.settings.clone())
                .map_err(|e| BuildError::System(format!("a slurm pool's settings do not read back: {e}")))?
        };
        let mut b = SlurmPool::builder()
            .name(spec.name)
            .max_jobs(spec.max_workers)
            .sink(Arc::clone(&cx.sink))
            .on_value(Arc::clone(&cx.on_value));
        if let Some(part) = settings.partition {
            b = b.partition(part);
        }
        if let Some(s) = settings.time_limit {
            b = b.time_limit_secs(s);
        }
        if let Some(d) = settings.dir {
            b = b.dir(d);
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
        false
    }
}
