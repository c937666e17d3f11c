//! Cleansing with polars: raw text columns → typed canonical columns, and a reason code for
//! every row that breaks a rule.
//!
//! Input: a [`Chunk`] from [`super::scan`] (raw text per mapped canonical column, plus
//! `__record`, `__line`, `__start`, `__end`; for text files the null tokens are already
//! nulls). Output: the same rows with typed columns under the canonical names, and the
//! rejected rows with `__reason` / `__detail` ([`Cleansed`]):
//! - every value is trimmed; null tokens become null; a column's `map` replaces values; ids
//!   are case-normalised and `17850.0` becomes `17850` when the contract says so; columns
//!   with a canonical vocabulary (a contact's arm, a consent event's channel and status) are
//!   lower-cased and checked against it;
//! - integers and money parse non-strictly, dates and timestamps try each format in order; a
//!   value that was present but did not parse is a reject, never a silent null;
//! - money is checked to have at most 3 fraction digits before it is cast to decimal(18,3), so
//!   no value is ever rounded;
//! - rules run in the order of [`Reason`]; the first broken rule names the reject.
//!
//! Order lines also get `is_return` (cancellation prefix, or a negative quantity when the
//! contract says negative quantities are returns) and `is_service`. [`dedupe_chunk`] then
//! turns rows repeating a source's `dedupe_key` into `duplicate_key` rejects.

use std::collections::HashMap;

use polars::prelude::*;

use super::contract::{Case, ColumnSpec, ColumnType, Entity, NegativeQuantity, Source};
use super::reasons::Reason;
use super::scan::Chunk;
use crate::error::Result;

/// Money is stored as decimal(18, 3): exact, and wide enough for 10^15 currency units.
pub const MONEY: DataType = DataType::Decimal(MONEY_PRECISION, MONEY_SCALE);
pub const MONEY_PRECISION: usize = 18;
/// Money's fraction digits: amounts are integer thousandths.
pub const MONEY_SCALE: usize = 3;

/// Known ids from other sources and the warehouse, for the relationship rules.
#[derive(Default, Clone)]
pub struct KnownIds {
    /// Product ids; `None` when no product source exists (products are then derived).
    pub products: Option<Series>,
    /// Customer ids; `None` when no customer source exists.
    pub customers: Option<Series>,
    /// Campaign ids; `None` when no campaign source exists (contacts then name any).
    pub campaigns: Option<Series>,
}

/// Boolean spellings when a contract gives none (compared case-insensitively).
pub const TRUE_VALUES: [&str; 4] = ["true", "yes", "y", "1"];
pub const FALSE_VALUES: [&str; 4] = ["false", "no", "n", "0"];

/// Money's text form: at most 3 decimals, checked before the cast so no value is rounded.
pub const MONEY_PATTERN: &str = r"^[+-]?([0-9]+\.?[0-9]{0,3}|\.[0-9]{1,3})$";

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

/// A rule: the reason code, when a row breaks it, and the detail a reject carries.
struct Check {
    reason: Reason,
    broken: Expr,
    detail: Expr,
}

/// `NAME 'raw value' WHAT`: the detail of a reject about one column's raw value.
fn detail(name: &str, value: Expr, what: String) -> Expr {
    concat_str(
        [
            lit(format!("{name} ")),
            quoted(value),
            lit(format!(" {what}")),
        ],
        "",
        false,
    )
}

/// Cleanses one chunk (see the module doc): normalise the text, parse the types, check the
/// rules and relationships, then split the rows into good ones and reason-coded rejects.
pub fn cleanse(source: &Source, chunk: Chunk, known: &KnownIds) -> Result<Cleansed> {
    // Sources without byte ranges (Parquet) carry each row's raw text along.
    let has_raw = chunk.frame.column("__raw").is_ok();
    let (typed, parse_failures) = parsed(source);
    let lf = chunk
        .frame
        .lazy()
        .with_columns(normalised(source, chunk.padded.as_deref()))
        .with_columns(typed);
    let mut checks = rules(source, parse_failures);
    let derived = order_line_flags(source, &mut checks);
    checks.extend(relationships(source, known));

    // The number of the first broken check per row: cheap to compute on every row. Reason
    // codes and details (string building) are computed for the rejected rows only.
    let mut first = lit(NULL).cast(DataType::Int32);
    for (i, c) in checks.iter().enumerate().rev() {
        // A null condition (a comparison on a null value) is "rule not broken".
        first = when(c.broken.clone().fill_null(lit(false)))
            .then(lit(i as u32).cast(DataType::Int32))
            .otherwise(first);
    }
    let all = lf.with_column(first.alias("__check")).collect()?;
    let is_bad = all.column("__check")?.is_not_null();
    let bad = rejects(all.filter(&is_bad)?, checks, has_raw)?;
    let good = good_rows(all.filter(&!&is_bad)?, source, derived, has_raw)?;
    Ok(Cleansed { good, bad })
}

/// Step 1: every value trimmed, null tokens as nulls, ids case-normalised (and `17850.0`
/// as `17850` when asked); the raw text kept as `__raw_NAME` for details. With `padded`
/// (see [`Chunk::padded`]) the scan already made the null tokens nulls, and only the
/// columns it marks are trimmed.
fn normalised(source: &Source, padded: Option<&[bool]>) -> Vec<Expr> {
    let mut text = Vec::new();
    for (i, column) in source.columns.iter().enumerate() {
        let super::contract::Column {
            name,
            ty,
            spec,
            origin,
        } = column;
        let record = *origin == super::contract::Origin::Record;
        let raw_text = match record {
            true => col("__record").cast(DataType::String),
            false => col(name.as_str()),
        };
        let trim = || raw_text.clone().str().strip_chars(lit(NULL));
        let mut v = match padded.map(|p| p[i]) {
            Some(true) if !record => trim(),
            Some(false) if !record => raw_text.clone(),
            _ => when(any_of(&trim(), &source.null_tokens))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(trim()),
        };
        if !spec.map.is_empty() {
            // One pass, each value looked up once: the first mapped value it equals, else
            // itself. (Nesting one `when` per entry around the last would repeat the value
            // twice per entry: an expression of 2^n nodes for a map of n entries.)
            let mut tries: Vec<Expr> = spec
                .map
                .iter()
                .map(|(from, to)| {
                    when(v.clone().eq(lit(from.as_str())))
                        .then(lit(to.as_str()))
                        .otherwise(lit(NULL).cast(DataType::String))
                })
                .collect();
            tries.push(v);
            v = coalesce(&tries);
        }
        if source.entity.vocabulary(name).is_some() {
            v = v.str().to_lowercase();
        }
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
        text.push(raw_text.alias(raw(name)));
        text.push(v.alias(name.as_str()));
    }
    text
}

/// Step 2: each typed column parsed into `__parsed_NAME`, and the check that a value was
/// present but did not parse (never a silent null).
fn parsed(source: &Source) -> (Vec<Expr>, Vec<Check>) {
    let mut typed = Vec::new();
    let mut failures = Vec::new();
    for super::contract::Column { name, ty, spec, .. } in &source.columns {
        let v = col(name.as_str());
        let Some(parsed) = parse(*ty, spec, v.clone()) else {
            continue;
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
        failures.push(Check {
            reason,
            broken: v.is_not_null().and(col(tmp.as_str()).is_null()),
            detail: detail(name, col(raw(name).as_str()), what.into()),
        });
    }
    (typed, failures)
}

/// A text value parsed as `ty` (None for text and ids, which stay text).
fn parse(ty: ColumnType, spec: &ColumnSpec, v: Expr) -> Option<Expr> {
    Some(match ty {
        ColumnType::Text | ColumnType::Id => return None,
        ColumnType::Int => v.cast(DataType::Int64),
        ColumnType::Money => {
            // At most 3 decimals, checked before the cast: no value is ever rounded.
            let well_formed = v.clone().str().contains(lit(MONEY_PATTERN), true);
            when(well_formed)
                .then(v.cast(MONEY))
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
                    if ty == ColumnType::Date {
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
            let lower = v.str().to_lowercase();
            let spellings = |given: &Option<Vec<String>>, default: [&str; 4]| {
                given
                    .clone()
                    .unwrap_or_else(|| default.map(String::from).to_vec())
                    .into_iter()
                    .map(|s| s.to_lowercase())
                    .collect::<Vec<_>>()
            };
            when(any_of(&lower, &spellings(&spec.true_values, TRUE_VALUES)))
                .then(lit(true))
                .when(any_of(&lower, &spellings(&spec.false_values, FALSE_VALUES)))
                .then(lit(false))
                .otherwise(lit(NULL).cast(DataType::Boolean))
        }
    })
}

/// A column's value for rules: parsed when it is typed, else the (normalised) text.
fn value(source: &Source, name: &str) -> Expr {
    let typed = source
        .columns
        .iter()
        .any(|c| c.name == name && !matches!(c.ty, ColumnType::Text | ColumnType::Id));
    if typed {
        col(format!("__parsed_{name}").as_str())
    } else {
        col(name)
    }
}

/// Step 3: the contract's rules, in the order of [`Reason`] (missing values, the parse
/// failures, ranges, accepted values, patterns).
fn rules(source: &Source, mut parse_failures: Vec<Check>) -> Vec<Check> {
    let mut checks: Vec<Check> = Vec::new();
    for name in &source.rules.not_null {
        checks.push(Check {
            reason: Reason::MissingValue,
            broken: col(name.as_str()).is_null(),
            detail: lit(format!("{name} is empty")),
        });
    }
    // Parse failures sorted by reason (bad_number, bad_date, bad_boolean), stable per column.
    parse_failures.sort_by_key(|c| c.reason);
    checks.extend(parse_failures);
    for (name, r) in &source.rules.range {
        let v = value(source, name).cast(DataType::Float64);
        let raw_value = || col(raw(name).as_str());
        if let Some(min) = r.min {
            checks.push(Check {
                reason: Reason::OutOfRange,
                broken: v.clone().lt(lit(min)),
                detail: detail(name, raw_value(), format!("is below the minimum {min}")),
            });
        }
        if let Some(max) = r.max {
            checks.push(Check {
                reason: Reason::OutOfRange,
                broken: v.gt(lit(max)),
                detail: detail(name, raw_value(), format!("is above the maximum {max}")),
            });
        }
    }
    for (name, values) in &source.rules.accepted_values {
        let v = col(name.as_str());
        checks.push(Check {
            reason: Reason::NotAccepted,
            broken: v.clone().is_not_null().and(any_of(&v, values).not()),
            detail: detail(name, v, format!("is not one of {}", values.join(", "))),
        });
    }
    for c in &source.columns {
        let Some(words) = source.entity.vocabulary(&c.name) else {
            continue;
        };
        let v = col(c.name.as_str());
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        checks.push(Check {
            reason: Reason::NotAccepted,
            broken: v.clone().is_not_null().and(any_of(&v, &words).not()),
            detail: detail(
                &c.name,
                col(raw(&c.name).as_str()),
                format!("is not one of {}", words.join(", ")),
            ),
        });
    }
    for (name, pat) in &source.rules.pattern {
        let v = col(name.as_str());
        checks.push(Check {
            reason: Reason::PatternMismatch,
            broken: v
                .clone()
                .is_not_null()
                .and(v.clone().str().contains(lit(pat.as_str()), true).not()),
            detail: detail(name, v, format!("does not match {pat}")),
        });
    }
    checks
}

/// Order lines: the quantity checks (zero; negative outside a cancellation, when the
/// contract rejects those) and the `is_return` and `is_service` flags; products: the
/// service flag by code. Returns the flags' expressions.
fn order_line_flags(source: &Source, checks: &mut Vec<Check>) -> Vec<Expr> {
    let mut derived = Vec::new();
    if source.entity == Entity::OrderLine {
        let qty = value(source, "quantity");
        let cancel = match &source.cancellation_prefix {
            Some(prefix) => col("invoice_no")
                .str()
                .starts_with(lit(prefix.as_str()))
                .fill_null(lit(false)),
            None => lit(false),
        };
        checks.push(Check {
            reason: Reason::ZeroQuantity,
            broken: qty.clone().eq(lit(0i64)),
            detail: lit("quantity is 0"),
        });
        let negative = qty.lt(lit(0i64));
        let is_return = match source.negative_quantity {
            NegativeQuantity::Reject => {
                checks.push(Check {
                    reason: Reason::StockAdjustment,
                    broken: negative.and(cancel.clone().not()),
                    detail: detail(
                        "quantity",
                        col(raw("quantity").as_str()),
                        "is negative outside a cancellation invoice".into(),
                    ),
                });
                cancel
            }
            NegativeQuantity::Return => cancel.or(negative),
        };
        derived.push(is_return.alias("is_return"));
        derived.push(service_by_code(source).alias("is_service"));
    }
    if source.entity == Entity::Product && source.service_code_pattern.is_some() {
        let flag = if source.has("is_service") {
            value(source, "is_service")
                .fill_null(lit(false))
                .or(service_by_code(source))
        } else {
            service_by_code(source)
        };
        derived.push(flag.alias("__is_service"));
    }
    derived
}

/// Whether the product code matches the contract's service codes (postage, fees).
fn service_by_code(source: &Source) -> Expr {
    match &source.service_code_pattern {
        Some(pat) => col("product_id")
            .str()
            .contains(lit(pat.as_str()), true)
            .fill_null(lit(false)),
        None => lit(false),
    }
}

/// Step 4: product, customer and campaign ids must be known (from their source or the
/// warehouse).
fn relationships(source: &Source, known: &KnownIds) -> Vec<Check> {
    let has = |c: &str| source.has(c);
    let mut checks = Vec::new();
    for (column, ids, entity, reason, noun) in [
        (
            "product_id",
            &known.products,
            Entity::Product,
            Reason::UnknownProduct,
            "product",
        ),
        (
            "customer_id",
            &known.customers,
            Entity::Customer,
            Reason::UnknownCustomer,
            "customer",
        ),
        (
            "campaign_id",
            &known.campaigns,
            Entity::Campaign,
            Reason::UnknownCampaign,
            "campaign",
        ),
    ] {
        let Some(ids) = ids else { continue };
        if !has(column) || source.entity == entity {
            continue;
        }
        let v = col(column);
        checks.push(Check {
            reason,
            broken: v.clone().is_not_null().and(
                v.clone()
                    .is_in(lit(ids.clone()).implode(false), false)
                    .not(),
            ),
            detail: detail(column, v, format!("is not a known {noun}")),
        });
    }
    checks
}

/// The rejected rows: positions, the first broken check's code and detail, the raw text.
fn rejects(bad: DataFrame, checks: Vec<Check>, has_raw: bool) -> Result<DataFrame> {
    let (mut reason, mut detail) = (
        lit(NULL).cast(DataType::String),
        lit(NULL).cast(DataType::String),
    );
    for (i, c) in checks.into_iter().enumerate().rev() {
        let this = col("__check").eq(lit(i as u32).cast(DataType::Int32));
        reason = when(this.clone())
            .then(lit(c.reason.code()))
            .otherwise(reason);
        detail = when(this).then(c.detail).otherwise(detail);
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
    Ok(bad.lazy().select(bad_cols).collect()?)
}

/// The good rows: typed values under the canonical names, derived flags, no helpers.
fn good_rows(
    good: DataFrame,
    source: &Source,
    derived: Vec<Expr>,
    has_raw: bool,
) -> Result<DataFrame> {
    let parsed_cols: Vec<Expr> = source
        .columns
        .iter()
        .filter(|c| !matches!(c.ty, ColumnType::Text | ColumnType::Id))
        .map(|c| col(format!("__parsed_{}", c.name).as_str()).alias(c.name.as_str()))
        .collect();
    let mut keep: Vec<Expr> = vec![col("__record"), col("__line"), col("__start"), col("__end")];
    keep.extend(source.columns.iter().map(|c| col(c.name.as_str())));
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
    Ok(good)
}

/// Splits a chunk of good rows into the rows whose `dedupe_key` is new to this load and, as
/// `duplicate_key` rejects (`__record`, `__line`, `__start`, `__end`, `__reason`,
/// `__detail`), the rows repeating a key seen earlier (in this file or an earlier file of the
/// same source), naming where it was first seen.
pub fn dedupe_chunk(
    good: DataFrame,
    key: &[String],
    seen: &mut HashMap<String, (String, u64)>,
    file: &str,
) -> Result<(DataFrame, Option<DataFrame>)> {
    if good.height() == 0 {
        return Ok((good, None));
    }
    let keys = good
        .clone()
        .lazy()
        .select([concat_str(
            key.iter()
                .map(|k| col(k.as_str()).cast(DataType::String))
                .collect::<Vec<_>>(),
            "\u{1f}",
            false,
        )
        .alias("k")])
        .collect()?;
    let keys = keys.column("k")?.str()?;
    let records = good.column("__record")?.u64()?;
    let mut dup = Vec::with_capacity(good.height());
    let mut details = Vec::new();
    for (k, rec) in keys.iter().zip(records.into_no_null_iter()) {
        let is_dup = match k {
            None => false,
            Some(k) => match seen.get(k) {
                Some((first_file, first)) => {
                    details.push(format!(
                        "{} {:?} repeats record {first} of {first_file}",
                        key.join("+"),
                        k.replace('\u{1f}', "+")
                    ));
                    true
                }
                None => {
                    seen.insert(k.to_string(), (file.to_string(), rec));
                    false
                }
            },
        };
        dup.push(is_dup);
    }
    if details.is_empty() {
        return Ok((good, None));
    }
    let mask = BooleanChunked::from_slice("dup".into(), &dup);
    let bad = good.filter(&mask)?;
    let n = bad.height();
    let mut rejects = df!(
        "__record" => bad.column("__record")?.as_materialized_series().clone(),
        "__line" => bad.column("__line")?.as_materialized_series().clone(),
        "__start" => bad.column("__start")?.as_materialized_series().clone(),
        "__end" => bad.column("__end")?.as_materialized_series().clone(),
        "__reason" => vec![Reason::DuplicateKey.code(); n],
        "__detail" => details,
    )?;
    if let Ok(raw) = bad.column("__raw") {
        rejects.with_column(raw.clone())?;
    }
    Ok((good.filter(&!&mask)?, Some(rejects)))
}
