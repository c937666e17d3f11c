//! The warehouse: a folder of Parquet tables addressed by name, changed only by atomic commits.
//!
//! - Input: the warehouse folder (`--warehouse`, env `ECRM_WAREHOUSE`, default `./warehouse`).
//! - Output: tables by name — `dim_customer`, `dim_product`, `dim_date`, `fact_sales`,
//!   `fact_campaign_contact`, `rejects`, `loads` and, later, marts and scores.
//!
//! Contract of a write (a load, a mart rebuild):
//! - A writer takes the writer lock ([`WriterLock`]); a second writer fails within 0.25 s with a
//!   message naming the holder.
//! - It starts a [`Transaction`] from the published snapshot, writes new files under new names
//!   (never overwriting a published file), and replaces or appends table file lists.
//! - [`Warehouse::commit`] publishes all of it at once (see [`catalog`]); until then readers see
//!   the previous state, and a killed writer leaves that state readable. The commit then removes
//!   files that neither the new nor the previous snapshot references (orphans of killed writers
//!   and files of replaced tables), keeping the previous snapshot readable for readers that
//!   opened it just before the commit.
//! - Intermediate files a writer needs (ingest's staged chunks) live in
//!   `_ecrm/staging/<run token>/`, removed when the transaction ends and, for killed writers,
//!   by the next commit.
//!
//! Durability: before the pointer is replaced, every data file the transaction wrote is
//! synced to disk, and so is every folder that gained an entry; the snapshot file and the
//! pointer are written by the one durable writer ([`files::write_atomic`]), which syncs
//! the file and its folder. So once [`Warehouse::commit`] returns, the new state survives a
//! crash or a power loss, and a pointer on disk never names a file that is not.

pub mod catalog;
pub mod files;
mod lock;
pub mod runs;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;

pub use catalog::{DataFile, Snapshot, TableFiles};
pub use lock::{RunLock, WriterLock};

use crate::error::{Error, Result};

/// A warehouse folder and the snapshot that was published when it was opened.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: PathBuf,
    snapshot: Snapshot,
}

impl Warehouse {
    /// Opens the warehouse at `root` (which may not exist yet: then it is empty).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let snapshot = catalog::read_current(&root)?;
        Ok(Warehouse { root, snapshot })
    }

    /// The warehouse folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The snapshot this handle reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.snapshot.tables.keys().cloned().collect()
    }

    /// The files of table `name`, or a not-found error listing the tables there are.
    pub fn table(&self, name: &str) -> Result<&TableFiles> {
        self.snapshot
            .tables
            .get(name)
            .ok_or_else(|| Error::NotFound {
                what: "table",
                name: name.to_string(),
                hint: if self.snapshot.tables.is_empty() {
                    format!(
                        " (warehouse {} is empty: run `ecrm ingest` first)",
                        self.root.display()
                    )
                } else {
                    format!(" (tables: {})", self.table_names().join(", "))
                },
            })
    }

    /// Absolute paths of the files of table `name` (also when the warehouse was opened by a
    /// relative path: Ballista executors elsewhere read them by these paths).
    pub fn table_paths(&self, name: &str) -> Result<Vec<PathBuf>> {
        let root = std::path::absolute(&self.root).map_err(|e| Error::io(&self.root, e))?;
        Ok(self
            .table(name)?
            .files
            .iter()
            .map(|f| root.join(&f.path))
            .collect())
    }

    /// Reads a whole table into a polars frame (ingest only: dimensions it merges into).
    /// `None` when the table does not exist yet.
    pub fn read_polars(&self, name: &str) -> Result<Option<DataFrame>> {
        let Some(table) = self.snapshot.tables.get(name) else {
            return Ok(None);
        };
        let mut frames = Vec::with_capacity(table.files.len());
        for f in &table.files {
            frames.push(read_polars_file(&self.root.join(&f.path))?.lazy());
        }
        if frames.is_empty() {
            return Ok(None);
        }
        Ok(Some(concat(frames, UnionArgs::default())?.collect()?))
    }

    /// Starts a write against the published snapshot. Holding `lock` proves no other writer
    /// runs.
    pub fn begin<'l>(&self, lock: &'l WriterLock) -> Transaction<'l> {
        let mut next = self.snapshot.clone();
        next.version += 1;
        Transaction {
            root: self.root.clone(),
            base: self.snapshot.clone(),
            next,
            file_seq: 0,
            token: format!(
                "{:08x}",
                (std::process::id() as u64 ^ chrono::Utc::now().timestamp_subsec_nanos() as u64)
                    & 0xffff_ffff
            ),
            written: Vec::new(),
            _lock: lock,
        }
    }

    /// Publishes the transaction's snapshot atomically, then removes unreferenced files.
    /// Returns the warehouse as of the new snapshot.
    pub fn commit(mut tx: Transaction<'_>, operation: &str) -> Result<Warehouse> {
        tx.keep_emptied_tables()?;
        tx.sync_written()?;
        let mut next = std::mem::take(&mut tx.next);
        next.operation = operation.to_string();
        next.committed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        catalog::publish(&tx.root, &next)?;
        let wh = Warehouse {
            root: tx.root.clone(),
            snapshot: next,
        };
        wh.remove_unreferenced(&tx.base);
        // Staged files of writers that were killed: nobody else writes while we hold the lock.
        drop(tx);
        let _ = std::fs::remove_dir_all(wh.root.join(catalog::META_DIR).join("staging"));
        Ok(wh)
    }

    /// Deletes every data file the current snapshot does not reference, also those of the
    /// previous state that a normal commit keeps for its readers (an erasure must leave no
    /// copy of what it removed).
    pub fn forget_previous(&self) {
        self.remove_unreferenced(&self.snapshot);
    }

    /// Deletes data files under `tables/` and snapshot files that neither the current nor
    /// `previous` snapshot references. Failures are logged, never fatal: an orphan costs disk,
    /// not correctness.
    fn remove_unreferenced(&self, previous: &Snapshot) {
        let mut keep: BTreeSet<PathBuf> = BTreeSet::new();
        for snap in [&self.snapshot, previous] {
            for t in snap.tables.values() {
                for f in &t.files {
                    keep.insert(self.root.join(&f.path));
                }
            }
        }
        let mut stack = vec![self.root.join("tables")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if !keep.contains(&path)
                    && let Err(e) = std::fs::remove_file(&path)
                {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove unreferenced file");
                }
            }
        }
        let snaps = self.root.join(catalog::META_DIR).join("snapshots");
        let keep_snaps = [
            catalog::snapshot_name(self.snapshot.version),
            catalog::snapshot_name(previous.version),
        ];
        if let Ok(entries) = std::fs::read_dir(&snaps) {
            for entry in entries.flatten() {
                let name = format!("snapshots/{}", entry.file_name().to_string_lossy());
                if !keep_snaps.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Where models live inside the warehouse: `<warehouse>/models/NAME.json`.
pub const MODELS_DIR: &str = "models";

/// The file of model `name` in the warehouse at `root`.
pub fn model_path(root: &Path, name: &str) -> PathBuf {
    root.join(MODELS_DIR).join(format!("{name}.json"))
}

/// Which load and input file a data file's rows came from; the default (no load) is for
/// tables rebuilt as a whole.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub load_id: Option<u64>,
    /// `SOURCE/FILE_NAME` (see [`DataFile::source_file`]).
    pub source_file: Option<String>,
}

/// The settings of every warehouse Parquet file polars writes: zstd, full statistics.
fn warehouse_parquet(file: std::fs::File) -> ParquetWriter<std::fs::File> {
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
}

/// Reads one Parquet file into a polars frame (ingest's staged files and dimensions).
pub fn read_polars_file(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(ParquetReader::new(file).finish()?)
}

/// Rows per Parquet row group written by [`PartitionedWriter`]: big enough for good
/// compression and few per-group costs, small enough to buffer a few of.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows buffered over all partitions before every buffer is flushed, which bounds memory
/// when rows spread over many partitions.
const MAX_BUFFERED_ROWS: usize = 4 * ROW_GROUP_ROWS;

/// One open partition file: its catalog path, writer, rows written, and rows waiting to be
/// written as one row group.
struct OpenPartition {
    rel: String,
    writer: BatchedWriter<std::fs::File>,
    rows: u64,
    pending: Vec<DataFrame>,
    pending_rows: usize,
}

impl OpenPartition {
    fn flush(&mut self) -> Result<()> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        let mut parts = std::mem::take(&mut self.pending).into_iter();
        let mut df = parts.next().expect("pending rows");
        for p in parts {
            df.vstack_mut_owned(p)?;
        }
        // The batched writer cuts record batches across all columns at once, so every column
        // must have the same chunk boundaries (a partition of a joined frame may not);
        // rechunking also makes the whole buffer one row group.
        df.rechunk_mut_par();
        self.writer.write_batch(&df)?;
        self.rows += df.height() as u64;
        self.pending_rows = 0;
        Ok(())
    }
}

/// Streams one load's rows into a table, one file per partition, so a load of any size is
/// written with a few row groups in memory: rows are buffered per partition and written in
/// row groups of `ROW_GROUP_ROWS` (a load's chunk spreads over many partitions, and one
/// small row group per chunk and partition would compress poorly and write slowly).
pub struct PartitionedWriter {
    table: String,
    owner: Owner,
    open: BTreeMap<Option<String>, OpenPartition>,
    buffered: usize,
}

impl PartitionedWriter {
    /// Appends `df` to the file of `partition`, opening it on first use.
    pub fn write(
        &mut self,
        tx: &mut Transaction<'_>,
        partition: Option<&str>,
        df: &DataFrame,
    ) -> Result<()> {
        let key = partition.map(String::from);
        if !self.open.contains_key(&key) {
            let (rel, path) = tx.new_data_path(&self.table, partition)?;
            let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let writer = warehouse_parquet(file).batched(df.schema())?;
            self.open.insert(
                key.clone(),
                OpenPartition {
                    rel,
                    writer,
                    rows: 0,
                    pending: Vec::new(),
                    pending_rows: 0,
                },
            );
        }
        let open = self.open.get_mut(&key).expect("opened above");
        open.pending.push(df.clone());
        open.pending_rows += df.height();
        self.buffered += df.height();
        if open.pending_rows >= ROW_GROUP_ROWS {
            self.buffered -= open.pending_rows;
            open.flush()?;
        }
        if self.buffered > MAX_BUFFERED_ROWS {
            for open in self.open.values_mut() {
                open.flush()?;
            }
            self.buffered = 0;
        }
        Ok(())
    }

    /// Closes every file and returns their catalog entries.
    pub fn finish(self) -> Result<Vec<DataFile>> {
        let mut files = Vec::with_capacity(self.open.len());
        for (_, mut open) in self.open {
            open.flush()?;
            open.writer.finish()?;
            files.push(DataFile {
                path: open.rel,
                rows: open.rows,
                load_id: self.owner.load_id,
                source_file: self.owner.source_file.clone(),
            });
        }
        Ok(files)
    }
}

/// A write in progress: new files plus the table lists the next snapshot will have.
pub struct Transaction<'l> {
    root: PathBuf,
    base: Snapshot,
    next: Snapshot,
    file_seq: u64,
    token: String,
    /// Data files written so far, synced before the commit publishes them.
    written: Vec<PathBuf>,
    _lock: &'l WriterLock,
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.staging_dir());
    }
}

impl Transaction<'_> {
    /// The snapshot as it will be published.
    pub fn next(&self) -> &Snapshot {
        &self.next
    }

    /// A new data file's path for `table` (in sub-folder `partition` when given, e.g.
    /// `month=2011-01`): relative to the root, and absolute with its folder created.
    fn new_data_path(&mut self, table: &str, partition: Option<&str>) -> Result<(String, PathBuf)> {
        self.file_seq += 1;
        let mut rel = format!("tables/{table}/");
        if let Some(p) = partition {
            rel.push_str(p);
            rel.push('/');
        }
        // The run token keeps a killed writer's orphans apart from the files of the writer
        // that retries the same version.
        rel.push_str(&format!(
            "v{:08}-{}-{:05}.parquet",
            self.next.version, self.token, self.file_seq
        ));
        let path = self.root.join(&rel);
        let dir = path.parent().expect("data file has a folder");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.written.push(path.clone());
        Ok((rel, path))
    }

    /// A table whose every file this transaction removed (a rollback of its only load) keeps
    /// its columns: it gets one empty file with the schema of the files it had, so it stays
    /// a table SQL can read, with no rows, instead of vanishing from the session.
    fn keep_emptied_tables(&mut self) -> Result<()> {
        let emptied: Vec<(String, PathBuf)> = self
            .next
            .tables
            .iter()
            .filter(|(_, t)| t.files.is_empty())
            .filter_map(|(name, _)| {
                let had = self.base.tables.get(name)?.files.first()?;
                Some((name.clone(), self.root.join(&had.path)))
            })
            .collect();
        for (name, had) in emptied {
            use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let file = std::fs::File::open(&had).map_err(|e| Error::io(&had, e))?;
            let schema = ParquetRecordBatchReaderBuilder::try_new(file)?
                .schema()
                .clone();
            let (rel, path) = self.new_data_path(&name, None)?;
            let mut out = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            files::write_parquet(&mut out, &schema, &[])?;
            self.replace(
                &name,
                vec![DataFile {
                    path: rel,
                    rows: 0,
                    load_id: None,
                    source_file: None,
                }],
            );
        }
        Ok(())
    }

    /// Syncs every data file this transaction wrote, then every folder between them and the
    /// warehouse root (new files and new partition folders are entries of those folders).
    fn sync_written(&mut self) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for path in std::mem::take(&mut self.written) {
            // A file written and then dropped from the snapshot (a replaced table) may be
            // gone already; only the published ones matter, and those are still there.
            match std::fs::File::open(&path) {
                Ok(f) => f.sync_all().map_err(|e| Error::io(&path, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| d.starts_with(&self.root)) {
                if !dirs.insert(d.to_path_buf()) {
                    break;
                }
                dir = d.parent();
            }
        }
        for d in dirs.iter().rev() {
            files::sync_dir(d)?;
        }
        Ok(())
    }

    /// Writes `df` as a new zstd Parquet file of `table` and returns its catalog entry; the
    /// file is not part of the table until [`Transaction::append`] or
    /// [`Transaction::replace`] and the commit.
    ///
    /// This, [`PartitionedWriter`] and [`Transaction::write_arrow`] are the only places that
    /// write warehouse Parquet.
    pub fn write_polars(
        &mut self,
        table: &str,
        partition: Option<&str>,
        df: &mut DataFrame,
        owner: &Owner,
    ) -> Result<DataFile> {
        let (rel, path) = self.new_data_path(table, partition)?;
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        warehouse_parquet(file).finish(df)?;
        Ok(DataFile {
            path: rel,
            rows: df.height() as u64,
            load_id: owner.load_id,
            source_file: owner.source_file.clone(),
        })
    }

    /// Writes Arrow batches as a new zstd Parquet file of `table` (a mart or scores table,
    /// rebuilt as a whole) and returns its catalog entry, as [`Transaction::write_polars`].
    pub fn write_arrow(
        &mut self,
        table: &str,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        batches: &[datafusion::arrow::array::RecordBatch],
    ) -> Result<DataFile> {
        let (rel, path) = self.new_data_path(table, None)?;
        let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        files::write_parquet(&mut file, schema, batches)?;
        Ok(DataFile {
            path: rel,
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            load_id: None,
            source_file: None,
        })
    }

    /// Replaces `table` (a mart or scores table, rebuilt as a whole) with `batch`.
    pub fn replace_with(
        &mut self,
        table: &str,
        batch: &datafusion::arrow::array::RecordBatch,
    ) -> Result<()> {
        let f = self.write_arrow(table, &batch.schema(), std::slice::from_ref(batch))?;
        self.replace(table, vec![f]);
        Ok(())
    }

    /// A writer that streams rows of one load into `table`, one file per partition.
    pub fn partitioned_writer(&self, table: &str, owner: Owner) -> PartitionedWriter {
        PartitionedWriter {
            table: table.to_string(),
            owner,
            open: BTreeMap::new(),
            buffered: 0,
        }
    }

    /// The folder for this transaction's staged intermediate files (removed when the
    /// transaction ends; a killed writer's are removed by the next commit).
    fn staging_dir(&self) -> PathBuf {
        self.root
            .join(catalog::META_DIR)
            .join("staging")
            .join(&self.token)
    }

    /// Stages a frame (LZ4 Parquet, fast to write and read back) and returns its path.
    pub fn stage(&mut self, df: &mut DataFrame) -> Result<PathBuf> {
        let dir = self.staging_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        self.file_seq += 1;
        let path = dir.join(format!("{:06}.parquet", self.file_seq));
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Lz4Raw)
            .with_statistics(StatisticsOptions::empty())
            .finish(df)?;
        Ok(path)
    }

    /// Adds files to a table (creating it when new).
    pub fn append(&mut self, table: &str, files: Vec<DataFile>) {
        self.next
            .tables
            .entry(table.to_string())
            .or_default()
            .files
            .extend(files);
    }

    /// Makes `files` the whole content of a table.
    pub fn replace(&mut self, table: &str, files: Vec<DataFile>) {
        self.next
            .tables
            .insert(table.to_string(), TableFiles { files });
    }

    /// Empties the warehouse (a full refresh): every table is dropped from the next snapshot.
    pub fn clear(&mut self) {
        self.next.tables.clear();
    }

    /// Removes the files a load wrote from every table (dimensions, rebuilt as a whole, are
    /// not load files). Returns the rows removed per table.
    pub fn remove_load(&mut self, load_id: u64) -> BTreeMap<String, u64> {
        self.remove_files(|f| f.load_id == Some(load_id))
    }

    /// Removes the files one input file (`SOURCE/FILE_NAME`) of a load wrote.
    pub fn remove_source_file(&mut self, load_id: u64, source_file: &str) -> BTreeMap<String, u64> {
        self.remove_files(|f| {
            f.load_id == Some(load_id) && f.source_file.as_deref() == Some(source_file)
        })
    }

    fn remove_files(&mut self, doomed: impl Fn(&DataFile) -> bool) -> BTreeMap<String, u64> {
        let mut removed = BTreeMap::new();
        for (name, t) in self.next.tables.iter_mut() {
            let rows: u64 = t.files.iter().filter(|f| doomed(f)).map(|f| f.rows).sum();
            t.files.retain(|f| !doomed(f));
            if rows > 0 {
                removed.insert(name.clone(), rows);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a frame whose columns have different chunk boundaries (as a partition of a
    /// joined frame can) made polars' batched writer panic at 10M order lines.
    #[test]
    fn partitioned_writer_accepts_misaligned_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let lock = WriterLock::acquire(dir.path(), "test").unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let mut tx = wh.begin(&lock);
        let mut a = Column::new("a".into(), [1i64, 2]);
        a.append(&Column::new("a".into(), [3i64])).unwrap();
        let b = Column::new("b".into(), ["x", "y", "z"]);
        let df = DataFrame::new_infer_height(vec![a, b]).unwrap();
        assert_ne!(
            df.column("a").unwrap().n_chunks(),
            df.column("b").unwrap().n_chunks()
        );
        let owner = Owner {
            load_id: Some(1),
            source_file: Some("s/f.csv".into()),
        };
        let mut w = tx.partitioned_writer("t", owner);
        w.write(&mut tx, Some("p=1"), &df).unwrap();
        w.write(&mut tx, Some("p=1"), &df).unwrap();
        let files = w.finish().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, 6);
        tx.append("t", files);
        let wh = Warehouse::commit(tx, "test").unwrap();
        assert_eq!(wh.read_polars("t").unwrap().unwrap().height(), 6);
    }
}
