//! What the fake `helm` knows of the real charts the shared infra installs: enough of each to fail
//! the way the real one fails. Every behaviour here was read from the chart's own source:
//!
//! gitea 10.6.0 (go-gitea/helm-chart at v10.6.0, appVersion 1.22.3, rootless image):
//! - `values.yaml`: the top-level keys listed in `GITEA_10_6_0_KEYS` (no `valkey-cluster`: that
//!   arrived with chart 11); `service.http` and `service.ssh` are headless (`clusterIP: None`),
//!   ports 3000 and 22; `postgresql-ha.enabled: true`, `postgresql.enabled: false`,
//!   `redis-cluster.enabled: true` by default.
//! - `templates/_helpers.tpl`: `DB_TYPE` is filled in only when `postgresql-ha` or `postgresql` is
//!   enabled; Gitea reads it with no default (`modules/setting/database.go`), so with both off and
//!   no `gitea.config.database.DB_TYPE` the `configure-gitea` init container exits 1 ("unknown
//!   database type") and `helm --wait` times out.
//! - the rootless image listens for SSH on `SSH_LISTEN_PORT` 2222 and HTTP on `HTTP_PORT` 3000;
//!   each Service's `targetPort` is that port.
//!
//! kube-prometheus-stack 66.3.1 (prometheus-community/helm-charts, `values.yaml` at
//! kube-prometheus-stack-66.3.1): the top-level keys in `KUBE_PROMETHEUS_STACK_KEYS`.
//!
//! A chart the fake does not model answers `helm show values` with an error, so a test that
//! gives values to an unmodelled chart fails until its keys are read from the chart and added.
//!
//! Services the fake records go to `kubectl port-forward`, which resolves them as kubectl does
//! (`pkg/util/service_port.go`, `LookupContainerPortNumberByServicePort`): the remote port must be
//! a port the Service declares ("Service X does not have a service port P" otherwise); for a
//! headless Service (`clusterIP: None`) the pod port is the service port itself, `targetPort`
//! ignored; otherwise it is `targetPort`.

use serde_json::{json, Value};
use xtask_lint::value::{FromValue, Table, ToValue};

/// A Service as `kubectl port-forward svc/...` sees it, and the port its pod really listens on.
#[derive(Clone, Debug)]
pub struct Service {
    pub headless: bool,
    pub port: u16,
    pub target_port: u16,
    /// Where the pod's server listens.
    pub listens_on: u16,
}

impl FromValue for Service {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(Service {
            headless: t.req("headless")?,
            port: t.req("port")?,
            target_port: t.req("target_port")?,
            listens_on: t.req("listens_on")?,
        })
    }
}

impl ToValue for Service {
    fn to_value(&self) -> Value {
        json!({"headless": self.headless, "port": self.port, "target_port": self.target_port,
               "listens_on": self.listens_on})
    }
}

impl Service {
    /// The pod port a forward to `remote` reaches, as kubectl resolves it.
    pub fn pod_port(&self, name: &str, remote: u16) -> Result<u16, String> {
        if remote != self.port {
            return Err(format!("error: Service {name} does not have a service port {remote}\n"));
        }
        Ok(if self.headless { remote } else { self.target_port })
    }
}

const GITEA_10_6_0_KEYS: &[&str] = &[
    "global",
    "replicaCount",
    "clusterDomain",
    "image",
    "imagePullSecrets",
    "podSecurityContext",
    "containerSecurityContext",
    "securityContext",
    "podDisruptionBudget",
    "strategy",
    "service",
    "ingress",
    "deployment",
    "serviceAccount",
    "persistence",
    "extraVolumes",
    "extraContainerVolumeMounts",
    "extraInitVolumeMounts",
    "extraVolumeMounts",
    "initPreScript",
    "initContainers",
    "resources",
    "schedulerName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "dnsConfig",
    "priorityClassName",
    "signing",
    "gitea",
    "extraDeploy",
    "redis-cluster",
    "postgresql-ha",
    "postgresql",
    "test",
    "checkDeprecation",
];

const KUBE_PROMETHEUS_STACK_KEYS: &[&str] = &[
    "nameOverride",
    "namespaceOverride",
    "kubeTargetVersionOverride",
    "kubeVersionOverride",
    "fullnameOverride",
    "commonLabels",
    "crds",
    "customRules",
    "defaultRules",
    "additionalPrometheusRulesMap",
    "global",
    "windowsMonitoring",
    "prometheus-windows-exporter",
    "alertmanager",
    "grafana",
    "kubernetesServiceMonitors",
    "kubeApiServer",
    "kubelet",
    "kubeControllerManager",
    "coreDns",
    "kubeDns",
    "kubeEtcd",
    "kubeScheduler",
    "kubeProxy",
    "kubeStateMetrics",
    "kube-state-metrics",
    "nodeExporter",
    "prometheus-node-exporter",
    "prometheusOperator",
    "prometheus",
    "thanosRuler",
    "cleanPrometheusOperatorObjectNames",
    "extraManifests",
];

/// `helm show values CHART --version V`: the chart's default values, as far as the fake knows
/// them (top-level keys), or None for a chart it does not model.
pub fn show_values(chart: &str, version: Option<&str>) -> Option<String> {
    match (chart, version) {
        ("gitea", None | Some("10.6.0")) => Some(
            GITEA_10_6_0_KEYS
                .iter()
                .map(|k| match *k {
                    "service" => "service:\n  http:\n    clusterIP: None\n    port: 3000\n  ssh:\n    clusterIP: None\n    port: 22\n".to_string(),
                    "postgresql-ha" | "redis-cluster" => format!("{k}:\n  enabled: true\n"),
                    "postgresql" => "postgresql:\n  enabled: false\n".to_string(),
                    other => format!("{other}: {{}}\n"),
                })
                .collect(),
        ),
        ("kube-prometheus-stack", None | Some("66.3.1")) => {
            Some(KUBE_PROMETHEUS_STACK_KEYS.iter().map(|k| format!("{k}: {{}}\n")).collect())
        }
        _ => None,
    }
}

/// `helm upgrade --install RELEASE CHART` of a modelled chart: the Services it makes (namespaced
/// names), or the error the real install ends in.
pub fn install(
    chart: &str,
    release: &str,
    namespace: &str,
    values: &[String],
    sets: &[(String, String)],
) -> Result<Vec<(String, Service)>, String> {
    if chart != "gitea" {
        return Ok(Vec::new());
    }
    let get = |path: &str| -> Option<String> {
        let keys: Vec<&str> = path.split('.').collect();
        let mut found = sets.iter().rev().find(|(k, _)| k == path).map(|(_, v)| v.clone());
        if found.is_none() {
            found = values.iter().rev().find_map(|text| yaml_get(text, &keys));
        }
        found
    };
    let enabled = |key: &str, default: bool| get(&format!("{key}.enabled")).map_or(default, |v| v == "true");
    let has_db_subchart = enabled("postgresql-ha", true) || enabled("postgresql", false);
    if !has_db_subchart && get("gitea.config.database.DB_TYPE").is_none_or(|v| v.is_empty()) {
        return Err(format!(
            "Error: UPGRADE FAILED: resource Deployment/{namespace}/{release} not ready. status: InProgress, message: \
             Available: 0/1\ncontext deadline exceeded\n(init container configure-gitea: \"unknown database type\": \
             with postgresql and postgresql-ha disabled the chart sets no DB_TYPE)\n"
        ));
    }
    // The chart's fullname is the release name when it contains the chart name.
    let fullname = if release.contains("gitea") { release.to_string() } else { format!("{release}-gitea") };
    let port = |path: &str, default: u16| get(path).and_then(|v| v.parse().ok()).unwrap_or(default);
    let headless = |svc: &str| get(&format!("service.{svc}.clusterIP")).is_none_or(|v| v == "None");
    let ssh_listen = port("gitea.config.server.SSH_LISTEN_PORT", 2222);
    let http_port = port("gitea.config.server.HTTP_PORT", 3000);
    Ok(vec![
        (
            format!("{namespace}/{fullname}-http"),
            Service {
                headless: headless("http"),
                port: port("service.http.port", 3000),
                target_port: http_port,
                listens_on: http_port,
            },
        ),
        (
            format!("{namespace}/{fullname}-ssh"),
            Service {
                headless: headless("ssh"),
                port: port("service.ssh.port", 22),
                target_port: ssh_listen,
                listens_on: ssh_listen,
            },
        ),
    ])
}

/// The scalar at `path` in a block-style YAML document (enough for values files: nested maps,
/// `key: value`, quotes, comments).
pub fn yaml_get(text: &str, path: &[&str]) -> Option<String> {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let indent = line.len() - content.len();
        let Some((key, rest)) = content.split_once(':') else { continue };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.trim().trim_matches(['"', '\'']).to_string()));
        let at: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        if at == path {
            let value = rest.split(" #").next().unwrap_or("").trim();
            return Some(value.trim_matches(['"', '\'']).to_string());
        }
    }
    None
}
