//! The data of the grouping-over-the-budget test, shared by its job (tests/bin/groups.rs)
//! and its sequential reference (tests/keyvalue.rs).

/// The key of record `i`: one of `keys` strings.
pub fn key_of(i: u64, keys: u64) -> String {
    format!("key-{}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys)
}

/// The value of record `i`.
pub fn value_of(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 1_000_003
}

/// A digest of one key's group (values in order): equal only for the same key and values.
pub fn digest(key: &str, values: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in key.bytes().map(u64::from).chain(values.iter().copied()) {
        h = (h ^ b).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What the job prints and the test recomputes: keys, values and the wrapping sum of the
/// digests, of `group_by_key` and of `cogroup` (left digest times 3 plus right digest).
pub fn summary(name: &str, keys: u64, values: u64, digests: u64) -> String {
    format!("{name} = {keys} keys, {values} values, digest {digests:016x}")
}
