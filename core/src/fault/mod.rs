//! Fault classification: what an upstream outcome means for the request and for the lane.
//!
//! ```text
//!   provider error (status, its type/code, its message, its body)  --classify-->  Class
//!   stream error event (code, message; no status)                  --classify-->  Class
//!   transport failure (connect, TLS, deadlines, reset)   --classify_transport-->  Class
//!   Retry-After / retry-after-ms / rate-limit reset headers / RetryInfo  --retry_after--> wait
//! ```
//!
//! Per-provider rules from the config are tried first, then the provider's documented errors
//! for its protocol, then the HTTP status. Pure functions: no clock (the wall-clock time that
//! reset timestamps need is passed in), no I/O.

mod classify;
mod retry;

pub use classify::{classify, classify_transport};
pub use retry::retry_after;

use busbar_codec::Protocol;

/// What kind of failure an upstream outcome is; each class is handled its own way (README,
/// "Failures and failover").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// The request itself is wrong (400, 404, 413, 422 ...): relayed as it is, not retried,
    /// no penalty for the lane.
    ClientError,
    /// The prompt does not fit the model's context window: no penalty; retried only on a
    /// member with a larger window.
    ContextOverflow,
    /// Rate limited (429, throttling): the lane cools down for at least what the provider
    /// asked (`Retry-After`, reset headers); counts toward tripping.
    RateLimited,
    /// The provider is overloaded (529, 503 UNAVAILABLE, ModelNotReady): counts toward tripping.
    Overloaded,
    /// The provider failed (500, 502, a broken body or stream): counts toward tripping.
    ServerError,
    /// A deadline passed (connect, response head, first event, gap between events, or the
    /// provider's own timeout): counts toward tripping.
    Timeout,
    /// The provider could not be reached or the connection broke (refused, reset, TLS,
    /// unreadable response head): counts toward tripping.
    Network,
    /// busbar's credentials for the provider are refused (401, 403, invalid key): the lane opens
    /// at once with the long cooldown, loudly.
    AuthFailure,
    /// The provider's account is out of credit or quota (402, insufficient_quota, billing not
    /// enabled): the lane opens at once with the long cooldown, loudly.
    BillingFailure,
}

impl Class {
    /// Every class, in the order of the README's table.
    pub const ALL: [Class; 9] = [
        Class::ClientError,
        Class::ContextOverflow,
        Class::RateLimited,
        Class::Overloaded,
        Class::ServerError,
        Class::Timeout,
        Class::Network,
        Class::AuthFailure,
        Class::BillingFailure,
    ];

    /// The name used in config rules, `/stats` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::ClientError => "client_error",
            Class::ContextOverflow => "context_overflow",
            Class::RateLimited => "rate_limited",
            Class::Overloaded => "overloaded",
            Class::ServerError => "server_error",
            Class::Timeout => "timeout",
            Class::Network => "network",
            Class::AuthFailure => "auth_failure",
            Class::BillingFailure => "billing_failure",
        }
    }

    /// The class a config name stands for.
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether it counts toward tripping the lane's breaker.
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            Class::RateLimited
                | Class::Overloaded
                | Class::ServerError
                | Class::Timeout
                | Class::Network
        )
    }

    /// Whether it opens the lane at once with the long cooldown.
    pub fn is_hard(self) -> bool {
        matches!(self, Class::AuthFailure | Class::BillingFailure)
    }

    /// Whether another pool member may answer instead (a context overflow only one with a
    /// larger window; the caller checks that).
    pub fn try_elsewhere(self) -> bool {
        self != Class::ClientError
    }
}

/// A per-provider classification rule from the config (`[[providers.NAME.faults]]`). Every
/// condition given must hold; the first rule that matches decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The HTTP status, when the rule is about one (stream error events have none).
    pub status: Option<u16>,
    /// The provider's error type or code, compared case-insensitively.
    pub code: Option<String>,
    /// A piece of the provider's message, compared case-insensitively.
    pub message: Option<String>,
    /// The class it means.
    pub class: Class,
}

impl Rule {
    /// Whether the rule matches these facts.
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        self.status.is_none_or(|s| f.status == Some(s))
            && self
                .code
                .as_deref()
                .is_none_or(|c| f.code.is_some_and(|fc| fc.eq_ignore_ascii_case(c)))
            && self.message.as_deref().is_none_or(|m| {
                f.message
                    .to_ascii_lowercase()
                    .contains(&m.to_ascii_lowercase())
            })
    }
}

/// What a provider said when it failed, as far as classification needs it.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The provider's protocol.
    pub protocol: Protocol,
    /// The HTTP status; `None` for an error event inside a stream that began with 200.
    pub status: Option<u16>,
    /// The provider's own error type or code (`rate_limit_error`, `RESOURCE_EXHAUSTED`,
    /// `ThrottlingException`, `context_length_exceeded`, ...), as `read_provider_error` found it.
    pub code: Option<&'a str>,
    /// The provider's message.
    pub message: &'a str,
    /// The whole error body (for details such as Gemini's `ErrorInfo.reason`); empty for a
    /// stream error event.
    pub body: &'a [u8],
}

/// How talking to a provider failed, below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// No address for the host.
    NoAddress,
    /// TCP connect refused or failed.
    Connect,
    /// TCP connect + TLS handshake did not finish within the connect deadline.
    ConnectTimeout,
    /// The TLS handshake failed.
    Tls,
    /// Writing the request failed.
    Send,
    /// No response head within its deadline.
    HeadTimeout,
    /// The connection closed before a whole response head.
    Closed,
    /// The response head was not HTTP.
    BadHead,
    /// A stream's first event did not come within its deadline.
    FirstEventTimeout,
    /// Too long between two events of a stream.
    EventGapTimeout,
    /// The body broke off (reset, early close, bad framing) or could not be read.
    BodyBroken,
}
