//! What makes the server a cluster: defaults the apiserver sets on write, and the controllers and
//! kubelet that run after every write (and on a tick, so a pod whose image arrives later starts):
//! CRDs establish their kinds, Deployments own ReplicaSets that own Pods, Pods start only with an
//! image the kind node has, Services get a cluster IP and Endpoints, Jobs complete, namespaces
//! and finalizers finish deletions, and dependents go with their owner.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::discovery::{self, Resource};
use super::select::{from_label_selector, labels_match, service_selects};
use super::store::{finalizers, status};
use super::{Key, Response, State};

/// 5 characters from the alphabet of apimachinery `pkg/util/rand` (`SafeEncodeString`), as in
/// generated names (`web-7d4b9c8f6d-x2kqz`).
pub fn suffix(st: &mut State) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    st.serial += 1;
    let mut n = st.serial.wrapping_mul(2_654_435_761) % 14_348_907; // 27^5
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % 27) as usize] as char;
            n /= 27;
            c
        })
        .collect()
}

pub fn uid(st: &mut State) -> String {
    st.serial += 1;
    format!("00000000-0000-4000-8000-{:012}", st.serial)
}

/// The defaults the apiserver sets on write (kubernetes `pkg/apis/apps/v1/defaults.go`
/// `SetDefaults_Deployment`: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600; `pkg/apis/batch/v1/defaults.go` `SetDefaults_Job`: completions
/// and parallelism 1, backoffLimit 6; `pkg/apis/core/v1/defaults.go`: a Service is ClusterIP, and
/// gets its cluster IP from the allocator). helm's readiness reads them (`*dep.Spec.Replicas`,
/// `*job.Spec.BackoffLimit`, `Spec.ClusterIP`: helm `pkg/kube/ready.go` v3.17.2).
pub fn defaults(st: &mut State, res: &Resource, obj: &mut Value) {
    let spec = &mut obj["spec"];
    let set = |v: &mut Value, k: &str, d: Value| {
        if v.get(k).is_none_or(Value::is_null) {
            v[k] = d;
        }
    };
    match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment") => {
            set(spec, "replicas", json!(1));
            set(spec, "revisionHistoryLimit", json!(10));
            set(spec, "progressDeadlineSeconds", json!(600));
            set(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                set(&mut spec["strategy"], "rollingUpdate", json!({}));
                set(&mut spec["strategy"]["rollingUpdate"], "maxUnavailable", json!("25%"));
                set(&mut spec["strategy"]["rollingUpdate"], "maxSurge", json!("25%"));
            }
        }
        ("apps", "ReplicaSet") => set(spec, "replicas", json!(1)),
        ("batch", "Job") => {
            set(spec, "completions", json!(1));
            set(spec, "parallelism", json!(1));
            set(spec, "backoffLimit", json!(6));
        }
        ("", "Service") => {
            set(spec, "type", json!("ClusterIP"));
            set(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" && spec["clusterIP"].as_str().is_none_or(str::is_empty) {
                st.serial += 1;
                let ip = format!("10.96.{}.{}", (st.serial / 250) % 250, st.serial % 250 + 1);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                set(p, "protocol", json!("TCP"));
                if p.get("targetPort").is_none() {
                    p["targetPort"] = p["port"].clone();
                }
            }
        }
        // "stringData ... is merged into the data field on write, overwriting any existing
        // values. The stringData field is never output when reading from the API."
        // (https://kubernetes.io/docs/reference/kubernetes-api/config-and-storage-resources/secret-v1/)
        ("", "Secret") => {
            if let Some(Value::Object(plain)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in plain {
                    obj["data"][k] = json!(crate::base64::encode(v.as_str().unwrap_or_default().as_bytes()));
                }
            }
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "Namespace") => {
            set(spec, "finalizers", json!(["kubernetes"]));
            if !obj["status"]["phase"].is_string() {
                obj["status"] = json!({"phase": "Active"});
            }
            if obj["metadata"]["labels"]["kubernetes.io/metadata.name"].is_null() {
                let name = obj["metadata"]["name"].clone();
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            }
        }
        _ => {}
    }
    if obj["spec"].as_object().is_some_and(|m| m.is_empty()) && res.kind != "Namespace" {
        if let Some(m) = obj.as_object_mut() {
            m.remove("spec");
        }
    }
}

/// What the apiserver's validation refuses that the tests can meet: a Deployment whose selector
/// does not select its own template (kubernetes `pkg/apis/apps/validation/validation.go`
/// `ValidateDeploymentSpec`).
pub fn validate(_st: &State, res: &Resource, obj: &Value) -> Result<(), Response> {
    if res.kind == "Deployment" && res.group == "apps" {
        let sel = from_label_selector(&obj["spec"]["selector"]);
        let template = json!({"metadata": {"labels": obj["spec"]["template"]["metadata"]["labels"].clone()}});
        if sel.is_empty() || !labels_match(&sel, &template) {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            return Err(status(
                422,
                "Invalid",
                format!("Deployment.apps \"{name}\" is invalid: spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                    obj["spec"]["template"]["metadata"]["labels"]),
                json!({"name": name, "group": "apps", "kind": "Deployment"}),
            ));
        }
    }
    Ok(())
}

/// `pods/<name>/log`: nothing was logged by a running container (or by the last run of a
/// restarting one); a container that never started is a 400 in the kubelet's words (kubelet `pkg/kubelet/kubelet_pods.go`
/// `validateContainerLogStatus`).
pub fn logs(pod: &Value, container: Option<&str>) -> Response {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let statuses = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let chosen = match container {
        Some(c) => statuses.iter().find(|s| s["name"] == c),
        None => statuses.first(),
    };
    match chosen {
        // a container waiting with a previous run (CrashLoopBackOff) serves that run's logs
        Some(s) if s["state"]["waiting"].is_object() && !s["lastState"]["terminated"].is_object() => status(
            400,
            "BadRequest",
            format!(
                "container \"{}\" in pod \"{name}\" is waiting to start: {}",
                s["name"].as_str().unwrap_or_default(),
                if s["state"]["waiting"]["reason"] == "ContainerCreating" {
                    "ContainerCreating"
                } else {
                    "trying and failing to pull image"
                }
            ),
            json!({}),
        ),
        _ => Response::Text(200, String::new()),
    }
}

/// Whether a node with these images starts this container image, and if not why (kubelet
/// `pkg/kubelet/images/image_manager.go`: `ErrImagePull` then `ImagePullBackOff`). An image runs
/// when the node has it — `kind load` put it there — and its pull policy lets the node use it:
/// `Always` (explicit, or the default for `:latest` and untagged images,
/// https://kubernetes.io/docs/concepts/containers/images/#imagepullpolicy-defaulting) pulls from
/// a registry this machine does not have (kind's own warning:
/// https://kind.sigs.k8s.io/docs/user/quick-start/#loading-an-image-into-your-cluster).
fn starts(st: &State, image: &str, policy: Option<&str>) -> Result<(), &'static str> {
    let Some(have) = st.node_images() else { return Ok(()) };
    let normal = normalize(image);
    let latest = normal.ends_with(":latest") && !normal.contains('@');
    let policy = policy.unwrap_or(if latest { "Always" } else { "IfNotPresent" });
    if policy == "Always" || !have.iter().any(|h| normalize(h) == normal) {
        return Err("ImagePullBackOff");
    }
    Ok(())
}

/// `app:dev` → `docker.io/library/app:dev`, as the node's containerd names what `kind load`
/// imported (docker/distribution `reference.ParseNormalizedNamed`).
pub fn normalize(image: &str) -> String {
    let (name, tagged) = match image.rsplit_once('@') {
        Some(_) => (image.to_string(), true),
        None => {
            let last = image.rsplit('/').next().unwrap_or(image);
            (image.to_string(), last.contains(':'))
        }
    };
    let name = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => name,
        Some(_) => format!("docker.io/{name}"),
    };
    if tagged {
        name
    } else {
        format!("{name}:latest")
    }
}

fn hash(v: &Value) -> String {
    // FNV-1a of the template, in the safe alphabet (the pod-template-hash label's role)
    let mut h: u32 = 0x811c_9dc5;
    for b in v.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = u64::from(h);
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % 27) as usize] as char;
            n /= 27;
            c
        })
        .collect()
}

fn owner_ref(owner: &Value) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by<'a>(st: &'a State, group: &str, plural: &str, ns: &str, owner: &Value) -> Vec<(Key, &'a Value)> {
    let uid = &owner["metadata"]["uid"];
    st.objects
        .iter()
        .filter(|((g, p, n, _), o)| {
            g == group
                && p == plural
                && n == ns
                && o["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|r| r["uid"] == *uid)
        })
        .map(|(k, o)| (k.clone(), o))
        .collect()
}

fn key(group: &str, plural: &str, ns: &str, name: &str) -> Key {
    (group.into(), plural.into(), ns.into(), name.into())
}

/// Runs every controller until nothing changes (bounded).
pub fn settle(st: &mut State) {
    for _ in 0..16 {
        let before = st.rv;
        crds(st);
        deletions(st);
        deployments(st);
        replicasets(st);
        jobs(st);
        pods(st);
        services(st);
        if st.rv == before {
            break;
        }
    }
}

/// A CRD is `Established` and `NamesAccepted` at once, and its kinds join discovery and OpenAPI;
/// with it gone, they and their objects go (apiextensions-apiserver; helm's `crdReady` reads the
/// Established condition, kubectl `wait --for condition=established` too).
fn crds(st: &mut State) {
    let crds: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), _)| g == "apiextensions.k8s.io" && p == "customresourcedefinitions")
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    let mut resources = discovery::builtin();
    for (k, crd) in &crds {
        resources.extend(discovery::from_crd(crd));
        if crd["status"]["conditions"].as_array().is_none_or(|c| c.is_empty()) {
            let mut c = crd.clone();
            c["status"] = json!({"acceptedNames": crd["spec"]["names"], "storedVersions":
                crd["spec"]["versions"].as_array().into_iter().flatten().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": super::now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": super::now()}]});
            st.put(k.clone(), c);
        }
    }
    let names = |rs: &[Resource]| {
        rs.iter().map(|r| (r.group.clone(), r.version.clone(), r.plural.clone())).collect::<Vec<_>>()
    };
    if names(&resources) != names(&st.resources) {
        st.schema_generation += 1;
        let served: Vec<(String, String)> =
            resources.iter().map(|r| (r.group.clone(), r.plural.clone())).collect();
        let orphans: Vec<Key> = st
            .objects
            .keys()
            .filter(|(g, p, _, _)| !served.contains(&(g.clone(), p.clone())))
            .cloned()
            .collect();
        for k in orphans {
            st.remove(&k);
        }
        st.resources = resources;
    }
}

/// Namespaces being deleted lose their contents, then themselves; objects being deleted go when
/// their finalizers are gone; dependents whose owners are all gone are collected.
fn deletions(st: &mut State) {
    let terminating: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), o)| {
            g.is_empty() && p == "namespaces" && o["metadata"]["deletionTimestamp"].is_string()
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (nk, ns) in terminating {
        let inside: Vec<(Key, Value)> = st
            .objects
            .iter()
            .filter(|((_, _, n, _), _)| *n == nk.3)
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (k, mut o) in inside.clone() {
            if finalizers(&o).is_empty() {
                st.remove(&k);
            } else if !o["metadata"]["deletionTimestamp"].is_string() {
                o["metadata"]["deletionTimestamp"] = json!(super::now());
                st.put(k, o);
            }
        }
        let left = st.objects.keys().filter(|(_, _, n, _)| *n == nk.3).count();
        if left == 0 {
            st.remove(&nk);
        } else {
            let mut ns = ns;
            let want = json!([{"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                "message": format!("Some content in the namespace has finalizers remaining: {} resource instances", left)}]);
            if ns["status"]["conditions"] != want {
                ns["status"]["conditions"] = want;
                st.put(nk, ns);
            }
        }
    }
    let done: Vec<Key> = st
        .objects
        .iter()
        .filter(|((_, p, _, _), o)| {
            p != "namespaces" && o["metadata"]["deletionTimestamp"].is_string() && finalizers(o).is_empty()
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in done {
        st.remove(&k);
    }
    let uids: std::collections::BTreeSet<String> =
        st.objects.values().filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string)).collect();
    let orphans: Vec<Key> = st
        .objects
        .iter()
        .filter(|(_, o)| {
            let refs = o["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
            !refs.is_empty() && refs.iter().all(|r| !r["uid"].as_str().is_some_and(|u| uids.contains(u)))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in orphans {
        st.remove(&k);
    }
}

/// A Deployment owns one ReplicaSet per pod template (named `<deployment>-<pod-template-hash>`,
/// its template the Deployment's plus that label), scales the current one to `spec.replicas`
/// and older ones to 0, and reports what its pods are: the status `kubectl rollout status`
/// reads (kubectl `pkg/polymorphichelpers/rollout_status.go` DeploymentStatusViewer) and helm's
/// `deploymentReady` with `deploymentutil.GetNewReplicaSet` finds (a ReplicaSet the Deployment
/// controls whose template equals its own, ignoring the hash label).
fn deployments(st: &mut State) {
    let deps: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), o)| {
            g == "apps" && p == "deployments" && !o["metadata"]["deletionTimestamp"].is_string()
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, d) in deps {
        let ns = &k.2;
        let template = d["spec"]["template"].clone();
        let h = hash(&template);
        let rs_name = format!("{}-{h}", k.3);
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"]["pod-template-hash"] = json!(h);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(h);
        let rs_key = key("apps", "replicasets", ns, &rs_name);
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(h);
        let want_spec = json!({"replicas": replicas, "selector": selector, "template": rs_template});
        match st.objects.get(&rs_key).cloned() {
            None => {
                let uid = uid(st);
                let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs_name, "namespace": ns, "uid": uid, "generation": 1,
                        "creationTimestamp": super::now(), "labels": labels,
                        "annotations": {"deployment.kubernetes.io/revision": "1"},
                        "ownerReferences": [owner_ref(&d)]},
                    "spec": want_spec});
                st.put(rs_key.clone(), rs);
            }
            Some(mut rs) if rs["spec"] != want_spec => {
                rs["spec"] = want_spec;
                let g = rs["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                rs["metadata"]["generation"] = json!(g);
                st.put(rs_key.clone(), rs);
            }
            Some(_) => {}
        }
        // older ReplicaSets scale to 0
        for (ok, mut old) in owned_by(st, "apps", "replicasets", ns, &d)
            .into_iter()
            .map(|(k, o)| (k, o.clone()))
            .collect::<Vec<_>>()
        {
            if ok != rs_key && old["spec"]["replicas"] != 0 {
                old["spec"]["replicas"] = json!(0);
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                old["metadata"]["generation"] = json!(g);
                st.put(ok, old);
            }
        }
        let all = owned_by(st, "apps", "replicasets", ns, &d);
        let sum = |f: &str| all.iter().map(|(_, r)| r["status"][f].as_i64().unwrap_or(0)).sum::<i64>();
        let (total, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
        let current = st.objects.get(&rs_key);
        let updated = current.map(|r| r["status"]["replicas"].as_i64().unwrap_or(0)).unwrap_or(0);
        let updated_ready =
            current.map(|r| r["status"]["availableReplicas"].as_i64().unwrap_or(0)).unwrap_or(0);
        let rolled = updated_ready >= replicas && total == updated;
        let generation = d["metadata"]["generation"].clone();
        let mut want = json!({"observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [
            if available >= replicas {
                json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."})
            } else {
                json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."})
            },
            if rolled {
                json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed.")})
            } else {
                json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet \"{rs_name}\" is progressing.")})
            }]});
        for f in ["readyReplicas", "availableReplicas", "unavailableReplicas"] {
            if want[f] == 0 {
                if let Some(m) = want.as_object_mut() {
                    m.remove(f);
                }
            }
        }
        if d["status"] != want {
            let mut d = d.clone();
            d["status"] = want;
            st.put(k, d);
        }
    }
}

/// A ReplicaSet keeps `spec.replicas` Pods from its template (`<replicaset>-<5 chars>`) and counts
/// the ready ones.
fn replicasets(st: &mut State) {
    let sets: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), o)| {
            g == "apps" && p == "replicasets" && !o["metadata"]["deletionTimestamp"].is_string()
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, rs) in sets {
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let mut pods: Vec<Key> = owned_by(st, "", "pods", &k.2, &rs).into_iter().map(|(k, _)| k).collect();
        while pods.len() > want {
            if let Some(p) = pods.pop() {
                st.remove(&p);
            }
        }
        while pods.len() < want {
            let name = format!("{}-{}", k.3, suffix(st));
            let pk = key("", "pods", &k.2, &name);
            let pod = new_pod(st, &rs, &rs["spec"]["template"], &name, &k.2);
            st.put(pk.clone(), pod);
            pods.push(pk);
        }
        let ready = pods.iter().filter(|p| st.objects.get(*p).is_some_and(pod_ready)).count();
        let mut want_status = json!({"replicas": want, "fullyLabeledReplicas": want, "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": rs["metadata"]["generation"]});
        if ready == 0 {
            if let Some(m) = want_status.as_object_mut() {
                m.remove("readyReplicas");
                m.remove("availableReplicas");
            }
        }
        if rs["status"] != want_status {
            let mut rs = rs;
            rs["status"] = want_status;
            st.put(k, rs);
        }
    }
}

fn new_pod(st: &mut State, owner: &Value, template: &Value, name: &str, ns: &str) -> Value {
    let uid = uid(st);
    let mut meta = template["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(uid);
    meta["creationTimestamp"] = json!(super::now());
    meta["ownerReferences"] = json!([owner_ref(owner)]);
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(format!("{}-control-plane", st.cluster));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A Job runs one Pod per completion; it completes when its pods could start (their images are
/// on the node), with the conditions batch/v1 sets since 1.31 (`SuccessCriteriaMet`, then
/// `Complete`: https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions).
fn jobs(st: &mut State) {
    let jobs: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), o)| {
            g == "batch" && p == "jobs" && !o["metadata"]["deletionTimestamp"].is_string()
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, job) in jobs {
        if job["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Complete")) {
            continue;
        }
        let completions = job["spec"]["completions"].as_i64().unwrap_or(1).max(0) as usize;
        let mut pods: Vec<Key> = owned_by(st, "", "pods", &k.2, &job).into_iter().map(|(k, _)| k).collect();
        while pods.len() < completions {
            let name = format!("{}-{}", k.3, suffix(st));
            let pk = key("", "pods", &k.2, &name);
            let mut pod = new_pod(st, &job, &job["spec"]["template"], &name, &k.2);
            pod["metadata"]["labels"]["job-name"] = json!(k.3);
            pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] = json!(k.3);
            st.put(pk.clone(), pod);
            pods.push(pk);
        }
        let succeeded = pods
            .iter()
            .filter(|p| st.objects.get(*p).is_some_and(|o| o["status"]["phase"] == "Succeeded"))
            .count();
        let mut want = json!({"active": completions - succeeded, "succeeded": succeeded, "startTime": job["status"]["startTime"].as_str().map(str::to_string).unwrap_or_else(super::now), "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}});
        if succeeded >= completions {
            let now = super::now();
            want["completionTime"] = json!(now);
            want["conditions"] = json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": now}]);
            if let Some(m) = want.as_object_mut() {
                m.remove("active");
            }
        }
        let mut cmp = job["status"].clone();
        if let Some(m) = cmp.as_object_mut() {
            m.insert("startTime".into(), want["startTime"].clone());
        }
        if cmp != want || !job["status"]["startTime"].is_string() {
            let mut job = job;
            job["status"] = want;
            st.put(k, job);
        }
    }
}

/// The kubelet's part: a Pod whose containers' images the node has runs and is Ready (a Job's
/// runs to `Succeeded`); otherwise it stays `Pending` with the container waiting in
/// `ImagePullBackOff`, or, for an image the scenario says crashes, `Running` but not ready in
/// `CrashLoopBackOff` (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/).
fn pods(st: &mut State) {
    let pods: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), _)| g.is_empty() && p == "pods")
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (k, pod) in pods {
        if pod["status"]["phase"] == "Succeeded" {
            continue;
        }
        let batch =
            pod["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|r| r["kind"] == "Job");
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let mut statuses = Vec::new();
        let (mut all_ready, mut pulling) = (true, false);
        for c in &containers {
            let image = c["image"].as_str().unwrap_or_default();
            let name = c["name"].clone();
            let crashing = st.crashing.iter().any(|i| normalize(i) == normalize(image));
            let s = match starts(st, image, c["imagePullPolicy"].as_str()) {
                Err(reason) => {
                    all_ready = false;
                    pulling = true;
                    json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                        "state": {"waiting": {"reason": reason, "message": format!("Back-off pulling image \"{image}\"")}}})
                }
                Ok(()) if crashing => {
                    all_ready = false;
                    json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 5, "started": false,
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 5m0s restarting failed container={} pod={}", name.as_str().unwrap_or_default(), k.3)}}})
                }
                Ok(()) if batch => {
                    json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}})
                }
                Ok(()) => {
                    json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0, "started": true,
                        "state": {"running": {"startedAt": pod["metadata"]["creationTimestamp"]}}})
                }
            };
            statuses.push(s);
        }
        let ip = pod["status"]["podIP"].as_str().map(str::to_string).unwrap_or_else(|| {
            st.serial += 1;
            format!("10.244.{}.{}", (st.serial / 250) % 250, st.serial % 250 + 1)
        });
        let cond = |t: &str, ok: bool| {
            let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }});
            if !ok {
                c["reason"] = json!("ContainersNotReady");
            }
            c
        };
        let phase = if batch && !pulling {
            "Succeeded"
        } else if pulling {
            "Pending"
        } else {
            "Running"
        };
        let want = json!({"phase": phase, "hostIP": "172.18.0.2", "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": pod["metadata"]["creationTimestamp"], "qosClass": "BestEffort",
            "conditions": [cond("PodReadyToStartContainers", !pulling), cond("Initialized", true),
                cond("Ready", all_ready && !batch), cond("ContainersReady", all_ready && !batch), cond("PodScheduled", true)],
            "containerStatuses": statuses});
        if pod["status"] != want {
            let mut pod = pod;
            pod["status"] = want;
            st.put(k, pod);
        }
    }
}

/// A Service with a selector gets an Endpoints object of the same name listing its ready pods'
/// IPs (the endpoints controller, https://kubernetes.io/docs/concepts/services-networking/service/#endpoints).
fn services(st: &mut State) {
    let svcs: Vec<(Key, Value)> = st
        .objects
        .iter()
        .filter(|((g, p, _, _), _)| g.is_empty() && p == "services")
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    let mut wanted: BTreeMap<Key, Value> = BTreeMap::new();
    for (k, svc) in &svcs {
        if svc["spec"]["selector"].as_object().is_none_or(|s| s.is_empty()) {
            continue;
        }
        let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
        for ((g, p, n, _), pod) in &st.objects {
            if g.is_empty() && p == "pods" && *n == k.2 && service_selects(&svc["spec"]["selector"], pod) {
                let addr = json!({"ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"],
                    "targetRef": {"kind": "Pod", "namespace": k.2, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}});
                if pod_ready(pod) {
                    ready.push(addr);
                } else if pod["status"]["podIP"].is_string() {
                    not_ready.push(addr);
                }
            }
        }
        let ports: Vec<Value> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let mut e = json!({"port": p["targetPort"], "protocol": p["protocol"]});
                if let Some(n) = p["name"].as_str() {
                    e["name"] = json!(n);
                }
                e
            })
            .collect();
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        let subsets = if ready.is_empty() && not_ready.is_empty() { json!([]) } else { json!([subset]) };
        wanted.insert(key("", "endpoints", &k.2, &k.3), subsets);
    }
    let gone: Vec<Key> = st
        .objects
        .keys()
        .filter(|(g, p, n, name)| {
            g.is_empty() && p == "endpoints" && !st.objects.contains_key(&key("", "services", n, name))
        })
        .cloned()
        .collect();
    for k in gone {
        st.remove(&k);
    }
    for (ek, subsets) in wanted {
        match st.objects.get(&ek).cloned() {
            Some(mut e) => {
                if e["subsets"] != subsets {
                    e["subsets"] = subsets;
                    st.put(ek, e);
                }
            }
            None => {
                let uid = uid(st);
                let e = json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": ek.3, "namespace": ek.2, "uid": uid, "creationTimestamp": super::now()},
                    "subsets": subsets});
                st.put(ek, e);
            }
        }
    }
}
