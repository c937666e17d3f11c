//! The value jobs on their data: train, score and evaluate on the warehouse, a transaction
//! log or a summary table. What the CLI and the pipeline call.

use std::path::Path;

use chrono::{Duration, NaiveDate};

use super::data::{self, Customers, LogColumns, SummaryColumns};
use super::evaluate::{self, Evaluation};
use super::model::{ModelFile, Source, TimeUnit};
use super::score::{self, ClvScoreParams, Scores};
use super::train::{self, ClvTrainParams};
use crate::error::{Error, Result};
use crate::features;
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, WriterLock, tables};

/// Where the customers come from.
#[derive(Debug, Clone)]
pub enum Data<'a> {
    /// `fact_sales` before `as_of` (default: all of it), calibration through
    /// `calibration_end` (default: the day before `as_of`).
    Warehouse {
        root: &'a Path,
        as_of: Option<NaiveDate>,
        calibration_end: Option<NaiveDate>,
    },
    /// A transaction log, with the same dates (default as-of: the day after its last date).
    Log {
        path: &'a Path,
        columns: LogColumns<'a>,
        as_of: Option<NaiveDate>,
        calibration_end: Option<NaiveDate>,
    },
    /// A summary table in the model's time unit.
    Summary {
        path: &'a Path,
        columns: SummaryColumns<'a>,
    },
}

/// Customers, where they came from (counts and hash filled in by training), and the as-of
/// date of day-stamped data.
pub struct Loaded {
    pub customers: Customers,
    pub source: Source,
    pub as_of: Option<NaiveDate>,
}

/// Reads and summarises `data` with times in `unit`.
pub async fn load(data: &Data<'_>, unit: TimeUnit, engine: &EngineOptions) -> Result<Loaded> {
    let mut source = Source {
        kind: String::new(),
        input: String::new(),
        columns: Vec::new(),
        date_format: None,
        calibration_end: None,
        as_of: None,
        customers: 0,
        repeat_buyers: 0,
        repeat_purchases: 0,
        acquired_later: 0,
        data_sha256: String::new(),
    };
    let (days, as_of, calibration_end) = match data {
        Data::Summary { path, columns } => {
            let customers = data::read_summary(path, columns, engine).await?;
            source.kind = "summary".into();
            source.input = path.display().to_string();
            source.columns = roles(&[
                ("id", columns.id),
                ("frequency", Some(columns.frequency)),
                ("recency", Some(columns.recency)),
                ("age", Some(columns.age)),
                ("monetary", columns.monetary),
                ("holdout_frequency", columns.holdout_frequency),
                ("holdout_length", columns.holdout_length),
            ]);
            return Ok(Loaded {
                customers,
                source,
                as_of: None,
            });
        }
        Data::Warehouse {
            root,
            as_of,
            calibration_end,
        } => {
            let wh = Warehouse::open(*root)?;
            wh.table(tables::FACT_SALES)?;
            let ctx = olap::session(&wh, engine).await?;
            let as_of = match as_of {
                Some(d) => *d,
                None => features::default_as_of(&ctx).await?,
            };
            source.kind = "warehouse".into();
            source.input = root.display().to_string();
            (
                data::warehouse_days(&ctx, as_of).await?,
                as_of,
                *calibration_end,
            )
        }
        Data::Log {
            path,
            columns,
            as_of,
            calibration_end,
        } => {
            let days = data::file_days(path, columns, *as_of, engine).await?;
            let last = days.iter().map(|d| d.day).max().ok_or_else(|| {
                Error::input(
                    path,
                    "has no rows with an id and a date (before the as-of date)",
                )
            })?;
            source.kind = "transactions".into();
            source.input = path.display().to_string();
            source.columns = roles(&[
                ("id", Some(columns.id)),
                ("date", Some(columns.date)),
                ("amount", columns.amount),
            ]);
            source.date_format = columns.date_format.map(str::to_string);
            let as_of = as_of.unwrap_or(data::day_date(last + 1));
            (days, as_of, *calibration_end)
        }
    };
    let calibration_end = calibration_end.unwrap_or(as_of - Duration::days(1));
    if calibration_end >= as_of {
        return Err(Error::param(
            "calibration_end",
            format!("{calibration_end} is not before the as-of date {as_of}"),
        ));
    }
    source.calibration_end = Some(calibration_end);
    source.as_of = Some(as_of);
    Ok(Loaded {
        customers: data::summarize(&days, calibration_end, as_of, unit.days()),
        source,
        as_of: Some(as_of),
    })
}

fn roles(pairs: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(role, col)| col.map(|c| (role.to_string(), c.to_string())))
        .collect()
}

/// Trains on `data` (see [`train::train`]).
pub async fn train(
    data: &Data<'_>,
    params: &ClvTrainParams,
    engine: &EngineOptions,
) -> Result<ModelFile> {
    let start = std::time::Instant::now();
    let loaded = load(data, params.time_unit, engine).await?;
    let read = start.elapsed().as_secs_f64();
    let model = train::train(&loaded.customers, params, loaded.source)?;
    tracing::info!(
        customers = model.source.customers,
        read_s = read,
        fit_s = start.elapsed().as_secs_f64() - read,
        "clv train"
    );
    Ok(model)
}

/// The data a model was trained on, as its source records it (`root`: the warehouse).
pub fn training_data<'a>(model: &'a ModelFile, root: &'a Path) -> Data<'a> {
    let s = &model.source;
    let col = |role: &str| {
        s.columns
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, c)| c.as_str())
    };
    match s.kind.as_str() {
        "summary" => Data::Summary {
            path: Path::new(&s.input),
            columns: SummaryColumns {
                id: col("id"),
                frequency: col("frequency").unwrap_or("frequency"),
                recency: col("recency").unwrap_or("recency"),
                age: col("age").unwrap_or("T"),
                monetary: col("monetary"),
                holdout_frequency: col("holdout_frequency"),
                holdout_length: col("holdout_length"),
            },
        },
        "transactions" => Data::Log {
            path: Path::new(&s.input),
            columns: LogColumns {
                id: col("id").unwrap_or("customer_id"),
                date: col("date").unwrap_or("date"),
                amount: col("amount"),
                date_format: s.date_format.as_deref(),
            },
            as_of: s.as_of,
            calibration_end: s.calibration_end,
        },
        _ => Data::Warehouse {
            root,
            as_of: s.as_of,
            calibration_end: s.calibration_end,
        },
    }
}

/// Evaluates `model` on the data it was trained on (see [`evaluate::evaluate`]); the note says when
/// those data no longer hash to what was trained on.
pub async fn evaluate(
    model: &ModelFile,
    root: &Path,
    engine: &EngineOptions,
) -> Result<(Evaluation, Option<String>)> {
    let data = training_data(model, root);
    let loaded = load(&data, model.time_unit, engine).await?;
    let note = (loaded.customers.sha256() != model.source.data_sha256).then(|| {
        format!(
            "the data of {} ({}) have changed since the model was trained",
            model.source.kind, model.source.input
        )
    });
    Ok((
        evaluate::evaluate(model, &loaded.customers, loaded.as_of),
        note,
    ))
}

/// Scores `data` with `model`; the warehouse's scores replace table `customer_value`.
pub async fn score(
    model: &ModelFile,
    data: &Data<'_>,
    params: &ClvScoreParams,
    engine: &EngineOptions,
) -> Result<(Scores, Option<NaiveDate>)> {
    params.check()?;
    let lock = match data {
        Data::Warehouse { root, .. } => Some((WriterLock::acquire(root, "clv score")?, *root)),
        _ => None,
    };
    let start = std::time::Instant::now();
    let loaded = load(data, model.time_unit, engine).await?;
    let read = start.elapsed().as_secs_f64();
    let scores = score::score(model, &loaded.customers, params)?;
    tracing::info!(
        customers = scores.batch.num_rows(),
        read_s = read,
        score_s = start.elapsed().as_secs_f64() - read,
        "clv score"
    );
    if let Some((lock, root)) = lock {
        let wh = Warehouse::open(root)?;
        let mut tx = wh.begin(&lock);
        tx.replace_with(tables::CUSTOMER_VALUE, &scores.batch)?;
        let day = loaded.as_of.map(|d| d.to_string()).unwrap_or_default();
        Warehouse::commit(tx, &format!("customer value as of {day}"))?;
    }
    Ok((scores, loaded.as_of))
}
