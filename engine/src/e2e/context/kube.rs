//! Which cluster: every kubectl and helm call of ours names the kube context of the definition's
//! cluster (`--context` / `--kube-context`), so a reused cluster never sends deploys or deletes to
//! whatever the user's current context is (possibly production). kind names its context
//! `kind-<cluster name>` (kind `pkg/cluster/internal/kubeconfig`, `KINDClusterKey`). Nothing runs
//! when that context does not exist, and every child process of a run gets a `KUBECONFIG` that
//! holds only that cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{exec, paths};

/// kind's context for a cluster.
pub(crate) fn kind_context(cluster: &str) -> String {
    format!("kind-{cluster}")
}

/// `--context CTX` for kubectl.
pub(crate) fn kubectl_args(context: &str) -> [String; 2] {
    ["--context".to_string(), context.to_string()]
}

/// `--kube-context CTX` for helm.
pub(crate) fn helm_args(context: &str) -> [String; 2] {
    ["--kube-context".to_string(), context.to_string()]
}

/// Fails, saying what to do, unless `context` is in the kubeconfig kubectl reads.
pub(crate) fn require_context(sh: &Shell, context: &str, log: &Path) -> Result<()> {
    let out = exec::cmd(cmd!(sh, "kubectl config get-contexts --output name"))
        .log(log)
        .timeout(Duration::from_secs(30))
        .run()
        .context("listing the kube contexts")?;
    if !out.stdout.lines().any(|l| l.trim() == context) {
        let cluster = context.strip_prefix("kind-").unwrap_or(context);
        bail!(
            "kube context {context:?} does not exist (kubectl config get-contexts); nothing was run. \
             Create the cluster with `cargo xtask setup`, or restore its context with `kind export kubeconfig --name {cluster}`"
        );
    }
    Ok(())
}

/// Writes a kubeconfig holding only the cluster's context (0600, under the state dir) for the
/// run's child processes, and returns its path: kind's for a kind cluster, the named context
/// (`kubectl config view --minify --flatten`) for an existing one.
pub(crate) fn write_kubeconfig(
    sh: &Shell,
    cluster: &str,
    existing: Option<&str>,
    log: &Path,
) -> Result<PathBuf> {
    let read = match existing {
        None => cmd!(sh, "kind get kubeconfig --name {cluster}"),
        Some(context) => cmd!(sh, "kubectl config view --minify --flatten --context {context}"),
    };
    let out = exec::cmd(read)
        .withhold_stdout()
        .log(log)
        .timeout(Duration::from_secs(60))
        .run()
        .with_context(|| format!("reading the kubeconfig of cluster {cluster}"))?;
    let dir = paths::state_root().join("kubeconfig");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {} to its owner", dir.display()))?;
    }
    let name = existing.map(|c| c.replace(['/', ':'], "_")).unwrap_or_else(|| kind_context(cluster));
    let path = dir.join(name);
    write_private(&path, &out.stdout)?;
    Ok(path)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
