//! Deadlock detection: which futures can never make progress, why, and which wait to break. Pure logic.
//!
//! The model knows no event: the detector stage (`detector.rs`) builds it from the
//! event stream: every pool's worker count, which futures
//! are pending in which pool, which are running, and which running task waits on which
//! futures (and until when, if its wait has a timeout).
//!
//! # The rule: a fixpoint of "can still make progress"
//!
//! Start by assuming nothing blocked can progress, then grow the set of futures that can:
//!
//! 1. a running future that waits on nothing can progress (it will finish, we assume);
//! 2. a running future whose every wait target can progress (or is already done) can;
//! 3. a pending future can progress if its pool has a free worker now, or one of the
//!    pool's running futures can progress (it will finish and free its worker).
//!
//! Repeat until nothing changes. What is left can never progress, whatever order the
//! rest happens in: those futures are deadlocked. Following each stuck waiter's waits
//! then names the deadlock:
//!
//! - a **cycle**: the waits lead back to a task already on the path (`a` → `b` → `a`);
//! - **starvation**: they lead to a future pending in a pool whose every worker is busy
//!   with stuck tasks (the docs' one-worker pool whose task waits on a task it submitted
//!   to the same pool). Through several pools this generalises: blocked workers of
//!   several pools that wait on each other's queues.
//!
//! A pending future is assumed to make progress once it runs (we cannot know what it
//! will do), and a wait with a timeout counts while it lasts (the report says when it
//! expires): so a report is never made for a wait that will be satisfied.

use std::collections::{BTreeSet, HashMap};

use futuretop_engine::observe::IdMap;

/// The kind of a deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadlockKind {
    /// Tasks wait on each other in a circle.
    Cycle,
    /// Tasks wait on futures queued in a pool whose every worker is one of them.
    Starvation,
}

impl DeadlockKind {
    /// `cycle` or `starvation`, as events name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cycle => "cycle",
            Self::Starvation => "starvation",
        }
    }
}

/// What ended a deadlock, as `deadlock_resolved` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// A task in it was killed.
    Kill,
    /// Its wait was broken (`b`, or `--on-deadlock break`).
    Break,
    /// A future in it was cancelled.
    Cancel,
    /// A wait in it timed out.
    Timeout,
    /// A wait in it ended otherwise (the future it waited on finished).
    Finished,
}

impl Resolution {
    /// `kill`, `break`, ..., as events name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Break => "break",
            Self::Cancel => "cancel",
            Self::Timeout => "timeout",
            Self::Finished => "finished",
        }
    }
}

impl std::fmt::Display for DeadlockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deadlock found in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadlock {
    /// Cycle or starvation.
    pub kind: DeadlockKind,
    /// The futures involved, in wait order (each waits on the next; for starvation the
    /// last one is the queued future).
    pub tasks: Vec<u64>,
    /// The starved pools, for starvation.
    pub pools: Vec<String>,
    /// The waiter to interrupt to break it: the one whose wait began last.
    pub victim: u64,
    /// The first of its waits to time out: (waiter, seconds since the run started).
    pub expires: Option<(u64, f64)>,
}

impl Deadlock {
    /// Identifies a deadlock across recomputations: its set of futures.
    pub fn key(&self) -> BTreeSet<u64> {
        self.tasks.iter().copied().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
}

#[derive(Debug, Clone)]
struct Fut {
    name: crate::events::Name,
    pool: crate::events::Name,
    phase: Phase,
    /// Where and since when it runs (run seconds), once it does.
    ran: Option<(crate::events::Name, f64)>,
}

/// A wait of a running task on a future.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitEdge {
    /// The future waited on.
    pub target: u64,
    /// When the wait began (seconds since the run started).
    pub began: f64,
    /// When it times out, if it has a timeout.
    pub expires: Option<f64>,
}

/// What the detector knows about a run.
#[derive(Debug, Default, Clone)]
pub struct Model {
    capacity: HashMap<String, usize>,
    futures: IdMap<u64, Fut>,
    waits: IdMap<u64, Vec<WaitEdge>>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a pool with `workers` workers.
    pub fn pool(&mut self, name: &str, workers: usize) {
        self.capacity.insert(name.to_owned(), workers);
    }

    /// Declares future `id` pending in `pool` (names shared with the events', not copied).
    pub fn pending(&mut self, id: u64, name: impl Into<crate::events::Name>, pool: impl Into<crate::events::Name>) {
        self.futures.insert(id, Fut { name: name.into(), pool: pool.into(), phase: Phase::Pending, ran: None });
    }

    /// Future `id` started running.
    pub fn running(&mut self, id: u64) {
        if let Some(f) = self.futures.get_mut(&id) {
            f.phase = Phase::Running;
        }
    }

    /// Running future `id` runs on `worker` since run time `t` (for a stall's report).
    pub fn ran_on(&mut self, id: u64, worker: &crate::events::Name, t: f64) {
        if let Some(f) = self.futures.get_mut(&id) {
            f.ran = Some((worker.clone(), t));
        }
    }

    /// Futures not yet in a final state.
    pub fn live(&self) -> usize {
        self.futures.len()
    }

    /// The running futures: id, name, worker, since when (run seconds).
    pub fn running_now(&self) -> impl Iterator<Item = (u64, &str, &crate::events::Name, f64)> {
        self.futures.iter().filter_map(|(&id, f)| {
            let (worker, since) = f.ran.as_ref()?;
            (f.phase == Phase::Running).then_some((id, &*f.name, worker, *since))
        })
    }

    /// Future `id` reached a final state.
    pub fn finished(&mut self, id: u64) {
        self.futures.remove(&id);
        self.waits.remove(&id);
    }

    /// Running future `waiter` began waiting on `target`.
    pub fn wait(&mut self, waiter: u64, target: u64, began: f64, timeout: Option<f64>) {
        self.waits.entry(waiter).or_default().push(WaitEdge { target, began, expires: timeout.map(|t| began + t) });
    }

    /// The wait of `waiter` on `target` ended.
    pub fn wait_end(&mut self, waiter: u64, target: u64) {
        if let Some(ws) = self.waits.get_mut(&waiter) {
            if let Some(i) = ws.iter().position(|w| w.target == target) {
                ws.remove(i);
            }
            if ws.is_empty() {
                self.waits.remove(&waiter);
            }
        }
    }

    /// True if some running task is blocked in a wait (else there is nothing to check).
    pub fn has_waits(&self) -> bool {
        !self.waits.is_empty()
    }

    /// The name of future `id`, as events gave it.
    pub fn name(&self, id: u64) -> &str {
        self.futures.get(&id).map_or("?", |f| &*f.name)
    }

    /// The wait edges of `waiter`.
    pub fn waits_of(&self, waiter: u64) -> &[WaitEdge] {
        self.waits.get(&waiter).map_or(&[], Vec::as_slice)
    }

    /// Every future that can make progress (the fixpoint of the module doc); futures
    /// not in the model (done, unknown) count as progressing too.
    ///
    /// Computed with a worklist rather than by repeated passes: each future is marked
    /// once, and the news travels back along the waits (and to a pool's queue once one
    /// of its workers can finish), so a chain of `n` waits costs `O(n)`, not `O(n²)`.
    fn progress(&self) -> HashMap<u64, bool> {
        let mut progress: HashMap<u64, bool> = self.futures.keys().map(|&id| (id, false)).collect();
        let mut running_in: HashMap<&str, usize> = HashMap::new();
        let mut pending_in: HashMap<&str, Vec<u64>> = HashMap::new();
        for (&id, f) in &self.futures {
            match f.phase {
                Phase::Running => *running_in.entry(&*f.pool).or_default() += 1,
                Phase::Pending => pending_in.entry(&*f.pool).or_default().push(id),
            }
        }
        // Rule 1 and 2: a running future waits for each of its targets still in the model.
        let mut todo: Vec<u64> = Vec::new();
        let mut waiters_of: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut blocked: HashMap<u64, usize> = HashMap::new();
        for (&id, f) in &self.futures {
            if f.phase != Phase::Running {
                continue;
            }
            let mut n = 0;
            for w in self.waits_of(id).iter().filter(|w| self.futures.contains_key(&w.target)) {
                waiters_of.entry(w.target).or_default().push(id);
                n += 1;
            }
            if n == 0 {
                todo.push(id);
            } else {
                blocked.insert(id, n);
            }
        }
        // Rule 3: a pool with a free worker now (or one we know nothing of) runs its queue.
        let mut freed: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (&pool, queued) in &pending_in {
            let free = self.capacity.get(pool).is_none_or(|&cap| running_in.get(pool).copied().unwrap_or(0) < cap);
            if free {
                freed.insert(pool);
                todo.extend(queued);
            }
        }
        while let Some(id) = todo.pop() {
            let Some(p) = progress.get_mut(&id) else { continue };
            if *p {
                continue;
            }
            *p = true;
            let Some(f) = self.futures.get(&id) else { continue };
            // A worker that will finish frees its pool for the queue.
            if f.phase == Phase::Running && freed.insert(&*f.pool) {
                todo.extend(pending_in.get(&*f.pool).into_iter().flatten());
            }
            for w in waiters_of.get(&id).into_iter().flatten() {
                if let Some(n) = blocked.get_mut(w) {
                    *n -= 1;
                    if *n == 0 {
                        todo.push(*w);
                    }
                }
            }
        }
        progress
    }

    /// Every future that can never make progress, in id order.
    pub fn stuck(&self) -> Vec<u64> {
        if !self.has_waits() {
            return Vec::new();
        }
        let mut v: Vec<u64> = self.progress().into_iter().filter(|(_, p)| !p).map(|(id, _)| id).collect();
        v.sort_unstable();
        v
    }

    /// Every deadlock in the model, each once.
    ///
    /// Stuck waiters are followed in id order; a waiter an earlier walk went through is
    /// not walked again (it leads to a deadlock already found), so the walks cost `O(n)`
    /// in all, even for one circle of `n` tasks.
    pub fn find(&self) -> Vec<Deadlock> {
        if !self.has_waits() {
            return Vec::new();
        }
        let progress = self.progress();
        let stuck = |id: u64| progress.get(&id).is_some_and(|p| !p);
        // Each pool's stuck workers, in id order: where a walk goes on past a queued future.
        let mut workers: HashMap<&str, Vec<u64>> = HashMap::new();
        for (&id, f) in &self.futures {
            if f.phase == Phase::Running && stuck(id) {
                workers.entry(&*f.pool).or_default().push(id);
            }
        }
        for w in workers.values_mut() {
            w.sort_unstable();
        }
        let mut found: Vec<Deadlock> = Vec::new();
        let mut keys: std::collections::HashSet<BTreeSet<u64>> = std::collections::HashSet::new();
        let mut visited: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let mut waiters: Vec<u64> = self.waits.keys().copied().filter(|&w| stuck(w)).collect();
        waiters.sort_unstable();
        for w in waiters {
            if visited.contains(&w) {
                continue;
            }
            let Some(d) = self.chain(w, &stuck, &workers, &mut visited) else { continue };
            if keys.insert(d.key()) {
                found.push(d);
            }
        }
        found
    }

    /// Follows stuck waits from `start` until they close into a cycle.
    fn chain(
        &self,
        start: u64,
        stuck: &dyn Fn(u64) -> bool,
        workers: &HashMap<&str, Vec<u64>>,
        visited: &mut std::collections::HashSet<u64>,
    ) -> Option<Deadlock> {
        let mut path: Vec<u64> = vec![start];
        let mut at: HashMap<u64, usize> = HashMap::from([(start, 0)]);
        visited.insert(start);
        let mut cur = start;
        for _ in 0..=self.futures.len() {
            let target = self.waits_of(cur).iter().map(|w| w.target).find(|&t| stuck(t))?;
            let next = match self.futures.get(&target)?.phase {
                Phase::Running => target,
                Phase::Pending => {
                    // Queued behind a full pool: continue through one of its stuck workers,
                    // preferring one already on the path (that closes the loop).
                    let pool = &self.futures.get(&target)?.pool;
                    at.insert(target, path.len());
                    path.push(target);
                    visited.insert(target);
                    let ws = workers.get(&**pool)?;
                    *ws.iter().find(|w| at.contains_key(w)).or_else(|| ws.first())?
                }
            };
            if let Some(&i) = at.get(&next) {
                // The deadlock is the circle only: a queue passed on the way to it (a waiter
                // starved behind the circle) does not make a cycle a starvation.
                let tasks: Vec<u64> = path[i..].to_vec();
                let mut pools: Vec<String> = Vec::new();
                for f in tasks.iter().filter_map(|t| self.futures.get(t)).filter(|f| f.phase == Phase::Pending) {
                    if !pools.iter().any(|p| *p == *f.pool) {
                        pools.push(f.pool.to_string());
                    }
                }
                let through_pool = !pools.is_empty();
                return Some(self.report(tasks, through_pool, pools));
            }
            at.insert(next, path.len());
            path.push(next);
            visited.insert(next);
            cur = next;
        }
        None
    }

    fn report(&self, tasks: Vec<u64>, through_pool: bool, pools: Vec<String>) -> Deadlock {
        let waiters = || tasks.iter().filter_map(|t| self.waits.get(t).map(|ws| (*t, ws)));
        let victim = waiters()
            .map(|(t, ws)| (t, ws.iter().map(|w| w.began).fold(f64::MIN, f64::max)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(tasks[0], |(t, _)| t);
        let expires = waiters()
            .flat_map(|(t, ws)| ws.iter().filter_map(move |w| w.expires.map(|e| (t, e))))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        Deadlock {
            kind: if through_pool { DeadlockKind::Starvation } else { DeadlockKind::Cycle },
            tasks,
            pools,
            victim,
            expires,
        }
    }

    /// One or two sentences a newcomer understands: what waits on what, why it can never
    /// end, and whether a timeout will end it. Names are quoted (`'b'`), so a task called
    /// `b` is not read as a key; the text names no key and no countdown (it is printed
    /// headless too, and kept in the log: the monitor's banner adds the live countdown
    /// and the key).
    pub fn explain(&self, d: &Deadlock) -> String {
        let n = |id: u64| format!("'{}'", self.name(id));
        let mut s = match d.kind {
            DeadlockKind::Cycle => {
                let mut parts: Vec<String> = Vec::new();
                for w in d.tasks.windows(2) {
                    parts.push(format!("{} waits on {}", n(w[0]), n(w[1])));
                }
                if let (Some(&last), Some(&first)) = (d.tasks.last(), d.tasks.first()) {
                    parts.push(format!("{} waits on {}", n(last), n(first)));
                }
                format!("{}: none of them can ever finish.", join_and(&parts))
            }
            DeadlockKind::Starvation => {
                let queued: Vec<String> = d
                    .tasks
                    .iter()
                    .filter(|t| self.futures.get(t).is_some_and(|f| f.phase == Phase::Pending))
                    .map(|&t| format!("{} (queued in pool '{}')", n(t), self.futures.get(&t).map_or("?", |f| &*f.pool)))
                    .collect();
                let workers: Vec<String> = d
                    .tasks
                    .iter()
                    .filter(|t| self.futures.get(t).is_some_and(|f| f.phase == Phase::Running))
                    .map(|&t| n(t))
                    .collect();
                let cap: Vec<String> = d
                    .pools
                    .iter()
                    .map(|p| {
                        let c = self.capacity.get(p).copied().unwrap_or(0);
                        format!("pool '{p}' has {c} worker{}", if c == 1 { "" } else { "s" })
                    })
                    .collect();
                format!(
                    "{} wait{} on {}, but {} and {} busy with the waiting tasks themselves: no worker will ever be free to run it.",
                    join_and(&workers),
                    if workers.len() == 1 { "s" } else { "" },
                    join_and(&queued),
                    join_and(&cap),
                    if cap.len() == 1 && workers.len() == 1 { "it is" } else { "all are" },
                )
            }
        };
        match d.expires {
            Some((w, _)) => s.push_str(&format!(" The wait of {} has a timeout: it will end this deadlock.", n(w))),
            None => s.push_str(&format!(" Breaking it gives the wait of {} a DeadlockError.", n(d.victim))),
        }
        s
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pools: &[(&str, usize)]) -> Model {
        let mut m = Model::new();
        for (p, c) in pools {
            m.pool(p, *c);
        }
        m
    }

    fn run(m: &mut Model, id: u64, name: &str, pool: &str) {
        m.pending(id, name, pool);
        m.running(id);
    }

    #[test]
    fn seed_cycle_two_futures_waiting_on_each_other() {
        let mut m = model(&[("pool", 2)]);
        run(&mut m, 1, "a", "pool");
        run(&mut m, 2, "b", "pool");
        m.wait(1, 2, 0.1, None);
        assert!(m.find().is_empty(), "a waits on b while b runs freely: no deadlock");
        m.wait(2, 1, 0.2, None);
        let found = m.find();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, DeadlockKind::Cycle);
        assert_eq!(found[0].key(), [1, 2].into_iter().collect());
        assert_eq!(found[0].victim, 2, "b's wait began last");
        let text = m.explain(&found[0]);
        assert!(
            text.contains("'a' waits on 'b' and 'b' waits on 'a'")
                || text.contains("'b' waits on 'a' and 'a' waits on 'b'"),
            "{text}"
        );
        assert!(text.ends_with("Breaking it gives the wait of 'b' a DeadlockError."), "{text}");
    }

    #[test]
    fn seed_starvation_one_worker_waits_on_its_own_queue() {
        let mut m = model(&[("single", 1)]);
        run(&mut m, 1, "wait_on_future", "single");
        m.pending(2, "wait_on_future/pow", "single");
        m.wait(1, 2, 0.1, None);
        let found = m.find();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, DeadlockKind::Starvation);
        assert_eq!(found[0].tasks, vec![1, 2]);
        assert_eq!(found[0].pools, vec!["single".to_owned()]);
        let text = m.explain(&found[0]);
        assert!(text.contains("'wait_on_future' waits on 'wait_on_future/pow' (queued in pool 'single')"), "{text}");
        assert!(text.contains("1 worker"), "{text}");
    }

    #[test]
    fn near_miss_pool_of_two_with_one_blocked_worker_is_not_reported() {
        let mut m = model(&[("p", 2)]);
        run(&mut m, 1, "outer", "p");
        m.pending(2, "inner", "p");
        m.wait(1, 2, 0.1, None);
        assert!(m.find().is_empty());
        assert!(m.stuck().is_empty());
    }

    #[test]
    fn near_miss_full_pool_whose_other_worker_runs_freely() {
        let mut m = model(&[("p", 2)]);
        run(&mut m, 1, "outer", "p");
        run(&mut m, 3, "busy", "p");
        m.pending(2, "inner", "p");
        m.wait(1, 2, 0.1, None);
        assert!(m.find().is_empty(), "busy will finish and free a worker for inner");
    }

    #[test]
    fn longer_cycle_across_pools_in_wait_order() {
        let mut m = model(&[("x", 4), ("y", 4)]);
        for (id, name, pool) in [(1, "a", "x"), (2, "b", "y"), (3, "c", "x"), (4, "d", "y")] {
            run(&mut m, id, name, pool);
        }
        m.wait(1, 2, 0.1, None);
        m.wait(2, 3, 0.2, None);
        m.wait(3, 4, 0.3, None);
        assert!(m.find().is_empty());
        m.wait(4, 1, 0.4, Some(5.0));
        let found = m.find();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].tasks, vec![1, 2, 3, 4]);
        assert_eq!(found[0].expires, Some((4, 5.4)));
        assert!(m.explain(&found[0]).ends_with("The wait of 'd' has a timeout: it will end this deadlock."));
    }

    #[test]
    fn cross_pool_starvation_workers_wait_on_each_others_queues() {
        let mut m = model(&[("x", 1), ("y", 1)]);
        run(&mut m, 1, "a", "x");
        run(&mut m, 2, "c", "y");
        m.pending(3, "b", "y");
        m.pending(4, "d", "x");
        m.wait(1, 3, 0.1, None);
        assert!(m.find().is_empty(), "c still runs freely");
        m.wait(2, 4, 0.2, None);
        let found = m.find();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, DeadlockKind::Starvation);
        assert_eq!(found[0].key(), [1, 2, 3, 4].into_iter().collect());
        assert_eq!(found[0].pools.len(), 2);
    }

    #[test]
    fn a_waiter_behind_a_cycle_is_stuck_but_not_part_of_it() {
        let mut m = model(&[("p", 8)]);
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            run(&mut m, id, name, "p");
        }
        m.wait(1, 2, 0.1, None);
        m.wait(2, 1, 0.2, None);
        m.wait(3, 1, 0.3, None);
        assert_eq!(m.stuck(), vec![1, 2, 3]);
        let found = m.find();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key(), [1, 2].into_iter().collect());
    }

    #[test]
    fn timeout_reported_then_resolved_when_the_wait_ends() {
        let mut m = model(&[("p", 2)]);
        run(&mut m, 1, "a", "p");
        run(&mut m, 2, "b", "p");
        m.wait(1, 2, 0.0, None);
        m.wait(2, 1, 0.0, Some(3.2));
        assert_eq!(m.find().len(), 1);
        // b's wait timed out: b raises TimeoutError and finishes; a then gets b's error.
        m.wait_end(2, 1);
        assert!(m.find().is_empty());
        m.finished(2);
        assert!(m.find().is_empty());
    }
}
