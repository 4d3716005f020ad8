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
    /// Optional prebuild commands, then `docker build`; or, when `E2E_IMAGE_<NAME>` names a
    /// prebuilt image (CI built it in an earlier job), that image tagged as `tag`.
    Build {
        /// The image's name in the definition (`demo` reads `E2E_IMAGE_DEMO`).
        name: String,
        tag: String,
        dockerfile: PathBuf,
        context: PathBuf,
        build_args: Vec<(String, String)>,
        prebuild: Vec<Vec<String>>,
        prebuild_env: Vec<(String, String)>,
        /// Environment of the prebuild commands and `docker build` (`DOCKER_BUILDKIT`, ...).
        env: Vec<(String, String)>,
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
        /// `kubectl wait`s after the release is up.
        waits: Vec<Wait>,
    },
    /// `kubectl apply` of manifests (files or http(s) URLs), then `kubectl wait`s.
    Manifests { files: Vec<PathBuf>, namespace: Option<String>, waits: Vec<Wait> },
    /// A plain command (benchmarks, custom steps), then `kubectl wait`s.
    Command { argv: Vec<String>, namespace: Option<String>, waits: Vec<Wait> },
}

#[derive(Debug, Clone)]
pub(crate) struct Wait {
    pub(crate) resource: String,
    pub(crate) condition: String,
    /// The wait's own namespace; else the deploy's.
    pub(crate) namespace: Option<String>,
    pub(crate) timeout: Duration,
}

/// What every command of a setup run gets: the run's environment and the working directory.
pub(crate) struct Env {
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    /// The kube context every kubectl/helm call names.
    pub(crate) kube_context: String,
    /// The Docker engine's platform, asked once per setup run (every build and load needs it).
    pub(crate) platform: std::sync::OnceLock<String>,
}

impl Env {
    /// The run context's variables (and the shell's PATH) for every command, from `cwd`.
    pub(crate) fn for_run(sh: &Shell, ctx: &RunContext, cwd: &Path) -> Env {
        let mut vars: Vec<(String, String)> =
            ctx.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Ok(path) = sh.var("PATH") {
            vars.push(("PATH".into(), path));
        }
        // Prebuilt images handed in by CI (`E2E_IMAGE_<NAME>=<ref>`).
        for (k, v) in process_env() {
            if k.starts_with("E2E_IMAGE_") {
                vars.push((k, v));
            }
        }
        Env {
            vars,
            cwd: cwd.to_path_buf(),
            kube_context: ctx.kube_context.clone(),
            platform: std::sync::OnceLock::new(),
        }
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
        Action::Build {
            name,
            tag,
            dockerfile,
            context,
            build_args,
            prebuild,
            prebuild_env,
            env: image_env,
        } => {
            if let Some(prebuilt) = prebuilt_image(env, name) {
                // Handed in: it must be in the local engine; the definition's tag then names it,
                // so loads and manifests need no change.
                job.note(&format!(
                    "=== {} names a prebuilt image: {prebuilt}; not built",
                    prebuilt_var(name)
                ));
                call(cmd!(sh, "docker image inspect {prebuilt}"))
                    .with_context(|| format!("{}={prebuilt}: no such image in the local Docker engine (docker load or pull it first)", prebuilt_var(name)))?;
                call(cmd!(sh, "docker tag {prebuilt} {tag}"))?;
                return Ok(());
            }
            // Built for the kind node's platform: the node is a container of this Docker engine.
            let platform = node_platform(&call, job.dry_run, &env.platform)?;
            let node = [
                ("NODE_PLATFORM".to_string(), platform.clone()),
                ("NODE_RUST_TARGET".into(), rust_target(&platform)?),
            ];
            let vars = known_vars(env, &node);
            // This task's own Shell: the image's env reaches only its commands.
            for (k, v) in image_env {
                sh.set_var(k, expand_strict(v, &vars).with_context(|| format!("image {name}: env {k}"))?);
            }
            for argv in prebuild {
                let argv = argv.iter().map(|a| expand_strict(a, &vars)).collect::<Result<Vec<_>>>()?;
                let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty prebuild command"))?;
                let _env: Vec<_> = prebuild_env.iter().map(|(k, v)| sh.push_env(k, v)).collect();
                call(cmd!(sh, "{program} {args...}"))?;
            }
            let mut args = Vec::new();
            for (k, v) in build_args {
                args.extend(["--build-arg".to_string(), format!("{k}={}", expand_strict(v, &vars)?)]);
            }
            call(cmd!(
                sh,
                "docker build -t {tag} --platform {platform} -f {dockerfile} {args...} {context}"
            ))?;
        }
        Action::Cluster { name, config, wait } => {
            let existing = call(cmd!(sh, "kind get clusters"))?;
            if !job.dry_run && existing.stdout.lines().any(|l| l.trim() == name) {
                job.note(&format!("=== cluster {name} exists: reused"));
            } else {
                let config: Vec<String> = match config {
                    Some(c) => vec![
                        "--config".into(),
                        render_kind_config(c, env, job.dry_run)?.display().to_string(),
                    ],
                    None => Vec::new(),
                };
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
                // `kind load docker-image` is `docker save` + `ctr images import --all-platforms`,
                // and `kind load image-archive` imports the same way, so an archive saved without a
                // platform fails alike on the containerd image store; saving the node's platform
                // alone is the documented way out (kind pkg/cmd/kind/load/docker-image, nodeutils;
                // kind#3795, PR #4247).
                job.note("=== kind load docker-image failed on the containerd store: saving the node's platform to an archive");
                let platform = node_platform(&call, job.dry_run, &env.platform)?;
                let archive = log.with_extension("tar");
                call(cmd!(sh, "docker image save --platform {platform} -o {archive} {tag}"))?;
                let loaded = call(cmd!(sh, "kind load image-archive {archive} --name {cluster}"));
                let _ = std::fs::remove_file(&archive);
                loaded?;
            }
        }
        Action::Helm { release, chart, repo, version, namespace, values, set, timeout, waits } => {
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
            let vars = known_vars(env, &[]);
            for (k, v) in set {
                let v = expand_strict(v, &vars).with_context(|| format!("helm set {k}"))?;
                args.extend(["--set".to_string(), format!("{k}={v}")]);
            }
            let timeout = format!("{}s", timeout.as_secs());
            call(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {namespace} --create-namespace --wait --timeout {timeout} {args...}").args(helm_args(&env.kube_context)))?;
            wait_for(&call, env, Some(namespace), waits)?;
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
            wait_for(&call, env, namespace.as_deref(), waits)?;
        }
        Action::Command { argv, namespace, waits } => {
            let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
            call(cmd!(sh, "{program} {args...}"))?;
            wait_for(&call, env, namespace.as_deref(), waits)?;
        }
    }
    Ok(())
}

/// The kind config as a template: `${REPO_ROOT}` (the repository, for `extraMounts` host paths,
/// what Makefiles substitute as HOST_PROJECT_PATH) and the environment's variables are expanded
/// (an unknown one is an error) into `target/e2e/kind/<file>`; a config without `${` is used as
/// it is.
fn render_kind_config(config: &Path, env: &Env, dry_run: bool) -> Result<PathBuf> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("reading the kind config {}", config.display()))?;
    if !text.contains("${") {
        return Ok(config.to_path_buf());
    }
    let vars = known_vars(env, &[("REPO_ROOT".into(), env.cwd.display().to_string())]);
    let rendered =
        expand_strict(&text, &vars).with_context(|| format!("the kind config {}", config.display()))?;
    let dir = crate::paths::state_root().join("kind");
    let name =
        config.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "kind.yaml".into());
    let out = dir.join(name);
    if !dry_run {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&out, rendered).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(out)
}

/// `E2E_IMAGE_<NAME>`: `demo-probe` → `E2E_IMAGE_DEMO_PROBE`.
pub(crate) fn prebuilt_var(name: &str) -> String {
    format!("E2E_IMAGE_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The prebuilt image handed in for `name`, if any (from the run's environment).
fn prebuilt_image(env: &Env, name: &str) -> Option<String> {
    let var = prebuilt_var(name);
    env.vars.iter().rev().find(|(k, _)| *k == var).map(|(_, v)| v.clone()).filter(|v| !v.trim().is_empty())
}

/// A deploy's `wait`s, whatever kind of deploy it is: `kubectl wait` each, in the deploy's
/// namespace, on the cluster's context.
fn wait_for(
    call: &dyn Fn(xshell::Cmd<'_>) -> Result<exec::Output>,
    env: &Env,
    namespace: Option<&str>,
    waits: &[Wait],
) -> Result<()> {
    let sh = Shell::new()?;
    for w in waits {
        let ns: Vec<String> = w
            .namespace
            .as_deref()
            .or(namespace)
            .iter()
            .flat_map(|n| ["--namespace".to_string(), n.to_string()])
            .collect();
        let resource = &w.resource;
        let condition = format!("--for={}", w.condition);
        let timeout = format!("--timeout={}s", w.timeout.as_secs());
        let ns = &ns;
        call(
            cmd!(sh, "kubectl wait {ns...} {resource} {condition} {timeout}")
                .args(kubectl_args(&env.kube_context)),
        )?;
    }
    Ok(())
}

/// The platform (`linux/amd64`) of the Docker engine's host, where kind runs its nodes.
fn node_platform(
    call: &dyn Fn(xshell::Cmd<'_>) -> Result<exec::Output>,
    dry_run: bool,
    known: &std::sync::OnceLock<String>,
) -> Result<String> {
    if dry_run {
        return Ok("linux/amd64".into()); // the plan shows a plausible platform; nothing runs
    }
    if let Some(platform) = known.get() {
        return Ok(platform.clone());
    }
    let sh = Shell::new()?;
    let format = "{{.Server.Os}}/{{.Server.Arch}}";
    let out = call(cmd!(sh, "docker version --format {format}"))?;
    let platform = out.stdout.trim().to_string();
    if !platform.contains('/') {
        bail!("cannot tell the Docker engine's platform: `docker version` printed {platform:?}");
    }
    Ok(known.get_or_init(|| platform).clone())
}

/// The Rust target a static Linux binary for `platform` is built with.
pub(crate) fn rust_target(platform: &str) -> Result<String> {
    let arch = match platform.split('/').nth(1) {
        Some("amd64") => "x86_64",
        Some("arm64") => "aarch64",
        Some("s390x") => "s390x",
        Some("ppc64le") => "powerpc64le",
        Some("riscv64") => "riscv64gc",
        _ => bail!("no Rust target for the node platform {platform:?}"),
    };
    Ok(format!("{arch}-unknown-linux-gnu"))
}

/// The process environment as text; a variable whose name or value is not UTF-8 is left out
/// (`std::env::vars` would panic on it).
pub(crate) fn process_env() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// What `${VAR}` can name when a setup command runs: the environment, the run's variables and
/// `extra`, later ones winning.
fn known_vars(env: &Env, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars = process_env();
    vars.extend(env.vars.iter().cloned());
    vars.extend(extra.iter().cloned());
    vars
}

/// `${NAME}` replaced by its value from `vars` (the last entry of a name wins, so callers append
/// overrides); an unknown `${NAME}` is an error, never an empty string. `$${` stays a literal `${`.
pub(crate) fn expand_strict(text: &str, vars: &[(String, String)]) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        // `$${` is a literal `${` (a shell's own variable in a `sh -c` step).
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        // Only for an error: a long text (a manifest) is shown by the line that holds the variable.
        let at_abs = text.len() - rest.len() + at;
        let shown = || {
            if text.len() <= 120 {
                format!("{text:?}")
            } else {
                let line_no = text[..at_abs].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("");
                format!("line {line_no} {:?}", line.trim())
            }
        };
        let end = after.find('}').ok_or_else(|| anyhow!("unclosed `${{` in {}", shown()))?;
        let name = &after[..end];
        let value = vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v).ok_or_else(|| {
            let known: Vec<&str> = vars
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| k.starts_with("E2E_") || k.starts_with("NODE_") || vars.len() <= 12)
                .collect();
            anyhow!(
                "unknown variable ${{{name}}} in {} (known here: {}, and the environment's)",
                shown(),
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
    fn variables_expand_strictly_and_platforms_map_to_rust_targets() {
        let vars = [("NODE_RUST_TARGET".to_string(), "aarch64-unknown-linux-gnu".to_string())];
        assert_eq!(
            expand_strict("--target=${NODE_RUST_TARGET}", &vars).unwrap(),
            "--target=aarch64-unknown-linux-gnu"
        );
        assert_eq!(expand_strict("no vars", &vars).unwrap(), "no vars");
        assert_eq!(
            expand_strict("echo $${HOME} ${NODE_RUST_TARGET} $$x", &vars).unwrap(),
            format!("echo ${{HOME}} {} $$x", vars[0].1)
        );
        let err = expand_strict("${NODE_ARCH}", &vars).unwrap_err().to_string();
        assert!(err.contains("unknown variable ${NODE_ARCH}") && err.contains("NODE_RUST_TARGET"), "{err}");
        assert!(expand_strict("${NODE_RUST_TARGET", &vars).is_err());
        // The last entry of a name wins: callers append their overrides.
        let layered = [("A".to_string(), "env".to_string()), ("A".to_string(), "run".to_string())];
        assert_eq!(expand_strict("${A}", &layered).unwrap(), "run");
        assert_eq!(rust_target("linux/arm64").unwrap(), "aarch64-unknown-linux-gnu");
        assert_eq!(rust_target("linux/amd64").unwrap(), "x86_64-unknown-linux-gnu");
        assert!(rust_target("windows").is_err());
    }

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
