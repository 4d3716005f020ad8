//! The e2e definition (`test/e2e/e2e.toml`): images, the kind cluster, loads, deploys and what
//! each deploy needs. Shared infra (Gitea, Prometheus, cert-manager) are deploys like any other.
//!
//! The graph it makes follows the four-phase template without its barriers: builds (no deps) →
//! the cluster (after every build: a kind node must not idle through slow builds) → loads (each
//! after the cluster and its own build) → deploys (each after the cluster, the loads of the
//! images it names and the deploys it needs).

pub mod check_steps;
pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::parse_timeout;
use crate::lint::value::{FromValue, Table};
use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::e2e::context::Request;
use crate::e2e::definition::check_steps::StepDef;
use crate::e2e::setup::actions::{Action, SetupTask as Task, Wait};

#[derive(Debug)]
struct File {
    cluster: ClusterDef,
    images: Vec<ImageDef>,
    deploys: Vec<DeployDef>,
    forwards: Vec<ForwardDef>,
    flows: Vec<FlowDef>,
    quickstart: Option<QuickstartDef>,
}

#[derive(Debug)]
struct QuickstartDef {
    /// Helm chart installed per run (`--mode helm`).
    chart: Option<PathBuf>,
    /// Kustomize base a per-run overlay points at (`--mode manifest`).
    base: Option<PathBuf>,
    /// What proves the install works, in order (`[[quickstart.check]]`).
    checks: Vec<CheckDef>,
    timeout: String,
    /// `--set` values for the chart (typed by helm), templated with the run context.
    values: BTreeMap<String, String>,
    /// `--set-string` values for the chart (kept as strings), templated with the run context.
    set_string: BTreeMap<String, String>,
    /// Kustomize patch files (templated with the run context) the manifest mode's overlay applies
    /// over the base: how the run's Git settings and namespace-bound references get in.
    patches: Vec<PathBuf>,
    /// The Service port name a per-run ServiceMonitor scrapes (Prometheus Operator); absent: none
    /// (plain Prometheus with a static scrape).
    service_monitor: Option<String>,
}

/// One `[[quickstart.check]]`: exactly one kind key (`rollout`, `available`, `pods-ready`, `crds`,
/// `condition`, `git-file`, `git-no-secret`, `promql`, `apply`, `exists`, `delete`) and the keys of
/// that kind.
#[derive(Debug, Default)]
struct CheckDef {
    rollout: Option<String>,
    available: Option<String>,
    pods_ready: Option<String>,
    crds: Option<Vec<String>>,
    condition: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    git_file: Option<String>,
    state: Option<String>,
    text: Option<String>,
    new_commit: Option<bool>,
    git_no_secret: Option<String>,
    secret_env: Option<Vec<String>>,
    secret_values: Option<Vec<String>>,
    promql: Option<String>,
    expect: Option<String>,
    apply: Option<PathBuf>,
    exists: Option<String>,
    delete: Option<String>,
    namespace: Option<String>,
    timeout: Option<String>,
}

impl CheckDef {
    fn step(&self, key: &str, paths: &Paths) -> Result<StepDef> {
        use crate::e2e::definition::check_steps::{Expect, GitState, Predicate, Step};
        let kinds: Vec<&str> = [
            ("rollout", self.rollout.is_some()),
            ("available", self.available.is_some()),
            ("pods-ready", self.pods_ready.is_some()),
            ("crds", self.crds.is_some()),
            ("condition", self.condition.is_some()),
            ("git-file", self.git_file.is_some()),
            ("git-no-secret", self.git_no_secret.is_some()),
            ("promql", self.promql.is_some()),
            ("apply", self.apply.is_some()),
            ("exists", self.exists.is_some()),
            ("delete", self.delete.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => bail!("{key}: say what to check: one of rollout, available, pods-ready, crds, condition, git-file, git-no-secret, promql, apply, exists, delete"),
            many => bail!("{key}: one check per entry, this one has {}", many.join(", ")),
        };
        // A key of another kind would be ignored: refused instead.
        let belongs = [
            ("type", self.kind.is_some(), "condition"),
            ("status", self.status.is_some(), "condition"),
            ("reason", self.reason.is_some(), "condition"),
            ("message", self.message.is_some(), "condition"),
            ("state", self.state.is_some(), "git-file"),
            ("text", self.text.is_some(), "git-file"),
            ("new-commit", self.new_commit.is_some(), "git-file"),
            ("secret-env", self.secret_env.is_some(), "git-no-secret"),
            ("secret-values", self.secret_values.is_some(), "git-no-secret"),
            ("expect", self.expect.is_some(), "promql"),
        ];
        for (k, set, owner) in belongs {
            if set && owner != kind {
                bail!("{key}: `{k}` belongs to a {owner} check, this is a {kind} check");
            }
        }
        let text = || -> Result<String> {
            self.text.clone().ok_or_else(|| {
                anyhow::anyhow!("{key}: state {:?} needs `text`", self.state.as_deref().unwrap_or(""))
            })
        };
        let step = match kind {
            "rollout" => Step::Rollout(self.rollout.clone().unwrap_or_default()),
            "available" => Step::Available(self.available.clone().unwrap_or_default()),
            "pods-ready" => Step::PodsReady(self.pods_ready.clone().unwrap_or_default()),
            "crds" => Step::Crds(self.crds.clone().unwrap_or_default()),
            "condition" => {
                let message = match &self.message {
                    Some(m) => Some(
                        regex::Regex::new(m)
                            .map_err(|e| anyhow::anyhow!("{key}.message: {m:?} is not a regex: {e}"))?,
                    ),
                    None => None,
                };
                Step::Condition {
                    object: self.condition.clone().unwrap_or_default(),
                    kind: self.kind.clone().unwrap_or_else(|| "Ready".into()),
                    expect: Expect {
                        status: self.status.clone().unwrap_or_else(|| "True".into()),
                        reason: self.reason.clone(),
                        message,
                    },
                }
            }
            "git-file" => {
                let state = match self.state.as_deref().unwrap_or("present") {
                    "present" => GitState::Present,
                    "absent" => GitState::Absent,
                    "changed" => GitState::Changed,
                    "contains" => GitState::Contains(text()?),
                    "not-contains" => GitState::NotContains(text()?),
                    other => bail!("{key}.state: {other:?} is not one of present, absent, contains, not-contains, changed"),
                };
                if self.text.is_some() && !matches!(state, GitState::Contains(_) | GitState::NotContains(_)) {
                    bail!("{key}: `text` goes with state contains or not-contains");
                }
                Step::GitFile {
                    path: self.git_file.clone().unwrap_or_default(),
                    state,
                    after: None,
                    new_commit: self.new_commit.unwrap_or(true),
                }
            }
            "git-no-secret" => {
                let secret_env = self.secret_env.clone().unwrap_or_default();
                let secret_values = self.secret_values.clone().unwrap_or_default();
                if secret_env.is_empty() && secret_values.is_empty() {
                    bail!("{key}: say which secrets must not show: `secret-env` (variables holding them) or `secret-values` (test secrets, templated like `fixture-${{E2E_RUN_ID}}`)");
                }
                Step::GitNoSecret {
                    path: self.git_no_secret.clone().unwrap_or_default(),
                    secret_env,
                    secret_values,
                }
            }
            "promql" => Step::Promql {
                expr: self.promql.clone().unwrap_or_default(),
                expect: Predicate::parse(self.expect.as_deref().unwrap_or("> 0"))
                    .map_err(|e| anyhow::anyhow!("{key}.{e}"))?,
            },
            "exists" => Step::Exists(self.exists.clone().unwrap_or_default()),
            "delete" => Step::Delete(self.delete.clone().unwrap_or_default()),
            _ => {
                let file = self.apply.clone().unwrap_or_default();
                Step::Apply(paths.locate(&file).map_err(|e| anyhow::anyhow!("{key}.apply: {e}"))?)
            }
        };
        let timeout = match &self.timeout {
            Some(t) => Some(parse_timeout(t).map_err(|e| anyhow::anyhow!("{key}.timeout: {e}"))?),
            None => None,
        };
        Ok(StepDef { step, namespace: self.namespace.clone(), timeout })
    }
}

#[derive(Debug)]
struct ForwardDef {
    name: String,
    namespace: String,
    target: String,
    local: u16,
    remote: u16,
    /// How to tell the service behind the forward answers: an HTTP path that must answer 200, or
    /// `ssh` (an SSH banner). A TCP connect is no probe: kubectl's own listener always accepts.
    probe: String,
    /// Variables this forward provides to every run, `${local}` standing for the local port
    /// (`E2E_GITEA_API_URL = "http://127.0.0.1:${local}/api/v1"`).
    env: BTreeMap<String, String>,
    /// How long the service may take to answer after setup (a cold image pull takes minutes).
    ready_timeout: String,
    /// Deploys (by name) whose service it forwards to: it starts when they are up. Default: the
    /// deploys into its namespace, or every deploy when none is.
    needs: Option<Vec<String>>,
}

#[derive(Debug)]
struct FlowDef {
    name: String,
    /// Commands run in order with the run's environment; `${E2E_*}`, the flow's `env`,
    /// `${GIT_SHA}` and the environment's variables are expanded in arguments (strictly; `$${` is
    /// a literal `${`).
    steps: Vec<Vec<String>>,
    timeout: String,
    /// Set up the run's Gitea repository, token, key and secrets first.
    gitea: bool,
    /// Variables every step gets; `${E2E_*}` (the run context) and the environment's variables
    /// are expanded in the values, and an unknown `${VAR}` is an error.
    env: BTreeMap<String, String>,
    /// Runs alone: no other flow runs while it does (it owns cluster-wide objects: an operator's
    /// CRDs, webhooks, cluster roles). The others still run side by side.
    exclusive: bool,
    /// What must be done before this one starts: other flows, and deploys or port-forwards of
    /// shared infra (`flow:`, `deploy:`, `port-forward:` spell a name out when two kinds share it).
    /// Naming no deploy or forward, the flow waits for all of shared infra.
    needs: Vec<String>,
    /// Checks run after the steps, in order (`[[flow.check]]`, the kinds of `[[quickstart.check]]`).
    checks: Vec<CheckDef>,
}

fn d1800() -> String {
    "1800s".into()
}

#[derive(Debug)]
struct ClusterDef {
    name: String,
    /// `kind` (default: created or reused, images loaded with `kind load`) or `existing` (a
    /// named kube context, never created or deleted; images pushed to `registry`).
    provider: String,
    /// The kube context of an `existing` cluster.
    context: Option<String>,
    /// Where images go for an `existing` cluster (`registry.example.com/team`): tagged
    /// `<registry>/<tag>` and pushed; deploys name that reference.
    registry: Option<String>,
    /// How long a Lease (shared-infra setup, a run) of an existing cluster holds without
    /// renewal: a SIGKILLed owner's run is reapable after it.
    lease_duration: String,
    config: Option<PathBuf>,
    wait: String,
    timeout: String,
}

#[derive(Debug)]
struct ImageDef {
    name: String,
    tag: String,
    dockerfile: PathBuf,
    context: PathBuf,
    build_args: BTreeMap<String, String>,
    prebuild: Vec<Vec<String>>,
    prebuild_env: BTreeMap<String, String>,
    /// Environment of the prebuild commands and `docker build`; values expanded like build args.
    env: BTreeMap<String, String>,
    /// What the prebuild commands read, as globs from the repository root (`test/demo/**`,
    /// `Cargo.lock`): part of the image's digest, which cannot guess them.
    inputs: Vec<String>,
    load: bool,
    timeout: String,
    load_retries: u32,
}

#[derive(Debug)]
struct DeployDef {
    name: String,
    namespace: Option<String>,
    helm: Option<HelmDef>,
    manifests: Vec<PathBuf>,
    /// Expand `${VAR}` in the (local) manifests before applying them, strictly: `${IMAGE_<NAME>}`
    /// names an image's digest tag, so its pods roll when it changes.
    template: bool,
    wait: Vec<WaitDef>,
    /// Images (by name) whose loads this deploy needs.
    images: Vec<String>,
    /// Deploys (by name) this deploy needs.
    needs: Vec<String>,
    timeout: String,
    retries: Option<u32>,
    /// A plain command instead of helm/manifests (benchmarks, custom installers).
    command: Vec<String>,
}

#[derive(Debug)]
struct HelmDef {
    chart: String,
    release: Option<String>,
    repo: Option<String>,
    version: Option<String>,
    values: Vec<PathBuf>,
    set: BTreeMap<String, String>,
}

#[derive(Debug)]
struct WaitDef {
    resource: String,
    condition: String,
    /// Where the resource is, when not in the deploy's namespace (a release manifest spanning
    /// namespaces is applied without one).
    namespace: Option<String>,
    timeout: String,
}

fn d30() -> String {
    "30s".into()
}

fn kind() -> String {
    "kind".into()
}

fn d120() -> String {
    "120s".into()
}
fn d300() -> String {
    "300s".into()
}
fn d600() -> String {
    "600s".into()
}
fn d900() -> String {
    "900s".into()
}
fn dot() -> PathBuf {
    PathBuf::from(".")
}
fn yes() -> bool {
    true
}
fn two() -> u32 {
    2
}

// Each table of the file, read key by key (kebab-case keys; `done` refuses any other key).

impl FromValue for File {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let file = File {
            cluster: t.req("cluster")?,
            images: t.or_default("image")?,
            deploys: t.or_default("deploy")?,
            forwards: t.or_default("port-forward")?,
            flows: t.or_default("flow")?,
            quickstart: t.opt("quickstart")?,
        };
        t.done()?;
        Ok(file)
    }
}

impl FromValue for QuickstartDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let q = QuickstartDef {
            chart: t.opt("chart")?,
            base: t.opt("base")?,
            checks: t.or_default("check")?,
            timeout: t.or("timeout", d300())?,
            values: t.or_default("values")?,
            set_string: t.or_default("set-string")?,
            patches: t.or_default("patches")?,
            service_monitor: t.opt("service-monitor")?,
        };
        t.done()?;
        Ok(q)
    }
}

impl FromValue for CheckDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let c = CheckDef {
            rollout: t.opt("rollout")?,
            available: t.opt("available")?,
            pods_ready: t.opt("pods-ready")?,
            crds: t.opt("crds")?,
            condition: t.opt("condition")?,
            kind: t.opt("type")?,
            status: t.opt("status")?,
            reason: t.opt("reason")?,
            message: t.opt("message")?,
            git_file: t.opt("git-file")?,
            state: t.opt("state")?,
            text: t.opt("text")?,
            new_commit: t.opt("new-commit")?,
            git_no_secret: t.opt("git-no-secret")?,
            secret_env: t.opt("secret-env")?,
            secret_values: t.opt("secret-values")?,
            promql: t.opt("promql")?,
            expect: t.opt("expect")?,
            apply: t.opt("apply")?,
            exists: t.opt("exists")?,
            delete: t.opt("delete")?,
            namespace: t.opt("namespace")?,
            timeout: t.opt("timeout")?,
        };
        t.done()?;
        Ok(c)
    }
}

impl FromValue for ForwardDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let f = ForwardDef {
            name: t.req("name")?,
            namespace: t.req("namespace")?,
            target: t.req("target")?,
            local: t.req("local")?,
            remote: t.req("remote")?,
            probe: t.req("probe")?,
            env: t.or_default("env")?,
            ready_timeout: t.or("ready-timeout", d300())?,
            needs: t.opt("needs")?,
        };
        t.done()?;
        Ok(f)
    }
}

impl FromValue for FlowDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let f = FlowDef {
            name: t.req("name")?,
            steps: t.or_default("steps")?,
            timeout: t.or("timeout", d1800())?,
            gitea: t.or("gitea", yes())?,
            env: t.or_default("env")?,
            exclusive: t.or_default("exclusive")?,
            needs: t.or_default("needs")?,
            checks: t.or_default("check")?,
        };
        t.done()?;
        Ok(f)
    }
}

impl FromValue for ClusterDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let c = ClusterDef {
            name: t.req("name")?,
            provider: t.or("provider", kind())?,
            context: t.opt("context")?,
            registry: t.opt("registry")?,
            lease_duration: t.or("lease-duration", d30())?,
            config: t.opt("config")?,
            wait: t.or("wait", d120())?,
            timeout: t.or("timeout", d300())?,
        };
        t.done()?;
        Ok(c)
    }
}

impl FromValue for ImageDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let i = ImageDef {
            name: t.req("name")?,
            tag: t.req("tag")?,
            dockerfile: t.req("dockerfile")?,
            context: t.or("context", dot())?,
            build_args: t.or_default("build-args")?,
            prebuild: t.or_default("prebuild")?,
            prebuild_env: t.or_default("prebuild-env")?,
            env: t.or_default("env")?,
            inputs: t.or_default("inputs")?,
            load: t.or("load", yes())?,
            timeout: t.or("timeout", d900())?,
            load_retries: t.or("load-retries", two())?,
        };
        t.done()?;
        Ok(i)
    }
}

impl FromValue for DeployDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let d = DeployDef {
            name: t.req("name")?,
            namespace: t.opt("namespace")?,
            helm: t.opt("helm")?,
            manifests: t.or_default("manifests")?,
            template: t.or_default("template")?,
            wait: t.or_default("wait")?,
            images: t.or_default("images")?,
            needs: t.or_default("needs")?,
            timeout: t.or("timeout", d600())?,
            retries: t.opt("retries")?,
            command: t.or_default("command")?,
        };
        t.done()?;
        Ok(d)
    }
}

impl FromValue for HelmDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let h = HelmDef {
            chart: t.req("chart")?,
            release: t.opt("release")?,
            repo: t.opt("repo")?,
            version: t.opt("version")?,
            values: t.or_default("values")?,
            set: t.or_default("set")?,
        };
        t.done()?;
        Ok(h)
    }
}

impl FromValue for WaitDef {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let w = WaitDef {
            resource: t.req("resource")?,
            condition: t.req("for")?,
            namespace: t.opt("namespace")?,
            timeout: t.or("timeout", d300())?,
        };
        t.done()?;
        Ok(w)
    }
}

/// A loaded, validated definition.
#[derive(Debug)]
pub(crate) struct Definition {
    pub(crate) path: PathBuf,
    /// Paths in the definition are relative to this (its repository).
    pub(crate) root: PathBuf,
    pub(crate) cluster: String,
    /// The named context of an `existing` cluster; `None` for kind.
    pub(crate) existing: Option<String>,
    /// How long its Leases hold without renewal.
    pub(crate) lease_duration: Duration,
    pub(crate) tasks: Vec<Task>,
    pub(crate) forwards: Vec<Forward>,
    pub(crate) flows: Vec<Flow>,
    pub(crate) quickstart: Option<Quickstart>,
}

impl Definition {
    /// A run context request with this definition's service endpoints and kube context.
    pub(crate) fn request(&self, run_id: Option<String>, flow: Option<&str>) -> Request {
        Request::new(run_id, flow).with_services(self.service_env()).with_kube_context(self.kube_context())
    }

    /// The kube context of the definition's cluster (`kind-<name>`, or the existing one's).
    pub(crate) fn kube_context(&self) -> String {
        cluster_context(&self.cluster, self.existing.as_deref())
    }

    /// What the forwards provide to every run (their `env`): the run context's defaults.
    pub(crate) fn service_env(&self) -> BTreeMap<String, String> {
        self.forwards.iter().flat_map(|f| f.env.iter().cloned()).collect()
    }
}

/// How the system under test is installed into one run and what proves it works.
#[derive(Debug, Clone)]
pub(crate) struct Quickstart {
    pub(crate) chart: Option<PathBuf>,
    pub(crate) base: Option<PathBuf>,
    pub(crate) checks: Vec<StepDef>,
    pub(crate) timeout: Duration,
    pub(crate) values: Vec<(String, String)>,
    pub(crate) set_string: Vec<(String, String)>,
    pub(crate) patches: Vec<PathBuf>,
    pub(crate) service_monitor: Option<String>,
}

/// A fixed local port forwarded to a service, kept alive by a supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) target: String,
    pub(crate) local: u16,
    pub(crate) remote: u16,
    pub(crate) probe: Probe,
    /// What the forward provides to runs (`E2E_GITEA_API_URL` → its URL), `${local}` expanded.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) ready_timeout: Duration,
    /// The kube context kubectl port-forward names (the definition's cluster).
    pub(crate) context: String,
    /// The deploy tasks (`deploy:x`) it waits for.
    pub(crate) after: Vec<String>,
}

/// How a forward's health is judged: by the protocol of the service behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// `GET <path>` answers 200.
    Http(String),
    /// The server sends an SSH identification line (`SSH-2.0-...`, RFC 4253 section 4.2).
    Ssh,
}

impl Probe {
    /// `/path` or `ssh`.
    pub(crate) fn parse(text: &str) -> Option<Probe> {
        match text {
            "ssh" => Some(Probe::Ssh),
            p if p.starts_with('/') => Some(Probe::Http(p.to_string())),
            _ => None,
        }
    }

    /// As the definition spells it.
    pub(crate) fn spelled(&self) -> &str {
        match self {
            Probe::Http(path) => path,
            Probe::Ssh => "ssh",
        }
    }
}

/// One e2e flow.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) name: String,
    pub(crate) steps: Vec<Vec<String>>,
    pub(crate) timeout: Duration,
    pub(crate) gitea: bool,
    /// Variables every step gets (values expanded per run).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) exclusive: bool,
    /// The flows it runs after.
    pub(crate) needs: Vec<String>,
    /// The shared-infra tasks it waits for (`deploy:x`, `forward:y`); `None`: all of shared infra.
    pub(crate) infra: Option<Vec<String>>,
    pub(crate) checks: Vec<StepDef>,
}

/// The kube context of the default definition's cluster, for commands that take no definition
/// (a missing or unreadable definition: kind's `e2e`).
pub(crate) fn default_kube_context() -> String {
    load(&default_path())
        .map(|d| d.kube_context())
        .unwrap_or_else(|_| crate::e2e::context::kube::kind_context("e2e"))
}

/// The manifest files of a directory as `kubectl apply -f DIR` (without `--recursive`) takes
/// them: the entries whose names end in `.json`, `.yaml` or `.yml`, in lexical order, no
/// subdirectory (cli-runtime `pkg/resource/visitor.go`, `ExpandPathsToFileVisitors`: it walks
/// with `filepath.Walk`, skips directories below the one named unless recursive, and keeps
/// `FileExtensions = []string{".json", ".yaml", ".yml"}`). An empty one is an error: kubectl
/// would apply nothing and say `error: no objects passed to apply`.
pub(crate) fn manifest_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let name = PathBuf::from(entry.file_name());
        let wanted = name.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml");
        if wanted && entry.path().is_file() {
            names.push(name);
        }
    }
    // filepath.Walk visits in lexical order of the names' bytes.
    names.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    if names.is_empty() {
        return Err(format!(
            "{} holds no .yaml, .yml or .json file (kubectl apply -f would apply nothing)",
            dir.display()
        ));
    }
    Ok(names)
}

/// The default definition of this repository.
pub(crate) fn default_path() -> PathBuf {
    crate::paths::project_root().join("test/e2e/e2e.toml")
}

/// Reads and validates a definition. Every problem is a usage error (exit 2) naming the file,
/// the key and what is wrong.
pub(crate) fn load(path: &Path) -> Result<Definition> {
    load_checked(path).map_err(|e| crate::usage::usage(format!("{e:#}")))
}

/// Decodes a definition's text into its tables, nothing more (the fuzz target of the decoder).
#[cfg(test)]
pub(crate) fn decode(text: &str) -> Result<(), crate::toml::Error> {
    crate::toml::from_str::<File>(text).map(drop)
}

fn load_checked(path: &Path) -> Result<Definition> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the e2e definition {shown}"))?;
    let mut file: File = crate::toml::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let root = crate::paths::repository_of(path);
    template_images(&mut file, &shown, &root)?;
    let absolute = crate::paths::normalize(&std::env::current_dir().unwrap_or_default().join(path));
    let paths = Paths {
        root: root.clone(),
        dir: absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| root.clone()),
    };
    let flows = flows(&file, &shown, &paths)?;
    let forwards = forwards(&file, &shown)?;
    let cluster = file.cluster.name.clone();
    let existing = existing_context(&file.cluster, &shown)?;
    let lease_duration = parse_timeout(&file.cluster.lease_duration)
        .map_err(|e| anyhow::anyhow!("{shown}: cluster.lease-duration: {e}"))?;
    if existing.is_some() && file.cluster.registry.is_none() && file.images.iter().any(|i| i.load) {
        bail!(
            "{shown}: cluster.registry: an existing cluster cannot be loaded with kind; name the registry its nodes pull from (images are pushed there), or set load = false on the images"
        );
    }
    let quickstart = match &file.quickstart {
        None => None,
        Some(q) => {
            let path = |key: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
                match p {
                    Some(p) => Ok(Some(
                        paths.locate(p).map_err(|e| anyhow::anyhow!("{shown}: quickstart.{key}: {e}"))?,
                    )),
                    None => Ok(None),
                }
            };
            if q.checks.is_empty() {
                bail!("{shown}: quickstart: no [[quickstart.check]]: an install nothing checks proves nothing (see `cargo xtask check --help` for the kinds)");
            }
            if q.chart.is_none() && q.base.is_none() {
                bail!("{shown}: quickstart: give chart (helm mode), base (manifest mode), or both");
            }
            Some(Quickstart {
                chart: path("chart", &q.chart)?,
                base: path("base", &q.base)?,
                checks: q
                    .checks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| c.step(&format!("{shown}: quickstart.check[{i}]"), &paths))
                    .collect::<Result<_>>()?,
                timeout: parse_timeout(&q.timeout)
                    .map_err(|e| anyhow::anyhow!("{shown}: quickstart.timeout: {e}"))?,
                values: q.values.clone().into_iter().collect(),
                set_string: q.set_string.clone().into_iter().collect(),
                patches: q
                    .patches
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        path(&format!("patches[{i}]"), &Some(p.clone())).map(|p| p.unwrap_or_default())
                    })
                    .collect::<Result<_>>()?,
                service_monitor: q.service_monitor.clone(),
            })
        }
    };
    let tasks = build(file, &shown, &paths)?;
    Ok(Definition {
        path: path.to_path_buf(),
        root,
        cluster,
        existing,
        lease_duration,
        tasks,
        forwards,
        flows,
        quickstart,
    })
}

/// The kube context every call names: `kind-<name>` for kind, the named one for `existing`.
fn cluster_context(name: &str, existing: Option<&str>) -> String {
    match existing {
        Some(context) => context.to_string(),
        None => crate::e2e::context::kube::kind_context(name),
    }
}

/// `[cluster] provider`: `kind`, or `existing` with its `context` (and a `registry` when images
/// are loaded); keys of the other provider are refused.
fn existing_context(cluster: &ClusterDef, shown: &str) -> Result<Option<String>> {
    match cluster.provider.as_str() {
        "kind" => {
            for (key, set) in
                [("context", cluster.context.is_some()), ("registry", cluster.registry.is_some())]
            {
                if set {
                    bail!("{shown}: cluster.{key}: belongs to provider = \"existing\" (kind clusters are named kind-<name> and loaded with kind load)");
                }
            }
            Ok(None)
        }
        "existing" => {
            let context = cluster.context.clone().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{shown}: cluster.context: provider = \"existing\" needs the kube context to use"
                )
            })?;
            if cluster.config.is_some() {
                bail!("{shown}: cluster.config: an existing cluster is never created, so it takes no kind config");
            }
            if let Some(r) = &cluster.registry {
                if r.is_empty() || r.contains(char::is_whitespace) || r.ends_with('/') {
                    bail!("{shown}: cluster.registry: {r:?} is not a registry prefix (registry.example.com/team)");
                }
            }
            Ok(Some(context))
        }
        other => bail!("{shown}: cluster.provider: {other:?} is not one of kind, existing"),
    }
}

fn forwards(file: &File, shown: &str) -> Result<Vec<Forward>> {
    let mut out: Vec<Forward> = Vec::new();
    for (i, f) in file.forwards.iter().enumerate() {
        let key = format!("port-forward[{i}] ({})", f.name);
        if !dns_label(&f.name) || !dns_label(&f.namespace) {
            bail!("{shown}: {key}: name and namespace must be lowercase DNS labels");
        }
        if !f.target.contains('/') {
            bail!("{shown}: {key}.target: {:?} should be kind/name, like svc/gitea-http", f.target);
        }
        if f.local == 0 || f.remote == 0 {
            bail!("{shown}: {key}: ports must be non-zero");
        }
        if out.iter().any(|o| o.local == f.local || o.name == f.name) {
            bail!("{shown}: {key}: local port {} or name used twice", f.local);
        }
        let Some(probe) = Probe::parse(&f.probe) else {
            bail!(
                "{shown}: {key}.probe: {:?} is not a probe: give an HTTP path that answers 200 (\"/-/ready\") or \"ssh\" \
                 (a TCP connect proves nothing: kubectl's own listener accepts it even when nothing answers behind it)",
                f.probe
            );
        };
        let mut env = Vec::new();
        for (var, value) in &f.env {
            if !var.starts_with("E2E_")
                || !var.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                bail!("{shown}: {key}.env: {var:?}: variables a forward provides are named E2E_<UPPER_CASE>");
            }
            env.push((var.clone(), value.replace("${local}", &f.local.to_string())));
        }
        out.push(Forward {
            name: f.name.clone(),
            namespace: f.namespace.clone(),
            target: f.target.clone(),
            local: f.local,
            remote: f.remote,
            probe,
            env,
            ready_timeout: parse_timeout(&f.ready_timeout)
                .map_err(|e| anyhow::anyhow!("{shown}: {key}.ready-timeout: {e}"))?,
            context: cluster_context(&file.cluster.name, file.cluster.context.as_deref()),
            after: forward_needs(file, f, &format!("{shown}: {key}.needs"))?,
        });
    }
    Ok(out)
}

/// The deploys a forward waits for: those it names, else those into its namespace, else all.
fn forward_needs(file: &File, f: &ForwardDef, at: &str) -> Result<Vec<String>> {
    let names: Vec<&str> = file.deploys.iter().map(|d| d.name.as_str()).collect();
    let chosen: Vec<&str> = match &f.needs {
        Some(needs) => {
            for need in needs {
                if !names.contains(&need.as_str()) {
                    bail!("{at}: unknown deploy {need:?} (known: {})", names.join(", "));
                }
            }
            needs.iter().map(String::as_str).collect()
        }
        None => {
            let into: Vec<&str> = file
                .deploys
                .iter()
                .filter(|d| d.namespace.as_deref() == Some(f.namespace.as_str()))
                .map(|d| d.name.as_str())
                .collect();
            if into.is_empty() {
                names
            } else {
                into
            }
        }
    };
    Ok(chosen.into_iter().map(|n| format!("deploy:{n}")).collect())
}

fn flows(file: &File, shown: &str, paths: &Paths) -> Result<Vec<Flow>> {
    let mut out: Vec<Flow> = Vec::new();
    for (i, f) in file.flows.iter().enumerate() {
        let key = format!("flow[{i}] ({})", f.name);
        if let Err(e) = crate::e2e::context::validate_flow(&f.name) {
            bail!("{shown}: {key}.name: {e}");
        }
        if out.iter().any(|o| o.name == f.name) {
            bail!("{shown}: {key}.name: two flows are named {:?}", f.name);
        }
        if f.steps.is_empty() || f.steps.iter().any(Vec::is_empty) {
            bail!("{shown}: {key}.steps: give at least one command, none empty");
        }
        let timeout =
            parse_timeout(&f.timeout).map_err(|e| anyhow::anyhow!("{shown}: {key}.timeout: {e}"))?;
        for var in f.env.keys() {
            let ok = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !ok || var.starts_with("E2E_") {
                bail!("{shown}: {key}.env: {var:?}: a variable name (A-Z, 0-9, _), not one of the run context's E2E_*");
            }
        }
        out.push(Flow {
            name: f.name.clone(),
            steps: f.steps.clone(),
            timeout,
            gitea: f.gitea,
            env: f.env.clone().into_iter().collect(),
            exclusive: f.exclusive,
            needs: Vec::new(),
            infra: None,
            checks: f
                .checks
                .iter()
                .enumerate()
                .map(|(c, check)| check.step(&format!("{shown}: flow[{i}] ({}).check[{c}]", f.name), paths))
                .collect::<Result<_>>()?,
        });
    }
    let flow_names: Vec<String> = out.iter().map(|f| f.name.clone()).collect();
    for (i, f) in file.flows.iter().enumerate() {
        let at = format!("{shown}: flow[{i}] ({}).needs", f.name);
        let (flows, infra) = flow_needs(file, &f.name, &f.needs, &flow_names, &at)?;
        out[i].needs = flows;
        out[i].infra = infra;
    }
    if let Some(cycle) = needs_cycle(&out) {
        bail!(
            "{shown}: flow needs form a cycle: {}; a flow cannot wait for itself, so remove one of these needs",
            cycle.join(" needs ")
        );
    }
    Ok(out)
}

/// A flow's `needs` split into the flows it runs after and the shared-infra tasks it waits for
/// (`None`: it names none, so it waits for all of shared infra). A bare name is looked up among
/// the flows, the deploys and the port-forwards (a deploy and a forward of one name: both);
/// `flow:`, `deploy:` or `port-forward:` picks one when a flow shares the name.
fn flow_needs(
    file: &File,
    me: &str,
    needs: &[String],
    flows: &[String],
    at: &str,
) -> Result<(Vec<String>, Option<Vec<String>>)> {
    let deploys: Vec<&str> = file.deploys.iter().map(|d| d.name.as_str()).collect();
    let forwards: Vec<&str> = file.forwards.iter().map(|f| f.name.as_str()).collect();
    let (mut after, mut infra) = (Vec::new(), Vec::new());
    for need in needs {
        let (kind, name) = match need.split_once(':') {
            Some((k @ ("flow" | "deploy" | "port-forward"), n)) => (Some(k), n),
            _ => (None, need.as_str()),
        };
        let mut found: Vec<(&str, String)> = Vec::new();
        if kind.is_none_or(|k| k == "flow") && flows.iter().any(|f| f == name) && name != me {
            found.push(("flow", name.to_string()));
        }
        if kind.is_none_or(|k| k == "deploy") && deploys.contains(&name) {
            found.push(("deploy", format!("deploy:{name}")));
        }
        if kind.is_none_or(|k| k == "port-forward") && forwards.contains(&name) {
            found.push(("port-forward", format!("forward:{name}")));
        }
        match found.as_slice() {
            [] => bail!(
                "{at}: {need:?} is no other flow, deploy or port-forward (flows: {}; deploys: {}; port-forwards: {})",
                flows.iter().filter(|f| *f != me).cloned().collect::<Vec<_>>().join(", "),
                deploys.join(", "),
                forwards.join(", ")
            ),
            [("flow", n)] => after.push(n.clone()),
            [(_, id)] => infra.push(id.clone()),
            // A deploy and its forward share a name (`gitea`): the flow needs both, up and reachable.
            [("deploy", deploy), ("port-forward", forward)] => {
                infra.push(deploy.clone());
                infra.push(forward.clone());
            }
            several => bail!(
                "{at}: {need:?} names a {}: spell out which ({})",
                several.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" and a "),
                several.iter().map(|(k, _)| format!("\"{k}:{name}\"")).collect::<Vec<_>>().join(" or ")
            ),
        }
    }
    Ok((after, (!infra.is_empty()).then_some(infra)))
}

/// A cycle among the flows' `needs`, as the names around it (the first repeated at the end), or
/// None. Depth-first with an explicit stack: as deep as the definition is long, never the
/// thread's stack.
fn needs_cycle(flows: &[Flow]) -> Option<Vec<String>> {
    let index = |name: &str| flows.iter().position(|f| f.name == name);
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; flows.len()];
    for start in 0..flows.len() {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let need = flows[node].needs.get(*next).and_then(|n| index(n));
            *next += 1;
            match need {
                Some(dep) if state[dep] == 1 => {
                    let from = path.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                    let mut names: Vec<String> =
                        path[from..].iter().map(|(n, _)| flows[*n].name.clone()).collect();
                    names.push(flows[dep].name.clone());
                    return Some(names);
                }
                Some(dep) if state[dep] == 0 => {
                    state[dep] = 1;
                    path.push((dep, 0));
                }
                Some(_) => {}
                None if *next > flows[node].needs.len() => {
                    state[node] = 2;
                    path.pop();
                }
                None => {}
            }
        }
    }
    None
}

/// `${GIT_SHA}` (the checkout's commit, 12 hex digits, asked of git once and only when named) in
/// image tags, build args, prebuild commands and helm `set` values; then the tags' other
/// `${VAR}`s from the environment, strictly (a tag is fixed before anything runs: loads and
/// charts name it). Build args, prebuild arguments and `set` values keep their other variables
/// for when they run (`${NODE_*}` is known only then).
fn template_images(file: &mut File, shown: &str, root: &Path) -> Result<()> {
    const SHA: &str = "${GIT_SHA}";
    let mut fields: Vec<&mut String> = Vec::new();
    for img in &mut file.images {
        fields.push(&mut img.tag);
        fields.extend(img.build_args.values_mut());
        fields.extend(img.prebuild.iter_mut().flatten());
        fields.extend(img.prebuild_env.values_mut());
        fields.extend(img.env.values_mut());
    }
    for d in &mut file.deploys {
        if let Some(h) = &mut d.helm {
            fields.extend(h.set.values_mut());
        }
    }
    for f in &mut file.flows {
        fields.extend(f.steps.iter_mut().flatten());
    }
    if fields.iter().any(|f| f.contains(SHA)) {
        let sha = git_sha(root).with_context(|| format!("{shown}: ${{GIT_SHA}} is used"))?;
        for f in fields {
            // `$${GIT_SHA}` is the escape for a literal `${GIT_SHA}`: left for expand_strict.
            let mut out = String::new();
            let mut rest = f.as_str();
            while let Some(at) = rest.find(SHA) {
                let escaped = rest[..at].ends_with('$');
                out.push_str(&rest[..at]);
                out.push_str(if escaped { SHA } else { &sha });
                rest = &rest[at + SHA.len()..];
            }
            out.push_str(rest);
            *f = out;
        }
    }
    let mut vars = crate::vars::process_env();
    // `${DIGEST}` stays for the build, which knows it.
    vars.push(("DIGEST".into(), "${DIGEST}".into()));
    for (i, img) in file.images.iter_mut().enumerate() {
        if img.tag.contains("${") {
            img.tag = crate::vars::expand_strict(&img.tag, &vars)
                .map_err(|e| anyhow::anyhow!("{shown}: image[{i}] ({}).tag: {e}", img.name))?;
        }
    }
    Ok(())
}

/// The commit checked out at `root`, as image tags carry it.
fn git_sha(root: &Path) -> Result<String> {
    let sh = xshell::Shell::new()?;
    let out = crate::exec::cmd(xshell::cmd!(sh, "git -C {root} rev-parse --short=12 HEAD"))
        .run()
        .with_context(|| {
            format!("asking git for the commit of {} (is it a git checkout with a commit?)", root.display())
        })?;
    let sha = out.stdout.trim().to_string();
    if sha.is_empty() || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`git rev-parse --short=12 HEAD` in {} printed {sha:?}, not a commit", root.display());
    }
    Ok(sha)
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The definition's sections as one graph: builds → cluster → loads → deploys.
fn build(file: File, shown: &str, paths: &Paths) -> Result<Vec<Task>> {
    let at = Section { shown, paths };
    let mut tasks = at.image_builds(&file.images)?;
    let builds: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    tasks.push(at.cluster(&file.cluster, builds)?);
    tasks.extend(file.images.iter().filter(|i| i.load).map(|img| Task {
        retries: img.load_retries,
        ..Task::new(
            &format!("load:{}", img.name),
            vec!["cluster".into(), format!("build:{}", img.name)],
            Action::Load {
                image: img.name.clone(),
                tag: img.tag.clone(),
                cluster: file.cluster.name.clone(),
                registry: file.cluster.registry.clone().filter(|_| file.cluster.provider == "existing"),
            },
            Duration::from_secs(600),
        )
    }));
    let loaded: BTreeMap<&str, bool> = file.images.iter().map(|i| (i.name.as_str(), i.load)).collect();
    let deploy_names: Vec<&str> = file.deploys.iter().map(|d| d.name.as_str()).collect();
    for (i, d) in file.deploys.iter().enumerate() {
        tasks.push(at.deploy(&format!("deploy[{i}] ({})", d.name), d, &loaded, &deploy_names)?);
    }
    crate::pipeline::validate(&tasks).map_err(|e| anyhow::anyhow!("{shown}: deploy needs: {e}"))?;
    Ok(tasks)
}

/// Where a definition's relative paths are looked up: the repository root first, then the
/// definition's own directory.
struct Paths {
    root: PathBuf,
    dir: PathBuf,
}

impl Paths {
    /// Where a glob's literal part (`test/demo` of `test/demo/**`) exists: the repository root,
    /// else the definition's directory.
    fn glob_base(&self, glob: &str) -> Result<PathBuf, String> {
        let prefix = crate::e2e::setup::incremental::literal_prefix(glob);
        if glob.split('/').any(|s| s == "..") || glob.starts_with('/') {
            return Err(format!("{glob:?}: inputs are globs inside the repository (no `..`, not absolute)"));
        }
        self.locate(Path::new(if prefix.is_empty() { "." } else { &prefix }))
            .map(|_| if self.root.join(&prefix).exists() { self.root.clone() } else { self.dir.clone() })
            .map_err(|e| format!("{glob:?}: {e}"))
    }

    /// The first of root/p, dir/p that exists; the error says where it looked.
    fn locate(&self, p: &Path) -> Result<PathBuf, String> {
        for base in [&self.root, &self.dir] {
            let abs = base.join(p);
            if abs.exists() {
                return Ok(abs);
            }
        }
        let looked = if self.root == self.dir || p.is_absolute() {
            format!("paths are relative to the repository root {}", self.root.display())
        } else {
            format!(
                "looked in the repository root {} and the definition's directory {}",
                self.root.display(),
                self.dir.display()
            )
        };
        Err(format!("{} does not exist ({looked})", p.display()))
    }
}

/// Reading one section of a definition file: errors name the file (`shown`) and the key; paths
/// are found by [`Paths::locate`].
struct Section<'a> {
    shown: &'a str,
    paths: &'a Paths,
}

impl Section<'_> {
    fn duration(&self, key: &str, v: &str) -> Result<Duration> {
        parse_timeout(v).map_err(|e| anyhow::anyhow!("{}: {key}: {e}", self.shown))
    }

    fn existing(&self, key: &str, p: &Path) -> Result<PathBuf> {
        self.paths.locate(p).map_err(|e| anyhow::anyhow!("{}: {key}: {e}", self.shown))
    }

    /// `[[image]]`: one build task each, names unique DNS labels.
    fn image_builds(&self, images: &[ImageDef]) -> Result<Vec<Task>> {
        let shown = self.shown;
        let mut tasks = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, img) in images.iter().enumerate() {
            let key = format!("image[{i}] ({})", img.name);
            if !dns_label(&img.name) {
                bail!("{shown}: {key}.name: use lowercase letters, digits and '-'");
            }
            if !names.insert(img.name.clone()) {
                bail!("{shown}: {key}.name: two images are named {:?}", img.name);
            }
            if img.tag.is_empty() || img.tag.contains(char::is_whitespace) {
                bail!("{shown}: {key}.tag: {:?} is not an image reference", img.tag);
            }
            if img.prebuild.iter().any(|c| c.is_empty()) {
                bail!("{shown}: {key}.prebuild: a command is empty");
            }
            let action = Action::Build {
                name: img.name.clone(),
                tag: img.tag.clone(),
                dockerfile: self.existing(&format!("{key}.dockerfile"), &img.dockerfile)?,
                context: self.existing(&format!("{key}.context"), &img.context)?,
                build_args: img.build_args.clone().into_iter().collect(),
                prebuild: img.prebuild.clone(),
                prebuild_env: img.prebuild_env.clone().into_iter().collect(),
                env: img.env.clone().into_iter().collect(),
                inputs: img
                    .inputs
                    .iter()
                    .map(|glob| {
                        self.paths
                            .glob_base(glob)
                            .map(|base| (base, glob.clone()))
                            .map_err(|e| anyhow::anyhow!("{shown}: {key}.inputs: {e}"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            };
            let timeout = self.duration(&format!("{key}.timeout"), &img.timeout)?;
            tasks.push(Task::new(&format!("build:{}", img.name), Vec::new(), action, timeout));
        }
        Ok(tasks)
    }

    /// `[cluster]`: after every build (a kind node never idles through slow builds).
    fn cluster(&self, cluster: &ClusterDef, builds: Vec<String>) -> Result<Task> {
        if !dns_label(&cluster.name) {
            bail!(
                "{}: cluster.name: {:?} is not a valid kind cluster name (lowercase letters, digits, '-')",
                self.shown,
                cluster.name
            );
        }
        let config = match &cluster.config {
            Some(c) => Some(self.existing("cluster.config", c)?),
            None => None,
        };
        let action = Action::Cluster {
            name: cluster.name.clone(),
            config,
            wait: self.duration("cluster.wait", &cluster.wait)?,
            existing: cluster.context.clone().filter(|_| cluster.provider == "existing"),
        };
        Ok(Task::new("cluster", builds, action, self.duration("cluster.timeout", &cluster.timeout)?))
    }

    /// One `[[deploy]]`: after the cluster, its images' loads and the deploys it needs.
    fn deploy(
        &self,
        key: &str,
        d: &DeployDef,
        loaded: &BTreeMap<&str, bool>,
        deploy_names: &[&str],
    ) -> Result<Task> {
        let shown = self.shown;
        if !dns_label(&d.name) {
            bail!("{shown}: {key}.name: use lowercase letters, digits and '-'");
        }
        if deploy_names.iter().filter(|n| **n == d.name).count() > 1 {
            bail!("{shown}: {key}.name: two deploys are named {:?}", d.name);
        }
        let mut deps = vec!["cluster".to_string()];
        for img in &d.images {
            match loaded.get(img.as_str()) {
                Some(true) => deps.push(format!("load:{img}")),
                Some(false) => bail!(
                    "{shown}: {key}.images: image {img:?} has load = false, so it is never in the cluster"
                ),
                None => bail!(
                    "{shown}: {key}.images: unknown image {img:?} (known: {})",
                    loaded.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            }
        }
        for need in &d.needs {
            if !deploy_names.contains(&need.as_str()) {
                bail!("{shown}: {key}.needs: unknown deploy {need:?} (known: {})", deploy_names.join(", "));
            }
            deps.push(format!("deploy:{need}"));
        }
        if let Some(ns) = &d.namespace {
            if !dns_label(ns) {
                bail!("{shown}: {key}.namespace: {ns:?} is not a valid namespace");
            }
        }
        let kinds = usize::from(d.helm.is_some())
            + usize::from(!d.manifests.is_empty())
            + usize::from(!d.command.is_empty());
        if kinds != 1 {
            bail!("{shown}: {key}: give exactly one of helm, manifests or command");
        }
        if d.template && d.manifests.is_empty() {
            bail!("{shown}: {key}.template: only manifests are templated (helm `set` values always are)");
        }
        let timeout = self.duration(&format!("{key}.timeout"), &d.timeout)?;
        // `wait` is honoured on every kind of deploy (a key is honoured or refused, never ignored).
        let waits = d
            .wait
            .iter()
            .map(|w| {
                Ok(Wait {
                    resource: w.resource.clone(),
                    condition: w.condition.clone(),
                    namespace: w.namespace.clone(),
                    timeout: self.duration(&format!("{key}.wait"), &w.timeout)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (action, retries) = if let Some(h) = &d.helm {
            let namespace = d
                .namespace
                .clone()
                .ok_or_else(|| anyhow::anyhow!("{shown}: {key}.namespace: helm deploys need a namespace"))?;
            let values = h
                .values
                .iter()
                .map(|v| self.existing(&format!("{key}.helm.values"), v))
                .collect::<Result<Vec<_>>>()?;
            let action = Action::Helm {
                release: h.release.clone().unwrap_or_else(|| d.name.clone()),
                chart: h.chart.clone(),
                repo: h.repo.clone(),
                version: h.version.clone(),
                namespace,
                values,
                set: h.set.clone().into_iter().collect(),
                timeout,
                waits,
            };
            (action, 2) // chart fetches flake
        } else if !d.manifests.is_empty() {
            // A file (relative to the repository) or an http(s) URL, as `kubectl apply -f` takes
            // (cert-manager installs from its release URL).
            let mut files = Vec::new();
            for m in &d.manifests {
                let text = m.to_string_lossy();
                if text.starts_with("https://") || text.starts_with("http://") {
                    files.push(m.clone());
                    continue;
                }
                let found = self.existing(&format!("{key}.manifests"), m)?;
                if found.is_dir() {
                    // As `kubectl apply -f DIR` reads it: its .json/.yaml/.yml files, in name order.
                    let listed =
                        manifest_dir(&found).map_err(|e| anyhow::anyhow!("{shown}: {key}.manifests: {e}"))?;
                    files.extend(listed.into_iter().map(|f| found.join(f)));
                } else {
                    files.push(found);
                }
            }
            (Action::Manifests { files, namespace: d.namespace.clone(), waits, template: d.template }, 0)
        } else {
            (Action::Command { argv: d.command.clone(), namespace: d.namespace.clone(), waits }, 0)
        };
        Ok(Task {
            retries: d.retries.unwrap_or(retries),
            ..Task::new(&format!("deploy:{}", d.name), deps, action, timeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<StepDef> {
        let def: CheckDef = crate::toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let paths = Paths { root: "/nonexistent-root".into(), dir: "/nonexistent-root/test".into() };
        def.step("quickstart.check[0]", &paths)
    }

    #[test]
    fn quickstart_checks_say_exactly_one_thing_and_only_with_their_own_keys() {
        use crate::e2e::definition::check_steps::{GitState, Step};
        let step =
            check("git-file = \"a.txt\"\nstate = \"contains\"\ntext = \"v1\"\ntimeout = \"30s\"").unwrap();
        assert!(
            matches!(&step.step, Step::GitFile { state: GitState::Contains(t), new_commit: true, after: None, .. } if t == "v1")
        );
        assert_eq!(step.timeout, Some(Duration::from_secs(30)));
        assert!(
            matches!(check("exists = \"validatingwebhookconfiguration/w\"").unwrap().step, Step::Exists(o) if o == "validatingwebhookconfiguration/w")
        );
        assert!(
            matches!(check("delete = \"configmap/c\"").unwrap().step, Step::Delete(o) if o == "configmap/c")
        );
        let step =
            check("condition = \"gitprovider/bad\"\nstatus = \"False\"\nmessage = \"auth.*\"").unwrap();
        assert!(
            matches!(&step.step, Step::Condition { kind, expect, .. } if kind == "Ready" && expect.status == "False")
        );
        let errors = [
            ("", "say what to check"),
            ("rollout = \"a\"\npromql = \"up\"", "one check per entry, this one has rollout, promql"),
            (
                "rollout = \"a\"\nreason = \"X\"",
                "`reason` belongs to a condition check, this is a rollout check",
            ),
            ("git-file = \"a\"\nstate = \"contains\"", "state \"contains\" needs `text`"),
            ("git-file = \"a\"\nstate = \"gone\"", "\"gone\" is not one of present"),
            ("git-file = \"a\"\ntext = \"x\"", "`text` goes with state contains"),
            ("condition = \"a/b\"\nmessage = \"(\"", "is not a regex"),
            ("promql = \"up\"\nexpect = \"big\"", "write `> 0`"),
            ("git-no-secret = \"a\"\nsecret-env = []", "say which secrets must not show"),
            ("git-no-secret = \"a\"", "`secret-values` (test secrets"),
            ("rollout = \"a\"\nsecret-values = [\"x\"]", "`secret-values` belongs to a git-no-secret check"),
            ("apply = \"missing.yaml\"", "missing.yaml does not exist"),
            ("rollout = \"a\"\ntimeout = \"soon\"", "quickstart.check[0].timeout"),
        ];
        for (text, want) in errors {
            let err = check(text).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // An unknown key is refused by name, never ignored.
        assert!(check("rollout = \"a\"\nwait = \"1m\"")
            .unwrap_err()
            .to_string()
            .contains("unknown field `wait`"));
    }
}
