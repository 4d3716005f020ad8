//! The engine against a cluster: docker and kind are fakes, but `kind create cluster` writes a
//! kubeconfig for the test API server (`testkit::kube_api`), and the kubectl and helm on PATH are
//! the real ones. What the engine asks of them is what a real client does against a real API.
#![allow(clippy::disallowed_methods)] // the xtask under test is run as a user runs it

use std::path::{Path, PathBuf};

use testkit::kube_api::KubeApi;
use testkit::FakeToolchain;

use crate::harness::{text, Sandbox};

/// A test API server, fakes for docker and kind pointing at it, and a sandbox whose PATH has
/// them first, then the machine's real kubectl and helm.
pub struct Cluster {
    pub api: KubeApi,
    pub fake: FakeToolchain,
    pub sandbox: Sandbox,
}

impl Cluster {
    pub fn new(cluster: &str) -> Cluster {
        let api = KubeApi::start().expect("starting the test API server");
        let fake = FakeToolchain::with_real_clients(env!("CARGO_BIN_EXE_fake-tool"), &api, cluster)
            .expect("fake docker and kind");
        let sandbox = Sandbox::with_fake(&fake);
        Cluster { api, fake, sandbox }
    }

    /// The kubeconfig the fake kind wrote (kind's default: `$HOME/.kube/config`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.sandbox.home.path().join(".kube/config")
    }
}

/// The real clients are on PATH, not fakes: a test that needs them fails when they are missing.
pub fn assert_real_clients(fake: &FakeToolchain) {
    for (tool, real) in [("kubectl", testkit::real::kubectl()), ("helm", testkit::real::helm())] {
        let found = fake.which(tool).unwrap_or_else(|| panic!("no {tool} on the sandbox's PATH"));
        assert!(!found.starts_with(fake.bin_dir()), "{tool} on PATH is the fake one: {}", found.display());
        assert_eq!(
            found.canonicalize().expect("resolving the client on PATH"),
            real.canonicalize().expect("resolving the real client"),
            "{tool} on PATH is not the real one"
        );
    }
}

use crate::harness::write;

/// Setup end to end with the real clients: the image is built (fake docker), the cluster created
/// (fake kind, whose kubeconfig the real kubectl then reads), the image loaded onto its node, the
/// manifest applied by the real `kubectl apply --server-side`, and the rollout waited on by the
/// real `kubectl rollout status`. The pod runs because its image was loaded.
#[test]
fn setup_runs_the_real_kubectl_and_helm_against_the_api_server_kind_points_at() {
    let c = Cluster::new("e2e");
    assert_real_clients(&c.fake);
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "docker/app.Dockerfile", "FROM scratch\nCOPY . /\n");
    write(dir.path(), "ctx/app.txt", "app\n");
    write(
        dir.path(),
        "deploy/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n    spec:\n      containers:\n      - name: app\n        image: ${IMAGE_APP}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  selector: {app: app}\n  ports: [{port: 80, targetPort: 8080}]\n",
    );
    write(dir.path(), "chart/Chart.yaml", "apiVersion: v2\nname: tiny\nversion: 0.1.0\n");
    write(
        dir.path(),
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  greeting: hello\n",
    );
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        r#"[cluster]
name = "e2e"
wait = "30s"

[[image]]
name = "app"
tag = "app:dev"
dockerfile = "docker/app.Dockerfile"
context = "ctx"

[[deploy]]
name = "ns"
manifests = ["deploy/ns.yaml"]

[[deploy]]
name = "app"
manifests = ["deploy/app.yaml"]
template = true
images = ["app"]
needs = ["ns"]
wait = [{ resource = "deployment/app", namespace = "apps", for = "condition=available", timeout = "20s" }]

[[deploy]]
name = "tiny"
namespace = "tiny"
helm = { chart = "chart" }
"#,
    )
    .expect("definition");
    write(dir.path(), "deploy/ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n");
    let out = c
        .sandbox
        .xtask(&["setup", "--definition", def.to_str().expect("utf-8 path")])
        .current_dir(dir.path())
        .output()
        .expect("running setup");
    assert!(out.status.success(), "{}", text(&out));

    let kubeconfig = std::fs::read_to_string(c.kubeconfig()).expect("kind wrote the kubeconfig");
    assert!(kubeconfig.contains(&c.api.url()) && kubeconfig.contains("kind-e2e"), "{kubeconfig}");
    let d = c.api.object("apps", "deployments", "apps", "app").expect("applied by the real kubectl");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
    let pods = c.api.objects("", "pods", "apps");
    assert_eq!(pods.len(), 2, "{pods:?}");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Running", "{p}");
        assert_eq!(p["spec"]["containers"][0]["image"], "app:dev", "{p}");
    }
    let ep = c.api.object("", "endpoints", "apps", "app").expect("endpoints");
    assert_eq!(ep["subsets"][0]["addresses"].as_array().map(Vec::len), Some(2), "{ep}");
    // helm's release storage, written by the real helm
    assert!(c.api.object("", "secrets", "tiny", "sh.helm.release.v1.tiny.v1").is_some());
    assert!(c.api.object("", "configmaps", "tiny", "tiny-cfg").is_some());
}

/// An image the node does not have never starts: setup's wait on the Deployment fails (the
/// real `kubectl wait` times out), and the pods say `ImagePullBackOff`.
#[test]
fn a_deploy_whose_image_was_not_loaded_does_not_become_available() {
    let c = Cluster::new("e2e");
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n    spec:\n      containers: [{name: app, image: 'never-loaded:1'}]\n",
    );
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        r#"[cluster]
name = "e2e"

[[deploy]]
name = "app"
manifests = ["app.yaml"]
wait = [{ resource = "deployment/app", namespace = "default", for = "condition=available", timeout = "3s" }]
"#,
    )
    .expect("definition");
    let out = c
        .sandbox
        .xtask(&["setup", "--definition", def.to_str().expect("utf-8 path")])
        .current_dir(dir.path())
        .output()
        .expect("running setup");
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("timed out waiting for the condition"), "{said}");
    let pods = c.api.objects("", "pods", "default");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0]["status"]["phase"], "Pending");
    assert_eq!(pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "ImagePullBackOff");
}

/// With the user's current context a production cluster (another API server), nothing the engine
/// or the real clients it runs do lands there: every call names the kind cluster's context. The
/// user switches to production between two setups (kind made its own context current on create).
#[test]
fn nothing_reaches_the_current_context_when_it_is_another_cluster() {
    let c = Cluster::new("e2e");
    let prod = KubeApi::start().expect("a second API server: production");
    let kc = c.kubeconfig();
    std::fs::create_dir_all(kc.parent().expect("a parent")).expect(".kube");
    prod.write_kubeconfig(&kc, "prod").expect("the user's kubeconfig");
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata: {v: '1'}\n",
    );
    write(dir.path(), "chart/Chart.yaml", "apiVersion: v2\nname: tiny\nversion: 0.1.0\n");
    write(
        dir.path(),
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  v: {{ .Values.v | default \"1\" | quote }}\n",
    );
    let def = dir.path().join("e2e.toml");
    let definition = |v: &str| {
        format!(
            "[cluster]\nname = \"e2e\"\n\n[[deploy]]\nname = \"app\"\nmanifests = [\"app.yaml\"]\n\n[[deploy]]\nname = \"tiny\"\nnamespace = \"tiny\"\nhelm = {{ chart = \"chart\", set = {{ v = \"{v}\" }} }}\n"
        )
    };
    std::fs::write(&def, definition("1")).expect("definition");
    let setup = || {
        let out = c
            .sandbox
            .xtask(&["setup", "--definition", def.to_str().expect("utf-8 path")])
            .current_dir(dir.path())
            .output()
            .expect("running setup");
        assert!(out.status.success(), "{}", text(&out));
    };
    setup();
    #[allow(clippy::disallowed_methods)] // the user's own kubectl
    let switched = std::process::Command::new(testkit::real::kubectl())
        .args(["config", "use-context", "prod", "--kubeconfig"])
        .arg(&kc)
        .output()
        .expect("kubectl config use-context");
    assert!(switched.status.success(), "{}", text(&switched));
    std::fs::write(&def, definition("2")).expect("definition");
    setup();
    assert_eq!(
        c.api.object("", "configmaps", "tiny", "tiny-cfg").expect("on the kind cluster")["data"]["v"],
        "2",
        "the second setup upgraded the release on the kind cluster"
    );
    assert!(c.api.object("", "configmaps", "default", "app").is_some());
    for (group, plural) in [("", "configmaps"), ("", "secrets"), ("", "namespaces")] {
        let there = prod.objects(group, plural, "");
        let foreign: Vec<&serde_json::Value> = there
            .iter()
            .filter(|o| {
                !matches!(o["metadata"]["name"].as_str(), Some("default" | "kube-system" | "kube-public"))
            })
            .collect();
        assert!(foreign.is_empty(), "written to the current context's cluster: {foreign:?}");
    }
}

/// A chart repository on a loopback port: it serves a directory (`index.yaml`, the packaged
/// charts) and records every path asked of it, until dropped.
struct ChartRepo {
    url: String,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ChartRepo {
    fn serve(dir: &Path) -> ChartRepo {
        use std::io::{BufRead, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}/", listener.local_addr().expect("its address"));
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (root, log, halt) = (dir.to_path_buf(), asked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = std::io::BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The headers, up to the blank line (GET has no body).
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().expect("the journal").push(path.clone());
                let file = root.join(path.trim_start_matches('/'));
                let mut out = &stream;
                match std::fs::read(&file) {
                    Ok(body) => {
                        let _ = write!(
                            out,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = out.write_all(&body);
                    }
                    Err(_) => {
                        let _ = write!(
                            out,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            }
        });
        ChartRepo { url, asked, stop, thread: Some(thread) }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("the journal").clone()
    }
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A no-change re-run with the real helm makes no chart-repository request: the first setup
/// checks the values file against the repository chart (`helm show values --repo`) and installs
/// it, both fetching from the repository; the second finds the release recorded and still there
/// and asks the repository nothing, and a third passes with the repository gone (no network).
#[test]
fn a_no_change_setup_with_the_real_helm_asks_the_chart_repository_nothing() {
    let c = Cluster::new("e2e");
    assert_real_clients(&c.fake);
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "src/tiny/Chart.yaml", "apiVersion: v2\nname: tiny\nversion: 0.1.0\n");
    write(dir.path(), "src/tiny/values.yaml", "greeting: hello\n");
    write(
        dir.path(),
        "src/tiny/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  greeting: {{ .Values.greeting }}\n",
    );
    let served = dir.path().join("repo");
    std::fs::create_dir_all(&served).expect("repo dir");
    let helm = testkit::real::helm();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&helm)
            .args(args)
            .env("HOME", c.sandbox.home.path())
            .output()
            .expect("running the real helm");
        assert!(out.status.success(), "helm {args:?}: {}", text(&out));
    };
    run(&[
        "package",
        dir.path().join("src/tiny").to_str().expect("utf-8"),
        "--destination",
        served.to_str().expect("utf-8"),
    ]);
    let repo = ChartRepo::serve(&served);
    run(&["repo", "index", served.to_str().expect("utf-8"), "--url", repo.url.trim_end_matches('/')]);
    write(dir.path(), "tiny-values.yaml", "greeting: hi\n");
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        format!(
            "[cluster]\nname = \"e2e\"\nwait = \"30s\"\n\n[[deploy]]\nname = \"tiny\"\nnamespace = \"tiny\"\nhelm = {{ chart = \"tiny\", repo = \"{}\", version = \"0.1.0\", values = [\"tiny-values.yaml\"] }}\n",
            repo.url
        ),
    )
    .expect("definition");
    let setup = || {
        let out = c
            .sandbox
            .xtask(&["setup", "--definition", def.to_str().expect("utf-8 path")])
            .current_dir(dir.path())
            .output()
            .expect("running setup");
        assert!(out.status.success(), "{}", text(&out));
    };
    setup();
    let first = repo.asked();
    assert!(first.iter().any(|p| p.ends_with("index.yaml")), "{first:?}");
    assert!(first.iter().any(|p| p.ends_with("tiny-0.1.0.tgz")), "{first:?}");
    let cm = c.api.object("", "configmaps", "tiny", "tiny-cfg").expect("installed by the real helm");
    assert_eq!(cm["data"]["greeting"], "hi", "{cm}");

    setup();
    let again = repo.asked();
    assert_eq!(
        again.len(),
        first.len(),
        "a no-change re-run asked the repository: {:?}",
        &again[first.len()..]
    );

    // No network at all: the repository is gone (its port refuses), and nothing needs it.
    drop(repo);
    setup();
}

/// `cargo xtask check` through the real kubectl: a condition a controller wrote to the status
/// subresource, a manifest templated with the run context and applied into the run's namespace,
/// a cluster-scoped object that exists or never appears, and a delete that waits for the object
/// to go and tolerates its absence.
#[test]
fn the_check_command_reads_applies_and_deletes_through_the_real_kubectl() {
    let c = Cluster::new("e2e");
    #[allow(clippy::disallowed_methods)] // the fake kind, as setup would call it
    let created = std::process::Command::new(c.fake.bin_dir().join("kind"))
        .args(["create", "cluster", "--name", "e2e"])
        .env("HOME", c.sandbox.home.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("fake kind");
    assert!(created.status.success(), "{}", text(&created));
    let id = "chk1";
    let check = |args: &[&str]| {
        let out =
            c.sandbox.xtask(&[&["check", "--run-id", id], args].concat()).output().expect("xtask check");
        (out.status.code(), text(&out))
    };
    // the run's namespace, as the check names it
    let (code, said) = check(&["exists", "configmap/none", "--timeout", "1s"]);
    assert_eq!(code, Some(1), "{said}");
    let ns = said
        .split_whitespace()
        .find(|w| w.starts_with("run-e2e-") && w.contains(id))
        .map(|w| w.trim_matches(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-').to_string())
        .unwrap_or_else(|| panic!("no run namespace named in: {said}"));
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        #[allow(clippy::disallowed_methods)] // the real client, as a controller would write
        let mut child = std::process::Command::new(testkit::real::kubectl())
            .args(args)
            .args(["--context", "kind-e2e", "--kubeconfig"])
            .arg(c.kubeconfig())
            .env("HOME", c.sandbox.home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writing stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
    };
    kubectl(&["create", "namespace", &ns], None);
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gitproviders.configbutler.ai\nspec:\n  group: configbutler.ai\n  scope: Namespaced\n  names: {plural: gitproviders, singular: gitprovider, kind: GitProvider}\n  versions: [{name: v1alpha1, served: true, storage: true, subresources: {status: {}}, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n";
    kubectl(&["apply", "--server-side", "-f", "-"], Some(crd));
    let bad = format!("apiVersion: configbutler.ai/v1alpha1\nkind: GitProvider\nmetadata: {{name: bad, namespace: {ns}}}\nspec: {{}}\n");
    kubectl(&["apply", "--server-side", "-f", "-"], Some(&bad));
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"ConnectionFailed","message":"authentication failed: check the credentials"}]}}"#;
    kubectl(
        &["patch", "gitprovider", "bad", "-n", &ns, "--subresource=status", "--type=merge", "-p", status],
        None,
    );

    let (code, said) = check(&[
        "condition",
        "gitprovider/bad",
        "--status",
        "False",
        "--reason",
        "ConnectionFailed",
        "--message",
        "authenti\\w+ failed",
    ]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = check(&[
        "condition",
        "gitprovider/bad",
        "--status",
        "False",
        "--message",
        "^timeout",
        "--timeout",
        "1s",
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("message matching /^timeout/") && said.contains("reason=\"ConnectionFailed\""),
        "{said}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let provider = dir.path().join("provider.yaml");
    std::fs::write(
        &provider,
        "apiVersion: configbutler.ai/v1alpha1\nkind: GitProvider\nmetadata: { name: p-${E2E_RUN_ID}, namespace: ${E2E_TEST_NAMESPACE} }\nspec: {}\n",
    )
    .expect("manifest");
    let (code, said) = check(&["apply", provider.to_str().expect("utf-8 path")]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        c.api.object("configbutler.ai", "gitproviders", &ns, "p-chk1").is_some(),
        "applied into the run's namespace"
    );

    let webhook = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: op-webhook}\nwebhooks: []\n";
    kubectl(&["apply", "--server-side", "-f", "-"], Some(webhook));
    let (code, said) = check(&["exists", "validatingwebhookconfiguration/op-webhook"]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = check(&["exists", "validatingwebhookconfiguration/gone", "--timeout", "1s"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("validatingwebhookconfiguration gone") && said.contains("it does not exist"),
        "{said}"
    );

    kubectl(&["create", "configmap", "cm-chk1", "-n", &ns], None);
    let (code, said) = check(&["delete", "configmap/cm-${E2E_RUN_ID}"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(c.api.object("", "configmaps", &ns, "cm-chk1").is_none());
    let (code, said) = check(&["delete", "configmap/cm-${E2E_RUN_ID}"]);
    assert_eq!(code, Some(0), "absent is fine: {said}");
}
