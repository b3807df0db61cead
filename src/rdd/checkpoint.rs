//! Checkpoints: partitions written to a shared directory; the RDD that reads them back has
//! no lineage, and a job started again with the same directory resumes from it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::codec;
use crate::error::{Error, Result};
use crate::io::output::part_name;
use crate::plan::batch::{BatchIter, batched};
use crate::plan::node::{Compute, Dependency, Node, RddId};
use crate::plan::task::TaskContext;
use crate::rdd::{Data, Rdd, SaveOptions};

/// The marker a complete checkpoint carries, beside `_SUCCESS`.
const MARKER: &str = "_CHECKPOINT";

/// Partitions of a checkpoint directory: `part-NNNNN` files of encoded records.
pub struct CheckpointRdd<T> {
    pub id: RddId,
    pub dir: PathBuf,
    pub partitions: usize,
    /// The checkpointed RDD's partitioner: part `i` holds its partition `i`.
    pub partitioner: Option<crate::shuffle::partitioner::Partitioner>,
    pub _records: std::marker::PhantomData<fn() -> T>,
}

impl<T: Data> Node for CheckpointRdd<T> {
    fn id(&self) -> RddId {
        self.id
    }
    fn describe(&self) -> String {
        format!("checkpoint {}", self.dir.display())
    }
    fn num_partitions(&self) -> usize {
        self.partitions
    }
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
    fn partitioner(&self) -> Option<crate::shuffle::partitioner::Partitioner> {
        self.partitioner.clone()
    }
}

impl<T: Data> Compute<T> for CheckpointRdd<T> {
    fn compute(self: Arc<Self>, split: usize, tc: &TaskContext) -> Result<BatchIter<T>> {
        tc.count_source_partition();
        let path = self.dir.join(part_name(split));
        let mut records = Vec::new();
        if let Some(map) = crate::io::input::map_file(&path)? {
            codec::decode_all_into(&map, &mut records).map_err(|e| {
                Error::Other(format!("{}: corrupt checkpoint: {e}", path.display()))
            })?;
        }
        Ok(batched(records.into_iter()))
    }
}

/// Fault injection for tests ([`crate::faults::stop_after_checkpoint`]): fails the job on
/// every rank alike right after its N-th checkpoint, as if it were killed.
fn stop_for_test() -> Result<()> {
    match crate::faults::stop_after_checkpoint() {
        Some(written) => Err(Error::Other(format!(
            "stopped after {written} checkpoint(s) (test)"
        ))),
        None => Ok(()),
    }
}

/// What `_CHECKPOINT` says: which lineage, how many partitions and in which record
/// format (a checkpoint written in another format is computed again, not misread).
fn marker_text(fingerprint: u64, partitions: usize) -> String {
    format!(
        "fingerprint {fingerprint:016x}\npartitions {partitions}\nformat {}\n",
        codec::FORMAT
    )
}

impl<T: Data> Rdd<T> {
    /// Writes every partition to `dir` (a directory all ranks share) and returns an RDD
    /// that reads them back, with no lineage behind it. If `dir` already holds a complete
    /// checkpoint of this same lineage (a job started again after a failure, a requeue
    /// or a time limit), nothing is computed: the job resumes from it.
    ///
    /// ```
    /// # use ember::{Context, config::EngineArgs};
    /// # let ctx = Context::local_with(&EngineArgs::default());
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path().join("ranks");
    /// let ranks = ctx.range(0, 100, Some(4)).map(|v| (v, 1.0 / (v + 1) as f64));
    /// let saved = ranks.checkpoint(&dir)?; // computes and writes the partitions
    /// assert_eq!(saved.count()?, 100); // read back from `dir`
    /// // The same lineage and directory in a job started again: read, not computed.
    /// let again = ctx.range(0, 100, Some(4)).map(|v| (v, 1.0 / (v + 1) as f64));
    /// assert_eq!(again.checkpoint(&dir)?.collect()?, saved.collect()?);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn checkpoint(&self, dir: impl Into<PathBuf>) -> Result<Rdd<T>> {
        let dir = dir.into();
        let partitions = self.num_partitions();
        let fingerprint =
            crate::plan::stage::fingerprint(&crate::plan::node::erase(&self.node), &[]);
        let marker = marker_text(fingerprint, partitions);
        let complete = dir.join("_SUCCESS").exists()
            && std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m == marker);
        if complete {
            if self.rt.role == crate::context::Role::Driver {
                tracing::info!("resumed from checkpoint {}", dir.display());
            }
        } else {
            self.save_with(
                "checkpoint",
                &dir,
                SaveOptions { overwrite: true },
                |x, w| w.write_all(&codec::encode(x)),
            )?;
            if self.rt.role == crate::context::Role::Driver {
                let path = dir.join(MARKER);
                std::fs::write(&path, &marker).map_err(|e| Error::io(&path, e))?;
                tracing::info!(
                    "checkpointed {partitions} partition(s) to {}",
                    dir.display()
                );
            }
            stop_for_test()?;
        }
        Ok(Rdd {
            node: Arc::new(CheckpointRdd {
                id: self.rt.new_rdd_id(),
                dir,
                partitions,
                partitioner: self.node.partitioner(),
                _records: std::marker::PhantomData,
            }),
            rt: Arc::clone(&self.rt),
            distinct_of: None,
        })
    }
}
