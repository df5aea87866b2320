//! Provider errors and transport failures -> [`Class`].
//!
//! ```text
//!   Facts --> config rules ([[providers.NAME.faults]], first match wins)
//!         --> the provider's documented errors, by protocol:
//!               error type / code, status, message, body details (OpenAI `error.code`,
//!               Anthropic `error.details.error_code`, Gemini `ErrorInfo.reason`)
//!         --> the status alone (unknown 4xx: client error; unknown 5xx or stream event:
//!             server error)
//! ```
//!
//! Runs once per failed attempt, never per event of a healthy stream, so it may parse the
//! (small) error body. It never blocks, keeps no state and never panics on what a provider
//! sent: every lookup is `Option`, every text match is bounded by the message's length.
//!
//! Where each fact comes from (the tables below cite them again, entry by entry):
//! - OpenAI: developers.openai.com/api/docs/guides/error-codes and help.openai.com
//!   "Troubleshooting API rate limits and 429 errors" (billing codes); bodies as the API sends
//!   them (`context_length_exceeded`, `invalid_api_key`, `insufficient_quota`,
//!   `rate_limit_exceeded`, `unsupported_country_region_territory`); the Responses API's
//!   `ResponseError.code` enum for stream failures.
//! - Anthropic: platform.claude.com/docs/en/api/errors (HTTP errors, spend limits, error events
//!   in streams).
//! - Gemini: ai.google.dev/gemini-api/docs/troubleshooting (and .../generate-content/api-errors);
//!   `google.rpc.ErrorInfo` reasons from googleapis `google/api/error_reason.proto`.
//! - Cohere: docs.cohere.com/reference/errors; 498, 503 and 504 from its API definition (the
//!   Fern-generated SDK's `InvalidTokenError`, `ServiceUnavailableError`,
//!   `GatewayTimeoutError`).
//! - Bedrock: docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html,
//!   the runtime API reference (`Converse` errors, `ResponseStream` events), AWS re:Post
//!   "bedrock-validation-exception-errors".

use busbar_codec::Protocol;
use serde_json::Value;

use super::{Class, Facts, Rule, Transport};

/// The class of a provider's error: the config's rules first, then the provider's documented
/// errors, then the status.
pub fn classify(facts: &Facts<'_>, rules: &[Rule]) -> Class {
    if let Some(r) = rules.iter().find(|r| r.matches(facts)) {
        return r.class;
    }
    // A body that is not JSON (an HTML error page from a proxy) simply has no details.
    let json = || serde_json::from_slice::<Value>(facts.body).ok();
    let documented = match facts.protocol {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => openai(facts, json().as_ref()),
        Protocol::Anthropic => anthropic(facts, json().as_ref()),
        Protocol::Gemini => gemini(facts, json().as_ref()),
        Protocol::Cohere => cohere(facts),
        Protocol::Bedrock => bedrock(facts),
    };
    documented.unwrap_or_else(|| by_status(facts.status))
}

/// The class of a transport failure: a passed deadline is a timeout, anything else the network.
pub fn classify_transport(t: Transport) -> Class {
    match t {
        Transport::ConnectTimeout
        | Transport::HeadTimeout
        | Transport::FirstEventTimeout
        | Transport::EventGapTimeout => Class::Timeout,
        Transport::NoAddress
        | Transport::Connect
        | Transport::Tls
        | Transport::Send
        | Transport::Closed
        | Transport::BadHead
        | Transport::BodyBroken => Class::Network,
    }
}

/// What the status alone says, when nothing more specific was recognised.
fn by_status(status: Option<u16>) -> Class {
    match status {
        Some(401 | 403) => Class::AuthFailure,
        Some(402) => Class::BillingFailure,
        Some(429) => Class::RateLimited,
        Some(408 | 504) => Class::Timeout,
        Some(503 | 529) => Class::Overloaded,
        Some(400..=499) => Class::ClientError,
        // An unknown stream error event, any 5xx, and a "failure" with a status that is no
        // failure at all (1xx-3xx: the provider broke the protocol) are the provider's fault.
        None | Some(_) => Class::ServerError,
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI (Chat Completions and Responses)
// ---------------------------------------------------------------------------------------------

/// `error.code` values (also sent as `error.type`) that mean the account cannot pay: all 429.
/// developers.openai.com error-codes guide and help.openai.com "Troubleshooting API rate limits
/// and 429 errors": retrying a billing, spend or quota error does not restore access.
const OPENAI_BILLING: &[&str] = &[
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
];

/// Codes of an OpenAI error event inside a stream (Chat Completions `data: {"error": ...}`,
/// Responses `error` and `response.failed`), which come with no status.
const OPENAI_STREAM: &[(&str, Class)] = &[
    // The Responses API's `ResponseError.code` enum.
    ("server_error", Class::ServerError),
    ("rate_limit_exceeded", Class::RateLimited),
    ("vector_store_timeout", Class::Timeout),
    ("invalid_prompt", Class::ClientError),
    ("bio_policy", Class::ClientError),
    ("data_residency_mismatch", Class::ClientError),
    // The error-codes guide: 503 `server_is_overloaded` (type `service_unavailable_error`),
    // 429 `slow_down`.
    ("server_is_overloaded", Class::Overloaded),
    ("service_unavailable_error", Class::Overloaded),
    ("slow_down", Class::RateLimited),
    // Error types a Chat Completions stream carries when there is no code.
    ("rate_limit_error", Class::RateLimited),
    ("tokens", Class::RateLimited),
    ("requests", Class::RateLimited),
    ("invalid_api_key", Class::AuthFailure),
    ("authentication_error", Class::AuthFailure),
    ("permission_error", Class::AuthFailure),
    ("invalid_request_error", Class::ClientError),
    ("api_error", Class::ServerError),
];

fn openai(f: &Facts<'_>, body: Option<&Value>) -> Option<Class> {
    // `read_provider_error` keeps `error.type`; the specific reason is `error.code`.
    let code = body.and_then(error_obj).and_then(|e| str_at(e, "code"));
    let names = [code, f.code];
    if named(&names, OPENAI_BILLING)
        // Older bodies: type `insufficient_quota`, code null, and only this message.
        || (f.status == Some(429) && contains_ci(f.message, "exceeded your current quota"))
    {
        return Some(Class::BillingFailure);
    }
    // OpenAI sends its overflow as a 400; servers that copy its protocol may use another 4xx
    // (Together AI documents a 403 for it), and no auth or quota message speaks of a context
    // window. A 429 never is one: "Request too large ... on tokens per min" is a rate-limit
    // tier, not a window.
    let request_error = matches!(f.status, Some(400..=428 | 430..=499) | None);
    if named(&names, &["context_length_exceeded"])
        || (request_error && is_context_overflow(f.message))
    {
        return Some(Class::ContextOverflow);
    }
    match f.status {
        // 401: invalid authentication, incorrect key, not a member of an organization, IP not
        // authorized. 403: country, region or territory not supported (code
        // `unsupported_country_region_territory`), or the project may not use the model.
        Some(401 | 403) => Some(Class::AuthFailure),
        // help.openai.com "Error Code 429 - The engine is currently overloaded": OpenAI's
        // capacity, not our limit.
        Some(429) if contains_ci(f.message, "overloaded") => Some(Class::Overloaded),
        Some(429) => Some(Class::RateLimited),
        // 503: "The engine is currently overloaded", "Slow Down", `server_is_overloaded`.
        Some(503) => Some(Class::Overloaded),
        // 500 "The server had an error while processing your request" and the rest: by status.
        Some(_) => None,
        None => lookup(&names, OPENAI_STREAM),
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic
// ---------------------------------------------------------------------------------------------

/// `error.type` -> class (platform.claude.com/docs/en/api/errors, "HTTP errors"); the same types
/// arrive in a stream's `event: error`, e.g. `overloaded_error`.
const ANTHROPIC: &[(&str, Class)] = &[
    ("invalid_request_error", Class::ClientError), // 400, and other 4xx not listed
    ("authentication_error", Class::AuthFailure),  // 401
    ("billing_error", Class::BillingFailure),      // 402
    ("permission_error", Class::AuthFailure),      // 403
    ("not_found_error", Class::ClientError),       // 404
    ("conflict_error", Class::ClientError),        // 409
    ("request_too_large", Class::ClientError),     // 413: bytes, not tokens
    ("rate_limit_error", Class::RateLimited),      // 429
    ("api_error", Class::ServerError),             // 500
    ("timeout_error", Class::Timeout),             // 504
    ("overloaded_error", Class::Overloaded),       // 529
];

fn anthropic(f: &Facts<'_>, body: Option<&Value>) -> Option<Class> {
    let names = [f.code];
    // A 429 `rate_limit_error` whose `error.details.error_code` is
    // `enforced_spend_limit_reached` is the usage tier's monthly cap: no `retry-after`, usage
    // paused until the next month (errors page; rate-limits page "spend limits").
    let detail = body
        .and_then(error_obj)
        .and_then(|e| e.get("details"))
        .and_then(|d| str_at(d, "error_code"));
    if detail.is_some_and(|d| d.eq_ignore_ascii_case("enforced_spend_limit_reached")) {
        return Some(Class::BillingFailure);
    }
    let invalid_request =
        named(&names, &["invalid_request_error"]) || (f.code.is_none() && f.status == Some(400));
    if invalid_request {
        // "prompt is too long: 215432 tokens > 200000 maximum", and "input length and
        // `max_tokens` exceed context limit: 90402 + 116650 > 204648, ...".
        if is_context_overflow(f.message) {
            return Some(Class::ContextOverflow);
        }
        // A spend limit the organization set: 400 `invalid_request_error`, "You have reached
        // your specified API usage limits" ("... workspace API usage limits").
        if contains_ci(f.message, "reached your specified") && contains_ci(f.message, "usage limit")
        {
            return Some(Class::BillingFailure);
        }
        // Out of prepaid credit: 400 `invalid_request_error`, "Your credit balance is too low to
        // access the Anthropic API. Please go to Plans & Billing to upgrade or purchase
        // credits." (as the API sends it; seen in anthropic-sdk issues).
        if contains_ci(f.message, "credit balance is too low") {
            return Some(Class::BillingFailure);
        }
    }
    lookup(&names, ANTHROPIC)
}

// ---------------------------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------------------------

/// `error.status` -> class (ai.google.dev/gemini-api/docs/troubleshooting, "Gemini API backend
/// service error codes"). Compared case-insensitively, so the lower-case codes of newer
/// surfaces (`failed_precondition`) read the same.
const GEMINI: &[(&str, Class)] = &[
    ("INVALID_ARGUMENT", Class::ClientError), // 400: malformed request
    // 400: "Gemini API free tier is not available in your country. Please enable billing".
    ("FAILED_PRECONDITION", Class::BillingFailure),
    ("UNAUTHENTICATED", Class::AuthFailure),    // 401
    ("PERMISSION_DENIED", Class::AuthFailure),  // 403: the key lacks the permissions
    ("NOT_FOUND", Class::ClientError),          // 404: a referenced file or model
    ("RESOURCE_EXHAUSTED", Class::RateLimited), // 429: a rate limit was exceeded
    ("INTERNAL", Class::ServerError),           // 500
    ("UNAVAILABLE", Class::Overloaded),         // 503: temporarily overloaded or down
    ("DEADLINE_EXCEEDED", Class::Timeout),      // 504
];

/// `google.rpc.ErrorInfo.reason` -> class (googleapis `google/api/error_reason.proto`).
const GEMINI_REASONS: &[(&str, Class)] = &[
    // 400 INVALID_ARGUMENT "API key not valid. Please pass a valid API key."
    ("API_KEY_INVALID", Class::AuthFailure),
    ("API_KEY_SERVICE_BLOCKED", Class::AuthFailure),
    ("API_KEY_HTTP_REFERRER_BLOCKED", Class::AuthFailure),
    ("API_KEY_IP_ADDRESS_BLOCKED", Class::AuthFailure),
    ("API_KEY_ANDROID_APP_BLOCKED", Class::AuthFailure),
    ("API_KEY_IOS_APP_BLOCKED", Class::AuthFailure),
    ("SERVICE_DISABLED", Class::AuthFailure),
    ("USER_PROJECT_DENIED", Class::AuthFailure),
    ("CONSUMER_SUSPENDED", Class::AuthFailure),
    ("CONSUMER_INVALID", Class::AuthFailure),
    ("ACCESS_TOKEN_EXPIRED", Class::AuthFailure),
    ("ACCESS_TOKEN_SCOPE_INSUFFICIENT", Class::AuthFailure),
    ("CREDENTIALS_MISSING", Class::AuthFailure),
    ("BILLING_DISABLED", Class::BillingFailure),
    ("RATE_LIMIT_EXCEEDED", Class::RateLimited),
    ("RESOURCE_QUOTA_EXCEEDED", Class::RateLimited),
];

fn gemini(f: &Facts<'_>, body: Option<&Value>) -> Option<Class> {
    let details = body
        .and_then(error_obj)
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array);
    let reasons = details
        .into_iter()
        .flatten()
        .filter_map(|d| str_at(d, "reason"));
    for reason in reasons {
        if let Some(c) = lookup(&[Some(reason)], GEMINI_REASONS) {
            return Some(c);
        }
    }
    // The same, when the body was lost (a stream event): "API key not valid", "API key
    // expired", "API Key not found".
    if contains_ci(f.message, "api key not valid")
        || contains_ci(f.message, "api key expired")
        || contains_ci(f.message, "api key not found")
    {
        return Some(Class::AuthFailure);
    }
    let names = [f.code];
    let invalid_argument =
        named(&names, &["INVALID_ARGUMENT"]) || (f.code.is_none() && f.status == Some(400));
    // "The input token count (314175) exceeds the maximum number of tokens allowed (131072)."
    if invalid_argument && is_context_overflow(f.message) {
        return Some(Class::ContextOverflow);
    }
    // A file the request names but the key cannot read is the request's fault, not the key's:
    // 403 PERMISSION_DENIED "You do not have permission to access the File abc123 or it may
    // not exist." (Gemini Files API).
    if named(&names, &["PERMISSION_DENIED"])
        && contains_ci(f.message, "permission to access the file")
    {
        return Some(Class::ClientError);
    }
    lookup(&names, GEMINI)
}

// ---------------------------------------------------------------------------------------------
// Cohere
// ---------------------------------------------------------------------------------------------

fn cohere(f: &Facts<'_>) -> Option<Class> {
    // Cohere's error body is `{"message": ...}`: the status and the message are all there is.
    match f.status {
        // "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received
        // 4292" and "too many tokens: size limit exceeded by 11326 tokens"; but "too many
        // tokens: max tokens must be less than or equal to 4096, the maximum output for this
        // model" is a bad `max_tokens`, which no larger window fixes.
        Some(400) | None if is_context_overflow(f.message) => Some(Class::ContextOverflow),
        Some(400) | None
            if contains_ci(f.message, "too many tokens")
                && !contains_ci(f.message, "max tokens must be") =>
        {
            Some(Class::ContextOverflow)
        }
        Some(400) => Some(Class::ClientError),
        // 401 "invalid api token" / "no api key supplied"; 498 `InvalidTokenError`.
        Some(401 | 498) => Some(Class::AuthFailure),
        // 402: the account reached its billing limit / no payment method.
        Some(402) => Some(Class::BillingFailure),
        Some(429) => Some(Class::RateLimited),
        // 499: the request was cancelled.
        Some(499) => Some(Class::ClientError),
        Some(500) => Some(Class::ServerError),
        Some(503) => Some(Class::Overloaded),
        Some(504) => Some(Class::Timeout),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Bedrock
// ---------------------------------------------------------------------------------------------

/// Exception name (`x-amzn-ErrorType`, `__type`, or a stream's `:exception-type`, which is
/// camelCase: `throttlingException`) -> class. Bedrock runtime API reference (`Converse` errors
/// and `ConverseStreamOutput` events) and the user guide's "Troubleshooting Amazon Bedrock API
/// Error Codes".
const BEDROCK: &[(&str, Class)] = &[
    ("ValidationException", Class::ClientError), // 400 (overflow checked first)
    ("ValidationError", Class::ClientError),     // 400, as the troubleshooting guide names it
    ("AccessDeniedException", Class::AuthFailure), // 403
    ("UnrecognizedClientException", Class::AuthFailure), // 403: unknown access key
    ("InvalidClientTokenId", Class::AuthFailure), // 403
    ("ExpiredTokenException", Class::AuthFailure), // 403: expired session credentials
    ("InvalidSignatureException", Class::AuthFailure), // 403
    ("IncompleteSignature", Class::AuthFailure), // 400
    ("MissingAuthenticationTokenException", Class::AuthFailure), // 403
    ("NotAuthorized", Class::AuthFailure),       // 400
    ("RequestExpired", Class::AuthFailure),      // 400: signed too long ago (our clock)
    // 404: the Anthropic use-case form was never submitted for the account.
    ("FTUFormNotFilled", Class::AuthFailure),
    ("ThrottlingException", Class::RateLimited), // 429
    // 400, "You can resubmit your request later": a quota, not the request, is at fault.
    ("ServiceQuotaExceededException", Class::RateLimited),
    ("ModelNotReadyException", Class::Overloaded), // 429: not ready to serve, SDKs retry
    ("ServiceUnavailableException", Class::Overloaded), // 503
    ("ServiceUnavailable", Class::Overloaded),     // 503
    ("InternalServerException", Class::ServerError), // 500
    ("InternalFailure", Class::ServerError),       // 500
    ("ModelErrorException", Class::ServerError),   // 424: the model failed
    ("ModelStreamErrorException", Class::ServerError), // 424: the stream failed
    ("ModelTimeoutException", Class::Timeout),     // 408
    ("ResourceNotFoundException", Class::ClientError), // 404
    ("ConflictException", Class::ClientError),     // 400
];

fn bedrock(f: &Facts<'_>) -> Option<Class> {
    let name = f.code.map(exception_name);
    let names = [name];
    let validation = named(&names, &["ValidationException", "ValidationError"])
        || (name.is_none() && matches!(f.status, Some(400) | None));
    if validation {
        // "Input is too long for requested model.", "The model returned the following errors:
        // prompt is too long: 200049 tokens > 200000 maximum", "too many input tokens", ...
        if is_context_overflow(f.message) {
            return Some(Class::ContextOverflow);
        }
        // AWS re:Post "bedrock-validation-exception-errors": a role without the permission
        // gets "ValidationException ... Your AWS account is not authorized to invoke this API
        // operation".
        if contains_ci(f.message, "not authorized to invoke") {
            return Some(Class::AuthFailure);
        }
    }
    // Model access refused for the account's payment method: 403 AccessDeniedException
    // "Model access is denied due to INVALID_PAYMENT_INSTRUMENT:A valid payment instrument must
    // be provided." (AWS re:Post, Bedrock model access) is billing, not credentials.
    if named(&names, &["AccessDeniedException"])
        && (contains_ci(f.message, "INVALID_PAYMENT_INSTRUMENT")
            || contains_ci(f.message, "payment instrument"))
    {
        return Some(Class::BillingFailure);
    }
    lookup(&names, BEDROCK)
}

/// `ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/` and
/// `com.amazonaws.bedrock#ThrottlingException` -> `ThrottlingException`.
fn exception_name(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim()
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// Pieces of each provider's "the prompt does not fit the model's context window" message,
/// compared case-insensitively.
const OVERFLOW: &[&str] = &[
    // OpenAI Chat Completions: "This model's maximum context length is 8192 tokens. However,
    // your messages resulted in 9000 tokens."
    "maximum context length",
    // OpenAI Responses: "Your input exceeds the context window of this model."; the same
    // wording from other models on Bedrock.
    "exceeds the context window",
    "exceed the context window",
    // Anthropic, and Claude on Bedrock: "prompt is too long: 215432 tokens > 200000 maximum".
    "prompt is too long",
    // Anthropic: "input length and `max_tokens` exceed context limit: 90402 + 116650 > ...".
    "exceed context limit",
    // Bedrock: "Input is too long for requested model."
    "input is too long",
    "too many input tokens",
    // Bedrock (Titan): "too many total text bytes".
    "too many total text bytes",
    // Cohere: "too many tokens: total number of tokens in the prompt cannot exceed 4081".
    "tokens in the prompt cannot exceed",
];

/// Whether a message says the prompt does not fit the context window.
fn is_context_overflow(message: &str) -> bool {
    OVERFLOW.iter().any(|p| contains_ci(message, p))
        // Gemini: "The input token count (314175) exceeds the maximum number of tokens
        // allowed (131072)."
        || (contains_ci(message, "input token count") && contains_ci(message, "exceeds the maximum"))
}

/// The `error` object of a body: `{"error": {...}}`, or Gemini's streamed `[{"error": {...}}]`.
fn error_obj(v: &Value) -> Option<&Value> {
    v.get("error")
        .or_else(|| v.get(0).and_then(|first| first.get("error")))
        .filter(|e| e.is_object())
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Whether any of the names is one of `set`, case-insensitively.
fn named(names: &[Option<&str>], set: &[&str]) -> bool {
    names
        .iter()
        .flatten()
        .any(|n| set.iter().any(|s| n.trim().eq_ignore_ascii_case(s)))
}

/// The class of the first of `names` found in `table`, case-insensitively.
fn lookup(names: &[Option<&str>], table: &[(&str, Class)]) -> Option<Class> {
    names.iter().flatten().find_map(|n| {
        table
            .iter()
            .find(|(k, _)| n.trim().eq_ignore_ascii_case(k))
            .map(|&(_, c)| c)
    })
}

/// Whether `needle` (ASCII) occurs in `hay`, ignoring ASCII case. No allocation.
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    //! Bodies are the providers' own, as their references document them or as they send them
    //! (quoted in issues against their SDKs). They sit here rather than under
    //! `tests/fixtures/` so that each sits beside the class it must produce.
    use busbar_codec::errors::read_provider_error;

    use super::*;

    /// A failed response as the shard sees it: `Facts` built by `read_provider_error` from the
    /// body (and `x-amzn-ErrorType`), exactly as the request path will build them.
    fn http(p: Protocol, status: u16, amzn: Option<&str>, body: &str) -> Class {
        let e = read_provider_error(amzn, body.as_bytes());
        let facts = Facts {
            protocol: p,
            status: Some(status),
            code: e.code.as_deref(),
            message: &e.message,
            body: body.as_bytes(),
        };
        classify(&facts, &[])
    }

    /// An error event inside a stream that began with 200: a code and a message, no body.
    fn event(p: Protocol, code: Option<&str>, message: &str) -> Class {
        let facts = Facts {
            protocol: p,
            status: None,
            code,
            message,
            body: b"",
        };
        classify(&facts, &[])
    }

    type Case<'a> = (u16, &'a str, Class);

    fn check(p: Protocol, cases: &[Case<'_>]) {
        for (status, body, want) in cases {
            assert_eq!(http(p, *status, None, body), *want, "{p:?} {status} {body}");
        }
    }

    #[test]
    fn openai_documented_errors() {
        let cases: &[Case<'_>] = &[
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, you requested 4120 tokens (3120 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid service_tier argument: The requested service tier is not allowed for this project.","type":"invalid_request_error","param":"service_tier","code":null}}"#,
                Class::ClientError,
            ),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                Class::AuthFailure,
            ),
            (
                403,
                r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#,
                Class::AuthFailure,
            ),
            (
                404,
                r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
                Class::ClientError,
            ),
            (
                429,
                r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
                Class::BillingFailure,
            ),
            (
                429,
                r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"project_spend_limit_exceeded"}}"#,
                Class::BillingFailure,
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 28000, Requested 4000. Please try again in 4s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
                Class::RateLimited,
            ),
            (
                429,
                r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
                Class::Overloaded,
            ),
            (
                500,
                r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#,
                Class::ServerError,
            ),
            (
                503,
                r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
                Class::Overloaded,
            ),
            (
                503,
                r#"{"error":{"message":"Slow Down","type":"service_unavailable_error","param":null,"code":"slow_down"}}"#,
                Class::Overloaded,
            ),
            (
                502,
                "<html><head><title>502 Bad Gateway</title></head></html>",
                Class::ServerError,
            ),
            (504, "", Class::Timeout),
        ];
        check(Protocol::OpenAiChat, cases);
        check(Protocol::OpenAiResponses, cases);
        // The Responses API's own wording of the overflow.
        let responses = r#"{"error":{"message":"Your input exceeds the context window of this model. Please adjust your input and try again.","type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}"#;
        assert_eq!(
            http(Protocol::OpenAiResponses, 400, None, responses),
            Class::ContextOverflow
        );
        // A server that copies the protocol, with another 4xx for the same overflow; a 429 with
        // a "request too large" wording stays a rate limit.
        let compatible = r#"{"error":{"message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","param":null,"code":422}}"#;
        assert_eq!(
            http(Protocol::OpenAiChat, 422, None, compatible),
            Class::ContextOverflow
        );
        assert_eq!(
            http(Protocol::OpenAiChat, 403, None, compatible),
            Class::ContextOverflow
        );
        let tpm = r#"{"error":{"message":"Request too large for gpt-4 in organization org-abc on tokens per min (TPM): Limit 10000, Requested 12000. The input or output tokens must be reduced in order to run successfully.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            http(Protocol::OpenAiChat, 429, None, tpm),
            Class::RateLimited
        );
    }

    #[test]
    fn openai_reads_error_code_from_the_body_not_only_the_type() {
        // `read_provider_error` keeps `error.type`; these answers come from `error.code` alone.
        let overflow = r#"{"error":{"message":"bad request","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}"#;
        let billing = r#"{"error":{"message":"no","type":"rate_limit_error","param":null,"code":"credit_balance_exhausted"}}"#;
        assert_eq!(
            http(Protocol::OpenAiChat, 400, None, overflow),
            Class::ContextOverflow
        );
        assert_eq!(
            http(Protocol::OpenAiChat, 429, None, billing),
            Class::BillingFailure
        );
        // The same 429 without the code is a plain rate limit.
        let plain =
            r#"{"error":{"message":"no","type":"rate_limit_error","param":null,"code":null}}"#;
        assert_eq!(
            http(Protocol::OpenAiChat, 429, None, plain),
            Class::RateLimited
        );
    }

    #[test]
    fn anthropic_documented_errors() {
        let err = |t: &str, m: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
            )
        };
        let cases = [
            (
                400,
                err(
                    "invalid_request_error",
                    "prompt is too long: 215432 tokens > 200000 maximum",
                ),
                Class::ContextOverflow,
            ),
            (
                400,
                err(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 90402 + 116650 > 204648, decrease input length or `max_tokens` and try again",
                ),
                Class::ContextOverflow,
            ),
            (
                400,
                err(
                    "invalid_request_error",
                    "messages: roles must alternate between \\\"user\\\" and \\\"assistant\\\"",
                ),
                Class::ClientError,
            ),
            (
                400,
                err(
                    "invalid_request_error",
                    "You have reached your specified API usage limits. You will regain access on 2025-09-01 at 00:00 UTC.",
                ),
                Class::BillingFailure,
            ),
            (
                400,
                err(
                    "invalid_request_error",
                    "You have reached your specified workspace API usage limits. You will regain access on 2025-09-01 at 00:00 UTC.",
                ),
                Class::BillingFailure,
            ),
            (
                400,
                err(
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                ),
                Class::BillingFailure,
            ),
            (
                401,
                err("authentication_error", "invalid x-api-key"),
                Class::AuthFailure,
            ),
            (
                402,
                err(
                    "billing_error",
                    "Your credit balance is too low to access the Anthropic API.",
                ),
                Class::BillingFailure,
            ),
            (
                403,
                err(
                    "permission_error",
                    "Your API key does not have permission to use the specified resource.",
                ),
                Class::AuthFailure,
            ),
            (
                404,
                err(
                    "not_found_error",
                    "The requested resource could not be found.",
                ),
                Class::ClientError,
            ),
            (
                413,
                err(
                    "request_too_large",
                    "Request exceeds the maximum allowed number of bytes.",
                ),
                Class::ClientError,
            ),
            (
                429,
                err(
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization of 50,000 input tokens per minute.",
                ),
                Class::RateLimited,
            ),
            (
                500,
                err("api_error", "Internal server error"),
                Class::ServerError,
            ),
            (
                504,
                err("timeout_error", "Request timed out"),
                Class::Timeout,
            ),
            (
                529,
                err("overloaded_error", "Overloaded"),
                Class::Overloaded,
            ),
        ];
        for (status, body, want) in &cases {
            assert_eq!(
                http(Protocol::Anthropic, *status, None, body),
                *want,
                "{status} {body}"
            );
        }
        // The tier's monthly cap: a 429 `rate_limit_error` that waiting does not fix.
        let cap = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your monthly spend limit.","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        assert_eq!(
            http(Protocol::Anthropic, 429, None, cap),
            Class::BillingFailure
        );
    }

    #[test]
    fn gemini_documented_errors() {
        let cases: &[Case<'_>] = &[
            (
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#,
                Class::AuthFailure,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"The input token count (314175) exceeds the maximum number of tokens allowed (131072).","status":"INVALID_ARGUMENT"}}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Invalid JSON payload received. Unknown name \"foo\": Cannot find field.","status":"INVALID_ARGUMENT"}}"#,
                Class::ClientError,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.","status":"FAILED_PRECONDITION"}}"#,
                Class::BillingFailure,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#,
                Class::AuthFailure,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"You do not have permission to access the File abc123 or it may not exist.","status":"PERMISSION_DENIED"}}"#,
                Class::ClientError,
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"models/gemini-9-pro is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.","status":"NOT_FOUND"}}"#,
                Class::ClientError,
            ),
            // Gemini's rate limit says "quota" and "billing" too: it is no billing failure.
            (
                429,
                r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"10"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#,
                Class::RateLimited,
            ),
            (
                500,
                r#"{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}"#,
                Class::ServerError,
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
                Class::Overloaded,
            ),
            (
                504,
                r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#,
                Class::Timeout,
            ),
            // A streamed response (JSON array) carries its error as the array's element.
            (
                400,
                r#"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}]"#,
                Class::AuthFailure,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Generative Language API has not been used in project 123 before or it is disabled.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com"}]}}"#,
                Class::AuthFailure,
            ),
        ];
        check(Protocol::Gemini, cases);
        // The `ErrorInfo.reason` decides over the status: this 403 is billing, not permission.
        let billing = r#"{"error":{"code":403,"message":"This API method requires billing to be enabled. Please enable billing on project #123 by visiting https://console.developers.google.com/billing/enable?project=123 then retry.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"BILLING_DISABLED","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com","consumer":"projects/123"}}]}}"#;
        assert_eq!(
            http(Protocol::Gemini, 403, None, billing),
            Class::BillingFailure
        );
    }

    #[test]
    fn cohere_documented_errors() {
        let cases: &[Case<'_>] = &[
            (
                400,
                r#"{"message":"too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4292. Try using a shorter prompt, or enabling prompt truncating. See https://docs.cohere.com/reference/generate for more details."}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"message":"too many tokens: size limit exceeded by 11326 tokens. Try using shorter or fewer inputs, or setting prompt_truncation='AUTO'."}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"message":"too many tokens: max tokens must be less than or equal to 4096, the maximum output for this model - received 8192."}"#,
                Class::ClientError,
            ),
            (
                400,
                r#"{"message":"invalid request: list of documents must not be empty"}"#,
                Class::ClientError,
            ),
            (
                401,
                r#"{"message":"invalid api token"}"#,
                Class::AuthFailure,
            ),
            (
                498,
                r#"{"message":"invalid api token"}"#,
                Class::AuthFailure,
            ),
            (
                402,
                r#"{"message":"Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue"}"#,
                Class::BillingFailure,
            ),
            (
                404,
                r#"{"message":"model 'command-x' not found, make sure the correct model ID was used and that you have access to the model."}"#,
                Class::ClientError,
            ),
            (
                429,
                r#"{"message":"You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits."}"#,
                Class::RateLimited,
            ),
            (
                499,
                r#"{"message":"request cancelled"}"#,
                Class::ClientError,
            ),
            (
                500,
                r#"{"message":"internal server error, this has been reported to our developers"}"#,
                Class::ServerError,
            ),
            (
                503,
                r#"{"message":"service unavailable"}"#,
                Class::Overloaded,
            ),
            (504, r#"{"message":"gateway timeout"}"#, Class::Timeout),
        ];
        check(Protocol::Cohere, cases);
    }

    #[test]
    fn bedrock_documented_errors() {
        let cases: &[(u16, &str, &str, Class)] = &[
            (
                400,
                "ValidationException",
                "Input is too long for requested model.",
                Class::ContextOverflow,
            ),
            (
                400,
                "ValidationException",
                "The model returned the following errors: prompt is too long: 200049 tokens > 200000 maximum",
                Class::ContextOverflow,
            ),
            (
                400,
                "ValidationException",
                "The model returned the following errors: Input is too long for requested model.",
                Class::ContextOverflow,
            ),
            (
                400,
                "ValidationException",
                "too many input tokens",
                Class::ContextOverflow,
            ),
            (
                400,
                "ValidationException",
                "The input exceeds the context window of the model.",
                Class::ContextOverflow,
            ),
            (
                400,
                "ValidationException",
                "Malformed input request: #: extraneous key [stream] is not permitted, please reformat your input and try again.",
                Class::ClientError,
            ),
            (
                400,
                "ValidationException",
                "The provided model identifier is invalid.",
                Class::ClientError,
            ),
            (
                400,
                "ValidationException",
                "Your AWS account is not authorized to invoke this API operation.",
                Class::AuthFailure,
            ),
            (
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
                Class::AuthFailure,
            ),
            (
                403,
                "AccessDeniedException",
                "Model access is denied due to INVALID_PAYMENT_INSTRUMENT:A valid payment instrument must be provided.",
                Class::BillingFailure,
            ),
            (
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                Class::AuthFailure,
            ),
            (
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
                Class::AuthFailure,
            ),
            (
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
                Class::AuthFailure,
            ),
            (
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
                Class::RateLimited,
            ),
            (
                429,
                "ThrottlingException",
                "Too many tokens, please wait before trying again.",
                Class::RateLimited,
            ),
            (
                400,
                "ServiceQuotaExceededException",
                "Your request exceeds the service quota for your account.",
                Class::RateLimited,
            ),
            (
                429,
                "ModelNotReadyException",
                "Model is not ready to serve inference requests.",
                Class::Overloaded,
            ),
            (
                503,
                "ServiceUnavailableException",
                "Bedrock is unable to process your request.",
                Class::Overloaded,
            ),
            (
                500,
                "InternalServerException",
                "The server encountered an internal error.",
                Class::ServerError,
            ),
            (
                424,
                "ModelErrorException",
                "The request failed due to an error while processing the model.",
                Class::ServerError,
            ),
            (
                408,
                "ModelTimeoutException",
                "Model has timed out in processing the request.",
                Class::Timeout,
            ),
            (
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model from the provided model identifier.",
                Class::ClientError,
            ),
        ];
        for (status, kind, message, want) in cases {
            let body = format!(r#"{{"message":"{message}"}}"#);
            // As the header sends it, with the Coral suffix `read_provider_error` strips.
            let header = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
            let got = http(Protocol::Bedrock, *status, Some(&header), &body);
            assert_eq!(got, *want, "{status} {kind} {message}");
        }
        // No header: the exception in `__type`, with its namespace.
        let body = r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#;
        assert_eq!(http(Protocol::Bedrock, 403, None, body), Class::AuthFailure);
        let body = r#"{"__type":"com.amazonaws.bedrock#ThrottlingException","message":"Too many requests"}"#;
        assert_eq!(http(Protocol::Bedrock, 400, None, body), Class::RateLimited);
    }

    #[test]
    fn stream_error_events() {
        use Protocol::*;
        let cases: &[(Protocol, Option<&str>, &str, Class)] = &[
            (
                OpenAiChat,
                Some("server_error"),
                "The server had an error while processing your request.",
                Class::ServerError,
            ),
            (
                OpenAiChat,
                Some("rate_limit_exceeded"),
                "Rate limit reached",
                Class::RateLimited,
            ),
            (
                OpenAiChat,
                Some("insufficient_quota"),
                "You exceeded your current quota",
                Class::BillingFailure,
            ),
            (
                OpenAiResponses,
                Some("server_is_overloaded"),
                "Our servers are currently overloaded.",
                Class::Overloaded,
            ),
            (
                OpenAiResponses,
                Some("context_length_exceeded"),
                "Your input exceeds the context window of this model.",
                Class::ContextOverflow,
            ),
            (
                OpenAiResponses,
                Some("vector_store_timeout"),
                "Vector store timed out",
                Class::Timeout,
            ),
            (
                OpenAiResponses,
                Some("invalid_prompt"),
                "Invalid prompt",
                Class::ClientError,
            ),
            (
                OpenAiResponses,
                Some("invalid_request_error"),
                "Your input exceeds the context window of this model.",
                Class::ContextOverflow,
            ),
            (
                Anthropic,
                Some("overloaded_error"),
                "Overloaded",
                Class::Overloaded,
            ),
            (
                Anthropic,
                Some("api_error"),
                "Internal server error",
                Class::ServerError,
            ),
            (
                Anthropic,
                Some("rate_limit_error"),
                "Rate limited",
                Class::RateLimited,
            ),
            (
                Gemini,
                Some("UNAVAILABLE"),
                "The model is overloaded. Please try again later.",
                Class::Overloaded,
            ),
            (
                Gemini,
                Some("RESOURCE_EXHAUSTED"),
                "Resource has been exhausted (e.g. check quota).",
                Class::RateLimited,
            ),
            (
                Gemini,
                Some("INTERNAL"),
                "An internal error has occurred.",
                Class::ServerError,
            ),
            (
                Gemini,
                Some("unavailable"),
                "lower case, as newer surfaces send it",
                Class::Overloaded,
            ),
            (
                Bedrock,
                Some("modelStreamErrorException"),
                "An error occurred while streaming the response.",
                Class::ServerError,
            ),
            (
                Bedrock,
                Some("throttlingException"),
                "Too many tokens, please wait before trying again.",
                Class::RateLimited,
            ),
            (
                Bedrock,
                Some("serviceUnavailableException"),
                "The service isn't available.",
                Class::Overloaded,
            ),
            (
                Bedrock,
                Some("modelTimeoutException"),
                "The request took too long to process.",
                Class::Timeout,
            ),
            (
                Bedrock,
                Some("internalServerException"),
                "An internal server error occurred.",
                Class::ServerError,
            ),
            (
                Bedrock,
                Some("validationException"),
                "Input is too long for requested model.",
                Class::ContextOverflow,
            ),
            (
                Cohere,
                Some("ERROR"),
                "the generation failed in mid-stream",
                Class::ServerError,
            ),
        ];
        for (p, code, message, want) in cases {
            assert_eq!(event(*p, *code, message), *want, "{p:?} {code:?} {message}");
        }
        // Unknown, absent, and busbar's own codes for a broken stream: the provider failed.
        for p in Protocol::ALL {
            assert_eq!(
                event(p, Some("something_new"), "?"),
                Class::ServerError,
                "{p:?}"
            );
            assert_eq!(event(p, None, ""), Class::ServerError, "{p:?}");
            let malformed = busbar_codec::stream::MALFORMED;
            assert_eq!(
                event(p, Some(malformed), "unreadable"),
                Class::ServerError,
                "{p:?}"
            );
            let cut = "the provider's stream ended before it was complete";
            assert_eq!(
                event(p, Some("stream_interrupted"), cut),
                Class::ServerError,
                "{p:?}"
            );
        }
    }

    #[test]
    fn overflow_wording_is_matched_whatever_its_case() {
        for message in [
            "PROMPT IS TOO LONG: 300000 tokens > 200000 maximum",
            "Prompt Is Too Long",
            "this model's MAXIMUM CONTEXT LENGTH is 8192 tokens",
        ] {
            assert_eq!(
                event(Protocol::Anthropic, Some("invalid_request_error"), message),
                Class::ContextOverflow
            );
            assert_eq!(
                event(Protocol::OpenAiChat, None, message),
                Class::ContextOverflow
            );
        }
        assert_eq!(
            http(
                Protocol::Bedrock,
                400,
                Some("ValidationException"),
                r#"{"message":"INPUT IS TOO LONG FOR REQUESTED MODEL."}"#
            ),
            Class::ContextOverflow
        );
        // The same words under a status that is no request error are not an overflow.
        let err = r#"{"type":"error","error":{"type":"api_error","message":"prompt is too long"}}"#;
        assert_eq!(
            http(Protocol::Anthropic, 500, None, err),
            Class::ServerError
        );
    }

    #[test]
    fn unknown_statuses_fall_back_by_class_of_status() {
        for p in Protocol::ALL {
            assert_eq!(http(p, 418, None, "{}"), Class::ClientError, "{p:?}");
            assert_eq!(
                http(p, 422, None, r#"{"message":"unprocessable"}"#),
                Class::ClientError,
                "{p:?}"
            );
            assert_eq!(http(p, 408, None, ""), Class::Timeout, "{p:?}");
            assert_eq!(
                http(p, 502, None, "bad gateway"),
                Class::ServerError,
                "{p:?}"
            );
            assert_eq!(http(p, 599, None, ""), Class::ServerError, "{p:?}");
            assert_eq!(http(p, 302, None, ""), Class::ServerError, "{p:?}");
        }
    }

    #[test]
    fn config_rules_come_before_the_built_in_tables() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = read_provider_error(None, overloaded.as_bytes());
        let facts = Facts {
            protocol: Protocol::Anthropic,
            status: Some(529),
            code: e.code.as_deref(),
            message: &e.message,
            body: overloaded.as_bytes(),
        };
        let rule = |status, code: Option<&str>, message: Option<&str>, class| Rule {
            status,
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            class,
        };
        assert_eq!(classify(&facts, &[]), Class::Overloaded);
        // A rule that matches wins; the first that matches decides.
        let rules = [
            rule(Some(500), None, None, Class::ClientError),
            rule(
                Some(529),
                Some("OVERLOADED_ERROR"),
                None,
                Class::RateLimited,
            ),
            rule(None, None, Some("overloaded"), Class::ServerError),
        ];
        assert_eq!(classify(&facts, &rules), Class::RateLimited);
        assert_eq!(classify(&facts, &rules[2..]), Class::ServerError);
        // One that does not match leaves the built-in answer.
        assert_eq!(classify(&facts, &rules[..1]), Class::Overloaded);
        // Rules see stream events too: a provider's own stream code made a hard failure.
        let event = Facts {
            protocol: Protocol::OpenAiResponses,
            status: None,
            code: Some("account_suspended"),
            message: "",
            body: b"",
        };
        assert_eq!(classify(&event, &[]), Class::ServerError);
        let suspended = [rule(
            None,
            Some("account_suspended"),
            None,
            Class::AuthFailure,
        )];
        assert_eq!(classify(&event, &suspended), Class::AuthFailure);
    }

    #[test]
    fn malformed_bodies_and_messages_never_panic() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\xff\xfe\x00garbage",
            b"{\"error\":",
            b"null",
            b"[]",
            b"[1,2,3]",
            b"{\"error\":\"just a string\"}",
            b"{\"error\":{\"details\":\"not an array\",\"code\":42}}",
            b"{\"error\":{\"details\":[null,1,{\"reason\":7}]}}",
            b"{\"type\":\"error\",\"error\":{\"details\":{\"error_code\":null}}}",
        ];
        let messages = ["", "é", "日本語のエラー", "\u{0}", "prompt is too lon"];
        for p in Protocol::ALL {
            for body in bodies {
                for status in [None, Some(0), Some(400), Some(429), Some(u16::MAX)] {
                    for message in messages {
                        let facts = Facts {
                            protocol: p,
                            status,
                            code: Some("\u{1F4A5}"),
                            message,
                            body,
                        };
                        // Whatever it is, it is what the status alone says: nothing was known.
                        assert_eq!(classify(&facts, &[]), by_status(status), "{p:?} {status:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn transport_failures() {
        use Transport::*;
        for t in [
            ConnectTimeout,
            HeadTimeout,
            FirstEventTimeout,
            EventGapTimeout,
        ] {
            assert_eq!(classify_transport(t), Class::Timeout, "{t:?}");
        }
        for t in [NoAddress, Connect, Tls, Send, Closed, BadHead, BodyBroken] {
            assert_eq!(classify_transport(t), Class::Network, "{t:?}");
        }
    }

    #[test]
    fn text_helpers() {
        assert!(contains_ci("Prompt Is Too Long", "prompt is too long"));
        assert!(!contains_ci("prompt", "prompt is too long"));
        assert!(contains_ci("", ""));
        assert_eq!(
            exception_name("ThrottlingException:http://internal.amazon.com/coral/"),
            "ThrottlingException"
        );
        assert_eq!(
            exception_name("com.amazonaws.bedrock#ModelTimeoutException"),
            "ModelTimeoutException"
        );
        assert_eq!(exception_name(""), "");
    }
}
