//! The run's event stream (DESIGN §5): one `Event` type, the bus that stamps and fans it out, and the JSONL recorder.
//!
//! The engine reports [`Observation`]s keyed by future id; the runner adds what only it
//! knows (task results, dependency cancellations, command output, deadlocks). Both go
//! into one unbounded channel, so the engine never waits: the bus thread turns each
//! message into an [`Event`] with a gap-free `seq` and a `t` in seconds since the run
//! started, writes it to the event log (if any) and sends it to every subscriber.
//! The log is flushed 50 ms after the stream pauses, every 50 ms under a steady stream,
//! and on close.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use futuretop_engine::observe::{FutureId, IdMap, Observation, Outcome, Sink, WaitOutcome};
use futuretop_engine::{ErrorKind, Exception};

use crate::deadlock::{DeadlockKind, Resolution};
use crate::pools::PoolKind;
use futuretop_engine::Stream;

/// The event log reaches the file at most this long after an event (and at once when
/// the run ends).
pub(crate) const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);
/// The event log's write buffer: a write system call every few thousand events.
const LOG_BUFFER: usize = 256 * 1024;

/// The version of the event-log format, in the first line's `run_started` event.
pub const EVENTS_VERSION: u32 = 1;

/// A name in an event (a task's, a pool's, a worker's): shared, so that the events of one
/// future, the bus and the views hold one copy of it.
pub type Name = Arc<str>;

/// One event of a run: a sequence number, a time, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// Seconds since the run started.
    pub t: f64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An error as events show it: its type (`TaskError`, `BrokenProcessPool`, ...) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error's type.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// Its message.
    pub message: String,
}

impl From<&Exception> for ErrorInfo {
    fn from(e: &Exception) -> Self {
        Self { kind: e.kind(), message: e.detail() }
    }
}

/// A pool as the `run_started` event describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// Its name.
    pub name: String,
    /// `thread`, `process` or `slurm`.
    pub kind: PoolKind,
    /// Its worker count.
    pub max_workers: usize,
}

/// A `map:` task in `run_started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapInfo {
    /// Its name (its items are `name[0]`, `name[1]`, ...).
    pub task: String,
    /// Its pool.
    pub pool: String,
    /// How many items it has.
    pub items: usize,
    /// What it waits for before its items are submitted (`depends_on`, as named there; an
    /// addition of issue 18, empty in older logs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// A task (not a `map:`) in `run_started` that waits for others before it is submitted:
/// a monitor shows it pending from the start, with what it waits for (an addition of
/// issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingInfo {
    /// Its name.
    pub task: String,
    /// Its pool.
    pub pool: String,
    /// What it waits for (`depends_on`, as named there).
    pub after: Vec<String>,
}

/// Tasks that wait on others that `run_started` lists ([`WaitingInfo`]) at most: the
/// others show when they are submitted.
pub const WAITING_LISTED: usize = 10_000;

/// One worker process in a `system` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Its process id.
    pub pid: u32,
    /// Its CPU use, percent of one core.
    pub cpu: f32,
    /// Its resident memory, bytes.
    pub mem: u64,
}

/// What happened (the `event` field and its own fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The first event of every log.
    RunStarted {
        /// [`EVENTS_VERSION`].
        version: u32,
        /// The run's name.
        run: String,
        /// The task file.
        file: String,
        /// The pools.
        pools: Vec<PoolInfo>,
        /// The number of tasks in the plan (after `map:` expansion).
        tasks: usize,
        /// The `map:` tasks: their items are handed to their pool a window at a time, so
        /// a view can show those not yet handed over (an addition of issue 15; empty in
        /// older logs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        maps: Vec<MapInfo>,
        /// The first [`WAITING_LISTED`] tasks (not maps) that wait on others (an addition
        /// of issue 18; empty in older logs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        waiting: Vec<WaitingInfo>,
    },
    /// A future was submitted and waits for a worker.
    Pending {
        /// The task's name.
        task: Name,
        /// The future's id.
        id: u64,
        /// Its pool.
        pool: Name,
        /// Which attempt of its task this future is (`retries:`): 2, 3, ... for a retry;
        /// absent for the first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A worker runs it.
    Running {
        /// The task's name.
        task: Name,
        /// The future's id.
        id: u64,
        /// Its pool.
        pool: Name,
        /// The worker (`cpu-1`).
        worker: Name,
        /// The worker's process id, for process pools.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// It finished with a value.
    Done {
        /// The task's name.
        task: Name,
        /// The future's id.
        id: u64,
        /// Its pool.
        pool: Name,
        /// The value.
        result: Value,
    },
    /// It was cancelled before it ran.
    Cancelled {
        /// The task's name.
        task: Name,
        /// The future's id.
        id: u64,
        /// Its pool.
        pool: Name,
        /// Why, when the runner cancelled it (a dependency failed, say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CancelReason>,
    },
    /// It ended with an exception.
    Exception {
        /// The task's name.
        task: Name,
        /// The future's id.
        id: u64,
        /// Its pool.
        pool: Name,
        /// The error.
        error: ErrorInfo,
    },
    /// A running task began to wait on another task's future.
    Wait {
        /// The waiting task.
        task: Name,
        /// The task it waits on.
        on: Name,
        /// The waiter's future id.
        id: u64,
        /// The target's future id.
        on_id: u64,
        /// The wait's timeout in seconds, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
    },
    /// That wait ended.
    WaitEnd {
        /// The waiting task.
        task: Name,
        /// The task it waited on.
        on: Name,
        /// The waiter's future id.
        id: u64,
        /// The target's future id.
        on_id: u64,
        /// `completed`, `timed_out`, `interrupted` (a deadlock break) or `killed`.
        outcome: WaitOutcome,
    },
    /// A pool started a worker.
    WorkerStarted {
        /// The pool.
        pool: Name,
        /// The worker.
        worker: Name,
        /// Its process id (process pools).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    /// A worker ended.
    WorkerExited {
        /// The pool.
        pool: Name,
        /// The worker.
        worker: Name,
        /// Its process id (process pools).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// How it ended.
        status: String,
    },
    /// What a worker has in use (a Slurm node: allocated CPUs, free memory, jobs).
    WorkerLoad {
        /// The pool.
        pool: Name,
        /// The worker.
        worker: Name,
        /// In words.
        load: String,
    },
    /// System figures, sampled about once a second while a monitor or an event log
    /// watches the run (an addition to DESIGN §5): what the TUI's header and workers
    /// panel show, recorded so that a replay shows them too.
    System {
        /// Whole-system CPU use, percent.
        cpu: f32,
        /// Memory in use, bytes.
        mem_used: u64,
        /// Memory in all, bytes.
        mem_total: u64,
        /// The live worker processes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        procs: Vec<ProcSample>,
    },
    /// A pool broke: its pending futures fail, later submits are refused.
    PoolBroken {
        /// The pool.
        pool: Name,
        /// Why.
        error: String,
    },
    /// A line a command printed.
    Output {
        /// The task.
        task: Name,
        /// `stdout` or `stderr`.
        stream: Stream,
        /// The line (cut at 4 KiB).
        line: String,
        /// Lines the command printed here that the log does not hold (more than 200 a
        /// second on a stream); `line` then says so in words: `[750 more lines not shown]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dropped: Option<u64>,
    },
    /// An attempt of a task with `retries:` ended in an exception, and the task will run
    /// again: a new future, after `delay` seconds.
    Retry {
        /// The task.
        task: Name,
        /// The failed attempt's future id.
        id: u64,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Attempts in all (`retries:` + 1).
        attempts: u32,
        /// Seconds until the next attempt is submitted.
        delay: f64,
    },
    /// A task that ended failed, cancelled or killed runs again (`r` in the monitor): a
    /// new attempt, whose `pending` follows; the tasks it had cancelled wait for it again.
    Resubmit {
        /// The task (or item, `m[3]`).
        task: Name,
        /// The attempt about to run, from 2.
        attempt: u32,
        /// Attempts in all, counting this one.
        attempts: u32,
        /// The tasks cancelled because of it that wait for it again, with what they wait for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        revived: Vec<WaitingInfo>,
    },
    /// A broken pool was replaced by a new one, for the retries of its tasks: its later
    /// futures run on new workers.
    PoolRestarted {
        /// The pool.
        pool: Name,
    },
    /// No future has changed state for a while (`--stall-after`, 60 s by default) though
    /// work is pending or running, and no deadlock stands: a hung command, a lost job.
    Stall {
        /// Seconds since a future last changed state.
        after: f64,
        /// What runs, longest first (the first 10).
        running: Vec<StallRunning>,
        /// Futures pending.
        pending: usize,
    },
    /// A deadlock formed.
    Deadlock {
        /// `cycle` or `starvation`.
        kind: DeadlockKind,
        /// The tasks, in wait order.
        tasks: Vec<String>,
        /// The starved pool, for starvation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
        /// What is wrong, in plain words, and what would end it.
        message: String,
        /// The futures' ids, in the order of `tasks`.
        #[serde(default)]
        ids: Vec<u64>,
        /// The waiter that breaking interrupts (the one whose wait began last).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        victim: Option<String>,
        /// Its future id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        victim_id: Option<u64>,
        /// Seconds until the first of the deadlock's waits times out, if one has a timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<f64>,
    },
    /// A deadlock ended.
    DeadlockResolved {
        /// The tasks that were stuck.
        tasks: Vec<String>,
        /// What ended it (`timeout`, `cancel`, `kill`, `break`, `finished`).
        how: Resolution,
    },
    /// A client of a detached run's control socket (`futuretop attach`) attached, left,
    /// was refused (another user), or asked for something (then the request follows).
    Client {
        /// Who: `pid N uid N`, as the kernel says.
        client: String,
        /// What happened.
        action: ClientAction,
        /// The future (`#id`), pool or task the request names, or why it was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// The last event: final counts and the exit code.
    RunFinished {
        /// The plan's tasks per final state.
        counts: Counts,
        /// The program's exit code.
        exit_code: i32,
    },
}

impl EventKind {
    /// True for the events that change a future's state: `pending`, `running`, `done`,
    /// `exception`, `cancelled` (what ends a stall).
    pub const fn changes_a_future(&self) -> bool {
        matches!(
            self,
            Self::Pending { .. }
                | Self::Running { .. }
                | Self::Done { .. }
                | Self::Exception { .. }
                | Self::Cancelled { .. }
        )
    }
}

/// Why the runner cancelled a task before it reached a pool (the `reason` of a
/// `cancelled` event, written as a sentence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// A task it depends on failed: `dependency 'NAME' failed`.
    DependencyFailed(String),
    /// A task it depends on was cancelled: `dependency 'NAME' was cancelled`.
    DependencyCancelled(String),
    /// The run was stopped (Ctrl-C, `q`, a deadlock under `--on-deadlock fail`) before it
    /// reached a pool: `the run was stopped`.
    RunStopped,
    /// Its pool refused it (broken, or shut down): the pool's message.
    Refused(String),
}

const RUN_STOPPED: &str = "the run was stopped";

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DependencyFailed(d) => write!(f, "dependency '{d}' failed"),
            Self::DependencyCancelled(d) => write!(f, "dependency '{d}' was cancelled"),
            Self::RunStopped => f.write_str(RUN_STOPPED),
            Self::Refused(message) => f.write_str(message),
        }
    }
}

impl CancelReason {
    /// Reads the sentence back (any other sentence is a pool's refusal).
    pub fn parse(s: &str) -> Self {
        let dependency =
            |suffix: &str| s.strip_prefix("dependency '").and_then(|r| r.strip_suffix(suffix)).map(str::to_owned);
        if let Some(d) = dependency("' failed") {
            Self::DependencyFailed(d)
        } else if let Some(d) = dependency("' was cancelled") {
            Self::DependencyCancelled(d)
        } else if s == RUN_STOPPED {
            Self::RunStopped
        } else {
            Self::Refused(s.to_owned())
        }
    }
}

impl Serialize for CancelReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CancelReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// How many of the plan's tasks ended in each state (the inner futures of a `submit` are
/// not counted; docs/events.md, `run_finished`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Finished with a value.
    pub done: usize,
    /// Finished with an exception.
    pub exception: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Never reached a final state (the run was interrupted or deadlocked).
    pub unfinished: usize,
}

/// What a [`EventKind::Client`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAction {
    /// It connected and was let in.
    Attached,
    /// It left.
    Detached,
    /// It was refused: another user.
    Refused,
    /// `c`: cancel a future.
    Cancel,
    /// `x`: kill a future.
    Kill,
    /// `C`: cancel a pool's pending futures.
    CancelPool,
    /// Cancel the items of a map not yet handed to their pool.
    CancelUnsubmitted,
    /// `b`: break a deadlocked wait.
    Break,
    /// `r`: resubmit a task.
    Resubmit,
    /// Stop the run.
    Stop,
}

impl ClientAction {
    /// Its name in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Detached => "detached",
            Self::Refused => "refused",
            Self::Cancel => "cancel",
            Self::Kill => "kill",
            Self::CancelPool => "cancel_pool",
            Self::CancelUnsubmitted => "cancel_unsubmitted",
            Self::Break => "break",
            Self::Resubmit => "resubmit",
            Self::Stop => "stop",
        }
    }
}

/// A running future in a [`EventKind::Stall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallRunning {
    /// Its task.
    pub task: Name,
    /// Its id.
    pub id: u64,
    /// Its worker.
    pub worker: Name,
    /// Seconds it has run.
    pub running_for: f64,
}

/// A stage the bus feeds: it sees every event as it is published, and is asked for
/// events of its own each time the bus has drained its queue (the deadlock detector is
/// one), which the bus publishes in turn, ordered and logged like every other.
pub trait Stage: Send {
    /// Takes in one published event.
    fn observe(&mut self, e: &Event);
    /// After a batch of events: the events the stage has to publish (none by default).
    fn check(&mut self) -> Vec<EventKind> {
        Vec::new()
    }
}

/// How often an idle bus asks its stage again (for what time alone brings: a stall).
const STAGE_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// What the bus receives.
#[derive(Debug)]
pub(crate) enum BusMsg {
    /// From the engine.
    Engine(Instant, Observation),
    /// A future that finished with a value, with the value ([`hold_value`]): one message
    /// where the engine's `Finished` and the value were two.
    Done(Instant, FutureId, Value),
    /// From the runner (boxed: an event is twice the size of the engine's observations,
    /// which are nearly all of a run's messages, and every message is as large as the
    /// largest).
    Runner(Instant, Box<EventKind>),
    /// A line a task's command printed, named by the task's future.
    Output(Instant, FutureId, Stream, String, u64),
    /// The next future submitted under this task name is this attempt of its task (from
    /// the runner, right before it submits a retry).
    Attempt(Name, u32),
    /// The final states of the plan's futures so far (from the runner, about once a
    /// second), for the run's status file.
    Progress(Counts),
    /// Flush, close the log and stop; acknowledged on the given channel.
    Close(Sender<()>),
}

/// The engine's sink: forwards observations to the bus.
pub(crate) struct BusSink(pub(crate) Sender<BusMsg>);

impl Sink for BusSink {
    fn observe(&self, at: Instant, what: Observation) {
        if let Observation::Finished { id, outcome: Outcome::Done } = &what {
            if let Some(value) = take_value(*id) {
                let _ = self.0.try_send(BusMsg::Done(at, *id, value));
                return;
            }
        }
        let _ = self.0.try_send(BusMsg::Engine(at, what));
    }
}

thread_local! {
    /// A task's value, held on the thread that got it ([`hold_value`]).
    static HELD: std::cell::RefCell<Option<(FutureId, Value)>> = const { std::cell::RefCell::new(None) };
}

/// Holds future `id`'s value for its `done` event. Every pool hands a task's value over
/// on the thread that then finishes its future, right before it does: the engine's
/// `Finished` observation, made there, takes the value to the bus with it. A value whose
/// future does not finish with it (killed meanwhile) is dropped by the next one held.
pub(crate) fn hold_value(id: FutureId, value: Value) {
    HELD.with(|held| *held.borrow_mut() = Some((id, value)));
}

/// The value held for future `id` on this thread, if any.
fn take_value(id: FutureId) -> Option<Value> {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if held.as_ref().is_some_and(|(h, _)| *h == id) {
            held.take().map(|(_, v)| v)
        } else {
            None
        }
    })
}

struct FutureInfo {
    task: Arc<str>,
    pool: Arc<str>,
}

/// Turns bus messages into events.
pub(crate) struct Bus {
    start: Instant,
    seq: u64,
    last_t: f64,
    futures: IdMap<FutureId, FutureInfo>,
    log: Option<LogFile>,
    log_error: Option<String>,
    subscribers: Vec<Sender<Arc<Event>>>,
    /// The stages, fed every event in order on the bus's thread (the deadlock detector,
    /// the headless reporter's fold).
    stages: Vec<Box<dyn Stage>>,
    /// `run_finished`, held until the bus closes.
    last: Option<(Instant, EventKind)>,
    /// The live worker processes, for the system sampler.
    worker_pids: WorkerPids,
    /// Finished futures whose names are still kept, oldest first (see [`Bus::retire`]).
    retired: std::collections::VecDeque<FutureId>,
    /// The futures being waited on, with how many waits each: they keep their names
    /// until the last of those waits has ended (its `wait_end` names them).
    waited: IdMap<FutureId, u32>,
    /// Retries about to be submitted: their attempt numbers, by task name
    /// ([`BusMsg::Attempt`]); the `pending` event of the next future of that name takes it.
    attempts: HashMap<Name, u32>,
    /// How many events the slowest subscriber has still to take ([`Bus::lag`]).
    lag: Lag,
    /// The run's status file, if it keeps one ([`crate::session::StatusWriter`]).
    status: Option<crate::session::StatusWriter>,
}

/// How many events the bus's slowest subscriber has still to take, as the bus last saw
/// it: the runner hands its pools nothing more while it is [`SUBSCRIBER_BACKLOG`] or more.
pub(crate) type Lag = Arc<std::sync::atomic::AtomicUsize>;

/// Events a subscriber may have still to take before the runner holds its pools back.
/// Without it a subscriber slower than the workers (the headless reporter, on two cores
/// shared by six threads) held the difference in memory, and the pages it took
/// cost more than the events (a fifth of a 100,000-task run's time zeroing them).
pub const SUBSCRIBER_BACKLOG: usize = 1 << 14;

/// The bus looks at its subscribers' backlog once every this many messages.
const LAG_EVERY: u32 = 256;

/// How long the bus naps when a steady stream of messages pauses (see [`Bus::run`]).
const BUS_NAP: std::time::Duration = std::time::Duration::from_micros(200);

/// While a subscriber lags and no message comes, the bus looks again this often.
const LAG_RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

/// How many finished futures keep their names on the bus (for a command's last output
/// lines, which may come after its end); one being waited on keeps its own until the
/// wait ends. Small, so that the map stays in the cache: at 65,536 its growth was a
/// third of the fresh pages a 100,000-task run touched.
const NAMES_KEPT: usize = 4096;

/// The pids of live worker processes, kept by the bus from `worker_started` and
/// `worker_exited`, read by the system sampler.
pub(crate) type WorkerPids = Arc<std::sync::Mutex<Vec<u32>>>;

impl Bus {
    pub(crate) fn new(
        start: Instant,
        log: Option<&Path>,
        subscribers: Vec<Sender<Arc<Event>>>,
        stages: Vec<Box<dyn Stage>>,
    ) -> std::io::Result<Self> {
        let log = log.map(open_log).transpose()?.map(|f| LogFile::new(Box::new(f)));
        Ok(Self {
            start,
            seq: 0,
            last_t: 0.0,
            futures: IdMap::with_capacity_and_hasher(2 * NAMES_KEPT, std::hash::BuildHasherDefault::default()),
            log,
            log_error: None,
            subscribers,
            stages,
            last: None,
            worker_pids: WorkerPids::default(),
            retired: std::collections::VecDeque::with_capacity(NAMES_KEPT + 1),
            waited: IdMap::default(),
            attempts: HashMap::new(),
            lag: Lag::default(),
            status: None,
        })
    }

    /// Keeps the run's status in a file for `futuretop ls` and `wait`.
    pub(crate) fn keep_status(&mut self, status: crate::session::StatusWriter) {
        self.status = Some(status);
    }

    /// The backlog of the slowest subscriber, kept up to date by the bus (see [`Lag`]).
    pub(crate) fn lag(&self) -> Lag {
        Arc::clone(&self.lag)
    }

    /// The bus's periodic chores (every [`LAG_EVERY`] messages, and while idle): looks at
    /// the subscribers' backlog, which it returns, and rewrites the status file if due.
    fn chores(&mut self) -> usize {
        let lag = self.subscribers.iter().map(Sender::len).max().unwrap_or(0);
        self.lag.store(lag, std::sync::atomic::Ordering::Relaxed);
        if let Some(status) = self.status.as_mut() {
            status.tick();
        }
        lag
    }

    /// The live worker pids, as the bus keeps them.
    pub(crate) fn worker_pids(&self) -> WorkerPids {
        Arc::clone(&self.worker_pids)
    }

    fn track_pid(&self, pid: Option<u32>, alive: bool) {
        let Some(pid) = pid else { return };
        let mut pids = self.worker_pids.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pids.retain(|&p| p != pid);
        if alive {
            pids.push(pid);
        }
    }

    /// Asks the stages for news and publishes it.
    fn check_stage(&mut self) {
        let news: Vec<EventKind> = self.stages.iter_mut().flat_map(|s| s.check()).collect();
        let now = Instant::now();
        for kind in news {
            self.publish(now, kind);
        }
    }

    /// Runs the bus until `Close`: the body of the bus thread. Returns a log write error, if any.
    pub(crate) fn run(mut self, rx: &Receiver<BusMsg>) -> Option<String> {
        let mut handled = 0u32;
        let mut last_flush = Instant::now();
        // Whether messages came since the bus last found none.
        let mut busy = false;
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => {
                    busy = true;
                    m
                }
                Err(crossbeam_channel::TryRecvError::Empty) if std::mem::take(&mut busy) => {
                    // A steady stream paused: nap, then take what came meanwhile, rather
                    // than sleep on the channel (it spins and yields the CPU a few times
                    // first, a system call each, and each send then has to wake the bus).
                    self.chores();
                    std::thread::sleep(BUS_NAP);
                    continue;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    self.check_stage();
                    // A pause in the stream: the log is flushed if nothing more comes
                    // within FLUSH_AFTER (a flush a burst would cost a write each).
                    if self.chores() >= SUBSCRIBER_BACKLOG {
                        // The runner holds back until the subscriber catches up: look
                        // again soon, so that it learns when.
                        match rx.recv_timeout(LAG_RECHECK) {
                            Ok(m) => m,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                if last_flush.elapsed() >= FLUSH_AFTER {
                                    self.flush();
                                    last_flush = Instant::now();
                                }
                                continue;
                            }
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        }
                    } else if self.log.as_ref().is_some_and(|l| !l.buf.is_empty()) {
                        // Waits only for what is left of FLUSH_AFTER since the last flush,
                        // so a trickle of events cannot hold the log back.
                        match rx.recv_timeout(FLUSH_AFTER.saturating_sub(last_flush.elapsed())) {
                            Ok(m) => m,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                self.flush();
                                last_flush = Instant::now();
                                continue;
                            }
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        }
                    } else if !self.stages.is_empty() {
                        // A stage also acts on time passing (a stall): it is asked again
                        // every STAGE_TICK while nothing comes.
                        match rx.recv_timeout(STAGE_TICK) {
                            Ok(m) => m,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        }
                    } else {
                        match rx.recv() {
                            Ok(m) => m,
                            Err(_) => break,
                        }
                    }
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            };
            // Under a steady stream the log still reaches the disk every FLUSH_AFTER.
            handled = handled.wrapping_add(1);
            if handled.is_multiple_of(LAG_EVERY) {
                self.chores();
            }
            if handled.is_multiple_of(16) && last_flush.elapsed() >= FLUSH_AFTER {
                self.flush();
                last_flush = Instant::now();
            }
            match msg {
                BusMsg::Close(ack) => {
                    // Whatever raced the close in is still logged, before the last event.
                    while let Ok(m) = rx.try_recv() {
                        if !matches!(m, BusMsg::Close(_)) {
                            self.handle(m);
                        }
                    }
                    self.check_stage();
                    if let Some((at, last)) = self.last.take() {
                        self.publish(at, last);
                    }
                    self.flush();
                    let _ = ack.send(());
                    return self.log_error;
                }
                m => self.handle(m),
            }
        }
        if let Some((at, last)) = self.last.take() {
            self.publish(at, last);
        }
        self.flush();
        self.log_error
    }

    fn flush(&mut self) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.flush() {
                self.log_error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// A future has finished: its names are kept a while longer (a command's last output
    /// lines may still come), then forgotten once [`NAMES_KEPT`] futures have finished
    /// after it, so memory stays flat over long runs; one still waited on goes back in
    /// line (a `wait_end` on it will name it).
    fn retire(&mut self, id: FutureId) {
        self.retired.push_back(id);
        if self.retired.len() > NAMES_KEPT {
            if let Some(old) = self.retired.pop_front() {
                if self.waited.contains_key(&old) {
                    self.retired.push_back(old);
                } else {
                    self.futures.remove(&old);
                }
            }
        }
    }

    fn name_of(&self, id: FutureId) -> (Name, Name) {
        self.futures.get(&id).map_or_else(
            || (format!("task-{}", id.0).into(), Name::from("")),
            |f| (Arc::clone(&f.task), Arc::clone(&f.pool)),
        )
    }

    fn handle(&mut self, msg: BusMsg) {
        let (at, kind) = match msg {
            BusMsg::Done(at, id, value) => (at, self.finished(id, Outcome::Done, Some(value))),
            BusMsg::Close(_) => return,
            BusMsg::Attempt(task, n) => {
                self.attempts.insert(task, n);
                return;
            }
            BusMsg::Progress(counts) => {
                if let Some(status) = self.status.as_mut() {
                    status.progress(counts);
                }
                return;
            }
            BusMsg::Output(at, id, stream, line, dropped) => (
                at,
                EventKind::Output { task: self.name_of(id).0, stream, line, dropped: (dropped > 0).then_some(dropped) },
            ),
            BusMsg::Runner(at, kind) => {
                let mut kind = *kind;
                if matches!(kind, EventKind::RunFinished { .. }) {
                    // Held back until `Close`, so that it is the log's last line.
                    self.last = Some((at, kind));
                    return;
                }
                if let EventKind::System { procs, .. } = &mut kind {
                    // A worker may have exited since it was sampled: its exit is already
                    // published, so a sample of it would come after its end.
                    let live = self.worker_pids.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    procs.retain(|p| live.contains(&p.pid));
                }
                match &mut kind {
                    EventKind::Pending { task, id, pool, attempt } => {
                        if !self.attempts.is_empty() && attempt.is_none() {
                            *attempt = self.attempts.remove(task);
                        }
                        self.futures
                            .insert(FutureId(*id), FutureInfo { task: Arc::clone(task), pool: Arc::clone(pool) });
                    }
                    EventKind::Cancelled { id, .. } | EventKind::Done { id, .. } | EventKind::Exception { id, .. } => {
                        self.retire(FutureId(*id));
                    }
                    _ => {}
                }
                (at, kind)
            }
            BusMsg::Engine(at, obs) => match self.translate(obs) {
                Some(kind) => (at, kind),
                None => return,
            },
        };
        self.publish(at, kind);
    }

    /// The event of future `id`'s end (`result`: its value, if it has one).
    fn finished(&mut self, id: FutureId, outcome: Outcome, result: Option<Value>) -> EventKind {
        let (task, pool) = self.name_of(id);
        self.retire(id);
        match outcome {
            Outcome::Done => EventKind::Done { task, id: id.0, pool, result: result.unwrap_or(Value::Null) },
            Outcome::Cancelled => EventKind::Cancelled { task, id: id.0, pool, reason: None },
            Outcome::Exception(e) => EventKind::Exception { task, id: id.0, pool, error: ErrorInfo::from(&e) },
        }
    }

    /// The event an observation is; `None` for one this version does not publish (the
    /// engine may observe more in a later version).
    fn translate(&mut self, obs: Observation) -> Option<EventKind> {
        Some(match obs {
            Observation::Pending { id, pool, name } => {
                self.futures.insert(id, FutureInfo { task: Arc::clone(&name), pool: Arc::clone(&pool) });
                let attempt = if self.attempts.is_empty() { None } else { self.attempts.remove(&name) };
                EventKind::Pending { attempt, task: name, id: id.0, pool }
            }
            Observation::Running { id, worker, pid } => {
                let (task, pool) = self.name_of(id);
                EventKind::Running { task, id: id.0, pool, worker, pid }
            }
            Observation::Finished { id, outcome } => self.finished(id, outcome, None),
            Observation::WaitStart { waiter, target, timeout } => {
                *self.waited.entry(target).or_default() += 1;
                EventKind::Wait {
                    task: self.name_of(waiter).0,
                    on: self.name_of(target).0,
                    id: waiter.0,
                    on_id: target.0,
                    timeout: timeout.map(|d| d.as_secs_f64()),
                }
            }
            Observation::WaitEnd { waiter, target, outcome } => {
                if let Some(n) = self.waited.get_mut(&target) {
                    *n -= 1;
                    if *n == 0 {
                        self.waited.remove(&target);
                    }
                }
                EventKind::WaitEnd {
                    task: self.name_of(waiter).0,
                    on: self.name_of(target).0,
                    id: waiter.0,
                    on_id: target.0,
                    outcome,
                }
            }
            Observation::WorkerStarted { pool, worker, pid } => {
                self.track_pid(pid, true);
                EventKind::WorkerStarted { pool, worker, pid }
            }
            Observation::WorkerExited { pool, worker, pid, status } => {
                self.track_pid(pid, false);
                EventKind::WorkerExited { pool, worker, pid, status }
            }
            Observation::PoolBroken { pool, error } => EventKind::PoolBroken { pool, error },
            Observation::WorkerLoad { pool, worker, load } => EventKind::WorkerLoad { pool, worker, load },
            Observation::CallbackPanicked { id, message } => {
                let (task, _) = self.name_of(id);
                EventKind::Output {
                    task,
                    stream: Stream::Stderr,
                    line: format!("a done-callback panicked: {message}"),
                    dropped: None,
                }
            }
            _ => return None,
        })
    }

    fn publish(&mut self, at: Instant, kind: EventKind) {
        self.seq += 1;
        // Messages are published in arrival order; keep `t` from going backwards.
        let t = at.saturating_duration_since(self.start).as_secs_f64().max(self.last_t);
        self.last_t = t;
        let event = Event { seq: self.seq, t, kind };
        for stage in &mut self.stages {
            stage.observe(&event);
        }
        if let Some(status) = self.status.as_mut() {
            status.observe(&event.kind);
        }
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.write_event(&event) {
                self.log_error.get_or_insert_with(|| e.to_string());
            }
        }
        if !self.subscribers.is_empty() {
            // One allocation an event, shared by every subscriber (none without them).
            let event = Arc::new(event);
            self.subscribers.retain(|s| s.send(Arc::clone(&event)).is_ok());
        }
    }
}

/// The event log being written: each line is encoded straight into the buffer, which
/// goes to the file when it is nearly full and when the bus flushes (one copy of a line,
/// no allocation an event).
struct LogFile {
    file: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl LogFile {
    fn new(file: Box<dyn Write + Send>) -> Self {
        Self { file, buf: Vec::with_capacity(LOG_BUFFER) }
    }

    /// Adds `event`'s line; writes the buffer out if it is nearly full.
    fn write_event(&mut self, event: &Event) -> std::io::Result<()> {
        let start = self.buf.len();
        if let Err(e) = encode(&mut self.buf, event) {
            // No half line: an event that cannot be written is said to be so, in its place.
            self.buf.truncate(start);
            let fallback = format!("{{\"seq\":{},\"event\":\"unserialisable\",\"error\":\"{e}\"}}", event.seq);
            self.buf.extend_from_slice(fallback.as_bytes());
        }
        self.buf.push(b'\n');
        if self.buf.len() + LOG_LINE_ROOM > LOG_BUFFER {
            return self.flush();
        }
        Ok(())
    }

    /// Writes the buffer out. If the write fails, the error is kept by the bus and the
    /// buffer does not grow without bound: what was not written is dropped, except the
    /// rest of a line half written, kept so that the next write completes it (the lines
    /// after it are lost whole, never glued to half of one).
    fn flush(&mut self) -> std::io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[written..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let half = written > 0 && written < self.buf.len() && self.buf[written - 1] != b'\n';
        if half {
            let end = self.buf[written..].iter().position(|&b| b == b'\n').map_or(self.buf.len(), |p| written + p + 1);
            self.buf.truncate(end);
            self.buf.drain(..written);
        } else {
            self.buf.clear();
        }
        result
    }
}

impl Drop for LogFile {
    /// What is buffered still reaches the file when the bus goes without closing it (its
    /// thread panicked).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// What the log's buffer keeps free for the next line, so that a line of the usual size
/// never makes it grow.
const LOG_LINE_ROOM: usize = 4096;

/// Writes `event` as a log line's JSON object (without the newline) into `out`: the
/// per-future events, which are nearly all of a large run's, field by field with no
/// allocation; the others through serde. The bytes are serde's either way (a test
/// checks), in the order `docs/events.md` gives.
pub(crate) fn encode(out: &mut Vec<u8>, event: &Event) -> serde_json::Result<()> {
    /// A field's `,"name":` (one literal: its copy is inlined) and a JSON string.
    fn text(out: &mut Vec<u8>, key: &[u8], value: &str) -> serde_json::Result<()> {
        out.extend_from_slice(key);
        // Copied as it is when nothing in it needs escaping (names nearly always: serde
        // escapes only control characters, `"` and `\`), else through serde.
        if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
            return Ok(());
        }
        serde_json::to_writer(&mut *out, value)
    }
    /// A field's `,"name":` and a whole number.
    fn number(out: &mut Vec<u8>, key: &[u8], value: u64) {
        out.extend_from_slice(key);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }
    let (kind, task, id, pool) = match &event.kind {
        EventKind::Pending { task, id, pool, .. } => ("pending", task, id, pool),
        EventKind::Running { task, id, pool, .. } => ("running", task, id, pool),
        EventKind::Done { task, id, pool, .. } => ("done", task, id, pool),
        EventKind::Cancelled { task, id, pool, .. } => ("cancelled", task, id, pool),
        EventKind::Exception { task, id, pool, .. } => ("exception", task, id, pool),
        _ => return serde_json::to_writer(out, event),
    };
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(event.seq).as_bytes());
    out.extend_from_slice(b",\"t\":");
    serde_json::to_writer(&mut *out, &event.t)?;
    out.extend_from_slice(b",\"event\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    text(out, b",\"task\":", task)?;
    number(out, b",\"id\":", *id);
    text(out, b",\"pool\":", pool)?;
    match &event.kind {
        EventKind::Pending { attempt: Some(n), .. } => number(out, b",\"attempt\":", u64::from(*n)),
        EventKind::Running { worker, pid, .. } => {
            text(out, b",\"worker\":", worker)?;
            if let Some(pid) = pid {
                number(out, b",\"pid\":", u64::from(*pid));
            }
        }
        EventKind::Done { result, .. } => {
            out.extend_from_slice(b",\"result\":");
            serde_json::to_writer(&mut *out, result)?;
        }
        EventKind::Cancelled { reason: Some(reason), .. } => {
            out.extend_from_slice(b",\"reason\":");
            serde_json::to_writer(&mut *out, reason)?;
        }
        EventKind::Exception { error, .. } => {
            out.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut *out, error)?;
        }
        _ => {}
    }
    out.push(b'}');
    Ok(())
}

/// Creates the event log at `path` without waiting: a FIFO that no one reads is refused
/// at once (`ENXIO`), instead of blocking the run, and signals, before anything started.
/// Writes then block as usual.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ENXIO as i32) {
                std::io::Error::new(e.kind(), "a FIFO that no process reads (ENXIO)")
            } else {
                e
            }
        })?;
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let blocking = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(std::io::Error::from)?;
    Ok(file)
}

/// Why an event log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file cannot be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The log.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line is not an event.
    #[error("{}:{line}: not an event: {error}", path.display())]
    Line {
        /// The log.
        path: std::path::PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it (with its column).
        error: serde_json::Error,
    },
    /// The last line was cut before its end (the run was killed, or the disk was full).
    #[error("{}:{line}: the log ends in the middle of this line (the run was killed, or its disk was full)", path.display())]
    Cut {
        /// The log.
        path: std::path::PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
    /// A line is longer than [`MAX_LOG_LINE`] (not an event log, or a damaged one).
    #[error("{}:{line}: a line longer than {} MiB: not an event log", path.display(), MAX_LOG_LINE >> 20)]
    TooLong {
        /// The log.
        path: std::path::PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
}

/// Reads an event log written with `--events`, whole (see [`LogReader`] to go through a
/// large one an event at a time).
pub fn read_log(path: &Path) -> Result<Vec<Event>, LogError> {
    LogReader::open(path)?.collect()
}

/// The longest line an event log may have: a result or an output line is cut long before
/// (a `pow` result has at most 100,000 digits, an output line 4 KiB).
pub const MAX_LOG_LINE: usize = 16 * 1024 * 1024;

/// Reads an event log an event at a time: memory for one line, not for the log (a
/// 1,000,000-future run writes 300 MB of it), and a line is read with a bound
/// ([`MAX_LOG_LINE`]). Events of a kind this version does not know are skipped, as
/// `docs/events.md` tells readers to do ([`LogReader::skipped`] counts them). After an
/// error the reader goes on with the next line, so that a damaged line costs only itself.
pub struct LogReader {
    path: std::path::PathBuf,
    lines: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    line: Vec<u8>,
    number: usize,
    skipped: usize,
    done: bool,
    /// The last pool and worker names read, shared by the events that name them again.
    names: Names,
}

impl LogReader {
    /// Opens the log at `path`.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let file = std::fs::File::open(path).map_err(|error| LogError::Read { path: path.to_owned(), error })?;
        Ok(Self::from_reader(path, file))
    }

    /// Reads a log from `input` (a pipe, bytes in memory); `path` names it in errors.
    pub fn from_reader(path: impl Into<std::path::PathBuf>, input: impl std::io::Read + Send + 'static) -> Self {
        Self {
            path: path.into(),
            lines: std::io::BufReader::with_capacity(1 << 16, Box::new(input)),
            line: Vec::new(),
            number: 0,
            skipped: 0,
            done: false,
            names: Names::default(),
        }
    }

    /// Events skipped so far because this version does not know their kind.
    pub const fn skipped(&self) -> usize {
        self.skipped
    }

    /// Reads the next line (without its newline) into `self.line`: false at the end.
    fn read_line(&mut self) -> Result<bool, LogError> {
        use std::io::{BufRead, Read};
        self.line.clear();
        self.number += 1;
        let limit = u64::try_from(MAX_LOG_LINE).unwrap_or(u64::MAX) + 1;
        let read = (&mut self.lines)
            .take(limit)
            .read_until(b'\n', &mut self.line)
            .map_err(|error| LogError::Read { path: self.path.clone(), error })?;
        if read == 0 {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else if self.line.len() > MAX_LOG_LINE {
            // The rest of this line is not read: the log cannot be trusted past it.
            self.done = true;
            return Err(LogError::TooLong { path: self.path.clone(), line: self.number });
        } else {
            // The last line, without its newline: cut when the run was killed, or the
            // disk filled up.
            self.done = true;
            if serde_json::from_slice::<Event>(&self.line).is_err() && !unknown_kind(&self.line) {
                return Err(LogError::Cut { path: self.path.clone(), line: self.number });
            }
        }
        Ok(true)
    }
}

/// True when `line` is a JSON object whose `event` this version does not know.
fn unknown_kind(line: &[u8]) -> bool {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else { return false };
    let Some(Value::String(kind)) = o.get("event") else { return false };
    let probe = serde_json::json!({ "event": kind });
    serde_json::from_value::<EventKind>(probe).is_err_and(|e| e.to_string().starts_with("unknown variant"))
}

/// The pool and worker names a log reader read last: the next event that names the same
/// shares them (a log names a few pools and workers, a million times).
#[derive(Default)]
struct Names {
    pool: Option<Name>,
    worker: Option<Name>,
}

/// `name`, shared with `last` if it is the same.
fn shared(last: &mut Option<Name>, name: &str) -> Name {
    match last {
        Some(n) if **n == *name => Arc::clone(n),
        _ => Arc::clone(last.insert(Name::from(name))),
    }
}

/// A field that may be `null`: present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Reads a `pending`, `running` or `done` line, nearly all of a large log, as one flat
/// struct: serde reads an internally tagged enum flattened into [`Event`] by buffering
/// the whole object first, several times slower. `None` for anything else, and for a
/// line this cannot read: the full path reads it (and says what is wrong with it).
fn decode_hot(line: &[u8], names: &mut Names) -> Option<Event> {
    #[derive(Deserialize)]
    struct Hot<'a> {
        seq: u64,
        t: f64,
        #[serde(borrow)]
        event: std::borrow::Cow<'a, str>,
        #[serde(borrow, default)]
        task: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        id: Option<u64>,
        #[serde(borrow, default)]
        pool: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        worker: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        pid: Option<u32>,
        #[serde(default)]
        attempt: Option<u32>,
        #[serde(default, deserialize_with = "present")]
        result: Option<Value>,
    }
    // An object, as the full path reads (a derived struct would read an array too).
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let hot: Hot<'_> = serde_json::from_slice(line).ok()?;
    let (task, id, pool) = (Name::from(&*hot.task?), hot.id?, shared(&mut names.pool, &hot.pool?));
    let kind = match &*hot.event {
        "pending" => EventKind::Pending { task, id, pool, attempt: hot.attempt },
        "running" => {
            EventKind::Running { task, id, pool, worker: shared(&mut names.worker, &hot.worker?), pid: hot.pid }
        }
        "done" => EventKind::Done { task, id, pool, result: hot.result? },
        _ => return None,
    };
    Some(Event { seq: hot.seq, t: hot.t, kind })
}

impl Iterator for LogReader {
    type Item = Result<Event, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done && self.line.is_empty() {
                return None;
            }
            match self.read_line() {
                Ok(false) => return None,
                Ok(true) if self.line.iter().all(u8::is_ascii_whitespace) => {
                    if self.done {
                        return None;
                    }
                }
                Ok(true) => {
                    if let Some(event) = decode_hot(&self.line, &mut self.names) {
                        self.line.clear();
                        return Some(Ok(event));
                    }
                    let parsed = serde_json::from_slice::<Event>(&self.line);
                    let line = std::mem::take(&mut self.line);
                    match parsed {
                        Ok(event) => return Some(Ok(event)),
                        Err(_) if unknown_kind(&line) => self.skipped += 1,
                        Err(error) => {
                            return Some(Err(LogError::Line { path: self.path.clone(), line: self.number, error }));
                        }
                    }
                    if self.done {
                        return None;
                    }
                }
                Err(e) => {
                    self.line.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Samples system CPU and memory, and the live worker processes, about once a second,
/// and sends each sample to the bus as a `system` event, until `stop` is dropped or the
/// bus has gone.
pub(crate) fn sample_system(bus: &Sender<BusMsg>, pids: &WorkerPids, stop: &Receiver<()>) {
    use sysinfo::{Pid, ProcessesToUpdate, System};
    let mut sys = System::new();
    // CPU use is a difference between two readings: the first sample comes one interval in.
    sys.refresh_cpu_usage();
    let mut period = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(std::time::Duration::from_millis(250));
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(period) {
        period = std::time::Duration::from_secs(1);
        let watched: Vec<u32> = pids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        let list: Vec<Pid> = watched.iter().map(|&p| Pid::from_u32(p)).collect();
        sys.refresh_processes(ProcessesToUpdate::Some(&list), true);
        let procs = watched
            .iter()
            .filter_map(|&pid| {
                sys.process(Pid::from_u32(pid)).map(|p| ProcSample { pid, cpu: p.cpu_usage(), mem: p.memory() })
            })
            .collect();
        let kind = EventKind::System {
            cpu: sys.global_cpu_usage(),
            mem_used: sys.used_memory(),
            mem_total: sys.total_memory(),
            procs,
        };
        if bus.send(BusMsg::Runner(Instant::now(), Box::new(kind))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path reads every `pending`, `running` and `done` line exactly as serde's
    /// full path does (names with escapes and non-ASCII, a `null` or nested result,
    /// optional fields there or not, any order), and leaves every other line to it.
    #[test]
    fn the_hot_decoder_reads_what_serde_reads_and_leaves_the_rest() {
        let kinds = [
            EventKind::Pending { task: "p[0]".into(), id: 1, pool: "io".into(), attempt: None },
            EventKind::Pending { task: "qu\"ote\\ é\u{1}".into(), id: 2, pool: "io".into(), attempt: Some(3) },
            EventKind::Running { task: "a".into(), id: 3, pool: "cpu".into(), worker: "cpu-1".into(), pid: Some(42) },
            EventKind::Running { task: "a".into(), id: 3, pool: "io".into(), worker: "io-2".into(), pid: None },
            EventKind::Done { task: "a".into(), id: 3, pool: "io".into(), result: Value::Null },
            EventKind::Done {
                task: "b".into(),
                id: 4,
                pool: "io".into(),
                result: serde_json::json!({"k": [1, 2.5, "x"]}),
            },
        ];
        let mut names = Names::default();
        for (i, kind) in kinds.into_iter().enumerate() {
            let event = Event { seq: i as u64 + 1, t: 0.25 * i as f64, kind };
            let mut line = Vec::new();
            encode(&mut line, &event).expect("encoded");
            assert_eq!(decode_hot(&line, &mut names).as_ref(), Some(&event), "{}", String::from_utf8_lossy(&line));
            // The same fields in another order.
            let Value::Object(o) = serde_json::from_slice::<Value>(&line).expect("JSON") else { panic!() };
            let reversed: serde_json::Map<String, Value> = o.into_iter().rev().collect();
            let line = serde_json::to_vec(&reversed).expect("JSON");
            assert_eq!(decode_hot(&line, &mut names).as_ref(), Some(&event), "{}", String::from_utf8_lossy(&line));
        }
        for other in [
            r#"{"seq":1,"t":0.0,"event":"cancelled","task":"a","id":1,"pool":"io"}"#,
            r#"{"seq":1,"t":0.0,"event":"done","task":"a","id":1,"pool":"io"}"#,
            r#"{"seq":1,"t":0.0,"event":"running","task":"a","id":1,"pool":"io","worker":"w","pid":"x"}"#,
            r#"{"seq":1,"t":0.0,"event":"pending","task":"a","pool":"io"}"#,
            r#"{"seq":1,"t":0.0,"event":"novel","task":"a","id":1,"pool":"io"}"#,
            r#"{"seq":1,"t":0.0,"event":"pending","task":"a","id":1,"pool":"io""#,
            r#"[1,0.5,"pending","a",1,"io"]"#,
        ] {
            assert_eq!(decode_hot(other.as_bytes(), &mut names), None, "{other}");
        }
    }

    /// The bus forgets the names of finished futures after [`NAMES_KEPT`] more have
    /// finished, so its map stays small, but one still waited on keeps its name until
    /// the wait's end, which names it, however many finish meanwhile.
    #[test]
    fn a_finished_future_keeps_its_name_while_waited_on_and_only_then() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut bus = Bus::new(Instant::now(), None, vec![tx], Vec::new()).expect("a bus without a log");
        let at = Instant::now();
        let pending =
            |id: u64, name: &str| Observation::Pending { id: FutureId(id), pool: "p".into(), name: name.into() };
        let finished = |id: u64| Observation::Finished { id: FutureId(id), outcome: Outcome::Cancelled };
        bus.handle(BusMsg::Engine(at, pending(1, "target")));
        bus.handle(BusMsg::Engine(at, pending(2, "waiter")));
        bus.handle(BusMsg::Engine(at, pending(3, "forgotten")));
        let wait = Observation::WaitStart { waiter: FutureId(2), target: FutureId(1), timeout: None };
        bus.handle(BusMsg::Engine(at, wait));
        bus.handle(BusMsg::Engine(at, finished(1)));
        bus.handle(BusMsg::Engine(at, finished(3)));
        let n = u64::try_from(3 * NAMES_KEPT).expect("a small number");
        for id in 10..10 + n {
            bus.handle(BusMsg::Engine(at, pending(id, "other")));
            bus.handle(BusMsg::Engine(at, finished(id)));
        }
        assert!(bus.futures.len() <= NAMES_KEPT + 3, "the bus keeps {} names", bus.futures.len());
        let end = Observation::WaitEnd { waiter: FutureId(2), target: FutureId(1), outcome: WaitOutcome::Completed };
        bus.handle(BusMsg::Engine(at, end));
        bus.handle(BusMsg::Output(at, FutureId(3), Stream::Stdout, "late".into(), 0));
        let events: Vec<Arc<Event>> = rx.try_iter().collect();
        let Some(EventKind::WaitEnd { task, on, .. }) = events.iter().rev().nth(1).map(|e| &e.kind) else {
            panic!("no wait_end: {:?}", events.last())
        };
        assert_eq!((&**task, &**on), ("waiter", "target"));
        let Some(EventKind::Output { task, .. }) = events.last().map(|e| &e.kind) else { panic!("no output") };
        assert_eq!(&**task, "task-3", "a future finished {n} futures ago is forgotten");
        // Once its wait has ended, the target goes the way of the others.
        for id in 10 + n..10 + 2 * n {
            bus.handle(BusMsg::Engine(at, pending(id, "other")));
            bus.handle(BusMsg::Engine(at, finished(id)));
        }
        assert!(!bus.futures.contains_key(&FutureId(1)) && bus.waited.is_empty());
    }

    /// An error reads `Type: what happened`, never `Killed: killed: ...`: the event's
    /// message is the exception's own words, without the prefix naming its kind again.
    #[test]
    fn an_error_never_says_its_kind_twice() {
        let cases = [
            Exception::Killed("while running on a thread worker".into()),
            Exception::Deadlock("this wait was chosen to break a deadlock".into()),
            Exception::task("boom"),
            Exception::CommandFailed("`false` exited with status 1".into()),
        ];
        for e in &cases {
            let info = ErrorInfo::from(e);
            let shown = format!("{}: {}", info.kind, info.message);
            let words: Vec<String> =
                shown.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
            assert!(words.windows(2).all(|w| w[0] != w[1]), "{shown}");
            let kind = info.kind.as_str().to_lowercase();
            assert!(!info.message.to_lowercase().starts_with(kind.trim_end_matches("error")), "{shown}");
        }
        assert_eq!(ErrorInfo::from(&cases[0]).message, "while running on a thread worker");
    }

    /// The typed fields write the very JSON the strings did (docs/events.md).
    #[test]
    fn typed_fields_write_the_documented_json() {
        let line = |kind: EventKind| serde_json::to_string(&Event { seq: 1, t: 0.5, kind }).unwrap();
        let error = ErrorInfo { kind: ErrorKind::BrokenProcessPool, message: "gone".into() };
        assert_eq!(
            line(EventKind::Exception { task: "a".into(), id: 2, pool: "p".into(), error }),
            r#"{"seq":1,"t":0.5,"event":"exception","task":"a","id":2,"pool":"p","error":{"type":"BrokenProcessPool","message":"gone"}}"#
        );
        assert_eq!(
            line(EventKind::WaitEnd {
                task: "a".into(),
                on: "b".into(),
                id: 1,
                on_id: 2,
                outcome: WaitOutcome::TimedOut
            }),
            r#"{"seq":1,"t":0.5,"event":"wait_end","task":"a","on":"b","id":1,"on_id":2,"outcome":"timed_out"}"#
        );
        assert_eq!(
            line(EventKind::DeadlockResolved { tasks: vec!["a".into()], how: Resolution::Break }),
            r#"{"seq":1,"t":0.5,"event":"deadlock_resolved","tasks":["a"],"how":"break"}"#
        );
        let pools = vec![PoolInfo { name: "cpu".into(), kind: PoolKind::Process, max_workers: 2 }];
        assert_eq!(
            line(EventKind::RunStarted {
                version: 1,
                run: "r".into(),
                file: "f".into(),
                pools,
                tasks: 3,
                maps: Vec::new(),
                waiting: vec![]
            }),
            r#"{"seq":1,"t":0.5,"event":"run_started","version":1,"run":"r","file":"f","pools":[{"name":"cpu","kind":"process","max_workers":2}],"tasks":3}"#
        );
        let cancelled = |reason| EventKind::Cancelled { task: "b".into(), id: 3, pool: "p".into(), reason };
        assert_eq!(
            line(cancelled(Some(CancelReason::DependencyFailed("a".into())))),
            r#"{"seq":1,"t":0.5,"event":"cancelled","task":"b","id":3,"pool":"p","reason":"dependency 'a' failed"}"#
        );
    }

    /// The hand-written encoder writes what serde writes, for every per-future event,
    /// names that need escaping and optional fields present or not.
    #[test]
    fn the_encoder_writes_serdes_bytes() {
        let name: Name = "we\"ird\\name\u{1}é[3]".into();
        let pool: Name = "io".into();
        let error = ErrorInfo { kind: ErrorKind::TaskError, message: "boom \n\"x\"".into() };
        let kinds = [
            EventKind::Pending { attempt: None, task: Arc::clone(&name), id: 7, pool: Arc::clone(&pool) },
            EventKind::Running {
                task: Arc::clone(&name),
                id: 7,
                pool: Arc::clone(&pool),
                worker: "io-1".into(),
                pid: None,
            },
            EventKind::Running {
                task: Arc::clone(&name),
                id: 7,
                pool: Arc::clone(&pool),
                worker: "io-1".into(),
                pid: Some(42),
            },
            EventKind::Done {
                task: Arc::clone(&name),
                id: 7,
                pool: Arc::clone(&pool),
                result: serde_json::json!({"a": [1, 2.5, "x"]}),
            },
            EventKind::Done { task: Arc::clone(&name), id: u64::MAX, pool: Arc::clone(&pool), result: Value::Null },
            EventKind::Cancelled { task: Arc::clone(&name), id: 7, pool: Arc::clone(&pool), reason: None },
            EventKind::Cancelled {
                task: Arc::clone(&name),
                id: 7,
                pool: Arc::clone(&pool),
                reason: Some(CancelReason::DependencyFailed("a[1]".into())),
            },
            EventKind::Exception { task: Arc::clone(&name), id: 7, pool: Arc::clone(&pool), error },
            EventKind::Output { task: name, stream: Stream::Stdout, line: "hi".into(), dropped: None },
            // Names copied as they are: plain, not ASCII, DEL (which JSON does not escape).
            EventKind::Pending { attempt: Some(2), task: "plain[1]".into(), id: 8, pool: "pööl\u{7f}".into() },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            for t in [0.0, 0.1, 1_234.567_890_123, 1e-7] {
                let event = Event { seq: i as u64 + 1, t, kind: kind.clone() };
                let mut ours = Vec::new();
                encode(&mut ours, &event).expect("encodes");
                let serde = serde_json::to_vec(&event).expect("serialises");
                assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
            }
        }
    }

    /// A disk that fills up mid-line: the half line is completed by the next write that
    /// goes through, the lines after it are lost whole, and the buffer does not grow.
    #[test]
    fn a_failed_log_write_leaves_no_half_line() {
        /// Takes `room` bytes, then fails until it is given more room.
        struct Disk(std::sync::Arc<std::sync::Mutex<(Vec<u8>, usize)>>);
        impl Write for Disk {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let mut d = self.0.lock().expect("disk");
                if d.1 == 0 {
                    return Err(std::io::Error::other("no space left"));
                }
                let n = b.len().min(d.1);
                d.0.extend_from_slice(&b[..n]);
                d.1 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let disk = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), 30)));
        let mut log = LogFile::new(Box::new(Disk(std::sync::Arc::clone(&disk))));
        log.buf.extend_from_slice(b"{\"seq\":1,\"x\":1}\n{\"seq\":2,\"x\":22}\n{\"seq\":3}\n");
        assert!(log.flush().is_err());
        assert_eq!(log.buf, b"2}\n", "the rest of the half line, not the lines after it");
        disk.lock().expect("disk").1 = 1000;
        log.buf.extend_from_slice(b"{\"seq\":4}\n");
        log.flush().expect("room again");
        let written = String::from_utf8(disk.lock().expect("disk").0.clone()).expect("text");
        assert_eq!(written, "{\"seq\":1,\"x\":1}\n{\"seq\":2,\"x\":22}\n{\"seq\":4}\n");
        assert!(log.buf.is_empty());
    }

    #[test]
    fn a_cancel_reason_reads_back_as_written() {
        for reason in [
            CancelReason::DependencyFailed("fetch[3]".into()),
            CancelReason::DependencyCancelled("it's".into()),
            CancelReason::RunStopped,
            CancelReason::Refused("cannot schedule new futures after shutdown".into()),
        ] {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(serde_json::from_str::<CancelReason>(&json).unwrap(), reason, "{json}");
        }
        // A sentence of no known shape is a pool's refusal, kept whole.
        assert_eq!(CancelReason::parse("dependency 'x"), CancelReason::Refused("dependency 'x".into()));
    }

    #[test]
    fn an_unknown_error_type_in_a_log_is_an_error_with_its_line() {
        let dir = std::env::temp_dir().join(format!("futuretop-read-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        std::fs::write(
            &path,
            "{\"seq\":1,\"t\":0.0,\"event\":\"exception\",\"task\":\"a\",\"id\":1,\"pool\":\"p\",\"error\":{\"type\":\"Nope\",\"message\":\"m\"}}\n",
        )
        .unwrap();
        let e = read_log(&path).unwrap_err();
        assert!(matches!(e, LogError::Line { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("bad.jsonl:1: not an event: unknown variant `Nope`"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
