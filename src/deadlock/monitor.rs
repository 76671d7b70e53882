//! The detector as a stage of the event bus: reports deadlocks as they form and end, applies `--on-deadlock`.
//!
//! The bus feeds it every event it publishes and asks it for news each time the bus has
//! drained its queue, so detection costs nothing while no task is blocked, reports come
//! within one batch of the event that closed the deadlock, and its own events are
//! ordered and logged like every other.

use std::collections::{BTreeSet, HashMap};

use crossbeam_channel::Sender;

use super::{Deadlock, Model};
use crate::events::{Event, EventKind};
use crate::runner::{Control, OnDeadlock};
use futuretop_engine::observe::FutureId;

/// Follows a run's events and tells when deadlocks form and end.
pub(crate) struct Detector {
    model: Model,
    reported: HashMap<BTreeSet<u64>, (Deadlock, Vec<String>)>,
    /// What last ended each waiter's wait (or the waiter), for `deadlock_resolved`.
    causes: HashMap<u64, &'static str>,
    dirty: bool,
    now: f64,
    control: Sender<Control>,
    policy: OnDeadlock,
}

impl Detector {
    pub(crate) fn new(control: Sender<Control>, policy: OnDeadlock) -> Self {
        Self {
            model: Model::new(),
            reported: HashMap::new(),
            causes: HashMap::new(),
            dirty: false,
            now: 0.0,
            control,
            policy,
        }
    }

    /// Takes in one published event.
    pub(crate) fn observe(&mut self, e: &Event) {
        self.now = e.t;
        let relevant = match &e.kind {
            EventKind::WaitEnd { id, outcome, .. } => {
                let cause = match outcome.as_str() {
                    "timed_out" => "timeout",
                    "interrupted" => "break",
                    "killed" => "kill",
                    _ => "finished",
                };
                self.causes.insert(*id, cause);
                true
            }
            EventKind::Exception { id, error, .. } => {
                if error.kind == "Killed" {
                    self.causes.insert(*id, "kill");
                }
                true
            }
            EventKind::Cancelled { id, .. } => {
                self.causes.insert(*id, "cancel");
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
            self.model.apply(e);
            self.dirty = true;
        }
    }

    /// After a batch of events: the `deadlock` and `deadlock_resolved` events to publish.
    pub(crate) fn check(&mut self) -> Vec<EventKind> {
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
                let how = ["kill", "break", "cancel", "timeout"]
                    .into_iter()
                    .find(|how| d.tasks.iter().any(|t| self.causes.get(t) == Some(how)))
                    .unwrap_or("finished");
                out.push(EventKind::DeadlockResolved { tasks: names, how: how.to_owned() });
            }
        }
        for d in found {
            let key = d.key();
            if self.reported.contains_key(&key) {
                continue;
            }
            let names: Vec<String> = d.tasks.iter().map(|&t| self.model.name(t).to_owned()).collect();
            out.push(EventKind::Deadlock {
                kind: d.kind.as_str().to_owned(),
                tasks: names.clone(),
                pool: d.pools.first().cloned(),
                message: self.model.explain(&d, self.now),
                ids: d.tasks.clone(),
                victim: Some(self.model.name(d.victim).to_owned()),
                victim_id: Some(d.victim),
                expires_in: d.expires.map(|(_, at)| (at - self.now).max(0.0)),
            });
            match self.policy {
                OnDeadlock::Warn => {}
                OnDeadlock::Fail => {
                    let _ = self.control.send(Control::DeadlockFail);
                }
                OnDeadlock::Break => {
                    let _ = self.control.send(Control::BreakWait(FutureId(d.victim)));
                }
            }
            self.reported.insert(key, (d, names));
        }
        if self.reported.is_empty() {
            self.causes.clear();
        }
        out
    }
}
