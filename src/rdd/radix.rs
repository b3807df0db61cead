//! A most-significant-digit radix sort of `u128` sort entries (`sort_key`): a map task's
//! bucket of TeraSort entries sorts about twice as fast as by comparisons, whose sort
//! was the largest part of the map side (profiled: 17% of its time).

/// Bits of the digit each pass distributes by.
const DIGIT_BITS: u32 = 8;
const DIGITS: usize = 1 << DIGIT_BITS;

/// Below this many entries a comparison sort is faster than counting and distributing.
const RADIX_MIN: usize = 128;

/// Sorts `entries` ascending, as `sort_unstable` would, using `scratch` for room (grown
/// to their length: a caller sorting several slices keeps one).
pub fn sort_u128s(entries: &mut [u128], scratch: &mut Vec<u128>) {
    if entries.len() < RADIX_MIN {
        entries.sort_unstable();
        return;
    }
    if scratch.len() < entries.len() {
        scratch.resize(entries.len(), 0);
    }
    sort_below(entries, &mut scratch[..entries.len()], u128::BITS);
}

/// Sorts `v`, whose entries agree on every bit from `bits` up, using `scratch` (as long).
fn sort_below(v: &mut [u128], scratch: &mut [u128], mut bits: u32) {
    let counts = loop {
        if v.len() < RADIX_MIN || bits < DIGIT_BITS {
            v.sort_unstable();
            return;
        }
        bits -= DIGIT_BITS;
        let counts = digit_counts(v, bits);
        // A digit all share (keys alike in their leading bytes) needs no pass.
        if !counts.contains(&v.len()) {
            break counts;
        }
    };
    distribute(v, scratch, bits, &counts);
    let mut at = 0;
    for n in counts {
        sort_below(&mut v[at..at + n], &mut scratch[at..at + n], bits);
        at += n;
    }
}

/// The digit of `x` whose lowest bit is bit `shift`.
#[inline(always)]
fn digit(x: u128, shift: u32) -> usize {
    (x >> shift) as usize & (DIGITS - 1)
}

/// How many entries of `v` have each digit at `shift`.
fn digit_counts(v: &[u128], shift: u32) -> [usize; DIGITS] {
    let mut counts = [0usize; DIGITS];
    for &x in v {
        counts[digit(x, shift)] += 1;
    }
    counts
}

/// Reorders `v` by its digit at `shift` (counted in `counts`), through `scratch`.
fn distribute(v: &mut [u128], scratch: &mut [u128], shift: u32, counts: &[usize; DIGITS]) {
    let mut next = [0usize; DIGITS];
    let mut at = 0;
    for (next, &n) in next.iter_mut().zip(counts) {
        *next = at;
        at += n;
    }
    for &x in v.iter() {
        let d = digit(x, shift);
        scratch[next[d]] = x;
        next[d] += 1;
    }
    v.copy_from_slice(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn check(mut v: Vec<u128>, what: &str) {
        let mut want = v.clone();
        want.sort_unstable();
        sort_u128s(&mut v, &mut Vec::new());
        assert!(v == want, "{what}: {} entries", v.len());
    }

    #[test]
    fn sorts_like_a_comparison_sort_whatever_the_keys() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        for n in [0, 1, 2, 127, 128, 129, 3000, 100_000] {
            let random: Vec<u128> = (0..n).map(|_| rng.random()).collect();
            check(random.clone(), "random");
            // Keys alike in their leading bytes: passes that change nothing are skipped.
            let alike: Vec<u128> = random.iter().map(|x| (7 << 100) | (x >> 80)).collect();
            check(alike, "alike");
            // Few distinct keys above a number: a TeraSort of repeated keys.
            let few: Vec<u128> = (0..n as u128)
                .map(|i| ((rng.random_range(0..3u128)) << 100) | (i * 7919 % 1_000_003))
                .collect();
            check(few, "few");
            check((0..n as u128).rev().collect(), "descending");
            check(vec![42; n], "equal");
            let low: Vec<u128> = random.iter().map(|x| x & 0xffff).collect();
            check(low, "only low bits");
        }
        // One scratch for slices of several lengths.
        let mut scratch = Vec::new();
        for n in [5000, 300, 20_000] {
            let mut v: Vec<u128> = (0..n).map(|_| rng.random()).collect();
            let mut want = v.clone();
            want.sort_unstable();
            sort_u128s(&mut v, &mut scratch);
            assert!(v == want, "with a kept scratch: {n} entries");
        }
    }
}
