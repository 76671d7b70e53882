//! Process-pool benchmark: what a call on futuretop's `ProcessPoolExecutor` costs, beside
//! a bare re-exec-and-pipe pool written here and beside CPython's `ProcessPoolExecutor`.
//!
//! Workloads (the worker program is the `futuretop` binary itself, built with the bench):
//!
//! - (a) round trip: `submit(pow(2, 10))` then `result()`, one call at a time, on a
//!   one-worker pool (one call per message);
//! - the BASELINE for (a): a bare pool, one worker process of the same program in worker
//!   mode, driven directly from the bench thread: encode the call frame, write it, read
//!   frames until the call's result (no futures, no queue, no slot thread);
//! - (b) `map` over N calls on 2 workers with `chunksize` 1 and 100;
//! - (c) start-up: from the builder to both of 2 workers having answered a call; each is
//!   paired with one of CPython's (`fork`) taken right before or after it (alternately) by
//!   a Python process kept for that, and the target is judged on the median of those
//!   paired ratios;
//! - (d) the seed's `is_prime` example (`map(is_prime, PRIMES)`) on 2 workers, against the
//!   same trial division run sequentially in this process.
//!
//! Criterion reports (a), its baseline and (b); then an interleaved phase (each workload
//! once per round, several rounds, medians) prints every figure and the ratios. If
//! `python3` is found, `benches/python_process_baseline.py` runs right after in the same
//! process tree and its figures are printed beside ours, with the targets.
//! Run: `cargo bench --bench process` (set `FUTURETOP_BENCH_NO_PYTHON=1` to skip Python).

/// The allocator the program runs with (`src/main.rs`), so that what is measured here is
/// what `futuretop` does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::io::{BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use futuretop::builtins::{self, Builtin};
use futuretop::tasks::BUILTIN_CALL;
use futuretop_engine::executor::WORKER_ARG;
use futuretop_engine::Observation;
use futuretop_engine::ProcessCall;
use futuretop_engine::ProcessPoolExecutor;
use serde_json::{json, Value};

const EXE: &str = env!("CARGO_BIN_EXE_futuretop");
/// Calls per round-trip measurement.
const TRIPS: usize = 2_000;
/// Calls per map measurement (x10 for chunksize 100).
const MAPPED: usize = 2_000;
/// Rounds of the interleaved phase.
const ROUNDS: usize = 7;
/// The seed's numbers (`concurrent.futures` documentation's ProcessPoolExecutor example).
const PRIMES: [u64; 6] = [
    112_272_535_095_293,
    112_582_705_942_171,
    112_272_535_095_293,
    115_280_095_190_773,
    115_797_848_077_099,
    1_099_726_899_285_419,
];

fn pow_args() -> Value {
    serde_json::to_value(Builtin::Pow(builtins::Pow { base: 2, exp: 10 })).expect("a built-in serialises")
}

// ---------------------------------------------------------------------------------------
// The baseline: a bare re-exec-and-pipe worker.

/// One worker process of the same program, spoken to directly: length-prefixed JSON
/// frames, as the protocol defines them, written and read by the calling thread.
struct Bare {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

fn write_frame(w: &mut impl Write, v: &Value) {
    let body = serde_json::to_vec(v).expect("a frame encodes");
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&u32::try_from(body.len()).expect("a small frame").to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).expect("the worker reads");
    w.flush().expect("the worker reads");
}

fn read_frame(r: &mut impl Read) -> Value {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).expect("a frame header");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut body).expect("a frame body");
    serde_json::from_slice(&body).expect("a frame decodes")
}

impl Bare {
    fn spawn() -> Self {
        let mut child = Command::new(EXE)
            .arg(WORKER_ARG)
            .env("FUTURETOP_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the worker starts");
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        assert_eq!(read_frame(&mut stdout)["op"], "hello");
        Self { child, stdin, stdout, next: 0 }
    }

    fn call(&mut self, name: &str, args: &Value) -> Value {
        self.next += 1;
        let id = self.next;
        write_frame(&mut self.stdin, &json!({"op": "run", "calls": [{"id": id, "name": name, "args": args}]}));
        loop {
            let msg = read_frame(&mut self.stdout);
            if msg["op"] == "finished" && msg["id"] == id {
                return msg["result"]["Ok"].clone();
            }
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        write_frame(&mut self.stdin, &json!({"op": "exit"}));
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The workloads.

/// A pool of the program's workers, started as the program starts them (with the
/// environment it gives its workers: `futuretop::worker_env`).
fn pool(workers: usize) -> ProcessPoolExecutor {
    futuretop::worker_env::for_workers(ProcessPoolExecutor::builder())
        .program(EXE)
        .max_workers(workers)
        .build()
        .expect("a pool")
}

/// (a) one call at a time.
fn round_trips(pool: &ProcessPoolExecutor, n: usize) {
    let call = ProcessCall::new(BUILTIN_CALL, pow_args());
    for _ in 0..n {
        let f = pool.submit(call.clone()).expect("the pool accepts");
        assert_eq!(f.result(None), Ok(json!(1024)));
    }
}

fn bare_round_trips(bare: &mut Bare, n: usize) {
    let args = pow_args();
    for _ in 0..n {
        assert_eq!(bare.call(BUILTIN_CALL, &args), json!(1024));
    }
}

/// (b) map.
fn map(pool: &ProcessPoolExecutor, n: usize, chunksize: usize) {
    let items = std::iter::repeat_n(pow_args(), n);
    let total: i64 = pool
        .map(BUILTIN_CALL, items, None, chunksize)
        .expect("the pool accepts")
        .map(|r| r.expect("pow succeeds").as_i64().expect("a number"))
        .sum();
    assert_eq!(total, 1024 * i64::try_from(n).expect("small"));
}

/// (c) builder to both workers having answered a call.
fn startup() -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<(Instant, Observation)>();
    let start = Instant::now();
    let pool = futuretop::worker_env::for_workers(ProcessPoolExecutor::builder())
        .program(EXE)
        .max_workers(2)
        .sink(Arc::new(tx))
        .build()
        .expect("a pool");
    let mut pids = std::collections::HashSet::new();
    let call = ProcessCall::new(BUILTIN_CALL, pow_args());
    while pids.len() < 2 {
        let fs = [pool.submit(call.clone()).expect("accepts"), pool.submit(call.clone()).expect("accepts")];
        for f in &fs {
            f.result(None).expect("pow succeeds");
        }
        for (_, o) in rx.try_iter() {
            if let Observation::Running { pid: Some(pid), .. } = o {
                pids.insert(pid);
            }
        }
    }
    let elapsed = start.elapsed();
    drop(pool);
    elapsed
}

/// (d) the seed's example on 2 workers.
fn primes_pool(pool: &ProcessPoolExecutor) {
    let items =
        PRIMES.iter().map(|&n| serde_json::to_value(Builtin::IsPrime(builtins::IsPrime { n })).expect("serialises"));
    let results: Vec<bool> = pool
        .map(BUILTIN_CALL, items, None, 1)
        .expect("accepts")
        .map(|r| r.expect("ok").as_bool().expect("bool"))
        .collect();
    assert_eq!(results, [true, true, true, true, true, false]);
}

/// The seed's `is_prime`, as futuretop's built-in runs it, sequentially in this thread.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n == 2 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let sqrt_n = n.isqrt();
    let mut i = 3;
    while i <= sqrt_n {
        if n.is_multiple_of(i) {
            return false;
        }
        i += 2;
    }
    true
}

fn primes_sequential() {
    let results: Vec<bool> = PRIMES.iter().map(|&n| is_prime(black_box(n))).collect();
    assert_eq!(results, [true, true, true, true, true, false]);
}

// ---------------------------------------------------------------------------------------

fn criterion_benches(c: &mut Criterion) {
    let one = pool(1);
    round_trips(&one, 100); // the worker is up
    let mut bare = Bare::spawn();
    let mut g = c.benchmark_group("process_round_trip");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(TRIPS as u64));
    g.bench_function("futuretop_submit_result", |b| b.iter(|| round_trips(&one, TRIPS)));
    g.bench_function("bare_pipe_worker", |b| b.iter(|| bare_round_trips(&mut bare, TRIPS)));
    g.finish();
    let two = pool(2);
    map(&two, 200, 1);
    let mut g = c.benchmark_group("process_map");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(MAPPED as u64));
    g.bench_function("chunksize_1", |b| b.iter(|| map(&two, MAPPED, 1)));
    g.bench_function("chunksize_100", |b| b.iter(|| map(&two, MAPPED, 100)));
    g.finish();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn us_per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// CPython answering start-up measurements one at a time
/// (`python_process_baseline.py --serve-startup`), so that each of ours is paired with one
/// of Python's taken the same moment: this VM's speed drifts by a third over minutes, and
/// Python's figure from its own run a minute later was as likely to come from another
/// moment as from this one.
struct PyStartup {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl PyStartup {
    fn spawn() -> Option<Self> {
        if std::env::var_os("FUTURETOP_BENCH_NO_PYTHON").is_some() {
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_process_baseline.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--serve-startup")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take()?);
        Some(Self { child, stdin, stdout })
    }

    /// One start-up of Python's pool with the `fork` start method, in ms.
    fn fork_ms(&mut self) -> Option<f64> {
        use std::io::BufRead;
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "fork").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).ok()?;
        line.trim().parse().ok()
    }
}

impl Drop for PyStartup {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Start-ups per round: ours, each paired with one of Python's taken right before or
/// right after it (alternately).
const STARTUPS_PER_ROUND: usize = 3;

/// `(q1, median, q3)` of `xs`.
fn quartiles(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: usize| xs[(xs.len() - 1) * q / 4];
    (at(1), at(2), at(3))
}

/// Figures of the interleaved phase (µs per call, ms for the rest).
struct Figures {
    round_trip: f64,
    bare: f64,
    map_c1: f64,
    map_c100: f64,
    startup: f64,
    primes_pool: f64,
    primes_sequential: f64,
    /// Python's fork start-ups taken between ours (ms), and the paired ratios ours / its.
    paired_startup: Option<(f64, (f64, f64, f64))>,
    /// Our start-up (median, ms) when it ran first in its pair, and right after Python's.
    startup_by_order: Option<[f64; 2]>,
}

fn interleaved() -> Figures {
    let one = pool(1);
    let two = pool(2);
    let mut bare = Bare::spawn();
    round_trips(&one, 100);
    bare_round_trips(&mut bare, 100);
    map(&two, 200, 1);
    let mut runs: [Vec<Duration>; 7] = Default::default();
    let mut py = PyStartup::spawn();
    let (mut py_fork, mut ratios) = (Vec::new(), Vec::new());
    // Our start-ups (ms) when ours went first in the pair, and when Python's did.
    let mut after_python: [Vec<f64>; 2] = Default::default();
    for _ in 0..ROUNDS {
        runs[0].push(timed(|| round_trips(&one, TRIPS)));
        runs[1].push(timed(|| bare_round_trips(&mut bare, TRIPS)));
        runs[2].push(timed(|| map(&two, MAPPED, 1)));
        runs[3].push(timed(|| map(&two, MAPPED * 10, 100)));
        for _ in 0..STARTUPS_PER_ROUND {
            // Which side goes first alternates: whichever runs right after the other
            // inherits its after-effects (processes being torn down, caches).
            let python_first = runs[4].len() % 2 == 1;
            let mut theirs = if python_first { py.as_mut().and_then(PyStartup::fork_ms) } else { None };
            let ours = startup();
            if !python_first {
                theirs = py.as_mut().and_then(PyStartup::fork_ms);
            }
            runs[4].push(ours);
            if let Some(theirs) = theirs {
                after_python[usize::from(python_first)].push(ms(ours));
                py_fork.push(theirs);
                ratios.push(ms(ours) / theirs);
            }
        }
        runs[5].push(timed(|| primes_pool(&two)));
        runs[6].push(timed(primes_sequential));
    }
    let [a, b, c1, c100, st, pp, ps] = runs.map(median);
    Figures {
        round_trip: us_per(a, TRIPS),
        bare: us_per(b, TRIPS),
        map_c1: us_per(c1, MAPPED),
        map_c100: us_per(c100, MAPPED * 10),
        startup: ms(st),
        primes_pool: ms(pp),
        primes_sequential: ms(ps),
        paired_startup: (!ratios.is_empty()).then(|| (quartiles(py_fork).1, quartiles(ratios))),
        startup_by_order: after_python.iter().all(|xs| !xs.is_empty()).then(|| after_python.map(|xs| quartiles(xs).1)),
    }
}

/// Runs the Python baseline and returns its JSON figures, if python3 is there.
fn python() -> Option<Value> {
    if std::env::var_os("FUTURETOP_BENCH_NO_PYTHON").is_some() {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_process_baseline.py");
    let out = Command::new("python3").arg(script).stderr(Stdio::inherit()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| !l.starts_with('{')) {
        println!("{line}");
    }
    text.lines().rev().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok())
}

fn report(f: &Figures) {
    println!("== futuretop ProcessPoolExecutor, median of {ROUNDS} interleaved rounds");
    println!("(a) round trip, submit + result, 1 worker   {:8.2} us/call", f.round_trip);
    println!("    bare re-exec-and-pipe worker (baseline)  {:8.2} us/call", f.bare);
    println!("    futuretop / bare                         {:8.2}x", f.round_trip / f.bare);
    println!("(b) map chunksize=1,   2 workers            {:8.2} us/call", f.map_c1);
    println!("    map chunksize=100, 2 workers            {:8.3} us/call", f.map_c100);
    println!("(c) start-up, builder to 2 workers answering {:7.2} ms", f.startup);
    if let Some((fork, (q1, m, q3))) = f.paired_startup {
        println!("    CPython fork start-up, taken between ours {fork:7.2} ms");
        println!("    ours / CPython's, paired (median)        {m:8.3}  (quartiles {q1:.3}-{q3:.3})");
    }
    if let Some([first, after]) = f.startup_by_order {
        println!("    ours when first in its pair / after Python's {first:5.2} / {after:5.2} ms");
    }
    println!("(d) is_prime batch, 2 workers               {:8.1} ms", f.primes_pool);
    println!("    is_prime sequential, in process         {:8.1} ms", f.primes_sequential);
    println!("    speed-up over sequential                 {:8.2}x", f.primes_sequential / f.primes_pool);
    let Some(py) = python() else {
        println!("(python3 not run: no side-by-side figures)");
        return;
    };
    let p = |k: &str| py[k].as_f64().unwrap_or(f64::NAN);
    println!("== side by side with CPython {} (targets from issue 3)", py["python"].as_str().unwrap_or("?"));
    let rows = [
        ("per-task round trip vs Python (<= 1/10)", f.round_trip / p("round_trip_us"), 0.1),
        ("per-task round trip vs bare pool (<= 3x)", f.round_trip / f.bare, 3.0),
        ("map chunksize=1 vs Python's", f.map_c1 / p("map_c1_us"), f64::INFINITY),
        ("map chunksize=100 vs Python's chunksize=100 (<= 1/3)", f.map_c100 / p("map_c100_us"), 1.0 / 3.0),
        (
            "start-up vs Python fork, paired (<= 1/4)",
            f.paired_startup.map_or(f.startup / p("startup_fork_ms"), |(_, (_, m, _))| m),
            0.25,
        ),
        ("is_prime batch vs sequential (time, <= 1/1.5)", f.primes_pool / f.primes_sequential, 1.0 / 1.5),
        ("is_prime batch vs Python's example (time, <= 1/5)", f.primes_pool / p("primes_pool_ms"), 0.2),
    ];
    for (what, ratio, target) in rows {
        let verdict = if target.is_infinite() {
            ""
        } else if ratio <= target {
            "met"
        } else {
            "NOT met"
        };
        println!("  {what:52} {ratio:8.3}  (1/{:.1})  {verdict}", 1.0 / ratio);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` / `--list` run criterion in its quick modes: skip the extras.
    let quick = args.iter().any(|a| a == "--test" || a == "--list" || a == "--profile-time");
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    if !quick {
        report(&interleaved());
    }
}
