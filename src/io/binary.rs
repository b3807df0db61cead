//! `binary_records`: fixed-size records of binary files, split on record boundaries.

use std::sync::Arc;

use crate::error::Result;
use crate::executor::task::TaskContext;
use crate::io::input::{FileSplit, InputFile, map_file};
use crate::rdd::batch::{BATCH_SIZE, BatchIter};
use crate::rdd::node::{Compute, Dependency, Node, RddId};

/// Records of `record_len` bytes. Every file's length is checked to be a multiple of
/// `record_len` when the RDD is made.
pub struct BinaryRecords {
    pub id: RddId,
    pub pattern: String,
    pub record_len: usize,
    pub files: Vec<InputFile>,
    pub splits: Vec<FileSplit>,
}

impl Node for BinaryRecords {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!(
            "binary_records {} ({} bytes each)",
            self.pattern, self.record_len
        )
    }
    fn num_partitions(&self) -> usize {
        self.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

impl Compute<Vec<u8>> for BinaryRecords {
    fn compute(self: Arc<Self>, split: usize, _tc: &TaskContext) -> Result<BatchIter<Vec<u8>>> {
        let s = self.splits[split];
        let Some(file) = self.files.get(s.file) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let Some(map) = map_file(&file.path)? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let len = self.record_len;
        let (mut pos, end) = (s.start as usize, s.end as usize);
        Ok(Box::new(std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let stop = (pos + BATCH_SIZE * len).min(end);
            let batch = map[pos..stop]
                .chunks_exact(len)
                .map(<[u8]>::to_vec)
                .collect();
            pos = stop;
            Some(Ok(batch))
        })))
    }
}
