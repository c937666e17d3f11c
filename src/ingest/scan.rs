//! The pre-scan: raw CSV, whitespace-separated, fixed-width, NDJSON or Parquet → chunks of
//! raw text columns for polars, with what polars' CSV reader cannot give.
//!
//! polars reads UTF-8 only, cannot say which record a bad row was, and either fails on or
//! silently pads ragged lines. This pass (the `csv` crate or a line splitter, one streaming
//! read) does exactly that part and nothing more:
//! - skips a UTF-8 byte-order mark; takes CRLF or LF line ends;
//! - finds each mapped column by header name or position, joins several raw columns into
//!   one, and fills constants (see [`super::contract::Origin`]);
//! - decodes each field from the source's encoding (Latin-1 through encoding_rs);
//! - numbers records (1-based data rows, header excluded) and remembers each one's byte range,
//!   so a rejected row's raw text can be quoted exactly;
//! - digests each record's raw field bytes, so that [`Repeats`] drops exact duplicates
//!   (before any cleansing), counted, unless the contract keeps them
//!   (`exact_duplicates = "keep"`);
//! - rejects ragged lines (`ragged_line`) and invalid UTF-8 (`bad_encoding`);
//! - makes each field that is a null token once trimmed a null, and marks the columns where
//!   some other value has white space at an end (cleansing trims only those);
//! - hands the rest to polars in chunks of `chunk_rows` rows ([`Chunk`]), one text column per
//!   mapped canonical column, plus `__record`, `__line`, `__start`, `__end`.
//!
//! Memory: one chunk of text, plus 16 bytes per distinct record for duplicate detection.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use polars::prelude::*;

use super::contract::{Encoding, ExactDuplicates, Field, Layout, Origin, Source};
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

/// What the scan of one file saw. For text and NDJSON files the exact duplicates are only
/// known once [`Repeats::settle`] has counted them and taken them out of `rejects`.
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

/// A chunk of raw text columns, one per mapped canonical column in the source's order, plus
/// `__record`, `__line`, `__start` and `__end`.
pub struct Chunk {
    pub frame: DataFrame,
    /// `Some` when the scan already made every null token (compared after trimming) a null:
    /// then, per column, whether some other value has white space at either end (only those
    /// columns are left to trim). `None` leaves both steps to cleansing.
    pub padded: Option<Vec<bool>>,
    /// The digests of every record read since the last chunk (rejected ones too), in record
    /// order from record `digests_from`; empty when exact duplicates are kept (or found
    /// otherwise, as in Parquet). [`Repeats`] drops the repeated ones.
    pub digests: Vec<u128>,
    pub digests_from: u64,
}

impl Chunk {
    /// A chunk that cleansing normalises whole, without digests.
    pub fn of(frame: DataFrame) -> Chunk {
        Chunk {
            frame,
            padded: None,
            digests: Vec::new(),
            digests_from: 0,
        }
    }
}

/// Exact duplicates found from the chunks' digests, in record order: a record whose digest
/// was seen before in the file is dropped (from its chunk, or from the scan's rejects).
///
/// This runs on the consuming thread, not the scanning one: the set's inserts miss the
/// cache (16 bytes per distinct record, hundreds of megabytes for a big file) and were a
/// third of the scan's time, which is the load's slowest step.
#[derive(Default)]
pub struct Repeats {
    seen: HashSet<u128, BuildHasherDefault<PassThrough>>,
    /// The records dropped, ascending.
    records: Vec<u64>,
}

impl Repeats {
    /// The chunk without the rows that repeat an earlier record.
    pub fn drop_from(&mut self, mut chunk: Chunk) -> Result<Chunk> {
        let before = self.records.len();
        for (i, d) in std::mem::take(&mut chunk.digests).into_iter().enumerate() {
            if !self.seen.insert(d) {
                self.records.push(chunk.digests_from + i as u64);
            }
        }
        let repeated = &self.records[before..];
        if repeated.is_empty() {
            return Ok(chunk);
        }
        let keep: Vec<bool> = chunk
            .frame
            .column("__record")?
            .u64()?
            .into_no_null_iter()
            .map(|r| repeated.binary_search(&r).is_err())
            .collect();
        chunk.frame = chunk
            .frame
            .filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
        Ok(chunk)
    }

    /// Counts the dropped records as duplicates, and takes those the scan rejected out of its
    /// rejects (a repeated record is a duplicate, whatever is wrong with it).
    pub fn settle(self, out: &mut ScanOutcome) {
        out.rejects
            .retain(|r| self.records.binary_search(&r.record).is_err());
        out.duplicates += self.records.len() as u64;
    }
}

/// Column buffers of the chunk being filled. Null tokens are found here, one comparison per
/// field, rather than by polars, which would copy every string column twice (trimmed, then
/// nulled) for the few values that change: `strip_chars` alone was 10 % of a load's CPU.
struct ChunkBuilder {
    names: Vec<String>,
    null_tokens: Vec<String>,
    /// The empty value is a null token (the default); empty values are the common case.
    empty_is_null: bool,
    longest_token: usize,
    text: Vec<String>,
    ends: Vec<Vec<usize>>,
    /// Per column, the chunk's rows whose value is a null token, ascending.
    nulls: Vec<Vec<usize>>,
    /// Per column, whether some value that is not a null token has white space at either end.
    padded: Vec<bool>,
    digests: Vec<u128>,
    digests_from: u64,
    record: Vec<u64>,
    line: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
}

impl ChunkBuilder {
    fn new(names: Vec<String>, null_tokens: &[String]) -> Self {
        let n = names.len();
        ChunkBuilder {
            names,
            null_tokens: null_tokens.to_vec(),
            empty_is_null: null_tokens.iter().any(String::is_empty),
            longest_token: null_tokens.iter().map(String::len).max().unwrap_or(0),
            text: vec![String::new(); n],
            ends: vec![Vec::new(); n],
            nulls: vec![Vec::new(); n],
            padded: vec![false; n],
            digests: Vec::new(),
            digests_from: 0,
            record: Vec::new(),
            line: Vec::new(),
            start: Vec::new(),
            end: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.record.len()
    }

    /// Whether the chunk has rows, or digests of records read since the last one.
    fn is_pending(&self) -> bool {
        self.len() > 0 || !self.digests.is_empty()
    }

    /// Adds the digest of record number `record` (see [`Chunk::digests`]).
    fn digest(&mut self, record: u64, digest: u128) {
        if self.digests.is_empty() {
            self.digests_from = record;
        }
        self.digests.push(digest);
    }

    /// Ends a record whose fields were pushed: its record number, line and byte range.
    fn finish_record(&mut self, [record, line, start, end]: [u64; 4]) {
        self.record.push(record);
        self.line.push(line);
        self.start.push(start);
        self.end.push(end);
    }

    /// Appends the mapped columns of one record; on a field that does not decode, takes
    /// back the columns already appended and returns the field's position.
    fn push_fields(
        &mut self,
        rec: &csv::ByteRecord,
        picks: &[Pick],
        encoding: Encoding,
    ) -> std::result::Result<(), usize> {
        for (c, pick) in picks.iter().enumerate() {
            match pick {
                Pick::Fields(index, _) if index.len() == 1 => {
                    let Some(v) = decode(encoding, &rec[index[0]]) else {
                        self.take_back(c);
                        return Err(index[0]);
                    };
                    self.text[c].push_str(&v);
                }
                Pick::Fields(index, join) => {
                    for (k, &i) in index.iter().enumerate() {
                        let Some(v) = decode(encoding, &rec[i]) else {
                            self.text[c].truncate(self.ends[c].last().copied().unwrap_or(0));
                            self.take_back(c);
                            return Err(i);
                        };
                        if k > 0 {
                            self.text[c].push_str(join);
                        }
                        self.text[c].push_str(v.trim());
                    }
                }
                Pick::Value(v) => self.text[c].push_str(v),
            }
            self.end_value(c);
        }
        Ok(())
    }

    /// Appends the mapped columns of one JSON object: a string as is (trimmed when several
    /// keys are joined), a number or boolean as its JSON text, empty for null or a missing key.
    fn push_json(
        &mut self,
        object: &serde_json::Map<String, serde_json::Value>,
        columns: &[super::contract::Column],
    ) {
        for (c, column) in columns.iter().enumerate() {
            match &column.origin {
                Origin::Value(v) => self.text[c].push_str(v),
                // Filled in by cleansing, from `__record`.
                Origin::Record => {}
                Origin::Fields { fields, join } => {
                    for (k, f) in fields.iter().enumerate() {
                        let value = match f {
                            Field::Name(key) => object.get(key),
                            Field::Position(_) => None,
                        };
                        if k > 0 {
                            self.text[c].push_str(join);
                        }
                        match value {
                            None | Some(serde_json::Value::Null) => {}
                            Some(serde_json::Value::String(s)) if fields.len() > 1 => {
                                self.text[c].push_str(s.trim())
                            }
                            Some(serde_json::Value::String(s)) => self.text[c].push_str(s),
                            Some(other) => self.text[c].push_str(&other.to_string()),
                        }
                    }
                }
            }
            self.end_value(c);
        }
    }

    /// Ends column `c`'s value (the text appended since its last value): a null token
    /// becomes a null, and a value with white space at an end marks the column as padded.
    fn end_value(&mut self, c: usize) {
        let from = self.ends[c].last().copied().unwrap_or(0);
        let value = &self.text[c][from..];
        // Most values begin and end with a visible ASCII character: nothing to trim, and
        // longer than any null token.
        let visible = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
        let bytes = value.as_bytes();
        let trimmed = match visible(bytes.first()) && visible(bytes.last()) {
            true => value,
            false => value.trim(),
        };
        let null = match trimmed.len() {
            0 => self.empty_is_null,
            n => n <= self.longest_token && self.null_tokens.iter().any(|t| t == trimmed),
        };
        if null {
            self.nulls[c].push(self.ends[c].len());
            self.text[c].truncate(from);
        } else if trimmed.len() != value.len() {
            self.padded[c] = true;
        }
        self.ends[c].push(self.text[c].len());
    }

    /// Removes the last value of the first `n` columns (a record that failed half-way).
    fn take_back(&mut self, n: usize) {
        for k in 0..n {
            self.ends[k].pop();
            if self.nulls[k].last() == Some(&self.ends[k].len()) {
                self.nulls[k].pop();
            }
            let keep = self.ends[k].last().copied().unwrap_or(0);
            self.text[k].truncate(keep);
        }
    }

    fn take(&mut self) -> Result<Chunk> {
        let mut cols: Vec<Column> = vec![
            Column::new("__record".into(), std::mem::take(&mut self.record)),
            Column::new("__line".into(), std::mem::take(&mut self.line)),
            Column::new("__start".into(), std::mem::take(&mut self.start)),
            Column::new("__end".into(), std::mem::take(&mut self.end)),
        ];
        for (i, name) in self.names.iter().enumerate() {
            let text = std::mem::take(&mut self.text[i]);
            let ends = std::mem::take(&mut self.ends[i]);
            let nulls = std::mem::take(&mut self.nulls[i]);
            let mut from = 0;
            let values = ends.iter().map(|&to| {
                let s = &text[from..to];
                from = to;
                s
            });
            let ca = if nulls.is_empty() {
                StringChunked::from_iter_values(name.as_str().into(), values)
            } else {
                let mut next_null = nulls.iter().peekable();
                let values = values.enumerate().map(|(row, v)| {
                    let null = next_null.next_if_eq(&&row).is_some();
                    (!null).then_some(v)
                });
                StringChunked::from_iter_options(name.as_str().into(), values)
            };
            cols.push(ca.into_column());
        }
        let padded = std::mem::replace(&mut self.padded, vec![false; self.names.len()]);
        Ok(Chunk {
            frame: DataFrame::new_infer_height(cols)?,
            padded: Some(padded),
            digests: std::mem::take(&mut self.digests),
            digests_from: self.digests_from,
        })
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

/// What a chunk column is made of: raw fields by position (trimmed and joined by the
/// string when several), or a constant.
#[derive(Debug, Clone)]
enum Pick {
    Fields(Vec<usize>, String),
    Value(String),
}

/// The record source of a text file: the csv crate for delimited files, a line splitter for
/// whitespace-separated and fixed-width ones. A UTF-8 byte-order mark is skipped (and counted
/// in byte offsets); CRLF line ends are handled by both.
enum Records {
    Csv {
        rdr: csv::Reader<std::fs::File>,
        bom: u64,
    },
    Lines {
        rdr: std::io::BufReader<std::fs::File>,
        layout: Layout,
        buf: Vec<u8>,
        offset: u64,
        line: u64,
    },
}

/// Where a record was: its first line and byte range (end exclusive).
#[derive(Debug, Clone, Copy)]
struct Place {
    line: u64,
    start: u64,
    end: u64,
}

impl Records {
    fn open(source: &Source, path: &Path) -> Result<Records> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = [0u8; 3];
        let n = read_up_to(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
        let bom = if head[..n] == *b"\xEF\xBB\xBF" { 3 } else { 0 };
        file.seek(SeekFrom::Start(bom))
            .map_err(|e| Error::io(path, e))?;
        Ok(match &source.layout {
            Layout::Delimited { delimiter, quote } => Records::Csv {
                rdr: csv::ReaderBuilder::new()
                    .delimiter(*delimiter)
                    .quote(*quote)
                    .has_headers(false)
                    .flexible(true)
                    .buffer_capacity(1 << 20)
                    .from_reader(file),
                bom,
            },
            layout => Records::Lines {
                rdr: std::io::BufReader::with_capacity(1 << 20, file),
                layout: layout.clone(),
                buf: Vec::new(),
                offset: bom,
                line: 0,
            },
        })
    }

    /// Reads the next record into `rec`; `None` at the end. `after` names the place of an
    /// unreadable file in the error (`in the header line`, `after record 12`).
    fn next(
        &mut self,
        rec: &mut csv::ByteRecord,
        path: &Path,
        after: &dyn std::fmt::Display,
    ) -> Result<Option<Place>> {
        match self {
            Records::Csv { rdr, bom } => {
                let read = rdr
                    .read_byte_record(rec)
                    .map_err(|e| Error::input(path, format!("unreadable CSV {after}: {e}")))?;
                if !read {
                    return Ok(None);
                }
                let pos = rec.position().expect("csv records carry their position");
                Ok(Some(Place {
                    line: pos.line(),
                    start: pos.byte() + *bom,
                    end: rdr.position().byte() + *bom,
                }))
            }
            Records::Lines {
                rdr,
                layout,
                buf,
                offset,
                line,
            } => loop {
                use std::io::BufRead;
                buf.clear();
                let n = rdr.read_until(b'\n', buf).map_err(|e| Error::io(path, e))?;
                if n == 0 {
                    return Ok(None);
                }
                let place = Place {
                    line: *line + 1,
                    start: *offset,
                    end: *offset + n as u64,
                };
                *line += 1;
                *offset += n as u64;
                let text = buf.strip_suffix(b"\n").unwrap_or(buf);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text.iter().all(|b| *b == b' ' || *b == b'\t') {
                    // Blank lines are no records (as the csv crate skips empty ones).
                    continue;
                }
                rec.clear();
                split_line(text, layout, rec);
                return Ok(Some(place));
            },
        }
    }
}

/// `after record N`, for an error's place.
struct After(u64);

impl std::fmt::Display for After {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "after record {}", self.0)
    }
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Splits one line (without its line end) into fields: runs of spaces and tabs, or
/// fixed-width spans (a span past the line's end is empty: lines are often right-trimmed).
fn split_line(text: &[u8], layout: &Layout, rec: &mut csv::ByteRecord) {
    match layout {
        Layout::Fixed(spans) => {
            for &(start, width) in spans {
                let from = start.min(text.len());
                let to = (start + width).min(text.len());
                rec.push_field(&text[from..to]);
            }
        }
        _ => {
            for f in text
                .split(|b| *b == b' ' || *b == b'\t')
                .filter(|f| !f.is_empty())
            {
                rec.push_field(f);
            }
        }
    }
}

/// Scans one text file (CSV, whitespace-separated or fixed-width), calling `on_chunk` with
/// each chunk of raw text columns.
///
/// With a header, columns are found by name (or position) in it and a record with another
/// number of fields is a `ragged_line`; without one, the first record's number of fields is
/// the file's (fixed-width records always have the layout's).
pub fn scan_text(
    source: &Source,
    path: &Path,
    chunk_rows: usize,
    mut on_chunk: impl FnMut(Chunk) -> Result<()>,
) -> Result<ScanOutcome> {
    let mut records = Records::open(source, path)?;
    let mut rec = csv::ByteRecord::new();
    let header = match source.header {
        true => Some(text_header(&mut records, &mut rec, source, path)?),
        false => None,
    };
    // Without a header, the width and the picks come from the first record.
    let mut width = header.as_ref().map(Vec::len);
    let mut picks = match &header {
        Some(h) => Some(text_picks(source, path, Some(h), h.len())?),
        None => None,
    };
    let names = source.columns.iter().map(|c| c.name.clone()).collect();
    let mut chunk = ChunkBuilder::new(names, &source.null_tokens);
    let keep_duplicates = source.exact_duplicates == ExactDuplicates::Keep;
    let mut out = ScanOutcome::default();
    while let Some(place) = records.next(&mut rec, path, &After(out.rows_read))? {
        out.rows_read += 1;
        if !keep_duplicates {
            chunk.digest(out.rows_read, record_digest(&rec));
        }
        let width = *width.get_or_insert(rec.len());
        let picks = match &mut picks {
            Some(p) => &*p,
            None => picks.insert(text_picks(source, path, None, width)?),
        };
        let reject = |reason, detail| ScanReject {
            record: out.rows_read,
            line: place.line,
            start: place.start,
            end: place.end,
            reason,
            detail,
        };
        if rec.len() != width {
            let has = if header.is_some() {
                "the header has"
            } else {
                "the first record has"
            };
            let r = reject(
                Reason::RaggedLine,
                format!("{} fields, {has} {width}", rec.len()),
            );
            out.rejects.push(r);
            continue;
        }
        if let Err(i) = chunk.push_fields(&rec, picks, source.encoding) {
            let column = match &header {
                Some(h) => h[i].clone(),
                None => format!("{}", i + 1),
            };
            let r = reject(
                Reason::BadEncoding,
                format!("column {column} is not valid UTF-8"),
            );
            out.rejects.push(r);
            continue;
        }
        chunk.finish_record([out.rows_read, place.line, place.start, place.end]);
        if chunk.len() >= chunk_rows {
            on_chunk(chunk.take()?)?;
        }
    }
    if chunk.is_pending() {
        on_chunk(chunk.take()?)?;
    }
    Ok(out)
}

/// Reads the header line (names decoded and trimmed).
fn text_header(
    records: &mut Records,
    rec: &mut csv::ByteRecord,
    source: &Source,
    path: &Path,
) -> Result<Vec<String>> {
    let read = records.next(rec, path, &"in the header line")?;
    if read.is_none() {
        return Err(Error::input(path, "empty file: no header line"));
    }
    let mut header = Vec::with_capacity(rec.len());
    for (i, f) in rec.iter().enumerate() {
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
    Ok(header)
}

/// Each mapped column's fields, by position in records of `width` fields: names looked up
/// in the header, positions checked against the width.
fn text_picks(
    source: &Source,
    path: &Path,
    header: Option<&Vec<String>>,
    width: usize,
) -> Result<Vec<Pick>> {
    let mut picks = Vec::with_capacity(source.columns.len());
    for c in &source.columns {
        let (fields, join) = match &c.origin {
            Origin::Value(v) => {
                picks.push(Pick::Value(v.clone()));
                continue;
            }
            // Filled in by cleansing, from `__record`.
            Origin::Record => {
                picks.push(Pick::Value(String::new()));
                continue;
            }
            Origin::Fields { fields, join } => (fields, join),
        };
        let mut index = Vec::with_capacity(fields.len());
        for f in fields {
            let i = match (f, header) {
                (Field::Position(p), _) => Some(*p).filter(|p| *p < width),
                (Field::Name(n), Some(h)) => h.iter().position(|x| x == n),
                (Field::Name(_), None) => None,
            };
            let Some(i) = i else {
                let has = match header {
                    Some(h) => format!("is not in the header; the header has: {}", h.join(", ")),
                    None => format!("is not in the file; the first record has {width} fields"),
                };
                return Err(Error::input(
                    path,
                    format!(
                        "column {} (mapped to {} by source {}) {has}",
                        c.origin_text(),
                        c.name,
                        source.name
                    ),
                ));
            };
            index.push(i);
        }
        picks.push(Pick::Fields(index, join.clone()));
    }
    Ok(picks)
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

/// Scans one NDJSON file (one JSON object per line), calling `on_chunk` like [`scan_text`].
///
/// A mapped column's value is the JSON string as is, a number or boolean as its JSON text, and
/// empty for null or a missing key (then the null tokens apply). A line that is not a JSON
/// object is rejected as `malformed_record`; blank lines are skipped and not counted.
pub fn scan_ndjson(
    source: &Source,
    path: &Path,
    chunk_rows: usize,
    mut on_chunk: impl FnMut(Chunk) -> Result<()>,
) -> Result<ScanOutcome> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Err(Error::input(path, "empty file: no records"));
    }
    let mut rdr = std::io::BufReader::with_capacity(1 << 20, file);
    let names = source.columns.iter().map(|c| c.name.clone()).collect();
    let mut chunk = ChunkBuilder::new(names, &source.null_tokens);
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
        let text = match line {
            1 => text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text),
            _ => text,
        };
        if text.is_empty() {
            continue;
        }
        out.rows_read += 1;
        if source.exact_duplicates == ExactDuplicates::Drop {
            chunk.digest(out.rows_read, xxhash_rust::xxh3::xxh3_128(text));
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
        chunk.push_json(&object, &source.columns);
        chunk.finish_record([out.rows_read, line, start, end]);
        if chunk.len() >= chunk_rows {
            on_chunk(chunk.take()?)?;
        }
    }
    if chunk.is_pending() {
        on_chunk(chunk.take()?)?;
    }
    Ok(out)
}

/// Scans one Parquet file, calling `on_chunk` like [`scan_text`].
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
    mut on_chunk: impl FnMut(Chunk) -> Result<()>,
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
    for c in &source.columns {
        let Origin::Fields { fields, .. } = &c.origin else {
            continue;
        };
        let missing = fields.iter().find_map(|f| match f {
            Field::Name(n) if names.contains(n) => None,
            Field::Name(n) => Some(format!("{n:?}")),
            Field::Position(p) => Some((p + 1).to_string()),
        });
        if let Some(m) = missing {
            return Err(Error::input(
                path,
                format!(
                    "column {m} (mapped to {} by source {}) is not in the file; its columns are: {}",
                    c.name,
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
    select.extend(source.columns.iter().map(parquet_column));
    select.push(concat_str(all_text, ",", false).alias("__raw"));
    let mut rows = df.lazy().with_row_index("__idx", Some(1));
    if source.exact_duplicates == ExactDuplicates::Drop {
        rows = rows.filter(row_key(&names).is_first_distinct());
    }
    let rows = rows.select(select).collect()?;
    let out = ScanOutcome {
        rows_read: total,
        duplicates: total - rows.height() as u64,
        rejects: Vec::new(),
    };
    let mut offset = 0;
    while offset < rows.height() {
        on_chunk(Chunk::of(rows.slice(offset as i64, chunk_rows)))?;
        offset += chunk_rows;
    }
    Ok(out)
}

/// A mapped column's text from a Parquet file's columns (see [`Origin`]).
fn parquet_column(c: &super::contract::Column) -> Expr {
    let text = |f: &Field| match f {
        Field::Name(n) => col(n.as_str()).cast(DataType::String),
        // Positions are refused for Parquet sources by the contract and by the check above.
        Field::Position(_) => lit(NULL).cast(DataType::String),
    };
    let e = match &c.origin {
        Origin::Value(v) => lit(v.as_str()),
        Origin::Record => col("__idx").cast(DataType::String),
        Origin::Fields { fields, .. } if fields.len() == 1 => text(&fields[0]),
        Origin::Fields { fields, join } => concat_str(
            fields
                .iter()
                .map(|f| text(f).str().strip_chars(lit(NULL)).fill_null(lit("")))
                .collect::<Vec<_>>(),
            join,
            false,
        ),
    };
    e.alias(c.name.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &[u8], layout: &Layout) -> Vec<String> {
        let mut rec = csv::ByteRecord::new();
        split_line(text, layout, &mut rec);
        rec.iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn whitespace_runs_separate_fields_and_the_ends_do_not_count() {
        assert_eq!(
            fields(b" 00001 19970101  1   11.77", &Layout::Whitespace),
            ["00001", "19970101", "1", "11.77"]
        );
        assert_eq!(fields(b"\ta \t b\t", &Layout::Whitespace), ["a", "b"]);
    }

    #[test]
    fn fixed_spans_cut_bytes_and_a_short_line_leaves_them_empty() {
        let layout = Layout::Fixed(vec![(0, 3), (3, 2), (5, 4), (1, 2)]);
        assert_eq!(fields(b"abcdefghi", &layout), ["abc", "de", "fghi", "bc"]);
        assert_eq!(fields(b"abcd", &layout), ["abc", "d", "", "bc"]);
    }
}
