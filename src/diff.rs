//! `futuretop diff OLD.jsonl NEW.jsonl`: two recorded runs compared task by task (state, duration, attempts, worker) and as a whole.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::events::{Event, EventKind, Name};
use crate::text::visible;

/// How a task ended in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Its last attempt returned a value.
    Done,
    /// Its last attempt raised.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// The log ends before it did.
    Unfinished,
}

impl Ended {
    /// Its word.
    pub const fn word(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unfinished => "unfinished",
        }
    }
}

/// One task (by name) in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRun {
    /// How its last attempt ended.
    pub state: Ended,
    /// How long its last attempt ran, in seconds (none if it never ran).
    pub duration: Option<f64>,
    /// Its futures (attempts) in the run.
    pub attempts: u32,
    /// The worker of its last attempt.
    pub worker: Option<String>,
    /// Its error or cancellation reason, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A recorded run, as `diff` compares it.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// The tasks by name, in the order first seen.
    pub order: Vec<Name>,
    tasks: HashMap<Name, TaskRun>,
    /// `run_finished`'s time and exit code, if the log has it.
    pub finished: Option<(f64, i32)>,
    /// The last event's time.
    pub last_t: f64,
    /// The future ids seen: their task's name, and when they started.
    futures: HashMap<u64, (Name, Option<f64>)>,
}

impl RunRecord {
    /// Takes in one event of the log.
    pub fn take(&mut self, e: &Event) {
        self.last_t = self.last_t.max(e.t);
        match &e.kind {
            EventKind::Pending { task, id, .. } => {
                self.futures.insert(*id, (task.clone(), None));
                let run = self.tasks.entry(task.clone()).or_insert_with(|| {
                    self.order.push(task.clone());
                    TaskRun { state: Ended::Unfinished, duration: None, attempts: 0, worker: None, error: None }
                });
                run.attempts += 1;
                run.state = Ended::Unfinished;
                run.duration = None;
                run.error = None;
            }
            EventKind::Running { id, worker, .. } => {
                if let Some((task, started)) = self.futures.get_mut(id) {
                    *started = Some(e.t);
                    if let Some(run) = self.tasks.get_mut(task) {
                        run.worker = Some(worker.to_string());
                    }
                }
            }
            EventKind::Done { id, .. } => self.end(*id, e.t, Ended::Done, None),
            EventKind::Exception { id, error, .. } => {
                self.end(*id, e.t, Ended::Failed, Some(format!("{}: {}", error.kind, error.message)));
            }
            EventKind::Cancelled { id, reason, .. } => {
                self.end(*id, e.t, Ended::Cancelled, reason.as_ref().map(ToString::to_string));
            }
            EventKind::RunFinished { exit_code, .. } => self.finished = Some((e.t, *exit_code)),
            _ => {}
        }
    }

    fn end(&mut self, id: u64, t: f64, state: Ended, error: Option<String>) {
        let Some((task, started)) = self.futures.remove(&id) else { return };
        if let Some(run) = self.tasks.get_mut(&task) {
            run.state = state;
            run.duration = started.map(|s| t - s);
            run.error = error;
        }
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&TaskRun> {
        self.tasks.get(name)
    }

    /// The run's length: `run_finished`'s time, or the last event's.
    pub fn length(&self) -> f64 {
        self.finished.map_or(self.last_t, |(t, _)| t)
    }
}

/// A duration that moved by at least this much (and [`DURATION_SHARE`]) is a change.
pub const DURATION_SECONDS: f64 = 0.05;
/// A duration that moved by at least this share (and [`DURATION_SECONDS`]) is a change.
pub const DURATION_SHARE: f64 = 0.10;

/// One task's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDiff {
    /// Its name.
    pub task: String,
    /// In OLD (none if OLD has no task of that name).
    pub old: Option<TaskRun>,
    /// In NEW.
    pub new: Option<TaskRun>,
    /// What changed: `state`, `duration`, `attempts`, `worker`, `added`, `removed`.
    pub changed: Vec<&'static str>,
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// OLD's length (s) and exit code.
    pub old_run: (f64, Option<i32>),
    /// NEW's.
    pub new_run: (f64, Option<i32>),
    /// The tasks that changed (all of them with `all`), in NEW's order, then OLD's others.
    pub tasks: Vec<TaskDiff>,
    /// Tasks compared and found unchanged, not listed.
    pub unchanged: usize,
    /// Tasks done in OLD and not done in NEW.
    pub regressions: Vec<String>,
}

/// Compares `old` with `new`; with `all`, unchanged tasks are listed too.
pub fn compare(old: &RunRecord, new: &RunRecord, all: bool) -> Diff {
    let mut tasks = Vec::new();
    let mut unchanged = 0;
    let mut regressions = Vec::new();
    let names = new.order.iter().chain(old.order.iter().filter(|n| new.task(n).is_none()));
    for name in names {
        let (o, n) = (old.task(name), new.task(name));
        let mut changed = Vec::new();
        match (o, n) {
            (Some(o), Some(n)) => {
                if o.state != n.state {
                    changed.push("state");
                }
                if let (Some(a), Some(b)) = (o.duration, n.duration) {
                    let d = (b - a).abs();
                    if d >= DURATION_SECONDS && d >= DURATION_SHARE * a.abs().max(b.abs()) {
                        changed.push("duration");
                    }
                } else if o.duration.is_some() != n.duration.is_some() {
                    changed.push("duration");
                }
                if o.attempts != n.attempts {
                    changed.push("attempts");
                }
                if o.worker != n.worker {
                    changed.push("worker");
                }
            }
            (None, Some(_)) => changed.push("added"),
            (Some(_), None) => changed.push("removed"),
            (None, None) => continue,
        }
        if o.is_some_and(|o| o.state == Ended::Done) && n.is_none_or(|n| n.state != Ended::Done) {
            regressions.push(name.to_string());
        }
        if changed.is_empty() && !all {
            unchanged += 1;
            continue;
        }
        tasks.push(TaskDiff { task: name.to_string(), old: o.cloned(), new: n.cloned(), changed });
    }
    Diff {
        old_run: (old.length(), old.finished.map(|(_, c)| c)),
        new_run: (new.length(), new.finished.map(|(_, c)| c)),
        tasks,
        unchanged,
        regressions,
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}s"))
}

/// `a → b`, or `a` when they are the same.
fn arrow(a: &str, b: &str) -> String {
    if a == b {
        a.to_owned()
    } else {
        format!("{a} → {b}")
    }
}

impl Diff {
    /// The comparison for a person: the runs' lengths and exit codes, a line a changed
    /// task, the count of unchanged ones, and the regressions.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let code = |c: Option<i32>| c.map_or_else(|| "unfinished".to_owned(), |c| format!("exit {c}"));
        let (a, b) = (self.old_run.0, self.new_run.0);
        let share = if a > 0.0 { format!(", {:+.1}%", (b - a) / a * 100.0) } else { String::new() };
        let _ = writeln!(
            out,
            "run: {a:.2}s → {b:.2}s ({:+.2}s{share}); {}",
            b - a,
            arrow(&code(self.old_run.1), &code(self.new_run.1))
        );
        let width = self.tasks.iter().map(|t| t.task.chars().count()).max().unwrap_or(0).min(40);
        if self.tasks.is_empty() {
            let _ = writeln!(out, "no task changed ({} compared)", self.unchanged);
        } else {
            let _ = writeln!(out, "changed: {} tasks ({} unchanged)", self.tasks.len(), self.unchanged);
        }
        for t in &self.tasks {
            let state = |r: Option<&TaskRun>| r.map_or("absent", |r| r.state.word());
            let mut line = format!(
                "  {:<width$}  {:<22}  {:<20}",
                visible(&t.task),
                arrow(state(t.old.as_ref()), state(t.new.as_ref())),
                arrow(&secs(t.old.as_ref().and_then(|r| r.duration)), &secs(t.new.as_ref().and_then(|r| r.duration))),
            );
            if t.changed.contains(&"attempts") {
                let n = |r: Option<&TaskRun>| r.map_or(0, |r| r.attempts).to_string();
                let _ = write!(line, "  attempts {}", arrow(&n(t.old.as_ref()), &n(t.new.as_ref())));
            }
            if t.changed.contains(&"worker") {
                let w = |r: Option<&TaskRun>| r.and_then(|r| r.worker.clone()).unwrap_or_else(|| "-".into());
                let _ = write!(line, "  worker {}", visible(&arrow(&w(t.old.as_ref()), &w(t.new.as_ref()))));
            }
            if let Some(e) = t.new.as_ref().and_then(|r| r.error.as_deref()).filter(|_| t.changed.contains(&"state")) {
                let _ = write!(line, "  ({})", visible(e));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if !self.regressions.is_empty() {
            let shown: Vec<String> = self.regressions.iter().take(20).map(|r| visible(r).into_owned()).collect();
            let more = if self.regressions.len() > 20 {
                format!(" and {} more", self.regressions.len() - 20)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "regressions: {} done in OLD and not in NEW: {}{more}",
                self.regressions.len(),
                shown.join(", ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ErrorInfo;

    fn run(events: &[(f64, EventKind)]) -> RunRecord {
        let mut r = RunRecord::default();
        for (i, (t, kind)) in events.iter().enumerate() {
            r.take(&Event { seq: i as u64 + 1, t: *t, kind: kind.clone() });
        }
        r
    }

    fn ran(id: u64, task: &str, worker: &str, start: f64, end: f64, ok: bool) -> Vec<(f64, EventKind)> {
        let mut v = vec![
            (start, EventKind::Pending { attempt: None, task: task.into(), id, pool: "p".into() }),
            (start, EventKind::Running { task: task.into(), id, pool: "p".into(), worker: worker.into(), pid: None }),
        ];
        v.push((
            end,
            if ok {
                EventKind::Done { task: task.into(), id, pool: "p".into(), result: serde_json::Value::Null }
            } else {
                EventKind::Exception {
                    task: task.into(),
                    id,
                    pool: "p".into(),
                    error: ErrorInfo { kind: futuretop_engine::ErrorKind::TaskError, message: "boom".into() },
                }
            },
        ));
        v
    }

    #[test]
    fn changes_are_found_task_by_task_and_a_lost_success_is_a_regression() {
        let mut old = Vec::new();
        old.extend(ran(1, "same", "p-1", 0.0, 1.0, true));
        old.extend(ran(2, "slower", "p-1", 1.0, 2.0, true));
        old.extend(ran(3, "broke", "p-2", 0.0, 0.5, true));
        old.extend(ran(4, "moved", "p-1", 2.0, 2.5, true));
        old.extend(ran(5, "gone", "p-1", 2.5, 2.6, true));
        let mut new = Vec::new();
        new.extend(ran(1, "same", "p-1", 0.0, 1.01, true));
        new.extend(ran(2, "slower", "p-1", 1.0, 3.0, true));
        new.extend(ran(3, "broke", "p-2", 0.0, 0.5, false));
        new.extend(ran(4, "moved", "p-2", 2.0, 2.5, true));
        new.extend(ran(6, "fresh", "p-1", 3.0, 3.1, true));
        let d = compare(&run(&old), &run(&new), false);
        let changed: Vec<(&str, Vec<&str>)> = d.tasks.iter().map(|t| (t.task.as_str(), t.changed.clone())).collect();
        assert_eq!(
            changed,
            [
                ("slower", vec!["duration"]),
                ("broke", vec!["state"]),
                ("moved", vec!["worker"]),
                ("fresh", vec!["added"]),
                ("gone", vec!["removed"]),
            ]
        );
        assert_eq!(d.unchanged, 1, "same moved by 10 ms: not a change");
        assert_eq!(d.regressions, ["broke", "gone"]);
        let text = d.text();
        assert!(text.contains("broke   done → failed") && text.contains("(TaskError: boom)"), "{text}");
        assert!(text.contains("worker p-1 → p-2"), "{text}");
        assert!(text.contains("regressions: 2 done in OLD and not in NEW: broke, gone"), "{text}");
        assert_eq!(compare(&run(&old), &run(&new), true).tasks.len(), 6, "--all lists every task");
    }

    #[test]
    fn attempts_count_the_futures_of_a_name() {
        let mut new = ran(1, "flaky", "p-1", 0.0, 1.0, false);
        new.extend(ran(2, "flaky", "p-1", 1.0, 2.0, true));
        let old = ran(1, "flaky", "p-1", 0.0, 1.0, true);
        let d = compare(&run(&old), &run(&new), false);
        assert_eq!(d.tasks[0].changed, ["attempts"]);
        assert_eq!(d.tasks[0].new.as_ref().map(|r| (r.attempts, r.state)), Some((2, Ended::Done)));
        assert!(d.regressions.is_empty());
    }
}
