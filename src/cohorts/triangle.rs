//! The cohort retention triangle: customers grouped by the period of their first purchase,
//! and what each cohort did in each period since.
//!
//! - Input: `fact_sales` lines with a customer before the as-of date (default: the day after
//!   the last line); `dim_customer`'s current rows and `dim_product` for `--by`.
//! - Output: table `cohort_retention`, one row per cohort (and member of `--by`) and period
//!   number 0, 1, … up to the period holding the day before the as-of date: `cohort` (the
//!   first period's first day), the `--by` member, `period_number`, `period_start`,
//!   `cohort_size`, `active` (customers with a purchase invoice in the period), `retention`
//!   (active / size), `orders` (purchase invoices), `revenue` (net: returns deducted).
//!   A period that has not fully elapsed at the as-of date has NULL measures: it is not yet
//!   known, not low.
//! - Parameters ([`CohortParams`]): `period` month (default) or week (weeks start on Monday),
//!   `by` none (default), `country`, `acquisition_channel`, `age_band` (the customer's current
//!   attributes) or `first_category` (the category with most revenue in the first purchase
//!   period), and `measure` (what the printed triangle shows: customers (retention, default),
//!   revenue or orders).
//!
//! A customer whose lines before the as-of date are all returns has no first purchase and is
//! in no cohort; guests (no customer id) are in none either.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Duration, Months, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema};
use datafusion::prelude::SessionContext;

use super::sbg::{self, SbgFit, SurvivorCurve};
use crate::error::Result;
use crate::olap;

crate::choices! {
    /// Cohort periods.
    pub enum Period {
        Month = "month",
        /// Weeks from Monday.
        Week = "week",
    }
    default = Month;
}

crate::choices! {
    /// What splits cohorts.
    pub enum CohortBy {
        Country = "country",
        AcquisitionChannel = "acquisition_channel",
        AgeBand = "age_band",
        /// The category with most revenue in the customer's first purchase period.
        FirstCategory = "first_category",
    }
}

crate::choices! {
    /// What the printed triangle shows.
    pub enum Measure {
        /// Retention: the share of the cohort active in the period.
        Customers = "customers",
        Revenue = "revenue",
        Orders = "orders",
    }
    default = Customers;
}

/// `ecrm cohorts`' options and a `cohorts` stage's keys.
#[derive(Debug, Clone, PartialEq, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CohortParams {
    /// The cohort period.
    #[arg(long, value_enum, default_value_t)]
    pub period: Period,
    /// Split cohorts by this customer attribute.
    #[arg(long, value_enum)]
    pub by: Option<CohortBy>,
    /// What the printed triangle shows.
    #[arg(long, value_enum, default_value_t)]
    pub measure: Measure,
    /// Fit a shifted-beta-geometric model to each cohort's survivors (customers still buying
    /// in a period or later) and project this many periods beyond its last complete one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub project: u32,
}

impl Period {
    fn unit(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Week => "week",
        }
    }

    /// The first day of period `k` after the one starting on `start`.
    fn start(self, start: NaiveDate, k: u32) -> NaiveDate {
        match self {
            Period::Month => start + Months::new(k),
            Period::Week => start + Duration::weeks(k as i64),
        }
    }

    /// The first day of the period holding `day`.
    fn of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::Month => day.with_day(1).expect("day 1"),
            Period::Week => day - Duration::days(day.weekday().num_days_from_monday() as i64),
        }
    }
}

/// The SQL expression of a `--by` member (`c`: the current customer row; `fc`: the first
/// category).
fn member_sql(by: Option<CohortBy>) -> &'static str {
    match by {
        None => "CAST(NULL AS VARCHAR)",
        Some(CohortBy::Country) => "c.country",
        Some(CohortBy::AcquisitionChannel) => "c.acquisition_channel",
        Some(CohortBy::AgeBand) => "c.age_band",
        Some(CohortBy::FirstCategory) => "fc.category",
    }
}

/// The statement giving (cohort, member, period start, active, orders, revenue) and, in a
/// second one, (cohort, member, period of the last purchase, customers): the cohort's size
/// and its survivors.
fn statements(p: &CohortParams, as_of: NaiveDate) -> (String, String) {
    let unit = p.period.unit();
    // Lines fold into invoices, and invoices into customer-periods, before anything is
    // counted: no DISTINCT aggregate over order lines (at 10M lines those held 2.4 GB).
    let first_category = if p.by == Some(CohortBy::FirstCategory) {
        ",
first_cat AS (
  SELECT customer_id, category, row_number() OVER (
    PARTITION BY customer_id ORDER BY rev DESC, category) AS rn
  FROM (SELECT l.customer_id, d.category, sum(l.revenue) AS rev
        FROM lines l JOIN firsts f ON f.customer_id = l.customer_id AND l.p = f.cohort
        JOIN dim_product d ON d.product_key = l.product_key
        WHERE NOT l.is_return AND d.category IS NOT NULL
        GROUP BY l.customer_id, d.category)
)"
    } else {
        ""
    };
    let category_join = if first_category.is_empty() {
        ""
    } else {
        "LEFT JOIN first_cat fc ON fc.customer_id = f.customer_id AND fc.rn = 1"
    };
    let members = format!(
        "WITH lines AS (
  SELECT customer_id, invoice_no, revenue, is_return, product_key,
         CAST(date_trunc('{unit}', invoice_ts) AS DATE) AS p
  FROM fact_sales
  WHERE customer_id IS NOT NULL AND invoice_ts < TIMESTAMP '{as_of} 00:00:00'
),
invoices AS (
  SELECT customer_id, invoice_no, min(p) AS p, bool_or(NOT is_return) AS purchase,
         sum(revenue) AS revenue
  FROM lines GROUP BY customer_id, invoice_no
),
firsts AS (
  SELECT customer_id, min(p) AS cohort, max(p) AS last
  FROM invoices WHERE purchase GROUP BY customer_id
){first_category},
members AS (
  SELECT f.customer_id, f.cohort, f.last, {member} AS member
  FROM firsts f
  LEFT JOIN (SELECT * FROM dim_customer WHERE is_current AND customer_id IS NOT NULL) c
    ON c.customer_id = f.customer_id
  {category_join}
)",
        member = member_sql(p.by)
    );
    let cells = format!(
        "{members},
periods AS (
  SELECT customer_id, p, CAST(count(*) FILTER (WHERE purchase) AS BIGINT) AS orders,
         sum(revenue) AS revenue
  FROM invoices GROUP BY customer_id, p
)
SELECT m.cohort, m.member, x.p,
  CAST(count(*) FILTER (WHERE x.orders > 0) AS BIGINT) AS active,
  CAST(sum(x.orders) AS BIGINT) AS orders,
  CAST(sum(x.revenue) AS DOUBLE) AS revenue
FROM periods x JOIN members m ON m.customer_id = x.customer_id
GROUP BY m.cohort, m.member, x.p"
    );
    let lasts = format!(
        "{members}
SELECT cohort, member, last, CAST(count(*) AS BIGINT) AS customers
FROM members GROUP BY cohort, member, last"
    );
    (cells, lasts)
}

/// One cohort's observed periods.
#[derive(Debug, Default)]
struct Cohort {
    size: i64,
    /// By period start: (active, orders, revenue).
    cells: BTreeMap<NaiveDate, (i64, i64, f64)>,
    /// Customers by the period of their last purchase before the as-of date.
    lasts: BTreeMap<NaiveDate, i64>,
}

impl Cohort {
    /// Customers still buying in the period starting on `start` or later.
    fn survivors(&self, start: NaiveDate) -> i64 {
        self.lasts.range(start..).map(|(_, n)| n).sum()
    }
}

/// The (cohort, member) of each row of a result whose first two columns are them.
fn keys(b: &RecordBatch) -> Result<Vec<(NaiveDate, Option<String>)>> {
    let start = b.column(0).as_primitive::<Date32Type>();
    let member = olap::text_column(b.column(1))?;
    Ok((0..b.num_rows())
        .map(|i| {
            let m = member.is_valid(i).then(|| member.value(i).to_string());
            (start.value_as_date(i).expect("a date"), m)
        })
        .collect())
}

/// The triangle as of `as_of`, in `ctx` (which has the warehouse's tables).
pub async fn compute(
    ctx: &SessionContext,
    p: &CohortParams,
    as_of: NaiveDate,
) -> Result<RecordBatch> {
    let (cells, lasts) = statements(p, as_of);
    let mut cohorts: BTreeMap<(NaiveDate, Option<String>), Cohort> = BTreeMap::new();
    for b in olap::sql(ctx, &lasts).await?.1 {
        let (last, customers) = (
            b.column(2).as_primitive::<Date32Type>(),
            b.column(3).as_primitive::<Int64Type>(),
        );
        for (i, key) in keys(&b)?.into_iter().enumerate() {
            let c = cohorts.entry(key).or_default();
            c.size += customers.value(i);
            c.lasts
                .insert(last.value_as_date(i).expect("a date"), customers.value(i));
        }
    }
    for b in olap::sql(ctx, &cells).await?.1 {
        let period = b.column(2).as_primitive::<Date32Type>();
        let (active, orders) = (
            b.column(3).as_primitive::<Int64Type>(),
            b.column(4).as_primitive::<Int64Type>(),
        );
        let revenue = b.column(5).as_primitive::<Float64Type>();
        for (i, key) in keys(&b)?.into_iter().enumerate() {
            let rev = if revenue.is_valid(i) {
                revenue.value(i)
            } else {
                0.0
            };
            cohorts.entry(key).or_default().cells.insert(
                period.value_as_date(i).expect("a date"),
                (active.value(i), orders.value(i), rev),
            );
        }
    }
    grid(p, as_of, &cohorts)
}

/// Every cohort's periods up to the one holding the day before `as_of` (and with `project`,
/// that many beyond its last complete one); unelapsed ones NULL.
fn grid(
    p: &CohortParams,
    as_of: NaiveDate,
    cohorts: &BTreeMap<(NaiveDate, Option<String>), Cohort>,
) -> Result<RecordBatch> {
    let last = p.period.of(as_of - Duration::days(1));
    let mut cols = Columns::default();
    for ((start, member), c) in cohorts {
        let count = |until: &dyn Fn(u32) -> bool| (0u32..).take_while(|&k| until(k)).count() as u32;
        let observed = count(&|k| p.period.start(*start, k) <= last);
        let complete = count(&|k| p.period.start(*start, k + 1) <= as_of);
        let fit = (p.project > 0)
            .then(|| project(c, *start, complete, p.period))
            .flatten();
        let rows = if p.project > 0 {
            observed.max(complete + p.project)
        } else {
            observed
        };
        for k in 0..rows {
            let period = p.period.start(*start, k);
            let elapsed = k < complete;
            let cell = elapsed.then(|| c.cells.get(&period).copied().unwrap_or((0, 0, 0.0)));
            cols.cohort.push(*start);
            cols.member.push(member.clone());
            cols.number.push(k as i64);
            cols.period.push(period);
            cols.size.push(c.size);
            cols.active.push(cell.map(|c| c.0));
            cols.retention
                .push(cell.map(|x| x.0 as f64 / c.size as f64));
            cols.orders.push(cell.map(|c| c.1));
            cols.revenue.push(cell.map(|c| c.2));
            cols.survivors.push(elapsed.then(|| c.survivors(period)));
            cols.projected
                .push(fit.as_ref().map(|f| c.size as f64 * f.survival(k as u64)));
            cols.alpha.push(fit.as_ref().map(|f| f.alpha));
            cols.beta.push(fit.as_ref().map(|f| f.beta));
        }
    }
    cols.batch(p)
}

/// The sBG fit to a cohort's survivors over its `complete` periods (customers with a purchase
/// in the period or later, the cohort's size at period 0); None with fewer than three
/// periods or a fit that does not converge.
fn project(c: &Cohort, start: NaiveDate, complete: u32, period: Period) -> Option<SbgFit> {
    if complete < 3 || c.size == 0 {
        return None;
    }
    let counts: Vec<u64> = (0..complete)
        .map(|k| if k == 0 { c.size } else { c.survivors(period.start(start, k)) } as u64)
        .collect();
    let fit = sbg::fit(&SurvivorCurve::new(counts).ok()?).ok()?;
    fit.converged.then_some(fit)
}

#[derive(Default)]
struct Columns {
    cohort: Vec<NaiveDate>,
    member: Vec<Option<String>>,
    number: Vec<i64>,
    period: Vec<NaiveDate>,
    size: Vec<i64>,
    active: Vec<Option<i64>>,
    retention: Vec<Option<f64>>,
    orders: Vec<Option<i64>>,
    revenue: Vec<Option<f64>>,
    survivors: Vec<Option<i64>>,
    projected: Vec<Option<f64>>,
    alpha: Vec<Option<f64>>,
    beta: Vec<Option<f64>>,
}

impl Columns {
    fn batch(self, p: &CohortParams) -> Result<RecordBatch> {
        let by = p.by;
        let dates = |d: Vec<NaiveDate>| -> ArrayRef {
            Arc::new(Date32Array::from_iter_values(
                d.into_iter().map(crate::value::data::day_number),
            ))
        };
        let mut fields = vec![Field::new("cohort", DataType::Date32, false)];
        let mut columns: Vec<ArrayRef> = vec![dates(self.cohort)];
        if let Some(by) = by {
            fields.push(Field::new(by.name(), DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(self.member)));
        }
        fields.extend([
            Field::new("period_number", DataType::Int64, false),
            Field::new("period_start", DataType::Date32, false),
            Field::new("cohort_size", DataType::Int64, false),
            Field::new("active", DataType::Int64, true),
            Field::new("retention", DataType::Float64, true),
            Field::new("orders", DataType::Int64, true),
            Field::new("revenue", DataType::Float64, true),
        ]);
        columns.extend([
            Arc::new(Int64Array::from(self.number)) as ArrayRef,
            dates(self.period),
            Arc::new(Int64Array::from(self.size)),
            Arc::new(Int64Array::from(self.active)),
            Arc::new(Float64Array::from(self.retention)),
            Arc::new(Int64Array::from(self.orders)),
            Arc::new(Float64Array::from(self.revenue)),
        ]);
        if p.project > 0 {
            fields.extend([
                Field::new("survivors", DataType::Int64, true),
                Field::new("projected_survivors", DataType::Float64, true),
                Field::new("sbg_alpha", DataType::Float64, true),
                Field::new("sbg_beta", DataType::Float64, true),
            ]);
            columns.extend([
                Arc::new(Int64Array::from(self.survivors)) as ArrayRef,
                Arc::new(Float64Array::from(self.projected)),
                Arc::new(Float64Array::from(self.alpha)),
                Arc::new(Float64Array::from(self.beta)),
            ]);
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// A printed row: cohort, member, size, and the measure per period number.
type PivotRow = (String, Option<String>, i64, Vec<Option<String>>);

/// The triangle as a table for people: one row per cohort (and member), its size, and one
/// column per period number with the chosen measure (retention to 3 decimals).
pub fn pivot(batch: &RecordBatch, p: &CohortParams) -> Result<RecordBatch> {
    let by = p.by.is_some();
    let at = |name: &str| {
        batch
            .column(batch.schema().index_of(name).expect("a column"))
            .clone()
    };
    let cohort = at("cohort");
    let cohort = cohort.as_primitive::<Date32Type>();
    let member = p.by.map(|b| at(b.name()));
    let member = member.as_ref().map(|m| m.as_string::<i32>());
    let number = at("period_number");
    let number = number.as_primitive::<Int64Type>();
    let size = at("cohort_size");
    let size = size.as_primitive::<Int64Type>();
    let value = at(match p.measure {
        Measure::Customers => "retention",
        Measure::Revenue => "revenue",
        Measure::Orders => "orders",
    });
    let text = olap::text_column(&value)?;
    let periods = (0..number.len())
        .map(|i| number.value(i))
        .max()
        .map_or(0, |m| m + 1) as usize;
    let mut rows: Vec<PivotRow> = Vec::new();
    for i in 0..batch.num_rows() {
        if number.value(i) == 0 {
            let m = member.and_then(|m| m.is_valid(i).then(|| m.value(i).to_string()));
            let day = cohort.value_as_date(i).expect("a date").to_string();
            rows.push((day, m, size.value(i), vec![None; periods]));
        }
        let cell = if value.is_null(i) {
            None
        } else if p.measure == Measure::Customers {
            Some(format!(
                "{:.3}",
                value.as_primitive::<Float64Type>().value(i)
            ))
        } else {
            Some(text.value(i).to_string())
        };
        if let Some(r) = rows.last_mut() {
            r.3[number.value(i) as usize] = cell;
        }
    }
    let mut fields = vec![Field::new("cohort", DataType::Utf8, false)];
    if let Some(b) = p.by {
        fields.push(Field::new(b.name(), DataType::Utf8, true));
    }
    fields.push(Field::new("size", DataType::Int64, false));
    fields.extend((0..periods).map(|k| Field::new(k.to_string(), DataType::Utf8, true)));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.0.clone()),
    ))];
    if by {
        columns.push(Arc::new(StringArray::from(
            rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        )));
    }
    columns.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.2),
    )));
    for k in 0..periods {
        columns.push(Arc::new(StringArray::from(
            rows.iter().map(|r| r.3[k].clone()).collect::<Vec<_>>(),
        )));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_the_first_of_the_month_or_a_monday() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(Period::Month.of(d("2024-02-29")), d("2024-02-01"));
        assert_eq!(Period::Month.start(d("2024-01-01"), 13), d("2025-02-01"));
        assert_eq!(Period::Week.of(d("2024-06-09")), d("2024-06-03"));
        assert_eq!(Period::Week.start(d("2024-06-03"), 2), d("2024-06-17"));
    }

    /// A cohort's periods run to the one holding the day before the as-of date; the ones not
    /// over by then are NULL, and a period without purchases is 0, not missing.
    #[test]
    fn unelapsed_periods_are_null_and_quiet_ones_zero() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut cohorts = BTreeMap::new();
        let mut c = Cohort {
            size: 4,
            ..Cohort::default()
        };
        c.cells.insert(d("2024-01-01"), (4, 5, 100.0));
        c.cells.insert(d("2024-03-01"), (1, 1, 10.0));
        cohorts.insert((d("2024-01-01"), None), c);
        let p = CohortParams::default();
        let b = grid(&p, d("2024-03-15"), &cohorts).unwrap();
        let active = b.column(4).as_primitive::<Int64Type>();
        let values: Vec<Option<i64>> = (0..b.num_rows())
            .map(|i| active.is_valid(i).then(|| active.value(i)))
            .collect();
        assert_eq!(values, vec![Some(4), Some(0), None]);
        let b = grid(&p, d("2024-04-01"), &cohorts).unwrap();
        assert_eq!(b.num_rows(), 3, "March is over on April 1st");
        assert_eq!(b.column(4).as_primitive::<Int64Type>().value(2), 1);
    }

    /// With `project`, a cohort whose customers last buy as the paper's "regular" cohort
    /// renews (Fader & Hardie 2007: 1000, 631, 468, … survivors) gets the paper's α and β,
    /// its observed survivors, and projections past the as-of date.
    #[test]
    fn projection_fits_the_survivors_of_a_cohort() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let survivors = [1000i64, 631, 468, 382, 326, 289, 262, 241];
        let mut c = Cohort {
            size: 1000,
            ..Cohort::default()
        };
        for k in 0..8 {
            let leaving = survivors[k] - survivors.get(k + 1).copied().unwrap_or(0);
            c.lasts
                .insert(Period::Month.start(d("2024-01-01"), k as u32), leaving);
        }
        let mut cohorts = BTreeMap::new();
        cohorts.insert((d("2024-01-01"), None), c);
        let p = CohortParams {
            project: 3,
            ..CohortParams::default()
        };
        let b = grid(&p, d("2024-09-01"), &cohorts).unwrap();
        assert_eq!(b.num_rows(), 11, "8 complete months and 3 projected");
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let observed = col("survivors");
        let observed = observed.as_primitive::<Int64Type>();
        let got: Vec<Option<i64>> = (0..11)
            .map(|i| observed.is_valid(i).then(|| observed.value(i)))
            .collect();
        let want: Vec<Option<i64>> = survivors
            .iter()
            .map(|&n| Some(n))
            .chain([None; 3])
            .collect();
        assert_eq!(got, want);
        let alpha = col("sbg_alpha");
        let beta = col("sbg_beta");
        assert!((alpha.as_primitive::<Float64Type>().value(0) - 0.704).abs() < 5e-4);
        assert!((beta.as_primitive::<Float64Type>().value(0) - 1.182).abs() < 5e-4);
        let projected = col("projected_survivors");
        let projected = projected.as_primitive::<Float64Type>();
        assert_eq!(projected.value(0), 1000.0);
        assert!(projected.value(10) < projected.value(7) && projected.value(10) > 150.0);
    }
}
