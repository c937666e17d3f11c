//! Cleansing with polars: raw text columns → typed canonical columns, and a reason code for
//! every row that breaks a rule.
//!
//! Input: a chunk from [`super::scan`] (raw text per mapped canonical column, plus `__record`,
//! `__line`, `__start`, `__end`). Output: the same rows with typed columns under the canonical
//! names, and the rejected rows with `__reason` / `__detail` ([`Cleansed`]):
//! - every value is trimmed; null tokens become null; ids are case-normalised and `17850.0`
//!   becomes `17850` when the contract says so;
//! - integers and money parse non-strictly, dates and timestamps try each format in order; a
//!   value that was present but did not parse is a reject, never a silent null;
//! - money is checked to have at most 3 fraction digits before it is cast to decimal(18,3), so
//!   no value is ever rounded;
//! - rules run in the order of [`Reason`]; the first broken rule names the reject.
//!
//! Order lines also get `is_return` (cancellation prefix, or a negative quantity when the
//! contract says negative quantities are returns) and `is_service`.

use polars::prelude::*;

use super::contract::{Case, ColumnType, Entity, NegativeQuantity, Source};
use super::reasons::Reason;
use crate::error::Result;

/// Money is stored as decimal(18, 3): exact, and wide enough for 10^15 currency units.
pub const MONEY: DataType = DataType::Decimal(18, 3);

/// Known ids from other sources and the warehouse, for the relationship rules.
#[derive(Default, Clone)]
pub struct KnownIds {
    /// Product ids; `None` when no product source exists (products are then derived).
    pub products: Option<Series>,
    /// Customer ids; `None` when no customer source exists.
    pub customers: Option<Series>,
}

const TRUE_VALUES: [&str; 4] = ["true", "yes", "y", "1"];
const FALSE_VALUES: [&str; 4] = ["false", "no", "n", "0"];

fn raw(name: &str) -> String {
    format!("__raw_{name}")
}

fn any_of(e: &Expr, values: &[String]) -> Expr {
    // One or two values (the usual null tokens, boolean spellings) compare faster than is_in.
    if values.len() <= 2 {
        return values
            .iter()
            .map(|v| e.clone().eq(lit(v.as_str())))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
    }
    let series = Series::new("values".into(), values);
    e.clone().is_in(lit(series).implode(false), false)
}

/// `'value'` quoted for details.
fn quoted(e: Expr) -> Expr {
    concat_str([lit("'"), e, lit("'")], "", false)
}

/// One chunk, cleansed.
pub struct Cleansed {
    /// Rows that passed every rule: `__record`, `__line`, `__start`, `__end`, the typed
    /// canonical columns, and for order lines `is_return` and `is_service`.
    pub good: DataFrame,
    /// Rows that broke a rule: `__record`, `__line`, `__start`, `__end`, `__reason`
    /// (the code) and `__detail`. Both keep `__raw` when the chunk has it.
    pub bad: DataFrame,
}

/// Cleanses one chunk.
pub fn cleanse(source: &Source, chunk: DataFrame, known: &KnownIds) -> Result<Cleansed> {
    // Sources without byte ranges (Parquet) carry each row's raw text along.
    let has_raw = chunk.column("__raw").is_ok();
    let mut lf = chunk.lazy();

    // 1. Keep the raw text for details, trim, null tokens, id normalisation.
    let mut text = Vec::new();
    for (name, ty, spec) in &source.columns {
        let trimmed = col(name.as_str()).str().strip_chars(lit(NULL));
        let mut v = when(any_of(&trimmed, &source.null_tokens))
            .then(lit(NULL).cast(DataType::String))
            .otherwise(trimmed);
        if *ty == ColumnType::Id {
            if spec.strip_zero_fraction {
                v = v.str().replace(lit(r"\.0+$"), lit(""), false);
            }
            v = match spec.case {
                Some(Case::Upper) => v.str().to_uppercase(),
                Some(Case::Lower) => v.str().to_lowercase(),
                None => v,
            };
        }
        text.push(col(name.as_str()).alias(raw(name)));
        text.push(v.alias(name.as_str()));
    }
    lf = lf.with_columns(text);

    // 2. Parse types; remember how to detect a value that did not parse.
    let mut typed = Vec::new();
    let mut parse_failures: Vec<(Reason, Expr, Expr)> = Vec::new();
    for (name, ty, spec) in &source.columns {
        let v = col(name.as_str());
        let present = v.clone().is_not_null();
        let parsed = match ty {
            ColumnType::Text | ColumnType::Id => continue,
            ColumnType::Int => v.clone().cast(DataType::Int64),
            ColumnType::Money => {
                let well_formed = v
                    .clone()
                    .str()
                    .contains(lit(r"^[+-]?([0-9]+\.?[0-9]{0,3}|\.[0-9]{1,3})$"), true);
                when(well_formed)
                    .then(v.clone().cast(MONEY))
                    .otherwise(lit(NULL).cast(MONEY))
            }
            ColumnType::Date | ColumnType::Timestamp => {
                let tries: Vec<Expr> = spec
                    .formats
                    .iter()
                    .map(|f| {
                        let opts = StrptimeOptions {
                            format: Some(f.as_str().into()),
                            strict: false,
                            exact: true,
                            cache: true,
                        };
                        if *ty == ColumnType::Date {
                            v.clone().str().to_date(opts)
                        } else {
                            v.clone().str().to_datetime(
                                Some(TimeUnit::Microseconds),
                                None,
                                opts,
                                lit("raise"),
                            )
                        }
                    })
                    .collect();
                coalesce(&tries)
            }
            ColumnType::Bool => {
                let lower = v.clone().str().to_lowercase();
                let trues = spec
                    .true_values
                    .clone()
                    .unwrap_or_else(|| TRUE_VALUES.map(String::from).to_vec());
                let falses = spec
                    .false_values
                    .clone()
                    .unwrap_or_else(|| FALSE_VALUES.map(String::from).to_vec());
                let lc = |vals: Vec<String>| {
                    vals.into_iter()
                        .map(|s| s.to_lowercase())
                        .collect::<Vec<_>>()
                };
                when(any_of(&lower, &lc(trues)))
                    .then(lit(true))
                    .when(any_of(&lower, &lc(falses)))
                    .then(lit(false))
                    .otherwise(lit(NULL).cast(DataType::Boolean))
            }
        };
        let (reason, what) = match ty {
            ColumnType::Int => (Reason::BadNumber, "is not an integer"),
            ColumnType::Money => (
                Reason::BadNumber,
                "is not an amount with at most 3 decimals",
            ),
            ColumnType::Date => (Reason::BadDate, "matches none of the date formats"),
            ColumnType::Timestamp => (Reason::BadDate, "matches none of the timestamp formats"),
            _ => (Reason::BadBoolean, "is neither a true nor a false value"),
        };
        let tmp = format!("__parsed_{name}");
        typed.push(parsed.alias(tmp.as_str()));
        parse_failures.push((
            reason,
            present.and(col(tmp.as_str()).is_null()),
            concat_str(
                [
                    lit(format!("{name} ")),
                    quoted(col(raw(name).as_str())),
                    lit(format!(" {what}")),
                ],
                "",
                false,
            ),
        ));
    }
    lf = lf.with_columns(typed);
    let parsed_cols: Vec<Expr> = source
        .columns
        .iter()
        .filter(|(_, ty, _)| !matches!(ty, ColumnType::Text | ColumnType::Id))
        .map(|(name, _, _)| col(format!("__parsed_{name}").as_str()).alias(name.as_str()))
        .collect();

    // 3. Rules, in the order of `Reason`.
    let mut checks: Vec<(Reason, Expr, Expr)> = Vec::new();
    for name in &source.rules.not_null {
        checks.push((
            Reason::MissingValue,
            col(name.as_str()).is_null(),
            lit(format!("{name} is empty")),
        ));
    }
    // Parse failures sorted by reason (bad_number, bad_date, bad_boolean), stable per column.
    parse_failures.sort_by_key(|(r, _, _)| *r);
    checks.extend(parse_failures);
    let p = |name: &str| {
        if source
            .columns
            .iter()
            .any(|(n, ty, _)| n == name && !matches!(ty, ColumnType::Text | ColumnType::Id))
        {
            col(format!("__parsed_{name}").as_str())
        } else {
            col(name)
        }
    };
    for (name, r) in &source.rules.range {
        let v = p(name).cast(DataType::Float64);
        if let Some(min) = r.min {
            checks.push((
                Reason::OutOfRange,
                v.clone().lt(lit(min)),
                concat_str(
                    [
                        lit(format!("{name} ")),
                        quoted(col(raw(name).as_str())),
                        lit(format!(" is below the minimum {min}")),
                    ],
                    "",
                    false,
                ),
            ));
        }
        if let Some(max) = r.max {
            checks.push((
                Reason::OutOfRange,
                v.gt(lit(max)),
                concat_str(
                    [
                        lit(format!("{name} ")),
                        quoted(col(raw(name).as_str())),
                        lit(format!(" is above the maximum {max}")),
                    ],
                    "",
                    false,
                ),
            ));
        }
    }
    for (name, values) in &source.rules.accepted_values {
        let v = col(name.as_str());
        checks.push((
            Reason::NotAccepted,
            v.clone().is_not_null().and(any_of(&v, values).not()),
            concat_str(
                [
                    lit(format!("{name} ")),
                    quoted(v),
                    lit(format!(" is not one of {}", values.join(", "))),
                ],
                "",
                false,
            ),
        ));
    }
    for (name, pat) in &source.rules.pattern {
        let v = col(name.as_str());
        checks.push((
            Reason::PatternMismatch,
            v.clone()
                .is_not_null()
                .and(v.clone().str().contains(lit(pat.as_str()), true).not()),
            concat_str(
                [
                    lit(format!("{name} ")),
                    quoted(v),
                    lit(format!(" does not match {pat}")),
                ],
                "",
                false,
            ),
        ));
    }
    let mut derived = Vec::new();
    if source.entity == Entity::OrderLine {
        let qty = p("quantity");
        let cancel = match &source.cancellation_prefix {
            Some(prefix) => col("invoice_no")
                .str()
                .starts_with(lit(prefix.as_str()))
                .fill_null(lit(false)),
            None => lit(false),
        };
        checks.push((
            Reason::ZeroQuantity,
            qty.clone().eq(lit(0i64)),
            lit("quantity is 0"),
        ));
        let negative = qty.clone().lt(lit(0i64));
        let is_return = match source.negative_quantity {
            NegativeQuantity::Reject => {
                checks.push((
                    Reason::StockAdjustment,
                    negative.clone().and(cancel.clone().not()),
                    concat_str(
                        [
                            lit("quantity "),
                            quoted(col(raw("quantity").as_str())),
                            lit(" is negative outside a cancellation invoice"),
                        ],
                        "",
                        false,
                    ),
                ));
                cancel
            }
            NegativeQuantity::Return => cancel.or(negative),
        };
        derived.push(is_return.alias("is_return"));
        let service = match &source.service_code_pattern {
            Some(pat) => col("product_id")
                .str()
                .contains(lit(pat.as_str()), true)
                .fill_null(lit(false)),
            None => lit(false),
        };
        derived.push(service.alias("is_service"));
    }
    if source.entity == Entity::Product
        && let Some(pat) = &source.service_code_pattern
    {
        let by_code = col("product_id")
            .str()
            .contains(lit(pat.as_str()), true)
            .fill_null(lit(false));
        let flag = if source.columns.iter().any(|(n, _, _)| n == "is_service") {
            p("is_service").fill_null(lit(false)).or(by_code)
        } else {
            by_code
        };
        derived.push(flag.alias("__is_service"));
    }
    let has = |c: &str| source.columns.iter().any(|(n, _, _)| n == c);
    if let Some(products) = &known.products
        && has("product_id")
        && source.entity != Entity::Product
    {
        let v = col("product_id");
        checks.push((
            Reason::UnknownProduct,
            v.clone().is_not_null().and(
                v.clone()
                    .is_in(lit(products.clone()).implode(false), false)
                    .not(),
            ),
            concat_str(
                [
                    lit("product_id "),
                    quoted(v),
                    lit(" is not a known product"),
                ],
                "",
                false,
            ),
        ));
    }
    if let Some(customers) = &known.customers
        && has("customer_id")
        && source.entity != Entity::Customer
    {
        let v = col("customer_id");
        checks.push((
            Reason::UnknownCustomer,
            v.clone().is_not_null().and(
                v.clone()
                    .is_in(lit(customers.clone()).implode(false), false)
                    .not(),
            ),
            concat_str(
                [
                    lit("customer_id "),
                    quoted(v),
                    lit(" is not a known customer"),
                ],
                "",
                false,
            ),
        ));
    }

    // The number of the first broken check per row: cheap to compute on every row. Reason
    // codes and details (string building) are computed for the rejected rows only.
    let mut first = lit(NULL).cast(DataType::Int32);
    for (i, (_, c, _)) in checks.iter().enumerate().rev() {
        // A null condition (a comparison on a null value) is "rule not broken".
        first = when(c.clone().fill_null(lit(false)))
            .then(lit(i as u32).cast(DataType::Int32))
            .otherwise(first);
    }
    let all = lf.with_column(first.alias("__check")).collect()?;
    let is_bad = all.column("__check")?.is_not_null();
    let bad = all.filter(&is_bad)?;
    let good = all.filter(&!&is_bad)?;

    let (mut reason, mut detail) = (
        lit(NULL).cast(DataType::String),
        lit(NULL).cast(DataType::String),
    );
    for (i, (r, _, d)) in checks.into_iter().enumerate().rev() {
        let this = col("__check").eq(lit(i as u32).cast(DataType::Int32));
        reason = when(this.clone()).then(lit(r.code())).otherwise(reason);
        detail = when(this).then(d).otherwise(detail);
    }
    let mut bad_cols = vec![
        col("__record"),
        col("__line"),
        col("__start"),
        col("__end"),
        reason.alias("__reason"),
        detail.alias("__detail"),
    ];
    if has_raw {
        bad_cols.push(col("__raw"));
    }
    let bad = bad.lazy().select(bad_cols).collect()?;

    // Good rows: typed values under the canonical names, derived flags, no helpers.
    let mut keep: Vec<Expr> = vec![col("__record"), col("__line"), col("__start"), col("__end")];
    keep.extend(source.columns.iter().map(|(n, _, _)| col(n.as_str())));
    if source.entity == Entity::OrderLine {
        keep.push(col("is_return"));
        keep.push(col("is_service"));
    }
    if source.entity == Entity::Product && source.service_code_pattern.is_some() {
        keep.push(col("__is_service"));
    }
    if has_raw {
        keep.push(col("__raw"));
    }
    let mut good = good
        .lazy()
        .with_columns(parsed_cols)
        .with_columns(derived)
        .select(keep)
        .collect()?;
    if good.column("__is_service").is_ok() {
        good = good
            .lazy()
            .with_column(col("__is_service").alias("is_service"))
            .drop(cols(["__is_service"]))
            .collect()?;
    }
    Ok(Cleansed { good, bad })
}
