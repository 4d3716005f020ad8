//! The API's verbs over the objects: discovery and OpenAPI documents, CRUD, patches (merge,
//! strategic, JSON, server-side apply), the status subresource, deletion with finalizers, and the
//! `Status` errors in the apiserver's shape and words.

use serde_json::{json, Value};

use super::discovery::{self, group_version, Resource};
use super::patch::{self, Conflict};
use super::select::{fields_match, labels_match};
use super::{controllers, proto, Key, Request, Response, State};

/// A `Status` failure (apimachinery `pkg/api/errors/errors.go`).
pub fn status(code: u16, reason: &str, message: String, details: Value) -> Response {
    Response::Json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "details": details, "code": code}),
    )
}

fn no_resource() -> Response {
    status(404, "NotFound", "the server could not find the requested resource".into(), json!({}))
}

fn not_found(res: &Resource, name: &str) -> Response {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", group_resource(res)),
        json!({"name": name, "group": res.group, "kind": res.plural}),
    )
}

/// `configmaps` for core, `deployments.apps` otherwise (schema.GroupResource.String()).
fn group_resource(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.clone()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

fn conflict(res: &Resource, name: &str) -> Response {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            group_resource(res)
        ),
        json!({"name": name, "group": res.group, "kind": res.plural}),
    )
}

/// Server-side apply's conflicts (apimachinery `pkg/util/managedfields/internal/conflict.go`
/// `NewConflictError`, `getConflictMessage`, `printManager`: an Update manager is named with
/// `using <apiVersion>`; errors.go `NewApplyConflict`: 409, reason Conflict, a cause per field).
fn apply_conflict(conflicts: &[Conflict], api_version: &str) -> Response {
    let manager = |c: &Conflict| {
        if c.by_apply {
            format!("{:?}", c.manager)
        } else {
            format!("{:?} using {api_version}", c.manager)
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", manager(c)), "field": c.path}))
        .collect();
    let message = if let [c] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {}: {}", manager(c), c.path)
    } else {
        let mut by: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for c in conflicts {
            by.entry(manager(c)).or_default().push(&c.path);
        }
        let lines: Vec<String> = by
            .iter()
            .flat_map(|(m, ps)| {
                std::iter::once(format!("conflicts with {m}:")).chain(ps.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    Response::Json(
        409,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
               "reason": "Conflict", "details": {"causes": causes}, "code": 409}),
    )
}

pub fn handle(req: &Request, st: &mut State) -> Response {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Response::Json(
            200,
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "", "gitTreeState": "clean",
                   "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => Response::Json(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => Response::Json(200, discovery::group_list(&st.resources)),
        ["api", "v1"] => Response::Json(200, discovery::resource_list(&st.resources, "", "v1")),
        ["apis", g, v] => {
            if st.resources.iter().any(|r| r.group == *g && r.version == *v) {
                Response::Json(200, discovery::resource_list(&st.resources, g, v))
            } else {
                no_resource()
            }
        }
        // An empty OpenAPI v2 Document (protobuf, as client-go `discovery_client.go`
        // `OpenAPISchema` asks and unmarshals it): kubectl validates a `v1 List` client-side
        // (the v3 verifier never supports that kind: cli-runtime `query_param_verifier_v3.go`),
        // finds no schema for its items' kinds and skips them (kubectl `pkg/validation/validation.go`
        // `validateResource`).
        ["openapi", "v2"] => Response::Bytes(200, "application/octet-stream", Vec::new()),
        ["openapi", "v3"] => {
            Response::Json(200, discovery::openapi_root(&st.resources, st.schema_generation))
        }
        ["openapi", "v3", rest @ ..] => match discovery::openapi_doc(&st.resources, &rest.join("/")) {
            Some(doc) => Response::Json(200, doc),
            None => no_resource(),
        },
        ["api", "v1", rest @ ..] => crud(st, req, "", "v1", rest),
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            crud(st, req, &g, &v, rest)
        }
        _ => no_resource(),
    }
}

/// The request body as JSON: JSON itself, or the protobuf that typed clients send (kubectl's
/// `create namespace`, helm's release Secrets: client-go typed clients with kubectl's factory
/// send `application/vnd.kubernetes.protobuf`), decoded for the kinds in [`proto`].
fn body(req: &Request) -> Result<Value, Response> {
    if req.content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return proto::decode(&req.body).ok_or_else(|| {
            // apiserver `pkg/endpoints/handlers` NewUnsupportedMediaTypeError words
            status(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".into(),
                json!({}),
            )
        });
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        status(400, "BadRequest", format!("the body of the request could not be decoded: {e}"), json!({}))
    })
}

/// Who writes: `?fieldManager=`, else the User-Agent up to its first `/` (apiserver
/// `pkg/endpoints/handlers/create.go` `managerOrUserAgent`, `prefixFromUserAgent`).
fn manager(req: &Request) -> String {
    match req.query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ => req
            .user_agent
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect(),
    }
}

fn crud(st: &mut State, req: &Request, group: &str, version: &str, rest: &[&str]) -> Response {
    // [namespaces, ns, plural, name?, sub?] or [plural, name?, sub?]
    let (ns, plural, name, sub) = match rest {
        // `namespaces/<name>/status` is the Namespace's own status, read by the next arm
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && tail.is_empty() && *plural == "status") =>
        {
            let (ns, plural) = (ns.to_string(), plural.to_string());
            if !st.resources.iter().any(|r| r.plural == plural && r.namespaced && r.group == group) {
                return no_resource();
            }
            (ns, plural, tail.first().map(|s| s.to_string()), tail.get(1).map(|s| s.to_string()))
        }
        [plural, tail @ ..] => (
            String::new(),
            plural.to_string(),
            tail.first().map(|s| s.to_string()),
            tail.get(1).map(|s| s.to_string()),
        ),
        [] => return no_resource(),
    };
    let Some(res) =
        st.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    else {
        return no_resource();
    };
    if !res.namespaced && !ns.is_empty() {
        return no_resource();
    }
    let key = |name: &str| -> Key { (group.to_string(), plural.clone(), ns.clone(), name.to_string()) };
    let api_version = group_version(group, version);
    match sub.as_deref() {
        None => {}
        Some("status") if res.status => {}
        Some("log") if res.kind == "Pod" => {
            let name = name.unwrap_or_default();
            return match st.objects.get(&key(&name)) {
                Some(pod) => controllers::logs(pod, req.query.get("container").map(String::as_str)),
                None => not_found(&res, &name),
            };
        }
        Some(_) => return no_resource(),
    }
    let to_status = sub.is_some();
    match (req.method.as_str(), name) {
        ("GET", None) if matches!(req.query.get("watch").map(String::as_str), Some("true" | "1")) => {
            Response::Watch(Box::new(super::WatchSpec {
                group: group.into(),
                plural: plural.clone(),
                ns: ns.clone(),
                since: req.query.get("resourceVersion").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                labels: req.query.get("labelSelector").cloned().unwrap_or_default(),
                fields: req.query.get("fieldSelector").cloned().unwrap_or_default(),
                timeout: req.query.get("timeoutSeconds").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1800),
            }))
        }
        ("GET", None) => {
            let sel = req.query.get("labelSelector").map(String::as_str).unwrap_or("");
            let fsel = req.query.get("fieldSelector").map(String::as_str).unwrap_or("");
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((g, p, n, _), _)| g == group && *p == plural && (ns.is_empty() || *n == ns))
                .map(|(_, o)| o)
                .filter(|o| labels_match(sel, o) && fields_match(fsel, o))
                .map(|o| with_version(o, &api_version))
                .collect();
            if let Some(t) = super::table::table(&req.accept, &res, &items, st.rv) {
                return Response::Json(200, t);
            }
            Response::Json(
                200,
                json!({"kind": format!("{}List", res.kind), "apiVersion": api_version,
                       "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            )
        }
        ("GET", Some(name)) => match st.objects.get(&key(&name)) {
            Some(o) => {
                let o = with_version(o, &api_version);
                match super::table::table(&req.accept, &res, std::slice::from_ref(&o), st.rv) {
                    Some(t) => Response::Json(200, t),
                    None => Response::Json(200, o),
                }
            }
            None => not_found(&res, &name),
        },
        ("POST", None) => {
            let obj = match body(req) {
                Ok(v) => v,
                Err(e) => return e,
            };
            create(st, &res, &ns, obj, &manager(req), None)
        }
        ("PUT", Some(name)) => {
            let obj = match body(req) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let Some(old) = st.objects.get(&key(&name)).cloned() else { return not_found(&res, &name) };
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
                if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                    return conflict(&res, &name);
                }
            }
            write(st, &res, key(&name), &old, obj, to_status, &manager(req))
        }
        ("PATCH", Some(name)) => {
            let patch: Value = match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => {
                    return status(
                        400,
                        "BadRequest",
                        format!("the body of the request could not be decoded: {e}"),
                        json!({}),
                    )
                }
            };
            let ct = req.content_type.as_str();
            if ct.starts_with("application/apply-patch") {
                return apply(st, req, &res, &ns, &name, &patch, to_status, &api_version);
            }
            let Some(old) = st.objects.get(&key(&name)).cloned() else { return not_found(&res, &name) };
            let obj = if ct.starts_with("application/strategic-merge-patch+json") {
                patch::merge(old.clone(), &patch, true)
            } else if ct.starts_with("application/merge-patch+json") {
                patch::merge(old.clone(), &patch, false)
            } else if ct.starts_with("application/json-patch+json") {
                match patch::json_patch(old.clone(), &patch) {
                    Ok(o) => o,
                    Err(e) => return status(422, "Invalid", e, json!({})),
                }
            } else {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct})"),
                    json!({}),
                );
            };
            write(st, &res, key(&name), &old, obj, to_status, &manager(req))
        }
        ("DELETE", Some(name)) => delete(st, &res, key(&name), &name),
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            json!({}),
        ),
    }
}

/// An object as read back: under the apiVersion the client asked by.
fn with_version(obj: &Value, api_version: &str) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(api_version);
    o
}

/// POST (and an apply that creates, with its field owners).
fn create(
    st: &mut State,
    res: &Resource,
    ns: &str,
    mut obj: Value,
    manager: &str,
    owners: Option<patch::Owners>,
) -> Response {
    let name = match obj["metadata"]["name"].as_str() {
        Some(n) => n.to_string(),
        None => match obj["metadata"]["generateName"].as_str() {
            Some(prefix) => {
                let name = format!("{prefix}{}", controllers::suffix(st));
                obj["metadata"]["name"] = json!(name);
                name
            }
            None => {
                return status(
                    422,
                    "Invalid",
                    format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        res.kind
                    ),
                    json!({"kind": res.kind}),
                )
            }
        },
    };
    let key: Key = (res.group.clone(), res.plural.clone(), ns.to_string(), name.clone());
    if st.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", group_resource(res)),
            json!({"name": name, "group": res.group, "kind": res.plural}),
        );
    }
    if res.namespaced {
        obj["metadata"]["namespace"] = json!(ns);
        match st.objects.get(&(String::new(), "namespaces".into(), String::new(), ns.to_string())) {
            None => {
                return status(
                    404,
                    "NotFound",
                    format!("namespaces \"{ns}\" not found"),
                    json!({"name": ns, "kind": "namespaces"}),
                )
            }
            // apiserver admission `NamespaceLifecycle`: nothing new in a namespace being deleted
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                return status(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        group_resource(res)
                    ),
                    json!({"name": name, "group": res.group, "kind": res.plural}),
                )
            }
            Some(_) => {}
        }
    }
    obj["apiVersion"] = json!(group_version(&res.group, &res.version));
    obj["kind"] = json!(res.kind);
    let meta = &mut obj["metadata"];
    if let Some(m) = meta.as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    meta["uid"] = json!(controllers::uid(st));
    meta["creationTimestamp"] = json!(super::now());
    if res.status {
        // a create sets no status (the controllers do), and starts the generation at 1
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        obj["metadata"]["generation"] = json!(1);
    }
    controllers::defaults(st, res, &mut obj);
    if let Err(e) = controllers::validate(st, res, &obj) {
        return e;
    }
    match owners {
        Some(o) => _ = st.owners.insert(key.clone(), o),
        None => st.owners.entry(key.clone()).or_default().update(None, &obj, manager, res.status),
    }
    let obj = st.put(key, obj);
    Response::Json(201, obj)
}

/// PUT or a non-apply PATCH: onto the object (its status kept), or onto `/status` (only its
/// status taken). The generation moves when anything but metadata and status changes.
fn write(
    st: &mut State,
    res: &Resource,
    key: Key,
    old: &Value,
    new: Value,
    to_status: bool,
    manager: &str,
) -> Response {
    let mut obj = if to_status {
        let mut o = old.clone();
        o["status"] = new["status"].clone();
        o
    } else {
        let mut o = new;
        if res.status {
            o["status"] = old["status"].clone();
        }
        // what the client may not change
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "generation"] {
            o["metadata"][k] = old["metadata"][k].clone();
        }
        o
    };
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    if let Some(m) = obj.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    obj["metadata"]["name"] = json!(key.3);
    if res.namespaced {
        obj["metadata"]["namespace"] = json!(key.2);
    }
    obj["apiVersion"] = json!(group_version(&res.group, &res.version));
    obj["kind"] = json!(res.kind);
    if !to_status {
        controllers::defaults(st, res, &mut obj);
        if let Err(e) = controllers::validate(st, res, &obj) {
            return e;
        }
        bump_generation(res, old, &mut obj);
        st.owners.entry(key.clone()).or_default().update(Some(old), &obj, manager, res.status);
    }
    let obj = st.put(key.clone(), obj);
    // removing the last finalizer of an object being deleted lets it go
    if obj["metadata"]["deletionTimestamp"].is_string()
        && finalizers(&obj).is_empty()
        && res.kind != "Namespace"
    {
        st.remove(&key);
    }
    Response::Json(200, obj)
}

fn bump_generation(res: &Resource, old: &Value, obj: &mut Value) {
    if !res.status {
        return;
    }
    let spec = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        o
    };
    let gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
    obj["metadata"]["generation"] = json!(if spec(old) != spec(obj) { gen + 1 } else { gen });
}

#[allow(clippy::too_many_arguments)]
fn apply(
    st: &mut State,
    req: &Request,
    res: &Resource,
    ns: &str,
    name: &str,
    config: &Value,
    to_status: bool,
    api_version: &str,
) -> Response {
    let Some(manager) = req.query.get("fieldManager").filter(|m| !m.is_empty()).cloned() else {
        return status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                .into(),
            json!({"group": "meta.k8s.io", "kind": "PatchOptions"}),
        );
    };
    let force = req.query.get("force").is_some_and(|f| f == "true");
    let key: Key = (res.group.clone(), res.plural.clone(), ns.to_string(), name.to_string());
    let old = st.objects.get(&key).cloned();
    let mut owners = st.owners.get(&key).cloned().unwrap_or_default();
    let skip_status = res.status && !to_status;
    let merged = match owners.apply(old.as_ref(), config, &manager, force, skip_status) {
        Ok(m) => m,
        Err(conflicts) => return apply_conflict(&conflicts, api_version),
    };
    match old {
        None => {
            let mut obj = merged;
            obj["metadata"]["name"] = json!(name);
            create(st, res, ns, obj, &manager, Some(owners))
        }
        Some(old) => {
            let mut obj = merged;
            if to_status {
                obj = {
                    let mut o = old.clone();
                    o["status"] = obj["status"].clone();
                    o
                };
            } else {
                controllers::defaults(st, res, &mut obj);
                if let Err(e) = controllers::validate(st, res, &obj) {
                    return e;
                }
                bump_generation(res, &old, &mut obj);
            }
            st.owners.insert(key.clone(), owners);
            Response::Json(200, st.put(key, obj))
        }
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// DELETE: an object with finalizers gets a `deletionTimestamp` and stays until they are gone; a
/// Namespace goes `Terminating` and its contents are deleted first (the namespace controller,
/// https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/ and
/// https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/); dependents
/// go by their ownerReferences (garbage collection, background propagation).
fn delete(st: &mut State, res: &Resource, key: Key, name: &str) -> Response {
    let Some(mut obj) = st.objects.get(&key).cloned() else { return not_found(res, name) };
    if res.kind == "Namespace" || !finalizers(&obj).is_empty() {
        if !obj["metadata"]["deletionTimestamp"].is_string() {
            obj["metadata"]["deletionTimestamp"] = json!(super::now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if res.kind == "Namespace" {
                obj["status"]["phase"] = json!("Terminating");
            }
            obj = st.put(key, obj);
        }
        return Response::Json(200, obj);
    }
    // the generic registry answers with the object as it was (apiserver `pkg/registry/generic/registry/store.go`)
    st.remove(&key);
    Response::Json(200, obj)
}
