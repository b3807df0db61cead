//! Partitioners: which reduce partition a key goes to, identically on every rank.
//!
//! An RDD that knows its partitioner lets a later operation by key on an equal partitioner
//! skip the shuffle (Spark's `Partitioner`): equal partitioners send every key to the same
//! partition, so two RDDs partitioned by equal partitioners are co-partitioned.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;

use crate::shuffle::range::range_partition;

/// Reduce partition of `key` among `n`: FxHash (deterministic, fast), scaled by a
/// multiply-shift so the high bits decide (FxHash's low bits are weak for small ints).
pub fn hash_partition<K: Hash + ?Sized>(key: &K, n: usize) -> usize {
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    ((h.finish() as u128 * n as u128) >> 64) as usize
}

/// The partition of a key of type `K`, as a partitioner computes it.
pub type KeyPartition<K> = Arc<dyn Fn(&K) -> usize + Send + Sync>;

/// How the keys of a pair RDD are spread over its partitions.
///
/// ```
/// use ember::Partitioner;
/// let p = Partitioner::hash(4);
/// assert_eq!(p, Partitioner::hash(4));
/// assert_ne!(p, Partitioner::hash(8));
/// let place = p.for_keys::<u64>().unwrap();
/// assert!(place(&17) < 4);
/// let r = Partitioner::range(vec![10u64, 20], 3, true);
/// assert_eq!(r.for_keys::<u64>().unwrap()(&15), 1);
/// assert!(r.for_keys::<String>().is_none()); // made for u64 keys
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Partitioner {
    /// [`hash_partition`] of the key among `partitions`.
    Hash { partitions: usize },
    /// Keys in ranges between sorted bounds (what `sort_by_key` produces).
    Range(RangePartitioner),
}

/// Range partitioning of one key type: equal when the key type, direction, partition count
/// and bounds are.
#[derive(Clone)]
pub struct RangePartitioner {
    partitions: usize,
    ascending: bool,
    bounds: usize,
    /// The bounds as the codec writes them: what equality compares.
    encoded: Arc<[u8]>,
    key_type: TypeId,
    /// A `KeyPartition<K>` for the key type `K` the partitioner was made for.
    place: Arc<dyn Any + Send + Sync>,
}

impl PartialEq for RangePartitioner {
    fn eq(&self, other: &Self) -> bool {
        self.partitions == other.partitions
            && self.ascending == other.ascending
            && self.key_type == other.key_type
            && self.encoded == other.encoded
    }
}

impl Eq for RangePartitioner {}

impl Partitioner {
    /// Hash partitioning into `partitions` (at least 1).
    pub fn hash(partitions: usize) -> Partitioner {
        Partitioner::Hash {
            partitions: partitions.max(1),
        }
    }

    /// Range partitioning into `partitions` (at least 1) by ascending `bounds`: keys up to
    /// and including `bounds[0]` go to partition 0 (the last, when not `ascending`), ...
    pub fn range<K>(bounds: Vec<K>, partitions: usize, ascending: bool) -> Partitioner
    where
        K: Ord + Serialize + Send + Sync + 'static,
    {
        let partitions = partitions.max(1);
        let encoded: Arc<[u8]> = crate::codec::encode(&bounds).into();
        let count = bounds.len();
        let place: KeyPartition<K> =
            Arc::new(move |key: &K| range_partition(&bounds, key, ascending).min(partitions - 1));
        Partitioner::Range(RangePartitioner {
            partitions,
            ascending,
            bounds: count,
            encoded,
            key_type: TypeId::of::<K>(),
            place: Arc::new(place),
        })
    }

    pub fn num_partitions(&self) -> usize {
        match self {
            Partitioner::Hash { partitions } => *partitions,
            Partitioner::Range(r) => r.partitions,
        }
    }

    /// The partition of each key of type `K`; `None` for a range partitioner made for
    /// another key type.
    pub fn for_keys<K: Hash + 'static>(&self) -> Option<KeyPartition<K>> {
        match self {
            Partitioner::Hash { partitions } => {
                let n = *partitions;
                Some(Arc::new(move |k: &K| hash_partition(k, n)))
            }
            Partitioner::Range(r) => r.place.downcast_ref::<KeyPartition<K>>().cloned(),
        }
    }
}

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioner::Hash { partitions } => write!(f, "hash {partitions}"),
            Partitioner::Range(r) => write!(
                f,
                "range {} ({} bounds, {})",
                r.partitions,
                r.bounds,
                if r.ascending {
                    "ascending"
                } else {
                    "descending"
                }
            ),
        }
    }
}

impl fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Partitioner({self})")
    }
}

/// The partitioner an operation by key over inputs of `(partitioner, partitions)` uses
/// when none is given (Spark's `Partitioner.defaultPartitioner`): the partitioner of the
/// input with the most partitions among those that have one, unless it has fewer than a
/// tenth of the largest input's partitions; else hash partitioning into as many partitions
/// as the largest input.
pub fn default_partitioner(inputs: &[(Option<Partitioner>, usize)]) -> Partitioner {
    let most = inputs.iter().map(|i| i.1).max().unwrap_or(1).max(1);
    let known = inputs
        .iter()
        .filter_map(|(p, _)| p.as_ref())
        .max_by_key(|p| p.num_partitions());
    match known {
        Some(p) if p.num_partitions() * 10 >= most => p.clone(),
        _ => Partitioner::hash(most),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integer_keys_spread_over_partitions() {
        let n = 8;
        let mut counts = vec![0usize; n];
        for k in 0u64..8000 {
            let p = hash_partition(&k, n);
            assert!(p < n);
            counts[p] += 1;
        }
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
        assert_eq!(
            hash_partition("word", 5),
            hash_partition(&"word".to_string(), 5)
        );
    }

    #[test]
    fn partitioners_are_equal_when_they_place_keys_alike() {
        assert_eq!(Partitioner::hash(0), Partitioner::hash(1));
        let a = Partitioner::range(vec![3u32, 9], 3, true);
        assert_eq!(a, Partitioner::range(vec![3u32, 9], 3, true));
        assert_ne!(a, Partitioner::range(vec![3u32, 9], 3, false));
        assert_ne!(a, Partitioner::range(vec![3u32, 10], 3, true));
        assert_ne!(a, Partitioner::range(vec![3u64, 9], 3, true));
        assert_ne!(a, Partitioner::hash(3));
        let place = a.for_keys::<u32>().unwrap();
        assert_eq!([0, 3, 4, 9, 10].map(|k| place(&k)), [0, 0, 1, 1, 2]);
        assert_eq!(a.to_string(), "range 3 (2 bounds, ascending)");
    }

    #[test]
    fn the_default_is_the_largest_known_partitioner_unless_far_smaller() {
        let h4 = Partitioner::hash(4);
        assert_eq!(
            default_partitioner(&[(None, 3), (None, 7)]),
            Partitioner::hash(7)
        );
        assert_eq!(default_partitioner(&[(Some(h4.clone()), 4), (None, 7)]), h4);
        assert_eq!(
            default_partitioner(&[(Some(h4.clone()), 4), (Some(Partitioner::hash(6)), 6)]),
            Partitioner::hash(6)
        );
        assert_eq!(
            default_partitioner(&[(Some(h4), 4), (None, 100)]),
            Partitioner::hash(100)
        );
    }
}
