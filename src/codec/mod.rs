//! The record codec of shuffles, spill files, task results and control messages: the
//! [`raw`] layout (fixed-width little-endian numbers, length-prefixed text and bytes,
//! fields back to back), records back to back; and [`RawCodec`], the layout of
//! fixed-width (`bytemuck::Pod`) records where a source knows them.
//!
//! Both validate while decoding what can be invalid: corrupt or truncated bytes give an
//! error, never undefined behaviour. Pairs of 64-bit integers and floats, the raw layout's
//! 16 bytes, are written and read without serde calls ([`pairs`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod pairs;
pub mod raw;

/// The version of the record format, named where records outlive the job (a
/// checkpoint's marker): 3 since records are written in the [`raw`] layout, 2 when pairs
/// were fixed-width and the rest postcard, 1 before.
pub const FORMAT: u32 = 3;

/// Appends `record` to `buf`.
pub fn encode_into<T: Serialize + 'static>(buf: &mut Vec<u8>, record: &T) {
    if !pairs::encode(buf, record) {
        raw_into(buf, record);
    }
}

/// Appends `record` in the raw layout.
#[inline]
fn raw_into<T: Serialize + ?Sized>(buf: &mut Vec<u8>, record: &T) {
    // Writing into a Vec cannot fail for the plain data types RDDs hold; a sequence that
    // does not say its length, or a Serialize impl reporting an error, is a programming
    // error in that type.
    if let Err(e) = raw::encode_into(buf, record) {
        panic!("record failed to serialize: {e}");
    }
}

/// Appends the record `(k, c)` given as references to its parts (a table's entry): the
/// bytes `encode_into(buf, &(k, c))` writes, which a reader decodes as `(K, C)`.
pub fn encode_entry_into<K: Serialize + 'static, C: Serialize + 'static>(
    buf: &mut Vec<u8>,
    k: &K,
    c: &C,
) {
    if !pairs::encode_parts(buf, k, c) {
        raw_into(buf, &(k, c));
    }
}

/// One value as bytes.
pub fn encode<T: Serialize + 'static>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(&mut buf, value);
    buf
}

/// Decodes the record that starts at byte `at` of `bytes` (records back to back): it and
/// where the next one starts. `Err` names the offset: `record at byte N: what is wrong`.
/// Every reader of encoded records (shuffle blocks, sorted runs, spill files) goes through
/// it, so a corrupt record reads the same wherever it is found.
#[inline]
pub fn decode_at<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    at: usize,
) -> Result<(T, usize), String> {
    if let Some(pair) = pairs::decode(bytes, at) {
        return pair;
    }
    raw::take_from(bytes, at).map_err(|e| format!("record at byte {at}: {e}"))
}

/// Decodes every record of `bytes`, appending to `out`; `Err` says what is wrong and where.
pub fn decode_all_into<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    out: &mut Vec<T>,
) -> Result<(), String> {
    let mut at = 0;
    while at < bytes.len() {
        let (record, next) =
            decode_at(bytes, at).map_err(|e| format!("{e} (of {} bytes)", bytes.len()))?;
        out.push(record);
        at = next;
    }
    Ok(())
}

/// Decodes exactly one value filling `bytes`.
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, String> {
    let (value, end) = match pairs::decode(bytes, 0) {
        Some(pair) => pair?,
        None => raw::take_from(bytes, 0).map_err(|e| format!("{e} ({} bytes)", bytes.len()))?,
    };
    match bytes.len() - end {
        0 => Ok(value),
        trailing => Err(format!("{trailing} trailing bytes")),
    }
}

/// Fixed-width records as their raw bytes, back to back (no lengths, no varints):
/// plain-old-data types, whose every bit pattern is a value, so decoding only checks that
/// a whole record remains. Records can be read in place, without a copy, where the bytes
/// are aligned for the type.
pub struct RawCodec<T> {
    width: usize,
    view: fn(&[u8]) -> Option<&T>,
    read: fn(&[u8]) -> T,
    bytes: fn(&T) -> &[u8],
    append: fn(&[&[u8]], &mut Vec<T>),
}

impl<T> Clone for RawCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RawCodec<T> {}

impl<T: bytemuck::Pod> RawCodec<T> {
    /// The raw layout of `T`: `size_of::<T>()` bytes a record.
    pub fn pod() -> Self {
        RawCodec {
            width: std::mem::size_of::<T>(),
            view: |b| bytemuck::try_from_bytes(b).ok(),
            read: bytemuck::pod_read_unaligned,
            bytes: bytemuck::bytes_of,
            // One call per batch, the copy loop compiled for `T`: no call per record.
            append: |pieces, out| {
                let width = std::mem::size_of::<T>();
                for piece in pieces {
                    out.extend(
                        piece
                            .chunks_exact(width)
                            .map(bytemuck::pod_read_unaligned::<T>),
                    );
                }
            },
        }
    }
}

impl<T> RawCodec<T> {
    /// Bytes a record.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Appends `record`'s bytes to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>, record: &T) {
        buf.extend_from_slice((self.bytes)(record));
    }

    /// The record at the start of `bytes`, copied out.
    pub fn read(&self, bytes: &[u8]) -> Result<T, String> {
        Ok((self.read)(self.record_bytes(bytes)?))
    }

    /// Appends the records of `pieces` to `out`, each piece whole records back to back.
    pub fn append(&self, pieces: &[&[u8]], out: &mut Vec<T>) -> Result<(), String> {
        match pieces
            .iter()
            .find(|p| p.len().checked_rem(self.width) != Some(0))
        {
            Some(p) => Err(format!(
                "{} bytes, not a whole number of {}-byte records",
                p.len(),
                self.width
            )),
            None => {
                (self.append)(pieces, out);
                Ok(())
            }
        }
    }

    /// `f` of the record at the start of `bytes`: read in place where aligned, else from a
    /// copy.
    pub fn with<R>(&self, bytes: &[u8], f: impl FnOnce(&T) -> R) -> Result<R, String> {
        let bytes = self.record_bytes(bytes)?;
        Ok(match (self.view)(bytes) {
            Some(record) => f(record),
            None => f(&(self.read)(bytes)),
        })
    }

    fn record_bytes<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], String> {
        bytes.get(..self.width).ok_or_else(|| {
            format!(
                "{} bytes left, not a whole {}-byte record",
                bytes.len(),
                self.width
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Str` keys cross a shuffle as the `String` they hold: either side decodes the other
    /// (inline words, and ones past the 24 bytes held inline).
    #[test]
    fn a_str_encodes_as_the_string_it_holds() {
        for word in ["", "word", "ünïcödé", &"long ".repeat(10)] {
            let (s, w) = (crate::Str::from(word), word.to_string());
            assert_eq!(encode(&(s.clone(), 7u64)), encode(&(w.clone(), 7u64)));
            assert_eq!(decode::<crate::Str>(&encode(&w)), Ok(s.clone()));
            assert_eq!(decode::<String>(&encode(&s)), Ok(w));
        }
    }

    #[test]
    fn raw_records_round_trip_in_place_or_copied_and_a_partial_one_is_an_error() {
        let codec = RawCodec::<u64>::pod();
        let mut buf = vec![0u8]; // so that the records after it are misaligned
        for x in [7u64, u64::MAX] {
            codec.encode_into(&mut buf, &x);
        }
        assert_eq!(buf.len(), 1 + 2 * 8);
        assert_eq!(codec.read(&buf[1..]), Ok(7));
        assert_eq!(codec.with(&buf[9..], |x| *x), Ok(u64::MAX));
        let aligned: Vec<u64> = vec![3, 4];
        let bytes: &[u8] = bytemuck::cast_slice(&aligned);
        assert_eq!(codec.with(&bytes[8..], |x| *x), Ok(4));
        assert!(codec.read(&buf[10..]).is_err());
        let mut out = vec![1u64];
        codec
            .append(&[&buf[9..], &buf[1..9], &[]], &mut out)
            .unwrap();
        assert_eq!(out, [1, u64::MAX, 7]);
        assert!(codec.append(&[&buf[1..9], &buf[2..]], &mut out).is_err());
        assert!(codec.with(&buf[..0], |_| ()).is_err());
    }

    #[test]
    fn records_round_trip_and_corruption_is_an_error() {
        let records = vec![("word".to_string(), 3u64), ("ß".to_string(), u64::MAX)];
        let mut buf = Vec::new();
        for r in &records {
            encode_into(&mut buf, r);
        }
        let mut back = Vec::new();
        decode_all_into::<(String, u64)>(&buf, &mut back).unwrap();
        assert_eq!(back, records);

        let mut none = Vec::<(String, u64)>::new();
        assert!(decode_all_into(&buf[..buf.len() - 1], &mut none).is_err());
        let mut bad = buf.clone();
        bad[0] = 0xff; // an impossible string length
        assert!(decode_all_into::<(String, u64)>(&bad, &mut Vec::new()).is_err());
        assert!(decode::<u32>(&encode(&7u32)).is_ok());
        assert!(decode::<u8>(&[1, 2]).is_err());
    }
}
