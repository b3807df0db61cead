//! The error a job sees: bad input, refused output, failed tasks, broken transport.

use std::path::PathBuf;

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("rank {rank} is outside this group of {size} ranks")]
    NoSuchRank { rank: usize, size: usize },
    #[error("{what} of {bytes} bytes exceeds MPI's per-call limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("all_to_all_v needs one count per rank: got {got} counts for {size} ranks")]
    CountMismatch { got: usize, size: usize },
    #[error("all_to_all_v: a run ending at byte {sum} does not fit a buffer of {len} bytes")]
    CountsDisagree { sum: usize, len: usize },
    #[error("rank {from} sent {got} bytes where {expected} were announced")]
    Truncated {
        from: usize,
        expected: usize,
        got: usize,
    },
    #[error("the MPI library did not start: {0}")]
    MpiInit(String),
}

/// Everything an action or a source can fail with. Messages name the file, partition or
/// executor involved, so the one line a user sees is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("input {0}: no such file or directory")]
    MissingInput(String),
    #[error("input {0}: no files to read")]
    EmptyInput(String),
    #[error(
        "input {0}: part files but no _SUCCESS: the output of a job that failed or is still running (--accept-incomplete-input reads it anyway)"
    )]
    IncompleteInput(String),
    #[error(
        "{path}: input file changed while the job read it ({listed} bytes when the job was planned, {now} now): rewrite inputs only between jobs"
    )]
    InputChanged {
        path: PathBuf,
        listed: u64,
        now: u64,
    },
    #[error("{path}: not valid UTF-8 at byte offset {offset}")]
    InvalidUtf8 { path: PathBuf, offset: u64 },
    #[error("{path}: line {line}: {detail}")]
    BadRecord {
        path: PathBuf,
        line: u64,
        detail: String,
    },
    #[error("{path}: length {len} is not a multiple of the record length {record_len}")]
    RecordLength {
        path: PathBuf,
        len: u64,
        record_len: usize,
    },
    #[error("output {0} already exists (ask for overwrite to replace it)")]
    OutputExists(PathBuf),
    #[error("shuffle {shuffle}: corrupt data from executor {executor}: {detail}")]
    CorruptShuffle {
        shuffle: crate::ids::ShuffleId,
        executor: crate::ids::ExecutorId,
        detail: String,
    },
    #[error(
        "{what}: a record of {bytes} bytes is larger than the executor memory budget ({budget} bytes); raise --executor-memory"
    )]
    RecordTooLarge {
        what: String,
        bytes: u64,
        budget: u64,
    },
    /// A task needed a shuffle whose outputs were released because the stages reading it
    /// read a cached RDD instead; that cache lost a block, so the shuffle's map stage must
    /// run again (Spark's fetch failure).
    #[error(
        "shuffle {shuffle} has not been exchanged on executor {executor} (a cached block computed again needs it)"
    )]
    ShuffleLost {
        shuffle: crate::ids::ShuffleId,
        executor: usize,
    },
    #[error("{0}")]
    Task(String),
    /// The driver failed the job; executors get its message.
    #[error("{0}")]
    JobFailed(String),
    #[error("lineage mismatch: {0}")]
    LineageMismatch(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Whether retrying cannot help: the local disk is full (retried tasks would fill it
    /// again, each after a long write), an input changed under the job (every attempt
    /// would read the new length), or an input line is malformed (it will be again).
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            Error::InputChanged { .. } | Error::BadRecord { .. } | Error::RecordTooLarge { .. } => {
                true
            }
            _ => false,
        }
    }

    /// The shuffle a task found released, when that is why it failed.
    pub fn lost_shuffle(&self) -> Option<crate::ids::ShuffleId> {
        match self {
            Error::ShuffleLost { shuffle, .. } => Some(*shuffle),
            _ => None,
        }
    }

    /// An `Io` error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
