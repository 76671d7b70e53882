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

struct Task {
    name: String,
    state: State,
    started: Option<f64>,
    ended: Option<f64>,
    error: Option<(String, String)>,
}

/// What the reporter saw, for the summary.
#[derive(Default)]
pub struct Tally {
    tasks: Vec<Task>,
    by_id: HashMap<u64, usize>,
    planned: usize,
    last_t: f64,
    deadlocks: Vec<String>,
}

impl Tally {
    fn apply(&mut self, e: &Event) {
        self.last_t = e.t;
        let mut set = |id: u64, name: &str, state: State| -> usize {
            let i = *self.by_id.entry(id).or_insert_with(|| {
                self.tasks.push(Task { name: name.to_owned(), state, started: None, ended: None, error: None });
                self.tasks.len() - 1
            });
            self.tasks[i].state = state;
            i
        };
        match &e.kind {
            EventKind::RunStarted { tasks, .. } => self.planned = *tasks,
            EventKind::Pending { task, id, .. } => {
                set(*id, task, State::Pending);
            }
            EventKind::Running { task, id, .. } => {
                let i = set(*id, task, State::Running);
                self.tasks[i].started = Some(e.t);
            }
            EventKind::Done { task, id, .. } => {
                let i = set(*id, task, State::Done);
                self.tasks[i].ended = Some(e.t);
            }
            EventKind::Cancelled { task, id, reason, .. } => {
                let i = set(*id, task, State::Cancelled);
                self.tasks[i].ended = Some(e.t);
                if let Some(r) = reason {
                    self.tasks[i].error = Some(("cancelled".into(), r.clone()));
                }
            }
            EventKind::Exception { task, id, error, .. } => {
                let i = set(*id, task, State::Exception);
                self.tasks[i].ended = Some(e.t);
                self.tasks[i].error = Some((error.kind.clone(), error.message.clone()));
            }
            EventKind::Deadlock { message, .. } => self.deadlocks.push(message.clone()),
            _ => {}
        }
    }

    fn count(&self, s: State) -> usize {
        self.tasks.iter().filter(|t| t.state == s).count()
    }

    fn total(&self) -> usize {
        self.tasks.len().max(self.planned)
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
        let failures: Vec<&Task> = self.tasks.iter().filter(|t| t.state == State::Exception).collect();
        if !failures.is_empty() {
            out.push_str("failures:\n");
            for t in failures.iter().take(20) {
                if let Some((kind, msg)) = &t.error {
                    out.push_str(&format!("  {}: {kind}: {msg}\n", t.name));
                }
            }
            if failures.len() > 20 {
                out.push_str(&format!("  ... and {} more\n", failures.len() - 20));
            }
        }
        let cancelled: Vec<&Task> =
            self.tasks.iter().filter(|t| t.state == State::Cancelled && t.error.is_some()).collect();
        if !cancelled.is_empty() {
            out.push_str("cancelled:\n");
            for t in cancelled.iter().take(10) {
                if let Some((_, why)) = &t.error {
                    out.push_str(&format!("  {}: {why}\n", t.name));
                }
            }
        }
        let mut timed: Vec<(&Task, f64)> = self.tasks.iter().filter_map(|t| Some((t, t.ended? - t.started?))).collect();
        timed.sort_by(|a, b| b.1.total_cmp(&a.1));
        if !timed.is_empty() {
            out.push_str("slowest:\n");
            for (t, d) in timed.iter().take(5) {
                out.push_str(&format!("  {:>8.3}s  {}\n", d, t.name));
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
