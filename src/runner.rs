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
use std::sync::atomic::{AtomicUsize, Ordering};
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
    Bus, BusMsg, BusSink, CancelReason, Counts, ErrorInfo, Event, EventKind, MapInfo, PoolInfo, Stage, WaitingInfo,
    EVENTS_VERSION, WAITING_LISTED,
};
use crate::pools::{BuildCx, Job, Pool, Spec};
use crate::tasks::{run_command, OutputSink, TaskRequest};
use crate::tasks::{BUILTIN_CALL, COMMAND_CALL};
use futuretop_engine::observe::{FutureId, IdMap};
use futuretop_engine::ProcessCall;
use futuretop_engine::{CancelledError, ErrorKind, Exception, Future, FutureError, SubmitError};

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
    /// Report a `stall` when no future has changed state for this long while work is
    /// pending or running and no deadlock stands (`None`: never; the program's default
    /// is 60 s, `--stall-after`).
    pub stall_after: Option<Duration>,
    /// Keep the run's progress in this file ([`crate::session::Status`]), for `futuretop
    /// ls` and `wait` (a detached run's).
    pub status_file: Option<PathBuf>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event log cannot be created.
    #[error("cannot write the event log {}: {error}", path.display())]
    Log {
        /// The log's path, as given.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
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

/// What tasks share: the pools, the futures, the bus.
struct Registry {
    plan: Arc<Plan>,
    pools: Vec<Box<dyn Pool>>,
    /// The futures of the plan's awaited tasks ([`Plan::awaited`]), once they have one:
    /// kept after they finish, for a `wait_on` that comes later.
    slots: Mutex<HashMap<usize, Future<Value>>>,
    submitted: Condvar,
    /// A `wait_on` asks the runner for a task that has no future yet: if it is ready but
    /// held back by its pool's window, it is submitted at once.
    want: Sender<usize>,
    /// Every live future of the run (inner submits too), with its pool's index.
    by_id: Mutex<IdMap<FutureId, (usize, Future<Value>)>>,
    /// Runs thread-pool commands under a supervisor (see [`RunOptions::command_supervisor`]).
    supervisor: Option<PathBuf>,
    bus: Sender<BusMsg>,
    /// The backlog of the bus's slowest subscriber (see [`crate::events::Lag`]).
    lag: crate::events::Lag,
    /// The time limits of the futures of tasks with a `timeout:`.
    timeouts: Arc<Timeouts>,
}

/// When a running future reaches its time limit: when, which future, the limit.
type Deadline = (Instant, FutureId, Duration);

/// The time limits (`timeout:` of `call:` tasks) of the run's futures: the bus's stage
/// sees a future of such a task start running and hands its deadline to the runner, which
/// stops it then ([`Future::time_out`]).
struct Timeouts {
    /// The plan: each task's limit, by name.
    plan: Arc<Plan>,
    /// True when some task has a limit (else nothing here is ever looked at).
    any: bool,
    /// Deadlines, from the stage to the runner: when, which future, its limit.
    deadlines: (Sender<Deadline>, Receiver<Deadline>),
}

impl Timeouts {
    /// Follows event `e` of a run that started at `start`: a future with a limit that
    /// starts running gets its deadline.
    fn observe(&self, start: Instant, e: &Event) {
        if !self.any {
            return;
        }
        let EventKind::Running { id, task, .. } = &e.kind else { return };
        let limit = self.plan.task_index(task).and_then(|i| self.plan.task_of(i)).and_then(|t| t.timeout);
        if let Some(limit) = limit {
            let limit = Duration::from_secs_f64(limit);
            let at = start + Duration::from_secs_f64(e.t) + limit;
            let _ = self.deadlines.0.send((at, FutureId(*id), limit));
        }
    }
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
        self.pools[pool].submit_chunk(jobs)
    }

    /// Submits a plan future's work; the runner keeps it in [`Registry::by_id`] while it is live.
    fn submit_plan(self: &Arc<Self>, pool: usize, name: &str, work: Work) -> Result<Future<Value>, SubmitError> {
        let job = Box::new(TaskJob { registry: Arc::clone(self), name: name.to_owned(), work });
        self.pools[pool].submit(name, job)
    }

    /// Submits an inner future (a `submit`'s), kept in [`Registry::by_id`] while it is live.
    fn submit_work(self: &Arc<Self>, pool: usize, name: &str, work: Work) -> Result<Future<Value>, SubmitError> {
        let future = self.submit_plan(pool, name, work)?;
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
                let out_task: crate::events::Name = name.into();
                let sink: OutputSink = Arc::new(move |stream, line, dropped| {
                    let dropped = (dropped > 0).then_some(dropped);
                    let _ = out_bus.send(BusMsg::Runner(
                        Instant::now(),
                        Box::new(EventKind::Output { task: Arc::clone(&out_task), stream, line, dropped }),
                    ));
                });
                run_command(c, &sink, &|_| {}, self.supervisor.as_deref())
            }
        }?;
        if let Some(id) = futuretop_engine::current_task() {
            crate::events::hold_value(id, value.clone());
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
        if self.0.plan.awaited.binary_search(&task).is_err() {
            // Validation lists every task a `wait_on` names: not one of them.
            return Err(Exception::Cancelled(CancelledError));
        }
        let mut slots = lock(&self.0.slots);
        let mut asked = false;
        loop {
            if let Some(f) = slots.get(&task) {
                return Ok(f.clone());
            }
            if !asked {
                let _ = self.0.want.send(task);
                asked = true;
            }
            futuretop_engine::checkpoint()?;
            slots = self
                .0
                .submitted
                .wait_timeout(slots, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
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
    stall: StallWatch,
    timeouts: Arc<Timeouts>,
}

/// Watches for a run that has stopped moving: no future's state changed for `after`,
/// though some are pending or running (the detector's model of the live futures), and no
/// deadlock explains it. It reads the events' times: no clock on the bus's hot path.
struct StallWatch {
    after: Option<Duration>,
    /// When the run started: the events' times count from it.
    start: Instant,
    /// The run time of the last change of a future's state.
    last_change: f64,
    /// Reported for this quiet stretch already.
    reported: bool,
}

impl StallWatch {
    fn observe(&mut self, e: &Event) {
        if e.kind.changes_a_future() {
            self.last_change = e.t;
            self.reported = false;
        }
    }

    /// A `stall` event, once a quiet stretch, when one is due.
    fn check(&mut self, detector: &Detector) -> Option<EventKind> {
        let after = self.after?;
        let now = self.start.elapsed().as_secs_f64();
        let quiet = now - self.last_change;
        let live = detector.model().live();
        if self.reported || detector.has_deadlock() || live == 0 || quiet < after.as_secs_f64() {
            return None;
        }
        self.reported = true;
        let mut running: Vec<crate::events::StallRunning> = detector
            .model()
            .running_now()
            .map(|(id, task, worker, since)| crate::events::StallRunning {
                task: task.into(),
                id,
                worker: worker.clone(),
                running_for: now - since,
            })
            .collect();
        let pending = live - running.len();
        running.sort_by(|a, b| b.running_for.total_cmp(&a.running_for).then(a.id.cmp(&b.id)));
        running.truncate(10);
        Some(EventKind::Stall { after: quiet, running, pending })
    }
}

impl Stage for DeadlockStage {
    fn observe(&mut self, e: &Event) {
        self.detector.observe(e);
        self.stall.observe(e);
        self.timeouts.observe(self.stall.start, e);
    }

    fn check(&mut self) -> Vec<EventKind> {
        let verdicts = self.detector.check();
        let mut events = Vec::with_capacity(verdicts.len());
        if let Some(stall) = self.stall.check(&self.detector) {
            events.push(stall);
        }
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

/// The first event of the run of `plan`.
fn run_started(plan: &Plan) -> EventKind {
    EventKind::RunStarted {
        version: EVENTS_VERSION,
        run: plan.name.clone(),
        file: plan.source.clone(),
        pools: plan
            .pools
            .iter()
            .map(|p| PoolInfo { name: p.name.clone(), kind: p.kind, max_workers: p.max_workers })
            .collect(),
        tasks: plan.len(),
        maps: plan
            .tasks
            .iter()
            .filter(|t| t.is_map())
            .map(|t| MapInfo {
                task: t.name.clone(),
                pool: plan.pools[t.pool].name.clone(),
                items: t.len,
                after: plan.dependency_names(t),
            })
            .collect(),
        waiting: plan
            .tasks
            .iter()
            .filter(|t| !t.is_map() && (!t.depends_on.is_empty() || !t.each.is_empty()))
            .take(WAITING_LISTED)
            .map(|t| WaitingInfo {
                task: t.name.clone(),
                pool: plan.pools[t.pool].name.clone(),
                after: plan.dependency_names(t),
            })
            .collect(),
    }
}

/// Starts running `plan`: events go to `subscribers` (and the log in `options`).
pub fn start(
    plan: impl Into<Arc<Plan>>,
    options: &RunOptions,
    subscribers: Vec<Sender<Arc<Event>>>,
) -> Result<RunHandle, StartError> {
    start_observed(plan, options, subscribers, Vec::new())
}

/// [`start`], with `observers` fed every event in order on the bus's own thread, as it is
/// published: for a consumer that takes in every event of a large run and must cost it
/// as little as possible (the headless reporter's fold), with no channel between them,
/// and no event allocated when there is no subscriber. An observer must be quick: the
/// bus waits for it.
pub fn start_observed(
    plan: impl Into<Arc<Plan>>,
    options: &RunOptions,
    subscribers: Vec<Sender<Arc<Event>>>,
    observers: Vec<Box<dyn crate::events::Stage>>,
) -> Result<RunHandle, StartError> {
    let start = Instant::now();
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let stall = StallWatch { after: options.stall_after, start, last_change: 0.0, reported: false };
    let plan: Arc<Plan> = plan.into();
    let timeouts = Arc::new(Timeouts {
        plan: Arc::clone(&plan),
        any: plan.tasks.iter().any(|t| t.timeout.is_some()),
        deadlines: crossbeam_channel::unbounded(),
    });
    let detector = DeadlockStage {
        detector: Detector::new(),
        policy: options.on_deadlock,
        control: control_tx.clone(),
        stall,
        timeouts: Arc::clone(&timeouts),
    };
    let mut stages: Vec<Box<dyn crate::events::Stage>> = vec![Box::new(detector)];
    stages.extend(observers);
    let mut bus = Bus::new(start, options.events.as_deref(), subscribers, stages)
        .map_err(|error| StartError::Log { path: options.events.clone().unwrap_or_default(), error })?;
    if let Some(path) = &options.status_file {
        bus.keep_status(crate::session::StatusWriter::new(path.clone()));
    }
    let lag = bus.lag();
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
    let _ = bus_tx.send(BusMsg::Runner(start, Box::new(run_started(&plan))));
    let mut pools = Vec::new();
    let weak: Arc<OnceLock<Weak<Registry>>> = Arc::new(OnceLock::new());
    let (outputs, reg) = (bus_tx.clone(), Arc::clone(&weak));
    let cx = BuildCx {
        sink: Arc::clone(&sink),
        // The pools call it on the thread that finishes the future, right before.
        on_value: Arc::new(|id, v| crate::events::hold_value(id, v.clone())),
        on_output: Arc::new(move |id, stream, line, dropped| {
            let _ = outputs.send(BusMsg::Output(Instant::now(), id, stream, line, dropped));
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
    let (want_tx, want_rx) = crossbeam_channel::unbounded();
    let registry = Arc::new(Registry {
        slots: Mutex::new(HashMap::new()),
        want: want_tx,
        plan: Arc::clone(&plan),
        pools,
        submitted: Condvar::new(),
        by_id: Mutex::new(IdMap::default()),
        bus: bus_tx.clone(),
        lag,
        supervisor: options.command_supervisor.clone(),
        timeouts,
    });
    let _ = weak.set(Arc::downgrade(&registry));
    let thread = std::thread::Builder::new()
        .name("futuretop-runner".into())
        .spawn(move || {
            let mut runner = Runner::new(registry, control_rx, want_rx);
            let (exit_code, counts) = runner.run();
            // Workers exit (and say so on the bus) before the last event.
            runner.release(exit_code);
            drop(stop_sampler);
            let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
            let _ = bus_tx.send(BusMsg::Runner(Instant::now(), Box::new(EventKind::RunFinished { counts, exit_code })));
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
    /// An exception that a retry may follow (not a kill, not a broken deadlock): the
    /// runner makes it [`Final::Exception`] when its task has no attempt left.
    Retryable,
}

/// How a task that never reached a pool ends.
enum Unsubmitted {
    /// Cancelled: a dependency failed, the run stopped, its pool was shut down; `None`
    /// for a user's cancel (`C` on its pool).
    Cancelled(Option<CancelReason>),
    /// Failed with its pool's error: the pool had broken (as it fails the futures it held).
    Failed(Exception),
}

/// A plan future's index, its id and how it ended.
type Completion = (usize, FutureId, Final);

/// How long the runner sleeps at most while futures are in flight: the ends that did not
/// ring its bell (see [`Inbox`]) are taken at least this often.
const QUIET_ENDS_EVERY: Duration = Duration::from_millis(20);

/// Messages waiting for the bus past which the runner hands its pools nothing more until
/// the bus catches up. The engine never waits for the bus (its channel is unbounded), so
/// without this a run whose workers outpace the event log would hold the difference in
/// memory: 290 MB at the end of a 1,000,000-item map, and growing with the run.
pub const BUS_BACKLOG: usize = 1 << 16;

/// How often the runner tells the bus its counts (for `futuretop ls`).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The environment variable that tells a command which attempt of its task it is: `1`,
/// then `2`, `3`, ... for its retries (`retries:`).
pub const ATTEMPT_VAR: &str = "FUTURETOP_ATTEMPT";

/// The exit code of a run stopped by a deadlock under `--on-deadlock fail`.
pub const EXIT_DEADLOCK: i32 = 3;
/// The exit code of an interrupted run (Ctrl-C, `y` to the quit question, SIGINT,
/// SIGTERM, SIGHUP).
pub const EXIT_INTERRUPTED: i32 = 130;

/// How soon a runner held back by the bus looks again.
const HELD_BACK_RETRY: Duration = Duration::from_millis(2);

/// Where the done-callbacks leave their futures' ends for the runner, and when they wake
/// it. A wake-up is a system call on each side (a third of a trivial task's whole cost when
/// it came with every end), so a callback rings the runner's bell only when the runner
/// has something to do at once: an end that is not a success, or a future something
/// waits for by name or item by item (`depends_on: [a]`, `{ each: }`), or the last item
/// of a map something waits for as a whole, or a pool whose futures in flight fell to
/// half its window (time to hand it more). Other ends wait for
/// the next wake-up, at most [`QUIET_ENDS_EVERY`].
/// Whether an end must wake the runner at once (see [`Inbox`]): a failure or cancel, a
/// future waited for by name or item by item, or the last item of a map that something
/// waits for as a whole (`group`: its items not yet ended, counted down here).
fn end_is_urgent(awaited_by_name: bool, group: Option<&AtomicUsize>, outcome: Final) -> bool {
    let last_of_group = group.is_some_and(|g| g.fetch_sub(1, Ordering::AcqRel) == 1);
    awaited_by_name || last_of_group || !matches!(outcome, Final::Done)
}

struct Inbox {
    ends: Mutex<Vec<Completion>>,
    bell: (Sender<()>, Receiver<()>),
    /// Per pool: futures handed over whose end is not yet in `ends`.
    outstanding: Vec<std::sync::atomic::AtomicUsize>,
    /// Per pool: ring when `outstanding` falls to this.
    low_water: Vec<usize>,
}

impl Inbox {
    fn new(windows: impl Iterator<Item = usize>) -> Self {
        let low_water: Vec<usize> = windows.map(|w| w / 2).collect();
        Self {
            ends: Mutex::new(Vec::new()),
            bell: crossbeam_channel::bounded(1),
            outstanding: low_water.iter().map(|_| std::sync::atomic::AtomicUsize::new(0)).collect(),
            low_water,
        }
    }

    /// A future of `pool` was handed over.
    fn handed(&self, pool: usize) {
        if let Some(o) = self.outstanding.get(pool) {
            o.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A future of `pool` ended (from its done-callback).
    fn ended(&self, pool: usize, end: Completion, urgent: bool) {
        lock(&self.ends).push(end);
        let left = self
            .outstanding
            .get(pool)
            .map_or(0, |o| o.fetch_sub(1, std::sync::atomic::Ordering::AcqRel).saturating_sub(1));
        if urgent || left <= self.low_water.get(pool).copied().unwrap_or(0) {
            // Full when already rung: nothing to do then.
            let _ = self.bell.0.try_send(());
        }
    }

    /// Every end left so far, oldest first.
    fn take(&self) -> Vec<Completion> {
        std::mem::take(&mut *lock(&self.ends))
    }
}

/// An item whose `{ each: }` pairing will never be satisfied: it ended, cancelled.
const DEAD: u32 = u32::MAX;

/// The `{ each: }` pairs an item waits for, as counted in [`Entry::each_done`].
fn pairs(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(DEAD - 1).min(DEAD - 1)
}

/// The runner's bookkeeping for one task as declared (a `map:` task is one): counters,
/// not a record per item, so that a run's memory follows its futures in flight.
#[derive(Default)]
struct Entry {
    /// Its dependencies (tasks and whole maps) not yet done.
    waiting: usize,
    /// Its items done so far.
    done: usize,
    /// Set once a dependency failed or was cancelled, or the run stopped, while it waited:
    /// its items were cancelled.
    abandoned: bool,
    /// Its items that ended failed or cancelled.
    bad: usize,
    /// The tasks that depend on this `map:` as a whole, until it is done or an item failed.
    group_dependents: Vec<usize>,
    /// The `map:` tasks whose item `k` waits for this one's item `k` (`{ each: }`).
    each_dependents: Vec<usize>,
    /// With `{ each: }` dependencies: per item, its paired items done so far ([`DEAD`]
    /// once it was cancelled). Empty otherwise.
    each_done: Vec<u32>,
}

/// A pool's futures in flight and its ready futures not yet handed to it.
struct Feed {
    /// Plan futures submitted to it and not yet finished.
    in_flight: usize,
    /// How many may be in flight: enough to keep every worker busy, with a margin.
    window: usize,
    /// Ready futures in the order they became ready: runs of consecutive indices.
    ready: std::collections::VecDeque<std::ops::Range<usize>>,
}

struct Runner {
    reg: Arc<Registry>,
    control: Receiver<Control>,
    wants: Receiver<usize>,
    inbox: Arc<Inbox>,
    entries: Vec<Entry>,
    feeds: Vec<Feed>,
    /// The tasks (indices into `entries`) waiting for each future named alone
    /// (`depends_on: [a]` or `[a_map[3]]`).
    direct: HashMap<usize, Vec<usize>>,
    /// Ready futures submitted ahead of their turn, for a `wait_on`: skipped when their turn comes.
    forced: std::collections::HashSet<usize>,
    /// Final states so far.
    counts: Counts,
    /// When the counts last went to the bus ([`BusMsg::Progress`]).
    last_progress: Instant,
    /// Set when the run stops: nothing more is handed to a pool.
    stopping: bool,
    /// Plan futures not yet in a final state.
    unfinished: usize,
    /// Set when a pool was not fed because the bus, or one of its subscribers, was behind
    /// ([`BUS_BACKLOG`], [`crate::events::SUBSCRIBER_BACKLOG`]).
    held_back: bool,
    /// Per task with dependents on it as a whole (`depends_on: [a_map]`): its items not
    /// yet ended, counted down by their done-callbacks, so that the last one rings the
    /// runner's bell (its dependents start at once, not at the next quiet wake-up).
    group_left: Vec<Option<Arc<AtomicUsize>>>,
    /// Each retried future's attempt now (absent: its first).
    attempts: HashMap<usize, u32>,
    /// Retries waiting for their time: the plan future, the id of its failed attempt, and
    /// when it is due (an entry of `due` at another time is stale).
    scheduled: HashMap<usize, (FutureId, Instant)>,
    /// When each scheduled retry is due (an entry no longer in `scheduled` was cancelled).
    due: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, usize)>>,
    /// The deadlines of running futures with a time limit: when, which, the limit.
    deadlines: std::collections::BinaryHeap<std::cmp::Reverse<Deadline>>,
    /// How each plan future ended ([`ENDED_DONE`], ...; 0 while it has not): a byte a
    /// future, for `r`, which must know what to run again.
    states: Vec<u8>,
}

/// [`Runner::states`]: done.
const ENDED_DONE: u8 = 1;
/// [`Runner::states`]: failed.
const ENDED_FAILED: u8 = 2;
/// [`Runner::states`]: cancelled.
const ENDED_CANCELLED: u8 = 3;

impl Runner {
    fn new(reg: Arc<Registry>, control: Receiver<Control>, wants: Receiver<usize>) -> Self {
        let plan = Arc::clone(&reg.plan);
        let mut entries: Vec<Entry> = plan.tasks.iter().map(|_| Entry::default()).collect();
        let mut direct: HashMap<usize, Vec<usize>> = HashMap::new();
        for (e, t) in plan.tasks.iter().enumerate() {
            entries[e].waiting = t.depends_on.len();
            for dep in t.depends_on.iter() {
                match dep {
                    Dep::Task(d) => direct.entry(*d).or_default().push(e),
                    Dep::Group(g) => entries[*g].group_dependents.push(e),
                }
            }
            for &other in &t.each {
                entries[other].each_dependents.push(e);
            }
            if !t.each.is_empty() {
                entries[e].each_done = vec![0; t.len];
            }
        }
        let feeds: Vec<Feed> = plan
            .pools
            .iter()
            .enumerate()
            .map(|(p, pool)| {
                let workers = pool.max_workers.max(1);
                // A chunk of a `chunksize:` map is one message: room for two a worker.
                let chunk = plan.tasks.iter().filter(|t| t.pool == p).filter_map(|t| t.chunk).max().unwrap_or(1);
                let window = (4 * workers + 64).max(workers.saturating_mul(chunk).saturating_mul(2) + chunk);
                Feed { in_flight: 0, window, ready: std::collections::VecDeque::new() }
            })
            .collect();
        let unfinished = plan.len();
        let group_left = entries
            .iter()
            .zip(plan.tasks.iter())
            .map(|(e, t)| (!e.group_dependents.is_empty()).then(|| Arc::new(AtomicUsize::new(t.len))))
            .collect();
        Self {
            reg,
            control,
            wants,
            inbox: Arc::new(Inbox::new(feeds.iter().map(|f: &Feed| f.window))),
            entries,
            feeds,
            direct,
            forced: std::collections::HashSet::new(),
            counts: Counts::default(),
            last_progress: Instant::now(),
            stopping: false,
            unfinished,
            held_back: false,
            group_left,
            attempts: HashMap::new(),
            scheduled: HashMap::new(),
            due: std::collections::BinaryHeap::new(),
            deadlines: std::collections::BinaryHeap::new(),
            states: vec![0; plan.len()],
        }
    }

    fn counts(&self) -> Counts {
        Counts { unfinished: self.unfinished, ..self.counts }
    }

    fn run(&mut self) -> (i32, Counts) {
        for e in 0..self.entries.len() {
            if self.entries[e].waiting == 0 {
                self.make_ready(e);
            }
        }
        self.dispatch_all();
        let mut outcome = None;
        let bell = self.inbox.bell.1.clone();
        let wants = self.wants.clone();
        while self.unfinished > 0 {
            // The ends come in batches (see `Inbox`); controls are looked at between
            // batches, so a key still acts at once.
            let ends = self.inbox.take();
            let taken = ends.len();
            self.take_ends(ends);
            self.submit_due_retries();
            self.enforce_deadlines();
            if self.last_progress.elapsed() >= PROGRESS_EVERY {
                self.last_progress = Instant::now();
                let _ = self.reg.bus.send(BusMsg::Progress(self.counts));
            }
            if std::mem::take(&mut self.held_back) {
                self.dispatch_all();
            }
            while let Ok(i) = wants.try_recv() {
                self.want(i);
            }
            match self.control.try_recv() {
                Ok(c) => {
                    if let Some(code) = self.control_message(&c) {
                        outcome = Some(code);
                        break;
                    }
                    continue;
                }
                Err(_) if taken > 0 => continue,
                Err(_) => {}
            }
            let in_flight = self.feeds.iter().any(|f| f.in_flight > 0);
            // Held back: look again soon (the bus drains fast), not when the pools are dry.
            let quiet = if self.held_back {
                HELD_BACK_RETRY
            } else if in_flight {
                QUIET_ENDS_EVERY
            } else {
                Duration::from_hours(1)
            };
            // A retry or a deadline due sooner wakes the runner at its time.
            let now = Instant::now();
            let quiet = self.due.peek().map_or(quiet, |r| quiet.min(r.0 .0.saturating_duration_since(now)));
            let quiet = self.deadlines.peek().map_or(quiet, |d| quiet.min(d.0 .0.saturating_duration_since(now)));
            select! {
                recv(bell) -> _ => {}
                recv(wants) -> msg => {
                    if let Ok(i) = msg {
                        self.want(i);
                    }
                }
                recv(self.control) -> msg => {
                    if let Ok(c) = msg {
                        if let Some(code) = self.control_message(&c) {
                            outcome = Some(code);
                            break;
                        }
                    }
                }
                default(quiet) => {}
            }
        }
        let counts = self.counts();
        let code = outcome.unwrap_or(i32::from(counts.exception > 0));
        (code, counts)
    }

    /// Follows the ends taken from the inbox, in the order they came.
    fn take_ends(&mut self, ends: Vec<Completion>) {
        if ends.is_empty() {
            return;
        }
        {
            let mut by_id = lock(&self.reg.by_id);
            for (_, id, _) in &ends {
                by_id.remove(id);
            }
        }
        for (i, id, f) in ends {
            if f == Final::Retryable && self.schedule_retry(i, id, true) {
                continue;
            }
            let f = if f == Final::Retryable { Final::Exception } else { f };
            self.finished(i, f, true);
        }
    }

    /// Plan future `i` (attempt id `failed`) ended in an exception a retry may follow: if
    /// its task has an attempt left, the retry is scheduled (and said, in a `retry`
    /// event) and its dependents go on waiting; false if not.
    fn schedule_retry(&mut self, i: usize, failed: FutureId, submitted: bool) -> bool {
        let plan = Arc::clone(&self.reg.plan);
        let Some(t) = plan.task_of(i) else { return false };
        let attempt = self.attempts.get(&i).copied().unwrap_or(1);
        if self.stopping || attempt >= t.retry.attempts() {
            return false;
        }
        let delay = t.retry.delay_after(attempt);
        if submitted {
            self.feeds[t.pool].in_flight = self.feeds[t.pool].in_flight.saturating_sub(1);
        }
        // Its map's count of items not yet ended counted this end: the next attempt's is the one.
        if let Some(g) = plan.locate(i).and_then(|(e, _)| self.group_left[e].as_ref()) {
            g.fetch_add(1, Ordering::AcqRel);
        }
        self.attempts.insert(i, attempt + 1);
        let at = Instant::now() + Duration::from_secs_f64(delay);
        self.scheduled.insert(i, (failed, at));
        self.due.push(std::cmp::Reverse((at, i)));
        // A `wait_on` from now on waits for the next attempt.
        lock(&self.reg.slots).remove(&i);
        let task = plan.name_of(i).into();
        let retry = EventKind::Retry { task, id: failed.0, attempt, attempts: t.retry.attempts(), delay };
        let _ = self.reg.bus.send(BusMsg::Runner(Instant::now(), Box::new(retry)));
        if submitted {
            // Its place in the window is free (a refused submit is inside `dispatch`).
            self.dispatch(t.pool);
        }
        true
    }

    /// Stops the running futures that reached their time limit (`timeout:`).
    fn enforce_deadlines(&mut self) {
        // Taken at each wake-up (the runner wakes at least every 20 ms while futures run):
        // a start does not wake it.
        while let Ok(d) = self.reg.timeouts.deadlines.1.try_recv() {
            self.deadlines.push(std::cmp::Reverse(d));
        }
        // The deadlines of futures that ended meanwhile go, once they are most of the heap.
        if self.deadlines.len() > 4096 {
            let live = lock(&self.reg.by_id);
            if self.deadlines.len() > 2 * live.len() {
                self.deadlines.retain(|d| live.contains_key(&d.0 .1));
            }
        }
        let now = Instant::now();
        while let Some(&std::cmp::Reverse((at, id, limit))) = self.deadlines.peek() {
            if at > now {
                return;
            }
            self.deadlines.pop();
            if let Some(f) = self.reg.future(id) {
                f.time_out(limit);
            }
        }
    }

    /// Submits the retries whose time has come.
    fn submit_due_retries(&mut self) {
        let now = Instant::now();
        while let Some(std::cmp::Reverse((at, i))) = self.due.peek().copied() {
            if at > now {
                return;
            }
            self.due.pop();
            if self.stopping || self.scheduled.get(&i).is_none_or(|&(_, when)| when != at) {
                continue;
            }
            self.scheduled.remove(&i);
            self.note_attempt(i);
            if let Some(t) = self.reg.plan.task_of(i) {
                self.renew_pool(t.pool);
            }
            self.submit(i);
        }
    }

    /// Pool `p`, if broken, is replaced by a new one (said in a `pool_restarted` event);
    /// if that cannot be built, what is submitted to it fails as a submit to a broken pool does.
    fn renew_pool(&self, p: usize) {
        let pool = &self.reg.pools[p];
        if !pool.is_broken() {
            return;
        }
        if let Ok(true) = pool.renew() {
            let name = self.reg.plan.pools[p].name.as_str().into();
            let _ =
                self.reg.bus.send(BusMsg::Runner(Instant::now(), Box::new(EventKind::PoolRestarted { pool: name })));
        }
    }

    /// Tells the bus which attempt plan future `i`'s next future is, if it is a retry.
    fn note_attempt(&self, i: usize) {
        if let Some(&n) = self.attempts.get(&i) {
            let _ = self.reg.bus.send(BusMsg::Attempt(self.reg.plan.name_of(i).into(), n));
        }
    }

    /// Ends the scheduled retry of plan future `i` before it runs: cancelled (`reason`:
    /// `None` for a user's cancel), with what follows from that.
    fn cancel_retry(&mut self, i: usize, reason: Option<CancelReason>) {
        if self.scheduled.remove(&i).is_some() {
            self.note_attempt(i);
            self.end_unsubmitted(i, Unsubmitted::Cancelled(reason));
        }
    }

    /// Acts on a control message; the run's exit code if it ends the run.
    fn control_message(&mut self, c: &Control) -> Option<i32> {
        match c {
            Control::Interrupt => {
                self.stop();
                Some(EXIT_INTERRUPTED)
            }
            Control::DeadlockFail => {
                self.stop();
                Some(EXIT_DEADLOCK)
            }
            Control::Client { client, action, target } => {
                let kind = EventKind::Client { client: client.clone(), action: *action, target: target.clone() };
                let _ = self.reg.bus.send(BusMsg::Runner(Instant::now(), Box::new(kind)));
                None
            }
            c => {
                self.steer(c);
                None
            }
        }
    }

    /// True when future `i` (item `k` of task `e`) may be submitted: its task's
    /// dependencies are done, and so are its `{ each: }` pairs.
    fn is_ready(&self, e: usize, k: usize) -> bool {
        let entry = &self.entries[e];
        let need = self.reg.plan.tasks[e].each.len();
        entry.waiting == 0 && !entry.abandoned && (need == 0 || entry.each_done.get(k).copied() == Some(pairs(need)))
    }

    /// Task `e`'s dependencies are all done: its items (those whose pairs are done too)
    /// join its pool's ready queue.
    fn make_ready(&mut self, e: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let t = &plan.tasks[e];
        if t.each.is_empty() {
            self.feeds[t.pool].ready.push_back(t.futures());
            return;
        }
        let need = pairs(t.each.len());
        for k in 0..t.len {
            if self.entries[e].each_done[k] == need {
                self.push_ready(t.pool, t.first + k);
            }
        }
    }

    fn push_ready(&mut self, pool: usize, i: usize) {
        let ready = &mut self.feeds[pool].ready;
        match ready.back_mut() {
            Some(last) if last.end == i => last.end += 1,
            _ => ready.push_back(i..i + 1),
        }
    }

    fn dispatch_all(&mut self) {
        for p in 0..self.feeds.len() {
            self.dispatch(p);
        }
    }

    /// Hands pool `p` its ready futures, in order, while it has fewer than its window in
    /// flight: the consecutive items of a `map:` with a `chunksize:` go in chunks of that
    /// many, the others one by one.
    fn dispatch(&mut self, p: usize) {
        let behind = self.reg.bus.len() >= BUS_BACKLOG
            || self.reg.lag.load(std::sync::atomic::Ordering::Relaxed) >= crate::events::SUBSCRIBER_BACKLOG;
        if behind && !self.feeds[p].ready.is_empty() {
            self.held_back = true;
            return;
        }
        let plan = Arc::clone(&self.reg.plan);
        // A broken pool is renewed for ready tasks that may be retried: a submit to it
        // would spend an attempt of each at once.
        let front = self.feeds[p].ready.front().and_then(|r| plan.task_of(r.start));
        if front.is_some_and(|t| t.retry.retries > 0) {
            self.renew_pool(p);
        }
        while !self.stopping && self.feeds[p].in_flight < self.feeds[p].window {
            let Some(run) = self.feeds[p].ready.front_mut() else { return };
            let i = run.start;
            let Some((e, _)) = plan.locate(i) else {
                self.feeds[p].ready.pop_front();
                continue;
            };
            let t = &plan.tasks[e];
            // A chunk stays inside its task, and stops before a future submitted ahead.
            let mut end = i + 1;
            let limit = run.end.min(t.first + t.len).min(i.saturating_add(t.chunk.unwrap_or(1)));
            while end < limit && !self.forced.contains(&end) {
                end += 1;
            }
            run.start = end;
            if run.start >= run.end {
                self.feeds[p].ready.pop_front();
            }
            if self.forced.remove(&i) {
                continue;
            }
            if end - i == 1 {
                self.submit(i);
                continue;
            }
            let items: Vec<(usize, String, Option<Work>)> =
                (i..end).map(|j| (j, plan.name_of(j), plan.work(j))).collect();
            let (good, bad): (Vec<_>, Vec<_>) = items.into_iter().partition(|(_, _, w)| w.is_some());
            for (j, _, _) in bad {
                self.unreadable(j);
            }
            let indices: Vec<usize> = good.iter().map(|(j, _, _)| *j).collect();
            let results =
                self.reg.submit_chunk(p, good.into_iter().filter_map(|(_, name, w)| w.map(|w| (name, w))).collect());
            for (j, result) in indices.into_iter().zip(results) {
                self.submitted(j, result);
            }
        }
    }

    fn submit(&mut self, i: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let (Some(t), Some(mut work)) = (plan.task_of(i), plan.work(i)) else {
            self.unreadable(i);
            return;
        };
        if let Work::Command(c) = &mut work {
            // Which attempt this is (a command may act on it: `retries:`).
            let attempt = self.attempts.get(&i).copied().unwrap_or(1);
            c.env.push((ATTEMPT_VAR.to_owned(), attempt.to_string()));
        }
        let result = self.reg.submit_plan(t.pool, &plan.name_of(i), work);
        self.submitted(i, result);
    }

    /// A `map:` item whose call cannot be read again (a bug: validation read it): it
    /// fails without running, saying so.
    fn unreadable(&mut self, i: usize) {
        let error = Exception::task(format!("cannot read the call of {}", self.reg.plan.name_of(i)));
        self.end_unsubmitted(i, Unsubmitted::Failed(error));
    }

    /// A `wait_on` waits for future `i`, which has none yet: if it is ready and held back
    /// by its pool's window, it goes now (Python's `map` would have submitted it already).
    fn want(&mut self, i: usize) {
        // An awaited future gets its slot when it is submitted or ends unsubmitted: one
        // without a slot that is ready is still in its pool's ready queue.
        if self.stopping
            || lock(&self.reg.slots).contains_key(&i)
            || self.forced.contains(&i)
            || self.scheduled.contains_key(&i)
        {
            return;
        }
        let Some((e, k)) = self.reg.plan.locate(i) else { return };
        if self.is_ready(e, k) {
            self.forced.insert(i);
            self.submit(i);
        }
    }

    /// True when a task waits for future `i` by itself: by name (`depends_on: [a]`,
    /// `[a_map[3]]`) or item by item (`{ each: }`). Its end is acted on at once.
    fn is_awaited_by_name(&self, i: usize) -> bool {
        self.direct.contains_key(&i)
            || self.reg.plan.locate(i).is_some_and(|(e, _)| !self.entries[e].each_dependents.is_empty())
    }

    /// Follows plan future `i` once its pool took it (or refused it).
    fn submitted(&mut self, i: usize, result: Result<Future<Value>, SubmitError>) {
        match result {
            Ok(f) => {
                let pool = self.reg.plan.task_of(i).map_or(0, |t| t.pool);
                self.feeds[pool].in_flight += 1;
                // Live until the runner hears it ended (one callback a future, and the
                // table is only touched by this thread and by controls).
                lock(&self.reg.by_id).insert(f.id(), (pool, f.clone()));
                let inbox = Arc::clone(&self.inbox);
                inbox.handed(pool);
                let awaited_by_name = self.is_awaited_by_name(i);
                let group = self.reg.plan.locate(i).and_then(|(e, _)| self.group_left[e].clone());
                f.add_done_callback(move |f| {
                    let outcome = match f.try_result() {
                        Some(Ok(_)) => Final::Done,
                        Some(Err(FutureError::Cancelled(_))) => Final::Cancelled,
                        Some(Err(FutureError::Failed(e)))
                            if !matches!(e.kind(), ErrorKind::Killed | ErrorKind::DeadlockError) =>
                        {
                            Final::Retryable
                        }
                        _ => Final::Exception,
                    };
                    let urgent = end_is_urgent(awaited_by_name, group.as_deref(), outcome);
                    inbox.ended(pool, (i, f.id(), outcome), urgent);
                });
                if self.reg.plan.awaited.binary_search(&i).is_ok() {
                    lock(&self.reg.slots).insert(i, f);
                    self.reg.submitted.notify_all();
                }
            }
            Err(SubmitError::Broken(b)) => {
                // A broken pool: the task fails without running, with the pool's error, as
                // the futures queued in it when it broke do (Python: submit raises it);
                // a task with retries left tries again, on a pool renewed for it.
                let (outcome, id) = self.emit_unsubmitted_id(i, Unsubmitted::Failed(Exception::Broken(b)));
                if !self.schedule_retry(i, id, false) {
                    self.finished(i, outcome, false);
                }
            }
            Err(e) => {
                // Shut down: the task never runs.
                self.end_unsubmitted(i, Unsubmitted::Cancelled(Some(CancelReason::Refused(e.to_string()))));
            }
        }
    }

    /// A future that never reached a pool: give it a future id and report it pending,
    /// then how it ended; then what follows from that.
    fn end_unsubmitted(&mut self, i: usize, end: Unsubmitted) {
        let outcome = self.emit_unsubmitted(i, end);
        self.finished(i, outcome, false);
    }

    /// Reports future `i`, which never reached a pool, pending and ended; how it ended.
    fn emit_unsubmitted(&mut self, i: usize, end: Unsubmitted) -> Final {
        self.emit_unsubmitted_id(i, end).0
    }

    /// [`Runner::emit_unsubmitted`], with the id the future was given.
    fn emit_unsubmitted_id(&mut self, i: usize, end: Unsubmitted) -> (Final, FutureId) {
        let plan = &self.reg.plan;
        let pool: crate::events::Name = plan.task_of(i).map_or("", |t| plan.pools[t.pool].name.as_str()).into();
        let f = Future::<Value>::new();
        let (name, id, now): (crate::events::Name, _, _) = (plan.name_of(i).into(), f.id().0, Instant::now());
        let _ = self.reg.bus.send(BusMsg::Runner(
            now,
            Box::new(EventKind::Pending { attempt: None, task: name.clone(), id, pool: pool.clone() }),
        ));
        let (kind, outcome) = match end {
            Unsubmitted::Failed(error) => {
                let _ = f.set_exception(error.clone());
                let error = ErrorInfo::from(&error);
                (EventKind::Exception { task: name, id, pool, error }, Final::Exception)
            }
            Unsubmitted::Cancelled(reason) => {
                f.cancel();
                (EventKind::Cancelled { task: name, id, pool, reason }, Final::Cancelled)
            }
        };
        let _ = self.reg.bus.send(BusMsg::Runner(now, Box::new(kind)));
        if plan.awaited.binary_search(&i).is_ok() {
            lock(&self.reg.slots).insert(i, f);
            self.reg.submitted.notify_all();
        }
        (outcome, FutureId(id))
    }

    /// Future `i` ended (`submitted`: it had reached its pool). What depends on it is
    /// submitted or cancelled, and so on down the chains, without recursion (a chain of
    /// 100,000 tasks cancelled by its first would overflow a stack).
    fn finished(&mut self, i: usize, outcome: Final, submitted: bool) {
        self.settle(vec![(i, outcome, submitted)]);
    }

    /// Follows each future ended in `work` (see [`Runner::finished`]).
    fn settle(&mut self, mut work: Vec<(usize, Final, bool)>) {
        let plan = Arc::clone(&self.reg.plan);
        let mut pools_to_feed = Vec::new();
        while let Some((i, outcome, submitted)) = work.pop() {
            let Some((e, k)) = plan.locate(i) else { continue };
            let t = &plan.tasks[e];
            if submitted {
                self.feeds[t.pool].in_flight = self.feeds[t.pool].in_flight.saturating_sub(1);
                pools_to_feed.push(t.pool);
            }
            self.unfinished = self.unfinished.saturating_sub(1);
            match outcome {
                Final::Done => self.counts.done += 1,
                Final::Exception | Final::Retryable => self.counts.exception += 1,
                Final::Cancelled => self.counts.cancelled += 1,
            }
            if let Some(s) = self.states.get_mut(i) {
                *s = match outcome {
                    Final::Done => ENDED_DONE,
                    Final::Exception | Final::Retryable => ENDED_FAILED,
                    Final::Cancelled => ENDED_CANCELLED,
                };
                if *s != ENDED_DONE {
                    self.entries[e].bad += 1;
                }
            }
            let reason = || {
                let name = plan.name_of(i);
                if outcome == Final::Cancelled {
                    CancelReason::DependencyCancelled(name)
                } else {
                    CancelReason::DependencyFailed(name)
                }
            };
            // Tasks that wait for this future alone, or for its whole map.
            let mut satisfied = Vec::new();
            let mut abandoned = Vec::new();
            let direct = self.direct.remove(&i).unwrap_or_default();
            if outcome == Final::Done {
                satisfied.extend(direct);
                let entry = &mut self.entries[e];
                entry.done += 1;
                if entry.done == t.len {
                    satisfied.extend(std::mem::take(&mut entry.group_dependents));
                }
            } else {
                abandoned.extend(direct);
                // The first item that fails or is cancelled ends the map's dependents.
                abandoned.extend(std::mem::take(&mut self.entries[e].group_dependents));
            }
            for d in satisfied {
                let entry = &mut self.entries[d];
                if entry.abandoned {
                    continue;
                }
                entry.waiting = entry.waiting.saturating_sub(1);
                if entry.waiting == 0 {
                    self.make_ready(d);
                    pools_to_feed.push(plan.tasks[d].pool);
                }
            }
            for d in abandoned {
                let reason = reason();
                self.abandon(d, Some(&reason), &mut work);
            }
            // Item k of the maps paired with this one.
            for d in self.entries[e].each_dependents.clone() {
                let need = pairs(plan.tasks[d].each.len());
                let dt = &plan.tasks[d];
                let entry = &mut self.entries[d];
                let (waiting, abandoned) = (entry.waiting, entry.abandoned);
                let Some(count) = entry.each_done.get_mut(k) else { continue };
                if *count == DEAD || abandoned {
                    continue;
                }
                if outcome == Final::Done {
                    *count += 1;
                    if *count == need && waiting == 0 {
                        self.push_ready(dt.pool, dt.first + k);
                        pools_to_feed.push(dt.pool);
                    }
                } else {
                    *count = DEAD;
                    let end = Unsubmitted::Cancelled(Some(reason()));
                    let o = self.emit_unsubmitted(dt.first + k, end);
                    work.push((dt.first + k, o, false));
                }
            }
        }
        pools_to_feed.sort_unstable();
        pools_to_feed.dedup();
        if !self.stopping {
            for p in pools_to_feed {
                self.dispatch(p);
            }
        }
    }

    /// Task `e` will never run (a dependency failed or was cancelled, or the run
    /// stopped): each of its futures that has not ended is reported cancelled, with
    /// `reason`, and queued in `work` for what follows from it.
    fn abandon(&mut self, e: usize, reason: Option<&CancelReason>, work: &mut Vec<(usize, Final, bool)>) {
        let plan = Arc::clone(&self.reg.plan);
        let entry = &mut self.entries[e];
        if entry.abandoned || entry.waiting == 0 {
            // Already cancelled, or already ready (its futures are its pool's).
            return;
        }
        entry.abandoned = true;
        let t = &plan.tasks[e];
        for k in 0..t.len {
            if let Some(count) = self.entries[e].each_done.get_mut(k) {
                if *count == DEAD {
                    continue;
                }
                *count = DEAD;
            }
            let o = self.emit_unsubmitted(t.first + k, Unsubmitted::Cancelled(reason.cloned()));
            work.push((t.first + k, o, false));
        }
    }

    /// Cancels the ready futures that pool `p` has not been handed yet (`reason`: `None`
    /// for a user's cancel), and what depends on them.
    fn cancel_ready(&mut self, p: usize, reason: Option<&CancelReason>) {
        let ready = std::mem::take(&mut self.feeds[p].ready);
        for run in ready {
            for i in run {
                if self.forced.remove(&i) {
                    continue;
                }
                let plan = Arc::clone(&self.reg.plan);
                if let Some((e, k)) = plan.locate(i) {
                    if let Some(count) = self.entries[e].each_done.get_mut(k) {
                        *count = DEAD;
                    }
                }
                self.end_unsubmitted(i, Unsubmitted::Cancelled(reason.cloned()));
            }
        }
    }

    fn steer(&mut self, c: &Control) {
        match c {
            Control::Cancel(id) => {
                if let Some(f) = self.reg.future(*id) {
                    f.cancel();
                } else if let Some(i) = self.scheduled.iter().find(|(_, (f, _))| f == id).map(|(&i, _)| i) {
                    // The last attempt of a task whose retry waits for its time.
                    self.cancel_retry(i, None);
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
                // And those it has not been handed yet: pending futures too, and retries.
                self.cancel_ready(pool, None);
                let plan = Arc::clone(&self.reg.plan);
                let retries: Vec<usize> = self
                    .scheduled
                    .keys()
                    .copied()
                    .filter(|&i| plan.task_of(i).is_some_and(|t| t.pool == pool))
                    .collect();
                for i in retries {
                    self.cancel_retry(i, None);
                }
                // And its tasks still waiting on others: pending futures not yet handed over.
                let mut work = Vec::new();
                for e in (0..plan.tasks.len()).filter(|&e| plan.tasks[e].pool == pool) {
                    self.abandon(e, None, &mut work);
                }
                self.settle(work);
                self.dispatch(pool);
            }
            Control::CancelUnsubmitted(name) => {
                if let Some(e) = self.reg.plan.task_position(name) {
                    self.cancel_unsubmitted(e);
                } else if let Some(j) = self.reg.plan.task_index(name) {
                    // One item waiting again on its `{ each: }` pair (after an `r`).
                    self.cancel_item(j);
                }
            }
            Control::Resubmit(name) => {
                if let Some(i) = self.reg.plan.task_index(name) {
                    self.resubmit(i);
                }
            }
            Control::Interrupt | Control::DeadlockFail | Control::Client { .. } => {}
        }
    }

    /// `r`: plan future `i`, which ended failed or cancelled (not for a dependency that
    /// failed: that one is the one to run again), runs again as a new attempt; the tasks
    /// that were cancelled because of it (and of them), and depend on nothing else that
    /// failed, wait for it again. A task a user cancelled while it waited on others waits
    /// again, whole. Said in a `resubmit` event, before the attempt's `pending`.
    fn resubmit(&mut self, i: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let Some((e, k)) = plan.locate(i) else { return };
        let state = self.states[i];
        if self.stopping || !(state == ENDED_FAILED || state == ENDED_CANCELLED) {
            return;
        }
        // Cancelled while it waited on others: it waits again, if none of them failed.
        let waiting_again = self.entries[e].abandoned;
        if waiting_again && plan.tasks[e].depends_on.iter().any(|dep| self.failed(dep, None)) {
            return;
        }
        let (revived, items) = self.revive_dependents(i, waiting_again);
        let task = &plan.tasks[e];
        let attempt = if waiting_again { 1 } else { self.attempts.get(&i).copied().unwrap_or(1) + 1 };
        let info = |task: String, pool: usize, after: Vec<String>| WaitingInfo {
            task,
            pool: plan.pools[pool].name.clone(),
            after,
        };
        let mut after: Vec<WaitingInfo> = revived
            .iter()
            .map(|&d| info(plan.tasks[d].name.clone(), plan.tasks[d].pool, plan.dependency_names(&plan.tasks[d])))
            .collect();
        after.extend(items.iter().filter_map(|&j| {
            let d = plan.task_of(j)?;
            Some(info(plan.name_of(j), d.pool, d.each.iter().map(|&m| plan.tasks[m].name.clone()).collect()))
        }));
        let event = EventKind::Resubmit {
            task: plan.name_of(i).into(),
            attempt,
            attempts: task.retry.attempts().max(attempt),
            revived: after,
        };
        let _ = self.reg.bus.send(BusMsg::Runner(Instant::now(), Box::new(event)));
        if waiting_again {
            // Revived whole, with its dependents: it is submitted when its turn comes.
            self.dispatch(task.pool);
            return;
        }
        self.reopen(i);
        if !task.each.is_empty() {
            self.recount_each(e, k);
        }
        self.attempts.insert(i, attempt);
        self.note_attempt(i);
        self.renew_pool(task.pool);
        self.submit(i);
    }

    /// True when dependency `dep` failed or was cancelled, and is not run again: plan
    /// future `rerun`, and the tasks marked in `again`, are.
    fn failed(&self, dep: &Dep, again: Option<(&[bool], usize)>) -> bool {
        let plan = &self.reg.plan;
        let bad = |s: u8| s == ENDED_FAILED || s == ENDED_CANCELLED;
        match (dep, again) {
            (&Dep::Task(j), None) => bad(self.states[j]),
            (&Dep::Task(j), Some((again, rerun))) => {
                let o = plan.locate(j).map_or(usize::MAX, |(o, _)| o);
                let root = plan.locate(rerun).map_or(usize::MAX, |(r, _)| r);
                j != rerun && bad(self.states[j]) && !(again.get(o) == Some(&true) && o != root)
            }
            (&Dep::Group(g), None) => self.entries[g].bad > 0,
            (&Dep::Group(g), Some((again, rerun))) => {
                let root = plan.locate(rerun).map_or(usize::MAX, |(r, _)| r);
                if g == root {
                    self.entries[g].bad > usize::from(bad(self.states[rerun]))
                } else {
                    again.get(g) != Some(&true) && self.entries[g].bad > 0
                }
            }
        }
    }

    /// Plan future `i` is unfinished again (it runs again, or waits to).
    fn reopen(&mut self, i: usize) {
        let Some((e, _)) = self.reg.plan.locate(i) else { return };
        match std::mem::take(&mut self.states[i]) {
            ENDED_FAILED => self.counts.exception = self.counts.exception.saturating_sub(1),
            ENDED_CANCELLED => self.counts.cancelled = self.counts.cancelled.saturating_sub(1),
            _ => return,
        }
        self.entries[e].bad = self.entries[e].bad.saturating_sub(1);
        self.unfinished += 1;
        if let Some(g) = &self.group_left[e] {
            g.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Item `k` of `{ each: }` map `e`: its paired items done, counted again.
    fn recount_each(&mut self, e: usize, k: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let done = plan.tasks[e].each.iter().filter(|&&m| self.states[plan.tasks[m].first + k] == ENDED_DONE).count();
        if let Some(c) = self.entries[e].each_done.get_mut(k) {
            *c = pairs(done);
        }
    }

    /// The tasks cancelled (abandoned) because plan future `i` failed or was cancelled,
    /// and because of them in turn, that depend on nothing else that failed: they wait
    /// again, their dependencies' edges restored (with `whole`, `i`'s own task too: a
    /// task a user cancelled while it waited). So do the items of `{ each: }` maps paired
    /// with a future run again, whose other pairs did not fail. Returns the tasks revived
    /// whole, and the items revived alone.
    fn revive_dependents(&mut self, i: usize, whole: bool) -> (Vec<usize>, Vec<usize>) {
        let plan = Arc::clone(&self.reg.plan);
        let n = plan.tasks.len();
        let Some((root, item)) = plan.locate(i) else { return (Vec::new(), Vec::new()) };
        // Reverse edges, from the plan (the runner lets its own go as futures end).
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut paired: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (d, t) in plan.tasks.iter().enumerate() {
            for dep in t.depends_on.iter() {
                let on = match *dep {
                    Dep::Task(j) => plan.locate(j).map(|(e, _)| e),
                    Dep::Group(g) => Some(g),
                };
                if let Some(on) = on.filter(|&on| on < n) {
                    dependents[on].push(d);
                }
            }
            for &m in t.each.iter().filter(|&&m| m < n) {
                paired[m].push(d);
            }
        }
        // Tasks run again whole (the root: only future `i` of it, unless `whole`).
        let mut again = vec![false; n];
        again[root] = true;
        let mut revived = if whole { vec![root] } else { Vec::new() };
        if whole {
            // Its futures count as live from here, for what depends on it.
            for j in plan.tasks[root].futures() {
                self.reopen(j);
            }
        }
        let mut queue = vec![root];
        while let Some(e) = queue.pop() {
            for &d in &dependents[e] {
                if again[d] || !self.entries[d].abandoned {
                    continue;
                }
                // A dependency that failed and is not run again keeps it cancelled.
                if plan.tasks[d].depends_on.iter().any(|dep| self.failed(dep, Some((&again, i)))) {
                    continue;
                }
                again[d] = true;
                revived.push(d);
                queue.push(d);
            }
        }
        for &d in &revived {
            for j in plan.tasks[d].futures() {
                self.reopen(j);
            }
            let entry = &mut self.entries[d];
            (entry.abandoned, entry.bad, entry.done) = (false, 0, 0);
        }
        // Their dependencies' edges, as at the start, for what is not done (an edge the
        // runner still holds, to a dependency that had not ended, is not added twice).
        for &d in &revived {
            let mut waiting = 0;
            for dep in plan.tasks[d].depends_on.iter() {
                match *dep {
                    Dep::Task(j) if self.states[j] != ENDED_DONE => {
                        waiting += 1;
                        let list = self.direct.entry(j).or_default();
                        if !list.contains(&d) {
                            list.push(d);
                        }
                    }
                    Dep::Group(g) if self.entries[g].done < plan.tasks[g].len => {
                        waiting += 1;
                        if !self.entries[g].group_dependents.contains(&d) {
                            self.entries[g].group_dependents.push(d);
                        }
                    }
                    _ => {}
                }
            }
            self.entries[d].waiting = waiting;
            for k in 0..self.entries[d].each_done.len() {
                self.recount_each(d, k);
            }
            if waiting == 0 {
                self.make_ready(d);
            }
        }
        // Item by item: the items paired with the future run again, cancelled for it,
        // whose other pairs are done or live.
        let mut items = Vec::new();
        let mut work = vec![(root, item)];
        while let Some((e, k)) = work.pop() {
            for &d in &paired[e] {
                let j = plan.tasks[d].first + k;
                if again[d] || self.entries[d].abandoned || k >= plan.tasks[d].len || self.states[j] != ENDED_CANCELLED
                {
                    continue;
                }
                let others_failed = plan.tasks[d].each.iter().any(|&m| {
                    let p = plan.tasks[m].first + k;
                    p != i && !items.contains(&p) && matches!(self.states[p], ENDED_FAILED | ENDED_CANCELLED)
                });
                if others_failed {
                    continue;
                }
                self.reopen(j);
                self.recount_each(d, k);
                items.push(j);
                work.push((d, k));
            }
        }
        (revived, items)
    }

    /// Cancels plan future `j`, an item of a map not handed to its pool (waiting for its
    /// `{ each: }` pairs, or ready and held back by the window): a user's cancel.
    fn cancel_item(&mut self, j: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let Some((e, k)) = plan.locate(j) else { return };
        if self.states[j] != 0 || self.entries[e].waiting > 0 || self.forced.contains(&j) {
            return;
        }
        let pool = plan.tasks[e].pool;
        let mut found = false;
        let mut keep = std::collections::VecDeque::new();
        for run in std::mem::take(&mut self.feeds[pool].ready) {
            if run.contains(&j) {
                found = true;
                if run.start < j {
                    keep.push_back(run.start..j);
                }
                if j + 1 < run.end {
                    keep.push_back(j + 1..run.end);
                }
            } else {
                keep.push_back(run);
            }
        }
        self.feeds[pool].ready = keep;
        let waiting_pairs =
            self.entries[e].each_done.get(k).is_some_and(|&c| c != DEAD && c < pairs(plan.tasks[e].each.len()));
        if !found && !waiting_pairs {
            // Handed to its pool already: `c` on its future's row cancels it there.
            return;
        }
        if let Some(c) = self.entries[e].each_done.get_mut(k) {
            *c = DEAD;
        }
        let o = self.emit_unsubmitted(j, Unsubmitted::Cancelled(None));
        self.settle(vec![(j, o, false)]);
    }

    /// Cancels task `e`'s futures not yet handed to its pool (a user's cancel: no
    /// reason), and what depends on them.
    fn cancel_unsubmitted(&mut self, e: usize) {
        let plan = Arc::clone(&self.reg.plan);
        let t = &plan.tasks[e];
        let mut work = Vec::new();
        if self.entries[e].waiting > 0 {
            self.abandon(e, None, &mut work);
            self.settle(work);
            return;
        }
        let own = t.futures();
        let mut keep = std::collections::VecDeque::new();
        let mut cancel = Vec::new();
        for run in std::mem::take(&mut self.feeds[t.pool].ready) {
            let inside = run.start.max(own.start)..run.end.min(own.end);
            if inside.start >= inside.end {
                keep.push_back(run);
                continue;
            }
            if run.start < inside.start {
                keep.push_back(run.start..inside.start);
            }
            cancel.extend(inside.clone().filter(|i| !self.forced.remove(i)));
            if inside.end < run.end {
                keep.push_back(inside.end..run.end);
            }
        }
        self.feeds[t.pool].ready = keep;
        // With `{ each: }`: the items whose pairs are not all done yet, too.
        let need = pairs(t.each.len());
        let each_done = &mut self.entries[e].each_done;
        if !each_done.is_empty() {
            for &i in &cancel {
                each_done[i - t.first] = DEAD;
            }
            for (k, count) in each_done.iter_mut().enumerate() {
                if *count < need {
                    *count = DEAD;
                    cancel.push(t.first + k);
                }
            }
        }
        for i in cancel {
            let o = self.emit_unsubmitted(i, Unsubmitted::Cancelled(None));
            work.push((i, o, false));
        }
        self.settle(work);
    }

    /// Ctrl-C or a deadlock failure: cancel what waits, kill what runs, give it a moment.
    fn stop(&mut self) {
        self.stopping = true;
        for p in &self.reg.pools {
            p.shutdown(false, true);
        }
        for p in 0..self.feeds.len() {
            self.cancel_ready(p, Some(&CancelReason::RunStopped));
        }
        let retries: Vec<usize> = self.scheduled.keys().copied().collect();
        for i in retries {
            self.cancel_retry(i, Some(CancelReason::RunStopped));
        }
        let plan = Arc::clone(&self.reg.plan);
        let mut work = Vec::new();
        for (e, t) in plan.tasks.iter().enumerate() {
            if self.entries[e].waiting > 0 {
                self.abandon(e, Some(&CancelReason::RunStopped), &mut work);
                continue;
            }
            // Items still waiting for their `{ each: }` pairs.
            let need = pairs(t.each.len());
            for k in 0..self.entries[e].each_done.len() {
                let count = self.entries[e].each_done[k];
                if count != DEAD && count < need && !self.entries[e].abandoned {
                    self.entries[e].each_done[k] = DEAD;
                    let end = Unsubmitted::Cancelled(Some(CancelReason::RunStopped));
                    let o = self.emit_unsubmitted(t.first + k, end);
                    work.push((t.first + k, o, false));
                }
            }
        }
        self.settle(work);
        let all: Vec<Future<Value>> = lock(&self.reg.by_id).values().map(|(_, f)| f.clone()).collect();
        for f in &all {
            if !f.cancel() {
                f.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.unfinished > 0 && Instant::now() < deadline {
            let ends = self.inbox.take();
            if ends.is_empty() {
                let _ = self.inbox.bell.1.recv_deadline(deadline.min(Instant::now() + QUIET_ENDS_EVERY));
            }
            self.take_ends(ends);
        }
    }

    /// Shuts the pools down: waits for workers after a normal run; after an interrupted
    /// or deadlocked one, leaves threads that cannot finish to the process exit.
    fn release(self, exit_code: i32) {
        let reg = self.reg;
        let abandoned = exit_code == EXIT_DEADLOCK || exit_code == EXIT_INTERRUPTED;
        for p in &reg.pools {
            p.shutdown(!abandoned, abandoned);
        }
        if abandoned {
            // Blocked threads keep the registry alive; dropping it would join them.
            std::mem::forget(reg);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::{start, RunOptions};
    use crate::control::{Control, OnDeadlock};
    use crate::events::{Event, EventKind};

    fn plan(yaml: &str) -> crate::config::Plan {
        crate::config::load_str_offline("t.yaml", "t", yaml).expect("a valid file")
    }

    /// The runner is woken by an end only when it has something to do at once: a
    /// failure or cancellation, a future awaited by name, or a pool that ran down to half
    /// its window; other ends wait in the inbox for the next wake-up.
    #[test]
    fn an_end_rings_the_runner_only_when_it_must_act() {
        use super::{Final, Inbox};
        use futuretop_engine::observe::FutureId;
        let inbox = Inbox::new([8usize].into_iter());
        let rung = |inbox: &Inbox| inbox.bell.1.try_recv().is_ok();
        for _ in 0..10 {
            inbox.handed(0);
        }
        // 10 in flight, low water 4: quiet ends do not ring until 4 are left.
        for k in 0..5 {
            inbox.ended(0, (k, FutureId(k as u64), Final::Done), false);
            assert!(!rung(&inbox), "end {k} rang with {} in flight", 9 - k);
        }
        inbox.ended(0, (5, FutureId(5), Final::Exception), true);
        assert!(rung(&inbox), "an urgent end rings");
        inbox.ended(0, (6, FutureId(6), Final::Done), false);
        assert!(rung(&inbox), "3 left, under the low water: rings");
        // Two ends between wake-ups ring once (the bell holds one).
        inbox.ended(0, (7, FutureId(7), Final::Done), false);
        inbox.ended(0, (8, FutureId(8), Final::Done), false);
        assert!(rung(&inbox) && !rung(&inbox));
        let ends: Vec<usize> = inbox.take().into_iter().map(|(i, _, _)| i).collect();
        assert_eq!(ends, (0..9).collect::<Vec<_>>(), "every end is kept, in order");
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn the_last_item_of_a_map_waited_for_as_a_whole_is_urgent() {
        use super::{end_is_urgent, Final};
        use std::sync::atomic::AtomicUsize;
        let left = AtomicUsize::new(3);
        assert!(!end_is_urgent(false, Some(&left), Final::Done));
        assert!(end_is_urgent(false, Some(&left), Final::Exception), "a failure always rings");
        assert!(end_is_urgent(false, Some(&left), Final::Done), "the third and last item rings");
        assert!(!end_is_urgent(false, None, Final::Done), "a quiet end of a map nobody waits for");
        assert!(end_is_urgent(true, None, Final::Done), "a future named in depends_on");
        assert!(end_is_urgent(false, None, Final::Cancelled));
    }

    /// Each future's events, by id: every one has a `pending` first and ends once.
    fn lifecycles(events: &[Arc<Event>]) -> HashMap<u64, Vec<&'static str>> {
        let mut by_id: HashMap<u64, Vec<&'static str>> = HashMap::new();
        for e in events {
            let (id, what) = match &e.kind {
                EventKind::Pending { id, .. } => (*id, "pending"),
                EventKind::Running { id, .. } => (*id, "running"),
                EventKind::Done { id, .. } => (*id, "done"),
                EventKind::Exception { id, .. } => (*id, "exception"),
                EventKind::Cancelled { id, .. } => (*id, "cancelled"),
                _ => continue,
            };
            by_id.entry(id).or_default().push(what);
        }
        by_id
    }

    /// A large map is handed to its pool a window at a time (never more than the window
    /// queued or running); `C` on the pool half-way cancels the futures it holds and those
    /// not yet handed to it alike, each with a `pending` and one `cancelled`, without a reason
    /// (a user's cancel).
    #[test]
    fn a_windowed_map_is_fed_a_window_at_a_time_and_cancel_pool_reaches_unsubmitted_items() {
        const ITEMS: usize = 3000;
        let yaml = format!(
            "pools:\n  io: {{ kind: thread, max_workers: 2 }}\n\
             tasks:\n  - {{ name: m, pool: io, call: spin, map: {{ secs: [{}] }} }}\n",
            vec!["0.0005"; ITEMS].join(", ")
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = start(plan(&yaml), &RunOptions::default(), vec![tx]).expect("the run starts");
        let mut events = Vec::new();
        let (mut live, mut most_live, mut done) = (0i64, 0i64, 0);
        let mut cancelled_pool = false;
        for e in &rx {
            match &e.kind {
                EventKind::Pending { .. } => live += 1,
                EventKind::Done { .. } | EventKind::Exception { .. } | EventKind::Cancelled { .. } => {
                    live -= 1;
                    if matches!(e.kind, EventKind::Done { .. }) {
                        done += 1;
                    }
                }
                _ => {}
            }
            most_live = most_live.max(live);
            if done == 200 && !cancelled_pool {
                cancelled_pool = true;
                handle.control().send(Control::CancelPool("io".into())).expect("the run listens");
            }
            events.push(e);
        }
        let report = handle.join();
        // The window: 4 a worker and 64 more, never the whole map.
        assert!(most_live <= 4 * 2 + 64 + 1, "{most_live} futures were live at once");
        let c = report.counts;
        assert_eq!((c.done + c.cancelled, c.exception, c.unfinished), (ITEMS, 0, 0), "{c:?}");
        assert!(c.cancelled > ITEMS / 2, "most items were never submitted, and cancelled: {c:?}");
        let by_id = lifecycles(&events);
        assert_eq!(by_id.len(), ITEMS, "one future an item");
        for (id, states) in &by_id {
            assert!(
                matches!(states[..], ["pending", "cancelled"] | ["pending", "running", "done" | "cancelled"]),
                "future {id}: {states:?}"
            );
        }
        let unsubmitted_reasons = events.iter().filter_map(|e| match &e.kind {
            EventKind::Cancelled { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        assert!(unsubmitted_reasons.into_iter().all(|r| r.is_none()), "a user's cancel has no reason");
    }

    /// Cancelling a map's items not yet handed to their pool (`c` on its `m[…]` row)
    /// cancels those, without a reason, and their dependents, with theirs; the items the
    /// pool holds, and other tasks, go on.
    #[test]
    fn cancel_unsubmitted_cancels_the_rest_of_a_map_and_its_dependents() {
        let yaml = format!(
            "pools:\n  io: {{ kind: thread, max_workers: 1 }}\n\
             tasks:\n\
             \x20 - {{ name: m, pool: io, call: sleep, map: {{ secs: [{}] }} }}\n\
             \x20 - {{ name: after, pool: io, call: sleep, map: {{ secs: [{}] }}, depends_on: [{{ each: m }}] }}\n\
             \x20 - {{ name: other, pool: io, call: sleep, args: {{ secs: 0 }} }}\n",
            vec!["0.001"; 1000].join(", "),
            vec!["0"; 1000].join(", ")
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = start(plan(&yaml), &RunOptions::default(), vec![tx]).expect("the run starts");
        let mut events = Vec::new();
        let mut asked = false;
        for e in &rx {
            if matches!(&e.kind, EventKind::Done { task, .. } if &**task == "m[10]") && !asked {
                asked = true;
                handle.control().send(Control::CancelUnsubmitted("m".into())).expect("the run listens");
            }
            events.push(e);
        }
        let report = handle.join();
        let end = |name: &str| {
            events.iter().rev().find_map(|e| match &e.kind {
                EventKind::Done { task, .. } if &**task == name => Some(("done", None)),
                EventKind::Cancelled { task, reason, .. } if &**task == name => {
                    Some(("cancelled", reason.as_ref().map(ToString::to_string)))
                }
                _ => None,
            })
        };
        assert_eq!(end("m[999]"), Some(("cancelled", None)), "a user's cancel has no reason");
        assert_eq!(end("after[999]"), Some(("cancelled", Some("dependency 'm[999]' was cancelled".into()))));
        assert_eq!(end("m[0]"), Some(("done", None)));
        assert_eq!(end("after[0]"), Some(("done", None)));
        assert_eq!(end("other"), Some(("done", None)));
        let c = report.counts;
        assert_eq!((c.done + c.cancelled, c.unfinished, c.exception), (2001, 0, 0), "{c:?}");
        assert!(c.cancelled > 1000, "most of m, and their partners: {c:?}");
        assert!(lifecycles(&events).values().all(|s| s.first() == Some(&"pending") && s.len() >= 2));
    }

    /// A task that waits on an item its pool's window has not reached gets that item
    /// submitted at once, as Python's `map` would have queued it: with one worker, the
    /// waiter starves its own pool, and the detector says so (here, the run fails).
    #[test]
    fn waiting_on_an_item_not_yet_submitted_is_a_deadlock_the_detector_sees() {
        let yaml = format!(
            "pools:\n  io: {{ kind: thread, max_workers: 1 }}\n\
             tasks:\n\
             \x20 - {{ name: w, pool: io, call: wait_on, args: {{ task: 'm[150]' }} }}\n\
             \x20 - {{ name: m, pool: io, call: sleep, map: {{ secs: [{}] }} }}\n",
            vec!["0"; 200].join(", ")
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let options = RunOptions { on_deadlock: OnDeadlock::Fail, ..RunOptions::default() };
        let handle = start(plan(&yaml), &options, vec![tx]).expect("the run starts");
        let events: Vec<Arc<Event>> = rx.iter().collect();
        let report = handle.join();
        assert_eq!(report.exit_code, 3, "{:?}", report.counts);
        let deadlock = events.iter().find_map(|e| match &e.kind {
            EventKind::Deadlock { tasks, pool, .. } => Some((tasks.clone(), pool.clone())),
            _ => None,
        });
        let (tasks, pool) = deadlock.expect("a deadlock was reported");
        assert_eq!(pool.as_deref(), Some("io"));
        assert!(tasks.contains(&"w".to_owned()) && tasks.contains(&"m[150]".to_owned()), "{tasks:?}");
        // Every future still ends once, those never submitted included.
        let by_id = lifecycles(&events);
        assert_eq!(by_id.len(), 201);
        assert!(by_id.values().all(|s| s.first() == Some(&"pending") && s.len() >= 2), "{by_id:?}");
    }
}
