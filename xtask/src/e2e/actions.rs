//! What the setup graph's tasks do: docker builds, the kind cluster, image loads, helm and
//! manifest deploys, plain commands. The pipeline engine schedules them; this module is the job
//! function it is handed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use xshell::{cmd, Shell};

use super::kube::{helm_args, kubectl_args};
use super::run_context::RunContext;
use crate::exec;
use crate::pipeline::{Job, Task};

/// A task of the setup graph.
pub(crate) type SetupTask = Task<Action>;

/// What a task does.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Optional prebuild commands, then `docker build`.
    Build {
        tag: String,
        dockerfile: PathBuf,
        context: PathBuf,
        build_args: Vec<(String, String)>,
        prebuild: Vec<Vec<String>>,
        prebuild_env: Vec<(String, String)>,
    },
    /// Reuse the kind cluster if it exists, else create it.
    Cluster { name: String, config: Option<PathBuf>, wait: Duration },
    /// `kind load docker-image`, falling back to `docker save` + `kind load image-archive` (the
    /// containerd image store breaks the former).
    Load { tag: String, cluster: String },
    /// `helm upgrade --install --wait`.
    Helm {
        release: String,
        chart: String,
        repo: Option<String>,
        version: Option<String>,
        namespace: String,
        values: Vec<PathBuf>,
        set: Vec<(String, String)>,
        timeout: Duration,
    },
    /// `kubectl apply` of manifests, then `kubectl wait`s.
    Manifests { files: Vec<PathBuf>, namespace: Option<String>, waits: Vec<Wait> },
    /// A plain command (benchmarks, custom steps).
    Command(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Wait {
    pub(crate) resource: String,
    pub(crate) condition: String,
    pub(crate) timeout: Duration,
}

/// What every command of a setup run gets: the run's environment and the working directory.
pub(crate) struct Env {
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    /// The kube context every kubectl/helm call names.
    pub(crate) kube_context: String,
}

impl Env {
    /// The run context's variables (and the shell's PATH) for every command, from `cwd`.
    pub(crate) fn for_run(sh: &Shell, ctx: &RunContext, cwd: &Path) -> Env {
        let mut vars: Vec<(String, String)> =
            ctx.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Ok(path) = sh.var("PATH") {
            vars.push(("PATH".into(), path));
        }
        Env { vars, cwd: cwd.to_path_buf(), kube_context: ctx.kube_context.clone() }
    }
}

/// Runs one attempt of a task's action.
pub(crate) fn run(job: &Job<'_, Action>, env: &Env) -> Result<()> {
    let task = job.task;
    let log = job.log;
    let sh = Shell::new()?;
    sh.change_dir(&env.cwd);
    for (k, v) in &env.vars {
        sh.set_var(k, v);
    }
    let call = |c: xshell::Cmd<'_>| -> Result<exec::Output> {
        let left = job.remaining();
        if left.is_zero() {
            bail!("task `{}` timed out after {:.0}s", task.id, task.timeout.as_secs_f64());
        }
        Ok(exec::cmd(c).log(log).timeout(left).cancel_token(job.cancel).dry_run(job.dry_run).run()?)
    };
    match &task.action {
        Action::Build { tag, dockerfile, context, build_args, prebuild, prebuild_env } => {
            for argv in prebuild {
                let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty prebuild command"))?;
                let _env: Vec<_> = prebuild_env.iter().map(|(k, v)| sh.push_env(k, v)).collect();
                call(cmd!(sh, "{program} {args...}"))?;
            }
            let args: Vec<String> =
                build_args.iter().flat_map(|(k, v)| ["--build-arg".into(), format!("{k}={v}")]).collect();
            call(cmd!(sh, "docker build -t {tag} -f {dockerfile} {args...} {context}"))?;
        }
        Action::Cluster { name, config, wait } => {
            let existing = call(cmd!(sh, "kind get clusters"))?;
            if !job.dry_run && existing.stdout.lines().any(|l| l.trim() == name) {
                job.note(&format!("=== cluster {name} exists: reused"));
            } else {
                let config: Vec<String> =
                    config.iter().flat_map(|c| ["--config".into(), c.display().to_string()]).collect();
                let wait = format!("{}s", wait.as_secs());
                call(cmd!(sh, "kind create cluster --name {name} {config...} --wait {wait}"))?;
            }
            // Everything after this names the cluster's context: it must be there (a reused
            // cluster whose kubeconfig entry was removed is refused before any deploy).
            if !job.dry_run {
                super::kube::require_context(&sh, &env.kube_context, job.log)?;
            }
        }
        Action::Load { tag, cluster } => {
            let direct = call(cmd!(sh, "kind load docker-image {tag} --name {cluster}"));
            if let Err(e) = direct {
                let text = format!("{e:#}");
                // The containerd image store (Docker 29's default) breaks `kind load docker-image`.
                if !(text.contains("content digest")
                    || text.contains("ctr: ")
                    || text.contains("failed to load image"))
                {
                    return Err(e);
                }
                job.note("=== kind load docker-image failed on the containerd store: falling back to an image archive");
                let archive = log.with_extension("tar");
                call(cmd!(sh, "docker save -o {archive} {tag}"))?;
                let loaded = call(cmd!(sh, "kind load image-archive {archive} --name {cluster}"));
                let _ = std::fs::remove_file(&archive);
                loaded?;
            }
        }
        Action::Helm { release, chart, repo, version, namespace, values, set, timeout } => {
            let mut source = Vec::new();
            if let Some(repo) = repo {
                source.extend(["--repo".to_string(), repo.clone()]);
            }
            if let Some(version) = version {
                source.extend(["--version".to_string(), version.clone()]);
            }
            if !values.is_empty() && !job.dry_run {
                let shown = &source;
                let defaults =
                    call(cmd!(sh, "helm show values {chart} {shown...}").args(helm_args(&env.kube_context)))?;
                check_values_keys(chart, version.as_deref(), &defaults.stdout, values)?;
            }
            let mut args = source;
            for v in values {
                args.extend(["--values".to_string(), v.display().to_string()]);
            }
            for (k, v) in set {
                args.extend(["--set".to_string(), format!("{k}={v}")]);
            }
            let timeout = format!("{}s", timeout.as_secs());
            call(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {namespace} --create-namespace --wait --timeout {timeout} {args...}").args(helm_args(&env.kube_context)))?;
        }
        Action::Manifests { files, namespace, waits } => {
            let ns: Vec<String> = namespace.iter().flat_map(|n| ["--namespace".into(), n.clone()]).collect();
            for f in files {
                let ns = &ns;
                call(
                    cmd!(sh, "kubectl apply --server-side {ns...} -f {f}")
                        .args(kubectl_args(&env.kube_context)),
                )?;
            }
            for w in waits {
                let resource = &w.resource;
                let condition = format!("--for={}", w.condition);
                let timeout = format!("--timeout={}s", w.timeout.as_secs());
                let ns = &ns;
                call(
                    cmd!(sh, "kubectl wait {ns...} {resource} {condition} {timeout}")
                        .args(kubectl_args(&env.kube_context)),
                )?;
            }
        }
        Action::Command(argv) => {
            let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
            call(cmd!(sh, "{program} {args...}"))?;
        }
    }
    Ok(())
}

/// Refuses a values file whose top-level key the chart does not have: helm ignores unknown keys
/// silently (a chart without a values schema), so a key meant for another chart version (e.g.
/// `valkey-cluster`, which the gitea chart has only from 11.0) would quietly change nothing.
fn check_values_keys(chart: &str, version: Option<&str>, defaults: &str, files: &[PathBuf]) -> Result<()> {
    let known = top_level_keys(defaults);
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for key in top_level_keys(&text) {
            if key != "global" && !known.contains(&key) {
                bail!(
                    "{}: `{key}` is not a value of chart {chart} {} (`helm show values` has no such key; helm would ignore it silently). Known keys: {}",
                    file.display(),
                    version.unwrap_or("(latest)"),
                    known.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Top-level keys of a block-style YAML document (`key:` at column 0).
pub(crate) fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && !l.starts_with("..."))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().trim_matches(['"', '\'']).to_string()))
        .filter(|k| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keys_the_chart_lacks_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.yaml");
        std::fs::write(&file, "# c\ngitea:\n  a: 1\n\"redis-cluster\":\n  enabled: false\n").unwrap();
        let defaults = "gitea: {}\nredis-cluster:\n  enabled: true\n";
        check_values_keys("gitea", Some("10.6.0"), defaults, std::slice::from_ref(&file)).unwrap();
        std::fs::write(&file, "gitea: {}\nvalkey-cluster:\n  enabled: false\n").unwrap();
        let err = check_values_keys("gitea", Some("10.6.0"), defaults, &[file]).unwrap_err().to_string();
        assert!(err.contains("v.yaml: `valkey-cluster` is not a value of chart gitea 10.6.0"), "{err}");
    }
}
