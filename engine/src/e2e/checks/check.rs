//! `cargo xtask check …`: the quickstart's checks ([`crate::e2e::checks::runner`]) as commands, so a Go or
//! shell flow can call them with its run context (from `E2E_*`, as every flow step has it).
//! Each waits up to its deadline and, failing, says what it expected and what it saw (exit 1).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use xshell::Shell;

use crate::duration::parse_timeout;
use crate::e2e::checks::runner::{Expect, GitState, Predicate, Runner, Step, StepDef};
use crate::e2e::context::{Request, RunContext};

/// Check one thing about a run, waiting up to a deadline (for Go and shell flows).
///
/// The run is $E2E_RUN_ID (or --run-id); its namespace, kube context, Git checkout and
/// Prometheus come from the run context. Exit 0: it holds; 1: it did not within the deadline
/// (the message says what was expected and what was seen); 2: the check itself is wrong.
///
/// Examples:
///   cargo xtask check rollout gitops-reverser --namespace "$E2E_CONTROLLER_NAMESPACE"
///   cargo xtask check crds gittargets.configbutler.ai watchrules.configbutler.ai
///   cargo xtask check exists validatingwebhookconfiguration/gitops-reverser-validating-webhook-configuration
///   cargo xtask check condition gitprovider/bad --type Ready --status False \
///       --reason ConnectionFailed --message 'authentication|credentials'
///   n=$(cargo xtask check git-file live/configmaps/demo.yaml --contains 'key: v1')
///   cargo xtask check git-file live/configmaps/demo.yaml --absent --after-commits "$n"
///   DB_PASSWORD=s3cret cargo xtask check git-no-secret live/secrets/db.yaml --secret-env DB_PASSWORD
///   cargo xtask check promql 'sum(gitops_reverser_writes_total)' --expect '> 0'
///   cargo xtask check apply test/e2e/gitprovider.yaml   # ${E2E_TEST_NAMESPACE} etc. expanded
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) check: Check,
    /// The run [default: $E2E_RUN_ID]
    #[arg(long, global = true)]
    pub(crate) run_id: Option<String>,
    /// How long the check may take to hold
    #[arg(long, global = true, default_value = "2m", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,
    /// Namespace of the objects [default: the run's test namespace, $E2E_TEST_NAMESPACE]
    #[arg(long, short = 'n', global = true)]
    pub(crate) namespace: Option<String>,
    /// The e2e definition whose port-forwards give the service endpoints [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) definition: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Check {
    /// `kubectl rollout status deployment/NAME` finishes
    Rollout { deployment: String },
    /// deployment/NAME has condition Available
    Available { deployment: String },
    /// Every pod matching the label selector is Ready
    PodsReady { selector: String },
    /// The CustomResourceDefinitions exist (cluster-scoped: no namespace)
    Crds {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// KIND/NAME has a condition of --type with --status (and --reason, --message)
    Condition {
        /// The object, `kind/name` (`gitprovider/bad`, `deployment/x`)
        object: String,
        /// The condition type
        #[arg(long = "type", default_value = "Ready")]
        kind: String,
        #[arg(long, default_value = "True")]
        status: String,
        /// The condition's reason, exactly
        #[arg(long)]
        reason: Option<String>,
        /// A regex the condition's message must match
        #[arg(long)]
        message: Option<String>,
    },
    /// A file in the run's Git repository (pulled until it holds); prints the commit count
    GitFile {
        /// Path inside the repository
        path: String,
        /// It exists
        #[arg(long, group = "state")]
        present: bool,
        /// It does not exist
        #[arg(long, group = "state")]
        absent: bool,
        /// It exists and holds this text
        #[arg(long, group = "state", value_name = "TEXT")]
        contains: Option<String>,
        /// It exists and does not hold this text
        #[arg(long, group = "state", value_name = "TEXT")]
        not_contains: Option<String>,
        /// Only once the repository has more commits than this (the count a previous check printed)
        #[arg(long, value_name = "N", default_value_t = 0)]
        after_commits: u32,
    },
    /// A file in the run's Git repository holds none of the secret values, plain or base64
    GitNoSecret {
        /// Path inside the repository
        path: String,
        /// An environment variable holding a secret value (values never go on a command line)
        #[arg(long = "secret-env", value_name = "VAR", required = true)]
        secret_env: Vec<String>,
    },
    /// KIND/NAME exists (namespaced, or cluster-scoped such as a webhook configuration)
    Exists {
        /// The object, `kind/name`
        object: String,
    },
    /// Delete KIND/NAME and wait until it is gone (nothing to delete is fine)
    Delete {
        /// The object, `kind/name`
        object: String,
    },
    /// Apply a manifest with `${E2E_*}` expanded from the run context (unknown variables refused)
    Apply {
        /// The manifest file
        file: PathBuf,
    },
    /// A PromQL expression, scoped to the run's series, meets --expect on every sample
    Promql {
        /// The expression, without the run matcher (it is added to every selector)
        expr: String,
        /// `> 0`, `>= 3`, `== 1`, `!= 0`, `< 5`, `<= 5` on every sample (at least one), or `empty`
        #[arg(long, default_value = "> 0")]
        expect: String,
    },
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        // Mistakes in the check itself are usage errors (exit 2), found before anything waits.
        let usage = |e: anyhow::Error| crate::usage::usage(format!("{e:#}"));
        // A check is about one run: a generated id would check a run nobody made (and leave a
        // `runs/<random>/` behind each time).
        let given = self.run_id.clone().or_else(|| sh.var("E2E_RUN_ID").ok()).filter(|id| !id.is_empty());
        if given.is_none() {
            return Err(crate::usage::usage(
                "check: which run? Give --run-id ID, or set E2E_RUN_ID (every flow step has it set); `cargo xtask runs` lists the runs",
            ));
        }
        let mut request = Request::new(self.run_id.clone(), None);
        let path = self.definition.clone().unwrap_or_else(crate::e2e::definition::default_path);
        if self.definition.is_some() || path.is_file() {
            let def = crate::e2e::definition::load(&path)?;
            request = def.request(request.run_id, request.flow.as_deref());
        }
        let ctx = RunContext::resolve(sh, &request)?;
        let log = ctx.logs_dir().join("checks.log");
        std::fs::create_dir_all(ctx.logs_dir())
            .with_context(|| format!("creating {}", ctx.logs_dir().display()))?;
        let step = match self.check {
            Check::Rollout { deployment } => Step::Rollout(deployment),
            Check::Available { deployment } => Step::Available(deployment),
            Check::PodsReady { selector } => Step::PodsReady(selector),
            Check::Crds { names } => Step::Crds(names),
            Check::Condition { object, kind, status, reason, message } => {
                let message = match message {
                    Some(m) => Some(
                        regex::Regex::new(&m)
                            .map_err(|e| usage(anyhow!("--message {m:?} is not a regex: {e}")))?,
                    ),
                    None => None,
                };
                Step::Condition { object, kind, expect: Expect { status, reason, message } }
            }
            Check::GitFile { path, present: _, absent, contains, not_contains, after_commits } => {
                let state = match (contains, not_contains) {
                    (Some(t), _) => GitState::Contains(t),
                    (_, Some(t)) => GitState::NotContains(t),
                    _ if absent => GitState::Absent,
                    _ => GitState::Present, // --present, the default
                };
                Step::GitFile { path, state, after: Some(after_commits), new_commit: false }
            }
            Check::GitNoSecret { path, secret_env } => {
                Step::GitNoSecret { path, secret_env, secret_values: Vec::new() }
            }
            Check::Exists { object } => Step::Exists(object),
            Check::Delete { object } => Step::Delete(object),
            Check::Apply { file } => {
                if !file.is_file() {
                    return Err(usage(anyhow!("{}: no such manifest", file.display())));
                }
                Step::Apply(std::path::absolute(&file).unwrap_or(file))
            }
            Check::Promql { expr, expect } => {
                Step::Promql { expr, expect: Predicate::parse(&expect).map_err(usage)? }
            }
        };
        let mut runner = Runner::new(sh, &ctx, log.clone());
        let def = StepDef { step, namespace: self.namespace.clone(), timeout: Some(self.timeout) };
        let result = runner.run(&def).map(|commits| {
            if let Some(n) = commits {
                println!("{n}");
            }
        });
        match result {
            Ok(()) => Ok(0),
            Err(e) if crate::usage::is_usage(&e) => Err(e),
            Err(e) => {
                eprintln!("check failed (run {}): {e:#}", ctx.run_id);
                eprintln!("commands: {}", log.display());
                Ok(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::e2e::checks::runner::Predicate;

    #[test]
    fn predicates() {
        assert!(Predicate::parse("> 0").unwrap().holds(&[1.0, 2.0]));
        assert!(!Predicate::parse("> 0").unwrap().holds(&[1.0, 0.0]));
        assert!(!Predicate::parse("> 0").unwrap().holds(&[]), "no series is not > 0");
        assert!(Predicate::parse(">=3").unwrap().holds(&[3.0]));
        assert!(Predicate::parse("== 1").unwrap().holds(&[1.0]));
        assert!(Predicate::parse("!= 0").unwrap().holds(&[2.0]));
        assert!(Predicate::parse("<= 5").unwrap().holds(&[5.0]));
        assert!(!Predicate::parse("< 5").unwrap().holds(&[5.0]));
        assert!(Predicate::parse("empty").unwrap().holds(&[]));
        assert!(!Predicate::parse("empty").unwrap().holds(&[0.0]));
        for bad in ["", "> x", "~ 1", "positive"] {
            assert!(Predicate::parse(bad).is_err(), "{bad}");
        }
    }
}
