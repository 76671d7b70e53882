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
    let every = if tty { Duration::from_millis(100) } else { Duration::from_secs(2) };
    let mut last_draw = Instant::now();
    let mut drawn = false;
    let mut last_line = String::new();
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
                match events.recv_timeout(every) {
                    Ok(e) => Some(e),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if let Some(e) = &e {
            model.apply(e);
            if let Some(text) = notice(&e.kind, policy) {
                let _ = writeln!(err, "{}{text}", if drawn { "\n" } else { "" });
                drawn = false;
            }
        }
        let finished = matches!(e.as_ref().map(|e| &e.kind), Some(EventKind::RunFinished { .. }));
        unclocked += 1;
        if unclocked < CLOCK_EVERY && e.is_some() && !finished {
            continue;
        }
        unclocked = 0;
        if last_draw.elapsed() >= every || finished {
            last_draw = Instant::now();
            let line = progress_line(&model, 24);
            if tty {
                let _ = write!(err, "\r{line}\x1b[K");
                drawn = true;
            } else if line != last_line {
                let _ = writeln!(err, "progress: {line}");
            }
            last_line = line;
            let _ = err.flush();
        }
        if finished {
            break;
        }
    }
    if drawn {
        let _ = writeln!(err);
    }
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
