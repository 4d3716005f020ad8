//! Run context and run-aware Gitea setup, against the Gitea test server (real bare repositories
//! behind a real sshd), the fake kubectl, and real git / ssh-keygen / ssh-keyscan.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::gitea::GiteaServer;
use testkit::FakeToolchain;

use crate::harness::Sandbox;

struct World {
    gitea: GiteaServer,
    fake: FakeToolchain,
    sandbox: Sandbox,
}

impl World {
    fn new() -> World {
        let fake = crate::harness::fake();
        // The cluster whose context (kind-e2e, the repository's definition) every call names.
        fake.with_cluster("e2e").unwrap();
        let sandbox = Sandbox::with_fake(&fake);
        World { gitea: GiteaServer::start().expect("Gitea test server"), fake, sandbox }
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.sandbox.run_dir(id)
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.xtask(args);
        for (k, v) in self.gitea.env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.xtask(args).output().unwrap()
    }

    /// Runs git with the test's HOME (the run checkout's own config supplies the key).
    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("HOME", self.sandbox.home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn run_id(tag: &str) -> String {
    let out = Sandbox::new().run(&["run-context", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    format!("{tag}-{}", v["E2E_RUN_ID"].as_str().unwrap())
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// Commits a file in `checkout` and pushes it with the checkout's own credentials.
fn push_file(world: &World, checkout: &Path, name: &str) -> Output {
    std::fs::write(checkout.join(name), name).unwrap();
    ok(&world.git(checkout, &["add", name]));
    ok(&world.git(checkout, &["commit", "-q", "-m", name]));
    world.git(checkout, &["push", "-q", "origin", "HEAD:main"])
}

#[test]
fn three_concurrent_runs_each_push_only_to_their_own_repository() {
    let world = World::new();
    let runs: Vec<(String, &str)> = vec![
        (run_id("c1"), "full"),
        (run_id("c2"), "quickstart-helm"),
        (run_id("c3"), "quickstart-manifest"),
    ];
    let children: Vec<_> = runs
        .iter()
        .map(|(id, flow)| {
            world
                .xtask(&["gitea", "setup", "--run-id", id, "--flow", flow])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    assert_eq!(world.gitea.repos().len(), 3);
    assert_eq!(world.gitea.tokens().len(), 3);
    assert_eq!(world.gitea.deploy_keys().len(), 3);

    for (i, (id, flow)) in runs.iter().enumerate() {
        let checkout = world.state_dir(id).join("checkout");
        let pushed = push_file(&world, &checkout, &format!("own-{i}.txt"));
        assert!(
            pushed.status.success(),
            "run {id} pushes to its own repo: {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        let bare = world.gitea.repo_path("testorg", &format!("e2e-{flow}-{id}"));
        let log = Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["log", "--format=%s", "main"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&log.stdout).contains(&format!("own-{i}.txt")));

        // The same key against another run's repository is refused by the server.
        let (other_id, other_flow) = &runs[(i + 1) % 3];
        let other = format!("ssh://{}/testorg/e2e-{other_flow}-{other_id}.git", world.gitea.ssh_endpoint());
        let denied = world.git(&checkout, &["push", "-q", &other, "HEAD:main"]);
        assert!(!denied.status.success(), "run {id} must not push to {other_id}'s repository");
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains("access denied"),
            "{}",
            String::from_utf8_lossy(&denied.stderr)
        );
    }
    // No run's key was removed by another.
    assert_eq!(world.gitea.deploy_keys().len(), 3);
    assert!(!world.gitea.requests().iter().any(|r| r.method == "DELETE"), "setup deletes nothing");

    for (id, _) in &runs {
        ok(&world.run(&["gitea", "teardown", "--run-id", id]));
    }
    assert!(
        world.gitea.repos().is_empty()
            && world.gitea.tokens().is_empty()
            && world.gitea.deploy_keys().is_empty()
    );
}

#[test]
fn global_git_config_is_byte_identical_and_the_token_leaks_nowhere() {
    let world = World::new();
    let home_before = std::fs::read(world.sandbox.home.path().join(".gitconfig")).unwrap();
    let id = run_id("tok");
    let setup = world.run(&["gitea", "setup", "--run-id", &id, "--flow", "full"]);
    let setup_text = ok(&setup);

    // The token is in the secret applied on kubectl's stdin, and nowhere else.
    let calls = world.fake.journal().unwrap();
    let apply = calls
        .iter()
        .find(|c| c.tool == "kubectl" && c.argv.first().map(String::as_str) == Some("apply"))
        .expect("kubectl apply");
    let payload: Value = serde_json::from_str(apply.stdin.as_deref().unwrap()).unwrap();
    let token = payload["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "git-creds")
        .map(|i| i["stringData"]["password"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(token.len(), 40);
    assert_eq!(world.gitea.tokens()[0].sha1, token);
    assert!(!setup_text.contains(&token));
    for call in &calls {
        assert!(!call.argv.iter().any(|a| a.contains(&token)), "token in argv: {call:?}");
        assert!(!call.env.values().any(|v| v.contains(&token)));
    }
    let mut files = Vec::new();
    collect(&world.state_dir(&id), &mut files);
    collect(&world.sandbox.state.path().join("logs"), &mut files);
    assert!(files.iter().any(|f| f.ends_with(".git/config")), "the checkout exists");
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(&token), "token found in {}", f.display());
    }
    let key_dir = world.state_dir(&id).join("ssh");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(key_dir.join("id_ed25519")).unwrap().permissions().mode() & 0o777, 0o600);

    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
    assert_eq!(std::fs::read(world.sandbox.home.path().join(".gitconfig")).unwrap(), home_before);
    let entries: Vec<_> =
        std::fs::read_dir(world.sandbox.home.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(".gitconfig")], "nothing else written to HOME");
    assert!(!world.state_dir(&id).join("checkout").exists() && !key_dir.exists());
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn setup_twice_is_idempotent_and_teardown_of_one_run_leaves_the_other_working() {
    let world = World::new();
    let a = run_id("ida");
    let b = run_id("idb");
    ok(&world.run(&["gitea", "setup", "--run-id", &a]));
    ok(&world.run(&["gitea", "setup", "--run-id", &b]));
    let keys_before: Vec<i64> = world.gitea.deploy_keys().iter().map(|k| k.id).collect();
    ok(&world.run(&["gitea", "setup", "--run-id", &a]));
    assert_eq!(world.gitea.repos().len(), 2);
    assert_eq!(world.gitea.tokens().len(), 2, "the run's token is replaced, not duplicated");
    let keys_after: Vec<i64> = world.gitea.deploy_keys().iter().map(|k| k.id).collect();
    assert_eq!(keys_before, keys_after, "same keys, same ids");

    ok(&world.run(&["gitea", "teardown", "--run-id", &a]));
    ok(&world.run(&["gitea", "teardown", "--run-id", &a])); // already gone: fine
    let pushed = push_file(&world, &world.state_dir(&b).join("checkout"), "still-here.txt");
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert_eq!(world.gitea.repos().len(), 1);
    ok(&world.run(&["gitea", "teardown", "--run-id", &b]));
}

#[test]
fn transient_500s_are_retried_and_a_down_server_fails_clearly_within_the_deadline() {
    let world = World::new();
    let id = run_id("flaky");
    world.gitea.fail_next(2);
    ok(&world.run(&["gitea", "setup", "--run-id", &id]));
    assert_eq!(world.gitea.requests().iter().filter(|r| r.status == 500).count(), 2);
    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));

    world.gitea.set_down(true);
    let id = run_id("down");
    let start = Instant::now();
    let out = world.run(&["gitea", "setup", "--run-id", &id]);
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(20), "gives up at its deadline: {:?}", start.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not ready within") && err.contains("/version"), "{err}");
    world.gitea.set_down(false);
    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
}

#[test]
fn a_failed_key_scan_fails_setup_and_teardown_removes_what_was_made() {
    let world = World::new();
    let id = run_id("scan");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = world
        .xtask(&["gitea", "setup", "--run-id", &id])
        .env("E2E_GITEA_SSH", format!("127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ssh-keyscan") && err.contains("no host key"), "{err}");
    assert!(
        !world.fake.journal().unwrap().iter().any(|c| c.tool == "kubectl" && c.argv[0] == "apply"),
        "no secret with a made-up host key"
    );
    assert_eq!(world.gitea.repos().len(), 1, "half-created");
    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
    assert!(
        world.gitea.repos().is_empty()
            && world.gitea.tokens().is_empty()
            && world.gitea.deploy_keys().is_empty()
    );
}

#[test]
fn bad_run_ids_are_refused_with_the_rule_before_anything_happens() {
    let world = World::new();
    let too_long = "a".repeat(36);
    for bad in ["UPPER", too_long.as_str(), "../x", "", "a_b"] {
        let out = world.run(&["gitea", "setup", "--run-id", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: a usage error");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lowercase DNS-1123 label of 1 to 35 characters"), "{bad:?}: {err}");
        let out = world.run(&["run-context", "--run-id", bad]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid run id"));
    }
    assert!(world.gitea.requests().is_empty(), "nothing reached Gitea");
    assert!(world.fake.journal().unwrap().is_empty(), "nothing ran");
}

#[test]
fn kubectl_payloads_carry_the_run_label_and_namespace_and_teardown_deletes_by_label() {
    let world = World::new();
    let id = run_id("lbl");
    ok(&world.run(&["gitea", "setup", "--run-id", &id, "--flow", "quickstart-helm"]));
    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
    let ns = format!("run-e2e-quickstart-helm-{id}");
    let calls = world.fake.journal().unwrap();
    let apply = calls.iter().find(|c| c.tool == "kubectl" && c.argv[0] == "apply").unwrap();
    assert!(
        apply.argv.contains(&"--server-side".to_string()),
        "no last-applied annotation holding secret data"
    );
    let payload: Value = serde_json::from_str(apply.stdin.as_deref().unwrap()).unwrap();
    let items = payload["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        assert_eq!(item["metadata"]["labels"]["configbutler.ai/e2e-run-id"], id.as_str(), "{item}");
        if item["kind"] == "Namespace" {
            assert_eq!(item["metadata"]["name"], ns.as_str());
        } else {
            assert_eq!(item["metadata"]["namespace"], ns.as_str());
        }
    }
    assert_eq!(apply.env.get("E2E_RUN_ID"), Some(&id), "the run env reaches every child");
    let delete = calls.iter().find(|c| c.tool == "kubectl" && c.argv[0] == "delete").unwrap();
    let line = delete.line();
    assert!(
        line.contains(&format!("--namespace {ns}"))
            && line.contains(&format!("--selector configbutler.ai/e2e-run-id={id}")),
        "{line}"
    );
    assert!(!line.contains("--all"));
}

#[test]
fn run_context_prints_an_eval_able_env_and_validates_given_values() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["run-context", "--flow", "quickstart-manifest", "--run-id", "pr12-x"]);
    let text = ok(&out);
    assert!(text.contains("export E2E_RUN_ID=pr12-x\n"), "{text}");
    assert!(text.contains("export E2E_TEST_NAMESPACE=run-e2e-quickstart-manifest-pr12-x\n"), "{text}");
    assert!(text.contains("export E2E_GITEA_API_URL=http://127.0.0.1:13000/api/v1\n"), "{text}");
    // Through a real shell, as users do.
    let script = format!(
        "eval \"$('{}' run-context --flow full)\" && echo \"$E2E_RUN_ID $E2E_TEST_NAMESPACE\"",
        env!("CARGO_BIN_EXE_xtask-under-test")
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env_remove("E2E_RUN_ID")
        .env_remove("E2E_TEST_NAMESPACE")
        .env("E2E_STATE_DIR", sandbox.state.path())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (id, ns) = line.split_once(' ').unwrap();
    assert_eq!(ns, format!("run-e2e-full-{id}"));
    assert!(id.len() >= 10);

    let bad = sandbox
        .xtask(&["run-context"])
        .env("E2E_RUN_ID", "abc")
        .env("E2E_TEST_NAMESPACE", "Not_A_Namespace")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid E2E_TEST_NAMESPACE"));
}

#[test]
fn the_demo_writes_its_status_file_into_the_runs_repository_and_counts_the_writes() {
    let world = World::new();
    let id = run_id("demo");
    ok(&world.run(&["gitea", "setup", "--run-id", &id, "--flow", "full"]));
    // The demo gets the run's credentials from the secret the setup applied.
    let calls = world.fake.journal().unwrap();
    let apply = calls.iter().find(|c| c.tool == "kubectl" && c.argv[0] == "apply").unwrap();
    let payload: Value = serde_json::from_str(apply.stdin.as_deref().unwrap()).unwrap();
    let secret =
        payload["items"].as_array().unwrap().iter().find(|i| i["metadata"]["name"] == "git-creds").unwrap();
    let token = secret["stringData"]["password"].as_str().unwrap().to_string();
    let repo = format!("testorg/e2e-full-{id}");
    let binary = testkit::prometheus::demo_binary().unwrap();
    let demo = testkit::prometheus::Demo::start(
        &binary,
        &id,
        "service",
        &[
            ("DEMO_GITEA_API", world.gitea.api_url().as_str()),
            ("DEMO_GIT_REPO", repo.as_str()),
            ("DEMO_GIT_TOKEN", token.as_str()),
            ("DEMO_WRITE_INTERVAL_MS", "300"),
        ],
    )
    .unwrap();

    // The status file appears in the run's checkout, then changes, the commit count growing.
    let checkout = world.state_dir(&id).join("checkout");
    let observe = || {
        ok(&world.git(&checkout, &["pull", "-q", "--ff-only", "origin", "main"]));
        let content = std::fs::read_to_string(checkout.join("e2e-status.txt")).ok();
        let commits = String::from_utf8_lossy(&world.git(&checkout, &["rev-list", "--count", "HEAD"]).stdout)
            .trim()
            .parse::<u32>()
            .unwrap();
        (content, commits)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (first, first_commits) = loop {
        let (content, commits) = observe();
        if let Some(content) = content {
            break (content, commits);
        }
        assert!(Instant::now() < deadline, "the status file never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(first.starts_with(&format!("run {id} write ")), "{first}");
    let (second, second_commits) = loop {
        let (content, commits) = observe();
        if content.as_deref() != Some(first.as_str()) {
            break (content.unwrap_or_default(), commits);
        }
        assert!(Instant::now() < deadline, "the status file never changed");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        second.starts_with(&format!("run {id} write ")) && second_commits > first_commits,
        "{second} {first_commits} -> {second_commits}"
    );

    // The writes are counted in a metric labelled with the run id.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let metrics = agent
        .get(format!("http://{}/metrics", demo.addr))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let line = metrics.lines().find(|l| l.starts_with("e2e_demo_git_writes_total{")).unwrap();
    assert!(line.contains(&format!("run_id=\"{id}\"")), "{line}");
    let writes: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(writes >= 2.0, "{line}");
    drop(demo);
    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
}

/// `helm upgrade --labels` puts the run label on the release's storage Secret too (with
/// `owner=helm`, helm pkg/storage/driver/secrets.go): teardown deletes the run's own secrets and
/// never that one (helm would forget the release and never uninstall its cluster-scoped
/// objects); the run's cleanup uninstalls the release, found by its release label.
#[test]
fn teardown_keeps_helms_release_storage_and_cleanup_uninstalls_the_runs_release() {
    let world = World::new();
    world.fake.with_objects().unwrap();
    let id = run_id("hrel");
    let ns = format!("run-e2e-quickstart-helm-{id}");
    let label = "configbutler.ai/e2e-run-id";
    ok(&world.run(&["gitea", "setup", "--run-id", &id, "--flow", "quickstart-helm"]));
    let kubectl = |args: &[&str], stdin: Option<String>| {
        let mut cmd = Command::new(world.fake.bin_dir().join("kubectl"));
        cmd.args(args).args(["--context", "kind-e2e"]).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What the real helm stores for release qs-<id> installed with --labels <label>=<id>.
    let storage = format!("sh.helm.release.v1.qs-{id}.v1");
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": { "name": storage, "namespace": ns, "labels": {
            label: id, "owner": "helm", "name": format!("qs-{id}"), "status": "deployed", "version": "1" } },
        "data": { "release": "H4sI" },
    });
    kubectl(&["apply", "--server-side", "-f", "-"], Some(secret.to_string()));
    let helm = Command::new(world.fake.bin_dir().join("helm"))
        .args(["upgrade", "--install", &format!("qs-{id}"), "chart", "--namespace", &ns])
        .args(["--labels", &format!("{label}={id}"), "--kube-context", "kind-e2e"])
        .output()
        .unwrap();
    assert!(helm.status.success());
    let secrets = |selector: &str| -> Vec<String> {
        let list: Value = serde_json::from_str(&kubectl(
            &["get", "secret", "--namespace", &ns, "--selector", selector, "-o", "json"],
            None,
        ))
        .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = secrets(&format!("{label}={id}"));
    assert!(before.len() >= 2 && before.contains(&storage), "the run's secrets and helm's: {before:?}");

    ok(&world.run(&["gitea", "teardown", "--run-id", &id]));
    assert_eq!(secrets(&format!("{label}={id}")), vec![storage.clone()], "only helm's storage is left");

    ok(&world.run(&["cleanup", "--run-id", &id]));
    let calls = world.fake.journal().unwrap();
    assert!(
        calls.iter().any(|c| c.line().starts_with(&format!("helm uninstall qs-{id} --namespace {ns} "))),
        "{:#?}",
        calls.iter().map(|c| c.line()).collect::<Vec<_>>()
    );
}

/// `gitea setup` without the admin's password said only `401: user does not exist` from its first
/// write. It asks Gitea first and says which credentials were tried, where they came from, and
/// what to set.
#[test]
fn gitea_setup_without_the_admin_password_says_which_credentials_were_tried_and_what_to_set() {
    let world = World::new();
    let id = run_id("npw");
    let out = world
        .xtask(&["gitea", "setup", "--run-id", &id])
        .env_remove("E2E_GITEA_ADMIN_PASSWORD")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("refuses its admin")
            && said.contains(
                "E2E_GITEA_ADMIN_PASSWORD is not set, so the shared infra's default password was tried"
            )
            && said.contains("hack/gitea-values.yaml"),
        "{said}"
    );
    assert!(world.gitea.repos().is_empty() && world.gitea.tokens().is_empty(), "it wrote something");
}
