//! What the server says it serves: the kinds (built in, and those CRDs add), legacy discovery,
//! and the OpenAPI v3 documents kubectl and helm read before they write.

use serde_json::{json, Value};

/// One kind this server serves.
#[derive(Clone, Debug)]
pub struct Resource {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// The plural, as in the URL.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Has a `status` subresource: writes to the object keep its status, writes to `/status`
    /// change only the status (https://kubernetes.io/docs/reference/using-api/api-concepts/#subresources).
    pub status: bool,
    /// Added by this CRD (`customresourcedefinitions/<name>`), removed with it.
    pub crd: Option<String>,
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The built-in kinds (API reference https://kubernetes.io/docs/reference/kubernetes-api/).
pub fn builtin() -> Vec<Resource> {
    let r = |group: &str, plural: &str, kind: &str, namespaced, short: &[&str], status| Resource {
        group: group.into(),
        version: "v1".into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        status,
        crd: None,
    };
    vec![
        r("", "namespaces", "Namespace", false, &["ns"], true),
        r("", "configmaps", "ConfigMap", true, &["cm"], false),
        r("", "secrets", "Secret", true, &[], false),
        r("", "services", "Service", true, &["svc"], true),
        r("", "endpoints", "Endpoints", true, &["ep"], false),
        r("", "pods", "Pod", true, &["po"], true),
        r("", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
        r("", "events", "Event", true, &["ev"], false),
        r("apps", "deployments", "Deployment", true, &["deploy"], true),
        r("apps", "replicasets", "ReplicaSet", true, &["rs"], true),
        r("batch", "jobs", "Job", true, &[], true),
        r("coordination.k8s.io", "leases", "Lease", true, &[], false),
        r("rbac.authorization.k8s.io", "roles", "Role", true, &[], false),
        r("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", true, &[], false),
        r("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false, &[], false),
        r("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", false, &[], false),
        r(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        r(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        r(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

/// The kinds a CRD defines: one per served version, under `spec.names`
/// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).
pub fn from_crd(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (group, plural, kind) = (text(&spec["group"]), text(&names["plural"]), text(&names["kind"]));
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"].as_str().map(str::to_string).unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            Some(Resource {
                group: group.clone(),
                version: v["name"].as_str()?.to_string(),
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: short_names.clone(),
                status: v["subresources"]["status"].is_object(),
                crd: crd["metadata"]["name"].as_str().map(str::to_string),
            })
        })
        .collect()
}

pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn group_versions(resources: &[Resource]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in resources {
        let gv = (r.group.clone(), r.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// `/apis` (APIGroupList).
pub fn group_list(resources: &[Resource]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (g, v) in group_versions(resources).into_iter().filter(|(g, _)| !g.is_empty()) {
        match groups.iter_mut().find(|(n, _)| *n == g) {
            Some((_, vs)) => vs.push(v),
            None => groups.push((g, vec![v])),
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> =
                vs.iter().map(|v| json!({"groupVersion": group_version(g, v), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1`, `/apis/<g>/<v>` (APIResourceList), with the `status` subresources.
pub fn resource_list(resources: &[Resource], group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for r in resources.iter().filter(|r| r.group == group && r.version == version) {
        list.push(
            json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
               "verbs": VERBS, "shortNames": r.short_names}),
        );
        if r.status {
            list.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                   "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": list})
}

/// `/openapi/v3`: one path per group-version, as client-go `openapi/client.go` `Paths()` reads
/// it (`{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}`, keys as `openapi3/root.go`
/// `gvToAPIPath` builds them). The hash changes when the kinds do, so a client's cache of a
/// group-version never hides a CRD's kind.
pub fn openapi_root(resources: &[Resource], generation: u64) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions(resources) {
        let path = api_path(&g, &v);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={generation:016X}")}),
        );
    }
    json!({"paths": paths})
}

fn api_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3/<api path>`: a document with, per kind, the PATCH operation of its object path,
/// tagged with `x-kubernetes-group-version-kind` and taking the `fieldValidation` query
/// parameter. That is all kubectl's validator asks of it (kubectl `pkg/cmd/util/factory_client_access.go`
/// `Validator` → cli-runtime `pkg/resource/query_param_verifier_v3.go` `supportsQueryParamV3`):
/// the server validates fields, so the client does not (kubectl `pkg/validation/schema.go`
/// `paramVerifyingSchema`), and a manifest is sent with `?fieldValidation=Strict`, which this
/// server accepts without checking. helm's `Build` uses the same validator
/// (helm `pkg/kube/client.go`, v3.17.2). No schemas: a typo in a field is not refused here.
pub fn openapi_doc(resources: &[Resource], api: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in resources.iter().filter(|r| api_path(&r.group, &r.version) == api) {
        let ns = if r.namespaced { "/namespaces/{namespace}" } else { "" };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        paths.insert(
            format!("/{api}{ns}/{}/{{name}}", r.plural),
            json!({"patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                               {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                               {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {}}}),
        );
    }
    (!paths.is_empty()).then(|| {
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": paths,
               "components": {"schemas": {}}})
    })
}
