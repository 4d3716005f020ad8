//! The quickstart checks: conditions and rollouts through the fake kubectl, files through real git.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use operator_e2e::e2e::checks::{file_in_checkout, Checks, Expect, FileState};
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

#[test]
fn conditions_are_polled_until_they_match_and_a_mismatch_says_what_was_seen() {
    let fake = fake();
    fake.rule(
        Rule::new("kubectl", "^get gittarget t1")
            .stdout(&condition_json("False", "Pending", "waiting"))
            .times(2),
    )
    .unwrap();
    fake.rule(Rule::new("kubectl", "^get gittarget t1").stdout(&condition_json("True", "Ready", "synced")))
        .unwrap();
    fake.rule(Rule::new("kubectl", "^get gitprovider bad").stdout(&condition_json(
        "False",
        "ConnectionFailed",
        "authentication failed: check the credentials in secret git-creds-invalid",
    )))
    .unwrap();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    let dir = tempfile::tempdir().unwrap();
    let c = checks(&sh, &dir.path().join("checks.log"));

    c.condition("gittarget", "t1", "Ready", &Expect::is_true(), Duration::from_secs(10)).unwrap();
    let gets = fake
        .journal()
        .unwrap()
        .iter()
        .filter(|call| call.line().starts_with("kubectl get gittarget t1"))
        .count();
    assert_eq!(gets, 3, "polled until Ready=True");
    assert!(fake.journal().unwrap().iter().all(|call| call.argv.contains(&"run-e2e-full-abc".to_string())));

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

#[test]
fn crds_rollouts_and_pods_report_what_is_wrong() {
    let fake = fake();
    fake.rule(
        Rule::new("kubectl", "^get crd")
            .stdout("customresourcedefinition.apiextensions.k8s.io/gitproviders.configbutler.ai\n"),
    )
    .unwrap();
    fake.rule(
        Rule::new("kubectl", "^rollout status deployment/stuck")
            .exit(1)
            .stderr("error: deployment \"stuck\" exceeded its progress deadline\n"),
    )
    .unwrap();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    let dir = tempfile::tempdir().unwrap();
    let c = checks(&sh, &dir.path().join("checks.log"));
    c.crds_present(&["gitproviders.configbutler.ai"]).unwrap();
    let err = c
        .crds_present(&["gitproviders.configbutler.ai", "watchrules.configbutler.ai"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("CRDs missing: watchrules.configbutler.ai"), "{err}");
    c.rollout_status("demo", Duration::from_secs(30)).unwrap();
    let err = format!("{:#}", c.rollout_status("stuck", Duration::from_secs(30)).unwrap_err());
    assert!(
        err.contains("deployment stuck in run-e2e-full-abc did not roll out")
            && err.contains("progress deadline"),
        "{err}"
    );
    c.deployment_available("demo", Duration::from_secs(30)).unwrap();
    fake.rule(Rule::new("kubectl", "^get pod --selector app=demo").stdout("pod/demo-1\n")).unwrap();
    c.pods_ready("app=demo", Duration::from_secs(30)).unwrap();
    let lines: Vec<String> = fake.journal().unwrap().iter().map(|c| c.line()).collect();
    assert!(lines.iter().any(|l| l == "kubectl wait deployment/demo --for=condition=available --namespace run-e2e-full-abc --timeout=30s --context kind-e2e"), "{lines:?}");
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
    let fake = fake();
    fake.with_objects().unwrap();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    let dir = tempfile::tempdir().unwrap();
    let c = checks(&sh, &dir.path().join("checks.log"));
    let kubectl = fake.bin_dir().join("kubectl");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "demo-1", "namespace": "run-e2e-full-abc", "labels": { "app": "demo" } },
    });
    // The pod appears only once the check has looked (and found none) at least once.
    let journal_dir = fake.dir().to_path_buf();
    let creator = std::thread::spawn(move || {
        let looked = || {
            std::fs::read_to_string(journal_dir.join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("\"get\"") && l.contains("app=demo"))
        };
        let start = Instant::now();
        while !looked() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let namespace = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "run-e2e-full-abc" },
        });
        for object in [namespace, pod] {
            let mut child = Command::new(&kubectl)
                .args(["apply", "-f", "-", "--context", "kind-e2e"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(object.to_string().as_bytes()).unwrap();
            assert!(child.wait().unwrap().success());
        }
        // Status is the kubelet's to write: through the status subresource, as the API wants.
        let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
        let out = Command::new(&kubectl)
            .args(["patch", "pod", "demo-1", "--namespace", "run-e2e-full-abc", "--subresource=status"])
            .args(["--type=merge", "-p", ready, "--context", "kind-e2e"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    c.pods_ready("app=demo", Duration::from_secs(60)).unwrap();
    creator.join().unwrap();
    let lines: Vec<String> = fake.journal().unwrap().iter().map(|c| c.line()).collect();
    let first_wait = lines.iter().position(|l| l.starts_with("kubectl wait pod")).expect("waited");
    assert!(
        lines[..first_wait].iter().any(|l| l.starts_with("kubectl get pod --selector app=demo")),
        "{lines:#?}"
    );
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
