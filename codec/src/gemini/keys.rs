//! camelCase / snake_case: Gemini accepts both spellings of every structural field name (the
//! google-genai Python SDK sends `thinking_config`, `function_declarations`, `inline_data`, ...).
//! The parsers run [`normalize`] once over the whole body, so everything after it reads
//! camelCase only. Values that are user data are never touched:
//!
//! ```text
//!   functionCall.args  functionResponse.response  labels      -> copied as they are
//!   parametersJsonSchema  responseJsonSchema (JSON Schema)      -> copied as they are
//!   enum / example / default values                             -> copied as they are
//!   properties: {<name>: schema}                               -> names kept, schemas normalized
//! ```

use serde_json::{Map, Value};

/// `thinking_config` -> `thinkingConfig`. A leading `_` is kept, so a body can never turn a
/// field of its own into one of the codec's private `_hints` (it is refused instead).
pub(super) fn camel(key: &str) -> String {
    let lead = key.len() - key.trim_start_matches('_').len();
    let mut out = String::with_capacity(key.len());
    out.push_str(&key[..lead]);
    let mut up = false;
    for c in key[lead..].chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the value under `key` (camelCase) inside an object under `parent` is user data.
fn is_data(parent: &str, key: &str) -> bool {
    matches!(
        key,
        "args"
            | "labels"
            | "parametersJsonSchema"
            | "responseJsonSchema"
            | "enum"
            | "example"
            | "default"
            | "partMetadata"
    ) || (key == "response" && parent == "functionResponse")
}

/// The body with every structural field name in camelCase (see the module doc).
pub(super) fn normalize(v: Value) -> Value {
    norm(v, "")
}

fn norm(v: Value, parent: &str) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, val) in o {
                let key = camel(&k);
                let val = if is_data(parent, &key) {
                    val
                } else if key == "properties" {
                    // A schema's property names are data; their schemas are structure.
                    match val {
                        Value::Object(p) => Value::Object(
                            p.into_iter().map(|(name, s)| (name, norm(s, ""))).collect(),
                        ),
                        other => norm(other, &key),
                    }
                } else {
                    norm(val, &key)
                };
                out.insert(key, val);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| norm(x, parent)).collect()),
        v => v,
    }
}

/// An object value, or an error naming `path`.
pub(super) fn object(v: Value, path: &str) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(format!("{path} must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camel_case() {
        assert_eq!(camel("thinking_config"), "thinkingConfig");
        assert_eq!(camel("include_thoughts"), "includeThoughts");
        assert_eq!(camel("topK"), "topK");
        assert_eq!(camel("function_declarations"), "functionDeclarations");
        assert_eq!(camel("_hint_key"), "_hintKey", "a leading underscore stays");
    }

    #[test]
    fn structure_only_never_data() {
        let v = json!({"contents": [{"parts": [
            {"function_call": {"name": "f", "args": {"user_id": 1}}},
            {"function_response": {"name": "f", "response": {"snake_key": {"in_here": 2}}}}]}],
            "tools": [{"function_declarations": [{"name": "f",
                "parameters": {"type": "OBJECT", "properties": {"user_id": {"type": "STRING", "min_length": 1}}},
                "parameters_json_schema": {"type": "object", "x_custom": 1}}]}],
            "labels": {"cost_center": "a_b"}});
        let n = normalize(v);
        assert_eq!(
            n["contents"][0]["parts"][0]["functionCall"]["args"],
            json!({"user_id": 1})
        );
        assert_eq!(
            n["contents"][0]["parts"][1]["functionResponse"]["response"],
            json!({"snake_key": {"in_here": 2}})
        );
        let d = &n["tools"][0]["functionDeclarations"][0];
        assert_eq!(d["parameters"]["properties"]["user_id"]["minLength"], 1);
        assert_eq!(d["parametersJsonSchema"]["x_custom"], 1);
        assert_eq!(n["labels"], json!({"cost_center": "a_b"}));
    }
}
