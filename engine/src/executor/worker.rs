//! The worker side of a process pool: the loop a re-executed binary runs, and the callables it knows by name.
//!
//! A program that uses a [`ProcessPoolExecutor`](super::ProcessPoolExecutor) calls
//! [`serve_worker_if_requested`] first thing in `main`: in the parent it returns at once;
//! in a worker (started as `PROGRAM __futuretop_worker`) it serves calls until the
//! parent says exit or goes away, then exits the process. Callables are registered by
//! name, the analogue of pickling a top-level function in Python.
//!
//! A worker never outlives its parent: it asks the kernel for SIGTERM when the parent
//! dies (`PR_SET_PDEATHSIG`), exits on end-of-file on its stdin, and in both cases kills
//! the process groups of the commands its tasks started.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Stdin, Stdout, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::Value;

use super::protocol::{
    queue_frame, read_frame, CallMsg, CallResult, FinishedRef, RawArgs, ResultsRef, ToParent, ToWorker, WireError,
    PROTOCOL_VERSION,
};
use crate::error::{ErrorKind, Exception};
use crate::status::Stream;

/// The hidden first argument that makes a binary a worker.
pub const WORKER_ARG: &str = "__futuretop_worker";
/// The environment variable that carries the parent's pid to the worker.
pub const PARENT_ENV: &str = "FUTURETOP_PARENT_PID";

/// What a callable running in a worker can ask of its parent.
pub trait WorkerContext {
    /// Sends a request to the parent's request hook and waits for its answer.
    fn request(&mut self, body: Value) -> Result<Value, Exception>;
    /// Reports a line of output.
    fn output(&mut self, stream: Stream, line: String);
    /// Reports that `lines` lines printed on `stream` are not sent (too many a second);
    /// `says` tells it in words (`[750 more lines not shown]`). By default, sent as a line.
    fn output_dropped(&mut self, stream: Stream, lines: u64, says: String) {
        let _ = lines;
        self.output(stream, says);
    }
    /// Reports the process group of a command the task started (killed with the worker).
    fn group(&mut self, pgid: i32);
    /// The running task's name, the prefix of the futures it submits (`<task>/<call>`).
    // Implementations return a name they hold, so the bound is `self`'s, not `'static`.
    #[allow(clippy::unnecessary_literal_bound)]
    fn task_name(&self) -> &str {
        ""
    }
}

/// A callable a worker can run by name.
pub type Callable = Arc<dyn Fn(&Value, &mut dyn WorkerContext) -> Result<Value, Exception> + Send + Sync>;

/// A callable that takes its arguments as the JSON text they came in, to decode them
/// straight into its own types (no `Value` tree in between).
pub type RawCallable = Arc<dyn Fn(&RawValue, &mut dyn WorkerContext) -> Result<Value, Exception> + Send + Sync>;

/// How a registered callable wants its arguments.
#[derive(Clone)]
enum Registered {
    Value(Callable),
    Raw(RawCallable),
}

/// The callables a worker knows, by name (the analogue of the top-level functions a
/// Python worker can unpickle).
#[derive(Clone, Default)]
pub struct Callables {
    map: HashMap<String, Registered>,
}

impl Callables {
    /// No callables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the callable `name` on `args` here, a panic becoming its exception.
    pub fn call(&self, name: &str, args: &Value, ctx: &mut dyn WorkerContext) -> Result<Value, Exception> {
        match self.map.get(name) {
            None => Err(unknown(name)),
            Some(Registered::Value(f)) => guarded(|| f(args, ctx)),
            Some(Registered::Raw(f)) => {
                let text = serde_json::value::to_raw_value(args)
                    .map_err(|e| Exception::task(format!("malformed arguments: {e}")))?;
                guarded(|| f(&text, ctx))
            }
        }
    }

    /// Runs the callable `name` on arguments given as JSON text: decoded straight into a
    /// raw callable's own types, or into a `Value` first for the others.
    fn call_json(&self, name: &str, args: &RawValue, ctx: &mut dyn WorkerContext) -> Result<Value, Exception> {
        self.map.get(name).map_or_else(|| Err(unknown(name)), |f| f.call_json(args, ctx))
    }

    /// Runs the callable `name` on each item's arguments in order, as one call (a `map`
    /// chunk, Python's `_process_chunk`): the list of the results, or the first error.
    fn call_chunk(&self, name: &str, items: &[RawArgs], ctx: &mut dyn WorkerContext) -> Result<Value, Exception> {
        let f = self.map.get(name).ok_or_else(|| unknown(name))?;
        items.iter().map(|args| f.call_json(&args.0, ctx)).collect::<Result<Vec<Value>, _>>().map(Value::Array)
    }

    /// Registers `f` under `name` (replacing any earlier one).
    pub fn register(
        &mut self,
        name: &str,
        f: impl Fn(&Value, &mut dyn WorkerContext) -> Result<Value, Exception> + Send + Sync + 'static,
    ) -> &mut Self {
        self.map.insert(name.to_owned(), Registered::Value(Arc::new(f)));
        self
    }

    /// Registers `f` under `name`, to be given its arguments as JSON text (replacing any
    /// earlier one): for a callable that decodes them into types of its own.
    pub fn register_raw(
        &mut self,
        name: &str,
        f: impl Fn(&RawValue, &mut dyn WorkerContext) -> Result<Value, Exception> + Send + Sync + 'static,
    ) -> &mut Self {
        self.map.insert(name.to_owned(), Registered::Raw(Arc::new(f)));
        self
    }
}

impl Registered {
    /// Runs it on arguments given as JSON text (see [`Callables::call_json`]).
    fn call_json(&self, args: &RawValue, ctx: &mut dyn WorkerContext) -> Result<Value, Exception> {
        match self {
            Self::Raw(f) => guarded(|| f(args, ctx)),
            Self::Value(f) => {
                let v: Value = serde_json::from_str(args.get())
                    .map_err(|e| Exception::task(format!("malformed arguments: {e}")))?;
                guarded(|| f(&v, ctx))
            }
        }
    }
}

fn unknown(name: &str) -> Exception {
    Exception::task(format!("no callable named '{name}' is registered in the worker"))
}

/// Runs `f`, a panic becoming its exception.
fn guarded(f: impl FnOnce() -> Result<Value, Exception>) -> Result<Value, Exception> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Exception::Task { message: crate::future::panic_message(p.as_ref()), panicked: true }))
}

/// Process groups of the commands started in this process, killed when it is told to go.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Records the process group of a command a callable started in this process, to be
/// killed with [`kill_process_groups`] (and, in a process-pool worker, when the worker
/// exits or is told to stop by a signal). Report it to the parent as well, with
/// [`WorkerContext::group`].
pub fn remember_process_group(pgid: i32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.push(pgid);
    }
}

/// Kills every process group recorded with [`remember_process_group`] (SIGKILL): call it
/// before a callable ends its worker process on purpose.
pub fn kill_process_groups() {
    if let Ok(groups) = GROUPS.lock() {
        for &g in groups.iter() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(g), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Turns an error from the wire back into an exception.
pub(crate) fn from_wire(e: WireError) -> Exception {
    use crate::error::{BrokenExecutor, BrokenKind, CancelledError, ErrorKind, TimeoutError};
    let broken = |kind| Exception::Broken(BrokenExecutor { kind, reason: e.message.clone() });
    match e.kind {
        ErrorKind::TimeoutError => Exception::Timeout(TimeoutError::single()),
        ErrorKind::CancelledError => Exception::Cancelled(CancelledError),
        ErrorKind::BrokenProcessPool => broken(BrokenKind::ProcessPool),
        ErrorKind::BrokenThreadPool => broken(BrokenKind::ThreadPool),
        ErrorKind::BrokenSlurmPool => broken(BrokenKind::Slurm),
        ErrorKind::Killed => Exception::Killed(e.message.trim_start_matches("killed: ").to_owned()),
        ErrorKind::DeadlockError => Exception::Deadlock(e.message.trim_start_matches("deadlock broken: ").to_owned()),
        ErrorKind::CommandFailed => Exception::CommandFailed(e.message),
        ErrorKind::TaskError => Exception::Task { message: e.message, panicked: false },
    }
}

/// An exception as it crosses the pipe.
pub(crate) fn to_wire(e: &Exception) -> WireError {
    WireError { kind: e.kind(), message: e.to_string() }
}

/// The worker's side of the pipe to the parent: frames, and the results of a `map`
/// chunk held back to go in one `results` frame.
struct Out {
    w: BufWriter<Stdout>,
    held: Vec<CallResult>,
    /// About how many bytes the held results take (see [`weight`]).
    held_bytes: usize,
    /// Since when results are held.
    held_since: Option<std::time::Instant>,
}

/// Held results go to the parent once they weigh this much, so that a large result is
/// not held back (and lost if a later call of the chunk kills the worker).
const HELD_BYTES: usize = 64 * 1024;

/// About how many bytes `v` takes as JSON, counting its strings and 8 a scalar; stops
/// counting past [`HELD_BYTES`].
fn weight(v: &Value) -> usize {
    fn sum(mut parts: impl Iterator<Item = usize>) -> usize {
        parts.try_fold(2usize, |n, w| Some(n + w).filter(|&n| n <= HELD_BYTES)).unwrap_or(HELD_BYTES)
    }
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => sum(a.iter().map(weight)),
        Value::Object(o) => sum(o.iter().map(|(k, v)| k.len() + 3 + weight(v))),
        _ => 8,
    }
}

impl Out {
    /// Queues the held results as one frame (a `finished` frame for a single one).
    fn queue_held(&mut self) -> std::io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        self.held_since = None;
        let sent = if held.len() == 1 {
            queue_frame(&mut self.w, &FinishedRef { id: held[0].id, result: &held[0].result })
        } else {
            queue_frame(&mut self.w, &ResultsRef { results: &held })
        };
        if let Err(e) = sent {
            // A result too large or not encodable becomes its call's error; the others go
            // one by one.
            for CallResult { id, result } in held {
                let msg = ToParent::Finished { id, result };
                if queue_frame(&mut self.w, &msg).is_err() {
                    let error =
                        WireError { kind: ErrorKind::TaskError, message: format!("cannot send the result: {e}") };
                    queue_frame(&mut self.w, &ToParent::Finished { id, result: Err(error) })?;
                }
            }
        }
        Ok(())
    }

    /// Sends a frame now, after the held results (so the parent sees them first).
    fn send(&mut self, msg: &ToParent) -> std::io::Result<()> {
        self.queue(msg)?;
        self.flush()
    }

    /// Queues `msg` after the held results, to go with the next flush.
    fn queue(&mut self, msg: &ToParent) -> std::io::Result<()> {
        self.queue_held()?;
        queue_frame(&mut self.w, msg)
    }

    /// Sends the held results now.
    fn flush(&mut self) -> std::io::Result<()> {
        self.queue_held()?;
        self.w.flush()
    }
}

/// The worker's side of a running call: its requests, output and process groups go to
/// the parent (after the results before them); the answer to a request comes from the
/// reader thread.
struct Ctx<'a> {
    id: u64,
    task: &'a str,
    next_req: u64,
    replies: &'a crossbeam_channel::Receiver<(u64, Result<Value, WireError>)>,
    output: &'a Mutex<Out>,
    /// Woken when the call waits for a reply: the other thread reads it.
    ready: &'a std::sync::Condvar,
}

impl Ctx<'_> {
    fn send(&self, msg: &ToParent) -> std::io::Result<()> {
        lock(self.output).send(msg)
    }
}

impl WorkerContext for Ctx<'_> {
    fn request(&mut self, body: Value) -> Result<Value, Exception> {
        self.next_req += 1;
        let req = self.next_req;
        self.send(&ToParent::Request { id: self.id, req, body })
            .map_err(|e| Exception::task(format!("the parent is gone: {e}")))?;
        self.ready.notify_all();
        loop {
            match self.replies.recv() {
                Ok((r, result)) if r == req => return result.map_err(from_wire),
                Ok(_) => {}
                // The parent said exit, or went away, while the task waited.
                Err(_) => {
                    kill_process_groups();
                    std::process::exit(0)
                }
            }
        }
    }

    fn output(&mut self, stream: Stream, line: String) {
        let _ = self.send(&ToParent::Output { id: self.id, stream, line, dropped: 0 });
    }

    fn output_dropped(&mut self, stream: Stream, lines: u64, says: String) {
        let _ = self.send(&ToParent::Output { id: self.id, stream, line: says, dropped: lines });
    }

    fn group(&mut self, pgid: i32) {
        let _ = self.send(&ToParent::Group { id: self.id, pgid });
    }

    fn task_name(&self) -> &str {
        self.task
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A call the worker holds, in the order the parent sent it.
enum Job {
    /// One call.
    Call(CallMsg),
    /// A `map` chunk: one call on each item, one result (the list).
    Chunk { id: u64, name: String, task: String, items: Vec<RawArgs> },
}

impl Job {
    const fn id(&self) -> u64 {
        match self {
            Self::Call(c) => c.id,
            Self::Chunk { id, .. } => *id,
        }
    }
}

/// The calls received and not started, and whether the parent has said exit (or gone).
#[derive(Default)]
struct Inbox {
    /// Each with whether it was sent ahead (it gets a `started`).
    jobs: std::collections::VecDeque<(Job, bool)>,
    closed: bool,
    /// The call running now.
    current: Option<u64>,
    /// Calls the parent said to kill before they started: they end `Killed` unrun.
    doomed: Vec<u64>,
    /// One of the two threads reads the parent's frames now.
    reading: bool,
    /// One of them runs a call now.
    busy: bool,
}

/// What the worker's two threads and its flusher share.
struct Channels {
    inbox: Mutex<Inbox>,
    /// Told when there is a call to run, the reader's role is free, or the parent is gone.
    ready: std::sync::Condvar,
    /// The pipe from the parent, read by whichever thread is the reader.
    input: Mutex<BufReader<Stdin>>,
    output: Mutex<Out>,
    /// Calls dropped on `skip`, for the flusher thread to tell the parent (the reader
    /// never writes, so that it always drains the pipe from the parent); never held while
    /// writing.
    skipped: Mutex<Vec<u64>>,
    /// Told when `skipped` grows.
    skipped_added: std::sync::Condvar,
    /// Whether the flusher thread runs (it starts with the first `skipped`).
    flusher: std::sync::Once,
    /// Something is held in `output` and not sent (set and cleared under its lock).
    unsent: std::sync::atomic::AtomicBool,
}

impl Channels {
    /// Has the flusher tell the parent that `id` was dropped.
    fn tell_skipped(self: &Arc<Self>, id: u64) {
        self.start_flusher();
        lock(&self.skipped).push(id);
        self.skipped_added.notify_one();
    }

    /// Sends what `output` holds.
    fn flush_output(&self) -> Result<(), ()> {
        let mut output = lock(&self.output);
        self.unsent.store(false, std::sync::atomic::Ordering::SeqCst);
        output.flush().map_err(|_| ())
    }

    fn start_flusher(self: &Arc<Self>) {
        self.flusher.call_once(|| {
            let ch = Arc::clone(self);
            if std::thread::Builder::new().name("worker-flusher".into()).spawn(move || send_skipped(&ch)).is_err() {
                // Without it, a `skip` goes unanswered: the parent's wait for it ends
                // after its bound, and the call runs.
            }
        });
    }
}

/// The flusher thread: sends the `skipped` answers the reader hands it (the reader never
/// writes, so that it always drains the pipe from the parent).
fn send_skipped(ch: &Channels) {
    loop {
        let skipped = {
            let mut skipped = lock(&ch.skipped);
            while skipped.is_empty() {
                skipped = ch.skipped_added.wait(skipped).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            std::mem::take(&mut *skipped)
        };
        let mut out = lock(&ch.output);
        for id in skipped {
            if out.queue(&ToParent::Skipped { id }).is_err() {
                return;
            }
        }
        ch.unsent.store(false, std::sync::atomic::Ordering::SeqCst);
        if out.flush().is_err() {
            return;
        }
    }
}

/// Reads one frame from the parent and acts on it: calls go to the inbox (a `skip` drops
/// one that has not started; a `kill` kills the worker if it runs that call, or dooms it
/// if it has not started), replies to the thread waiting for them. Returns false once
/// the parent says exit or goes away. The reader never writes to the parent, so that it
/// always drains the pipe from it.
fn read_one(ch: &Arc<Channels>, replies: &crossbeam_channel::Sender<(u64, Result<Value, WireError>)>) -> bool {
    let frame = read_frame::<ToWorker>(&mut *lock(&ch.input));
    match frame {
        Ok(Some(ToWorker::Run { calls, ahead })) => {
            lock(&ch.inbox).jobs.extend(calls.into_iter().map(|c| (Job::Call(c), ahead)));
        }
        Ok(Some(ToWorker::Chunk { id, name, task, items, ahead })) => {
            lock(&ch.inbox).jobs.push_back((Job::Chunk { id, name, task, items }, ahead));
        }
        Ok(Some(ToWorker::Skip { id })) => {
            // Dropped, or started: decided under the inbox's lock, so the parent hears
            // exactly one of `skipped` and `started`.
            let dropped = {
                let mut inbox = lock(&ch.inbox);
                inbox.jobs.iter().position(|(j, _)| j.id() == id).and_then(|at| inbox.jobs.remove(at)).is_some()
            };
            if dropped {
                ch.tell_skipped(id);
            }
        }
        Ok(Some(ToWorker::Kill { id })) => {
            // Under the inbox's lock, so that the call cannot end and the next start in
            // between: it is this call that dies, or none.
            let mut inbox = lock(&ch.inbox);
            if inbox.current == Some(id) {
                kill_process_groups();
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
            } else if inbox.jobs.iter().any(|(j, _)| j.id() == id) {
                inbox.doomed.push(id);
            }
            // Else the call has ended (the kill came late): nothing to do.
        }
        Ok(Some(ToWorker::Reply { req, result })) => {
            let _ = replies.send((req, result));
        }
        Ok(Some(ToWorker::Exit) | None) | Err(_) => {
            let mut inbox = lock(&ch.inbox);
            inbox.closed = true;
            if inbox.busy {
                // Gone while a call runs (its parent died, or the call waits on a reply
                // that will not come): its commands go with it.
                kill_process_groups();
                std::process::exit(0);
            }
            return false;
        }
    }
    true
}

/// How long a worker thread that waits lets the other run a call with no one reading the
/// parent's frames before it reads them itself (a `skip`, a `kill` or more calls); a
/// call that waits for a reply wakes it at once.
const HANDOVER: std::time::Duration = std::time::Duration::from_millis(20);

/// What a worker thread does next.
enum Turn {
    /// Run this call (sent ahead or not; doomed by a `kill` before it started).
    Run(Job, bool, bool),
    /// Send what is held, then look again.
    Flush,
    /// Read a frame.
    Read,
    /// The parent said exit, or went away.
    Stop,
}

/// One of the worker's two threads. Whichever is free runs the next call, and the other
/// reads the parent's frames meanwhile (a `skip`, a `kill` or a reply is seen while a call
/// runs); the thread that reads a call runs it itself when the other is not busy, so that
/// a call waits for no second wake-up.
fn work(
    ch: &Arc<Channels>,
    callables: &Callables,
    replies: &crossbeam_channel::Receiver<(u64, Result<Value, WireError>)>,
    replies_tx: &crossbeam_channel::Sender<(u64, Result<Value, WireError>)>,
) -> Result<(), ()> {
    loop {
        let turn = {
            let mut inbox = lock(&ch.inbox);
            loop {
                if !inbox.busy {
                    if let Some((job, ahead)) = inbox.jobs.pop_front() {
                        let id = job.id();
                        let doomed = inbox.doomed.iter().position(|d| *d == id).map(|at| inbox.doomed.swap_remove(at));
                        let doomed = doomed.is_some();
                        if !doomed {
                            inbox.current = Some(id);
                        }
                        // The other thread is not woken for it: should the call last, it
                        // finds no one reading within `HANDOVER` and reads meanwhile (a
                        // short call would pay a wake-up, twice its own cost).
                        inbox.busy = true;
                        break Turn::Run(job, ahead, doomed);
                    }
                    if inbox.closed {
                        break Turn::Stop;
                    }
                    // Nothing to run: what is held goes first. The thread that sends it
                    // counts as busy meanwhile, so that the other one, reading, does not
                    // start a call and leave the pipe from the parent undrained while this
                    // write waits for the parent to read.
                    if ch.unsent.load(std::sync::atomic::Ordering::SeqCst) {
                        inbox.busy = true;
                        break Turn::Flush;
                    }
                }
                if inbox.closed && !inbox.busy {
                    break Turn::Stop;
                }
                if !inbox.reading {
                    inbox.reading = true;
                    break Turn::Read;
                }
                inbox = ch.ready.wait_timeout(inbox, HANDOVER).unwrap_or_else(std::sync::PoisonError::into_inner).0;
            }
        };
        match turn {
            Turn::Stop => return Ok(()),
            Turn::Flush => {
                let flushed = ch.flush_output();
                lock(&ch.inbox).busy = false;
                flushed?;
            }
            Turn::Read => {
                let more = read_one(ch, replies_tx);
                lock(&ch.inbox).reading = false;
                if !more {
                    // The parent said exit (or went away) with nothing running: what is
                    // queued still runs, then each thread stops (`Turn::Stop`).
                    ch.ready.notify_all();
                }
            }
            Turn::Run(job, ahead, doomed) => {
                let id = job.id();
                let result = if doomed {
                    Err(Exception::Killed(format!(
                        "before it started, in worker pid {}, on request",
                        std::process::id()
                    )))
                } else {
                    if ahead {
                        // Sent before the call runs, with the results before it: should
                        // the call crash the worker, the parent knows it had started, and
                        // has every result before it.
                        let mut output = lock(&ch.output);
                        ch.unsent.store(false, std::sync::atomic::Ordering::SeqCst);
                        output.queue(&ToParent::Started { id }).map_err(|_| ())?;
                        output.flush().map_err(|_| ())?;
                    }
                    let task = match &job {
                        Job::Call(c) => &c.task,
                        Job::Chunk { task, .. } => task,
                    };
                    let mut ctx = Ctx { id, task, next_req: 0, replies, output: &ch.output, ready: &ch.ready };
                    match &job {
                        Job::Call(c) => callables.call_json(&c.name, &c.args, &mut ctx),
                        Job::Chunk { name, items, .. } => callables.call_chunk(name, items, &mut ctx),
                    }
                };
                // No longer killable before its result can be sent: a kill that comes
                // later leaves this worker alone, and its result reaches the parent.
                lock(&ch.inbox).current = None;
                let result = result.map_err(|e| to_wire(&e));
                let mut output = lock(&ch.output);
                output.held_bytes += match &result {
                    Ok(v) => weight(v),
                    Err(e) => e.message.len() + e.kind.as_str().len(),
                };
                output.held.push(CallResult { id, result });
                let since = *output.held_since.get_or_insert_with(std::time::Instant::now);
                ch.unsent.store(true, std::sync::atomic::Ordering::SeqCst);
                // The calls of a chunk (a `run` frame of several) send theirs every
                // `CHUNK_FLUSH_EVERY`.
                if output.held_bytes >= HELD_BYTES || since.elapsed() >= CHUNK_FLUSH_EVERY {
                    ch.unsent.store(false, std::sync::atomic::Ordering::SeqCst);
                    output.flush().map_err(|_| ())?;
                }
                drop(output);
                // The next call starts once this one's result is held (or sent): a call
                // that crashes the worker never takes it down with it.
                lock(&ch.inbox).busy = false;
            }
        }
    }
}

/// While a `map` chunk runs, its results are flushed to the parent at least this often.
const CHUNK_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

/// If this process was started as a worker, serves `callables` and exits; else returns.
pub fn serve_worker_if_requested(callables: &Callables) {
    if std::env::args().nth(1).as_deref() == Some(WORKER_ARG) {
        std::process::exit(serve(callables));
    }
}

fn guard_against_orphaning() {
    // Ask for SIGTERM when the parent dies, then check it has not died already.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    let expected = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse::<i32>().ok());
    if expected.is_some_and(|p| nix::unistd::getppid().as_raw() != p) {
        std::process::exit(1);
    }
}

/// Whether this process is a process-pool worker ([`serve`]): only a worker kills its
/// commands' groups on SIGTERM or SIGINT (a Slurm job, or a library user calling
/// a command callable in its own process, keeps the signals' own meaning).
static IN_WORKER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Call before a callable starts a command in a process group of its own: in a
/// process-pool worker, on SIGTERM or SIGINT, the process groups recorded with
/// [`remember_process_group`] are then killed before the worker exits (elsewhere it does
/// nothing). Set up once, before the worker's first command starts: until then there is no group to kill and the signal's default action
/// ends the worker as well, and a worker that never runs a command is spared the thread
/// (its start costs a tenth of a worker's start-up, on the cores the other workers are
/// starting on). A signal that comes while the thread starts waits for it.
pub fn guard_process_groups() {
    static WATCHING: std::sync::Once = std::sync::Once::new();
    if !IN_WORKER.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    WATCHING.call_once(|| {
        if let Ok(mut signals) =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
        {
            let _ = std::thread::Builder::new().name("worker-signals".into()).spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    kill_process_groups();
                    std::process::exit(128 + sig);
                }
            });
        }
    });
}

fn serve(callables: &Callables) -> i32 {
    IN_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    guard_against_orphaning();
    // A task's panic is reported to the parent as its exception, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = Out { w: BufWriter::new(std::io::stdout()), held: Vec::new(), held_bytes: 0, held_since: None };
    if out.send(&ToParent::Hello { version: PROTOCOL_VERSION, pid: std::process::id() }).is_err() {
        return 1;
    }
    let ch = Arc::new(Channels {
        inbox: Mutex::default(),
        ready: std::sync::Condvar::new(),
        input: Mutex::new(BufReader::new(std::io::stdin())),
        output: Mutex::new(out),
        skipped: Mutex::default(),
        skipped_added: std::sync::Condvar::new(),
        flusher: std::sync::Once::new(),
        unsent: std::sync::atomic::AtomicBool::new(false),
    });
    // Results are held and go in one write: when no call is left to run (the parent
    // waits for them to send more), before a call sent ahead starts (with its `started`),
    // once a call ends `CHUNK_FLUSH_EVERY` after the first was held, or once they weigh
    // `HELD_BYTES`. Requests, output and process groups go at once, after what is held.
    let (replies_tx, replies) = crossbeam_channel::unbounded();
    let (other, other_callables, other_replies, other_tx) =
        (Arc::clone(&ch), callables.clone(), replies.clone(), replies_tx.clone());
    if std::thread::Builder::new()
        .name("worker-2".into())
        .spawn(move || {
            if work(&other, &other_callables, &other_replies, &other_tx).is_err() {
                std::process::exit(1);
            }
        })
        .is_err()
    {
        return 1;
    }
    let served = work(&ch, callables, &replies, &replies_tx);
    kill_process_groups();
    let _ = lock(&ch.output).flush();
    i32::from(served.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context that answers nothing (the calls tested make no requests).
    struct Quiet;

    impl WorkerContext for Quiet {
        fn request(&mut self, _: Value) -> Result<Value, Exception> {
            Err(Exception::task("no parent here"))
        }
        fn output(&mut self, _: Stream, _: String) {}
        fn group(&mut self, _: i32) {}
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("valid JSON")
    }

    #[test]
    fn raw_callables_decode_straight_and_value_callables_get_a_value() {
        #[derive(serde::Deserialize)]
        struct Pow {
            base: i64,
            exp: u32,
        }
        let mut c = Callables::new();
        c.register_raw("pow", |args, _| {
            let p: Pow = serde_json::from_str(args.get()).map_err(|e| Exception::task(format!("malformed: {e}")))?;
            Ok(Value::from(p.base.pow(p.exp)))
        });
        let pow = raw(r#"{"base":2,"exp":10}"#);
        assert_eq!(c.call_json("pow", &pow, &mut Quiet), Ok(Value::from(1024)));
        // The same callable called with a `Value` (a Slurm job's call) gets the same text.
        assert_eq!(c.call("pow", &serde_json::json!({"base": 3, "exp": 2}), &mut Quiet), Ok(Value::from(9)));
        let bad = c.call_json("pow", &raw(r#"{"base":"two"}"#), &mut Quiet).unwrap_err();
        assert!(bad.to_string().starts_with("malformed"), "{bad}");
        c.register("echo", |args, _| Ok(args.clone()));
        assert_eq!(
            c.call_json("echo", &raw(r#"{"b":1,"a":[2]}"#), &mut Quiet),
            Ok(serde_json::json!({"b": 1, "a": [2]}))
        );
        // Registering a name again replaces the callable, whichever kind either is.
        c.register("pow", |_, _| Ok(Value::from("mine")));
        assert_eq!(c.call_json("pow", &pow, &mut Quiet), Ok(Value::from("mine")));
        c.register("panics", |_, _| panic!("boom"));
        let panicked = c.call_json("panics", &raw("null"), &mut Quiet).unwrap_err();
        assert!(panicked.to_string().contains("boom"), "{panicked}");
        let missing = c.call_json("nope", &raw("null"), &mut Quiet).unwrap_err();
        assert!(missing.to_string().contains("no callable named 'nope'"), "{missing}");
    }
}
