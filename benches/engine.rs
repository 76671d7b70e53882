//! Engine benchmark: the cost per task of futuretop's `ThreadPoolExecutor` against a bare
//! thread pool, and of `wait` / `as_completed` over finished futures; plus the memory a
//! pending future holds.
//!
//! Workloads (100,000 trivial tasks `move || i` on `available_parallelism()` workers):
//!
//! - (a) `submit` every task, then `result(None)` each in order;
//! - (b) `ThreadPoolExecutor::map`;
//! - (c) `submit` every task, then `as_completed`;
//! - (d) (a) with an event sink attached (an unbounded crossbeam channel drained by a
//!   thread; each iteration also waits until the drainer has seen every `Finished`);
//! - the BASELINE beside them: a bare pool of as many threads fed by a crossbeam job
//!   queue, each job returning its result through a one-shot `bounded(1)` channel (and,
//!   for context only, a floor: the same pool sending every result into one shared
//!   channel);
//! - (e) `wait(ALL_COMPLETED)` and `as_completed` over 100,000 already-finished futures;
//! - (f) heap bytes per pending `Future<u64>`, counted by a global allocator, for
//!   `Future::new` and for `submit` to a pool whose only worker is blocked.
//!
//! Criterion reports each benchmark; then an interleaved phase (each workload once per
//! round, several rounds, medians) prints per-task figures and the ratios against the
//! baseline measured in the same process, and the memory figures.
//! Run: `cargo bench --bench engine`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use futuretop_engine::as_completed;
use futuretop_engine::wait;
use futuretop_engine::Future;
use futuretop_engine::Observation;
use futuretop_engine::ReturnWhen;
use futuretop_engine::ThreadPoolBuilder;
use futuretop_engine::ThreadPoolExecutor;

/// Tasks per workload.
const TASKS: u64 = 100_000;
/// Rounds of the interleaved ratio phase.
const ROUNDS: usize = 7;

/// The sum every workload must produce: 0 + 1 + ... + (TASKS - 1).
const EXPECTED_SUM: u64 = TASKS * (TASKS - 1) / 2;

fn workers() -> usize {
    thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

// ---------------------------------------------------------------------------------------
// The baseline: a bare pool.

type BareJob = Box<dyn FnOnce() + Send>;

/// N threads fed by one crossbeam job queue; no futures, no states, no callbacks.
struct BarePool {
    tx: Option<Sender<BareJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl BarePool {
    fn new(n: usize) -> Self {
        let (tx, rx) = unbounded::<BareJob>();
        let threads = (0..n)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || {
                    for job in rx {
                        job();
                    }
                })
            })
            .collect();
        Self { tx: Some(tx), threads }
    }

    fn run(&self, job: BareJob) {
        self.tx.as_ref().expect("the pool is open").send(job).expect("the workers are alive");
    }

    /// Queues `f`; its result comes back through a one-shot channel.
    fn submit<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
        let (tx, rx) = bounded(1);
        self.run(Box::new(move || {
            let _ = tx.send(f());
        }));
        rx
    }
}

impl Drop for BarePool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            t.join().expect("a bare worker panicked");
        }
    }
}

fn bare_pool(pool: &BarePool) -> u64 {
    let rxs: Vec<Receiver<u64>> = (0..TASKS).map(|i| pool.submit(move || i)).collect();
    let sum = rxs.into_iter().map(|rx| rx.recv().expect("every job answers")).sum();
    assert_eq!(sum, EXPECTED_SUM);
    sum
}

/// Not the baseline, a floor for context: the same pool with every result sent into one
/// shared channel (no per-task one-shot, so nothing to wait on per task, in any order).
fn bare_pool_shared_channel(pool: &BarePool) -> u64 {
    let (tx, rx) = unbounded::<u64>();
    for i in 0..TASKS {
        let tx = tx.clone();
        pool.run(Box::new(move || {
            let _ = tx.send(i);
        }));
    }
    drop(tx);
    let sum = rx.iter().sum();
    assert_eq!(sum, EXPECTED_SUM);
    sum
}

// ---------------------------------------------------------------------------------------
// The engine's workloads.

fn submit_all(pool: &ThreadPoolExecutor) -> Vec<Future<u64>> {
    (0..TASKS).map(|i| pool.submit(move || i).expect("the pool accepts work")).collect()
}

fn submit_result(pool: &ThreadPoolExecutor) -> u64 {
    let fs = submit_all(pool);
    let sum = fs.iter().map(|f| f.result(None).expect("a trivial task succeeds")).sum();
    assert_eq!(sum, EXPECTED_SUM);
    sum
}

fn map(pool: &ThreadPoolExecutor) -> u64 {
    let sum = pool
        .map(|i: u64| i, 0..TASKS, None, 1)
        .expect("the pool accepts work")
        .map(|r| r.expect("a trivial task succeeds"))
        .sum();
    assert_eq!(sum, EXPECTED_SUM);
    sum
}

fn submit_as_completed(pool: &ThreadPoolExecutor) -> u64 {
    let fs = submit_all(pool);
    let sum =
        as_completed(&fs, None).map(|f| f.expect("no timeout").result(None).expect("a trivial task succeeds")).sum();
    assert_eq!(sum, EXPECTED_SUM);
    sum
}

/// A pool whose sink is an unbounded channel drained by a thread that counts `Finished`.
struct SinkPool {
    pool: Option<ThreadPoolExecutor>,
    finished: Arc<AtomicU64>,
    drainer: Option<JoinHandle<u64>>,
}

impl SinkPool {
    fn new(n: usize) -> Self {
        let (tx, rx) = unbounded::<(Instant, Observation)>();
        let finished = Arc::new(AtomicU64::new(0));
        let drainer = {
            let finished = Arc::clone(&finished);
            thread::spawn(move || {
                let mut events = 0u64;
                for (_, what) in rx {
                    events += 1;
                    if matches!(what, Observation::Finished { .. }) {
                        finished.fetch_add(1, Ordering::Release);
                    }
                }
                events
            })
        };
        let pool = ThreadPoolBuilder::new().max_workers(n).sink(Arc::new(tx)).build().expect("a valid pool");
        Self { pool: Some(pool), finished, drainer: Some(drainer) }
    }

    /// (a) with events: also waits until the drainer has taken every event it caused.
    fn submit_result(&self) -> u64 {
        let before = self.finished.load(Ordering::Acquire);
        let sum = submit_result(self.pool.as_ref().expect("open until dropped"));
        while self.finished.load(Ordering::Acquire) < before + TASKS {
            thread::yield_now();
        }
        sum
    }
}

impl Drop for SinkPool {
    fn drop(&mut self) {
        // The pool and its futures hold the only senders: the drainer ends after them.
        drop(self.pool.take());
        if let Some(d) = self.drainer.take() {
            let _ = d.join();
        }
    }
}

fn finished_futures() -> Vec<Future<u64>> {
    (0..TASKS)
        .map(|i| {
            let f = Future::new();
            f.set_result(i).expect("a new future accepts a result");
            f
        })
        .collect()
}

fn wait_finished(fs: &[Future<u64>]) -> usize {
    let r = wait(fs, None, ReturnWhen::AllCompleted);
    assert!(r.not_done.is_empty());
    r.done.len()
}

fn as_completed_finished(fs: &[Future<u64>]) -> usize {
    let mut n = 0;
    for f in as_completed(fs, None) {
        black_box(f.expect("no timeout"));
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------
// Criterion.

struct Pools {
    bare: BarePool,
    engine: ThreadPoolExecutor,
    sink: SinkPool,
}

impl Pools {
    fn new() -> Self {
        let n = workers();
        Self {
            bare: BarePool::new(n),
            engine: ThreadPoolExecutor::new(n).expect("a valid pool"),
            sink: SinkPool::new(n),
        }
    }
}

fn criterion_benches(c: &mut Criterion, pools: &Pools) {
    let mut g = c.benchmark_group("100k_tasks");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(TASKS));
    g.bench_function("baseline_bare_pool", |b| b.iter(|| bare_pool(&pools.bare)));
    g.bench_function("submit_result", |b| b.iter(|| submit_result(&pools.engine)));
    g.bench_function("map", |b| b.iter(|| map(&pools.engine)));
    g.bench_function("as_completed", |b| b.iter(|| submit_as_completed(&pools.engine)));
    g.bench_function("submit_result_with_sink", |b| b.iter(|| pools.sink.submit_result()));
    g.finish();

    let mut g = c.benchmark_group("100k_finished_futures");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(TASKS));
    g.bench_function("wait_all_completed", |b| {
        b.iter_batched_ref(finished_futures, |fs| wait_finished(fs), BatchSize::PerIteration);
    });
    g.bench_function("as_completed", |b| {
        b.iter_batched_ref(finished_futures, |fs| as_completed_finished(fs), BatchSize::PerIteration);
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// The interleaved ratio phase.

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Microseconds per task of a run of `TASKS`.
fn per_task_us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / TASKS as f64
}

fn time(f: impl FnOnce() -> u64) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

fn ratio_report(pools: &Pools) {
    const NAMES: [&str; 5] = ["bare pool (baseline)", "submit+result", "map", "as_completed", "submit+result, sink on"];
    let mut runs: [Vec<Duration>; 5] = Default::default();
    let mut wait_runs = Vec::new();
    let mut ac_runs = Vec::new();
    let mut floor_runs = Vec::new();
    for _ in 0..ROUNDS {
        runs[0].push(time(|| bare_pool(&pools.bare)));
        floor_runs.push(time(|| bare_pool_shared_channel(&pools.bare)));
        runs[1].push(time(|| submit_result(&pools.engine)));
        runs[2].push(time(|| map(&pools.engine)));
        runs[3].push(time(|| submit_as_completed(&pools.engine)));
        runs[4].push(time(|| pools.sink.submit_result()));
        let fs = finished_futures();
        wait_runs.push(time(|| wait_finished(&fs) as u64));
        ac_runs.push(time(|| as_completed_finished(&fs) as u64));
    }
    let medians: Vec<Duration> = runs.into_iter().map(median).collect();
    let base = medians[0].as_secs_f64();
    println!();
    println!(
        "== futuretop engine: {TASKS} trivial tasks, {} workers, median of {ROUNDS} interleaved rounds",
        workers()
    );
    for (name, m) in NAMES.iter().zip(&medians) {
        println!("{name:<24} {:>8.3} us/task", per_task_us(*m));
    }
    let floor = median(floor_runs);
    println!(
        "{:<24} {:>8.3} us/task (a floor for context, not the baseline)",
        "bare pool, shared chan",
        per_task_us(floor)
    );
    for (name, m) in NAMES.iter().zip(&medians).skip(1) {
        println!("ratio {name} / bare pool = {:.2}x", m.as_secs_f64() / base);
    }
    for (name, m) in NAMES.iter().zip(&medians).skip(1) {
        println!("ratio {name} / shared-channel floor = {:.2}x", m.as_secs_f64() / floor.as_secs_f64());
    }
    println!(
        "wait(ALL_COMPLETED) over {TASKS} finished futures: {:.1} ns/future",
        per_task_us(median(wait_runs)) * 1e3
    );
    println!("as_completed over {TASKS} finished futures:       {:.1} ns/future", per_task_us(median(ac_runs)) * 1e3);
}

// ---------------------------------------------------------------------------------------
// Memory of a pending future.

/// Heap bytes and allocations still held per item after `make` built `TASKS` items
/// (this thread's allocations minus its frees, counted by the global allocator).
/// `allocation_counter` installs the counting global allocator (per thread, forwarding to
/// `System`); linking it in is enough.
fn held_per_item(make: impl FnOnce()) -> (f64, f64) {
    let info = allocation_counter::measure(make);
    (info.bytes_current as f64 / TASKS as f64, info.count_current as f64 / TASKS as f64)
}

fn memory_report() {
    let capacity = usize::try_from(TASKS).expect("fits");
    // Future::new: the handles go into a vector allocated beforehand (not counted).
    let mut bare: Vec<Future<u64>> = Vec::with_capacity(capacity);
    let (new_bytes, new_allocs) = held_per_item(|| {
        for _ in 0..TASKS {
            bare.push(Future::new());
        }
    });
    assert!(bare.iter().all(|f| !f.done()));
    drop(bare);

    // submit to a one-worker pool whose worker is blocked: the futures stay pending, and
    // what is held includes the queued job.
    let pool = ThreadPoolExecutor::new(1).expect("a valid pool");
    let (started_tx, started_rx) = bounded::<()>(1);
    let (release_tx, release_rx) = bounded::<()>(1);
    let blocker = pool
        .submit(move || {
            started_tx.send(()).expect("the bench waits for this");
            release_rx.recv().expect("the bench releases the worker");
            0u64
        })
        .expect("the pool accepts work");
    started_rx.recv().expect("the blocker starts");
    let mut pending: Vec<Future<u64>> = Vec::with_capacity(capacity);
    let (submit_bytes, submit_allocs) = held_per_item(|| {
        for i in 0..TASKS {
            pending.push(pool.submit(move || i).expect("the pool accepts work"));
        }
    });
    assert!(pending.iter().all(|f| !f.done()), "the futures stayed pending");
    release_tx.send(()).expect("the blocker waits");
    assert_eq!(blocker.result(None), Ok(0));
    let sum: u64 = pending.iter().map(|f| f.result(None).expect("a trivial task succeeds")).sum();
    assert_eq!(sum, EXPECTED_SUM);
    drop(pool);

    println!();
    println!("== memory of a pending Future<u64> (heap bytes held per future, {TASKS} futures)");
    println!(
        "Future::new():                     {new_bytes:>6.1} bytes/future in {new_allocs:.2} allocations (+8 for the handle)"
    );
    println!(
        "submit() to a blocked pool:        {submit_bytes:>6.1} bytes/future in {submit_allocs:.2} allocations (+8 for the handle; includes the queued job)"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` / `--list` run criterion in its quick modes: skip the extras.
    let quick = args.iter().any(|a| a == "--test" || a == "--list");
    let pools = Pools::new();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &pools);
    c.final_summary();
    if !quick {
        ratio_report(&pools);
        memory_report();
    }
}
