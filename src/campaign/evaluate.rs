//! A randomised test's evaluation: every arm against the control, outcome by outcome.
//!
//! - Input: any table (Parquet or CSV) with one row per customer in the test: an arm column
//!   (the control arm is one of its values, every other value is a treatment), outcome
//!   columns (numbers or booleans), and optionally a column to split the results by.
//! - Output: one [`Comparison`] per (member of the split, treatment arm, outcome): both arms'
//!   sizes and means, and the effect with its intervals and p-value (see [`super::stats`]).
//!   An outcome whose values are all 0 or 1 is a **rate**: Wilson intervals per arm, the
//!   difference with Newcombe's interval, the ratio with Katz's, the two-proportion z-test.
//!   Any other is an **amount**: the difference with Welch's interval and test, the ratio by
//!   the delta method. Welch's interval of the difference is given for rates too (a rate is a
//!   mean of 0/1), as scipy and most A/B tools report it. `incremental` is the difference ×
//!   the treated arm's size: the extra responders, or the extra revenue, the arm caused.
//! - Parameters: the confidence level ([`super::results::CampaignReportParams`]'s, default
//!   0.95) and the split column (its `by`).
//! - Refused, with the column and the count: rows without an arm or without an outcome (a
//!   test's rows are all accounted for, never dropped), a control value that no row has, and
//!   a table with no other arm.
//!
//! The table is reduced in SQL to each (member, arm)'s count, sum and sum of squares per
//! outcome, so a test of millions of rows costs one aggregation; the sums are taken as
//! decimals with 6 fraction digits (amounts are rounded to a millionth), so they are exact
//! and the same on every run.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};

use super::results::CampaignReportParams;
use super::stats::{self, Interval, Moments};
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions, sqltext::ident};

/// Which columns of the table are what.
#[derive(Debug, Clone)]
pub struct TestColumns<'a> {
    pub arm: &'a str,
    /// The control arm's value in `arm` (compared as text).
    pub control: &'a str,
    pub outcomes: &'a [String],
    /// Split the results by this column's values.
    pub by: Option<&'a str>,
}

/// How an outcome is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Every value 0 or 1.
    Rate,
    Amount,
}

/// One treatment arm against the control on one outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// The member of the split (None without one).
    pub member: Option<String>,
    pub arm: String,
    pub outcome: String,
    pub kind: Kind,
    pub treated: Moments,
    pub control: Moments,
    /// Wilson intervals of the two rates (rates only).
    pub treated_rate: Option<Interval>,
    pub control_rate: Option<Interval>,
    /// Treated − control (None when an arm is empty).
    pub difference: Option<f64>,
    /// Its interval: Newcombe's for rates, Welch's for amounts.
    pub difference_interval: Option<Interval>,
    /// Welch's interval of the difference of means (either kind).
    pub welch: Option<Interval>,
    /// Treated / control.
    pub ratio: Option<Interval>,
    /// Two-sided: the pooled z-test for rates, Welch's t-test for amounts.
    pub p_value: Option<f64>,
    /// difference × treated customers.
    pub incremental: Option<f64>,
}

/// Per (member, arm), the moments of each outcome.
type Groups = BTreeMap<(Option<String>, String), Vec<Moments>>;

/// Reads the table at `path` and compares each arm with the control.
pub async fn evaluate_file(
    path: &Path,
    cols: &TestColumns<'_>,
    params: &CampaignReportParams,
    engine: &EngineOptions,
) -> Result<Vec<Comparison>> {
    params.check()?;
    if cols.outcomes.is_empty() {
        return Err(Error::param("outcome", "give at least one outcome column"));
    }
    let ctx = olap::empty_session(engine)?;
    olap::register_path(&ctx, "input", path).await?;
    let schema = ctx.table("input").await?.schema().as_arrow().clone();
    let arm = ident(cols.arm);
    olap::column_index(path, &schema, "arm", cols.arm)?;
    let by = match cols.by {
        Some(b) => {
            olap::column_index(path, &schema, "by", b)?;
            format!("CAST({} AS VARCHAR)", ident(b))
        }
        None => "CAST(NULL AS VARCHAR)".into(),
    };
    let mut select = vec![by, format!("CAST({arm} AS VARCHAR)"), "COUNT(*)".into()];
    for o in cols.outcomes {
        let i = olap::column_index(path, &schema, "outcome", o)?;
        let t = schema.field(i).data_type();
        if !(t.is_numeric() || *t == DataType::Boolean) {
            return Err(Error::input(
                path,
                format!("outcome column {o:?} is {t}, not a number or a boolean"),
            ));
        }
        // Summed as decimals (6 fraction digits): exact, and the same however the file is
        // split over threads, which a sum of doubles is not.
        let y = match t {
            DataType::Boolean => format!("CAST(CAST({} AS INT) AS DECIMAL(38, 6))", ident(o)),
            _ => format!("CAST({} AS DECIMAL(38, 6))", ident(o)),
        };
        select.extend([
            format!("COUNT({y})"),
            format!("CAST(SUM({y}) AS DOUBLE)"),
            format!("CAST(SUM({y} * {y}) AS DOUBLE)"),
            format!("COUNT(*) FILTER (WHERE {y} NOT IN (0, 1))"),
        ]);
    }
    let statement = format!(
        "SELECT {} FROM input GROUP BY 1, 2 ORDER BY 1, 2",
        select.join(", ")
    );
    let (_, batches) = olap::sql(&ctx, &statement).await?;
    let (groups, binary) = gather(path, cols, &batches)?;
    let outcomes: Vec<(String, Kind)> = cols
        .outcomes
        .iter()
        .zip(binary)
        .map(|(o, b)| (o.clone(), if b { Kind::Rate } else { Kind::Amount }))
        .collect();
    compare(path, &groups, cols.control, &outcomes, params.confidence)
}

/// The aggregated rows as moments per (member, arm), and whether each outcome is 0/1 only;
/// rows without an arm or an outcome are refused.
fn gather(
    path: &Path,
    cols: &TestColumns<'_>,
    batches: &[RecordBatch],
) -> Result<(Groups, Vec<bool>)> {
    let k = cols.outcomes.len();
    let mut groups = Groups::new();
    let mut non_binary = vec![0i64; k];
    for b in batches {
        let members = olap::text_column(b.column(0))?;
        let arms = olap::text_column(b.column(1))?;
        let int = |c: usize| b.column(c).as_primitive::<Int64Type>().clone();
        let float = |c: usize| b.column(c).as_primitive::<Float64Type>().clone();
        let rows = int(2);
        for r in 0..b.num_rows() {
            if arms.is_null(r) {
                return Err(Error::input(
                    path,
                    format!(
                        "{} rows have no value in arm column {:?}; every row of a test belongs to an arm",
                        rows.value(r),
                        cols.arm
                    ),
                ));
            }
            let mut moments = Vec::with_capacity(k);
            for (j, o) in cols.outcomes.iter().enumerate() {
                let c = 3 + 4 * j;
                let missing = rows.value(r) - int(c).value(r);
                if missing > 0 {
                    return Err(Error::input(
                        path,
                        format!(
                            "{missing} rows of arm {:?} have no value in outcome column {o:?}; give 0 where nothing happened",
                            arms.value(r)
                        ),
                    ));
                }
                non_binary[j] += int(c + 3).value(r);
                moments.push(Moments {
                    n: rows.value(r) as u64,
                    sum: float(c + 1).value(r),
                    sum_squares: float(c + 2).value(r),
                });
            }
            let member = members.is_valid(r).then(|| members.value(r).to_string());
            groups.insert((member, arms.value(r).to_string()), moments);
        }
    }
    Ok((groups, non_binary.iter().map(|&n| n == 0).collect()))
}

/// Every treatment arm against the control within each member, outcome by outcome.
fn compare(
    path: &Path,
    groups: &Groups,
    control: &str,
    outcomes: &[(String, Kind)],
    confidence: f64,
) -> Result<Vec<Comparison>> {
    let arms: std::collections::BTreeSet<&str> = groups.keys().map(|(_, a)| a.as_str()).collect();
    if !arms.contains(control) {
        return Err(Error::param(
            "control",
            format!(
                "{} has no arm {control:?}; its arms are: {}",
                path.display(),
                join(&arms)
            ),
        ));
    }
    if arms.len() < 2 {
        return Err(Error::input(
            path,
            format!("has only the control arm {control:?}: there is nothing to compare it with"),
        ));
    }
    let mut out = Vec::new();
    for ((member, arm), treated) in groups {
        if arm == control {
            continue;
        }
        // A member without control customers has nothing to compare against: its rows
        // carry the treated figures and no effect.
        let none = vec![Moments::default(); outcomes.len()];
        let controls = groups
            .get(&(member.clone(), control.to_string()))
            .unwrap_or(&none);
        for (j, (outcome, kind)) in outcomes.iter().enumerate() {
            out.push(comparison(
                member.clone(),
                arm,
                outcome,
                *kind,
                treated[j],
                controls[j],
                confidence,
            ));
        }
    }
    Ok(out)
}

fn join(arms: &std::collections::BTreeSet<&str>) -> String {
    arms.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One arm against the control on one outcome.
pub(super) fn comparison(
    member: Option<String>,
    arm: &str,
    outcome: &str,
    kind: Kind,
    treated: Moments,
    control: Moments,
    confidence: f64,
) -> Comparison {
    let welch = stats::welch(&treated, &control, confidence);
    // Sums of 0/1 values are exact in f64 far beyond any test's size.
    let counts = |m: &Moments| (m.sum as u64, m.n);
    let (t, c) = (counts(&treated), counts(&control));
    let (treated_rate, control_rate, difference, ratio, p_value) = match kind {
        Kind::Rate => (
            stats::wilson(t.0, t.1, confidence),
            stats::wilson(c.0, c.1, confidence),
            stats::newcombe(t, c, confidence),
            stats::rate_ratio(t, c, confidence),
            stats::two_proportion_p(t, c),
        ),
        Kind::Amount => (
            None,
            None,
            welch.map(|w| w.difference),
            stats::mean_ratio(&treated, &control, confidence),
            welch.map(|w| w.p_value),
        ),
    };
    let estimate = treated.mean().zip(control.mean()).map(|(a, b)| a - b);
    Comparison {
        difference: estimate,
        difference_interval: difference,
        member,
        arm: arm.to_string(),
        outcome: outcome.to_string(),
        kind,
        treated,
        control,
        treated_rate,
        control_rate,
        welch: welch.map(|w| w.difference),
        ratio,
        p_value,
        incremental: estimate.map(|d| d * treated.n as f64),
    }
}

/// The comparisons as one table: the split's column (named after it) when there is one,
/// then arm, outcome, kind, sizes, means, intervals (`_low`, `_high`), p-value, incremental.
pub fn to_batch(rows: &[Comparison], by: Option<&str>) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut text = |name: &str, v: Vec<Option<String>>| {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(v)));
    };
    if let Some(b) = by {
        text(b, rows.iter().map(|r| r.member.clone()).collect());
    }
    text("arm", rows.iter().map(|r| Some(r.arm.clone())).collect());
    text(
        "outcome",
        rows.iter().map(|r| Some(r.outcome.clone())).collect(),
    );
    text(
        "kind",
        rows.iter()
            .map(|r| {
                Some(
                    if r.kind == Kind::Rate {
                        "rate"
                    } else {
                        "amount"
                    }
                    .to_string(),
                )
            })
            .collect(),
    );
    for (name, get) in [
        (
            "treated",
            (|r: &Comparison| r.treated.n) as fn(&Comparison) -> u64,
        ),
        ("control", |r: &Comparison| r.control.n),
    ] {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| get(r) as i64),
        )));
    }
    let col = |f: &dyn Fn(&Comparison) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    let interval = |name: &str, get: fn(&Comparison) -> Option<Interval>| {
        [
            (format!("{name}_low"), col(&|r| get(r).map(|i| i.low))),
            (format!("{name}_high"), col(&|r| get(r).map(|i| i.high))),
        ]
    };
    let mut numbers: Vec<(String, Vec<Option<f64>>)> = vec![
        ("treated_mean".into(), col(&|r| r.treated.mean())),
        ("control_mean".into(), col(&|r| r.control.mean())),
    ];
    numbers.extend(interval("treated", |r| r.treated_rate));
    numbers.extend(interval("control", |r| r.control_rate));
    numbers.push(("difference".into(), col(&|r| r.difference)));
    numbers.extend(interval("difference", |r| r.difference_interval));
    numbers.extend(interval("welch", |r| r.welch));
    numbers.push(("ratio".into(), col(&|r| r.ratio.map(|i| i.estimate))));
    numbers.extend(interval("ratio", |r| r.ratio));
    numbers.push(("p_value".into(), col(&|r| r.p_value)));
    numbers.push(("incremental".into(), col(&|r| r.incremental)));
    for (name, values) in numbers {
        fields.push(Field::new(name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(values)));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
