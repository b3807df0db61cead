//! The record codec of shuffles and task results: postcard, records back to back.
//!
//! postcard is compact (varints, no field names) and validates while decoding: corrupt
//! or truncated bytes give an error, never undefined behaviour.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Appends `record` to `buf`.
pub fn encode_into<T: Serialize>(buf: &mut Vec<u8>, record: &T) {
    // Writing into a Vec cannot fail for the plain data types RDDs hold; a type whose
    // Serialize impl reports an error is a programming error in that type.
    if let Err(e) = postcard::to_io(record, &mut *buf) {
        panic!("record failed to serialize: {e}");
    }
}

/// One value as bytes.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(&mut buf, value);
    buf
}

/// Decodes every record of `bytes`, appending to `out`; `Err` says what is wrong and where.
pub fn decode_all_into<T: DeserializeOwned>(bytes: &[u8], out: &mut Vec<T>) -> Result<(), String> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (record, tail) = postcard::take_from_bytes::<T>(rest)
            .map_err(|e| format!("record at byte {offset} of {}: {e}", bytes.len()))?;
        out.push(record);
        rest = tail;
    }
    Ok(())
}

/// Decodes exactly one value filling `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(format!("{} trailing bytes", rest.len())),
        Err(e) => Err(format!("{e} ({} bytes)", bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
