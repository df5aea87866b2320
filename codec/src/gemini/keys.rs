//! camelCase / snake_case: Gemini accepts both spellings of every structural field name. The
//! parser reads either; values that are user data (function arguments, schema property names,
//! labels) are never touched.

use serde_json::{Map, Value};

/// `thinking_config` -> `thinkingConfig`.
pub(super) fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
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

/// The object's fields with their names in camelCase (one level only).
pub(super) fn camel_map(o: Map<String, Value>) -> Map<String, Value> {
    o.into_iter().map(|(k, v)| (camel(&k), v)).collect()
}

/// Takes a field by its camelCase name from an object whose keys are already camelCased.
pub(super) fn take(o: &mut Map<String, Value>, key: &str) -> Option<Value> {
    o.remove(key)
}

/// An object value with camelCased keys, or an error naming `path`.
pub(super) fn object(v: Value, path: &str) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(o) => Ok(camel_map(o)),
        _ => Err(format!("{path} must be an object")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn camel_case() {
        assert_eq!(super::camel("thinking_config"), "thinkingConfig");
        assert_eq!(super::camel("include_thoughts"), "includeThoughts");
        assert_eq!(super::camel("topK"), "topK");
        assert_eq!(
            super::camel("function_declarations"),
            "functionDeclarations"
        );
    }
}
