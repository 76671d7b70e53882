//! Runs a [`Plan`]: builds its pools, submits its tasks as their dependencies allow, obeys controls, ends the run.
//!
//! One runner thread owns the run's bookkeeping. Futures report completion through
//! done-callbacks into a channel; the user (TUI keys, Ctrl-C, the deadlock detector)
//! steers through [`Control`] messages; both are `select`ed in one loop. A task whose
//! dependency failed or was cancelled is itself cancelled, with the reason, and so on
//! down the chain. The engine's observations and the runner's own events meet on the
//! event bus ([`crate::events`]), which the runner closes — flushed — before it returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use serde_json::Value;

use crate::builtins::{wait_result, Builtin, RunCx, TaskEnv};
use crate::config::{Dep, Plan, Work};
use crate::control::{Control, OnDeadlock};
use crate::detector::{Detector, Verdict};
use crate::events::{
    Bus, BusMsg, BusSink, CancelReason, Counts, ErrorInfo, Event, EventKind, PoolInfo, Stage, EVENTS_VERSION,
};
use crate::pools::{BuildCx, Job, Pool, Spec};
use crate::tasks::{run_command, OutputSink, TaskRequest};
use crate::tasks::{BUILTIN_CALL, COMMAND_CALL};
use futuretop_engine::observe::FutureId;
use futuretop_engine::ProcessCall;
use futuretop_engine::{CancelledError, Exception, Future, FutureError, SubmitError};

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write every event to this file as JSON lines.
    pub events: Option<PathBuf>,
    /// The deadlock policy.
    pub on_deadlock: OnDeadlock,
    /// The program process pools run as workers (default: this executable).
    pub worker_program: Option<PathBuf>,
    /// A program that supervises thread-pool commands so that none outlives futuretop
    /// (it must call [`supervise_command_if_requested`](crate::tasks::supervise_command_if_requested));
    /// `None` runs commands directly.
    pub command_supervisor: Option<PathBuf>,
    /// Publish `system` events (CPU and memory of the machine and of worker processes,
    /// about once a second): for a monitor, and for a log that a replay will show.
    pub sample_system: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event log cannot be created.
    #[error("cannot write the event log: {0}")]
    Log(std::io::Error),
    /// One of the run's threads cannot be started.
    #[error("cannot start the {what}: {error}")]
    Thread {
        /// Which thread (`event bus`, `runner`, `system sampler`).
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// A pool cannot be built.
    #[error("pool '{pool}': {error}")]
    Pool {
        /// The pool's name.
        pool: String,
        /// Why.
        error: futuretop_engine::BuildError,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// 0 all done, 1 a task failed, 3 deadlock (`--on-deadlock fail`), 130 interrupted.
    pub exit_code: i32,
    /// Final states of the plan's tasks.
    pub counts: Counts,
    /// A failure to write the event log, if one happened.
    pub log_error: Option<String>,
}

/// A started run: steer it with `control`, wait for it with `join`.
pub struct RunHandle {
    control: Sender<Control>,
    thread: JoinHandle<RunReport>,
}

impl RunHandle {
    /// The channel that steers the run.
    pub fn control(&self) -> Sender<Control> {
        self.control.clone()
    }

    /// Waits for the run to end.
    pub fn join(self) -> RunReport {
        self.thread.join().unwrap_or_else(|_| RunReport {
            exit_code: 1,
            counts: Counts::default(),
            log_error: Some("the runner thread panicked".into()),
        })
    }
}

enum Slot {
    Waiting,
    Submitted(Future<Value>),
    /// Cancelled before it was submitted (a dependency failed, or the run stopped).
    Dropped,
    /// Finished, and no `wait_on` names it: its future is let go (memory stays flat
    /// over long runs).
    Released,
}

/// Which plan tasks a `wait_on` names (directly or inside a `submit`): their futures are
/// kept after they finish, for a waiter that comes later.
fn awaited(plan: &Plan) -> Vec<bool> {
    let mut awaited = vec![false; plan.tasks.len()];
    for t in &plan.tasks {
        if let Work::Call(call) = &t.work {
            call.awaited(&mut |task| {
                if let Some(a) = awaited.get_mut(task) {
                    *a = true;
                }
            });
        }
    }
    awaited
}

/// What tasks share: the pools, the futures, the bus.
struct Registry {
    plan: Arc<Plan>,
    pools: Vec<Box<dyn Pool>>,
    slots: Mutex<Vec<Slot>>,
    submitted: Condvar,
    /// Every live future of the run (inner submits too), with its pool's index.
    by_id: Mutex<HashMap<FutureId, (usize, Future<Value>)>>,
    /// Runs thread-pool commands under a supervisor (see [`RunOptions::command_supervisor`]).
    supervisor: Option<PathBuf>,
    bus: Sender<BusMsg>,
}

impl Registry {
    /// Submits plan tasks `items` (names and work) to `pool` as one chunk (see
    /// [`Pool::submit_chunk`]).
    fn submit_chunk(
        self: &Arc<Self>,
        pool: usize,
        items: Vec<(String, Work)>,
    ) -> Vec<Result<Future<Value>, SubmitError>> {
        let jobs: Vec<(String, Box<dyn Job>)> = items
            .into_iter()
            .map(|(name, work)| {
                let job: Box<dyn Job> = Box::new(TaskJob { registry: Arc::clone(self), name: name.clone(), work });
                (name, job)
            })
            .collect();
        let results = self.pools[pool].submit_chunk(jobs);
        results.into_iter().map(|r| r.map(|f| self.track(pool, f))).collect()
    }

    fn submit_work(self: &Arc<Self>, pool: usize, name: &str, work: Work) -> Result<Future<Value>, SubmitError> {
        let job = Box::new(TaskJob { registry: Arc::clone(self), name: name.to_owned(), work });
        let future = self.pools[pool].submit(name, job)?;
        Ok(self.track(pool, future))
    }

    /// Keeps a live future of the run, for cancel and kill, until it finishes.
    fn track(self: &Arc<Self>, pool: usize, future: Future<Value>) -> Future<Value> {
        lock(&self.by_id).insert(future.id(), (pool, future.clone()));
        // Only live futures can be cancelled or killed: a finished one leaves the table,
        // so that a long run's memory does not grow with every task it finished.
        let registry = Arc::downgrade(self);
        future.add_done_callback(move |f| {
            if let Some(r) = registry.upgrade() {
                lock(&r.by_id).remove(&f.id());
            }
        });
        future
    }

    /// Runs a plan task's work here (on a thread pool's worker): it reports its value to
    /// the bus (for the `done` event) and its command's output lines.
    fn run_here(self: &Arc<Self>, name: &str, work: &Work) -> Result<Value, Exception> {
        let value = match work {
            Work::Call(b) => {
                let env = RegistryEnv(Arc::clone(self));
                b.run(&RunCx { task: name, env: Some(&env as &dyn TaskEnv), in_worker: false })
            }
            Work::Command(c) => {
                let out_bus = self.bus.clone();
                let out_task = name.to_owned();
                let sink: OutputSink = Arc::new(move |stream, line| {
                    let _ = out_bus.send(BusMsg::Runner(
                        Instant::now(),
                        EventKind::Output { task: out_task.clone(), stream, line },
                    ));
                });
                run_command(c, &sink, &|_| {}, self.supervisor.as_deref())
            }
        }?;
        if let Some(id) = futuretop_engine::current_task() {
            let _ = self.bus.send(BusMsg::Result(id, value.clone()));
        }
        Ok(value)
    }

    /// Answers a process task's request: `wait_on` and `submit`, run in the task's context.
    fn answer(self: &Arc<Self>, body: Value) -> Result<Value, Exception> {
        let env = RegistryEnv(Arc::clone(self));
        let request: TaskRequest = serde_json::from_value(body)
            .map_err(|e| Exception::task(format!("a malformed request from a worker: {e}")))?;
        match request {
            TaskRequest::WaitOn { task, timeout } => env.wait_on(task, timeout),
            TaskRequest::Submit { pool, name, call, timeout } => env.submit_and_wait(pool, name, call, timeout),
        }
    }

    fn future(&self, id: FutureId) -> Option<Future<Value>> {
        lock(&self.by_id).get(&id).map(|(_, f)| f.clone())
    }
}

/// A plan task's work, as its pool takes it: a closure here, or a call for a worker.
struct TaskJob {
    registry: Arc<Registry>,
    name: String,
    work: Work,
}

impl Job for TaskJob {
    fn run_here(self: Box<Self>) -> Result<Value, Exception> {
        self.registry.run_here(&self.name, &self.work)
    }

    fn remote(self: Box<Self>) -> ProcessCall {
        match &self.work {
            Work::Call(b) => ProcessCall::new(BUILTIN_CALL, serde_json::to_value(b).unwrap_or(Value::Null)),
            Work::Command(c) => ProcessCall::new(COMMAND_CALL, serde_json::to_value(c).unwrap_or(Value::Null)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `TaskEnv` tasks get: the registry behind an `Arc`, so inner submits can capture it.
struct RegistryEnv(Arc<Registry>);

impl RegistryEnv {
    fn future_of(&self, task: usize) -> Result<Future<Value>, Exception> {
        let mut slots = lock(&self.0.slots);
        loop {
            match slots.get(task) {
                Some(Slot::Submitted(f)) => return Ok(f.clone()),
                Some(Slot::Dropped | Slot::Released) | None => return Err(Exception::Cancelled(CancelledError)),
                Some(Slot::Waiting) => {
                    futuretop_engine::checkpoint()?;
                    slots = self
                        .0
                        .submitted
                        .wait_timeout(slots, Duration::from_millis(100))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn submit(&self, pool: usize, name: &str, call: Builtin) -> Result<Future<Value>, Exception> {
        self.0.submit_work(pool, name, Work::Call(call)).map_err(|e| match e {
            SubmitError::Broken(b) => Exception::Broken(b),
            other => Exception::task(format!("cannot submit {name}: {other}")),
        })
    }
}

impl TaskEnv for RegistryEnv {
    fn wait_on(&self, task: usize, timeout: Option<f64>) -> Result<Value, Exception> {
        wait_result(&self.future_of(task)?, timeout)
    }

    fn submit_and_wait(
        &self,
        pool: usize,
        name: String,
        call: Builtin,
        timeout: Option<f64>,
    ) -> Result<Value, Exception> {
        wait_result(&self.submit(pool, &name, call)?, timeout)
    }
}

/// The deadlock detector as the bus's stage, and the runner's answer to its verdicts:
/// `--on-deadlock` decides what a deadlock that formed leads to.
struct DeadlockStage {
    detector: Detector,
    policy: OnDeadlock,
    control: Sender<Control>,
}

impl Stage for DeadlockStage {
    fn observe(&mut self, e: &Event) {
        self.detector.observe(e);
    }

    fn check(&mut self) -> Vec<EventKind> {
        let verdicts = self.detector.check();
        let mut events = Vec::with_capacity(verdicts.len());
        for verdict in verdicts {
            match verdict {
                Verdict::Formed { event, victim } => {
                    match self.policy {
                        OnDeadlock::Warn => {}
                        OnDeadlock::Fail => {
                            let _ = self.control.send(Control::DeadlockFail);
                        }
                        OnDeadlock::Break => {
                            let _ = self.control.send(Control::BreakWait(victim));
                        }
                    }
                    events.push(event);
                }
                Verdict::Resolved { event } => events.push(event),
            }
        }
        events
    }
}

/// Starts running `plan`: events go to `subscribers` (and the log in `options`).
pub fn start(plan: Plan, options: &RunOptions, subscribers: Vec<Sender<Arc<Event>>>) -> Result<RunHandle, StartError> {
    let start = Instant::now();
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let detector =
        DeadlockStage { detector: Detector::new(), policy: options.on_deadlock, control: control_tx.clone() };
    let bus =
        Bus::new(start, options.events.as_deref(), subscribers, Some(Box::new(detector))).map_err(StartError::Log)?;
    let (bus_tx, bus_rx) = crossbeam_channel::unbounded();
    // Dropping `stop_sampler` stops the system sampler (before the last event).
    let (stop_sampler, stop_rx) = crossbeam_channel::bounded::<()>(0);
    if options.sample_system {
        let (tx, pids) = (bus_tx.clone(), bus.worker_pids());
        std::thread::Builder::new()
            .name("futuretop-sysinfo".into())
            .spawn(move || crate::events::sample_system(&tx, &pids, &stop_rx))
            .map_err(|error| StartError::Thread { what: "system sampler", error })?;
    }
    let bus_thread = std::thread::Builder::new()
        .name("futuretop-bus".into())
        .spawn(move || bus.run(&bus_rx))
        .map_err(|error| StartError::Thread { what: "event bus", error })?;
    let sink: Arc<dyn futuretop_engine::Sink> = Arc::new(BusSink(bus_tx.clone()));
    let plan = Arc::new(plan);
    let _ = bus_tx.send(BusMsg::Runner(
        start,
        EventKind::RunStarted {
            version: EVENTS_VERSION,
            run: plan.name.clone(),
            file: plan.source.clone(),
            pools: plan
                .pools
                .iter()
                .map(|p| PoolInfo { name: p.name.clone(), kind: p.kind, max_workers: p.max_workers })
                .collect(),
            tasks: plan.tasks.len(),
        },
    ));
    let mut pools = Vec::new();
    let weak: Arc<OnceLock<Weak<Registry>>> = Arc::new(OnceLock::new());
    let (values, outputs, reg) = (bus_tx.clone(), bus_tx.clone(), Arc::clone(&weak));
    let cx = BuildCx {
        sink: Arc::clone(&sink),
        on_value: Arc::new(move |id, v| {
            let _ = values.send(BusMsg::Result(id, v.clone()));
        }),
        on_output: Arc::new(move |id, stream, line| {
            let _ = outputs.send(BusMsg::Output(Instant::now(), id, stream, line));
        }),
        on_request: Arc::new(move |_, body| match reg.get().and_then(Weak::upgrade) {
            Some(r) => r.answer(body),
            None => Err(Exception::task("the run is over")),
        }),
        program: options.worker_program.clone(),
    };
    for p in &plan.pools {
        let spec = Spec { name: &p.name, max_workers: p.max_workers, settings: &p.settings };
        let pool =
            p.kind.backend().build(&spec, &cx).map_err(|error| StartError::Pool { pool: p.name.clone(), error })?;
        pools.push(pool);
    }
    let registry = Arc::new(Registry {
        slots: Mutex::new(plan.tasks.iter().map(|_| Slot::Waiting).collect()),
        plan: Arc::clone(&plan),
        pools,
        submitted: Condvar::new(),
        by_id: Mutex::new(HashMap::new()),
        bus: bus_tx.clone(),
        supervisor: options.command_supervisor.clone(),
    });
    let _ = weak.set(Arc::downgrade(&registry));
    let thread = std::thread::Builder::new()
        .name("futuretop-runner".into())
        .spawn(move || {
            let mut runner = Runner::new(registry, control_rx);
            let (exit_code, counts) = runner.run();
            // Workers exit (and say so on the bus) before the last event.
            runner.release(exit_code);
            drop(stop_sampler);
            let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
            let _ = bus_tx.send(BusMsg::Runner(Instant::now(), EventKind::RunFinished { counts, exit_code }));
            let _ = bus_tx.send(BusMsg::Close(ack_tx));
            let _ = ack_rx.recv_timeout(Duration::from_secs(10));
            let log_error = bus_thread.join().ok().flatten();
            RunReport { exit_code, counts, log_error }
        })
        .map_err(|error| StartError::Thread { what: "runner", error })?;
    Ok(RunHandle { control: control_tx, thread })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Done,
    Exception,
    Cancelled,
}

/// How a task that never reached a pool ends.
enum Unsubmitted {
    /// Cancelled: a dependency failed, the run stopped, its pool was shut down.
    Cancelled(CancelReason),
    /// Failed with its pool's error: the pool had broken (as it fails the futures it held).
    Failed(Exception),
}

/// A plan task's index and how it ended.
type Completion = (usize, Final);

/// Who waits on a `map:` task as a whole (`depends_on: [a_map]`): one edge per dependent,
/// whatever the map's size.
struct Group {
    /// Its items, as plan task indices.
    items: std::ops::Range<usize>,
    /// Items done so far.
    done: usize,
    /// The tasks that depend on it, until it is done or an item failed.
    dependents: Vec<usize>,
}

struct Runner {
    reg: Arc<Registry>,
    control: Receiver<Control>,
    completions: (Sender<Completion>, Receiver<Completion>),
    finals: Vec<Option<Final>>,
    /// The tasks that depend on each task itself (`depends_on: [a]`, or `[a_map[3]]`).
    dependents: Vec<Vec<usize>>,
    /// The `map:` tasks depended on as a whole.
    groups: Vec<Group>,
    /// The group each task is an item of, if one is depended on.
    group_of: Vec<Option<usize>>,
    /// Each task's dependencies not yet done (a group counts once).
    waiting_on: Vec<usize>,
    /// Plan tasks not yet in a final state.
    unfinished: usize,
    /// See [`awaited`].
    awaited: Vec<bool>,
}

impl Runner {
    fn new(reg: Arc<Registry>, control: Receiver<Control>) -> Self {
        let n = reg.plan.tasks.len();
        let mut dependents = vec![Vec::new(); n];
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of = vec![None; n];
        let mut group_index: HashMap<std::ops::Range<usize>, usize> = HashMap::new();
        let mut waiting_on = vec![0; n];
        for (i, t) in reg.plan.tasks.iter().enumerate() {
            waiting_on[i] = t.depends_on.len();
            for dep in t.depends_on.iter() {
                match dep {
                    Dep::Task(d) => dependents[*d].push(i),
                    Dep::Group(items) => {
                        let g = *group_index.entry(items.clone()).or_insert_with(|| {
                            groups.push(Group { items: items.clone(), done: 0, dependents: Vec::new() });
                            groups.len() - 1
                        });
                        groups[g].dependents.push(i);
                    }
                }
            }
        }
        for (g, group) in groups.iter().enumerate() {
            for item in group.items.clone() {
                group_of[item] = Some(g);
            }
        }
        Self {
            awaited: awaited(&reg.plan),
            reg,
            control,
            completions: crossbeam_channel::unbounded(),
            finals: vec![None; n],
            dependents,
            groups,
            group_of,
            waiting_on,
            unfinished: n,
        }
    }

    fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.finals {
            match f {
                Some(Final::Done) => c.done += 1,
                Some(Final::Exception) => c.exception += 1,
                Some(Final::Cancelled) => c.cancelled += 1,
                None => c.unfinished += 1,
            }
        }
        c
    }

    fn run(&mut self) -> (i32, Counts) {
        let ready: Vec<usize> =
            (0..self.finals.len()).filter(|&i| self.reg.plan.tasks[i].depends_on.is_empty()).collect();
        self.submit_ready(&ready);
        let mut outcome = None;
        let completions = self.completions.1.clone();
        while self.unfinished > 0 {
            select! {
                recv(completions) -> msg => {
                    if let Ok((i, f)) = msg {
                        self.finished(i, f);
                    }
                }
                recv(self.control) -> msg => match msg {
                    Ok(Control::Interrupt) => {
                        self.stop();
                        outcome = Some(130);
                        break;
                    }
                    Ok(Control::DeadlockFail) => {
                        self.stop();
                        outcome = Some(3);
                        break;
                    }
                    Ok(c) => self.steer(&c),
                    Err(_) => {}
                }
            }
        }
        let counts = self.counts();
        let code = outcome.unwrap_or(i32::from(counts.exception > 0));
        (code, counts)
    }

    /// Submits the tasks `ready` (in plan order): the consecutive items of a `map:` with a
    /// `chunksize:` go in chunks of that many, the others one by one.
    fn submit_ready(&mut self, ready: &[usize]) {
        let plan = Arc::clone(&self.reg.plan);
        let mut k = 0;
        while k < ready.len() {
            let i = ready[k];
            let Some(chunk) = plan.tasks[i].chunk else {
                self.submit(i);
                k += 1;
                continue;
            };
            let mut end = k + 1;
            while end < ready.len()
                && end - k < chunk.size
                && ready[end] == ready[end - 1] + 1
                && plan.tasks[ready[end]].chunk.map(|c| c.first) == Some(chunk.first)
            {
                end += 1;
            }
            let run = &ready[k..end];
            k = end;
            if run.len() == 1 {
                self.submit(i);
                continue;
            }
            let pool = plan.tasks[i].pool;
            let items: Vec<(String, Work)> =
                run.iter().map(|&j| (plan.tasks[j].name.clone(), plan.tasks[j].work.clone())).collect();
            let results = self.reg.submit_chunk(pool, items);
            for (&j, result) in run.iter().zip(results) {
                self.submitted(j, result);
            }
        }
    }

    fn submit(&mut self, i: usize) {
        let task = &self.reg.plan.tasks[i];
        let result = self.reg.submit_work(task.pool, &task.name, task.work.clone());
        self.submitted(i, result);
    }

    /// Follows plan task `i` once its pool took it (or refused it).
    fn submitted(&mut self, i: usize, result: Result<Future<Value>, SubmitError>) {
        match result {
            Ok(f) => {
                let done = self.completions.0.clone();
                f.add_done_callback(move |f| {
                    let outcome = match f.try_result() {
                        Some(Ok(_)) => Final::Done,
                        Some(Err(FutureError::Cancelled(_))) => Final::Cancelled,
                        _ => Final::Exception,
                    };
                    let _ = done.send((i, outcome));
                });
                lock(&self.reg.slots)[i] = Slot::Submitted(f);
                self.reg.submitted.notify_all();
            }
            Err(SubmitError::Broken(b)) => {
                // A broken pool: the task fails without running, with the pool's error, as
                // the futures queued in it when it broke do (Python: submit raises it).
                self.emit_unsubmitted(i, Unsubmitted::Failed(Exception::Broken(b)));
            }
            Err(e) => {
                // Shut down: the task never runs.
                self.emit_unsubmitted(i, Unsubmitted::Cancelled(CancelReason::Refused(e.to_string())));
            }
        }
    }

    /// A task that never reached a pool: give it a future id and report it pending, then
    /// how it ended.
    fn emit_unsubmitted(&mut self, i: usize, end: Unsubmitted) {
        let task = &self.reg.plan.tasks[i];
        let pool = self.reg.plan.pools[task.pool].name.clone();
        let f = Future::<Value>::new();
        let (name, id, now) = (task.name.clone(), f.id().0, Instant::now());
        let _ =
            self.reg.bus.send(BusMsg::Runner(now, EventKind::Pending { task: name.clone(), id, pool: pool.clone() }));
        let (kind, slot, outcome) = match end {
            Unsubmitted::Failed(error) => {
                let _ = f.set_exception(error.clone());
                let error = ErrorInfo::from(&error);
                (EventKind::Exception { task: name, id, pool, error }, Slot::Submitted(f), Final::Exception)
            }
            Unsubmitted::Cancelled(reason) => {
                f.cancel();
                let reason = Some(reason);
                (EventKind::Cancelled { task: name, id, pool, reason }, Slot::Dropped, Final::Cancelled)
            }
        };
        let _ = self.reg.bus.send(BusMsg::Runner(now, kind));
        lock(&self.reg.slots)[i] = slot;
        self.reg.submitted.notify_all();
        self.finished(i, outcome);
    }

    fn finished(&mut self, i: usize, outcome: Final) {
        if self.finals[i].is_some() {
            return;
        }
        self.finals[i] = Some(outcome);
        self.unfinished -= 1;
        if !self.awaited[i] {
            let mut slots = lock(&self.reg.slots);
            if matches!(slots[i], Slot::Submitted(_)) {
                slots[i] = Slot::Released;
            }
        }
        let direct = std::mem::take(&mut self.dependents[i]);
        let (mut satisfied, mut abandoned) =
            if outcome == Final::Done { (direct, Vec::new()) } else { (Vec::new(), direct) };
        if let Some(g) = self.group_of[i] {
            let group = &mut self.groups[g];
            if outcome == Final::Done {
                group.done += 1;
                if group.done == group.items.len() {
                    satisfied.extend(std::mem::take(&mut group.dependents));
                }
            } else {
                // The first item that fails or is cancelled ends the group's dependents.
                abandoned.extend(std::mem::take(&mut group.dependents));
            }
        }
        let mut ready = Vec::new();
        for d in satisfied {
            if self.finals[d].is_some() || !matches!(lock(&self.reg.slots)[d], Slot::Waiting) {
                continue;
            }
            self.waiting_on[d] = self.waiting_on[d].saturating_sub(1);
            if self.waiting_on[d] == 0 {
                ready.push(d);
            }
        }
        ready.sort_unstable();
        self.submit_ready(&ready);
        for d in abandoned {
            if self.finals[d].is_some() || !matches!(lock(&self.reg.slots)[d], Slot::Waiting) {
                continue;
            }
            let dependency = self.reg.plan.tasks[i].name.clone();
            let reason = if outcome == Final::Cancelled {
                CancelReason::DependencyCancelled(dependency)
            } else {
                CancelReason::DependencyFailed(dependency)
            };
            self.emit_unsubmitted(d, Unsubmitted::Cancelled(reason));
        }
    }

    fn steer(&mut self, c: &Control) {
        match c {
            Control::Cancel(id) => {
                if let Some(f) = self.reg.future(*id) {
                    f.cancel();
                }
            }
            Control::Kill(id) => {
                if let Some(f) = self.reg.future(*id) {
                    f.kill();
                }
            }
            Control::BreakWait(id) => {
                if let Some(f) = self.reg.future(*id) {
                    f.break_wait();
                }
            }
            Control::CancelPool(name) => {
                let Some(pool) = self.reg.plan.pools.iter().position(|p| p.name == *name) else { return };
                let futures: Vec<Future<Value>> =
                    lock(&self.reg.by_id).values().filter(|(p, _)| *p == pool).map(|(_, f)| f.clone()).collect();
                for f in futures {
                    f.cancel();
                }
            }
            Control::Interrupt | Control::DeadlockFail => {}
        }
    }

    /// Ctrl-C or a deadlock failure: cancel what waits, kill what runs, give it a moment.
    fn stop(&mut self) {
        for p in &self.reg.pools {
            p.shutdown(false, true);
        }
        for i in 0..self.finals.len() {
            if self.finals[i].is_none() && matches!(lock(&self.reg.slots)[i], Slot::Waiting) {
                self.emit_unsubmitted(i, Unsubmitted::Cancelled(CancelReason::RunStopped));
            }
        }
        let all: Vec<Future<Value>> = lock(&self.reg.by_id).values().map(|(_, f)| f.clone()).collect();
        for f in &all {
            if !f.cancel() {
                f.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.unfinished > 0 {
            match self.completions.1.recv_deadline(deadline) {
                Ok((i, f)) => self.finished(i, f),
                Err(_) => break,
            }
        }
    }

    /// Shuts the pools down: waits for workers after a normal run; after an interrupted
    /// or deadlocked one, leaves threads that cannot finish to the process exit.
    fn release(self, exit_code: i32) {
        let reg = self.reg;
        let abandoned = exit_code == 3 || exit_code == 130;
        for p in &reg.pools {
            p.shutdown(!abandoned, abandoned);
        }
        if abandoned {
            // Blocked threads keep the registry alive; dropping it would join them.
            std::mem::forget(reg);
        }
    }
}
