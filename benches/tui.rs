//! The monitor with many futures: frame time at 100 vs 100,000 futures, and how fast
//! events are taken in (issue 6's targets: a frame with 100,000 futures costs at most
//! 1.5x a frame with 100; events are applied far faster than tasks can finish).

/// The allocator the program runs with (`src/main.rs`), so that what is measured here is
/// what `futuretop` does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::Criterion;
use futuretop::events::ErrorInfo;
use futuretop::events::Event;
use futuretop::events::EventKind;
use futuretop::events::PoolInfo;
use futuretop::tui::app::{Action, App};
use futuretop::tui::ui::{draw, Theme};
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
            pools: vec![PoolInfo { name: "io".into(), kind: futuretop::config::PoolKind::Thread, max_workers: 4 }],
            tasks: usize::try_from(n).unwrap_or(usize::MAX),
            maps: Vec::new(),
            waiting: vec![],
        },
    }];
    let mut seq = 1;
    let mut push = |t: f64, kind: EventKind| {
        seq += 1;
        v.push(Event { seq, t, kind });
    };
    for w in 1..=4 {
        push(0.0, EventKind::WorkerStarted { pool: "io".into(), worker: format!("io-{w}").into(), pid: None });
    }
    for id in 1..=n {
        let t = id as f64 * 1e-5;
        let task = format!("task[{id}]");
        push(t, EventKind::Pending { attempt: None, task: task.clone().into(), id, pool: "io".into() });
        if id + 100 < n {
            push(
                t,
                EventKind::Running {
                    task: task.clone().into(),
                    id,
                    pool: "io".into(),
                    worker: format!("io-{}", id % 4 + 1).into(),
                    pid: None,
                },
            );
            if id % 50 == 0 {
                let error = ErrorInfo { kind: futuretop_engine::ErrorKind::TaskError, message: "boom".into() };
                push(t, EventKind::Exception { task: task.into(), id, pool: "io".into(), error });
            } else {
                push(t, EventKind::Done { task: task.into(), id, pool: "io".into(), result: serde_json::json!(id) });
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
        app.prepare();
        let _ = terminal.draw(|f| {
            draw(f, app, Theme { color: true, ..Theme::default() });
        });
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
            app.model.rows.len()
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
fn plan(n: usize, call: &str, item: &str) -> futuretop::config::Plan {
    let items = vec![item; n].join(", ");
    let yaml = format!(
        "pools:\n  io: {{ kind: thread, max_workers: 4 }}\ntasks:\n  - name: t\n    pool: io\n    call: {call}\n    map: {{ {items_key}: [{items}] }}\n",
        items_key = if call == "pow" { "base" } else { "secs" }
    );
    let yaml = if call == "pow" { yaml.replace("call: pow", "call: pow\n    args: { exp: 2 }") } else { yaml };
    futuretop::config::load_str("bench.yaml", "bench", &yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `plan` with one consumer of its events; returns the run's wall time.
fn run_with(plan: futuretop::config::Plan, monitor: bool) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now();
    let handle = futuretop::runner::start(plan, &futuretop::runner::RunOptions::default(), vec![tx])
        .unwrap_or_else(|e| panic!("{e}"));
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
            app.drain(&rx, Duration::from_millis(16));
            if last.elapsed() >= Duration::from_millis(33) {
                last = Instant::now();
                app.prepare();
                let _ = terminal.draw(|f| {
                    draw(f, &app, Theme { color: true, ..Theme::default() });
                });
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

/// The monitor's loop under a flood: events arrive at `per_sec` for `secs` seconds (3 per
/// future: pending, running, done) while a key is pressed every 100 ms. Returns frames per
/// second and the worst key-to-frame latency.
fn flood(per_sec: u64, secs: u64) -> (f64, Duration) {
    let evs = events(per_sec * secs / 3);
    let (tx, rx) = crossbeam_channel::unbounded();
    let producer = std::thread::spawn(move || {
        let start = Instant::now();
        for (i, e) in evs.into_iter().enumerate() {
            // Keep to the rate, in batches of 1,000.
            if i % 1000 == 0 {
                let due = Duration::from_secs_f64(i as f64 / per_sec as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if tx.send(std::sync::Arc::new(e)).is_err() {
                return;
            }
        }
    });
    let mut app = App::new();
    let mut terminal = Terminal::new(TestBackend::new(160, 45)).unwrap_or_else(|e| panic!("{e}"));
    let frame = Duration::from_millis(33);
    let start = Instant::now();
    let mut last_draw = start;
    let mut last_key = start;
    let mut key_pending: Option<Instant> = None;
    let (mut frames, mut worst) = (0u32, Duration::ZERO);
    let (mut t_apply, mut t_draw, mut n_ev) = (Duration::ZERO, Duration::ZERO, 0usize);
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(e) => {
                let t0 = Instant::now();
                app.apply_event(&e);
                n_ev += 1;
                let before = app.model.rows.len();
                app.drain(&rx, frame.saturating_sub(last_draw.elapsed()));
                n_ev += app.model.rows.len() - before;
                t_apply += t0.elapsed();
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_key.elapsed() >= Duration::from_millis(100) {
            last_key = Instant::now();
            app.apply(Action::Move(1));
            key_pending = Some(last_key);
        }
        // As the monitor does: a key draws at once, otherwise at most every 33 ms.
        if key_pending.is_some() || last_draw.elapsed() >= frame {
            let t0 = Instant::now();
            app.prepare();
            let _ = terminal.draw(|f| {
                draw(f, &app, Theme { color: true, ..Theme::default() });
            });
            t_draw += t0.elapsed();
            last_draw = t0;
            frames += 1;
            if let Some(k) = key_pending.take() {
                worst = worst.max(k.elapsed());
            }
        }
    }
    let _ = producer.join();
    println!(
        "  under the flood: {n_ev} futures taken in ({:.0} ns an event), {frames} frames ({:.1} ms each) in {:.2} s",
        t_apply.as_secs_f64() * 1e9 / (n_ev * 3).max(1) as f64,
        t_draw.as_secs_f64() * 1e3 / f64::from(frames.max(1)),
        start.elapsed().as_secs_f64()
    );
    (f64::from(frames) / start.elapsed().as_secs_f64(), worst)
}

fn main() {
    let (fps, worst_key) = flood(900_000, 3);
    println!(
        "300,000 tasks/s (900,000 events/s) for 3 s: {fps:.0} frames/s (target >= 30), worst key-to-frame {:.1} ms (target <= 50)",
        worst_key.as_secs_f64() * 1e3
    );
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
