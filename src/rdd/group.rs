//! [`Group`]: the values of one key after `group_by_key`, shared rather than owned, as
//! Spark's `Iterable[V]` is.
//!
//! A group is read far more often than it is built: PageRank caches its links (each
//! vertex's out-links) once and joins them with the ranks every iteration. Held as a
//! `Vec`, every read of the cached partition cloned every group — an allocation and a copy
//! of all its values, only to be iterated once and freed (profiled at 1 GB: the copy 9% of
//! an iteration, with the allocator's work more). A `Group` is an `Arc<[V]>`: cloning it
//! (out of the cache, into a join's match) copies a pointer, and the values stay where the
//! cache holds them. A group that is not shared (straight out of the aggregation) still
//! gives its values up by move.
//!
//! It reads as a slice (`Deref<Target = [V]>`), iterates by value or by reference, and is
//! encoded exactly as a `Vec<V>` is.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The values of one key, immutable and cheap to clone (see the module's docs).
///
/// ```
/// # use ember::{Context, Group, config::EngineArgs};
/// # let ctx = Context::local_with(&EngineArgs::default());
/// let pairs = ctx.parallelize(vec![('a', 1), ('b', 2), ('a', 3)], Some(2));
/// let groups: Vec<(char, Group<i32>)> = pairs.group_by_key().collect()?;
/// let a = &groups.iter().find(|(k, _)| *k == 'a').unwrap().1;
/// assert_eq!(a.len(), 2);
/// assert_eq!(a.iter().sum::<i32>(), 4);
/// let mut values = a.clone().into_vec();
/// values.sort();
/// assert_eq!(values, [1, 3]);
/// # Ok::<(), ember::Error>(())
/// ```
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group<V>(Arc<[V]>);

impl<V> Group<V> {
    /// The values, moved out when this is the group's only handle, cloned otherwise.
    pub fn into_vec(self) -> Vec<V>
    where
        V: Clone,
    {
        self.into_iter().collect()
    }
}

impl<V> Clone for Group<V> {
    fn clone(&self) -> Self {
        Group(Arc::clone(&self.0))
    }
}

impl<V> Deref for Group<V> {
    type Target = [V];

    fn deref(&self) -> &[V] {
        &self.0
    }
}

impl<V> From<Vec<V>> for Group<V> {
    fn from(values: Vec<V>) -> Self {
        Group(Arc::from(values))
    }
}

impl<V> FromIterator<V> for Group<V> {
    fn from_iter<I: IntoIterator<Item = V>>(values: I) -> Self {
        Group(values.into_iter().collect())
    }
}

impl<V: fmt::Debug> fmt::Debug for Group<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for Group<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Group<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<V>::deserialize(deserializer).map(Group::from)
    }
}

impl<'a, V> IntoIterator for &'a Group<V> {
    type Item = &'a V;
    type IntoIter = std::slice::Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<V: Clone> IntoIterator for Group<V> {
    type Item = V;
    type IntoIter = IntoIter<V>;

    fn into_iter(self) -> IntoIter<V> {
        let mut values = self.0;
        let values = if Arc::get_mut(&mut values).is_some() {
            let raw = Arc::into_raw(values) as *const [ManuallyDrop<V>];
            // SAFETY: `ManuallyDrop<V>` is `repr(transparent)` over `V`, so the slice's
            // layout, length and allocation are the same; the values are dropped once, by
            // `IntoIter` (taken ones by their taker, the rest in its `drop`).
            Values::Owned(unsafe { Arc::from_raw(raw) })
        } else {
            Values::Shared(values)
        };
        IntoIter { values, next: 0 }
    }
}

/// The values of a [`Group`] by value: moved out of a group no one else holds, cloned out
/// of a shared one.
pub struct IntoIter<V> {
    values: Values<V>,
    /// The first value not yet yielded.
    next: usize,
}

enum Values<V> {
    /// The only handle (never shared again: the iterator owns it).
    Owned(Arc<[ManuallyDrop<V>]>),
    Shared(Arc<[V]>),
}

impl<V: Clone> Iterator for IntoIter<V> {
    type Item = V;

    #[inline]
    fn next(&mut self) -> Option<V> {
        let i = self.next;
        let value = match &self.values {
            Values::Owned(values) => {
                let slot = values.get(i)?;
                // SAFETY: the iterator holds the buffer's only handle, so no one else sees
                // the slot; each slot is read out at most once (`next` moves past it) and
                // only the slots from `next` on are dropped with the iterator. (Read
                // through the shared slice: `Arc::get_mut` here cost an atomic a value.)
                ManuallyDrop::into_inner(unsafe { std::ptr::read(slot) })
            }
            Values::Shared(values) => values.get(i)?.clone(),
        };
        self.next = i + 1;
        Some(value)
    }

    /// A shared group's values in one loop over the slice (`for_each`, `sum`, a
    /// `flat_map`'s output), cloned from wherever `next` stopped, rather than a `next` a
    /// value, each matching on how the buffer is held. An unshared one's are moved out by
    /// `next`, whose slot counter is past a value before `f` sees it (a panic in `f`
    /// drops only the values after it, see `Drop`).
    fn fold<B, F: FnMut(B, V) -> B>(self, init: B, mut f: F) -> B {
        if let Values::Shared(values) = &self.values {
            return values[self.next..].iter().cloned().fold(init, f);
        }
        let mut acc = init;
        // `for` calls `next`, not this `fold`.
        for value in self {
            acc = f(acc, value);
        }
        acc
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match &self.values {
            Values::Owned(values) => values.len(),
            Values::Shared(values) => values.len(),
        };
        let left = len - self.next;
        (left, Some(left))
    }
}

impl<V: Clone> ExactSizeIterator for IntoIter<V> {}

impl<V> Drop for IntoIter<V> {
    fn drop(&mut self) {
        if let Values::Owned(values) = &mut self.values
            && let Some(values) = Arc::get_mut(values)
        {
            for slot in values.iter_mut().skip(self.next) {
                // SAFETY: the slots from `next` on were never taken.
                unsafe { ManuallyDrop::drop(slot) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A value counting its drops in `DROPS` (each test its own counter).
    #[derive(Clone, Debug)]
    struct Counted(u32, &'static AtomicUsize);

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn group(n: u32, drops: &'static AtomicUsize) -> Group<Counted> {
        (0..n).map(|i| Counted(i, drops)).collect()
    }

    #[test]
    fn a_clone_shares_the_values() {
        let a: Group<u64> = vec![1, 2, 3].into();
        let b = a.clone();
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert_eq!(&*b, [1, 2, 3]);
    }

    #[test]
    fn an_unshared_group_moves_its_values_out_and_drops_the_rest_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let g = group(5, &DROPS);
        let mut it = g.into_iter();
        let taken: Vec<Counted> = it.by_ref().take(2).collect();
        // Moved, not cloned: no value was dropped (a clone's original would be).
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        assert_eq!(taken.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1]);
        assert!(matches!(it.values, Values::Owned(_)));
        assert_eq!(it.size_hint(), (3, Some(3)));
        drop(it);
        // The three not taken, each once.
        assert_eq!(DROPS.load(Ordering::SeqCst), 3);
        drop(taken);
        assert_eq!(DROPS.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_shared_group_clones_its_values_and_keeps_them() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let g = group(4, &DROPS);
        let kept = g.clone();
        let out: Vec<Counted> = g.into_iter().collect();
        assert_eq!(out, *kept);
        drop(out);
        assert_eq!(DROPS.load(Ordering::SeqCst), 4);
        drop(kept);
        assert_eq!(DROPS.load(Ordering::SeqCst), 8);
    }

    #[test]
    fn folding_a_group_moves_or_clones_as_next_does_and_a_panic_drops_the_rest_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        // Unshared, part taken by `next`, the rest by `fold`: moved, none dropped.
        let mut it = group(5, &DROPS).into_iter();
        let first = it.next().unwrap();
        let rest = it.fold(Vec::new(), |mut v, c| {
            v.push(c);
            v
        });
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        assert_eq!(rest.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        drop((first, rest));
        assert_eq!(DROPS.load(Ordering::SeqCst), 5);
        // Shared: cloned from where `next` left off, the originals kept.
        let kept = group(3, &DROPS);
        let mut it = kept.clone().into_iter();
        it.next();
        let ids = it.fold(Vec::new(), |mut ids, c| {
            ids.push(c.0);
            ids
        });
        assert_eq!(ids, [1, 2]);
        assert_eq!(DROPS.load(Ordering::SeqCst), 5 + 3, "each clone dropped");
        drop(kept);
        assert_eq!(DROPS.load(Ordering::SeqCst), 5 + 3 + 3);
        // A panic in `f` at the third value: the value it took is dropped by the unwind,
        // the two after it by the iterator, the two before it by the fold: five drops.
        DROPS.store(0, Ordering::SeqCst);
        let it = group(5, &DROPS).into_iter();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            it.fold((), |(), c| assert!(c.0 != 2, "boom"))
        }));
        assert!(result.is_err());
        assert_eq!(DROPS.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_group_is_encoded_as_a_vec() {
        let values = vec!["a".to_string(), "bc".to_string()];
        let group: Group<String> = values.clone().into();
        let bytes = crate::codec::encode(&group);
        assert_eq!(bytes, crate::codec::encode(&values));
        let back: Group<String> = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back, group);
        assert_eq!(format!("{group:?}"), format!("{values:?}"));
    }
}
