//! Gemini `Schema` (an OpenAPI 3.0 subset: upper-case `type`, `nullable`) <-> JSON Schema.
//!
//! ```text
//!   {"type":"STRING","nullable":true}  <->  {"type":["string","null"]}
//!   {"type":"OBJECT","properties":{..}} <->  {"type":"object","properties":{..}}
//!   {"anyOf":[..],"nullable":true}      <->  the same (no type to fold `null` into)
//! ```
//!
//! The IR holds JSON Schema. Property names and enum values are data, never rewritten.
//! Which spelling goes out (decided in `request.rs`): a schema that came from Gemini goes back
//! in the spelling it came in (`parameters` / `parametersJsonSchema`, `responseSchema` /
//! `responseJsonSchema`, a `_` hint says which); a schema from another protocol goes out as
//! upper-case `parameters` / `responseSchema` when [`fits_gemini`] (only the subset's keywords,
//! one type or one type plus `null`), else as JSON Schema as it is (`$ref`, `$defs`, `oneOf`,
//! `allOf`, `const`, `additionalProperties`, ... have no place in the subset).

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

/// Gemini `Schema` -> JSON Schema: types lower-cased (`NULL` too), `nullable: true` folded into
/// the type as `["<type>", "null"]` (kept as it is on a schema without a `type`, so that
/// [`to_gemini_schema`] gives the same schema back), snake_case keywords read as camelCase.
pub fn to_json_schema(v: &Value) -> Value {
    let Value::Object(o) = v else {
        return v.clone();
    };
    let nullable = o.get("nullable").and_then(Value::as_bool) == Some(true);
    let typed = o.get("type").is_some_and(Value::is_string);
    let mut out = Map::new();
    for (k, val) in o {
        let key = camel(k);
        match key.as_str() {
            "type" => {
                let t = match val.as_str() {
                    Some(s) => Value::String(s.to_ascii_lowercase()),
                    None => val.clone(),
                };
                let t = if nullable && typed {
                    json!([t, "null"])
                } else {
                    t
                };
                out.insert(key, t);
            }
            "nullable" if nullable && typed => {}
            "properties" => {
                let props = match val {
                    Value::Object(p) => Value::Object(
                        p.iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                out.insert(key, props);
            }
            "items" => {
                out.insert(key, to_json_schema(val));
            }
            "anyOf" => {
                let list = match val {
                    Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
                    other => other.clone(),
                };
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
pub fn fits_gemini(v: &Value) -> bool {
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
        let odd = json!({"anyOf": [{"type": "NULL"}, {"type": "NUMBER"}], "nullable": true});
        let j = to_json_schema(&odd);
        assert_eq!(j["anyOf"][0]["type"], "null");
        assert_eq!(
            j["nullable"], true,
            "kept where there is no type to fold it into"
        );
        assert_eq!(to_gemini_schema(&j, "s", &mut loss), odd);
        assert!(loss.is_empty());
        let refs =
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {}});
        assert!(!fits_gemini(&refs));
        to_gemini_schema(&refs, "schema", &mut loss);
        assert_eq!(loss.dropped, ["schema.$defs", "schema.properties.a.$ref"]);
    }
}
