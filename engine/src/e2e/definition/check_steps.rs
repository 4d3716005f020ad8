//! What a check says (its kinds, expectations and predicates), apart from how it runs
//! ([`crate::e2e::checks::runner`]): the definition reads these without depending on the runner.

use std::time::Duration;

use anyhow::{bail, Result};

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

/// `--expect` of a PromQL check: on every sample (at least one), or no series at all.
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
                    .map_err(|_| anyhow::anyhow!("expect {text:?}: {:?} is not a number", rest.trim()))?;
                return Ok(Predicate::Compare(op, value));
            }
        }
        bail!("expect {text:?}: write `> 0`, `>= 3`, `== 1`, `!= 0`, `< 5`, `<= 5` or `empty`")
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

/// What a Git file check wants of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GitState {
    Present,
    Absent,
    Contains(String),
    NotContains(String),
    /// Present with content other than what the previous check of this file saw.
    Changed,
}

/// One check, as a definition's `[[quickstart.check]]` or `cargo xtask check` states it. Text
/// may hold `${E2E_*}` (expanded from the run context when it runs).
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Rollout(String),
    Available(String),
    PodsReady(String),
    Crds(Vec<String>),
    Condition {
        object: String,
        kind: String,
        expect: Expect,
    },
    /// `after`: the commit count to exceed; `None`: the previous Git check's (or the count when the
    /// checks began): each such check needs a new commit.
    GitFile {
        path: String,
        state: GitState,
        after: Option<u32>,
        new_commit: bool,
    },
    /// The file must hold none of the secrets (variables naming them, or templated values), in
    /// plaintext or base64.
    GitNoSecret {
        path: String,
        secret_env: Vec<String>,
        secret_values: Vec<String>,
    },
    Promql {
        expr: String,
        expect: Predicate,
    },
    /// A manifest (templated with the run context) applied into the namespace.
    Apply(std::path::PathBuf),
    /// `kind/name` exists (namespaced in the step's namespace, or cluster-scoped).
    Exists(String),
    /// `kind/name` is deleted (and gone) if it exists.
    Delete(String),
}

impl Step {
    /// The step's kind, as the definition writes it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Step::Rollout(_) => "rollout",
            Step::Available(_) => "available",
            Step::PodsReady(_) => "pods-ready",
            Step::Crds(_) => "crds",
            Step::Condition { .. } => "condition",
            Step::GitFile { .. } => "git-file",
            Step::GitNoSecret { .. } => "git-no-secret",
            Step::Promql { .. } => "promql",
            Step::Apply(_) => "apply",
            Step::Exists(_) => "exists",
            Step::Delete(_) => "delete",
        }
    }
}

/// A step with where and how long.
#[derive(Debug, Clone)]
pub(crate) struct StepDef {
    pub(crate) step: Step,
    pub(crate) namespace: Option<String>,
    pub(crate) timeout: Option<Duration>,
}
