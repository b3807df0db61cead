//! Engine settings every job accepts: executor cores and memory, node-local directory.

use std::path::PathBuf;

/// Engine options, as flags (flatten into a job's clap parser) or environment variables.
///
/// ```
/// use clap::Parser;
/// #[derive(Parser)]
/// struct Job {
///     #[command(flatten)]
///     engine: ember::config::EngineArgs,
/// }
/// let job = Job::parse_from(["job", "--executor-memory", "2g"]);
/// assert_eq!(job.engine.executor_memory.unwrap().0, 2 << 30);
/// ```
#[derive(Debug, Clone, Default, clap::Args)]
// Flattened into a job's parser, a doc comment here would become the job's description
// in `--help` (clap applies it to the parent): cleared, and the options get a heading.
#[command(about = None, long_about = None, next_help_heading = "Engine options")]
pub struct EngineArgs {
    /// Worker threads per executor (default: the executor's share of its NUMA domain).
    #[arg(long, env = "EMBER_EXECUTOR_CORES", value_name = "N", global = true)]
    pub executor_cores: Option<usize>,
    /// Memory budget per executor, e.g. 512m, 2g (default: 3/4 of the node's memory
    /// shared by the executors on it).
    #[arg(
        long,
        env = "EMBER_EXECUTOR_MEMORY",
        value_name = "SIZE",
        global = true
    )]
    pub executor_memory: Option<ByteSize>,
    /// Node-local scratch directory for shuffle and cache files.
    #[arg(
        long,
        env = "EMBER_LOCAL_DIR",
        value_name = "DIR",
        default_value = "/dev/shm",
        global = true
    )]
    pub local_dir: PathBuf,
    /// On-disk directory for what does not fit the memory budget (spilled map output,
    /// shuffle files when the local dir is in memory); default: `$TMPDIR`, else
    /// `/var/tmp`. On a cluster, a node-local disk.
    #[arg(long, env = "EMBER_SPILL_DIR", value_name = "DIR", global = true)]
    pub spill_dir: Option<PathBuf>,
    /// Bytes an executor sends per shuffle round (all destinations together): bounds the
    /// memory MPI needs during an exchange.
    #[arg(
        long,
        env = "EMBER_SHUFFLE_ROUND_BYTES",
        value_name = "SIZE",
        default_value = "256m",
        global = true
    )]
    pub shuffle_round_bytes: ByteSize,
    /// The largest total an action may return (`collect`, `take`, ...): results reach the
    /// driver and every executor (each rank runs the job's main), so a larger one fails
    /// the job saying to save it instead (like Spark's spark.driver.maxResultSize; 0: no
    /// limit).
    #[arg(
        long,
        env = "EMBER_MAX_RESULT_SIZE",
        value_name = "SIZE",
        default_value = "1g",
        global = true
    )]
    pub max_result_size: ByteSize,
    /// How shuffles move data: `auto` lets executors on one node read each other's shuffle
    /// files directly and sends only cross-node data with MPI_Alltoallv; `alltoallv`
    /// sends everything that crosses executors through MPI; `rma` gets it with one-sided
    /// MPI_Get.
    #[arg(long, env = "EMBER_SHUFFLE_MODE", value_name = "MODE", value_enum, default_value_t = ShuffleMode::Auto, global = true)]
    pub shuffle_mode: ShuffleMode,
    /// Do not pin executors and their threads to cores.
    #[arg(long, env = "EMBER_NO_PIN", global = true)]
    pub no_pin: bool,
    /// Read an input directory of `part-*` files that has no `_SUCCESS` (the output of a
    /// job that failed or is still running); refused by default.
    #[arg(long, env = "EMBER_ACCEPT_INCOMPLETE_INPUT", global = true)]
    pub accept_incomplete_input: bool,
    /// How long a rank may go unheard before the job ends, e.g. 30s, 2m (0 turns the check
    /// off): executors and the driver exchange heartbeats, so a hung, stopped or vanished
    /// rank ends the job with its name instead of hanging it.
    #[arg(
        long,
        env = "EMBER_HEARTBEAT_TIMEOUT",
        value_name = "DURATION",
        default_value = "120s",
        value_parser = humantime::parse_duration,
        global = true
    )]
    pub heartbeat_timeout: std::time::Duration,
    /// Directory of the driver's event log (one JSON-lines file per application, read by
    /// `ember history`); default `ember-events` in the driver's working directory.
    #[arg(long, env = "EMBER_EVENT_LOG", value_name = "DIR", global = true)]
    pub event_log: Option<PathBuf>,
    /// Write no event log.
    #[arg(long, env = "EMBER_NO_EVENT_LOG", global = true)]
    pub no_event_log: bool,
    /// Progress of running stages on the driver's stderr: `auto` draws live bars on a
    /// terminal and plain lines every few seconds elsewhere; `always` also prints a line
    /// when each stage finishes (and every second); `never` prints none.
    #[arg(long, env = "EMBER_PROGRESS", value_name = "WHEN", value_enum, default_value_t = ProgressMode::Auto, global = true)]
    pub progress: ProgressMode,
}

impl EngineArgs {
    /// Every setting by option name, as the event log records them.
    pub fn settings(&self) -> std::collections::BTreeMap<String, String> {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "default".into());
        [
            (
                "executor-cores",
                opt(self.executor_cores.map(|c| c.to_string())),
            ),
            (
                "executor-memory",
                opt(self.executor_memory.map(|m| m.to_string())),
            ),
            ("local-dir", self.local_dir.display().to_string()),
            ("shuffle-round-bytes", self.shuffle_round_bytes.to_string()),
            (
                "shuffle-mode",
                format!("{:?}", self.shuffle_mode).to_lowercase(),
            ),
            ("no-pin", self.no_pin.to_string()),
            ("heartbeat-timeout", format!("{:?}", self.heartbeat_timeout)),
            ("progress", format!("{:?}", self.progress).to_lowercase()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Settings from environment variables alone (for `Context::init()` without a parser).
    pub fn from_env() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Env {
            #[command(flatten)]
            engine: EngineArgs,
        }
        Env::try_parse_from(["ember"])
            .map(|e| e.engine)
            .unwrap_or_else(|e| {
                tracing::warn!("ignoring malformed EMBER_* setting: {e}");
                EngineArgs {
                    local_dir: PathBuf::from("/dev/shm"),
                    shuffle_round_bytes: ByteSize(256 << 20),
                    max_result_size: ByteSize(1 << 30),
                    heartbeat_timeout: std::time::Duration::from_secs(120),
                    ..EngineArgs::default()
                }
            })
    }
}

/// When the driver shows the progress of running stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Never,
    #[default]
    Auto,
    Always,
}

/// How a shuffle's exchange moves data between executors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ShuffleMode {
    /// Node-local shortcut for co-located executors, MPI_Alltoallv across nodes.
    #[default]
    Auto,
    /// Everything through MPI_Alltoallv.
    Alltoallv,
    /// One-sided: each executor exposes its map output in an MPI window and owners
    /// `MPI_Get` their runs (the RDMA path); falls back to alltoallv, with a logged
    /// reason, where the MPI library cannot make windows.
    Rma,
}

/// A byte count written the way Spark and Slurm users write it: `512m`, `2g`, `1.5GiB`, `4096`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{s}' is not a size (examples: 4096, 512m, 2g, 1.5GiB)"))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => return Err(format!("'{s}': unknown unit '{other}' (use k, m, g or t)")),
        };
        Ok(ByteSize((value * scale as f64).round() as u64))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1} {name}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{} B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_spark_and_slurm() {
        let p = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(p("4096"), Ok(4096));
        assert_eq!(p("512m"), Ok(512 << 20));
        assert_eq!(p("2g"), Ok(2 << 30));
        assert_eq!(p("1.5GiB"), Ok(3 << 29));
        assert_eq!(p("3 TB"), Ok(3 << 40));
        assert!(p("lots").is_err());
        assert!(p("5x").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn sizes_display_readably() {
        assert_eq!(ByteSize(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(ByteSize(100).to_string(), "100 B");
    }
}
