//! Routing one request: the summary policies and hooks see, the eligible candidates of a pool
//! with their live facts, and the policy's decision turned into a plan.
//!
//! ```text
//!   members -> not allowed to the key / context window too small / breaker open: left out
//!           -> Candidate (price, estimated cost, in flight, latency, ttft, rate headroom)
//!           -> PoolRouter::decide -> order of models | rejection
//! ```

use super::Caller;
use crate::routes::Routes;
use crate::server::respond::ApiError;
use busbar_codec::Protocol;
use busbar_codec::errors::ErrorKind;
use busbar_codec::http1::RequestHead;
use busbar_core::route::{
    Candidate, DEFAULT_EXPECTED_OUTPUT, Decision, LaneState, Summary, estimated_cost,
};

/// Bytes per token when estimating a prompt's tokens from its size.
const BYTES_PER_TOKEN: u64 = 4;

/// Estimated prompt tokens of a body.
pub(super) fn estimated_tokens(body: &[u8]) -> u64 {
    (body.len() as u64).div_ceil(BYTES_PER_TOKEN)
}

/// What hooks and policies see of a request. `full`: also read the body for its message count
/// and tools (only programmable hooks need them).
#[allow(clippy::too_many_arguments)]
pub(super) fn summary(
    protocol: Protocol,
    model: &str,
    body: &[u8],
    max_output: Option<u64>,
    stream: bool,
    caller: &Caller,
    head: &RequestHead,
    headers: &[String],
    full: bool,
) -> Summary {
    let (key, environment) = match caller {
        Caller::Virtual(k) => (Some(k.name.clone()), Some(k.environment.clone())),
        _ => (None, None),
    };
    let (messages, tools) = if full {
        shape(protocol, body)
    } else {
        (0, false)
    };
    Summary {
        protocol: protocol.as_str(),
        model: model.to_string(),
        messages,
        estimated_tokens: estimated_tokens(body),
        max_output_tokens: max_output,
        tools,
        stream,
        key,
        environment,
        headers: headers
            .iter()
            .filter_map(|name| {
                let v = head.header(name)?;
                Some((name.clone(), String::from_utf8_lossy(v).into_owned()))
            })
            .collect(),
    }
}

/// (messages, whether tools are offered) of a request body in `protocol`.
fn shape(protocol: Protocol, body: &[u8]) -> (u32, bool) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0, false);
    };
    let len = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len)
    };
    let messages = match protocol {
        Protocol::Gemini => len("/contents"),
        Protocol::OpenAiResponses => match v.get("input") {
            Some(serde_json::Value::String(_)) => 1,
            _ => len("/input"),
        },
        _ => len("/messages"),
    };
    let tools = match protocol {
        Protocol::Bedrock => len("/toolConfig/tools") > 0,
        _ => len("/tools") > 0,
    };
    (u32::try_from(messages).unwrap_or(u32::MAX), tools)
}

/// The members of pool `p` a policy may choose from, with their facts.
pub(super) fn candidates<'a>(
    routes: &'a Routes,
    p: usize,
    caller: &Caller,
    prompt_tokens: u64,
    max_output: Option<u64>,
    pool_allowed: bool,
) -> Vec<Candidate<'a>> {
    let config = &routes.config;
    let pool = &config.pools[p];
    let now = std::time::Instant::now();
    let mut out = Vec::with_capacity(pool.members.len());
    for (i, member) in pool.members.iter().enumerate() {
        let m = member.model;
        if pool.members[..i].iter().any(|x| x.model == m) {
            continue;
        }
        let model = &config.models[m];
        if let Caller::Virtual(k) = caller
            && !pool_allowed
            && !k.permits(&model.name)
        {
            continue;
        }
        if model.context_window.is_some_and(|w| prompt_tokens > w) {
            continue;
        }
        let Some(f) = routes.lanes.facts(m, now) else {
            continue;
        };
        let output = max_output
            .or(model.max_output_tokens)
            .unwrap_or(DEFAULT_EXPECTED_OUTPUT)
            .min(max_output.unwrap_or(DEFAULT_EXPECTED_OUTPUT));
        out.push(Candidate {
            name: &model.name,
            provider: &config.providers[model.provider].name,
            member: i,
            weight: member.weight,
            input_price: model.input_price,
            output_price: model.output_price,
            estimated_cost: estimated_cost(
                prompt_tokens,
                output,
                model.input_price,
                model.output_price,
            ),
            context_window: model.context_window,
            in_flight: u32::try_from(f.in_flight).unwrap_or(u32::MAX),
            max_concurrency: u32::try_from(f.limit).unwrap_or(u32::MAX),
            latency_ms: f.latency_ms,
            ttft_ms: f.ttft_ms,
            requests_left: f.requests_left,
            tokens_left: f.tokens_left,
            state: if f.half_open {
                LaneState::HalfOpen
            } else {
                LaneState::Closed
            },
        });
    }
    out
}

/// The pool's members in the order its policy chose (model indices), or the client's error.
pub(super) async fn order(
    shard: usize,
    routes: &Routes,
    p: usize,
    summary: &Summary,
    candidates: &[Candidate<'_>],
) -> Result<Vec<usize>, ApiError> {
    let pool = &routes.config.pools[p];
    match routes.hooks.pools[p]
        .decide(shard, &routes.upstream, &pool.name, summary, candidates)
        .await
    {
        Decision::Order(idx) => Ok(idx
            .into_iter()
            .filter_map(|i| candidates.get(i))
            .map(|c| pool.members[c.member].model)
            .collect()),
        Decision::Reject { status, message } => {
            Err(
                ApiError::new(status, ErrorKind::from_status(status), message)
                    .code("rejected_by_policy"),
            )
        }
    }
}
