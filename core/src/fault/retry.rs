//! How long a provider asked to be left alone.
//!
//! ```text
//!   explicit, the first one present wins:
//!     retry-after-ms: 1500                                    OpenAI, Azure
//!     retry-after: 30 | Wed, 21 Oct 2015 07:28:00 GMT         everyone
//!     body error.details[RetryInfo].retryDelay: "30s"         Gemini
//!   else the largest reset among the limits whose remaining is 0:
//!     x-ratelimit-reset-{requests,tokens}: 6m0s               OpenAI
//!     anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset:
//!       2024-10-24T15:44:10Z                                  Anthropic
//!   then never more than an hour
//! ```
//!
//! Sans-io: the wall-clock time the dates need is passed in. It runs once per rate-limited
//! attempt, never per event. Nothing a provider sends can make it panic: numbers are checked
//! before they become durations, dates before they become times, and every value is capped.
//!
//! A negative or unreadable value is ignored, as if the header were absent, and the next source
//! is asked. A time that has already passed (an HTTP-date or a reset timestamp behind `now`,
//! usually a clock skew of a second or two) is a wait of zero, not `None`: the provider did say
//! when, and "now" is the honest reading of it. The caller's own minimum cooldown still applies.
//!
//! Sources: RFC 9110 §10.2.3 (`Retry-After`: delta-seconds or HTTP-date); the OpenAI SDKs, which
//! read `retry-after-ms` first; developers.openai.com "Rate limits" (`x-ratelimit-*` headers,
//! Go-style durations such as `6m0s`); platform.claude.com "Rate limits" (`retry-after` in
//! seconds, `anthropic-ratelimit-*-reset` in RFC 3339); Gemini's 429 body with
//! `google.rpc.RetryInfo` (`retryDelay` is a protobuf `Duration` in its JSON form, `"30s"`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// The longest wait taken from a provider. More is a mistake, or a daily or monthly reset that
/// the lane's long cooldown handles better than one sleep.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// OpenAI's `x-ratelimit-remaining-*` and the matching `x-ratelimit-reset-*` (a duration).
const OPENAI_RESETS: [(&str, &str); 2] = [
    (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
];

/// Anthropic's `anthropic-ratelimit-*-remaining` and the matching `-reset` (an RFC 3339 time).
const ANTHROPIC_RESETS: [(&str, &str); 4] = [
    (
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ),
    (
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ),
    (
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
    ),
    (
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ),
];

/// The wait a provider asked for: `retry-after-ms`, `Retry-After` (seconds or an HTTP date),
/// Gemini's `RetryInfo`, else the largest rate-limit reset whose remaining count is 0; at most
/// an hour. `header` looks up a response header by lower-case name; `now_unix_ms` is the
/// wall-clock time, for dates.
pub fn retry_after<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now_unix_ms: u64,
) -> Option<Duration> {
    let explicit = header("retry-after-ms")
        .and_then(|v| decimal(v).map(|ms| ms / 1000.0))
        .and_then(seconds)
        .or_else(|| header("retry-after").and_then(|v| retry_after_value(v, now_unix_ms)))
        .or_else(|| retry_info(body));
    explicit
        .or_else(|| largest_reset(header, now_unix_ms))
        .map(|d| d.min(MAX_WAIT))
}

/// A `Retry-After` value: delta-seconds (a decimal fraction is accepted, as the OpenAI SDKs do),
/// else an HTTP-date in any of the three forms RFC 9110 makes recipients accept.
fn retry_after_value(v: &str, now_unix_ms: u64) -> Option<Duration> {
    if let Some(d) = decimal(v).and_then(seconds) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(v.trim()).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(until(i128::try_from(ms).ok()?, now_unix_ms))
}

/// Gemini's `error.details[]` entry of `@type` `type.googleapis.com/google.rpc.RetryInfo`.
fn retry_info(body: &[u8]) -> Option<Duration> {
    // Most error bodies have none: do not parse them for nothing.
    if !body.windows(9).any(|w| w == b"RetryInfo") {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    // `{"error": ...}`, or `[{"error": ...}]` as a streamed response carries it.
    let error = v.get("error").or_else(|| v.get(0)?.get("error"))?;
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| {
            let delay = d.get("retryDelay")?.as_str()?;
            decimal(delay.trim().strip_suffix('s')?).and_then(seconds)
        })
}

/// The largest reset among the limits that are used up (remaining is exactly 0: Azure sends
/// `-1` for "not reported", which must not count).
fn largest_reset<'h>(
    header: &dyn Fn(&str) -> Option<&'h str>,
    now_unix_ms: u64,
) -> Option<Duration> {
    let used_up = |name: &str| header(name).is_some_and(|v| v.trim().parse::<u64>() == Ok(0));
    let openai = OPENAI_RESETS
        .iter()
        .filter(|(remaining, _)| used_up(remaining))
        .filter_map(|(_, reset)| header(reset).and_then(go_duration));
    let anthropic = ANTHROPIC_RESETS
        .iter()
        .filter(|(remaining, _)| used_up(remaining))
        .filter_map(|(_, reset)| header(reset).and_then(rfc3339_ms))
        .map(|at| until(i128::from(at), now_unix_ms));
    openai.chain(anthropic).max()
}

/// The wait until `at_ms` (Unix milliseconds): zero once it has passed, at most [`MAX_WAIT`].
fn until(at_ms: i128, now_unix_ms: u64) -> Duration {
    let ms = (at_ms - i128::from(now_unix_ms)).clamp(0, MAX_WAIT.as_millis() as i128);
    // In 0..=3_600_000 after the clamp, so it fits a u64.
    Duration::from_millis(ms as u64)
}

/// A non-negative decimal number (`30`, `1.5`): no sign, no exponent, no `inf`/`NaN`; a second
/// dot is left to `f64`'s parser to refuse. Digits beyond f64's range read as infinity, which
/// [`seconds`] caps.
fn decimal(s: &str) -> Option<f64> {
    let s = s.trim();
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || digits + dots != s.len() {
        return None;
    }
    s.parse().ok()
}

/// Seconds -> a duration, capped at [`MAX_WAIT`] before the conversion (which therefore
/// cannot fail on a huge value); `None` for what is not a non-negative number.
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs.min(MAX_WAIT.as_secs_f64())).ok()
}

/// A Go `time.Duration` string as OpenAI's reset headers send it: `1s`, `6m0s`, `20ms`,
/// `1h2m3.5s`, `0`. Units: `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. No sign.
fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number = |b: &u8| b.is_ascii_digit() || *b == b'.';
        // Both lengths end at an ASCII byte or the end, so they are char boundaries.
        let n = rest.bytes().take_while(number).count();
        let u = rest[n..].bytes().take_while(|b| !number(b)).count();
        let value = decimal(&rest[..n])?;
        let unit = match &rest[n..n + u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[n + u..];
    }
    seconds(total)
}

/// An RFC 3339 date-time (`2024-10-24T15:44:10Z`, `...10.5Z`, `...10+02:00`) -> Unix
/// milliseconds, read by the `time` crate.
fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2015-10-21T07:28:00Z (RFC 9110's example date), in Unix milliseconds.
    const OCT_21_2015: u64 = 1_445_412_480_000;
    /// 2024-10-24T15:44:00Z.
    const OCT_24_2024: u64 = 1_729_784_640_000;

    /// `retry_after` over a list of headers (lower-case names, as the caller looks them up).
    fn wait(headers: &[(&str, &str)], body: &str, now: u64) -> Option<Duration> {
        let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|&(_, v)| v);
        retry_after(&lookup, body.as_bytes(), now)
    }

    fn secs(s: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(s))
    }

    #[test]
    fn retry_after_ms_then_retry_after() {
        assert_eq!(wait(&[("retry-after-ms", "1500")], "", 0), secs(1.5));
        assert_eq!(wait(&[("retry-after-ms", "20.5")], "", 0), secs(0.0205));
        assert_eq!(wait(&[("retry-after", "30")], "", 0), secs(30.0));
        assert_eq!(wait(&[("retry-after", " 7 ")], "", 0), secs(7.0));
        // A fraction, as the OpenAI SDKs accept it.
        assert_eq!(wait(&[("retry-after", "1.5")], "", 0), secs(1.5));
        assert_eq!(wait(&[("retry-after", "0")], "", 0), secs(0.0));
        // The millisecond header is the more precise one and wins.
        let both = [("retry-after", "30"), ("retry-after-ms", "1500")];
        assert_eq!(wait(&both, "", 0), secs(1.5));
        // An unreadable `retry-after-ms` does not hide a good `retry-after`.
        let bad_ms = [("retry-after-ms", "soon"), ("retry-after", "4")];
        assert_eq!(wait(&bad_ms, "", 0), secs(4.0));
        assert_eq!(wait(&[], "", 0), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let date = [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")];
        assert_eq!(wait(&date, "", OCT_21_2015 - 90_000), secs(90.0));
        assert_eq!(wait(&date, "", OCT_21_2015 - 1_500), secs(1.5));
        // The obsolete forms a recipient must still read (RFC 9110 §5.6.7).
        let rfc850 = [("retry-after", "Wednesday, 21-Oct-15 07:28:00 GMT")];
        assert_eq!(wait(&rfc850, "", OCT_21_2015 - 10_000), secs(10.0));
        let asctime = [("retry-after", "Wed Oct 21 07:28:00 2015")];
        assert_eq!(wait(&asctime, "", OCT_21_2015 - 10_000), secs(10.0));
        // Passed already (a clock skew): retry now, not "no idea".
        assert_eq!(wait(&date, "", OCT_21_2015 + 5_000), Some(Duration::ZERO));
        assert_eq!(wait(&date, "", u64::MAX), Some(Duration::ZERO));
    }

    #[test]
    fn gemini_retry_info_in_the_body() {
        let body = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"10"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}"#;
        assert_eq!(wait(&[], body, 0), secs(30.0));
        let fraction = body.replace("\"30s\"", "\"1.5s\"");
        assert_eq!(wait(&[], &fraction, 0), secs(1.5));
        // As a streamed response carries it.
        assert_eq!(wait(&[], &format!("[{body}]"), 0), secs(30.0));
        // A header still comes first.
        assert_eq!(wait(&[("retry-after", "2")], body, 0), secs(2.0));
        // Negative, unit-less or missing delays are no answer.
        for bad in ["\"-3s\"", "\"30\"", "\"s\"", "30", "null"] {
            let body = body.replace("\"30s\"", bad);
            assert_eq!(wait(&[], &body, 0), None, "{bad}");
        }
        let no_retry_info = body.replace("google.rpc.RetryInfo", "google.rpc.DebugInfo");
        assert_eq!(wait(&[], &no_retry_info, 0), None);
    }

    #[test]
    fn openai_resets_when_a_limit_is_used_up() {
        let both = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ];
        assert_eq!(wait(&both, "", 0), secs(360.0));
        // Only the used-up limit counts, however long the other's reset is.
        let tokens_only = [
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-reset-requests", "59s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ];
        assert_eq!(wait(&tokens_only, "", 0), secs(0.02));
        // Nothing used up (Azure's -1 is "not reported"): no wait known.
        let none = [
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-reset-requests", "12ms"),
            ("x-ratelimit-remaining-tokens", "-1"),
            ("x-ratelimit-reset-tokens", "0"),
        ];
        assert_eq!(wait(&none, "", 0), None);
        // An explicit Retry-After wins over every reset.
        let mut explicit = both.to_vec();
        explicit.push(("retry-after", "2"));
        assert_eq!(wait(&explicit, "", 0), secs(2.0));
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("1s", secs(1.0)),
            ("6m0s", secs(360.0)),
            ("20ms", secs(0.02)),
            ("0h2m3.5s", secs(123.5)),
            ("1h", secs(3600.0)),
            // Read whole, then capped like every wait.
            ("1h2m3.5s", Some(MAX_WAIT)),
            ("1.5s", secs(1.5)),
            ("100us", secs(0.0001)),
            ("100µs", secs(0.0001)),
            ("250ns", secs(0.000_000_25)),
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("", None),
            ("s", None),
            ("1", None),
            ("1x", None),
            ("1..2s", None),
            ("-1s", None),
            ("1h-2m", None),
            ("1 s", None),
        ];
        for (text, want) in cases {
            assert_eq!(go_duration(text), want, "{text:?}");
        }
    }

    #[test]
    fn anthropic_resets_when_a_limit_is_used_up() {
        let h = [
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2024-10-24T15:44:10Z"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2024-10-24T15:45:00Z"),
            // Not used up: its later reset does not count.
            ("anthropic-ratelimit-input-tokens-remaining", "18000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2024-10-24T15:50:00Z",
            ),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2024-10-24T15:44:30.5Z",
            ),
        ];
        assert_eq!(wait(&h, "", OCT_24_2024), secs(60.0));
        assert_eq!(wait(&h[..2], "", OCT_24_2024), secs(10.0));
        assert_eq!(wait(&h[6..], "", OCT_24_2024), secs(30.5));
        // Passed already: zero.
        assert_eq!(
            wait(&h[..2], "", OCT_24_2024 + 60_000),
            Some(Duration::ZERO)
        );
        // `retry-after` (seconds, on Anthropic's 429) comes first.
        let mut with_retry_after = h.to_vec();
        with_retry_after.push(("retry-after", "7"));
        assert_eq!(wait(&with_retry_after, "", OCT_24_2024), secs(7.0));
    }

    #[test]
    fn rfc3339_timestamps() {
        let at = |s: &str| rfc3339_ms(s);
        let base = OCT_24_2024 as i64;
        assert_eq!(at("2024-10-24T15:44:00Z"), Some(base));
        assert_eq!(at("2024-10-24t15:44:00z"), Some(base));
        assert_eq!(at("2024-10-24 15:44:00Z"), Some(base));
        assert_eq!(at("2024-10-24T15:44:00.5Z"), Some(base + 500));
        assert_eq!(at("2024-10-24T15:44:00.123456789Z"), Some(base + 123));
        assert_eq!(at("2024-10-24T17:44:00+02:00"), Some(base));
        assert_eq!(at("2024-10-24T13:14:00-02:30"), Some(base));
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(at("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        // Leap years: every fourth, not every hundredth, but every four-hundredth.
        assert_eq!(at("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(at("2100-02-29T00:00:00Z"), None);
        assert_eq!(at("1969-12-31T23:59:59Z"), Some(-1000));
        for bad in [
            "",
            "yesterday",
            "2024-10-24T15:44:00",
            "2024-10-24T15:44:00.Z",
            "2024-10-24T15:44:00+0200",
            "2024-10-24T15:44:00+24:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-10-24T24:00:00Z",
            "2024-10-24T15:60:00Z",
            "2024-10-24T15:44:61Z",
            "2024-10-24T15:44:00Zjunk",
            "+2024-10-24T15:44:00Z",
            "2024-1a-24T15:44:00Z",
            "2024-10-24T15:44:00Z\u{e9}",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn absurd_waits_are_capped_at_an_hour() {
        let hour = Some(MAX_WAIT);
        assert_eq!(wait(&[("retry-after", "86400")], "", 0), hour);
        assert_eq!(wait(&[("retry-after", &"9".repeat(400))], "", 0), hour);
        assert_eq!(
            wait(&[("retry-after-ms", "99999999999999999999999")], "", 0),
            hour
        );
        let far = [("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")];
        assert_eq!(wait(&far, "", OCT_21_2015), hour);
        let openai = [
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "99999999h"),
        ];
        assert_eq!(wait(&openai, "", 0), hour);
        let anthropic = [
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "9999-12-31T23:59:59Z"),
        ];
        assert_eq!(wait(&anthropic, "", 0), hour);
        let gemini = r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"315576000000s"}]}}"#;
        assert_eq!(wait(&[], gemini, 0), hour);
    }

    #[test]
    fn malformed_values_are_ignored_and_never_panic() {
        let junk = [
            "",
            " ",
            "-5",
            "+5",
            "1e3",
            "inf",
            "NaN",
            "0x10",
            "1,5",
            "1.2.3",
            "\u{1F4A5}",
            "µ",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 07:28:00 PST",
            "2024-10-24T15:44:00Z",
            "9".repeat(5000).leak(),
        ];
        let names = [
            "retry-after-ms",
            "retry-after",
            "x-ratelimit-reset-tokens",
            "anthropic-ratelimit-tokens-reset",
        ];
        for value in junk {
            for now in [0, OCT_21_2015, u64::MAX] {
                // Alone, none of these says anything readable but the long digit run (capped).
                let got = wait(&[("retry-after", value)], "", now);
                assert!(
                    got.is_none() || got == Some(MAX_WAIT),
                    "{value:?} -> {got:?}"
                );
                let mut all: Vec<(&str, &str)> = names.iter().map(|n| (*n, value)).collect();
                all.push(("x-ratelimit-remaining-tokens", "0"));
                all.push(("anthropic-ratelimit-tokens-remaining", "0"));
                let got = wait(&all, "", now);
                assert!(got.is_none_or(|d| d <= MAX_WAIT), "{value:?}");
            }
        }
        // `-5` is ignored, so the next source answers.
        let next = [
            ("retry-after", "-5"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "3s"),
        ];
        assert_eq!(wait(&next, "", 0), secs(3.0));
        for body in [
            &b"\xff\xfeRetryInfo\x00"[..],
            b"{\"error\":{\"details\":\"RetryInfo\"}}",
            b"{\"error\":{\"details\":[{\"@type\":\"google.rpc.RetryInfo\",\"retryDelay\":7}]}}",
            b"[\"RetryInfo\"]",
            b"RetryInfo",
        ] {
            assert_eq!(retry_after(&|_| None, body, 0), None);
        }
    }

    #[test]
    fn headers_may_borrow_from_the_response() {
        // The lookup returns values that live as long as the caller's header storage, not
        // `'static`: what a real response's headers give.
        let owned: Vec<(String, String)> = vec![("retry-after".into(), "12".into())];
        let lookup = |name: &str| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(retry_after(&lookup, b"", 0), secs(12.0));
    }
}
