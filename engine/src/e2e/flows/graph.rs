//! `cargo xtask e2e` as one graph, from build to verdict: setup's tasks (builds, cluster, loads,
//! deploys), the port-forwards, the kubeconfig the runs get, the shared Gitea check and the
//! flows, scheduled together. A flow starts the moment what it needs is up, while the rest of
//! setup goes on; a forward starts when its deploys are up; a failed task fails only what needs it.
//!
//! What a flow waits for: the flows it `needs`, the kubeconfig, the Gitea check when it uses
//! Gitea, and either the deploys and port-forwards its `needs` names or, naming none, all of
//! shared infra (every setup task and forward, as before one graph). A flow that runs alone
//! (`exclusive`, or every flow without `--parallel`) waits for all of shared infra: running alone
//! means nothing else starts meanwhile, and setup must not stall behind it.

use std::time::Duration;

use crate::e2e::definition::{Definition, Flow, Forward};
use crate::e2e::setup::actions::SetupTask;
use crate::pipeline::{Report, Status, Task};

/// What one task of the e2e graph does.
pub(crate) enum Work<'a> {
    /// A task of the setup graph (build, cluster, load, deploy), run as `setup` runs it.
    Setup(&'a SetupTask),
    /// A supervised port-forward, up and passing its probe.
    Forward(&'a Forward),
    /// The definition's kube context checked, and a kubeconfig holding only it written.
    Kubeconfig,
    /// Reused shared Gitea checked before runs rely on it.
    GiteaCheck,
    /// One flow, start to verdict.
    Flow(&'a Flow),
}

/// The kubeconfig task's id.
pub(crate) const KUBECONFIG: &str = "kubeconfig";
/// The shared Gitea check's id.
pub(crate) const GITEA_CHECK: &str = "gitea-check";

/// A forward's task id (what a flow's `needs = ["port-forward:x"]` resolves to).
pub(crate) fn forward_id(f: &Forward) -> String {
    format!("forward:{}", f.name)
}

/// A flow's task id.
pub(crate) fn flow_id(name: &str) -> String {
    format!("flow:{name}")
}

/// Whether a task is shared infra (setup's or a forward): what the shared-infra lock guards.
pub(crate) fn is_infra(work: &Work<'_>) -> bool {
    matches!(work, Work::Setup(_) | Work::Forward(_))
}

/// The whole graph for `flows` (the selected ones) of `def`. `parallel` false: the flows run
/// one at a time, after all of shared infra (as `e2e` without `--parallel` always has).
pub(crate) fn build<'a>(def: &'a Definition, flows: &'a [Flow], parallel: bool) -> Vec<Task<Work<'a>>> {
    let mut tasks: Vec<Task<Work<'a>>> = def
        .tasks
        .iter()
        .map(|t| Task {
            retries: t.retries,
            exclusive: t.exclusive,
            ..Task::new(&t.id, t.deps.clone(), Work::Setup(t), t.timeout)
        })
        .collect();
    let cluster: Vec<String> = def.tasks.iter().filter(|t| t.id == "cluster").map(|t| t.id.clone()).collect();
    for f in &def.forwards {
        let mut deps = cluster.clone();
        deps.extend(f.after.iter().cloned());
        // Starting the supervisor is quick; the probe may take `ready-timeout`.
        let timeout = f.ready_timeout + Duration::from_secs(60);
        tasks.push(Task::new(&forward_id(f), deps, Work::Forward(f), timeout));
    }
    tasks.push(Task::new(KUBECONFIG, cluster, Work::Kubeconfig, Duration::from_secs(120)));
    let forwards: Vec<String> = def.forwards.iter().map(forward_id).collect();
    if flows.iter().any(|f| f.gitea) {
        // The forwards that provide Gitea's endpoints (`E2E_GITEA_*`), else all of them.
        let gitea: Vec<String> = def
            .forwards
            .iter()
            .filter(|f| f.env.iter().any(|(k, _)| k.starts_with("E2E_GITEA_")))
            .map(forward_id)
            .collect();
        let mut deps = vec![KUBECONFIG.to_string()];
        deps.extend(if gitea.is_empty() { forwards.clone() } else { gitea });
        tasks.push(Task::new(GITEA_CHECK, deps, Work::GiteaCheck, Duration::from_secs(600)));
    }
    let all_infra: Vec<String> = def.tasks.iter().map(|t| t.id.clone()).chain(forwards).collect();
    let selected: Vec<&str> = flows.iter().map(|f| f.name.as_str()).collect();
    for f in flows {
        let mut deps: Vec<String> =
            f.needs.iter().filter(|n| selected.contains(&n.as_str())).map(|n| flow_id(n)).collect();
        deps.push(KUBECONFIG.into());
        if f.gitea {
            deps.push(GITEA_CHECK.into());
        }
        let alone = f.exclusive || !parallel;
        match (&f.infra, alone) {
            (Some(infra), false) => deps.extend(infra.iter().cloned()),
            _ => deps.extend(all_infra.iter().cloned()),
        }
        let mut seen = std::collections::BTreeSet::new();
        deps.retain(|d| seen.insert(d.clone()));
        tasks.push(Task { exclusive: alone, ..Task::new(&flow_id(&f.name), deps, Work::Flow(f), f.timeout) });
    }
    tasks
}

/// Why a task that never started did not: the failed tasks it needs, directly or through others
/// (`deploy:b: <its first error line>`), in graph order.
pub(crate) fn root_failures(report: &Report, id: &str) -> Vec<String> {
    let by_id: std::collections::BTreeMap<&str, &crate::pipeline::TaskTiming> =
        report.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![id];
    let mut found = Vec::new();
    while let Some(at) = stack.pop() {
        let Some(t) = by_id.get(at) else { continue };
        for d in &t.deps {
            if !seen.insert(d.as_str()) {
                continue;
            }
            match by_id.get(d.as_str()) {
                Some(dep) if dep.status.is_failure() => found.push(format!(
                    "{}: {}",
                    dep.id,
                    dep.error.as_deref().unwrap_or("failed").lines().next().unwrap_or("failed")
                )),
                Some(dep) if dep.status == Status::Skipped => stack.push(d.as_str()),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// `e2e --dry-run`: the whole graph, each task with what it waits for.
pub(crate) fn plan(def: &Definition, tasks: &[Task<Work<'_>>]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "plan for {} ({} tasks, {} at most at once; a flow starts when what it waits for is done):\n",
        def.path.display(),
        tasks.len(),
        crate::pipeline::width(tasks)
    );
    let order = crate::pipeline::validate(tasks).unwrap_or_else(|_| (0..tasks.len()).collect());
    for i in order {
        let t = &tasks[i];
        let after = if t.deps.is_empty() { "-".to_string() } else { t.deps.join(", ") };
        let alone = if t.exclusive && matches!(t.action, Work::Flow(_)) { " (alone)" } else { "" };
        let _ = writeln!(out, "  {:<24} after: {after}{alone}", t.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::TaskTiming;

    fn timing(id: &str, deps: &[&str], status: Status, error: Option<&str>) -> TaskTiming {
        TaskTiming {
            id: id.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            status,
            start_s: None,
            end_s: None,
            duration_s: 0.0,
            attempts: 0,
            log: String::new(),
            error: error.map(String::from),
        }
    }

    #[test]
    fn a_skipped_flow_names_the_failed_task_it_needed_through_others() {
        let report = Report {
            mode: "e2e",
            threads: 2,
            wall_s: 1.0,
            critical_path: Vec::new(),
            critical_path_s: 0.0,
            tasks: vec![
                timing("deploy:a", &[], Status::Ok, None),
                timing("deploy:b", &[], Status::Failed, Some("helm failed\nmore")),
                timing("forward:b", &["deploy:b"], Status::Skipped, None),
                timing("flow:x", &["deploy:a", "forward:b"], Status::Skipped, None),
                timing("flow:y", &["deploy:a"], Status::Ok, None),
            ],
        };
        assert_eq!(root_failures(&report, "flow:x"), vec!["deploy:b: helm failed".to_string()]);
        assert!(root_failures(&report, "flow:y").is_empty());
    }
}
