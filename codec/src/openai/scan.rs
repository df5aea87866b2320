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
    /// Byte range of the `stream_options` value in the body, if it is there.
    pub stream_options_span: Option<Range<usize>>,
    /// `max_completion_tokens`, or the older `max_tokens` (or the Responses API's
    /// `max_output_tokens`), if given.
    pub max_output_tokens: Option<u64>,
    /// How many choices to generate (`n`), each up to `max_output_tokens`.
    pub choices: u64,
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
    // Present even as `null` (so its place in the body is known).
    #[serde(default, borrow, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    // The Responses API's name for it.
    #[serde(default)]
    max_output_tokens: Option<u64>,
    // Read leniently: a value busbar cannot use is the provider's to refuse.
    #[serde(default)]
    n: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
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
    let options = head.stream_options.map(RawValue::get);
    let include_usage = match options {
        Some(o) => serde_json::from_str::<Option<StreamOptions>>(o)
            .map_err(|e| RequestError::Json(format!("stream_options: {e}")))?
            .and_then(|o| o.include_usage),
        None => None,
    };
    Ok(RequestHead {
        model,
        model_span: start..start + text.len(),
        stream: head.stream.unwrap_or(false),
        include_usage: include_usage.unwrap_or(false),
        stream_options_span: options.map(|o| {
            let at = o.as_ptr() as usize - body.as_ptr() as usize;
            at..at + o.len()
        }),
        max_output_tokens: head
            .max_completion_tokens
            .or(head.max_tokens)
            .or(head.max_output_tokens),
        choices: head
            .n
            .as_ref()
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 128),
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

/// `body` (a streamed request that did not ask for usage) asking for the final usage chunk:
/// `stream_options.include_usage` set, every other byte as it was.
pub fn ask_for_usage(body: &[u8], head: &RequestHead) -> Vec<u8> {
    match &head.stream_options_span {
        Some(span) => {
            // The client's own options, kept, with `include_usage` turned on.
            let mut o: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body[span.clone()]).unwrap_or_default();
            o.insert("include_usage".into(), serde_json::Value::Bool(true));
            let v = serde_json::Value::Object(o).to_string();
            let mut out = Vec::with_capacity(body.len() + v.len());
            out.extend_from_slice(&body[..span.start]);
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(&body[span.end..]);
            out
        }
        None => {
            // The body is an object with a `model` in it: after its `{` another member follows.
            let at = body.iter().position(|b| *b == b'{').map_or(0, |i| i + 1);
            let field = br#""stream_options":{"include_usage":true},"#;
            let mut out = Vec::with_capacity(body.len() + field.len());
            out.extend_from_slice(&body[..at]);
            out.extend_from_slice(field);
            out.extend_from_slice(&body[at..]);
            out
        }
    }
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
    fn asks_for_usage_keeping_the_rest() {
        let body = br#" {"model":"m","stream":true,"messages":[]}"#;
        let head = scan_request(body).unwrap();
        assert!(!head.include_usage && head.stream_options_span.is_none());
        let out = ask_for_usage(body, &head);
        assert_eq!(
            out,
            br#" {"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#
        );
        assert!(scan_request(&out).unwrap().include_usage);

        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#;
        let head = scan_request(body).unwrap();
        assert!(!head.include_usage);
        let out = ask_for_usage(body, &head);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true, "include_obfuscation": false})
        );
        for body in [
            &br#"{"model":"m","stream_options":null}"#[..],
            br#"{"model":"m","stream_options":{}}"#,
        ] {
            let out = ask_for_usage(body, &scan_request(body).unwrap());
            assert!(
                scan_request(&out).unwrap().include_usage,
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        assert!(scan_request(br#"{"model":"m","stream_options":7}"#).is_err());
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
