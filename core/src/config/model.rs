//! The validated configuration, as the gateway uses it. Names are resolved to indices.

use std::net::SocketAddr;

/// Which I/O driver the shards run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel offers it, epoll otherwise.
    Auto,
    /// io_uring only; start-up fails if the kernel does not offer it.
    IoUring,
    /// epoll (readiness-based) only.
    Epoll,
}

/// A wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions.
    OpenAi,
}

impl Protocol {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
        }
    }
}

/// Limits on what a client may send, and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) in bytes; over it: 431.
    pub max_head_bytes: usize,
    /// Most header fields in a request; over it: 431.
    pub max_headers: usize,
    /// Largest request body in bytes; over it: 413.
    pub max_body_bytes: usize,
    /// Time allowed from the first byte of a request to the end of its head; over it: 408.
    pub header_timeout_ms: u64,
    /// Time allowed to receive a whole request body; over it: 408.
    pub body_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open.
    pub idle_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: 32 * 1024 * 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            shutdown_grace_ms: 30_000,
        }
    }
}

/// How the shards talk to providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Deadline for TCP connect plus TLS handshake.
    pub connect_timeout_ms: u64,
    /// Deadline from sending the request to the end of the response head.
    pub response_head_timeout_ms: u64,
    /// Longest silence allowed between two reads of a response body.
    pub body_read_timeout_ms: u64,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout_ms: u64,
    /// Most idle connections kept per origin per shard.
    pub max_idle_per_origin: usize,
    /// Extra PEM CA files trusted for `https://` upstreams, beside the webpki roots.
    pub extra_ca_files: Vec<String>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            response_head_timeout_ms: 300_000,
            body_read_timeout_ms: 300_000,
            pool_idle_timeout_ms: 60_000,
            max_idle_per_origin: 256,
            extra_ca_files: Vec::new(),
        }
    }
}

/// Settings of the built-in mock provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSettings {
    /// Delay before the first token.
    pub ttft_ms: u64,
    /// Delay between tokens of a stream.
    pub token_gap_ms: u64,
    /// Tokens in each reply (capped by the request's max tokens).
    pub tokens: u64,
}

/// Where a provider is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A real HTTP(S) endpoint.
    Http {
        /// `true` for `https://`.
        tls: bool,
        /// Host name or address literal (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Path prefix the protocol paths are appended to, without a trailing slash.
        path_prefix: String,
    },
    /// Answered inside busbar by the mock model.
    Mock(MockSettings),
}

/// A provider: a protocol at an endpoint, with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its name in the config.
    pub name: String,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// Where it is.
    pub endpoint: Endpoint,
    /// The variable its key is read from, if it needs one.
    pub api_key_env: Option<String>,
    /// The key, when the variable was set.
    pub api_key: Option<String>,
}

/// A model a client can ask for by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The name clients send.
    pub name: String,
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// The name the provider knows it by.
    pub upstream: String,
    /// Context window in tokens, if known.
    pub context_window: Option<u64>,
    /// Most output tokens per request, if known.
    pub max_output_tokens: Option<u64>,
    /// USD per million input tokens.
    pub input_price: f64,
    /// USD per million output tokens.
    pub output_price: f64,
}

/// One member of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    /// Index into [`Config::models`].
    pub model: usize,
    /// Relative share of traffic.
    pub weight: u32,
}

/// A name that spreads requests over several models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The name clients send.
    pub name: String,
    /// Its members, in config order.
    pub members: Vec<PoolMember>,
}

/// A client key from the static list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Its name, for logs and metrics.
    pub name: String,
    /// SHA-256 of the secret.
    pub sha256: [u8; 32],
}

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Data-plane listen address.
    pub listen: SocketAddr,
    /// Shard count; 0 means one per core.
    pub shards: usize,
    /// I/O driver choice.
    pub driver: Driver,
    /// Client-side limits.
    pub limits: Limits,
    /// Upstream settings.
    pub upstream: UpstreamSettings,
    /// Providers, sorted by name.
    pub providers: Vec<Provider>,
    /// Models, sorted by name.
    pub models: Vec<Model>,
    /// Pools, sorted by name.
    pub pools: Vec<Pool>,
    /// Client keys; empty means no client authentication.
    pub keys: Vec<ClientKey>,
}
