//! `binary_records`: fixed-size records of binary files, split on record boundaries.

use std::sync::Arc;

use crate::codec::RawCodec;
use crate::error::{Error, Result};
use crate::io::input::FixedWidth;
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::task::TaskContext;
use crate::shuffle::range::sample_positions;

/// Records of `input.record_len` bytes, each turned into a `T` by `input.decode`. Every
/// file's length is checked to be a multiple of the record length when the RDD is made.
pub struct BinaryRecords<T> {
    pub id: RddId,
    pub pattern: String,
    pub input: FixedWidth<T>,
    /// The records' raw layout, when `T` is plain old data read as its bytes.
    pub raw: Option<RawCodec<T>>,
}

impl<T: 'static> Node for BinaryRecords<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!(
            "binary_records {} ({} bytes each)",
            self.pattern, self.input.record_len
        )
    }
    fn num_partitions(&self) -> usize {
        self.input.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn input_identity(&self) -> u64 {
        crate::io::input::identity(&self.input.files, &self.input.splits)
    }
}

impl<T: 'static> Compute<T> for BinaryRecords<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        tc.count_source_partition();
        let (len, decode, raw) = (self.input.record_len, self.input.decode, self.raw);
        self.input
            .batches(split, BATCH_SIZE, move |file, bytes, _| match &raw {
                // Plain old data is copied a batch at a time, not through a call per record.
                Some(raw) => {
                    let mut batch = Vec::with_capacity(bytes.len() / len);
                    raw.append(&[bytes], &mut batch)
                        .map(|()| batch)
                        .map_err(|e| Error::Other(format!("{}: {e}", file.path.display())))
                }
                None => Ok(bytes.chunks_exact(len).map(decode).collect()),
            })
    }

    fn raw_codec(&self) -> Option<RawCodec<T>> {
        self.raw
    }

    fn fixed_width(&self) -> Option<FixedWidth<T>> {
        Some(self.input.clone())
    }

    /// Reads the sampled records where they lie: a sort's sampling job then touches a few
    /// pages of the input instead of decoding all of it.
    fn sample(&self, split: usize, size: usize, seed: u64) -> Option<Result<(Vec<T>, u64)>> {
        let (s, _, map) = match self.input.map_split(split) {
            Ok(None) => return Some(Ok((Vec::new(), 0))),
            Err(e) => return Some(Err(e)),
            Ok(Some(mapped)) => mapped,
        };
        let len = self.input.record_len;
        let n = (s.end - s.start) / len as u64;
        let records = sample_positions(n, size, seed)
            .into_iter()
            .map(|i| {
                let at = s.start as usize + i as usize * len;
                (self.input.decode)(&map[at..at + len])
            })
            .collect();
        Some(Ok((records, n)))
    }
}
