//! EventLog writes the driver's events as JSON lines, one file per application.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::events::Event;
use crate::protocol::metrics::now_us;

/// The default directory of event logs, relative to the driver's working directory (the
/// submit directory under Slurm, so the log lands on the shared file system, not on a
/// node's `/tmp`).
pub const DEFAULT_DIR: &str = "ember-events";

/// An open event log. Each event is one `write` of one line to an unbuffered file: a
/// process that dies leaves every line written before it, whole.
#[derive(Clone)]
pub struct EventLog {
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

impl EventLog {
    /// Creates `dir/app_id.jsonl` (and `dir`); refuses to overwrite an existing log.
    pub fn create(dir: &Path, app_id: &str) -> Result<EventLog> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Other(format!("event log directory {}: {e}", dir.display())))?;
        let path = dir.join(format!("{app_id}.jsonl"));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::Other(format!("event log {}: {e}", path.display())))?;
        let log = EventLog {
            path,
            file: Arc::new(Mutex::new(Some(file))),
        };
        log.write_last_words_on_fatal();
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event`. A failed write is logged once and ends the log (the job goes on).
    pub fn write(&self, event: &Event) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        append(&mut file, &self.path, event);
    }

    /// A fatal error (an aborted job, a lost executor, a panic on the driver) or a signal
    /// ends the log with an `application_end` that carries it, before the process goes
    /// down. Another thread holds the file for one write at most, so the lock is tried
    /// for a moment, never waited on: a thread that fails while holding it must not hang
    /// the abort.
    fn write_last_words_on_fatal(&self) {
        let log = self.clone();
        crate::failure::set_last_words(Some(Box::new(move |message: &str| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
            let try_lock = || match log.file.try_lock() {
                Ok(file) => Some(file),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let mut locked = try_lock();
            while locked.is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
                locked = try_lock();
            }
            if let Some(mut file) = locked {
                let end = Event::ApplicationEnd {
                    time_us: now_us(),
                    status: "failed".into(),
                    exit_code: 1,
                    failure: Some(message.to_string()),
                };
                append(&mut file, &log.path, &end);
                *file = None;
            }
        })));
    }

    /// Writes the final event and closes the log (later events are dropped).
    pub fn close(&self, last: &Event) {
        crate::failure::set_last_words(None);
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        append(&mut file, &self.path, last);
        *file = None;
    }
}

fn append(file: &mut Option<File>, path: &Path, event: &Event) {
    let Some(f) = file.as_mut() else { return };
    let written = serde_json::to_string(event)
        .map_err(std::io::Error::other)
        .and_then(|mut line| {
            line.push('\n');
            f.write_all(line.as_bytes())
        });
    if let Err(e) = written {
        tracing::warn!(
            "event log {}: {e}; no more events are written",
            path.display()
        );
        *file = None;
    }
}

/// Reads an event log back. A last line cut short (the process died while writing it) is
/// dropped; any other malformed line is an error naming its number.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Other(format!("cannot read event log {}: {e}", path.display())))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::Other(format!(
                    "event log {} line {}: {e}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(events)
}

/// A new application's id: its start time and the driver's pid, sortable by time.
pub fn new_app_id() -> String {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("app-{stamp}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_a_cut_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::create(dir.path(), "app-test").unwrap();
        let job = Event::JobEnd {
            job: 3,
            time_us: 5,
            failure: Some("boom".into()),
        };
        log.write(&job);
        log.close(&Event::MemoryPeaks {
            time_us: 6,
            peaks: vec![(0, 7)],
        });
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        let events = read_events(log.path()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], job);
        text.push_str("{\"event\":\"job_e");
        std::fs::write(log.path(), &text).unwrap();
        assert_eq!(read_events(log.path()).unwrap().len(), 2);
        assert!(
            EventLog::create(dir.path(), "app-test").is_err(),
            "overwrote"
        );
    }
}
