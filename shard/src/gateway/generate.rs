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
use super::route;
use super::transcode::Streamed;
use super::{Caller, egress, mock, relay, transcode};
use crate::gate::{Bill, Stop};
use crate::hooks::{Forward, audit};
use crate::lanes::{Probe, Refused};
use crate::routes::Routes;
use crate::server::client::ClientIo;
use crate::server::respond::{ApiError, response};
use crate::shard::Shard;
use crate::telemetry::{AttemptTrail, Trail};
use crate::upstream::UpstreamError;
use busbar_codec::errors::{ErrorKind, read_provider_error};
use busbar_codec::http1::RequestHead;
use busbar_codec::ir::{LossReport, Request, caller_id};
use busbar_codec::openai::{ask_for_usage, scan_request, splice_model};
use busbar_codec::stream::{StreamWriter, Transcoder, events_of};
use busbar_codec::{Protocol, translate};
use busbar_core::config::{Endpoint, Model};
use busbar_core::fault::{Class, Facts, classify, classify_transport, retry_after};
use busbar_core::govern::{
    Holder, Limit, Micros, Prices, actual_cost, prompt_token_bound, worst_case,
};
use busbar_core::route::Target;
use monoio::time::Instant;
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// The most output tokens the request asks for, if it says.
    max_output: Option<u64>,
    /// How many answers it asks for (OpenAI `n`, Gemini `candidateCount`), each up to
    /// `max_output`.
    choices: u64,
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
            let max_output = match ingress.protocol {
                Protocol::Gemini => v.pointer("/generationConfig/maxOutputTokens"),
                _ => v.pointer("/inferenceConfig/maxTokens"),
            }
            .and_then(serde_json::Value::as_u64);
            let choices = match ingress.protocol {
                Protocol::Gemini => v
                    .pointer("/generationConfig/candidateCount")
                    .and_then(serde_json::Value::as_u64),
                _ => None,
            }
            .unwrap_or(1)
            .clamp(1, 128);
            Ok(Ask {
                model: model.clone(),
                span: None,
                stream: ingress.path_stream,
                include_usage: false,
                max_output,
                choices,
            })
        }
        None => {
            let s = scan_request(body).map_err(|e| bad(e.to_string()).param("model"))?;
            Ok(Ask {
                model: s.model,
                span: Some(s.model_span),
                stream: s.stream,
                include_usage: s.include_usage,
                max_output: s.max_output_tokens,
                // `n` is the Chat Completions API's alone.
                choices: if ingress.protocol == Protocol::OpenAiChat {
                    s.choices
                } else {
                    1
                },
            })
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn generate(
    shard: &Rc<Shard>,
    stream: &mut ClientIo,
    head: &RequestHead,
    body: Vec<u8>,
    keep_alive: bool,
    ingress: Ingress,
    caller: Caller,
    trail: &mut Trail,
) -> bool {
    let p_in = ingress.protocol;
    trail.ingress = Some(p_in);
    match &caller {
        Caller::Virtual(k) => {
            trail.key = Some(k.name.clone());
            trail.environment = Some(k.environment.clone());
        }
        Caller::Static(name) => trail.key = Some(name.to_string()),
        Caller::Open => {}
    }
    let answer = run(
        shard, stream, head, &body, keep_alive, &ingress, caller, trail,
    )
    .await;
    match answer {
        Outcome::Written(keep) => {
            if trail.status == 0 {
                trail.status = 200;
            }
            keep
        }
        Outcome::Bytes(bytes) => {
            trail.status = super::status_of(&bytes);
            if trail.status >= 400 {
                trail.error.get_or_insert(super::error_type(trail.status));
            }
            stream.send(bytes).await.0.is_ok() && keep_alive
        }
        Outcome::Error(e) => {
            trail.status = e.status;
            trail.error.get_or_insert(super::error_type(e.status));
            stream
                .send(e.for_protocol(p_in).render(keep_alive))
                .await
                .0
                .is_ok()
        }
    }
}

enum Outcome {
    /// The response went out already (streamed); whether the connection can go on.
    Written(bool),
    /// A whole response to write.
    Bytes(Vec<u8>),
    Error(ApiError),
}

#[allow(clippy::too_many_arguments)]
async fn run(
    shard: &Rc<Shard>,
    stream: &mut ClientIo,
    head: &RequestHead,
    body: &[u8],
    keep_alive: bool,
    ingress: &Ingress,
    caller: Caller,
    trail: &mut Trail,
) -> Outcome {
    let routes = shard.routes();
    let started = Instant::now();
    let mut ask = match ask(ingress, body) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    trail.model = Some(ask.model.clone());
    trail.stream = ask.stream;
    trail.max_tokens = ask.max_output;
    let p_in = ingress.protocol;
    let programmable = |headers: &[String], body: &[u8], ask: &Ask| {
        route::summary(
            p_in,
            &ask.model,
            body,
            ask.max_output,
            ask.stream,
            &caller,
            head,
            headers,
            true,
        )
    };

    // before_forward: the texts may be rewritten (the request is read again) or refused.
    let rewritten;
    let mut body = body;
    if let Some(before) = &routes.hooks.before {
        let summary = programmable(&before.headers, body, &ask);
        match before.run(shard.id, &routes.upstream, &summary, body).await {
            Forward::AsIs => {}
            Forward::Rewritten(b) => {
                rewritten = b;
                body = &rewritten;
                ask = match self::ask(ingress, body) {
                    Ok(a) => a,
                    Err(e) => return Outcome::Error(e),
                };
                trail.model = Some(ask.model.clone());
            }
            Forward::Reject(status, message) => {
                trail.error = Some("rejected_by_hook");
                return Outcome::Error(
                    ApiError::new(status, ErrorKind::from_status(status), message)
                        .code("rejected_by_hook"),
                );
            }
        }
    }

    let outcome = route_and_answer(
        shard, &routes, stream, head, body, keep_alive, ingress, &caller, &ask, started, trail,
    )
    .await;
    if let Some(audit) = &routes.hooks.after {
        let summary = programmable(&audit.headers, body, &ask);
        audit.push(summary, outcome.1);
    }
    outcome.0
}

/// Routes the request, admits it, tries its plan and settles its bill; returns the answer and
/// what the audit hook is told.
#[allow(clippy::too_many_arguments)]
async fn route_and_answer(
    shard: &Rc<Shard>,
    routes: &Routes,
    stream: &mut ClientIo,
    head: &RequestHead,
    body: &[u8],
    keep_alive: bool,
    ingress: &Ingress,
    caller: &Caller,
    ask: &Ask,
    started: Instant,
    trail: &mut Trail,
) -> (Outcome, audit::Outcome) {
    let config = &routes.config;
    let p_in = ingress.protocol;
    let mut report = audit::Outcome {
        status: 0,
        model: None,
        provider: None,
        attempts: 0,
        latency_ms: 0.0,
        usage: None,
        cost_usd: None,
    };
    let refuse = |e: ApiError, mut report: audit::Outcome| {
        report.status = e.status;
        report.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        (Outcome::Error(e), report)
    };
    let plan = match routes.names.resolve(&ask.model) {
        Some(Target::Model(m)) => {
            if let Caller::Virtual(key) = caller
                && !key.permits(&ask.model)
            {
                return refuse(not_allowed(key, &ask.model), report);
            }
            Plan {
                members: vec![m],
                strict: false,
                max_attempts: 1,
                // One model: only its own per-attempt deadlines apply.
                latest: started + Duration::from_secs(365 * 24 * 3600),
            }
        }
        Some(Target::Pool(p)) => {
            let pool = &config.pools[p];
            trail.pool = Some(pool.name.clone());
            let pool_allowed = match caller {
                Caller::Virtual(key) => key.permits(&ask.model),
                _ => true,
            };
            if let Caller::Virtual(key) = caller
                && !pool_allowed
                && !pool
                    .members
                    .iter()
                    .any(|m| key.permits(&config.models[m.model].name))
            {
                return refuse(not_allowed(key, &ask.model), report);
            }
            let prompt = route::estimated_tokens(body);
            let candidates =
                route::candidates(routes, p, caller, prompt, ask.max_output, pool_allowed);
            let members = if candidates.is_empty() {
                // Nothing is eligible: try the members the key may use in weight order, so the
                // client hears why from the lanes themselves (open, busy, overflow).
                let mut all: Vec<&busbar_core::config::PoolMember> = pool
                    .members
                    .iter()
                    .filter(|m| match caller {
                        Caller::Virtual(k) => {
                            pool_allowed || k.permits(&config.models[m.model].name)
                        }
                        _ => true,
                    })
                    .collect();
                all.sort_by_key(|m| std::cmp::Reverse(m.weight));
                all.into_iter().map(|m| m.model).collect()
            } else {
                let full = !matches!(
                    pool.policy.kind,
                    busbar_core::config::PolicyKind::Builtin(_)
                );
                let summary = route::summary(
                    p_in,
                    &ask.model,
                    body,
                    ask.max_output,
                    ask.stream,
                    caller,
                    head,
                    &pool.policy.headers,
                    full,
                );
                trail.policy = Some(pool.policy.kind.name());
                match route::order(shard.id, routes, p, &summary, &candidates).await {
                    Ok(m) => m,
                    Err(e) => return refuse(e, report),
                }
            };
            Plan {
                members,
                strict: pool.strict,
                max_attempts: pool.max_attempts.max(1),
                latest: started + Duration::from_millis(pool.failover_deadline_ms),
            }
        }
        None => {
            return refuse(
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
                report,
            );
        }
    };
    let mut plan = plan;

    // Governance: the worst case reserved against every limit of the key and its
    // environment. A member the budget left cannot cover is dropped from the plan when a
    // cheaper one can still answer.
    let mut ticket = None;
    let mut bound_output = false;
    if let Caller::Virtual(key) = caller {
        bound_output = shard.gate.bounds_output(key);
        let worst_of =
            |members: &[usize]| worst(config, members, body.len(), ask.max_output, ask.choices);
        let (cost, tokens) = worst_of(&plan.members);
        match shard.gate.admit(key, cost, tokens, now_ms()).await {
            Ok(t) => ticket = Some(t),
            Err(stop) => {
                let left = match &stop {
                    Stop::Limit {
                        limit,
                        available: Some(left),
                        ..
                    } if limit.is_spend() => Some(*left),
                    _ => None,
                };
                let affordable: Vec<usize> = match left {
                    Some(left) if plan.members.len() > 1 => plan
                        .members
                        .iter()
                        .copied()
                        .filter(|&m| worst_of(&[m]).0 <= left)
                        .collect(),
                    _ => Vec::new(),
                };
                if affordable.is_empty() || affordable.len() == plan.members.len() {
                    return refuse(stopped(stop), report);
                }
                plan.members = affordable;
                let (cost, tokens) = worst_of(&plan.members);
                match shard.gate.admit(key, cost, tokens, now_ms()).await {
                    Ok(t) => ticket = Some(t),
                    Err(stop) => return refuse(stopped(stop), report),
                }
            }
        }
    }

    let mut cx = Attempt {
        shard,
        routes,
        head,
        body,
        keep_alive,
        ingress,
        ask,
        attempts: 0,
        head_at: None,
        strict: plan.strict,
        latest: plan.latest,
        ir: None,
        probe: None,
        settled: false,
        bound_output,
        // Usage is read from a relayed body when it is billed or told (metrics, spans, log).
        tap: ticket.is_some() || shard.telemetry.wants_usage(),
        answered: None,
        usage: None,
        trail,
    };
    let outcome = cx.members(stream, &plan).await;
    let trail = cx.trail;
    trail.usage = cx.usage;
    let billed = cx.answered.map(|m| {
        let model = &config.models[m];
        let known = cx.usage.map(|u| {
            let input = u.input + u.cache_read + u.cache_write;
            let cost = actual_cost(
                input,
                u.output,
                Prices {
                    input: model.input_price,
                    output: model.output_price,
                },
            );
            (input, u.output, cost)
        });
        (model, known)
    });
    if let Some(mut t) = ticket {
        let bill = match billed {
            Some((model, known)) => {
                t.answered_by(&model.name);
                match known {
                    Some((input, output, cost)) => Bill::Known {
                        input,
                        output,
                        cost,
                    },
                    None => Bill::Unknown,
                }
            }
            None => Bill::Nothing,
        };
        t.settle(bill);
    }
    report.attempts = cx.attempts;
    report.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    report.status = match &outcome {
        Outcome::Written(_) => 200,
        Outcome::Bytes(b) => status_of(b),
        Outcome::Error(e) => e.status,
    };
    if let Some((_, Some((_, _, cost)))) = billed {
        trail.cost_micros = Some(cost);
    }
    if let Some((model, known)) = billed {
        report.model = Some(model.name.clone());
        report.provider = Some(config.providers[model.provider].name.clone());
        if let Some((input, output, cost)) = known {
            report.usage = Some(audit::Usage {
                input_tokens: input,
                output_tokens: output,
            });
            report.cost_usd = Some(cost as f64 / 1e6);
        }
    }
    (outcome, report)
}

/// The status of a whole HTTP/1.1 response (0 when it cannot be read).
fn status_of(response: &[u8]) -> u16 {
    response
        .get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

impl Attempt<'_> {
    /// Tries the plan's members in order until one answers the client, or none is left.
    async fn members(&mut self, stream: &mut ClientIo, plan: &Plan) -> Outcome {
        let shard = self.shard;
        let routes = self.routes;
        let config = &routes.config;
        let (head, body, keep_alive, ask, ingress) = (
            self.head,
            self.body,
            self.keep_alive,
            self.ask,
            self.ingress,
        );
        let mut last: Option<Outcome> = None;
        let mut attempts = 0;
        // After a context overflow: only members whose window is larger than this.
        let mut need_window: Option<u64> = None;
        for (i, &m) in plan.members.iter().enumerate() {
            if attempts >= plan.max_attempts {
                break;
            }
            // A model listed twice: its first place was tried, or refused for a reason that holds.
            if plan.members[..i].contains(&m) {
                continue;
            }
            let model = &config.models[m];
            if need_window.is_some_and(|w| model.context_window.is_none_or(|c| c <= w)) {
                continue;
            }
            if attempts > 0 && Instant::now() >= plan.latest {
                last = Some(Outcome::Error(ApiError::new(
                    504,
                    ErrorKind::Upstream,
                    format!(
                        "no provider answered within the pool's failover deadline ({attempts} attempts)"
                    ),
                )));
                break;
            }
            let provider = &config.providers[model.provider];
            if let Endpoint::Mock(settings) = &provider.endpoint {
                if ingress.protocol == Protocol::OpenAiChat {
                    let body = splice(body, ask, model);
                    self.answered = Some(m);
                    self.begin_attempt(m);
                    self.trail.answered = Some(self.trail.attempts.len() - 1);
                    let keep = mock::serve(shard, stream, head, settings, &body, keep_alive).await;
                    self.end_attempt(None);
                    return Outcome::Written(keep);
                }
            } else if let Some(why) = egress::missing_credentials(provider) {
                last = Some(Outcome::Error(ApiError::new(503, ErrorKind::Upstream, why)));
                continue;
            }
            let entry = match routes.lanes.enter(m, Instant::now()) {
                Ok(e) => e,
                Err(r) => {
                    last = Some(Outcome::Error(lane_refused(model, r)));
                    continue;
                }
            };
            let permit = match routes.lanes.slot(m, plan.latest).await {
                Ok(p) => p,
                Err(r) => {
                    last = Some(Outcome::Error(lane_refused(model, r)));
                    continue;
                }
            };
            attempts += 1;
            self.attempts += 1;
            self.probe = entry.probe;
            self.settled = false;
            self.head_at = None;
            let began = Instant::now();
            self.begin_attempt(m);
            let result = self.go(stream, m).await;
            if let (Some(at), Tried::Done { failure: None, .. }) = (self.head_at, &result) {
                routes.lanes.observe(m, at - began, began.elapsed());
            }
            drop(permit);
            // Still held: the attempt ended before the provider answered 2xx, so its outcome is
            // the probe's.
            let held = self.probe.take();
            let probe = held.is_some();
            match &result {
                Tried::Done { failure, .. } => {
                    self.trail.answered = Some(self.trail.attempts.len() - 1);
                    self.end_attempt(*failure);
                }
                Tried::Failed { class, .. } => self.end_attempt(Some(*class)),
                Tried::Expired(_) => self.end_attempt(Some(Class::Timeout)),
                // Nothing was sent.
                Tried::Skipped(_) | Tried::Refused(_) => {
                    self.trail.attempts.pop();
                }
            }
            match result {
                Tried::Done { outcome, failure } => {
                    // A probe already settled at its 2xx head counts once.
                    if !(self.settled && failure.is_none()) {
                        routes.lanes.record(m, failure, None, probe, &model.name);
                    }
                    return outcome;
                }
                Tried::Failed {
                    answer,
                    class,
                    retry_after,
                } => {
                    routes
                        .lanes
                        .record(m, Some(class), retry_after, probe, &model.name);
                    tracing::debug!(
                        shard = shard.id,
                        lane = %model.name,
                        class = class.as_str(),
                        "attempt failed"
                    );
                    match class {
                        Class::ClientError => return answer,
                        Class::ContextOverflow => match model.context_window {
                            Some(w) => need_window = Some(need_window.map_or(w, |n| n.max(w))),
                            // Nothing is known to be larger than an unknown window.
                            None => return answer,
                        },
                        _ => {}
                    }
                    last = Some(answer);
                }
                Tried::Skipped(e) => {
                    // Nothing was sent (a strict translation that would lose fields).
                    attempts -= 1;
                    last = Some(Outcome::Error(e));
                }
                Tried::Refused(e) => {
                    // The request cannot be read: no provider was asked, no lane is charged.
                    return Outcome::Error(e);
                }
                Tried::Expired(answer) => return answer,
            }
            drop(held);
        }
        last.unwrap_or_else(|| {
            Outcome::Error(ApiError::new(
                503,
                ErrorKind::Upstream,
                "no provider could take the request",
            ))
        })
    }
}

/// Who may answer a request, and within what limits.
struct Plan {
    /// Models in the order to try them.
    members: Vec<usize>,
    strict: bool,
    max_attempts: usize,
    /// No attempt starts, and none waits for its first byte, past this.
    latest: Instant,
}

/// How one attempt on one member went.
enum Tried {
    /// The client has its answer (written, or ready to write). `failure`: what the lane is
    /// charged with (a stream that broke after it began, a client error relayed).
    Done {
        outcome: Outcome,
        failure: Option<Class>,
    },
    /// The member failed and the client has seen nothing: `answer` is what the client gets if
    /// no other member does better.
    Failed {
        answer: Outcome,
        class: Class,
        retry_after: Option<Duration>,
    },
    /// The member was not asked (a strict translation would lose fields).
    Skipped(ApiError),
    /// The request itself cannot be read: the client's answer, and no member is asked.
    Refused(ApiError),
    /// The pool's failover deadline ran out during the attempt: not the lane's fault, and no
    /// further member is tried.
    Expired(Outcome),
}

/// A lane that did not take the request, as the error a client gets if no member does.
fn lane_refused(model: &Model, r: Refused) -> ApiError {
    match r {
        Refused::Open { class, left } => {
            let why = class.map_or("failures", Class::as_str);
            let secs = left.as_secs_f64().ceil().max(1.0) as u64;
            ApiError::new(
                503,
                ErrorKind::Overloaded,
                format!(
                    "`{}` is unavailable: busbar took it out of service after {why} from its provider and will try it again in about {secs} s",
                    model.name
                ),
            )
            .code("lane_open")
            .header("retry-after", secs.to_string())
        }
        Refused::Busy => ApiError::new(
            503,
            ErrorKind::Overloaded,
            format!(
                "`{}` is at its concurrency limit ({} in flight) and no slot freed up in time",
                model.name, model.lane.max_concurrency
            ),
        )
        .code("lane_busy")
        .header("retry-after", "1".to_string()),
    }
}

/// What every attempt of one request shares.
struct Attempt<'a> {
    shard: &'a Rc<Shard>,
    /// The config generation the request started on.
    routes: &'a Routes,
    head: &'a RequestHead,
    body: &'a [u8],
    keep_alive: bool,
    ingress: &'a Ingress,
    ask: &'a Ask,
    strict: bool,
    latest: Instant,
    /// The request in IR form, parsed once, when some member needs a translation.
    ir: Option<Request>,
    /// The lane's half-open probe, when this attempt is it.
    probe: Option<Probe>,
    /// The probe was settled (the provider answered 2xx) and released before the body.
    settled: bool,
    /// Governed: a request that does not bound its output gets the bound it was reserved at.
    bound_output: bool,
    /// Governed: a relayed whole body is read on the side for its usage.
    tap: bool,
    /// The member whose provider last answered 2xx (what the request is billed for).
    answered: Option<usize>,
    /// What that provider said the request used.
    usage: Option<busbar_codec::ir::Usage>,
    /// Members asked so far.
    attempts: u32,
    /// When the current attempt's provider answered 2xx (its response head).
    head_at: Option<Instant>,
    /// The request's trail: each attempt is added to it.
    trail: &'a mut Trail,
}

impl Attempt<'_> {
    /// An attempt on model `m` begins: its span and start, in the trail.
    fn begin_attempt(&mut self, m: usize) {
        let config = &self.routes.config;
        let model = &config.models[m];
        let provider = &config.providers[model.provider];
        let server = match &provider.endpoint {
            Endpoint::Http { host, port, .. } => Some((host.clone(), *port)),
            Endpoint::Mock(_) => None,
        };
        self.trail.attempts.push(AttemptTrail {
            lane: model.name.clone(),
            provider: provider.name.clone(),
            protocol: provider.protocol,
            upstream_model: model.upstream.clone(),
            server,
            span_id: self.shard.telemetry.span_id(),
            start: Instant::now(),
            wall: SystemTime::now(),
            head_at: None,
            end: None,
            status: 0,
            class: None,
        });
    }

    /// The attempt under way ended, with `class` if it went wrong.
    fn end_attempt(&mut self, class: Option<Class>) {
        if let Some(a) = self.trail.current() {
            a.end = Some(Instant::now());
            a.class = class;
        }
    }

    /// Sends the request to model `m` and answers the client from it, or says why not.
    async fn go(&mut self, stream: &mut ClientIo, m: usize) -> Tried {
        let shard = self.shard;
        let routes = self.routes;
        let config = &routes.config;
        let head = self.head;
        let ask = self.ask;
        let keep_alive = self.keep_alive;
        let p_in = self.ingress.protocol;
        let model = &config.models[m];
        let provider = &config.providers[model.provider];
        let same = provider.protocol == p_in;
        let query = head.target.split_once('?').map(|(_, q)| q);
        let mock_endpoint = matches!(provider.endpoint, Endpoint::Mock(_));
        let down = |stream| transcode::Downstream {
            stream,
            minor: head.minor_version,
            keep_alive,
        };
        if same && !mock_endpoint {
            let mut body = splice(self.body, ask, model);
            if self.bound_output && ask.max_output.is_none() {
                body = Cow::Owned(bound_output(p_in, &body, output_bound(ask, model)));
            }
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
            let resp = match self.send(m, &path, true, &body).await {
                Ok(r) => r,
                Err(failed) => return failed,
            };
            if ask.stream {
                let t = Transcoder::passthrough(
                    p_in,
                    p_in == Protocol::Gemini && !gemini_sse(head),
                    hide_usage,
                );
                let s = transcode::stream(
                    routes,
                    down(stream),
                    model.provider,
                    resp,
                    t,
                    &[],
                    self.latest,
                );
                return self.streamed(s.await);
            }
            let framing = resp.head.framing;
            let mut tap = self.tap.then(Vec::new);
            let keep = relay::relay(
                routes,
                stream,
                model.provider,
                resp,
                head.minor_version,
                keep_alive,
                tap.as_mut(),
            )
            .await;
            if let Some(raw) = tap {
                self.usage = relay::body_of(framing, &raw)
                    .and_then(|b| busbar_codec::usage::billed(p_in, &b))
                    .map(|b| busbar_codec::ir::Usage {
                        input: b.input,
                        output: b.output,
                        ..Default::default()
                    });
            }
            return Tried::Done {
                outcome: Outcome::Written(keep),
                failure: None,
            };
        }

        // Translation (or the in-process mock for a non-OpenAI client).
        if self.ir.is_none() {
            let path_model = self.ingress.path_model.as_deref().unwrap_or_default();
            match translate::parse_request(p_in, self.body, path_model) {
                Ok(r) => self.ir = Some(r),
                Err(e) => {
                    return Tried::Refused(ApiError::new(
                        400,
                        ErrorKind::InvalidRequest,
                        e.to_string(),
                    ));
                }
            }
        }
        let Some(ir_req) = self.ir.as_ref() else {
            return Tried::Skipped(ApiError::new(
                500,
                ErrorKind::Server,
                "the request was not parsed",
            ));
        };
        let mut req = ir_req.clone();
        req.model = model.upstream.clone();
        if self.bound_output && req.max_output_tokens.is_none() {
            req.max_output_tokens = Some(output_bound(ask, model));
        }
        let mut loss = LossReport::default();
        let created = now_secs();
        if mock_endpoint {
            let tokens = match &provider.endpoint {
                Endpoint::Mock(s) => s.tokens,
                Endpoint::Http { .. } => 16,
            };
            let mut r = busbar_codec::mock::reply(&req, tokens);
            r.id = format!("busbar{}x{}", shard.id, shard.next_seq());
            self.answered = Some(m);
            self.usage = Some(r.usage);
            let outcome = if ask.stream {
                let mut w = StreamWriter::new(p_in, created, req.stream_usage);
                if p_in == Protocol::Gemini && !gemini_sse(head) {
                    w = w.gemini_json_array();
                }
                let mut bytes = Vec::new();
                for e in events_of(&r) {
                    w.event(&e, &mut bytes);
                }
                Outcome::Bytes(response(200, w.content_type(), &bytes, keep_alive, &[]))
            } else {
                Outcome::Bytes(finish(
                    shard,
                    p_in,
                    r,
                    created,
                    loss,
                    keep_alive,
                    &mut self.trail.dropped,
                ))
            };
            return Tried::Done {
                outcome,
                failure: None,
            };
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
        for field in &loss.dropped {
            if !self.trail.dropped.contains(field) {
                self.trail.dropped.push(field.clone());
            }
        }
        if (model.strict || self.strict) && !loss.is_empty() {
            return Tried::Skipped(
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
        }
        // A streamed Gemini upstream is asked for SSE.
        let stream_query =
            (ask.stream && provider.protocol == Protocol::Gemini).then_some("alt=sse");
        let path = egress::path(provider, &model.upstream, ask.stream, stream_query);
        let resp = match self.send(m, &path, false, &egress_body).await {
            Ok(r) => r,
            Err(failed) => return failed,
        };
        if let Some(t) = transcoder {
            let mut extra: Vec<(&str, String)> = Vec::new();
            if !loss.is_empty() {
                extra.push(("x-busbar-dropped", dropped_header(&loss)));
            }
            let s = transcode::stream(
                routes,
                down(stream),
                model.provider,
                resp,
                t,
                &extra,
                self.latest,
            );
            return self.streamed(s.await);
        }
        let (rhead, rbody) = match routes
            .upstream
            .read_to_end(model.provider, resp, MAX_TRANSLATED_BODY)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                return Tried::Failed {
                    answer: Outcome::Error(ApiError::new(502, ErrorKind::Upstream, e)),
                    class: Class::Network,
                    retry_after: None,
                };
            }
        };
        let mut r = match translate::parse_response(provider.protocol, &rbody) {
            Ok(r) => r,
            Err(e) => {
                return Tried::Failed {
                    answer: Outcome::Error(ApiError::new(
                        502,
                        ErrorKind::Upstream,
                        format!(
                            "provider `{}` sent a {} response busbar could not read: {e}",
                            provider.name,
                            provider.protocol.as_str()
                        ),
                    )),
                    class: Class::ServerError,
                    retry_after: None,
                };
            }
        };
        self.usage = Some(r.usage);
        if !r.model.is_empty() {
            self.trail.response_model = Some(r.model.clone());
        }
        if r.id.is_empty() {
            r.id = rhead
                .header("x-amzn-requestid")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map_or_else(
                    || format!("busbar{}x{}", shard.id, shard.next_seq()),
                    str::to_string,
                );
        }
        Tried::Done {
            outcome: Outcome::Bytes(finish(
                shard,
                p_in,
                r,
                created,
                loss,
                keep_alive,
                &mut self.trail.dropped,
            )),
            failure: None,
        }
    }

    /// The provider answered 2xx: if this attempt is the lane's probe, the lane is healthy
    /// again; close it everywhere now and free the probe slot, rather than hold it for as long
    /// as the body takes (a slow client could hold it for ever).
    fn settle_probe(&mut self, m: usize) {
        if let Some(p) = self.probe.take() {
            let name = &self.routes.config.models[m].name;
            self.routes.lanes.record(m, None, None, true, name);
            self.settled = true;
            drop(p);
        }
    }

    /// Sends `body` to model `m`'s provider at `path` and waits for the response head, within
    /// the request's deadline. A refusal (status >= 300) is read and classified; a 2xx settles
    /// the lane's probe.
    async fn send(
        &mut self,
        m: usize,
        path: &str,
        same_protocol: bool,
        body: &[u8],
    ) -> Result<crate::upstream::Response, Tried> {
        let shard = self.shard;
        let routes = self.routes;
        let provider = routes.config.models[m].provider;
        let traceparent = match (self.trail.trace, self.trail.attempts.last()) {
            (Some(cx), Some(a)) => Some(crate::telemetry::trail::traceparent(&cx, a.span_id)),
            _ => None,
        };
        let forward = egress::Forward {
            headers: &self.head.headers,
            same_protocol,
            traceparent: traceparent.as_deref(),
        };
        let request =
            egress::build(routes, provider, path, Some(forward), body).map_err(Tried::Skipped)?;
        let resp = routes
            .upstream
            .exchange(provider, request, self.latest)
            .await
            .map_err(|e| {
                let p = &routes.config.providers[provider];
                tracing::debug!(shard = shard.id, provider = %p.name, "upstream failed: {e}");
                if e.is_timeout() && Instant::now() >= self.latest {
                    // The pool's deadline, not the provider's own, ended the attempt.
                    return Tried::Expired(Outcome::Error(ApiError::new(
                        504,
                        ErrorKind::Upstream,
                        format!("no provider answered within the pool's failover deadline: {e}"),
                    )));
                }
                Tried::Failed {
                    answer: Outcome::Error(upstream_error(&e)),
                    class: classify_transport(e.transport()),
                    retry_after: None,
                }
            })?;
        let h = &resp.head;
        if let Some(a) = self.trail.current() {
            a.head_at = Some(Instant::now());
            a.status = h.status;
        }
        routes
            .lanes
            .rate_headers(m, |n| h.header(n).and_then(|v| std::str::from_utf8(v).ok()));
        if !(200..300).contains(&resp.head.status) {
            return Err(self.refused(provider, resp, same_protocol).await);
        }
        self.head_at = Some(Instant::now());
        self.settle_probe(m);
        self.answered = Some(m);
        self.usage = None;
        Ok(resp)
    }

    /// A provider's refusal (status >= 300), read whole and classified. A same-protocol
    /// client gets the provider's own response as it was; another gets it in its protocol's
    /// error shape (status, message and `Retry-After` kept, the provider's error type in
    /// `x-busbar-upstream-error`).
    async fn refused(
        &self,
        provider: usize,
        resp: crate::upstream::Response,
        same_protocol: bool,
    ) -> Tried {
        let routes = self.routes;
        let status = resp.head.status;
        let (rhead, rbody) = match routes
            .upstream
            .read_to_end(provider, resp, MAX_ERROR_BODY)
            .await
        {
            Ok(x) => x,
            Err(e) => {
                return Tried::Failed {
                    answer: Outcome::Error(ApiError::new(502, ErrorKind::Upstream, e)),
                    class: Class::Network,
                    retry_after: None,
                };
            }
        };
        let text = |name: &str| rhead.header(name).and_then(|v| std::str::from_utf8(v).ok());
        let pe = read_provider_error(text("x-amzn-errortype"), &rbody);
        let p = &routes.config.providers[provider];
        let class = classify(
            &Facts {
                protocol: p.protocol,
                status: Some(status),
                code: pe.code.as_deref(),
                message: &pe.message,
                body: &rbody,
            },
            &p.faults,
        );
        let wait = retry_after(&text, &rbody, now_ms());
        let answer = if same_protocol {
            Outcome::Bytes(relay::whole(&rhead, &rbody, self.keep_alive))
        } else {
            let mut e = ApiError::new(status, ErrorKind::from_status(status), pe.message);
            for name in ["retry-after", "retry-after-ms"] {
                if let Some(v) = text(name) {
                    e = e.header(name, v.trim().to_string());
                }
            }
            if let Some(code) = pe.code {
                e = e.header("x-busbar-upstream-error", header_safe(&code, 200));
            }
            Outcome::Error(e)
        };
        Tried::Failed {
            answer,
            class,
            retry_after: wait,
        }
    }
}

impl Attempt<'_> {
    /// A stream's outcome as an attempt's (its usage kept for the bill).
    fn streamed(&mut self, s: Streamed) -> Tried {
        match s {
            Streamed::Done {
                keep,
                failure,
                usage,
            } => {
                self.usage = usage;
                Tried::Done {
                    outcome: Outcome::Written(keep),
                    failure,
                }
            }
            Streamed::Failed {
                error,
                class: Some(class),
            } => Tried::Failed {
                answer: Outcome::Error(error),
                class,
                retry_after: None,
            },
            Streamed::Failed { error, class: None } => Tried::Expired(Outcome::Error(error)),
        }
    }
}

/// The most output tokens a request may produce on `model`: its own limit, else the model's,
/// else the fallback.
fn output_bound(ask: &Ask, model: &Model) -> u64 {
    ask.max_output
        .or(model.max_output_tokens)
        .unwrap_or(FALLBACK_MAX_TOKENS)
}

/// The worst case of a request over `members`: (micro-USD, tokens). `choices`
/// answers of up to `max_output` tokens each.
fn worst(
    config: &busbar_core::config::Config,
    members: &[usize],
    body_len: usize,
    max_output: Option<u64>,
    choices: u64,
) -> (Micros, u64) {
    members.iter().fold((0, 0), |(cost, tokens), &m| {
        let model = &config.models[m];
        let out = max_output
            .or(model.max_output_tokens)
            .unwrap_or(FALLBACK_MAX_TOKENS)
            .saturating_mul(choices);
        let c = worst_case(
            body_len,
            out,
            Prices {
                input: model.input_price,
                output: model.output_price,
            },
        );
        (
            cost.max(c),
            tokens.max(prompt_token_bound(body_len).saturating_add(out)),
        )
    })
}

/// `body` (a request in `protocol`) with an output limit of `n` tokens set where that
/// protocol keeps it. The body is re-serialized: only a governed request that set no limit of
/// its own pays this.
fn bound_output(protocol: Protocol, body: &[u8], n: u64) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut o)) = serde_json::from_slice(body) else {
        return body.to_vec();
    };
    let nested = |o: &mut serde_json::Map<String, serde_json::Value>, outer: &str, inner: &str| {
        let e = o
            .entry(outer)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(m) = e.as_object_mut() {
            m.insert(inner.to_string(), n.into());
        }
    };
    match protocol {
        Protocol::OpenAiChat => {
            o.insert("max_completion_tokens".into(), n.into());
        }
        Protocol::OpenAiResponses => {
            o.insert("max_output_tokens".into(), n.into());
        }
        Protocol::Anthropic | Protocol::Cohere => {
            o.insert("max_tokens".into(), n.into());
        }
        Protocol::Gemini => nested(&mut o, "generationConfig", "maxOutputTokens"),
        Protocol::Bedrock => nested(&mut o, "inferenceConfig", "maxTokens"),
    }
    serde_json::to_vec(&o).unwrap_or_else(|_| body.to_vec())
}

/// A pool or model outside the key's allowance.
fn not_allowed(key: &busbar_core::govern::KeyRecord, name: &str) -> ApiError {
    ApiError::new(
        403,
        ErrorKind::Permission,
        format!(
            "busbar key `{}` may not use `{name}`; it may use: {}",
            key.name,
            key.allowed.join(", ")
        ),
    )
    .param("model")
    .code("model_not_allowed")
}

/// A refusal by admission, as the client's error.
fn stopped(stop: Stop) -> ApiError {
    match stop {
        Stop::Limit {
            holder,
            name,
            limit,
            cap,
            amount,
            available,
            resets_at_ms,
        } => {
            let who = match holder {
                Holder::Key(_) => format!("busbar key `{name}`"),
                Holder::Environment(_) => format!("environment `{name}`"),
            };
            let left = available.unwrap_or(0);
            let what = match limit {
                Limit::Rpm => format!("{who} is over its {} of {cap} per minute", limit.describe()),
                Limit::Tpm => format!(
                    "{who} is over its {} of {cap} per minute: this request may use up to {amount} tokens (its prompt's bytes plus its max output) and {left} are left",
                    limit.describe()
                ),
                _ => format!(
                    "{who} has reached its {} of {}: this request could cost up to {} and {} is left",
                    limit.describe(),
                    dollars(cap),
                    dollars(amount),
                    dollars(left)
                ),
            };
            let now = now_ms();
            let mut e = if resets_at_ms == u64::MAX {
                ApiError::new(429, ErrorKind::RateLimit, format!("{what}; it does not reset."))
            } else {
                let secs = resets_at_ms.saturating_sub(now).div_ceil(1000).max(1);
                ApiError::new(
                    429,
                    ErrorKind::RateLimit,
                    format!("{what}; it resets at {} (in {secs} s).", utc_text(resets_at_ms)),
                )
                .header("retry-after", secs.to_string())
            };
            let holder_tag = match holder {
                Holder::Key(_) => "key",
                Holder::Environment(_) => "environment",
            };
            e = e.header("x-busbar-limit", format!("{holder_tag}:{}", limit.field()));
            if limit.is_spend() {
                e.code("insufficient_quota")
            } else {
                e.code("rate_limit_exceeded")
            }
        }
        Stop::Ledger => ApiError::new(
            503,
            ErrorKind::Overloaded,
            "busbar's ledger did not answer in time, so the request could not be admitted; try again",
        )
        .code("ledger_unavailable")
        .header("retry-after", "1".to_string()),
        Stop::FleetDown => ApiError::new(
            503,
            ErrorKind::Overloaded,
            "busbar cannot reach the fleet's shared ledger (Redis) to check this key's limits, and this node refuses requests it cannot check; try again shortly",
        )
        .code("fleet_ledger_unavailable")
        .header("retry-after", "1".to_string()),
        Stop::KeyGone => ApiError::new(
            401,
            ErrorKind::Authentication,
            "This busbar key was revoked or changed while the request waited for admission.",
        )
        .code("key_revoked"),
    }
}

/// Micro-USD as dollars, to the cent when that is exact enough.
fn dollars(m: Micros) -> String {
    if m.is_multiple_of(10_000) {
        format!("${:.2}", m as f64 / 1e6)
    } else {
        format!("${:.6}", m as f64 / 1e6)
    }
}

/// A Unix ms moment as RFC 3339 UTC, to the second.
fn utc_text(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ms} ms"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The caller's response: the IR written in its protocol, with the losses of both directions.
fn finish(
    shard: &Shard,
    p_in: Protocol,
    mut r: busbar_codec::ir::Response,
    created: u64,
    mut loss: LossReport,
    keep_alive: bool,
    dropped: &mut Vec<String>,
) -> Vec<u8> {
    let prefix = translate::id_prefix(p_in);
    if !prefix.is_empty() {
        r.id = caller_id(prefix, &r.id);
    }
    let body = translate::write_response(p_in, &r, created, &mut loss);
    for field in &loss.dropped {
        if !dropped.contains(field) {
            dropped.push(field.clone());
        }
    }
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
