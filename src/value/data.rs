//! The value models' data: each customer's calibration summary (x, t_x, T, mean spend) and
//! hold-out purchases, from the warehouse, a transaction log or a summary table.
//!
//! - Warehouse ([`warehouse_days`]): `fact_sales` lines with a customer before the as-of date,
//!   returns and service lines left out, summed per customer and calendar day.
//! - Transaction log ([`file_days`]): any Parquet or CSV file with an id, a date (a date or
//!   timestamp column, ISO text, or text in `--date-format`) and optionally an amount column,
//!   summed per customer and day the same way.
//! - Summary table ([`read_summary`]): one row per customer with x, t_x, T and optionally the
//!   mean spend, in the file's own time unit; with a hold-out, each customer's repeat
//!   purchases in it and its length (lifetimes' `calibration_and_holdout_data` columns
//!   `frequency_holdout` and `duration_holdout` by default), the same for every customer.
//!
//! From customer-days ([`summarize`]): a purchase day is a day with at least one purchase
//! line; x = purchase days up to the calibration end − 1; t_x = last − first purchase day;
//! T = calibration end − first purchase day (the calibration end is the last day of
//! calibration, as in lifetimes' `calibration_period_end`); the mean spend is the mean of the
//! repeat days' amounts (the first day's left out, as the spend model describes repeat
//! purchases). Customers whose first purchase is after the calibration end are not in the
//! calibration cohort and are counted, not summarised. Days after the calibration end and
//! before the as-of date are the hold-out.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use super::patterns::Rfm;
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};

/// One customer's purchases on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub id: String,
    /// Days since 1970-01-01.
    pub day: i32,
    /// The day's amount (NULL when the source has none).
    pub amount: Option<f64>,
}

/// Customers' calibration summaries (in the model's time unit) and hold-out purchases.
#[derive(Debug, Clone, Default)]
pub struct Customers {
    pub ids: Vec<String>,
    pub rfm: Vec<Rfm>,
    /// Mean spend per repeat purchase (None when x = 0 or the source has no amounts).
    pub monetary: Vec<Option<f64>>,
    /// Repeat purchases in the hold-out, per customer (empty for a summary table).
    pub holdout: Vec<u64>,
    /// The hold-out's length in time units (0 without one).
    pub holdout_length: f64,
    /// Customers per first purchase day (days since 1970-01-01), and repeat purchases per
    /// day over calibration and hold-out: the weekly tracking of `ecrm clv evaluate`.
    pub first_days: BTreeMap<i32, u64>,
    pub repeat_days: BTreeMap<i32, u64>,
    /// Customers whose first purchase is after the calibration end (left out).
    pub acquired_later: u64,
}

/// Days since 1970-01-01 of `d`.
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days() as i32
}

/// The date of day number `n`.
pub fn day_date(n: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date") + chrono::Duration::days(n as i64)
}

/// Summarises customer-days sorted by (id, day): calibration through `calibration_end`
/// (inclusive), hold-out after it and before `as_of`; times divided by `unit_days`.
pub fn summarize(
    days: &[Day],
    calibration_end: NaiveDate,
    as_of: NaiveDate,
    unit_days: f64,
) -> Customers {
    let (end, stop) = (day_number(calibration_end), day_number(as_of));
    let mut out = Customers {
        holdout_length: (stop - end - 1).max(0) as f64 / unit_days,
        ..Customers::default()
    };
    for group in days.chunk_by(|a, b| a.id == b.id) {
        let first = group[0].day;
        if first > end {
            out.acquired_later += 1;
            continue;
        }
        let calibration: Vec<&Day> = group.iter().filter(|d| d.day <= end).collect();
        let last = calibration.last().map_or(first, |d| d.day);
        let x = calibration.len() as u64 - 1;
        let repeat: Vec<f64> = calibration[1..].iter().filter_map(|d| d.amount).collect();
        let monetary =
            (x > 0 && repeat.len() as u64 == x).then(|| repeat.iter().sum::<f64>() / x as f64);
        let held = group.iter().filter(|d| d.day > end && d.day < stop).count() as u64;
        *out.first_days.entry(first).or_default() += 1;
        for d in group.iter().skip(1).filter(|d| d.day < stop) {
            *out.repeat_days.entry(d.day).or_default() += 1;
        }
        out.ids.push(group[0].id.clone());
        out.rfm.push(Rfm {
            x,
            tx: (last - first) as f64 / unit_days,
            age: (end - first) as f64 / unit_days,
        });
        out.monetary.push(monetary);
        out.holdout.push(held);
    }
    out
}

impl Customers {
    /// SHA-256 of the summaries the model is fitted to (ids, x, t_x, T, mean spend).
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for (i, r) in self.rfm.iter().enumerate() {
            h.update(self.ids[i].as_bytes());
            h.update([0]);
            h.update(r.x.to_le_bytes());
            h.update(r.tx.to_le_bytes());
            h.update(r.age.to_le_bytes());
            h.update(self.monetary[i].unwrap_or(f64::NAN).to_le_bytes());
        }
        hex::encode(h.finalize())
    }

    /// (x, mean spend) of the repeat buyers with a positive mean spend, and how many repeat
    /// buyers were left out for a spend that is missing, zero or negative.
    pub fn spends(&self) -> (Vec<(u64, f64)>, u64) {
        let mut left_out = 0;
        let mut pairs = Vec::new();
        for (r, m) in self.rfm.iter().zip(&self.monetary) {
            match m {
                Some(m) if r.x > 0 && *m > 0.0 => pairs.push((r.x, *m)),
                _ if r.x > 0 => left_out += 1,
                _ => {}
            }
        }
        (pairs, left_out)
    }
}

/// Reads (id, day, amount) rows from a statement that returns them sorted.
async fn collect_days(ctx: &SessionContext, statement: &str) -> Result<Vec<Day>> {
    let mut days = Vec::new();
    olap::for_each_batch(ctx, statement, |b: &RecordBatch| {
        let ids = olap::text_column(b.column(0))?;
        let day = b.column(1).as_primitive::<Int32Type>();
        let amount = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            days.push(Day {
                id: ids.value(i).to_string(),
                day: day.value(i),
                amount: amount.is_valid(i).then(|| amount.value(i)),
            });
        }
        Ok(())
    })
    .await?;
    Ok(days)
}

/// The warehouse's customer-days before `as_of` (see the module doc); `ctx` has the
/// warehouse's tables.
pub async fn warehouse_days(ctx: &SessionContext, as_of: NaiveDate) -> Result<Vec<Day>> {
    collect_days(
        ctx,
        &format!(
            "SELECT customer_id, CAST(CAST(invoice_ts AS DATE) AS INT) AS day,
                    CAST(sum(revenue) AS DOUBLE) AS amount
             FROM fact_sales
             WHERE customer_id IS NOT NULL AND NOT is_return AND NOT is_service
               AND invoice_ts < TIMESTAMP '{as_of} 00:00:00'
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    )
    .await
}

/// A transaction log's columns.
#[derive(Debug, Clone)]
pub struct LogColumns<'a> {
    pub id: &'a str,
    pub date: &'a str,
    pub amount: Option<&'a str>,
    /// chrono format of a text date column (e.g. `%Y%m%d`); default ISO dates.
    pub date_format: Option<&'a str>,
}

/// A transaction log's customer-days before `as_of`, or all of them.
pub async fn file_days(
    path: &Path,
    cols: &LogColumns<'_>,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<Vec<Day>> {
    let ctx = olap::empty_session(engine)?;
    olap::register_path(&ctx, "input", path).await?;
    let schema = ctx.table("input").await?.schema().as_arrow().clone();
    let quoted = |key: &str, c: &str| {
        olap::column_index(path, &schema, key, c)?;
        Ok::<_, Error>(olap::sqltext::ident(c))
    };
    let id = quoted("id", cols.id)?;
    let date = quoted("date", cols.date)?;
    let day = match cols.date_format {
        Some(f) => format!(
            "to_date(CAST({date} AS VARCHAR), {})",
            olap::sqltext::literal(f)
        ),
        None => format!("CAST({date} AS DATE)"),
    };
    let amount = match cols.amount {
        Some(a) => format!(
            "CAST(sum(CAST({} AS DOUBLE)) AS DOUBLE)",
            quoted("amount", a)?
        ),
        None => "CAST(NULL AS DOUBLE)".to_string(),
    };
    let unreadable =
        |e: Error| Error::input(path, format!("cannot read it as a transaction log: {e}"));
    // A purchase without a date cannot be placed in time: refuse the file rather than drop
    // it. Rows without an id are nobody's (guests): counted and left out.
    let (_, counts) = olap::sql(
        &ctx,
        &format!(
            "SELECT CAST(count(*) FILTER (WHERE {id} IS NOT NULL AND {date} IS NULL) AS BIGINT),
                    CAST(count(*) FILTER (WHERE {id} IS NULL) AS BIGINT) FROM input"
        ),
    )
    .await
    .map_err(unreadable)?;
    let count = |c: usize| {
        counts
            .first()
            .map_or(0, |b| b.column(c).as_primitive::<Int64Type>().value(0))
    };
    if count(0) > 0 {
        return Err(Error::input(
            path,
            format!(
                "{} rows with an id have no date in column {:?}; every purchase needs one",
                count(0),
                cols.date
            ),
        ));
    }
    if count(1) > 0 {
        tracing::warn!(file = %path.display(), rows = count(1), "rows without an id left out");
    }
    let cut = as_of.map_or(String::new(), |d| format!("AND {day} < DATE '{d}'"));
    let statement = format!(
        "SELECT CAST({id} AS VARCHAR), CAST({day} AS INT) AS day, {amount}
         FROM input WHERE {id} IS NOT NULL {cut} GROUP BY 1, 2 ORDER BY 1, 2"
    );
    collect_days(&ctx, &statement).await.map_err(unreadable)
}

/// A summary table's columns (lifetimes' names by default).
#[derive(Debug, Clone)]
pub struct SummaryColumns<'a> {
    /// Default: `customer_id` when the table has it, else row numbers (1, 2, …).
    pub id: Option<&'a str>,
    pub frequency: &'a str,
    pub recency: &'a str,
    pub age: &'a str,
    /// Mean spend per repeat purchase. Default: `monetary_value` when the table has it.
    pub monetary: Option<&'a str>,
    /// Purchases in the hold-out. Default: `frequency_holdout` when the table has it.
    pub holdout_frequency: Option<&'a str>,
    /// The hold-out's length. Default: `duration_holdout` when the table has it.
    pub holdout_length: Option<&'a str>,
}

/// Reads a summary table, one customer per row in input order, checking each value: x a
/// whole number ≥ 0, 0 ≤ t_x ≤ T, t_x = 0 when x = 0, no NULLs.
pub async fn read_summary(
    path: &Path,
    cols: &SummaryColumns<'_>,
    engine: &EngineOptions,
) -> Result<Customers> {
    let (schema, batches) = olap::read_in_order(path, None, engine).await?;
    let index = |key: &str, c: &str| olap::column_index(path, &schema, key, c);
    // Without a name, lifetimes' columns when the table has them.
    let named = |key: &str, given: Option<&str>, usual: &str| match given {
        Some(c) => index(key, c).map(Some),
        None => Ok(schema.index_of(usual).ok()),
    };
    let id = named("id", cols.id, "customer_id")?;
    let f = index("frequency", cols.frequency)?;
    let r = index("recency", cols.recency)?;
    let t = index("age", cols.age)?;
    let m = named("monetary", cols.monetary, "monetary_value")?;
    let hf = named(
        "holdout_frequency",
        cols.holdout_frequency,
        "frequency_holdout",
    )?;
    let hl = named("holdout_length", cols.holdout_length, "duration_holdout")?;
    let holdout = match (hf, hl) {
        (Some(f), Some(l)) => Some((f, l)),
        (None, None) => None,
        (Some(i), None) | (None, Some(i)) => {
            return Err(Error::input(
                path,
                format!(
                    "column {:?} gives half a hold-out: give both the hold-out's purchases (--holdout-frequency, default frequency_holdout) and its length (--holdout-length, default duration_holdout), or neither",
                    schema.field(i).name()
                ),
            ));
        }
    };
    let name = |i: usize| schema.field(i).name().clone();
    let id_name = id.map_or(String::new(), name);
    let mut out = Customers::default();
    let mut row = 0usize;
    for b in &batches {
        let ids = id.map(|i| olap::text_column(b.column(i))).transpose()?;
        let number = |i: usize| -> Result<Vec<Option<f64>>> {
            let c = datafusion::arrow::compute::cast(b.column(i), &DataType::Float64)?;
            Ok(c.as_primitive::<Float64Type>().iter().collect())
        };
        let (fs, rs, ts) = (number(f)?, number(r)?, number(t)?);
        let ms = m.map(number).transpose()?;
        let hs = holdout
            .map(|(f, l)| Ok::<_, Error>((number(f)?, number(l)?)))
            .transpose()?;
        for i in 0..b.num_rows() {
            row += 1;
            let bad = |col: &str, what: String| {
                Error::input(path, format!("row {row}, column {col:?}: {what}"))
            };
            let value = |v: Option<f64>, col: &str| {
                v.filter(|v| v.is_finite())
                    .ok_or_else(|| bad(col, "is empty or not a number".into()))
            };
            let (x, tx, age) = (
                value(fs[i], cols.frequency)?,
                value(rs[i], cols.recency)?,
                value(ts[i], cols.age)?,
            );
            if x < 0.0 || x.fract() != 0.0 {
                return Err(bad(
                    cols.frequency,
                    format!("{x} is not a whole number of repeat purchases ≥ 0"),
                ));
            }
            if tx < 0.0 || tx > age {
                return Err(bad(cols.recency, format!("{tx} is outside 0 … T = {age}")));
            }
            if x == 0.0 && tx != 0.0 {
                return Err(bad(
                    cols.recency,
                    format!("{tx} with no repeat purchases; expected 0"),
                ));
            }
            out.ids.push(match &ids {
                Some(ids) if ids.is_valid(i) => ids.value(i).to_string(),
                Some(_) => return Err(bad(&id_name, "is empty".into())),
                None => row.to_string(),
            });
            out.rfm.push(Rfm {
                x: x as u64,
                tx,
                age,
            });
            out.monetary
                .push(ms.as_ref().and_then(|ms| ms[i]).filter(|_| x > 0.0));
            if let (Some((f, l)), Some((fs, ls))) = (holdout, &hs) {
                let (held, length) = (value(fs[i], &name(f))?, value(ls[i], &name(l))?);
                if held < 0.0 || held.fract() != 0.0 {
                    return Err(bad(
                        &name(f),
                        format!("{held} is not a whole number of purchases ≥ 0"),
                    ));
                }
                if length <= 0.0 {
                    return Err(bad(&name(l), format!("{length} is not a positive length")));
                }
                if row > 1 && length != out.holdout_length {
                    return Err(bad(
                        &name(l),
                        format!(
                            "{length} differs from row 1's {}: the hold-out has one length for every customer",
                            out.holdout_length
                        ),
                    ));
                }
                out.holdout.push(held as u64);
                out.holdout_length = length;
            }
        }
    }
    if out.ids.is_empty() {
        return Err(Error::input(path, "has no rows"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(id: &str, date: &str, amount: f64) -> Day {
        Day {
            id: id.into(),
            day: day_number(date.parse().unwrap()),
            amount: Some(amount),
        }
    }

    /// CDNOW's customer 1 (master id 00004): purchases on 1997-01-01, 01-18 and 08-02 give
    /// x = 2, t_x = 30.43, T = 38.86 weeks with calibration through 1997-09-30 (the
    /// published summary's first row); a customer first seen after it is left out.
    #[test]
    fn summaries_match_the_published_cdnow_row() {
        let days = vec![
            day("00004", "1997-01-01", 29.33),
            day("00004", "1997-01-18", 29.73),
            day("00004", "1997-08-02", 14.96),
            day("00004", "1997-12-12", 26.48),
            day("00009", "1997-10-02", 10.0),
        ];
        let end = "1997-09-30".parse().unwrap();
        let c = summarize(&days, end, "1998-07-01".parse().unwrap(), 7.0);
        assert_eq!(c.ids, vec!["00004"]);
        let r = c.rfm[0];
        assert_eq!(r.x, 2);
        assert_eq!(format!("{:.2} {:.2}", r.tx, r.age), "30.43 38.86");
        assert_eq!(c.monetary[0], Some((29.73 + 14.96) / 2.0));
        assert_eq!(c.holdout, vec![1]);
        assert_eq!(c.holdout_length, 39.0);
        assert_eq!(c.acquired_later, 1);
        assert_eq!(c.repeat_days.values().sum::<u64>(), 3);
    }
}
