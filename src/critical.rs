//! The critical path of a run: the chain of `depends_on` tasks that bounds its length, by measured durations, and each task's slack.

use crate::config::{Dep, Plan};

/// One task of the plan on the dependency graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long it took (a `map:` task: from its first item's start to its last item's
    /// end), or has taken so far; 0 before it starts.
    pub weight: f64,
    /// The earliest it can end: its weight after the latest of what it depends on.
    pub finish: f64,
    /// How much longer it could have taken without making the run longer (0 on the
    /// critical path).
    pub slack: f64,
}

/// The dependency graph's timings and the critical path.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// Per task of the plan (as [`Plan::tasks`]).
    pub timings: Vec<Timing>,
    /// The chain that bounds the run, first to last (indices into [`Plan::tasks`]).
    pub path: Vec<usize>,
    /// Its length: the longest chain's total weight.
    pub length: f64,
    /// The tasks each depends on (indices into [`Plan::tasks`]).
    pub deps: Vec<Vec<usize>>,
}

/// The tasks task `t` waits for, by `depends_on` (a future, a whole map, item by item).
fn deps_of(plan: &Plan, t: usize) -> Vec<usize> {
    let task = &plan.tasks[t];
    let mut deps: Vec<usize> = task
        .depends_on
        .iter()
        .filter_map(|d| match *d {
            Dep::Task(i) => plan.locate(i).map(|(e, _)| e),
            Dep::Group(e) => Some(e),
        })
        .chain(task.each.iter().copied())
        .filter(|&e| e < plan.tasks.len() && e != t)
        .collect();
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// The critical path of `plan`, task `t` weighing `weight(t)` seconds. Linear in the
/// plan's tasks and edges (a cycle, which validation refuses, is cut where it closes).
pub fn compute(plan: &Plan, weight: impl Fn(usize) -> f64) -> CriticalPath {
    let n = plan.tasks.len();
    let deps: Vec<Vec<usize>> = (0..n).map(|t| deps_of(plan, t)).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (t, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(t);
        }
    }
    // Kahn's order: every task after what it depends on.
    let mut left: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..n).filter(|&t| left[t] == 0).collect();
    let mut k = 0;
    while k < order.len() {
        let t = order[k];
        k += 1;
        for &d in &dependents[t] {
            left[d] -= 1;
            if left[d] == 0 {
                order.push(d);
            }
        }
    }
    let weights: Vec<f64> = (0..n).map(|t| weight(t).max(0.0)).collect();
    let mut finish = vec![0.0f64; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    for &t in &order {
        let (start, from) =
            deps[t]
                .iter()
                .map(|&d| (finish[d], Some(d)))
                .fold((0.0, None), |best, c| if c.0 > best.0 { c } else { best });
        finish[t] = start + weights[t];
        via[t] = from;
    }
    let length = finish.iter().copied().fold(0.0, f64::max);
    // Latest finish: the run's length for a task nothing waits on, else the earliest of its
    // dependents' latest starts.
    let mut latest = vec![length; n];
    for &t in order.iter().rev() {
        for &d in &dependents[t] {
            latest[t] = latest[t].min(latest[d] - weights[d]);
        }
    }
    let mut path = Vec::new();
    let mut at = (0..n).max_by(|&a, &b| finish[a].total_cmp(&finish[b]).then(b.cmp(&a)));
    while let Some(t) = at {
        path.push(t);
        at = via[t];
    }
    path.reverse();
    let timings = (0..n)
        .map(|t| Timing { weight: weights[t], finish: finish[t], slack: (latest[t] - finish[t]).max(0.0) })
        .collect();
    CriticalPath { timings, path, length, deps }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-checked graph:
    ///
    /// ```text
    /// fetch (2) ─┬─> parse (3) ─┬─> index (1) ─> publish (1)
    ///            └─> thumbs (1) ┘
    /// lint (4, alone)
    /// ```
    /// fetch → parse → index → publish is 7; thumbs could take 2 more (its slack); lint
    /// ends at 4, 3 before the run.
    #[test]
    fn the_longest_chain_bounds_the_run_and_the_others_have_slack() {
        let yaml = "tasks:\n\
            \x20 - { name: fetch, call: sleep, args: { secs: 0 } }\n\
            \x20 - { name: parse, call: sleep, args: { secs: 0 }, depends_on: [fetch] }\n\
            \x20 - { name: thumbs, call: sleep, args: { secs: 0 }, depends_on: [fetch] }\n\
            \x20 - { name: index, call: sleep, args: { secs: 0 }, depends_on: [parse, thumbs] }\n\
            \x20 - { name: publish, call: sleep, args: { secs: 0 }, depends_on: [index] }\n\
            \x20 - { name: lint, call: sleep, args: { secs: 0 } }\n";
        let plan = crate::config::load_str_offline("t.yaml", "t", yaml).expect("valid");
        let w = [2.0, 3.0, 1.0, 1.0, 1.0, 4.0];
        let cp = compute(&plan, |t| w[t]);
        let names: Vec<&str> = cp.path.iter().map(|&t| plan.tasks[t].name.as_str()).collect();
        assert_eq!(names, ["fetch", "parse", "index", "publish"]);
        assert!((cp.length - 7.0).abs() < 1e-9);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let slack: Vec<f64> = cp.timings.iter().map(|t| t.slack).collect();
        assert!(slack.iter().zip([0.0, 0.0, 2.0, 0.0, 0.0, 3.0]).all(|(&a, b)| close(a, b)), "{slack:?}");
        assert!(close(cp.timings[3].finish, 6.0), "index ends after parse, not thumbs");
    }
}
