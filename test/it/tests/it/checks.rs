//! The quickstart checks: conditions, CRDs, rollouts and pods through the real kubectl against
//! the test API server (`testkit::kube_api`), files through real git. The fake kubectl remains
//! in `the_check_command_runs_conditions_and_git_checks_for_a_run` (scripted answers and the
//! journal's "nothing ran"; its kubectl checks also run for real in
//! `real_cluster::the_check_command_reads_applies_and_deletes_through_the_real_kubectl`) and in
//! the flag-refusal test (nothing may reach kubectl there, which the fake's journal shows).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use operator_e2e::e2e::checks::runner::{file_in_checkout, Checks, Expect, FileState};
use testkit::kube_api::KubeApi;
use testkit::{FakeToolchain, Rule};
use xshell::Shell;

/// The fake toolchain with the cluster whose context the checks name.
fn fake() -> FakeToolchain {
    let fake = crate::harness::fake();
    fake.with_cluster("e2e").unwrap();
    fake
}

fn condition_json(status: &str, reason: &str, message: &str) -> String {
    serde_json::json!({ "status": { "conditions": [
        { "type": "Synced", "status": "True" },
        { "type": "Ready", "status": status, "reason": reason, "message": message },
    ]}})
    .to_string()
}

fn checks<'a>(sh: &'a Shell, log: &Path) -> Checks<'a> {
    Checks {
        sh,
        context: "kind-e2e".into(),
        namespace: "run-e2e-full-abc".into(),
        log: log.to_path_buf(),
        poll: Duration::from_millis(100),
    }
}

/// The test API server with a kubeconfig naming it `kind-e2e`, the namespace the checks read, and
/// a shell whose kubectl is the real one (the machine's PATH) reading that kubeconfig.
fn real() -> (KubeApi, tempfile::TempDir, Shell) {
    let api = KubeApi::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "kind-e2e").unwrap();
    let sh = Shell::new().unwrap();
    sh.set_var("KUBECONFIG", &kc);
    sh.set_var("HOME", dir.path());
    real_kubectl(&sh, &["create", "namespace", "run-e2e-full-abc"], None);
    (api, dir, sh)
}

/// The real kubectl in `sh`'s environment (`stdin`: a manifest for `-f -`).
fn real_kubectl(sh: &Shell, args: &[&str], stdin: Option<&str>) -> String {
    let kubectl = testkit::real::kubectl();
    let cmd = xshell::cmd!(sh, "{kubectl} {args...} --context kind-e2e");
    let out = match stdin {
        Some(text) => cmd.stdin(text).ignore_status().output(),
        None => cmd.ignore_status().output(),
    }
    .unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CRDS: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gittargets.configbutler.ai\nspec:\n  group: configbutler.ai\n  scope: Namespaced\n  names: {plural: gittargets, singular: gittarget, kind: GitTarget}\n  versions: [{name: v1alpha1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gitproviders.configbutler.ai\nspec:\n  group: configbutler.ai\n  scope: Namespaced\n  names: {plural: gitproviders, singular: gitprovider, kind: GitProvider}\n  versions: [{name: v1alpha1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n";

fn set_status(sh: &Shell, kind: &str, name: &str, status: &str, reason: &str, message: &str) {
    let patch = condition_json(status, reason, message);
    real_kubectl(
        sh,
        &[
            "patch",
            kind,
            name,
            "--namespace",
            "run-e2e-full-abc",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ],
        None,
    );
}

/// Conditions read by the real kubectl from the status a controller wrote (the status
/// subresource): polled until they match, a mismatch at the deadline saying what was seen.
#[test]
fn conditions_are_polled_until_they_match_and_a_mismatch_says_what_was_seen() {
    let (_api, dir, sh) = real();
    real_kubectl(&sh, &["apply", "--server-side", "-f", "-"], Some(CRDS));
    for (kind, name) in [("GitTarget", "t1"), ("GitProvider", "bad")] {
        let cr = format!("apiVersion: configbutler.ai/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: run-e2e-full-abc\nspec: {{}}\n");
        real_kubectl(&sh, &["apply", "--server-side", "-f", "-"], Some(&cr));
    }
    set_status(&sh, "gittarget", "t1", "False", "Pending", "waiting");
    set_status(
        &sh,
        "gitprovider",
        "bad",
        "False",
        "ConnectionFailed",
        "authentication failed: check the credentials in secret git-creds-invalid",
    );
    let c = checks(&sh, &dir.path().join("checks.log"));
    // Ready comes once the check has seen it not ready (a controller catching up).
    let log = dir.path().join("checks.log");
    let later = {
        let sh = Shell::new().unwrap();
        sh.set_var("KUBECONFIG", dir.path().join("kubeconfig"));
        sh.set_var("HOME", dir.path());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !std::fs::read_to_string(&log).unwrap_or_default().contains("get gittarget t1")
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            set_status(&sh, "gittarget", "t1", "True", "Ready", "synced");
        })
    };
    c.condition("gittarget", "t1", "Ready", &Expect::is_true(), Duration::from_secs(20)).unwrap();
    later.join().unwrap();
    let logged = std::fs::read_to_string(dir.path().join("checks.log")).unwrap();
    assert!(logged.matches("get gittarget t1").count() >= 2, "polled until Ready=True:\n{logged}");

    c.condition(
        "gitprovider",
        "bad",
        "Ready",
        &Expect::is_false("ConnectionFailed", "check the credentials"),
        Duration::from_secs(5),
    )
    .unwrap();

    let start = Instant::now();
    let err = c
        .condition("gitprovider", "bad", "Ready", &Expect::is_true(), Duration::from_millis(600))
        .unwrap_err()
        .to_string();
    // Not a speed target: a check that never gave up would never return.
    assert!(start.elapsed() < Duration::from_secs(60), "gives up at its deadline");
    assert!(
        err.contains("expected Ready=True")
            && err.contains("ConnectionFailed")
            && err.contains("run-e2e-full-abc"),
        "{err}"
    );
}

/// CRDs, rollouts and availability read by the real kubectl: a Deployment whose image the node
/// lacks never rolls out, and the check says which and where.
#[test]
fn crds_rollouts_and_pods_report_what_is_wrong() {
    let (api, dir, sh) = real();
    let images = dir.path().join("state.json");
    std::fs::write(&images, r#"{"node_images": {"e2e": ["demo:1"]}}"#).unwrap();
    api.images_loaded_in(&images, "e2e");
    real_kubectl(&sh, &["apply", "--server-side", "-f", "-"], Some(CRDS));
    let c = checks(&sh, &dir.path().join("checks.log"));
    c.crds_present(&["gitproviders.configbutler.ai"]).unwrap();
    let err = c
        .crds_present(&["gitproviders.configbutler.ai", "watchrules.configbutler.ai"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("CRDs missing: watchrules.configbutler.ai"), "{err}");
    for (name, image) in [("demo", "demo:1"), ("stuck", "stuck:1")] {
        let d = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: run-e2e-full-abc\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers: [{{name: app, image: '{image}'}}]\n");
        real_kubectl(&sh, &["apply", "--server-side", "-f", "-"], Some(&d));
    }
    c.rollout_status("demo", Duration::from_secs(30)).unwrap();
    let err = format!("{:#}", c.rollout_status("stuck", Duration::from_secs(2)).unwrap_err());
    assert!(
        err.contains("deployment stuck in run-e2e-full-abc did not roll out") && err.contains("timed out"),
        "{err}"
    );
    c.deployment_available("demo", Duration::from_secs(30)).unwrap();
    c.pods_ready("app=demo", Duration::from_secs(30)).unwrap();
    let err = format!("{:#}", c.pods_ready("app=stuck", Duration::from_secs(2)).unwrap_err());
    assert!(err.contains("pods app=stuck in run-e2e-full-abc were not ready within 2s"), "{err}");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@e2e.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@e2e.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_file_must_appear_change_and_vanish_each_with_a_new_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, writer, checkout) =
        (dir.path().join("repo.git"), dir.path().join("writer"), dir.path().join("checkout"));
    git(dir.path(), &["init", "-q", "--bare", "--initial-branch=main", bare.to_str().unwrap()]);
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), writer.to_str().unwrap()]);
    std::fs::write(writer.join("README.md"), "x\n").unwrap();
    git(&writer, &["add", "."]);
    git(&writer, &["commit", "-q", "-m", "init"]);
    git(&writer, &["push", "-q", "origin", "HEAD:main"]);
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), checkout.to_str().unwrap()]);
    let sh = Shell::new().unwrap();
    let log = dir.path().join("checks.log");
    let wait = Duration::from_secs(10);
    let commit = |content: Option<&str>, message: &str| {
        match content {
            Some(c) => std::fs::write(writer.join("status.txt"), c).unwrap(),
            None => std::fs::remove_file(writer.join("status.txt")).unwrap(),
        }
        git(&writer, &["add", "-A"]);
        git(&writer, &["commit", "-q", "-m", message]);
        git(&writer, &["push", "-q", "origin", "HEAD:main"]);
    };

    commit(Some("v1\n"), "appear");
    let c1 = file_in_checkout(&sh, &checkout, "status.txt", &FileState::Appears, 1, wait, &log).unwrap();
    assert_eq!(c1, 2);
    commit(Some("v2\n"), "change");
    let c2 =
        file_in_checkout(&sh, &checkout, "status.txt", &FileState::Contains("v2".into()), c1, wait, &log)
            .unwrap();
    assert!(c2 > c1);
    commit(None, "vanish");
    let c3 = file_in_checkout(&sh, &checkout, "status.txt", &FileState::Vanishes, c2, wait, &log).unwrap();
    assert!(c3 > c2);

    // Nothing new: the check fails at its deadline saying what it saw.
    let err = file_in_checkout(
        &sh,
        &checkout,
        "status.txt",
        &FileState::Contains("v3".into()),
        c3,
        Duration::from_millis(800),
        &log,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("did not contain \"v3\"") && err.contains("it does not exist"), "{err}");
}

/// `cargo xtask check …` as a Go or shell flow calls it: the run context from the run id.
#[test]
fn the_check_command_runs_conditions_and_git_checks_for_a_run() {
    let fake = fake();
    fake.rule(Rule::new("kubectl", "^get gitprovider bad").stdout(&condition_json(
        "False",
        "ConnectionFailed",
        "authentication failed: check the credentials in secret git-creds-invalid",
    )))
    .unwrap();
    let sandbox = crate::harness::Sandbox::with_fake(&fake);
    let id = "chk1";
    let check = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = sandbox.xtask(&[&["check", "--run-id", id], args].concat());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), crate::harness::text(&out))
    };

    // A condition with status, exact reason and a message regex; the run's namespace and context.
    let (code, _, text) = check(
        &[
            "condition",
            "gitprovider/bad",
            "--status",
            "False",
            "--reason",
            "ConnectionFailed",
            "--message",
            "authenti\\w+ failed",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<String> = fake.journal().unwrap().iter().map(|c| c.line()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("kubectl get gitprovider bad --namespace ")
            && l.contains(id)
            && l.ends_with("--context kind-e2e")),
        "{lines:?}"
    );
    // Not matching within the deadline: exit 1, what was expected and what was seen.
    let (code, _, text) = check(
        &["condition", "gitprovider/bad", "--status", "False", "--message", "^timeout", "--timeout", "1s"],
        &[],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("message matching /^timeout/") && text.contains("reason=\"ConnectionFailed\""),
        "{text}"
    );
    // A check that cannot be right is a usage error.
    assert_eq!(check(&["condition", "gitprovider/bad", "--message", "("], &[]).0, Some(2));
    assert_eq!(check(&["condition", "bad"], &[]).0, Some(2));
    assert_eq!(check(&["promql", "up", "--expect", "positive"], &[]).0, Some(2));

    // A manifest templated with the run context, applied into the run's namespace; a variable the
    // run does not have is refused before kubectl runs.
    let manifests = tempfile::tempdir().unwrap();
    let provider = manifests.path().join("provider.yaml");
    std::fs::write(
        &provider,
        "kind: GitProvider\nmetadata: { name: p-${E2E_RUN_ID}, namespace: ${E2E_TEST_NAMESPACE} }\n",
    )
    .unwrap();
    let (code, _, text) = check(&["apply", provider.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{text}");
    let calls = fake.journal().unwrap();
    let apply =
        calls.iter().find(|c| c.line().starts_with("kubectl apply --server-side")).expect("kubectl apply");
    let stdin = apply.stdin.clone().unwrap_or_default();
    assert!(stdin.contains("name: p-chk1,") && stdin.contains("namespace: run-e2e-"), "{stdin}");
    assert!(!stdin.contains("${"), "{stdin}");
    std::fs::write(&provider, "metadata: { name: ${E2E_NO_SUCH} }\n").unwrap();
    let before = fake.journal().unwrap().len();
    let (code, _, text) = check(&["apply", provider.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("unknown variable ${E2E_NO_SUCH}"), "{text}");
    assert_eq!(fake.journal().unwrap().len(), before, "nothing ran");

    // A cluster-scoped object exists (polled); one that never appears fails at the deadline.
    fake.rule(
        Rule::new("kubectl", "^get validatingwebhookconfiguration op-webhook ")
            .stdout("validatingwebhookconfiguration.admissionregistration.k8s.io/op-webhook\n"),
    )
    .unwrap();
    let (code, _, text) = check(&["exists", "validatingwebhookconfiguration/op-webhook"], &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, _, text) = check(&["exists", "validatingwebhookconfiguration/gone", "--timeout", "1s"], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("validatingwebhookconfiguration gone") && text.contains("it does not exist"),
        "{text}"
    );
    // Delete waits for the object to be gone and tolerates its absence.
    let (code, _, text) = check(&["delete", "configmap/cm-${E2E_RUN_ID}"], &[]);
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<String> = fake.journal().unwrap().iter().map(|c| c.line()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("kubectl delete configmap cm-chk1 --namespace run-e2e-")
            && l.contains("--ignore-not-found --wait=true --timeout=120s")
            && l.ends_with("--context kind-e2e")),
        "{lines:?}"
    );

    // Git checks read the run's checkout (what `gitea setup` clones), pulled until they hold.
    let (code, _, text) = check(&["git-file", "a.yaml"], &[]);
    assert_eq!(code, Some(2), "no checkout yet: {text}");
    assert!(text.contains("gitea setup --run-id chk1"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let (bare, writer) = (dir.path().join("repo.git"), dir.path().join("writer"));
    let checkout = sandbox.run_dir(id).join("checkout");
    std::fs::create_dir_all(sandbox.run_dir(id)).unwrap();
    git(dir.path(), &["init", "-q", "--bare", "--initial-branch=main", bare.to_str().unwrap()]);
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), writer.to_str().unwrap()]);
    let commit = |file: &str, content: &str| {
        std::fs::create_dir_all(writer.join(file).parent().unwrap()).unwrap();
        std::fs::write(writer.join(file), content).unwrap();
        git(&writer, &["add", "-A"]);
        git(&writer, &["commit", "-q", "-m", file]);
        git(&writer, &["push", "-q", "origin", "HEAD:main"]);
    };
    commit("README.md", "x\n");
    git(dir.path(), &["clone", "-q", bare.to_str().unwrap(), checkout.to_str().unwrap()]);
    commit("live/cm.yaml", "data:\n  key: v1\n");
    let (code, stdout, text) = check(&["git-file", "live/cm.yaml", "--contains", "key: v1"], &[]);
    assert_eq!((code, stdout.trim()), (Some(0), "2"), "{text}");
    // --after-commits: the same content without a new commit is not enough.
    let (code, _, text) = check(
        &["git-file", "live/cm.yaml", "--not-contains", "v2", "--after-commits", "2", "--timeout", "1s"],
        &[],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("needed more than 2"), "{text}");

    // A secret's file: its value neither plain nor base64 ("s3cret" is czNjcmV0).
    commit("live/secret.yaml", "data:\n  password: czNjcmV0\n");
    let secret = [("DB_PASSWORD", "s3cret")];
    let (code, _, text) =
        check(&["git-no-secret", "live/secret.yaml", "--secret-env", "DB_PASSWORD"], &secret);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("$DB_PASSWORD base64-encoded") && !text.contains("s3cret"), "{text}");
    commit("live/secret.yaml", "sops:\n  data: ENC[AES256_GCM,data:q83v,iv:Zm9v,tag:YmFy,type:str]\n");
    let (code, _, text) =
        check(&["git-no-secret", "live/secret.yaml", "--secret-env", "DB_PASSWORD"], &secret);
    assert_eq!(code, Some(0), "{text}");
    commit("live/secret.yaml", "password: s3cret\n");
    let (code, _, text) =
        check(&["git-no-secret", "live/secret.yaml", "--secret-env", "DB_PASSWORD"], &secret);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("$DB_PASSWORD in plaintext"), "{text}");
    // The value must come from somewhere.
    assert_eq!(check(&["git-no-secret", "live/secret.yaml", "--secret-env", "NOPE_UNSET"], &[]).0, Some(2));
}

/// `pods-ready` right after an install, before the pods exist: the real `kubectl wait --selector`
/// exits 1 at once with `error: no matching resources found` (pkg/cmd/wait), so the check waits
/// for a pod to match first, then for it to be ready; a selector nothing ever matches fails at
/// the deadline saying so.
#[test]
fn pods_ready_waits_for_the_pods_to_exist_before_waiting_for_them_to_be_ready() {
    let (_api, dir, sh) = real();
    let c = checks(&sh, &dir.path().join("checks.log"));
    // The Deployment (and so its pod) appears only once the check has looked, and found none.
    let log = dir.path().join("checks.log");
    let creator = {
        let sh = Shell::new().unwrap();
        sh.set_var("KUBECONFIG", dir.path().join("kubeconfig"));
        sh.set_var("HOME", dir.path());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !std::fs::read_to_string(&log).unwrap_or_default().contains("get pod --selector app=demo")
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: demo\n  namespace: run-e2e-full-abc\nspec:\n  selector:\n    matchLabels: {app: demo}\n  template:\n    metadata:\n      labels: {app: demo}\n    spec:\n      containers: [{name: app, image: 'demo:1'}]\n";
            real_kubectl(&sh, &["apply", "--server-side", "-f", "-"], Some(d));
        })
    };
    c.pods_ready("app=demo", Duration::from_secs(60)).unwrap();
    creator.join().unwrap();
    let logged = std::fs::read_to_string(dir.path().join("checks.log")).unwrap();
    let first_get = logged.find("get pod --selector app=demo").expect("looked for pods");
    let first_wait = logged.find("wait pod").expect("waited");
    assert!(first_get < first_wait, "{logged}");
    let err = format!("{:#}", c.pods_ready("app=never", Duration::from_secs(1)).unwrap_err());
    assert!(
        err.contains("pods app=never in run-e2e-full-abc were not ready within 1s: no pod matches it"),
        "{err}"
    );
}

/// A kind or name that kubectl would read as a flag (`namespaces/--all` made `kubectl delete
/// namespaces --all`: every namespace of the cluster) is refused, exit 2, before kubectl runs.
#[test]
fn a_check_refuses_a_kind_or_name_that_kubectl_would_read_as_a_flag() {
    let fake = fake();
    let sandbox = crate::harness::Sandbox::with_fake(&fake);
    let cases: &[&[&str]] = &[
        &["delete", "namespaces/--all"],
        &["delete", "pods/-A"],
        &["delete", "--", "--/x"],
        &["delete", "--", "-n/x"],
        &["exists", "pods/--all-namespaces"],
        &["condition", "gitprovider/-A"],
        &["rollout", "--", "--all"],
        &["available", "--", "-A"],
        &["crds", "--", "--all"],
    ];
    for args in cases {
        let out = sandbox.run(&[&["check", "--run-id", "chk2"], *args].concat());
        let said = crate::harness::text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains("starts with '-'"), "{args:?}: {said}");
    }
    let calls = fake.journal().unwrap();
    assert!(calls.is_empty(), "kubectl ran: {:?}", calls.iter().map(|c| c.line()).collect::<Vec<_>>());
}
