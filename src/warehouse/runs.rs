//! Run manifests: `<warehouse>/runs/<run id>.json`, what a scheduler reads instead of logs.
//!
//! Written by the pipeline runner, read by `ecrm runs`, `ecrm report` and `--resume`; they
//! live here, beside the tables they describe, so that every layer above may read them.
//!
//! One file per run, rewritten atomically after every stage, so a killed run leaves a
//! manifest that says which stages finished (and `--resume` can continue it). It holds the
//! pipeline file's hash, ecrm's version, the as-of date, the selection, and per stage: start,
//! end, status, input tables with row counts and content hashes, output tables with row
//! counts and content hashes, params as written, seed, metrics, data-test results, error.
//!
//! Content hashes are XXH3-128 over the bytes of a table's Parquet files in catalog order
//! (or of a model or export file): equal hashes mean equal bytes, which is how a scheduler
//! (and the tests) can see that re-running an as-of date reproduced its outputs.
//!
//! Run ids are `YYYYMMDDTHHMMSSZ-xxxx` (UTC start time and 4 hex digits), so they sort by
//! start time.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Warehouse;
use crate::error::{Error, Result};

/// The folder of run manifests inside the warehouse.
pub const RUNS_DIR: &str = "runs";

/// A run's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub pipeline: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    pub ecrm_version: String,
    /// Resolved when the first stage after ingest starts (`null` before).
    pub as_of: Option<String>,
    /// `--select` as given (empty: every stage).
    pub selected: Vec<String>,
    pub full_refresh: bool,
    /// The run this one resumed (its succeeded stages are `reused`).
    pub resumed_from: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub exit_code: Option<u8>,
    pub stages: Vec<StageRecord>,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    pub status: StageStatus,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    /// The process's peak resident memory during the stage, in MiB (Linux; `null`
    /// elsewhere): what to size a machine by.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    pub inputs: Vec<TableRecord>,
    pub outputs: Vec<TableRecord>,
    pub params: serde_json::Value,
    pub seed: Option<u64>,
    pub metrics: serde_json::Value,
    pub tests: Vec<TestResult>,
    pub error: Option<String>,
    /// The run whose result a `reused` stage stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// Data tests or gates failed, or stages were skipped for them (exit code 1).
    TestsFailed,
    /// A stage failed (exit code 2).
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::TestsFailed => "tests_failed",
            RunStatus::Failed => "failed",
        }
    }
}

/// Where a stage of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pending,
    Running,
    Succeeded,
    /// It ran, but its data tests or its gate (reject rate, freshness) failed.
    TestsFailed,
    /// It ran into an error.
    Failed,
    /// Not run: a stage it depends on did not succeed.
    Skipped,
    /// Not among the `--select`ed stages.
    NotSelected,
    /// Succeeded in the run this one resumed.
    Reused,
}

impl StageStatus {
    pub fn name(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Succeeded => "succeeded",
            StageStatus::TestsFailed => "tests_failed",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
            StageStatus::NotSelected => "not_selected",
            StageStatus::Reused => "reused",
        }
    }

    /// Succeeded, here or in the resumed run.
    pub fn is_ok(self) -> bool {
        matches!(self, StageStatus::Succeeded | StageStatus::Reused)
    }

    /// Did not succeed: stages that read its output do not run.
    pub fn blocks(self) -> bool {
        matches!(
            self,
            StageStatus::Failed | StageStatus::TestsFailed | StageStatus::Skipped
        )
    }
}

/// The outcome of one data test check (or of an ingest gate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// `not_null(customer_id) on customer_features` and the like.
    pub test: String,
    pub status: TestStatus,
    /// Rows that break it (for `rows`: the row count).
    pub failing: u64,
    /// What is wrong, with up to three example values; empty when it passed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    Pass,
    /// Failed, severity error: the stage's tests fail.
    Fail,
    /// Failed, severity warn: reported only.
    Warn,
}

impl TestStatus {
    pub fn name(self) -> &'static str {
        match self {
            TestStatus::Pass => "pass",
            TestStatus::Fail => "fail",
            TestStatus::Warn => "warn",
        }
    }
}

/// `Display` and comparison with text, by the names the manifest writes.
macro_rules! display_by_name {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            /// The name as the manifest writes it (padded like a string).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.name())
            }
        }

        /// Compares with the name the manifest writes (`status == "succeeded"`).
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }
    )*};
}
display_by_name!(RunStatus, StageStatus, TestStatus);

/// A table (or model or file) a stage read or wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub name: String,
    pub rows: Option<u64>,
    /// XXH3-128, hex; `null` when it does not exist.
    pub hash: Option<String>,
}

/// A new run id for a run starting now.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt = (std::process::id() as u64 ^ now.timestamp_subsec_nanos() as u64) & 0xffff;
    format!("{}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Now, as the manifests write times (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The manifest file of a run.
pub fn path(warehouse: &Path, run_id: &str) -> PathBuf {
    warehouse.join(RUNS_DIR).join(format!("{run_id}.json"))
}

impl Manifest {
    /// Writes the manifest atomically (a reader never sees half a file).
    pub fn write(&self, warehouse: &Path) -> Result<PathBuf> {
        let dir = warehouse.join(RUNS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let p = path(warehouse, &self.run_id);
        super::files::write_json(&p, self)?;
        Ok(p)
    }

    /// Reads run `run_id`'s manifest.
    pub fn read(warehouse: &Path, run_id: &str) -> Result<Manifest> {
        let p = path(warehouse, run_id);
        if !p.is_file() {
            return Err(Error::NotFound {
                what: "run",
                name: run_id.to_string(),
                hint: format!(" (no {}; `ecrm runs` lists the runs)", p.display()),
            });
        }
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::input(&p, format!("is not a run manifest: {e}")))
    }

    /// The warehouse's runs, newest first; at most `last`.
    pub fn list(warehouse: &Path, last: usize) -> Result<Vec<Manifest>> {
        let dir = warehouse.join(RUNS_DIR);
        let mut ids: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.into_iter()
            .take(last)
            .map(|id| Manifest::read(warehouse, &id))
            .collect()
    }
}

/// Hands memory freed by the last stage back to the OS, then resets the process's
/// peak-memory mark (Linux: `/proc/self/clear_refs`), so [`peak_rss_mib`] measures the next
/// stage from here. Why trim: glibc keeps freed memory in its arenas, so without it each
/// stage's peak would stand on the high-water mark of the stages before (measured on the
/// 10M-line nightly: a 3.2 GB peak without it, 1.9 GB with it).
pub fn reset_peak_rss() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps; it reads
    // and writes no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory since the last reset, in MiB (`VmHWM`; Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((kb / 1024.0).round())
}

/// Row count and content hash of a warehouse table (`None`s when it does not exist).
pub fn table_record(wh: &Warehouse, name: &str) -> Result<TableRecord> {
    let Some(t) = wh.snapshot().tables.get(name) else {
        return Ok(TableRecord {
            name: name.to_string(),
            rows: None,
            hash: None,
        });
    };
    let paths: Vec<PathBuf> = t.files.iter().map(|f| wh.root().join(&f.path)).collect();
    Ok(TableRecord {
        name: name.to_string(),
        rows: Some(t.rows()),
        hash: Some(hash_files(&paths)?),
    })
}

/// A model or export file's record: `name` as the pipeline calls it, the file's hash.
pub fn file_record(name: &str, path: &Path, rows: Option<u64>) -> Result<TableRecord> {
    Ok(TableRecord {
        name: name.to_string(),
        rows,
        hash: if path.is_file() {
            Some(hash_files(&[path.to_path_buf()])?)
        } else {
            None
        },
    })
}

/// XXH3-128 of the files' bytes, one after the other, streamed.
fn hash_files(paths: &[PathBuf]) -> Result<String> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(p, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}
