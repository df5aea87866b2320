//! Live facts a shard keeps per lane for the policies: moving averages of latency and time to
//! first byte, and the share of the provider's rate limits left, read from its response
//! headers. Plain values with the clock passed in.

use std::time::{Duration, Instant};

/// Weight of a new sample in the moving averages.
const ALPHA: f64 = 0.2;
/// How long a provider's rate-limit reading is trusted when it names no reset.
const RATE_FRESH: Duration = Duration::from_secs(60);

/// An exponentially weighted moving average.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma(Option<f64>);

impl Ewma {
    /// Adds a sample.
    pub fn add(&mut self, x: f64) {
        self.0 = Some(match self.0 {
            None => x,
            Some(m) => m + ALPHA * (x - m),
        });
    }

    /// The average, once there is a sample.
    pub fn get(&self) -> Option<f64> {
        self.0
    }
}

/// The share of a provider's request and token rate limits left, as of its last answer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateReading {
    requests_left: Option<f64>,
    tokens_left: Option<f64>,
    until: Option<Instant>,
}

impl RateReading {
    /// Reads OpenAI's `x-ratelimit-{remaining,limit}-{requests,tokens}` and Anthropic's
    /// `anthropic-ratelimit-{requests,tokens}-{remaining,limit}` from a response's headers.
    /// Keeps the previous reading when the response has none.
    pub fn update<'h>(&mut self, header: impl Fn(&str) -> Option<&'h str>, now: Instant) {
        let share = |remaining: &str, limit: &str| {
            let r: f64 = header(remaining)?.trim().parse().ok()?;
            let l: f64 = header(limit)?.trim().parse().ok()?;
            (l > 0.0).then(|| (r / l).clamp(0.0, 1.0))
        };
        let requests = share(
            "x-ratelimit-remaining-requests",
            "x-ratelimit-limit-requests",
        )
        .or_else(|| {
            share(
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-limit",
            )
        });
        let tokens =
            share("x-ratelimit-remaining-tokens", "x-ratelimit-limit-tokens").or_else(|| {
                share(
                    "anthropic-ratelimit-tokens-remaining",
                    "anthropic-ratelimit-tokens-limit",
                )
            });
        if requests.is_none() && tokens.is_none() {
            return;
        }
        *self = RateReading {
            requests_left: requests,
            tokens_left: tokens,
            until: Some(now + RATE_FRESH),
        };
    }

    /// (requests left, tokens left), while the reading is fresh.
    pub fn get(&self, now: Instant) -> (Option<f64>, Option<f64>) {
        match self.until {
            Some(u) if now < u => (self.requests_left, self.tokens_left),
            _ => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_starts_at_the_first_sample_and_moves_a_fifth() {
        let mut e = Ewma::default();
        assert_eq!(e.get(), None);
        e.add(100.0);
        assert_eq!(e.get(), Some(100.0));
        e.add(200.0);
        assert!((e.get().unwrap() - 120.0).abs() < 1e-9);
    }

    #[test]
    fn reads_openai_and_anthropic_headers_and_goes_stale() {
        let now = Instant::now();
        let mut r = RateReading::default();
        let openai = |n: &str| match n {
            "x-ratelimit-remaining-requests" => Some("250"),
            "x-ratelimit-limit-requests" => Some("1000"),
            "x-ratelimit-remaining-tokens" => Some("90000"),
            "x-ratelimit-limit-tokens" => Some("100000"),
            _ => None,
        };
        r.update(openai, now);
        assert_eq!(r.get(now), (Some(0.25), Some(0.9)));
        // A response without the headers keeps the reading.
        r.update(|_| None, now);
        assert_eq!(r.get(now), (Some(0.25), Some(0.9)));
        let anthropic = |n: &str| match n {
            "anthropic-ratelimit-requests-remaining" => Some("5"),
            "anthropic-ratelimit-requests-limit" => Some("50"),
            _ => None,
        };
        r.update(anthropic, now);
        assert_eq!(r.get(now), (Some(0.1), None));
        assert_eq!(r.get(now + Duration::from_secs(61)), (None, None));
        // Garbage and a zero limit read as nothing.
        let mut g = RateReading::default();
        g.update(
            |n| match n {
                "x-ratelimit-remaining-requests" => Some("lots"),
                "x-ratelimit-limit-requests" => Some("0"),
                _ => None,
            },
            now,
        );
        assert_eq!(g.get(now), (None, None));
    }
}
