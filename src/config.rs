//! Task files: YAML → raw types → one validated [`Plan`], every problem reported with its `file:line:col`.
//!
//! Loading is three steps. serde_yaml parses the text (syntax errors, alias bombs and
//! deep nesting are refused there, with a position); `index::PosIndex` records where
//! every key and value starts; then `validate` walks the document once, collects *every*
//! problem it finds (unknown keys with a "did you mean", wrong types, unknown pools,
//! tasks and callables, bad arguments, duplicate names, `depends_on` cycles) and either
//! returns the [`Plan`] or all the errors. Nothing runs before a file validates.

pub(crate) mod index;
mod validate;

pub use index::Pos;

use std::fmt;
use std::path::Path;

use crate::builtins::Builtin;
pub use crate::pools::PoolKind;
pub use crate::tasks::CommandPlan;

/// The largest task file accepted.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One problem in a task file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as the user named it.
    pub file: String,
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::visible;
        write!(f, "{}:{}:{}: {}", visible(&self.file), self.pos.line, self.pos.col, visible(&self.message))
    }
}

/// Every problem found in a task file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// The most problems a file's report shows; the rest are counted.
pub const SHOWN_ERRORS: usize = 100;

impl fmt::Display for ConfigErrors {
    /// The first [`SHOWN_ERRORS`] problems, one a line, then how many more there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(SHOWN_ERRORS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.0.len() > SHOWN_ERRORS {
            write!(f, "\n... and {} more problems", self.0.len() - SHOWN_ERRORS)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    /// Its name (the key under `pools:`).
    pub name: String,
    /// Its kind.
    pub kind: PoolKind,
    /// Worker count.
    pub max_workers: usize,
    /// Its kind's own settings, as its backend checked them (`max_tasks_per_child` of a
    /// process pool, a Slurm pool's partition, ...): see [`crate::pools::Backend`].
    pub settings: serde_json::Value,
    /// What its tasks take when they give no `retries:`, `retry_delay:` or `backoff:`.
    pub retry: RetryKeys,
}

/// The retry keys as a pool or a task gives them (`None`: not given).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryKeys {
    /// `retries:`.
    pub retries: Option<u32>,
    /// `retry_delay:` (seconds).
    pub delay: Option<f64>,
    /// `backoff:`.
    pub backoff: Option<f64>,
}

impl RetryKeys {
    /// These keys, each one not given taken from `defaults` (a pool's), then from
    /// [`Retry::default`].
    pub fn or(self, defaults: Self) -> Retry {
        let d = Retry::default();
        Retry {
            retries: self.retries.or(defaults.retries).unwrap_or(d.retries),
            delay: self.delay.or(defaults.delay).unwrap_or(d.delay),
            backoff: self.backoff.or(defaults.backoff).unwrap_or(d.backoff),
        }
    }
}

/// How a task is tried again after it ended in an exception (`retries:`,
/// `retry_delay:`, `backoff:`): each attempt is a new future; a cancel or a kill is never
/// retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Attempts after the first (0: none).
    pub retries: u32,
    /// Seconds between the first attempt's end and the second attempt.
    pub delay: f64,
    /// Each later wait is the one before times this.
    pub backoff: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Self { retries: 0, delay: 1.0, backoff: 1.0 }
    }
}

impl Retry {
    /// The most retries a task may ask for (a documented limit).
    pub const MAX_RETRIES: u32 = 100;

    /// Attempts in all (the first and its retries).
    pub const fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// Seconds to wait after attempt `failed` (from 1) ended, before the next one runs.
    pub fn delay_after(&self, failed: u32) -> f64 {
        let n = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        (self.delay * self.backoff.powi(n)).clamp(0.0, crate::schema::MAX_SECONDS)
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A built-in callable.
    Call(Builtin),
    /// An external command.
    Command(CommandPlan),
}

/// What a task waits for before it is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dep {
    /// One future (an index into the plan's futures, see [`Plan::len`]): a plain task,
    /// or one item of a `map:`.
    Task(usize),
    /// Every item of a `map:` task (an index into [`Plan::tasks`]): done when all are; a
    /// failed or cancelled item cancels the dependent, naming that item.
    Group(usize),
}

/// The values of one mapped argument of a `map:` task, one an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Whole numbers, 8 bytes an item.
    Ints(Vec<i64>),
    /// Any other values (strings, floats, mappings), as the file gives them.
    Values(Vec<serde_yaml::Value>),
    /// `{ range: [start, stop, step] }`: item `k` is `start + k * step`, nothing stored.
    Range {
        /// The first value.
        start: i64,
        /// The difference between two items.
        step: i64,
    },
}

impl Column {
    /// Item `k`'s value (`k` below the map's length).
    pub fn get(&self, k: usize) -> std::borrow::Cow<'_, serde_yaml::Value> {
        use std::borrow::Cow;
        match self {
            Self::Ints(v) => Cow::Owned(v.get(k).copied().unwrap_or_default().into()),
            Self::Values(v) => v.get(k).map_or(Cow::Owned(serde_yaml::Value::Null), Cow::Borrowed),
            Self::Range { start, step } => {
                let k = i64::try_from(k).unwrap_or(i64::MAX);
                Cow::Owned(start.saturating_add(k.saturating_mul(*step)).into())
            }
        }
    }
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// One future: its work, checked.
    One(Work),
    /// A `map:` task: callable `call` once an item, with the task's `args:` and item `k`
    /// of each column. An item's call is read from these when it is submitted (it was
    /// checked, item by item, when the file was validated).
    Map {
        /// The built-in's name.
        call: String,
        /// The mapped arguments, each a column of the map's length.
        columns: Vec<(String, Column)>,
    },
}

/// A validated task, as declared: one future, or the items of a `map:` task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    /// Its name; the items of a `map:` are `name[0]`, `name[1]`, ...
    pub name: String,
    /// Index into [`Plan::pools`].
    pub pool: usize,
    /// What it runs.
    pub body: Body,
    /// The arguments every item shares (`args:`), as given.
    pub args: Vec<(String, serde_yaml::Value)>,
    /// What must be done before any of its futures is submitted: futures, and whole
    /// `map:` tasks (one edge each, whatever their size).
    pub depends_on: std::sync::Arc<[Dep]>,
    /// `depends_on: [{ each: MAP }]`: item `k` also waits for item `k` of each of these
    /// (indices into [`Plan::tasks`], maps of the same length).
    pub each: Vec<usize>,
    /// For a `map:` task on a process pool: items a message (`chunksize:`).
    pub chunk: Option<usize>,
    /// How it is tried again after an exception (its own keys, else its pool's).
    pub retry: Retry,
    /// `timeout:` of a `call:` task, in seconds: each future is stopped when it has run
    /// that long (a command's own `timeout:` is enforced where it runs, [`CommandPlan`]).
    pub timeout: Option<f64>,
    /// The index of its first future.
    pub first: usize,
    /// How many futures it stands for (1 for a plain task).
    pub len: usize,
    /// Where the task is declared.
    pub pos: Pos,
}

impl TaskPlan {
    /// True for a `map:` task.
    pub const fn is_map(&self) -> bool {
        matches!(self.body, Body::Map { .. })
    }

    /// Its futures, as indices.
    pub const fn futures(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.len
    }
}

/// A validated task file, ready to run.
///
/// It is compact: a `map:` task is one entry holding its argument columns, and an item's
/// name, call and arguments are made when they are needed ([`Plan::name_of`],
/// [`Plan::work`], [`Plan::args_of`]). Futures are numbered from 0 in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The run's name (`name:`, else the file's stem).
    pub name: String,
    /// The file it came from.
    pub source: String,
    /// The pools, in file order.
    pub pools: Vec<PoolPlan>,
    /// The tasks, as declared, in file order.
    pub tasks: Vec<TaskPlan>,
    /// The futures that a `wait_on` names (directly or in a `submit`), in order: their
    /// futures are kept after they finish, for a waiter that comes later.
    pub awaited: Vec<usize>,
    /// Each task's index in `tasks`, by name.
    by_name: std::collections::HashMap<String, usize>,
    /// `stall_after:` (seconds; 0: never): when the run counts as stalled, unless
    /// `--stall-after` says otherwise.
    pub stall_after: Option<f64>,
}

/// The futures a run may have: a `map:` with `{ range: }` could ask for any number, and
/// the runner keeps a little for each.
pub const MAX_FUTURES: usize = 100_000_000;

/// `base[k]`, the name of item `k` of a `map:`, made without the formatting machinery
/// (a name an item submitted: it was a twentieth of a 100,000-item run's instructions).
fn item_name(base: &str, k: usize) -> String {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut n = k;
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut name = String::with_capacity(base.len() + digits.len() - at + 2);
    name.push_str(base);
    name.push('[');
    name.extend(digits[at..].iter().map(|&d| char::from(d)));
    name.push(']');
    name
}

impl Plan {
    /// The plan of `tasks` (validated) in `pools`.
    pub(crate) fn new(
        name: String,
        source: String,
        pools: Vec<PoolPlan>,
        tasks: Vec<TaskPlan>,
        awaited: Vec<usize>,
    ) -> Self {
        let by_name = tasks.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Self { name, source, pools, tasks, awaited, by_name, stall_after: None }
    }

    /// How many futures the plan has (a `map:` task counts its items).
    pub fn len(&self) -> usize {
        self.tasks.last().map_or(0, |t| t.first + t.len)
    }

    /// True when the plan has no future.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The task future `i` belongs to (its index in [`Plan::tasks`]) and its item number.
    pub fn locate(&self, i: usize) -> Option<(usize, usize)> {
        let t = self.tasks.partition_point(|t| t.first <= i).checked_sub(1)?;
        let k = i - self.tasks[t].first;
        (k < self.tasks[t].len).then_some((t, k))
    }

    /// What task `t` waits for, as `depends_on` names it: a task, an item (`m[3]`), a
    /// whole map, and the maps it pairs item by item with (`{ each: m }`: `m`).
    pub fn dependency_names(&self, t: &TaskPlan) -> Vec<String> {
        let mut names: Vec<String> = t
            .depends_on
            .iter()
            .map(|d| match d {
                Dep::Task(i) => self.name_of(*i),
                Dep::Group(e) => self.tasks[*e].name.clone(),
            })
            .collect();
        names.extend(t.each.iter().map(|&e| self.tasks[e].name.clone()));
        names
    }

    /// The task future `i` belongs to.
    pub fn task_of(&self, i: usize) -> Option<&TaskPlan> {
        self.locate(i).map(|(t, _)| &self.tasks[t])
    }

    /// Future `i`'s name: its task's, or `name[k]` for item `k` of a `map:`.
    pub fn name_of(&self, i: usize) -> String {
        match self.locate(i) {
            Some((t, k)) if self.tasks[t].is_map() => item_name(&self.tasks[t].name, k),
            Some((t, _)) => self.tasks[t].name.clone(),
            None => format!("#{i}"),
        }
    }

    /// The future called `name` (a plain task's name, or `map[k]`), or `None` for a
    /// `map:` task's own name and unknown names.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        if let Some(&t) = self.by_name.get(name) {
            let t = &self.tasks[t];
            return (!t.is_map()).then_some(t.first);
        }
        let (base, item) = name.strip_suffix(']')?.rsplit_once('[')?;
        let k = item.parse::<usize>().ok()?;
        let t = &self.tasks[*self.by_name.get(base)?];
        (t.is_map() && k < t.len).then_some(t.first + k)
    }

    /// The index in [`Plan::tasks`] of the task called `name`.
    pub fn task_position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The task called `name`, as declared.
    pub fn task_named(&self, name: &str) -> Option<&TaskPlan> {
        self.by_name.get(name).map(|&t| &self.tasks[t])
    }

    /// What future `i` runs. For a `map:` item, its call is read again from its arguments,
    /// as validation read it; `None` only for an index past the plan's end.
    pub fn work(&self, i: usize) -> Option<Work> {
        let (t, k) = self.locate(i)?;
        let task = &self.tasks[t];
        match &task.body {
            Body::One(work) => Some(work.clone()),
            Body::Map { call, columns } => {
                // On the stack (a call has a few arguments): two allocations an item fewer.
                let values: smallvec::SmallVec<[std::borrow::Cow<'_, serde_yaml::Value>; 4]> =
                    columns.iter().map(|(_, c)| c.get(k)).collect();
                let items: smallvec::SmallVec<[(&str, &serde_yaml::Value, String); 8]> = task
                    .args
                    .iter()
                    .map(|(a, v)| (a.as_str(), v, String::new()))
                    .chain(columns.iter().zip(&values).map(|((a, _), v)| (a.as_str(), v.as_ref(), String::new())))
                    .collect();
                let mut scope = RunScope { plan: self };
                crate::builtins::parse(&mut scope, call, "", &items, task.pool).map(Work::Call)
            }
        }
    }

    /// How many futures wait, directly or through others, on any of `futures` (indices
    /// into the plan's futures) or on any item of `tasks` (indices into
    /// [`Plan::tasks`]): what a cancel or failure of them would cancel, by `depends_on`
    /// on a future, on a whole `map:` and item by item (`{ each: }`). A dependent `map:`
    /// counts all its items. Linear in the plan's tasks and edges; for a preview, not a
    /// loop.
    pub fn dependents_of(&self, futures: &[usize], tasks: &[usize]) -> usize {
        let n = self.tasks.len();
        // Reverse edges: on a whole task, on one item (`Dep::Task`), and item by item.
        let mut on_group: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut on_item: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        let mut on_each: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (d, t) in self.tasks.iter().enumerate() {
            for dep in t.depends_on.iter() {
                match *dep {
                    Dep::Group(g) if g < n => on_group[g].push(d),
                    Dep::Task(i) => {
                        if let Some((e, k)) = self.locate(i) {
                            on_item[e].push((k, d));
                        }
                    }
                    Dep::Group(_) => {}
                }
            }
            for &e in t.each.iter().filter(|&&e| e < n) {
                on_each[e].push(d);
            }
        }
        // A node is a whole task (`None`) or one item of a map.
        let mut whole = vec![false; n];
        let mut items: std::collections::HashSet<(usize, usize)> = std::collections::HashSet::new();
        let mut counted_items = vec![0usize; n];
        let mut count = 0usize;
        let mut queue: Vec<(usize, Option<usize>)> = Vec::new();
        for &i in futures {
            if let Some((e, k)) = self.locate(i) {
                queue.push((e, self.tasks[e].is_map().then_some(k)));
            }
        }
        queue.extend(tasks.iter().filter(|&&t| t < n).map(|&t| (t, None)));
        while let Some((e, item)) = queue.pop() {
            let mut reached: Vec<(usize, Option<usize>)> = on_group[e].iter().map(|&d| (d, None)).collect();
            reached
                .extend(on_item[e].iter().filter(|(k, _)| item.is_none_or(|item| item == *k)).map(|&(_, d)| (d, None)));
            reached.extend(on_each[e].iter().map(|&d| (d, item)));
            for (d, k) in reached {
                if whole[d] {
                    continue;
                }
                match k {
                    Some(k) if self.tasks[d].is_map() => {
                        if items.insert((d, k)) {
                            counted_items[d] += 1;
                            count += 1;
                            queue.push((d, Some(k)));
                        }
                    }
                    _ => {
                        whole[d] = true;
                        count += self.tasks[d].len - counted_items[d];
                        queue.push((d, None));
                    }
                }
            }
        }
        count
    }

    /// Future `i`'s arguments as given (`args:` and its items of `map:`), for display.
    pub fn args_of(&self, i: usize) -> serde_json::Value {
        let Some((t, k)) = self.locate(i) else { return serde_json::Value::Null };
        let task = &self.tasks[t];
        let json = |v: &serde_yaml::Value| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        let mut out: serde_json::Map<String, serde_json::Value> =
            task.args.iter().map(|(a, v)| (a.clone(), json(v))).collect();
        if let Body::Map { columns, .. } = &task.body {
            for (a, c) in columns {
                out.insert(a.clone(), json(&c.get(k)));
            }
        }
        serde_json::Value::Object(out)
    }
}

/// Reads a `map:` item's call at run time: names resolve through the plan; nothing is
/// reported (the file validated, item by item).
struct RunScope<'p> {
    plan: &'p Plan,
}

impl crate::schema::Report for RunScope<'_> {
    fn at_value(&mut self, _: &str, _: String) {}
    fn at_key(&mut self, _: &str, _: String) {}
}

impl crate::builtins::Scope for RunScope<'_> {
    fn task(&mut self, name: &str, _: &str) -> Option<usize> {
        self.plan.task_index(name)
    }
    fn pool(&mut self, v: &serde_yaml::Value, _: &str) -> Option<usize> {
        let name = v.as_str()?;
        self.plan.pools.iter().position(|p| p.name == name)
    }
    fn pool_name(&self, pool: usize) -> &str {
        self.plan.pools.get(pool).map_or("", |p| p.name.as_str())
    }
    fn pool_kind(&self, pool: usize) -> PoolKind {
        self.plan.pools.get(pool).map_or(PoolKind::Thread, |p| p.kind)
    }
}

/// Reads and validates the task file at `path`.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let file = path.display().to_string();
    let fail =
        |message: String| ConfigErrors(vec![ConfigError { file: file.clone(), pos: Pos { line: 1, col: 1 }, message }]);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
    if meta.is_dir() {
        return Err(fail("is a directory; expected a YAML task file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is {} bytes; task files are limited to {MAX_FILE_BYTES} bytes",
            meta.len()
        )));
    }
    // Read with the bound too: a device or a pipe (`/dev/zero`, `<(yes)`) reports no size.
    // Room for the size the file reports (at most the bound, checked above), so that a
    // large file is read in a few calls into one buffer, not copied from one doubling
    // buffer to the next (fresh pages cost this machine most of a validation).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    let opened = std::fs::File::open(path).map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(opened, MAX_FILE_BYTES + 1), &mut bytes)
        .map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("the file is larger than {MAX_FILE_BYTES} bytes, the limit of a task file")));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not a text file: invalid UTF-8 at byte {}; expected a YAML task file",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let stem = path.file_stem().map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
    load_str(&file, &stem, &text)
}

/// Validates task-file `text`; `file` names it in errors, `default_name` names the run
/// when the file has no `name:`.
pub fn load_str(file: &str, default_name: &str, text: &str) -> Result<Plan, ConfigErrors> {
    validate::validate(file, default_name, text, true)
}

/// [`load_str`] without asking anything outside this process: a slurm pool's cluster and
/// partition are not checked (`sinfo` is not run). For checking files where no cluster is
/// reachable, and for the fuzzer (a probe takes seconds when the cluster is down).
pub fn load_str_offline(file: &str, default_name: &str, text: &str) -> Result<Plan, ConfigErrors> {
    validate::validate(file, default_name, text, false)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{load_str_offline, Dep};
    use crate::schema::{did_you_mean, edit_distance};

    /// References resolve through the hashed names: a whole task, one item of a map
    /// (`fetch[1]`), and an item past the map's end is an unknown task, with its position.
    #[test]
    fn names_resolve_to_tasks_and_map_items() {
        let yaml = "tasks:\n\
            \x20 - { name: fetch, call: sleep, map: { secs: [0, 0, 0] } }\n\
            \x20 - { name: one, call: sleep, args: { secs: 0 }, depends_on: ['fetch[1]'] }\n\
            \x20 - { name: all, call: sleep, args: { secs: 0 }, depends_on: [fetch, one] }\n";
        let plan = load_str_offline("t.yaml", "t", yaml).expect("a valid file");
        let deps = |name: &str| plan.task_named(name).map(|t| t.depends_on.to_vec());
        assert_eq!(deps("one"), Some(vec![Dep::Task(1)]));
        // The map is one edge, however many items it has.
        assert_eq!(deps("all"), Some(vec![Dep::Group(0), Dep::Task(3)]));
        // Names and arguments of items are made on demand.
        assert_eq!(plan.len(), 5);
        assert_eq!(
            (plan.name_of(2), plan.task_index("fetch[2]"), plan.task_index("fetch")),
            ("fetch[2]".into(), Some(2), None)
        );
        assert_eq!(plan.args_of(1), serde_json::json!({ "secs": 0 }));
        let bad = yaml.replace("'fetch[1]'", "'fetch[3]'");
        let e = load_str_offline("t.yaml", "t", &bad).expect_err("fetch[3] is past the map's end").to_string();
        assert!(e.contains("t.yaml:3:") && e.contains("unknown task 'fetch[3]'"), "{e}");
    }

    /// A cancel's preview counts what would go with it: dependents on an item, on the
    /// whole map, item by item, and theirs in turn, each once.
    #[test]
    fn dependents_are_counted_through_every_kind_of_edge() {
        let yaml = "tasks:\n\
            \x20 - { name: get, call: sleep, map: { secs: [0, 0, 0] } }\n\
            \x20 - { name: put, call: sleep, map: { secs: [0, 0, 0] }, depends_on: [{ each: get }] }\n\
            \x20 - { name: one, call: sleep, args: { secs: 0 }, depends_on: ['get[1]'] }\n\
            \x20 - { name: all, call: sleep, args: { secs: 0 }, depends_on: [put] }\n\
            \x20 - { name: after, call: sleep, args: { secs: 0 }, depends_on: [all, one] }\n\
            \x20 - { name: alone, call: sleep, args: { secs: 0 } }\n";
        let plan = load_str_offline("t.yaml", "t", yaml).expect("a valid file");
        let item = |name: &str| plan.task_index(name).expect("a future");
        // get[0]: put[0], then all (put as a whole), then after.
        assert_eq!(plan.dependents_of(&[item("get[0]")], &[]), 3);
        // get[1]: put[1], one, all, after.
        assert_eq!(plan.dependents_of(&[item("get[1]")], &[]), 4);
        // Both: put[0], put[1], one, all, after, each counted once.
        assert_eq!(plan.dependents_of(&[item("get[0]"), item("get[1]")], &[]), 5);
        // The whole of get: every item of put, one, all, after.
        assert_eq!(plan.dependents_of(&[], &[plan.task_position("get").expect("a task")]), 6);
        assert_eq!(plan.dependents_of(&[item("alone")], &[]), 0);
        assert_eq!(plan.dependents_of(&[item("after")], &[]), 0);
    }

    /// `{ each: MAP }` pairs items of maps of the same length; anything else is refused
    /// at the entry's position.
    #[test]
    fn each_pairs_maps_of_the_same_length_only() {
        let file = |b_items: &str| {
            format!(
                "tasks:\n\
                 \x20 - {{ name: a, call: sleep, map: {{ secs: [0, 0] }} }}\n\
                 \x20 - {{ name: b, call: sleep, map: {{ secs: [{b_items}] }}, depends_on: [{{ each: a }}] }}\n\
                 \x20 - {{ name: c, call: sleep, args: {{ secs: 0 }}, depends_on: [{{ each: a }}] }}\n"
            )
        };
        let e = load_str_offline("t.yaml", "t", &file("0, 0, 0")).expect_err("3 items against 2").to_string();
        assert!(e.contains("t.yaml:3:") && e.contains("{ each: a } pairs the items of two maps of the same length; task 'b' has 3 items and 'a' has 2 items"), "{e}");
        assert!(e.contains("t.yaml:4:") && e.contains("task 'c' has no map and 'a' has 2 items"), "{e}");
        let good = "tasks:\n\
            \x20 - { name: a, call: sleep, map: { secs: [0, 0] } }\n\
            \x20 - { name: b, call: sleep, map: { secs: [0, 0] }, depends_on: [{ each: a }] }\n";
        let plan = load_str_offline("t.yaml", "t", good).expect("a valid pairing");
        assert_eq!(plan.tasks[1].each, vec![0]);
        assert!(plan.tasks[1].depends_on.is_empty());
    }

    /// `chunksize:` is for a `map:` task on a process pool, a whole number above 0.
    #[test]
    fn chunksize_is_checked_with_its_position() {
        let yaml = "pools:\n  io: { kind: thread }\n  cpu: { kind: process, max_workers: 1 }\n\
            tasks:\n\
            \x20 - { name: a, pool: io, call: sleep, map: { secs: [0, 0] }, chunksize: 2 }\n\
            \x20 - { name: b, pool: cpu, call: sleep, args: { secs: 0 }, chunksize: 2 }\n\
            \x20 - { name: c, pool: cpu, call: sleep, map: { secs: [0] }, chunksize: 0 }\n";
        let e = load_str_offline("t.yaml", "t", yaml).expect_err("three wrong chunksizes").to_string();
        assert!(
            e.contains("t.yaml:5:") && e.contains("chunksize applies to process pools; pool 'io' is a thread pool"),
            "{e}"
        );
        assert!(e.contains("t.yaml:6:") && e.contains("chunksize applies to `map:` tasks; task 'b' has no map"), "{e}");
        assert!(e.contains("t.yaml:7:") && e.contains("chunksize must be greater than 0 (got 0)"), "{e}");
        let good = "pools:\n  cpu: { kind: process, max_workers: 1 }\n\
            tasks:\n  - { name: m, call: sleep, map: { secs: [0, 0, 0] }, chunksize: 2 }\n";
        let plan = load_str_offline("t.yaml", "t", good).expect("a valid chunksize");
        assert_eq!(plan.tasks[0].chunk, Some(2));
    }

    /// `{ range: }` maps an argument over Python's `range(start, stop, step)` without a
    /// list in the file; its bounds are checked with their positions, and the plan keeps
    /// no value per item.
    #[test]
    fn a_range_column_makes_items_on_demand_and_is_checked() {
        let yaml = "tasks:\n\
            \x20 - { name: a, call: pow, args: { exp: 2 }, map: { base: { range: [10, 0, -3] } } }\n\
            \x20 - { name: b, call: pow, args: { exp: 1 }, map: { base: { range: 300000 } } }\n";
        let plan = load_str_offline("t.yaml", "t", yaml).expect("a valid file");
        // 10, 7, 4, 1: as Python's len(range(10, 0, -3)) == 4.
        assert_eq!(plan.tasks[0].len, 4);
        assert_eq!(plan.len(), 4 + 300_000);
        assert_eq!(plan.args_of(3), serde_json::json!({ "exp": 2, "base": 1 }));
        assert_eq!(plan.name_of(4 + 299_999), "b[299999]");
        assert!(matches!(plan.work(5), Some(super::Work::Call(crate::builtins::Builtin::Pow(p))) if p.base == 1));
        assert!(
            matches!(&plan.tasks[1].body, super::Body::Map { columns, .. } if matches!(columns[0].1, super::Column::Range { .. }))
        );
        let bad = "tasks:\n\
            \x20 - { name: a, call: sleep, map: { secs: { range: [0, 5, 0] } } }\n\
            \x20 - { name: b, call: sleep, map: { secs: { range: [3, 1] } } }\n\
            \x20 - { name: c, call: sleep, map: { secs: { range: [0, 1000000000000] } } }\n\
            \x20 - { name: d, call: sleep, map: { secs: { rnage: 3 } } }\n\
            \x20 - { name: e, call: sleep, map: { secs: { range: [-2, 2] } } }\n";
        let e = load_str_offline("t.yaml", "t", bad).expect_err("five bad ranges").to_string();
        assert!(e.contains("t.yaml:2:") && e.contains("the range's step is 0"), "{e}");
        assert!(e.contains("t.yaml:3:") && e.contains("`map: secs` is empty"), "{e}");
        assert!(e.contains("t.yaml:4:") && e.contains("a run is limited to 100000000 futures"), "{e}");
        assert!(
            e.contains("t.yaml:5:") && e.contains("unknown key 'rnage'") && e.contains("did you mean 'range'?"),
            "{e}"
        );
        // An item's value out of bounds is reported once, at the range.
        assert!(e.contains("t.yaml:6:") && e.contains("secs must be 0 or more seconds (got -2)"), "{e}");
        assert_eq!(e.matches("got -2").count() + e.matches("got -1").count(), 1, "{e}");
    }

    #[test]
    fn did_you_mean_finds_typos_and_ignores_strangers() {
        let keys = ["kind", "max_workers", "max_tasks_per_child"];
        assert_eq!(did_you_mean("max_worker", keys), Some("max_workers"));
        assert_eq!(did_you_mean("knd", keys), Some("kind"));
        assert_eq!(did_you_mean("colour", keys), None);
        // A swap of two neighbours is one edit.
        assert_eq!(did_you_mean("biuld", ["build", "test"]), Some("build"));
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
