//! Fault rules: faults per rate, set at start (`--fault`) and changed at run time
//! (`/_mock/faults`), so a test can take a member down and bring it back.
//!
//! ```text
//!   POST /_mock/faults {"rules":[rule, ...]}   replaces the list      -> the list
//!   GET  /_mock/faults                         the list, with counts
//!   DELETE /_mock/faults                       clears it
//!   rule: {"model": "m-b", "rate": 0.5, "status": 503, "fault": "rate", "retry_after": 2,
//!          "hang": false, "drip_ms": 10, "drip_bytes": 1, "break": "reset",
//!          "break_after": 2, "ttft_ms": 0, "gap_ms": 0, "tokens": 8}
//! ```
//!
//! Every field is optional, but a rule must do something. `model` matches the model named in
//! the path (Gemini, Bedrock) or the body's `"model"` exactly; absent, every request. `rate`
//! (0..=1, default 1) is the chance a matching request gets the rule. The first matching rule
//! that fires overrides the request's own steering for the fields it sets (steer.rs).
//!
//! The list is shared by the mock's threads behind one mutex; a flag keeps requests from
//! taking it while the list is empty (the benchmarks' case).

use super::errors;
use super::steer::{Actions, Break};
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One fault rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) model: Option<String>,
    pub(crate) rate: f64,
    pub(crate) actions: Actions,
}

const KEYS: [&str; 13] = [
    "model",
    "rate",
    "status",
    "fault",
    "retry_after",
    "hang",
    "drip_ms",
    "drip_bytes",
    "break",
    "break_after",
    "ttft_ms",
    "gap_ms",
    "tokens",
];

impl Rule {
    /// A rule from its JSON object.
    pub(crate) fn parse(v: &Value) -> Result<Rule, String> {
        let obj = v.as_object().ok_or("a rule is a JSON object")?;
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field `{k}` (a rule has: {})",
                KEYS.join(", ")
            ));
        }
        let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let num = |k: &str| -> Result<Option<u64>, String> {
            field(k)
                .map(|v| {
                    v.as_u64()
                        .ok_or_else(|| format!("`{k}` must be a whole number >= 0"))
                })
                .transpose()
        };
        let text = |k: &str| -> Result<Option<&str>, String> {
            field(k)
                .map(|v| v.as_str().ok_or_else(|| format!("`{k}` must be a string")))
                .transpose()
        };
        let rate = field("rate")
            .map(|v| v.as_f64().ok_or("`rate` must be a number"))
            .transpose()?
            .unwrap_or(1.0);
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("`rate` must be in 0..=1, not {rate}"));
        }
        let status = num("status")?
            .map(|s| {
                u16::try_from(s)
                    .ok()
                    .filter(|s| (100..600).contains(s))
                    .ok_or_else(|| format!("`status` must be in 100..600, not {s}"))
            })
            .transpose()?;
        let fault = text("fault")?
            .map(|f| {
                if errors::is_fault(f) {
                    Ok(f.to_string())
                } else {
                    Err(format!(
                        "no provider has the fault `{f}` (every one has: {})",
                        errors::COMMON_FAULTS.join(", ")
                    ))
                }
            })
            .transpose()?;
        let brk = text("break")?
            .map(|b| {
                Break::parse(b.as_bytes())
                    .ok_or_else(|| format!("`break` must be error, garbage or reset, not `{b}`"))
            })
            .transpose()?;
        let hang = field("hang")
            .map(|v| v.as_bool().ok_or("`hang` must be true or false"))
            .transpose()?;
        let drip_bytes = num("drip_bytes")?;
        if drip_bytes == Some(0) {
            return Err("`drip_bytes` must be at least 1".into());
        }
        let actions = Actions {
            status,
            fault,
            retry_after: num("retry_after")?,
            hang,
            drip_ms: num("drip_ms")?,
            drip_bytes,
            brk,
            break_after: num("break_after")?,
            ttft_ms: num("ttft_ms")?,
            gap_ms: num("gap_ms")?,
            tokens: num("tokens")?,
        };
        if actions == Actions::default() {
            return Err(
                "a rule needs something to do (status, fault, hang, drip_ms, break, ...)".into(),
            );
        }
        Ok(Rule {
            model: text("model")?.map(str::to_string),
            rate,
            actions,
        })
    }

    fn to_json(&self) -> Map<String, Value> {
        let a = &self.actions;
        let v = json!({
            "model": self.model,
            "rate": self.rate,
            "status": a.status,
            "fault": a.fault,
            "retry_after": a.retry_after,
            "hang": a.hang,
            "drip_ms": a.drip_ms,
            "drip_bytes": a.drip_bytes,
            "break": a.brk.map(Break::name),
            "break_after": a.break_after,
            "ttft_ms": a.ttft_ms,
            "gap_ms": a.gap_ms,
            "tokens": a.tokens,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// The rules of a `/_mock/faults` body: `{"rules": [rule, ...]}`.
pub(crate) fn parse_list(body: &[u8]) -> Result<Vec<Rule>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .get("rules")
        .and_then(Value::as_array)
        .ok_or(r#"the body is {"rules": [rule, ...]}"#)?;
    list.iter()
        .enumerate()
        .map(|(i, r)| Rule::parse(r).map_err(|e| format!("rule {i}: {e}")))
        .collect()
}

/// A rule and how it has fared.
#[derive(Debug)]
struct Slot {
    rule: Rule,
    /// Requests it matched.
    matched: u64,
    /// Requests it fired for.
    hits: u64,
}

/// The first rule that matches `model` and fires (`draw() < rate`), counted.
fn pick(slots: &mut [Slot], model: Option<&str>, draw: &mut dyn FnMut() -> f64) -> Option<Actions> {
    for s in slots {
        if s.rule.model.as_deref().is_some_and(|m| Some(m) != model) {
            continue;
        }
        s.matched += 1;
        if draw() < s.rule.rate {
            s.hits += 1;
            return Some(s.rule.actions.clone());
        }
    }
    None
}

/// The mock's rule list, shared by its threads.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    slots: Mutex<Vec<Slot>>,
    /// Whether the list is non-empty (read without the lock).
    active: AtomicBool,
}

impl Rules {
    pub(crate) fn new(rules: Vec<Rule>) -> Rules {
        let r = Rules::default();
        r.replace(rules);
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actions of the first rule that matches this request and fires. `model` (the
    /// request's model) is only worked out when some rule names one.
    pub(crate) fn fire(&self, model: impl FnOnce() -> Option<String>) -> Option<Actions> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let mut slots = self.lock();
        let model = if slots.iter().any(|s| s.rule.model.is_some()) {
            model()
        } else {
            None
        };
        pick(&mut slots, model.as_deref(), &mut || fastrand::f64())
    }

    pub(crate) fn replace(&self, rules: Vec<Rule>) {
        let mut slots = self.lock();
        *slots = rules
            .into_iter()
            .map(|rule| Slot {
                rule,
                matched: 0,
                hits: 0,
            })
            .collect();
        self.active.store(!slots.is_empty(), Ordering::Relaxed);
    }

    /// The list with each rule's counts: `{"rules": [{..., "matched": n, "hits": n}]}`.
    pub(crate) fn to_json(&self) -> Value {
        let slots = self.lock();
        let list: Vec<Value> = slots
            .iter()
            .map(|s| {
                let mut m = s.rule.to_json();
                m.insert("matched".into(), s.matched.into());
                m.insert("hits".into(), s.hits.into());
                Value::Object(m)
            })
            .collect();
        json!({ "rules": list })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        Rule::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
    }

    #[test]
    fn rules_parse_with_every_field() {
        let r = rule(
            json!({"model":"m-b","rate":1.0,"status":503,"retry_after":2,"hang":false,
            "drip_ms":null,"break":"reset","break_after":2,"fault":"context","ttft_ms":0}),
        );
        assert_eq!(r.model.as_deref(), Some("m-b"));
        assert_eq!(r.rate, 1.0);
        let a = &r.actions;
        assert_eq!((a.status, a.fault.as_deref()), (Some(503), Some("context")));
        assert_eq!(
            (a.retry_after, a.hang, a.drip_ms),
            (Some(2), Some(false), None)
        );
        assert_eq!(
            (a.brk, a.break_after, a.ttft_ms),
            (Some(Break::Reset), Some(2), Some(0))
        );
        let round = Rule::parse(&Value::Object(r.to_json())).unwrap();
        assert_eq!(round, r);
        assert_eq!(rule(json!({"drip_ms": 5})).rate, 1.0);
        assert_eq!(
            rule(json!({"fault": "not_ready"})).actions.fault.as_deref(),
            Some("not_ready")
        );
    }

    #[test]
    fn bad_rules_are_refused_saying_why() {
        let bad = [
            (json!({}), "something to do"),
            (json!({"model": "m"}), "something to do"),
            (json!({"status": 503, "rate": 1.5}), "0..=1"),
            (json!({"status": 503, "rate": "half"}), "number"),
            (json!({"status": 700}), "100..600"),
            (json!({"status": -1}), "whole number"),
            (json!({"fault": "nope"}), "no provider has the fault"),
            (json!({"break": "snap"}), "error, garbage or reset"),
            (json!({"hang": 1}), "true or false"),
            (json!({"drip_ms": 1, "drip_bytes": 0}), "at least 1"),
            (
                json!({"status": 503, "stauts": 1}),
                "unknown field `stauts`",
            ),
            (json!([1]), "JSON object"),
        ];
        for (v, why) in bad {
            let e = Rule::parse(&v).expect_err(&v.to_string());
            assert!(e.contains(why), "{v}: {e}");
        }
        assert!(
            parse_list(br#"{"rules": [{"status": 503}, {"nope": 1}]}"#)
                .unwrap_err()
                .starts_with("rule 1: ")
        );
        assert!(parse_list(b"[]").is_err());
        assert_eq!(parse_list(br#"{"rules": []}"#).unwrap(), vec![]);
    }

    fn slots(rules: Vec<Value>) -> Vec<Slot> {
        rules
            .into_iter()
            .map(|v| Slot {
                rule: rule(v),
                matched: 0,
                hits: 0,
            })
            .collect()
    }

    #[test]
    fn the_first_matching_rule_that_fires_wins() {
        let mut s = slots(vec![
            json!({"model": "m-a", "status": 500}),
            json!({"model": "m-b", "rate": 0.5, "status": 503}),
            json!({"fault": "rate"}),
        ]);
        let mut draws = [0.9, 0.1].into_iter();
        let mut draw = || draws.next().unwrap_or(0.0);
        // m-b: its rule does not fire (0.9 >= 0.5), the catch-all does.
        let a = pick(&mut s, Some("m-b"), &mut draw).unwrap();
        assert_eq!(a.fault.as_deref(), Some("rate"));
        // m-b again: fires (0.1 < 0.5).
        assert_eq!(
            pick(&mut s, Some("m-b"), &mut draw).unwrap().status,
            Some(503)
        );
        assert_eq!(
            pick(&mut s, Some("m-a"), &mut draw).unwrap().status,
            Some(500)
        );
        // No model known: only the catch-all can match.
        assert_eq!(
            pick(&mut s, None, &mut draw).unwrap().fault.as_deref(),
            Some("rate")
        );
        let counts: Vec<(u64, u64)> = s.iter().map(|s| (s.matched, s.hits)).collect();
        assert_eq!(counts, [(1, 1), (2, 1), (2, 2)]);
        let mut never = slots(vec![json!({"status": 503, "rate": 0.0})]);
        assert_eq!(pick(&mut never, Some("x"), &mut || 0.0), None);
        assert_eq!((never[0].matched, never[0].hits), (1, 0));
    }

    #[test]
    fn the_shared_list_can_be_replaced_and_cleared() {
        let rules = Rules::new(vec![]);
        assert_eq!(
            rules.fire(|| panic!("no rules: the model is never worked out")),
            None
        );
        rules.replace(vec![rule(json!({"status": 503}))]);
        // No rule names a model: it is not worked out.
        assert_eq!(
            rules.fire(|| panic!("not needed")).unwrap().status,
            Some(503)
        );
        rules.replace(vec![rule(json!({"model": "m-b", "hang": true}))]);
        assert_eq!(rules.fire(|| Some("m-a".into())), None);
        assert_eq!(rules.fire(|| Some("m-b".into())).unwrap().hang, Some(true));
        let listed = rules.to_json();
        assert_eq!(listed["rules"][0]["model"], "m-b");
        // m-a did not match; m-b matched and fired.
        let counts = (&listed["rules"][0]["matched"], &listed["rules"][0]["hits"]);
        assert_eq!((counts.0.as_u64(), counts.1.as_u64()), (Some(1), Some(1)));
        rules.replace(vec![]);
        assert_eq!(rules.to_json(), json!({"rules": []}));
        assert_eq!(rules.fire(|| Some("m-b".into())), None);
    }
}
