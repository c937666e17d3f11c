//! The dimensions: `dim_customer` (SCD type 2 on the history attributes), `dim_product`
//! and `dim_campaign` (type 1), `dim_date`, and the aggregates a load keeps to derive customers and products
//! from order lines when the contract has no source for them.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use polars::prelude::*;

use super::{BuildInput, conform, names, ts_lit, ts_type, vstack_all};
use crate::error::{Error, Result};
use crate::ingest::FileLoad;
use crate::ingest::cleanse::MONEY;
use crate::ingest::contract::Entity;
use crate::warehouse::{Owner, Transaction, tables};

const CUSTOMER_COLUMNS: [(&str, DataType); 13] = [
    ("customer_id", DataType::String),
    ("email", DataType::String),
    ("name", DataType::String),
    ("gender", DataType::String),
    ("birth_date", DataType::Date),
    ("age_band", DataType::String),
    ("country", DataType::String),
    ("region", DataType::String),
    ("city", DataType::String),
    ("signup_date", DataType::Date),
    ("acquisition_channel", DataType::String),
    ("email_opt_in", DataType::Boolean),
    ("phone_opt_in", DataType::Boolean),
];

/// Attributes whose change opens a new dim_customer version (SCD type 2): where a customer
/// lives, their age group (facts are read with the band of their day) and their consent.
const CUSTOMER_HISTORY: [&str; 4] = ["country", "age_band", "email_opt_in", "phone_opt_in"];

const PRODUCT_COLUMNS: [(&str, DataType); 6] = [
    ("product_id", DataType::String),
    ("description", DataType::String),
    ("category", DataType::String),
    ("subcategory", DataType::String),
    ("unit_cost", MONEY),
    ("is_service", DataType::Boolean),
];

const CAMPAIGN_COLUMNS: [(&str, DataType); 9] = [
    ("campaign_id", DataType::String),
    ("name", DataType::String),
    ("channel", DataType::String),
    ("start_date", DataType::Date),
    ("end_date", DataType::Date),
    ("cost_per_contact", MONEY),
    ("fixed_cost", MONEY),
    ("offer", DataType::String),
    ("response_window_days", DataType::Int64),
];

/// Which dimensions a load derives from order lines.
#[derive(Clone, Copy, Debug)]
pub struct Derive {
    pub customers: bool,
    pub products: bool,
}

/// What derived dimensions need from order lines, aggregated chunk by chunk so that no load
/// holds its order lines in memory: each customer's latest line (id, when, and the customer
/// attributes the lines carry: country, age band, region, …), and line counts per product
/// and description with the product's category and subcategory (their largest value when
/// lines disagree, which they rarely do).
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
            cols.extend(
                CUSTOMER_COLUMNS[1..]
                    .iter()
                    .filter(|(c, _)| has(c))
                    .map(|(c, dt)| col(*c).cast(dt.clone())),
            );
            let mut latest = lines
                .clone()
                .lazy()
                .filter(col("customer_id").is_not_null())
                .select(cols);
            // Rows are in record order and of one file, so in (time, file, record) order once
            // stably sorted by time, which most chunks already are (extracts come in time
            // order): the sort, and its gather of every column, is skipped for those.
            if !in_time_order(lines)? {
                latest = latest.sort(
                    ["invoice_ts"],
                    SortMultipleOptions::default().with_maintain_order(true),
                );
            }
            self.customers.push(
                latest
                    .unique_stable_generic(Some(vec![col("customer_id")]), UniqueKeepStrategy::Last)
                    .collect()?,
            );
        }
        if !derive.products {
            return Ok(());
        }
        // Group and aggregate only what the lines carry; `products` fills in the rest.
        let mut keys = vec![col("product_id")];
        if has("description") {
            keys.push(col("description"));
        }
        let mut aggs = vec![
            len().cast(DataType::UInt64).alias("__n"),
            col("is_service").max(),
        ];
        aggs.extend(
            ["category", "subcategory"]
                .into_iter()
                .filter(|c| has(c))
                .map(|c| col(c).max()),
        );
        self.products
            .push(lines.clone().lazy().group_by(keys).agg(aggs).collect()?);
        Ok(())
    }

    /// Customers (id and the attributes the lines carry), in time order: the last row of an
    /// id wins.
    fn customers(&self) -> Result<Option<DataFrame>> {
        // Files of other shapes carry other attributes: each part gets all, NULL where absent.
        let order = [
            ("__file", DataType::UInt64),
            ("__record", DataType::UInt64),
            ("invoice_ts", ts_type()),
        ];
        let columns: Vec<(&str, DataType)> = order
            .into_iter()
            .chain(CUSTOMER_COLUMNS.iter().cloned())
            .collect();
        let Some(all) = stack_conformed(&self.customers, &columns)? else {
            return Ok(None);
        };
        let cols: Vec<Expr> = CUSTOMER_COLUMNS.iter().map(|(c, _)| col(*c)).collect();
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
        let columns = [
            ("product_id", DataType::String),
            ("description", DataType::String),
            ("__n", DataType::UInt64),
            ("is_service", DataType::Boolean),
            ("category", DataType::String),
            ("subcategory", DataType::String),
        ];
        let Some(counts) = stack_conformed(&self.products, &columns)? else {
            return Ok(None);
        };
        let service = counts.clone().lazy().group_by([col("product_id")]).agg([
            col("is_service").max(),
            col("category").max(),
            col("subcategory").max(),
        ]);
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
                .select([
                    col("product_id"),
                    col("description"),
                    col("category"),
                    col("subcategory"),
                    col("is_service"),
                ])
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

/// `parts` stacked, each with exactly `columns` (NULL where a part has none), or None.
fn stack_conformed(parts: &[DataFrame], columns: &[(&str, DataType)]) -> Result<Option<DataFrame>> {
    let parts = parts
        .iter()
        .map(|p| Ok(conform(p.clone().lazy(), &names(p), columns).collect()?))
        .collect::<Result<Vec<_>>>()?;
    vstack_all(parts)
}

/// Whether a chunk's `invoice_ts` never decreases (a NULL counts as the earliest time, where
/// a sort puts it).
fn in_time_order(lines: &DataFrame) -> Result<bool> {
    let ts = lines
        .column("invoice_ts")?
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    let mut last = i64::MIN;
    for t in ts.datetime()?.physical().iter() {
        let t = t.unwrap_or(i64::MIN);
        if t < last {
            return Ok(false);
        }
        last = t;
    }
    Ok(true)
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

/// The current customer and product keys by id, which the facts look up.
pub(super) struct Keys {
    pub customers: LazyFrame,
    pub products: LazyFrame,
}

/// Merges this load's customers and products (from their sources, else derived from order
/// lines) into the old dimensions and writes both.
pub(super) fn write_customers_and_products(
    tx: &mut Transaction<'_>,
    input: &BuildInput<'_>,
    read: &dyn Fn(&str) -> Result<Option<DataFrame>>,
) -> Result<Keys> {
    let loads = input.loads;
    let derived = Derived::merge(
        &loads
            .iter()
            .filter(|l| l.source.entity == Entity::OrderLine)
            .map(|l| &l.derived)
            .collect::<Vec<_>>(),
    );
    let customers_in = match good_of(loads, Entity::Customer)? {
        Some(df) => Some(df),
        None if input.customer_source => None,
        None => derived.customers()?,
    };
    let mut dim_customer = merge_customers(
        read(tables::DIM_CUSTOMER)?,
        customers_in,
        input.load_id,
        input.started,
    )?;
    let f = tx.write_polars(
        tables::DIM_CUSTOMER,
        None,
        &mut dim_customer,
        &Owner::default(),
    )?;
    tx.replace(tables::DIM_CUSTOMER, vec![f]);

    let products_in = match good_of(loads, Entity::Product)? {
        Some(df) => Some((df, true)),
        None if input.product_source => None,
        None => derived.products()?.map(|df| (df, false)),
    };
    let mut dim_product = merge_products(read(tables::DIM_PRODUCT)?, products_in)?;
    let f = tx.write_polars(
        tables::DIM_PRODUCT,
        None,
        &mut dim_product,
        &Owner::default(),
    )?;
    tx.replace(tables::DIM_PRODUCT, vec![f]);

    Ok(Keys {
        customers: dim_customer
            .lazy()
            .filter(col("is_current").and(col("customer_key").gt(lit(0i64))))
            .select([col("customer_id"), col("customer_key")]),
        products: dim_product
            .lazy()
            .select([col("product_id"), col("product_key")]),
    })
}

/// Writes `dim_date` over every day from the first to the last of `days` and of the old
/// `dim_date` (nothing when there are no days at all).
pub(super) fn write_dim_date(
    tx: &mut Transaction<'_>,
    old: Option<DataFrame>,
    mut days: BTreeSet<NaiveDate>,
) -> Result<()> {
    if let Some(old) = old {
        collect_days(&old, "date", &mut days)?;
    }
    if let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) {
        let mut dd = dim_date(first, last)?;
        let f = tx.write_polars(tables::DIM_DATE, None, &mut dd, &Owner::default())?;
        tx.replace(tables::DIM_DATE, vec![f]);
    }
    Ok(())
}

/// Adds the first and last day of a timestamp or date column.
pub(super) fn collect_days(
    df: &DataFrame,
    column: &str,
    days: &mut BTreeSet<NaiveDate>,
) -> Result<()> {
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
fn dim_date(first: NaiveDate, last: NaiveDate) -> Result<DataFrame> {
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

/// An old dim_customer in today's column order; a column added since it was written (such
/// as `age_band`) comes in as NULLs.
fn current_layout(old: DataFrame) -> Result<DataFrame> {
    let mut columns = vec![("customer_key", DataType::Int64)];
    columns.extend(CUSTOMER_COLUMNS.iter().cloned());
    columns.extend([
        ("valid_from", ts_type()),
        ("valid_to", ts_type()),
        ("is_current", DataType::Boolean),
        ("load_id", DataType::Int64),
    ]);
    let present = names(&old);
    Ok(conform(old.lazy(), &present, &columns).collect()?)
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
        // A warehouse written before a column was added gets it as NULLs.
        Some(o) => current_layout(o)?,
        None => unknown_customer()?,
    };
    let Some(incoming) = incoming else {
        return Ok(old);
    };
    let present = names(&incoming);
    let incoming = conform(incoming.lazy(), &present, &CUSTOMER_COLUMNS)
        .unique_stable_generic(Some(vec![col("customer_id")]), UniqueKeepStrategy::Last);
    let max_key: i64 = old.column("customer_key")?.i64()?.max().unwrap_or(0);
    let joined = classify(incoming, &old)?;

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

/// The incoming customers joined to their current rows (`__old_key`, `__old_from`,
/// `__old_<history attribute>`) with `__kind`: `new` (no current row), `changed` (a history
/// attribute differs, NULLs compared as values: a new version) or `same` (type 1 update).
fn classify(incoming: LazyFrame, old: &DataFrame) -> Result<DataFrame> {
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
    Ok(incoming
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
        .collect()?)
}

/// Type 1 merge of incoming products (`authoritative`: from a product source, whose values
/// win; else derived, whose values only fill gaps).
fn merge_products(
    old: Option<DataFrame>,
    incoming: Option<(DataFrame, bool)>,
) -> Result<DataFrame> {
    merge_type1(old, incoming, "product_key", &PRODUCT_COLUMNS)
}

/// A type-1 dimension (`columns[0]` is the id): old members keep their keys and take the
/// incoming attributes (all of them when `authoritative`, a dimension source's rows; only
/// where they had none otherwise, members derived from facts); new members get the next
/// keys in id order.
fn merge_type1(
    old: Option<DataFrame>,
    incoming: Option<(DataFrame, bool)>,
    key: &str,
    columns: &[(&str, DataType)],
) -> Result<DataFrame> {
    let id = columns[0].0;
    let empty = || -> Result<DataFrame> {
        let mut exprs = vec![lit(NULL).cast(DataType::Int64).alias(key)];
        exprs.extend(
            columns
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
    let incoming = conform(incoming.lazy(), &present, columns)
        .unique_stable_generic(Some(vec![col(id)]), UniqueKeepStrategy::Last)
        .collect()?;
    let max_key: i64 = old.column(key)?.i64()?.max().unwrap_or(0);

    let renamed: Vec<Expr> = columns
        .iter()
        .map(|(n, _)| {
            if *n == id {
                col(*n)
            } else {
                col(*n).alias(format!("__new_{n}"))
            }
        })
        .collect();
    let mut updated_cols = vec![col(key), col(id)];
    for (n, _) in columns.iter().skip(1) {
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
            [col(id)],
            [col(id)],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("__matched").fill_null(lit(false)))
        .select(updated_cols);
    let old_ids = old.column(id)?.as_materialized_series().clone();
    let mut new_cols = vec![(lit(max_key + 1) + col("__idx").cast(DataType::Int64)).alias(key)];
    new_cols.extend(columns.iter().map(|(n, _)| col(*n)));
    let fresh = incoming
        .lazy()
        .filter(col(id).is_in(lit(old_ids).implode(false), false).not())
        .sort([id], SortMultipleOptions::default())
        .with_row_index("__idx", None)
        .select(new_cols);
    Ok(concat([updated, fresh], UnionArgs::default())?
        .sort([key], SortMultipleOptions::default())
        .collect()?)
}

/// Merges this load's campaigns into `dim_campaign` and writes it: from the campaign
/// source when the contract has one, else the campaigns the contacts name (id only).
pub(super) fn write_campaigns(
    tx: &mut Transaction<'_>,
    input: &BuildInput<'_>,
    read: &dyn Fn(&str) -> Result<Option<DataFrame>>,
) -> Result<()> {
    let incoming = match good_of(input.loads, Entity::Campaign)? {
        Some(df) => Some((df, true)),
        None if input.campaign_source => None,
        None => good_of(input.loads, Entity::CampaignContact)?
            .map(|c| c.select(["campaign_id"]))
            .transpose()?
            .map(|ids| (ids, false)),
    };
    let old = read(tables::DIM_CAMPAIGN)?;
    if old.is_none() && incoming.is_none() {
        return Ok(());
    }
    let mut dim = merge_type1(old, incoming, "campaign_key", &CAMPAIGN_COLUMNS)?;
    let f = tx.write_polars(tables::DIM_CAMPAIGN, None, &mut dim, &Owner::default())?;
    tx.replace(tables::DIM_CAMPAIGN, vec![f]);
    Ok(())
}
