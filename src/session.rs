//! Background runs: the per-user state directory, the record and status of each detached run, and `ls`, `wait` and `stop` on them.
//!
//! A detached run (`futuretop run FILE --detach`) is this program started again in a
//! session of its own, with no terminal. It writes, in the state directory:
//! - `ID.json`, its [`Record`]: written once, when it has started;
//! - `ID.status.json`, its [`Status`]: rewritten about once a second by the event bus, and
//!   at the end with the exit code;
//! - `ID.out`, what it prints (the headless progress lines and summary);
//! - `ID.jsonl`, its event log, unless `--events` put it elsewhere.
//!
//! The state directory is `$XDG_RUNTIME_DIR/futuretop/`, or `futuretop-UID/` in the temp
//! directory. It must be a directory (not a symlink) owned by the user, with mode 0700:
//! anything else is refused, as it could let another user read or steer the runs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// It could not be made or read.
    #[error("futuretop: cannot use the state directory {}: {error}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// It exists but is not safe: a symlink, not a directory, another owner, or a mode
    /// other than 0700.
    #[error(
        "futuretop: refusing the state directory {}: {why} (it must be a directory of yours, not a symlink, \
         with mode 0700: remove it, or fix it with `chmod 700`)",
        path.display()
    )]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// Where the state directory is (not checked): `$XDG_RUNTIME_DIR/futuretop/` when that
/// variable names an absolute path, else `futuretop-UID/` in the temp directory.
pub fn state_dir_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("futuretop"),
        _ => std::env::temp_dir().join(format!("futuretop-{}", nix::unistd::geteuid())),
    }
}

/// The state directory, made (mode 0700) if it is not there, and checked: a directory,
/// not a symlink, owned by this user, mode 0700.
pub fn state_dir() -> Result<PathBuf, StateDirError> {
    let path = state_dir_path();
    match fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(StateDirError::Io { path, error }),
    }
    check_state_dir(&path)?;
    Ok(path)
}

/// The directory for the logs runs in the foreground keep only for `attach`
/// (`$XDG_STATE_HOME/futuretop/` when that names an absolute path, else
/// `~/.local/state/futuretop/`): on disk, not in the runtime directory, which is memory
/// (a million futures make a 300 MB log); made (0700) and checked as the state directory
/// is. `None` when there is no home or the directory is not safe: the state directory
/// serves then.
pub fn logs_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local").join("state"),
    };
    let path = base.is_absolute().then(|| base.join("futuretop"))?;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&path).ok()?;
    check_state_dir(&path).ok()?;
    Some(path)
}

/// Refuses `path` unless it is a directory, not a symlink, owned by this user, mode 0700.
pub fn check_state_dir(path: &Path) -> Result<(), StateDirError> {
    let meta = fs::symlink_metadata(path).map_err(|error| StateDirError::Io { path: path.to_owned(), error })?;
    let unsafe_because = |why: String| Err(StateDirError::Unsafe { path: path.to_owned(), why });
    if meta.file_type().is_symlink() {
        return unsafe_because("it is a symlink".into());
    }
    if !meta.is_dir() {
        return unsafe_because("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return unsafe_because(format!("it is owned by uid {}, not by you (uid {me})", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o700 {
        return unsafe_because(format!("its mode is {mode:04o}"));
    }
    Ok(())
}

/// What a detached run writes about itself once it has started (`ID.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run's id (`futuretop attach ID`).
    pub id: String,
    /// The run's name (the task file's stem, or the demo's name).
    pub name: String,
    /// The task file, as given.
    pub file: String,
    /// The run's process.
    pub pid: u32,
    /// When that process started, in clock ticks since boot (`/proc/PID/stat`): a pid
    /// reused by another process does not pass for the run.
    pub proc_start: u64,
    /// When the run started, in seconds since the Unix epoch.
    pub started: f64,
    /// Its event log (a run in the foreground without `--events` writes none).
    pub log: Option<PathBuf>,
    /// Its log is one futuretop keeps only for `attach` ([`logs_dir`]), not one asked
    /// for with `--events`: pruned with the run's other files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attach_log: bool,
}

/// A run's progress, as its event bus last wrote it (`ID.status.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Futures in a final state.
    pub done: usize,
    /// All the run's futures.
    pub total: usize,
    /// Deadlocks reported and not yet resolved.
    pub deadlocks: usize,
    /// The run's exit code, once it has ended.
    pub exit_code: Option<i32>,
}

/// Keeps a run's [`Status`] file up to date from its events (the bus calls it).
#[derive(Debug)]
pub struct StatusWriter {
    path: PathBuf,
    status: Status,
    last_write: Option<Instant>,
    changed: bool,
}

/// How often a run's status file is rewritten while it changes.
const STATUS_EVERY: Duration = Duration::from_secs(1);

impl StatusWriter {
    /// Writes to `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path, status: Status::default(), last_write: None, changed: true }
    }

    /// Takes an event in; writes the file if it is due (or the run ended).
    pub fn observe(&mut self, kind: &crate::events::EventKind) {
        use crate::events::EventKind;
        match kind {
            EventKind::RunStarted { tasks, .. } => self.status.total = *tasks,
            EventKind::Deadlock { .. } => self.status.deadlocks += 1,
            EventKind::DeadlockResolved { .. } => self.status.deadlocks = self.status.deadlocks.saturating_sub(1),
            EventKind::RunFinished { exit_code, counts } => {
                self.status.done = counts.done + counts.exception + counts.cancelled;
                self.status.exit_code = Some(*exit_code);
                self.changed = true;
                self.write();
                return;
            }
            _ => return,
        }
        self.changed = true;
    }

    /// Takes in the runner's count of the plan's futures in a final state (a future
    /// retried or resubmitted counts once, an inner `submit` not at all).
    pub fn progress(&mut self, counts: crate::events::Counts) {
        let done = counts.done + counts.exception + counts.cancelled;
        if done != self.status.done {
            self.status.done = done;
            self.changed = true;
        }
    }

    /// Writes the file if it changed and the last write is [`STATUS_EVERY`] old.
    pub fn tick(&mut self) {
        if self.changed && self.last_write.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
            self.write();
        }
    }

    /// Writes the file now (through a temporary file and a rename: a reader never sees
    /// half of it). A failure is not the run's: `ls` shows the last status it could read.
    fn write(&mut self) {
        self.last_write = Some(Instant::now());
        self.changed = false;
        let _ = write_json_atomically(&self.path, &self.status);
    }
}

/// Writes `value` as JSON to `path` through `path.tmp` and a rename.
fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    // No fsync: the rename is what makes it whole for a reader, and the bus must not
    // wait on a disk.
    fs::rename(&tmp, path)
}

/// A new run id: six hex digits not yet used in `dir`.
pub fn new_id(dir: &Path) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // The low 64 bits of the time: only a seed.
    #[allow(clippy::cast_possible_truncation)]
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 20);
    loop {
        // splitmix64: consecutive seeds give unrelated ids.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let id = format!("{:06x}", (z ^ (z >> 31)) & 0xFF_FFFF);
        if !dir.join(format!("{id}.json")).exists() && !dir.join(format!("{id}.out")).exists() {
            return id;
        }
    }
}

/// When process `pid` started, in clock ticks since boot; `None` if it is gone.
/// A process that has exited and waits to be reaped (a zombie) is gone too.
pub fn proc_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The largest record or status file read (they are a few hundred bytes).
const MAX_STATE_FILE: u64 = 64 * 1024;

/// The contents of a record or status file in the state directory: a regular file (not
/// a symlink, a FIFO or a device), at most [`MAX_STATE_FILE`] bytes; `None` otherwise.
fn read_state_file(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_STATE_FILE + 1), &mut bytes).ok()?;
    (bytes.len() as u64 <= MAX_STATE_FILE).then_some(bytes)
}

/// Whether `id` is a run id as [`new_id`] makes them: six lowercase hex digits.
pub fn is_run_id(id: &str) -> bool {
    id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Run `id`'s last status, if it has written one.
pub fn status_of(dir: &Path, id: &str) -> Option<Status> {
    read_state_file(&dir.join(format!("{id}.status.json"))).and_then(|b| serde_json::from_slice(&b).ok())
}

/// Writes this process's record of run `id` (it has started).
/// `attach_log`: the log is one futuretop keeps only for `attach` ([`Record::attach_log`]).
pub fn register(
    dir: &Path,
    id: &str,
    name: &str,
    file: &str,
    log: Option<&Path>,
    attach_log: bool,
) -> std::io::Result<Record> {
    prune(dir);
    let pid = std::process::id();
    let record = Record {
        id: id.to_owned(),
        name: name.to_owned(),
        file: file.to_owned(),
        pid,
        proc_start: proc_start(pid).unwrap_or(0),
        started: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        log: log.map(Path::to_owned),
        attach_log,
    };
    write_json_atomically(&dir.join(format!("{id}.json")), &record)?;
    Ok(record)
}

/// Rewrites run `id`'s record without its log (removed: the run never left its terminal).
pub fn forget_log(dir: &Path, id: &str) {
    let path = dir.join(format!("{id}.json"));
    let Some(mut record) = read_state_file(&path).and_then(|b| serde_json::from_slice::<Record>(&b).ok()) else {
        return;
    };
    if record.id == id {
        record.log = None;
        record.attach_log = false;
        let _ = write_json_atomically(&path, &record);
    }
}

/// How many runs that have ended keep their files in the state directory (`ls --all`).
const ENDED_KEPT: usize = 50;

/// Removes the files of the runs that ended, but the [`ENDED_KEPT`] latest: their record,
/// status, output, and their event log if it is in the state directory or its record
/// says it is one kept only for `attach` ([`Record::attach_log`]); never a log at
/// `--events`.
fn prune(dir: &Path) {
    let ended: Vec<Found> = runs(dir).into_iter().filter(|f| f.state != State::Running).collect();
    let Some(old) = ended.len().checked_sub(ENDED_KEPT) else { return };
    for f in &ended[..old] {
        for ext in ["status.json", "out", "sock", "jsonl", "json"] {
            let _ = fs::remove_file(dir.join(format!("{}.{ext}", f.record.id)));
        }
        // A log kept only for `attach` ([`logs_dir`], under whatever state home the run
        // had), if it is named as futuretop names them.
        let named = format!("{}.jsonl", f.record.id);
        if let Some(log) =
            f.record.log.as_ref().filter(|l| f.record.attach_log && l.file_name() == Some(named.as_ref()))
        {
            let _ = fs::remove_file(log);
        }
    }
}

/// Where a run stands, as `ls` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Its process is alive.
    Running,
    /// It ended and recorded its exit code.
    Finished,
    /// Its process is gone without a recorded end (killed with SIGKILL, say).
    Lost,
}

impl State {
    /// The word `ls` shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Lost => "lost",
        }
    }
}

/// A run found in the state directory.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// What it wrote when it started.
    #[serde(flatten)]
    pub record: Record,
    /// Its last status.
    #[serde(flatten)]
    pub status: Status,
    /// Where it stands.
    pub state: State,
}

/// Every run recorded in `dir`, oldest first. Unreadable records are skipped.
pub fn runs(dir: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<Found> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        // `ID.json`, ID as `new_id` makes them, and the record's own id the same: a file
        // that names another is not a run's.
        .filter_map(|p| {
            let id = p.file_name()?.to_str()?.strip_suffix(".json")?;
            if !is_run_id(id) {
                return None;
            }
            let record: Record = serde_json::from_slice(&read_state_file(&p)?).ok()?;
            (record.id == id).then_some(record)
        })
        .map(|record| {
            let status = status_of(dir, &record.id).unwrap_or_default();
            let alive = proc_start(record.pid).is_some_and(|s| s == record.proc_start);
            let state = if alive {
                State::Running
            } else if status.exit_code.is_some() {
                State::Finished
            } else {
                // It may have ended between the two reads: read the status again.
                let again = status_of(dir, &record.id);
                if again.as_ref().is_some_and(|s| s.exit_code.is_some()) {
                    return Found { record, status: again.unwrap_or_default(), state: State::Finished };
                }
                State::Lost
            };
            Found { record, status, state }
        })
        .collect();
    found.sort_by(|a, b| a.record.started.total_cmp(&b.record.started));
    found
}

/// The run `id`, or, without one, the only live run; else an error that lists them.
pub fn find(dir: &Path, id: Option<&str>) -> Result<Found, String> {
    let all = runs(dir);
    if let Some(id) = id {
        return all.into_iter().find(|f| f.record.id == id).ok_or_else(|| {
            format!("futuretop: no run '{}' (futuretop ls --all lists them)", crate::text::visible(id))
        });
    }
    let mut live: Vec<Found> = all.into_iter().filter(|f| f.state == State::Running).collect();
    match live.len() {
        1 => Ok(live.remove(0)),
        0 => Err("futuretop: no live run (futuretop ls --all lists the finished ones)".into()),
        _ => Err(format!(
            "futuretop: {} live runs, name one: {}",
            live.len(),
            live.iter()
                .map(|f| format!("{} ({})", f.record.id, crate::text::visible(&f.record.name)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Waits until run `found` is no longer running; returns its exit code (`None`: it was
/// lost without one).
pub fn wait(dir: &Path, found: &Found) -> Option<i32> {
    wait_saying(dir, found, Duration::MAX, |_| {})
}

/// [`wait`], calling `say` with the time waited so far every `every` (to tell a user
/// what is taking long).
pub fn wait_saying(dir: &Path, found: &Found, every: Duration, mut say: impl FnMut(Duration)) -> Option<i32> {
    let started = Instant::now();
    let mut next_word = every;
    let mut pause = Duration::from_millis(5);
    loop {
        if proc_start(found.record.pid) != Some(found.record.proc_start) {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
        if started.elapsed() >= next_word {
            say(started.elapsed());
            next_word = next_word.saturating_add(every);
        }
    }
    status_of(dir, &found.record.id).and_then(|s| s.exit_code)
}

/// A file read as it grows (`tail -f`): at its end, a read waits for more while `alive`
/// says the writer may still write; once it says not, the end is the end.
pub struct Follow {
    file: fs::File,
    alive: Box<dyn FnMut() -> bool + Send>,
    /// The last read reached the end of what was written.
    at_end: bool,
    /// Told whether the last read reached the end of what was written.
    reports: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// While set, nothing is read.
    hold: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// How long a follower waits at the end of what is written before it reads again: the
/// monitor's view of a live run is this much behind it at most (plus the log's flush).
const FOLLOW_PAUSE: Duration = Duration::from_millis(40);

impl Follow {
    /// Follows `file` while `alive()`.
    pub fn new(file: fs::File, alive: Box<dyn FnMut() -> bool + Send>) -> Self {
        Self { file, alive, at_end: false, reports: None, hold: None }
    }

    /// Keeps `at_end` told whether the reader is at the end of what is written (a monitor
    /// says it is catching up until then).
    #[must_use]
    pub fn reporting(mut self, at_end: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.reports = Some(at_end);
        self
    }

    /// Reads nothing while `hold` is set (a monitor that yields to a run flooding its
    /// log: what the reader would decode meanwhile would wait, in vain, for the screen).
    /// Meanwhile it reports that it is not at the end of what is written.
    #[must_use]
    pub fn holding(mut self, hold: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.hold = Some(hold);
        self
    }

    fn report(&self, at_end: bool) {
        if let Some(r) = &self.reports {
            r.store(at_end, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::io::Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            while self.hold.as_ref().is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed)) {
                // The run writes on meanwhile: once let go, the reader is behind it.
                self.report(false);
                std::thread::sleep(FOLLOW_PAUSE);
            }
            let n = self.file.read(buf)?;
            self.report(n < buf.len());
            if n == buf.len() {
                return Ok(n);
            }
            if n > 0 {
                // At the end of what is written: the next read waits a while, so that
                // the reader does not take the page the run is writing to under its feet
                // a write at a time.
                self.at_end = true;
                return Ok(n);
            }
            if !(self.alive)() {
                // What it wrote before it ended, if anything.
                return self.file.read(buf);
            }
            std::thread::sleep(if std::mem::take(&mut self.at_end) { FOLLOW_PAUSE } else { FOLLOW_PAUSE / 4 });
        }
    }
}

/// The `ls` table: id, name, file, start, done/total, state, deadlock.
pub fn table(runs: &[Found]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<16} {:<24} {:<20} {:>17}  {:<10} DEADLOCK",
        "ID", "NAME", "FILE", "STARTED", "DONE/TOTAL", "STATE"
    );
    for f in runs {
        let state = match (f.state, f.status.exit_code) {
            (State::Finished, Some(code)) => format!("exit {code}"),
            (state, _) => state.as_str().to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<16} {:<24} {:<20} {:>17}  {:<10} {}",
            crate::text::visible(&f.record.id),
            crate::text::visible(&f.record.name),
            crate::text::visible(&f.record.file),
            utc_time(f.record.started),
            format!("{}/{}", f.status.done, f.status.total),
            state,
            if f.status.deadlocks > 0 { "yes" } else { "-" },
        );
    }
    out
}

/// A time in seconds since the Unix epoch, as RFC 3339 in UTC to the second.
fn utc_time(secs: f64) -> String {
    let at = UNIX_EPOCH + Duration::try_from_secs_f64(secs).unwrap_or_default();
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_read_in_utc() {
        assert_eq!(utc_time(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(1_796_428_800.0 + 3_723.9), "2026-12-05T01:02:03Z");
    }

    #[test]
    fn client_actions_read_as_the_log_writes_them() {
        use crate::events::ClientAction as A;
        for a in [
            A::Attached,
            A::Detached,
            A::Refused,
            A::Cancel,
            A::Kill,
            A::CancelPool,
            A::CancelUnsubmitted,
            A::Break,
            A::Resubmit,
            A::Stop,
        ] {
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{}\"", a.as_str()));
        }
    }

    /// A state directory of a test's own, mode 0700.
    fn scratch_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ft-session-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }

    #[test]
    fn the_latest_ended_runs_are_kept_and_the_older_pruned_with_their_files() {
        let dir = scratch_dir("prune");
        let logs = scratch_dir("prune-logs");
        let elsewhere = scratch_dir("prune-elsewhere");
        // 55 runs that ended (no such process), oldest first, each with its files; the
        // first two kept their logs only for attach (their records say so), the third
        // at `--events`.
        for k in 0..55u32 {
            let id = format!("{k:06x}");
            let at = match k {
                0 | 1 => &logs,
                2 => &elsewhere,
                _ => &dir,
            };
            let log = at.join(format!("{id}.jsonl"));
            fs::write(&log, "{}\n").unwrap();
            let record = Record {
                id: id.clone(),
                name: "r".into(),
                file: "r.yaml".into(),
                pid: u32::MAX,
                proc_start: 1,
                started: f64::from(k),
                log: Some(log),
                attach_log: k < 2,
            };
            write_json_atomically(&dir.join(format!("{id}.json")), &record).unwrap();
            let status = Status { done: 1, total: 1, deadlocks: 0, exit_code: Some(0) };
            write_json_atomically(&dir.join(format!("{id}.status.json")), &status).unwrap();
        }
        // A crafted record whose name and id differ, and a FIFO, are no runs: skipped.
        fs::write(dir.join("abcdef.json"), br#"{"id":"000001"}"#).unwrap();
        nix::unistd::mkfifo(&dir.join("fedcba.json"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(runs(&dir).len(), 55);
        register(&dir, "ffffff", "new", "new.yaml", None, false).unwrap();
        let left = runs(&dir);
        assert_eq!(left.len(), 51, "the 50 latest ended, and the new one");
        assert_eq!(left[0].record.id, "000005", "the five oldest went");
        assert!(!dir.join("000004.jsonl").exists() && !dir.join("000004.status.json").exists());
        assert!(dir.join("000005.jsonl").exists());
        assert!(!logs.join("000000.jsonl").exists() && !logs.join("000001.jsonl").exists(), "ours, removed");
        assert!(elsewhere.join("000002.jsonl").exists(), "a log the user asked for is never removed");
        for d in [&dir, &logs, &elsewhere] {
            let _ = fs::remove_dir_all(d);
        }
    }

    #[test]
    fn only_six_hex_digits_are_a_run_id() {
        assert!(is_run_id("a1b2c3"));
        for bad in ["", "a1b2c", "a1b2c3d", "A1B2C3", "../x1", "a1b2g3"] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_has_none() {
        assert!(proc_start(std::process::id()).is_some());
        assert_eq!(proc_start(u32::MAX), None);
    }
}
