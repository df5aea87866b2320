//! The telemetry thread: finished requests come in over a bounded channel (a shard never
//! waits on it: a full channel drops the trail and counts it) and go out as OTLP spans (the
//! OpenTelemetry SDK's span model, exported over OTLP/HTTP with protobuf by
//! `opentelemetry-otlp`) and as access-log lines. Exports block this thread, never a shard.
//!
//! ```text
//!   shard ──Finished──> [bounded channel] ──> telemetry thread ──> OTLP/HTTP POST (batches)
//!                                                             └──> access log (JSON lines)
//! ```

use super::trail::{AttemptTrail, Trail};
use busbar_codec::Protocol;
use busbar_core::config::Telemetry;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// Trails waiting for the telemetry thread, at most.
pub(crate) const CHANNEL: usize = 16 * 1024;
/// Spans sent in one export, at most.
const BATCH: usize = 512;
/// Longest a span waits for its batch to fill.
const LINGER: Duration = Duration::from_millis(500);

/// A finished request, as a shard hands it over.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) shard: usize,
    pub(crate) trail: Trail,
    /// Export it as spans.
    pub(crate) span: bool,
    /// Write its access-log line.
    pub(crate) log: bool,
}

/// Starts the telemetry thread when traces or the access log are on; returns the sending
/// side of its channel.
pub(crate) fn start(t: &Telemetry) -> Result<Option<Sender<Finished>>, String> {
    if t.otlp_endpoint.is_none() && t.access_log.is_none() {
        return Ok(None);
    }
    let exporter = match &t.otlp_endpoint {
        Some(url) => {
            let mut e = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_millis(t.otlp_timeout_ms))
                .build()
                .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
            e.set_resource(
                &opentelemetry_sdk::Resource::builder_empty()
                    .with_service_name(t.service_name.clone())
                    .build(),
            );
            Some(e)
        }
        None => None,
    };
    let log: Option<Box<dyn Write + Send>> = match t.access_log.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("telemetry.access_log: cannot open {path}: {e}"))?,
        )),
    };
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
    std::thread::Builder::new()
        .name("busbar-telemetry".into())
        .spawn(move || run(rx, exporter, log.map(std::io::BufWriter::new)))
        .map_err(|e| format!("cannot start the telemetry thread: {e}"))?;
    Ok(Some(tx))
}

fn run(
    rx: Receiver<Finished>,
    exporter: Option<opentelemetry_otlp::SpanExporter>,
    mut log: Option<std::io::BufWriter<Box<dyn Write + Send>>>,
) {
    let scope = InstrumentationScope::builder("busbar")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut batch: Vec<SpanData> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut failures = 0u64;
    loop {
        let wait = oldest.map_or(Duration::from_secs(3600), |t| {
            LINGER.saturating_sub(t.elapsed())
        });
        let closed = match rx.recv_timeout(wait) {
            Ok(f) => {
                if f.log
                    && let Some(w) = log.as_mut()
                {
                    let _ = writeln!(w, "{}", line(&f));
                }
                if f.span && exporter.is_some() {
                    spans(&f, &scope, &mut batch);
                    oldest.get_or_insert_with(Instant::now);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        // Lines go out as soon as nothing else is waiting.
        if rx.is_empty()
            && let Some(w) = log.as_mut()
        {
            let _ = w.flush();
        }
        let due = batch.len() >= BATCH || oldest.is_some_and(|t| t.elapsed() >= LINGER);
        if let Some(e) = &exporter
            && !batch.is_empty()
            && (due || closed)
        {
            let spans = std::mem::take(&mut batch);
            oldest = None;
            if let Err(err) = futures_executor::block_on(e.export(spans)) {
                failures += 1;
                // Said once, then every hundredth time: a collector that is down must not
                // flood the log.
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::warn!("OTLP export failed ({failures} so far): {err}");
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// The `gen_ai.provider.name` of a protocol (the OpenTelemetry GenAI conventions' values).
fn genai_provider(p: Protocol) -> &'static str {
    match p {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => "openai",
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini => "gcp.gemini",
        Protocol::Cohere => "cohere",
        Protocol::Bedrock => "aws.bedrock",
    }
}

fn at(trail: &Trail, t: monoio::time::Instant) -> SystemTime {
    trail.wall + t.saturating_duration_since(trail.started)
}

/// The request's span and one per upstream attempt, its children.
fn spans(f: &Finished, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
    let t = &f.trail;
    let Some(cx) = t.trace else {
        return;
    };
    let trace_id = TraceId::from_bytes(cx.trace_id);
    let context = |span: [u8; 8]| {
        SpanContext::new(
            trace_id,
            SpanId::from_bytes(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let end = t.end.unwrap_or(t.started);
    let operation = "chat";
    let model = t.model.clone().unwrap_or_default();
    let answer = t.answer();
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.request.model", model.clone()),
        KeyValue::new("http.request.method", t.method),
        KeyValue::new("url.path", t.path.clone()),
        KeyValue::new("http.response.status_code", i64::from(t.status)),
        KeyValue::new("busbar.request_id", t.request_id.clone()),
        KeyValue::new("busbar.shard", f.shard as i64),
        KeyValue::new("busbar.attempts", t.attempts.len() as i64),
    ];
    if let Some(p) = t.ingress {
        attrs.push(KeyValue::new("busbar.ingress", p.as_str()));
    }
    if let Some(a) = answer {
        attrs.push(KeyValue::new(
            "gen_ai.provider.name",
            genai_provider(a.protocol),
        ));
        attrs.push(KeyValue::new(
            "gen_ai.response.model",
            t.response_model
                .clone()
                .unwrap_or_else(|| a.upstream_model.clone()),
        ));
        attrs.push(KeyValue::new("busbar.lane", a.lane.clone()));
        attrs.push(KeyValue::new("busbar.egress", a.protocol.as_str()));
    }
    if let Some(n) = t.max_tokens {
        attrs.push(KeyValue::new("gen_ai.request.max_tokens", n as i64));
    }
    if let Some(u) = t.usage {
        attrs.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            (u.input + u.cache_read + u.cache_write) as i64,
        ));
        attrs.push(KeyValue::new("gen_ai.usage.output_tokens", u.output as i64));
        attrs.push(KeyValue::new(
            "gen_ai.usage.cache_read.input_tokens",
            u.cache_read as i64,
        ));
        attrs.push(KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            u.cache_write as i64,
        ));
        attrs.push(KeyValue::new(
            "busbar.usage.reasoning_tokens",
            u.reasoning as i64,
        ));
    }
    if let Some(c) = t.cost_micros {
        attrs.push(KeyValue::new("busbar.cost_usd", c as f64 / 1e6));
    }
    for (k, v) in [
        ("busbar.pool", &t.pool),
        ("busbar.key", &t.key),
        ("busbar.environment", &t.environment),
    ] {
        if let Some(v) = v {
            attrs.push(KeyValue::new(k, v.clone()));
        }
    }
    if let Some(p) = t.policy {
        attrs.push(KeyValue::new("busbar.policy", p));
    }
    if !t.dropped.is_empty() {
        attrs.push(KeyValue::new("busbar.dropped_fields", t.dropped.join(",")));
    }
    if let Some(e) = t.error {
        attrs.push(KeyValue::new("error.type", e));
    }
    let status = if t.status >= 500 {
        Status::error(t.error.unwrap_or("server_error"))
    } else {
        Status::Unset
    };
    out.push(span_data(
        (context(cx.span_id), cx.parent.map(SpanId::from_bytes)),
        SpanKind::Server,
        format!("{operation} {model}"),
        (t.wall, at(t, end)),
        attrs,
        status,
        scope,
    ));
    for a in &t.attempts {
        out.push(attempt_span(t, a, cx.span_id, &context, scope));
    }
}

fn attempt_span(
    t: &Trail,
    a: &AttemptTrail,
    parent: [u8; 8],
    context: &dyn Fn([u8; 8]) -> SpanContext,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.provider.name", genai_provider(a.protocol)),
        KeyValue::new("gen_ai.request.model", a.upstream_model.clone()),
        KeyValue::new("busbar.lane", a.lane.clone()),
        KeyValue::new("busbar.provider", a.provider.clone()),
    ];
    if let Some((host, port)) = &a.server {
        attrs.push(KeyValue::new("server.address", host.clone()));
        attrs.push(KeyValue::new("server.port", i64::from(*port)));
    }
    if a.status > 0 {
        attrs.push(KeyValue::new(
            "http.response.status_code",
            i64::from(a.status),
        ));
    }
    if let Some(h) = a.head_at {
        attrs.push(KeyValue::new(
            "busbar.time_to_first_byte_ms",
            (h - a.start).as_secs_f64() * 1000.0,
        ));
    }
    let status = match a.class {
        Some(c) => {
            attrs.push(KeyValue::new("error.type", c.as_str()));
            Status::error(c.as_str())
        }
        None => Status::Unset,
    };
    let mut s = span_data(
        (context(a.span_id), Some(SpanId::from_bytes(parent))),
        SpanKind::Client,
        format!("chat {}", a.upstream_model),
        (a.wall, at(t, a.end.unwrap_or(a.start))),
        attrs,
        status,
        scope,
    );
    // The parent is busbar's own request span, not a remote one.
    s.parent_span_is_remote = false;
    s
}

/// A finished span: (its context, its parent when it has one), kind, name, (start, end).
fn span_data(
    (context, parent): (SpanContext, Option<SpanId>),
    kind: SpanKind,
    name: String,
    (start, end): (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
    status: Status,
    scope: &InstrumentationScope,
) -> SpanData {
    SpanData {
        span_context: context,
        parent_span_id: parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: parent.is_some(),
        span_kind: kind,
        name: name.into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// RFC 3339 UTC with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i128);
    time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The access-log line of a request: what it was, where it went, how long, what it used.
/// Never a prompt, an answer or a key.
fn line(f: &Finished) -> String {
    let t = &f.trail;
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let answer = t.answer();
    let ttfb = answer.and_then(|a| Some(a.head_at? - a.start));
    let v = json!({
        "ts": rfc3339(t.wall),
        "request_id": t.request_id,
        "shard": f.shard,
        "method": t.method,
        "path": t.path,
        "status": t.status,
        "ingress": t.ingress.map(Protocol::as_str),
        "model": t.model,
        "pool": t.pool,
        "lane": answer.map(|a| a.lane.as_str()),
        "provider": answer.map(|a| a.provider.as_str()),
        "egress": answer.map(|a| a.protocol.as_str()),
        "stream": t.stream,
        "attempts": t.attempts.len(),
        "failovers": t.attempts.iter().take(t.answered.unwrap_or(t.attempts.len())).map(|a| json!({
            "lane": a.lane,
            "class": a.class.map(busbar_core::fault::Class::as_str),
            "status": a.status,
        })).collect::<Vec<_>>(),
        "duration_ms": t.end.map(|e| ms(e - t.started)),
        "upstream_ttfb_ms": ttfb.map(ms),
        "overhead_ms": t.overhead().map(ms),
        "input_tokens": t.usage.map(|u| u.input + u.cache_read + u.cache_write),
        "output_tokens": t.usage.map(|u| u.output),
        "cache_read_tokens": t.usage.map(|u| u.cache_read),
        "cache_write_tokens": t.usage.map(|u| u.cache_write),
        "reasoning_tokens": t.usage.map(|u| u.reasoning),
        "cost_usd": t.cost_micros.map(|c| c as f64 / 1e6),
        "key": t.key,
        "environment": t.environment,
        "error": t.error,
        "dropped_fields": (!t.dropped.is_empty()).then_some(&t.dropped),
        "trace_id": t.trace.map(|c| hex::encode(c.trace_id)),
    });
    v.to_string()
}
