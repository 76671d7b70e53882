//! The command line (DESIGN §4), as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch and steer parallel work: Python's concurrent.futures in Rust, with a monitor
/// that shows every future and worker, and detects, explains and breaks deadlocks.
#[derive(Debug, Parser)]
#[command(name = "futuretop", version, propagate_version = true, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A YAML task file to run in the monitor (default: the embedded demo).
    pub file: Option<PathBuf>,
    /// Options for running the file.
    #[command(flatten)]
    pub run: RunArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a task file, in the monitor or (--headless) with a progress line and a summary.
    Run {
        /// The YAML task file.
        file: PathBuf,
        /// Options.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a task file without running anything; exit 2 on the first problem.
    Validate {
        /// The YAML task file.
        file: PathBuf,
    },
    /// List the bundled scenarios, or run one.
    Demo {
        /// The scenario to run (without it: the list).
        name: Option<String>,
        /// Options.
        #[command(flatten)]
        run: RunArgs,
    },
    /// Show a recorded event log (from --events) in the monitor.
    Replay {
        /// The JSON-lines event log.
        log: PathBuf,
        /// Print the log's final state instead of opening the monitor.
        #[arg(long)]
        headless: bool,
        /// How the monitor draws.
        #[command(flatten)]
        display: DisplayArgs,
    },
    /// Compare two recorded runs (event logs) task by task: state, duration, attempts and
    /// worker, and the run's length; exit 1 when a task done in OLD is not done in NEW.
    Diff {
        /// The earlier run's event log.
        old: PathBuf,
        /// The later run's event log.
        new: PathBuf,
        /// The comparison as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// List the unchanged tasks too.
        #[arg(long)]
        all: bool,
    },
    /// Write a recorded run in another format, on stdout.
    Export {
        /// The Trace Event Format that Perfetto and chrome://tracing open.
        #[arg(long, required = true)]
        chrome_trace: bool,
        /// The run's event log.
        log: PathBuf,
    },
    /// Check the preferences file ($XDG_CONFIG_HOME/futuretop/config.yaml), or print the
    /// default one with --default.
    Config {
        /// Print the whole preferences file at its defaults, with comments.
        #[arg(long)]
        default: bool,
    },
    /// List this user's live runs started with --detach (--all: the finished ones too).
    Ls {
        /// Also the runs that have ended, with their exit codes.
        #[arg(long)]
        all: bool,
        /// The list as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Open the monitor on a detached run: it catches up on the run so far, then follows
    /// it; its keys act on the run; `d` or Ctrl-C detach, `q` asks.
    Attach {
        /// The run's id (`futuretop ls`); without it, the only live run.
        id: Option<String>,
        /// No monitor: the progress line, then the summary; exit with the run's exit code.
        #[arg(long)]
        headless: bool,
        /// How the monitor draws.
        #[command(flatten)]
        display: DisplayArgs,
    },
    /// Wait until a detached run ends; exit with its exit code.
    Wait {
        /// The run's id (`futuretop ls`); without it, the only live run.
        id: Option<String>,
    },
    /// Stop a detached run as Ctrl-C stops a run in the foreground: pending work
    /// cancelled, running work killed, the log completed, exit code 130.
    Stop {
        /// The run's id (`futuretop ls`); without it, the only live run.
        id: Option<String>,
    },
    /// Print a shell completion script: `futuretop completions bash > ~/.local/share/bash-completion/completions/futuretop`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// How the monitor draws.
#[derive(Debug, Clone, Args)]
pub struct DisplayArgs {
    /// Colours: `auto` (unless NO_COLOR is set), `always` or `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Leave the mouse to the terminal (select text), instead of clicks and the wheel.
    #[arg(long)]
    pub no_mouse: bool,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colours unless `NO_COLOR` is set (to anything but the empty string).
    Auto,
    /// Colours, whatever `NO_COLOR` says.
    Always,
    /// No colours.
    Never,
}

/// How to run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// No monitor: a progress line on stderr, then a summary.
    #[arg(long)]
    pub headless: bool,
    /// Write every event to this file as JSON lines.
    #[arg(long, value_name = "OUT.jsonl")]
    pub events: Option<PathBuf>,
    /// What to do when a deadlock is detected.
    #[arg(long, value_enum, default_value_t = DeadlockPolicy::Warn)]
    pub on_deadlock: DeadlockPolicy,
    /// Report a stall when no future has changed state for this many seconds while work
    /// is pending or running (0: never) [default: the file's `stall_after:`, else 60].
    #[arg(long, value_name = "SECS")]
    pub stall_after: Option<f64>,
    /// Run in the background, in a session of its own with no terminal: print the run's
    /// id and exit (`futuretop ls`, `wait ID`, `stop ID`). Its event log goes to --events,
    /// or to the state directory.
    #[arg(long)]
    pub detach: bool,
    /// (Internal) the id of a detached run, given by the `--detach` that started it.
    #[arg(long, hide = true, value_name = "ID")]
    pub run_id: Option<String>,
    /// (Internal) the id of a run in the foreground, given by its keeper
    /// ([`futuretop::keeper`]), whose pid is `--keeper`.
    #[arg(long, hide = true, value_name = "ID", requires = "keeper")]
    pub foreground: Option<String>,
    /// (Internal) the pid of the keeper of a run in the foreground.
    #[arg(long, hide = true, value_name = "PID")]
    pub keeper: Option<u32>,
    /// How the monitor draws.
    #[command(flatten)]
    pub display: DisplayArgs,
}

/// `--on-deadlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadlockPolicy {
    /// Report it and keep waiting, as Python would.
    Warn,
    /// Report it and exit with code 3.
    Fail,
    /// Report it and break it: the last waiter gets a DeadlockError, the run goes on.
    Break,
}
