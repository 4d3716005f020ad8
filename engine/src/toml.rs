//! A TOML reader for the lint config and the e2e definition: TOML 1.0 (with 1.1's newlines and
//! trailing commas in inline tables) read into a `serde_json::Value`, then decoded key by key
//! (`xtask_lint::value`: no serde derives) like any JSON.
//!
//! Why not the `toml` crate: it and its parser stack (toml_parser, two winnow versions,
//! toml_datetime, serde_spanned) were ~5 s of CPU in every fresh checkout's cold build, for
//! two small files. What this reader leaves out: dates and times (refused with the line: no
//! config of ours has one), and floats that JSON cannot hold (`inf`, `nan`).
//!
//! Errors name the line (and column, for syntax). An unknown key's error names its line; a
//! wrong type's names where the value sits (`deploy[1].helm.set.x`).
//!
//! Checked against toml-test (github.com/toml-lang/toml-test, tests/valid and tests/invalid, on
//! 2026-12-03): the 226 valid files without dates read exactly as Python's `tomllib` reads them;
//! all 503 files invalid in TOML 1.1 are refused (6 more, invalid only in 1.0, are accepted:
//! newlines and trailing commas in inline tables, `\x` escapes).

use serde_json::{Map, Value};

use xtask_lint::value::FromValue;

/// A TOML problem, with its 1-based line (and column) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// Reads `text` as TOML into `T`.
pub fn from_str<T: FromValue>(text: &str) -> Result<T, Error> {
    let value = parse(text)?;
    T::from_value(&value, "").map_err(|message| Error {
        line: line_of_named_key(text, &message),
        column: None,
        message,
    })
}

/// The line of the key an unknown-field message names (`unknown field `x``), if it appears as a
/// key in the text.
fn line_of_named_key(text: &str, message: &str) -> Option<usize> {
    let start = message.strip_prefix("unknown field `")?.len();
    let start = message.len() - start;
    let key = &message[start..start + message[start..].find('`')?];
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches('[').trim_start();
            l.strip_prefix(key).is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.starts_with('=') || rest.starts_with('.') || rest.starts_with(']')
            })
        })
        .map(|i| i + 1)
}

/// Parses TOML text into a JSON object.
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut p = Parser { s: text.as_bytes(), text, i: 0 };
    p.document()
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

/// Tables defined by a header or by dotted keys, and arrays of tables (which may be appended to).
#[derive(Default)]
struct Defined {
    /// Paths of tables made explicitly (a `[header]`), or by an inline table / value (sealed).
    explicit: std::collections::HashSet<Vec<String>>,
    sealed: std::collections::HashSet<Vec<String>>,
    arrays: std::collections::HashSet<Vec<String>>,
    /// Tables made by dotted keys (`a.b = 1` makes `a`): never a `[header]` later.
    dotted: std::collections::HashSet<Vec<String>>,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, Error> {
        self.err_at(self.i, message)
    }

    fn err_at<T>(&self, at: usize, message: impl Into<String>) -> Result<T, Error> {
        let at = at.min(self.s.len());
        let before = &self.s[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&self.s[line_start..at]).chars().count() + 1;
        Err(Error { line: Some(line), column: Some(column), message: message.into() })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// A comment, if one starts here (up to the end of the line).
    fn comment(&mut self) -> Result<(), Error> {
        if self.peek() == Some(b'#') {
            while let Some(b) = self.peek() {
                if b == b'\n' || (b == b'\r' && self.s.get(self.i + 1) == Some(&b'\n')) {
                    break;
                }
                if b < 0x20 && b != b'\t' || b == 0x7f {
                    return self.err("control character in a comment");
                }
                self.i += 1;
            }
        }
        Ok(())
    }

    /// The end of a line: spaces, an optional comment, then a newline or the end of the text.
    fn end_of_line(&mut self) -> Result<(), Error> {
        self.spaces();
        self.comment()?;
        if self.eat(b'\n') || self.peek().is_none() {
            return Ok(());
        }
        if self.peek() == Some(b'\r') && self.s.get(self.i + 1) == Some(&b'\n') {
            self.i += 2;
            return Ok(());
        }
        self.err("expected the end of the line")
    }

    /// Blank lines, comments and whitespace, newlines included (inside arrays).
    fn blank(&mut self) -> Result<(), Error> {
        loop {
            self.spaces();
            self.comment()?;
            if self.eat(b'\n') {
                continue;
            }
            if self.peek() == Some(b'\r') && self.s.get(self.i + 1) == Some(&b'\n') {
                self.i += 2;
                continue;
            }
            return Ok(());
        }
    }

    fn document(&mut self) -> Result<Value, Error> {
        let mut root = Map::new();
        let mut defined = Defined::default();
        let mut current: Vec<String> = Vec::new();
        if self.s.starts_with(b"\xEF\xBB\xBF") {
            self.i = 3;
        }
        loop {
            self.blank()?;
            let Some(b) = self.peek() else { break };
            if b == b'[' {
                let at = self.i;
                let array = self.s.get(self.i + 1) == Some(&b'[');
                self.i += if array { 2 } else { 1 };
                self.spaces();
                let path = self.key()?;
                self.spaces();
                if !(self.eat(b']') && (!array || self.eat(b']'))) {
                    return self.err(if array { "expected `]]`" } else { "expected `]`" });
                }
                self.end_of_line()?;
                if array {
                    self.open_array_table(&mut root, &path, &mut defined, at)?;
                } else {
                    self.open_table(&mut root, &path, &mut defined, at)?;
                }
                current = path;
            } else {
                let (at, key, value) = self.key_value()?;
                self.end_of_line()?;
                let table = self.table_at(&mut root, &current, at)?;
                self.insert_dotted(table, &current, &key, value, &mut defined, at)?;
            }
        }
        Ok(Value::Object(root))
    }

    /// The table the current header names (the last element of an array of tables).
    fn table_at<'m>(
        &self,
        root: &'m mut Map<String, Value>,
        path: &[String],
        at: usize,
    ) -> Result<&'m mut Map<String, Value>, Error> {
        let mut table = root;
        for part in path {
            let next = table.entry(part.clone()).or_insert_with(|| Value::Object(Map::new()));
            table = match next {
                Value::Object(m) => m,
                Value::Array(items) => match items.last_mut() {
                    Some(Value::Object(m)) => m,
                    _ => return self.err_at(at, format!("`{part}` is not a table")),
                },
                _ => return self.err_at(at, format!("`{part}` is already a value, not a table")),
            };
        }
        Ok(table)
    }

    fn open_table(
        &self,
        root: &mut Map<String, Value>,
        path: &[String],
        defined: &mut Defined,
        at: usize,
    ) -> Result<(), Error> {
        if defined.sealed.iter().any(|s| path.starts_with(s)) {
            return self.err_at(at, format!("table `{}` was already defined inline", path.join(".")));
        }
        if defined.dotted.contains(path) {
            return self.err_at(at, format!("table `{}` was already defined by dotted keys", path.join(".")));
        }
        if !defined.explicit.insert(path.to_vec()) || defined.arrays.contains(path) {
            return self.err_at(at, format!("table `{}` is defined twice", path.join(".")));
        }
        self.table_at(root, path, at).map(|_| ())
    }

    fn open_array_table(
        &self,
        root: &mut Map<String, Value>,
        path: &[String],
        defined: &mut Defined,
        at: usize,
    ) -> Result<(), Error> {
        let Some((last, parent)) = path.split_last() else { return self.err_at(at, "empty table name") };
        if defined.sealed.iter().any(|s| path.starts_with(s)) || defined.explicit.contains(path) {
            return self
                .err_at(at, format!("`{}` is already a table, not an array of tables", path.join(".")));
        }
        let table = self.table_at(root, parent, at)?;
        let entry = table.entry(last.clone()).or_insert_with(|| Value::Array(Vec::new()));
        match entry {
            Value::Array(items) if defined.arrays.contains(path) || items.is_empty() => {
                items.push(Value::Object(Map::new()));
            }
            _ => {
                return self
                    .err_at(at, format!("`{}` is already a value, not an array of tables", path.join(".")))
            }
        }
        defined.arrays.insert(path.to_vec());
        // A new element: the tables under it may be defined again.
        defined.explicit.retain(|p| !(p.len() > path.len() && p.starts_with(path)));
        defined.sealed.retain(|p| !(p.len() > path.len() && p.starts_with(path)));
        defined.dotted.retain(|p| !(p.len() > path.len() && p.starts_with(path)));
        Ok(())
    }

    /// `a.b.c = value` into `table` (the current header's, at `base`).
    fn insert_dotted(
        &self,
        table: &mut Map<String, Value>,
        base: &[String],
        key: &[String],
        value: Value,
        defined: &mut Defined,
        at: usize,
    ) -> Result<(), Error> {
        let Some((last, parents)) = key.split_last() else { return self.err_at(at, "empty key") };
        let mut table = table;
        let mut path = base.to_vec();
        for part in parents {
            path.push(part.clone());
            if defined.sealed.contains(&path) {
                return self.err_at(at, format!("`{}` was already defined inline", path.join(".")));
            }
            if defined.explicit.contains(&path) || defined.arrays.contains(&path) {
                return self
                    .err_at(at, format!("table `{}` has its own [header]: add keys there", path.join(".")));
            }
            defined.dotted.insert(path.clone());
            let next = table.entry(part.clone()).or_insert_with(|| Value::Object(Map::new()));
            table = match next {
                Value::Object(m) => m,
                _ => return self.err_at(at, format!("`{}` is already a value, not a table", path.join("."))),
            };
        }
        if table.contains_key(last) {
            return self.err_at(at, format!("key `{}` is defined twice", key.join(".")));
        }
        path.push(last.clone());
        if value.is_object() || value.is_array() {
            defined.sealed.insert(path);
        }
        table.insert(last.clone(), value);
        Ok(())
    }

    /// `key = value`: where it starts, the key's parts, the value.
    fn key_value(&mut self) -> Result<(usize, Vec<String>, Value), Error> {
        let at = self.i;
        let key = self.key()?;
        self.spaces();
        if !self.eat(b'=') {
            return self.err("expected `=` after the key");
        }
        self.spaces();
        Ok((at, key, self.value()?))
    }

    /// A key: bare or quoted parts joined by dots.
    fn key(&mut self) -> Result<Vec<String>, Error> {
        let mut parts = Vec::new();
        loop {
            self.spaces();
            let part = match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    self.basic_string()?
                }
                Some(b'\'') => {
                    self.i += 1;
                    self.literal_string()?
                }
                _ => {
                    let start = self.i;
                    while matches!(self.peek(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')) {
                        self.i += 1;
                    }
                    if start == self.i {
                        return self.err("expected a key");
                    }
                    self.text[start..self.i].to_string()
                }
            };
            parts.push(part);
            self.spaces();
            if !self.eat(b'.') {
                return Ok(parts);
            }
        }
    }

    fn value(&mut self) -> Result<Value, Error> {
        match self.peek() {
            Some(b'"') => {
                if self.s[self.i..].starts_with(b"\"\"\"") {
                    self.i += 3;
                    self.multiline_basic().map(Value::String)
                } else {
                    self.i += 1;
                    self.basic_string().map(Value::String)
                }
            }
            Some(b'\'') => {
                if self.s[self.i..].starts_with(b"'''") {
                    self.i += 3;
                    self.multiline_literal().map(Value::String)
                } else {
                    self.i += 1;
                    self.literal_string().map(Value::String)
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.array()
            }
            Some(b'{') => {
                self.i += 1;
                self.inline_table()
            }
            Some(_) => self.scalar(),
            None => self.err("expected a value"),
        }
    }

    fn array(&mut self) -> Result<Value, Error> {
        let mut items = Vec::new();
        self.items(b']', "expected `,` or `]` in the array", |p| {
            items.push(p.value()?);
            Ok(())
        })?;
        Ok(Value::Array(items))
    }

    fn inline_table(&mut self) -> Result<Value, Error> {
        let mut table = Map::new();
        let mut defined = Defined::default();
        self.items(b'}', "expected `,` or `}` in the inline table", |p| {
            let (at, key, value) = p.key_value()?;
            p.insert_dotted(&mut table, &[], &key, value, &mut defined, at)
        })?;
        Ok(Value::Object(table))
    }

    /// Items separated by commas up to `close` (after the opening bracket; newlines, comments
    /// and a trailing comma allowed), each read by `item`.
    fn items(
        &mut self,
        close: u8,
        expected: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        loop {
            self.blank()?;
            if self.eat(close) {
                return Ok(());
            }
            item(self)?;
            self.blank()?;
            if self.eat(close) {
                return Ok(());
            }
            if !self.eat(b',') {
                return self.err(expected);
            }
        }
    }

    /// After the opening `"`.
    fn basic_string(&mut self) -> Result<String, Error> {
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(b'\n') | None => return self.err("unterminated string"),
                Some(_) => return self.err("control character in a string"),
            }
        }
    }

    /// After the opening `"""`.
    fn multiline_basic(&mut self) -> Result<String, Error> {
        self.skip_first_newline();
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || (b < 0x20 && !matches!(b, b'\t' | b'\n')) || b == 0x7f {
                    if b == b'\r' && self.s.get(self.i + 1) == Some(&b'\n') {
                        self.i += 2;
                        continue;
                    }
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    if self.s[self.i..].starts_with(b"\"\"\"") {
                        // Up to two more quotes belong to the string (`""""` ends with a quote).
                        let mut quotes = 3;
                        while quotes < 5 && self.s.get(self.i + quotes) == Some(&b'"') {
                            quotes += 1;
                        }
                        out.push_str(&"\"".repeat(quotes - 3));
                        self.i += quotes;
                        return Ok(out);
                    }
                    out.push('"');
                    self.i += 1;
                }
                Some(b'\\') => {
                    // A backslash at the end of a line trims the newline and the whitespace after.
                    let mut j = self.i + 1;
                    while matches!(self.s.get(j), Some(b' ' | b'\t')) {
                        j += 1;
                    }
                    if matches!(self.s.get(j), Some(b'\n')) || self.s[j..].starts_with(b"\r\n") {
                        self.i = j;
                        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                            self.i += 1;
                        }
                    } else {
                        self.escape(&mut out)?;
                    }
                }
                None => return self.err("unterminated multi-line string"),
                Some(_) => return self.err("control character in a string"),
            }
        }
    }

    /// After the opening `'`.
    fn literal_string(&mut self) -> Result<String, Error> {
        let start = self.i;
        while let Some(b) = self.peek() {
            match b {
                b'\'' => {
                    let s = self.text[start..self.i].to_string();
                    self.i += 1;
                    return Ok(s);
                }
                b'\n' => break,
                b if b < 0x20 && b != b'\t' || b == 0x7f => return self.err("control character in a string"),
                _ => self.i += 1,
            }
        }
        self.err("unterminated string")
    }

    /// After the opening `'''`.
    fn multiline_literal(&mut self) -> Result<String, Error> {
        self.skip_first_newline();
        let start = self.i;
        while self.i < self.s.len() {
            if self.s[self.i..].starts_with(b"'''") {
                let mut quotes = 3;
                while quotes < 5 && self.s.get(self.i + quotes) == Some(&b'\'') {
                    quotes += 1;
                }
                let s = format!("{}{}", &self.text[start..self.i], "'".repeat(quotes - 3));
                self.i += quotes;
                return Ok(s);
            }
            let b = self.s[self.i];
            let crlf = b == b'\r' && self.s.get(self.i + 1) == Some(&b'\n');
            if b < 0x20 && !matches!(b, b'\t' | b'\n') && !crlf || b == 0x7f {
                return self.err("control character in a string");
            }
            self.i += 1;
        }
        self.err("unterminated multi-line string")
    }

    fn skip_first_newline(&mut self) {
        if self.eat(b'\n') {
            return;
        }
        if self.s[self.i..].starts_with(b"\r\n") {
            self.i += 2;
        }
    }

    /// At a `\` in a basic string.
    fn escape(&mut self, out: &mut String) -> Result<(), Error> {
        let at = self.i;
        self.i += 1;
        let Some(c) = self.peek() else { return self.err("unterminated escape") };
        self.i += 1;
        let hex = |p: &mut Self, n: usize| -> Result<char, Error> {
            let digits = p.text.get(p.i..p.i + n).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
            let Some(code) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()) else {
                return p.err_at(at, format!("`\\{}` needs {n} hex digits", c as char));
            };
            p.i += n;
            char::from_u32(code).map_or_else(|| p.err_at(at, "not a Unicode scalar value"), Ok)
        };
        let ch = match c {
            b'b' => '\u{8}',
            b't' => '\t',
            b'n' => '\n',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'e' => '\u{1b}',
            b'"' => '"',
            b'\\' => '\\',
            b'x' => hex(self, 2)?,
            b'u' => hex(self, 4)?,
            b'U' => hex(self, 8)?,
            _ => return self.err_at(at, "unknown escape"),
        };
        out.push(ch);
        Ok(())
    }

    /// A boolean, integer or float (dates and times are refused).
    fn scalar(&mut self) -> Result<Value, Error> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b']' | b'}' | b'#' | b'\n' | b'\r') || b == b' ' && !self.date_space(start)
            {
                break;
            }
            self.i += 1;
        }
        let word = self.text[start..self.i].trim_end_matches([' ', '\t']);
        self.i = start + word.len();
        match word {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "" => return self.err("expected a value"),
            _ => {}
        }
        let bytes = word.as_bytes();
        if bytes.len() >= 5 && bytes[4] == b'-' && bytes[..4].iter().all(u8::is_ascii_digit)
            || bytes.len() >= 3 && bytes[2] == b':' && bytes[..2].iter().all(u8::is_ascii_digit)
        {
            return self.err_at(start, "dates and times are not supported here: quote the value");
        }
        if let Some(n) = integer(word) {
            return Ok(Value::from(n));
        }
        if let Some(f) = float(word) {
            return serde_json::Number::from_f64(f)
                .map(Value::Number)
                .map_or_else(|| self.err_at(start, "inf and nan are not supported here"), Ok);
        }
        self.err_at(start, format!("`{word}` is not a value (strings are quoted)"))
    }

    /// A space inside a date-time (`1979-05-27 07:32:00`) is part of it.
    fn date_space(&self, start: usize) -> bool {
        let word = &self.s[start..self.i];
        word.len() == 10 && word[4] == b'-' && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit)
    }
}

/// A TOML integer: decimal with `_` between digits, `0x`/`0o`/`0b`.
fn integer(word: &str) -> Option<i64> {
    let underscores_ok =
        |d: &str| !d.is_empty() && !d.starts_with('_') && !d.ends_with('_') && !d.contains("__");
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = word.strip_prefix(prefix) {
            let digits_ok = d.bytes().all(|b| b == b'_' || char::from(b).is_digit(radix));
            return (digits_ok && underscores_ok(d))
                .then(|| i64::from_str_radix(&d.replace('_', ""), radix).ok())
                .flatten();
        }
    }
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    if !underscores_ok(digits)
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    word.replace('_', "").parse().ok()
}

/// A TOML float: `1.5`, `-2e10`, `6.02_2e23` (no `inf`/`nan`: JSON cannot hold them).
fn float(word: &str) -> Option<f64> {
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    if matches!(digits, "inf" | "nan") {
        return Some(f64::NAN);
    }
    let ok = !digits.is_empty()
        && digits.as_bytes()[0].is_ascii_digit()
        && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'e' | b'E' | b'+' | b'-'))
        && !digits.contains("._")
        && !digits.contains("_.")
        && !digits.ends_with('.')
        && !digits.contains(".e")
        && !digits.contains(".E")
        && digits.contains(['.', 'e', 'E'])
        && digits
            .as_bytes()
            .windows(3)
            .all(|w| w[1] != b'_' || (w[0].is_ascii_digit() && w[2].is_ascii_digit()))
        && !digits.ends_with('_')
        && !(digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit());
    ok.then(|| word.replace('_', "").parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn bad(text: &str) -> String {
        parse(text).map(|v| panic!("{text:?} parsed as {v}")).unwrap_err().to_string()
    }

    #[test]
    fn reads_what_our_files_use() {
        let text = r#"
# a comment
title = "e2e" # trailing comment
[cluster]
name = 'kind-e2e'
wait = "5m"
ports = [13000, 19090,]
"quoted key" = true
a.b.c = 1_000

[[image]]
name = "gateway"
args = { GOFLAGS = "-mod=vendor", nested.x = "y" }

[[image]]
name = "worker"
inputs = [
  "go.mod",   # the module
  "cmd/**",
]

[image.extra]
k = -7
"#;
        assert_eq!(
            ok(text),
            json!({
                "title": "e2e",
                "cluster": {"name": "kind-e2e", "wait": "5m", "ports": [13000, 19090], "quoted key": true,
                            "a": {"b": {"c": 1000}}},
                "image": [
                    {"name": "gateway", "args": {"GOFLAGS": "-mod=vendor", "nested": {"x": "y"}}},
                    {"name": "worker", "inputs": ["go.mod", "cmd/**"], "extra": {"k": -7}},
                ],
            })
        );
    }

    #[test]
    fn strings_read_as_toml_says() {
        assert_eq!(ok(r#"s = "a\tb\n\"q\" \u00e9 \U0001F600""#)["s"], "a\tb\n\"q\" é 😀");
        assert_eq!(ok(r"s = 'C:\path\*'")["s"], r"C:\path\*");
        assert_eq!(ok("s = \"\"\"\nline 1\nline 2\\\n    continued\"\"\"")["s"], "line 1\nline 2continued");
        assert_eq!(ok("s = '''\nraw \\n\n'''")["s"], "raw \\n\n");
        assert_eq!(ok("s = \"\"\"a\"\"\"\"")["s"], "a\"");
        assert_eq!(ok("s = \"x\"\r\nt = 'y'\r\n")["t"], "y");
        assert_eq!(ok("n = 0xff\no = 0o17\nb = 0b101\nf = 6.5e2\ng = -0.5")["n"], 255);
        assert_eq!(ok("f = 6.5e2")["f"], 650.0);
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        for (text, want) in [
            ("a = 1\na = 2", "line 2, column 1: key `a` is defined twice"),
            ("[t]\n[t]", "line 2, column 1: table `t` is defined twice"),
            ("a = \"open", "line 1"),
            ("a = bare", "`bare` is not a value"),
            ("d = 1979-05-27", "dates and times are not supported"),
            ("d = 07:32:00", "dates and times are not supported"),
            ("a = 1 b = 2", "expected the end of the line"),
            ("x = [1, 2", "expected `,` or `]`"),
            ("t = {a = 1}\n[t]", "already defined inline"),
            ("a = 1\n[a]", "already a value"),
            ("[[a]]\n[a]", "defined twice"),
            ("s = \"\\q\"", "unknown escape"),
            ("n = 01", "is not a value"),
            ("f = inf", "inf and nan"),
            ("= 1", "expected a key"),
        ] {
            let err = bad(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn deserialization_errors_name_the_keys_line() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct T {
            name: String,
        }
        impl FromValue for T {
            fn from_value(v: &Value, at: &str) -> Result<Self, String> {
                let mut t = xtask_lint::value::Table::new(v, at)?;
                let name = t.req("name")?;
                t.done()?;
                Ok(T { name })
            }
        }
        let err = from_str::<T>("name = \"x\"\n\nwait = \"1m\"\n").unwrap_err().to_string();
        assert!(err.starts_with("line 3: unknown field `wait`"), "{err}");
        let err = from_str::<T>("name = 1\n").unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }
}
