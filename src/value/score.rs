//! Scoring: per customer P(alive), expected purchases and spend over a horizon, and the
//! customer's value (CLV).
//!
//! - Parameters ([`ClvScoreParams`]): the horizon in days (default 365), the annual discount
//!   rate (default 0.10) and the margin, the share of revenue that is profit (default 1:
//!   the CLV is then discounted revenue).
//! - CLV = margin × expected spend per purchase × Σₖ (E[Y(tₖ)] − E[Y(tₖ₋₁)]) / (1 + rate)^{tₖ in
//!   years}: expected purchases month by month (steps of 30.4375 days, the last one shorter),
//!   each discounted from the end of its month. NULL without a spend model.
//! - `value_decile`: 1 for the most valuable tenth, by CLV (by expected purchases for a model
//!   without spend); ties keep input order.
//!
//! Customers with the same summary share one evaluation of the model (see [`super::patterns`]).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;

use super::data::Customers;
use super::model::ModelFile;
use crate::error::{Error, Result};

/// Days per step of the discounting (a twelfth of a Julian year).
const MONTH_DAYS: f64 = 30.4375;

/// `ecrm clv score`'s options and a `clv-score` stage's keys.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClvScoreParams {
    /// Days ahead to forecast.
    #[arg(long, default_value_t = ClvScoreParams::default().horizon_days)]
    pub horizon_days: u32,
    /// Annual discount rate of future revenue, e.g. 0.1.
    #[arg(long, default_value_t = ClvScoreParams::default().annual_discount_rate)]
    pub annual_discount_rate: f64,
    /// Share of revenue that is profit (1: CLV is discounted revenue).
    #[arg(long, default_value_t = ClvScoreParams::default().margin)]
    pub margin: f64,
}

impl Default for ClvScoreParams {
    /// A year ahead, 10 % a year, margin 1.
    fn default() -> Self {
        ClvScoreParams {
            horizon_days: 365,
            annual_discount_rate: 0.10,
            margin: 1.0,
        }
    }
}

impl ClvScoreParams {
    /// Checks each parameter; the error names its key and what is allowed.
    pub fn check(&self) -> Result<()> {
        if !(1..=36_525).contains(&self.horizon_days) {
            return Err(Error::param(
                "horizon_days",
                format!("{} is out of range; 1 to 36525 days", self.horizon_days),
            ));
        }
        if !(0.0..10.0).contains(&self.annual_discount_rate) {
            return Err(Error::param(
                "annual_discount_rate",
                format!(
                    "{} is out of range; 0 to 10 (e.g. 0.1 for 10 %)",
                    self.annual_discount_rate
                ),
            ));
        }
        if !(self.margin > 0.0 && self.margin <= 1.0) {
            return Err(Error::param(
                "margin",
                format!(
                    "{} is out of range; a share of revenue above 0 and at most 1",
                    self.margin
                ),
            ));
        }
        Ok(())
    }
}

/// Scores per customer, in the order of the input.
#[derive(Debug)]
pub struct Scores {
    pub batch: RecordBatch,
    /// Customers whose forecast could not be computed (a series that did not settle), scored NULL.
    pub undefined: u64,
}

/// What the model forecasts for one distinct summary.
#[derive(Debug, Clone, Copy)]
struct Forecast {
    p_alive: f64,
    purchases: f64,
    discounted: f64,
}

/// Scores `customers` with `model` (see the module doc).
pub fn score(model: &ModelFile, customers: &Customers, p: &ClvScoreParams) -> Result<Scores> {
    p.check()?;
    let unit = model.time_unit.days();
    let mut index: HashMap<(u64, u64, u64), usize> = HashMap::new();
    let mut distinct = Vec::new();
    let slots: Vec<usize> = customers
        .rfm
        .iter()
        .map(|r| {
            *index
                .entry((r.x, r.tx.to_bits(), r.age.to_bits()))
                .or_insert_with(|| {
                    distinct.push(*r);
                    distinct.len() - 1
                })
        })
        .collect();
    let steps = (p.horizon_days as f64 / MONTH_DAYS).ceil() as usize;
    let forecasts: Vec<Forecast> = distinct
        .par_iter()
        .map(|r| {
            let m = &model.purchases;
            let mut before = 0.0;
            let mut discounted = 0.0;
            for k in 1..=steps {
                let days = (k as f64 * MONTH_DAYS).min(p.horizon_days as f64);
                let e = m.conditional_expected(days / unit, r.x, r.tx, r.age);
                discounted += (e - before) / (1.0 + p.annual_discount_rate).powf(days / 365.25);
                before = e;
            }
            Forecast {
                p_alive: m.p_alive(r.x, r.tx, r.age),
                purchases: before,
                discounted,
            }
        })
        .collect();
    let n = customers.rfm.len();
    let known = |v: f64| v.is_finite().then_some(v);
    let mut spend = Vec::with_capacity(n);
    let mut clv = Vec::with_capacity(n);
    let mut undefined = 0;
    for (i, &slot) in slots.iter().enumerate() {
        let f = forecasts[slot];
        if !f.purchases.is_finite() {
            undefined += 1;
        }
        let s = model.spend.as_ref().and_then(|s| {
            let x = customers.rfm[i].x;
            let mean = customers.monetary[i].unwrap_or(0.0);
            // A repeat buyer without a positive mean spend is shrunk from the population mean.
            let x = if mean > 0.0 { x } else { 0 };
            known(s.params.expected_spend(x, mean))
        });
        clv.push(s.and_then(|s| known(p.margin * s * f.discounted)));
        spend.push(s);
    }
    let purchases: Vec<Option<f64>> = slots
        .iter()
        .map(|&s| known(forecasts[s].purchases))
        .collect();
    let ranking = if model.spend.is_some() {
        &clv
    } else {
        &purchases
    };
    let deciles = deciles(ranking);
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("frequency", DataType::Int64, false),
        Field::new("recency", DataType::Float64, false),
        Field::new("age", DataType::Float64, false),
        Field::new("p_alive", DataType::Float64, true),
        Field::new("expected_purchases", DataType::Float64, true),
        Field::new("expected_spend", DataType::Float64, true),
        Field::new("clv", DataType::Float64, true),
        Field::new("value_decile", DataType::Int64, true),
    ]));
    let r = &customers.rfm;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&customers.ids)),
        Arc::new(Int64Array::from_iter_values(r.iter().map(|r| r.x as i64))),
        Arc::new(Float64Array::from_iter_values(r.iter().map(|r| r.tx))),
        Arc::new(Float64Array::from_iter_values(r.iter().map(|r| r.age))),
        Arc::new(Float64Array::from_iter(
            slots.iter().map(|&s| known(forecasts[s].p_alive)),
        )),
        Arc::new(Float64Array::from_iter(purchases)),
        Arc::new(Float64Array::from_iter(spend)),
        Arc::new(Float64Array::from_iter(clv)),
        Arc::new(Int64Array::from_iter(deciles)),
    ];
    Ok(Scores {
        batch: RecordBatch::try_new(schema, columns)?,
        undefined,
    })
}

/// Deciles 1 (highest) … 10 of the known values, ties in input order; NULL for unknown ones.
fn deciles(values: &[Option<f64>]) -> Vec<Option<i64>> {
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_some()).collect();
    order.sort_by(|&a, &b| values[b].partial_cmp(&values[a]).expect("finite values"));
    let n = order.len();
    let mut out = vec![None; values.len()];
    for (rank, i) in order.into_iter().enumerate() {
        out[i] = Some((rank * 10 / n) as i64 + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_rank_the_highest_first_and_skip_unknowns() {
        let v: Vec<Option<f64>> = (0..20).map(|i| Some(i as f64)).chain([None]).collect();
        let d = deciles(&v);
        assert_eq!(d[19], Some(1));
        assert_eq!(d[18], Some(1));
        assert_eq!(d[0], Some(10));
        assert_eq!(d[20], None);
    }

    #[test]
    fn out_of_range_parameters_name_their_key() {
        let bad = |p: ClvScoreParams| crate::error::param_key(p.check());
        let d = ClvScoreParams::default;
        assert_eq!(
            bad(ClvScoreParams {
                horizon_days: 0,
                ..d()
            }),
            "horizon_days"
        );
        assert_eq!(bad(ClvScoreParams { margin: 0.0, ..d() }), "margin");
        assert_eq!(
            bad(ClvScoreParams {
                annual_discount_rate: -0.1,
                ..d()
            }),
            "annual_discount_rate"
        );
    }
}
