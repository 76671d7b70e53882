//! The headless reporter: a progress line on stderr while the run goes, then a summary.
//!
//! On a terminal the progress line redraws in place (`\r`) at most ten times a second;
//! otherwise a plain line is printed every two seconds, so logs stay readable. Deadlock
//! reports and pool breakage are printed as they happen. The summary lists counts per
//! state, every failure with its message, and the slowest tasks.

use std::io::Write;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::control::OnDeadlock;
use crate::events::{Event, EventKind};
use crate::model::{Keep, RowState, RunModel};
use crate::text::visible;

/// `[######..] 12/20  done 10  failed 1  cancelled 1  running 2  3.4s`.
fn progress_line(model: &RunModel, width: usize) -> String {
    let c = model.counts();
    let finished = c.finished();
    let filled = (finished * width).checked_div(c.total).unwrap_or(width).min(width);
    format!(
        "[{}{}] {finished}/{}  done {}  failed {}  cancelled {}  running {}  {:.1}s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        c.total,
        c.of(RowState::Done),
        c.of(RowState::Failed),
        c.of(RowState::Cancelled),
        c.of(RowState::Running),
        model.now,
    )
}

/// How often [`follow_status`] looks at the run, and at most how often it redraws on a
/// terminal; elsewhere it prints a line every [`PLAIN_EVERY`].
const STATUS_LOOK: Duration = Duration::from_millis(250);

/// How often a progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// `[######..] 12/20 finished  3.4s`: a run's progress as its status file tells it.
fn status_line(status: &crate::session::Status, width: usize, elapsed: Duration) -> String {
    let filled = (status.done * width).checked_div(status.total).unwrap_or(width).min(width);
    format!(
        "[{}{}] {}/{} finished  {:.1}s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        status.done,
        status.total,
        elapsed.as_secs_f64()
    )
}

/// Follows a run from its status file (`status`, read anew each time) while `alive`:
/// a progress line on `err` (redrawn in place on a terminal, else a line every two
/// seconds), and a word each time the open deadlocks grow. Returns the run's exit code
/// as its status file last said it. It reads no event: a follower this way costs the run
/// nothing (`attach --headless`).
pub fn follow_status(
    mut status: impl FnMut() -> Option<crate::session::Status>,
    mut alive: impl FnMut() -> bool,
    since: std::time::SystemTime,
    tty: bool,
    err: &mut dyn Write,
) -> Option<i32> {
    let every = if tty { STATUS_LOOK } else { PLAIN_EVERY };
    if !alive() {
        // It has ended already: no progress to show, only how it ended.
        return status().and_then(|s| s.exit_code);
    }
    let mut last_line = String::new();
    let mut last_print: Option<Instant> = None;
    let mut deadlocks = 0;
    loop {
        let running = alive();
        let now = status();
        if let Some(s) = &now {
            if s.deadlocks > deadlocks {
                if tty && !last_line.is_empty() {
                    let _ = writeln!(err);
                }
                let _ = writeln!(err, "deadlock: {} open (futuretop attach shows it; b breaks it there)", s.deadlocks);
            }
            deadlocks = s.deadlocks;
            let elapsed = std::time::SystemTime::now().duration_since(since).unwrap_or_default();
            let line = status_line(s, 24, elapsed);
            if last_print.is_none_or(|p| p.elapsed() >= every) || !running {
                if tty {
                    let _ = write!(err, "\rprogress: {line}\x1b[K");
                } else if line != last_line {
                    let _ = writeln!(err, "progress: {line}");
                }
                let _ = err.flush();
                last_print = Some(Instant::now());
                last_line = line;
            }
        }
        if !running {
            if tty && !last_line.is_empty() {
                let _ = writeln!(err);
            }
            return now.and_then(|s| s.exit_code);
        }
        std::thread::sleep(STATUS_LOOK);
    }
}

/// How long the reporter naps when a steady stream of events pauses (see [`report`]).
const NAP: Duration = Duration::from_millis(1);

/// The reporter reads the clock once every this many events (or when the stream pauses),
/// not once an event: a steady stream is hundreds of thousands of events a second.
const CLOCK_EVERY: u32 = 256;

/// What follows a deadlock's report under each `--on-deadlock` policy: the flags, not a
/// key (there is none to press here).
fn deadlock_hint(policy: OnDeadlock) -> &'static str {
    match policy {
        OnDeadlock::Warn => {
            "the run waits on it (--on-deadlock warn): Ctrl-C stops the run; \
             --on-deadlock fail|break ends the run or breaks the deadlock by itself"
        }
        OnDeadlock::Fail => "stopping the run (--on-deadlock fail)",
        OnDeadlock::Break => "breaking it (--on-deadlock break)",
    }
}

/// The line (or lines) an event is told in between the progress lines; `None` for the
/// events the progress line covers.
fn notice(kind: &EventKind, policy: Option<OnDeadlock>) -> Option<String> {
    Some(match kind {
        EventKind::Deadlock { message, .. } => match policy {
            Some(policy) => format!("deadlock: {}\n  {}", visible(message), deadlock_hint(policy)),
            None => format!("deadlock: {}", visible(message)),
        },
        EventKind::DeadlockResolved { tasks, how } => {
            format!("deadlock resolved ({how}): {}", visible(&tasks.join(", ")))
        }
        EventKind::Stall { after, running, pending } => {
            let what: Vec<String> = running
                .iter()
                .map(|r| format!("'{}' for {:.1}s on {}", visible(&r.task), r.running_for, visible(&r.worker)))
                .collect();
            format!(
                "stalled: no future has changed state for {after:.0}s; running: {}; {pending} pending",
                if what.is_empty() { "nothing".to_owned() } else { what.join(", ") },
            )
        }
        EventKind::Retry { task, attempt, attempts, delay, .. } => {
            format!(
                "retry: '{}' attempt {attempt}/{attempts} failed; attempt {} in {delay:.1}s",
                visible(task),
                attempt.saturating_add(1)
            )
        }
        EventKind::PoolRestarted { pool } => format!("pool '{}' restarted", visible(pool)),
        EventKind::Resubmit { task, attempt, revived, .. } => format!(
            "resubmitted: '{}' attempt {attempt}{}",
            visible(task),
            match revived.len() {
                0 => String::new(),
                n => format!(", and {n} tasks it had cancelled"),
            }
        ),
        EventKind::PoolBroken { pool, error } => format!("pool '{}' broke: {}", visible(pool), visible(error)),
        _ => return None,
    })
}

/// What the reporter prints: the progress line (redrawn in place on a terminal at most
/// every 100 ms, else a line every two seconds when it changed) and the notices between.
struct Printer<'a> {
    tty: bool,
    err: &'a mut dyn Write,
    every: Duration,
    last_draw: Instant,
    /// Whether a progress line stands on the terminal without its newline.
    drawn: bool,
    last_line: String,
}

impl<'a> Printer<'a> {
    fn new(tty: bool, err: &'a mut dyn Write) -> Self {
        let every = if tty { Duration::from_millis(100) } else { PLAIN_EVERY };
        Self { tty, err, every, last_draw: Instant::now(), drawn: false, last_line: String::new() }
    }

    /// Prints a notice on a line of its own.
    fn notice(&mut self, text: &str) {
        let _ = writeln!(self.err, "{}{text}", if self.drawn { "\n" } else { "" });
        self.drawn = false;
    }

    /// Whether the progress line is due.
    fn due(&self) -> bool {
        self.last_draw.elapsed() >= self.every
    }

    /// Draws the progress line if it is due (or `now`).
    fn progress(&mut self, model: &RunModel, now: bool) {
        if now || self.due() {
            self.draw(progress_line(model, 24));
        }
    }

    /// Draws progress line `line`.
    fn draw(&mut self, line: String) {
        self.last_draw = Instant::now();
        if self.tty {
            let _ = write!(self.err, "\r{line}\x1b[K");
            self.drawn = true;
        } else if line != self.last_line {
            let _ = writeln!(self.err, "progress: {line}");
        }
        self.last_line = line;
        let _ = self.err.flush();
    }

    /// Ends the progress line.
    fn end(&mut self) {
        if self.drawn {
            let _ = writeln!(self.err);
        }
    }
}

/// Consumes the run's events until it ends, showing progress on `err`; returns the run
/// model (which kept only what the summary needs: [`RunModel::summary`]). `policy` is
/// the run's `--on-deadlock`, for the line after a deadlock's report (`None`: a replay).
pub fn report(
    events: &Receiver<std::sync::Arc<Event>>,
    tty: bool,
    err: &mut dyn Write,
    policy: Option<OnDeadlock>,
) -> RunModel {
    let mut model = RunModel::new(Keep::Unfinished);
    let mut out = Printer::new(tty, err);
    let mut unclocked = 0u32;
    // Whether events came since the reporter last found none.
    let mut busy = false;
    loop {
        let e = match events.try_recv() {
            Ok(e) => {
                busy = true;
                Some(e)
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            Err(crossbeam_channel::TryRecvError::Empty) if std::mem::take(&mut busy) => {
                // A steady stream: nap, then take what came meanwhile in one go, rather
                // than sleep on the channel, which spins and yields the CPU a few times
                // before it sleeps (a system call each) and costs the bus a wake-up.
                unclocked = CLOCK_EVERY;
                std::thread::sleep(NAP);
                None
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {
                unclocked = CLOCK_EVERY;
                match events.recv_timeout(out.every) {
                    Ok(e) => Some(e),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if let Some(e) = &e {
            model.apply(e);
            if let Some(text) = notice(&e.kind, policy) {
                out.notice(&text);
            }
        }
        let finished = matches!(e.as_ref().map(|e| &e.kind), Some(EventKind::RunFinished { .. }));
        unclocked += 1;
        if unclocked < CLOCK_EVERY && e.is_some() && !finished {
            continue;
        }
        unclocked = 0;
        out.progress(&model, finished);
        if finished {
            break;
        }
    }
    out.end();
    model
}

/// What the bus folds a live run's events into for the headless reporter
/// ([`Fold`], [`follow`]).
#[derive(Default)]
struct Folded {
    model: RunModel,
    /// Notices not yet printed.
    notices: Vec<String>,
    /// The run has finished (`run_finished`), or its bus has gone.
    over: bool,
}

/// The headless reporter's side of a live run, on the bus's thread: every event is folded
/// into the run model as it is published, with no channel and no allocation an event
/// (a run's events are its largest cost); [`follow`] shows the model while the run goes.
pub struct Fold {
    shared: std::sync::Arc<(std::sync::Mutex<Folded>, std::sync::Condvar)>,
    policy: Option<OnDeadlock>,
}

/// The reporter's end of a [`Fold`].
pub struct Follower {
    shared: std::sync::Arc<(std::sync::Mutex<Folded>, std::sync::Condvar)>,
}

/// A fold for the bus to feed (give it to [`crate::runner::start_observed`]) and the
/// follower that shows it ([`follow`]). `policy` is the run's `--on-deadlock`.
pub fn fold(policy: Option<OnDeadlock>) -> (Fold, Follower) {
    let shared = std::sync::Arc::new((
        std::sync::Mutex::new(Folded { model: RunModel::new(Keep::Unfinished), ..Folded::default() }),
        std::sync::Condvar::new(),
    ));
    (Fold { shared: std::sync::Arc::clone(&shared), policy }, Follower { shared })
}

impl Fold {
    fn lock(&self) -> std::sync::MutexGuard<'_, Folded> {
        self.shared.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::events::Stage for Fold {
    fn observe(&mut self, e: &Event) {
        let mut f = self.lock();
        if f.over {
            return;
        }
        // A bug in the model must not take the bus (the log, the deadlock detector) with
        // it: the reporter stops there, with what it has, and the run goes on.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.model.apply(e))).is_err() {
            f.notices.push("futuretop: the progress report stopped on a bug; the run goes on".into());
            f.over = true;
            self.shared.1.notify_all();
            return;
        }
        let notice = notice(&e.kind, self.policy);
        let over = matches!(e.kind, EventKind::RunFinished { .. });
        if let Some(text) = notice {
            f.notices.push(text);
        }
        if over {
            f.over = true;
        }
        if over || !f.notices.is_empty() {
            self.shared.1.notify_all();
        }
    }
}

impl Drop for Fold {
    /// The bus has gone (it always drops its stages when it stops): nothing more comes.
    fn drop(&mut self) {
        self.lock().over = true;
        self.shared.1.notify_all();
    }
}

/// Shows a live run's progress on `err` from its [`Fold`] until the run ends: the
/// progress line, and each notice as it comes. Returns the run model, for its summary.
/// The lock is held only to look at the model, never while writing: a slow terminal
/// does not hold the bus up.
pub fn follow(follower: &Follower, tty: bool, err: &mut dyn Write) -> RunModel {
    let mut out = Printer::new(tty, err);
    let (lock, wake) = &*follower.shared;
    let model = loop {
        let mut f = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !f.over && f.notices.is_empty() {
            let left = out.every.saturating_sub(out.last_draw.elapsed());
            f = wake.wait_timeout(f, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        let notices = std::mem::take(&mut f.notices);
        let over = f.over;
        let line = (over || out.due()).then(|| progress_line(&f.model, 24));
        let model = over.then(|| std::mem::take(&mut f.model));
        drop(f);
        for text in notices {
            out.notice(&text);
        }
        if let Some(line) = line {
            out.draw(line);
        }
        if let Some(model) = model {
            break model;
        }
    };
    out.end();
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `attach --headless` follows a run from its status file: a line at most every two
    /// seconds (not on a terminal), a word when a deadlock opens, the last line once the
    /// run has gone, and the exit code the status file gave last.
    #[test]
    fn a_run_followed_from_its_status_file() {
        use crate::session::Status;
        let statuses = [
            None,
            Some(Status { done: 0, total: 4, deadlocks: 0, exit_code: None }),
            Some(Status { done: 2, total: 4, deadlocks: 1, exit_code: None }),
            Some(Status { done: 4, total: 4, deadlocks: 0, exit_code: Some(3) }),
        ];
        let (mut looked, mut asked) = (0, 0);
        let mut out = Vec::new();
        let code = follow_status(
            || {
                looked += 1;
                statuses[(looked - 1).min(3)].clone()
            },
            || {
                // Alive for its first four looks (the first before the loop).
                asked += 1;
                asked < 5
            },
            std::time::SystemTime::now(),
            false,
            &mut out,
        );
        assert_eq!(code, Some(3));
        let text = String::from_utf8(out).expect("text");
        let lines: Vec<&str> = text.lines().map(|l| l.split("finished").next().unwrap_or(l)).collect();
        assert_eq!(
            lines,
            [
                "progress: [........................] 0/4 ",
                "deadlock: 1 open (futuretop attach shows it; b breaks it there)",
                // 2/4 came within two seconds of the first line: not printed.
                "progress: [########################] 4/4 ",
            ],
            "{text}"
        );
        // A run that has ended already: no progress line, only how it ended.
        let mut out = Vec::new();
        let ended = Some(Status { done: 4, total: 4, deadlocks: 0, exit_code: Some(1) });
        let code = follow_status(|| ended.clone(), || false, std::time::SystemTime::now(), true, &mut out);
        assert_eq!((code, out.len()), (Some(1), 0));
    }

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event { seq, t: seq as f64, kind }
    }

    fn pending(seq: u64, id: u64) -> Event {
        ev(seq, EventKind::Pending { attempt: None, task: format!("t{id}").into(), id, pool: "p".into() })
    }

    fn done(seq: u64, id: u64) -> Event {
        ev(
            seq,
            EventKind::Done { task: format!("t{id}").into(), id, pool: "p".into(), result: serde_json::Value::Null },
        )
    }

    #[test]
    fn counts_keep_up_and_a_second_end_is_not_counted_twice() {
        let mut m = RunModel::new(Keep::Unfinished);
        for e in [pending(1, 1), pending(2, 2), done(3, 1), done(4, 1), done(5, 9)] {
            m.apply(&e);
        }
        let c = m.counts();
        assert_eq!((c.total, c.of(RowState::Done), c.of(RowState::Pending)), (2, 1, 1));
        assert_eq!(m.rows.len(), 1, "only the unfinished future is kept");
        let failed = ev(
            6,
            EventKind::Exception {
                task: "t2".into(),
                id: 2,
                pool: "p".into(),
                error: crate::events::ErrorInfo {
                    kind: futuretop_engine::ErrorKind::TaskError,
                    message: "boom".into(),
                },
            },
        );
        m.apply(&failed);
        assert!(m.rows.is_empty());
        let s = m.summary(1);
        assert!(s.starts_with("2 futures: 1 done, 1 failed, 0 cancelled"), "{s}");
        assert!(s.contains("  t2: TaskError: boom\n"), "{s}");
        assert_eq!(progress_line(&m, 4), "[####] 2/2  done 1  failed 1  cancelled 0  running 0  6.0s");
    }

    /// The bus folds a live run's events on its own thread; the reporter shows each notice
    /// and, once the run has finished, its last progress line, and gets the model.
    #[test]
    fn a_folded_run_is_shown_and_summed_up() {
        use crate::events::Stage;
        let (mut fold, follower) = fold(Some(OnDeadlock::Warn));
        let bus = std::thread::spawn(move || {
            let broke = EventKind::PoolBroken { pool: "p".into(), error: "a worker\x1b[2J died".into() };
            let finished = EventKind::RunFinished { counts: crate::events::Counts::default(), exit_code: 1 };
            for e in [pending(1, 1), pending(2, 2), done(3, 1), ev(4, broke), done(5, 2), ev(6, finished)] {
                fold.observe(&e);
            }
            // The bus keeps its stages until it stops.
            fold
        });
        let mut out = Vec::new();
        let model = follow(&follower, false, &mut out);
        drop(bus.join());
        let text = String::from_utf8(out).expect("text");
        assert_eq!(
            text,
            "pool 'p' broke: a worker\\u{1b}[2J died\n\
             progress: [########################] 2/2  done 2  failed 0  cancelled 0  running 0  6.0s\n"
        );
        assert_eq!((model.counts().of(RowState::Done), model.finished), (2, Some(1)));
    }

    /// A bus that stops without `run_finished` (its thread ended) still ends the follower.
    #[test]
    fn a_fold_dropped_before_the_end_ends_the_follower() {
        use crate::events::Stage;
        let (mut fold, follower) = fold(None);
        let bus = std::thread::spawn(move || {
            fold.observe(&pending(1, 1));
            drop(fold);
        });
        let mut out = Vec::new();
        let model = follow(&follower, false, &mut out);
        let _ = bus.join();
        assert_eq!((model.counts().total, model.finished), (1, None));
    }

    /// The monitor's model and the headless one count alike, whatever they keep.
    #[test]
    fn both_models_count_alike() {
        let events = [pending(1, 1), pending(2, 2), pending(3, 3), done(4, 2), done(5, 2), done(6, 3)];
        let (mut all, mut unfinished) = (RunModel::new(Keep::All), RunModel::new(Keep::Unfinished));
        for e in &events {
            all.apply(e);
            unfinished.apply(e);
        }
        assert_eq!(all.counts(), unfinished.counts());
        assert_eq!(all.summary(0), unfinished.summary(0));
        assert_eq!((all.rows.len(), unfinished.rows.len()), (3, 1));
        assert_eq!(unfinished.row(1).map(|r| &*r.name), Some("t1"), "the kept row is found by its id");
    }
}
