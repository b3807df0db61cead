//! TeraSort records: 100 bytes, a 10-byte key, read and written as raw bytes.

use bytemuck::{Pod, Zeroable};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes in a sort record.
pub const RECORD_LEN: usize = 100;
/// Bytes of its key.
pub const KEY_LEN: usize = 10;

/// One TeraSort record (`FORMATS.md`): key bytes 0..10, the record's index as 10 ASCII
/// digits in 10..20, `.` filler, `\n` last. Plain old data: read from and written to
/// files as its bytes, and shuffled as 100 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub struct Record(pub [u8; RECORD_LEN]);

impl Record {
    pub fn key(&self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(&self.0[..KEY_LEN]);
        k
    }

    /// The key packed big-endian into an integer: orders like the key bytes, and compares
    /// in one instruction instead of a byte loop (what the sort's entries hold).
    pub fn packed_key(&self) -> u128 {
        let mut k = [0u8; 16];
        k[..KEY_LEN].copy_from_slice(&self.0[..KEY_LEN]);
        u128::from_be_bytes(k)
    }

    /// The index written in bytes 10..20, if they are digits.
    pub fn index(&self) -> Option<u64> {
        std::str::from_utf8(&self.0[KEY_LEN..20]).ok()?.parse().ok()
    }

    /// Record `index` of a data set with random keys from `seed`.
    pub fn generate(seed: u64, index: u64) -> Record {
        use rand::RngCore;
        let mut r = [b'.'; RECORD_LEN];
        record_rng(seed, index).fill_bytes(&mut r[..KEY_LEN]);
        r[KEY_LEN..20].copy_from_slice(format!("{:010}", index % 10_000_000_000).as_bytes());
        r[RECORD_LEN - 1] = b'\n';
        Record(r)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Record(key {:02x?}, index {:?})",
            self.key(),
            self.index()
        )
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Record;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{RECORD_LEN} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Record, E> {
                let bytes: [u8; RECORD_LEN] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Record(bytes))
            }
        }
        d.deserialize_bytes(Bytes)
            .map_err(|e| D::Error::custom(format!("sort record: {e}")))
    }
}

/// A random stream for record `index` of a data set generated with `seed`.
pub fn record_rng(seed: u64, index: u64) -> Pcg64Mcg {
    // Mix seed and index (SplitMix64 finaliser) so neighbouring records are unrelated.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_records_follow_the_format() {
        let r = Record::generate(5, 42);
        assert_eq!(r.index(), Some(42));
        assert_eq!(&r.0[10..20], b"0000000042");
        assert!(r.0[20..99].iter().all(|&b| b == b'.'));
        assert_eq!(r.0[99], b'\n');
        assert_eq!(Record::generate(5, 42), r);
        assert_ne!(Record::generate(6, 42).key(), r.key());
        let (a, b) = (Record::generate(1, 1), Record::generate(1, 2));
        assert_eq!(a.key().cmp(&b.key()), a.packed_key().cmp(&b.packed_key()));
    }

    #[test]
    fn records_round_trip_through_the_codec() {
        let r = Record::generate(1, 7);
        let bytes = crate::codec::encode(&r);
        assert_eq!(bytes.len(), RECORD_LEN + 1); // one length byte
        assert_eq!(crate::codec::decode::<Record>(&bytes), Ok(r));
        assert!(crate::codec::decode::<Record>(&bytes[..50]).is_err());
    }
}
