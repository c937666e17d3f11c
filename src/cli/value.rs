//! Customer value on the command line: `ecrm clv train|score|evaluate`, `ecrm profit`,
//! `ecrm cohorts` and `ecrm cohorts sbg`. Parameters are checked before any data is read;
//! then the model file is written, the table stored, or the results printed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::{Context, FormatArgs, date, say};
use crate::cohorts::sbg;
use crate::cohorts::triangle::{self, CohortParams};
use crate::error::{Error, Result};
use crate::value::data::{LogColumns, SummaryColumns};
use crate::value::evaluate::Evaluation;
use crate::value::jobs::{self, Data};
use crate::value::model::ModelFile;
use crate::value::profit::ProfitParams;
use crate::value::score::ClvScoreParams;
use crate::value::train::ClvTrainParams;
use crate::warehouse::files::{self, FileFormat};
use crate::warehouse::tables;

/// `ecrm profit`'s options.
#[derive(Debug, Args)]
pub struct ProfitArgs {
    #[command(flatten)]
    pub params: ProfitParams,
    /// Count order lines and contacts before this date (YYYY-MM-DD). Default: the day after
    /// the last order line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm profit`: table customer_profit; prints the whale curve by decile.
pub fn profit(a: ProfitArgs, cx: &Context<'_>) -> Result<()> {
    a.format.check_printable("profit")?;
    a.params.check()?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let (deciles, s) = cx.block(crate::value::profit::build(
        &cx.wh_root,
        &a.params,
        as_of,
        &cx.engine,
    ))?;
    let peak = match (s.peak_share, s.peak_at) {
        (Some(share), Some(at)) => format!(
            "; profit peaks at {:.1}% of the total with the most profitable {:.1}% of customers",
            share * 100.0,
            at * 100.0
        ),
        _ => String::new(),
    };
    tracing::info!(
        "table {} as of {}: {} customers, {} with an unknown cost of goods ({} goods lines without a cost), {} contacts on channels without a --contact-cost (costed 0){peak}",
        tables::CUSTOMER_PROFIT,
        s.as_of,
        s.customers,
        s.unknown_cost,
        s.lines_without_cost,
        s.uncosted_contacts
    );
    a.format.print(&deciles.schema(), &[deciles])
}

#[derive(Debug, Subcommand)]
pub enum ClvAction {
    /// Fit a purchase model (BG/NBD or Pareto/NBD) and a spend model (Gamma-Gamma) by
    /// maximum likelihood: on the warehouse's order lines, a transaction log (--input) or a
    /// summary table (--summary). Writes the model file and prints the fit; a fit that does
    /// not converge is an error with its diagnostics.
    Train(ClvTrainArgs),
    /// Score customers with a model: the warehouse's into table customer_value, or with
    /// --summary/--input and --out a file's. Rows carry P(alive), expected purchases and
    /// spend over the horizon, the discounted CLV and the value decile.
    Score(ClvScoreArgs),
    /// Measure a model on the data it was trained on: repeat purchases per customer actual
    /// against expected, and on the hold-out (after --calibration-end) per-customer
    /// forecasts against what customers did, and week-by-week cumulative purchases.
    Evaluate(ClvEvaluateArgs),
}

/// Where the customers come from: the warehouse (default), a transaction log or a summary.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// A summary table (Parquet or CSV), one row per customer, times in --time-unit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["input", "as_of", "calibration_end", "date", "amount"])]
    pub summary: Option<PathBuf>,
    /// A transaction log (Parquet or CSV), one row per purchase, with --id and --date.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// File: the id column. Default: customer_id (a summary without it: row numbers).
    #[arg(long, value_name = "COL")]
    pub id: Option<String>,
    /// Summary: the repeat purchases column x [default: frequency].
    #[arg(long, value_name = "COL", requires = "summary")]
    pub frequency: Option<String>,
    /// Summary: the time of the last repeat purchase t_x [default: recency].
    #[arg(long, value_name = "COL", requires = "summary")]
    pub recency: Option<String>,
    /// Summary: the age T, first purchase to the end of calibration [default: T].
    #[arg(long, value_name = "COL", requires = "summary")]
    pub age: Option<String>,
    /// Summary: the mean spend per repeat purchase. Default: monetary_value if present.
    #[arg(long, value_name = "COL", requires = "summary")]
    pub monetary: Option<String>,
    /// Summary: each customer's purchases in the hold-out after calibration, for `clv
    /// evaluate`. Default: frequency_holdout if present.
    #[arg(long, value_name = "COL", requires = "summary")]
    pub holdout_frequency: Option<String>,
    /// Summary: the hold-out's length in --time-unit, the same on every row. Default:
    /// duration_holdout if present.
    #[arg(long, value_name = "COL", requires = "summary")]
    pub holdout_length: Option<String>,
    /// Log: the purchase date column (a date, a timestamp or text).
    #[arg(long, value_name = "COL", requires = "input")]
    pub date: Option<String>,
    /// Log: the amount column (needed by --spend gamma-gamma).
    #[arg(long, value_name = "COL", requires = "input")]
    pub amount: Option<String>,
    /// Log: the format of text dates (chrono, e.g. %Y%m%d). Default: ISO dates.
    #[arg(long, value_name = "FMT", requires = "input")]
    pub date_format: Option<String>,
    /// Warehouse or log: use purchases before this date (YYYY-MM-DD). Default: all.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Warehouse or log: the last day of calibration (YYYY-MM-DD); the days after it and
    /// before --as-of are the hold-out. Default: the day before --as-of (no hold-out).
    #[arg(long, value_name = "DATE")]
    pub calibration_end: Option<String>,
}

/// The dates of `DataArgs`, checked.
struct Dates {
    as_of: Option<NaiveDate>,
    calibration_end: Option<NaiveDate>,
}

impl DataArgs {
    fn dates(&self) -> Result<Dates> {
        Ok(Dates {
            as_of: date("as_of", self.as_of.as_deref())?,
            calibration_end: date("calibration_end", self.calibration_end.as_deref())?,
        })
    }

    /// The data these options name; a column not given falls back to `model`'s (scoring
    /// a file like the one trained on), then to the usual names.
    fn data<'a>(
        &'a self,
        dates: &Dates,
        cx: &'a Context<'_>,
        model: Option<&'a ModelFile>,
    ) -> Result<Data<'a>> {
        let recorded = |role: &str| {
            model.and_then(|m| {
                m.source
                    .columns
                    .iter()
                    .find(|(r, _)| r == role)
                    .map(|(_, c)| c.as_str())
            })
        };
        let pick = |given: &'a Option<String>, role: &str| given.as_deref().or(recorded(role));
        if let Some(path) = &self.summary {
            return Ok(Data::Summary {
                path,
                columns: SummaryColumns {
                    id: pick(&self.id, "id"),
                    frequency: pick(&self.frequency, "frequency").unwrap_or("frequency"),
                    recency: pick(&self.recency, "recency").unwrap_or("recency"),
                    age: pick(&self.age, "age").unwrap_or("T"),
                    monetary: pick(&self.monetary, "monetary"),
                    holdout_frequency: pick(&self.holdout_frequency, "holdout_frequency"),
                    holdout_length: pick(&self.holdout_length, "holdout_length"),
                },
            });
        }
        if let Some(path) = &self.input {
            let date = pick(&self.date, "date").ok_or_else(|| Error::Usage {
                arg: "--date".into(),
                message: "a transaction log (--input) needs its date column".into(),
            })?;
            return Ok(Data::Log {
                path,
                columns: LogColumns {
                    id: pick(&self.id, "id").unwrap_or("customer_id"),
                    date,
                    amount: pick(&self.amount, "amount"),
                    date_format: self
                        .date_format
                        .as_deref()
                        .or(model.and_then(|m| m.source.date_format.as_deref())),
                },
                as_of: dates.as_of,
                calibration_end: dates.calibration_end,
            });
        }
        Ok(Data::Warehouse {
            root: &cx.wh_root,
            as_of: dates.as_of,
            calibration_end: dates.calibration_end,
        })
    }
}

#[derive(Debug, Args)]
pub struct ClvTrainArgs {
    #[command(flatten)]
    pub params: ClvTrainParams,
    #[command(flatten)]
    pub data: DataArgs,
    /// The model file to write (JSON).
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Debug, Args)]
pub struct ClvScoreArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub params: ClvScoreParams,
    #[command(flatten)]
    pub data: DataArgs,
    /// With --summary or --input: where to write the scores (Parquet, CSV, JSON or NDJSON by
    /// extension).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ClvEvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Also write the whole evaluation (every week of the tracking) here, as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs one `ecrm clv` action.
pub fn run(action: ClvAction, cx: &Context<'_>) -> Result<()> {
    match action {
        ClvAction::Train(a) => train(a, cx),
        ClvAction::Score(a) => score(a, cx),
        ClvAction::Evaluate(a) => evaluate(a, cx),
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::io("<stdout>", e)
}

/// `ecrm clv train`: fit, write the model, print the fit.
fn train(a: ClvTrainArgs, cx: &Context<'_>) -> Result<()> {
    let dates = a.data.dates()?;
    let data = a.data.data(&dates, cx, None)?;
    let model = cx.block(jobs::train(&data, &a.params, &cx.engine))?;
    files::write_json(&a.model, &model)?;
    let mut out = std::io::stdout().lock();
    let s = &model.source;
    let period = match (s.calibration_end, s.as_of) {
        (Some(end), Some(as_of)) => format!("; calibration through {end}, hold-out to {as_of}"),
        _ => String::new(),
    };
    say(
        &mut out,
        format_args!(
            "model written to {} ({} on {} customers, {} repeat buyers, {} repeat purchases{period})",
            a.model.display(),
            model.purchases.method(),
            s.customers,
            s.repeat_buyers,
            s.repeat_purchases
        ),
    )?;
    print_fit(&mut out, &model)
}

/// The parameters, log-likelihoods and diagnostics of a model.
fn print_fit(out: &mut impl Write, model: &ModelFile) -> Result<()> {
    let params: Vec<String> = model
        .purchases
        .params()
        .iter()
        .map(|(n, v)| format!("{n} {v:.4}"))
        .collect();
    let f = &model.fit;
    writeln!(
        out,
        "{}  log-likelihood {:.2}  ({} iterations, gradient norm {:.1e}, converged)",
        params.join("  "),
        model.log_likelihood,
        f.iterations,
        f.gradient_norm
    )
    .map_err(stdout_error)?;
    if let Some(s) = &model.spend {
        writeln!(
            out,
            "spend (Gamma-Gamma on {} repeat buyers{}): p {:.4}  q {:.4}  v {:.4}  log-likelihood {:.2}",
            s.customers,
            if s.left_out > 0 { format!(", {} without a positive mean spend left out", s.left_out) } else { String::new() },
            s.params.p,
            s.params.q,
            s.params.v,
            s.log_likelihood
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

/// `ecrm clv score`: the warehouse's table customer_value, or a file's rows to a file.
fn score(a: ClvScoreArgs, cx: &Context<'_>) -> Result<()> {
    a.params.check()?;
    if a.data.calibration_end.is_some() {
        return Err(Error::Usage {
            arg: "--calibration-end".into(),
            message: "applies to training; scores use every purchase before --as-of".into(),
        });
    }
    let dates = a.data.dates()?;
    let file_input = a.data.summary.is_some() || a.data.input.is_some();
    if file_input != a.out.is_some() {
        return Err(Error::Usage {
            arg: "--out".into(),
            message: "scores of a file (--summary or --input) go to --out FILE; the warehouse's \
                      to table customer_value (no --out)"
                .into(),
        });
    }
    let model = ModelFile::read(&a.model)?;
    let data = a.data.data(&dates, cx, Some(&model))?;
    let (scores, as_of) = cx.block(jobs::score(&model, &data, &a.params, &cx.engine))?;
    let target = match &a.out {
        Some(out) => {
            let b = &scores.batch;
            files::write_batches_file(
                out,
                FileFormat::for_path(out),
                &b.schema(),
                std::slice::from_ref(b),
            )?;
            out.display().to_string()
        }
        None => format!(
            "table {} as of {}",
            tables::CUSTOMER_VALUE,
            as_of.map(|d| d.to_string()).unwrap_or_default()
        ),
    };
    if scores.undefined > 0 {
        tracing::warn!(
            customers = scores.undefined,
            "forecasts that could not be computed are NULL"
        );
    }
    say(
        &mut std::io::stdout().lock(),
        format_args!(
            "scored {} customers over {} days to {target}",
            scores.batch.num_rows(),
            a.params.horizon_days
        ),
    )
}

/// `ecrm clv evaluate`: printed, and with --out stored as JSON.
fn evaluate(a: ClvEvaluateArgs, cx: &Context<'_>) -> Result<()> {
    let model = ModelFile::read(&a.model)?;
    let (e, note) = cx.block(jobs::evaluate(&model, &cx.wh_root, &cx.engine))?;
    if let Some(n) = note {
        tracing::warn!("{n}");
    }
    if let Some(path) = &a.out {
        let json = serde_json::json!({
            "model": a.model.display().to_string(),
            "method": model.purchases.method(),
            "data_sha256": model.source.data_sha256,
            "evaluation": e,
        });
        files::write_json(path, &json)?;
    }
    print_evaluation(&mut std::io::stdout().lock(), &model, &e)
}

fn print_evaluation(out: &mut impl Write, model: &ModelFile, e: &Evaluation) -> Result<()> {
    let io = stdout_error;
    writeln!(
        out,
        "{} on {} customers, {} repeat purchases in calibration",
        model.purchases.method(),
        e.customers,
        e.calibration_repeat_purchases
    )
    .map_err(io)?;
    writeln!(out, "repeat purchases  customers  expected").map_err(io)?;
    for b in &e.histogram {
        writeln!(
            out,
            "{:>16}  {:>9}  {:>8.1}",
            b.repeat_purchases, b.actual, b.expected
        )
        .map_err(io)?;
    }
    match &e.holdout {
        Some(h) => {
            let r = h.correlation.map_or("n/a".into(), |r| format!("{r:.3}"));
            writeln!(
                out,
                "hold-out of {:.2} {}s: {} repeat purchases, {:.1} expected; per customer \
                 correlation {r}, mean absolute error {:.3}; {} of the {} customers without a \
                 repeat purchase in calibration bought, {} times",
                h.length,
                model.time_unit,
                h.actual,
                h.expected,
                h.mean_absolute_error,
                h.of_them_buying_in_holdout,
                h.no_repeat_in_calibration,
                h.their_holdout_purchases
            )
            .map_err(io)?;
        }
        None => writeln!(
            out,
            "no hold-out: train with --calibration-end before --as-of (a summary table: with hold-out columns) to measure forecasts"
        )
        .map_err(io)?,
    }
    if !e.tracking.is_empty() {
        writeln!(
            out,
            "week  ends        cumulative repeat purchases  expected"
        )
        .map_err(io)?;
        let last = e.tracking.len();
        for w in e
            .tracking
            .iter()
            .filter(|w| w.week % 13 == 0 || w.week as usize == last)
        {
            writeln!(
                out,
                "{:>4}  {}  {:>27}  {:>8.1}",
                w.week, w.end, w.actual_cumulative, w.expected_cumulative
            )
            .map_err(io)?;
        }
    }
    Ok(())
}

/// `ecrm cohorts`: the retention triangle, or with `sbg` one survivor curve.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CohortsArgs {
    #[command(subcommand)]
    pub action: Option<CohortsAction>,
    #[command(flatten)]
    pub params: CohortParams,
    /// Count order lines before this date (YYYY-MM-DD). Default: the day after the last one.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Subcommand)]
pub enum CohortsAction {
    /// Fit the shifted-beta-geometric model (Fader & Hardie 2007) to one survivor curve and
    /// project it: prints per period the observed and fitted survivors, survival and
    /// retention, with alpha, beta and the log-likelihood on every row.
    Sbg(SbgArgs),
}

#[derive(Debug, Args)]
pub struct SbgArgs {
    /// The cohort's size, then the customers still active after each period, e.g.
    /// 1000,631,468,382,326,289,262,241.
    #[arg(long, value_delimiter = ',', required = true)]
    pub survivors: Vec<u64>,
    /// Periods to project beyond the observed ones.
    #[arg(long, default_value_t = 0)]
    pub project: u64,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm cohorts`: the triangle into table cohort_retention, printed as a pivot of the
/// measure; or `ecrm cohorts sbg`.
pub fn cohorts(a: CohortsArgs, cx: &Context<'_>) -> Result<()> {
    if let Some(CohortsAction::Sbg(s)) = a.action {
        return fit_sbg(s);
    }
    a.format.check_printable("cohorts")?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let (batch, as_of) = cx.block(crate::cohorts::retention(
        &cx.wh_root,
        &a.params,
        as_of,
        &cx.engine,
    ))?;
    tracing::info!(rows = batch.num_rows(), %as_of, "table {} written", tables::COHORT_RETENTION);
    let table = triangle::pivot(&batch, &a.params)?;
    a.format.print(&table.schema(), &[table])
}

/// `ecrm cohorts sbg`: the fit and its projection as one table.
fn fit_sbg(a: SbgArgs) -> Result<()> {
    let curve = sbg::SurvivorCurve::new(a.survivors)?;
    let fit = sbg::fit(&curve)?;
    if !fit.converged {
        return Err(Error::Mining {
            algorithm: "sBG",
            message: format!(
                "the fit did not converge ({} iterations; last alpha {:.6e}, beta {:.6e})",
                fit.iterations, fit.alpha, fit.beta
            ),
        });
    }
    let n = curve.counts();
    let periods = n.len() as u64 - 1 + a.project;
    let size = n[0] as f64;
    let rows = 0..=periods;
    let schema = Arc::new(Schema::new(vec![
        Field::new("period", DataType::Int64, false),
        Field::new("observed", DataType::Int64, true),
        Field::new("expected", DataType::Float64, false),
        Field::new("survival", DataType::Float64, false),
        Field::new("retention", DataType::Float64, true),
        Field::new("alpha", DataType::Float64, false),
        Field::new("beta", DataType::Float64, false),
        Field::new("log_likelihood", DataType::Float64, false),
    ]));
    let constant =
        |v: f64| -> ArrayRef { Arc::new(Float64Array::from(vec![v; periods as usize + 1])) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.clone().map(|t| t as i64))),
        Arc::new(Int64Array::from_iter(
            rows.clone().map(|t| n.get(t as usize).map(|&c| c as i64)),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.clone().map(|t| size * fit.survival(t)),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.clone().map(|t| fit.survival(t)),
        )),
        Arc::new(Float64Array::from_iter(
            rows.map(|t| (t > 0).then(|| fit.retention(t))),
        )),
        constant(fit.alpha),
        constant(fit.beta),
        constant(fit.log_likelihood),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    a.format.print(&schema, &[batch])
}
