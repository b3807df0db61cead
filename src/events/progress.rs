//! Progress shows each running stage's tasks, records, bytes, time and an estimate.
//!
//! On a terminal, a live bar per stage (indicatif); elsewhere (a Slurm output file, a
//! pipe), plain log lines at most every few seconds, so a short job prints none and a long
//! one reads as a steady record.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ByteSize;
pub use crate::config::ProgressMode;
use crate::events::Event;
use crate::ids::StageId;

/// Plain lines: how often, at most.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);
/// Plain lines under `--progress always`: how often, at most (and one per finished stage).
const ALWAYS_INTERVAL: Duration = Duration::from_secs(1);

pub struct Progress {
    /// The live bars, on a terminal.
    bars: Option<MultiProgress>,
    interval: Duration,
    /// Print a line when a stage finishes (`always`).
    stage_ends: bool,
    last_print: Instant,
    running: BTreeMap<(u64, StageId), StageProgress>,
}

struct StageProgress {
    tasks: usize,
    done: usize,
    read: (u64, u64),
    written: (u64, u64),
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// The display `mode` asks for, or `None` (`never`).
    pub fn new(mode: ProgressMode) -> Option<Progress> {
        let terminal = std::io::stderr().is_terminal();
        let bars = terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let (interval, stage_ends) = match mode {
            ProgressMode::Never => return None,
            ProgressMode::Auto => (PLAIN_INTERVAL, false),
            ProgressMode::Always => (ALWAYS_INTERVAL, true),
        };
        Some(Progress {
            bars,
            interval,
            stage_ends,
            last_print: Instant::now(),
            running: BTreeMap::new(),
        })
    }

    pub fn on_event(&mut self, event: &Event) {
        match event {
            Event::StageStart {
                job, stage, tasks, ..
            } => {
                let bar = self
                    .bars
                    .as_ref()
                    .map(|m| m.add(new_bar(*job, *stage, *tasks)));
                let p = StageProgress {
                    tasks: *tasks,
                    done: 0,
                    read: (0, 0),
                    written: (0, 0),
                    started: Instant::now(),
                    bar,
                };
                self.running.insert((*job, *stage), p);
            }
            Event::TaskEnd {
                job,
                stage,
                metrics,
                failure: None,
                ..
            } => {
                if let Some(p) = self.running.get_mut(&(*job, *stage)) {
                    p.done += 1;
                    p.read.0 += metrics.shuffle_read_records;
                    p.read.1 += metrics.shuffle_read_bytes;
                    p.written.0 += metrics.shuffle_write_records;
                    p.written.1 += metrics.shuffle_write_bytes + metrics.result_bytes;
                    if let Some(bar) = &p.bar {
                        bar.set_position(p.done as u64);
                        bar.set_message(p.counts());
                    }
                }
                self.maybe_print();
            }
            Event::StageFailed { job, stage, .. } => {
                if let Some(bar) = self.running.remove(&(*job, *stage)).and_then(|p| p.bar) {
                    bar.abandon();
                }
            }
            Event::StageEnd { job, stage, .. } => {
                if let Some(p) = self.running.remove(&(*job, *stage)) {
                    if let Some(bar) = &p.bar {
                        bar.finish_and_clear();
                    } else if self.stage_ends {
                        tracing::info!("progress: {}", p.line(*job, *stage));
                    }
                }
            }
            Event::JobEnd { job, .. } => {
                // A failed job leaves its stages running: clear them.
                let gone: Vec<_> = self
                    .running
                    .keys()
                    .filter(|k| k.0 == *job)
                    .copied()
                    .collect();
                for key in gone {
                    if let Some(bar) = self.running.remove(&key).and_then(|p| p.bar) {
                        bar.abandon();
                    }
                }
            }
            _ => {}
        }
    }

    /// Plain mode: one line per running stage, if the last lines are old enough.
    fn maybe_print(&mut self) {
        if self.bars.is_some() || self.last_print.elapsed() < self.interval {
            return;
        }
        self.last_print = Instant::now();
        for ((job, stage), p) in &self.running {
            tracing::info!("progress: {}", p.line(*job, *stage));
        }
    }
}

fn new_bar(job: u64, stage: StageId, tasks: usize) -> ProgressBar {
    let bar = ProgressBar::new(tasks as u64);
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} tasks {msg} {elapsed} (eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("job {job} stage {stage}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl StageProgress {
    fn counts(&self) -> String {
        format!(
            "read {} records ({}), wrote {} records ({})",
            self.read.0,
            ByteSize(self.read.1),
            self.written.0,
            ByteSize(self.written.1)
        )
    }

    fn line(&self, job: u64, stage: StageId) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let estimate = if self.done == 0 {
            "unknown".to_string()
        } else {
            let left = elapsed / self.done as f64 * (self.tasks - self.done.min(self.tasks)) as f64;
            format!("{left:.1} s")
        };
        format!(
            "job {job} stage {stage}: {}/{} tasks, {}, {elapsed:.1} s, {estimate} left",
            self.done,
            self.tasks,
            self.counts()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_nothing_and_lines_count_tasks() {
        assert!(Progress::new(ProgressMode::Never).is_none());
        let p = StageProgress {
            tasks: 4,
            done: 1,
            read: (10, 2048),
            written: (3, 100),
            started: Instant::now(),
            bar: None,
        };
        let line = p.line(2, StageId(1));
        assert!(
            line.starts_with("job 2 stage 1: 1/4 tasks, read 10 records (2.0 KiB)"),
            "{line}"
        );
    }
}
