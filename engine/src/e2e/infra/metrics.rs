//! Prometheus assertions filtered by run: every query sees only its own run's series.
//!
//! - [`scope`] rewrites a PromQL expression so every vector selector carries the run matcher
//!   (`run_id="<id>"`), escaped as PromQL requires; call sites never concatenate label values.
//! - [`Client`]: instant and range queries on ureq, the response envelope, 400/422/503 handling,
//!   503-before-ready retried until a deadline, and [`Client::wait_for`].
//! - [`service_monitor`]: a per-run ServiceMonitor that puts the run label on the series.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// The label that carries the run id on series (the ServiceMonitor relabels the pod label
/// `configbutler.ai/e2e-run-id` to it).
pub const RUN_LABEL: &str = "run_id";

/// A PromQL string literal: `"` and `\` escaped (Go escapes, prometheus docs/querying/basics.md).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One equality matcher, rendered safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub value: String,
}

impl Matcher {
    pub fn eq(label: &str, value: &str) -> Result<Matcher> {
        let ok = !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !label.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            bail!("{label:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        }
        Ok(Matcher { label: label.into(), value: value.into() })
    }

    /// The run matcher: `run_id="<id>"`.
    pub fn run(run_id: &str) -> Result<Matcher> {
        crate::e2e::context::validate_run_id(run_id)?;
        Matcher::eq(RUN_LABEL, run_id)
    }

    pub fn render(&self) -> String {
        format!("{}={}", self.label, quote(&self.value))
    }
}

/// A vector selector built from parts: `name{a="x",b="y"}`.
pub fn selector(metric: &str, matchers: &[Matcher]) -> String {
    let inner: Vec<String> = matchers.iter().map(Matcher::render).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
];

/// Aggregation operators: never metric names, whether `(` or `by`/`without` follows.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
];

/// Injects `matcher` into every vector selector of `expr`: `rate(x[5m]) / y{a="b"}` becomes
/// `rate(x{run_id="r"}[5m]) / y{run_id="r",a="b"}`. Function names, aggregation label lists
/// (`by (job)`), strings, numbers and durations are left alone. A selector that already matches
/// the same label is an error: the run matcher must not be overridden.
pub fn scope(expr: &str, matcher: &Matcher) -> Result<String> {
    let m = matcher.render();
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() + 32);
    let mut i = 0;
    // Depth of `by (...)`-style label lists we are inside.
    let mut label_list = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => {
                // A comment, to the end of the line: nothing in it is a selector, and a quote in
                // it opens no string (which would hide what follows it on the next line from the
                // run matcher). Prometheus' lexer: `lexStatements` and `lexInsideBraces` go to
                // `lexLineComment` at `#`, which runs to `isEndOfLine` ('\r' or '\n')
                // (prometheus/prometheus promql/parser/lex.go; promql/lex.go before v2.17).
                let end = comment_end(expr, i);
                out.push_str(&expr[i..end]);
                i = end;
            }
            b'"' | b'\'' | b'`' => {
                let end = string_end(expr, i)?;
                out.push_str(&expr[i..end]);
                i = end;
            }
            b'[' => {
                let end = expr[i..]
                    .find(']')
                    .map(|n| i + n + 1)
                    .ok_or_else(|| anyhow!("unclosed `[` in {expr:?}"))?;
                out.push_str(&expr[i..end]);
                i = end;
            }
            b'{' => {
                // A selector with no metric name: `{job="x"}`.
                let end = brace_end(expr, i)?;
                out.push_str(&inject(&expr[i..end], &m, &matcher.label)?);
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let next = b.get(j).copied();
                if label_list {
                    out.push_str(word);
                } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    out.push_str(word);
                    if matches!(word, "by" | "without" | "on" | "ignoring" | "group_left" | "group_right")
                        && next == Some(b'(')
                    {
                        label_list = true;
                    }
                } else if next == Some(b'(') || AGGREGATIONS.contains(&word) {
                    out.push_str(word); // a function or an aggregation
                } else if next == Some(b'{') {
                    let end = brace_end(expr, j)?;
                    out.push_str(word);
                    out.push_str(&inject(&expr[j..end], &m, &matcher.label)?);
                    i = end;
                } else {
                    out.push_str(word);
                    out.push('{');
                    out.push_str(&m);
                    out.push('}');
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // Numbers and durations (`5m`, `1.5e3`).
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                    i += 1;
                }
                out.push_str(&expr[start..i]);
            }
            b')' if label_list => {
                label_list = false;
                out.push(')');
                i += 1;
            }
            _ => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn string_end(expr: &str, start: usize) -> Result<usize> {
    let b = expr.as_bytes();
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && q != b'`' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return Ok(i + 1);
        }
        i += 1;
    }
    bail!("unterminated string in {expr:?}")
}

/// Where the comment at `start` (a `#`) ends: at the end of its line, the newline excluded.
fn comment_end(expr: &str, start: usize) -> usize {
    expr[start..].find(['\n', '\r']).map_or(expr.len(), |n| start + n)
}

fn brace_end(expr: &str, start: usize) -> Result<usize> {
    let b = expr.as_bytes();
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'#' => i = comment_end(expr, i),
            b'"' | b'\'' | b'`' => i = string_end(expr, i)?,
            b'}' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    bail!("unclosed `{{` in {expr:?}")
}

/// `{a="b"}` → `{run_id="r",a="b"}`.
fn inject(block: &str, matcher: &str, label: &str) -> Result<String> {
    let inner = block[1..block.len() - 1].trim();
    // Refuse a selector that matches the run label itself.
    let mut i = 0;
    let b = inner.as_bytes();
    while i < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            i = string_end(inner, i)?;
            continue;
        }
        // Bytes: `i` may sit inside a multi-byte character; the label is ASCII.
        if b[i..].starts_with(label.as_bytes()) {
            let before_ok = i == 0 || matches!(b[i - 1], b',' | b' ' | b'{');
            let rest = inner[i + label.len()..].trim_start();
            if before_ok && (rest.starts_with('=') || rest.starts_with("!=")) {
                bail!("the expression already matches `{label}`: the run matcher is added by the builder, not by hand");
            }
        }
        i += 1;
    }
    Ok(if inner.is_empty() { format!("{{{matcher}}}") } else { format!("{{{matcher},{inner}}}") })
}

// ---------------------------------------------------------------------------------------------
// The client.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Series labels.
pub type Labels = BTreeMap<String, String>;

/// A query result: `vector` and `scalar` as samples; `matrix` as series of (time, value).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Vector(Vec<Sample>),
    Matrix(Vec<(Labels, Vec<(f64, f64)>)>),
    Scalar(f64),
    String(String),
}

impl Data {
    pub fn samples(&self) -> Vec<Sample> {
        match self {
            Data::Vector(v) => v.clone(),
            Data::Scalar(x) => vec![Sample { labels: BTreeMap::new(), value: *x }],
            Data::Matrix(m) => m
                .iter()
                .filter_map(|(l, vals)| vals.last().map(|(_, v)| Sample { labels: l.clone(), value: *v }))
                .collect(),
            Data::String(_) => Vec::new(),
        }
    }
}

/// What went wrong with a query.
#[derive(Debug)]
pub enum QueryError {
    /// 400 (bad_data: a PromQL parse error, too many points) with Prometheus's message.
    BadQuery(String),
    /// 422 (execution).
    Execution(String),
    /// 503: not ready yet, or a timeout.
    Unavailable(String),
    Other(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::BadQuery(m) => write!(f, "Prometheus rejected the query: {m}"),
            QueryError::Execution(m) => write!(f, "Prometheus could not execute the query: {m}"),
            QueryError::Unavailable(m) => write!(f, "Prometheus is unavailable: {m}"),
            QueryError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for QueryError {}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Client { base: base.trim_end_matches('/').to_string(), agent: config.into() }
    }

    fn post(&self, path: &str, form: &[(&str, String)]) -> Result<Data, QueryError> {
        let body: Vec<String> =
            form.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect();
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.join("&"))
            .map_err(|e| QueryError::Unavailable(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = envelope["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        match status {
            200 if envelope["status"] == "success" => {
                parse_data(&envelope["data"]).map_err(QueryError::Other)
            }
            400 => Err(QueryError::BadQuery(message)),
            422 => Err(QueryError::Execution(message)),
            503 => Err(QueryError::Unavailable(message)),
            _ => Err(QueryError::Other(format!("{url} answered {status}: {message}"))),
        }
    }

    /// An instant query, retrying 503 (not ready, timeouts) until `deadline` from now.
    pub fn query(&self, expr: &str, deadline: Duration) -> Result<Data, QueryError> {
        self.retrying(deadline, || self.post("/api/v1/query", &[("query", expr.to_string())]))
    }

    /// A range query over the last `range`, one point per `step`.
    pub fn query_range(
        &self,
        expr: &str,
        range: Duration,
        step: Duration,
        deadline: Duration,
    ) -> Result<Data, QueryError> {
        // Sub-second precision: a series first scraped within the last second is in range.
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let start = end - range.as_secs_f64();
        self.retrying(deadline, || {
            self.post(
                "/api/v1/query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", format!("{start}")),
                    ("end", format!("{end}")),
                    ("step", format!("{}", step.as_secs_f64())),
                ],
            )
        })
    }

    fn retrying(
        &self,
        deadline: Duration,
        call: impl Fn() -> Result<Data, QueryError>,
    ) -> Result<Data, QueryError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match call() {
                Err(QueryError::Unavailable(m))
                    if start.elapsed() + delay < deadline && !crate::exec::cancelled() =>
                {
                    let _ = m;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Polls `expr` until `predicate` holds or `deadline` passes; the error says what was seen.
    pub fn wait_for(
        &self,
        expr: &str,
        what: &str,
        predicate: impl Fn(&Data) -> bool,
        deadline: Duration,
    ) -> Result<Data> {
        let start = Instant::now();
        let mut last: String;
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            match self.query(expr, left) {
                Ok(data) if predicate(&data) => return Ok(data),
                Ok(data) => last = format!("{:?}", data.samples()),
                Err(e @ QueryError::BadQuery(_)) | Err(e @ QueryError::Execution(_)) => {
                    return Err(anyhow!(e))
                }
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() >= deadline || crate::exec::cancelled() {
                bail!("`{expr}` did not become {what} within {:.0}s; last: {last}", deadline.as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn parse_data(data: &Value) -> std::result::Result<Data, String> {
    let number = |v: &Value| -> f64 { v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN) };
    let labels = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default()
    };
    match data["resultType"].as_str() {
        Some("vector") => Ok(Data::Vector(
            data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Sample { labels: labels(&s["metric"]), value: number(&s["value"][1]) })
                .collect(),
        )),
        Some("matrix") => Ok(Data::Matrix(
            data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let values = s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| (p[0].as_f64().unwrap_or(0.0), number(&p[1])))
                        .collect();
                    (labels(&s["metric"]), values)
                })
                .collect(),
        )),
        Some("scalar") => Ok(Data::Scalar(number(&data["result"][1]))),
        Some("string") => Ok(Data::String(data["result"][1].as_str().unwrap_or("").to_string())),
        other => Err(format!("unexpected resultType {other:?}")),
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A per-run ServiceMonitor: selects the run's Services by the run label and copies the pod's
/// run label onto every series as `run_id`.
pub(crate) fn service_monitor(ctx: &crate::e2e::context::RunContext, port: &str) -> Value {
    let sanitized: String =
        ctx.label_key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": { "name": ctx.scoped_name("e2e"), "namespace": ctx.test_namespace, "labels": ctx.labels() },
        "spec": {
            "selector": { "matchLabels": { ctx.label_key.clone(): ctx.run_id } },
            "namespaceSelector": { "matchNames": [ctx.test_namespace] },
            "endpoints": [{
                "port": port,
                "interval": "5s",
                "relabelings": [{
                    "sourceLabels": [format!("__meta_kubernetes_pod_label_{sanitized}")],
                    "targetLabel": RUN_LABEL,
                }],
            }],
        },
    })
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask metrics query`.
// ---------------------------------------------------------------------------------------------

/// Query Prometheus with every selector filtered by a run.
///
/// The run matcher (run_id="<id>") is injected into every vector selector of EXPR, so the query
/// can only see that run's series. Prometheus is $E2E_PROMETHEUS_URL (http://localhost:19090).
///
/// Examples:
///   cargo xtask metrics query 'sum(rate(e2e_demo_requests_total[1m]))' --run-id k3x9q2m1ab
///   cargo xtask metrics query e2e_demo_up --run-id k3x9q2m1ab --show
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run an instant query filtered by the run
    Query {
        /// The PromQL expression (without the run matcher)
        expr: String,
        #[arg(long)]
        run_id: String,
        /// Print the scoped expression before the result
        #[arg(long)]
        show: bool,
        /// Give up after this long (Prometheus not ready yet is retried)
        #[arg(long, default_value = "30s", value_parser = crate::duration::parse_duration)]
        timeout: Duration,
    },
}

impl Args {
    pub fn run(self, sh: &xshell::Shell) -> Result<i32> {
        let Command::Query { expr, run_id, show, timeout } = self.command;
        // A run id or an expression that is wrong is the caller's to fix: exit 2, as `check`.
        let usage = |e: anyhow::Error| crate::usage::usage(format!("{e:#}"));
        let scoped = scope(&expr, &Matcher::run(&run_id).map_err(usage)?).map_err(usage)?;
        if show {
            println!("{scoped}");
        }
        let url = sh
            .var("E2E_PROMETHEUS_URL")
            .unwrap_or_else(|_| crate::e2e::context::DEFAULT_PROMETHEUS_URL.into());
        let data = Client::new(&url).query(&scoped, timeout).map_err(|e| anyhow!("{e}"))?;
        let samples = data.samples();
        if samples.is_empty() {
            println!("(no series for run {run_id})");
        }
        for s in samples {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            println!("{{{}}} {}", labels.join(", "), s.value);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Matcher {
        Matcher::run("r1").unwrap()
    }

    #[test]
    fn every_selector_gets_the_run_matcher() {
        let cases = [
            ("up", r#"up{run_id="r1"}"#),
            (r#"up{job="x"}"#, r#"up{run_id="r1",job="x"}"#),
            ("rate(http_total[5m])", r#"rate(http_total{run_id="r1"}[5m])"#),
            (
                "sum by (job) (rate(a[1m])) / on(job) group_left count(b)",
                r#"sum by (job) (rate(a{run_id="r1"}[1m])) / on(job) group_left count(b{run_id="r1"})"#,
            ),
            (r#"{__name__=~"e2e_.*"}"#, r#"{run_id="r1",__name__=~"e2e_.*"}"#),
            (r#"count(up{msg="a}b"}) > 0.5"#, r#"count(up{run_id="r1",msg="a}b"}) > 0.5"#),
            ("x offset 5m and y", r#"x{run_id="r1"} offset 5m and y{run_id="r1"}"#),
        ];
        for (expr, want) in cases {
            assert_eq!(scope(expr, &run()).unwrap(), want, "{expr}");
        }
    }

    #[test]
    fn a_comment_hides_no_selector_from_the_run_matcher() {
        // A quote in a comment opened a "string" that swallowed the next line's `count(y)`.
        assert_eq!(
            scope("count(x) # \"\n + count(y) # \"", &run()).unwrap(),
            "count(x{run_id=\"r1\"}) # \"\n + count(y{run_id=\"r1\"}) # \""
        );
        assert_eq!(scope("up # a{b=\"c\"}\r\n", &run()).unwrap(), "up{run_id=\"r1\"} # a{b=\"c\"}\r\n");
        assert_eq!(
            scope("up{job=\"a\", # }\n x=\"y\"}", &run()).unwrap(),
            "up{run_id=\"r1\",job=\"a\", # }\n x=\"y\"}"
        );
    }

    #[test]
    fn the_run_label_cannot_be_overridden_by_hand() {
        assert!(scope(r#"up{run_id="other"}"#, &run()).is_err());
        assert!(scope(r#"up{ run_id != "x"}"#, &run()).is_err());
    }

    #[test]
    fn values_are_escaped() {
        let m = Matcher::eq("role", "a\"b\\c").unwrap();
        assert_eq!(m.render(), r#"role="a\"b\\c""#);
        assert!(Matcher::eq("bad-name", "x").is_err());
        assert!(Matcher::run("x\"} or vector(1) #").is_err(), "injection through the run id is refused");
    }
}
