//! ExecutorTable is the driver's list of registered executors, printed at start.

use std::fmt;

use crate::config::ByteSize;
use crate::ids::ExecutorId;
use crate::protocol::ExecutorInfo;

/// Every registered executor, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutorTable {
    executors: Vec<ExecutorInfo>,
}

impl ExecutorTable {
    pub fn new(mut executors: Vec<ExecutorInfo>) -> Self {
        executors.sort_by_key(|e| e.id);
        ExecutorTable { executors }
    }

    pub fn len(&self) -> usize {
        self.executors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.executors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ExecutorInfo> {
        self.executors.iter()
    }

    pub fn get(&self, id: impl Into<ExecutorId>) -> Option<&ExecutorInfo> {
        let id = id.into();
        self.executors.iter().find(|e| e.id == id)
    }

    /// Every executor runs on one node (one shared-memory domain: they share its page
    /// cache, and a shuffle among them reads its blocks in place).
    pub fn one_node(&self) -> bool {
        let mut nodes = self.iter().map(|e| e.node);
        let first = nodes.next();
        nodes.all(|n| Some(n) == first)
    }

    /// Sum of the executors' worker threads.
    pub fn total_threads(&self) -> usize {
        self.executors.iter().map(|e| e.threads).sum()
    }
}

fn core_list(cores: &[u32]) -> String {
    cores
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for ExecutorTable {
    /// One header line and one line per executor, columns separated by runs of spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<9} {:<20} {:>8} {:>5} {:>5} {:<12} {:>7} {:>12}",
            "executor", "host", "pid", "local", "numa", "cores", "threads", "memory"
        )?;
        for e in &self.executors {
            let cores = if e.pinned {
                core_list(&e.cores)
            } else {
                "unpinned".to_string()
            };
            let id = if e.in_process {
                format!("{} (local)", e.id)
            } else {
                e.id.to_string()
            };
            writeln!(
                f,
                "{:<9} {:<20} {:>8} {:>5} {:>5} {:<12} {:>7} {:>12}",
                id,
                e.host,
                e.pid,
                e.node_rank,
                e.numa_domain,
                cores,
                e.threads,
                ByteSize(e.memory_budget).to_string()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: usize, pinned: bool) -> ExecutorInfo {
        ExecutorInfo {
            id: id.into(),
            host: "node1".into(),
            node: 1,
            pid: 100 + id as u32,
            node_rank: id - 1,
            node_size: 2,
            numa_domain: 0,
            cores: vec![id as u32 - 1],
            pinned,
            threads: 1,
            memory_budget: 1 << 30,
            in_process: false,
        }
    }

    #[test]
    fn table_is_sorted_and_prints_a_row_per_executor() {
        let t = ExecutorTable::new(vec![info(2, false), info(1, true)]);
        assert_eq!(t.iter().map(|e| e.id.rank()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(t.total_threads(), 2);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1]
                .split_whitespace()
                .eq(["1", "node1", "101", "0", "0", "0", "1", "1.0", "GiB"])
        );
        assert!(lines[2].contains("unpinned"));
    }

    #[test]
    fn executors_of_one_node_are_told_from_those_of_several() {
        let mut two = info(2, true);
        assert!(ExecutorTable::new(vec![info(1, true), two.clone()]).one_node());
        two.node = 2;
        assert!(!ExecutorTable::new(vec![info(1, true), two]).one_node());
        assert!(ExecutorTable::new(vec![info(1, true)]).one_node());
    }
}
