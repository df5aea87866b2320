//! `POST /v1/chat/completions` to OpenAI-protocol providers: the same-protocol path.
//!
//! The body goes upstream as the client sent it; only the model name is spliced in place when
//! the provider knows the model by another name. Candidates are tried in order while nothing
//! has been sent (connect failures, missing provider key); once a provider may have received
//! the request, its outcome is the answer.

use super::{mock, relay};
use crate::io::write_all;
use crate::server::respond::ApiError;
use crate::shard::Shard;
use crate::upstream::UpstreamError;
use busbar_codec::http1::{RequestHead, write_forwardable};
use busbar_codec::openai::{ErrorKind, scan_request, splice_model};
use busbar_core::config::Endpoint;
use busbar_core::route::Target;
use monoio::net::TcpStream;
use std::borrow::Cow;
use std::rc::Rc;

/// Client headers never forwarded: framing and hop-by-hop fields, and the client's own
/// credentials and account selectors (busbar injects the provider's). `accept-encoding` is
/// dropped so provider bodies arrive uncompressed and usage can be read on the side.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "accept-encoding",
    "cookie",
];

pub(super) async fn chat(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
) -> bool {
    let fail = |e: ApiError| e.render(keep_alive);
    let scanned = match scan_request(&body) {
        Ok(s) => s,
        Err(e) => {
            return write_all(
                stream,
                fail(ApiError::new(400, ErrorKind::InvalidRequest, e.to_string())),
            )
            .await
            .0
            .is_ok();
        }
    };
    let config = &shard.config;
    let candidates: Vec<usize> = match shard.names.resolve(&scanned.model) {
        Some(Target::Model(m)) => vec![m],
        Some(Target::Pool(p)) => {
            let order = shard.rotations[p].borrow_mut().order();
            order
                .into_iter()
                .map(|i| config.pools[p].members[i].model)
                .collect()
        }
        None => {
            let e = ApiError::new(
                404,
                ErrorKind::NotFound,
                format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    scanned.model
                ),
            )
            .param("model")
            .code("model_not_found");
            return write_all(stream, fail(e)).await.0.is_ok();
        }
    };

    let mut last: Option<ApiError> = None;
    for m in candidates {
        let model = &config.models[m];
        let provider = &config.providers[model.provider];
        let body: Cow<'_, [u8]> = if model.upstream == scanned.model {
            Cow::Borrowed(&body)
        } else {
            Cow::Owned(splice_model(
                &body,
                scanned.model_span.clone(),
                &model.upstream,
            ))
        };
        let path_prefix = match &provider.endpoint {
            Endpoint::Mock(settings) => {
                return mock::serve(shard, stream, head, settings, &body, keep_alive).await;
            }
            Endpoint::Http { path_prefix, .. } => path_prefix,
        };
        if provider.api_key_env.is_some() && provider.api_key.is_none() {
            last = Some(ApiError::new(
                503,
                ErrorKind::Upstream,
                format!(
                    "provider `{}` has no API key: set {} in busbar's environment",
                    provider.name,
                    provider.api_key_env.as_deref().unwrap_or_default()
                ),
            ));
            continue;
        }
        let request = build_request(
            shard,
            model.provider,
            path_prefix,
            head,
            provider.api_key.as_deref(),
            &body,
        );
        match shard.upstream.exchange(model.provider, request).await {
            Ok(resp) => {
                return relay::relay(
                    shard,
                    stream,
                    model.provider,
                    resp,
                    head.minor_version,
                    keep_alive,
                )
                .await;
            }
            Err(e) => {
                tracing::debug!(shard = shard.id, provider = %provider.name, "upstream failed: {e}");
                let sent = e.request_sent();
                last = Some(upstream_error(&e));
                if sent {
                    break;
                }
            }
        }
    }
    let e = last.unwrap_or_else(|| {
        ApiError::new(
            503,
            ErrorKind::Upstream,
            "no provider could take the request",
        )
    });
    write_all(stream, fail(e)).await.0.is_ok()
}

fn upstream_error(e: &UpstreamError) -> ApiError {
    let status = if e.is_timeout() { 504 } else { 502 };
    ApiError::new(status, ErrorKind::Upstream, e.to_string())
}

fn build_request(
    shard: &Shard,
    provider: usize,
    path_prefix: &str,
    head: &RequestHead,
    key: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let query = head.target.split_once('?').map(|(_, q)| q);
    let mut out = shard.upstream.buffers.take();
    out.reserve(512 + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path_prefix.as_bytes());
    out.extend_from_slice(b"/chat/completions");
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(shard.upstream.host_header(provider).as_bytes());
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    if let Some(k) = key {
        out.extend_from_slice(b"authorization: Bearer ");
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Field names keep the client's case: compare without it.
    write_forwardable(&mut out, &head.headers, |name| {
        NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name))
    });
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
