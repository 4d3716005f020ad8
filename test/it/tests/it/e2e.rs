//! `cargo xtask e2e` end to end on the fake toolchain, the Gitea test server (reached through the
//! supervised port-forwards, which the fake kubectl really listens on and proxies), and real
//! git / ssh.
#![allow(clippy::disallowed_methods)]
// The assertions name the broad commands they forbid.
// xtask-lint: allow-file(broad-process-kill)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::gitea::GiteaServer;
use testkit::{Call, FakeToolchain, Rule};

use crate::harness::text;
use crate::harness::Sandbox;

const LABEL: &str = "configbutler.ai/e2e-run-id";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct World {
    fake: FakeToolchain,
    gitea: GiteaServer,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    def: PathBuf,
    http: u16,
    ssh: u16,
}

impl World {
    /// `flows`: TOML `[[flow]]` entries appended to a definition with one image, a gitea deploy
    /// (chart 10.6.0 with this repository's hack/gitea-values.yaml, which the fake chart model
    /// checks) and the three forwards on free ports.
    fn new(flows: &str) -> World {
        let values = std::fs::read_to_string(crate::harness::root().join("hack/gitea-values.yaml")).unwrap();
        World::with_gitea_values(flows, &values)
    }

    fn with_gitea_values(flows: &str, values: &str) -> World {
        let fake = crate::harness::fake();
        let gitea = GiteaServer::start().unwrap();
        let (http, ssh, prom) = (free_port(), free_port(), free_port());
        fake.forward("svc/gitea-http", &gitea.http_addr()).unwrap();
        fake.forward("svc/gitea-ssh", &gitea.ssh_endpoint()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::write(dir.path().join("docker/app.Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("app.yaml"), "kind: List\n").unwrap();
        std::fs::write(dir.path().join("gitea-values.yaml"), values).unwrap();
        let def = dir.path().join("e2e.toml");
        std::fs::write(
            &def,
            format!(
                r#"[cluster]
name = "e2e"

[[image]]
name = "app"
tag = "app:t"
dockerfile = "docker/app.Dockerfile"

[[deploy]]
name = "gitea"
namespace = "gitea-e2e"
helm = {{ chart = "gitea", version = "10.6.0", values = ["gitea-values.yaml"] }}

[[port-forward]]
name = "gitea"
namespace = "gitea-e2e"
target = "svc/gitea-http"
local = {http}
remote = 3000
probe = "/api/v1/version"
ready-timeout = "20s"

[[port-forward]]
name = "gitea-ssh"
namespace = "gitea-e2e"
target = "svc/gitea-ssh"
local = {ssh}
remote = 22
probe = "ssh"
ready-timeout = "20s"

[[port-forward]]
name = "prometheus"
namespace = "prometheus-operator"
target = "svc/prometheus-operated"
local = {prom}
remote = 9090
probe = "/-/ready"
ready-timeout = "20s"
{flows}"#
            ),
        )
        .unwrap();
        let sandbox = Sandbox::with_fake(&fake);
        World { fake, gitea, sandbox, dir, def, http, ssh }
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.xtask(args);
        cmd.env("CI", "true")
            .env("E2E_GITEA_API_URL", format!("http://127.0.0.1:{}/api/v1", self.http))
            .env("E2E_GITEA_SSH", format!("127.0.0.1:{}", self.ssh))
            .current_dir(self.dir.path());
        for (k, v) in self.gitea.env() {
            if k != "E2E_GITEA_API_URL" && k != "E2E_GITEA_SSH" {
                cmd.env(k, v);
            }
        }
        cmd
    }

    fn e2e(&self, extra: &[&str]) -> Command {
        let mut args = vec!["e2e", "--definition", self.def.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.xtask(&args)
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.sandbox.run_dir(id)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Supervisors outlive xtask by design; the test stops what it started.
        let _ = self.xtask(&["port-forward", "stop", "--definition", self.def.to_str().unwrap()]).output();
    }
}

/// The run ids of each flow, from the namespace applies in the journal.
fn runs(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| {
            c.tool == "kubectl"
                && c.argv[0] == "apply"
                && c.stdin.as_deref().is_some_and(|s| s.contains("\"Namespace\""))
        })
        .filter_map(|c| {
            let v: Value = serde_json::from_str(c.stdin.as_deref()?).ok()?;
            // The flow's own namespace apply holds only namespaces (Gitea's also holds secrets).
            if !v["items"].as_array()?.iter().all(|i| i["kind"] == "Namespace") {
                return None;
            }
            let ns = v["items"][0]["metadata"]["name"].as_str()?.to_string();
            let id = v["items"][0]["metadata"]["labels"][LABEL].as_str()?.to_string();
            Some((id, ns))
        })
        .collect()
}

/// No broad deletes or kills anywhere; every delete names the run label or the run namespace.
fn assert_scoped_deletes(calls: &[Call]) {
    for c in calls {
        let line = c.line();
        assert!(!line.contains("pkill") && !line.contains("killall"), "{line}");
        if c.tool == "kubectl" && c.argv[0] == "delete" {
            assert!(
                !c.argv.iter().any(|a| a == "--all" || a == "-A" || a == "--all-namespaces"),
                "broad delete: {line}"
            );
            let scoped = c.argv.windows(2).any(|w| {
                (w[0] == "--selector" && w[1].starts_with(&format!("{LABEL}=")))
                    || (w[0] == "--namespace" && w[1].starts_with("run-e2e-"))
            });
            assert!(scoped, "unscoped delete: {line}");
        }
        assert!(!(c.tool == "kind" && c.argv[0] == "delete"), "shared infra deleted: {line}");
    }
}

const THREE_FLOWS: &str = r#"
[[flow]]
name = "full"
steps = [["kubectl", "wait", "--namespace", "${E2E_TEST_NAMESPACE}", "--for=condition=ready", "pod", "--all"]]

[[flow]]
name = "quickstart-helm"
steps = [["helm", "upgrade", "--install", "demo-${E2E_RUN_ID}", "chart", "--namespace", "${E2E_TEST_NAMESPACE}"], ["kubectl", "wait", "--namespace", "${E2E_TEST_NAMESPACE}", "--for=condition=ready", "pod", "--all"]]

[[flow]]
name = "quickstart-manifest"
steps = [["kubectl", "apply", "--namespace", "${E2E_TEST_NAMESPACE}", "-f", "app.yaml"], ["kubectl", "wait", "--namespace", "${E2E_TEST_NAMESPACE}", "--for=condition=ready", "pod", "--all"]]
"#;

#[test]
fn three_flows_run_at_once_each_in_its_own_namespace_and_all_pass() {
    let w = World::new(THREE_FLOWS);
    w.fake.rule(Rule::new("kubectl", "^wait").delay_ms(1500)).unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let runs = runs(&calls);
    assert_eq!(runs.len(), 3, "{runs:?}");
    let waits: Vec<&Call> = calls.iter().filter(|c| c.tool == "kubectl" && c.argv[0] == "wait").collect();
    assert_eq!(waits.len(), 3);
    for (i, a) in waits.iter().enumerate() {
        for b in &waits[i + 1..] {
            assert!(a.overlaps(b), "flows run at the same time");
        }
    }
    // Each flow's commands carry its own run id and touch only its own namespace.
    let in_flow = |c: &&Call| {
        c.env.contains_key("E2E_RUN_ID") && c.env.get("E2E_FLOW").map(String::as_str) != Some("setup")
    };
    for c in calls.iter().filter(in_flow).filter(|c| {
        c.argv[0] == "wait" || c.argv[0] == "upgrade" || (c.argv[0] == "apply" && c.stdin.is_none())
    }) {
        let id = &c.env["E2E_RUN_ID"];
        let (_, ns) = runs.iter().find(|(r, _)| r == id).unwrap();
        assert!(c.argv.iter().any(|a| a == ns), "{} outside {ns}", c.line());
        assert!(
            c.argv.iter().all(|a| !runs.iter().any(|(other, _)| other != id && a.contains(other.as_str()))),
            "{}",
            c.line()
        );
    }
    for (id, ns) in &runs {
        assert_eq!(
            ns,
            &format!(
                "run-e2e-{}-{id}",
                ns.trim_start_matches("run-e2e-").trim_end_matches(&format!("-{id}"))
            )
        );
        // Passed: cleaned by label.
        assert!(calls.iter().any(|c| c.line()
            == format!(
                "kubectl delete namespace --selector {LABEL}={id} --ignore-not-found --wait=false --context kind-e2e"
            )));
        assert!(!w.run_dir(id).join("artifacts").exists());
    }
    assert_scoped_deletes(&calls);
    // Gitea: three repositories were made, and removed with the passed runs.
    assert_eq!(
        w.gitea
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/repos") && r.status == 201)
            .count(),
        3
    );
    assert!(w.gitea.repos().is_empty() && w.gitea.tokens().is_empty());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 of 3 flow(s) passed"), "{stdout}");
    let junit = std::fs::read_to_string(w.sandbox.state.path().join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"0\""), "{junit}");
}

#[test]
fn one_failing_flow_keeps_its_namespace_and_artifacts_the_others_pass_and_are_cleaned() {
    let flows = THREE_FLOWS.replace(
        r#"steps = [["kubectl", "wait", "--namespace", "${E2E_TEST_NAMESPACE}", "--for=condition=ready", "pod", "--all"]]

[[flow]]
name = "quickstart-helm""#,
        r#"steps = [["sh", "-c", "echo 'assertion failed: mirrored file never appeared' >&2; exit 3"]]

[[flow]]
name = "quickstart-helm""#,
    );
    let w = World::new(&flows);
    let out = w.e2e(&["--parallel"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let runs = runs(&calls);
    let (failed_id, failed_ns) = runs.iter().find(|(_, ns)| ns.starts_with("run-e2e-full-")).unwrap().clone();
    for (id, ns) in &runs {
        let deleted = calls.iter().any(|c| {
            c.line().starts_with("kubectl delete namespace") && c.line().contains(&format!("{LABEL}={id}"))
        });
        let index = w.run_dir(id).join("artifacts/index.json");
        if *id == failed_id {
            assert!(!deleted, "the failed run's namespace {ns} is kept");
            let index: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
            assert_eq!(index["namespace"], ns.as_str());
            assert!(index["reason"].as_str().unwrap().contains("mirrored file never appeared"), "{index}");
            let files: Vec<&str> =
                index["files"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
            for f in [
                "pods.txt",
                "describe.txt",
                "logs.txt",
                "events.txt",
                "helm.txt",
                "checkout-status.txt",
                "checkout-log.txt",
            ] {
                assert!(files.contains(&f), "{f} missing from {files:?}");
            }
            assert!(files.iter().any(|f| f.starts_with("port-forward-")), "{files:?}");
            // Diagnostics select by the run's namespace and label only.
            let logs = calls.iter().find(|c| c.argv[0] == "logs" && c.argv.contains(&failed_ns)).unwrap();
            assert!(logs.argv.contains(&format!("{LABEL}={id}")));
        } else {
            assert!(deleted, "passed run {id} is cleaned: {}", text(&out));
            assert!(!index.exists(), "no artifacts for a passed run");
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("kept namespace {failed_ns}"))
            && stdout.contains(&format!("cargo xtask cleanup --run-id {failed_id}")),
        "{stdout}"
    );
    assert!(stdout.contains("2 of 3 flow(s) passed"), "{stdout}");
    let junit = std::fs::read_to_string(w.sandbox.state.path().join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"1\""), "{junit}");
    assert_eq!(junit.matches("<failure").count(), 1);
    assert_scoped_deletes(&calls);

    // The kept run is listed, then removed by id.
    let listed = w.xtask(&["runs"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&failed_id));
    let cleaned = w.xtask(&["cleanup", "--run-id", &failed_id]).output().unwrap();
    assert!(cleaned.status.success(), "{}", text(&cleaned));
    assert!(w
        .fake
        .journal()
        .unwrap()
        .iter()
        .any(|c| c.line().contains(&format!("delete namespace --selector {LABEL}={failed_id}"))));
    assert!(!w.run_dir(&failed_id).exists());
}

#[test]
fn two_invocations_at_once_create_the_cluster_once_and_both_pass() {
    let w = World::new(
        r#"
[[flow]]
name = "full"
gitea = false
steps = [["kubectl", "get", "pods", "--namespace", "${E2E_TEST_NAMESPACE}"]]
"#,
    );
    w.fake.rule(Rule::new("docker", "^build").delay_ms(800)).unwrap();
    let a = w.e2e(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let b = w.e2e(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let calls = w.fake.journal().unwrap();
    assert_eq!(calls.iter().filter(|c| c.line().starts_with("kind create cluster")).count(), 1, "{calls:#?}");
    assert_eq!(runs(&calls).len(), 2);
}

#[test]
fn a_killed_forward_comes_back_and_the_flow_passes() {
    let w = World::new(
        r#"
[[flow]]
name = "full"
steps = [["sh", "-c", "sleep 3; git -C \"$E2E_CHECKOUT_DIR\" pull -q"]]
"#,
    );
    let child: Child = w.e2e(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Once the flow runs its step, kill the SSH forward's kubectl.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ssh_port = format!("{}:22", w.ssh);
    loop {
        assert!(Instant::now() < deadline, "the flow never started");
        let runs_dir = w.sandbox.state.path().join("runs");
        let stepping = std::fs::read_dir(&runs_dir)
            .map(|d| d.flatten().any(|e| e.path().join("logs/step-1.log").exists()))
            .unwrap_or(false);
        if stepping {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let forwards: Vec<_> =
        w.fake.started().unwrap().into_iter().filter(|s| s.argv.contains(&ssh_port)).collect();
    assert_eq!(forwards.len(), 1);
    // SAFETY: killing the fake kubectl this test's scenario started.
    unsafe { libc::kill(forwards[0].pid as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the flow passes through the restarted forward: {}", text(&out));
    let again: Vec<_> =
        w.fake.started().unwrap().into_iter().filter(|s| s.argv.contains(&ssh_port)).collect();
    assert!(again.len() >= 2, "the supervisor restarted kubectl port-forward");
}

#[test]
fn a_foreign_listener_on_a_forward_port_is_reported_and_left_alone() {
    let w = World::new(
        r#"
[[flow]]
name = "full"
gitea = false
steps = [["true"]]
"#,
    );
    let squatter = std::net::TcpListener::bind(("127.0.0.1", w.http)).unwrap();
    let out = w.e2e(&[]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {}", w.http))
            && err.contains("not by us")
            && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(
        squatter.local_addr().is_ok() && std::net::TcpStream::connect(("127.0.0.1", w.http)).is_ok(),
        "still ours"
    );
    assert!(runs(&w.fake.journal().unwrap()).is_empty(), "no flow ran");
}

#[test]
fn sigint_stops_the_flows_cleans_each_run_and_leaves_shared_infra_up() {
    let marker = format!("sigint-marker-{}", std::process::id());
    let step = format!(r#"["sh", "-c", "sleep 30 # {marker}"]"#);
    let w = World::new(&format!(
        "\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [{step}]\n\n[[flow]]\nname = \"quickstart-helm\"\ngitea = false\nsteps = [{step}]\n"
    ));
    let mut child = w.e2e(&["--parallel"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_with(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "the flows never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "xtask did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(running_with(&marker).is_empty(), "a flow's child was left running");
    let calls = w.fake.journal().unwrap();
    let runs = runs(&calls);
    assert_eq!(runs.len(), 2);
    for (id, _) in &runs {
        assert!(
            calls.iter().any(|c| c.line().contains(&format!("delete namespace --selector {LABEL}={id}"))),
            "cleanup of {id}"
        );
    }
    assert_scoped_deletes(&calls);
    // Shared infra stays: the forwards' supervisors are alive and healthy.
    let status =
        w.xtask(&["port-forward", "status", "--definition", w.def.to_str().unwrap()]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.matches("healthy").count(), 3, "{status}");
}

/// Pids whose command line contains `marker`.
fn running_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        if std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn stale_runs_are_reaped_and_live_ones_are_not() {
    let w = World::new("\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [[\"true\"]]\n");
    w.fake.with_cluster("e2e").unwrap();
    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let host = String::from_utf8_lossy(&Command::new("hostname").output().unwrap().stdout).trim().to_string();
    // (A live owner started before its run: the record is written after the process starts.)
    for (id, pid, started) in [("stale1", dead_pid, now - 4 * 3600), ("live1", std::process::id(), now)] {
        let dir = w.run_dir(id);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let record = serde_json::json!({
            "run_id": id, "flow": "full", "namespace": format!("run-e2e-full-{id}"),
            "controller_namespace": format!("ctl-e2e-full-{id}"), "label": LABEL, "pid": pid, "host": host,
            "started": started, "heartbeat": now - 3 * 3600, "status": "running", "kept": false, "gitea": false,
        });
        std::fs::write(dir.join("run.json"), record.to_string()).unwrap();
    }
    let listed = w.xtask(&["runs"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("stale1") && listed.contains("gone") && listed.contains("alive"), "{listed}");
    let out = w.xtask(&["cleanup", "--stale", "--older-than", "2h"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    assert!(calls.iter().any(|c| c.line().contains(&format!("--selector {LABEL}=stale1"))));
    assert!(!calls.iter().any(|c| c.line().contains("live1")), "a live run is never reaped");
    assert!(!w.run_dir("stale1").exists() && w.run_dir("live1").exists());
    assert_scoped_deletes(&calls);
}

/// The gitea chart's values as this repository had them before they were read against the chart:
/// headless Services (the chart's default), no DB_TYPE with every database subchart off, and a key
/// the chart does not have.
fn old_values(current: &str) -> String {
    current.lines().filter(|l| !l.contains("clusterIP")).collect::<Vec<_>>().join("\n") + "\n"
}

#[test]
fn an_ssh_forward_that_connects_but_serves_nothing_is_not_healthy() {
    let values = std::fs::read_to_string(crate::harness::root().join("hack/gitea-values.yaml")).unwrap();
    // Headless gitea-ssh: the forward reaches pod port 22, where the rootless image serves nothing;
    // kubectl's listener still accepts, so only the SSH banner tells.
    let w = World::with_gitea_values(THREE_FLOWS, &old_values(&values));
    let started = Instant::now();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let text = text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("port-forward gitea-ssh") && text.contains("did not pass its probe (ssh)"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "bounded by ready-timeout");
    let calls = w.fake.journal().unwrap();
    assert!(runs(&calls).is_empty(), "no flow ran: {:?}", runs(&calls));
    // kubectl's listener was up and accepted the probes (which is why a TCP connect is no probe);
    // what sat behind it refused them.
    let log =
        std::fs::read_to_string(w.sandbox.state.path().join(format!("port-forwards/{}.log", w.ssh))).unwrap();
    assert!(log.contains(&format!("Forwarding from 127.0.0.1:{}", w.ssh)), "{log}");
    assert!(log.contains("-> 22: error forwarding port 22 to pod: connect: connection refused"), "{log}");
}

/// A listener that accepts every connection and never sends a byte (until dropped).
struct Silent {
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok((conn, _)) = listener.accept() {
                    held.push(conn);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Silent { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_ssh_forward_to_a_backend_that_accepts_and_stays_silent_fails_at_once_naming_it() {
    // The forward reaches something that accepts and never speaks (no SSH server sends nothing):
    // a mis-forward, told as such, not a slow pod waited on for the whole ready-timeout.
    let w = World::new(THREE_FLOWS);
    let silent = Silent::start();
    w.fake.forward("svc/gitea-ssh", &silent.addr).unwrap();
    let def = std::fs::read_to_string(&w.def).unwrap();
    let marker = "probe = \"ssh\"\nready-timeout = \"20s\"";
    assert!(def.contains(marker), "{def}");
    std::fs::write(&w.def, def.replace(marker, "probe = \"ssh\"\nready-timeout = \"10m\"")).unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let text = text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("port-forward gitea-ssh")
            && text.contains("reaches no SSH server")
            && text.contains("`remote`"),
        "{text}"
    );
    assert!(runs(&w.fake.journal().unwrap()).is_empty(), "no flow ran");
}

#[test]
fn the_gitea_chart_without_db_type_or_with_an_unknown_key_fails_setup_naming_why() {
    let values = std::fs::read_to_string(crate::harness::root().join("hack/gitea-values.yaml")).unwrap();
    let no_db: String = values.lines().filter(|l| !l.contains("DB_TYPE")).collect::<Vec<_>>().join("\n");
    let w = World::with_gitea_values(THREE_FLOWS, &no_db);
    let out = w.xtask(&["setup", "--definition", w.def.to_str().unwrap()]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("deploy:gitea") && said.contains("unknown database type"), "{said}");

    let w = World::with_gitea_values(THREE_FLOWS, &format!("{values}valkey-cluster:\n  enabled: false\n"));
    let out = w.xtask(&["setup", "--definition", w.def.to_str().unwrap()]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("gitea-values.yaml: `valkey-cluster` is not a value of chart gitea 10.6.0"),
        "{said}"
    );
    let calls = w.fake.journal().unwrap();
    assert!(!calls.iter().any(|c| c.tool == "helm" && c.argv[0] == "upgrade"), "refused before installing");
}

#[test]
fn run_context_takes_service_endpoints_from_the_definitions_forwards() {
    let w = World::new(THREE_FLOWS);
    let out = w
        .xtask(&["run-context", "--definition", w.def.to_str().unwrap()])
        .env_remove("E2E_GITEA_API_URL")
        .env_remove("E2E_GITEA_SSH")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // The world's forwards provide no env: the defaults, on 127.0.0.1, never localhost.
    assert!(said.contains("export E2E_GITEA_SSH=127.0.0.1:13022"), "{said}");
    let repo = Sandbox::new();
    let out = repo.run(&[
        "run-context",
        "--definition",
        crate::harness::root().join("test/e2e/e2e.toml").to_str().unwrap(),
    ]);
    let said = text(&out);
    assert!(said.contains("export E2E_GITEA_API_URL=http://127.0.0.1:13000/api/v1"), "{said}");
    assert!(said.contains("export E2E_GITEA_SSH=127.0.0.1:13022"), "{said}");
    assert!(said.contains("export E2E_PROMETHEUS_URL=http://127.0.0.1:19090"), "{said}");
    // Another port in the definition: the endpoint follows it.
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        "[cluster]\nname = \"e2e\"\n\n[[port-forward]]\nname = \"gitea-ssh\"\nnamespace = \"gitea-e2e\"\n\
         target = \"svc/gitea-ssh\"\nlocal = 23022\nremote = 22\nprobe = \"ssh\"\n\
         env = { E2E_GITEA_SSH = \"127.0.0.1:${local}\" }\n",
    )
    .unwrap();
    let out = repo.run(&["run-context", "--definition", def.to_str().unwrap()]);
    // xtask-lint: allow(fixed-local-port) (the definition's port, read back)
    assert!(text(&out).contains("export E2E_GITEA_SSH=127.0.0.1:23022"), "{}", text(&out));
    // The environment still wins over the definition (validated).
    let out = repo
        .xtask(&["run-context", "--definition", def.to_str().unwrap()])
        .env("E2E_GITEA_SSH", "gitea:2222")
        .output()
        .unwrap();
    assert!(text(&out).contains("export E2E_GITEA_SSH=gitea:2222"), "{}", text(&out));
    let out = repo
        .xtask(&["run-context", "--definition", def.to_str().unwrap()])
        .env("E2E_GITEA_SSH", "nohost")
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("invalid E2E_GITEA_SSH"), "{}", text(&out));
}

/// The calls xtask itself makes: every kubectl and helm call that reaches a cluster.
fn reaches_a_cluster(c: &Call) -> bool {
    let first = c.argv.first().map(String::as_str).unwrap_or("");
    match c.tool.as_str() {
        "kubectl" => !matches!(first, "config" | "version"),
        "helm" => !matches!(first, "version"),
        _ => false,
    }
}

#[test]
fn every_kubectl_and_helm_call_names_the_clusters_context_never_the_current_one() {
    // The user's current context is production; a call without --context would land there.
    let flows = "\n[[flow]]\nname = \"full\"\nsteps = [[\"kubectl\", \"get\", \"pods\", \"--namespace\", \"${E2E_TEST_NAMESPACE}\"]]\n";
    let w = World::new(flows);
    w.fake.with_current_context("prod-cluster").unwrap();
    let out = w.e2e(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let user_step =
        |c: &Call| c.tool == "kubectl" && c.argv.starts_with(&["get".to_string(), "pods".to_string()]);
    let ours: Vec<&Call> = calls.iter().filter(|c| reaches_a_cluster(c) && !user_step(c)).collect();
    assert!(ours.len() > 5, "setup, forwards, namespaces, secrets, cleanup: {ours:#?}");
    for c in &ours {
        let flag = if c.tool == "helm" { "--kube-context" } else { "--context" };
        let named = c.argv.windows(2).any(|w| w[0] == flag && w[1] == "kind-e2e");
        assert!(named, "does not name the cluster's context: {}", c.line());
    }
    // The flow's own kubectl names no context: it gets a kubeconfig holding only the cluster.
    let step = calls.iter().find(|c| user_step(c)).expect("the flow's step ran");
    let kubeconfig = step.env.get("KUBECONFIG").expect("the step gets KUBECONFIG");
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    assert!(text.contains("name: kind-e2e") && !text.contains("prod-cluster"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(kubeconfig).unwrap().permissions().mode() & 0o777, 0o600);
    // Gitea's admin password (in xtask's environment) reaches no child process: not our calls,
    // not the flow's step.
    assert!(w.xtask(&[]).get_envs().any(|(k, _)| k == "E2E_GITEA_ADMIN_PASSWORD"), "xtask itself has it");
    for c in &calls {
        assert!(!c.env.contains_key("E2E_GITEA_ADMIN_PASSWORD"), "{} got the admin password", c.line());
    }
    // Its credentials are in no log.
    for log in crate::harness::files_ending(w.sandbox.state.path(), "log") {
        let body = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!body.contains("client-key-data"), "{} holds the kubeconfig", log.display());
    }
}

#[test]
fn a_cluster_whose_context_is_gone_gets_no_deploy() {
    let w = World::new(THREE_FLOWS);
    w.fake.with_cluster("e2e").unwrap();
    w.fake.without_context("kind-e2e").unwrap();
    w.fake.with_current_context("prod-cluster").unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("kube context \"kind-e2e\" does not exist")
            && said.contains("kind export kubeconfig --name e2e"),
        "{said}"
    );
    let calls = w.fake.journal().unwrap();
    let deploys: Vec<String> =
        calls.iter().filter(|c| c.tool == "helm" && c.argv[0] == "upgrade").map(|c| c.line()).collect();
    assert!(deploys.is_empty(), "{deploys:?}");
    assert!(runs(&calls).is_empty());
}

#[test]
fn ctrl_c_exits_within_5s_even_when_diagnostics_hang() {
    let marker = format!("hang-marker-{}", std::process::id());
    let step = format!(r#"["sh", "-c", "sleep 30 # {marker}"]"#);
    let w = World::new(&format!("\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [{step}]\n"));
    // Every diagnostic kubectl hangs for a minute (an API server that stopped answering).
    for pattern in ["^get pods", "^describe", "^logs", "^get events"] {
        w.fake.rule(Rule::new("kubectl", pattern).delay_ms(60_000)).unwrap();
    }
    w.fake.rule(Rule::new("helm", "^list").delay_ms(60_000)).unwrap();
    let mut child = w.e2e(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the flow never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(sent.elapsed() < Duration::from_secs(30), "xtask did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took <= Duration::from_secs(5), "exit took {took:?} after Ctrl-C:\n{}", text(&out));
    assert!(running_with(&marker).is_empty(), "the flow's child was left running");
    // A hanging diagnostic was started and stopped when the time after the interrupt ran out;
    // nothing of ours is left running (the forwards are shared infra and stay by design).
    let started = w.fake.started().unwrap();
    assert!(started.iter().any(|s| s.tool == "kubectl" && s.argv[..2] == ["get", "pods"]), "{started:?}");
    for s in started.iter().filter(|s| s.argv[0] != "port-forward") {
        assert!(testkit::group_members(s.pgid).is_empty(), "{s:?} left running");
    }
}

#[test]
fn a_sigkilled_xtask_leaves_no_step_process_behind() {
    let marker = format!("orphan-marker-{}", std::process::id());
    // A shell step whose `sleep` is a grandchild of xtask: PR_SET_PDEATHSIG would not reach it.
    // The inner shell (marked too) is the grandchild.
    let step = format!(r#"["sh", "-c", "sh -c 'sleep 40; true # {marker}'; true # {marker}"]"#);
    let w = World::new(&format!("\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [{step}]\n"));
    let mut child = w.e2e(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running_with(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // Only a hang exceeds it: the step's `sleep 40` would outlive it.
    let gone = Instant::now() + Duration::from_secs(30);
    while !running_with(&marker).is_empty() {
        assert!(Instant::now() < gone, "left behind: {:?}", running_with(&marker));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run record owned by `pid`, started at `started`, heartbeat 3 h ago.
fn write_record(w: &World, id: &str, pid: u32, started: u64, status: &str) {
    let host = String::from_utf8_lossy(&Command::new("hostname").output().unwrap().stdout).trim().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let dir = w.run_dir(id);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let record = serde_json::json!({
        "run_id": id, "flow": "full", "namespace": format!("run-e2e-full-{id}"),
        "controller_namespace": format!("ctl-e2e-full-{id}"), "label": LABEL, "pid": pid, "host": host,
        "started": started, "heartbeat": now - 3 * 3600, "status": status, "kept": true, "gitea": false,
    });
    std::fs::write(dir.join("run.json"), record.to_string()).unwrap();
}

#[test]
fn stale_cleanup_as_another_user_never_reaps_a_live_run_and_reports_corrupt_records() {
    let w = World::new("\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [[\"true\"]]\n");
    w.fake.with_cluster("e2e").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // Owned by pid 1 (root's init, alive, started long ago), which another user may not signal:
    // kill(1, 0) fails with EPERM for them, and EPERM means alive.
    write_record(&w, "other1", 1, now, "running");
    // A finished run whose owner lives on is listed as such, not as "owner gone".
    write_record(&w, "done1", std::process::id(), now, "failed");
    std::fs::create_dir_all(w.run_dir("broken1")).unwrap();
    std::fs::write(w.run_dir("broken1").join("run.json"), "{\"run_id\": \"broken1\", trunc").unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let as_other_user = |args: &[&str]| {
        // The state dir open to that user (root may signal anything; nobody may not signal pid 1).
        chmod_tree(w.sandbox.state.path());
        let mut cmd = w.xtask(args);
        cmd.env("HOME", w.sandbox.state.path()).current_dir(w.sandbox.state.path());
        crate::harness::as_another_user(cmd, scratch.path()).output().unwrap()
    };
    let listed = as_other_user(&["runs"]);
    let said = text(&listed);
    assert!(said.contains("broken1") && said.contains("is not a run record"), "{said}");
    let row = |id: &str| said.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_string();
    assert!(row("other1").contains("pid 1 alive"), "{said}");
    assert!(row("done1").contains("alive"), "{said}");

    let out = as_other_user(&["cleanup", "--stale", "--older-than", "2h"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "the corrupt record is a problem: {said}");
    assert!(said.contains("0 stale run(s) reaped"), "{said}");
    assert!(said.contains("broken1") && said.contains("cleanup --run-id broken1"), "{said}");
    assert!(w.run_dir("other1").join("run.json").exists() && w.run_dir("done1").exists());
    let calls = w.fake.journal().unwrap();
    assert!(!calls.iter().any(|c| c.argv[0] == "delete"), "nothing deleted: {calls:?}");
}

fn chmod_tree(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            chmod_tree(&entry.path());
        } else {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o666));
        }
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let w = World::new(THREE_FLOWS);
    let def = w.def.to_str().unwrap();
    let out = w.xtask(&["e2e", "--definition", def, "--flow", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no flow \"nope\"") && text(&out).contains("quickstart-helm"),
        "{}",
        text(&out)
    );
    assert!(w.fake.journal().unwrap().is_empty(), "nothing ran");

    let cases =
        [("timeout = \"0s\"", "is zero"), ("timeout = \"99999999999999999999h\"", "longer than a week")];
    for (line, said) in cases {
        let text_def = std::fs::read_to_string(&w.def).unwrap().replacen(
            "name = \"full\"\n",
            &format!("name = \"full\"\n{line}\n"),
            1,
        );
        std::fs::write(w.dir.path().join("bad.toml"), text_def).unwrap();
        let bad = w.dir.path().join("bad.toml");
        let out = w.xtask(&["setup", "--dry-run", "--definition", bad.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{line}: {}", text(&out));
        assert!(text(&out).contains(said) && text(&out).contains("flow[0] (full).timeout"), "{}", text(&out));
    }
    let long = "a-flow-name-that-is-far-too-long";
    let text_def = std::fs::read_to_string(&w.def).unwrap().replacen(
        "name = \"full\"",
        &format!("name = \"{long}\""),
        1,
    );
    let bad = w.dir.path().join("long.toml");
    std::fs::write(&bad, text_def).unwrap();
    let out = w.xtask(&["setup", "--dry-run", "--definition", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("has 32 characters, at most 19") && text(&out).contains("63"),
        "{}",
        text(&out)
    );
    let out = w.xtask(&["cleanup", "--stale", "--older-than", "99999999999999h"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn reused_gitea_that_restarted_is_noticed_and_reprovisioned_and_a_refused_admin_stops_the_run() {
    let flow = "\n[[flow]]\nname = \"full\"\nsteps = [[\"true\"]]\n";
    let mut w = World::new(flow);
    let out = w.e2e(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("Gitea restarted"), "{}", text(&out));
    // The pod restarts: emptyDir data gone, new SSH host keys.
    w.gitea.restart_with_empty_data().unwrap();
    let out = w.e2e(&[]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("Gitea restarted since shared infra was set up")
            && said.contains("org testorg was made again"),
        "{said}"
    );
    assert_eq!(w.gitea.repos().len(), 0, "the run's repository was made in the new Gitea and cleaned");
    // A Gitea that refuses the admin: said before any run starts.
    let out = w.e2e(&[]).env("E2E_GITEA_ADMIN_PASSWORD", "wrong").output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("refuses its admin") && said.contains("E2E_GITEA_ADMIN_PASSWORD"), "{said}");
}

#[test]
fn flow_env_is_expanded_per_run_and_an_unknown_variable_fails_the_flow_naming_it() {
    let flows = r#"
[[flow]]
name = "full"
gitea = false
env = { GREETING = "run ${E2E_RUN_ID} in ${E2E_TEST_NAMESPACE}" }
steps = [
  ["sh", "-c", "test \"$GREETING\" = \"run $E2E_RUN_ID in $E2E_TEST_NAMESPACE\""],
  # Step arguments: the flow's env and the run's variables expanded; $${ is the shell's own.
  ["sh", "-c", "test \"$${GREETING}\" = \"${GREETING}\" && test \"${E2E_FLOW}\" = full"],
]

[[flow]]
name = "quickstart-helm"
gitea = false
env = { BAD = "${NOT_A_VARIABLE_ANYWHERE}" }
steps = [["true"]]

[[flow]]
name = "quickstart-manifest"
gitea = false
steps = [["echo", "${NOT_IN_ANY_STEP_SCOPE}"]]
"#;
    let w = World::new(flows);
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("1 of 3 flow(s) passed"), "the full flow saw its env: {said}");
    assert!(
        said.contains("unknown variable ${NOT_A_VARIABLE_ANYWHERE}")
            && said.contains("env BAD of flow quickstart-helm"),
        "{said}"
    );
    // An unknown variable in a step argument fails the flow before the step runs.
    assert!(
        said.contains("unknown variable ${NOT_IN_ANY_STEP_SCOPE}")
            && said.contains("step 1 of flow quickstart-manifest"),
        "{said}"
    );
}

#[test]
fn an_exclusive_flow_never_overlaps_the_others_which_still_run_together() {
    let flows = r#"
[[flow]]
name = "full"
gitea = false
exclusive = true
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${E2E_TEST_NAMESPACE}"]]

[[flow]]
name = "quickstart-helm"
gitea = false
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${E2E_TEST_NAMESPACE}"]]

[[flow]]
name = "quickstart-manifest"
gitea = false
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${E2E_TEST_NAMESPACE}"]]
"#;
    let w = World::new(flows);
    w.fake.rule(Rule::new("kubectl", "^wait --for=condition=ready pod").delay_ms(700)).unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("alone (exclusive"), "the summary shows it: {said}");
    let calls = w.fake.journal().unwrap();
    let waits: Vec<&Call> = calls.iter().filter(|c| c.tool == "kubectl" && c.argv[0] == "wait").collect();
    assert_eq!(waits.len(), 3);
    let flow_of = |c: &Call| c.env.get("E2E_FLOW").cloned().unwrap_or_default();
    let full = waits.iter().find(|c| flow_of(c) == "full").unwrap();
    let others: Vec<&&Call> = waits.iter().filter(|c| flow_of(c) != "full").collect();
    for o in &others {
        assert!(!full.overlaps(o), "the exclusive flow overlapped {}", flow_of(o));
    }
    assert!(others[0].overlaps(others[1]), "the other two still ran at the same time");
}

#[test]
fn needs_orders_flows_and_an_unknown_need_is_refused() {
    let flows = r#"
[[flow]]
name = "full"
gitea = false
needs = ["quickstart-helm"]
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${E2E_TEST_NAMESPACE}"]]

[[flow]]
name = "quickstart-helm"
gitea = false
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${E2E_TEST_NAMESPACE}"]]
"#;
    let w = World::new(flows);
    w.fake.rule(Rule::new("kubectl", "^wait --for=condition=ready pod").delay_ms(300)).unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let wait_of = |flow: &str| {
        calls
            .iter()
            .find(|c| c.argv[0] == "wait" && c.env.get("E2E_FLOW").map(String::as_str) == Some(flow))
            .unwrap()
    };
    assert!(wait_of("quickstart-helm").end_ns <= wait_of("full").start_ns);
    let bad = std::fs::read_to_string(&w.def)
        .unwrap()
        .replace("needs = [\"quickstart-helm\"]", "needs = [\"nope\"]");
    let path = w.dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let out = w.xtask(&["setup", "--dry-run", "--definition", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("needs: \"nope\" is no other flow, deploy or port-forward"),
        "{}",
        text(&out)
    );
}

#[test]
fn flow_checks_run_after_the_steps_and_a_failing_one_fails_its_flow_saying_what_it_saw() {
    let flows = r#"
[[flow]]
name = "full"
gitea = false
env = { PROVIDER = "p-${E2E_RUN_ID}" }
steps = [["kubectl", "get", "namespaces"]]
[[flow.check]]
condition = "gitprovider/${PROVIDER}"
status = "False"
reason = "ConnectionFailed"
message = "auth\\w* failed"

[[flow]]
name = "quickstart-helm"
gitea = false
steps = [["true"]]
[[flow.check]]
exists = "validatingwebhookconfiguration/never-there"
timeout = "1s"
"#;
    let w = World::new(flows);
    w.fake
        .rule(Rule::new("kubectl", "^get gitprovider p-").stdout(
            &serde_json::json!({ "status": { "conditions": [
                { "type": "Ready", "status": "False", "reason": "ConnectionFailed", "message": "authentication failed" }
            ]}})
            .to_string(),
        ))
        .unwrap();
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("1 of 2 flow(s) passed"), "{said}");
    assert!(
        said.contains("check 1 of 1 (exists)")
            && said.contains("validatingwebhookconfiguration never-there")
            && said.contains("it does not exist"),
        "{said}"
    );
    // The full flow's check ran after its step, on the run's object name, in the run's namespace.
    let lines: Vec<String> = w.fake.journal().unwrap().iter().map(|c| c.line()).collect();
    let step = lines.iter().position(|l| l.starts_with("kubectl get namespaces")).expect("the step ran");
    let check = lines
        .iter()
        .position(|l| l.starts_with("kubectl get gitprovider p-") && l.contains("--namespace run-e2e-full-"))
        .unwrap_or_else(|| panic!("the check ran: {lines:#?}"));
    assert!(step < check);
}

/// The daily loop: change an image's source, run the e2e again. The image is rebuilt with a new
/// digest tag, loaded, and the flow runs against it; shared infra that did not change is not
/// touched.
#[test]
fn the_next_e2e_after_a_source_change_runs_the_new_digest_and_nothing_stale() {
    let flows = "\n[[flow]]\nname = \"full\"\ngitea = false\n\
                 steps = [[\"sh\", \"-c\", \"echo ${IMAGE_APP} >> SEEN_FILE\"]]\n";
    let w = World::new(flows);
    let def = std::fs::read_to_string(&w.def).unwrap();
    let static_tag = "tag = \"app:t\"\ndockerfile = \"docker/app.Dockerfile\"\n";
    assert!(def.contains(static_tag));
    let seen = w.dir.path().join("seen.txt");
    std::fs::write(
        &w.def,
        def.replace(
            static_tag,
            "tag = \"app:${DIGEST}\"\ndockerfile = \"docker/app.Dockerfile\"\ncontext = \"ctx\"\n",
        )
        .replace("SEEN_FILE", seen.to_str().unwrap()),
    )
    .unwrap();
    std::fs::create_dir_all(w.dir.path().join("ctx")).unwrap();
    std::fs::write(w.dir.path().join("ctx/main.txt"), "v1\n").unwrap();
    // The image the flow's step was handed, last run.
    let seen_image = || std::fs::read_to_string(&seen).unwrap().lines().last().unwrap().to_string();
    let built = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.line().starts_with("docker build -t app:"))
            .map(|c| c.argv[2].clone())
            .collect()
    };

    let out = w.e2e(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = w.fake.journal().unwrap();
    let v1 = built(&first);
    assert_eq!(v1.len(), 1);
    assert_eq!(seen_image(), v1[0], "the flow ran what was built");

    std::fs::write(w.dir.path().join("ctx/main.txt"), "v2\n").unwrap();
    let out = w.e2e(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("shared infra: 2 of 4 task(s) up to date, 2 run"), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let second = &calls[first.len()..];
    let v2 = built(second);
    assert_eq!(v2.len(), 1);
    assert_ne!(v2[0], v1[0]);
    assert!(second.iter().any(|c| c.line().starts_with(&format!("kind load docker-image {} ", v2[0]))));
    assert!(!second.iter().any(|c| c.line().starts_with("helm upgrade")), "gitea was up to date");
    assert_eq!(seen_image(), v2[0], "the flow ran the new image, not the stale one");
}

/// CI shards: `--shard 1/2` and `--shard 2/2` together run every flow exactly once, each after
/// ensuring shared infra, and their JUnit reports join into one that counts every flow.
#[test]
fn two_shards_run_every_flow_exactly_once_and_their_junit_reports_merge() {
    let mut flows = String::new();
    for (name, timeout) in [("full", "30m"), ("quickstart-helm", "20m"), ("quickstart-manifest", "20m")] {
        flows.push_str(&format!(
            "\n[[flow]]\nname = \"{name}\"\ngitea = false\ntimeout = \"{timeout}\"\nsteps = [[\"sh\", \"-c\", \"echo {name} >> RAN_FILE\"]]\n"
        ));
    }
    let w = World::new(&flows);
    let ran = w.dir.path().join("ran.txt");
    let def = std::fs::read_to_string(&w.def).unwrap();
    std::fs::write(&w.def, def.replace("RAN_FILE", ran.to_str().unwrap())).unwrap();
    let reports: Vec<PathBuf> = (1..=2).map(|k| w.dir.path().join(format!("junit-{k}.xml"))).collect();
    for (k, report) in reports.iter().enumerate() {
        let shard = format!("{}/2", k + 1);
        let out =
            w.e2e(&["--parallel", "--shard", &shard, "--junit", report.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains(&format!("shard {shard}:")), "{}", text(&out));
        let junit = std::fs::read_to_string(report).unwrap();
        assert!(junit.contains(&format!("<testsuite name=\"e2e shard {shard}\"")), "{junit}");
    }
    let mut seen: Vec<String> = std::fs::read_to_string(&ran).unwrap().lines().map(String::from).collect();
    seen.sort();
    assert_eq!(seen, ["full", "quickstart-helm", "quickstart-manifest"], "every flow exactly once");

    let merged = w.dir.path().join("junit.xml");
    let out = w.sandbox.run(&[
        "junit-merge",
        "--output",
        merged.to_str().unwrap(),
        reports[0].to_str().unwrap(),
        reports[1].to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let junit = std::fs::read_to_string(&merged).unwrap();
    assert!(junit.contains("<testsuites tests=\"3\" failures=\"0\" errors=\"0\""), "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), 3, "{junit}");
    // A shard count above the flows leaves a shard with nothing: it says so and passes.
    let out = w.e2e(&["--shard", "4/4"]).output().unwrap();
    let said = text(&out);
    assert!(out.status.success() && said.contains("shard 4/4: 0 of 3 flow(s): none"), "{said}");
    assert!(w.sandbox.run(&["e2e", "--shard", "3/2"]).status.code() == Some(2));
}

/// The e2e graph's timing report (the `timing report: <path>` line) as (id → (start, end, status)).
fn timings(out: &std::process::Output) -> std::collections::BTreeMap<String, (f64, f64, String)> {
    let said = text(out);
    let path = said
        .lines()
        .find_map(|l| l.strip_prefix("timing report: "))
        .unwrap_or_else(|| panic!("no timing report: {said}"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.trim()).unwrap()).unwrap();
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                (
                    t["start_s"].as_f64().unwrap_or(-1.0),
                    t["end_s"].as_f64().unwrap_or(-1.0),
                    t["status"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// One graph from build to verdict: a flow that needs only the gitea deploy starts while a slow
/// deploy still runs; a flow that needs the slow deploy starts after it ends. When the slow deploy
/// fails, only its flow fails (not run, naming it); the other still runs and passes.
#[test]
fn a_flow_starts_when_what_it_needs_is_up_and_a_failed_deploy_fails_only_its_flows() {
    let flows = |slow: &str| {
        format!(
            r#"
[[deploy]]
name = "slow"
namespace = "slow-e2e"
command = {slow}

[[flow]]
name = "needs-gitea"
gitea = false
needs = ["deploy:gitea"]
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${{E2E_TEST_NAMESPACE}}"]]

[[flow]]
name = "needs-slow"
gitea = false
needs = ["slow"]
steps = [["kubectl", "wait", "--for=condition=ready", "pod", "--all", "--namespace", "${{E2E_TEST_NAMESPACE}}"]]
"#
        )
    };
    let w = World::new(&flows(r#"["sleep", "3"]"#));
    let out = w.e2e(&["--parallel"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = timings(&out);
    let slow = &t["deploy:slow"];
    let (early, late) = (&t["flow:needs-gitea"], &t["flow:needs-slow"]);
    assert!(
        early.0 < slow.1,
        "the gitea flow started ({}) before the slow deploy ended ({})",
        early.0,
        slow.1
    );
    assert!(late.0 >= slow.1, "the slow flow started ({}) after the slow deploy ended ({})", late.0, slow.1);
    // The prometheus forward (no deploy into its namespace) waits for every deploy.
    assert!(t["forward:prometheus"].0 >= slow.1, "{t:?}");

    // The whole graph, without running it.
    let plan = w.e2e(&["--parallel", "--dry-run"]).output().unwrap();
    let said = text(&plan);
    assert_eq!(plan.status.code(), Some(0), "{said}");
    let line = |id: &str| said.lines().find(|l| l.trim_start().starts_with(id)).unwrap_or("").to_string();
    assert!(
        line("flow:needs-gitea").contains("deploy:gitea")
            && !line("flow:needs-gitea").contains("deploy:slow"),
        "{said}"
    );
    assert!(line("flow:needs-slow").contains("deploy:slow"), "{said}");

    let w = World::new(&flows(r#"["false"]"#));
    let out = w.e2e(&["--parallel"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let t = timings(&out);
    assert_eq!(t["deploy:slow"].2, "failed", "{t:?}");
    assert_eq!(t["flow:needs-gitea"].2, "ok", "the flow that does not need it ran: {said}");
    assert_eq!(t["flow:needs-slow"].2, "skipped", "{said}");
    let junit = std::fs::read_to_string(w.sandbox.state.path().join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"2\" failures=\"1\""), "{junit}");
    let failed = junit.split("name=\"needs-slow\"").nth(1).unwrap_or("");
    assert!(failed.contains("<failure") && failed.contains("deploy:slow"), "{junit}");
}
