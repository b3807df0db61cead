//! `ember history`: one self-contained HTML page from an event log, and a list of logs.
//!
//! The page has no script and loads nothing: styles are inline and the drawings are SVG
//! written here, so it opens from a laptop's disk after `scp`, offline.

mod html;
pub mod model;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::events::read_events;
pub use model::App;

/// The report of the event log at `log`, as HTML.
pub fn report(log: &Path) -> Result<String> {
    let app = App::from_events(&read_events(log)?);
    if app.app_id.is_empty() {
        return Err(Error::Other(format!(
            "{} has no application_start event: not an ember event log",
            log.display()
        )));
    }
    Ok(html::page(&app))
}

/// One line per event log in `dir` (newest last): application, start, duration, status.
pub fn list(dir: &Path) -> Result<String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Other(format!("cannot list {}: {e}", dir.display())))?;
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    logs.sort();
    let mut out = format!(
        "{:<40} {:<20} {:>10}  {}\n",
        "application", "start", "duration", "status"
    );
    for path in logs {
        let line = match read_events(&path) {
            Ok(events) => {
                let app = App::from_events(&events);
                format!(
                    "{:<40} {:<20} {:>9.1}s  {}",
                    app.app_id,
                    time(app.start_us),
                    app.seconds(),
                    app.status
                )
            }
            Err(e) => format!("{:<40} unreadable: {e}", path.display()),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// A time of the log as `2026-12-01T14:20:00Z`.
pub(crate) fn time(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Text made safe inside HTML elements and attributes.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One colour per stage of the application, in order of first appearance.
pub(crate) struct Colours(BTreeMap<(u64, u32), usize>);

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
    "#86bcb6", "#bab0ac",
];

impl Colours {
    pub fn new(app: &App) -> Colours {
        let mut map = BTreeMap::new();
        for job in &app.jobs {
            for s in &job.stages {
                let n = map.len();
                map.entry((job.job, s.info.stage.0)).or_insert(n);
            }
        }
        Colours(map)
    }

    pub fn of(&self, job: u64, stage: u32) -> String {
        let i = self.0.get(&(job, stage)).copied().unwrap_or(0);
        PALETTE[i % PALETTE.len()].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventLog, StageInfo};
    use crate::ids::{ExecutorId, StageId};
    use crate::protocol::{ExecutorInfo, TaskMetrics, TaskTiming};

    fn executor(id: usize) -> ExecutorInfo {
        ExecutorInfo {
            id: ExecutorId(id),
            host: "node".into(),
            pid: 1,
            node: 1,
            node_rank: id - 1,
            node_size: 2,
            numa_domain: 0,
            cores: vec![],
            pinned: false,
            threads: 1,
            memory_budget: 1 << 30,
            in_process: false,
        }
    }

    /// A job whose map stage ran and whose result stage failed on a `<b>`-bearing message.
    fn failed_app() -> Vec<Event> {
        let stage = |id: u32, kind: &str, parents: Vec<StageId>| StageInfo {
            stage: StageId(id),
            kind: kind.into(),
            shuffle: None,
            partitions: 1,
            parents,
            lineage: "(1) map [rdd 1]\n".into(),
        };
        let task = |stage: u32, executor: usize, failure: Option<&str>| Event::TaskEnd {
            job: 0,
            stage: StageId(stage),
            partition: 0,
            attempt: 0,
            executor,
            timing: TaskTiming {
                start_us: 1_000_000,
                end_us: 1_500_000,
                thread: 0,
            },
            metrics: TaskMetrics::default(),
            failure: failure.map(str::to_string),
        };
        vec![
            Event::ApplicationStart {
                schema: 1,
                app_id: "app-x".into(),
                command: vec!["job".into()],
                mode: "cluster".into(),
                time_us: 1_000_000,
                executors: vec![executor(1), executor(2)],
                settings: Default::default(),
            },
            Event::JobStart {
                job: 0,
                name: "collect".into(),
                time_us: 1_000_000,
                stages: vec![
                    stage(0, "shuffle_map", vec![]),
                    stage(1, "result", vec![StageId(0)]),
                ],
            },
            Event::StageStart {
                job: 0,
                stage: StageId(0),
                tasks: 1,
                time_us: 1_000_000,
            },
            task(0, 1, None),
            Event::StageEnd {
                job: 0,
                stage: StageId(0),
                tasks: 1,
                time_us: 1_600_000,
                metrics: TaskMetrics::default(),
            },
            Event::StageStart {
                job: 0,
                stage: StageId(1),
                tasks: 1,
                time_us: 1_600_000,
            },
            task(1, 2, Some("bad <b>input</b>")),
            Event::JobEnd {
                job: 0,
                time_us: 2_000_000,
                failure: Some("aborted".into()),
            },
            Event::ApplicationEnd {
                time_us: 2_000_000,
                status: "failed".into(),
                exit_code: 1,
                failure: Some("aborted".into()),
            },
        ]
    }

    #[test]
    fn a_failed_application_reports_its_stages_executors_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::create(dir.path(), "app-x").unwrap();
        for e in failed_app() {
            log.write(&e);
        }
        let html = report(log.path()).unwrap();
        assert_eq!(html.matches("class=\"stage-node\"").count(), 2);
        assert_eq!(html.matches("class=\"executor-row\"").count(), 2);
        assert!(
            html.contains("data-stage=\"1\" data-status=\"failed\""),
            "{html}"
        );
        assert!(
            html.contains("bad &lt;b&gt;input&lt;/b&gt;"),
            "escaped failure"
        );
        assert!(!html.contains("<b>input"));
        assert!(!html.contains("http://") && !html.contains("<script"));
        let list = list(dir.path()).unwrap();
        assert!(
            list.lines()
                .any(|l| l.starts_with("app-x") && l.ends_with("failed")),
            "{list}"
        );
    }

    #[test]
    fn a_stage_that_ended_failing_shows_why_and_one_run_again_is_done() {
        let failed = Event::StageFailed {
            job: 0,
            stage: StageId(1),
            time_us: 1_700_000,
            failure: "task 0 failed 4 times: <i>bad</i>".into(),
        };
        let mut events = failed_app();
        let end = events.len() - 2;
        events.insert(end, failed.clone());
        let app = model::App::from_events(&events);
        let stage = &app.jobs[0].stages[1];
        assert_eq!((stage.status(), stage.end_us), ("failed", Some(1_700_000)));
        let html = html::page(&app);
        assert!(
            html.contains("failed: task 0 failed 4 times: &lt;i&gt;bad&lt;/i&gt;"),
            "{html}"
        );
        // Its lost input made again, the stage starts again and ends.
        events.insert(
            end + 1,
            Event::StageStart {
                job: 0,
                stage: StageId(1),
                tasks: 1,
                time_us: 1_800_000,
            },
        );
        events.insert(
            end + 2,
            Event::StageEnd {
                job: 0,
                stage: StageId(1),
                tasks: 1,
                time_us: 1_900_000,
                metrics: TaskMetrics::default(),
            },
        );
        let app = model::App::from_events(&events);
        assert_eq!(app.jobs[0].stages[1].status(), "done");
    }

    #[test]
    fn a_file_that_is_not_an_event_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(
            &path,
            "{\"event\":\"job_end\",\"job\":0,\"time_us\":1,\"failure\":null}\n",
        )
        .unwrap();
        assert!(
            report(&path)
                .unwrap_err()
                .to_string()
                .contains("no application_start")
        );
        std::fs::write(&path, "hello\nworld\n").unwrap();
        assert!(report(&path).unwrap_err().to_string().contains("line 1"));
    }
}
