//! Scanning an OpenAI Chat Completions request body without building it.
//!
//! `scan_request` validates the whole body as JSON (a malformed body is the client's error and
//! must say where) and borrows just the fields routing needs. `splice_model` rewrites the model
//! name in place: the bytes before and after the value are copied as they are.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;
use thiserror::Error;

/// What routing needs from a request, borrowed from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The `model` the client asked for (JSON escapes decoded).
    pub model: String,
    /// Byte range of the `model` value in the body, quotes included.
    pub model_span: Range<usize>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens`, or the older `max_tokens`, if given.
    pub max_output_tokens: Option<u64>,
}

/// Why a request body was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The body is not valid JSON, or not an object of the right shape.
    #[error("could not parse the JSON body of your request: {0}")]
    Json(String),
    /// The body has no `model`.
    #[error("you must provide a model parameter")]
    MissingModel,
    /// `model` is not a string.
    #[error("model must be a string")]
    ModelNotString,
}

impl RequestError {
    /// A request body as a JSON object, or the error every codec gives for anything else.
    pub(crate) fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Self> {
        match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(o)) => Ok(o),
            Ok(_) => Err(Self::Json("the request body must be a JSON object".into())),
            Err(e) => Err(Self::Json(e.to_string())),
        }
    }

    /// The `model` field's value, which must be a string.
    pub(crate) fn model(v: &serde_json::Value) -> Result<String, Self> {
        v.as_str().map(str::to_string).ok_or(Self::ModelNotString)
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Validates `body` as a Chat Completions request and borrows what routing needs.
pub fn scan_request(body: &[u8]) -> Result<RequestHead, RequestError> {
    let head: Head<'_> =
        serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    let raw = head.model.ok_or(RequestError::MissingModel)?;
    let text = raw.get();
    let model: String = serde_json::from_str(text).map_err(|_| RequestError::ModelNotString)?;
    // The raw value is a sub-slice of `body`; its offset is a plain address difference.
    let start = text.as_ptr() as usize - body.as_ptr() as usize;
    Ok(RequestHead {
        model,
        model_span: start..start + text.len(),
        stream: head.stream.unwrap_or(false),
        include_usage: head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_output_tokens: head.max_completion_tokens.or(head.max_tokens),
    })
}

/// `body` with the value at `span` replaced by `name` as a JSON string. Everything else is
/// copied byte for byte.
pub fn splice_model(body: &[u8], span: Range<usize>, name: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(name).expect("serializing a str cannot fail");
    let mut out = Vec::with_capacity(body.len() - span.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_model_and_flags() {
        let body = br#"{ "messages": [{"role":"user","content":"hi"}], "model" :  "fast",
            "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 50 }"#;
        let head = scan_request(body).unwrap();
        assert_eq!(head.model, "fast");
        assert_eq!(&body[head.model_span.clone()], br#""fast""#);
        assert!(head.stream);
        assert!(head.include_usage);
        assert_eq!(head.max_output_tokens, Some(50));
    }

    #[test]
    fn splice_keeps_every_other_byte() {
        let body = br#"{"model":"fa\u0073t","messages":[],"n":1}"#;
        let head = scan_request(body).unwrap();
        assert_eq!(head.model, "fast");
        let out = splice_model(body, head.model_span, "gpt-4o-mini");
        assert_eq!(out, br#"{"model":"gpt-4o-mini","messages":[],"n":1}"#);
        let out = splice_model(body, scan_request(body).unwrap().model_span, "we\"ird");
        assert_eq!(scan_request(&out).unwrap().model, "we\"ird");
    }

    #[test]
    fn refuses_what_it_cannot_route() {
        assert!(matches!(
            scan_request(b"{\"model\": \"x\""),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(scan_request(b"[1,2]"), Err(RequestError::Json(_))));
        assert_eq!(
            scan_request(b"{\"messages\":[]}"),
            Err(RequestError::MissingModel)
        );
        assert_eq!(
            scan_request(b"{\"model\":5}"),
            Err(RequestError::ModelNotString)
        );
        let dup = scan_request(br#"{"model":"a","model":"b"}"#).unwrap_err();
        assert!(dup.to_string().contains("duplicate field"), "{dup}");
        let bad = scan_request(b"{\"model\":\"a\",}").unwrap_err();
        assert!(bad.to_string().contains("line 1 column"), "{bad}");
        assert!(matches!(
            scan_request(b"{\"model\":\"\xff\"}"),
            Err(RequestError::Json(_))
        ));
    }
}
