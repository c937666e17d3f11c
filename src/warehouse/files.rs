//! The one durable writer, and the formats of result files.
//!
//! Everything ecrm writes goes through [`write_atomic`]: the catalog's pointer and
//! snapshots, run manifests, model files, exports, labels, scores and reports. Its
//! guarantee, after a crash or a power loss too: the file at `path` is either the previous
//! one or the complete new one, never half of one. How: the bytes go to a temporary file
//! beside the target, which is synced to disk, then renamed over the target, and the folder
//! is synced so the rename itself is on disk when the call returns.
//!
//! Result files are CSV (UTF-8, a header row), Parquet (zstd, through arrow-rs), JSON (one
//! array of objects) or NDJSON (one object per line): [`FileFormat`], which has no "table"
//! member, so "a file is not a printed table" needs no check at run time.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

crate::choices! {
    /// Formats of result files.
    pub enum FileFormat {
        /// Comma-separated, UTF-8, a header row.
        Csv = "csv",
        /// Parquet, zstd-compressed.
        Parquet = "parquet",
        /// One JSON array of objects.
        Json = "json",
        /// One JSON object per line.
        Ndjson = "ndjson",
    }
}

impl FileFormat {
    /// The format a file name asks for by its extension (csv when it says nothing).
    pub fn for_path(path: &Path) -> FileFormat {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("parquet") => FileFormat::Parquet,
            Some("json") => FileFormat::Json,
            Some("ndjson") | Some("jsonl") => FileFormat::Ndjson,
            _ => FileFormat::Csv,
        }
    }
}

/// Writes a file through `write`, durably and atomically (see the module doc). The file gets
/// the usual 0644 permissions, not the temporary file's private 0600.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    let mut file = tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?;
    write(&mut file)?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(tmp.path(), perms).map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir)
}

/// Makes the entries of folder `dir` (new files, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    // Opening a folder for reading and fsyncing it is how POSIX makes its entries durable;
    // other systems have no such call (and rename durably on their own).
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` durably and atomically, creating its folder.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    write_atomic(path, |f| f.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Writes a value as pretty JSON (and a final newline), durably and atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    json.push(b'\n');
    write_bytes(path, &json)
}

/// Writes batches to `path` in `format`, durably and atomically.
pub fn write_batches_file(
    path: &Path,
    format: FileFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    write_atomic(path, |file| {
        if format == FileFormat::Parquet {
            return write_parquet(file, schema, batches);
        }
        let mut buf = std::io::BufWriter::new(file);
        encode(&mut buf, format, schema, batches, path)?;
        buf.flush().map_err(|e| Error::io(path, e))
    })
}

/// Writes batches as text (`csv`, `json` or `ndjson`) to `out`; `target` names it in
/// errors (a file, or `<stdout>`). Parquet is binary: [`write_batches_file`] writes it.
pub fn encode(
    out: &mut dyn Write,
    format: FileFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    target: &Path,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(target, e);
    match format {
        FileFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(|e| arrow_io(e, target))?;
            }
            for b in batches {
                w.write(b).map_err(|e| arrow_io(e, target))?;
            }
        }
        FileFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| arrow_io(e, target))?;
            }
            w.finish().map_err(|e| arrow_io(e, target))?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]").map_err(io)?;
            }
            writeln!(out).map_err(io)?;
        }
        FileFormat::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| arrow_io(e, target))?;
            }
            w.finish().map_err(|e| arrow_io(e, target))?;
        }
        FileFormat::Parquet => {
            return Err(Error::Internal(
                "Parquet is written to files only (write_batches_file)".into(),
            ));
        }
    }
    Ok(())
}

/// An arrow writer's error: an I/O failure (a closed pipe, a full disk) stays an I/O error
/// on `target`, so a broken pipe is recognised as one.
fn arrow_io(e: datafusion::arrow::error::ArrowError, target: &Path) -> Error {
    use datafusion::arrow::error::ArrowError;
    match e {
        ArrowError::IoError(_, source) => Error::io(target, source),
        ArrowError::ExternalError(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => Error::io(target, *io),
            Err(other) => Error::Arrow(ArrowError::ExternalError(other)),
        },
        ArrowError::CsvError(text) if text.contains("Broken pipe") => Error::io(
            target,
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, text),
        ),
        other => Error::Arrow(other),
    }
}

/// Writes Arrow batches as one zstd Parquet file (arrow-rs): the Parquet writer for
/// everything after ingest (query results, marts, scores, exports).
pub fn write_parquet(
    file: &mut std::fs::File,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n  \"a\": 2\n}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        // Only the target is left: no temporary files beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        write_bytes(&p, b"old\n").unwrap();
        let e = write_atomic(&p, |_| Err(Error::Internal("stopped".into()))).unwrap_err();
        assert!(e.to_string().contains("stopped"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            FileFormat::for_path(Path::new("a.PARQUET")),
            FileFormat::Parquet
        );
        assert_eq!(
            FileFormat::for_path(Path::new("a.jsonl")),
            FileFormat::Ndjson
        );
        assert_eq!(FileFormat::for_path(Path::new("a")), FileFormat::Csv);
    }
}
