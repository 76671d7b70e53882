//! The run model: the fold of a run's events into its futures, pools, workers, counts, deadlocks and summary — written once, for the monitor, the headless reporter and the summary after the monitor.
//!
//! A view keeps what it shows: the monitor keeps every future ([`Keep::All`]); the
//! headless reporter only the unfinished ones ([`Keep::Unfinished`]), so that its memory
//! does not grow with the futures a long run finished. Both count the same way, and both
//! summarise the run with the same words.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use thin_vec::ThinVec;

use serde_json::Value;

use crate::deadlock::DeadlockKind;
use crate::events::{CancelReason, ErrorInfo, Event, EventKind, MapInfo, Name, WaitingInfo};
use crate::pools::PoolKind;
use futuretop_engine::observe::IdMap;
use futuretop_engine::{Stream, WaitOutcome};

/// Lines of command output kept per task.
pub const OUTPUT_TAIL: usize = 50;
/// Timeline entries kept per task (the detail view's event list).
pub const TASK_EVENTS: usize = 64;
/// Spans kept per worker for the timeline view.
pub const WORKER_SPANS: usize = 512;
/// Samples the rate looks back over: 30 s of run time.
pub const RATE_WINDOW: usize = 60;
/// Lines kept in the log.
pub const LOG_LINES: usize = 200;
/// Workers a pool shows at most: past that, a worker that starts takes the place of the
/// one that died longest ago (a pool whose workers restart, `max_tasks_per_child`, starts
/// one a task), and one that finds no dead place is not shown.
pub const WORKER_VIEWS: usize = 4096;
/// Futures one future is shown waiting on at most (a `wait` on more names the first).
pub const WAITS_SHOWN: usize = 256;
/// Deadlocks kept: standing at once, and named in the summary (then counted).
pub const DEADLOCKS_KEPT: usize = 100;
/// How many workers the model remembers the places of (see `RunModel::recent_workers`).
const RECENT_WORKERS: usize = 4;

/// A future's state, as the views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowState {
    /// Queued.
    Pending,
    /// On a worker.
    Running,
    /// Finished with a value.
    Done,
    /// Finished with an exception.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl RowState {
    /// The word shown in the table (it carries the state without colour).
    pub const fn word(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// A one-character symbol for the state.
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::Pending => "·",
            Self::Running => "▶",
            Self::Done => "✔",
            Self::Failed => "✘",
            Self::Cancelled => "⊘",
        }
    }

    /// True for the final states.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// One future: what the run's events told of it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id.
    pub id: u64,
    /// When it was first seen, counting from 0 (the summary lists in this order).
    pub order: usize,
    /// Its task name.
    pub name: Name,
    /// Its pool.
    pub pool: Name,
    /// Its state.
    pub state: RowState,
    /// The worker running it (or that ran it).
    pub worker: Option<Name>,
    /// The worker's pid (process pools).
    pub pid: Option<u32>,
    /// When it was submitted, started, ended (run seconds).
    pub submitted: f64,
    /// When a worker took it.
    pub started: Option<f64>,
    /// When it reached a final state.
    pub ended: Option<f64>,
    /// Its value.
    pub result: Option<Value>,
    /// Its error, or why it was cancelled (boxed: most rows have none).
    pub error: Option<Box<RowError>>,
    /// Futures it is waiting on now.
    pub waits_on: ThinVec<u64>,
    /// What its timeline tells beyond its own states (its waits, kept as they came):
    /// [`Row::timeline`] makes the whole of it when a detail view shows it, so that a row
    /// of the 1,000,000 a monitor may hold keeps no text of its states.
    pub events: ThinVec<(f64, String)>,
    /// The last lines of its command output (none for most rows).
    pub output: Option<Box<OutputTail>>,
    /// For the row that stands for a `map:` task's items not yet handed to their pool
    /// (named `map[…]`, an id of its own): how many there are. 0 for a future's row.
    pub unsubmitted: usize,
    /// For a task with `retries:` that failed once: its attempts (none for most rows).
    pub attempts: Option<Box<Attempts>>,
    /// Its ticket in its pool's [`QueueOrder`] while it is pending there (0: none).
    pub ticket: u32,
}

/// A task's attempts (`retries:`), kept on the row of its latest: each attempt is a
/// future of its own, and the row takes on the next one's id when it is submitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempts {
    /// The attempt the row's future is, from 1 (while a retry waits: the one that failed).
    pub attempt: u32,
    /// Attempts in all (`retries:` + 1).
    pub of: u32,
    /// While a retry waits for its time: when it is due (run seconds).
    pub next_at: Option<f64>,
    /// The attempts before: their future id, when they ended, and how.
    pub earlier: Vec<(u64, f64, String)>,
}

/// A task's last lines of command output: both streams, in the order they came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTail {
    /// The last [`OUTPUT_TAIL`] lines and their streams, oldest first.
    pub lines: VecDeque<(Stream, String)>,
    /// Lines printed before them: gone from the ring, or never published (more than 200
    /// a second on a stream: the `output` event's `dropped`).
    pub earlier: u64,
}

impl OutputTail {
    /// Takes one `output` event.
    fn take(&mut self, stream: Stream, line: &str, dropped: Option<u64>) {
        if let Some(n) = dropped {
            self.earlier += n;
            return;
        }
        if self.lines.len() == OUTPUT_TAIL {
            self.lines.pop_front();
            self.earlier += 1;
        }
        self.lines.push_back((stream, line.to_owned()));
    }
}

/// Why a row did not end with a value.
#[derive(Debug, Clone, PartialEq)]
pub enum RowError {
    /// It ended with this exception.
    Exception(ErrorInfo),
    /// It was cancelled, for this reason.
    Cancelled(CancelReason),
    /// Its wait was the one chosen to break a deadlock (`b`, `--on-deadlock break`): it
    /// raised this `DeadlockError`.
    BrokeDeadlock {
        /// The exception.
        error: ErrorInfo,
        /// The deadlock, its names quoted: `'a' → 'b'`.
        cycle: String,
    },
    /// It was in a broken deadlock and raised the `DeadlockError` of the future it waited
    /// on (as `Future.result()` raises the future's own exception).
    WaitedOnBroken {
        /// The exception.
        error: ErrorInfo,
        /// The future it waited on.
        on: Name,
    },
}

impl RowError {
    /// The exception it ended with; `None` for a cancellation.
    pub const fn exception(&self) -> Option<&ErrorInfo> {
        match self {
            Self::Exception(error) | Self::BrokeDeadlock { error, .. } | Self::WaitedOnBroken { error, .. } => {
                Some(error)
            }
            Self::Cancelled(_) => None,
        }
    }
}

impl std::fmt::Display for RowError {
    /// `TaskError: boom`, `cancelled: dependency 'a' failed`, `DeadlockError (chosen to
    /// break 'a' → 'b')`, or `failed because 'b', which it waited on, raised DeadlockError`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exception(e) => write!(f, "{}: {}", e.kind, e.message),
            Self::Cancelled(r) => write!(f, "cancelled: {r}"),
            Self::BrokeDeadlock { error, cycle } => write!(f, "{} (chosen to break {cycle})", error.kind),
            Self::WaitedOnBroken { error, on } => {
                write!(f, "failed because '{on}', which it waited on, raised {}", error.kind)
            }
        }
    }
}

/// How a member of a broken deadlock's `DeadlockError` reads ([`RowError`]).
#[derive(Debug, Clone, PartialEq)]
enum Broken {
    /// Its wait was chosen: the deadlock, quoted.
    Victim(String),
    /// It waited on this member.
    Waited(Name),
}

impl Row {
    /// A pending row, as it is first seen.
    fn pending(id: u64, order: usize, name: Name, pool: Name, submitted: f64) -> Self {
        Self {
            id,
            order,
            name,
            pool,
            state: RowState::Pending,
            worker: None,
            pid: None,
            submitted,
            started: None,
            ended: None,
            result: None,
            error: None,
            waits_on: ThinVec::new(),
            events: ThinVec::new(),
            output: None,
            unsubmitted: 0,
            attempts: None,
            ticket: 0,
        }
    }

    /// `attempt 2/3`, for a row of a task that was retried.
    pub fn attempt_label(&self) -> Option<String> {
        self.attempt_of().map(|(n, of)| format!("attempt {n}/{of}"))
    }

    /// The attempt this row's task is at (the next one while a retry waits), of how many.
    pub fn attempt_of(&self) -> Option<(u32, u32)> {
        let a = self.attempts.as_deref()?;
        let n = if a.next_at.is_some() { a.attempt.saturating_add(1) } else { a.attempt };
        Some((n, a.of))
    }

    /// Seconds until a waiting retry runs, at `now`.
    pub fn retry_in(&self, now: f64) -> Option<f64> {
        self.attempts.as_deref()?.next_at.map(|at| (at - now).max(0.0))
    }

    /// How long it ran (or has been running, at `now`).
    pub fn duration(&self, now: f64) -> Option<f64> {
        self.started.map(|s| self.ended.unwrap_or(now) - s)
    }

    /// Its timeline, in time order: submitted, taken by a worker, its waits, ended.
    pub fn timeline(&self) -> Vec<(f64, String)> {
        let mut lines = vec![(self.submitted, format!("pending in pool {}", self.pool))];
        if let (Some(t), Some(w)) = (self.started, &self.worker) {
            lines.push((t, format!("running on {w}")));
        }
        lines.extend(self.events.iter().cloned());
        if let Some(t) = self.ended {
            let end = match (self.error.as_deref(), self.state) {
                (Some(e), _) => e.to_string(),
                (None, RowState::Cancelled) => "cancelled".into(),
                (None, _) => "done".into(),
            };
            lines.push((t, end));
        }
        // Stable: at the same time, the order above (pending, running, waits, end).
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines
    }

    /// The result or error, in one line.
    pub fn outcome(&self) -> String {
        if self.unsubmitted > 0 {
            return format!("{} not yet submitted", self.unsubmitted);
        }
        match (&self.result, self.error.as_deref()) {
            (_, Some(RowError::Cancelled(reason))) => reason.to_string(),
            (_, Some(error)) => error.to_string(),
            (Some(v), None) => match v {
                Value::String(s) => s.lines().last().unwrap_or("").to_owned(),
                Value::Null => String::new(),
                other => other.to_string(),
            },
            (None, None) => String::new(),
        }
    }
}

/// A worker in the workers panel.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// Its name (`cpu-1`).
    pub name: Name,
    /// Its pid (process pools).
    pub pid: Option<u32>,
    /// The future it runs now.
    pub current: Option<u64>,
    /// False once it exited.
    pub alive: bool,
    /// What it ran: (start, end or None while running, future id).
    pub spans: VecDeque<(f64, Option<f64>, u64)>,
    /// CPU percent and resident bytes, from the system sampler.
    pub cpu: Option<f32>,
    /// Resident memory in bytes.
    pub mem: Option<u64>,
    /// What the worker has in use, as its pool reports it (Slurm nodes).
    pub load: Option<String>,
    /// Where its time went: running a task, blocked in a wait, idle.
    pub time: WorkerTime,
}

/// Where a worker's time went, from the events' times: running a task (of which blocked
/// in a wait: a task waiting on another future holds its worker), or idle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkerTime {
    /// When it started.
    pub since: f64,
    /// When it exited.
    pub until: Option<f64>,
    /// Seconds spent running tasks, up to the last that ended (waits included).
    pub running: f64,
    /// Seconds of that spent in waits.
    pub blocked: f64,
    /// Running a task since.
    pub running_since: Option<f64>,
    /// In a wait since.
    pub blocked_since: Option<f64>,
    /// Waits open.
    pub waits: u32,
}

impl WorkerTime {
    /// (busy, blocked, idle) seconds up to `now`: busy is running and not waiting.
    pub fn split(&self, now: f64) -> (f64, f64, f64) {
        let end = self.until.unwrap_or(now);
        let running = self.running + self.running_since.map_or(0.0, |s| (end - s).max(0.0));
        let blocked = self.blocked + self.blocked_since.map_or(0.0, |s| (end - s).max(0.0));
        let life = (end - self.since).max(running);
        ((running - blocked).max(0.0), blocked, life - running)
    }

    fn start_task(&mut self, t: f64) {
        self.running_since = Some(t);
    }

    fn end_task(&mut self, t: f64) {
        if let Some(s) = self.running_since.take() {
            self.running += (t - s).max(0.0);
        }
        if let Some(s) = self.blocked_since.take() {
            self.blocked += (t - s).max(0.0);
        }
        self.waits = 0;
    }

    fn wait(&mut self, t: f64) {
        self.waits += 1;
        if self.waits == 1 && self.running_since.is_some() {
            self.blocked_since = Some(t);
        }
    }

    fn wait_end(&mut self, t: f64) {
        self.waits = self.waits.saturating_sub(1);
        if self.waits == 0 {
            if let Some(s) = self.blocked_since.take() {
                self.blocked += (t - s).max(0.0);
            }
        }
    }
}

/// A pool in the workers panel.
#[derive(Debug, Clone)]
pub struct PoolView {
    /// Its name.
    pub name: String,
    /// `thread`, `process` or `slurm` (unknown until `run_started` names it).
    pub kind: Option<PoolKind>,
    /// Its worker count.
    pub max_workers: usize,
    /// Its workers, in start order.
    pub workers: Vec<WorkerView>,
    /// Busy workers, sampled every [`SAMPLE_PERIOD`] of run time (for the sparkline).
    pub busy_history: VecDeque<u64>,
    /// Why it broke, if it did.
    pub broken: Option<String>,
    /// Its futures waiting for a worker.
    pub queued: usize,
    /// Workers not shown: they started when [`WORKER_VIEWS`] were shown and none had died.
    pub hidden_workers: usize,
    /// (busy, blocked, idle) seconds of the workers whose places were taken by others.
    pub retired: (f64, f64, f64),
    /// Places in `workers` of the workers that died, oldest first (see [`WORKER_VIEWS`]).
    dead: VecDeque<usize>,
    /// The order of its pending futures.
    pub queue: QueueOrder,
}

/// A deadlock being shown.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlockView {
    /// `cycle` or `starvation`.
    pub kind: DeadlockKind,
    /// The tasks in wait order.
    pub tasks: Vec<String>,
    /// Their ids.
    pub ids: Vec<u64>,
    /// The explanation.
    pub message: String,
    /// The waiter that `b` interrupts.
    pub victim_id: Option<u64>,
    /// When the earliest timeout of its waits expires (run seconds).
    pub expires_at: Option<f64>,
}

/// A stall standing: no future changed state for a while, and work is left.
#[derive(Debug, Clone, PartialEq)]
pub struct StallView {
    /// When it was reported (run seconds).
    pub at: f64,
    /// Seconds without a change, when reported.
    pub after: f64,
    /// What ran then: id, task, worker, seconds it had run.
    pub running: Vec<(u64, Name, Name, f64)>,
    /// Futures pending then.
    pub pending: usize,
}

/// System figures (the `system` events).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SysStats {
    /// Whole-system CPU percent.
    pub cpu: f32,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Memory in all, bytes.
    pub mem_total: u64,
    /// Per worker pid: CPU percent and resident bytes.
    pub procs: HashMap<u32, (f32, u64)>,
}

/// Run time between two samples of the sparklines and the rate, in seconds.
pub const SAMPLE_PERIOD: f64 = 0.5;
/// Samples kept for a sparkline.
pub const HISTORY: usize = 120;
/// How far behind the live clock a sample is taken when no event brings it: events
/// stamped before a sample's time have long arrived by then.
pub const SAMPLE_GRACE: f64 = 1.0;

/// The ids of the rows of maps' unsubmitted items count down from here (future ids count
/// up from 1).
const UNSUBMITTED_IDS: u64 = u64::MAX;
/// The ids of the rows of tasks that wait on others ([`WaitingInfo`]) count down from here.
const WAITING_IDS: u64 = u64::MAX - (1 << 32);

/// A pool's queue of pending futures, in the order they came (a Fenwick tree of the
/// futures still pending, by their place in that order): a future's place in the queue is
/// how many before it still wait, found in O(log n).
#[derive(Debug, Clone, Default)]
pub struct QueueOrder {
    tree: Vec<i32>,
}

impl QueueOrder {
    fn prefix(&self, mut i: usize) -> i32 {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1];
            i &= i - 1;
        }
        sum
    }

    /// A future joins the queue at its end: its ticket (from 1).
    fn push(&mut self) -> u32 {
        let i = self.tree.len() + 1;
        let low = i & i.wrapping_neg();
        let node = 1 + self.prefix(i - 1) - self.prefix(i - low);
        self.tree.push(node);
        u32::try_from(i).unwrap_or(u32::MAX)
    }

    /// The future with `ticket` left the queue.
    fn leave(&mut self, ticket: u32) {
        let mut i = ticket as usize;
        while i > 0 && i <= self.tree.len() {
            self.tree[i - 1] -= 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The place in the queue (from 1) of the future with `ticket`.
    pub fn place(&self, ticket: u32) -> usize {
        usize::try_from(self.prefix((ticket as usize).min(self.tree.len()))).unwrap_or(0)
    }
}

/// How many slowest futures the summary lists.
const SLOWEST: usize = 5;

/// Which futures the model keeps once they finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Every future (the monitor's table).
    #[default]
    All,
    /// Only the unfinished ones (the headless reporter): what the summary names is kept
    /// apart, the rest is counted and let go.
    Unfinished,
}

/// Futures per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Per state, indexed by `RowState as usize`.
    pub by_state: [usize; 5],
    /// Futures in all: those seen, and the plan's not seen yet (not submitted yet).
    pub total: usize,
}

impl StateCounts {
    /// Futures in `state`.
    pub const fn of(&self, state: RowState) -> usize {
        self.by_state[state as usize]
    }

    /// Each state with its count, in the header's order.
    pub const fn per_state(&self) -> [(RowState, usize); 5] {
        let c = self.by_state;
        [
            (RowState::Pending, c[0]),
            (RowState::Running, c[1]),
            (RowState::Done, c[2]),
            (RowState::Failed, c[3]),
            (RowState::Cancelled, c[4]),
        ]
    }

    /// Futures in a final state.
    pub const fn finished(&self) -> usize {
        self.of(RowState::Done) + self.of(RowState::Failed) + self.of(RowState::Cancelled)
    }

    /// `24 futures: 19 done, 4 failed, 1 cancelled` (and `, 3 unfinished` if some are).
    pub fn sentence(&self) -> String {
        let unfinished = self.total.saturating_sub(self.finished());
        format!(
            "{} futures: {} done, {} failed, {} cancelled{}",
            self.total,
            self.of(RowState::Done),
            self.of(RowState::Failed),
            self.of(RowState::Cancelled),
            if unfinished > 0 { format!(", {unfinished} unfinished") } else { String::new() }
        )
    }
}

/// A finished future the summary names.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    order: usize,
    name: Name,
    /// `TYPE: message` for a failure, the reason for a cancellation.
    what: String,
}

/// What the summary names: failures, cancellations with a reason, the slowest futures
/// and the deadlocks reported. It grows with failures, not with the futures that went well.
#[derive(Debug, Clone, Default, PartialEq)]
struct Summary {
    failures: Vec<Named>,
    cancelled: Vec<Named>,
    /// The slowest finished futures: (seconds, order, name), slowest first.
    slowest: Vec<(f64, usize, Name)>,
    deadlocks: Vec<String>,
    /// Deadlocks past the first [`DEADLOCKS_KEPT`].
    more_deadlocks: usize,
    /// Futures of a log past [`crate::config::MAX_FUTURES`], not followed.
    futures_not_read: usize,
    /// Retries scheduled (`retry` events).
    retries: usize,
    /// Tasks that succeeded on an attempt after their first.
    retried_ok: usize,
}

impl Summary {
    /// Notes a finished future's duration among the slowest.
    fn timed(&mut self, r: &Row, ended: f64) {
        let Some(started) = r.started else { return };
        let d = ended - started;
        if self.slowest.len() == SLOWEST && self.slowest.last().is_some_and(|s| s.0 >= d) {
            return;
        }
        self.slowest.push((d, r.order, r.name.clone()));
        self.slowest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.slowest.truncate(SLOWEST);
    }
}

/// What an event changed, for a view that keeps an order of its own over the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// No row was added, none changed state.
    Nothing,
    /// A row was added at the end (its index).
    Added(usize),
    /// A row changed state.
    State,
    /// Rows moved (a finished one was let go under [`Keep::Unfinished`]).
    Moved,
}

/// The run as its events tell it.
#[derive(Debug, Default)]
pub struct RunModel {
    /// The run's name.
    pub run: String,
    /// The task file.
    pub file: String,
    /// Tasks in the plan.
    pub planned: usize,
    /// The run clock (seconds, from the latest event or tick).
    pub now: f64,
    /// The futures kept (see [`Keep`]), in the order they were first seen.
    pub rows: Vec<Row>,
    index: IdMap<u64, usize>,
    /// The latest future of each task name (for output lines).
    by_name: HashMap<Name, usize>,
    /// Pools and their workers.
    pub pools: Vec<PoolView>,
    /// Deadlocks standing now.
    pub deadlocks: Vec<DeadlockView>,
    /// The members of the deadlocks broken so far whose end is still to come, by id: how
    /// their `DeadlockError` reads (the chosen one, or one that waited on it).
    broken: HashMap<u64, Broken>,
    /// The last deadlock reported, its names quoted (`'a' → 'b'`).
    last_deadlock: Option<String>,
    /// A stall reported and not yet over (a future's change of state ends it).
    pub stall: Option<StallView>,
    /// The highest `seq` taken in (0 before the first event).
    pub seq_seen: u64,
    /// Recent log lines.
    pub log: VecDeque<String>,
    /// The run's exit code, once it ended.
    pub finished: Option<i32>,
    /// System figures.
    pub sys: SysStats,
    /// Futures finished per second: over the last 30 s of run time (since the start while
    /// the run is younger, so it shows from the first finished futures on) while the run
    /// goes on, the whole run's average once it has finished.
    pub rate: f64,
    /// Samples taken: the next is due at `(samples + 1) * SAMPLE_PERIOD` of run time.
    samples: u64,
    /// Finished futures at each of the last [`RATE_WINDOW`] samples, oldest first.
    done_history: VecDeque<usize>,
    /// Futures per state (indexed by `RowState as usize`).
    state_counts: [usize; 5],
    /// Futures seen.
    seen: usize,
    /// Futures of the plan seen (an inner future of a `submit`, named `task/call`, is not
    /// one): the plan's others are pending, not yet handed to their pool.
    seen_planned: usize,
    keep: Keep,
    summary: Summary,
    /// The rows of the maps' items not yet handed over ([`Row::unsubmitted`]), by map name.
    unsubmitted: IdMap<Name, u64>,
    /// Rows moved up since a view last asked (see [`RunModel::take_rows_moved`]).
    rows_moved: bool,
    /// Each pool's index in `pools`, by name.
    pool_index: IdMap<Name, usize>,
    /// Each worker's index in its pool's `workers`, by pool name, then worker name.
    worker_index: IdMap<Name, IdMap<Name, usize>>,
    /// The workers looked up last, where they are (pool, worker, pool index, worker
    /// index): a run's events name its busy workers over and over, and a worker found here
    /// costs two short comparisons, not two hash lookups. Emptied when a worker's place
    /// changes.
    recent_workers: [Option<(Name, Name, usize, usize)>; RECENT_WORKERS],
    /// The pool looked up last, and its index (pools never move).
    recent_pool: Option<(Name, usize)>,
    /// Tasks whose retry waits for its time, by name: counted pending since their `retry`
    /// event, so their next attempt's `pending` does not count them again. With the
    /// attempts in all, for a headless model whose rows of them are gone.
    retrying: HashMap<Name, u32>,
    /// What the rows of tasks not yet submitted wait for, by row id ([`WaitingInfo`],
    /// [`MapInfo::after`]).
    after: IdMap<u64, Box<[Name]>>,
    /// The ids of the rows of tasks that wait on others, by task name, until their future comes.
    waiting_rows: IdMap<Name, u64>,
    /// Per `map:` task something waits for as a whole: its items, and those done.
    map_done: HashMap<Name, (usize, usize)>,
    /// Every `map:` task's items, by name (from `run_started`).
    map_items: HashMap<Name, usize>,
}

impl RunModel {
    /// An empty model that keeps `keep`.
    pub fn new(keep: Keep) -> Self {
        Self { keep, ..Self::default() }
    }

    /// The deadlock that stopped the run under `--on-deadlock fail` (exit code 3), its
    /// names quoted: `'a' → 'b'`.
    pub fn stopped_by_deadlock(&self) -> Option<String> {
        (self.finished == Some(crate::runner::EXIT_DEADLOCK)).then(|| self.last_deadlock.clone()).flatten()
    }

    /// A wait of `id` was interrupted to break a deadlock: its members' `DeadlockError`s
    /// say who was chosen and who only waited on it.
    fn note_broken(&mut self, id: u64) {
        let Some(d) = self.deadlocks.iter().find(|d| d.victim_id == Some(id)) else { return };
        let cycle = d.tasks.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(" → ");
        let n = d.ids.len();
        let mut marks = Vec::with_capacity(n);
        for (i, &member) in d.ids.iter().enumerate() {
            if member == id {
                marks.push((member, Broken::Victim(cycle.clone())));
            } else if let Some(on) = d.tasks.get((i + 1) % n) {
                marks.push((member, Broken::Waited(on.as_str().into())));
            }
        }
        self.broken.extend(marks);
    }

    fn row_mut(&mut self, id: u64) -> Option<&mut Row> {
        self.index.get(&id).map(|&i| &mut self.rows[i])
    }

    /// The row of future `id`.
    pub fn row(&self, id: u64) -> Option<&Row> {
        self.index.get(&id).map(|&i| &self.rows[i])
    }

    /// The latest future called `name` (its row), if one is kept.
    pub fn row_named(&self, name: &str) -> Option<&Row> {
        self.by_name.get(name).map(|&i| &self.rows[i])
    }

    /// The index in [`RunModel::rows`] of future `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.index.get(&id).copied()
    }

    fn worker(&self, pool: &str, worker: &str) -> Option<&WorkerView> {
        let &p = self.pool_index.get(pool)?;
        let &w = self.worker_index.get(pool)?.get(worker)?;
        self.pools.get(p)?.workers.get(w)
    }

    fn worker_mut(&mut self, pool: &str, worker: &str) -> Option<&mut WorkerView> {
        let recent = self.recent_workers.iter().flatten().find(|(p, w, _, _)| **w == *worker && **p == *pool);
        let (p, w) = if let Some(&(_, _, p, w)) = recent {
            (p, w)
        } else {
            let (pool, &p) = self.pool_index.get_key_value(pool)?;
            let (worker, &w) = self.worker_index.get(pool)?.get_key_value(worker)?;
            let found = (Arc::clone(pool), Arc::clone(worker), p, w);
            self.recent_workers.rotate_right(1);
            self.recent_workers[0] = Some(found);
            (p, w)
        };
        self.pools.get_mut(p)?.workers.get_mut(w)
    }

    /// The worker running future `id`.
    fn worker_of(&mut self, id: u64) -> Option<&mut WorkerView> {
        let r = self.row(id)?;
        let (pool, worker) = (r.pool.clone(), r.worker.clone()?);
        self.worker_mut(&pool, &worker).filter(|w| w.current == Some(id))
    }

    /// A pool's (busy, blocked, idle) seconds up to the run's clock.
    pub fn pool_time(&self, pool: &PoolView) -> (f64, f64, f64) {
        pool.workers.iter().map(|w| w.time.split(self.now)).fold(pool.retired, |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }

    fn pool_mut(&mut self, pool: &str) -> &mut PoolView {
        if let Some(i) = self.recent_pool.as_ref().filter(|(name, _)| **name == *pool).map(|&(_, i)| i) {
            return &mut self.pools[i];
        }
        if let Some((name, &i)) = self.pool_index.get_key_value(pool) {
            self.recent_pool = Some((Arc::clone(name), i));
            return &mut self.pools[i];
        }
        let name: Name = pool.into();
        self.recent_pool = Some((Arc::clone(&name), self.pools.len()));
        self.pool_index.insert(name, self.pools.len());
        self.pools.push(PoolView {
            name: pool.to_owned(),
            kind: None,
            max_workers: 0,
            workers: Vec::new(),
            busy_history: VecDeque::new(),
            broken: None,
            queued: 0,
            hidden_workers: 0,
            retired: (0.0, 0.0, 0.0),
            dead: VecDeque::new(),
            queue: QueueOrder::default(),
        });
        let last = self.pools.len() - 1;
        &mut self.pools[last]
    }

    /// Adds a line to the log (a monitor's: the headless reporter keeps none, and makes none).
    fn push_log(&mut self, line: impl FnOnce() -> String) {
        if self.keep == Keep::Unfinished {
            return;
        }
        let line = line();
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    /// Adds an entry to future `id`'s timeline (the monitor's detail view: the headless
    /// reporter keeps none, and makes none).
    fn note(&mut self, id: u64, t: f64, what: impl FnOnce() -> String) {
        if self.keep == Keep::Unfinished {
            return;
        }
        if let Some(r) = self.row_mut(id) {
            let what = what();
            if r.events.len() == TASK_EVENTS {
                r.events.remove(0);
            }
            r.events.push((t, what));
        }
    }

    /// Row `i`'s future ended at `t`: so does its span on its worker.
    fn end_span(&mut self, i: usize, t: f64) {
        let r = &self.rows[i];
        let (id, pool, worker) = (r.id, r.pool.clone(), r.worker.clone());
        if let Some(w) = worker.and_then(|w| self.worker_mut(&pool, &w)) {
            if w.current == Some(id) {
                w.current = None;
                w.time.end_task(t);
            }
            if let Some(span) = w.spans.iter_mut().rev().find(|s| s.2 == id && s.1.is_none()) {
                span.1 = Some(t);
            }
        }
    }

    /// Moves row `i` to `state`, keeping the counters right. A final state is final: a
    /// second end of a future (a doctored or concatenated log) changes nothing, so that
    /// no future is counted twice.
    fn set_state(&mut self, i: usize, state: RowState) -> bool {
        let old = self.rows[i].state;
        if old == state || old.is_final() {
            return false;
        }
        self.rows[i].state = state;
        self.state_counts[old as usize] -= 1;
        self.state_counts[state as usize] += 1;
        if (old == RowState::Pending) != (state == RowState::Pending) {
            let pool = self.rows[i].pool.clone();
            let ticket = std::mem::take(&mut self.rows[i].ticket);
            let p = self.pool_mut(&pool);
            if state == RowState::Pending {
                p.queued += 1;
            } else {
                p.queued = p.queued.saturating_sub(1);
                if ticket > 0 {
                    p.queue.leave(ticket);
                }
            }
        }
        true
    }

    /// Ends future `id` in `state` at `t`; under [`Keep::Unfinished`] its row is let go.
    fn finish(&mut self, id: u64, t: f64, state: RowState) -> Change {
        match self.index.get(&id) {
            Some(&i) => self.finish_row(i, t, state),
            None => Change::Nothing,
        }
    }

    /// [`RunModel::finish`] of row `i`.
    fn finish_row(&mut self, i: usize, t: f64, state: RowState) -> Change {
        if self.rows[i].state.is_final() {
            return Change::Nothing;
        }
        self.end_span(i, t);
        let r = &mut self.rows[i];
        r.ended = Some(t);
        r.waits_on.clear();
        self.set_state(i, state);
        let r = &self.rows[i];
        if state != RowState::Cancelled {
            self.summary.timed(r, t);
        }
        match r.error.as_deref() {
            Some(RowError::Cancelled(reason)) => {
                self.summary.cancelled.push(Named { order: r.order, name: r.name.clone(), what: reason.to_string() });
            }
            Some(e) => {
                self.summary.failures.push(Named { order: r.order, name: r.name.clone(), what: e.to_string() });
            }
            None => {}
        }
        if self.keep == Keep::Unfinished {
            self.let_go(i);
            return Change::Moved;
        }
        Change::State
    }

    /// Task `task`'s attempt (future `id`, the `attempt`th of `of`) failed, and it will
    /// run again at `at`: it is pending again, not failed; its row waits for the next.
    fn retry(&mut self, task: &Name, id: u64, (attempt, of): (u32, u32), at: f64) -> Change {
        self.summary.retries += 1;
        if self.retrying.contains_key(task) {
            return Change::Nothing;
        }
        match self.index.get(&id).copied() {
            Some(i) if self.rows[i].state == RowState::Failed => {
                self.reopen(task, RowState::Failed, of);
                self.await_attempt(i, (attempt, of), at);
                Change::State
            }
            // A headless model let the row go: only the counts move.
            None if self.state_counts[RowState::Failed as usize] > 0 => {
                self.reopen(task, RowState::Failed, of);
                Change::Nothing
            }
            _ => Change::Nothing,
        }
    }

    /// Task `task`, which ended `from`, is pending again until its next attempt (of `of`)
    /// comes: counted so, and out of the summary's failures or cancellations.
    fn reopen(&mut self, task: &Name, from: RowState, of: u32) {
        let list = if from == RowState::Failed { &mut self.summary.failures } else { &mut self.summary.cancelled };
        if let Some(k) = list.iter().rposition(|f| f.name == *task) {
            list.remove(k);
        }
        self.state_counts[from as usize] = self.state_counts[from as usize].saturating_sub(1);
        self.state_counts[RowState::Pending as usize] += 1;
        self.retrying.insert(task.clone(), of);
    }

    /// Row `i` waits for its task's next attempt, due at `at`: pending, the attempt that
    /// ended (the `attempt`th of `of`) kept among the earlier ones.
    fn await_attempt(&mut self, i: usize, (attempt, of): (u32, u32), at: f64) {
        let r = &mut self.rows[i];
        let before = (r.id, r.ended.unwrap_or(at), r.outcome());
        let a = r.attempts.get_or_insert_with(Box::default);
        a.earlier.push(before);
        (a.attempt, a.of, a.next_at) = (attempt, of, Some(at));
        r.state = RowState::Pending;
        (r.started, r.ended, r.error, r.result, r.worker, r.pid) = (None, None, None, None, None, None);
        r.waits_on.clear();
    }

    /// `r` ran task `task` again (attempt `attempt` of `of`): its row is pending again,
    /// waiting for the attempt's future; the tasks it had cancelled (`revived`) are
    /// pending again too, waiting on what they wait for.
    fn resubmitted(&mut self, task: &Name, (attempt, of): (u32, u32), revived: &[WaitingInfo], t: f64) {
        if revived.iter().any(|w| *w.task == **task) {
            // A task cancelled while it waited on others: it waits again, as they do.
            self.revive_all(revived);
            return;
        }
        // How it ended: its row's state, or (a headless model let it go) the summary's word.
        let row = self
            .by_name
            .get(task)
            .copied()
            .filter(|&i| matches!(self.rows[i].state, RowState::Failed | RowState::Cancelled));
        let ended = match row {
            Some(i) => self.rows[i].state,
            None if self.summary.failures.iter().any(|f| f.name == *task) => RowState::Failed,
            None => RowState::Cancelled,
        };
        if row.is_none() && self.keep == Keep::All {
            return;
        }
        self.reopen(task, ended, of);
        if let Some(i) = row {
            self.await_attempt(i, (attempt.saturating_sub(1), of), t);
        }
        self.push_log(|| format!("{task} resubmitted: attempt {attempt}"));
        self.revive_all(revived);
    }

    /// The tasks (and items) `revived` wait again: their futures are the plan's not yet
    /// submitted, again.
    fn revive_all(&mut self, revived: &[WaitingInfo]) {
        let mut names: std::collections::HashSet<Name> = std::collections::HashSet::new();
        for w in revived {
            let after: Box<[Name]> = w.after.iter().map(|a| Name::from(a.as_str())).collect();
            let futures: Vec<Name> = match self.map_items.get(w.task.as_str()) {
                Some(&n) => (0..n).map(|k| Name::from(format!("{}[{k}]", w.task))).collect(),
                None => vec![Name::from(w.task.as_str())],
            };
            for name in futures {
                self.revive(&name, &after);
                names.insert(name);
            }
        }
        if !names.is_empty() {
            self.summary.cancelled.retain(|c| !names.contains(&c.name));
        }
    }

    /// Future `name`, cancelled, will be submitted again: back among the plan's futures
    /// not yet seen, its row waiting for its future, with what it waits for.
    fn revive(&mut self, name: &Name, after: &[Name]) {
        let row = self.by_name.get(name).copied().filter(|&i| self.rows[i].state == RowState::Cancelled);
        if row.is_none() && self.keep == Keep::All {
            return;
        }
        self.state_counts[RowState::Cancelled as usize] =
            self.state_counts[RowState::Cancelled as usize].saturating_sub(1);
        self.seen = self.seen.saturating_sub(1);
        self.seen_planned = self.seen_planned.saturating_sub(1);
        let Some(i) = row else { return };
        let r = &mut self.rows[i];
        r.state = RowState::Pending;
        (r.started, r.ended, r.error, r.worker, r.pid, r.unsubmitted) = (None, None, None, None, None, 1);
        let id = r.id;
        self.waiting_rows.insert(name.clone(), id);
        if !after.is_empty() {
            self.after.insert(id, after.into());
        }
    }

    /// The `pending` of attempt `n` (of `of`) of task `task`, future `id`: the row of the
    /// task's last attempt takes it on; false when no row waits for it (a headless model
    /// let it go).
    fn next_attempt(&mut self, task: &Name, id: u64, attempt: u32, at: f64) -> bool {
        let waiting =
            |r: &Row| r.state == RowState::Pending && r.attempts.as_deref().is_some_and(|a| a.next_at.is_some());
        let Some(row) = self.by_name.get(task).copied().filter(|&row| waiting(&self.rows[row])) else { return false };
        // The row is the new attempt's: the old one's id no longer leads to it.
        self.index.remove(&self.rows[row].id);
        self.index.insert(id, row);
        let pool = self.rows[row].pool.clone();
        let queue = self.pool_mut(&pool);
        queue.queued += 1;
        let ticket = queue.queue.push();
        let r = &mut self.rows[row];
        r.id = id;
        r.submitted = at;
        r.ticket = ticket;
        if let Some(a) = r.attempts.as_deref_mut() {
            a.attempt = attempt;
            a.next_at = None;
        }
        true
    }

    /// Adds the row of a task that waits on others (the `j`th listed): pending from the
    /// start, with what it waits for; its future takes the row over when it comes.
    fn add_waiting(&mut self, j: usize, w: &WaitingInfo, t: f64) {
        let id = WAITING_IDS - j as u64;
        let name: Name = w.task.as_str().into();
        if self.index.contains_key(&id) || self.waiting_rows.contains_key(&name) {
            return;
        }
        let i = self.rows.len();
        self.index.insert(id, i);
        self.waiting_rows.insert(Arc::clone(&name), id);
        self.by_name.insert(Arc::clone(&name), i);
        self.after.insert(id, w.after.iter().map(|a| Name::from(a.as_str())).collect());
        self.rows.push(Row { unsubmitted: 1, ..Row::pending(id, usize::MAX, name, w.pool.as_str().into(), t) });
    }

    /// Task `task`'s future `id` came: the row that stood for it while it waited takes it
    /// over, counted as a new pending future. `None` if no row waited for it.
    fn waiting_submitted(&mut self, task: &Name, id: u64, t: f64) -> Option<Change> {
        if self.waiting_rows.is_empty() {
            return None;
        }
        let old = self.waiting_rows.remove(task)?;
        let i = self.index.remove(&old)?;
        self.after.remove(&old);
        self.index.insert(id, i);
        let order = self.seen;
        self.seen += 1;
        self.seen_planned += 1;
        self.state_counts[RowState::Pending as usize] += 1;
        let pool = self.rows[i].pool.clone();
        let p = self.pool_mut(&pool);
        p.queued += 1;
        let ticket = p.queue.push();
        let r = &mut self.rows[i];
        (r.id, r.order, r.unsubmitted, r.submitted, r.ticket) = (id, order, 0, t, ticket);
        Some(Change::State)
    }

    /// Why a row that has not finished is where it is: for a pending one, what it waits
    /// for (`#3 in queue 'cpu'`, `after 'index' (2 of 3 done)`, `retry 2/3 in 4.1 s`,
    /// `pool 'cpu' is broken`, `not yet submitted (window)`); for a running one,
    /// `computing` or `blocked on 'b' for 2.1 s`. `None` for a finished one.
    pub fn why(&self, r: &Row) -> Option<String> {
        match r.state {
            RowState::Pending => Some(self.why_pending(r)),
            RowState::Running => Some(match r.waits_on.first() {
                Some(on) => {
                    let name = self.row(*on).map_or_else(|| format!("#{on}"), |o| o.name.to_string());
                    let since = r
                        .worker
                        .as_ref()
                        .and_then(|w| self.worker(&r.pool, w)?.time.blocked_since)
                        .map_or_else(String::new, |s| format!(" for {:.1} s", (self.now - s).max(0.0)));
                    format!("blocked on '{name}'{since}")
                }
                None => "computing".to_owned(),
            }),
            _ => None,
        }
    }

    /// What the table's last column shows: why an unfinished row is where it is, a
    /// finished one's result or error; with the attempt, for a task that was retried.
    pub fn result_or_why(&self, r: &Row) -> String {
        let text = self.why(r).unwrap_or_else(|| r.outcome());
        match r.attempt_label() {
            Some(label) if r.retry_in(self.now).is_none() => {
                if text.is_empty() {
                    label
                } else {
                    format!("{text} · {label}")
                }
            }
            _ => text,
        }
    }

    fn why_pending(&self, r: &Row) -> String {
        if let (Some((n, of)), Some(left)) = (r.attempt_of(), r.retry_in(self.now)) {
            return format!("retry {n}/{of} in {left:.1} s");
        }
        let pool = self.pool_index.get(&r.pool).and_then(|&p| self.pools.get(p));
        if pool.is_some_and(|p| p.broken.is_some()) {
            return format!("pool '{}' is broken", r.pool);
        }
        if let Some(after) = self.after.get(&r.id) {
            let done = |n: &Name| {
                self.map_done.get(n).map_or_else(
                    || self.row_named(n).is_some_and(|d| d.state == RowState::Done),
                    |&(items, done)| done >= items,
                )
            };
            let finished = after.iter().filter(|n| done(n)).count();
            if let Some(first) = after.iter().find(|n| !done(n)) {
                return format!("after '{first}' ({finished} of {} done)", after.len());
            }
        }
        if r.unsubmitted > 0 && self.waiting_rows.get(&r.name) == Some(&r.id) {
            // A task that waited on others, about to be handed to its pool.
            return "not yet submitted (window)".to_owned();
        }
        if r.unsubmitted > 0 {
            return format!("{} not yet submitted (window)", r.unsubmitted);
        }
        match pool {
            Some(p) if r.ticket > 0 => format!("#{} in queue '{}'", p.queue.place(r.ticket), r.pool),
            _ => format!("in queue '{}'", r.pool),
        }
    }

    /// Adds the row that stands for map `m`'s items not yet handed to their pool (the
    /// `j`th map of the run): a monitor shows them, and `c` on it cancels them.
    fn add_unsubmitted(&mut self, j: usize, m: &MapInfo, t: f64) {
        let id = UNSUBMITTED_IDS - j as u64;
        if self.index.contains_key(&id) || m.items == 0 {
            return;
        }
        let name: Name = m.task.as_str().into();
        self.unsubmitted.insert(Arc::clone(&name), id);
        self.index.insert(id, self.rows.len());
        let name = format!("{}[…]", m.task).into();
        if !m.after.is_empty() {
            self.after.insert(id, m.after.iter().map(|a| Name::from(a.as_str())).collect());
        }
        self.rows.push(Row { unsubmitted: m.items, ..Row::pending(id, usize::MAX, name, m.pool.as_str().into(), t) });
    }

    /// Future `task` was handed to its pool: one fewer of its map's items waits for that;
    /// the map's row of them goes with the last (the rows after it move up one).
    fn handed_over(&mut self, task: &str) {
        if self.unsubmitted.is_empty() {
            return;
        }
        let Some((map, _)) = task.strip_suffix(']').and_then(|t| t.rsplit_once('[')) else { return };
        let Some(&id) = self.unsubmitted.get(map) else { return };
        let Some(&i) = self.index.get(&id) else { return };
        let row = &mut self.rows[i];
        row.unsubmitted = row.unsubmitted.saturating_sub(1);
        if row.unsubmitted > 0 {
            return;
        }
        self.unsubmitted.remove(map);
        self.index.remove(&id);
        self.rows.remove(i);
        for (k, r) in self.rows.iter().enumerate().skip(i) {
            self.index.insert(r.id, k);
            if let Some(at) = self.by_name.get_mut(&r.name) {
                if *at == k + 1 {
                    *at = k;
                }
            }
        }
        self.rows_moved = true;
    }

    /// True once, after rows moved up (a map's row of unsubmitted items went): a view
    /// that keeps an order over the rows works it out again.
    pub fn take_rows_moved(&mut self) -> bool {
        std::mem::take(&mut self.rows_moved)
    }

    /// Lets row `i` go (the last row takes its place).
    fn let_go(&mut self, i: usize) {
        let r = self.rows.swap_remove(i);
        self.index.remove(&r.id);
        if self.by_name.get(&r.name) == Some(&i) {
            self.by_name.remove(&r.name);
        }
        if let Some(moved) = self.rows.get(i) {
            let (id, name) = (moved.id, moved.name.clone());
            self.index.insert(id, i);
            if let Some(at) = self.by_name.get_mut(&name) {
                if *at == self.rows.len() {
                    *at = i;
                }
            }
        }
    }

    /// Takes in one run event; says what it changed.
    #[allow(clippy::too_many_lines)] // one arm per event kind
    pub fn apply(&mut self, e: &Event) -> Change {
        self.seq_seen = self.seq_seen.max(e.seq);
        if e.kind.changes_a_future() {
            self.stall = None;
        }
        // The samples due before this event see the state without it (live or replayed alike).
        self.sample_until(e.t);
        self.now = self.now.max(e.t);
        let t = e.t;
        match &e.kind {
            EventKind::RunStarted { run, file, pools, tasks, maps, waiting, .. } => {
                self.map_items = maps.iter().map(|m| (m.task.as_str().into(), m.items)).collect();
                self.run.clone_from(run);
                self.file.clone_from(file);
                self.planned = *tasks;
                if self.keep == Keep::All {
                    // Room for a planned future's row, without reallocating a mid-sized table
                    // mid-run; not sized from the log alone beyond that (a log may claim
                    // any number of tasks).
                    let room = (*tasks).min(1 << 16);
                    self.rows.reserve(room);
                    self.index.reserve(room);
                }
                for p in pools {
                    let v = self.pool_mut(&p.name);
                    v.kind = Some(p.kind);
                    v.max_workers = p.max_workers;
                }
                if self.keep == Keep::All && (!maps.is_empty() || !waiting.is_empty()) {
                    for (j, m) in maps.iter().enumerate() {
                        self.add_unsubmitted(j, m, t);
                    }
                    for (j, w) in waiting.iter().enumerate() {
                        self.add_waiting(j, w, t);
                    }
                    // Counted as they finish, for what waits on them as a whole.
                    let named: std::collections::HashSet<&str> =
                        self.after.values().flat_map(|names| names.iter().map(|n| &**n)).collect();
                    let counted: Vec<(Name, (usize, usize))> = maps
                        .iter()
                        .filter(|m| named.contains(m.task.as_str()))
                        .map(|m| (m.task.as_str().into(), (m.items, 0)))
                        .collect();
                    self.map_done.extend(counted);
                    return Change::Moved;
                }
            }
            EventKind::Pending { task, id, pool, attempt } => {
                if self.index.contains_key(id) {
                    return Change::Nothing;
                }
                // A retry's future: its task was counted pending again by its `retry` event.
                let retried = attempt.and_then(|n| self.retrying.remove(task).map(|of| (n, of)));
                if let Some((n, _)) = retried {
                    if self.next_attempt(task, *id, n, t) {
                        return Change::State;
                    }
                }
                if self.index.len() >= crate::config::MAX_FUTURES {
                    // No run has more: a log that does is not followed past it.
                    self.summary.futures_not_read += 1;
                    return Change::Nothing;
                }
                if attempt.is_none() {
                    self.handed_over(task);
                    if let Some(change) = self.waiting_submitted(task, *id, t) {
                        return change;
                    }
                }
                let i = self.rows.len();
                self.index.insert(*id, i);
                if self.keep == Keep::All {
                    // For command output, which only a monitor shows.
                    self.by_name.insert(task.clone(), i);
                }
                let order = self.seen;
                if retried.is_none() {
                    self.state_counts[RowState::Pending as usize] += 1;
                    if !task.contains('/') {
                        self.seen_planned += 1;
                    }
                    self.seen += 1;
                }
                let keep = self.keep;
                let p = self.pool_mut(pool);
                p.queued += 1;
                let ticket = if keep == Keep::All { p.queue.push() } else { 0 };
                // The pool's own name (one copy however many rows, from a log too): the
                // one `pool_mut` just found.
                let pool_name = self.recent_pool.as_ref().map_or_else(|| pool.clone(), |(k, _)| k.clone());
                let mut row = Row { ticket, ..Row::pending(*id, order, task.clone(), pool_name, t) };
                if let Some(n) = *attempt {
                    let of = retried.map_or(n, |(_, of)| of);
                    row.attempts = Some(Box::new(Attempts { attempt: n, of, ..Attempts::default() }));
                }
                self.rows.push(row);
                return Change::Added(i);
            }
            EventKind::Running { id, pool, worker, pid, .. } => {
                let Some(&i) = self.index.get(id) else { return Change::Nothing };
                if !self.set_state(i, RowState::Running) {
                    return Change::Nothing;
                }
                // The worker's own name (one copy however many rows, from a log too).
                let mut name = worker.clone();
                if let Some(w) = self.worker_mut(pool, worker) {
                    w.current = Some(*id);
                    w.time.start_task(t);
                    if w.spans.len() == WORKER_SPANS {
                        w.spans.pop_front();
                    }
                    w.spans.push_back((t, None, *id));
                    name = w.name.clone();
                }
                let r = &mut self.rows[i];
                r.started = Some(t);
                r.worker = Some(name);
                r.pid = *pid;
                return Change::State;
            }
            EventKind::Done { id, result, .. } => {
                let Some(i) = self.index_of(*id).filter(|&i| !self.rows[i].state.is_final()) else {
                    return Change::Nothing;
                };
                if self.rows[i].attempts.as_deref().is_some_and(|a| a.attempt > 1) {
                    self.summary.retried_ok += 1;
                }
                if !self.map_done.is_empty() {
                    let name = Arc::clone(&self.rows[i].name);
                    let map = name.strip_suffix(']').and_then(|n| n.rsplit_once('[')).map(|(m, _)| m);
                    if let Some(count) = map.and_then(|m| self.map_done.get_mut(m)) {
                        count.1 += 1;
                    }
                }
                if self.keep == Keep::All {
                    self.rows[i].result = Some(result.clone());
                }
                return self.finish_row(i, t, RowState::Done);
            }
            EventKind::Exception { id, error, task, .. } => {
                if self.row(*id).is_none_or(|r| r.state.is_final()) {
                    return Change::Nothing;
                }
                let row_error = match self.broken.remove(id) {
                    Some(Broken::Victim(cycle)) if error.kind == futuretop_engine::ErrorKind::DeadlockError => {
                        RowError::BrokeDeadlock { error: error.clone(), cycle }
                    }
                    Some(Broken::Waited(on)) if error.kind == futuretop_engine::ErrorKind::DeadlockError => {
                        RowError::WaitedOnBroken { error: error.clone(), on }
                    }
                    _ => RowError::Exception(error.clone()),
                };
                if let Some(r) = self.row_mut(*id) {
                    r.error = Some(Box::new(row_error));
                }
                self.push_log(|| format!("{task} failed: {}: {}", error.kind, error.message));
                return self.finish(*id, t, RowState::Failed);
            }
            EventKind::Cancelled { id, reason, task, .. } => {
                if self.row(*id).is_none_or(|r| r.state.is_final()) {
                    return Change::Nothing;
                }
                if let (Some(r), Some(reason)) = (self.row_mut(*id), reason) {
                    r.error = Some(Box::new(RowError::Cancelled(reason.clone())));
                }
                if let Some(r) = reason {
                    self.push_log(|| format!("{task} cancelled: {r}"));
                }
                return self.finish(*id, t, RowState::Cancelled);
            }
            EventKind::Wait { id, on_id, on, timeout, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    if r.waits_on.len() < WAITS_SHOWN {
                        r.waits_on.push(*on_id);
                    }
                }
                let limit = timeout.map_or_else(String::new, |s| format!(" (timeout {s:.1} s)"));
                self.note(*id, t, || format!("waits on {on}{limit}"));
                if let Some(w) = self.worker_of(*id) {
                    w.time.wait(t);
                }
            }
            EventKind::WaitEnd { id, on_id, on, outcome, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    if let Some(i) = r.waits_on.iter().position(|x| x == on_id) {
                        r.waits_on.remove(i);
                    }
                }
                self.note(*id, t, || format!("wait on {on} ended: {}", wait_outcome(*outcome)));
                if let Some(w) = self.worker_of(*id) {
                    w.time.wait_end(t);
                }
                if *outcome == WaitOutcome::Interrupted {
                    self.note_broken(*id);
                }
            }
            EventKind::WorkerStarted { pool, worker, pid } => {
                if let Some(w) = self.worker_mut(pool, worker) {
                    w.alive = true;
                    w.pid = *pid;
                } else {
                    // Workers' places change below.
                    self.recent_workers = Default::default();
                    self.pool_mut(pool);
                    let pi = self.pool_index.get(&**pool).copied().unwrap_or(0);
                    let p = &mut self.pools[pi];
                    let view = WorkerView {
                        name: worker.clone(),
                        pid: *pid,
                        current: None,
                        alive: true,
                        spans: VecDeque::new(),
                        cpu: None,
                        mem: None,
                        load: None,
                        time: WorkerTime { since: t, ..WorkerTime::default() },
                    };
                    let index = self.worker_index.entry(pool.clone()).or_default();
                    if p.workers.len() >= WORKER_VIEWS {
                        // Full: the place of the worker that died longest ago, if any.
                        let place = std::iter::from_fn(|| p.dead.pop_front())
                            .find(|&w| p.workers.get(w).is_some_and(|v| !v.alive));
                        match place {
                            Some(w) => {
                                index.remove(&*p.workers[w].name);
                                index.insert(worker.clone(), w);
                                let (busy, blocked, idle) = p.workers[w].time.split(t);
                                p.retired = (p.retired.0 + busy, p.retired.1 + blocked, p.retired.2 + idle);
                                p.workers[w] = view;
                            }
                            None => p.hidden_workers += 1,
                        }
                    } else {
                        let at = p.workers.partition_point(|w| worker_order(&w.name) < worker_order(worker));
                        p.workers.insert(at, view);
                        // The workers after it moved one place on (usually none: workers
                        // start in name order).
                        for (w, view) in p.workers.iter().enumerate().skip(at) {
                            index.insert(view.name.clone(), w);
                        }
                        if at + 1 < p.workers.len() {
                            for d in &mut p.dead {
                                *d += usize::from(*d >= at);
                            }
                        }
                    }
                }
            }
            EventKind::WorkerExited { pool, worker, status, .. } => {
                let (pool, worker) = (pool.clone(), worker.clone());
                if let Some(w) = self.worker_mut(&pool, &worker) {
                    if w.alive {
                        w.alive = false;
                        w.current = None;
                        w.time.end_task(t);
                        w.time.until = Some(t);
                        let place = self.worker_index.get(&*pool).and_then(|i| i.get(&*worker)).copied();
                        if let (Some(&p), Some(place)) = (self.pool_index.get(&*pool), place) {
                            let dead = &mut self.pools[p].dead;
                            if dead.len() >= WORKER_VIEWS {
                                dead.pop_front();
                            }
                            dead.push_back(place);
                        }
                    }
                }
                if status != "ok" && status != "exited with status 0" {
                    self.push_log(|| format!("worker {worker} of {pool}: {status}"));
                }
            }
            EventKind::WorkerLoad { pool, worker, load } => {
                let (pool, worker) = (pool.clone(), worker.clone());
                if let Some(w) = self.worker_mut(&pool, &worker) {
                    w.load = Some(load.clone());
                }
            }
            EventKind::PoolBroken { pool, error } => {
                self.pool_mut(pool).broken = Some(error.clone());
                self.push_log(|| format!("pool {pool} broke: {error}"));
            }
            EventKind::Output { task, line, stream, dropped } => {
                if let Some(&i) = self.by_name.get(&**task) {
                    self.rows[i].output.get_or_insert_default().take(*stream, line, *dropped);
                }
                self.push_log(|| format!("{task}: {line}"));
            }
            EventKind::Deadlock { kind, tasks, ids, message, victim_id, expires_in, .. } => {
                if self.deadlocks.len() == DEADLOCKS_KEPT {
                    self.deadlocks.remove(0);
                }
                self.last_deadlock = Some(tasks.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(" → "));
                self.deadlocks.push(DeadlockView {
                    kind: *kind,
                    tasks: tasks.clone(),
                    ids: ids.clone(),
                    message: message.clone(),
                    victim_id: *victim_id,
                    expires_at: expires_in.map(|s| t + s),
                });
                if self.summary.deadlocks.len() < DEADLOCKS_KEPT {
                    self.summary.deadlocks.push(message.clone());
                } else {
                    self.summary.more_deadlocks += 1;
                }
                self.push_log(|| format!("deadlock: {message}"));
            }
            EventKind::Retry { task, id, attempt, attempts, delay } => {
                return self.retry(task, *id, (*attempt, *attempts), t + delay);
            }
            EventKind::Resubmit { task, attempt, attempts, revived } => {
                self.resubmitted(task, (*attempt, *attempts), revived, t);
                return Change::State;
            }
            EventKind::Client { client, action, target } => {
                let (client, action) = (client.clone(), action.as_str());
                let target = target.as_deref().map(|t| format!(" {t}")).unwrap_or_default();
                self.push_log(|| format!("client {client}: {action}{target}"));
            }
            EventKind::PoolRestarted { pool } => {
                let p = self.pool_mut(pool);
                p.broken = None;
                let name = p.name.clone();
                self.push_log(|| format!("pool {name} restarted"));
            }
            EventKind::Stall { after, running, pending } => {
                self.stall = Some(StallView {
                    at: t,
                    after: *after,
                    running: running.iter().map(|r| (r.id, r.task.clone(), r.worker.clone(), r.running_for)).collect(),
                    pending: *pending,
                });
                self.push_log(|| format!("stalled: no future changed state for {after:.0}s"));
            }
            EventKind::DeadlockResolved { tasks, how } => {
                self.deadlocks.retain(|d| &d.tasks != tasks);
                self.push_log(|| format!("deadlock of {} resolved ({how})", tasks.join(", ")));
            }
            EventKind::System { cpu, mem_used, mem_total, procs } => {
                let procs = procs.iter().map(|p| (p.pid, (p.cpu, p.mem))).collect();
                self.apply_sys(SysStats { cpu: *cpu, mem_used: *mem_used, mem_total: *mem_total, procs });
            }
            EventKind::RunFinished { exit_code, .. } => {
                self.finished = Some(*exit_code);
                // The clock stops at the last event, even if a live tick ran past it.
                self.now = t;
                if t > 0.0 {
                    self.rate = self.counts().finished() as f64 / t;
                }
                self.push_log(|| format!("run finished, exit code {exit_code}"));
            }
        }
        Change::Nothing
    }

    /// Futures per state, and in all. The plan's futures not seen yet (waiting for their
    /// dependencies, or for their pool's window) count as pending.
    pub fn counts(&self) -> StateCounts {
        let unseen = self.planned.saturating_sub(self.seen_planned);
        let mut by_state = self.state_counts;
        by_state[RowState::Pending as usize] += unseen;
        StateCounts { by_state, total: self.seen + unseen }
    }

    /// Seconds left at the current rate, if it can be told.
    pub fn eta(&self) -> Option<f64> {
        let c = self.counts();
        let left = c.total.saturating_sub(c.finished());
        (self.rate > 0.0 && left > 0 && self.finished.is_none()).then(|| left as f64 / self.rate)
    }

    /// Moves the run clock on to `t` seconds while the run is live (a live run's tick),
    /// so that the elapsed time, running tasks' durations and a deadlock's countdown
    /// advance between events. The clock never goes back, and stops when the run has
    /// finished (its last event sets the final time). Says whether it moved.
    pub fn advance_clock(&mut self, t: f64) -> bool {
        if self.finished.is_none() && t > self.now {
            self.now = t;
            return true;
        }
        false
    }

    /// Takes every sample due at or before run time `t`. Each sample stands for its
    /// moment on the run clock and sees exactly the events stamped before it, so a replay
    /// draws the same sparklines and rate as the live run, whatever the frame timing.
    pub fn sample_until(&mut self, t: f64) {
        if self.finished.is_some() || !t.is_finite() {
            return;
        }
        let due = (t / SAMPLE_PERIOD).floor();
        if due <= self.samples as f64 {
            return;
        }
        // A long quiet stretch (or a hostile log): only the samples still on screen matter.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // `due` > samples >= 0, capped
        let due = due.min(1e15) as u64;
        let history = HISTORY as u64;
        if due - self.samples > 2 * history {
            self.samples = due - 2 * history;
            // Nothing finished in the stretch skipped.
            let done = self.counts().finished();
            self.done_history = std::iter::repeat_n(done, RATE_WINDOW).collect();
        }
        while self.samples < due {
            self.samples += 1;
            self.sample();
        }
    }

    /// Samples the sparklines and the rate once.
    fn sample(&mut self) {
        for p in &mut self.pools {
            let busy = p.workers.iter().filter(|w| w.current.is_some()).count() as u64;
            if p.busy_history.len() == HISTORY {
                p.busy_history.pop_front();
            }
            p.busy_history.push_back(busy);
        }
        // Futures finished over the last RATE_WINDOW samples, or since the start while the
        // run is younger: a rate from the first finished futures on, steady when they
        // finish seldom.
        let done = self.counts().finished();
        let (before, span) = if self.done_history.len() == RATE_WINDOW {
            (self.done_history.pop_front().unwrap_or(0), RATE_WINDOW)
        } else {
            (0, self.done_history.len() + 1)
        };
        self.done_history.push_back(done);
        self.rate = done.saturating_sub(before) as f64 / (span as f64 * SAMPLE_PERIOD);
    }

    /// Takes in system figures.
    pub fn apply_sys(&mut self, s: SysStats) {
        for p in &mut self.pools {
            for w in &mut p.workers {
                if let Some((cpu, mem)) = w.pid.and_then(|pid| s.procs.get(&pid)) {
                    w.cpu = Some(*cpu);
                    w.mem = Some(*mem);
                }
            }
        }
        self.sys = s;
    }

    /// Futures that wait on `id` now.
    pub fn waited_by(&self, id: u64) -> Vec<&Row> {
        self.rows.iter().filter(|r| r.waits_on.contains(&id)).collect()
    }

    /// The summary of the run: counts per state, every failure with its message (the
    /// first 20), cancellations with a reason, the slowest futures, the deadlocks, and
    /// `exit_code`.
    /// Names and messages are shown with their control characters escaped
    /// ([`crate::text::visible`]): one line each, whatever they hold.
    pub fn summary(&self, exit_code: i32) -> String {
        self.summary_with_log(exit_code, None)
    }

    /// [`RunModel::summary`], with the event log's path before the exit code when the
    /// run wrote one (`event log: run.jsonl`).
    pub fn summary_with_log(&self, exit_code: i32, log: Option<&std::path::Path>) -> String {
        use crate::text::visible;
        let mut out = format!("{} in {:.2}s\n", self.counts().sentence(), self.now);
        if self.summary.retries > 0 {
            let ok = self.summary.retried_ok;
            out.push_str(&format!(
                "retries: {} ({ok} {} succeeded only after a retry)\n",
                self.summary.retries,
                if ok == 1 { "task" } else { "tasks" }
            ));
        }
        let mut failures: Vec<&Named> = self.summary.failures.iter().collect();
        failures.sort_by_key(|f| f.order);
        if !failures.is_empty() {
            out.push_str("failures:\n");
            for f in failures.iter().take(20) {
                out.push_str(&format!("  {}: {}\n", visible(&f.name), visible(&f.what)));
            }
            if failures.len() > 20 {
                out.push_str(&format!("  ... and {} more\n", failures.len() - 20));
            }
        }
        let mut cancelled: Vec<&Named> = self.summary.cancelled.iter().collect();
        cancelled.sort_by_key(|f| f.order);
        if !cancelled.is_empty() {
            out.push_str("cancelled:\n");
            for f in cancelled.iter().take(10) {
                out.push_str(&format!("  {}: {}\n", visible(&f.name), visible(&f.what)));
            }
        }
        if !self.summary.slowest.is_empty() {
            out.push_str("slowest:\n");
            for (d, _, name) in &self.summary.slowest {
                out.push_str(&format!("  {d:>8.3}s  {}\n", visible(name)));
            }
        }
        let shares: Vec<String> = self
            .pools
            .iter()
            .filter_map(|p| {
                let (busy, blocked, idle) = self.pool_time(p);
                let all = busy + blocked + idle;
                (all > 0.0).then(|| {
                    let pct = |x: f64| x / all * 100.0;
                    format!(
                        "  {}: busy {:.0}%, blocked {:.0}%, idle {:.0}%\n",
                        visible(&p.name),
                        pct(busy),
                        pct(blocked),
                        pct(idle)
                    )
                })
            })
            .collect();
        if !shares.is_empty() {
            out.push_str("worker time:\n");
            for s in shares {
                out.push_str(&s);
            }
        }
        for d in &self.summary.deadlocks {
            out.push_str(&format!("deadlock: {}\n", visible(d)));
        }
        if self.summary.futures_not_read > 0 {
            out.push_str(&format!(
                "{} futures past the first {} were not read (no run has more)\n",
                self.summary.futures_not_read,
                crate::config::MAX_FUTURES
            ));
        }
        if self.summary.more_deadlocks > 0 {
            out.push_str(&format!("... and {} more deadlocks\n", self.summary.more_deadlocks));
        }
        if let Some(cycle) = self.stopped_by_deadlock() {
            out.push_str(&format!("stopped: deadlock {} (--on-deadlock fail)\n", visible(&cycle)));
        }
        if let Some(log) = log {
            out.push_str(&format!("event log: {}\n", visible(&log.display().to_string())));
        }
        out.push_str(&format!("exit code {exit_code}\n"));
        out
    }
}

/// How a wait ended, in words (`timed out`).
fn wait_outcome(o: WaitOutcome) -> &'static str {
    match o {
        WaitOutcome::Completed => "completed",
        WaitOutcome::TimedOut => "timed out",
        WaitOutcome::Interrupted => "interrupted",
        WaitOutcome::Killed => "killed",
    }
}

/// Orders workers `io-2` before `io-10`: by name, then by the number after the last `-`.
fn worker_order(name: &str) -> (&str, u64) {
    match name.rsplit_once('-') {
        Some((base, n)) => (base, n.parse().unwrap_or(u64::MAX)),
        None => (name, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ErrorInfo;
    use futuretop_engine::{ErrorKind, Stream};

    fn ev(t: f64, kind: EventKind) -> Event {
        Event { seq: 0, t, kind }
    }

    fn pending(id: u64, name: &str) -> Event {
        ev(0.1, EventKind::Pending { attempt: None, task: name.into(), id, pool: "p".into() })
    }

    fn running(id: u64, name: &str) -> Event {
        ev(0.2, EventKind::Running { task: name.into(), id, pool: "p".into(), worker: "p-1".into(), pid: None })
    }

    fn done(id: u64, name: &str) -> Event {
        ev(0.3, EventKind::Done { task: name.into(), id, pool: "p".into(), result: Value::Null })
    }

    fn failed(id: u64, name: &str) -> Event {
        let error = ErrorInfo { kind: ErrorKind::TaskError, message: "boom".into() };
        ev(0.4, EventKind::Exception { task: name.into(), id, pool: "p".into(), error })
    }

    fn retry(id: u64, name: &str, attempt: u32, delay: f64) -> Event {
        ev(0.5, EventKind::Retry { task: name.into(), id, attempt, attempts: 3, delay })
    }

    fn attempt(id: u64, name: &str, n: u32) -> Event {
        ev(2.5, EventKind::Pending { attempt: Some(n), task: name.into(), id, pool: "p".into() })
    }

    /// A retried task stays one row: pending again (not failed) while its retry waits,
    /// with the attempt and the countdown; the next attempt's future takes the row over;
    /// the summary counts the retry and the success after it, and names no failure.
    #[test]
    fn a_retried_task_is_one_row_that_counts_once() {
        let mut m = RunModel::new(Keep::All);
        m.apply(&pending(1, "flaky"));
        m.apply(&running(1, "flaky"));
        m.apply(&failed(1, "flaky"));
        assert_eq!(m.counts().of(RowState::Failed), 1);
        assert_eq!(m.apply(&retry(1, "flaky", 1, 2.0)), Change::State);
        let c = m.counts();
        assert_eq!((c.of(RowState::Failed), c.of(RowState::Pending), c.total), (0, 1, 1));
        let r = m.row(1).expect("the row");
        assert_eq!(r.state, RowState::Pending);
        assert_eq!(r.attempt_label().as_deref(), Some("attempt 2/3"));
        assert_eq!(r.retry_in(1.5), Some(1.0), "due at 0.5 + 2.0");
        m.apply(&attempt(7, "flaky", 2));
        assert_eq!(m.rows.len(), 1, "the second attempt takes the row over");
        let r = m.row(7).expect("the row, by the new id");
        assert_eq!((r.id, r.retry_in(3.0), r.attempt_label().as_deref()), (7, None, Some("attempt 2/3")));
        assert_eq!(r.attempts.as_deref().map(|a| a.earlier.len()), Some(1), "the first attempt is kept");
        assert_eq!(m.counts().of(RowState::Pending), 1, "still one pending future");
        m.apply(&running(7, "flaky"));
        m.apply(&done(7, "flaky"));
        let c = m.counts();
        assert_eq!((c.of(RowState::Done), c.finished(), c.total), (1, 1, 1));
        let summary = m.summary(0);
        assert!(summary.contains("retries: 1 (1 task succeeded only after a retry)"), "{summary}");
        assert!(!summary.contains("failures:"), "{summary}");
    }

    /// The headless model lets finished rows go: a retry moves the counts alone, and the
    /// next attempt is not counted twice.
    #[test]
    fn a_retry_counts_once_in_a_headless_model() {
        let mut m = RunModel::new(Keep::Unfinished);
        m.apply(&pending(1, "flaky"));
        m.apply(&running(1, "flaky"));
        m.apply(&failed(1, "flaky"));
        m.apply(&retry(1, "flaky", 1, 0.0));
        m.apply(&attempt(2, "flaky", 2));
        let c = m.counts();
        assert_eq!((c.of(RowState::Pending), c.of(RowState::Failed), c.total), (1, 0, 1));
        m.apply(&running(2, "flaky"));
        m.apply(&failed(2, "flaky"));
        let c = m.counts();
        assert_eq!((c.of(RowState::Failed), c.finished(), c.total), (1, 1, 1));
        let summary = m.summary(1);
        assert!(summary.contains("retries: 1 (0 tasks succeeded only after a retry)"), "{summary}");
        assert_eq!(summary.matches("flaky: TaskError: boom").count(), 1, "{summary}");
    }

    /// The rate shows from the first finished futures on (the run's average while it is
    /// young), then over the last 30 s: a burst long ago no longer counts.
    #[test]
    fn the_rate_starts_with_the_first_finished_futures_and_looks_back_30_s() {
        let mut m = RunModel::new(Keep::All);
        for id in 1..=4 {
            m.apply(&pending(id, &format!("t{id}")));
            m.apply(&running(id, &format!("t{id}")));
        }
        m.apply(&ev(0.9, EventKind::Done { task: "t1".into(), id: 1, pool: "p".into(), result: Value::Null }));
        m.sample_until(2.0);
        assert!((m.rate - 0.5).abs() < 1e-9, "one future in the first 2 s: {}", m.rate);
        m.sample_until(40.0);
        assert!(m.rate.abs() < 1e-9, "nothing finished in the last 30 s: {}", m.rate);
        m.apply(&ev(40.2, EventKind::Done { task: "t2".into(), id: 2, pool: "p".into(), result: Value::Null }));
        m.sample_until(41.0);
        assert!((m.rate - 1.0 / 30.0).abs() < 1e-9, "{}", m.rate);
    }

    /// A worker's time splits into busy, blocked in a wait, and idle, from the events'
    /// times; the summary gives each pool's shares.
    #[test]
    fn worker_time_splits_into_busy_blocked_and_idle() {
        let mut m = RunModel::new(Keep::All);
        m.apply(&ev(0.0, EventKind::WorkerStarted { pool: "p".into(), worker: "p-1".into(), pid: None }));
        m.apply(&ev(0.5, EventKind::Pending { attempt: None, task: "a".into(), id: 1, pool: "p".into() }));
        m.apply(&ev(
            1.0,
            EventKind::Running { task: "a".into(), id: 1, pool: "p".into(), worker: "p-1".into(), pid: None },
        ));
        m.apply(&ev(2.0, EventKind::Wait { task: "a".into(), on: "b".into(), id: 1, on_id: 2, timeout: None }));
        m.apply(&ev(
            4.0,
            EventKind::WaitEnd { task: "a".into(), on: "b".into(), id: 1, on_id: 2, outcome: WaitOutcome::Completed },
        ));
        m.apply(&ev(5.0, EventKind::Done { task: "a".into(), id: 1, pool: "p".into(), result: Value::Null }));
        m.advance_clock(10.0);
        let (busy, blocked, idle) = m.pools[0].workers[0].time.split(m.now);
        assert!(
            (busy - 2.0).abs() < 1e-9 && (blocked - 2.0).abs() < 1e-9 && (idle - 6.0).abs() < 1e-9,
            "{busy} {blocked} {idle}"
        );
        assert!(m.summary(0).contains("worker time:\n  p: busy 20%, blocked 20%, idle 60%\n"), "{}", m.summary(0));
    }

    /// After a break, the chosen waiter and the one that only waited on it read apart,
    /// on the row, in the timeline and in the summary.
    #[test]
    fn a_broken_deadlock_tells_the_chosen_waiter_from_the_others() {
        let mut m = RunModel::new(Keep::All);
        for (id, name) in [(1, "a"), (2, "b")] {
            m.apply(&pending(id, name));
            m.apply(&running(id, name));
        }
        m.apply(&ev(
            0.5,
            EventKind::Deadlock {
                kind: DeadlockKind::Cycle,
                tasks: vec!["a".into(), "b".into()],
                pool: None,
                message: "'a' waits on 'b' and 'b' waits on 'a'".into(),
                ids: vec![1, 2],
                victim: Some("b".into()),
                victim_id: Some(2),
                expires_in: None,
            },
        ));
        let deadlock_error = ErrorInfo { kind: ErrorKind::DeadlockError, message: "this wait was chosen".into() };
        m.apply(&ev(
            0.6,
            EventKind::WaitEnd { task: "b".into(), on: "a".into(), id: 2, on_id: 1, outcome: WaitOutcome::Interrupted },
        ));
        for (id, name) in [(2, "b"), (1, "a")] {
            let error = deadlock_error.clone();
            m.apply(&ev(0.7, EventKind::Exception { task: name.into(), id, pool: "p".into(), error }));
        }
        let outcome = |id| m.row(id).map(Row::outcome).unwrap_or_default();
        assert_eq!(outcome(2), "DeadlockError (chosen to break 'a' → 'b')");
        assert_eq!(outcome(1), "failed because 'b', which it waited on, raised DeadlockError");
        let s = m.summary(1);
        assert!(s.contains("  b: DeadlockError (chosen to break 'a' → 'b')\n"), "{s}");
        assert!(s.contains("  a: failed because 'b', which it waited on, raised DeadlockError\n"), "{s}");
        assert!(!s.contains("stopped: deadlock"), "a break is not a stop: {s}");
        // Under --on-deadlock fail the run ends with exit code 3, and says why.
        m.apply(&ev(
            1.0,
            EventKind::RunFinished {
                counts: crate::events::Counts::default(),
                exit_code: crate::runner::EXIT_DEADLOCK,
            },
        ));
        assert_eq!(m.stopped_by_deadlock().as_deref(), Some("'a' → 'b'"));
        assert!(m.summary(3).contains("stopped: deadlock 'a' → 'b' (--on-deadlock fail)\nexit code 3\n"));
    }

    /// The plan's futures not yet handed to a pool (a windowed map's, a dependent's) count
    /// as pending; a `submit`'s inner futures count as seen, beside the plan's.
    #[test]
    fn futures_not_yet_submitted_count_as_pending() {
        let mut m = RunModel::new(Keep::Unfinished);
        m.apply(&ev(
            0.0,
            EventKind::RunStarted {
                version: 1,
                run: "r".into(),
                file: "f".into(),
                pools: vec![],
                tasks: 3,
                maps: Vec::new(),
                waiting: vec![],
            },
        ));
        assert_eq!((m.counts().of(RowState::Pending), m.counts().total), (3, 3));
        m.apply(&pending(1, "a"));
        m.apply(&pending(2, "a/pow"));
        m.apply(&done(1, "a"));
        let c = m.counts();
        assert_eq!((c.of(RowState::Pending), c.of(RowState::Done), c.total), (3, 1, 4));
        assert_eq!(c.sentence(), "4 futures: 1 done, 0 failed, 0 cancelled, 3 unfinished");
    }

    /// A monitor shows a map's items not yet handed to their pool as one row, `m[…]`,
    /// counted down as they are handed over and gone with the last; it is not a future,
    /// so the counts do not see it twice.
    #[test]
    fn a_maps_unsubmitted_items_are_one_row_until_the_last_is_handed_over() {
        let mut m = RunModel::new(Keep::All);
        let maps = vec![MapInfo { task: "m".into(), pool: "p".into(), items: 2, after: vec![] }];
        let started = EventKind::RunStarted {
            version: 1,
            run: "r".into(),
            file: "f".into(),
            pools: vec![],
            tasks: 3,
            maps,
            waiting: vec![],
        };
        assert_eq!(m.apply(&ev(0.0, started)), Change::Moved);
        assert_eq!((m.rows.len(), &*m.rows[0].name, m.rows[0].unsubmitted), (1, "m[…]", 2));
        assert_eq!(m.rows[0].outcome(), "2 not yet submitted");
        assert_eq!((m.counts().of(RowState::Pending), m.counts().total), (3, 3));
        m.apply(&pending(1, "m[0]"));
        m.apply(&pending(2, "x"));
        assert_eq!(m.rows[0].unsubmitted, 1);
        assert!(!m.take_rows_moved());
        m.apply(&pending(3, "m[1]"));
        assert!(m.take_rows_moved(), "the row went: the views' order is stale");
        let names: Vec<&str> = m.rows.iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["m[0]", "x", "m[1]"]);
        assert_eq!((m.index_of(1), m.index_of(3)), (Some(0), Some(2)));
        assert_eq!((m.counts().of(RowState::Pending), m.counts().total), (3, 3));
        // The headless reporter keeps no such row.
        let mut h = RunModel::new(Keep::Unfinished);
        let maps = vec![MapInfo { task: "m".into(), pool: "p".into(), items: 2, after: vec![] }];
        h.apply(&ev(
            0.0,
            EventKind::RunStarted {
                version: 1,
                run: "r".into(),
                file: "f".into(),
                pools: vec![],
                tasks: 2,
                maps,
                waiting: vec![],
            },
        ));
        assert!(h.rows.is_empty());
    }

    /// Why each unfinished future is where it is: its place in its pool's queue (exact
    /// when futures leave out of order), what a waiting task waits for and how much of it
    /// is done (a whole map counted item by item), the items not yet handed over, a
    /// retry's countdown, a broken pool; for a running one, computing or blocked.
    #[test]
    fn why_says_what_each_unfinished_future_waits_for() {
        let mut m = RunModel::new(Keep::All);
        let maps = vec![MapInfo { task: "m".into(), pool: "p".into(), items: 2, after: vec![] }];
        let waiting = vec![WaitingInfo { task: "z".into(), pool: "p".into(), after: vec!["a".into(), "m".into()] }];
        let started = EventKind::RunStarted {
            version: 1,
            run: "r".into(),
            file: "f".into(),
            pools: vec![],
            tasks: 6,
            maps,
            waiting,
        };
        m.apply(&ev(0.0, started));
        m.apply(&ev(0.0, EventKind::WorkerStarted { pool: "p".into(), worker: "p-1".into(), pid: None }));
        let why = |m: &RunModel, name: &str| m.why(m.row_named(name).expect(name)).unwrap_or_default();
        assert_eq!(why(&m, "z"), "after 'a' (0 of 2 done)");
        assert_eq!(m.why(&m.rows[0]).as_deref(), Some("2 not yet submitted (window)"));
        assert_eq!((m.counts().of(RowState::Pending), m.counts().total), (6, 6), "placeholders are not counted twice");
        for (id, name) in [(1, "a"), (2, "b"), (3, "m[0]"), (4, "m[1]")] {
            m.apply(&pending(id, name));
        }
        assert_eq!(why(&m, "m[1]"), "#4 in queue 'p'");
        m.apply(&running(2, "b"));
        assert_eq!(
            (why(&m, "a"), why(&m, "m[0]"), why(&m, "m[1]")),
            ("#1 in queue 'p'".into(), "#2 in queue 'p'".into(), "#3 in queue 'p'".into())
        );
        assert_eq!(why(&m, "b"), "computing");
        m.apply(&ev(0.3, EventKind::Wait { task: "b".into(), on: "a".into(), id: 2, on_id: 1, timeout: None }));
        m.advance_clock(2.3);
        assert_eq!(why(&m, "b"), "blocked on 'a' for 2.0 s");
        for (id, name) in [(1, "a"), (3, "m[0]")] {
            m.apply(&running(id, name));
            m.apply(&done(id, name));
        }
        assert_eq!(why(&m, "z"), "after 'm' (1 of 2 done)", "a whole map is done when its last item is");
        m.apply(&running(4, "m[1]"));
        m.apply(&done(4, "m[1]"));
        assert_eq!(why(&m, "z"), "not yet submitted (window)", "waits for nothing more: its future is about to come");
        m.apply(&pending(9, "z"));
        assert_eq!((m.row(9).map(|r| r.order), why(&m, "z")), (Some(4), "#1 in queue 'p'".into()));
        assert_eq!((m.counts().of(RowState::Pending), m.counts().total), (2, 6));
        m.apply(&failed(9, "z"));
        m.apply(&ev(0.5, EventKind::Retry { task: "z".into(), id: 9, attempt: 1, attempts: 3, delay: 4.0 }));
        m.advance_clock(2.5);
        assert_eq!(why(&m, "z"), "retry 2/3 in 2.0 s");
        m.apply(&ev(2.6, EventKind::PoolBroken { pool: "p".into(), error: "gone".into() }));
        m.apply(&ev(2.7, EventKind::Pending { attempt: Some(2), task: "z".into(), id: 10, pool: "p".into() }));
        assert_eq!(why(&m, "z"), "pool 'p' is broken");
    }

    #[test]
    fn unfinished_rows_are_let_go_and_the_others_stay_findable() {
        let mut m = RunModel::new(Keep::Unfinished);
        for (id, name) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
            assert_eq!(m.apply(&pending(id, name)), Change::Added(usize::try_from(id - 1).unwrap()));
        }
        // b goes: d takes its place, and is still found by its id.
        assert_eq!(m.apply(&done(2, "b")), Change::Moved);
        assert_eq!(m.rows.len(), 3);
        assert_eq!(m.row(4).map(|r| &*r.name), Some("d"));
        assert_eq!(m.index_of(4), Some(1));
        // The last row goes: nothing moves into its place.
        assert_eq!(m.apply(&failed(3, "c")), Change::Moved);
        assert_eq!(m.rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(m.apply(&running(4, "d")), Change::State);
        assert_eq!(m.row(4).map(|r| r.state), Some(RowState::Running));
        assert_eq!(m.apply(&done(4, "d")), Change::Moved);
        assert_eq!(m.apply(&done(1, "a")), Change::Moved);
        assert!(m.rows.is_empty() && m.index.is_empty());
        let c = m.counts();
        assert_eq!((c.total, c.of(RowState::Done), c.of(RowState::Failed)), (4, 3, 1));
        assert!(m.summary(1).contains("failures:\n  c: TaskError: boom\n"), "{}", m.summary(1));
    }

    #[test]
    fn a_second_end_changes_nothing_whatever_the_model_keeps() {
        for keep in [Keep::All, Keep::Unfinished] {
            let mut m = RunModel::new(keep);
            m.apply(&pending(1, "a"));
            m.apply(&done(1, "a"));
            assert_eq!(m.apply(&failed(1, "a")), Change::Nothing, "{keep:?}");
            assert_eq!(m.apply(&running(1, "a")), Change::Nothing, "{keep:?}");
            let c = m.counts();
            assert_eq!((c.of(RowState::Done), c.of(RowState::Failed)), (1, 0), "{keep:?}");
            assert!(!m.summary(0).contains("failures"), "{keep:?}");
        }
    }

    /// The last 50 lines of both streams, in the order they came, and a count of the
    /// rest: those that left the ring and those the log never held.
    #[test]
    fn output_keeps_the_last_lines_of_both_streams_and_counts_the_earlier_ones() {
        let mut m = RunModel::new(Keep::All);
        m.apply(&pending(1, "cmd"));
        let out =
            |line: String, stream, dropped| ev(0.5, EventKind::Output { task: "cmd".into(), stream, line, dropped });
        for k in 1..=200 {
            m.apply(&out(format!("{k}"), Stream::Stdout, None));
        }
        m.apply(&out("[750 more lines not shown]".into(), Stream::Stdout, Some(750)));
        for k in 951..=1000 {
            let stream = if k == 1000 { Stream::Stderr } else { Stream::Stdout };
            m.apply(&out(format!("{k}"), stream, None));
        }
        let tail = m.row(1).and_then(|r| r.output.as_deref()).expect("output");
        assert_eq!(tail.lines.len(), OUTPUT_TAIL);
        assert_eq!(tail.lines.front().map(|(_, l)| l.as_str()), Some("951"));
        assert_eq!(tail.lines.back(), Some(&(Stream::Stderr, "1000".to_owned())));
        assert_eq!(tail.earlier, 950, "200 gone from the ring, 750 never published");
    }

    #[test]
    fn output_goes_to_the_latest_future_of_its_task_and_only_a_monitor_keeps_it() {
        let line = |task: &str| {
            ev(0.5, EventKind::Output { task: task.into(), stream: Stream::Stdout, line: "hi".into(), dropped: None })
        };
        let mut m = RunModel::new(Keep::All);
        m.apply(&pending(1, "t/pow"));
        m.apply(&pending(2, "t/pow"));
        m.apply(&line("t/pow"));
        assert!(m.row(1).is_some_and(|r| r.output.is_none()));
        assert_eq!(m.row(2).and_then(|r| r.output.as_ref()).map(|o| o.lines.len()), Some(1));
        assert_eq!(m.log.back().map(String::as_str), Some("t/pow: hi"));
        // The headless model keeps no timeline, log or output.
        let mut h = RunModel::new(Keep::Unfinished);
        h.apply(&pending(1, "t/pow"));
        h.apply(&line("t/pow"));
        assert!(h.row(1).is_some_and(|r| r.output.is_none() && r.events.is_empty()));
        assert!(h.log.is_empty());
    }

    /// A hostile or merely long log cannot grow the model past its caps: restarting
    /// workers take the places of dead ones (each start in constant time), waits and
    /// deadlocks are capped, the rest counted.
    #[test]
    fn workers_waits_and_deadlocks_stay_within_their_caps() {
        let start = |w: usize| {
            ev(0.1, EventKind::WorkerStarted { pool: "p".into(), worker: format!("p-{w}").into(), pid: None })
        };
        let exit = |w: usize| {
            ev(
                0.2,
                EventKind::WorkerExited {
                    pool: "p".into(),
                    worker: format!("p-{w}").into(),
                    pid: None,
                    status: "ok".into(),
                },
            )
        };
        let mut m = RunModel::new(Keep::All);
        // A worker a task, 20,000 of them, each dying after its task.
        for w in 0..20_000 {
            m.apply(&start(w));
            m.apply(&exit(w));
        }
        let pool = &m.pools[0];
        assert_eq!(pool.workers.len(), WORKER_VIEWS);
        assert_eq!(pool.hidden_workers, 0, "a dead worker's place is taken");
        assert!(pool.workers.iter().any(|w| &*w.name == "p-19999"), "the latest worker is shown");
        // Full of live workers: a new one is counted, not shown, and events for it are
        // ignored.
        let mut m = RunModel::new(Keep::All);
        for w in 0..WORKER_VIEWS + 3 {
            m.apply(&start(w));
        }
        assert_eq!((m.pools[0].workers.len(), m.pools[0].hidden_workers), (WORKER_VIEWS, 3));
        m.apply(&exit(WORKER_VIEWS + 1));
        m.apply(&exit(5));
        m.apply(&start(WORKER_VIEWS + 9));
        assert!(m.pools[0].workers.iter().any(|w| *w.name == format!("p-{}", WORKER_VIEWS + 9)));
        assert!(!m.pools[0].workers.iter().any(|w| &*w.name == "p-5"));
        // A future shown waiting on at most WAITS_SHOWN others.
        m.apply(&pending(1, "a"));
        for on in 0..1000 {
            m.apply(&ev(0.3, EventKind::Wait { task: "a".into(), id: 1, on: "b".into(), on_id: on, timeout: None }));
        }
        assert_eq!(m.row(1).map(|r| r.waits_on.len()), Some(WAITS_SHOWN));
        // Deadlocks: at most DEADLOCKS_KEPT standing and named; the rest counted.
        for k in 0..DEADLOCKS_KEPT + 7 {
            m.apply(&ev(
                0.4,
                EventKind::Deadlock {
                    kind: DeadlockKind::Cycle,
                    tasks: vec![format!("t{k}")],
                    pool: None,
                    message: format!("cycle {k}"),
                    ids: vec![],
                    victim: None,
                    victim_id: None,
                    expires_in: None,
                },
            ));
        }
        assert_eq!(m.deadlocks.len(), DEADLOCKS_KEPT);
        let summary = m.summary(1);
        assert!(summary.contains("deadlock: cycle 99\n") && !summary.contains("cycle 100\n"), "{summary}");
        assert!(summary.contains("... and 7 more deadlocks"), "{summary}");
    }
}
