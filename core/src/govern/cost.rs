//! What a request costs: at worst (admission reserves this), and in fact (settlement).

/// Money in micro-USD.
pub type Micros = u64;

/// A model's prices, USD per million tokens (which is micro-USD per token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per input token.
    pub input: f64,
    /// Per output token.
    pub output: f64,
}

/// An upper bound on the input tokens of a prompt of `bytes` bytes. Every tokenizer in use
/// (BPE over bytes) makes at most one token per byte of text, so the body's size bounds its
/// tokens: generous, and never an underestimate, which is what a hard cap needs.
pub fn prompt_token_bound(bytes: usize) -> u64 {
    bytes as u64
}

/// `tokens` at `price` (USD per million tokens), rounded up to the micro-USD.
fn cost(tokens: u64, price: f64) -> Micros {
    if !(price.is_finite() && price > 0.0) || tokens == 0 {
        return 0;
    }
    let c = (tokens as f64 * price).ceil();
    if c >= u64::MAX as f64 {
        u64::MAX
    } else {
        c as u64
    }
}

/// The most a request can cost: its prompt bound as input and all of `max_output_tokens` as
/// output.
pub fn worst_case(prompt_bytes: usize, max_output_tokens: u64, prices: Prices) -> Micros {
    cost(prompt_token_bound(prompt_bytes), prices.input)
        .saturating_add(cost(max_output_tokens, prices.output))
}

/// What a request cost: the provider's reported usage at the model's prices (cached and
/// reasoning tokens are in `input` and `output` as providers bill them).
pub fn actual_cost(input_tokens: u64, output_tokens: u64, prices: Prices) -> Micros {
    cost(input_tokens, prices.input).saturating_add(cost(output_tokens, prices.output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_tokens_are_micros_per_token() {
        let p = Prices {
            input: 0.15,
            output: 0.6,
        };
        // 1000 in + 500 out of gpt-4o-mini: 150 + 300 micro-USD.
        assert_eq!(actual_cost(1000, 500, p), 450);
        // Rounded up, never down: 1 token at 0.15 is 1 micro-USD.
        assert_eq!(actual_cost(1, 0, p), 1);
        // The worst case bounds the actual for any usage within its limits.
        let worst = worst_case(4000, 256, p);
        assert_eq!(worst, 600 + 154);
        assert!(actual_cost(4000, 256, p) <= worst);
        // Free models cost nothing; nonsense prices cost nothing rather than panic.
        let free = Prices {
            input: 0.0,
            output: 0.0,
        };
        assert_eq!(worst_case(1 << 20, 1 << 20, free), 0);
        let bad = Prices {
            input: f64::NAN,
            output: f64::INFINITY,
        };
        assert_eq!(worst_case(10, 10, bad), 0);
        // Huge inputs saturate.
        let dear = Prices {
            input: 1e12,
            output: 1e12,
        };
        assert_eq!(worst_case(usize::MAX, u64::MAX, dear), u64::MAX);
    }
}
