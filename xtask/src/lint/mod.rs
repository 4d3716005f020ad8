//! The lint engine: which files are read (`walk`), how each kind is parsed (`parse`), the rules
//! beside their checkers (`dockerfiles`, `hardcoded`, listed by `rules`), and one driver for
//! every lint command: config, baseline, output (`report`, `output`, `config`).
//!
//! The output contract: `--format json` prints `{files_scanned, findings: [{rule, path, line,
//! column, severity, message}], parse_errors: [{path, line, message}], skipped}`; paths are
//! relative to the current directory. Exit status: 0 clean, 1 findings (or a file we could not
//! understand), 2 usage or I/O error. Nothing here knows the e2e: what a project must not
//! hardcode comes from its config.

pub mod config;
pub mod dockerfiles;
pub mod hardcoded;
pub mod output;
pub mod parse;
pub mod report;
pub mod rules;
pub mod walk;

use std::path::PathBuf;

use anyhow::{Context, Result};

use self::config::Config;
use self::output::Format;
use self::report::Report;

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
pub struct Args {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Lint the files staged in git (the pre-commit hook)
    #[arg(long, conflicts_with = "paths")]
    pub(crate) staged: bool,
}

impl Args {
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
                let scope = hardcoded::Scope::new(&config)?;
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
                let scope = hardcoded::Scope::new(&config)?;
                let hardcoded = files.iter().filter(|f| scope.contains(f)).cloned().collect();
                (dockerfiles, hardcoded)
            }
        };
        let mut report = dockerfiles::lint_files(&dockerfiles, &config.dockerfile, &cwd, false)?;
        report.merge(hardcoded::lint_files(&hardcoded, &config.hardcoded, &cwd)?);
        self.common.finish(report, "xtask lint", &config)
    }
}
