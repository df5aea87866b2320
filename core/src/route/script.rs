//! The `script` policy and the script side of the `before_forward` hook: Rhai, sandboxed.
//!
//! ```text
//!   compile (once per shard): parse, check `fn route(request, candidates)` /
//!                             `fn before_forward(request, texts)` is there
//!   each call: request + candidates as Rhai maps -> call the function (the AST is not
//!              re-run) -> check what came back -> Decision / Rewrite, or a ScriptError
//! ```
//!
//! The sandbox: no module loading (the `no_module` feature: `import` does not parse), no
//! `eval`, no printing, no time, no `sleep`; limits on operations, call depth, expression
//! depth, string, array and map sizes; and a deadline per call, checked against the injected
//! clock every [`CLOCK_EVERY`] operations. Rhai has no file, network or process access of its
//! own, and nothing that has is registered.

use super::{Candidate, Decision, Summary};
use rhai::{
    AST, Array, CallFnOptions, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map,
    NativeCallContext, Scope,
};
use std::cell::Cell;
use std::cmp::Ordering;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Operations between two looks at the clock.
pub const CLOCK_EVERY: u64 = 256;

/// Sandbox limits of a script.
#[derive(Debug, Clone, Copy)]
pub struct ScriptLimits {
    /// Most Rhai operations per call.
    pub max_operations: u64,
    /// Deepest function call nesting.
    pub max_call_levels: usize,
    /// Deepest expression nesting (global and in functions).
    pub max_expr_depth: usize,
    /// Longest string in bytes.
    pub max_string_size: usize,
    /// Most items of an array.
    pub max_array_size: usize,
    /// Most entries of a map.
    pub max_map_size: usize,
    /// Wall-clock time allowed per call.
    pub deadline: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_operations: 200_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 4096,
            max_map_size: 4096,
            deadline: Duration::from_millis(1),
        }
    }
}

/// A clock, injected: the shard passes `Instant::now`, tests a fake.
pub type Clock = Rc<dyn Fn() -> Instant>;

/// What a script is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `fn route(request, candidates)`.
    Route,
    /// `fn before_forward(request, texts)`.
    BeforeForward,
}

impl Stage {
    fn function(self) -> &'static str {
        match self {
            Stage::Route => "route",
            Stage::BeforeForward => "before_forward",
        }
    }
}

/// What `before_forward` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// Forward the request as it is.
    Continue,
    /// The texts, in order, as they should be (same count as given).
    Texts(Vec<String>),
    /// Refuse the request.
    Reject {
        /// HTTP status (400..=599).
        status: u16,
        /// What the client is told.
        message: String,
    },
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// It ran more operations than allowed.
    #[error("the script ran over its operation limit")]
    Operations,
    /// It ran past its deadline.
    #[error("the script ran past its deadline")]
    Deadline,
    /// A size or depth limit: string, array, map, call depth, expression depth.
    #[error("the script went over a size limit: {0}")]
    TooLarge(String),
    /// Any other runtime error.
    #[error("the script failed: {0}")]
    Runtime(String),
    /// It returned something that is not an answer.
    #[error("the script returned {0}")]
    BadReturn(String),
}

impl ScriptError {
    /// A short name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            ScriptError::Operations => "operations",
            ScriptError::Deadline => "deadline",
            ScriptError::TooLarge(_) => "size",
            ScriptError::Runtime(_) => "runtime",
            ScriptError::BadReturn(_) => "bad_return",
        }
    }
}

/// A compiled script with its sandboxed engine (one per shard).
pub struct Script {
    engine: Engine,
    ast: AST,
    deadline: Rc<Cell<Option<Instant>>>,
    clock: Clock,
    limit: Duration,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

/// The marker `on_progress` stops a script with when its deadline is past.
const DEADLINE_TOKEN: &str = "busbar:deadline";

/// What a script that calls `sleep` is told.
const NO_SLEEP: &str = "`sleep` is not available to busbar scripts";

impl Script {
    /// Compiles `source` (`name`, its path, names it in errors) for `stage`.
    pub fn compile(
        name: &str,
        source: &str,
        stage: Stage,
        limits: ScriptLimits,
        clock: Clock,
    ) -> Result<Script, String> {
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let mut engine = Engine::new_raw();
        engine.register_global_module(rhai::packages::Package::as_shared_module(
            &rhai::packages::StandardPackage::new(),
        ));
        engine.disable_symbol("eval");
        // `sleep` (Rhai's core package, with `std`) would block the shard inside one operation,
        // where neither the operation count nor the deadline is looked at. The engine's own
        // functions are found before the package's, so these take its place, also through
        // `Fn("sleep")` and `call`.
        engine.register_fn("sleep", |_: rhai::INT| -> Result<(), Box<EvalAltResult>> {
            Err(NO_SLEEP.into())
        });
        engine.register_fn(
            "sleep",
            |_: rhai::FLOAT| -> Result<(), Box<EvalAltResult>> { Err(NO_SLEEP.into()) },
        );
        register_types(&mut engine);
        engine.register_fn("order_by", order_by_key);
        engine.register_fn("order_by", order_by_keys);
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_levels);
        engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_strict_variables(true);
        engine.set_optimization_level(rhai::OptimizationLevel::Full);
        let (d, c) = (Rc::clone(&deadline), Rc::clone(&clock));
        engine.on_progress(move |ops| {
            if ops % CLOCK_EVERY == 0
                && let Some(at) = d.get()
                && c() >= at
            {
                return Some(Dynamic::from(DEADLINE_TOKEN));
            }
            None
        });
        let ast = engine.compile(source).map_err(|e| {
            let p = e.position();
            match (p.line(), p.position()) {
                (Some(l), Some(c)) => format!("{name} line {l}, column {c}: {}", e.err_type()),
                (Some(l), None) => format!("{name} line {l}: {}", e.err_type()),
                _ => format!("{name}: {}", e.err_type()),
            }
        })?;
        let f = stage.function();
        if !ast
            .iter_functions()
            .any(|x| x.name == f && x.params.len() == 2)
        {
            return Err(format!(
                "{name}: the script must define `fn {f}(request, {})`",
                match stage {
                    Stage::Route => "candidates",
                    Stage::BeforeForward => "texts",
                }
            ));
        }
        Ok(Script {
            engine,
            ast,
            deadline,
            clock,
            limit: limits.deadline,
        })
    }

    fn call(&self, f: &str, a: Dynamic, b: Dynamic) -> Result<Dynamic, ScriptError> {
        self.deadline.set(Some((self.clock)() + self.limit));
        let mut scope = Scope::new();
        let r = self.engine.call_fn_with_options::<Dynamic>(
            CallFnOptions::new().eval_ast(false).rewind_scope(true),
            &mut scope,
            &self.ast,
            f,
            (a, b),
        );
        self.deadline.set(None);
        r.map_err(|e| error(*e))
    }

    /// Runs `route(request, candidates)`.
    pub fn route(
        &self,
        request: &Summary,
        candidates: &[Candidate<'_>],
    ) -> Result<Decision, ScriptError> {
        let cands: Array = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| candidate(&self.engine, i, c))
            .collect();
        let out = self.call(
            "route",
            summary(&self.engine, request),
            Dynamic::from_array(cands),
        )?;
        if let Some((status, message)) = rejection(&out)? {
            return Ok(Decision::Reject { status, message });
        }
        let Ok(items) = out.as_array_ref() else {
            return Err(ScriptError::BadReturn(format!(
                "a {} (expected an array of candidate names or a reject map)",
                out.type_name()
            )));
        };
        if items.is_empty() {
            return Err(ScriptError::BadReturn("an empty array".into()));
        }
        let mut order = Vec::with_capacity(items.len());
        for item in items.iter() {
            let i = if let Ok(s) = item.as_immutable_string_ref() {
                candidates
                    .iter()
                    .position(|c| c.name == s.as_str())
                    .ok_or_else(|| {
                        ScriptError::BadReturn(format!("`{}`, not a candidate", s.as_str()))
                    })?
            } else if let Some(c) = item.read_lock::<CandidateView>() {
                c.0.index
            } else if let Ok(n) = item.as_int() {
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n < candidates.len())
                    .ok_or_else(|| ScriptError::BadReturn(format!("index {n}, out of range")))?
            } else {
                return Err(ScriptError::BadReturn(format!(
                    "a {} in the order",
                    item.type_name()
                )));
            };
            if order.contains(&i) {
                return Err(ScriptError::BadReturn(format!(
                    "`{}` twice",
                    candidates[i].name
                )));
            }
            order.push(i);
        }
        Ok(Decision::Order(order))
    }

    /// Runs `before_forward(request, texts)`.
    pub fn before_forward(
        &self,
        request: &Summary,
        texts: &[&str],
    ) -> Result<Rewrite, ScriptError> {
        let arr: Array = texts.iter().map(|t| Dynamic::from(t.to_string())).collect();
        let out = self.call(
            "before_forward",
            summary(&self.engine, request),
            Dynamic::from_array(arr),
        )?;
        if out.is_unit() {
            return Ok(Rewrite::Continue);
        }
        if let Some((status, message)) = rejection(&out)? {
            return Ok(Rewrite::Reject { status, message });
        }
        let Ok(items) = out.as_array_ref() else {
            return Err(ScriptError::BadReturn(format!(
                "a {} (expected (), an array of texts or a reject map)",
                out.type_name()
            )));
        };
        if items.len() != texts.len() {
            return Err(ScriptError::BadReturn(format!(
                "{} texts for {}",
                items.len(),
                texts.len()
            )));
        }
        items
            .iter()
            .map(|t| {
                t.as_immutable_string_ref()
                    .map(|s| s.to_string())
                    .map_err(|t| ScriptError::BadReturn(format!("a {t} among the texts")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Rewrite::Texts)
    }
}

/// A `#{ reject: true, status, message }` map, checked; `None` for anything else.
fn rejection(out: &Dynamic) -> Result<Option<(u16, String)>, ScriptError> {
    let Some(map) = out.read_lock::<Map>() else {
        return Ok(None);
    };
    if map.get("reject").is_none_or(|r| r.as_bool() != Ok(true)) {
        return Err(ScriptError::BadReturn(
            "a map without `reject: true`".into(),
        ));
    }
    let status = map
        .get("status")
        .and_then(|s| s.as_int().ok())
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..=599).contains(s))
        .ok_or_else(|| ScriptError::BadReturn("a reject without a status in 400..599".into()))?;
    let message = map
        .get("message")
        .and_then(|m| m.read_lock::<ImmutableString>().map(|s| s.to_string()))
        .unwrap_or_else(|| "refused by the routing script".into());
    Ok(Some((status, message)))
}

/// The root cause of a Rhai error (a failure inside a called function is wrapped).
fn error(e: EvalAltResult) -> ScriptError {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => error(*inner),
        EvalAltResult::ErrorTooManyOperations(_) => ScriptError::Operations,
        EvalAltResult::ErrorTerminated(t, _)
            if t.read_lock::<ImmutableString>()
                .is_some_and(|s| s.as_str() == DEADLINE_TOKEN) =>
        {
            ScriptError::Deadline
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => ScriptError::TooLarge(what),
        EvalAltResult::ErrorStackOverflow(_) => ScriptError::TooLarge("call depth".into()),
        other => ScriptError::Runtime(other.to_string()),
    }
}

/// `order_by(items, |item| key)`: the items sorted by their keys, each key computed once
/// (a sort with a comparing closure runs script code for every comparison; this runs it once
/// per item and compares natively). `order_by(items, keys)` takes the keys already computed,
/// one per item (cheaper still: no closure call at all). Keys are numbers (integers and floats
/// compare by value), strings, booleans, `()` (after every value: an unknown fact sorts last)
/// or arrays of those, compared element by element. The sort is stable: equal keys keep the
/// items' order.
fn order_by_key(
    ctx: NativeCallContext,
    items: Array,
    key: FnPtr,
) -> Result<Array, Box<EvalAltResult>> {
    let mut keys = Vec::with_capacity(items.len());
    for item in &items {
        keys.push(key.call_raw(&ctx, None, [item.clone()])?);
    }
    sort_by_keys(items, keys)
}

fn order_by_keys(items: Array, keys: Array) -> Result<Array, Box<EvalAltResult>> {
    if keys.len() != items.len() {
        return Err(format!(
            "order_by: {} keys for {} items (one key per item)",
            keys.len(),
            items.len()
        )
        .into());
    }
    sort_by_keys(items, keys.into_iter().collect())
}

fn sort_by_keys(items: Array, keys: Vec<Dynamic>) -> Result<Array, Box<EvalAltResult>> {
    let mut keyed: Vec<(Dynamic, Dynamic)> = keys.into_iter().zip(items).collect();
    let mut bad = None;
    keyed.sort_by(|(a, _), (b, _)| {
        compare_keys(a, b).unwrap_or_else(|| {
            bad.get_or_insert((a.type_name(), b.type_name()));
            Ordering::Equal
        })
    });
    if let Some((a, b)) = bad {
        return Err(
            format!("order_by: keys of different kinds cannot be compared ({a} and {b})").into(),
        );
    }
    Ok(keyed.into_iter().map(|(_, item)| item).collect())
}

/// How two `order_by` keys compare; `None` for kinds that do not.
fn compare_keys(a: &Dynamic, b: &Dynamic) -> Option<Ordering> {
    fn number(d: &Dynamic) -> Option<f64> {
        d.as_float()
            .ok()
            .or_else(|| d.as_int().ok().map(|i| i as f64))
    }
    match (a.is_unit(), b.is_unit()) {
        (true, true) => return Some(Ordering::Equal),
        (true, false) => return Some(Ordering::Greater),
        (false, true) => return Some(Ordering::Less),
        (false, false) => {}
    }
    if let (Ok(x), Ok(y)) = (a.as_int(), b.as_int()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return Some(x.total_cmp(&y));
    }
    if let (Ok(x), Ok(y)) = (a.as_bool(), b.as_bool()) {
        return Some(x.cmp(&y));
    }
    if let (Ok(x), Ok(y)) = (a.as_immutable_string_ref(), b.as_immutable_string_ref()) {
        return Some(x.as_str().cmp(y.as_str()));
    }
    let (x, y) = (a.as_array_ref().ok()?, b.as_array_ref().ok()?);
    for (p, q) in x.iter().zip(y.iter()) {
        match compare_keys(p, q)? {
            Ordering::Equal => {}
            other => return Some(other),
        }
    }
    Some(x.len().cmp(&y.len()))
}

fn opt_int(v: Option<u64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, |n| {
        Dynamic::from_int(i64::try_from(n).unwrap_or(i64::MAX))
    })
}

fn opt_float(v: Option<f64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from_float)
}

fn opt_str(v: &Option<String>) -> Dynamic {
    v.as_deref()
        .map_or(Dynamic::UNIT, |s| Dynamic::from(ImmutableString::from(s)))
}

/// The request as a script sees it: a Rhai object with read-only properties (cheaper to
/// hand over than a map: one allocation instead of one per field).
#[derive(Clone)]
struct RequestView {
    protocol: ImmutableString,
    model: ImmutableString,
    messages: i64,
    estimated_tokens: Dynamic,
    max_output_tokens: Dynamic,
    tools: bool,
    stream: bool,
    key: Dynamic,
    environment: Dynamic,
    headers: Map,
}

/// A candidate as a script sees it: shared, so the copies Rhai makes (a `for` loop clones
/// each item) cost a reference count, not the fields.
#[derive(Clone)]
struct CandidateView(Rc<CandidateFacts>);

struct CandidateFacts {
    /// Its place among the candidates (a script may return the candidates themselves).
    index: usize,
    name: ImmutableString,
    provider: ImmutableString,
    weight: i64,
    input_price: f64,
    output_price: f64,
    estimated_cost: f64,
    context_window: Dynamic,
    in_flight: i64,
    max_concurrency: i64,
    latency_ms: Dynamic,
    ttft_ms: Dynamic,
    requests_left: Dynamic,
    tokens_left: Dynamic,
    state: &'static str,
    busy: f64,
    headroom: f64,
}

/// Registers the two types and their properties.
fn register_types(engine: &mut Engine) {
    macro_rules! get {
        ($t:ty, $($field:ident),*) => {
            $(engine.register_get(stringify!($field), |x: &mut $t| x.$field.clone());)*
        };
    }
    engine.register_type_with_name::<RequestView>("Request");
    get!(
        RequestView,
        protocol,
        model,
        messages,
        estimated_tokens,
        max_output_tokens,
        tools,
        stream,
        key,
        environment,
        headers
    );
    engine.register_type_with_name::<CandidateView>("Candidate");
    macro_rules! get_shared {
        ($t:ty, $($field:ident),*) => {
            $(engine.register_get(stringify!($field), |x: &mut $t| x.0.$field.clone());)*
        };
    }
    get_shared!(
        CandidateView,
        name,
        provider,
        weight,
        input_price,
        output_price,
        estimated_cost,
        context_window,
        in_flight,
        max_concurrency,
        latency_ms,
        ttft_ms,
        requests_left,
        tokens_left,
        busy,
        headroom
    );
    engine.register_get("state", |x: &mut CandidateView| {
        ImmutableString::from(x.0.state)
    });
}

/// Short strings that come back every call (the protocol here, names and providers in
/// [`candidate`]) are taken from the engine's interner rather than allocated each time.
fn summary(engine: &Engine, r: &Summary) -> Dynamic {
    let mut headers = Map::new();
    for (k, v) in &r.headers {
        headers.insert(k.as_str().into(), ImmutableString::from(v.as_str()).into());
    }
    Dynamic::from(RequestView {
        protocol: engine.get_interned_string(r.protocol),
        model: r.model.as_str().into(),
        messages: i64::from(r.messages),
        estimated_tokens: opt_int(Some(r.estimated_tokens)),
        max_output_tokens: opt_int(r.max_output_tokens),
        tools: r.tools,
        stream: r.stream,
        key: opt_str(&r.key),
        environment: opt_str(&r.environment),
        headers,
    })
}

fn candidate(engine: &Engine, index: usize, c: &Candidate<'_>) -> Dynamic {
    Dynamic::from(CandidateView(Rc::new(CandidateFacts {
        index,
        name: engine.get_interned_string(c.name),
        provider: engine.get_interned_string(c.provider),
        weight: i64::from(c.weight),
        input_price: c.input_price,
        output_price: c.output_price,
        estimated_cost: c.estimated_cost,
        context_window: opt_int(c.context_window),
        in_flight: i64::from(c.in_flight),
        max_concurrency: i64::from(c.max_concurrency),
        latency_ms: opt_float(c.latency_ms),
        ttft_ms: opt_float(c.ttft_ms),
        requests_left: opt_float(c.requests_left),
        tokens_left: opt_float(c.tokens_left),
        state: match c.state {
            super::LaneState::Closed => "closed",
            super::LaneState::HalfOpen => "half_open",
        },
        busy: c.busy(),
        headroom: c.headroom(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::LaneState;

    fn cand(name: &'static str, cost: f64) -> Candidate<'static> {
        Candidate {
            name,
            provider: "p",
            member: 0,
            weight: 1,
            input_price: 1.0,
            output_price: 1.0,
            estimated_cost: cost,
            context_window: None,
            in_flight: 0,
            max_concurrency: 8,
            latency_ms: None,
            ttft_ms: None,
            requests_left: None,
            tokens_left: None,
            state: LaneState::Closed,
        }
    }

    /// Compiled with a clock that never moves: only the operation and size limits stop it.
    fn compile(src: &str, stage: Stage) -> Result<Script, String> {
        let frozen = Instant::now();
        Script::compile(
            "t.rhai",
            src,
            stage,
            ScriptLimits::default(),
            Rc::new(move || frozen),
        )
    }

    fn route(src: &str) -> Result<Decision, ScriptError> {
        route_with(src, &[cand("a", 0.3), cand("b", 0.1), cand("c", 0.2)])
    }

    fn route_with(src: &str, c: &[Candidate<'_>]) -> Result<Decision, ScriptError> {
        compile(src, Stage::Route)
            .expect("compiles")
            .route(&Summary::default(), c)
    }

    #[test]
    fn orders_by_name_or_index_and_rejects() {
        let by_cost = "fn route(r, c) { c.sort(|x, y| if x.estimated_cost < y.estimated_cost { -1 } else { 1 }); c.map(|x| x.name) }";
        assert_eq!(route(by_cost), Ok(Decision::Order(vec![1, 2, 0])));
        assert_eq!(
            route("fn route(r, c) { [2, 0] }"),
            Ok(Decision::Order(vec![2, 0]))
        );
        assert_eq!(
            route(r#"fn route(r, c) { #{ reject: true, status: 429, message: "later" } }"#),
            Ok(Decision::Reject {
                status: 429,
                message: "later".into()
            })
        );
    }

    #[test]
    fn garbage_is_a_bad_return() {
        for src in [
            r#"fn route(r, c) { ["zz"] }"#,
            "fn route(r, c) { [] }",
            "fn route(r, c) { [0, 0] }",
            "fn route(r, c) { [7] }",
            r#"fn route(r, c) { "a" }"#,
            r#"fn route(r, c) { #{ reject: true, status: 200 } }"#,
            "fn route(r, c) { #{ order: [0] } }",
        ] {
            assert!(
                matches!(route(src), Err(ScriptError::BadReturn(_))),
                "{src}: {:?}",
                route(src)
            );
        }
    }

    #[test]
    fn runaway_scripts_are_stopped() {
        assert_eq!(
            route("fn route(r, c) { loop { } }"),
            Err(ScriptError::Operations)
        );
        assert_eq!(
            route(r#"fn route(r, c) { let s = "x"; loop { s += s; } }"#).map_err(|e| e.kind()),
            Err("size")
        );
        assert_eq!(
            route("fn f(n) { f(n + 1) }\nfn route(r, c) { f(0) }").map_err(|e| e.kind()),
            Err("size")
        );
        // A clock that jumps past the deadline stops a script well inside its operation limit.
        let ticks = Rc::new(Cell::new(0u64));
        let t = Rc::clone(&ticks);
        let start = Instant::now();
        let clock: Clock = Rc::new(move || {
            t.set(t.get() + 1);
            start + Duration::from_secs(t.get())
        });
        let s = Script::compile(
            "t.rhai",
            "fn route(r, c) { loop { } }",
            Stage::Route,
            ScriptLimits {
                max_operations: 0,
                ..ScriptLimits::default()
            },
            clock,
        )
        .expect("compiles");
        assert_eq!(
            s.route(&Summary::default(), &[cand("a", 0.1)]),
            Err(ScriptError::Deadline)
        );
    }

    #[test]
    fn no_eval_no_import_and_the_function_must_exist() {
        assert!(
            compile(
                "import \"/etc/passwd\" as p; fn route(r, c) { [0] }",
                Stage::Route
            )
            .is_err()
        );
        match compile(r#"fn route(r, c) { eval("[0]") }"#, Stage::Route) {
            Err(_) => {}
            Ok(s) => assert!(s.route(&Summary::default(), &[cand("a", 0.1)]).is_err()),
        }
        let e = compile("fn other(r, c) { [0] }", Stage::Route).unwrap_err();
        assert!(e.contains("fn route(request, candidates)"), "{e}");
        let e = compile("fn route(r, c) {\n  let x = ;\n}", Stage::Route).unwrap_err();
        assert!(e.starts_with("t.rhai line 2, column "), "{e}");
    }

    #[test]
    fn before_forward_rewrites_continues_or_rejects() {
        let s = compile(
            r#"fn before_forward(r, texts) { if texts[0] == "keep" { return (); } texts.map(|t| { let x = t; x.replace("4111", "[card]"); x }) }"#,
            Stage::BeforeForward,
        )
        .expect("compiles");
        let r = Summary::default();
        assert_eq!(s.before_forward(&r, &["keep"]), Ok(Rewrite::Continue));
        assert_eq!(
            s.before_forward(&r, &["pay 4111", "ok"]),
            Ok(Rewrite::Texts(vec!["pay [card]".into(), "ok".into()]))
        );
        let bad =
            compile("fn before_forward(r, texts) { [] }", Stage::BeforeForward).expect("compiles");
        assert!(matches!(
            bad.before_forward(&r, &["a"]),
            Err(ScriptError::BadReturn(_))
        ));
    }

    #[test]
    fn sleep_cannot_block_the_shard() {
        // Rhai's `sleep` would stop the shard for a second inside one operation, out of reach
        // of the operation limit and the deadline; it must fail at once, however it is called.
        for src in [
            "fn route(r, c) { sleep(1); [0] }",
            "fn route(r, c) { sleep(1.0); [0] }",
            r#"fn route(r, c) { call(Fn("sl" + "eep"), 1); [0] }"#,
        ] {
            let start = Instant::now();
            match route(src) {
                Err(ScriptError::Runtime(m)) => assert!(m.contains("`sleep`"), "{src}: {m}"),
                other => panic!("{src}: {other:?}"),
            }
            assert!(start.elapsed() < Duration::from_millis(500), "{src} slept");
        }
    }

    /// A candidate with the facts the example script looks at.
    fn member(
        name: &'static str,
        provider: &'static str,
        cost: f64,
        latency: Option<f64>,
        requests_left: f64,
    ) -> Candidate<'static> {
        Candidate {
            provider,
            latency_ms: latency,
            requests_left: Some(requests_left),
            ..cand(name, cost)
        }
    }

    #[test]
    fn the_example_route_script_decides() {
        // The 20-line script the README shows and `busbar-bench --bench route` measures.
        let s = compile(
            include_str!("../../../examples/rhai/route.rhai"),
            Stage::Route,
        )
        .expect("the example compiles");
        let c = [
            member("gpt", "openai", 0.004, Some(300.0), 0.9),
            member("claude", "anthropic", 0.002, Some(500.0), 0.1), // little headroom
            member("gemini", "gemini", 0.001, Some(200.0), 1.0),
            member("mini", "openai", 0.004, Some(250.0), 0.9),
        ];
        let plain = Summary::default();
        let tools = Summary {
            tools: true,
            ..Summary::default()
        };
        // Roomy first (all but claude), then cost (gemini), then latency (mini before gpt).
        assert_eq!(s.route(&plain, &c), Ok(Decision::Order(vec![2, 3, 0, 1])));
        // Tools: only openai and anthropic members are tried.
        assert_eq!(s.route(&tools, &c), Ok(Decision::Order(vec![3, 0, 1])));
        // No latency sample yet: taken as 0, so it goes first among equals.
        let mut fresh = c.clone();
        fresh[0].latency_ms = None;
        assert_eq!(s.route(&tools, &fresh), Ok(Decision::Order(vec![0, 3, 1])));
        // Tools but no trusted provider: every candidate rather than none, in the pool's order.
        let others = [c[2].clone(), member("command", "cohere", 0.0005, None, 0.5)];
        assert_eq!(s.route(&tools, &others), Ok(Decision::Order(vec![0, 1])));
        let blocked = Summary {
            headers: vec![("x-team".into(), "blocked".into())],
            ..Summary::default()
        };
        assert_eq!(
            s.route(&blocked, &c),
            Ok(Decision::Reject {
                status: 403,
                message: "this team may not use the pool".into()
            })
        );
    }

    #[test]
    fn a_script_sees_every_field() {
        let s = compile(
            r#"fn route(r, c) {
                let x = c[0];
                let seen = [r.protocol, r.model, r.messages, r.estimated_tokens,
                    r.max_output_tokens, r.tools, r.stream, r.key, r.environment,
                    r.headers["x-team"], x.name, x.provider, x.weight, x.input_price,
                    x.output_price, x.estimated_cost, x.context_window, x.in_flight,
                    x.max_concurrency, x.latency_ms, x.ttft_ms, x.requests_left,
                    x.tokens_left, x.state, x.busy, x.headroom];
                #{ reject: true, status: 400,
                   message: seen.map(|v| `${type_of(v)}:${v}`).reduce(|a, b| a + " " + b, "") }
            }"#,
            Stage::Route,
        )
        .expect("compiles");
        let seen = |r: &Summary, c: &Candidate<'_>| match s.route(r, std::slice::from_ref(c)) {
            Ok(Decision::Reject { message, .. }) => message,
            other => panic!("{other:?}"),
        };
        let full = Summary {
            protocol: "anthropic",
            model: "smart".into(),
            messages: 3,
            estimated_tokens: 420,
            max_output_tokens: Some(256),
            tools: true,
            stream: true,
            key: Some("team-a".into()),
            environment: Some("prod".into()),
            headers: vec![("x-team".into(), "a".into())],
        };
        let known = Candidate {
            provider: "openai",
            weight: 3,
            input_price: 2.5,
            output_price: 10.0,
            context_window: Some(128_000),
            in_flight: 2,
            latency_ms: Some(300.5),
            ttft_ms: Some(80.0),
            requests_left: Some(0.5),
            tokens_left: Some(0.6),
            state: LaneState::HalfOpen,
            ..cand("gpt", 0.25)
        };
        assert_eq!(
            seen(&full, &known),
            " string:anthropic string:smart i64:3 i64:420 i64:256 bool:true bool:true \
             string:team-a string:prod string:a string:gpt string:openai i64:3 f64:2.5 \
             f64:10.0 f64:0.25 i64:128000 i64:2 i64:8 f64:300.5 f64:80.0 f64:0.5 f64:0.6 \
             string:half_open f64:0.25 f64:0.5"
        );
        // What is not known is `()`.
        assert_eq!(
            seen(&Summary::default(), &cand("a", 0.1)),
            " string: string: i64:0 i64:0 (): bool:false bool:false (): (): (): string:a \
             string:p i64:1 f64:1.0 f64:1.0 f64:0.1 (): i64:0 i64:8 (): (): (): (): \
             string:closed f64:0.0 f64:1.0"
        );
    }

    #[test]
    fn before_forward_masks_digits() {
        let s = compile(
            r#"fn before_forward(request, texts) {
                texts.map(|t| {
                    let out = "";
                    for ch in t { out += if ch >= '0' && ch <= '9' { '#' } else { ch }; }
                    out
                })
            }"#,
            Stage::BeforeForward,
        )
        .expect("compiles");
        assert_eq!(
            s.before_forward(&Summary::default(), &["card 4111-1111", "no digits", ""]),
            Ok(Rewrite::Texts(vec![
                "card ####-####".into(),
                "no digits".into(),
                "".into()
            ]))
        );
    }

    #[test]
    fn order_by_sorts_by_keys_computed_once_or_given() {
        let c = [
            cand("a", 0.3),
            Candidate {
                latency_ms: Some(9.0),
                ..cand("b", 0.1)
            },
            cand("c", 0.1),
            Candidate {
                latency_ms: Some(2.0),
                ..cand("d", 0.2)
            },
        ];
        let order = |src: &str| route_with(src, &c);
        // A closure key; equal keys keep their order (b before c).
        assert_eq!(
            order("fn route(r, c) { order_by(c, |x| x.estimated_cost) }"),
            Ok(Decision::Order(vec![1, 2, 3, 0]))
        );
        // `()` sorts after every value; integers and floats compare by value.
        assert_eq!(
            order("fn route(r, c) { order_by(c, |x| x.latency_ms) }"),
            Ok(Decision::Order(vec![3, 1, 0, 2]))
        );
        assert_eq!(
            order("fn route(r, c) { order_by(c, [2, 1.5, 3.0, 1]) }"),
            Ok(Decision::Order(vec![3, 1, 0, 2]))
        );
        // Arrays compare element by element; a shorter prefix first; strings and booleans.
        assert_eq!(
            order(r#"fn route(r, c) { order_by(c, [[1, "b"], [1, "a"], [0], [0, true]]) }"#),
            Ok(Decision::Order(vec![2, 3, 1, 0]))
        );
        // Key kinds that cannot be compared, or the wrong number of keys: the script fails
        // (and the pool falls back) rather than ordering by accident.
        match order(r#"fn route(r, c) { order_by(c, [1, "x", 2, 3]) }"#) {
            Err(ScriptError::Runtime(m)) => assert!(m.contains("cannot be compared"), "{m}"),
            other => panic!("{other:?}"),
        }
        match order("fn route(r, c) { order_by(c, [1, 2]) }") {
            Err(ScriptError::Runtime(m)) => assert!(m.contains("2 keys for 4 items"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A key closure that loops forever is still stopped by the operation limit.
        assert_eq!(
            order("fn route(r, c) { order_by(c, |x| { loop {} }) }"),
            Err(ScriptError::Operations)
        );
    }

    #[test]
    fn candidates_themselves_are_an_order() {
        let c = [cand("a", 0.3), cand("b", 0.1), cand("c", 0.2)];
        assert_eq!(
            route_with("fn route(r, c) { [c[2], c[0]] }", &c),
            Ok(Decision::Order(vec![2, 0]))
        );
        assert!(matches!(
            route_with("fn route(r, c) { [c[1], c[1]] }", &c),
            Err(ScriptError::BadReturn(m)) if m.contains("`b` twice")
        ));
    }
}
