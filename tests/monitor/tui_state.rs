//! The monitor's state and key map, without a terminal (DESIGN §6): the reducer over
//! run events and user actions, and what each key and mouse event means in each mode.
//!
//! Complements the unit tests in `src/tui/app.rs` (filters, sort, selection that follows
//! its task, refused cancel) with what crosses modules: keys through `input::map` into
//! `App::apply`, mouse clicks against the layout the renderer recorded, the quit
//! question surviving clock ticks, Ctrl-C in every mode, a replay being read-only, the
//! live clock, and drawing at any terminal size without a panic.

use futuretop::control::Control;
use futuretop::events::ErrorInfo;
use futuretop::events::Event;
use futuretop::events::EventKind;
use futuretop::events::PoolInfo;
use futuretop::tui::app::{Action, App, Command, View};
use futuretop::tui::input::{map, Input, ReplayKey};
use futuretop::tui::ui::{draw, Theme};
use futuretop_engine::FutureId;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::Terminal;

/// A run with one pool of two workers: `a` runs, `b`, `c`, `d` wait for a worker.
fn events() -> Vec<Event> {
    let mut v = vec![EventKind::RunStarted {
        version: 1,
        run: "r".into(),
        file: "r.yaml".into(),
        pools: vec![PoolInfo { name: "io".into(), kind: futuretop::config::PoolKind::Thread, max_workers: 2 }],
        tasks: 4,
        maps: Vec::new(),
        waiting: vec![],
    }];
    for (id, name) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        v.push(EventKind::Pending { attempt: None, task: name.into(), id, pool: "io".into() });
    }
    v.push(EventKind::WorkerStarted { pool: "io".into(), worker: "io-1".into(), pid: None });
    v.push(EventKind::Running { task: "a".into(), id: 1, pool: "io".into(), worker: "io-1".into(), pid: None });
    v.into_iter().enumerate().map(|(i, kind)| Event { seq: i as u64 + 1, t: i as f64 * 0.1, kind }).collect()
}

fn running_app() -> App {
    let mut app = App::new();
    for e in events() {
        app.apply_event(&e);
    }
    app
}

fn key(code: KeyCode) -> TermEvent {
    TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> TermEvent {
    key(KeyCode::Char(c))
}

fn ctrl_c() -> TermEvent {
    TermEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
}

fn click(column: u16, row: u16) -> TermEvent {
    TermEvent::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    })
}

/// Sends a terminal event through the key map into the app, as the monitor's loop does.
fn press(app: &mut App, ev: &TermEvent) -> Option<Command> {
    match map(ev, app) {
        Some(Input::Action(a)) => app.apply(a),
        _ => None,
    }
}

/// Draws a frame as the monitor's loop does: the state prepared, drawn (read only), and
/// the frame's geometry handed back for the next keys.
fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    app.prepare();
    let mut geometry = app.view.geometry;
    terminal
        .draw(|f| {
            geometry = draw(f, app, Theme { color: false, ..Theme::default() });
        })
        .expect("a frame");
    app.set_geometry(geometry);
    let buf = terminal.backend().buffer();
    (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n").collect()
}

#[test]
fn the_quit_question_survives_clock_ticks() {
    let mut app = running_app();
    assert_eq!(press(&mut app, &ch('q')), None);
    assert!(app.view.confirm_quit, "q asks while tasks run");
    assert!(app.view.status.as_deref().unwrap_or("").contains("quit and stop them? [y/N]"));
    // The monitor ticks four times a second; the question must wait for the user.
    for _ in 0..8 {
        app.apply(Action::Tick);
    }
    assert!(app.view.confirm_quit, "a tick does not answer the question");
    assert_eq!(press(&mut app, &ch('y')), Some(Command::Control(Control::Interrupt)));
}

#[test]
fn n_keeps_running_and_q_q_stops() {
    let mut app = running_app();
    press(&mut app, &ch('q'));
    assert_eq!(press(&mut app, &ch('n')), None);
    assert!(!app.view.confirm_quit);
    assert_eq!(app.view.status.as_deref(), Some("quit cancelled"));
    press(&mut app, &ch('q'));
    assert_eq!(press(&mut app, &ch('q')), Some(Command::Control(Control::Interrupt)), "q twice means yes");
}

#[test]
fn ctrl_c_stops_the_run_in_every_mode() {
    let mut app = running_app();
    assert_eq!(press(&mut app, &ctrl_c()), Some(Command::Control(Control::Interrupt)), "main screen");

    let mut app = running_app();
    press(&mut app, &ch('q'));
    assert_eq!(press(&mut app, &ctrl_c()), Some(Command::Control(Control::Interrupt)), "at the quit question");

    let mut app = running_app();
    press(&mut app, &ch('/'));
    assert!(app.view.search.is_some());
    assert_eq!(press(&mut app, &ctrl_c()), Some(Command::Control(Control::Interrupt)), "while searching");
    assert!(app.view.search.is_none());

    let mut app = running_app();
    press(&mut app, &ch('?'));
    assert_eq!(press(&mut app, &ctrl_c()), Some(Command::Control(Control::Interrupt)), "over the help");
}

#[test]
fn search_takes_every_character_then_keys_act_again() {
    let mut app = running_app();
    press(&mut app, &ch('/'));
    // `q`, `c`, `x` are letters while typing, not quit, cancel, kill.
    for c in ['q', 'c', 'x'] {
        assert_eq!(map(&ch(c), &app), Some(Input::Action(Action::SearchChar(c))));
    }
    press(&mut app, &ch('c'));
    app.apply(Action::Tick);
    assert_eq!(app.view.search.as_deref(), Some("c"), "a tick does not end the search");
    assert_eq!(app.view.selected, Some(3), "the first match is selected");
    press(&mut app, &key(KeyCode::Enter));
    assert!(app.view.search.is_none());
    assert_eq!(press(&mut app, &ch('c')), Some(Command::Control(Control::Cancel(FutureId(3)))));
    press(&mut app, &key(KeyCode::Esc));
    assert!(app.view.query.is_empty(), "Esc clears the search filter");
    assert_eq!(app.visible().len(), 4);
}

#[test]
fn every_key_of_the_design_maps_to_its_action() {
    let app = running_app();
    let cases = [
        (ch('?'), Action::Help),
        (ch('j'), Action::Move(1)),
        (key(KeyCode::Down), Action::Move(1)),
        (ch('k'), Action::Move(-1)),
        (key(KeyCode::Up), Action::Move(-1)),
        (key(KeyCode::PageDown), Action::Page(1)),
        (key(KeyCode::PageUp), Action::Page(-1)),
        (ch('g'), Action::Top),
        (ch('G'), Action::Bottom),
        (key(KeyCode::Enter), Action::Open),
        (key(KeyCode::Esc), Action::Back),
        (ch('c'), Action::Cancel),
        (ch('x'), Action::Kill),
        (ch('C'), Action::CancelPool),
        (ch('b'), Action::Break),
        (ch('/'), Action::SearchStart),
        (ch('f'), Action::CycleFilter),
        (ch('s'), Action::CycleSort),
        (key(KeyCode::Tab), Action::SwitchPane),
        (ch('w'), Action::Graph),
        (ch('t'), Action::Timeline),
        (ch('q'), Action::Quit),
    ];
    for (ev, action) in cases {
        assert_eq!(map(&ev, &app), Some(Input::Action(action.clone())), "{ev:?}");
    }
    // Replay keys mean nothing in a live run; Space pauses the view there.
    for c in ['.', '+', '-'] {
        assert_eq!(map(&ch(c), &app), None);
    }
    assert_eq!(map(&ch(' '), &app), Some(Input::Action(Action::Pause)));
}

#[test]
fn a_replay_is_read_only_and_has_its_own_keys() {
    let mut app = running_app();
    app.read_only = true;
    for (c, k) in [(' ', ReplayKey::Pause), ('.', ReplayKey::Step), ('+', ReplayKey::Faster), ('-', ReplayKey::Slower)]
    {
        assert_eq!(map(&ch(c), &app), Some(Input::Replay(k)));
    }
    app.apply(Action::Bottom); // d, pending
    assert_eq!(press(&mut app, &ch('c')), None, "nothing is sent from a replay");
    assert_eq!(app.view.status.as_deref(), Some("a replay is read-only"));
    // The same answer on every row and for every acting key: not the live refusals.
    for row in [Action::Top, Action::Bottom] {
        app.apply(row);
        for k in ['c', 'x', 'C', 'b', 'r'] {
            app.view.status = None;
            assert_eq!(press(&mut app, &ch(k)), None, "{k}");
            assert_eq!(app.view.status.as_deref(), Some("a replay is read-only"), "{k}");
            assert!(app.view.confirm.is_none(), "{k}: no question either");
        }
    }
    // The header shows the pace the replay keys set.
    app.replay_key(ReplayKey::Faster);
    assert!(render(&mut app, 120, 30).contains("replay 2x"));
    app.replay_key(ReplayKey::Pause);
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("replay paused"), "{screen}");
    assert!(screen.contains("␣ pause  . step  , back"), "the footer lists the replay keys:\n{screen}");
    assert!(!screen.contains("x kill"), "and not the live ones:\n{screen}");
    assert_eq!(press(&mut app, &ch('q')), Some(Command::Exit), "q leaves a replay at once");
}

#[test]
fn the_key_that_closes_the_help_does_nothing_else() {
    let mut app = running_app();
    app.apply(Action::Top); // a, running
    for k in ['x', 'C', 'c', 'b', 'q', 'j', '/', 'f'] {
        assert_eq!(press(&mut app, &ch('?')), None);
        assert!(app.view.help, "? opens the help");
        assert_eq!(press(&mut app, &ch(k)), None, "{k} only closes the help");
        assert!(!app.view.help);
        assert!(app.view.confirm.is_none() && !app.view.confirm_quit && app.view.search.is_none(), "{k}");
        assert_eq!(app.view.selected, Some(1), "{k}");
    }
    assert_eq!(app.view.filter, futuretop::tui::app::Filter::All);
}

#[test]
fn x_c_and_b_ask_first_and_the_question_holds_its_target_by_id() {
    let mut app = running_app();
    app.apply(Action::Top); // a, running on io-1
    assert_eq!(press(&mut app, &ch('x')), None);
    let prompt = app.view.confirm.as_ref().map(|q| q.prompt.clone()).unwrap_or_default();
    assert!(prompt.starts_with("kill 'a': running ") && prompt.ends_with(" on io-1? [y/N]"), "{prompt}");
    assert!(render(&mut app, 100, 24).contains("kill 'a': running"), "the question is on screen");
    // Anything but y does nothing.
    assert_eq!(press(&mut app, &ch('n')), None);
    assert!(app.view.confirm.is_none());
    assert_eq!(app.view.status.as_deref(), Some("nothing done"));
    // The target is held by id: the selection may move before y.
    press(&mut app, &ch('x'));
    app.apply_event(&Event {
        seq: 40,
        t: 1.0,
        kind: EventKind::Pending { attempt: None, task: "e".into(), id: 5, pool: "io".into() },
    });
    assert_eq!(press(&mut app, &ch('y')), Some(Command::Control(Control::Kill(FutureId(1)))));
    // A task that ended while the question was up is not acted on.
    press(&mut app, &ch('x'));
    app.apply_event(&Event {
        seq: 41,
        t: 1.1,
        kind: EventKind::Done { task: "a".into(), id: 1, pool: "io".into(), result: serde_json::Value::Null },
    });
    assert_eq!(press(&mut app, &ch('y')), None);
    assert_eq!(app.view.status.as_deref(), Some("'a' is no longer running: nothing done"));
    // With confirmation off (a preference), x acts at once.
    let mut app = running_app();
    app.skip_confirmation = true;
    app.apply(Action::Top);
    assert_eq!(press(&mut app, &ch('x')), Some(Command::Control(Control::Kill(FutureId(1)))));
}

#[test]
fn c_asks_only_for_a_task_with_dependents_and_c_pool_previews_them() {
    let yaml = "pools:\n  io: { kind: thread, max_workers: 1 }\ntasks:\n\
        \x20 - { name: a, pool: io, call: sleep, args: { secs: 9 } }\n\
        \x20 - { name: b, pool: io, call: sleep, args: { secs: 0 } }\n\
        \x20 - { name: c, pool: io, call: sleep, args: { secs: 0 } }\n\
        \x20 - { name: d, pool: io, call: sleep, args: { secs: 0 } }\n\
        \x20 - { name: after_b, pool: io, call: sleep, args: { secs: 0 }, depends_on: [b] }\n\
        \x20 - { name: after_that, pool: io, call: sleep, args: { secs: 0 }, depends_on: [after_b] }\n";
    let plan = futuretop::config::load_str_offline("r.yaml", "r", yaml).expect("a valid file");
    let mut app = running_app();
    app.plan = Some(std::sync::Arc::new(plan));
    app.apply(Action::Move(2)); // c: no dependents
    assert_eq!(press(&mut app, &ch('c')), Some(Command::Control(Control::Cancel(FutureId(3)))), "at once");
    app.apply(Action::Top);
    app.apply(Action::Move(1)); // b: two dependents, one through the other
    assert_eq!(press(&mut app, &ch('c')), None);
    assert_eq!(
        app.view.confirm.as_ref().map(|q| q.prompt.as_str()),
        Some("cancel 'b'? 2 dependents will be cancelled with it [y/N]")
    );
    assert_eq!(press(&mut app, &ch('y')), Some(Command::Control(Control::Cancel(FutureId(2)))));
    assert_eq!(press(&mut app, &ch('C')), None);
    assert_eq!(
        app.view.confirm.as_ref().map(|q| q.prompt.as_str()),
        Some(
            "cancel 3 pending tasks of pool 'io'; 2 dependents will be cancelled; 1 running task is not touched? [y/N]"
        )
    );
}

#[test]
fn details_and_the_workers_panel_stop_at_their_ends_and_g_g_jump() {
    let mut app = running_app();
    for i in 0..200 {
        app.apply_event(&Event {
            seq: 100 + i,
            t: 1.0,
            kind: EventKind::Output {
                task: "a".into(),
                stream: futuretop_engine::Stream::Stdout,
                line: format!("line {i}"),
                dropped: None,
            },
        });
    }
    app.apply(Action::Top);
    app.apply(Action::Open);
    let first = render(&mut app, 80, 24);
    press(&mut app, &ch('G'));
    let max = app.view.detail_scroll;
    assert!(max > 0 && max == app.view.geometry.detail_max, "{max}");
    let bottom = render(&mut app, 80, 24);
    assert!(bottom.contains("line 199"), "G shows the last line:\n{bottom}");
    press(&mut app, &key(KeyCode::Down));
    press(&mut app, &key(KeyCode::PageDown));
    assert_eq!(app.view.detail_scroll, max, "no scrolling past the end");
    assert_eq!(render(&mut app, 80, 24), bottom, "no empty box below the end");
    press(&mut app, &key(KeyCode::Home));
    assert_eq!(app.view.detail_scroll, 0);
    assert_eq!(render(&mut app, 80, 24), first);
    // The workers panel: 30 workers in a box of fewer lines.
    press(&mut app, &key(KeyCode::Esc));
    for w in 2..=30 {
        app.apply_event(&Event {
            seq: 400 + w,
            t: 1.0,
            kind: EventKind::WorkerStarted { pool: "io".into(), worker: format!("io-{w}").into(), pid: None },
        });
    }
    render(&mut app, 160, 30);
    press(&mut app, &key(KeyCode::Tab));
    press(&mut app, &ch('G'));
    let wmax = app.view.workers_scroll;
    assert!(wmax > 0 && wmax == app.view.geometry.workers_max, "{wmax}");
    let screen = render(&mut app, 160, 30);
    assert!(screen.contains("io-30"), "the last worker is on screen:\n{screen}");
    press(&mut app, &ch('j'));
    assert_eq!(app.view.workers_scroll, wmax);
    press(&mut app, &ch('g'));
    assert_eq!(app.view.workers_scroll, 0);
    assert_eq!(app.view.selected, Some(1), "the table's selection did not move");
}

#[test]
fn a_click_selects_the_row_under_it_and_nothing_else() {
    let mut app = running_app();
    let screen = render(&mut app, 160, 45);
    let row_of = |name: &str| {
        let y = screen.lines().position(|l| l.starts_with(&format!("│{name} "))).unwrap();
        u16::try_from(y).unwrap()
    };
    assert_eq!(app.view.selected, Some(1));
    press(&mut app, &click(5, row_of("c")));
    assert_eq!(app.view.selected, Some(3), "the click selected c");
    // The workers panel (right of the table), the header, the footer: no change.
    press(&mut app, &click(150, row_of("a")));
    press(&mut app, &click(5, 1));
    press(&mut app, &click(5, 44));
    assert_eq!(app.view.selected, Some(3));
    // Another view: clicks do not move a selection the user cannot see.
    press(&mut app, &ch('t'));
    press(&mut app, &click(5, row_of("a")));
    assert_eq!(app.view.selected, Some(3));
}

#[test]
fn the_wheel_scrolls_and_page_keys_use_the_drawn_page() {
    let mut app = App::new();
    let mut seq = 0;
    let mut push = |app: &mut App, kind| {
        seq += 1;
        app.apply_event(&Event { seq, t: 0.0, kind });
    };
    for id in 1..=100 {
        push(&mut app, EventKind::Pending { attempt: None, task: format!("t{id:03}").into(), id, pool: "io".into() });
    }
    render(&mut app, 80, 24);
    let page = app.view.geometry.page;
    assert!(page >= 8, "a usable page at 80x24: {page}");
    app.apply(Action::Top);
    press(&mut app, &key(KeyCode::PageDown));
    assert_eq!(app.view.selected, Some(1 + page as u64));
    let wheel = TermEvent::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    });
    press(&mut app, &wheel);
    assert_eq!(app.view.selected, Some(4 + page as u64));
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains(&format!("t{:03}", 4 + page)), "the selection stays on screen:\n{screen}");
}

#[test]
fn the_live_clock_moves_durations_and_stops_at_the_end() {
    let mut app = running_app();
    let before = app.model.now;
    app.advance_clock(5.0);
    assert!((app.model.now - 5.0).abs() < 1e-9);
    assert!(app.model.now > before);
    app.advance_clock(3.0);
    assert!((app.model.now - 5.0).abs() < 1e-9, "the clock never goes back");
    let a = app.row(1).unwrap();
    assert!((a.duration(app.model.now).unwrap() - 4.4).abs() < 1e-9, "a running task's time grows with the clock");
    app.apply_event(&Event {
        seq: 100,
        t: 6.0,
        kind: EventKind::RunFinished { counts: futuretop::events::Counts::default(), exit_code: 0 },
    });
    app.advance_clock(60.0);
    assert!((app.model.now - 6.0).abs() < 1e-9, "a finished run keeps its final time");
}

#[test]
fn kill_and_cancel_answer_with_what_happened() {
    let mut app = running_app();
    app.apply(Action::Top);
    assert_eq!(app.apply(Action::Kill), None, "x asks first");
    assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::Kill(FutureId(1)))));
    assert_eq!(app.view.status.as_deref(), Some("killing 'a'"));
    app.apply_event(&Event {
        seq: 50,
        t: 1.0,
        kind: EventKind::Exception {
            task: "a".into(),
            id: 1,
            pool: "io".into(),
            error: ErrorInfo { kind: futuretop_engine::ErrorKind::Killed, message: "killed by the user".into() },
        },
    });
    assert_eq!(app.apply(Action::Kill), None, "a failed task cannot be killed");
    assert!(app.view.status.as_deref().unwrap().contains("cannot kill 'a': it is failed"));
    assert_eq!(app.apply(Action::CancelPool), None, "C asks first");
    assert_eq!(
        app.view.confirm.as_ref().map(|q| q.prompt.as_str()),
        Some("cancel 3 pending tasks of pool 'io'? [y/N]")
    );
    assert_eq!(app.apply(Action::Confirm), Some(Command::Control(Control::CancelPool("io".into()))));
    assert_eq!(app.view.status.as_deref(), Some("cancelling the pending tasks of pool 'io'"));
    app.apply(Action::Open);
    assert_eq!(app.view.screen, View::Detail(1));
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("error: Killed: killed by the user"), "{screen}");
}

#[test]
fn every_screen_draws_at_any_size_without_a_panic() {
    let mut app = running_app();
    app.apply_event(&Event {
        seq: 60,
        t: 1.0,
        kind: EventKind::Deadlock {
            kind: futuretop::deadlock::DeadlockKind::Cycle,
            tasks: vec!["a".into(), "b".into()],
            pool: None,
            message: "a waits on b and b waits on a".repeat(8),
            ids: vec![1, 2],
            victim: Some("b".into()),
            victim_id: Some(2),
            expires_in: Some(3.0),
        },
    });
    for (w, h) in [(1, 1), (8, 3), (20, 6), (40, 10), (79, 23), (80, 24), (300, 100)] {
        for view in [View::Main, View::Detail(1), View::Detail(99), View::Graph, View::Timeline] {
            for help in [false, true] {
                app.view.screen = view;
                app.view.help = help;
                render(&mut app, w, h);
            }
        }
    }
}

#[test]
fn keys_never_act_on_a_task_the_filter_hides() {
    let mut app = running_app();
    app.apply(Action::Bottom);
    assert_eq!(app.view.selected, Some(4), "d, pending");
    // The failed filter shows nothing: there is nothing to cancel, open or kill.
    press(&mut app, &ch('f'));
    press(&mut app, &ch('f'));
    assert_eq!(app.visible().len(), 0);
    assert_eq!(press(&mut app, &ch('c')), None);
    assert_eq!(press(&mut app, &ch('x')), None);
    press(&mut app, &key(KeyCode::Enter));
    assert_eq!(app.view.screen, View::Main);
    // Back to every row (failed, done, cancelled, all), then a search that matches nothing.
    for _ in 0..3 {
        press(&mut app, &ch('f'));
    }
    assert_eq!(app.visible().len(), 4);
    assert_eq!(app.view.selected, Some(1), "the hidden d gave the selection up to the first row");
    app.apply(Action::Bottom);
    press(&mut app, &ch('/'));
    press(&mut app, &ch('b'));
    press(&mut app, &key(KeyCode::Backspace));
    press(&mut app, &ch('z'));
    assert_eq!(app.visible().len(), 0, "no task is named z");
    press(&mut app, &key(KeyCode::Enter));
    assert_eq!(press(&mut app, &ch('c')), None, "d is hidden by the search: not cancelled");
}

#[test]
fn a_run_stopped_by_on_deadlock_fail_says_so_on_its_final_screen() {
    let mut app = running_app();
    app.apply_event(&Event {
        seq: 60,
        t: 1.0,
        kind: EventKind::Deadlock {
            kind: futuretop::deadlock::DeadlockKind::Cycle,
            tasks: vec!["a".into(), "b".into()],
            pool: None,
            message: "'a' waits on 'b' and 'b' waits on 'a': none of them can ever finish.".into(),
            ids: vec![1, 2],
            victim: Some("b".into()),
            victim_id: Some(2),
            expires_in: None,
        },
    });
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("eta –"), "no ETA while the deadlock stands:\n{screen}");
    assert!(screen.contains("DEADLOCK (cycle): 'a' → 'b' — press [b] to break it"), "{screen}");
    app.apply_event(&Event {
        seq: 61,
        t: 1.1,
        kind: EventKind::RunFinished {
            counts: futuretop::events::Counts::default(),
            exit_code: futuretop::runner::EXIT_DEADLOCK,
        },
    });
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("stopped: deadlock 'a' → 'b' (--on-deadlock fail), exit 3"), "{screen}");
}

fn ctrl(c: char) -> TermEvent {
    TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, &ch(c));
    }
}

fn names(app: &App) -> Vec<String> {
    app.visible().iter().map(|&i| app.model.rows[i].name.to_string()).collect()
}

#[test]
fn slash_filters_with_fields_negation_and_and_and_ctrl_u_w_edit() {
    let mut app = running_app();
    // b fails, on another pool's worker name: states, pools and errors to filter on.
    app.apply_event(&Event {
        seq: 40,
        t: 1.0,
        kind: EventKind::Exception {
            task: "a".into(),
            id: 1,
            pool: "io".into(),
            error: ErrorInfo { kind: futuretop_engine::ErrorKind::TaskError, message: "disk full".into() },
        },
    });
    press(&mut app, &ch('/'));
    typed(&mut app, "state:pending");
    assert_eq!(names(&app), ["b", "c", "d"], "filtered as typed");
    typed(&mut app, " !name:c");
    assert_eq!(names(&app), ["b", "d"], "terms combine with AND; ! negates");
    press(&mut app, &ctrl('w'));
    assert_eq!(app.view.search.as_deref(), Some("state:pending "), "Ctrl-W deletes a word");
    press(&mut app, &ctrl('u'));
    assert_eq!(app.view.search.as_deref(), Some(""), "Ctrl-U clears");
    assert_eq!(names(&app).len(), 4);
    typed(&mut app, "error:DISK");
    assert_eq!(names(&app), ["a"], "error messages match, whatever the case");
    press(&mut app, &ctrl('u'));
    typed(&mut app, "full");
    assert_eq!(names(&app), ["a"], "a bare term looks at the error too");
    press(&mut app, &ctrl('u'));
    typed(&mut app, "pool:io state:failed");
    assert_eq!(names(&app), ["a"]);
    press(&mut app, &ctrl('u'));
    typed(&mut app, "zebra");
    assert!(names(&app).is_empty());
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("no task matches 'zebra'"), "{screen}");
    press(&mut app, &key(KeyCode::Esc));
    assert!(app.view.search.is_none() && app.view.query.is_empty(), "Esc clears");
    assert_eq!(names(&app).len(), 4);
}

#[test]
fn angle_brackets_choose_the_sort_column_and_i_inverts_it() {
    let mut app = running_app();
    assert_eq!(map(&ch('>'), &app), Some(Input::Action(Action::SortColumn(true))));
    assert_eq!(map(&ch('<'), &app), Some(Input::Action(Action::SortColumn(false))));
    assert_eq!(map(&ch('I'), &app), Some(Input::Action(Action::InvertSort)));
    press(&mut app, &ch('>'));
    assert_eq!(app.view.sort, futuretop::tui::app::Sort::Name);
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("sort name▼") && screen.contains("name▼ "), "the header marks the column:\n{screen}");
    press(&mut app, &ch('I'));
    assert_eq!(names(&app), ["d", "c", "b", "a"]);
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("sort name▲") && screen.contains("name▲ "), "and the direction:\n{screen}");
    press(&mut app, &ch('<'));
    press(&mut app, &ch('<'));
    assert_eq!(app.view.sort, futuretop::tui::app::Sort::Result, "< wraps round to the last column");
    press(&mut app, &ch('>'));
    assert_eq!(app.view.sort, futuretop::tui::app::Sort::Submitted);
    assert_eq!(names(&app), ["d", "c", "b", "a"], "still inverted");
    press(&mut app, &ch('I'));
    press(&mut app, &ch('s'));
    assert_eq!(app.view.sort, futuretop::tui::app::Sort::State, "s keeps cycling");
    assert_eq!(names(&app), ["a", "b", "c", "d"], "running first");
}

#[test]
fn a_click_on_a_column_head_sorts_by_it_and_again_inverts() {
    let mut app = running_app();
    let screen = render(&mut app, 160, 45);
    let (y, line) = screen.lines().enumerate().find(|(_, l)| l.starts_with("│name")).expect("the heads");
    let x = line.chars().position(|c| c == 'p').expect("the pool head");
    let (x, y) = (u16::try_from(x).unwrap(), u16::try_from(y).unwrap());
    press(&mut app, &click(x + 1, y));
    assert_eq!(app.view.sort, futuretop::tui::app::Sort::Pool);
    assert!(!app.view.sort_inverted);
    render(&mut app, 160, 45);
    press(&mut app, &click(x + 1, y));
    assert!(app.view.sort_inverted, "a second click inverts");
    assert_eq!(app.view.selected, Some(1), "the selection stays with its task");
}

#[test]
fn space_pauses_the_live_view_while_counts_stay_exact() {
    let mut app = running_app();
    let before = render(&mut app, 120, 30);
    assert_eq!(map(&ch(' '), &app), Some(Input::Action(Action::Pause)));
    press(&mut app, &ch(' '));
    assert!(app.view.frozen.is_some());
    // a finishes while the view is paused: the header counts it, the table still shows
    // it running, as it was.
    app.apply_event(&Event {
        seq: 40,
        t: 1.0,
        kind: EventKind::Done { task: "a".into(), id: 1, pool: "io".into(), result: serde_json::Value::Null },
    });
    let paused = render(&mut app, 120, 30);
    assert!(paused.contains("✔ done 1"), "the counts stay exact:\n{paused}");
    assert!(paused.contains("running · paused (Space resumes)"), "{paused}");
    let row = |s: &str, name: &str| s.lines().find(|l| l.starts_with(&format!("│{name} "))).map(str::to_owned);
    assert_eq!(row(&paused, "a"), row(&before, "a"), "the row stands still");
    // Keys move within the kept rows.
    press(&mut app, &ch('G'));
    assert_eq!(app.view.selected, Some(4));
    press(&mut app, &ch(' '));
    assert!(app.view.frozen.is_none());
    let resumed = render(&mut app, 120, 30);
    assert!(row(&resumed, "a").is_some_and(|r| r.contains("✔ done")), "{resumed}");
    assert_eq!(app.view.selected, Some(4), "the selection stays on its task");
    // In a replay, Space pauses the replay, not the view.
    app.read_only = true;
    assert_eq!(map(&ch(' '), &app), Some(Input::Replay(ReplayKey::Pause)));
}

#[test]
fn the_graph_and_the_timeline_scroll_and_stop_at_their_ends() {
    let mut app = running_app();
    for w in 2..=60u64 {
        app.apply_event(&Event {
            seq: 100 + w,
            t: 1.0,
            kind: EventKind::WorkerStarted { pool: "io".into(), worker: format!("io-{w}").into(), pid: None },
        });
    }
    press(&mut app, &ch('t'));
    render(&mut app, 120, 30);
    press(&mut app, &ch('G'));
    let max = app.view.detail_scroll;
    assert!(max > 0 && max == app.view.geometry.detail_max, "{max}");
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("io-60"), "the last worker:\n{screen}");
    press(&mut app, &ch('j'));
    assert_eq!(app.view.detail_scroll, max, "not past the end");
    press(&mut app, &key(KeyCode::Home));
    assert!(render(&mut app, 120, 30).contains("io-1 "), "back at the top");
    // The graph: 40 waits, more lines than the box.
    press(&mut app, &ch('t'));
    for k in 0..40u64 {
        app.apply_event(&Event {
            seq: 300 + k,
            t: 1.0,
            kind: EventKind::Wait {
                task: "a".into(),
                on: format!("w{k}").into(),
                id: 1,
                on_id: 1000 + k,
                timeout: None,
            },
        });
    }
    press(&mut app, &ch('w'));
    assert_eq!(app.view.detail_scroll, 0, "a view opens at its top");
    render(&mut app, 120, 30);
    press(&mut app, &ch('G'));
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("#1039"), "the last wait:\n{screen}");
    let max = app.view.detail_scroll;
    press(&mut app, &key(KeyCode::PageDown));
    assert_eq!(app.view.detail_scroll, max);
}

#[test]
fn p_shows_the_critical_path_and_details_show_a_tasks_slack() {
    let yaml = "pools:\n  io: { kind: thread, max_workers: 2 }\ntasks:\n\
        \x20 - { name: a, pool: io, call: sleep, args: { secs: 0 } }\n\
        \x20 - { name: b, pool: io, call: sleep, args: { secs: 0 }, depends_on: [a] }\n\
        \x20 - { name: c, pool: io, call: sleep, args: { secs: 0 } }\n\
        \x20 - { name: d, pool: io, call: sleep, args: { secs: 0 } }\n";
    let plan = futuretop::config::load_str_offline("r.yaml", "r", yaml).expect("a valid file");
    let mut app = running_app();
    app.plan = Some(std::sync::Arc::new(plan));
    let at = |seq, t, kind| Event { seq, t, kind };
    let running = |task: &str, id| EventKind::Running {
        task: task.into(),
        id,
        pool: "io".into(),
        worker: "io-1".into(),
        pid: None,
    };
    let done =
        |task: &str, id| EventKind::Done { task: task.into(), id, pool: "io".into(), result: serde_json::Value::Null };
    // a ran 0.6 .. 2.0 (1.4 s), then b 2.0 .. 5.0 (3 s); c 0.6 .. 1.1.
    app.apply_event(&at(40, 2.0, done("a", 1)));
    app.apply_event(&at(41, 2.0, running("b", 2)));
    app.apply_event(&at(42, 0.6, running("c", 3)));
    app.apply_event(&at(43, 1.1, done("c", 3)));
    app.apply_event(&at(44, 5.0, done("b", 2)));
    assert_eq!(map(&ch('p'), &app), Some(Input::Action(Action::Critical)));
    press(&mut app, &ch('p'));
    let screen = render(&mut app, 120, 30);
    assert!(screen.contains("critical path: 'a' → 'b' — 4.4s of a 5.0s run"), "{screen}");
    assert!(screen.contains(" ● a ") && screen.contains(" ● b "), "{screen}");
    let c_line = screen.lines().find(|l| l.contains("   c ")).expect("c's line");
    assert!(c_line.contains("slack    3.9s"), "c could take 3.9 s more: {c_line}");
    press(&mut app, &ch('p'));
    app.apply(Action::Top);
    app.apply(Action::Move(2)); // c
    press(&mut app, &key(KeyCode::Enter));
    let detail = render(&mut app, 120, 30);
    assert!(detail.contains("critical path: not on it; slack 3.9s"), "{detail}");
}

#[test]
fn ctrl_w_after_a_wide_space_deletes_the_word_without_a_panic() {
    let mut app = running_app();
    press(&mut app, &ch('/'));
    typed(&mut app, "foo\u{a0}bar");
    press(&mut app, &ctrl('w'));
    assert_eq!(app.view.search.as_deref(), Some("foo\u{a0}"));
}

#[test]
fn a_key_in_a_paused_view_acts_on_the_row_highlighted() {
    let mut app = running_app();
    press(&mut app, &ch('/'));
    typed(&mut app, "state:pending");
    press(&mut app, &key(KeyCode::Enter));
    render(&mut app, 120, 30);
    press(&mut app, &ch(' '));
    assert_eq!(app.view.selected, Some(2), "b, the first pending row");
    // b starts running while the view is paused: it has left the filter.
    app.apply_event(&Event {
        seq: 40,
        t: 1.0,
        kind: EventKind::Running { task: "b".into(), id: 2, pool: "io".into(), worker: "io-2".into(), pid: None },
    });
    render(&mut app, 120, 30);
    assert_eq!(press(&mut app, &ch('c')), None, "b is running now: no cancel, and not of another row");
    assert_eq!(app.view.selected, Some(2));
    assert!(app.view.status.as_deref().unwrap_or("").contains("cannot cancel 'b'"), "{:?}", app.view.status);
}
