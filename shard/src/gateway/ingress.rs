//! Which protocol a request speaks, from its method and path, and how its client proves who it
//! is in that protocol.
//!
//! ```text
//!   POST /v1/chat/completions                    OpenAI Chat       Authorization: Bearer
//!   POST /v1/responses                           OpenAI Responses  Authorization: Bearer
//!   POST /v1/messages                            Anthropic         x-api-key | Bearer
//!   POST /v1beta/models/{model}:generateContent  Gemini            x-goog-api-key | ?key=
//!        (also /v1/models/..., :streamGenerateContent)
//!   POST /v2/chat                                Cohere v2         Authorization: Bearer
//!   POST /model/{modelId}/converse               Bedrock Converse  Bearer (Bedrock API key)
//!        (also /converse-stream)
//!   GET  /v1/models                              OpenAI list, or Anthropic's when the client
//!                                                sends anthropic-version
//!   GET  /v1beta/models                          Gemini list
//! ```

use busbar_codec::Protocol;
use busbar_codec::http1::{Method, RequestHead};
use percent_encoding::percent_decode_str;

/// A generation request: its protocol and, for Gemini and Bedrock, the model from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ingress {
    pub(crate) protocol: Protocol,
    /// The model named in the path, percent-decoded (`models/` prefix removed).
    pub(crate) path_model: Option<String>,
    /// Whether the path itself asks for a stream (Gemini, Bedrock).
    pub(crate) path_stream: bool,
}

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Generate(Ingress),
    ListModels(Protocol),
    Health,
    /// `GET /metrics` (served when `telemetry.metrics_on_data_listener` is set).
    Metrics,
    /// A known path with the wrong method; the methods it allows.
    WrongMethod(Protocol, &'static str),
    Unknown(Protocol),
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn gemini(path: &str) -> Option<(String, bool)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, verb) = rest.rsplit_once(':')?;
    let stream = match verb {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty()).then(|| (decode(model), stream))
}

fn bedrock(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, verb) = rest.rsplit_once('/')?;
    let stream = match verb {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    (!model.is_empty()).then(|| (decode(model), stream))
}

/// The protocol a path belongs to, for error shapes (OpenAI when it is none of them).
pub(crate) fn protocol_of(head: &RequestHead) -> Protocol {
    match route(head) {
        Route::Generate(i) => i.protocol,
        Route::ListModels(p) | Route::WrongMethod(p, _) | Route::Unknown(p) => p,
        Route::Health | Route::Metrics => Protocol::OpenAiChat,
    }
}

/// Classifies a request by method and path.
pub(crate) fn route(head: &RequestHead) -> Route {
    let path = head.path();
    let post = head.method == Method::Post;
    let get = matches!(head.method, Method::Get | Method::Head);
    let fixed = match path {
        "/v1/chat/completions" => Some(Protocol::OpenAiChat),
        "/v1/responses" => Some(Protocol::OpenAiResponses),
        "/v1/messages" => Some(Protocol::Anthropic),
        "/v2/chat" => Some(Protocol::Cohere),
        _ => None,
    };
    if let Some(protocol) = fixed {
        return if post {
            Route::Generate(Ingress {
                protocol,
                path_model: None,
                path_stream: false,
            })
        } else {
            Route::WrongMethod(protocol, "POST")
        };
    }
    for (protocol, found) in [
        (Protocol::Gemini, gemini(path)),
        (Protocol::Bedrock, bedrock(path)),
    ] {
        if let Some((model, stream)) = found {
            return if post {
                Route::Generate(Ingress {
                    protocol,
                    path_model: Some(model),
                    path_stream: stream,
                })
            } else {
                Route::WrongMethod(protocol, "POST")
            };
        }
    }
    if path == "/metrics" {
        return if get {
            Route::Metrics
        } else {
            Route::WrongMethod(Protocol::OpenAiChat, "GET")
        };
    }
    let list = match path {
        "/v1/models" if head.header("anthropic-version").is_some() => Some(Protocol::Anthropic),
        "/v1/models" => Some(Protocol::OpenAiChat),
        "/v1beta/models" => Some(Protocol::Gemini),
        "/healthz" => None,
        _ => {
            let p = if path.starts_with("/v1beta/") {
                Protocol::Gemini
            } else if path.starts_with("/model/") {
                Protocol::Bedrock
            } else if path.starts_with("/v2/") {
                Protocol::Cohere
            } else {
                Protocol::OpenAiChat
            };
            return Route::Unknown(p);
        }
    };
    match (list, get) {
        (Some(p), true) => Route::ListModels(p),
        (None, true) => Route::Health,
        (p, false) => Route::WrongMethod(p.unwrap_or(Protocol::OpenAiChat), "GET, HEAD"),
    }
}

/// The key a client sent, read from its protocol's carriers.
pub(crate) fn client_key<'h>(
    head: &'h RequestHead,
    protocol: Protocol,
) -> Result<Option<&'h str>, &'static str> {
    let text = |v: &'h [u8]| std::str::from_utf8(v).ok().map(str::trim);
    let bearer = || {
        head.header("authorization")
            .and_then(text)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, s)| s.trim())
    };
    match protocol {
        Protocol::Anthropic => Ok(head.header("x-api-key").and_then(text).or_else(bearer)),
        Protocol::Gemini => Ok(head.header("x-goog-api-key").and_then(text).or_else(|| {
            head.target
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("key=")))
        })),
        Protocol::Bedrock => {
            let sigv4 = head
                .header("authorization")
                .is_some_and(|v| v.starts_with(b"AWS4-"));
            if sigv4 {
                return Err(
                    "busbar authenticates Bedrock clients by bearer key, not SigV4: give the SDK your busbar key as a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK)",
                );
            }
            Ok(bearer())
        }
        _ => Ok(bearer()),
    }
}

/// How a client of `protocol` is told to send its key.
pub(crate) fn key_hint(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Anthropic => "Send your busbar key as `x-api-key: <key>`.",
        Protocol::Gemini => "Send your busbar key as `x-goog-api-key: <key>`.",
        Protocol::Bedrock => {
            "Send your busbar key as a Bedrock API key (`Authorization: Bearer <key>`)."
        }
        _ => "Send your busbar key as `Authorization: Bearer <key>`.",
    }
}
