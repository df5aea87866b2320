//! The gateway: what a request means and who answers it.
//!
//! ```text
//!   GET  /healthz                   -> 200 {"status":"ok"}, 503 when no lane can serve (no key needed)
//!   GET  /v1/models, /v1beta/models -> key -> models and pools, in the caller's protocol's shape
//!   POST a generation route         -> ingress protocol (ingress.rs) -> key in its carrier
//!                                      -> generate.rs: passthrough | translate | mock
//! ```
//!
//! Every refusal is rendered in the caller's protocol's error shape with its status.

mod egress;
mod generate;
pub(crate) mod ingress;
mod mock;
mod relay;
mod route;
mod transcode;

use crate::server::client::ClientIo;
use crate::server::respond::{ApiError, response};
use crate::shard::Shard;
use crate::telemetry::Trail;
use busbar_codec::Protocol;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::{Method, RequestHead};
use busbar_codec::openai::{ModelEntry, list_body};
use ingress::Route;
use std::rc::Rc;

/// Answers one request; returns whether the connection can carry another. Every answer
/// carries `x-request-id`; every request is counted and, when on, traced and logged.
pub(crate) async fn handle(
    shard: &Rc<Shard>,
    stream: &mut ClientIo,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
) -> bool {
    let mut trail = shard.telemetry.begin(head);
    stream.begin_answer(trail.request_id.clone());
    let keep = answer(shard, stream, head, body, keep_alive, &mut trail).await;
    trail.first_byte = stream.first_byte();
    trail.end = Some(monoio::time::Instant::now());
    shard.telemetry.finish(shard.id, trail);
    keep
}

async fn answer(
    shard: &Rc<Shard>,
    stream: &mut ClientIo,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
    trail: &mut Trail,
) -> bool {
    let path = head.path();
    let result = match ingress::route(head) {
        Route::Generate(ing) => match authenticate(shard, head, ing.protocol) {
            Ok(caller) => {
                return generate::generate(
                    shard, stream, head, body, keep_alive, ing, caller, trail,
                )
                .await;
            }
            Err(e) => {
                trail.ingress = Some(ing.protocol);
                Err(e.for_protocol(ing.protocol))
            }
        },
        Route::ListModels(p) => authenticate(shard, head, p)
            .map(|caller| list_models(shard, p, keep_alive, &caller))
            .map_err(|e| e.for_protocol(p)),
        Route::Health => Ok(health(shard, keep_alive)),
        Route::Metrics if shard.routes().config.telemetry.metrics_on_data_listener => {
            match authenticate(shard, head, Protocol::OpenAiChat) {
                Ok(_) => {
                    let reports = shard.gather().await;
                    let text = crate::telemetry::exposition::render(
                        &shard.routes().config,
                        &reports,
                        crate::telemetry::exposition::Outside {
                            control_full: crate::control::CHANNEL_FULL
                                .load(std::sync::atomic::Ordering::Relaxed),
                            ledger_full: None,
                            fleet: None,
                        },
                    );
                    Ok(response(
                        200,
                        crate::telemetry::exposition::CONTENT_TYPE,
                        text.as_bytes(),
                        keep_alive,
                        &[],
                    ))
                }
                Err(e) => Err(e),
            }
        }
        Route::Metrics => Err(ApiError::new(
            404,
            ErrorKind::NotFound,
            "metrics are served on the admin listener; set telemetry.metrics_on_data_listener = true to serve GET /metrics here too",
        )
        .code("unknown_url")),
        Route::WrongMethod(p, allow) => Err(ApiError::new(
            405,
            ErrorKind::InvalidRequest,
            format!("method {} is not allowed on {path}", head.method.as_str()),
        )
        .allow(allow)
        .for_protocol(p)),
        Route::Unknown(p) => Err(ApiError::new(
            404,
            ErrorKind::NotFound,
            format!(
                "Unknown request URL: {} {path}. busbar serves POST /v1/chat/completions, /v1/responses, /v1/messages, /v1beta/models/{{model}}:generateContent, /v2/chat, /model/{{modelId}}/converse; GET /v1/models, /v1beta/models and /healthz.",
                head.method.as_str()
            ),
        )
        .code("unknown_url")
        .for_protocol(p)),
    };
    let mut bytes = match result {
        Ok(b) => b,
        Err(e) => {
            trail.error = Some(error_type(e.status));
            e.render(keep_alive)
        }
    };
    trail.status = status_of(&bytes);
    if head.method == Method::Head {
        // The same head as for GET, without the body.
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            bytes.truncate(end + 4);
        }
    }
    stream.send(bytes).await.0.is_ok()
}

/// The status of a whole HTTP/1.1 response (0 when it cannot be read).
pub(crate) fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// `error.type` of an answer busbar refused with `status`.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "unauthorized",
        402 => "budget_exhausted",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        413 => "too_large",
        429 => "rate_limited",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "gateway_timeout",
        s if s >= 500 => "server_error",
        _ => "client_error",
    }
}

/// Who is calling.
pub(crate) enum Caller {
    /// No keys exist: the gateway is open (loopback only, or by explicit
    /// `allow_unauthenticated`).
    Open,
    /// A key from the config's static list (not governed), by its name.
    Static(Rc<str>),
    /// A virtual key from the admin API: its allowance, caps and limits apply.
    Virtual(Rc<busbar_core::govern::KeyRecord>),
}

/// Checks the client key in `protocol`'s carrier, against the config's keys and then the
/// virtual keys. Once either exists, every request needs one.
fn authenticate(shard: &Shard, head: &RequestHead, protocol: Protocol) -> Result<Caller, ApiError> {
    let routes = shard.routes();
    if !routes.keys.is_enabled() && !shard.gate.has_keys() {
        return Ok(Caller::Open);
    }
    let secret = match ingress::client_key(head, protocol) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(ApiError::new(
                401,
                ErrorKind::Authentication,
                format!(
                    "You didn't provide an API key. {}",
                    ingress::key_hint(protocol)
                ),
            )
            .code("missing_api_key"));
        }
        Err(why) => {
            return Err(ApiError::new(401, ErrorKind::Authentication, why).code("invalid_api_key"));
        }
    };
    let digest = busbar_core::keys::digest(secret);
    if let Some(i) = routes.keys.lookup_digest(&digest) {
        let name = routes.config.keys.get(i).map_or("", |k| k.name.as_str());
        return Ok(Caller::Static(name.into()));
    }
    match shard.gate.key(&digest) {
        Some(k) if k.revoked => Err(ApiError::new(
            401,
            ErrorKind::Authentication,
            format!("This busbar key (`{}`) was revoked.", k.name),
        )
        .code("key_revoked")),
        Some(k) if !k.is_live(crate::gate::now_ms()) => Err(ApiError::new(
            401,
            ErrorKind::Authentication,
            format!("This busbar key (`{}`) has expired.", k.name),
        )
        .code("key_expired")),
        Some(k) => Ok(Caller::Virtual(k)),
        None => Err(ApiError::new(
            401,
            ErrorKind::Authentication,
            "Incorrect API key provided: busbar does not know this key.",
        )
        .code("invalid_api_key")),
    }
}

/// 200 while some lane can serve (its provider has credentials and its breaker is not
/// open); 503 when nothing can.
fn health(shard: &Shard, keep_alive: bool) -> Vec<u8> {
    let routes = shard.routes();
    let c = &routes.config;
    let serving = routes.lanes.any_open_for_traffic(|i| {
        let p = &c.providers[c.models[i].provider];
        matches!(p.endpoint, busbar_core::config::Endpoint::Mock(_))
            || egress::missing_credentials(p).is_none()
    });
    if serving {
        response(
            200,
            "application/json",
            br#"{"status":"ok"}"#,
            keep_alive,
            &[],
        )
    } else {
        response(
            503,
            "application/json",
            br#"{"status":"unavailable","message":"no model can serve: every lane is open or lacks its provider's key"}"#,
            keep_alive,
            &[],
        )
    }
}

/// The models and pools the caller may use, in its protocol's list shape.
fn list_models(shard: &Shard, protocol: Protocol, keep_alive: bool, caller: &Caller) -> Vec<u8> {
    let routes = shard.routes();
    let c = &routes.config;
    let permits = |name: &str| match caller {
        Caller::Virtual(k) => k.permits(name),
        Caller::Open | Caller::Static(_) => true,
    };
    let mut entries: Vec<ModelEntry<'_>> = c
        .models
        .iter()
        .filter(|m| permits(&m.name))
        .map(|m| ModelEntry {
            id: &m.name,
            owned_by: &c.providers[m.provider].name,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
        })
        .collect();
    entries.extend(
        c.pools
            .iter()
            .filter(|p| permits(&p.name))
            .map(|p| ModelEntry {
                id: &p.name,
                owned_by: "busbar",
                context_window: None,
                max_output_tokens: None,
            }),
    );
    response(
        200,
        "application/json",
        &list_body(protocol, &entries),
        keep_alive,
        &[],
    )
}
