//! Test support for the xtask.
//!
//! [`FakeToolchain`] puts fake `docker`, `kind`, `helm` and `kubectl` first on a `PATH` and reads
//! back the journal of their calls. A test needs only a few lines:
//!
//! ```ignore
//! let fake = FakeToolchain::new(env!("CARGO_BIN_EXE_fake-tool"))?;
//! fake.rule(Rule::new("kind", "^create cluster").delay_ms(200))?;
//! // run xtask with PATH = fake.path_env()
//! let calls = fake.journal()?;
//! ```
#![allow(clippy::disallowed_methods)]

#[path = "../base64.rs"]
mod base64;
pub mod gitea;
pub mod kube_api;
pub mod prometheus;
pub mod real;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The tools the fake stands in for.
pub const FAKE_TOOLS: &[&str] = &["docker", "kind", "helm", "kubectl"];

/// A scenario rule: what a fake tool does when its args match.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Rule {
    pub tool: String,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub delay_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    pub sleep_children: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real: Option<String>,
}

impl Rule {
    /// A rule for `tool` whose space-joined args match the regex `pattern`.
    pub fn new(tool: &str, pattern: &str) -> Rule {
        Rule { tool: tool.into(), pattern: Some(pattern.into()), ..Rule::default() }
    }
    pub fn delay_ms(mut self, ms: u64) -> Rule {
        self.delay_ms = ms;
        self
    }
    pub fn exit(mut self, code: i32) -> Rule {
        self.exit = Some(code);
        self
    }
    pub fn stdout(mut self, text: &str) -> Rule {
        self.stdout = Some(text.into());
        self
    }
    pub fn stderr(mut self, text: &str) -> Rule {
        self.stderr = Some(text.into());
        self
    }
    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }
    pub fn sleep_children(mut self, n: u32) -> Rule {
        self.sleep_children = n;
        self
    }
    /// Run the real program at `path` for these calls (same argv and stdin): a verb the real
    /// client can do here, such as `helm template`, while the call is still journaled.
    pub fn real(mut self, path: impl AsRef<Path>) -> Rule {
        self.real = Some(path.as_ref().display().to_string());
        self
    }
}

#[derive(Serialize, Default)]
struct Scenario {
    rules: Vec<Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    real_kustomize: Option<String>,
    real_docker_inspect: bool,
    forwards: BTreeMap<String, String>,
    contexts: Vec<String>,
    current_context: Option<String>,
    removed_contexts: Vec<String>,
    platform: Option<String>,
    containerd_store: bool,
    objects: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    real_kubectl: Option<String>,
}

/// One journaled call of a fake tool.
#[derive(Deserialize, Debug, Clone)]
pub struct Call {
    pub tool: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub pid: u32,
    pub pgid: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub exit: i32,
    pub stdin: Option<String>,
}

impl Call {
    /// `kind create cluster --name x`.
    pub fn line(&self) -> String {
        format!("{} {}", self.tool, self.argv.join(" "))
    }
    /// True when both calls were running at some same instant.
    pub fn overlaps(&self, other: &Call) -> bool {
        self.start_ns < other.end_ns && other.start_ns < self.end_ns
    }
}

/// A call as it started (written before any delay, so killed calls appear here too).
#[derive(Deserialize, Debug, Clone)]
pub struct Started {
    pub tool: String,
    pub argv: Vec<String>,
    pub pid: u32,
    pub pgid: i32,
}

/// A directory of fake tools, its scenario and its journal. Removed on drop.
pub struct FakeToolchain {
    dir: tempfile::TempDir,
    scenario: std::cell::RefCell<Scenario>,
}

impl FakeToolchain {
    /// `fake_bin` is the fake-tool binary: `env!("CARGO_BIN_EXE_fake-tool")` in xtask's tests.
    pub fn new(fake_bin: impl AsRef<Path>) -> Result<FakeToolchain> {
        FakeToolchain::with_tools(fake_bin, FAKE_TOOLS)
    }

    /// Only these tools are faked (e.g. leave `docker` to the real engine).
    pub fn with_tools(fake_bin: impl AsRef<Path>, tools: &[&str]) -> Result<FakeToolchain> {
        let dir = tempfile::Builder::new().prefix("fake-toolchain-").tempdir()?;
        let bin = dir.path().join("bin");
        fs::create_dir(&bin)?;
        for tool in tools {
            let script = format!(
                "#!/bin/sh\nexec '{}' --fake-dir '{}' {tool} \"$@\"\n",
                fake_bin.as_ref().display(),
                dir.path().display()
            );
            let path = bin.join(tool);
            fs::write(&path, script)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
        let fake = FakeToolchain { dir, scenario: Default::default() };
        fake.save()?;
        Ok(fake)
    }

    /// Fakes for docker and kind only: the real kubectl and helm (see [`real`]) come from the
    /// machine's PATH, and `kind create cluster` writes a kubeconfig whose `kind-<name>` context
    /// points at `api` (kind's merge, done by the real kubectl). The node of that cluster holds
    /// only what `kind load` put there: other images do not start on `api`. The kubeconfig is
    /// written by `kind create cluster` only: [`FakeToolchain::with_cluster`] (a cluster that
    /// already exists) and the scenario's contexts ([`FakeToolchain::with_current_context`]) do
    /// not reach the file the real clients read; a test writes those entries itself.
    pub fn with_real_clients(
        fake_bin: impl AsRef<Path>,
        api: &kube_api::KubeApi,
        cluster: &str,
    ) -> Result<FakeToolchain> {
        let fake = FakeToolchain::with_tools(fake_bin, &["docker", "kind"])?;
        {
            let mut scenario = fake.scenario.borrow_mut();
            scenario.api_server = Some(api.url());
            scenario.real_kubectl = Some(real::kubectl().display().to_string());
        }
        fake.save()?;
        api.images_loaded_in(&fake.dir().join("state.json"), cluster);
        Ok(fake)
    }

    /// The program `tool` names on [`FakeToolchain::path_env`] (the first executable file), as a
    /// shell would find it.
    pub fn which(&self, tool: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path_env())
            .map(|d| d.join(tool))
            .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    /// The directory holding the scenario, journal and state.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of the fake executables.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// `PATH` with the fakes first, then the current `PATH` (real git, ssh-keygen, docker for
    /// `real_docker_inspect`).
    pub fn path_env(&self) -> OsString {
        let mut paths = vec![self.bin_dir()];
        if let Some(current) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&current));
        }
        std::env::join_paths(paths).unwrap_or_default()
    }

    /// Adds a rule (rules are tried in the order they were added).
    pub fn rule(&self, rule: Rule) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().rules.push(rule);
        self.save()?;
        Ok(self)
    }

    /// Lets `kind load docker-image` accept images the real Docker engine has.
    pub fn real_docker_inspect(&self, yes: bool) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().real_docker_inspect = yes;
        self.save()?;
        Ok(self)
    }

    /// `kubectl apply -k DIR` is rendered by the real kubectl's `kustomize DIR` first: it fails as
    /// the real apply would when kustomize refuses the overlay, and what it rendered is kept
    /// ([`FakeToolchain::kustomized`]).
    pub fn real_kustomize(&self, kubectl: impl AsRef<Path>) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().real_kustomize = Some(kubectl.as_ref().display().to_string());
        self.save()?;
        Ok(self)
    }

    /// What the real kustomize rendered for each `kubectl apply -k`, in order.
    pub fn kustomized(&self) -> Vec<String> {
        let dir = self.dir.path().join("kustomized");
        (0..).map(|n| dir.join(format!("{n}.yaml"))).map_while(|p| fs::read_to_string(p).ok()).collect()
    }

    /// `kubectl port-forward TARGET ...` proxies to `backend` (`127.0.0.1:N`) instead of answering
    /// 200 to everything.
    pub fn forward(&self, target: &str, backend: &str) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().forwards.insert(target.into(), backend.into());
        self.save()?;
        Ok(self)
    }

    /// A context in the kubeconfig that is not a kind cluster of ours, made the current one: what
    /// a call without `--context` would reach (a user's production cluster).
    pub fn with_current_context(&self, context: &str) -> Result<&FakeToolchain> {
        {
            let mut scenario = self.scenario.borrow_mut();
            scenario.contexts.push(context.into());
            scenario.current_context = Some(context.into());
        }
        self.save()?;
        Ok(self)
    }

    /// The kubeconfig lost this context although its cluster runs (another tool rewrote it).
    pub fn without_context(&self, context: &str) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().removed_contexts.push(context.into());
        self.save()?;
        Ok(self)
    }

    /// The Docker engine runs on this platform (`linux/arm64`).
    pub fn platform(&self, platform: &str) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().platform = Some(platform.into());
        self.save()?;
        Ok(self)
    }

    /// Docker uses the containerd image store (kind#3795).
    pub fn containerd_store(&self) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().containerd_store = true;
        self.save()?;
        Ok(self)
    }

    /// A context in the kubeconfig besides kind's (a shared cluster's), not the current one.
    pub fn with_context(&self, context: &str) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().contexts.push(context.into());
        self.save()?;
        Ok(self)
    }

    /// kubectl keeps objects like an API server (apply, get, delete, status patches): the world
    /// an operator and the checks share.
    pub fn with_objects(&self) -> Result<&FakeToolchain> {
        self.scenario.borrow_mut().objects = true;
        self.save()?;
        Ok(self)
    }

    /// Pretends the Docker engine has this image (a prebuilt one CI handed in).
    pub fn with_image(&self, tag: &str) -> Result<&FakeToolchain> {
        let path = self.dir.path().join("state.json");
        let mut state: serde_json::Value = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let mut images = state["images"].as_array().cloned().unwrap_or_default();
        images.push(tag.into());
        state["images"] = images.into();
        fs::write(&path, state.to_string())?;
        Ok(self)
    }

    /// Pretends a kind cluster already exists.
    pub fn with_cluster(&self, name: &str) -> Result<&FakeToolchain> {
        let path = self.dir.path().join("state.json");
        let mut state: serde_json::Value = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let clusters = state["clusters"].as_array().cloned().unwrap_or_default();
        let mut clusters: Vec<serde_json::Value> = clusters;
        clusters.push(name.into());
        state["clusters"] = clusters.into();
        fs::write(&path, state.to_string())?;
        Ok(self)
    }

    fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&*self.scenario.borrow())?;
        fs::write(self.dir.path().join("scenario.json"), text).context("writing scenario.json")
    }

    /// Every finished call, in the order they finished.
    pub fn journal(&self) -> Result<Vec<Call>> {
        read_lines(&self.dir.path().join("journal.jsonl"))
    }

    /// Every call as it started, including ones that were killed.
    pub fn started(&self) -> Result<Vec<Started>> {
        read_lines(&self.dir.path().join("started.jsonl"))
    }
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in {}: {l}", path.display())))
        .collect()
}

/// True when a process with this pid still exists (zombies count as gone).
pub fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Pids of live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return out };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the command name: state ppid pgrp ...
        let rest: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if rest.len() > 2 && rest[0] != "Z" && rest[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}
