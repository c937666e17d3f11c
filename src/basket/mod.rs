//! Market-basket analysis: frequent itemsets (FP-growth), association rules and cross-sell
//! recommendations.
//!
//! - Input: baskets from the warehouse (an invoice is a basket of its products, or with
//!   [`Level::Category`] of their categories; return lines, service lines such as postage,
//!   fees and manual adjustments, and lines without a product are left out), or from a file
//!   ([`read_lines`]: one basket per line, items split by a separator; [`read_pairs`]: a
//!   two-column basket-id / item table, CSV or Parquet). Repeated items count once per basket;
//!   empty baskets are not baskets.
//! - Output: itemsets (`items`, `size`, `count`, `support`) and rules (`antecedent`,
//!   `consequent`, `antecedent_size`, `consequent_size`, `count`, `support`, `confidence`,
//!   `lift`, `leverage`, `conviction`) as Arrow batches; an item set is written as its items
//!   sorted and joined by ` | `. Itemsets are sorted by descending count, rules by descending
//!   lift, then by the item text, so output is stable. [`recommend`] writes the table
//!   `recommendations`.
//! - Parameters: see [`fpgrowth`] and [`rules`]. Thresholds are exact
//!   [`Fraction`](crate::param::Fraction)s: `0.001`
//!   is one thousandth, not the nearest binary double, so an itemset needs
//!   `ceil(min_support × baskets)` baskets, computed in integers.
//!
//! linfa has no association-rule mining; FP-growth and the rules are ours, in linfa's shape
//! (checked params → `Fit` on a `DatasetBase` → a fitted value with accessors).

pub mod fpgrowth;
pub mod recommend;
pub mod rules;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions, text_column};
use crate::warehouse::tables;
use fpgrowth::FrequentItemsets;
use rules::Rule;

pub use fpgrowth::{FpGrowthParams, ValidFpGrowthParams};
pub use rules::{RuleParams, ValidRuleParams};

/// Item names and their ids (an id is the name's position), shared by baskets, itemsets
/// and sequences.
#[derive(Debug, Clone, Default)]
pub struct Items {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Items {
    /// Appends the ids of `names` to `ids` as a set, sorted and each once; a new name gets the
    /// next id. Returns how many ids were appended.
    pub(crate) fn push_set<'s>(
        &mut self,
        names: impl IntoIterator<Item = &'s str>,
        ids: &mut Vec<u32>,
    ) -> usize {
        let start = ids.len();
        for name in names {
            let id = match self.index.get(name) {
                Some(&id) => id,
                None => {
                    let id = self.names.len() as u32;
                    self.names.push(name.to_string());
                    self.index.insert(name.to_string(), id);
                    id
                }
            };
            ids.push(id);
        }
        ids[start..].sort_unstable();
        let mut kept = start;
        for i in start..ids.len() {
            if kept == start || ids[i] != ids[kept - 1] {
                ids[kept] = ids[i];
                kept += 1;
            }
        }
        ids.truncate(kept);
        kept - start
    }

    /// The id of a name.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
    /// The name of an id.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
    /// Names by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Baskets of items: each a set of item ids, in one flat array.
#[derive(Debug, Clone)]
pub struct Baskets {
    items: Items,
    ids: Vec<u32>,
    offsets: Vec<usize>,
}

impl Default for Baskets {
    fn default() -> Self {
        Baskets {
            items: Items::default(),
            ids: Vec::new(),
            offsets: vec![0],
        }
    }
}

impl Baskets {
    /// Adds a basket of item names; a repeated item counts once. Returns false, adding
    /// nothing, when there is no item.
    pub fn push<'s>(&mut self, items: impl IntoIterator<Item = &'s str>) -> bool {
        if self.items.push_set(items, &mut self.ids) == 0 {
            return false;
        }
        self.offsets.push(self.ids.len());
        true
    }

    /// How many baskets.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The item ids of basket `k`, ascending.
    pub fn basket(&self, k: usize) -> &[u32] {
        &self.ids[self.offsets[k]..self.offsets[k + 1]]
    }
    /// Every basket's item ids, one basket after the other.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
    /// Item names by id.
    pub fn names(&self) -> &[String] {
        self.items.names()
    }
    /// The item names and ids.
    pub fn items(&self) -> &Items {
        &self.items
    }
}

impl linfa::dataset::Records for Baskets {
    type Elem = u32;
    fn nsamples(&self) -> usize {
        self.len()
    }
    fn nfeatures(&self) -> usize {
        self.items.names().len()
    }
}

/// How items are separated in a basket file of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// Runs of spaces and tabs.
    Whitespace,
    Char(char),
}

impl std::str::FromStr for Separator {
    type Err = String;

    /// One character, or `tab`, `space`, `whitespace` (runs of spaces and tabs).
    fn from_str(s: &str) -> std::result::Result<Separator, String> {
        match s {
            "tab" | "\\t" => Ok(Separator::Char('\t')),
            "space" => Ok(Separator::Char(' ')),
            "whitespace" => Ok(Separator::Whitespace),
            _ => {
                let mut c = s.chars();
                match (c.next(), c.next()) {
                    (Some(ch), None) => Ok(Separator::Char(ch)),
                    _ => Err(format!(
                        "{s:?} is not one character, tab, space or whitespace"
                    )),
                }
            }
        }
    }
}

impl Separator {
    /// The default for a file: `,` for a `.csv` name, else whitespace.
    pub fn for_file(path: &Path) -> Separator {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Separator::Char(','),
            _ => Separator::Whitespace,
        }
    }
}

/// Reads one basket per line: items split by `sep` and trimmed; blank lines and empty items
/// are skipped. Invalid UTF-8 is an error naming the line.
pub fn read_lines(path: &Path, sep: Separator) -> Result<Baskets> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(Error::Input {
                file: path.into(),
                message: format!("line {line}: not UTF-8 text"),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut b = Baskets::default();
    for line in text.lines() {
        match sep {
            Separator::Whitespace => b.push(line.split_ascii_whitespace()),
            Separator::Char(c) => b.push(line.split(c).map(str::trim).filter(|s| !s.is_empty())),
        };
    }
    Ok(b)
}

/// Reads a basket-id / item table (CSV with a header, or Parquet): its first two columns,
/// baskets in order of first appearance. A missing id or item is an error naming the row.
pub async fn read_pairs(path: &Path, engine: &EngineOptions) -> Result<Baskets> {
    let (schema, batches) = olap::read_in_order(path, None, engine).await?;
    if schema.fields().len() < 2 {
        return Err(Error::Input {
            file: path.into(),
            message: format!(
                "a basket-id / item table needs two columns; its columns are: {}",
                olap::column_list(&schema)
            ),
        });
    }
    let mut order: HashMap<String, usize> = HashMap::new();
    let mut items: Vec<Vec<String>> = Vec::new();
    let mut row = 0u64;
    for batch in &batches {
        let ids = text_column(batch.column(0))?;
        let its = text_column(batch.column(1))?;
        for i in 0..batch.num_rows() {
            row += 1;
            if ids.is_null(i) || its.is_null(i) {
                let col = schema.field(usize::from(!ids.is_null(i))).name();
                return Err(Error::Input {
                    file: path.into(),
                    message: format!("row {row}: column {col:?} is empty"),
                });
            }
            let k = *order.entry(ids.value(i).to_string()).or_insert_with(|| {
                items.push(Vec::new());
                items.len() - 1
            });
            items[k].push(its.value(i).trim().to_string());
        }
    }
    let mut b = Baskets::default();
    for basket in &items {
        b.push(basket.iter().map(String::as_str).filter(|s| !s.is_empty()));
    }
    Ok(b)
}

crate::choices! {
    /// What warehouse baskets are made of.
    pub enum Level {
        /// Products (`product_id`).
        Product = "product",
        /// Product categories (`dim_product.category`).
        Category = "category",
    }
    default = Product;
}

/// The item expression over `fact_sales f` at a level, and the join it needs.
pub(crate) fn item_sql(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::Product => ("f.product_id", ""),
        Level::Category => (
            "p.category",
            "JOIN dim_product p ON p.product_key = f.product_key",
        ),
    }
}

/// Counts behind warehouse baskets, for the summary.
#[derive(Debug, Clone, Default)]
pub struct WarehouseBaskets {
    pub baskets: Baskets,
    pub return_lines: u64,
    pub service_lines: u64,
}

/// The warehouse's invoices as baskets (see the module doc).
pub async fn warehouse_baskets(
    ctx: &datafusion::prelude::SessionContext,
    level: Level,
) -> Result<WarehouseBaskets> {
    let (item, join) = item_sql(level);
    let sql = format!(
        "SELECT f.invoice_no, {item} AS item FROM fact_sales f {join}
         WHERE NOT f.is_return AND NOT coalesce(f.is_service, false) AND {item} IS NOT NULL
         ORDER BY f.invoice_no"
    );
    let mut baskets = Baskets::default();
    let mut current: Option<String> = None;
    let mut items: Vec<String> = Vec::new();
    olap::for_each_batch(ctx, &sql, |batch| {
        let inv = text_column(batch.column(0))?;
        let its = text_column(batch.column(1))?;
        for i in 0..batch.num_rows() {
            if current.as_deref() != Some(inv.value(i)) {
                baskets.push(items.iter().map(String::as_str));
                items.clear();
                current = Some(inv.value(i).to_string());
            }
            items.push(its.value(i).to_string());
        }
        Ok(())
    })
    .await?;
    baskets.push(items.iter().map(String::as_str));
    let (_, counts) = olap::sql(
        ctx,
        "SELECT count(*) FILTER (WHERE is_return) AS r,
                count(*) FILTER (WHERE NOT is_return AND coalesce(is_service, false)) AS s
         FROM fact_sales",
    )
    .await?;
    let count = |c: usize| -> Result<u64> {
        let a = cast(counts[0].column(c), &DataType::UInt64)?;
        a.as_any()
            .downcast_ref::<UInt64Array>()
            .map(|a| a.value(0))
            .ok_or_else(|| Error::Internal("a line count is not an integer".into()))
    };
    Ok(WarehouseBaskets {
        baskets,
        return_lines: count(0)?,
        service_lines: count(1)?,
    })
}

crate::choices! {
    /// How a basket file is laid out.
    pub enum BasketFormat {
        /// One basket per line, items split by a separator.
        Lines = "lines",
        /// A basket-id / item table (CSV with a header, or Parquet).
        Pairs = "pairs",
    }
    default = Lines;
}

/// Where baskets come from.
#[derive(Debug, Clone)]
pub enum Source {
    File {
        path: std::path::PathBuf,
        format: BasketFormat,
        /// Lines: default [`Separator::for_file`].
        separator: Option<Separator>,
    },
    Warehouse {
        root: std::path::PathBuf,
        level: Level,
    },
}

/// Reads baskets; returns them with a sentence saying where they came from.
pub async fn load(source: &Source, engine: &EngineOptions) -> Result<(Baskets, String)> {
    match source {
        Source::File {
            path,
            format,
            separator,
        } => {
            let b = match format {
                BasketFormat::Lines => {
                    read_lines(path, separator.unwrap_or_else(|| Separator::for_file(path)))?
                }
                BasketFormat::Pairs => read_pairs(path, engine).await?,
            };
            let note = format!(
                "{} baskets of {} items from {}",
                b.len(),
                b.names().len(),
                path.display()
            );
            Ok((b, note))
        }
        Source::Warehouse { root, level } => {
            let wh = crate::warehouse::Warehouse::open(root)?;
            wh.table(tables::FACT_SALES)?;
            let ctx = olap::session(&wh, engine).await?;
            let w = warehouse_baskets(&ctx, *level).await?;
            let note = format!(
                "{} invoices of {} {} from warehouse {} ({} return lines and {} service lines left out)",
                w.baskets.len(),
                w.baskets.names().len(),
                match level {
                    Level::Product => "products",
                    Level::Category => "categories",
                },
                root.display(),
                w.return_lines,
                w.service_lines
            );
            Ok((w.baskets, note))
        }
    }
}

/// Itemsets as a batch: `items`, `size`, `count`, `support`; by descending count, then text.
pub fn itemsets_batch(sets: &FrequentItemsets) -> Result<(SchemaRef, RecordBatch)> {
    let mut rows: Vec<(String, usize, u32)> = (0..sets.len())
        .map(|i| {
            (
                sets.names_of(i).join(" | "),
                sets.itemset(i).len(),
                sets.count(i),
            )
        })
        .collect();
    rows.sort_unstable_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let n = sets.baskets() as f64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("items", DataType::Utf8, false),
        Field::new("size", DataType::UInt32, false),
        Field::new("count", DataType::UInt32, false),
        Field::new("support", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.1 as u32),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| f64::from(r.2) / n),
            )),
        ],
    )?;
    Ok((schema, batch))
}

/// The columns of a rules table.
pub fn rules_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("antecedent", DataType::Utf8, false),
        Field::new("consequent", DataType::Utf8, false),
        Field::new("antecedent_size", DataType::UInt32, false),
        Field::new("consequent_size", DataType::UInt32, false),
        Field::new("count", DataType::UInt32, false),
        Field::new("support", DataType::Float64, false),
        Field::new("confidence", DataType::Float64, false),
        Field::new("lift", DataType::Float64, false),
        Field::new("leverage", DataType::Float64, false),
        // NULL: infinite (confidence 1).
        Field::new("conviction", DataType::Float64, true),
    ]))
}

/// Rules (already in order) as a batch of [`rules_schema`].
pub fn rules_batch(sets: &FrequentItemsets, rules: &[Rule]) -> Result<RecordBatch> {
    let n = sets.baskets();
    let text = |ids: &[u32]| sets.names_sorted(ids).join(" | ");
    Ok(RecordBatch::try_new(
        rules_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rules.iter().map(|r| text(&r.antecedent)),
            )),
            Arc::new(StringArray::from_iter_values(
                rules.iter().map(|r| text(&r.consequent)),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rules.iter().map(|r| r.antecedent.len() as u32),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rules.iter().map(|r| r.consequent.len() as u32),
            )),
            Arc::new(UInt32Array::from_iter_values(rules.iter().map(|r| r.count))),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.support(n)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.confidence()),
            )),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.lift(n)),
            )),
            Arc::new(Float64Array::from_iter_values(
                rules.iter().map(|r| r.leverage(n)),
            )),
            Arc::new(Float64Array::from(
                rules.iter().map(|r| r.conviction(n)).collect::<Vec<_>>(),
            )),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baskets_are_sets_and_empty_lines_are_not_baskets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        std::fs::write(&p, "milk, bread ,milk\n\n , \nbeer\r\n").unwrap();
        let b = read_lines(&p, Separator::for_file(&p)).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.basket(0).len(), 2);
        assert_eq!(b.names(), ["milk", "bread", "beer"]);
        let q = dir.path().join("b.dat");
        std::fs::write(&q, "1 2  3\t4\n").unwrap();
        assert_eq!(
            read_lines(&q, Separator::for_file(&q))
                .unwrap()
                .basket(0)
                .len(),
            4
        );
        std::fs::write(&q, b"1 2\n3 \xff\n").unwrap();
        let err = read_lines(&q, Separator::Whitespace)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: not UTF-8"), "{err}");
    }
}
