//! Error bodies in each protocol's own shape, and reading the error a provider sent.
//!
//! ```text
//!   busbar's own refusal  --ErrorKind + message-->  render(caller protocol)  --> status kept
//!   provider error body   --read_provider_error-->  message + code  --render(caller)-->
//! ```
//!
//! The status always travels unchanged; the body is rewritten so that every SDK raises its own
//! error class for it (they choose by status, and boto3 by the `x-amzn-ErrorType` header).

use crate::Protocol;
use serde_json::{Value, json};

/// The error families busbar reports, whatever the protocol.
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
    /// 503 / 529: the provider is overloaded.
    Overloaded,
    /// 5xx: the provider could not be reached or failed.
    Upstream,
    /// 5xx: busbar itself failed.
    Server,
}

impl ErrorKind {
    /// The family a status belongs to (used for a provider's error relayed in another shape).
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 | 431 => ErrorKind::TooLarge,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::Overloaded,
            400..=499 => ErrorKind::InvalidRequest,
            502 | 504 => ErrorKind::Upstream,
            _ => ErrorKind::Server,
        }
    }

    /// OpenAI's `error.type` (Chat Completions and Responses).
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::TooLarge => {
                "invalid_request_error"
            }
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Overloaded | ErrorKind::Upstream => "upstream_error",
            ErrorKind::Server => "server_error",
        }
    }

    /// Anthropic's `error.type`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Upstream | ErrorKind::Server => "api_error",
        }
    }

    /// Gemini's `error.status` (google.rpc codes).
    pub fn gemini_status(self, status: u16) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::TooLarge => "INVALID_ARGUMENT",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::Permission => "PERMISSION_DENIED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::RateLimit => "RESOURCE_EXHAUSTED",
            ErrorKind::Overloaded => "UNAVAILABLE",
            ErrorKind::Upstream if status == 504 => "DEADLINE_EXCEEDED",
            ErrorKind::Upstream => "UNAVAILABLE",
            ErrorKind::Server => "INTERNAL",
        }
    }

    /// Bedrock's exception name (sent as `x-amzn-ErrorType`).
    pub fn bedrock_type(self, status: u16) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::TooLarge => "ValidationException",
            ErrorKind::Authentication => "UnrecognizedClientException",
            ErrorKind::Permission => "AccessDeniedException",
            ErrorKind::NotFound => "ResourceNotFoundException",
            ErrorKind::RateLimit => "ThrottlingException",
            ErrorKind::Overloaded => "ServiceUnavailableException",
            ErrorKind::Upstream if status == 504 => "ModelTimeoutException",
            ErrorKind::Upstream => "ServiceUnavailableException",
            ErrorKind::Server => "InternalServerException",
        }
    }
}

/// An error rendered for a client: its body and the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Extra response headers (Bedrock's `x-amzn-ErrorType`).
    pub headers: Vec<(&'static str, String)>,
}

/// Renders an error in `protocol`'s shape. `code` is OpenAI's `code` (e.g. `model_not_found`)
/// and `param` the field at fault, where known; other protocols have no place for them.
pub fn render(
    protocol: Protocol,
    status: u16,
    kind: ErrorKind,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Rendered {
    let mut headers = Vec::new();
    let v = match protocol {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => json!({
            "error": {"message": message, "type": kind.openai_type(), "param": param, "code": code}
        }),
        Protocol::Anthropic => json!({
            "type": "error",
            "error": {"type": kind.anthropic_type(), "message": message}
        }),
        Protocol::Gemini => json!({
            "error": {"code": status, "message": message, "status": kind.gemini_status(status)}
        }),
        Protocol::Cohere => json!({"message": message}),
        Protocol::Bedrock => {
            headers.push(("x-amzn-errortype", kind.bedrock_type(status).to_string()));
            json!({"message": message})
        }
    };
    Rendered {
        body: serde_json::to_vec(&v).expect("a json! value always serializes"),
        headers,
    }
}

/// What a provider said when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// Its message (or, for a body that is not a known error shape, the start of the body).
    pub message: String,
    /// Its own error type or code, when it gave one (`rate_limit_error`,
    /// `RESOURCE_EXHAUSTED`, `ThrottlingException`, ...).
    pub code: Option<String>,
}

/// Reads the error a provider of any protocol sent. `amzn_error_type` is the value of the
/// `x-amzn-ErrorType` header, where Bedrock puts its exception name.
pub fn read_provider_error(amzn_error_type: Option<&str>, body: &[u8]) -> ProviderError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let err = v.get("error");
    let message = s(err.and_then(|e| e.get("message")))
        .or_else(|| s(v.get("message")))
        .or_else(|| s(v.get("Message")))
        .or_else(|| s(err))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let cut = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
            if text.is_empty() {
                "the provider sent no error message".to_string()
            } else {
                text[..cut].to_string()
            }
        });
    let code = amzn_error_type
        .map(|t| t.split(':').next().unwrap_or(t).trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| s(err.and_then(|e| e.get("type"))))
        .or_else(|| s(err.and_then(|e| e.get("status"))))
        .or_else(|| s(err.and_then(|e| e.get("code"))))
        .or_else(|| s(v.get("__type")))
        .or_else(|| s(v.get("code")));
    ProviderError { message, code }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(p: Protocol, status: u16) -> Value {
        let r = render(
            p,
            status,
            ErrorKind::from_status(status),
            "nope",
            None,
            None,
        );
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn each_protocol_has_its_shape() {
        assert_eq!(
            body(Protocol::OpenAiChat, 429)["error"]["type"],
            "rate_limit_error"
        );
        assert_eq!(
            body(Protocol::Anthropic, 529)["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(body(Protocol::Anthropic, 404)["type"], "error");
        let g = body(Protocol::Gemini, 429);
        assert_eq!(
            (g["error"]["code"].as_u64(), g["error"]["status"].as_str()),
            (Some(429), Some("RESOURCE_EXHAUSTED"))
        );
        assert_eq!(body(Protocol::Cohere, 400)["message"], "nope");
        let b = render(
            Protocol::Bedrock,
            429,
            ErrorKind::RateLimit,
            "slow",
            None,
            None,
        );
        assert_eq!(
            b.headers,
            [("x-amzn-errortype", "ThrottlingException".to_string())]
        );
    }

    #[test]
    fn provider_errors_are_read_from_every_shape() {
        type Case<'a> = (&'a [u8], Option<&'a str>, &'a str, Option<&'a str>);
        let cases: [Case<'_>; 6] = [
            (
                br#"{"error":{"message":"m1","type":"invalid_request_error"}}"#,
                None,
                "m1",
                Some("invalid_request_error"),
            ),
            (
                br#"{"type":"error","error":{"type":"overloaded_error","message":"m2"}}"#,
                None,
                "m2",
                Some("overloaded_error"),
            ),
            (
                br#"{"error":{"code":429,"message":"m3","status":"RESOURCE_EXHAUSTED"}}"#,
                None,
                "m3",
                Some("RESOURCE_EXHAUSTED"),
            ),
            (
                br#"{"message":"m4"}"#,
                Some("ThrottlingException:http://internal.amazon.com/coral/"),
                "m4",
                Some("ThrottlingException"),
            ),
            (br#"{"id":"x","message":"m5"}"#, None, "m5", None),
            (
                b"<html>bad gateway</html>",
                None,
                "<html>bad gateway</html>",
                None,
            ),
        ];
        for (b, h, msg, code) in cases {
            let e = read_provider_error(h, b);
            assert_eq!((e.message.as_str(), e.code.as_deref()), (msg, code));
        }
    }
}
