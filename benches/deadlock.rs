//! Deadlock-detection benchmark: the cost of one `DeadlockModel::find()` (what the event
//! bus runs after each batch of events while some task is blocked) on a run of 10,000
//! futures with 1,000 blocked waits.
//!
//! Models (4 pools of 500 workers; 2,000 futures running, 8,000 pending):
//!
//! - `independent`: 1,000 running futures each wait on a different pending future; the
//!   other running futures run freely, so nothing is stuck (the common case: a report
//!   must not be made, and the check runs after every batch);
//! - `chain`: the 1,000 waits form one chain (`w1` waits on `w2` ... on `w1000`, which
//!   waits on a free running future): nothing is stuck, and the fixpoint has to pass the
//!   news of progress down 1,000 links (the worst case for a pass-based fixpoint);
//! - `pairs`: the 1,000 waits form 500 two-task cycles: 500 deadlocks to find and name;
//! - `ring`: the 1,000 waits form one cycle: one deadlock of 1,000 tasks.
//!
//! Also the cost of building the model from events (`apply`), per event.
//! Run: `cargo bench --bench deadlock`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use futuretop::deadlock::Model as DeadlockModel;

const POOLS: u64 = 4;
const WORKERS: u64 = 500;
const FUTURES: u64 = 10_000;
const WAITS: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
enum Shape {
    Independent,
    Chain,
    Pairs,
    Ring,
}

/// Futures 1..=2000 run (pool (id-1) % 4), 2001..=10000 are pending; the waiters are
/// running futures 1..=1000.
fn model(shape: Shape) -> DeadlockModel {
    let mut m = DeadlockModel::new();
    for p in 0..POOLS {
        m.pool(&format!("pool{p}"), usize::try_from(WORKERS).expect("small"));
    }
    for id in 1..=FUTURES {
        m.pending(id, format!("task{id}"), format!("pool{}", (id - 1) % POOLS));
        if id <= POOLS * WORKERS {
            m.running(id);
        }
    }
    // Waits begin in a scrambled order, so no map iteration order happens to suit the fixpoint.
    let order = |i: u64| (i * 7_919) % WAITS + 1;
    for i in 0..WAITS {
        let w = order(i);
        let target = match shape {
            Shape::Independent => POOLS * WORKERS + w,
            Shape::Chain => w + 1, // w1000 waits on 1001, which runs freely
            Shape::Pairs => {
                if w % 2 == 1 {
                    w + 1
                } else {
                    w - 1
                }
            }
            Shape::Ring => w % WAITS + 1,
        };
        m.wait(w, target, i as f64 * 1e-3, None);
    }
    m
}

fn expected(shape: Shape) -> usize {
    match shape {
        Shape::Independent | Shape::Chain => 0,
        Shape::Pairs => 500,
        Shape::Ring => 1,
    }
}

const SHAPES: [(&str, Shape); 4] =
    [("independent", Shape::Independent), ("chain", Shape::Chain), ("pairs", Shape::Pairs), ("ring", Shape::Ring)];

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("deadlock_find_10k_futures_1k_waits");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for (name, shape) in SHAPES {
        let m = model(shape);
        assert_eq!(m.find().len(), expected(shape), "{name}");
        g.bench_function(name, |b| b.iter(|| black_box(m.find())));
    }
    g.finish();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn report() {
    println!("== DeadlockModel::find() on {FUTURES} futures ({} running, {POOLS} pools of {WORKERS}), {WAITS} blocked waits, median of 11", POOLS * WORKERS);
    for (name, shape) in SHAPES {
        let m = model(shape);
        let runs: Vec<Duration> = (0..11)
            .map(|_| {
                let start = Instant::now();
                let found = black_box(m.find());
                let t = start.elapsed();
                assert_eq!(found.len(), expected(shape));
                t
            })
            .collect();
        let stuck = m.stuck().len();
        println!(
            "  {name:12} {:9.3} ms   ({} deadlocks, {stuck} futures stuck)",
            median(runs).as_secs_f64() * 1e3,
            expected(shape)
        );
    }
    // Building the model: one pending, one running and one wait event's worth of updates.
    let start = Instant::now();
    let m = model(Shape::Independent);
    let per_update = start.elapsed().as_secs_f64() * 1e9 / (FUTURES + POOLS * WORKERS + WAITS) as f64;
    black_box(m);
    println!("  model updates (pending/running/wait), per update: {per_update:.0} ns");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test" || a == "--list" || a == "--profile-time");
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    if !quick {
        report();
    }
}
