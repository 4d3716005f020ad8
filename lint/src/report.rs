//! Findings, the report both lints produce, suppression markers, and the baseline.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::value::{FromValue, Table};

/// A rule: its id (the contract: JSON `rule`, `xtask-lint: allow(<id>)`, SARIF `ruleId`), what
/// it finds, and how to fix it (the config's `[help]` table can reword the help for a project).
/// Each checker defines its own rules beside its code.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
    pub help: &'static str,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static Rule,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub severity: &'static str,
    pub message: String,
    /// The finding's line (shared by the findings on one line).
    pub source_line: std::sync::Arc<str>,
}

#[derive(Debug, Clone)]
pub struct ParseErrorEntry {
    pub path: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub files_scanned: usize,
    pub findings: Vec<Finding>,
    pub parse_errors: Vec<ParseErrorEntry>,
    pub skipped: Vec<Skipped>,
    pub fixed: Vec<String>,
}

impl Report {
    /// The JSON report (`--format json`), pretty-printed: `{files_scanned, findings: [{rule,
    /// path, line, column, severity, message}], parse_errors: [{path, line, message}], skipped:
    /// [{path, reason}]}`, and `fixed` when `--fix` changed files. Written directly, in this
    /// order: building a `serde_json::Value` first cost ~10 ms on a repository's 700 findings.
    pub fn to_json_text(&self) -> String {
        let mut out = String::with_capacity(256 + 256 * self.findings.len());
        out.push_str("{\n  \"files_scanned\": ");
        out.push_str(&self.files_scanned.to_string());
        let array = |out: &mut String, name: &str, rows: Vec<Vec<(&str, Field<'_>)>>| {
            out.push_str(",\n  \"");
            out.push_str(name);
            out.push_str("\": [");
            for (n, row) in rows.iter().enumerate() {
                out.push_str(if n == 0 { "\n    {" } else { ",\n    {" });
                for (k, (key, value)) in row.iter().enumerate() {
                    out.push_str(if k == 0 { "\n      \"" } else { ",\n      \"" });
                    out.push_str(key);
                    out.push_str("\": ");
                    match value {
                        Field::Text(t) => json_string(out, t),
                        Field::Number(n) => out.push_str(&n.to_string()),
                    }
                }
                out.push_str("\n    }");
            }
            out.push_str(if rows.is_empty() { "]" } else { "\n  ]" });
        };
        use Field::{Number, Text};
        let findings = self
            .findings
            .iter()
            .map(|f| {
                vec![
                    ("rule", Text(f.rule.id)),
                    ("path", Text(&f.path)),
                    ("line", Number(f.line)),
                    ("column", Number(f.column)),
                    ("severity", Text(f.severity)),
                    ("message", Text(&f.message)),
                ]
            })
            .collect();
        array(&mut out, "findings", findings);
        let errors = self
            .parse_errors
            .iter()
            .map(|e| vec![("path", Text(&e.path)), ("line", Number(e.line)), ("message", Text(&e.message))])
            .collect();
        array(&mut out, "parse_errors", errors);
        let skipped =
            self.skipped.iter().map(|s| vec![("path", Text(&s.path)), ("reason", Text(&s.reason))]).collect();
        array(&mut out, "skipped", skipped);
        if !self.fixed.is_empty() {
            out.push_str(",\n  \"fixed\": [");
            for (n, f) in self.fixed.iter().enumerate() {
                out.push_str(if n == 0 { "\n    " } else { ",\n    " });
                json_string(&mut out, f);
            }
            out.push_str("\n  ]");
        }
        out.push_str("\n}");
        out
    }

    pub fn merge(&mut self, other: Report) {
        self.files_scanned += other.files_scanned;
        self.findings.extend(other.findings);
        self.parse_errors.extend(other.parse_errors);
        self.skipped.extend(other.skipped);
        self.fixed.extend(other.fixed);
    }

    pub fn sort(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.path, a.line, a.column, a.rule).cmp(&(&b.path, b.line, b.column, b.rule)));
        self.findings.dedup_by(|a, b| {
            a.path == b.path && a.line == b.line && a.column == b.column && a.rule == b.rule
        });
        self.parse_errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    }

    pub fn exit_code(&self) -> i32 {
        if self.findings.is_empty() && self.parse_errors.is_empty() {
            0
        } else {
            1
        }
    }
}

/// A value in the JSON report.
enum Field<'a> {
    Text(&'a str),
    Number(usize),
}

/// `text` as a JSON string, escaped by serde_json.
fn json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// A file's text with line starts, for offsets → line/column (1-based, columns in characters).
pub struct Source<'a> {
    pub text: &'a str,
    line_starts: Vec<usize>,
    /// Rules allowed in the whole file by `xtask-lint: allow-file(...)` in its first 20 lines.
    file_allowed: Vec<String>,
    /// The last column counted: (line start, offset, column). Offsets asked in order on one
    /// line are counted on from there, so a line with many findings is read once.
    last_column: std::cell::Cell<(usize, usize, usize)>,
    /// The last line whose text a finding took, shared by the findings on it.
    last_line: std::cell::RefCell<Option<(usize, std::sync::Arc<str>)>>,
    /// Each line's `xtask-lint: allow(...)` list, read once.
    allow_lists: std::cell::RefCell<std::collections::HashMap<usize, Vec<String>>>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let head_end = line_starts.get(20).copied().unwrap_or(text.len());
        let file_allowed = allow_list(&text[..head_end], "xtask-lint: allow-file(");
        Source {
            text,
            line_starts,
            file_allowed,
            last_column: std::cell::Cell::new((usize::MAX, 0, 0)),
            last_line: std::cell::RefCell::new(None),
            allow_lists: std::cell::RefCell::new(std::collections::HashMap::new()),
        }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let chars = |from: usize| self.text.get(from..offset).map(|s| s.chars().count());
        let (last_start, last_offset, last_col) = self.last_column.get();
        let col = match chars(last_offset) {
            Some(n) if last_start == start && last_offset <= offset => last_col + n,
            _ => chars(start).unwrap_or(offset - start) + 1,
        };
        self.last_column.set((start, offset, col));
        (line + 1, col)
    }

    /// The text of `line`, shared by every finding on it.
    fn shared_line(&self, line: usize) -> std::sync::Arc<str> {
        let mut last = self.last_line.borrow_mut();
        match &*last {
            Some((l, text)) if *l == line => text.clone(),
            _ => {
                let text: std::sync::Arc<str> = self.line_text(line).into();
                *last = Some((line, text.clone()));
                text
            }
        }
    }

    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(line).map(|e| e - 1).unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or("").trim_end_matches('\r')
    }

    /// Rules allowed on a line by `xtask-lint: allow(rule, ...)` on it or the line above.
    pub fn allowed(&self, line: usize, rule: &Rule) -> bool {
        let matches = |r: &String| r == rule.id || r == "all";
        self.file_allowed.iter().any(matches)
            || [line, line.saturating_sub(1)].iter().filter(|&&l| l >= 1).any(|&l| {
                let mut lists = self.allow_lists.borrow_mut();
                lists
                    .entry(l)
                    .or_insert_with(|| allow_list(self.line_text(l), "xtask-lint: allow("))
                    .iter()
                    .any(matches)
            })
    }

    pub fn finding(&self, rule: &'static Rule, path: &str, offset: usize, message: String) -> Finding {
        let (line, column) = self.line_col(offset);
        Finding {
            rule,
            path: path.to_string(),
            line,
            column,
            severity: "error",
            message,
            source_line: self.shared_line(line),
        }
    }
}

/// The rule ids listed after each `marker` (`xtask-lint: allow(a, b)`).
fn allow_list(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .flat_map(|(i, m)| {
            let list = text[i + m.len()..].split(')').next().unwrap_or("");
            list.split(',').map(|r| r.trim().to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[derive(PartialEq, Eq, Hash, Clone, Debug)]
struct BaselineEntry {
    rule: String,
    path: String,
    /// The finding's source line, trimmed: survives line-number shifts.
    line_text: String,
}

/// Writes the current findings as the accepted baseline.
///
/// `key` gives the path a finding is recorded under (relative to the repository, so that the
/// baseline holds wherever the lint runs from).
pub fn write_baseline(path: &Path, report: &Report, key: &dyn Fn(&str) -> String) -> Result<()> {
    let entries: Vec<Value> = report
        .findings
        .iter()
        .map(|f| entry(f, key))
        .map(|e| json!({"rule": e.rule, "path": e.path, "line_text": e.line_text}))
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "findings": entries }))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing baseline {}", path.display()))
}

/// Drops findings the baseline accepts (each baseline entry accepts one finding); `key` as for
/// [`write_baseline`].
pub fn apply_baseline(path: &Path, report: &mut Report, key: &dyn Fn(&str) -> String) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading baseline {}", path.display()))?;
    let invalid = || format!("invalid baseline {}", path.display());
    let file: Value = serde_json::from_str(&text).with_context(invalid)?;
    // Other keys (`version`) are ignored.
    let findings: Vec<BaselineEntry> = Table::new(&file, "")
        .and_then(|mut t| t.req("findings"))
        .map_err(anyhow::Error::msg)
        .with_context(invalid)?;
    let mut budget: HashMap<BaselineEntry, usize> = HashMap::new();
    for e in findings {
        *budget.entry(e).or_default() += 1;
    }
    let before = report.findings.len();
    report.findings.retain(|f| match budget.get_mut(&entry(f, key)) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    });
    Ok(before - report.findings.len())
}

impl FromValue for BaselineEntry {
    fn from_value(v: &Value, at: &str) -> std::result::Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let e = BaselineEntry { rule: t.req("rule")?, path: t.req("path")?, line_text: t.req("line_text")? };
        // Other keys are a newer version's additions: ignored.
        Ok(e)
    }
}

fn entry(f: &Finding, key: &dyn Fn(&str) -> String) -> BaselineEntry {
    BaselineEntry { rule: f.rule.id.into(), path: key(&f.path), line_text: f.source_line.trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = Source::new("ab\ncé d\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(3), (2, 1));
        assert_eq!(src.line_col(7), (2, 4));
        assert_eq!(src.line_text(2), "cé d");
    }

    #[test]
    fn the_json_report_is_json_with_every_field_escaped() {
        static RULE: Rule = Rule { id: "fixed-tmp-path", summary: "s", help: "h" };
        let odd = "a \"quoted\" \\ path\twith\nlines \u{1} é \u{7f} </script>";
        let mut report = Report { files_scanned: 3, ..Report::default() };
        assert_eq!(
            serde_json::from_str::<Value>(&report.to_json_text()).unwrap(),
            json!({"files_scanned": 3, "findings": [], "parse_errors": [], "skipped": []})
        );
        report.findings.push(Finding {
            rule: &RULE,
            path: odd.into(),
            line: 2,
            column: 7,
            severity: "error",
            message: odd.into(),
            source_line: "".into(),
        });
        report.parse_errors.push(ParseErrorEntry { path: "p".into(), line: 1, message: odd.into() });
        report.skipped.push(Skipped { path: odd.into(), reason: "binary".into() });
        report.fixed.push(odd.into());
        let text = report.to_json_text();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({
                "files_scanned": 3,
                "findings": [{"rule": "fixed-tmp-path", "path": odd, "line": 2, "column": 7,
                              "severity": "error", "message": odd}],
                "parse_errors": [{"path": "p", "line": 1, "message": odd}],
                "skipped": [{"path": odd, "reason": "binary"}],
                "fixed": [odd],
            }),
            "{text}"
        );
        // The contract's order, pretty-printed.
        assert!(
            text.starts_with("{\n  \"files_scanned\": 3,\n  \"findings\": [\n    {\n      \"rule\""),
            "{text}"
        );
    }

    #[test]
    fn suppression_on_the_line_or_above() {
        let src = Source::new("a # xtask-lint: allow(fixed-tmp-path, dnf-update)\nb\nc\n");
        assert!(src.allowed(1, &crate::dockerfiles::DNF_UPDATE));
        assert!(src.allowed(2, &crate::hardcoded::FIXED_TMP_PATH));
        assert!(!src.allowed(2, &crate::hardcoded::GLOBAL_DELETE));
        assert!(!src.allowed(3, &crate::dockerfiles::DNF_UPDATE));
    }
}
