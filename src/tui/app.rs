//! The monitor's state: a pure reducer over run events and user actions, tested without a terminal.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::config::PoolKind;
use crate::control::Control;
use crate::deadlock::DeadlockKind;
use crate::events::{CancelReason, ErrorInfo, Event, EventKind};
use futuretop_engine::WaitOutcome;

/// How a wait ended, in words (`timed out`).
fn wait_outcome(o: WaitOutcome) -> &'static str {
    match o {
        WaitOutcome::Completed => "completed",
        WaitOutcome::TimedOut => "timed out",
        WaitOutcome::Interrupted => "interrupted",
        WaitOutcome::Killed => "killed",
    }
}
use futuretop_engine::observe::FutureId;

/// Lines of command output kept per task.
const OUTPUT_TAIL: usize = 50;
/// Timeline entries kept per task (the detail view's event list).
const TASK_EVENTS: usize = 64;
/// Spans kept per worker for the timeline view.
const WORKER_SPANS: usize = 512;
/// Lines kept in the log.
const LOG_LINES: usize = 200;

/// A future's state as the monitor shows it.
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

/// One future in the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its id.
    pub id: u64,
    /// Its task name.
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Its state.
    pub state: RowState,
    /// The worker running it (or that ran it).
    pub worker: Option<String>,
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
    /// Its error, or why it was cancelled.
    pub error: Option<RowError>,
    /// Futures it is waiting on now.
    pub waits_on: Vec<u64>,
    /// Its own event timeline.
    pub events: VecDeque<(f64, String)>,
    /// The tail of its command output.
    pub output: VecDeque<String>,
}

/// Why a row did not end with a value.
#[derive(Debug, Clone, PartialEq)]
pub enum RowError {
    /// It ended with this exception.
    Exception(ErrorInfo),
    /// It was cancelled, for this reason.
    Cancelled(CancelReason),
}

impl std::fmt::Display for RowError {
    /// `TaskError: boom`, or `cancelled: dependency 'a' failed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exception(e) => write!(f, "{}: {}", e.kind, e.message),
            Self::Cancelled(r) => write!(f, "cancelled: {r}"),
        }
    }
}

impl Row {
    /// How long it ran (or has been running, at `now`).
    pub fn duration(&self, now: f64) -> Option<f64> {
        self.started.map(|s| self.ended.unwrap_or(now) - s)
    }

    /// The result or error, in one line.
    pub fn outcome(&self) -> String {
        match (&self.result, &self.error) {
            (_, Some(RowError::Cancelled(reason))) => reason.to_string(),
            (_, Some(error @ RowError::Exception(_))) => error.to_string(),
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
    pub name: String,
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

/// Which rows the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every future.
    #[default]
    All,
    /// Pending and running.
    Active,
    /// Failed only.
    Failed,
    /// Done only.
    Done,
    /// Cancelled only.
    Cancelled,
}

impl Filter {
    fn next(self) -> Self {
        match self {
            Self::All => Self::Active,
            Self::Active => Self::Failed,
            Self::Failed => Self::Done,
            Self::Done => Self::Cancelled,
            Self::Cancelled => Self::All,
        }
    }

    /// Its name in the footer.
    pub const fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
        }
    }

    fn keeps(self, s: RowState) -> bool {
        match self {
            Self::All => true,
            Self::Active => !s.is_final(),
            Self::Failed => s == RowState::Failed,
            Self::Done => s == RowState::Done,
            Self::Cancelled => s == RowState::Cancelled,
        }
    }
}

/// The table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Submission order.
    #[default]
    Submitted,
    /// By state (running first), then submission.
    State,
    /// Longest running first.
    Duration,
    /// By name.
    Name,
}

impl Sort {
    fn next(self) -> Self {
        match self {
            Self::Submitted => Self::State,
            Self::State => Self::Duration,
            Self::Duration => Self::Name,
            Self::Name => Self::Submitted,
        }
    }

    /// Its name in the footer.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::State => "state",
            Self::Duration => "duration",
            Self::Name => "name",
        }
    }
}

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The table and the workers panel.
    #[default]
    Main,
    /// One task's details.
    Detail(u64),
    /// The wait-for graph.
    Graph,
    /// Tasks per worker over time.
    Timeline,
}

/// Which pane has the focus (`Tab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The futures table.
    #[default]
    Tasks,
    /// The workers panel.
    Workers,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move the selection by this many rows.
    Move(i64),
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// A page up or down.
    Page(i64),
    /// Select the row at this position among the visible rows (a mouse click).
    Click(usize),
    /// Open the selected task's details.
    Open,
    /// Back to the main screen (or close an overlay).
    Back,
    /// Cancel the selected task (pending only).
    Cancel,
    /// Kill the selected task (running only).
    Kill,
    /// Cancel every pending task of the selected task's pool.
    CancelPool,
    /// Break the shown deadlock.
    Break,
    /// Start a search.
    SearchStart,
    /// A character typed into the search.
    SearchChar(char),
    /// Delete the last search character.
    SearchBackspace,
    /// End the search (keep the match selected).
    SearchEnd,
    /// Next state filter.
    CycleFilter,
    /// Next sort order.
    CycleSort,
    /// Switch panes.
    SwitchPane,
    /// The wait-for graph.
    Graph,
    /// The timeline.
    Timeline,
    /// Toggle the help overlay.
    Help,
    /// Quit (asks first while tasks run).
    Quit,
    /// Yes, at the quit question.
    Confirm,
    /// Stop the run now (Ctrl-C).
    Interrupt,
    /// A tick of the clock (for sparklines).
    Tick,
}

/// What the app asks its host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this to the runner.
    Control(Control),
    /// Leave the monitor.
    Exit,
}

/// System figures from the sampler.
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
const HISTORY: usize = 120;
/// How far behind the live clock a sample is taken when no event brings it: events
/// stamped before a sample's time have long arrived by then.
const SAMPLE_GRACE: f64 = 1.0;

/// The monitor's whole state.
#[derive(Debug, Default)]
pub struct App {
    /// The run's name.
    pub run: String,
    /// The task file.
    pub file: String,
    /// Tasks in the plan.
    pub planned: usize,
    /// The run clock (seconds, from the latest event or tick).
    pub now: f64,
    /// Every future, in submission order.
    pub rows: Vec<Row>,
    index: HashMap<u64, usize>,
    /// Pools and their workers.
    pub pools: Vec<PoolView>,
    /// Deadlocks being shown.
    pub deadlocks: Vec<DeadlockView>,
    /// Recent log lines.
    pub log: VecDeque<String>,
    /// A message for the user (the answer to their last key).
    pub status: Option<String>,
    /// The selected future's id (the selection follows it when rows reorder).
    pub selected: Option<u64>,
    /// The first visible row.
    pub offset: usize,
    /// Rows the table can show (set by the renderer's last layout).
    pub page: usize,
    /// The screen row of the table's first data row (set by the renderer; for clicks).
    pub table_top: u16,
    /// The screen columns the table spans, from its left edge (set by the renderer; 0
    /// when no table is shown, so clicks elsewhere select nothing).
    pub table_width: u16,
    /// The state filter.
    pub filter: Filter,
    /// The sort order.
    pub sort: Sort,
    /// The search text; `Some` while typing.
    pub search: Option<String>,
    /// The last search, applied as a filter on names.
    pub query: String,
    /// The screen.
    pub view: View,
    /// The focused pane.
    pub pane: Pane,
    /// Lines scrolled in the detail view.
    pub detail_scroll: u16,
    /// Lines scrolled in the workers panel (when it has the focus).
    pub workers_scroll: usize,
    /// The help overlay is up.
    pub help: bool,
    /// The quit question is up.
    pub confirm_quit: bool,
    /// The run's exit code, once it ended.
    pub finished: Option<i32>,
    /// Each plan task's arguments, by task name, when the host knows them.
    pub args: HashMap<String, Value>,
    /// A replay: commands are not sent.
    pub read_only: bool,
    /// System figures.
    pub sys: SysStats,
    /// Futures finished per second: a moving average over the samples while the run
    /// goes on, the whole run's average once it has finished.
    pub rate: f64,
    /// Samples taken: the next is due at `(samples + 1) * SAMPLE_PERIOD` of run time.
    samples: u64,
    /// Finished futures at the last sample.
    done_at_sample: usize,
    /// The visible rows' order, until something changes it.
    order: Option<Vec<usize>>,
    /// Futures per state, kept as events arrive (indexed by `RowState as usize`).
    state_counts: [usize; 5],
    /// The latest future of each task name (for output lines).
    by_name: HashMap<String, usize>,
}

impl App {
    /// An empty app.
    pub fn new() -> Self {
        Self { page: 10, ..Self::default() }
    }

    fn row_mut(&mut self, id: u64) -> Option<&mut Row> {
        self.index.get(&id).map(|&i| &mut self.rows[i])
    }

    /// The row of future `id`.
    pub fn row(&self, id: u64) -> Option<&Row> {
        self.index.get(&id).map(|&i| &self.rows[i])
    }

    fn worker_mut(&mut self, pool: &str, worker: &str) -> Option<&mut WorkerView> {
        self.pools.iter_mut().find(|p| p.name == pool)?.workers.iter_mut().find(|w| w.name == worker)
    }

    fn pool_mut(&mut self, pool: &str) -> &mut PoolView {
        if let Some(i) = self.pools.iter().position(|p| p.name == pool) {
            return &mut self.pools[i];
        }
        self.pools.push(PoolView {
            name: pool.to_owned(),
            kind: None,
            max_workers: 0,
            workers: Vec::new(),
            busy_history: VecDeque::new(),
            broken: None,
            queued: 0,
        });
        let last = self.pools.len() - 1;
        &mut self.pools[last]
    }

    fn push_log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn note(&mut self, id: u64, t: f64, what: String) {
        if let Some(r) = self.row_mut(id) {
            if r.events.len() == TASK_EVENTS {
                r.events.pop_front();
            }
            r.events.push_back((t, what));
        }
    }

    fn end_span(&mut self, id: u64, t: f64) {
        let Some(r) = self.row(id) else { return };
        let (pool, worker) = (r.pool.clone(), r.worker.clone());
        if let Some(w) = worker.and_then(|w| self.worker_mut(&pool, &w)) {
            if w.current == Some(id) {
                w.current = None;
            }
            if let Some(span) = w.spans.iter_mut().rev().find(|s| s.2 == id && s.1.is_none()) {
                span.1 = Some(t);
            }
        }
    }

    /// Moves row `i` to `state`, keeping the counters and the row order right.
    fn set_state(&mut self, i: usize, state: RowState) {
        let old = self.rows[i].state;
        if old == state {
            return;
        }
        self.rows[i].state = state;
        self.state_counts[old as usize] -= 1;
        self.state_counts[state as usize] += 1;
        if (old == RowState::Pending) != (state == RowState::Pending) {
            let pool = self.rows[i].pool.clone();
            let p = self.pool_mut(&pool);
            if state == RowState::Pending {
                p.queued += 1;
            } else {
                p.queued = p.queued.saturating_sub(1);
            }
        }
        // Submission order over every row does not change with states.
        if self.filter != Filter::All || matches!(self.sort, Sort::State | Sort::Duration) {
            self.order = None;
        }
    }

    fn finish(&mut self, id: u64, t: f64, state: RowState) {
        self.end_span(id, t);
        let Some(&i) = self.index.get(&id) else { return };
        let r = &mut self.rows[i];
        r.ended = Some(t);
        r.waits_on.clear();
        self.set_state(i, state);
    }

    /// Takes in one run event.
    #[allow(clippy::too_many_lines)] // one arm per event kind
    pub fn apply_event(&mut self, e: &Event) {
        // The samples due before this event see the state without it (live or replayed alike).
        self.sample_until(e.t);
        self.now = self.now.max(e.t);
        let t = e.t;
        match &e.kind {
            EventKind::RunStarted { run, file, pools, tasks, .. } => {
                self.run.clone_from(run);
                self.file.clone_from(file);
                self.planned = *tasks;
                // One row a planned future, without reallocating a large table mid-run.
                self.rows.reserve(*tasks);
                self.index.reserve(*tasks);
                for p in pools {
                    let v = self.pool_mut(&p.name);
                    v.kind = Some(p.kind);
                    v.max_workers = p.max_workers;
                }
            }
            EventKind::Pending { task, id, pool } => {
                if !self.index.contains_key(id) {
                    let i = self.rows.len();
                    self.index.insert(*id, i);
                    self.by_name.insert(task.clone(), i);
                    self.state_counts[RowState::Pending as usize] += 1;
                    self.pool_mut(pool).queued += 1;
                    self.rows.push(Row {
                        id: *id,
                        name: task.clone(),
                        pool: pool.clone(),
                        state: RowState::Pending,
                        worker: None,
                        pid: None,
                        submitted: t,
                        started: None,
                        ended: None,
                        result: None,
                        error: None,
                        waits_on: Vec::new(),
                        events: VecDeque::new(),
                        output: VecDeque::new(),
                    });
                    // A new row at the end: the plain order just grows.
                    match self.order.as_mut() {
                        Some(order)
                            if self.filter == Filter::All && self.sort == Sort::Submitted && self.query.is_empty() =>
                        {
                            order.push(i);
                        }
                        _ => self.order = None,
                    }
                }
                self.note(*id, t, format!("pending in pool {pool}"));
            }
            EventKind::Running { id, pool, worker, pid, .. } => {
                if let Some(&i) = self.index.get(id) {
                    let r = &mut self.rows[i];
                    r.started = Some(t);
                    r.worker = Some(worker.clone());
                    r.pid = *pid;
                    self.set_state(i, RowState::Running);
                }
                let (pool, worker) = (pool.clone(), worker.clone());
                if let Some(w) = self.worker_mut(&pool, &worker) {
                    w.current = Some(*id);
                    if w.spans.len() == WORKER_SPANS {
                        w.spans.pop_front();
                    }
                    w.spans.push_back((t, None, *id));
                }
                self.note(*id, t, format!("running on {worker}"));
            }
            EventKind::Done { id, result, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    r.result = Some(result.clone());
                }
                self.finish(*id, t, RowState::Done);
                self.note(*id, t, "done".into());
            }
            EventKind::Exception { id, error, task, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    r.error = Some(RowError::Exception(error.clone()));
                }
                self.finish(*id, t, RowState::Failed);
                self.note(*id, t, format!("{}: {}", error.kind, error.message));
                self.push_log(format!("{task} failed: {}: {}", error.kind, error.message));
            }
            EventKind::Cancelled { id, reason, task, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    if let Some(reason) = reason {
                        r.error = Some(RowError::Cancelled(reason.clone()));
                    }
                }
                self.finish(*id, t, RowState::Cancelled);
                self.note(*id, t, reason.clone().map_or_else(|| "cancelled".into(), |r| format!("cancelled: {r}")));
                if let Some(r) = reason {
                    self.push_log(format!("{task} cancelled: {r}"));
                }
            }
            EventKind::Wait { id, on_id, on, timeout, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    r.waits_on.push(*on_id);
                }
                let limit = timeout.map_or_else(String::new, |s| format!(" (timeout {s:.1} s)"));
                self.note(*id, t, format!("waits on {on}{limit}"));
            }
            EventKind::WaitEnd { id, on_id, on, outcome, .. } => {
                if let Some(r) = self.row_mut(*id) {
                    if let Some(i) = r.waits_on.iter().position(|x| x == on_id) {
                        r.waits_on.remove(i);
                    }
                }
                self.note(*id, t, format!("wait on {on} ended: {}", wait_outcome(*outcome)));
            }
            EventKind::WorkerStarted { pool, worker, pid } => {
                let p = self.pool_mut(pool);
                if let Some(w) = p.workers.iter_mut().find(|w| &w.name == worker) {
                    w.alive = true;
                    w.pid = *pid;
                } else {
                    let at = p.workers.partition_point(|w| worker_order(&w.name) < worker_order(worker));
                    p.workers.insert(
                        at,
                        WorkerView {
                            name: worker.clone(),
                            pid: *pid,
                            current: None,
                            alive: true,
                            spans: VecDeque::new(),
                            cpu: None,
                            mem: None,
                            load: None,
                        },
                    );
                }
            }
            EventKind::WorkerExited { pool, worker, status, .. } => {
                let (pool, worker) = (pool.clone(), worker.clone());
                if let Some(w) = self.worker_mut(&pool, &worker) {
                    w.alive = false;
                    w.current = None;
                }
                if status != "ok" && status != "exited with status 0" {
                    self.push_log(format!("worker {worker} of {pool}: {status}"));
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
                self.push_log(format!("pool {pool} broke: {error}"));
            }
            EventKind::Output { task, line, .. } => {
                if let Some(&i) = self.by_name.get(task) {
                    let r = &mut self.rows[i];
                    if r.output.len() == OUTPUT_TAIL {
                        r.output.pop_front();
                    }
                    r.output.push_back(line.clone());
                }
                self.push_log(format!("{task}: {line}"));
            }
            EventKind::Deadlock { kind, tasks, ids, message, victim_id, expires_in, .. } => {
                self.deadlocks.push(DeadlockView {
                    kind: *kind,
                    tasks: tasks.clone(),
                    ids: ids.clone(),
                    message: message.clone(),
                    victim_id: *victim_id,
                    expires_at: expires_in.map(|s| t + s),
                });
                self.push_log(format!("deadlock: {message}"));
            }
            EventKind::DeadlockResolved { tasks, how } => {
                self.deadlocks.retain(|d| &d.tasks != tasks);
                self.push_log(format!("deadlock of {} resolved ({how})", tasks.join(", ")));
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
                    self.rate = self.finished_count() as f64 / t;
                }
                self.push_log(format!("run finished, exit code {exit_code}"));
            }
        }
    }

    /// Counts per state.
    pub fn counts(&self) -> [(RowState, usize); 5] {
        let c = self.state_counts;
        [
            (RowState::Pending, c[0]),
            (RowState::Running, c[1]),
            (RowState::Done, c[2]),
            (RowState::Failed, c[3]),
            (RowState::Cancelled, c[4]),
        ]
    }

    /// Futures in all (the plan's, or more with inner submits).
    pub fn total(&self) -> usize {
        self.rows.len().max(self.planned)
    }

    /// Futures in a final state.
    pub fn finished_count(&self) -> usize {
        let c = self.state_counts;
        c[RowState::Done as usize] + c[RowState::Failed as usize] + c[RowState::Cancelled as usize]
    }

    /// Seconds left at the current rate, if it can be told.
    pub fn eta(&self) -> Option<f64> {
        let left = self.total().saturating_sub(self.finished_count());
        (self.rate > 0.0 && left > 0 && self.finished.is_none()).then(|| left as f64 / self.rate)
    }

    /// The rows the table shows, in order (indices into `rows`).
    pub fn visible(&mut self) -> &[usize] {
        if self.order.is_none() {
            let q = self.query.to_lowercase();
            let mut v: Vec<usize> = (0..self.rows.len())
                .filter(|&i| {
                    let r = &self.rows[i];
                    self.filter.keeps(r.state) && (q.is_empty() || r.name.to_lowercase().contains(&q))
                })
                .collect();
            let now = self.now;
            match self.sort {
                Sort::Submitted => {}
                Sort::State => v.sort_by_key(|&i| {
                    let s = self.rows[i].state;
                    (
                        match s {
                            RowState::Running => 0,
                            RowState::Pending => 1,
                            RowState::Failed => 2,
                            RowState::Cancelled => 3,
                            RowState::Done => 4,
                        },
                        i,
                    )
                }),
                Sort::Duration => {
                    v.sort_by(|&a, &b| {
                        let da = self.rows[a].duration(now).unwrap_or(-1.0);
                        let db = self.rows[b].duration(now).unwrap_or(-1.0);
                        db.total_cmp(&da).then(a.cmp(&b))
                    });
                }
                Sort::Name => v.sort_by(|&a, &b| self.rows[a].name.cmp(&self.rows[b].name).then(a.cmp(&b))),
            }
            self.order = Some(v);
        }
        self.order.as_deref().unwrap_or(&[])
    }

    /// The position of the selection among the visible rows.
    pub fn selected_pos(&mut self) -> Option<usize> {
        let sel = self.selected?;
        let i = *self.index.get(&sel)?;
        if self.filter == Filter::All && self.sort == Sort::Submitted && self.query.is_empty() {
            // Every row in submission order: the position is the index (no scan of
            // 100,000 rows per frame).
            return Some(i);
        }
        self.visible().iter().position(|&r| r == i)
    }

    /// Takes in the events pending on `events`, for at most `budget`, so that a flood
    /// of events never delays the next frame (what is left waits for the next turn).
    pub fn drain(&mut self, events: &crossbeam_channel::Receiver<std::sync::Arc<Event>>, budget: std::time::Duration) {
        let deadline = std::time::Instant::now() + budget;
        for (i, e) in events.try_iter().enumerate() {
            self.apply_event(&e);
            if i % 256 == 255 && std::time::Instant::now() >= deadline {
                break;
            }
        }
    }

    fn select_pos(&mut self, pos: usize) {
        let row = self.visible().get(pos).copied();
        let id = row.map(|i| self.rows[i].id);
        if id.is_some() {
            self.selected = id;
        }
        self.scroll_to_selection();
    }

    /// Keeps the selection on screen (selecting the first row if none is, or if the
    /// selected task left the view: keys never act on a row the user cannot see).
    pub fn scroll_to_selection(&mut self) {
        let page = self.page.max(1);
        if self.selected_pos().is_none() {
            let first = self.visible().first().copied();
            self.selected = first.map(|i| self.rows[i].id);
        }
        if let Some(pos) = self.selected_pos() {
            if pos < self.offset {
                self.offset = pos;
            } else if pos >= self.offset + page {
                self.offset = pos + 1 - page;
            }
        }
        let len = self.visible().len();
        self.offset = self.offset.min(len.saturating_sub(1));
    }

    fn selected_row(&self) -> Option<&Row> {
        self.selected.and_then(|id| self.row(id))
    }

    fn send(&mut self, c: Control) -> Option<Command> {
        if self.read_only {
            self.status = Some("a replay is read-only".into());
            return None;
        }
        Some(Command::Control(c))
    }

    /// Takes in one user action; returns what the host must do, if anything.
    #[allow(clippy::too_many_lines, clippy::needless_pass_by_value)] // one arm per action; actions are small values
    pub fn apply(&mut self, action: Action) -> Option<Command> {
        // The clock and Ctrl-C pass through every mode: a tick must not answer the quit
        // question or end a search, and Ctrl-C stops the run whatever is on screen.
        match action {
            Action::Tick => {
                // A quiet stretch: take the samples that no event has brought, once any
                // late event before them has surely arrived.
                if self.finished.is_none() && !self.read_only {
                    self.sample_until(self.now - SAMPLE_GRACE);
                }
                return None;
            }
            Action::Interrupt => {
                self.confirm_quit = false;
                self.search = None;
                return Some(self.interrupt());
            }
            _ => {}
        }
        if self.confirm_quit {
            self.confirm_quit = false;
            return match action {
                Action::Confirm | Action::Quit => {
                    if self.read_only {
                        return Some(Command::Exit);
                    }
                    self.status = Some("stopping the run...".into());
                    Some(Command::Control(Control::Interrupt))
                }
                _ => {
                    self.status = Some("quit cancelled".into());
                    None
                }
            };
        }
        if let Some(text) = self.search.as_mut() {
            match action {
                Action::SearchChar(c) => text.push(c),
                Action::SearchBackspace => {
                    text.pop();
                }
                Action::SearchEnd | Action::Open => {
                    self.search = None;
                    return None;
                }
                Action::Back => {
                    self.search = None;
                    self.query.clear();
                    self.order = None;
                    return None;
                }
                _ => return None,
            }
            self.query = self.search.clone().unwrap_or_default();
            self.order = None;
            // Select the first match.
            if let Some(i) = self.visible().first().copied() {
                self.selected = Some(self.rows[i].id);
                self.offset = 0;
            }
            return None;
        }
        if self.help && !matches!(action, Action::Tick) {
            self.help = false;
            if matches!(action, Action::Help | Action::Back) {
                return None;
            }
        }
        self.status = None;
        match action {
            Action::Move(d) if matches!(self.view, View::Detail(_)) => {
                let s = i64::from(self.detail_scroll) + d;
                self.detail_scroll = u16::try_from(s.max(0)).unwrap_or(u16::MAX);
            }
            Action::Move(d) if self.view == View::Main && self.pane == Pane::Workers => {
                let lines: usize = self.pools.iter().map(|p| 1 + p.workers.len()).sum();
                let s = i64::try_from(self.workers_scroll).unwrap_or(0) + d;
                self.workers_scroll = usize::try_from(s.max(0)).unwrap_or(0).min(lines.saturating_sub(1));
            }
            Action::Move(d) => {
                let len = self.visible().len();
                if len > 0 {
                    let cur = self.selected_pos().unwrap_or(0);
                    let pos = usize::try_from((i64::try_from(cur).unwrap_or(0) + d).max(0)).unwrap_or(0).min(len - 1);
                    self.select_pos(pos);
                }
            }
            Action::Page(d) => return self.apply(Action::Move(d * i64::try_from(self.page.max(1)).unwrap_or(1))),
            Action::Top => self.select_pos(0),
            Action::Bottom => {
                let len = self.visible().len();
                self.select_pos(len.saturating_sub(1));
            }
            Action::Click(row) => self.select_pos(self.offset + row),
            Action::Open => {
                self.scroll_to_selection();
                if let Some(id) = self.selected {
                    self.view = View::Detail(id);
                    self.detail_scroll = 0;
                }
            }
            Action::Back => {
                if self.view == View::Main && !self.query.is_empty() {
                    self.query.clear();
                    self.order = None;
                }
                self.view = View::Main;
            }
            Action::Cancel => {
                self.scroll_to_selection();
                let r = self.selected_row()?;
                let (id, name, state) = (r.id, r.name.clone(), r.state);
                if state == RowState::Pending {
                    self.status = Some(format!("cancelling {name}"));
                    return self.send(Control::Cancel(FutureId(id)));
                }
                self.status = Some(format!(
                    "cannot cancel {name}: it is {} (cancel stops pending tasks only; x kills a running one)",
                    state.word()
                ));
            }
            Action::Kill => {
                self.scroll_to_selection();
                let r = self.selected_row()?;
                let (id, name, state) = (r.id, r.name.clone(), r.state);
                if state == RowState::Running {
                    self.status = Some(format!("killing {name}"));
                    return self.send(Control::Kill(FutureId(id)));
                }
                self.status =
                    Some(format!("cannot kill {name}: it is {} (only a running task can be killed)", state.word()));
            }
            Action::CancelPool => {
                self.scroll_to_selection();
                let pool = self.selected_row().map(|r| r.pool.clone())?;
                let n = self.rows.iter().filter(|r| r.pool == pool && r.state == RowState::Pending).count();
                self.status = Some(format!("cancelling {n} pending task(s) of pool {pool}"));
                return self.send(Control::CancelPool(pool));
            }
            Action::Break => {
                let Some(d) = self.deadlocks.first() else {
                    self.status = Some("no deadlock to break".into());
                    return None;
                };
                let victim = d.victim_id?;
                let name = self.row(victim).map_or_else(|| format!("#{victim}"), |r| r.name.clone());
                self.status = Some(format!("breaking the deadlock: {name}'s wait gets a DeadlockError"));
                return self.send(Control::BreakWait(FutureId(victim)));
            }
            Action::SearchStart => {
                self.search = Some(String::new());
                self.view = View::Main;
            }
            Action::SearchChar(_) | Action::SearchBackspace | Action::SearchEnd | Action::Confirm => {}
            Action::CycleFilter => {
                self.filter = self.filter.next();
                self.order = None;
                self.offset = 0;
                self.scroll_to_selection();
            }
            Action::CycleSort => {
                self.sort = self.sort.next();
                self.order = None;
                self.scroll_to_selection();
            }
            Action::SwitchPane => {
                self.pane = match self.pane {
                    Pane::Tasks => Pane::Workers,
                    Pane::Workers => Pane::Tasks,
                };
            }
            Action::Graph => self.view = if self.view == View::Graph { View::Main } else { View::Graph },
            Action::Timeline => self.view = if self.view == View::Timeline { View::Main } else { View::Timeline },
            Action::Help => self.help = true,
            Action::Quit => {
                let running = self.finished.is_none() && !self.read_only;
                if running {
                    self.confirm_quit = true;
                    let active = self.rows.iter().filter(|r| !r.state.is_final()).count();
                    self.status = Some(format!("{active} task(s) still run: quit and stop them? (y/n)"));
                } else {
                    return Some(Command::Exit);
                }
            }
            Action::Interrupt => return Some(self.interrupt()),
            Action::Tick => {}
        }
        None
    }

    /// Ctrl-C: stop the run (or leave, when nothing runs).
    fn interrupt(&mut self) -> Command {
        if self.read_only || self.finished.is_some() {
            return Command::Exit;
        }
        self.status = Some("stopping the run...".into());
        Command::Control(Control::Interrupt)
    }

    /// Moves the run clock on to `t` seconds while the run is live, so that the elapsed
    /// time, running tasks' durations and a deadlock's countdown advance between events.
    /// The clock never goes back, and stops when the run has finished (its last event
    /// sets the final time).
    pub fn advance_clock(&mut self, t: f64) {
        if self.finished.is_none() && !self.read_only && t > self.now {
            self.now = t;
            if self.sort == Sort::Duration {
                self.order = None;
            }
        }
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
        let done = self.finished_count();
        let r = done.saturating_sub(self.done_at_sample) as f64 / SAMPLE_PERIOD;
        self.done_at_sample = done;
        self.rate = if self.samples == 1 { r } else { 0.7 * self.rate + 0.3 * r };
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
    use crate::events::{ErrorInfo, PoolInfo};

    fn ev(seq: u64, t: f64, kind: EventKind) -> Event {
        Event { seq, t, kind }
    }

    fn started(app: &mut App) {
        app.apply_event(&ev(
            1,
            0.0,
            EventKind::RunStarted {
                version: 1,
                run: "r".into(),
                file: "f.yaml".into(),
                pools: vec![PoolInfo { name: "io".into(), kind: crate::config::PoolKind::Thread, max_workers: 2 }],
                tasks: 3,
            },
        ));
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            app.apply_event(&ev(id + 1, 0.1, EventKind::Pending { task: name.into(), id, pool: "io".into() }));
        }
        app.apply_event(&ev(5, 0.2, EventKind::WorkerStarted { pool: "io".into(), worker: "io-1".into(), pid: None }));
        app.apply_event(&ev(
            6,
            0.3,
            EventKind::Running { task: "a".into(), id: 1, pool: "io".into(), worker: "io-1".into(), pid: None },
        ));
    }

    #[test]
    fn events_drive_states_counts_and_workers() {
        let mut app = App::new();
        started(&mut app);
        assert_eq!(app.row(1).map(|r| r.state), Some(RowState::Running));
        assert_eq!(app.pools[0].workers[0].current, Some(1));
        app.apply_event(&ev(
            7,
            1.0,
            EventKind::Exception {
                task: "a".into(),
                id: 1,
                pool: "io".into(),
                error: ErrorInfo { kind: futuretop_engine::ErrorKind::TaskError, message: "boom".into() },
            },
        ));
        assert_eq!(app.row(1).map(|r| r.state), Some(RowState::Failed));
        assert_eq!(app.pools[0].workers[0].current, None);
        assert_eq!(app.pools[0].workers[0].spans[0], (0.3, Some(1.0), 1));
        assert_eq!(app.counts()[3], (RowState::Failed, 1));
        assert_eq!(app.finished_count(), 1);
    }

    /// A run of 6 s: `a` then `b` then `c` on one worker, each finishing at a whole second.
    fn six_seconds() -> Vec<Event> {
        let running = |seq, t, task: &str, id| {
            ev(
                seq,
                t,
                EventKind::Running { task: task.into(), id, pool: "io".into(), worker: "io-1".into(), pid: None },
            )
        };
        let done = |seq, t, task: &str, id| {
            ev(seq, t, EventKind::Done { task: task.into(), id, pool: "io".into(), result: Value::Null })
        };
        vec![
            done(7, 2.0, "a", 1),
            running(8, 2.0, "b", 2),
            done(9, 3.75, "b", 2),
            running(10, 4.0, "c", 3),
            done(11, 6.0, "c", 3),
            ev(
                12,
                6.0,
                EventKind::RunFinished {
                    counts: crate::events::Counts { done: 3, ..crate::events::Counts::default() },
                    exit_code: 0,
                },
            ),
        ]
    }

    #[test]
    fn samples_depend_on_event_times_only_not_on_when_frames_or_ticks_came() {
        // A replay: events only, as fast as they come.
        let mut replayed = App::new();
        replayed.read_only = true;
        started(&mut replayed);
        for e in six_seconds() {
            replayed.apply_event(&e);
        }
        // A live run: the clock ticks every 0.25 s, and events arrive late (up to 0.9 s).
        let mut live = App::new();
        started(&mut live);
        let events = six_seconds();
        let mut next = 0;
        for step in 0..40 {
            let wall = f64::from(step) * 0.25;
            while next < events.len() && events[next].t + 0.9 <= wall {
                live.apply_event(&events[next]);
                next += 1;
            }
            live.advance_clock(wall);
            assert_eq!(live.apply(Action::Tick), None);
        }
        assert_eq!(next, events.len());
        let history = |app: &App| app.pools[0].busy_history.iter().copied().collect::<Vec<_>>();
        // One sample every half second up to 6 s: busy from 0.3 s on, idle in 3.75..4.
        assert_eq!(history(&replayed), [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1]);
        assert_eq!(history(&live), history(&replayed));
        // The finished run's rate is its average: 3 futures in 6 s.
        assert!((replayed.rate - 0.5).abs() < 1e-9, "{}", replayed.rate);
        assert!((live.rate - 0.5).abs() < 1e-9, "{}", live.rate);
        assert!((live.now - 6.0).abs() < 1e-9, "the clock stops at the last event, not at the last tick");
    }

    #[test]
    fn a_quiet_stretch_is_sampled_by_the_clock_and_a_hostile_time_does_not_hang() {
        let mut app = App::new();
        started(&mut app);
        app.advance_clock(3.2);
        app.apply(Action::Tick);
        // Samples at 0.5, 1.0, 1.5 and 2.0 s (1 s behind the clock): `a` runs.
        assert_eq!(app.pools[0].busy_history.iter().copied().collect::<Vec<_>>(), [1, 1, 1, 1]);
        app.sample_until(1e300);
        assert_eq!(app.pools[0].busy_history.len(), HISTORY);
    }

    #[test]
    fn cancel_of_a_running_task_is_refused_with_a_message() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Top);
        assert_eq!(app.selected, Some(1));
        assert_eq!(app.apply(Action::Cancel), None);
        assert!(app.status.as_deref().unwrap_or("").contains("cannot cancel a: it is running"));
        app.apply(Action::Move(1));
        assert_eq!(app.apply(Action::Cancel), Some(Command::Control(Control::Cancel(FutureId(2)))));
        app.apply(Action::Top);
        assert_eq!(app.apply(Action::Kill), Some(Command::Control(Control::Kill(FutureId(1)))));
    }

    #[test]
    fn selection_follows_its_task_when_rows_reorder() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Bottom);
        assert_eq!(app.selected, Some(3));
        app.apply(Action::CycleSort); // by state: running a first, then pending b, c
        assert_eq!(app.selected, Some(3));
        assert_eq!(app.selected_pos(), Some(2));
        app.apply_event(&ev(
            8,
            0.5,
            EventKind::Running { task: "c".into(), id: 3, pool: "io".into(), worker: "io-2".into(), pid: None },
        ));
        assert_eq!(app.selected, Some(3), "still c");
        assert_eq!(app.selected_pos(), Some(1), "c moved up among the running");
    }

    #[test]
    fn arrows_scroll_the_detail_view_and_the_focused_workers_panel() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::Top);
        app.apply(Action::Open);
        app.apply(Action::Move(3));
        assert_eq!(app.detail_scroll, 3);
        assert_eq!(app.selected, Some(1), "the selection stays");
        app.apply(Action::Move(-5));
        assert_eq!(app.detail_scroll, 0);
        app.apply(Action::Back);
        app.apply(Action::SwitchPane);
        app.apply(Action::Move(1));
        assert_eq!(app.workers_scroll, 1);
        app.apply(Action::Move(10));
        assert_eq!(app.workers_scroll, 1, "one pool head and one worker: at most one line away");
        assert_eq!(app.selected, Some(1));
        app.apply(Action::SwitchPane);
        app.apply(Action::Move(1));
        assert_eq!(app.selected, Some(2), "the table has the arrows again");
    }

    #[test]
    fn drain_stops_when_its_time_is_up_and_the_rest_waits() {
        let (tx, rx) = crossbeam_channel::unbounded();
        for id in 1..=10_000 {
            tx.send(std::sync::Arc::new(ev(
                id,
                0.0,
                EventKind::Pending { task: format!("t{id}"), id, pool: "io".into() },
            )))
            .unwrap();
        }
        let mut app = App::new();
        app.drain(&rx, std::time::Duration::ZERO);
        assert_eq!(app.rows.len(), 256, "no time left: one batch, then the frame");
        app.drain(&rx, std::time::Duration::from_mins(1));
        assert_eq!(app.rows.len(), 10_000, "enough time: everything pending");
    }

    #[test]
    fn filter_and_search_narrow_the_rows() {
        let mut app = App::new();
        started(&mut app);
        app.apply(Action::CycleFilter); // active
        assert_eq!(app.visible().len(), 3);
        app.apply(Action::CycleFilter); // failed
        assert_eq!(app.visible().len(), 0);
        app.apply(Action::CycleFilter);
        app.apply(Action::CycleFilter);
        app.apply(Action::CycleFilter); // all again
        assert_eq!(app.filter, Filter::All);
        app.apply(Action::SearchStart);
        app.apply(Action::SearchChar('c'));
        assert_eq!(app.visible().len(), 1);
        assert_eq!(app.selected, Some(3), "the first match is selected");
        app.apply(Action::SearchEnd);
        assert_eq!(app.apply(Action::Cancel), Some(Command::Control(Control::Cancel(FutureId(3)))));
        app.apply(Action::Back);
        assert_eq!(app.visible().len(), 3);
    }

    #[test]
    fn quit_asks_while_tasks_run_and_break_needs_a_deadlock() {
        let mut app = App::new();
        started(&mut app);
        assert_eq!(app.apply(Action::Quit), None);
        assert!(app.confirm_quit);
        assert_eq!(app.apply(Action::Move(1)), None, "anything but y keeps running");
        assert!(!app.confirm_quit);
        app.apply(Action::Quit);
        assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::Interrupt)));
        assert_eq!(app.apply(Action::Break), None);
        assert_eq!(app.status.as_deref(), Some("no deadlock to break"));
        app.apply_event(&ev(
            9,
            1.0,
            EventKind::Deadlock {
                kind: crate::deadlock::DeadlockKind::Cycle,
                tasks: vec!["a".into(), "b".into()],
                pool: None,
                message: "a waits on b and b waits on a".into(),
                ids: vec![1, 2],
                victim: Some("b".into()),
                victim_id: Some(2),
                expires_in: None,
            },
        ));
        assert_eq!(app.apply(Action::Break), Some(Command::Control(Control::BreakWait(FutureId(2)))));
        app.apply_event(&ev(
            10,
            1.1,
            EventKind::DeadlockResolved {
                tasks: vec!["a".into(), "b".into()],
                how: crate::deadlock::Resolution::Break,
            },
        ));
        assert!(app.deadlocks.is_empty());
        app.apply_event(&ev(
            11,
            2.0,
            EventKind::RunFinished { counts: crate::events::Counts::default(), exit_code: 1 },
        ));
        assert_eq!(app.apply(Action::Quit), Some(Command::Exit), "nothing runs: quit at once");
    }
}
