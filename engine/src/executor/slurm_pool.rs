//! `SlurmPool`: each call becomes a Slurm job; futures follow the jobs through `sbatch`, `squeue`, `scontrol` and `scancel`.
//!
//! A manager thread submits the calls queued at each turn with one `sbatch` (a job array
//! when there are several; up to `max_jobs` jobs at once) and polls every active job with
//! one `squeue` call per interval, so thousands of jobs cost the controller little. A job runs this program on the node as
//! `PROGRAM __futuretop_slurm_job DIR`: it reads `DIR/call.json`, runs the callable and
//! writes `DIR/result.json` (as submitit does, through a directory the nodes share).
//!
//! Future states follow the job: PENDING while Slurm queues it, RUNNING once Slurm starts
//! it (the worker is the node), then FINISHED with the job's value, or an exception that
//! carries Slurm's reason (time limit, out of memory, node failure, cancelled by an
//! admin, exit status). `cancel()` of a queued job runs `scancel`; `kill()` of a running
//! one too, and the future ends `Killed`. If the controller stops answering for
//! `CONTROLLER_GRACE`, the pool breaks with that reason instead of hanging.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use super::process_pool::ProcessCall;
use super::protocol::WireError;
use super::worker::{from_wire, to_wire, Callables, WorkerContext};
use crate::context::InterruptReason;
use crate::context::Kill;
use crate::error::{BrokenExecutor, BrokenKind, BuildError, Exception, SubmitError};
use crate::future::Future;
use crate::observe::{emit, FutureId, Observation, Sink, SinkRef};
use crate::status::Stream;

/// The hidden first argument that makes this program run one Slurm job.
pub const SLURM_JOB_ARG: &str = "__futuretop_slurm_job";
/// The most calls one job array carries (Slurm's default `MaxArraySize` is 1001).
const MAX_ARRAY: usize = 1000;

/// How often the nodes' load is asked of `sinfo`.
const LOAD_EVERY: Duration = Duration::from_secs(2);

/// How long the controller may fail to answer before the pool breaks.
pub const CONTROLLER_GRACE: Duration = Duration::from_secs(15);

/// Builds a [`SlurmPool`].
#[must_use]
#[derive(Default)]
pub struct SlurmPoolBuilder {
    partition: Option<String>,
    max_jobs: Option<usize>,
    time_limit: Option<u64>,
    dir: Option<PathBuf>,
    program: Option<PathBuf>,
    name: Option<String>,
    poll: Option<Duration>,
    grace: Option<Duration>,
    sink: SinkRef,
    on_value: Option<super::ValueHook>,
}

impl SlurmPoolBuilder {
    /// The partition jobs go to (default: the cluster's default partition).
    pub fn partition(mut self, p: impl Into<String>) -> Self {
        self.partition = Some(p.into());
        self
    }
    /// At most this many jobs submitted at once (default 100).
    pub fn max_jobs(mut self, n: usize) -> Self {
        self.max_jobs = Some(n);
        self
    }
    /// Each job's time limit in seconds (`sbatch --time=M:SS`).
    pub fn time_limit_secs(mut self, s: u64) -> Self {
        self.time_limit = Some(s);
        self
    }
    /// The directory shared with the nodes, for calls and results (default
    /// `.futuretop-slurm/` under the current directory).
    pub fn dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.dir = Some(d.into());
        self
    }
    /// The program jobs run (default: this executable).
    pub fn program(mut self, p: impl Into<PathBuf>) -> Self {
        self.program = Some(p.into());
        self
    }
    /// The pool's name in events.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// How often `squeue` is asked (default 500 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = Some(d);
        self
    }
    /// How long the controller may fail to answer before the pool breaks (default
    /// [`CONTROLLER_GRACE`]).
    pub fn controller_grace(mut self, d: Duration) -> Self {
        self.grace = Some(d);
        self
    }
    /// Reports state changes to `sink`.
    pub fn sink(mut self, s: Arc<dyn Sink>) -> Self {
        self.sink = Some(s);
        self
    }
    /// Sees each value before its future finishes.
    pub fn on_value(mut self, hook: super::ValueHook) -> Self {
        self.on_value = Some(hook);
        self
    }

    /// Checks that Slurm answers (`sinfo`), then starts the manager thread.
    pub fn build(self) -> Result<SlurmPool, BuildError> {
        let partition = self.partition;
        check_cluster(partition.as_deref())?;
        let name: Arc<str> = self.name.unwrap_or_else(|| "slurm".into()).into();
        let dir = match self.dir {
            Some(d) => d,
            None => std::env::current_dir()
                .map_err(|e| BuildError::System(format!("no current directory: {e}")))?
                .join(".futuretop-slurm"),
        };
        let dir = dir.join(format!("{}-{}", name, std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BuildError::System(format!("cannot create {}: {e}", dir.display())))?;
        let program = match self.program {
            Some(p) => p,
            None => {
                std::env::current_exe().map_err(|e| BuildError::System(format!("cannot find this program: {e}")))?
            }
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            name,
            partition,
            max_jobs: self.max_jobs.unwrap_or(100).max(1),
            time_limit: self.time_limit,
            dir,
            program,
            poll: self.poll.unwrap_or(Duration::from_millis(500)),
            grace: self.grace.unwrap_or(CONTROLLER_GRACE),
            sink: self.sink,
            on_value: self.on_value,
            rx,
            tx: Mutex::new(Some(tx)),
            broken: Mutex::new(None),
            jobs: Mutex::new(HashMap::new()),
        });
        let for_thread = Arc::clone(&shared);
        let manager = thread::Builder::new()
            .name(format!("{}-slurm", shared.name))
            .spawn(move || manage(&for_thread))
            .map_err(|e| BuildError::System(format!("cannot start the Slurm manager: {e}")))?;
        Ok(SlurmPool { shared, manager: Mutex::new(Some(manager)) })
    }
}

/// How long a Slurm command (`sinfo`, `squeue`, `scontrol`, `sbatch`, `scancel`) may take
/// before it is killed and taken for a controller that does not answer.
pub const SLURM_DEADLINE: Duration = Duration::from_secs(10);

/// The most of a Slurm command's output (each stream) that is read; the rest is dropped.
const SLURM_OUTPUT: u64 = 1 << 20;

/// Runs a Slurm command with [`SLURM_DEADLINE`] (see [`run_within`]).
fn slurm(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    run_within(cmd, SLURM_DEADLINE)
}

/// Runs `cmd` for at most `limit`, reading at most [`SLURM_OUTPUT`] bytes of each stream
/// (the rest is drained and dropped): a command that hangs, or prints without end,
/// cannot hold the caller. Past the limit it is killed, and the error is `TimedOut`.
fn run_within(cmd: &mut Command, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(SLURM_OUTPUT).read_to_end(&mut buf);
                let _ = std::io::copy(&mut p, &mut std::io::sink());
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = read(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("did not answer within {:.0} s", limit.as_secs_f64()),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// A command's words for a message: one line, at most 200 characters, printable.
fn words(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let clean: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    if text.trim().chars().count() > 200 {
        format!("{clean}...")
    } else {
        clean
    }
}

/// Asks `sinfo` whether the cluster (and the partition) is there.
pub fn check_cluster(partition: Option<&str>) -> Result<(), BuildError> {
    let mut cmd = Command::new("sinfo");
    cmd.args(["-h", "-o", "%P"]);
    let out = slurm(&mut cmd).map_err(|e| {
        BuildError::Cluster(match e.kind() {
            std::io::ErrorKind::NotFound => "Slurm is not installed here: no `sinfo` on PATH".to_owned(),
            std::io::ErrorKind::TimedOut => format!("the Slurm controller does not answer: sinfo {e}"),
            _ => format!("cannot run sinfo: {e}"),
        })
    })?;
    if !out.status.success() {
        return Err(BuildError::Cluster(format!("the Slurm controller does not answer: {}", words(&out.stderr))));
    }
    if let Some(p) = partition {
        let parts: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().trim_end_matches('*').to_owned()).collect();
        if !parts.iter().any(|x| x == p) {
            // Twelve names of at most 60 characters: the message stays short whatever
            // sinfo printed (a name of undecodable bytes is 3 bytes a character).
            let shown: Vec<String> = parts
                .iter()
                .take(12)
                .map(|x| {
                    let w = words(x.as_bytes());
                    if w.chars().count() > 60 {
                        format!("{}...", w.chars().take(60).collect::<String>())
                    } else {
                        w
                    }
                })
                .collect();
            let more = if parts.len() > 12 { format!(", ... ({} in all)", parts.len()) } else { String::new() };
            return Err(BuildError::Cluster(format!(
                "unknown Slurm partition '{p}' (partitions: {}{more})",
                shown.join(", ")
            )));
        }
    }
    Ok(())
}

struct Entry {
    future: Future<Value>,
    call: ProcessCall,
    name: Arc<str>,
}

/// A submitted job.
struct Job {
    entry: Entry,
    slurm_id: String,
    dir: PathBuf,
    running: bool,
    /// Cancelled by `Future::kill` or `Future::time_out`: which.
    killed: Option<InterruptReason>,
    cancelling: bool,
}

struct Shared {
    name: Arc<str>,
    partition: Option<String>,
    max_jobs: usize,
    time_limit: Option<u64>,
    dir: PathBuf,
    program: PathBuf,
    poll: Duration,
    grace: Duration,
    sink: SinkRef,
    on_value: Option<super::ValueHook>,
    rx: Receiver<Entry>,
    tx: Mutex<Option<Sender<Entry>>>,
    broken: Mutex<Option<BrokenExecutor>>,
    jobs: Mutex<HashMap<FutureId, Job>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Python-style executor whose workers are Slurm jobs.
pub struct SlurmPool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl SlurmPool {
    /// A builder.
    pub fn builder() -> SlurmPoolBuilder {
        SlurmPoolBuilder::default()
    }

    /// Schedules `call` as a Slurm job named `name`.
    pub fn submit_named(&self, name: Option<&str>, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        if let Some(b) = lock(&self.shared.broken).clone() {
            return Err(SubmitError::Broken(b));
        }
        let tx = lock(&self.shared.tx);
        let Some(tx) = tx.as_ref() else { return Err(SubmitError::Shutdown) };
        let future = Future::with_sink(self.shared.sink.clone());
        let name: Arc<str> = name.map_or_else(|| format!("task-{}", future.id().0).into(), Into::into);
        emit(&self.shared.sink, || Observation::Pending {
            id: future.id(),
            pool: Arc::clone(&self.shared.name),
            name: Arc::clone(&name),
        });
        tx.send(Entry { future: future.clone(), call, name }).map_err(|_| SubmitError::Shutdown)?;
        Ok(future)
    }

    /// Schedules `call` as a Slurm job.
    pub fn submit(&self, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        self.submit_named(None, call)
    }

    /// Python's `shutdown(wait, cancel_futures)`: with `cancel_futures`, queued calls and
    /// jobs Slurm still queues are cancelled (`scancel`).
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        lock(&self.shared.tx).take();
        if cancel_futures {
            while let Ok(e) = self.shared.rx.try_recv() {
                e.future.cancel();
            }
            for job in lock(&self.shared.jobs).values_mut() {
                if !job.running && job.entry.future.cancel() {
                    job.cancelling = true;
                }
            }
        }
        if wait {
            if let Some(h) = lock(&self.manager).take() {
                let _ = h.join();
            }
        }
    }
}

impl super::Executor<ProcessCall> for SlurmPool {
    fn submit_named(&self, name: Option<&str>, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        SlurmPool::submit_named(self, name, call)
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        SlurmPool::shutdown(self, wait, cancel_futures);
    }
}

impl Drop for SlurmPool {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

struct SlurmKiller {
    shared: Arc<Shared>,
}

impl Kill for SlurmKiller {
    fn kill(&self, task: FutureId, reason: InterruptReason) -> bool {
        if reason == InterruptReason::Deadlock {
            return false;
        }
        let mut jobs = lock(&self.shared.jobs);
        let Some(job) = jobs.get_mut(&task) else { return false };
        job.killed.get_or_insert(reason);
        scancel(&job.slurm_id);
        true
    }
}

fn scancel(job_id: &str) {
    let _ = slurm(Command::new("scancel").arg(job_id));
}

fn manage(shared: &Arc<Shared>) {
    let killer: Arc<dyn Kill> = Arc::new(SlurmKiller { shared: Arc::clone(shared) });
    // When squeue last answered; the grace counts from there.
    let mut last_answer = Instant::now();
    let mut nodes_seen: Vec<String> = Vec::new();
    let mut last_load = Instant::now().checked_sub(LOAD_EVERY).unwrap_or_else(Instant::now);
    loop {
        if !nodes_seen.is_empty() && last_load.elapsed() >= LOAD_EVERY {
            last_load = Instant::now();
            report_node_load(shared, &nodes_seen);
        }
        // Submit what fits: the calls waiting now go in one `sbatch` (a job array when
        // there are several), so that thousands of calls cost the controller few requests.
        let room = shared.max_jobs.saturating_sub(lock(&shared.jobs).len()).min(MAX_ARRAY);
        let mut batch = Vec::new();
        while batch.len() < room {
            let Ok(entry) = shared.rx.try_recv() else { break };
            if !entry.future.cancelled() {
                batch.push(entry);
            }
        }
        if !batch.is_empty() {
            match sbatch(shared, &batch) {
                Ok(submitted) => {
                    let mut jobs = lock(&shared.jobs);
                    for (entry, (slurm_id, dir)) in batch.into_iter().zip(submitted) {
                        jobs.insert(
                            entry.future.id(),
                            Job { entry, slurm_id, dir, running: false, killed: None, cancelling: false },
                        );
                    }
                }
                Err(e) => {
                    for entry in batch {
                        let _ = entry.future.set_exception(Exception::task(e.clone()));
                    }
                }
            }
        }
        let ids: Vec<String> = lock(&shared.jobs).values().map(|j| j.slurm_id.clone()).collect();
        if !ids.is_empty() {
            match squeue(&ids, shared.grace) {
                Ok(states) => {
                    last_answer = Instant::now();
                    update(shared, &states, &killer, &mut nodes_seen);
                }
                Err(e) => {
                    if last_answer.elapsed() >= shared.grace {
                        break_pool(shared, format!("the Slurm controller stopped answering: {e}"));
                        return;
                    }
                }
            }
        }
        let queue_closed = lock(&shared.tx).is_none();
        if queue_closed && shared.rx.is_empty() && lock(&shared.jobs).is_empty() {
            // Removed only if every job went well (it is empty then).
            let _ = std::fs::remove_dir(&shared.dir);
            for n in nodes_seen {
                emit(&shared.sink, || Observation::WorkerExited {
                    pool: Arc::clone(&shared.name),
                    worker: n.as_str().into(),
                    pid: None,
                    status: "ok".into(),
                });
            }
            return;
        }
        thread::sleep(shared.poll);
    }
}

/// Reports each node's allocated CPUs, free memory and jobs (one `sinfo` and one
/// `squeue` call for all nodes).
fn report_node_load(shared: &Shared, nodes: &[String]) {
    let Ok(out) = slurm(Command::new("sinfo").args(["-N", "-h", "-o", "%N|%C|%e"])) else { return };
    let jobs = slurm(Command::new("squeue").args(["-h", "-t", "RUNNING", "-o", "%N"])).ok();
    let jobs = jobs.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split('|');
        let (Some(node), Some(cpus), Some(free)) = (f.next(), f.next(), f.next()) else { continue };
        if !nodes.iter().any(|n| n == node) {
            continue;
        }
        // %C is allocated/idle/other/total.
        let c: Vec<&str> = cpus.split('/').collect();
        let cpus = match c.as_slice() {
            [alloc, _, _, total] => format!("{alloc}/{total} CPUs"),
            _ => cpus.to_owned(),
        };
        let free = free
            .parse::<f64>()
            .map_or_else(|_| "free memory unknown".to_owned(), |mb| format!("{:.1}G free", mb / 1024.0));
        let running = jobs.lines().filter(|l| l.trim() == node).count();
        let load = format!("{cpus}, {free}, {running} job{}", if running == 1 { "" } else { "s" });
        emit(&shared.sink, || Observation::WorkerLoad {
            pool: Arc::clone(&shared.name),
            worker: node.into(),
            load: load.clone(),
        });
    }
}

fn break_pool(shared: &Shared, reason: String) {
    let b = BrokenExecutor { kind: BrokenKind::Slurm, reason };
    *lock(&shared.broken) = Some(b.clone());
    emit(&shared.sink, || Observation::PoolBroken { pool: Arc::clone(&shared.name), error: b.reason.clone() });
    for (_, job) in lock(&shared.jobs).drain() {
        scancel(&job.slurm_id);
        let _ = job.entry.future.set_exception(Exception::Broken(b.clone()));
    }
    while let Ok(e) = shared.rx.try_recv() {
        let _ = e.future.set_exception(Exception::Broken(b.clone()));
    }
}

/// Submits `batch` with one `sbatch`: a plain job for one call, a job array for several
/// (element `k` runs the call in `DIR/k`). Returns each call's Slurm id and directory.
fn sbatch(shared: &Shared, batch: &[Entry]) -> Result<Vec<(String, PathBuf)>, String> {
    let Some(first) = batch.first() else { return Ok(Vec::new()) };
    let root = shared.dir.join(format!("job-{}", first.future.id().0));
    let dirs: Vec<PathBuf> = if batch.len() == 1 {
        vec![root.clone()]
    } else {
        (0..batch.len()).map(|k| root.join(k.to_string())).collect()
    };
    for (entry, dir) in batch.iter().zip(&dirs) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let call = serde_json::json!({ "name": entry.call.name, "args": entry.call.args });
        std::fs::write(dir.join("call.json"), call.to_string()).map_err(|e| format!("cannot write the call: {e}"))?;
    }
    let mut cmd = Command::new("sbatch");
    let (output, target) = if batch.len() == 1 {
        (root.join("output.txt"), format!("'{}'", root.display()))
    } else {
        cmd.arg(format!("--array=0-{}", batch.len() - 1));
        (root.join("%a").join("output.txt"), format!("'{}'/$SLURM_ARRAY_TASK_ID", root.display()))
    };
    cmd.arg("--parsable")
        .arg(format!("--job-name={}", first.name))
        .arg(format!("--output={}", output.display()))
        .arg(format!("--chdir={}", std::env::current_dir().map_err(|e| e.to_string())?.display()));
    if let Some(p) = &shared.partition {
        cmd.arg(format!("--partition={p}"));
    }
    if let Some(s) = shared.time_limit {
        cmd.arg(format!("--time={}:{:02}", s / 60, s % 60));
    }
    cmd.arg(format!("--wrap=exec '{}' {SLURM_JOB_ARG} {target}", shared.program.display()));
    let out = slurm(&mut cmd).map_err(|e| format!("cannot run sbatch: {e}"))?;
    if !out.status.success() {
        return Err(format!("Slurm refused the job: {}", words(&out.stderr)));
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() {
        return Err("sbatch gave no job id".into());
    }
    Ok(if batch.len() == 1 {
        vec![(id, root)]
    } else {
        dirs.into_iter().enumerate().map(|(k, d)| (format!("{id}_{k}"), d)).collect()
    })
}

/// Job id → (state, node, reason), for the jobs Slurm still lists.
fn squeue(ids: &[String], limit: Duration) -> Result<HashMap<String, (String, String, String)>, String> {
    let mut cmd = Command::new("squeue");
    // -r lists each element of a job array on its own line (as ID_K).
    cmd.args(["-h", "-r", "--states=all", "-o", "%i|%T|%N|%r", "-j", &ids.join(",")]);
    let out = output_within(cmd, limit)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A job purged from the controller's memory makes squeue complain; that is not the
    // controller being down.
    if !out.status.success() && !stderr.contains("Invalid job id") {
        return Err(stderr.trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split('|');
            Some((p.next()?.to_owned(), (p.next()?.to_owned(), p.next()?.to_owned(), p.next()?.to_owned())))
        })
        .collect())
}

/// [`run_within`], its error as a message naming the program.
fn output_within(mut cmd: Command, limit: Duration) -> Result<std::process::Output, String> {
    run_within(&mut cmd, limit).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => format!("{} {e}", cmd.get_program().display()),
        _ => format!("cannot run {}: {e}", cmd.get_program().display()),
    })
}

fn update(
    shared: &Arc<Shared>,
    states: &HashMap<String, (String, String, String)>,
    killer: &Arc<dyn Kill>,
    nodes_seen: &mut Vec<String>,
) {
    let mut finished = Vec::new();
    let mut jobs = lock(&shared.jobs);
    for (fid, job) in jobs.iter_mut() {
        let (state, node, reason) =
            states.get(&job.slurm_id).cloned().unwrap_or_else(|| ("GONE".into(), String::new(), String::new()));
        if job.entry.future.cancelled() && !job.running && !job.cancelling {
            job.cancelling = true;
            scancel(&job.slurm_id);
        }
        match state.as_str() {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "SUSPENDED" => {}
            "RUNNING" | "COMPLETING" => start(shared, job, &node, killer, nodes_seen),
            _ => {
                if !node.is_empty() {
                    start(shared, job, &node, killer, nodes_seen);
                }
                finished.push((*fid, state, reason));
            }
        }
    }
    let done: Vec<(Job, String, String)> =
        finished.into_iter().filter_map(|(fid, s, r)| jobs.remove(&fid).map(|j| (j, s, r))).collect();
    drop(jobs);
    for (job, state, reason) in done {
        conclude(shared, &job, &state, &reason);
    }
}

fn start(shared: &Arc<Shared>, job: &mut Job, node: &str, killer: &Arc<dyn Kill>, nodes_seen: &mut Vec<String>) {
    if job.running || job.entry.future.cancelled() {
        return;
    }
    job.running = true;
    let worker: Arc<str> = if node.is_empty() { "slurm".into() } else { node.into() };
    if !nodes_seen.iter().any(|n| n.as_str() == &*worker) {
        nodes_seen.push(worker.to_string());
        emit(&shared.sink, || Observation::WorkerStarted {
            pool: Arc::clone(&shared.name),
            worker: Arc::clone(&worker),
            pid: None,
        });
    }
    let _ = job.entry.future.start_running(Some((&worker, None, Arc::clone(killer))));
}

/// Ends a job's future from its result file and what Slurm says of the job.
fn conclude(shared: &Shared, job: &Job, state: &str, reason: &str) {
    let f = &job.entry.future;
    if f.cancelled() {
        return;
    }
    let result: Option<Result<Value, WireError>> =
        std::fs::read_to_string(job.dir.join("result.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let outcome = match (result, state) {
        _ if job.killed.is_some() => Err(match job.killed {
            Some(InterruptReason::TimedOut(limit)) => Exception::Timeout(crate::TimeoutError::limit(limit)),
            _ => Exception::Killed(format!("Slurm job {} was cancelled on request", job.slurm_id)),
        }),
        (Some(Ok(v)), _) => Ok(v),
        (Some(Err(e)), _) => Err(from_wire(e)),
        (None, _) => {
            let (st, exit, why) =
                scontrol(&job.slurm_id).unwrap_or_else(|| (state.to_owned(), String::new(), reason.to_owned()));
            let what = match st.as_str() {
                "TIMEOUT" => "hit its time limit".to_owned(),
                "OUT_OF_MEMORY" => "ran out of memory".to_owned(),
                "NODE_FAIL" => "lost its node".to_owned(),
                "CANCELLED" => "was cancelled outside futuretop (by scancel or an admin)".to_owned(),
                "PREEMPTED" => "was preempted".to_owned(),
                "BOOT_FAIL" => "could not boot its node".to_owned(),
                other => format!("ended {other}"),
            };
            let exit = if exit.is_empty() { String::new() } else { format!(", exit code {exit}") };
            let why = if why.is_empty() || why == "None" { String::new() } else { format!(" ({why})") };
            Err(Exception::CommandFailed(format!("Slurm job {} {what}{exit}{why}", job.slurm_id)))
        }
    };
    if !f.running() {
        // The job ran between two polls: show it running before it ends.
        let worker: Arc<str> = "slurm".into();
        let _ = f.start_running(Some((&worker, None, Arc::new(NoKill) as Arc<dyn Kill>)));
    }
    if let (Ok(v), Some(hook)) = (&outcome, &shared.on_value) {
        hook(f.id(), v);
    }
    // A failed job's directory (its output.txt) is kept for a look; a good one goes.
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&job.dir);
        // A job array's directory goes with its last element.
        if let Some(parent) = job.dir.parent().filter(|p| *p != shared.dir) {
            let _ = std::fs::remove_dir(parent);
        }
    }
    let _ = f.finish(outcome, "set_result");
}

struct NoKill;

impl Kill for NoKill {
    fn kill(&self, _: FutureId, _: InterruptReason) -> bool {
        false
    }
}

/// `(JobState, ExitCode, Reason)` from `scontrol show job`.
fn scontrol(job_id: &str) -> Option<(String, String, String)> {
    let out = slurm(Command::new("scontrol").args(["show", "job", "-o", job_id])).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}="))).map(str::to_owned).unwrap_or_default()
    };
    Some((field("JobState"), field("ExitCode"), field("Reason")))
}

/// The job side: `PROGRAM __futuretop_slurm_job DIR` runs `DIR/call.json` and writes
/// `DIR/result.json`. Call it from `main` with the program's callables.
pub fn serve_slurm_job_if_requested(callables: &Callables) {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(SLURM_JOB_ARG) {
        return;
    }
    let Some(dir) = args.next().map(PathBuf::from) else { std::process::exit(2) };
    std::process::exit(run_job(callables, &dir));
}

struct JobCtx;

impl WorkerContext for JobCtx {
    fn request(&mut self, _: Value) -> Result<Value, Exception> {
        Err(Exception::task("a Slurm job cannot wait on the run's other futures"))
    }
    fn output(&mut self, stream: Stream, line: String) {
        match stream {
            Stream::Stdout => println!("{line}"),
            Stream::Stderr => eprintln!("{line}"),
        }
    }
    fn group(&mut self, _: i32) {}
}

fn run_job(callables: &Callables, dir: &Path) -> i32 {
    let result: Result<Value, Exception> = std::fs::read_to_string(dir.join("call.json"))
        .map_err(|e| Exception::task(format!("cannot read the call: {e}")))
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| Exception::task(format!("a malformed call: {e}"))))
        .and_then(|call| {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let args = call.get("args").cloned().unwrap_or(Value::Null);
            callables.call(&name, &args, &mut JobCtx)
        });
    let code = i32::from(result.is_err());
    let wire: Result<Value, WireError> = result.map_err(|e| to_wire(&e));
    let tmp = dir.join("result.json.tmp");
    let written = serde_json::to_string(&wire)
        .ok()
        .and_then(|t| std::fs::write(&tmp, t).ok())
        .and_then(|()| std::fs::rename(&tmp, dir.join("result.json")).ok());
    if written.is_none() {
        return 3;
    }
    code
}
