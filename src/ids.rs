//! Ids as types: an RDD, a shuffle, a stage and an executor keep their meaning in messages and errors.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// An RDD within a job. Every rank numbers RDDs in creation order, so the same program
    /// gives the same ids everywhere (that is how executors find work without code).
    RddId(u32)
);

id_type!(
    /// A shuffle; numbered in creation order on every rank, like RDDs.
    ShuffleId(u32)
);

id_type!(
    /// A stage of a job: its index in the plan (parents first, the result stage last).
    StageId(u32)
);

impl StageId {
    /// The stage's position in the plan's list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

id_type!(
    /// An executor: its rank in the world group (the driver is rank 0), so it is also the
    /// address messages to it go to.
    ExecutorId(usize)
);

impl ExecutorId {
    /// The world rank to send to.
    pub fn rank(self) -> usize {
        self.0
    }
}

impl From<usize> for ExecutorId {
    fn from(rank: usize) -> Self {
        ExecutorId(rank)
    }
}
