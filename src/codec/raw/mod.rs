//! The raw record layout of shuffles, spill files, task results and control messages: a
//! serde format of fixed-width little-endian numbers and length-prefixed text and bytes,
//! fields back to back.
//!
//! | serde type | bytes |
//! | --- | --- |
//! | `bool` | 1 (0 or 1) |
//! | `u8`..`u128`, `i8`..`i128`, `f32`, `f64` | their width, little-endian |
//! | `char` | 4, its scalar value |
//! | `str`, bytes | a length (varint), then the bytes (UTF-8 checked for `str`) |
//! | `Option` | 0, or 1 and the value |
//! | sequence, map | a length (varint), then the elements (a map's as key, value) |
//! | tuple, struct, tuple struct | the fields back to back |
//! | unit, unit struct | nothing |
//! | enum | the variant's index (varint), then its fields |
//!
//! A varint is LEB128: 7 bits a byte, low bits first, the high bit set on every byte but
//! the last (a word's length is one byte). Numbers are read with plain loads, no varint
//! decoding per field (postcard, used before, wrote every integer as a varint); a pair of
//! 64-bit numbers is the 16 bytes [`super::pairs`] writes.
//!
//! Decoding validates what can be invalid: a length or a field running past the end, a
//! `bool` or `Option` tag other than 0 and 1, text that is not UTF-8, a `char` that is not
//! a scalar value, an overlong varint, an enum index the type does not have. A flipped bit
//! inside a number is a different number, not an error (as with `RawCodec`). The format
//! is not self-describing: a type that asks for `deserialize_any` (serde's untagged enums,
//! `flatten`) is an error, as it was with postcard.

mod de;
mod ser;

pub use de::take_from;
pub use ser::encode_into;

/// The error of either direction: what is wrong (decoding: at which byte of the record).
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Bytes of the longest varint (a `u64`).
const VARINT_MAX: usize = 10;

/// Appends `n` as a varint.
#[inline]
fn put_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push(n as u8 | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

#[cfg(test)]
mod tests;
