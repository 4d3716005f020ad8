//! `cargo xtask quickstart` (replaces run-quickstart.sh): install the system under test into one
//! run's namespace, then prove it works end to end for that run only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use crate::e2e::runs::diagnostics;

use crate::e2e::checks::runner;
use crate::e2e::context::RunContext;
use crate::e2e::definition::{self, Quickstart};
use crate::e2e::infra::gitea;
use crate::e2e::infra::metrics;
use crate::exec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A helm release per run (name carries the run id)
    Helm,
    /// A generated per-run kustomize overlay, `kubectl apply -k`
    Manifest,
}

/// Install the system under test into a run's namespace and check it end to end.
///
/// helm: release qs-<run-id> of the definition's chart, with the run label and the definition's
/// `set-string`/`values` templated with the run context (${E2E_RUN_ID}, ${E2E_GIT_REPO}, ...).
/// manifest: a kustomize overlay generated under the run's state dir (namespace, run label,
/// name suffix -<run-id>, the definition's `patches` templated the same way) over the
/// definition's base (a kustomize directory, or a file such as a rendered install.yaml), applied
/// with `kubectl apply -k`. Without a base, the chart rendered by `helm template` as helm mode
/// would install it (release qs-<run-id>, the same values): its names are already the run's, so
/// no suffix, and a patch names an object as the chart writes it (its namespace too, when the
/// chart writes one: kustomize matches a patch without one only to objects without one or in
/// `default`, api/resid/resid.go `IsNsEquals`). With `service-monitor = "<port>"`, a
/// per-run ServiceMonitor too. Then the definition's [[quickstart.check]] entries, in order
/// (rollout, crds, condition, git-file, git-no-secret, promql, apply: see `cargo xtask check`).
/// Besides the run context, definitions can name ${E2E_GIT_REPO}, ${E2E_GIT_SECRET},
/// ${E2E_GIT_SECRET_INVALID}, ${E2E_QUICKSTART_MODE} (helm or manifest) and ${E2E_NAME_SUFFIX}
/// (-<run-id> in manifest mode over a base, where the overlay suffixes every name; else empty).
/// Any failure names the check and writes the diagnostics bundle.
/// Needs `cargo xtask gitea setup` for the run first (the repository and the credentials secret).
///
/// Examples:
///   cargo xtask quickstart --mode helm --run-id k3x9q2m1ab
///   cargo xtask quickstart --mode manifest --run-id k3x9q2m1ab
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[arg(long, value_enum)]
    pub(crate) mode: Mode,
    #[arg(long)]
    pub(crate) run_id: String,
    /// The e2e definition [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let path = self.definition.clone().unwrap_or_else(definition::default_path);
        let def = definition::load(&path)?;
        let qs = def
            .quickstart
            .clone()
            .ok_or_else(|| anyhow!("{} has no [quickstart] section", path.display()))?;
        let flow = match self.mode {
            Mode::Helm => "quickstart-helm",
            Mode::Manifest => "quickstart-manifest",
        };
        let ctx = RunContext::resolve(sh, &def.request(Some(self.run_id.clone()), Some(flow)))?;
        crate::e2e::context::kube::require_context(
            sh,
            &ctx.kube_context,
            &ctx.logs_dir().join("quickstart.log"),
        )?;
        ctx.export(sh);
        match run(sh, &ctx, &qs, self.mode) {
            Ok(()) => {
                println!("quickstart ({flow}) of run {} passed", ctx.run_id);
                Ok(0)
            }
            Err(error) => {
                let reason = format!("{error:#}");
                let bundle = diagnostics::collect(sh, &ctx, &reason, &[]);
                eprintln!("quickstart ({flow}) of run {} failed: {reason}", ctx.run_id);
                if let Ok(dir) = bundle {
                    eprintln!("diagnostics: {}", dir.display());
                }
                Ok(1)
            }
        }
    }
}

/// Install, then check; the first failing step is the error.
pub(crate) fn run(sh: &Shell, ctx: &RunContext, qs: &Quickstart, mode: Mode) -> Result<()> {
    if gitea::Record::read(&ctx.state_dir()).is_none() {
        bail!(
            "run {} has no Gitea repository: run `cargo xtask gitea setup --run-id {} --flow {}` first",
            ctx.run_id,
            ctx.run_id,
            ctx.flow
        );
    }
    let log = ctx.logs_dir().join("quickstart.log");
    let mut runner = runner::Runner::new(sh, ctx, log.clone());
    runner.poll = Duration::from_secs(2);
    runner.default_timeout = qs.timeout;
    // What the definition can name besides the run context (the repository among them), and
    // what differs between the modes: the manifest overlay suffixes every name with -<run-id>.
    runner.vars.extend(runner::git_vars(ctx));
    let (mode_name, suffix) = match mode {
        Mode::Helm => ("helm", String::new()),
        Mode::Manifest => ("manifest", name_suffix(ctx, qs).unwrap_or_default()),
    };
    runner.vars.push(("E2E_QUICKSTART_MODE".into(), mode_name.into()));
    runner.vars.push(("E2E_NAME_SUFFIX".into(), suffix));
    // The images as setup built them (`${IMAGE_DEMO}`: its digest tag), for values and patches.
    runner.vars.extend(
        crate::e2e::setup::incremental::Store::open(crate::e2e::setup::incremental::Store::path(), false)
            .image_vars(),
    );
    let expand = |text: &str| runner.expand(text);
    // `--set` values: what a variable brings in is escaped for helm's grammar.
    let helm_vars = crate::e2e::setup::strvals::escaped_vars(&runner.vars);
    let expand_set = |text: &str| {
        crate::vars::expand_strict(text, &helm_vars).map_err(|e| crate::usage::usage(format!("{e:#}")))
    };
    match mode {
        Mode::Helm => helm_install(sh, ctx, qs, &expand_set, &log)?,
        Mode::Manifest => manifest_install(sh, ctx, qs, &expand, &expand_set, &log)?,
    }
    if let Some(port) = &qs.service_monitor {
        // The run's ServiceMonitor puts the run label on the workload's series.
        let monitor = metrics::service_monitor(ctx, port);
        exec::cmd(
            cmd!(sh, "kubectl apply --server-side --field-manager=xtask-e2e -f -").args(ctx.kubectl_args()),
        )
        .stdin(monitor.to_string())
        .log(&log)
        .timeout(Duration::from_secs(60))
        .run()
        .context("applying the run's ServiceMonitor")?;
    }
    runner.run_all(&qs.checks)
}

/// `${VAR}` expansion with the run's variables (unknown ones refused).
type Expand<'a> = dyn Fn(&str) -> Result<String> + 'a;

fn helm_install(
    sh: &Shell,
    ctx: &RunContext,
    qs: &Quickstart,
    expand: &Expand<'_>,
    log: &Path,
) -> Result<()> {
    let chart = qs.chart.as_ref().ok_or_else(|| anyhow!("[quickstart] has no chart for --mode helm"))?;
    let release = ctx.scoped_name("qs");
    let ns = &ctx.test_namespace;
    let set_args = chart_values(qs, expand)?;
    let timeout = format!("{}s", qs.timeout.as_secs());
    // `--labels` labels the release (its storage Secret: `runs`/`cleanup` find the release by
    // it); the post-renderer labels every object the chart makes (see `post_render`).
    let labels = format!("{}={}", ctx.label_key, ctx.run_id);
    let post_render = crate::e2e::setup::post_render::helm_args(&ctx.label_key, &ctx.run_id)?;
    exec::cmd(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {ns} --labels {labels} {post_render...} --wait --timeout {timeout} {set_args...}").args(ctx.helm_args()))
        .log(log)
        .timeout(qs.timeout + Duration::from_secs(30))
        .run()
        .with_context(|| format!("installing helm release {release} in {ns}"))?;
    Ok(())
}

/// The chart's values for one run: `set-string` keeps identifiers strings whatever they look like
/// (helm strvals would make `0123` a number and `true` a bool); `values` are typed as written.
fn chart_values(qs: &Quickstart, expand: &Expand<'_>) -> Result<Vec<String>> {
    let mut set_args = Vec::new();
    for (flag, pairs) in [("--set-string", &qs.set_string), ("--set", &qs.values)] {
        for (k, v) in pairs {
            let v = expand(v).with_context(|| format!("quickstart {flag} {k}"))?;
            set_args.extend([flag.to_string(), format!("{k}={v}")]);
        }
    }
    Ok(set_args)
}

/// The suffix the manifest overlay gives every name: `-<run-id>` over a base (a kustomize
/// directory or a rendered install.yaml, whose names are the same for every run); none over the
/// chart rendered for the run, whose names its run-scoped release (`qs-<run-id>`) and the run's
/// values already scope, exactly as in helm mode — suffixed again they would read `x-<id>-<id>`.
fn name_suffix(ctx: &RunContext, qs: &Quickstart) -> Option<String> {
    qs.base.as_ref().map(|_| format!("-{}", ctx.run_id))
}

/// The per-run overlay: JSON is YAML, so kustomize reads it as written; nothing rewrites YAML.
/// `patches` are the definition's patch files, templated into the overlay's directory.
pub(crate) fn overlay(
    ctx: &RunContext,
    resource: &str,
    suffix: Option<&str>,
    patches: &[String],
) -> serde_json::Value {
    let patches: Vec<serde_json::Value> = patches.iter().map(|p| json!({ "path": p })).collect();
    let mut overlay = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ctx.test_namespace,
        "labels": [{ "pairs": { ctx.label_key.clone(): ctx.run_id }, "includeSelectors": true, "includeTemplates": true }],
        "resources": [resource],
        "patches": patches,
    });
    if let Some(suffix) = suffix {
        overlay["nameSuffix"] = json!(suffix);
    }
    overlay
}

fn manifest_install(
    sh: &Shell,
    ctx: &RunContext,
    qs: &Quickstart,
    expand: &Expand<'_>,
    expand_set: &Expand<'_>,
    log: &Path,
) -> Result<()> {
    let dir = ctx.state_dir().join("quickstart");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // The overlay's resource: the kustomize base, or else the chart rendered (`helm template`, as
    // an operator's "install.yaml" is made) with the run's values.
    let relative = match (&qs.base, &qs.chart) {
        // A file (a rendered install.yaml) is copied in: kustomize loads a file resource only from
        // in or below the kustomization's own directory (its default LoadRestrictionsRootOnly,
        // api/internal/loader `RestrictionRootOnly`: "file … is not in or below …"); a directory
        // (another kustomization) may be anywhere.
        (Some(base), _) if base.is_file() => {
            let name = format!(
                "base-{}",
                base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            );
            std::fs::copy(base, dir.join(&name))
                .with_context(|| format!("copying the base {} into {}", base.display(), dir.display()))?;
            name
        }
        (Some(base), _) => relative_path(&dir, base),
        (None, Some(chart)) => {
            let release = ctx.scoped_name("qs");
            let ns = &ctx.test_namespace;
            let set_args = chart_values(qs, expand_set)?;
            // `helm template` talks to no cluster, so `.Capabilities.APIVersions` would be helm's
            // built-in defaults: a chart that renders a Certificate or a ServiceMonitor only when
            // the cluster serves its API would drop it here and keep it in helm mode. Give it the
            // cluster's (`helm template --api-versions`, one per group/version).
            let served = exec::cmd(cmd!(sh, "kubectl api-versions").args(ctx.kubectl_args()))
                .log(log)
                .timeout(Duration::from_secs(60))
                .run()
                .context("asking the cluster which APIs it serves, for `helm template --api-versions`")?;
            let api_versions: Vec<String> = served
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .flat_map(|l| ["--api-versions".to_string(), l.to_string()])
                .collect();
            let rendered = exec::cmd(cmd!(
                sh,
                "helm template {release} {chart} --namespace {ns} {api_versions...} {set_args...}"
            ))
            .log(log)
            .timeout(Duration::from_secs(120))
            .withhold_stdout()
            .run()
            .with_context(|| format!("rendering the chart {} for the manifest mode", chart.display()))?;
            std::fs::write(dir.join("rendered.yaml"), &rendered.stdout)
                .with_context(|| format!("writing {}", dir.join("rendered.yaml").display()))?;
            "rendered.yaml".to_string()
        }
        (None, None) => bail!("[quickstart] has neither a base nor a chart for --mode manifest"),
    };
    let mut patches = Vec::new();
    for (i, patch) in qs.patches.iter().enumerate() {
        let text = std::fs::read_to_string(patch)
            .with_context(|| format!("reading the patch {}", patch.display()))?;
        let text = expand(&text).with_context(|| format!("templating the patch {}", patch.display()))?;
        let name = format!("patch-{i}.yaml");
        std::fs::write(dir.join(&name), text)
            .with_context(|| format!("writing {}", dir.join(&name).display()))?;
        patches.push(name);
    }
    let suffix = name_suffix(ctx, qs);
    let text = serde_json::to_string_pretty(&overlay(ctx, &relative, suffix.as_deref(), &patches))?;
    std::fs::write(dir.join("kustomization.yaml"), text).context("writing the run's kustomization")?;
    exec::cmd(
        cmd!(sh, "kubectl apply --server-side --field-manager=xtask-e2e -k {dir}").args(ctx.kubectl_args()),
    )
    .log(log)
    .timeout(Duration::from_secs(120))
    .run()
    .with_context(|| format!("applying the run's overlay {}", dir.display()))?;
    Ok(())
}

/// `to` relative to `from` (kustomize wants relative resource paths).
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), from.len() - common).collect();
    parts.extend(to[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_paths() {
        use std::path::Path;
        assert_eq!(
            super::relative_path(
                Path::new("/r/target/e2e/runs/x/quickstart"),
                Path::new("/r/test/e2e/quickstart")
            ),
            "../../../../../test/e2e/quickstart"
        );
    }
}
