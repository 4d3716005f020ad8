//! Patches as the clients send them, and server-side apply's field ownership.

use std::collections::BTreeMap;

use serde_json::Value;

/// JSON merge patch (RFC 7386: an object merges key by key, `null` deletes, anything else
/// replaces). With `strategic`, the strategic merge patch as kubectl and helm send it for the
/// fields the tests use (https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md):
/// directive keys (`$setElementOrder/...`, `$retainKeys`, `$patch`) are dropped, and a list
/// whose elements all have a `name` (containers, env, ports, volumes: their patchMergeKey) merges
/// element by element on it; other lists are replaced.
pub fn merge(target: Value, patch: &Value, strategic: bool) -> Value {
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
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

/// JSON patch (RFC 6902) `add`, `replace`, `remove`, `test` with JSON pointers (RFC 6901), as
/// `kubectl patch --type=json` sends it.
pub fn json_patch(mut target: Value, ops: &Value) -> Result<Value, String> {
    let ops = ops.as_array().ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        let mut segs: Vec<String> =
            path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        let last = segs.pop().ok_or("the path \"\" is the whole document")?;
        let mut parent = &mut target;
        for s in &segs {
            parent = match parent {
                Value::Object(m) => m.get_mut(s).ok_or_else(|| format!("doc is missing path: {path}"))?,
                Value::Array(a) => s
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get_mut(i))
                    .ok_or_else(|| format!("doc is missing path: {path}"))?,
                _ => return Err(format!("doc is missing path: {path}")),
            };
        }
        match (op["op"].as_str(), parent) {
            (Some("add" | "replace"), Value::Object(m)) => _ = m.insert(last, op["value"].clone()),
            (Some("add"), Value::Array(a)) if last == "-" => a.push(op["value"].clone()),
            (Some("add"), Value::Array(a)) => match last.parse::<usize>() {
                Ok(i) if i <= a.len() => a.insert(i, op["value"].clone()),
                _ => return Err(format!("doc is missing path: {path}")),
            },
            (Some("replace"), Value::Array(a)) => match last.parse::<usize>().ok().and_then(|i| a.get_mut(i))
            {
                Some(slot) => *slot = op["value"].clone(),
                None => return Err(format!("doc is missing path: {path}")),
            },
            (Some("remove"), Value::Object(m)) => {
                m.remove(&last).ok_or_else(|| format!("doc is missing path: {path}"))?;
            }
            (Some("remove"), Value::Array(a)) => match last.parse::<usize>() {
                Ok(i) if i < a.len() => _ = a.remove(i),
                _ => return Err(format!("doc is missing path: {path}")),
            },
            (Some("test"), p) => {
                let have = match p {
                    Value::Object(m) => m.get(&last),
                    Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                };
                if have != Some(&op["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            (other, _) => return Err(format!("unexpected kind of operation {other:?} at {path}")),
        }
    }
    Ok(target)
}

/// One step of a field path: a key of a map, or the element of a list keyed by its `name`.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Named(String),
}

/// Who owns each leaf field of one object (structured-merge-diff's managed fields, reduced to
/// leaves): path as `.spec.replicas` / `.spec.template.spec.containers[name="web"].image` → each
/// manager that set it, and whether it did so by apply.
#[derive(Clone, Debug, Default)]
pub struct Owners(BTreeMap<String, (Vec<Seg>, BTreeMap<String, bool>)>);

fn path_text(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!(".{k}"),
            Seg::Named(n) => format!("[name=\"{n}\"]"),
        })
        .collect()
}

/// The fields an apply or update sets: every leaf, skipping what the server owns (identity,
/// versions) and, for kinds with a status subresource, the status.
fn leaves(obj: &Value, skip_status: bool) -> Vec<(Vec<Seg>, Value)> {
    let mut out = Vec::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" || (k == "status" && skip_status) {
                continue;
            }
            if k == "metadata" {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if matches!(
                        mk.as_str(),
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "generation"
                            | "creationTimestamp"
                            | "deletionTimestamp"
                            | "managedFields"
                    ) {
                        continue;
                    }
                    walk(mv, vec![Seg::Key("metadata".into()), Seg::Key(mk.clone())], &mut out);
                }
                continue;
            }
            walk(v, vec![Seg::Key(k.clone())], &mut out);
        }
    }
    out
}

fn walk(v: &Value, at: Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                if k.starts_with('$') {
                    continue;
                }
                let mut p = at.clone();
                p.push(Seg::Key(k.clone()));
                walk(v, p, out);
            }
        }
        Value::Array(items) if by_name(items) => {
            for item in items {
                let mut p = at.clone();
                p.push(Seg::Named(item["name"].as_str().unwrap_or_default().to_string()));
                walk(item, p, out);
            }
        }
        _ => out.push((at, v.clone())),
    }
}

fn get<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut at = obj;
    for s in path {
        at = match s {
            Seg::Key(k) => at.get(k)?,
            Seg::Named(n) => at.as_array()?.iter().find(|i| i["name"].as_str() == Some(n))?,
        };
    }
    Some(at)
}

fn remove(obj: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = obj;
    for s in parents {
        let next = match s {
            Seg::Key(k) => at.get_mut(k),
            Seg::Named(n) => {
                at.as_array_mut().and_then(|a| a.iter_mut().find(|i| i["name"].as_str() == Some(n)))
            }
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match last {
        Seg::Key(k) => {
            if let Some(m) = at.as_object_mut() {
                m.remove(k);
            }
        }
        Seg::Named(n) => {
            if let Some(a) = at.as_array_mut() {
                a.retain(|i| i["name"].as_str() != Some(n));
            }
        }
    }
}

/// A field another manager owns with another value (structured-merge-diff `merge.Conflict`).
pub struct Conflict {
    pub manager: String,
    pub by_apply: bool,
    pub path: String,
}

impl Owners {
    /// Server-side apply of `config` by `manager` onto `old` (None: the object is created)
    /// (https://kubernetes.io/docs/reference/using-api/server-side-apply/): a field another
    /// manager owns with a different value is a conflict unless `force` (which takes it over);
    /// a field this manager applied before and no longer applies is removed, unless someone else
    /// owns it too; the rest merges in.
    pub fn apply(
        &mut self,
        old: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
        skip_status: bool,
    ) -> Result<Value, Vec<Conflict>> {
        let empty = Value::Object(Default::default());
        let old = old.unwrap_or(&empty);
        let new = leaves(config, skip_status);
        let mut conflicts = Vec::new();
        for (path, value) in &new {
            let Some((_, managers)) = self.0.get(&path_text(path)) else { continue };
            if get(old, path) == Some(value) {
                continue;
            }
            for (m, by_apply) in managers {
                if m != manager {
                    conflicts.push(Conflict {
                        manager: m.clone(),
                        by_apply: *by_apply,
                        path: path_text(path),
                    });
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        let mut obj = old.clone();
        let applied: Vec<String> = new.iter().map(|(p, _)| path_text(p)).collect();
        let dropped: Vec<String> = self
            .0
            .iter()
            .filter(|(k, (_, ms))| ms.get(manager) == Some(&true) && !applied.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in dropped {
            if let Some((path, ms)) = self.0.get_mut(&k) {
                ms.remove(manager);
                if ms.is_empty() {
                    let path = path.clone();
                    remove(&mut obj, &path);
                    self.0.remove(&k);
                }
            }
        }
        let mut config = config.clone();
        if skip_status {
            if let Some(m) = config.as_object_mut() {
                m.remove("status");
            }
        }
        obj = merge(obj, &config, true);
        for (path, value) in new {
            let entry = self.0.entry(path_text(&path)).or_insert_with(|| (path.clone(), BTreeMap::new()));
            if force || get(old, &path) != Some(&value) {
                entry.1.clear();
            }
            entry.1.insert(manager.to_string(), true);
        }
        Ok(obj)
    }

    /// A write that is not an apply (create, update, patch) by `manager`: it owns what it changed.
    pub fn update(&mut self, old: Option<&Value>, new: &Value, manager: &str, skip_status: bool) {
        let empty = Value::Object(Default::default());
        let old = old.unwrap_or(&empty);
        let now = leaves(new, skip_status);
        let now_paths: Vec<String> = now.iter().map(|(p, _)| path_text(p)).collect();
        self.0.retain(|k, _| now_paths.contains(k));
        for (path, value) in now {
            if get(old, &path) != Some(&value) || !self.0.contains_key(&path_text(&path)) {
                let mut ms = BTreeMap::new();
                ms.insert(manager.to_string(), false);
                self.0.insert(path_text(&path), (path, ms));
            }
        }
    }
}
