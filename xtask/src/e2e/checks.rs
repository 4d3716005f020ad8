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

/// What a condition must show.
#[derive(Debug, Clone)]
pub struct Expect {
    pub status: String,
    pub reason: Option<String>,
    /// What the condition's message must match (an actionable message).
    pub message: Option<regex::Regex>,
}

impl Expect {
    pub fn is_true() -> Expect {
        Expect { status: "True".into(), reason: None, message: None }
    }
    pub fn is_false(reason: &str, message_contains: &str) -> Expect {
        Expect {
            status: "False".into(),
            reason: Some(reason.into()),
            message: regex::Regex::new(&regex::escape(message_contains)).ok(),
        }
    }
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
        super::kube::kubectl_args(&self.context)
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

    /// Every pod matching `selector` is ready.
    pub fn pods_ready(&self, selector: &str, deadline: Duration) -> Result<()> {
        let (sh, ns) = (self.sh, &self.namespace);
        let timeout = format!("--timeout={}s", secs(deadline));
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
        let b64 = super::gitea::base64(value.as_bytes());
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
