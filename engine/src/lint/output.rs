//! The output formats: human, json (the contract), sarif, github annotations.

use std::fmt::Write as _;

use serde_json::json;

use super::config::Config;
use super::report::Report;
use super::rules;

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

/// The report in `format`; help texts as `config` words them.
pub(crate) fn render(report: &Report, format: Format, tool: &str, config: &Config) -> String {
    match format {
        Format::Human => human(report, config),
        Format::Json => report.to_json_text() + "\n",
        Format::Sarif => {
            serde_json::to_string_pretty(&sarif(report, tool, config)).unwrap_or_default() + "\n"
        }
        Format::Github => github(report, config),
    }
}

/// A line as shown under a finding, and the column of the finding in it: a long line (a
/// minified or generated one) is cut to 60 characters either side, marked with `…`, so a line
/// with many findings is not printed whole for each. `starts`: where each character of the
/// line starts (computed once per line, not per finding).
fn excerpt(line: &str, starts: &[usize], column: usize) -> (String, usize) {
    const SIDE: usize = 60;
    let n = starts.len();
    if n <= 2 * SIDE + 20 {
        return (line.to_string(), column);
    }
    let at = column.saturating_sub(1).min(n);
    let from = at.saturating_sub(SIDE);
    let to = (at + SIDE).min(n);
    let byte = |c: usize| starts.get(c).copied().unwrap_or(line.len());
    let mut shown = String::new();
    if from > 0 {
        shown.push('…');
    }
    shown.push_str(&line[byte(from)..byte(to)]);
    if to < n {
        shown.push('…');
    }
    (shown, at - from + 1 + usize::from(from > 0))
}

fn human(report: &Report, config: &Config) -> String {
    let mut out = String::new();
    let mut line_starts: Option<(std::sync::Arc<str>, Vec<usize>)> = None;
    for f in &report.findings {
        let _ = writeln!(out, "{}:{}:{} {} {}", f.path, f.line, f.column, f.rule.id, f.message);
        let line = f.source_line.trim_end();
        if !line_starts.as_ref().is_some_and(|(l, _)| std::sync::Arc::ptr_eq(l, &f.source_line)) {
            line_starts = Some((f.source_line.clone(), line.char_indices().map(|(i, _)| i).collect()));
        }
        let starts = line_starts.as_ref().map(|(_, s)| s.as_slice()).unwrap_or_default();
        let (shown, caret_at) = excerpt(line, starts, f.column);
        let _ = writeln!(out, "    {shown}");
        let caret_pad: String =
            shown.chars().take(caret_at - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = writeln!(out, "    {caret_pad}^");
        let _ = writeln!(out, "    help: {}\n", config.help(f.rule));
    }
    for e in &report.parse_errors {
        let _ = writeln!(out, "{}:{}: cannot parse: {}", e.path, e.line, e.message);
    }
    for s in &report.skipped {
        let _ = writeln!(out, "{}: skipped: {}", s.path, s.reason);
    }
    for f in &report.fixed {
        let _ = writeln!(out, "{f}: fixed");
    }
    let _ = writeln!(
        out,
        "{} file(s) scanned: {} finding(s), {} parse error(s), {} skipped",
        report.files_scanned,
        report.findings.len(),
        report.parse_errors.len(),
        report.skipped.len()
    );
    out
}

fn github(report: &Report, config: &Config) -> String {
    let esc = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let prop = |s: &str| esc(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(
            out,
            "::error file={},line={},col={},title={}::{}",
            prop(&f.path),
            f.line,
            f.column,
            prop(f.rule.id),
            esc(&format!("{} ({})", f.message, config.help(f.rule)))
        );
    }
    for e in &report.parse_errors {
        let _ = writeln!(
            out,
            "::error file={},line={},title=parse-error::{}",
            prop(&e.path),
            e.line,
            esc(&e.message)
        );
    }
    for s in &report.skipped {
        let _ = writeln!(out, "::warning file={},title=skipped::{}", prop(&s.path), esc(&s.reason));
    }
    out
}

/// A relative path as a URI reference (RFC 3986): unreserved characters and `/` as they are,
/// every other byte percent-encoded (a space, `#`, `?`, `%`, non-ASCII).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.replace('\\', "/").as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sarif(report: &Report, tool: &str, config: &Config) -> serde_json::Value {
    let rules: Vec<_> = rules::all()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": { "text": r.summary },
                "help": { "text": config.help(r) },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let mut results: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": rules::all().position(|r| r == f.rule).unwrap_or(0),
                "level": "error",
                "message": { "text": f.message },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": uri(&f.path) },
                    "region": { "startLine": f.line, "startColumn": f.column },
                }}],
            })
        })
        .collect();
    let mut notifications: Vec<_> = report
        .parse_errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": { "text": format!("cannot parse: {}", e.message) },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": uri(&e.path) },
                    "region": { "startLine": e.line },
                }}],
            })
        })
        .collect();
    // Files not read (binary, not UTF-8, not covered) are said here too, as the JSON says them.
    notifications.extend(report.skipped.iter().map(|s| {
        json!({
            "level": "note",
            "message": { "text": format!("skipped: {}", s.reason) },
            "locations": [{ "physicalLocation": { "artifactLocation": { "uri": uri(&s.path) } } }],
        })
    }));
    results.sort_by_key(|r| r["ruleId"].as_str().map(String::from));
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": tool,
                "informationUri": "https://github.com/rust-lang/cargo/wiki/xtask",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(super::uri("docker/a b#1.Dockerfile"), "docker/a%20b%231.Dockerfile");
        assert_eq!(super::uri("é/x?y%"), "%C3%A9/x%3Fy%25");
        assert_eq!(super::uri("plain/path-1_2.~x"), "plain/path-1_2.~x");
    }

    /// A long line is shown cut around the finding, the caret still under it.
    #[test]
    fn a_long_line_is_shown_around_its_finding() {
        let excerpt = |line: &str, column: usize| {
            let starts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
            super::excerpt(line, &starts, column)
        };
        assert_eq!(excerpt("short /tmp/x", 7), ("short /tmp/x".to_string(), 7));
        let line = format!("{}/tmp/x{}", "é".repeat(500), "z".repeat(500));
        let (shown, at) = excerpt(&line, 501);
        assert!(shown.starts_with('…') && shown.ends_with('…') && shown.chars().count() == 122, "{shown}");
        assert_eq!(shown.chars().nth(at - 1), Some('/'));
        assert!(shown.chars().skip(at - 1).collect::<String>().starts_with("/tmp/x"));
    }
}
