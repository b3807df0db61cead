//! TaskSet: the tasks of one stage on the driver — which wait, which run where, and which
//! executor gets the next one (bounded depth, required owners, locality, retry elsewhere).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::ids::ExecutorId;
use crate::protocol::ExecutorInfo;

/// How long a task whose cached input lives on a busy executor waits for it before it
/// runs elsewhere and recomputes the input (delay scheduling, Spark's
/// `spark.locality.wait`).
pub const LOCALITY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A task of the stage that has not finished.
pub struct Pending {
    /// Its position among the stage's requested partitions (the order of results).
    index: usize,
    partition: usize,
    attempt: u32,
    /// The executor it must run on: the owner of the shuffle blocks it reads.
    required: Option<ExecutorId>,
    /// The executor holding the cached blocks this task reads, if any (locality).
    preferred: Option<ExecutorId>,
    queued: Instant,
    /// The executor its last attempt failed on.
    avoid: Option<ExecutorId>,
}

impl Pending {
    pub fn new(
        index: usize,
        partition: usize,
        required: Option<ExecutorId>,
        preferred: Option<ExecutorId>,
    ) -> Self {
        Pending {
            index,
            partition,
            attempt: 0,
            required,
            preferred,
            queued: Instant::now(),
            avoid: None,
        }
    }
}

pub struct TaskSet {
    queue: VecDeque<Pending>,
    /// Tasks sent to an executor, by partition.
    running: HashMap<usize, Pending>,
    /// Executors in service, in assignment order, with their threads and tasks in flight.
    alive: Vec<ExecutorId>,
    threads: HashMap<ExecutorId, usize>,
    in_flight: HashMap<ExecutorId, usize>,
}

impl TaskSet {
    pub fn new<'a>(
        tasks: Vec<Pending>,
        in_service: impl Iterator<Item = &'a ExecutorInfo>,
    ) -> Self {
        let in_service: Vec<&ExecutorInfo> = in_service.collect();
        TaskSet {
            queue: tasks.into(),
            running: HashMap::new(),
            alive: in_service.iter().map(|e| e.id).collect(),
            threads: in_service.iter().map(|e| (e.id, e.threads)).collect(),
            in_flight: in_service.iter().map(|e| (e.id, 0)).collect(),
        }
    }

    /// Executors the stage runs on.
    pub fn executors(&self) -> usize {
        self.alive.len()
    }

    pub fn is_done(&self) -> bool {
        self.queue.is_empty() && self.running.is_empty()
    }

    /// Whether `partition`'s current attempt is `attempt` and running (else a report is stale).
    pub fn is_running(&self, partition: u32, attempt: u32) -> bool {
        self.running
            .get(&(partition as usize))
            .is_some_and(|t| t.attempt == attempt)
    }

    /// The attempt number of running task `partition`.
    pub fn attempt(&self, partition: usize) -> u32 {
        self.running.get(&partition).map_or(0, |t| t.attempt)
    }

    /// Marks running `partition` finished on `from`; returns its result index.
    pub fn done(&mut self, from: ExecutorId, partition: u32) -> usize {
        *self.in_flight.entry(from).or_default() -= 1;
        self.running
            .remove(&(partition as usize))
            .map_or(0, |t| t.index)
    }

    /// Queues running `partition` again, to run anywhere but `from` when it can.
    pub fn failed(&mut self, from: ExecutorId, partition: u32) {
        *self.in_flight.entry(from).or_default() -= 1;
        if let Some(mut task) = self.running.remove(&(partition as usize)) {
            task.attempt += 1;
            task.avoid = Some(from);
            self.queue.push_back(task);
        }
    }

    /// Finishes running `partition` on `from` without running it again, and drops every
    /// waiting task: the stage cannot complete, and ends once what runs has reported.
    pub fn abandon(&mut self, from: ExecutorId, partition: u32) {
        *self.in_flight.entry(from).or_default() -= 1;
        self.running.remove(&(partition as usize));
        self.queue.clear();
    }

    /// Moves waiting tasks to executors with room and returns (executor, partition) for
    /// each. Round-robin, one task per executor per pass: first up to one task per thread
    /// everywhere, then one more each so no thread idles while a report is in flight.
    pub fn assign(&mut self) -> Vec<(ExecutorId, usize)> {
        let mut sent = self.assign_round();
        // Nothing runs, yet tasks wait (to avoid an executor, or for one holding their
        // input): drop those wishes rather than wait for nothing.
        if self.running.is_empty() && !self.queue.is_empty() {
            self.queue.iter_mut().for_each(|t| {
                t.avoid = None;
                t.preferred = None;
            });
            sent.extend(self.assign_round());
        }
        sent
    }

    /// The first waiting partition when nothing runs and no executor in service can take
    /// it (its shuffle blocks live on an executor that left): waiting would hang.
    pub fn stuck(&self) -> Option<usize> {
        self.running
            .is_empty()
            .then(|| self.queue.front().map(|t| t.partition))
            .flatten()
    }

    fn assign_round(&mut self) -> Vec<(ExecutorId, usize)> {
        let mut sent = Vec::new();
        for extra in [0, 1] {
            loop {
                let mut assigned = false;
                for i in 0..self.alive.len() {
                    let e = self.alive[i];
                    if self.in_flight[&e] >= self.threads[&e] + extra {
                        continue;
                    }
                    let Some(task) = self.pick(e, extra).and_then(|at| self.queue.remove(at))
                    else {
                        continue;
                    };
                    *self.in_flight.entry(e).or_default() += 1;
                    sent.push((e, task.partition));
                    self.running.insert(task.partition, task);
                    assigned = true;
                }
                if !assigned {
                    break;
                }
            }
        }
        sent
    }

    /// The queue position of the task executor `e` should run next, if any.
    fn pick(&self, e: ExecutorId, extra: usize) -> Option<usize> {
        let several = self.alive.len() > 1;
        self.queue
            .iter()
            .position(|t| t.required == Some(e))
            .or_else(|| {
                // Locality: a task whose cached input lives here.
                self.queue
                    .iter()
                    .position(|t| t.required.is_none() && t.preferred == Some(e))
            })
            .or_else(|| {
                // Any other free task, but leave a task to the executor that holds its
                // cached input while that one has room, or for LOCALITY_WAIT while it is
                // busy.
                let elsewhere_free = |p: ExecutorId| {
                    self.in_flight
                        .get(&p)
                        .is_some_and(|&n| n < self.threads[&p] + extra)
                };
                self.queue.iter().position(|t| {
                    t.required.is_none()
                        && !(several && t.avoid == Some(e))
                        && t.preferred.is_none_or(|p| {
                            p == e || (!elsewhere_free(p) && t.queued.elapsed() > LOCALITY_WAIT)
                        })
                })
            })
    }
}
