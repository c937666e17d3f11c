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
use crate::olap::EngineOptions;
use crate::warehouse::{Warehouse, tables};
use triangle::CohortParams;

/// Builds the retention triangle as of `as_of` (default: the day after the last order line)
/// and replaces table `cohort_retention` with it; returns it and the as-of date.
pub async fn retention(
    wh_root: &Path,
    params: &CohortParams,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<(RecordBatch, NaiveDate)> {
    let (lock, wh, ctx, as_of) = features::open_as_of(wh_root, "cohorts", as_of, engine).await?;
    let batch = triangle::compute(&ctx, params, as_of).await?;
    let mut tx = wh.begin(&lock);
    tx.replace_with(tables::COHORT_RETENTION, &batch)?;
    Warehouse::commit(tx, &format!("cohort retention as of {as_of}"))?;
    Ok((batch, as_of))
}
