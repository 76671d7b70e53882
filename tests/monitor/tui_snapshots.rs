//! Render snapshots of the monitor through ratatui's `TestBackend` (DESIGN §6).
//!
//! Every screen is built from a fixed, hand-written list of run events (fixed `t`
//! values, fixed system figures: nothing from the clock or the machine), drawn at 80x24
//! and at 160x45 with colour off, and compared with the snapshot files in
//! `tests/snapshots/` (insta). The screens: the main screen, the details of a failed
//! task, the help overlay, the deadlock banner of a cycle whose wait has a timeout, the
//! wait-for graph and the timeline. Colour is checked separately, through the styles of
//! the buffer's cells: the banner is white on red, a failed row's state is red.
//!
//! To update the snapshots after an intended change:
//! `INSTA_UPDATE=always cargo test --test tui_snapshots`, then read the diff.

use std::collections::HashMap;

use futuretop::config::PoolKind;
use futuretop::events::Counts;
use futuretop::events::ErrorInfo;
use futuretop::events::Event;
use futuretop::events::EventKind;
use futuretop::events::PoolInfo;
use futuretop::tui::app::{Action, App, SysStats, View};
use futuretop::tui::input::Keymap;
use futuretop::tui::ui::{draw, help, Theme};
use futuretop_engine::ErrorKind;
use futuretop_engine::Stream;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use serde_json::json;

/// The sizes every screen is drawn at: the smallest the monitor draws on, a classic
/// terminal, a large one and a wide one.
const SIZES: [(u16, u16); 4] = [(40, 10), (80, 24), (160, 45), (250, 60)];
/// The sizes a screen's own checks read (the smallest shows only part of it).
const CHECKED: [(u16, u16); 3] = [(80, 24), (160, 45), (250, 60)];

/// Builds events with consecutive sequence numbers.
struct Log {
    events: Vec<Event>,
}

impl Log {
    fn new() -> Self {
        Self { events: Vec::new() }
    }

    fn at(&mut self, t: f64, kind: EventKind) -> &mut Self {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event { seq, t, kind });
        self
    }

    fn pending(&mut self, t: f64, id: u64, task: &str, pool: &str) -> &mut Self {
        self.at(t, EventKind::Pending { attempt: None, task: task.into(), id, pool: pool.into() })
    }

    fn running(&mut self, t: f64, id: u64, task: &str, pool: &str, worker: &str, pid: Option<u32>) -> &mut Self {
        self.at(t, EventKind::Running { task: task.into(), id, pool: pool.into(), worker: worker.into(), pid })
    }

    fn done(&mut self, t: f64, id: u64, task: &str, pool: &str, result: serde_json::Value) -> &mut Self {
        self.at(t, EventKind::Done { task: task.into(), id, pool: pool.into(), result })
    }

    fn failed(&mut self, t: f64, id: u64, task: &str, pool: &str, kind: ErrorKind, message: &str) -> &mut Self {
        let error = ErrorInfo { kind, message: message.into() };
        self.at(t, EventKind::Exception { task: task.into(), id, pool: pool.into(), error })
    }

    fn worker(&mut self, t: f64, pool: &str, worker: &str, pid: Option<u32>) -> &mut Self {
        self.at(t, EventKind::WorkerStarted { pool: pool.into(), worker: worker.into(), pid })
    }
}

fn started(log: &mut Log, run: &str, file: &str, pools: &[(&str, PoolKind, usize)], tasks: usize) {
    let pools =
        pools.iter().map(|&(name, kind, max_workers)| PoolInfo { name: name.into(), kind, max_workers }).collect();
    log.at(
        0.0,
        EventKind::RunStarted {
            version: 1,
            run: run.into(),
            file: file.into(),
            pools,
            tasks,
            maps: Vec::new(),
            waiting: vec![],
        },
    );
}

/// A nightly batch in full swing: done, failed, running, queued and cancelled tasks,
/// a thread pool and a process pool, command output.
fn batch_events() -> Vec<Event> {
    let mut log = Log::new();
    started(
        &mut log,
        "nightly-batch",
        "assets/batch.yaml",
        &[("io", PoolKind::Thread, 3), ("cpu", PoolKind::Process, 2)],
        10,
    );
    for (i, name) in ["download[0]", "download[1]", "download[2]"].iter().enumerate() {
        log.pending(0.01, i as u64 + 1, name, "io");
    }
    log.pending(0.01, 4, "checksum", "cpu")
        .pending(0.01, 5, "compress", "io")
        .pending(0.01, 6, "upload", "io")
        .pending(0.01, 7, "notify", "io")
        .pending(0.01, 8, "primes[0]", "cpu")
        .pending(0.01, 9, "primes[1]", "cpu")
        .pending(0.01, 10, "primes[2]", "cpu");
    log.worker(0.02, "io", "io-1", None)
        .running(0.02, 1, "download[0]", "io", "io-1", None)
        .worker(0.02, "io", "io-2", None)
        .running(0.02, 2, "download[1]", "io", "io-2", None)
        .worker(0.03, "io", "io-3", None)
        .running(0.03, 3, "download[2]", "io", "io-3", None)
        .worker(0.05, "cpu", "cpu-1", Some(4101))
        .running(0.05, 4, "checksum", "cpu", "cpu-1", Some(4101))
        .worker(0.05, "cpu", "cpu-2", Some(4102))
        .running(0.06, 8, "primes[0]", "cpu", "cpu-2", Some(4102))
        .done(0.8, 1, "download[0]", "io", json!(0.8))
        .running(0.8, 5, "compress", "io", "io-1", None)
        .done(1.2, 8, "primes[0]", "cpu", json!(true))
        .running(1.2, 9, "primes[1]", "cpu", "cpu-2", Some(4102))
        .failed(1.5, 4, "checksum", "cpu", ErrorKind::TaskError, "checksum mismatch in part 3 of 7")
        .running(1.5, 10, "primes[2]", "cpu", "cpu-1", Some(4101))
        .done(1.6, 2, "download[1]", "io", json!(1.6))
        .running(1.6, 6, "upload", "io", "io-2", None)
        .at(
            1.7,
            EventKind::Output {
                task: "compress".into(),
                stream: Stream::Stdout,
                line: "compressing".into(),
                dropped: None,
            },
        )
        .at(
            1.8,
            EventKind::Cancelled {
                task: "notify".into(),
                id: 7,
                pool: "io".into(),
                reason: Some(futuretop::events::CancelReason::parse("dependency checksum failed")),
            },
        )
        .done(2.1, 9, "primes[1]", "cpu", json!(false))
        .at(
            2.3,
            EventKind::Output {
                task: "compress".into(),
                stream: Stream::Stdout,
                line: "part 1 of 3".into(),
                dropped: None,
            },
        );
    log.events
}

/// The deadlock from the Python docs: `a` and `b` wait on each other; `b`'s wait has a
/// timeout of 8 s. A third task keeps the run going.
fn deadlock_events() -> Vec<Event> {
    let mut log = Log::new();
    started(
        &mut log,
        "deadlock-cycle",
        "assets/deadlock-cycle.yaml",
        &[("pair", PoolKind::Thread, 2), ("io", PoolKind::Thread, 1)],
        3,
    );
    log.pending(0.0, 1, "a", "pair")
        .pending(0.0, 2, "b", "pair")
        .pending(0.0, 3, "warmup", "io")
        .worker(0.01, "pair", "pair-1", None)
        .running(0.01, 1, "a", "pair", "pair-1", None)
        .at(0.02, EventKind::Wait { task: "a".into(), on: "b".into(), id: 1, on_id: 2, timeout: None })
        .worker(0.02, "pair", "pair-2", None)
        .running(0.02, 2, "b", "pair", "pair-2", None)
        .at(0.03, EventKind::Wait { task: "b".into(), on: "a".into(), id: 2, on_id: 1, timeout: Some(8.0) })
        .worker(0.03, "io", "io-1", None)
        .running(0.03, 3, "warmup", "io", "io-1", None)
        .at(
            0.05,
            EventKind::Deadlock {
                kind: futuretop::deadlock::DeadlockKind::Cycle,
                tasks: vec!["a".into(), "b".into()],
                pool: None,
                message: "'a' waits on 'b' and 'b' waits on 'a': none of them can ever finish. The wait of 'b' has \
                          a timeout: it will end this deadlock."
                    .into(),
                ids: vec![1, 2],
                victim: Some("b".into()),
                victim_id: Some(2),
                expires_in: Some(7.98),
            },
        )
        .done(1.0, 3, "warmup", "io", serde_json::Value::Null);
    log.events
}

/// Fixed system figures, as if from the sampler: no real machine numbers.
fn fixed_sys() -> SysStats {
    SysStats {
        cpu: 37.0,
        mem_used: 3 * 1024 * 1024 * 1024,
        mem_total: 16 * 1024 * 1024 * 1024,
        procs: HashMap::from([(4101, (99.0, 12 * 1024 * 1024)), (4102, (98.0, 11 * 1024 * 1024))]),
    }
}

/// An app fed with `events` (which bring the sparklines' and the rate's samples, one
/// each half second of their times) and fixed system figures.
fn app_from(events: &[Event]) -> App {
    let mut app = App::new();
    for e in events {
        app.apply_event(e);
    }
    app.model.apply_sys(fixed_sys());
    app
}

fn render(app: &mut App, (w, h): (u16, u16), color: bool) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    app.prepare();
    let mut geometry = app.view.geometry;
    terminal
        .draw(|f| {
            geometry = draw(f, app, Theme { color, ..Theme::default() });
        })
        .expect("a frame");
    app.set_geometry(geometry);
    terminal.backend().buffer().clone()
}

/// The buffer as text, one line per row, trailing blanks kept off.
fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Draws `app` at every size and checks each against its snapshot; under `NO_COLOR`
/// (colour off) not one cell is coloured, and the words are the same as in colour.
fn snapshot_both(name: &str, mut make: impl FnMut() -> App, check: impl Fn(&str)) {
    for size in SIZES {
        let mut app = make();
        let plain = render(&mut app, size, false);
        let screen = text(&plain);
        if CHECKED.contains(&size) {
            check(&screen);
        }
        let coloured = plain.content().iter().filter(|c| c.fg != Color::Reset || c.bg != Color::Reset).count();
        assert_eq!(coloured, 0, "{name} at {size:?}: {coloured} coloured cells under NO_COLOR");
        let mut app = make();
        assert_eq!(text(&render(&mut app, size, true)), screen, "{name} at {size:?}: colour changes the words");
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), screen);
    }
}

#[test]
fn main_screen() {
    snapshot_both(
        "main",
        || app_from(&batch_events()),
        |s| {
            assert!(s.contains("nightly-batch"), "header names the run:\n{s}");
            assert!(s.contains("✘ failed"), "a failed row:\n{s}");
            assert!(s.contains("⊘ cancelled"), "a cancelled row:\n{s}");
            assert!(s.contains("cpu 37%"), "fixed system figures:\n{s}");
            assert!(s.contains("workers"), "the workers panel:\n{s}");
            assert!(s.contains("q quit"), "the key line:\n{s}");
        },
    );
}

/// A task on its third attempt after two failures (one a timeout), while its retry
/// waits: the table says which attempt comes and when; details list every attempt.
#[test]
fn detail_of_a_retried_task() {
    let retried = || {
        let mut log = Log::new();
        started(&mut log, "flaky", "assets/flaky.yaml", &[("net", PoolKind::Thread, 2)], 1);
        log.worker(0.0, "net", "net-1", None)
            .pending(0.0, 1, "fetch", "net")
            .running(0.1, 1, "fetch", "net", "net-1", None);
        log.failed(0.6, 1, "fetch", "net", ErrorKind::CommandFailed, "`sh` exited with status 1");
        log.at(0.6, EventKind::Retry { task: "fetch".into(), id: 1, attempt: 1, attempts: 3, delay: 0.5 });
        log.at(1.1, EventKind::Pending { attempt: Some(2), task: "fetch".into(), id: 2, pool: "net".into() });
        log.running(1.1, 2, "fetch", "net", "net-1", None);
        log.failed(2.1, 2, "fetch", "net", ErrorKind::TimeoutError, "ran past its timeout of 1 s and was stopped");
        log.at(2.1, EventKind::Retry { task: "fetch".into(), id: 2, attempt: 2, attempts: 3, delay: 4.0 });
        let mut app = app_from(&log.events);
        app.model.advance_clock(3.0);
        app
    };
    let app = retried();
    let row = app.model.row(2).expect("the task's row, by its last attempt's id");
    assert_eq!(app.model.result_or_why(row), "retry 3/3 in 3.1 s");
    snapshot_both(
        "detail_retried",
        || {
            let mut app = retried();
            app.apply(Action::Top);
            app.apply(Action::Open);
            app
        },
        |s| {
            assert!(s.contains("why: retry 3/3 in 3.1 s"), "the countdown:\n{s}");
            assert!(s.contains("attempts: 2 of 3 allowed"), "{s}");
            assert!(s.contains("1  #1  ended 0.6s  CommandFailed: `sh` exited with status 1"), "{s}");
            assert!(s.contains("2  #2  ended 2.1s  TimeoutError: ran past its timeout of 1 s"), "{s}");
        },
    );
}

#[test]
fn detail_of_a_failed_task() {
    snapshot_both(
        "detail_failed",
        || {
            let mut app = app_from(&batch_events());
            app.apply(Action::Top);
            for _ in 0..3 {
                app.apply(Action::Move(1));
            }
            assert_eq!(app.view.selected, Some(4), "checksum is the 4th row");
            app.apply(Action::Open);
            assert_eq!(app.view.screen, View::Detail(4));
            app
        },
        |s| {
            assert!(s.contains("error: TaskError: checksum mismatch in part 3 of 7"), "the error:\n{s}");
            assert!(s.contains("running on cpu-1"), "the task's timeline:\n{s}");
        },
    );
}

#[test]
fn help_overlay() {
    snapshot_both(
        "help",
        || {
            let mut app = app_from(&batch_events());
            app.apply(Action::Help);
            assert!(app.view.help);
            app
        },
        |s| {
            for (key, what) in help(&Keymap::default()) {
                assert!(s.contains(&format!("{key:<15} {what}")), "help lists {key} in full:\n{s}");
            }
        },
    );
}

#[test]
fn deadlock_banner() {
    snapshot_both(
        "deadlock",
        || app_from(&deadlock_events()),
        |s| {
            assert!(s.contains("DEADLOCK (cycle): 'a' → 'b'"), "the banner names the cycle, quoted:\n{s}");
            assert!(s.contains("— times out in 7.0s, or press [b] to break it"), "the countdown and the way out:\n{s}");
            assert_eq!(s.matches("times out in").count(), 1, "one countdown:\n{s}");
            assert!(s.contains("eta –"), "no ETA while the deadlock stands:\n{s}");
        },
    );
}

#[test]
fn wait_for_graph() {
    snapshot_both(
        "graph",
        || {
            let mut app = app_from(&deadlock_events());
            app.apply(Action::Graph);
            assert_eq!(app.view.screen, View::Graph);
            app
        },
        |s| {
            assert!(s.contains("a (pair) ──waits on──▶ b (blocked)   ← deadlock"), "edge a → b:\n{s}");
            assert!(s.contains("b (pair) ──waits on──▶ a (blocked)   ← deadlock"), "edge b → a:\n{s}");
        },
    );
}

#[test]
fn timeline_view() {
    snapshot_both(
        "timeline",
        || {
            let mut app = app_from(&batch_events());
            app.apply(Action::Timeline);
            assert_eq!(app.view.screen, View::Timeline);
            app
        },
        |s| {
            for w in ["io-1", "io-2", "io-3", "cpu-1", "cpu-2"] {
                assert!(s.contains(w), "a lane for {w}:\n{s}");
            }
            assert!(s.contains("2.3s"), "the time axis ends at the last event:\n{s}");
        },
    );
}

#[test]
fn a_question_before_a_kill() {
    snapshot_both(
        "confirm_kill",
        || {
            let mut app = app_from(&batch_events());
            app.apply(Action::Top);
            for _ in 0..3 {
                app.apply(Action::Move(1));
            }
            app.apply(Action::Move(1)); // compress, running on io-1
            assert_eq!(app.apply(Action::Kill), None);
            assert!(app.view.confirm.is_some());
            app
        },
        |s| assert!(s.contains("kill 'compress': running 1.5s on io-1? [y/N]"), "the question:\n{s}"),
    );
}

#[test]
fn details_with_output() {
    snapshot_both(
        "detail_output",
        || {
            let mut events = batch_events();
            let seq = events.len() as u64;
            for k in 0..60u64 {
                let stream = if k % 10 == 9 { Stream::Stderr } else { Stream::Stdout };
                let line = format!("compressed block {k} of 60");
                events.push(Event {
                    seq: seq + 1 + k,
                    t: 2.3,
                    kind: EventKind::Output { task: "compress".into(), stream, line, dropped: None },
                });
            }
            let mut app = app_from(&events);
            app.apply(Action::Top);
            for _ in 0..4 {
                app.apply(Action::Move(1));
            }
            app.apply(Action::Open);
            assert_eq!(app.view.screen, View::Detail(5));
            // Scrolled past the end: the view stops at the last line, at every size.
            app.view.detail_scroll = u16::MAX;
            app
        },
        |s| assert!(s.contains("│! compressed block 59 of 60 "), "the last line, from stderr, in the box:\n{s}"),
    );
}

#[test]
fn a_paused_replay() {
    snapshot_both(
        "replay_paused",
        || {
            let mut app = App::new();
            app.read_only = true;
            for e in batch_events() {
                app.apply_event(&e);
            }
            app.model.apply_sys(fixed_sys());
            app.replay_key(futuretop::tui::input::ReplayKey::Faster);
            app.replay_key(futuretop::tui::input::ReplayKey::Pause);
            app
        },
        |s| {
            assert!(s.contains("· replay paused"), "the header:\n{s}");
            assert!(s.contains("␣ pause  . step  , back"), "the replay keys:\n{s}");
        },
    );
}

#[test]
fn a_terminal_too_small() {
    for (w, h) in [(20, 5), (39, 9), (30, 3)] {
        let mut app = app_from(&deadlock_events());
        let screen = text(&render(&mut app, (w, h), false));
        assert!(screen.starts_with("DEADLOCK [b]: 'a' →"), "the deadlock first, at {w}x{h}:\n{screen}");
        assert!(screen.contains("terminal too small"), "{w}x{h}:\n{screen}");
        insta::assert_snapshot!(format!("too_small_{w}x{h}"), screen);
    }
    let mut app = app_from(&batch_events());
    let screen = text(&render(&mut app, (39, 10), false));
    assert!(screen.contains("terminal too small: 39×10, needs at\nleast 40×10"), "{screen}");
}

#[test]
fn the_final_screen_after_the_run() {
    snapshot_both(
        "finished",
        || {
            let mut events = deadlock_events();
            let seq = events.len() as u64;
            let more = [
                (
                    2.0,
                    EventKind::DeadlockResolved {
                        tasks: vec!["a".into(), "b".into()],
                        how: futuretop::deadlock::Resolution::Break,
                    },
                ),
                (
                    2.0,
                    EventKind::Exception {
                        task: "b".into(),
                        id: 2,
                        pool: "pair".into(),
                        error: ErrorInfo {
                            kind: futuretop_engine::ErrorKind::DeadlockError,
                            message: "deadlock broken".into(),
                        },
                    },
                ),
                (
                    2.0,
                    EventKind::Exception {
                        task: "a".into(),
                        id: 1,
                        pool: "pair".into(),
                        error: ErrorInfo {
                            kind: futuretop_engine::ErrorKind::DeadlockError,
                            message: "deadlock broken".into(),
                        },
                    },
                ),
                (
                    2.1,
                    EventKind::RunFinished {
                        counts: Counts { done: 1, exception: 2, cancelled: 0, unfinished: 0 },
                        exit_code: 1,
                    },
                ),
            ];
            for (i, (t, kind)) in more.into_iter().enumerate() {
                events.push(Event { seq: seq + 1 + i as u64, t, kind });
            }
            app_from(&events)
        },
        |s| {
            assert!(s.contains("finished, exit 1"), "the header says how the run ended:\n{s}");
            assert!(!s.contains("DEADLOCK"), "the banner is gone:\n{s}");
        },
    );
}

/// Finds the first cell whose row text contains `needle`, at the needle's first column.
fn find(buf: &Buffer, needle: &str) -> (u16, u16) {
    for y in 0..buf.area.height {
        let cells: Vec<&str> = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        let line: String = cells.concat();
        if let Some(byte) = line.find(needle) {
            // Column = number of cells whose symbols precede the match.
            let mut len = 0;
            for (x, c) in cells.iter().enumerate() {
                if len == byte {
                    return (u16::try_from(x).expect("a column"), y);
                }
                len += c.len();
            }
        }
    }
    panic!("{needle:?} is not on screen:\n{}", text(buf));
}

#[test]
fn colour_marks_the_banner_and_the_states() {
    let mut app = app_from(&deadlock_events());
    let buf = render(&mut app, (160, 45), true);
    let (x, y) = find(&buf, "DEADLOCK");
    assert_eq!(buf[(x, y)].bg, Color::Red, "the banner is red");
    assert_eq!(buf[(x, y)].fg, Color::White);
    // The whole banner row is red, not just its text.
    assert_eq!(buf[(buf.area.width - 1, y)].bg, Color::Red);

    let mut app = app_from(&batch_events());
    let buf = render(&mut app, (160, 45), true);
    let (x, y) = find(&buf, "✘ failed");
    assert_eq!(buf[(x, y)].fg, Color::Red, "a failed row's state is red");
    assert_eq!(buf[(x + 2, y)].fg, Color::Red, "the word too, not only the symbol");
    let (x, y) = find(&buf, "✔ done");
    assert_eq!(buf[(x, y)].fg, Color::Green, "a done row's state is green");
    let (x, y) = find(&buf, "⊘ cancelled");
    assert_eq!(buf[(x, y)].fg, Color::Yellow);

    // Without colour no cell has a colour: the words and symbols carry the states.
    let buf = render(&mut app, (160, 45), false);
    for cell in buf.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "NO_COLOR paints nothing");
    }
}
