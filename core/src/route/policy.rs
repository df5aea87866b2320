//! The built-in policies: pure functions of the candidates' facts (and, for `weighted`, the
//! pool's rotation). Each writes an order of every candidate it was given; ties go to the
//! higher weight, then to config order, so a decision is deterministic under the same facts.
//!
//! Never allocates beyond the output vector (which the caller reuses), never does I/O.

use super::{Candidate, SmoothWeighted, Summary};
use std::cmp::Ordering;

/// Output tokens a request is expected to produce when it sets no limit of its own, for the
/// `cheapest` policy's estimate.
pub const DEFAULT_EXPECTED_OUTPUT: u64 = 1000;

/// A built-in policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Smooth weighted round-robin over the eligible members.
    Weighted,
    /// Lowest estimated cost of this request first.
    Cheapest,
    /// Lowest moving-average latency first (time to first byte for a stream); a member with no
    /// sample yet goes first, so it gets one.
    Fastest,
    /// Lowest share of its concurrency limit in use first.
    LeastBusy,
    /// Most headroom under the provider's rate limits and busbar's own first.
    Usage,
}

impl Builtin {
    /// Every built-in, as the config names them.
    pub const ALL: [(Builtin, &'static str); 5] = [
        (Builtin::Weighted, "weighted"),
        (Builtin::Cheapest, "cheapest"),
        (Builtin::Fastest, "fastest"),
        (Builtin::LeastBusy, "least_busy"),
        (Builtin::Usage, "usage"),
    ];

    /// The policy a config name means.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(b, _)| *b)
    }

    /// Its config name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(b, _)| *b == self)
            .map_or("weighted", |(_, n)| n)
    }
}

/// Orders `candidates` by `policy` into `out` (indices into `candidates`; cleared first).
/// `rotation` is the pool's weighted rotation over all its members (`Candidate::member`).
pub fn order_builtin(
    policy: Builtin,
    request: &Summary,
    candidates: &[Candidate<'_>],
    rotation: &mut SmoothWeighted,
    out: &mut Vec<usize>,
) {
    out.clear();
    out.extend(0..candidates.len());
    // Ties: higher weight first, then config order (the sort is stable).
    let tie = |a: &usize, b: &usize| candidates[*b].weight.cmp(&candidates[*a].weight);
    match policy {
        Builtin::Weighted => {
            let first = rotation.pick_among(|m| candidates.iter().any(|c| c.member == m));
            out.sort_by(tie);
            if let Some(m) = first
                && let Some(at) = out.iter().position(|&i| candidates[i].member == m)
            {
                let i = out.remove(at);
                out.insert(0, i);
            }
        }
        Builtin::Cheapest => {
            out.sort_by(|a, b| {
                cmp_f64(candidates[*a].estimated_cost, candidates[*b].estimated_cost)
                    .then_with(|| tie(a, b))
            });
        }
        Builtin::Fastest => {
            let speed = |c: &Candidate<'_>| {
                let t = if request.stream {
                    c.ttft_ms.or(c.latency_ms)
                } else {
                    c.latency_ms
                };
                // Unknown: explored first.
                t.unwrap_or(-1.0)
            };
            out.sort_by(|a, b| {
                cmp_f64(speed(&candidates[*a]), speed(&candidates[*b])).then_with(|| tie(a, b))
            });
        }
        Builtin::LeastBusy => {
            out.sort_by(|a, b| {
                cmp_f64(candidates[*a].busy(), candidates[*b].busy())
                    .then_with(|| candidates[*a].in_flight.cmp(&candidates[*b].in_flight))
                    .then_with(|| tie(a, b))
            });
        }
        Builtin::Usage => {
            out.sort_by(|a, b| {
                cmp_f64(candidates[*b].headroom(), candidates[*a].headroom())
                    .then_with(|| tie(a, b))
            });
        }
    }
}

/// Total order on facts (a NaN sorts last).
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(&b),
    }
}

/// The estimated cost of a request on a member: `prompt` tokens plus `output` tokens at its
/// prices (USD per million), in USD.
pub fn estimated_cost(prompt: u64, output: u64, input_price: f64, output_price: f64) -> f64 {
    (prompt as f64 * input_price + output as f64 * output_price) / 1e6
}

#[cfg(test)]
mod tests {
    use super::super::LaneState;
    use super::*;

    fn cand(name: &'static str, member: usize) -> Candidate<'static> {
        Candidate {
            name,
            provider: "p",
            member,
            weight: 1,
            input_price: 1.0,
            output_price: 1.0,
            estimated_cost: 0.001,
            context_window: None,
            in_flight: 0,
            max_concurrency: 10,
            latency_ms: Some(100.0),
            ttft_ms: Some(50.0),
            requests_left: None,
            tokens_left: None,
            state: LaneState::Closed,
        }
    }

    fn names(c: &[Candidate<'_>], out: &[usize]) -> Vec<String> {
        out.iter().map(|&i| c[i].name.to_string()).collect()
    }

    fn run(p: Builtin, req: &Summary, c: &[Candidate<'_>]) -> Vec<String> {
        let mut rot = SmoothWeighted::new(&[1; 8]);
        let mut out = Vec::new();
        order_builtin(p, req, c, &mut rot, &mut out);
        names(c, &out)
    }

    #[test]
    fn cheapest_orders_by_this_requests_cost() {
        let mut c = vec![cand("a", 0), cand("b", 1), cand("c", 2)];
        c[0].estimated_cost = 0.03;
        c[1].estimated_cost = 0.001;
        c[2].estimated_cost = 0.01;
        assert_eq!(
            run(Builtin::Cheapest, &Summary::default(), &c),
            ["b", "c", "a"]
        );
        // Equal cost: the heavier weight first.
        c[0].estimated_cost = 0.001;
        c[0].weight = 5;
        assert_eq!(
            run(Builtin::Cheapest, &Summary::default(), &c),
            ["a", "b", "c"]
        );
        assert!(
            (estimated_cost(1000, 500, 3.0, 15.0) - 0.0105).abs() < 1e-12,
            "1k in at $3/M + 500 out at $15/M"
        );
    }

    #[test]
    fn fastest_uses_ttft_for_streams_and_explores_the_unknown() {
        let mut c = vec![cand("a", 0), cand("b", 1), cand("c", 2)];
        c[0].latency_ms = Some(900.0);
        c[0].ttft_ms = Some(20.0);
        c[1].latency_ms = Some(300.0);
        c[1].ttft_ms = Some(250.0);
        c[2].latency_ms = Some(500.0);
        c[2].ttft_ms = Some(100.0);
        let whole = Summary::default();
        let stream = Summary {
            stream: true,
            ..Summary::default()
        };
        assert_eq!(run(Builtin::Fastest, &whole, &c), ["b", "c", "a"]);
        assert_eq!(run(Builtin::Fastest, &stream, &c), ["a", "c", "b"]);
        c[2].latency_ms = None;
        c[2].ttft_ms = None;
        assert_eq!(run(Builtin::Fastest, &whole, &c)[0], "c");
    }

    #[test]
    fn least_busy_compares_against_each_limit() {
        let mut c = vec![cand("a", 0), cand("b", 1), cand("c", 2)];
        c[0].in_flight = 5;
        c[0].max_concurrency = 10; // half full
        c[1].in_flight = 8;
        c[1].max_concurrency = 100; // 8%
        c[2].in_flight = 1;
        c[2].max_concurrency = 2; // half full, but fewer in flight
        assert_eq!(
            run(Builtin::LeastBusy, &Summary::default(), &c),
            ["b", "c", "a"]
        );
    }

    #[test]
    fn usage_prefers_headroom_under_every_limit() {
        let mut c = vec![cand("a", 0), cand("b", 1), cand("c", 2)];
        c[0].requests_left = Some(0.9);
        c[0].tokens_left = Some(0.05); // the token limit is nearly used
        c[1].requests_left = Some(0.6);
        c[2].in_flight = 9; // busbar's own limit nearly full
        assert_eq!(
            run(Builtin::Usage, &Summary::default(), &c),
            ["b", "c", "a"]
        );
        assert!((c[0].headroom() - 0.05).abs() < 1e-9);
        assert!((c[2].headroom() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn weighted_follows_the_rotation_over_eligible_members() {
        // Pool of three with weights 3, 1, 1; member 1 ruled out (not a candidate).
        let mut rot = SmoothWeighted::new(&[3, 1, 1]);
        let mut a = cand("a", 0);
        a.weight = 3;
        let c = vec![a, cand("c", 2)];
        let mut firsts = Vec::new();
        let mut out = Vec::new();
        for _ in 0..8 {
            order_builtin(
                Builtin::Weighted,
                &Summary::default(),
                &c,
                &mut rot,
                &mut out,
            );
            assert_eq!(out.len(), 2, "every candidate is in the order");
            firsts.push(c[out[0]].name);
        }
        assert_eq!(firsts.iter().filter(|n| **n == "a").count(), 6);
        assert_eq!(firsts.iter().filter(|n| **n == "c").count(), 2);
    }

    #[test]
    fn names_round_trip() {
        for (b, n) in Builtin::ALL {
            assert_eq!(Builtin::from_name(n), Some(b));
            assert_eq!(b.as_str(), n);
        }
        assert_eq!(Builtin::from_name("random"), None);
    }
}
