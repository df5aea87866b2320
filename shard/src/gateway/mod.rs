//! The gateway: what a request means and who answers it.
//!
//! ```text
//!   GET  /healthz              -> 200 {"status":"ok"}          (no key needed)
//!   GET  /v1/models            -> key -> models and pools this gateway serves
//!   POST /v1/chat/completions  -> key -> scan body -> resolve model/pool -> candidates
//!                                   -> mock lane (in-process) | upstream exchange -> relay
//! ```
//!
//! Every refusal is rendered in OpenAI's error shape with its status.

mod mock;
mod openai;
mod relay;

use crate::io::write_all;
use crate::server::respond::{ApiError, response};
use crate::shard::Shard;
use busbar_codec::http1::{Method, RequestHead};
use busbar_codec::openai::{ErrorKind, ModelEntry, models_body};
use monoio::net::TcpStream;
use std::rc::Rc;

/// Answers one request; returns whether the connection can carry another.
pub(crate) async fn handle(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
) -> bool {
    let path = head.path();
    let result = match (&head.method, path) {
        (Method::Post, "/v1/chat/completions") => match authenticate(shard, head) {
            Ok(_) => return openai::chat(shard, stream, head, body, keep_alive).await,
            Err(e) => Err(e),
        },
        (Method::Get | Method::Head, "/v1/models") => authenticate(shard, head).map(|_| list_models(shard, keep_alive)),
        (Method::Get | Method::Head, "/healthz") => {
            Ok(response(200, "application/json", br#"{"status":"ok"}"#, keep_alive, &[]))
        }
        (m, "/v1/chat/completions" | "/v1/models" | "/healthz") => Err(ApiError::new(
            405,
            ErrorKind::InvalidRequest,
            format!("method {} is not allowed on {path}", m.as_str()),
        )
        .allow(if path == "/v1/chat/completions" { "POST" } else { "GET, HEAD" })),
        (m, _) => Err(ApiError::new(
            404,
            ErrorKind::NotFound,
            format!(
                "Unknown request URL: {} {path}. busbar serves POST /v1/chat/completions, GET /v1/models and GET /healthz.",
                m.as_str()
            ),
        )
        .code("unknown_url")),
    };
    let mut bytes = match result {
        Ok(b) => b,
        Err(e) => e.render(keep_alive),
    };
    if head.method == Method::Head {
        // The same head as for GET, without the body.
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            bytes.truncate(end + 4);
        }
    }
    write_all(stream, bytes).await.0.is_ok()
}

/// Checks the client key. With no keys configured the gateway is open (loopback only, or by
/// explicit `allow_unauthenticated`). Returns the key's index.
fn authenticate(shard: &Shard, head: &RequestHead) -> Result<Option<usize>, ApiError> {
    if !shard.keys.is_enabled() {
        return Ok(None);
    }
    let Some(value) = head.header("authorization") else {
        return Err(ApiError::new(
            401,
            ErrorKind::Authentication,
            "You didn't provide an API key. Send your busbar key as `Authorization: Bearer <key>`.",
        )
        .code("missing_api_key"));
    };
    let secret = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, s)| s.trim());
    match secret.and_then(|s| shard.keys.lookup(s)) {
        Some(i) => Ok(Some(i)),
        None => Err(ApiError::new(
            401,
            ErrorKind::Authentication,
            "Incorrect API key provided: busbar does not know this key.",
        )
        .code("invalid_api_key")),
    }
}

fn list_models(shard: &Shard, keep_alive: bool) -> Vec<u8> {
    let c = &shard.config;
    let mut entries: Vec<ModelEntry<'_>> = c
        .models
        .iter()
        .map(|m| ModelEntry {
            id: &m.name,
            owned_by: &c.providers[m.provider].name,
        })
        .collect();
    entries.extend(c.pools.iter().map(|p| ModelEntry {
        id: &p.name,
        owned_by: "busbar",
    }));
    response(
        200,
        "application/json",
        &models_body(&entries),
        keep_alive,
        &[],
    )
}
