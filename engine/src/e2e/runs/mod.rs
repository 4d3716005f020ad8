//! Runs on disk (`target/e2e/runs/<id>/run.json`): who owns each, its heartbeat, its state; and
//! cleanup by run id only. Nothing here ever touches shared infra or the port-forwards.

pub mod diagnostics;
pub mod run_context;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::e2e::context::{self, RunContext};
use crate::e2e::infra::gitea;
use crate::lint::value::{FromValue, Table, ToValue};
use crate::{clock, exec, paths};

/// `run.json`: enough to find a run's owner and everything it made.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) namespace: String,
    pub(crate) controller_namespace: String,
    pub(crate) label: String,
    pub(crate) pid: u32,
    pub(crate) host: String,
    /// Unix seconds.
    pub(crate) started: u64,
    pub(crate) heartbeat: u64,
    /// running | passed | failed | interrupted | cleanup-incomplete
    pub(crate) status: String,
    /// What a cleanup could not remove (with status `cleanup-incomplete`).
    pub(crate) left: Vec<String>,
    pub(crate) kept: bool,
    /// Gitea was set up for it (so cleanup tears it down).
    pub(crate) gitea: bool,
    /// The kube context its objects live in (cleanup deletes there and nowhere else).
    pub(crate) kube_context: String,
}

impl FromValue for RunRecord {
    /// Leniently: a key a newer version added is ignored.
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(RunRecord {
            run_id: t.req("run_id")?,
            flow: t.req("flow")?,
            namespace: t.req("namespace")?,
            controller_namespace: t.req("controller_namespace")?,
            label: t.req("label")?,
            pid: t.req("pid")?,
            host: t.req("host")?,
            started: t.req("started")?,
            heartbeat: t.req("heartbeat")?,
            status: t.req("status")?,
            kept: t.or_default("kept")?,
            gitea: t.or_default("gitea")?,
            kube_context: t.or_default("kube_context")?,
            left: t.or_default("left")?,
        })
    }
}

impl ToValue for RunRecord {
    fn to_value(&self) -> Value {
        json!({
            "run_id": self.run_id, "flow": self.flow, "namespace": self.namespace,
            "controller_namespace": self.controller_namespace, "label": self.label, "pid": self.pid,
            "host": self.host, "started": self.started, "heartbeat": self.heartbeat,
            "status": self.status, "kept": self.kept, "gitea": self.gitea,
            "kube_context": self.kube_context, "left": self.left,
        })
    }
}

impl RunRecord {
    pub(crate) fn new(ctx: &RunContext) -> RunRecord {
        let now = clock::unix_now();
        RunRecord {
            run_id: ctx.run_id.clone(),
            flow: ctx.flow.clone(),
            namespace: ctx.test_namespace.clone(),
            controller_namespace: ctx.controller_namespace.clone(),
            label: ctx.label_key.clone(),
            pid: std::process::id(),
            host: hostname(),
            started: now,
            heartbeat: now,
            status: "running".into(),
            kept: false,
            gitea: false,
            kube_context: ctx.kube_context.clone(),
            left: Vec::new(),
        }
    }

    pub(crate) fn path(run_id: &str) -> PathBuf {
        context::run_dir(run_id).join("run.json")
    }

    pub(crate) fn save(&self) -> Result<()> {
        let path = RunRecord::path(&self.run_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.to_value())?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub(crate) fn load(run_id: &str) -> Option<RunRecord> {
        RunRecord::read(run_id).ok()
    }

    /// The run's record, or why it cannot be read. A record is believed only when it is run
    /// `run_id`'s (its `run_id` is its directory's: `runs/alias1/run.json` naming `liveone` would
    /// make a cleanup of `alias1` delete the live run `liveone`), and when its label key is one
    /// Kubernetes accepts (cleanup selects `<label>=<id>`: a key ending in `!` negates it).
    pub(crate) fn read(run_id: &str) -> Result<RunRecord> {
        let path = RunRecord::path(run_id);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let record: RunRecord = crate::lint::value::from_json(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{} is not a run record", path.display()))?;
        if record.run_id != run_id {
            bail!(
                "{} is not a run record of run {run_id}: it names run {:?} (a copied or edited record; \
                 nothing is cleaned up by it)",
                path.display(),
                record.run_id
            );
        }
        if let Err(why) = context::validate_label_key(&record.label) {
            bail!(
                "{} is not a run record: its label {:?} is not a Kubernetes qualified name ({why}); \
                 nothing is selected by it",
                path.display(),
                record.label
            );
        }
        Ok(record)
    }

    /// Is the process that owns this run still there? (Another host's run: we cannot tell.) A
    /// live pid counts only if that process is older than the run: a pid reused by a newer
    /// process is not the owner.
    pub(crate) fn owner(&self) -> Owner {
        if self.host != hostname() {
            Owner::OtherHost
        } else if exec::pid_alive(self.pid as i32) && process_started_by(self.pid, self.started) {
            Owner::Alive
        } else {
            Owner::Gone
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Alive,
    Gone,
    OtherHost,
}

/// Did process `pid` start no later than `unix` (plus a little slack)? True when it cannot be
/// told (no /proc): then a live pid is taken as the owner, the safe side.
fn process_started_by(pid: u32, unix: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    // Field 22, after the parenthesised command (which may hold spaces): start time in clock
    // ticks after boot (proc(5)).
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return true };
    let Some(ticks) = after.split_whitespace().nth(19).and_then(|t| t.parse::<u64>().ok()) else {
        return true;
    };
    let Some(boot) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok()))
    else {
        return true;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    boot.saturating_add(ticks / hz) <= unix.saturating_add(5)
}

pub(crate) use crate::e2e::context::coordination::hostname;

/// Keeps a run's heartbeat fresh while it lives (every 5 s); stops at once on drop.
pub(crate) struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub(crate) fn start(record: Arc<Mutex<RunRecord>>) -> Heartbeat {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_secs(5))
            {
                if let Ok(mut r) = record.lock() {
                    r.heartbeat = clock::unix_now();
                    let _ = r.save();
                }
            }
        });
        Heartbeat { stop: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every run on disk, and the run directories whose record cannot be read (never silently
/// invisible: `runs` and `cleanup --stale` report them).
pub(crate) fn all() -> (Vec<RunRecord>, Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(paths::state_root().join("runs")) else {
        return (Vec::new(), Vec::new());
    };
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !RunRecord::path(&id).exists() {
            continue; // a run whose setup has not written its record yet, or only kept logs
        }
        match RunRecord::read(&id) {
            Ok(r) => out.push(r),
            Err(e) => unreadable.push((id, format!("{e:#}"))),
        }
    }
    out.sort_by_key(|r| r.started);
    unreadable.sort();
    (out, unreadable)
}

/// `<key>=<value>`, the equality selector cleanup deletes by, both parts checked with Kubernetes'
/// label syntax first (a key ending in `!` would make it `key!=value`: everything but the run).
fn selector(key: &str, value: &str) -> Result<String> {
    context::validate_label_key(key)
        .map_err(|why| anyhow::anyhow!("label key {key:?} is not a qualified name: {why}"))?;
    context::validate_label_value(value)
        .map_err(|why| anyhow::anyhow!("label value {value:?} is not valid: {why}"))?;
    Ok(format!("{key}={value}"))
}

/// The status of a run whose cleanup left something behind (its record is kept to retry).
pub(crate) const CLEANUP_INCOMPLETE: &str = "cleanup-incomplete";

/// Cluster-scoped kinds a run may create (each carrying its label).
const CLUSTER_KINDS: &str =
    "clusterrole,clusterrolebinding,validatingwebhookconfiguration,mutatingwebhookconfiguration";

/// Removes what run `run_id` made: namespaces and cluster-scoped objects carrying its label, its
/// Gitea repository/token/key, and its state (artifacts kept when asked). Runs even after Ctrl-C.
pub(crate) fn cleanup_run(sh: &Shell, run_id: &str, keep_artifacts: bool) -> Result<()> {
    context::validate_run_id(run_id)?;
    let record = RunRecord::load(run_id);
    let label = record.as_ref().map(|r| r.label.clone()).unwrap_or_else(|| context::DEFAULT_LABEL_KEY.into());
    let selector = selector(&label, run_id)?;
    let context = record
        .as_ref()
        .map(|r| r.kube_context.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(crate::e2e::definition::default_kube_context);
    let log = context::run_dir(run_id).join("logs").join("cleanup.log");
    // Gitea only when a record says the run had a repository there (run.json, or the
    // gitea.json its Gitea setup writes): for a run this machine knows nothing of, asking an
    // unreachable Gitea about three guessed repositories cost 27 s of retries and an exit 1.
    let gitea = match &record {
        Some(r) => r.gitea,
        None => gitea::Record::read(&context::run_dir(run_id)).is_some(),
    };
    if record.is_none() {
        eprintln!(
            "run {run_id}: no record of it here ({}): removing what carries its label in {context}{}",
            rel(&RunRecord::path(run_id)),
            if gitea {
                ", and its Gitea repository (gitea.json)"
            } else {
                "; Gitea is left alone (nothing says it had a repository; `cargo xtask gitea teardown --run-id <id>` removes one)"
            }
        );
    }
    let flow = record.as_ref().map(|r| r.flow.as_str());
    let left = remove_run_objects(sh, run_id, &selector, &context, flow, gitea, &log);
    let dir = context::run_dir(run_id);
    if !left.is_empty() {
        // What is still in the cluster (or in Gitea) is findable only through this record (its
        // label, context, flow and Gitea state): it stays, saying so, until a cleanup removes
        // every piece. `cleanup --stale` retries it.
        let kept = match record {
            Some(mut r) => {
                r.status = CLEANUP_INCOMPLETE.into();
                r.left = left.clone();
                r.save().map(|()| format!("its record {} is kept", rel(&RunRecord::path(run_id))))
            }
            None => Ok("it has no record".to_string()),
        };
        let kept = kept.unwrap_or_else(|e| format!("its record could not be updated: {e:#}"));
        bail!(
            "cleanup of run {run_id} incomplete, still there:\n- {}\n{kept}; `cargo xtask cleanup --run-id {run_id}` \
             (or `cleanup --stale`) tries again",
            left.join("\n- ")
        );
    }
    let mut errors = Vec::new();
    if dir.exists() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?.flatten()
        {
            let path = entry.path();
            if keep_artifacts && entry.file_name() == "artifacts" {
                continue;
            }
            if keep_artifacts && entry.file_name() == "logs" {
                continue; // the logs explain the artifacts
            }
            let removed =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            if let Err(e) = removed {
                errors.push(format!("{}: {e}", path.display()));
            }
        }
        let _ = std::fs::remove_dir(&dir); // only when empty
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("cleanup of run {run_id} incomplete:\n- {}", errors.join("\n- "))
    }
}

fn age(secs: u64) -> String {
    let d = clock::unix_now().saturating_sub(secs);
    match d {
        0..=119 => format!("{d}s"),
        120..=7199 => format!("{}m", d / 60),
        _ => format!("{}h", d / 3600),
    }
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask runs` and `cargo xtask cleanup`.
// ---------------------------------------------------------------------------------------------

/// List the runs on this machine and their state.
///
/// Examples:
///   cargo xtask runs
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct RunsArgs {
    /// The e2e definition; when its cluster is shared (`provider = "existing"`), the runs every
    /// machine recorded there are listed too [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
}

/// The definition's shared cluster (its context and Lease duration), when it has one; a missing
/// default definition is no error (`runs` and `cleanup` work on local state alone).
fn shared_cluster(definition: &Option<PathBuf>) -> Result<Option<String>> {
    let path = definition.clone().unwrap_or_else(crate::e2e::definition::default_path);
    if definition.is_none() && !path.exists() {
        return Ok(None);
    }
    Ok(crate::e2e::definition::load(&path)?.existing)
}

/// The runs recorded in the shared cluster `context`, as rows.
fn print_cluster_runs(sh: &Shell, context: &str) -> Result<()> {
    let leases =
        crate::e2e::context::coordination::run_leases(sh, context, &paths::logs_dir().join("runs.log"))?;
    println!("\nruns recorded in {context} (every machine's):");
    if leases.is_empty() {
        println!("  none");
        return Ok(());
    }
    println!("  {:<14} {:<20} {:<34} {:>9} {:<8}  NAMESPACES", "RUN", "FLOW", "HOLDER", "RENEWED", "STATE");
    let now = clock::unix_now();
    for lease in leases {
        let held = crate::e2e::context::coordination::Held::of(&lease);
        let notes = &lease["metadata"]["annotations"];
        println!(
            "  {:<14} {:<20} {:<34} {:>9} {:<8}  {}",
            lease["metadata"]["labels"][crate::e2e::context::coordination::RUN_LABEL].as_str().unwrap_or("?"),
            notes["e2e.configbutler.ai/flow"].as_str().unwrap_or("?"),
            held.holder,
            age(held.renewed),
            if held.expired(now) { "expired" } else { "alive" },
            notes["e2e.configbutler.ai/namespaces"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

impl RunsArgs {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        if let Some(context) = shared_cluster(&self.definition)? {
            print_cluster_runs(sh, &context)?;
            println!();
        }
        let (runs, unreadable) = all();
        for (id, why) in &unreadable {
            eprintln!("run {id}: {why}; remove it with `cargo xtask cleanup --run-id {id}`");
        }
        if runs.is_empty() {
            println!("no runs under {}", paths::state_root().join("runs").display());
            return Ok(0);
        }
        println!(
            "{:<14} {:<20} {:<12} {:<16} {:>6} {:>9}  NAMESPACE",
            "RUN", "FLOW", "STATUS", "OWNER", "AGE", "HEARTBEAT"
        );
        for r in runs {
            let owner = match r.owner() {
                Owner::Alive => format!("pid {} alive", r.pid),
                Owner::Gone => "gone".into(),
                Owner::OtherHost => format!("on {}", r.host),
            };
            let status = if r.kept { format!("{} (kept)", r.status) } else { r.status.clone() };
            println!(
                "{:<14} {:<20} {:<12} {:<16} {:>6} {:>9}  {}",
                r.run_id,
                r.flow,
                status,
                owner,
                age(r.started),
                age(r.heartbeat),
                r.namespace
            );
            for what in &r.left {
                println!("    left by its cleanup: {what}");
            }
        }
        Ok(0)
    }
}

/// Remove one run's namespaces, cluster-scoped objects, Gitea repository/token/key and state.
///
/// Selects only by the run's label (configbutler.ai/e2e-run-id=<id>) and its namespaces: never
/// by broad name, never shared infra, never the port-forwards. `--stale` reaps every run whose
/// owner is gone (dead pid on this host, or no heartbeat) and whose heartbeat is older than
/// --older-than; a live run is never touched.
///
/// Examples:
///   cargo xtask cleanup --run-id k3x9q2m1ab
///   cargo xtask cleanup --stale --older-than 2h
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct CleanupArgs {
    /// The run to remove
    #[arg(long, conflicts_with = "stale", required_unless_present = "stale")]
    pub(crate) run_id: Option<String>,
    /// Remove every run whose owner is gone
    #[arg(long)]
    pub(crate) stale: bool,
    /// With --stale: only runs whose heartbeat is older than this
    #[arg(long, default_value = "2h", value_parser = parse_age)]
    pub(crate) older_than: Duration,
    /// Keep the run's artifacts and logs
    #[arg(long)]
    pub(crate) keep_artifacts: bool,
    /// The e2e definition; with --stale and a shared cluster, runs of any machine whose Lease
    /// expired are reaped there too [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(s)
}

impl CleanupArgs {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        if let Some(id) = &self.run_id {
            cleanup_run(sh, id, self.keep_artifacts)?;
            println!("run {id}: cleaned");
            return Ok(0);
        }
        let now = clock::unix_now();
        let (runs, unreadable) = all();
        let mut failed = unreadable.len();
        for (id, why) in &unreadable {
            eprintln!("run {id}: {why}; not reaped (its owner cannot be told): `cargo xtask cleanup --run-id {id}` removes it");
        }
        let mut reaped = 0;
        for r in runs {
            // A run whose cleanup was left incomplete has ended (its owner said so): it is retried
            // at once, once its owner is gone.
            let old = now.saturating_sub(r.heartbeat) >= self.older_than.as_secs()
                || r.status == CLEANUP_INCOMPLETE;
            if !old || r.owner() == Owner::Alive {
                continue;
            }
            match cleanup_run(sh, &r.run_id, self.keep_artifacts) {
                Ok(()) => {
                    reaped += 1;
                    println!(
                        "run {} ({}): reaped (owner gone, heartbeat {} ago)",
                        r.run_id,
                        r.flow,
                        age(r.heartbeat)
                    );
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("run {}: {e:#}", r.run_id);
                }
            }
        }
        if let Some(context) = shared_cluster(&self.definition)? {
            match reap_cluster_runs(sh, &context, now) {
                Ok(n) => reaped += n,
                Err(e) => {
                    failed += 1;
                    eprintln!("runs in {context}: {e:#}");
                }
            }
        }
        println!("{reaped} stale run(s) reaped");
        Ok(if failed > 0 { 1 } else { 0 })
    }
}

/// What a run made outside its state dir: its namespaces and cluster-scoped objects (selected by
/// its label `selector`, never by broad name) and, when it used Gitea, its repository, token and
/// deploy key (names derived from the run id and flow). Returns what could not be removed.
fn remove_run_objects(
    sh: &Shell,
    run_id: &str,
    selector: &str,
    context: &str,
    flow: Option<&str>,
    gitea: bool,
    log: &Path,
) -> Vec<String> {
    let kube = crate::e2e::context::kube::kubectl_args(context);
    let mut errors = Vec::new();
    let timeout = Duration::from_secs(120);
    let kubectl = |c: xshell::Cmd<'_>| exec::cmd(c.args(&kube)).cleanup().log(log).timeout(timeout).run();
    // The run's helm releases first, while their namespaces stand: `helm uninstall` removes
    // what the chart made anywhere (cluster-scoped objects too) and runs its delete hooks.
    if exec::which(sh, "helm").is_some() {
        if let Err(e) = uninstall_releases(sh, selector, context, log) {
            errors.push(format!("helm releases: {e:#}"));
        }
    }
    if let Err(e) =
        kubectl(cmd!(sh, "kubectl delete namespace --selector {selector} --ignore-not-found --wait=false"))
    {
        errors.push(format!("namespaces: {e}"));
    }
    if let Err(e) =
        kubectl(cmd!(sh, "kubectl delete {CLUSTER_KINDS} --selector {selector} --ignore-not-found"))
    {
        errors.push(format!("cluster-scoped objects: {e}"));
    }
    if gitea {
        let settings =
            gitea::Settings { ready_timeout: Duration::from_secs(10), ..gitea::Settings::from_env(sh) };
        if let Err(e) = gitea::teardown(sh, run_id, flow, &settings, context) {
            errors.push(format!("gitea: {e:#}"));
        }
    }
    errors
}

/// Uninstalls every helm release labelled `selector` (`helm upgrade --labels` put it on the
/// release; `helm list --selector` filters on release labels, helm cmd/helm/list.go).
fn uninstall_releases(sh: &Shell, selector: &str, context: &str, log: &Path) -> Result<()> {
    let helm = crate::e2e::context::kube::helm_args(context);
    let out = exec::cmd(
        cmd!(sh, "helm list --all-namespaces --all --selector {selector} --output json").args(&helm),
    )
    .cleanup()
    .log(log)
    .timeout(Duration::from_secs(60))
    .run()
    .context("listing the run's helm releases")?;
    let list: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("`helm list --output json` printed {:?}", out.stdout.trim()))?;
    for release in list.as_array().into_iter().flatten() {
        let (Some(name), Some(ns)) = (release["name"].as_str(), release["namespace"].as_str()) else {
            continue;
        };
        exec::cmd(
            cmd!(sh, "helm uninstall {name} --namespace {ns} --ignore-not-found --wait --timeout 120s")
                .args(&helm),
        )
        .cleanup()
        .log(log)
        .timeout(Duration::from_secs(150))
        .run()
        .with_context(|| format!("uninstalling helm release {name} in {ns}"))?;
    }
    Ok(())
}

/// Runs of any machine recorded in the shared cluster whose Lease expired (their owner stopped
/// renewing it: it died or lost the cluster): their namespaces and their Lease are deleted. A run
/// whose Lease is renewed is never touched.
fn reap_cluster_runs(sh: &Shell, context: &str, now: u64) -> Result<usize> {
    let log = paths::logs_dir().join("cleanup.log");
    let mut reaped = 0;
    for lease in crate::e2e::context::coordination::run_leases(sh, context, &log)? {
        let held = crate::e2e::context::coordination::Held::of(&lease);
        if !held.expired(now) {
            continue;
        }
        let name = lease["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let run_id = lease["metadata"]["labels"][crate::e2e::context::coordination::RUN_LABEL]
            .as_str()
            .unwrap_or("?")
            .to_string();
        if context::validate_run_id(&run_id).is_err() {
            eprintln!("Lease {name} in {context}: {run_id:?} is not a run id; left alone");
            continue;
        }
        let notes = &lease["metadata"]["annotations"];
        let label = notes["e2e.configbutler.ai/label"].as_str().unwrap_or(context::DEFAULT_LABEL_KEY);
        if let Err(why) = context::validate_label_key(label) {
            eprintln!(
                "Lease {name} in {context}: its label {label:?} is not a qualified name ({why}); left alone"
            );
            continue;
        }
        let selector = selector(label, &run_id)?;
        let flow = notes["e2e.configbutler.ai/flow"].as_str();
        let gitea = notes["e2e.configbutler.ai/gitea"].as_str() != Some("false");
        let errors = remove_run_objects(sh, &run_id, &selector, context, flow, gitea, &log);
        if !errors.is_empty() {
            // The Lease stays: the next `cleanup --stale` tries again.
            bail!("run {run_id} in {context}: not reaped:\n- {}", errors.join("\n- "));
        }
        let lease_ns = crate::e2e::context::coordination::NAMESPACE;
        exec::cmd(cmd!(
            sh,
            "kubectl delete lease {name} --namespace {lease_ns} --ignore-not-found --context {context}"
        ))
        .log(&log)
        .timeout(Duration::from_secs(60))
        .run()
        .with_context(|| format!("deleting the Lease of run {run_id}"))?;
        println!(
            "run {run_id} in {context} (held by {}): reaped (Lease expired {}s ago)",
            held.holder,
            now.saturating_sub(held.renewed + held.duration)
        );
        reaped += 1;
    }
    Ok(reaped)
}

/// A path to show in messages.
pub(crate) fn rel(p: &Path) -> String {
    p.strip_prefix(paths::project_root()).unwrap_or(p).display().to_string()
}
