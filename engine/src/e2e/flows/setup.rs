//! `cargo xtask setup`: images, the kind cluster and shared infra, as one scheduled graph.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::e2e::context::RunContext;
use crate::e2e::definition::{self, Definition};
use crate::e2e::setup::actions::{self, Env};
use crate::e2e::setup::incremental::Store;
use crate::paths;
use crate::pipeline::{self, Options, ProgressMode, Report};

/// Build the images, create (or reuse) the kind cluster, load the images, deploy shared infra.
///
/// The work in test/e2e/e2e.toml runs as a dependency graph: builds in parallel, the cluster
/// right after the last build (a kind node never idles through slow builds), each load the moment
/// the cluster and its own image are ready, each deploy the moment what it needs is ready. The
/// first failure stops the rest; each task logs to target/e2e/runs/<id>/logs/; a timing report
/// (JSON in target/e2e/timings/, and a Gantt chart with the critical path) ends every run.
///
/// Incremental: each image is tagged by a digest of its inputs (`${DIGEST}` in its tag), and a
/// task whose work is recorded as done (same inputs, same cluster) and still there (the image in
/// the engine, the helm release, the manifests' objects) is up to date and skipped; everything
/// after a changed task runs again. Records: target/e2e/incremental.json.
///
/// Examples:
///   cargo xtask setup
///   cargo xtask setup --explain          # what would run, and why, without running it
///   cargo xtask setup --force            # run every task, whatever is recorded
///   cargo xtask setup --dry-run
///   cargo xtask setup --sequential       # one task at a time, as the old Makefile did
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The e2e definition [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
    /// Print the graph (tasks, what each waits for, the commands) instead of running it
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run the same graph one task at a time
    #[arg(long)]
    pub(crate) sequential: bool,
    /// Run every task, even those recorded as up to date
    #[arg(long, conflicts_with = "explain")]
    pub(crate) force: bool,
    /// Say for each task whether it would run and why (digest changed, image not in the
    /// cluster, release missing, up to date); runs only read-only checks
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) explain: bool,
    /// Run id for the logs (default: $E2E_RUN_ID or a new one)
    #[arg(long)]
    pub(crate) run_id: Option<String>,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let path = self.definition.clone().unwrap_or_else(definition::default_path);
        let def = definition::load(&path)?;
        let ctx = RunContext::resolve(sh, &def.request(self.run_id, Some("setup")))?;
        if self.dry_run {
            print_plan(&def);
        } else {
            crate::e2e::flows::preflight::check(sh, &def, &ctx.logs_dir().join("preflight.log"))?;
        }
        if self.explain {
            return explain(sh, &def, &ctx);
        }
        let how =
            How { sequential: self.sequential || self.dry_run, dry_run: self.dry_run, force: self.force };
        // One setup of shared infra at a time on this machine, beside `e2e` too (the same lock).
        let _lock = match (&def.existing, self.dry_run) {
            (None, false) => Some(crate::e2e::infra::shared_lock::SharedLock::acquire("setup")?),
            _ => None,
        };
        // A shared cluster: one machine sets it up at a time (its shared-infra Lease).
        let _lease = match (&def.existing, self.dry_run) {
            (Some(context), false) => Some(crate::e2e::context::coordination::take_shared_infra(
                sh,
                context,
                &ctx.run_id,
                def.lease_duration,
                ctx.logs_dir().join("coordination.log"),
            )?),
            _ => None,
        };
        let report = run_graph(sh, &def, &ctx, how)?;
        if self.dry_run {
            // A plan with a task that cannot be planned (an unset variable, a missing path) is
            // no plan: every such task is named with its error, never a silent cut.
            return match report.failure() {
                None => Ok(0),
                Some(error) => {
                    eprintln!("error: the plan is incomplete: {error:#}");
                    Ok(2)
                }
            };
        }
        let json = pipeline::write_report(
            &report,
            &paths::state_root().join("timings"),
            &format!("setup-{}", ctx.run_id),
        )?;
        println!("{}", pipeline::gantt(&report));
        println!("timing report: {}", json.display());
        match report.failure() {
            None => Ok(0),
            Some(_) if crate::exec::cancelled() => Ok(130),
            Some(error) => {
                eprintln!("error: setup failed: {error}");
                Ok(1)
            }
        }
    }
}

/// How the setup graph runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct How {
    pub(crate) sequential: bool,
    pub(crate) dry_run: bool,
    /// Run every task whatever the records say (they are still written).
    pub(crate) force: bool,
}

/// Runs the definition's setup graph for run `ctx` (fail fast: the first failure stops the rest),
/// skipping what the records show done.
pub(crate) fn run_graph(sh: &Shell, def: &Definition, ctx: &RunContext, how: How) -> Result<Report> {
    let progress = if how.dry_run { ProgressMode::Quiet } else { ProgressMode::detect(sh) };
    let opts = Options {
        sequential: how.sequential,
        dry_run: how.dry_run,
        // A dry run plans every task it can, so that it names every one it cannot.
        policy: if how.dry_run { pipeline::Policy::KeepGoing } else { pipeline::Policy::FailFast },
        ..Options::new(ctx.logs_dir(), progress)
    };
    let env = env_for(sh, def, ctx, how)?;
    let report = pipeline::run(&def.tasks, &opts, &|job| actions::run(job, &env))?;
    if report.failure().is_none() {
        share_records(sh, def, ctx, &env)?;
    }
    Ok(report)
}

/// What setup's tasks run with: the run's environment and (unless a dry run) the incremental
/// records, a shared cluster's read from the cluster.
pub(crate) fn env_for(sh: &Shell, def: &Definition, ctx: &RunContext, how: How) -> Result<Env> {
    let mut env = Env::for_run(sh, ctx, &def.root);
    if !how.dry_run {
        let store = std::sync::Arc::new(Store::open(Store::path(), how.force));
        if let Some(context) = &def.existing {
            // A shared cluster's deploys were perhaps made from another machine: its records are
            // the cluster's (read here, written back after a successful setup).
            shared_records(sh, context, &store, &ctx.logs_dir().join("records.log"), false)?;
        }
        env.store = Some(store);
    }
    Ok(env)
}

/// After a successful setup of a shared cluster (`existing`): its records written back there,
/// by whoever holds the shared-infra Lease. Nothing for kind.
pub(crate) fn share_records(sh: &Shell, def: &Definition, ctx: &RunContext, env: &Env) -> Result<()> {
    if let (Some(context), Some(store)) = (&def.existing, &env.store) {
        shared_records(sh, context, store, &ctx.logs_dir().join("records.log"), true)?;
    }
    Ok(())
}

/// The ConfigMap holding a shared cluster's setup records (its identity, its deploys).
const SHARED_RECORDS: &str = "e2e-setup-records";

/// Reads the shared cluster's records into `store` (`write` false), or writes the store's
/// cluster and deploy records there (`write` true). Whoever writes holds the shared-infra Lease.
fn shared_records(
    sh: &Shell,
    context: &str,
    store: &Store,
    log: &std::path::Path,
    write: bool,
) -> Result<()> {
    use anyhow::Context as _;
    use xshell::cmd;
    let ns = crate::e2e::context::coordination::NAMESPACE;
    if write {
        let state = store.snapshot();
        let shared = crate::e2e::setup::incremental::State {
            clusters: state.clusters,
            deploys: state.deploys,
            ..Default::default()
        };
        let map = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": SHARED_RECORDS, "namespace": ns },
            "data": { "records.json": crate::lint::value::ToValue::to_value(&shared).to_string() },
        });
        crate::exec::cmd(cmd!(
            sh,
            "kubectl apply --server-side --field-manager=xtask-e2e -f - --context {context}"
        ))
        .stdin(map.to_string())
        .log(log)
        .timeout(std::time::Duration::from_secs(60))
        .run()
        .with_context(|| format!("writing the setup records to {context}"))?;
        return Ok(());
    }
    let out = crate::exec::cmd(cmd!(
        sh,
        "kubectl get configmap {SHARED_RECORDS} --namespace {ns} --ignore-not-found --output json --context {context}"
    ))
    .log(log)
    .timeout(std::time::Duration::from_secs(60))
    .run()
    .with_context(|| format!("reading the setup records of {context}"))?;
    if out.stdout.trim().is_empty() {
        return Ok(());
    }
    let map: serde_json::Value = serde_json::from_str(&out.stdout).context("reading the setup records")?;
    let shared: crate::e2e::setup::incremental::State =
        crate::lint::value::from_json(map["data"]["records.json"].as_str().unwrap_or("{}"))
            .unwrap_or_default();
    store.update(|s| {
        s.clusters.extend(shared.clusters);
        s.deploys.extend(shared.deploys);
    })
}

/// `setup --explain`: each task's decision, in graph order, from read-only checks.
fn explain(sh: &Shell, def: &Definition, ctx: &RunContext) -> Result<i32> {
    let opts =
        Options { sequential: true, ..Options::new(ctx.logs_dir().join("explain"), ProgressMode::Quiet) };
    let mut env = Env::for_run(sh, ctx, &def.root);
    env.store = Some(std::sync::Arc::new(Store::open(Store::path(), false)));
    env.explain = Some(Default::default());
    let report = pipeline::run(&def.tasks, &opts, &|job| actions::run(job, &env))?;
    if let Some(error) = report.failure() {
        return Err(error.context("explaining the setup"));
    }
    let decisions = env.explain.and_then(|d| d.into_inner().ok()).unwrap_or_default();
    let mut runs = 0;
    println!("setup of {} ({} tasks):", def.path.display(), def.tasks.len());
    for t in &def.tasks {
        let (run, why) = decisions.get(&t.id).cloned().unwrap_or((true, "not reached".into()));
        runs += usize::from(run);
        println!("  {:<24} {:<10} {why}", t.id, if run { "runs" } else { "up to date" });
    }
    println!("{runs} of {} task(s) would run", def.tasks.len());
    Ok(0)
}

fn print_plan(def: &definition::Definition) {
    println!(
        "plan for {} ({} tasks, {} at most at once):",
        def.path.display(),
        def.tasks.len(),
        pipeline::width(&def.tasks)
    );
    for t in &def.tasks {
        let after = if t.deps.is_empty() { "-".to_string() } else { t.deps.join(", ") };
        println!("  {:<24} after: {after}", t.id);
    }
    println!("commands, in one valid order:");
}
