//! Smooth weighted round-robin (as in nginx): over any window of `sum(weights)` picks, each
//! member is picked exactly `weight` times, and picks of one member are spread out, not bunched.

/// The state of one pool's rotation.
#[derive(Debug, Clone)]
pub struct SmoothWeighted {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl SmoothWeighted {
    /// A rotation over members with these weights (each at least 1).
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w.max(1))).collect();
        let total = weights.iter().sum();
        Self {
            current: vec![0; weights.len()],
            weights,
            total,
        }
    }

    /// The next member's index. Panics never; an empty rotation yields `None`.
    pub fn pick(&mut self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= self.total;
        Some(b)
    }

    /// The next pick among `eligible` members only (nginx skips a down peer the same way: its
    /// weight takes no part in the round), or `None` when none is eligible.
    pub fn pick_among(&mut self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0;
        for i in 0..self.weights.len() {
            if !eligible(i) {
                continue;
            }
            self.current[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }

    /// The member's weight.
    pub fn weight(&self, member: usize) -> i64 {
        self.weights.get(member).copied().unwrap_or(0)
    }

    /// The next pick first, then every other member by descending weight, as fallbacks.
    pub fn order(&mut self) -> Vec<usize> {
        let Some(first) = self.pick() else {
            return Vec::new();
        };
        let mut rest: Vec<usize> = (0..self.weights.len()).filter(|&i| i != first).collect();
        rest.sort_by_key(|&i| std::cmp::Reverse(self.weights[i]));
        let mut out = Vec::with_capacity(self.weights.len());
        out.push(first);
        out.extend(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sequence_for_5_1_1() {
        let mut s = SmoothWeighted::new(&[5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| s.pick().unwrap()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn shares_match_weights_over_any_full_window() {
        let mut s = SmoothWeighted::new(&[3, 2, 1]);
        for _ in 0..5 {
            let mut counts = [0; 3];
            for _ in 0..6 {
                counts[s.pick().unwrap()] += 1;
            }
            assert_eq!(counts, [3, 2, 1]);
        }
    }

    #[test]
    fn order_lists_every_member_once() {
        let mut s = SmoothWeighted::new(&[1, 4, 2]);
        let o = s.order();
        assert_eq!(o, [1, 2, 0]);
        assert!(SmoothWeighted::new(&[]).pick().is_none());
    }

    #[test]
    fn an_ineligible_member_takes_no_share() {
        let mut s = SmoothWeighted::new(&[5, 1, 1]);
        let mut counts = [0; 3];
        for _ in 0..60 {
            counts[s.pick_among(|i| i != 0).unwrap()] += 1;
        }
        assert_eq!(counts, [0, 30, 30]);
        // Back in: the shares are the weights again over full windows.
        let mut counts = [0; 3];
        for _ in 0..70 {
            counts[s.pick_among(|_| true).unwrap()] += 1;
        }
        assert_eq!(counts, [50, 10, 10]);
        assert!(s.pick_among(|_| false).is_none());
    }
}
