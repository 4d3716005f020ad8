//! The `workflows` gate: GitHub workflow files checked offline.
//!
//! - the schema: `check-jsonschema --builtin-schema vendor.github-workflows` (PyPI
//!   `check-jsonschema`, which bundles SchemaStore's github-workflow schema, so no network);
//! - every `run:` block through `shellcheck`, as the runner executes it: GitHub runs a step's
//!   script with `bash -e {0}` unless `shell:` says otherwise (GitHub's workflow syntax,
//!   `jobs.<job_id>.steps[*].shell`), so a block is checked as bash, or as sh for `shell: sh`, and
//!   skipped for the non-POSIX shells (pwsh, python, cmd, powershell). Each `${{ … }}` expression
//!   becomes a variable of the same length (`${XXXX}`), as actionlint does (rule_shellcheck.go),
//!   so shellcheck still sees a word that expands, and columns stay true;
//! - `actionlint` too when it is on PATH (it cannot be installed on every machine: its PyPI
//!   package downloads a binary while it builds).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::exec;

/// The repository's GitHub workflows, as paths relative to its root, sorted.
pub(super) fn files(root: &Path) -> Vec<String> {
    let dir = root.join(".github/workflows");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .map(|n| format!(".github/workflows/{n}"))
        .collect();
    files.sort();
    files
}

/// Runs the three checks over `files` (relative to `root`); every problem is printed, and the
/// error counts them.
pub(super) fn check(sh: &Shell, root: &Path, files: &[String], log: &Path) -> Result<()> {
    let mut missing = Vec::new();
    if exec::which(sh, "check-jsonschema").is_none() {
        missing.push("check-jsonschema (`pip install check-jsonschema`)");
    }
    if exec::which(sh, "shellcheck").is_none() {
        missing.push("shellcheck (`apt-get install shellcheck`)");
    }
    if !missing.is_empty() {
        bail!("the workflows gate needs {} on PATH", missing.join(" and "));
    }
    let mut problems = 0usize;
    let schema = exec::cmd(cmd!(sh, "check-jsonschema --builtin-schema vendor.github-workflows {files...}"))
        .echo(true)
        .log(log)
        .allow_failure()
        .run()
        .context("running check-jsonschema")?;
    if !schema.success() {
        problems += 1;
    }
    for file in files {
        let path: PathBuf = root.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for block in run_blocks(&text) {
            let Some(shell) = block.shellcheck_shell() else { continue };
            let out = exec::cmd(cmd!(sh, "shellcheck --shell={shell} --format=gcc -"))
                .stdin(block.script.clone())
                .log(log)
                .allow_failure()
                .run()
                .with_context(|| format!("running shellcheck on {file}:{}", block.line))?;
            if out.success() {
                continue;
            }
            for finding in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
                // `-:LINE:COL: level: message [SCnnnn]`, LINE counted in the script.
                let mut parts = finding.splitn(4, ':');
                let (_, line, col, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
                match (line.and_then(|l| l.parse::<usize>().ok()), col, rest) {
                    (Some(n), Some(col), Some(rest)) => {
                        let at = block.workflow_line(n);
                        println!("{file}:{at}:{col}:{rest} (run: block of line {})", block.line);
                    }
                    _ => println!("{file}:{}: {finding}", block.line),
                }
                problems += 1;
            }
        }
    }
    if exec::which(sh, "actionlint").is_some() {
        let out = exec::cmd(cmd!(sh, "actionlint {files...}"))
            .echo(true)
            .log(log)
            .allow_failure()
            .run()
            .context("running actionlint")?;
        if !out.success() {
            problems += 1;
        }
    }
    if problems > 0 {
        bail!("{problems} problem(s) in {}", files.join(", "));
    }
    println!("{} workflow file(s): schema ok, every run: block passes shellcheck", files.len());
    Ok(())
}

/// One step's `run:` script as the runner gets it.
#[derive(Debug, PartialEq)]
pub(super) struct RunBlock {
    /// The line of the `run:` key (1-based).
    pub(super) line: usize,
    /// The first line of the script in the file (the key's line for a one-line value).
    pub(super) first: usize,
    /// The script, `${{ }}` expressions replaced by same-length variables.
    pub(super) script: String,
    /// `shell:` of the step, when it says one.
    pub(super) shell: Option<String>,
}

impl RunBlock {
    /// The shellcheck dialect for this step's shell, or None for a shell shellcheck cannot read.
    fn shellcheck_shell(&self) -> Option<&'static str> {
        match self.shell.as_deref().map(|s| s.split_whitespace().next().unwrap_or("")) {
            None | Some("bash") => Some("bash"),
            Some("sh") => Some("sh"),
            _ => None,
        }
    }

    /// The file line of the script's line `n` (1-based). Folded (`>`) blocks map to their
    /// first line.
    fn workflow_line(&self, n: usize) -> usize {
        self.first + n.saturating_sub(1)
    }
}

/// Every `run:` key of a workflow (or composite action) and its script. A small reader of the
/// YAML the runner reads here: a plain, single- or double-quoted one-line value, or a literal
/// (`|`) or folded (`>`) block scalar with its chomping indicator, indented past the key.
pub(super) fn run_blocks(text: &str) -> Vec<RunBlock> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let (key_indent, after_dash) = match body.strip_prefix("- ") {
            Some(rest) => (indent + 2 + (rest.len() - rest.trim_start().len()), rest.trim_start()),
            None => (indent, body),
        };
        let Some(value) = after_dash.strip_prefix("run:") else {
            i += 1;
            continue;
        };
        if !value.is_empty() && !value.starts_with([' ', '\t']) {
            i += 1;
            continue;
        }
        let value = strip_comment(value.trim());
        let shell = step_shell(&lines, i, key_indent);
        if let Some(indicator) = value.chars().next().filter(|c| *c == '|' || *c == '>') {
            let mut end = i + 1;
            let mut content = Vec::new();
            let mut block_indent = None;
            while end < lines.len() {
                let l = lines[end];
                let t = l.trim_start();
                let ind = l.len() - t.len();
                if !t.is_empty() && ind <= key_indent {
                    break;
                }
                if !t.is_empty() && block_indent.is_none() {
                    block_indent = Some(ind);
                }
                content.push(l);
                end += 1;
            }
            let cut = block_indent.unwrap_or(0);
            let texts: Vec<&str> = content.iter().map(|l| l.get(cut..).unwrap_or("")).collect();
            let script = if indicator == '>' { fold(&texts) } else { texts.join("\n") + "\n" };
            blocks.push(RunBlock { line: i + 1, first: i + 2, script: mask_expressions(&script), shell });
            i = end;
            continue;
        }
        let script = unquote(value);
        blocks.push(RunBlock { line: i + 1, first: i + 1, script: mask_expressions(&script) + "\n", shell });
        i += 1;
    }
    blocks
}

/// `shell:` among the keys of the step whose `run:` is at line `at`, indented as `key_indent`.
fn step_shell(lines: &[&str], at: usize, key_indent: usize) -> Option<String> {
    let shell_of = |t: &str| t.strip_prefix("shell:").map(|v| unquote(strip_comment(v.trim())));
    // Up to the step's `- ` line, then down to the next step or the end of the mapping.
    for l in lines[..=at].iter().rev() {
        let (ind, t, dash) = key_of(l);
        if t.is_empty() || ind > key_indent {
            continue;
        }
        if ind < key_indent {
            break;
        }
        if let Some(s) = shell_of(t) {
            return Some(s);
        }
        if dash {
            break;
        }
    }
    for l in &lines[at + 1..] {
        let (ind, t, dash) = key_of(l);
        if t.is_empty() || ind > key_indent {
            continue;
        }
        if ind < key_indent || dash {
            break;
        }
        if let Some(s) = shell_of(t) {
            return Some(s);
        }
    }
    None
}

/// A line's key indentation, its text from the key on, and whether it starts a sequence item.
fn key_of(l: &str) -> (usize, &str, bool) {
    let t = l.trim_start();
    let ind = l.len() - t.len();
    match t.strip_prefix("- ") {
        Some(rest) => (ind + 2 + (rest.len() - rest.trim_start().len()), rest.trim_start(), true),
        None => (ind, t, false),
    }
}

/// A plain value's trailing ` # comment`.
fn strip_comment(value: &str) -> &str {
    if value.starts_with(['"', '\'']) {
        return value;
    }
    value.find(" #").map_or(value, |at| value[..at].trim_end())
}

/// A one-line scalar's text: single quotes double `''`; double quotes take backslash escapes.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                },
                (c, false) => out.push(c),
            }
        }
        return out;
    }
    value.to_string()
}

/// YAML folding of a `>` block: lines joined by a space, a blank line a newline, more-indented
/// lines kept as they are.
fn fold(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut previous_plain = false;
    for line in lines {
        let plain = !line.is_empty() && !line.starts_with([' ', '\t']);
        if line.is_empty() {
            out.push('\n');
            previous_plain = false;
            continue;
        }
        if previous_plain && plain {
            out.push(' ');
        } else if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(line);
        previous_plain = plain;
    }
    out.push('\n');
    out
}

/// Each `${{ … }}` as `${XX…}` of the same length (at least `${X}`): a word that expands, as the
/// runner's substitution does, so quoting mistakes around it are still seen.
fn mask_expressions(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find("${{") {
        let Some(len) = rest[start..].find("}}") else { break };
        out.push_str(&rest[..start]);
        let width = rest[start..start + len + 2].chars().count();
        out.push_str("${");
        out.push_str(&"X".repeat(width.saturating_sub(3).max(1)));
        out.push('}');
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_blocks_are_read_as_the_runner_reads_them() {
        let wf = "jobs:\n  a:\n    steps:\n      - uses: actions/checkout@v4\n      - name: one\n        run: cargo xtask ci # the gates\n      - run: |\n          echo \"${{ matrix.shard }}\"\n          make test\n        shell: bash\n      - name: folded\n        run: >-\n          cargo xtask e2e\n          --parallel\n      - run: 'echo ''quoted'''\n      - run: Write-Host hi\n        shell: pwsh\n";
        let blocks = run_blocks(wf);
        assert_eq!(blocks.len(), 5, "{blocks:#?}");
        assert_eq!((blocks[0].line, blocks[0].script.as_str()), (6, "cargo xtask ci\n"));
        assert_eq!(blocks[1].script, "echo \"${XXXXXXXXXXXXXXXX}\"\nmake test\n");
        assert_eq!("${{ matrix.shard }}".len(), "${XXXXXXXXXXXXXXXX}".len(), "same width");
        assert_eq!((blocks[1].line, blocks[1].first, blocks[1].shell.as_deref()), (7, 8, Some("bash")));
        assert_eq!(blocks[2].script, "cargo xtask e2e --parallel\n");
        assert_eq!(blocks[3].script, "echo 'quoted'\n");
        assert_eq!(blocks[4].shell.as_deref(), Some("pwsh"));
        assert_eq!(blocks[4].shellcheck_shell(), None, "pwsh is not shell");
        assert_eq!(blocks[0].shellcheck_shell(), Some("bash"), "the runner's default shell");
    }

    #[test]
    fn a_shell_key_belongs_to_its_own_step_only() {
        let wf =
            "steps:\n  - run: echo a\n    shell: sh\n  - run: echo b\n  - shell: python\n    run: print(1)\n";
        let shells: Vec<Option<String>> = run_blocks(wf).into_iter().map(|b| b.shell).collect();
        assert_eq!(shells, [Some("sh".into()), None, Some("python".into())]);
    }
}
