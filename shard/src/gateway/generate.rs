//! A generation request, any protocol in, any protocol out.
//!
//! ```text
//!   model (body, or URL for Gemini/Bedrock) -> model | pool -> candidates, in policy order
//!   each candidate:
//!     built-in mock ............ answered in-process
//!     same protocol ............ passthrough: client bytes up (model spliced), provider bytes back
//!                                 (a stream read on the side for its usage and its end)
//!     other protocol ........... translate: request IR -> egress bytes; whole response read,
//!                                 response IR -> caller's bytes; losses in x-busbar-dropped;
//!                                 a stream goes through the pair's transcoder
//!   provider error status ....... its message, re-rendered in the caller's error shape
//! ```
//!
//! Candidates are tried in order while the client has seen nothing: a member that cannot be
//! reached, lacks credentials, refuses a strict translation, answers busy / rate limited /
//! broken (408, 429, 5xx), or whose stream fails before its first content event is replaced by
//! the next one. The last member's outcome is the answer.

use super::ingress::Ingress;
use super::transcode::Streamed;
use super::{egress, mock, relay, transcode};
use crate::io::write_all;
use crate::server::respond::{ApiError, response};
use crate::shard::Shard;
use crate::upstream::UpstreamError;
use busbar_codec::errors::{ErrorKind, read_provider_error};
use busbar_codec::http1::RequestHead;
use busbar_codec::ir::{LossReport, Request, caller_id};
use busbar_codec::openai::{ask_for_usage, scan_request, splice_model};
use busbar_codec::stream::{StreamWriter, Transcoder, events_of};
use busbar_codec::{Protocol, translate};
use busbar_core::config::{Endpoint, Model};
use busbar_core::route::Target;
use monoio::net::TcpStream;
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest provider response read whole for translation.
const MAX_TRANSLATED_BODY: usize = 64 * 1024 * 1024;
/// Largest provider error body read.
const MAX_ERROR_BODY: usize = 1024 * 1024;
/// `max_tokens` for a protocol that requires it when neither the client nor the model's config
/// gives one.
const FALLBACK_MAX_TOKENS: u64 = 4096;

/// What the client asked for, as far as routing needs it.
struct Ask {
    model: String,
    /// Where `model` sits in the body, when it is there (to splice on passthrough).
    span: Option<std::ops::Range<usize>>,
    stream: bool,
    /// An OpenAI client asked for the usage chunk.
    include_usage: bool,
}

fn ask(ingress: &Ingress, body: &[u8]) -> Result<Ask, ApiError> {
    let bad = |m: String| ApiError::new(400, ErrorKind::InvalidRequest, m);
    match &ingress.path_model {
        Some(model) => {
            // The body must still be a JSON object; its `stream` flag does not exist here.
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                bad(format!(
                    "could not parse the JSON body of your request: {e}"
                ))
            })?;
            if !v.is_object() {
                return Err(bad("the request body must be a JSON object".into()));
            }
            Ok(Ask {
                model: model.clone(),
                span: None,
                stream: ingress.path_stream,
                include_usage: false,
            })
        }
        None => {
            let s = scan_request(body).map_err(|e| bad(e.to_string()).param("model"))?;
            Ok(Ask {
                model: s.model,
                span: Some(s.model_span),
                stream: s.stream,
                include_usage: s.include_usage,
            })
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) async fn generate(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
    ingress: Ingress,
) -> bool {
    let p_in = ingress.protocol;
    let answer = run(shard, stream, head, &body, keep_alive, &ingress).await;
    match answer {
        Outcome::Written(keep) => keep,
        Outcome::Bytes(bytes) => write_all(stream, bytes).await.0.is_ok() && keep_alive,
        Outcome::Error(e) => write_all(stream, e.for_protocol(p_in).render(keep_alive))
            .await
            .0
            .is_ok(),
    }
}

enum Outcome {
    /// The response went out already (streamed); whether the connection can go on.
    Written(bool),
    /// A whole response to write.
    Bytes(Vec<u8>),
    Error(ApiError),
}

async fn run(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: &RequestHead,
    body: &[u8],
    keep_alive: bool,
    ingress: &Ingress,
) -> Outcome {
    let p_in = ingress.protocol;
    let ask = match ask(ingress, body) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    let config = &shard.config;
    let (candidates, pool_strict): (Vec<usize>, bool) = match shard.names.resolve(&ask.model) {
        Some(Target::Model(m)) => (vec![m], false),
        Some(Target::Pool(p)) => {
            let order = shard.rotations[p].borrow_mut().order();
            (
                order
                    .into_iter()
                    .map(|i| config.pools[p].members[i].model)
                    .collect(),
                config.pools[p].strict,
            )
        }
        None => {
            return Outcome::Error(
                ApiError::new(
                    404,
                    ErrorKind::NotFound,
                    format!(
                        "The model `{}` does not exist or you do not have access to it.",
                        ask.model
                    ),
                )
                .param("model")
                .code("model_not_found"),
            );
        }
    };

    // The request in IR form, parsed once, when some candidate needs a translation.
    let mut ir: Option<Request> = None;
    let mut last: Option<ApiError> = None;
    let count = candidates.len();
    for (n, m) in candidates.into_iter().enumerate() {
        // Whether another member could still take the request if this one fails before the
        // client has seen a byte.
        let more = n + 1 < count;
        let model = &config.models[m];
        let provider = &config.providers[model.provider];
        let same = provider.protocol == p_in;
        if let Endpoint::Mock(settings) = &provider.endpoint {
            if p_in == Protocol::OpenAiChat {
                let body = splice(body, &ask, model);
                return Outcome::Written(
                    mock::serve(shard, stream, head, settings, &body, keep_alive).await,
                );
            }
        } else if let Some(why) = egress::missing_credentials(provider) {
            last = Some(ApiError::new(503, ErrorKind::Upstream, why));
            continue;
        }
        let query = head.target.split_once('?').map(|(_, q)| q);
        let mock_endpoint = matches!(provider.endpoint, Endpoint::Mock(_));
        let down = |stream| transcode::Downstream {
            stream,
            minor: head.minor_version,
            keep_alive,
        };
        if same && !mock_endpoint {
            let mut body = splice(body, &ask, model);
            // OpenAI streams usage only when asked: busbar always asks, to know what a stream
            // cost, and hides the extra chunk from a client that did not ask.
            let hide_usage = p_in == Protocol::OpenAiChat && ask.stream && !ask.include_usage;
            if hide_usage {
                let spliced = scan_request(&body).map(|h| ask_for_usage(&body, &h));
                if let Ok(b) = spliced {
                    body = Cow::Owned(b);
                }
            }
            let path = egress::path(provider, &model.upstream, ask.stream, query);
            let forward = egress::Forward {
                headers: &head.headers,
                same_protocol: true,
            };
            let request = match egress::build(shard, model.provider, &path, Some(forward), &body) {
                Ok(r) => r,
                Err(e) => return Outcome::Error(e),
            };
            let resp = match shard.upstream.exchange(model.provider, request).await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::debug!(shard = shard.id, provider = %provider.name, "upstream failed: {e}");
                    last = Some(upstream_error(&e));
                    continue;
                }
            };
            let status = resp.head.status;
            if more && retry_elsewhere(status) {
                last = Some(refused(shard, model.provider, resp).await);
                continue;
            }
            if ask.stream && (200..300).contains(&status) {
                let t = Transcoder::passthrough(
                    p_in,
                    p_in == Protocol::Gemini && !gemini_sse(head),
                    hide_usage,
                );
                match transcode::stream(shard, down(stream), model.provider, resp, t, &[]).await {
                    Streamed::Done(keep) => return Outcome::Written(keep),
                    Streamed::Failed(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            return Outcome::Written(
                relay::relay(
                    shard,
                    stream,
                    model.provider,
                    resp,
                    head.minor_version,
                    keep_alive,
                )
                .await,
            );
        }

        // Translation (or the in-process mock for a non-OpenAI client).
        if ir.is_none() {
            let path_model = ingress.path_model.as_deref().unwrap_or_default();
            match translate::parse_request(p_in, body, path_model) {
                Ok(r) => ir = Some(r),
                Err(e) => {
                    return Outcome::Error(ApiError::new(
                        400,
                        ErrorKind::InvalidRequest,
                        e.to_string(),
                    ));
                }
            }
        }
        let Some(ir_req) = ir.as_ref() else {
            continue;
        };
        let mut req = ir_req.clone();
        req.model = model.upstream.clone();
        let mut loss = LossReport::default();
        let created = now_secs();
        if mock_endpoint {
            let tokens = match &provider.endpoint {
                Endpoint::Mock(s) => s.tokens,
                Endpoint::Http { .. } => 16,
            };
            let mut r = busbar_codec::mock::reply(&req, tokens);
            r.id = format!("busbar{}x{}", shard.id, shard.next_seq());
            if ask.stream {
                let mut w = StreamWriter::new(p_in, created, req.stream_usage);
                if p_in == Protocol::Gemini && !gemini_sse(head) {
                    w = w.gemini_json_array();
                }
                let mut bytes = Vec::new();
                for e in events_of(&r) {
                    w.event(&e, &mut bytes);
                }
                return Outcome::Bytes(response(200, w.content_type(), &bytes, keep_alive, &[]));
            }
            return Outcome::Bytes(finish(shard, p_in, r, created, loss, keep_alive));
        }
        let transcoder = ask.stream.then(|| {
            // The provider streams too, with its usage at the end (OpenAI sends it only when
            // asked; the client's own choice is kept by the transcoder's writer).
            req.stream = true;
            req.stream_usage = true;
            let t = Transcoder::new(provider.protocol, p_in, created, ir_req.stream_usage);
            if p_in == Protocol::Gemini && !gemini_sse(head) {
                t.gemini_json_array()
            } else {
                t
            }
        });
        let egress_body = translate::write_request(
            provider.protocol,
            &req,
            model.max_output_tokens.unwrap_or(FALLBACK_MAX_TOKENS),
            &mut loss,
        );
        if (model.strict || pool_strict) && !loss.is_empty() {
            last = Some(
                ApiError::new(
                    400,
                    ErrorKind::InvalidRequest,
                    format!(
                        "`{}` is strict, and its {} provider cannot carry these fields of your request: {}",
                        model.name,
                        provider.protocol.as_str(),
                        loss.header_value()
                    ),
                )
                .code("lossy_translation"),
            );
            continue;
        }
        // A streamed Gemini upstream is asked for SSE.
        let stream_query =
            (ask.stream && provider.protocol == Protocol::Gemini).then_some("alt=sse");
        let path = egress::path(provider, &model.upstream, ask.stream, stream_query);
        let forward = egress::Forward {
            headers: &head.headers,
            same_protocol: false,
        };
        let request = match egress::build(shard, model.provider, &path, Some(forward), &egress_body)
        {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
        let resp = match shard.upstream.exchange(model.provider, request).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(shard = shard.id, provider = %provider.name, "upstream failed: {e}");
                last = Some(upstream_error(&e));
                continue;
            }
        };
        if !(200..300).contains(&resp.head.status) {
            let e = refused(shard, model.provider, resp).await;
            if more && retry_elsewhere(e.status) {
                last = Some(e);
                continue;
            }
            return Outcome::Error(e);
        }
        if let Some(t) = transcoder {
            let mut extra: Vec<(&str, String)> = Vec::new();
            if !loss.is_empty() {
                extra.push(("x-busbar-dropped", dropped_header(&loss)));
            }
            match transcode::stream(shard, down(stream), model.provider, resp, t, &extra).await {
                Streamed::Done(keep) => return Outcome::Written(keep),
                Streamed::Failed(e) => {
                    last = Some(e);
                    continue;
                }
            }
        }
        let (rhead, rbody) = match shard
            .upstream
            .read_to_end(model.provider, resp, MAX_TRANSLATED_BODY)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                last = Some(ApiError::new(502, ErrorKind::Upstream, e));
                continue;
            }
        };
        let mut r = match translate::parse_response(provider.protocol, &rbody) {
            Ok(r) => r,
            Err(e) => {
                last = Some(ApiError::new(
                    502,
                    ErrorKind::Upstream,
                    format!(
                        "provider `{}` sent a {} response busbar could not read: {e}",
                        provider.name,
                        provider.protocol.as_str()
                    ),
                ));
                continue;
            }
        };
        if r.id.is_empty() {
            r.id = rhead
                .header("x-amzn-requestid")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map_or_else(
                    || format!("busbar{}x{}", shard.id, shard.next_seq()),
                    str::to_string,
                );
        }
        return Outcome::Bytes(finish(shard, p_in, r, created, loss, keep_alive));
    }
    Outcome::Error(last.unwrap_or_else(|| {
        ApiError::new(
            503,
            ErrorKind::Upstream,
            "no provider could take the request",
        )
    }))
}

/// Whether a provider's refusal may go better on another member: it was busy, rate limited or
/// broken, not refusing the request itself. (The full classification, with breakers, is the
/// failover work in `core`.)
fn retry_elsewhere(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// A provider's error response, read whole (it is small), re-rendered as the caller's error:
/// its status, message and `Retry-After` kept, its error type in `x-busbar-upstream-error`.
async fn refused(shard: &Shard, provider: usize, resp: crate::upstream::Response) -> ApiError {
    let status = resp.head.status;
    let (rhead, rbody) = match shard
        .upstream
        .read_to_end(provider, resp, MAX_ERROR_BODY)
        .await
    {
        Ok(x) => x,
        Err(e) => return ApiError::new(502, ErrorKind::Upstream, e),
    };
    let amzn = rhead
        .header("x-amzn-errortype")
        .and_then(|v| std::str::from_utf8(v).ok());
    let pe = read_provider_error(amzn, &rbody);
    let mut e = ApiError::new(status, ErrorKind::from_status(status), pe.message);
    for name in ["retry-after", "retry-after-ms"] {
        if let Some(v) = rhead.header(name).and_then(|v| std::str::from_utf8(v).ok()) {
            e = e.header(name, v.trim().to_string());
        }
    }
    if let Some(code) = pe.code {
        e = e.header("x-busbar-upstream-error", header_safe(&code, 200));
    }
    e
}

/// The caller's response: the IR written in its protocol, with the losses of both directions.
fn finish(
    shard: &Shard,
    p_in: Protocol,
    mut r: busbar_codec::ir::Response,
    created: u64,
    mut loss: LossReport,
    keep_alive: bool,
) -> Vec<u8> {
    let prefix = translate::id_prefix(p_in);
    if !prefix.is_empty() {
        r.id = caller_id(prefix, &r.id);
    }
    let body = translate::write_response(p_in, &r, created, &mut loss);
    let mut extra: Vec<(&str, String)> = Vec::new();
    if !loss.is_empty() {
        extra.push(("x-busbar-dropped", dropped_header(&loss)));
    }
    if p_in == Protocol::Bedrock {
        extra.push((
            "x-amzn-requestid",
            format!("busbar-{}-{}", shard.id, shard.next_seq()),
        ));
    }
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    response(200, "application/json", &body, keep_alive, &extra)
}

/// Whether a Gemini client asked for SSE (`alt=sse`) rather than the streamed JSON array.
fn gemini_sse(head: &RequestHead) -> bool {
    head.target
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "alt=sse"))
}

/// Most bytes of `x-busbar-dropped`; a longer list ends with `... (+N more)`.
const MAX_DROPPED_HEADER: usize = 4096;

fn dropped_header(loss: &LossReport) -> String {
    let mut out = String::new();
    for (i, d) in loss.dropped.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if out.len() + sep.len() + d.len() > MAX_DROPPED_HEADER {
            out.push_str(&format!(", ... (+{} more)", loss.dropped.len() - i));
            break;
        }
        out.push_str(sep);
        out.push_str(&header_safe(d, MAX_DROPPED_HEADER));
    }
    out
}

/// A provider-chosen string made safe for a header value: visible ASCII and spaces only (no CR
/// or LF can split the response), at most `max` bytes.
pub(super) fn header_safe(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

fn splice<'a>(body: &'a [u8], ask: &Ask, model: &Model) -> Cow<'a, [u8]> {
    match &ask.span {
        Some(span) if model.upstream != ask.model => {
            Cow::Owned(splice_model(body, span.clone(), &model.upstream))
        }
        _ => Cow::Borrowed(body),
    }
}

fn upstream_error(e: &UpstreamError) -> ApiError {
    let status = if e.is_timeout() { 504 } else { 502 };
    ApiError::new(status, ErrorKind::Upstream, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_from_provider_strings_cannot_split_a_response() {
        assert_eq!(
            header_safe("rate_limit\r\nset-cookie: x=1", 200),
            "rate_limitset-cookie: x=1"
        );
        assert_eq!(header_safe("é ok", 200), " ok");
        let mut loss = LossReport::default();
        for i in 0..2000 {
            loss.drop_field(format!("messages[{i}].content[0]"));
        }
        let h = dropped_header(&loss);
        assert!(h.len() <= MAX_DROPPED_HEADER + 32, "{}", h.len());
        assert!(h.starts_with("messages[0].content[0], messages[1].content[0]"));
        assert!(h.ends_with(" more)"), "{h}");
    }
}
