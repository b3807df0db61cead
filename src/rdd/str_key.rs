//! Hashing and comparing [`Str`] keys in ember's tables without a call per key.
//!
//! A `Str` (`CompactString`) hashes through `str`'s `Hash`: its length decoded from the
//! last byte, then Fx over the bytes in pieces chosen by the length (a branch on word
//! lengths the CPU mispredicts), in a function the table's loop calls; and two compare
//! through `memcmp`, called per probe. Profiled on WordCount (1 GB, 100 k distinct
//! words): the hash 14% of an executor's samples, `memcmp` 15%.
//!
//! A `Str` of up to 24 bytes is held inline: its bytes, then its length in the last byte
//! (or, at 24 bytes, a last byte of text). Here its three words are read as they lie,
//! the bytes past its length masked off, and mixed with the length by two folded
//! multiplies: no branch on the length, no call. A `Str` of up to 24 bytes held on the
//! heap hashes as the same bytes laid out inline would, so equal strings hash equal
//! however they are held; a longer one hashes its bytes with Fx. Two `Str`s whose three
//! words are equal are equal (the same inline bytes and length, or the same heap bytes
//! and length); others are compared as strings. Measured on WordCount (1 GB, 2 executors,
//! 5 alternated runs each): 2.91-3.05 s -> 2.51-2.62 s, user CPU 5.3 -> 4.5 s.
//!
//! `combine_table`'s `hash_key` and its probes' comparisons ([`keys_eq`]) use this, for
//! keys whose type is `Str`; a table hashes and compares every key it holds through them,
//! so the hash need not agree with `Str`'s own `Hash`.

use std::any::TypeId;

use crate::Str;

/// The three words a [`Str`] is made of.
#[inline(always)]
fn words(s: &Str) -> [u64; 3] {
    const { assert!(std::mem::size_of::<Str>() == 24) };
    // SAFETY: a `Str` is 24 initialised bytes (a pointer and two words, or inline bytes
    // and a length byte: compact_str's `Repr` is `repr(C)` without padding), read here as
    // plain words, unaligned-safe.
    unsafe { std::ptr::read_unaligned(std::ptr::from_ref(s).cast::<[u64; 3]>()) }
}

/// `s` as a [`Str`] when `K` is `Str`.
#[inline(always)]
fn as_str<K: 'static + ?Sized>(k: &K) -> Option<&Str> {
    (TypeId::of::<K>() == TypeId::of::<Str>())
        // SAFETY: `K` is `Str` (a sized type, so the pointer is thin).
        .then(|| unsafe { &*std::ptr::from_ref(k).cast::<Str>() })
}

/// Whether two keys are equal: for `Str`s, by their words first (see the module header).
#[inline(always)]
pub fn keys_eq<K: PartialEq + 'static>(a: &K, b: &K) -> bool {
    if let (Some(x), Some(y)) = (as_str(a), as_str(b))
        && words(x) == words(y)
    {
        return true;
    }
    a == b
}

/// The table hash of `k` when `K` is `Str` (see the module header); `None` otherwise.
#[inline(always)]
pub fn str_hash<K: 'static + ?Sized>(k: &K) -> Option<u64> {
    as_str(k).map(hash)
}

/// The last byte of an inline `Str` of fewer than 24 bytes: this mark plus its length.
const INLINE_MARK: u8 = 0xC0;

/// The largest last byte of an inline `Str` (23 bytes); larger ones mark a `Str` on the
/// heap (or static).
const INLINE_LAST: u8 = INLINE_MARK + 23;

/// Masks keeping the first `len` bytes of three little-endian words, for each `len` up to
/// 24.
static KEEP: [[u64; 3]; 25] = {
    let mut keep = [[0u64; 3]; 25];
    let mut len = 0;
    while len <= 24 {
        let mut i = 0;
        while i < 3 {
            let bytes = if len <= 8 * i {
                0
            } else if len - 8 * i >= 8 {
                8
            } else {
                len - 8 * i
            };
            keep[len][i] = if bytes == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * bytes)) - 1
            };
            i += 1;
        }
        len += 1;
    }
    keep
};

/// The `Str` of the first `len` bytes at `bytes`, made inline as `compact_str` lays it out
/// (see the module header): three words loaded and masked to the length, the length in
/// the last byte. No branch on the length, as `Str::from` takes (the word splitter's).
///
/// # Safety
/// `bytes` is valid for reading 24 bytes, `len` is at most 24 and the first `len` bytes
/// are UTF-8 text (at 24 bytes, a whole one: its last byte then marks nothing).
#[inline(always)]
pub(crate) unsafe fn inline_str(bytes: *const u8, len: usize) -> Str {
    let keep = &KEEP[len];
    // SAFETY: 24 bytes are readable at `bytes` (the caller's promise), read unaligned.
    let word = |i: usize| unsafe { std::ptr::read_unaligned(bytes.add(8 * i).cast::<u64>()) };
    let mut w = [word(0) & keep[0], word(1) & keep[1], word(2) & keep[2]];
    if len < 24 {
        w[2] |= u64::from(INLINE_MARK | len as u8) << 56;
    }
    // SAFETY: these are the three words `compact_str` makes for this text inline (its
    // bytes, zeros, the mark and length in the last byte; at 24 bytes a last byte of
    // text, below the marks): the layout `words` reads, checked against `Str::from` for
    // every length by the tests below.
    unsafe { std::mem::transmute::<[u64; 3], Str>(w) }
}

/// The hash of a `Str`, however held.
#[inline(always)]
fn hash(s: &Str) -> u64 {
    let w = words(s);
    let last = (w[2] >> 56) as u8;
    if last <= INLINE_LAST {
        // Inline: a last byte below the mark is text (24 bytes).
        let len = if last >= INLINE_MARK {
            (last - INLINE_MARK) as usize
        } else {
            24
        };
        return mix(w, len);
    }
    long_hash(s.as_bytes())
}

/// The hash of a `Str` held on the heap (or static): as its bytes laid out inline would
/// hash, up to 24 bytes; Fx's (its halves swapped, as the tables' other keys) past that.
/// Out of line: the words of a table's `Str` keys are nearly always inline.
#[inline(never)]
fn long_hash(bytes: &[u8]) -> u64 {
    if bytes.len() <= 24 {
        let mut inline = [0u8; 24];
        inline[..bytes.len()].copy_from_slice(bytes);
        return mix(bytemuck::cast(inline), bytes.len());
    }
    let mut h = rustc_hash::FxHasher::default();
    std::hash::Hasher::write(&mut h, bytes);
    std::hash::Hasher::finish(&h).rotate_left(32)
}

/// The hash of the first `len` (at most 24) bytes of `w` (little-endian words) and `len`.
#[inline(always)]
fn mix(w: [u64; 3], len: usize) -> u64 {
    let keep = &KEEP[len];
    let (a, b, c) = (w[0] & keep[0], w[1] & keep[1], w[2] & keep[2]);
    let h = folded(a ^ SEEDS[0], b ^ SEEDS[1]);
    folded(h ^ c ^ SEEDS[2], len as u64 ^ SEEDS[3])
}

/// The high and low halves of `a * b`, XORed.
#[inline(always)]
fn folded(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// Fixed constants (digits of pi), so words of zeros still multiply to something.
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The same text as a `Str` held inline and one held on the heap.
    fn both_ways(text: &str) -> (Str, Str) {
        let inline = Str::new(text);
        let mut heap = Str::with_capacity(64);
        heap.push_str(text);
        (inline, heap)
    }

    #[test]
    fn equal_strings_hash_equal_however_they_are_held() {
        for len in 0..=40 {
            let text: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"[..len].to_string();
            let (inline, heap) = both_ways(&text);
            assert_eq!(inline.is_heap_allocated(), len > 24, "{len} bytes");
            assert!(heap.is_heap_allocated(), "{len} bytes");
            assert_eq!(hash(&inline), hash(&heap), "{len} bytes");
            assert!(
                keys_eq(&inline, &heap) && keys_eq(&heap, &inline),
                "{len} bytes"
            );
            // A string cut short keeps the cut bytes in its buffer: they are not hashed.
            let mut cut = Str::new(format!("{text}xyz"));
            cut.truncate(len);
            assert_eq!(hash(&cut), hash(&inline), "{len} bytes, cut");
            assert!(keys_eq(&cut, &inline), "{len} bytes, cut");
        }
    }

    #[test]
    fn a_str_made_inline_is_the_str_compact_str_makes() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 0..=24 {
            let made = unsafe { inline_str(text.as_ptr(), len) };
            let reference = Str::from(&text[..len]);
            assert_eq!(made, reference, "{len} bytes");
            assert_eq!(made.len(), len);
            assert!(!made.is_heap_allocated(), "{len} bytes");
            assert_eq!(
                words(&made),
                words(&reference),
                "{len} bytes: the same words"
            );
            assert_eq!(hash(&made), hash(&reference), "{len} bytes");
            // It behaves as any other: grows onto the heap, keeps its text.
            let mut grown = made.clone();
            grown.push_str(&text[len..]);
            assert_eq!(grown, text, "{len} bytes grown");
        }
    }

    #[test]
    fn different_strings_differ() {
        let texts = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "a\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
        ];
        for (i, x) in texts.iter().enumerate() {
            for (j, y) in texts.iter().enumerate() {
                let (x, y) = (Str::new(x), Str::new(y));
                assert_eq!(keys_eq(&x, &y), i == j, "{x:?} {y:?}");
                assert_eq!(hash(&x) == hash(&y), i == j, "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn hashes_spread_over_the_bits_a_table_uses() {
        // The top 7 bits (hashbrown's tags) and the low 16 (the buckets) of 100 k words.
        let mut tags = [0usize; 128];
        let mut buckets = vec![0usize; 1 << 16];
        for i in 0..100_000 {
            let h = hash(&Str::new(format!("w{i}")));
            tags[(h >> 57) as usize] += 1;
            buckets[(h & 0xffff) as usize] += 1;
        }
        assert!(tags.iter().all(|&n| (600..960).contains(&n)), "{tags:?}");
        assert!(buckets.iter().all(|&n| n < 12), "a bucket too full");
    }

    #[test]
    fn other_key_types_are_left_to_their_own_hash_and_eq() {
        assert_eq!(str_hash(&5u64), None);
        assert_eq!(str_hash("text"), None);
        assert!(keys_eq(&(1, 2), &(1, 2)) && !keys_eq(&(1, 2), &(2, 1)));
    }
}
