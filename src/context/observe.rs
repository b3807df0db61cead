//! The driver's listeners for one application: where the event log goes, and its first
//! and last events.

use std::path::PathBuf;

use crate::config::EngineArgs;
use crate::context::Mode;
use crate::context::runtime::Runtime;
use crate::events::log::{DEFAULT_DIR, new_app_id};
use crate::events::{Event, EventLog, Listeners, Progress, ProgressMode, SCHEMA_VERSION};
use crate::protocol::metrics::now_us;
use crate::sync::lock;

/// Where this application's event log goes: `--event-log DIR`, else (with `defaults`, a
/// job started by `Context::init`) `ember-events/` in the working directory; `None` when
/// turned off. Contexts made in tests (`local_with`) log only when asked.
fn event_log_dir(config: &EngineArgs, defaults: bool) -> Option<PathBuf> {
    if config.no_event_log {
        return None;
    }
    config
        .event_log
        .clone()
        .or_else(|| defaults.then(|| PathBuf::from(DEFAULT_DIR)))
}

impl Runtime {
    /// On the driver: opens the event log and the progress display, and writes the
    /// application's start. A log that cannot be created is a warning, not a failure.
    pub(crate) fn start_listeners(&self, defaults: bool) {
        let mode = match (defaults, self.config.progress) {
            // Tests' contexts show progress only when asked for explicitly.
            (false, ProgressMode::Auto) => ProgressMode::Never,
            (_, mode) => mode,
        };
        let mut listeners = Listeners {
            log: None,
            progress: Progress::new(mode),
        };
        if let Some(dir) = event_log_dir(&self.config, defaults) {
            let app_id = new_app_id();
            match EventLog::create(&dir, &app_id) {
                Ok(log) => {
                    tracing::info!("event log: {}", log.path().display());
                    listeners.log = Some(log);
                    listeners.post(&self.application_start(app_id));
                }
                Err(e) => tracing::warn!("{e}; this application writes no event log"),
            }
        }
        lock(&self.driver).events = listeners;
    }

    fn application_start(&self, app_id: String) -> Event {
        Event::ApplicationStart {
            schema: SCHEMA_VERSION,
            app_id,
            command: std::env::args().collect(),
            mode: match self.mode {
                Mode::Local => "local".into(),
                Mode::Cluster => "cluster".into(),
            },
            time_us: now_us(),
            executors: self.table.iter().cloned().collect(),
            settings: self.config.settings(),
        }
    }

    /// Posts `event` to the driver's listeners.
    pub(crate) fn post(&self, event: &Event) {
        lock(&self.driver).events.post(event);
    }

    /// The application ended cleanly: writes the memory peaks (rank, bytes) and the end.
    pub(crate) fn end_listeners(&self, peaks: Vec<(usize, u64)>) {
        let mut state = lock(&self.driver);
        let Some(log) = state.events.log.take() else {
            return;
        };
        log.write(&Event::MemoryPeaks {
            time_us: now_us(),
            peaks,
        });
        log.close(&Event::ApplicationEnd {
            time_us: now_us(),
            status: "succeeded".into(),
            exit_code: 0,
            failure: None,
        });
    }
}
