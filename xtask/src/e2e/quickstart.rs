//! `cargo xtask quickstart` (replaces run-quickstart.sh): install the system under test into one
//! run's namespace, then prove it works end to end for that run only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use super::{diagnostics, gitea};
use crate::e2e::checks;
use crate::e2e::definition::{self, Quickstart};
use crate::e2e::metrics;
use crate::e2e::run_context::RunContext;
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
/// helm: release qs-<run-id> of the definition's chart, with the run's labels and values.
/// manifest: a kustomize overlay generated under the run's state dir (namespace, run label,
/// name suffix -<run-id>, the run's Git settings) over the definition's base, applied with
/// `kubectl apply -k`. Per-run cluster-scoped objects get the suffix and label; shared CRDs belong
/// to shared infra. Then: CRDs present -> rollout -> the status file appears and changes in the
/// run's repository (a new commit each time) -> the run's write metric > 0 in Prometheus -> no
/// other run's series is visible to this run's queries. Any failure writes the diagnostics bundle.
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
        super::kube::require_context(sh, &ctx.kube_context, &ctx.logs_dir().join("quickstart.log"))?;
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
    let record: gitea::Record = std::fs::read_to_string(ctx.state_dir().join("gitea.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            anyhow!(
                "run {} has no Gitea repository: run `cargo xtask gitea setup --run-id {} --flow {}` first",
                ctx.run_id,
                ctx.run_id,
                ctx.flow
            )
        })?;
    let repo = format!("{}/{}", record.org, record.repo);
    let log = ctx.logs_dir().join("quickstart.log");
    match mode {
        Mode::Helm => helm_install(sh, ctx, qs, &repo, &log)?,
        Mode::Manifest => manifest_install(sh, ctx, qs, &repo, &log)?,
    }
    // The run's ServiceMonitor puts the run label on the workload's series.
    let monitor = metrics::service_monitor(ctx, "http");
    exec::cmd(
        cmd!(sh, "kubectl apply --server-side --field-manager=xtask-e2e -f -").args(ctx.kubectl_args()),
    )
    .stdin(monitor.to_string())
    .log(&log)
    .timeout(Duration::from_secs(60))
    .run()
    .context("applying the run's ServiceMonitor")?;
    let mut runner = checks::Runner::new(sh, ctx, log);
    runner.poll = Duration::from_secs(2);
    runner.default_timeout = qs.timeout;
    // What the definition's checks can name besides the run context.
    runner.vars.extend([
        ("E2E_GIT_REPO".to_string(), repo.clone()),
        ("E2E_GIT_SECRET".to_string(), ctx.secret_http()),
        ("E2E_GIT_SECRET_SSH".to_string(), ctx.secret_ssh()),
        ("E2E_GIT_SECRET_INVALID".to_string(), ctx.secret_invalid()),
    ]);
    runner.run_all(&qs.checks)
}

fn helm_install(sh: &Shell, ctx: &RunContext, qs: &Quickstart, repo: &str, log: &Path) -> Result<()> {
    let chart = qs.chart.as_ref().ok_or_else(|| anyhow!("[quickstart] has no chart for --mode helm"))?;
    let release = ctx.scoped_name("qs");
    let ns = &ctx.test_namespace;
    // The run's identifiers are strings whatever they look like: `--set` parses values by type
    // (helm strvals: `0123` becomes 123, `true` a bool), `--set-string` keeps them as written.
    let strings = vec![
        format!("runId={}", ctx.run_id),
        format!("runLabel={}", ctx.label_key),
        format!("git.repo={repo}"),
        format!("git.secret={}", ctx.secret_http()),
        format!("git.api={}", qs.gitea_api),
    ];
    let mut set_args: Vec<String> =
        strings.into_iter().flat_map(|s| ["--set-string".to_string(), s]).collect();
    // The definition's own values: typed as the user wrote them.
    set_args.extend(qs.values.iter().flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]));
    let timeout = format!("{}s", qs.timeout.as_secs());
    let labels = format!("{}={}", ctx.label_key, ctx.run_id);
    exec::cmd(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {ns} --labels {labels} --wait --timeout {timeout} {set_args...}").args(ctx.helm_args()))
        .log(log)
        .timeout(qs.timeout + Duration::from_secs(30))
        .run()
        .with_context(|| format!("installing helm release {release} in {ns}"))?;
    Ok(())
}

/// The per-run overlay: JSON is YAML, so kustomize reads it as written; nothing rewrites YAML.
pub(crate) fn overlay(
    ctx: &RunContext,
    qs: &Quickstart,
    repo: &str,
    base_relative: &str,
) -> serde_json::Value {
    let env = json!([
        { "name": "E2E_RUN_ID", "value": ctx.run_id },
        { "name": "DEMO_GITEA_API", "value": qs.gitea_api },
        { "name": "DEMO_GIT_REPO", "value": repo },
        { "name": "DEMO_GIT_TOKEN", "valueFrom": { "secretKeyRef": { "name": ctx.secret_http(), "key": "password" } } },
    ]);
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": qs.deployment },
        "spec": { "template": { "spec": { "containers": [{ "name": qs.deployment, "env": env }] } } },
    });
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ctx.test_namespace,
        "nameSuffix": format!("-{}", ctx.run_id),
        "labels": [{ "pairs": { ctx.label_key.clone(): ctx.run_id }, "includeSelectors": true, "includeTemplates": true }],
        "resources": [base_relative],
        "patches": [{ "target": { "kind": "Deployment", "name": qs.deployment }, "patch": patch.to_string() }],
    })
}

fn manifest_install(sh: &Shell, ctx: &RunContext, qs: &Quickstart, repo: &str, log: &Path) -> Result<()> {
    let base = qs.base.as_ref().ok_or_else(|| anyhow!("[quickstart] has no base for --mode manifest"))?;
    let dir = ctx.state_dir().join("quickstart");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let relative = relative_path(&dir, base);
    let text = serde_json::to_string_pretty(&overlay(ctx, qs, repo, &relative))?;
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
