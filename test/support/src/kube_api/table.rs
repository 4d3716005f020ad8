//! Server-side printing: `kubectl get` asks for a `Table` (Accept
//! `application/json;as=Table;v=v1;g=meta.k8s.io`, kubectl `pkg/cmd/get/get.go`) and prints its
//! columns (`-o wide` adds those of priority 1). Served for Pods and Deployments with the columns
//! of kubernetes `pkg/printers/internalversion/printers.go` (`podColumnDefinitions`,
//! `deploymentColumnDefinitions`, `printPod`'s STATUS: the waiting reason of a container, else
//! the phase); other kinds answer a plain list, which kubectl prints as NAME and AGE itself.

use serde_json::{json, Value};

use super::discovery::Resource;

/// A row's cells from its object.
type Cells = fn(&Value) -> Vec<Value>;

fn col(name: &str, priority: u8) -> Value {
    json!({"name": name, "type": "string", "format": if name == "Name" { "name" } else { "" }, "description": "", "priority": priority})
}

/// `5s`, `3m`, `2h`, `4d` (apimachinery `pkg/util/duration` `HumanDuration`, coarsely).
fn age(obj: &Value) -> String {
    let Some(t) = obj["metadata"]["creationTimestamp"].as_str().and_then(super::parse_time) else {
        return "<unknown>".into();
    };
    let s = super::unix_now().saturating_sub(t);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| if v.is_null() { "<none>".into() } else { v.to_string() })
}

pub fn table(accept: &str, res: &Resource, items: &[Value], rv: u64) -> Option<Value> {
    if !accept.contains("as=Table") {
        return None;
    }
    let (columns, cells): (Vec<Value>, Cells) = match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => (
            vec![
                col("Name", 0),
                col("Ready", 0),
                col("Status", 0),
                col("Restarts", 0),
                col("Age", 0),
                col("IP", 1),
                col("Node", 1),
                col("Nominated Node", 1),
                col("Readiness Gates", 1),
            ],
            |p| {
                let statuses = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
                let total = p["spec"]["containers"].as_array().map(Vec::len).unwrap_or(0);
                let ready = statuses.iter().filter(|s| s["ready"] == true).count();
                let restarts: i64 = statuses.iter().map(|s| s["restartCount"].as_i64().unwrap_or(0)).sum();
                let reason = statuses
                    .iter()
                    .find_map(|s| s["state"]["waiting"]["reason"].as_str().map(str::to_string))
                    .or_else(|| {
                        statuses
                            .iter()
                            .find_map(|s| s["state"]["terminated"]["reason"].as_str().map(str::to_string))
                    })
                    .unwrap_or_else(|| text(&p["status"]["phase"]));
                vec![
                    p["metadata"]["name"].clone(),
                    json!(format!("{ready}/{total}")),
                    json!(if p["metadata"]["deletionTimestamp"].is_string() {
                        "Terminating".into()
                    } else {
                        reason
                    }),
                    json!(restarts),
                    json!(age(p)),
                    json!(text(&p["status"]["podIP"])),
                    json!(text(&p["spec"]["nodeName"])),
                    json!("<none>"),
                    json!("<none>"),
                ]
            },
        ),
        ("apps", "Deployment") => (
            vec![
                col("Name", 0),
                col("Ready", 0),
                col("Up-to-date", 0),
                col("Available", 0),
                col("Age", 0),
                col("Containers", 1),
                col("Images", 1),
                col("Selector", 1),
            ],
            |d| {
                let n = |f: &str| d["status"][f].as_i64().unwrap_or(0);
                let containers =
                    d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
                let list = |k: &str| containers.iter().map(|c| text(&c[k])).collect::<Vec<_>>().join(",");
                vec![
                    d["metadata"]["name"].clone(),
                    json!(format!("{}/{}", n("readyReplicas"), d["spec"]["replicas"].as_i64().unwrap_or(1))),
                    json!(n("updatedReplicas")),
                    json!(n("availableReplicas")),
                    json!(age(d)),
                    json!(list("name")),
                    json!(list("image")),
                    json!(super::select::from_label_selector(&d["spec"]["selector"])),
                ]
            },
        ),
        _ => return None,
    };
    let rows: Vec<Value> = items.iter().map(|o| json!({"cells": cells(o), "object": o})).collect();
    Some(
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns, "rows": rows}),
    )
}
