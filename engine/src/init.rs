//! `init`: scaffolds the adoption of the engine into an operator repository — a thin xtask, the
//! cargo alias, the workspace, the lint config with a baseline of today's findings, the
//! pre-commit hook, and an e2e definition guessed from what is there.
//!
//! Files that exist are never overwritten without `--force`; the three files others own too
//! (`Cargo.toml`, `.cargo/config.toml`, `.gitignore`) are merged: a line added, nothing removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::lint::commands::{CommonArgs, LintArgs};
use crate::lint::output::Format;
use crate::lint::{dockerfiles, walk};

/// Adopt the engine in an operator repository: a thin xtask and a definition to start from.
///
/// Writes into REPO (default: the repository of the current directory):
///   xtask/Cargo.toml, xtask/src/main.rs   the thin xtask: one dependency, a three-line main
///   .cargo/config.toml                    the `cargo xtask` alias (merged into an existing one)
///   Cargo.toml                            a workspace holding xtask (or xtask added to yours)
///   .gitignore                            /target/
///   hack/lint.toml, hack/lint-baseline.json
///                                         the lint config, and today's findings as its baseline:
///                                         the gates pass on day one, new findings fail
///   hack/pre-commit                       the hook (installed in .git/hooks when none is there)
///   test/e2e/e2e.toml                     a definition from what it finds: Dockerfiles as
///                                         [[image]], a kind config as [cluster], charts as
///                                         [[deploy]], one smoke flow; every guess is marked
///
/// The engine is a git dependency pinned by --engine-tag or --engine-rev, or a path dependency
/// with --engine-path (a checkout of the engine: its engine/ directory or the repository root).
/// Nothing is overwritten without --force; it prints what it wrote and what to do next.
///
/// Examples:
///   operator-e2e init --engine-git https://github.com/acme/operator-e2e --engine-tag v0.1.0
///   cargo run --manifest-path ../operator-e2e/engine/Cargo.toml -- init --engine-path ../operator-e2e
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The repository to adopt the engine in [default: the git root of the current directory]
    #[arg(long, value_name = "REPO")]
    dir: Option<PathBuf>,
    /// Depend on the engine by path (a checkout of it) instead of by git
    #[arg(long, value_name = "PATH", conflicts_with_all = ["engine_git", "engine_tag", "engine_rev"])]
    engine_path: Option<PathBuf>,
    /// The engine's git repository [default: the engine's own `repository`, when it has one]
    #[arg(long, value_name = "URL")]
    engine_git: Option<String>,
    /// Pin the git dependency to this tag [default: v<this engine's version>]
    #[arg(long, value_name = "TAG", conflicts_with = "engine_rev")]
    engine_tag: Option<String>,
    /// Pin the git dependency to this commit
    #[arg(long, value_name = "REV")]
    engine_rev: Option<String>,
    /// Overwrite files that exist
    #[arg(long)]
    force: bool,
}

/// What happened to one file.
enum Outcome {
    Wrote,
    Merged(String),
    Unchanged,
    Kept,
}

struct Scaffold {
    repo: PathBuf,
    force: bool,
    done: Vec<(String, Outcome)>,
}

impl Scaffold {
    /// Writes `text` to `rel` unless a different file is there (then only with --force).
    fn write(&mut self, rel: &str, text: &str) -> Result<bool> {
        let path = self.repo.join(rel);
        if let Ok(old) = std::fs::read_to_string(&path) {
            if old == text {
                self.done.push((rel.into(), Outcome::Unchanged));
                return Ok(false);
            }
            if !self.force {
                self.done.push((rel.into(), Outcome::Kept));
                return Ok(false);
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        self.done.push((rel.into(), Outcome::Wrote));
        Ok(true)
    }

    /// A merge into a file others own too: `merge` gets its text (empty when absent) and returns
    /// the new text and what it changed, or None to leave it.
    fn merge(
        &mut self,
        rel: &str,
        merge: impl FnOnce(&str) -> Result<Option<(String, String)>>,
    ) -> Result<()> {
        let path = self.repo.join(rel);
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match merge(old.as_deref().unwrap_or(""))? {
            None => self.done.push((rel.into(), Outcome::Unchanged)),
            Some((text, what)) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                let outcome = if old.is_some() { Outcome::Merged(what) } else { Outcome::Wrote };
                self.done.push((rel.into(), outcome));
            }
        }
        Ok(())
    }
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let repo = match &self.dir {
            Some(dir) => walk::normalize(&cwd.join(dir)),
            None => crate::paths::project_root(),
        };
        if !repo.is_dir() {
            return Err(crate::usage::usage(format!("--dir {}: no such directory", repo.display())));
        }
        if !repo.join(".git").exists() {
            eprintln!(
                "note: {} is not the root of a git repository: paths in the config are relative to the nearest .git above it",
                repo.display()
            );
        }
        let dependency = self.dependency(&repo)?;
        let mut s = Scaffold { repo: repo.clone(), force: self.force, done: Vec::new() };

        // The thin xtask.
        s.write("xtask/Cargo.toml", &xtask_manifest(&dependency))?;
        s.write("xtask/src/main.rs", MAIN_RS)?;
        s.merge(".cargo/config.toml", |old| merge_alias(old, self.force))?;
        s.merge("Cargo.toml", merge_workspace)?;
        s.merge(".gitignore", |old| {
            let ignored = old
                .lines()
                .map(str::trim)
                .any(|l| matches!(l, "/target/" | "/target" | "target/" | "target"));
            Ok((!ignored).then(|| {
                let sep = if old.is_empty() || old.ends_with('\n') { "" } else { "\n" };
                (format!("{old}{sep}/target/\n"), "added /target/".into())
            }))
        })?;

        // The gates: lint config with today's findings as the baseline, and the hook.
        let found = Found::scan(&repo);
        let wrote_config = s.write("hack/lint.toml", &lint_config(&repo, &found))?;
        if wrote_config || !repo.join("hack/lint-baseline.json").exists() {
            let lint = LintArgs {
                common: CommonArgs {
                    config: Some(repo.join("hack/lint.toml")),
                    format: Format::Human,
                    baseline: None,
                    no_baseline: false,
                    write_baseline: true,
                    paths: Vec::new(),
                },
                staged: false,
            };
            lint.run(sh).context("recording today's findings as the lint baseline")?;
            s.done.push(("hack/lint-baseline.json".into(), Outcome::Wrote));
        }
        s.write("hack/pre-commit", PRE_COMMIT)?;
        make_executable(&repo.join("hack/pre-commit"))?;
        let hook = install_hook(&repo)?;

        // The e2e definition.
        let definition = definition_skeleton(&repo, &found);
        if s.write("test/e2e/e2e.toml", &definition)? {
            crate::e2e::definition::load(&repo.join("test/e2e/e2e.toml"))
                .map_err(|e| anyhow::anyhow!("init wrote a definition it cannot read (a bug): {e:#}"))?;
        }

        let mut out = String::new();
        let _ = writeln!(out, "Adopting operator-e2e in {}:", repo.display());
        for (file, outcome) in &s.done {
            let what = match outcome {
                Outcome::Wrote => "wrote".to_string(),
                Outcome::Merged(what) => format!("merged ({what})"),
                Outcome::Unchanged => "unchanged".to_string(),
                Outcome::Kept => "kept: it exists and differs (--force overwrites it)".to_string(),
            };
            let _ = writeln!(out, "  {file:28} {what}");
        }
        let _ = writeln!(out, "  {:28} {hook}", ".git/hooks/pre-commit");
        let _ = writeln!(
            out,
            "\nNext:\n  1. cargo xtask --help                 (the first run builds the engine: a minute or two)\n  2. cargo xtask lint                   (passes: today's findings are the baseline; new ones fail)\n  3. edit test/e2e/e2e.toml             (every `guess` is one; `cargo xtask setup --dry-run` shows the plan)\n  4. cargo xtask doctor, then cargo xtask e2e --parallel\n  5. commit xtask/, Cargo.toml, Cargo.lock, .cargo/config.toml, hack/ and test/e2e/e2e.toml;\n     CI runs `cargo xtask ci` (fmt, clippy, lint, workflows, test)"
        );
        print!("{out}");
        Ok(0)
    }

    /// The `operator-e2e = …` dependency line.
    fn dependency(&self, repo: &Path) -> Result<String> {
        if let Some(path) = &self.engine_path {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            let given = walk::normalize(&cwd.join(path));
            let engine = [given.join("engine"), given.clone()]
                .into_iter()
                .find(|p| {
                    std::fs::read_to_string(p.join("Cargo.toml"))
                        .is_ok_and(|t| t.contains("name = \"operator-e2e\""))
                })
                .ok_or_else(|| {
                    crate::usage::usage(format!(
                        "--engine-path {}: no operator-e2e crate there (neither {}/Cargo.toml nor {}/engine/Cargo.toml names it)",
                        path.display(),
                        given.display(),
                        given.display()
                    ))
                })?;
            let shown = relative_path(&engine, &repo.join("xtask"));
            return Ok(format!("operator-e2e = {{ path = \"{}\" }}", shown.display()));
        }
        let url = self
            .engine_git
            .clone()
            .or_else(|| Some(env!("CARGO_PKG_REPOSITORY").to_string()).filter(|u| !u.is_empty()))
            .ok_or_else(|| {
                crate::usage::usage(
                    "say where the engine comes from: --engine-git URL (with --engine-tag TAG or --engine-rev REV), or --engine-path PATH to a checkout of it",
                )
            })?;
        let pin = match (&self.engine_rev, &self.engine_tag) {
            (Some(rev), _) => format!("rev = \"{rev}\""),
            (None, Some(tag)) => format!("tag = \"{tag}\""),
            (None, None) => format!("tag = \"v{}\"", env!("CARGO_PKG_VERSION")),
        };
        Ok(format!("operator-e2e = {{ git = \"{url}\", {pin} }}"))
    }
}

const MAIN_RS: &str = "//! `cargo xtask`: the e2e layer of this repository (https://docs.rs/operator-e2e).\nfn main() -> std::process::ExitCode {\n    operator_e2e::main()\n}\n";

const PRE_COMMIT: &str = "#!/bin/sh\n# Git pre-commit hook: lint only the staged files (Dockerfile policy, run-isolation scan), with\n# the baseline of hack/lint.toml. Install: ln -s ../../hack/pre-commit .git/hooks/pre-commit\n# Skip once (not recommended): git commit --no-verify\nexec cargo xtask lint --staged\n";

fn xtask_manifest(dependency: &str) -> String {
    format!(
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n# `cargo xtask …` (alias in .cargo/config.toml): the e2e layer of this repository.\n[dependencies]\n{dependency}\n"
    )
}

/// The alias into `.cargo/config.toml`: a new file, a line under an existing `[alias]`, or the
/// section appended. An `xtask` alias of another meaning is left alone unless `force`.
fn merge_alias(old: &str, force: bool) -> Result<Option<(String, String)>> {
    const LINE: &str = "xtask = \"run --package xtask --\"";
    if old.trim().is_empty() {
        return Ok(Some((format!("[alias]\n{LINE}\n"), String::new())));
    }
    let parsed = crate::toml::parse(old).context("reading .cargo/config.toml")?;
    if let Some(existing) = parsed.get("alias").and_then(|a| a.get("xtask")) {
        if existing.as_str() == Some("run --package xtask --") {
            return Ok(None);
        }
        if !force {
            bail!(
                ".cargo/config.toml already has an xtask alias ({existing}); make it `{LINE}` or rerun with --force"
            );
        }
        let lines: Vec<String> = old
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("xtask") && l.contains('=') {
                    LINE.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        return Ok(Some((lines.join("\n") + "\n", "replaced the xtask alias".into())));
    }
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    if let Some(at) = lines.iter().position(|l| l.trim() == "[alias]") {
        lines.insert(at + 1, LINE.to_string());
        return Ok(Some((lines.join("\n") + "\n", "added the xtask alias".into())));
    }
    let sep = if old.ends_with('\n') { "\n" } else { "\n\n" };
    Ok(Some((format!("{old}{sep}[alias]\n{LINE}\n"), "added [alias] xtask".into())))
}

/// The workspace: a new one tuned for a quick cold build of the engine, or `xtask` added to the
/// members of an existing one (whose profiles are the team's own and stay as they are).
fn merge_workspace(old: &str) -> Result<Option<(String, String)>> {
    if old.trim().is_empty() {
        return Ok(Some((WORKSPACE.to_string(), String::new())));
    }
    let parsed = crate::toml::parse(old).context("reading Cargo.toml")?;
    let Some(workspace) = parsed.get("workspace") else {
        let sep = if old.ends_with('\n') { "\n" } else { "\n\n" };
        return Ok(Some((
            format!("{old}{sep}[workspace]\nmembers = [\"xtask\"]\n"),
            "added [workspace] with xtask".into(),
        )));
    };
    let members: Vec<&str> = workspace
        .get("members")
        .and_then(|m| m.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if members.contains(&"xtask") {
        return Ok(None);
    }
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    if let Some(at) = lines.iter().position(|l| l.trim_start().starts_with("members") && l.contains('[')) {
        let open = lines[at].find('[').unwrap_or(0);
        let rest = lines[at][open + 1..].trim_start();
        let comma = if rest.starts_with(']') { "" } else { ", " };
        lines[at] = format!("{}\"xtask\"{comma}{}", &lines[at][..=open], rest);
    } else if let Some(at) = lines.iter().position(|l| l.trim() == "[workspace]") {
        lines.insert(at + 1, "members = [\"xtask\"]".into());
    } else {
        bail!("Cargo.toml has a workspace this cannot edit: add \"xtask\" to [workspace] members by hand, then rerun");
    }
    let text = lines.join("\n") + "\n";
    crate::toml::parse(&text)
        .context("adding xtask to the workspace members of Cargo.toml (edit it by hand)")?;
    Ok(Some((text, "added xtask to the workspace members".into())))
}

const WORKSPACE: &str = r#"[workspace]
resolver = "2"
members = ["xtask"]

# `cargo xtask` builds the engine on every fresh checkout: these keep that cold build quick
# (operator-e2e's own settings: no debug info or incremental caches; the lints' inner loops
# optimised, where a lint spends its time).
[profile.dev]
debug = false
incremental = false
[profile.dev.package.memchr]
opt-level = 1
[profile.dev.package.xtask-scan]
opt-level = 3
[profile.dev.package.xtask-lint]
debug-assertions = false
overflow-checks = false
[profile.dev.package.regex-automata]
debug-assertions = false
overflow-checks = false
[profile.dev.package.regex-syntax]
debug-assertions = false
overflow-checks = false
[profile.dev.package.aho-corasick]
debug-assertions = false
overflow-checks = false
"#;

/// What init found in the repository to guess the definition from.
#[derive(Default)]
struct Found {
    dockerfiles: Vec<PathBuf>,
    kind_configs: Vec<PathBuf>,
    charts: Vec<PathBuf>,
    /// Top-level directories the lint should scan (those that exist of the usual ones).
    scope: Vec<String>,
}

impl Found {
    fn scan(repo: &Path) -> Found {
        let none =
            walk::exclude_matcher(repo, &[]).unwrap_or_else(|_| xtask_lint::gitignore::Gitignore::new(repo));
        let wanted = |p: &Path| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            dockerfiles::is_dockerfile(p)
                || name == "Chart.yaml"
                || name.ends_with(".yaml")
                || name.ends_with(".yml")
        };
        let files = walk::walk(&[repo.to_path_buf()], &none, &wanted);
        let mut found = Found::default();
        for file in files {
            let rel = file.strip_prefix(repo).unwrap_or(&file).to_path_buf();
            // Vendored and generated trees are not the repository's own.
            if rel.components().any(|c| {
                matches!(c.as_os_str().to_str(), Some("vendor" | "node_modules" | "target" | "testdata"))
            }) {
                continue;
            }
            let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if dockerfiles::is_dockerfile(&rel) {
                found.dockerfiles.push(rel);
            } else if name == "Chart.yaml" {
                if let Some(dir) = rel.parent() {
                    found.charts.push(dir.to_path_buf());
                }
            } else if std::fs::read_to_string(&file)
                .is_ok_and(|t| t.contains("kind.x-k8s.io/") && t.contains("kind: Cluster"))
            {
                found.kind_configs.push(rel);
            }
        }
        // Charts under charts/ or deploy/ first: those are the ones a team installs.
        found.charts.sort_by_key(|c| (!(c.starts_with("charts") || c.starts_with("deploy")), c.clone()));
        found.dockerfiles.sort_by_key(|d| (d.components().count(), d.clone()));
        found.scope = ["test", "hack", "scripts", "Makefile", ".github/workflows"]
            .into_iter()
            .filter(|d| repo.join(d).exists())
            .map(String::from)
            .collect();
        found
    }
}

fn lint_config(repo: &Path, found: &Found) -> String {
    let name = repo_name(repo);
    let scope = found.scope.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!(
        r#"# The lint config of {name}: `cargo xtask lint`, the pre-commit hook (hack/pre-commit) and the
# `lint` gate of `cargo xtask ci` read it. Written by `cargo xtask init`.

# Today's findings, accepted: the gates fail only on new ones. Fix one, then rerun
# `cargo xtask lint --write-baseline` to shrink it.
baseline = "hack/lint-baseline.json"

[hardcoded]
# Namespaces a test must never hardcode (take $E2E_TEST_NAMESPACE from the run context).
# guess: the legacy layer's fixed namespace; add your own
# xtask-lint: allow(hardcoded-namespace)
namespaces = ["sut"]
# localhost ports that are shared infra (port-forwards every run shares): allowed.
# guess: Gitea HTTP and SSH, Prometheus, as `test/e2e/e2e.toml` forwards them
shared-ports = [13000, 13022, 19090]
# What is scanned when no PATH is given (plus every *.sh / *.bash / *.mk in the repository).
scope = [{scope}]

[dockerfile]
# forbid: no full `dnf update` in e2e images (slow, unreproducible); require: every stage that
# installs packages updates first; off.
dnf-update = "forbid"
"#
    )
}

/// The definition skeleton: what was found, each inferred entry marked `guess`.
fn definition_skeleton(repo: &Path, found: &Found) -> String {
    let name = repo_name(repo);
    let mut out = format!(
        "# The e2e definition of {name}: what `cargo xtask setup` builds, creates, loads and deploys, and\n# the flows `cargo xtask e2e` runs. Written by `cargo xtask init` from what it found: every\n# line marked `guess` is one; check it, then remove the mark. Paths are relative to the\n# repository root. Reference: docs/definition.md of operator-e2e.\n\n[cluster]\nname = \"{name}-e2e\"\n"
    );
    match found.kind_configs.first() {
        Some(config) => {
            let _ = writeln!(
                out,
                "# guess: the kind config found here (a template may use ${{REPO_ROOT}} and env vars)"
            );
            let _ = writeln!(out, "config = \"{}\"", config.display());
        }
        None => out.push_str("# config = \"hack/kind-config.yaml\"   # no kind Cluster config was found\n"),
    }
    out.push_str("wait = \"120s\"\n");
    let mut images = Vec::new();
    for dockerfile in &found.dockerfiles {
        let image = image_name(dockerfile, &name);
        if images.contains(&image) {
            continue;
        }
        let _ = write!(
            out,
            "\n# guess: an image of {df}, built from the repository root\n[[image]]\nname = \"{image}\"\ntag = \"{image}:${{DIGEST}}\"\ndockerfile = \"{df}\"\ncontext = \".\"\n",
            df = dockerfile.display()
        );
        images.push(image);
    }
    for chart in &found.charts {
        let chart_name =
            chart.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| name.clone());
        let chart_name = dns_label(&chart_name);
        let _ = write!(
            out,
            "\n# guess: the chart {c}, installed once as shared infra\n[[deploy]]\nname = \"{chart_name}\"\nnamespace = \"{chart_name}-system\"\nhelm = {{ chart = \"{c}\" }}\n",
            c = chart.display()
        );
        if !images.is_empty() {
            let list = images.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
            let _ = writeln!(out, "# guess: the chart runs the images built above (loaded before it installs)\nimages = [{list}]");
            let _ = writeln!(out, "# set = {{ \"image.repository\" = \"…\", \"image.tag\" = \"…\" }}   # how the chart takes its image");
        }
        out.push_str("timeout = \"5m\"\n");
    }
    out.push_str(
        "\n# One smoke flow: its run namespace exists. Replace the step with your suite, e.g.\n# [\"go\", \"test\", \"./test/e2e/...\", \"-v\"] (it gets $E2E_TEST_NAMESPACE, $KUBECONFIG, …).\n[[flow]]\nname = \"smoke\"\ntimeout = \"10m\"\n# No per-run Gitea repository (set true, and forward Gitea, when the suite needs one).\ngitea = false\nsteps = [[\"kubectl\", \"get\", \"namespace\", \"${E2E_TEST_NAMESPACE}\"]]\n",
    );
    out
}

/// `docker/manager.Dockerfile` → manager, `Dockerfile.webhook` → webhook, `cmd/x/Dockerfile` →
/// x, the root `Dockerfile` → the repository's name.
fn image_name(dockerfile: &Path, repo: &str) -> String {
    let file = dockerfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = ["Dockerfile.", "Containerfile."]
        .iter()
        .find_map(|p| file.strip_prefix(p))
        .or_else(|| file.strip_suffix(".Dockerfile"))
        .or_else(|| file.strip_suffix(".Containerfile"))
        .map(str::to_string)
        .or_else(|| dockerfile.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty() && s != "docker" && s != "build")
        .unwrap_or_else(|| repo.to_string());
    dns_label(&stem)
}

/// Lowercase letters, digits and `-`, starting with a letter (names in the definition).
fn dns_label(text: &str) -> String {
    let mut out: String =
        text.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    out = out.trim_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "x-");
    }
    out.truncate(40);
    out.trim_end_matches('-').to_string()
}

fn repo_name(repo: &Path) -> String {
    dns_label(
        &repo.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "operator".into()),
    )
}

/// `to` as seen from `from` (both absolute): `../engine`, or absolute when they share no root.
fn relative_path(to: &Path, from: &Path) -> PathBuf {
    let to_parts: Vec<_> = to.components().collect();
    let from_parts: Vec<_> = from.components().collect();
    let common = to_parts.iter().zip(&from_parts).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..from_parts.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part.as_os_str());
    }
    out
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions();
    perms.set_mode(perms.mode() | 0o111);
    std::fs::set_permissions(path, perms).with_context(|| format!("making {} executable", path.display()))
}

/// Links `.git/hooks/pre-commit` to `hack/pre-commit` when the repository has no hook of its own.
fn install_hook(repo: &Path) -> Result<String> {
    let hooks = repo.join(".git/hooks");
    if !repo.join(".git").is_dir() {
        return Ok("not installed: no .git directory (link it to hack/pre-commit yourself)".into());
    }
    let hook = hooks.join("pre-commit");
    if std::fs::read_link(&hook).is_ok_and(|t| t == Path::new("../../hack/pre-commit")) {
        return Ok("unchanged".into());
    }
    if hook.symlink_metadata().is_ok() {
        return Ok("kept: a hook is there already (call hack/pre-commit from it)".into());
    }
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    std::os::unix::fs::symlink("../../hack/pre-commit", &hook)
        .with_context(|| format!("linking {} to hack/pre-commit", hook.display()))?;
    Ok("installed (a link to hack/pre-commit)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_come_from_the_dockerfile_name_or_its_directory() {
        let cases = [
            ("Dockerfile", "gitops-reverser"),
            ("docker/manager.Dockerfile", "manager"),
            ("Dockerfile.webhook", "webhook"),
            ("cmd/probe/Dockerfile", "probe"),
            ("docker/Dockerfile", "gitops-reverser"),
            ("build/Containerfile", "gitops-reverser"),
            ("x/My_Image.Dockerfile", "my-image"),
        ];
        for (path, want) in cases {
            assert_eq!(image_name(Path::new(path), "gitops-reverser"), want, "{path}");
        }
        assert_eq!(dns_label("9lives"), "x-9lives");
    }

    #[test]
    fn the_alias_is_merged_never_clobbered() {
        let (text, _) = merge_alias("", false).unwrap().unwrap();
        assert_eq!(text, "[alias]\nxtask = \"run --package xtask --\"\n");
        assert!(merge_alias(&text, false).unwrap().is_none(), "already there: unchanged");
        let (text, what) =
            merge_alias("[alias]\nb = \"build\"\n\n[build]\njobs = 2\n", false).unwrap().unwrap();
        assert!(text.starts_with("[alias]\nxtask = \"run --package xtask --\"\nb = \"build\""), "{text}");
        assert_eq!(what, "added the xtask alias");
        let (text, _) = merge_alias("[build]\njobs = 2", false).unwrap().unwrap();
        assert_eq!(text, "[build]\njobs = 2\n\n[alias]\nxtask = \"run --package xtask --\"\n");
        let other = "[alias]\nxtask = \"run -p tools --\"\n";
        assert!(merge_alias(other, false).is_err(), "another xtask alias is not replaced without --force");
        let (text, _) = merge_alias(other, true).unwrap().unwrap();
        assert_eq!(text, "[alias]\nxtask = \"run --package xtask --\"\n");
    }

    #[test]
    fn xtask_joins_an_existing_workspace_and_a_package_gets_one() {
        let (text, _) = merge_workspace("[workspace]\nmembers = [\"crates/a\"]\n").unwrap().unwrap();
        assert_eq!(text, "[workspace]\nmembers = [\"xtask\", \"crates/a\"]\n");
        assert!(merge_workspace(&text).unwrap().is_none());
        let (text, _) = merge_workspace("[workspace]\nmembers = []\n").unwrap().unwrap();
        assert_eq!(text, "[workspace]\nmembers = [\"xtask\"]\n");
        let (text, _) = merge_workspace("[workspace]\nresolver = \"2\"\n").unwrap().unwrap();
        assert_eq!(text, "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n");
        let (text, _) = merge_workspace("[package]\nname = \"op\"\n").unwrap().unwrap();
        assert_eq!(text, "[package]\nname = \"op\"\n\n[workspace]\nmembers = [\"xtask\"]\n");
        let (fresh, _) = merge_workspace("").unwrap().unwrap();
        crate::toml::parse(&fresh).unwrap();
        assert!(fresh.contains("members = [\"xtask\"]"));
    }

    #[test]
    fn relative_paths_climb_to_the_common_root() {
        assert_eq!(
            relative_path(Path::new("/w/engine/engine"), Path::new("/w/repo/xtask")),
            PathBuf::from("../../engine/engine")
        );
        assert_eq!(
            relative_path(Path::new("/w/repo/vendor/e"), Path::new("/w/repo/xtask")),
            PathBuf::from("../vendor/e")
        );
    }
}
