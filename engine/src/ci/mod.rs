//! `cargo xtask ci`: the mandatory gates, in order, reporting every failure at the end.
//!
//! The same command in this repository and in every adopter: the gates check the repository it
//! runs in (its own Rust, its lints with its baseline, its workflows, its tests), never the
//! engine's. Which gates run and what the test gate needs on the machine come from `[ci]` of the
//! project config (`hack/lint.toml`).

mod workflows;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::lint::config::Config;
use crate::{exec, paths};

/// Run the mandatory gates: format, clippy, our lints, the CI workflows, the tests.
///
/// The gates run in this order and all of them run even when one fails; the summary at the end
/// names each failure with how to fix it. Each gate's full output is also kept in
/// target/e2e/logs/ci-<gate>.log. This is the project's test command (README, .ci/run).
///
///   fmt        cargo fmt --all -- --check (this repository's own Rust: its xtask)
///   clippy     cargo clippy --workspace --all-targets -- -D warnings
///   lint       cargo xtask lint, with the config's baseline (new findings fail)
///   workflows  .github/workflows/*.y*ml against GitHub's workflow schema (check-jsonschema
///              --builtin-schema vendor.github-workflows), every `run:` block through shellcheck,
///              and actionlint too when it is on PATH
///   test       cargo test --workspace
///
/// `[ci]` in hack/lint.toml: `gates = [...]` chooses the gates, `requires = { sshd =
/// "openssh-server" }` names what the tests need on the machine (checked before anything
/// compiles: a missing server costs a second, not a build).
///
/// Examples:
///   cargo xtask ci
///   cargo xtask ci --gate fmt --gate clippy
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run only these gates (repeatable): fmt, clippy, lint, workflows, test
    #[arg(long = "gate", value_parser = ["fmt", "clippy", "lint", "workflows", "test"])]
    pub(crate) gates: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Fmt,
    Clippy,
    Lint,
    Workflows,
    Test,
}

impl Gate {
    /// In the order they run.
    const ALL: [Gate; 5] = [Gate::Fmt, Gate::Clippy, Gate::Lint, Gate::Workflows, Gate::Test];

    fn name(self) -> &'static str {
        match self {
            Gate::Fmt => "fmt",
            Gate::Clippy => "clippy",
            Gate::Lint => "lint",
            Gate::Workflows => "workflows",
            Gate::Test => "test",
        }
    }

    fn by_name(name: &str) -> Option<Gate> {
        Gate::ALL.into_iter().find(|g| g.name() == name)
    }

    fn fix(self) -> &'static str {
        match self {
            Gate::Fmt => "run `cargo fmt --all` and commit the result",
            Gate::Clippy => "fix the warnings above (`cargo clippy --all-targets --fix` handles some)",
            Gate::Lint => {
                "fix the findings above, or suppress one with a comment `xtask-lint: allow(<rule>)` saying why"
            }
            Gate::Workflows => "fix what the schema check and shellcheck say above (each names its file and line)",
            Gate::Test => "see the failures above; rerun one with `cargo test <test name>`",
        }
    }
}

/// The programs of `requires` that `present` does not find, as one instruction line; None when
/// all are there.
fn missing_prerequisites(
    requires: &BTreeMap<String, String>,
    present: impl Fn(&str) -> bool,
) -> Option<String> {
    let missing: Vec<(&String, &String)> = requires.iter().filter(|(program, _)| !present(program)).collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, package)| package.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    Some(format!(
        "the tests need {} on this machine: install with `apt-get install {}` (Debian/Ubuntu; `[ci] requires` in the project config lists them), then rerun `cargo xtask ci`",
        names.join(", "),
        packages.join(" ")
    ))
}

/// `program` on PATH, or in the sbin directories a non-root PATH may lack (sshd).
fn installed(sh: &Shell, program: &str) -> bool {
    exec::which(sh, program).is_some()
        || ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"]
            .iter()
            .any(|dir| std::path::Path::new(dir).join(program).is_file())
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let root = paths::project_root();
        let _root = sh.push_dir(&root);
        let config = Config::load(None)?;
        let configured: Vec<Gate> = match &config.ci.gates {
            None => Gate::ALL.to_vec(),
            Some(names) => {
                let mut gates = Vec::new();
                for name in names {
                    let gate = Gate::by_name(name).ok_or_else(|| {
                        crate::usage::usage(format!(
                            "{}: [ci] gates names no gate `{name}` (gates: fmt, clippy, lint, workflows, test)",
                            config.path_shown()
                        ))
                    })?;
                    gates.push(gate);
                }
                gates
            }
        };
        let chosen: Vec<Gate> = if self.gates.is_empty() {
            configured
        } else {
            Gate::ALL.into_iter().filter(|g| self.gates.iter().any(|n| n == g.name())).collect()
        };
        if chosen.contains(&Gate::Test) {
            if let Some(instruction) = missing_prerequisites(&config.ci.requires, |p| installed(sh, p)) {
                eprintln!("error: {instruction}");
                return Ok(2);
            }
        }
        let cargo = sh.var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut results: Vec<(Gate, Duration, Option<String>)> = Vec::new();
        let mut skipped: Vec<(Gate, String)> = Vec::new();
        for gate in chosen {
            if exec::cancelled() {
                break;
            }
            let log = paths::logs_dir().join(format!("ci-{}.log", gate.name()));
            let files = workflows::files(&root);
            if gate == Gate::Workflows && files.is_empty() {
                skipped.push((gate, "no workflow in .github/workflows/".into()));
                continue;
            }
            eprintln!("\n::group::{}", gate.name());
            let start = Instant::now();
            let outcome: Result<()> = match gate {
                Gate::Fmt => run(cmd!(sh, "{cargo} fmt --all -- --check"), &log),
                Gate::Clippy => {
                    run(cmd!(sh, "{cargo} clippy --workspace --all-targets --quiet -- -D warnings"), &log)
                }
                Gate::Lint => {
                    let xtask = std::env::current_exe().context("locating the xtask binary")?;
                    run(cmd!(sh, "{xtask} lint"), &log)
                }
                Gate::Workflows => workflows::check(sh, &root, &files, &log),
                Gate::Test => run(cmd!(sh, "{cargo} test --workspace"), &log),
            };
            eprintln!("::endgroup::");
            results.push((gate, start.elapsed(), outcome.err().map(|e| first_line(&format!("{e:#}")))));
        }

        println!("\n{:9} {:>8}  RESULT", "GATE", "TIME");
        for (gate, time, error) in &results {
            let verdict = if error.is_some() { "FAILED" } else { "ok" };
            println!("{:9} {:>7.1}s  {verdict}", gate.name(), time.as_secs_f64());
        }
        for (gate, why) in &skipped {
            println!("{:9} {:>8}  skipped: {why}", gate.name(), "-");
        }
        let failed: Vec<_> = results.iter().filter(|(_, _, e)| e.is_some()).collect();
        if exec::cancelled() {
            return Ok(130);
        }
        if failed.is_empty() {
            if !self.gates.is_empty() && !skipped.is_empty() {
                // Asked for by name and not run: that is no pass.
                println!("\n{} asked-for gate(s) could not run", skipped.len());
                return Ok(2);
            }
            let note =
                if skipped.is_empty() { String::new() } else { format!(" ({} skipped)", skipped.len()) };
            println!("\nall {} gates passed{note}", results.len());
            return Ok(0);
        }
        println!("\n{} of {} gates failed:", failed.len(), results.len());
        for (gate, _, error) in failed {
            println!("- {}: {}\n  fix: {}", gate.name(), error.as_deref().unwrap_or(""), gate.fix());
        }
        Ok(1)
    }
}

/// One gate command, its output shown and logged.
fn run(call: xshell::Cmd<'_>, log: &std::path::Path) -> Result<()> {
    exec::cmd(call).echo(true).log(log).run()?;
    Ok(())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::missing_prerequisites;
    use std::collections::BTreeMap;

    #[test]
    fn missing_prerequisites_are_named_with_the_packages_to_install() {
        let requires: BTreeMap<String, String> = [
            ("sshd", "openssh-server"),
            ("prometheus", "prometheus"),
            ("ssh-keygen", "openssh-client"),
            ("ssh-keyscan", "openssh-client"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(missing_prerequisites(&requires, |_| true), None);
        assert_eq!(missing_prerequisites(&BTreeMap::new(), |_| false), None, "nothing required");
        let line =
            missing_prerequisites(&requires, |p| !p.contains("sshd") && !p.contains("prometheus")).unwrap();
        assert!(line.contains("prometheus, sshd"), "{line}");
        assert!(line.contains("apt-get install openssh-server prometheus"), "{line}");
        let line = missing_prerequisites(&requires, |p| !p.starts_with("ssh-key")).unwrap();
        assert!(line.contains("apt-get install openssh-client`"), "one package for both: {line}");
    }
}
