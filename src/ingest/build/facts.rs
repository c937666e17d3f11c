//! The facts: `fact_sales` (one file per month per order-line file; `unit_cost` and `cost`
//! (the line's) are NULL where the extract gives no cost on the line),
//! `fact_campaign_contact` (one file per contact file), `fact_consent` (one file per
//! consent file) and `fact_web_event` (one file per month per web-event file), streamed from
//! the staged chunks with the current dimension keys joined in; unknown customers get key 0.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use polars::prelude::*;

use super::dimensions::{Keys, collect_days};
use super::{BuildInput, names, ts_type};
use crate::error::Result;
use crate::ingest::FileLoad;
use crate::ingest::cleanse::MONEY;
use crate::ingest::contract::Entity;
use crate::warehouse::{PartitionedWriter, Transaction, tables};

/// The order-line columns `fact_sales` is made of: once the derived dimensions have seen a
/// chunk, these are all it needs to keep (descriptions and the customer and product
/// attributes lines carry are not staged).
const SALES_INPUTS: [&str; 14] = [
    "__record",
    "invoice_no",
    "invoice_ts",
    "customer_id",
    "product_id",
    "quantity",
    "unit_price",
    "line_total",
    "unit_cost",
    "line_cost",
    "is_return",
    "is_service",
    "channel",
    "country",
];

/// A chunk of good order lines cut to the columns `fact_sales` reads (see [`SALES_INPUTS`]).
pub fn sales_inputs(lines: DataFrame) -> Result<DataFrame> {
    let keep: Vec<&str> = SALES_INPUTS
        .into_iter()
        .filter(|c| lines.column(c).is_ok())
        .collect();
    Ok(lines.select(keep)?)
}

/// `fact_sales`: one file per month per order-line file of the load.
pub(super) const SALES: FactTable = FactTable {
    entity: Entity::OrderLine,
    table: tables::FACT_SALES,
    time: "invoice_ts",
    rows: sales_fact,
    monthly: true,
};

/// `fact_campaign_contact`: one file per contact file of the load.
pub(super) const CONTACTS: FactTable = FactTable {
    entity: Entity::CampaignContact,
    table: tables::FACT_CAMPAIGN_CONTACT,
    time: "contact_ts",
    rows: contact_fact,
    monthly: false,
};

/// `fact_consent`: one file per consent-event file of the load.
pub(super) const CONSENT: FactTable = FactTable {
    entity: Entity::ConsentEvent,
    table: tables::FACT_CONSENT,
    time: "event_ts",
    rows: consent_fact,
    monthly: false,
};

/// `fact_web_event`: one file per month per web-event file of the load.
pub(super) const WEB_EVENTS: FactTable = FactTable {
    entity: Entity::WebEvent,
    table: tables::FACT_WEB_EVENT,
    time: "event_ts",
    rows: web_event_fact,
    monthly: true,
};

/// A fact table written file by file for each input file of its entity: a chunk's rows from
/// `rows` (given the current dimension keys and the load), its days from column `time`;
/// with `monthly`, one file per month of `time` (`month=2011-01`; `month=unknown` for none).
pub(super) struct FactTable {
    entity: Entity,
    table: &'static str,
    time: &'static str,
    rows: fn(DataFrame, &Keys, i64) -> Result<DataFrame>,
    monthly: bool,
}

impl FactTable {
    /// Writes the table's rows of every file of the load, adding the days they cover.
    pub(super) fn write(
        &self,
        tx: &mut Transaction<'_>,
        input: &BuildInput<'_>,
        keys: &Keys,
        days: &mut BTreeSet<NaiveDate>,
    ) -> Result<()> {
        let load_id = input.load_id;
        for fl in input
            .loads
            .iter()
            .filter(|l| l.source.entity == self.entity)
        {
            let mut writer = tx.partitioned_writer(self.table, fl.owner(load_id));
            for chunk in chunks_of(fl)? {
                let fact = (self.rows)(chunk?, keys, load_id)?;
                collect_days(&fact, self.time, days)?;
                if fact.height() == 0 {
                    // A first load without rows: an empty file gives the table its schema.
                    if fl.staged.is_empty() && !tx.next().tables.contains_key(self.table) {
                        writer.write(tx, None, &fact)?;
                    }
                } else if self.monthly {
                    self.write_months(tx, &mut writer, fact)?;
                } else {
                    writer.write(tx, None, &fact)?;
                }
            }
            let files = writer.finish()?;
            tx.append(self.table, files);
        }
        Ok(())
    }

    /// One file per month of the chunk's `time`.
    fn write_months(
        &self,
        tx: &mut Transaction<'_>,
        writer: &mut PartitionedWriter,
        fact: DataFrame,
    ) -> Result<()> {
        let t = col(self.time);
        // yyyymm as a number: the partition name is formatted once per month, not per row.
        let month = (t.clone().dt().year() * lit(100i32) + t.dt().month().cast(DataType::Int32))
            .alias("__month");
        let fact = fact.lazy().with_column(month).collect()?;
        for part in fact.partition_by_stable(["__month"], true)? {
            let partition = match part.column("__month")?.i32()?.get(0) {
                Some(m) => format!("month={:04}-{:02}", m / 100, m % 100),
                None => "month=unknown".to_string(),
            };
            writer.write(tx, Some(&partition), &part.drop("__month")?)?;
        }
        Ok(())
    }
}

/// One chunk of consent events as fact_consent rows.
fn consent_fact(events: DataFrame, keys: &Keys, load_id: i64) -> Result<DataFrame> {
    let present = names(&events);
    Ok(with_customer_key(events.lazy(), &keys.customers)
        .select([
            customer_key(),
            col("customer_id"),
            col("channel"),
            col("status"),
            col("event_ts"),
            date_key("event_ts"),
            column_or_null(&present, "source", DataType::String),
            record(),
            load(load_id),
        ])
        .collect()?)
}

/// A file's staged chunks, read one at a time; a file without good rows yields one empty
/// chunk with the right columns.
fn chunks_of(fl: &FileLoad) -> Result<Box<dyn Iterator<Item = Result<DataFrame>> + '_>> {
    if fl.staged.is_empty() {
        return Ok(Box::new(std::iter::once(crate::ingest::empty_good(
            &fl.source,
        ))));
    }
    Ok(Box::new(
        fl.staged
            .iter()
            .map(|p| crate::warehouse::read_polars_file(p)),
    ))
}

/// Fact rows joined to the customer dimension's current keys (by `customer_id`).
fn with_customer_key(rows: LazyFrame, customers: &LazyFrame) -> LazyFrame {
    rows.join(
        customers.clone(),
        [col("customer_id")],
        [col("customer_id")],
        JoinArgs::new(JoinType::Left),
    )
}

/// `customer_key`, 0 (the unknown member) for ids without a customer: guests, erased ones.
fn customer_key() -> Expr {
    col("customer_key").fill_null(lit(0i64))
}

/// `record`: the input record a fact row came from.
fn record() -> Expr {
    col("__record").alias("record")
}

/// `load_id`: the load that wrote a fact row.
fn load(load_id: i64) -> Expr {
    lit(load_id).cast(DataType::Int64).alias("load_id")
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

/// A line's revenue: its line total when the extract gives one (exact, whatever the rounded
/// unit price), else quantity × unit price, exactly.
fn revenue(present: &[String]) -> Expr {
    let e = if present.iter().any(|p| p == "line_total") {
        col("line_total").cast(MONEY)
    } else {
        crate::ingest::compute::times_quantity("unit_price")
    };
    e.alias("revenue")
}

/// One chunk of order lines as fact_sales rows.
fn sales_fact(lines: DataFrame, keys: &Keys, load_id: i64) -> Result<DataFrame> {
    let present = names(&lines);
    Ok(with_customer_key(lines.lazy(), &keys.customers)
        .join(
            keys.products.clone(),
            [col("product_id")],
            [col("product_id")],
            JoinArgs::new(JoinType::Left),
        )
        .select([
            col("invoice_no"),
            col("invoice_ts"),
            date_key("invoice_ts"),
            customer_key(),
            column_or_null(&present, "customer_id", DataType::String),
            col("product_key"),
            col("product_id"),
            col("quantity"),
            col("unit_price"),
            revenue(&present),
            column_or_null(&present, "unit_cost", MONEY),
            column_or_null(&present, "line_cost", MONEY).alias("cost"),
            col("is_return"),
            col("is_service"),
            column_or_null(&present, "channel", DataType::String),
            column_or_null(&present, "country", DataType::String),
            record(),
            load(load_id),
        ])
        .collect()?)
}

/// One chunk of campaign contacts as fact_campaign_contact rows.
fn contact_fact(contacts: DataFrame, keys: &Keys, load_id: i64) -> Result<DataFrame> {
    let present = names(&contacts);
    Ok(with_customer_key(contacts.lazy(), &keys.customers)
        .select([
            col("campaign_id"),
            customer_key(),
            col("customer_id"),
            col("contact_ts"),
            date_key("contact_ts"),
            column_or_null(&present, "channel", DataType::String),
            column_or_null(&present, "responded", DataType::Boolean),
            column_or_null(&present, "response_ts", ts_type()),
            column_or_null(&present, "arm", DataType::String).fill_null(lit("treatment")),
            column_or_null(&present, "cost", MONEY),
            record(),
            load(load_id),
        ])
        .collect()?)
}

/// One chunk of web events as fact_web_event rows. The customer key is the one the event
/// names; visitors linked to customers by their logins and purchases are stitched by `ecrm
/// web sessions` (`dim_visitor`), which sees every load.
fn web_event_fact(events: DataFrame, keys: &Keys, load_id: i64) -> Result<DataFrame> {
    let present = names(&events);
    let text = |c: &str| column_or_null(&present, c, DataType::String);
    // A log of anonymous visitors has no customer column to join on.
    let events = events.lazy().with_column(text("customer_id"));
    Ok(with_customer_key(events, &keys.customers)
        .select([
            col("event_ts"),
            date_key("event_ts"),
            col("event_type"),
            text("session_id"),
            text("visitor_id"),
            customer_key(),
            text("customer_id"),
            column_or_null(&present, "sequence", DataType::Int64),
            text("page"),
            text("product_id"),
            text("category"),
            column_or_null(&present, "price", MONEY),
            text("referrer"),
            text("channel"),
            text("device"),
            text("country"),
            text("invoice_no"),
            record(),
            load(load_id),
        ])
        .collect()?)
}
