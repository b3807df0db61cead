//! The left rows of a hash join in an order whose probes stay in one cache-sized sub-table.
//!
//! A join's table is split into sub-tables by bits of the key's hash (`join::Table`), each
//! sized to stay in a core's cache. Left rows that come grouped by those bits (a
//! combine's output, a cached group: PageRank's links) probe one sub-table for thousands
//! of rows in a row; rows in arrival order from a shuffle (the join job's facts) probe a
//! different sub-table every time, and each probe waits on memory (profiled: `Table::get`
//! 28% of an executor of the join job at 1 GB). A window of the first rows tells which:
//! scattered rows are first split by sub-table (one pass of moves, as the reduce side of
//! an aggregation splits its records), within the task's budget; if the budget fills,
//! what was split is probed first and the rest follows as it comes. Either order joins
//! the same rows.

use crate::memory::Reservation;
use crate::rdd::Key;
use crate::rdd::combine_table::hash_key;
use crate::rdd::partitioned_combine::sub_part;
use crate::rdd::split_parts::Parts;

/// Rows looked at to tell grouped rows from scattered ones.
const WINDOW: usize = 256;
/// At most this many sub-tables probed by a window's rows: the rows are grouped enough
/// (rows grouped by another number of sub-parts, a power of two, touch a few).
const GROUPED: usize = 8;

/// The left rows in probe order: the rows split by sub-table (or the window looked at),
/// then the rest as they come.
pub struct ProbeOrder<K, V, I> {
    front: std::iter::Flatten<std::vec::IntoIter<Vec<(K, V)>>>,
    rest: I,
    /// The budget the split rows hold until they are probed.
    _held: Option<Reservation>,
}

impl<K, V, I: Iterator<Item = (K, V)>> Iterator for ProbeOrder<K, V, I> {
    type Item = (K, V);

    #[inline]
    fn next(&mut self) -> Option<(K, V)> {
        self.front.next().or_else(|| self.rest.next())
    }
}

/// `left` in an order that probes a table of `parts` sub-tables (split by [`sub_part`])
/// one sub-table at a time (see the module header).
pub fn probe_order<K, V, I>(mut left: I, parts: usize) -> ProbeOrder<K, V, I>
where
    K: Key,
    V: serde::Serialize,
    I: Iterator<Item = (K, V)>,
{
    let as_they_come = |front: Vec<Vec<(K, V)>>, rest: I, held| ProbeOrder {
        front: front.into_iter().flatten(),
        rest,
        _held: held,
    };
    if parts <= 1 {
        return as_they_come(Vec::new(), left, None);
    }
    let window: Vec<(K, V)> = left.by_ref().take(WINDOW).collect();
    let mut seen = vec![false; parts];
    let touched = window
        .iter()
        .filter(|(k, _)| !std::mem::replace(&mut seen[sub_part(hash_key(k), parts)], true))
        .count();
    if touched <= GROUPED {
        return as_they_come(vec![window], left, None);
    }
    let mut split = Parts::new(parts, 0);
    for row in window.into_iter().chain(left.by_ref()) {
        let s = sub_part(hash_key(&row.0), parts);
        if !split.push(s, row) {
            break;
        }
    }
    let front = (0..parts).flat_map(|s| split.take(s).1).collect();
    let held = split.take_reservation();
    as_they_come(front, left, held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryManager;
    use crate::plan::task::enter_task_memory;

    fn subs(rows: &[(u64, u64)], parts: usize) -> Vec<usize> {
        rows.iter()
            .map(|(k, _)| sub_part(hash_key(k), parts))
            .collect()
    }

    /// 200 k rows whose keys are spread over every sub-table, in arrival order.
    fn scattered() -> Vec<(u64, u64)> {
        (0..200_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9) % 50_000, i))
            .collect()
    }

    #[test]
    fn scattered_rows_are_split_by_sub_table_every_row_once() {
        let rows = scattered();
        let ordered: Vec<_> = probe_order(rows.clone().into_iter(), 16).collect();
        assert!(subs(&ordered, 16).is_sorted(), "not in sub-table order");
        let (mut got, mut want) = (ordered, rows);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn grouped_rows_and_a_single_table_keep_their_order() {
        let mut rows = scattered();
        rows.sort_by_key(|(k, _)| sub_part(hash_key(k), 64));
        // Grouped by 64 sub-parts, probed by 16 sub-tables: each run stays in one.
        let ordered: Vec<_> = probe_order(rows.clone().into_iter(), 16).collect();
        assert_eq!(ordered, rows);
        let rows = scattered();
        let ordered: Vec<_> = probe_order(rows.clone().into_iter(), 1).collect();
        assert_eq!(ordered, rows);
    }

    #[test]
    fn past_the_budget_the_split_rows_come_first_then_the_rest_as_it_comes() {
        let _task = enter_task_memory(MemoryManager::new(1 << 20));
        let rows = scattered();
        let ordered: Vec<_> = probe_order(rows.clone().into_iter(), 16).collect();
        let split = subs(&ordered, 16).windows(2).position(|w| w[0] > w[1]);
        let split = split.expect("3 MB of rows split within a 1 MiB budget");
        assert!(split > WINDOW && split < rows.len() / 2, "split {split}");
        // After the split rows, the rest in their arrival order.
        let rest = &ordered[split + 1..];
        assert_eq!(rest, &rows[rows.len() - rest.len()..]);
        let (mut got, mut want) = (ordered, rows);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
