//! The `futuretop` command: parse the command line, run, map the outcome to an exit code.

mod cli;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, ColorChoice, Command, DeadlockPolicy, DisplayArgs, RunArgs};
use futuretop::config::Plan;
use futuretop::control::Control;
use futuretop::control::OnDeadlock;
use futuretop::headless;
use futuretop::runner::RunOptions;

/// The program's allocator: the engine and the event bus allocate on one thread and free on
/// another all the time, which glibc's malloc does under a lock (a subscriber that fell
/// behind cost a run 1.32x with it; the thread pool's trivial task took 4x as long): see
/// docs/performance.md, "The allocator".
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that never panics: a closed pipe (`futuretop ... | head`) or a full disk
/// ends the writing quietly, and the program exits with its own code. Every line the
/// program prints goes through these, with its control characters shown escaped
/// ([`futuretop::text::lines`]): none reaches the terminal raw.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), "{}", futuretop::text::lines(&format!($($t)*)));
    }};
}

/// `print!` that never panics (see [`say!`]).
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), "{}", futuretop::text::lines(&format!($($t)*)));
    }};
}

/// `eprintln!` that never panics (see [`say!`]).
macro_rules! warn {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "{}", futuretop::text::lines(&format!($($t)*)));
    }};
}

/// Exit code when the event log is not whole: a run could not write all of it (a full
/// disk, say), or a replayed log has damaged lines or no `run_finished`.
const EXIT_LOG_INCOMPLETE: u8 = 4;

/// Exit code for usage and configuration errors (DESIGN §4).
const EXIT_USAGE: u8 = 2;
/// The exit code after a panic in the monitor (as a Rust program that panics).
const EXIT_MONITOR_PANIC: u8 = 101;

fn main() -> ExitCode {
    // A process-pool worker is this binary re-executed: serve, then exit.
    // Commands run in workers go through the same supervisor as the others.
    let callables = futuretop::tasks::callables_supervised(std::env::current_exe().ok());
    if std::env::args_os().nth(1).is_some_and(|a| a == futuretop_engine::executor::WORKER_ARG) {
        futuretop::worker_env::restore_thp();
    }
    futuretop_engine::serve_worker_if_requested(&callables);
    // So is a Slurm job's program on the node, and a command's supervisor.
    futuretop_engine::serve_slurm_job_if_requested(&callables);
    futuretop::tasks::supervise_command_if_requested();
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            warn!("{message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Keeps a task's panic off the terminal (it is stored as the future's exception);
/// any other panic is reported once, by the default hook.
/// Prints what clap has to say (an error, or `--help` and `--version`) and gives its exit
/// code. An error quotes the user's arguments, which may hold control characters, and
/// clap passes them raw to a terminal: when an argument holds one, the message is printed
/// without clap's colours (and so without escape sequences) through the sanitiser.
fn usage_error(e: &clap::Error) -> ExitCode {
    let raw = std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        futuretop::text::visible(&a) != a
    });
    let plain = e.render().to_string();
    if !raw {
        let _ = e.print();
    } else if e.use_stderr() {
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), futuretop::text::lines(&plain).as_bytes());
    } else {
        say_raw!("{plain}");
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
}

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !futuretop_engine::in_task() {
            default(info);
        }
    }));
}

fn run(cli: Cli) -> Result<u8, String> {
    match cli.command {
        None => match cli.file {
            Some(file) => run_or_keep(&cli.run, &["run".into(), file.clone().into_os_string()], || load(&file)),
            None => run_or_keep(&cli.run, &[], || {
                load_embedded("config.example.yaml", "futuretop-demo", futuretop::demo::DEFAULT_DEMO)
            }),
        },
        Some(Command::Run { file, run }) => {
            run_or_keep(&run, &["run".into(), file.clone().into_os_string()], || load(&file))
        }
        Some(Command::Validate { file }) => {
            let plan = load(&file)?;
            say!(
                "{}: ok ({} tasks in {} pools: {})",
                file.display(),
                plan.len(),
                plan.pools.len(),
                plan.pools
                    .iter()
                    .map(|p| {
                        let s = if p.max_workers == 1 { "" } else { "s" };
                        format!("{} ({}, {} worker{s})", p.name, p.kind.as_str(), p.max_workers)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Some(Command::Demo { name: None, .. }) => {
            say!("bundled scenarios (futuretop demo NAME):");
            for s in futuretop::demo::SCENARIOS {
                say!("  {:<20} {}", s.name, s.about);
            }
            Ok(0)
        }
        Some(Command::Demo { name: Some(name), run }) => {
            let Some(s) = futuretop::demo::scenario(&name) else {
                let names: Vec<&str> = futuretop::demo::SCENARIOS.iter().map(|s| s.name).collect();
                return Err(format!("futuretop: unknown demo '{name}' (demos: {})", names.join(", ")));
            };
            // A keeper starts nothing: its run, a child, serves the pages.
            let yaml = if s.name == "urls" && keeper_dir(&run).is_none() {
                let addr = futuretop::demo::start_local_http()
                    .map_err(|e| format!("futuretop: cannot start the demo's HTTP server: {e}"))?;
                warn!("serving the demo pages on http://{addr}/");
                s.yaml.replace("127.0.0.1:8000", &addr)
            } else {
                s.yaml.to_owned()
            };
            let again = ["demo".into(), s.name.into()];
            run_or_keep(&run, &again, || load_embedded(&format!("assets/{}.yaml", s.name), s.name, &yaml))
        }
        Some(Command::Replay { log, headless, display }) => replay(&log, headless, &display),
        Some(Command::Config { default }) => config_command(default),
        Some(Command::Ls { all, json }) => list_runs(all, json),
        Some(Command::Wait { id }) => wait_run(id.as_deref()),
        Some(Command::Attach { id, headless, display }) => attach(id.as_deref(), headless, &display),
        Some(Command::Stop { id }) => stop_run(id.as_deref()),
        Some(Command::Diff { old, new, json, all }) => diff_runs(&old, &new, json, all),
        Some(Command::Export { chrome_trace: _, log }) => export_chrome_trace(&log),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "futuretop", &mut out);
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &out);
            Ok(0)
        }
    }
}

/// `futuretop config [--default]`: the preferences file checked, or printed at its defaults.
fn config_command(default: bool) -> Result<u8, String> {
    if default {
        say_raw!("{}", futuretop::prefs::default_text());
        return Ok(0);
    }
    let Some(path) = futuretop::prefs::path() else {
        return Err("futuretop: neither XDG_CONFIG_HOME nor HOME is set: no preferences file".into());
    };
    if !path.exists() {
        say!(
            "{}: no preferences file (the defaults apply; `futuretop config --default > {}` writes them)",
            path.display(),
            path.display()
        );
        return Ok(0);
    }
    futuretop::prefs::load_file(&path).map_err(|e| e.to_string())?;
    say!("{}: ok", path.display());
    Ok(0)
}

/// `futuretop diff OLD NEW`: two recorded runs compared; 1 when a success was lost.
fn diff_runs(old: &Path, new: &Path, json: bool, all: bool) -> Result<u8, String> {
    let read = |path: &Path| {
        let mut record = futuretop::diff::RunRecord::default();
        let found = read_through(path, |e| {
            record.take(&e);
            true
        })?;
        if !found.started {
            return Err(format!("futuretop: {}: not an event log (no event in it)", path.display()));
        }
        found.report();
        Ok::<_, String>(record)
    };
    let (old_run, new_run) = (read(old)?, read(new)?);
    let diff = futuretop::diff::compare(&old_run, &new_run, all);
    if json {
        let text = serde_json::to_string_pretty(&diff).map_err(|e| format!("futuretop: {e}"))?;
        say_raw!("{text}\n");
    } else {
        say_raw!("{}", diff.text());
    }
    Ok(u8::from(!diff.regressions.is_empty()))
}

/// `futuretop export --chrome-trace LOG`: the run as a Chrome trace, on stdout.
fn export_chrome_trace(log: &Path) -> Result<u8, String> {
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let path = log.to_owned();
    let feeder = std::thread::Builder::new()
        .name("futuretop-export".into())
        .spawn(move || read_through(&path, |e| tx.send(e).is_ok()))
        .map_err(|e| format!("futuretop: cannot read the log: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written =
        futuretop::trace::chrome_trace(rx.iter(), &mut out).and_then(|n| std::io::Write::flush(&mut out).map(|()| n));
    drop(out);
    // A closed pipe stopped the writing: the reader must not wait on a full channel.
    drop(rx);
    let found = feeder.join().map_err(|_| "futuretop: the export stopped on a bug".to_owned())??;
    match written {
        Ok(_) => {
            found.report();
            Ok(0)
        }
        // A closed pipe (`| head`) ends the export quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(format!("futuretop: cannot write the trace: {e}")),
    }
}

/// What reading a log through found, beside its events.
struct Replayed {
    /// `run_finished`'s exit code, if the log has one.
    exit_code: Option<i32>,
    /// An event was read.
    started: bool,
    /// Lines that are not events (damaged, or the last one cut), and the first few of them.
    damaged: usize,
    problems: Vec<String>,
    /// Events of kinds this version does not know, skipped.
    skipped: usize,
}

impl Replayed {
    /// Says on stderr what was wrong with the log; the exit code: the recorded one for a
    /// log read whole, else [`EXIT_LOG_INCOMPLETE`].
    fn report(&self) -> u8 {
        for p in &self.problems {
            warn!("futuretop: warning: {p}");
        }
        if self.damaged > self.problems.len() {
            warn!("futuretop: warning: {} more lines that are not events", self.damaged - self.problems.len());
        }
        if self.skipped > 0 {
            warn!("futuretop: {} events of kinds this version does not know were skipped", self.skipped);
        }
        match self.exit_code {
            Some(code) if self.damaged == 0 => u8::try_from(code).unwrap_or(1),
            Some(_) => EXIT_LOG_INCOMPLETE,
            None => {
                warn!("futuretop: the run did not finish: the log has no run_finished (the run was killed, or is still going)");
                EXIT_LOG_INCOMPLETE
            }
        }
    }
}

/// Reads the log at `path` through, handing each event to `each` (which says whether to
/// go on): damaged lines are counted and skipped, a log of a newer format is refused.
fn read_through(path: &Path, each: impl FnMut(futuretop::events::Event) -> bool) -> Result<Replayed, String> {
    let reader = futuretop::events::LogReader::open(path).map_err(|e| format!("futuretop: {e}"))?;
    read_from(reader, path, each)
}

/// [`read_through`] of a log already open.
fn read_from(
    mut reader: futuretop::events::LogReader,
    path: &Path,
    mut each: impl FnMut(futuretop::events::Event) -> bool,
) -> Result<Replayed, String> {
    use futuretop::events::{EventKind, LogError, EVENTS_VERSION};
    let mut r = Replayed { exit_code: None, started: false, damaged: 0, problems: Vec::new(), skipped: 0 };
    for item in reader.by_ref() {
        match item {
            Ok(event) => {
                match &event.kind {
                    EventKind::RunStarted { version, .. } if *version > EVENTS_VERSION => {
                        return Err(format!(
                            "futuretop: {}: the log is in format version {version}; this futuretop reads version {EVENTS_VERSION} (a newer futuretop wrote it)",
                            path.display()
                        ));
                    }
                    EventKind::RunFinished { exit_code, .. } => r.exit_code = Some(*exit_code),
                    _ => {}
                }
                r.started = true;
                if !each(event) {
                    break;
                }
            }
            Err(e @ LogError::Read { .. }) => return Err(format!("futuretop: {e}")),
            // Not one event before it: not an event log at all (`replay /dev/zero`).
            Err(e) if r.exit_code.is_none() && !r.started => return Err(format!("futuretop: {e}")),
            Err(e) => {
                r.damaged += 1;
                if r.problems.len() < 5 {
                    r.problems.push(e.to_string());
                }
            }
        }
    }
    r.skipped = reader.skipped();
    Ok(r)
}

/// `futuretop replay LOG`: the monitor, or with `--headless` the summary, of a recorded
/// run; exits with the run's exit code (or 4 for a log that is not whole).
fn replay(log: &Path, headless: bool, display: &DisplayArgs) -> Result<u8, String> {
    if use_monitor(headless) {
        // Read through once first, so that a newer format is refused before the screen
        // is taken; then replayed from the file, an event at a time.
        let found = read_through(log, |_| true)?;
        let options = monitor_options(display)?;
        futuretop::events::LogReader::open(log).map_err(|e| format!("futuretop: {e}"))?;
        let path = log.to_owned();
        let open: futuretop::tui::OpenLog = Box::new(move || match futuretop::events::LogReader::open(&path) {
            Ok(reader) => Box::new(reader.filter_map(Result::ok)),
            Err(_) => Box::new(std::iter::empty()),
        });
        futuretop::tui::run(futuretop::tui::Source::Replay(open), &options)
            .map_err(|e| format!("futuretop: the terminal failed: {e}"))?;
        return Ok(found.report());
    }
    // Headless: the log is read as the summary is made, a few thousand events ahead at most.
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let path = log.to_owned();
    let feeder = std::thread::Builder::new()
        .name("futuretop-replay".into())
        .spawn(move || read_through(&path, |e| tx.send(std::sync::Arc::new(e)).is_ok()))
        .map_err(|e| format!("futuretop: cannot start the replay: {e}"))?;
    let model = headless::report(&rx, false, &mut std::io::sink(), None);
    let found = feeder.join().map_err(|_| "futuretop: the replay stopped on a bug".to_owned())??;
    say_raw!("{}", model.summary(found.exit_code.unwrap_or(EXIT_LOG_INCOMPLETE.into())));
    Ok(found.report())
}

fn load(file: &Path) -> Result<Plan, String> {
    futuretop::config::load(file).map_err(|e| e.to_string())
}

fn load_embedded(file: &str, name: &str, yaml: &str) -> Result<Plan, String> {
    futuretop::config::load_str(file, name, yaml).map_err(|e| e.to_string())
}

/// Seconds without a change of state that make a stall, unless the file or
/// `--stall-after` says otherwise.
const DEFAULT_STALL_AFTER: f64 = 60.0;

/// Runs `plan` as `args` say. `again` are the arguments that name what to run, for a
/// `--detach` that starts this program again in the background (`run FILE`, `demo NAME`,
/// or none for the default demo).
fn run_plan(plan: Plan, args: &RunArgs, again: &[std::ffi::OsString]) -> Result<u8, String> {
    if args.detach {
        return detach(&plan, args, again);
    }
    // A detached run, started by the `--detach` above: a session of its own. A run in
    // the foreground is listed too (`ls`, `wait`, `stop`, `attach` with a log), when the
    // state directory can be used.
    let listed = match (&args.run_id, &args.foreground) {
        (Some(id), _) => Some(become_detached(id)?),
        (None, Some(id)) => Some(become_kept(id, args.keeper)?),
        (None, None) => match futuretop::session::state_dir() {
            Ok(dir) => {
                let id = futuretop::session::new_id(&dir);
                Some((dir, id))
            }
            Err(e) => {
                warn!("{e}; this run is not listed by futuretop ls, and cannot be detached");
                None
            }
        },
    };
    let status_file = listed.as_ref().map(|(dir, id)| dir.join(format!("{id}.status.json")));
    let monitor = use_monitor(args.headless);
    // Bad preferences are refused before anything runs.
    let display = if monitor { Some(monitor_options(&args.display)?) } else { None };
    // A run in the monitor, kept (see above), can be sent to the background with `d`: it
    // keeps a log to be attached to, in the state directory unless `--events` says where.
    let keeper = args.keeper.filter(|_| display.is_some() && args.foreground.is_some());
    let detachable = detachable(keeper, listed.as_ref());
    let implicit_log = match (keeper, &listed, &args.events) {
        (Some(_), Some((dir, id)), None) => {
            Some(futuretop::session::logs_dir().unwrap_or_else(|| dir.clone()).join(format!("{id}.jsonl")))
        }
        _ => None,
    };
    let options = RunOptions {
        events: args.events.clone().or_else(|| implicit_log.clone()),
        on_deadlock: match args.on_deadlock {
            DeadlockPolicy::Warn => OnDeadlock::Warn,
            DeadlockPolicy::Fail => OnDeadlock::Fail,
            DeadlockPolicy::Break => OnDeadlock::Break,
        },
        worker_program: None,
        command_supervisor: std::env::current_exe().ok(),
        // The monitor shows system figures, and a recorded log keeps them for its replay.
        sample_system: use_monitor(args.headless) || args.events.is_some(),
        stall_after: {
            let after = args.stall_after.or(plan.stall_after).unwrap_or(DEFAULT_STALL_AFTER);
            (after > 0.0 && after.is_finite()).then(|| std::time::Duration::from_secs_f64(after.min(1e9)))
        },
        status_file,
    };
    let plan = std::sync::Arc::new(plan);
    let ((rx, follower), handle) = start_run(&plan, &options, display.is_some())?;
    forward_signals(handle.control());
    if early_stop().load(std::sync::atomic::Ordering::Relaxed) {
        let _ = handle.control().send(Control::Interrupt);
    }
    if let Some((dir, id)) = &listed {
        // Its control socket, then its record: once `--detach` sees the record, the run
        // can be attached to.
        let socket = dir.join(format!("{id}.sock"));
        if let Err(e) = futuretop::attach::serve(&socket, id.clone(), handle.control()) {
            warn!("futuretop: no control socket at {}: {e}", socket.display());
        }
        let log = match (&args.events, &args.run_id) {
            (Some(log), _) => std::path::absolute(log).ok(),
            (None, Some(_)) => Some(dir.join(format!("{id}.jsonl"))),
            (None, None) => implicit_log.clone(),
        };
        let registered = futuretop::session::register(
            dir,
            id,
            &plan.name,
            &plan.source,
            log.as_deref(),
            implicit_log.is_some() && args.events.is_none(),
        );
        if let (Err(e), Some(_)) = (&registered, &args.run_id) {
            let _ = handle.control().send(Control::Interrupt);
            let _ = handle.join();
            return Err(format!("futuretop: cannot record the run in {}: {e}", dir.display()));
        }
    }
    // Nothing answers on the run's socket once it has ended.
    if let Some(display) = display {
        let run = Monitored {
            handle,
            plan,
            keeper,
            detachable,
            listed: listed.as_ref(),
            implicit_log,
            events: args.events.as_deref(),
        };
        return monitored(run, rx, &display);
    }
    let stderr = std::io::stderr();
    let (tty, policy) = (stderr.is_terminal(), Some(options.on_deadlock));
    let model = match &follower {
        Some(follower) => headless::follow(follower, tty, &mut stderr.lock()),
        None => headless::report(&rx, tty, &mut stderr.lock(), policy),
    };
    let report = handle.join();
    unlisten(listed.as_ref());
    say_raw!("{}", model.summary_with_log(report.exit_code, args.events.as_deref()));
    Ok(exit_code(&report))
}

/// The events of a run and what takes them in.
type Consumers = (crossbeam_channel::Receiver<std::sync::Arc<futuretop::events::Event>>, Option<headless::Follower>);

/// Starts `plan`: its events go to a channel for the monitor (`monitor`), else to the
/// headless reporter's fold on the bus's thread, which costs a large run a quarter less
/// than a channel would.
fn start_run(
    plan: &std::sync::Arc<Plan>,
    options: &RunOptions,
    monitor: bool,
) -> Result<(Consumers, futuretop::runner::RunHandle), String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (subscribers, observers, follower) = if monitor {
        (vec![tx], Vec::new(), None)
    } else {
        let (fold, follower) = headless::fold(Some(options.on_deadlock));
        (Vec::new(), vec![Box::new(fold) as Box<dyn futuretop::events::Stage>], Some(follower))
    };
    let handle = futuretop::runner::start_observed(std::sync::Arc::clone(plan), options, subscribers, observers)
        .map_err(|e| format!("futuretop: {e}"))?;
    Ok(((rx, follower), handle))
}

/// Whether `d` can send a run in the monitor to the background (it has a keeper), or why not.
fn detachable(keeper: Option<u32>, listed: Option<&(std::path::PathBuf, String)>) -> futuretop::tui::app::Detachable {
    use futuretop::tui::app::Detachable;
    match (keeper, listed) {
        (Some(_), _) => Detachable::Yes,
        (None, None) => Detachable::No("futuretop cannot use its state directory (said when the run started)".into()),
        (None, Some(_)) => Detachable::No(
            "it runs in the process its shell waits on (started in the background, or this program \
             could not start itself again: said when the run started)"
                .into(),
        ),
    }
}

/// A run shown in the monitor, as [`run_plan`] started it.
struct Monitored<'a> {
    handle: futuretop::runner::RunHandle,
    plan: std::sync::Arc<Plan>,
    /// Its keeper's pid, if it has one: then `d` sends it to the background.
    keeper: Option<u32>,
    /// Whether `d` can, or why not.
    detachable: futuretop::tui::app::Detachable,
    /// Its state directory and id, if it is listed.
    listed: Option<&'a (std::path::PathBuf, String)>,
    /// The log it keeps for `attach` only (removed unless it detaches).
    implicit_log: Option<std::path::PathBuf>,
    /// `--events`.
    events: Option<&'a Path>,
}

/// Shows `run` in the monitor until the user leaves it or detaches; then its summary.
fn monitored(
    run: Monitored<'_>,
    rx: crossbeam_channel::Receiver<std::sync::Arc<futuretop::events::Event>>,
    display: &futuretop::tui::MonitorOptions,
) -> Result<u8, String> {
    let name = run.plan.name.clone();
    // After `d`, the run goes on taking its events into the screen's model, for its
    // summary at the end.
    let after = run.keeper.map(|_| rx.clone());
    let source = futuretop::tui::Source::Live {
        events: rx,
        control: run.handle.control(),
        plan: Some(run.plan),
        detachable: run.detachable,
    };
    // A panic in the monitor (a bug) has restored the terminal and printed its message
    // by now (the guard's hook); the run is stopped so that its log is complete.
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| futuretop::tui::run(source, display)));
    let Ok(shown) = shown else {
        let _ = run.handle.control().send(Control::Interrupt);
        let report = run.handle.join();
        unlisten(run.listed);
        forget_log(run.listed, run.implicit_log.as_deref());
        warn!("futuretop: the monitor stopped on the error above (a bug); the run was stopped");
        if let Some(e) = report.log_error {
            warn!("futuretop: the event log is incomplete: {e}");
        }
        return Ok(EXIT_MONITOR_PANIC);
    };
    let shown = shown.map_err(|e| format!("futuretop: the terminal failed: {e}"));
    if shown.is_err() {
        let _ = run.handle.control().send(Control::Interrupt);
    }
    let detached = match (&shown, run.keeper, run.listed) {
        (Ok(s), Some(keeper), Some((dir, id))) if s.detached => {
            let said = || say!("detached from run {id} ({}) — futuretop attach {id}", futuretop::text::visible(&name));
            match futuretop::keeper::detach(keeper, &dir.join(format!("{id}.out")), said) {
                Ok(()) => true,
                Err(e) => {
                    warn!(
                        "futuretop: cannot detach the run ({e}): it goes on here, without its monitor, until it ends (Ctrl-C stops it)"
                    );
                    false
                }
            }
        }
        _ => false,
    };
    let mut shown = shown;
    match (after, shown.as_mut()) {
        (Some(after), Ok(s)) if detached => {
            for e in &after {
                s.model.apply(&e);
            }
        }
        _ => {}
    }
    let mut report = run.handle.join();
    unlisten(run.listed);
    if let Some(log) = &run.implicit_log {
        // Kept only for attaching to the run: a run that stayed in its terminal leaves
        // none behind, and a failure to write it is no failure of the run.
        if let Some(e) = report.log_error.take() {
            warn!("futuretop: the run's log for futuretop attach failed: {e}");
        }
        if !detached {
            forget_log(run.listed, Some(log));
        }
    }
    // The futures as the screen counted them, in the headless summary's words.
    let shown = shown?;
    say_raw!(
        "{}",
        shown.model.summary_with_log(report.exit_code, run.events.or(run.implicit_log.as_deref().filter(|_| detached)))
    );
    Ok(exit_code(&report))
}

/// Removes the log a run in the foreground kept only for `attach` (it was never
/// detached), and its record's mention of it.
fn forget_log(listed: Option<&(std::path::PathBuf, String)>, log: Option<&Path>) {
    let (Some((dir, id)), Some(log)) = (listed, log) else { return };
    let _ = std::fs::remove_file(log);
    futuretop::session::forget_log(dir, id);
}

/// Nothing answers on the run's socket once it has ended.
fn unlisten(listed: Option<&(std::path::PathBuf, String)>) {
    if let Some((dir, id)) = listed {
        let _ = std::fs::remove_file(dir.join(format!("{id}.sock")));
    }
}

/// The program's exit code for a run that ended: the run's, or [`EXIT_LOG_INCOMPLETE`]
/// (said on stderr) when its event log could not be written in full and the run
/// otherwise ended on its own (0 or 1: a deadlock's 3 and an interruption's 130 stay).
fn exit_code(report: &futuretop::runner::RunReport) -> u8 {
    let code = u8::try_from(report.exit_code).unwrap_or(1);
    match &report.log_error {
        Some(e) => {
            warn!("futuretop: the event log is incomplete: {e}");
            if code <= 1 {
                warn!(
                    "futuretop: exit code {EXIT_LOG_INCOMPLETE}: the event log is not whole (the run's own was {code})"
                );
                EXIT_LOG_INCOMPLETE
            } else {
                code
            }
        }
        None => code,
    }
}

/// The monitor needs a terminal on both ends; without one (CI, a pipe) the run is
/// headless. A `TERM=dumb` terminal cannot draw it: headless too, with a note.
fn use_monitor(headless: bool) -> bool {
    if headless || !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return false;
    }
    if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        static NOTED: std::sync::Once = std::sync::Once::new();
        NOTED.call_once(|| warn!("futuretop: TERM=dumb cannot show the monitor: running headless"));
        return false;
    }
    true
}

/// How the monitor draws: colours by `--color` (`auto`: unless `NO_COLOR` is set to
/// anything but the empty string), the mouse unless `--no-mouse` or the preferences say
/// no, and the preferences file's settings (its problems refused, with their positions).
fn monitor_options(display: &DisplayArgs) -> Result<futuretop::tui::MonitorOptions, String> {
    let color = match display.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let prefs = futuretop::prefs::load().map_err(|e| e.to_string())?;
    Ok(futuretop::tui::MonitorOptions { color, mouse: !display.no_mouse && prefs.mouse, prefs })
}

/// SIGINT, SIGTERM and SIGHUP stop the run cleanly (exit 130): pending tasks are
/// cancelled, running ones killed, the event log completed; so does the keeper's
/// [`futuretop::keeper::STOP`], for a signal sent to the keeper (it never counts as a
/// second one: the terminal's signals reach both).
fn forward_signals(control: crossbeam_channel::Sender<Control>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = futuretop::keeper::STOP as i32;
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, stop]) else {
        return;
    };
    let _ = std::thread::Builder::new().name("futuretop-signals".into()).spawn(move || {
        let mut count = 0;
        for signal in signals.forever() {
            if signal == stop {
                let _ = control.send(Control::Interrupt);
                continue;
            }
            count += 1;
            if count > 1 {
                // A second Ctrl-C: the user insists.
                std::process::exit(130);
            }
            let _ = control.send(Control::Interrupt);
        }
    });
}

/// `--detach`: starts this program again in a session of its own, headless, with its
/// output and event log in the state directory (the log at `--events` if given); waits
/// until it has started, then says how to reach it. The file was validated already.
fn detach(plan: &Plan, args: &RunArgs, again: &[std::ffi::OsString]) -> Result<u8, String> {
    use futuretop::session;
    let dir = session::state_dir().map_err(|e| e.to_string())?;
    let id = session::new_id(&dir);
    let log = match &args.events {
        Some(log) => std::path::absolute(log).map_err(|e| format!("futuretop: {}: {e}", log.display()))?,
        None => dir.join(format!("{id}.jsonl")),
    };
    let out_path = dir.join(format!("{id}.out"));
    let out = std::fs::File::create(&out_path).map_err(|e| format!("futuretop: {}: {e}", out_path.display()))?;
    let err = out.try_clone().map_err(|e| format!("futuretop: {}: {e}", out_path.display()))?;
    let extra =
        ["--headless".into(), "--events".into(), log.clone().into_os_string(), "--run-id".into(), id.clone().into()];
    let mut command = run_again(args, again, &extra)?;
    command.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
    let mut child = command.spawn().map_err(|e| format!("futuretop: cannot start the run: {e}"))?;
    // Started once it has written its record; a run that fails first says why in its output.
    let record = dir.join(format!("{id}.json"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !record.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read(&out_path).unwrap_or_default();
            warn!("{}", String::from_utf8_lossy(&said).trim_end());
            return Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1));
        }
        if std::time::Instant::now() >= deadline {
            // Not left running unlisted.
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("futuretop: the run {id} did not start within 30 s (see {})", out_path.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    say!("started run {id} ({}) — futuretop attach {id}", futuretop::text::visible(&plan.name));
    Ok(0)
}

/// Runs what `again` names (`plan` loads it) as `args` say; a run in the monitor, in a
/// child kept by this process ([`futuretop::keeper`]), so that `d` can send it to the
/// background. The keeper reads nothing of the file (the run does: a file that can be
/// read only once, `<(...)`, is read once).
fn run_or_keep(
    args: &RunArgs,
    again: &[std::ffi::OsString],
    plan: impl FnOnce() -> Result<Plan, String>,
) -> Result<u8, String> {
    if let Some(dir) = keeper_dir(args) {
        match kept_run(args, again, &futuretop::session::new_id(&dir)).and_then(futuretop::keeper::keep) {
            Ok(code) => return Ok(code),
            Err(e) => warn!("{e}; the run goes on in this process, and cannot be detached"),
        }
    }
    run_plan(plan()?, args, again)
}

/// The state directory, if this process is to keep a run in the foreground
/// ([`futuretop::keeper`]): a run in the monitor, not already kept or detached, started
/// in the foreground of its terminal (started in the background, `&`, it would stop at
/// its first draw, and the keeper with it is not what job control expects), when the
/// state directory can be used.
fn keeper_dir(args: &RunArgs) -> Option<std::path::PathBuf> {
    let foreground = nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|p| p == nix::unistd::getpgrp());
    let keeps =
        !args.detach && args.run_id.is_none() && args.foreground.is_none() && use_monitor(args.headless) && foreground;
    keeps.then(futuretop::session::state_dir).and_then(Result::ok)
}

/// This program again, to run what `again` names (`run FILE`, `demo NAME`, or nothing:
/// the embedded demo) as `args` say (the flags that shape a run; not `--detach`), with
/// `extra` flags; the file after `--`, so that a name starting with `-` stays a name.
fn run_again(
    args: &RunArgs,
    again: &[std::ffi::OsString],
    extra: &[std::ffi::OsString],
) -> Result<std::process::Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("futuretop: cannot find this program: {e}"))?;
    let mut command = std::process::Command::new(exe);
    let (subcommand, named) = again.split_first().map_or((None, &[][..]), |(s, rest)| (Some(s), rest));
    command.args(subcommand);
    if let Some(policy) = clap::ValueEnum::to_possible_value(&args.on_deadlock) {
        command.arg("--on-deadlock").arg(policy.get_name());
    }
    if let Some(after) = args.stall_after {
        command.arg("--stall-after").arg(after.to_string());
    }
    command.args(extra);
    if !named.is_empty() {
        command.arg("--").args(named);
    }
    Ok(command)
}

/// The run in the foreground that this process keeps ([`futuretop::keeper`]): in the
/// same terminal, with the same monitor.
fn kept_run(args: &RunArgs, again: &[std::ffi::OsString], id: &str) -> Result<std::process::Command, String> {
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    if let Some(log) = &args.events {
        extra.push("--events".into());
        extra.push(std::path::absolute(log).map_err(|e| format!("futuretop: {}: {e}", log.display()))?.into());
    }
    if let Some(color) = clap::ValueEnum::to_possible_value(&args.display.color) {
        extra.push("--color".into());
        extra.push(color.get_name().into());
    }
    if args.display.no_mouse {
        extra.push("--no-mouse".into());
    }
    extra.extend(["--foreground".into(), id.into(), "--keeper".into(), std::process::id().to_string().into()]);
    run_again(args, again, &extra)
}

/// The run `id` in the foreground (this process, started by its keeper): returns the
/// state directory and the id.
fn become_kept(id: &str, keeper: Option<u32>) -> Result<(std::path::PathBuf, String), String> {
    // A stop its keeper passes on before the run can take it is not lost (nor fatal).
    let _ = signal_hook::flag::register(futuretop::keeper::STOP as i32, std::sync::Arc::clone(early_stop()));
    futuretop::keeper::watch(keeper.unwrap_or(0))?;
    let dir = futuretop::session::state_dir().map_err(|e| e.to_string())?;
    if !futuretop::session::is_run_id(id) {
        return Err(format!("futuretop: a run id is six hex digits: '{}'", futuretop::text::visible(id)));
    }
    Ok((dir, id.to_owned()))
}

/// Set by a stop the keeper passed on before the run could take it ([`become_kept`]).
fn early_stop() -> &'static std::sync::Arc<std::sync::atomic::AtomicBool> {
    static EARLY: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> = std::sync::OnceLock::new();
    EARLY.get_or_init(Default::default)
}

/// The detached run `id` (this process, started by [`detach`]): leaves the terminal's
/// session; returns the state directory and the id.
fn become_detached(id: &str) -> Result<(std::path::PathBuf, String), String> {
    // Already the leader of a process group (started by hand from a shell): stays in it.
    let _ = nix::unistd::setsid();
    let dir = futuretop::session::state_dir().map_err(|e| e.to_string())?;
    if !futuretop::session::is_run_id(id) {
        return Err(format!("futuretop: a run id is six hex digits: '{}'", futuretop::text::visible(id)));
    }
    Ok((dir, id.to_owned()))
}

/// `futuretop ls`.
fn list_runs(all: bool, json: bool) -> Result<u8, String> {
    use futuretop::session;
    let dir = session::state_dir().map_err(|e| e.to_string())?;
    let runs: Vec<session::Found> =
        session::runs(&dir).into_iter().filter(|f| all || f.state == session::State::Running).collect();
    if json {
        let text = serde_json::to_string_pretty(&runs).map_err(|e| format!("futuretop: {e}"))?;
        say!("{text}");
    } else if runs.is_empty() {
        say!("{}", if all { "no runs" } else { "no live runs (futuretop ls --all lists the finished ones)" });
    } else {
        say_raw!("{}", session::table(&runs));
    }
    Ok(0)
}

/// `futuretop wait`: the run's exit code, once it has ended.
fn wait_run(id: Option<&str>) -> Result<u8, String> {
    use futuretop::session;
    let dir = session::state_dir().map_err(|e| e.to_string())?;
    let found = session::find(&dir, id)?;
    if let Some(code) = session::wait(&dir, &found) {
        return Ok(u8::try_from(code).unwrap_or(1));
    }
    warn!("futuretop: run {} ended without recording its end (killed?)", found.record.id);
    Ok(EXIT_LOG_INCOMPLETE)
}

/// `futuretop stop`: SIGINT to the run, as Ctrl-C; returns once it has ended.
fn stop_run(id: Option<&str>) -> Result<u8, String> {
    use futuretop::session;
    let dir = session::state_dir().map_err(|e| e.to_string())?;
    let found = session::find(&dir, id)?;
    if found.state != session::State::Running {
        return Err(format!("futuretop: run {} is not running ({})", found.record.id, found.state.as_str()));
    }
    // Through the run's control socket (the request is logged with who asked); a run
    // that does not answer there gets SIGINT, if its process is still this run's.
    let asked = futuretop::attach::Client::connect(&dir.join(format!("{}.sock", found.record.id)))
        .and_then(|mut c| c.send(&futuretop::attach::ToRun::Stop).map_err(|e| e.to_string()));
    if let Err(why) = asked {
        signal_run(&found, nix::sys::signal::Signal::SIGINT)
            .map_err(|e| format!("futuretop: cannot stop run {} ({why}): {e}", found.record.id))?;
    }
    // Its running tasks are killed, its commands' process groups too: that may take a
    // while, and the user is told so.
    let code = session::wait_saying(&dir, &found, std::time::Duration::from_secs(5), |waited| {
        warn!(
            "futuretop: run {} is stopping ({:.0} s): its running tasks are being killed (Ctrl-C stops waiting, not the stopping)",
            found.record.id,
            waited.as_secs_f64()
        );
    });
    say!(
        "stopped run {} ({}){}",
        found.record.id,
        futuretop::text::visible(&found.record.name),
        code.map_or_else(String::new, |c| format!(", exit code {c}"))
    );
    Ok(0)
}

/// Sends `signal` to run `found`'s process: only while that process is this program
/// started for that run (`--run-id ID` on its command line, its start time as recorded),
/// so that a record cannot make `stop` signal another process. A process already gone
/// is not an error.
fn signal_run(found: &futuretop::session::Found, signal: nix::sys::signal::Signal) -> Result<(), String> {
    let pid = found.record.pid;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = ["--run-id", "--foreground"].iter().any(|flag| {
        let marker = format!("{flag}\0{}\0", found.record.id);
        cmdline.windows(marker.len()).any(|w| w == marker.as_bytes())
    });
    if !ours || futuretop::session::proc_start(pid) != Some(found.record.proc_start) {
        return Ok(());
    }
    let pid = i32::try_from(pid).map_err(|_| "a pid out of range".to_owned())?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// How much an attached monitor lowers its own priority (`nice`).
const ATTACHED_NICENESS: i32 = 10;

/// `futuretop attach`: the run's events from its event log, read from its start and
/// followed as it grows (as `tail -f`, so a slow reader never slows the run), to the
/// monitor, whose requests go to the run's control socket; or, `--headless`, to the
/// progress line, then the summary and the run's exit code.
fn attach(id: Option<&str>, headless: bool, display: &DisplayArgs) -> Result<u8, String> {
    use futuretop::session;
    let dir = session::state_dir().map_err(|e| e.to_string())?;
    let found = session::find(&dir, id)?;
    // A viewer: on a busy machine the run comes first (a slow client never slows it).
    // `--headless` runs only on a CPU nothing else wants (SCHED_IDLE, which its threads
    // inherit): it may fall behind and catch up at the end. The monitor keeps a share
    // (`nice` +10), so that it still answers keys while the run takes every CPU.
    let idle = headless
        && thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            thread_priority::ThreadPriority::Min,
            thread_priority::ThreadSchedulePolicy::Normal(thread_priority::NormalThreadSchedulePolicy::Idle),
        )
        .is_ok();
    if !idle {
        let _ = rustix::process::nice(ATTACHED_NICENESS);
    }
    if !use_monitor(headless) {
        return attach_headless(&dir, &found);
    }
    if found.state != session::State::Running {
        return Err(format!(
            "futuretop: run {} has ended ({}): futuretop replay {}",
            found.record.id,
            found.state.as_str(),
            found.record.log.as_deref().map_or_else(
                || "(it wrote no log)".into(),
                |l| futuretop::text::visible(&l.display().to_string()).into_owned()
            )
        ));
    }
    let options = monitor_options(display)?;
    let mut client = futuretop::attach::Client::connect(&dir.join(format!("{}.sock", found.record.id)))
        .map_err(|e| format!("futuretop: run {}: {e}", found.record.id))?;
    let (control, asked) = crossbeam_channel::unbounded::<Control>();
    std::thread::Builder::new()
        .name("futuretop-requests".into())
        .spawn(move || {
            for c in asked {
                if let Some(request) = futuretop::attach::ToRun::from_control(&c) {
                    if client.send(&request).is_err() {
                        break;
                    }
                }
            }
        })
        .map_err(|e| format!("futuretop: cannot attach: {e}"))?;
    let (events, at_end, hold) = follow_log(&found)?;
    let started =
        std::time::UNIX_EPOCH + std::time::Duration::try_from_secs_f64(found.record.started).unwrap_or_default();
    let (pid, proc_start) = (found.record.pid, found.record.proc_start);
    let alive = Box::new(move || session::proc_start(pid) == Some(proc_start));
    let log = log_of(&found)?;
    let written = Box::new(move || std::fs::metadata(&log).ok().map(|m| m.len()));
    let id = found.record.id.clone();
    let progress = Box::new(move || session::status_of(&dir, &id).map(|s| (s.done, s.total)));
    let source = futuretop::tui::Source::Attached { events, control, started, alive, at_end, hold, written, progress };
    let shown = futuretop::tui::run(source, &options).map_err(|e| format!("futuretop: the terminal failed: {e}"))?;
    if let Some(code) = shown.finished {
        say_raw!("{}", shown.model.summary_with_log(code, found.record.log.as_deref()));
        return Ok(u8::try_from(code).unwrap_or(1));
    }
    say!(
        "detached from run {} ({}): it goes on — futuretop attach {}",
        found.record.id,
        futuretop::text::visible(&found.record.name),
        found.record.id
    );
    Ok(0)
}

/// The events of run `found`, read from its log's start and followed until it ends.
/// Also returns the flag its reader keeps (whether it is at the end of what is written),
/// and the one that holds it (while the monitor yields to a flood).
#[allow(clippy::type_complexity)] // a receiver and two flags
fn follow_log(
    found: &futuretop::session::Found,
) -> Result<
    (
        crossbeam_channel::Receiver<std::sync::Arc<futuretop::events::Event>>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ),
    String,
> {
    use futuretop::session;
    let (pid, started) = (found.record.pid, found.record.proc_start);
    let alive = move || session::proc_start(pid) == Some(started);
    let path = log_of(found)?;
    // The run opens its log right after it has written its record.
    let file = loop {
        match std::fs::File::open(&path) {
            Ok(f) => break f,
            Err(_) if alive() => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(format!("futuretop: {}: {e}", futuretop::text::visible(&path.display().to_string()))),
        }
    };
    let at_end = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hold = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow = session::Follow::new(file, Box::new(alive))
        .reporting(std::sync::Arc::clone(&at_end))
        .holding(std::sync::Arc::clone(&hold));
    let (tx, rx) = crossbeam_channel::bounded(futuretop::tui::ATTACHED_AHEAD);
    std::thread::Builder::new()
        .name("futuretop-attach".into())
        .spawn(move || {
            // The reading and decoding of the log, most of what a monitor does while it
            // catches up, runs only on a CPU the run leaves idle (SCHED_IDLE); the screen
            // and its keys keep their share (`nice` +10).
            let _ = thread_priority::set_thread_priority_and_policy(
                thread_priority::thread_native_id(),
                thread_priority::ThreadPriority::Min,
                thread_priority::ThreadSchedulePolicy::Normal(thread_priority::NormalThreadSchedulePolicy::Idle),
            );
            let reader = futuretop::events::LogReader::from_reader(path, follow);
            for item in reader {
                match item {
                    Ok(e) => {
                        if tx.send(std::sync::Arc::new(e)).is_err() {
                            break;
                        }
                    }
                    // The file cannot be read (a directory, an I/O error): the end.
                    Err(futuretop::events::LogError::Read { .. }) => break,
                    Err(_) => {}
                }
            }
        })
        .map_err(|e| format!("futuretop: cannot follow the run: {e}"))?;
    Ok((rx, at_end, hold))
}

/// The event log of run `found`, which `attach` reads.
fn log_of(found: &futuretop::session::Found) -> Result<std::path::PathBuf, String> {
    found.record.log.clone().ok_or_else(|| {
        format!(
            "futuretop: run {} writes no event log, which attach follows: start it with --events FILE, or with --detach",
            found.record.id
        )
    })
}

/// `futuretop attach --headless`: a progress line while the run goes, from the status
/// file the run keeps (so that a follower costs the run nothing: it decodes no event
/// while the run runs), a word when a deadlock is open; then the summary, from the run's
/// log read once the run has ended, and the run's exit code.
fn attach_headless(dir: &Path, found: &futuretop::session::Found) -> Result<u8, String> {
    use futuretop::session;
    let log = log_of(found)?;
    // Opened now, while the run goes: a log the run removes at its end (one it kept only
    // for attach), or that another run writes over, is still this run's to read.
    let shown = futuretop::text::visible(&log.display().to_string()).into_owned();
    let reader = futuretop::events::LogReader::open(&log).map_err(|e| format!("futuretop: {shown}: {e}"))?;
    let stderr = std::io::stderr();
    let since =
        std::time::UNIX_EPOCH + std::time::Duration::try_from_secs_f64(found.record.started).unwrap_or_default();
    let code = futuretop::headless::follow_status(
        || session::status_of(dir, &found.record.id),
        || session::proc_start(found.record.pid) == Some(found.record.proc_start),
        since,
        stderr.is_terminal(),
        &mut stderr.lock(),
    );
    let mut model = futuretop::model::RunModel::new(futuretop::model::Keep::Unfinished);
    let read = read_from(reader, &log, |e| {
        model.apply(&e);
        true
    });
    // The run's own word on how it ended comes first; the log's, if it has none.
    let code = match read {
        Ok(read) => {
            // Its warnings (a damaged log); the code is the run's own, or the log's.
            let _ = read.report();
            code.or(read.exit_code)
        }
        Err(e) => {
            warn!("{}; the summary is not shown", futuretop::text::visible(&e));
            if let Some(code) = code {
                return Ok(u8::try_from(code).unwrap_or(1));
            }
            return Err(format!("futuretop: run {} ended without saying how", found.record.id));
        }
    };
    say_raw!("{}", model.summary(code.unwrap_or(EXIT_LOG_INCOMPLETE.into())));
    Ok(code.map_or(EXIT_LOG_INCOMPLETE, |c| u8::try_from(c).unwrap_or(1)))
}
