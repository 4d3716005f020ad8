//! A shared, existing cluster that two machines' e2e runs meet in (two sandboxes with their own
//! state dirs against one fake API server): Leases decide who sets shared infra up, and record
//! the runs so that every machine sees them and reaps what a dead owner left.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::FakeToolchain;

use crate::harness::{text, Sandbox};

struct Cluster {
    fake: FakeToolchain,
    dir: tempfile::TempDir,
    def: PathBuf,
}

impl Cluster {
    /// An existing cluster `shared-dev` (an API server keeping objects), an image pushed to its
    /// registry, one shared deploy, and a flow that runs `step`.
    fn new(step: &str) -> Cluster {
        let fake = crate::harness::fake();
        fake.with_context("shared-dev").unwrap();
        fake.with_objects().unwrap();
        let dir = tempfile::tempdir().unwrap();
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
lease-duration = "3s"

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
        Cluster { fake, dir, def }
    }

    /// A machine: its own state dir and HOME.
    fn machine(&self) -> Sandbox {
        Sandbox::with_fake(&self.fake)
    }

    fn e2e(&self, machine: &Sandbox) -> Child {
        machine
            .xtask(&["e2e", "--definition", self.def.to_str().unwrap()])
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn run_leases(&self) -> Vec<Value> {
        let out = Command::new(self.fake.bin_dir().join("kubectl"))
            .args(["get", "leases", "--namespace", "default", "--selector", "configbutler.ai/e2e-run-id"])
            .args(["--output", "json", "--context", "shared-dev"])
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

/// The namespaces the fake API server holds.
fn namespaces(c: &Cluster) -> Vec<String> {
    let out = Command::new(c.fake.bin_dir().join("kubectl"))
        .args(["get", "namespaces", "--output", "json", "--context", "shared-dev"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// Polls `what` for up to 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_machines_share_an_existing_cluster_set_it_up_once_and_see_each_others_runs() {
    // Each flow waits until both runs are recorded in the cluster: they overlap for sure.
    let c = Cluster::new("sleep 4");
    let (a, b) = (c.machine(), c.machine());
    let ea = c.e2e(&a);
    let eb = c.e2e(&b);
    eventually("both runs recorded in the cluster", || c.run_leases().len() == 2);
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
    for child in [ea, eb] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let calls = c.fake.journal().unwrap();
    let installs: Vec<String> = calls
        .iter()
        .map(|call| call.line())
        .filter(|l| l.starts_with("helm upgrade --install infra "))
        .collect();
    assert_eq!(installs.len(), 1, "shared infra set up exactly once: {installs:#?}");
    assert!(!calls.iter().any(|call| call.tool == "kind"), "an existing cluster: no kind");
    // The shared-infra Lease was taken by creating it, then by taking the freed one over.
    let leases: Vec<String> = calls
        .iter()
        .filter(|call| {
            call.line().contains("lease")
                || call.stdin.as_deref().is_some_and(|s| s.contains("e2e-shared-infra"))
        })
        .map(|call| call.line())
        .collect();
    assert!(leases.iter().any(|l| l.starts_with("kubectl create --namespace default -f -")), "{leases:#?}");
    assert!(leases.iter().any(|l| l.starts_with("kubectl replace --namespace default -f -")), "{leases:#?}");
    // Finished runs took their records with them.
    assert!(c.run_leases().is_empty());
}

#[test]
fn a_run_whose_owner_was_sigkilled_is_reaped_after_its_lease_expires_and_a_live_one_never_is() {
    let c = Cluster::new("sleep 60");
    let (dead, live, reaper) = (c.machine(), c.machine(), c.machine());
    let mut killed = c.e2e(&dead);
    eventually("the first run recorded", || c.run_leases().len() == 1);
    let victim = c.run_leases()[0]["metadata"]["name"].as_str().unwrap().to_string();
    // SIGKILL: no cleanup, no release; its Lease stops being renewed.
    killed.kill().unwrap();
    let _ = killed.wait();
    let mut alive = c.e2e(&live);
    eventually("the live run recorded", || c.run_leases().len() == 2);

    // Before the dead run's Lease expires, nothing is reaped.
    let out =
        reaper.run(&["cleanup", "--stale", "--older-than", "0s", "--definition", c.def.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 stale run(s) reaped"), "{}", text(&out));

    // After it (3 s without renewal), the dead run is reaped from another machine; the live one,
    // renewed all along, is not.
    std::thread::sleep(Duration::from_secs(4));
    let out =
        reaper.run(&["cleanup", "--stale", "--older-than", "0s", "--definition", c.def.to_str().unwrap()]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 stale run(s) reaped") && said.contains("Lease expired"), "{said}");
    let left: Vec<String> = c
        .run_leases()
        .iter()
        .map(|l| l["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], victim, "the live run is still recorded");
    let calls = c.fake.journal().unwrap();
    let dead_id = victim.trim_start_matches("e2e-run-");
    // Its namespaces and cluster-scoped objects, by its label; not the live run's.
    let by_label = format!("--selector configbutler.ai/e2e-run-id={dead_id} ");
    for what in ["kubectl delete namespace ", "kubectl delete clusterrole,"] {
        assert!(
            calls.iter().any(|call| call.line().starts_with(what) && call.line().contains(&by_label)),
            "{what}... {by_label}: {:#?}",
            calls.iter().map(|c| c.line()).filter(|l| l.contains("delete")).collect::<Vec<_>>()
        );
    }
    let namespaces = namespaces(&c);
    assert!(!namespaces.iter().any(|n| n.ends_with(dead_id)), "{namespaces:?}");
    assert!(
        namespaces.iter().any(|n| n.starts_with("run-e2e-full-") && !n.ends_with(dead_id)),
        "{namespaces:?}"
    );
    let _ = alive.kill();
    let _ = alive.wait();
}
