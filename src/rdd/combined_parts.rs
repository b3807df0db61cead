//! The sub-parts of a reduce partition (`reduce_combine`) combined one at a time, as the
//! entries are asked for, in one hash table that each sub-part's entries are drained from
//! before the next sub-part fills it again.
//!
//! Combining every sub-part up front kept a table per sub-part until its entries were
//! read: a reduce partition's tables were all alive at once, each fresh memory the kernel
//! zeroed (profiled: `clear_page` under hashbrown's allocation of them a fifth of
//! PageRank's first iteration, where the edges' distinct runs), and each was read back
//! long after the cache had lost it. One table, filled and drained in turn, is recycled
//! and stays in the cache; a sub-part's records are freed as they are combined.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::Key;
use crate::rdd::combine::{CombineMap, Combiners};
use crate::rdd::spill_combine::{MergeCombiners, merge_runs, merge_spilling};
use crate::rdd::split_parts::{Chunks, Parts};

/// Keys per record of the sub-parts combined so far, which sizes the table for the next
/// sub-part: a table grown from empty to a sub-part's thousands of keys rehashed a dozen
/// times (profiled: `reserve_rehash` 3.5% of PageRank's iterations).
#[derive(Default)]
struct KeyRatio {
    records: usize,
    keys: usize,
}

impl KeyRatio {
    /// Notes a sub-part of `records` that held `keys`.
    fn note(&mut self, records: usize, keys: usize) {
        self.records += records;
        self.keys += keys;
    }

    /// The keys to expect of `records` (none before the first sub-part), an eighth over:
    /// hashing spreads keys over sub-parts unevenly.
    fn keys_for(&self, records: usize) -> usize {
        let keys = (records * self.keys).checked_div(self.records).unwrap_or(0);
        keys + keys / 8
    }
}

/// The combined entries of a reduce partition's sub-parts, in batches.
pub(crate) struct CombinedParts<K, V, C, F, M> {
    parts: std::vec::IntoIter<Chunks<(K, V)>>,
    /// The table of the sub-part being drained, kept (emptied) for the next one.
    map: Option<CombineMap<K, C>>,
    /// A sub-part that spilled: its merge with its runs.
    merging: Option<BatchIter<(K, C)>>,
    ratio: KeyRatio,
    create: F,
    merge_value: M,
    merge: MergeCombiners<C>,
    /// What holds the buffered records' reservation, given back at the end.
    held: Option<Parts<K, V>>,
}

impl<K, V, C, F, M> CombinedParts<K, V, C, F, M>
where
    K: Key,
    V: Serialize,
    C: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(V) -> C,
    M: Fn(C, V) -> C,
{
    /// The sub-parts `parts`, whose records' reservation `held` holds, to be combined
    /// (`create` a key's first value, `merge_value` the others into it; `merge` two
    /// combiners of a key when spilled runs meet).
    pub(crate) fn new(
        parts: Vec<Chunks<(K, V)>>,
        held: Parts<K, V>,
        create: F,
        merge_value: M,
        merge: MergeCombiners<C>,
    ) -> Self {
        CombinedParts {
            parts: parts.into_iter(),
            map: None,
            merging: None,
            ratio: KeyRatio::default(),
            create,
            merge_value,
            merge,
            held: Some(held),
        }
    }

    /// Combines the next sub-part into the table (or, if it spilled, into a merge).
    fn combine(&mut self, mut part: Chunks<(K, V)>) -> Result<()> {
        let (records, chunks) = part.take();
        let table = self
            .map
            .take()
            .map_or_else(Combiners::default, |m| m.into_table());
        // Emptied first: room reserved in a table with removed slots would rehash it.
        let mut map = CombineMap::with_table(table);
        map.acc.reserve(self.ratio.keys_for(records));
        let mut rest = chunks.into_iter().flatten();
        let runs = merge_spilling(&mut map, &mut rest, &self.create, &self.merge_value)?;
        self.ratio.note(records, map.acc.len());
        if runs.is_empty() {
            self.map = Some(map);
        } else {
            self.merging = Some(merge_runs(&mut map, runs, Arc::clone(&self.merge))?);
        }
        Ok(())
    }

    /// Ends the iteration: every sub-part's records and the table given back.
    fn end(&mut self) {
        self.parts = Vec::new().into_iter();
        self.map = None;
        self.merging = None;
        self.held = None;
    }
}

impl<K, V, C, F, M> Iterator for CombinedParts<K, V, C, F, M>
where
    K: Key,
    V: Serialize,
    C: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(V) -> C,
    M: Fn(C, V) -> C,
{
    type Item = Result<Vec<(K, C)>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(merging) = &mut self.merging {
                match merging.next() {
                    Some(Ok(batch)) => return Some(Ok(batch)),
                    Some(Err(e)) => {
                        self.end();
                        return Some(Err(e));
                    }
                    None => self.merging = None,
                }
            }
            if let Some(map) = self.map.as_mut().filter(|m| !m.acc.is_empty()) {
                return Some(Ok(map.drain_some(BATCH_SIZE)));
            }
            let Some(part) = self.parts.next() else {
                self.end();
                return None;
            };
            if let Err(e) = self.combine(part) {
                self.end();
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_parts_table_starts_as_large_as_the_keys_per_record_before_it_expect() {
        let mut ratio = KeyRatio::default();
        assert_eq!(ratio.keys_for(1000), 0, "nothing to go by yet");
        ratio.note(4000, 1000);
        ratio.note(4000, 1000);
        assert_eq!(ratio.keys_for(800), 225); // 200 keys, an eighth over
    }
}
