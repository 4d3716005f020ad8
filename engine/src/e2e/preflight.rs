//! Preflight: before the first build, every tool the definition needs is there, new enough, and
//! the Docker engine answers. A missing tool costs a second, not a five-minute build.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use super::actions::Action;
use super::definition::Definition;
use crate::exec;
use crate::tools::{self, Tool};

/// The tools `def` needs, in the order they are checked.
pub(crate) fn needed(def: &Definition) -> Vec<&'static str> {
    // An existing cluster needs no kind: it is never created, loaded or deleted by us.
    let mut names = if def.existing.is_some() { vec!["kubectl"] } else { vec!["kind", "kubectl"] };
    let mut add = |n: &'static str| {
        if !names.contains(&n) {
            names.push(n);
        }
    };
    for task in &def.tasks {
        match task.action {
            Action::Build { .. } => add("docker"),
            Action::Helm { .. } => add("helm"),
            _ => {}
        }
    }
    if def.quickstart.as_ref().is_some_and(|q| q.chart.is_some()) {
        add("helm");
    }
    if def.flows.iter().any(|f| f.gitea) {
        add("git");
        add("ssh-keygen");
        add("ssh-keyscan");
    }
    names
}

/// Checks every tool `def` needs and the Docker engine; one error lists every problem.
pub(crate) fn check(sh: &Shell, def: &Definition, log: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let needed = needed(def);
    for name in &needed {
        let Some(tool) = tools::tool(name) else { continue };
        match exec::which(sh, name) {
            None => problems.push(format!("{name}: not on PATH (it {}); {}", tool.purpose, tool.install)),
            Some(path) => {
                if let Err(problem) = check_tool(sh, tool, &path, log) {
                    problems.push(problem);
                }
            }
        }
    }
    if needed.contains(&"docker") && exec::which(sh, "docker").is_some() {
        // The client alone proves nothing: the engine must answer.
        let format = "{{.ServerVersion}}";
        let info = exec::cmd(cmd!(sh, "docker info --format {format}"))
            .timeout(Duration::from_secs(20))
            .log(log)
            .run();
        if let Err(e) = info {
            let said =
                e.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
            problems.push(format!(
                "the Docker engine does not answer (`docker info`: {said}); start it (`sudo systemctl start docker`) or check DOCKER_HOST"
            ));
        }
    }
    if exec::cancelled() {
        bail!("interrupted during preflight");
    }
    if !problems.is_empty() {
        bail!(
            "preflight: {} problem(s) before any work started (`cargo xtask doctor` shows every tool):\n- {}",
            problems.len(),
            problems.join("\n- ")
        );
    }
    Ok(())
}

/// Is `tool` at `path` usable? Its version line, or what is wrong (too old, does not run).
pub(crate) fn check_tool(sh: &Shell, tool: &Tool, path: &Path, log: &Path) -> Result<String, String> {
    if tool.version_args.is_empty() {
        return Ok(path.display().to_string());
    }
    let program = path.as_os_str();
    let args = tool.version_args;
    let out =
        exec::cmd(cmd!(sh, "{program} {args...}")).timeout(Duration::from_secs(15)).log(log).run().map_err(
            |e| {
                format!(
                    "`{} {}` failed: {}",
                    tool.name,
                    args.join(" "),
                    e.to_string().lines().next().unwrap_or("")
                )
            },
        )?;
    let text = if out.stdout.trim().is_empty() { out.stderr } else { out.stdout };
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if let Some(min) = &tool.minimum {
        match tools::parse_version(&text) {
            Some((major, minor, _)) if (major, minor) >= (min.major, min.minor) => {}
            Some((major, minor, patch)) => {
                return Err(format!(
                    "{} {major}.{minor}.{patch} is older than {}.{}: {}; {}",
                    tool.name, min.major, min.minor, min.why, tool.install
                ))
            }
            None => {
                return Err(format!("cannot read a version in `{line}` (need {}.{}+)", min.major, min.minor))
            }
        }
    }
    Ok(line)
}
