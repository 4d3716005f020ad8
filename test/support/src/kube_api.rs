//! A Kubernetes API server for tests, served over plain HTTP on a free loopback port, that the
//! real kubectl (v1.32) accepts. Behaviours, each with its source (also listed in
//! `test/support/KUBE_API.md`):
//!
//! - Discovery: `/version` (version.Info), `/api` (APIVersions), `/api/v1` and
//!   `/apis/<group>/<version>` (APIResourceList), `/apis` (APIGroupList). kubectl 1.32 asks for
//!   aggregated discovery first (Accept `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
//!   followed by `application/json`); a server that answers with plain `application/json` gets the
//!   legacy documents parsed (client-go `discovery/discovery_client.go`, `fetchGroupsAndResources` /
//!   `isV2Beta1ContentType`/`isV2ContentType` on the response's Content-Type), so this server
//!   serves only the legacy form. Reference: https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-api
//! - CRUD on `/api/v1[/namespaces/<ns>]/<resource>[/<name>]` and the group equivalents under
//!   `/apis/<group>/<version>`: POST creates (201, with `metadata.uid`, `resourceVersion`,
//!   `creationTimestamp`), GET reads one or lists (`<Kind>List`), PUT replaces, DELETE removes
//!   and returns the object (https://kubernetes.io/docs/reference/using-api/api-concepts/#api-verbs).
//! - Errors are `Status` objects (`kind: Status`, `status: Failure`, `reason`, `details`, `code`)
//!   with the apiserver's words: `<resource> "<name>" not found` (404 NotFound),
//!   `<resource> "<name>" already exists` (409 AlreadyExists) — apimachinery
//!   `pkg/api/errors/errors.go` `NewNotFound`, `NewAlreadyExists`.
//! - Bodies in JSON, or protobuf for Secret, ConfigMap and Namespace (typed clients: kubectl's
//!   `create namespace`, helm's release Secrets; see [`proto`]); answers are always JSON.
//! - No OpenAPI (`/openapi/v2`, `/openapi/v3` are 404): kubectl's default `--validate=strict`
//!   needs them ("failed to download openapi"), so clients pass `--validate=false`.
//! - Label selectors `?labelSelector=` with `k=v`, `k!=v`, `k`, `!k` terms joined by commas
//!   (apimachinery `pkg/labels/selector.go`), field selectors `metadata.name` / `metadata.namespace`.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// One kind this server serves.
#[derive(Clone, Debug)]
pub struct Resource {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// The plural, as in the URL.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The built-in kinds (API reference https://kubernetes.io/docs/reference/kubernetes-api/).
pub fn builtin() -> Vec<Resource> {
    let r = |group, version, plural, singular, kind, namespaced, short_names| Resource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
    };
    vec![
        r("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"]),
        r("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"]),
        r("", "v1", "secrets", "secret", "Secret", true, &[]),
        r("", "v1", "services", "service", "Service", true, &["svc"]),
        r("", "v1", "pods", "pod", "Pod", true, &["po"]),
        r("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"]),
        r("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"]),
        r("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"]),
        r("batch", "v1", "jobs", "job", "Job", true, &[]),
        r("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[]),
        r("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[]),
        r("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[]),
        r("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[]),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        ),
    ]
}

/// (group, plural, namespace or "", name).
type Key = (String, String, String, String);

struct State {
    resources: Vec<Resource>,
    /// Key: (group, plural, namespace or "", name).
    objects: BTreeMap<Key, Value>,
    /// Every change, for watches: (resourceVersion, type, key, object).
    events: Vec<(u64, &'static str, Key, Value)>,
    /// Set on drop: open watches end.
    stopped: bool,
}

impl State {
    fn record(&mut self, kind: &'static str, key: Key, obj: &Value) {
        let rv = obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        self.events.push((rv, kind, key, obj.clone()));
    }
}

type Shared = (Mutex<State>, std::sync::Condvar);

/// The server; stopped (its thread joined) on drop.
pub struct KubeApi {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    state: Arc<Shared>,
}

static RV: AtomicU64 = AtomicU64::new(1);

fn next_rv() -> String {
    RV.fetch_add(1, Ordering::SeqCst).to_string()
}

impl KubeApi {
    /// Serve on 127.0.0.1 at a free port, with the namespaces `default` and `kube-system`.
    pub fn start() -> Result<KubeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the fake API server")?;
        let addr = listener.local_addr()?;
        let mut state =
            State { resources: builtin(), objects: BTreeMap::new(), events: Vec::new(), stopped: false };
        for ns in ["default", "kube-system", "kube-public"] {
            let obj = stamp(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
            state.objects.insert((String::new(), "namespaces".into(), String::new(), ns.into()), obj);
        }
        let state = Arc::new((Mutex::new(state), std::sync::Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        Ok(KubeApi { addr, stop, accept: Some(accept), state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig with one context, `context`, pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) -> Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {url}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\n\
             current-context: {context}\nusers:\n- name: {context}\n  user:\n    token: test\n",
            url = self.url()
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The stored object, if any (`group` "" for core).
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.state.0.lock().ok()?;
        st.objects.get(&(group.into(), plural.into(), namespace.into(), name.into())).cloned()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut st) = self.state.0.lock() {
            st.stopped = true;
        }
        self.state.1.notify_all();
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// The controller's part, for now: a Deployment is rolled out at once. Its status is what
/// `kubectl rollout status` reads as done (kubectl `pkg/polymorphichelpers/rollout_status.go`
/// DeploymentStatusViewer: generation <= observedGeneration, updatedReplicas, replicas and
/// availableReplicas equal to spec.replicas) and `kubectl wait --for=condition=Available`
/// matches. No ReplicaSets or Pods yet.
fn reconcile(mut obj: Value, old: Option<&Value>) -> Value {
    if obj["kind"] != "Deployment" {
        return obj;
    }
    let old_gen = old.and_then(|o| o["metadata"]["generation"].as_i64()).unwrap_or(0);
    let changed = old.is_none_or(|o| o["spec"] != obj["spec"]);
    let generation = if changed { old_gen + 1 } else { old_gen.max(1) };
    obj["metadata"]["generation"] = json!(generation);
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    obj["status"] = json!({
        "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]});
    obj
}

fn stamp(mut obj: Value) -> Value {
    let meta = &mut obj["metadata"];
    if meta.get("uid").is_none() {
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", RV.load(Ordering::SeqCst)));
        meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    meta["resourceVersion"] = json!(next_rv());
    obj
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
    content_type: String,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut len = 0usize;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_string();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    Ok(Some(Request { method, path: path.to_string(), query, body, content_type }))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(conn: TcpStream, state: &Shared) -> Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r)? {
        let (code, body) = handle(&req, &state.0);
        if code == 0 {
            state.1.notify_all();
            return watch(&mut w, state, &body);
        }
        if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            state.1.notify_all();
        }
        let body = serde_json::to_vec(&body)?;
        write!(
            w,
            "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            reason_phrase(code),
            body.len()
        )?;
        w.write_all(&body)?;
        w.flush()?;
    }
    Ok(())
}

/// `?watch=true`: a chunked stream of `{"type": ADDED|MODIFIED|DELETED, "object": ...}` lines,
/// each change after `resourceVersion` that matches the selectors, until `timeoutSeconds` or the
/// client leaves (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
fn watch(w: &mut TcpStream, state: &Shared, spec: &Value) -> Result<()> {
    write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
    w.flush()?;
    let text = |k: &str| spec[k].as_str().unwrap_or_default().to_string();
    let (group, plural, ns, labels, fields) =
        (text("group"), text("plural"), text("ns"), text("labels"), text("fields"));
    let mut since = spec["since"].as_u64().unwrap_or(0);
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(spec["timeout"].as_u64().unwrap_or(1800));
    let mut st = state.0.lock().map_err(|_| anyhow::anyhow!("state poisoned"))?;
    if since == 0 {
        // no resourceVersion: the current objects as ADDED first (api-concepts, "watch" semantics)
        let now: Vec<Value> = st
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| *g == group && *p == plural && (ns.is_empty() || *n == ns))
            .map(|(_, o)| o.clone())
            .filter(|o| labels_match(&labels, o) && fields_match(&fields, o))
            .collect();
        since = RV.load(Ordering::SeqCst) - 1;
        drop(st);
        for o in now {
            chunk(w, &json!({"type": "ADDED", "object": o}))?;
        }
        st = state.0.lock().map_err(|_| anyhow::anyhow!("state poisoned"))?;
    }
    loop {
        let due: Vec<Value> = st
            .events
            .iter()
            .filter(|(rv, _, (g, p, n, _), o)| {
                *rv > since
                    && *g == group
                    && *p == plural
                    && (ns.is_empty() || *n == ns)
                    && labels_match(&labels, o)
                    && fields_match(&fields, o)
            })
            .map(|(_, t, _, o)| json!({"type": t, "object": o}))
            .collect();
        since = st.events.last().map(|e| e.0).unwrap_or(since).max(since);
        drop(st);
        for e in &due {
            chunk(w, e)?;
        }
        let now = std::time::Instant::now();
        if now >= deadline || st_stopped(state) {
            write!(w, "0\r\n\r\n")?;
            return Ok(());
        }
        st = state.0.lock().map_err(|_| anyhow::anyhow!("state poisoned"))?;
        let wait = (deadline - now).min(std::time::Duration::from_millis(500));
        st = state.1.wait_timeout(st, wait).map_err(|_| anyhow::anyhow!("state poisoned"))?.0;
        // a client that left is noticed when the next write fails; an idle stream writes nothing
    }
}

fn st_stopped(state: &Shared) -> bool {
    state.0.lock().map(|s| s.stopped).unwrap_or(true)
}

fn chunk(w: &mut TcpStream, event: &Value) -> Result<()> {
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    write!(w, "{:x}\r\n", line.len())?;
    w.write_all(&line)?;
    write!(w, "\r\n")?;
    w.flush()?;
    Ok(())
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}

/// A `Status` failure (apimachinery `pkg/api/errors/errors.go`).
fn status(code: u16, reason: &str, message: String, details: Value) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "details": details, "code": code}),
    )
}

fn not_found(res: &Resource, name: &str) -> (u16, Value) {
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
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

fn handle(req: &Request, state: &Mutex<State>) -> (u16, Value) {
    let Ok(mut st) = state.lock() else {
        return status(500, "InternalError", "state poisoned".into(), json!({}));
    };
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => (
            200,
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "", "gitTreeState": "clean",
                   "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => (200, group_list(&st.resources)),
        ["api", "v1"] => (200, resource_list(&st.resources, "", "v1")),
        ["apis", g, v] => {
            if st.resources.iter().any(|r| r.group == *g && r.version == *v) {
                (200, resource_list(&st.resources, g, v))
            } else {
                status(404, "NotFound", "the server could not find the requested resource".into(), json!({}))
            }
        }
        ["api", "v1", rest @ ..] => crud(&mut st, req, "", "v1", rest),
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            crud(&mut st, req, &g, &v, rest)
        }
        _ => status(404, "NotFound", "the server could not find the requested resource".into(), json!({})),
    }
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn group_list(resources: &[Resource]) -> Value {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": group_version(g, v), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(resources: &[Resource], group: &str, version: &str) -> Value {
    let list: Vec<Value> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                   "verbs": VERBS, "shortNames": r.short_names})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": list})
}

/// A protobuf body as this server reads it (for tests of the decoder).
pub fn decode_protobuf(body: &[u8]) -> Option<Value> {
    proto::decode(body)
}

/// The request body as JSON: JSON itself, or the protobuf that typed clients send (kubectl's
/// `create namespace`, helm's release Secrets: client-go typed clients with kubectl's factory
/// send `application/vnd.kubernetes.protobuf`), decoded for the kinds in [`proto`].
fn body(req: &Request) -> std::result::Result<Value, (u16, Value)> {
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

fn crud(st: &mut State, req: &Request, group: &str, version: &str, rest: &[&str]) -> (u16, Value) {
    // [namespaces, ns, plural, name?] or [plural, name?]
    let (ns, plural, name) = match rest {
        ["namespaces", ns, plural, tail @ ..] => {
            if !st.resources.iter().any(|r| r.plural == *plural && r.namespaced && r.group == group) {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource".into(),
                    json!({}),
                );
            }
            (ns.to_string(), plural.to_string(), tail.first().map(|s| s.to_string()))
        }
        [plural, tail @ ..] => (String::new(), plural.to_string(), tail.first().map(|s| s.to_string())),
        [] => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource".into(),
                json!({}),
            )
        }
    };
    let Some(res) =
        st.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    else {
        return status(404, "NotFound", "the server could not find the requested resource".into(), json!({}));
    };
    if !res.namespaced && !ns.is_empty() {
        return status(404, "NotFound", "the server could not find the requested resource".into(), json!({}));
    }
    let key = |name: &str| (group.to_string(), plural.clone(), ns.clone(), name.to_string());
    match (req.method.as_str(), name) {
        ("GET", None) if matches!(req.query.get("watch").map(String::as_str), Some("true" | "1")) => {
            // the marker `serve` turns into a stream
            let since = req.query.get("resourceVersion").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (
                0,
                json!({"group": group, "plural": plural, "ns": ns, "since": since,
                       "labels": req.query.get("labelSelector").cloned().unwrap_or_default(),
                       "fields": req.query.get("fieldSelector").cloned().unwrap_or_default(),
                       "timeout": req.query.get("timeoutSeconds").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1800)}),
            )
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
                .cloned()
                .collect();
            (
                200,
                json!({"kind": format!("{}List", res.kind), "apiVersion": group_version(group, version),
                       "metadata": {"resourceVersion": (RV.load(Ordering::SeqCst) - 1).to_string()}, "items": items}),
            )
        }
        ("GET", Some(name)) => match st.objects.get(&key(&name)) {
            Some(o) => (200, o.clone()),
            None => not_found(&res, &name),
        },
        ("POST", None) => {
            let mut obj = match body(req) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
                return status(
                    422,
                    "Invalid",
                    format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        res.kind
                    ),
                    json!({"kind": res.kind}),
                );
            };
            if st.objects.contains_key(&key(&name)) {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", group_resource(&res)),
                    json!({"name": name, "group": res.group, "kind": res.plural}),
                );
            }
            if res.namespaced {
                obj["metadata"]["namespace"] = json!(ns);
                if !st.objects.contains_key(&(String::new(), "namespaces".into(), String::new(), ns.clone()))
                {
                    return status(
                        404,
                        "NotFound",
                        format!("namespaces \"{ns}\" not found"),
                        json!({"name": ns, "kind": "namespaces"}),
                    );
                }
            }
            if res.kind == "Namespace" {
                obj["status"] = json!({"phase": "Active"});
            }
            let obj = stamp(reconcile(obj, None));
            st.objects.insert(key(&name), obj.clone());
            st.record("ADDED", key(&name), &obj);
            (201, obj)
        }
        ("PUT", Some(name)) => {
            let obj = match body(req) {
                Ok(v) => v,
                Err(e) => return e,
            };
            let Some(old) = st.objects.get(&key(&name)) else { return not_found(&res, &name) };
            if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
                if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                            group_resource(&res)
                        ),
                        json!({"name": name, "group": res.group, "kind": res.plural}),
                    );
                }
            }
            let mut obj = obj;
            obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            if res.namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let obj = stamp(reconcile(obj, st.objects.get(&key(&name))));
            st.objects.insert(key(&name), obj.clone());
            st.record("MODIFIED", key(&name), &obj);
            (200, obj)
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
            let Some(old) = st.objects.get(&key(&name)).cloned() else { return not_found(&res, &name) };
            let strategic = req.content_type.starts_with("application/strategic-merge-patch+json");
            if !strategic && !req.content_type.starts_with("application/merge-patch+json") {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {})", req.content_type),
                    json!({}),
                );
            }
            let mut obj = merge(old.clone(), &patch, strategic);
            obj["metadata"]["uid"] = old["metadata"]["uid"].clone();
            obj["metadata"]["name"] = json!(name);
            if res.namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let obj =
                if req.path.ends_with("/status") { stamp(obj) } else { stamp(reconcile(obj, Some(&old))) };
            st.objects.insert(key(&name), obj.clone());
            st.record("MODIFIED", key(&name), &obj);
            (200, obj)
        }
        ("DELETE", Some(name)) => match st.objects.remove(&key(&name)) {
            Some(o) => {
                let mut gone = o.clone();
                gone["metadata"]["resourceVersion"] = json!(next_rv());
                st.record("DELETED", key(&name), &gone);
                (200, o)
            }
            None => not_found(&res, &name),
        },
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            json!({}),
        ),
    }
}

/// `k=v`, `k==v`, `k!=v`, `k`, `!k`, joined by commas (apimachinery `pkg/labels/selector.go`;
/// set-based `in`/`notin` are not served).
fn labels_match(sel: &str, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    sel.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|t| {
        if let Some((k, v)) = t.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            labels[k.trim()].as_str() == Some(v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            labels.get(k.trim()).is_none()
        } else {
            labels.get(t).is_some()
        }
    })
}

/// `metadata.name` and `metadata.namespace`, `=`/`==`/`!=` (every kind's field selectors support
/// these two: https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/).
fn fields_match(sel: &str, obj: &Value) -> bool {
    sel.split(',').map(str::trim).filter(|t| !t.is_empty()).all(|t| {
        let (k, v, eq) = if let Some((k, v)) = t.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (k, v, true)
        } else {
            return false;
        };
        let have = match k.trim() {
            "metadata.name" => obj["metadata"]["name"].as_str(),
            "metadata.namespace" => obj["metadata"]["namespace"].as_str(),
            _ => return false,
        };
        (have == Some(v.trim())) == eq
    })
}

/// JSON merge patch (RFC 7386: an object merges key by key, `null` deletes, anything else
/// replaces). With `strategic`, the strategic merge patch as kubectl sends it for the fields the
/// tests use (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md):
/// directive keys (`$setElementOrder/...`, `$retainKeys`, `$patch`) are dropped, and a list
/// whose elements all have a `name` (containers, env, ports, volumes: their patchMergeKey) merges
/// element by element on it; other lists are replaced.
fn merge(target: Value, patch: &Value, strategic: bool) -> Value {
    let Value::Object(p) = patch else { return patch.clone() };
    let mut t = match target {
        Value::Object(t) => t,
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        if strategic && k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let old = t.remove(k).unwrap_or(Value::Null);
        let new = match (old, v) {
            (Value::Array(old), Value::Array(new)) if strategic && by_name(&old) && by_name(new) => {
                let mut out = old;
                for item in new {
                    match out.iter().position(|o| o["name"] == item["name"]) {
                        Some(i) => {
                            let merged = merge(out[i].take(), item, true);
                            out[i] = merged;
                        }
                        None => out.push(merge(Value::Null, item, true)),
                    }
                }
                Value::Array(out)
            }
            (old, v) => merge(old, v, strategic),
        };
        t.insert(k.clone(), new);
    }
    Value::Object(t)
}

fn by_name(items: &[Value]) -> bool {
    items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

/// Protobuf bodies (https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding):
/// the magic `k8s\0`, then a `runtime.Unknown` {typeMeta 1 {apiVersion 1, kind 2}, raw 2}; `raw`
/// is the object by the field numbers of k8s.io/api `core/v1/generated.proto` (ObjectMeta: name 1,
/// generateName 2, namespace 3, resourceVersion 6, labels 11, annotations 12; Secret: metadata 1,
/// data 2, type 3, stringData 4; ConfigMap: metadata 1, data 2; Namespace: metadata 1). Other
/// kinds decode to None. Never panics on any bytes.
mod proto {
    use serde_json::{json, Map, Value};

    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// (field number, bytes) of each length-delimited field; other wire types skipped.
    fn fields(b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let tag = varint(b, &mut i)?;
            match tag & 7 {
                0 => {
                    varint(b, &mut i)?;
                }
                1 => i = i.checked_add(8)?,
                5 => i = i.checked_add(4)?,
                2 => {
                    let len = usize::try_from(varint(b, &mut i)?).ok()?;
                    let end = i.checked_add(len)?;
                    out.push((tag >> 3, b.get(i..end)?));
                    i = end;
                }
                _ => return None,
            }
        }
        (i == b.len()).then_some(out)
    }

    fn text(b: &[u8]) -> Value {
        Value::String(String::from_utf8_lossy(b).into_owned())
    }

    /// A map<string, string|bytes> entry: key 1, value 2.
    fn entry(b: &[u8], bytes: bool) -> Option<(String, Value)> {
        let f = fields(b)?;
        let k = f.iter().find(|(n, _)| *n == 1).map(|(_, v)| String::from_utf8_lossy(v).into_owned())?;
        let v = f.iter().find(|(n, _)| *n == 2).map(|(_, v)| *v).unwrap_or(&[]);
        let v = if bytes { Value::String(crate::base64::encode(v)) } else { text(v) };
        Some((k, v))
    }

    fn meta(b: &[u8]) -> Option<Value> {
        let mut m = Map::new();
        let (mut labels, mut annotations) = (Map::new(), Map::new());
        for (n, v) in fields(b)? {
            match n {
                1 => _ = m.insert("name".into(), text(v)),
                2 => _ = m.insert("generateName".into(), text(v)),
                3 => _ = m.insert("namespace".into(), text(v)),
                6 => _ = m.insert("resourceVersion".into(), text(v)),
                11 => {
                    let (k, v) = entry(v, false)?;
                    labels.insert(k, v);
                }
                12 => {
                    let (k, v) = entry(v, false)?;
                    annotations.insert(k, v);
                }
                _ => {}
            }
        }
        m.retain(|_, v| v.as_str().is_some_and(|s| !s.is_empty()));
        if !labels.is_empty() {
            m.insert("labels".into(), Value::Object(labels));
        }
        if !annotations.is_empty() {
            m.insert("annotations".into(), Value::Object(annotations));
        }
        Some(Value::Object(m))
    }

    pub(super) fn decode(body: &[u8]) -> Option<Value> {
        let unknown = fields(body.strip_prefix(b"k8s\0")?)?;
        let type_meta = fields(unknown.iter().find(|(n, _)| *n == 1)?.1)?;
        let get = |f: &[(u64, &[u8])], n| {
            f.iter().find(|(m, _)| *m == n).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let api_version = get(&type_meta, 1)?;
        let kind = get(&type_meta, 2)?;
        let raw = fields(unknown.iter().find(|(n, _)| *n == 2)?.1)?;
        let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
        for (n, v) in raw {
            match (kind.as_str(), n) {
                (_, 1) => obj["metadata"] = meta(v)?,
                ("Secret", 2) | ("ConfigMap", 2) => {
                    let (k, val) = entry(v, kind == "Secret")?;
                    if !obj["data"].is_object() {
                        obj["data"] = json!({});
                    }
                    obj["data"][k] = val;
                }
                ("Secret", 3) => obj["type"] = text(v),
                ("Secret", 4) => {
                    let (k, val) = entry(v, false)?;
                    if !obj["stringData"].is_object() {
                        obj["stringData"] = json!({});
                    }
                    obj["stringData"][k] = val;
                }
                ("Secret" | "ConfigMap" | "Namespace", _) => {}
                _ => return None,
            }
        }
        matches!(kind.as_str(), "Secret" | "ConfigMap" | "Namespace").then_some(obj)
    }
}
