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
