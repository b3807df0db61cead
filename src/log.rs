//! Logging: `tracing` lines prefixed with the role and rank that wrote them, for Slurm output files.
//!
//! Level from `EMBER_LOG` (else `RUST_LOG`, else `info`), e.g. `EMBER_LOG=debug` or
//! `EMBER_LOG=ember::scheduler=trace`. Lines go to stderr as
//! `  0.012s INFO  [driver 0] message`; threads of an in-process executor label themselves
//! with [`set_thread_label`].

use std::cell::RefCell;
use std::fmt;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static PROCESS_LABEL: RwLock<Option<String>> = RwLock::new(None);
static START: OnceLock<Instant> = OnceLock::new();

thread_local! {
    static THREAD_LABEL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets the label of this process's log lines, e.g. `driver 0`.
pub fn set_process_label(label: String) {
    *PROCESS_LABEL.write().unwrap_or_else(|p| p.into_inner()) = Some(label);
}

/// Overrides the label for lines written by the calling thread.
pub fn set_thread_label(label: String) {
    THREAD_LABEL.with(|l| *l.borrow_mut() = Some(label));
}

/// The label lines from this thread carry.
pub fn current_label() -> String {
    THREAD_LABEL
        .with(|l| l.borrow().clone())
        .or_else(|| {
            let label = PROCESS_LABEL.read().unwrap_or_else(|p| p.into_inner());
            label.clone()
        })
        .unwrap_or_else(|| "ember".to_string())
}

/// Seconds since logging started.
pub fn uptime_secs() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

struct LabelledFormat;

impl<S, N> FormatEvent<S, N> for LabelledFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        write!(
            writer,
            "{:8.3}s {:<5} [{}] ",
            uptime_secs(),
            level,
            current_label()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the subscriber once per process; later calls do nothing.
pub fn init() {
    START.get_or_init(Instant::now);
    let filter = std::env::var("EMBER_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(LabelledFormat)
        .try_init();
}
