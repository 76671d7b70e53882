//! Property test of the deadlock detector (`DeadlockModel`) against a brute-force oracle.
//!
//! Random small runs: 1–3 pools of 1–3 workers, up to 7 futures, each pending or running
//! in its pool (never more running than the pool has workers), and random waits of
//! running futures on other futures (or on one already finished, or on themselves), some
//! with timeouts.
//!
//! The oracle simulates the run by brute force, exploring **every** order of progress:
//! a running future whose wait targets have all finished may finish (freeing its worker);
//! a pending future may start when its pool has a free worker (once started it waits on
//! nothing, so it will finish: the detector's assumption too). A future that finishes in
//! no reachable state is stuck. The oracle also checks its own premise: every order ends
//! with the same set of finished futures (progress is monotone), which it cross-checks
//! with a greedy fixpoint.
//!
//! Properties:
//! - `stuck()` is exactly the oracle's stuck set (no false report, no miss);
//! - `find()` reports something iff something is stuck, each deadlock once; every
//!   reported deadlock's tasks are stuck, listed in wait order (each waits on the next,
//!   or is queued in the pool the next one occupies, round the circle); its kind is
//!   `starvation` exactly when it goes through a queued future; its victim is the waiter
//!   whose wait began last; its explanation names every task;
//! - every stuck waiter is in a reported deadlock or waits, transitively, on one;
//! - timeouts change nothing while the waits last.

// Helpers are test code too: a failed unwrap is a failed test (clippy.toml allows it
// inside #[test] functions only).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};

use futuretop::deadlock::DeadlockKind;
use futuretop::deadlock::Model as DeadlockModel;
use proptest::prelude::*;

/// A random model, as indices: pools' capacities, futures' (pool, wants to run), and
/// waits (waiter, target, timeout). A target equal to the number of futures is a future
/// already finished (not in the model).
#[derive(Debug, Clone)]
struct Spec {
    caps: Vec<usize>,
    futs: Vec<(usize, bool)>,
    waits: Vec<(usize, usize, Option<u8>)>,
}

/// The run the spec describes.
#[derive(Debug)]
struct Run {
    caps: Vec<usize>,
    pool: Vec<usize>,
    running: Vec<bool>,
    /// Targets of each future's waits (running futures only); `None` = finished already.
    targets: Vec<Vec<Option<usize>>>,
    /// (waiter, target id, began)
    edges: Vec<(usize, u64, f64)>,
}

const DONE_ID: u64 = 1_000;

fn id(i: usize) -> u64 {
    u64::try_from(i).unwrap() + 1
}

fn index(id: u64) -> Option<usize> {
    (id != DONE_ID).then(|| usize::try_from(id - 1).unwrap())
}

fn pool_name(p: usize) -> String {
    format!("p{p}")
}

fn build(spec: &Spec) -> (Run, DeadlockModel) {
    let n = spec.futs.len();
    let mut m = DeadlockModel::new();
    for (p, &c) in spec.caps.iter().enumerate() {
        m.pool(&pool_name(p), c);
    }
    let mut busy = vec![0; spec.caps.len()];
    let mut running = vec![false; n];
    let mut pool = vec![0; n];
    for (i, &(p, wants)) in spec.futs.iter().enumerate() {
        pool[i] = p;
        m.pending(id(i), format!("t{i}"), pool_name(p));
        if wants && busy[p] < spec.caps[p] {
            busy[p] += 1;
            running[i] = true;
            m.running(id(i));
        }
    }
    let mut targets = vec![Vec::new(); n];
    let mut edges = Vec::new();
    for (k, &(w, t, timeout)) in spec.waits.iter().enumerate() {
        if !running[w] {
            continue;
        }
        let began = 0.1 * f64::from(u32::try_from(k).unwrap() + 1);
        let target_id = if t == n { DONE_ID } else { id(t) };
        m.wait(id(w), target_id, began, timeout.map(|s| f64::from(s) + 0.5));
        targets[w].push(index(target_id));
        edges.push((w, target_id, began));
    }
    (Run { caps: spec.caps.clone(), pool, running, targets, edges }, m)
}

/// Every order of progress, by brute force: the futures that finish in some reachable state.
fn oracle_can_finish(run: &Run) -> BTreeSet<usize> {
    let n = run.pool.len();
    let start_running: u32 = (0..n).filter(|&i| run.running[i]).map(|i| 1 << i).sum();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut stack = vec![(0u32, start_running)];
    let mut union = 0u32;
    let mut terminals: HashSet<u32> = HashSet::new();
    while let Some((finished, running)) = stack.pop() {
        if !seen.insert((finished, running)) {
            continue;
        }
        union |= finished;
        let mut moved = false;
        for i in 0..n {
            let bit = 1 << i;
            if finished & bit != 0 {
                continue;
            }
            if running & bit != 0 {
                // Started from pending: waits on nothing. Running from the start: its waits.
                let ready =
                    run.targets[i].iter().all(|t| t.is_none_or(|t| finished & (1 << t) != 0)) || (!run.running[i]);
                if ready {
                    stack.push((finished | bit, running & !bit));
                    moved = true;
                }
            } else {
                let p = run.pool[i];
                let busy = (0..n).filter(|&j| run.pool[j] == p && running & (1 << j) != 0).count();
                if busy < run.caps[p] {
                    stack.push((finished, running | bit));
                    moved = true;
                }
            }
        }
        if !moved {
            terminals.insert(finished);
        }
    }
    // Progress is monotone: every order ends with the same futures finished.
    assert_eq!(terminals.len(), 1, "orders of progress disagree: {terminals:?}");
    assert_eq!(terminals.into_iter().next(), Some(union));
    (0..n).filter(|&i| union & (1 << i) != 0).collect()
}

/// The same by a greedy fixpoint (what the module doc argues is exact).
fn greedy_can_finish(run: &Run) -> BTreeSet<usize> {
    let n = run.pool.len();
    let mut finished = vec![false; n];
    let mut running = run.running.clone();
    let mut started_later = vec![false; n];
    loop {
        let mut changed = false;
        for i in 0..n {
            if finished[i] {
                continue;
            }
            if running[i] {
                if started_later[i] || run.targets[i].iter().all(|t| t.is_none_or(|t| finished[t])) {
                    finished[i] = true;
                    running[i] = false;
                    changed = true;
                }
            } else {
                let p = run.pool[i];
                if (0..n).filter(|&j| run.pool[j] == p && running[j]).count() < run.caps[p] {
                    running[i] = true;
                    started_later[i] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            return (0..n).filter(|&i| finished[i]).collect();
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (prop::collection::vec(1usize..=3, 1..=3), 1usize..=7)
        .prop_flat_map(|(caps, n)| {
            let pools = caps.len();
            (
                Just(caps),
                prop::collection::vec((0..pools, prop::bool::weighted(0.7)), n),
                prop::collection::vec((0..n, 0..=n, prop::option::weighted(0.3, 0u8..5)), 0..=10),
            )
        })
        .prop_map(|(caps, futs, waits)| Spec { caps, futs, waits })
}

/// True if `a` leads to `b` in a report's wait order: `a` waits on `b`, or `a` is queued
/// in the pool whose worker `b` is.
fn leads_to(run: &Run, a: usize, b: usize) -> bool {
    if run.running[a] {
        run.targets[a].contains(&Some(b))
    } else {
        run.running[b] && run.pool[b] == run.pool[a]
    }
}

fn check(spec: &Spec) -> Result<(), TestCaseError> {
    let (run, m) = build(spec);
    let n = run.pool.len();
    let can = oracle_can_finish(&run);
    prop_assert_eq!(&can, &greedy_can_finish(&run), "the greedy fixpoint disagrees with the exhaustive search");
    let expected: Vec<u64> = (0..n).filter(|i| !can.contains(i)).map(id).collect();
    let stuck = m.stuck();
    prop_assert_eq!(&stuck, &expected, "stuck() against the oracle");

    let found = m.find();
    prop_assert_eq!(found.is_empty(), stuck.is_empty(), "a deadlock is reported iff something is stuck");
    let stuck_set: HashSet<u64> = stuck.iter().copied().collect();
    let mut keys = HashSet::new();
    let mut in_deadlock: HashSet<usize> = HashSet::new();
    for d in &found {
        prop_assert!(keys.insert(d.key()), "deadlock reported twice: {:?}", d);
        prop_assert!(d.tasks.iter().all(|t| stuck_set.contains(t)), "a reported task is not stuck: {:?}", d);
        prop_assert_eq!(d.key().len(), d.tasks.len(), "a task listed twice: {:?}", d);
        let tasks: Vec<usize> = d.tasks.iter().map(|&t| index(t).unwrap()).collect();
        for (k, &a) in tasks.iter().enumerate() {
            let b = tasks[(k + 1) % tasks.len()];
            prop_assert!(leads_to(&run, a, b), "t{} does not lead to t{} in {:?}", a, b, d);
        }
        let through_queue = tasks.iter().any(|&t| !run.running[t]);
        prop_assert_eq!(
            d.kind == DeadlockKind::Starvation,
            through_queue,
            "kind {:?} but a queued future in the circle: {}; {:?}",
            d.kind,
            through_queue,
            d
        );
        if through_queue {
            let pools: BTreeSet<String> =
                tasks.iter().filter(|&&t| !run.running[t]).map(|&t| pool_name(run.pool[t])).collect();
            prop_assert_eq!(pools, d.pools.iter().cloned().collect::<BTreeSet<_>>(), "starved pools: {:?}", d);
        }
        // The victim: the waiter whose wait began last.
        let last = run
            .edges
            .iter()
            .filter(|(w, _, _)| tasks.contains(w))
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(w, _, _)| id(*w));
        prop_assert_eq!(Some(d.victim), last, "victim of {:?}", d);
        let text = m.explain(d);
        for &t in &tasks {
            prop_assert!(text.contains(&format!("t{t}")), "the explanation misses t{}: {}", t, text);
        }
        in_deadlock.extend(tasks);
    }

    // Every stuck waiter is in a deadlock or waits (transitively) on one.
    for w in (0..n).filter(|&i| run.running[i] && !can.contains(&i) && !run.targets[i].is_empty()) {
        let mut seen = HashSet::from([w]);
        let mut todo = vec![w];
        let mut reaches = false;
        while let Some(x) = todo.pop() {
            if in_deadlock.contains(&x) {
                reaches = true;
                break;
            }
            let next: Vec<usize> = if run.running[x] {
                run.targets[x].iter().flatten().copied().collect()
            } else {
                (0..n).filter(|&j| run.running[j] && run.pool[j] == run.pool[x]).collect()
            };
            for y in next {
                if !can.contains(&y) && seen.insert(y) {
                    todo.push(y);
                }
            }
        }
        prop_assert!(reaches, "stuck waiter t{} reaches no reported deadlock: {:?}", w, found);
    }

    // Timeouts count while they last: the same model without them agrees.
    let untimed = Spec { waits: spec.waits.iter().map(|&(w, t, _)| (w, t, None)).collect(), ..spec.clone() };
    prop_assert_eq!(build(&untimed).1.stuck(), stuck);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn detector_matches_the_brute_force_oracle(spec in spec()) {
        check(&spec)?;
    }
}

/// The seed's examples and a case found by hand, through the same checks.
#[test]
fn known_models_pass_the_same_checks() {
    let cases = [
        // The seed's cycle: a waits on b, b waits on a.
        Spec { caps: vec![2], futs: vec![(0, true), (0, true)], waits: vec![(0, 1, None), (1, 0, None)] },
        // The seed's starvation: one worker, its task waits on a future queued behind it.
        Spec { caps: vec![1], futs: vec![(0, true), (0, false)], waits: vec![(0, 1, None)] },
        // A cycle reached through a starved pool: a (pool 1) waits on q, queued in pool 0,
        // whose only worker w waits on b, and b waits on w.
        Spec {
            caps: vec![1, 2],
            futs: vec![(1, true), (0, false), (0, true), (1, true)],
            waits: vec![(0, 1, None), (2, 3, None), (3, 2, None)],
        },
        // Found by the property test: a waiter starved behind a self-waiting worker; the
        // deadlock is the self-wait (a cycle), not a starvation.
        Spec {
            caps: vec![1, 1],
            futs: vec![(1, true), (0, true), (0, false)],
            waits: vec![(0, 2, None), (1, 1, None)],
        },
        // A waiter on itself.
        Spec { caps: vec![1], futs: vec![(0, true)], waits: vec![(0, 0, Some(1))] },
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for spec in cases {
        runner.run(&Just(spec), |s| check(&s)).unwrap();
    }
    // The largest model the property test draws, with every future stuck.
    let chain = Spec {
        caps: vec![1, 1, 1],
        futs: (0..7).map(|i| (i % 3, i < 3)).collect(),
        waits: (0..3).map(|i| (i, i + 3, None)).collect(),
    };
    let (_, m) = build(&chain);
    assert_eq!(m.stuck().len(), 7, "every worker starves on its own pool, and the last queued future with them");
}
