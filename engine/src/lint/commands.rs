//! The lint commands (`lint`, `lint-dockerfiles`, `lint-hardcoded`) and the driver they share:
//! load the config, choose the files, run the checkers, apply the baseline, print, exit status.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::config::Config;
use super::output::{self, Format};
use super::report::{self, Report};
use super::{dockerfiles, hardcoded, walk};

/// The arguments every lint command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Lint config (TOML) [default: hack/lint.toml of this repository]
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "human")]
    pub(crate) format: Format,
    /// Accept the findings recorded in this file; fail only on new ones [default: `baseline` of
    /// the lint config]
    #[arg(long, value_name = "FILE")]
    pub(crate) baseline: Option<PathBuf>,
    /// Report every finding, the baseline's too
    #[arg(long, conflicts_with_all = ["baseline", "write_baseline"])]
    pub(crate) no_baseline: bool,
    /// Record the current findings into the baseline file (--baseline, or the config's) and exit 0
    #[arg(long)]
    pub(crate) write_baseline: bool,
    /// Files or directories to lint (resolved against the current directory)
    pub(crate) paths: Vec<PathBuf>,
}

impl CommonArgs {
    /// The driver's end, the same for every lint command: sort, baseline, output, exit code.
    pub(crate) fn finish(&self, mut report: Report, tool: &str, config: &Config) -> Result<i32> {
        report.sort();
        // Files were named and every one of them was skipped: nothing was checked, which is
        // never a pass (the report still says what was skipped and why).
        let all_skipped = !self.paths.is_empty() && report.files_scanned == 0 && !report.skipped.is_empty();
        let cwd = std::env::current_dir().context("reading the current directory")?;
        // Baseline entries name paths relative to the repository: the same baseline holds for a
        // lint run from any directory, and for the hook (which runs at the root).
        let key = |shown: &str| {
            let abs = walk::normalize(&cwd.join(shown));
            abs.strip_prefix(&config.root).map_or_else(|_| shown.to_string(), |p| p.display().to_string())
        };
        let baseline = if self.no_baseline {
            None
        } else {
            self.baseline.clone().map(|b| cwd.join(b)).or_else(|| config.baseline.clone())
        };
        if self.write_baseline {
            let Some(baseline) = baseline else {
                return Err(crate::usage::usage(format!(
                    "--write-baseline needs a file: --baseline FILE, or `baseline = \"hack/lint-baseline.json\"` in {}",
                    config.path_shown()
                )));
            };
            report::write_baseline(&baseline, &report, &key)?;
            eprintln!("wrote {} finding(s) to {}", report.findings.len(), baseline.display());
            return Ok(0);
        }
        let mut accepted = 0;
        if let Some(baseline) = &baseline {
            if !baseline.is_file() && self.baseline.is_none() {
                return Err(crate::usage::usage(format!(
                    "{} names the baseline {}, which does not exist: record today's findings with `cargo xtask lint --write-baseline`, or remove the `baseline` key",
                    config.path_shown(),
                    baseline.display()
                )));
            }
            accepted = report::apply_baseline(baseline, &mut report, &key)?;
        }
        print!("{}", output::render(&report, self.format, tool, config));
        if all_skipped {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            return Err(crate::usage::usage(format!(
                "{tool}: every file named was skipped ({}), so nothing was checked: name files the lints read",
                report.skipped.iter().map(|s| format!("{}: {}", s.path, s.reason)).collect::<Vec<_>>().join("; ")
            )));
        }
        if let (Some(baseline), true) = (&baseline, accepted > 0 && self.format == Format::Human) {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            eprintln!(
                "{accepted} known finding(s) accepted by the baseline {} (`--no-baseline` shows them)",
                walk::display_path(baseline, &cwd)
            );
        }
        Ok(report.exit_code())
    }
}

/// Why a document named on the command line is skipped.
const DOC: &str = "a document (Markdown, text, docs/): the lints do not read documents";

/// Run both lints with the project's config: what CI and the pre-commit hook run.
///
/// Without PATHs: every Dockerfile in the repository and the lint-hardcoded scope of
/// hack/lint.toml. With PATHs (as pre-commit passes them) or --staged (the files staged in git),
/// only those of them that the lints cover. Exit status: 0 clean, 1 findings, 2 usage or I/O error.
///
/// Examples:
///   cargo xtask lint
///   cargo xtask lint --staged
///   cargo xtask lint --format github
///   cargo xtask lint --baseline lint-baseline.json --write-baseline
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct LintArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Lint the files staged in git (the pre-commit hook)
    #[arg(long, conflicts_with = "paths")]
    pub(crate) staged: bool,
}

impl LintArgs {
    pub fn run(self, sh: &xshell::Shell) -> Result<i32> {
        let config = Config::load(self.common.config.as_deref())?;
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let mut selected: Option<Vec<PathBuf>> = if self.staged {
            let _root = sh.push_dir(&config.root);
            let out =
                crate::exec::cmd(xshell::cmd!(sh, "git diff --cached --name-only --diff-filter=ACMR -z"))
                    .log(crate::paths::logs_dir().join("lint.log"))
                    .run()
                    .context("listing the staged files")?;
            Some(out.stdout.split('\0').filter(|p| !p.is_empty()).map(|p| config.root.join(p)).collect())
        } else if !self.common.paths.is_empty() {
            Some(walk::resolve_paths(&self.common.paths, &cwd)?)
        } else {
            None
        };
        let special = match selected.as_mut() {
            Some(paths) if !self.staged => walk::take_special(paths, &cwd),
            _ => Vec::new(),
        };
        // Each file classified once: a Dockerfile (not excluded), in the hardcoded scope, or both.
        let docker_excluded = walk::exclude_matcher(&config.root, &config.dockerfile.exclude)?;
        let scope = hardcoded::Scope::new(&config.root, &config.hardcoded)?;
        let classify = |p: &std::path::Path| {
            let docker = dockerfiles::is_dockerfile(p) && !walk::is_excluded(&docker_excluded, p, false);
            let hard = scope.contains(p);
            (docker || hard).then_some((docker, hard))
        };
        let none = walk::exclude_matcher(&config.root, &[])?;
        let mut uncovered = Vec::new();
        let mut uncovered_doc = Vec::new();
        let all: Vec<(PathBuf, (bool, bool))> = match selected {
            // One walk of the repository for both lints.
            None => walk::walk_classify(std::slice::from_ref(&config.root), &none, &classify),
            Some(paths) => {
                let mut all = Vec::new();
                for path in paths {
                    if path.is_dir() {
                        // A directory is walked like the default scope; one that yields nothing
                        // is an error, never a pass that looked at nothing.
                        let found = walk::walk_classify(std::slice::from_ref(&path), &none, &classify);
                        if found.is_empty() && !self.staged {
                            return Err(crate::usage::usage(format!(
                                "{}: no file the lints cover (Dockerfiles, and the [hardcoded] scope of {}: {} and *.{})",
                                walk::display_path(&path, &cwd),
                                config.path_shown(),
                                config.hardcoded.scope.join(", "),
                                config.hardcoded.scope_extensions.join(", *.")
                            )));
                        }
                        all.extend(found);
                    } else if hardcoded::is_doc(&path) && classify(&path).is_some_and(|(d, _)| !d) {
                        uncovered_doc.push(walk::display_path(&path, &cwd));
                    } else if let Some(kind) = classify(&path) {
                        all.push((path, kind));
                    } else if !self.staged {
                        uncovered.push(walk::display_path(&path, &cwd));
                    }
                }
                all
            }
        };
        let dockerfiles: Vec<PathBuf> = all.iter().filter(|(_, (d, _))| *d).map(|(p, _)| p.clone()).collect();
        let hardcoded: Vec<PathBuf> = all.iter().filter(|(_, (_, h))| *h).map(|(p, _)| p.clone()).collect();
        // --staged: the blobs in the index, which is what the commit will hold.
        let contents = if self.staged {
            let _root = sh.push_dir(&config.root);
            let mut blobs = std::collections::HashMap::new();
            for (path, _) in &all {
                let rel = path.strip_prefix(&config.root).unwrap_or(path);
                let spec = format!(":{}", rel.display());
                let out = crate::exec::cmd(xshell::cmd!(sh, "git show {spec}"))
                    .log(crate::paths::logs_dir().join("lint.log"))
                    .run()
                    .with_context(|| format!("reading the staged {}", rel.display()))?;
                blobs.insert(path.clone(), out.stdout);
            }
            walk::Contents::Staged(blobs)
        } else {
            walk::Contents::Disk
        };
        let mut report = dockerfiles::lint_files(&dockerfiles, &config.dockerfile, &cwd, false, &contents)?;
        report.merge(hardcoded::lint_files(&hardcoded, &config.hardcoded, &cwd, &contents)?);
        // A file given by name that no lint covers is said, not silently passed.
        report.skipped.extend(uncovered.into_iter().map(|path| report::Skipped {
            path,
            reason: "not a file the lints cover (see [hardcoded] scope in the lint config)".into(),
        }));
        report
            .skipped
            .extend(uncovered_doc.into_iter().map(|path| report::Skipped { path, reason: DOC.into() }));
        report.skipped.extend(special);
        self.common.finish(report, "xtask lint", &config)
    }
}

/// Check Dockerfiles against the `dnf update` policy.
///
/// Finds Dockerfile, Dockerfile.*, *.Dockerfile, Containerfile, Containerfile.*, *.Containerfile
/// under the given paths (default: the repository), honouring .gitignore. Parses them as Docker
/// does (directives, continuations, heredocs, exec form, ONBUILD) and reads RUN bodies as shell, so
/// `echo "dnf update"`, LABEL values, comments and `check-update` are not findings, while split
/// lines (`dnf \` + `update`), `sudo`/path prefixes and options before the subcommand are.
///
/// Policy ([dockerfile] in the config): dnf-update = "forbid" (default: a full-system update is a
/// finding), "require" (a stage that installs packages must update first), or "off";
/// dnf-update-targeted = "allow" (default) or "forbid" (`dnf update tzdata`).
///
/// Exit status: 0 clean, 1 findings or unparseable instructions, 2 usage or I/O error.
///
/// Examples:
///   cargo xtask lint-dockerfiles
///   cargo xtask lint-dockerfiles docker/ --format json
///   cargo xtask lint-dockerfiles --fix docker/gateway.Dockerfile
///   cargo xtask lint-dockerfiles --baseline hack/dockerfile-baseline.json --write-baseline
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct DockerfilesArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Remove each forbidden update with its joining `&&`/`;` (the RUN stays valid, the rest of the
    /// file byte-identical)
    #[arg(long)]
    pub(crate) fix: bool,
}

impl DockerfilesArgs {
    pub fn run(self) -> Result<i32> {
        let config = Config::load(self.common.config.as_deref())?;
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let roots = if self.common.paths.is_empty() {
            vec![config.root.clone()]
        } else {
            walk::resolve_paths(&self.common.paths, &cwd)?
        };
        let report = dockerfiles::lint_paths(&roots, &config.root, &config.dockerfile, &cwd, self.fix)?;
        if report.files_scanned == 0 && report.skipped.is_empty() && !self.common.paths.is_empty() {
            return Err(crate::usage::usage(format!(
                "{}: no Dockerfile there (Dockerfile, Dockerfile.*, *.Dockerfile, Containerfile, ...)",
                self.common.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        self.common.finish(report, "xtask lint-dockerfiles", &config)
    }
}

/// Find hidden global assumptions that break parallel runs.
///
/// Scans the e2e layer (default scope from the config: test/, hack/, xtask/, Makefile and shell
/// scripts; PATHs given replace it) in Go, Rust, shell, Makefile and YAML, and other text line by
/// line; Markdown and docs are skipped, comments never count. Rules: hardcoded-namespace,
/// fixed-tmp-path, global-git-config, broad-process-kill, global-delete, fixed-local-port,
/// forbidden-pattern ([[hardcoded.forbidden]] in the config).
///
/// Suppress one finding with a comment `xtask-lint: allow(<rule>)` on its line or the line above;
/// adopt the gate in a legacy repository with --baseline FILE --write-baseline, then --baseline FILE.
///
/// Exit status: 0 clean, 1 findings, 2 usage or I/O error.
///
/// Examples:
///   cargo xtask lint-hardcoded
///   cargo xtask lint-hardcoded test/e2e --format github
///   cargo xtask lint-hardcoded --config hack/lint.toml --baseline lint-baseline.json
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct HardcodedArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

impl HardcodedArgs {
    pub fn run(self) -> Result<i32> {
        let config = Config::load(self.common.config.as_deref())?;
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let mut skipped = Vec::new();
        let files = if self.common.paths.is_empty() {
            hardcoded::scope_files(&config.root, &config.hardcoded)?
        } else {
            let mut roots = walk::resolve_paths(&self.common.paths, &cwd)?;
            skipped = walk::take_special(&mut roots, &cwd);
            let none = walk::exclude_matcher(&config.root, &[])?;
            let mut files = Vec::new();
            for root in roots {
                if root.is_file() {
                    // A document named is said to be skipped, never counted as checked.
                    if hardcoded::is_doc(&root) {
                        skipped.push(report::Skipped {
                            path: walk::display_path(&root, &cwd),
                            reason: DOC.into(),
                        });
                    } else {
                        files.push(root);
                    }
                    continue;
                }
                // A directory with nothing to read is an error, as for `lint`: never a pass that
                // looked at nothing.
                let found = walk::walk(std::slice::from_ref(&root), &none, &|_| true);
                if found.is_empty() {
                    return Err(crate::usage::usage(format!(
                        "{}: no file there to lint (an empty directory, or everything in it is ignored)",
                        walk::display_path(&root, &cwd)
                    )));
                }
                files.extend(found);
            }
            files
        };
        let mut report = hardcoded::lint_files(&files, &config.hardcoded, &cwd, &walk::Contents::Disk)?;
        report.skipped.extend(skipped);
        self.common.finish(report, "xtask lint-hardcoded", &config)
    }
}
