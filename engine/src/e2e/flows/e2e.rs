//! `cargo xtask e2e`: shared infra once, then the flows, each isolated by its run id.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use crate::e2e::context::kube;
use crate::e2e::context::RunContext;
use crate::e2e::definition::{self, Definition, Flow};
use crate::e2e::flows::graph::{self, Work};
use crate::e2e::flows::setup;
use crate::e2e::infra::gitea;
use crate::e2e::infra::port_forward;
use crate::e2e::runs::diagnostics;
use crate::e2e::runs::{self, Heartbeat, RunRecord};
use crate::pipeline::{self, Options, Policy, ProgressMode};
use crate::{clock, exec, paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    /// Keep every run's namespace and state
    Always,
    /// Keep failed runs (with their diagnostics), clean passed ones
    Failed,
    /// Clean every run (a failed run's artifacts stay)
    Never,
}

/// Run the e2e flows against shared infra, each isolated by its own run id.
///
/// Shared infra (images, the kind cluster, Gitea, Prometheus, cert-manager: `cargo xtask setup`)
/// is ensured once, under a file lock so two invocations never race, and reused when it is up.
/// The fixed port-forwards are supervised. Then each flow gets its run context (namespace
/// run-e2e-<flow>-<id>, labeled configbutler.ai/e2e-run-id=<id>), its Gitea repository, token,
/// key and secrets, and runs its steps with the run's environment. Every flow runs to its end;
/// the exit status is 0 only if all pass. A failed run keeps its namespace and gets a diagnostics
/// bundle in target/e2e/runs/<id>/artifacts/; passed runs are cleaned (see --keep). Ctrl-C stops
/// the flows, cleans each run (artifacts kept), leaves shared infra up, and exits 130.
///
/// Examples:
///   cargo xtask e2e --parallel
///   cargo xtask e2e --flow quickstart-helm
///   cargo xtask e2e --parallel --keep always --junit report.xml
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run the flows at the same time (default: one after another)
    #[arg(long)]
    pub(crate) parallel: bool,
    /// Run only this flow (repeatable) [default: every flow of the definition]
    #[arg(long = "flow")]
    pub(crate) flows: Vec<String>,
    /// The e2e definition [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
    /// Which runs keep their namespace and state
    #[arg(long, value_enum, default_value = "failed")]
    pub(crate) keep: Keep,
    /// Where to write the JUnit XML report [default: target/e2e/junit.xml]
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
    /// Run shard K of N (a CI matrix job): a deterministic subset of the flows, flows joined by
    /// `needs` kept together; every shard ensures shared infra. Join the shards' JUnit reports
    /// with `cargo xtask junit-merge`
    #[arg(long, value_name = "K/N")]
    pub(crate) shard: Option<crate::e2e::flows::shards::Shard>,
    /// Print the whole graph (setup, forwards, flows, what each waits for) and run nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// How one flow ended.
#[derive(Debug, Clone)]
pub(crate) struct FlowResult {
    pub(crate) flow: String,
    pub(crate) run_id: String,
    pub(crate) namespace: String,
    pub(crate) start_s: f64,
    pub(crate) end_s: f64,
    pub(crate) outcome: Outcome,
    pub(crate) error: Option<String>,
    pub(crate) artifacts: Option<PathBuf>,
    pub(crate) kept: bool,
    /// It ran alone (`exclusive`).
    pub(crate) alone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed,
    Failed,
    Interrupted,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let path = self.definition.clone().unwrap_or_else(definition::default_path);
        let def = definition::load(&path)?;
        let flows: Vec<Flow> = if self.flows.is_empty() {
            def.flows.clone()
        } else {
            let known: Vec<&str> = def.flows.iter().map(|f| f.name.as_str()).collect();
            self.flows
                .iter()
                .map(|name| {
                    def.flows.iter().find(|f| &f.name == name).cloned().ok_or_else(|| {
                        crate::usage::usage(format!(
                            "no flow {name:?} in {} (flows: {})",
                            path.display(),
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?
        };
        if flows.is_empty() {
            bail!("{} defines no [[flow]]", path.display());
        }
        let flows = match self.shard {
            None => flows,
            Some(shard) => {
                let items: Vec<crate::e2e::flows::shards::Item<'_>> = flows
                    .iter()
                    .map(|f| crate::e2e::flows::shards::Item {
                        name: &f.name,
                        weight: f.timeout.as_secs(),
                        needs: &f.needs,
                    })
                    .collect();
                let mine: Vec<String> =
                    crate::e2e::flows::shards::select(&items, shard).into_iter().map(String::from).collect();
                println!(
                    "shard {shard}: {} of {} flow(s): {}",
                    mine.len(),
                    flows.len(),
                    if mine.is_empty() { "none".to_string() } else { mine.join(", ") }
                );
                flows.iter().filter(|f| mine.contains(&f.name)).cloned().collect()
            }
        };
        let suite = match self.shard {
            Some(shard) => format!("e2e shard {shard}"),
            None => "e2e".to_string(),
        };
        let junit = self.junit.clone().unwrap_or_else(|| paths::state_root().join("junit.xml"));
        crate::e2e::flows::shards::check_writable(&junit)?;
        if flows.is_empty() {
            // More shards than flow groups: this one has nothing to do, and says so in its report.
            write_junit(&junit, &suite, &[], 0.0)?;
            println!("JUnit: {}", junit.display());
            return Ok(0);
        }
        let tasks = graph::build(&def, &flows, self.parallel);
        if self.dry_run {
            print!("{}", graph::plan(&def, &tasks));
            return Ok(0);
        }
        let start = Instant::now();
        crate::e2e::flows::preflight::check(sh, &def, &paths::logs_dir().join("preflight.log"))?;

        // One graph from build to verdict: setup's tasks, the forwards, the runs' kubeconfig, the
        // Gitea check and the flows. Shared infra is guarded by a file lock on kind, by a Lease in
        // a shared cluster, held until the last shared-infra task is done (then others may go on).
        let setup_ctx = RunContext::resolve(sh, &def.request(None, Some("setup")))?;
        let shared = Mutex::new(Shared {
            guard: Some(SharedGuard::acquire(sh, &def)?),
            left: tasks.iter().filter(|t| graph::is_infra(&t.action)).count(),
            fresh: 0,
        });
        let env = setup::env_for(sh, &def, &setup_ctx, setup::How::default())?;
        println!("ensuring shared infra ({} tasks; what is up to date is skipped)", def.tasks.len());
        let settings = gitea::Settings::from_env(sh);
        let log = paths::logs_dir().join("e2e.log");
        let kubeconfig: OnceLock<PathBuf> = OnceLock::new();
        let opts = Options {
            policy: Policy::KeepGoing,
            mode: "e2e",
            ..Options::new(paths::logs_dir().join("flows"), ProgressMode::Quiet)
        };
        let finished: Mutex<Vec<FlowResult>> = Mutex::new(Vec::new());
        // Shared infra is up (every setup task and forward done): records shared, the lock let go.
        let infra_done = |fresh: bool| -> Result<()> {
            let mut s = shared.lock().map_err(|_| anyhow::anyhow!("shared-infra state poisoned"))?;
            s.left -= 1;
            s.fresh += usize::from(fresh);
            if s.left == 0 {
                let sh = Shell::new()?;
                setup::share_records(&sh, &def, &setup_ctx, &env)?;
                mark_shared(&def)?;
                println!(
                    "shared infra: {} of {} task(s) up to date, {} run",
                    s.fresh,
                    def.tasks.len(),
                    def.tasks.len() - s.fresh
                );
                s.guard = None;
            }
            Ok(())
        };
        let report = pipeline::run(&tasks, &opts, &|job| match job.task.action {
            Work::Setup(task) => {
                job.narrow(task, |j| crate::e2e::setup::actions::run(j, &env))?;
                infra_done(job.is_up_to_date())
            }
            Work::Forward(f) => {
                port_forward::ensure(std::slice::from_ref(f))?;
                infra_done(false)
            }
            Work::Kubeconfig => {
                // Never the wrong cluster: the definition's context must exist, and every flow's
                // child processes get a kubeconfig that holds only it.
                let sh = Shell::new()?;
                kube::require_context(&sh, &def.kube_context(), &log)?;
                let path = kube::write_kubeconfig(&sh, &def.cluster, def.existing.as_deref(), &log)?;
                let _ = kubeconfig.set(path);
                Ok(())
            }
            Work::GiteaCheck => check_shared_gitea(&Shell::new()?, &setup_ctx, &settings, &log),
            Work::Flow(flow) => {
                let kubeconfig = kubeconfig.get().context("the runs' kubeconfig was not written")?;
                let run = FlowRun { def: &def, settings: &settings, keep: self.keep, kubeconfig };
                let result = run_flow(&run, flow, start, job.deadline);
                job.note(&format!(
                    "run {} namespace {} outcome {:?} artifacts {}",
                    result.run_id,
                    result.namespace,
                    result.outcome,
                    result.artifacts.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into())
                ));
                let error = (result.outcome != Outcome::Passed)
                    .then(|| result.error.clone().unwrap_or_else(|| format!("{:?}", result.outcome)));
                if let Ok(mut done) = finished.lock() {
                    done.push(result);
                }
                match error {
                    Some(e) => Err(anyhow::anyhow!(e)),
                    None => Ok(()),
                }
            }
        })?;
        drop(shared);
        let mut results = finished.into_inner().unwrap_or_default();
        // A flow that never started (what it needs failed, or Ctrl-C) is a result too.
        for f in &flows {
            if results.iter().any(|r| r.flow == f.name) {
                continue;
            }
            let causes = graph::root_failures(&report, &graph::flow_id(&f.name));
            let interrupted = exec::cancelled() || causes.is_empty();
            results.push(FlowResult {
                flow: f.name.clone(),
                run_id: String::new(),
                namespace: String::new(),
                start_s: 0.0,
                end_s: 0.0,
                outcome: if interrupted { Outcome::Interrupted } else { Outcome::Failed },
                error: Some(if interrupted {
                    "not run: interrupted".to_string()
                } else {
                    format!("not run: it needs what failed:\n{}", causes.join("\n"))
                }),
                artifacts: None,
                kept: false,
                alone: f.exclusive,
            });
        }
        results.sort_by_key(|r| flows.iter().position(|f| f.name == r.flow));

        print_summary(&results);
        write_junit(&junit, &suite, &results, start.elapsed().as_secs_f64())?;
        println!("JUnit: {}", junit.display());
        if let Some(error) = report.failure() {
            let infra: Vec<&str> = report
                .tasks
                .iter()
                .filter(|t| t.status.is_failure() && !t.id.starts_with("flow:"))
                .map(|t| t.id.as_str())
                .collect();
            if !infra.is_empty() {
                eprintln!("error: shared infra incomplete ({}): {error:#}", infra.join(", "));
            }
        }
        let name = format!("e2e-{}", clock::unix_now());
        let json = pipeline::write_report(&report, &paths::state_root().join("timings"), &name)?;
        println!("{}", pipeline::gantt(&report));
        println!("timing report: {}", json.display());

        if exec::cancelled() || results.iter().any(|r| r.outcome == Outcome::Interrupted) {
            return Ok(130);
        }
        Ok(if results.iter().all(|r| r.outcome == Outcome::Passed) { 0 } else { 1 })
    }
}

/// Whoever ensures shared infra holds this: the file lock on one machine (kind), the cluster's
/// `e2e-shared-infra` Lease when the cluster is shared (`existing`), so two machines never race.
struct SharedGuard {
    _file: Option<crate::e2e::infra::shared_lock::SharedLock>,
    _lease: Option<crate::e2e::context::coordination::HeldLease>,
}

impl SharedGuard {
    fn acquire(sh: &Shell, def: &Definition) -> Result<SharedGuard> {
        let Some(context) = &def.existing else {
            return Ok(SharedGuard {
                _file: Some(crate::e2e::infra::shared_lock::SharedLock::acquire("e2e")?),
                _lease: None,
            });
        };
        let held = crate::e2e::context::coordination::take_shared_infra(
            sh,
            context,
            "setup",
            def.lease_duration,
            paths::logs_dir().join("coordination.log"),
        )?;
        Ok(SharedGuard { _file: None, _lease: Some(held) })
    }
}

/// The shared-infra lock while setup's tasks and the forwards run, and how many are left.
struct Shared {
    guard: Option<SharedGuard>,
    left: usize,
    /// Setup tasks found up to date.
    fresh: usize,
}

/// `shared.json` is read and written by the Gitea check and by the end of shared infra, which
/// may run at once in the graph: one at a time.
static MARKER: Mutex<()> = Mutex::new(());

/// Reads `shared.json` (an empty object when it is missing or unreadable), hands it to `change`,
/// and writes it back when `change` says so; one caller at a time.
fn update_marker(change: impl FnOnce(&mut serde_json::Value) -> bool) -> Result<()> {
    let _one = MARKER.lock().unwrap_or_else(|p| p.into_inner());
    let marker = paths::state_root().join("shared.json");
    let mut record: serde_json::Value = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    if change(&mut record) {
        std::fs::write(&marker, serde_json::to_string_pretty(&record)?)
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(())
}

/// Shared infra is up: `shared.json` says when, for which cluster, by whom.
fn mark_shared(def: &Definition) -> Result<()> {
    update_marker(|record| {
        if !record.is_object() {
            *record = json!({});
        }
        record["cluster"] = def.cluster.clone().into();
        record["completed"] = clock::rfc3339(std::time::SystemTime::now()).into();
        record["pid"] = std::process::id().into();
        true
    })
}

/// Reused shared Gitea is checked before runs rely on it (its data is an emptyDir: a restarted
/// pod has lost the org, tokens and keys, and has new SSH host keys). A changed host key is said
/// plainly; a lost org is made again; the keys are recorded in `shared.json` for the next run.
fn check_shared_gitea(
    sh: &Shell,
    ctx: &RunContext,
    settings: &gitea::Settings,
    log: &std::path::Path,
) -> Result<()> {
    let now = gitea::check_shared(sh, ctx, settings, log).context("checking shared Gitea before the runs")?;
    update_marker(|recorded| {
        let before = recorded["gitea_host_keys"].as_str().map(str::to_string);
        if before.as_ref().is_some_and(|b| *b != now.host_keys) {
            println!(
                "note: Gitea restarted since shared infra was set up (its SSH host keys changed; its data is an emptyDir): \
                 repositories, tokens and deploy keys of earlier runs are gone{}",
                if now.org_recreated { format!("; org {} was made again", settings.org) } else { String::new() }
            );
        } else if now.org_recreated {
            println!("note: Gitea had lost org {} (a restarted pod?): made again", settings.org);
        }
        if !recorded.is_object() {
            return false;
        }
        recorded["gitea_host_keys"] = now.host_keys.clone().into();
        true
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// One flow, start to verdict. Never panics on a flow failure: it is a result.
/// What every flow of one e2e invocation shares.
struct FlowRun<'a> {
    def: &'a Definition,
    settings: &'a gitea::Settings,
    keep: Keep,
    /// Holds only the definition's cluster: the flow's child processes get it as KUBECONFIG.
    kubeconfig: &'a std::path::Path,
}

fn run_flow(run: &FlowRun<'_>, flow: &Flow, e2e_start: Instant, deadline: Instant) -> FlowResult {
    let (def, settings, keep) = (run.def, run.settings, run.keep);
    let start_s = e2e_start.elapsed().as_secs_f64();
    let mut result = FlowResult {
        flow: flow.name.clone(),
        run_id: String::new(),
        namespace: String::new(),
        start_s,
        end_s: start_s,
        outcome: Outcome::Failed,
        error: None,
        artifacts: None,
        kept: false,
        alone: flow.exclusive,
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    sh.change_dir(&def.root);
    // Each flow gets its own run id, even when E2E_RUN_ID is set for the invocation (a given id
    // also makes the context ignore the environment's namespaces).
    let request = def.request(Some(crate::e2e::context::generate_run_id()), Some(&flow.name));
    let ctx = match RunContext::resolve(&sh, &request) {
        Ok(ctx) => ctx,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return result;
        }
    };
    let ctx = RunContext { kubeconfig: Some(run.kubeconfig.to_path_buf()), ..ctx };
    ctx.export(&sh);
    let local_port = free_port().to_string();
    sh.set_var("E2E_LOCAL_PORT", &local_port);
    result.run_id = ctx.run_id.clone();
    result.namespace = ctx.test_namespace.clone();
    println!("flow {}: run {} in namespace {}", flow.name, ctx.run_id, ctx.test_namespace);

    let mut record = RunRecord::new(&ctx);
    record.gitea = flow.gitea;
    let _ = record.save();
    let record = Arc::new(Mutex::new(record));
    let heartbeat = Heartbeat::start(record.clone());
    // In a shared cluster the run is also recorded there, so every machine sees it: a Lease
    // renewed while it lives (a SIGKILLed owner's expires and `cleanup --stale` reaps it).
    let run_lease = match &def.existing {
        None => None,
        Some(context) => {
            let mut labels = serde_json::Map::new();
            labels.insert(crate::e2e::context::coordination::RUN_LABEL.into(), ctx.run_id.clone().into());
            let mut annotations = serde_json::Map::new();
            for (k, v) in [
                ("e2e.configbutler.ai/flow", flow.name.clone()),
                // Recorded while it runs; the record goes when the run ends (or, its owner dead,
                // when `cleanup --stale` reaps it after the Lease expired).
                ("e2e.configbutler.ai/status", "running".to_string()),
                (
                    "e2e.configbutler.ai/namespaces",
                    format!("{},{}", ctx.test_namespace, ctx.controller_namespace),
                ),
                // What a reaper on another machine needs: the run's label and whether it has a
                // Gitea repository, token and key to remove.
                ("e2e.configbutler.ai/label", ctx.label_key.clone()),
                ("e2e.configbutler.ai/gitea", flow.gitea.to_string()),
                ("e2e.configbutler.ai/host", crate::e2e::runs::hostname()),
                ("e2e.configbutler.ai/pid", std::process::id().to_string()),
                ("e2e.configbutler.ai/started", clock::rfc3339(std::time::SystemTime::now())),
            ] {
                annotations.insert(k.into(), v.into());
            }
            let spec = crate::e2e::context::coordination::LeaseSpec {
                context: context.clone(),
                namespace: crate::e2e::context::coordination::NAMESPACE.into(),
                name: format!("e2e-run-{}", ctx.run_id),
                holder: crate::e2e::context::coordination::holder_identity(&ctx.run_id),
                duration: def.lease_duration,
                labels,
                annotations,
                log: ctx.logs_dir().join("coordination.log"),
            };
            match crate::e2e::context::coordination::acquire(&sh, spec, Duration::from_secs(60)) {
                Ok(held) => Some(held),
                Err(e) => {
                    result.error = Some(format!("recording the run in the cluster: {e:#}"));
                    result.end_s = e2e_start.elapsed().as_secs_f64();
                    return result;
                }
            }
        }
    };

    let outcome = flow_steps(&sh, &ctx, flow, settings, &local_port, deadline);
    drop(heartbeat);
    if let Some(lease) = run_lease {
        lease.release(true);
    }
    result.end_s = e2e_start.elapsed().as_secs_f64();
    let interrupted = exec::cancelled();
    result.outcome = match (&outcome, interrupted) {
        (_, true) => Outcome::Interrupted,
        (Ok(()), false) => Outcome::Passed,
        (Err(_), false) => Outcome::Failed,
    };
    result.error = outcome.err().map(|e| format!("{e:#}"));

    let forward_logs: Vec<PathBuf> = def.forwards.iter().map(|f| port_forward::log_file(f.local)).collect();
    let status = match result.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Interrupted => "interrupted",
    };
    if result.outcome != Outcome::Passed {
        let reason = result.error.clone().unwrap_or_default();
        match diagnostics::collect(&sh, &ctx, &reason, &forward_logs) {
            Ok(dir) => result.artifacts = Some(dir),
            Err(e) => eprintln!("flow {}: diagnostics incomplete: {e:#}", flow.name),
        }
    }
    let clean = match (result.outcome, keep) {
        (Outcome::Interrupted, _) => true,
        (_, Keep::Always) => false,
        (Outcome::Passed, _) => true,
        (Outcome::Failed, Keep::Failed) => false,
        (Outcome::Failed, Keep::Never) => true,
    };
    if let Ok(mut r) = record.lock() {
        r.status = status.into();
        r.kept = !clean;
        r.heartbeat = clock::unix_now();
        let _ = r.save();
    }
    if clean {
        if let Err(e) = runs::cleanup_run(&sh, &ctx.run_id, result.artifacts.is_some()) {
            eprintln!("flow {}: {e:#}", flow.name);
        }
    } else {
        result.kept = true;
        if result.outcome == Outcome::Failed {
            println!(
                "flow {} failed; kept namespace {}: kubectl get all --namespace {}  (remove: cargo xtask cleanup --run-id {})",
                flow.name, ctx.test_namespace, ctx.test_namespace, ctx.run_id
            );
        }
    }
    result
}

fn flow_steps(
    sh: &Shell,
    ctx: &RunContext,
    flow: &Flow,
    settings: &gitea::Settings,
    local_port: &str,
    deadline: Instant,
) -> Result<()> {
    let logs = ctx.logs_dir();
    // The run's namespaces, labeled: cleanup finds them by that label.
    let labels = ctx.labels();
    let items: Vec<serde_json::Value> = [&ctx.test_namespace, &ctx.controller_namespace]
        .iter()
        .map(|n| json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": n, "labels": labels } }))
        .collect();
    let namespaces = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    exec::cmd(
        cmd!(sh, "kubectl apply --server-side --field-manager=xtask-e2e -f -").args(ctx.kubectl_args()),
    )
    .stdin(namespaces.to_string())
    .log(logs.join("namespace.log"))
    .timeout(Duration::from_secs(120))
    .run()
    .context("creating the run's namespaces")?;
    if flow.gitea {
        gitea::setup(sh, ctx, settings).context("setting up the run's Gitea repository")?;
    }
    let mut vars: Vec<(String, String)> = ctx.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    vars.push(("E2E_LOCAL_PORT".into(), local_port.into()));
    // The images as setup built them (`IMAGE_DEMO=e2e-demo:<digest>`): steps name what runs.
    let images =
        crate::e2e::setup::incremental::Store::open(crate::e2e::setup::incremental::Store::path(), false)
            .image_vars();
    for (k, v) in &images {
        sh.set_var(k, v);
    }
    vars.extend(images);
    // The flow's own env, then its steps' arguments, expanded strictly with the run's variables
    // and the environment's (later entries win: the run's over the environment's, the flow's last).
    let mut known: Vec<(String, String)> =
        crate::vars::process_env().into_iter().filter(|(k, _)| !k.starts_with("E2E_")).collect();
    known.extend(vars.iter().cloned());
    for (k, v) in &flow.env {
        let value = crate::vars::expand_strict(v, &known)
            .with_context(|| format!("env {k} of flow {}", flow.name))?;
        sh.set_var(k, &value);
        known.push((k.clone(), value));
    }
    for (i, step) in flow.steps.iter().enumerate() {
        let argv = step
            .iter()
            .map(|a| crate::vars::expand_strict(a, &known))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("step {} of flow {}", i + 1, flow.name))?;
        let (program, args) = argv.split_first().context("empty step")?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("flow {} timed out after {:.0}s", flow.name, flow.timeout.as_secs_f64());
        }
        exec::cmd(cmd!(sh, "{program} {args...}"))
            .log(logs.join(format!("step-{}.log", i + 1)))
            .timeout(left)
            .run()
            .with_context(|| format!("step {} of flow {}", i + 1, flow.name))?;
    }
    if !flow.checks.is_empty() {
        // The flow's checks, after its steps, with what the steps had (the run, the flow's env,
        // E2E_LOCAL_PORT) and the run's Git names; by default each may take what the flow has left.
        let mut runner = crate::e2e::checks::runner::Runner::new(sh, ctx, logs.join("checks.log"));
        runner.vars = known.clone();
        runner.vars.extend(crate::e2e::checks::runner::git_vars(ctx));
        runner.default_timeout =
            deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        runner.run_all(&flow.checks).with_context(|| format!("flow {}", flow.name))?;
    }
    Ok(())
}

/// The terminal width the summary and the Gantt chart fit.
const COLUMNS: usize = 80;

fn print_summary(results: &[FlowResult]) {
    print!("{}", summary(results));
}

/// One line per flow (flow, result, time, run id), its namespace and artifacts on lines of their
/// own under it: 80 columns for the longest names Kubernetes allows.
fn summary(results: &[FlowResult]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("\n{:<19} {:<11} {:>8}  RUN ID\n", "FLOW", "RESULT", "TIME");
    let detail = |out: &mut String, label: &str, value: &str| {
        let line = format!("{:<20}{label} {value}", "");
        if line.chars().count() <= COLUMNS {
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "  {label}\n    {value}");
        }
    };
    for r in results {
        let verdict = match (r.outcome, r.kept) {
            (Outcome::Passed, _) => "passed",
            (Outcome::Failed, true) => "FAILED/kept",
            (Outcome::Failed, false) => "FAILED",
            (Outcome::Interrupted, _) => "interrupted",
        };
        let _ = writeln!(out, "{:<19} {verdict:<11} {:>7.1}s  {}", r.flow, r.end_s - r.start_s, r.run_id);
        if r.alone {
            detail(&mut out, "ran", "alone (exclusive: no other flow ran meanwhile)");
        }
        if !r.namespace.is_empty() {
            detail(&mut out, "namespace", &r.namespace);
        }
        if let Some(p) = &r.artifacts {
            detail(&mut out, "artifacts", &runs::rel(p));
        }
    }
    for r in results.iter().filter(|r| r.outcome == Outcome::Failed) {
        let error = exec::printable(r.error.as_deref().unwrap_or("failed"));
        let _ = write!(
            out,
            "\n{} ({}): {}\n",
            r.flow,
            r.run_id,
            error.lines().take(12).collect::<Vec<_>>().join("\n  ")
        );
    }
    let passed = results.iter().filter(|r| r.outcome == Outcome::Passed).count();
    let _ = writeln!(out, "\n{passed} of {} flow(s) passed", results.len());
    out
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write_junit(path: &PathBuf, suite: &str, results: &[FlowResult], total: f64) -> Result<()> {
    let failures = results.iter().filter(|r| r.outcome == Outcome::Failed).count();
    let errors = results.iter().filter(|r| r.outcome == Outcome::Interrupted).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">",
        results.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total:.3}\">",
        xml(suite),
        results.len()
    );
    for r in results {
        let _ = writeln!(
            out,
            "    <testcase classname=\"e2e.flows\" name=\"{}\" time=\"{:.3}\">",
            xml(&r.flow),
            r.end_s - r.start_s
        );
        let message = xml(&exec::redact(r.error.as_deref().unwrap_or("")));
        let first = message.lines().next().unwrap_or("");
        match r.outcome {
            Outcome::Passed => {}
            Outcome::Failed => {
                let _ = writeln!(out, "      <failure message=\"{first}\">{message}</failure>");
            }
            Outcome::Interrupted => {
                let _ = writeln!(out, "      <error message=\"interrupted\">{message}</error>");
            }
        }
        let artifacts = r.artifacts.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "      <system-out>run_id={} namespace={} artifacts={}</system-out>",
            xml(&r.run_id),
            xml(&r.namespace),
            xml(&artifacts)
        );
        let _ = writeln!(out, "    </testcase>");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_fits_80_columns_for_the_longest_names() {
        let id = "a".repeat(35);
        let result = FlowResult {
            flow: "quickstart-manifest".into(),
            run_id: id.clone(),
            namespace: format!("run-e2e-quickstart-manifest-{id}"),
            start_s: 0.0,
            end_s: 1234.5,
            outcome: Outcome::Failed,
            error: Some("step 1 failed\u{1b}[31m red".into()),
            artifacts: Some(std::path::PathBuf::from(format!("/somewhere/target/e2e/runs/{id}/artifacts"))),
            kept: true,
            alone: true,
        };
        let text = summary(&[result]);
        for line in text.lines().filter(|l| !l.contains("failed\\u")) {
            assert!(line.chars().count() <= COLUMNS, "{} columns: {line}", line.chars().count());
        }
        assert!(
            text.contains("FAILED/kept")
                && text.contains(&id)
                && text.contains("run-e2e-quickstart-manifest-")
        );
        assert!(!text.contains('\u{1b}'), "control characters are escaped: {text}");
    }
}
