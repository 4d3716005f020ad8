//! The test API server (`testkit::kube_api`) driven by the real kubectl: what it serves is what a
//! real client accepts.

use std::path::Path;
use std::process::{Command, Output};

use testkit::kube_api::KubeApi;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    #[allow(clippy::disallowed_methods)] // the real client is the thing under test
    let out = Command::new(testkit::real::kubectl())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(kubeconfig))
        .args(args)
        .output()
        .expect("running the real kubectl");
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup() -> (KubeApi, tempfile::TempDir, std::path::PathBuf) {
    let api = KubeApi::start().expect("starting the API server");
    let dir = tempfile::tempdir().expect("temp dir");
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "kind-test").expect("kubeconfig");
    (api, dir, kc)
}

#[test]
fn real_kubectl_discovers_the_servers_kinds() {
    let (_api, _dir, kc) = setup();
    let versions = ok(&kubectl(&kc, &["api-versions"]));
    for gv in ["v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1", "apiextensions.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == gv), "{gv} missing from:\n{versions}");
    }
    let resources = ok(&kubectl(&kc, &["api-resources", "-o", "name"]));
    assert!(resources.lines().any(|l| l == "deployments.apps"), "{resources}");
    let version = ok(&kubectl(&kc, &["version", "-o", "json"]));
    assert!(version.contains("\"gitVersion\": \"v1.32.4\""), "{version}");
}

#[test]
fn real_kubectl_creates_gets_selects_and_deletes() {
    // No --validate=false: kubectl's default validation reads the server's OpenAPI v3 documents
    // and leaves field validation to the server (cli-runtime `pkg/resource/query_param_verifier_v3.go`).
    let (api, dir, kc) = setup();
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  labels: {app: demo}\ndata: {k: v}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  labels: {app: other}\n",
    )
    .expect("manifest");
    let mf = manifest.to_str().expect("utf-8 path");
    let ns = dir.path().join("ns.yaml");
    std::fs::write(&ns, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n").expect("manifest");
    ok(&kubectl(&kc, &["create", "-f", ns.to_str().expect("utf-8 path")]));
    ok(&kubectl(&kc, &["create", "-n", "team", "-f", mf]));
    assert_eq!(api.object("", "configmaps", "team", "one").expect("stored")["data"]["k"], "v");

    let again = kubectl(&kc, &["create", "-n", "team", "-f", mf]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains("configmaps \"one\" already exists"),
        "{err}"
    );

    let names = ok(&kubectl(&kc, &["get", "configmaps", "-n", "team", "-l", "app=demo", "-o", "name"]));
    assert_eq!(names.trim(), "configmap/one");
    let names = ok(&kubectl(
        &kc,
        &[
            "get",
            "cm",
            "-n",
            "team",
            "--field-selector",
            "metadata.name=two",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    ));
    assert_eq!(names.trim(), "two");

    ok(&kubectl(&kc, &["delete", "configmap", "one", "-n", "team"]));
    let gone = kubectl(&kc, &["get", "configmap", "one", "-n", "team", "-o", "name"]);
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.contains("Error from server (NotFound): configmaps \"one\" not found"), "{err}");
    assert!(api.object("", "configmaps", "team", "one").is_none());

    // a typed generator sends protobuf (seen on the wire from kubectl 1.32.4)
    ok(&kubectl(&kc, &["create", "namespace", "other"]));
    assert_eq!(api.object("", "namespaces", "", "other").expect("created")["status"]["phase"], "Active");
}

#[test]
fn real_kubectl_apply_creates_then_patches() {
    let (api, dir, kc) = setup();
    let manifest = dir.path().join("cm.yaml");
    let mf = manifest.to_str().expect("utf-8 path").to_string();
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: '1', b: '2'}\n",
    )
    .expect("manifest");
    let out = ok(&kubectl(&kc, &["apply", "-f", &mf]));
    assert!(out.contains("configmap/cfg created"), "{out}");
    // client-side apply: GET, then a strategic merge patch computed from the last-applied annotation
    // (kubectl pkg/cmd/apply/patcher.go): b removed from the manifest is deleted, a changed.
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: '3'}\n")
        .expect("manifest");
    let out = ok(&kubectl(&kc, &["apply", "-f", &mf]));
    assert!(out.contains("configmap/cfg configured"), "{out}");
    let cm = api.object("", "configmaps", "default", "cfg").expect("stored");
    assert_eq!(cm["data"], serde_json::json!({"a": "3"}), "{cm}");
    let out = ok(&kubectl(&kc, &["apply", "-f", &mf]));
    assert!(out.contains("configmap/cfg unchanged"), "{out}");
}

#[test]
fn real_kubectl_apply_merges_a_deployments_containers_by_name() {
    let (api, dir, kc) = setup();
    let manifest = dir.path().join("deploy.yaml");
    let mf = manifest.to_str().expect("utf-8 path").to_string();
    let deploy = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        env: [{{name: A, value: x}}]\n"
        )
    };
    std::fs::write(&manifest, deploy("web:1")).expect("manifest");
    ok(&kubectl(&kc, &["apply", "-f", &mf]));
    std::fs::write(&manifest, deploy("web:2")).expect("manifest");
    let out = ok(&kubectl(&kc, &["apply", "-f", &mf]));
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = api.object("apps", "deployments", "default", "web").expect("stored");
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(containers[0]["image"], "web:2", "{d}");
    assert_eq!(containers[0]["env"][0]["value"], "x", "{d}");
}

fn helm(kubeconfig: &Path, args: &[&str]) -> Output {
    let home = kubeconfig.parent().unwrap_or(kubeconfig);
    #[allow(clippy::disallowed_methods)] // the real client is the thing under test
    let out = Command::new(testkit::real::helm())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .args(args)
        .output()
        .expect("running the real helm");
    out
}

#[test]
fn real_helm_installs_upgrades_and_uninstalls_with_its_release_in_secrets() {
    let (api, dir, kc) = setup();
    let chart = dir.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
        .expect("Chart.yaml");
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").expect("values");
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  greeting: {{ .Values.greeting }}\n",
    )
    .expect("template");
    let c = chart.to_str().expect("utf-8 path");
    ok(&helm(&kc, &["install", "rel", c, "--namespace", "default"]));
    assert_eq!(
        api.object("", "configmaps", "default", "rel-cfg").expect("installed")["data"]["greeting"],
        "hello"
    );
    // helm's release storage: a Secret sh.helm.release.v1.<name>.v<revision>, labelled owner=helm
    // (helm pkg/storage/driver/secrets.go).
    let v1 = api.object("", "secrets", "default", "sh.helm.release.v1.rel.v1").expect("release secret");
    assert_eq!(v1["metadata"]["labels"]["owner"], "helm", "{v1}");

    ok(&helm(&kc, &["upgrade", "rel", c, "--namespace", "default", "--set", "greeting=bye"]));
    assert_eq!(
        api.object("", "configmaps", "default", "rel-cfg").expect("upgraded")["data"]["greeting"],
        "bye"
    );
    assert!(api.object("", "secrets", "default", "sh.helm.release.v1.rel.v2").is_some());
    let list = ok(&helm(&kc, &["list", "--namespace", "default", "-o", "json"]));
    assert!(list.contains("\"revision\":\"2\""), "{list}");

    ok(&helm(&kc, &["uninstall", "rel", "--namespace", "default"]));
    assert!(api.object("", "configmaps", "default", "rel-cfg").is_none());
    assert!(api.object("", "secrets", "default", "sh.helm.release.v1.rel.v2").is_none());
}

#[test]
fn a_stale_resource_version_is_a_conflict_in_the_apiservers_words() {
    let (api, dir, kc) = setup();
    let lease = dir.path().join("lease.yaml");
    let lf = lease.to_str().expect("utf-8 path").to_string();
    std::fs::write(
        &lease,
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: e2e-shared-infra\nspec:\n  holderIdentity: a\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["create", "-f", &lf]));
    let rv = api.object("coordination.k8s.io", "leases", "default", "e2e-shared-infra").expect("stored")
        ["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    let with_rv = |holder: &str, rv: &str| {
        format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: e2e-shared-infra\n  resourceVersion: \"{rv}\"\nspec:\n  holderIdentity: {holder}\n")
    };
    std::fs::write(&lease, with_rv("b", &rv)).expect("manifest");
    ok(&kubectl(&kc, &["replace", "-f", &lf]));
    std::fs::write(&lease, with_rv("c", &rv)).expect("manifest");
    let stale = kubectl(&kc, &["replace", "-f", &lf]);
    assert!(!stale.status.success());
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("Operation cannot be fulfilled on leases.coordination.k8s.io \"e2e-shared-infra\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    let held = api.object("coordination.k8s.io", "leases", "default", "e2e-shared-infra").expect("stored");
    assert_eq!(held["spec"]["holderIdentity"], "b");
}

#[test]
fn the_protobuf_decoder_reads_a_secret_and_never_panics_on_any_bytes() {
    // k8s\0, Unknown{typeMeta{apiVersion "v1", kind "Secret"}, raw Secret{metadata{name "s"}, data{"k": "v"}}}
    let raw: Vec<u8> =
        [&[0x0a, 0x03, 0x0a, 0x01, b's'][..], &[0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v']].concat();
    let type_meta = [&[0x0a, 0x02][..], b"v1", &[0x12, 0x06], b"Secret"].concat();
    let unknown = [&[0x0a, type_meta.len() as u8][..], &type_meta, &[0x12, raw.len() as u8], &raw].concat();
    let body = [&b"k8s\0"[..], &unknown].concat();
    let secret = testkit::kube_api::decode_protobuf(&body).expect("decoded");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "s");
    assert_eq!(secret["data"]["k"], "dg==", "data is base64 in JSON");
    for cut in 0..body.len() {
        let _ = testkit::kube_api::decode_protobuf(&body[..cut]);
    }
    for flip in 0..body.len() {
        let mut b = body.clone();
        b[flip] ^= 0xff;
        let _ = testkit::kube_api::decode_protobuf(&b);
    }
}

#[test]
fn real_kubectl_wait_reads_a_condition_already_met() {
    // kubectl wait lists the object (fieldSelector metadata.name=<name>) and returns as soon as
    // the condition is met, watching only when it is not (kubectl pkg/cmd/wait/condition.go).
    let (_api, dir, kc) = setup();
    let d = dir.path().join("d.yaml");
    std::fs::write(
        &d,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web:1}]\nstatus:\n  conditions: [{type: Available, status: \"True\"}]\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["create", "-f", d.to_str().expect("utf-8 path")]));
    let out = ok(&kubectl(&kc, &["wait", "--for=condition=Available", "deployment/web", "--timeout=10s"]));
    assert!(out.contains("deployment.apps/web condition met"), "{out}");
}

#[test]
fn real_kubectl_wait_watches_until_a_status_patch_meets_the_condition() {
    // Not met at the list: kubectl watches from the list's resourceVersion and returns on the
    // MODIFIED event that meets it (kubectl pkg/cmd/wait/condition.go, client-go tools/watch).
    let (_api, dir, kc) = setup();
    let d = dir.path().join("d.yaml");
    std::fs::write(
        &d,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: web, image: web:1}]\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["create", "-f", d.to_str().expect("utf-8 path")]));
    #[allow(clippy::disallowed_methods)] // the real client is the thing under test
    let waiter = Command::new(testkit::real::kubectl())
        .env("KUBECONFIG", &kc)
        .env("HOME", dir.path())
        .args(["wait", "--for=condition=Complete", "job/web", "--timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning kubectl wait");
    ok(&kubectl(
        &kc,
        &[
            "patch",
            "job",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Complete","status":"True"}]}}"#,
        ],
    ));
    let out = waiter.wait_with_output().expect("kubectl wait");
    let said = ok(&out);
    assert!(said.contains("job.batch/web condition met"), "{said}");
}

#[test]
fn real_kubectl_rollout_status_sees_a_deployment_rolled_out() {
    let (api, dir, kc) = setup();
    let d = dir.path().join("d.yaml");
    std::fs::write(
        &d,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web:1}]\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["apply", "-f", d.to_str().expect("utf-8 path")]));
    let out = ok(&kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=20s"]));
    assert!(out.contains("deployment \"web\" successfully rolled out"), "{out}");
    let dep = api.object("apps", "deployments", "default", "web").expect("stored");
    assert_eq!(dep["status"]["availableReplicas"], 2, "{dep}");
}
