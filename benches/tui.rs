//! The monitor with many futures: frame time at 100 vs 100,000 futures, and how fast
//! events are taken in (issue 6's targets: a frame with 100,000 futures costs at most
//! 1.5x a frame with 100; events are applied far faster than tasks can finish).

use std::time::{Duration, Instant};

use criterion::Criterion;
use futuretop::tui::app::{Action, App};
use futuretop::tui::ui::{draw, Theme};
use futuretop::{ErrorInfo, Event, EventKind, PoolInfo};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The events of a run of `n` futures on 4 workers, most of them finished.
fn events(n: u64) -> Vec<Event> {
    let mut v = vec![Event {
        seq: 1,
        t: 0.0,
        kind: EventKind::RunStarted {
            version: 1,
            run: "bench".into(),
            file: "bench.yaml".into(),
            pools: vec![PoolInfo { name: "io".into(), kind: "thread".into(), max_workers: 4 }],
            tasks: usize::try_from(n).unwrap_or(usize::MAX),
        },
    }];
    let mut seq = 1;
    let mut push = |t: f64, kind: EventKind| {
        seq += 1;
        v.push(Event { seq, t, kind });
    };
    for w in 1..=4 {
        push(0.0, EventKind::WorkerStarted { pool: "io".into(), worker: format!("io-{w}"), pid: None });
    }
    for id in 1..=n {
        let t = id as f64 * 1e-5;
        let task = format!("task[{id}]");
        push(t, EventKind::Pending { task: task.clone(), id, pool: "io".into() });
        if id + 100 < n {
            push(
                t,
                EventKind::Running {
                    task: task.clone(),
                    id,
                    pool: "io".into(),
                    worker: format!("io-{}", id % 4 + 1),
                    pid: None,
                },
            );
            if id % 50 == 0 {
                let error = ErrorInfo { kind: "TaskError".into(), message: "boom".into() };
                push(t, EventKind::Exception { task, id, pool: "io".into(), error });
            } else {
                push(t, EventKind::Done { task, id, pool: "io".into(), result: serde_json::json!(id) });
            }
        }
    }
    v
}

fn app_with(n: u64) -> App {
    let mut app = App::new();
    for e in &events(n) {
        app.apply_event(e);
    }
    app.apply(Action::Bottom);
    app
}

fn frame_time(app: &mut App, frames: u32) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(160, 45)).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for i in 0..frames {
        // Something changes between frames, as in a live run.
        app.apply(if i % 2 == 0 { Action::Move(-1) } else { Action::Move(1) });
        let _ = terminal.draw(|f| draw(f, app, Theme { color: true }));
    }
    start.elapsed() / frames
}

fn bench(c: &mut Criterion) {
    let mut small = app_with(100);
    let mut big = app_with(100_000);
    c.bench_function("frame, 100 futures", |b| b.iter(|| frame_time(&mut small, 1)));
    c.bench_function("frame, 100,000 futures", |b| b.iter(|| frame_time(&mut big, 1)));
    let evs = events(100_000);
    c.bench_function("apply 100,000 futures' events", |b| {
        b.iter(|| {
            let mut app = App::new();
            for e in &evs {
                app.apply_event(e);
            }
            app.rows.len()
        });
    });

    // The ratios, measured side by side here.
    let f_small = frame_time(&mut small, 200);
    let f_big = frame_time(&mut big, 200);
    let start = Instant::now();
    let mut app = App::new();
    for e in &evs {
        app.apply_event(e);
    }
    let per_event = start.elapsed().as_secs_f64() / evs.len() as f64;
    println!("frame, 100 futures:        {:>8.1} µs", f_small.as_secs_f64() * 1e6);
    println!("frame, 100,000 futures:    {:>8.1} µs", f_big.as_secs_f64() * 1e6);
    println!(
        "ratio frame(100,000) / frame(100) = {:.2}x (target <= 1.5x)",
        f_big.as_secs_f64() / f_small.as_secs_f64()
    );
    println!("events applied: {:.2} M/s ({:.0} ns each)", 1e-6 / per_event, per_event * 1e9);
}

/// A plan of `n` calls of `call` with `args` on a 4-thread pool.
fn plan(n: usize, call: &str, item: &str) -> futuretop::Plan {
    let items = vec![item; n].join(", ");
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 4 }}\ntasks:\n  - name: t\n    pool: io\n    call: {call}\n    map: {{ {items_key}: [{items}] }}\n",
        items_key = if call == "pow" { "base" } else { "secs" }
    );
    let yaml = if call == "pow" { yaml.replace("call: pow", "call: pow\n    args: { exp: 2 }") } else { yaml };
    futuretop::load_task_str("bench.yaml", "bench", &yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `plan` with one consumer of its events; returns the run's wall time.
fn run_with(plan: futuretop::Plan, monitor: bool) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let handle =
        futuretop::start_run(plan, &futuretop::RunOptions::default(), vec![tx]).unwrap_or_else(|e| panic!("{e}"));
    let consumer = std::thread::spawn(move || {
        if !monitor {
            // A null consumer: takes events and drops them.
            while rx.recv().is_ok() {}
            return;
        }
        // The monitor's loop: take in what is pending, draw at most every 33 ms.
        let mut app = App::new();
        let mut terminal = Terminal::new(TestBackend::new(160, 45)).unwrap_or_else(|e| panic!("{e}"));
        let mut last = Instant::now();
        while let Ok(e) = rx.recv() {
            app.apply_event(&e);
            for e in rx.try_iter().take(100_000) {
                app.apply_event(&e);
            }
            if last.elapsed() >= Duration::from_millis(33) {
                last = Instant::now();
                let _ = terminal.draw(|f| draw(f, &mut app, Theme { color: true }));
            }
        }
    });
    let _ = handle.join();
    let elapsed = start.elapsed();
    let _ = consumer.join();
    elapsed
}

/// Task slowdown with the monitor attached, against a null consumer (best of `rounds`).
fn slowdown(n: usize, call: &str, item: &str, rounds: usize) -> (Duration, Duration) {
    let mut null = Duration::MAX;
    let mut tui = Duration::MAX;
    for _ in 0..rounds {
        null = null.min(run_with(plan(n, call, item), false));
        tui = tui.min(run_with(plan(n, call, item), true));
    }
    (null, tui)
}

fn main() {
    let (null, tui) = slowdown(100_000, "pow", "3", 3);
    println!(
        "100,000 trivial tasks: null consumer {:.3} s, monitor attached {:.3} s: {:.2}x (target <= 1.25x)",
        null.as_secs_f64(),
        tui.as_secs_f64(),
        tui.as_secs_f64() / null.as_secs_f64()
    );
    let (null, tui) = slowdown(2_000, "sleep", "0.001", 3);
    println!(
        "2,000 1 ms tasks: null consumer {:.3} s, monitor attached {:.3} s: {:.2}x (target <= 1.05x)",
        null.as_secs_f64(),
        tui.as_secs_f64(),
        tui.as_secs_f64() / null.as_secs_f64()
    );
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
