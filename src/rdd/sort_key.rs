//! Sort keys that pack into an integer prefix, so a sort orders compact integer entries
//! and compares whole keys only where the prefixes tie (DESIGN.md §4, Sorting).
//!
//! A sort entry is one `u128`: the key's prefix in the high [`PREFIX_BITS`] bits, the
//! record's number (or run's, in a merge) in the low [`INDEX_BITS`]. Sorting the entries
//! as plain integers orders records by prefix and, among equal prefixes, by arrival: a
//! stable order. Keys whose prefix holds the whole key (integers up to 64 bits, byte arrays
//! up to 11 bytes, tuples of them that fit) need nothing else; the others (strings, byte
//! vectors, wide integers) are compared in full only inside a group of equal prefixes.

use std::cmp::{Ordering, Reverse};

/// Bits of an entry that number the record: 2^40 records per sorted piece is more than a
/// machine's memory holds as entries (16 bytes each).
pub const INDEX_BITS: u32 = 40;
/// Bits of an entry that hold the key's prefix.
pub const PREFIX_BITS: u32 = 128 - INDEX_BITS;
const INDEX_MASK: u128 = (1 << INDEX_BITS) - 1;

/// A key a sort can order by an integer prefix (`sort_by`, `sort_by_key`).
///
/// `prefix` maps the key to an unsigned integer, most significant bits first, that never
/// goes against the key's order: `a < b` implies `a.prefix() <= b.prefix()`. The sort
/// orders by prefix first and calls `Ord` only for keys whose prefixes tie. ember
/// implements it for integers, `bool`, `char`, strings, byte arrays and vectors,
/// `Option`, `Reverse` and tuples of up to three keys. A key type of your own needs one
/// line, `impl SortKey for MyKey {}` (every prefix 0: the sort compares the keys), or a
/// `prefix` that saves the comparisons.
///
/// ```
/// use ember::SortKey;
/// assert!(3u32.prefix() < 7u32.prefix());
/// assert!((-1i64).prefix() < 1i64.prefix());
/// assert!("apple".to_string().prefix() < "banana".to_string().prefix());
/// assert_eq!(<(u32, u16)>::EXACT_BITS, Some(48));
/// ```
pub trait SortKey: Ord {
    /// The key's leading part as an integer that never orders against the key.
    fn prefix(&self) -> u128 {
        0
    }

    /// `Some(n)` when the top `n` bits of the prefix order keys exactly as `Ord` does (equal
    /// bits: equal keys) and the bits below them are zero; `None` when keys can differ
    /// beyond their prefix.
    const EXACT_BITS: Option<u32> = None;
}

/// Whether the prefix an entry keeps decides the order of `K` alone (no key comparisons).
pub const fn prefix_decides<K: SortKey>() -> bool {
    matches!(K::EXACT_BITS, Some(n) if n <= PREFIX_BITS)
}

/// The entry of a key numbered `index`: its prefix (complemented for a descending sort,
/// so entries always sort ascending) above the number.
#[inline]
pub fn entry<K: SortKey>(key: &K, ascending: bool, index: u64) -> u128 {
    assert!(
        (index as u128) <= INDEX_MASK,
        "more than 2^{INDEX_BITS} records in one sorted piece"
    );
    let prefix = key.prefix() >> INDEX_BITS;
    let prefix = if ascending {
        prefix
    } else {
        !prefix & (u128::MAX >> INDEX_BITS)
    };
    (prefix << INDEX_BITS) | index as u128
}

/// The number an entry carries.
#[inline]
pub fn index_of(entry: u128) -> usize {
    (entry & INDEX_MASK) as usize
}

/// Whether two entries have the same prefix.
#[inline]
pub fn same_prefix(a: u128, b: u128) -> bool {
    (a ^ b) >> INDEX_BITS == 0
}

/// `a` against `b` in the sort's direction.
pub fn in_direction<K: Ord>(ascending: bool, a: &K, b: &K) -> Ordering {
    if ascending { a.cmp(b) } else { b.cmp(a) }
}

/// Sorts `entries` (made by [`entry`], numbered by position in `keys`) into the order of
/// their keys, ties by number: a stable sort. `keys` is empty when the prefix decides.
/// The entries are radix sorted (`voracious_radix_sort`: on TeraSort's map side about a
/// fifth faster than `sort_unstable`, whose comparisons were the largest part of it); the
/// sort takes room for as many entries again.
pub fn sort_entries<K: SortKey>(entries: &mut [u128], keys: &[K], ascending: bool) {
    voracious_radix_sort::RadixSort::voracious_sort(entries);
    if prefix_decides::<K>() {
        return;
    }
    let mut start = 0;
    while start < entries.len() {
        let mut end = start + 1;
        while end < entries.len() && same_prefix(entries[start], entries[end]) {
            end += 1;
        }
        if end - start > 1 {
            // Numbers ascend within the group, and the sort is stable: ties keep them so.
            entries[start..end]
                .sort_by(|a, b| in_direction(ascending, &keys[index_of(*a)], &keys[index_of(*b)]));
        }
        start = end;
    }
}

const fn top_bits(n: u32) -> u128 {
    if n == 0 { 0 } else { u128::MAX << (128 - n) }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl SortKey for $t {
            fn prefix(&self) -> u128 {
                (*self as u128) << (128 - <$t>::BITS)
            }
            const EXACT_BITS: Option<u32> = Some(<$t>::BITS);
        }
    )*};
}
unsigned!(u8, u16, u32, u64, usize);

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl SortKey for $t {
            fn prefix(&self) -> u128 {
                // Flipping the sign bit orders two's complement as unsigned.
                ((*self as $u ^ (1 << (<$u>::BITS - 1))) as u128) << (128 - <$u>::BITS)
            }
            const EXACT_BITS: Option<u32> = Some(<$u>::BITS);
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, isize => usize);

impl SortKey for u128 {
    fn prefix(&self) -> u128 {
        *self
    }
    const EXACT_BITS: Option<u32> = Some(128);
}

impl SortKey for i128 {
    fn prefix(&self) -> u128 {
        *self as u128 ^ (1 << 127)
    }
    const EXACT_BITS: Option<u32> = Some(128);
}

impl SortKey for bool {
    fn prefix(&self) -> u128 {
        (*self as u128) << 127
    }
    const EXACT_BITS: Option<u32> = Some(1);
}

impl SortKey for char {
    fn prefix(&self) -> u128 {
        (*self as u128) << 96
    }
    const EXACT_BITS: Option<u32> = Some(32);
}

impl SortKey for () {
    const EXACT_BITS: Option<u32> = Some(0);
}

/// The first 16 bytes, big-endian, zero-padded: orders like the bytes (a shorter string
/// that is a prefix of a longer one ties with it, and `Ord` decides).
#[inline]
fn bytes_prefix(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = bytes.len().min(16);
    b[..n].copy_from_slice(&bytes[..n]);
    u128::from_be_bytes(b)
}

impl<const N: usize> SortKey for [u8; N] {
    #[inline]
    fn prefix(&self) -> u128 {
        // A copy of a length known at compile time: no call to memcpy.
        let mut b = [0u8; 16];
        let n = if N < 16 { N } else { 16 };
        b[..n].copy_from_slice(&self[..n]);
        u128::from_be_bytes(b)
    }
    const EXACT_BITS: Option<u32> = if N <= 16 { Some(N as u32 * 8) } else { None };
}

impl SortKey for String {
    fn prefix(&self) -> u128 {
        bytes_prefix(self.as_bytes())
    }
}

impl SortKey for compact_str::CompactString {
    fn prefix(&self) -> u128 {
        bytes_prefix(self.as_bytes())
    }
}

impl SortKey for Vec<u8> {
    fn prefix(&self) -> u128 {
        bytes_prefix(self)
    }
}

impl<T: SortKey> SortKey for Reverse<T> {
    fn prefix(&self) -> u128 {
        match T::EXACT_BITS {
            // The complement's low bits would be ones: keep them zero, as promised.
            Some(n) => !self.0.prefix() & top_bits(n),
            None => !self.0.prefix(),
        }
    }
    const EXACT_BITS: Option<u32> = T::EXACT_BITS;
}

impl<T: SortKey> SortKey for Option<T> {
    fn prefix(&self) -> u128 {
        match self {
            None => 0,
            Some(x) => (1 << 127) | (x.prefix() >> 1),
        }
    }
    const EXACT_BITS: Option<u32> = match T::EXACT_BITS {
        Some(n) if n < 128 => Some(n + 1),
        _ => None,
    };
}

/// The prefix of `a` followed by `b`'s, when `a`'s holds all of `a` in `a_bits`.
fn joined(a_bits: Option<u32>, a: u128, b: u128) -> u128 {
    match a_bits {
        Some(0) => b,
        Some(n) if n < 128 => a | (b >> n),
        _ => a,
    }
}

const fn joined_bits(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) if a + b <= 128 => Some(a + b),
        _ => None,
    }
}

impl<A: SortKey, B: SortKey> SortKey for (A, B) {
    fn prefix(&self) -> u128 {
        joined(A::EXACT_BITS, self.0.prefix(), self.1.prefix())
    }
    const EXACT_BITS: Option<u32> = joined_bits(A::EXACT_BITS, B::EXACT_BITS);
}

impl<A: SortKey, B: SortKey, C: SortKey> SortKey for (A, B, C) {
    fn prefix(&self) -> u128 {
        let ab = joined(A::EXACT_BITS, self.0.prefix(), self.1.prefix());
        joined(
            joined_bits(A::EXACT_BITS, B::EXACT_BITS),
            ab,
            self.2.prefix(),
        )
    }
    const EXACT_BITS: Option<u32> =
        joined_bits(joined_bits(A::EXACT_BITS, B::EXACT_BITS), C::EXACT_BITS);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of `keys`: the prefix never goes against `Ord`, and where the type says
    /// its prefix is exact, equal prefixes mean equal keys.
    fn check<K: SortKey + std::fmt::Debug>(keys: &[K]) {
        for a in keys {
            for b in keys {
                if a < b {
                    assert!(a.prefix() <= b.prefix(), "{a:?} < {b:?}");
                }
                if let Some(n) = K::EXACT_BITS {
                    let (pa, pb) = (a.prefix() & top_bits(n), b.prefix() & top_bits(n));
                    assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} vs {b:?}");
                    assert_eq!(a.prefix(), pa, "{a:?}: bits below the prefix");
                }
            }
        }
    }

    #[test]
    fn prefixes_order_like_the_keys() {
        check(&[0u8, 1, 127, 128, 255]);
        check(&[0u64, 1, u64::MAX / 2, u64::MAX]);
        check(&[i32::MIN, -2, -1, 0, 1, i32::MAX]);
        check(&[i64::MIN, -1, 0, 7, i64::MAX]);
        check(&[i128::MIN, -1, 0, i128::MAX]);
        check(&[0u128, 1, 1 << 100, u128::MAX]);
        check(&[false, true]);
        check(&['a', 'z', 'ß', '😀']);
        let words = [
            "",
            "a",
            "a\0",
            "ab",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "b",
        ];
        check(&words.map(String::from));
        check(&words.map(crate::Str::from));
        check(&words.map(|w| w.as_bytes().to_vec()));
        check(&[[0u8, 0, 1], [0, 1, 0], [255, 0, 0]]);
        check(&[[7u8; 20], [8; 20]]);
        check(&[None, Some(0u32), Some(5), Some(u32::MAX)]);
        check(&[Reverse(3u16), Reverse(2), Reverse(0)]);
        check(&[Reverse(-3i64), Reverse(2), Reverse(5)]);
        check(&[(0u32, 5i16), (0, 6), (1, -3), (u32::MAX, i16::MIN)]);
        check(&[
            (1u8, "x".to_string()),
            (1, "y".to_string()),
            (2, String::new()),
        ]);
        check(&[
            ("a".to_string(), 9u8),
            ("a".to_string(), 1),
            ("b".to_string(), 0),
        ]);
        check(&[(1u32, 2u32, 3u32), (1, 2, 4), (1, 3, 0), (2, 0, 0)]);
        check(&[(u64::MAX, 1u64), (u64::MAX, 2), (0, u64::MAX)]);
        assert_eq!(<[u8; 10]>::EXACT_BITS, Some(80));
        assert!(prefix_decides::<[u8; 10]>() && prefix_decides::<(u32, i32)>());
        assert!(!prefix_decides::<u128>() && !prefix_decides::<String>());
        assert!(!prefix_decides::<(u64, u64)>());
    }

    /// Sorts `keys` through entries and says in which order they came out.
    fn sorted_numbers<K: SortKey + Clone>(keys: &[K], ascending: bool) -> Vec<usize> {
        let mut entries: Vec<u128> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| entry(k, ascending, i as u64))
            .collect();
        let kept: &[K] = if prefix_decides::<K>() { &[] } else { keys };
        sort_entries(&mut entries, kept, ascending);
        entries.into_iter().map(index_of).collect()
    }

    fn stable_sort<K: Ord>(keys: &[K], ascending: bool) -> Vec<usize> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| in_direction(ascending, &keys[a], &keys[b]));
        order
    }

    #[test]
    fn entries_sort_like_a_stable_sort_of_the_keys() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let ints: Vec<i64> = (0..2000).map(|_| rng.random_range(-50..50)).collect();
        let wide: Vec<u128> = (0..2000).map(|_| rng.random_range(0..8) << 3).collect();
        let words: Vec<String> = (0..2000)
            .map(|_| "aaaaaaaaaaaaaaaa".to_string() + &rng.random_range(0..30).to_string())
            .collect();
        let pairs: Vec<(u8, String)> = (0..2000)
            .map(|i| ((i % 3) as u8, rng.random_range(0..9).to_string()))
            .collect();
        for ascending in [true, false] {
            assert_eq!(
                sorted_numbers(&ints, ascending),
                stable_sort(&ints, ascending)
            );
            assert_eq!(
                sorted_numbers(&wide, ascending),
                stable_sort(&wide, ascending)
            );
            assert_eq!(
                sorted_numbers(&words, ascending),
                stable_sort(&words, ascending)
            );
            assert_eq!(
                sorted_numbers(&pairs, ascending),
                stable_sort(&pairs, ascending)
            );
        }
    }
}
