//! Maps a YAML path (`outbound.routes[2].to[0].backend`) to its line and column in the file.
//!
//! Owns: one pass of yaml-rust2's marked event parser over the (already expanded) text.
//! Does not own: parsing into types (serde_yaml does that); this only answers "where".

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Default)]
pub struct Index {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Index {
    pub fn build(text: &str) -> Index {
        let mut rx = Receiver::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error is reported by serde_yaml with its own position; keep what we have.
        let _ = parser.load(&mut rx, false);
        rx.index
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor.
    pub fn value(&self, path: &str) -> Pos {
        self.find(path, false)
    }

    /// Position of the key at `path` (for "unknown field" style errors), else as `value`.
    pub fn key(&self, path: &str) -> Pos {
        self.find(path, true)
    }

    fn find(&self, path: &str, key_first: bool) -> Pos {
        let mut p = path;
        loop {
            let hit = if key_first {
                self.keys.get(p).or_else(|| self.values.get(p))
            } else {
                self.values.get(p).or_else(|| self.keys.get(p))
            };
            if let Some(pos) = hit {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self
                        .values
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, col: 1 })
                }
            }
        }
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        first: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Receiver {
    stack: Vec<Frame>,
    index: Index,
}

impl Receiver {
    /// Path of the node that starts now, or `None` when the event is a mapping key.
    fn node_path(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    // yaml-rust2 marks a block mapping at its first `:`; its first key reads better.
                    if std::mem::take(first) {
                        self.index.values.insert(path.clone(), pos);
                    }
                    self.index.keys.insert(join(path, &k), pos);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some(p) = self.node_path(mark, Some(s)) {
                    self.index.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(mark, None) {
                    self.index.values.insert(p, pos);
                }
            }
            Event::MappingStart(..) => {
                let p = self.node_path(mark, None).unwrap_or_default();
                self.index.values.insert(p.clone(), pos);
                self.stack.push(Frame::Map {
                    path: p,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceStart(..) => {
                let p = self.node_path(mark, None).unwrap_or_default();
                self.index.values.insert(p.clone(), pos);
                self.stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_keys() {
        let text = "version: 1\noutbound:\n  listen: 1.2.3.4:1\n  routes:\n    - name: a\n      to: [{ backend: x }]\n    - name: b\n      timeout: 5q\n";
        let idx = Index::build(text);
        assert_eq!(idx.value("version"), Pos { line: 1, col: 10 });
        assert_eq!(idx.key("outbound.listen"), Pos { line: 3, col: 3 });
        assert_eq!(
            idx.value("outbound.routes[1].timeout"),
            Pos { line: 8, col: 16 }
        );
        assert_eq!(
            idx.value("outbound.routes[0].to[0].backend"),
            Pos { line: 6, col: 23 }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            idx.value("outbound.routes[1].nope"),
            Pos { line: 7, col: 7 }
        );
    }
}
