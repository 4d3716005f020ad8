//! The old run-quickstart.sh checks as reusable functions with deadlines and clear failure text:
//! rollout status, deployment available, pods ready, CRDs present, a condition on an object
//! (`Ready=True`, or `False` with an expected reason and message), and a file in the run's Git
//! checkout appearing / containing / vanishing with the commit count growing each time.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::exec;

pub use crate::e2e::definition::check_steps::Expect;
pub(crate) use crate::e2e::definition::check_steps::{GitState, Predicate, Step, StepDef};

/// Checks against one namespace; every command goes to `log`.
pub struct Checks<'a> {
    pub sh: &'a Shell,
    /// The kube context every kubectl call names.
    pub context: String,
    pub namespace: String,
    pub log: std::path::PathBuf,
    /// How often conditions and files are polled.
    pub poll: Duration,
}

/// What a file in the checkout must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Appears,
    Contains(String),
    /// Exists and does not hold this.
    Lacks(String),
    /// Exists with content other than this (it changed).
    Differs(String),
    Vanishes,
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Checks<'_> {
    fn kube(&self) -> [String; 2] {
        crate::e2e::context::kube::kubectl_args(&self.context)
    }

    fn kubectl(&self, c: xshell::Cmd<'_>, deadline: Duration) -> Result<exec::Output, exec::ExecError> {
        exec::cmd(c.args(self.kube())).log(&self.log).timeout(deadline + Duration::from_secs(10)).run()
    }

    /// `kubectl rollout status deployment/NAME`.
    pub fn rollout_status(&self, deployment: &str, deadline: Duration) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let target = format!("deployment/{deployment}");
        let timeout = format!("--timeout={}s", secs(deadline));
        self.kubectl(cmd!(sh, "kubectl rollout status {target} --namespace {ns} {timeout}"), deadline)
            .map(|_| ())
            .with_context(|| {
                format!("deployment {deployment} in {ns} did not roll out within {}s", secs(deadline))
            })
    }

    /// `kubectl wait --for=condition=available deployment/NAME`.
    pub fn deployment_available(&self, deployment: &str, deadline: Duration) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let target = format!("deployment/{deployment}");
        let timeout = format!("--timeout={}s", secs(deadline));
        self.kubectl(
            cmd!(sh, "kubectl wait {target} --for=condition=available --namespace {ns} {timeout}"),
            deadline,
        )
        .map(|_| ())
        .with_context(|| {
            format!("deployment {deployment} in {ns} was not available within {}s", secs(deadline))
        })
    }

    /// Every pod matching `selector` is ready, waiting first for one to exist: `kubectl wait` with a
    /// selector that matches nothing yet does not wait, it exits 1 at once with `error: no
    /// matching resources found` (kubectl pkg/cmd/wait/wait.go, `errNoMatchingResources`, when its
    /// resource finder visits nothing), which right after an install is the normal state.
    pub fn pods_ready(&self, selector: &str, deadline: Duration) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let start = Instant::now();
        loop {
            let out = exec::cmd(
                cmd!(sh, "kubectl get pod --selector {selector} --namespace {ns} --output name")
                    .args(self.kube()),
            )
            .log(&self.log)
            .timeout(Duration::from_secs(60))
            .allow_failure()
            .run()?;
            if out.success() && !out.stdout.trim().is_empty() {
                break;
            }
            if start.elapsed() >= deadline || exec::cancelled() {
                let seen = if out.success() {
                    "no pod matches it".to_string()
                } else {
                    out.stderr.lines().last().unwrap_or("kubectl get failed").to_string()
                };
                bail!("pods {selector} in {ns} were not ready within {}s: {seen}", secs(deadline));
            }
            std::thread::sleep(self.poll);
        }
        let left = deadline.saturating_sub(start.elapsed()).max(Duration::from_secs(1));
        let timeout = format!("--timeout={}s", secs(left));
        self.kubectl(
            cmd!(
                sh,
                "kubectl wait pod --selector {selector} --for=condition=ready --namespace {ns} {timeout}"
            ),
            deadline,
        )
        .map(|_| ())
        .with_context(|| format!("pods {selector} in {ns} were not ready within {}s", secs(deadline)))
    }

    /// The CRDs exist (they belong to shared infra).
    pub fn crds_present(&self, crds: &[&str]) -> Result<()> {
        let sh = self.sh;
        let out = exec::cmd(
            cmd!(sh, "kubectl get crd {crds...} --output name --ignore-not-found").args(self.kube()),
        )
        .log(&self.log)
        .timeout(Duration::from_secs(60))
        .run()?;
        let missing: Vec<&&str> = crds
            .iter()
            .filter(|c| !out.stdout.lines().any(|l| l.trim().ends_with(&format!("/{c}"))))
            .collect();
        if !missing.is_empty() {
            bail!(
                "CRDs missing: {} (they are shared infra: is the operator's CRD install part of `cargo xtask setup`?)",
                missing.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        Ok(())
    }

    /// Polls until `KIND NAME` exists (in the namespace, or cluster-scoped).
    pub fn exists(&self, object: &str, name: &str, deadline: Duration) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let start = Instant::now();
        loop {
            let out = exec::cmd(
                cmd!(sh, "kubectl get {object} {name} --namespace {ns} --output name --ignore-not-found")
                    .args(self.kube()),
            )
            .log(&self.log)
            .timeout(Duration::from_secs(60))
            .allow_failure()
            .run()?;
            if out.success() && !out.stdout.trim().is_empty() {
                return Ok(());
            }
            if start.elapsed() >= deadline || exec::cancelled() {
                let seen = if out.success() {
                    "it does not exist".to_string()
                } else {
                    out.stderr.lines().last().unwrap_or("kubectl get failed").to_string()
                };
                bail!(
                    "{object} {name} (namespace {ns} if namespaced): expected to exist within {}s; {seen}",
                    secs(deadline)
                );
            }
            std::thread::sleep(self.poll);
        }
    }

    /// Polls `KIND NAME` until its condition `kind_of` matches `expect`.
    pub fn condition(
        &self,
        object: &str,
        name: &str,
        kind_of: &str,
        expect: &Expect,
        deadline: Duration,
    ) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let start = Instant::now();
        let mut seen: String;
        loop {
            let out = exec::cmd(
                cmd!(sh, "kubectl get {object} {name} --namespace {ns} --output json").args(self.kube()),
            )
            .log(&self.log)
            .timeout(Duration::from_secs(60))
            .allow_failure()
            .run()?;
            if out.success() {
                let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
                let condition = v["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"].as_str() == Some(kind_of))
                    .cloned();
                match condition {
                    Some(c) => {
                        let status = c["status"].as_str().unwrap_or("");
                        let reason = c["reason"].as_str().unwrap_or("");
                        let message = c["message"].as_str().unwrap_or("");
                        seen = format!("{kind_of}={status} reason={reason:?} message={message:?}");
                        let ok = status == expect.status
                            && expect.reason.as_deref().is_none_or(|r| r == reason)
                            && expect.message.as_ref().is_none_or(|m| m.is_match(message));
                        if ok {
                            return Ok(());
                        }
                    }
                    None => seen = format!("no {kind_of} condition yet"),
                }
            } else {
                seen = out.stderr.lines().last().unwrap_or("kubectl get failed").to_string();
            }
            if start.elapsed() >= deadline || exec::cancelled() {
                let mut want = format!("{kind_of}={}", expect.status);
                if let Some(r) = &expect.reason {
                    want.push_str(&format!(" reason={r:?}"));
                }
                if let Some(m) = &expect.message {
                    want.push_str(&format!(" message matching /{m}/"));
                }
                bail!(
                    "{object} {name} in {ns}: expected {want} within {}s; last seen {seen}",
                    secs(deadline)
                );
            }
            std::thread::sleep(self.poll);
        }
    }
}

/// What checks and templates can name besides the run context: the run's Git repository
/// (`org/repo`, once `gitea setup` made it) and its secrets' names.
pub(crate) fn git_vars(ctx: &crate::e2e::context::RunContext) -> Vec<(String, String)> {
    let mut vars = vec![
        ("E2E_GIT_SECRET".to_string(), ctx.secret_http()),
        ("E2E_GIT_SECRET_SSH".to_string(), ctx.secret_ssh()),
        ("E2E_GIT_SECRET_INVALID".to_string(), ctx.secret_invalid()),
    ];
    if let Some(r) = crate::e2e::infra::gitea::Record::read(&ctx.state_dir()) {
        vars.push(("E2E_GIT_REPO".to_string(), r.full_name()));
    }
    vars
}

/// `kind/name` as its two parts, neither of which kubectl could read as a flag.
fn split_object(object: &str) -> Result<(&str, &str)> {
    let (kind, name) = object
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| crate::usage::usage(format!("{object:?}: give the object as kind/name")))?;
    not_a_flag("the kind", kind, object)?;
    not_a_flag("the name", name, object)?;
    Ok((kind, name))
}

/// Refuses a value given as a kubectl argument (a kind, a name) that starts with '-': kubectl's
/// flag parser (spf13/pflag `FlagSet.Parse`, which cobra runs on every command line) reads any
/// argument starting with '-' as a flag wherever it stands, so `namespaces/--all` became `kubectl
/// delete namespaces --all` (every namespace of the cluster) and `pods/-A` every namespace's pods.
/// No Kubernetes object or resource name can start with '-' (names are DNS-1123 subdomains or
/// labels, k8s.io/apimachinery pkg/util/validation `IsDNS1123Subdomain`: they start with an
/// alphanumeric), so nothing a check can rightly name is refused.
pub(crate) fn not_a_flag(what: &str, value: &str, given: &str) -> Result<()> {
    if value.starts_with('-') {
        return Err(crate::usage::usage(format!(
            "{given:?}: {what} {value:?} starts with '-', which kubectl would read as a flag; \
             no Kubernetes kind or object name starts with '-'"
        )));
    }
    Ok(())
}

/// Commits on the checkout's HEAD.
pub fn commit_count(sh: &Shell, checkout: &Path, log: &Path) -> Result<u32> {
    let out = exec::cmd(cmd!(sh, "git -C {checkout} rev-list --count HEAD")).log(log).run()?;
    out.stdout.trim().parse().with_context(|| format!("counting commits in {}", checkout.display()))
}

/// The file's content in the checkout now (after the last pull), if it exists.
pub fn read_checkout_file(checkout: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(checkout.join(file)).ok()
}

/// The secret values `text` holds, as written or base64-encoded (standard or URL alphabet, with
/// or without padding): a file meant to be encrypted must show neither.
pub fn leaked_secrets<'a>(text: &str, secrets: &'a [(String, String)]) -> Vec<(&'a str, &'static str)> {
    let mut leaks = Vec::new();
    for (name, value) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
        let b64 = crate::e2e::infra::gitea::base64(value.as_bytes());
        let unpadded = b64.trim_end_matches('=').to_string();
        let url = unpadded.replace('+', "-").replace('/', "_");
        if text.contains(value.as_str()) {
            leaks.push((name.as_str(), "in plaintext"));
        } else if text.contains(&unpadded) || text.contains(&url) {
            leaks.push((name.as_str(), "base64-encoded"));
        }
    }
    leaks
}

/// Pulls the run's checkout until `file` reaches `state` with more commits than `after_commits`;
/// returns the commit count then (pass it to the next check so each step must add a commit).
pub fn file_in_checkout(
    sh: &Shell,
    checkout: &Path,
    file: &str,
    state: &FileState,
    after_commits: u32,
    deadline: Duration,
    log: &Path,
) -> Result<u32> {
    let start = Instant::now();
    let path = checkout.join(file);
    loop {
        exec::cmd(cmd!(sh, "git -C {checkout} pull --quiet --ff-only"))
            .log(log)
            .timeout(Duration::from_secs(60))
            .run()
            .with_context(|| format!("pulling the run's checkout {}", checkout.display()))?;
        let content = std::fs::read_to_string(&path).ok();
        let commits = commit_count(sh, checkout, log)?;
        let reached = match (state, &content) {
            (FileState::Appears, Some(_)) => true,
            (FileState::Contains(text), Some(c)) => c.contains(text.as_str()),
            (FileState::Lacks(text), Some(c)) => !c.contains(text.as_str()),
            (FileState::Differs(before), Some(c)) => c != before,
            (FileState::Vanishes, None) => true,
            _ => false,
        };
        if reached && commits > after_commits {
            return Ok(commits);
        }
        if start.elapsed() >= deadline || exec::cancelled() {
            let what = match state {
                FileState::Appears => "appear".to_string(),
                FileState::Contains(t) => format!("contain {t:?}"),
                FileState::Lacks(t) => format!("exist without {t:?}"),
                FileState::Differs(_) => "change".to_string(),
                FileState::Vanishes => "vanish".to_string(),
            };
            let now = match content {
                Some(c) => format!("it holds {:?}", c.chars().take(120).collect::<String>()),
                None => "it does not exist".into(),
            };
            bail!(
                "{file} in the run's repository did not {what} with a new commit within {}s ({now}; {commits} commits, needed more than {after_commits})",
                secs(deadline)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs steps for one run, carrying what one Git check tells the next.
pub(crate) struct Runner<'a> {
    pub(crate) sh: &'a Shell,
    pub(crate) ctx: &'a crate::e2e::context::RunContext,
    /// What `${VAR}` can name: the run context and the caller's extras.
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) log: std::path::PathBuf,
    pub(crate) poll: Duration,
    pub(crate) default_timeout: Duration,
    commits: Option<u32>,
    seen: std::collections::BTreeMap<String, Option<String>>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(
        sh: &'a Shell,
        ctx: &'a crate::e2e::context::RunContext,
        log: std::path::PathBuf,
    ) -> Runner<'a> {
        Runner {
            sh,
            ctx,
            vars: ctx.env().into_iter().collect(),
            log,
            poll: Duration::from_secs(1),
            default_timeout: Duration::from_secs(120),
            commits: None,
            seen: Default::default(),
        }
    }

    pub(crate) fn expand(&self, text: &str) -> Result<String> {
        // A variable the run does not have is a mistake in the check, not a failed check.
        crate::vars::expand_strict(text, &self.vars).map_err(|e| crate::usage::usage(format!("{e:#}")))
    }

    fn checkout(&self) -> Result<std::path::PathBuf> {
        let dir = self.ctx.checkout_dir();
        if !dir.join(".git").exists() {
            return Err(crate::usage::usage(format!(
                "run {} has no Git checkout at {}: run `cargo xtask gitea setup --run-id {}` first",
                self.ctx.run_id,
                dir.display(),
                self.ctx.run_id
            )));
        }
        Ok(dir)
    }

    /// Runs the steps in order; the first failure is the error, naming the step. A Git check that
    /// wants a new commit counts from the commits there were before the first step.
    pub(crate) fn run_all(&mut self, steps: &[StepDef]) -> Result<()> {
        if steps.iter().any(|s| matches!(s.step, Step::GitFile { new_commit: true, after: None, .. })) {
            let checkout = self.checkout()?;
            self.commits = Some(commit_count(self.sh, &checkout, &self.log)?);
        }
        for (i, step) in steps.iter().enumerate() {
            self.run(step)
                .with_context(|| format!("check {} of {} ({})", i + 1, steps.len(), step.step.name()))?;
        }
        Ok(())
    }

    /// Runs one step; a Git file check returns the commit count it saw.
    pub(crate) fn run(&mut self, def: &StepDef) -> Result<Option<u32>> {
        let deadline = def.timeout.unwrap_or(self.default_timeout);
        let namespace = match &def.namespace {
            Some(ns) => self.expand(ns)?,
            None => self.ctx.test_namespace.clone(),
        };
        let checks = Checks {
            sh: self.sh,
            context: self.ctx.kube_context.clone(),
            namespace,
            log: self.log.clone(),
            poll: self.poll,
        };
        match &def.step {
            Step::Rollout(d) => {
                let d = self.expand(d)?;
                not_a_flag("the deployment", &d, &d)?;
                checks.rollout_status(&d, deadline)?
            }
            Step::Available(d) => {
                let d = self.expand(d)?;
                not_a_flag("the deployment", &d, &d)?;
                checks.deployment_available(&d, deadline)?
            }
            Step::PodsReady(s) => checks.pods_ready(&self.expand(s)?, deadline)?,
            Step::Crds(names) => {
                let names = names.iter().map(|n| self.expand(n)).collect::<Result<Vec<_>>>()?;
                for n in &names {
                    not_a_flag("the CRD", n, n)?;
                }
                checks.crds_present(&names.iter().map(String::as_str).collect::<Vec<_>>())?
            }
            Step::Condition { object, kind, expect } => {
                let object = self.expand(object)?;
                let (kind_of, name) = split_object(&object)?;
                checks.condition(kind_of, name, kind, expect, deadline)?
            }
            Step::GitFile { path, state, after, new_commit } => {
                let path = self.expand(path)?;
                let checkout = self.checkout()?;
                let after = match (after, new_commit) {
                    (Some(n), _) => *n,
                    (None, false) => 0,
                    (None, true) => match self.commits {
                        Some(n) => n,
                        None => commit_count(self.sh, &checkout, &self.log)?,
                    },
                };
                let file_state = match state {
                    GitState::Present => FileState::Appears,
                    GitState::Absent => FileState::Vanishes,
                    GitState::Contains(t) => FileState::Contains(self.expand(t)?),
                    GitState::NotContains(t) => FileState::Lacks(self.expand(t)?),
                    GitState::Changed => match self.seen.get(&path).cloned().flatten() {
                        Some(before) => FileState::Differs(before),
                        None => bail!("git-file {path}: `changed` needs an earlier check of the same file"),
                    },
                };
                let commits =
                    file_in_checkout(self.sh, &checkout, &path, &file_state, after, deadline, &self.log)?;
                self.commits = Some(commits);
                self.seen.insert(path.clone(), read_checkout_file(&checkout, &path));
                return Ok(Some(commits));
            }
            Step::GitNoSecret { path, secret_env, secret_values } => {
                let path = self.expand(path)?;
                let mut secrets = Vec::new();
                for template in secret_values {
                    let value = self.expand(template)?;
                    if value.is_empty() {
                        return Err(crate::usage::usage(format!("secret-values {template:?} is empty")));
                    }
                    exec::register_secret(&value);
                    secrets.push((format!("the secret value {template:?}"), value));
                }
                for var in secret_env {
                    let value = self.sh.var(var).map_err(|_| {
                        crate::usage::usage(format!("secret-env {var}: the variable is not set"))
                    })?;
                    if value.is_empty() {
                        return Err(crate::usage::usage(format!("secret-env {var}: the variable is empty")));
                    }
                    exec::register_secret(&value);
                    secrets.push((format!("${var}"), value));
                }
                let checkout = self.checkout()?;
                file_in_checkout(self.sh, &checkout, &path, &FileState::Appears, 0, deadline, &self.log)?;
                let text = read_checkout_file(&checkout, &path).unwrap_or_default();
                let leaks = leaked_secrets(&text, &secrets);
                if !leaks.is_empty() {
                    let said: Vec<String> = leaks.iter().map(|(n, how)| format!("{n} {how}")).collect();
                    bail!("{path} in the run's repository holds {}", said.join(", "));
                }
            }
            Step::Promql { expr, expect } => {
                use crate::e2e::infra::metrics;
                let expr = self.expand(expr)?;
                let scoped = metrics::scope(&expr, &metrics::Matcher::run(&self.ctx.run_id)?)
                    .map_err(|e| crate::usage::usage(format!("{e:#}")))?;
                let prometheus = metrics::Client::new(&self.ctx.prometheus_url);
                let shown = match expect {
                    Predicate::Empty => "empty".to_string(),
                    Predicate::Compare(op, v) => format!("{op} {v}"),
                };
                let data = prometheus.wait_for(
                    &scoped,
                    &shown,
                    |d| expect.holds(&d.samples().iter().map(|s| s.value).collect::<Vec<_>>()),
                    deadline,
                )?;
                let foreign: Vec<String> = data
                    .samples()
                    .iter()
                    .filter_map(|s| {
                        s.labels.get(metrics::RUN_LABEL).filter(|r| **r != self.ctx.run_id).cloned()
                    })
                    .collect();
                if !foreign.is_empty() {
                    bail!("the run's query `{scoped}` saw series of other runs: {}", foreign.join(", "));
                }
            }
            Step::Exists(object) => {
                let object = self.expand(object)?;
                let (kind_of, name) = split_object(&object)?;
                checks.exists(kind_of, name, deadline)?
            }
            Step::Delete(object) => {
                let object = self.expand(object)?;
                let (kind_of, name) = split_object(&object)?;
                let (sh, ns) = (self.sh, &checks.namespace);
                let timeout = format!("--timeout={}s", secs(deadline));
                exec::cmd(
                    cmd!(sh, "kubectl delete {kind_of} {name} --namespace {ns} --ignore-not-found --wait=true {timeout}")
                        .args(self.ctx.kubectl_args()),
                )
                .log(&self.log)
                .timeout(deadline + Duration::from_secs(10))
                .run()
                .with_context(|| format!("deleting {object} in {ns}"))?;
            }
            Step::Apply(file) => {
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
                let text = self
                    .expand(&text)
                    .map_err(|e| crate::usage::usage(format!("templating {}: {e:#}", file.display())))?;
                let (sh, ns) = (self.sh, &checks.namespace);
                exec::cmd(
                    cmd!(sh, "kubectl apply --server-side --field-manager=xtask-e2e --namespace {ns} -f -")
                        .args(self.ctx.kubectl_args()),
                )
                .stdin(text)
                .log(&self.log)
                .timeout(deadline)
                .run()
                .with_context(|| format!("applying {}", file.display()))?;
            }
        }
        Ok(None)
    }
}
