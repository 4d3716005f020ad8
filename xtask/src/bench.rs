//! `cargo xtask bench ...`: speed goals live here, never in timed unit tests.
// The lint bench's literals and generated tree are violations on purpose.
// xtask-lint: allow-file(all)

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{exec, paths};

/// Measure the tool against its speed targets.
///
/// Examples:
///   cargo xtask bench lint
///   cargo xtask bench lint --files 5000 --runs 3
///   cargo xtask bench lint path/to/a/real/repo
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub bench: Bench,
}

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// `xtask lint` beside `rg` searching the same literals over the same tree (target: within 2x)
    Lint(LintBench),
}

/// Wall time of `xtask lint` over a tree beside `rg` searching the rules' literals over the same
/// tree, median of several runs, as a ratio. Without DIR a tree of generated files with planted
/// violations is made (and kept) under target/e2e/bench/.
#[derive(clap::Args, Debug)]
pub struct LintBench {
    /// Lint this tree instead of a generated one
    pub dir: Option<PathBuf>,
    /// Files in the generated tree
    #[arg(long, default_value_t = 50_000)]
    pub files: usize,
    /// Timed runs of each (the median is reported)
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        match self.bench {
            Bench::Lint(b) => b.run(sh),
        }
    }
}

/// The literals the lint rules need (the lint's prefilter): what a grep-based gate would search.
const LITERALS: &[&str] = &[
    "/tmp/",
    "--global",
    "--system",
    "pkill",
    "killall",
    "kubectl",
    "localhost:",
    "127.0.0.1:",
    "[::1]:",
    "sut",
    "dnf",
    "yum",
];

impl LintBench {
    fn run(self, sh: &Shell) -> Result<i32> {
        let tree = match &self.dir {
            Some(dir) => {
                dir.canonicalize().with_context(|| format!("{}: no such directory", dir.display()))?
            }
            None => generate_tree(self.files)?,
        };
        let config = tree.join(".xtask-bench-lint.toml");
        if !config.exists() {
            std::fs::write(&config, "[hardcoded]\nscope = [\".\"]\n")
                .with_context(|| format!("writing {}", config.display()))?;
        }
        let xtask = std::env::current_exe().context("locating the xtask binary")?;
        let rg = exec::which(sh, "rg");
        let _dir = sh.push_dir(&tree);
        let log = paths::logs_dir().join("bench-lint.log");
        let pattern_args: Vec<String> =
            LITERALS.iter().flat_map(|l| ["-e".to_string(), l.to_string()]).collect();

        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut findings = String::new();
        // One warm-up each (page cache), then alternate so drift hits both alike.
        for run in 0..=self.runs {
            let start = Instant::now();
            let out = exec::cmd(cmd!(sh, "{xtask} lint --config {config} --format json"))
                .allow_failure()
                .log(&log)
                .run()?;
            let t = start.elapsed();
            if !matches!(out.code, Some(0 | 1)) {
                bail!("xtask lint failed on the tree: {}", out.stderr);
            }
            if run > 0 {
                ours.push(t);
            } else {
                findings = summarize(&out.stdout);
            }
            if let Some(rg) = &rg {
                let start = Instant::now();
                let patterns = &pattern_args;
                exec::cmd(cmd!(sh, "{rg} -F -l --no-messages --hidden {patterns...} ."))
                    .allow_failure()
                    .log(&log)
                    .run()?;
                if run > 0 {
                    theirs.push(start.elapsed());
                }
            }
        }
        let ours = median(&mut ours);
        println!("tree: {} ({findings})", tree.display());
        println!("runs: {} each, median", self.runs);
        println!("xtask lint: {:>8.3}s", ours.as_secs_f64());
        match rg {
            Some(_) => {
                let theirs = median(&mut theirs);
                let ratio = ours.as_secs_f64() / theirs.as_secs_f64().max(1e-9);
                println!("rg -F -l:   {:>8.3}s  ({} literals)", theirs.as_secs_f64(), LITERALS.len());
                println!("ratio:      {ratio:>8.2}x  (target: <= 2.00x)");
            }
            None => println!("rg:         not installed (Debian: `apt-get install ripgrep`); no ratio"),
        }
        Ok(0)
    }
}

fn summarize(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    format!(
        "{} files scanned, {} findings",
        v["files_scanned"].as_u64().unwrap_or(0),
        v["findings"].as_array().map(|a| a.len()).unwrap_or(0)
    )
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// A deterministic tree of Go, YAML, shell, Rust, Markdown and Dockerfiles, about one file in
/// fifty with a planted violation. Reused when it already exists with the same size.
fn generate_tree(files: usize) -> Result<PathBuf> {
    let dir = paths::state_root().join("bench").join(format!("lint-{files}"));
    let marker = dir.join(".complete");
    if marker.exists() {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    // A repository of its own, so the bench config's scope is relative to it.
    std::fs::create_dir_all(dir.join(".git")).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..files {
        let sub = dir.join(format!("pkg{:03}/sub{:02}", i % 500, (i / 500) % 20));
        if i < 10_000 || i % 500 == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let planted = next() % 50 == 0;
        let (name, text) = match i % 20 {
            0..=7 => (format!("file{i}.go"), go_file(i, planted)),
            8..=11 => (format!("file{i}.yaml"), yaml_file(i, planted)),
            12..=14 => (format!("file{i}.sh"), shell_file(i, planted)),
            15..=16 => (format!("file{i}.rs"), rust_file(i, planted)),
            17..=18 => {
                (format!("file{i}.md"), format!("# Notes {i}\n\nRun `kubectl -n sut get pods` and /tmp/x.\n"))
            }
            _ if i % 100 == 19 => (format!("svc{i}.Dockerfile"), dockerfile(planted)),
            _ => (format!("file{i}.txt"), format!("plain text {i}\nnothing to see\n")),
        };
        std::fs::write(sub.join(name), text)?;
    }
    std::fs::write(&marker, "")?;
    Ok(dir)
}

fn go_file(i: usize, planted: bool) -> String {
    let mut s = format!("package pkg{}\n\nimport \"fmt\"\n\n// Helper {i} formats results.\n", i % 500);
    for f in 0..12 {
        let _ = write!(
            s,
            "func helper{i}_{f}(name string) string {{\n\treturn fmt.Sprintf(\"%s-{f}\", name)\n}}\n\n"
        );
    }
    if planted {
        s.push_str("const testNamespace = \"sut\"\n");
    }
    s
}

fn yaml_file(i: usize, planted: bool) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  labels:\n    app: demo\ndata:\n"
    );
    for k in 0..20 {
        let _ = writeln!(s, "  key{k}: \"value {k} for {i}\"");
    }
    if planted {
        s.push_str("  url: http://localhost:8080/healthz\n");
    }
    s
}

fn shell_file(i: usize, planted: bool) -> String {
    let mut s = format!("#!/usr/bin/env bash\nset -euo pipefail\n# script {i}\n");
    for k in 0..15 {
        let _ = writeln!(s, "echo \"step {k}\" && ls -la \"${{WORK_DIR:-.}}\" > /dev/null");
    }
    if planted {
        s.push_str("pkill -f \"kubectl.*port-forward\"\n");
    }
    s
}

fn rust_file(i: usize, planted: bool) -> String {
    let mut s = format!("//! Module {i}.\n\n");
    for f in 0..10 {
        let _ = write!(s, "pub fn f{f}(x: u32) -> u32 {{\n    x.wrapping_mul({f}) + {i}\n}}\n\n");
    }
    if planted {
        s.push_str("const KEY: &str = \"/tmp/e2e-ssh-key\";\n");
    }
    s
}

fn dockerfile(planted: bool) -> String {
    let update = if planted { "dnf -y update && " } else { "" };
    format!(
        "FROM registry.example/ubi9:latest\nRUN {update}dnf install -y git && dnf clean all\nCOPY app /app\n"
    )
}
