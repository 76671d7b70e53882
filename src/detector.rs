//! The detector as a stage of the event bus: follows the events, and gives verdicts when deadlocks form and end.
//!
//! The bus feeds it every event it publishes and asks it for verdicts each time the bus has
//! drained its queue, so detection costs nothing while no task is blocked, reports come
//! within one batch of the event that closed the deadlock, and its own events are
//! ordered and logged like every other.

use std::collections::{BTreeSet, HashMap};

use crate::deadlock::{Deadlock, Model, Resolution};
use crate::events::{Event, EventKind};
use futuretop_engine::observe::{FutureId, WaitOutcome};
use futuretop_engine::ErrorKind;

/// What the detector concluded after a batch of events. Each carries the event that
/// reports it; what to do about a deadlock (`--on-deadlock`) is the runner's to decide.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A deadlock formed.
    Formed {
        /// The `deadlock` event that reports it.
        event: EventKind,
        /// The waiter whose wait a break interrupts (the one whose wait began last).
        victim: FutureId,
    },
    /// A reported deadlock ended.
    Resolved {
        /// The `deadlock_resolved` event that reports it.
        event: EventKind,
    },
}

/// Follows a run's events and tells when deadlocks form and end.
#[derive(Default)]
pub struct Detector {
    model: Model,
    reported: HashMap<BTreeSet<u64>, (Deadlock, Vec<String>)>,
    /// What last ended each waiter's wait (or the waiter), for `deadlock_resolved`.
    causes: HashMap<u64, Resolution>,
    dirty: bool,
    now: f64,
}

/// Updates `model` from one event of the stream.
fn apply(model: &mut Model, e: &Event) {
    match &e.kind {
        EventKind::RunStarted { pools, .. } => {
            for p in pools {
                model.pool(&p.name, p.max_workers);
            }
        }
        EventKind::Pending { task, id, pool, .. } => {
            model.pending(*id, std::sync::Arc::clone(task), std::sync::Arc::clone(pool));
        }
        EventKind::Running { id, worker, .. } => {
            model.running(*id);
            model.ran_on(*id, worker, e.t);
        }
        EventKind::Done { id, .. } | EventKind::Cancelled { id, .. } | EventKind::Exception { id, .. } => {
            model.finished(*id);
        }
        EventKind::Wait { id, on_id, timeout, .. } => model.wait(*id, *on_id, e.t, *timeout),
        EventKind::WaitEnd { id, on_id, .. } => model.wait_end(*id, *on_id),
        _ => {}
    }
}

impl Detector {
    /// A detector that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model of the run's futures it keeps (live ones, their waits).
    pub const fn model(&self) -> &Model {
        &self.model
    }

    /// Whether a deadlock it reported still stands.
    pub fn has_deadlock(&self) -> bool {
        !self.reported.is_empty()
    }

    /// Takes in one published event.
    pub fn observe(&mut self, e: &Event) {
        self.now = e.t;
        let relevant = match &e.kind {
            EventKind::WaitEnd { id, outcome, .. } => {
                let cause = match outcome {
                    WaitOutcome::TimedOut => Resolution::Timeout,
                    WaitOutcome::Interrupted => Resolution::Break,
                    WaitOutcome::Killed => Resolution::Kill,
                    WaitOutcome::Completed => Resolution::Finished,
                };
                self.causes.insert(*id, cause);
                true
            }
            EventKind::Exception { id, error, .. } => {
                if error.kind == ErrorKind::Killed {
                    self.causes.insert(*id, Resolution::Kill);
                }
                true
            }
            EventKind::Cancelled { id, .. } => {
                self.causes.insert(*id, Resolution::Cancel);
                true
            }
            EventKind::RunStarted { .. }
            | EventKind::Pending { .. }
            | EventKind::Running { .. }
            | EventKind::Done { .. }
            | EventKind::Wait { .. } => true,
            _ => false,
        };
        if relevant {
            apply(&mut self.model, e);
            self.dirty = true;
        }
    }

    /// After a batch of events: the deadlocks that formed and ended since the last check.
    pub fn check(&mut self) -> Vec<Verdict> {
        if !self.dirty {
            return Vec::new();
        }
        self.dirty = false;
        if !self.model.has_waits() && self.reported.is_empty() {
            self.causes.clear();
            return Vec::new();
        }
        let mut out = Vec::new();
        let found = self.model.find();
        let keys: Vec<BTreeSet<u64>> = found.iter().map(Deadlock::key).collect();
        let gone: Vec<BTreeSet<u64>> = self.reported.keys().filter(|k| !keys.contains(k)).cloned().collect();
        for k in gone {
            if let Some((d, names)) = self.reported.remove(&k) {
                let how = [Resolution::Kill, Resolution::Break, Resolution::Cancel, Resolution::Timeout]
                    .into_iter()
                    .find(|how| d.tasks.iter().any(|t| self.causes.get(t) == Some(how)))
                    .unwrap_or(Resolution::Finished);
                out.push(Verdict::Resolved { event: EventKind::DeadlockResolved { tasks: names, how } });
            }
        }
        for d in found {
            let key = d.key();
            if self.reported.contains_key(&key) {
                continue;
            }
            let names: Vec<String> = d.tasks.iter().map(|&t| self.model.name(t).to_owned()).collect();
            let event = EventKind::Deadlock {
                kind: d.kind,
                tasks: names.clone(),
                pool: d.pools.first().cloned(),
                message: self.model.explain(&d),
                ids: d.tasks.clone(),
                victim: Some(self.model.name(d.victim).to_owned()),
                victim_id: Some(d.victim),
                expires_in: d.expires.map(|(_, at)| (at - self.now).max(0.0)),
            };
            out.push(Verdict::Formed { event, victim: FutureId(d.victim) });
            self.reported.insert(key, (d, names));
        }
        if self.reported.is_empty() {
            self.causes.clear();
        }
        out
    }
}
