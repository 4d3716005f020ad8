//! `cargo xtask ci`: the mandatory gates, in order, reporting every failure at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{exec, paths};

/// Run the mandatory gates: format, clippy, our lints, the tests.
///
/// The gates run in this order and all of them run even when one fails; the summary at the end
/// names each failure with how to fix it. Each gate's full output is also kept in
/// target/e2e/logs/ci-<gate>.log. This is the project's test command (README, .ci/run).
///
/// Examples:
///   cargo xtask ci
///   cargo xtask ci --gate fmt --gate clippy
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run only these gates (repeatable): fmt, clippy, lint, test
    #[arg(long = "gate", value_parser = ["fmt", "clippy", "lint", "test"])]
    pub gates: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
enum Gate {
    Fmt,
    Clippy,
    Lint,
    Test,
}

impl Gate {
    /// In the order they run.
    const ALL: [Gate; 4] = [Gate::Fmt, Gate::Clippy, Gate::Lint, Gate::Test];

    fn name(self) -> &'static str {
        match self {
            Gate::Fmt => "fmt",
            Gate::Clippy => "clippy",
            Gate::Lint => "lint",
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
            Gate::Test => "see the failures above; rerun one with `cargo test -p xtask <test name>`",
        }
    }
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let _root = sh.push_dir(paths::project_root());
        let cargo = sh.var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut results: Vec<(Gate, Duration, Option<String>)> = Vec::new();
        for gate in Gate::ALL {
            if !self.gates.is_empty() && !self.gates.iter().any(|g| g == gate.name()) {
                continue;
            }
            if exec::cancelled() {
                break;
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
        let failed: Vec<_> = results.iter().filter(|(_, _, e)| e.is_some()).collect();
        if exec::cancelled() {
            return Ok(130);
        }
        if failed.is_empty() {
            println!("\nall {} gates passed", results.len());
            return Ok(0);
        }
        println!("\n{} of {} gates failed:", failed.len(), results.len());
        for (gate, _, error) in failed {
            println!("- {}: {}\n  fix: {}", gate.name(), error.as_deref().unwrap_or(""), gate.fix());
        }
        Ok(1)
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}
