//! Label and field selectors, as the query parameters `labelSelector` and `fieldSelector` carry
//! them.

use serde_json::Value;

/// Terms joined by commas (apimachinery `pkg/labels/selector.go`, `Parse`): `k=v`, `k==v`,
/// `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`. A term this does not read matches nothing.
pub fn labels_match(sel: &str, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    terms(sel).iter().all(|t| {
        let t = t.trim();
        if let Some((k, set)) = set_term(t, " notin ") {
            !set.contains(&labels[k].as_str().unwrap_or("\u{0}"))
        } else if let Some((k, set)) = set_term(t, " in ") {
            labels[k].as_str().is_some_and(|v| set.contains(&v))
        } else if let Some((k, v)) = t.split_once("!=") {
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

/// The selector split at the commas outside parentheses.
fn terms(sel: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&sel[start..]);
    out.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

fn set_term<'a>(t: &'a str, op: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let (k, rest) = t.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some((k.trim(), inner.split(',').map(str::trim).collect()))
}

/// `metadata.name` and `metadata.namespace` on every kind, `status.phase` on Pods and
/// Namespaces, `type` on Secrets; `=`/`==`/`!=`
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/).
pub fn fields_match(sel: &str, obj: &Value) -> bool {
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
            "status.phase" => obj["status"]["phase"].as_str(),
            "type" => obj["type"].as_str(),
            _ => return false,
        };
        (have == Some(v.trim())) == eq
    })
}

/// A Deployment's, ReplicaSet's or Job's `spec.selector` (a LabelSelector) as a selector string.
pub fn from_label_selector(sel: &Value) -> String {
    let mut terms: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> =
            e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        terms.push(match e["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    terms.join(",")
}

/// A Service's `spec.selector` (a plain map): every pair must match; an empty one selects nothing
/// (Services without selectors get no endpoints).
pub fn service_selects(selector: &Value, pod: &Value) -> bool {
    let Some(sel) = selector.as_object().filter(|s| !s.is_empty()) else { return false };
    sel.iter().all(|(k, v)| pod["metadata"]["labels"][k] == *v)
}
