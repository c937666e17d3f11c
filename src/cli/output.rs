//! Writing results to stdout (or a file) in the format the user chose.
//!
//! Every command that prints rows hands Arrow record batches here, so `--format` means the same
//! everywhere: `table` (arrow's pretty printer, the default on a terminal), `csv` (the default
//! otherwise, so pipes get machine-readable output), `json` (one array), `ndjson` (one object
//! per line), `parquet` (needs `--out`).

use std::io::{IsTerminal, Write};
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::warehouse::files::{self, FileFormat};

crate::choices! {
    /// Output formats: a result file's, or a table printed for people.
    pub enum Format {
        /// An aligned table (arrow's pretty printer).
        Table = "table",
        Csv = "csv",
        Json = "json",
        Ndjson = "ndjson",
        Parquet = "parquet",
    }
}

impl Format {
    /// The format of a file the user named without `--format`: from its extension (csv when
    /// the extension says nothing).
    pub fn for_file(path: &Path) -> Format {
        Format::from(FileFormat::for_path(path))
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

    /// The file format, or None for a printed table.
    pub fn file(self) -> Option<FileFormat> {
        match self {
            Format::Table => None,
            Format::Csv => Some(FileFormat::Csv),
            Format::Json => Some(FileFormat::Json),
            Format::Ndjson => Some(FileFormat::Ndjson),
            Format::Parquet => Some(FileFormat::Parquet),
        }
    }
}

impl From<FileFormat> for Format {
    fn from(f: FileFormat) -> Format {
        match f {
            FileFormat::Csv => Format::Csv,
            FileFormat::Json => Format::Json,
            FileFormat::Ndjson => Format::Ndjson,
            FileFormat::Parquet => Format::Parquet,
        }
    }
}

/// Writes batches in `format` to stdout (`out`). `max_rows` limits the table format only.
pub fn write_batches(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<()> {
    let stdout = Path::new("<stdout>");
    let io = |e: std::io::Error| Error::io(stdout, e);
    match format.file() {
        Some(FileFormat::Parquet) => {
            return Err(Error::Usage {
                arg: "--format parquet".into(),
                message: "writes a file: give --out FILE".into(),
            });
        }
        Some(file) => files::encode(out, file, schema, batches, stdout)?,
        None => table(out, schema, batches, max_rows)?,
    }
    out.flush().map_err(io)
}

/// Batches as an aligned table, at most `max_rows` of them, and a row count.
fn table(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
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
        .map_err(io),
        _ => writeln!(out, "{total} row{}", if total == 1 { "" } else { "s" }).map_err(io),
    }
}

/// Writes batches to the file `path` in `format` (a table is written as CSV), durably and
/// atomically.
pub fn write_file(
    path: &Path,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let format = format.file().unwrap_or(FileFormat::Csv);
    files::write_batches_file(path, format, schema, batches)
}
