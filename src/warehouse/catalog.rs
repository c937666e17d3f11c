//! The table catalog: which Parquet files make up each table, published atomically.
//!
//! On disk:
//!
//! ```text
//! <warehouse>/_ecrm/CURRENT                 {"version": 7, "snapshot": "snapshots/v00000007.json"}
//! <warehouse>/_ecrm/snapshots/v00000007.json  every table: its files, their rows, the load that wrote them
//! <warehouse>/tables/<table>/...parquet        data files, never modified after they are written
//! ```
//!
//! A writer writes new data files under new names, then a new snapshot file, then replaces
//! `CURRENT` by renaming a temporary file over it (atomic on POSIX). Readers read `CURRENT` first
//! and follow it, so a writer killed at any instant leaves the previous snapshot readable; files it
//! wrote but never published are orphans, removed by the next successful commit
//! ([`super::Warehouse::commit`]). This is how Delta Lake commits, with one pointer file instead
//! of a log.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One data file of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataFile {
    /// Path relative to the warehouse root, with `/` separators.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// The load that wrote the file, for append-only tables whose rows belong to one load
    /// (facts, rejects); `None` for tables rebuilt as a whole (dimensions, `loads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_id: Option<u64>,
    /// `SOURCE/FILE_NAME` of the input file the rows came from, for replacing one file of a
    /// load; `None` when rows of several files share the data file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
}

/// One table: its files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableFiles {
    pub files: Vec<DataFile>,
}

impl TableFiles {
    /// Total rows over all files.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// A published state of the whole warehouse.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Increases by one with each commit; 0 is the empty warehouse (no `CURRENT` yet).
    pub version: u64,
    /// When it was committed (RFC 3339, UTC).
    #[serde(default)]
    pub committed_at: String,
    /// What produced it (e.g. `ingest load 3`).
    #[serde(default)]
    pub operation: String,
    /// Tables by name.
    pub tables: BTreeMap<String, TableFiles>,
}

/// The pointer file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    version: u64,
    snapshot: String,
}

pub(crate) const META_DIR: &str = "_ecrm";
const POINTER: &str = "CURRENT";

/// Snapshot file name of a version, relative to the meta folder.
pub(crate) fn snapshot_name(version: u64) -> String {
    format!("snapshots/v{version:08}.json")
}

/// Reads the published snapshot, or the empty one when nothing was published yet.
pub(crate) fn read_current(root: &Path) -> Result<Snapshot> {
    let pointer_path = root.join(META_DIR).join(POINTER);
    let text = match std::fs::read_to_string(&pointer_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Snapshot::default()),
        Err(e) => return Err(Error::io(pointer_path, e)),
    };
    let pointer: Pointer = serde_json::from_str(&text).map_err(|e| Error::Warehouse {
        dir: root.to_path_buf(),
        message: format!("damaged catalog pointer {}: {e}", pointer_path.display()),
    })?;
    read_snapshot(root, &pointer.snapshot)
}

/// Reads one snapshot file (relative to the meta folder).
pub(crate) fn read_snapshot(root: &Path, name: &str) -> Result<Snapshot> {
    let path = root.join(META_DIR).join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Warehouse {
        dir: root.to_path_buf(),
        message: format!("damaged snapshot {}: {e}", path.display()),
    })
}

/// Publishes `snapshot` (whose version must be the current one plus one): writes its file, then
/// atomically replaces the pointer.
pub(crate) fn publish(root: &Path, snapshot: &Snapshot) -> Result<()> {
    let name = snapshot_name(snapshot.version);
    let snap_path = root.join(META_DIR).join(&name);
    let body = serde_json::to_vec_pretty(snapshot).map_err(|e| Error::Internal(e.to_string()))?;
    super::files::write_bytes(&snap_path, &body)?;
    let pointer = Pointer {
        version: snapshot.version,
        snapshot: name,
    };
    let body = serde_json::to_vec(&pointer).map_err(|e| Error::Internal(e.to_string()))?;
    super::files::write_bytes(&root.join(META_DIR).join(POINTER), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_folder_reads_as_version_0_and_publish_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_current(dir.path()).unwrap(), Snapshot::default());
        let mut snap = Snapshot {
            version: 1,
            committed_at: "2026-01-01T00:00:00Z".into(),
            operation: "test".into(),
            tables: BTreeMap::new(),
        };
        snap.tables.insert(
            "t".into(),
            TableFiles {
                files: vec![DataFile {
                    path: "tables/t/a.parquet".into(),
                    rows: 3,
                    load_id: Some(1),
                    source_file: Some("tx/a.csv".into()),
                }],
            },
        );
        publish(dir.path(), &snap).unwrap();
        assert_eq!(read_current(dir.path()).unwrap(), snap);
        assert_eq!(snap.tables["t"].rows(), 3);
    }

    #[test]
    fn a_damaged_pointer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(META_DIR)).unwrap();
        std::fs::write(dir.path().join(META_DIR).join(POINTER), "{not json").unwrap();
        let err = read_current(dir.path()).unwrap_err().to_string();
        assert!(err.contains("damaged catalog pointer"), "{err}");
    }
}
