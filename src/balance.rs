//! Backend choice for a route: the weighted split of `to`. Endpoint choice within a backend
//! (P2C-EWMA, least-request, round-robin) lives in `resilience::balance`.

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
}
