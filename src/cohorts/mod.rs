//! Cohort retention: how many of a cohort of customers stay, period after period, and how
//! many will.
//!
//! - [`triangle`]: the retention triangle of the warehouse's customers by first purchase
//!   period → table `cohort_retention` ([`retention`] builds and stores it).
//! - [`sbg`]: the shifted-beta-geometric model of one survivor curve (Fader & Hardie 2007):
//!   input the counts still active at the start and after each period, output α, β by
//!   maximum likelihood, the log-likelihood and the projected survival and retention.
//!
//! Layer: mining (uses `features` for the default as-of date, `olap`, `warehouse`, and the
//! maximum-likelihood fit of [`crate::value::fit`]).

pub mod sbg;
pub mod triangle;

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;

use crate::error::Result;
use crate::features;
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, WriterLock, tables};
use triangle::CohortParams;

/// Builds the retention triangle as of `as_of` (default: the day after the last order line)
/// and replaces table `cohort_retention` with it; returns it and the as-of date.
pub async fn retention(
    wh_root: &Path,
    params: &CohortParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(RecordBatch, NaiveDate)> {
    let lock = WriterLock::acquire(wh_root, "cohorts")?;
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    let as_of = match as_of {
        Some(d) => d,
        None => features::default_as_of(&ctx).await?,
    };
    let batch = triangle::compute(&ctx, params, as_of).await?;
    let mut tx = wh.begin(&lock);
    let f = tx.write_arrow(
        tables::COHORT_RETENTION,
        &batch.schema(),
        std::slice::from_ref(&batch),
    )?;
    tx.replace(tables::COHORT_RETENTION, vec![f]);
    Warehouse::commit(tx, &format!("cohort retention as of {as_of}"))?;
    Ok((batch, as_of))
}
