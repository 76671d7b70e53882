//! Event-bus benchmark: how many events per second the real bus (`src/events.rs`, run by
//! the runner) publishes with a slow consumer attached, and what attaching one costs the
//! engine.
//!
//! The bus is internal, so it is measured through the public runner, as `futuretop run`
//! uses it: a plan of 30,000 trivial `pow` tasks (one `map:`) on a thread pool with one
//! worker per CPU, the event log written to a file, and up to two subscribers:
//!
//! - a **slow consumer**: it sleeps 1 ms after every 100 events, so it takes at most
//!   100,000 events/s and falls further behind all run long (a TUI that stalls);
//! - a **timing consumer**: it notes when each event arrives, to count the events and
//!   measure the bus's lag (arrival time minus the event's `t`).
//!
//! Figures:
//!
//! - **bus capacity**: the bus thread's own CPU time (from `/proc/self/task/TID/schedstat`,
//!   sampled every millisecond while it lives) divided by the events it published: the
//!   rate the bus could sustain if the engine produced events without pause. The bus
//!   thread only ever works on events (it blocks when it has none), so this is its cost
//!   per event: translate, stamp, feed the deadlock detector, serialise to the log, send
//!   to each subscriber;
//! - **delivered rate**: events divided by the time between the first and the last arrival
//!   at the timing consumer: what the run actually pushed through (bounded by the engine);
//! - **run time** of the same plan with no subscriber and no log, with the log only, with
//!   the log and the slow consumer, and with both consumers: the ratios say what a slow
//!   consumer costs the run;
//! - **engine only**: `ThreadPoolExecutor` running 100,000 trivial tasks, 50,000 tasks of
//!   5 µs and 20,000 of 20 µs, with no sink, with the sink the bus uses (an unbounded
//!   crossbeam channel, `try_send`) drained at once, and with it drained by a slow consumer.
//!
//! Criterion reports the runner benchmarks first; then an interleaved phase (every variant
//! once per round, in an order shuffled each round) prints medians and the median and
//! quartiles of the ratios taken within a round.
//! Run: `cargo bench --bench bus`.

/// The allocator the program runs with (`src/main.rs`), so that what is measured here is
/// what `futuretop` does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use crossbeam_channel::{unbounded, Receiver, Sender};
use futuretop::config::Plan;
use futuretop::events::Event;
use futuretop::events::EventKind;
use futuretop::runner::RunOptions;
use futuretop_engine::Observation;
use futuretop_engine::ThreadPoolBuilder;
use futuretop_engine::ThreadPoolExecutor;

/// Tasks in the runner plan (each gives `pending`, `running` and `done`). Kept moderate:
/// the runner's own bookkeeping grows faster than linearly with the task count (see
/// docs/performance.md), and it is the bus that is measured here.
const TASKS: usize = 100_000;
/// Rounds of the interleaved phase.
/// Run times on this VM swing by 15% from run to run, so the ratios are taken within a
/// round (the variants run back to back, in an order shuffled every round) and the median
/// and quartiles of those paired ratios are printed.
const ROUNDS: usize = 41;
/// The slow consumer sleeps this long ...
const SLOW_PAUSE: Duration = Duration::from_millis(1);
/// ... after this many events.
const SLOW_EVERY: u64 = 100;

fn workers() -> usize {
    thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn plan() -> Plan {
    let items = vec!["1"; TASKS].join(", ");
    let yaml = format!(
        "name: bus-bench\npools:\n  cpu: {{ kind: thread, max_workers: {} }}\ntasks:\n  - name: t\n    pool: cpu\n    \
         call: pow\n    args: {{ base: 2 }}\n    map: {{ exp: [{items}] }}\n",
        workers()
    );
    futuretop::config::load_str("bus-bench.yaml", "bus-bench", &yaml).expect("the bench's plan is valid")
}

/// Where the event log goes: in memory (`/dev/shm`) when there is one, so that the disk's
/// write-back of the last run's 30 MB, which lands at random moments, does not blur the
/// bus's own cost (it still writes every line through the same buffered file).
fn log_path() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("futuretop-bus-bench-{}.jsonl", std::process::id()))
}

// ---------------------------------------------------------------------------------------
// Consumers.

/// Takes events slowly until told to stop, then drops whatever is still queued.
fn slow_consumer<T: Send + 'static>(rx: Receiver<T>, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Acquire) {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(e) => {
                    black_box(e);
                    n += 1;
                    if n.is_multiple_of(SLOW_EVERY) {
                        thread::sleep(SLOW_PAUSE);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        n
    })
}

/// Takes events as fast as they come, until the channel closes.
fn fast_consumer<T: Send + 'static>(rx: Receiver<T>) -> JoinHandle<u64> {
    thread::spawn(move || {
        let mut n = 0u64;
        for e in rx {
            black_box(e);
            n += 1;
        }
        n
    })
}

/// What the timing consumer saw.
#[derive(Debug, Default, Clone, Copy)]
struct Arrivals {
    events: u64,
    first_to_last: Duration,
    max_lag: Duration,
}

fn timing_consumer(rx: Receiver<Arc<Event>>, start: Instant) -> JoinHandle<Arrivals> {
    thread::spawn(move || {
        let mut a = Arrivals::default();
        let mut first = None;
        for e in rx {
            let now = Instant::now();
            let first = *first.get_or_insert(now);
            a.events += 1;
            a.first_to_last = now - first;
            let due = start + Duration::from_secs_f64(e.t);
            a.max_lag = a.max_lag.max(now.saturating_duration_since(due));
            if matches!(e.kind, EventKind::RunFinished { .. }) {
                break;
            }
        }
        a
    })
}

// ---------------------------------------------------------------------------------------
// The bus thread's CPU time.

/// The id of this process's thread called `name`, if it runs.
fn thread_id(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| t.file_name().to_str()?.parse().ok())?
    })
}

/// The CPU time (user and system) of this process so far, every thread counted, those
/// that have ended too.
fn process_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) else { return Duration::ZERO };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// This process's minor page faults so far.
fn minor_faults() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| u64::try_from(u.minor_page_faults()).unwrap_or(0))
}

/// Nanoseconds thread `tid` has spent on a CPU.
fn cpu_ns(tid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Samples the CPU time of the thread `name` every millisecond until `stop`; returns the
/// last sample (the thread's total, to within its last millisecond).
fn sample_cpu(name: &'static str, stop: Arc<AtomicBool>) -> JoinHandle<Option<Duration>> {
    thread::spawn(move || {
        let mut tid = None;
        let mut last = None;
        while !stop.load(Ordering::Acquire) {
            if tid.is_none() {
                tid = thread_id(name);
            }
            if let Some(ns) = tid.and_then(cpu_ns) {
                last = Some(Duration::from_nanos(ns));
            }
            thread::sleep(Duration::from_millis(1));
        }
        last
    })
}

// ---------------------------------------------------------------------------------------
// One run of the plan.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attach {
    /// No subscriber, no log.
    Nothing,
    /// The event log only.
    Log,
    /// The log and a slow consumer.
    LogAndSlowConsumer,
    /// The log, a slow consumer and the timing consumer.
    LogSlowAndTiming,
}

#[derive(Debug, Clone, Copy)]
struct RunFigures {
    wall: Duration,
    /// The CPU time of the whole process (every thread: engine, runner, bus, consumers)
    /// over the same span: on a VM whose vCPUs are shared, wall time swings with what the
    /// neighbours do; this does much less.
    cpu: Duration,
    /// Page faults (minor) over the same span: memory touched for the first time.
    faults: u64,
    bus_cpu: Option<Duration>,
    arrivals: Option<Arrivals>,
}

fn run(plan: &Plan, attach: Attach) -> RunFigures {
    let log = log_path();
    let options = RunOptions { events: (attach != Attach::Nothing).then(|| log.clone()), ..RunOptions::default() };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_cpu("futuretop-bus", Arc::clone(&stop));
    let mut subscribers: Vec<Sender<Arc<Event>>> = Vec::new();
    let mut slow = None;
    let mut timing = None;
    let start = Instant::now();
    let (cpu_start, faults_start) = (process_cpu(), minor_faults());
    if matches!(attach, Attach::LogAndSlowConsumer | Attach::LogSlowAndTiming) {
        let (tx, rx) = unbounded();
        subscribers.push(tx);
        slow = Some(slow_consumer(rx, Arc::clone(&stop)));
    }
    if attach == Attach::LogSlowAndTiming {
        let (tx, rx) = unbounded();
        subscribers.push(tx);
        timing = Some(timing_consumer(rx, start));
    }
    let handle = futuretop::runner::start(plan.clone(), &options, subscribers).expect("the run starts");
    let report = handle.join();
    let wall = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_start);
    let faults = minor_faults().saturating_sub(faults_start);
    assert_eq!(report.exit_code, 0);
    assert_eq!(report.counts.done, TASKS);
    stop.store(true, Ordering::Release);
    let bus_cpu = sampler.join().expect("the sampler does not panic");
    let arrivals = timing.map(|t| t.join().expect("the timing consumer does not panic"));
    if let Some(s) = slow {
        black_box(s.join().expect("the slow consumer does not panic"));
    }
    let _ = std::fs::remove_file(log);
    RunFigures { wall, cpu, faults, bus_cpu, arrivals }
}

// ---------------------------------------------------------------------------------------
// The engine alone, with and without the bus's kind of sink.

/// Engine-only workloads: (tasks, work per task).
const ENGINE_WORK: [(u64, Duration); 3] =
    [(100_000, Duration::ZERO), (50_000, Duration::from_micros(5)), (20_000, Duration::from_micros(20))];

fn spin(d: Duration) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        n = black_box(n + 1);
    }
    n
}

/// One engine run of variant `v` (0: no sink, 1: the sink drained at once, 2: drained by
/// the slow consumer) on a pool made for it and warmed up first. A pool per run: a slow
/// consumer kept from run to run would carry a growing backlog (every run adds more events
/// than it takes) into every later measurement, whatever the variant.
fn engine_variant(v: usize, workers: usize, count: u64, work: Duration) -> Duration {
    const WARM_UP: u64 = 1_000;
    if v == 0 {
        let pool = ThreadPoolExecutor::new(workers).expect("a valid pool");
        engine_run(&pool, WARM_UP, Duration::ZERO);
        return engine_run(&pool, count, work);
    }
    let pool = SinkPool::new(workers, v == 2);
    engine_run(pool.pool(), WARM_UP, Duration::ZERO);
    engine_run(pool.pool(), count, work)
}

/// `n` tasks submitted, then each `result`; `work` is what each does.
fn engine_run(pool: &ThreadPoolExecutor, n: u64, work: Duration) -> Duration {
    let start = Instant::now();
    let futures: Vec<_> = (0..n)
        .map(|i| {
            pool.submit(move || {
                if !work.is_zero() {
                    black_box(spin(work));
                }
                i
            })
            .expect("the pool accepts work")
        })
        .collect();
    let sum: u64 = futures.iter().map(|f| f.result(None).expect("the task succeeds")).sum();
    assert_eq!(sum, n * (n - 1) / 2);
    start.elapsed()
}

/// A pool whose sink is the bus's kind (an unbounded channel, `try_send`), drained slowly.
struct SinkPool {
    pool: Option<ThreadPoolExecutor>,
    stop: Arc<AtomicBool>,
    drainer: Option<JoinHandle<u64>>,
}

impl SinkPool {
    /// A pool of `n` workers whose sink is drained by a slow consumer, or by a fast one.
    fn new(n: usize, slow: bool) -> Self {
        let (tx, rx) = unbounded::<(Instant, Observation)>();
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = if slow { slow_consumer(rx, Arc::clone(&stop)) } else { fast_consumer(rx) };
        let pool = ThreadPoolBuilder::new().max_workers(n).sink(Arc::new(tx)).build().expect("a valid pool");
        Self { pool: Some(pool), stop, drainer: Some(drainer) }
    }

    fn pool(&self) -> &ThreadPoolExecutor {
        self.pool.as_ref().expect("open until dropped")
    }
}

impl Drop for SinkPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        drop(self.pool.take());
        if let Some(d) = self.drainer.take() {
            let _ = d.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Criterion.

fn criterion_benches(c: &mut Criterion, plan: &Plan) {
    // Count the events of one run to express throughput in events.
    let pilot = run(plan, Attach::LogSlowAndTiming);
    let events = pilot.arrivals.map_or(3 * TASKS as u64, |a| a.events);
    let mut g = c.benchmark_group("bus");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(events));
    g.bench_function("runner_30k_tasks_log_and_slow_consumer", |b| {
        b.iter(|| run(plan, Attach::LogAndSlowConsumer).wall);
    });
    g.bench_function("runner_30k_tasks_no_consumer", |b| b.iter(|| run(plan, Attach::Nothing).wall));
    g.finish();
}

// ---------------------------------------------------------------------------------------
// The interleaved phase.

fn median<T: Ord + Copy>(mut xs: Vec<T>) -> T {
    xs.sort();
    xs[xs.len() / 2]
}

/// `0..n` in an order drawn afresh each round (xorshift): a variant that always ran after
/// the same other one would carry that one's after-effects (memory being given back, a
/// file being deleted) in its figures.
fn shuffled(n: usize, seed: &mut u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        order.swap(i, usize::try_from(*seed % (i as u64 + 1)).expect("below n, a usize"));
    }
    order
}

/// `(q1, median, q3)` of `xs`.
fn quartiles(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: usize| xs[(xs.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}

/// The paired ratios `a[i] / b[i]`, summarised.
fn paired(a: &[Duration], b: &[Duration]) -> String {
    let (q1, m, q3) = quartiles(a.iter().zip(b).map(|(a, b)| a.as_secs_f64() / b.as_secs_f64()).collect());
    format!("{m:.3}x (quartiles {q1:.3}-{q3:.3})")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_event(cpu: &[Duration], events: u64) -> String {
    if cpu.len() < ROUNDS {
        return "n/a (/proc/self/task/TID/schedstat not readable)".to_owned();
    }
    let per = median(cpu.to_vec()).as_secs_f64() / events as f64;
    format!("{:>5.0} ns/event -> capacity {:.2} M events/s", per * 1e9, 1e-6 / per)
}

#[allow(clippy::too_many_lines)] // one report, printed in order
fn report(plan: &Plan) {
    const VARIANTS: [(Attach, &str); 4] = [
        (Attach::Nothing, "no subscriber, no log"),
        (Attach::Log, "event log only"),
        (Attach::LogAndSlowConsumer, "event log + slow consumer"),
        (Attach::LogSlowAndTiming, "event log + slow + timing consumer"),
    ];
    let mut walls: [Vec<Duration>; 4] = Default::default();
    let mut process: [Vec<Duration>; 4] = Default::default();
    let mut faults: [Vec<u64>; 4] = Default::default();
    let mut cpus: [Vec<Duration>; 4] = Default::default();
    let mut delivered = Vec::new();
    let mut lags = Vec::new();
    let mut events = 0u64;
    let n = workers();
    // engine[work][0: no sink, 1: sink + fast consumer, 2: sink + slow consumer]
    let mut engine: [[Vec<Duration>; 3]; 3] = Default::default();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..ROUNDS {
        for i in shuffled(VARIANTS.len(), &mut seed) {
            let f = run(plan, VARIANTS[i].0);
            walls[i].push(f.wall);
            process[i].push(f.cpu);
            faults[i].push(f.faults);
            cpus[i].extend(f.bus_cpu);
            if let Some(a) = f.arrivals {
                events = a.events;
                delivered.push(a.first_to_last);
                lags.push(a.max_lag);
            }
        }
        for (w, (count, work)) in ENGINE_WORK.into_iter().enumerate() {
            for v in shuffled(3, &mut seed) {
                engine[w][v].push(engine_variant(v, n, count, work));
            }
        }
    }
    println!();
    println!(
        "== event bus: {TASKS} pow tasks through the runner, {n} workers, {events} events a run, {ROUNDS} interleaved rounds"
    );
    for (i, (_, name)) in VARIANTS.iter().enumerate() {
        println!(
            "{name:<36} run {:>7.1} ms, CPU {:>7.1} ms, {:>6} page faults (medians)   bus thread {}",
            ms(median(walls[i].clone())),
            ms(median(process[i].clone())),
            median(faults[i].clone()),
            per_event(&cpus[i], events)
        );
    }
    for (what, xs) in [("run time", &walls), ("process CPU time", &process)] {
        println!("{what}, ratios within a round (median, quartiles):");
        println!("  log + slow consumer / log only       {}   <- what a slow consumer costs", paired(&xs[2], &xs[1]));
        println!("  log + slow consumer / nothing        {}", paired(&xs[2], &xs[0]));
        println!("  log only / nothing                   {}", paired(&xs[1], &xs[0]));
        println!("  log + slow + timing / log only       {}", paired(&xs[3], &xs[1]));
    }
    let d = median(delivered);
    println!(
        "delivered to the timing consumer: {:.2} M events/s ({events} events in {:.1} ms; the engine sets this pace)",
        events as f64 / d.as_secs_f64() / 1e6,
        ms(d)
    );
    println!("largest lag of the timing consumer (arrival - event's t): {:.1} ms", ms(median(lags)));
    println!();
    println!("== engine alone: ThreadPoolExecutor, {n} workers: no sink, the bus's kind of sink drained at once, the same drained slowly");
    for (w, (count, work)) in ENGINE_WORK.into_iter().enumerate() {
        let per = |v: usize| median(engine[w][v].clone()).as_secs_f64() * 1e6 / count as f64;
        println!(
            "{count:>6} tasks of {:>2} us: {:>7.3} / {:>7.3} / {:>7.3} us/task; slow / fast consumer {}; sink / no sink {}",
            work.as_micros(),
            per(0),
            per(1),
            per(2),
            paired(&engine[w][2], &engine[w][1]),
            paired(&engine[w][1], &engine[w][0]),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Only `cargo bench` passes `--bench`; `cargo test --benches` and `--list` run criterion
    // in its quick modes: skip the interleaved phase then.
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test" || a == "--list");
    let plan = plan();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &plan);
    c.final_summary();
    if !quick {
        report(&plan);
    }
}
