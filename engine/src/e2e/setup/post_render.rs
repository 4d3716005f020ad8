//! The run label on every object of a helm-mode install: helm's post-renderer.
//!
//! `helm upgrade --labels` labels only the release's storage Secret (helm
//! pkg/storage/driver/secrets.go, `newSecretsObject`: the release labels go on the Secret), never
//! the chart's objects, and an operator's own chart takes no value of ours for a label. So the
//! quickstart's `helm upgrade` names this program as its post-renderer (`--post-renderer <this
//! executable> --post-renderer-args __post-render --post-renderer-args --label=KEY=VALUE`; helm
//! pkg/postrender/exec.go pipes the rendered manifests to it on stdin and installs what it prints).
//! It adds the label exactly as the manifest mode's overlay does, with kubectl's kustomize: on
//! every object's `metadata.labels` and on pod templates (`labels[].includeTemplates`), never on
//! selectors (a Deployment's selector is immutable: an upgrade that changed it would fail).
//! Hooks are not post-rendered by helm 3 (pkg/action/action.go `renderResources` post-renders the
//! manifests only); hook objects are deleted by their own hook policies.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use crate::exec;

/// The arguments helm passes the post-renderer after this program's path.
pub(crate) const SUBCOMMAND: &str = "__post-render";

/// Reads a chart's rendered manifests on stdin, writes them with the run label on every object
/// and pod template (helm's post-renderer; started by helm, not by users).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The label, KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    label: String,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let Some((key, value)) = self.label.split_once('=') else {
            bail!("--label {:?}: want KEY=VALUE", self.label);
        };
        let mut rendered = String::new();
        std::io::stdin().read_to_string(&mut rendered).context("reading the rendered manifests from helm")?;
        let out = label_all(sh, &rendered, key, value)?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).context("writing to helm")?;
        Ok(0)
    }
}

/// The helm arguments that make this executable label every object of the release.
pub(crate) fn helm_args(label_key: &str, run_id: &str) -> Result<Vec<String>> {
    let me = std::env::current_exe().context("finding this executable (helm's post-renderer)")?;
    Ok(vec![
        "--post-renderer".into(),
        me.display().to_string(),
        "--post-renderer-args".into(),
        SUBCOMMAND.into(),
        "--post-renderer-args".into(),
        format!("--label={label_key}={run_id}"),
    ])
}

/// `rendered` (a YAML stream) with `key: value` on every object's labels and pod template.
fn label_all(sh: &Shell, rendered: &str, key: &str, value: &str) -> Result<String> {
    let has_content = rendered.lines().any(|l| {
        let l = l.trim();
        !(l.is_empty() || l.starts_with('#') || l == "---")
    });
    if !has_content {
        return Ok(rendered.to_string()); // a chart that renders nothing: kustomize would refuse it
    }
    let dir = tempfile::Builder::new()
        .prefix("xtask-post-render-")
        .tempdir()
        .context("creating a directory for the post-renderer's kustomization")?;
    std::fs::write(dir.path().join("rendered.yaml"), rendered)
        .with_context(|| format!("writing {}", dir.path().join("rendered.yaml").display()))?;
    // JSON is YAML: kustomize reads the kustomization as written.
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["rendered.yaml"],
        "labels": [{ "pairs": { key: value }, "includeTemplates": true }],
    });
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization.to_string())
        .with_context(|| format!("writing {}", dir.path().join("kustomization.yaml").display()))?;
    let path = dir.path();
    let out = exec::cmd(cmd!(sh, "kubectl kustomize {path}"))
        .timeout(Duration::from_secs(60))
        .run()
        .context("labelling the chart's objects with the run label (kubectl kustomize)")?;
    Ok(out.stdout)
}
