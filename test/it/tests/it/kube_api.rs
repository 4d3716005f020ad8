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
    // The status a manifest carries is dropped on create (a status subresource); the Deployment
    // controller sets Available once its pods are ready.
    let (api, dir, kc) = setup();
    let d = dir.path().join("d.yaml");
    std::fs::write(
        &d,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web:1}]\nstatus:\n  replicas: 7\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["create", "-f", d.to_str().expect("utf-8 path")]));
    let out = ok(&kubectl(&kc, &["wait", "--for=condition=Available", "deployment/web", "--timeout=10s"]));
    assert!(out.contains("deployment.apps/web condition met"), "{out}");
    assert_eq!(api.object("apps", "deployments", "default", "web").expect("stored")["status"]["replicas"], 1);
}

/// The node's images as the fake kind records them (its state.json).
fn node_has(path: &Path, images: &[&str]) {
    std::fs::write(path, serde_json::json!({"node_images": {"kind": images}}).to_string())
        .expect("state.json");
}

#[test]
fn real_kubectl_wait_watches_until_a_pod_starts_when_its_image_reaches_the_node() {
    // Not met at the list: kubectl watches from the list's resourceVersion and returns on the
    // MODIFIED event that meets it (kubectl pkg/cmd/wait/condition.go, client-go tools/watch).
    // The pod waits in ImagePullBackOff until the image is on the node; the controllers' tick
    // starts it then.
    let (api, dir, kc) = setup();
    let images = dir.path().join("state.json");
    node_has(&images, &[]);
    api.images_loaded_in(&images, "kind");
    let d = dir.path().join("d.yaml");
    std::fs::write(
        &d,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: web, image: web:1}]\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", d.to_str().expect("utf-8 path")]));
    let pods = ok(&kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[*].state.waiting.reason}",
        ],
    ));
    assert_eq!(pods.trim(), "ImagePullBackOff");
    #[allow(clippy::disallowed_methods)] // the real client is the thing under test
    let waiter = Command::new(testkit::real::kubectl())
        .env("KUBECONFIG", &kc)
        .env("HOME", dir.path())
        .args(["wait", "--for=condition=ready", "pod", "--selector", "app=web", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning kubectl wait");
    node_has(&images, &["docker.io/library/web:1"]);
    let out = waiter.wait_with_output().expect("kubectl wait");
    let said = ok(&out);
    assert!(said.contains("condition met"), "{said}");
    let dep = api.object("apps", "deployments", "default", "web").expect("stored");
    assert_eq!(dep["status"]["availableReplicas"], 1, "{dep}");
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

fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "kubectl succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn real_kubectl_server_side_apply_owns_fields_and_conflicts_in_the_apiservers_words() {
    // https://kubernetes.io/docs/reference/using-api/server-side-apply/: an apply creates, a
    // re-apply without a field removes it, a field another manager set is a conflict unless forced.
    let (api, dir, kc) = setup();
    let f = dir.path().join("cm.yaml");
    let mf = f.to_str().expect("utf-8 path").to_string();
    std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: '1', b: '2'}\n")
        .expect("manifest");
    let out = ok(&kubectl(&kc, &["apply", "--server-side", "--field-manager=xtask-e2e", "-f", &mf]));
    assert!(out.contains("configmap/cfg serverside-applied"), "{out}");
    std::fs::write(&f, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: '1'}\n")
        .expect("manifest");
    ok(&kubectl(&kc, &["apply", "--server-side", "--field-manager=xtask-e2e", "-f", &mf]));
    assert_eq!(
        api.object("", "configmaps", "default", "cfg").expect("stored")["data"],
        serde_json::json!({"a": "1"})
    );

    // another writer (an update, named after kubectl's user agent... here kubectl patch's own
    // manager) changes a: our apply of a=1 now conflicts with it
    ok(&kubectl(&kc, &["patch", "configmap", "cfg", "--type=merge", "-p", r#"{"data":{"a":"9"}}"#]));
    let err = fails(&kubectl(&kc, &["apply", "--server-side", "--field-manager=xtask-e2e", "-f", &mf]));
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.a"),
        "{err}"
    );
    ok(&kubectl(
        &kc,
        &["apply", "--server-side", "--force-conflicts", "--field-manager=xtask-e2e", "-f", &mf],
    ));
    assert_eq!(api.object("", "configmaps", "default", "cfg").expect("stored")["data"]["a"], "1");
}

#[test]
fn a_deployment_owns_replicasets_that_own_ready_pods_and_a_new_template_rolls_them() {
    // The ReplicaSet is the one helm's deploymentutil.GetNewReplicaSet finds (controlled by the
    // Deployment, template equal but for pod-template-hash); rollout status reads the Deployment.
    let (api, dir, kc) = setup();
    let f = dir.path().join("d.yaml");
    let mf = f.to_str().expect("utf-8 path").to_string();
    let deploy = |image: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers: [{{name: web, image: '{image}'}}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n")
    };
    std::fs::write(&f, deploy("web:1")).expect("manifest");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", &mf]));
    let rs = api.objects("apps", "replicasets", "default");
    assert_eq!(rs.len(), 1, "{rs:?}");
    let hash = rs[0]["metadata"]["labels"]["pod-template-hash"].as_str().expect("hash label").to_string();
    assert_eq!(rs[0]["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    let ready = ok(&kubectl(
        &kc,
        &["wait", "pod", "--selector", "app=web", "--for=condition=ready", "--timeout=10s"],
    ));
    assert_eq!(ready.lines().count(), 2, "{ready}");
    let ips = ok(&kubectl(&kc, &["get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}"]));
    assert_eq!(ips.split_whitespace().count(), 2, "{ips}");
    let svc = api.object("", "services", "default", "web").expect("stored");
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")), "{svc}");

    std::fs::write(&f, deploy("web:2")).expect("manifest");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", &mf]));
    let out = ok(&kubectl(&kc, &["rollout", "status", "deployment/web", "--timeout=10s"]));
    assert!(out.contains("successfully rolled out"), "{out}");
    let sets = api.objects("apps", "replicasets", "default");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let old =
        sets.iter().find(|r| r["metadata"]["labels"]["pod-template-hash"] == hash.as_str()).expect("old");
    assert_eq!(old["spec"]["replicas"], 0, "{old}");
    let pods = api.objects("", "pods", "default");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|p| p["spec"]["containers"][0]["image"] == "web:2"), "{pods:?}");

    // deleting the Deployment takes its ReplicaSets and Pods (garbage collection)
    ok(&kubectl(&kc, &["delete", "deployment", "web"]));
    assert!(api.objects("apps", "replicasets", "default").is_empty());
    assert!(api.objects("", "pods", "default").is_empty());
}

fn chart(dir: &Path, image: &str) -> std::path::PathBuf {
    let chart = dir.join("chart");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: app\nversion: 0.1.0\n")
        .expect("Chart.yaml");
    std::fs::write(chart.join("values.yaml"), format!("image: '{image}'\n")).expect("values");
    std::fs::write(
        chart.join("templates/all.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers: [{name: app, image: {{ .Values.image | quote }}}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {app: {{ .Release.Name }}}\n  ports: [{port: 80}]\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-init\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: init, image: {{ .Values.image | quote }}}]\n",
    )
    .expect("template");
    chart
}

#[test]
fn real_helm_install_wait_returns_when_the_release_is_ready_and_times_out_when_an_image_is_missing() {
    // helm pkg/kube/ready.go (v3.17.2): the Deployment's new ReplicaSet ready, the Service with a
    // cluster IP, the Job complete (--wait-for-jobs); polled every 2 s (pkg/kube/wait.go).
    let (api, dir, kc) = setup();
    let images = dir.path().join("state.json");
    node_has(&images, &["app:1"]);
    api.images_loaded_in(&images, "kind");
    let c = chart(dir.path(), "app:1");
    let c = c.to_str().expect("utf-8 path");
    ok(&helm(
        &kc,
        &["install", "good", c, "--namespace", "default", "--wait", "--wait-for-jobs", "--timeout", "20s"],
    ));
    let job = api.object("batch", "jobs", "default", "good-init").expect("job");
    assert_eq!(job["status"]["succeeded"], 1, "{job}");

    let out = helm(
        &kc,
        &["install", "bad", c, "--namespace", "default", "--set", "image=app:2", "--wait", "--timeout", "3s"],
    );
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("context deadline exceeded"), "{err}");
    let pod = api
        .objects("", "pods", "default")
        .into_iter()
        .find(|p| p["metadata"]["labels"]["app"] == "bad")
        .expect("pod");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "ImagePullBackOff",
        "{pod}"
    );
}

#[test]
fn a_crd_adds_its_kind_and_a_namespace_terminates_until_its_finalizers_are_gone() {
    let (api, dir, kc) = setup();
    let crd = dir.path().join("crd.yaml");
    std::fs::write(
        &crd,
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gitmirrors.fixture.example.com\nspec:\n  group: fixture.example.com\n  scope: Namespaced\n  names: {plural: gitmirrors, singular: gitmirror, kind: GitMirror, shortNames: [gm]}\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    subresources: {status: {}}\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    )
    .expect("crd");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", crd.to_str().expect("utf-8 path")]));
    let out = ok(&kubectl(
        &kc,
        &["wait", "--for", "condition=established", "crd/gitmirrors.fixture.example.com", "--timeout=10s"],
    ));
    assert!(out.contains("condition met"), "{out}");
    ok(&kubectl(&kc, &["create", "namespace", "team"]));
    let cr = dir.path().join("cr.yaml");
    std::fs::write(
        &cr,
        "apiVersion: fixture.example.com/v1alpha1\nkind: GitMirror\nmetadata:\n  name: m\n  namespace: team\n  finalizers: [fixture.example.com/cleanup]\nspec: {repo: x}\n",
    )
    .expect("cr");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", cr.to_str().expect("utf-8 path")]));
    assert_eq!(
        ok(&kubectl(&kc, &["get", "gm", "-n", "team", "-o", "name"])).trim(),
        "gitmirror.fixture.example.com/m"
    );

    ok(&kubectl(&kc, &["delete", "namespace", "team", "--wait=false"]));
    let phase = ok(&kubectl(&kc, &["get", "namespace", "team", "-o", "jsonpath={.status.phase}"]));
    assert_eq!(phase, "Terminating");
    let err = fails(&kubectl(&kc, &["create", "configmap", "late", "-n", "team"]));
    assert!(err.contains("because it is being terminated"), "{err}");
    ok(&kubectl(
        &kc,
        &[
            "patch",
            "gitmirror",
            "m",
            "-n",
            "team",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    ));
    let out = ok(&kubectl(&kc, &["wait", "--for=delete", "namespace/team", "--timeout=10s"]));
    assert!(out.contains("condition met") || out.is_empty(), "{out}");
    assert!(api.object("", "namespaces", "", "team").is_none());

    ok(&kubectl(&kc, &["delete", "crd", "gitmirrors.fixture.example.com"]));
    // kubectl's cached discovery may still list the kind (then the list is a 404), or not
    let err = fails(&kubectl(&kc, &["get", "gitmirrors", "-A"]));
    assert!(
        err.contains("the server doesn't have a resource type \"gitmirrors\"")
            || err.contains("Unable to list \"fixture.example.com/v1alpha1, Resource=gitmirrors\": the server could not find the requested resource"),
        "{err}"
    );
}

#[test]
fn a_crashing_image_is_crash_loop_backoff_and_diagnostics_read_pods_logs_and_events() {
    let (api, dir, kc) = setup();
    api.crashing_image("crash:1");
    let f = dir.path().join("p.yaml");
    std::fs::write(
        &f,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: c\nspec:\n  selector:\n    matchLabels: {app: c}\n  template:\n    metadata:\n      labels: {app: c}\n    spec:\n      containers: [{name: c, image: 'crash:1'}]\n",
    )
    .expect("manifest");
    ok(&kubectl(&kc, &["apply", "--server-side", "-f", f.to_str().expect("utf-8 path")]));
    let wide = ok(&kubectl(&kc, &["get", "pods", "--output", "wide"]));
    assert!(wide.contains("CrashLoopBackOff"), "{wide}");
    let described = ok(&kubectl(&kc, &["describe", "pods"]));
    assert!(described.contains("CrashLoopBackOff"), "{described}");
    ok(&kubectl(&kc, &["logs", "--selector", "app=c", "--all-containers", "--prefix", "--tail=200"]));
    ok(&kubectl(&kc, &["get", "events", "--sort-by=.lastTimestamp"]));
    let out = kubectl(&kc, &["rollout", "status", "deployment/c", "--timeout=2s"]);
    assert!(!out.status.success());
}

#[test]
fn the_server_survives_any_bytes_and_keeps_serving_the_real_client() {
    use std::io::{Read, Write};
    let (api, _dir, kc) = setup();
    let addr = api.url().trim_start_matches("http://").to_string();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut cases: Vec<Vec<u8>> = vec![
        b"GET /api/v1/namespaces HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
        b"POST /api/v1/namespaces HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\nxx".to_vec(),
        b"POST /api/v1/namespaces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n".to_vec(),
        b"PATCH /api/v1/namespaces/default HTTP/1.1\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: 3\r\n\r\n{{{".to_vec(),
        b"POST /api/v1/namespaces/default/secrets HTTP/1.1\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: 6\r\n\r\nk8s\0\xff\xff".to_vec(),
        b"GET /api/v1/%zz%/%%%?labelSelector=a%2&fieldSelector=%ff HTTP/1.1\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
    ];
    for n in 0..40 {
        let bytes: Vec<u8> = (0..(n * 7 + 1))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        cases.push(bytes);
    }
    for case in cases {
        let mut conn = std::net::TcpStream::connect(&addr).expect("connecting");
        conn.set_read_timeout(Some(std::time::Duration::from_millis(300))).expect("timeout");
        let _ = conn.write_all(&case);
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    }
    let versions = ok(&kubectl(&kc, &["get", "namespaces", "-o", "name"]));
    assert!(versions.contains("namespace/default"), "{versions}");
}
