//! The programmable request path of one shard, for one config generation.
//!
//! ```text
//!   route           pool -> built-in | script (Rhai) | webhook  -> order of candidates, or reject
//!                   a failing script/webhook -> the pool's fallback built-in (counted, logged
//!                   once per interval)
//!   before_forward  script | webhook -> texts rewritten, or reject; failing -> forward as is
//!                   (or 503 when the config says fail closed)
//!   after_response  event -> bounded per-shard queue -> webhook, off the request path;
//!                   a full queue drops the event and counts it
//! ```
//!
//! A hook never blocks a request past its deadline and never fails one by itself.

pub(crate) mod audit;
pub(crate) mod webhook;

use crate::upstream::Upstream;
use busbar_core::config::{BeforeForward, Config, HookTarget, PolicyKind, Pool};
use busbar_core::route::script::{Clock, Rewrite, Script, ScriptLimits, Stage};
use busbar_core::route::{Builtin, Candidate, Decision, SmoothWeighted, Summary, order_builtin};
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use webhook::{HookError, Webhook};

/// A failing hook is logged at most once per this interval (with how many failures it hid).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters of one hook on one shard, merged across shards by `/stats`.
#[derive(Default)]
pub(crate) struct HookStats {
    pub(crate) calls: Cell<u64>,
    pub(crate) rejected: Cell<u64>,
    pub(crate) rewritten: Cell<u64>,
    /// Failures by kind (each one fell back).
    pub(crate) failures: RefCell<BTreeMap<&'static str, u64>>,
    last_log: Cell<Option<std::time::Instant>>,
    unlogged: Cell<u64>,
}

impl HookStats {
    fn failed(&self, what: &str, shard: usize, e: &HookError) {
        *self.failures.borrow_mut().entry(e.kind()).or_default() += 1;
        let now = std::time::Instant::now();
        if self
            .last_log
            .get()
            .is_some_and(|t| now.duration_since(t) < LOG_EVERY)
        {
            self.unlogged.set(self.unlogged.get() + 1);
            return;
        }
        tracing::warn!(
            shard,
            hook = what,
            kind = e.kind(),
            more_since_last_log = self.unlogged.get(),
            "hook failed, fell back: {e}"
        );
        self.last_log.set(Some(now));
        self.unlogged.set(0);
    }

    /// A snapshot for `/stats`.
    pub(crate) fn snapshot(&self) -> HookCounts {
        HookCounts {
            calls: self.calls.get(),
            rejected: self.rejected.get(),
            rewritten: self.rewritten.get(),
            failures: self
                .failures
                .borrow()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// Counters of one hook, as sent to the admin thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct HookCounts {
    pub(crate) calls: u64,
    pub(crate) rejected: u64,
    pub(crate) rewritten: u64,
    pub(crate) failures: BTreeMap<String, u64>,
}

impl HookCounts {
    pub(crate) fn add(&mut self, o: &HookCounts) {
        self.calls += o.calls;
        self.rejected += o.rejected;
        self.rewritten += o.rewritten;
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
    }
}

enum Engine {
    Builtin(Builtin),
    Script(Script),
    Webhook(Webhook),
}

/// A pool's router on this shard.
pub(crate) struct PoolRouter {
    rotation: RefCell<SmoothWeighted>,
    engine: Engine,
    fallback: Builtin,
    pub(crate) stats: HookStats,
}

/// The wire shape of a webhook's routing reply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteReply {
    order: Option<Vec<String>>,
    reject: Option<RejectReply>,
}

#[derive(Deserialize)]
struct RejectReply {
    status: u16,
    message: String,
}

fn reject(r: RejectReply) -> Result<(u16, String), HookError> {
    if (400..=599).contains(&r.status) {
        Ok((r.status, r.message))
    } else {
        Err(HookError::Malformed(format!(
            "reject.status {} is not 400..599",
            r.status
        )))
    }
}

impl PoolRouter {
    /// The order in which to try `candidates` (indices into it), or a rejection.
    pub(crate) async fn decide(
        &self,
        shard: usize,
        upstream: &Upstream,
        pool: &str,
        summary: &Summary,
        candidates: &[Candidate<'_>],
    ) -> Decision {
        let tried = match &self.engine {
            Engine::Builtin(b) => return self.builtin(*b, summary, candidates),
            Engine::Script(s) => {
                self.stats.calls.set(self.stats.calls.get() + 1);
                s.route(summary, candidates)
                    .map_err(|e| HookError::Script(e.kind(), e.to_string()))
            }
            Engine::Webhook(w) => {
                self.stats.calls.set(self.stats.calls.get() + 1);
                route_webhook(w, upstream, pool, summary, candidates).await
            }
        };
        match tried {
            Ok(d) => {
                if matches!(d, Decision::Reject { .. }) {
                    self.stats.rejected.set(self.stats.rejected.get() + 1);
                }
                d
            }
            Err(e) => {
                self.stats.failed(&format!("pools.{pool}"), shard, &e);
                self.builtin(self.fallback, summary, candidates)
            }
        }
    }

    fn builtin(&self, b: Builtin, summary: &Summary, candidates: &[Candidate<'_>]) -> Decision {
        let mut out = Vec::with_capacity(candidates.len());
        order_builtin(
            b,
            summary,
            candidates,
            &mut self.rotation.borrow_mut(),
            &mut out,
        );
        Decision::Order(out)
    }
}

async fn route_webhook(
    w: &Webhook,
    upstream: &Upstream,
    pool: &str,
    summary: &Summary,
    candidates: &[Candidate<'_>],
) -> Result<Decision, HookError> {
    #[derive(serde::Serialize)]
    struct Ask<'a> {
        stage: &'static str,
        pool: &'a str,
        request: &'a Summary,
        candidates: &'a [Candidate<'a>],
    }
    let body = serde_json::to_vec(&Ask {
        stage: "route",
        pool,
        request: summary,
        candidates,
    })
    .map_err(|e| HookError::Malformed(e.to_string()))?;
    w.post(upstream, &body, |reply| route_reply(reply, candidates))
        .await
}

fn route_reply(reply: &[u8], candidates: &[Candidate<'_>]) -> Result<Decision, HookError> {
    let r: RouteReply =
        serde_json::from_slice(reply).map_err(|e| HookError::Malformed(e.to_string()))?;
    match (r.order, r.reject) {
        (_, Some(rej)) => {
            let (status, message) = reject(rej)?;
            Ok(Decision::Reject { status, message })
        }
        (Some(names), None) => {
            if names.is_empty() {
                return Err(HookError::Malformed("order is empty".into()));
            }
            let mut order = Vec::with_capacity(names.len());
            for n in &names {
                let i = candidates
                    .iter()
                    .position(|c| c.name == n)
                    .ok_or_else(|| HookError::Malformed(format!("`{n}` is not a candidate")))?;
                if order.contains(&i) {
                    return Err(HookError::Malformed(format!("`{n}` is listed twice")));
                }
                order.push(i);
            }
            Ok(Decision::Order(order))
        }
        (None, None) => Err(HookError::Malformed(
            "the reply has neither `order` nor `reject`".into(),
        )),
    }
}

/// What `before_forward` decided.
pub(crate) enum Forward {
    /// Send the request as it is.
    AsIs,
    /// Send this body instead.
    Rewritten(Vec<u8>),
    /// Refuse with this status and message.
    Reject(u16, String),
}

enum BeforeEngine {
    Script(Script),
    Webhook(Webhook),
}

/// The `before_forward` stage on this shard.
pub(crate) struct Before {
    engine: BeforeEngine,
    reject_on_failure: bool,
    pub(crate) headers: Vec<String>,
    pub(crate) stats: HookStats,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BeforeReply {
    action: Option<String>,
    texts: Option<Vec<TextReply>>,
    reject: Option<RejectReply>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextReply {
    path: String,
    text: String,
}

impl Before {
    /// Runs the hook over `body`'s texts.
    pub(crate) async fn run(
        &self,
        shard: usize,
        upstream: &Upstream,
        summary: &Summary,
        body: &[u8],
    ) -> Forward {
        self.stats.calls.set(self.stats.calls.get() + 1);
        let result = match busbar_codec::texts::collect(body) {
            // Not JSON: the request is refused later with a precise error; nothing to look at.
            Err(_) => return Forward::AsIs,
            Ok(texts) => self.call(upstream, summary, body, texts).await,
        };
        match result {
            Ok(Forward::AsIs) => Forward::AsIs,
            Ok(Forward::Rewritten(b)) => {
                self.stats.rewritten.set(self.stats.rewritten.get() + 1);
                Forward::Rewritten(b)
            }
            Ok(Forward::Reject(s, m)) => {
                self.stats.rejected.set(self.stats.rejected.get() + 1);
                Forward::Reject(s, m)
            }
            Err(e) => {
                self.stats.failed("hooks.before_forward", shard, &e);
                if self.reject_on_failure {
                    Forward::Reject(
                        503,
                        format!(
                            "the before_forward hook failed ({e}) and is configured to refuse requests when it fails"
                        ),
                    )
                } else {
                    Forward::AsIs
                }
            }
        }
    }

    async fn call(
        &self,
        upstream: &Upstream,
        summary: &Summary,
        body: &[u8],
        texts: Vec<(String, String)>,
    ) -> Result<Forward, HookError> {
        let changes: Vec<(String, String)> = match &self.engine {
            BeforeEngine::Script(s) => {
                let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
                match s
                    .before_forward(summary, &refs)
                    .map_err(|e| HookError::Script(e.kind(), e.to_string()))?
                {
                    Rewrite::Continue => return Ok(Forward::AsIs),
                    Rewrite::Reject { status, message } => {
                        return Ok(Forward::Reject(status, message));
                    }
                    Rewrite::Texts(new) => texts
                        .into_iter()
                        .zip(new)
                        .filter(|((_, old), new)| old != new)
                        .map(|((p, _), new)| (p, new))
                        .collect(),
                }
            }
            BeforeEngine::Webhook(w) => {
                #[derive(serde::Serialize)]
                struct Text<'a> {
                    path: &'a str,
                    text: &'a str,
                }
                #[derive(serde::Serialize)]
                struct Ask<'a> {
                    stage: &'static str,
                    request: &'a Summary,
                    texts: Vec<Text<'a>>,
                }
                let ask = Ask {
                    stage: "before_forward",
                    request: summary,
                    texts: texts
                        .iter()
                        .map(|(p, t)| Text { path: p, text: t })
                        .collect(),
                };
                let json =
                    serde_json::to_vec(&ask).map_err(|e| HookError::Malformed(e.to_string()))?;
                return w
                    .post(upstream, &json, |reply| {
                        let r: BeforeReply = serde_json::from_slice(reply)
                            .map_err(|e| HookError::Malformed(e.to_string()))?;
                        if let Some(rej) = r.reject {
                            let (s, m) = reject(rej)?;
                            return Ok(Forward::Reject(s, m));
                        }
                        match r.action.as_deref() {
                            None | Some("continue") | Some("rewrite") => {}
                            Some(other) => {
                                return Err(HookError::Malformed(format!(
                                    "action `{other}` is not continue"
                                )));
                            }
                        }
                        let changes: Vec<(String, String)> = r
                            .texts
                            .unwrap_or_default()
                            .into_iter()
                            .map(|t| (t.path, t.text))
                            .collect();
                        rewrite(body, &changes)
                    })
                    .await;
            }
        };
        rewrite(body, &changes)
    }
}

/// `body` with `changes` applied (none: as it is).
fn rewrite(body: &[u8], changes: &[(String, String)]) -> Result<Forward, HookError> {
    if changes.is_empty() {
        return Ok(Forward::AsIs);
    }
    busbar_codec::texts::apply(body, changes)
        .map(Forward::Rewritten)
        .map_err(|e| HookError::Malformed(e.to_string()))
}

/// Every hook of one shard for one config generation.
pub(crate) struct Hooks {
    /// One router per pool (index as in `Config::pools`).
    pub(crate) pools: Vec<PoolRouter>,
    pub(crate) before: Option<Before>,
    pub(crate) after: Option<Rc<audit::Audit>>,
}

fn clock() -> Clock {
    Rc::new(std::time::Instant::now)
}

fn limits(timeout_us: u64) -> ScriptLimits {
    ScriptLimits {
        deadline: Duration::from_micros(timeout_us),
        ..ScriptLimits::default()
    }
}

/// The webhook endpoints a config names, in the order their origins follow the providers' in
/// a shard's upstream pool: pools' webhooks (by pool), then before_forward, then
/// after_response.
pub(crate) fn webhook_urls(config: &Config) -> Vec<&busbar_core::config::HookUrl> {
    let mut out: Vec<&busbar_core::config::HookUrl> = config
        .pools
        .iter()
        .filter_map(|p| match &p.policy.kind {
            PolicyKind::Webhook(u) => Some(u),
            _ => None,
        })
        .collect();
    if let Some(BeforeForward {
        target: HookTarget::Webhook(u),
        ..
    }) = &config.hooks.before_forward
    {
        out.push(u);
    }
    if let Some(a) = &config.hooks.after_response {
        out.push(&a.webhook);
    }
    out
}

impl Hooks {
    /// Builds this shard's hooks; scripts are compiled here (once per shard). They were
    /// compiled when the config was loaded, so an error now is not expected; should one happen
    /// the pool uses its fallback.
    pub(crate) fn new(config: &Config, shard: usize) -> Self {
        let first = config.providers.len();
        let mut next = first;
        let mut origin = || {
            let o = next;
            next += 1;
            o
        };
        let seed = |i: usize| (i as u64) << 20 | shard as u64;
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let engine = match &p.policy.kind {
                    PolicyKind::Builtin(b) => Engine::Builtin(*b),
                    PolicyKind::Script(s) => match Script::compile(
                        &s.path,
                        &s.source,
                        Stage::Route,
                        limits(p.policy.timeout_us),
                        clock(),
                    ) {
                        Ok(s) => Engine::Script(s),
                        Err(e) => {
                            tracing::error!(pool = %p.name, "script does not compile: {e}");
                            Engine::Builtin(p.policy.fallback)
                        }
                    },
                    PolicyKind::Webhook(u) => Engine::Webhook(Webhook::new(
                        origin(),
                        &u.path,
                        Duration::from_micros(p.policy.timeout_us),
                        seed(i),
                    )),
                };
                router(p, engine)
            })
            .collect();
        let before = config.hooks.before_forward.as_ref().and_then(|b| {
            let engine = match &b.target {
                HookTarget::Script(s) => match Script::compile(
                    &s.path,
                    &s.source,
                    Stage::BeforeForward,
                    limits(b.timeout_us),
                    clock(),
                ) {
                    Ok(s) => BeforeEngine::Script(s),
                    Err(e) => {
                        tracing::error!("hooks.before_forward: script does not compile: {e}");
                        return None;
                    }
                },
                HookTarget::Webhook(u) => BeforeEngine::Webhook(Webhook::new(
                    origin(),
                    &u.path,
                    Duration::from_micros(b.timeout_us),
                    seed(1 << 10),
                )),
            };
            Some(Before {
                engine,
                reject_on_failure: b.reject_on_failure,
                headers: b.headers.clone(),
                stats: HookStats::default(),
            })
        });
        let after = config.hooks.after_response.as_ref().map(|a| {
            Rc::new(audit::Audit::new(
                Webhook::new(
                    origin(),
                    &a.webhook.path,
                    Duration::from_millis(a.timeout_ms),
                    seed(1 << 11),
                ),
                a.queue,
                a.headers.clone(),
            ))
        });
        Hooks {
            pools,
            before,
            after,
        }
    }
}

fn router(p: &Pool, engine: Engine) -> PoolRouter {
    PoolRouter {
        rotation: RefCell::new(SmoothWeighted::new(
            &p.members.iter().map(|m| m.weight).collect::<Vec<_>>(),
        )),
        engine,
        fallback: p.policy.fallback,
        stats: HookStats::default(),
    }
}

/// A shard's hook counters for `/stats`.
#[derive(Debug, Clone, Default)]
pub(crate) struct HooksReport {
    /// (`pools.NAME` or `hooks.before_forward`, counters).
    pub(crate) hooks: Vec<(String, HookCounts)>,
    pub(crate) audit: Option<audit::AuditCounts>,
}

/// This shard's hook counters in generation `routes`.
pub(crate) fn report(routes: &crate::routes::Routes) -> HooksReport {
    let mut hooks: Vec<(String, HookCounts)> = routes
        .config
        .pools
        .iter()
        .zip(&routes.hooks.pools)
        .filter(|(p, _)| !matches!(p.policy.kind, PolicyKind::Builtin(_)))
        .map(|(p, r)| (format!("pools.{}", p.name), r.stats.snapshot()))
        .collect();
    if let Some(b) = &routes.hooks.before {
        hooks.push(("hooks.before_forward".into(), b.stats.snapshot()));
    }
    HooksReport {
        hooks,
        audit: routes.hooks.after.as_ref().map(|a| a.counts()),
    }
}
