//! Computed order-line columns, on a chunk of cleansed good rows (see the contract's
//! "Computed order-line columns"):
//! - `line_total` given: `unit_price = line_total / quantity`, rounded half-to-even to the
//!   money type's 3 decimals; `line_total` stays and is the line's revenue, exactly;
//! - `unit_cost` given: `line_cost = unit_cost × quantity` (exact); `line_cost` given:
//!   `unit_cost = line_cost / quantity`, rounded as prices are;
//! - `basket = "customer_day"`: `invoice_no` = `CUSTOMER|YYYY-MM-DD`, and for a guest line
//!   (no customer) `guest|SOURCE/FILE|RECORD`, a basket of its own.
//!
//! Division works on the decimals' integer thousandths, so no float ever rounds a price.

use polars::prelude::*;

use super::cleanse::{MONEY, MONEY_PRECISION, MONEY_SCALE};
use super::contract::{Basket, Source};
use crate::error::Result;

/// Adds the computed columns a source asks for to a chunk of its good order lines.
/// `source_file` (`SOURCE/FILE_NAME`) names guest baskets.
pub fn order_lines(source: &Source, mut good: DataFrame, source_file: &str) -> Result<DataFrame> {
    if source.has("line_total") {
        let price = per_unit(&good, "line_total", "unit_price")?;
        good.with_column(price)?;
    }
    if source.has("line_cost") {
        let cost = per_unit(&good, "line_cost", "unit_cost")?;
        good.with_column(cost)?;
    } else if source.has("unit_cost") {
        good = good
            .lazy()
            .with_column(
                (col("quantity").cast(DataType::Decimal(18, 0)) * col("unit_cost"))
                    .cast(MONEY)
                    .alias("line_cost"),
            )
            .collect()?;
    }
    if source.basket == Some(Basket::CustomerDay) {
        good = good
            .lazy()
            .with_column(customer_day(source_file).alias("invoice_no"))
            .collect()?;
    }
    Ok(good)
}

/// `CUSTOMER|YYYY-MM-DD`, or `guest|SOURCE/FILE|RECORD` for a line without a customer.
fn customer_day(source_file: &str) -> Expr {
    when(col("customer_id").is_not_null())
        .then(concat_str(
            [
                col("customer_id"),
                lit("|"),
                col("invoice_ts").dt().strftime("%Y-%m-%d"),
            ],
            "",
            false,
        ))
        .otherwise(concat_str(
            [
                lit(format!("guest|{source_file}|")),
                col("__record").cast(DataType::String),
            ],
            "",
            false,
        ))
}

/// `total / quantity` as money, rounded half-to-even (null where either is null or the
/// quantity is 0, which cleansing rejects anyway).
fn per_unit(good: &DataFrame, total: &str, name: &str) -> Result<Column> {
    let totals = good.column(total)?.decimal()?.physical().clone();
    let quantities = good.column("quantity")?.i64()?.clone();
    let out: Int128Chunked = totals
        .iter()
        .zip(quantities.iter())
        .map(|(t, q)| match (t, q) {
            (Some(t), Some(q)) if q != 0 => Some(div_half_even(t, i128::from(q))),
            _ => None,
        })
        .collect();
    Ok(out
        .into_decimal_unchecked(MONEY_PRECISION, MONEY_SCALE)
        .into_series()
        .with_name(name.into())
        .into_column())
}

/// `a / b` rounded to the nearest integer, ties to the even one (banker's rounding).
pub fn div_half_even(a: i128, b: i128) -> i128 {
    let negative = (a < 0) != (b < 0);
    let (n, d) = (a.unsigned_abs(), b.unsigned_abs());
    let (mut q, r) = (n / d, n % d);
    if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q += 1;
    }
    let q = q as i128;
    if negative { -q } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_even_and_the_rest_to_nearest() {
        // Thousandths: 10.000 / 3 = 3.333…, 20.000 / 3 = 6.666… → 6.667.
        assert_eq!(div_half_even(10_000, 3), 3_333);
        assert_eq!(div_half_even(20_000, 3), 6_667);
        // Exact halves: 0.0125 → 0.012 (2 is even), 0.0135 → 0.014.
        assert_eq!(div_half_even(25, 2), 12);
        assert_eq!(div_half_even(27, 2), 14);
        // Signs: a return's negative total over a negative quantity is a positive price.
        assert_eq!(div_half_even(-25, 2), -12);
        assert_eq!(div_half_even(-27, -2), 14);
        assert_eq!(div_half_even(-20_000, 3), -6_667);
        assert_eq!(div_half_even(0, 7), 0);
    }
}
