//! The headless reporter: a progress line on stderr while the run goes, then a summary.
//!
//! On a terminal the progress line redraws in place (`\r`) at most ten times a second;
//! otherwise a plain line is printed every two seconds, so logs stay readable. Deadlock
//! reports and pool breakage are printed as they happen. The summary lists counts per
//! state, every failure with its message, and the slowest tasks.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::events::{Event, EventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
    Exception,
    Cancelled,
}

/// A future that has not finished yet.
struct Live {
    name: String,
    state: State,
    started: Option<f64>,
    /// When it was first seen, counting from 0: the summary lists in this order.
    order: u64,
}

/// A finished future worth naming in the summary.
struct Named {
    order: u64,
    name: String,
    /// `TYPE: message` for a failure, the reason for a cancellation.
    what: String,
}

/// How many slowest tasks the summary lists.
const SLOWEST: usize = 5;

/// What the reporter saw, for the summary. It keeps only the futures still running or
/// queued, counts per state, what the summary names (failures, cancellations with a
/// reason, the slowest tasks), so its memory does not grow with finished futures.
#[derive(Default)]
pub struct Tally {
    live: HashMap<u64, Live>,
    counts: [usize; 5],
    seen: u64,
    failures: Vec<Named>,
    cancelled: Vec<Named>,
    /// The slowest finished tasks: (seconds, order, name), slowest first.
    slowest: Vec<(f64, u64, String)>,
    planned: usize,
    last_t: f64,
    deadlocks: Vec<String>,
}

impl Tally {
    /// Moves future `id` to `state`; returns it, removed from the live ones if `state`
    /// is final. A final state for a future not live is ignored: every future's first
    /// event is `pending`, so that is a second end (a doctored or concatenated log), and
    /// counting it would count the future twice.
    fn set(&mut self, id: u64, name: &str, state: State) -> Option<Live> {
        let is_final = matches!(state, State::Done | State::Exception | State::Cancelled);
        if is_final && !self.live.contains_key(&id) {
            return None;
        }
        let live = self.live.entry(id).or_insert_with(|| {
            let order = self.seen;
            self.seen += 1;
            self.counts[state as usize] += 1;
            Live { name: name.to_owned(), state, started: None, order }
        });
        if live.state != state {
            self.counts[live.state as usize] -= 1;
            self.counts[state as usize] += 1;
            live.state = state;
        }
        if is_final {
            self.live.remove(&id)
        } else {
            None
        }
    }

    /// Notes a finished future's duration among the slowest.
    fn timed(&mut self, f: &Live, ended: f64) {
        let Some(started) = f.started else { return };
        let d = ended - started;
        if self.slowest.len() == SLOWEST && self.slowest.last().is_some_and(|s| s.0 >= d) {
            return;
        }
        self.slowest.push((d, f.order, f.name.clone()));
        self.slowest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.slowest.truncate(SLOWEST);
    }

    fn apply(&mut self, e: &Event) {
        self.last_t = e.t;
        match &e.kind {
            EventKind::RunStarted { tasks, .. } => self.planned = *tasks,
            EventKind::Pending { task, id, .. } => {
                self.set(*id, task, State::Pending);
            }
            EventKind::Running { task, id, .. } => {
                self.set(*id, task, State::Running);
                if let Some(f) = self.live.get_mut(id) {
                    f.started = Some(e.t);
                }
            }
            EventKind::Done { task, id, .. } => {
                if let Some(f) = self.set(*id, task, State::Done) {
                    self.timed(&f, e.t);
                }
            }
            EventKind::Cancelled { task, id, reason, .. } => {
                if let (Some(f), Some(r)) = (self.set(*id, task, State::Cancelled), reason) {
                    self.cancelled.push(Named { order: f.order, name: f.name, what: r.to_string() });
                }
            }
            EventKind::Exception { task, id, error, .. } => {
                if let Some(f) = self.set(*id, task, State::Exception) {
                    self.timed(&f, e.t);
                    let what = format!("{}: {}", error.kind, error.message);
                    self.failures.push(Named { order: f.order, name: f.name, what });
                }
            }
            EventKind::Deadlock { message, .. } => self.deadlocks.push(message.clone()),
            _ => {}
        }
    }

    fn count(&self, s: State) -> usize {
        self.counts[s as usize]
    }

    fn total(&self) -> usize {
        usize::try_from(self.seen).unwrap_or(usize::MAX).max(self.planned)
    }

    fn finished(&self) -> usize {
        self.count(State::Done) + self.count(State::Exception) + self.count(State::Cancelled)
    }

    fn progress_line(&self, width: usize) -> String {
        let total = self.total();
        let finished = self.finished();
        let filled = (finished * width).checked_div(total).unwrap_or(width);
        format!(
            "[{}{}] {finished}/{total}  done {}  failed {}  cancelled {}  running {}  {:.1}s",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.count(State::Done),
            self.count(State::Exception),
            self.count(State::Cancelled),
            self.count(State::Running),
            self.last_t,
        )
    }

    /// The summary printed at the end of a headless run.
    pub fn summary(&self, exit_code: i32) -> String {
        let mut out = String::new();
        let unfinished = self.total() - self.finished();
        out.push_str(&format!(
            "{} futures: {} done, {} failed, {} cancelled{} in {:.2}s\n",
            self.total(),
            self.count(State::Done),
            self.count(State::Exception),
            self.count(State::Cancelled),
            if unfinished > 0 { format!(", {unfinished} unfinished") } else { String::new() },
            self.last_t
        ));
        let mut failures: Vec<&Named> = self.failures.iter().collect();
        failures.sort_by_key(|f| f.order);
        if !failures.is_empty() {
            out.push_str("failures:\n");
            for f in failures.iter().take(20) {
                out.push_str(&format!("  {}: {}\n", f.name, f.what));
            }
            if failures.len() > 20 {
                out.push_str(&format!("  ... and {} more\n", failures.len() - 20));
            }
        }
        let mut cancelled: Vec<&Named> = self.cancelled.iter().collect();
        cancelled.sort_by_key(|f| f.order);
        if !cancelled.is_empty() {
            out.push_str("cancelled:\n");
            for f in cancelled.iter().take(10) {
                out.push_str(&format!("  {}: {}\n", f.name, f.what));
            }
        }
        if !self.slowest.is_empty() {
            out.push_str("slowest:\n");
            for (d, _, name) in &self.slowest {
                out.push_str(&format!("  {d:>8.3}s  {name}\n"));
            }
        }
        for d in &self.deadlocks {
            out.push_str(&format!("deadlock: {d}\n"));
        }
        out.push_str(&format!("exit code {exit_code}\n"));
        out
    }
}

/// Consumes the run's events until it ends, showing progress on `err`; returns the tally.
pub fn report(events: &Receiver<std::sync::Arc<Event>>, tty: bool, err: &mut dyn Write) -> Tally {
    let mut tally = Tally::default();
    let every = if tty { Duration::from_millis(100) } else { Duration::from_secs(2) };
    let mut last_draw = Instant::now();
    let mut drawn = false;
    let mut last_line = String::new();
    loop {
        let e = match events.recv_timeout(every) {
            Ok(e) => Some(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(e) = &e {
            tally.apply(e);
            match &e.kind {
                EventKind::Deadlock { message, .. } => {
                    let _ = writeln!(err, "{}deadlock: {message}", if drawn { "\n" } else { "" });
                    drawn = false;
                }
                EventKind::DeadlockResolved { tasks, how } => {
                    let _ = writeln!(
                        err,
                        "{}deadlock resolved ({how}): {}",
                        if drawn { "\n" } else { "" },
                        tasks.join(", ")
                    );
                    drawn = false;
                }
                EventKind::PoolBroken { pool, error } => {
                    let _ = writeln!(err, "{}pool '{pool}' broke: {error}", if drawn { "\n" } else { "" });
                    drawn = false;
                }
                _ => {}
            }
        }
        let finished = matches!(e.as_ref().map(|e| &e.kind), Some(EventKind::RunFinished { .. }));
        if last_draw.elapsed() >= every || finished {
            last_draw = Instant::now();
            let line = tally.progress_line(24);
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
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event { seq, t: seq as f64, kind }
    }

    fn pending(seq: u64, id: u64) -> Event {
        ev(seq, EventKind::Pending { task: format!("t{id}"), id, pool: "p".into() })
    }

    fn done(seq: u64, id: u64) -> Event {
        ev(seq, EventKind::Done { task: format!("t{id}"), id, pool: "p".into(), result: serde_json::Value::Null })
    }

    #[test]
    fn counts_keep_up_and_a_second_end_is_not_counted_twice() {
        let mut t = Tally::default();
        for e in [pending(1, 1), pending(2, 2), done(3, 1), done(4, 1), done(5, 9)] {
            t.apply(&e);
        }
        assert_eq!((t.total(), t.count(State::Done), t.count(State::Pending)), (2, 1, 1));
        assert_eq!(t.live.len(), 1, "only the unfinished future is kept");
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
        t.apply(&failed);
        assert!(t.live.is_empty());
        let s = t.summary(1);
        assert!(s.starts_with("2 futures: 1 done, 1 failed, 0 cancelled"), "{s}");
        assert!(s.contains("  t2: TaskError: boom\n"), "{s}");
    }
}
