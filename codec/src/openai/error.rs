//! OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.

use serde_json::json;

/// The error families busbar reports in OpenAI's shape, with the `type` OpenAI uses for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request itself is wrong.
    InvalidRequest,
    /// 401: no key, or a key busbar does not know.
    Authentication,
    /// 403: the key may not use what it asked for.
    Permission,
    /// 404: no such model or route.
    NotFound,
    /// 413 / 431 and other size limits.
    TooLarge,
    /// 429: a limit was hit.
    RateLimit,
    /// 5xx: the provider could not be reached or failed.
    Upstream,
    /// 5xx: busbar itself failed.
    Server,
}

impl ErrorKind {
    fn type_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::TooLarge => {
                "invalid_request_error"
            }
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Server => "server_error",
        }
    }
}

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
            "type": kind.type_str(),
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
