//! Task files: YAML → raw types → one validated [`Plan`], every problem reported with its `file:line:col`.
//!
//! Loading is three steps. serde_yaml parses the text (syntax errors, alias bombs and
//! deep nesting are refused there, with a position); `index::PosIndex` records where
//! every key and value starts; then `validate` walks the document once, collects *every*
//! problem it finds (unknown keys with a "did you mean", wrong types, unknown pools,
//! tasks and callables, bad arguments, duplicate names, `depends_on` cycles) and either
//! returns the [`Plan`] or all the errors. Nothing runs before a file validates.

mod index;
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
        write!(f, "{}:{}:{}: {}", self.file, self.pos.line, self.pos.col, self.message)
    }
}

/// Every problem found in a task file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
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
    /// One task (an index into [`Plan::tasks`]): a plain task, or one item of a `map:`.
    Task(usize),
    /// Every item of a `map:` task (their indices, `start..end`): done when all are; a
    /// failed or cancelled item cancels the dependent, naming that item.
    Group(std::ops::Range<usize>),
}

/// How a `map:` task's items go to a process pool's workers (`chunksize:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The index of the map's first item in [`Plan::tasks`].
    pub first: usize,
    /// Items a message (Python's `chunksize`).
    pub size: usize,
}

/// A validated task: one future (a `map:` task is expanded into several of these).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    /// Its name: `name`, or `name[i]` for an item of a `map:`.
    pub name: String,
    /// Index into [`Plan::pools`].
    pub pool: usize,
    /// What it runs.
    pub work: Work,
    /// What must be done before it is submitted: tasks, and whole `map:` tasks (one edge
    /// each, whatever their size). Shared by the items of a `map:`.
    pub depends_on: std::sync::Arc<[Dep]>,
    /// For an item of a `map:` task with a `chunksize:` (process pools): its map, and how
    /// many items go to a worker in one message.
    pub chunk: Option<Chunk>,
    /// Its arguments as given (after `map:` expansion), for display.
    pub args: serde_json::Value,
    /// Where the task is declared.
    pub pos: Pos,
}

/// A validated task file, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The run's name (`name:`, else the file's stem).
    pub name: String,
    /// The file it came from.
    pub source: String,
    /// The pools, in file order.
    pub pools: Vec<PoolPlan>,
    /// The tasks, expanded, in file order.
    pub tasks: Vec<TaskPlan>,
}

impl Plan {
    /// The index of the task called `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
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
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the file: {}", io_reason(&e))))?;
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
        let deps = |name: &str| plan.tasks.iter().find(|t| t.name == name).map(|t| t.depends_on.to_vec());
        assert_eq!(deps("one"), Some(vec![Dep::Task(1)]));
        // The map is one edge, however many items it has.
        assert_eq!(deps("all"), Some(vec![Dep::Group(0..3), Dep::Task(3)]));
        let bad = yaml.replace("'fetch[1]'", "'fetch[3]'");
        let e = load_str_offline("t.yaml", "t", &bad).expect_err("fetch[3] is past the map's end").to_string();
        assert!(e.contains("t.yaml:3:") && e.contains("unknown task 'fetch[3]'"), "{e}");
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
        assert_eq!(plan.tasks[2].depends_on.to_vec(), vec![Dep::Task(0)]);
        assert_eq!(plan.tasks[3].depends_on.to_vec(), vec![Dep::Task(1)]);
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
        assert!(plan.tasks.iter().all(|t| t.chunk == Some(super::Chunk { first: 0, size: 2 })));
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
