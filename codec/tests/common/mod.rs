//! Helpers shared by the codec tests: fixtures from `tests/fixtures/<protocol>/`, and JSON in
//! the semantic form the round-trip tests compare. Each test file uses the subset it needs.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;

/// The bytes of `tests/fixtures/<dir>/<name>`.
pub(crate) fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Semantic form: numbers compared as numbers (`1` and `1.0` are the same temperature).
pub(crate) fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        v => v,
    }
}

/// Parsed and normalized JSON.
pub(crate) fn json_of(bytes: &[u8]) -> Value {
    normalize(serde_json::from_slice(bytes).unwrap())
}
