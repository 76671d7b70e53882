//! Where each key and value of a YAML file starts: a path → line:column index.
//!
//! serde_yaml reports positions for syntax and type errors only; the checks that run
//! after it (unknown pools, cycles, bad arguments) need positions too. This index is
//! built from yaml-rust2's marked event stream, once the file has parsed. Paths look
//! like `tasks[2].args.n`; a lookup falls back to the nearest ancestor that has one
//! (values reached through an alias, say).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Positions of every key and value in a YAML document.
#[derive(Debug, Default)]
pub(crate) struct PosIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    index: PosIndex,
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
                    self.index.keys.insert(join(path, &k), pos);
                    *key = Some(k);
                    None
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos { line: mark.line(), col: mark.col() + 1 };
        match ev {
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(path) = self.value_path(&ev, pos) else { return };
                self.index.values.entry(path.clone()).or_insert(pos);
                match ev {
                    Event::MappingStart(..) => self.stack.push(Frame::Map { path, key: None }),
                    Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

impl PosIndex {
    /// Indexes `text`, which must already have parsed (its nesting is then bounded).
    pub(crate) fn build(text: &str) -> Self {
        let mut b = Builder::default();
        // A scan error cannot happen on text serde_yaml accepted; an index with what was
        // read so far is still useful if it does.
        let _ = Parser::new_from_str(text).load(&mut b, false);
        b.index
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
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(idx.value("tasks[0].pool.deeper[3]"), Pos { line: 5, col: 11 });
    }
}
