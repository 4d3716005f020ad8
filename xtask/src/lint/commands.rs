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
    /// Accept the findings recorded in this file; fail only on new ones
    #[arg(long, value_name = "FILE")]
    pub(crate) baseline: Option<PathBuf>,
    /// Record the current findings into the --baseline file and exit 0
    #[arg(long, requires = "baseline")]
    pub(crate) write_baseline: bool,
    /// Files or directories to lint (resolved against the current directory)
    pub(crate) paths: Vec<PathBuf>,
}

impl CommonArgs {
    /// The driver's end, the same for every lint command: sort, baseline, output, exit code.
    pub(crate) fn finish(&self, mut report: Report, tool: &str, config: &Config) -> Result<i32> {
        report.sort();
        if let Some(baseline) = &self.baseline {
            if self.write_baseline {
                report::write_baseline(baseline, &report)?;
                eprintln!("wrote {} finding(s) to {}", report.findings.len(), baseline.display());
                return Ok(0);
            }
            report::apply_baseline(baseline, &mut report)?;
        }
        print!("{}", output::render(&report, self.format, tool, config));
        Ok(report.exit_code())
    }
}

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
        let selected: Option<Vec<PathBuf>> = if self.staged {
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
        let (dockerfiles, hardcoded): (Vec<PathBuf>, Vec<PathBuf>) = match selected {
            None => {
                // One walk of the repository for both lints, each file classified once.
                let docker_excluded = walk::exclude_matcher(&config.root, &config.dockerfile.exclude)?;
                let scope = hardcoded::Scope::new(&config.root, &config.hardcoded)?;
                let none = walk::exclude_matcher(&config.root, &[])?;
                let all = walk::walk_classify(std::slice::from_ref(&config.root), &none, &|p| {
                    let docker =
                        dockerfiles::is_dockerfile(p) && !walk::is_excluded(&docker_excluded, p, false);
                    let hard = scope.contains(p);
                    (docker || hard).then_some((docker, hard))
                });
                let mut dockerfiles = Vec::new();
                let mut hardcoded = Vec::new();
                for (path, (docker, hard)) in all {
                    if docker {
                        dockerfiles.push(path.clone());
                    }
                    if hard {
                        hardcoded.push(path);
                    }
                }
                (dockerfiles, hardcoded)
            }
            Some(files) => {
                let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
                let excluded = walk::exclude_matcher(&config.root, &config.dockerfile.exclude)?;
                let dockerfiles = files
                    .iter()
                    .filter(|f| dockerfiles::is_dockerfile(f))
                    .filter(|f| !walk::is_excluded(&excluded, f, false))
                    .cloned()
                    .collect();
                let scope = hardcoded::Scope::new(&config.root, &config.hardcoded)?;
                let hardcoded = files.iter().filter(|f| scope.contains(f)).cloned().collect();
                (dockerfiles, hardcoded)
            }
        };
        let mut report = dockerfiles::lint_files(&dockerfiles, &config.dockerfile, &cwd, false)?;
        report.merge(hardcoded::lint_files(&hardcoded, &config.hardcoded, &cwd)?);
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
        let files = if self.common.paths.is_empty() {
            hardcoded::scope_files(&config.root, &config.hardcoded)?
        } else {
            let roots = walk::resolve_paths(&self.common.paths, &cwd)?;
            let none = walk::exclude_matcher(&config.root, &[])?;
            walk::walk(&roots, &none, &|_| true)
        };
        let report = hardcoded::lint_files(&files, &config.hardcoded, &cwd)?;
        self.common.finish(report, "xtask lint-hardcoded", &config)
    }
}
