//! Reading a task file's values with positions: where an error goes, the argument list of a call, and the readers of numbers, seconds and strings that report through them.
//!
//! Validation (`config`), the built-in callables (`builtins`) and the pool kinds
//! (`pools`) read values with these, so that every message names the same things the
//! same way and points at the value (or key) it is about.

use serde_yaml::Value;

/// Where validation reports what is wrong: at the position of the value, or of the key,
/// found at a dotted path of the document (`tasks[3].args.n`).
pub trait Report {
    /// An error about the value at `path`.
    fn at_value(&mut self, path: &str, message: String);
    /// An error about the key at `path` (an unknown or misplaced key).
    fn at_key(&mut self, path: &str, message: String);
}

/// `parent.key`, or `key` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// How a value reads in a message: `the string 'x'`, `a list`, `the number 3`.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string '{}'", truncate(s, 40)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// `s`, cut to `n` characters with `...`.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// `; did you mean 'x'?` when a candidate is close to `word`, else nothing.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates).map_or_else(String::new, |s| format!("; did you mean '{s}'?"))
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= (c.len().max(word.len()) / 3).max(1) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit (`biuld`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && *ca == b[j - 1] && a[i - 1] == *cb {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// A string of a scalar (numbers and booleans as written).
pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The longest duration a task file may give (a sleep, a timeout): one that a clock can
/// still add to now. 1e300 seconds used to pass validation and fail at run time.
pub const MAX_SECONDS: f64 = 1e9;

/// A number of seconds, more than 0 (or 0 too, with `zero_ok`), at most [`MAX_SECONDS`].
pub fn seconds(r: &mut dyn Report, path: &str, what: &str, v: &Value, zero_ok: bool) -> Option<f64> {
    match v.as_f64() {
        Some(s) if s.is_finite() && s > MAX_SECONDS => {
            let given = if let Value::Number(n) = v { n.to_string() } else { s.to_string() };
            r.at_value(path, format!("{what} must be at most {MAX_SECONDS} seconds, about 31 years (got {given})"));
            None
        }
        Some(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) => Some(s),
        Some(s) => {
            r.at_value(
                path,
                format!("{what} must be {} seconds (got {s})", if zero_ok { "0 or more" } else { "more than 0" }),
            );
            None
        }
        None => {
            r.at_value(path, format!("expected a number of seconds for {what}, found {}", describe(v)));
            None
        }
    }
}

/// A whole number from `min` to `max`.
pub fn int(r: &mut dyn Report, v: &Value, path: &str, what: &str, min: i64, max: i64) -> Option<i64> {
    match v.as_i64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            r.at_value(path, format!("{what} must be between {min} and {max} (got {n})"));
            None
        }
        None => {
            r.at_value(path, format!("expected a whole number for {what}, found {}", describe(v)));
            None
        }
    }
}

/// A whole number greater than 0.
pub fn positive(r: &mut dyn Report, path: &str, what: &str, v: &Value) -> Option<usize> {
    match v.as_i64() {
        Some(n) if n >= 1 => usize::try_from(n).ok(),
        Some(n) => {
            r.at_value(path, format!("{what} must be greater than 0 (got {n})"));
            None
        }
        None => {
            r.at_value(path, format!("expected a whole number greater than 0 for {what}, found {}", describe(v)));
            None
        }
    }
}

/// The arguments of one call, read by name: each one read is marked as known, and
/// [`Args::finish`] flags the others (with a suggestion) and reports nothing twice.
pub struct Args<'x, 'v> {
    /// `(argument, value, path)`.
    items: &'x [(&'x str, &'v Value, String)],
    used: smallvec::SmallVec<[&'static str; 8]>,
    /// The callable's name, for messages.
    call: &'x str,
    /// Where the call is named (for a missing argument).
    call_path: &'x str,
}

impl<'x, 'v> Args<'x, 'v> {
    /// The arguments `items` (`(name, value, path)`) of callable `call`, named at `call_path`.
    pub fn new(items: &'x [(&'x str, &'v Value, String)], call: &'x str, call_path: &'x str) -> Self {
        Self { items, used: smallvec::SmallVec::new(), call, call_path }
    }

    /// The callable's name.
    pub fn call(&self) -> &'x str {
        self.call
    }

    /// Where the call is named.
    pub fn call_path(&self) -> &'x str {
        self.call_path
    }

    /// Argument `name` and its path, if given.
    pub fn get(&mut self, name: &'static str) -> Option<(&'v Value, String)> {
        if !self.used.contains(&name) {
            self.used.push(name);
        }
        self.items.iter().find(|(a, _, _)| *a == name).map(|(_, v, p)| (*v, p.clone()))
    }

    /// Argument `name` and its path; reported at the call if missing.
    pub fn required(&mut self, r: &mut dyn Report, name: &'static str) -> Option<(&'v Value, String)> {
        let found = self.get(name);
        if found.is_none() {
            r.at_value(self.call_path, format!("{} needs the argument '{name}' (in `args:` or `map:`)", self.call));
        }
        found
    }

    /// Optional argument `name` in seconds (0 or more; `null` is none); clears `ok` if
    /// it is given and wrong.
    pub fn optional_seconds(&mut self, r: &mut dyn Report, name: &'static str, ok: &mut bool) -> Option<f64> {
        let (v, p) = self.get(name)?;
        if v.is_null() {
            return None;
        }
        let s = seconds(r, &p, name, v, true);
        if s.is_none() {
            *ok = false;
        }
        s
    }

    /// Flags every argument given that the callable did not read.
    pub fn finish(self, r: &mut dyn Report) {
        for (a, _, p) in self.items {
            if !self.used.contains(a) {
                let hint = hint(a, self.used.iter().copied());
                let expected = if self.used.is_empty() { "none".to_owned() } else { self.used.join(", ") };
                r.at_key(p, format!("unknown argument '{a}' for {} (arguments: {expected}){hint}", self.call));
            }
        }
    }
}
