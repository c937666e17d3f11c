//! The star-schema build: one load's cleansed rows merged into the warehouse's tables.
//!
//! Tables (dimensions through [`Transaction::write_polars`], facts streamed from the staged
//! chunks through [`crate::warehouse::PartitionedWriter`]; committed together by the caller):
//! - `dim_customer` (rebuilt): `customer_key` (0 = the unknown member, for guest sales),
//!   `customer_id` and the canonical customer attributes, SCD type 2 on `country`,
//!   `email_opt_in`, `phone_opt_in` (`valid_from`, `valid_to` (null while current),
//!   `is_current`); other attributes are overwritten in place (type 1). Without a customer
//!   source, customers are derived from order lines (id and the country of their latest line).
//! - `dim_product` (rebuilt): `product_key`, `product_id`, `description`, `category`,
//!   `subcategory`, `unit_cost`, `is_service`. Without a product source it is derived from
//!   order lines, with one canonical description per code: the most frequent, ties to the
//!   smallest text; a derived product keeps its first description across loads.
//! - `dim_date` (rebuilt): every day from the first to the last sale or contact.
//! - `fact_sales` (appended, one file per month per input file under `month=YYYY-MM/`): the
//!   order line grain; `revenue = quantity × unit_price` in decimal(18,3), exact.
//! - `fact_campaign_contact`, `rejects` (appended, one file per input file), `loads` (rebuilt;
//!   one row per file). Appended files remember their load and input file, for `--replace`
//!   and rollback.
//!
//! Keys are stable: existing rows keep their keys; new members get the next keys in id order,
//! so the same loads give the same keys.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use polars::prelude::*;

use super::FileLoad;
use super::cleanse::MONEY;
use super::contract::Entity;
use super::reasons::Reason;
use crate::error::{Error, Result};
use crate::warehouse::{Owner, Transaction, Warehouse};

const CUSTOMER_COLUMNS: [(&str, DataType); 12] = [
    ("customer_id", DataType::String),
    ("email", DataType::String),
    ("name", DataType::String),
    ("gender", DataType::String),
    ("birth_date", DataType::Date),
    ("country", DataType::String),
    ("region", DataType::String),
    ("city", DataType::String),
    ("signup_date", DataType::Date),
    ("acquisition_channel", DataType::String),
    ("email_opt_in", DataType::Boolean),
    ("phone_opt_in", DataType::Boolean),
];

/// Attributes whose change opens a new dim_customer version (SCD type 2).
const CUSTOMER_HISTORY: [&str; 3] = ["country", "email_opt_in", "phone_opt_in"];

const PRODUCT_COLUMNS: [(&str, DataType); 6] = [
    ("product_id", DataType::String),
    ("description", DataType::String),
    ("category", DataType::String),
    ("subcategory", DataType::String),
    ("unit_cost", MONEY),
    ("is_service", DataType::Boolean),
];

fn ts_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, None)
}

fn ts_lit(t: DateTime<Utc>) -> Expr {
    lit(t.naive_utc().and_utc().timestamp_micros()).cast(ts_type())
}

/// Selects `columns` from `df`, adding the missing ones as typed nulls.
fn conform(df: LazyFrame, present: &[String], columns: &[(&str, DataType)]) -> LazyFrame {
    let exprs: Vec<Expr> = columns
        .iter()
        .map(|(name, dt)| {
            if present.iter().any(|p| p == name) {
                col(*name).cast(dt.clone())
            } else {
                lit(NULL).cast(dt.clone()).alias(*name)
            }
        })
        .collect();
    df.select(exprs)
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn vstack_all(mut parts: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    if parts.is_empty() {
        return Ok(None);
    }
    let mut out = parts.remove(0);
    for p in parts {
        out.vstack_mut(&p)?;
    }
    Ok(Some(out))
}

/// Splits a chunk of good rows into the rows whose `dedupe_key` is new to this load and, as
/// `duplicate_key` rejects (`__record`, `__line`, `__start`, `__end`, `__reason`,
/// `__detail`), the rows repeating a key seen earlier (in this file or an earlier file of the
/// same source), naming where it was first seen.
pub fn dedupe_chunk(
    good: DataFrame,
    key: &[String],
    seen: &mut HashMap<String, (String, u64)>,
    file: &str,
) -> Result<(DataFrame, Option<DataFrame>)> {
    if good.height() == 0 {
        return Ok((good, None));
    }
    let keys = good
        .clone()
        .lazy()
        .select([concat_str(
            key.iter()
                .map(|k| col(k.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
            "\u{1f}",
            false,
        )
        .alias("k")])
        .collect()?;
    let keys = keys.column("k")?.str()?;
    let records = good.column("__record")?.u64()?;
    let mut dup = Vec::with_capacity(good.height());
    let mut details = Vec::new();
    for (k, rec) in keys.iter().zip(records.into_no_null_iter()) {
        let is_dup = match k {
            None => false,
            Some(k) => match seen.get(k) {
                Some((first_file, first)) => {
                    details.push(format!(
                        "{} {:?} repeats record {first} of {first_file}",
                        key.join("+"),
                        k.replace('\u{1f}', "+")
                    ));
                    true
                }
                None => {
                    seen.insert(k.to_string(), (file.to_string(), rec));
                    false
                }
            },
        };
        dup.push(is_dup);
    }
    if details.is_empty() {
        return Ok((good, None));
    }
    let mask = BooleanChunked::from_slice("dup".into(), &dup);
    let bad = good.filter(&mask)?;
    let n = bad.height();
    let mut rejects = df!(
        "__record" => bad.column("__record")?.as_materialized_series().clone(),
        "__line" => bad.column("__line")?.as_materialized_series().clone(),
        "__start" => bad.column("__start")?.as_materialized_series().clone(),
        "__end" => bad.column("__end")?.as_materialized_series().clone(),
        "__reason" => vec![Reason::DuplicateKey.code(); n],
        "__detail" => details,
    )?;
    if let Ok(raw) = bad.column("__raw") {
        rejects.with_column(raw.clone())?;
    }
    Ok((good.filter(&!&mask)?, Some(rejects)))
}

/// Which dimensions a load derives from order lines.
#[derive(Clone, Copy, Debug)]
pub struct Derive {
    pub customers: bool,
    pub products: bool,
}

/// What derived dimensions need from order lines, aggregated chunk by chunk so that no load
/// holds its order lines in memory: each customer's latest line (id, country, when), and
/// line counts per product and description.
#[derive(Default)]
pub struct Derived {
    customers: Vec<DataFrame>,
    products: Vec<DataFrame>,
}

impl Derived {
    /// Adds one chunk of good order lines of the file at position `file` in the load.
    /// Only what `derive` asks for is kept: the aggregates cost a sort and a group-by per chunk.
    pub fn add(&mut self, lines: &DataFrame, file: usize, derive: Derive) -> Result<()> {
        if lines.height() == 0 {
            return Ok(());
        }
        let has = |c: &str| lines.column(c).is_ok();
        if derive.customers && has("customer_id") {
            let mut cols = vec![
                col("customer_id"),
                col("invoice_ts"),
                lit(file as u64).alias("__file"),
                col("__record"),
            ];
            if has("country") {
                cols.push(col("country"));
            }
            self.customers.push(
                lines
                    .clone()
                    .lazy()
                    .filter(col("customer_id").is_not_null())
                    .select(cols)
                    .sort(
                        ["invoice_ts", "__file", "__record"],
                        SortMultipleOptions::default(),
                    )
                    .unique_stable_generic(Some(vec![col("customer_id")]), UniqueKeepStrategy::Last)
                    .collect()?,
            );
        }
        if !derive.products {
            return Ok(());
        }
        let desc = if has("description") {
            col("description")
        } else {
            lit(NULL).cast(DataType::String).alias("description")
        };
        self.products.push(
            lines
                .clone()
                .lazy()
                .select([col("product_id"), desc, col("is_service")])
                .group_by([col("product_id"), col("description")])
                .agg([
                    len().cast(DataType::UInt64).alias("__n"),
                    col("is_service").max(),
                ])
                .collect()?,
        );
        Ok(())
    }

    /// Customers (id and, when mapped, country), in time order: the last row of an id wins.
    fn customers(&self) -> Result<Option<DataFrame>> {
        let Some(all) = vstack_all(self.customers.clone())? else {
            return Ok(None);
        };
        let mut cols = vec![col("customer_id")];
        if all.column("country").is_ok() {
            cols.push(col("country"));
        }
        Ok(Some(
            all.lazy()
                .sort(
                    ["invoice_ts", "__file", "__record"],
                    SortMultipleOptions::default(),
                )
                .select(cols)
                .collect()?,
        ))
    }

    /// Products with the most frequent description (ties: the smallest) and the service flag.
    fn products(&self) -> Result<Option<DataFrame>> {
        let Some(counts) = vstack_all(self.products.clone())? else {
            return Ok(None);
        };
        let service = counts
            .clone()
            .lazy()
            .group_by([col("product_id")])
            .agg([col("is_service").max()]);
        let best = counts
            .lazy()
            .filter(col("description").is_not_null())
            .group_by([col("product_id"), col("description")])
            .agg([col("__n").sum()])
            .sort_by_exprs(
                [col("product_id"), col("__n"), col("description")],
                SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
            )
            .group_by_stable([col("product_id")])
            .agg([col("description").first()]);
        Ok(Some(
            service
                .join(
                    best,
                    [col("product_id")],
                    [col("product_id")],
                    JoinArgs::new(JoinType::Left),
                )
                .select([col("product_id"), col("description"), col("is_service")])
                .collect()?,
        ))
    }

    fn merge(parts: &[&Derived]) -> Derived {
        Derived {
            customers: parts
                .iter()
                .flat_map(|d| d.customers.iter().cloned())
                .collect(),
            products: parts
                .iter()
                .flat_map(|d| d.products.iter().cloned())
                .collect(),
        }
    }
}

/// Good rows of every file of one entity, in load order (customer and product files only:
/// they are small).
fn good_of(loads: &[FileLoad], entity: Entity) -> Result<Option<DataFrame>> {
    vstack_all(
        loads
            .iter()
            .filter(|l| l.source.entity == entity)
            .map(|l| l.good())
            .collect::<Result<Vec<_>>>()?,
    )
}

/// One load's rows and facts about it, for [`build`].
#[derive(Clone, Copy)]
pub struct BuildInput<'a> {
    pub loads: &'a [FileLoad],
    pub load_id: i64,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// The `loads` table before this load (None on a full refresh or a new warehouse).
    pub previous_loads: Option<&'a DataFrame>,
    /// The contract has a customer source: customers are never derived from order lines.
    pub customer_source: bool,
    /// The contract has a product source: products are never derived from order lines.
    pub product_source: bool,
}

/// Builds and writes every table for one load.
pub fn build(
    tx: &mut Transaction<'_>,
    base: Option<&Warehouse>,
    input: &BuildInput<'_>,
) -> Result<()> {
    let BuildInput {
        loads,
        load_id,
        started,
        finished,
        previous_loads,
        customer_source,
        product_source,
    } = *input;
    let read = |name: &str| -> Result<Option<DataFrame>> {
        match base {
            Some(wh) => wh.read_polars(name),
            None => Ok(None),
        }
    };
    let lid = Some(load_id as u64);
    // Time per step, logged at debug level (ECRM_LOG=debug).
    let clock = std::time::Instant::now();
    let lap = |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "build");

    // Customers: from a customer source, else derived from order lines.
    let derived = Derived::merge(
        &loads
            .iter()
            .filter(|l| l.source.entity == Entity::OrderLine)
            .map(|l| &l.derived)
            .collect::<Vec<_>>(),
    );
    let customers_in = match good_of(loads, Entity::Customer)? {
        Some(df) => Some(df),
        None if customer_source => None,
        None => derived.customers()?,
    };
    let old_customers = read("dim_customer")?;
    let dim_customer = merge_customers(old_customers, customers_in, load_id, started)?;
    let mut dc = dim_customer.clone();
    let f = tx.write_polars("dim_customer", None, &mut dc, &Owner::default())?;
    tx.replace("dim_customer", vec![f]);

    // Products: from a product source, else derived from order lines.
    let products_in = match good_of(loads, Entity::Product)? {
        Some(df) => Some((df, true)),
        None if product_source => None,
        None => derived.products()?.map(|df| (df, false)),
    };
    let dim_product = merge_products(read("dim_product")?, products_in)?;
    let mut dp = dim_product.clone();
    let f = tx.write_polars("dim_product", None, &mut dp, &Owner::default())?;
    tx.replace("dim_product", vec![f]);

    lap("dimensions");

    let current_customers = dim_customer
        .clone()
        .lazy()
        .filter(col("is_current").and(col("customer_key").gt(lit(0i64))))
        .select([col("customer_id"), col("customer_key")]);
    let product_keys = dim_product
        .clone()
        .lazy()
        .select([col("product_id"), col("product_key")]);

    // Facts, streamed from the staged chunks: one file per month per order-line file.
    let mut days: BTreeSet<NaiveDate> = BTreeSet::new();
    for fl in loads
        .iter()
        .filter(|l| l.source.entity == Entity::OrderLine)
    {
        let mut writer = tx.partitioned_writer("fact_sales", fl.owner(load_id));
        for chunk in chunks_of(fl)? {
            let fact = sales_fact(chunk?, &current_customers, &product_keys, load_id)?;
            collect_days(&fact, "invoice_ts", &mut days)?;
            if fact.height() == 0 {
                // A first load without order lines: an empty file gives the table its schema.
                if fl.staged.is_empty() && !tx.next().tables.contains_key("fact_sales") {
                    writer.write(tx, None, &fact.drop("__month")?)?;
                }
                continue;
            }
            for part in fact.partition_by_stable(["__month"], true)? {
                let partition = match part.column("__month")?.i32()?.get(0) {
                    Some(m) => format!("month={:04}-{:02}", m / 100, m % 100),
                    None => "month=unknown".to_string(),
                };
                writer.write(tx, Some(&partition), &part.drop("__month")?)?;
            }
        }
        let files = writer.finish()?;
        tx.append("fact_sales", files);
    }
    lap("fact_sales");

    for fl in loads
        .iter()
        .filter(|l| l.source.entity == Entity::CampaignContact)
    {
        let mut writer = tx.partitioned_writer("fact_campaign_contact", fl.owner(load_id));
        for chunk in chunks_of(fl)? {
            let fact = contact_fact(chunk?, &current_customers, load_id)?;
            collect_days(&fact, "contact_ts", &mut days)?;
            if fact.height() > 0
                || (fl.staged.is_empty() && !tx.next().tables.contains_key("fact_campaign_contact"))
            {
                writer.write(tx, None, &fact)?;
            }
        }
        let files = writer.finish()?;
        tx.append("fact_campaign_contact", files);
    }

    lap("fact_campaign_contact");

    // Rejects: one file per input file that had any (so replacing a file replaces its
    // rejects), and an empty one the first time, so the table exists.
    for fl in loads {
        let n = fl.rejects.height();
        if n == 0 {
            continue;
        }
        let mut df = fl.rejects.clone();
        df.insert_column(
            0,
            Column::new("file".into(), vec![fl.summary.file.clone(); n]),
        )?;
        df.insert_column(
            0,
            Column::new("source".into(), vec![fl.source.name.clone(); n]),
        )?;
        df.insert_column(0, Column::new("load_id".into(), vec![load_id; n]))?;
        let f = tx.write_polars("rejects", None, &mut df, &fl.owner(load_id))?;
        tx.append("rejects", vec![f]);
    }
    if !tx.next().tables.contains_key("rejects") {
        let mut empty = df!(
            "load_id" => Vec::<i64>::new(),
            "source" => Vec::<String>::new(),
            "file" => Vec::<String>::new(),
            "record" => Vec::<u64>::new(),
            "line" => Vec::<u64>::new(),
            "raw" => Vec::<String>::new(),
            "reason" => Vec::<String>::new(),
            "detail" => Vec::<String>::new(),
        )?;
        let owner = Owner {
            load_id: lid,
            source_file: None,
        };
        let f = tx.write_polars("rejects", None, &mut empty, &owner)?;
        tx.append("rejects", vec![f]);
    }

    // dim_date over the whole range of sales and contacts, old and new.
    if let Some(old) = read("dim_date")? {
        collect_days(&old, "date", &mut days)?;
    }
    if let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) {
        let mut dd = dim_date(first, last)?;
        let f = tx.write_polars("dim_date", None, &mut dd, &Owner::default())?;
        tx.replace("dim_date", vec![f]);
    }

    // loads: earlier rows plus one per file of this load.
    let mut loads_df = loads_frame(loads, load_id, started, finished)?;
    if let Some(prev) = previous_loads {
        let mut prev = prev.clone();
        prev.vstack_mut(&loads_df)?;
        loads_df = prev;
    }
    let f = tx.write_polars("loads", None, &mut loads_df, &Owner::default())?;
    tx.replace("loads", vec![f]);
    lap("rejects, dim_date, loads");
    Ok(())
}

/// A file's staged chunks, read one at a time; a file without good rows yields one empty
/// chunk with the right columns.
fn chunks_of(fl: &FileLoad) -> Result<Box<dyn Iterator<Item = Result<DataFrame>> + '_>> {
    if fl.staged.is_empty() {
        return Ok(Box::new(std::iter::once(super::empty_good(&fl.source))));
    }
    Ok(Box::new(
        fl.staged
            .iter()
            .map(|p| crate::warehouse::read_polars_file(p)),
    ))
}

/// `date_key` (yyyymmdd) of a timestamp column.
fn date_key(ts: &str) -> Expr {
    (col(ts).dt().year() * lit(10000i32)
        + col(ts).dt().month().cast(DataType::Int32) * lit(100i32)
        + col(ts).dt().day().cast(DataType::Int32))
    .alias("date_key")
}

/// `col(c)` when the chunk has it, else a typed null column.
fn column_or_null(present: &[String], c: &str, dt: DataType) -> Expr {
    if present.iter().any(|p| p == c) {
        col(c)
    } else {
        lit(NULL).cast(dt).alias(c)
    }
}

/// One chunk of order lines as fact_sales rows, with `__month` for partitioning.
fn sales_fact(
    lines: DataFrame,
    customers: &LazyFrame,
    products: &LazyFrame,
    load_id: i64,
) -> Result<DataFrame> {
    let present = names(&lines);
    Ok(lines
        .lazy()
        .join(
            customers.clone(),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            products.clone(),
            [col("product_id")],
            [col("product_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("invoice_no"),
            col("invoice_ts"),
            date_key("invoice_ts"),
            col("customer_key").fill_null(lit(0i64)),
            column_or_null(&present, "customer_id", DataType::String),
            col("product_key"),
            col("product_id"),
            col("quantity"),
            col("unit_price"),
            // Exact: an integer times a decimal(18,3) is a decimal with scale 3.
            (col("quantity").cast(DataType::Decimal(18, 0)) * col("unit_price"))
                .cast(MONEY)
                .alias("revenue"),
            col("is_return"),
            col("is_service"),
            column_or_null(&present, "channel", DataType::String),
            column_or_null(&present, "country", DataType::String),
            col("__record").alias("record"),
            lit(load_id).cast(DataType::Int64).alias("load_id"),
            // yyyymm as a number: formatting a string per row costs more than the join.
            (col("invoice_ts").dt().year() * lit(100i32)
                + col("invoice_ts").dt().month().cast(DataType::Int32))
            .alias("__month"),
        ])
        .collect()?)
}

/// One chunk of campaign contacts as fact_campaign_contact rows.
fn contact_fact(contacts: DataFrame, customers: &LazyFrame, load_id: i64) -> Result<DataFrame> {
    let present = names(&contacts);
    Ok(contacts
        .lazy()
        .join(
            customers.clone(),
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("campaign_id"),
            col("customer_key").fill_null(lit(0i64)),
            col("customer_id"),
            col("contact_ts"),
            date_key("contact_ts"),
            column_or_null(&present, "channel", DataType::String),
            column_or_null(&present, "responded", DataType::Boolean),
            column_or_null(&present, "response_ts", ts_type()),
            col("__record").alias("record"),
            lit(load_id).cast(DataType::Int64).alias("load_id"),
        ])
        .collect()?)
}

/// Adds the first and last day of a timestamp or date column.
fn collect_days(df: &DataFrame, column: &str, days: &mut BTreeSet<NaiveDate>) -> Result<()> {
    let minmax = df
        .clone()
        .lazy()
        .select([
            col(column).cast(DataType::Date).min().alias("lo"),
            col(column).cast(DataType::Date).max().alias("hi"),
        ])
        .collect()?;
    for c in ["lo", "hi"] {
        let v = minmax.column(c)?.cast(&DataType::Int32)?;
        if let Some(d) = v.i32()?.get(0) {
            let day = NaiveDate::from_num_days_from_ce_opt(d + 719_163)
                .ok_or_else(|| Error::Internal(format!("date out of range: {d}")))?;
            days.insert(day);
        }
    }
    Ok(())
}

/// Every day from `first` to `last`, with its calendar attributes.
pub fn dim_date(first: NaiveDate, last: NaiveDate) -> Result<DataFrame> {
    let all: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let df = df!(
        "date_key" => all.iter().map(|d| d.year() * 10000 + d.month() as i32 * 100 + d.day() as i32).collect::<Vec<_>>(),
        "date" => all.iter().map(|d| (*d - epoch).num_days() as i32).collect::<Vec<_>>(),
        "year" => all.iter().map(|d| d.year()).collect::<Vec<_>>(),
        "quarter" => all.iter().map(|d| d.month0() as i32 / 3 + 1).collect::<Vec<_>>(),
        "month" => all.iter().map(|d| d.month() as i32).collect::<Vec<_>>(),
        "month_name" => all.iter().map(|d| d.format("%B").to_string()).collect::<Vec<_>>(),
        "year_month" => all.iter().map(|d| d.format("%Y-%m").to_string()).collect::<Vec<_>>(),
        "day" => all.iter().map(|d| d.day() as i32).collect::<Vec<_>>(),
        "day_of_week" => all.iter().map(|d| d.weekday().number_from_monday() as i32).collect::<Vec<_>>(),
        "day_name" => all.iter().map(|d| d.format("%A").to_string()).collect::<Vec<_>>(),
        "iso_week" => all.iter().map(|d| d.iso_week().week() as i32).collect::<Vec<_>>(),
        "is_weekend" => all.iter().map(|d| d.weekday().number_from_monday() >= 6).collect::<Vec<_>>(),
    )?;
    Ok(df
        .lazy()
        .with_column(col("date").cast(DataType::Date))
        .collect()?)
}

/// The unknown member and an empty dim_customer's schema.
fn unknown_customer() -> Result<DataFrame> {
    let mut lf = df!("customer_key" => [0i64])?.lazy();
    let mut exprs = Vec::new();
    for (name, dt) in CUSTOMER_COLUMNS.iter() {
        let e = if *name == "name" {
            lit("Unknown")
        } else {
            lit(NULL).cast(dt.clone())
        };
        exprs.push(e.alias(*name));
    }
    exprs.push(lit(NULL).cast(ts_type()).alias("valid_from"));
    exprs.push(lit(NULL).cast(ts_type()).alias("valid_to"));
    exprs.push(lit(true).alias("is_current"));
    exprs.push(lit(0i64).cast(DataType::Int64).alias("load_id"));
    lf = lf.with_columns(exprs);
    Ok(lf.collect()?)
}

/// SCD type 2 merge of incoming customer records (in load order; the last record of an id
/// wins) into the old dim_customer.
fn merge_customers(
    old: Option<DataFrame>,
    incoming: Option<DataFrame>,
    load_id: i64,
    at: DateTime<Utc>,
) -> Result<DataFrame> {
    let old = match old {
        Some(o) => o,
        None => unknown_customer()?,
    };
    let Some(incoming) = incoming else {
        return Ok(old);
    };
    let present = names(&incoming);
    let incoming = conform(incoming.lazy(), &present, &CUSTOMER_COLUMNS)
        .unique_stable_generic(Some(vec![col("customer_id")]), UniqueKeepStrategy::Last);
    let max_key: i64 = old.column("customer_key")?.i64()?.max().unwrap_or(0);

    let mut cur_cols = vec![
        col("customer_id"),
        col("customer_key").alias("__old_key"),
        col("valid_from").alias("__old_from"),
    ];
    cur_cols.extend(
        CUSTOMER_HISTORY
            .iter()
            .map(|c| col(*c).alias(format!("__old_{c}"))),
    );
    let current = old
        .clone()
        .lazy()
        .filter(col("is_current").and(col("customer_key").gt(lit(0i64))))
        .select(cur_cols);
    let mut changed = lit(false);
    for c in CUSTOMER_HISTORY {
        changed = changed.or(col(c).neq_missing(col(format!("__old_{c}").as_str())));
    }
    let joined = incoming
        .join(
            current,
            [col("customer_id")],
            [col("customer_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(
            when(col("__old_key").is_null())
                .then(lit("new"))
                .when(changed)
                .then(lit("changed"))
                .otherwise(lit("same"))
                .alias("__kind"),
        )
        .collect()?;

    let kinds = joined.column("__kind")?.str()?;
    let old_keys = joined.column("__old_key")?.i64()?;
    let mut replaced: Vec<i64> = Vec::new();
    let mut closed: Vec<i64> = Vec::new();
    for (k, key) in kinds.iter().zip(old_keys.iter()) {
        match (k, key) {
            (Some("same"), Some(key)) => replaced.push(key),
            (Some("changed"), Some(key)) => closed.push(key),
            _ => {}
        }
    }
    let key_list = |v: &[i64]| lit(Series::new("k".into(), v)).implode(false);

    let mut attr: Vec<Expr> = CUSTOMER_COLUMNS.iter().map(|(n, _)| col(*n)).collect();
    // Type 1: the current row takes the new attributes, keeps its key and validity.
    let mut same_cols = vec![col("__old_key").alias("customer_key")];
    same_cols.append(&mut attr.clone());
    same_cols.extend([
        col("__old_from").alias("valid_from"),
        lit(NULL).cast(ts_type()).alias("valid_to"),
        lit(true).alias("is_current"),
        lit(load_id).cast(DataType::Int64).alias("load_id"),
    ]);
    let same = joined
        .clone()
        .lazy()
        .filter(col("__kind").eq(lit("same")))
        .select(same_cols);

    // New members and new versions: next keys in id order.
    let mut new_cols =
        vec![(lit(max_key + 1) + col("__idx").cast(DataType::Int64)).alias("customer_key")];
    new_cols.append(&mut attr);
    new_cols.extend([
        ts_lit(at).alias("valid_from"),
        lit(NULL).cast(ts_type()).alias("valid_to"),
        lit(true).alias("is_current"),
        lit(load_id).cast(DataType::Int64).alias("load_id"),
    ]);
    let fresh = joined
        .lazy()
        .filter(col("__kind").neq(lit("same")))
        .sort(["customer_id"], SortMultipleOptions::default())
        .with_row_index("__idx", None)
        .select(new_cols);

    let kept = old
        .lazy()
        .filter(col("customer_key").is_in(key_list(&replaced), false).not())
        .with_columns([
            when(col("customer_key").is_in(key_list(&closed), false))
                .then(ts_lit(at))
                .otherwise(col("valid_to"))
                .alias("valid_to"),
            when(col("customer_key").is_in(key_list(&closed), false))
                .then(lit(false))
                .otherwise(col("is_current"))
                .alias("is_current"),
        ]);
    let out = concat([kept, same, fresh], UnionArgs::default())?
        .sort(["customer_key"], SortMultipleOptions::default())
        .collect()?;
    Ok(out)
}

/// Type 1 merge of incoming products (`authoritative`: from a product source, whose values
/// win; else derived, whose values only fill gaps).
fn merge_products(
    old: Option<DataFrame>,
    incoming: Option<(DataFrame, bool)>,
) -> Result<DataFrame> {
    let empty = || -> Result<DataFrame> {
        let mut exprs = vec![lit(NULL).cast(DataType::Int64).alias("product_key")];
        exprs.extend(
            PRODUCT_COLUMNS
                .iter()
                .map(|(n, dt)| lit(NULL).cast(dt.clone()).alias(*n)),
        );
        Ok(df!("x" => [0i32])?
            .lazy()
            .select(exprs)
            .slice(0, 0)
            .collect()?)
    };
    let old = match old {
        Some(o) => o,
        None => empty()?,
    };
    let Some((incoming, authoritative)) = incoming else {
        return Ok(old);
    };
    let present = names(&incoming);
    let incoming = conform(incoming.lazy(), &present, &PRODUCT_COLUMNS)
        .unique_stable_generic(Some(vec![col("product_id")]), UniqueKeepStrategy::Last)
        .collect()?;
    let max_key: i64 = old.column("product_key")?.i64()?.max().unwrap_or(0);

    let renamed: Vec<Expr> = PRODUCT_COLUMNS
        .iter()
        .map(|(n, _)| {
            if *n == "product_id" {
                col(*n)
            } else {
                col(*n).alias(format!("__new_{n}"))
            }
        })
        .collect();
    let mut updated_cols = vec![col("product_key"), col("product_id")];
    for (n, _) in PRODUCT_COLUMNS.iter().skip(1) {
        let new = col(format!("__new_{n}").as_str());
        let e = if authoritative {
            when(col("__matched")).then(new).otherwise(col(*n))
        } else {
            coalesce(&[col(*n), new])
        };
        updated_cols.push(e.alias(*n));
    }
    let updated = old
        .clone()
        .lazy()
        .join(
            incoming
                .clone()
                .lazy()
                .select(renamed)
                .with_column(lit(true).alias("__matched")),
            [col("product_id")],
            [col("product_id")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("__matched").fill_null(lit(false)))
        .select(updated_cols);
    let old_ids = old.column("product_id")?.as_materialized_series().clone();
    let mut new_cols =
        vec![(lit(max_key + 1) + col("__idx").cast(DataType::Int64)).alias("product_key")];
    new_cols.extend(PRODUCT_COLUMNS.iter().map(|(n, _)| col(*n)));
    let fresh = incoming
        .lazy()
        .filter(
            col("product_id")
                .is_in(lit(old_ids).implode(false), false)
                .not(),
        )
        .sort(["product_id"], SortMultipleOptions::default())
        .with_row_index("__idx", None)
        .select(new_cols);
    Ok(concat([updated, fresh], UnionArgs::default())?
        .sort(["product_key"], SortMultipleOptions::default())
        .collect()?)
}

/// One `loads` row per file of this load.
fn loads_frame(
    loads: &[FileLoad],
    load_id: i64,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&FileLoad) -> String| loads.iter().map(f).collect::<Vec<_>>();
    let u = |f: &dyn Fn(&FileLoad) -> u64| loads.iter().map(f).collect::<Vec<_>>();
    let n = loads.len();
    let df = df!(
        "load_id" => vec![load_id; n],
        "source" => s(&|l| l.source.name.clone()),
        "file" => s(&|l| l.summary.file.clone()),
        "file_name" => s(&|l| std::path::Path::new(&l.summary.file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
        "sha256" => s(&|l| l.summary.sha256.clone()),
        "bytes" => u(&|l| l.summary.bytes),
        "rows_read" => u(&|l| l.summary.rows_read),
        "rows_loaded" => u(&|l| l.summary.rows_loaded),
        "rows_rejected" => u(&|l| l.summary.rows_rejected),
        "duplicates" => u(&|l| l.summary.duplicates),
        "started_at" => vec![started.naive_utc().and_utc().timestamp_micros(); n],
        "finished_at" => vec![finished.naive_utc().and_utc().timestamp_micros(); n],
    )?;
    Ok(df
        .lazy()
        .with_columns([
            col("started_at").cast(ts_type()),
            col("finished_at").cast(ts_type()),
        ])
        .collect()?)
}

/// Writes `<warehouse>/loads.json`: the `loads` table as JSON, for schedulers and people.
pub fn write_loads_json(wh: &Warehouse) -> Result<()> {
    let Some(df) = wh.read_polars("loads")? else {
        return Ok(());
    };
    let mut rows = Vec::with_capacity(df.height());
    let cols = df.columns();
    for i in 0..df.height() {
        let mut obj = serde_json::Map::new();
        for c in cols {
            let v = c.get(i)?;
            let json = match v {
                AnyValue::Null => serde_json::Value::Null,
                AnyValue::String(s) => serde_json::Value::from(s),
                AnyValue::Int64(x) => serde_json::Value::from(x),
                AnyValue::UInt64(x) => serde_json::Value::from(x),
                AnyValue::Datetime(us, _, _) => serde_json::Value::from(
                    DateTime::<Utc>::from_timestamp_micros(us)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                        .unwrap_or_default(),
                ),
                other => serde_json::Value::from(other.to_string()),
            };
            obj.insert(c.name().to_string(), json);
        }
        rows.push(serde_json::Value::Object(obj));
    }
    let body = serde_json::to_vec_pretty(&rows).map_err(|e| Error::Internal(e.to_string()))?;
    crate::warehouse::files::write_bytes(&wh.root().join("loads.json"), &body)
}
