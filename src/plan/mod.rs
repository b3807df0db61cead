//! The plan: what every lineage node is, how a job's lineage splits into stages, and what a
//! task computes with.
//!
//! Below the scheduler and the executors, above the stores: the scheduler plans through
//! [`stage::plan`], executors run [`job::Job`]s' stages with a [`task::TaskContext`], and the
//! user API (`rdd/`) implements [`node::Node`] and [`node::Compute`]. No MPI here.

pub mod accumulators;
pub mod batch;
pub mod explain;
pub mod job;
pub mod node;
pub mod shuffle_dep;
pub mod stage;
pub mod task;

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What an RDD can hold: plain data that can cross ranks.
pub trait Data: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Data for T {}

/// What can be a key: data that hashes and compares.
pub trait Key: Data + Hash + Eq {}
impl<T: Data + Hash + Eq> Key for T {}
