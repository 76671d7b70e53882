//! Where each key and value of a YAML file starts: a path → line:column index.
//!
//! serde_yaml reports positions for syntax and type errors only; the checks that run
//! after it (unknown pools, cycles, bad arguments) need positions too. This index is
//! built from yaml-rust2's marked event stream, once the file has parsed. Paths look
//! like `tasks[2].args.n`; a lookup falls back to the nearest ancestor that has one
//! (values reached through an alias, say).
//!
//! The same pass runs *before* serde_yaml, as a guard: yaml-rust2 reads the text in
//! linear time and stops at [`MAX_DEPTH`] levels of nesting, whereas libyaml (under
//! serde_yaml) slows down quadratically with the depth of flow collections (100,000
//! nested `[` take it minutes). It also notes where the first alias and the second
//! document start, so that serde_yaml's errors about those can be given a position.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// The deepest nesting of mappings and sequences a task file may have. A task file
/// needs about six levels (tasks, a task, its args, a `submit`'s inner args, a list);
/// serde_yaml itself refuses more than 128.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why the guard pass stopped before the end of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A mapping or sequence starts here at depth `MAX_DEPTH + 1`.
    TooDeep(Pos),
    /// yaml-rust2 cannot read the text: where, and its message.
    Syntax(Pos, String),
}

/// A `map:` column written as a flow list of plain whole numbers (`base: [1, 2, 3]`), read
/// by the guard pass as it goes by: serde_yaml would hold an event, then a value, for
/// each item (a 100,000-item map cost 50 MB and most of the file's load time), whereas
/// this is 8 bytes an item. The list is then hidden from serde_yaml (see
/// [`PosIndex::hide_columns`]) and the plan takes it from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntColumn {
    /// The list's path (`tasks[2].map.base`).
    pub(crate) path: String,
    /// Where its `[` and its `]` are (character offsets).
    span: (usize, usize),
    /// Its items.
    pub(crate) ints: Vec<i64>,
}

/// Lists shorter than this go through serde_yaml as they are.
const INT_COLUMN_MIN: usize = 256;

/// What a collection is to [`Columns`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Tasks,
    Task(usize),
    Map(usize),
    Column,
    Other,
}

/// One open collection, for [`Columns`].
struct Open {
    role: Role,
    /// A mapping (else a sequence).
    map: bool,
    /// In a mapping: the next node is a key.
    expect_key: bool,
    /// In a mapping: the key of the value that comes next.
    key: Option<String>,
    /// In a sequence: the next item's index.
    next: usize,
}

/// Finds the [`IntColumn`]s in the guard pass's event stream: `tasks[N].map.KEY` whose
/// value is a flow list of plain whole numbers.
#[derive(Default)]
struct Columns {
    /// Lists of whole numbers found in the text before the pass ([`find_int_lists`]), by
    /// where their `[` is: yaml-rust2 is given them empty (it would hold every item of a
    /// one-line flow mapping, a task written `- { ... }`, until the line ends).
    lists: HashMap<usize, Vec<i64>>,
    open: Vec<Open>,
    /// The column being read: its path, where its `[` is, its items, whether it still
    /// qualifies.
    current: Option<(String, usize, Vec<i64>, bool)>,
    found: Vec<IntColumn>,
}

impl Columns {
    fn on_event(&mut self, ev: &Event, mark: Marker) {
        match ev {
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(o) = self.open.pop() {
                    if o.role == Role::Column {
                        if let Some((path, start, mut ints, true)) = self.current.take() {
                            if ints.is_empty() {
                                ints = self.lists.remove(&start).unwrap_or_default();
                            }
                            if ints.len() >= INT_COLUMN_MIN {
                                self.found.push(IntColumn { path, span: (start, mark.index()), ints });
                            }
                        }
                        self.current = None;
                    }
                }
            }
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                let opens = matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..));
                let map = matches!(ev, Event::MappingStart(..));
                // Where this node sits: its parent's role and its key or index.
                let (parent, key, index) = match self.open.last_mut() {
                    None => (None, None, 0),
                    Some(o) if o.map && o.expect_key => {
                        o.expect_key = false;
                        o.key = match ev {
                            Event::Scalar(k, ..) => Some(k.clone()),
                            _ => None,
                        };
                        if opens {
                            // A complex key: nothing of ours is inside.
                            self.open.push(Open { role: Role::Other, map, expect_key: map, key: None, next: 0 });
                        }
                        return;
                    }
                    Some(o) if o.map => {
                        o.expect_key = true;
                        (Some(o.role), o.key.take(), 0)
                    }
                    Some(o) => {
                        o.next += 1;
                        (Some(o.role), None, o.next - 1)
                    }
                };
                if parent == Some(Role::Column) {
                    let plain = match ev {
                        Event::Scalar(v, TScalarStyle::Plain, _, None) => v.parse::<i64>().ok(),
                        _ => None,
                    };
                    if let Some((_, _, ints, ok)) = self.current.as_mut() {
                        match plain {
                            Some(n) if *ok => ints.push(n),
                            _ => *ok = false,
                        }
                    }
                }
                if !opens {
                    return;
                }
                let role = match (parent, key.as_deref(), map) {
                    (None, _, true) => Role::Root,
                    (Some(Role::Root), Some("tasks"), false) => Role::Tasks,
                    (Some(Role::Tasks), _, true) => Role::Task(index),
                    (Some(Role::Task(n)), Some("map"), true) => Role::Map(n),
                    (Some(Role::Map(n)), Some(k), false) if matches!(ev, Event::SequenceStart(0, None)) => {
                        self.current = Some((format!("tasks[{n}].map.{k}"), mark.index(), Vec::new(), true));
                        Role::Column
                    }
                    _ => Role::Other,
                };
                self.open.push(Open { role, map, expect_key: map, key: None, next: 0 });
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// Positions of every key and value in a YAML document.
#[derive(Debug, Default)]
pub(crate) struct PosIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    /// Where the first alias (`*name`) is.
    pub(crate) first_alias: Option<Pos>,
    /// Where the second document starts, if there is one.
    pub(crate) second_document: Option<Pos>,
    /// The `map:` columns read on the way (the lean pass only).
    pub(crate) columns: Vec<IntColumn>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A collection below what a lean index records.
    Skip,
}

/// How many levels a lean index records: the top's keys, its values, and their items
/// (`tasks[3]`, `pools.cpu`): the positions a valid file's plan keeps.
const LEAN_LEVELS: usize = 2;

#[derive(Default)]
struct Builder {
    /// Record only the first [`LEAN_LEVELS`] levels.
    lean: bool,
    stack: Vec<Frame>,
    index: PosIndex,
    documents: usize,
    too_deep: Option<Pos>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of the value that this event starts, or `None` if the event is a key.
    fn value_path(&mut self, ev: &Event, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            Some(Frame::Skip) => None,
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => {
                if let Some(k) = key.take() {
                    Some(join(path, &k))
                } else {
                    let k = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => "?".to_owned(),
                    };
                    // yaml-rust2 marks a block mapping where its first `:` is; it starts
                    // at its first key.
                    if let Some(start) = self.index.values.get_mut(path.as_str()) {
                        if (pos.line, pos.col) < (start.line, start.col) {
                            *start = pos;
                        }
                    }
                    self.index.keys.insert(join(path, &k), pos);
                    *key = Some(k);
                    None
                }
            }
        }
    }
}

impl Builder {
    fn on_event(&mut self, ev: &Event, mark: Marker) {
        let pos = Pos { line: mark.line(), col: mark.col() + 1 };
        match ev {
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                if matches!(ev, Event::Alias(_)) && self.index.first_alias.is_none() {
                    self.index.first_alias = Some(pos);
                }
                let opens = matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..));
                if opens && self.stack.len() >= MAX_DEPTH {
                    self.too_deep = Some(pos);
                    return;
                }
                if self.lean && self.stack.len() > LEAN_LEVELS {
                    // Keys and values alternate in a recorded mapping; a block mapping
                    // starts at its first key.
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        if key.take().is_none() {
                            if let Some(start) = self.index.values.get_mut(path.as_str()) {
                                if (pos.line, pos.col) < (start.line, start.col) {
                                    *start = pos;
                                }
                            }
                            *key = Some(String::new());
                        }
                    }
                    if opens {
                        self.stack.push(Frame::Skip);
                    }
                    return;
                }
                let Some(path) = self.value_path(ev, pos) else { return };
                self.index.values.entry(path.clone()).or_insert(pos);
                match ev {
                    Event::MappingStart(..) => self.stack.push(Frame::Map { path, key: None }),
                    Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.index.second_document = Some(pos);
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

impl PosIndex {
    /// Indexes `text`, in time linear in its length, and says why it stopped early, if it
    /// did: nesting deeper than [`MAX_DEPTH`], or text yaml-rust2 cannot read (the index
    /// then holds what was read before).
    pub(crate) fn scan(text: &str) -> (Self, Option<Problem>) {
        Self::scan_with(text, false)
    }

    /// [`PosIndex::scan`] that records only the top levels (see [`LEAN_LEVELS`]): the
    /// guard pass of a file that is likely valid, cheap in memory however many values it
    /// has. Other positions fall back to their nearest recorded ancestor.
    pub(crate) fn scan_lean(text: &str) -> (Self, Option<Problem>) {
        Self::scan_with(text, true)
    }

    fn scan_with(text: &str, lean: bool) -> (Self, Option<Problem>) {
        let mut b = Builder { lean, ..Builder::default() };
        let text = untab(text);
        // The guard pass of a plain-ASCII file reads long lists of whole numbers itself (see
        // `Columns::lists`); yaml-rust2 sees them empty, at the same offsets.
        let (text, lists) = if lean && text.is_ascii() { find_int_lists(text) } else { (text, HashMap::new()) };
        let mut columns = lean.then(|| Columns { lists, ..Columns::default() });
        let mut parser = Parser::new_from_str(&text);
        loop {
            match parser.next_token() {
                Ok((Event::StreamEnd, _)) => {
                    if let Some(c) = columns {
                        b.index.columns = c.found;
                    }
                    return (b.index, None);
                }
                Ok((ev, mark)) => {
                    if let Some(c) = columns.as_mut() {
                        c.on_event(&ev, mark);
                    }
                    b.on_event(&ev, mark);
                    if let Some(pos) = b.too_deep {
                        return (b.index, Some(Problem::TooDeep(pos)));
                    }
                }
                Err(e) => {
                    let m = e.marker();
                    let pos = Pos { line: m.line(), col: m.col() + 1 };
                    // yaml-rust2 reads up to 255 `[` ahead before it gives a first event.
                    if e.info() == "recursion limit exceeded" {
                        return (b.index, Some(Problem::TooDeep(first_too_deep_bracket(&text).unwrap_or(pos))));
                    }
                    return (b.index, Some(Problem::Syntax(pos, e.info().to_owned())));
                }
            }
        }
    }

    /// Indexes `text` (see [`PosIndex::scan`]), ignoring why it stopped, if it did.
    #[cfg(test)]
    pub(crate) fn build(text: &str) -> Self {
        Self::scan(text).0
    }

    /// `text` with each of [`PosIndex::columns`] replaced by `[]` and spaces (its line
    /// breaks kept), so that every other position stays where it was; the columns are
    /// dropped if `text` is not plain ASCII (their offsets count characters) or a span
    /// is not a `[...]` after all. Borrowed when there is nothing to hide.
    pub(crate) fn hide_columns<'t>(&mut self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let spans_hold = text.is_ascii()
            && self.columns.iter().all(|c| {
                let (a, b) = c.span;
                a < b && text.as_bytes().get(a) == Some(&b'[') && text.as_bytes().get(b) == Some(&b']')
            });
        if !spans_hold {
            self.columns.clear();
        }
        if self.columns.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.as_bytes().to_vec();
        for c in &self.columns {
            let (a, b) = c.span;
            for byte in &mut out[a + 1..b] {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
        }
        // Only ASCII spaces replaced ASCII bytes: still UTF-8.
        std::borrow::Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| text.to_owned()))
    }

    /// Where the value at `path` starts (or its nearest indexed ancestor).
    pub(crate) fn value(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.values.get("").copied().unwrap_or(Pos { line: 1, col: 1 }),
            }
        }
    }

    /// Where the key that names `path` starts (else its value).
    pub(crate) fn key(&self, path: &str) -> Pos {
        self.keys.get(path).copied().unwrap_or_else(|| self.value(path))
    }
}

/// Every `[` of `text` followed by at least [`INT_COLUMN_MIN`] whole numbers (`-?[0-9]+`,
/// separated by commas and blanks) and its `]`: the numbers by where the `[` is, and the
/// text with those numbers made spaces (line breaks kept). Found without regard to YAML:
/// only those yaml-rust2 then finds as a `map:` column are used. Linear: a list's scan
/// stops at the first character that is not a digit, a sign, a comma or a blank, and no
/// `[` is one of those.
fn find_int_lists(text: std::borrow::Cow<'_, str>) -> (std::borrow::Cow<'_, str>, HashMap<usize, Vec<i64>>) {
    let bytes = text.as_bytes();
    let mut found: Vec<(usize, usize, Vec<i64>)> = Vec::new();
    let mut at = 0;
    while let Some(k) = bytes[at..].iter().position(|&b| b == b'[') {
        let open = at + k;
        let mut i = open + 1;
        let mut ints = Vec::new();
        let mut ok = false;
        loop {
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
            let start = i;
            if bytes.get(i) == Some(&b'-') {
                i += 1;
            }
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let Some(n) = text.get(start..i).and_then(|t| t.parse::<i64>().ok()) else { break };
            ints.push(n);
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    ok = true;
                    break;
                }
                _ => break,
            }
        }
        if ok && ints.len() >= INT_COLUMN_MIN {
            found.push((open, i, ints));
        }
        at = i.max(open + 1);
        if at >= bytes.len() {
            break;
        }
    }
    if found.is_empty() {
        return (text, HashMap::new());
    }
    let mut out = bytes.to_vec();
    for (open, close, _) in &found {
        for byte in &mut out[open + 1..*close] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    let lists = found.into_iter().map(|(open, _, ints)| (open, ints)).collect();
    // Only ASCII spaces replaced ASCII bytes.
    match String::from_utf8(out) {
        Ok(hidden) => (std::borrow::Cow::Owned(hidden), lists),
        Err(_) => (text, HashMap::new()),
    }
}

/// `text` with every tab that follows a line's first non-blank character made a space,
/// for this index only (a tab and a space are one column each, so positions stay).
/// yaml-rust2 refuses a tab after a key's colon (`name:<TAB>a`), which YAML allows and
/// serde_yaml reads; without this, every position after it would fall back to the top.
/// Tabs in a line's indentation (an error for both parsers) are left alone.
fn untab(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_start_matches([' ', '\t']);
        out.push_str(&line[..line.len() - body.len()]);
        out.extend(body.chars().map(|c| if c == '\t' { ' ' } else { c }));
    }
    std::borrow::Cow::Owned(out)
}

/// Where `[` or `{` first opens level `MAX_DEPTH + 1`, counting brackets without regard
/// to quotes or comments.
fn first_too_deep_bracket(text: &str) -> Option<Pos> {
    let mut depth = 0usize;
    positions(text).find_map(|(pos, c)| {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        (matches!(c, '[' | '{') && depth > MAX_DEPTH).then_some(pos)
    })
}

/// Each character of `text` with its 1-based line and column.
pub(crate) fn positions(text: &str) -> impl Iterator<Item = (Pos, char)> + '_ {
    let (mut line, mut col) = (1, 1);
    text.chars().map(move |c| {
        let pos = Pos { line, col };
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
        (pos, c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_and_values_with_one_based_columns() {
        let idx = PosIndex::build("pools:\n  io: { kind: thread }\ntasks:\n  - name: a\n    pool: io\n");
        assert_eq!(idx.key("pools"), Pos { line: 1, col: 1 });
        assert_eq!(idx.key("pools.io"), Pos { line: 2, col: 3 });
        assert_eq!(idx.value("pools.io.kind"), Pos { line: 2, col: 15 });
        assert_eq!(idx.value("tasks[0].pool"), Pos { line: 5, col: 11 });
        assert_eq!(idx.key("tasks[0].pool"), Pos { line: 5, col: 5 });
        // A block mapping starts at its first key, a block sequence at its first `-`.
        assert_eq!(idx.value("tasks[0]"), Pos { line: 4, col: 5 });
        assert_eq!(idx.value("tasks"), Pos { line: 4, col: 3 });
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(idx.value("tasks[0].pool.deeper[3]"), Pos { line: 5, col: 11 });
    }

    /// A lean index records the top levels only (one position a task, whatever its size),
    /// at the same places as a full one; deeper paths fall back to their task.
    #[test]
    fn a_lean_index_keeps_the_tasks_positions_only() {
        let text = "tasks:\n  - name: a\n    map: { n: [1, 2, 3] }\n  - { name: b, call: x }\n";
        let (full, lean) = (PosIndex::build(text), PosIndex::scan_lean(text).0);
        for path in ["tasks", "tasks[0]", "tasks[1]"] {
            assert_eq!(lean.value(path), full.value(path), "{path}");
        }
        assert_eq!(full.value("tasks[0].map.n[2]"), Pos { line: 3, col: 22 });
        assert_eq!(lean.value("tasks[0].map.n[2]"), Pos { line: 2, col: 5 });
        assert!(lean.values.len() < 6 && full.values.len() > 10, "{} / {}", lean.values.len(), full.values.len());
    }

    /// The guard pass reads long flow lists of plain whole numbers under `tasks[N].map`
    /// (and nothing else), and hiding them keeps every other position.
    #[test]
    fn long_lists_of_whole_numbers_in_a_map_are_read_on_the_way() {
        let list = |n: usize, extra: &str| {
            let items: Vec<String> = (0..n).map(|i| (i64::try_from(i).unwrap_or(0) - 5).to_string()).collect();
            format!("[{}{extra}]", items.join(", "))
        };
        let n = INT_COLUMN_MIN;
        let text = format!(
            "tasks:\n  - name: a\n    map: {{ base: {}, exp: {} }}\n  - name: b\n    map:\n      x: {}\n      y: {}\n      z: {}\n    args: {{ n: {} }}\n  - {{ name: c, map: {{ q: {} }} }}\n",
            list(n, ""),
            list(3, ""),
            list(n, ", \"s\""),
            list(n, ", 1.5"),
            list(n, ", [1]"),
            list(n, ""),
            list(n + 1, "")
        );
        let (mut idx, problem) = PosIndex::scan_lean(&text);
        assert!(problem.is_none());
        let found: Vec<(&str, usize)> = idx.columns.iter().map(|c| (c.path.as_str(), c.ints.len())).collect();
        // Too short, a string, a float, a nested list, not under `map:`: not read.
        assert_eq!(found, vec![("tasks[0].map.base", n), ("tasks[2].map.q", n + 1)]);
        assert_eq!(idx.columns[0].ints[..3], [-5, -4, -3]);
        let hidden = idx.hide_columns(&text).into_owned();
        assert_eq!(hidden.len(), text.len());
        assert!(hidden.contains("base: [    ") && hidden.contains("q: [    "));
        let (again, _) = PosIndex::scan(&hidden);
        let (orig, _) = PosIndex::scan(&text);
        for path in ["tasks[0].map.exp", "tasks[1].map.x", "tasks[1].args.n", "tasks[2].name"] {
            assert_eq!(again.value(path), orig.value(path), "{path}");
        }
        // Not plain ASCII: nothing is hidden (the offsets count characters).
        let mut idx = PosIndex::scan_lean(&format!("# é\n{text}")).0;
        assert!(!idx.columns.is_empty());
        assert!(matches!(idx.hide_columns(&format!("# é\n{text}")), std::borrow::Cow::Borrowed(_)));
        assert!(idx.columns.is_empty());
    }

    /// A list of whole numbers that is not a `map:` column (in a string, a comment, an
    /// argument) is found by the text scan but used as what it is: the file reads the same.
    #[test]
    fn a_list_of_numbers_elsewhere_reads_as_written() {
        let list: Vec<String> = (0..INT_COLUMN_MIN).map(|i| i.to_string()).collect();
        let list = format!("[{}]", list.join(", "));
        let text = format!(
            "# {list}\ntasks:\n  - {{ name: a, call: fail, args: {{ message: \"{list}\" }} }}\n  - {{ name: b, call: pow, args: {{ exp: 2 }}, map: {{ base: {list} }} }}\n  - {{ name: c, call: sleep, map: {{ secs: [0, 1] }} }}\n"
        );
        let plan = crate::config::load_str_offline("t.yaml", "t", &text).expect("a valid file");
        assert_eq!(plan.len(), 1 + INT_COLUMN_MIN + 2);
        let message = format!("{:?}", plan.work(0));
        assert!(message.contains(&list), "{message}");
        assert!(format!("{:?}", plan.work(1 + 200)).contains("200"), "{:?}", plan.work(201));
        let (idx, _) = PosIndex::scan_lean(&text);
        assert_eq!(idx.columns.len(), 1);
        assert_eq!(idx.columns[0].path, "tasks[1].map.base");
    }

    #[test]
    fn a_tab_after_a_colon_or_a_dash_keeps_every_later_position() {
        // yaml-rust2 alone refuses `name:<TAB>a`, and the whole index was lost after it.
        let idx = PosIndex::build("tasks:\n  - name:\ta\n    pool:\tio\n  -\tname: b\n    pool: [x,\ty]\n");
        assert_eq!(idx.value("tasks[0].pool"), Pos { line: 3, col: 11 });
        assert_eq!(idx.key("tasks[1].name"), Pos { line: 4, col: 5 });
        assert_eq!(idx.value("tasks[1].pool[1]"), Pos { line: 5, col: 15 });
        // A tab inside a line's indentation is not touched (both parsers refuse it).
        assert!(matches!(PosIndex::scan("a:\n\tb: 1\n").1, Some(Problem::Syntax(..))));
    }

    #[test]
    fn stops_at_the_depth_limit_in_linear_time() {
        let deep = format!("tasks: {}", "[".repeat(100_000));
        let (_, problem) = PosIndex::scan(&deep);
        assert_eq!(problem, Some(Problem::TooDeep(Pos { line: 1, col: 8 + MAX_DEPTH })));
        let block = "- ".repeat(1000);
        let (_, problem) = PosIndex::scan(&block);
        assert_eq!(problem, Some(Problem::TooDeep(Pos { line: 1, col: 2 * MAX_DEPTH + 1 })));
    }

    #[test]
    fn notes_the_first_alias_and_the_second_document() {
        let (idx, problem) = PosIndex::scan("a: &x 1\nb: *x\n---\nc: 2\n");
        assert_eq!(problem, None);
        assert_eq!(idx.first_alias, Some(Pos { line: 2, col: 4 }));
        assert_eq!(idx.second_document, Some(Pos { line: 3, col: 1 }));
    }
}
