//! `cargo xtask check …`: the quickstart's checks ([`super::checks`]) as commands, so a Go or
//! shell flow can call them with its run context (from `E2E_*`, as every flow step has it).
//! Each waits up to its deadline and, failing, says what it expected and what it saw (exit 1).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use xshell::Shell;

use super::checks::{self, Checks, Expect, FileState};
use super::metrics::{self, Matcher};
use super::run_context::{Request, RunContext};
use crate::e2e::definition::parse_timeout;

/// Check one thing about a run, waiting up to a deadline (for Go and shell flows).
///
/// The run is $E2E_RUN_ID (or --run-id); its namespace, kube context, Git checkout and
/// Prometheus come from the run context. Exit 0: it holds; 1: it did not within the deadline
/// (the message says what was expected and what was seen); 2: the check itself is wrong.
///
/// Examples:
///   cargo xtask check rollout gitops-reverser --namespace "$E2E_CONTROLLER_NAMESPACE"
///   cargo xtask check crds gittargets.configbutler.ai watchrules.configbutler.ai
///   cargo xtask check condition gitprovider/bad --type Ready --status False \
///       --reason ConnectionFailed --message 'authentication|credentials'
///   n=$(cargo xtask check git-file live/configmaps/demo.yaml --contains 'key: v1')
///   cargo xtask check git-file live/configmaps/demo.yaml --absent --after-commits "$n"
///   DB_PASSWORD=s3cret cargo xtask check git-no-secret live/secrets/db.yaml --secret-env DB_PASSWORD
///   cargo xtask check promql 'sum(gitops_reverser_writes_total)' --expect '> 0'
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
    /// A PromQL expression, scoped to the run's series, meets --expect on every sample
    Promql {
        /// The expression, without the run matcher (it is added to every selector)
        expr: String,
        /// `> 0`, `>= 3`, `== 1`, `!= 0`, `< 5`, `<= 5` on every sample (at least one), or `empty`
        #[arg(long, default_value = "> 0")]
        expect: String,
    },
}

/// `--expect` of `check promql`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Predicate {
    Empty,
    Compare(&'static str, f64),
}

impl Predicate {
    pub(crate) fn parse(text: &str) -> Result<Predicate> {
        let text = text.trim();
        if text == "empty" {
            return Ok(Predicate::Empty);
        }
        for op in [">=", "<=", "==", "!=", ">", "<"] {
            if let Some(rest) = text.strip_prefix(op) {
                let value: f64 = rest
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("--expect {text:?}: {:?} is not a number", rest.trim()))?;
                return Ok(Predicate::Compare(op, value));
            }
        }
        bail!("--expect {text:?}: write `> 0`, `>= 3`, `== 1`, `!= 0`, `< 5`, `<= 5` or `empty`")
    }

    pub(crate) fn holds(&self, values: &[f64]) -> bool {
        match *self {
            Predicate::Empty => values.is_empty(),
            Predicate::Compare(op, want) => {
                !values.is_empty()
                    && values.iter().all(|v| match op {
                        ">=" => *v >= want,
                        "<=" => *v <= want,
                        "==" => *v == want,
                        "!=" => *v != want,
                        ">" => *v > want,
                        _ => *v < want,
                    })
            }
        }
    }
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        // Mistakes in the check itself are usage errors (exit 2), found before anything waits.
        let usage = |e: anyhow::Error| crate::usage::usage(format!("{e:#}"));
        let mut request = Request::new(self.run_id.clone(), None);
        let path = self.definition.clone().unwrap_or_else(super::definition::default_path);
        if self.definition.is_some() || path.is_file() {
            let def = super::definition::load(&path)?;
            request = def.request(request.run_id, request.flow.as_deref());
        }
        let ctx = RunContext::resolve(sh, &request)?;
        let log = ctx.logs_dir().join("checks.log");
        std::fs::create_dir_all(ctx.logs_dir())
            .with_context(|| format!("creating {}", ctx.logs_dir().display()))?;
        let checks = Checks {
            sh,
            context: ctx.kube_context.clone(),
            namespace: self.namespace.clone().unwrap_or_else(|| ctx.test_namespace.clone()),
            log: log.clone(),
            poll: Duration::from_secs(1),
        };
        let deadline = self.timeout;
        let result = match self.check {
            Check::Rollout { deployment } => checks.rollout_status(&deployment, deadline),
            Check::Available { deployment } => checks.deployment_available(&deployment, deadline),
            Check::PodsReady { selector } => checks.pods_ready(&selector, deadline),
            Check::Crds { names } => {
                checks.crds_present(&names.iter().map(String::as_str).collect::<Vec<_>>())
            }
            Check::Condition { object, kind, status, reason, message } => {
                let (object, name) =
                    object
                        .split_once('/')
                        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
                        .ok_or_else(|| usage(anyhow!("{object:?}: give the object as kind/name")))?;
                let message = match message {
                    Some(m) => Some(
                        regex::Regex::new(&m)
                            .map_err(|e| usage(anyhow!("--message {m:?} is not a regex: {e}")))?,
                    ),
                    None => None,
                };
                let expect = Expect { status, reason, message };
                checks.condition(object, name, &kind, &expect, deadline)
            }
            Check::GitFile { path, present: _, absent, contains, not_contains, after_commits } => {
                let state = match (contains, not_contains) {
                    (Some(t), _) => FileState::Contains(t),
                    (_, Some(t)) => FileState::Lacks(t),
                    _ if absent => FileState::Vanishes,
                    _ => FileState::Appears, // --present, the default
                };
                let checkout = checkout(&ctx)?;
                checks::file_in_checkout(sh, &checkout, &path, &state, after_commits, deadline, &log).map(
                    |commits| {
                        println!("{commits}");
                    },
                )
            }
            Check::GitNoSecret { path, secret_env } => {
                let mut secrets = Vec::new();
                for var in &secret_env {
                    let value = sh
                        .var(var)
                        .map_err(|_| usage(anyhow!("--secret-env {var}: the variable is not set")))?;
                    if value.is_empty() {
                        return Err(usage(anyhow!("--secret-env {var}: the variable is empty")));
                    }
                    crate::exec::register_secret(&value);
                    secrets.push((var.clone(), value));
                }
                let checkout = checkout(&ctx)?;
                let at =
                    checks::file_in_checkout(sh, &checkout, &path, &FileState::Appears, 0, deadline, &log)
                        .map(|_| ());
                at.and_then(|()| {
                    let text = checks::read_checkout_file(&checkout, &path).unwrap_or_default();
                    let leaks = checks::leaked_secrets(&text, &secrets);
                    if leaks.is_empty() {
                        Ok(())
                    } else {
                        let said: Vec<String> = leaks.iter().map(|(n, how)| format!("${n} {how}")).collect();
                        Err(anyhow!("{path} in the run's repository holds {}", said.join(", ")))
                    }
                })
            }
            Check::Promql { expr, expect } => {
                let predicate = Predicate::parse(&expect).map_err(usage)?;
                let scoped = metrics::scope(&expr, &Matcher::run(&ctx.run_id)?).map_err(usage)?;
                let prometheus = metrics::Client::new(&ctx.prometheus_url);
                prometheus
                    .wait_for(
                        &scoped,
                        &expect,
                        |d| predicate.holds(&d.samples().iter().map(|s| s.value).collect::<Vec<_>>()),
                        deadline,
                    )
                    .map(|_| ())
            }
        };
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

/// The run's Git checkout (made by `cargo xtask gitea setup`).
fn checkout(ctx: &RunContext) -> Result<PathBuf> {
    let dir = ctx.checkout_dir();
    if !dir.join(".git").exists() {
        return Err(crate::usage::usage(format!(
            "run {} has no Git checkout at {}: run `cargo xtask gitea setup --run-id {}` first",
            ctx.run_id,
            dir.display(),
            ctx.run_id
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::Predicate;

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
