//! Endpoint and backend choice. Today: weighted backend split and round-robin endpoints.
//!
//! Owns: the pick functions. Does not own: endpoint health (none yet) or connection pools.
//! The resilience issue replaces `RoundRobin` with P2C over peak-EWMA behind the same call.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Picks a position in `(id, weight)` pairs, proportionally to weight.
pub fn weighted(to: &[(usize, u32)], total: u32) -> usize {
    if to.len() == 1 {
        return 0;
    }
    let mut n = fastrand::u32(..total);
    for (pos, (_, w)) in to.iter().enumerate() {
        if n < *w {
            return pos;
        }
        n -= w;
    }
    to.len() - 1
}

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Index in `0..len`; `len` must be > 0.
    pub fn pick(&self, len: usize) -> usize {
        if len == 1 {
            return 0;
        }
        self.next.fetch_add(1, Ordering::Relaxed) % len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_split_follows_weights() {
        let to = [(7, 90), (9, 10), (11, 0)];
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[weighted(&to, 100)] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((8_500..9_500).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[0] + counts[1], 10_000);
    }

    #[test]
    fn round_robin_cycles() {
        let rr = RoundRobin::default();
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
