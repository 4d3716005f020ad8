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

fn human(report: &Report, config: &Config) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(out, "{}:{}:{} {} {}", f.path, f.line, f.column, f.rule.id, f.message);
        let _ = writeln!(out, "    {}", f.source_line.trim_end());
        let caret_pad: String =
            f.source_line.chars().take(f.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
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
}
