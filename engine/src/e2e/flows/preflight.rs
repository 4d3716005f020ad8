//! Preflight: before the first build, every tool the definition needs is there, new enough, and
//! the Docker engine answers. A missing tool costs a second, not a five-minute build.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::e2e::definition::Definition;
use crate::e2e::setup::actions::Action;
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

/// Checks every tool `def` needs and the Docker engine; one error lists every problem. The
/// probes (each tool's version, `docker info`) run at once: a no-change re-run waits for the
/// slowest, not for their sum.
pub(crate) fn check(sh: &Shell, def: &Definition, log: &Path) -> Result<()> {
    let needed = needed(def);
    let path_var = sh.var("PATH").ok();
    // Each probe on its own thread, with its own shell (a Shell is not shared across threads)
    // seeing the caller's PATH; results are kept in the tools' order.
    let shell = || -> Option<Shell> {
        let probe = Shell::new().ok()?;
        if let Some(p) = &path_var {
            probe.set_var("PATH", p);
        }
        Some(probe)
    };
    let docker = needed.contains(&"docker") && exec::which(sh, "docker").is_some();
    let (mut problems, engine): (Vec<String>, Vec<String>) = std::thread::scope(|scope| {
        let tools: Vec<_> = needed
            .iter()
            .filter_map(|name| tools::tool(name).map(|tool| (name, tool)))
            .map(|(name, tool)| {
                let path = exec::which(sh, name);
                let shell = &shell;
                scope.spawn(move || match path {
                    None => Some(format!("{name}: not on PATH (it {}); {}", tool.purpose, tool.install)),
                    Some(path) => match shell() {
                        None => Some(format!("{name}: cannot start a shell to ask its version")),
                        Some(probe) => check_tool(&probe, tool, &path, log).err(),
                    },
                })
            })
            .collect();
        let engine = docker.then(|| {
            let shell = &shell;
            scope.spawn(move || shell().map(|probe| engine_check(&probe, def, log)).unwrap_or_default())
        });
        let problems = tools.into_iter().filter_map(|h| h.join().ok().flatten()).collect();
        (problems, engine.and_then(|h| h.join().ok()).unwrap_or_default())
    });
    problems.extend(engine);
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

/// The Docker engine answers, and (for kind) can have images loaded: what is wrong, if anything.
fn engine_check(sh: &Shell, def: &Definition, log: &Path) -> Vec<String> {
    // The client alone proves nothing: the engine must answer. Its version and image store say
    // whether images can be loaded into kind (see `engine_problem`).
    let format = "{{.ServerVersion}} {{.DriverStatus}}";
    let info =
        exec::cmd(cmd!(sh, "docker info --format {format}")).timeout(Duration::from_secs(20)).log(log).run();
    match info {
        Err(e) => {
            let said =
                e.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
            vec![format!(
                "the Docker engine does not answer (`docker info`: {said}); start it (`sudo systemctl start docker`) or check DOCKER_HOST"
            )]
        }
        Ok(out) if def.existing.is_none() => engine_problem(&out.stdout).into_iter().collect(),
        Ok(_) => Vec::new(),
    }
}

/// What keeps this Docker engine from loading images into kind, from `docker info --format
/// '{{.ServerVersion}} {{.DriverStatus}}'`; `None` when nothing does.
///
/// On the containerd image store (the engine reports its `DriverStatus` as `[[driver-type
/// io.containerd.snapshotter.v1]]`; a classic driver reports `[[Backing Filesystem extfs] …]`),
/// `kind load docker-image` fails (kind#3795) and setup falls back to `docker image save
/// --platform`, which needs engine API 1.48, Docker 28 (docs.docker.com `docker image save`:
/// `--platform` is API 1.48+; the client 28.2.2 against a 20.10 engine says `"--platform"
/// requires API version 1.48, but the Docker daemon API version is 1.41`). Docker 24 to 27
/// offer that store without the flag.
pub(crate) fn engine_problem(info: &str) -> Option<String> {
    let line = info.lines().find(|l| !l.trim().is_empty())?.trim();
    let (version, drivers) = line.split_once(' ').unwrap_or((line, ""));
    if !drivers.contains("io.containerd.snapshotter") {
        return None;
    }
    match tools::parse_version(version) {
        Some((major, _, _)) if major >= 28 => None,
        _ => Some(format!(
            "the Docker engine {version} keeps images in the containerd image store, where `kind load docker-image` fails and the way around it, `docker image save --platform`, needs Docker 28 (engine API 1.48); upgrade the Docker engine to 28 or later, or switch the containerd image store off (`\"features\": {{\"containerd-snapshotter\": false}}` in /etc/docker/daemon.json, then restart dockerd)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::engine_problem;

    #[test]
    fn only_a_containerd_store_engine_older_than_28_is_a_problem() {
        let containerd = "[[driver-type io.containerd.snapshotter.v1]]";
        for old in ["24.0.7", "27.5.1", "v27.0.0-rc.1", "garbage"] {
            let problem = engine_problem(&format!("{old} {containerd}\n"));
            assert!(problem.as_deref().is_some_and(|p| p.contains(old) && p.contains("Docker 28")), "{old}");
        }
        for fine in [
            format!("28.0.0 {containerd}"),
            format!("29.1.3 {containerd}"),
            "27.5.1 [[Backing Filesystem extfs]]".into(),
            "20.10.24+dfsg1 []".into(),
        ] {
            assert_eq!(engine_problem(&fine), None, "{fine}");
        }
        for odd in ["", "\n\n", " ", "27", "\u{0}io.containerd.snapshotter"] {
            let _ = engine_problem(odd);
        }
    }
}
