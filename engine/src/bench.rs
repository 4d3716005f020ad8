//! `cargo xtask bench ...`: speed goals live here, never in timed unit tests.
// The lint bench's literals and generated tree are violations on purpose.
// xtask-lint: allow-file(all)

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::e2e::setup::actions::{self, Action, Env, SetupTask};
use crate::pipeline::{self, Options, ProgressMode};
use crate::{exec, paths};

/// Measure the tool against its speed targets.
///
/// Examples:
///   cargo xtask bench lint
///   cargo xtask bench lint --files 5000 --runs 3
///   cargo xtask bench lint path/to/a/real/repo
///   cargo xtask bench build
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) bench: Bench,
}

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// `xtask lint` beside `rg` searching the same literals over the same tree (target: within 2x)
    Lint(LintBench),
    /// Two operator profiles on the fake toolchain: sequential, phase barriers, graph, critical path
    Pipeline(PipelineBench),
    /// Three flows after shared setup on the fake toolchain: sequential vs parallel vs lower bound
    E2e(E2eBench),
    /// A cold build of the xtask beside a cold build of the ten crates the design names (target: 1.5x)
    Build(BuildBench),
}

/// Cold-builds `cargo build -p xtask --bin xtask` (what `cargo xtask` compiles on a fresh
/// checkout) and, as the floor, a scratch crate depending only on the ten crates the design card
/// names (xshell, clap, anyhow, rayon, serde_json, regex, walkdir, ureq, tempfile, indicatif) with
/// the same versions (our Cargo.lock) and dev profile; each in a fresh target dir under
/// target/e2e/bench/build/. Target: xtask <= 1.5 x the floor. Crates must be downloadable or
/// already in cargo's cache. With --runs N each is built N times, alternating, and the fastest
/// build of each is compared (on a busy machine one run varies by +-2 s).
#[derive(clap::Args, Debug)]
pub struct BuildBench {
    /// Cold builds of each (alternating; the fastest of each is compared)
    #[arg(long, default_value_t = 2)]
    pub(crate) runs: usize,
}

/// Runs `cargo xtask e2e --parallel` on the fake toolchain with an operator's durations: a build,
/// the cluster, a fast Gitea deploy (1 minute) and a slow Tekton one (5), and three flows as one
/// graph: the full suite (6 minutes) and a quickstart (3) need only Gitea, a pipelines flow (2.5)
/// needs Tekton. Reports the graph's wall over the critical path of the combined graph (target
/// <= 1.03) and the time saved against setup-then-flows (every flow after all of shared infra,
/// same durations). Flows skip Gitea's API here: this measures scheduling.
#[derive(clap::Args, Debug)]
pub struct E2eBench {
    /// Seconds of wall time per minute of the profile
    #[arg(long, default_value_t = 0.5)]
    pub(crate) scale: f64,
}

/// Runs the pipeline engine on the fake toolchain with durations measured in two operator
/// repositories' e2e setups, scaled: an API gateway (two slow builds) and a workflow-execution
/// controller (a slow Tekton install beside everything else). For each: sequential (the old
/// Makefile), phase barriers (the scripts' way: every phase, and every level of dependent
/// deploys, waits for all of the previous one), graph (ours), and the critical path,
/// the lower bound. Targets: graph <= 1.03 x critical path on both; on workflow-execution
/// graph <= 0.75 x phase barriers. Exits 1 when a target is missed.
///
/// With --incremental, per profile: a cold setup, a re-run with nothing changed, and a re-run
/// after one image's build context changed, on real files hashed as setup hashes them. Targets:
/// no-change <= 5% of cold; one-image <= 1.05 x the critical path of that image's downstream
/// subgraph (its build, load and the deploys after it); the re-run deploys the new digest. What
/// incremental setup adds is a fixed cost (about 0.1 s here, mostly the fake toolchain's process
/// starts), so its default scale is 1 s per minute: a 5-minute build takes 5 s.
#[derive(clap::Args, Debug)]
pub struct PipelineBench {
    /// Seconds of wall time per minute of the profile's durations [default: 0.5; 1 with
    /// --incremental]
    #[arg(long)]
    pub(crate) scale: Option<f64>,
    /// Measure incremental re-runs instead of the scheduling modes
    #[arg(long)]
    pub(crate) incremental: bool,
}

/// Wall time of `xtask lint` over a tree beside `rg` searching the rules' literals over the same
/// tree, median of several runs, as a ratio. Without DIR a tree of generated files with planted
/// violations is made (and kept) under target/e2e/bench/.
#[derive(clap::Args, Debug)]
pub struct LintBench {
    /// Lint this tree instead of a generated one
    pub(crate) dir: Option<PathBuf>,
    /// Files in the generated tree
    #[arg(long, default_value_t = 50_000)]
    pub(crate) files: usize,
    /// Timed runs of each (the median is reported)
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        match self.bench {
            Bench::Lint(b) => b.run(sh),
            Bench::Pipeline(b) => b.run(sh),
            Bench::E2e(b) => b.run(sh),
            Bench::Build(b) => b.run(sh),
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

// ---------------------------------------------------------------------------------------------
// bench pipeline.
// ---------------------------------------------------------------------------------------------

/// A task of a profile: id, minutes, deps (the kind is the id's prefix).
struct Step {
    id: &'static str,
    minutes: f64,
    deps: &'static [&'static str],
}

struct Profile {
    name: &'static str,
    source: &'static str,
    steps: &'static [Step],
}

/// An API-gateway operator: two 5-minute builds, a 15 s cluster, 30 s loads, then
/// the deploys in parallel (Kubernetes orders them), 2-3 minutes.
const GATEWAY: Profile = Profile {
    name: "gateway",
    source: "API gateway: slow builds",
    steps: &[
        Step { id: "build:gateway", minutes: 5.0, deps: &[] },
        Step { id: "build:datastorage", minutes: 5.0, deps: &[] },
        Step { id: "cluster", minutes: 0.25, deps: &["build:gateway", "build:datastorage"] },
        Step { id: "load:gateway", minutes: 0.5, deps: &["cluster", "build:gateway"] },
        Step { id: "load:datastorage", minutes: 0.5, deps: &["cluster", "build:datastorage"] },
        Step { id: "deploy:postgres-redis", minutes: 2.0, deps: &["cluster"] },
        Step { id: "deploy:datastorage", minutes: 2.5, deps: &["load:datastorage"] },
        Step { id: "deploy:gateway", minutes: 2.5, deps: &["load:gateway"] },
    ],
};

/// A workflow-execution controller: Tekton 5 min || PostgreSQL+Redis 2.5 min || Data Storage build
/// 2 min, then the DS deploy (1 min + 30 s ready), migrations (1 min), namespace + secrets (30 s).
const WORKFLOW: Profile = Profile {
    name: "workflow-execution",
    source: "workflow execution: slow Tekton install",
    steps: &[
        Step { id: "build:datastorage", minutes: 2.0, deps: &[] },
        Step { id: "cluster", minutes: 1.0, deps: &["build:datastorage"] },
        Step { id: "load:datastorage", minutes: 0.5, deps: &["cluster", "build:datastorage"] },
        Step { id: "deploy:tekton", minutes: 5.0, deps: &["cluster"] },
        Step { id: "deploy:postgres-redis", minutes: 2.5, deps: &["cluster"] },
        Step { id: "deploy:datastorage", minutes: 1.5, deps: &["deploy:postgres-redis", "load:datastorage"] },
        Step { id: "deploy:migrations", minutes: 1.0, deps: &["deploy:datastorage"] },
        Step { id: "deploy:namespace-secrets", minutes: 0.5, deps: &["cluster"] },
    ],
};

/// `--scale`: more than 0 (a zero scale runs nothing) and at most 60 (real time) seconds per
/// minute; anything else is a usage error.
fn check_scale(scale: f64) -> Result<()> {
    if scale > 0.0 && scale <= 60.0 {
        return Ok(());
    }
    Err(crate::usage::usage(format!(
        "--scale {scale}: give more than 0 and at most 60 seconds of wall time per minute of the profile (0.5 is the default)"
    )))
}

impl PipelineBench {
    fn scale(&self) -> f64 {
        self.scale.unwrap_or(if self.incremental { 1.0 } else { 0.5 })
    }

    fn run(self, sh: &Shell) -> Result<i32> {
        check_scale(self.scale())?;
        let fake_bin = fake_tool(sh)?;
        if self.incremental {
            return self.incremental(sh, &fake_bin);
        }
        let mut all_met = true;
        for profile in [&GATEWAY, &WORKFLOW] {
            let durations: Vec<f64> = profile.steps.iter().map(|s| s.minutes * self.scale()).collect();
            let mut walls = Vec::new();
            let mut lower = 0.0;
            for mode in ["sequential", "phase barriers", "graph"] {
                // A fresh fake world per mode: no cluster left over from the previous one.
                let mut fake = FakeWorld::new(sh, &fake_bin)?;
                let tasks = profile_tasks(profile, &mut fake, self.scale())?;
                lower = pipeline::critical_path(&tasks, &durations).1;
                let graph = if mode == "phase barriers" { with_barriers(&tasks) } else { tasks };
                let sequential = mode == "sequential";
                let logs = paths::state_root()
                    .join("bench")
                    .join("pipeline")
                    .join(profile.name)
                    .join(mode.replace(' ', "-"));
                let opts = Options { sequential, ..Options::new(logs, ProgressMode::Quiet) };
                let env = Env {
                    vars: vec![("PATH".into(), fake.path_env().to_string_lossy().into_owned())],
                    cwd: paths::project_root(),
                    kube_context: "kind-bench".into(),
                    platform: std::sync::OnceLock::new(),
                    store: None,
                    ran: Default::default(),
                    explain: None,
                };
                let report = pipeline::run(&graph, &opts, &|job| actions::run(job, &env))?;
                if let Some(e) = report.failure() {
                    bail!("bench {} ({mode}) failed: {e}", profile.name);
                }
                walls.push((mode, report.wall_s));
            }
            let graph = walls[2].1;
            let barrier = walls[1].1;
            println!("profile {} ({}), {} s per minute", profile.name, profile.source, self.scale());
            println!("  {:<16} {:>8}  {:>8}", "mode", "wall", "/ crit.");
            for (mode, wall) in &walls {
                println!("  {mode:<16} {wall:>7.2}s  {:>7.3}x", wall / lower);
            }
            println!("  {:<16} {lower:>7.2}s  (lower bound)", "critical path");
            let cp_ok = graph <= 1.03 * lower;
            println!("  graph / critical path  = {:.3} (target <= 1.03) {}", graph / lower, verdict(cp_ok));
            all_met &= cp_ok;
            let ratio = graph / barrier;
            if profile.name == "workflow-execution" {
                let ok = ratio <= 0.75;
                println!("  graph / phase barriers = {ratio:.3} (target <= 0.75) {}", verdict(ok));
                all_met &= ok;
            } else {
                println!("  graph / phase barriers = {ratio:.3}");
            }
            println!();
        }
        Ok(if all_met { 0 } else { 1 })
    }
}

/// The floor's manifest: the ten crates, features as this workspace uses them.
const FLOOR_MANIFEST: &str = r#"[package]
name = "xtask-build-floor"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
xshell = "0.2.7"
clap = { version = "4", features = ["derive"] }
anyhow = "1"
rayon = "1"
serde_json = "1"
regex = "1"
walkdir = "2"
ureq = { version = "3", default-features = false }
tempfile = "3"
indicatif = { version = "0.18", default-features = false }

[profile.dev]
debug = false

[workspace]
"#;

impl BuildBench {
    fn run(self, sh: &Shell) -> Result<i32> {
        let work = paths::state_root().join("bench").join("build");
        let _ = std::fs::remove_dir_all(&work);
        let floor = work.join("floor");
        std::fs::create_dir_all(floor.join("src"))
            .with_context(|| format!("creating {}", floor.display()))?;
        std::fs::write(floor.join("Cargo.toml"), FLOOR_MANIFEST)?;
        std::fs::write(
            floor.join("src/main.rs"),
            "fn main() {\n    let _ = (regex::Regex::new(\"x\"), walkdir::WalkDir::new(\".\"), xshell::Shell::new());\n}\n",
        )?;
        // The same versions as ours: cargo keeps what the floor uses of our lock file.
        std::fs::copy(paths::project_root().join("Cargo.lock"), floor.join("Cargo.lock"))
            .context("copying Cargo.lock for the floor")?;
        let cargo = sh.var("CARGO").unwrap_or_else(|_| "cargo".into());
        let log = paths::logs_dir().join("bench-build.log");
        let time = |dir: &std::path::Path, target: &std::path::Path, args: &[&str]| -> Result<f64> {
            let _d = sh.push_dir(dir);
            let start = Instant::now();
            exec::cmd(cmd!(sh, "{cargo} build --quiet {args...}").env("CARGO_TARGET_DIR", target))
                .log(&log)
                .run()
                .with_context(|| format!("cold build in {}", dir.display()))?;
            Ok(start.elapsed().as_secs_f64())
        };
        // Fetch first, so download time counts for neither.
        {
            let _d = sh.push_dir(&floor);
            exec::cmd(cmd!(sh, "{cargo} fetch --quiet"))
                .log(&log)
                .run()
                .context("fetching the floor's crates")?;
        }
        let (mut floors, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..self.runs.max(1) {
            let _ = std::fs::remove_dir_all(work.join("floor-target"));
            let _ = std::fs::remove_dir_all(work.join("xtask-target"));
            floors.push(time(&floor, &work.join("floor-target"), &[])?);
            ours.push(time(
                &paths::project_root(),
                &work.join("xtask-target"),
                &["-p", "xtask", "--bin", "xtask"],
            )?);
        }
        let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let show = |v: &[f64]| v.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(", ");
        let (floor_s, ours_s) = (fastest(&floors), fastest(&ours));
        let ratio = ours_s / floor_s.max(1e-9);
        let ok = ratio <= 1.5;
        println!(
            "cold build, dev profile, {} cores",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        println!("  floor (the ten crates) {floor_s:>7.1}s  (runs: {})", show(&floors));
        println!("  cargo xtask            {ours_s:>7.1}s  (runs: {})", show(&ours));
        println!("  ratio                  {ratio:>7.2}x (target <= 1.50) {}", verdict(ok));
        let _ = std::fs::remove_dir_all(&work);
        Ok(if ok { 0 } else { 1 })
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The fake toolchain's binary, built beside this one when it is not there yet. It belongs to the
/// engine's own repository (`test/support/fake_tool.rs`, a binary of its `it` test package): in
/// an adopter, `bench pipeline` and `bench e2e` say so instead of failing in cargo.
fn fake_tool(sh: &Shell) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let fake = exe.with_file_name("fake-tool");
    if !fake.exists() {
        if !paths::project_root().join("test/support/fake_tool.rs").is_file() {
            return Err(crate::usage::usage(
                "the pipeline and e2e benches run on the engine's fake toolchain, which lives in the engine's own repository: run them there (`git clone` it, then `cargo xtask bench pipeline`)",
            ));
        }
        let cargo = sh.var("CARGO").unwrap_or_else(|_| "cargo".into());
        let _root = sh.push_dir(paths::project_root());
        let release: Option<&str> =
            exe.parent().and_then(|p| p.file_name()).filter(|n| *n == "release").map(|_| "--release");
        exec::cmd(cmd!(sh, "{cargo} build --quiet {release...} -p it --bin fake-tool"))
            .log(paths::logs_dir().join("bench-pipeline.log"))
            .run()
            .context("building the fake toolchain")?;
    }
    Ok(fake)
}

/// A fake docker/kind/helm/kubectl world for one bench run: `fake-tool --install` writes the
/// wrappers, and the rules (what matches, how long it takes) go to its `scenario.json`, the format
/// `test/support/fake_tool.rs` documents. The tool ships no test support: only that binary, built
/// on demand, is used. Removed on drop.
struct FakeWorld {
    dir: tempfile::TempDir,
    rules: Vec<serde_json::Value>,
}

impl FakeWorld {
    fn new(sh: &Shell, fake_bin: &std::path::Path) -> Result<FakeWorld> {
        let dir = tempfile::Builder::new().prefix("bench-fake-").tempdir()?;
        let path = dir.path();
        exec::cmd(cmd!(sh, "{fake_bin} --install {path}"))
            .log(paths::logs_dir().join("bench.log"))
            .run()
            .context("installing the fake toolchain")?;
        Ok(FakeWorld { dir, rules: Vec::new() })
    }

    /// Calls of `tool` whose space-joined args match `pattern` take `delay_ms`.
    fn rule(&mut self, tool: &str, pattern: &str, delay_ms: u64) -> Result<()> {
        self.rules.push(serde_json::json!({ "tool": tool, "match": pattern, "delay_ms": delay_ms }));
        let path = self.dir.path().join("scenario.json");
        std::fs::write(&path, serde_json::json!({ "rules": self.rules }).to_string())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// PATH with the fakes first.
    fn path_env(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.dir.path().join("bin")];
        if let Some(current) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&current));
        }
        std::env::join_paths(dirs).unwrap_or_default()
    }
}

/// The profile as real pipeline tasks whose fake commands take the profile's durations.
fn profile_tasks(profile: &Profile, fake: &mut FakeWorld, scale: f64) -> Result<Vec<SetupTask>> {
    let mut tasks = Vec::new();
    for step in profile.steps {
        let ms = (step.minutes * scale * 1000.0).round() as u64;
        let (kind, name) = step.id.split_once(':').unwrap_or((step.id, ""));
        let action = match kind {
            "build" => {
                fake.rule("docker", &format!("^build -t {name}:"), ms)?;
                Action::Build {
                    name: name.to_string(),
                    tag: format!("{name}:bench"),
                    dockerfile: PathBuf::from(format!("docker/{name}.Dockerfile")),
                    context: PathBuf::from("."),
                    build_args: Vec::new(),
                    prebuild: Vec::new(),
                    prebuild_env: Vec::new(),
                    env: Vec::new(),
                    inputs: Vec::new(),
                }
            }
            "cluster" => {
                fake.rule("kind", "^create cluster", ms)?;
                Action::Cluster {
                    name: "bench".into(),
                    config: None,
                    wait: Duration::from_secs(60),
                    existing: None,
                }
            }
            "load" => {
                fake.rule("kind", &format!("^load docker-image {name}:"), ms)?;
                Action::Load {
                    image: name.into(),
                    tag: format!("{name}:bench"),
                    cluster: "bench".into(),
                    registry: None,
                }
            }
            _ => {
                fake.rule("helm", &format!("^upgrade --install {name} "), ms)?;
                Action::Helm {
                    release: name.into(),
                    chart: name.into(),
                    repo: None,
                    version: None,
                    namespace: "bench".into(),
                    values: Vec::new(),
                    set: Vec::new(),
                    timeout: Duration::from_secs(600),
                    waits: Vec::new(),
                }
            }
        };
        let deps = step.deps.iter().map(|d| d.to_string()).collect();
        tasks.push(SetupTask::new(step.id, deps, action, Duration::from_secs(600)));
    }
    Ok(tasks)
}

impl PipelineBench {
    /// Cold, no-change and one-image-changed setups of each profile, with the incremental records.
    fn incremental(&self, sh: &Shell, fake_bin: &std::path::Path) -> Result<i32> {
        let mut all_met = true;
        for profile in [&GATEWAY, &WORKFLOW] {
            let mut fake = FakeWorld::new(sh, fake_bin)?;
            let project = tempfile::Builder::new().prefix("bench-project-").tempdir()?;
            let mut tasks = profile_tasks(profile, &mut fake, self.scale())?;
            // Real inputs: a Dockerfile and a context per image, tags carrying the digest.
            for task in &mut tasks {
                match &mut task.action {
                    Action::Build { name, tag, dockerfile, context, .. } => {
                        let docker = project.path().join(format!("docker/{name}.Dockerfile"));
                        let ctx = project.path().join(format!("ctx-{name}"));
                        std::fs::create_dir_all(docker.parent().unwrap_or(project.path()))?;
                        std::fs::create_dir_all(&ctx)?;
                        std::fs::write(&docker, "FROM scratch\nCOPY . /\n")?;
                        std::fs::write(ctx.join("main.txt"), "v1\n")?;
                        *tag = format!("{name}:${{DIGEST}}");
                        *dockerfile = docker;
                        *context = ctx;
                    }
                    Action::Load { tag, image, .. } => *tag = format!("{image}:${{DIGEST}}"),
                    _ => {}
                }
            }
            let store = std::sync::Arc::new(crate::e2e::setup::incremental::Store::open(
                project.path().join("incremental.json"),
                false,
            ));
            let env = Env {
                vars: vec![("PATH".into(), fake.path_env().to_string_lossy().into_owned())],
                cwd: project.path().to_path_buf(),
                kube_context: "kind-bench".into(),
                platform: std::sync::OnceLock::new(),
                store: Some(store.clone()),
                ran: Default::default(),
                explain: None,
            };
            let logs = paths::state_root().join("bench").join("incremental").join(profile.name);
            let _ = std::fs::remove_dir_all(&logs); // this bench's logs only
            let opts = Options::new(logs, ProgressMode::Quiet);
            let run = |what: &str| -> Result<pipeline::Report> {
                // Each run is a setup of its own: what ran before is in the records, not here.
                if let Ok(mut ran) = env.ran.lock() {
                    ran.clear();
                }
                let report = pipeline::run(&tasks, &opts, &|job| actions::run(job, &env))?;
                if let Some(e) = report.failure() {
                    bail!("bench incremental {} ({what}) failed: {e}", profile.name);
                }
                Ok(report)
            };
            let cold = run("cold")?;
            let unchanged = run("no change")?;
            // One image's source changes: the first build of the profile.
            let changed =
                profile.steps.iter().find(|s| s.id.starts_with("build:")).map(|s| &s.id[6..]).unwrap_or("");
            let before = store.snapshot().images.get(changed).map(|i| i.tag.clone()).unwrap_or_default();
            std::fs::write(project.path().join(format!("ctx-{changed}/main.txt")), "v2\n")?;
            let one = run("one image changed")?;
            let after = store.snapshot().images.get(changed).map(|i| i.tag.clone()).unwrap_or_default();

            // The changed image's downstream subgraph and its critical path (profile durations).
            let durations: Vec<f64> = profile.steps.iter().map(|s| s.minutes * self.scale()).collect();
            let mut downstream = vec![false; tasks.len()];
            // (The cluster comes after the builds only to start late: it does not change with them.)
            for (i, t) in tasks.iter().enumerate() {
                let cluster = matches!(t.action, Action::Cluster { .. });
                downstream[i] = t.id == format!("build:{changed}")
                    || (!cluster
                        && t.deps.iter().any(|d| {
                            tasks.iter().position(|x| &x.id == d).is_some_and(|j| j < i && downstream[j])
                        }));
            }
            let sub: Vec<SetupTask> = tasks
                .iter()
                .zip(&downstream)
                .filter(|(_, d)| **d)
                .map(|(t, _)| {
                    let mut t = t.clone();
                    t.deps.retain(|d| tasks.iter().position(|x| &x.id == d).is_some_and(|j| downstream[j]));
                    t
                })
                .collect();
            let sub_durations: Vec<f64> =
                durations.iter().zip(&downstream).filter(|(_, d)| **d).map(|(v, _)| *v).collect();
            let (path, bound) = pipeline::critical_path(&sub, &sub_durations);
            let ran_in = |r: &pipeline::Report| -> String {
                let ran: Vec<&str> = r
                    .tasks
                    .iter()
                    .filter(|t| t.status == pipeline::Status::Ok)
                    .map(|t| t.id.as_str())
                    .collect();
                if ran.is_empty() {
                    "nothing".into()
                } else {
                    ran.join(", ")
                }
            };
            let fresh_all = unchanged.tasks.iter().all(|t| t.status == pipeline::Status::UpToDate);
            let none_ratio = unchanged.wall_s / cold.wall_s;
            let one_ratio = one.wall_s / bound;
            let deployed_new = after != before && !after.is_empty();
            println!(
                "profile {} ({}), {} s per minute, incremental",
                profile.name,
                profile.source,
                self.scale()
            );
            println!("  cold setup                {:>7.2}s  ({} tasks)", cold.wall_s, cold.tasks.len());
            println!(
                "  no-change re-run          {:>7.2}s  = {:.1}% of cold (target <= 5%) {}",
                unchanged.wall_s,
                100.0 * none_ratio,
                verdict(none_ratio <= 0.05),
            );
            println!("    ran: {}", ran_in(&unchanged));
            println!(
                "  one image ({changed}) changed {:>7.2}s  = {one_ratio:.3}x its downstream critical path {bound:.2}s ({}) (target <= 1.05) {}",
                one.wall_s,
                path.join(" -> "),
                verdict(one_ratio <= 1.05)
            );
            println!("    ran: {}", ran_in(&one));
            println!(
                "    {changed}: {before} -> {after} (stale images: {})",
                if deployed_new { 0 } else { 1 }
            );
            println!();
            all_met &= none_ratio <= 0.05 && one_ratio <= 1.05 && fresh_all && deployed_new;
        }
        Ok(if all_met { 0 } else { 1 })
    }
}

/// The old scripts' way: builds, then the cluster, then loads, then deploys, each phase (and each level
/// of dependent deploys) waiting for all of the previous one.
fn with_barriers(tasks: &[SetupTask]) -> Vec<SetupTask> {
    let mut level: Vec<usize> = Vec::new();
    for t in tasks {
        let base = match t.id.split(':').next() {
            Some("build") => 0,
            Some("cluster") => 1,
            Some("load") => 2,
            _ => 3,
        };
        // A deploy after other deploys sits one level after the deepest of them.
        let after = t
            .deps
            .iter()
            .filter(|d| d.starts_with("deploy:"))
            .filter_map(|d| tasks.iter().position(|x| &x.id == d).map(|i| level[i] + 1))
            .max()
            .unwrap_or(base);
        level.push(after.max(base));
    }
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut t = t.clone();
            t.deps =
                (0..tasks.len()).filter(|&j| level[j] + 1 == level[i]).map(|j| tasks[j].id.clone()).collect();
            t
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// bench e2e.
// ---------------------------------------------------------------------------------------------

/// Shared setup (minutes): a build, the cluster, a load, Gitea (fast) and Tekton (slow, seed
/// 004's install took 5 of 7.5 minutes) deploys.
const E2E_SETUP: &[(&str, &str, f64)] = &[
    ("docker", "^build", 2.0),
    ("kind", "^create cluster", 0.5),
    ("kind", "^load", 0.25),
    ("helm", "^upgrade --install gitea ", 1.0),
    ("helm", "^upgrade --install tekton ", 5.0),
];
/// The flows (minutes) and what each needs: the full suite and a quickstart need only Gitea; the
/// pipelines flow needs Tekton.
const E2E_FLOWS: &[(&str, f64, &str)] =
    &[("full", 6.0, "gitea"), ("quickstart-helm", 3.0, "gitea"), ("pipelines", 2.5, "tekton")];

impl E2eBench {
    fn run(self, sh: &Shell) -> Result<i32> {
        check_scale(self.scale)?;
        let fake_bin = fake_tool(sh)?;
        let xtask = std::env::current_exe().context("locating the xtask binary")?;
        let ms = |minutes: f64| (minutes * self.scale * 1000.0).round() as u64;
        let work = tempfile::Builder::new().prefix("bench-e2e-").tempdir()?;
        let mut fake = FakeWorld::new(sh, &fake_bin)?;
        for (tool, pattern, minutes) in E2E_SETUP {
            fake.rule(tool, pattern, ms(*minutes))?;
        }
        for (flow, minutes, _) in E2E_FLOWS {
            fake.rule("kubectl", &format!("^rollout status deployment/{flow} "), ms(*minutes))?;
        }
        let def = write_bench_definition(work.path())?;
        let state = work.path().join("state");
        let path = fake.path_env();
        let args = ["e2e".to_string(), "--parallel".into(), "--definition".into(), def.display().to_string()];
        let start = std::time::Instant::now();
        let out = exec::cmd(
            cmd!(sh, "{xtask} {args...}").env("PATH", &path).env("E2E_STATE_DIR", &state).env("CI", "true"),
        )
        .allow_failure()
        .log(paths::logs_dir().join("bench-e2e.log"))
        .run();
        let wall = start.elapsed().as_secs_f64();
        let stop_args =
            ["port-forward".to_string(), "stop".into(), "--definition".into(), def.display().to_string()];
        let _ = exec::cmd(cmd!(sh, "{xtask} {stop_args...}").env("PATH", &path).env("E2E_STATE_DIR", &state))
            .allow_failure()
            .log(paths::logs_dir().join("bench-e2e.log"))
            .run();
        let out = out?;
        if out.code != Some(0) {
            bail!("bench e2e run failed:\n{}{}", out.stdout, out.stderr);
        }
        let report_path = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("timing report: "))
            .context("the e2e run printed no timing report")?;
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(report_path.trim()).with_context(|| format!("reading {report_path}"))?,
        )
        .with_context(|| format!("reading {report_path}"))?;
        let graph_wall = report["wall_s"].as_f64().unwrap_or(0.0);
        let critical = report["critical_path_s"].as_f64().unwrap_or(0.0);
        let tasks = report["tasks"].as_array().cloned().unwrap_or_default();
        let end_of = |t: &serde_json::Value| t["end_s"].as_f64().unwrap_or(0.0);
        let is_flow = |t: &serde_json::Value| t["id"].as_str().is_some_and(|i| i.starts_with("flow:"));
        // Setup then flows (every flow after the last of shared infra), with these same durations.
        let infra_end = tasks.iter().filter(|t| !is_flow(t)).map(end_of).fold(0.0, f64::max);
        let longest = tasks
            .iter()
            .filter(|t| is_flow(t))
            .map(|t| t["duration_s"].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max);
        let before = infra_end + longest;
        println!(
            "e2e: one graph, shared setup + 3 flows (2 need Gitea, 1 needs the slow Tekton), {} s per minute",
            self.scale
        );
        println!("  {:<34} {:>8}", "e2e wall (process)", format!("{wall:.2}s"));
        println!("  {:<34} {:>8}", "graph wall (timing report)", format!("{graph_wall:.2}s"));
        println!("  {:<34} {:>8}", "critical path of the combined graph", format!("{critical:.2}s"));
        println!("  {:<34} {:>8}", "setup then flows (same durations)", format!("{before:.2}s"));
        let ratio = if critical > 0.0 { graph_wall / critical } else { f64::INFINITY };
        let ok = ratio <= 1.03;
        println!("  graph wall / critical path = {ratio:.3} (target <= 1.03) {}", verdict(ok));
        println!(
            "  saved against setup-then-flows: {:.2}s ({:.0}%)",
            before - graph_wall,
            100.0 * (before - graph_wall) / before.max(f64::MIN_POSITIVE)
        );
        Ok(if ok { 0 } else { 1 })
    }
}

fn write_bench_definition(dir: &std::path::Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir.join("docker"))?;
    std::fs::write(dir.join("docker/app.Dockerfile"), "FROM scratch\n")?;
    let port = || -> Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
    let mut text = String::from(
        "[cluster]\nname = \"bench\"\n\n[[image]]\nname = \"app\"\ntag = \"app:bench\"\ndockerfile = \"docker/app.Dockerfile\"\n\n\
         [[deploy]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\nhelm = { chart = \"gitea\" }\n\n\
         [[deploy]]\nname = \"tekton\"\nnamespace = \"tekton-pipelines\"\nhelm = { chart = \"tekton\" }\n",
    );
    text.push_str(&format!(
        "\n[[port-forward]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\ntarget = \"svc/gitea-http\"\nlocal = {}\nremote = 3000\nprobe = \"/api/v1/version\"\n",
        port()?
    ));
    for (flow, _, needs) in E2E_FLOWS {
        text.push_str(&format!(
            "\n[[flow]]\nname = \"{flow}\"\ngitea = false\nneeds = [\"{needs}\"]\nsteps = [[\"kubectl\", \"rollout\", \"status\", \"deployment/{flow}\", \"--namespace\", \"${{E2E_TEST_NAMESPACE}}\"]]\n"
        ));
    }
    let path = dir.join("e2e.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}
