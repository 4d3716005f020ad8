//! The fixture operator (test/operator) installed and proven by its own definition
//! (test/operator/e2e.toml), with declarative checks only. The fake kubectl keeps objects like
//! an API server; the operator runs as a process (what its pod would run) against that store and
//! the Gitea test server; the checks read both.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use testkit::gitea::GiteaServer;
use testkit::prometheus::workspace_binary;
use testkit::{FakeToolchain, Rule};

use crate::harness::{copy_dir, root, text, Sandbox};

const LABEL: &str = "configbutler.ai/e2e-run-id";
/// The operator's image as setup built it (its digest tag).
const IMAGE: &str = "fixture-operator:0123456789ab";

/// The fixture operator's process; killed on drop.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct World {
    fake: FakeToolchain,
    gitea: GiteaServer,
    sandbox: Sandbox,
    /// A copy of test/operator (its definition, deploy/ and quickstart/), paths relative to it.
    dir: tempfile::TempDir,
}

impl World {
    /// The fixture's definition with every check's deadline `timeout`; `crd`: the shared infra's
    /// CRD is installed.
    fn new(timeout: &str, crd: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        for part in ["deploy", "quickstart"] {
            copy_dir(&root().join("test/operator").join(part), &dir.path().join(part));
        }
        let def = std::fs::read_to_string(root().join("test/operator/e2e.toml")).unwrap();
        assert!(def.contains("timeout = \"2m\"\n"));
        let def = def.replace("timeout = \"2m\"\n", &format!("timeout = \"{timeout}\"\n"));
        std::fs::write(dir.path().join("e2e.toml"), def).unwrap();
        // What the definition names at the repository root: the image's Dockerfile and inputs,
        // Gitea's values.
        for file in [
            "test/operator/Dockerfile",
            "test/operator/Dockerfile.dockerignore",
            "test/operator/Cargo.toml",
            "test/support/base64.rs",
            "hack/gitea-values.yaml",
            "Cargo.lock",
        ] {
            let to = dir.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root().join(file), to).unwrap();
        }
        copy_dir(&root().join("test/operator/src"), &dir.path().join("test/operator/src"));
        let fake = crate::harness::fake();
        fake.with_cluster("e2e").unwrap();
        fake.with_objects().unwrap();
        let sandbox = Sandbox::with_fake(&fake);
        // What `cargo xtask setup` recorded of the operator's image: the installs name its tag.
        std::fs::write(
            sandbox.state.path().join("incremental.json"),
            format!(r#"{{"images": {{"fixture-operator": {{"digest": "0123456789abcdef", "tag": "{IMAGE}", "image_id": "sha256:1", "inputs": {{}}}}}}}}"#),
        )
        .unwrap();
        let world = World { fake, gitea: GiteaServer::start().unwrap(), sandbox, dir };
        if crd {
            world.kubectl(&["apply", "--server-side", "-f", world.path("deploy/crd.json").to_str().unwrap()]);
        }
        world
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The fake kubectl, as anything in the cluster would call it.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(self.fake.bin_dir().join("kubectl"))
            .args(args)
            .args(["--context", "kind-e2e"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.xtask(args);
        cmd.current_dir(self.dir.path());
        for (k, v) in self.gitea.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Gitea setup for a run: its repository, token and secrets (in the fake's object store).
    fn setup(&self, id: &str, flow: &str) {
        let out = self.xtask(&["gitea", "setup", "--run-id", id, "--flow", flow]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }

    /// What the run's operator pod would run: the fixture operator watching the run's namespace.
    fn operator(&self, namespace: &str, fault: &str) -> Operator {
        let path = format!("{}:{}", self.fake.bin_dir().display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new(workspace_binary("fixture-operator").unwrap())
            .args(["--namespace", namespace, "--gitea-api", &self.gitea.api_url()])
            .args(["--context", "kind-e2e", "--interval-ms", "150"])
            .env("PATH", path)
            .env("FIXTURE_FAULT", fault)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(format!("operator-{namespace}.log"))).unwrap())
            .spawn()
            .unwrap();
        Operator(child)
    }

    /// What the operators said (their stderr), for failure messages.
    fn operator_logs(&self) -> String {
        crate::harness::files_ending(self.dir.path(), "log")
            .iter()
            .map(|f| format!("== {}\n{}", f.display(), std::fs::read_to_string(f).unwrap_or_default()))
            .collect()
    }

    fn quickstart(&self, mode: &str, id: &str) -> Command {
        let mut cmd = self.xtask(&["quickstart", "--mode", mode, "--run-id", id, "--definition", "e2e.toml"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// The commit subjects of the run's repository, oldest first.
    fn history(&self, repo: &str) -> Vec<String> {
        let (org, name) = repo.split_once('/').unwrap();
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(self.gitea.repo_path(org, name))
            .args(["log", "--reverse", "--format=%s", "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
    }
}

fn namespace(flow: &str, id: &str) -> String {
    format!("run-e2e-{flow}-{id}")
}

#[test]
fn the_fixture_operators_quickstart_passes_in_both_modes_with_declarative_checks_only() {
    let w = World::new("30s", true);
    let (h, m) = ("fxh-a1", "fxm-b2");
    w.setup(h, "quickstart-helm");
    w.setup(m, "quickstart-manifest");
    let _op_h = w.operator(&namespace("quickstart-helm", h), "");
    let _op_m = w.operator(&namespace("quickstart-manifest", m), "");
    let helm = w.quickstart("helm", h).spawn().unwrap();
    let manifest = w.quickstart("manifest", m).spawn().unwrap();
    for child in [helm, manifest] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}\noperator logs:\n{}", text(&out), w.operator_logs());
        assert!(String::from_utf8_lossy(&out.stdout).contains("passed"), "{}", text(&out));
    }

    // Each run's repository holds the round trip, one commit per change, and nothing of the other.
    for (id, flow) in [(h, "quickstart-helm"), (m, "quickstart-manifest")] {
        let history = w.history(&format!("testorg/e2e-{flow}-{id}"));
        let mirrored: Vec<&str> =
            history.iter().map(String::as_str).filter(|s| s.contains("mirror/")).collect();
        assert_eq!(
            mirrored,
            [
                "mirror mirror/configmaps/quickstart-settings.json",
                "mirror mirror/configmaps/quickstart-settings.json",
                "unmirror mirror/configmaps/quickstart-settings.json",
                "mirror mirror/secrets/quickstart-token.json",
            ],
            "{history:#?}"
        );
        // The store holds the run's mirrors with the conditions the operator set.
        let ns = namespace(flow, id);
        let invalid: Value = serde_json::from_str(&w.kubectl(&[
            "get",
            "gitmirror",
            "quickstart-invalid",
            "-n",
            &ns,
            "-o",
            "json",
        ]))
        .unwrap();
        assert_eq!(invalid["status"]["conditions"][0]["reason"], "ConnectionFailed");
        // The checks' manifests were templated with the run: the mirror points at its repository.
        let mirror: Value =
            serde_json::from_str(&w.kubectl(&["get", "gitmirror", "quickstart", "-n", &ns, "-o", "json"]))
                .unwrap();
        assert_eq!(mirror["spec"]["repository"], format!("testorg/e2e-{flow}-{id}"));
    }

    // The install per mode: a release of the chart, or the overlay with the fixture's patches.
    let calls = w.fake.journal().unwrap();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("helm upgrade --install qs-{h} "))
            && l.contains("deploy/chart")
            && l.contains(&format!("--set-string image={IMAGE}"))),
        "the release runs the image setup built: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "kubectl rollout status deployment/fixture-operator --namespace {}",
            namespace("quickstart-helm", h)
        ))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "kubectl rollout status deployment/fixture-operator-{m} --namespace {}",
            namespace("quickstart-manifest", m)
        ))),
        "{lines:#?}"
    );
    let overlay_dir = w.sandbox.run_dir(m).join("quickstart");
    let overlay: Value =
        serde_json::from_str(&std::fs::read_to_string(overlay_dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    assert_eq!(overlay["patches"].as_array().unwrap().len(), 4);
    rendered_overlay_follows_the_run(&overlay_dir, m, &namespace("quickstart-manifest", m));
}

/// Rendered by the real kubectl (kustomize): every namespace-bound
/// reference of the fixture's manifests follows the run's namespace and suffixed names.
fn rendered_overlay_follows_the_run(overlay_dir: &Path, id: &str, ns: &str) {
    let real = testkit::real::kubectl();
    let out = Command::new(real).arg("kustomize").arg(overlay_dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    for want in [
        format!("- fixture-operator-webhook-{id}.{ns}.svc\n"),
        format!("cert-manager.io/inject-ca-from: {ns}/fixture-operator-serving-cert-{id}\n"),
        format!("name: fixture-operator-selfsigned-{id}\n"),
        format!("      name: fixture-operator-webhook-{id}\n      namespace: {ns}\n"),
        format!("- kind: ServiceAccount\n  name: fixture-operator-{id}\n  namespace: {ns}\n"),
        format!("- --namespace={ns}\n"),
        format!("{LABEL}: {id}"),
        // The image setup built and loaded, not the base's placeholder.
        format!("image: {IMAGE}\n"),
    ] {
        assert!(yaml.contains(&want), "the render lacks {want:?}:\n{yaml}");
    }
    assert!(!yaml.contains("fixture-system"), "the base's namespace leaks:\n{yaml}");
}

/// Every check's deadline in the tests where checks must pass before the one that catches the
/// bug: long enough that only a hang exceeds it on a loaded 2-core machine (a 4 s deadline missed
/// when other builds ran), short enough that a check that waits it out keeps the test in a minute.
const DEADLINE: &str = "30s";

/// Each check is there to catch one kind of bug: an operator with that bug fails the quickstart
/// at that check, whose message says what it expected and what it saw.
#[test]
fn each_check_catches_the_operator_bug_it_is_for_and_says_what_it_saw() {
    let w = World::new(DEADLINE, true);
    let cases: &[(&str, &str, &[&str])] = &[
        ("fxf-nr", "never-ready", &[
            "check 4 of 15 (condition)",
            "gitmirror quickstart in run-e2e-quickstart-helm-fxf-nr: expected Ready=True reason=\"Connected\" within 30s; last seen no Ready condition yet",
        ]),
        ("fxf-nu", "no-update", &[
            "check 8 of 15 (git-file)",
            "mirror/configmaps/quickstart-settings.json in the run's repository did not contain \"green\" with a new commit within 30s",
            "\\\"color\\\": \\\"blue\\\"",
        ]),
        ("fxf-nd", "no-delete", &[
            "check 10 of 15 (git-file)",
            "mirror/configmaps/quickstart-settings.json in the run's repository did not vanish with a new commit within 30s",
        ]),
        ("fxf-ss", "skip-secrets", &[
            "check 12 of 15 (git-file)",
            "mirror/secrets/quickstart-token.json in the run's repository did not appear with a new commit within 30s (it does not exist",
        ]),
        // A healthy operator, but the API server does not finish the delete.
        ("fxf-dl", "", &[
            "check 9 of 15 (delete)",
            "deleting configmap/quickstart-settings in run-e2e-quickstart-helm-fxf-dl",
            "timed out waiting for the condition on configmaps/quickstart-settings",
        ]),
        ("fxf-pt", "plaintext-secrets", &[
            "check 13 of 15 (git-no-secret)",
            "mirror/secrets/quickstart-token.json in the run's repository holds the secret value \"fixture-secret-${E2E_RUN_ID}\" in plaintext",
        ]),
        ("fxf-b6", "base64-secrets", &[
            "check 13 of 15 (git-no-secret)",
            "holds the secret value \"fixture-secret-${E2E_RUN_ID}\" base64-encoded",
        ]),
        ("fxf-wr", "wrong-reason", &[
            "check 15 of 15 (condition)",
            "expected Ready=False reason=\"ConnectionFailed\" message matching /authentication failed/ within 30s; last seen Ready=False reason=\"Error\" message=\"authentication failed",
        ]),
    ];
    w.fake
        .rule(
            Rule::new(
                "kubectl",
                "^delete configmap quickstart-settings --namespace run-e2e-quickstart-helm-fxf-dl ",
            )
            .exit(1)
            .stderr("error: timed out waiting for the condition on configmaps/quickstart-settings\n"),
        )
        .unwrap();
    let mut running = Vec::new();
    for (id, fault, _) in cases {
        w.setup(id, "quickstart-helm");
        let operator = w.operator(&namespace("quickstart-helm", id), fault);
        running.push((operator, w.quickstart("helm", id).spawn().unwrap()));
    }
    for ((_operator, child), (id, fault, wants)) in running.into_iter().zip(cases) {
        let out = child.wait_with_output().unwrap();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{fault}: {all}");
        for want in *wants {
            assert!(all.contains(want), "{fault}: wanted {want:?} in:\n{all}");
        }
        // No secret value is ever printed, whatever leaked.
        assert!(!all.contains(&format!("fixture-secret-{id}")), "{fault}: {all}");
    }
}

/// The checks before the operator's: its Deployment rolling out, the shared CRD, the first apply.
#[test]
fn install_checks_say_what_is_missing() {
    // No CRD installed: the crds check names it and where it belongs.
    let w = World::new(DEADLINE, false);
    w.setup("fxc-nc", "quickstart-helm");
    let out = w.quickstart("helm", "fxc-nc").output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("check 2 of 15 (crds)") && all.contains("CRDs missing: gitmirrors.fixture.example.com"),
        "{all}"
    );
    assert!(all.contains("shared infra"), "{all}");

    // A Deployment that does not roll out.
    let w = World::new(DEADLINE, true);
    w.fake
        .rule(
            Rule::new("kubectl", "^rollout status")
                .exit(1)
                .stderr("error: timed out waiting for the condition\n"),
        )
        .unwrap();
    w.setup("fxc-ro", "quickstart-manifest");
    let out = w.quickstart("manifest", "fxc-ro").output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("check 1 of 15 (rollout)")
            && all.contains("deployment fixture-operator-fxc-ro in run-e2e-quickstart-manifest-fxc-ro did not roll out within 30s"),
        "{all}"
    );

    // The API server refusing the run's GitMirror: the apply check names the file and kubectl's words.
    let w = World::new(DEADLINE, true);
    w.fake
        .rule(
            Rule::new("kubectl", "^apply --server-side --field-manager=xtask-e2e --namespace")
                .exit(1)
                .stderr("Error from server (Forbidden): gitmirrors.fixture.example.com is forbidden\n"),
        )
        .unwrap();
    w.setup("fxc-ap", "quickstart-helm");
    let out = w.quickstart("helm", "fxc-ap").output().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("check 3 of 15 (apply)") && all.contains("mirror.json") && all.contains("is forbidden"),
        "{all}"
    );
}

/// The object store refuses what an API server and kubectl refuse, in their words, so that code
/// passing against it does not fail on its first real cluster.
#[test]
fn the_fake_api_server_refuses_what_the_real_one_refuses() {
    let w = World::new("1s", false);
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(w.fake.bin_dir().join("kubectl"))
            .args(args)
            .args(["--context", "kind-e2e"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let mirror = std::fs::read_to_string(w.path("quickstart/mirror.json")).unwrap();
    // A custom resource before its CRD.
    let out = run(&["apply", "--server-side", "--namespace", "default", "-f", "-"], &mirror);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no matches for kind \"GitMirror\"")
            && text(&out).contains("ensure CRDs are installed first")
    );
    // Into a namespace that does not exist.
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"nowhere"},"data":{"k":"v"}}"#;
    let out = run(&["apply", "--server-side", "-f", "-"], cm);
    assert!(
        !out.status.success() && text(&out).contains("namespaces \"nowhere\" not found"),
        "{}",
        text(&out)
    );
    // An object naming another namespace than --namespace (a release manifest spanning namespaces).
    let out = run(
        &["apply", "--server-side", "--namespace", "cert-manager", "-f", "-"],
        &cm.replace("nowhere", "kube-system"),
    );
    assert!(
        !out.status.success() && text(&out).contains("the namespace from the provided object \"kube-system\" does not match the namespace \"cert-manager\""),
        "{}",
        text(&out)
    );
    // A Secret's stringData is stored as data, base64-encoded.
    let secret =
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"password":"token"}}"#;
    assert!(run(&["apply", "--server-side", "-f", "-"], secret).status.success());
    let stored: Value = serde_json::from_str(&w.kubectl(&["get", "secret", "s", "-o", "json"])).unwrap();
    assert_eq!(stored["data"]["password"], "dG9rZW4=");
    assert!(stored.get("stringData").is_none());
    // A missing object: NotFound, exit 1; with --ignore-not-found, nothing.
    let out = run(&["get", "configmap", "missing", "-o", "json"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Error from server (NotFound): configmaps \"missing\" not found"),
        "{}",
        text(&out)
    );
    assert_eq!(w.kubectl(&["get", "configmap", "missing", "--ignore-not-found", "-o", "name"]), "");
    // Status is written through the status subresource only.
    w.kubectl(&["apply", "--server-side", "-f", w.path("deploy/crd.json").to_str().unwrap()]);
    let out = run(
        &["apply", "--server-side", "--namespace", "default", "-f", "-"],
        &mirror.replace("${E2E_GIT_REPO}", "o/r").replace("${E2E_GIT_SECRET}", "s"),
    );
    assert!(out.status.success(), "{}", text(&out));
    w.kubectl(&[
        "patch",
        "gitmirror",
        "quickstart",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"x"},"spec":{"path":"p"}}"#,
    ]);
    let stored: Value = serde_json::from_str(&w.kubectl(&["get", "gm", "quickstart", "-o", "json"])).unwrap();
    assert!(
        stored.get("status").is_none()
            && stored["spec"]["path"] == "p"
            && stored["metadata"]["generation"] == 2,
        "{stored}"
    );
    w.kubectl(&[
        "patch",
        "gitmirrors.fixture.example.com",
        "quickstart",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"x"}}"#,
    ]);
    let stored: Value =
        serde_json::from_str(&w.kubectl(&["get", "gitmirror", "quickstart", "-o", "json"])).unwrap();
    assert_eq!(stored["status"]["phase"], "x");
    assert_eq!(stored["metadata"]["generation"], 2, "a status write is no new generation");
}

/// The fixture's definition is runnable end to end: setup builds the operator's image (its
/// prebuild, for the node's platform), loads it into the kind node, and deploys the shared
/// Gitea the runs' repositories live in; the forwards reach its API and SSH port.
#[test]
fn the_fixture_definition_builds_and_loads_its_operator_image_and_deploys_gitea() {
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let out = sandbox
        .xtask(&["setup", "--dry-run", "--definition", "test/operator/e2e.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    let dockerfile = root().join("test/operator/Dockerfile");
    for want in [
        "cargo build --quiet --release -p fixture-operator --target x86_64-unknown-linux-gnu".to_string(),
        format!(
            "docker build -t 'fixture-operator:${{DIGEST}}' --platform linux/amd64 -f {}",
            dockerfile.display()
        ),
        "kind load docker-image 'fixture-operator:${DIGEST}' --name e2e".to_string(),
        "helm upgrade --install gitea gitea --namespace gitea-e2e".to_string(),
    ] {
        assert!(plan.contains(&want), "the plan lacks {want:?}:\n{plan}");
    }
    assert!(fake.journal().unwrap().is_empty(), "dry-run ran something");
    // The chart and the base name the image by the variable setup fills in, never a tag no
    // build makes (`fixture-operator:dev` was never built nor loaded: ImagePullBackOff).
    let def = std::fs::read_to_string(root().join("test/operator/e2e.toml")).unwrap();
    assert!(def.contains(r#"image = "${IMAGE_FIXTURE_OPERATOR}""#), "helm mode's value");
    let patch = std::fs::read_to_string(root().join("test/operator/deploy/patches/manager.yaml")).unwrap();
    assert!(patch.contains(r#"image: "${IMAGE_FIXTURE_OPERATOR}""#), "manifest mode's patch");
    for forward in ["name = \"gitea\"", "name = \"gitea-ssh\""] {
        assert!(def.contains(&format!("[[port-forward]]\n{forward}")), "{forward}");
    }
}

/// cert-manager's CRDs as its release manifest defines them (the kinds the fixture's chart and
/// base use; cert-manager's controllers and webhook do not run here).
const CERT_MANAGER_CRDS: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: certificates.cert-manager.io\nspec:\n  group: cert-manager.io\n  scope: Namespaced\n  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate, shortNames: [cert, certs]}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    subresources: {status: {}}\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: issuers.cert-manager.io\nspec:\n  group: cert-manager.io\n  scope: Namespaced\n  names: {kind: Issuer, listKind: IssuerList, plural: issuers, singular: issuer}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    subresources: {status: {}}\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n";

/// The fixture's definition for a machine without network: its image (without the prebuild's
/// release build: the fake docker builds nothing from it), cert-manager's CRDs from a local file
/// instead of the release URL, the fixture's CRD; no Gitea deploy and no forwards (the Gitea test
/// server stands in, as in the tests above). Everything else — flows, quickstart, checks — as
/// the repository has it.
fn offline_definition() -> String {
    let def = std::fs::read_to_string(root().join("test/operator/e2e.toml")).unwrap();
    let mut out = String::new();
    let mut skipping_prebuild = false;
    for line in def.lines() {
        if line.starts_with("prebuild = [") {
            skipping_prebuild = true;
            continue;
        }
        if skipping_prebuild {
            skipping_prebuild = line != "]";
            continue;
        }
        if line.starts_with("prebuild-env") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let cut = |text: &str, from: &str, to: &str| {
        let a = text.find(from).unwrap_or_else(|| panic!("{from:?} in the fixture's definition"));
        let b = a + text[a..].find(to).unwrap_or_else(|| panic!("{to:?} after {from:?}"));
        format!("{}{}", &text[..a], &text[b..])
    };
    let out = out.replace(
        "manifests = [\"https://github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml\"]\nwait = [{ resource = \"deployment/cert-manager-webhook\", namespace = \"cert-manager\", for = \"condition=available\", timeout = \"3m\" }]",
        "manifests = [\"cert-manager-crds.yaml\"]",
    );
    assert!(out.contains("cert-manager-crds.yaml"), "the cert-manager deploy changed shape:\n{out}");
    let out = cut(&out, "[[deploy]]\nname = \"gitea\"", "[[flow]]");
    out.replace("timeout = \"2m\"\n", "timeout = \"30s\"\n")
}

/// The fixture operator's quickstart in both modes against the test API server with the real
/// kubectl and helm: setup builds its image (fake docker), creates the cluster (fake kind, whose
/// kubeconfig the real clients read), loads the image onto the node (so the operator's pods
/// start) and installs the CRDs; gitea setup, the helm release (real helm, `--wait`) and the
/// kustomize overlay (real `kubectl apply -k --server-side`) follow; the reconciler runs as a
/// process calling the real kubectl.
/// The fixture's offline definition set up on the test API server with the real clients: the
/// operator's image built (fake docker) and loaded onto the node (fake kind), the CRDs installed
/// by the real kubectl; the Gitea test server for the runs' repositories.
struct RealFixture {
    cluster: crate::real_cluster::Cluster,
    dir: tempfile::TempDir,
    gitea: GiteaServer,
    /// The operator's image, as setup loaded it onto the node.
    image: String,
}

impl RealFixture {
    fn new() -> RealFixture {
        let cluster = crate::real_cluster::Cluster::new("e2e");
        crate::real_cluster::assert_real_clients(&cluster.fake);
        let dir = tempfile::tempdir().unwrap();
        for part in ["deploy", "quickstart"] {
            copy_dir(&root().join("test/operator").join(part), &dir.path().join(part));
        }
        for file in [
            "test/operator/Dockerfile",
            "test/operator/Dockerfile.dockerignore",
            "test/operator/Cargo.toml",
            "Cargo.lock",
        ] {
            let to = dir.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root().join(file), to).unwrap();
        }
        copy_dir(&root().join("test/operator/src"), &dir.path().join("test/operator/src"));
        std::fs::create_dir_all(dir.path().join("test/support")).unwrap();
        std::fs::copy(root().join("test/support/base64.rs"), dir.path().join("test/support/base64.rs"))
            .unwrap();
        std::fs::write(dir.path().join("cert-manager-crds.yaml"), CERT_MANAGER_CRDS).unwrap();
        std::fs::write(dir.path().join("e2e.toml"), offline_definition()).unwrap();
        let gitea = GiteaServer::start().unwrap();
        let out =
            Self::xtask_in(&cluster, &dir, &gitea, &["setup", "--definition", "e2e.toml"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let loaded = std::fs::read_to_string(cluster.fake.dir().join("state.json")).unwrap();
        let state: Value = serde_json::from_str(&loaded).unwrap();
        let image =
            state["node_images"]["e2e"][0].as_str().expect("setup loaded the operator's image").to_string();
        assert!(image.starts_with("fixture-operator:"), "{state}");

        RealFixture { cluster, dir, gitea, image }
    }

    fn xtask_in(
        cluster: &crate::real_cluster::Cluster,
        dir: &tempfile::TempDir,
        gitea: &GiteaServer,
        args: &[&str],
    ) -> Command {
        let mut cmd = cluster.sandbox.xtask(args);
        cmd.current_dir(dir.path());
        for (k, v) in gitea.env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn xtask(&self, args: &[&str]) -> Command {
        Self::xtask_in(&self.cluster, &self.dir, &self.gitea, args)
    }
}

#[test]
fn the_fixture_operators_quickstart_passes_in_both_modes_against_the_api_server_with_real_clients() {
    let f = RealFixture::new();
    let (cluster, dir, gitea, image) = (&f.cluster, &f.dir, &f.gitea, &f.image);
    let xtask = |args: &[&str]| f.xtask(args);
    let (h, m) = ("rch-a1", "rcm-b2");
    for (id, flow) in [(h, "quickstart-helm"), (m, "quickstart-manifest")] {
        let out = xtask(&["gitea", "setup", "--run-id", id, "--flow", flow]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    // What each run's operator pod runs, calling the real kubectl with the cluster's kubeconfig.
    let operator = |ns: &str| {
        let log = std::fs::File::create(dir.path().join(format!("operator-{ns}.log"))).unwrap();
        Operator(
            Command::new(workspace_binary("fixture-operator").unwrap())
                .args(["--namespace", ns, "--gitea-api", &gitea.api_url()])
                .args(["--context", "kind-e2e", "--interval-ms", "150"])
                .env("KUBECONFIG", cluster.kubeconfig())
                .env("HOME", cluster.sandbox.home.path())
                .env("FIXTURE_FAULT", "")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let _op_h = operator(&namespace("quickstart-helm", h));
    let _op_m = operator(&namespace("quickstart-manifest", m));
    let logs = || {
        crate::harness::files_ending(dir.path(), "log")
            .iter()
            .map(|f| format!("== {}\n{}", f.display(), std::fs::read_to_string(f).unwrap_or_default()))
            .collect::<String>()
    };
    for (mode, id) in [("helm", h), ("manifest", m)] {
        let out = xtask(&["quickstart", "--mode", mode, "--run-id", id, "--definition", "e2e.toml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{mode}: {}\noperator logs:\n{}", text(&out), logs());
    }
    // The operator's Deployment of each run runs the image setup loaded, its pods ready.
    for (ns, name) in [
        (namespace("quickstart-helm", h), "fixture-operator".to_string()),
        (namespace("quickstart-manifest", m), format!("fixture-operator-{m}")),
    ] {
        let d =
            cluster.api.object("apps", "deployments", &ns, &name).unwrap_or_else(|| panic!("{ns}/{name}"));
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], image.as_str(), "{d}");
        assert_eq!(d["status"]["availableReplicas"], 1, "{d}");
        let mirror = cluster
            .api
            .object("fixture.example.com", "gitmirrors", &ns, "quickstart-invalid")
            .expect("mirror");
        assert_eq!(mirror["status"]["conditions"][0]["reason"], "ConnectionFailed", "{mirror}");
    }
    // helm's release of the helm-mode run, stored by the real helm.
    let ns = namespace("quickstart-helm", h);
    assert!(cluster.api.object("", "secrets", &ns, &format!("sh.helm.release.v1.qs-{h}.v1")).is_some());
}

/// A quickstart whose operator never reconciles fails at its condition check and writes its
/// diagnostics bundle with the real clients: every capture's command succeeded, the pods table
/// (server-side printing) shows the run's operator pod Running, and `kubectl logs --selector
/// <run label>` found the helm-mode pods (the run label reached the chart's objects).
#[test]
fn a_failing_quickstart_writes_its_diagnostics_bundle_with_the_real_clients() {
    let f = RealFixture::new();
    let id = "rcd-c3";
    let out = f.xtask(&["gitea", "setup", "--run-id", id, "--flow", "quickstart-helm"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let def = std::fs::read_to_string(f.dir.path().join("e2e.toml"))
        .unwrap()
        .replace("timeout = \"30s\"\n", "timeout = \"3s\"\n");
    std::fs::write(f.dir.path().join("e2e.toml"), def).unwrap();
    let out = f
        .xtask(&["quickstart", "--mode", "helm", "--run-id", id, "--definition", "e2e.toml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("condition"), "{}", text(&out));
    let bundle = f.cluster.sandbox.run_dir(id).join("artifacts");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("index.json")).unwrap()).unwrap();
    for file in index["files"].as_array().unwrap() {
        assert_eq!(
            file["exit"],
            0,
            "{file} failed: {}",
            std::fs::read_to_string(bundle.join(file["file"].as_str().unwrap())).unwrap_or_default()
        );
    }
    let read = |name: &str| std::fs::read_to_string(bundle.join(name)).unwrap();
    let pods = read("pods.txt");
    assert!(
        pods.lines().any(|l| l.starts_with("fixture-operator-")
            && l.contains("1/1")
            && l.contains("Running")
            && l.contains("10.244.")),
        "{pods}"
    );
    assert!(
        read("describe.txt").contains(&format!("Namespace:        {}", namespace("quickstart-helm", id))),
        "{}",
        read("describe.txt")
    );
    let logs = read("logs.txt");
    assert!(!logs.contains("No resources found"), "the run label selects no pod: {logs}");
    assert!(read("helm.txt").contains(&format!("\"name\":\"qs-{id}\"")), "{}", read("helm.txt"));
}
