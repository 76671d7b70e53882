//! End-to-end tests of the monitor: the real `futuretop` binary in a real terminal,
//! tmux, driven with `send-keys` and read with `capture-pane` (DESIGN §6, issue 6).
//!
//! Each test has its own tmux server (`tmux -L <unique socket> -f /dev/null`), killed by
//! a guard when the test ends, passed or failed. Nothing waits on a bare sleep: every
//! step polls the pane (every 50 ms, up to 15 s) until the expected text is there. The
//! scenarios: the deadlock demo reported and broken with `b`, then `q` and the terminal
//! restored (no alternate screen, cursor shown, cooked mode, the shell prompt back);
//! a queued task found with `/` and cancelled with `c`; running tasks on a thread and a
//! process pool killed with `x`; `q` asking while tasks run (`n` keeps running, `y`
//! stops: exit 130); the help overlay; Ctrl-C; the 80x24 layout; SIGINT, SIGTERM and
//! SIGHUP with thread- and process-pool calls and commands running (exit 130, the event
//! log complete, no process left below futuretop); a panic injected in the render path;
//! a replay ending on the live run's final screen, line for line. (One wait is a plain
//! sleep, on purpose: checking that the final screen does not move for 0.6 s.)
//!
//! Without tmux each test is skipped with a one-line message, unless `FUTURETOP_E2E=1`
//! requires it (`.ci/run` installs tmux and sets it).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futuretop::tui::input::Keymap;
use futuretop::tui::ui::help;

use crate::common::procs::{descendants, proc_stat};

const BIN: &str = env!("CARGO_BIN_EXE_futuretop");
const DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);
/// The prompt of the interactive shell some tests type their command into.
const PROMPT: &str = "ft-e2e-ready> ";

/// Whether tmux is here to drive the binary with; without it the test is skipped (a
/// newcomer's `cargo test`), unless `FUTURETOP_E2E=1` requires it (`.ci/run` sets it after
/// installing tmux).
fn tmux_here(test: &str) -> bool {
    static HERE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let here = *HERE.get_or_init(|| crate::common::installed("tmux", &["-V"]));
    crate::common::can_run(test, "tmux", here, "FUTURETOP_E2E")
}

/// A tmux server of our own with one session, `ft`; killed on drop.
struct Tmux {
    socket: String,
    /// The server's socket file, removed on drop with the server.
    socket_path: PathBuf,
}

/// A task file for one test, removed on drop.
struct TaskFile(PathBuf);

impl TaskFile {
    fn new(test: &str, yaml: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.yaml", Tmux::socket_for(test)));
        std::fs::write(&path, yaml).expect("write the task file");
        Self(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TaskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Tmux {
    fn socket_for(test: &str) -> String {
        format!("ft-e2e-{}-{test}", std::process::id())
    }

    fn tmux(socket: &str, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux must be installed to run the end-to-end tests (.ci/run installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Starts `command` (run by the shell) in a detached `w`x`h` session.
    fn start(test: &str, w: u16, h: u16, command: &str) -> Self {
        let socket = Self::socket_for(test);
        let (w, h) = (w.to_string(), h.to_string());
        Self::tmux(&socket, &["new-session", "-d", "-s", "ft", "-x", &w, "-y", &h, command]);
        let mut t = Self { socket, socket_path: PathBuf::new() };
        t.socket_path = PathBuf::from(t.pane_var("socket_path"));
        t
    }

    /// Runs `BINARY args; echo EXIT=$?; sleep 60` in a `w`x`h` session.
    fn run(test: &str, w: u16, h: u16, args: &str) -> Self {
        Self::start(test, w, h, &format!("{BIN} {args}; echo EXIT=$?; sleep 60"))
    }

    /// Opens an interactive shell with a known prompt and types the command into it,
    /// followed by a report of the exit code and of the terminal's line discipline. The
    /// reports' markers are typed quoted (`EX''IT=`, `TT''Y=`) so that the echo of the
    /// typed line, which wraps wherever the binary's path makes it, never reads as one.
    fn shell(test: &str, w: u16, h: u16, args: &str) -> Self {
        Self::shell_with(test, w, h, "", args)
    }

    /// [`Tmux::shell`] with `env` (`NAME=value ...`) set for the command.
    fn shell_with(test: &str, w: u16, h: u16, env: &str, args: &str) -> Self {
        let t = Self::start(test, w, h, &format!("env PS1='{PROMPT}' sh"));
        t.wait_for("the shell prompt", |s| s.contains(PROMPT.trim_end()));
        let line = format!(
            "{env} {BIN} {args}; echo EX''IT=$?; echo TT''Y=$(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | paste -sd, -)"
        );
        t.send_literal(&line);
        t.keys(&["Enter"]);
        t
    }

    /// Sends tmux key names (`Enter`, `Escape`, `C-c`, or single characters).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "ft"];
        args.extend_from_slice(keys);
        Self::tmux(&self.socket, &args);
    }

    /// Types `text` as it is.
    fn send_literal(&self, text: &str) {
        Self::tmux(&self.socket, &["send-keys", "-t", "ft", "-l", text]);
    }

    /// The visible pane, one line per row.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&Self::tmux(&self.socket, &["capture-pane", "-p", "-t", "ft"]).stdout).into_owned()
    }

    /// A tmux format variable of the pane (`alternate_on`, `cursor_flag`, ...).
    fn pane_var(&self, var: &str) -> String {
        let out = Self::tmux(&self.socket, &["display-message", "-p", "-t", "ft", &format!("#{{{var}}}")]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls the pane until `check` passes; returns that screen. Fails with the last
    /// complaint and screen. (A capture can catch a frame half drawn, so every check of
    /// a screen is polled, not asserted once.)
    fn wait_check(&self, what: &str, check: impl Fn(&str) -> Result<(), String>) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            match check(&s) {
                Ok(()) => return s,
                Err(e) => {
                    assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}: {e}; the screen:\n{s}");
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls the pane until `ok` holds; returns that screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_check(what, |s| if ok(s) { Ok(()) } else { Err("not yet".into()) })
    }

    fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |s| s.contains(text))
    }

    /// The futures-table row of task `name`.
    fn row(screen: &str, name: &str) -> Option<String> {
        screen.lines().find(|l| l.starts_with(&format!("│{name} "))).map(str::to_owned)
    }

    /// Polls until the row of `name` contains every one of `parts`.
    fn wait_row(&self, name: &str, parts: &[&str]) -> String {
        let s = self.wait_for(&format!("row {name} with {parts:?}"), |s| {
            Self::row(s, name).is_some_and(|r| parts.iter().all(|p| r.contains(p)))
        });
        Self::row(&s, name).unwrap_or_default()
    }

    /// Checks that the monitor gave the terminal back: no alternate screen, the cursor
    /// shown, no mouse reporting, and (for `shell` sessions) cooked mode and the prompt.
    fn assert_restored(&self, header: &str) {
        let s = self.screen();
        assert!(!s.contains(header), "the monitor's screen is gone:\n{s}");
        assert_eq!(self.pane_var("alternate_on"), "0", "the alternate screen was left:\n{s}");
        assert_eq!(self.pane_var("cursor_flag"), "1", "the cursor is shown again");
        assert_eq!(self.pane_var("mouse_any_flag"), "0", "mouse reporting is off");
        assert_eq!(self.pane_var("mouse_button_flag"), "0", "mouse reporting is off");
    }

    /// For `shell` sessions: the line discipline is back to cooked, echoing mode, and the
    /// shell prompt is on the last line.
    fn assert_shell_back(&self) {
        let s = self.wait_for("the TTY= report", |s| s.lines().any(|l| l.starts_with("TTY=")));
        let tty = s.lines().find_map(|l| l.strip_prefix("TTY=")).unwrap_or_default();
        assert_eq!(tty.trim(), "icanon,echo", "raw mode is off (stty: {tty}):\n{s}");
        let s = self.wait_for("the prompt after the run", |s| {
            s.lines().rfind(|l| !l.trim().is_empty()).is_some_and(|l| l.trim_end() == PROMPT.trim_end())
        });
        assert!(s.lines().any(|l| l.starts_with("EXIT=")), "{s}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
        if self.socket_path.starts_with(std::env::temp_dir()) || self.socket_path.to_string_lossy().contains("tmux-") {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

/// One thread worker busy with a long sleep, three tasks queued behind it.
const QUEUED: &str = "
name: queued
pools:
  one: { kind: thread, max_workers: 1 }
tasks:
  - name: blocker
    pool: one
    call: sleep
    args: { secs: 30 }
  - name: q-alpha
    pool: one
    call: sleep
    args: { secs: 0.1 }
  - name: q-beta
    pool: one
    call: sleep
    args: { secs: 0.1 }
  - name: q-gamma
    pool: one
    call: sleep
    args: { secs: 0.1 }
";

/// A long sleep on a thread pool and one on a process pool.
const LONG: &str = "
name: long-sleeps
pools:
  th: { kind: thread, max_workers: 1 }
  pr: { kind: process, max_workers: 1 }
tasks:
  - name: tsleep
    pool: th
    call: sleep
    args: { secs: 30 }
  - name: psleep
    pool: pr
    call: sleep
    args: { secs: 30 }
";

#[test]
fn the_deadlock_demo_is_reported_broken_with_b_and_q_restores_the_terminal() {
    if !tmux_here("the_deadlock_demo_is_reported_broken_with_b_and_q_restores_the_terminal") {
        return;
    }
    let t = Tmux::shell("deadlock", 120, 40, "demo deadlock-cycle");
    let s = t.wait_text("DEADLOCK");
    assert!(s.contains("'a' → 'b'"), "the banner names the cycle:\n{s}");
    assert!(s.contains("'a' → 'b' — press [b] to break it"), "and the way out:\n{s}");
    assert!(s.contains("Breaking it gives the wait of '"), "and what breaking does:\n{s}");
    assert_eq!(t.pane_var("alternate_on"), "1", "the monitor runs on the alternate screen");
    t.keys(&["b"]);
    // The victim is the last waiter: a or b, by which began to wait last.
    let s = t.wait_text("break the deadlock 'a' → 'b': the wait of '");
    assert!(
        s.contains("the wait of 'a' gets a DeadlockError? [y/N]")
            || s.contains("the wait of 'b' gets a DeadlockError? [y/N]"),
        "the question names the victim:\n{s}"
    );
    t.keys(&["y"]);
    t.wait_for("the run to end, without the banner", |s| s.contains("finished, exit 1") && !s.contains("DEADLOCK"));
    // The chosen waiter and the one that waited on it read apart.
    let (a, b) = (t.wait_row("a", &["✘ failed"]), t.wait_row("b", &["✘ failed"]));
    assert!(
        (a.contains("DeadlockErr") && b.contains("failed beca"))
            || (b.contains("DeadlockErr") && a.contains("failed beca")),
        "a: {a}\nb: {b}"
    );
    t.keys(&["q"]);
    let s = t.wait_text("EXIT=1");
    // The same summary as --headless: counts, failures with their messages, exit code.
    assert!(s.contains("2 futures: 0 done, 2 failed, 0 cancelled in "), "the summary:\n{s}");
    assert!(s.contains("failures:") && s.contains(": DeadlockError (chosen to break 'a' → 'b')"), "{s}");
    assert!(s.contains(", which it waited on, raised DeadlockError"), "the other one:\n{s}");
    assert!(s.contains("slowest:") && s.contains("\nexit code 1"), "the summary:\n{s}");
    t.assert_restored("deadlock-cycle · ");
    t.assert_shell_back();
}

/// The second deadlock of the documentation: `b` fails the waiting task, which frees the
/// one worker for the inner future; the summary after `q` counts the futures as the
/// screen does, the inner one included (the plan has one task).
#[test]
fn the_starvation_demo_is_broken_with_b_and_the_summary_counts_the_inner_future() {
    if !tmux_here("the_starvation_demo_is_broken_with_b_and_the_summary_counts_the_inner_future") {
        return;
    }
    let t = Tmux::run("starvation", 120, 40, "demo deadlock-starvation");
    let s = t.wait_text("DEADLOCK (starvation)");
    assert!(s.contains("'wait_on_future' → 'wait_on_future/pow'"), "the banner names the wait:\n{s}");
    t.keys(&["b"]);
    t.wait_text("[y/N]");
    t.keys(&["y"]);
    t.wait_row("wait_on_future", &["✘ failed", "DeadlockErr"]);
    t.wait_row("wait_on_future/pow", &["✔ done", "25"]);
    t.wait_text("finished, exit 1");
    t.keys(&["q"]);
    let s = t.wait_text("EXIT=1");
    assert!(s.contains("2 futures: 1 done, 1 failed, 0 cancelled in "), "the summary:\n{s}");
    assert!(s.contains("\nexit code 1"), "the summary:\n{s}");
    t.assert_restored("deadlock-starvation · ");
}

#[test]
fn a_queued_task_found_with_slash_is_cancelled_with_c() {
    if !tmux_here("a_queued_task_found_with_slash_is_cancelled_with_c") {
        return;
    }
    let file = TaskFile::new("cancel", QUEUED);
    let t = Tmux::run("cancel", 120, 40, &file.path());
    t.wait_row("blocker", &["▶ running"]);
    t.wait_row("q-beta", &["· pending"]);
    t.keys(&["/"]);
    t.wait_text("search: ▏");
    t.send_literal("beta");
    let s = t.wait_text("search: beta▏");
    assert!(Tmux::row(&s, "q-alpha").is_none(), "the search narrows the table:\n{s}");
    t.keys(&["Enter"]);
    t.wait_for("the search to end", |s| !s.contains("search: beta▏") && s.contains("/beta"));
    t.keys(&["c"]);
    let row = t.wait_row("q-beta", &["⊘ cancelled"]);
    assert!(!row.contains("pending"), "{row}");
    // Esc clears the search: the other queued tasks are still pending, the blocker runs.
    t.keys(&["Escape"]);
    t.wait_check("every row back, only q-beta cancelled", |s| {
        for (name, state) in [("blocker", "▶ running"), ("q-alpha", "· pending"), ("q-gamma", "· pending")] {
            if !Tmux::row(s, name).is_some_and(|r| r.contains(state)) {
                return Err(format!("{name} is not {state}"));
            }
        }
        if s.contains("⊘ cancelled 1") {
            Ok(())
        } else {
            Err("the header does not count it".into())
        }
    });
}

/// A map of 500 behind a blocker on a one-worker pool: the pool is handed a window of it,
/// and the rest shows as one row, `m[…]`, pending and not yet submitted. `c` on that row
/// cancels those items; `C` then cancels the pool's queued ones; the blocker runs on.
#[test]
fn a_windowed_map_is_cancelled_by_c_on_its_unsubmitted_row_and_by_cap_c_on_its_pool() {
    if !tmux_here("a_windowed_map_is_cancelled_by_c_on_its_unsubmitted_row_and_by_cap_c_on_its_pool") {
        return;
    }
    let yaml = format!(
        "pools:\n  one: {{ kind: thread, max_workers: 1 }}\n\
         tasks:\n\
         \x20 - {{ name: blocker, pool: one, call: sleep, args: {{ secs: 30 }} }}\n\
         \x20 - {{ name: m, pool: one, call: sleep, map: {{ secs: [{}] }} }}\n",
        vec!["0"; 500].join(", ")
    );
    let file = TaskFile::new("window", &yaml);
    let t = Tmux::run("window", 120, 40, &file.path());
    t.wait_row("blocker", &["▶ running"]);
    let row = t.wait_row("m[…]", &["· pending", "not yet"]);
    let waiting: usize = row
        .split_whitespace()
        .zip(row.split_whitespace().skip(1))
        .find(|(_, next)| *next == "not")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of unsubmitted items in {row}"));
    assert!((300..500).contains(&waiting), "most of the map waits for the window: {row}");
    // The row of unsubmitted items is the table's first: the selection starts on it.
    t.keys(&["c"]);
    let s = t.wait_text(&format!("⊘ cancelled {waiting}"));
    assert!(s.contains(&format!("cancelling the {waiting} items of 'm' not yet submitted")), "{s}");
    t.wait_for("the row of unsubmitted items to go", |s| Tmux::row(s, "m[…]").is_none());
    t.wait_row("m[0]", &["· pending"]);
    t.keys(&["C"]);
    // The question says what C takes down, and what it leaves.
    let pending = 500 - waiting;
    t.wait_text(&format!("cancel {pending} pending tasks of pool 'one'; 1 running task is not touched? [y/N]"));
    t.keys(&["y"]);
    t.wait_text("⊘ cancelled 500");
    t.wait_row("m[0]", &["⊘ cancelled"]);
    t.wait_row("blocker", &["▶ running"]);
    t.keys(&["q"]);
    t.wait_text("[y/N]");
    t.keys(&["y"]);
    t.wait_text("EXIT=130");
}

#[test]
fn x_kills_a_running_task_on_a_thread_pool_and_on_a_process_pool() {
    if !tmux_here("x_kills_a_running_task_on_a_thread_pool_and_on_a_process_pool") {
        return;
    }
    let file = TaskFile::new("kill", LONG);
    let t = Tmux::run("kill", 120, 40, &file.path());
    t.wait_row("tsleep", &["▶ running"]);
    t.wait_row("psleep", &["▶ running"]);
    // The selection starts on the first row: tsleep. x asks first; n does nothing.
    t.keys(&["x"]);
    t.wait_text("kill 'tsleep': running ");
    t.keys(&["n"]);
    t.wait_text("nothing done");
    assert!(Tmux::row(&t.screen(), "tsleep").unwrap().contains("▶ running"), "n killed nothing");
    t.keys(&["x"]);
    t.wait_text("kill 'tsleep': running ");
    t.keys(&["y"]);
    let row = t.wait_row("tsleep", &["✘ failed"]);
    assert!(row.contains("Killed"), "{row}");
    assert!(Tmux::row(&t.screen(), "psleep").unwrap().contains("▶ running"), "only the selected task died");
    t.keys(&["j"]);
    t.keys(&["x"]);
    let s = t.wait_text("kill 'psleep': running ");
    assert!(s.contains(" on pr-1, pid ") || s.contains(" on pr-2, pid "), "the worker and its pid:\n{s}");
    t.keys(&["y"]);
    let row = t.wait_row("psleep", &["✘ failed"]);
    assert!(row.contains("Killed"), "{row}");
    t.wait_text("finished, exit 1");
    t.keys(&["q"]);
    t.wait_text("EXIT=1");
    t.assert_restored("long-sleeps · ");
}

#[test]
fn q_asks_while_tasks_run_n_keeps_running_y_stops_with_130() {
    if !tmux_here("q_asks_while_tasks_run_n_keeps_running_y_stops_with_130") {
        return;
    }
    let file = TaskFile::new("quit", LONG);
    let t = Tmux::shell("quit", 120, 40, &file.path());
    t.wait_row("tsleep", &["▶ running"]);
    t.keys(&["q"]);
    t.wait_text("quit and stop them? [y/N]");
    t.keys(&["n"]);
    t.wait_text("quit cancelled");
    t.wait_row("tsleep", &["▶ running"]);
    t.wait_text("· running");
    t.keys(&["q"]);
    t.wait_text("quit and stop them? [y/N]");
    // The question stays up while the monitor's clock ticks (4 times a second).
    let asked = Instant::now();
    while asked.elapsed() < Duration::from_millis(700) {
        let s = t.screen();
        assert!(s.contains("[y/N]"), "the question went away by itself:\n{s}");
        std::thread::sleep(POLL);
    }
    t.keys(&["y"]);
    let s = t.wait_text("EXIT=130");
    assert!(s.contains("exit code 130"), "the summary:\n{s}");
    t.assert_restored("long-sleeps · ");
    t.assert_shell_back();
}

#[test]
fn the_help_overlay_lists_every_key_and_ctrl_c_stops() {
    if !tmux_here("the_help_overlay_lists_every_key_and_ctrl_c_stops") {
        return;
    }
    let file = TaskFile::new("help", LONG);
    let t = Tmux::run("help", 120, 40, &file.path());
    t.wait_row("tsleep", &["▶ running"]);
    t.keys(&["?"]);
    // Polled, not asserted once: a capture can catch the overlay half drawn.
    t.wait_check("every key in the help", |s| {
        if !s.contains("keys (any key closes, and does nothing else)") {
            return Err("no help yet".into());
        }
        match help(&Keymap::default()).into_iter().find(|(key, what)| !s.contains(&format!("{key:<15} {what}"))) {
            Some((key, _)) => Err(format!("help lists no {key:?}")),
            None => Ok(()),
        }
    });
    t.keys(&["Escape"]);
    let s = t.wait_for("the help to close", |s| !s.contains("keys (any key closes"));
    assert!(Tmux::row(&s, "tsleep").is_some(), "the table is back:\n{s}");
    // The key that closes the help does nothing else: ? then x kills nothing, ? then C
    // asks nothing.
    for k in ["x", "C"] {
        t.keys(&["?"]);
        t.wait_text("keys (any key closes");
        t.keys(&[k]);
        let s = t.wait_for("the help to close", |s| !s.contains("keys (any key closes"));
        assert!(!s.contains("[y/N]"), "{k} acted:\n{s}");
        assert!(Tmux::row(&s, "tsleep").is_some_and(|r| r.contains("▶ running")), "{k} acted:\n{s}");
    }
    t.keys(&["C-c"]);
    let s = t.wait_text("EXIT=130");
    assert!(s.contains("exit code 130"), "{s}");
    t.assert_restored("long-sleeps · ");
}

#[test]
fn the_80x24_layout_shows_header_rows_banner_and_footer() {
    if !tmux_here("the_80x24_layout_shows_header_rows_banner_and_footer") {
        return;
    }
    let t = Tmux::run("small", 80, 24, "");
    t.wait_check("the demo's screen at 80x24", |s| {
        let lines: Vec<&str> = s.lines().collect();
        let want = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        want(lines.len() == 24, "24 lines")?;
        want(lines[0].starts_with(" futuretop-demo · config.example.yaml · "), "the header")?;
        want(lines[1].contains("✔ done") && lines[1].contains("⊘ cancelled"), "the counts")?;
        want(lines[2].contains("cpu ") && lines[2].contains("mem ") && lines[2].ends_with('G'), "system figures")?;
        want(s.contains("DEADLOCK") && s.contains("press [b] to break"), "the banner and its way out")?;
        let rows = lines
            .iter()
            .filter(|l| {
                l.starts_with('│') && ["pending", "running", "blocked", "done", "failed"].iter().any(|w| l.contains(w))
            })
            .count();
        want(rows >= 6, "six task rows")?;
        want(Tmux::row(s, "warmup").is_some(), "the first task")?;
        want(s.contains("workers") && s.contains("pair (thread, "), "the workers panel")?;
        let footer = lines[23];
        for k in ["q quit", "? help", "⏎ details", "c cancel", "x kill", "b break", "/ search"] {
            want(footer.contains(k), &format!("the key line shows {k:?}"))?;
        }
        want(lines.iter().all(|l| l.chars().count() <= 80), "no line wider than the terminal")
    });
    t.keys(&["C-c"]);
    t.wait_text("EXIT=130");
    t.assert_restored("futuretop-demo · ");
}

/// A recorded log whose second task finishes 20 s after the first: the replay waits there
/// until `.` steps it on.
fn slow_log() -> String {
    use futuretop::events::Counts;
    use futuretop::events::Event;
    use futuretop::events::EventKind;
    use futuretop::events::PoolInfo;
    let kinds = [
        (
            0.0,
            EventKind::RunStarted {
                version: 1,
                run: "recorded".into(),
                file: "recorded.yaml".into(),
                pools: vec![PoolInfo { name: "io".into(), kind: futuretop::config::PoolKind::Thread, max_workers: 1 }],
                tasks: 2,
                maps: Vec::new(),
                waiting: vec![],
            },
        ),
        (0.0, EventKind::Pending { attempt: None, task: "first".into(), id: 1, pool: "io".into() }),
        (0.0, EventKind::Pending { attempt: None, task: "second".into(), id: 2, pool: "io".into() }),
        (0.0, EventKind::WorkerStarted { pool: "io".into(), worker: "io-1".into(), pid: None }),
        (0.0, EventKind::Running { task: "first".into(), id: 1, pool: "io".into(), worker: "io-1".into(), pid: None }),
        (0.1, EventKind::Done { task: "first".into(), id: 1, pool: "io".into(), result: 1.into() }),
        (0.1, EventKind::Running { task: "second".into(), id: 2, pool: "io".into(), worker: "io-1".into(), pid: None }),
        (20.0, EventKind::Done { task: "second".into(), id: 2, pool: "io".into(), result: 2.into() }),
        (
            20.0,
            EventKind::RunFinished {
                counts: Counts { done: 2, exception: 0, cancelled: 0, unfinished: 0 },
                exit_code: 0,
            },
        ),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (t, kind))| serde_json::to_string(&Event { seq: i as u64 + 1, t, kind }).expect("an event") + "\n")
        .collect()
}

#[test]
fn a_replay_is_read_only_and_steps_with_dot_to_the_final_screen() {
    if !tmux_here("a_replay_is_read_only_and_steps_with_dot_to_the_final_screen") {
        return;
    }
    let file = TaskFile::new("replay", &slow_log());
    let t = Tmux::run("replay", 120, 40, &format!("replay {}", file.path()));
    t.wait_row("second", &["▶ running"]);
    t.wait_text("recorded · recorded.yaml · 0.1s · replay");
    // Steering keys do not reach a recorded run.
    t.keys(&["j"]);
    t.keys(&["x"]);
    t.wait_text("a replay is read-only");
    // `.` sends the next event at once: second is done, then the run finished.
    t.keys(&["."]);
    t.wait_row("second", &["✔ done", "2"]);
    t.keys(&["."]);
    t.wait_check("the final screen", |s| {
        let ok = s.contains("recorded · recorded.yaml · 20.0s · finished, exit 0")
            && s.contains("✔ done 2")
            && s.contains("2/2");
        if ok {
            Ok(())
        } else {
            Err("not the log's final state".into())
        }
    });
    // Nothing runs in a replay: q leaves at once.
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
    t.assert_restored("recorded · ");
}

#[test]
fn a_replay_plays_at_its_recorded_pace_and_plus_speeds_it_up() {
    if !tmux_here("a_replay_plays_at_its_recorded_pace_and_plus_speeds_it_up") {
        return;
    }
    let file = TaskFile::new("faster", &slow_log());
    let t = Tmux::run("faster", 120, 40, &format!("replay {}", file.path()));
    t.wait_row("second", &["▶ running"]);
    // At the recorded pace the last events are 20 s away, past the deadline; 64 times
    // faster they are a third of a second away.
    t.send_literal("++++++");
    t.wait_text("20.0s · finished, exit 0");
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

/// The colours an SGR-annotated capture (`capture-pane -e`) sets: each `ESC [ ... m`
/// sequence's foreground or background parameters (`31`, `48;5;1`, ...), not the
/// attributes (bold, reverse) or the resets to the default colour (`39`, `49`).
fn colours(captured: &str) -> Vec<String> {
    let mut found = Vec::new();
    for seq in captured.split("\x1b[").skip(1) {
        let Some(end) = seq.find(|c: char| !(c.is_ascii_digit() || c == ';')) else { continue };
        if !seq[end..].starts_with('m') {
            continue;
        }
        let params: Vec<u32> = seq[..end].split(';').filter_map(|p| p.parse().ok()).collect();
        let mut i = 0;
        while i < params.len() {
            match params[i] {
                38 | 48 => {
                    let n = if params.get(i + 1) == Some(&5) { 3 } else { 5 };
                    let end = (i + n).min(params.len());
                    found.push(params[i..end].iter().map(u32::to_string).collect::<Vec<_>>().join(";"));
                    i += n;
                    continue;
                }
                p @ (30..=37 | 40..=47 | 90..=97 | 100..=107) => found.push(p.to_string()),
                _ => {}
            }
            i += 1;
        }
    }
    found
}

#[test]
fn no_color_paints_nothing_and_the_banner_still_stands_out() {
    if !tmux_here("no_color_paints_nothing_and_the_banner_still_stands_out") {
        return;
    }
    for no_color in [true, false] {
        let name = if no_color { "nocolor" } else { "color" };
        let env = if no_color { "env NO_COLOR=1 " } else { "" };
        let t = Tmux::start(name, 120, 40, &format!("{env}{BIN} demo deadlock-cycle; echo EXIT=$?; sleep 60"));
        t.wait_text("press [b] to break");
        let out = Tmux::tmux(&t.socket, &["capture-pane", "-p", "-e", "-t", "ft"]);
        let captured = String::from_utf8_lossy(&out.stdout).into_owned();
        let banner = captured.lines().find(|l| l.contains("DEADLOCK")).unwrap_or_default().to_owned();
        if no_color {
            assert_eq!(colours(&captured), Vec::<String>::new(), "NO_COLOR: no colour at all:\n{captured}");
            assert!(banner.contains("\x1b[1;7m"), "the banner is bold and reversed instead: {banner:?}");
            assert!(captured.contains("▶ blocked"), "words and symbols carry the states");
        } else {
            let c = colours(&banner);
            assert!(c.contains(&"48;5;1".to_owned()) || c.contains(&"41".to_owned()), "a red banner: {banner:?}");
        }
        t.keys(&["C-c"]);
        t.wait_text("EXIT=130");
    }
}

/// Thread and process pools each running a `sleep` call and a `sleep` command.
const SIGNALLED: &str = "
name: signalled
pools:
  th: { kind: thread, max_workers: 2 }
  pr: { kind: process, max_workers: 2 }
tasks:
  - name: tsleep
    pool: th
    call: sleep
    args: { secs: 30 }
  - name: tcmd
    pool: th
    command: [sleep, '31']
  - name: psleep
    pool: pr
    call: sleep
    args: { secs: 30 }
  - name: pcmd
    pool: pr
    command: [sleep, '32']
";

/// A signal to the monitor mid-run: exit 130, the terminal restored, the event log
/// complete, and no worker process or command left behind. The signal goes to the
/// process the shell started: the keeper of the run (src/keeper.rs), which passes it on;
/// SIGKILL, which it cannot pass on, reaches the run as a hang-up (the shell says 137).
fn signal_stops_the_run(signal: nix::sys::signal::Signal) {
    let test = format!("{signal:?}").to_lowercase();
    let file = TaskFile::new(&test, SIGNALLED);
    let pid_file = TaskFile::new(&format!("{test}-pid"), "");
    let log = std::env::temp_dir().join(format!("{}.jsonl", Tmux::socket_for(&test)));
    let exit_file = TaskFile::new(&format!("{test}-exit"), "");
    // The shell writes its pid, then becomes futuretop (exec keeps the pid); its exit
    // code goes to the screen and to a file.
    let command = format!(
        "sh -c 'echo $$ > \"$0\"; exec \"$1\" run \"$2\" --events \"$3\"' {} {BIN} {} {}; code=$?; echo $code > {}; echo EXIT=$code; sleep 60",
        pid_file.path(),
        file.path(),
        log.display(),
        exit_file.path()
    );
    let t = Tmux::start(&test, 120, 40, &command);
    for name in ["tsleep", "tcmd", "psleep", "pcmd"] {
        t.wait_row(name, &["▶ running"]);
    }
    let pid: u32 = std::fs::read_to_string(&pid_file.0).expect("the pid file").trim().parse().expect("a pid");
    // Two workers, two commands (one under its supervisor): all below futuretop now.
    let start = Instant::now();
    let mut below = descendants(pid);
    while below.len() < 5 && start.elapsed() < DEADLINE {
        std::thread::sleep(POLL);
        below = descendants(pid);
    }
    assert!(below.len() >= 5, "workers and commands below futuretop: {below:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")), signal).expect("kill");
    if signal == nix::sys::signal::Signal::SIGKILL {
        // Read from the file, not the screen: the shell says it while the run, its keeper
        // gone, may still hold the alternate screen, which takes the line with it.
        let start = Instant::now();
        while std::fs::read_to_string(&exit_file.0).unwrap_or_default().trim() != "137" {
            assert!(start.elapsed() < DEADLINE, "the keeper's exit code, 137, was not reported");
            std::thread::sleep(POLL);
        }
        // The run, on its own now, stops as on a hang-up and gives the terminal back.
        let start = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("\"event\":\"run_finished\"") {
            assert!(start.elapsed() < DEADLINE, "the run did not stop after its keeper was killed");
            std::thread::sleep(POLL);
        }
        t.wait_text("exit code 130");
    } else {
        let s = t.wait_text("EXIT=130");
        assert!(s.contains("exit code 130"), "the run was stopped:\n{s}");
    }
    t.assert_restored("signalled · ");
    let logged = std::fs::read_to_string(&log).expect("the event log");
    let _ = std::fs::remove_file(&log);
    let last: serde_json::Value = serde_json::from_str(logged.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["event"], "run_finished", "{last}");
    assert_eq!(last["exit_code"], 130, "{last}");
    // Gone, or a zombie, or a pid since reused by a process with another start time.
    let gone = |(p, start, _): &(u32, u64, String)| proc_stat(*p).is_none_or(|(_, s)| s != *start);
    let start = Instant::now();
    while !below.iter().all(gone) {
        assert!(start.elapsed() < DEADLINE, "left behind: {:?}", below.iter().filter(|p| !gone(p)).collect::<Vec<_>>());
        std::thread::sleep(POLL);
    }
}

#[test]
fn sigterm_stops_the_run_and_restores_the_terminal() {
    if !tmux_here("sigterm_stops_the_run_and_restores_the_terminal") {
        return;
    }
    signal_stops_the_run(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_stops_the_run_and_restores_the_terminal() {
    if !tmux_here("sigint_stops_the_run_and_restores_the_terminal") {
        return;
    }
    signal_stops_the_run(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigkill_of_the_keeper_stops_the_run_and_leaves_nothing_behind() {
    if !tmux_here("sigkill_of_the_keeper_stops_the_run_and_leaves_nothing_behind") {
        return;
    }
    signal_stops_the_run(nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn sighup_stops_the_run_and_restores_the_terminal() {
    if !tmux_here("sighup_stops_the_run_and_restores_the_terminal") {
        return;
    }
    signal_stops_the_run(nix::sys::signal::Signal::SIGHUP);
}

/// Every line of a screen but the last two (the log line and the key hints, which
/// differ between a live run and a replay by design).
fn body(screen: &str) -> Vec<String> {
    // A replay's header also shows its pace (` · replay 8x`).
    let lines: Vec<String> =
        screen.lines().map(|l| l.split_once(" · replay ").map_or(l, |(head, _)| head).trim_end().to_owned()).collect();
    lines[..lines.len().saturating_sub(2)].to_vec()
}

#[test]
fn a_replay_ends_on_the_live_runs_final_screen() {
    if !tmux_here("a_replay_ends_on_the_live_runs_final_screen") {
        return;
    }
    // Long enough for system samples (about one a second) and many sparkline samples;
    // a thread pool and a process pool, failures and results.
    let yaml = "name: same-screen
pools:
  io: { kind: thread, max_workers: 2 }
  cpu: { kind: process, max_workers: 2 }
tasks:
  - name: nap
    pool: io
    call: sleep
    map: { secs: [0.3, 0.6, 0.9, 1.2, 0.4, 0.7] }
  - name: burn
    pool: cpu
    call: spin
    map: { secs: [0.5, 1.0, 1.5, 0.2] }
  - name: broken
    pool: io
    call: fail
    args: { message: on purpose }
";
    let file = TaskFile::new("same", yaml);
    let log = std::env::temp_dir().join(format!("{}.jsonl", Tmux::socket_for("same")));
    let live = Tmux::run("same", 160, 45, &format!("run {} --events {}", file.path(), log.display()));
    let live_screen = live.wait_text("finished, exit 1");
    // Let a few more clock ticks pass: the final screen must not move after the end.
    std::thread::sleep(Duration::from_millis(600));
    let live_screen_later = live.screen();
    assert_eq!(body(&live_screen), body(&live_screen_later), "the live screen moved after the run ended");
    live.keys(&["q"]);
    live.wait_text("EXIT=1");

    let replay = Tmux::run("same-replay", 160, 45, &format!("replay {}", log.display()));
    replay.wait_text("same-screen");
    replay.send_literal("+++");
    let replay_screen = replay.wait_text("finished, exit 1");
    let _ = std::fs::remove_file(&log);
    assert!(live_screen.contains("cpu ") && !live_screen.contains("cpu –"), "no system figures:\n{live_screen}");
    assert_eq!(body(&live_screen), body(&replay_screen), "live:\n{live_screen}\nreplay:\n{replay_screen}");
}

#[test]
fn a_panic_in_the_render_path_restores_the_terminal_prints_once_and_completes_the_log() {
    if !tmux_here("a_panic_in_the_render_path_restores_the_terminal_prints_once_and_completes_the_log") {
        return;
    }
    let file = TaskFile::new("panic", QUEUED);
    let log = std::env::temp_dir().join(format!("{}.jsonl", Tmux::socket_for("panic")));
    // (No backtrace: the screen is checked for the message alone.)
    let fault = format!("RUST_BACKTRACE=0 {}=render-panic", futuretop::tui::FAULT_ENV);
    let t = Tmux::shell_with("panic", 120, 40, &fault, &format!("run {} --events {}", file.path(), log.display()));
    let s = t.wait_text("EXIT=101");
    t.assert_restored("queued · ");
    t.assert_shell_back();
    assert_eq!(s.matches("injected fault: a panic in the render path").count(), 1, "the message once:\n{s}");
    assert!(s.contains("the monitor stopped on the error above"), "{s}");
    // The run was stopped, and its log ends with `run_finished` (exit 130: interrupted).
    let text = std::fs::read_to_string(&log).expect("the event log");
    let _ = std::fs::remove_file(&log);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["event"], "run_finished", "{last}");
    assert_eq!(last["exit_code"], 130, "{last}");
}

/// `--no-mouse` leaves the mouse to the terminal (to select text); without it the monitor
/// takes it. tmux says which: `mouse_any_flag` is the pane's mouse reporting.
#[test]
fn no_mouse_leaves_the_mouse_to_the_terminal() {
    if !tmux_here("no_mouse_leaves_the_mouse_to_the_terminal") {
        return;
    }
    let file = TaskFile::new("mouse", LONG);
    for (flag, want) in [("", "1"), (" --no-mouse", "0")] {
        let name = if flag.is_empty() { "mouse-on" } else { "mouse-off" };
        let t = Tmux::run(name, 120, 40, &format!("run {}{flag}", file.path()));
        t.wait_row("tsleep", &["▶ running"]);
        assert_eq!(t.pane_var("mouse_any_flag"), want, "mouse reporting with {flag:?}");
        t.keys(&["C-c"]);
        t.wait_text("EXIT=130");
        assert_eq!(t.pane_var("mouse_any_flag"), "0", "given back on the way out");
    }
}

/// `TERM=dumb` cannot draw the monitor: the run goes headless and says so.
#[test]
fn term_dumb_runs_headless_with_a_note() {
    if !tmux_here("term_dumb_runs_headless_with_a_note") {
        return;
    }
    let file = TaskFile::new("dumb", "tasks:\n  - { name: quick, call: sleep, args: { secs: 0.1 } }\n");
    let t = Tmux::shell_with("dumb", 120, 40, "TERM=dumb", &file.path());
    let s = t.wait_text("EXIT=0");
    assert!(s.contains("futuretop: TERM=dumb cannot show the monitor: running headless"), "{s}");
    assert!(s.contains("1 futures: 1 done, 0 failed, 0 cancelled in "), "the headless summary:\n{s}");
    assert_eq!(t.pane_var("alternate_on"), "0", "no full-screen UI");
}

/// `futuretop completions bash`, sourced in a real bash: Tab completes a subcommand.
#[test]
fn bash_completes_the_subcommands() {
    if !tmux_here("bash_completes_the_subcommands") {
        return;
    }
    if !crate::common::installed("bash", &["--version"]) {
        println!("skipped: bash is not installed");
        return;
    }
    let t = Tmux::start("complete", 120, 20, &format!("env PS1='{PROMPT}' bash --norc --noprofile"));
    t.wait_for("the prompt", |s| s.contains(PROMPT.trim_end()));
    t.send_literal(&format!("source <({BIN} completions bash); echo SOURCED=$?"));
    t.keys(&["Enter"]);
    t.wait_text("SOURCED=0");
    t.send_literal("futuretop rep");
    t.keys(&["Tab"]);
    t.wait_text("> futuretop replay");
    t.keys(&["C-u"]);
    t.send_literal("futuretop run --on-deadlock ");
    t.keys(&["Tab", "Tab"]);
    t.wait_check("the policies listed", |s| {
        if ["warn", "fail", "break"].iter().all(|p| s.contains(p)) {
            Ok(())
        } else {
            Err("not every --on-deadlock value".into())
        }
    });
}

/// The filter language, typed as a user would: fields, negation, `Ctrl-U`, and the
/// message when nothing matches.
#[test]
fn slash_filters_by_state_and_name_and_says_when_nothing_matches() {
    if !tmux_here("slash_filters_by_state_and_name_and_says_when_nothing_matches") {
        return;
    }
    let file = TaskFile::new("filter", QUEUED);
    let t = Tmux::run("filter", 120, 40, &file.path());
    t.wait_row("q-beta", &["· pending"]);
    t.keys(&["/"]);
    t.send_literal("state:pending !name:beta");
    let s = t.wait_text("search: state:pending !name:beta▏");
    for (name, shown) in [("q-alpha", true), ("q-gamma", true), ("q-beta", false), ("blocker", false)] {
        assert_eq!(Tmux::row(&s, name).is_some(), shown, "{name}:\n{s}");
    }
    t.keys(&["C-u"]);
    t.wait_for("the text cleared and every row back", |s| {
        s.contains("search: ▏") && Tmux::row(s, "blocker").is_some() && Tmux::row(s, "q-beta").is_some()
    });
    t.send_literal("zebra");
    t.wait_text("no task matches 'zebra'");
    t.keys(&["Escape"]);
    t.wait_for("the filter gone", |s| Tmux::row(s, "q-beta").is_some() && !s.contains("zebra"));
}

/// `--color never` paints nothing, whatever the terminal; `--color always` paints even
/// under `NO_COLOR`.
#[test]
fn color_never_and_always_override_the_environment() {
    if !tmux_here("color_never_and_always_override_the_environment") {
        return;
    }
    for (env, flag, coloured) in [("", "--color never", false), ("env NO_COLOR=1 ", "--color always", true)] {
        let name = if coloured { "color-always" } else { "color-never" };
        let t = Tmux::start(name, 120, 40, &format!("{env}{BIN} demo deadlock-cycle {flag}; echo EXIT=$?; sleep 60"));
        t.wait_text("press [b] to break");
        let out = Tmux::tmux(&t.socket, &["capture-pane", "-p", "-e", "-t", "ft"]);
        let captured = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(!colours(&captured).is_empty(), coloured, "{env}{flag}:\n{captured}");
    }
}

/// A command that printed 1,000 lines, then a line on stderr, then sleeps: its details
/// show the last 50 lines published (stdout's held-back tail comes out within a second,
/// after the stderr line), the last one included, and count the 951 before them.
#[test]
fn details_show_the_real_tail_of_a_commands_output() {
    if !tmux_here("details_show_the_real_tail_of_a_commands_output") {
        return;
    }
    let file = TaskFile::new(
        "tail",
        "tasks:\n  - { name: chatty, command: [sh, -c, 'seq 1 1000; echo on stderr >&2; sleep 30'] }\n",
    );
    let t = Tmux::run("tail", 120, 40, &file.path());
    t.wait_row("chatty", &["▶ running"]);
    // The footer shows the last line published: stdout's held-back tail comes out within
    // a second, after the stderr line printed meanwhile.
    t.wait_text(" chatty: 1000");
    t.keys(&["Enter"]);
    let s = t.wait_text("output: the last 50 lines, both streams (951 earlier lines not shown)");
    assert!(s.contains("│  951 "), "the ring's first line:\n{s}");
    t.keys(&["G"]);
    let s = t.wait_for("the end of the output", |s| s.contains("│  1000 ") && !s.contains("│  951 "));
    t.keys(&["j", "j", "PageDown"]);
    // (A plain sleep, on purpose: the keys must change nothing.)
    std::thread::sleep(POLL * 4);
    assert_eq!(body(&t.screen())[3..], body(&s)[3..], "no scrolling past the end (the clock in the header moves)");
    t.keys(&["C-c"]);
    t.wait_text("EXIT=130");
}

/// Space pauses the live view: the table stands still while the header keeps counting;
/// Space again shows the run as it is.
#[test]
fn space_pauses_the_view_and_the_header_keeps_counting() {
    if !tmux_here("space_pauses_the_view_and_the_header_keeps_counting") {
        return;
    }
    let file = TaskFile::new(
        "pause",
        "pools:\n  io: { kind: thread, max_workers: 2 }\ntasks:\n\
         \x20 - { name: quick, pool: io, call: sleep, args: { secs: 1 } }\n\
         \x20 - { name: long, pool: io, call: sleep, args: { secs: 30 } }\n",
    );
    let t = Tmux::run("pause", 120, 40, &file.path());
    t.wait_row("quick", &["▶ running"]);
    t.keys(&["Space"]);
    t.wait_text("running · paused (Space resumes)");
    let s = t.wait_text("✔ done 1");
    assert!(Tmux::row(&s, "quick").is_some_and(|r| r.contains("▶ running")), "the table stood still:\n{s}");
    t.keys(&["Space"]);
    t.wait_row("quick", &["✔ done"]);
    t.keys(&["C-c"]);
    t.wait_text("EXIT=130");
}

/// A preferences file that rebinds `x` to `K` (for a layout where x is awkward): `x`
/// does nothing, `K` kills, the help shows `K`; a file with a mistake is refused with its
/// position before anything runs.
#[test]
fn a_preferences_file_rebinds_kill_and_a_bad_one_is_refused_with_its_position() {
    if !tmux_here("a_preferences_file_rebinds_kill_and_a_bad_one_is_refused_with_its_position") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("{}-xdg", Tmux::socket_for("prefs")));
    std::fs::create_dir_all(dir.join("futuretop")).expect("a config dir");
    let prefs = dir.join("futuretop").join("config.yaml");
    std::fs::write(&prefs, "keys:\n  kill: K\nconfirm: true\n").expect("the preferences");
    let file = TaskFile::new("prefs", LONG);
    let env = format!("XDG_CONFIG_HOME={}", dir.display());
    let t = Tmux::shell_with("prefs", 120, 40, &env, &file.path());
    t.wait_row("tsleep", &["▶ running"]);
    t.keys(&["x"]);
    t.keys(&["?"]);
    let s = t.wait_text("keys (any key closes");
    assert!(
        s.contains(&format!("{:<15} kill the selected running task", "K")),
        "the help shows the key as bound:\n{s}"
    );
    assert!(!s.contains("[y/N]"), "x did nothing:\n{s}");
    t.keys(&["Escape"]);
    t.wait_for("the help to close", |s| !s.contains("keys (any key closes"));
    t.keys(&["K"]);
    t.wait_text("kill 'tsleep': running ");
    t.keys(&["y"]);
    t.wait_row("tsleep", &["✘ failed"]);
    t.keys(&["C-c"]);
    t.wait_text("EXIT=130");

    std::fs::write(&prefs, "keys:\n  kill: j\n").expect("the preferences");
    let t = Tmux::shell_with("prefs-bad", 120, 40, &env, &file.path());
    let s = t.wait_text("EXIT=2");
    assert!(
        s.contains(&format!("{}:2:9: key 'j' is bound to both 'down' and 'kill'", prefs.display())),
        "the problem, placed:\n{s}"
    );
    assert!(!s.contains("long-sleeps ·"), "nothing ran:\n{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a replay, `n` jumps to the next failure (and pauses there), `,` steps back one
/// event, and `c` still answers that a replay is read-only.
#[test]
fn a_replay_jumps_to_a_failure_with_n_and_steps_back_with_comma() {
    if !tmux_here("a_replay_jumps_to_a_failure_with_n_and_steps_back_with_comma") {
        return;
    }
    let file = TaskFile::new(
        "jump",
        "name: jumps\npools:\n  io: { kind: thread, max_workers: 1 }\ntasks:\n\
         \x20 - { name: first, pool: io, call: sleep, args: { secs: 0.2 } }\n\
         \x20 - { name: broken, pool: io, call: fail, args: { message: on purpose } }\n\
         \x20 - { name: last, pool: io, call: sleep, args: { secs: 0.2 } }\n",
    );
    let log = std::env::temp_dir().join(format!("{}.jsonl", Tmux::socket_for("jump")));
    let out = Command::new(BIN)
        .args(["run", &file.path(), "--headless", "--events"])
        .arg(&log)
        .output()
        .expect("the recorded run");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let t = Tmux::run("jump", 120, 40, &format!("replay {}", log.display()));
    let s = t.wait_text("jumps · ");
    assert!(s.contains("␣ pause  . step  , back"), "the footer lists the replay keys:\n{s}");
    assert!(!s.contains("x kill"), "not the live ones:\n{s}");
    t.keys(&["n"]);
    t.wait_row("broken", &["✘ failed", "TaskError"]);
    t.wait_text("replay paused");
    assert!(Tmux::row(&t.screen(), "last").is_some_and(|r| r.contains("· pending")), "paused at the failure");
    t.keys(&[","]);
    t.wait_row("broken", &["▶ running"]);
    t.keys(&["c"]);
    t.wait_text("a replay is read-only");
    t.keys(&["q"]);
    t.wait_text("EXIT=1");
    let _ = std::fs::remove_file(&log);
}

/// The workers panel, given the focus with Tab: `G` shows its last worker and the arrows
/// stop there; `g` goes back to its top.
#[test]
fn the_workers_panel_scrolls_to_its_end_and_no_further() {
    if !tmux_here("the_workers_panel_scrolls_to_its_end_and_no_further") {
        return;
    }
    let naps = vec!["30"; 40].join(", ");
    let file = TaskFile::new(
        "workers",
        &format!("pools:\n  io: {{ kind: thread, max_workers: 40 }}\ntasks:\n  - {{ name: nap, pool: io, call: sleep, map: {{ secs: [{naps}] }} }}\n"),
    );
    let t = Tmux::run("workers", 120, 30, &file.path());
    t.wait_text("io (thread, 40/40 busy");
    t.keys(&["Tab", "G"]);
    // The panel's row of io-40 (the futures table names workers too, in its own column).
    let last_worker = |s: &str| s.contains("│  io-40 ");
    let end = t.wait_for("io-40 in the workers panel", last_worker);
    assert!(!end.contains("io (thread, "), "scrolled past the pool's head:\n{end}");
    t.keys(&["j", "j", "End"]);
    let again = t.wait_for("io-40 in the workers panel", last_worker);
    // The workers shown (their time bars move with the clock).
    let shown = |s: &str| s.split_whitespace().filter(|w| w.starts_with("io-")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(shown(&again), shown(&end), "no scrolling past the last worker");
    t.keys(&["g"]);
    t.wait_text("io (thread, 40/40 busy");
    t.keys(&["C-c"]);
    t.wait_text("EXIT=130");
}

/// Under `--on-deadlock fail` the monitor's last screen says a deadlock ended the run.
#[test]
fn on_deadlock_fail_says_so_on_the_final_screen() {
    if !tmux_here("on_deadlock_fail_says_so_on_the_final_screen") {
        return;
    }
    let t = Tmux::run("fail", 120, 40, "demo deadlock-cycle --on-deadlock fail");
    t.wait_text("stopped: deadlock 'a' → 'b' (--on-deadlock fail), exit 3");
    t.keys(&["q"]);
    let s = t.wait_text("EXIT=3");
    assert!(s.contains("stopped: deadlock 'a' → 'b' (--on-deadlock fail)\nexit code 3"), "the summary:\n{s}");
}

/// A run that stops moving raises the stall banner, naming what runs; the banner goes
/// when a future moves again.
#[test]
fn a_stalled_run_raises_the_stall_banner_until_something_moves() {
    if !tmux_here("a_stalled_run_raises_the_stall_banner_until_something_moves") {
        return;
    }
    let file = TaskFile::new("stall", "tasks:\n  - { name: hang, command: [sleep, '3'] }\n");
    let t = Tmux::run("stall", 120, 40, &format!("run {} --stall-after 1", file.path()));
    let s = t.wait_text("STALLED: no future has changed state for");
    assert!(s.contains("running: 'hang' ") && s.contains(" on default-1; 0 pending"), "{s}");
    t.wait_for("the banner to go when hang ends", |s| s.contains("finished, exit 0") && !s.contains("STALLED"));
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

/// `r` on a failed task: the question says what follows; `y` runs it again (its second
/// attempt succeeds) and its cancelled dependents after it; the log records it.
#[test]
fn r_resubmits_a_failed_task_and_its_cancelled_dependents_follow() {
    if !tmux_here("r_resubmits_a_failed_task_and_its_cancelled_dependents_follow") {
        return;
    }
    let file = TaskFile::new(
        "resubmit",
        "pools: { io: { kind: thread, max_workers: 2 }, hold: { kind: thread, max_workers: 1 } }\n\
         tasks:\n\
         \x20 - { name: hold, pool: hold, call: sleep, args: { secs: 60 } }\n\
         \x20 - { name: flaky, pool: io, command: [sh, -c, '[ \"$FUTURETOP_ATTEMPT\" -ge 2 ]'] }\n\
         \x20 - { name: after, pool: io, call: pow, args: { base: 2, exp: 3 }, depends_on: [flaky] }\n\
         \x20 - { name: last, pool: io, call: pow, args: { base: 2, exp: 4 }, depends_on: [after] }\n",
    );
    let log = std::env::temp_dir().join(format!("{}.jsonl", Tmux::socket_for("resubmit")));
    let t = Tmux::run("resubmit", 160, 40, &format!("run {} --events {}", file.path(), log.display()));
    t.wait_row("last", &["⊘ cancelled", "dependency 'after' was cancelled"]);
    // `r` on a task cancelled for a dependency points at the one to run again.
    t.keys(&["/"]);
    t.send_literal("name:last");
    t.keys(&["Enter"]);
    t.keys(&["r"]);
    t.wait_text("cannot resubmit 'last': it was cancelled because of 'after'");
    t.keys(&["Escape", "/"]);
    t.send_literal("name:flaky");
    t.keys(&["Enter"]);
    t.keys(&["r"]);
    t.wait_text("resubmit 'flaky' and its 2 cancelled dependents? [y/N]");
    t.keys(&["y"]);
    t.keys(&["Escape"]);
    t.wait_row("flaky", &["✔ done", "attempt 2/2"]);
    t.wait_row("after", &["✔ done", "8"]);
    t.wait_row("last", &["✔ done", "16"]);
    t.wait_text("✘ failed 0  ⊘ cancelled 0");
    t.keys(&["q"]);
    t.wait_text("[y/N]");
    t.keys(&["y"]);
    t.wait_text("EXIT=130");
    let text = std::fs::read_to_string(&log).expect("the event log");
    let _ = std::fs::remove_file(&log);
    assert!(text.contains(r#""event":"resubmit","task":"flaky","attempt":2"#), "{text}");
}

/// Every reason a future waits shows in the table's last column of the real monitor:
/// its place in its pool's queue, what it waits for and how much of it is done, a
/// retry's countdown, a broken pool, the items not yet handed over; and for a running
/// one, computing or blocked on another.
#[test]
fn every_pending_reason_shows_in_the_monitor() {
    if !tmux_here("every_pending_reason_shows_in_the_monitor") {
        return;
    }
    let yaml = format!(
        "pools:\n\
         \x20 one: {{ kind: thread, max_workers: 1 }}\n\
         \x20 two: {{ kind: thread, max_workers: 1 }}\n\
         \x20 three: {{ kind: thread, max_workers: 1 }}\n\
         \x20 cpu: {{ kind: process, max_workers: 1 }}\n\
         tasks:\n\
         \x20 - {{ name: blocker, pool: one, call: sleep, args: {{ secs: 60 }} }}\n\
         \x20 - {{ name: queued-a, pool: one, call: sleep, args: {{ secs: 0 }} }}\n\
         \x20 - {{ name: queued-b, pool: one, call: sleep, args: {{ secs: 0 }} }}\n\
         \x20 - {{ name: waiter, pool: two, call: wait_on, args: {{ task: queued-b }} }}\n\
         \x20 - {{ name: later, pool: two, call: sleep, args: {{ secs: 0 }}, depends_on: [queued-a, queued-b] }}\n\
         \x20 - {{ name: flaky, pool: three, call: fail, retries: 2, retry_delay: 300 }}\n\
         \x20 - {{ name: boom, pool: cpu, call: crash }}\n\
         \x20 - {{ name: stranded, pool: cpu, call: pow, args: {{ base: 2, exp: 2 }}, depends_on: [blocker] }}\n\
         \x20 - {{ name: m, pool: one, call: sleep, map: {{ secs: [{}] }} }}\n",
        vec!["0"; 300].join(", ")
    );
    let file = TaskFile::new("reasons", &yaml);
    // Tall enough for every row: the map's window of 68 and the others.
    let t = Tmux::run("reasons", 160, 100, &file.path());
    t.wait_row("blocker", &["▶ running", "computing"]);
    t.wait_row("queued-a", &["· pending", "#1 in queue 'one'"]);
    t.wait_row("queued-b", &["· pending", "#2 in queue 'one'"]);
    t.wait_row("waiter", &["▶ blocked", "blocked on 'queued-b' for"]);
    t.wait_row("later", &["· pending", "after 'queued-a' (0 of 2 done)"]);
    t.wait_row("flaky", &["· pending", "retry 2/3 in"]);
    t.wait_row("stranded", &["· pending", "pool 'cpu' is broken"]);
    t.wait_row("m[…]", &["· pending", "not yet submitted (window)"]);
    t.keys(&["q"]);
    t.wait_text("[y/N]");
    t.keys(&["y"]);
    t.wait_text("EXIT=130");
}

/// `futuretop demo flaky` shows, within twenty seconds, retries (a task on its third
/// attempt), a timeout, a stall, and the critical path under `p`.
#[test]
fn the_flaky_demo_shows_retries_a_stall_and_the_critical_path() {
    if !tmux_here("the_flaky_demo_shows_retries_a_stall_and_the_critical_path") {
        return;
    }
    let started = Instant::now();
    let t = Tmux::run("flaky", 160, 50, "demo flaky");
    // What stays on screen: each step is polled, and none lasts less than two seconds.
    t.wait_row("fetch-orders", &["✔ done", "attempt 3/3"]);
    t.wait_row("fetch-stock", &["✔ done", "attempt 2/3"]);
    t.wait_text("STALLED: no future has changed state for");
    t.keys(&["p"]);
    let s = t.wait_text("critical path");
    assert!(s.contains("report"), "{s}");
    t.keys(&["Escape"]);
    t.wait_text("finished, exit 0");
    assert!(started.elapsed() < Duration::from_secs(20), "the demo took {:?}", started.elapsed());
    // The first attempt of fetch-stock ran into its timeout: its details say so.
    t.keys(&["/"]);
    t.send_literal("name:fetch-stock");
    t.keys(&["Enter", "Enter"]);
    let s = t.wait_text("attempts: 2 of 3 allowed");
    assert!(s.contains("TimeoutError: ran past its timeout of 1.5 s and was stopped"), "{s}");
    t.keys(&["Escape"]);
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

/// `futuretop` with `XDG_RUNTIME_DIR` set to `rt` (its own state directory).
fn futuretop_in(rt: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("XDG_RUNTIME_DIR", rt).output().expect("futuretop runs")
}

/// A state directory of a test's own: on drop, the run it holds is stopped (a failed
/// step leaves nothing running) and the directory removed.
struct StateDir(PathBuf, std::cell::RefCell<Option<String>>);

impl Drop for StateDir {
    fn drop(&mut self) {
        if let Some(id) = self.1.borrow().as_deref() {
            let _ = futuretop_in(&self.0, &["stop", id]);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One thread worker busy with a sleep far longer than the test, tasks queued behind it.
const ATTACHED: &str = "
name: queued
pools:
  one: { kind: thread, max_workers: 1 }
tasks:
  - { name: blocker, pool: one, call: sleep, args: { secs: 600 } }
  - { name: q-alpha, pool: one, call: sleep, args: { secs: 0.1 } }
  - { name: q-beta, pool: one, call: sleep, args: { secs: 0.1 } }
  - { name: q-gamma, pool: one, call: sleep, args: { secs: 0.1 } }
";

/// Issue 19: `run --detach`, `ls`, then `attach` in a terminal; a second monitor at once
/// catches up and sees what the first did; `d` detaches; the first terminal killed leaves
/// the run going; attached again, `x` kills a task; `q` once the run ended; `wait` gives
/// the run's exit code. Every request is in the log with its client.
#[test]
fn a_detached_run_is_attached_steered_detached_and_reattached() {
    if !tmux_here("a_detached_run_is_attached_steered_detached_and_reattached") {
        return;
    }
    let state = state_dir_for("attach");
    let rt = state.0.clone();
    let file = TaskFile::new("attach", ATTACHED);
    let (id, said) = start_detached(&state, &file);
    assert!(said.contains(&format!("(queued) — futuretop attach {id}")), "{said}");
    assert_listed_running(&rt, &id);
    let attach = format!("env XDG_RUNTIME_DIR={} {BIN} attach {id}; echo EXIT=$?; sleep 60", rt.display());
    // The first monitor: cancel q-beta.
    let first = Tmux::start("attach-1", 120, 40, &attach);
    first.wait_row("blocker", &["▶ running"]);
    first.wait_row("q-beta", &["· pending"]);
    first.keys(&["/"]);
    first.wait_text("search: ▏");
    first.send_literal("beta");
    first.keys(&["Enter"]);
    first.wait_for("the search to end", |s| !s.contains("search: beta▏") && s.contains("/beta"));
    first.keys(&["c"]);
    first.wait_row("q-beta", &["⊘ cancelled"]);
    // A second monitor at once: it catches up on the run so far, the cancel included.
    let second = Tmux::start("attach-2", 120, 40, &attach);
    second.wait_row("q-beta", &["⊘ cancelled"]);
    second.wait_row("blocker", &["▶ running"]);
    // `d` detaches it; the run goes on.
    second.keys(&["d"]);
    second.wait_text(&format!("detached from run {id} (queued)"));
    second.wait_text("EXIT=0");
    // The first terminal goes away with its monitor: the run does not notice.
    drop(first);
    assert_listed_running(&rt, &id);
    // Attached again: `q` asks, Esc keeps it; `x` kills the blocker; the queue runs on.
    let third = Tmux::start("attach-3", 120, 40, &attach);
    third.wait_row("blocker", &["▶ running"]);
    third.keys(&["q"]);
    third.wait_text("detach (d) or stop the run (s)?");
    third.keys(&["Escape"]);
    third.wait_text("quit cancelled");
    third.keys(&["x"]);
    third.wait_text("kill 'blocker': running ");
    third.keys(&["y"]);
    let row = third.wait_row("blocker", &["✘ failed"]);
    assert!(row.contains("Killed"), "{row}");
    third.wait_row("q-gamma", &["✔ done"]);
    third.wait_text("finished, exit 1");
    third.keys(&["q"]);
    third.wait_text("EXIT=1");
    third.assert_restored("queued · ");
    assert_eq!(futuretop_in(&rt, &["wait", &id]).status.code(), Some(1));
    // Every client and request is in the log.
    let log = std::fs::read_to_string(rt.join("futuretop").join(format!("{id}.jsonl"))).unwrap();
    let clients: Vec<&str> = log.lines().filter(|l| l.contains("\"event\":\"client\"")).collect();
    for action in ["\"attached\"", "\"cancel\"", "\"kill\"", "\"detached\""] {
        assert!(clients.iter().any(|l| l.contains(action)), "no {action} in {clients:#?}");
    }
}

/// `futuretop run FILE --detach` in `state`'s directory, which stops the run when the
/// test ends: the run's id, and what the command said.
fn start_detached(state: &StateDir, file: &TaskFile) -> (String, String) {
    let out = futuretop_in(&state.0, &["run", &file.path(), "--detach"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{said}");
    let id = said
        .strip_prefix("started run ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no run id in {said:?}"))
        .to_owned();
    *state.1.borrow_mut() = Some(id.clone());
    (id, said)
}

/// `futuretop ls` in state directory `rt` lists run `id` as running.
fn assert_listed_running(rt: &std::path::Path, id: &str) {
    let listed = String::from_utf8_lossy(&futuretop_in(rt, &["ls"]).stdout).into_owned();
    assert!(listed.lines().any(|l| l.starts_with(id) && l.contains("running")), "{listed}");
}

/// The shell command that runs `file` in the foreground with the monitor, its state
/// directory and state home under `rt`, then says its exit code and stays.
fn run_in_foreground(rt: &std::path::Path, file: &TaskFile) -> String {
    format!(
        "env XDG_RUNTIME_DIR={} XDG_STATE_HOME={} {BIN} run {}; echo EXIT=$?; sleep 60",
        rt.display(),
        rt.join("state").display(),
        file.path()
    )
}

/// A state directory of a test's own, made 0700 (the directory `futuretop` checks).
fn state_dir_for(test: &str) -> StateDir {
    use std::os::unix::fs::PermissionsExt;
    let rt = std::env::temp_dir().join(format!("{}-rt", Tmux::socket_for(test)));
    let _ = std::fs::remove_dir_all(&rt);
    std::fs::create_dir_all(&rt).expect("the state directory");
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).expect("its mode");
    StateDir(rt, None.into())
}

/// Issue 19: `d` on a run started in the foreground (`futuretop run FILE`): the terminal
/// is restored with a message saying how to come back, the shell has its prompt (exit
/// 0), the run goes on after the terminal is gone, `attach` catches up on it and steers
/// it, and its output file ends with its summary. A run in the foreground that is not
/// detached leaves no log behind.
#[test]
fn d_sends_a_run_in_the_foreground_to_the_background_and_attach_brings_it_back() {
    if !tmux_here("d_sends_a_run_in_the_foreground_to_the_background_and_attach_brings_it_back") {
        return;
    }
    let state = state_dir_for("fg-detach");
    let rt = state.0.clone();
    let dir = rt.join("futuretop");
    let file = TaskFile::new("fg-detach", ATTACHED);
    // The log such a run keeps for attach goes to the state home (on disk), not to the
    // runtime directory (memory).
    let logs = rt.join("state").join("futuretop");
    let run = run_in_foreground(&rt, &file);
    let first = Tmux::start("fg-detach-1", 120, 40, &run);
    first.wait_row("blocker", &["▶ running"]);
    first.wait_row("q-alpha", &["· pending"]);
    // q asks, and says d detaches; d then leaves the run going.
    first.keys(&["q"]);
    first.wait_text("quit and stop them? [y/N] (d: detach, the run goes on)");
    first.keys(&["d"]);
    let s = first.wait_text("EXIT=0");
    let id = s
        .lines()
        .find_map(|l| l.strip_prefix("detached from run "))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no message:\n{s}"))
        .to_owned();
    *state.1.borrow_mut() = Some(id.clone());
    assert!(s.contains(&format!("detached from run {id} (queued) — futuretop attach {id}")), "{s}");
    first.assert_restored("queued · ");
    // The terminal goes away: the run does not notice.
    drop(first);
    assert_listed_running(&rt, &id);
    // Attached: it catches up from the run's log, and its keys act on the run.
    let attach = format!("env XDG_RUNTIME_DIR={} {BIN} attach; echo EXIT=$?; sleep 60", rt.display());
    let second = Tmux::start("fg-detach-2", 120, 40, &attach);
    second.wait_row("blocker", &["▶ running"]);
    second.wait_row("q-alpha", &["· pending"]);
    second.keys(&["x"]);
    second.wait_text("kill 'blocker': running ");
    second.keys(&["y"]);
    second.wait_row("blocker", &["✘ failed"]);
    second.wait_row("q-gamma", &["✔ done"]);
    second.wait_text("finished, exit 1");
    second.keys(&["q"]);
    second.wait_text("EXIT=1");
    assert_eq!(futuretop_in(&rt, &["wait", &id]).status.code(), Some(1));
    // Its output, once in the background, ends with its whole summary.
    let out = std::fs::read_to_string(dir.join(format!("{id}.out"))).expect("the run's output");
    assert!(out.contains("4 futures: 3 done, 1 failed, 0 cancelled"), "{out}");
    assert!(out.contains("exit code 1"), "{out}");
    assert!(logs.join(format!("{id}.jsonl")).is_file(), "the log of a detached run is kept");
    assert!(!dir.join(format!("{id}.jsonl")).exists(), "and not in the runtime directory");
    // A run that stays in its terminal leaves no log of its own behind.
    let third = Tmux::start("fg-detach-3", 120, 40, &run);
    third.wait_row("blocker", &["▶ running"]);
    third.keys(&["q"]);
    third.wait_text("quit and stop them?");
    third.keys(&["y"]);
    third.wait_text("EXIT=130");
    let runs: serde_json::Value =
        serde_json::from_slice(&futuretop_in(&rt, &["ls", "--all", "--json"]).stdout).expect("ls --json");
    let ended =
        runs.as_array().expect("a list").iter().find(|r| r["id"] != id.as_str()).expect("the second run, listed");
    let other = ended["id"].as_str().expect("an id");
    assert!(!logs.join(format!("{other}.jsonl")).exists(), "a log nobody asked for is removed");
    assert!(ended["log"].is_null(), "and its record no longer names it: {ended}");
}

/// Issue 19: `attach --headless` follows a run in the foreground that keeps a log only
/// for attach; the run, stopped in its terminal, removes that log at its end, and the
/// follower (which opened it while the run went) still prints the summary and exits
/// with the run's code.
#[test]
fn attach_headless_follows_a_run_in_the_foreground_to_its_end() {
    if !tmux_here("attach_headless_follows_a_run_in_the_foreground_to_its_end") {
        return;
    }
    let state = state_dir_for("fg-follow");
    let rt = state.0.clone();
    let file = TaskFile::new("fg-follow", ATTACHED);
    let run = run_in_foreground(&rt, &file);
    let t = Tmux::start("fg-follow", 120, 40, &run);
    t.wait_row("blocker", &["▶ running"]);
    let runs: serde_json::Value =
        serde_json::from_slice(&futuretop_in(&rt, &["ls", "--json"]).stdout).expect("ls --json");
    let id = runs[0]["id"].as_str().expect("the run, listed").to_owned();
    assert_eq!(runs[0]["attach_log"], true, "{runs}");
    let mut follower = Command::new(BIN)
        .args(["attach", &id, "--headless"])
        .env("XDG_RUNTIME_DIR", &rt)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("attach --headless");
    // Its stderr, a line at a time: once it says its progress, it follows the run.
    let (lines_tx, lines) = crossbeam_channel::unbounded::<String>();
    let stderr = follower.stderr.take().expect("its stderr");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut err = Vec::new();
    while !err.iter().any(|l: &String| l.starts_with("progress: ")) {
        err.push(lines.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("no progress line: {err:?}")));
    }
    t.keys(&["q"]);
    t.wait_text("quit and stop them?");
    t.keys(&["y"]);
    t.wait_text("EXIT=130");
    let out = follower.wait_with_output().expect("the follower's end");
    let said = String::from_utf8_lossy(&out.stdout);
    err.extend(lines.try_iter());
    assert_eq!(out.status.code(), Some(130), "{said}{err:?}");
    assert!(said.contains("blocker: Killed") && said.contains("exit code 130"), "{said}{err:?}");
    assert!(!rt.join("state").join("futuretop").join(format!("{id}.jsonl")).exists(), "the log went with the run");
}

/// A run that floods its log (a `pow` map of 300,000 items), then waits (a long sleep):
/// a monitor attached at its start falls behind it.
const FLOODING: &str = "
name: flooding
pools:
  two: { kind: thread, max_workers: 2 }
  idle: { kind: thread, max_workers: 1 }
tasks:
  - { name: p, pool: two, call: pow, args: { exp: 2 }, map: { base: { range: [0, 300000] } } }
  - { name: hold, pool: idle, call: sleep, args: { secs: 600 } }
";

/// Issue 19: a monitor attached to a run that floods its log falls behind it on purpose
/// (the run comes first): its header says it is catching up and shows the run's own
/// count from its status file beside its own, and it still answers keys at once; `d`
/// leaves the run going, and `stop` ends it.
#[test]
fn an_attached_monitor_behind_a_flooding_run_shows_the_runs_own_count() {
    if !tmux_here("an_attached_monitor_behind_a_flooding_run_shows_the_runs_own_count") {
        return;
    }
    let state = state_dir_for("flood");
    let rt = state.0.clone();
    let file = TaskFile::new("flood", FLOODING);
    let (id, _) = start_detached(&state, &file);
    let attach = format!("env XDG_RUNTIME_DIR={} {BIN} attach {id}; echo EXIT=$?; sleep 60", rt.display());
    let t = Tmux::start("flood", 120, 40, &attach);
    let s = t.wait_text("catching up on its log… (the run: ");
    // The run's count: done of its 300,001 futures.
    let count = s.split("(the run: ").nth(1).and_then(|r| r.split(" done)").next()).unwrap_or_default().to_owned();
    assert!(count.ends_with("/300001"), "{count:?} in {s}");
    t.keys(&["?"]);
    t.wait_text("keys (any key closes, and does nothing else)");
    t.keys(&["Escape"]);
    t.wait_for("the help to close", |s| !s.contains("keys (any key closes"));
    t.keys(&["d"]);
    t.wait_text(&format!("detached from run {id} (flooding)"));
    t.wait_text("EXIT=0");
    assert_listed_running(&rt, &id);
    assert_eq!(futuretop_in(&rt, &["stop", &id]).status.code(), Some(0));
    assert_eq!(futuretop_in(&rt, &["wait", &id]).status.code(), Some(130));
}
