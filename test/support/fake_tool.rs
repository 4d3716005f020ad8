//! The fake `docker`, `kind`, `helm` and `kubectl` for tests (kind, helm and a Kubernetes API
//! cannot run on the test machines; docker builds can, and tests use the real engine for them).
//!
//! Invoked by the wrapper scripts that `testkit::FakeToolchain` writes:
//! `fake-tool --fake-dir DIR TOOL ARGS...`. `DIR` holds:
//! - `scenario.json`: rules `{tool, match (regex on the space-joined args), delay_ms, exit, stdout,
//!   stderr, times, sleep_children}`; the first matching rule applies. `exit`/`stdout`/`stderr`
//!   replace the built-in behaviour; a rule with only `delay_ms` delays it. `times` limits a rule
//!   to its first N matches (flaky steps). `real_docker_inspect: true` lets `kind load` accept
//!   images the real engine has.
//! - `journal.jsonl`: one line per finished call (argv, cwd, E2E_* env, monotonic start/end in
//!   ns, pid, exit, and stdin when it carries a manifest).
//! - `started.jsonl`: one line per call as it starts (pid, pgid), for calls that get killed.
//! - `state.json`: what the fake world holds (clusters, built images, rule counters).
//!
//! This is test support standing in for external programs; it is not part of the xtask and the
//! exec-layer rule does not apply to it (it calls the real docker engine for `image inspect`).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use xtask_lint::value::{FromValue, Table, ToValue};

#[path = "base64.rs"]
mod base64;
#[path = "fake_charts.rs"]
mod charts;
#[path = "fake_kube.rs"]
mod kube;

#[derive(Default)]
struct Scenario {
    rules: Vec<Rule>,
    /// The real kubectl: `kubectl apply -k DIR` is rendered by its `kustomize DIR` first (and
    /// fails as the real apply would when kustomize refuses the overlay).
    real_kustomize: Option<String>,
    real_docker_inspect: bool,
    /// `kubectl port-forward` targets (`svc/gitea-http`) proxied to a real backend (`127.0.0.1:N`);
    /// targets not listed answer every HTTP request with 200.
    forwards: BTreeMap<String, String>,
    /// Contexts in the kubeconfig besides the kind clusters' (`prod-cluster`).
    contexts: Vec<String>,
    /// The user's current context (what a call without `--context` would reach).
    current_context: Option<String>,
    /// Contexts removed from the kubeconfig although their kind cluster runs.
    removed_contexts: Vec<String>,
    /// The Docker engine's platform (`docker version --format {{.Server.Os}}/{{.Server.Arch}}`).
    platform: Option<String>,
    /// Docker's containerd image store: `kind load docker-image`, and an image archive holding
    /// every platform, fail on import; an archive of the node's platform loads.
    containerd_store: bool,
    /// kubectl keeps objects (`fake_kube.rs`): apply, get, delete and status patches act on them.
    objects: bool,
    /// The test API server (`testkit::kube_api`) a kind cluster's kubeconfig points at, and the
    /// real kubectl that writes that kubeconfig: `kind create cluster` merges its context into the
    /// kubeconfig as kind does, so the real kubectl and helm on PATH talk to that server.
    api_server: Option<String>,
    real_kubectl: Option<String>,
}

#[derive(Default)]
struct Rule {
    tool: String,
    pattern: Option<String>,
    delay_ms: u64,
    exit: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
    times: Option<u32>,
    /// Children (`sleep`) to start in our process group while delaying: tests of group kills.
    sleep_children: u32,
    /// The real program to run instead (same argv and stdin; its output and exit are the reply):
    /// a verb the real client can do here (`helm template`), journaled like any call.
    real: Option<String>,
}

#[derive(Default)]
struct State {
    clusters: Vec<String>,
    images: Vec<String>,
    rule_hits: BTreeMap<usize, u32>,
    /// Services the modelled charts made: `namespace/name` → how port-forwards resolve them.
    services: BTreeMap<String, charts::Service>,
    /// The API server's objects, when the scenario keeps them.
    objects: kube::Objects,
    /// Image ID per tag: each build makes a new image, `docker tag` shares one.
    image_ids: BTreeMap<String, String>,
    builds: u64,
    /// Each cluster's kube-system namespace UID, new with each `kind create cluster`.
    cluster_uids: BTreeMap<String, String>,
    clusters_made: u64,
    /// Helm releases (`<cluster>/<namespace>/<release>` → chart).
    releases: BTreeMap<String, String>,
    /// Their release labels (`helm upgrade --labels k=v,…`), which `helm list --selector` reads.
    release_labels: BTreeMap<String, String>,
    /// What `docker push` sent to registries (references).
    pushed: Vec<String>,
    /// The images `kind load` put on each cluster's node (what its pods may start).
    node_images: BTreeMap<String, Vec<String>>,
}

impl FromValue for Scenario {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let s = Scenario {
            rules: t.or_default("rules")?,
            real_docker_inspect: t.or_default("real_docker_inspect")?,
            forwards: t.or_default("forwards")?,
            contexts: t.or_default("contexts")?,
            current_context: t.opt("current_context")?,
            removed_contexts: t.or_default("removed_contexts")?,
            platform: t.opt("platform")?,
            containerd_store: t.or_default("containerd_store")?,
            objects: t.or_default("objects")?,
            real_kustomize: t.opt("real_kustomize")?,
            api_server: t.opt("api_server")?,
            real_kubectl: t.opt("real_kubectl")?,
        };
        t.done()?;
        Ok(s)
    }
}

impl FromValue for Rule {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let r = Rule {
            tool: t.req("tool")?,
            pattern: t.opt("match")?,
            delay_ms: t.or_default("delay_ms")?,
            exit: t.opt("exit")?,
            stdout: t.opt("stdout")?,
            stderr: t.opt("stderr")?,
            times: t.opt("times")?,
            sleep_children: t.or_default("sleep_children")?,
            real: t.opt("real")?,
        };
        t.done()?;
        Ok(r)
    }
}

impl FromValue for State {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let hits: BTreeMap<String, u32> = t.or_default("rule_hits")?;
        let mut rule_hits = BTreeMap::new();
        for (k, n) in hits {
            rule_hits.insert(k.parse().map_err(|_| format!("rule_hits: {k:?} is not a rule index"))?, n);
        }
        Ok(State {
            clusters: t.or_default("clusters")?,
            images: t.or_default("images")?,
            rule_hits,
            services: t.or_default("services")?,
            objects: t.or_default("objects")?,
            image_ids: t.or_default("image_ids")?,
            builds: t.or_default("builds")?,
            cluster_uids: t.or_default("cluster_uids")?,
            clusters_made: t.or_default("clusters_made")?,
            releases: t.or_default("releases")?,
            release_labels: t.or_default("release_labels")?,
            pushed: t.or_default("pushed")?,
            node_images: t.or_default("node_images")?,
        })
    }
}

impl ToValue for State {
    fn to_value(&self) -> Value {
        json!({
            "clusters": self.clusters, "images": self.images, "rule_hits": self.rule_hits,
            "services": self.services.to_value(), "objects": self.objects.to_value(), "image_ids": self.image_ids,
            "builds": self.builds, "cluster_uids": self.cluster_uids, "clusters_made": self.clusters_made,
            "releases": self.releases, "release_labels": self.release_labels, "pushed": self.pushed,
            "node_images": self.node_images,
        })
    }
}

struct Reply {
    exit: i32,
    stdout: String,
    stderr: String,
}

impl Reply {
    fn ok(stdout: impl Into<String>) -> Reply {
        Reply { exit: 0, stdout: stdout.into(), stderr: String::new() }
    }
    fn fail(stderr: impl Into<String>) -> Reply {
        Reply { exit: 1, stdout: String::new(), stderr: stderr.into() }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() >= 2 && args[0] == "--install" {
        return match install(Path::new(&args[1]), &args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fake-tool --install: {e}");
                ExitCode::from(3)
            }
        };
    }
    if args.len() < 3 || args[0] != "--fake-dir" {
        eprintln!("usage: fake-tool --fake-dir DIR TOOL ARGS...  |  fake-tool --install DIR [TOOL...]");
        return ExitCode::from(2);
    }
    let dir = PathBuf::from(&args[1]);
    let tool = args[2].clone();
    let argv: Vec<String> = args[3..].to_vec();
    match run(&dir, &tool, &argv) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("fake {tool}: {e}");
            ExitCode::from(3)
        }
    }
}

/// The tools faked when `--install` names none.
const TOOLS: &[&str] = &["docker", "kind", "helm", "kubectl"];

/// `fake-tool --install DIR [TOOL...]`: writes `DIR/bin/<tool>` wrappers that call this binary
/// with `--fake-dir DIR`, and an empty scenario. Put `DIR/bin` first on PATH.
fn install(dir: &Path, tools: &[String]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().map_err(|e| format!("locating fake-tool: {e}"))?;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    let tools: Vec<&str> =
        if tools.is_empty() { TOOLS.to_vec() } else { tools.iter().map(String::as_str).collect() };
    for tool in tools {
        let script =
            format!("#!/bin/sh\nexec '{}' --fake-dir '{}' {tool} \"$@\"\n", me.display(), dir.display());
        let path = bin.join(tool);
        fs::write(&path, script).map_err(|e| format!("writing {}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    let scenario = dir.join("scenario.json");
    if !scenario.exists() {
        fs::write(&scenario, "{\"rules\": []}\n").map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run(dir: &Path, tool: &str, argv: &[String]) -> Result<i32, String> {
    let start = monotonic_ns();
    let pid = std::process::id();
    // SAFETY: getpgrp has no preconditions.
    let pgid = unsafe { libc::getpgrp() };
    append_line(&dir.join("started.jsonl"), &json!({"tool": tool, "argv": argv, "pid": pid, "pgid": pgid}))?;

    let stdin = if reads_manifest(argv) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| e.to_string())?;
        Some(text)
    } else {
        None
    };

    let scenario: Scenario = match fs::read_to_string(dir.join("scenario.json")) {
        Ok(text) => xtask_lint::value::from_json(&text).map_err(|e| format!("bad scenario.json: {e}"))?,
        Err(_) => Scenario::default(),
    };
    let joined = argv.join(" ");
    let refusal = with_state(dir, |state| Ok(context_refusal(tool, argv, state, &scenario)))?;
    if let Some(reply) = refusal {
        return finish(dir, tool, argv, pid, pgid, start, stdin, reply);
    }
    let rule = with_state(dir, |state| {
        for (i, rule) in scenario.rules.iter().enumerate() {
            if rule.tool != tool {
                continue;
            }
            if let Some(pattern) = &rule.pattern {
                let re = regex::Regex::new(pattern).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
                if !re.is_match(&joined) {
                    continue;
                }
            }
            let hits = state.rule_hits.entry(i).or_insert(0);
            if rule.times.is_some_and(|t| *hits >= t) {
                continue;
            }
            *hits += 1;
            return Ok(Some(i));
        }
        Ok(None)
    })?
    .map(|i| &scenario.rules[i]);

    if let Some(rule) = rule {
        let mut children = Vec::new();
        for _ in 0..rule.sleep_children {
            let secs = (rule.delay_ms / 1000 + 1).to_string();
            if let Ok(child) = Command::new("sleep").arg(secs).stdin(Stdio::null()).spawn() {
                children.push(child);
            }
        }
        std::thread::sleep(Duration::from_millis(rule.delay_ms));
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    if let Some(real) = rule.and_then(|r| r.real.as_deref()) {
        let reply = run_real(real, argv, stdin.as_deref());
        return finish(dir, tool, argv, pid, pgid, start, stdin, reply);
    }
    if let (Some(real), "kubectl", Some("apply")) =
        (&scenario.real_kustomize, tool, argv.first().map(String::as_str))
    {
        if let Some(kdir) =
            argv.windows(2).find(|w| w[0] == "-k" || w[0] == "--kustomize").map(|w| w[1].clone())
        {
            let rendered = run_real(real, &["kustomize".to_string(), kdir], None);
            if rendered.exit != 0 {
                return finish(dir, tool, argv, pid, pgid, start, stdin, rendered);
            }
            let out = dir.join("kustomized");
            fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let n = fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
            fs::write(out.join(format!("{n}.yaml")), &rendered.stdout).map_err(|e| e.to_string())?;
        }
    }
    let overridden = rule.is_some_and(|r| r.exit.is_some() || r.stdout.is_some() || r.stderr.is_some());
    if tool == "kubectl" && argv.first().map(String::as_str) == Some("port-forward") && !overridden {
        let services = with_state(dir, |state| Ok(state.services.clone()))?;
        return port_forward(argv, &scenario, &services);
    }
    let reply = match rule {
        Some(rule) if rule.exit.is_some() || rule.stdout.is_some() || rule.stderr.is_some() => Reply {
            exit: rule.exit.unwrap_or(0),
            stdout: rule.stdout.clone().unwrap_or_default(),
            stderr: rule.stderr.clone().unwrap_or_default(),
        },
        // `kubectl wait --for=condition=…` on the store waits as the real one does, up to its
        // --timeout, for the condition (outside the state lock, so others can write status
        // meanwhile); nothing matching fails at once (see `kube::wait`).
        _ if tool == "kubectl" && scenario.objects && argv.first().is_some_and(|a| a == "wait") => {
            let timeout = argv
                .iter()
                .find_map(|a| a.strip_prefix("--timeout="))
                .and_then(|t| t.trim_end_matches('s').parse::<u64>().ok())
                .unwrap_or(30);
            let began = std::time::Instant::now();
            loop {
                let reply = with_state(dir, |state| {
                    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
                    Ok(kube::kubectl(&args, stdin.as_deref(), &mut state.objects)
                        .unwrap_or_else(|| builtin(tool, argv, state, &scenario)))
                })?;
                let waiting = reply.stderr.contains("timed out waiting for the condition");
                if !waiting || began.elapsed() >= Duration::from_secs(timeout) {
                    break reply;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        _ => with_state(dir, |state| {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let stored = match (tool, scenario.objects) {
                // The cluster's identity (kube-system's UID) is the cluster's, not a stored object's.
                ("kubectl", true) if !args.starts_with(&["get", "namespace", "kube-system"]) => {
                    kube::kubectl(&args, stdin.as_deref(), &mut state.objects)
                }
                _ => None,
            };
            Ok(stored.unwrap_or_else(|| builtin(tool, argv, state, &scenario)))
        })?,
    };

    finish(dir, tool, argv, pid, pgid, start, stdin, reply)
}

/// The real `program` with `argv` (and `stdin`), as the reply.
fn run_real(program: &str, argv: &[String], stdin: Option<&str>) -> Reply {
    let child = Command::new(program)
        .args(argv)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Reply { exit: 127, stdout: String::new(), stderr: format!("{program}: {e}\n") },
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) => Reply {
            exit: out.status.code().unwrap_or(1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => Reply { exit: 1, stdout: String::new(), stderr: format!("{program}: {e}\n") },
    }
}

/// Prints the reply and journals the call.
#[allow(clippy::too_many_arguments)]
fn finish(
    dir: &Path,
    tool: &str,
    argv: &[String],
    pid: u32,
    pgid: i32,
    start: u64,
    stdin: Option<String>,
    reply: Reply,
) -> Result<i32, String> {
    print!("{}", reply.stdout);
    eprint!("{}", reply.stderr);
    let _ = std::io::stdout().flush();
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("E2E_") || k.starts_with("DOCKER_") || k == "KUBECONFIG")
        .collect();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    append_line(
        &dir.join("journal.jsonl"),
        &json!({
            "tool": tool, "argv": argv, "cwd": cwd, "env": env, "pid": pid, "pgid": pgid,
            "start_ns": start, "end_ns": monotonic_ns(), "exit": reply.exit, "stdin": stdin,
        }),
    )?;
    Ok(reply.exit)
}

/// The contexts a kubeconfig would hold: kind writes `kind-<name>` for each cluster it creates
/// (kind `pkg/cluster/internal/kubeconfig`), plus any the scenario adds (a user's other clusters).
fn contexts(state: &State, scenario: &Scenario) -> Vec<String> {
    state
        .clusters
        .iter()
        .map(|c| format!("kind-{c}"))
        .chain(scenario.contexts.iter().cloned())
        .filter(|c| !scenario.removed_contexts.contains(c))
        .collect()
}

/// kubectl `--context X` / helm `--kube-context X` with X not in the kubeconfig: the real tools
/// refuse before talking to any cluster (and before any scenario rule could answer).
fn context_refusal(tool: &str, argv: &[String], state: &State, scenario: &Scenario) -> Option<Reply> {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let known = contexts(state, scenario);
    let (flag, talks_to_cluster) = match tool {
        "kubectl" => ("--context", !matches!(args.first(), Some(&"config") | Some(&"version"))),
        "helm" => ("--kube-context", !matches!(args.first(), Some(&"show") | Some(&"version"))),
        _ => return None,
    };
    let context = flag_values(&args, &[flag]).into_iter().next()?;
    if known.contains(&context) || !talks_to_cluster {
        return None;
    }
    Some(match tool {
        "kubectl" => Reply::fail(format!("error: context \"{context}\" does not exist\n")),
        _ => Reply::fail(format!(
            "Error: Kubernetes cluster unreachable: context \"{context}\" does not exist\n"
        )),
    })
}

/// kind's kubeconfig handling, for a cluster whose API is the test server (`api_server`): on
/// create, the cluster, user and context `kind-<name>` are merged into the kubeconfig and made
/// current; on delete, those entries go and a current-context naming them is unset (kind v0.27.0
/// `pkg/cluster/internal/kubeconfig/internal/kubeconfig/merge.go` `merge`, `remove.go` `remove`).
/// Which file: `$KUBECONFIG`'s first existing path, else its last, else `$HOME/.kube/config`
/// (`paths.go` `paths`, `pathForMerge`). The real kubectl's `config` verbs do the merging (they
/// merge as client-go does, which kind's code mirrors). Without `api_server`, nothing is written.
fn export_kubeconfig(name: &str, scenario: &Scenario, create: bool) -> Result<(), String> {
    let (Some(server), Some(kubectl)) = (&scenario.api_server, &scenario.real_kubectl) else { return Ok(()) };
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    let path = match listed.as_slice() {
        [] => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set: kind writes $HOME/.kube/config")?;
            PathBuf::from(home).join(".kube").join("config")
        }
        [one] => one.clone(),
        many => many.iter().find(|p| p.is_file()).unwrap_or(&many[many.len() - 1]).clone(),
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let key = format!("kind-{name}");
    let kc = format!("--kubeconfig={}", path.display());
    let current = run_real(kubectl, &["config".into(), "current-context".into(), kc.clone()], None);
    let steps: Vec<Vec<String>> = if create {
        vec![
            vec!["set-cluster".into(), key.clone(), format!("--server={server}")],
            vec!["set-credentials".into(), key.clone(), "--token=test".into()],
            vec!["set-context".into(), key.clone(), format!("--cluster={key}"), format!("--user={key}")],
            vec!["use-context".into(), key.clone()],
        ]
    } else {
        let mut steps = vec![
            vec!["delete-context".into(), key.clone()],
            vec!["delete-cluster".into(), key.clone()],
            vec!["delete-user".into(), key.clone()],
        ];
        if current.exit == 0 && current.stdout.trim() == key {
            steps.push(vec!["unset".into(), "current-context".into()]);
        }
        steps
    };
    for step in steps {
        let argv: Vec<String> =
            std::iter::once("config".to_string()).chain(step).chain([kc.clone()]).collect();
        let out = run_real(kubectl, &argv, None);
        // deleting an entry that is not there is no error for kind
        if out.exit != 0 && create {
            return Err(format!("kubectl {}: {}", argv.join(" "), out.stderr.trim()));
        }
    }
    Ok(())
}

/// What `ctr images import --all-platforms` says on a node when the archive came from Docker's
/// containerd image store (kind#3795).
const CONTAINERD_IMPORT_ERROR: &str = "ERROR: failed to load image: command \"docker exec --privileged -i e2e-control-plane \
    ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -\" failed with error: exit status 1\n\
    Command Output: ctr: content digest sha256:0123456789abcdef: not found\n";

/// The fake world's default answers.
fn builtin(tool: &str, argv: &[String], state: &mut State, scenario: &Scenario) -> Reply {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let known = contexts(state, scenario);
    match (tool, args.as_slice()) {
        ("kubectl", ["config", "get-contexts", ..]) => {
            Reply::ok(known.iter().map(|c| format!("{c}\n")).collect::<String>())
        }
        ("kubectl", ["config", "current-context", ..]) => match &scenario.current_context {
            Some(c) => Reply::ok(format!("{c}\n")),
            None => Reply::fail("error: current-context is not set\n"),
        },
        ("kind", ["get", "kubeconfig", rest @ ..]) => {
            let name = cluster_name(rest);
            if !state.clusters.contains(&name) {
                return Reply::fail(format!(
                    "ERROR: could not locate any control plane nodes for cluster named '{name}'\n"
                ));
            }
            let server = scenario.api_server.clone().unwrap_or_else(|| format!("https://{name}-control-plane:6443"));
            Reply::ok(format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {server}\n  name: kind-{name}\n\
                 contexts:\n- context:\n    cluster: kind-{name}\n    user: kind-{name}\n  name: kind-{name}\ncurrent-context: kind-{name}\n\
                 users:\n- name: kind-{name}\n  user:\n    {credential}\n",
                credential = if scenario.api_server.is_some() { "token: test" } else { "client-key-data: RkFLRS1TRUNSRVQ=" }
            ))
        }
        ("docker", ["version", rest @ ..]) => {
            let format = flag_values(rest, &["--format", "-f"]).into_iter().next().unwrap_or_default();
            if format.contains(".Server.Arch") {
                Reply::ok(format!("{}\n", scenario.platform.as_deref().unwrap_or("linux/amd64")))
            } else {
                Reply::ok("28.0.0-fake\n")
            }
        }
        // `docker info --format '{{.ServerVersion}} {{.DriverStatus}}'`, as the engine answers it:
        // the containerd image store reports its snapshotter as the driver type.
        ("docker", ["info", rest @ ..]) => {
            let format = flag_values(rest, &["--format", "-f"]).into_iter().next().unwrap_or_default();
            let version = "28.0.0-fake";
            let drivers = if scenario.containerd_store {
                "[[driver-type io.containerd.snapshotter.v1]]"
            } else {
                "[[Backing Filesystem extfs] [Supports d_type true]]"
            };
            if format.contains(".DriverStatus") {
                Reply::ok(format!("{version} {drivers}\n"))
            } else {
                Reply::ok(format!("{version}\n"))
            }
        }
        ("docker", ["build", rest @ ..]) | ("docker", ["buildx", "build", rest @ ..]) => {
            state.builds += 1;
            let id = format!("sha256:{:064x}", 0xb1d0_0000_u64 + state.builds);
            for tag in flag_values(rest, &["-t", "--tag"]) {
                state.image_ids.insert(tag.clone(), id.clone());
                if !state.images.contains(&tag) {
                    state.images.push(tag);
                }
            }
            Reply::ok("")
        }
        ("docker", ["tag", source, target]) => {
            if !image_known(source, state, scenario) {
                return Reply::fail(format!("Error response from daemon: No such image: {source}\n"));
            }
            let target = target.to_string();
            let id = image_id(source, state);
            state.image_ids.insert(target.clone(), id);
            if !state.images.contains(&target) {
                state.images.push(target);
            }
            Reply::ok("")
        }
        // docker push: the local image under that reference goes to its registry (docker's
        // message when the tag is not local: `An image does not exist locally with the tag`).
        ("docker", ["push", reference]) => {
            if !image_known(reference, state, scenario) {
                let repo = reference.rsplit_once(':').map(|(r, _)| r).unwrap_or(reference);
                return Reply::fail(format!("An image does not exist locally with the tag: {repo}\n"));
            }
            state.pushed.push(reference.to_string());
            let tag = reference.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            Reply::ok(format!("{tag}: digest: {} size: 528\n", image_id(reference, state)))
        }
        ("kubectl", ["config", "view", rest @ ..]) if rest.contains(&"--minify") => {
            let context = flag_values(rest, &["--context"]).into_iter().next().unwrap_or_default();
            if !known.contains(&context) {
                return Reply::fail(format!("error: context \"{context}\" does not exist\n"));
            }
            Reply::ok(format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{context}.example.test:6443\n  name: {context}\n\
                 contexts:\n- context:\n    cluster: {context}\n    user: {context}\n  name: {context}\ncurrent-context: {context}\n\
                 users:\n- name: {context}\n  user:\n    token: RkFLRS1UT0tFTg==\n"
            ))
        }
        ("docker", ["image", "inspect", rest @ ..]) => {
            let format = flag_values(rest, &["--format", "-f"]).into_iter().next();
            let images = positional(rest, &["--format", "-f"]);
            let mut out = String::new();
            for image in images {
                if !image_known(image, state, scenario) {
                    return Reply::fail(format!("Error: No such image: {image}\n"));
                }
                out.push_str(&match &format {
                    Some(f) if f.contains(".Id") => format!("{}\n", image_id(image, state)),
                    Some(f) => {
                        return Reply::fail(format!(
                            "fake docker: image inspect models --format {{{{.Id}}}}, not {f}\n"
                        ))
                    }
                    None => format!("[{{\"Id\":\"{}\"}}]\n", image_id(image, state)),
                });
            }
            Reply::ok(out)
        }
        ("docker", ["save", rest @ ..]) | ("docker", ["image", "save", rest @ ..]) => {
            let out = flag_values(rest, &["-o", "--output"]);
            let images: Vec<&&str> = positional(rest, &["-o", "--output", "--platform"]);
            for image in &images {
                if !image_known(image, state, scenario) {
                    return Reply::fail(format!(
                        "Error response from daemon: reference does not exist: {image}\n"
                    ));
                }
            }
            // An archive of one platform (`--platform`), or of all of them (kind's import of a
            // multi-platform archive is what the containerd image store breaks).
            let platform =
                flag_values(rest, &["--platform"]).into_iter().next().unwrap_or_else(|| "all".into());
            if let Some(path) = out.first() {
                let names: String = images.iter().map(|i| format!("image={i}\n")).collect();
                if let Err(e) = fs::write(path, format!("fake image archive platform={platform}\n{names}")) {
                    return Reply::fail(format!("cannot write {path}: {e}\n"));
                }
            }
            Reply::ok("")
        }
        ("kind", ["version", ..]) => Reply::ok("kind v0.27.0-fake go1.23.4 linux/amd64\n"),
        ("kind", ["get", "clusters", ..]) => {
            if state.clusters.is_empty() {
                Reply { exit: 0, stdout: String::new(), stderr: "No kind clusters found.\n".into() }
            } else {
                Reply::ok(state.clusters.iter().map(|c| format!("{c}\n")).collect::<String>())
            }
        }
        ("kind", ["create", "cluster", rest @ ..]) => {
            let name = cluster_name(rest);
            if state.clusters.contains(&name) {
                return Reply::fail(format!(
                    "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"{name}\"\n"
                ));
            }
            if let Err(e) = export_kubeconfig(&name, scenario, true) {
                return Reply::fail(format!("ERROR: failed to create cluster: {e}\n"));
            }
            state.clusters.push(name.clone());
            state.clusters_made += 1;
            state
                .cluster_uids
                .insert(name.clone(), format!("5e7c1a00-0000-4000-8000-{:012}", state.clusters_made));
            Reply { exit: 0, stdout: String::new(), stderr: format!("Creating cluster \"{name}\" ...\n") }
        }
        ("kind", ["delete", "cluster", rest @ ..]) => {
            let name = cluster_name(rest);
            if state.clusters.contains(&name) {
                if let Err(e) = export_kubeconfig(&name, scenario, false) {
                    return Reply::fail(format!("ERROR: failed to delete cluster: {e}\n"));
                }
            }
            state.clusters.retain(|c| c != &name);
            state.node_images.remove(&name);
            state.cluster_uids.remove(&name);
            state.releases.retain(|k, _| !k.starts_with(&format!("{name}/")));
            Reply { exit: 0, stdout: String::new(), stderr: format!("Deleting cluster \"{name}\" ...\n") }
        }
        ("kind", ["load", "docker-image", rest @ ..]) => {
            let name = cluster_name(rest);
            if !state.clusters.contains(&name) {
                return Reply::fail(format!("ERROR: no nodes found for cluster \"{name}\"\n"));
            }
            if scenario.containerd_store {
                return Reply::fail(CONTAINERD_IMPORT_ERROR);
            }
            let images = positional(rest, &["--name", "-n", "--nodes"]);
            for image in &images {
                if !image_known(image, state, scenario) {
                    return Reply::fail(format!("ERROR: image: \"{image}\" not present locally\n"));
                }
            }
            let loaded = state.node_images.entry(name).or_default();
            for image in images {
                if !loaded.contains(&image.to_string()) {
                    loaded.push(image.to_string());
                }
            }
            Reply::ok("")
        }
        ("kind", ["load", "image-archive", rest @ ..]) => {
            let name = cluster_name(rest);
            if !state.clusters.contains(&name) {
                return Reply::fail(format!("ERROR: no nodes found for cluster \"{name}\"\n"));
            }
            for archive in positional(rest, &["--name", "-n", "--nodes"]) {
                let Ok(content) = fs::read_to_string(archive) else {
                    return Reply::fail(format!("ERROR: failed to open archive \"{archive}\"\n"));
                };
                if scenario.containerd_store && content.contains("platform=all") {
                    return Reply::fail(CONTAINERD_IMPORT_ERROR);
                }
                let loaded = state.node_images.entry(name.clone()).or_default();
                for image in content.lines().filter_map(|l| l.strip_prefix("image=")) {
                    if !loaded.contains(&image.to_string()) {
                        loaded.push(image.to_string());
                    }
                }
            }
            Reply::ok("")
        }
        ("kind", ["export", "logs", dir, ..]) => match fs::create_dir_all(dir) {
            Ok(()) => Reply::ok(format!("Exporting logs for cluster to:\n{dir}\n")),
            Err(e) => Reply::fail(format!("{e}\n")),
        },
        ("helm", ["version", ..]) => Reply::ok("v3.17.0+gfake\n"),
        ("helm", ["show", "values", chart, rest @ ..]) => {
            let version = flag_values(rest, &["--version"]).into_iter().next();
            match charts::show_values(chart, version.as_deref()) {
                Some(values) => Reply::ok(values),
                None => Reply::fail(format!(
                    "Error: the fake helm does not model chart {chart} {}: read its values.yaml and add its keys to test/support/fake_charts.rs\n",
                    version.as_deref().unwrap_or("(latest)")
                )),
            }
        }
        ("helm", ["upgrade", "--install", release, chart, rest @ ..]) => {
            let namespace =
                flag_values(rest, &["--namespace", "-n"]).into_iter().next().unwrap_or("default".into());
            let mut values = Vec::new();
            for file in flag_values(rest, &["--values", "-f"]) {
                match fs::read_to_string(&file) {
                    Ok(text) => values.push(text),
                    Err(e) => return Reply::fail(format!("Error: open {file}: {e}\n")),
                }
            }
            let sets: Vec<(String, String)> = flag_values(rest, &["--set", "--set-string"])
                .iter()
                .flat_map(|s| s.split(',').map(String::from).collect::<Vec<_>>())
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            match charts::install(chart, release, &namespace, &values, &sets) {
                Ok(services) => {
                    state.services.extend(services);
                    let cluster = kube_cluster(argv, "--kube-context");
                    let key = format!("{cluster}/{namespace}/{release}");
                    state.releases.insert(key.clone(), chart.to_string());
                    if let Some(labels) = flag_values(rest, &["--labels"]).into_iter().next() {
                        state.release_labels.insert(key, labels);
                    }
                    Reply::ok(format!("Release \"{release}\" has been upgraded. Happy Helming!\n"))
                }
                Err(e) => Reply::fail(e),
            }
        }
        ("helm", ["status", release, rest @ ..]) => {
            let namespace =
                flag_values(rest, &["--namespace", "-n"]).into_iter().next().unwrap_or("default".into());
            let cluster = kube_cluster(argv, "--kube-context");
            match state.releases.get(&format!("{cluster}/{namespace}/{release}")) {
                Some(_) => Reply::ok(format!("NAME: {release}\nNAMESPACE: {namespace}\nSTATUS: deployed\n")),
                None => Reply::fail("Error: release: not found\n"),
            }
        }
        // `helm list [--all-namespaces | --namespace NS] [--selector k=v,…] --output json`: the
        // releases with their namespace, as helm prints them (cmd/helm/list.go `releaseElement`).
        ("helm", ["list", rest @ ..]) => {
            let cluster = kube_cluster(argv, "--kube-context");
            let all = rest.contains(&"--all-namespaces") || rest.contains(&"-A");
            let only =
                flag_values(rest, &["--namespace", "-n"]).into_iter().next().unwrap_or("default".into());
            let selector = flag_values(rest, &["--selector", "-l"]).into_iter().next().unwrap_or_default();
            let mut list = Vec::new();
            for (key, chart) in &state.releases {
                let mut parts = key.splitn(3, '/');
                let (Some(c), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next()) else { continue };
                if c != cluster || !(all || ns == only) {
                    continue;
                }
                let labels = state.release_labels.get(key).cloned().unwrap_or_default();
                let have: Vec<&str> = labels.split(',').collect();
                if !selector.is_empty() && !selector.split(',').all(|term| have.contains(&term)) {
                    continue;
                }
                list.push(json!({ "name": name, "namespace": ns, "revision": "1", "status": "deployed", "chart": chart }));
            }
            Reply::ok(format!("{}\n", Value::Array(list)))
        }
        ("helm", ["uninstall", release, rest @ ..]) => {
            let namespace =
                flag_values(rest, &["--namespace", "-n"]).into_iter().next().unwrap_or("default".into());
            let cluster = kube_cluster(argv, "--kube-context");
            let key = format!("{cluster}/{namespace}/{release}");
            state.release_labels.remove(&key);
            match state.releases.remove(&key) {
                Some(_) => Reply::ok(format!("release \"{release}\" uninstalled\n")),
                None => Reply::fail(format!(
                    "Error: uninstall: Release not loaded: {release}: release: not found\n"
                )),
            }
        }
        // A cluster's identity: its kube-system namespace UID.
        ("kubectl", ["get", "namespace", "kube-system", rest @ ..])
            if flag_values(rest, &["--output", "-o"])
                .first()
                .is_some_and(|o| o.contains(".metadata.uid")) =>
        {
            let cluster = kube_cluster(argv, "--context");
            let context = flag_values(&args, &["--context"]).into_iter().next().unwrap_or_default();
            match state.cluster_uids.get(&cluster) {
                Some(uid) => Reply::ok(uid.clone()),
                // A cluster of the user's (an existing context): its UID never changes here.
                None if scenario.contexts.contains(&context) => {
                    let h = context.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                    Reply::ok(format!("e7157000-0000-4000-8000-{:012x}", h & 0xffff_ffff_ffff))
                }
                None => Reply::fail("Error from server (NotFound): namespaces \"kube-system\" not found\n"),
            }
        }
        ("kubectl", ["version", ..]) => Reply::ok("Client Version: v1.32.0-fake\n"),
        // What a kind cluster's API server serves out of the box (group/version, sorted as
        // `kubectl api-versions` prints them); a test adds others with a rule.
        ("kubectl", ["api-versions", ..]) => Reply::ok(
            "admissionregistration.k8s.io/v1\napiextensions.k8s.io/v1\napps/v1\nbatch/v1\ncoordination.k8s.io/v1\nnetworking.k8s.io/v1\nrbac.authorization.k8s.io/v1\nv1\n",
        ),
        _ => Reply::ok(""),
    }
}

/// A real listener on the local port, like kubectl's; runs until killed. A Service a modelled
/// chart made is resolved as kubectl resolves it; when the pod port it reaches is not where the
/// pod listens, every connection is accepted and dropped (kubectl logs "connection refused").
fn port_forward(
    argv: &[String],
    scenario: &Scenario,
    services: &BTreeMap<String, charts::Service>,
) -> Result<i32, String> {
    use std::net::{TcpListener, TcpStream};
    let ports = argv.iter().find(|a| {
        a.split_once(':').is_some_and(|(l, r)| l.parse::<u16>().is_ok() && r.parse::<u16>().is_ok())
    });
    let Some((local, remote)) = ports.and_then(|p| p.split_once(':')) else {
        eprintln!("error: no LOCAL:REMOTE port given");
        return Ok(1);
    };
    let target = argv.iter().find(|a| a.contains('/') && !a.starts_with('-')).cloned().unwrap_or_default();
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let namespace = flag_values(&args, &["--namespace", "-n"]).into_iter().next().unwrap_or("default".into());
    let mut dead_end = None;
    if let Some(service) = target.strip_prefix("svc/").and_then(|s| services.get(&format!("{namespace}/{s}")))
    {
        let name = target.trim_start_matches("svc/");
        match service.pod_port(name, remote.parse().unwrap_or(0)) {
            Err(e) => {
                eprint!("{e}");
                return Ok(1);
            }
            Ok(pod_port) if pod_port != service.listens_on => dead_end = Some(pod_port),
            Ok(_) => {}
        }
    }
    let listener = match TcpListener::bind(("127.0.0.1", local.parse::<u16>().unwrap_or(0))) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Unable to listen on port {local}: {e}");
            eprintln!("error: unable to listen on any of the requested ports: [{{{local} {remote}}}]");
            return Ok(1);
        }
    };
    println!("Forwarding from 127.0.0.1:{local} -> {remote}");
    let _ = std::io::stdout().flush();
    let backend = scenario.forwards.get(&target).cloned();
    for conn in listener.incoming().flatten() {
        println!("Handling connection for {local}");
        if let Some(pod_port) = dead_end {
            eprintln!(
                "E0000 portforward.go:424] \"Unhandled Error\" err=\"an error occurred forwarding {local} -> {pod_port}: \
                 error forwarding port {pod_port} to pod: connect: connection refused\""
            );
            drop(conn);
            continue;
        }
        let backend = backend.clone();
        std::thread::spawn(move || {
            let mut client = conn;
            match backend {
                Some(addr) => {
                    let Ok(mut server) = TcpStream::connect(&addr) else { return };
                    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                }
                None => {
                    let mut buf = [0u8; 4096];
                    let _ = client.read(&mut buf);
                    let _ = client
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
                }
            }
        });
    }
    Ok(0)
}

/// An image's ID: the one its build or `docker tag` gave it (images the real engine has, or
/// that a test put there, get one from their name).
fn image_id(image: &str, state: &State) -> String {
    state.image_ids.get(image).cloned().unwrap_or_else(|| {
        let h = image
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        format!("sha256:{h:064x}")
    })
}

/// The kind cluster a call's context names (`--context kind-e2e` → `e2e`; none: `kind`).
fn kube_cluster(argv: &[String], flag: &str) -> String {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    flag_values(&args, &[flag])
        .into_iter()
        .next()
        .map(|c| c.trim_start_matches("kind-").to_string())
        .unwrap_or_else(|| "kind".into())
}

fn image_known(image: &str, state: &State, scenario: &Scenario) -> bool {
    if state.images.iter().any(|i| i == image) {
        return true;
    }
    scenario.real_docker_inspect && real_docker_has(image)
}

/// Asks the real engine: the first `docker` on PATH that is not one of our wrappers.
fn real_docker_has(image: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    let real = std::env::split_paths(&path).map(|d| d.join("docker")).find(|candidate| {
        candidate.is_file()
            && !fs::read(candidate).map(|b| b.windows(9).any(|w| w == b"fake-tool")).unwrap_or(true)
    });
    let Some(real) = real else { return false };
    Command::new(real)
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn reads_manifest(argv: &[String]) -> bool {
    argv.windows(2).any(|w| (w[0] == "-f" || w[0] == "--filename") && w[1] == "-")
        || argv.iter().any(|a| a == "--filename=-" || a == "-f-")
}

fn cluster_name(args: &[&str]) -> String {
    flag_values(args, &["--name", "-n"]).into_iter().next().unwrap_or_else(|| "kind".to_string())
}

/// Values of `-t X`, `--tag X`, `--tag=X` style flags.
fn flag_values(args: &[&str], flags: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        if flags.contains(&arg) && i + 1 < args.len() {
            out.push(args[i + 1].to_string());
            i += 2;
            continue;
        }
        if let Some((flag, value)) = arg.split_once('=') {
            if flags.contains(&flag) {
                out.push(value.to_string());
            }
        }
        i += 1;
    }
    out
}

/// Arguments that are neither flags nor the values of the given value-taking flags.
fn positional<'a>(args: &'a [&'a str], value_flags: &[&str]) -> Vec<&'a &'a str> {
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
        } else if value_flags.contains(arg) {
            skip = true;
        } else if !arg.starts_with('-') {
            out.push(arg);
        }
    }
    out
}

/// Runs `f` on the state under an exclusive lock, then saves it.
///
/// Saved by writing a new file and renaming it over the old one: a fake killed mid-write (the
/// xtask's reaper kills a SIGKILLed run's in-flight kubectl) leaves the old state whole, as a
/// real API server loses nothing when a client dies. A state that cannot be read is an error,
/// never an empty world.
fn with_state<T>(dir: &Path, f: impl FnOnce(&mut State) -> Result<T, String>) -> Result<T, String> {
    let lock = File::create(dir.join("state.lock")).map_err(|e| e.to_string())?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("locking {}: {e}", dir.join("state.lock").display()));
        }
    }
    let path = dir.join("state.json");
    let mut state: State = match fs::read_to_string(&path) {
        Ok(text) => xtask_lint::value::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let out = f(&mut state)?;
    let text = serde_json::to_string_pretty(&state.to_value()).map_err(|e| e.to_string())?;
    let new = dir.join(format!("state.json.{}", std::process::id()));
    fs::write(&new, text).map_err(|e| format!("{}: {e}", new.display()))?;
    fs::rename(&new, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

fn append_line(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let mut line = value.to_string();
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // One write of one line on an O_APPEND file: concurrent fakes never interleave.
    file.write_all(line.as_bytes()).map_err(|e| e.to_string())
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so the journal
/// lines of parallel calls can be compared.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
