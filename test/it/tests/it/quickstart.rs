//! `cargo xtask quickstart` end to end: the fake toolchain installs nothing, so the test runs what
//! the pod would (the demo, writing to the Gitea test server with the run's credentials) and a
//! real Prometheus scraping it.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::gitea::GiteaServer;
use testkit::prometheus::{demo_binary, Demo, PrometheusServer};
use testkit::{FakeToolchain, Rule};

const LABEL: &str = "configbutler.ai/e2e-run-id";

use crate::harness::text;
use crate::harness::{copy_dir, root, Sandbox};

struct World {
    fake: FakeToolchain,
    gitea: GiteaServer,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    def: PathBuf,
}

impl World {
    fn new(timeout: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&root().join("test/e2e/quickstart"), &dir.path().join("base"));
        copy_dir(&root().join("test/e2e/charts/demo"), &dir.path().join("chart"));
        let def = dir.path().join("e2e.toml");
        // The repository's own [quickstart], what installs the demo and proves it works, with the
        // chart and base copied here and the deadline this test wants.
        let ours = std::fs::read_to_string(root().join("test/e2e/e2e.toml")).unwrap();
        let section = &ours[ours.find("[quickstart]").expect("the demo's quickstart")..];
        let patches = root().join("test/e2e/quickstart-patches/");
        let section = section
            .replace("chart = \"test/e2e/charts/demo\"", "chart = \"chart\"")
            .replace("base = \"test/e2e/quickstart\"", "base = \"base\"")
            .replace("timeout = \"5m\"", &format!("timeout = \"{timeout}\""))
            .replace("\"test/e2e/quickstart-patches/", &format!("\"{}", patches.display()));
        assert!(
            section.contains(&format!("timeout = \"{timeout}\"")) && section.contains("chart = \"chart\"")
        );
        std::fs::write(&def, format!("[cluster]\nname = \"e2e\"\n\n{section}")).unwrap();
        let fake = crate::harness::fake();
        fake.with_cluster("e2e").unwrap();
        // What the real clients can do here, they do: helm renders the chart, kubectl's kustomize
        // builds the overlay that `apply -k` is given.
        fake.rule(Rule::new("helm", "^template ").real(testkit::real::helm())).unwrap();
        fake.real_kustomize(testkit::real::kubectl()).unwrap();
        let sandbox = Sandbox::with_fake(&fake);
        // What `cargo xtask setup` recorded of the demo image: the quickstart names its tag.
        std::fs::write(
            sandbox.state.path().join("incremental.json"),
            r#"{"images": {"demo": {"digest": "0123456789abcdef", "tag": "e2e-demo:0123456789ab", "image_id": "sha256:1", "inputs": {}}}}"#,
        )
        .unwrap();
        World { fake, gitea: GiteaServer::start().unwrap(), sandbox, dir, def }
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.xtask(args);
        cmd.current_dir(self.dir.path());
        for (k, v) in self.gitea.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Gitea setup for a run; returns its token (from the secret the setup applied).
    fn setup(&self, id: &str, flow: &str) -> String {
        let out = self.xtask(&["gitea", "setup", "--run-id", id, "--flow", flow]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let calls = self.fake.journal().unwrap();
        calls
            .iter()
            .filter(|c| c.tool == "kubectl" && c.argv[0] == "apply")
            .filter_map(|c| serde_json::from_str::<Value>(c.stdin.as_deref()?).ok())
            .filter_map(|v| {
                v["items"]
                    .as_array()?
                    .iter()
                    .find(|i| i["metadata"]["name"] == "git-creds" && i["metadata"]["labels"][LABEL] == id)
                    .cloned()
            })
            .map(|i| i["stringData"]["password"].as_str().unwrap().to_string())
            .next_back()
            .unwrap()
    }

    /// The workload the pod would run: the demo writing to the run's repository.
    fn workload(&self, id: &str, flow: &str, token: &str) -> Demo {
        let repo = format!("testorg/e2e-{flow}-{id}");
        Demo::start(
            &demo_binary().unwrap(),
            id,
            "service",
            &[
                ("DEMO_GITEA_API", self.gitea.api_url().as_str()),
                ("DEMO_GIT_REPO", repo.as_str()),
                ("DEMO_GIT_TOKEN", token),
                ("DEMO_WRITE_INTERVAL_MS", "300"),
            ],
        )
        .unwrap()
    }

    fn quickstart(&self, mode: &str, id: &str, prometheus: &str) -> Command {
        let mut cmd = self.xtask(&[
            "quickstart",
            "--mode",
            mode,
            "--run-id",
            id,
            "--definition",
            self.def.to_str().unwrap(),
        ]);
        cmd.env("E2E_PROMETHEUS_URL", prometheus);
        cmd
    }
}

#[test]
fn helm_and_manifest_quickstarts_of_two_runs_at_once_pass_each_seeing_only_its_own_run() {
    let w = World::new("30s");
    let (a, b) = ("qsm-a1", "qsh-b2");
    let token_a = w.setup(a, "quickstart-manifest");
    let token_b = w.setup(b, "quickstart-helm");
    let demo_a = w.workload(a, "quickstart-manifest", &token_a);
    let demo_b = w.workload(b, "quickstart-helm", &token_b);
    let prom =
        PrometheusServer::start(&[(demo_a.addr.clone(), a.into()), (demo_b.addr.clone(), b.into())]).unwrap();

    let manifest = w
        .quickstart("manifest", a, &prom.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let helm =
        w.quickstart("helm", b, &prom.url()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for child in [manifest, helm] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    let calls = w.fake.journal().unwrap();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    // helm: a release per run, labelled, valued with the run's repository.
    let helm = calls.iter().find(|c| c.tool == "helm").unwrap();
    assert_eq!(helm.argv[..3], ["upgrade", "--install", &format!("qs-{b}")]);
    let line = helm.line();
    assert!(
        line.contains(&format!("--namespace run-e2e-quickstart-helm-{b}"))
            && line.contains(&format!("--labels {LABEL}={b}")),
        "{line}"
    );
    assert!(line.contains("--set-string image=e2e-demo:0123456789ab"), "the image setup built: {line}");
    assert!(
        // Identifiers as strings: `--set` would parse `0123` as a number and `true` as a bool.
        line.contains(&format!("--set-string runId={b}"))
            && line.contains(&format!("--set-string git.repo=testorg/e2e-quickstart-helm-{b}")),
        "{line}"
    );
    // Every object the release makes carries the run label, whatever the chart: helm's
    // post-renderer is this xtask, and the real helm running it over a chart that labels nothing
    // gets the label on each object and pod template (never on the selector).
    let rendered = post_rendered_by_the_real_helm(helm, &w.sandbox);
    let docs: Vec<&str> = rendered.split("\n---\n").collect();
    assert_eq!(docs.len(), 3, "{rendered}");
    for doc in &docs {
        assert!(doc.contains(&format!("metadata:\n  labels:\n    {LABEL}: {b}\n")), "unlabelled: {doc}");
    }
    let deployment = docs.iter().find(|d| d.contains("kind: Deployment")).unwrap();
    assert!(
        deployment.contains(&format!(
            "  template:\n    metadata:\n      labels:\n        app: bare\n        {LABEL}: {b}\n"
        )),
        "{deployment}"
    );
    assert!(
        deployment.contains("    matchLabels:\n      app: bare\n  template:"),
        "the selector is the chart's: {deployment}"
    );

    // manifest: the generated overlay, applied with -k.
    let overlay_dir = w.sandbox.state.path().join("runs").join(a).join("quickstart");
    assert!(
        lines.iter().any(|l| l
            == &format!(
                "kubectl apply --server-side --field-manager=xtask-e2e -k {} --context kind-e2e",
                overlay_dir.display()
            )),
        "{lines:#?}"
    );
    let overlay: Value =
        serde_json::from_str(&std::fs::read_to_string(overlay_dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    assert_eq!(overlay["namespace"], format!("run-e2e-quickstart-manifest-{a}"));
    assert_eq!(overlay["nameSuffix"], format!("-{a}"));
    assert_eq!(overlay["labels"][0]["pairs"][LABEL], a);
    assert!(
        overlay_dir.join(overlay["resources"][0].as_str().unwrap()).join("kustomization.yaml").exists(),
        "the base resolves"
    );
    // The definition's patch, templated with the run's repository and secret, is the overlay's.
    assert_eq!(overlay["patches"][0]["path"], "patch-0.yaml");
    let patch = std::fs::read_to_string(overlay_dir.join("patch-0.yaml")).unwrap();
    assert!(
        patch.contains(&format!("value: \"testorg/e2e-quickstart-manifest-{a}\""))
            && patch.contains("name: \"git-creds\"")
            && !patch.contains("${"),
        "{patch}"
    );
    for (id, flow) in [(a, "quickstart-manifest"), (b, "quickstart-helm")] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!(
                "kubectl rollout status deployment/demo-{id} --namespace run-e2e-{flow}-{id}"
            ))),
            "{lines:#?}"
        );
    }
    // The real kubectl (its kustomize) renders the overlay: the per-run cluster-scoped object
    // carries the run's suffix and label.
    {
        let real_kubectl = testkit::real::kubectl();
        let rendered = Command::new(real_kubectl).arg("kustomize").arg(&overlay_dir).output().unwrap();
        assert!(rendered.status.success(), "{}", text(&rendered));
        let yaml = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            yaml.contains(&format!("name: demo-reader-{a}")) && !yaml.contains("name: demo-reader\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains(&format!("name: demo-{a}")) && yaml.contains(&format!("{LABEL}: {a}")),
            "{yaml}"
        );
        assert!(
            yaml.contains("DEMO_GIT_REPO") && yaml.contains(&format!("testorg/e2e-quickstart-manifest-{a}")),
            "{yaml}"
        );
    }
    // Each run's ServiceMonitor: in its namespace, selecting its label, relabelling to run_id.
    for (id, flow) in [(a, "quickstart-manifest"), (b, "quickstart-helm")] {
        let monitor = calls
            .iter()
            .filter_map(|c| serde_json::from_str::<Value>(c.stdin.as_deref()?).ok())
            .find(|v| v["kind"] == "ServiceMonitor" && v["metadata"]["labels"][LABEL] == id)
            .unwrap_or_else(|| panic!("no ServiceMonitor for {id}"));
        assert_eq!(monitor["metadata"]["namespace"], format!("run-e2e-{flow}-{id}"));
        assert_eq!(monitor["spec"]["selector"]["matchLabels"][LABEL], id);
        assert_eq!(monitor["spec"]["endpoints"][0]["relabelings"][0]["targetLabel"], "run_id");
    }
    drop((demo_a, demo_b, prom));
}

/// `helm template` by the real helm of a chart that labels nothing, with the post-renderer the
/// quickstart's `helm upgrade` (journaled as `call`) was given; in `sandbox`'s state dir and home,
/// on this machine's PATH (the real kubectl's kustomize).
fn post_rendered_by_the_real_helm(call: &testkit::Call, sandbox: &Sandbox) -> String {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("bare");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: bare\nversion: 0.1.0\n").unwrap();
    std::fs::write(
        chart.join("templates/all.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bare\ndata:\n  a: b\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: bare-{{ .Release.Name }}\nrules: []\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bare\nspec:\n  selector:\n    matchLabels:\n      app: bare\n  template:\n\
         \x20   metadata:\n      labels:\n        app: bare\n    spec:\n      containers:\n      - name: c\n        image: x\n",
    )
    .unwrap();
    let mut helm = Command::new(testkit::real::helm());
    helm.args(["template", "bare"]).arg(&chart);
    for pair in call.argv.windows(2) {
        if pair[0] == "--post-renderer" || pair[0] == "--post-renderer-args" {
            helm.args([&pair[0], &pair[1]]);
        }
    }
    let path = format!(
        "{}:{}",
        Path::new(&testkit::real::kubectl()).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = helm
        .env("PATH", path)
        .env("E2E_STATE_DIR", sandbox.state.path())
        .env("HOME", sandbox.home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}: {}", call.argv, text(&out));
    String::from_utf8_lossy(&out.stdout).trim_start_matches("---\n").to_string()
}

#[test]
fn without_the_workloads_writes_the_quickstart_fails_within_its_deadline_with_a_bundle() {
    let w = World::new("3s");
    // Plain Prometheus (a static scrape): no ServiceMonitor is asked for, none is applied.
    let def = std::fs::read_to_string(&w.def).unwrap();
    assert!(def.contains("service-monitor = \"http\"\n"));
    std::fs::write(&w.def, def.replace("service-monitor = \"http\"\n", "")).unwrap();
    let id = "qsf-c3";
    let _token = w.setup(id, "quickstart-manifest");
    let prom = PrometheusServer::start(&[]).unwrap();
    let start = Instant::now();
    let out = w.quickstart("manifest", id, &prom.url()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(30), "gave up late: {:?}", start.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("e2e-status.txt") && err.contains("did not appear"), "{err}");
    // The failing check is named by its place in the definition.
    assert!(err.contains("check 2 of 4 (git-file)"), "{err}");
    let index = w.sandbox.state.path().join("runs").join(id).join("artifacts/index.json");
    let index: Value = serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    assert!(index["reason"].as_str().unwrap().contains("did not appear"));
    let calls = w.fake.journal().unwrap();
    assert!(calls.iter().any(|c| c.line().contains("-k ")), "the overlay was applied");
    assert!(!calls.iter().any(|c| c.stdin.as_deref().unwrap_or("").contains("ServiceMonitor")));
    assert_eq!(index["namespace"], format!("run-e2e-quickstart-manifest-{id}"));
}

#[test]
fn a_run_without_gitea_setup_is_told_what_to_run() {
    let w = World::new("3s");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = w.quickstart("helm", "nogit1", &format!("http://{closed}")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cargo xtask gitea setup --run-id nogit1 --flow quickstart-helm"));
}

/// No helm binary here to render the chart: check its templates instead. Every cluster-scoped
/// object is named per run and labelled with it, so two runs never share one.
#[test]
fn the_charts_cluster_scoped_objects_are_named_per_run() {
    let text =
        std::fs::read_to_string(root().join("test/e2e/charts/demo/templates/deployment.yaml")).unwrap();
    let cluster_scoped = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    let mut seen = 0;
    for doc in text.split("\n---") {
        let kind = doc.lines().find_map(|l| l.strip_prefix("kind: ")).unwrap_or("").trim();
        if cluster_scoped.contains(&kind) {
            seen += 1;
            let name = doc.lines().find_map(|l| l.trim().strip_prefix("name: ")).unwrap_or("");
            assert!(name.contains("{{ .Values.runId }}"), "{kind} {name} is not named per run");
            assert!(
                doc.contains("{{ .Values.runLabel }}: {{ .Values.runId | quote }}"),
                "{kind} {name} lacks the run label"
            );
        }
    }
    assert!(seen >= 1, "the chart has a cluster-scoped object to check");
}

/// Without a kustomize base, the manifest mode renders the chart (`helm template`, as helm mode
/// would install it: the run's release and values) and puts its overlay over that, built by the
/// real helm and the real kustomize: names are the chart's (not suffixed a second time), and a
/// patch names an object as the chart renders it.
#[test]
fn without_a_base_the_manifest_mode_renders_the_chart_with_the_runs_values() {
    let w = World::new("1s");
    let def = std::fs::read_to_string(&w.def).unwrap();
    assert!(def.contains("base = \"base\"\n"));
    let patch = w.dir.path().join("rendered-patch.yaml");
    std::fs::write(
        &patch,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: demo-${E2E_RUN_ID}\nspec:\n  template:\n    spec:\n      containers:\n        - name: demo\n          env:\n            - { name: PATCHED, value: \"${E2E_QUICKSTART_MODE}\" }\n",
    )
    .unwrap();
    let start = def.find("patches = [").unwrap();
    let end = start + def[start..].find('\n').unwrap();
    let def = format!("{}patches = [{:?}]{}", &def[..start], patch.display().to_string(), &def[end..]);
    std::fs::write(&w.def, def.replace("base = \"base\"\n", "")).unwrap();
    let id = "qsr-d4";
    let _token = w.setup(id, "quickstart-manifest");
    let prom = PrometheusServer::start(&[]).unwrap();
    // No workload runs here: the checks fail; the install before them is what this test reads.
    let out = w.quickstart("manifest", id, &prom.url()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let calls = w.fake.journal().unwrap();
    let render = calls.iter().find(|c| c.tool == "helm").expect("helm template ran");
    let line = render.line();
    assert!(
        line.starts_with(&format!("helm template qs-{id} "))
            && line.contains(&format!("--namespace run-e2e-quickstart-manifest-{id}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("--set-string runId={id}")) && line.contains("--set-string git.repo=testorg/"),
        "{line}"
    );
    assert!(!calls.iter().any(|c| c.line().starts_with("helm upgrade")), "rendered, not installed by helm");
    let dir = w.sandbox.state.path().join("runs").join(id).join("quickstart");
    assert!(std::fs::read_to_string(dir.join("rendered.yaml")).unwrap().contains("kind: Service"));
    let overlay: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    assert_eq!(overlay["resources"][0], "rendered.yaml");
    // The real kustomize built the overlay over the real helm's render: the chart's names, which
    // the run's release and values already scope, are not suffixed twice, and every object is in
    // the run's namespace with the run's label.
    let built = w.fake.kustomized();
    assert_eq!(built.len(), 1, "kustomize refused the overlay: {}", text(&out));
    let yaml = &built[0];
    assert!(yaml.contains(&format!("  name: demo-{id}\n")), "{yaml}");
    assert!(!yaml.contains(&format!("{id}-{id}")), "a name suffixed twice: {yaml}");
    assert!(overlay.get("nameSuffix").is_none(), "{overlay}");
    assert!(yaml.contains("name: PATCHED\n          value: manifest\n"), "the patch applies: {yaml}");
    assert!(yaml.contains(&format!("namespace: run-e2e-quickstart-manifest-{id}\n")), "{yaml}");
    assert!(yaml.contains(&format!("configbutler.ai/e2e-run-id: {id}\n")), "{yaml}");
    assert!(calls.iter().any(|c| c.line().starts_with(&format!(
        "kubectl apply --server-side --field-manager=xtask-e2e -k {}",
        dir.display()
    ))));
}

/// A file as the base (a rendered install.yaml, what `make build-installer` writes) is built by
/// the real kustomize: the overlay under the state dir may load a file only from in or below its
/// own directory, so the file is copied in; its names get the run's suffix and the base's patch
/// (naming the unsuffixed Deployment) applies.
#[test]
fn a_rendered_install_yaml_as_the_base_is_built_by_the_real_kustomize() {
    let w = World::new("1s");
    let install = w.dir.path().join("dist/install.yaml");
    std::fs::create_dir_all(install.parent().unwrap()).unwrap();
    let base_dir = w.dir.path().join("base");
    let install_text = ["deployment.yaml", "service.yaml", "clusterrole.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(base_dir.join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    std::fs::write(&install, install_text).unwrap();
    let def = std::fs::read_to_string(&w.def).unwrap();
    std::fs::write(&w.def, def.replace("base = \"base\"\n", "base = \"dist/install.yaml\"\n")).unwrap();
    let id = "qsf-e5";
    let _token = w.setup(id, "quickstart-manifest");
    let prom = PrometheusServer::start(&[]).unwrap();
    // No workload runs here: the checks fail; the install before them is what this test reads.
    let out = w.quickstart("manifest", id, &prom.url()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let built = w.fake.kustomized();
    assert_eq!(built.len(), 1, "kustomize refused the overlay: {}", text(&out));
    let yaml = &built[0];
    assert!(yaml.contains(&format!("  name: demo-{id}\n")), "{yaml}");
    assert!(yaml.contains(&format!("  name: demo-reader-{id}\n")), "{yaml}");
    assert!(yaml.contains("image: e2e-demo:0123456789ab\n"), "the base's patch applies: {yaml}");
}

/// The chart rendered for manifest mode sees the cluster's APIs, as helm mode does: a template
/// gated on `.Capabilities.APIVersions.Has "cert-manager.io/v1"` renders when the cluster serves
/// cert-manager and not when it does not (`helm template` alone knows only helm's defaults).
#[test]
fn the_chart_rendered_for_manifest_mode_sees_the_clusters_apis() {
    for serves_cert_manager in [true, false] {
        let w = World::new("1s");
        std::fs::write(
            w.dir.path().join("chart/templates/certificate.yaml"),
            "{{- if .Capabilities.APIVersions.Has \"cert-manager.io/v1\" }}\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: demo-cert-{{ .Values.runId }}\nspec:\n  secretName: demo-cert\n{{- end }}\n",
        )
        .unwrap();
        let def = std::fs::read_to_string(&w.def).unwrap();
        let start = def.find("patches = [").unwrap();
        let end = start + def[start..].find('\n').unwrap();
        let def = format!("{}{}", &def[..start], &def[end + 1..]);
        std::fs::write(&w.def, def.replace("base = \"base\"\n", "")).unwrap();
        if serves_cert_manager {
            w.fake
                .rule(Rule::new("kubectl", "^api-versions").stdout("apps/v1\ncert-manager.io/v1\nv1\n"))
                .unwrap();
        }
        let id = if serves_cert_manager { "qsc-a1" } else { "qsc-a2" };
        let _token = w.setup(id, "quickstart-manifest");
        let prom = PrometheusServer::start(&[]).unwrap();
        let out = w.quickstart("manifest", id, &prom.url()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let built = w.fake.kustomized();
        assert_eq!(built.len(), 1, "kustomize refused the overlay: {}", text(&out));
        assert_eq!(
            built[0].contains(&format!("kind: Certificate\nmetadata:\n  labels:\n    configbutler.ai/e2e-run-id: {id}\n  name: demo-cert-{id}\n")),
            serves_cert_manager,
            "{}",
            built[0]
        );
    }
}
