//! Where an input error is. Every problem the CLI reports in a file it reads
//! is printed `<file>:<line>: <field>: <problem>`: the path as given, the
//! 1-based line, and the field at fault — a CSV column (`total_conversions`),
//! a JSON field path (`touches[1].at`, `conversions[0].stage`), or, when the
//! text does not parse at all, what the line or file was meant to be
//! (`journey`, `event`, `(document)` for a whole document such as a rule
//! file).

use std::collections::BTreeMap;
use std::fmt::Display;

/// The field written for a problem with a whole document (its syntax, or
/// what its top level is).
pub const DOCUMENT: &str = "(document)";

/// `<file>:<line>: <field>: <problem>`.
pub fn at(file: &str, line: usize, field: &str, problem: impl Display) -> String {
    format!("{file}:{line}: {field}: {problem}")
}

/// A JSON syntax error: its line, and `not JSON: … at column C` (serde's
/// position without the line, which is given apart).
pub fn json_syntax(e: &serde_json::Error) -> (usize, String) {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    (e.line().max(1), format!("not JSON: {message} at column {}", e.column()))
}

/// Text that is not UTF-8: the line and the 1-based (byte) column of its
/// first bad byte, as `not UTF-8 at column C`.
pub fn utf8(bytes: &[u8], e: &std::str::Utf8Error) -> (usize, String) {
    let good = bytes.get(..e.valid_up_to()).unwrap_or(bytes);
    let line = good.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    (line, format!("not UTF-8 at column {}", good.len() - line_start + 1))
}

/// The line of each field of a JSON document, for errors that name a field
/// path only (`tiers.cold`, `[1].stage`; the document itself is `""`).
pub struct JsonLines {
    lines: BTreeMap<String, usize>,
}

impl JsonLines {
    /// Reads where every member and element starts; on text that is not
    /// JSON it keeps what it found before the fault.
    pub fn new(text: &str) -> JsonLines {
        let mut scan = Scan { bytes: text.as_bytes(), at: 0, line: 1, lines: BTreeMap::new() };
        scan.value("", 0);
        JsonLines { lines: scan.lines }
    }

    /// The line of `field`, or of its nearest enclosing field found (a
    /// missing key is reported where its object is); line 1 when none is.
    pub fn line_of(&self, field: &str) -> usize {
        let mut path = field;
        loop {
            if let Some(line) = self.lines.get(path) {
                return *line;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = path.get(..cut).unwrap_or(""),
                None if !path.is_empty() => path = "",
                None => return 1,
            }
        }
    }
}

/// Deeper than serde_json reads (128), so any document it accepted is whole.
const MAX_DEPTH: usize = 256;

struct Scan<'t> {
    bytes: &'t [u8],
    at: usize,
    line: usize,
    lines: BTreeMap<String, usize>,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            self.at += 1;
        }
    }

    /// The value at `path`, its start recorded; `None` where the text is not JSON.
    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
        self.space();
        self.lines.insert(path.to_owned(), self.line);
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => {
                self.at += 1;
                loop {
                    self.space();
                    match self.peek()? {
                        b'}' => break,
                        b',' => self.at += 1,
                        b'"' => {
                            let line = self.line;
                            let key = self.string()?;
                            self.space();
                            (self.peek()? == b':').then_some(())?;
                            self.at += 1;
                            let field = if path.is_empty() { key } else { format!("{path}.{key}") };
                            // A repeated key: serde_json keeps the last one.
                            self.value(&field, depth + 1)?;
                            self.lines.insert(field, line);
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut index = 0;
                loop {
                    self.space();
                    match self.peek()? {
                        b']' => break,
                        b',' => self.at += 1,
                        _ => {
                            self.value(&format!("{path}[{index}]"), depth + 1)?;
                            index += 1;
                        }
                    }
                }
            }
            b'"' => {
                self.string()?;
                return Some(());
            }
            _ => {
                let start = self.at;
                while self.peek().is_some_and(|c| !matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n')) {
                    self.at += 1;
                }
                return (self.at > start).then_some(());
            }
        }
        self.at += 1;
        Some(())
    }

    /// A string, unescaped.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        serde_json::from_slice(self.bytes.get(start..self.at)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_at_their_lines() {
        let text = "{\n  \"tiers\": {\"cold\": -1},\n  \"list\": [\n    1,\n    {\"a\\\"b\": [true]}\n  ],\n  \"tiers\": {\n  \"hot\": 2}\n}";
        let l = JsonLines::new(text);
        assert_eq!(l.line_of(""), 1);
        assert_eq!(l.line_of("list"), 3);
        assert_eq!(l.line_of("list[0]"), 4);
        assert_eq!(l.line_of("list[1].a\"b[0]"), 5);
        // The last of a repeated key, as serde_json reads it; a missing key at its object.
        assert_eq!(l.line_of("tiers"), 7);
        assert_eq!(l.line_of("tiers.hot"), 8);
        assert_eq!(l.line_of("tiers.warm"), 7);
        assert_eq!(l.line_of("nothing.here"), 1);
    }

    #[test]
    fn text_that_is_not_json_keeps_what_came_before() {
        let l = JsonLines::new("[\n1,\n}\n2]");
        assert_eq!(l.line_of("[0]"), 2);
        assert_eq!(l.line_of("[2]"), 1);
        for text in ["", "{", "[", "\"", "{\"a\"", "{\"a\":", "[1,", "{]", "[}", "\\", "{\"a\\"] {
            let _ = JsonLines::new(text).line_of("a[0]");
        }
    }

    #[test]
    fn positions_of_syntax_and_encoding_errors() {
        let e = serde_json::from_str::<serde_json::Value>("{oops").unwrap_err();
        assert_eq!(json_syntax(&e), (1, "not JSON: key must be a string at column 2".to_owned()));
        let bytes = [b"ok\nab".as_slice(), &[0xe9]].concat();
        let e = std::str::from_utf8(&bytes).unwrap_err();
        assert_eq!(utf8(&bytes, &e), (2, "not UTF-8 at column 3".to_owned()));
    }
}
