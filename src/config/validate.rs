//! One pass over a parsed task file that collects every problem, or builds the [`Plan`].

use std::collections::HashMap;

use serde_yaml::{Mapping, Value};

use super::index::{Pos, PosIndex, Problem, MAX_DEPTH};
use super::MAX_FUTURES;
use super::{
    Body as PlanBody, Column, CommandPlan, ConfigError, ConfigErrors, Dep, Plan, PoolKind, PoolPlan, Retry, RetryKeys,
    TaskPlan, Work,
};
use crate::builtins::{Scope, BUILTIN_NAMES};
use crate::schema::{describe, did_you_mean, join, positive, scalar_string, seconds, Report};

const TOP_KEYS: &[&str] = &["name", "pools", "tasks", "stall_after"];
const TASK_KEYS: &[&str] = &[
    "name",
    "pool",
    "call",
    "args",
    "command",
    "env",
    "cwd",
    "timeout",
    "map",
    "depends_on",
    "chunksize",
    "retries",
    "retry_delay",
    "backoff",
];
/// The keys of every pool, whatever its kind.
const COMMON_POOL_KEYS: &[&str] = &["kind", "max_workers", "retries", "retry_delay", "backoff"];

/// The retry keys of a task or a pool (`retries:`, `retry_delay:`, `backoff:`), checked.
fn retry_keys(cx: &mut Ctx<'_>, path: &str, keys: &HashMap<&str, &Value>) -> RetryKeys {
    let retries = keys.get("retries").and_then(|v| {
        let max = i64::from(Retry::MAX_RETRIES);
        crate::schema::int(cx, v, &join(path, "retries"), "retries", 0, max).and_then(|n| u32::try_from(n).ok())
    });
    let delay = keys.get("retry_delay").and_then(|v| seconds(cx, &join(path, "retry_delay"), "retry_delay", v, true));
    let backoff = keys.get("backoff").and_then(|v| match v.as_f64() {
        Some(f) if f.is_finite() && (1.0..=100.0).contains(&f) => Some(f),
        Some(f) => {
            cx.at_value(
                &join(path, "backoff"),
                format!("backoff must be from 1 to 100 (got {f}): each wait is the one before times it"),
            );
            None
        }
        None => {
            cx.at_value(&join(path, "backoff"), format!("expected a number for backoff, found {}", describe(v)));
            None
        }
    });
    RetryKeys { retries, delay, backoff }
}
struct Ctx<'a> {
    file: &'a str,
    /// The text, to index in full once a problem needs a position the lean index lacks.
    text: &'a str,
    /// The lean index (see [`PosIndex::scan_lean`]).
    idx: PosIndex,
    /// Problems found, with where they are: a position, or a path to look up.
    errors: Vec<(Where, String)>,
    /// Ask a Slurm cluster whether a slurm pool's partition is there.
    probe: bool,
    /// The `map:` lists read by the guard pass, by path, until a task takes its own.
    columns: HashMap<String, Vec<i64>>,
}

impl Report for Ctx<'_> {
    fn at_value(&mut self, path: &str, message: String) {
        Ctx::at_value(self, path, message);
    }
    fn at_key(&mut self, path: &str, message: String) {
        Ctx::at_key(self, path, message);
    }
}

/// Where a problem is: a position, or the value or key at a path.
enum Where {
    At(Pos),
    Value(String),
    Key(String),
}

impl Ctx<'_> {
    fn at(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((Where::At(pos), message.into()));
    }
    fn at_value(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push((Where::Value(path.to_owned()), message.into()));
    }
    fn at_key(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push((Where::Key(path.to_owned()), message.into()));
    }

    /// The problems found, with their positions, in file order: the text is indexed in
    /// full here, once, if a problem needs it.
    fn into_errors(self) -> ConfigErrors {
        let needs_index = self.errors.iter().any(|(w, _)| !matches!(w, Where::At(_)));
        let full = if needs_index { PosIndex::scan(self.text).0 } else { PosIndex::default() };
        let mut errors: Vec<ConfigError> = self
            .errors
            .into_iter()
            .map(|(w, message)| {
                let pos = match w {
                    Where::At(pos) => pos,
                    Where::Value(path) => full.value(&path),
                    Where::Key(path) => full.key(&path),
                };
                ConfigError { file: self.file.to_owned(), pos, message }
            })
            .collect();
        errors.sort_by_key(|e| (e.pos.line, e.pos.col));
        errors.dedup();
        ConfigErrors(errors)
    }

    /// Flags every key of `map` not in `known`, with a suggestion; returns the known ones.
    fn known_keys<'m>(
        &mut self,
        map: &'m Mapping,
        path: &str,
        known: &[&str],
        what: &str,
    ) -> HashMap<&'m str, &'m Value> {
        let mut out = HashMap::new();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                self.at_value(path, format!("the keys of {what} must be strings, found {}", describe(k)));
                continue;
            };
            if known.contains(&key) {
                out.insert(key, v);
            } else {
                let hint = did_you_mean(key, known.iter().copied())
                    .map_or_else(String::new, |s| format!("; did you mean '{s}'?"));
                self.at_key(
                    &join(path, key),
                    format!("unknown key '{key}' in {what} (expected one of: {}){hint}", known.join(", ")),
                );
            }
        }
        out
    }
}

fn list(names: &[&str]) -> String {
    const SHOWN: usize = 12;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!("{}, ... ({} in all)", names[..SHOWN].join(", "), names.len())
    }
}

/// A task as read in the first pass, before references are resolved.
struct Base<'a> {
    name: String,
    path: String,
    pos: Pos,
    pool: Option<usize>,
    body: Body<'a>,
    /// `(arg, value, path)`.
    args: Vec<(String, &'a Value, String)>,
    /// Mapped args: `(arg, its values, the path of its list)`.
    map: Vec<(String, Mapped<'a>, String)>,
    /// `(name, path, each)`: `each` for `{ each: NAME }`, item i on NAME's item i.
    depends_on: Vec<(String, String, bool)>,
    /// `chunksize:` and its path.
    chunksize: Option<(usize, String)>,
    /// `retries:`, `retry_delay:`, `backoff:` as given.
    retry: RetryKeys,
    /// `timeout:` of a `call:` task (a command's is its [`CommandPlan`]'s).
    timeout: Option<f64>,
    first: usize,
    count: usize,
}

/// A mapped argument's values, as the file gives them.
enum Mapped<'a> {
    /// A list.
    List(&'a [Value]),
    /// A list of whole numbers read by the guard pass ([`super::index::IntColumn`]).
    Ints(Vec<i64>),
    /// `{ range: [start, stop, step] }`.
    Range { start: i64, step: i64 },
}

impl Mapped<'_> {
    /// Item `k`'s value, and its path below `apath` (the list's).
    fn item(&self, k: usize) -> std::borrow::Cow<'_, Value> {
        match self {
            Self::List(items) => std::borrow::Cow::Borrowed(&items[k]),
            Self::Ints(items) => std::borrow::Cow::Owned(items[k].into()),
            Self::Range { start, step } => {
                let k = i64::try_from(k).unwrap_or(i64::MAX);
                std::borrow::Cow::Owned(start.saturating_add(k.saturating_mul(*step)).into())
            }
        }
    }
}

enum Body<'a> {
    Call { name: String, path: String },
    Command(CommandPlan),
    Invalid(std::marker::PhantomData<&'a ()>),
}

pub(super) fn validate(file: &str, default_name: &str, text: &str, probe: bool) -> Result<Plan, ConfigErrors> {
    let one = |pos: Pos, message: String| ConfigErrors(vec![ConfigError { file: file.to_owned(), pos, message }]);
    if let Some((pos, c)) = control_character(text) {
        return Err(one(
            pos,
            format!("not a text file: a control character (U+{:04X}) here; expected a YAML task file", u32::from(c)),
        ));
    }
    // The guard pass: linear time, bounded depth (see `index`).
    let (idx, problem) = PosIndex::scan_lean(text);
    match problem {
        Some(Problem::TooDeep(pos)) => {
            return Err(one(
                pos,
                format!(
                    "not valid for a task file: mappings and lists nested more than {MAX_DEPTH} levels deep; \
                     expected a few levels (tasks, a task, its args)"
                ),
            ));
        }
        // libyaml would be slow on this text; yaml-rust2's message has to do.
        Some(Problem::Syntax(pos, msg)) if flow_depth(text) > MAX_DEPTH => {
            return Err(one(pos, format!("not valid YAML: {msg}")));
        }
        _ => {}
    }
    let (mut idx, problem) = (idx, problem);
    // Long lists of whole numbers in `map:` were read by the guard pass: serde_yaml does
    // not see them (see `IntColumn`).
    let hidden = if problem.is_none() { idx.hide_columns(text) } else { std::borrow::Cow::Borrowed(text) };
    let doc: Value = match serde_yaml::from_str(&hidden) {
        Ok(v) => v,
        Err(e) => {
            let (pos, message) = yaml_error(&e, &PosIndex::scan(text).0);
            return Err(one(pos, message));
        }
    };
    drop(hidden);
    let columns = std::mem::take(&mut idx.columns).into_iter().map(|c| (c.path, c.ints)).collect();
    let mut cx = Ctx { file, text, idx, errors: Vec::new(), probe, columns };
    let plan = check(&mut cx, default_name, &doc);
    // The document is let go before the errors are placed (which may index the text).
    drop(doc);
    match plan {
        Some(plan) if cx.errors.is_empty() => Ok(plan),
        _ => Err(cx.into_errors()),
    }
}

/// The first character YAML does not allow in a file (a NUL, say), with its position.
fn control_character(text: &str) -> Option<(Pos, char)> {
    super::index::positions(text).find(|&(_, c)| {
        let allowed = matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}')
            || matches!(c, '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
        !allowed
    })
}

/// How deep `[` and `{` nest in `text`, counted without regard to quotes or comments:
/// an upper bound of the flow nesting a YAML parser would see.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// serde_yaml's error as a position and a message that says what was expected.
fn yaml_error(e: &serde_yaml::Error, idx: &PosIndex) -> (Pos, String) {
    let mut pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos { line: l.line(), col: l.column() });
    let full = e.to_string();
    // serde_yaml appends " at line L column C" (we print the position first), then
    // possibly ", while parsing a flow mapping at line L column C": keep that context.
    let (problem, context) = match full.split_once(" at line ") {
        Some((problem, rest)) => {
            let context = rest.split_once(", ").map(|(_, c)| match c.split_once(" at line ") {
                Some((what, at)) => {
                    let at = at.replacen(" column ", ", column ", 1);
                    format!(" ({what} that starts at line {at})")
                }
                None => format!(" ({c})"),
            });
            (problem, context.unwrap_or_default())
        }
        None => (full.as_str(), String::new()),
    };
    // Errors found while building the value start with its path: "tasks[0]: ...".
    let (path, detail) = match problem.split_once(": ") {
        Some((path, detail)) if !path.contains(' ') => (Some(path), detail),
        _ => (None, problem),
    };
    let message = if let Some(key) = detail.strip_prefix("duplicate entry with key ") {
        let key = key.trim_matches('"');
        if let Some(path) = path {
            // The index keeps the last position of a key: the duplicate's.
            pos = idx.key(&format!("{path}.{key}"));
        }
        format!("duplicate key '{key}'; each key may appear once in a mapping")
    } else if detail == "repetition limit exceeded" {
        pos = idx.first_alias.unwrap_or(pos);
        "the aliases (*name) in this file expand to too many values (a YAML \"billion laughs\" bomb); \
         expected a task file whose aliases are repeated a few times at most"
            .to_owned()
    } else if detail == "recursion limit exceeded" {
        format!("mappings and lists nested too deep; expected a few levels (at most {MAX_DEPTH})")
    } else if detail.starts_with("deserializing from YAML containing more than one document") {
        pos = idx.second_document.unwrap_or(pos);
        "a second YAML document starts here (`---`); expected one task file per file".to_owned()
    } else if let Some(n) = detail.strip_prefix("invalid type: integer `").and_then(|r| r.split('`').next()) {
        format!("the number {n} is too large; expected a whole number that fits in 64 bits")
    } else {
        format!("not valid YAML: {problem}{context}")
    };
    (pos, message)
}

fn check(cx: &mut Ctx<'_>, default_name: &str, doc: &Value) -> Option<Plan> {
    let top = match doc {
        Value::Mapping(m) => m,
        Value::Null => {
            cx.at(Pos { line: 1, col: 1 }, "the file is empty; expected a mapping with `pools:` and `tasks:`");
            return None;
        }
        other => {
            cx.at_value(
                "",
                format!("expected a mapping with `pools:` and `tasks:` at the top, found {}", describe(other)),
            );
            return None;
        }
    };
    let keys = cx.known_keys(top, "", TOP_KEYS, "the task file");
    let name = match keys.get("name") {
        None => default_name.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            cx.at_value("name", format!("expected a string for name, found {}", describe(other)));
            default_name.to_owned()
        }
    };
    let stall_after = keys.get("stall_after").and_then(|v| seconds(cx, "stall_after", "stall_after", v, true));
    let pools = check_pools(cx, keys.get("pools").copied());
    let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    let Some(raw_tasks) = keys.get("tasks").copied() else {
        cx.at(Pos { line: 1, col: 1 }, "no `tasks:`; expected a list of tasks to run");
        return None;
    };
    let Value::Sequence(raw_tasks) = raw_tasks else {
        cx.at_value("tasks", format!("expected a list of tasks, found {}", describe(raw_tasks)));
        return None;
    };
    if raw_tasks.is_empty() {
        cx.at_value("tasks", "the task list is empty; expected at least one task");
        return None;
    }
    let mut bases = Vec::new();
    let mut next = 0usize;
    let mut seen: HashMap<String, Pos> = HashMap::new();
    for (i, raw) in raw_tasks.iter().enumerate() {
        let path = format!("tasks[{i}]");
        if let Some(mut b) = first_pass(cx, &path, raw, &pool_names) {
            if let Some(first) = seen.get(&b.name) {
                let first = *first;
                cx.at_value(
                    &join(&path, "name"),
                    format!("duplicate task name '{}' (first defined at line {})", b.name, first.line),
                );
                continue;
            }
            seen.insert(b.name.clone(), b.pos);
            if next.saturating_add(b.count) > MAX_FUTURES {
                cx.at_value(
                    &path,
                    format!(
                        "task '{}' brings the run to more than {MAX_FUTURES} futures; expected fewer items",
                        b.name
                    ),
                );
                continue;
            }
            b.first = next;
            next += b.count;
            bases.push(b);
        }
    }
    let (tasks, awaited) = second_pass(cx, &bases, &pools);
    // On the tasks as declared, so that a cycle is found even beside other problems.
    check_cycles(cx, &bases);
    if !cx.errors.is_empty() {
        return None;
    }
    let mut plan = Plan::new(name, cx.file.to_owned(), pools, tasks, awaited);
    plan.stall_after = stall_after;
    Some(plan)
}

fn check_pools(cx: &mut Ctx<'_>, raw: Option<&Value>) -> Vec<PoolPlan> {
    let default_pool = || PoolPlan {
        name: "default".into(),
        kind: PoolKind::Thread,
        max_workers: PoolKind::Thread.backend().default_workers(),
        settings: serde_json::Value::Null,
        retry: RetryKeys::default(),
    };
    let Some(raw) = raw else { return vec![default_pool()] };
    let Value::Mapping(map) = raw else {
        cx.at_value("pools", format!("expected a mapping of pool names to pools, found {}", describe(raw)));
        return vec![default_pool()];
    };
    if map.is_empty() {
        cx.at_value("pools", "no pools declared; declare one, or leave `pools:` out for a default thread pool");
    }
    // `kind`, `max_workers`, and every kind's own keys.
    let mut pool_keys = COMMON_POOL_KEYS.to_vec();
    for kind in PoolKind::ALL {
        for k in kind.backend().keys() {
            if !pool_keys.contains(k) {
                pool_keys.push(k);
            }
        }
    }
    let kinds: Vec<&str> = PoolKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut pools = Vec::new();
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            cx.at_value("pools", format!("pool names must be strings, found {}", describe(k)));
            continue;
        };
        let path = join("pools", name);
        let Value::Mapping(pm) = v else {
            cx.at_value(
                &path,
                format!(
                    "expected a mapping like {{ kind: thread, max_workers: 4 }} for pool '{name}', found {}",
                    describe(v)
                ),
            );
            continue;
        };
        let keys = cx.known_keys(pm, &path, &pool_keys, &format!("pool '{name}'"));
        let kind = match keys.get("kind").map(|v| (v, v.as_str().and_then(PoolKind::named))) {
            None => PoolKind::Thread,
            Some((_, Some(kind))) => kind,
            Some((other, None)) => {
                let hint = other.as_str().and_then(|s| did_you_mean(s, kinds.iter().copied()));
                let hint = hint.map_or_else(String::new, |s| format!("; did you mean '{s}'?"));
                let expected = match kinds.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or '{last}'", rest.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "))
                    }
                    _ => kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "),
                };
                cx.at_value(
                    &join(&path, "kind"),
                    format!("expected {expected} for kind, found {}{hint}", describe(other)),
                );
                PoolKind::Thread
            }
        };
        let backend = kind.backend();
        // A key of another kind's.
        for (k, _) in pm {
            let Some(k) = k.as_str() else { continue };
            if COMMON_POOL_KEYS.contains(&k) || backend.keys().contains(&k) || !pool_keys.contains(&k) {
                continue;
            }
            let owners: Vec<&str> =
                PoolKind::ALL.iter().filter(|o| o.backend().keys().contains(&k)).map(|o| o.as_str()).collect();
            cx.at_key(
                &join(&path, k),
                format!("{k} applies to {} pools; pool '{name}' is a {kind} pool", owners.join(" or ")),
            );
        }
        let max_workers = backend.max_workers(cx, &path, &keys);
        let limit = backend.worker_limit();
        if max_workers > limit {
            let key = if keys.contains_key("max_workers") { "max_workers" } else { "max_jobs" };
            cx.at_value(
                &join(&path, key),
                format!("{key} must be at most {limit} for a {kind} pool (got {max_workers}); a documented limit"),
            );
        }
        let probe = cx.probe;
        let settings = backend.settings(cx, &path, &keys, probe);
        let retry = retry_keys(cx, &path, &keys);
        pools.push(PoolPlan { name: name.to_owned(), kind, max_workers, settings, retry });
    }
    if pools.is_empty() {
        pools.push(default_pool());
    }
    pools
}

#[allow(clippy::too_many_lines)] // one arm per task key, in file order
fn first_pass<'a>(cx: &mut Ctx<'_>, path: &str, raw: &'a Value, pools: &[&str]) -> Option<Base<'a>> {
    let Value::Mapping(m) = raw else {
        cx.at_value(
            path,
            format!("expected a task (a mapping with name, pool, call or command), found {}", describe(raw)),
        );
        return None;
    };
    let keys = cx.known_keys(m, path, TASK_KEYS, "a task");
    let pos = cx.idx.value(path);
    let name = match keys.get("name") {
        None => {
            cx.at(pos, "this task has no `name:`");
            return None;
        }
        Some(Value::String(s)) if s.is_empty() => {
            cx.at_value(&join(path, "name"), "the task name is empty");
            return None;
        }
        Some(Value::String(s)) if s.contains(['[', ']', '/']) => {
            cx.at_value(
                &join(path, "name"),
                format!(
                    "task name '{s}' may not contain '[', ']' or '/' (they name the futures of `map:` and `submit`)"
                ),
            );
            return None;
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            cx.at_value(&join(path, "name"), format!("expected a string for the task name, found {}", describe(other)));
            return None;
        }
    };
    let pool = match keys.get("pool") {
        None if pools.len() == 1 => Some(0),
        None => {
            cx.at(pos, format!("task '{name}' needs a `pool:` (pools: {})", pools.join(", ")));
            None
        }
        Some(v) => resolve_pool(cx, &join(path, "pool"), v, pools),
    };
    let body = match (keys.get("call"), keys.get("command")) {
        (Some(_), Some(_)) => {
            cx.at(pos, format!("task '{name}' has both `call:` and `command:`; give one"));
            Body::Invalid(std::marker::PhantomData)
        }
        (None, None) => {
            cx.at(
                pos,
                format!(
                    "task '{name}' needs `call:` (a built-in: {}) or `command:` (a program)",
                    BUILTIN_NAMES.join(", ")
                ),
            );
            Body::Invalid(std::marker::PhantomData)
        }
        (Some(Value::String(c)), None) => {
            for k in ["env", "cwd"] {
                if keys.contains_key(k) {
                    cx.at_key(
                        &join(path, k),
                        format!("`{k}:` applies to `command:` tasks; task '{name}' has a `call:`"),
                    );
                }
            }
            Body::Call { name: c.clone(), path: join(path, "call") }
        }
        (Some(other), None) => {
            cx.at_value(
                &join(path, "call"),
                format!(
                    "expected the name of a built-in callable ({}), found {}",
                    BUILTIN_NAMES.join(", "),
                    describe(other)
                ),
            );
            Body::Invalid(std::marker::PhantomData)
        }
        (None, Some(cmd)) => {
            command(cx, path, cmd, &keys).map_or(Body::Invalid(std::marker::PhantomData), Body::Command)
        }
    };
    let mut args = Vec::new();
    match keys.get("args") {
        None => {}
        Some(Value::Mapping(am)) => {
            if matches!(body, Body::Command(_)) {
                cx.at_key(
                    &join(path, "args"),
                    "`args:` applies to `call:` tasks; a command's arguments go in its argv list",
                );
            }
            for (k, v) in am {
                match k.as_str() {
                    Some(a) => args.push((a.to_owned(), v, join(&join(path, "args"), a))),
                    None => cx.at_value(
                        &join(path, "args"),
                        format!("argument names must be strings, found {}", describe(k)),
                    ),
                }
            }
        }
        Some(Value::Null) => {}
        Some(other) => cx.at_value(
            &join(path, "args"),
            format!("expected a mapping of argument names to values, found {}", describe(other)),
        ),
    }
    let mut map = Vec::new();
    let mut count = 1;
    match keys.get("map") {
        None => {}
        Some(Value::Mapping(mm)) if !mm.is_empty() => {
            let mut shortest = usize::MAX;
            for (k, v) in mm {
                let Some(a) = k.as_str() else {
                    cx.at_value(&join(path, "map"), format!("argument names must be strings, found {}", describe(k)));
                    continue;
                };
                let apath = join(&join(path, "map"), a);
                let Some((mapped, len)) = mapped(cx, &apath, a, v) else { continue };
                if len == 0 {
                    cx.at_value(&apath, format!("`map: {a}` is empty: the task would run zero times"));
                    continue;
                }
                if args.iter().any(|(n, _, _)| n == a) {
                    cx.at_key(&apath, format!("argument '{a}' is given both in `args:` and in `map:`"));
                }
                shortest = shortest.min(len);
                map.push((a.to_owned(), mapped, apath));
            }
            if matches!(body, Body::Command(_)) {
                cx.at_key(&join(path, "map"), "`map:` applies to `call:` tasks");
            }
            if shortest != usize::MAX {
                count = shortest;
            }
        }
        Some(other) => cx.at_value(
            &join(path, "map"),
            format!("expected a mapping of argument names to lists (map: {{ n: [1, 2] }}), found {}", describe(other)),
        ),
    }
    let mut depends_on = Vec::new();
    match keys.get("depends_on") {
        None => {}
        Some(Value::Sequence(items)) => {
            for (j, it) in items.iter().enumerate() {
                let dpath = format!("{}[{j}]", join(path, "depends_on"));
                match it {
                    Value::String(s) => depends_on.push((s.clone(), dpath, false)),
                    Value::Mapping(m) => {
                        let keys = cx.known_keys(m, &dpath, &["each"], "a depends_on entry");
                        match keys.get("each") {
                            Some(Value::String(s)) => depends_on.push((s.clone(), join(&dpath, "each"), true)),
                            Some(other) => cx.at_value(
                                &join(&dpath, "each"),
                                format!("expected the name of a map task, found {}", describe(other)),
                            ),
                            None => cx.at_value(
                                &dpath,
                                "expected { each: MAP }: each item waits on the same item of that map".to_owned(),
                            ),
                        }
                    }
                    _ => {
                        cx.at_value(&dpath, format!("expected a task name or {{ each: MAP }}, found {}", describe(it)));
                    }
                }
            }
        }
        Some(Value::String(s)) => depends_on.push((s.clone(), join(path, "depends_on"), false)),
        Some(other) => {
            cx.at_value(&join(path, "depends_on"), format!("expected a list of task names, found {}", describe(other)));
        }
    }
    let chunksize = keys.get("chunksize").and_then(|v| {
        let at = join(path, "chunksize");
        positive(cx, &at, "chunksize", v).map(|n| (n, at))
    });
    let retry = retry_keys(cx, path, &keys);
    let timeout = match (&body, keys.get("timeout")) {
        (Body::Call { .. }, Some(v)) => seconds(cx, &join(path, "timeout"), "timeout", v, false),
        _ => None,
    };
    Some(Base {
        name,
        path: path.to_owned(),
        pos,
        pool,
        body,
        args,
        map,
        depends_on,
        chunksize,
        retry,
        timeout,
        first: 0,
        count,
    })
}

/// A `map:` argument's values and how many there are: a list, or `{ range: STOP }`,
/// `{ range: [START, STOP] }`, `{ range: [START, STOP, STEP] }` as Python's `range`.
fn mapped<'a>(cx: &mut Ctx<'_>, apath: &str, a: &str, v: &'a Value) -> Option<(Mapped<'a>, usize)> {
    const FORM: &str = "{ range: STOP }, { range: [START, STOP] } or { range: [START, STOP, STEP] }";
    match v {
        Value::Sequence(items) if items.is_empty() => match cx.columns.remove(apath) {
            Some(ints) => {
                let len = ints.len();
                Some((Mapped::Ints(ints), len))
            }
            None => Some((Mapped::List(items), 0)),
        },
        Value::Sequence(items) => Some((Mapped::List(items), items.len())),
        Value::Mapping(m) => {
            let keys = cx.known_keys(m, apath, &["range"], &format!("`map: {a}`"));
            let Some(r) = keys.get("range") else {
                cx.at_value(apath, format!("expected a list of values or {FORM} for `map: {a}`"));
                return None;
            };
            let rpath = join(apath, "range");
            let bounds: Vec<&Value> = match r {
                Value::Sequence(items) if (2..=3).contains(&items.len()) => items.iter().collect(),
                Value::Sequence(_) | Value::Mapping(_) => {
                    cx.at_value(&rpath, format!("expected {FORM}, found {}", describe(r)));
                    return None;
                }
                one => vec![one],
            };
            let mut ints = Vec::new();
            for (j, b) in bounds.iter().enumerate() {
                let at = if bounds.len() == 1 { rpath.clone() } else { format!("{rpath}[{j}]") };
                ints.push(crate::schema::int(cx, b, &at, "a range bound", i64::MIN, i64::MAX)?);
            }
            let (start, end, step) = match ints[..] {
                [end] => (0, end, 1),
                [start, end] => (start, end, 1),
                [start, end, step] => (start, end, step),
                _ => return None,
            };
            if step == 0 {
                cx.at_value(&rpath, "the range's step is 0; expected a step other than 0".to_owned());
                return None;
            }
            // Python's len(range(start, stop, step)).
            let (lo, hi, by) = if step > 0 { (start, end, step) } else { (end, start, -step) };
            let span = i128::from(hi) - i128::from(lo);
            let len = if span <= 0 { 0 } else { (span - 1) / i128::from(by) + 1 };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_FUTURES {
                cx.at_value(&rpath, format!("the range has {len} values; a run is limited to {MAX_FUTURES} futures"));
                return None;
            }
            Some((Mapped::Range { start, step }, len))
        }
        _ => {
            cx.at_value(apath, format!("expected a list of values or {FORM} for `map: {a}`, found {}", describe(v)));
            None
        }
    }
}

fn resolve_pool(cx: &mut Ctx<'_>, path: &str, v: &Value, pools: &[&str]) -> Option<usize> {
    let Some(p) = v.as_str() else {
        cx.at_value(path, format!("expected a pool name ({}), found {}", pools.join(", "), describe(v)));
        return None;
    };
    if let Some(i) = pools.iter().position(|q| *q == p) {
        return Some(i);
    }
    let hint = did_you_mean(p, pools.iter().copied()).map_or_else(String::new, |s| format!("; did you mean '{s}'?"));
    cx.at_value(path, format!("unknown pool '{p}' (pools: {}){hint}", pools.join(", ")));
    None
}

fn command(cx: &mut Ctx<'_>, path: &str, cmd: &Value, keys: &HashMap<&str, &Value>) -> Option<CommandPlan> {
    let cpath = join(path, "command");
    let argv: Vec<String> = match cmd {
        Value::Sequence(items) if !items.is_empty() => {
            let mut argv = Vec::new();
            for (j, it) in items.iter().enumerate() {
                match scalar_string(it) {
                    Some(s) if s.contains('\0') => cx.at_value(
                        &format!("{cpath}[{j}]"),
                        "a NUL byte in a command's argument; a program cannot be given one".to_owned(),
                    ),
                    Some(s) => argv.push(s),
                    None => cx.at_value(
                        &format!("{cpath}[{j}]"),
                        format!("expected a string argument, found {}", describe(it)),
                    ),
                }
            }
            argv
        }
        Value::Sequence(_) => {
            cx.at_value(&cpath, "the command is empty; expected [program, arg, ...]");
            return None;
        }
        other => {
            cx.at_value(
                &cpath,
                format!(
                    "expected a list [program, arg, ...] like [\"tar\", \"czf\", \"out.tgz\"], found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let mut env = Vec::new();
    match keys.get("env") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match (k.as_str(), scalar_string(v)) {
                    (Some(k), Some(_)) if k.is_empty() || k.contains(['=', '\0']) => cx.at_key(
                        &join(&join(path, "env"), k),
                        format!(
                            "environment variable name {k:?} is empty or holds '=' or a NUL byte; expected a name like PATH"
                        ),
                    ),
                    (Some(k), Some(v)) if v.contains('\0') => cx.at_value(
                        &join(&join(path, "env"), k),
                        format!("a NUL byte in the value of {k}; an environment variable cannot hold one"),
                    ),
                    (Some(k), Some(v)) => env.push((k.to_owned(), v)),
                    _ => cx.at_value(
                        &join(path, "env"),
                        format!("expected NAME: value pairs in env, found {} for {}", describe(v), describe(k)),
                    ),
                }
            }
        }
        Some(other) => cx.at_value(
            &join(path, "env"),
            format!("expected a mapping of variable names to values, found {}", describe(other)),
        ),
    }
    let cwd = match keys.get("cwd") {
        None => None,
        Some(Value::String(s)) if s.contains('\0') => {
            cx.at_value(&join(path, "cwd"), "a NUL byte in the directory's path".to_owned());
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            cx.at_value(&join(path, "cwd"), format!("expected a directory path, found {}", describe(other)));
            None
        }
    };
    let timeout = keys.get("timeout").and_then(|v| seconds(cx, &join(path, "timeout"), "timeout", v, false));
    Some(CommandPlan { argv, env, cwd, timeout })
}

/// Resolves references to tasks (`depends_on`, `wait_on`) against every task's name,
/// through a hash of the names (a reference costs the same however many tasks there are).
struct Names<'b, 'a> {
    bases: &'b [Base<'a>],
    by_name: HashMap<&'b str, usize>,
}

impl<'b, 'a> Names<'b, 'a> {
    fn new(bases: &'b [Base<'a>]) -> Self {
        Self { bases, by_name: bases.iter().enumerate().map(|(i, b)| (b.name.as_str(), i)).collect() }
    }

    /// The task a name stands for (its index in `bases`) and the futures it means: all of
    /// a `map:` task's, or the one named `name[i]`.
    fn resolve(&self, name: &str) -> Option<(usize, std::ops::Range<usize>)> {
        if let Some(&i) = self.by_name.get(name) {
            let b = &self.bases[i];
            return Some((i, b.first..b.first + b.count));
        }
        let (base, item) = name.strip_suffix(']')?.rsplit_once('[')?;
        let item = item.parse::<usize>().ok()?;
        let &i = self.by_name.get(base)?;
        let b = &self.bases[i];
        (item < b.count && (b.count > 1 || !b.map.is_empty())).then(|| (i, b.first + item..b.first + item + 1))
    }

    fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.bases.iter().map(|b| b.name.as_str()).collect();
        let hint =
            did_you_mean(name, names.iter().copied()).map_or_else(String::new, |s| format!("; did you mean '{s}'?"));
        format!("unknown task '{name}' (tasks: {}){hint}", list(&names))
    }
}

/// `3 items`, or `no map` for a plain task.
fn items(b: &Base<'_>) -> String {
    if b.map.is_empty() {
        "no map".to_owned()
    } else {
        format!("{} item{}", b.count, if b.count == 1 { "" } else { "s" })
    }
}

/// What a built-in's arguments are checked against: the file's tasks and pools. Without
/// a `cx`, nothing is reported: `failed` says whether something would have been.
struct CallScope<'c, 'x, 'b, 'a> {
    cx: Option<&'c mut Ctx<'x>>,
    failed: bool,
    names: &'c Names<'b, 'a>,
    pool_names: &'c [&'c str],
    pools: &'c [PoolPlan],
}

impl<'c, 'x, 'b, 'a> CallScope<'c, 'x, 'b, 'a> {
    fn new(
        cx: Option<&'c mut Ctx<'x>>,
        names: &'c Names<'b, 'a>,
        pool_names: &'c [&'c str],
        pools: &'c [PoolPlan],
    ) -> Self {
        Self { cx, failed: false, names, pool_names, pools }
    }
}

impl Report for CallScope<'_, '_, '_, '_> {
    fn at_value(&mut self, path: &str, message: String) {
        self.failed = true;
        if let Some(cx) = self.cx.as_deref_mut() {
            cx.at_value(path, message);
        }
    }
    fn at_key(&mut self, path: &str, message: String) {
        self.failed = true;
        if let Some(cx) = self.cx.as_deref_mut() {
            cx.at_key(path, message);
        }
    }
}

impl Scope for CallScope<'_, '_, '_, '_> {
    fn task(&mut self, t: &str, path: &str) -> Option<usize> {
        match self.names.resolve(t).map(|(_, ix)| ix) {
            Some(ix) if ix.len() == 1 => Some(ix.start),
            Some(ix) => {
                Report::at_value(
                    self,
                    path,
                    format!(
                        "task '{t}' is a map of {} futures; wait on one of them, from {t}[0] to {t}[{}]",
                        ix.len(),
                        ix.len() - 1
                    ),
                );
                None
            }
            None => {
                let m = self.names.unknown(t);
                Report::at_value(self, path, m);
                None
            }
        }
    }

    fn pool(&mut self, v: &Value, path: &str) -> Option<usize> {
        if let Some(cx) = self.cx.as_deref_mut() {
            return resolve_pool(cx, path, v, self.pool_names);
        }
        let found = v.as_str().and_then(|p| self.pool_names.iter().position(|q| *q == p));
        self.failed |= found.is_none();
        found
    }

    fn pool_name(&self, pool: usize) -> &str {
        &self.pools[pool].name
    }

    fn pool_kind(&self, pool: usize) -> PoolKind {
        self.pools[pool].kind
    }
}

/// A wait between attempts with no attempt to wait for is a mistake: said so.
fn check_retry(cx: &mut Ctx<'_>, b: &Base<'_>, pools: &[PoolPlan]) {
    let Some(p) = b.pool else { return };
    if b.retry.or(pools[p].retry).retries > 0 {
        return;
    }
    for (key, given) in [("retry_delay", b.retry.delay.is_some()), ("backoff", b.retry.backoff.is_some())] {
        if given {
            cx.at_key(
                &join(&b.path, key),
                format!("{key} has no effect: task '{}' has no retries (add `retries: N`)", b.name),
            );
        }
    }
}

fn second_pass(cx: &mut Ctx<'_>, bases: &[Base<'_>], pools: &[PoolPlan]) -> (Vec<TaskPlan>, Vec<usize>) {
    let names = Names::new(bases);
    let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    let mut tasks = Vec::new();
    let mut awaited = Vec::new();
    for b in bases {
        let mut depends_on: Vec<Dep> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // `{ each: MAP }`: item i of this map waits on item i of MAP.
        let mut each: Vec<usize> = Vec::new();
        for (d, dpath, item_wise) in &b.depends_on {
            match names.resolve(d) {
                Some((_, ix)) if ix.start < b.first + b.count && b.first < ix.end => {
                    cx.at_value(dpath, format!("task '{}' depends on itself", b.name));
                }
                Some((j, ix)) if *item_wise => {
                    let other = &bases[j];
                    let is_map = |t: &Base<'_>| !t.map.is_empty();
                    if !is_map(b) || !is_map(other) || ix.len() != other.count || other.count != b.count {
                        cx.at_value(
                            dpath,
                            format!(
                                "{{ each: {d} }} pairs the items of two maps of the same length; task '{}' has {} and '{d}' has {}",
                                b.name,
                                items(b),
                                items(other),
                            ),
                        );
                    } else if !each.contains(&j) {
                        each.push(j);
                    }
                }
                Some((j, ix)) => {
                    let dep = if ix.len() == 1 { Dep::Task(ix.start) } else { Dep::Group(j) };
                    // Each once (a dependency named twice is still one).
                    if seen.insert(dep.clone()) {
                        depends_on.push(dep);
                    }
                }
                None => {
                    let m = names.unknown(d);
                    cx.at_value(dpath, m);
                }
            }
        }
        // Python's `map(..., chunksize=n)`: a `map:` task's items go to a process pool's
        // worker n at a time.
        let chunk = match (&b.chunksize, b.pool) {
            (None, _) | (_, None) => None,
            (Some((_, at)), _) if b.map.is_empty() => {
                cx.at_key(at, format!("chunksize applies to `map:` tasks; task '{}' has no map", b.name));
                None
            }
            (Some((_, at)), Some(p)) if pools[p].kind != PoolKind::Process => {
                let message =
                    format!("chunksize applies to process pools; pool '{}' is a {} pool", pools[p].name, pools[p].kind);
                cx.at_key(at, message);
                None
            }
            (Some((n, _)), Some(_)) => Some(*n),
        };
        check_retry(cx, b, pools);
        let own = b.pool.unwrap_or(0);
        let body = match &b.body {
            Body::Call { name: call, path: call_path } if b.map.is_empty() => {
                let mut scope = CallScope::new(Some(&mut *cx), &names, &pool_names, pools);
                let args: Vec<(&str, &Value, String)> =
                    b.args.iter().map(|(a, v, p)| (a.as_str(), *v, p.clone())).collect();
                match crate::builtins::parse(&mut scope, call, call_path, &args, own) {
                    Some(builtin) => {
                        builtin.awaited(&mut |t| awaited.push(t));
                        Some(PlanBody::One(Work::Call(builtin)))
                    }
                    None => None,
                }
            }
            Body::Call { name: call, path: call_path } => {
                let ok = check_items(cx, b, call, call_path, (&names, &pool_names, pools), &mut awaited);
                ok.then(|| PlanBody::Map { call: call.clone(), columns: b.map.iter().map(column).collect() })
            }
            Body::Command(c) => Some(PlanBody::One(Work::Command(c.clone()))),
            Body::Invalid(_) => None,
        };
        let (Some(body), Some(pool)) = (body, b.pool) else { continue };
        tasks.push(TaskPlan {
            name: b.name.clone(),
            pool,
            body,
            args: b.args.iter().map(|(a, v, _)| (a.clone(), (*v).clone())).collect(),
            depends_on: depends_on.into(),
            each,
            chunk,
            retry: b.retry.or(pools[pool].retry),
            timeout: b.timeout,
            first: b.first,
            len: b.count,
            pos: b.pos,
        });
    }
    awaited.sort_unstable();
    awaited.dedup();
    (tasks, awaited)
}

/// A mapped argument as the plan keeps it: whole numbers in 8 bytes each.
fn column((name, mapped, _): &(String, Mapped<'_>, String)) -> (String, Column) {
    let column = match mapped {
        Mapped::Range { start, step } => Column::Range { start: *start, step: *step },
        Mapped::Ints(items) => Column::Ints(items.clone()),
        Mapped::List(items) => {
            let ints: Option<Vec<i64>> =
                items.iter().map(|v| if let Value::Number(n) = v { n.as_i64() } else { None }).collect();
            ints.map_or_else(|| Column::Values(items.to_vec()), Column::Ints)
        }
    };
    (name.clone(), column)
}

/// Checks every item of a `map:` task's calls; true if all are good. An item is first
/// read without paths or messages (most files are right, and a path an argument costs
/// an allocation); one that is wrong is read again to report where and why.
fn check_items(
    cx: &mut Ctx<'_>,
    b: &Base<'_>,
    call: &str,
    call_path: &str,
    (names, pool_names, pools): (&Names<'_, '_>, &[&str], &[PoolPlan]),
    awaited: &mut Vec<usize>,
) -> bool {
    let own = b.pool.unwrap_or(0);
    let mut good = true;
    for k in 0..b.count {
        // On the stack (a call has a few arguments): two allocations an item fewer.
        let values: smallvec::SmallVec<[std::borrow::Cow<'_, Value>; 4]> =
            b.map.iter().map(|(_, m, _)| m.item(k)).collect();
        let mut args: smallvec::SmallVec<[(&str, &Value, String); 8]> =
            b.args.iter().map(|(a, v, _)| (a.as_str(), *v, String::new())).collect();
        args.extend(b.map.iter().zip(&values).map(|((a, _, _), v)| (a.as_str(), v.as_ref(), String::new())));
        let mut quiet = CallScope::new(None, names, pool_names, pools);
        let parsed = crate::builtins::parse(&mut quiet, call, call_path, &args, own);
        match parsed {
            Some(builtin) if !quiet.failed => builtin.awaited(&mut |t| awaited.push(t)),
            _ => {
                good = false;
                // Again, with paths, reporting.
                for (arg, (a, m, apath)) in args.iter_mut().skip(b.args.len()).zip(&b.map) {
                    debug_assert_eq!(&arg.0, a);
                    arg.2 = match m {
                        Mapped::List(_) | Mapped::Ints(_) => format!("{apath}[{k}]"),
                        Mapped::Range { .. } => join(apath, "range"),
                    };
                }
                for (arg, (_, _, path)) in args.iter_mut().zip(&b.args) {
                    arg.2.clone_from(path);
                }
                let mut scope = CallScope::new(Some(&mut *cx), names, pool_names, pools);
                let _ = crate::builtins::parse(&mut scope, call, call_path, &args, own);
                // A range's bad values would be reported once an item.
                if b.map.iter().any(|(_, m, _)| matches!(m, Mapped::Range { .. })) {
                    break;
                }
            }
        }
    }
    good
}

fn check_cycles(cx: &mut Ctx<'_>, bases: &[Base<'_>]) {
    // A graph of declared tasks: a `map:` task's futures all share its dependencies, so
    // the futures' graph has a cycle exactly when this one has. Self-dependencies are
    // reported by `second_pass`.
    let names = Names::new(bases);
    let deps: Vec<Vec<usize>> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut d: Vec<usize> = b
                .depends_on
                .iter()
                .filter_map(|(name, _, _)| names.resolve(name).map(|(j, _)| j))
                .filter(|&j| j != i)
                .collect();
            // Each dependency once, in the order written.
            let mut seen = std::collections::HashSet::new();
            d.retain(|j| seen.insert(*j));
            d
        })
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut color = vec![0u8; bases.len()];
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..bases.len() {
        if color[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at).
        let mut frames = vec![(start, 0usize)];
        color[start] = 1;
        stack.push(start);
        while let Some(&mut (node, ref mut next)) = frames.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match color[dep] {
                    0 => {
                        color[dep] = 1;
                        stack.push(dep);
                        frames.push((dep, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&n| n == dep).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..].iter().map(|&n| bases[n].name.as_str()).collect();
                        cycle.push(bases[dep].name.as_str());
                        let msg =
                            format!("depends_on cycle: {} (each waits for the next to be done)", cycle.join(" -> "));
                        cx.at_key(&join(&bases[dep].path, "depends_on"), msg);
                        return;
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
                frames.pop();
            }
        }
    }
}
