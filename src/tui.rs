//! The terminal monitor: the terminal guard and the one loop that merges run events, keys and clock ticks.
//!
//! System figures arrive as `system` events, like everything else the screen shows, so
//! that a replay of the log draws what the live run drew. The loop `select`s over three
//! sources; after each wake-up it drains pending run events
//! into the state (coalescing them, until the next frame is due, so that a flood of
//! events never starves the screen) and redraws at most 30 times a second. The
//! engine never waits on it: events arrive on an unbounded channel. The terminal is
//! restored by a guard on every path out, by a panic hook before a panic message is
//! printed, and Ctrl-C (a key in raw mode) and SIGTERM stop the run cleanly.

pub mod app;
pub mod input;
pub mod ui;

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver, Sender};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;

use crate::control::Control;
use crate::events::{Event, EventKind};
use app::{Action, App, Command};
use input::{Input, ReplayKey};
use ui::Theme;

/// Set to `render-panic` to make the monitor panic while it draws its first frame: a
/// fault injected on purpose, for the test that a panic in the render path restores the
/// terminal, prints its message once and still completes the event log
/// (docs/reliability.md).
pub const FAULT_ENV: &str = "FUTURETOP_FAULT";

/// Frames at most this often.
const FRAME: Duration = Duration::from_millis(33);
/// What an attached monitor spends of a frame taking in the log of a live run that is
/// writing it (a seventh of a CPU at most; the rest of the frame is the run's).
const CATCH_UP: Duration = Duration::from_millis(5);
/// Frames at most this often while an attached monitor yields to a run that floods its
/// log ([`FLOOD_BYTES`]): it takes in none of the log meanwhile, and its reader reads
/// none (a millisecond each half second fell further behind all the same), and its
/// header shows the run's own count, from its status file, beside its own; it catches up
/// when the flood ebbs. A frame or two at a seventh of a CPU, ten monitors over, had
/// doubled the time of a run that keeps both CPUs busy.
const FLOOD_FRAME: Duration = Duration::from_millis(500);
/// A run whose log grows by this many bytes a second (about 40,000 events, 13,000 futures)
/// floods it: a monitor would spend a twentieth of a CPU keeping up. Below it, a monitor
/// follows the run live within its share of each frame ([`CATCH_UP`]).
const FLOOD_BYTES: u64 = 4 << 20;
/// How often at most an attached monitor looks at the size of the run's log (a `stat`,
/// at each wake-up of its loop, and as it takes events in), so that it yields to a flood
/// before it has taken a frame's share of it.
const FLOOD_LOOK: Duration = Duration::from_millis(10);
/// The span over which the pace of the run's log is measured: the run writes its log in
/// blocks, at least every [`FLUSH_AFTER`](crate::events::FLUSH_AFTER) while it has events,
/// so a shorter span could fall between two blocks (a run that writes would look quiet)
/// or hold a single one (a slow run would look like a flood).
const PACE_SPAN: Duration = crate::events::FLUSH_AFTER.saturating_mul(2);
/// How often at most the pace is looked at while a monitor catches up behind a quiet run.
const FRESH_LOOK: Duration = Duration::from_millis(1);
/// How long a flood is taken to last after the log was last seen growing that fast.
const FLOOD_HOLD: Duration = Duration::from_millis(100);

/// How fast the run an attached monitor follows writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// It wrote nothing for [`PACE_SPAN`] or more: the monitor catches up at full speed.
    Quiet,
    /// It writes, slower than a flood, or its pace is not known yet: the monitor takes
    /// [`CATCH_UP`] of each frame.
    Writing,
    /// Its log grew by [`FLOOD_BYTES`] a second or more, over [`PACE_SPAN`] at least,
    /// within the last [`FLOOD_HOLD`]: the monitor yields ([`FLOOD_FRAME`]).
    Flooding,
}

/// The pace of the run's log: its size, looked at every [`FLOOD_LOOK`] at most.
struct LogPace {
    written: Box<dyn Fn() -> Option<u64> + Send>,
    /// The sizes looked at, and when, oldest first: the newest one at least
    /// [`PACE_SPAN`] old, and every one since (a hundred at most: looks are
    /// [`FRESH_LOOK`] apart at least).
    seen: std::collections::VecDeque<(u64, Instant)>,
    /// When the size was last looked at, known or not.
    looked: Option<Instant>,
    /// When the log was last seen growing as fast as a flood.
    flooded: Option<Instant>,
}

impl LogPace {
    fn new(written: Box<dyn Fn() -> Option<u64> + Send>) -> Self {
        Self { written, seen: std::collections::VecDeque::new(), looked: None, flooded: None }
    }

    /// The run's pace at `now`, looking again if it is time.
    fn look(&mut self, now: Instant) -> Pace {
        self.look_within(now, FLOOD_LOOK)
    }

    /// The run's pace at `now`, looking again if the last look is `within` old or more.
    fn look_within(&mut self, now: Instant, within: Duration) -> Pace {
        if self.looked.is_none_or(|at| now.saturating_duration_since(at) >= within) {
            self.looked = Some(now);
            match (self.written)() {
                Some(size) => {
                    while self.seen.get(1).is_some_and(|&(_, at)| now.saturating_duration_since(at) >= PACE_SPAN) {
                        self.seen.pop_front();
                    }
                    if let Some(&(then_size, then)) = self.seen.front() {
                        // Over PACE_SPAN at least: a block alone is no flood.
                        let span = now.saturating_duration_since(then).max(PACE_SPAN);
                        if size.saturating_sub(then_size) as f64 / span.as_secs_f64() >= FLOOD_BYTES as f64 {
                            self.flooded = Some(now);
                        }
                    }
                    self.seen.push_back((size, now));
                }
                // The log cannot be looked at (the run removed it): nothing is known.
                None => self.seen.clear(),
            }
        }
        if self.flooded.is_some_and(|at| now.saturating_duration_since(at) < FLOOD_HOLD) {
            return Pace::Flooding;
        }
        match (self.seen.front(), self.seen.back()) {
            (Some(&(old, then)), Some(&(new, at))) if new == old && at.saturating_duration_since(then) >= PACE_SPAN => {
                Pace::Quiet
            }
            _ => Pace::Writing,
        }
    }
}

/// How long an attached monitor waits at most for its reader, within its share, before
/// it asks again whether to go on.
const TAKE_IN_WAIT: Duration = Duration::from_millis(2);

/// Takes in an attached monitor's events while `go_on()` says so (asked every 256 events,
/// and whenever the channel is empty): while its reader is still behind the log, waits
/// for it rather than leave the rest of the share unused (a channel emptied for a moment
/// would otherwise end a catch-up's frame).
fn take_in(
    app: &mut App,
    events: &Receiver<std::sync::Arc<Event>>,
    reader_at_end: &std::sync::atomic::AtomicBool,
    mut go_on: impl FnMut() -> bool,
) -> Taken {
    let mut taken = Taken { events: 0, ended: false };
    loop {
        let e = match events.try_recv() {
            Ok(e) => e,
            Err(crossbeam_channel::TryRecvError::Disconnected) => return Taken { ended: true, ..taken },
            Err(crossbeam_channel::TryRecvError::Empty) => {
                if reader_at_end.load(std::sync::atomic::Ordering::Relaxed) || !go_on() {
                    return taken;
                }
                match events.recv_timeout(TAKE_IN_WAIT) {
                    Ok(e) => e,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Taken { ended: true, ..taken },
                }
            }
        };
        app.apply_event(&e);
        taken.events = taken.events.wrapping_add(1);
        if taken.events.is_multiple_of(256) && !go_on() {
            return taken;
        }
    }
}

/// What [`take_in`] did.
struct Taken {
    /// How many events it took in (wrapping).
    events: u32,
    /// The reader has ended: everything it will send has been taken in.
    ended: bool,
}

/// How long the terminal's reader waits for a key before it looks whether to stop.
const KEYS_POLL: Duration = Duration::from_millis(50);
/// The exit code of an interrupted run.
const EXIT_INTERRUPTED: i32 = 130;

/// Whether the terminal is in monitor mode now: it is restored once, however many paths
/// ask (a second "leave the alternate screen" would move the cursor back over what the
/// panic message printed).
static IN_MONITOR_MODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn restore_terminal() {
    if !IN_MONITOR_MODE.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    if MOUSE_CAPTURED.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = execute!(io::stdout(), DisableMouseCapture);
    }
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// Whether the monitor took the mouse (not with `--no-mouse`).
static MOUSE_CAPTURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How the monitor draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Colours (false under `NO_COLOR` or `--color never`).
    pub color: bool,
    /// Take the mouse for clicks and the wheel (false with `--no-mouse` or the
    /// preferences' `mouse: false`: the terminal keeps it, to select text).
    pub mouse: bool,
    /// The preferences file's settings: keys, colours, confirmations, first sort and filter.
    pub prefs: crate::prefs::Prefs,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self { color: true, mouse: true, prefs: crate::prefs::Prefs::default() }
    }
}

/// Puts the terminal in raw, alternate-screen, mouse mode; restores it on drop and
/// before any panic message.
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Enters monitor mode; takes the mouse if `mouse`.
    pub fn enter(mouse: bool) -> io::Result<Self> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !futuretop_engine::in_task() {
                restore_terminal();
            }
            hook(info);
        }));
        IN_MONITOR_MODE.store(true, std::sync::atomic::Ordering::SeqCst);
        enable_raw_mode()?;
        let guard = Self { _private: () };
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        if mouse {
            MOUSE_CAPTURED.store(true, std::sync::atomic::Ordering::SeqCst);
            execute!(io::stdout(), EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        let _ = io::stdout().flush();
    }
}

/// The thread that reads the terminal's keys: told to stop when dropped, and waited for
/// (it looks at its flag every [`KEYS_POLL`]); not for long: on a terminal that has hung
/// up, crossterm's reader may never come back, and the process ends without it.
struct KeysReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Closed when the thread ends.
    ended: Receiver<()>,
}

impl Drop for KeysReader {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.ended.recv_timeout(KEYS_POLL * 4);
    }
}

/// The run's own count, `(done, total)`, as an attached monitor reads it from the run's
/// status file.
pub type RunCount = Box<dyn Fn() -> Option<(usize, usize)> + Send>;

/// Where the monitor's events come from.
pub enum Source {
    /// A live run: events, and the channel that steers it.
    Live {
        /// The run's events.
        events: Receiver<std::sync::Arc<Event>>,
        /// Its control channel.
        control: Sender<Control>,
        /// The plan being run (for the detail view's arguments).
        plan: Option<std::sync::Arc<crate::config::Plan>>,
        /// Whether `d` can send the run to the background ([`crate::keeper`]).
        detachable: app::Detachable,
    },
    /// A detached run, attached to (`futuretop attach`): its events, as its log gives
    /// them, and the channel to its control socket.
    Attached {
        /// The run's events.
        events: Receiver<std::sync::Arc<Event>>,
        /// What the monitor asks of the run.
        control: Sender<Control>,
        /// When the run started: the run's clock, not the monitor's.
        started: std::time::SystemTime,
        /// Whether the run's process is still there (looked at four times a second):
        /// while it is, the monitor catches up on its log at a measured pace.
        alive: Box<dyn Fn() -> bool + Send>,
        /// Set by the log's reader while it is at the end of what the run has written
        /// ([`crate::session::Follow::reporting`]): until then the header says the
        /// monitor is catching up, however few events wait in the channel.
        at_end: std::sync::Arc<std::sync::atomic::AtomicBool>,
        /// Set by the monitor while it yields to a run that floods its log: the log's
        /// reader reads nothing meanwhile ([`crate::session::Follow::holding`]).
        hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
        /// How many bytes the run's log holds now (looked at every [`FLOOD_LOOK`] at most): while it
        /// grows by [`FLOOD_BYTES`] a second or more, the monitor yields to the run
        /// ([`FLOOD_FRAME`]).
        written: Box<dyn Fn() -> Option<u64> + Send>,
        /// The run's own count, `(done, total)`, as its status file says (read once a
        /// second while the monitor catches up): the header shows it beside the monitor's.
        progress: RunCount,
    },
    /// A recorded log, replayed at its own pace (read as its events are needed; opened
    /// again from its start to step back).
    Replay(OpenLog),
}

/// What the monitor showed when it was left.
#[derive(Debug)]
pub struct Shown {
    /// The run's exit code, if it finished.
    pub finished: Option<i32>,
    /// Futures per state, and in all, as the header counted them (inner futures of a
    /// `submit` included).
    pub counts: crate::model::StateCounts,
    /// The run as the screen knew it: the exit summary is made from it
    /// ([`RunModel::summary`](crate::model::RunModel::summary)), the same as `--headless`.
    pub model: crate::model::RunModel,
    /// Left with `d`: the run goes on in the background.
    pub detached: bool,
}

/// Events still waiting after a frame's share, past which an attached monitor says it
/// is catching up (its reader's channel holds [`ATTACHED_AHEAD`]).
const CATCHING_UP: usize = 128;

/// How many events an attached monitor's reader decodes ahead of the screen: what it
/// decodes in vain while the monitor yields to a flood (a millisecond's work, where 4,096
/// were four), and enough to keep a catch-up on a run that has ended fed.
pub const ATTACHED_AHEAD: usize = 256;

/// Runs the monitor until the user quits (or the run is interrupted); returns what it
/// showed last: the run's exit code if it finished, and its futures' counts.
#[allow(clippy::too_many_lines)] // the loop reads best in one piece
pub fn run(source: Source, options: &MonitorOptions) -> io::Result<Shown> {
    let guard = TerminalGuard::enter(options.mouse)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let (keys_tx, keys_rx) = crossbeam_channel::unbounded();
    // The terminal is read only while the monitor is up: the reader looks at a stop flag
    // between short waits, and is joined before the monitor returns (after `d` nothing of
    // this process may read the terminal the shell reads again).
    let stop_keys = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&stop_keys);
    let (ended_tx, ended) = crossbeam_channel::bounded::<()>(0);
    let keys = KeysReader { stop: stop_keys, ended };
    std::thread::Builder::new().name("futuretop-keys".into()).spawn(move || {
        let _ended = ended_tx;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match ratatui::crossterm::event::poll(KEYS_POLL) {
                Ok(true) => {
                    let Ok(ev) = ratatui::crossterm::event::read() else { break };
                    if keys_tx.send(ev).is_err() {
                        break;
                    }
                }
                Ok(false) => {}
                Err(_) => break,
            }
        }
    })?;
    let mut app = App::with_prefs(&options.prefs);
    let mut run_started = None;
    let mut run_alive: Option<Box<dyn Fn() -> bool + Send>> = None;
    let mut reader_at_end: Option<std::sync::Arc<std::sync::atomic::AtomicBool>> = None;
    let mut reader_hold: Option<std::sync::Arc<std::sync::atomic::AtomicBool>> = None;
    let mut pace_of: Option<LogPace> = None;
    let mut run_progress: Option<RunCount> = None;
    let mut progress_read: Option<Instant> = None;
    // An attached monitor's run is live (it catches up at a measured pace, see CATCH_UP).
    let mut live = true;
    let (events, control, replay) = match source {
        Source::Live { events, control, plan, detachable } => {
            app.plan = plan;
            app.detachable = detachable;
            (events, Some(control), None)
        }
        Source::Attached { events, control, started, alive, at_end, hold, written, progress } => {
            app.attachment = app::Attachment::Following;
            run_started = Some(started);
            run_alive = Some(alive);
            reader_at_end = Some(at_end);
            reader_hold = Some(hold);
            pace_of = Some(LogPace::new(written));
            run_progress = Some(progress);
            (events, Some(control), None)
        }
        Source::Replay(log) => {
            app.read_only = true;
            app.detachable = app::Detachable::No("a replay".into());
            let (tx, rx) = crossbeam_channel::unbounded();
            let (rc_tx, rc_rx) = crossbeam_channel::unbounded();
            std::thread::Builder::new().name("futuretop-replay".into()).spawn(move || feed(&log, &tx, &rc_rx))?;
            (rx, None, Some(rc_tx))
        }
    };
    let ticks = tick(Duration::from_millis(250));
    let started = Instant::now();
    // crossterm drops every colour under NO_COLOR by itself: `--color always` overrides
    // it (the theme already chose the colours from `--color`).
    if options.color {
        ratatui::crossterm::style::force_color_output(true);
    }
    let theme = Theme { color: options.color, palette: options.prefs.palette };
    let mut dirty = true;
    let mut last_draw = Instant::now().checked_sub(FRAME).unwrap_or_else(Instant::now);
    let mut interrupted = false;
    let mut detached = false;
    // An attached monitor behind a run that writes nothing takes its next share at once.
    let mut catching_up_at_once = false;
    let mut events_open = true;
    let inject_panic = std::env::var_os(FAULT_ENV).is_some_and(|v| v == "render-panic");
    loop {
        let pace = if live { pace_of.as_mut().map(|p| p.look(Instant::now())) } else { None };
        // An attached monitor following a run that floods its log yields to it (whether
        // or not its reader, which runs only on idle CPU, has events waiting for it).
        let yielding = app.attached() && events_open && pace == Some(Pace::Flooding);
        if let Some(hold) = &reader_hold {
            hold.store(yielding, std::sync::atomic::Ordering::Relaxed);
        }
        let frame = if yielding { FLOOD_FRAME } else { FRAME };
        if dirty && last_draw.elapsed() >= frame {
            // Frames are paced from their start, so a slow frame does not stretch the period.
            last_draw = Instant::now();
            app.prepare();
            let mut geometry = app.view.geometry;
            terminal.draw(|f| {
                assert!(!inject_panic, "injected fault: a panic in the render path ({FAULT_ENV}=render-panic)");
                geometry = ui::draw(f, &app, theme);
            })?;
            // A new layout (a resize): the next frame scrolls the selection into it.
            dirty = geometry != app.view.geometry;
            app.set_geometry(geometry);
        }
        // An attached monitor takes its events a frame at a time, not as each comes: its
        // reader, which runs only on idle CPU, would otherwise wake it for each one, and
        // each wake-up would take a CPU from the run.
        let polled = app.attached() && events_open;
        let wait = if polled && catching_up_at_once && !yielding {
            Duration::ZERO
        } else if dirty {
            frame.saturating_sub(last_draw.elapsed())
        } else if polled {
            frame
        } else {
            Duration::from_secs(1)
        };
        let never = crossbeam_channel::never();
        let events_rx = if events_open && !polled { &events } else { &never };
        let mut command = None;
        select! {
            recv(events_rx) -> e => match e {
                Ok(e) => {
                    app.apply_event(&e);
                    // Take in events only until the next frame is due.
                    app.drain(&events, FRAME.saturating_sub(last_draw.elapsed()));
                    dirty = true;
                }
                Err(_) => events_open = false,
            },
            recv(keys_rx) -> k => {
                if let Ok(k) = k {
                    match input::map(&k, &app) {
                        Some(Input::Action(a)) => command = app.apply(a),
                        Some(Input::Replay(r)) => {
                            app.replay_key(r);
                            if let Some(tx) = &replay {
                                let _ = tx.send(r);
                            }
                        }
                        Some(Input::Redraw) => {
                            let _ = terminal.autoresize();
                        }
                        None => {}
                    }
                    dirty = true;
                    // Answer keys at once, whatever the frame budget says (a flood's too).
                    last_draw = Instant::now().checked_sub(FLOOD_FRAME).unwrap_or(last_draw);
                }
            },
            recv(ticks) -> _ => {
                if let Some(alive) = &run_alive {
                    live = alive();
                }
                if !app.read_only {
                    // An attached monitor's clock is the run's (it started before the monitor).
                    let now = run_started.map_or_else(
                        || started.elapsed(),
                        |s| std::time::SystemTime::now().duration_since(s).unwrap_or_default(),
                    );
                    app.advance_clock(now.as_secs_f64());
                }
                // Samples are taken from the clock only while no event is waiting (those
                // events come first: they bring the samples due before them).
                if events.is_empty() {
                    app.apply(Action::Tick);
                }
                // The run's own count, while the screen is behind it (its status file is
                // rewritten about once a second).
                if let Some(progress) = &run_progress {
                    let behind = app.attachment == app::Attachment::CatchingUp && live;
                    if !behind {
                        app.run_count = None;
                        progress_read = None;
                    } else if progress_read.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        progress_read = Some(Instant::now());
                        app.run_count = progress();
                    }
                }
                dirty = true;
            },
            default(wait) => {},
        }
        if yielding {
            // The run floods its log: the monitor takes in none of it until the flood
            // ebbs, and says it is behind.
            app.attachment = app::Attachment::CatchingUp;
        } else if let (true, Some(at_end)) = (polled, &reader_at_end) {
            // While the run writes its log, the monitor takes a small share of a frame,
            // whether or not it looks behind (a reader that keeps the channel topped up
            // would otherwise hold it a frame): the run comes first. A run that writes
            // nothing, or has ended, it catches up with at once, until the run writes
            // again (the pace is looked at as it goes: a flood may start meanwhile).
            // With nothing waiting, it returns at once if its reader is at the log's end.
            let began = Instant::now();
            let go_on = || {
                // Behind a quiet run, the pace is looked at afresh as the monitor goes (a
                // `stat` each 256 events, a millisecond apart at most): a flood that starts
                // meanwhile is yielded to within a few hundred events, not a frame's worth.
                let share = match pace_of.as_mut().filter(|_| live).map(|p| p.look_within(Instant::now(), FRESH_LOOK)) {
                    Some(Pace::Flooding) => Duration::ZERO,
                    Some(Pace::Writing) => CATCH_UP,
                    Some(Pace::Quiet) | None => FRAME,
                };
                began.elapsed() < share
            };
            let taken = take_in(&mut app, &events, at_end, go_on);
            if taken.ended {
                events_open = false;
            }
            let reader_behind = !at_end.load(std::sync::atomic::Ordering::Relaxed);
            let attachment = if events.len() >= CATCHING_UP || reader_behind {
                app::Attachment::CatchingUp
            } else {
                app::Attachment::Following
            };
            dirty |= taken.events > 0 || taken.ended || attachment != app.attachment;
            app.attachment = attachment;
            // Behind a run that writes nothing, or has ended: the next share at once
            // (after a frame, if one is due), not a frame later.
            catching_up_at_once = !events.is_empty() && !matches!(pace, Some(Pace::Writing));
        }
        match command {
            Some(Command::Exit) => break,
            Some(Command::Detach) => {
                detached = true;
                break;
            }
            Some(Command::Control(c)) => {
                if c == Control::Interrupt {
                    interrupted = true;
                }
                if let Some(tx) = &control {
                    let _ = tx.send(c);
                }
            }
            None => {}
        }
        // An interrupted run (exit 130) leaves the monitor once it has stopped: after
        // Ctrl-C or `y`, and after a SIGINT, SIGTERM or SIGHUP, which the program
        // forwards to the runner, not to the monitor.
        let stopped_by_signal = replay.is_none() && app.model.finished == Some(EXIT_INTERRUPTED);
        if (interrupted || stopped_by_signal) && (app.model.finished.is_some() || !events_open) {
            break;
        }
    }
    // The log's reader is not left held (it would sleep on for the rest of the process).
    if let Some(hold) = &reader_hold {
        hold.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    drop(keys);
    drop(terminal);
    drop(guard);
    Ok(Shown { finished: app.model.finished, counts: app.counts(), model: app.model, detached })
}

/// Opens a recorded log from its start (again for each step back).
pub type OpenLog = Box<dyn Fn() -> Box<dyn Iterator<Item = Event> + Send> + Send>;

/// Whether a replay's `n`/`N` stop at `e`: a deadlock, a failure or a kill.
fn is_mark(e: &Event) -> bool {
    matches!(e.kind, EventKind::Deadlock { .. } | EventKind::Exception { .. })
}

/// The replay feeder's place in the log: the events sent since the start, and which of
/// them were marks (`n`/`N`).
struct Feed<'a> {
    open: &'a OpenLog,
    out: &'a Sender<std::sync::Arc<Event>>,
    it: std::iter::Peekable<Box<dyn Iterator<Item = Event> + Send>>,
    /// Events sent since the start.
    sent: u64,
    /// The positions (`sent` just after) of the marks sent.
    marks: Vec<u64>,
    /// The replay clock: the last event's `t`, moved on by the pace.
    clock: f64,
}

impl Feed<'_> {
    /// Sends the next event; false at the log's end or when nobody listens.
    fn send_next(&mut self) -> bool {
        let Some(e) = self.it.next() else { return false };
        self.sent += 1;
        if is_mark(&e) {
            self.marks.push(self.sent);
        }
        self.clock = e.t;
        self.out.send(std::sync::Arc::new(e)).is_ok()
    }

    /// Back to the state after `target` events: the log again from its start (its first
    /// event, `seq` 1, tells the screen to start over), sent at once.
    fn rewind(&mut self, target: u64) {
        self.it = (self.open)().peekable();
        self.sent = 0;
        self.marks.clear();
        self.clock = 0.0;
        while self.sent < target.max(1) && self.send_next() {}
    }
}

/// Feeds a recorded log at the pace it was recorded (times `speed`), obeying replay keys:
/// Space pauses, `.` and `,` step one event forward and back, `n` and `N` jump to the
/// next and previous deadlock, failure or kill (and pause there).
fn feed(open: &OpenLog, out: &Sender<std::sync::Arc<Event>>, keys: &Receiver<ReplayKey>) {
    let mut pace = app::ReplayPace::default();
    let mut feed = Feed { open, out, it: open().peekable(), sent: 0, marks: Vec::new(), clock: 0.0 };
    let mut last = Instant::now();
    // A key that arrived while the feeder waited for the next event's time.
    let mut waited: Option<ReplayKey> = None;
    loop {
        for k in waited.take().into_iter().chain(keys.try_iter()) {
            pace.apply(k);
            match k {
                ReplayKey::Step => {
                    feed.send_next();
                }
                ReplayKey::StepBack => feed.rewind(feed.sent.saturating_sub(1)),
                ReplayKey::NextMark => {
                    let marks = feed.marks.len();
                    while feed.marks.len() == marks && feed.send_next() {}
                }
                ReplayKey::PreviousMark => {
                    let target = feed.marks.iter().rev().find(|&&m| m < feed.sent).copied().unwrap_or(1);
                    feed.rewind(target);
                }
                ReplayKey::Pause | ReplayKey::Faster | ReplayKey::Slower => {}
            }
        }
        let now = Instant::now();
        if !pace.paused {
            feed.clock += (now - last).as_secs_f64() * pace.speed;
        }
        last = now;
        match feed.it.peek().map(|e| e.t) {
            Some(next_t) if !pace.paused && next_t <= feed.clock => {
                if !feed.send_next() {
                    return;
                }
                continue;
            }
            _ => {}
        }
        match keys.recv_timeout(Duration::from_millis(10)) {
            Ok(k) => waited = Some(k),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pace_of_a_log_is_quiet_writing_or_a_flood_measured_over_blocks() {
        use super::{LogPace, Pace, FLOOD_BYTES, FLOOD_HOLD, FLOOD_LOOK, PACE_SPAN};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use std::time::Duration;
        let size = Arc::new(AtomicU64::new(10_000));
        let seen = Arc::clone(&size);
        let mut pace = LogPace::new(Box::new(move || Some(seen.load(Ordering::Relaxed))));
        let t0 = std::time::Instant::now();
        let ms = Duration::from_millis;
        // Until the log has been seen for PACE_SPAN, nothing is known: the run may write.
        assert_eq!(pace.look(t0), Pace::Writing);
        assert_eq!(pace.look(t0 + ms(40)), Pace::Writing);
        // A log that does not grow for PACE_SPAN: the run is quiet.
        let mut t = t0 + PACE_SPAN + ms(20);
        assert_eq!(pace.look(t), Pace::Quiet);
        // One block of a slow run (its log flushed every 50 ms) is no flood, even seen in
        // a look 10 ms after the last: the pace is measured over PACE_SPAN.
        size.fetch_add(64 * 1024, Ordering::Relaxed);
        t += FLOOD_LOOK;
        assert_eq!(pace.look(t), Pace::Writing);
        // The blocks of a slow run, one each 50 ms: never quiet, never a flood.
        for _ in 0..10 {
            size.fetch_add(32 * 1024, Ordering::Relaxed);
            t += ms(25);
            assert_eq!(pace.look(t), Pace::Writing);
            t += ms(25);
            assert_eq!(pace.look(t), Pace::Writing, "between two blocks");
        }
        // A flood starts: the first look that sees it says so...
        size.fetch_add(2 * 1024 * 1024, Ordering::Relaxed);
        assert_eq!(pace.look(t + FLOOD_LOOK / 2), Pace::Writing, "not looked at again so soon");
        let flooded_at = t + FLOOD_LOOK;
        assert_eq!(pace.look(flooded_at), Pace::Flooding);
        // ...and holds for FLOOD_HOLD after the last look that saw it, then ebbs into quiet.
        assert_eq!(pace.look(flooded_at + FLOOD_HOLD.saturating_sub(ms(1))), Pace::Flooding);
        t = flooded_at + FLOOD_HOLD + PACE_SPAN;
        assert_eq!(pace.look(t), Pace::Quiet);
        // A log that grows slower than FLOOD_BYTES a second: half that, a second's worth
        // between looks a second apart, is written, not flooded.
        for _ in 0..3 {
            size.fetch_add(FLOOD_BYTES / 2, Ordering::Relaxed);
            t += ms(1000);
            assert_eq!(pace.look(t), Pace::Writing);
        }
        // A log that cannot be looked at (the run removed it): nothing is known.
        let mut gone = LogPace::new(Box::new(|| None));
        assert_eq!(gone.look(t0), Pace::Writing);
        assert_eq!(gone.look(t0 + ms(1000)), Pace::Writing);
    }

    use super::*;

    /// Ten events far apart in time (none sent by the clock): a failure at the 5th, a
    /// deadlock at the 8th.
    fn log() -> Vec<Event> {
        (1..=10u64)
            .map(|seq| {
                let kind = match seq {
                    5 => EventKind::Exception {
                        task: "t".into(),
                        id: 1,
                        pool: "p".into(),
                        error: crate::events::ErrorInfo {
                            kind: futuretop_engine::ErrorKind::TaskError,
                            message: "boom".into(),
                        },
                    },
                    8 => EventKind::Deadlock {
                        kind: crate::deadlock::DeadlockKind::Cycle,
                        tasks: vec!["a".into(), "b".into()],
                        pool: None,
                        message: "m".into(),
                        ids: vec![2, 3],
                        victim: None,
                        victim_id: None,
                        expires_in: None,
                    },
                    _ => {
                        EventKind::Pending { attempt: None, task: format!("t{seq}").into(), id: seq, pool: "p".into() }
                    }
                };
                #[allow(clippy::cast_precision_loss)] // small numbers
                let t = 1000.0 * seq as f64;
                Event { seq, t, kind }
            })
            .collect()
    }

    /// What the feeder sends after `key`, as `seq`s, once it has sent `expect` events.
    fn after(
        keys: &Sender<ReplayKey>,
        out: &Receiver<std::sync::Arc<Event>>,
        key: ReplayKey,
        expect: usize,
    ) -> Vec<u64> {
        keys.send(key).unwrap();
        let mut got = Vec::new();
        while got.len() < expect {
            got.push(out.recv_timeout(Duration::from_secs(10)).expect("an event").seq);
        }
        assert!(out.recv_timeout(Duration::from_millis(100)).is_err(), "nothing more after {key:?}: {got:?}");
        got
    }

    #[test]
    fn the_feeder_steps_back_and_jumps_between_failures_and_deadlocks() {
        let events = log();
        let open: OpenLog = Box::new(move || Box::new(events.clone().into_iter()));
        let (out_tx, out) = crossbeam_channel::unbounded();
        let (keys, keys_rx) = crossbeam_channel::unbounded();
        let feeder = std::thread::spawn(move || feed(&open, &out_tx, &keys_rx));
        assert_eq!(after(&keys, &out, ReplayKey::NextMark, 5), [1, 2, 3, 4, 5], "to the failure");
        assert_eq!(after(&keys, &out, ReplayKey::NextMark, 3), [6, 7, 8], "to the deadlock");
        assert_eq!(after(&keys, &out, ReplayKey::Step, 1), [9]);
        // Back: the log again from its start, up to the event before.
        assert_eq!(after(&keys, &out, ReplayKey::StepBack, 8), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(after(&keys, &out, ReplayKey::PreviousMark, 5), [1, 2, 3, 4, 5], "back to the failure");
        assert_eq!(after(&keys, &out, ReplayKey::PreviousMark, 1), [1], "no mark before it: the start");
        drop(keys);
        feeder.join().unwrap();
    }
}
