//! `cargo xtask setup`: images, the kind cluster and shared infra, as one scheduled graph.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use super::actions::{self, Env};
use super::definition::{self, Definition};
use super::incremental::Store;
use super::run_context::RunContext;
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
            super::preflight::check(sh, &def, &ctx.logs_dir().join("preflight.log"))?;
        }
        if self.explain {
            return explain(sh, &def, &ctx);
        }
        let how =
            How { sequential: self.sequential || self.dry_run, dry_run: self.dry_run, force: self.force };
        let report = run_graph(sh, &def, &ctx, how)?;
        if self.dry_run {
            return Ok(0);
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

/// Where the incremental records live.
pub(crate) fn records_path() -> PathBuf {
    paths::state_root().join("incremental.json")
}

/// Runs the definition's setup graph for run `ctx` (fail fast: the first failure stops the rest),
/// skipping what the records show done.
pub(crate) fn run_graph(sh: &Shell, def: &Definition, ctx: &RunContext, how: How) -> Result<Report> {
    let progress = if how.dry_run { ProgressMode::Quiet } else { ProgressMode::detect(sh) };
    let opts = Options {
        sequential: how.sequential,
        dry_run: how.dry_run,
        ..Options::new(ctx.logs_dir(), progress)
    };
    let mut env = Env::for_run(sh, ctx, &def.root);
    if !how.dry_run {
        env.store = Some(std::sync::Arc::new(Store::open(records_path(), how.force)));
    }
    pipeline::run(&def.tasks, &opts, &|job| actions::run(job, &env))
}

/// `setup --explain`: each task's decision, in graph order, from read-only checks.
fn explain(sh: &Shell, def: &Definition, ctx: &RunContext) -> Result<i32> {
    let opts =
        Options { sequential: true, ..Options::new(ctx.logs_dir().join("explain"), ProgressMode::Quiet) };
    let mut env = Env::for_run(sh, ctx, &def.root);
    env.store = Some(std::sync::Arc::new(Store::open(records_path(), false)));
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
