//! The providers' own error answers, in their own words, status and headers: one table per
//! provider family, kept as fixtures (`bench/fixtures/errors/*.json`), each body with the
//! reference it was checked against (`source`).
//!
//! ```text
//!   (protocol, Ask::Status(n) | Ask::Fault(name), Fill) --answer--> status, headers, body
//!   fixture entry: {status, headers?, body, source} | status alias {fault: name}
//!   placeholders:  {{model}} {{wait}} (seconds) {{reset}} (RFC 3339) {{request_id}}
//! ```
//!
//! A status with no entry falls back to busbar-codec's rendering of the protocol's error shape,
//! and a fault name the provider has no entry for is a 400 saying so. Pure: the clock and the
//! request id come in through [`Fill`].

use super::steer::Ask;
use busbar_codec::Protocol;
use busbar_codec::errors::{ErrorKind, render};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The fixtures, in the order of [`family`].
const FIXTURES: [(&str, &str); 5] = [
    ("openai", include_str!("../../fixtures/errors/openai.json")),
    (
        "anthropic",
        include_str!("../../fixtures/errors/anthropic.json"),
    ),
    ("gemini", include_str!("../../fixtures/errors/gemini.json")),
    ("cohere", include_str!("../../fixtures/errors/cohere.json")),
    (
        "bedrock",
        include_str!("../../fixtures/errors/bedrock.json"),
    ),
];

/// The faults every provider has an entry for.
pub(crate) const COMMON_FAULTS: [&str; 5] = ["context", "auth", "billing", "overloaded", "rate"];

/// One error answer, as a template.
#[derive(Debug)]
struct Entry {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body as JSON text, placeholders unfilled.
    body: String,
}

#[derive(Debug)]
enum StatusEntry {
    Own(Entry),
    /// The answer is the fault of this name (which has this status).
    Fault(String),
}

#[derive(Debug)]
struct Table {
    headers: Vec<(String, String)>,
    faults: BTreeMap<String, Entry>,
    statuses: BTreeMap<u16, StatusEntry>,
}

/// What varies per answer.
#[derive(Debug, Clone)]
pub(crate) struct Fill<'a> {
    /// The model asked for (`{{model}}`).
    pub(crate) model: &'a str,
    /// Seconds the provider says to wait (`{{wait}}`, and `{{reset}}` = now + wait).
    pub(crate) wait: u64,
    pub(crate) now: SystemTime,
    pub(crate) request_id: String,
}

/// An error answer, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Which table a protocol's errors come from (Responses shares OpenAI's).
fn family(p: Protocol) -> usize {
    match p {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => 0,
        Protocol::Anthropic => 1,
        Protocol::Gemini => 2,
        Protocol::Cohere => 3,
        Protocol::Bedrock => 4,
    }
}

fn tables() -> &'static [Table] {
    static TABLES: OnceLock<Vec<Table>> = OnceLock::new();
    TABLES.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|(name, text)| {
                // The fixtures are compiled in, and `every_fixture_parses` proves each one
                // parses: a failure here is a broken build, not bad input.
                parse_table(text)
                    .unwrap_or_else(|e| panic!("bench/fixtures/errors/{name}.json: {e}"))
            })
            .collect()
    })
}

fn headers_of(v: Option<&RawValue>) -> Result<Vec<(String, String)>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let map: BTreeMap<String, String> =
        serde_json::from_str(v.get()).map_err(|_| "headers must be an object of strings")?;
    Ok(map.into_iter().collect())
}

/// A JSON object whose values are kept as their text (bodies keep the providers' key order).
type RawObject = BTreeMap<String, Box<RawValue>>;

fn raw_object(v: &RawValue) -> Result<RawObject, String> {
    serde_json::from_str(v.get()).map_err(|_| format!("not an object: {}", v.get()))
}

fn parse_entry(v: &RawValue) -> Result<Entry, String> {
    let o = raw_object(v)?;
    let status = o
        .get("status")
        .and_then(|s| s.get().parse::<u16>().ok())
        .filter(|s| (300..600).contains(s))
        .ok_or("status must be a number in 300..600")?;
    let body = o.get("body").ok_or("no body")?.get();
    if !serde_json::from_str::<Value>(body).is_ok_and(|b| b.is_object()) {
        return Err("body must be an object".into());
    }
    o.get("source")
        .and_then(|s| serde_json::from_str::<String>(s.get()).ok())
        .ok_or("every entry names its source")?;
    Ok(Entry {
        status,
        headers: headers_of(o.get("headers").map(|h| &**h))?,
        body: body.to_string(),
    })
}

fn parse_table(text: &str) -> Result<Table, String> {
    let top: RawObject = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut faults = BTreeMap::new();
    for (name, e) in raw_object(top.get("faults").ok_or("no faults")?)? {
        faults.insert(
            name.clone(),
            parse_entry(&e).map_err(|e| format!("fault {name}: {e}"))?,
        );
    }
    let mut statuses = BTreeMap::new();
    for (key, e) in raw_object(top.get("statuses").ok_or("no statuses")?)? {
        let status: u16 = key.parse().map_err(|_| format!("status key {key}"))?;
        let alias = raw_object(&e)?
            .get("fault")
            .and_then(|f| serde_json::from_str::<String>(f.get()).ok());
        let entry = if let Some(f) = alias {
            let target = faults
                .get(&f)
                .ok_or_else(|| format!("status {key}: no fault {f}"))?;
            if target.status != status {
                return Err(format!(
                    "status {key}: fault {f} has status {}",
                    target.status
                ));
            }
            StatusEntry::Fault(f)
        } else {
            let own = parse_entry(&e).map_err(|e| format!("status {key}: {e}"))?;
            if own.status != status {
                return Err(format!("status {key}: entry has status {}", own.status));
            }
            StatusEntry::Own(own)
        };
        statuses.insert(status, entry);
    }
    for f in COMMON_FAULTS {
        if !faults.contains_key(f) {
            return Err(format!("no fault {f}"));
        }
    }
    Ok(Table {
        headers: headers_of(top.get("headers").map(|h| &**h))?,
        faults,
        statuses,
    })
}

/// Whether any provider has a fault of this name.
pub(crate) fn is_fault(name: &str) -> bool {
    tables().iter().any(|t| t.faults.contains_key(name))
}

/// The faults a protocol's provider has.
pub(crate) fn fault_names(p: Protocol) -> Vec<&'static str> {
    tables()[family(p)]
        .faults
        .keys()
        .map(String::as_str)
        .collect()
}

/// A request id in the provider's own format.
pub(crate) fn request_id(p: Protocol) -> String {
    let hex = fastrand::u128(..);
    match p {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => format!("req_{hex:032x}"),
        Protocol::Anthropic => {
            let tail: String = std::iter::repeat_with(fastrand::alphanumeric)
                .take(14)
                .collect();
            format!("req_011CMock{tail}")
        }
        _ => format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hex >> 96,
            (hex >> 80) & 0xffff,
            (hex >> 64) & 0xffff,
            (hex >> 48) & 0xffff,
            hex & 0xffff_ffff_ffff
        ),
    }
}

/// The text of `s` as it stands inside a JSON string.
fn json_inner(s: &str) -> String {
    let quoted = serde_json::Value::from(s).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    aws_smithy_types::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

fn fill(template: &str, f: &Fill<'_>, model: &str) -> String {
    let reset = rfc3339(f.now + Duration::from_secs(f.wait));
    template
        .replace("{{model}}", model)
        .replace("{{wait}}", &f.wait.to_string())
        .replace("{{reset}}", &reset)
        .replace("{{request_id}}", &f.request_id)
}

/// Appends to the error's message, wherever the protocol keeps it (`error.message` or
/// `message`), leaving the rest of the body's text as it is.
fn tag_message(body: &str, tag: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let message = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str);
    let Some(m) = message else {
        return body.to_string();
    };
    let old = format!("\"{}\"", json_inner(m));
    let new = format!("\"{}\"", json_inner(&format!("{m}{tag}")));
    body.replacen(&old, &new, 1)
}

/// The error `ask` in `p`'s provider's own words. A status asked by the request itself
/// (`tagged`) says so at the end of its message (`mock: status N as requested ...`); a fault,
/// or a status set by a rule, is the provider's text exactly.
pub(crate) fn answer(p: Protocol, ask: Ask<'_>, tagged: bool, f: &Fill<'_>) -> Answer {
    let table = &tables()[family(p)];
    // Header values may not carry control characters (a model name is the request's text).
    let plain: String = f.model.chars().filter(|c| !c.is_control()).collect();
    let fill_headers = |own: &[(String, String)]| -> Vec<(String, String)> {
        table
            .headers
            .iter()
            .chain(own)
            .map(|(k, v)| (k.clone(), fill(v, f, &plain)))
            .collect()
    };
    let entry = match ask {
        Ask::Fault(name) => match table.faults.get(name) {
            Some(e) => e,
            None => {
                let msg = format!(
                    "mock: protocol {} has no fault `{name}` (it has: {})",
                    p.as_str(),
                    fault_names(p).join(", ")
                );
                return fallback(p, 400, ErrorKind::InvalidRequest, &msg, fill_headers(&[]));
            }
        },
        Ask::Status(n) => match table.statuses.get(&n) {
            Some(StatusEntry::Own(e)) => e,
            Some(StatusEntry::Fault(name)) => &table.faults[name.as_str()],
            None => {
                // No body of the provider's for this status: the protocol's shape, saying so.
                let msg = if tagged {
                    format!("mock: status {n} as requested by x-mock-status or mock-status=")
                } else {
                    format!(
                        "mock: status {n} as set by a fault rule ({} has no own body for it)",
                        p.as_str()
                    )
                };
                let kind = ErrorKind::from_status(n);
                return fallback(p, n, kind, &msg, fill_headers(&[]));
            }
        },
    };
    let body = fill(&entry.body, f, &json_inner(f.model));
    let body = match ask {
        Ask::Status(n) if tagged => tag_message(
            &body,
            &format!(" (mock: status {n} as requested by x-mock-status or mock-status=)"),
        ),
        _ => body,
    };
    Answer {
        status: entry.status,
        headers: fill_headers(&entry.headers),
        body: body.into_bytes(),
    }
}

/// busbar-codec's rendering of the protocol's error shape, with the provider's own headers.
fn fallback(
    p: Protocol,
    status: u16,
    kind: ErrorKind,
    message: &str,
    mut headers: Vec<(String, String)>,
) -> Answer {
    let r = render(p, status, kind, message, None, None);
    headers.extend(r.headers.into_iter().map(|(k, v)| (k.to_string(), v)));
    Answer {
        status,
        headers,
        body: r.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use busbar_codec::errors::read_provider_error;

    fn fill_at(now_secs: u64, wait: u64) -> Fill<'static> {
        Fill {
            model: "m-\"x\"",
            wait,
            now: UNIX_EPOCH + Duration::from_secs(now_secs),
            request_id: "req_mock1".into(),
        }
    }

    fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
        a.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What busbar's codec reads back from an answer: its code and message.
    fn read(a: &Answer) -> (Option<String>, String) {
        let e = read_provider_error(header(a, "x-amzn-errortype"), &a.body);
        (e.code, e.message)
    }

    #[test]
    fn every_fixture_parses() {
        for (name, text) in FIXTURES {
            let t = parse_table(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            for n in [400, 429, 500] {
                assert!(t.statuses.contains_key(&n), "{name} {n}");
            }
        }
        assert_eq!(tables().len(), FIXTURES.len());
    }

    #[test]
    fn a_broken_table_is_refused() {
        let bad = [
            r#"{"faults":{},"statuses":{}}"#,
            r#"{"faults":{"context":{"status":200,"body":{},"source":"x"}},"statuses":{}}"#,
            r#"{"faults":{"context":{"status":400,"body":{}}},"statuses":{}}"#,
            r#"{"faults":{"rate":{"status":429,"body":{},"source":"x"}},"statuses":{"503":{"fault":"rate"}}}"#,
            r#"{"faults":{"rate":{"status":429,"body":{},"source":"x"}},"statuses":{"429":{"fault":"nope"}}}"#,
        ];
        for b in bad {
            assert!(parse_table(b).is_err(), "{b}");
        }
    }

    /// Every protocol x every common fault: the status and what busbar's codec reads back
    /// (the provider's own code, and the start of its message).
    #[test]
    fn every_fault_reads_back_as_the_providers_error() {
        type Want = (u16, Option<&'static str>, &'static str);
        let want = |p: Protocol, fault: &str| -> Want {
            match (p, fault) {
                (Protocol::OpenAiChat | Protocol::OpenAiResponses, f) => match f {
                    "context" => (
                        400,
                        Some("invalid_request_error"),
                        "This model's maximum context length is 128000 tokens",
                    ),
                    "auth" => (
                        401,
                        Some("invalid_request_error"),
                        "Incorrect API key provided",
                    ),
                    "billing" => (
                        429,
                        Some("insufficient_quota"),
                        "You exceeded your current quota",
                    ),
                    "overloaded" => (
                        503,
                        Some("server_error"),
                        "That model is currently overloaded",
                    ),
                    _ => (
                        429,
                        Some("requests"),
                        "Rate limit reached for m-\"x\" in organization",
                    ),
                },
                (Protocol::Anthropic, f) => match f {
                    "context" => (
                        400,
                        Some("invalid_request_error"),
                        "prompt is too long: 210000 tokens > 200000 maximum",
                    ),
                    "auth" => (401, Some("authentication_error"), "invalid x-api-key"),
                    "billing" => (
                        400,
                        Some("invalid_request_error"),
                        "Your credit balance is too low",
                    ),
                    "overloaded" => (529, Some("overloaded_error"), "Overloaded"),
                    _ => (
                        429,
                        Some("rate_limit_error"),
                        "This request would exceed the rate limit",
                    ),
                },
                (Protocol::Gemini, f) => match f {
                    "context" => (
                        400,
                        Some("INVALID_ARGUMENT"),
                        "The input token count (1200000) exceeds",
                    ),
                    "auth" => (400, Some("INVALID_ARGUMENT"), "API key not valid."),
                    "billing" => (
                        400,
                        Some("FAILED_PRECONDITION"),
                        "Gemini API free tier is not available",
                    ),
                    "overloaded" => (503, Some("UNAVAILABLE"), "The model is overloaded."),
                    _ => (
                        429,
                        Some("RESOURCE_EXHAUSTED"),
                        "You exceeded your current quota",
                    ),
                },
                (Protocol::Cohere, f) => match f {
                    "context" => (400, None, "too many tokens: "),
                    "auth" => (401, None, "invalid api token"),
                    "billing" => (402, None, "Please add or update your payment method"),
                    "overloaded" => (503, None, "service unavailable"),
                    _ => (429, None, "You are using a Trial key, which is limited to"),
                },
                (Protocol::Bedrock, f) => match f {
                    "context" => (
                        400,
                        Some("ValidationException"),
                        "Input is too long for requested model.",
                    ),
                    "auth" => (
                        403,
                        Some("UnrecognizedClientException"),
                        "The security token included in the request is invalid.",
                    ),
                    "billing" => (
                        403,
                        Some("AccessDeniedException"),
                        "Model access is denied due to INVALID_PAYMENT_INSTRUMENT",
                    ),
                    "overloaded" => (
                        503,
                        Some("ServiceUnavailableException"),
                        "Bedrock is unable to process your request.",
                    ),
                    _ => (
                        429,
                        Some("ThrottlingException"),
                        "Too many requests, please wait",
                    ),
                },
            }
        };
        for p in Protocol::ALL {
            for fault in COMMON_FAULTS {
                let a = answer(p, Ask::Fault(fault), true, &fill_at(1_700_000_000, 3));
                let (code, message) = read(&a);
                let (status, want_code, prefix) = want(p, fault);
                let at = format!("{} {fault}", p.as_str());
                assert_eq!(a.status, status, "{at}");
                assert_eq!(code.as_deref(), want_code, "{at}");
                assert!(message.starts_with(prefix), "{at}: {message}");
                assert!(
                    !message.contains("mock: status"),
                    "{at}: a fault is untagged"
                );
            }
        }
    }

    /// The gateway's classification (busbar-core, written from the providers' references on
    /// its own) reads every fault the mock sends as the class its name says, in every protocol.
    #[test]
    fn the_gateway_classifies_every_fault_as_its_name_says() {
        use busbar_core::fault::{Class, Facts, classify};
        for p in Protocol::ALL {
            for fault in fault_names(p) {
                let want = match fault {
                    "context" => Class::ContextOverflow,
                    "auth" => Class::AuthFailure,
                    "billing" => Class::BillingFailure,
                    "overloaded" | "not_ready" => Class::Overloaded,
                    "rate" | "quota" => Class::RateLimited,
                    "timeout" => Class::Timeout,
                    other => panic!("no expectation for fault `{other}`"),
                };
                let a = answer(p, Ask::Fault(fault), false, &fill_at(0, 1));
                let (code, message) = read(&a);
                let got = classify(
                    &Facts {
                        protocol: p,
                        status: Some(a.status),
                        code: code.as_deref(),
                        message: &message,
                        body: &a.body,
                    },
                    &[],
                );
                assert_eq!(got, want, "{} {fault}: {} {message}", p.as_str(), a.status);
            }
        }
    }

    #[test]
    fn every_status_entry_reads_back_with_its_status() {
        for p in Protocol::ALL {
            let table = &tables()[family(p)];
            for &n in table.statuses.keys() {
                let a = answer(p, Ask::Status(n), true, &fill_at(0, 1));
                let (code, message) = read(&a);
                let at = format!("{} {n}", p.as_str());
                assert_eq!(a.status, n, "{at}");
                assert_eq!(code.is_some(), p != Protocol::Cohere, "{at}");
                assert!(
                    message.ends_with(&format!(
                        "(mock: status {n} as requested by x-mock-status or mock-status=)"
                    )),
                    "{at}: {message}"
                );
                let text = String::from_utf8_lossy(&a.body);
                assert!(!text.contains("{{"), "{at}: {text}");
                assert!(a.headers.iter().all(|(_, v)| !v.contains("{{")), "{at}");
                let untagged = answer(p, Ask::Status(n), false, &fill_at(0, 1));
                assert!(!read(&untagged).1.contains("mock:"), "{at}");
            }
        }
    }

    #[test]
    fn rate_limits_say_when_to_come_back() {
        let f = fill_at(1_700_000_000, 7);
        let o = answer(Protocol::OpenAiChat, Ask::Fault("rate"), false, &f);
        assert_eq!(header(&o, "x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(header(&o, "x-ratelimit-reset-requests"), Some("7s"));
        assert!(read(&o).1.contains("Please try again in 7s."));
        assert_eq!(header(&o, "x-request-id"), Some("req_mock1"));
        // The body keeps the provider's key order (message, type, param, code).
        let text = String::from_utf8_lossy(&o.body);
        let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(at("message") < at("type") && at("type") < at("param") && at("param") < at("code"));
        let a = answer(Protocol::Anthropic, Ask::Status(429), false, &f);
        assert_eq!(
            header(&a, "anthropic-ratelimit-requests-remaining"),
            Some("0")
        );
        assert_eq!(
            header(&a, "anthropic-ratelimit-requests-reset"),
            Some("2023-11-14T22:13:27Z")
        );
        let body: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["request_id"], "req_mock1");
        let g = answer(Protocol::Gemini, Ask::Fault("rate"), false, &f);
        let body: Value = serde_json::from_slice(&g.body).unwrap();
        let retry = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
            .unwrap();
        assert_eq!(retry["retryDelay"], "7s");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("model: m-\"x\"")
        );
        let b = answer(Protocol::Bedrock, Ask::Fault("rate"), false, &f);
        assert_eq!(header(&b, "x-amzn-RequestId"), Some("req_mock1"));
    }

    #[test]
    fn what_the_table_lacks_is_still_answered() {
        let f = fill_at(0, 1);
        let a = answer(Protocol::Gemini, Ask::Status(418), true, &f);
        let (code, message) = read(&a);
        assert_eq!(a.status, 418);
        assert_eq!(code.as_deref(), Some("INVALID_ARGUMENT"));
        assert!(message.contains("mock: status 418"));
        let b = answer(Protocol::Bedrock, Ask::Status(502), true, &f);
        assert_eq!(read(&b).0.as_deref(), Some("ServiceUnavailableException"));
        assert_eq!(header(&b, "x-amzn-RequestId"), Some("req_mock1"));
        let r = answer(Protocol::Anthropic, Ask::Status(503), false, &f);
        assert_eq!(read(&r).0.as_deref(), Some("overloaded_error"));
        assert!(read(&r).1.contains("set by a fault rule"));
        let c = answer(Protocol::OpenAiChat, Ask::Fault("not_ready"), false, &f);
        assert_eq!(c.status, 400);
        assert!(read(&c).1.contains("has no fault `not_ready`"));
        assert!(is_fault("not_ready") && is_fault("rate") && !is_fault("nope"));
        let n = answer(Protocol::Bedrock, Ask::Fault("not_ready"), false, &f);
        assert_eq!(
            (n.status, read(&n).0.as_deref()),
            (429, Some("ModelNotReadyException"))
        );
    }

    #[test]
    fn request_ids_look_like_the_providers() {
        assert!(request_id(Protocol::OpenAiChat).starts_with("req_"));
        assert!(request_id(Protocol::Anthropic).starts_with("req_011C"));
        let b = request_id(Protocol::Bedrock);
        assert_eq!(b.len(), 36);
        assert_eq!(b.matches('-').count(), 4);
    }
}
