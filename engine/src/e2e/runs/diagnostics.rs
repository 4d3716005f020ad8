//! A failed run's diagnostics bundle, selected by its namespace and run label:
//! `target/e2e/runs/<id>/artifacts/` with an `index.json` linking every file to what made it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use crate::e2e::context::RunContext;
use crate::exec;

/// Collects what explains a failure. Every command is best effort (a missing pod is not an
/// error here) and runs even after Ctrl-C. Returns the artifacts directory.
pub(crate) fn collect(
    sh: &Shell,
    ctx: &RunContext,
    reason: &str,
    forward_logs: &[PathBuf],
) -> Result<PathBuf> {
    let dir = ctx.artifacts_dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ns = &ctx.test_namespace;
    let ctl = &ctx.controller_namespace;
    let selector = ctx.selector();
    let mut files = Vec::new();
    let mut capture = |name: &str, what: &str, call: xshell::Cmd<'_>| {
        let call = exec::cmd(call).cleanup().allow_failure().timeout(Duration::from_secs(60));
        let shown = call.display();
        let (text, code) = match call.run() {
            Ok(out) => (format!("{}{}", out.stdout, out.stderr), out.code),
            Err(e) => (e.to_string(), None),
        };
        let path = dir.join(name);
        let _ = std::fs::write(&path, exec::redact(&text));
        files.push(json!({ "file": name, "what": what, "command": shown, "exit": code }));
    };
    capture(
        "pods.txt",
        "pods of the run's namespaces",
        cmd!(sh, "kubectl get pods --namespace {ns} --output wide").args(ctx.kubectl_args()),
    );
    capture(
        "pods-controller.txt",
        "pods of the controller namespace",
        cmd!(sh, "kubectl get pods --namespace {ctl} --output wide").args(ctx.kubectl_args()),
    );
    capture(
        "describe.txt",
        "kubectl describe of the run's pods",
        cmd!(sh, "kubectl describe pods --namespace {ns}").args(ctx.kubectl_args()),
    );
    capture(
        "logs.txt",
        "logs of every container of the run's pods (last 200 lines each)",
        cmd!(sh, "kubectl logs --namespace {ns} --selector {selector} --all-containers --prefix --tail=200 --max-log-requests=20").args(ctx.kubectl_args()),
    );
    capture(
        "logs-controller.txt",
        "logs of the controller namespace's containers",
        cmd!(sh, "kubectl logs --namespace {ctl} --selector {selector} --all-containers --prefix --tail=200 --max-log-requests=20").args(ctx.kubectl_args()),
    );
    capture(
        "events.txt",
        "events of the run's namespace, oldest first",
        cmd!(sh, "kubectl get events --namespace {ns} --sort-by=.lastTimestamp").args(ctx.kubectl_args()),
    );
    capture(
        "helm.txt",
        "helm releases in the run's namespace",
        cmd!(sh, "helm list --namespace {ns} --all --output json").args(ctx.helm_args()),
    );
    let checkout = ctx.checkout_dir();
    if checkout.join(".git").exists() {
        capture(
            "checkout-status.txt",
            "git status of the run's checkout",
            cmd!(sh, "git -C {checkout} status"),
        );
        capture(
            "checkout-log.txt",
            "git log of the run's checkout",
            cmd!(sh, "git -C {checkout} log --oneline -n 30"),
        );
    }
    for log in forward_logs {
        if let Ok(text) = std::fs::read_to_string(log) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            let name =
                format!("port-forward-{}", log.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
            let _ = std::fs::write(dir.join(&name), tail);
            files.push(json!({ "file": name, "what": "supervised port-forward log (last 200 lines)", "command": null, "exit": null }));
        }
    }
    let logs = ctx.logs_dir();
    let index = json!({
        "run_id": ctx.run_id,
        "flow": ctx.flow,
        "namespace": ns,
        "reason": exec::redact(reason),
        "collected": crate::clock::rfc3339(std::time::SystemTime::now()),
        "logs_dir": logs.display().to_string(),
        "files": files,
    });
    std::fs::write(dir.join("index.json"), serde_json::to_string_pretty(&index)?)?;
    Ok(dir)
}
