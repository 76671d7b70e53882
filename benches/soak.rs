//! Soak benchmark (issue 8): a million short tasks through a thread pool and a hundred
//! thousand through a process pool, run as `futuretop run FILE --headless --events LOG`
//! runs them (the library's runner, the event log on), while this process samples its
//! own resident memory.
//!
//! For each run it prints: the peak RSS; the RSS once the plan is loaded and a tenth of
//! the tasks have finished, and at the end, and the difference per finished future
//! (what finished futures keep: zero when memory is flat); the throughput of each tenth
//! of the run (it must not decay); and whether every event is in the log (its line count
//! against the last `seq`, and against the events a counting subscriber saw).
//!
//! Run: `cargo bench --bench soak` (about 15 s; `SOAK_SCALE=0.1` for a tenth of it). Each
//! soak runs in a child process of its own (`--soak KIND N`), from a fresh heap.

#![allow(clippy::cast_precision_loss)] // figures for people: counts as floats

/// The allocator the program runs with (`src/main.rs`), so that what is measured here is
/// what `futuretop` does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futuretop::events::EventKind;
use futuretop::runner::RunOptions;

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn task_file(kind: &str, workers: usize, tasks: usize) -> String {
    let exps: Vec<String> = (0..tasks).map(|i| (i % 40).to_string()).collect();
    format!(
        "name: soak-{kind}\npools:\n  p: {{ kind: {kind}, max_workers: {workers} }}\ntasks:\n  - name: t\n    pool: p\n    call: pow\n    args: {{ base: 3 }}\n    map: {{ exp: [{}] }}\n",
        exps.join(", ")
    )
}

fn mb(b: u64) -> f64 {
    b as f64 / 1024.0 / 1024.0
}

fn soak(kind: &str, workers: usize, tasks: usize) {
    let yaml = task_file(kind, workers, tasks);
    let before_load = rss();
    let plan = futuretop::config::load_str("soak.yaml", "soak", &yaml).expect("the soak plan is valid");
    drop(yaml);
    let log = std::env::temp_dir().join(format!("futuretop-soak-{kind}-{}.jsonl", std::process::id()));
    let options = RunOptions {
        events: Some(log.clone()),
        // Process-pool workers are the futuretop binary (this bench cannot serve as one).
        worker_program: Some(env!("CARGO_BIN_EXE_futuretop").into()),
        ..RunOptions::default()
    };
    let finished = Arc::new(AtomicU64::new(0));
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let handle = futuretop::runner::start(plan, &options, vec![tx]).expect("the run starts");
    // A counting subscriber, as the headless reporter would be.
    let counter = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            let mut events = 0u64;
            let mut last_seq = 0u64;
            for e in rx {
                events += 1;
                last_seq = e.seq;
                if matches!(e.kind, EventKind::Done { .. } | EventKind::Exception { .. } | EventKind::Cancelled { .. })
                {
                    finished.fetch_add(1, Ordering::Relaxed);
                }
            }
            (events, last_seq)
        })
    };
    // Samples: (seconds, finished, rss).
    let mut samples: Vec<(f64, u64, u64)> = Vec::new();
    let total = tasks as u64;
    while finished.load(Ordering::Relaxed) < total && start.elapsed() < Duration::from_mins(10) {
        samples.push((start.elapsed().as_secs_f64(), finished.load(Ordering::Relaxed), rss()));
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = handle.join();
    let (events, last_seq) = counter.join().expect("the counter ends");
    samples.push((start.elapsed().as_secs_f64(), finished.load(Ordering::Relaxed), rss()));
    let wall = start.elapsed().as_secs_f64();
    let lines = std::io::BufReader::new(std::fs::File::open(&log).expect("the log")).lines().count() as u64;
    let _ = std::fs::remove_file(&log);

    let peak = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let at = |frac: f64| samples.iter().find(|s| s.1 as f64 >= frac * total as f64).copied();
    println!("== soak: {tasks} pow tasks, {kind} pool of {workers}, event log on");
    println!(
        "   exit code {}, {} done, wall {wall:.2} s ({:.0} tasks/s)",
        report.exit_code,
        report.counts.done,
        total as f64 / wall
    );
    println!("   RSS before loading {:.1} MB, peak {:.1} MB", mb(before_load), mb(peak));
    if let (Some(a), Some(b)) = (at(0.1), samples.last().copied()) {
        let grown = b.2 as f64 - a.2 as f64;
        println!(
            "   RSS at 10% done {:.1} MB, at the end {:.1} MB: {:+.1} MB over {} finished futures = {:+.0} B per finished future",
            mb(a.2),
            mb(b.2),
            grown / 1024.0 / 1024.0,
            b.1 - a.1,
            grown / (b.1 - a.1).max(1) as f64
        );
    }
    // Throughput per tenth of the tasks.
    let mut rates = Vec::new();
    let mut prev = (0.0, 0u64);
    for k in 1..=10 {
        if let Some(s) = at(f64::from(k) / 10.0) {
            let dt = s.0 - prev.0;
            if dt > 0.0 {
                rates.push((s.1 - prev.1) as f64 / dt);
            }
            prev = (s.0, s.1);
        }
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{:.0}k", r / 1000.0)).collect();
    println!("   tasks/s per tenth of the run: {}", shown.join(" "));
    if rates.len() >= 4 {
        let first = f64::midpoint(rates[1], rates[2]);
        let last = f64::midpoint(rates[rates.len() - 2], rates[rates.len() - 1]);
        println!("   last two tenths / second and third: {:.2}x (1.00 = no decay)", last / first);
    }
    println!(
        "   events: {events} seen by a subscriber, last seq {last_seq}, {lines} lines in the log: {}",
        if events == last_seq && lines == last_seq { "all there" } else { "MISSING EVENTS" }
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    // One soak per process, so that each starts from a fresh heap: `--soak KIND N`.
    if let Some(i) = args.iter().position(|a| a == "--soak") {
        let kind = args.get(i + 1).map_or("thread", String::as_str);
        let n = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(1000);
        soak(kind, cpus, n);
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let scale: f64 = std::env::var("SOAK_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a positive count of tasks
    let n = |x: f64| ((x * scale).max(0.0) as usize).max(1000);
    let me = std::env::current_exe().expect("the bench's own path");
    for (kind, tasks) in [("thread", n(1_000_000.0)), ("process", n(100_000.0))] {
        let status = std::process::Command::new(&me)
            .args(["--soak", kind, &tasks.to_string()])
            .status()
            .expect("the soak run starts");
        assert!(status.success(), "the {kind} soak failed: {status}");
    }
}
