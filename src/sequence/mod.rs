//! Sequential patterns: what customers buy, then buy next.
//!
//! - Input: each customer's invoices in time order from the warehouse (an invoice is an event,
//!   its products — or with [`Level::Category`] their categories — an itemset; returns and
//!   service lines left out; time in days); or with [`SequenceSource::Web`] each web
//!   session's steps in click order (a sequence per session as [`crate::web`] cuts them, an
//!   event per click that names a page: its page, else the product viewed, or with
//!   [`Level::Category`] its category, as `ecrm web paths` reads them; time is the click's
//!   position, so a gap of 1 is the next step); or a file: [`SequenceFormat::Table`], a
//!   sequence-id / time / item table (CSV with a header, or Parquet; the time a date, a
//!   timestamp or a number of days; lines with one id and time form one event), or
//!   [`SequenceFormat::Spmf`], SPMF's text format (one sequence per line, items as numbers,
//!   `-1` ending an itemset and `-2` the sequence; time is the event's position).
//! - Output: patterns (`pattern`, `elements`, `items`, `count`, `support`) as an Arrow
//!   batch, by descending count then pattern text; a pattern is written as its elements joined
//!   by ` -> `, each element's items sorted and joined by ` | `, e.g. `A | B -> C`.
//! - Parameters: see [`prefixspan`]; `--max-gap-days D` asks that consecutive elements be at
//!   most D days apart ("bought A, then B within 30 days").

pub mod prefixspan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::basket::Level;
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions, text_column};
use crate::param::Fraction;
use crate::warehouse::tables;
use crate::web::WebSessionsParams;
use crate::web::paths::{self, PathLevel};
use linfa::ParamGuard;
use prefixspan::{Patterns, Sequences};

pub use prefixspan::{PrefixSpanParams, ValidPrefixSpanParams};

/// Sequential-pattern parameters: `ecrm sequence`'s options and a pipeline `sequence`
/// stage's keys, one type for both; [`Default`] is the one place a default is written.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceParams {
    /// Least share of sequences (customers) a pattern must be in, exactly, as for baskets.
    #[arg(long, value_name = "X", required = true)]
    pub min_support: Option<Fraction>,
    /// Patterns of at most this many items in all.
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Consecutive elements of a pattern at most this many days apart (file sequences: in
    /// the file's time unit; SPMF: events).
    #[arg(long, value_name = "D")]
    pub max_gap_days: Option<i64>,
    /// Stop with an error beyond this many patterns.
    #[arg(long, value_name = "N", default_value_t = SequenceParams::default().max_patterns)]
    pub max_patterns: usize,
    /// Warehouse sequences of products or of their categories (web: of pages or of their
    /// categories).
    #[arg(long, value_enum, default_value_t = SequenceParams::default().level, conflicts_with = "sequences")]
    pub level: Level,
    /// Warehouse sequences of customers' orders, or of web sessions' clicks.
    #[arg(long, value_enum, default_value_t = SequenceParams::default().source, conflicts_with = "sequences")]
    pub source: SequenceSource,
}

impl Default for SequenceParams {
    /// No support (it must be given), no length or gap limit, at most
    /// [`prefixspan::DEFAULT_MAX_PATTERNS`] patterns, products, orders.
    fn default() -> Self {
        SequenceParams {
            min_support: None,
            max_len: None,
            max_gap_days: None,
            max_patterns: prefixspan::DEFAULT_MAX_PATTERNS,
            level: Level::Product,
            source: SequenceSource::Orders,
        }
    }
}

impl SequenceParams {
    /// Checks each parameter; the first failure names its key and what is allowed.
    pub fn check(self) -> Result<ValidSequenceParams> {
        let min_support = self.min_support.ok_or_else(|| {
            Error::param(
                "min_support",
                "missing: the least share of sequences a pattern must be in, e.g. 0.01",
            )
        })?;
        let mining = PrefixSpanParams::new(min_support)
            .max_len(self.max_len)
            .max_gap(self.max_gap_days)
            .max_patterns(self.max_patterns)
            .check()?;
        Ok(ValidSequenceParams {
            mining,
            level: self.level,
            source: self.source,
        })
    }
}

/// Checked sequential-pattern parameters.
#[derive(Debug, Clone)]
pub struct ValidSequenceParams {
    mining: ValidPrefixSpanParams,
    level: Level,
    source: SequenceSource,
}

impl ValidSequenceParams {
    /// PrefixSpan's parameters.
    pub fn mining(&self) -> &ValidPrefixSpanParams {
        &self.mining
    }
    /// What warehouse sequences are made of.
    pub fn level(&self) -> Level {
        self.level
    }
    /// Where warehouse sequences come from.
    pub fn source(&self) -> SequenceSource {
        self.source
    }
    /// The warehouse at `root` as these parameters read it.
    pub fn warehouse(&self, root: &Path) -> Source {
        let root = root.to_path_buf();
        match self.source {
            SequenceSource::Orders => Source::Warehouse {
                root,
                level: self.level,
            },
            SequenceSource::Web => Source::Web {
                root,
                level: self.level,
            },
        }
    }
    /// The table a pipeline stage writes the patterns to.
    pub fn table(&self) -> &'static str {
        match self.source {
            SequenceSource::Orders => tables::SEQUENCE_PATTERNS,
            SequenceSource::Web => tables::WEB_SEQUENCE_PATTERNS,
        }
    }
}

crate::choices! {
    /// What warehouse sequences are made of.
    pub enum SequenceSource {
        /// Each customer's invoices.
        Orders = "orders",
        /// Each web session's clicks.
        Web = "web",
    }
    default = Orders;
}

crate::choices! {
    /// How a sequence file is laid out.
    pub enum SequenceFormat {
        /// A sequence-id / time / item table (CSV with a header, or Parquet).
        Table = "table",
        /// SPMF text: items as numbers, -1 ends an itemset, -2 a sequence.
        Spmf = "spmf",
    }
    default = Table;
}

/// Where sequences come from.
#[derive(Debug, Clone)]
pub enum Source {
    File {
        path: PathBuf,
        format: SequenceFormat,
    },
    Warehouse {
        root: PathBuf,
        level: Level,
    },
    /// Web sessions' steps (pages, or at [`Level::Category`] categories).
    Web {
        root: PathBuf,
        level: Level,
    },
}

/// Reads sequences; returns them with a sentence saying where they came from.
pub async fn load(source: &Source, engine: &EngineOptions) -> Result<(Sequences, String)> {
    let (seqs, from) = match source {
        Source::File { path, format } => {
            let s = match format {
                SequenceFormat::Table => read_table(path, engine).await?,
                SequenceFormat::Spmf => read_spmf(path)?,
            };
            (s, path.display().to_string())
        }
        Source::Warehouse { root, level } => {
            let wh = crate::warehouse::Warehouse::open(root)?;
            wh.table(tables::FACT_SALES)?;
            let ctx = olap::session(&wh, engine).await?;
            let s = warehouse_sequences(&ctx, *level).await?;
            (
                s,
                format!("customers' invoices in warehouse {}", root.display()),
            )
        }
        Source::Web { root, level } => {
            let wh = crate::warehouse::Warehouse::open(root)?;
            let level = match level {
                Level::Product => PathLevel::Page,
                Level::Category => PathLevel::Category,
            };
            let mut g = Grouper::new();
            let mut step = 0i64;
            let idle = WebSessionsParams::default().idle_minutes;
            paths::for_each_step(&wh, level, idle, engine, |sid, item| {
                step = if g.current.as_deref() == Some(sid) {
                    step + 1
                } else {
                    0
                };
                g.row(sid, &step.to_string(), step, item);
            })
            .await?;
            (
                g.finish(),
                format!("web sessions in warehouse {}", root.display()),
            )
        }
    };
    let note = format!(
        "{} sequences of {} items from {from}",
        seqs.len(),
        seqs.names().len()
    );
    Ok((seqs, note))
}

/// Rows (sequence id, event key, time in days, item), with the rows of one sequence adjacent
/// and those of one event too, grouped into sequences.
struct Grouper {
    seqs: Sequences,
    current: Option<String>,
    event: Option<String>,
    events: Vec<(i64, Vec<String>)>,
}

impl Grouper {
    fn new() -> Grouper {
        Grouper {
            seqs: Sequences::default(),
            current: None,
            event: None,
            events: Vec::new(),
        }
    }
    fn flush(&mut self) {
        let events = std::mem::take(&mut self.events);
        self.seqs.push(
            events
                .iter()
                .map(|(t, items)| (*t, items.iter().map(String::as_str))),
        );
    }
    fn row(&mut self, id: &str, event: &str, time: i64, item: &str) {
        if self.current.as_deref() != Some(id) {
            self.flush();
            self.current = Some(id.to_string());
            self.event = None;
        }
        if self.event.as_deref() != Some(event) {
            self.events.push((time, Vec::new()));
            self.event = Some(event.to_string());
        }
        self.events
            .last_mut()
            .expect("pushed")
            .1
            .push(item.to_string());
    }
    fn finish(mut self) -> Sequences {
        self.flush();
        self.seqs
    }
}

/// Each customer's invoices as a sequence of events (see the module doc).
pub async fn warehouse_sequences(
    ctx: &datafusion::prelude::SessionContext,
    level: Level,
) -> Result<Sequences> {
    let (item, join) = crate::basket::item_sql(level);
    // An invoice is one event at its first line's time; invoices on one day stay separate
    // events, in time order.
    let sql = format!(
        "WITH inv AS (SELECT invoice_no, min(invoice_ts) AS t FROM fact_sales GROUP BY invoice_no)
         SELECT f.customer_id, f.invoice_no, CAST(inv.t AS DATE) AS day, {item} AS item
         FROM fact_sales f JOIN inv ON inv.invoice_no = f.invoice_no {join}
         WHERE NOT f.is_return AND NOT coalesce(f.is_service, false)
           AND f.customer_id IS NOT NULL AND {item} IS NOT NULL
         ORDER BY f.customer_id, inv.t, f.invoice_no"
    );
    let mut g = Grouper::new();
    olap::for_each_batch(ctx, &sql, |b| {
        let ids = text_column(b.column(0))?;
        let inv = text_column(b.column(1))?;
        let its = text_column(b.column(3))?;
        let days = days_of(b.column(2), &DataType::Date32).map_err(Error::Internal)?;
        for (i, day) in days.iter().enumerate() {
            let day = day.ok_or_else(|| Error::Internal("an invoice without a time".into()))?;
            g.row(ids.value(i), inv.value(i), day, its.value(i));
        }
        Ok(())
    })
    .await?;
    Ok(g.finish())
}

/// Reads a sequence-id / time / item table (see the module doc). Rows need not be sorted.
pub async fn read_table(path: &Path, engine: &EngineOptions) -> Result<Sequences> {
    let (schema, batches) = olap::read_in_order(path, None, engine).await?;
    if schema.fields().len() < 3 {
        return Err(Error::Input {
            file: path.into(),
            message: format!(
                "a sequence table needs three columns (sequence id, time, item); its columns are: {}",
                olap::column_list(&schema)
            ),
        });
    }
    let time_type = schema.field(1).data_type().clone();
    let mut rows: Vec<(String, i64, String)> = Vec::new();
    let mut row = 0u64;
    for b in &batches {
        let ids = text_column(b.column(0))?;
        let its = text_column(b.column(2))?;
        let days = days_of(b.column(1), &time_type).map_err(|message| Error::Input {
            file: path.into(),
            message: format!("column {:?}: {message}", schema.field(1).name()),
        })?;
        for (i, day) in days.iter().enumerate() {
            row += 1;
            let empty = [(0, ids.is_null(i)), (1, day.is_none()), (2, its.is_null(i))];
            if let Some((c, _)) = empty.iter().find(|(_, null)| *null) {
                return Err(Error::Input {
                    file: path.into(),
                    message: format!(
                        "row {row}: column {:?} is empty{}",
                        schema.field(*c).name(),
                        if *c == 1 { " or not a time" } else { "" }
                    ),
                });
            }
            rows.push((
                ids.value(i).to_string(),
                day.expect("checked"),
                its.value(i).trim().to_string(),
            ));
        }
    }
    // Sequences in order of first appearance; events by time.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (k, r) in rows.iter().enumerate() {
        first.entry(r.0.as_str()).or_insert(k);
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&k| (first[rows[k].0.as_str()], rows[k].1));
    let mut g = Grouper::new();
    for k in order {
        let (id, t, item) = &rows[k];
        if !item.is_empty() {
            g.row(id, &t.to_string(), *t, item);
        }
    }
    Ok(g.finish())
}

/// A time column as whole days: dates and timestamps since 1970-01-01, numbers as they are.
fn days_of(col: &Arc<dyn Array>, dt: &DataType) -> std::result::Result<Vec<Option<i64>>, String> {
    let as_days = match dt {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let d = cast(col, &DataType::Date32).map_err(|e| e.to_string())?;
            cast(&d, &DataType::Int64).map_err(|e| e.to_string())?
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            // Text: a date (YYYY-MM-DD...) or a number.
            let t = text_column(col.as_ref()).map_err(|e| e.to_string())?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
            return Ok((0..t.len())
                .map(|i| {
                    if t.is_null(i) {
                        return None;
                    }
                    let v = t.value(i).trim();
                    v.parse::<i64>().ok().or_else(|| {
                        chrono::NaiveDate::parse_from_str(v.get(..10)?, "%Y-%m-%d")
                            .ok()
                            .map(|d| (d - epoch).num_days())
                    })
                })
                .collect());
        }
        _ => cast(col, &DataType::Int64).map_err(|e| e.to_string())?,
    };
    let a = as_days
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .ok_or("not a number")?;
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

/// Reads SPMF's sequence format (see the module doc); lines starting `#`, `%` or `@` are
/// comments.
pub fn read_spmf(path: &Path) -> Result<Sequences> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut seqs = Sequences::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', '%', '@']) {
            continue;
        }
        let mut events: Vec<(i64, Vec<&str>)> = vec![(0, Vec::new())];
        let mut ended = false;
        for tok in line.split_ascii_whitespace() {
            if ended {
                return Err(Error::Input {
                    file: path.into(),
                    message: format!("line {}: {tok:?} after the sequence's -2", n + 1),
                });
            }
            match tok {
                "-1" => {
                    let t = events.len() as i64;
                    events.push((t, Vec::new()));
                }
                "-2" => ended = true,
                t if t.parse::<u64>().is_ok() => events.last_mut().expect("one").1.push(t),
                t => {
                    return Err(Error::Input {
                        file: path.into(),
                        message: format!("line {}: {t:?} is not an item number, -1 or -2", n + 1),
                    });
                }
            }
        }
        seqs.push(events.into_iter().map(|(t, items)| (t, items.into_iter())));
    }
    Ok(seqs)
}

/// Patterns as a batch: `pattern`, `elements`, `items`, `count`, `support`; by descending
/// count, then text.
pub fn patterns_batch(p: &Patterns) -> Result<(SchemaRef, RecordBatch)> {
    let mut rows: Vec<(String, u32, u32, u32)> = (0..p.len())
        .map(|i| {
            let el = p.pattern(i);
            (
                p.text(i),
                el.len() as u32,
                el.iter().map(|e| e.len() as u32).sum(),
                p.count(i),
            )
        })
        .collect();
    rows.sort_unstable_by(|a, b| b.3.cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    let n = p.sequences() as f64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("pattern", DataType::Utf8, false),
        Field::new("elements", DataType::UInt32, false),
        Field::new("items", DataType::UInt32, false),
        Field::new("count", DataType::UInt32, false),
        Field::new("support", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| f64::from(r.3) / n),
            )),
        ],
    )?;
    Ok((schema, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::param_key as key;

    #[test]
    fn sequence_params_need_a_support_and_check_the_rest() {
        assert_eq!(key(SequenceParams::default().check()), "min_support");
        let with = |f: fn(&mut SequenceParams)| {
            let mut p = SequenceParams {
                min_support: Some(Fraction { num: 1, den: 100 }),
                ..SequenceParams::default()
            };
            f(&mut p);
            p.check()
        };
        assert!(with(|_| {}).is_ok());
        assert_eq!(key(with(|p| p.max_len = Some(0))), "max_len");
        assert_eq!(key(with(|p| p.max_gap_days = Some(-1))), "max_gap_days");
        assert_eq!(key(with(|p| p.max_patterns = 0)), "max_patterns");
    }
}
