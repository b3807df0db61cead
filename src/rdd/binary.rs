//! `binary_records`: fixed-size records of binary files, split on record boundaries.

use std::sync::Arc;

use crate::codec::RawCodec;
use crate::error::{Error, Result};
use crate::io::input::{FileSplit, FixedWidth, InputFile};
use crate::plan::batch::{BATCH_SIZE, BatchIter};
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::task::TaskContext;
use crate::shuffle::range::sample_positions;

/// Records of `record_len` bytes, each turned into a `T` by `decode`. Every file's length
/// is checked to be a multiple of `record_len` when the RDD is made.
pub struct BinaryRecords<T> {
    pub id: RddId,
    pub pattern: String,
    pub record_len: usize,
    pub files: Vec<InputFile>,
    pub splits: Vec<FileSplit>,
    pub decode: fn(&[u8]) -> T,
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
            self.pattern, self.record_len
        )
    }
    fn num_partitions(&self) -> usize {
        self.splits.len()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn input_identity(&self) -> u64 {
        crate::io::input::identity(&self.files, &self.splits)
    }
}

impl<T: 'static> Compute<T> for BinaryRecords<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        tc.count_source_partition();
        let s = self.splits[split];
        let Some(file) = self.files.get(s.file) else {
            return Ok(Box::new(std::iter::empty()));
        };
        let Some(map) = file.map()? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let (len, decode, raw) = (self.record_len, self.decode, self.raw);
        let (mut pos, end) = (s.start as usize, s.end as usize);
        let path = file.path.clone();
        Ok(Box::new(std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let stop = (pos + BATCH_SIZE * len).min(end);
            let bytes = &map[pos..stop];
            pos = stop;
            // Plain old data is copied a batch at a time, not through a call per record.
            let batch = match &raw {
                Some(raw) => {
                    let mut batch = Vec::with_capacity(bytes.len() / len);
                    raw.append(&[bytes], &mut batch)
                        .map(|()| batch)
                        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
                }
                None => Ok(bytes.chunks_exact(len).map(decode).collect()),
            };
            Some(batch)
        })))
    }

    fn raw_codec(&self) -> Option<RawCodec<T>> {
        self.raw
    }

    fn fixed_width(&self) -> Option<FixedWidth<T>> {
        Some(FixedWidth {
            record_len: self.record_len,
            files: self.files.clone(),
            splits: self.splits.clone(),
            decode: self.decode,
        })
    }

    /// Reads the sampled records where they lie: a sort's sampling job then touches a few
    /// pages of the input instead of decoding all of it.
    fn sample(&self, split: usize, size: usize, seed: u64) -> Option<Result<(Vec<T>, u64)>> {
        let s = self.splits[split];
        let map = match self.files.get(s.file).map(InputFile::map) {
            None | Some(Ok(None)) => return Some(Ok((Vec::new(), 0))),
            Some(Err(e)) => return Some(Err(e)),
            Some(Ok(Some(map))) => map,
        };
        let len = self.record_len;
        let n = (s.end - s.start) / len as u64;
        let records = sample_positions(n, size, seed)
            .into_iter()
            .map(|i| {
                let at = s.start as usize + i as usize * len;
                (self.decode)(&map[at..at + len])
            })
            .collect();
        Some(Ok((records, n)))
    }
}
