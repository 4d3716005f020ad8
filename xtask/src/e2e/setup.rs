//! `cargo xtask setup`: images, the kind cluster and shared infra, as one scheduled graph.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use super::actions::{self, Env};
use super::definition::{self, Definition};
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
/// Examples:
///   cargo xtask setup
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
        let report = run_graph(sh, &def, &ctx, self.sequential || self.dry_run, self.dry_run)?;
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

/// Runs the definition's setup graph for run `ctx` (fail fast: the first failure stops the rest).
pub(crate) fn run_graph(
    sh: &Shell,
    def: &Definition,
    ctx: &RunContext,
    sequential: bool,
    dry_run: bool,
) -> Result<Report> {
    let progress = if dry_run { ProgressMode::Quiet } else { ProgressMode::detect(sh) };
    let opts = Options { sequential, dry_run, ..Options::new(ctx.logs_dir(), progress) };
    let env = Env::for_run(sh, ctx, &def.root);
    pipeline::run(&def.tasks, &opts, &|job| actions::run(job, &env))
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
