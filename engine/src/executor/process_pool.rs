//! `ProcessPoolExecutor`: calls run in worker processes (this program re-executed), over a framed pipe protocol.
//!
//! Each worker slot is one parent thread that owns one child process at a time: it
//! takes a work item (one call, or a `map` chunk) from the pool's queue, sends it, and
//! reads frames until every call of the item has finished — answering the worker's
//! requests (a task waiting on another future) on helper threads in the meantime.
//!
//! As in Python, a worker that dies unexpectedly breaks the pool: its running calls and
//! every pending future get `BrokenProcessPool`, the other workers are stopped, later
//! submits are refused. Unlike Python, the error says which worker (name and pid), how
//! it died (exit status or signal) and which task it ran. `Future::kill` on a running
//! call kills its worker on purpose (an extension): that future ends `Killed`, a fresh
//! worker takes the slot, and the pool stays healthy.
//!
//! A slot sends up to [`AHEAD`] more calls to its worker before the one it runs has
//! ended, in one write, so that the worker never waits for the parent between calls. Such a call stays pending until the worker says it started it:
//! a cancel asks the worker to drop it first (`skip`, answered by the worker's reader
//! thread while a call runs), a killed worker's calls that never started go to the next
//! worker, and a slot with nothing to do takes back a call waiting behind a long one.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};
use serde_json::value::RawValue;
use serde_json::Value;

use super::protocol::{
    queue_frame, read_frame, write_frame, CallRef, ChunkRef, RunRef, ToParent, ToWorker, WireError, PROTOCOL_VERSION,
};
use super::worker::{from_wire, to_wire, PARENT_ENV, WORKER_ARG};
use crate::context::{self, Interrupt, InterruptReason, TaskContext};
use crate::context::{Kill, Withdraw};
use crate::error::{BrokenExecutor, BrokenKind, BuildError, Exception, SubmitError};
use crate::future::Future;
use crate::observe::{emit, FutureId, Observation, Sink, SinkRef};
use crate::status::{describe_status, Stream};

/// A call for a process pool: a callable registered in the worker, by name, and its
/// arguments (Python pickles the function and its arguments; here both are data).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessCall {
    /// The registered callable's name.
    pub name: String,
    /// Its arguments.
    pub args: Value,
}

impl ProcessCall {
    /// A call of `name` with `args`.
    pub fn new(name: impl Into<String>, args: Value) -> Self {
        Self { name: name.into(), args }
    }
}

/// Answers a worker task's request (a wait on another future, say); it runs in the
/// requesting task's context, so its waits are reported as that task's.
pub type RequestHook = Arc<dyn Fn(FutureId, Value) -> Result<Value, Exception> + Send + Sync>;
/// Receives a line of a task's output: the future, the stream, the line, and (when not
/// 0) how many lines printed there were not sent, the line saying so in words.
pub type OutputHook = Arc<dyn Fn(FutureId, Stream, String, u64) + Send + Sync>;
/// Sees each value just before its future finishes, on the thread that then finishes it
/// (so a sink can take the value along with that future's `Finished` observation).
pub type ValueHook = Arc<dyn Fn(FutureId, &Value) + Send + Sync>;

/// Builds a [`ProcessPoolExecutor`].
#[must_use]
#[derive(Default)]
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    max_tasks_per_child: Option<usize>,
    initializer: Option<ProcessCall>,
    program: Option<PathBuf>,
    worker_env: Vec<(String, String)>,
    name: Option<String>,
    sink: SinkRef,
    on_request: Option<RequestHook>,
    on_output: Option<OutputHook>,
    on_value: Option<ValueHook>,
    first_worker: usize,
}

impl ProcessPoolBuilder {
    /// Numbers the workers from `n + 1` (`NAME-{n+1}`, ...), default from 1: a pool that
    /// replaces a broken one of the same name goes on where that one's numbering stopped.
    pub fn first_worker(mut self, n: usize) -> Self {
        self.first_worker = n;
        self
    }
    /// At most this many worker processes (default: the number of CPUs; 0 is refused).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }
    /// Replace a worker after it has run this many tasks (0 is refused).
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }
    /// Runs in every worker before its first task; if it fails, the pool breaks.
    pub fn initializer(mut self, call: ProcessCall) -> Self {
        self.initializer = Some(call);
        self
    }
    /// The worker program (default: this executable). It must call
    /// [`serve_worker_if_requested`](super::worker::serve_worker_if_requested) first thing.
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }
    /// Sets `name` to `value` in every worker's environment (not in the parent's).
    pub fn worker_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.worker_env.push((name.into(), value.into()));
        self
    }
    /// The pool's name in events.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Reports every state change and wait to `sink`.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// Answers the requests worker tasks make (see [`RequestHook`]).
    pub fn on_request(mut self, hook: RequestHook) -> Self {
        self.on_request = Some(hook);
        self
    }
    /// Receives the output lines of commands run by tasks.
    pub fn on_output(mut self, hook: OutputHook) -> Self {
        self.on_output = Some(hook);
        self
    }
    /// Sees each value before its future finishes.
    pub fn on_value(mut self, hook: ValueHook) -> Self {
        self.on_value = Some(hook);
        self
    }

    /// Builds the pool; workers start at the first submit.
    pub fn build(self) -> Result<ProcessPoolExecutor, BuildError> {
        let max_workers =
            self.max_workers.unwrap_or_else(|| thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        if max_workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(BuildError::ZeroTasksPerChild);
        }
        let program = match self.program {
            Some(p) => p,
            None => std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(ProcessPoolExecutor {
            shared: Arc::new(Shared {
                name: self.name.unwrap_or_else(|| "ProcessPoolExecutor".into()).into(),
                max_workers,
                max_tasks_per_child: self.max_tasks_per_child,
                initializer: self.initializer,
                program,
                worker_env: self.worker_env,
                sink: self.sink,
                on_request: self.on_request,
                on_output: self.on_output,
                on_value: self.on_value,
                rx,
                control: Mutex::new(Control { tx: Some(tx), threads: Vec::new(), broken: None }),
                broken_flag: AtomicBool::new(false),
                live: Mutex::new(HashMap::new()),
                next_worker: AtomicUsize::new(self.first_worker),
                idle_slots: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                taking: AtomicUsize::new(0),
                cancelling: AtomicBool::new(false),
                front: Mutex::default(),
                forced: Mutex::new(None),
            }),
        })
    }
}

/// A queued call: its future, the call, and the task's name for error messages.
struct Entry {
    future: Future<Value>,
    call: ProcessCall,
    /// The name given at submit; an anonymous call is `task-<id>` (made only when shown).
    name: Option<Arc<str>>,
    /// A `map` chunk run as one call ([`ToWorker::Chunk`](super::protocol::ToWorker::Chunk)):
    /// the list of its items' arguments, encoded by the thread that submitted them (which
    /// then frees them itself: a free on another thread costs several times more), its
    /// value the list of their results. `call.args` is unused then.
    packed: Option<Box<RawValue>>,
}

impl Entry {
    /// The call's name, as events and errors show it.
    fn label(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_deref().map_or_else(|| format!("task-{}", self.future.id().0).into(), Into::into)
    }
}

type Item = Vec<Entry>;

/// Puts items back at the head of the queue (`Shared::front`), in their order, and wakes
/// a slot that waits for work.
fn put_back(shared: &Shared, items: impl IntoIterator<Item = Item>) {
    let items: Vec<Item> = items.into_iter().filter(|i| !i.is_empty()).collect();
    let n = items.len();
    if n == 0 {
        return;
    }
    {
        let mut front = lock(&shared.front);
        for item in items.into_iter().rev() {
            front.push_front(item);
        }
    }
    let waiting = shared.waiting.load(Ordering::SeqCst).min(n);
    if waiting > 0 {
        if let Some(tx) = lock(&shared.control).tx.as_ref() {
            // Empty items: each only wakes a slot, which then looks at `front`.
            for _ in 0..waiting {
                let _ = tx.send(Vec::new());
            }
        }
    }
}

struct Control {
    tx: Option<Sender<Item>>,
    threads: Vec<JoinHandle<()>>,
    broken: Option<BrokenExecutor>,
}

/// A live worker process, as other threads see it (to kill it).
/// Why the parent killed a worker on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KilledBecause {
    /// `Future::kill` of the call it ran.
    Request,
    /// `Future::time_out` of the call it ran: it ran past this limit.
    TimedOut(std::time::Duration),
    /// The pool broke.
    PoolBroke,
    /// `terminate_workers` or `kill_workers`, with this signal.
    ForceShutdown(nix::sys::signal::Signal),
}

/// Why a worker is retired (told to exit and waited for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// The pool shuts down.
    Shutdown,
    /// The pool broke while the worker started.
    PoolBroke,
    /// It was killed just as its last call finished.
    KilledAfterLastCall,
    /// It ran `max_tasks_per_child` calls.
    MaxTasksPerChild,
    /// Its initializer failed.
    InitializerFailed,
    /// It died running its initializer.
    InitializerDied,
}

impl Retire {
    /// What the `worker_exited` status says before the exit status (nothing on shutdown).
    fn why(self) -> Option<&'static str> {
        match self {
            Self::Shutdown => None,
            Self::PoolBroke => Some("the pool broke"),
            Self::KilledAfterLastCall => Some("killed after its last call finished"),
            Self::MaxTasksPerChild => Some("max_tasks_per_child reached"),
            Self::InitializerFailed => Some("initializer failed"),
            Self::InitializerDied => Some("initializer died"),
        }
    }
}

struct Live {
    pid: u32,
    groups: Vec<i32>,
    /// Killed on purpose (by `kill` or because the pool broke): not a crash.
    on_purpose: Option<KilledBecause>,
    running: Vec<FutureId>,
    /// When the worker started the call it runs now (or last ran).
    since: std::time::Instant,
    /// The interrupt of each running call's pending request (a wait), for breaking it.
    requests: HashMap<FutureId, Arc<Interrupt>>,
    /// Calls sent ahead that the worker has not started yet (at most [`AHEAD`]).
    ahead: Vec<Future<Value>>,
    /// Who waits for the worker to drop or start a call sent ahead (see [`withdraw`]).
    withdrawals: Vec<(FutureId, Sender<Answer>)>,
    /// The worker's stdin, for a `skip`.
    stdin: Arc<Mutex<BufWriter<ChildStdin>>>,
    /// The slot's thread: it cannot wait for its own worker's answer.
    thread: thread::ThreadId,
    /// The call a `kill` was for: if it ends after all, the kill missed (the worker lives).
    kill_target: Option<FutureId>,
}

/// How many calls a slot sends to its worker ahead of the one it runs, at most.
pub const AHEAD: usize = 16;
/// A worker whose call has run this long holds the calls sent ahead to it back: a slot
/// with nothing to do takes them before younger queued calls (see [`steal`]).
const STUCK: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a cancel, or a slot with nothing to do, waits for a worker to give back a
/// call sent ahead (its reader thread answers within a round trip).
const WITHDRAW_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A worker's answer about a call sent ahead to it.
enum Answer {
    /// It dropped the call, which never runs there: the entry, to the first who asked.
    Withdrawn(Option<Entry>),
    /// It has started the call.
    Started,
    /// No answer came in [`WITHDRAW_WAIT`]: as good as started for a cancel.
    Silent,
}

/// Asks `slot`'s worker to give back `task`, sent ahead to it: `Withdrawn` if it will
/// not run there (with its entry if this caller is the one to have it), `Started` if it
/// has started (or as good as: this is the slot's own thread, which reads the answers),
/// `Silent` if no answer came in [`WITHDRAW_WAIT`].
fn withdraw(shared: &Shared, slot: usize, task: FutureId) -> Answer {
    let (rx, mine, stdin) = {
        let mut live = lock(&shared.live);
        let Some(l) = live.get_mut(&slot) else { return Answer::Withdrawn(None) };
        if l.running.contains(&task) {
            // `started` moved it from `ahead` to here, and marks it running next.
            return Answer::Started;
        }
        if !l.ahead.iter().any(|f| f.id() == task) {
            // Started (then it is running), or taken back already.
            return Answer::Withdrawn(None);
        }
        if l.thread == thread::current().id() {
            return Answer::Started;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let first = !l.withdrawals.iter().any(|(t, _)| *t == task);
        l.withdrawals.push((task, tx.clone()));
        (rx, tx, first.then(|| Arc::clone(&l.stdin)))
    };
    if let Some(stdin) = stdin {
        // A write error means the worker is gone: the slot answers when it sees that.
        let _ = write_frame(&mut *lock(&stdin), &ToWorker::Skip { id: task.0 });
    }
    if let Ok(answer) = rx.recv_timeout(WITHDRAW_WAIT) {
        return answer;
    }
    // Given up, unless the answer is on its way (then it holds the entry).
    let listed = lock(&shared.live).get_mut(&slot).is_some_and(|l| {
        let before = l.withdrawals.len();
        l.withdrawals.retain(|(_, tx)| !tx.same_channel(&mine));
        l.withdrawals.len() < before
    });
    if listed {
        Answer::Silent
    } else {
        // The slot took this wait off its list: it answers next.
        rx.recv().unwrap_or(Answer::Started)
    }
}

/// What a cancel of a call sent ahead asks of its slot.
struct SlotWithdraw {
    shared: Arc<Shared>,
    slot: usize,
}

impl Withdraw for SlotWithdraw {
    fn withdraw(&self, task: FutureId) -> bool {
        matches!(withdraw(&self.shared, self.slot, task), Answer::Withdrawn(_))
    }
}

/// A slot's means to send calls ahead: what kills and what takes back those calls.
struct Ahead {
    killer: Arc<dyn Kill>,
    withdrawer: Arc<dyn Withdraw>,
}

/// A slot with nothing to do takes back a call another slot's worker holds behind a
/// running one (Python's shared call queue has no such wait): from any worker when
/// nothing is queued, else only from one whose call has run for `stuck` or longer (the
/// calls behind a short one start soon where they are, and taking them back costs a
/// round trip; behind a long one, they would wait while younger queued calls ran).
fn steal(shared: &Shared, me: usize, stuck: std::time::Duration) -> Option<Entry> {
    // The other slots' calls sent ahead, oldest first (the next in submission order, as
    // Python's shared call queue would hand it out), tried in turn until one is given
    // back: the first may just have started. A worker that does not answer keeps its
    // calls (taking a younger one would let it overtake the older).
    let mut candidates: Vec<(FutureId, usize)> = lock(&shared.live)
        .iter()
        .filter(|(s, l)| **s != me && l.since.elapsed() >= stuck)
        .flat_map(|(s, l)| l.ahead.iter().map(|f| (f.id(), *s)))
        .collect();
    candidates.sort_unstable();
    for (task, slot) in candidates {
        match withdraw(shared, slot, task) {
            Answer::Withdrawn(Some(e)) => return Some(e),
            Answer::Withdrawn(None) | Answer::Started => {}
            Answer::Silent => return None,
        }
    }
    None
}

struct Shared {
    name: Arc<str>,
    max_workers: usize,
    max_tasks_per_child: Option<usize>,
    initializer: Option<ProcessCall>,
    program: PathBuf,
    worker_env: Vec<(String, String)>,
    sink: SinkRef,
    on_request: Option<RequestHook>,
    on_output: Option<OutputHook>,
    on_value: Option<ValueHook>,
    rx: Receiver<Item>,
    control: Mutex<Control>,
    broken_flag: AtomicBool,
    /// Live workers by slot.
    live: Mutex<HashMap<usize, Live>>,
    next_worker: AtomicUsize,
    /// Slots waiting for an item (Python's `_idle_worker_semaphore`).
    idle_slots: AtomicUsize,
    /// Slots blocked on the queue now (no call is sent ahead while one is).
    waiting: AtomicUsize,
    /// Slots taking calls from the queue to send them ahead, until they have listed them
    /// as ahead or put them back: a slot about to wait for work lets them finish first
    /// (briefly), or it could take a younger call from the queue while an older one,
    /// taken but not yet listed, goes behind a long call.
    taking: AtomicUsize,
    /// `shutdown(cancel_futures=True)` was called: what a slot holds and has not sent is
    /// cancelled, as the queue was.
    cancelling: AtomicBool,
    /// Items taken from the queue and not sent, which any slot takes before the queue:
    /// calls sent ahead to a worker killed before it started them, a chunk met while
    /// sending calls ahead, calls not sent ahead after all.
    front: Mutex<std::collections::VecDeque<Item>>,
    /// Set by `terminate_workers`/`kill_workers` (under the `live` lock): a worker that
    /// starts after is signalled too.
    forced: Mutex<Option<nix::sys::signal::Signal>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sigkill(pid: u32, groups: &[i32]) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    // Never signal pid or group 0 (that would be our own group) or 1.
    if let Ok(p) = i32::try_from(pid) {
        if p > 1 {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
    for &g in groups.iter().filter(|&&g| g > 1) {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
}

/// Ends the waits the parent makes for a dead (or dying) worker's calls, so that the
/// helper threads answering them do not stay blocked on their targets.
fn end_requests(live: &Live) {
    for (&task, interrupt) in &live.requests {
        interrupt.raise(task, InterruptReason::Kill);
    }
}

impl Shared {
    fn broken(&self) -> Option<BrokenExecutor> {
        lock(&self.control).broken.clone()
    }

    /// Breaks the pool (first reason wins): fail the queue, stop the other workers.
    fn break_pool(&self, reason: String) -> BrokenExecutor {
        let error = {
            let mut control = lock(&self.control);
            if let Some(b) = &control.broken {
                return b.clone();
            }
            let b = BrokenExecutor { kind: BrokenKind::ProcessPool, reason };
            control.broken = Some(b.clone());
            self.broken_flag.store(true, Ordering::SeqCst);
            b
        };
        emit(&self.sink, || Observation::PoolBroken { pool: Arc::clone(&self.name), error: error.reason.clone() });
        while let Ok(item) = self.rx.try_recv() {
            for e in item {
                let _ = e.future.set_exception(Exception::Broken(error.clone()));
            }
        }
        for live in lock(&self.live).values_mut() {
            live.on_purpose.get_or_insert(KilledBecause::PoolBroke);
            sigkill(live.pid, &live.groups);
            end_requests(live);
        }
        error
    }
}

/// Kills a slot's running call: kills the worker process (and its commands), or, for
/// a deadlock break, interrupts the call's pending request.
struct SlotKiller {
    shared: Arc<Shared>,
    slot: usize,
}

impl Kill for SlotKiller {
    /// The worker is told to kill the call (`kill` frame, with a SIGCONT should it be
    /// stopped): it dies if it runs that call, drops it unrun if it holds it, and is left
    /// alone if the call has ended (the parent's "running" lags the worker by a frame
    /// when calls are sent ahead: a signal from here could hit the call after).
    fn kill(&self, task: FutureId, reason: InterruptReason) -> bool {
        let (stdin, pid) = {
            let mut live = lock(&self.shared.live);
            let Some(l) = live.get_mut(&self.slot) else { return false };
            if !l.running.contains(&task) {
                return false;
            }
            match reason {
                InterruptReason::Kill | InterruptReason::TimedOut(_) => {
                    // A stronger reason (the pool broke, or its workers are being
                    // stopped) is kept.
                    if matches!(l.on_purpose, None | Some(KilledBecause::Request | KilledBecause::TimedOut(_))) {
                        l.on_purpose = Some(match reason {
                            InterruptReason::TimedOut(limit) => KilledBecause::TimedOut(limit),
                            _ => KilledBecause::Request,
                        });
                        l.kill_target = Some(task);
                    }
                    (Arc::clone(&l.stdin), l.pid)
                }
                InterruptReason::Deadlock => return l.requests.get(&task).is_some_and(|i| i.raise(task, reason)),
            }
        };
        if let Ok(p) = i32::try_from(pid) {
            if p > 1 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGCONT);
            }
        }
        // A write error means the worker is gone already: its slot sees that.
        let _ = write_frame(&mut *lock(&stdin), &ToWorker::Kill { id: task.0 });
        true
    }
}

/// Python's `ProcessPoolExecutor`: runs calls in worker processes.
///
/// A worker is this program started again: `main` must call
/// [`serve_worker_if_requested`](super::serve_worker_if_requested) first thing, with
/// the callables it serves by name.
///
/// ```
/// use futuretop_engine::{Callables, Exception, FutureError, ProcessCall, ProcessPoolExecutor};
/// use serde_json::{json, Value};
///
/// let mut callables = Callables::new();
/// callables.register("pid", |_, _| Ok(Value::from(std::process::id())));
/// callables.register("fail", |_, _| Err(Exception::task("no")));
/// futuretop_engine::serve_worker_if_requested(&callables);
///
/// let pool = ProcessPoolExecutor::new(1)?;
/// let pid = pool.submit(ProcessCall::new("pid", Value::Null))?.result(None)?;
/// assert_ne!(pid, json!(std::process::id()), "it ran in another process");
/// let failed = pool.submit(ProcessCall::new("fail", Value::Null))?;
/// assert_eq!(failed.result(None), Err(FutureError::Failed(Exception::task("no"))));
/// # Ok::<(), futuretop_engine::Error>(())
/// ```
pub struct ProcessPoolExecutor {
    shared: Arc<Shared>,
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` worker processes running this program (Python:
    /// `ProcessPoolExecutor(max_workers)`); workers start as submits need them.
    pub fn new(max_workers: usize) -> Result<Self, BuildError> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::default()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The pids of the live workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.shared.live).values().map(|l| l.pid).collect()
    }

    /// The error that broke the pool, if it is broken.
    pub fn broken(&self) -> Option<BrokenExecutor> {
        self.shared.broken()
    }

    /// How many workers the pool has started (and so the number of the last one's name,
    /// counted from [`ProcessPoolBuilder::first_worker`]).
    pub fn workers_started(&self) -> usize {
        self.shared.next_worker.load(Ordering::SeqCst)
    }

    /// How many calls are sent ahead to the workers and not started yet (pending, and
    /// cancellable: see [`AHEAD`]).
    pub fn calls_ahead(&self) -> usize {
        lock(&self.shared.live).values().map(|l| l.ahead.len()).sum()
    }

    /// Schedules `call` under `name` and returns its future.
    pub fn submit_named(&self, name: Option<&str>, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        let mut fs = submit_item(&self.shared, vec![(name.map(str::to_owned), call)], None)?;
        fs.pop().ok_or(SubmitError::Shutdown)
    }

    /// Schedules several calls as one work item, named as `submit_named` names them: they
    /// go to one worker in one message and run there in order, their results coming back
    /// together (a chunk of Python's `map(..., chunksize=n)`). Each still has its own
    /// future, which can be cancelled while queued or killed while it runs.
    pub fn submit_chunk(&self, calls: Vec<(Option<String>, ProcessCall)>) -> Result<Vec<Future<Value>>, SubmitError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        submit_item(&self.shared, calls, None)
    }

    /// Schedules `call`.
    pub fn submit(&self, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        self.submit_named(None, call)
    }

    /// Python's `map(fn, *iterables, timeout=..., chunksize=n)`: the callable `name` on
    /// each item's arguments, `chunksize` calls a message to a worker; results come back
    /// in input order. The iterator does not borrow the pool, as with
    /// [`ThreadPoolExecutor::map`](super::ThreadPoolExecutor::map).
    ///
    /// As in Python, with a `chunksize` above 1 a chunk is one call with one future (its
    /// value the list of its items' results): an item's error fails its whole chunk,
    /// the iteration raises it at the chunk's first item, and cancel and kill act on
    /// chunks. (To keep a future per item, submit chunks with
    /// [`submit_chunk`](Self::submit_chunk), as the runner does.)
    pub fn map<I>(
        &self,
        name: &str,
        items: I,
        timeout: Option<std::time::Duration>,
        chunksize: usize,
    ) -> Result<super::MapIter<'static, Value>, SubmitError>
    where
        I: IntoIterator<Item = Value>,
        I::IntoIter: 'static,
    {
        self.map_with(name, items, super::MapOptions { timeout, chunksize, buffersize: None })
    }

    /// `map` with every option, including `buffersize` (Python 3.14: at most that many
    /// chunks submitted ahead of the consumer).
    pub fn map_with<I>(
        &self,
        name: &str,
        items: I,
        options: super::MapOptions,
    ) -> Result<super::MapIter<'static, Value>, SubmitError>
    where
        I: IntoIterator<Item = Value>,
        I::IntoIter: 'static,
    {
        let chunksize = options.chunksize;
        let ahead = options.buffersize.unwrap_or(usize::MAX);
        let shared = Arc::clone(&self.shared);
        let name: String = name.into();
        let mut items = items.into_iter();
        if chunksize <= 1 {
            // One call a future (a chunksize of 0 is refused by `start_chunks`).
            let next_call = Box::new(move || {
                let args = items.next()?;
                let call = vec![(None, ProcessCall::new(name.as_str(), args))];
                Some(submit_item(&shared, call, None).and_then(one_future).map(super::Submitted::One))
            });
            return super::MapIter::start_chunks(options, ahead, None, next_call);
        }
        let next_chunk = Box::new(move || {
            let chunk: Vec<Value> = items.by_ref().take(chunksize).collect();
            let n = chunk.len();
            if n == 0 {
                return None;
            }
            let call = vec![(None, ProcessCall::new(name.as_str(), Value::Null))];
            let submitted = match serde_json::value::to_raw_value(&chunk) {
                Ok(items) => submit_item(&shared, call, Some(items)).and_then(one_future),
                // (A `Value` always encodes; were it not to, the chunk fails, as a chunk
                // Python cannot pickle.)
                Err(e) => {
                    let f = Future::new();
                    let _ = f.set_exception(Exception::task(format!("cannot send the chunk's arguments: {e}")));
                    Ok(f)
                }
            };
            Some(submitted.map(|f| super::Submitted::Packed(f, n)))
        });
        super::MapIter::start_chunks(options, ahead, Some(unpack_chunk), next_chunk)
    }

    /// Python's `shutdown(wait, cancel_futures)`.
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.shut_down(wait, cancel_futures, cancel_futures);
    }

    /// `shutdown`; `take_back`: the calls sent ahead to the workers are taken back and
    /// cancelled too (not when the workers are about to be stopped: those calls, which
    /// never started, are cancelled as each worker's end is seen).
    fn shut_down(&self, wait: bool, cancel_futures: bool, take_back: bool) {
        let mut queued: Vec<Entry> = Vec::new();
        let threads = {
            let mut control = lock(&self.shared.control);
            if cancel_futures {
                self.shared.cancelling.store(true, Ordering::SeqCst);
                queued.extend(std::mem::take(&mut *lock(&self.shared.front)).into_iter().flatten());
                while let Ok(item) = self.shared.rx.try_recv() {
                    queued.extend(item);
                }
            }
            control.tx = None;
            if wait {
                std::mem::take(&mut control.threads)
            } else {
                Vec::new()
            }
        };
        if cancel_futures {
            // A slot taking calls from the queue to send ahead when `cancelling` was set
            // lists them as ahead (taken back below) or, seeing it, cancels them itself:
            // either is done once it is no longer counted as taking (briefly, as a rule).
            let_takers_finish(&self.shared, SHUTDOWN_TAKING_WAIT);
        }
        // Cancelled with no lock held: their callbacks are the user's.
        for e in queued {
            e.future.cancel();
        }
        if take_back {
            // Calls sent ahead to a worker are pending too: each is taken back, then
            // cancelled (one that has just started runs on).
            let ahead: Vec<Future<Value>> =
                lock(&self.shared.live).values().flat_map(|l| l.ahead.iter().cloned()).collect();
            for f in ahead {
                f.cancel();
            }
        }
        for h in threads {
            let _ = h.join();
        }
    }

    /// Python 3.14's `terminate_workers()`: shuts the pool down with `cancel_futures`
    /// (queued futures end cancelled, a later submit is refused as after shutdown), then
    /// sends SIGTERM to every live worker; the futures they ran end with
    /// `BrokenProcessPool`. A worker running a command kills the command's process group
    /// before it exits.
    pub fn terminate_workers(&self) {
        self.force_shutdown(nix::sys::signal::Signal::SIGTERM);
    }

    /// Python 3.14's `kill_workers()`: as [`terminate_workers`](Self::terminate_workers),
    /// with SIGKILL (the workers' commands are killed by the parent).
    pub fn kill_workers(&self) {
        self.force_shutdown(nix::sys::signal::Signal::SIGKILL);
    }

    fn force_shutdown(&self, signal: nix::sys::signal::Signal) {
        self.shut_down(false, true, false);
        let mut live = lock(&self.shared.live);
        // A worker still starting (not yet in `live`) sees this once it is, and is
        // signalled then (see `start`).
        *lock(&self.shared.forced) = Some(signal);
        for l in live.values_mut() {
            force(l, signal);
        }
    }
}

/// Stops a worker for `terminate_workers` (SIGTERM) or `kill_workers` (SIGKILL).
fn force(live: &mut Live, signal: nix::sys::signal::Signal) {
    live.on_purpose.get_or_insert(KilledBecause::ForceShutdown(signal));
    if signal == nix::sys::signal::Signal::SIGKILL {
        sigkill(live.pid, &live.groups);
    } else if let Ok(pid) = i32::try_from(live.pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        // A stopped worker acts on it once it runs again.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGCONT);
    }
    end_requests(live);
}

/// The one future of an item of one call.
fn one_future(mut fs: Vec<Future<Value>>) -> Result<Future<Value>, SubmitError> {
    fs.pop().ok_or(SubmitError::Shutdown)
}

/// A packed chunk's value: the list of its items' results.
fn unpack_chunk(v: Value) -> Vec<Value> {
    match v {
        Value::Array(results) => results,
        other => vec![other],
    }
}

/// Queues one work item (a call, or a `map` chunk) and starts a worker slot for it if
/// none is idle (Python's `_adjust_process_count`). `packed`: the item is one call that
/// runs a chunk on these arguments (see [`Entry::packed`]).
fn submit_item(
    shared: &Arc<Shared>,
    calls: Vec<(Option<String>, ProcessCall)>,
    mut packed: Option<Box<RawValue>>,
) -> Result<Vec<Future<Value>>, SubmitError> {
    let mut control = lock(&shared.control);
    if let Some(b) = &control.broken {
        return Err(SubmitError::Broken(b.clone()));
    }
    let Some(tx) = control.tx.as_ref() else { return Err(SubmitError::Shutdown) };
    let mut item = Vec::with_capacity(calls.len());
    for (name, call) in calls {
        let f = Future::with_sink(shared.sink.clone());
        let name: Option<Arc<str>> = name.map(Into::into);
        emit(&shared.sink, || Observation::Pending {
            id: f.id(),
            pool: Arc::clone(&shared.name),
            name: name.clone().unwrap_or_else(|| format!("task-{}", f.id().0).into()),
        });
        item.push(Entry { future: f, call, name, packed: packed.take() });
    }
    let futures: Vec<Future<Value>> = item.iter().map(|e| e.future.clone()).collect();
    if tx.send(item).is_err() {
        return Err(SubmitError::Shutdown);
    }
    // As Python's `_adjust_process_count`: an idle worker takes the item; else one
    // more worker starts, up to max_workers.
    let took_idle = shared.idle_slots.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let slot = control.threads.len();
    if !took_idle && slot < shared.max_workers {
        let for_slot = Arc::clone(shared);
        match thread::Builder::new()
            .name(format!("{}-slot-{slot}", shared.name))
            .spawn(move || slot_loop(&for_slot, slot))
        {
            Ok(h) => control.threads.push(h),
            Err(e) if slot == 0 => {
                drop(control);
                shared.break_pool(format!("could not start a worker thread: {e}"));
            }
            // The slots already running will take the item.
            Err(_) => {}
        }
    }
    Ok(futures)
}

impl super::Executor<ProcessCall> for ProcessPoolExecutor {
    fn submit_named(&self, name: Option<&str>, call: ProcessCall) -> Result<Future<Value>, SubmitError> {
        ProcessPoolExecutor::submit_named(self, name, call)
    }

    /// The chunk goes to a worker in one message: queued whole, or refused whole.
    fn submit_chunk(&self, calls: Vec<(Option<String>, ProcessCall)>) -> Vec<Result<Future<Value>, SubmitError>> {
        let n = calls.len();
        match ProcessPoolExecutor::submit_chunk(self, calls) {
            Ok(futures) => futures.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); n],
        }
    }

    fn shutdown(&self, wait: bool, cancel_futures: bool) {
        ProcessPoolExecutor::shutdown(self, wait, cancel_futures);
    }
}

impl super::Call for ProcessCall {
    type Output = Value;
    fn call(self) -> Result<Value, Exception> {
        Err(Exception::task(format!("'{}' must run in a process pool", self.name)))
    }
}

impl Drop for ProcessPoolExecutor {
    /// Leaving Python's `with` block: `shutdown(wait=True)`.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// One worker process, as its slot thread holds it.
struct Proc {
    child: Child,
    stdin: Arc<Mutex<BufWriter<ChildStdin>>>,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    worker: Arc<str>,
    tasks: usize,
}

fn spawn_worker(shared: &Shared, slot: usize) -> Result<Proc, String> {
    let mut cmd = Command::new(&shared.program);
    cmd.arg(WORKER_ARG)
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd.envs(shared.worker_env.iter().map(|(k, v)| (k, v)));
    let mut child =
        cmd.spawn().map_err(|e| format!("cannot start a worker process ({}): {e}", shared.program.display()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err("a worker process has no pipes".into());
    };
    let mut stdout = BufReader::new(stdout);
    let pid = child.id();
    match read_frame::<ToParent>(&mut stdout) {
        Ok(Some(ToParent::Hello { version, .. })) if version == PROTOCOL_VERSION => {}
        Ok(Some(ToParent::Hello { version, .. })) => {
            let _ = child.kill();
            return Err(format!("the worker speaks protocol {version}, this program {PROTOCOL_VERSION}"));
        }
        other => {
            let _ = child.kill();
            let status = child.wait().map(describe_status).unwrap_or_default();
            let why = match other {
                Err(e) => e.to_string(),
                _ => "no greeting".into(),
            };
            return Err(format!(
                "worker process {pid} did not start ({why}; it {status}): does {} call serve_worker_if_requested?",
                shared.program.display()
            ));
        }
    }
    let n = shared.next_worker.fetch_add(1, Ordering::SeqCst);
    let worker: Arc<str> = format!("{}-{}", shared.name, n + 1).into();
    let _ = slot;
    emit(&shared.sink, || Observation::WorkerStarted {
        pool: Arc::clone(&shared.name),
        worker: Arc::clone(&worker),
        pid: Some(pid),
    });
    Ok(Proc { child, stdin: Arc::new(Mutex::new(BufWriter::new(stdin))), stdout, pid, worker, tasks: 0 })
}

/// How sending and reading one item went.
enum Exchange {
    /// Every call finished (this many).
    Done(usize),
    /// The worker's pipe broke (it died, or was killed): the calls it had started and
    /// not finished, and those sent ahead that it never started.
    Lost { error: String, running: Vec<Entry>, unstarted: Vec<Entry> },
}

/// One worker slot: takes items, (re)starts its worker process, handles its death.
#[allow(clippy::too_many_lines)] // the slot's whole life, read top to bottom
fn slot_loop(shared: &Arc<Shared>, slot: usize) {
    let mut proc: Option<Proc> = None;
    let killer: Arc<dyn Kill> = Arc::new(SlotKiller { shared: Arc::clone(shared), slot });
    let withdrawer: Arc<dyn Withdraw> = Arc::new(SlotWithdraw { shared: Arc::clone(shared), slot });
    let ahead = Ahead { killer: Arc::clone(&killer), withdrawer };
    let mut done_one = false;
    loop {
        // Between items (whichever way the last one ended) this slot is idle.
        if done_one {
            shared.idle_slots.fetch_add(1, Ordering::SeqCst);
        }
        done_one = true;
        let busy_again = || {
            let _ = shared.idle_slots.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        };
        // Counted as waiting before it looks at what was put back and for calls to take
        // back: a slot that puts back or sends calls ahead looks at `waiting` after, so
        // either it sees this slot waiting (and wakes it, or puts the calls back) or this
        // slot sees them.
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        // Calls another slot is taking from the queue are listed as ahead, or put back,
        // before this one looks at either (or at the queue, which holds younger calls).
        let_takers_finish(shared, TAKING_WAIT);
        let put = lock(&shared.front).pop_front();
        // Calls sent ahead left the queue before anything still in it: those held behind
        // a long call go first (see `steal`).
        let stuck = if shared.rx.is_empty() { std::time::Duration::ZERO } else { STUCK };
        let taken = put.or_else(|| steal(shared, slot, stuck).map(|e| vec![e]));
        let item = match taken {
            Some(item) => {
                busy_again();
                Ok(item)
            }
            None => recv_spinning(&shared.rx),
        };
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(item) = item else {
            if lock(&shared.front).is_empty() {
                break;
            }
            continue;
        };
        if item.is_empty() {
            // A wake-up (see `put_back`): what was put back is taken on the next turn.
            done_one = false;
            continue;
        }
        if shared.cancelling.load(Ordering::SeqCst) {
            for e in item {
                e.future.cancel();
            }
            continue;
        }
        if let Some(b) = shared.broken_flag.load(Ordering::SeqCst).then(|| shared.broken()).flatten() {
            fail_broken(item, &b);
            continue;
        }
        if proc.is_none() {
            match start(shared, slot) {
                Ok(p) => proc = Some(p),
                Err(reason) => {
                    fail_broken(item, &shared.break_pool(reason));
                    continue;
                }
            }
            // The pool may have broken while this worker started, before `break_pool`
            // could see it to kill it: it must not run anything then.
            if let Some(b) = shared.broken_flag.load(Ordering::SeqCst).then(|| shared.broken()).flatten() {
                fail_broken(item, &b);
                if let Some(p) = proc.take() {
                    retire(shared, slot, p, Retire::PoolBroke);
                }
                continue;
            }
        }
        let Some(p) = proc.as_mut() else { continue };
        // The pipe is held from the calls' marking as running until they are written: a
        // `kill` of one (which the worker ignores for a call it has not seen) comes after.
        let pipe = Arc::clone(&p.stdin);
        let mut stdin = lock(&pipe);
        // Killable from the moment a call is marked running (`Future::kill` finds it here).
        if let Some(l) = lock(&shared.live).get_mut(&slot) {
            l.running = item.iter().map(|e| e.future.id()).collect();
        }
        // Skip what was cancelled while queued (Python: set_running_or_notify_cancel).
        let runnable: Vec<Entry> = item
            .into_iter()
            .filter(|e| matches!(e.future.start_running(Some((&p.worker, Some(p.pid), Arc::clone(&killer)))), Ok(true)))
            .collect();
        if runnable.is_empty() {
            continue;
        }
        if let Some(l) = lock(&shared.live).get_mut(&slot) {
            l.running = runnable.iter().map(|e| e.future.id()).collect();
            l.since = std::time::Instant::now();
        }
        // A write that fails means the worker is gone: what it sent before is still read.
        let writable = send_calls(&mut stdin, &runnable, false).is_ok();
        drop(stdin);
        match exchange(shared, slot, p, runnable, Some(&ahead), writable) {
            Exchange::Done(n) => {
                p.tasks += n;
                let stopped = lock(&shared.live).get_mut(&slot).is_some_and(|l| {
                    l.running.clear();
                    l.groups.clear();
                    l.on_purpose.is_some()
                });
                if stopped {
                    // Killed just as its last call finished: the process is gone (or going);
                    // the next item gets a fresh worker instead of failing on this one.
                    if let Some(p) = proc.take() {
                        retire(shared, slot, p, Retire::KilledAfterLastCall);
                    }
                    continue;
                }
                if shared.max_tasks_per_child.is_some_and(|m| p.tasks >= m) {
                    if let Some(p) = proc.take() {
                        retire(shared, slot, p, Retire::MaxTasksPerChild);
                    }
                }
            }
            Exchange::Lost { error: io_error, running, unstarted } => {
                let Some(mut p) = proc.take() else { continue };
                let status = p.child.wait().map_or_else(|e| format!("could not be waited for ({e})"), describe_status);
                let live = lock(&shared.live).remove(&slot);
                let on_purpose = live.as_ref().and_then(|l| l.on_purpose);
                if let Some(l) = &live {
                    sigkill(0, &l.groups);
                    end_requests(l);
                }
                emit(&shared.sink, || Observation::WorkerExited {
                    pool: Arc::clone(&shared.name),
                    worker: Arc::clone(&p.worker),
                    pid: Some(p.pid),
                    status: status.clone(),
                });
                let unfinished: Vec<&Entry> = running.iter().filter(|e| !e.future.done()).collect();
                if let Some(KilledBecause::TimedOut(limit)) = on_purpose {
                    for e in unfinished {
                        let _ = e.future.set_exception(Exception::Timeout(crate::TimeoutError::limit(limit)));
                    }
                    // The calls behind it never started: the next worker runs them.
                    put_back(shared, unstarted.into_iter().map(|e| vec![e]));
                } else if on_purpose == Some(KilledBecause::Request) {
                    for e in unfinished {
                        let _ = e.future.set_exception(Exception::Killed(format!(
                            "with worker {} (pid {}), on request",
                            p.worker, p.pid
                        )));
                    }
                    put_back(shared, unstarted.into_iter().map(|e| vec![e]));
                } else if let Some(KilledBecause::ForceShutdown(signal)) = on_purpose {
                    // The pool is shut down, not broken: its later submits are refused
                    // as after shutdown; the calls that ran end as in Python.
                    let how = if signal == nix::sys::signal::Signal::SIGKILL { "killed" } else { "terminated" };
                    let b = BrokenExecutor {
                        kind: BrokenKind::ProcessPool,
                        reason: format!(
                            "A child process terminated abruptly, the process pool is not usable anymore: worker {} (pid {}) {status}: the workers were {how} on request",
                            p.worker, p.pid
                        ),
                    };
                    for e in unfinished {
                        let _ = e.future.set_exception(Exception::Broken(b.clone()));
                    }
                    // Those sent ahead never started: pending, so cancelled.
                    for e in &unstarted {
                        e.future.cancel();
                    }
                } else {
                    let names: Vec<String> = unfinished.iter().map(|e| format!("'{}'", e.label())).collect();
                    let reason = format!(
                        "A child process terminated abruptly, the process pool is not usable anymore: worker {} (pid {}) {status} while running {}{}",
                        p.worker,
                        p.pid,
                        names.join(", "),
                        if io_error.is_empty() { String::new() } else { format!(" ({io_error})") }
                    );
                    let b = shared.break_pool(reason);
                    for e in unfinished.into_iter().chain(&unstarted) {
                        let _ = e.future.set_exception(Exception::Broken(b.clone()));
                    }
                }
            }
        }
    }
    if let Some(p) = proc.take() {
        retire(shared, slot, p, Retire::Shutdown);
    }
}

/// Takes the next item, watching the queue for a few microseconds before sleeping on it:
/// a caller that submits one call after another (`submit` then `result`, in a loop)
/// sends the next one right after the last finished, and a sleeping slot thread would
/// cost a wake-up each time (10-20 µs for an idle vCPU of a VM, more than the call).
fn recv_spinning(rx: &Receiver<Item>) -> Result<Item, crossbeam_channel::RecvError> {
    const SPIN: std::time::Duration = std::time::Duration::from_micros(50);
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(item) => return Ok(item),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return Err(crossbeam_channel::RecvError),
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return rx.recv(),
        }
    }
}

fn fail_broken(item: Item, b: &BrokenExecutor) {
    for e in item {
        let _ = e.future.set_exception(Exception::Broken(b.clone()));
    }
}

/// Starts a worker for `slot` and runs the initializer in it.
fn start(shared: &Arc<Shared>, slot: usize) -> Result<Proc, String> {
    let mut p = spawn_worker(shared, slot)?;
    {
        let mut live = lock(&shared.live);
        live.insert(
            slot,
            Live {
                pid: p.pid,
                groups: Vec::new(),
                on_purpose: None,
                running: Vec::new(),
                since: std::time::Instant::now(),
                requests: HashMap::new(),
                ahead: Vec::new(),
                withdrawals: Vec::new(),
                stdin: Arc::clone(&p.stdin),
                thread: thread::current().id(),
                kill_target: None,
            },
        );
        if let (Some(signal), Some(l)) = (*lock(&shared.forced), live.get_mut(&slot)) {
            // Started while the workers were being terminated or killed: so is it.
            force(l, signal);
        }
    }
    if let Some(init) = &shared.initializer {
        let f = Future::new();
        let entry = Entry { future: f.clone(), call: init.clone(), name: Some("initializer".into()), packed: None };
        let writable = send_calls(&mut lock(&p.stdin), std::slice::from_ref(&entry), false).is_ok();
        match exchange(shared, slot, &mut p, vec![entry], None, writable) {
            Exchange::Done(_) => {
                if let Ok(Some(e)) = f.exception(Some(std::time::Duration::ZERO)) {
                    retire(shared, slot, p, Retire::InitializerFailed);
                    return Err(format!(
                        "A process initializer failed, the process pool is not usable anymore ({}: {e})",
                        e.type_name()
                    ));
                }
            }
            Exchange::Lost { error: e, .. } => {
                retire(shared, slot, p, Retire::InitializerDied);
                return Err(format!("A process initializer died, the process pool is not usable anymore ({e})"));
            }
        }
    }
    Ok(p)
}

fn retire(shared: &Shared, slot: usize, mut p: Proc, why: Retire) {
    let _ = write_frame(&mut *lock(&p.stdin), &ToWorker::Exit);
    let status = p.child.wait().map(describe_status).unwrap_or_default();
    lock(&shared.live).remove(&slot);
    emit(&shared.sink, || Observation::WorkerExited {
        pool: Arc::clone(&shared.name),
        worker: Arc::clone(&p.worker),
        pid: Some(p.pid),
        status: match why.why() {
            None => status,
            Some(why) => format!("{why}; {status}"),
        },
    });
}

/// Writes `calls` to the worker's stdin, in order: a packed `map` chunk as a `chunk`
/// frame, the others together in `run` frames; flushed once.
fn send_calls(stdin: &mut BufWriter<ChildStdin>, calls: &[Entry], ahead: bool) -> std::io::Result<()> {
    let mut run: Vec<CallRef<'_>> = Vec::new();
    for e in calls {
        if let Some(items) = &e.packed {
            if !run.is_empty() {
                queue_frame(stdin, &RunRef { calls: std::mem::take(&mut run), ahead })?;
            }
            let task = e.name.as_deref().unwrap_or("");
            queue_frame(stdin, &ChunkRef { id: e.future.id().0, name: &e.call.name, task, items, ahead })?;
        } else {
            run.push(CallRef {
                id: e.future.id().0,
                name: &e.call.name,
                args: &e.call.args,
                task: e.name.as_deref().unwrap_or(""),
            });
        }
    }
    if !run.is_empty() {
        queue_frame(stdin, &RunRef { calls: run, ahead })?;
    }
    std::io::Write::flush(stdin)
}

/// With `calls` sent to the worker (marked running; `writable`: the write went well),
/// sends it more calls from the queue, with `ahead`, before they end; reads until every
/// call sent has finished, or been taken back. A write that fails means the worker is
/// gone: what it sent before is still read, to its end.
fn exchange(
    shared: &Arc<Shared>,
    slot: usize,
    p: &mut Proc,
    calls: Vec<Entry>,
    ahead: Option<&Ahead>,
    mut writable: bool,
) -> Exchange {
    let mut inflight: crate::observe::IdMap<u64, Entry> = calls.into_iter().map(|e| (e.future.id().0, e)).collect();
    let mut finished_calls = 0;
    while !inflight.is_empty() {
        if let Some(a) = ahead.filter(|_| writable) {
            // Once what the worker sent is read: more calls.
            if p.stdout.buffer().is_empty() {
                writable = send_ahead(shared, slot, p, a, finished_calls, &mut inflight).is_ok();
            }
        }
        let msg = match read_frame::<ToParent>(&mut p.stdout) {
            Ok(Some(m)) => m,
            Ok(None) => return lost(shared, slot, String::new(), inflight),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return lost(shared, slot, String::new(), inflight)
            }
            Err(e) => {
                // Garbage on the pipe: stop this worker; the pool breaks with the reason.
                if let Some(l) = lock(&shared.live).get(&slot) {
                    sigkill(l.pid, &l.groups);
                }
                return lost(shared, slot, format!("protocol error: {e}"), inflight);
            }
        };
        // One call ended: no longer killable (a late `kill` must not hit the worker's
        // next call), then its future finishes.
        let mut finished = |id: u64, result: Result<Value, WireError>, unmarked: bool| {
            let Some(e) = inflight.remove(&id) else { return };
            if !unmarked {
                if let Some(l) = lock(&shared.live).get_mut(&slot) {
                    l.running.retain(|r| r.0 != id);
                    missed_kill(l, id);
                }
            }
            let outcome = result.map_err(from_wire);
            if let (Ok(v), Some(hook)) = (&outcome, &shared.on_value) {
                hook(FutureId(id), v);
            }
            let _ = e.future.finish(outcome, "set_result");
            finished_calls += 1;
        };
        match msg {
            ToParent::Finished { id, result } => finished(id, result, false),
            ToParent::Results { results } => {
                // A chunk's calls leave the running list in one pass (not one a call: a
                // scan of the chunk for each of its calls).
                let mut ids: Vec<u64> = results.iter().map(|r| r.id).collect();
                ids.sort_unstable();
                if let Some(l) = lock(&shared.live).get_mut(&slot) {
                    l.running.retain(|r| ids.binary_search(&r.0).is_err());
                    if let Some(t) = l.kill_target.filter(|t| ids.binary_search(&t.0).is_ok()) {
                        missed_kill(l, t.0);
                    }
                }
                for r in results {
                    finished(r.id, r.result, true);
                }
            }
            ToParent::Started { id } => {
                if let Some(a) = ahead {
                    started(shared, slot, p, a, &inflight, FutureId(id));
                }
            }
            ToParent::Skipped { id } => skipped(shared, slot, &mut inflight, FutureId(id)),
            ToParent::Request { id, req, body } => answer(shared, slot, p, id, req, body),
            ToParent::Group { pgid, .. } => {
                if let Some(l) = lock(&shared.live).get_mut(&slot) {
                    l.groups.push(pgid);
                }
            }
            ToParent::Output { id, stream, line, dropped } => {
                if let Some(hook) = &shared.on_output {
                    hook(FutureId(id), stream, line, dropped);
                }
            }
            ToParent::Hello { .. } | ToParent::InitFailed { .. } => {}
        }
    }
    Exchange::Done(finished_calls)
}

/// Call `id` ended with its result: a kill for it came too late (the worker ended the
/// call before it read the order, and lives on).
fn missed_kill(l: &mut Live, id: u64) {
    if l.kill_target.is_some_and(|t| t.0 == id) {
        l.kill_target = None;
        if matches!(l.on_purpose, Some(KilledBecause::Request | KilledBecause::TimedOut(_))) {
            l.on_purpose = None;
        }
    }
}

/// Sends the worker more calls, up to [`AHEAD`] not started and as its
/// `max_tasks_per_child` allows: single calls put back first (`Shared::front`), then from
/// the queue, while no other slot waits for work.
fn send_ahead(
    shared: &Arc<Shared>,
    slot: usize,
    p: &Proc,
    a: &Ahead,
    finished_calls: usize,
    inflight: &mut crate::observe::IdMap<u64, Entry>,
) -> std::io::Result<()> {
    // Counted as taking before it looks at `waiting`; a slot about to wait counts itself
    // waiting before it looks at `taking`: one of the two sees the other.
    shared.taking.fetch_add(1, Ordering::SeqCst);
    let mut taking = Taking(Some(&shared.taking));
    if shared.broken_flag.load(Ordering::SeqCst) || shared.waiting.load(Ordering::SeqCst) > 0 {
        return Ok(());
    }
    let allowed =
        shared.max_tasks_per_child.map_or(usize::MAX, |m| m.saturating_sub(p.tasks + finished_calls + inflight.len()));
    let mut room = match lock(&shared.live).get(&slot) {
        Some(l) => AHEAD.saturating_sub(l.ahead.len()).min(allowed),
        None => 0,
    };
    // Single calls only: the calls of a chunk (`submit_chunk`) run as one, all marked
    // running when sent, so a chunk is put back for the next free worker.
    let mut calls: Vec<Entry> = Vec::new();
    {
        let mut front = lock(&shared.front);
        while room > 0 && front.front().is_some_and(|item| item.len() == 1) {
            calls.extend(front.pop_front().into_iter().flatten());
            room -= 1;
        }
    }
    let mut chunk = None;
    while room > 0 && lock(&shared.front).is_empty() {
        let Ok(item) = shared.rx.try_recv() else { break };
        if item.is_empty() {
            // A wake-up meant for a waiting slot (see `put_back`): passed on.
            if let Some(tx) = lock(&shared.control).tx.as_ref() {
                let _ = tx.send(item);
            }
            break;
        }
        if item.len() == 1 {
            calls.extend(item);
            room -= 1;
        } else {
            chunk = Some(item);
            break;
        }
    }
    put_back(shared, chunk);
    if calls.is_empty() {
        return Ok(());
    }
    // The pipe is held until the calls are written, so that no `skip` of theirs goes
    // before them; they are listed as ahead before a cancel can find them so.
    let mut stdin = lock(&p.stdin);
    if let Some(l) = lock(&shared.live).get_mut(&slot) {
        l.ahead.extend(calls.iter().map(|e| e.future.clone()));
    }
    let (mut sending, gone): (Vec<Entry>, Vec<Entry>) =
        calls.into_iter().partition(|e| matches!(e.future.send_ahead(Arc::clone(&a.withdrawer)), Ok(true)));
    // Cancelled while queued (and now told so): not sent. And if a slot has started to
    // wait for work, or the pool to cancel its pending calls, none is sent after all.
    let undo = shared.waiting.load(Ordering::SeqCst) > 0 || shared.cancelling.load(Ordering::SeqCst);
    let mut back: Vec<Entry> = Vec::new();
    if undo {
        back = std::mem::take(&mut sending);
    }
    if !gone.is_empty() || !back.is_empty() {
        let not_sent = |id: FutureId| gone.iter().chain(&back).any(|e| e.future.id() == id);
        let answered = lock(&shared.live).get_mut(&slot).map_or_else(Vec::new, |l| {
            l.ahead.retain(|f| !not_sent(f.id()));
            take_withdrawals(l, not_sent)
        });
        for e in &back {
            e.future.back_from_ahead();
        }
        // Whoever asked for one of these back has it: it was never sent.
        for tx in answered {
            let _ = tx.send(Answer::Withdrawn(None));
        }
    }
    if !back.is_empty() {
        // None is sent after all (`sending` is empty): they go back, the pipe let go first
        // (`put_back` takes the queue's lock, which comes before the pipe's), and a
        // waiting slot takes them in their order.
        drop(stdin);
        if shared.cancelling.load(Ordering::SeqCst) {
            for e in back {
                e.future.cancel();
            }
        } else {
            put_back(shared, back.into_iter().map(|e| vec![e]));
        }
        return Ok(());
    }
    // Listed as ahead: a slot about to wait may look now (the write may wait on a worker
    // that does not read).
    taking.done();
    let sent = send_calls(&mut stdin, &sending, true);
    drop(stdin);
    inflight.extend(sending.into_iter().map(|e| (e.future.id().0, e)));
    sent
}

/// A slot counted in `Shared::taking` until [`Taking::done`] or its drop.
struct Taking<'a>(Option<&'a AtomicUsize>);

impl Taking<'_> {
    fn done(&mut self) {
        if let Some(n) = self.0.take() {
            n.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// Waits, `within` at most, until no slot is taking calls from the queue to send ahead.
fn let_takers_finish(shared: &Shared, within: std::time::Duration) {
    let since = std::time::Instant::now();
    while shared.taking.load(Ordering::SeqCst) > 0 && since.elapsed() < within {
        std::thread::yield_now();
    }
}

/// How long at most `shutdown(cancel_futures=True)` lets slots finish taking calls to
/// send ahead, so that none of those is left pending when it returns.
const SHUTDOWN_TAKING_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How long at most a slot about to wait for work lets others finish taking calls to
/// send ahead (microseconds as a rule; longer only if one waits on a worker's pipe).
const TAKING_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// The worker started `id`: if it was sent ahead, it is running now (and killable), and
/// whoever asked for it back is told it started.
fn started(
    shared: &Shared,
    slot: usize,
    p: &Proc,
    a: &Ahead,
    inflight: &crate::observe::IdMap<u64, Entry>,
    id: FutureId,
) {
    let was_ahead = lock(&shared.live).get_mut(&slot).is_some_and(|l| {
        let Some(at) = l.ahead.iter().position(|f| f.id() == id) else { return false };
        l.ahead.remove(at);
        l.running.push(id);
        l.since = std::time::Instant::now();
        true
    });
    if !was_ahead {
        return;
    }
    if let Some(e) = inflight.get(&id.0) {
        let _ = e.future.start_running(Some((&p.worker, Some(p.pid), Arc::clone(&a.killer))));
    }
    let waiting = lock(&shared.live).get_mut(&slot).map_or_else(Vec::new, |l| take_withdrawals(l, |t| t == id));
    for tx in waiting {
        let _ = tx.send(Answer::Started);
    }
}

/// The worker dropped `id` on a `skip`: the first who asked for it gets it (a cancel, or
/// a slot with nothing to do), or, if no one waits any more, it is put back.
fn skipped(shared: &Shared, slot: usize, inflight: &mut crate::observe::IdMap<u64, Entry>, id: FutureId) {
    let waiting = lock(&shared.live).get_mut(&slot).map_or_else(Vec::new, |l| {
        l.ahead.retain(|f| f.id() != id);
        take_withdrawals(l, |t| t == id)
    });
    let Some(e) = inflight.remove(&id.0) else { return };
    e.future.back_from_ahead();
    let mut entry = Some(e);
    for tx in waiting {
        let answer = Answer::Withdrawn(entry.take());
        if let Err(crossbeam_channel::SendError(Answer::Withdrawn(back))) = tx.send(answer) {
            // That one gave up waiting.
            entry = entry.or(back);
        }
    }
    put_back(shared, entry.map(|e| vec![e]));
}

/// Takes off `l`'s list those waiting for the calls `which` picks, to answer them.
fn take_withdrawals(l: &mut Live, which: impl Fn(FutureId) -> bool) -> Vec<Sender<Answer>> {
    let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut l.withdrawals).into_iter().partition(|(t, _)| which(*t));
    l.withdrawals = others;
    mine.into_iter().map(|(_, tx)| tx).collect()
}

/// The worker is gone: which of the calls sent had started, which never did (those go
/// first to whoever waits for them back).
fn lost(shared: &Shared, slot: usize, error: String, inflight: crate::observe::IdMap<u64, Entry>) -> Exchange {
    let (ahead, waiting) = lock(&shared.live)
        .get_mut(&slot)
        .map(|l| (std::mem::take(&mut l.ahead), std::mem::take(&mut l.withdrawals)))
        .unwrap_or_default();
    let (mut unstarted, running): (Vec<Entry>, Vec<Entry>) =
        inflight.into_values().partition(|e| ahead.iter().any(|f| f.id() == e.future.id()));
    // In the order they were sent.
    unstarted.sort_by_key(|e| e.future.id());
    for e in &unstarted {
        e.future.back_from_ahead();
    }
    for (task, tx) in waiting {
        let entry = unstarted.iter().position(|e| e.future.id() == task).map(|at| unstarted.remove(at));
        if let Err(crossbeam_channel::SendError(Answer::Withdrawn(Some(back)))) = tx.send(Answer::Withdrawn(entry)) {
            unstarted.push(back);
        }
    }
    Exchange::Lost { error, running, unstarted }
}

/// Answers a worker's request on a helper thread, in the requesting task's context (so
/// a wait it makes is reported as that task's, and a deadlock break can interrupt it).
fn answer(shared: &Arc<Shared>, slot: usize, p: &Proc, id: u64, req: u64, body: Value) {
    let stdin = Arc::clone(&p.stdin);
    let Some(hook) = shared.on_request.clone() else {
        let reply = ToWorker::Reply {
            req,
            result: Err(WireError {
                kind: crate::error::ErrorKind::TaskError,
                message: "this pool answers no requests".into(),
            }),
        };
        let _ = write_frame(&mut *lock(&stdin), &reply);
        return;
    };
    let interrupt = Arc::new(Interrupt::default());
    interrupt.begin_task(FutureId(id));
    if let Some(l) = lock(&shared.live).get_mut(&slot) {
        l.requests.insert(FutureId(id), Arc::clone(&interrupt));
    }
    let sink = shared.sink.clone();
    let shared2 = Arc::clone(shared);
    let spawned = thread::Builder::new().name("worker-request".into()).spawn(move || {
        let result = {
            let _current = context::enter(TaskContext { id: FutureId(id), sink, interrupt });
            hook(FutureId(id), body)
        };
        if let Some(l) = lock(&shared2.live).get_mut(&slot) {
            l.requests.remove(&FutureId(id));
        }
        let reply = ToWorker::Reply { req, result: result.map_err(|e| to_wire(&e)) };
        let _ = write_frame(&mut *lock(&stdin), &reply);
    });
    if spawned.is_err() {
        let reply = ToWorker::Reply {
            req,
            result: Err(WireError {
                kind: crate::error::ErrorKind::TaskError,
                message: "the parent could not answer".into(),
            }),
        };
        let _ = write_frame(&mut *lock(&p.stdin), &reply);
    }
}

impl std::fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("name", &self.shared.name)
            .field("max_workers", &self.shared.max_workers)
            .finish_non_exhaustive()
    }
}
