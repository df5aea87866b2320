//! One entry point per direction over the six codecs, chosen by [`Protocol`].
//!
//! ```text
//!   ingress body --parse_request(ingress)--> IR --write_request(egress)--> egress body
//!   egress body  --parse_response(egress)--> IR --write_response(ingress)--> ingress body
//! ```
//!
//! Gemini and Bedrock carry the model in the URL, not the body: parsing takes it from the
//! caller, and writing leaves it to the caller to put in the URL.

use crate::ir::{LossReport, Request, Response};
use crate::openai::RequestError;
use crate::{Protocol, anthropic, bedrock, cohere, gemini, openai, responses};

/// Parses a request body of `protocol`. `path_model` is the model named in the URL (Gemini,
/// Bedrock), already percent-decoded.
pub fn parse_request(
    protocol: Protocol,
    body: &[u8],
    path_model: &str,
) -> Result<Request, RequestError> {
    match protocol {
        Protocol::OpenAiChat => openai::parse_request(body),
        Protocol::OpenAiResponses => responses::parse_request(body),
        Protocol::Anthropic => anthropic::parse_request(body),
        Protocol::Gemini => gemini::parse_request(body, path_model),
        Protocol::Cohere => cohere::parse_request(body),
        Protocol::Bedrock => bedrock::parse_request(body, path_model),
    }
}

/// Writes `req` as a request body of `protocol`. `default_max_tokens` fills a required output
/// cap (Anthropic) when the IR has none.
pub fn write_request(
    protocol: Protocol,
    req: &Request,
    default_max_tokens: u64,
    loss: &mut LossReport,
) -> Vec<u8> {
    match protocol {
        Protocol::OpenAiChat => openai::write_request(req, loss),
        Protocol::OpenAiResponses => responses::write_request(req, loss),
        Protocol::Anthropic => anthropic::write_request(req, default_max_tokens, loss),
        Protocol::Gemini => gemini::write_request(req, loss),
        Protocol::Cohere => cohere::write_request(req, loss),
        Protocol::Bedrock => bedrock::write_request(req, loss),
    }
}

/// Parses a success response body of `protocol`.
pub fn parse_response(protocol: Protocol, body: &[u8]) -> Result<Response, String> {
    match protocol {
        Protocol::OpenAiChat => openai::parse_response(body),
        Protocol::OpenAiResponses => responses::parse_response(body),
        Protocol::Anthropic => anthropic::parse_response(body),
        Protocol::Gemini => gemini::parse_response(body),
        Protocol::Cohere => cohere::parse_response(body),
        Protocol::Bedrock => bedrock::parse_response(body),
    }
}

/// Writes `r` as a response body of `protocol`; `created` (Unix seconds) is used where the
/// protocol dates its responses.
pub fn write_response(
    protocol: Protocol,
    r: &Response,
    created: u64,
    loss: &mut LossReport,
) -> Vec<u8> {
    match protocol {
        Protocol::OpenAiChat => openai::write_response(r, created, loss),
        Protocol::OpenAiResponses => responses::write_response(r, created, loss),
        Protocol::Anthropic => anthropic::write_response(r, loss),
        Protocol::Gemini => gemini::write_response(r, loss),
        Protocol::Cohere => cohere::write_response(r, loss),
        Protocol::Bedrock => bedrock::write_response(r, loss),
    }
}

/// The prefix of response ids in `protocol`'s format (empty: the protocol has no id).
pub fn id_prefix(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAiChat => "chatcmpl-",
        Protocol::OpenAiResponses => "resp_",
        Protocol::Anthropic => "msg_",
        Protocol::Gemini | Protocol::Cohere | Protocol::Bedrock => "",
    }
}
