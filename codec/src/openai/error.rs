//! OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.

use serde_json::json;

pub use crate::errors::ErrorKind;

/// The JSON body of an OpenAI-shaped error.
pub fn error_body(
    kind: ErrorKind,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    let v = json!({
        "error": {
            "message": message,
            "type": kind.openai_type(),
            "param": param,
            "code": code,
        }
    });
    serde_json::to_vec(&v).expect("a json! value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_openai() {
        let body = error_body(
            ErrorKind::NotFound,
            "The model `x` does not exist",
            Some("model"),
            Some("model_not_found"),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["message"], "The model `x` does not exist");
        let body = error_body(ErrorKind::Authentication, "no key", None, None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"]["param"].is_null() && v["error"]["code"].is_null());
    }
}
