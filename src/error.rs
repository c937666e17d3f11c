//! The one error type of ecrm, grouped by what the user must fix, and the exit codes.
//!
//! Variants carry the file, record, column or key the user needs to act on; messages are
//! worded for that user. Engine errors (polars, DataFusion, Parquet) are wrapped with `#[from]`
//! and keep their own message. `Internal` is reserved for "this is our bug".
//!
//! Exit codes (as in DESIGN.md): 0 success; 1 the run completed but a data test or quality gate
//! failed ([`Error::QualityGate`]); 2 any other error.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ecrm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A contract, pipeline or model file (or a CLI value) is wrong: the file, the key and what
    /// is allowed.
    #[error("{file}: {key}: {message}")]
    Config {
        file: PathBuf,
        key: String,
        message: String,
    },

    /// A command-line value is wrong in a way only the command line can be (a `NAME=PATH`
    /// that is not one, options that do not combine); `arg` is the flag as typed.
    #[error("{arg}: {message}")]
    Usage { arg: String, message: String },

    /// A parameter is out of range or does not fit the data: its canonical snake_case key
    /// (`max_depth`) and what is allowed. Each face names the key its own way: shown as it
    /// is, the key reads as the command line's flag (`--max-depth`); a pipeline renders it as
    /// `stages.NAME.max_depth` with the file and line ([`Error::at_stage`]).
    #[error("--{}: {message}", key.replace('_', "-"))]
    Param { key: String, message: String },

    /// Input data cannot be read as declared (a whole file, not a single row: bad rows become
    /// rejects with reason codes instead).
    #[error("{file}: {message}")]
    Input { file: PathBuf, message: String },

    /// The run completed, but a quality gate failed (reject rate, data test). Exit code 1.
    #[error("quality gate failed: {0}")]
    QualityGate(String),

    /// The warehouse is locked by another writer, missing, or its catalog is damaged.
    #[error("warehouse {dir}: {message}")]
    Warehouse { dir: PathBuf, message: String },

    /// A table or load that does not exist.
    #[error("{what} not found: {name}{hint}")]
    NotFound {
        what: &'static str,
        name: String,
        hint: String,
    },

    /// File system errors, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A SQL statement failed to parse, plan or run; `pointer` quotes the line at fault with
    /// a caret under the position when DataFusion gives one.
    #[error("{message}{}", match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c}){pointer}"),
        _ => String::new(),
    })]
    Sql {
        message: String,
        line: Option<u64>,
        column: Option<u64>,
        pointer: String,
    },

    /// A pipeline run finished with failed stages; the manifest has the details. Exit code 2.
    #[error("run {run_id} failed: {message}")]
    Pipeline { run_id: String, message: String },

    /// The distributed engine (a Ballista scheduler or executor) failed or cannot be reached.
    #[error("Ballista{}: {message}", if scheduler.is_empty() { String::new() } else { format!(" scheduler {scheduler}") })]
    Engine { scheduler: String, message: String },

    /// A mining algorithm could not fit the data (e.g. too few distinct rows for k clusters).
    #[error("{algorithm}: {message}")]
    Mining {
        algorithm: &'static str,
        message: String,
    },

    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),

    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    /// A bug in ecrm, not in the user's input.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

/// linfa's own errors (from `Fit` implementations and checked params).
impl From<linfa::error::Error> for Error {
    fn from(e: linfa::error::Error) -> Self {
        Error::Mining {
            algorithm: "linfa",
            message: e.to_string(),
        }
    }
}

impl Error {
    /// The process exit code for this error: 1 for a failed quality gate, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::QualityGate(_) => 1,
            _ => 2,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A configuration error naming the file and key.
    pub fn config(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A TOML file (contract, cube model, pipeline) that does not parse or has a value of the
    /// wrong shape: the line, and serde's message (which names the key or field).
    pub fn toml(file: impl Into<PathBuf>, text: &str, e: &toml::de::Error) -> Self {
        let key = e
            .span()
            .map(|s| format!("line {}", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_else(|| "file".to_string());
        Error::config(file, key, e.message().to_string())
    }

    /// A parameter error naming the canonical snake_case `key`.
    pub fn param(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Param {
            key: key.into(),
            message: message.into(),
        }
    }

    /// This error as a pipeline stage's: a parameter error becomes a configuration error at
    /// `stages.STAGE.KEY` of `file` (the stage's table starts at `line`), as the pipeline
    /// names its keys; any other error is unchanged.
    pub fn at_stage(self, file: &std::path::Path, stage: &str, line: usize) -> Error {
        match self {
            Error::Param { key, message } => Error::config(
                file,
                format!("stages.{stage}.{key} (stage at line {line})"),
                message,
            ),
            other => other,
        }
    }

    /// An input-file error.
    pub fn input(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            file: file.into(),
            message: message.into(),
        }
    }

    /// True when this error is a broken pipe on stdout (e.g. `ecrm query ... | head`), which is
    /// success, as in ripgrep.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The key a parameter error names (for tests of parameter checks).
#[cfg(test)]
pub(crate) fn param_key<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Param { key, .. }) => key,
        other => panic!("not a parameter error: {other:?}"),
    }
}
