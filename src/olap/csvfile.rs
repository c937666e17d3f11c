//! One CSV file read on every core with its rows in file order.
//!
//! - Input: a CSV file (header row, `,` between fields, `"` around them) of at most
//!   [`MAX_BYTES`]; optionally the columns wanted.
//! - Output: its schema, inferred as DataFusion infers a CSV file's (arrow's rules over the
//!   first [`INFER_RECORDS`] records), and its record batches in file order.
//!
//! Why not a DataFusion scan: a one-partition scan decodes on one core, and a file split
//! into partitions does not come back in order (see [`super::read_in_order`]). Here the file
//! is cut at record boundaries into one piece per thread, the pieces are decoded by arrow's
//! CSV reader in parallel, and their batches are put back in order. A boundary is a newline
//! outside quotes: in RFC 4180 text a `"` opens or closes a quoted field or is half of a
//! doubled `""`, so a newline is outside quotes exactly when an even number of `"` precede
//! it. A file with a `"` anywhere else (`5 1/2" pipe`, which CSV readers take literally), or
//! that this path cannot read (an empty file, a malformed record), goes back to the
//! DataFusion scan, whose error messages the rest of ecrm already words.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// DataFusion's `schema_infer_max_records` default: the same file gets the same types.
const INFER_RECORDS: usize = 1000;
/// DataFusion's default batch size.
const BATCH_ROWS: usize = 8192;
/// Larger files are not held in memory whole: DataFusion streams them.
pub const MAX_BYTES: u64 = 1 << 30;
/// Smaller pieces cost more in threads than they save.
const PIECE_MIN: usize = 256 * 1024;

/// Reads `path` in parallel; `None` when this path does not apply (see the module doc).
pub fn read(
    path: &Path,
    columns: Option<&[String]>,
) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_BYTES {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !rfc_quotes(&bytes) {
        return Ok(None);
    }
    let Some(body) = record_end(&bytes, 0) else {
        return Ok(None);
    };
    let Ok((schema, _)) = Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(&bytes), Some(INFER_RECORDS))
    else {
        return Ok(None);
    };
    let projection: Vec<usize> = match columns {
        Some(cols) => {
            super::check_columns(path, &schema, cols)?;
            cols.iter()
                .filter_map(|c| schema.index_of(c).ok())
                .collect()
        }
        None => (0..schema.fields().len()).collect(),
    };
    let schema = Arc::new(schema);
    let pieces = pieces(&bytes, body, rayon::current_num_threads());
    let decoded: std::result::Result<Vec<Vec<RecordBatch>>, _> = pieces
        .par_iter()
        .map(|&(from, to)| decode(&bytes[from..to], &schema, &projection))
        .collect();
    match decoded {
        Ok(parts) => Ok(Some((
            Arc::new(schema.project(&projection)?),
            parts.into_iter().flatten().collect(),
        ))),
        Err(_) => Ok(None),
    }
}

/// Whether every `"` opens a field, closes one, or is doubled inside one (RFC 4180), and
/// the last quoted field is closed: then quote parity tells records apart.
fn rfc_quotes(bytes: &[u8]) -> bool {
    let mut open = false;
    let mut skip = None;
    for i in memchr::memchr_iter(b'"', bytes) {
        if skip == Some(i) {
            continue;
        }
        let next = bytes.get(i + 1).copied();
        if !open {
            if i > 0 && !matches!(bytes[i - 1], b',' | b'\n' | b'\r') {
                return false;
            }
            open = true;
        } else if next == Some(b'"') {
            skip = Some(i + 1);
        } else if matches!(next, None | Some(b',' | b'\n' | b'\r')) {
            open = false;
        } else {
            return false;
        }
    }
    !open
}

/// Decodes one piece of whole records (no header).
fn decode(
    piece: &[u8],
    schema: &SchemaRef,
    projection: &[usize],
) -> std::result::Result<Vec<RecordBatch>, datafusion::arrow::error::ArrowError> {
    ReaderBuilder::new(schema.clone())
        .with_header(false)
        .with_batch_size(BATCH_ROWS)
        .with_projection(projection.to_vec())
        .build_buffered(piece)?
        .collect()
}

/// Cuts `bytes[body..]` into at most `threads` pieces of whole records, in file order.
fn pieces(bytes: &[u8], body: usize, threads: usize) -> Vec<(usize, usize)> {
    let n = ((bytes.len() - body) / PIECE_MIN).clamp(1, threads.max(1));
    let step = (bytes.len() - body) / n;
    let mut cuts = vec![body];
    for k in 1..n {
        let target = body + k * step;
        let from = *cuts.last().unwrap_or(&body);
        if target <= from {
            continue;
        }
        // Quotes before the target decide whether it sits inside a quoted field.
        let quotes = memchr::memchr_iter(b'"', &bytes[from..target]).count();
        let cut = match quotes % 2 {
            0 => record_end(bytes, target),
            _ => record_end_quoted(bytes, target),
        };
        match cut {
            Some(c) if c < bytes.len() => cuts.push(c),
            _ => break,
        }
    }
    cuts.push(bytes.len());
    cuts.windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|(a, b)| a < b)
        .collect()
}

/// The offset after the first newline outside quotes at or after `from` (which is outside
/// quotes); `None` when there is none.
fn record_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + memchr::memchr2(b'\n', b'"', &bytes[at..])?;
        if bytes[i] == b'\n' {
            return Some(i + 1);
        }
        at = record_end_quoted_at(bytes, i + 1)?;
    }
}

/// As [`record_end`] for a `from` inside a quoted field.
fn record_end_quoted(bytes: &[u8], from: usize) -> Option<usize> {
    record_end(bytes, record_end_quoted_at(bytes, from)?)
}

/// The offset after the `"` that closes the quoted field `from` is in.
fn record_end_quoted_at(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'"', &bytes[from..]).map(|i| from + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cut lands right after a newline outside quotes, for every target offset.
    #[test]
    fn cuts_only_between_records() {
        let text = b"a,b\n1,\"x\ny\"\n2,\"\"\"q\n\"\"\"\n3,z\r\n4,\"\"\n".repeat(50);
        let body = record_end(&text, 0).unwrap();
        assert_eq!(body, 4);
        // The record starts of the text, found by a plain scan of quote parity.
        let mut starts = vec![];
        let mut quoted = false;
        for (i, &b) in text.iter().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => starts.push(i + 1),
                _ => {}
            }
        }
        for target in body..text.len() {
            let quotes = text[body..target].iter().filter(|&&b| b == b'"').count();
            let cut = match quotes % 2 {
                0 => record_end(&text, target),
                _ => record_end_quoted(&text, target),
            };
            if let Some(c) = cut {
                assert!(starts.contains(&c), "target {target} cut at {c}");
                assert!(c > target);
            }
        }
    }

    #[test]
    fn quotes_that_parity_can_follow() {
        assert!(rfc_quotes(b"a,\"b,\"\"c\"\"\nd\",\"\"\n"));
        assert!(rfc_quotes(b"\"\"\"\"\r\n1,2"));
        assert!(!rfc_quotes(b"a,5 1/2\" pipe\n"));
        assert!(!rfc_quotes(b"a,\"b\"c\n"));
        assert!(!rfc_quotes(b"a,\"open\n"));
    }

    /// The oracle: DataFusion's own scan of the same file (types inferred by its rules, one
    /// partition, so in order) gives the same schema and rows, with quoted newlines and
    /// commas, doubled quotes, blanks, dates, and a column numeric for 700 records, text
    /// after.
    #[test]
    fn reads_what_a_datafusion_scan_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.csv");
        let mut text = String::from("id,name,amount,day,late\n");
        for i in 0..30_000 {
            let name = match i % 4 {
                0 => format!("\"line\n{i}, \"\"quoted\"\"\""),
                1 => String::new(),
                _ => format!("plain {i}"),
            };
            let late = if i < 700 {
                (i % 9).to_string()
            } else {
                format!("x{i}")
            };
            let amount = if i % 5 == 0 {
                String::new()
            } else {
                format!("{}.25", i % 13)
            };
            text.push_str(&format!(
                "{i},{name},{amount},2024-03-{:02},{late}\n",
                i % 28 + 1
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let (schema, ours) = read(&path, None).unwrap().expect("read in pieces");
        let rt = super::super::runtime(Some(2)).unwrap();
        let (want_schema, want) = rt.block_on(async {
            let ctx = super::super::empty_session(&Default::default()).unwrap();
            super::super::sql(&ctx, "SET datafusion.execution.target_partitions = 1")
                .await
                .unwrap();
            super::super::register_path(&ctx, "t", &path).await.unwrap();
            let df = ctx.table("t").await.unwrap();
            let s: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            (s, df.collect().await.unwrap())
        });
        assert_eq!(schema, want_schema);
        let concat = |s: &SchemaRef, b: &[RecordBatch]| {
            datafusion::arrow::compute::concat_batches(s, b).unwrap()
        };
        assert_eq!(concat(&schema, &ours), concat(&want_schema, &want));
        assert_eq!(concat(&schema, &ours).num_rows(), 30_000);
        let cols = ["late".to_string(), "id".to_string()];
        let (s, b) = read(&path, Some(&cols)).unwrap().unwrap();
        assert_eq!(s.field(0).name(), "late");
        assert_eq!(concat(&s, &b).num_columns(), 2);
    }

    /// A file read in pieces gives the batches a one-piece read gives.
    #[test]
    fn pieces_decode_as_the_whole() {
        let mut text = b"id,name,amount\n".to_vec();
        for i in 0..40_000 {
            text.extend(format!("{i},\"n,{i}\n\"\"x\"\"\",{}.5\n", i % 7).as_bytes());
        }
        let body = record_end(&text, 0).unwrap();
        let schema = Arc::new(
            Format::default()
                .with_header(true)
                .infer_schema(Cursor::new(&text), Some(INFER_RECORDS))
                .unwrap()
                .0,
        );
        let all = [0, 1, 2];
        let cut = pieces(&text, body, 4);
        assert!(cut.len() > 1);
        let parts: Vec<RecordBatch> = cut
            .iter()
            .flat_map(|&(a, b)| decode(&text[a..b], &schema, &all).unwrap())
            .collect();
        let whole = decode(&text[body..], &schema, &all).unwrap();
        let concat =
            |b: &[RecordBatch]| datafusion::arrow::compute::concat_batches(&schema, b).unwrap();
        assert_eq!(concat(&parts), concat(&whole));
        assert_eq!(concat(&parts).num_rows(), 40_000);
    }
}
