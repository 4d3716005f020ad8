//! A TOML 1.0 reader for the lint config and the e2e definition (<https://toml.io/en/v1.0.0>),
//! read into a `serde_json::Value`, then decoded key by key (`xtask_lint::value`: no serde
//! derives) like any JSON.
//!
//! Why not the `toml` crate: it and its parser stack (toml_parser, two winnow versions,
//! toml_datetime, serde_spanned) were ~5 s of CPU in every fresh checkout's cold build, for
//! two small files. It is a dev-dependency only, for the differential test below.
//!
//! The whole of 1.0, and nothing of 1.1: dates and times (offset and local date-times, local
//! dates, local times) and `inf` / `nan`, which JSON cannot hold, are kept as a typed value
//! (`xtask_lint::value::SPECIAL`) that a decoder names in its error ("expected a string, found
//! local date 1979-05-27"); what only TOML 1.1 allows is refused saying so (a newline, a comment
//! or a trailing comma in an inline table, `\x` and `\e` escapes, a time without seconds).
//! Arrays and inline tables nest at most [`MAX_DEPTH`] deep (deeper input would overflow the
//! stack).
//!
//! Every value and key carries its position: a syntax error names the line and column where it
//! is, and a decoding error names the line and column of the value (or, for an unknown key, of
//! the key) that the decoder's path (`deploy[1].helm.set.x`) names.

use std::collections::HashMap;

use serde_json::{Map, Value};

use xtask_lint::value::{FromValue, SPECIAL};

/// How deep arrays and inline tables may nest.
pub const MAX_DEPTH: usize = 100;

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

/// Where each value and key of a document starts (byte offsets), by the path a decoder names
/// it with: `a.b`, `deploy[1].helm.set.x`, `ports[0]`.
#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, usize>,
    keys: HashMap<String, usize>,
}

impl Positions {
    /// The offset a decoder's message is about: the key of an unknown field, the value of an
    /// invalid one, the table missing a field; else the longest path the message names.
    fn locate(&self, message: &str) -> Option<usize> {
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (key, rest) = rest.split_once('`')?;
            let path = match rest.strip_prefix(" in ").and_then(|r| r.split_once(", expected one of")) {
                Some((table, _)) => format!("{table}.{key}"),
                None => key.to_string(),
            };
            return self.keys.get(&path).or_else(|| self.values.get(&path)).copied();
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let (_, rest) = rest.split_once('`')?;
            return self.values.get(rest.strip_prefix(" in ")?).copied();
        }
        for prefix in ["invalid type at ", "invalid value at "] {
            if let Some(rest) = message.strip_prefix(prefix) {
                let found = self
                    .values
                    .iter()
                    .filter(|(p, _)| rest.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with(':')))
                    .max_by_key(|(p, _)| p.len());
                if let Some((_, at)) = found {
                    return Some(*at);
                }
            }
        }
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || "_-[.".contains(c)));
        self.values
            .iter()
            .filter(|(p, _)| {
                message.match_indices(p.as_str()).any(|(i, m)| {
                    boundary(message[..i].chars().next_back())
                        && boundary(message[i + m.len()..].chars().next())
                })
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, at)| *at)
    }
}

/// The 1-based line and column (in characters) of byte offset `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

/// Reads `text` as TOML into `T`; a decoding error names the line and column of what it is about.
pub fn from_str<T: FromValue>(text: &str) -> Result<T, Error> {
    let (value, positions) = parse_with_positions(text)?;
    T::from_value(&value, "").map_err(|message| {
        let (line, column) = positions.locate(&message).map(|at| line_col(text, at)).unzip();
        Error { line, column, message }
    })
}

/// Parses TOML text into a JSON object.
pub fn parse(text: &str) -> Result<Value, Error> {
    parse_with_positions(text).map(|(v, _)| v)
}

/// Parses TOML text into a JSON object and where each of its values sits.
pub fn parse_with_positions(text: &str) -> Result<(Value, Positions), Error> {
    let mut p = Parser { s: text.as_bytes(), text, i: 0, depth: 0, positions: Positions::default() };
    let v = p.document()?;
    Ok((v, p.positions))
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
    positions: Positions,
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

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// The decoder's name of the table at `path` (`deploy[1].helm`: the last element of an array
/// of tables).
fn decoder_path(root: &Map<String, Value>, path: &[String]) -> String {
    let mut out = String::new();
    let mut table = Some(root);
    for part in path {
        out = join(&out, part);
        let next = table.and_then(|t| t.get(part));
        table = match next {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{}]", items.len().saturating_sub(1)));
                items.last().and_then(Value::as_object)
            }
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
    }
    out
}

const V11: &str = "is TOML 1.1, not 1.0 (which this reader follows)";

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, Error> {
        self.err_at(self.i, message)
    }

    fn err_at<T>(&self, at: usize, message: impl Into<String>) -> Result<T, Error> {
        let (line, column) = line_col(self.text, at);
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

    fn at_newline(&self) -> bool {
        self.peek() == Some(b'\n') || self.s[self.i..].starts_with(b"\r\n")
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
        let mut current_at = String::new();
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
                let key_at = self.i;
                let path = self.key()?;
                if path.len() >= MAX_DEPTH {
                    return self.err_at(
                        key_at,
                        format!("tables nest more than {MAX_DEPTH} deep here: no config needs that"),
                    );
                }
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
                // The tables the header names, each where this header is unless seen before.
                for n in 1..=path.len() {
                    let name = decoder_path(&root, &path[..n]);
                    let fresh = n == path.len();
                    if fresh || !self.positions.values.contains_key(&name) {
                        self.positions.values.insert(name.clone(), at);
                        self.positions.keys.insert(name, key_at);
                    }
                }
                current_at = decoder_path(&root, &path);
                current = path;
            } else {
                let (at, key, value) = self.key_value(&current_at)?;
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
                Value::Object(m) if !m.contains_key(SPECIAL) => m,
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
                Value::Object(m) if !m.contains_key(SPECIAL) => m,
                _ => return self.err_at(at, format!("`{}` is already a value, not a table", path.join("."))),
            };
        }
        if table.contains_key(last) {
            return self.err_at(at, format!("key `{}` is defined twice", key.join(".")));
        }
        path.push(last.clone());
        if (value.is_object() && xtask_lint::value::special(&value).is_none()) || value.is_array() {
            defined.sealed.insert(path);
        }
        table.insert(last.clone(), value);
        Ok(())
    }

    /// `key = value` in the table the decoder names `base`: where it starts, the key's parts,
    /// the value. Records where the key, its value and the tables a dotted key makes are.
    fn key_value(&mut self, base: &str) -> Result<(usize, Vec<String>, Value), Error> {
        let at = self.i;
        let key = self.key()?;
        self.spaces();
        if !self.eat(b'=') {
            return self.err("expected `=` after the key");
        }
        self.spaces();
        let mut path = base.to_string();
        if path.matches(['.', '[']).count() + key.len() >= MAX_DEPTH {
            return self
                .err_at(at, format!("tables nest more than {MAX_DEPTH} deep here: no config needs that"));
        }
        for (n, part) in key.iter().enumerate() {
            path = join(&path, part);
            if n + 1 == key.len() || !self.positions.values.contains_key(&path) {
                self.positions.keys.insert(path.clone(), at);
                self.positions.values.insert(path.clone(), at);
            }
        }
        let value = self.value(&path)?;
        Ok((at, key, value))
    }

    /// A key: bare or quoted parts joined by dots.
    fn key(&mut self) -> Result<Vec<String>, Error> {
        let mut parts = Vec::new();
        loop {
            self.spaces();
            let part = match self.peek() {
                Some(b'"') => {
                    if self.s[self.i..].starts_with(b"\"\"\"") {
                        return self.err("a key cannot be a multi-line string");
                    }
                    self.i += 1;
                    self.basic_string()?
                }
                Some(b'\'') => {
                    if self.s[self.i..].starts_with(b"'''") {
                        return self.err("a key cannot be a multi-line string");
                    }
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

    /// The value at the decoder's `path`, which is recorded as its position.
    fn value(&mut self, path: &str) -> Result<Value, Error> {
        self.positions.values.insert(path.to_string(), self.i);
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
                self.nest()?;
                self.i += 1;
                let v = self.array(path);
                self.depth -= 1;
                v
            }
            Some(b'{') => {
                self.nest()?;
                self.i += 1;
                let v = self.inline_table(path);
                self.depth -= 1;
                v
            }
            Some(_) => self.scalar(),
            None => self.err("expected a value"),
        }
    }

    fn nest(&mut self) -> Result<(), Error> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!(
                "arrays and inline tables nest more than {MAX_DEPTH} deep here: no config needs that; \
                 flatten the value"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// After the `[`: values separated by commas, newlines, comments and a trailing comma allowed.
    fn array(&mut self, path: &str) -> Result<Value, Error> {
        let mut items = Vec::new();
        loop {
            self.blank()?;
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            items.push(self.value(&format!("{path}[{}]", items.len()))?);
            self.blank()?;
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(b',') {
                return self.err("expected `,` or `]` in the array");
            }
        }
    }

    /// After the `{`: TOML 1.0's inline table, on one line, with no trailing comma.
    fn inline_table(&mut self, path: &str) -> Result<Value, Error> {
        let mut table = Map::new();
        let mut defined = Defined::default();
        let not_one_line = |p: &Self| -> Result<(), Error> {
            if p.at_newline() || p.peek() == Some(b'#') {
                return p.err(format!(
                    "a newline or a comment in an inline table {V11}: put the table on one line, or \
                     make it a [table]"
                ));
            }
            Ok(())
        };
        self.spaces();
        if self.eat(b'}') {
            return Ok(Value::Object(table));
        }
        loop {
            self.spaces();
            not_one_line(self)?;
            if self.peek() == Some(b'}') {
                return self.err(format!("a trailing comma in an inline table {V11}: remove it"));
            }
            let (at, key, value) = self.key_value(path)?;
            self.insert_dotted(&mut table, &[], &key, value, &mut defined, at)?;
            self.spaces();
            if self.eat(b'}') {
                return Ok(Value::Object(table));
            }
            not_one_line(self)?;
            if !self.eat(b',') {
                return self.err("expected `,` or `}` in the inline table");
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
                        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n'))
                            || self.s[self.i..].starts_with(b"\r\n")
                        {
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

    /// At a `\` in a basic string (TOML 1.0: `\b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX`).
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
            b'"' => '"',
            b'\\' => '\\',
            b'u' => hex(self, 4)?,
            b'U' => hex(self, 8)?,
            b'x' => return self.err_at(at, format!("the `\\x` escape {V11}: write `\\u00XX`")),
            b'e' => return self.err_at(at, format!("the `\\e` escape {V11}: write `\\u001B`")),
            _ => return self.err_at(at, "unknown escape"),
        };
        out.push(ch);
        Ok(())
    }

    /// A boolean, integer, float, date or time.
    fn scalar(&mut self) -> Result<Value, Error> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b']' | b'}' | b'#' | b'\n' | b'\r' | b'\t')
                || b == b' ' && !self.date_space(start)
            {
                break;
            }
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        match word {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "" => return self.err("expected a value"),
            _ => {}
        }
        let bytes = word.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| bytes.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if digits(0..4) && bytes.get(4) == Some(&b'-') || digits(0..2) && bytes.get(2) == Some(&b':') {
            return match datetime(word) {
                Ok(name) => Ok(special(name)),
                Err(why) => self.err_at(start, format!("`{word}` is not a TOML 1.0 date or time: {why}")),
            };
        }
        if let Some(n) = integer(word) {
            return Ok(Value::from(n));
        }
        if let Some(f) = float(word) {
            return Ok(match serde_json::Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None if f.is_nan() => special("float nan".into()),
                None if f < 0.0 => special("float -inf".into()),
                None => special("float inf".into()),
            });
        }
        if matches!(bytes.first(), Some(b'0'..=b'9' | b'+' | b'-' | b'.')) {
            return self.err_at(start, format!("`{word}` is not a TOML 1.0 number"));
        }
        self.err_at(start, format!("`{word}` is not a value (strings are quoted)"))
    }

    /// A space inside a date-time (`1979-05-27 07:32:00`) is part of it.
    fn date_space(&self, start: usize) -> bool {
        let word = &self.s[start..self.i];
        word.len() == 10 && word[4] == b'-' && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit)
    }
}

/// A TOML value JSON cannot hold, named.
fn special(name: String) -> Value {
    let mut m = Map::new();
    m.insert(SPECIAL.to_string(), Value::String(name));
    Value::Object(m)
}

/// A TOML 1.0 date or time (RFC 3339 as TOML takes it: `T`, `t` or a space between date and
/// time, seconds required, any number of fraction digits, `Z`/`z` or `±HH:MM`), named with its
/// kind and its canonical text (`offset date-time 1979-05-27T07:32:00Z`; the fraction up to
/// nanoseconds, trailing zeros dropped).
fn datetime(word: &str) -> Result<String, String> {
    let b = word.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let mut i = 0;
    let mut date = None;
    if b.get(4) == Some(&b'-') {
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err("a date is YYYY-MM-DD".into());
        };
        if b.get(7) != Some(&b'-') {
            return Err("a date is YYYY-MM-DD".into());
        }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(format!("there is no month {m}")),
        };
        if d == 0 || d > days {
            return Err(format!("month {m} of {y} has no day {d}"));
        }
        date = Some(format!("{y:04}-{m:02}-{d:02}"));
        i = 10;
        if i == b.len() {
            return Ok(format!("local date {}", date.unwrap_or_default()));
        }
        if !matches!(b[i], b'T' | b't' | b' ') {
            return Err("a time follows a date after `T` or a space".into());
        }
        i += 1;
    }
    let (Some(h), Some(mi)) = (num(i..i + 2), num(i + 3..i + 5)) else {
        return Err("a time is HH:MM:SS".into());
    };
    if b.get(i + 2) != Some(&b':') {
        return Err("a time is HH:MM:SS".into());
    }
    if b.get(i + 5) != Some(&b':') {
        return Err(format!("a time without seconds {V11}: write HH:MM:SS"));
    }
    let Some(sec) = num(i + 6..i + 8) else { return Err("a time is HH:MM:SS".into()) };
    if h > 23 || mi > 59 || sec > 60 {
        return Err(format!("{h:02}:{mi:02}:{sec:02} is not a time of day"));
    }
    let mut time = format!("{h:02}:{mi:02}:{sec:02}");
    i += 8;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut j = start;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == start {
            return Err("a fraction of a second needs digits after the `.`".into());
        }
        let frac = word[start..j.min(start + 9)].trim_end_matches('0');
        if !frac.is_empty() {
            time.push('.');
            time.push_str(frac);
        }
        i = j;
    }
    let Some(date) = date else {
        return if i == b.len() {
            Ok(format!("local time {time}"))
        } else {
            Err("unexpected text after the time".into())
        };
    };
    if i == b.len() {
        return Ok(format!("local date-time {date}T{time}"));
    }
    let offset = match b[i] {
        b'Z' | b'z' if i + 1 == b.len() => "Z".to_string(),
        b'+' | b'-' => {
            let (Some(oh), Some(om)) = (num(i + 1..i + 3), num(i + 4..i + 6)) else {
                return Err("an offset is Z or ±HH:MM".into());
            };
            if b.get(i + 3) != Some(&b':') || i + 6 != b.len() || oh > 23 || om > 59 {
                return Err("an offset is Z or ±HH:MM".into());
            }
            let sign = if b[i] == b'-' && (oh, om) != (0, 0) { '-' } else { '+' };
            format!("{sign}{oh:02}:{om:02}")
        }
        _ => return Err("an offset is Z or ±HH:MM".into()),
    };
    Ok(format!("offset date-time {date}T{time}{offset}"))
}

/// Digits with single `_` between them (`1_000`), all passing `digit`.
fn digits_ok(d: &str, digit: impl Fn(u8) -> bool) -> bool {
    !d.is_empty()
        && !d.starts_with('_')
        && !d.ends_with('_')
        && !d.contains("__")
        && d.bytes().all(|b| b == b'_' || digit(b))
}

/// A TOML integer: decimal with `_` between digits, `0x`/`0o`/`0b` (no sign), within i64.
fn integer(word: &str) -> Option<i64> {
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = word.strip_prefix(prefix) {
            return digits_ok(d, |b| char::from(b).is_digit(radix))
                .then(|| i64::from_str_radix(&d.replace('_', ""), radix).ok())
                .flatten();
        }
    }
    let digits = word.strip_prefix(['+', '-']).unwrap_or(word);
    if !digits_ok(digits, |b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    word.replace('_', "").parse().ok()
}

/// A TOML float: an integer part (no leading zeros) and a fraction and/or an exponent
/// (`1.5`, `-2e10`, `6.02_2e23`), or `inf` / `nan` with an optional sign.
fn float(word: &str) -> Option<f64> {
    let unsigned = word.strip_prefix(['+', '-']).unwrap_or(word);
    match unsigned {
        "inf" => return Some(if word.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    let dec = |d: &str| digits_ok(d, |b| b.is_ascii_digit());
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let ok = dec(int)
        && !(int.len() > 1 && int.starts_with('0'))
        && frac.is_none_or(dec)
        && exp.is_none_or(|e| dec(e.strip_prefix(['+', '-']).unwrap_or(e)))
        && (frac.is_some() || exp.is_some());
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

    fn sp(name: &str) -> Value {
        json!({ SPECIAL: name })
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
    fn mistakes_are_refused_with_their_line() {
        for (text, want) in [
            ("a = 1\na = 2", "line 2, column 1: key `a` is defined twice"),
            ("[t]\n[t]", "line 2, column 1: table `t` is defined twice"),
            ("a = \"open", "line 1"),
            ("a = bare", "`bare` is not a value"),
            ("d = 1979-05-32", "line 1, column 5: `1979-05-32` is not a TOML 1.0 date or time"),
            ("a = 1 b = 2", "expected the end of the line"),
            ("x = [1, 2", "expected `,` or `]`"),
            ("t = {a = 1}\n[t]", "already defined inline"),
            ("a = 1\n[a]", "already a value"),
            ("[[a]]\n[a]", "defined twice"),
            ("s = \"\\q\"", "unknown escape"),
            ("n = 01", "is not a TOML 1.0 number"),
            ("= 1", "expected a key"),
        ] {
            let err = bad(text);
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    /// TOML 1.1 syntax is refused, saying it is 1.1 (the reader holds to 1.0).
    #[test]
    fn toml_1_1_only_syntax_is_refused_saying_so() {
        for (text, at) in [
            ("t = {\n  a = 1 }", "line 1, column 6"),
            ("t = { a = 1,\n b = 2 }", "line 1, column 13"),
            ("t = { a = 1, }", "line 1, column 14"),
            ("t = { a = 1 # c\n}", "line 1, column 13"),
            ("s = \"\\x41\"", "line 1, column 6"),
            ("s = \"\\e\"", "line 1, column 6"),
            ("t = 07:32", "line 1, column 5"),
            ("t = 1979-05-27T07:32Z", "line 1, column 5"),
        ] {
            let err = bad(text);
            assert!(err.contains("is TOML 1.1, not 1.0") && err.starts_with(at), "{text:?}: {err}");
        }
        // What 1.0 allows inside an inline table: a multi-line value.
        assert_eq!(ok("t = { a = [\n1,\n2], b = \"\"\"x\ny\"\"\" }")["t"], json!({"a": [1, 2], "b": "x\ny"}));
    }

    /// Deep nesting is refused with a clear error, not a stack overflow.
    #[test]
    fn nesting_is_bounded() {
        for open in ["[", "{b=", "[{b=[", "{b={c="] {
            let text = format!("a = {}", open.repeat(5_000));
            let err = bad(&text);
            assert!(err.contains(&format!("nest more than {MAX_DEPTH} deep")), "{open}: {err}");
        }
        // Tables made by headers, dotted keys and inline tables count too (each level is one
        // more nested object to decode and drop).
        for text in [
            format!("[{}]", vec!["a"; 5_000].join(".")),
            format!("{} = 1", vec!["a"; 5_000].join(".")),
            format!("x = {}1{}", "[{b.c.d.e.f = ".repeat(50), "}]".repeat(50)),
        ] {
            let err = bad(&text);
            assert!(err.contains(&format!("more than {MAX_DEPTH} deep")), "{err}");
        }
        assert!(parse(&format!("[{}]\n{} = 1", vec!["a"; 40].join("."), vec!["b"; 40].join("."))).is_ok());
        let deep = format!("a = {}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&deep).is_ok());
        let deeper = format!("a = {}1{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&deeper).is_err());
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Deploy {
        name: String,
        env: Option<std::collections::BTreeMap<String, String>>,
    }

    impl FromValue for Deploy {
        fn from_value(v: &Value, at: &str) -> Result<Self, String> {
            let mut t = xtask_lint::value::Table::new(v, at)?;
            let name = t.req("name")?;
            t.done()?;
            Ok(Deploy { name, env: None })
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Image {
        name: String,
        env: std::collections::BTreeMap<String, String>,
    }

    impl FromValue for Image {
        fn from_value(v: &Value, at: &str) -> Result<Self, String> {
            let mut t = xtask_lint::value::Table::new(v, at)?;
            let i = Image { name: t.req("name")?, env: t.or_default("env")? };
            t.done()?;
            Ok(i)
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct File {
        image: Vec<Image>,
        deploy: Vec<Deploy>,
    }

    impl FromValue for File {
        fn from_value(v: &Value, at: &str) -> Result<Self, String> {
            let mut t = xtask_lint::value::Table::new(v, at)?;
            let f = File { image: t.or_default("image")?, deploy: t.or_default("deploy")? };
            t.done()?;
            Ok(f)
        }
    }

    /// Decoding errors name the line and column of the value (or key) they are about, found by
    /// its path, not by searching the text for its name.
    #[test]
    fn decoding_errors_name_where_the_value_is() {
        let text = "\
[[image]]
name = \"a\"
env = { X = \"1\" }

[[image]]
name = \"b\"
  env.Y = \"2\"
  env.Z = 3

[[deploy]]
name = \"d\"
   env = { X = \"1\" }
";
        let err = from_str::<File>(text).unwrap_err().to_string();
        assert!(err.starts_with("line 8, column 11: invalid type at image[1].env.Z"), "{err}");
        let text = text.replace("env.Z = 3", "env.Z = \"3\"");
        let err = from_str::<File>(&text).unwrap_err().to_string();
        assert!(err.starts_with("line 12, column 4: unknown field `env` in deploy[0]"), "{err}");
        let err = from_str::<File>("[[deploy]]\nx = 1\n\n[[deploy]]\nname = 'n'\n").unwrap_err().to_string();
        assert!(err.starts_with("line 1, column 1: missing field `name` in deploy[0]"), "{err}");
        let err = from_str::<File>("[[image]]\nname = 1979-05-27\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "line 2, column 8: invalid type at image[0].name: expected a string, found local date 1979-05-27"
        );
        let err = from_str::<File>("image = [{ name = 'a', env = { A = nan } }]").unwrap_err().to_string();
        assert_eq!(
            err,
            "line 1, column 36: invalid type at image[0].env.A: expected a string, found float nan"
        );
    }

    /// A corpus written from the sections of the TOML 1.0 specification: each valid document
    /// with the value it reads as, and each invalid one refused.
    #[test]
    fn conformance_with_the_toml_1_0_specification() {
        let valid: &[(&str, &str, Value)] = &[
            // Comment
            ("comment", "# full line\nkey = \"value\"  # at the end\n", json!({"key": "value"})),
            ("comment-hash-in-string", "a = \"# not a comment\"", json!({"a": "# not a comment"})),
            // Key/Value Pair
            ("kv-spaces", "  key   =   1  ", json!({"key": 1})),
            ("kv-tabs", "\tkey\t=\t1\t", json!({"key": 1})),
            ("kv-crlf", "a = 1\r\nb = 2\r\n", json!({"a": 1, "b": 2})),
            // Keys
            ("bare-keys", "key = 1\nbare_key = 2\nbare-key = 3\n1234 = 4", json!({"key": 1, "bare_key": 2, "bare-key": 3, "1234": 4})),
            ("quoted-keys", "\"127.0.0.1\" = 1\n\"ʎǝʞ\" = 2\n'quoted \"value\"' = 3\n\"\" = 4", json!({"127.0.0.1": 1, "ʎǝʞ": 2, "quoted \"value\"": 3, "": 4})),
            ("dotted-keys", "name = 'Orange'\nphysical.color = 'orange'\nsite.\"google.com\" = true", json!({"name": "Orange", "physical": {"color": "orange"}, "site": {"google.com": true}})),
            ("dotted-spaces", "fruit . flavor = 'banana'", json!({"fruit": {"flavor": "banana"}})),
            ("dotted-extend", "apple.type = 'fruit'\norange.type = 'fruit'\napple.skin = 'thin'", json!({"apple": {"type": "fruit", "skin": "thin"}, "orange": {"type": "fruit"}})),
            ("float-looking-key", "3.14159 = 'pi'", json!({"3": {"14159": "pi"}})),
            // String
            ("basic-escapes", r#"s = "\b\t\n\f\r\"\\\u00E9\U0001F600""#, json!({"s": "\u{8}\t\n\u{c}\r\"\\é😀"})),
            ("multi-basic-first-newline", "s = \"\"\"\nRoses\nViolets\"\"\"", json!({"s": "Roses\nViolets"})),
            ("multi-basic-line-ending-backslash", "s = \"\"\"\nThe quick \\\n\n   brown \\\n   fox.\"\"\"", json!({"s": "The quick brown fox."})),
            ("multi-basic-quotes", "s = \"\"\"Here are two quotation marks: \"\". Simple.\"\"\"", json!({"s": "Here are two quotation marks: \"\". Simple."})),
            ("multi-basic-quotes-at-end", "s = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"", json!({"s": "\"This,\" she said, \"is just a pointless statement.\""})),
            ("literal", r"s = 'C:\Users\nodejs\templates'", json!({"s": r"C:\Users\nodejs\templates"})),
            ("multi-literal", "s = '''\nThe first newline is\ntrimmed in raw strings.\n'''", json!({"s": "The first newline is\ntrimmed in raw strings.\n"})),
            ("multi-literal-quotes", "s = ''''That,' she said, 'is still pointless.''''", json!({"s": "'That,' she said, 'is still pointless.'"})),
            ("tab-in-string", "s = \"a\tb\"", json!({"s": "a\tb"})),
            // Integer
            ("integers", "a = +99\nb = 42\nc = 0\nd = -17\ne = 1_000\nf = 5_349_221\ng = 1_2_3_4_5\nh = +0\ni = -0", json!({"a": 99, "b": 42, "c": 0, "d": -17, "e": 1000, "f": 5349221, "g": 12345, "h": 0, "i": 0})),
            ("integer-prefixes", "a = 0xDEADBEEF\nb = 0xdead_beef\nc = 0o01234567\nd = 0o755\ne = 0b11010110\nf = 0x00", json!({"a": 3735928559u64, "b": 3735928559u64, "c": 342391, "d": 493, "e": 214, "f": 0})),
            ("integer-range", "a = 9223372036854775807\nb = -9223372036854775808", json!({"a": i64::MAX, "b": i64::MIN})),
            // Float
            ("floats", "a = +1.0\nb = 3.25\nc = -0.01\nd = 5e+22\ne = 1e06\nf = -2E-2\ng = 6.626e-34\nh = 224_617.445_991_228", json!({"a": 1.0, "b": 3.25, "c": -0.01, "d": 5e22, "e": 1e6, "f": -0.02, "g": 6.626e-34, "h": 224617.445991228})),
            ("float-zeros", "a = 0.0\nb = +0.0\nc = -0.0\nd = 0e0", json!({"a": 0.0, "b": 0.0, "c": -0.0, "d": 0.0})),
            ("float-special", "a = inf\nb = +inf\nc = -inf\nd = nan\ne = +nan\nf = -nan", json!({"a": sp("float inf"), "b": sp("float inf"), "c": sp("float -inf"), "d": sp("float nan"), "e": sp("float nan"), "f": sp("float nan")})),
            // Boolean
            ("booleans", "a = true\nb = false", json!({"a": true, "b": false})),
            // Offset Date-Time
            ("offset-datetime", "a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00-07:00\nc = 1979-05-27T00:32:00.999999-07:00\nd = 1979-05-27 07:32:00Z\ne = 1979-05-27t07:32:00z",
             json!({"a": sp("offset date-time 1979-05-27T07:32:00Z"), "b": sp("offset date-time 1979-05-27T00:32:00-07:00"), "c": sp("offset date-time 1979-05-27T00:32:00.999999-07:00"), "d": sp("offset date-time 1979-05-27T07:32:00Z"), "e": sp("offset date-time 1979-05-27T07:32:00Z")})),
            // Local Date-Time, Local Date, Local Time
            ("local-datetime", "a = 1979-05-27T07:32:00\nb = 1979-05-27T00:32:00.999999", json!({"a": sp("local date-time 1979-05-27T07:32:00"), "b": sp("local date-time 1979-05-27T00:32:00.999999")})),
            ("local-date", "a = 1979-05-27\nb = 2000-02-29", json!({"a": sp("local date 1979-05-27"), "b": sp("local date 2000-02-29")})),
            ("local-time", "a = 07:32:00\nb = 00:32:00.999999\nc = 23:59:60", json!({"a": sp("local time 07:32:00"), "b": sp("local time 00:32:00.999999"), "c": sp("local time 23:59:60")})),
            ("datetime-in-array", "a = [1979-05-27, 07:32:00]", json!({"a": [sp("local date 1979-05-27"), sp("local time 07:32:00")]})),
            // Array
            ("arrays", "integers = [ 1, 2, 3 ]\ncolors = [ \"red\", \"yellow\", \"green\" ]\nnested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]\nnested_mixed_array = [ [ 1, 2 ], [\"a\", \"b\", \"c\"] ]\nstring_array = [ \"all\", 'strings', \"\"\"are the same\"\"\", '''type''' ]",
             json!({"integers": [1, 2, 3], "colors": ["red", "yellow", "green"], "nested_arrays_of_ints": [[1, 2], [3, 4, 5]], "nested_mixed_array": [[1, 2], ["a", "b", "c"]], "string_array": ["all", "strings", "are the same", "type"]})),
            ("array-mixed-types", "numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]\ncontributors = [\"Foo Bar\", { name = \"Baz Qux\", email = \"bazqux@example.com\" }]",
             json!({"numbers": [0.1, 0.2, 0.5, 1, 2, 5], "contributors": ["Foo Bar", {"name": "Baz Qux", "email": "bazqux@example.com"}]})),
            ("array-multiline", "a = [\n  1, # one\n  2,\n]\nb = []\nc = [ ]", json!({"a": [1, 2], "b": [], "c": []})),
            // Table
            ("tables", "[table-1]\nkey1 = \"some string\"\nkey2 = 123\n\n[table-2]\nkey1 = \"another string\"\nkey2 = 456", json!({"table-1": {"key1": "some string", "key2": 123}, "table-2": {"key1": "another string", "key2": 456}})),
            ("table-dotted-header", "[dog.\"tater.man\"]\ntype.name = \"pug\"", json!({"dog": {"tater.man": {"type": {"name": "pug"}}}})),
            ("table-header-spaces", "[ j . \"ʞ\" . 'l' ]", json!({"j": {"ʞ": {"l": {}}}})),
            ("table-super-after", "[x.y.z.w]\n[x]", json!({"x": {"y": {"z": {"w": {}}}}})),
            ("table-empty", "[a]", json!({"a": {}})),
            ("table-dotted-then-subtable", "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n\n[fruit.apple.texture]\nsmooth = true",
             json!({"fruit": {"apple": {"color": "red", "taste": {"sweet": true}, "texture": {"smooth": true}}}})),
            ("top-level-before-tables", "a = 1\n[t]\nb = 2", json!({"a": 1, "t": {"b": 2}})),
            // Inline Table
            ("inline-tables", "name = { first = \"Tom\", last = \"Preston-Werner\" }\npoint = { x = 1, y = 2 }\nanimal = { type.name = \"pug\" }\nempty = {}",
             json!({"name": {"first": "Tom", "last": "Preston-Werner"}, "point": {"x": 1, "y": 2}, "animal": {"type": {"name": "pug"}}, "empty": {}})),
            // Array of Tables
            ("array-of-tables", "[[products]]\nname = \"Hammer\"\nsku = 738594937\n\n[[products]]\n\n[[products]]\nname = \"Nail\"\nsku = 284758393\ncolor = \"gray\"",
             json!({"products": [{"name": "Hammer", "sku": 738594937}, {}, {"name": "Nail", "sku": 284758393, "color": "gray"}]})),
            ("array-of-tables-nested", "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\nname = \"granny smith\"\n[[fruits]]\nname = \"banana\"\n[[fruits.varieties]]\nname = \"plantain\"",
             json!({"fruits": [{"name": "apple", "physical": {"color": "red"}, "varieties": [{"name": "red delicious"}, {"name": "granny smith"}]}, {"name": "banana", "varieties": [{"name": "plantain"}]}]})),
            ("bom", "\u{feff}a = 1", json!({"a": 1})),
            ("empty", "", json!({})),
        ];
        for (name, text, want) in valid {
            assert_eq!(&ok(text), want, "{name}");
        }
        let invalid: &[(&str, &str)] = &[
            // Comment
            ("comment-control", "# a \u{7f} b"),
            ("comment-nul", "a = 1 # \u{0}"),
            // Key/Value Pair
            ("kv-no-value", "key = # INVALID"),
            ("kv-no-newline", "first = \"Tom\" last = \"Preston-Werner\""),
            ("kv-newline-after-key", "key\n= 1"),
            ("kv-newline-after-eq", "key =\n1"),
            // Keys
            ("key-empty-bare", "= \"no key name\""),
            ("key-duplicate", "name = \"Tom\"\nname = \"Pradyun\""),
            ("key-duplicate-quoted", "spelling = \"favorite\"\n\"spelling\" = \"favourite\""),
            ("key-dotted-over-value", "fruit.apple = 1\nfruit.apple.smooth = true"),
            ("key-multiline", "\"\"\"k\"\"\" = 1"),
            ("key-unicode-bare", "ʎ = 1"),
            // String
            ("string-bad-escape", r#"s = "\z""#),
            ("string-bad-unicode", r#"s = "\uD800""#),
            ("string-short-unicode", r#"s = "\u12""#),
            ("string-newline", "s = \"a\nb\""),
            ("string-literal-newline", "s = 'a\nb'"),
            ("string-control", "s = \"a\u{1}b\""),
            ("string-unterminated-multi", "s = \"\"\"abc"),
            ("string-six-quotes", "s = \"\"\"a\"\"\"\"\"\""),
            ("string-literal-four-quotes-end", "s = '''a''''''"),
            // Integer
            ("int-leading-zero", "a = 0123"),
            ("int-double-underscore", "a = 1__2"),
            ("int-trailing-underscore", "a = 1_"),
            ("int-leading-underscore", "a = _1"),
            ("int-signed-hex", "a = +0x1"),
            ("int-uppercase-prefix", "a = 0X1"),
            ("int-overflow", "a = 9223372036854775808"),
            ("int-bad-octal", "a = 0o8"),
            ("int-empty-hex", "a = 0x"),
            // Float
            ("float-no-int", "a = .7"),
            ("float-no-frac", "a = 7."),
            ("float-dot-exp", "a = 3.e+20"),
            ("float-leading-zero", "a = 03.14"),
            ("float-underscore-dot", "a = 1_.5"),
            ("float-exp-underscore-start", "a = 1e_5"),
            ("float-upper-inf", "a = Inf"),
            ("float-infinity", "a = infinity"),
            // Boolean
            ("bool-case", "a = True"),
            ("bool-prefix", "a = truee"),
            // Dates and times
            ("date-month-13", "a = 1979-13-01"),
            ("date-feb-29", "a = 1979-02-29"),
            ("date-short", "a = 1979-5-27"),
            ("time-hour-24", "a = 24:00:00"),
            ("time-no-seconds", "a = 07:32"),
            ("time-empty-fraction", "a = 07:32:00."),
            ("datetime-bad-offset", "a = 1979-05-27T07:32:00+7:00"),
            ("datetime-offset-hour", "a = 1979-05-27T07:32:00+24:00"),
            ("datetime-trailing", "a = 1979-05-27T07:32:00Zx"),
            ("local-time-offset", "a = 07:32:00Z"),
            // Array
            ("array-no-comma", "a = [1 2]"),
            ("array-double-comma", "a = [1,,2]"),
            ("array-leading-comma", "a = [,1]"),
            ("array-unclosed", "a = [1,\n"),
            // Table
            ("table-twice", "[fruit]\napple = \"red\"\n\n[fruit]\norange = \"orange\""),
            ("table-over-dotted-value", "[fruit]\napple = \"red\"\n\n[fruit.apple]\ntexture = \"smooth\""),
            ("table-header-for-dotted", "[fruit]\napple.color = \"red\"\n[fruit.apple]"),
            ("table-empty-name", "[]"),
            ("table-unclosed", "[a"),
            ("table-newline-in-header", "[a\n.b]"),
            ("table-text-after", "[a] b = 1"),
            // Inline Table
            ("inline-add-later", "[product]\ntype = { name = \"Nail\" }\ntype.edible = false"),
            ("inline-then-header", "[product]\ntype.name = \"Nail\"\n\n[product.type]"),
            ("inline-dup", "a = { b = 1, b = 2 }"),
            ("inline-extend-header", "a = { b = 1 }\n[a.c]"),
            ("inline-newline", "a = {\n}"),
            ("inline-trailing-comma", "a = { b = 1, }"),
            ("inline-no-comma", "a = { b = 1 c = 2 }"),
            // Array of Tables
            ("aot-over-static-array", "fruits = []\n\n[[fruits]]"),
            ("aot-then-table", "[[fruits]]\nname = \"apple\"\n\n[[fruits.varieties]]\nname = \"red delicious\"\n\n[fruits.varieties]\nname = \"granny smith\""),
            ("aot-after-table", "[fruit.physical]\ncolor = \"red\"\n\n[[fruit.physical]]"),
            ("aot-unclosed", "[[a]"),
            ("aot-space", "[ [a]]"),
        ];
        for (name, text) in invalid {
            assert!(parse(text).is_err(), "{name}: {text:?} was accepted as {:?}", parse(text));
        }
        assert!(valid.len() + invalid.len() >= 120, "{}", valid.len() + invalid.len());
    }

    /// toml (0.8, TOML 1.0) as JSON, with the same names for what JSON cannot hold.
    fn reference(text: &str) -> Result<Value, String> {
        fn conv(v: &toml::Value) -> Value {
            match v {
                toml::Value::String(s) => json!(s),
                toml::Value::Integer(i) => json!(i),
                toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
                    Some(n) => Value::Number(n),
                    None if f.is_nan() => sp("float nan"),
                    None if *f < 0.0 => sp("float -inf"),
                    None => sp("float inf"),
                },
                toml::Value::Boolean(b) => json!(b),
                toml::Value::Datetime(d) => {
                    let kind = match (d.date.is_some(), d.time.is_some(), d.offset.is_some()) {
                        (true, true, true) => "offset date-time",
                        (true, true, false) => "local date-time",
                        (true, false, _) => "local date",
                        _ => "local time",
                    };
                    sp(&format!("{kind} {d}"))
                }
                toml::Value::Array(a) => Value::Array(a.iter().map(conv).collect()),
                toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), conv(v))).collect()),
            }
        }
        text.parse::<toml::Table>().map(|t| conv(&toml::Value::Table(t))).map_err(|e| e.to_string())
    }

    /// Generated documents (every kind of value, tables, arrays of tables, inline tables,
    /// comments, odd spacing), each also mutated byte by byte: read here exactly as the toml
    /// crate reads them, or refused by both.
    #[test]
    fn differential_against_the_toml_crate() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let keys = ["a", "b", "c-d", "e_1", "\"q.k\"", "'lit'", "1", "a.b", "b . c", "\"\""];
        let scalars = [
            "1",
            "-7",
            "+3",
            "0",
            "1_000",
            "0xff",
            "0o17",
            "0b101",
            "01",
            "1__0",
            "9223372036854775808",
            "1.5",
            "-0.0",
            "6.02e23",
            "1e-3",
            "1_0.2_5",
            "3.",
            ".5",
            "1e",
            "inf",
            "-inf",
            "nan",
            "+nan",
            "true",
            "false",
            "\"s\"",
            "\"a\\tb\\u00e9\"",
            "\"\\x41\"",
            "'lit\\'",
            "\"\"\"m\nl\"\"\"",
            "'''r\n'''",
            "1979-05-27",
            "1979-05-27T07:32:00Z",
            "1979-05-27 07:32:00.5+01:30",
            "1979-05-27T07:32:00.123456789123",
            "07:32:00",
            "07:32",
            "1979-02-29",
            "2000-02-29T23:59:60-00:00",
            "1979-05-27T07:32:00z",
            "bare",
        ];
        fn value(
            next: &mut impl FnMut(usize) -> usize,
            keys: &[&str],
            scalars: &[&str],
            depth: usize,
        ) -> String {
            match next(if depth > 2 { 1 } else { 4 }) {
                0 => scalars[next(scalars.len())].to_string(),
                1 => {
                    let items: Vec<String> =
                        (0..next(4)).map(|_| value(next, keys, scalars, depth + 1)).collect();
                    let sep = [", ", ",\n ", " ,", ",# c\n"][next(4)];
                    format!("[{}{}]", items.join(sep), ["", ",", "\n"][next(3)])
                }
                2 => {
                    let items: Vec<String> = (0..next(3))
                        .map(|_| {
                            format!("{} = {}", keys[next(keys.len())], value(next, keys, scalars, depth + 1))
                        })
                        .collect();
                    format!("{{{}{}}}", items.join(", "), ["", " ", ",", "\n"][next(4)])
                }
                _ => scalars[next(scalars.len())].to_string(),
            }
        }
        let mut agreed = 0;
        let mut accepted = 0;
        for _ in 0..3_000 {
            let mut doc = String::new();
            for _ in 0..1 + next(6) {
                match next(6) {
                    0 => doc.push_str(&format!("[{}]\n", keys[next(keys.len())])),
                    1 => doc.push_str(&format!("[[{}]]\n", keys[next(keys.len())])),
                    2 => doc.push_str("# comment\n\n"),
                    _ => doc.push_str(&format!(
                        "{}{} ={}{}\n",
                        ["", " ", "\t"][next(3)],
                        keys[next(keys.len())],
                        [" ", "", "\t"][next(3)],
                        value(&mut next, &keys, &scalars, 0)
                    )),
                }
            }
            let mut docs = vec![doc.clone()];
            let bytes = doc.as_bytes();
            for _ in 0..3 {
                let mut m = bytes.to_vec();
                let at = next(m.len().max(1));
                match next(3) {
                    0 if !m.is_empty() => {
                        m.remove(at.min(m.len() - 1));
                    }
                    1 => m.insert(at.min(m.len()), b"=[]{},.\"'#\n \\_:-+eTZ0"[next(21)]),
                    _ => {
                        if !m.is_empty() {
                            let i = at.min(m.len() - 1);
                            m[i] = b"=[]{},.\"'#\n \\_:-+eTZ0"[next(21)];
                        }
                    }
                }
                if let Ok(s) = String::from_utf8(m) {
                    docs.push(s);
                }
            }
            for text in docs {
                let ours = parse(&text);
                let theirs = reference(&text);
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a, b, "{text:?}");
                        accepted += 1;
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!("{text:?}\nours: {ours:?}\ntoml: {theirs:?}"),
                }
                agreed += 1;
            }
        }
        assert!(agreed > 9_000 && accepted > 1_000, "{agreed} {accepted}");
    }
}
