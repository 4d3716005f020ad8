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

use serde::Deserialize;

use super::parse::shell::{self, program_index};
use super::report::{Finding, ParseErrorEntry, Report, Rule, Source};
use super::walk;

/// `[hardcoded]` in the lint config. Nothing here is specific to one project: the namespaces a
/// project must not hardcode and its shared-infra ports come from its config (this repository's
/// are in `hack/lint.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct HardcodedConfig {
    /// Namespaces a test must never hardcode (for example `sut`).
    pub(crate) namespaces: Vec<String>,
    /// localhost ports that are shared infra (port-forwards every run uses): allowed.
    pub(crate) shared_ports: Vec<u16>,
    /// Project-specific patterns (regex) with their message.
    pub(crate) forbidden: Vec<Forbidden>,
    /// Paths (relative to the repository root) scanned when no PATH is given.
    pub(crate) scope: Vec<String>,
    /// Files with these extensions anywhere in the repository are in scope too.
    pub(crate) scope_extensions: Vec<String>,
    /// gitignore-style patterns (relative to the repository root) never scanned by the walk.
    pub(crate) exclude: Vec<String>,
}

impl Default for HardcodedConfig {
    fn default() -> Self {
        HardcodedConfig {
            namespaces: Vec::new(),
            shared_ports: Vec::new(),
            forbidden: Vec::new(),
            scope: ["test", "hack", "Makefile"].map(String::from).to_vec(),
            scope_extensions: vec!["sh".into(), "bash".into()],
            exclude: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Forbidden {
    pub(crate) pattern: String,
    pub(crate) message: String,
}

pub(crate) const HARDCODED_NAMESPACE: Rule = Rule {
    id: "hardcoded-namespace",
    summary: "a fixed namespace used as a value: parallel runs collide in it",
    help: "take the run's namespace from the environment instead of a fixed name",
};
pub(crate) const FIXED_TMP_PATH: Rule = Rule {
    id: "fixed-tmp-path",
    summary: "a fixed file under /tmp: parallel runs overwrite each other's files",
    help: "create it with mktemp, or put it under the run's own state directory",
};
pub(crate) const GLOBAL_GIT_CONFIG: Rule = Rule {
    id: "global-git-config",
    summary: "git config --global/--system changes every user's and run's git",
    help: "scope settings to one command (GIT_CONFIG_COUNT/KEY/VALUE env) or use `git -C repo config`",
};
pub(crate) const BROAD_PROCESS_KILL: Rule = Rule {
    id: "broad-process-kill",
    summary: "pkill/killall stop other users' and other runs' processes",
    help: "kill the pid you started (`kill $PID`), or its process group",
};
pub(crate) const GLOBAL_DELETE: Rule = Rule {
    id: "global-delete",
    summary: "kubectl delete --all/-A deletes other runs' objects",
    help: "delete by a label that names the run (-l <key>=<run id>) or in the run's own namespace",
};
pub(crate) const FIXED_LOCAL_PORT: Rule = Rule {
    id: "fixed-local-port",
    summary: "a fixed localhost port that is not shared infra: parallel runs collide on it",
    help: "pick a free port at run time, or add the port to [hardcoded] shared-ports if it is shared infra",
};
pub(crate) const FORBIDDEN_PATTERN: Rule = Rule {
    id: "forbidden-pattern",
    summary: "a project-specific forbidden pattern",
    help: "see the message; the pattern is in the lint config's [[hardcoded.forbidden]]",
};

/// This checker's rules.
pub(crate) const RULES: &[&Rule] = &[
    &HARDCODED_NAMESPACE,
    &FIXED_TMP_PATH,
    &GLOBAL_GIT_CONFIG,
    &BROAD_PROCESS_KILL,
    &GLOBAL_DELETE,
    &FIXED_LOCAL_PORT,
    &FORBIDDEN_PATTERN,
];

/// The files the config's scope covers under the repository `root`, minus its excludes.
pub(crate) fn scope_files(root: &Path, config: &HardcodedConfig) -> Result<Vec<PathBuf>> {
    // One walk of the repository: the scope dirs and the scope extensions anywhere.
    let excluded = walk::exclude_matcher(root, &config.exclude)?;
    let scope = Scope::new(root, config)?;
    Ok(walk::walk(std::slice::from_ref(&root.to_path_buf()), &excluded, &|p| scope.contains(p)))
}

/// The config's scope as a predicate (for one walk of the repository, and for staged files).
pub(crate) struct Scope {
    dirs: Vec<PathBuf>,
    extensions: Vec<String>,
    excluded: ignore::gitignore::Gitignore,
}

impl Scope {
    /// The scope of `config` in the repository at `root`.
    pub(crate) fn new(root: &Path, config: &HardcodedConfig) -> Result<Scope> {
        Ok(Scope {
            dirs: config.scope.iter().map(|s| crate::paths::normalize(&root.join(s))).collect(),
            extensions: config.scope_extensions.clone(),
            excluded: walk::exclude_matcher(root, &config.exclude)?,
        })
    }

    pub(crate) fn contains(&self, path: &Path) -> bool {
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
        "mk" => Lang::Make,
        "yaml" | "yml" => Lang::Yaml,
        "md" | "markdown" | "rst" | "adoc" | "txt" => Lang::Docs,
        _ if matches!(name, "Makefile" | "makefile" | "GNUmakefile") => Lang::Make,
        _ if path.components().any(|c| c.as_os_str() == "docs") => Lang::Docs,
        _ if text.starts_with("#!") && text.lines().next().is_some_and(|l| l.contains("sh")) => Lang::Shell,
        _ => Lang::Text,
    }
}

pub(crate) fn lint_files(files: &[PathBuf], config: &HardcodedConfig, cwd: &Path) -> Result<Report> {
    let rules = Rules::new(config)?;
    walk::scan_files(files, cwd, |file, display, text| {
        let lang = lang(file, &text);
        if lang == Lang::Docs || !rules.prefilter.is_match(&text) {
            return Ok(Report::default());
        }
        let (findings, parse_errors) = lint_text(&text, &display, lang, &rules);
        Ok(Report { findings, parse_errors, ..Report::default() })
    })
}

/// The compiled rules.
pub(crate) struct Rules {
    namespaces: Vec<String>,
    shared_ports: Vec<u16>,
    forbidden: Vec<(Regex, String)>,
    /// Any of the literals every rule needs: files without one are not parsed at all.
    prefilter: Regex,
    tmp: Regex,
    run_id: Regex,
    port: Regex,
    git_global: Regex,
    kill: Regex,
    delete: Regex,
    ns_flag: Regex,
    ns_key: Regex,
}

impl Rules {
    pub(crate) fn new(config: &HardcodedConfig) -> Result<Rules> {
        let mut literals: Vec<String> = vec![
            "/tmp/".into(),
            "--global".into(),
            "--system".into(),
            "pkill".into(),
            "killall".into(),
            "kubectl".into(),
            "localhost:".into(),
            "127.0.0.1:".into(),
            "[::1]:".into(),
        ];
        literals.extend(config.namespaces.iter().cloned());
        let mut prefilter: Vec<String> = literals.iter().map(|l| regex::escape(l)).collect();
        let mut forbidden = Vec::new();
        for f in &config.forbidden {
            let re = Regex::new(&f.pattern)
                .with_context(|| format!("invalid forbidden pattern `{}`", f.pattern))?;
            prefilter.push(format!("(?:{})", f.pattern));
            forbidden.push((re, f.message.clone()));
        }
        Ok(Rules {
            namespaces: config.namespaces.clone(),
            shared_ports: config.shared_ports.clone(),
            forbidden,
            prefilter: Regex::new(&prefilter.join("|"))?,
            tmp: Regex::new(r"(?:^|[^\w.~/$-])(/tmp/[\w.${}-])")?,
            run_id: Regex::new(r"(?i)run_?id")?,
            port: Regex::new(r"(?:\b(?:localhost|127\.0\.0\.1)|\[::1\]):(\d{1,5})\b")?,
            git_global: Regex::new(
                r#"\bgit\b["',\s]+(?:-[cC]["',\s]+\S+["',\s]+)*config\b[^;&|\n]*?(--global|--system)\b"#,
            )?,
            kill: Regex::new(r"^\s*(?:\$\(\s*)?(?:(?:sudo|exec)\s+)?(?:/\S*/)?(pkill|killall)\b")?,
            delete: Regex::new(
                r#"\bkubectl\b[^;&|\n]*\bdelete\b[^;&|\n]*?(?:^|[\s"',])(--all-namespaces|--all|-A)(?:$|[\s"',=])"#,
            )?,
            ns_flag: Regex::new(r#"(?:^|[\s"'(,\[=])(?:-n|--namespace)(?:[\s"',]+|=)$"#)?,
            ns_key: Regex::new(r#"(?i)namespace["']?\s*[:=]\s*\\?["']?$"#)?,
        })
    }
}

/// A hit before it becomes a finding: rule, file offset, message.
type Hit = (&'static Rule, usize, String);

fn lint_text(text: &str, path: &str, lang: Lang, rules: &Rules) -> (Vec<Finding>, Vec<ParseErrorEntry>) {
    let source = Source::new(text);
    let mut hits: Vec<Hit> = Vec::new();
    let mut errors = Vec::new();
    let code = match lang {
        Lang::Go | Lang::Rust => {
            let (code, literals) = c_like(text, lang);
            for (start, end) in &literals {
                piece(rules, text, *start..*end, true, &mut hits);
            }
            // `exec.Command("git", "config", "--global")`: the literals of one line, joined.
            joined_literal_lines(text, &literals, rules, &mut hits);
            code
        }
        Lang::Shell => {
            if let Err(e) = shell_script(text, 0, text.len(), rules, &mut hits) {
                errors.push(ParseErrorEntry {
                    path: path.into(),
                    line: source.line_col(e.offset).0,
                    message: format!("not valid shell ({}); scanned line by line instead", e.message),
                });
                lines_fallback(text, rules, &mut hits);
            }
            blank_hash_comments(text)
        }
        Lang::Make => {
            makefile(text, rules, &mut hits);
            blank_hash_comments(text)
        }
        Lang::Yaml => {
            yaml(text, rules, &mut hits);
            blank_hash_comments(text)
        }
        Lang::Text => {
            lines_fallback(text, rules, &mut hits);
            blank_hash_comments(text)
        }
        Lang::Docs => return (Vec::new(), Vec::new()),
    };
    // Project patterns: on code with comments blanked (strings included).
    for (re, message) in &rules.forbidden {
        for m in re.find_iter(&code) {
            hits.push((&FORBIDDEN_PATTERN, m.start(), message.clone()));
        }
    }
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
        ![&GLOBAL_GIT_CONFIG, &BROAD_PROCESS_KILL, &GLOBAL_DELETE].contains(&f.rule)
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

/// Checks a piece of text (a string literal, a shell word or command, a YAML scalar, a line).
/// `whole`: the piece is a complete value, so a namespace equal to it is a use.
fn piece(rules: &Rules, text: &str, range: std::ops::Range<usize>, whole: bool, hits: &mut Vec<Hit>) {
    let base = range.start;
    let s = &text[range];
    let trimmed = s.trim();
    if s.is_empty() {
        return;
    }
    for ns in &rules.namespaces {
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
    if !rules.run_id.is_match(line_of(text, base)) {
        for c in rules.tmp.captures_iter(s) {
            if let Some(m) = c.get(1) {
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
    for c in rules.port.captures_iter(s) {
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
    command_text(rules, s, base, hits);
}

/// Rules about commands, on text that may hold one (a shell command, a joined argv, a script).
fn command_text(rules: &Rules, s: &str, base: usize, hits: &mut Vec<Hit>) {
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

fn ns_message(ns: &str, how: &str) -> String {
    format!("fixed namespace `{ns}` {how}: parallel runs collide in it")
}

fn path_word(s: &str) -> &str {
    let end = s.find(|c: char| c.is_whitespace() || "\"'`;)&|,".contains(c)).unwrap_or(s.len());
    &s[..end]
}

fn line_of(text: &str, offset: usize) -> &str {
    let start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = text[offset..].find('\n').map(|i| offset + i).unwrap_or(text.len());
    &text[start..end]
}

// ---------------------------------------------------------------------------------------------
// Go and Rust.
// ---------------------------------------------------------------------------------------------

/// Comments blanked out (offsets kept), and the content ranges of string literals.
fn c_like(text: &str, lang: Lang) -> (String, Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut literals = Vec::new();
    let mut i = 0;
    let blank = |code: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut code[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map(|n| i + n).unwrap_or(b.len());
                blank(&mut code, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map(|n| i + 2 + n + 2).unwrap_or(b.len());
                blank(&mut code, i, end);
                i = end;
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                literals.push((start, j.min(b.len())));
                i = j + 1;
            }
            b'`' if lang == Lang::Go => {
                let end = text[i + 1..].find('`').map(|n| i + 1 + n).unwrap_or(b.len());
                literals.push((i + 1, end));
                i = end + 1;
            }
            b'r' if lang == Lang::Rust && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let closing = format!("\"{}", "#".repeat(hashes));
                let end = text[start..].find(&closing).map(|n| start + n).unwrap_or(b.len());
                literals.push((start, end));
                i = end + closing.len();
            }
            b'\'' if lang == Lang::Go => {
                let end = text[i + 1..].find('\'').map(|n| i + 1 + n).unwrap_or(b.len());
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    (String::from_utf8(code).unwrap_or_default(), literals)
}

fn joined_literal_lines(text: &str, literals: &[(usize, usize)], rules: &Rules, hits: &mut Vec<Hit>) {
    let mut i = 0;
    while i < literals.len() {
        let line_start = text[..literals[i].0].rfind('\n').map(|n| n + 1).unwrap_or(0);
        let mut j = i;
        while j + 1 < literals.len() && text[line_start..literals[j + 1].0].find('\n').is_none() {
            j += 1;
        }
        if j > i {
            let joined: Vec<&str> = literals[i..=j].iter().map(|(s, e)| &text[*s..*e]).collect();
            let joined = joined.join(" ");
            let mut line_hits = Vec::new();
            command_text(rules, &joined, 0, &mut line_hits);
            for (rule, _, message) in line_hits {
                hits.push((rule, literals[i].0, message));
            }
        }
        i = j + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Shell and Makefiles.
// ---------------------------------------------------------------------------------------------

fn shell_script(
    text: &str,
    from: usize,
    to: usize,
    rules: &Rules,
    hits: &mut Vec<Hit>,
) -> Result<(), shell::ShellError> {
    let src = &text[from..to];
    let tokens = shell::tokenize(src)
        .map_err(|e| shell::ShellError { offset: from + e.offset, message: e.message })?;
    for cmd in shell::commands(&tokens) {
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
        for doc in &cmd.heredocs {
            // Here-document bodies are data (manifests, configs): read line by line.
            lines_fallback_range(text, from + doc.body.start, from + doc.body.end, rules, hits);
        }
        let argv = cmd.argv();
        let Some(p) = program_index(argv) else { continue };
        let program = argv[p].value.rsplit('/').next().unwrap_or("");
        if matches!(program, "echo" | "printf" | ":" | "true") {
            continue; // messages, not values
        }
        let span = from + cmd.span.start..from + cmd.span.end;
        command_text(rules, &text[span.clone()], span.start, hits);
        for (k, w) in argv.iter().enumerate() {
            let wspan = from + w.span.start..from + w.span.end;
            piece(rules, text, wspan.clone(), false, hits);
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
        if ["sh", "bash"].contains(&program) {
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

fn makefile(text: &str, rules: &Rules, hits: &mut Vec<Hit>) {
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

fn yaml(text: &str, rules: &Rules, hits: &mut Vec<Hit>) {
    let key_value = Regex::new(r#"^\s*(?:-\s+)?(?:"[^"]*"|'[^']*'|[^\s:'"][^:]*?)\s*:(?:\s+|$)"#).ok();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = strip_hash_comment(line.trim_end_matches(['\n', '\r']));
        if body.trim().is_empty() {
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

fn lines_fallback(text: &str, rules: &Rules, hits: &mut Vec<Hit>) {
    lines_fallback_range(text, 0, text.len(), rules, hits);
}

fn lines_fallback_range(text: &str, from: usize, to: usize, rules: &Rules, hits: &mut Vec<Hit>) {
    let quoted = Regex::new(r#""([^"\n]*)"|'([^'\n]*)'"#).ok();
    let mut offset = from;
    for line in text[from..to].split_inclusive('\n') {
        let start = offset;
        offset += line.len();
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
#[cfg(test)]
pub(crate) fn lint_every_language(text: &str) -> usize {
    let config = HardcodedConfig {
        namespaces: vec!["sut".into()],
        shared_ports: vec![13000],
        forbidden: vec![Forbidden { pattern: "kind-e2e".into(), message: "m".into() }],
        ..HardcodedConfig::default()
    };
    static RULES: std::sync::OnceLock<Option<Rules>> = std::sync::OnceLock::new();
    let Some(rules) = RULES.get_or_init(|| Rules::new(&config).ok()) else { return 0 };
    [Lang::Go, Lang::Rust, Lang::Shell, Lang::Make, Lang::Yaml, Lang::Text]
        .into_iter()
        .map(|lang| lint_text(text, "f", lang, rules).0.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
