//! A shared, existing cluster that two machines' e2e runs meet in (two sandboxes with their own
//! state dirs and kubeconfigs against one test API server, `testkit::kube_api`, driven by the
//! real kubectl and helm): Leases decide who sets shared infra up, and record the runs so that
//! every machine sees them and reaps what a dead owner left. Docker stays fake (the image is
//! pushed to a registry that is not there). One test keeps the fake kubectl: it tests the fake's
//! own store (see its doc).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::kube_api::KubeApi;
use testkit::FakeToolchain;

use crate::harness::{text, Sandbox};

struct Cluster {
    api: KubeApi,
    fake: FakeToolchain,
    dir: tempfile::TempDir,
    def: PathBuf,
}

impl Cluster {
    /// An existing cluster `shared-dev` (an API server keeping objects), an image pushed to its
    /// registry, one shared deploy, and a flow that runs until the test calls [`Cluster::release`]
    /// (at most a minute, so nothing outlives a failed test). Runs' Leases last `lease` seconds.
    fn new(lease: u64) -> Cluster {
        let step = "i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
        let api = KubeApi::start().unwrap();
        let fake = FakeToolchain::with_real_clients(env!("CARGO_BIN_EXE_fake-tool"), &api, "dev").unwrap();
        crate::real_cluster::assert_real_clients(&fake);
        let dir = tempfile::tempdir().unwrap();
        // the shared infra's chart, rendered and installed by the real helm
        std::fs::create_dir_all(dir.path().join("infra/templates")).unwrap();
        std::fs::write(dir.path().join("infra/Chart.yaml"), "apiVersion: v2\nname: infra\nversion: 0.1.0\n")
            .unwrap();
        std::fs::write(dir.path().join("infra/values.yaml"), "image: none\n").unwrap();
        std::fs::write(
            dir.path().join("infra/templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: infra\ndata:\n  image: {{ .Values.image | quote }}\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
        std::fs::write(dir.path().join("docker/app.Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(dir.path().join("ctx/main.txt"), "v1\n").unwrap();
        let def = dir.path().join("e2e.toml");
        std::fs::write(
            &def,
            format!(
                r#"[cluster]
name = "dev"
provider = "existing"
context = "shared-dev"
registry = "registry.example.test/e2e"
lease-duration = "{lease}s"

[[image]]
name = "app"
tag = "app:${{DIGEST}}"
dockerfile = "docker/app.Dockerfile"
context = "ctx"

[[deploy]]
name = "infra"
namespace = "infra"
images = ["app"]
helm = {{ chart = "infra", set = {{ "image" = "${{IMAGE_APP}}" }} }}

[[flow]]
name = "full"
gitea = false
steps = [["sh", "-c", "{step}"]]
"#
            ),
        )
        .unwrap();
        Cluster { api, fake, dir, def }
    }

    /// Ends every flow step (theirs wait for this file).
    fn release(&self) {
        std::fs::write(self.dir.path().join("release"), "").unwrap();
    }

    /// A machine: its own state dir and HOME, whose kubeconfig has the shared cluster's context.
    fn machine(&self) -> Sandbox {
        let m = Sandbox::with_fake(&self.fake);
        std::fs::create_dir_all(m.home.path().join(".kube")).unwrap();
        self.api.write_kubeconfig(&m.home.path().join(".kube/config"), "shared-dev").unwrap();
        m
    }

    fn e2e(&self, machine: &Sandbox) -> Running {
        let child = machine
            .xtask(&["e2e", "--definition", self.def.to_str().unwrap()])
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running(Some(child))
    }

    fn run_leases(&self) -> Vec<Value> {
        self.api
            .objects("coordination.k8s.io", "leases", "default")
            .into_iter()
            .filter(|l| l["metadata"]["labels"]["configbutler.ai/e2e-run-id"].is_string())
            .collect()
    }
}

/// The namespaces the API server holds (not those being deleted).
fn namespaces(c: &Cluster) -> Vec<String> {
    c.api
        .objects("", "namespaces", "")
        .iter()
        .filter(|n| !n["metadata"]["deletionTimestamp"].is_string())
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect()
}

impl Drop for Cluster {
    /// A failed test still ends the flow steps it started.
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.path().join("release"), "");
    }
}

/// A running `cargo xtask e2e`, killed if the test fails before it ends.
struct Running(Option<Child>);

impl Running {
    /// Its exit code and what it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        (out.status.code(), text(&out))
    }

    /// SIGKILL: no cleanup, no release.
    fn sigkill(mut self) {
        let mut child = self.0.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `what` for up to a minute (a loaded CI machine runs many e2e invocations at once);
/// on timeout says what the runs in `watch` printed.
fn eventually(what: &str, watch: Vec<&mut Running>, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > Duration::from_secs(60) {
            let said: Vec<String> = watch
                .into_iter()
                .filter_map(|r| r.0.take())
                .map(|mut child| {
                    let _ = child.kill();
                    child.wait_with_output().map(|o| text(&o)).unwrap_or_default()
                })
                .collect();
            panic!("never: {what}\n{}", said.join("\n----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_machines_share_an_existing_cluster_set_it_up_once_and_see_each_others_runs() {
    // Each flow runs until both runs are recorded and listed: they overlap for sure.
    let c = Cluster::new(30);
    let (a, b) = (c.machine(), c.machine());
    let (mut ea, mut eb) = (c.e2e(&a), c.e2e(&b));
    eventually("both runs recorded in the cluster", vec![&mut ea, &mut eb], || c.run_leases().len() == 2);
    // Each machine lists both runs: its own and the other's, from the cluster.
    for m in [&a, &b] {
        let out = m.run(&["runs", "--definition", c.def.to_str().unwrap()]);
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        let cluster_rows: Vec<&str> = said
            .split("\n\nRUN")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" full "))
            .collect();
        assert_eq!(cluster_rows.len(), 2, "both machines' runs, from the cluster: {said}");
        assert!(cluster_rows.iter().all(|l| l.contains(" alive ")), "{said}");
        // And its own run, from its local state.
        assert!(said.contains("pid ") && said.contains(" running "), "{said}");
    }
    c.release();
    for run in [ea, eb] {
        let (code, said) = run.finish();
        assert_eq!(code, Some(0), "{said}");
    }
    // Shared infra set up exactly once: one revision of its release (the real helm's storage).
    assert!(c.api.object("", "secrets", "infra", "sh.helm.release.v1.infra.v1").is_some());
    assert!(c.api.object("", "secrets", "infra", "sh.helm.release.v1.infra.v2").is_none(), "installed twice");
    let cm = c.api.object("", "configmaps", "infra", "infra").expect("the chart's object");
    assert!(
        cm["data"]["image"].as_str().is_some_and(|i| i.starts_with("registry.example.test/e2e/app:")),
        "{cm}"
    );
    assert!(
        !c.fake.journal().unwrap().iter().any(|call| call.tool == "kind"),
        "an existing cluster: no kind"
    );
    // The shared-infra Lease was taken by creating it, then by taking the freed one over (a
    // replace: its resourceVersion moved past the create's).
    let lease =
        c.api.object("coordination.k8s.io", "leases", "default", "e2e-shared-infra").expect("the Lease");
    assert!(lease["spec"]["holderIdentity"].is_string(), "{lease}");
    // The machines' logs of the calls they made (the exec layer logs every one).
    let logged: String = [&a, &b]
        .iter()
        .flat_map(|m| crate::harness::files_ending(m.state.path(), "log"))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    for call in ["kubectl create --namespace default -f -", "kubectl replace --namespace default -f -"] {
        assert!(logged.contains(call), "no {call:?} logged:\n{logged}");
    }
    // Finished runs took their records with them.
    assert!(c.run_leases().is_empty());
}

#[test]
fn a_run_whose_owner_was_sigkilled_is_reaped_after_its_lease_expires_and_a_live_one_never_is() {
    // A run renews its Lease every third of its duration (4 s), and Lease times have whole
    // seconds: even with a renewal 2 s late, a run killed at K holds its Lease until K + 5 s.
    let lease = Duration::from_secs(12);
    let c = Cluster::new(lease.as_secs());
    let (dead, live, reaper) = (c.machine(), c.machine(), c.machine());
    let mut killed = c.e2e(&dead);
    eventually("the first run recorded", vec![&mut killed], || c.run_leases().len() == 1);
    let victim = c.run_leases()[0]["metadata"]["name"].as_str().unwrap().to_string();
    // SIGKILL: no cleanup, no release; its Lease stops being renewed.
    killed.sigkill();
    let killed_at = Instant::now();

    // Before the dead run's Lease expires, nothing is reaped.
    let cleanup = ["cleanup", "--stale", "--older-than", "0s", "--definition", c.def.to_str().unwrap()];
    let out = reaper.run(&cleanup);
    let said = text(&out);
    let first = format!("{said} ({:?} after the kill)", killed_at.elapsed());
    assert!(out.status.success(), "{said}");
    if killed_at.elapsed() < Duration::from_secs(5) {
        assert!(said.contains("0 stale run(s) reaped"), "{said}");
    } else {
        // Too slow a machine to tell: the Lease may have expired meanwhile.
        eprintln!("the first cleanup ended {:?} after the kill: not judged", killed_at.elapsed());
    }

    let mut alive = c.e2e(&live);
    eventually("the live run recorded", vec![&mut alive], || {
        c.run_leases().iter().any(|l| l["metadata"]["name"].as_str() != Some(victim.as_str()))
    });
    // After it expired (the duration without renewal, and a second for the rounding), the dead
    // run is reaped from another machine; the live one, renewed all along, is not.
    if let Some(wait) = (lease + Duration::from_secs(2)).checked_sub(killed_at.elapsed()) {
        std::thread::sleep(wait);
    }
    let out = reaper.run(&cleanup);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("1 stale run(s) reaped") && said.contains("Lease expired"),
        "{said}\n{:?} after the kill; first cleanup: {first}",
        killed_at.elapsed(),
    );
    let left: Vec<String> = c
        .run_leases()
        .iter()
        .map(|l| l["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], victim, "the live run is still recorded");
    let dead_id = victim.trim_start_matches("e2e-run-");
    // Its namespaces and cluster-scoped objects went by its label; not the live run's.
    let namespaces = namespaces(&c);
    assert!(!namespaces.iter().any(|n| n.ends_with(dead_id)), "{namespaces:?}");
    assert!(
        namespaces.iter().any(|n| n.starts_with("run-e2e-full-") && !n.ends_with(dead_id)),
        "{namespaces:?}"
    );
    c.release();
    let (code, said) = alive.finish();
    assert_eq!(code, Some(0), "the live run passes: {said}");
}

/// The fake API server keeps what it holds when a client dies mid-call (the reaper of a
/// SIGKILLed run kills its in-flight kubectl), as a real one does; it lost every object once,
/// which made the reaping test above flaky. And a store it cannot read is an error, never an
/// empty cluster. Fake kubectl on purpose: this tests the fake's own store (what the other
/// fake-kubectl tests rely on), which a real client cannot exercise.
#[test]
fn the_fake_api_server_loses_nothing_when_a_kubectl_is_killed_mid_call() {
    let fake = crate::harness::fake();
    fake.with_context("shared-dev").unwrap();
    fake.with_objects().unwrap();
    let kubectl = fake.bin_dir().join("kubectl");
    let apply = |name: &str| {
        let mut child = Command::new(&kubectl)
            .args(["create", "-f", "-", "--context", "shared-dev"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(ns.to_string().as_bytes());
        child
    };
    assert!(apply("kept").wait().unwrap().success());
    // Kill clients at every point of their call (a few ms each).
    for i in 0..60u64 {
        let mut child = apply(&format!("victim-{i}"));
        std::thread::sleep(Duration::from_micros(i * 97 % 4000));
        let _ = child.kill();
        let _ = child.wait();
    }
    let listed = |fake: &FakeToolchain| {
        Command::new(fake.bin_dir().join("kubectl"))
            .args(["get", "namespaces", "--output", "json", "--context", "shared-dev"])
            .output()
            .unwrap()
    };
    let out = listed(&fake);
    assert!(out.status.success(), "{}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|n| n["metadata"]["name"].as_str()).collect();
    assert!(names.contains(&"kept"), "{names:?}");

    std::fs::write(fake.dir().join("state.json"), "{\"clusters\": [").unwrap();
    let out = listed(&fake);
    assert!(!out.status.success(), "a torn store read as an empty cluster: {}", text(&out));
    assert!(text(&out).contains("state.json"), "{}", text(&out));
}
