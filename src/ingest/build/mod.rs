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
//! - `dim_campaign` (rebuilt, type 1): `campaign_key`, `campaign_id` and the campaign's
//!   attributes; without a campaign source, the campaigns contacts name (id only).
//! - `fact_campaign_contact` (`arm` is `treatment` where the extract gives none; `cost`, the
//!   contact's own, NULL where it has none), `fact_consent` (one row per consent event),
//!   `rejects` (appended, one file per input file), `loads` (rebuilt; one row per file). Appended files remember their load and input file, for `--replace`
//!   and rollback.
//!
//! Rooms: `dimensions` (customers, products, dates, and what a load derives from order
//! lines), `facts` (sales and contacts, streamed), `loads` (rejects, the `loads` table,
//! `loads.json`).
//!
//! Keys are stable: existing rows keep their keys; new members get the next keys in id order,
//! so the same loads give the same keys.

mod dimensions;
mod facts;
mod loads;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::FileLoad;
use crate::error::Result;
use crate::warehouse::{Transaction, Warehouse, tables};

pub use dimensions::{Derive, Derived};
pub use facts::sales_inputs;
pub use loads::write_loads_json;

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
    /// The contract has a campaign source: campaigns are never derived from contacts.
    pub campaign_source: bool,
}

/// Builds and writes every table for one load.
pub fn build(
    tx: &mut Transaction<'_>,
    base: Option<&Warehouse>,
    input: &BuildInput<'_>,
) -> Result<()> {
    let read = |name: &str| -> Result<Option<DataFrame>> {
        match base {
            Some(wh) => wh.read_polars(name),
            None => Ok(None),
        }
    };
    // Time per step, logged at debug level (ECRM_LOG=debug).
    let clock = std::time::Instant::now();
    let lap = |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "build");

    let keys = dimensions::write_customers_and_products(tx, input, &read)?;
    lap("dimensions");
    let mut days = BTreeSet::new();
    facts::SALES.write(tx, input, &keys, &mut days)?;
    lap("fact_sales");
    facts::CONTACTS.write(tx, input, &keys, &mut days)?;
    lap("fact_campaign_contact");
    dimensions::write_campaigns(tx, input, &read)?;
    facts::CONSENT.write(tx, input, &keys, &mut days)?;
    lap("dim_campaign, fact_consent");
    facts::WEB_EVENTS.write(tx, input, &keys, &mut days)?;
    lap("fact_web_event");
    loads::write_rejects(tx, input)?;
    dimensions::write_dim_date(tx, read(tables::DIM_DATE)?, days)?;
    loads::write_loads(tx, input)?;
    lap("rejects, dim_date, loads");
    Ok(())
}

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
