//! Protobuf bodies (https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding):
//! the magic `k8s\0`, then a `runtime.Unknown` {typeMeta 1 {apiVersion 1, kind 2}, raw 2}; `raw`
//! is the object by the field numbers of k8s.io/api `core/v1/generated.proto` (ObjectMeta: name 1,
//! generateName 2, namespace 3, resourceVersion 6, labels 11, annotations 12; Secret: metadata 1,
//! data 2, type 3, stringData 4; ConfigMap: metadata 1, data 2; Namespace: metadata 1). Other
//! kinds decode to None. Never panics on any bytes.

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

pub(crate) fn decode(body: &[u8]) -> Option<Value> {
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
