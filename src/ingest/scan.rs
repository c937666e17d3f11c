//! The pre-scan: raw CSV, NDJSON or Parquet → chunks of raw text columns for polars, with what polars' CSV
//! reader cannot give.
//!
//! polars reads UTF-8 only, cannot say which record a bad row was, and either fails on or
//! silently pads ragged lines. This pass (the `csv` crate, one streaming read) does exactly
//! that part and nothing more:
//! - decodes each field from the source's encoding (Latin-1 through encoding_rs);
//! - numbers records (1-based data rows, header excluded) and remembers each one's byte range,
//!   so a rejected row's raw text can be quoted exactly;
//! - drops exact duplicate records (identical raw field bytes, before any cleansing), counted;
//! - rejects ragged lines (`ragged_line`) and invalid UTF-8 (`bad_encoding`);
//! - hands the rest to polars in chunks of `chunk_rows` rows, one text column per mapped
//!   canonical column, plus `__record`, `__line`, `__start`, `__end`.
//!
//! Memory: one chunk of text, plus 16 bytes per distinct record for duplicate detection.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use polars::prelude::*;

use super::contract::{Encoding, Source};
use super::reasons::Reason;
use crate::error::{Error, Result};

/// A row the scan rejected before polars saw it.
#[derive(Debug, Clone)]
pub struct ScanReject {
    pub record: u64,
    pub line: u64,
    pub start: u64,
    pub end: u64,
    pub reason: Reason,
    pub detail: String,
}

/// What the scan of one file saw.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Data records read (header excluded).
    pub rows_read: u64,
    /// Exact duplicates dropped.
    pub duplicates: u64,
    pub rejects: Vec<ScanReject>,
}

/// A `Hasher` for keys that are already uniform 128-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

/// Column buffers of the chunk being filled.
struct ChunkBuilder {
    names: Vec<String>,
    text: Vec<String>,
    ends: Vec<Vec<usize>>,
    record: Vec<u64>,
    line: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
}

impl ChunkBuilder {
    fn new(names: Vec<String>) -> Self {
        let n = names.len();
        ChunkBuilder {
            names,
            text: vec![String::new(); n],
            ends: vec![Vec::new(); n],
            record: Vec::new(),
            line: Vec::new(),
            start: Vec::new(),
            end: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.record.len()
    }

    /// Ends a record whose fields were pushed: its record number, line and byte range.
    fn finish_record(&mut self, [record, line, start, end]: [u64; 4]) {
        self.record.push(record);
        self.line.push(line);
        self.start.push(start);
        self.end.push(end);
    }

    /// Appends the mapped fields of one record (`index`: their positions in it); on a field
    /// that does not decode, takes back the fields already appended and returns its position.
    fn push_fields(
        &mut self,
        rec: &csv::ByteRecord,
        index: &[usize],
        encoding: Encoding,
    ) -> std::result::Result<(), usize> {
        for (c, &i) in index.iter().enumerate() {
            let Some(v) = decode(encoding, &rec[i]) else {
                for k in 0..c {
                    self.ends[k].pop();
                    let keep = self.ends[k].last().copied().unwrap_or(0);
                    self.text[k].truncate(keep);
                }
                return Err(i);
            };
            self.text[c].push_str(&v);
            self.ends[c].push(self.text[c].len());
        }
        Ok(())
    }

    fn take(&mut self) -> Result<DataFrame> {
        let mut cols: Vec<Column> = vec![
            Column::new("__record".into(), std::mem::take(&mut self.record)),
            Column::new("__line".into(), std::mem::take(&mut self.line)),
            Column::new("__start".into(), std::mem::take(&mut self.start)),
            Column::new("__end".into(), std::mem::take(&mut self.end)),
        ];
        for (i, name) in self.names.iter().enumerate() {
            let text = std::mem::take(&mut self.text[i]);
            let ends = std::mem::take(&mut self.ends[i]);
            let mut from = 0;
            let values = ends.iter().map(|&to| {
                let s = &text[from..to];
                from = to;
                s
            });
            let ca = StringChunked::from_iter_values(name.as_str().into(), values);
            cols.push(ca.into_column());
        }
        Ok(DataFrame::new_infer_height(cols)?)
    }
}

/// Decodes one raw field; `None` for invalid UTF-8 in a UTF-8 source.
fn decode<'a>(encoding: Encoding, bytes: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes)
            .ok()
            .map(std::borrow::Cow::Borrowed),
        Encoding::Latin1 => Some(
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0,
        ),
    }
}

/// Scans one CSV file, calling `on_chunk` with each chunk of raw text columns.
pub fn scan_csv(
    source: &Source,
    path: &Path,
    chunk_rows: usize,
    mut on_chunk: impl FnMut(DataFrame) -> Result<()>,
) -> Result<ScanOutcome> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(source.delimiter)
        .quote(source.quote)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    let mut rec = csv::ByteRecord::new();
    let (header, index) = csv_header(&mut rdr, &mut rec, source, path)?;
    let width = header.len();

    let names = source.columns.iter().map(|(n, _, _)| n.clone()).collect();
    let mut chunk = ChunkBuilder::new(names);
    let mut seen: HashSet<u128, BuildHasherDefault<PassThrough>> = HashSet::default();
    let mut out = ScanOutcome::default();
    loop {
        let read = rdr.read_byte_record(&mut rec).map_err(|e| {
            Error::input(
                path,
                format!("unreadable CSV after record {}: {e}", out.rows_read),
            )
        })?;
        if !read {
            break;
        }
        out.rows_read += 1;
        let pos = rec.position().expect("csv records carry their position");
        let (start, line) = (pos.byte(), pos.line());
        let end = rdr.position().byte();
        if !seen.insert(record_digest(&rec)) {
            out.duplicates += 1;
            continue;
        }
        let reject = |reason, detail| ScanReject {
            record: out.rows_read,
            line,
            start,
            end,
            reason,
            detail,
        };
        if rec.len() != width {
            let r = reject(
                Reason::RaggedLine,
                format!("{} fields, the header has {width}", rec.len()),
            );
            out.rejects.push(r);
            continue;
        }
        if let Err(i) = chunk.push_fields(&rec, &index, source.encoding) {
            let r = reject(
                Reason::BadEncoding,
                format!("column {} is not valid UTF-8", header[i]),
            );
            out.rejects.push(r);
            continue;
        }
        chunk.finish_record([out.rows_read, line, start, end]);
        if chunk.len() >= chunk_rows {
            on_chunk(chunk.take()?)?;
        }
    }
    if chunk.len() > 0 {
        on_chunk(chunk.take()?)?;
    }
    Ok(out)
}

/// Reads the header line (a UTF-8 byte-order mark dropped, names trimmed) and finds each
/// mapped column in it: (header, position of each of `source.columns`).
fn csv_header(
    rdr: &mut csv::Reader<std::fs::File>,
    rec: &mut csv::ByteRecord,
    source: &Source,
    path: &Path,
) -> Result<(Vec<String>, Vec<usize>)> {
    let header_read = rdr
        .read_byte_record(rec)
        .map_err(|e| Error::input(path, format!("cannot read the header line: {e}")))?;
    if !header_read {
        return Err(Error::input(path, "empty file: no header line"));
    }
    let mut header = Vec::with_capacity(rec.len());
    for (i, f) in rec.iter().enumerate() {
        let f = if i == 0 {
            f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
        } else {
            f
        };
        let Some(name) = decode(source.encoding, f) else {
            return Err(Error::input(
                path,
                format!(
                    "header field {} is not valid UTF-8: is the file Latin-1? (set encoding = \"latin-1\" in the contract)",
                    i + 1
                ),
            ));
        };
        header.push(name.trim().to_string());
    }
    let mut index = Vec::with_capacity(source.columns.len());
    for (name, _, spec) in &source.columns {
        let Some(i) = header.iter().position(|h| *h == spec.from.trim()) else {
            return Err(Error::input(
                path,
                format!(
                    "column {:?} (mapped to {name} by source {}) is not in the header; the header has: {}",
                    spec.from,
                    source.name,
                    header.join(", ")
                ),
            ));
        };
        index.push(i);
    }
    Ok((header, index))
}

/// What makes two records exact duplicates: a hash of the raw field bytes and their
/// boundaries (so `a,bc` and `ab,c` differ).
fn record_digest(rec: &csv::ByteRecord) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(rec.as_slice());
    for i in 0..rec.len() {
        h.update(&(rec.range(i).map_or(0, |r| r.end) as u32).to_le_bytes());
    }
    h.digest128()
}

/// Scans one NDJSON file (one JSON object per line), calling `on_chunk` like [`scan_csv`].
///
/// A mapped column's value is the JSON string as is, a number or boolean as its JSON text, and
/// empty for null or a missing key (then the null tokens apply). A line that is not a JSON
/// object is rejected as `malformed_record`; blank lines are skipped and not counted.
pub fn scan_ndjson(
    source: &Source,
    path: &Path,
    chunk_rows: usize,
    mut on_chunk: impl FnMut(DataFrame) -> Result<()>,
) -> Result<ScanOutcome> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Err(Error::input(path, "empty file: no records"));
    }
    let mut rdr = std::io::BufReader::with_capacity(1 << 20, file);
    let names = source.columns.iter().map(|(n, _, _)| n.clone()).collect();
    let keys: Vec<&str> = source
        .columns
        .iter()
        .map(|(_, _, spec)| spec.from.as_str())
        .collect();
    let mut chunk = ChunkBuilder::new(names);
    let mut seen: HashSet<u128, BuildHasherDefault<PassThrough>> = HashSet::default();
    let mut out = ScanOutcome::default();
    let mut buf = Vec::new();
    let (mut offset, mut line) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let (start, end) = (offset, offset + n as u64);
        offset = end;
        line += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        out.rows_read += 1;
        if !seen.insert(xxhash_rust::xxh3::xxh3_128(text)) {
            out.duplicates += 1;
            continue;
        }
        let reject = |reason, detail| ScanReject {
            record: out.rows_read,
            line,
            start,
            end,
            reason,
            detail,
        };
        let object = match std::str::from_utf8(text) {
            Err(_) => Err((
                Reason::BadEncoding,
                "the line is not valid UTF-8".to_string(),
            )),
            Ok(t) => match serde_json::from_str::<serde_json::Value>(t) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                Ok(_) => Err((
                    Reason::MalformedRecord,
                    "the line is JSON but not an object".to_string(),
                )),
                Err(e) => Err((Reason::MalformedRecord, format!("not JSON: {e}"))),
            },
        };
        let object = match object {
            Ok(o) => o,
            Err((reason, detail)) => {
                out.rejects.push(reject(reason, detail));
                continue;
            }
        };
        for (c, key) in keys.iter().enumerate() {
            match object.get(*key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) => chunk.text[c].push_str(s),
                Some(other) => chunk.text[c].push_str(&other.to_string()),
            }
            chunk.ends[c].push(chunk.text[c].len());
        }
        chunk.finish_record([out.rows_read, line, start, end]);
        if chunk.len() >= chunk_rows {
            on_chunk(chunk.take()?)?;
        }
    }
    if chunk.len() > 0 {
        on_chunk(chunk.take()?)?;
    }
    Ok(out)
}

/// Scans one Parquet file, calling `on_chunk` like [`scan_csv`].
///
/// Every value is read through its text form (polars' cast to string: dates as `%Y-%m-%d`,
/// timestamps as `%Y-%m-%d %H:%M:%S%.f`), so the contract's formats and rules apply as for
/// text files. A row's raw text (quoted in rejects) is all its values joined by commas, nulls
/// empty. Rows are exact duplicates when every field is equal, a null equal only to a null:
/// they are compared by a key that keeps the field boundaries (each value with its length,
/// nulls marked), so `("a,b", "c")` and `("a", "b,c")`, or `(NULL, "")` and `("", NULL)`,
/// are different rows although their raw text is the same. Record and line are the 1-based
/// row number.
/// Unlike the text formats, the file is read whole before it is chunked (Parquet files are
/// compressed and columnar; a reader by row group would bound memory further).
pub fn scan_parquet(
    source: &Source,
    path: &Path,
    chunk_rows: usize,
    mut on_chunk: impl FnMut(DataFrame) -> Result<()>,
) -> Result<ScanOutcome> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::input(path, format!("cannot be read as Parquet: {e}")))?;
    let total = df.height() as u64;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    for (name, _, spec) in &source.columns {
        if !names.contains(&spec.from) {
            return Err(Error::input(
                path,
                format!(
                    "column {:?} (mapped to {name} by source {}) is not in the file; its columns are: {}",
                    spec.from,
                    source.name,
                    names.join(", ")
                ),
            ));
        }
    }
    let all_text: Vec<Expr> = names
        .iter()
        .map(|n| col(n.as_str()).cast(DataType::String).fill_null(lit("")))
        .collect();
    let mut select = vec![
        col("__idx").cast(DataType::UInt64).alias("__record"),
        col("__idx").cast(DataType::UInt64).alias("__line"),
        lit(0u64).cast(DataType::UInt64).alias("__start"),
        lit(0u64).cast(DataType::UInt64).alias("__end"),
    ];
    select.extend(source.columns.iter().map(|(name, _, spec)| {
        col(spec.from.as_str())
            .cast(DataType::String)
            .alias(name.as_str())
    }));
    select.push(concat_str(all_text, ",", false).alias("__raw"));
    let rows = df
        .lazy()
        .with_row_index("__idx", Some(1))
        .filter(row_key(&names).is_first_distinct())
        .select(select)
        .collect()?;
    let out = ScanOutcome {
        rows_read: total,
        duplicates: total - rows.height() as u64,
        rejects: Vec::new(),
    };
    let mut offset = 0;
    while offset < rows.height() {
        on_chunk(rows.slice(offset as i64, chunk_rows))?;
        offset += chunk_rows;
    }
    Ok(out)
}

/// A text key of a row's fields that keeps their boundaries: per field `N` for a null, else
/// its length in bytes, `:` and its text (a length-prefixed encoding is unambiguous).
fn row_key(names: &[String]) -> Expr {
    let fields: Vec<Expr> = names
        .iter()
        .map(|n| {
            let text = col(n.as_str()).cast(DataType::String);
            when(text.clone().is_null())
                .then(lit("N"))
                .otherwise(concat_str(
                    [
                        text.clone().str().len_bytes().cast(DataType::String),
                        lit(":"),
                        text,
                    ],
                    "",
                    false,
                ))
        })
        .collect();
    concat_str(fields, "", false)
}

/// Reads the raw text of records by byte range, decoded from the source's encoding (invalid
/// UTF-8 replaced) and without the line terminator.
pub fn read_raw(path: &Path, encoding: Encoding, ranges: &[(u64, u64)]) -> Result<Vec<String>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::with_capacity(ranges.len());
    let mut buf = Vec::new();
    for &(start, end) in ranges {
        buf.resize((end - start) as usize, 0);
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(path, e))?;
        file.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = match encoding {
            Encoding::Utf8 => String::from_utf8_lossy(&buf).into_owned(),
            Encoding::Latin1 => encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(&buf)
                .0
                .into_owned(),
        };
        out.push(text);
    }
    Ok(out)
}
