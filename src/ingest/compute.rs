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
            .with_column(times_quantity("unit_cost").alias("line_cost"))
            .collect()?;
    }
    if source.basket == Some(Basket::CustomerDay) {
        let ids = customer_day(&good, source_file)?;
        good.with_column(ids)?;
    }
    Ok(good)
}

/// `quantity × amount` as money, exactly: an integer times a decimal(18,3) is a decimal with
/// scale 3 (a line's revenue from its unit price, its cost from its unit cost).
pub fn times_quantity(amount: &str) -> Expr {
    (col("quantity").cast(DataType::Decimal(MONEY_PRECISION, 0)) * col(amount)).cast(MONEY)
}

/// `CUSTOMER|YYYY-MM-DD`, or `guest|SOURCE/FILE|RECORD` for a line without a customer (NULL
/// for a customer's line without a time). Built row by row into one buffer: as a polars
/// expression (a branch, a date format and a concatenation per row) it took 7 times as long.
fn customer_day(good: &DataFrame, source_file: &str) -> Result<Column> {
    use std::fmt::Write as _;
    let customers = good.column("customer_id")?.str()?;
    let times = good
        .column("invoice_ts")?
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    let times = times.datetime()?.physical();
    let records = good.column("__record")?.u64()?;
    let mut ids = StringChunkedBuilder::new("invoice_no".into(), good.height());
    let mut id = String::with_capacity(64);
    // Lines come roughly in time order: the day's text is formatted once per change of day.
    let (mut last_day, mut day_text) = (i64::MIN, String::new());
    for ((customer, micros), record) in customers.iter().zip(times.iter()).zip(records.iter()) {
        id.clear();
        match (customer, micros) {
            (None, _) => {
                let _ = write!(id, "guest|{source_file}|{}", record.unwrap_or(0));
            }
            (Some(_), None) => {
                ids.append_null();
                continue;
            }
            (Some(c), Some(micros)) => {
                let day = micros.div_euclid(86_400_000_000);
                if day != last_day {
                    let Some(date) = chrono::DateTime::from_timestamp_micros(micros) else {
                        ids.append_null();
                        continue;
                    };
                    day_text.clear();
                    let _ = write!(day_text, "{}", date.date_naive());
                    last_day = day;
                }
                id.push_str(c);
                id.push('|');
                id.push_str(&day_text);
            }
        }
        ids.append_value(&id);
    }
    Ok(ids.finish().into_column())
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
    use crate::ingest::contract::Contract;

    /// An order-line source mapping `columns` (TOML lines) and `extra` source keys.
    fn source(extra: &str, columns: &str) -> Source {
        let text = format!(
            "[sources.s]\nentity = \"order_line\"\npath = \"s.csv\"\n{extra}\n\
             [sources.s.columns]\ninvoice_ts = {{ from = \"t\", formats = [\"%Y-%m-%d\"] }}\n\
             product_id = {{ from = \"p\" }}\nquantity = {{ from = \"q\" }}\n{columns}"
        );
        let c = Contract::parse(std::path::Path::new("c.toml"), &text).unwrap();
        c.sources.into_iter().next().unwrap()
    }

    /// Good rows as cleansing leaves them: quantities, and money columns from thousandths.
    fn lines(quantities: &[i64], money: &[(&str, &[Option<i128>])]) -> DataFrame {
        let mut df = df!(
            "quantity" => quantities,
            "__record" => (1..=quantities.len() as u64).collect::<Vec<_>>(),
        )
        .unwrap();
        for (name, values) in money {
            let ca: Int128Chunked = values.iter().copied().collect();
            let s = ca
                .into_decimal_unchecked(MONEY_PRECISION, MONEY_SCALE)
                .into_series()
                .with_name((*name).into());
            df.with_column(s.into_column()).unwrap();
        }
        df
    }

    fn thousandths(df: &DataFrame, name: &str) -> Vec<Option<i128>> {
        df.column(name)
            .unwrap()
            .decimal()
            .unwrap()
            .physical()
            .iter()
            .collect()
    }

    #[test]
    fn a_line_total_gives_a_rounded_unit_price_and_stays_the_revenue() {
        let s = source(
            "",
            "invoice_no = { from = \"i\" }\nline_total = { from = \"x\" }",
        );
        // 10.000 / 3, 0.025 / 2 (a tie: to even), -7.000 / -2 (a return), a missing total.
        let df = lines(
            &[3, 2, -2, 1],
            &[("line_total", &[Some(10_000), Some(25), Some(-7_000), None])],
        );
        let out = order_lines(&s, df, "s/f.csv").unwrap();
        assert_eq!(
            thousandths(&out, "unit_price"),
            vec![Some(3_333), Some(12), Some(3_500), None]
        );
        assert_eq!(
            thousandths(&out, "line_total"),
            vec![Some(10_000), Some(25), Some(-7_000), None]
        );
    }

    #[test]
    fn a_unit_cost_gives_the_line_cost_and_a_line_cost_the_unit_cost() {
        let s = source(
            "",
            "invoice_no = { from = \"i\" }\nunit_price = { from = \"x\" }\nunit_cost = { from = \"c\" }",
        );
        let df = lines(
            &[3, -2],
            &[
                ("unit_price", &[Some(1), Some(1)]),
                ("unit_cost", &[Some(1_005), Some(333)]),
            ],
        );
        let out = order_lines(&s, df, "s/f.csv").unwrap();
        assert_eq!(
            thousandths(&out, "line_cost"),
            vec![Some(3_015), Some(-666)]
        );

        let s = source(
            "",
            "invoice_no = { from = \"i\" }\nunit_price = { from = \"x\" }\nline_cost = { from = \"c\" }",
        );
        let df = lines(
            &[3, 4],
            &[
                ("unit_price", &[Some(1), Some(1)]),
                ("line_cost", &[Some(1_000), Some(10)]),
            ],
        );
        let out = order_lines(&s, df, "s/f.csv").unwrap();
        // 1.000 / 3 = 0.333…; 0.010 / 4 = 0.0025: a tie, to even 0.002.
        assert_eq!(thousandths(&out, "unit_cost"), vec![Some(333), Some(2)]);
    }

    #[test]
    fn customer_day_baskets_name_the_customer_and_day_and_guests_their_line() {
        let s = source(
            "basket = \"customer_day\"",
            "customer_id = { from = \"c\" }\nunit_price = { from = \"x\" }",
        );
        let mut df = lines(&[1, 1, 1], &[("unit_price", &[Some(1), Some(1), Some(1)])]);
        let customers = Series::new("customer_id".into(), [Some("c1"), None, Some("c1")]);
        df.with_column(customers.into_column()).unwrap();
        let ts = Series::new("invoice_ts".into(), [0i64, 3_600_000_000, 86_400_000_000])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap();
        df.with_column(ts.into_column()).unwrap();
        let out = order_lines(&s, df, "s/f.csv").unwrap();
        let ids: Vec<Option<&str>> = out
            .column("invoice_no")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            ids,
            vec![
                Some("c1|1970-01-01"),
                Some("guest|s/f.csv|2"),
                Some("c1|1970-01-02")
            ]
        );
    }

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
