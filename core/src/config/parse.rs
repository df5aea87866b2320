//! TOML text -> [`Config`]. Errors carry the line and column of what is wrong.
//!
//! Two passes: serde reads the raw shape (unknown fields and wrong types are errors with a
//! span), then `validate` resolves names to indices and checks what serde cannot (references,
//! URLs, weights, addresses), each check pointing at the offending value.

use super::model::*;
use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;

/// A config that could not be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// 1-based line, when the error has a place.
    pub line: Option<usize>,
    /// 1-based column, when the error has a place.
    pub column: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

fn error_at(text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
    let (line, column) = match span {
        Some(s) => {
            let upto = &text[..s.start.min(text.len())];
            let line = upto.matches('\n').count() + 1;
            let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    ConfigError {
        message: message.into(),
        line,
        column,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    http2: RawHttp2,
    shards: Option<usize>,
    driver: Option<Spanned<String>>,
    #[serde(default)]
    allow_unauthenticated: bool,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<RawModel>>,
    #[serde(default)]
    pools: BTreeMap<String, Spanned<RawPool>>,
    #[serde(default)]
    keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    breaker: RawBreaker,
    #[serde(default)]
    lanes: RawLanes,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    telemetry: RawTelemetry,
    fleet: Option<Spanned<RawFleet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    url: Spanned<String>,
    key_prefix: Option<String>,
    node_id: Option<Spanned<String>>,
    on_unreachable: Option<Spanned<String>>,
    open_allowance_usd: Option<Spanned<f64>>,
    timeout_ms: Option<u64>,
    tls_ca: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    metrics: Option<bool>,
    metrics_on_data_listener: Option<bool>,
    otlp_endpoint: Option<Spanned<String>>,
    otlp_timeout_ms: Option<u64>,
    sample_ratio: Option<Spanned<f64>>,
    service_name: Option<Spanned<String>>,
    access_log: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    path: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for RawLedger {
    fn default() -> Self {
        Self {
            path: None,
            enabled: true,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    enabled: Option<bool>,
    consecutive_failures: Option<Spanned<u32>>,
    error_rate: Option<Spanned<f64>>,
    window_ms: Option<Spanned<u64>>,
    min_requests: Option<u32>,
    cooldown_ms: Option<u64>,
    max_cooldown_ms: Option<Spanned<u64>>,
    hard_cooldown_ms: Option<u64>,
    jitter: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLanes {
    max_concurrency: Option<Spanned<usize>>,
    max_queue: Option<usize>,
    queue_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
    token_env: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: None,
            enabled: true,
            token_env: None,
            tls: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    status: Option<u16>,
    code: Option<String>,
    message: Option<String>,
    class: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_head_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_body_bytes: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    write_timeout_ms: Option<u64>,
    shutdown_grace_ms: Option<u64>,
    body_gap_timeout_ms: Option<u64>,
    max_connections: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Option<Spanned<String>>,
    handshake_timeout_ms: Option<Spanned<u64>>,
    min_version: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp2 {
    enabled: Option<bool>,
    cleartext: Option<bool>,
    max_concurrent_streams: Option<Spanned<u32>>,
    initial_window_size: Option<Spanned<u32>>,
    initial_connection_window_size: Option<Spanned<u32>>,
    max_frame_size: Option<Spanned<u32>>,
    max_pending_resets: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    connect_timeout_ms: Option<u64>,
    response_head_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    first_event_timeout_ms: Option<u64>,
    event_gap_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    max_idle_per_origin: Option<usize>,
    http2: Option<bool>,
    #[serde(default)]
    extra_ca_files: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    protocol: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<String>,
    /// A file holding the key (a mounted secret): read at start and on every reload, so a
    /// rotated key is picked up without a restart.
    api_key_file: Option<Spanned<String>>,
    mock: Option<RawMock>,
    auth: Option<Spanned<String>>,
    anthropic_version: Option<String>,
    query: Option<Spanned<String>>,
    region: Option<String>,
    aws_access_key_env: Option<String>,
    aws_secret_key_env: Option<String>,
    aws_session_token_env: Option<String>,
    #[serde(default)]
    faults: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMock {
    #[serde(default)]
    ttft_ms: u64,
    #[serde(default)]
    token_gap_ms: u64,
    tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    provider: Spanned<String>,
    upstream: Option<String>,
    context_window: Option<u64>,
    max_output_tokens: Option<u64>,
    #[serde(default = "zero_price")]
    input_price: Spanned<f64>,
    #[serde(default = "zero_price")]
    output_price: Spanned<f64>,
    #[serde(default)]
    strict: bool,
    max_concurrency: Option<Spanned<usize>>,
    max_queue: Option<usize>,
    queue_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    members: Spanned<Vec<Spanned<RawMember>>>,
    #[serde(default)]
    strict: bool,
    max_attempts: Option<Spanned<usize>>,
    failover_deadline_ms: Option<u64>,
    policy: Option<Spanned<String>>,
    fallback: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    headers: Vec<Spanned<String>>,
    script: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    before_forward: Option<Spanned<RawBeforeForward>>,
    after_response: Option<Spanned<RawAfterResponse>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBeforeForward {
    script: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
    on_failure: Option<Spanned<String>>,
    #[serde(default)]
    headers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAfterResponse {
    webhook: Spanned<String>,
    timeout_ms: Option<Spanned<u64>>,
    queue: Option<Spanned<usize>>,
    #[serde(default)]
    headers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    model: Spanned<String>,
    #[serde(default = "one")]
    weight: Spanned<u32>,
}

fn zero_price() -> Spanned<f64> {
    Spanned::new(0..0, 0.0)
}

fn one() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    key_env: Option<Spanned<String>>,
    key_sha256: Option<Spanned<String>>,
}

/// Parses and validates `text`. `env` looks up environment variables (provider and client keys).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    parse_with_files(text, env, &|path| {
        Err(format!(
            "cannot read `{path}`: scripts are read relative to a config file, and this config has none"
        ))
    })
}

/// Reads a file a config names (a script), by the path as written.
pub type FileReader<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses and validates `text`; scripts it names are read with `files` and compiled to check
/// them.
pub fn parse_with_files(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    files: FileReader<'_>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| error_at(text, e.span(), e.message()))?;
    validate(text, raw, env, files)
}

fn validate(
    text: &str,
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    files: FileReader<'_>,
) -> Result<Config, ConfigError> {
    let err = |span: Range<usize>, msg: String| error_at(text, Some(span), msg);

    let listen = match &raw.listen {
        Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|_| {
            err(
                l.span(),
                format!(
                    "listen: `{}` is not an address like 127.0.0.1:8080",
                    l.get_ref()
                ),
            )
        })?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let driver = match raw
        .driver
        .as_ref()
        .map(|d| (d.get_ref().as_str(), d.span()))
    {
        None | Some(("auto", _)) => Driver::Auto,
        Some(("io_uring", _)) => Driver::IoUring,
        Some(("epoll", _)) => Driver::Epoll,
        Some((other, span)) => {
            return Err(err(
                span,
                format!("driver: `{other}` is not one of auto, io_uring, epoll"),
            ));
        }
    };

    let d = Limits::default();
    let l = raw.limits;
    let limits = Limits {
        max_head_bytes: l.max_head_bytes.unwrap_or(d.max_head_bytes),
        max_headers: l.max_headers.unwrap_or(d.max_headers),
        max_body_bytes: l.max_body_bytes.unwrap_or(d.max_body_bytes),
        header_timeout_ms: l.header_timeout_ms.unwrap_or(d.header_timeout_ms),
        body_timeout_ms: l.body_timeout_ms.unwrap_or(d.body_timeout_ms),
        idle_timeout_ms: l.idle_timeout_ms.unwrap_or(d.idle_timeout_ms),
        write_timeout_ms: l.write_timeout_ms.unwrap_or(d.write_timeout_ms),
        shutdown_grace_ms: l.shutdown_grace_ms.unwrap_or(d.shutdown_grace_ms),
        body_gap_timeout_ms: l.body_gap_timeout_ms.unwrap_or(d.body_gap_timeout_ms),
        max_connections: match &l.max_connections {
            Some(n) if *n.get_ref() == 0 => {
                return Err(err(
                    n.span(),
                    "limits.max_connections must be at least 1".into(),
                ));
            }
            Some(n) => *n.get_ref(),
            None => d.max_connections,
        },
    };
    if limits.max_head_bytes < 1024 || limits.max_headers == 0 {
        return Err(error_at(
            text,
            None,
            "limits: max_head_bytes must be at least 1024 and max_headers at least 1",
        ));
    }
    let d = UpstreamSettings::default();
    let u = raw.upstream;
    let upstream = UpstreamSettings {
        connect_timeout_ms: u.connect_timeout_ms.unwrap_or(d.connect_timeout_ms),
        response_head_timeout_ms: u
            .response_head_timeout_ms
            .unwrap_or(d.response_head_timeout_ms),
        body_read_timeout_ms: u.body_read_timeout_ms.unwrap_or(d.body_read_timeout_ms),
        first_event_timeout_ms: u.first_event_timeout_ms.unwrap_or(d.first_event_timeout_ms),
        event_gap_timeout_ms: u.event_gap_timeout_ms.unwrap_or(d.event_gap_timeout_ms),
        pool_idle_timeout_ms: u.pool_idle_timeout_ms.unwrap_or(d.pool_idle_timeout_ms),
        max_idle_per_origin: u.max_idle_per_origin.unwrap_or(d.max_idle_per_origin),
        http2: u.http2.unwrap_or(d.http2),
        extra_ca_files: u.extra_ca_files,
    };

    // Durations are added to the clock: an absurd one ("never" as u64::MAX) would overflow it.
    for (name, ms) in [
        ("upstream.connect_timeout_ms", upstream.connect_timeout_ms),
        (
            "upstream.response_head_timeout_ms",
            upstream.response_head_timeout_ms,
        ),
        (
            "upstream.body_read_timeout_ms",
            upstream.body_read_timeout_ms,
        ),
        (
            "upstream.first_event_timeout_ms",
            upstream.first_event_timeout_ms,
        ),
        (
            "upstream.event_gap_timeout_ms",
            upstream.event_gap_timeout_ms,
        ),
        (
            "upstream.pool_idle_timeout_ms",
            upstream.pool_idle_timeout_ms,
        ),
        ("limits.header_timeout_ms", limits.header_timeout_ms),
        ("limits.body_timeout_ms", limits.body_timeout_ms),
        ("limits.idle_timeout_ms", limits.idle_timeout_ms),
        ("limits.write_timeout_ms", limits.write_timeout_ms),
        ("limits.shutdown_grace_ms", limits.shutdown_grace_ms),
        ("limits.body_gap_timeout_ms", limits.body_gap_timeout_ms),
    ] {
        check_ms(name, ms).map_err(|m| error_at(text, None, m))?;
    }
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, p) in &raw.providers {
        let span = p.span();
        let p = p.get_ref();
        let protocol = Protocol::from_name(p.protocol.get_ref()).ok_or_else(|| {
            err(
                p.protocol.span(),
                format!(
                    "providers.{name}.protocol: `{}` is not a supported protocol (supported: {})",
                    p.protocol.get_ref(),
                    Protocol::ALL.map(Protocol::as_str).join(", ")
                ),
            )
        })?;
        let auth = provider_auth(name, p, protocol, env).map_err(|(span, m)| err(span, m))?;
        if let Some(q) = &p.query
            && (q.get_ref().is_empty() || q.get_ref().contains(['?', '#', ' ']))
        {
            return Err(err(
                q.span(),
                format!(
                    "providers.{name}.query: give the query without `?`, e.g. api-version=2024-10-21"
                ),
            ));
        }
        let endpoint = match (&p.base_url, &p.mock) {
            (Some(url), None) => parse_base_url(url.get_ref())
                .map_err(|m| err(url.span(), format!("providers.{name}.base_url: {m}")))?,
            (None, Some(m)) => Endpoint::Mock(MockSettings {
                ttft_ms: m.ttft_ms,
                token_gap_ms: m.token_gap_ms,
                tokens: m.tokens.unwrap_or(16),
            }),
            _ => {
                return Err(err(
                    span,
                    format!("providers.{name}: give exactly one of base_url or mock"),
                ));
            }
        };
        let api_key = match (&p.api_key_env, &p.api_key_file) {
            (Some(_), Some(f)) => {
                return Err(err(
                    f.span(),
                    format!("providers.{name}: give api_key_env or api_key_file, not both"),
                ));
            }
            (None, Some(f)) => {
                let key = files(f.get_ref())
                    .map_err(|m| err(f.span(), format!("providers.{name}.api_key_file: {m}")))?;
                let key = key.trim().to_string();
                if key.is_empty() {
                    return Err(err(
                        f.span(),
                        format!("providers.{name}.api_key_file: `{}` is empty", f.get_ref()),
                    ));
                }
                Some(key)
            }
            _ => p
                .api_key_env
                .as_deref()
                .and_then(env)
                .filter(|k| !k.is_empty()),
        };
        let faults = fault_rules(name, &p.faults).map_err(|(span, m)| err(span, m))?;
        providers.push(Provider {
            name: name.clone(),
            protocol,
            endpoint,
            auth,
            anthropic_version: p
                .anthropic_version
                .clone()
                .unwrap_or_else(|| "2023-06-01".into()),
            query: p.query.as_ref().map(|q| q.get_ref().clone()),
            api_key_env: p.api_key_env.clone(),
            api_key,
            faults,
        });
    }

    let dl = LaneLimits::default();
    let lanes = LaneLimits {
        max_concurrency: positive(&raw.lanes.max_concurrency, "lanes.max_concurrency")
            .map_err(|(span, m)| err(span, m))?
            .unwrap_or(dl.max_concurrency),
        max_queue: raw.lanes.max_queue.unwrap_or(dl.max_queue),
        queue_timeout_ms: raw.lanes.queue_timeout_ms.unwrap_or(dl.queue_timeout_ms),
    };
    check_ms("lanes.queue_timeout_ms", lanes.queue_timeout_ms)
        .map_err(|m| error_at(text, None, m))?;
    let breaker = breaker_settings(&raw.breaker).map_err(|(span, m)| err(span, m))?;
    for (name, d) in [
        ("breaker.window_ms", breaker.window),
        ("breaker.cooldown_ms", breaker.cooldown),
        ("breaker.max_cooldown_ms", breaker.max_cooldown),
        ("breaker.hard_cooldown_ms", breaker.hard_cooldown),
    ] {
        check_ms(name, d.as_millis() as u64).map_err(|m| error_at(text, None, m))?;
    }
    let admin = admin_settings(&raw.admin, env, files).map_err(|(span, m)| err(span, m))?;
    let tls = raw
        .tls
        .as_ref()
        .map(|t| tls_settings(t, "tls", files))
        .transpose()
        .map_err(|(span, m)| err(span, m))?;
    let http2 = http2_settings(&raw.http2).map_err(|(span, m)| err(span, m))?;

    let mut models = Vec::with_capacity(raw.models.len());
    for (name, m) in &raw.models {
        let m = m.get_ref();
        let provider = providers
            .iter()
            .position(|p| p.name == *m.provider.get_ref())
            .ok_or_else(|| {
                err(
                    m.provider.span(),
                    format!(
                        "models.{name}.provider: no provider named `{}`",
                        m.provider.get_ref()
                    ),
                )
            })?;
        for (field, price) in [
            ("input_price", &m.input_price),
            ("output_price", &m.output_price),
        ] {
            if !(price.get_ref().is_finite() && *price.get_ref() >= 0.0) {
                return Err(err(
                    price.span(),
                    format!(
                        "models.{name}.{field}: must be a non-negative number of USD per million tokens"
                    ),
                ));
            }
        }
        models.push(Model {
            name: name.clone(),
            provider,
            upstream: m.upstream.clone().unwrap_or_else(|| name.clone()),
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            input_price: *m.input_price.get_ref(),
            output_price: *m.output_price.get_ref(),
            strict: m.strict,
            lane: LaneLimits {
                max_concurrency: positive(
                    &m.max_concurrency,
                    &format!("models.{name}.max_concurrency"),
                )
                .map_err(|(span, m)| err(span, m))?
                .unwrap_or(lanes.max_concurrency),
                max_queue: m.max_queue.unwrap_or(lanes.max_queue),
                queue_timeout_ms: check_ms(
                    &format!("models.{name}.queue_timeout_ms"),
                    m.queue_timeout_ms.unwrap_or(lanes.queue_timeout_ms),
                )
                .map_err(|m| error_at(text, None, m))?,
            },
        });
    }

    let mut pools = Vec::with_capacity(raw.pools.len());
    for (name, p) in &raw.pools {
        if raw.models.contains_key(name) {
            return Err(err(
                p.span(),
                format!("pools.{name}: a model has the same name; names must be unique"),
            ));
        }
        let p = p.get_ref();
        if p.members.get_ref().is_empty() {
            return Err(err(
                p.members.span(),
                format!("pools.{name}.members: a pool needs at least one member"),
            ));
        }
        let mut members = Vec::new();
        for m in p.members.get_ref() {
            let m = m.get_ref();
            let model = models
                .iter()
                .position(|x| x.name == *m.model.get_ref())
                .ok_or_else(|| {
                    err(
                        m.model.span(),
                        format!("pools.{name}: no model named `{}`", m.model.get_ref()),
                    )
                })?;
            if *m.weight.get_ref() == 0 {
                return Err(err(
                    m.weight.span(),
                    format!("pools.{name}: weight must be at least 1"),
                ));
            }
            members.push(PoolMember {
                model,
                weight: *m.weight.get_ref(),
            });
        }
        let max_attempts = positive(&p.max_attempts, &format!("pools.{name}.max_attempts"))
            .map_err(|(span, m)| err(span, m))?
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
            .min(members.len());
        let policy = pool_policy(name, p, files).map_err(|(span, m)| err(span, m))?;
        pools.push(Pool {
            name: name.clone(),
            policy,
            members,
            strict: p.strict,
            max_attempts,
            failover_deadline_ms: check_ms(
                &format!("pools.{name}.failover_deadline_ms"),
                p.failover_deadline_ms
                    .unwrap_or(DEFAULT_FAILOVER_DEADLINE_MS),
            )
            .map_err(|m| error_at(text, None, m))?,
        });
    }

    let mut keys = Vec::with_capacity(raw.keys.len());
    for k in &raw.keys {
        let span = k.span();
        let k = k.get_ref();
        let sha256 = match (&k.key_env, &k.key_sha256) {
            (Some(var), None) => {
                let secret = env(var.get_ref())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        err(
                            var.span(),
                            format!(
                                "keys `{}`: environment variable {} is not set",
                                k.name,
                                var.get_ref()
                            ),
                        )
                    })?;
                crate::keys::digest(&secret)
            }
            (None, Some(hex)) => crate::keys::parse_digest(hex.get_ref()).ok_or_else(|| {
                err(
                    hex.span(),
                    format!("keys `{}`: key_sha256 must be 64 hex digits", k.name),
                )
            })?,
            _ => {
                return Err(err(
                    span,
                    format!(
                        "keys `{}`: give exactly one of key_env or key_sha256",
                        k.name
                    ),
                ));
            }
        };
        keys.push(ClientKey {
            name: k.name.clone(),
            sha256,
        });
    }
    if keys.is_empty() && !listen.ip().is_loopback() && !raw.allow_unauthenticated {
        let span = raw.listen.as_ref().map(|l| l.span());
        return Err(error_at(
            text,
            span,
            "no [[keys]] are configured and listen is not a loopback address: busbar refuses to \
             serve unauthenticated on the network; add [[keys]] or set allow_unauthenticated = true",
        ));
    }

    let hooks = hooks(&raw.hooks, files).map_err(|(span, m)| err(span, m))?;
    let telemetry = telemetry(&raw.telemetry).map_err(|(span, m)| err(span, m))?;
    let fleet = raw
        .fleet
        .as_ref()
        .map(|f| fleet(f, files))
        .transpose()
        .map_err(|(span, m)| err(span, m))?;

    Ok(Config {
        hooks,
        telemetry,
        fleet,
        listen,
        tls,
        http2,
        shards: raw.shards.unwrap_or(0),
        driver,
        limits,
        upstream,
        providers,
        models,
        pools,
        keys,
        breaker,
        admin,
        ledger: raw.ledger.enabled.then(|| {
            raw.ledger
                .path
                .clone()
                .unwrap_or_else(|| DEFAULT_LEDGER_PATH.to_string())
        }),
    })
}

/// A webhook's deadline unless the config says otherwise.
const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 20;
/// A script's deadline per decision unless the config says otherwise.
const DEFAULT_SCRIPT_TIMEOUT_MS: u64 = 1;
/// Longest deadline a hook on the request path may have.
const MAX_HOOK_TIMEOUT_MS: u64 = 10_000;
/// An `after_response` delivery's deadline unless the config says otherwise.
const DEFAULT_AUDIT_TIMEOUT_MS: u64 = 1_000;
/// Events waiting per shard for `after_response` unless the config says otherwise.
const DEFAULT_AUDIT_QUEUE: usize = 1024;

type Failed = (Range<usize>, String);

fn pool_policy(name: &str, p: &RawPool, files: FileReader<'_>) -> Result<PoolPolicy, Failed> {
    let at = |field: &str| format!("pools.{name}.{field}");
    let builtin = |v: &Spanned<String>, field: &str| {
        crate::route::Builtin::from_name(v.get_ref()).ok_or_else(|| {
            (
                v.span(),
                format!(
                    "{}: `{}` is not one of weighted, cheapest, fastest, least_busy, usage",
                    at(field),
                    v.get_ref()
                ),
            )
        })
    };
    let fallback = match &p.fallback {
        Some(f) => builtin(f, "fallback")?,
        None => crate::route::Builtin::Weighted,
    };
    let kind = match &p.policy {
        None => {
            if let Some(x) = p.script.as_ref().or(p.webhook.as_ref()) {
                return Err((
                    x.span(),
                    format!(
                        "pools.{name}: a script or webhook is given but policy is not \"script\" or \"webhook\""
                    ),
                ));
            }
            PolicyKind::Builtin(crate::route::Builtin::Weighted)
        }
        Some(v) => match v.get_ref().as_str() {
            "script" => {
                let s = p.script.as_ref().ok_or_else(|| {
                    (
                        v.span(),
                        format!(
                            "{}: policy = \"script\" needs script = \"path.rhai\"",
                            at("policy")
                        ),
                    )
                })?;
                PolicyKind::Script(script(s, crate::route::script::Stage::Route, files)?)
            }
            "webhook" => {
                let w = p.webhook.as_ref().ok_or_else(|| {
                    (
                        v.span(),
                        format!(
                            "{}: policy = \"webhook\" needs webhook = \"http://...\"",
                            at("policy")
                        ),
                    )
                })?;
                PolicyKind::Webhook(hook_url(w, &at("webhook"))?)
            }
            _ => PolicyKind::Builtin(builtin(v, "policy")?),
        },
    };
    if matches!(kind, PolicyKind::Builtin(_))
        && let Some(x) = p.script.as_ref().or(p.webhook.as_ref())
    {
        return Err((
            x.span(),
            format!("pools.{name}: a script or webhook is given but policy is a built-in"),
        ));
    }
    let default_ms = match kind {
        PolicyKind::Script(_) => DEFAULT_SCRIPT_TIMEOUT_MS,
        _ => DEFAULT_WEBHOOK_TIMEOUT_MS,
    };
    Ok(PoolPolicy {
        kind,
        fallback,
        timeout_us: hook_timeout(&p.timeout_ms, &at("timeout_ms"), default_ms)? * 1000,
        headers: header_names(&p.headers, &at("headers"))?,
    })
}

fn hook_timeout(v: &Option<Spanned<u64>>, what: &str, default_ms: u64) -> Result<u64, Failed> {
    match v {
        None => Ok(default_ms),
        Some(t) if *t.get_ref() == 0 || *t.get_ref() > MAX_HOOK_TIMEOUT_MS => Err((
            t.span(),
            format!("{what}: must be 1 to {MAX_HOOK_TIMEOUT_MS} ms"),
        )),
        Some(t) => Ok(*t.get_ref()),
    }
}

fn header_names(v: &[Spanned<String>], what: &str) -> Result<Vec<String>, Failed> {
    v.iter()
        .map(|h| {
            let n = h.get_ref();
            if n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                Err((h.span(), format!("{what}: `{n}` is not a header name")))
            } else {
                Ok(n.to_ascii_lowercase())
            }
        })
        .collect()
}

fn hook_url(v: &Spanned<String>, what: &str) -> Result<HookUrl, Failed> {
    let url = v.get_ref();
    // The path (and a query) stays whole: parse_base_url refuses a query, so split it off.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url.as_str(), None),
    };
    match parse_base_url(base) {
        Ok(Endpoint::Http {
            tls,
            host,
            port,
            path_prefix,
        }) => {
            let mut path = if path_prefix.is_empty() {
                "/".to_string()
            } else {
                path_prefix
            };
            if let Some(q) = query {
                path.push('?');
                path.push_str(q);
            }
            Ok(HookUrl {
                url: url.clone(),
                endpoint: Endpoint::Http {
                    tls,
                    host,
                    port,
                    path_prefix: String::new(),
                },
                path,
            })
        }
        Ok(Endpoint::Mock(_)) => Err((v.span(), format!("{what}: not an HTTP URL"))),
        Err(m) => Err((v.span(), format!("{what}: {m}"))),
    }
}

fn script(
    v: &Spanned<String>,
    stage: crate::route::script::Stage,
    files: FileReader<'_>,
) -> Result<ScriptSource, Failed> {
    let path = v.get_ref();
    let source = files(path).map_err(|m| (v.span(), m))?;
    crate::route::script::Script::compile(
        path,
        &source,
        stage,
        crate::route::script::ScriptLimits::default(),
        std::rc::Rc::new(std::time::Instant::now),
    )
    .map_err(|m| (v.span(), m))?;
    Ok(ScriptSource {
        path: path.clone(),
        source,
    })
}

fn hooks(raw: &RawHooks, files: FileReader<'_>) -> Result<Hooks, Failed> {
    let before_forward = match &raw.before_forward {
        None => None,
        Some(b) => {
            let span = b.span();
            let b = b.get_ref();
            let (target, default_ms) = match (&b.script, &b.webhook) {
                (Some(s), None) => (
                    HookTarget::Script(script(
                        s,
                        crate::route::script::Stage::BeforeForward,
                        files,
                    )?),
                    DEFAULT_SCRIPT_TIMEOUT_MS,
                ),
                (None, Some(w)) => (
                    HookTarget::Webhook(hook_url(w, "hooks.before_forward.webhook")?),
                    DEFAULT_WEBHOOK_TIMEOUT_MS,
                ),
                _ => {
                    return Err((
                        span,
                        "hooks.before_forward: give exactly one of script or webhook".into(),
                    ));
                }
            };
            let reject_on_failure = match b.on_failure.as_ref().map(|v| (v.get_ref().as_str(), v)) {
                None | Some(("forward", _)) => false,
                Some(("reject", _)) => true,
                Some((other, v)) => {
                    return Err((
                        v.span(),
                        format!(
                            "hooks.before_forward.on_failure: `{other}` is not forward or reject"
                        ),
                    ));
                }
            };
            Some(BeforeForward {
                target,
                timeout_us: hook_timeout(
                    &b.timeout_ms,
                    "hooks.before_forward.timeout_ms",
                    default_ms,
                )? * 1000,
                reject_on_failure,
                headers: header_names(&b.headers, "hooks.before_forward.headers")?,
            })
        }
    };
    let after_response = match &raw.after_response {
        None => None,
        Some(a) => {
            let a = a.get_ref();
            let queue = match &a.queue {
                Some(q) if *q.get_ref() == 0 || *q.get_ref() > 1 << 20 => {
                    return Err((
                        q.span(),
                        "hooks.after_response.queue: must be 1 to 1048576".into(),
                    ));
                }
                Some(q) => *q.get_ref(),
                None => DEFAULT_AUDIT_QUEUE,
            };
            Some(AfterResponse {
                webhook: hook_url(&a.webhook, "hooks.after_response.webhook")?,
                timeout_ms: match &a.timeout_ms {
                    None => DEFAULT_AUDIT_TIMEOUT_MS,
                    Some(t) if *t.get_ref() == 0 || *t.get_ref() > 60_000 => {
                        return Err((
                            t.span(),
                            "hooks.after_response.timeout_ms: must be 1 to 60000 ms".into(),
                        ));
                    }
                    Some(t) => *t.get_ref(),
                },
                queue,
                headers: header_names(&a.headers, "hooks.after_response.headers")?,
            })
        }
    };
    Ok(Hooks {
        before_forward,
        after_response,
    })
}

/// Members tried per request unless a pool says otherwise.
const DEFAULT_MAX_ATTEMPTS: usize = 3;
/// Time to the first byte over every attempt unless a pool says otherwise.
const DEFAULT_FAILOVER_DEADLINE_MS: u64 = 120_000;
/// Where the ledger file lives unless the config says otherwise (relative to the working
/// directory).
pub const DEFAULT_LEDGER_PATH: &str = "busbar-ledger";

/// Where the admin API listens unless the config says otherwise.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";

/// Longest duration a setting may have: 30 days.
const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

fn check_ms(name: &str, ms: u64) -> Result<u64, String> {
    if ms > MAX_MS {
        return Err(format!(
            "{name}: {ms} ms is more than 30 days; give a real duration"
        ));
    }
    Ok(ms)
}

/// A count that must be at least 1, when given.
fn positive(
    v: &Option<Spanned<usize>>,
    what: &str,
) -> Result<Option<usize>, (Range<usize>, String)> {
    match v {
        Some(n) if *n.get_ref() == 0 => Err((n.span(), format!("{what}: must be at least 1"))),
        Some(n) => Ok(Some(*n.get_ref())),
        None => Ok(None),
    }
}

fn breaker_settings(b: &RawBreaker) -> Result<crate::breaker::Settings, (Range<usize>, String)> {
    let d = crate::breaker::Settings::default();
    let ms = std::time::Duration::from_millis;
    if let Some(n) = b
        .consecutive_failures
        .as_ref()
        .filter(|n| *n.get_ref() == 0)
    {
        return Err((
            n.span(),
            "breaker.consecutive_failures: must be at least 1".into(),
        ));
    }
    if let Some(r) = b
        .error_rate
        .as_ref()
        .filter(|r| !(*r.get_ref() > 0.0 && *r.get_ref() <= 1.0))
    {
        return Err((
            r.span(),
            "breaker.error_rate: must be a fraction in (0, 1], e.g. 0.5".into(),
        ));
    }
    if let Some(w) = b.window_ms.as_ref().filter(|w| *w.get_ref() < 10) {
        return Err((w.span(), "breaker.window_ms: must be at least 10".into()));
    }
    if let Some(j) = b
        .jitter
        .as_ref()
        .filter(|j| !(*j.get_ref() >= 0.0 && *j.get_ref() < 1.0))
    {
        return Err((
            j.span(),
            "breaker.jitter: must be a fraction in [0, 1), e.g. 0.2".into(),
        ));
    }
    let s = crate::breaker::Settings {
        enabled: b.enabled.unwrap_or(d.enabled),
        consecutive_failures: b
            .consecutive_failures
            .as_ref()
            .map_or(d.consecutive_failures, |n| *n.get_ref()),
        error_rate: b.error_rate.as_ref().map_or(d.error_rate, |r| *r.get_ref()),
        window: b.window_ms.as_ref().map_or(d.window, |w| ms(*w.get_ref())),
        min_requests: b.min_requests.unwrap_or(d.min_requests),
        cooldown: b.cooldown_ms.map_or(d.cooldown, ms),
        max_cooldown: b
            .max_cooldown_ms
            .as_ref()
            .map_or(d.max_cooldown, |m| ms(*m.get_ref())),
        hard_cooldown: b.hard_cooldown_ms.map_or(d.hard_cooldown, ms),
        jitter: b.jitter.as_ref().map_or(d.jitter, |j| *j.get_ref()),
    };
    if s.max_cooldown < s.cooldown {
        let span = b.max_cooldown_ms.as_ref().map_or(0..0, |m| m.span());
        return Err((
            span,
            "breaker.max_cooldown_ms: must not be less than cooldown_ms".into(),
        ));
    }
    Ok(s)
}

/// `[tls]` or `[admin.tls]`: the PEM files are read now (and again on every reload); that
/// they hold a usable chain and key is checked where TLS is set up (the shard crate).
fn tls_settings(
    t: &Spanned<RawTls>,
    what: &str,
    files: FileReader<'_>,
) -> Result<Tls, (Range<usize>, String)> {
    let read = |f: &Spanned<String>, field: &str| pem_file(f, &format!("{what}.{field}"), files);
    let raw = t.get_ref();
    let handshake_timeout_ms = match &raw.handshake_timeout_ms {
        Some(ms) => check_ms(&format!("{what}.handshake_timeout_ms"), *ms.get_ref())
            .map_err(|m| (ms.span(), m))?,
        None => DEFAULT_HANDSHAKE_TIMEOUT_MS,
    };
    let min_version = match raw.min_version.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "1.2")) => TlsVersion::Tls12,
        Some((_, "1.3")) => TlsVersion::Tls13,
        Some((v, other)) => {
            return Err((
                v.span(),
                format!("{what}.min_version: `{other}` is not \"1.2\" or \"1.3\""),
            ));
        }
    };
    Ok(Tls {
        cert: read(&raw.cert, "cert")?,
        key: read(&raw.key, "key")?,
        client_ca: raw
            .client_ca
            .as_ref()
            .map(|c| read(c, "client_ca"))
            .transpose()?,
        handshake_timeout_ms,
        min_version,
    })
}

/// Reads the PEM file `f` names (`field`: its name in messages).
fn pem_file(
    f: &Spanned<String>,
    field: &str,
    files: FileReader<'_>,
) -> Result<PemFile, (Range<usize>, String)> {
    let pem = files(f.get_ref()).map_err(|m| (f.span(), format!("{field}: {m}")))?;
    if !pem.contains("-----BEGIN ") {
        return Err((
            f.span(),
            format!("{field}: `{}` is not a PEM file", f.get_ref()),
        ));
    }
    Ok(PemFile {
        path: f.get_ref().clone(),
        pem,
    })
}

/// A TLS handshake's deadline unless the config says otherwise.
const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// `[http2]`, checked against the limits RFC 9113 sets.
fn http2_settings(h: &RawHttp2) -> Result<Http2, (Range<usize>, String)> {
    let d = Http2::default();
    let bounded = |v: &Option<Spanned<u32>>, name: &str, lo: u32, hi: u32, default: u32| match v {
        Some(x) if !(lo..=hi).contains(x.get_ref()) => Err((
            x.span(),
            format!("http2.{name} must be between {lo} and {hi}"),
        )),
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    const MAX_WINDOW: u32 = (1 << 31) - 1;
    Ok(Http2 {
        enabled: h.enabled.unwrap_or(d.enabled),
        cleartext: h.cleartext.unwrap_or(d.cleartext),
        max_concurrent_streams: bounded(
            &h.max_concurrent_streams,
            "max_concurrent_streams",
            1,
            10_000,
            d.max_concurrent_streams,
        )?,
        initial_window_size: bounded(
            &h.initial_window_size,
            "initial_window_size",
            1024,
            MAX_WINDOW,
            d.initial_window_size,
        )?,
        initial_connection_window_size: bounded(
            &h.initial_connection_window_size,
            "initial_connection_window_size",
            65_535,
            MAX_WINDOW,
            d.initial_connection_window_size,
        )?,
        max_frame_size: bounded(
            &h.max_frame_size,
            "max_frame_size",
            16_384,
            16_777_215,
            d.max_frame_size,
        )?,
        max_pending_resets: match &h.max_pending_resets {
            Some(n) if *n.get_ref() == 0 => {
                return Err((
                    n.span(),
                    "http2.max_pending_resets must be at least 1".into(),
                ));
            }
            Some(n) => *n.get_ref(),
            None => d.max_pending_resets,
        },
    })
}

/// Whether `id` may name a fleet node: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn is_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `[fleet]`.
fn fleet(f: &Spanned<RawFleet>, files: FileReader<'_>) -> Result<Fleet, (Range<usize>, String)> {
    let raw = f.get_ref();
    let url = raw.url.get_ref();
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err((
            raw.url.span(),
            format!(
                "fleet.url: `{url}` is not a Redis URL like redis://127.0.0.1:6379 (rediss:// for TLS)"
            ),
        ));
    }
    let node_id = match &raw.node_id {
        Some(n) => {
            let id = n.get_ref();
            if !is_node_id(id) {
                return Err((
                    n.span(),
                    format!(
                        "fleet.node_id: `{id}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
                    ),
                ));
            }
            id.clone()
        }
        None => {
            return Err((
                f.span(),
                "fleet.node_id is required: a name for this node that stays the same across restarts (its leases are held under it)".into(),
            ));
        }
    };
    let unreachable = match raw
        .on_unreachable
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span()))
    {
        None | Some(("closed", _)) => {
            if let Some(a) = &raw.open_allowance_usd {
                return Err((
                    a.span(),
                    "fleet.open_allowance_usd is for on_unreachable = \"open\"".into(),
                ));
            }
            Unreachable::Closed
        }
        Some(("open", span)) => {
            let usd = raw.open_allowance_usd.as_ref().ok_or((
                span,
                "fleet.on_unreachable = \"open\" needs open_allowance_usd: the most a node may grant per account while Redis is unreachable".to_string(),
            ))?;
            let v = *usd.get_ref();
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    usd.span(),
                    format!("fleet.open_allowance_usd must be 0 or more, not {v}"),
                ));
            }
            Unreachable::Open {
                allowance: (v * 1e6).round() as u64,
            }
        }
        Some((other, span)) => {
            return Err((
                span,
                format!("fleet.on_unreachable: `{other}` is not `closed` or `open`"),
            ));
        }
    };
    // TLS files: only for rediss://; a client certificate comes with its key.
    let tls = url.starts_with("rediss://");
    for (field, v) in [
        ("tls_ca", &raw.tls_ca),
        ("tls_cert", &raw.tls_cert),
        ("tls_key", &raw.tls_key),
    ] {
        if let Some(v) = v
            && !tls
        {
            return Err((
                v.span(),
                format!(
                    "fleet.{field} is for a TLS connection to Redis: the url must start with rediss://"
                ),
            ));
        }
    }
    let tls_client = match (&raw.tls_cert, &raw.tls_key) {
        (Some(c), Some(k)) => Some((
            pem_file(c, "fleet.tls_cert", files)?,
            pem_file(k, "fleet.tls_key", files)?,
        )),
        (None, None) => None,
        (Some(v), None) | (None, Some(v)) => {
            return Err((
                v.span(),
                "fleet.tls_cert and fleet.tls_key go together (a client certificate and its key)"
                    .into(),
            ));
        }
    };
    Ok(Fleet {
        tls_ca: raw
            .tls_ca
            .as_ref()
            .map(|c| pem_file(c, "fleet.tls_ca", files))
            .transpose()?,
        tls_client,
        url: url.clone(),
        key_prefix: raw.key_prefix.clone().unwrap_or_else(|| "busbar:".into()),
        node_id,
        unreachable,
        timeout_ms: raw.timeout_ms.unwrap_or(250).max(1),
    })
}

/// `[telemetry]`.
fn telemetry(t: &RawTelemetry) -> Result<Telemetry, (Range<usize>, String)> {
    let d = Telemetry::default();
    let otlp_endpoint = match &t.otlp_endpoint {
        Some(e) => {
            let url = e.get_ref();
            let ok = url
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                return Err((
                    e.span(),
                    format!(
                        "telemetry.otlp_endpoint: `{url}` is not an http:// URL like \
                         http://127.0.0.1:4318/v1/traces (OTLP/HTTP with protobuf; TLS to the \
                         collector is not supported: run the collector beside busbar)"
                    ),
                ));
            }
            Some(url.clone())
        }
        None => None,
    };
    let sample_ratio = match &t.sample_ratio {
        Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
            return Err((
                r.span(),
                format!(
                    "telemetry.sample_ratio must be between 0 and 1, not {}",
                    r.get_ref()
                ),
            ));
        }
        Some(r) => *r.get_ref(),
        None => d.sample_ratio,
    };
    let service_name = match &t.service_name {
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err((n.span(), "telemetry.service_name is empty".into()));
        }
        Some(n) => n.get_ref().clone(),
        None => d.service_name,
    };
    let access_log = match &t.access_log {
        Some(p) if p.get_ref().is_empty() => {
            return Err((
                p.span(),
                "telemetry.access_log is empty: `-` for stdout, or a file".into(),
            ));
        }
        Some(p) => Some(p.get_ref().clone()),
        None => None,
    };
    let otlp_timeout_ms = t.otlp_timeout_ms.unwrap_or(d.otlp_timeout_ms);
    if otlp_timeout_ms == 0 {
        return Err((0..0, "telemetry.otlp_timeout_ms must be at least 1".into()));
    }
    Ok(Telemetry {
        metrics: t.metrics.unwrap_or(d.metrics),
        metrics_on_data_listener: t
            .metrics_on_data_listener
            .unwrap_or(d.metrics_on_data_listener),
        otlp_endpoint,
        otlp_timeout_ms,
        sample_ratio,
        service_name,
        access_log,
    })
}

fn admin_settings(
    a: &RawAdmin,
    env: &dyn Fn(&str) -> Option<String>,
    files: FileReader<'_>,
) -> Result<Option<Admin>, (Range<usize>, String)> {
    if !a.enabled {
        return Ok(None);
    }
    let listen = match &a.listen {
        Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|_| {
            (
                l.span(),
                format!(
                    "admin.listen: `{}` is not an address like 127.0.0.1:8081",
                    l.get_ref()
                ),
            )
        })?,
        None => DEFAULT_ADMIN_LISTEN
            .parse()
            .map_err(|_| (0..0, "admin.listen".to_string()))?,
    };
    let token = match &a.token_env {
        Some(var) => Some(
            env(var.get_ref())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    (
                        var.span(),
                        format!(
                            "admin.token_env: environment variable {} is not set",
                            var.get_ref()
                        ),
                    )
                })?,
        ),
        None => None,
    };
    if token.is_none() && !listen.ip().is_loopback() {
        let span = a.listen.as_ref().map_or(0..0, |l| l.span());
        return Err((
            span,
            "admin.listen is not a loopback address: set admin.token_env so the admin API needs a token".into(),
        ));
    }
    let tls = a
        .tls
        .as_ref()
        .map(|t| tls_settings(t, "admin.tls", files))
        .transpose()?;
    Ok(Some(Admin { listen, token, tls }))
}

/// `[[providers.NAME.faults]]`: each rule names a class and at least one condition.
fn fault_rules(
    name: &str,
    raw: &[Spanned<RawRule>],
) -> Result<Vec<crate::fault::Rule>, (Range<usize>, String)> {
    raw.iter()
        .map(|r| {
            let span = r.span();
            let r = r.get_ref();
            let class = crate::fault::Class::from_name(r.class.get_ref()).ok_or_else(|| {
                (
                    r.class.span(),
                    format!(
                        "providers.{name}.faults: `{}` is not a class (one of {})",
                        r.class.get_ref(),
                        crate::fault::Class::ALL.map(crate::fault::Class::as_str).join(", ")
                    ),
                )
            })?;
            if r.status.is_none() && r.code.is_none() && r.message.is_none() {
                return Err((
                    span,
                    format!("providers.{name}.faults: a rule needs a status, a code or a message to match"),
                ));
            }
            Ok(crate::fault::Rule {
                status: r.status,
                code: r.code.clone(),
                message: r.message.clone(),
                class,
            })
        })
        .collect()
}

/// The provider's auth carrier: `auth` when given, else its protocol's usual one; `sigv4` needs a
/// `region` and reads AWS credentials from the environment.
fn provider_auth(
    name: &str,
    p: &RawProvider,
    protocol: Protocol,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Auth, (Range<usize>, String)> {
    let Some(a) = &p.auth else {
        return Ok(Auth::default_for(protocol));
    };
    Ok(match a.get_ref().as_str() {
        "none" => Auth::None,
        "bearer" => Auth::Bearer,
        "x-api-key" => Auth::XApiKey,
        "x-goog-api-key" => Auth::GoogApiKey,
        "api-key" => Auth::AzureApiKey,
        "sigv4" => {
            let region = p.region.clone().ok_or_else(|| {
                (
                    a.span(),
                    format!("providers.{name}: auth = \"sigv4\" needs a region, e.g. region = \"us-east-1\""),
                )
            })?;
            let names = [
                p.aws_access_key_env
                    .clone()
                    .unwrap_or_else(|| "AWS_ACCESS_KEY_ID".into()),
                p.aws_secret_key_env
                    .clone()
                    .unwrap_or_else(|| "AWS_SECRET_ACCESS_KEY".into()),
                p.aws_session_token_env
                    .clone()
                    .unwrap_or_else(|| "AWS_SESSION_TOKEN".into()),
            ];
            let get = |n: &str| env(n).filter(|v| !v.is_empty());
            Auth::SigV4(AwsSigning {
                region,
                service: "bedrock".into(),
                access_key_id: get(&names[0]),
                secret_access_key: get(&names[1]),
                session_token: get(&names[2]),
                env_names: names,
            })
        }
        other => {
            return Err((
                a.span(),
                format!(
                    "providers.{name}.auth: `{other}` is not one of none, bearer, x-api-key, x-goog-api-key, api-key, sigv4"
                ),
            ));
        }
    })
}

fn parse_base_url(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{url}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return Err(format!(
            "`{url}` must be scheme://host[:port][/path], without credentials, query or fragment"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("`{url}` has an unclosed IPv6 literal"))?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("`{url}`: junk after the IPv6 literal")),
        };
        (v6[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("`{url}`: `{p}` is not a port number"))?,
        None if tls => 443,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(Endpoint::Http {
        tls,
        host,
        port,
        path_prefix: path.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "APP_KEY" => Some("bb-secret".into()),
            _ => None,
        }
    }

    const GOOD: &str = r#"
listen = "127.0.0.1:9999"
shards = 2
driver = "epoll"

[limits]
max_body_bytes = 1000

[providers.openai]
protocol = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"

[providers.local]
protocol = "openai"
base_url = "http://[::1]:8000"

[providers.mock]
protocol = "openai"
mock = { ttft_ms = 5, tokens = 3 }

[models.gpt-4o-mini]
provider = "openai"
context_window = 128000
input_price = 0.15
output_price = 0.6

[models.small]
provider = "local"
upstream = "llama"

[models.mock]
provider = "mock"

[pools.fast]
members = [{ model = "gpt-4o-mini", weight = 3 }, { model = "small" }]

[[keys]]
name = "app"
key_env = "APP_KEY"
"#;

    #[test]
    fn good_config_resolves() {
        let c = parse(GOOD, &env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.shards, 2);
        assert_eq!(c.driver, Driver::Epoll);
        assert_eq!(c.limits.max_body_bytes, 1000);
        assert_eq!(c.limits.max_headers, Limits::default().max_headers);
        let openai = &c.providers[c.providers.iter().position(|p| p.name == "openai").unwrap()];
        assert_eq!(openai.api_key.as_deref(), Some("sk-test"));
        assert_eq!(
            openai.endpoint,
            Endpoint::Http {
                tls: true,
                host: "api.openai.com".into(),
                port: 443,
                path_prefix: "/v1".into()
            }
        );
        let local = c.providers.iter().find(|p| p.name == "local").unwrap();
        assert_eq!(
            local.endpoint,
            Endpoint::Http {
                tls: false,
                host: "::1".into(),
                port: 8000,
                path_prefix: "".into()
            }
        );
        let small = c.models.iter().find(|m| m.name == "small").unwrap();
        assert_eq!(small.upstream, "llama");
        assert_eq!(c.pools[0].members.len(), 2);
        assert_eq!(c.pools[0].members[0].weight, 3);
        assert_eq!(c.pools[0].members[1].weight, 1);
        assert_eq!(c.keys[0].sha256, crate::keys::digest("bb-secret"));
    }

    fn err_of(text: &str) -> ConfigError {
        parse(text, &env).unwrap_err()
    }

    #[test]
    fn telemetry_and_fleet_sections_resolve_and_refuse_what_cannot_work() {
        let base = "listen = \"127.0.0.1:1\"\n";
        let c = parse(base, &env).unwrap();
        assert_eq!(c.telemetry, Telemetry::default());
        assert!(c.fleet.is_none());
        let c = parse(
            &format!("{base}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample_ratio = 0.25\naccess_log = \"-\"\n[fleet]\nurl = \"redis://127.0.0.1:6379\"\nnode_id = \"edge-1\"\non_unreachable = \"open\"\nopen_allowance_usd = 2.5\n"),
            &env,
        )
        .unwrap();
        assert_eq!(c.telemetry.sample_ratio, 0.25);
        assert_eq!(c.telemetry.access_log.as_deref(), Some("-"));
        let f = c.fleet.unwrap();
        assert_eq!(f.node_id, "edge-1");
        assert_eq!(f.key_prefix, "busbar:");
        assert_eq!(
            f.unreachable,
            Unreachable::Open {
                allowance: 2_500_000
            }
        );
        for (bad, says) in [
            (
                "[telemetry]\notlp_endpoint = \"https://collector:4318\"\n",
                "http:// URL",
            ),
            ("[telemetry]\nsample_ratio = 1.5\n", "between 0 and 1"),
            (
                "[fleet]\nurl = \"http://127.0.0.1:6379\"\nnode_id = \"a\"\n",
                "Redis URL",
            ),
            (
                "[fleet]\nurl = \"redis://127.0.0.1\"\n",
                "node_id is required",
            ),
            (
                "[fleet]\nurl = \"redis://127.0.0.1\"\nnode_id = \"a b\"\n",
                "letters, digits",
            ),
            (
                "[fleet]\nurl = \"redis://127.0.0.1\"\nnode_id = \"a\"\non_unreachable = \"open\"\n",
                "needs open_allowance_usd",
            ),
            (
                "[fleet]\nurl = \"redis://127.0.0.1\"\nnode_id = \"a\"\non_unreachable = \"maybe\"\n",
                "not `closed` or `open`",
            ),
            (
                "[fleet]\nurl = \"redis://127.0.0.1\"\nnode_id = \"a\"\ntls_ca = \"ca.pem\"\n",
                "must start with rediss://",
            ),
            (
                "[fleet]\nurl = \"rediss://127.0.0.1\"\nnode_id = \"a\"\ntls_cert = \"c.pem\"\n",
                "go together",
            ),
        ] {
            let e = err_of(&format!("{base}{bad}"));
            assert!(e.message.contains(says), "{bad}: {e}");
        }
        // rediss:// with a CA and a client certificate: the files are read with the config.
        let files = |path: &str| match path {
            "ca.pem" | "c.pem" | "k.pem" => Ok(format!("-----BEGIN {path}-----\n")),
            other => Err(format!("cannot read `{other}`")),
        };
        let tls = "[fleet]\nurl = \"rediss://redis.internal:6380\"\nnode_id = \"a\"\ntls_ca = \"ca.pem\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
        let f = parse_with_files(&format!("{base}{tls}"), &env, &files)
            .unwrap()
            .fleet
            .unwrap();
        assert_eq!(f.tls_ca.unwrap().pem, "-----BEGIN ca.pem-----\n");
        let (c, k) = f.tls_client.unwrap();
        assert_eq!((c.path.as_str(), k.path.as_str()), ("c.pem", "k.pem"));
        let e = parse_with_files(
            &format!("{base}{}", tls.replace("ca.pem", "missing.pem")),
            &env,
            &files,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("fleet.tls_ca: cannot read `missing.pem`"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = err_of(
            "listen = \"127.0.0.1:1\"\n[providers.x]\nprotocol = \"openai\"\nbase_url = \"ftp://x\"\n",
        );
        assert_eq!((e.line, e.column), (Some(4), Some(12)), "{e}");
        assert!(e.message.contains("http:// or https://"), "{e}");

        let e = err_of("[models.m]\nprovider = \"nope\"\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("no provider named `nope`"), "{e}");

        let e = err_of("bogus = 1\n");
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("unknown field"), "{e}");

        let e = err_of("shards = \"two\"\n");
        assert_eq!(e.line, Some(1));

        let e = err_of(
            "[providers.m]\nprotocol = \"openai\"\nmock = {}\n[models.a]\nprovider = \"m\"\n[pools.p]\nmembers = [{ model = \"a\", weight = 0 }]\n",
        );
        assert_eq!(e.line, Some(7));
        assert!(e.message.contains("weight"), "{e}");

        let e = err_of("[[keys]]\nname = \"k\"\nkey_env = \"UNSET_VAR\"\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("UNSET_VAR is not set"), "{e}");

        let e = err_of("listen = \"0.0.0.0:8080\"\n");
        assert!(e.message.contains("unauthenticated"), "{e}");
        assert!(
            parse(
                "listen = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n",
                &env
            )
            .is_ok()
        );

        let e = err_of("[providers.p]\nprotocol = \"grpc\"\nmock = {}\n");
        assert_eq!((e.line, e.column), (Some(2), Some(12)));
    }

    #[test]
    fn protocols_auth_carriers_and_strict() {
        let env = |n: &str| match n {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let c = parse(
            "[providers.a]\nprotocol = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\n\
             [providers.g]\nprotocol = \"gemini\"\nbase_url = \"https://x/v1beta\"\n\
             [providers.az]\nprotocol = \"openai\"\nbase_url = \"https://x/openai/v1\"\nauth = \"api-key\"\nquery = \"api-version=2024-10-21\"\n\
             [providers.b]\nprotocol = \"bedrock\"\nbase_url = \"https://bedrock-runtime.us-east-1.amazonaws.com\"\nauth = \"sigv4\"\nregion = \"us-east-1\"\n\
             [models.m]\nprovider = \"a\"\nstrict = true\n[pools.p]\nstrict = true\nmembers = [{ model = \"m\" }]\n",
            &env,
        )
        .unwrap();
        let by = |n: &str| c.providers.iter().find(|p| p.name == n).unwrap();
        assert_eq!(
            (by("a").protocol, &by("a").auth),
            (Protocol::Anthropic, &Auth::XApiKey)
        );
        assert_eq!(by("a").anthropic_version, "2023-06-01");
        assert_eq!(by("g").auth, Auth::GoogApiKey);
        assert_eq!(
            (&by("az").auth, by("az").query.as_deref()),
            (&Auth::AzureApiKey, Some("api-version=2024-10-21"))
        );
        let Auth::SigV4(s) = &by("b").auth else {
            panic!("sigv4")
        };
        assert_eq!(
            (
                s.region.as_str(),
                s.access_key_id.as_deref(),
                s.secret_access_key.as_deref(),
                s.session_token.as_deref()
            ),
            ("us-east-1", Some("AKID"), Some("secret"), None)
        );
        assert!(c.models[0].strict && c.pools[0].strict);

        let e = err_of(
            "[providers.b]\nprotocol = \"bedrock\"\nbase_url = \"https://x\"\nauth = \"sigv4\"\n",
        );
        assert!(e.message.contains("needs a region"), "{e}");
        assert_eq!(e.line, Some(4));
        let e = err_of(
            "[providers.b]\nprotocol = \"openai\"\nbase_url = \"https://x\"\nauth = \"basic\"\n",
        );
        assert!(e.message.contains("not one of none, bearer"), "{e}");
    }

    #[test]
    fn failure_handling_settings_resolve_with_defaults_and_overrides() {
        let text = "[breaker]\nconsecutive_failures = 3\nerror_rate = 0.25\ncooldown_ms = 500\n\
             [lanes]\nmax_concurrency = 8\nqueue_timeout_ms = 100\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [providers.m]\nprotocol = \"anthropic\"\nmock = {}\n\
             [[providers.m.faults]]\nstatus = 400\nmessage = \"too long\"\nclass = \"context_overflow\"\n\
             [models.a]\nprovider = \"m\"\ncontext_window = 1000\nmax_concurrency = 2\n\
             [models.b]\nprovider = \"m\"\n\
             [pools.p]\nmembers = [{ model = \"a\" }, { model = \"b\" }]\nmax_attempts = 5\n";
        let c = parse(text, &env).unwrap();
        assert_eq!(c.breaker.consecutive_failures, 3);
        assert_eq!(c.breaker.error_rate, 0.25);
        assert_eq!(c.breaker.cooldown, std::time::Duration::from_millis(500));
        assert_eq!(
            c.breaker.max_cooldown,
            crate::breaker::Settings::default().max_cooldown
        );
        let a = &c.models[0];
        assert_eq!((a.lane.max_concurrency, a.lane.queue_timeout_ms), (2, 100));
        assert_eq!(c.models[1].lane.max_concurrency, 8);
        assert_eq!(c.models[1].lane.max_queue, LaneLimits::default().max_queue);
        // More attempts than members: capped at the members.
        assert_eq!(c.pools[0].max_attempts, 2);
        assert_eq!(c.admin.as_ref().map(|a| a.listen.port()), Some(0));
        let rule = &c.providers[0].faults[0];
        assert_eq!(
            (rule.status, rule.message.as_deref(), rule.class),
            (
                Some(400),
                Some("too long"),
                crate::fault::Class::ContextOverflow
            )
        );
        // Defaults: admin on loopback 8081, three attempts.
        let c = parse("", &env).unwrap();
        assert_eq!(
            c.admin.map(|a| a.listen.to_string()),
            Some("127.0.0.1:8081".into())
        );
        assert_eq!(
            parse("[admin]\nenabled = false\n", &env).unwrap().admin,
            None
        );

        let e = err_of("[breaker]\nerror_rate = 1.5\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("fraction"), "{e}");
        let e = err_of(
            "[providers.m]\nprotocol = \"openai\"\nmock = {}\n[[providers.m.faults]]\nstatus = 400\nclass = \"meh\"\n",
        );
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("context_overflow"), "{e}");
        let e = err_of(
            "[providers.m]\nprotocol = \"openai\"\nmock = {}\n[[providers.m.faults]]\nclass = \"timeout\"\n",
        );
        assert!(e.message.contains("needs a status"), "{e}");
        let e = err_of("[admin]\nlisten = \"0.0.0.0:9\"\n");
        assert!(e.message.contains("token"), "{e}");
        let e = err_of("[lanes]\nmax_concurrency = 0\n");
        assert!(e.message.contains("at least 1"), "{e}");
        let e = err_of("[upstream]\nevent_gap_timeout_ms = 18446744073709551615\n");
        assert!(e.message.contains("more than 30 days"), "{e}");
        let e = err_of("[breaker]\nhard_cooldown_ms = 18446744073709551615\n");
        assert!(e.message.contains("breaker.hard_cooldown_ms"), "{e}");
    }
}
