//! The pipeline engine: tasks scheduled as a dependency graph (DESIGN.md "Pipeline engine").
//!
//! A task starts the moment its dependencies are done. Blocking process calls run on dedicated
//! threads, as many as the graph is wide (its largest set of tasks that may run at once), never
//! on rayon's CPU-sized pool. The first failure cancels what has not started and stops what
//! runs; the error names every failed task with the tail of its log. Each task has a timeout,
//! steps known to flake are retried, every task logs to its own file, and each run writes a
//! timing report (JSON, and a text Gantt with the critical path).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::exec::{self, CancelToken};

/// What a task does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Optional prebuild commands, then `docker build`.
    Build {
        tag: String,
        dockerfile: PathBuf,
        context: PathBuf,
        build_args: Vec<(String, String)>,
        prebuild: Vec<Vec<String>>,
        prebuild_env: Vec<(String, String)>,
    },
    /// Reuse the kind cluster if it exists, else create it.
    Cluster { name: String, config: Option<PathBuf>, wait: Duration },
    /// `kind load docker-image`, falling back to `docker save` + `kind load image-archive` (the
    /// containerd image store breaks the former).
    Load { tag: String, cluster: String },
    /// `helm upgrade --install --wait`.
    Helm {
        release: String,
        chart: String,
        repo: Option<String>,
        version: Option<String>,
        namespace: String,
        values: Vec<PathBuf>,
        set: Vec<(String, String)>,
        timeout: Duration,
    },
    /// `kubectl apply` of manifests, then `kubectl wait`s.
    Manifests { files: Vec<PathBuf>, namespace: Option<String>, waits: Vec<Wait> },
    /// A plain command (benchmarks, custom steps).
    Command(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Wait {
    pub resource: String,
    pub condition: String,
    pub timeout: Duration,
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub deps: Vec<String>,
    pub action: Action,
    pub timeout: Duration,
    /// Extra attempts after a failure (image loads and chart fetches flake).
    pub retries: u32,
}

impl Task {
    /// Log file name: `build:demo` → `build-demo.log`.
    pub fn log_name(&self) -> String {
        format!("{}.log", self.id.replace([':', '/'], "-"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// indicatif lines (a terminal, CI unset).
    Bars,
    /// One plain line per start and end.
    Plain,
    Quiet,
}

impl ProgressMode {
    pub fn detect(sh: &Shell) -> ProgressMode {
        use std::io::IsTerminal;
        if sh.var("CI").is_ok_and(|v| !v.is_empty() && v != "false") || !std::io::stderr().is_terminal() {
            ProgressMode::Plain
        } else {
            ProgressMode::Bars
        }
    }
}

pub struct Options {
    /// One task at a time (the old Makefile, for comparison).
    pub sequential: bool,
    pub dry_run: bool,
    pub progress: ProgressMode,
    /// Where each task's log goes.
    pub logs_dir: PathBuf,
    /// The environment every command gets (the run context, a test's PATH).
    pub env: Vec<(String, String)>,
    /// Working directory of every command.
    pub cwd: PathBuf,
}

impl Options {
    /// Running the graph for run `ctx`: its environment (and the shell's PATH) for every command,
    /// its logs dir, progress as the terminal allows, in parallel, for real.
    pub fn for_run(sh: &Shell, ctx: &crate::run_context::RunContext, cwd: &Path) -> Options {
        let mut env: Vec<(String, String)> = ctx.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Ok(path) = sh.var("PATH") {
            env.push(("PATH".into(), path));
        }
        Options {
            sequential: false,
            dry_run: false,
            progress: ProgressMode::detect(sh),
            logs_dir: ctx.logs_dir(),
            env,
            cwd: cwd.to_path_buf(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    /// Running when another task failed, and stopped.
    Stopped,
    /// Never started because another task failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskTiming {
    pub id: String,
    pub deps: Vec<String>,
    pub status: Status,
    pub start_s: Option<f64>,
    pub end_s: Option<f64>,
    pub duration_s: f64,
    pub attempts: u32,
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a pipeline run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub threads: usize,
    pub wall_s: f64,
    pub critical_path: Vec<String>,
    pub critical_path_s: f64,
    pub tasks: Vec<TaskTiming>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.tasks.iter().all(|t| t.status == Status::Ok)
    }

    /// The error naming every failed task with the tail of its log.
    pub fn failure(&self) -> Option<anyhow::Error> {
        let failed: Vec<&TaskTiming> = self.tasks.iter().filter(|t| t.status == Status::Failed).collect();
        if failed.is_empty() {
            return None;
        }
        let stopped = self.tasks.iter().filter(|t| t.status == Status::Stopped).count();
        let skipped = self.tasks.iter().filter(|t| t.status == Status::Skipped).count();
        let mut text = format!("{} task(s) failed ({stopped} stopped, {skipped} not started):", failed.len());
        for t in failed {
            let _ = write!(
                text,
                "\n- {}: {}",
                t.id,
                t.error.as_deref().unwrap_or("failed").lines().next().unwrap_or("")
            );
            let tail = log_tail(Path::new(&t.log), 12);
            if !tail.is_empty() {
                let _ = write!(text, "\n  last lines of {}:", t.log);
                for line in tail.lines() {
                    let _ = write!(text, "\n    {line}");
                }
            }
        }
        Some(anyhow!(text))
    }
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Checks the graph: unique ids, known dependencies, no cycle. Returns a topological order.
pub fn validate(tasks: &[Task]) -> Result<Vec<usize>> {
    let index = index_of(tasks)?;
    for t in tasks {
        for d in &t.deps {
            if !index.contains_key(d.as_str()) {
                bail!("task `{}` depends on `{d}`, which is not a task", t.id);
            }
        }
    }
    let mut indegree: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let dependents = dependents(tasks, &index);
    let mut queue: VecDeque<usize> = (0..tasks.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::new();
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    if order.len() != tasks.len() {
        let stuck: Vec<&str> =
            (0..tasks.len()).filter(|i| indegree[*i] > 0).map(|i| tasks[i].id.as_str()).collect();
        bail!("the tasks form a dependency cycle among: {}", stuck.join(", "));
    }
    Ok(order)
}

fn index_of(tasks: &[Task]) -> Result<BTreeMap<&str, usize>> {
    let mut index = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if index.insert(t.id.as_str(), i).is_some() {
            bail!("two tasks are named `{}`", t.id);
        }
    }
    Ok(index)
}

fn dependents(tasks: &[Task], index: &BTreeMap<&str, usize>) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for d in &t.deps {
            if let Some(&j) = index.get(d.as_str()) {
                out[j].push(i);
            }
        }
    }
    out
}

/// The graph's width: the largest set of tasks none of which depends on another (Dilworth:
/// tasks minus a maximum matching of the reachability relation). That many threads let every
/// task start the moment it is ready.
pub fn width(tasks: &[Task]) -> usize {
    let Ok(index) = index_of(tasks) else { return tasks.len().max(1) };
    let n = tasks.len();
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| t.deps.iter().filter_map(|d| index.get(d.as_str()).copied()).collect())
        .collect();
    // reach[a][b]: b (transitively) depends on a.
    let mut reach = vec![vec![false; n]; n];
    for b in 0..n {
        let mut stack = deps[b].clone();
        while let Some(a) = stack.pop() {
            if !reach[a][b] {
                reach[a][b] = true;
                stack.extend(deps[a].iter().copied());
            }
        }
    }
    let mut matched: Vec<Option<usize>> = vec![None; n];
    fn augment(a: usize, reach: &[Vec<bool>], seen: &mut [bool], matched: &mut [Option<usize>]) -> bool {
        for b in 0..reach.len() {
            if reach[a][b] && !seen[b] {
                seen[b] = true;
                if matched[b].is_none_or(|m| augment(m, reach, seen, matched)) {
                    matched[b] = Some(a);
                    return true;
                }
            }
        }
        false
    }
    let matching = (0..n).filter(|&a| augment(a, &reach, &mut vec![false; n], &mut matched)).count();
    (n - matching).max(1)
}

/// The longest chain of dependencies by the given durations: (tasks, total seconds).
pub fn critical_path(tasks: &[Task], durations: &[f64]) -> (Vec<String>, f64) {
    let Ok(order) = validate(tasks) else { return (Vec::new(), 0.0) };
    let Ok(index) = index_of(tasks) else { return (Vec::new(), 0.0) };
    let mut finish = vec![0.0f64; tasks.len()];
    let mut via: Vec<Option<usize>> = vec![None; tasks.len()];
    for &i in &order {
        let mut best = (0.0, None);
        for d in &tasks[i].deps {
            if let Some(&j) = index.get(d.as_str()) {
                if finish[j] > best.0 {
                    best = (finish[j], Some(j));
                }
            }
        }
        finish[i] = best.0 + durations[i];
        via[i] = best.1;
    }
    let Some(end) = (0..tasks.len()).max_by(|&a, &b| finish[a].total_cmp(&finish[b])) else {
        return (Vec::new(), 0.0);
    };
    let mut path = vec![tasks[end].id.clone()];
    let mut at = end;
    while let Some(prev) = via[at] {
        path.push(tasks[prev].id.clone());
        at = prev;
    }
    path.reverse();
    (path, finish[end])
}

enum Outcome {
    Ok(u32),
    Failed(u32, String),
    Stopped(u32, String),
}

/// Runs the graph. Never returns early: every started task is waited for.
pub fn run(tasks: &[Task], opts: &Options) -> Result<Report> {
    validate(tasks)?;
    let index = index_of(tasks)?;
    let dependents = dependents(tasks, &index);
    let threads = if opts.sequential { 1 } else { width(tasks) };
    let mut remaining: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut ready: VecDeque<usize> = (0..tasks.len()).filter(|&i| remaining[i] == 0).collect();
    let mut status: Vec<Option<Status>> = vec![None; tasks.len()];
    let mut times: Vec<(Option<f64>, Option<f64>)> = vec![(None, None); tasks.len()];
    let mut attempts = vec![0u32; tasks.len()];
    let mut errors: Vec<Option<String>> = vec![None; tasks.len()];
    let cancel = CancelToken::new();
    let progress = Progress::new(opts.progress);
    std::fs::create_dir_all(&opts.logs_dir)
        .with_context(|| format!("creating {}", opts.logs_dir.display()))?;
    let start = Instant::now();

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        let mut running = 0usize;
        loop {
            while running < threads && !cancel.is_cancelled() {
                let Some(i) = ready.pop_front() else { break };
                let task = &tasks[i];
                times[i].0 = Some(start.elapsed().as_secs_f64());
                if opts.dry_run {
                    println!("== {}", task.id);
                }
                progress.started(i, &task.id);
                running += 1;
                let tx = tx.clone();
                let cancel = cancel.clone();
                let log = opts.logs_dir.join(task.log_name());
                scope.spawn(move || {
                    let outcome = execute(task, opts, &log, &cancel);
                    let _ = tx.send((i, outcome));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((i, outcome)) = rx.recv() else { break };
            running -= 1;
            let end = start.elapsed().as_secs_f64();
            times[i].1 = Some(end);
            let took = end - times[i].0.unwrap_or(end);
            match outcome {
                Outcome::Ok(n) => {
                    attempts[i] = n;
                    status[i] = Some(Status::Ok);
                    progress.finished(i, &tasks[i].id, took, "done");
                    for &d in &dependents[i] {
                        remaining[d] -= 1;
                        if remaining[d] == 0 {
                            ready.push_back(d);
                        }
                    }
                }
                Outcome::Failed(n, e) => {
                    attempts[i] = n;
                    status[i] = Some(Status::Failed);
                    errors[i] = Some(e);
                    progress.finished(i, &tasks[i].id, took, "FAILED");
                    // First failure: nothing new starts, what runs is stopped.
                    cancel.cancel();
                }
                Outcome::Stopped(n, e) => {
                    attempts[i] = n;
                    status[i] = Some(Status::Stopped);
                    errors[i] = Some(e);
                    progress.finished(i, &tasks[i].id, took, "stopped");
                }
            }
        }
    });
    progress.clear();

    let wall = start.elapsed().as_secs_f64();
    let durations: Vec<f64> = times.iter().map(|(s, e)| e.unwrap_or(0.0) - s.unwrap_or(0.0)).collect();
    let (critical_path, critical_path_s) = critical_path(tasks, &durations);
    let timings = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| TaskTiming {
            id: t.id.clone(),
            deps: t.deps.clone(),
            status: status[i].unwrap_or(Status::Skipped),
            start_s: times[i].0,
            end_s: times[i].1,
            duration_s: durations[i],
            attempts: attempts[i],
            log: opts.logs_dir.join(t.log_name()).display().to_string(),
            error: errors[i].clone(),
        })
        .collect();
    Ok(Report {
        mode: if opts.sequential { "sequential" } else { "graph" },
        threads,
        wall_s: wall,
        critical_path,
        critical_path_s,
        tasks: timings,
    })
}

fn execute(task: &Task, opts: &Options, log: &Path, cancel: &CancelToken) -> Outcome {
    let deadline = Instant::now() + task.timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = run_action(task, opts, log, cancel, deadline);
        match result {
            Ok(()) => return Outcome::Ok(attempt),
            Err(e) => {
                let text = format!("{e:#}");
                let stopped = cancel.is_cancelled() && !text.contains("timed out");
                if stopped {
                    return Outcome::Stopped(attempt, text);
                }
                if attempt > task.retries || Instant::now() >= deadline {
                    return Outcome::Failed(attempt, text);
                }
                append(
                    log,
                    &format!("=== attempt {attempt} failed; retrying ({} left)", task.retries + 1 - attempt),
                );
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            }
        }
    }
}

fn append(log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
}

/// Runs one attempt of a task's action.
fn run_action(
    task: &Task,
    opts: &Options,
    log: &Path,
    cancel: &CancelToken,
    deadline: Instant,
) -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(&opts.cwd);
    for (k, v) in &opts.env {
        sh.set_var(k, v);
    }
    let call = |c: xshell::Cmd<'_>| -> Result<exec::Output> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("task `{}` timed out after {:.0}s", task.id, task.timeout.as_secs_f64());
        }
        exec::cmd(c).log(log).timeout(left).cancel_token(cancel).dry_run(opts.dry_run).run().map_err(|e| {
            match e.failure {
                exec::Failure::Timeout(_) => {
                    anyhow!("task `{}` timed out after {:.0}s: {e}", task.id, task.timeout.as_secs_f64())
                }
                _ => anyhow!(e),
            }
        })
    };
    match &task.action {
        Action::Build { tag, dockerfile, context, build_args, prebuild, prebuild_env } => {
            for argv in prebuild {
                let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty prebuild command"))?;
                let _env: Vec<_> = prebuild_env.iter().map(|(k, v)| sh.push_env(k, v)).collect();
                call(cmd!(sh, "{program} {args...}"))?;
            }
            let args: Vec<String> =
                build_args.iter().flat_map(|(k, v)| ["--build-arg".into(), format!("{k}={v}")]).collect();
            call(cmd!(sh, "docker build -t {tag} -f {dockerfile} {args...} {context}"))?;
        }
        Action::Cluster { name, config, wait } => {
            let existing = call(cmd!(sh, "kind get clusters"))?;
            if !opts.dry_run && existing.stdout.lines().any(|l| l.trim() == name) {
                append(log, &format!("=== cluster {name} exists: reused"));
                return Ok(());
            }
            let config: Vec<String> =
                config.iter().flat_map(|c| ["--config".into(), c.display().to_string()]).collect();
            let wait = format!("{}s", wait.as_secs());
            call(cmd!(sh, "kind create cluster --name {name} {config...} --wait {wait}"))?;
        }
        Action::Load { tag, cluster } => {
            let direct = call(cmd!(sh, "kind load docker-image {tag} --name {cluster}"));
            if let Err(e) = direct {
                let text = format!("{e:#}");
                // The containerd image store (Docker 29's default) breaks `kind load docker-image`.
                if !(text.contains("content digest")
                    || text.contains("ctr: ")
                    || text.contains("failed to load image"))
                {
                    return Err(e);
                }
                append(log, "=== kind load docker-image failed on the containerd store: falling back to an image archive");
                let archive = log.with_extension("tar");
                call(cmd!(sh, "docker save -o {archive} {tag}"))?;
                let loaded = call(cmd!(sh, "kind load image-archive {archive} --name {cluster}"));
                let _ = std::fs::remove_file(&archive);
                loaded?;
            }
        }
        Action::Helm { release, chart, repo, version, namespace, values, set, timeout } => {
            let mut args = Vec::new();
            if let Some(repo) = repo {
                args.extend(["--repo".to_string(), repo.clone()]);
            }
            if let Some(version) = version {
                args.extend(["--version".to_string(), version.clone()]);
            }
            for v in values {
                args.extend(["--values".to_string(), v.display().to_string()]);
            }
            for (k, v) in set {
                args.extend(["--set".to_string(), format!("{k}={v}")]);
            }
            let timeout = format!("{}s", timeout.as_secs());
            call(cmd!(sh, "helm upgrade --install {release} {chart} --namespace {namespace} --create-namespace --wait --timeout {timeout} {args...}"))?;
        }
        Action::Manifests { files, namespace, waits } => {
            let ns: Vec<String> = namespace.iter().flat_map(|n| ["--namespace".into(), n.clone()]).collect();
            for f in files {
                let ns = &ns;
                call(cmd!(sh, "kubectl apply --server-side {ns...} -f {f}"))?;
            }
            for w in waits {
                let resource = &w.resource;
                let condition = format!("--for={}", w.condition);
                let timeout = format!("--timeout={}s", w.timeout.as_secs());
                let ns = &ns;
                call(cmd!(sh, "kubectl wait {ns...} {resource} {condition} {timeout}"))?;
            }
        }
        Action::Command(argv) => {
            let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
            call(cmd!(sh, "{program} {args...}"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Progress.
// ---------------------------------------------------------------------------------------------

struct Progress {
    mode: ProgressMode,
    start: Instant,
    multi: Option<indicatif::MultiProgress>,
    bars: std::sync::Mutex<BTreeMap<usize, indicatif::ProgressBar>>,
}

impl Progress {
    fn new(mode: ProgressMode) -> Progress {
        let multi = (mode == ProgressMode::Bars).then(indicatif::MultiProgress::new);
        Progress { mode, start: Instant::now(), multi, bars: Default::default() }
    }

    fn started(&self, i: usize, id: &str) {
        match (&self.multi, self.mode) {
            (Some(multi), _) => {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("  {spinner} {msg:<28} {elapsed:>4}")
                {
                    bar.set_style(style);
                }
                bar.set_message(id.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(i, bar);
                }
            }
            (None, ProgressMode::Plain) => {
                eprintln!("[{:>7.1}s] start  {id}", self.start.elapsed().as_secs_f64())
            }
            _ => {}
        }
    }

    fn finished(&self, i: usize, id: &str, took: f64, verdict: &str) {
        let line = format!("[{:>7.1}s] {verdict:<6} {id} ({took:.1}s)", self.start.elapsed().as_secs_f64());
        match (&self.multi, self.mode) {
            (Some(multi), _) => {
                if let Some(bar) = self.bars.lock().ok().and_then(|mut b| b.remove(&i)) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(line);
            }
            (None, ProgressMode::Plain) => eprintln!("{line}"),
            _ => {}
        }
    }

    fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The timing report.
// ---------------------------------------------------------------------------------------------

/// A text Gantt chart: one bar per task on a shared time axis, `*` on the critical path.
pub fn gantt(report: &Report) -> String {
    const WIDTH: usize = 50;
    let total = report.wall_s.max(1e-6);
    let name_w = report.tasks.iter().map(|t| t.id.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:name_w$}  |{:<WIDTH$}| {:>8}\n", "TASK", format!("0s .. {total:.1}s"), "TIME");
    for t in &report.tasks {
        let (Some(s), Some(e)) = (t.start_s, t.end_s) else {
            let _ = writeln!(out, "{:name_w$}  |{:WIDTH$}| {:>8}", t.id, "", "skipped");
            continue;
        };
        let a = ((s / total) * WIDTH as f64).floor() as usize;
        let b = (((e / total) * WIDTH as f64).ceil() as usize).clamp(a + 1, WIDTH);
        let fill = match t.status {
            Status::Ok => '#',
            Status::Failed => 'X',
            _ => '-',
        };
        let bar: String = (0..WIDTH).map(|c| if c >= a && c < b { fill } else { ' ' }).collect();
        let mark = if report.critical_path.contains(&t.id) { "*" } else { " " };
        let _ = writeln!(out, "{:name_w$} {mark}|{bar}| {:>7.2}s", t.id, t.duration_s);
    }
    let _ = writeln!(
        out,
        "wall {:.2}s on {} thread(s); critical path {:.2}s (*): {}",
        report.wall_s,
        report.threads,
        report.critical_path_s,
        report.critical_path.join(" -> ")
    );
    out
}

/// Writes the JSON report under `dir` as `<name>.json` (and `latest.json`).
pub fn write_report(report: &Report, dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(dir.join("latest.json"), &text).with_context(|| format!("writing {}", dir.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deps: &[&str]) -> Task {
        Task {
            id: id.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            action: Action::Command(vec!["true".into()]),
            timeout: Duration::from_secs(5),
            retries: 0,
        }
    }

    #[test]
    fn width_is_the_largest_antichain() {
        let four_builds = ["b1", "b2", "b3", "b4"].map(|b| task(b, &[]));
        assert_eq!(width(&four_builds), 4);
        let mut g = four_builds.to_vec();
        g.push(task("cluster", &["b1", "b2", "b3", "b4"]));
        g.extend(["b1", "b2"].map(|b| task(&format!("load-{b}"), &["cluster", b])));
        g.push(task("gitea", &["cluster"]));
        assert_eq!(width(&g), 4);
        assert_eq!(width(&[task("a", &[]), task("b", &["a"]), task("c", &["b"])]), 1);
    }

    #[test]
    fn cycles_and_unknown_deps_are_refused() {
        assert!(validate(&[task("a", &["b"]), task("b", &["a"])]).unwrap_err().to_string().contains("cycle"));
        assert!(validate(&[task("a", &["nope"])]).unwrap_err().to_string().contains("`nope`"));
        assert!(validate(&[task("a", &[]), task("a", &[])]).unwrap_err().to_string().contains("two tasks"));
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let g = [
            task("build", &[]),
            task("cluster", &["build"]),
            task("tekton", &["cluster"]),
            task("db", &["cluster"]),
        ];
        let (path, total) = critical_path(&g, &[2.0, 1.0, 5.0, 2.5]);
        assert_eq!(path, vec!["build", "cluster", "tekton"]);
        assert_eq!(total, 8.0);
    }
}
