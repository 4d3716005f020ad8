//! `cargo xtask lint-hardcoded`: hidden global assumptions that break parallel runs — fixed
//! namespaces, fixed /tmp files, global git config, broad kills, cluster-wide deletes, fixed local
//! ports, and project-specific patterns.
//!
//! Each language is read for what it is: comments never count; in Go and Rust only string
//! literals carry values; shell and Makefile recipes are split into commands (so `echo "pkill"`
//! is a message, not a kill); YAML values are scalars; other text is read line by line.
// The rule tables and tests below name the very things they forbid.
// xtask-lint: allow-file(all)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use regex::Regex;

use serde_json::Value;

use super::literals::Literals;
use super::parse::shell::{self, program_index};
use super::report::{Finding, ParseErrorEntry, Report, Rule, Source};
use super::value::{FromValue, Table};
use super::walk;

/// `[hardcoded]` in the lint config. Nothing here is specific to one project: the namespaces a
/// project must not hardcode and its shared-infra ports come from its config (this repository's
/// are in `hack/lint.toml`).
#[derive(Debug, Clone)]
pub struct HardcodedConfig {
    /// Namespaces a test must never hardcode (for example `sut`).
    pub namespaces: Vec<String>,
    /// localhost ports that are shared infra (port-forwards every run uses): allowed.
    pub shared_ports: Vec<u16>,
    /// Project-specific patterns (regex) with their message.
    pub forbidden: Vec<Forbidden>,
    /// Paths (relative to the repository root) scanned when no PATH is given.
    pub scope: Vec<String>,
    /// Files with these extensions anywhere in the repository are in scope too.
    pub scope_extensions: Vec<String>,
    /// gitignore-style patterns (relative to the repository root) never scanned by the walk.
    pub exclude: Vec<String>,
}

impl Default for HardcodedConfig {
    fn default() -> Self {
        HardcodedConfig {
            namespaces: Vec::new(),
            shared_ports: Vec::new(),
            forbidden: Vec::new(),
            scope: ["test", "hack", "Makefile", ".github/workflows"].map(String::from).to_vec(),
            scope_extensions: vec!["sh".into(), "bash".into(), "bats".into(), "mk".into()],
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Forbidden {
    pub pattern: String,
    pub message: String,
}

impl FromValue for HardcodedConfig {
    /// Each key absent keeps its default.
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let d = HardcodedConfig::default();
        let config = HardcodedConfig {
            namespaces: t.or("namespaces", d.namespaces)?,
            shared_ports: t.or("shared-ports", d.shared_ports)?,
            forbidden: t.or("forbidden", d.forbidden)?,
            scope: t.or("scope", d.scope)?,
            scope_extensions: t.or("scope-extensions", d.scope_extensions)?,
            exclude: t.or("exclude", d.exclude)?,
        };
        t.done()?;
        Ok(config)
    }
}

impl FromValue for Forbidden {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let f = Forbidden { pattern: t.req("pattern")?, message: t.req("message")? };
        t.done()?;
        Ok(f)
    }
}

pub const HARDCODED_NAMESPACE: Rule = Rule {
    id: "hardcoded-namespace",
    summary: "a fixed namespace used as a value: parallel runs collide in it",
    help: "take the run's namespace from the environment instead of a fixed name",
};
pub const FIXED_TMP_PATH: Rule = Rule {
    id: "fixed-tmp-path",
    summary: "a fixed file under /tmp: parallel runs overwrite each other's files",
    help: "create it with mktemp, or put it under the run's own state directory",
};
pub const GLOBAL_GIT_CONFIG: Rule = Rule {
    id: "global-git-config",
    summary: "git config --global/--system changes every user's and run's git",
    help: "scope settings to one command (GIT_CONFIG_COUNT/KEY/VALUE env) or use `git -C repo config`",
};
pub const BROAD_PROCESS_KILL: Rule = Rule {
    id: "broad-process-kill",
    summary: "pkill/killall stop other users' and other runs' processes",
    help: "kill the pid you started (`kill $PID`), or its process group",
};
pub const GLOBAL_DELETE: Rule = Rule {
    id: "global-delete",
    summary: "kubectl delete --all/-A deletes other runs' objects",
    help: "delete by a label that names the run (-l <key>=<run id>) or in the run's own namespace",
};
pub const FIXED_LOCAL_PORT: Rule = Rule {
    id: "fixed-local-port",
    summary: "a fixed localhost port that is not shared infra: parallel runs collide on it",
    help: "pick a free port at run time, or add the port to [hardcoded] shared-ports if it is shared infra",
};
pub const FORBIDDEN_PATTERN: Rule = Rule {
    id: "forbidden-pattern",
    summary: "a project-specific forbidden pattern",
    help: "see the message; the pattern is in the lint config's [[hardcoded.forbidden]]",
};

/// This checker's rules.
pub const RULES: &[&Rule] = &[
    &HARDCODED_NAMESPACE,
    &FIXED_TMP_PATH,
    &GLOBAL_GIT_CONFIG,
    &BROAD_PROCESS_KILL,
    &GLOBAL_DELETE,
    &FIXED_LOCAL_PORT,
    &FORBIDDEN_PATTERN,
];

/// The files the config's scope covers under the repository `root`, minus its excludes.
pub fn scope_files(root: &Path, config: &HardcodedConfig) -> Result<Vec<PathBuf>> {
    // One walk of the repository: the scope dirs and the scope extensions anywhere.
    let excluded = walk::exclude_matcher(root, &config.exclude)?;
    let scope = Scope::new(root, config)?;
    Ok(walk::walk(std::slice::from_ref(&root.to_path_buf()), &excluded, &|p| scope.contains(p)))
}

/// The config's scope as a predicate (for one walk of the repository, and for staged files).
pub struct Scope {
    dirs: Vec<PathBuf>,
    extensions: Vec<String>,
    excluded: crate::gitignore::Gitignore,
}

impl Scope {
    /// The scope of `config` in the repository at `root`.
    pub fn new(root: &Path, config: &HardcodedConfig) -> Result<Scope> {
        Ok(Scope {
            dirs: config.scope.iter().map(|s| crate::walk::normalize(&root.join(s))).collect(),
            extensions: config.scope_extensions.clone(),
            excluded: walk::exclude_matcher(root, &config.exclude)?,
        })
    }

    pub fn contains(&self, path: &Path) -> bool {
        if walk::is_excluded(&self.excluded, path, false) {
            return false;
        }
        let ext_ok =
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| self.extensions.iter().any(|x| x == e));
        // Plain byte prefixes: Path::starts_with is generic and slow in the debug build.
        let bytes = path.as_os_str().as_encoded_bytes();
        ext_ok
            || self.dirs.iter().any(|d| {
                let d = d.as_os_str().as_encoded_bytes();
                bytes.starts_with(d)
                    && (bytes.len() == d.len() || bytes[d.len()] == b'/' || d.ends_with(b"/"))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Go,
    Rust,
    Shell,
    /// A bats suite: shell, with `@test "name" {` opening a test body and `run` before a command.
    Bats,
    Make,
    Yaml,
    Text,
    Docs,
}

fn lang(path: &Path, text: &str) -> Lang {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "go" => Lang::Go,
        "rs" => Lang::Rust,
        "sh" | "bash" | "ksh" | "zsh" => Lang::Shell,
        "bats" => Lang::Bats,
        "mk" => Lang::Make,
        "yaml" | "yml" => Lang::Yaml,
        "md" | "markdown" | "rst" | "adoc" | "txt" => Lang::Docs,
        _ if matches!(name, "Makefile" | "makefile" | "GNUmakefile")
            || name.starts_with("Makefile.")
            || name.starts_with("makefile.") =>
        {
            Lang::Make
        }
        _ if path.components().any(|c| c.as_os_str() == "docs") => Lang::Docs,
        _ if text.starts_with("#!") && text.lines().next().is_some_and(|l| l.contains("bats")) => Lang::Bats,
        _ if text.starts_with("#!") && text.lines().next().is_some_and(|l| l.contains("sh")) => Lang::Shell,
        _ => Lang::Text,
    }
}

/// A document (Markdown, text, anything under `docs/`): never read by this lint.
pub fn is_doc(path: &Path) -> bool {
    lang(path, "") == Lang::Docs
}

pub fn lint_files(
    files: &[PathBuf],
    config: &HardcodedConfig,
    cwd: &Path,
    contents: &walk::Contents,
) -> Result<Report> {
    let rules = Rules::new(config)?;
    // Docs are never findings, and a doc is known by its name (`lang` reads the text only for a
    // shebang, after its docs checks): counted, never read (on a real repository they are a third
    // of the bytes in scope).
    let read: Vec<PathBuf> = files.iter().filter(|f| lang(f, "") != Lang::Docs).cloned().collect();
    let docs = files.len() - read.len();
    let mut report = walk::scan_files(&read, cwd, contents, |file, display, text| {
        let lang = lang(file, &text);
        // One prefilter pass; a file nothing could be found in is not parsed at all.
        let file_rules = FileRules::new(&rules, &text);
        if !file_rules.worth_reading() {
            return Ok(Report::default());
        }
        let (findings, parse_errors) = lint_file(&text, &display, lang, &file_rules);
        Ok(Report { findings, parse_errors, ..Report::default() })
    })?;
    report.files_scanned += docs;
    Ok(report)
}

/// The compiled rules.
pub struct Rules {
    namespaces: Vec<String>,
    shared_ports: Vec<u16>,
    forbidden: Vec<(Regex, String)>,
    /// Any of the literals every rule needs: files without one are not parsed at all.
    prefilter: Literals,
    /// What each prefilter literal can feed.
    kinds: Vec<Kind>,
    tmp: Lazy,
    /// `$TMPDIR/name`, `${TMPDIR:-/tmp}/name`: a fixed name in the temp dir.
    tmpdir_var: Lazy,
    /// Go/Rust: a fixed name joined to the temp dir.
    tmp_join: Lazy,
    /// A published port spec somewhere in a file (`-p 8080:80`, `"-p", "8080:80"`).
    publish_hint: Lazy,
    /// Quoted strings on a line of unknown format.
    quoted: Lazy,
    /// A YAML `key:` (or `- key:`) at the start of a line.
    key_value: Lazy,
    run_id: Lazy,
    port: Lazy,
    git_global: Lazy,
    kill: Lazy,
    delete: Lazy,
    ns_flag: Lazy,
    ns_key: Lazy,
}

impl Rules {
    pub fn new(config: &HardcodedConfig) -> Result<Rules> {
        use Kind::*;
        let mut literals: Vec<(String, Kind)> = [
            ("/tmp", Tmp),
            ("TMPDIR", Tmp),
            ("TempDir", Tmp),
            ("temp_dir", Tmp),
            ("port-forward", Host),
            ("localhost:", Host),
            ("127.0.0.1:", Host),
            ("[::1]:", Host),
            // What the command rules need: `git config --global|--system`, `pkill|killall`,
            // `kubectl ... delete` (a Go file's "github.com/..." imports are not commands).
            ("--global", Command),
            ("--system", Command),
            ("pkill", Command),
            ("killall", Command),
            ("kubectl", Kubectl),
            // `$(KUBECTL)` in a Makefile.
            ("KUBECTL", Kubectl),
            ("Kubectl", Kubectl),
            // A published port (`-p 8080:80`, `"-p", "8080:80"`, `--publish=...`).
            ("-p ", Publish),
            ("-p=", Publish),
            ("\"-p\"", Publish),
            ("--publish", Publish),
        ]
        .into_iter()
        .map(|(l, k)| (l.to_string(), k))
        .collect();
        literals
            .extend(config.namespaces.iter().filter(|ns| !ns.is_empty()).map(|ns| (ns.clone(), Namespace)));
        let mut forbidden = Vec::new();
        for f in &config.forbidden {
            let re = Regex::new(&f.pattern)
                .with_context(|| format!("invalid forbidden pattern `{}`", f.pattern))?;
            forbidden.push((re, f.message.clone()));
        }
        let prefilter = Literals::new(&literals.iter().map(|(l, _)| l.as_bytes()).collect::<Vec<_>>());
        Ok(Rules {
            namespaces: config.namespaces.clone(),
            shared_ports: config.shared_ports.clone(),
            forbidden,
            prefilter,
            kinds: literals.into_iter().map(|(_, k)| k).collect(),
            // Word characters are spelled out, ASCII plus every non-ASCII character, instead of
            // `\w`: Unicode's `\w` made these the slowest regexes to compile (9.7 ms for `tmp` alone
            // at opt-level 0, most of a one-file lint's time), and a path is what they look for.
            tmp: Lazy::new(
                r"(?:^|[^0-9A-Za-z_.~/$\-\x{80}-\x{10FFFF}])(/tmp/[0-9A-Za-z_.${}\-\x{80}-\x{10FFFF}])",
            ),
            quoted: Lazy::new(r#""([^"\n]*)"|'([^'\n]*)'"#),
            key_value: Lazy::new(r#"^\s*(?:-\s+)?(?:"[^"]*"|'[^']*'|[^\s:'"][^:]*?)\s*:(?:\s+|$)"#),
            publish_hint: Lazy::new(r"(?:-p|--publish)[^0-9A-Za-z_\n\x{80}-\x{10FFFF}]{0,4}[0-9.]*[0-9]+:"),
            tmpdir_var: Lazy::new(r"\$\{?TMPDIR(?::-[^}]*)?\}?/[0-9A-Za-z_.\-\x{80}-\x{10FFFF}]"),
            tmp_join: Lazy::new(
                r#"(?:(?:filepath|path)\.Join\(\s*(?:os\.TempDir\(\)|"/tmp/?")\s*,\s*"|(?:temp_dir\(\)|(?:Path::new|PathBuf::from)\("/tmp/?"\))\s*\.join\(\s*")([^"]+)""#,
            ),
            run_id: Lazy::new(r"(?i)run_?id"),
            port: Lazy::new(r"(?:(?-u:\b)(?:localhost|127\.0\.0\.1)|\[::1\]):([0-9]{1,5})(?-u:\b)"),
            git_global: Lazy::new(
                r#"\bgit\b["',\s]+(?:-[cC]["',\s]+\S+["',\s]+)*config\b[^;&|\n]*?(--global|--system)\b"#,
            ),
            kill: Lazy::new(r"^\s*(?:\$\(\s*)?(?:(?:sudo|exec)\s+)?(?:/\S*/)?(pkill|killall)\b"),
            delete: Lazy::new(
                r#"(?i:\bkubectl\b)[^;&|\n]*\bdelete\b[^;&|\n]*?(?:^|[\s"',])(--all-namespaces|--all|-A)(?:$|[\s"',=])"#,
            ),
            ns_flag: Lazy::new(r#"(?:^|[\s"'(,\[=])(?:-n|--namespace)(?:[\s"',]+|=)$"#),
            ns_key: Lazy::new(r#"(?i)namespace["']?\s*[:=]\s*\\?["']?$"#),
        })
    }
}

/// What a file holds, found once per file (memchr's optimised search), so the per-piece checks
/// that cannot match are skipped: most of a Go file's hundreds of literals hold no /tmp, no host
/// and no command.
struct Present {
    tmp: bool,
    host: bool,
    command: bool,
    namespace: bool,
}

/// A regex compiled on first use. Compiling all of them unoptimised (the regex crates are not
/// optimised in the debug build) took ~40 ms, the most of a lint of a few files (the pre-commit
/// hook); most runs need few of them.
struct Lazy {
    pattern: &'static str,
    re: std::sync::OnceLock<Regex>,
}

impl Lazy {
    fn new(pattern: &'static str) -> Lazy {
        Lazy { pattern, re: std::sync::OnceLock::new() }
    }
}

impl std::ops::Deref for Lazy {
    type Target = Regex;
    fn deref(&self) -> &Regex {
        // The patterns are constants of this file, all compiled by a unit test.
        self.re.get_or_init(|| Regex::new(self.pattern).expect("a built-in pattern compiles"))
    }
}

/// What a prefilter literal can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tmp,
    Host,
    Publish,
    Command,
    Kubectl,
    Namespace,
}

/// The rules, with what one file holds.
struct FileRules<'a> {
    rules: &'a Rules,
    present: Present,
    /// Where the prefilter's literals occur (sorted starts): a piece, line or command without one
    /// cannot hold a finding and is not examined.
    hits: Vec<usize>,
    /// The last line asked whether it names a run id: (start, end, answer). Pieces are looked
    /// at in order, many on one line, so each line is searched once, not once per piece (a
    /// 64 KB line of commands was quadratic).
    run_id_line: std::cell::Cell<(usize, usize, bool)>,
}

impl<'a> FileRules<'a> {
    /// One pass of the prefilter over the file: where its literals are, and which kinds of rule
    /// they can feed.
    fn new(rules: &'a Rules, text: &str) -> FileRules<'a> {
        let mut hits = Vec::new();
        let mut present = Present { tmp: false, host: false, command: false, namespace: false };
        let (mut kubectl, mut publish) = (false, Vec::new());
        for (at, id) in rules.prefilter.find_all(text.as_bytes()) {
            hits.push(at);
            match rules.kinds.get(id) {
                Some(Kind::Tmp) => present.tmp = true,
                Some(Kind::Host) => present.host = true,
                Some(Kind::Publish) => publish.push(at),
                Some(Kind::Command) => present.command = true,
                Some(Kind::Kubectl) => kubectl = true,
                Some(Kind::Namespace) => present.namespace = true,
                None => {}
            }
        }
        hits.dedup();
        if !present.host {
            // A published port spec is on one line: only the lines of the hints are looked at,
            // each once.
            let mut last_line = None;
            present.host = publish.iter().any(|&at| {
                let line = line_range(text, at);
                if last_line == Some(line.start) {
                    return false;
                }
                last_line = Some(line.start);
                rules.publish_hint.is_match(&text[line])
            });
        }
        if kubectl && !present.command {
            present.command = memchr::memmem::find(text.as_bytes(), b"delete").is_some();
        }
        FileRules { rules, hits, present, run_id_line: std::cell::Cell::new((usize::MAX, 0, false)) }
    }

    /// Does the line holding `offset` name a run id (a path with it is per run)?
    fn run_id_on_line(&self, text: &str, offset: usize) -> bool {
        let (start, end, answer) = self.run_id_line.get();
        if start != usize::MAX && start <= offset && offset <= end {
            return answer;
        }
        let line = line_range(text, offset);
        let answer = self.rules.run_id.is_match(&text[line.clone()]);
        self.run_id_line.set((line.start, line.end, answer));
        answer
    }

    /// Could any rule find anything in this file?
    fn worth_reading(&self) -> bool {
        let p = &self.present;
        p.tmp || p.host || p.command || p.namespace || !self.rules.forbidden.is_empty()
    }
}

impl FileRules<'_> {
    /// Does a prefilter literal start within `range` (or end in it, starting a little before)?
    fn any_hit(&self, range: std::ops::Range<usize>) -> bool {
        let from = range.start.saturating_sub(16);
        let i = self.hits.partition_point(|&h| h < from);
        self.hits.get(i).is_some_and(|&h| h < range.end)
    }
}

impl std::ops::Deref for FileRules<'_> {
    type Target = Rules;
    fn deref(&self) -> &Rules {
        self.rules
    }
}

/// A hit before it becomes a finding: rule, file offset, message.
type Hit = (&'static Rule, usize, String);

fn lint_text(text: &str, path: &str, lang: Lang, rules: &Rules) -> (Vec<Finding>, Vec<ParseErrorEntry>) {
    lint_file(text, path, lang, &FileRules::new(rules, text))
}

fn lint_file(
    text: &str,
    path: &str,
    lang: Lang,
    rules: &FileRules<'_>,
) -> (Vec<Finding>, Vec<ParseErrorEntry>) {
    let mut hits: Vec<Hit> = Vec::new();
    let mut errors = Vec::new();
    let code = match lang {
        Lang::Go | Lang::Rust => {
            let (code, literals) = c_like(text, lang);
            // `exec.Command("kubectl", "exec", "p", "--", "cat", "/tmp/x")`: the literals of one
            // line are an argv, read with the same command grammar as shell.
            let not_local = joined_literal_lines(text, &literals, rules, &mut hits);
            for (i, (start, end)) in literals.iter().enumerate() {
                piece_where(rules, text, *start..*end, true, !not_local.contains(&i), &mut hits);
            }
            // filepath.Join(os.TempDir(), "x.json"), std::env::temp_dir().join("x.json").
            for (at, name) in tmp_joins(&code, rules) {
                let fixed = !name.contains("XXX") && !name.contains('*');
                if fixed && !rules.run_id_on_line(text, at) {
                    hits.push((
                        &FIXED_TMP_PATH,
                        at,
                        format!("fixed file `{name}` joined to the temp dir: parallel runs overwrite each other's file"),
                    ));
                }
            }
            code
        }
        Lang::Shell => {
            if let Err(e) = shell_script(text, 0, text.len(), rules, &mut hits) {
                errors.push(ParseErrorEntry {
                    path: path.into(),
                    line: Source::new(text).line_col(e.offset).0,
                    message: format!("not valid shell ({}); scanned line by line instead", e.message),
                });
                lines_fallback(text, rules, &mut hits);
            }
            code_for_forbidden(text, rules)
        }
        Lang::Bats => {
            let shell = bats_as_shell(text);
            if let Err(e) = shell_script(&shell, 0, shell.len(), rules, &mut hits) {
                errors.push(ParseErrorEntry {
                    path: path.into(),
                    line: Source::new(text).line_col(e.offset).0,
                    message: format!("not valid bats shell ({}); scanned line by line instead", e.message),
                });
                lines_fallback(text, rules, &mut hits);
            }
            code_for_forbidden(text, rules)
        }
        Lang::Make => {
            makefile(text, rules, &mut hits);
            code_for_forbidden(text, rules)
        }
        Lang::Yaml => {
            yaml(text, rules, &mut hits);
            code_for_forbidden(text, rules)
        }
        Lang::Text => {
            lines_fallback(text, rules, &mut hits);
            code_for_forbidden(text, rules)
        }
        Lang::Docs => return (Vec::new(), Vec::new()),
    };
    // Project patterns: on code with comments blanked (strings included).
    for (re, message) in &rules.forbidden {
        for m in re.find_iter(&code) {
            hits.push((&FORBIDDEN_PATTERN, m.start(), message.clone()));
        }
    }
    if hits.is_empty() {
        return (Vec::new(), errors); // the usual case: no line index needed
    }
    // In offset order, so that columns are counted along each line once (Source::line_col).
    hits.sort_by_key(|h| h.1);
    let source = Source::new(text);
    let mut findings: Vec<Finding> = hits
        .into_iter()
        .filter_map(|(rule, offset, message)| {
            let finding = source.finding(rule, path, offset, message);
            (!source.allowed(finding.line, rule)).then_some(finding)
        })
        .collect();
    findings.sort_by_key(|f| (f.line, f.column, f.rule));
    findings.dedup_by(|a, b| a.line == b.line && a.column == b.column && a.rule == b.rule);
    // A command found both in one literal and in the line's joined literals is one finding.
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| {
        // (A port found by the command grammar and by the text's `host:port` is one finding.)
        ![&GLOBAL_GIT_CONFIG, &BROAD_PROCESS_KILL, &GLOBAL_DELETE, &FIXED_LOCAL_PORT].contains(&f.rule)
            || seen.insert((f.line, f.rule))
    });
    // One namespace use found two ways (`-n sut` and `"sut"`) is one finding.
    findings.dedup_by(|a, b| {
        a.line == b.line
            && a.rule == b.rule
            && a.rule == &HARDCODED_NAMESPACE
            && a.column.abs_diff(b.column) <= 2
    });
    (findings, errors)
}

/// A bats file as the shell it becomes (bats-core `lib/bats-core/preprocessing.bash` turns each
/// `@test "name" {` line into a function; `run [-N] [--keep-empty-lines] [--separate-stderr] [!]
/// CMD...` runs CMD, docs/source/writing-tests.md): the `@test "name"` before the `{` and the
/// `run` and its options before a command are blanked with spaces, so every offset is the
/// file's own and the bodies are read as shell.
fn bats_as_shell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let body = &line[indent..];
        let blank = |n: usize| " ".repeat(n);
        if body.starts_with("@test") && body[5..].starts_with([' ', '\t']) {
            if let Some(brace) = line.trim_end().strip_suffix('{').map(str::len) {
                out.push_str(&line[..indent]);
                out.push_str(&blank(brace - indent));
                out.push_str(&line[brace..]);
                continue;
            }
        }
        if body.starts_with("run") && body[3..].starts_with([' ', '\t']) {
            let mut end = indent + 3;
            loop {
                let rest = &line[end..];
                let spaces = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                let word = rest[spaces..].split([' ', '\t', '\n']).next().unwrap_or("");
                let option = word == "!"
                    || word == "--keep-empty-lines"
                    || word == "--separate-stderr"
                    || (word.len() > 1
                        && word.starts_with('-')
                        && word[1..].bytes().all(|b| b.is_ascii_digit()));
                if !option {
                    break;
                }
                end += spaces + word.len();
            }
            out.push_str(&line[..indent]);
            out.push_str(&blank(end - indent));
            out.push_str(&line[end..]);
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Checks a piece of text (a string literal, a shell word or command, a YAML scalar, a line).
/// `whole`: the piece is a complete value, so a namespace equal to it is a use.
fn piece(rules: &FileRules<'_>, text: &str, range: std::ops::Range<usize>, whole: bool, hits: &mut Vec<Hit>) {
    piece_where(rules, text, range, whole, true, hits);
}

/// [`piece`]; `local`: a path in it is on this machine (not inside a pod or container, not a
/// `mktemp` template), so a fixed /tmp path is a finding.
fn piece_where(
    rules: &FileRules<'_>,
    text: &str,
    range: std::ops::Range<usize>,
    whole: bool,
    local: bool,
    hits: &mut Vec<Hit>,
) {
    let base = range.start;
    if !rules.any_hit(range.clone()) {
        return; // nothing any rule looks for is in it
    }
    let s = &text[range];
    let trimmed = s.trim();
    if s.is_empty() {
        return;
    }
    let namespaces: &[String] = if rules.present.namespace { &rules.namespaces } else { &[] };
    for ns in namespaces {
        if whole && trimmed == ns {
            hits.push((
                &HARDCODED_NAMESPACE,
                base + s.find(ns.as_str()).unwrap_or(0),
                ns_message(ns, "as a value"),
            ));
            continue;
        }
        for (i, _) in s.match_indices(ns.as_str()) {
            let before = &s[..i];
            let after = &s[i + ns.len()..];
            let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if before.chars().last().is_some_and(is_name) || after.chars().next().is_some_and(is_name) {
                continue; // part of a longer word: `results`, `sut-helper`
            }
            let how = if rules.ns_flag.is_match(before) {
                Some("as the -n/--namespace value")
            } else if rules.ns_key.is_match(before) {
                Some("as a namespace: value")
            } else if after.starts_with(".svc") || (before.ends_with('.') && after.starts_with('.')) {
                Some("in a service DNS name")
            } else if after.starts_with('/')
                && after[1..].starts_with(|c: char| c.is_ascii_alphanumeric())
                && (before.is_empty() || before.ends_with([' ', '"', '\'', '=', ':', '\t', '(']))
            {
                Some("in a namespace/object reference")
            } else if before.ends_with(['"', '\'']) && after.starts_with(['"', '\'']) {
                Some("as a quoted value")
            } else {
                None
            };
            if let Some(how) = how {
                hits.push((&HARDCODED_NAMESPACE, base + i, ns_message(ns, how)));
            }
        }
    }
    // Cheap substring checks first: most pieces (a Go file's many literals) hold none of what
    // the regexes look for, and `str::contains` is fast even in the debug build `cargo xtask` runs.
    let has_tmp = rules.present.tmp && (s.contains("/tmp") || s.contains("TMPDIR"));
    if local && has_tmp && !rules.run_id_on_line(text, base) {
        for m in rules.tmpdir_var.find_iter(s) {
            if unique_name(path_word(&s[m.start()..])) {
                continue; // a mktemp template, or a per-process name
            }
            hits.push((
                &FIXED_TMP_PATH,
                base + m.start(),
                format!(
                    "fixed file `{}` in the temp dir: parallel runs overwrite each other's file",
                    path_word(&s[m.start()..])
                ),
            ));
        }
        for c in rules.tmp.captures_iter(s) {
            if let Some(m) = c.get(1) {
                if unique_name(path_word(&s[m.start()..])) {
                    continue; // a mktemp template (the X's become a unique name), or per process
                }
                hits.push((
                    &FIXED_TMP_PATH,
                    base + m.start(),
                    format!(
                        "fixed path `{}` under /tmp: parallel runs overwrite each other's file",
                        path_word(&s[m.start()..])
                    ),
                ));
            }
        }
    }
    let has_host =
        rules.present.host && (s.contains("localhost") || s.contains("127.0.0.1") || s.contains("[::1]"));
    for c in rules.port.captures_iter(if has_host { s } else { "" }) {
        let (Some(all), Some(port)) = (c.get(0), c.get(1)) else { continue };
        let Ok(number) = port.as_str().parse::<u32>() else { continue };
        // Port 0 asks the system for a free port: the opposite of a fixed one.
        if number != 0 && !rules.shared_ports.iter().any(|p| u32::from(*p) == number) {
            hits.push((
                &FIXED_LOCAL_PORT,
                base + all.start(),
                format!(
                    "fixed local port `{}` is not shared infra: parallel runs collide on it",
                    all.as_str()
                ),
            ));
        }
    }
    // A command word inside a pod or container (`kubectl exec ... -- pkill x`) kills there.
    if local {
        command_text(rules, s, base, hits);
    }
}

/// Rules about commands, on text that may hold one (a shell command, a joined argv, a script).
fn command_text(rules: &FileRules<'_>, s: &str, base: usize, hits: &mut Vec<Hit>) {
    if !rules.present.command {
        return;
    }
    let may = |needle: &str| s.contains(needle);
    let kubectl = may("kubectl") || may("KUBECTL") || may("Kubectl");
    if !(may("--global") || may("--system") || may("pkill") || may("killall") || (kubectl && may("delete"))) {
        return;
    }
    if let Some(c) = rules.git_global.captures(s) {
        if let (Some(all), Some(flag)) = (c.get(0), c.get(1)) {
            hits.push((
                &GLOBAL_GIT_CONFIG,
                base + all.start(),
                format!("`git config {}` changes git for every user and run on this machine", flag.as_str()),
            ));
        }
    }
    for part in split_commands(s) {
        if let Some(c) = rules.kill.captures(&s[part.clone()]) {
            if let Some(m) = c.get(1) {
                hits.push((
                    &BROAD_PROCESS_KILL,
                    base + part.start + m.start(),
                    format!(
                        "`{}` matches processes by name: it stops other users' and runs' processes",
                        m.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(c) = rules.delete.captures(s) {
        if let (Some(all), Some(flag)) = (c.get(0), c.get(1)) {
            hits.push((
                &GLOBAL_DELETE,
                base + all.start(),
                format!("`kubectl delete {}` deletes other runs' objects too", flag.as_str()),
            ));
        }
    }
}

/// Ranges of `s` between `;`, `&&`, `||`, `|`, newlines (a rough split for non-shell text).
fn split_commands(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if matches!(c, ';' | '&' | '|' | '\n') {
            out.push(start..i);
            start = i + 1;
        }
    }
    out.push(start..s.len());
    out
}

/// A name no two runs share: a `mktemp` template (its X's become a unique name) or one holding
/// the shell's process id (`$$`, `$BASHPID`: one per process).
fn unique_name(word: &str) -> bool {
    word.contains("XXX") || word.contains("$$") || word.contains("$BASHPID") || word.contains("${BASHPID}")
}

fn ns_message(ns: &str, how: &str) -> String {
    format!("fixed namespace `{ns}` {how}: parallel runs collide in it")
}

fn path_word(s: &str) -> &str {
    let end = s.find(|c: char| c.is_whitespace() || "\"'`;)&|,".contains(c)).unwrap_or(s.len());
    &s[..end]
}

/// The names `tmp_join` finds (with their offsets), looked for near the temp-dir literals only
/// (a call spans a few lines at most), so the regex never reads a whole file.
fn tmp_joins<'t>(code: &'t str, rules: &FileRules<'_>) -> Vec<(usize, &'t str)> {
    if !rules.present.tmp {
        return Vec::new();
    }
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut done_to = 0;
    for &h in &rules.hits {
        let at = &b[h..];
        if h < done_to
            || !(at.starts_with(b"/tmp") || at.starts_with(b"TempDir") || at.starts_with(b"temp_dir"))
        {
            continue;
        }
        // From the line before the literal's to two lines after it (both ends after a newline
        // or at an end of the text: char boundaries).
        let line = memchr::memrchr(b'\n', &b[..h]).unwrap_or(0);
        let from = memchr::memrchr(b'\n', &b[..line]).map_or(0, |i| i + 1);
        let mut to = h;
        for _ in 0..3 {
            to = memchr::memchr(b'\n', &b[to..]).map_or(b.len(), |i| to + i + 1);
        }
        done_to = to;
        for c in rules.tmp_join.captures_iter(&code[from..to]) {
            // Windows overlap by a line or two: a match already taken is not taken again.
            if let (Some(all), Some(name)) = (c.get(0), c.get(1)) {
                if seen.insert(from + all.start()) {
                    out.push((from + name.start(), name.as_str()));
                }
            }
        }
    }
    out
}

/// The byte range of the line holding `offset` (without its newline).
fn line_range(text: &str, offset: usize) -> std::ops::Range<usize> {
    let b = text.as_bytes();
    let offset = offset.min(b.len());
    let start = memchr::memrchr(b'\n', &b[..offset]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &b[offset..]).map_or(b.len(), |i| offset + i);
    start..end
}

// ---------------------------------------------------------------------------------------------
// Go and Rust.
// ---------------------------------------------------------------------------------------------

/// Comments blanked out (offsets kept), and the content ranges of string literals (the scan is
/// in the optimised `xtask-scan` crate: it reads every byte of every Go file in scope).
fn c_like(text: &str, lang: Lang) -> (String, Vec<(usize, usize)>) {
    xtask_scan::clike::code_and_literals(text, lang == Lang::Go, lang == Lang::Rust)
}

/// Runs the command rules on each line's literals as one argv; returns the indices of literals
/// that are not paths on this machine (inside a pod or container, mktemp templates).
fn joined_literal_lines(
    text: &str,
    literals: &[(usize, usize)],
    rules: &FileRules<'_>,
    hits: &mut Vec<Hit>,
) -> Vec<usize> {
    let mut not_local = Vec::new();
    let mut i = 0;
    while i < literals.len() {
        // The literals of one line: no newline between one and the next (each gap read once,
        // so a long line costs its length, not its length times its literals).
        let mut j = i;
        while j + 1 < literals.len()
            && memchr::memchr(b'\n', &text.as_bytes()[literals[j].1..literals[j + 1].0]).is_none()
        {
            j += 1;
        }
        // A line none of whose literals holds a prefilter literal holds no finding (and its
        // literals are not pieces anything is looked for in): most lines of a Go file.
        if j > i && rules.any_hit(literals[i].0..literals[j].1) {
            let joined: Vec<&str> = literals[i..=j].iter().map(|(s, e)| &text[*s..*e]).collect();
            let joined = joined.join(" ");
            let mut line_hits = Vec::new();
            command_text(rules, &joined, 0, &mut line_hits);
            for (rule, _, message) in line_hits {
                hits.push((rule, literals[i].0, message));
            }
            // An argument between two literals that is not one (`ns` in `"-n", ns, "svc/x"`)
            // keeps its place as a word no rule reads, so positions stay as the call has them.
            let mut argv: Vec<shell::Word> = Vec::new();
            let mut literal_of: Vec<Option<usize>> = Vec::new();
            for k in i..=j {
                let (s, e) = literals[k];
                if k > i {
                    let gap = &text[literals[k - 1].1..s];
                    let rest: String =
                        gap.chars().filter(|c| !c.is_whitespace() && !",\"'`#".contains(*c)).collect();
                    // Between two commas: an argument of its own (not `").args(["`, not `+ b +`).
                    if gap.matches(',').count() >= 2 && !rest.is_empty() {
                        argv.push(shell::Word {
                            value: "\u{1}".into(),
                            span: literals[k - 1].1..s,
                            quoted: true,
                        });
                        literal_of.push(None);
                    }
                }
                argv.push(shell::Word { value: text[s..e].to_string(), span: s..e, quoted: true });
                literal_of.push(Some(k));
            }
            not_local.extend(argv_rules(rules, &argv, 0, hits).into_iter().filter_map(|k| literal_of[k]));
        }
        i = j + 1;
    }
    not_local
}

// ---------------------------------------------------------------------------------------------
// Shell and Makefiles.
// ---------------------------------------------------------------------------------------------

fn shell_script(
    text: &str,
    from: usize,
    to: usize,
    rules: &FileRules<'_>,
    hits: &mut Vec<Hit>,
) -> Result<(), shell::ShellError> {
    let src = &text[from..to];
    let tokens = shell::tokenize(src)
        .map_err(|e| shell::ShellError { offset: from + e.offset, message: e.message })?;
    for cmd in shell::commands(&tokens) {
        for doc in &cmd.heredocs {
            // Here-document bodies are data (manifests, configs): read line by line.
            lines_fallback_range(text, from + doc.body.start, from + doc.body.end, rules, hits);
        }
        // A command holding no literal any rule looks for holds no finding.
        if !rules.any_hit(from + cmd.span.start..from + cmd.span.end) {
            continue;
        }
        // Assignments: `NS=sut`.
        for w in &cmd.words[..cmd.words.len() - cmd.argv().len()] {
            if let Some((_, value)) = w.value.split_once('=') {
                let raw = &src[w.span.clone()];
                let value_at = raw.find('=').map(|n| n + 1).unwrap_or(0);
                for ns in &rules.namespaces {
                    if value.trim_matches(['"', '\'']) == ns {
                        hits.push((
                            &HARDCODED_NAMESPACE,
                            from + w.span.start + value_at,
                            ns_message(ns, "as a value"),
                        ));
                    }
                }
                piece(rules, text, from + w.span.start + value_at..from + w.span.end, false, hits);
            }
        }
        // Redirection targets and here-strings are files (and values) this machine writes:
        // `> /tmp/x.json`, `2>/tmp/err`, `exec 9>/tmp/lock`, `<<< "$x"`. Even for `echo`.
        for (_, target) in &cmd.redirects {
            if let Some(t) = target {
                piece(rules, text, from + t.span.start..from + t.span.end, false, hits);
            }
        }
        let argv = cmd.argv();
        let Some(p) = program_index(argv) else { continue };
        let program = program_name(&argv[p].value);
        if matches!(program.as_str(), "echo" | "printf" | ":" | "true") {
            continue; // messages, not values
        }
        let span = from + cmd.span.start..from + cmd.span.end;
        command_text(rules, &text[span.clone()], span.start, hits);
        let remote = argv_rules(rules, argv, from, hits);
        let docker_run = matches!(program.as_str(), "docker" | "podman" | "nerdctl");
        for (k, w) in argv.iter().enumerate() {
            let wspan = from + w.span.start..from + w.span.end;
            let volume = docker_run && k > 0 && matches!(argv[k - 1].value.as_str(), "-v" | "--volume");
            if volume && remote.contains(&k) {
                // HOST:CONTAINER: the host side is this machine's.
                let raw = &src[w.span.clone()];
                let host = w.value.split_once(':').map_or(w.value.as_str(), |(h, _)| h);
                if let Some(at) = raw.find(host).filter(|_| !host.is_empty()) {
                    let start = wspan.start + at;
                    piece_where(rules, text, start..start + host.len(), false, true, hits);
                }
                continue;
            }
            piece_where(rules, text, wspan.clone(), false, !remote.contains(&k), hits);
            for ns in &rules.namespaces {
                let flag_before = k > 0 && matches!(argv[k - 1].value.as_str(), "-n" | "--namespace");
                if w.value == *ns && (flag_before || w.quoted || k > p) {
                    let how = if flag_before { "as the -n/--namespace value" } else { "as a value" };
                    hits.push((
                        &HARDCODED_NAMESPACE,
                        wspan.start + src[w.span.clone()].find(ns.as_str()).unwrap_or(0),
                        ns_message(ns, how),
                    ));
                }
            }
        }
        // `sh -c '...'`: the string is a script.
        if ["sh", "bash"].contains(&program.as_str()) {
            if let Some(pos) = argv.iter().position(|w| w.value == "-c") {
                if let Some(w) = argv.get(pos + 1) {
                    let raw = &src[w.span.clone()];
                    if raw.len() >= 2 && (raw.starts_with('\'') || raw.starts_with('"')) {
                        let _ =
                            shell_script(text, from + w.span.start + 1, from + w.span.end - 1, rules, hits);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The program a word names: `/usr/bin/kubectl` → `kubectl`; a variable whose name is a tool
/// (`$(KUBECTL)`, `${DOCKER}`, `$PODMAN`, as Makefiles and scripts spell them) → that tool.
fn program_name(word: &str) -> String {
    let base = word.rsplit('/').next().unwrap_or(word);
    let var = base
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .or_else(|| base.strip_prefix("${").and_then(|v| v.strip_suffix('}')))
        .or_else(|| base.strip_prefix('$'));
    match var {
        Some(name) => {
            let lower = name.to_ascii_lowercase();
            let known = [
                "kubectl", "docker", "podman", "nerdctl", "helm", "kind", "git", "mktemp", "pkill", "killall",
            ];
            if known.contains(&lower.as_str()) {
                lower
            } else {
                base.to_string()
            }
        }
        None => base.to_string(),
    }
}

/// The command grammar the rules need, on an argv (a shell command, or a Go/Rust exec argument
/// list): the local side of `kubectl port-forward` specs and of `docker|podman run -p` is a
/// fixed local port; and which words are not paths on this machine (after `kubectl exec ... --`,
/// after the container of `docker|podman exec`, `ctr:/path` of `cp`, `mktemp` templates).
/// Returns the indices of those words.
fn argv_rules(rules: &FileRules<'_>, argv: &[shell::Word], base: usize, hits: &mut Vec<Hit>) -> Vec<usize> {
    let mut not_local = Vec::new();
    let Some(p) = program_index(argv) else { return not_local };
    let program = program_name(&argv[p].value);
    let words: Vec<&str> = argv.iter().map(|w| w.value.as_str()).collect();
    // The subcommand: the first word after the program that is neither a flag nor the value of
    // a global flag (`kubectl -n ns port-forward`, `docker --context c run`).
    let sub = {
        let mut k = p + 1;
        while k < words.len() && words[k].starts_with('-') {
            let takes_value = !words[k].contains('=')
                && [
                    "-n",
                    "--namespace",
                    "--context",
                    "--kubeconfig",
                    "--cluster",
                    "--user",
                    "-s",
                    "--server",
                    "-H",
                    "--host",
                    "-c",
                    "--config",
                    "--log-level",
                ]
                .contains(&words[k]);
            k += if takes_value { 2 } else { 1 };
        }
        (k < words.len()).then_some(k)
    };
    let subcommand = sub.map(|i| words[i]).unwrap_or("");
    let fixed_port = |hits: &mut Vec<Hit>, k: usize, port: &str, how: &str| {
        let Ok(number) = port.parse::<u32>() else { return };
        if number != 0 && number <= 65535 && !rules.shared_ports.iter().any(|s| u32::from(*s) == number) {
            hits.push((
                &FIXED_LOCAL_PORT,
                base + argv[k].span.start,
                format!("fixed local port {number} {how} is not shared infra: parallel runs collide on it"),
            ));
        }
    };
    match (program.as_str(), subcommand) {
        ("kubectl", "port-forward") => {
            // kubectl port-forward [flags] TYPE/NAME [LOCAL:]REMOTE...: LOCAL fixed unless empty/0.
            let mut k = sub.map_or(words.len(), |i| i + 1);
            let mut target_seen = false;
            while k < words.len() {
                let w = words[k];
                if w == "--" {
                    k += 1;
                    continue;
                }
                if w.starts_with('-') {
                    let takes_value = !w.contains('=')
                        && [
                            "-n",
                            "--namespace",
                            "--address",
                            "--context",
                            "--pod-running-timeout",
                            "--kubeconfig",
                        ]
                        .contains(&w);
                    k += if takes_value { 2 } else { 1 };
                    continue;
                }
                if !target_seen {
                    target_seen = true;
                } else {
                    let local = w.split_once(':').map_or(w, |(l, _)| l);
                    fixed_port(hits, k, local, "(the local side of a port-forward)");
                }
                k += 1;
            }
        }
        ("docker" | "podman" | "nerdctl", "run" | "create") => {
            for k in p + 1..words.len() {
                let value = match words[k] {
                    "-p" | "--publish" => words.get(k + 1).copied().map(|v| (k + 1, v)),
                    w => w
                        .strip_prefix("--publish=")
                        .or_else(|| w.strip_prefix("-p"))
                        .filter(|v| !v.is_empty())
                        .map(|v| (k, v)),
                };
                if let Some((at, spec)) = value {
                    // [ip:]hostPort:containerPort[/proto]; a container port alone gets a free one.
                    let parts: Vec<&str> = spec.split(':').collect();
                    let host = match parts.len() {
                        3 => parts[1],
                        2 => parts[0],
                        _ => "",
                    };
                    fixed_port(hits, at, host, "(a published host port)");
                }
            }
        }
        _ => {}
    }
    match (program.as_str(), subcommand) {
        ("kubectl", "exec") => {
            if let Some(dash) = words.iter().position(|w| *w == "--") {
                not_local.extend(dash + 1..words.len());
            }
        }
        ("docker" | "podman" | "nerdctl", "exec") => {
            // exec [flags] CONTAINER COMMAND...: everything after the container is inside it.
            let mut k = sub.map_or(words.len(), |i| i + 1);
            while k < words.len() && words[k].starts_with('-') {
                let takes_value = !words[k].contains('=')
                    && ["-e", "--env", "-u", "--user", "-w", "--workdir", "--env-file", "--detach-keys"]
                        .contains(&words[k]);
                k += if takes_value { 2 } else { 1 };
            }
            not_local.extend(k + 1..words.len());
        }
        ("docker" | "podman" | "nerdctl", "run" | "create") => {
            // run [OPTIONS] IMAGE [COMMAND] [ARG...] (docker run --help, docs/reference/cli/docker/
            // container/run.md): after the image, the container's own command and paths. A
            // -v/--volume value is HOST:CONTAINER: the caller checks its host side only.
            let with_value = [
                "-v",
                "--volume",
                "-e",
                "--env",
                "--env-file",
                "-p",
                "--publish",
                "--name",
                "-w",
                "--workdir",
                "--network",
                "--net",
                "--entrypoint",
                "-u",
                "--user",
                "--mount",
                "--platform",
                "-l",
                "--label",
                "--add-host",
                "--cpus",
                "-m",
                "--memory",
                "-h",
                "--hostname",
                "--restart",
                "--pull",
                "--cap-add",
                "--cap-drop",
                "--device",
                "--dns",
                "--tmpfs",
                "--ulimit",
                "--log-driver",
                "--log-opt",
                "--runtime",
                "--security-opt",
                "--shm-size",
                "--stop-signal",
                "--ipc",
                "--pid",
                "--gpus",
                "--group-add",
                "--volumes-from",
                "--link",
                "--expose",
                "--cidfile",
                "-a",
                "--attach",
                "--label-file",
                "--health-cmd",
                "--stop-timeout",
                "--userns",
                "--uts",
                "--cgroupns",
            ];
            let mut k = sub.map_or(words.len(), |i| i + 1);
            while k < words.len() && words[k].starts_with('-') && words[k] != "-" {
                if words[k] == "--" {
                    k += 1;
                    break;
                }
                let takes_value = !words[k].contains('=') && with_value.contains(&words[k]);
                if takes_value && matches!(words[k], "-v" | "--volume") {
                    not_local.push(k + 1);
                }
                k += if takes_value { 2 } else { 1 };
            }
            not_local.extend(k + 1..words.len());
        }
        ("docker" | "podman" | "nerdctl" | "kubectl", "cp") => {
            // `cp SRC CONTAINER:/path`: that path is in the container (or pod).
            for (k, w) in words.iter().enumerate().skip(p + 1) {
                // `ctr:/path`, `ns/pod:/path` (never `/local/a:/b`, `./x:/y`).
                if w.split_once(":/")
                    .is_some_and(|(name, _)| !name.is_empty() && !name.starts_with(['/', '.', '~']))
                {
                    not_local.push(k);
                }
            }
        }
        ("mktemp", _) => {
            // A template's X's become a unique name: `mktemp /tmp/x.XXXXXX` is the fix, not the bug.
            for (k, w) in words.iter().enumerate().skip(p + 1) {
                if w.contains("XXX") {
                    not_local.push(k);
                }
            }
        }
        _ => {}
    }
    not_local
}

fn makefile(text: &str, rules: &FileRules<'_>, hits: &mut Vec<Hit>) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        if body.trim_start().starts_with('#') || body.trim().is_empty() {
            continue;
        }
        if let Some(recipe) = body.strip_prefix('\t') {
            let lead = 1 + recipe.len() - recipe.trim_start_matches(['@', '-', '+', ' ']).len();
            let from = start + lead;
            if shell_script(text, from, start + body.len(), rules, hits).is_err() {
                lines_fallback_range(text, from, start + body.len(), rules, hits);
            }
        } else if let Some(eq) = assignment_value(body) {
            let value = body[eq..].trim();
            let at = start + eq + (body[eq..].len() - body[eq..].trim_start().len());
            let value = strip_hash_comment(value);
            piece(rules, text, at..at + value.len(), true, hits);
        }
    }
}

/// Where the value of `NAME = v`, `NAME := v`, `NAME ?= v`, `NAME += v` starts.
fn assignment_value(line: &str) -> Option<usize> {
    let eq = line.find('=')?;
    let name = line[..eq].trim_end_matches([':', '?', '+', '!']).trim();
    let name = name.strip_prefix("export ").unwrap_or(name).trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .then_some(eq + 1)
}

// ---------------------------------------------------------------------------------------------
// YAML and plain text.
// ---------------------------------------------------------------------------------------------

/// A CI step's `run:` (GitHub Actions) or `script:`-style command key: its value is a script.
fn run_key(body: &str) -> Option<(usize, &str)> {
    let t = body.trim_start();
    let indent = body.len() - t.len();
    let t = t.strip_prefix("- ").unwrap_or(t);
    let value = t.strip_prefix("run:")?;
    Some((indent, value))
}

/// The starts of the lines holding a prefilter literal or a `run:` key, in order: the only lines
/// of a YAML file that can hold a finding (a `run: |` block is judged by its own lines).
fn yaml_candidate_lines(text: &str, rules: &FileRules<'_>) -> Vec<usize> {
    let b = text.as_bytes();
    let line_start = |at: usize| memchr::memrchr(b'\n', &b[..at]).map_or(0, |i| i + 1);
    let mut starts: Vec<usize> = rules.hits.iter().map(|&h| line_start(h)).collect();
    starts.extend(memchr::memmem::find_iter(b, b"run:").map(line_start));
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// The byte ranges of `description:` values (the key's line and every more-indented line after
/// it: a block scalar or a plain scalar's continuation lines). A description is prose for
/// people (a composite action's or workflow's input, a CRD field), never a value a run uses.
fn yaml_descriptions(text: &str) -> Vec<std::ops::Range<usize>> {
    let b = text.as_bytes();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for at in memchr::memmem::find_iter(b, b"description:") {
        let start = memchr::memrchr(b'\n', &b[..at]).map_or(0, |i| i + 1);
        let lead = &text[start..at];
        let indent = lead.len() - lead.trim_start().len();
        if !matches!(lead.trim(), "" | "-") || out.last().is_some_and(|r| r.contains(&start)) {
            continue;
        }
        let key_indent = if lead.trim() == "-" { lead.len() } else { indent };
        let mut end = memchr::memchr(b'\n', &b[at..]).map_or(text.len(), |i| at + i + 1);
        for next in text[end..].split_inclusive('\n') {
            let content = next.trim_end_matches(['\n', '\r']);
            let next_indent = content.len() - content.trim_start().len();
            if !content.trim().is_empty() && next_indent <= key_indent {
                break;
            }
            end += next.len();
        }
        out.push(start..end);
    }
    out
}

fn yaml(text: &str, rules: &FileRules<'_>, hits: &mut Vec<Hit>) {
    let key_value = Some(&*rules.key_value);
    // The end of a `run: |` block being read as shell: its lines are skipped here.
    let mut script_until = 0;
    let descriptions = yaml_descriptions(text);
    for start in yaml_candidate_lines(text, rules) {
        let offset = memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |i| start + i + 1);
        let line = &text[start..offset];
        let in_description = {
            let k = descriptions.partition_point(|r| r.start <= start);
            k > 0 && descriptions[k - 1].contains(&start)
        };
        if start < script_until || in_description {
            continue;
        }
        let body = strip_hash_comment(line.trim_end_matches(['\n', '\r']));
        if body.trim().is_empty() {
            continue;
        }
        // A CI workflow's `run:` is a command like any other: the shell rules apply to it.
        if let Some((indent, value)) = run_key(body) {
            let v = value.trim();
            if v.starts_with('|') || v.starts_with('>') {
                let block_start = offset;
                let mut end = offset;
                for next in text[offset..].split_inclusive('\n') {
                    let content = next.trim_end_matches(['\n', '\r']);
                    let next_indent = content.len() - content.trim_start().len();
                    if !content.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    end += next.len();
                }
                if rules.any_hit(block_start..end)
                    && shell_script(text, block_start, end, rules, hits).is_err()
                {
                    lines_fallback_range(text, block_start, end, rules, hits);
                }
                script_until = end;
                continue;
            }
            let at = start + body.len() - value.len() + (value.len() - value.trim_start().len());
            let unq = v.trim_matches(['"', '\'']);
            let q = usize::from(unq.len() != v.len() && !v.is_empty());
            if shell_script(text, at + q, at + q + unq.len(), rules, hits).is_err() {
                lines_fallback_range(text, at, at + v.len(), rules, hits);
            }
            continue;
        }
        let value_at = key_value.as_ref().and_then(|re| re.find(body)).map(|m| m.end()).or_else(|| {
            let t = body.trim_start();
            t.strip_prefix("- ").map(|_| body.len() - t.len() + 2)
        });
        match value_at {
            Some(at) => {
                let value = &body[at..];
                let inner = value.trim();
                if inner.starts_with('[') && inner.ends_with(']') {
                    // Flow sequence: each item is a value.
                    let open = start + at + value.find('[').unwrap_or(0) + 1;
                    let mut item_at = open;
                    for item in inner[1..inner.len() - 1].split(',') {
                        let lead = item.len() - item.trim_start().len();
                        let item_trim = item.trim();
                        let unq = item_trim.trim_matches(['"', '\'']);
                        let q = usize::from(unq.len() != item_trim.len());
                        piece(rules, text, item_at + lead + q..item_at + lead + q + unq.len(), true, hits);
                        item_at += item.len() + 1;
                    }
                    command_text(rules, &inner.replace(['"', '\'', ','], " "), start + at, hits);
                } else {
                    let unq = inner.trim_matches(['"', '\'']);
                    let rel = value.find(unq).unwrap_or(0);
                    piece(rules, text, start + at + rel..start + at + rel + unq.len(), true, hits);
                    // `namespace: sut` style keys on the whole line.
                    piece(rules, text, start..start + body.len(), false, hits);
                }
            }
            None => piece(rules, text, start..start + body.len(), false, hits),
        }
    }
}

fn lines_fallback(text: &str, rules: &FileRules<'_>, hits: &mut Vec<Hit>) {
    lines_fallback_range(text, 0, text.len(), rules, hits);
}

fn lines_fallback_range(text: &str, from: usize, to: usize, rules: &FileRules<'_>, hits: &mut Vec<Hit>) {
    let quoted = Some(&*rules.quoted);
    let mut offset = from;
    for line in text[from..to].split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if !rules.any_hit(start..offset) {
            continue;
        }
        let body = strip_hash_comment(line.trim_end_matches(['\n', '\r']));
        let body = strip_slash_comment(body);
        if body.trim().is_empty() {
            continue;
        }
        piece(rules, text, start..start + body.len(), false, hits);
        if let Some(re) = &quoted {
            for c in re.captures_iter(body) {
                if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                    piece(rules, text, start + m.start()..start + m.end(), true, hits);
                }
            }
        }
        // `- sut` or `key: sut` in unknown formats.
        let t = body.trim();
        let value = t.rsplit([':', '=']).next().unwrap_or(t).trim().trim_start_matches("- ");
        if value != t || t.starts_with("- ") {
            if let Some(i) = body.rfind(value) {
                piece(rules, text, start + i..start + i + value.len(), true, hits);
            }
        }
    }
}

/// The part of a line before a `#` comment (a `#` at the start or after a blank, outside quotes).
fn strip_hash_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut quote: Option<u8> = None;
    for (i, &c) in b.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') => return &line[..i],
            None => {}
        }
    }
    line
}

fn strip_slash_comment(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find(" //") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// The text forbidden patterns are matched on (comments blanked), only when there are any.
fn code_for_forbidden(text: &str, rules: &FileRules<'_>) -> String {
    if rules.forbidden.is_empty() {
        String::new()
    } else {
        blank_hash_comments(text)
    }
}

/// Every `#` comment replaced by spaces (offsets kept), for forbidden patterns.
fn blank_hash_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let code = strip_hash_comment(line.trim_end_matches('\n'));
        out.push_str(code);
        let rest = &line[code.len()..];
        out.extend(rest.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
    }
    out
}

/// Every language's reading of `text` with namespace and port rules on: the fuzz test's entry.
#[doc(hidden)]
pub fn lint_every_language(text: &str) -> usize {
    let config = HardcodedConfig {
        namespaces: vec!["sut".into()],
        shared_ports: vec![13000],
        forbidden: vec![Forbidden { pattern: "kind-e2e".into(), message: "m".into() }],
        ..HardcodedConfig::default()
    };
    static RULES: std::sync::OnceLock<Option<Rules>> = std::sync::OnceLock::new();
    let Some(rules) = RULES.get_or_init(|| Rules::new(&config).ok()) else { return 0 };
    [Lang::Go, Lang::Rust, Lang::Shell, Lang::Bats, Lang::Make, Lang::Yaml, Lang::Text]
        .into_iter()
        .map(|lang| lint_text(text, "f", lang, rules).0.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_are_covered_by_their_name_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let (doc, script) = (dir.path().join("notes.md"), dir.path().join("run.sh"));
        std::fs::write(&doc, b"pkill -f x\0").unwrap();
        std::fs::write(&script, b"pkill -f x\0").unwrap();
        let config = HardcodedConfig::default();
        let report = lint_files(&[doc, script], &config, dir.path(), &walk::Contents::Disk).unwrap();
        // The binary script is read (and skipped as binary); the doc is counted, never read.
        assert_eq!(report.files_scanned, 1);
        let skipped: Vec<&str> = report.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(skipped, ["run.sh"]);
    }

    #[test]
    fn every_built_in_pattern_compiles() {
        let r = Rules::new(&HardcodedConfig::default()).unwrap();
        let all = [
            &r.tmp,
            &r.quoted,
            &r.key_value,
            &r.publish_hint,
            &r.tmpdir_var,
            &r.tmp_join,
            &r.run_id,
            &r.port,
            &r.git_global,
            &r.kill,
            &r.delete,
            &r.ns_flag,
            &r.ns_key,
        ];
        for lazy in all {
            assert!(!lazy.is_match("\u{0}"), "{}", lazy.pattern);
        }
    }

    /// The defaults name no namespace and no shared port: a project's config does.
    fn rules() -> Rules {
        let config = HardcodedConfig {
            namespaces: vec!["sut".into()],
            shared_ports: vec![13000, 19090],
            ..HardcodedConfig::default()
        };
        Rules::new(&config).unwrap()
    }

    #[test]
    fn the_defaults_are_not_this_projects() {
        let defaults = HardcodedConfig::default();
        assert!(defaults.namespaces.is_empty() && defaults.shared_ports.is_empty());
        let (findings, _) =
            lint_text("kubectl get pods -n sut\n", "f", Lang::Shell, &Rules::new(&defaults).unwrap());
        assert!(findings.is_empty());
    }

    fn rules_in(text: &str, lang: Lang) -> Vec<(&'static str, usize, usize)> {
        let (findings, _) = lint_text(text, "f", lang, &rules());
        findings.iter().map(|f| (f.rule.id, f.line, f.column)).collect()
    }

    fn rules_of(text: &str, lang: Lang) -> Vec<&'static str> {
        rules_in(text, lang).into_iter().map(|(r, _, _)| r).collect()
    }

    /// A bats suite is read as shell: the exemptions of `kubectl exec ... --`, `kubectl cp
    /// pod:/path` and `echo` hold inside `@test` bodies and after `run`; a real finding is still
    /// found, at its own line and column.
    #[test]
    fn bats_suites_are_read_as_shell() {
        assert_eq!(lang(Path::new("test/bats/test.bats"), ""), Lang::Bats);
        assert_eq!(lang(Path::new("test/suite"), "#!/usr/bin/env bats\n"), Lang::Bats);
        let suite = "#!/usr/bin/env bats\n\nload helpers\n\n@test \"gatekeeper {audit} works\" {\n  run kubectl exec -n \"$NS\" pod -- cat /tmp/audit.log\n  kubectl cp \"$NS/pod:/tmp/report\" \"$BATS_TEST_TMPDIR/report\"\n  echo \"look in /tmp/x\"\n  [ \"$status\" -eq 0 ]\n}\n\n@test 'writes a fixed file' {\n  run -0 --separate-stderr kubectl get pods > /tmp/pods.txt\n}\n";
        assert_eq!(rules_in(suite, Lang::Bats), vec![("fixed-tmp-path", 13, 47)]);
        // Read line by line (the old reading), the exemptions were lost.
        assert!(rules_in(suite, Lang::Text).len() > 1);
        let shell = bats_as_shell(suite);
        assert_eq!(shell.len(), suite.len());
        let lines: Vec<&str> = shell.lines().collect();
        assert_eq!(lines[4].trim(), "{", "{shell}");
        assert!(
            lines[5].trim().starts_with("kubectl exec") && lines[12].trim().starts_with("kubectl get"),
            "{shell}"
        );
    }

    #[test]
    fn code_literals_and_comments_are_told_apart() {
        // A Rust raw string holding a quote is one literal; the comment after it is blanked.
        let (code, lits) = c_like("let s = r#\"a\"b\"#; // \"x\"\n", Lang::Rust);
        assert_eq!(lits.len(), 1, "{lits:?}");
        assert_eq!(&"let s = r#\"a\"b\"#;"[lits[0].0..lits[0].1], "a\"b");
        assert!(!code.contains('x'));
        // A quote in a character literal opens no string: the literal after it is still found.
        let text = "let q = '\"'; let p = \"/tmp/cache\";\n";
        let (_, lits) = c_like(text, Lang::Rust);
        assert_eq!(lits.iter().map(|(a, b)| &text[*a..*b]).collect::<Vec<_>>(), ["/tmp/cache"]);
        // Go: a backquote in a rune is not a raw string; a real raw string is a literal.
        let text = "r := '`'; s := `/tmp/x`\n";
        let (_, lits) = c_like(text, Lang::Go);
        assert_eq!(lits.iter().map(|(a, b)| &text[*a..*b]).collect::<Vec<_>>(), ["/tmp/x"]);
    }

    #[test]
    fn redirections_write_files_on_this_machine() {
        for positive in [
            "kubectl get pods > /tmp/x.json\n",
            "run 2>/tmp/err\n",
            "exec 9>/tmp/lock\n",
            "echo hi >> /tmp/log\n",
            "cat <<< \"$(< /tmp/in)\"\n",
        ] {
            assert_eq!(rules_of(positive, Lang::Shell), ["fixed-tmp-path"], "{positive}");
        }
        for trap in [
            "kubectl get pods > \"$E2E_ARTIFACTS_DIR/x.json\"\n",
            "f=$(mktemp /tmp/x.XXXXXX)\n",
            "mktemp -d /tmp/e2e.XXXX\n",
        ] {
            assert!(rules_of(trap, Lang::Shell).is_empty(), "{trap}");
        }
    }

    #[test]
    fn ports_a_command_binds_are_read_from_its_grammar() {
        for positive in [
            "kubectl port-forward svc/gitea 8080:80\n",
            "kubectl -n x port-forward --address 0.0.0.0 pod/p 9090\n",
            "docker run -d -p 8081:80 nginx\n",
            "podman run --publish=127.0.0.1:8082:80 img\n",
        ] {
            assert_eq!(rules_of(positive, Lang::Shell), ["fixed-local-port"], "{positive}");
        }
        for trap in [
            "kubectl port-forward svc/gitea :80\n",
            "kubectl port-forward svc/gitea 13000:3000\n",
            "docker run -p 80 nginx\n",
            "docker run -p 0:80 nginx\n",
        ] {
            assert!(rules_of(trap, Lang::Shell).is_empty(), "{trap}");
        }
    }

    #[test]
    fn paths_inside_pods_and_containers_are_not_this_machines() {
        for trap in [
            "kubectl exec -n ns pod -- cat /tmp/x\n",
            "docker exec -u 0 ctr cat /tmp/x\n",
            "podman exec ctr sh -c 'cat /tmp/x'\n",
            "podman cp f ctr:/tmp/x\n",
            "kubectl cp f ns/pod:/tmp/x\n",
        ] {
            assert!(rules_of(trap, Lang::Shell).is_empty(), "{trap}");
        }
        assert_eq!(rules_of("docker cp ctr:/tmp/x /tmp/local\n", Lang::Shell), ["fixed-tmp-path"]);
        assert_eq!(rules_of("kubectl exec p -- cat /x > /tmp/copy\n", Lang::Shell), ["fixed-tmp-path"]);
    }

    #[test]
    fn temp_dirs_joined_with_a_fixed_name_are_fixed_paths() {
        assert_eq!(
            rules_of("x := filepath.Join(os.TempDir(), \"state.json\")\n", Lang::Go),
            ["fixed-tmp-path"]
        );
        assert_eq!(
            rules_of("let p = std::env::temp_dir().join(\"state.json\");\n", Lang::Rust),
            ["fixed-tmp-path"]
        );
        // Looked for around the temp-dir literal only: a call over several lines, far into a file.
        let far =
            format!("{}x := filepath.Join(\n\tos.TempDir(),\n\t\"state.json\",\n)\n", "y := 1\n".repeat(200));
        assert_eq!(rules_of(&far, Lang::Go), ["fixed-tmp-path"]);
        assert_eq!(rules_of("cat \"$TMPDIR/state.json\"\n", Lang::Shell), ["fixed-tmp-path"]);
        assert_eq!(rules_of("cat ${TMPDIR:-/tmp}/state.json\n", Lang::Shell), ["fixed-tmp-path"]);
        assert!(rules_of("d, _ := os.MkdirTemp(\"\", \"e2e-*\")\n", Lang::Go).is_empty());
        assert!(rules_of("let d = tempfile::tempdir()?;\n", Lang::Rust).is_empty());
    }

    #[test]
    fn exec_argument_lists_are_commands() {
        assert_eq!(
            rules_of(
                "cmd := exec.Command(\"kubectl\", \"port-forward\", \"svc/x\", \"8080:80\")\n",
                Lang::Go
            ),
            ["fixed-local-port"]
        );
        assert!(rules_of(
            "exec.Command(\"kubectl\", \"exec\", \"p\", \"--\", \"cat\", \"/tmp/x\")\n",
            Lang::Go
        )
        .is_empty());
        assert_eq!(
            rules_of("Command::new(\"docker\").args([\"run\", \"-p\", \"8080:80\", \"img\"]);\n", Lang::Rust),
            ["fixed-local-port"]
        );
    }

    #[test]
    fn make_recipes_and_variable_named_tools_are_commands() {
        let mk = "KUBECTL ?= kubectl\nforward:\n\t@$(KUBECTL) port-forward svc/x 8080:80\nclean:\n\t-$(KUBECTL) delete ns --all\n";
        assert_eq!(rules_of(mk, Lang::Make), ["fixed-local-port", "global-delete"]);
        assert_eq!(lang(Path::new("hack/e2e.mk"), ""), Lang::Make);
        assert_eq!(lang(Path::new("Makefile.e2e"), ""), Lang::Make);
    }

    #[test]
    fn ci_workflow_run_blocks_are_shell() {
        let wf = "jobs:\n  e2e:\n    steps:\n      - name: forward\n        run: |\n          kubectl port-forward svc/x 8080:80 &\n          echo \"pkill is not run\"\n          go test ./... > /tmp/out.txt\n      - run: kubectl delete ns --all\n      - name: note\n        run: echo \"pkill -f x\"\n";
        assert_eq!(rules_of(wf, Lang::Yaml), ["fixed-local-port", "fixed-tmp-path", "global-delete"]);
    }

    #[test]
    fn namespace_uses_and_non_uses() {
        assert_eq!(rules_in("kubectl get pods -n sut\n", Lang::Shell), vec![("hardcoded-namespace", 1, 21)]);
        assert_eq!(
            rules_in("kubectl get pods --namespace=sut\n", Lang::Shell),
            vec![("hardcoded-namespace", 1, 30)]
        );
        assert!(rules_in("echo results sut-helper\ncp sut-helper x\n", Lang::Shell).is_empty());
        assert_eq!(rules_in("ns := \"sut\"\n", Lang::Go), vec![("hardcoded-namespace", 1, 8)]);
        assert_eq!(
            rules_in("u := \"http://gitea.sut.svc.cluster.local\"\n", Lang::Go),
            vec![("hardcoded-namespace", 1, 20)]
        );
        assert_eq!(rules_in("  namespace: sut\n", Lang::Yaml), vec![("hardcoded-namespace", 1, 14)]);
    }

    #[test]
    fn comments_never_count() {
        assert!(rules_in("// kubectl -n sut; pkill x\n/* /tmp/x */\n", Lang::Go).is_empty());
        assert!(rules_in("# pkill -f x\nkill $PID # pkill\n", Lang::Shell).is_empty());
    }
}
