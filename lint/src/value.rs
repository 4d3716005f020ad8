//! Typed reading of `serde_json::Value` trees: what config files (parsed TOML) and our own JSON
//! records are decoded with, instead of serde's derive macros (serde_derive, a proc-macro crate,
//! was ~3.5 s of CPU in every cold build of the xtask, and its expansions ~15 % of the xtask's
//! code to compile).
//!
//! A struct is read field by field from a [`Table`], which remembers the keys it was asked for;
//! [`Table::done`] refuses any other key (`unknown field `x` in <where>, expected one of ...`),
//! so a misspelt key is never silently ignored. Errors name where the value sits
//! (`deploy[2].helm.set`), and what was expected and found.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// A value that can be read out of a JSON tree.
pub trait FromValue: Sized {
    /// Reads `v`; `at` names where it sits, for errors.
    fn from_value(v: &Value, at: &str) -> Result<Self, String>;
}

/// A value written as a JSON tree: the twin of [`FromValue`] for records we write and read back.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue> ToValue for BTreeMap<String, T> {
    fn to_value(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
    }
}

/// The one key of an object that stands for a TOML value JSON cannot hold: a date or time, or
/// the float `inf` / `nan`. Its value names it (`local date 1979-05-27`, `float inf`), so that
/// a decoder can say what it found; no decoder takes it for a table.
pub const SPECIAL: &str = "\u{0}toml";

/// The name of a TOML value JSON cannot hold (see [`SPECIAL`]), if `v` is one.
pub fn special(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(SPECIAL)?.as_str(),
        _ => None,
    }
}

/// What a JSON value is, for "expected ..., found ..." messages.
pub fn kind_of(v: &Value) -> String {
    if let Some(name) = special(v) {
        return name.to_string();
    }
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "a table".into(),
    }
}

fn wrong(at: &str, expected: &str, v: &Value) -> String {
    format!("invalid type at {at}: expected {expected}, found {}", kind_of(v))
}

impl FromValue for String {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        v.as_str().map(str::to_string).ok_or_else(|| wrong(at, "a string", v))
    }
}

impl FromValue for PathBuf {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        String::from_value(v, at).map(PathBuf::from)
    }
}

impl FromValue for bool {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        v.as_bool().ok_or_else(|| wrong(at, "true or false", v))
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        v.as_u64().ok_or_else(|| wrong(at, "a whole number >= 0", v))
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        v.as_i64().ok_or_else(|| wrong(at, "a whole number", v))
    }
}

impl FromValue for i32 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let n = i64::from_value(v, at)?;
        i32::try_from(n).map_err(|_| format!("invalid value at {at}: {n} is out of range"))
    }
}

impl FromValue for u32 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let n = u64::from_value(v, at)?;
        u32::try_from(n).map_err(|_| format!("invalid value at {at}: {n} is larger than {}", u32::MAX))
    }
}

impl FromValue for u16 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let n = u64::from_value(v, at)?;
        u16::try_from(n).map_err(|_| format!("invalid value at {at}: {n} is larger than {}", u16::MAX))
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        match special(v) {
            Some("float inf" | "float +inf") => return Ok(f64::INFINITY),
            Some("float -inf") => return Ok(f64::NEG_INFINITY),
            Some("float nan" | "float +nan" | "float -nan") => return Ok(f64::NAN),
            _ => {}
        }
        v.as_f64().ok_or_else(|| wrong(at, "a number", v))
    }
}

impl FromValue for Value {
    fn from_value(v: &Value, _at: &str) -> Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let items = v.as_array().ok_or_else(|| wrong(at, "an array", v))?;
        items.iter().enumerate().map(|(i, item)| T::from_value(item, &format!("{at}[{i}]"))).collect()
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let map = v.as_object().filter(|_| special(v).is_none()).ok_or_else(|| wrong(at, "a table", v))?;
        map.iter().map(|(k, item)| Ok((k.clone(), T::from_value(item, &format!("{at}.{k}"))?))).collect()
    }
}

/// The keys of one table, read one by one; [`Table::done`] refuses the keys never asked for.
pub struct Table<'a> {
    map: &'a Map<String, Value>,
    at: String,
    asked: Vec<&'static str>,
}

impl<'a> Table<'a> {
    /// `v` must be a table; `at` names it (`""` for the top of a file).
    pub fn new(v: &'a Value, at: &str) -> Result<Table<'a>, String> {
        let map = v
            .as_object()
            .filter(|_| special(v).is_none())
            .ok_or_else(|| wrong(if at.is_empty() { "the top" } else { at }, "a table", v))?;
        Ok(Table { map, at: at.to_string(), asked: Vec::new() })
    }

    fn path(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    /// `key` if present (a JSON `null` is absent).
    pub fn opt<T: FromValue>(&mut self, key: &'static str) -> Result<Option<T>, String> {
        self.asked.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::from_value(v, &self.path(key)).map(Some),
        }
    }

    /// `key`, which must be present.
    pub fn req<T: FromValue>(&mut self, key: &'static str) -> Result<T, String> {
        match self.opt(key)? {
            Some(v) => Ok(v),
            None if self.at.is_empty() => Err(format!("missing field `{key}`")),
            None => Err(format!("missing field `{key}` in {}", self.at)),
        }
    }

    /// `key`, or `default` when absent.
    pub fn or<T: FromValue>(&mut self, key: &'static str, default: T) -> Result<T, String> {
        Ok(self.opt(key)?.unwrap_or(default))
    }

    /// `key`, or its type's default (empty, false, zero) when absent.
    pub fn or_default<T: FromValue + Default>(&mut self, key: &'static str) -> Result<T, String> {
        Ok(self.opt(key)?.unwrap_or_default())
    }

    /// Refuses any key that was not asked for.
    pub fn done(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.asked.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => {
                let known: Vec<String> = self.asked.iter().map(|a| format!("`{a}`")).collect();
                let place = if self.at.is_empty() { String::new() } else { format!(" in {}", self.at) };
                Err(format!("unknown field `{k}`{place}, expected one of {}", known.join(", ")))
            }
        }
    }
}

/// Reads a whole JSON text as `T`.
pub fn from_json<T: FromValue>(text: &str) -> Result<T, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    T::from_value(&v, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq)]
    struct Helm {
        chart: String,
        set: BTreeMap<String, String>,
        retries: Option<u32>,
        load: bool,
    }

    impl FromValue for Helm {
        fn from_value(v: &Value, at: &str) -> Result<Self, String> {
            let mut t = Table::new(v, at)?;
            let helm = Helm {
                chart: t.req("chart")?,
                set: t.or_default("set")?,
                retries: t.opt("retries")?,
                load: t.or("load", true)?,
            };
            t.done()?;
            Ok(helm)
        }
    }

    #[test]
    fn fields_are_read_defaulted_and_refused_with_where_they_sit() {
        let ok = Helm::from_value(&json!({"chart": "c", "set": {"a": "b"}}), "deploy[1].helm").unwrap();
        assert_eq!(
            ok,
            Helm { chart: "c".into(), set: [("a".into(), "b".into())].into(), retries: None, load: true }
        );
        let err = |v: Value| Helm::from_value(&v, "deploy[1].helm").unwrap_err();
        assert_eq!(err(json!({})), "missing field `chart` in deploy[1].helm");
        assert!(err(json!({"chart": "c", "wait": 1}))
            .starts_with("unknown field `wait` in deploy[1].helm, expected one of `chart`, `set`"));
        assert_eq!(
            err(json!({"chart": 5})),
            "invalid type at deploy[1].helm.chart: expected a string, found number 5"
        );
        assert_eq!(
            err(json!({"chart": "c", "set": {"x": true}})),
            "invalid type at deploy[1].helm.set.x: expected a string, found boolean true"
        );
        assert_eq!(
            err(json!({"chart": "c", "retries": 1u64 << 40})),
            format!("invalid value at deploy[1].helm.retries: {} is larger than 4294967295", 1u64 << 40)
        );
        assert_eq!(
            err(json!({"chart": "c", "retries": -1})),
            "invalid type at deploy[1].helm.retries: expected a whole number >= 0, found number -1"
        );
        assert!(err(json!([1])).contains("expected a table, found an array"));
        let date = json!({ SPECIAL: "local date 1979-05-27" });
        assert_eq!(
            err(json!({"chart": date})),
            "invalid type at deploy[1].helm.chart: expected a string, found local date 1979-05-27"
        );
        assert!(err(date.clone()).contains("expected a table, found local date"));
        assert!(BTreeMap::<String, String>::from_value(&date, "set")
            .unwrap_err()
            .contains("expected a table"));
        assert_eq!(f64::from_value(&json!({ SPECIAL: "float -inf" }), "x"), Ok(f64::NEG_INFINITY));
        let v: Vec<Vec<String>> = from_json(r#"[["a"], []]"#).unwrap();
        assert_eq!(v, vec![vec!["a".to_string()], vec![]]);
        assert!(from_json::<Vec<String>>(r#"["a", 1]"#).unwrap_err().contains("at [1]"));
    }
}
