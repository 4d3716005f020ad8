//! A Kubernetes API server for tests, served over plain HTTP on a free loopback port, that the
//! real kubectl (v1.32.4) and the real helm (v3.17.2) accept without flags. Every behaviour, with
//! its source, is listed in `test/support/KUBE_API.md`; the code beside each says it again.
//!
//! - `mod.rs` (this file): the server — HTTP/1.1 over std's `TcpListener`, one thread per
//!   connection, JSON answers, chunked watch streams — and what a test sets and reads.
//! - `discovery.rs`: the kinds (built in, and those CRDs add), legacy discovery, OpenAPI v3.
//! - `store.rs`: the verbs: CRUD, patches, server-side apply, status subresource, deletion,
//!   `Status` errors.
//! - `patch.rs`: merge / strategic / JSON patches, server-side apply's field ownership.
//! - `select.rs`: label and field selectors.
//! - `controllers.rs`: what runs after each write: Deployments → ReplicaSets → Pods (Ready only
//!   with an image the node has), Services' Endpoints, Jobs, CRDs, namespace deletion,
//!   finalizers, garbage collection.
//! - `proto.rs`: the protobuf bodies typed clients send.
#![allow(clippy::disallowed_methods)]

mod controllers;
mod discovery;
mod patch;
mod proto;
mod select;
mod store;
mod table;

pub use discovery::Resource;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// (group, plural, namespace or "", name).
type Key = (String, String, String, String);

/// Which images the kind node has.
enum NodeImages {
    /// Any image starts (a node that could pull anything).
    Any,
    /// Only those the fake `kind load` recorded: the fake toolchain's `state.json`, whose
    /// `node_images` maps each cluster to its images.
    Loaded(PathBuf),
}

struct State {
    resources: Vec<Resource>,
    objects: BTreeMap<Key, Value>,
    owners: BTreeMap<Key, patch::Owners>,
    /// Every change, for watches: (resourceVersion, type, key, object).
    events: Vec<(u64, &'static str, Key, Value)>,
    /// The last resourceVersion given.
    rv: u64,
    /// Names, uids and IPs.
    serial: u64,
    /// Moves when the kinds do (OpenAPI's hash).
    schema_generation: u64,
    /// Set on drop: open watches end.
    stopped: bool,
    images: NodeImages,
    /// Images whose containers crash (CrashLoopBackOff).
    crashing: Vec<String>,
    /// The kind cluster's name (pods run on `<cluster>-control-plane`).
    cluster: String,
}

impl State {
    /// Stores `obj` under a new resourceVersion and records the event, unless nothing changed.
    fn put(&mut self, key: Key, mut obj: Value) -> Value {
        let old = self.objects.get(&key);
        if let Some(old) = old {
            let mut a = old.clone();
            a["metadata"]["resourceVersion"] = Value::Null;
            let mut b = obj.clone();
            b["metadata"]["resourceVersion"] = Value::Null;
            if a == b {
                return old.clone();
            }
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), obj.clone());
        self.events.push((self.rv, kind, key, obj.clone()));
        obj
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let obj = self.objects.remove(key)?;
        self.owners.remove(key);
        self.rv += 1;
        let mut gone = obj.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events.push((self.rv, "DELETED", key.clone(), gone));
        Some(obj)
    }

    /// The node's images, or None when any image starts.
    fn node_images(&self) -> Option<Vec<String>> {
        match &self.images {
            NodeImages::Any => None,
            NodeImages::Loaded(path) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                Some(
                    v["node_images"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .flat_map(|(_, list)| list.as_array().cloned().unwrap_or_default())
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                )
            }
        }
    }
}

type Shared = (Mutex<State>, Condvar);

/// The server; stopped (its threads joined or told to end) on drop.
pub struct KubeApi {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Shared>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 UTC time as [`now`] writes it (None for other text).
fn parse_time(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() != 20 || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Now, as RFC 3339 UTC (`2026-12-04T21:14:53Z`).
fn now() -> String {
    let secs = unix_now();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

impl KubeApi {
    /// Serve on 127.0.0.1 at a free port, with the namespaces `default`, `kube-system` and
    /// `kube-public`; every image starts (see [`KubeApi::images_loaded_in`]).
    pub fn start() -> Result<KubeApi> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the test API server to 127.0.0.1:0")?;
        let addr = listener.local_addr().context("the test API server's address")?;
        let mut state = State {
            resources: discovery::builtin(),
            objects: BTreeMap::new(),
            owners: BTreeMap::new(),
            events: Vec::new(),
            rv: 0,
            serial: 0,
            schema_generation: 1,
            stopped: false,
            images: NodeImages::Any,
            crashing: Vec::new(),
            cluster: "kind".into(),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let uid = controllers::uid(&mut state);
            let obj = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": uid, "creationTimestamp": now(), "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            state.put((String::new(), "namespaces".into(), String::new(), ns.into()), obj);
        }
        let state = Arc::new((Mutex::new(state), Condvar::new()));
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
        // the controllers' tick: a pod waiting for an image starts once `kind load` brings it
        let (st, stp) = (state.clone(), stop.clone());
        let tick = std::thread::spawn(move || {
            while !stp.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if let Ok(mut s) = st.0.lock() {
                    let before = s.rv;
                    controllers::settle(&mut s);
                    if s.rv != before {
                        st.1.notify_all();
                    }
                }
            }
        });
        Ok(KubeApi { addr, stop, threads: vec![accept, tick], state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Only images the fake `kind load` recorded start (`path` is the fake toolchain's
    /// `state.json`; its `node_images` maps each cluster to image references); the others stay in
    /// `ImagePullBackOff`. `cluster` names the node pods run on (`<cluster>-control-plane`).
    pub fn images_loaded_in(&self, path: &Path, cluster: &str) {
        if let Ok(mut st) = self.state.0.lock() {
            st.images = NodeImages::Loaded(path.to_path_buf());
            st.cluster = cluster.to_string();
        }
    }

    /// Containers of this image crash on start (`CrashLoopBackOff`).
    pub fn crashing_image(&self, image: &str) {
        if let Ok(mut st) = self.state.0.lock() {
            st.crashing.push(image.to_string());
            controllers::settle(&mut st);
        }
        self.state.1.notify_all();
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

    /// The stored object, if any (`group` "" for core, `namespace` "" for cluster-scoped).
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.state.0.lock().ok()?;
        st.objects.get(&(group.into(), plural.into(), namespace.into(), name.into())).cloned()
    }

    /// Every stored object of a kind in a namespace ("" for all namespaces).
    pub fn objects(&self, group: &str, plural: &str, namespace: &str) -> Vec<Value> {
        let Ok(st) = self.state.0.lock() else { return Vec::new() };
        st.objects
            .iter()
            .filter(|((g, p, n, _), _)| g == group && p == plural && (namespace.is_empty() || n == namespace))
            .map(|(_, o)| o.clone())
            .collect()
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
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
    content_type: String,
    user_agent: String,
    accept: String,
}

/// What a request gets.
enum Response {
    Json(u16, Value),
    Text(u16, String),
    Bytes(u16, &'static str, Vec<u8>),
    Watch(Box<WatchSpec>),
}

struct WatchSpec {
    group: String,
    plural: String,
    ns: String,
    since: u64,
    labels: String,
    fields: String,
    timeout: u64,
}

/// The largest request body read (bigger ones end the connection).
const MAX_BODY: usize = 64 << 20;

fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let (mut len, mut chunked) = (0usize, false);
    let (mut content_type, mut user_agent, mut accept) = (String::new(), String::new(), String::new());
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
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("content-type") {
                content_type = v.to_string();
            } else if k.eq_ignore_ascii_case("accept") {
                accept = v.to_string();
            } else if k.eq_ignore_ascii_case("user-agent") {
                user_agent = v.to_string();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if n > MAX_BODY || body.len() + n > MAX_BODY {
                anyhow::bail!("a request body over {MAX_BODY} bytes");
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        if len > MAX_BODY {
            anyhow::bail!("a request body over {MAX_BODY} bytes");
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        body
    };
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    Ok(Some(Request { method, path: path.to_string(), query, body, content_type, user_agent, accept }))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
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
        let response = {
            let Ok(mut st) = state.0.lock() else { return Ok(()) };
            let before = st.rv;
            let response = store::handle(&req, &mut st);
            if st.rv != before {
                controllers::settle(&mut st);
                state.1.notify_all();
            }
            response
        };
        let (code, ctype, body) = match response {
            Response::Watch(spec) => return watch(&mut w, state, &spec),
            Response::Json(code, v) => (code, "application/json", serde_json::to_vec(&v)?),
            Response::Text(code, t) => (code, "text/plain", t.into_bytes()),
            Response::Bytes(code, ctype, b) => (code, ctype, b),
        };
        write!(
            w,
            "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
            reason_phrase(code),
            body.len()
        )?;
        w.write_all(&body)?;
        w.flush()?;
    }
    Ok(())
}

/// `?watch=true`: a chunked stream of `{"type": ADDED|MODIFIED|DELETED, "object": ...}` lines,
/// each change after `resourceVersion` that matches the selectors (without one, the current
/// objects as ADDED first), until `timeoutSeconds` or the server stops
/// (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
fn watch(w: &mut TcpStream, state: &Shared, spec: &WatchSpec) -> Result<()> {
    write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")?;
    w.flush()?;
    let matches = |(g, p, n, _): &Key, o: &Value| {
        *g == spec.group
            && *p == spec.plural
            && (spec.ns.is_empty() || *n == spec.ns)
            && select::labels_match(&spec.labels, o)
            && select::fields_match(&spec.fields, o)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(spec.timeout);
    let mut since = spec.since;
    let mut st = state.0.lock().map_err(|_| anyhow::anyhow!("state poisoned"))?;
    if since == 0 {
        let now: Vec<Value> =
            st.objects.iter().filter(|(k, o)| matches(k, o)).map(|(_, o)| o.clone()).collect();
        since = st.rv;
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
            .filter(|(rv, _, k, o)| *rv > since && matches(k, o))
            .map(|(_, t, _, o)| json!({"type": t, "object": o}))
            .collect();
        since = st.rv.max(since);
        let stopped = st.stopped;
        drop(st);
        for e in &due {
            chunk(w, e)?;
        }
        let now = std::time::Instant::now();
        if now >= deadline || stopped {
            write!(w, "0\r\n\r\n")?;
            return Ok(());
        }
        st = state.0.lock().map_err(|_| anyhow::anyhow!("state poisoned"))?;
        let wait = (deadline - now).min(Duration::from_millis(500));
        st = state.1.wait_timeout(st, wait).map_err(|_| anyhow::anyhow!("state poisoned"))?.0;
        // a client that left is noticed when the next write fails; an idle stream writes nothing
    }
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
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Error",
    }
}

/// A protobuf body as this server reads it (for tests of the decoder).
pub fn decode_protobuf(body: &[u8]) -> Option<Value> {
    proto::decode(body)
}

/// `app:dev` as the node's containerd names it (`docker.io/library/app:dev`).
pub fn normalize_image(image: &str) -> String {
    controllers::normalize(image)
}
