//! An application as the report draws it, folded from its events.

use crate::events::{Event, StageInfo};
use crate::protocol::{ExecutorInfo, TaskMetrics, TaskTiming};

/// One task attempt.
#[derive(Debug, Clone)]
pub struct Task {
    pub partition: u32,
    pub attempt: u32,
    pub executor: usize,
    pub timing: TaskTiming,
    pub metrics: TaskMetrics,
    pub failure: Option<String>,
}

impl Task {
    pub fn seconds(&self) -> f64 {
        self.timing.end_us.saturating_sub(self.timing.start_us) as f64 / 1e6
    }

    /// Bytes the task moved: read from shuffles plus written or sent.
    pub fn bytes(&self) -> u64 {
        let m = &self.metrics;
        m.shuffle_read_bytes + m.shuffle_write_bytes + m.result_bytes
    }
}

/// One stage of one job.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub info: StageInfo,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Why it ended without every task succeeding, if it did (and did not run again).
    pub failure: Option<String>,
    pub tasks: Vec<Task>,
    /// The sum over its successful tasks (from `stage_end`).
    pub metrics: Option<TaskMetrics>,
}

#[derive(Debug, Clone)]
pub struct JobRun {
    pub job: u64,
    pub name: String,
    pub start_us: u64,
    pub end_us: Option<u64>,
    pub failure: Option<String>,
    pub stages: Vec<StageRun>,
}

#[derive(Debug, Clone)]
pub struct ExchangeRun {
    pub job: u64,
    pub shuffle: u32,
    pub mode: String,
    pub bytes: u64,
    pub cross_node: u64,
    pub rounds: u32,
    pub seconds: f64,
}

/// A whole application.
#[derive(Debug, Clone, Default)]
pub struct App {
    pub app_id: String,
    pub command: Vec<String>,
    pub mode: String,
    pub start_us: u64,
    pub end_us: Option<u64>,
    /// `succeeded`, `failed`, or `incomplete` (the log ends without an end).
    pub status: String,
    pub failure: Option<String>,
    pub executors: Vec<ExecutorInfo>,
    pub settings: Vec<(String, String)>,
    pub jobs: Vec<JobRun>,
    pub exchanges: Vec<ExchangeRun>,
    /// (rank, bytes), 0 the driver.
    pub memory_peaks: Vec<(usize, u64)>,
    /// The last time any event mentions.
    pub last_us: u64,
}

impl App {
    /// Folds `events` into an application.
    pub fn from_events(events: &[Event]) -> App {
        let mut app = App {
            status: "incomplete".into(),
            ..App::default()
        };
        for event in events {
            app.apply(event);
        }
        app
    }

    fn stage(&mut self, job: u64, stage: u32) -> Option<&mut StageRun> {
        let job = self.jobs.iter_mut().rev().find(|j| j.job == job)?;
        job.stages.iter_mut().find(|s| s.info.stage.0 == stage)
    }

    fn seen(&mut self, time_us: u64) {
        self.last_us = self.last_us.max(time_us);
    }

    fn apply(&mut self, event: &Event) {
        match event.clone() {
            Event::ApplicationStart {
                app_id,
                command,
                mode,
                time_us,
                executors,
                settings,
                ..
            } => {
                (self.app_id, self.command, self.mode) = (app_id, command, mode);
                (self.start_us, self.executors) = (time_us, executors);
                self.settings = settings.into_iter().collect();
                self.seen(time_us);
            }
            Event::JobStart {
                job,
                name,
                time_us,
                stages,
            } => {
                let stages = stages.into_iter().map(StageRun::planned).collect();
                self.jobs.push(JobRun {
                    job,
                    name,
                    start_us: time_us,
                    end_us: None,
                    failure: None,
                    stages,
                });
                self.seen(time_us);
            }
            stage @ (Event::StageSkipped { .. }
            | Event::StageStart { .. }
            | Event::TaskEnd { .. }
            | Event::StageEnd { .. }
            | Event::StageFailed { .. }) => self.apply_stage_event(stage),
            Event::Exchange {
                job,
                shuffle,
                mode,
                bytes,
                cross_node,
                rounds,
                seconds,
                time_us,
            } => {
                self.exchanges.push(ExchangeRun {
                    job,
                    shuffle: shuffle.0,
                    mode,
                    bytes,
                    cross_node,
                    rounds,
                    seconds,
                });
                self.seen(time_us);
            }
            Event::JobEnd {
                job,
                time_us,
                failure,
            } => {
                if let Some(j) = self.jobs.iter_mut().rev().find(|j| j.job == job) {
                    (j.end_us, j.failure) = (Some(time_us), failure);
                }
                self.seen(time_us);
            }
            Event::ShuffleRemoved { time_us, .. } => self.seen(time_us),
            Event::MemoryPeaks { peaks, .. } => self.memory_peaks = peaks,
            Event::ApplicationEnd {
                time_us,
                status,
                failure,
                ..
            } => {
                (self.end_us, self.status, self.failure) = (Some(time_us), status, failure);
                self.seen(time_us);
            }
        }
    }

    /// [`App::apply`] for the events of one stage and its tasks.
    fn apply_stage_event(&mut self, event: Event) {
        match event {
            Event::StageSkipped {
                job, stage, reason, ..
            } => {
                if let Some(s) = self.stage(job, stage.0) {
                    s.skipped = Some(reason);
                }
            }
            Event::StageStart {
                job,
                stage,
                time_us,
                ..
            } => {
                if let Some(s) = self.stage(job, stage.0) {
                    // A stage run again (after an executor left) keeps its first start.
                    s.start_us.get_or_insert(time_us);
                    (s.skipped, s.failure, s.end_us) = (None, None, None);
                }
                self.seen(time_us);
            }
            Event::TaskEnd {
                job,
                stage,
                partition,
                attempt,
                executor,
                timing,
                metrics,
                failure,
            } => {
                let task = Task {
                    partition,
                    attempt,
                    executor,
                    timing,
                    metrics,
                    failure,
                };
                self.seen(timing.end_us);
                if let Some(s) = self.stage(job, stage.0) {
                    s.tasks.push(task);
                }
            }
            Event::StageEnd {
                job,
                stage,
                time_us,
                metrics,
                ..
            } => {
                if let Some(s) = self.stage(job, stage.0) {
                    s.end_us = Some(time_us);
                    let mut sum = s.metrics.unwrap_or_default();
                    sum.add(&metrics);
                    s.metrics = Some(sum);
                }
                self.seen(time_us);
            }
            Event::StageFailed {
                job,
                stage,
                time_us,
                failure,
            } => {
                if let Some(s) = self.stage(job, stage.0) {
                    (s.end_us, s.failure) = (Some(time_us), Some(failure));
                }
                self.seen(time_us);
            }
            _ => {}
        }
    }

    /// Seconds from start to end (or to the last event of an incomplete log).
    pub fn seconds(&self) -> f64 {
        self.end_us
            .unwrap_or(self.last_us)
            .saturating_sub(self.start_us) as f64
            / 1e6
    }

    /// Every task of every job, with its job and stage.
    pub fn tasks(&self) -> impl Iterator<Item = (&JobRun, &StageRun, &Task)> {
        self.jobs.iter().flat_map(|j| {
            j.stages
                .iter()
                .flat_map(move |s| s.tasks.iter().map(move |t| (j, s, t)))
        })
    }
}

impl StageRun {
    fn planned(info: StageInfo) -> StageRun {
        StageRun {
            info,
            start_us: None,
            end_us: None,
            skipped: None,
            failure: None,
            tasks: Vec::new(),
            metrics: None,
        }
    }

    /// `done`, `skipped`, `failed` (ended failing, or started and never ended) or `not
    /// run`.
    pub fn status(&self) -> &'static str {
        if self.failure.is_some() {
            return "failed";
        }
        match (self.skipped.is_some(), self.start_us, self.end_us) {
            (_, _, Some(_)) => "done",
            (true, _, _) => "skipped",
            (false, Some(_), None) => "failed",
            (false, None, None) => "not run",
        }
    }
}
