//! What a run of the engine produced: each task's status and times, the critical path, the
//! error that names every failed task, the JSON report and the text Gantt chart.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    /// Nothing to do: what it would make is already there (recorded, and checked).
    UpToDate,
    Failed,
    /// Failed because its deadline passed.
    TimedOut,
    /// Running when the run was cancelled (another task failed under fail-fast, or Ctrl-C).
    Stopped,
    /// Never started: a task it needs did not succeed, or the run was cancelled first.
    Skipped,
}

impl Status {
    /// Its name in the JSON report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::UpToDate => "up-to-date",
            Status::Failed => "failed",
            Status::TimedOut => "timed-out",
            Status::Stopped => "stopped",
            Status::Skipped => "skipped",
        }
    }

    /// A failure of its own (not stopped or skipped because of another).
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::TimedOut)
    }

    /// Done, by running or by finding it already done: what depends on it may start.
    pub(crate) fn is_done(self) -> bool {
        matches!(self, Status::Ok | Status::UpToDate)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TaskTiming {
    pub(crate) id: String,
    pub(crate) deps: Vec<String>,
    pub(crate) status: Status,
    pub(crate) start_s: Option<f64>,
    pub(crate) end_s: Option<f64>,
    pub(crate) duration_s: f64,
    pub(crate) attempts: u32,
    pub(crate) log: String,
    pub(crate) error: Option<String>,
}

/// What a pipeline run produced.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) mode: &'static str,
    pub(crate) threads: usize,
    pub(crate) wall_s: f64,
    pub(crate) critical_path: Vec<String>,
    pub(crate) critical_path_s: f64,
    pub(crate) tasks: Vec<TaskTiming>,
}

impl TaskTiming {
    fn to_json(&self) -> Value {
        let mut t = json!({"id": self.id, "deps": self.deps, "status": self.status.name(),
                           "start_s": self.start_s, "end_s": self.end_s, "duration_s": self.duration_s,
                           "attempts": self.attempts, "log": self.log});
        if let Some(error) = &self.error {
            t["error"] = json!(error);
        }
        t
    }
}

impl Report {
    /// The JSON report: `{mode, threads, wall_s, critical_path, critical_path_s, tasks: [{id,
    /// deps, status, start_s, end_s, duration_s, attempts, log, error?}]}`.
    pub(crate) fn to_json(&self) -> Value {
        let tasks: Vec<Value> = self.tasks.iter().map(TaskTiming::to_json).collect();
        json!({"mode": self.mode, "threads": self.threads, "wall_s": self.wall_s,
               "critical_path": self.critical_path, "critical_path_s": self.critical_path_s, "tasks": tasks})
    }

    /// The error naming every failed task with the tail of its log.
    pub(crate) fn failure(&self) -> Option<anyhow::Error> {
        let failed: Vec<&TaskTiming> = self.tasks.iter().filter(|t| t.status.is_failure()).collect();
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
                    let _ = write!(text, "\n    {}", crate::exec::printable(line));
                }
            }
        }
        Some(anyhow!(text))
    }

    /// A report of one finished task (tests build reports from it).
    #[cfg(test)]
    pub(crate) fn single(id: &str, seconds: f64) -> Report {
        Report {
            mode: "graph",
            threads: 1,
            wall_s: seconds,
            critical_path: vec![id.to_string()],
            critical_path_s: seconds,
            tasks: vec![TaskTiming {
                id: id.to_string(),
                deps: Vec::new(),
                status: Status::Ok,
                start_s: Some(0.0),
                end_s: Some(seconds),
                duration_s: seconds,
                attempts: 1,
                log: String::new(),
                error: None,
            }],
        }
    }
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The terminal width the chart fits.
const COLUMNS: usize = 80;
/// Longer task names are abbreviated in the middle.
const NAME_MAX: usize = 24;

/// `setup/deploy:kube-prometheus-stack-operator` → `setup/deploy:k…-operator` (24 characters).
fn abbreviate(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= NAME_MAX {
        return name.to_string();
    }
    let head = (NAME_MAX - 1) / 2;
    let tail = NAME_MAX - 1 - head;
    chars[..head].iter().chain(['…'].iter()).chain(chars[chars.len() - tail..].iter()).collect()
}

/// A text Gantt chart: one bar per task on a shared time axis, `*` on the critical path; it fits
/// 80 columns (names abbreviated, the bar as wide as what is left).
pub(crate) fn gantt(report: &Report) -> String {
    let total = report.wall_s.max(1e-6);
    let names: Vec<String> = report.tasks.iter().map(|t| abbreviate(&t.id)).collect();
    let name_w = names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(4);
    // name, " *|", bar, "| ", "1234.56s"
    let width = COLUMNS.saturating_sub(name_w + 3 + 2 + 9).clamp(20, 50);
    let mut out = format!("{:name_w$}  |{:<width$}| {:>8}\n", "TASK", format!("0s .. {total:.1}s"), "TIME");
    for (t, name) in report.tasks.iter().zip(&names) {
        let (Some(s), Some(e)) = (t.start_s, t.end_s) else {
            let _ = writeln!(out, "{name:name_w$}  |{:width$}| {:>8}", "", "skipped");
            continue;
        };
        let a = (((s / total) * width as f64).floor() as usize).min(width - 1);
        let b = (((e / total) * width as f64).ceil() as usize).clamp(a + 1, width);
        let fill = match t.status {
            Status::Ok => '#',
            Status::UpToDate => '=',
            Status::Failed | Status::TimedOut => 'X',
            Status::Stopped | Status::Skipped => '-',
        };
        let bar: String = (0..width).map(|c| if c >= a && c < b { fill } else { ' ' }).collect();
        let mark = if report.critical_path.contains(&t.id) { "*" } else { " " };
        let _ = writeln!(out, "{name:name_w$} {mark}|{bar}| {:>7.2}s", t.duration_s);
    }
    let fresh = report.tasks.iter().filter(|t| t.status == Status::UpToDate).count();
    if fresh > 0 {
        let _ = writeln!(out, "{fresh} of {} task(s) up to date (=), not run", report.tasks.len());
    }
    let _ = writeln!(
        out,
        "wall {:.2}s on {} thread(s); critical path {:.2}s (*):",
        report.wall_s, report.threads, report.critical_path_s,
    );
    // The path, wrapped at 80 columns.
    let mut line = String::from(" ");
    for (i, step) in report.critical_path.iter().enumerate() {
        let piece =
            if i == 0 { format!(" {}", abbreviate(step)) } else { format!(" -> {}", abbreviate(step)) };
        if line.chars().count() + piece.chars().count() > COLUMNS {
            let _ = writeln!(out, "{line}");
            line = String::from(" ");
        }
        line.push_str(&piece);
    }
    let _ = writeln!(out, "{line}");
    out
}

/// Writes the JSON report under `dir` as `<name>.json` (and `latest.json`).
pub(crate) fn write_report(report: &Report, dir: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&report.to_json())?;
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(dir.join("latest.json"), &text).with_context(|| format!("writing {}", dir.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gantt_chart_fits_80_columns_with_long_names() {
        let mut report = Report::single("setup/deploy:kube-prometheus-stack-with-a-long-name", 12.0);
        report.critical_path = vec!["setup/deploy:kube-prometheus-stack-with-a-long-name".into(); 4];
        let chart = gantt(&report);
        for line in chart.lines() {
            assert!(line.chars().count() <= COLUMNS, "{} columns: {line}", line.chars().count());
        }
        assert!(chart.contains("setup/deplo…-a-long-name"), "{chart}");
        assert_eq!(abbreviate("build:demo"), "build:demo");
    }
}
