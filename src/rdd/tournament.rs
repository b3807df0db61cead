//! A tournament (loser) tree over sort entries: the least of k `u128`s, and after the
//! winner is replaced, the new least in log2(k) comparisons (a binary heap's sift makes
//! two per level and moves the entries).

/// What an exhausted run holds: above every entry (an entry's low bits number a run, and
/// no merge has 2^40 runs).
pub const EXHAUSTED: u128 = u128::MAX;

/// The least of one entry per run. Run `i`'s entry sits at leaf `k + i` of a complete
/// binary tree kept in an array (node `n`'s children are `2n` and `2n + 1`); every inner
/// node keeps the loser of the match played there, `losers[0]` the overall winner.
pub struct Tournament {
    losers: Vec<u128>,
}

impl Tournament {
    /// The tournament of `entries`, run `i`'s at `entries[i]` ([`EXHAUSTED`] for none).
    pub fn new(entries: &[u128]) -> Self {
        let k = entries.len();
        // Winners of every node, leaves included; inner nodes are filled from the bottom.
        let mut winners = vec![EXHAUSTED; 2 * k];
        winners[k..].copy_from_slice(entries);
        let mut losers = vec![EXHAUSTED; k.max(1)];
        for n in (1..k).rev() {
            let (a, b) = (winners[2 * n], winners[2 * n + 1]);
            winners[n] = a.min(b);
            losers[n] = a.max(b);
        }
        losers[0] = match k {
            0 => EXHAUSTED,
            1 => entries[0],
            _ => winners[1],
        };
        Tournament { losers }
    }

    /// The least entry ([`EXHAUSTED`] when every run is).
    #[inline]
    pub fn winner(&self) -> u128 {
        self.losers[0]
    }

    /// Replaces the winner, run `run`'s entry, by `next` (the run's next entry or
    /// [`EXHAUSTED`]) and plays its matches up to the root again.
    #[inline]
    pub fn replace_winner(&mut self, run: usize, next: u128) {
        let k = self.losers.len();
        let mut node = (k + run) / 2;
        let mut current = next;
        while node > 0 {
            let loser = self.losers[node];
            // Branch-free: the entries are as good as random, a branch would mispredict.
            self.losers[node] = loser.max(current);
            current = loser.min(current);
            node /= 2;
        }
        self.losers[0] = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdd::sort_key::{INDEX_BITS, index_of};

    /// Merges `runs` (each ascending) through the tournament, as the sort's merge does.
    fn merge(runs: &[Vec<u64>]) -> Vec<u64> {
        let entry = |run: usize, key: u64| ((key as u128) << INDEX_BITS) | run as u128;
        let mut next = vec![0; runs.len()];
        let heads: Vec<u128> = runs
            .iter()
            .enumerate()
            .map(|(r, keys)| keys.first().map_or(EXHAUSTED, |&k| entry(r, k)))
            .collect();
        let mut tree = Tournament::new(&heads);
        let mut out = Vec::new();
        while tree.winner() != EXHAUSTED {
            let run = index_of(tree.winner());
            out.push(runs[run][next[run]]);
            next[run] += 1;
            let head = runs[run]
                .get(next[run])
                .map_or(EXHAUSTED, |&k| entry(run, k));
            tree.replace_winner(run, head);
        }
        out
    }

    #[test]
    fn merges_any_number_of_runs_into_order() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        for k in [0, 1, 2, 3, 5, 8, 13, 32] {
            let runs: Vec<Vec<u64>> = (0..k)
                .map(|_| {
                    let mut run: Vec<u64> = (0..rng.random_range(0..40))
                        .map(|_| rng.random_range(0..30))
                        .collect();
                    run.sort_unstable();
                    run
                })
                .collect();
            let mut expected = runs.concat();
            expected.sort_unstable();
            assert_eq!(merge(&runs), expected, "{k} runs");
        }
    }
}
