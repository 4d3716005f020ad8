//! The `dnf update` policy checker. Teams disagree (a full-system update makes e2e builds several
//! times slower and unreproducible; others must ship security updates), so it is a policy:
//! forbid, require or off.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use serde_json::Value;

use super::value::{FromValue, Table};

use super::parse::dockerfile::{self, Mapped};
use super::parse::shell::{self, basename, program_index};
use super::report::{ParseErrorEntry, Report, Rule, Source};
use super::walk;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePolicy {
    #[default]
    Forbid,
    Require,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetedPolicy {
    #[default]
    Allow,
    Forbid,
}

#[derive(Debug, Clone, Default)]
/// `[dockerfile]` in the lint config.
pub struct DockerfileConfig {
    pub dnf_update: UpdatePolicy,
    pub dnf_update_targeted: TargetedPolicy,
    pub exclude: Vec<String>,
}

/// One of `names` (lowercase), as `pick` maps it.
fn one_of<T>(v: &Value, at: &str, names: &[&str], pick: impl Fn(&str) -> Option<T>) -> Result<T, String> {
    let text = String::from_value(v, at)?;
    pick(&text)
        .ok_or_else(|| format!("unknown variant `{text}` at {at}, expected one of {}", names.join(", ")))
}

impl FromValue for UpdatePolicy {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        one_of(v, at, &["forbid", "require", "off"], |s| match s {
            "forbid" => Some(UpdatePolicy::Forbid),
            "require" => Some(UpdatePolicy::Require),
            "off" => Some(UpdatePolicy::Off),
            _ => None,
        })
    }
}

impl FromValue for TargetedPolicy {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        one_of(v, at, &["allow", "forbid"], |s| match s {
            "allow" => Some(TargetedPolicy::Allow),
            "forbid" => Some(TargetedPolicy::Forbid),
            _ => None,
        })
    }
}

impl FromValue for DockerfileConfig {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let config = DockerfileConfig {
            dnf_update: t.or_default("dnf-update")?,
            dnf_update_targeted: t.or_default("dnf-update-targeted")?,
            exclude: t.or_default("exclude")?,
        };
        t.done()?;
        Ok(config)
    }
}

pub const DNF_UPDATE: Rule = Rule {
    id: "dnf-update",
    summary: "Dockerfile package-manager update policy (forbid or require a full-system update)",
    help: "see [dockerfile] dnf-update in the lint config; `--fix` removes forbidden updates",
};

/// This checker's rules.
pub const RULES: &[&Rule] = &[&DNF_UPDATE];

/// Dockerfile / Containerfile naming conventions: `Dockerfile`, `Dockerfile.<variant>`,
/// `<name>.Dockerfile` (and the same for Containerfile). `Dockerfile.dockerignore` is not one.
pub fn is_dockerfile(path: &Path) -> bool {
    // Lossy: a name with non-UTF-8 bytes (`Dockerfile.\xff`) is still a Dockerfile.
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else { return false };
    let name = name.as_ref();
    if name.ends_with(".dockerignore") || name.ends_with(".containerignore") {
        return false;
    }
    // Asked of every file of a repository: plain comparisons, no allocation.
    name.eq_ignore_ascii_case("Dockerfile")
        || name.eq_ignore_ascii_case("Containerfile")
        || ["Dockerfile.", "Containerfile."].iter().any(|p| name.starts_with(p))
        || [".Dockerfile", ".dockerfile", ".Containerfile", ".containerfile"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Walks `roots` and lints every Dockerfile found (files named directly are always linted).
/// Every Dockerfile under `roots` (files named directly always count), excludes relative to the
/// repository `root`.
pub fn lint_paths(
    roots: &[PathBuf],
    root: &Path,
    config: &DockerfileConfig,
    cwd: &Path,
    fix: bool,
) -> Result<Report> {
    let excluded = walk::exclude_matcher(root, &config.exclude)?;
    let named: Vec<PathBuf> = roots.iter().filter(|r| r.is_file()).cloned().collect();
    let mut files = walk::walk(roots, &excluded, &is_dockerfile);
    files.retain(|f| named.contains(f) || is_dockerfile(f));
    lint_files(&files, config, cwd, fix, &walk::Contents::Disk)
}

pub fn lint_files(
    files: &[PathBuf],
    config: &DockerfileConfig,
    cwd: &Path,
    fix: bool,
    contents: &walk::Contents,
) -> Result<Report> {
    walk::scan_files(files, cwd, contents, |file, display, text| {
        let mut result = lint_text(&text, &display, config);
        if fix && !result.removals.is_empty() {
            let fixed = apply_removals(&text, &result.removals);
            let after = lint_text(&fixed, &display, config);
            if after.report.parse_errors.len() > result.report.parse_errors.len() {
                anyhow::bail!("{display}: --fix would leave the file unparseable; not written");
            }
            std::fs::write(file, &fixed).with_context(|| format!("writing {}", file.display()))?;
            result = after;
            result.report.fixed.push(display);
        }
        Ok(result.report)
    })
}

/// What linting one file gives: the report and the byte ranges `--fix` would remove.
pub struct FileResult {
    pub report: Report,
    pub removals: Vec<Range<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FullUpdate,
    TargetedUpdate,
    Install,
    Other,
}

/// A package-manager call found in a RUN.
#[derive(Debug, Clone)]
struct PmCall {
    kind: Kind,
    program: String,
    subcommand: String,
    /// File offset of the package-manager word.
    offset: usize,
    /// File bytes `--fix` removes to drop this call (None when it cannot be removed safely).
    removal: Option<Range<usize>>,
}

const PACKAGE_MANAGERS: &[&str] = &["dnf", "dnf5", "microdnf", "yum"];
const FULL_UPDATES: &[&str] = &[
    "update",
    "upgrade",
    "up",
    "update-minimal",
    "upgrade-minimal",
    "up-min",
    "distro-sync",
    "distrosync",
    "distribution-synchronization",
    "dsync",
];
const INSTALLS: &[&str] = &["install", "in", "groupinstall", "localinstall"];
/// Options that take their value as the next word.
const VALUE_OPTIONS: &[&str] = &[
    "-c",
    "--config",
    "--installroot",
    "--releasever",
    "--setopt",
    "-x",
    "--exclude",
    "--excludepkgs",
    "--enablerepo",
    "--disablerepo",
    "--repo",
    "--repoid",
    "--repofrompath",
    "-d",
    "--debuglevel",
    "-e",
    "--errorlevel",
    "--rpmverbosity",
    "--forcearch",
    "--downloaddir",
    "--destdir",
    "--comment",
    "--color",
    "--advisory",
    "--advisories",
    "--bz",
    "--cve",
    "--sec-severity",
    "--secseverity",
];
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh"];

fn classify(argv: &[shell::Word]) -> Option<(usize, Kind, String)> {
    let p = program_index(argv)?;
    if !PACKAGE_MANAGERS.contains(&basename(&argv[p].value)) {
        return None;
    }
    let mut j = p + 1;
    let mut sub = None;
    while j < argv.len() {
        let a = argv[j].value.as_str();
        if a.starts_with('-') {
            j += if !a.contains('=') && VALUE_OPTIONS.contains(&a) { 2 } else { 1 };
        } else if a.starts_with('$') || a.is_empty() {
            j += 1;
        } else {
            sub = Some(j);
            break;
        }
    }
    let Some(s) = sub else { return Some((p, Kind::Other, String::new())) };
    let subcommand = argv[s].value.clone();
    let mut packages = 0;
    let mut k = s + 1;
    while k < argv.len() {
        let a = argv[k].value.as_str();
        if a.starts_with('-') {
            k += if !a.contains('=') && VALUE_OPTIONS.contains(&a) { 2 } else { 1 };
            continue;
        }
        if !a.starts_with('$') && !a.is_empty() {
            packages += 1;
        }
        k += 1;
    }
    let kind = if FULL_UPDATES.contains(&subcommand.as_str()) {
        if packages == 0 {
            Kind::FullUpdate
        } else {
            Kind::TargetedUpdate
        }
    } else if INSTALLS.contains(&subcommand.as_str())
        || (matches!(subcommand.as_str(), "group" | "groups" | "module")
            && argv.get(s + 1).is_some_and(|w| w.value == "install"))
    {
        Kind::Install
    } else {
        Kind::Other
    };
    Some((p, kind, subcommand))
}

/// Package-manager calls in a shell script (RUN body, heredoc script, `sh -c` string).
fn shell_calls(
    script: &Mapped,
    whole_instruction: Option<&Range<usize>>,
    out: &mut Vec<PmCall>,
) -> Result<(), (usize, String)> {
    let tokens = shell::tokenize(&script.text).map_err(|e| (script.file_offset(e.offset), e.message))?;
    let cmds = shell::commands(&tokens);
    let only_one = cmds.len() == 1 && cmds[0].heredocs.is_empty();
    for cmd in &cmds {
        let argv = cmd.argv();
        if let Some((p, kind, subcommand)) = classify(argv) {
            let removal = removal(script, cmd, only_one.then_some(whole_instruction).flatten());
            out.push(PmCall {
                kind,
                program: basename(&argv[p].value).to_string(),
                subcommand,
                offset: script.file_offset(argv[p].span.start),
                removal,
            });
        }
        // A here-document fed to a shell (or the RUN itself, `RUN <<EOF`) is a script.
        let program = program_index(argv).map(|p| basename(&argv[p].value));
        let runs_script = program.is_none() || program.is_some_and(|p| SHELLS.contains(&p));
        let has_dash_c = argv.iter().any(|w| w.value == "-c");
        if runs_script && !has_dash_c {
            for doc in &cmd.heredocs {
                shell_calls(&script.slice(doc.body.clone()), None, out)?;
            }
        }
        // `sh -c '...'`: the string is a script.
        if program.is_some_and(|p| SHELLS.contains(&p)) && has_dash_c {
            if let Some(pos) = argv.iter().position(|w| w.value == "-c") {
                if let Some(word) = argv.get(pos + 1) {
                    let raw = &script.text[word.span.clone()];
                    let quoted = raw.len() >= 2
                        && (raw.starts_with('\'') || raw.starts_with('"'))
                        && raw.ends_with(&raw[..1]);
                    let inner =
                        if quoted { word.span.start + 1..word.span.end - 1 } else { word.span.clone() };
                    shell_calls(&script.slice(inner), None, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The bytes to remove to drop `cmd` and its joining `&&`/`;` so the script stays valid.
fn removal(
    script: &Mapped,
    cmd: &shell::Command,
    whole_instruction: Option<&Range<usize>>,
) -> Option<Range<usize>> {
    let joins = |op: Option<&str>| matches!(op, Some("&&" | ";" | "\n"));
    if let Some(whole) = whole_instruction {
        return Some(whole.clone());
    }
    if joins(cmd.after) && !cmd.before_closer {
        if let Some(next) = cmd.next_start {
            return Some(script.file_offset(cmd.span.start)..script.file_offset(next));
        }
    }
    if matches!(cmd.before, Some("&&" | ";"))
        && !cmd.after_keyword
        && matches!(cmd.after, None | Some("\n" | ";"))
    {
        if let Some(prev) = cmd.prev_end {
            return Some(script.file_end(prev)..script.file_end(cmd.span.end));
        }
    }
    None
}

fn apply_removals(text: &str, removals: &[Range<usize>]) -> String {
    let mut sorted: Vec<&Range<usize>> = removals.iter().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in sorted {
        if r.start < at {
            continue; // overlaps an earlier removal
        }
        out.push_str(&text[at..r.start]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

struct Stage {
    label: String,
    /// A full-system update ran in it (or in the stage it is built FROM).
    updated: bool,
    /// Its first install was judged (require mode judges each stage once).
    judged: bool,
    first_install: Option<PmCall>,
}

/// Lints one Dockerfile's text.
pub fn lint_text(text: &str, path: &str, config: &DockerfileConfig) -> FileResult {
    let source = Source::new(text);
    let df = dockerfile::parse(text);
    let mut report = Report::default();
    let mut removals = Vec::new();
    for e in &df.errors {
        report.parse_errors.push(ParseErrorEntry {
            path: path.to_string(),
            line: source.line_col(e.offset).0,
            message: e.message.clone(),
        });
    }

    let mut stages: Vec<Stage> = Vec::new();
    // Named stages by name (BuildKit compares them case-insensitively): one lookup per FROM, so
    // thousands of stages stay linear.
    let mut named: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let words: Vec<&str> =
                ins.args.text.split_whitespace().filter(|w| !w.starts_with("--")).collect();
            let base = words.first().copied().unwrap_or("").to_string();
            let name = match words.as_slice() {
                [_, kw, name, ..] if kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            let inherited = named.get(&base.to_lowercase()).is_some_and(|&i| stages[i].updated);
            let label = match &name {
                Some(n) => format!("`{n}`"),
                None => format!("#{} ({base})", stages.len()),
            };
            if let Some(n) = name {
                named.insert(n.to_lowercase(), stages.len());
            }
            stages.push(Stage { label, updated: inherited, judged: false, first_install: None });
            continue;
        }
        if ins.keyword != "RUN" {
            continue;
        }
        let mut calls = Vec::new();
        let parsed = match ins.exec_form() {
            Some(argv) => exec_form_calls(ins, &argv, &mut calls),
            None => shell_calls(&ins.args, Some(&ins.span), &mut calls),
        };
        if let Err((offset, message)) = parsed {
            report.parse_errors.push(ParseErrorEntry {
                path: path.to_string(),
                line: source.line_col(offset).0,
                message: format!("RUN is not valid shell: {message}"),
            });
            continue;
        }
        if stages.is_empty() {
            stages.push(Stage { label: "#0".into(), updated: false, judged: false, first_install: None });
        }
        let stage_index = stages.len() - 1;
        let updates_here = calls.iter().any(|c| c.kind == Kind::FullUpdate);
        for call in calls {
            let line = source.line_col(call.offset).0;
            let mut report_call = |message: String, fixable: bool| {
                if source.allowed(line, &DNF_UPDATE) {
                    return;
                }
                report.findings.push(source.finding(&DNF_UPDATE, path, call.offset, message));
                if let (true, Some(r)) = (fixable, &call.removal) {
                    removals.push(r.clone());
                }
            };
            let stage = &stages[stage_index];
            match (config.dnf_update, call.kind) {
                (UpdatePolicy::Forbid, Kind::FullUpdate) => report_call(
                    format!(
                        "`{} {}` is a full-system update in stage {}{}: it makes every build slower and is forbidden by policy (dnf-update = \"forbid\"); use a current base image instead{}",
                        call.program,
                        call.subcommand,
                        stage.label,
                        if ins.onbuild { " (ONBUILD)" } else { "" },
                        if call.removal.is_some() { "" } else { " (not removable by --fix here: edit by hand)" },
                    ),
                    true,
                ),
                (_, Kind::TargetedUpdate) if config.dnf_update_targeted == TargetedPolicy::Forbid && config.dnf_update != UpdatePolicy::Off => report_call(
                    format!(
                        "`{} {}` of named packages in stage {} is forbidden by policy (dnf-update-targeted = \"forbid\"); pin the versions in the install instead",
                        call.program, call.subcommand, stage.label
                    ),
                    true,
                ),
                _ => {}
            }
            if !ins.onbuild {
                let stage = &mut stages[stage_index];
                if call.kind == Kind::Install && stage.first_install.is_none() {
                    stage.first_install = Some(call.clone());
                    if updates_here {
                        stage.updated = true;
                    }
                }
                if call.kind == Kind::FullUpdate {
                    stage.updated = true;
                }
            }
        }
        // In require mode the stage is judged at its first install.
        if config.dnf_update == UpdatePolicy::Require {
            let stage = &mut stages[stage_index];
            if let Some(install) = &stage.first_install {
                if !stage.updated && !stage.judged {
                    let line = source.line_col(install.offset).0;
                    if !source.allowed(line, &DNF_UPDATE) {
                        report.findings.push(source.finding(
                            &DNF_UPDATE,
                            path,
                            install.offset,
                            format!(
                                "stage {} installs packages (`{} {}`) without a full-system update before or in the same RUN; policy requires one (dnf-update = \"require\"): add `{} -y update &&` before the install",
                                stage.label, install.program, install.subcommand, install.program
                            ),
                        ));
                    }
                }
                stage.judged = true;
            }
        }
    }
    FileResult { report, removals }
}

fn exec_form_calls(
    ins: &dockerfile::Instruction,
    argv: &[(String, Range<usize>)],
    out: &mut Vec<PmCall>,
) -> Result<(), (usize, String)> {
    let words: Vec<shell::Word> = argv
        .iter()
        .map(|(v, span)| shell::Word { value: v.clone(), span: span.clone(), quoted: true })
        .collect();
    if let Some((p, kind, subcommand)) = classify(&words) {
        out.push(PmCall {
            kind,
            program: basename(&words[p].value).to_string(),
            subcommand,
            offset: ins.args.file_offset(words[p].span.start),
            removal: Some(ins.span.clone()),
        });
    }
    // ["sh", "-c", "script"]
    if let Some(p) = program_index(&words) {
        if SHELLS.contains(&basename(&words[p].value)) {
            if let Some(pos) = words.iter().position(|w| w.value == "-c") {
                if let Some(script) = words.get(pos + 1) {
                    let single = words.len() == pos + 2;
                    let mut inner = Vec::new();
                    shell_calls(&ins.args.slice(script.span.clone()), None, &mut inner)?;
                    // A lone `sh -c "dnf update"` is removed with its instruction.
                    let lone = single && inner.len() == 1;
                    for mut call in inner {
                        if lone {
                            call.removal = Some(ins.span.clone());
                        }
                        out.push(call);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(src: &str, config: &DockerfileConfig) -> Vec<(usize, usize)> {
        lint_text(src, "Dockerfile", config).report.findings.iter().map(|f| (f.line, f.column)).collect()
    }

    #[test]
    fn dockerfile_names() {
        for yes in [
            "Dockerfile",
            "dockerfile",
            "Dockerfile.dev",
            "gateway.Dockerfile",
            "a.dockerfile",
            "Containerfile",
            "x.Containerfile",
        ] {
            assert!(is_dockerfile(Path::new(yes)), "{yes}");
        }
        for no in
            ["dockerfile.rs", "Dockerfile.dockerignore", "Dockerfiles", "lint_dockerfiles.rs", "README.md"]
        {
            assert!(!is_dockerfile(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn classifies_update_install_and_the_rest() {
        let forbid = DockerfileConfig::default();
        assert_eq!(findings("FROM x\nRUN dnf -y --setopt tsflags=nodocs update\n", &forbid), vec![(2, 5)]);
        assert_eq!(findings("FROM x\nRUN dnf update --exclude kernel -y\n", &forbid), vec![(2, 5)]);
        assert!(findings(
            "FROM x\nRUN dnf update tzdata && yum check-update; dnf install update-motd\n",
            &forbid
        )
        .is_empty());
    }

    #[test]
    fn fix_removes_the_update_and_its_connector() {
        let forbid = DockerfileConfig::default();
        let cases = [
            ("FROM x\nRUN dnf update -y && dnf install -y git\n", "FROM x\nRUN dnf install -y git\n"),
            ("FROM x\nRUN dnf install -y git && dnf update -y\n", "FROM x\nRUN dnf install -y git\n"),
            ("FROM x\nRUN dnf update -y\nRUN true\n", "FROM x\nRUN true\n"),
            ("FROM x\nRUN a; \\\n    dnf update -y; \\\n    b\n", "FROM x\nRUN a; \\\n    b\n"),
        ];
        for (before, after) in cases {
            let result = lint_text(before, "Dockerfile", &forbid);
            assert_eq!(apply_removals(before, &result.removals), after, "fixing {before:?}");
        }
    }
}
