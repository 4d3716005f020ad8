//! What the setup graph's tasks do: docker builds, the kind cluster, image loads, helm and
//! manifest deploys, plain commands. The pipeline engine schedules them; this module is the job
//! function it is handed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use xshell::{cmd, Shell};

use crate::e2e::context::kube::{helm_args, kubectl_args};
use crate::e2e::context::RunContext;
use crate::e2e::setup::incremental::{self, DeployRecord, ImageRecord, LoadRecord, Store};
use crate::exec;
use crate::pipeline::{Job, Task};
use crate::vars::{expand_strict, process_env};

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
        /// What the prebuild commands read (globs, each with the directory it is relative to):
        /// part of the digest.
        inputs: Vec<(PathBuf, String)>,
    },
    /// Reuse the kind cluster if it exists, else create it; an existing cluster (its context) is
    /// only checked, never created.
    Cluster { name: String, config: Option<PathBuf>, wait: Duration, existing: Option<String> },
    /// `kind load docker-image`, falling back to `docker save` + `kind load image-archive` (the
    /// containerd image store breaks the former).
    /// With a `registry` (an existing cluster): `docker tag` + `docker push` there instead.
    Load { image: String, tag: String, cluster: String, registry: Option<String> },
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
    /// `template`: local files are expanded (`${IMAGE_<NAME>}`, ...) into the state dir first.
    Manifests { files: Vec<PathBuf>, namespace: Option<String>, waits: Vec<Wait>, template: bool },
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
    /// The incremental records: tasks whose work is already done say so and do nothing.
    pub(crate) store: Option<std::sync::Arc<Store>>,
    /// Tasks of this setup run that ran (not up to date): what comes after them runs too.
    pub(crate) ran: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// `setup --explain`: each task's decision (would it run, and why), and nothing run or
    /// recorded.
    pub(crate) explain: Option<std::sync::Mutex<std::collections::BTreeMap<String, (bool, String)>>>,
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
            store: None,
            ran: Default::default(),
            explain: None,
        }
    }

    /// In `--explain` mode, records the task's decision and says the caller should stop there.
    fn explained(&self, job: &Job<'_, Action>, runs: bool, why: &str) -> bool {
        let Some(decisions) = &self.explain else { return false };
        if let Ok(mut d) = decisions.lock() {
            d.insert(job.task.id.clone(), (runs, why.to_string()));
        }
        true
    }

    /// A task after one that ran (or, in `--explain` mode, would run) runs too: everything
    /// downstream of a change runs again. The cluster comes after the builds only to start late,
    /// and does not change with them.
    fn runs_after(&self, job: &Job<'_, Action>) -> Option<String> {
        if matches!(job.task.action, Action::Cluster { .. }) {
            return None;
        }
        match &self.explain {
            Some(decisions) => {
                let decisions = decisions.lock().ok()?;
                job.task.deps.iter().find(|d| decisions.get(*d).is_some_and(|(runs, _)| *runs)).cloned()
            }
            // Running, only a deploy after a deploy that ran must run for that alone: what a
            // build, load or cluster change does to a task is in its own record (image digest
            // and ID, cluster UID), and a load that ran to put the same image in place (a push
            // from another machine) changes nothing downstream.
            None => {
                let ran = self.ran.lock().ok()?;
                job.task.deps.iter().find(|d| d.starts_with("deploy:") && ran.contains(*d)).cloned()
            }
        }
    }
}

/// Runs one attempt of a task's action.
pub(crate) fn run(job: &Job<'_, Action>, env: &Env) -> Result<()> {
    let after = if env.explain.is_none() { env.runs_after(job) } else { None };
    run_task(job, env, after.as_deref())?;
    if !job.is_up_to_date() {
        if let Ok(mut ran) = env.ran.lock() {
            ran.insert(job.task.id.clone());
        }
    }
    Ok(())
}

/// One attempt; `after`: a task this one needs ran in this setup, so this one runs too.
fn run_task(job: &Job<'_, Action>, env: &Env, after: Option<&str>) -> Result<()> {
    let task = job.task;
    let log = job.log;
    let sh = Shell::new()?;
    sh.change_dir(&env.cwd);
    for (k, v) in &env.vars {
        sh.set_var(k, v);
    }
    if env.explain.is_some() {
        if let Some(dep) = env.runs_after(job) {
            env.explained(job, true, &format!("after {dep}, which runs"));
            return Ok(());
        }
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
            inputs,
        } => {
            if let Some(prebuilt) = prebuilt_image(env, name) {
                if env.explained(job, true, &format!("{} names a prebuilt image: tagged", prebuilt_var(name)))
                {
                    return Ok(());
                }
                // Handed in: it must be in the local engine; the definition's tag then names it,
                // so loads and manifests need no change.
                job.note(&format!(
                    "=== {} names a prebuilt image: {prebuilt}; not built",
                    prebuilt_var(name)
                ));
                call(cmd!(sh, "docker image inspect {prebuilt}"))
                    .with_context(|| format!("{}={prebuilt}: no such image in the local Docker engine (docker load or pull it first)", prebuilt_var(name)))?;
                let tag = match &env.store {
                    // A prebuilt image's identity is its image ID.
                    Some(store) => {
                        let id = image_id(&sh, &call, &prebuilt)?;
                        let tag = incremental::resolve_tag(tag, id.trim_start_matches("sha256:"));
                        store.update(|s| {
                            s.images.insert(
                                name.clone(),
                                ImageRecord {
                                    digest: id.clone(),
                                    tag: tag.clone(),
                                    reference: String::new(),
                                    image_id: id,
                                    inputs: Default::default(),
                                },
                            );
                        })?;
                        tag
                    }
                    None => tag.clone(),
                };
                call(cmd!(sh, "docker tag {prebuilt} {tag}"))?;
                return Ok(());
            }
            // Built for the kind node's platform: the node is a container of this Docker engine.
            let platform = node_platform(&sh, &call, job.dry_run, &env.platform)?;
            let node = [
                ("NODE_PLATFORM".to_string(), platform.clone()),
                ("NODE_RUST_TARGET".into(), rust_target(&platform)?),
            ];
            // This task's own Shell: the image's env reaches only its commands.
            let vars = known_vars(env, &node);
            let mut args = Vec::new();
            let mut scalars = vec![("platform".to_string(), platform.clone())];
            for (k, v) in build_args {
                let v = expand_strict(v, &vars)?;
                scalars.push((format!("build-arg:{k}"), v.clone()));
                args.extend(["--build-arg".to_string(), format!("{k}={v}")]);
            }
            for (i, argv) in prebuild.iter().enumerate() {
                let argv = argv.iter().map(|a| expand_strict(a, &vars)).collect::<Result<Vec<_>>>()?;
                scalars.push((format!("prebuild:{i}"), argv.join("\u{0}")));
            }
            for (k, v) in prebuild_env {
                scalars.push((format!("prebuild-env:{k}"), v.clone()));
            }
            for (k, v) in image_env {
                scalars.push((format!("env:{k}"), expand_strict(v, &vars)?));
            }
            let spec = incremental::ImageSpec {
                dockerfile: &env.cwd.join(dockerfile),
                context: &env.cwd.join(context),
                inputs,
                root: &env.cwd,
                scalars,
            };
            let store = env.store.as_ref().filter(|_| !job.dry_run);
            let mut before_prebuild = None;
            if let Some(store) = store {
                let (digest, keyed) = incremental::image_inputs(&sh, &spec, log)?;
                before_prebuild = Some((digest.clone(), keyed.clone()));
                match build_fresh(&sh, &call, store, name, tag, &digest, &keyed)? {
                    Ok(why) => {
                        if !env.explained(job, false, &why) {
                            job.up_to_date(&why);
                        }
                        return Ok(());
                    }
                    Err(why) => {
                        if env.explained(job, true, &why) {
                            return Ok(());
                        }
                        job.note(&format!("=== builds: {why}"));
                    }
                }
            }
            for (k, v) in image_env {
                sh.set_var(k, expand_strict(v, &vars).with_context(|| format!("image {name}: env {k}"))?);
            }
            for argv in prebuild {
                let argv = argv.iter().map(|a| expand_strict(a, &vars)).collect::<Result<Vec<_>>>()?;
                let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty prebuild command"))?;
                let _env: Vec<_> = prebuild_env.iter().map(|(k, v)| sh.push_env(k, v)).collect();
                call(cmd!(sh, "{program} {args...}"))?;
            }
            // The digest of what the build reads now (the prebuild's output among it): the tag
            // carries it and the record keeps it.
            let built = match store {
                Some(_) if prebuild.is_empty() => before_prebuild,
                Some(_) => Some(incremental::image_inputs(&sh, &spec, log)?),
                None => None,
            };
            let tag = match &built {
                Some((digest, _)) => incremental::resolve_tag(tag, digest),
                None => tag.clone(),
            };
            call(cmd!(
                sh,
                "docker build -t {tag} --platform {platform} -f {dockerfile} {args...} {context}"
            ))?;
            if let (Some(store), Some((digest, keyed))) = (store, built) {
                let id = image_id(&sh, &call, &tag)?;
                store.update(|s| {
                    s.images.insert(
                        name.clone(),
                        ImageRecord {
                            digest,
                            tag: tag.clone(),
                            reference: String::new(),
                            image_id: id,
                            inputs: keyed,
                        },
                    );
                })?;
            }
        }
        Action::Cluster { name: _, config: _, wait: _, existing: Some(context) } => {
            // Never created or deleted here: it must be there, and it is what it was.
            if !job.dry_run {
                crate::e2e::context::kube::require_context(&sh, context, job.log)?;
            }
            cluster_identity(&sh, &call, job, env, &format!("existing cluster {context}"), true)?;
        }
        Action::Cluster { name, config, wait, existing: None } => {
            let existing = call(cmd!(sh, "kind get clusters"))?;
            let reused = !job.dry_run && existing.stdout.lines().any(|l| l.trim() == name);
            if !reused && env.explained(job, true, &format!("cluster {name} does not exist: created")) {
                return Ok(());
            }
            if reused {
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
                crate::e2e::context::kube::require_context(&sh, &env.kube_context, job.log)?;
            }
            cluster_identity(&sh, &call, job, env, &format!("cluster {name}"), reused)?;
        }
        Action::Load { image, tag, cluster, registry } => {
            let store = env.store.as_ref().filter(|_| !job.dry_run);
            let built = store.and_then(|s| s.read(|r| r.images.get(image).cloned()));
            let tag = built.as_ref().map(|b| b.tag.clone()).unwrap_or_else(|| tag.clone());
            let key = format!("{cluster}/{image}");
            let want = store
                .and_then(|s| s.cluster_uid(&env.kube_context))
                .zip(built.as_ref().map(|b| b.image_id.clone()));
            if let (Some(store), Some((uid, id))) = (store, &want) {
                let recorded = store.read(|r| r.loads.get(&key).cloned());
                if !store.force
                    && after.is_none()
                    && recorded.as_ref()
                        == Some(&LoadRecord { cluster_uid: uid.clone(), image_id: id.clone() })
                {
                    let why = format!("{tag} ({}) is already in cluster {cluster}", short(id));
                    if !env.explained(job, false, &why) {
                        job.up_to_date(&why);
                    }
                    return Ok(());
                }
            }
            if env.explained(job, true, &format!("{tag} is not in cluster {cluster}")) {
                return Ok(());
            }
            let tag = &tag;
            if let Some(registry) = registry {
                // An existing cluster pulls from the registry: push there, and deploys name it.
                let remote = format!("{registry}/{tag}");
                call(cmd!(sh, "docker tag {tag} {remote}"))?;
                call(cmd!(sh, "docker push {remote}"))?;
                if let Some(store) = store {
                    store.update(|s| {
                        if let Some(image) = s.images.get_mut(image) {
                            image.reference = remote.clone();
                        }
                    })?;
                }
            } else {
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
                    let platform = node_platform(&sh, &call, job.dry_run, &env.platform)?;
                    let archive = log.with_extension("tar");
                    call(cmd!(sh, "docker image save --platform {platform} -o {archive} {tag}"))?;
                    let loaded = call(cmd!(sh, "kind load image-archive {archive} --name {cluster}"));
                    let _ = std::fs::remove_file(&archive);
                    loaded?;
                }
            }
            if let (Some(store), Some((uid, id))) = (store, want) {
                store.update(|s| {
                    s.loads.insert(key, LoadRecord { cluster_uid: uid, image_id: id });
                })?;
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
            let shown = source.clone();
            let mut args = source;
            for v in values {
                args.extend(["--values".to_string(), v.display().to_string()]);
            }
            let mut vars = known_vars(env, &[]);
            if job.dry_run {
                for (_, v) in set {
                    let unbuilt = unbuilt_images(v, &vars);
                    vars.extend(unbuilt);
                }
            }
            // What a variable brings into a `--set` value is escaped for helm's grammar.
            let vars = crate::e2e::setup::strvals::escaped_vars(&vars);
            for (k, v) in set {
                let v = expand_strict(v, &vars).with_context(|| format!("helm set {k}"))?;
                args.extend(["--set".to_string(), format!("{k}={v}")]);
            }
            let timeout = format!("{}s", timeout.as_secs());
            let mut keyed = deploy_inputs(job, env, waits);
            keyed.insert("helm".into(), format!("{release} {chart} {namespace} {}", args.join(" ")));
            for v in values {
                let text = std::fs::read_to_string(env.cwd.join(v))
                    .with_context(|| format!("reading {}", v.display()))?;
                keyed.insert(format!("values:{}", v.display()), text);
            }
            let fresh = deploy_fresh(job, env, after, &keyed, &|| {
                call(
                    cmd!(sh, "helm status {release} --namespace {namespace}")
                        .args(helm_args(&env.kube_context)),
                )
                .map(|_| ())
                .map_err(|_| format!("helm release {release} is missing in {namespace}"))
            })?;
            if fresh {
                return Ok(());
            }
            // Only for a deploy that runs: with a chart from a repository, `helm show values`
            // downloads the index and the chart each time (helm keeps no cache for it).
            if !values.is_empty() && !job.dry_run {
                let defaults =
                    call(cmd!(sh, "helm show values {chart} {shown...}").args(helm_args(&env.kube_context)))?;
                check_values_keys(chart, version.as_deref(), &defaults.stdout, values)?;
            }
            call(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {namespace} --create-namespace --wait --timeout {timeout} {args...}").args(helm_args(&env.kube_context)))?;
            wait_for(&call, env, Some(namespace), waits)?;
            record_deploy(job, env, &keyed)?;
        }
        Action::Manifests { files, namespace, waits, template } => {
            let ns: Vec<String> = namespace.iter().flat_map(|n| ["--namespace".into(), n.clone()]).collect();
            let mut keyed = deploy_inputs(job, env, waits);
            keyed.insert("namespace".into(), namespace.clone().unwrap_or_default());
            let mut applied = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let shown = f.display().to_string();
                if shown.starts_with("http://") || shown.starts_with("https://") {
                    // A URL: what it names is its content (a versioned release manifest).
                    keyed.insert(format!("manifest:{shown}"), String::new());
                    applied.push(f.clone());
                    continue;
                }
                let text =
                    std::fs::read_to_string(env.cwd.join(f)).with_context(|| format!("reading {shown}"))?;
                if let Some(store) = &env.store {
                    refuse_local_tags(&text, &shown, &store.read(|s| s.images.clone()))?;
                }
                if !template {
                    keyed.insert(format!("manifest:{shown}"), text);
                    applied.push(f.clone());
                    continue;
                }
                let mut vars = known_vars(env, &[]);
                if job.dry_run {
                    let unbuilt = unbuilt_images(&text, &vars);
                    vars.extend(unbuilt);
                }
                let text = expand_strict(&text, &vars).with_context(|| format!("templating {shown}"))?;
                let dir = crate::paths::state_root().join("rendered").join(task.id.replace(':', "-"));
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let out = dir.join(format!("{i}-{name}"));
                if !job.dry_run {
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
                }
                keyed.insert(format!("manifest:{shown}"), text);
                applied.push(out);
            }
            let files = &applied;
            let fresh = deploy_fresh(job, env, after, &keyed, &|| {
                for f in files {
                    let ns = &ns;
                    call(
                        cmd!(sh, "kubectl get {ns...} -f {f} --output name")
                            .args(kubectl_args(&env.kube_context)),
                    )
                    .map_err(|_| format!("objects of {} are missing", f.display()))?;
                }
                Ok(())
            })?;
            if fresh {
                return Ok(());
            }
            for f in files {
                let ns = &ns;
                call(
                    cmd!(sh, "kubectl apply --server-side {ns...} -f {f}")
                        .args(kubectl_args(&env.kube_context)),
                )?;
            }
            wait_for(&call, env, namespace.as_deref(), waits)?;
            record_deploy(job, env, &keyed)?;
        }
        Action::Command { argv, namespace, waits } => {
            if env.explained(job, true, "a command deploy always runs (what it did cannot be checked)") {
                return Ok(());
            }
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

/// Records the cluster's identity, its kube-system UID (a recreated cluster has a new one, and
/// nothing loaded or deployed into the old one counts), under its context; a cluster that existed
/// before (`reused`) and is the recorded one is up to date. In `--explain` mode it only says so.
fn cluster_identity(
    sh: &Shell,
    call: &dyn Fn(xshell::Cmd<'_>) -> Result<exec::Output>,
    job: &Job<'_, Action>,
    env: &Env,
    described: &str,
    reused: bool,
) -> Result<()> {
    let Some(store) = env.store.as_ref().filter(|_| !job.dry_run) else { return Ok(()) };
    let jsonpath = "jsonpath={.metadata.uid}";
    let uid = call(
        cmd!(sh, "kubectl get namespace kube-system --output {jsonpath}")
            .args(kubectl_args(&env.kube_context)),
    )
    .map(|o| o.stdout.trim().to_string())
    .unwrap_or_default();
    let same = !uid.is_empty() && store.cluster_uid(&env.kube_context).as_deref() == Some(uid.as_str());
    let why = if same {
        format!("{described} exists (kube-system {uid})")
    } else {
        format!("{described} exists but is not the one recorded: what was loaded and deployed is not counted")
    };
    if env.explained(job, !same, &why) {
        return Ok(());
    }
    store.update(|s| {
        s.clusters.insert(env.kube_context.clone(), uid.clone());
    })?;
    match (reused, same) {
        (true, true) => job.up_to_date(&why),
        (true, false) => job.note(&format!("=== {why}")),
        (false, _) => {}
    }
    Ok(())
}

/// The first 12 hex digits of an ID or digest.
fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}

/// The local engine's ID of an image.
fn image_id(
    sh: &Shell,
    call: &dyn Fn(xshell::Cmd<'_>) -> Result<exec::Output>,
    image: &str,
) -> Result<String> {
    let format = "{{.Id}}";
    let out = call(cmd!(sh, "docker image inspect --format {format} {image}"))?;
    Ok(out.stdout.trim().to_string())
}

/// `Ok(why)` when the image `name` is built from these inputs and in the engine with the recorded
/// ID; `Err(why)` says what makes it build.
fn build_fresh(
    sh: &Shell,
    call: &dyn Fn(xshell::Cmd<'_>) -> Result<exec::Output>,
    store: &Store,
    name: &str,
    template: &str,
    digest: &str,
    keyed: &std::collections::BTreeMap<String, String>,
) -> Result<std::result::Result<String, String>> {
    let Some(record) = store.read(|r| r.images.get(name).cloned()) else {
        return Ok(Err("no earlier build recorded".into()));
    };
    if store.force {
        return Ok(Err("--force".into()));
    }
    if record.digest != digest {
        let changed = incremental::changed_inputs(&record.inputs, keyed);
        return Ok(Err(format!("digest changed: {}", incremental::some(&changed))));
    }
    let tag = incremental::resolve_tag(template, digest);
    if tag != record.tag {
        return Ok(Err(format!("the tag changed: {} -> {tag}", record.tag)));
    }
    match image_id(sh, call, &tag) {
        Err(_) => Ok(Err(format!("{tag} is not in the Docker engine"))),
        Ok(id) if id != record.image_id => Ok(Err(format!(
            "{tag} is {} in the engine, not the {} built here",
            short(&id),
            short(&record.image_id)
        ))),
        Ok(_) => Ok(Ok(format!("digest {} unchanged; {tag} is in the engine", short(digest)))),
    }
}

/// What a deploy's digest covers besides its own definition: the images it uses (their tags and
/// content digests, through its `load:`/`build:` dependencies) and its waits.
fn deploy_inputs(
    job: &Job<'_, Action>,
    env: &Env,
    waits: &[Wait],
) -> std::collections::BTreeMap<String, String> {
    let mut keyed = std::collections::BTreeMap::new();
    if let Some(store) = &env.store {
        store.read(|records| {
            for dep in &job.task.deps {
                let image = dep.strip_prefix("load:").or_else(|| dep.strip_prefix("build:"));
                if let Some((image, record)) = image.and_then(|i| Some((i, records.images.get(i)?))) {
                    // The tag and the content digest: the same on every machine that builds the
                    // same inputs (a local image ID is not), so a shared cluster's records hold
                    // for all.
                    keyed.insert(format!("image:{image}"), format!("{} {}", record.tag, record.digest));
                }
            }
        });
    }
    for (i, w) in waits.iter().enumerate() {
        keyed.insert(format!("wait:{i}"), format!("{} {} {:?}", w.resource, w.condition, w.namespace));
    }
    keyed
}

/// Whether the deploy is up to date (and says so): recorded for this cluster with these inputs,
/// and `present` (one cheap look) agrees.
fn deploy_fresh(
    job: &Job<'_, Action>,
    env: &Env,
    after: Option<&str>,
    keyed: &std::collections::BTreeMap<String, String>,
    present: &dyn Fn() -> std::result::Result<(), String>,
) -> Result<bool> {
    let Some(store) = env.store.as_ref().filter(|_| !job.dry_run) else { return Ok(false) };
    let Some(uid) = store.cluster_uid(&env.kube_context) else {
        if env.explained(job, true, "the cluster's identity is unknown") {
            return Ok(true);
        }
        job.note("=== deploys: the cluster's identity is unknown");
        return Ok(false);
    };
    let digest = incremental::digest_of(keyed);
    let recorded = store.read(|r| r.deploys.get(&job.task.id).cloned());
    let why = match recorded {
        _ if store.force => "--force".to_string(),
        _ if after.is_some() => format!("after {}, which ran", after.unwrap_or_default()),
        None => "no earlier deploy recorded".into(),
        Some(r) if r.cluster_uid != uid => "the cluster is not the one it was deployed to".into(),
        Some(r) if r.digest != digest => "its inputs changed (chart, values, manifests or images)".into(),
        Some(_) => match present() {
            Ok(()) => {
                let why = format!("inputs {} unchanged and deployed", short(&digest));
                if !env.explained(job, false, &why) {
                    job.up_to_date(&why);
                }
                return Ok(true);
            }
            Err(drift) => format!("{drift} (changed outside the tool)"),
        },
    };
    if env.explained(job, true, &why) {
        return Ok(true);
    }
    job.note(&format!("=== deploys: {why}"));
    Ok(false)
}

/// Records a finished deploy for this cluster.
fn record_deploy(
    job: &Job<'_, Action>,
    env: &Env,
    keyed: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let Some(store) = env.store.as_ref().filter(|_| !job.dry_run) else { return Ok(()) };
    let Some(uid) = store.cluster_uid(&env.kube_context) else { return Ok(()) };
    let digest = incremental::digest_of(keyed);
    store.update(|s| {
        s.deploys.insert(job.task.id.clone(), DeployRecord { cluster_uid: uid, digest });
    })
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
    sh: &Shell,
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
    // The task's shell: its PATH and environment are the run's.
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

/// What `${VAR}` can name when a setup command runs: the environment, the run's variables and
/// `extra`, later ones winning.
fn known_vars(env: &Env, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars = process_env();
    vars.extend(env.vars.iter().cloned());
    if let Some(store) = &env.store {
        vars.extend(store.image_vars());
    }
    vars.extend(extra.iter().cloned());
    vars
}

/// An existing cluster pulls what setup pushed, `<registry>/<tag>`: a manifest that names a built
/// image by its local tag (`image: app:dev`) would be applied unchanged and fail to pull on the
/// cluster, so it is refused with the fix. `images`: what setup built (and pushed, when its
/// `reference` differs from its tag).
fn refuse_local_tags(
    text: &str,
    shown: &str,
    images: &std::collections::BTreeMap<String, crate::e2e::setup::incremental::ImageRecord>,
) -> Result<()> {
    static IMAGE_FIELD: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        // `image: x`, `- image: "x"` (YAML) or `"image": "x"` (JSON): the value up to a quote,
        // blank, comma, brace or comment.
        regex::Regex::new(r#"["']?\bimage["']?\s*:\s*["']?([^"'\s,}#]+)"#).expect("a valid regex")
    });
    for found in IMAGE_FIELD.captures_iter(text) {
        let named = &found[1];
        let Some((name, image)) =
            images.iter().find(|(_, i)| !i.reference.is_empty() && i.reference != i.tag && i.tag == named)
        else {
            continue;
        };
        let var = name.to_ascii_uppercase().replace('-', "_");
        return Err(crate::usage::usage(format!(
            "{shown} names image {named}, which setup pushed as {} for the existing cluster (it has no {named} to pull): name it ${{IMAGE_{var}}} and set `template = true` on the deploy",
            image.reference
        )));
    }
    Ok(())
}

/// For a plan (`--dry-run`): each `${IMAGE_<NAME>}` / `${IMAGE_TAG_<NAME>}` in `text` that `vars`
/// does not know yet stands for itself, as `${DIGEST}` does in a tag — the image is built (and its
/// reference known) only when setup runs. Any other unknown variable is still an error in the plan.
fn unbuilt_images(text: &str, vars: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("${IMAGE_") {
        let name = &text[at + 2..];
        let Some(end) = name.find('}') else { continue };
        let name = &name[..end];
        if !vars.iter().any(|(k, _)| k == name) && !out.iter().any(|(k, _): &(String, String)| k == name) {
            out.push((name.to_string(), format!("${{{name}}}")));
        }
    }
    out
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
    fn a_plan_shows_unbuilt_images_as_themselves_and_still_refuses_other_unknowns() {
        let vars = vec![("IMAGE_BUILT".to_string(), "built:abc".to_string())];
        let text = "${IMAGE_TAG_MY_OP} ${IMAGE_BUILT} ${IMAGE_TAG_MY_OP} ${IMAGE_X";
        let unbuilt = unbuilt_images(text, &vars);
        assert_eq!(unbuilt, vec![("IMAGE_TAG_MY_OP".to_string(), "${IMAGE_TAG_MY_OP}".to_string())]);
        let mut all = vars.clone();
        all.extend(unbuilt);
        assert_eq!(
            expand_strict("${IMAGE_TAG_MY_OP}/${IMAGE_BUILT}", &all).unwrap(),
            "${IMAGE_TAG_MY_OP}/built:abc"
        );
        assert!(unbuilt_images("${NAMESPACE}", &vars).is_empty());
        assert!(expand_strict("${NAMESPACE}", &all).is_err(), "not an image: still unknown in a plan");
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
