//! The hash table of a combine: hashbrown's `HashTable` of (key, combiner) slots, hashed
//! with Fx (its halves swapped: [`TableHasher`]), whose keys are hashed once by the
//! caller so the slot a key will be probed at can be fetched into the cache while the
//! records before it are merged.
//!
//! A combine's table is often larger than the core's cache (WordCount: 100k distinct words,
//! a 4 MB table against a 1 MB L2), and a lookup then waits on memory for the slot's key:
//! profiled, half of an executor's time went to the one instruction after that load.
//! [`Combiners::prefetch`] asks for the slot at the key's first probe position (and the
//! control bytes there) ahead of time, so a batch of lookups waits once, not once each.
//! Where that slot is comes from hashbrown's layout (slots stored downwards from the
//! control bytes, the first probe at `hash & (buckets - 1)`), which hashbrown does not
//! promise: the address is only ever used as a prefetch hint, which cannot fault or change
//! a result, and a test below fails if the layout changes (a wrong address would only
//! cost the speed back).

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use crate::rdd::Key;
use crate::rdd::str_key::{keys_eq, str_hash};
use crate::shuffle::files::prefetch_line;

/// The (key, combiner) slots of a combine.
pub struct Combiners<K, C> {
    table: HashTable<(K, C)>,
    /// A full bucket's index and its slot's address when last seen: with the slot size,
    /// where every other bucket's slot is (`None` until the table has a key).
    anchor: Option<(usize, usize)>,
}

impl<K, C> Default for Combiners<K, C> {
    fn default() -> Self {
        Combiners {
            table: HashTable::new(),
            anchor: None,
        }
    }
}

/// A slot whose combiner has been moved out: if dropped while armed (a panic in the
/// merge), the slot is removed from the table with its key dropped and its combiner's
/// stale bits forgotten.
struct MovedOut<'a, K, C>(Option<hashbrown::hash_table::OccupiedEntry<'a, (K, C)>>);

impl<K, C> Drop for MovedOut<'_, K, C> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            let ((key, stale), _) = slot.remove();
            drop(key);
            std::mem::forget(stale);
        }
    }
}

/// The hashing of ember's hash tables (combines, a join's table): Fx, with the halves of
/// the hash swapped. A shuffle places a key by the top bits of its Fx hash
/// (`hash_partition`), so the keys a reduce partition holds share those bits, and
/// hashbrown takes a slot's 7-bit tag from the top bits too: with 2 partitions one bit of
/// the tag told no keys apart, with 34 five, and a probe compared many more keys that
/// only shared a tag (a load of a slot each, often a cache miss). Swapped, the tag comes
/// from bits the partition does not fix. Measured: PageRank 512 MB, 10 iterations, 2
/// alternated pairs: 12.10/11.18 -> 7.82/8.15 s; join 1 GB: 8.48/6.23 -> 5.55/5.34 s.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableHasher;

impl BuildHasher for TableHasher {
    type Hasher = SwappedFx;

    #[inline]
    fn build_hasher(&self) -> SwappedFx {
        SwappedFx(FxHasher::default())
    }
}

/// [`TableHasher`]'s hasher: Fx's, its result's halves swapped.
#[derive(Default)]
pub struct SwappedFx(FxHasher);

impl Hasher for SwappedFx {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish().rotate_left(32)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes)
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i)
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i)
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i)
    }
}

/// A key's hash, as the table uses it (and a spill file sorts by, and a join's sub-tables
/// split by): [`TableHasher`]'s, or for a [`Str`](crate::Str) key its words' (module
/// `str_key`). The table compares keys with `keys_eq` to match.
#[inline]
pub fn hash_key<K: Hash + ?Sized + 'static>(k: &K) -> u64 {
    str_hash(k).unwrap_or_else(|| TableHasher.hash_one(k))
}

impl<K: Key, C> Combiners<K, C> {
    /// An empty table with room for `keys` keys before it grows.
    pub fn with_capacity(keys: usize) -> Self {
        Combiners {
            table: HashTable::with_capacity(keys),
            anchor: None,
        }
    }

    /// Adds `v` (of the key `k` whose [`hash_key`] is `hash`) to its combiner: one probe
    /// when the key is known, updating in place; `create` makes a new key's combiner. The
    /// combiner is moved out to `merge` and its result written back into the same slot,
    /// so a slot holds just the key and combiner. A panic in `merge` leaves the key out of
    /// the table, never a moved-out value in it. `create` and `merge` are type parameters
    /// so a `reduce_by_key`'s `a + b` is inlined into the per-record loop.
    #[inline(always)]
    pub fn merge_hashed<V>(
        &mut self,
        hash: u64,
        k: K,
        v: V,
        create: &impl Fn(V) -> C,
        merge: &impl Fn(C, V) -> C,
    ) -> Option<&C> {
        match self.table.find_entry(hash, |(key, _)| keys_eq(key, &k)) {
            Ok(mut slot) => {
                // SAFETY: the combiner is read out of its slot and the slot is either
                // written again (below) or, if `merge` panics, removed by the guard
                // without dropping the combiner's moved-out bits.
                let c = unsafe { std::ptr::read(&slot.get_mut().1) };
                let mut guard = MovedOut(Some(slot));
                let merged = merge(c, v);
                let slot = guard.0.take()?.into_mut();
                // SAFETY: the slot's combiner was moved out above: overwritten, not dropped.
                unsafe { std::ptr::write(&mut slot.1, merged) };
                Some(&slot.1)
            }
            Err(absent) => {
                let table = absent.into_table();
                let slot = table.insert_unique(hash, (k, create(v)), |(key, _)| hash_key(key));
                Some(&slot.into_mut().1)
            }
        }
    }

    /// [`Combiners::merge_hashed`], hashing `k` here (the combines hash a batch ahead).
    #[cfg(test)]
    pub fn merge<V>(
        &mut self,
        k: K,
        v: V,
        create: &impl Fn(V) -> C,
        merge: &impl Fn(C, V) -> C,
    ) -> Option<&C> {
        self.merge_hashed(hash_key(&k), k, v, create, merge)
    }

    /// Starts bringing into the cache the slot a key hashed `hash` is probed at first,
    /// and the control bytes there: a hint, with no effect on any result.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let Some((slot, control)) = self.first_probe(hash) else {
            return;
        };
        prefetch_line(slot as *const u8);
        let size = std::mem::size_of::<(K, C)>();
        if size < 64 {
            // The next buckets' slots are below it: a match a few buckets on.
            prefetch_line(slot.wrapping_sub(64 - size) as *const u8);
            prefetch_line(slot.wrapping_sub(3 * size) as *const u8);
        }
        prefetch_line(control as *const u8);
    }

    /// The addresses of the slot and the control byte a key hashed `hash` is probed at
    /// first, as last located (never dereferenced: only prefetched).
    #[inline]
    fn first_probe(&self, hash: u64) -> Option<(usize, usize)> {
        let (index, address) = self.anchor?;
        let bucket = hash as usize & (self.table.num_buckets() - 1);
        let size = std::mem::size_of::<(K, C)>();
        // Slot `i` ends where the control bytes start less `i * size`.
        let control = address.wrapping_add((index + 1) * size);
        let slot = control.wrapping_sub((bucket + 1) * size);
        Some((slot, control.wrapping_add(bucket)))
    }

    /// Refreshes where the slots are (the table may have moved as it grew); call before a
    /// batch of [`Combiners::prefetch`].
    #[inline]
    pub fn locate(&mut self) {
        if let Some((index, address)) = self.anchor
            && self
                .table
                .get_bucket(index)
                .is_some_and(|slot| std::ptr::from_ref(slot) as usize == address)
        {
            return;
        }
        self.anchor = self.table.iter_buckets().next().and_then(|index| {
            let slot = self.table.get_bucket(index)?;
            Some((index, std::ptr::from_ref(slot) as usize))
        });
    }

    /// Makes room for `keys` more keys.
    pub fn reserve(&mut self, keys: usize) {
        self.table.reserve(keys, |(key, _)| hash_key(key));
    }

    /// The key's combiner.
    pub fn get(&self, k: &K) -> Option<&C> {
        self.table
            .find(hash_key(k), |(key, _)| keys_eq(key, k))
            .map(|(_, c)| c)
    }
}

impl<K, C> Combiners<K, C> {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Keys the table holds before it grows.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Empties the table, keeping its slots.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Up to `max` entries moved out, the slots kept for the next ones.
    pub fn take_some(&mut self, max: usize) -> Vec<(K, C)> {
        // An extraction stopped early leaves the entries it did not reach in the table.
        // Sized up front: grown by doubling, every batch was copied into fresh pages.
        let mut taken = Vec::with_capacity(max.min(self.table.len()));
        if self.table.len() <= max {
            // The last of it drained whole: every slot marked empty again, the memory
            // kept. Moved out one by one, a slot whose group had been full was left a
            // tombstone (and `clear` of the emptied table does nothing): the next task's
            // probes went on past them, and found room for a twentieth fewer keys.
            taken.extend(self.table.drain());
        } else {
            taken.extend(self.table.extract_if(|_| true).take(max));
        }
        taken
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &(K, C)> {
        self.table.iter()
    }
}

/// A table's (key, combiner) entries, taken out of it.
pub type Entries<K, C> = hashbrown::hash_table::IntoIter<(K, C)>;

impl<K, C> IntoIterator for Combiners<K, C> {
    type Item = (K, C);
    type IntoIter = Entries<K, C>;

    fn into_iter(self) -> Self::IntoIter {
        self.table.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetches_fetch_the_slot_a_key_is_found_in_most_of_the_time() {
        let mut table: Combiners<crate::Str, u64> = Combiners::default();
        let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
        let keys: Vec<crate::Str> = (0..50_000).map(|i| format!("word{i}").into()).collect();
        for k in &keys {
            table.merge(k.clone(), 1, &create, &add);
        }
        table.locate();
        let mut at_first_probe = 0;
        for k in &keys {
            let hash = hash_key(k);
            let found = table
                .table
                .find_bucket_index(hash, |(key, _)| key == k)
                .unwrap();
            let slot = std::ptr::from_ref(table.table.get_bucket(found).unwrap()) as usize;
            let (address, _) = table.first_probe(hash).unwrap();
            // Every slot is where the layout puts it (a "hash" equal to a bucket's index
            // is probed first at that bucket).
            let (found_at, _) = table.first_probe(found as u64).unwrap();
            assert_eq!(slot, found_at);
            at_first_probe += usize::from(slot == address);
        }
        // Most keys sit in the bucket of their first probe (a table at most 7/8 full).
        assert!(
            at_first_probe * 2 > keys.len(),
            "{at_first_probe} of {}",
            keys.len()
        );
    }

    #[test]
    fn a_table_that_grew_or_emptied_is_located_again() {
        let mut table: Combiners<u64, u64> = Combiners::default();
        let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
        table.locate();
        assert!(
            table.anchor.is_none(),
            "an empty table has no slot to count from"
        );
        table.merge(1, 1, &create, &add);
        table.locate();
        let small = table.anchor.unwrap();
        for k in 2..10_000 {
            table.merge(k, 1, &create, &add);
        }
        table.locate();
        let grown = table.anchor.unwrap();
        assert_ne!(small, grown);
        let (index, address) = grown;
        assert_eq!(
            std::ptr::from_ref(table.table.get_bucket(index).unwrap()) as usize,
            address
        );
        table.clear();
        table.locate();
        assert!(table.anchor.is_none());
    }

    #[test]
    fn a_panicking_merge_drops_the_moved_out_combiner_once_and_removes_its_key() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted(u64);
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut table: Combiners<u64, Counted> = Combiners::default();
        let create = |v: u64| Counted(v);
        let add = |c: Counted, v: u64| {
            assert_ne!(v, 0, "a user function panicked");
            Counted(c.0 + v)
        };
        table.merge(1, 5, &create, &add);
        table.merge(2, 5, &create, &add);
        let before = DROPS.load(Ordering::Relaxed);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            table.merge(1, 0, &create, &add);
        }));
        assert!(panicked.is_err());
        // The combiner moved into the merge was dropped by its unwinding, and only then.
        assert_eq!(DROPS.load(Ordering::Relaxed) - before, 1);
        assert!(table.get(&1).is_none());
        assert_eq!(table.get(&2).map(|c| c.0), Some(5));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_table_emptied_a_batch_at_a_time_has_all_its_room_again() {
        let (create, add) = (|v: u64| v, |c: u64, v: u64| c + v);
        let mut table: Combiners<u64, u64> = Combiners::with_capacity(100_000);
        let room = table.capacity();
        for round in 0..3 {
            // Filled to its load, as a task's map is, then moved out as the combine
            // hands it on.
            for k in 0..room as u64 {
                table.merge(k * 7919 + round, 1, &create, &add);
            }
            assert_eq!(table.capacity(), room, "round {round}: not grown");
            let mut taken = 0;
            while !table.is_empty() {
                taken += table.take_some(4096).len();
            }
            assert_eq!(taken, room);
            assert_eq!(
                table.capacity(),
                room,
                "round {round}: room lost to tombstones"
            );
        }
    }

    #[test]
    fn the_keys_of_one_reduce_partition_still_get_every_table_tag() {
        use crate::shuffle::partitioner::hash_partition;
        // hashbrown's tag: the top 7 bits of the hash.
        let tag = |h: u64| (h >> 57) as usize;
        for partitions in [2, 4, 34] {
            let mut tags = [false; 128];
            let mut fx_tags = [false; 128];
            for k in (0..200_000u64).filter(|k| hash_partition(k, partitions) == 1) {
                tags[tag(hash_key(&k))] = true;
                fx_tags[tag(rustc_hash::FxBuildHasher.hash_one(k))] = true;
            }
            let count = |t: &[bool]| t.iter().filter(|&&b| b).count();
            assert_eq!(count(&tags), 128, "{partitions} partitions");
            // What the swap is for: Fx's own top bits are the partition's.
            assert!(
                count(&fx_tags) <= 128 / partitions + 2,
                "{partitions} partitions"
            );
        }
    }
}
