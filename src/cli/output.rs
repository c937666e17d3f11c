//! Writing results to stdout (or a file) in the format the user chose.
//!
//! Every command that prints rows hands Arrow record batches here, so `--format` means the same
//! everywhere: `table` (arrow's pretty printer, the default on a terminal), `csv` (the default
//! otherwise, so pipes get machine-readable output), `json` (one array), `ndjson` (one object
//! per line), `parquet` (needs `--out`).

use std::io::{IsTerminal, Write};
use std::path::Path;

use clap::ValueEnum;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

impl Format {
    /// The format of a file the user named without `--format`: from its extension (csv when
    /// the extension says nothing).
    pub fn for_file(path: &Path) -> Format {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("parquet") => Format::Parquet,
            Some("json") => Format::Json,
            Some("ndjson") | Some("jsonl") => Format::Ndjson,
            _ => Format::Csv,
        }
    }

    /// The format to use when the user gave none: table on a terminal, csv otherwise.
    pub fn resolve(given: Option<Format>) -> Format {
        given.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Csv
            }
        })
    }
}

/// Writes batches in `format` to `out`. `max_rows` limits the table format only.
pub fn write_batches(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    match format {
        Format::Table => {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            let shown: Vec<RecordBatch> = match max_rows {
                Some(max) if total > max => {
                    let mut left = max;
                    let mut v = Vec::new();
                    for b in batches {
                        if left == 0 {
                            break;
                        }
                        let take = left.min(b.num_rows());
                        v.push(b.slice(0, take));
                        left -= take;
                    }
                    v
                }
                _ => batches.to_vec(),
            };
            let text = if shown.is_empty() {
                datafusion::arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    schema.clone(),
                )])?
            } else {
                datafusion::arrow::util::pretty::pretty_format_batches(&shown)?
            };
            writeln!(out, "{text}").map_err(io)?;
            match max_rows {
                Some(max) if total > max => writeln!(
                    out,
                    "{total} rows ({max} shown; use --max-rows or --format csv for all)"
                )
                .map_err(io)?,
                _ => {
                    writeln!(out, "{total} row{}", if total == 1 { "" } else { "s" }).map_err(io)?
                }
            }
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]").map_err(io)?;
            }
            writeln!(out).map_err(io)?;
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            return Err(Error::Usage {
                arg: "--format parquet".into(),
                message: "writes a file: give --out FILE".into(),
            });
        }
    }
    out.flush().map_err(io)
}

/// Writes batches to `path` in `format` (Parquet through arrow-rs, zstd), atomically.
pub fn write_file(
    path: &Path,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    write_atomic(path, |file| {
        if format == Format::Parquet {
            return crate::warehouse::write_arrow_parquet(file, schema, batches);
        }
        let mut buf = std::io::BufWriter::new(file);
        let format = if format == Format::Table {
            Format::Csv
        } else {
            format
        };
        write_batches(&mut buf, format, schema, batches, None)
    })
}

/// Writes a result file through `write`: beside the target, then renamed into place, so a
/// killed run leaves either the previous file or the complete new one, never half a file.
pub fn write_atomic(path: &Path, write: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    write(tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?)?;
    // Temporary files are private (0600); a result file gets the usual 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(tmp.path(), perms).map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
