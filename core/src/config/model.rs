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

pub use busbar_codec::Protocol;

/// How busbar proves itself to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (a local model server).
    None,
    /// `Authorization: Bearer <key>` (OpenAI, Cohere, Bedrock API keys).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    GoogApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    AzureApiKey,
    /// AWS Signature Version 4 (Bedrock), with credentials from the environment.
    SigV4(AwsSigning),
}

impl Auth {
    /// The carrier a protocol's providers use unless the config says otherwise.
    pub fn default_for(protocol: Protocol) -> Auth {
        match protocol {
            Protocol::OpenAiChat | Protocol::OpenAiResponses | Protocol::Cohere => Auth::Bearer,
            Protocol::Anthropic => Auth::XApiKey,
            Protocol::Gemini => Auth::GoogApiKey,
            Protocol::Bedrock => Auth::Bearer,
        }
    }

    /// The name used in config files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer => "bearer",
            Auth::XApiKey => "x-api-key",
            Auth::GoogApiKey => "x-goog-api-key",
            Auth::AzureApiKey => "api-key",
            Auth::SigV4(_) => "sigv4",
        }
    }
}

/// What SigV4 signing needs: where, and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSigning {
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// Signing name of the service (`bedrock` for Bedrock Runtime).
    pub service: String,
    /// Access key id, read from the environment (None: the variable was not set).
    pub access_key_id: Option<String>,
    /// Secret access key, read from the environment.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials, if set.
    pub session_token: Option<String>,
    /// The variables the credentials come from, for error messages.
    pub env_names: [String; 3],
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
    /// Longest a write of a relayed or streamed answer may wait on a client that does not
    /// read; past it the client connection is closed (and the provider's with it).
    pub write_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    pub shutdown_grace_ms: u64,
    /// Longest gap between two reads of a request body (a body that trickles is cut off
    /// with 408 well before `body_timeout_ms`).
    pub body_gap_timeout_ms: u64,
    /// Client connections one shard holds at once; one more is answered 503 with
    /// `Retry-After` and closed.
    pub max_connections: usize,
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
            write_timeout_ms: 60_000,
            shutdown_grace_ms: 30_000,
            body_gap_timeout_ms: 10_000,
            max_connections: 10_000,
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
    /// Longest silence allowed between two reads of a whole (non-streamed) response body.
    pub body_read_timeout_ms: u64,
    /// Deadline from a stream's response head to its first whole event.
    pub first_event_timeout_ms: u64,
    /// Longest time between two whole events of a stream (a drip of bytes that never
    /// completes an event does not reset it).
    pub event_gap_timeout_ms: u64,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout_ms: u64,
    /// Most idle connections kept per origin per shard.
    pub max_idle_per_origin: usize,
    /// Offer h2 by ALPN to `https://` providers; one that takes it gets one multiplexed
    /// connection per shard instead of a pool.
    pub http2: bool,
    /// Extra PEM CA files trusted for `https://` upstreams, beside the webpki roots.
    pub extra_ca_files: Vec<String>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            response_head_timeout_ms: 300_000,
            body_read_timeout_ms: 300_000,
            first_event_timeout_ms: 60_000,
            event_gap_timeout_ms: 120_000,
            pool_idle_timeout_ms: 60_000,
            max_idle_per_origin: 256,
            http2: true,
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
    /// How busbar authenticates to it.
    pub auth: Auth,
    /// `anthropic-version` sent to Anthropic-protocol providers.
    pub anthropic_version: String,
    /// A query string added to every request (e.g. Azure's `api-version=2024-10-21`).
    pub query: Option<String>,
    /// The variable its key is read from, if it needs one.
    pub api_key_env: Option<String>,
    /// The key, when the variable was set.
    pub api_key: Option<String>,
    /// Classification rules for this provider's errors, tried before the built-in ones.
    pub faults: Vec<crate::fault::Rule>,
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
    /// Refuse (400) a request whose translation to this model's protocol would lose a field.
    pub strict: bool,
    /// This lane's bulkhead.
    pub lane: LaneLimits,
}

/// A lane's bulkhead: how many requests it may have in flight, how many may wait for a slot
/// and for how long. Counts are for the whole process (each shard gets its share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Most requests in flight on the lane.
    pub max_concurrency: usize,
    /// Most requests waiting for a slot; past it, the lane is busy at once.
    pub max_queue: usize,
    /// Longest wait for a slot.
    pub queue_timeout_ms: u64,
}

impl Default for LaneLimits {
    fn default() -> Self {
        Self {
            max_concurrency: 1024,
            max_queue: 1024,
            queue_timeout_ms: 5_000,
        }
    }
}

/// The admin listener (`/stats`, `/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Where it listens (loopback by default).
    pub listen: SocketAddr,
    /// The bearer token it requires, when set.
    pub token: Option<String>,
    /// TLS (and mTLS) on the admin listener, when set.
    pub tls: Option<Tls>,
}

/// Which TLS versions a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// A PEM file a config names: its path as written and its content, read when the config is
/// loaded (so a reload reads it again).
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// The path as written in the config.
    pub path: String,
    /// The file's content.
    pub pem: String,
}

impl std::fmt::Debug for PemFile {
    /// The path only: a key's content never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemFile({})", self.path)
    }
}

/// TLS termination on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// The certificate chain, leaf first.
    pub cert: PemFile,
    /// The private key of the leaf.
    pub key: PemFile,
    /// CA certificates a client's certificate must chain to: set, the listener is mTLS and a
    /// client without such a certificate fails the handshake.
    pub client_ca: Option<PemFile>,
    /// Time allowed from accept to the end of the handshake.
    pub handshake_timeout_ms: u64,
    /// The lowest version accepted.
    pub min_version: TlsVersion,
}

/// HTTP/2 on the data listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2 {
    /// Offer `h2` by ALPN on TLS.
    pub enabled: bool,
    /// Also take h2 with prior knowledge on a cleartext listener (h2c), told apart from
    /// HTTP/1.1 by the connection preface.
    pub cleartext: bool,
    /// Streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Per-stream receive window (bytes) announced to clients.
    pub initial_window_size: u32,
    /// Connection receive window (bytes).
    pub initial_connection_window_size: u32,
    /// Largest frame payload accepted.
    pub max_frame_size: u32,
    /// Streams a client may reset before they are counted down (rapid reset): past it, the
    /// connection is closed with ENHANCE_YOUR_CALM.
    pub max_pending_resets: usize,
}

impl Default for Http2 {
    fn default() -> Self {
        Self {
            enabled: true,
            cleartext: false,
            max_concurrent_streams: 128,
            initial_window_size: 1024 * 1024,
            initial_connection_window_size: 4 * 1024 * 1024,
            max_frame_size: 16 * 1024,
            max_pending_resets: 32,
        }
    }
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
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// The name clients send.
    pub name: String,
    /// Its members, in config order.
    pub members: Vec<PoolMember>,
    /// Refuse (400) a request whose translation to a member's protocol would lose a field.
    pub strict: bool,
    /// Most members tried for one request.
    pub max_attempts: usize,
    /// Time from the request to the first byte of an answer, over every attempt; when it is
    /// over, no further member is tried.
    pub failover_deadline_ms: u64,
    /// How the order of members is chosen for each request.
    pub policy: PoolPolicy,
}

/// A pool's routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPolicy {
    /// Who decides.
    pub kind: PolicyKind,
    /// The built-in used when a script or webhook fails (errors, overruns, garbage).
    pub fallback: crate::route::Builtin,
    /// A script's or webhook's deadline per decision, in microseconds.
    pub timeout_us: u64,
    /// Request headers shown to the policy (lower-case names).
    pub headers: Vec<String>,
}

impl Default for PoolPolicy {
    fn default() -> Self {
        Self {
            kind: PolicyKind::Builtin(crate::route::Builtin::Weighted),
            fallback: crate::route::Builtin::Weighted,
            timeout_us: 0,
            headers: Vec::new(),
        }
    }
}

/// Who orders a pool's members.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// A built-in policy.
    Builtin(crate::route::Builtin),
    /// A Rhai script's `fn route(request, candidates)`.
    Script(ScriptSource),
    /// An HTTP endpoint that is POSTed the request summary and candidates.
    Webhook(HookUrl),
}

impl PolicyKind {
    /// The policy's name: a built-in's, `script` or `webhook`.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyKind::Builtin(b) => b.as_str(),
            PolicyKind::Script(_) => "script",
            PolicyKind::Webhook(_) => "webhook",
        }
    }
}

/// A Rhai script from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    /// The path as the config gives it (relative to the config file's directory).
    pub path: String,
    /// Its text, read when the config was loaded.
    pub source: String,
}

/// Where a webhook is: a plain or TLS HTTP/1.1 endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookUrl {
    /// The URL as configured.
    pub url: String,
    /// Its endpoint (host, port, TLS), path excluded.
    pub endpoint: Endpoint,
    /// The request path (with any query).
    pub path: String,
}

/// The hooks beyond routing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    /// Before a request goes upstream: may rewrite its texts or reject it.
    pub before_forward: Option<BeforeForward>,
    /// After the answer went to the client: observes, asynchronously.
    pub after_response: Option<AfterResponse>,
}

/// The `before_forward` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct BeforeForward {
    /// A script's `fn before_forward(request, texts)` or a webhook.
    pub target: HookTarget,
    /// Deadline per request, in microseconds.
    pub timeout_us: u64,
    /// When the hook fails: forward unchanged (`false`, fail open) or refuse with 503.
    pub reject_on_failure: bool,
    /// Request headers shown to the hook (lower-case names).
    pub headers: Vec<String>,
}

/// A hook's implementation.
#[derive(Debug, Clone, PartialEq)]
pub enum HookTarget {
    /// A Rhai script.
    Script(ScriptSource),
    /// An HTTP endpoint.
    Webhook(HookUrl),
}

/// The `after_response` stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterResponse {
    /// Where events are POSTed.
    pub webhook: HookUrl,
    /// Deadline per delivery, in ms.
    pub timeout_ms: u64,
    /// Events waiting per shard; beyond it an event is dropped and counted.
    pub queue: usize,
    /// Request headers included in events (lower-case names).
    pub headers: Vec<String>,
}

/// A client key from the static list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Its name, for logs and metrics.
    pub name: String,
    /// SHA-256 of the secret.
    pub sha256: [u8; 32],
}

/// What busbar tells about itself (`[telemetry]`): metrics, traces, the access log.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// Count requests in the shards' metric cells (`GET /metrics`); off, nothing is counted
    /// on the request path.
    pub metrics: bool,
    /// Serve `GET /metrics` on the data listener too (it is always on the admin listener).
    pub metrics_on_data_listener: bool,
    /// Where OTLP/HTTP (protobuf) traces go, e.g. `http://127.0.0.1:4318/v1/traces`; `None`:
    /// no traces.
    pub otlp_endpoint: Option<String>,
    /// Longest one export to the OTLP endpoint may take.
    pub otlp_timeout_ms: u64,
    /// The share of requests without a sampled parent that are traced (0 to 1). A client's
    /// `traceparent` decides for its own requests.
    pub sample_ratio: f64,
    /// `service.name` on every span.
    pub service_name: String,
    /// A JSON line per request: `-` for stdout, else a file appended to; `None`: off.
    pub access_log: Option<String>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            metrics: true,
            metrics_on_data_listener: false,
            otlp_endpoint: None,
            otlp_timeout_ms: 5_000,
            sample_ratio: 1.0,
            service_name: "busbar".into(),
            access_log: None,
        }
    }
}

/// What a fleet node does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unreachable {
    /// Requests that need a new lease are refused (503 in the caller's protocol).
    Closed,
    /// Leases are granted from a local allowance of at most this many micro-dollars per
    /// spend account (and the same number of requests or tokens per rate account), reconciled
    /// with Redis when it returns.
    Open {
        /// The bound, in micro-dollars (spend) and units (rates).
        allowance: u64,
    },
}

/// `[fleet]`: busbar nodes that share caps, limits and keys through Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// `redis://host:port/db` or `rediss://` (TLS).
    pub url: String,
    /// Prefix of every Redis key busbar writes.
    pub key_prefix: String,
    /// This node's name in the fleet (its leases are held under it); stable across restarts.
    pub node_id: String,
    /// What happens while Redis is unreachable.
    pub unreachable: Unreachable,
    /// Longest one Redis call may take.
    pub timeout_ms: u64,
    /// rediss://: the CA certificates Redis's certificate must chain to (instead of the
    /// public web roots).
    pub tls_ca: Option<PemFile>,
    /// rediss://: the certificate (chain) and key this node shows a Redis that asks for one
    /// (`tls-auth-clients`).
    pub tls_client: Option<(PemFile, PemFile)>,
}

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Data-plane listen address.
    pub listen: SocketAddr,
    /// TLS on the data listener, when set.
    pub tls: Option<Tls>,
    /// HTTP/2 on the data listener.
    pub http2: Http2,
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
    /// When lanes trip and how long they stay open.
    pub breaker: crate::breaker::Settings,
    /// The admin listener, when there is one.
    pub admin: Option<Admin>,
    /// The ledger's directory (virtual keys, usage, leases); `None`: no ledger, no virtual keys.
    pub ledger: Option<String>,
    /// The hooks beyond routing.
    pub hooks: Hooks,
    /// Metrics, traces and the access log.
    pub telemetry: Telemetry,
    /// The fleet this node belongs to, when it shares its limits through Redis.
    pub fleet: Option<Fleet>,
}
