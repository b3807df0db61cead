//! Pairs of 64-bit integers and floats (`(u64, f64)`, PageRank's contributions; `(u64,
//! u64)`, an edge; `(i64, i64)`, a key and a sum, ...) as 16 little-endian bytes — the
//! bytes the [`super::raw`] layout gives them — written with one store and read back with
//! two loads and no serde calls (profiled on PageRank when the rest was postcard:
//! postcard's encoding 10% of an executor, its decoding another 6-8%).
//!
//! A pair is recognised by its type (`TypeId`, a constant once the generic code is
//! compiled for it), so the choice costs nothing at run time and both ends of a shuffle,
//! a spill file or a task result, compiled from the same types, agree. As with the raw
//! layouts of `RawCodec`, every bit pattern is a value: decoding checks only that a whole
//! record remains.

use std::any::{Any, TypeId};

/// Bytes of a pair.
const WIDTH: usize = 16;

macro_rules! pairs {
    ($(($a:ty, $b:ty)),* $(,)?) => {
        /// Whether records of type `T` are written as pairs.
        #[inline(always)]
        pub fn is_pair<T: 'static>() -> bool {
            let id = TypeId::of::<T>();
            $(id == TypeId::of::<($a, $b)>() ||)* false
        }

        /// Appends `record` as a pair (true), or nothing if `T` is not one (false).
        #[inline(always)]
        pub fn encode<T: 'static>(buf: &mut Vec<u8>, record: &T) -> bool {
            let any = record as &dyn Any;
            $(
                if let Some((a, b)) = any.downcast_ref::<($a, $b)>() {
                    append(buf, a.to_le_bytes(), b.to_le_bytes());
                    return true;
                }
            )*
            false
        }

        /// Appends the record `(a, b)` given as its two parts: the bytes `encode` writes for
        /// the pair (true), or nothing if `(A, B)` is not one (false).
        #[inline(always)]
        pub fn encode_parts<A: 'static, B: 'static>(buf: &mut Vec<u8>, a: &A, b: &B) -> bool {
            let (a, b) = (a as &dyn Any, b as &dyn Any);
            $(
                if let (Some(a), Some(b)) = (a.downcast_ref::<$a>(), b.downcast_ref::<$b>()) {
                    append(buf, a.to_le_bytes(), b.to_le_bytes());
                    return true;
                }
            )*
            false
        }

        /// The pair at byte `at` of `bytes` and where the next record starts, if `T` is a
        /// pair (`None` if not); an error if fewer than 16 bytes remain.
        #[inline(always)]
        pub fn decode<T: 'static>(bytes: &[u8], at: usize) -> Option<Result<(T, usize), String>> {
            if !is_pair::<T>() {
                return None;
            }
            let Some(record) = bytes.get(at..at + WIDTH) else {
                let left = bytes.len().saturating_sub(at);
                return Some(Err(format!(
                    "record at byte {at}: {left} bytes left of a {WIDTH}-byte pair"
                )));
            };
            let (mut first, mut second) = ([0u8; 8], [0u8; 8]);
            first.copy_from_slice(&record[..8]);
            second.copy_from_slice(&record[8..]);
            let mut out: Option<T> = None;
            let slot = &mut out as &mut dyn Any;
            $(
                if let Some(slot) = slot.downcast_mut::<Option<($a, $b)>>() {
                    *slot = Some((<$a>::from_le_bytes(first), <$b>::from_le_bytes(second)));
                }
            )*
            out.map(|record| Ok((record, at + WIDTH)))
        }
    };
}

/// Appends a pair's two halves.
#[inline(always)]
fn append(buf: &mut Vec<u8>, first: [u8; 8], second: [u8; 8]) {
    let mut bytes = [0u8; WIDTH];
    bytes[..8].copy_from_slice(&first);
    bytes[8..].copy_from_slice(&second);
    buf.extend_from_slice(&bytes);
}

pairs! {
    (u64, u64), (u64, i64), (u64, f64),
    (i64, u64), (i64, i64), (i64, f64),
    (f64, u64), (f64, i64), (f64, f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_as_16_bytes_and_other_types_are_not_pairs() {
        let mut buf = vec![7u8];
        assert!(encode(&mut buf, &(u64::MAX, -0.5f64)));
        assert!(encode(&mut buf, &(-3i64, 9u64)));
        assert_eq!(buf.len(), 1 + 2 * WIDTH);
        assert_eq!(&buf[1..9], &u64::MAX.to_le_bytes());
        assert_eq!(
            decode::<(u64, f64)>(&buf, 1),
            Some(Ok(((u64::MAX, -0.5), 1 + WIDTH)))
        );
        assert_eq!(decode::<(i64, u64)>(&buf, 17), Some(Ok(((-3, 9), 33))));
        let short = decode::<(i64, u64)>(&buf, 18);
        assert!(matches!(short, Some(Err(e)) if e.contains("15 bytes left")));
        // Not pairs: left to the raw layout's serde path.
        assert!(!encode(&mut buf, &(1u32, 2u64)));
        assert!(!encode(&mut buf, &7u64));
        assert!(!encode(&mut buf, &((1u64, 2u64), ())));
        assert_eq!(buf.len(), 1 + 2 * WIDTH);
        assert_eq!(decode::<(u32, u64)>(&buf, 1), None);
        // A pair given as its parts: the same bytes.
        let mut parts = Vec::new();
        assert!(encode_parts(&mut parts, &u64::MAX, &-0.5f64));
        assert_eq!(parts, buf[1..1 + WIDTH]);
        assert!(!encode_parts(&mut parts, &1u32, &2u64));
    }
}
