//! The graph engine: tasks scheduled by their dependencies, generic over what a task does.
//!
//! A task starts the moment its dependencies are done. Jobs block (they wait on processes), so
//! they run on a dedicated rayon `ThreadPool` as wide as the graph (its largest set of tasks that
//! may run at once), never on rayon's CPU-sized global pool, which on a 2-core machine would
//! allow two docker/kind calls at a time. Each task has a deadline and a retry budget and logs to
//! its own file; how a task ended is typed ([`Status`]), never read from error text. The failure
//! policy says what a failure does to the rest: [`Policy::FailFast`] (setup: nothing new starts,
//! running jobs are told to stop) or [`Policy::KeepGoing`] (flows: only what needs the failed
//! task is skipped). Every run ends in a [`Report`] with a Gantt chart and the critical path.
//!
//! The engine knows nothing of docker, kind or helm: the caller hands it a job function.

pub mod graph;
mod progress;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub(crate) use self::graph::{critical_path, validate, width, Task};
pub(crate) use self::progress::ProgressMode;
pub(crate) use self::report::{gantt, write_report, Report, Status, TaskTiming};
use crate::exec::{CancelToken, ExecError, Failure};

/// What a failed task does to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Nothing new starts; running jobs are cancelled (their token is set).
    FailFast,
    /// Everything that does not need the failed task still runs.
    KeepGoing,
}

pub(crate) struct Options {
    /// One task at a time (the old Makefile, for comparison).
    pub(crate) sequential: bool,
    /// Handed to every job (which prints its plan instead of doing it).
    pub(crate) dry_run: bool,
    pub(crate) progress: ProgressMode,
    pub(crate) policy: Policy,
    /// Where each task's log goes.
    pub(crate) logs_dir: PathBuf,
    /// What the report's `mode` says.
    pub(crate) mode: &'static str,
}

impl Options {
    /// In parallel, fail fast, progress as the terminal allows, logs in `logs_dir`.
    pub(crate) fn new(logs_dir: PathBuf, progress: ProgressMode) -> Options {
        Options {
            sequential: false,
            dry_run: false,
            progress,
            policy: Policy::FailFast,
            logs_dir,
            mode: "graph",
        }
    }
}

/// What a job gets for one attempt at its task.
pub(crate) struct Job<'a, A> {
    pub(crate) task: &'a Task<A>,
    /// The task's own log file.
    pub(crate) log: &'a Path,
    /// Set when the job should stop (fail-fast after another failure); pass it to every call.
    pub(crate) cancel: &'a CancelToken,
    /// When the task's time is up (across its attempts).
    pub(crate) deadline: Instant,
    pub(crate) dry_run: bool,
    /// Set by [`Job::up_to_date`]: the task found its work already done.
    fresh: std::cell::RefCell<Option<String>>,
}

impl<A> Job<'_, A> {
    /// Time left before the deadline (zero once it has passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// A line in the task's log.
    pub(crate) fn note(&self, line: &str) {
        append(self.log, line);
    }

    /// Whether [`Job::up_to_date`] was said.
    pub(crate) fn is_up_to_date(&self) -> bool {
        self.fresh.borrow().is_some()
    }

    /// The task's work is already done (say why): it ends as up to date, not run.
    pub(crate) fn up_to_date(&self, why: &str) {
        append(self.log, &format!("=== up to date: {why}"));
        *self.fresh.borrow_mut() = Some(why.to_string());
    }

    /// This attempt as a job of `task`, a task of another graph that this one's task stands for
    /// (the e2e graph runs setup's tasks): same log, token and deadline, and an up-to-date said
    /// there is said here.
    pub(crate) fn narrow<B, R>(&self, task: &Task<B>, f: impl FnOnce(&Job<'_, B>) -> R) -> R {
        let inner = Job {
            task,
            log: self.log,
            cancel: self.cancel,
            deadline: self.deadline,
            dry_run: self.dry_run,
            fresh: Default::default(),
        };
        let result = f(&inner);
        if let Some(why) = inner.fresh.into_inner() {
            *self.fresh.borrow_mut() = Some(why);
        }
        result
    }
}

/// How one task ended: its status, attempts and error text.
struct Ended {
    status: Status,
    attempts: u32,
    error: Option<String>,
}

/// Runs the graph; `job` does one attempt at one task. Never returns early: every started job
/// is waited for. The error return is for a graph that cannot run (cycle, unknown dependency,
/// no thread pool); task failures are in the report.
pub(crate) fn run<A: Sync>(
    tasks: &[Task<A>],
    opts: &Options,
    job: &(dyn Fn(&Job<'_, A>) -> Result<()> + Sync),
) -> Result<Report> {
    validate(tasks)?;
    let index = graph::index_of(tasks)?;
    let dependents = graph::dependents(tasks, &index);
    let threads = if opts.sequential { 1 } else { width(tasks) };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("xtask-job-{i}"))
        .build()
        .context("starting the pipeline's thread pool")?;
    std::fs::create_dir_all(&opts.logs_dir)
        .with_context(|| format!("creating {}", opts.logs_dir.display()))?;

    let mut remaining: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut ready: std::collections::VecDeque<usize> =
        (0..tasks.len()).filter(|&i| remaining[i] == 0).collect();
    let mut ended: Vec<Option<Ended>> = (0..tasks.len()).map(|_| None).collect();
    let mut times: Vec<(Option<f64>, Option<f64>)> = vec![(None, None); tasks.len()];
    let cancel = CancelToken::new();
    let progress = progress::Progress::new(opts.progress);
    let start = Instant::now();

    // The scope's body runs here, on the caller's thread (blocking on the channel); only the jobs
    // run on the pool, so a 1-thread pool cannot deadlock.
    pool.in_place_scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Ended)>();
        let mut running = 0usize;
        let mut exclusive_running = false;
        loop {
            while running < threads
                && !cancel.is_cancelled()
                && !crate::exec::cancelled()
                && !exclusive_running
            {
                // In order; an exclusive task at the head waits for what runs to drain (nothing
                // new starts meanwhile), then runs alone.
                let Some(&i) = ready.front() else { break };
                if tasks[i].exclusive && running > 0 {
                    break;
                }
                ready.pop_front();
                let task = &tasks[i];
                exclusive_running = task.exclusive;
                times[i].0 = Some(start.elapsed().as_secs_f64());
                if opts.dry_run {
                    println!("== {}", task.id);
                }
                progress.started(i, &task.id);
                running += 1;
                let tx = tx.clone();
                let cancel = cancel.clone();
                let log = opts.logs_dir.join(task.log_name());
                let dry_run = opts.dry_run;
                scope.spawn(move |_| {
                    let outcome = attempts(task, job, &log, &cancel, dry_run);
                    let _ = tx.send((i, outcome));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((i, outcome)) = rx.recv() else { break };
            running -= 1;
            if tasks[i].exclusive {
                exclusive_running = false;
            }
            let end = start.elapsed().as_secs_f64();
            times[i].1 = Some(end);
            let took = end - times[i].0.unwrap_or(end);
            let verdict = match outcome.status {
                Status::Ok => "done",
                Status::UpToDate => "fresh",
                Status::Failed => "FAILED",
                Status::TimedOut => "TIMEOUT",
                Status::Stopped | Status::Skipped => "stopped",
            };
            progress.finished(i, &tasks[i].id, took, verdict);
            if outcome.status.is_done() {
                for &d in &dependents[i] {
                    remaining[d] -= 1;
                    if remaining[d] == 0 {
                        ready.push_back(d);
                    }
                }
            } else if outcome.status.is_failure() && opts.policy == Policy::FailFast {
                cancel.cancel();
            }
            ended[i] = Some(outcome);
        }
    });
    progress.clear();

    let wall = start.elapsed().as_secs_f64();
    let durations: Vec<f64> = times.iter().map(|(s, e)| e.unwrap_or(0.0) - s.unwrap_or(0.0)).collect();
    let (critical_path, critical_path_s) = critical_path(tasks, &durations);
    let timings = tasks
        .iter()
        .zip(ended)
        .enumerate()
        .map(|(i, (t, ended))| {
            let ended = ended.unwrap_or(Ended { status: Status::Skipped, attempts: 0, error: None });
            TaskTiming {
                id: t.id.clone(),
                deps: t.deps.clone(),
                status: ended.status,
                start_s: times[i].0,
                end_s: times[i].1,
                duration_s: durations[i],
                attempts: ended.attempts,
                log: opts.logs_dir.join(t.log_name()).display().to_string(),
                error: ended.error,
            }
        })
        .collect();
    Ok(Report {
        mode: if opts.sequential { "sequential" } else { opts.mode },
        threads,
        wall_s: wall,
        critical_path,
        critical_path_s,
        tasks: timings,
    })
}

/// Attempts at one task until it succeeds, its retries or time run out, or it is stopped.
fn attempts<A>(
    task: &Task<A>,
    job: &(dyn Fn(&Job<'_, A>) -> Result<()> + Sync),
    log: &Path,
    cancel: &CancelToken,
    dry_run: bool,
) -> Ended {
    let deadline = Instant::now() + task.timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let this = Job { task, log, cancel, deadline, dry_run, fresh: Default::default() };
        let result = job(&this);
        let Err(e) = result else {
            let status = if this.fresh.borrow().is_some() { Status::UpToDate } else { Status::Ok };
            return Ended { status, attempts: attempt, error: None };
        };
        let status = classify(&e, cancel, deadline);
        let text = match status {
            Status::TimedOut if !format!("{e:#}").contains("timed out") => {
                format!("task `{}` timed out after {:.0}s: {e:#}", task.id, task.timeout.as_secs_f64())
            }
            _ => format!("{e:#}"),
        };
        if status != Status::Failed || attempt > task.retries {
            return Ended { status, attempts: attempt, error: Some(text) };
        }
        append(log, &format!("=== attempt {attempt} failed; retrying ({} left)", task.retries + 1 - attempt));
        std::thread::sleep(
            Duration::from_millis(500 * u64::from(attempt))
                .min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// How a failed attempt ended, from the error's type and the run's state: a call killed at its
/// timeout (or any failure past the deadline) timed out; a call cancelled, or a failure once the
/// run was cancelled, was stopped; anything else failed.
fn classify(e: &anyhow::Error, cancel: &CancelToken, deadline: Instant) -> Status {
    let failure = e.chain().find_map(|c| c.downcast_ref::<ExecError>()).map(|x| x.failure.clone());
    match failure {
        Some(Failure::Timeout(_)) => Status::TimedOut,
        Some(Failure::Cancelled) => Status::Stopped,
        _ if Instant::now() >= deadline => Status::TimedOut,
        _ if cancel.is_cancelled() || crate::exec::cancelled() => Status::Stopped,
        _ => Status::Failed,
    }
}

fn append(log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use super::*;

    fn task(id: &str, deps: &[&str]) -> Task<u64> {
        Task::new(id, deps.iter().map(|d| d.to_string()).collect(), 0, Duration::from_secs(5))
    }

    fn opts(dir: &Path, policy: Policy) -> Options {
        Options { policy, ..Options::new(dir.to_path_buf(), ProgressMode::Quiet) }
    }

    #[test]
    fn keep_going_skips_only_what_needs_the_failure() {
        let dir = tempfile::tempdir().unwrap();
        let g = [task("a", &[]), task("b", &["a"]), task("c", &[]), task("d", &["c"])];
        let report = run(&g, &opts(dir.path(), Policy::KeepGoing), &|job| {
            anyhow::ensure!(job.task.id != "a", "a breaks");
            Ok(())
        })
        .unwrap();
        let status: Vec<Status> = report.tasks.iter().map(|t| t.status).collect();
        assert_eq!(status, [Status::Failed, Status::Skipped, Status::Ok, Status::Ok]);
        assert!(report.failure().unwrap().to_string().contains("a breaks"));
    }

    #[test]
    fn fail_fast_cancels_what_runs_and_starts_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let g = [task("slow", &[]), task("breaks", &[]), task("after", &["slow"])];
        let report = run(&g, &opts(dir.path(), Policy::FailFast), &|job| {
            if job.task.id == "breaks" {
                anyhow::bail!("broken");
            }
            while !job.cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            anyhow::bail!("told to stop")
        })
        .unwrap();
        let status: Vec<Status> = report.tasks.iter().map(|t| t.status).collect();
        assert_eq!(status, [Status::Stopped, Status::Failed, Status::Skipped]);
    }

    #[test]
    fn deadline_makes_a_timeout_and_retries_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut late = task("late", &[]);
        late.timeout = Duration::from_millis(50);
        let mut flaky = task("flaky", &[]);
        flaky.retries = 2;
        let tries = AtomicU32::new(0);
        let report = run(&[late, flaky], &opts(dir.path(), Policy::KeepGoing), &|job| {
            if job.task.id == "late" {
                std::thread::sleep(Duration::from_millis(80));
                anyhow::bail!("too slow");
            }
            anyhow::ensure!(tries.fetch_add(1, Ordering::SeqCst) >= 1, "flaked");
            Ok(())
        })
        .unwrap();
        assert_eq!(report.tasks[0].status, Status::TimedOut);
        assert!(report.tasks[0].error.as_deref().unwrap().contains("timed out"));
        assert_eq!((report.tasks[1].status, report.tasks[1].attempts), (Status::Ok, 2));
    }

    #[test]
    fn an_exclusive_task_never_overlaps_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut g: Vec<Task<u64>> = (0..4).map(|i| task(&format!("t{i}"), &[])).collect();
        g[1].exclusive = true;
        let spans = Mutex::new(Vec::new());
        let start = Instant::now();
        let report = run(&g, &opts(dir.path(), Policy::KeepGoing), &|job| {
            let from = start.elapsed();
            std::thread::sleep(Duration::from_millis(60));
            spans.lock().unwrap().push((job.task.id.clone(), from, start.elapsed()));
            Ok(())
        })
        .unwrap();
        assert!(report.tasks.iter().all(|t| t.status == Status::Ok));
        let spans = spans.into_inner().unwrap();
        let alone = spans.iter().find(|s| s.0 == "t1").unwrap();
        for other in spans.iter().filter(|s| s.0 != "t1") {
            assert!(other.2 <= alone.1 || other.1 >= alone.2, "{other:?} overlaps {alone:?}");
        }
        // The others still ran side by side.
        let others: Vec<_> = spans.iter().filter(|s| s.0 != "t1").collect();
        assert!(
            others.iter().any(|a| others.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2)),
            "{spans:?}"
        );
    }

    #[test]
    fn jobs_run_as_wide_as_the_graph_not_the_cpu_count() {
        let dir = tempfile::tempdir().unwrap();
        let g: Vec<Task<u64>> = (0..6).map(|i| task(&format!("t{i}"), &[])).collect();
        let running = AtomicU32::new(0);
        let peak = Mutex::new(0);
        let report = run(&g, &opts(dir.path(), Policy::FailFast), &|_| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            let mut p = peak.lock().unwrap();
            *p = (*p).max(now);
            drop(p);
            // Everyone waits until all six are in: only possible on six threads.
            let until = Instant::now() + Duration::from_secs(5);
            while running.load(Ordering::SeqCst) < 6 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(report.threads, 6);
        assert_eq!(*peak.lock().unwrap(), 6);
    }
}
