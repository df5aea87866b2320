//! Gemini `Schema` (an OpenAPI 3.0 subset: upper-case `type`, `nullable`) <-> JSON Schema.
//!
//! ```text
//!   {"type":"STRING","nullable":true}  <->  {"type":["string","null"]}
//!   {"type":"OBJECT","properties":{..}} <->  {"type":"object","properties":{..}}
//! ```
//!
//! Property names and enum values are data, never rewritten. Keywords the Gemini subset lacks
//! (`$ref`, `$defs`, `oneOf`, `allOf`, `const`, `additionalProperties`, ...) make a schema go
//! out as `parametersJsonSchema` / `responseJsonSchema`, which take JSON Schema as it is.

use super::keys::camel;
use crate::ir::LossReport;
use serde_json::{Map, Value, json};

/// Keywords the Gemini `Schema` type has (camelCase).
const GEMINI_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Gemini `Schema` -> JSON Schema.
pub fn to_json_schema(v: &Value) -> Value {
    let Value::Object(o) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    let nullable = o
        .get("nullable")
        .or_else(|| o.get("nullable"))
        .and_then(Value::as_bool)
        == Some(true);
    for (k, val) in o {
        let key = camel(k);
        match key.as_str() {
            "type" => {
                let t = val
                    .as_str()
                    .map(|s| Value::String(s.to_ascii_lowercase()))
                    .unwrap_or_else(|| val.clone());
                let t = if nullable { json!([t, "null"]) } else { t };
                out.insert("type".into(), t);
            }
            "nullable" if nullable => {}
            "properties" => {
                let props = val
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect::<Map<_, _>>()
                    })
                    .map(Value::Object)
                    .unwrap_or_else(|| val.clone());
                out.insert(key, props);
            }
            "items" => {
                out.insert(key, to_json_schema(val));
            }
            "anyOf" => {
                let list = val
                    .as_array()
                    .map(|a| Value::Array(a.iter().map(to_json_schema).collect()))
                    .unwrap_or_else(|| val.clone());
                out.insert(key, list);
            }
            _ => {
                out.insert(key, val.clone());
            }
        }
    }
    Value::Object(out)
}

/// Whether `v` (JSON Schema) can be written as a Gemini `Schema` without losing anything.
pub(super) fn fits_gemini(v: &Value) -> bool {
    let Value::Object(o) = v else {
        return true;
    };
    o.iter().all(|(k, val)| {
        GEMINI_KEYWORDS.contains(&k.as_str())
            && match k.as_str() {
                "type" => match val {
                    Value::String(_) => true,
                    Value::Array(a) => {
                        a.len() == 2
                            && a.iter().filter(|t| *t == "null").count() == 1
                            && a.iter().all(Value::is_string)
                    }
                    _ => false,
                },
                "properties" => val.as_object().is_some_and(|p| p.values().all(fits_gemini)),
                "items" => fits_gemini(val),
                "anyOf" => val.as_array().is_some_and(|a| a.iter().all(fits_gemini)),
                _ => true,
            }
    })
}

/// JSON Schema -> Gemini `Schema`. Keywords Gemini lacks are reported under `path` (callers
/// avoid that by checking `fits_gemini` and writing JSON Schema as it is instead).
pub fn to_gemini_schema(v: &Value, path: &str, loss: &mut LossReport) -> Value {
    let Value::Object(o) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in o {
        if !GEMINI_KEYWORDS.contains(&k.as_str()) {
            loss.drop_field(format!("{path}.{k}"));
            continue;
        }
        match k.as_str() {
            "type" => match val {
                Value::String(t) => {
                    out.insert("type".into(), json!(t.to_ascii_uppercase()));
                }
                Value::Array(a) => {
                    let non_null: Vec<&Value> = a.iter().filter(|t| *t != "null").collect();
                    if let [Value::String(t)] = non_null.as_slice() {
                        out.insert("type".into(), json!(t.to_ascii_uppercase()));
                    } else {
                        loss.drop_field(format!("{path}.type"));
                    }
                    if non_null.len() < a.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                }
                _ => loss.drop_field(format!("{path}.type")),
            },
            "properties" => {
                let props: Map<String, Value> = val
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| {
                        (
                            name.clone(),
                            to_gemini_schema(s, &format!("{path}.properties.{name}"), loss),
                        )
                    })
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(
                    k.clone(),
                    to_gemini_schema(val, &format!("{path}.items"), loss),
                );
            }
            "anyOf" => {
                let list: Vec<Value> = val
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| to_gemini_schema(s, &format!("{path}.anyOf[{i}]"), loss))
                    .collect();
                out.insert(k.clone(), Value::Array(list));
            }
            _ => {
                out.insert(k.clone(), val.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_types_and_nullable_round_trip() {
        let g = json!({"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true, "description": "x"},
                       "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}}, "required": ["city"]});
        let j = to_json_schema(&g);
        assert_eq!(j["type"], "object");
        assert_eq!(j["properties"]["city"]["type"], json!(["string", "null"]));
        assert_eq!(j["properties"]["days"]["items"]["type"], "integer");
        assert!(fits_gemini(&j));
        let mut loss = LossReport::default();
        assert_eq!(to_gemini_schema(&j, "schema", &mut loss), g);
        assert!(loss.is_empty());
        let refs =
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {}});
        assert!(!fits_gemini(&refs));
        to_gemini_schema(&refs, "schema", &mut loss);
        assert_eq!(loss.dropped, ["schema.$defs", "schema.properties.a.$ref"]);
    }
}
