//! The fake kubectl's object store: what an API server keeps, for the verbs the checks and the
//! fixture operator use (`apply`, `get`, `delete`, `patch --subresource=status`). On when the
//! scenario says `objects: true`; otherwise kubectl answers as before (empty, exit 0).
//!
//! Modelled after the real behaviour, with the sources it was read from:
//! - A kind is served only when it is built in or a stored CustomResourceDefinition defines it;
//!   applying another is kubectl's `resource mapping not found ... ensure CRDs are installed
//!   first` (kubectl `cmd/apply`, k8s `meta.NoKindMatchError`), and `get` of an unknown type is
//!   `the server doesn't have a resource type "x"`.
//! - A namespaced object needs its namespace (`namespaces "x" not found`); an object's own
//!   namespace must agree with `--namespace` (kubectl `resource.Builder`: "the namespace from the
//!   provided object ... does not match").
//! - A type is named by plural, singular, short name or kind, any case, optionally `.group`
//!   (kubectl's RESTMapper).
//! - Secret `stringData` is merged into `data` base64-encoded and never stored (Kubernetes API
//!   docs, Secret v1: "stringData ... is never output when reading from the API").
//! - Apply does not write `status` of a kind with a status subresource; only
//!   `patch --subresource=status` does (kubectl >= 1.24 `--subresource`), and a plain patch
//!   drops `status` there. `metadata.generation` grows when anything but metadata and status
//!   changes (apiserver `registry/rest` strategies).
//! - `get` without a name lists (`{"kind":"List","items":[...]}`, `No resources found in NS
//!   namespace.` on stderr when empty); a missing name is `Error from server (NotFound):
//!   <plural>.<group> "name" not found`, exit 1, unless `--ignore-not-found`.
//!
//! Manifests are read as JSON (YAML's JSON subset): the fake has no YAML parser, and says so
//! when given YAML.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use xtask_lint::value::{FromValue, Table, ToValue};

use super::{flag_values, Reply};

/// What the store holds: objects by `group/kind` → `namespace/name` (empty namespace for
/// cluster-scoped objects).
#[derive(Default, Clone)]
pub struct Objects {
    pub items: BTreeMap<String, BTreeMap<String, Value>>,
    pub next_uid: u64,
    pub resource_version: u64,
}

impl FromValue for Objects {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        Ok(Objects {
            items: t.or_default("items")?,
            next_uid: t.or_default("next_uid")?,
            resource_version: t.or_default("resource_version")?,
        })
    }
}

impl ToValue for Objects {
    fn to_value(&self) -> Value {
        json!({"items": self.items, "next_uid": self.next_uid, "resource_version": self.resource_version})
    }
}

/// A served type.
#[derive(Clone, Debug)]
struct Type {
    group: String,
    kind: String,
    plural: String,
    singular: String,
    short: Vec<String>,
    namespaced: bool,
    status_subresource: bool,
}

impl Type {
    fn key(&self) -> String {
        format!("{}/{}", self.group, self.kind)
    }
    /// `configmaps` or `gitproviders.fixture.example.dev`, as kubectl names the resource.
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    /// `configmap` or `gitprovider.fixture.example.dev`, as kubectl prints a kind.
    fn kind_group(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }
    /// `configmap/x` or `gitprovider.fixture.example.dev/x`, as `-o name` prints it.
    fn name_of(&self, name: &str) -> String {
        format!("{}/{name}", self.kind_group())
    }
}

/// A built-in kind: group, kind, plural, short names, namespaced, status subresource.
type Builtin = (&'static str, &'static str, &'static str, &'static [&'static str], bool, bool);

/// Built-in kinds the e2e touches.
const BUILTIN: &[Builtin] = &[
    ("", "ConfigMap", "configmaps", &["cm"], true, false),
    ("", "Secret", "secrets", &[], true, false),
    ("", "Namespace", "namespaces", &["ns"], false, true),
    ("", "Pod", "pods", &["po"], true, true),
    ("", "Service", "services", &["svc"], true, true),
    ("", "ServiceAccount", "serviceaccounts", &["sa"], true, false),
    ("", "Event", "events", &["ev"], true, false),
    ("apps", "Deployment", "deployments", &["deploy"], true, true),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", &[], false, false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", &[], false, false),
    ("rbac.authorization.k8s.io", "Role", "roles", &[], true, false),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", &[], true, false),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
        true,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        &[],
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        &[],
        false,
        false,
    ),
    ("coordination.k8s.io", "Lease", "leases", &[], true, false),
];

fn types(objects: &Objects) -> Vec<Type> {
    let mut out: Vec<Type> = BUILTIN
        .iter()
        .map(|(group, kind, plural, short, namespaced, status)| Type {
            group: group.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            short: short.iter().map(|s| s.to_string()).collect(),
            namespaced: *namespaced,
            status_subresource: *status,
        })
        .collect();
    for crd in objects
        .items
        .get("apiextensions.k8s.io/CustomResourceDefinition")
        .into_iter()
        .flat_map(|m| m.values())
    {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let (Some(group), Some(kind), Some(plural)) =
            (spec["group"].as_str(), names["kind"].as_str(), names["plural"].as_str())
        else {
            continue;
        };
        out.push(Type {
            group: group.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: names["singular"].as_str().map(String::from).unwrap_or_else(|| kind.to_lowercase()),
            short: names["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            status_subresource: spec["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["subresources"]["status"].is_object()),
        });
    }
    out
}

/// The type kubectl's RESTMapper finds for `configmaps`, `cm`, `ConfigMap`, `deployment.apps`,
/// `gitproviders.v1alpha1.fixture.example.dev`.
fn resolve(objects: &Objects, text: &str) -> Option<Type> {
    let text = text.to_lowercase();
    let (name, group) = match text.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (text.clone(), None),
    };
    types(objects).into_iter().find(|t| {
        let named = t.plural == name
            || t.singular == name
            || t.kind.to_lowercase() == name
            || t.short.contains(&name);
        let grouped = match &group {
            None => true,
            Some(g) => *g == t.group || g.split_once('.').is_some_and(|(_, rest)| rest == t.group),
        };
        named && grouped
    })
}

fn type_of_object(objects: &Objects, object: &Value) -> Result<Type, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    types(objects).into_iter().find(|t| t.kind == kind && t.group == group).ok_or_else(|| {
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        format!(
            "error: resource mapping not found for name: \"{name}\" namespace: \"\" from \"STDIN\": no matches for kind \"{kind}\" in version \"{api_version}\"\nensure CRDs are installed first\n"
        )
    })
}

/// Handles a kubectl call when the store is on; `None` leaves it to the other built-in answers.
pub fn kubectl(args: &[&str], stdin: Option<&str>, objects: &mut Objects) -> Option<Reply> {
    let namespace_flag = flag_values(args, &["--namespace", "-n"]).into_iter().next();
    let namespace = namespace_flag.clone().unwrap_or_else(|| "default".into());
    Some(match *args.first()? {
        "apply" => apply(args, stdin, objects, namespace_flag.as_deref(), Write::Apply),
        "create" if args.iter().any(|a| *a == "-f" || *a == "--filename") => {
            apply(args, stdin, objects, namespace_flag.as_deref(), Write::Create)
        }
        "replace" => apply(args, stdin, objects, namespace_flag.as_deref(), Write::Replace),
        "get" => get(args, objects, &namespace),
        "delete" => delete(args, objects, &namespace),
        "patch" => patch(args, objects, &namespace),
        "wait" if args.iter().any(|a| a.starts_with("--for=condition=")) => wait(args, objects, &namespace),
        _ => return None,
    })
}

/// The manifest `-f` names: `-` (stdin) or a file, as JSON.
fn manifest(args: &[&str], stdin: Option<&str>) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for source in flag_values(args, &["-f", "--filename"]) {
        let text = if source == "-" {
            stdin.unwrap_or_default().to_string()
        } else {
            std::fs::read_to_string(&source)
                .map_err(|e| format!("error: the path \"{source}\" cannot be read: {e}\n"))?
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            format!("fake kubectl: the object store reads JSON manifests (YAML's JSON subset) only; {source}: {e}\n")
        })?;
        match value["kind"].as_str() {
            Some("List") => docs.extend(value["items"].as_array().cloned().unwrap_or_default()),
            _ => docs.push(value),
        }
    }
    if docs.is_empty() {
        return Err("error: must specify one of -f and -k\n".into());
    }
    Ok(docs)
}

/// How a manifest is written: `apply` (create or update), `create` (refused when it exists),
/// `replace` (refused when it does not, or when the manifest's `resourceVersion` is not the
/// stored one: optimistic concurrency, as the API server's 409 Conflict).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Apply,
    Create,
    Replace,
}

fn apply(
    args: &[&str],
    stdin: Option<&str>,
    objects: &mut Objects,
    namespace_flag: Option<&str>,
    write: Write,
) -> Reply {
    if args.iter().any(|a| *a == "-k" || a.starts_with("--kustomize")) {
        // Kustomize builds are not modelled: the call is journaled and nothing is stored.
        return Reply::ok("");
    }
    let docs = match manifest(args, stdin) {
        Ok(d) => d,
        Err(e) => return Reply::fail(e),
    };
    let server_side = args.contains(&"--server-side");
    let mut out = String::new();
    for mut doc in docs {
        let t = match type_of_object(objects, &doc) {
            Ok(t) => t,
            Err(e) => return Reply { exit: 1, stdout: out, stderr: e },
        };
        let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return Reply {
                exit: 1,
                stdout: out,
                stderr: "error: error validating data: metadata.name is required\n".into(),
            };
        }
        let ns = if t.namespaced {
            let own = doc["metadata"]["namespace"].as_str().map(String::from);
            match (own, namespace_flag) {
                (Some(own), Some(flag)) if own != flag => {
                    return Reply {
                        exit: 1,
                        stdout: out,
                        stderr: format!(
                            "error: the namespace from the provided object \"{own}\" does not match the namespace \"{flag}\". You must pass '--namespace={own}' to perform this operation.\n"
                        ),
                    }
                }
                (Some(own), _) => own,
                (None, Some(flag)) => flag.to_string(),
                (None, None) => "default".into(),
            }
        } else {
            String::new()
        };
        if t.namespaced && !namespace_exists(objects, &ns) {
            return Reply {
                exit: 1,
                stdout: out,
                stderr: format!("Error from server (NotFound): error when creating \"STDIN\": namespaces \"{ns}\" not found\n"),
            };
        }
        if t.namespaced {
            doc["metadata"]["namespace"] = json!(ns);
        }
        if t.kind == "Secret" {
            merge_string_data(&mut doc);
        }
        let key = format!("{ns}/{name}");
        let existing = objects.items.get(&t.key()).and_then(|m| m.get(&key)).cloned();
        let what = format!("{} \"{name}\"", t.resource());
        match (write, &existing) {
            (Write::Create, Some(_)) => {
                return Reply {
                    exit: 1,
                    stdout: out,
                    stderr: format!("Error from server (AlreadyExists): error when creating \"STDIN\": {what} already exists\n"),
                }
            }
            (Write::Replace, None) => {
                return Reply {
                    exit: 1,
                    stdout: out,
                    stderr: format!("Error from server (NotFound): error when replacing \"STDIN\": {what} not found\n"),
                }
            }
            (Write::Replace, Some(old)) => {
                let given = doc["metadata"]["resourceVersion"].as_str();
                if given.is_some_and(|g| Some(g) != old["metadata"]["resourceVersion"].as_str()) {
                    return Reply {
                        exit: 1,
                        stdout: out,
                        stderr: format!(
                            "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on {what}: the object has been modified; please apply your changes to the latest version and try again\n"
                        ),
                    };
                }
            }
            _ => {}
        }
        objects.resource_version += 1;
        let rv = objects.resource_version;
        let verb = match existing {
            None => {
                objects.next_uid += 1;
                let meta = doc["metadata"].as_object_mut();
                if let Some(meta) = meta {
                    meta.insert("uid".into(), json!(format!("00000000-fake-{:012}", objects.next_uid)));
                    meta.insert("generation".into(), json!(1));
                    meta.insert("resourceVersion".into(), json!(rv.to_string()));
                    meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
                }
                if t.status_subresource {
                    doc.as_object_mut().map(|o| o.remove("status"));
                }
                objects.items.entry(t.key()).or_default().insert(key, doc);
                if server_side && write == Write::Apply {
                    "serverside-applied"
                } else {
                    "created"
                }
            }
            Some(old) => {
                let mut new = doc.clone();
                let changed = body(&old) != body(&new);
                let generation = old["metadata"]["generation"].as_u64().unwrap_or(1) + u64::from(changed);
                if let (Some(meta), Some(old_meta)) =
                    (new["metadata"].as_object_mut(), old["metadata"].as_object())
                {
                    for k in ["uid", "creationTimestamp"] {
                        if let Some(v) = old_meta.get(k) {
                            meta.insert(k.into(), v.clone());
                        }
                    }
                    meta.insert("generation".into(), json!(generation));
                    meta.insert("resourceVersion".into(), json!(rv.to_string()));
                }
                if t.status_subresource {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().map(|o| o.remove("status"));
                        }
                    }
                }
                let unchanged = !changed && old["metadata"]["labels"] == new["metadata"]["labels"];
                objects.items.entry(t.key()).or_default().insert(key, new);
                match (write, server_side, unchanged) {
                    (Write::Replace, _, _) => "replaced",
                    (_, true, _) => "serverside-applied",
                    (_, false, true) => "unchanged",
                    (_, false, false) => "configured",
                }
            }
        };
        out.push_str(&format!("{} {verb}\n", t.name_of(&name)));
    }
    Reply::ok(out)
}

/// What counts toward `generation`: everything but metadata and status.
fn body(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    o
}

fn namespace_exists(objects: &Objects, ns: &str) -> bool {
    matches!(ns, "default" | "kube-system" | "kube-public")
        || objects.items.get("/Namespace").is_some_and(|m| m.contains_key(&format!("/{ns}")))
}

fn merge_string_data(doc: &mut Value) {
    let Some(map) = doc.as_object_mut() else { return };
    let Some(Value::Object(string_data)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            data.insert(k, json!(super::base64::encode(v.as_str().unwrap_or_default().as_bytes())));
        }
    }
}

/// The resource types and names a call names: `TYPE NAME...`, `TYPE/NAME...`, `TYPE1,TYPE2`.
fn targets(args: &[&str]) -> Vec<(String, Option<String>)> {
    let value_flags = [
        "-n",
        "--namespace",
        "-o",
        "--output",
        "-l",
        "--selector",
        "--context",
        "-p",
        "--patch",
        "--type",
        "--timeout",
        "--field-manager",
        "--subresource",
        "-f",
        "--filename",
    ];
    let mut positional = Vec::new();
    let mut skip = false;
    for arg in &args[1..] {
        if skip {
            skip = false;
        } else if value_flags.contains(arg) {
            skip = true;
        } else if !arg.starts_with('-') {
            positional.push(arg.to_string());
        }
    }
    let Some(first) = positional.first() else { return Vec::new() };
    if first.contains('/') {
        return positional
            .iter()
            .filter_map(|p| p.split_once('/').map(|(t, n)| (t.to_string(), Some(n.to_string()))))
            .collect();
    }
    let names = &positional[1..];
    first
        .split(',')
        .flat_map(|t| {
            if names.is_empty() {
                vec![(t.to_string(), None)]
            } else {
                names.iter().map(|n| (t.to_string(), Some(n.clone()))).collect()
            }
        })
        .collect()
}

/// `-l a=b,c!=d,e` on an object's labels.
fn selected(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector else { return true };
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim().trim_end_matches('=')].as_str() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            labels.get(k.trim()).is_none()
        } else {
            labels.get(term.trim()).is_some()
        }
    })
}

fn not_found(t: &Type, name: &str) -> String {
    format!("Error from server (NotFound): {} \"{name}\" not found\n", t.resource())
}

/// `kubectl wait TYPE[/NAME] [--selector S] --for=condition=C`, one look (the fake tool repeats
/// it up to `--timeout` while the answer is "timed out"). Nothing matching is `error: no matching resources found`,
/// exit 1, without waiting (kubectl pkg/cmd/wait/wait.go: the resource finder visited nothing,
/// `errNoMatchingResources`); every match with condition C "True" is `<type>/<name> condition
/// met` per object; else, as at the end of its timeout, `timed out waiting for the condition on
/// <type>/<name>`, exit 1.
fn wait(args: &[&str], objects: &Objects, namespace: &str) -> Reply {
    let Some(condition) = args.iter().find_map(|a| a.strip_prefix("--for=condition=")) else {
        return Reply::fail("error: --for must be given\n");
    };
    let (condition, want) = condition.split_once('=').unwrap_or((condition, "True"));
    let mut listed: Vec<&str> = vec!["get"];
    listed.extend(args[1..].iter().filter(|a| !a.starts_with("--for=") && !a.starts_with("--timeout")));
    listed.extend(["--output", "json"]);
    let got = get(&listed, objects, namespace);
    if got.exit != 0 {
        return got;
    }
    let parsed: Value = serde_json::from_str(&got.stdout).unwrap_or(Value::Null);
    let items: Vec<Value> = match parsed["items"].as_array() {
        Some(items) => items.clone(),
        None if parsed.is_object() => vec![parsed],
        None => Vec::new(),
    };
    if items.is_empty() {
        return Reply::fail("error: no matching resources found\n");
    }
    let mut out = String::new();
    for item in &items {
        let kind = item["kind"].as_str().unwrap_or("").to_lowercase();
        let name = item["metadata"]["name"].as_str().unwrap_or("");
        let met = item["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(condition))
                    && c["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(want))
            })
        });
        if !met {
            return Reply {
                exit: 1,
                stdout: out,
                stderr: format!("error: timed out waiting for the condition on {kind}s/{name}\n"),
            };
        }
        out.push_str(&format!("{kind}/{name} condition met\n"));
    }
    Reply::ok(out)
}

fn get(args: &[&str], objects: &Objects, namespace: &str) -> Reply {
    let output = flag_values(args, &["-o", "--output"]).into_iter().next().unwrap_or_default();
    let ignore = args.iter().any(|a| *a == "--ignore-not-found" || *a == "--ignore-not-found=true");
    let all = args.iter().any(|a| *a == "-A" || *a == "--all-namespaces");
    let selector = flag_values(args, &["-l", "--selector"]).into_iter().next();
    let mut found: Vec<(Type, Value)> = Vec::new();
    let mut listing = false;
    for (type_text, name) in targets(args) {
        let Some(t) = resolve(objects, &type_text) else {
            return Reply::fail(format!("error: the server doesn't have a resource type \"{type_text}\"\n"));
        };
        let store = objects.items.get(&t.key());
        match name {
            Some(name) => {
                let key = if t.namespaced { format!("{namespace}/{name}") } else { format!("/{name}") };
                match store.and_then(|m| m.get(&key)) {
                    Some(o) => found.push((t.clone(), o.clone())),
                    None if ignore => {}
                    None => return Reply::fail(not_found(&t, &name)),
                }
            }
            None => {
                listing = true;
                for (key, o) in store.into_iter().flatten() {
                    let in_scope = !t.namespaced || all || key.starts_with(&format!("{namespace}/"));
                    if in_scope && selected(o, selector.as_deref()) {
                        found.push((t.clone(), o.clone()));
                    }
                }
            }
        }
    }
    match output.as_str() {
        "json" => {
            if listing || found.len() != 1 {
                let items: Vec<Value> = found.into_iter().map(|(_, o)| o).collect();
                if items.is_empty() && ignore && !listing {
                    return Reply::ok("");
                }
                Reply::ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}))
                        .unwrap_or_default()
                ))
            } else {
                Reply::ok(format!("{}\n", serde_json::to_string_pretty(&found[0].1).unwrap_or_default()))
            }
        }
        "name" => Reply::ok(
            found
                .iter()
                .map(|(t, o)| format!("{}\n", t.name_of(o["metadata"]["name"].as_str().unwrap_or(""))))
                .collect::<String>(),
        ),
        other => {
            if found.is_empty() && listing {
                let stderr = if all {
                    "No resources found\n".to_string()
                } else {
                    format!("No resources found in {namespace} namespace.\n")
                };
                return Reply { exit: 0, stdout: String::new(), stderr };
            }
            if other.is_empty() {
                let mut table = String::from("NAME\n");
                for (_, o) in &found {
                    table.push_str(&format!("{}\n", o["metadata"]["name"].as_str().unwrap_or("")));
                }
                return Reply::ok(table);
            }
            Reply::fail(format!(
                "fake kubectl: the object store prints -o json, -o name or a name table, not -o {other}\n"
            ))
        }
    }
}

fn delete(args: &[&str], objects: &mut Objects, namespace: &str) -> Reply {
    let ignore = args.iter().any(|a| *a == "--ignore-not-found" || *a == "--ignore-not-found=true");
    let selector = flag_values(args, &["-l", "--selector"]).into_iter().next();
    let all = args.iter().any(|a| *a == "-A" || *a == "--all-namespaces");
    let mut out = String::new();
    for (type_text, name) in targets(args) {
        let Some(t) = resolve(objects, &type_text) else {
            return Reply::fail(format!("error: the server doesn't have a resource type \"{type_text}\"\n"));
        };
        let store = objects.items.entry(t.key()).or_default().clone();
        let keys: Vec<String> = match &name {
            Some(name) => {
                let key = if t.namespaced { format!("{namespace}/{name}") } else { format!("/{name}") };
                if !store.contains_key(&key) {
                    if ignore {
                        continue;
                    }
                    return Reply { exit: 1, stdout: out, stderr: not_found(&t, name) };
                }
                vec![key]
            }
            None if selector.is_some() || args.contains(&"--all") => store
                .iter()
                .filter(|(k, o)| {
                    (!t.namespaced || all || k.starts_with(&format!("{namespace}/")))
                        && selected(o, selector.as_deref())
                })
                .map(|(k, _)| k.clone())
                .collect(),
            None => return Reply::fail("error: resource(s) were provided, but no name was specified\n"),
        };
        for key in keys {
            if let Some(store) = objects.items.get_mut(&t.key()) {
                store.remove(&key);
            }
            let name = key.rsplit('/').next().unwrap_or("").to_string();
            out.push_str(&format!("{} \"{name}\" deleted\n", t.kind_group()));
            if t.kind == "Namespace" {
                // The namespace controller deletes what the namespace held.
                for store in objects.items.values_mut() {
                    store.retain(|k, _| !k.starts_with(&format!("{name}/")));
                }
            }
        }
    }
    Reply::ok(out)
}

/// `kubectl patch TYPE NAME --type=merge -p JSON [--subresource=status]` (RFC 7386 merge patch).
fn patch(args: &[&str], objects: &mut Objects, namespace: &str) -> Reply {
    let kind = flag_values(args, &["--type"]).into_iter().next().unwrap_or_else(|| "strategic".into());
    if kind != "merge" {
        return Reply::fail(format!("fake kubectl: patch models --type=merge only, not {kind}\n"));
    }
    let Some(text) = flag_values(args, &["-p", "--patch"]).into_iter().next() else {
        return Reply::fail(
            "error: must specify --patch or --patch-file containing the contents of the patch\n",
        );
    };
    let Ok(patch_value) = serde_json::from_str::<Value>(&text) else {
        return Reply::fail(format!("error: unable to parse \"{text}\": not JSON\n"));
    };
    let status_only = flag_values(args, &["--subresource"]).first().map(String::as_str) == Some("status");
    let Some((type_text, Some(name))) = targets(args).into_iter().next() else {
        return Reply::fail("error: resource(s) were provided, but no name was specified\n");
    };
    let Some(t) = resolve(objects, &type_text) else {
        return Reply::fail(format!("error: the server doesn't have a resource type \"{type_text}\"\n"));
    };
    let key = if t.namespaced { format!("{namespace}/{name}") } else { format!("/{name}") };
    objects.resource_version += 1;
    let rv = objects.resource_version;
    let Some(object) = objects.items.get_mut(&t.key()).and_then(|m| m.get_mut(&key)) else {
        return Reply::fail(not_found(&t, &name));
    };
    let mut patch_value = patch_value;
    if status_only {
        patch_value = json!({ "status": patch_value["status"].clone() });
    } else if t.status_subresource {
        patch_value.as_object_mut().map(|o| o.remove("status"));
    }
    let before = object.clone();
    merge(object, &patch_value);
    let changed = body(&before) != body(object);
    if changed {
        let generation = object["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
    }
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    let suffix = if status_only { " (status)" } else { "" };
    Reply::ok(format!("{} patched{suffix}\n", t.name_of(&name)))
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge(target.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Some(patch)) => {
            *target = Value::Object(Map::new());
            merge(target, &Value::Object(patch.clone()));
        }
        _ => *target = patch.clone(),
    }
}
