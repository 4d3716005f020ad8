//! What both lints share: the config file, the walk, findings, suppressions, the baseline and
//! the output formats (human, json, sarif, github). The contract is in DESIGN.md ("Lint output
//! contract"): exit 0 clean, 1 findings (or a file we could not understand), 2 usage or I/O error.

// The rule descriptions and defaults name what the rules forbid.
// xtask-lint: allow-file(broad-process-kill, hardcoded-namespace, global-git-config)

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::paths;

/// Rule ids, as DESIGN.md names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    DnfUpdate,
    HardcodedNamespace,
    FixedTmpPath,
    GlobalGitConfig,
    BroadProcessKill,
    GlobalDelete,
    FixedLocalPort,
    ForbiddenPattern,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::DnfUpdate,
        Rule::HardcodedNamespace,
        Rule::FixedTmpPath,
        Rule::GlobalGitConfig,
        Rule::BroadProcessKill,
        Rule::GlobalDelete,
        Rule::FixedLocalPort,
        Rule::ForbiddenPattern,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Rule::DnfUpdate => "dnf-update",
            Rule::HardcodedNamespace => "hardcoded-namespace",
            Rule::FixedTmpPath => "fixed-tmp-path",
            Rule::GlobalGitConfig => "global-git-config",
            Rule::BroadProcessKill => "broad-process-kill",
            Rule::GlobalDelete => "global-delete",
            Rule::FixedLocalPort => "fixed-local-port",
            Rule::ForbiddenPattern => "forbidden-pattern",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    pub fn description(self) -> &'static str {
        match self {
            Rule::DnfUpdate => {
                "Dockerfile package-manager update policy (forbid or require a full-system update)"
            }
            Rule::HardcodedNamespace => "a fixed namespace used as a value: parallel runs collide in it",
            Rule::FixedTmpPath => "a fixed file under /tmp: parallel runs overwrite each other's files",
            Rule::GlobalGitConfig => "git config --global/--system changes every user's and run's git",
            Rule::BroadProcessKill => "pkill/killall stop other users' and other runs' processes",
            Rule::GlobalDelete => "kubectl delete --all/-A deletes other runs' objects",
            Rule::FixedLocalPort => {
                "a fixed localhost port that is not shared infra: parallel runs collide on it"
            }
            Rule::ForbiddenPattern => "a project-specific forbidden pattern",
        }
    }

    /// How to fix it, shown under each human finding.
    pub fn help(self) -> &'static str {
        match self {
            Rule::DnfUpdate => "see [dockerfile] dnf-update in the lint config; `--fix` removes forbidden updates",
            Rule::HardcodedNamespace => "use the run's namespace ($E2E_TEST_NAMESPACE, `cargo xtask run-context`)",
            Rule::FixedTmpPath => "put the file under the run's state dir, or include the run id ($E2E_RUN_ID) in the name",
            Rule::GlobalGitConfig => "scope credentials to one command (GIT_CONFIG_COUNT/KEY/VALUE env) or use `git -C repo config`",
            Rule::BroadProcessKill => "kill the pid you started (`kill $PID`), or its process group",
            Rule::GlobalDelete => "delete by the run label (-l configbutler.ai/e2e-run-id=<id>) or in the run's namespace",
            Rule::FixedLocalPort => "pick a free port at run time, or add the port to [hardcoded] shared-ports if it is shared infra",
            Rule::ForbiddenPattern => "see the message; the pattern is in the lint config",
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

// ---------------------------------------------------------------------------------------------
// Config.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub hardcoded: HardcodedConfig,
    #[serde(default)]
    pub dockerfile: DockerfileConfig,
    /// Where the config was read from (excludes and scope are relative to its repository).
    #[serde(skip)]
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HardcodedConfig {
    #[serde(default = "default_namespaces")]
    pub namespaces: Vec<String>,
    #[serde(default = "default_shared_ports")]
    pub shared_ports: Vec<u16>,
    #[serde(default)]
    pub forbidden: Vec<Forbidden>,
    /// Paths (relative to the repository root) scanned when no PATH is given.
    #[serde(default = "default_scope")]
    pub scope: Vec<String>,
    /// Files with these extensions anywhere in the repository are in scope too.
    #[serde(default = "default_scope_extensions")]
    pub scope_extensions: Vec<String>,
    /// gitignore-style patterns (relative to the repository root) never scanned by the walk.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for HardcodedConfig {
    fn default() -> Self {
        HardcodedConfig {
            namespaces: default_namespaces(),
            shared_ports: default_shared_ports(),
            forbidden: Vec::new(),
            scope: default_scope(),
            scope_extensions: default_scope_extensions(),
            exclude: Vec::new(),
        }
    }
}

fn default_namespaces() -> Vec<String> {
    vec!["sut".into()]
}
fn default_shared_ports() -> Vec<u16> {
    vec![13000, 19090]
}
fn default_scope() -> Vec<String> {
    ["test", "hack", "xtask", "Makefile"].map(String::from).to_vec()
}
fn default_scope_extensions() -> Vec<String> {
    vec!["sh".into(), "bash".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forbidden {
    pub pattern: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpdatePolicy {
    #[default]
    Forbid,
    Require,
    Off,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetedPolicy {
    #[default]
    Allow,
    Forbid,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DockerfileConfig {
    #[serde(default)]
    pub dnf_update: UpdatePolicy,
    #[serde(default)]
    pub dnf_update_targeted: TargetedPolicy,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// The project's own config.
pub fn project_config_path() -> PathBuf {
    paths::project_root().join("hack/lint.toml")
}

impl Config {
    /// `--config FILE`, else the project's `hack/lint.toml`, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(project_config_path()).filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Config { root: paths::project_root(), ..Config::default() });
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading lint config {}", path.display()))?;
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("invalid lint config {}", path.display()))?;
        config.root = paths::repository_of(&path);
        for f in &config.hardcoded.forbidden {
            regex::Regex::new(&f.pattern).with_context(|| {
                format!(
                    "invalid lint config {}: [[hardcoded.forbidden]] pattern `{}`",
                    path.display(),
                    f.pattern
                )
            })?;
        }
        Ok(config)
    }
}

// ---------------------------------------------------------------------------------------------
// Findings and the report.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub severity: &'static str,
    pub message: String,
    #[serde(skip)]
    pub source_line: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParseErrorEntry {
    pub path: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files_scanned: usize,
    pub findings: Vec<Finding>,
    pub parse_errors: Vec<ParseErrorEntry>,
    pub skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<String>,
}

impl Report {
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

/// A file's text with line starts, for offsets → line/column (1-based, columns in characters).
pub struct Source<'a> {
    pub text: &'a str,
    line_starts: Vec<usize>,
    /// Rules allowed in the whole file by `xtask-lint: allow-file(...)` in its first 20 lines.
    file_allowed: Vec<String>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let head_end = line_starts.get(20).copied().unwrap_or(text.len());
        let file_allowed = allow_list(&text[..head_end], "xtask-lint: allow-file(");
        Source { text, line_starts, file_allowed }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start) + 1;
        (line + 1, col)
    }

    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(line).map(|e| e - 1).unwrap_or(self.text.len());
        self.text.get(start..end).unwrap_or("").trim_end_matches('\r')
    }

    /// Rules allowed on a line by `xtask-lint: allow(rule, ...)` on it or the line above.
    pub fn allowed(&self, line: usize, rule: Rule) -> bool {
        let matches = |r: &String| r == rule.id() || r == "all";
        self.file_allowed.iter().any(matches)
            || [line, line.saturating_sub(1)]
                .iter()
                .filter(|&&l| l >= 1)
                .any(|&l| allow_list(self.line_text(l), "xtask-lint: allow(").iter().any(matches))
    }

    pub fn finding(&self, rule: Rule, path: &str, offset: usize, message: String) -> Finding {
        let (line, column) = self.line_col(offset);
        Finding {
            rule,
            path: path.to_string(),
            line,
            column,
            severity: "error",
            message,
            source_line: self.line_text(line).to_string(),
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

/// Lints `files` in parallel on rayon's pool: each is read (binary and non-UTF-8 files are
/// reported as skipped), handed to `lint` with its display path, counted, and the reports merged.
pub fn scan_files(
    files: &[PathBuf],
    cwd: &Path,
    lint: impl Fn(&Path, String, String) -> Result<Report> + Sync,
) -> Result<Report> {
    use rayon::prelude::*;
    let results: Vec<Result<Report>> = files
        .par_iter()
        .map(|file| {
            let display = display_path(file, cwd);
            match read_text(file)? {
                Ok(text) => {
                    let mut report = lint(file, display, text)?;
                    report.files_scanned = 1;
                    Ok(report)
                }
                Err(reason) => {
                    Ok(Report { skipped: vec![Skipped { path: display, reason }], ..Report::default() })
                }
            }
        })
        .collect();
    let mut report = Report::default();
    for r in results {
        report.merge(r?);
    }
    Ok(report)
}

/// Reads a file as text; `Err(reason)` for binary or non-UTF-8 files (reported as skipped).
pub fn read_text(path: &Path) -> Result<std::result::Result<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Ok(Err("binary file".into()));
    }
    Ok(String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

// ---------------------------------------------------------------------------------------------
// Files: the walk and how paths are shown.
// ---------------------------------------------------------------------------------------------

/// Path as findings show it: relative to the current directory when under it.
pub fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// Resolves the PATH arguments against the current directory; a missing path is a usage error.
pub fn resolve_paths(given: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>> {
    given
        .iter()
        .map(|p| {
            let abs = if p.is_absolute() { p.clone() } else { cwd.join(p) };
            if !abs.exists() {
                bail!("{}: no such file or directory", p.display());
            }
            Ok(normalize(&abs))
        })
        .collect()
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// True when `path` matches an exclude (paths outside the matcher's root never do).
pub fn is_excluded(excluded: &ignore::gitignore::Gitignore, path: &Path, is_dir: bool) -> bool {
    !excluded.is_empty()
        && path.starts_with(excluded.path())
        && excluded.matched_path_or_any_parents(path, is_dir).is_ignore()
}

/// gitignore-style excludes, relative to `root`.
pub fn exclude_matcher(root: &Path, patterns: &[String]) -> Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for p in patterns {
        builder.add_line(None, p).with_context(|| format!("invalid exclude pattern `{p}`"))?;
    }
    builder.build().context("building the exclude patterns")
}

/// Every file under `roots` that `wanted` accepts, honouring .gitignore (also outside a git
/// repository) and `excluded`, walked in parallel. Files named directly are always included.
pub fn walk(
    roots: &[PathBuf],
    excluded: &ignore::gitignore::Gitignore,
    wanted: &(dyn Fn(&Path) -> bool + Sync),
) -> Vec<PathBuf> {
    walk_classify(roots, excluded, &|p| wanted(p).then_some(())).into_iter().map(|(p, ())| p).collect()
}

/// A walker thread's finds, handed over when the thread's visitor is dropped.
struct Batch<'a, T> {
    local: Vec<T>,
    found: &'a Mutex<Vec<T>>,
}

impl<T> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        if let Ok(mut found) = self.found.lock() {
            found.append(&mut self.local);
        }
    }
}

/// Like [`walk`], keeping what `classify` says of each file (so it is asked once per file).
/// The order is unspecified: reports are sorted at the end.
pub fn walk_classify<T: Send>(
    roots: &[PathBuf],
    excluded: &ignore::gitignore::Gitignore,
    classify: &(dyn Fn(&Path) -> Option<T> + Sync),
) -> Vec<(PathBuf, T)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for root in roots {
        if root.is_file() {
            if let Some(t) = classify(root) {
                files.push((root.clone(), t));
            }
        } else {
            dirs.push(root.clone());
        }
    }
    if let Some((first, rest)) = dirs.split_first() {
        let mut builder = ignore::WalkBuilder::new(first);
        for dir in rest {
            builder.add(dir);
        }
        builder.hidden(false).require_git(false).git_global(false).filter_entry(|e| e.file_name() != ".git");
        builder.threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8));
        let found = Mutex::new(Vec::new());
        let no_excludes = excluded.is_empty();
        builder.build_parallel().run(|| {
            let mut batch = Batch { local: Vec::new(), found: &found };
            Box::new(move |entry| {
                let Ok(entry) = entry else { return ignore::WalkState::Continue };
                let path = entry.path();
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                if !no_excludes && is_excluded(excluded, path, is_dir) {
                    return if is_dir { ignore::WalkState::Skip } else { ignore::WalkState::Continue };
                }
                if !is_dir {
                    if let Some(t) = classify(path) {
                        batch.local.push((entry.into_path(), t));
                    }
                }
                ignore::WalkState::Continue
            })
        });
        files.extend(found.into_inner().unwrap_or_default());
    }
    if roots.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        files.retain(|(p, _)| seen.insert(p.clone()));
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Baseline.
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, PartialEq, Eq, Hash, Clone, Debug)]
struct BaselineEntry {
    rule: String,
    path: String,
    /// The finding's source line, trimmed: survives line-number shifts.
    line_text: String,
}

/// Writes the current findings as the accepted baseline.
pub fn write_baseline(path: &Path, report: &Report) -> Result<()> {
    let entries: Vec<BaselineEntry> = report.findings.iter().map(entry).collect();
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "findings": entries }))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing baseline {}", path.display()))
}

/// Drops findings the baseline accepts (each baseline entry accepts one finding).
pub fn apply_baseline(path: &Path, report: &mut Report) -> Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading baseline {}", path.display()))?;
    #[derive(Deserialize)]
    struct File {
        findings: Vec<BaselineEntry>,
    }
    let file: File =
        serde_json::from_str(&text).with_context(|| format!("invalid baseline {}", path.display()))?;
    let mut budget: HashMap<BaselineEntry, usize> = HashMap::new();
    for e in file.findings {
        *budget.entry(e).or_default() += 1;
    }
    let before = report.findings.len();
    report.findings.retain(|f| match budget.get_mut(&entry(f)) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    });
    Ok(before - report.findings.len())
}

fn entry(f: &Finding) -> BaselineEntry {
    BaselineEntry {
        rule: f.rule.id().into(),
        path: f.path.clone(),
        line_text: f.source_line.trim().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

pub fn render(report: &Report, format: Format, tool: &str) -> String {
    match format {
        Format::Human => human(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif(report, tool)).unwrap_or_default() + "\n",
        Format::Github => github(report),
    }
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let _ = writeln!(out, "{}:{}:{} {} {}", f.path, f.line, f.column, f.rule.id(), f.message);
        let _ = writeln!(out, "    {}", f.source_line.trim_end());
        let caret_pad: String =
            f.source_line.chars().take(f.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = writeln!(out, "    {caret_pad}^");
        let _ = writeln!(out, "    help: {}\n", f.rule.help());
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

fn github(report: &Report) -> String {
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
            prop(f.rule.id()),
            esc(&format!("{} ({})", f.message, f.rule.help()))
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

fn sarif(report: &Report, tool: &str) -> serde_json::Value {
    let rules: Vec<_> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "shortDescription": { "text": r.description() },
                "help": { "text": r.help() },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let mut results: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule.id(),
                "ruleIndex": Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": "error",
                "message": { "text": f.message },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": f.path.replace('\\', "/") },
                    "region": { "startLine": f.line, "startColumn": f.column },
                }}],
            })
        })
        .collect();
    let notifications: Vec<_> = report
        .parse_errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": { "text": format!("cannot parse: {}", e.message) },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": e.path },
                    "region": { "startLine": e.line },
                }}],
            })
        })
        .collect();
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

// ---------------------------------------------------------------------------------------------
// The arguments both commands take.
// ---------------------------------------------------------------------------------------------

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Lint config (TOML) [default: hack/lint.toml of this repository]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Accept the findings recorded in this file; fail only on new ones
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record the current findings into the --baseline file and exit 0
    #[arg(long, requires = "baseline")]
    pub write_baseline: bool,
    /// Files or directories to lint (resolved against the current directory)
    pub paths: Vec<PathBuf>,
}

impl CommonArgs {
    /// Baseline handling, output, exit code: the end every lint command shares.
    pub fn finish(&self, mut report: Report, tool: &str) -> Result<i32> {
        report.sort();
        if let Some(baseline) = &self.baseline {
            if self.write_baseline {
                write_baseline(baseline, &report)?;
                eprintln!("wrote {} finding(s) to {}", report.findings.len(), baseline.display());
                return Ok(0);
            }
            apply_baseline(baseline, &mut report)?;
        }
        print!("{}", render(&report, self.format, tool));
        Ok(report.exit_code())
    }
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
    fn suppression_on_the_line_or_above() {
        let src = Source::new("a # xtask-lint: allow(fixed-tmp-path, dnf-update)\nb\nc\n");
        assert!(src.allowed(1, Rule::DnfUpdate));
        assert!(src.allowed(2, Rule::FixedTmpPath));
        assert!(!src.allowed(2, Rule::GlobalDelete));
        assert!(!src.allowed(3, Rule::DnfUpdate));
    }
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask lint`: both lints, as the project gates them.
// ---------------------------------------------------------------------------------------------

/// Run both lints with the project's config: what CI and the pre-commit hook run.
///
/// Without PATHs: every Dockerfile in the repository and the lint-hardcoded scope of
/// hack/lint.toml. With PATHs (as pre-commit passes them) or --staged (the files staged in git),
/// only those of them that the lints cover. Exit status: 0 clean, 1 findings, 2 usage or I/O error.
///
/// Examples:
///   cargo xtask lint
///   cargo xtask lint --staged
///   cargo xtask lint --format github
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Lint config (TOML) [default: hack/lint.toml of this repository]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Lint the files staged in git (the pre-commit hook)
    #[arg(long, conflicts_with = "paths")]
    pub staged: bool,
    /// Only these files (filtered to what the lints cover)
    pub paths: Vec<PathBuf>,
}

impl Args {
    pub fn run(self, sh: &xshell::Shell) -> Result<i32> {
        let config = Config::load(self.config.as_deref())?;
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let selected: Option<Vec<PathBuf>> = if self.staged {
            let _root = sh.push_dir(&config.root);
            let out =
                crate::exec::cmd(xshell::cmd!(sh, "git diff --cached --name-only --diff-filter=ACMR -z"))
                    .log(paths::logs_dir().join("lint.log"))
                    .run()
                    .context("listing the staged files")?;
            Some(out.stdout.split('\0').filter(|p| !p.is_empty()).map(|p| config.root.join(p)).collect())
        } else if !self.paths.is_empty() {
            Some(resolve_paths(&self.paths, &cwd)?)
        } else {
            None
        };
        let (dockerfiles, hardcoded): (Vec<PathBuf>, Vec<PathBuf>) = match selected {
            None => {
                // One walk of the repository for both lints, each file classified once.
                let docker_excluded = exclude_matcher(&config.root, &config.dockerfile.exclude)?;
                let scope = crate::lint_hardcoded::Scope::new(&config)?;
                let none = exclude_matcher(&config.root, &[])?;
                let all = walk_classify(std::slice::from_ref(&config.root), &none, &|p| {
                    let docker =
                        crate::lint_dockerfiles::is_dockerfile(p) && !is_excluded(&docker_excluded, p, false);
                    let hard = scope.contains(p);
                    (docker || hard).then_some((docker, hard))
                });
                let mut dockerfiles = Vec::new();
                let mut hardcoded = Vec::new();
                for (path, (docker, hard)) in all {
                    if docker {
                        dockerfiles.push(path.clone());
                    }
                    if hard {
                        hardcoded.push(path);
                    }
                }
                (dockerfiles, hardcoded)
            }
            Some(files) => {
                let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
                let excluded = exclude_matcher(&config.root, &config.dockerfile.exclude)?;
                let dockerfiles = files
                    .iter()
                    .filter(|f| crate::lint_dockerfiles::is_dockerfile(f))
                    .filter(|f| !is_excluded(&excluded, f, false))
                    .cloned()
                    .collect();
                let scope = crate::lint_hardcoded::Scope::new(&config)?;
                let hardcoded = files.iter().filter(|f| scope.contains(f)).cloned().collect();
                (dockerfiles, hardcoded)
            }
        };
        let mut report = crate::lint_dockerfiles::lint_files(&dockerfiles, &config.dockerfile, &cwd, false)?;
        report.merge(crate::lint_hardcoded::lint_files(&hardcoded, &config.hardcoded, &cwd)?);
        report.sort();
        print!("{}", render(&report, self.format, "xtask lint"));
        Ok(report.exit_code())
    }
}
