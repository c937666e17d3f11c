//! Churn labels from the warehouse, training at a cutoff, and the nightly scoring into
//! `churn_scores`.
//!
//! Labels without leakage: at a cutoff date C, the customers are those of the feature mart as
//! of C (built only from order lines before C) whose last purchase lies in the look-back
//! window [C − lookback, C) (`recency_days ≤ lookback`); a customer churns when they make no
//! purchase in [C, C + horizon). Features see only data before C, labels only data from C on.
//!
//! The default cutoff is the latest whose whole horizon lies inside the data: the day after the
//! last order line minus the horizon. Validation is time-based: the model trains at C − horizon
//! (its labels end where C's window starts) and is measured at C.
//!
//! Training on a sample (`--train-sample N`): the model trains on a seeded stratified sample of
//! about N of the customers labelled at the training cutoff (each class sampled on its own,
//! so the sample keeps the churn rate), and is measured on every customer labelled at the
//! test cutoff. The labels and the mart are still computed for everyone (by SQL, on the
//! cluster when there is one); the sample bounds the tree's fit, which grows with rows ×
//! features × depth. The encoder learns categories from every labelled customer.
//!
//! Features: the mart's numeric columns, `top_category`, `age_band`, `country` and
//! `acquisition_channel` as categories, the opt-in flags as booleans; with web events, the
//! mart's web behaviour columns too (`last_channel` a category). Left out: the ids and
//! dates, and the RFM scores and segment (ranks within one date's population, which shift
//! from one cutoff to the next). The gaps between orders of a customer with one order are
//! NULL: they stay missing (reported), and each split of the tree learns which side they go
//! (they used to read as 0, which made a one-time buyer look like one who reorders the same
//! day and is never overdue).

use std::path::Path;

use chrono::{Duration, NaiveDate};
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::{
    Evaluation, ModelFile, Scores, Source, ValidChurnTrainParams, evaluate as measure, model_file,
    predict_rows, scores, select_rows, sha256_of, stratified_holdout, train_and_measure,
};
use crate::error::{Error, Result};
use crate::features::{
    self,
    bridge::{Encoder, Note},
};
use crate::olap::{self, EngineOptions};
use crate::warehouse::{Warehouse, tables};

/// Mart columns that are not features.
pub(crate) const NOT_FEATURES: [&str; 7] = [
    "customer_id",
    "as_of",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "churned",
];

/// The label windows (see [`ValidChurnTrainParams::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lookback_days: i64,
    pub horizon_days: i64,
}

impl Window {
    /// Both windows between 1 and 3650 days.
    pub(super) fn check(&self) -> Result<()> {
        for (key, days) in [
            ("lookback_days", self.lookback_days),
            ("horizon_days", self.horizon_days),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(Error::param(
                    key,
                    format!("{days} is out of range; 1 to 3650 days"),
                ));
            }
        }
        Ok(())
    }
}

/// The latest cutoff whose whole horizon lies inside the data.
pub async fn default_cutoff(ctx: &SessionContext, w: Window) -> Result<NaiveDate> {
    let end = features::default_as_of(ctx).await?;
    Ok(end - Duration::days(w.horizon_days))
}

/// Refuses a cutoff whose horizon runs past the data: its labels would call customers
/// churned only because their next purchase is not loaded yet.
async fn check_horizon(ctx: &SessionContext, cutoff: NaiveDate, w: Window) -> Result<()> {
    let end = features::default_as_of(ctx).await?;
    if cutoff + Duration::days(w.horizon_days) > end {
        return Err(Error::param(
            "cutoff",
            format!(
                "{cutoff} is too late: its {}-day horizon runs to {}, but the order lines end \
                 on {}; the latest cutoff with complete labels is {}",
                w.horizon_days,
                cutoff + Duration::days(w.horizon_days - 1),
                end - Duration::days(1),
                end - Duration::days(w.horizon_days)
            ),
        ));
    }
    Ok(())
}

/// The label windows of a warehouse model; a file model is refused with `hint`.
fn model_window(model: &ModelFile, key: &str, hint: &str) -> Result<Window> {
    match (model.source.lookback_days, model.source.horizon_days) {
        (Some(lookback_days), Some(horizon_days)) => Ok(Window {
            lookback_days,
            horizon_days,
        }),
        _ => Err(Error::param(
            key,
            format!("this model was trained on a file; {hint}"),
        )),
    }
}

/// The mart as of `cutoff` restricted to customers active in the look-back window, with
/// `churned` (no purchase in the horizon) when `label` is set; rows by customer id.
pub async fn labelled_mart(
    ctx: &SessionContext,
    cutoff: NaiveDate,
    w: Window,
    label: bool,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    labelled_with(ctx, cutoff, w, label, &mut None).await
}

/// [`labelled_mart`] with the web columns from `events`, as [`features::with_web`] takes
/// them (training reads the marts at two cutoffs, the later first).
async fn labelled_with(
    ctx: &SessionContext,
    cutoff: NaiveDate,
    w: Window,
    label: bool,
    events: &mut Option<crate::web::stream::Stream>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    // One query, the mart as a CTE, so that it runs wherever the session's engine is (a
    // cluster cannot read a table held in this process's memory); the web columns are added
    // to its rows, before `churned`.
    let view = format!("WITH m AS ({}) ", features::mart_sql(cutoff, None));
    let end = cutoff + Duration::days(w.horizon_days);
    let sql = if label {
        format!(
            "{view}SELECT m.*, b.customer_id IS NULL AS churned FROM m
             LEFT JOIN (SELECT DISTINCT customer_id FROM fact_sales
                        WHERE NOT is_return AND customer_id IS NOT NULL
                          AND invoice_ts >= TIMESTAMP '{cutoff} 00:00:00'
                          AND invoice_ts < TIMESTAMP '{end} 00:00:00') b
               ON b.customer_id = m.customer_id
             WHERE m.recency_days <= {lb} ORDER BY m.customer_id",
            lb = w.lookback_days
        )
    } else {
        format!(
            "{view}SELECT * FROM m WHERE recency_days <= {} ORDER BY customer_id",
            w.lookback_days
        )
    };
    features::with_web(ctx, cutoff, &sql, usize::from(label), events).await
}

fn churned(batches: &[RecordBatch], schema: &Schema) -> Result<Vec<bool>> {
    let idx = schema.index_of("churned")?;
    let mut y = Vec::new();
    for b in batches {
        let c = b
            .column(idx)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| Error::Internal("churned is not boolean".into()))?;
        y.extend((0..c.len()).map(|i| c.value(i)));
    }
    Ok(y)
}

/// What training on the warehouse needs.
#[derive(Debug, Clone)]
pub struct TrainWarehouse<'a> {
    /// The test cutoff (default: [`default_cutoff`]); training happens at cutoff − horizon.
    pub cutoff: Option<NaiveDate>,
    /// The windows, the tree, and a training sample of about this many customers (see the
    /// module doc).
    pub params: &'a ValidChurnTrainParams,
}

/// Trains at cutoff − horizon and measures at the cutoff (see the module doc).
pub async fn train(
    wh_root: &Path,
    t: &TrainWarehouse<'_>,
    engine: &EngineOptions,
) -> Result<(ModelFile, Vec<Note>)> {
    let p = t.params;
    let window = p.window();
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let clock = std::time::Instant::now();
    let lap =
        |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "churn train");
    let ctx = olap::session(&wh, engine).await?;
    let cutoff = match t.cutoff {
        Some(c) => {
            check_horizon(&ctx, c, window).await?;
            c
        }
        None => default_cutoff(&ctx, window).await?,
    };
    let train_cutoff = cutoff - Duration::days(window.horizon_days);
    let mut events = None;
    let (test_schema, test_batches) =
        labelled_with(&ctx, cutoff, window, true, &mut events).await?;
    let (schema, batches) = labelled_with(&ctx, train_cutoff, window, true, &mut events).await?;
    drop(events); // (the tree's fit does not need them)
    lap("labelled marts");
    let y = churned(&batches, &schema)?;
    let y_test = churned(&test_batches, &test_schema)?;
    if y.is_empty() || y_test.is_empty() {
        return Err(Error::NotFound {
            what: "active customers at cutoff",
            name: (if y.is_empty() { train_cutoff } else { cutoff }).to_string(),
            hint: ": choose a later --cutoff or a longer --lookback-days".into(),
        });
    }
    let (encoder, mut notes) = Encoder::fit(&schema, &batches, &NOT_FEATURES)?;
    let source = format!("warehouse {} at {train_cutoff}", wh_root.display());
    let (x, more) = encoder.transform(&schema, &batches, &source)?;
    notes.extend(more);
    let test_source = format!("warehouse {} at {cutoff}", wh_root.display());
    let (x_test, more) = encoder.transform(&test_schema, &test_batches, &test_source)?;
    notes.extend(
        more.into_iter()
            .map(|n| n.about(&format!("test at {cutoff}"))),
    );
    lap("encoded");
    let population = y.len();
    let (x, y) = match p.train_sample() {
        Some(n) if n < population => {
            let pick = stratified_holdout(&y, n as f64 / population as f64, p.seed());
            let rows: Vec<usize> = (0..population).filter(|&i| pick[i]).collect();
            let y: Vec<bool> = rows.iter().map(|&i| y[i]).collect();
            (select_rows(&x, &rows), y)
        }
        _ => (x, y),
    };
    let (model, metrics) =
        train_and_measure(p.tree(), &x, &y, Some((x_test, y_test)), p.cv(), p.seed())?;
    lap("fitted and measured");
    let src = Source {
        input: source,
        id_column: "customer_id".into(),
        label_column: "churned".into(),
        rows: y.len() as u64,
        training_data_sha256: sha256_of(&x, &y),
        cutoff: Some(train_cutoff),
        lookback_days: Some(window.lookback_days),
        horizon_days: Some(window.horizon_days),
        test_input: None,
        sampled_from: (y.len() < population).then_some(population as u64),
    };
    Ok((
        model_file(src, encoder, model, p.tree(), p.seed(), metrics),
        notes,
    ))
}

/// The scores of the customers active as of `as_of` (default: all the data), written as
/// `churn_scores` in one commit.
pub async fn score(
    wh_root: &Path,
    model: &ModelFile,
    as_of: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<Scores> {
    let window = model_window(model, "model", "score a file with --input and --out")?;
    let (lock, wh, ctx, as_of) =
        features::open_as_of(wh_root, "churn score", as_of, engine).await?;
    let (schema, batches) = labelled_mart(&ctx, as_of, window, false).await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::NotFound {
            what: "customers active in the look-back window as of",
            name: as_of.to_string(),
            hint: format!(" (the model's look-back is {} days)", window.lookback_days),
        });
    }
    let source = format!("warehouse {} as of {as_of}", wh_root.display());
    let (x, notes) = model.encoder.transform(&schema, &batches, &source)?;
    let idx = schema.index_of("customer_id")?;
    let ids: Vec<&dyn Array> = batches.iter().map(|b| b.column(idx).as_ref()).collect();
    let ids = datafusion::arrow::compute::cast(
        &datafusion::arrow::compute::concat(&ids)?,
        &DataType::Utf8,
    )?;
    let scored = scores(model, "customer_id", ids, &x, Some(as_of), notes)?;
    let batch = &scored.batch;
    let mut tx = wh.begin(&lock);
    tx.replace_with(tables::CHURN_SCORES, batch)?;
    Warehouse::commit(tx, &format!("churn scores as of {as_of}"))?;
    Ok(scored)
}

/// Measures a warehouse model on the labels at `cutoff` (default: its own held-out cutoff,
/// one horizon after its training cutoff), which must have its whole horizon inside the data.
pub async fn evaluate(
    wh_root: &Path,
    model: &ModelFile,
    cutoff: Option<NaiveDate>,
    engine: &EngineOptions,
) -> Result<Evaluation> {
    let window = model_window(
        model,
        "model",
        "evaluate it on a labelled file with --input",
    )?;
    let wh = Warehouse::open(wh_root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    let cutoff = match (cutoff, model.source.cutoff) {
        (Some(c), _) => c,
        (None, Some(trained)) => trained + Duration::days(window.horizon_days),
        (None, None) => default_cutoff(&ctx, window).await?,
    };
    check_horizon(&ctx, cutoff, window).await?;
    let (schema, batches) = labelled_mart(&ctx, cutoff, window, true).await?;
    let y = churned(&batches, &schema)?;
    if y.is_empty() {
        return Err(Error::NotFound {
            what: "active customers at cutoff",
            name: cutoff.to_string(),
            hint: ": choose a later --cutoff".into(),
        });
    }
    let source = format!("warehouse {} at {cutoff}", wh_root.display());
    let (x, notes) = model.encoder.transform(&schema, &batches, &source)?;
    let p = predict_rows(model, &x).0;
    Ok(Evaluation {
        data: format!("{} customers active at {cutoff}", y.len()),
        cutoff: Some(cutoff),
        metrics: measure(&p, &y, model.threshold),
        notes,
    })
}
