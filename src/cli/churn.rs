//! `ecrm churn train|score|evaluate`: parameters checked before any data is read, then the
//! model file written, the scores stored, or the evaluation printed.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Context, date};
use crate::churn::{self, ChurnTrainParams, RiskBand};
use crate::error::{Error, Result};
use crate::warehouse::files::{self, FileFormat};
use crate::warehouse::tables;

#[derive(Debug, Subcommand)]
pub enum ChurnAction {
    /// Train a churn tree: on the warehouse (labels at a cutoff, trained one horizon earlier
    /// and measured at the cutoff), or on a customer-level table with --input (measured on a
    /// seeded stratified 20% hold-out or --test FILE); --cv K adds stratified K-fold
    /// cross-validation. Writes the model file and prints the evaluation.
    Train(ChurnTrainArgs),
    /// Score with a model: the warehouse's active customers into table churn_scores, or with
    /// --input/--out a table, one row per input row in input order. Rows carry the id,
    /// churn_probability, risk_band and reasons.
    Score(ChurnScoreArgs),
    /// Measure a model on labelled data: a warehouse model at --cutoff, a file model on
    /// --input; by default on the model's own held-out data. Prints the evaluation; --out
    /// stores it as JSON.
    Evaluate(ChurnEvaluateArgs),
}

#[derive(Debug, Args)]
pub struct ChurnTrainArgs {
    /// Warehouse: the cutoff whose labels measure the model (YYYY-MM-DD). Default: the
    /// latest whose whole horizon lies inside the data.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub cutoff: Option<String>,
    #[command(flatten)]
    pub params: ChurnTrainParams,
    /// Train on this customer-level table (Parquet or CSV) instead of the warehouse.
    #[arg(long, requires_all = ["label", "id"])]
    pub input: Option<PathBuf>,
    /// With --input: the label column (Yes/No, true/false or 1/0).
    #[arg(long, requires = "input")]
    pub label: Option<String>,
    /// With --input: the id column (not a feature; carried into scores).
    #[arg(long, requires = "input")]
    pub id: Option<String>,
    /// With --input: measure the model on this labelled table (same columns) instead of a
    /// 20% hold-out; the model then trains on every input row.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub test: Option<PathBuf>,
    /// The model file to write (JSON).
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Debug, Args)]
pub struct ChurnScoreArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Warehouse: score the customers active as of this date (YYYY-MM-DD). Default: the day
    /// after the last order line.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    /// Score this table instead (it must have the model's columns).
    #[arg(long, requires = "out")]
    pub input: Option<PathBuf>,
    /// With --input: where to write the scores (Parquet, CSV, JSON or NDJSON by extension).
    #[arg(long, requires = "input")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChurnEvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Warehouse model: the cutoff of the labels (YYYY-MM-DD); its whole horizon must lie
    /// inside the data. Default: the model's held-out cutoff (one horizon after training).
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub cutoff: Option<String>,
    /// File model: a labelled table with the model's columns and label. Default: the
    /// model's --test file, or the hold-out of its training file re-drawn with its seed.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Also write the evaluation here, as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs one `ecrm churn` action.
pub fn run(action: ChurnAction, cx: &Context<'_>) -> Result<()> {
    match action {
        ChurnAction::Train(a) => train(a, cx),
        ChurnAction::Score(a) => score(a, cx),
        ChurnAction::Evaluate(a) => evaluate(a, cx),
    }
}

/// `ecrm churn train`: parameters checked first, then train, write the model, print the
/// evaluation.
fn train(a: ChurnTrainArgs, cx: &Context<'_>) -> Result<()> {
    let params = a.params.check()?;
    let cutoff = date("cutoff", a.cutoff.as_deref())?;
    let (model, notes) = match (&a.input, &a.label, &a.id) {
        (Some(input), Some(label), Some(id)) => {
            let t = churn::TrainFile {
                input,
                label,
                id,
                params: &params,
                test: a.test.as_deref(),
            };
            cx.block(churn::train_file(&t, &cx.engine))?
        }
        _ => {
            let t = churn::warehouse::TrainWarehouse {
                cutoff,
                params: &params,
            };
            cx.block(churn::warehouse::train(&cx.wh_root, &t, &cx.engine))?
        }
    };
    for n in &notes {
        n.log(None);
    }
    files::write_json(&a.model, &model)?;
    let mut out = std::io::stdout().lock();
    let sample = match model.source.sampled_from {
        Some(n) => format!(" sampled from {n}"),
        None => String::new(),
    };
    writeln!(
        out,
        "model written to {} ({} rows{sample}, {} features, {} leaves, depth {})",
        a.model.display(),
        model.source.rows,
        model.feature_names.len(),
        model.tree.leaves(),
        model.tree.depth()
    )
    .map_err(|e| Error::io("<stdout>", e))?;
    print_evaluation(&mut out, "held out", &model.metrics, &model, cx.quiet)
}

/// `ecrm churn score`: the warehouse's table `churn_scores`, or a file's rows to a file.
fn score(a: ChurnScoreArgs, cx: &Context<'_>) -> Result<()> {
    let as_of = date("as_of", a.as_of.as_deref())?;
    let model = churn::ModelFile::read(&a.model)?;
    let (scores, target) = match (&a.input, &a.out) {
        (Some(input), Some(out)) => {
            let s = cx.block(churn::score_file(&model, input, &cx.engine))?;
            files::write_batches_file(
                out,
                FileFormat::for_path(out),
                &s.batch.schema(),
                std::slice::from_ref(&s.batch),
            )?;
            (s, out.display().to_string())
        }
        _ => {
            let s = cx.block(churn::warehouse::score(
                &cx.wh_root,
                &model,
                as_of,
                &cx.engine,
            ))?;
            let day = s.as_of.map(|d| d.to_string()).unwrap_or_default();
            let target = format!("table {} as of {day}", tables::CHURN_SCORES);
            (s, target)
        }
    };
    for n in &scores.notes {
        n.log(None);
    }
    writeln!(
        std::io::stdout().lock(),
        "scored {} rows ({} high, {} medium, {} low risk) to {target}",
        scores.rows(),
        scores.band_count(RiskBand::High),
        scores.band_count(RiskBand::Medium),
        scores.band_count(RiskBand::Low)
    )
    .map_err(|e| Error::io("<stdout>", e))
}

/// `ecrm churn evaluate`: a model measured on labelled data, printed and optionally stored.
fn evaluate(a: ChurnEvaluateArgs, cx: &Context<'_>) -> Result<()> {
    let cutoff = date("cutoff", a.cutoff.as_deref())?;
    let model = churn::ModelFile::read(&a.model)?;
    if model.source.cutoff.is_none() && cutoff.is_some() {
        return Err(Error::param(
            "cutoff",
            "this model was trained on a file, which has no cutoff; evaluate it on a labelled \
             file with --input",
        ));
    }
    let e = if model.source.cutoff.is_some() && a.input.is_none() {
        cx.block(churn::warehouse::evaluate(
            &cx.wh_root,
            &model,
            cutoff,
            &cx.engine,
        ))?
    } else {
        cx.block(churn::evaluate_file(&model, a.input.as_deref(), &cx.engine))?
    };
    for n in &e.notes {
        n.log(None);
    }
    if let Some(path) = &a.out {
        let json = serde_json::json!({
            "model": a.model.display().to_string(),
            "model_training_data_sha256": model.source.training_data_sha256,
            "evaluation": e,
            "feature_importance": model.feature_importance,
            "rules": model.rules,
        });
        files::write_json(path, &json)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "model {} measured on {}", a.model.display(), e.data)
        .map_err(|e| Error::io("<stdout>", e))?;
    print_evaluation(&mut out, "measured on", &e.metrics, &model, cx.quiet)
}

/// Prints a model's metrics (row count after `rows`, "held out" or "measured on"; AUCs,
/// confusion at the threshold, cross-validation, gains by decile) and, unless quiet, its top
/// features and rules.
fn print_evaluation(
    out: &mut impl Write,
    rows: &str,
    m: &churn::Metrics,
    model: &churn::ModelFile,
    quiet: bool,
) -> Result<()> {
    let io = |e| Error::io("<stdout>", e);
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let c = &m.confusion;
    writeln!(
        out,
        "{rows} {} rows (churn rate {:.3}): ROC AUC {}  PR AUC {}  KS {:.4}",
        m.held_out_rows,
        m.base_rate,
        opt(m.roc_auc),
        opt(m.pr_auc),
        m.ks
    )
    .map_err(io)?;
    writeln!(
        out,
        "at threshold {}: accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  (TP {} FP {} TN {} FN {})",
        c.threshold, c.accuracy, c.precision, c.recall, c.f1,
        c.true_positives, c.false_positives, c.true_negatives, c.false_negatives
    )
    .map_err(io)?;
    if let (Some(k), Some(mean), Some(std)) = (m.cv_folds, m.cv_roc_auc_mean, m.cv_roc_auc_std) {
        writeln!(
            out,
            "{k}-fold stratified cross-validation: ROC AUC {mean:.4} ± {std:.4}"
        )
        .map_err(io)?;
    }
    writeln!(
        out,
        "decile  rows  churners  cumulative gain  lift  cumulative lift"
    )
    .map_err(io)?;
    for d in &m.gains {
        writeln!(
            out,
            "{:>6}  {:>4}  {:>8}  {:>15.3}  {:>4.2}  {:>15.2}",
            d.decile, d.rows, d.positives, d.cumulative_gain, d.lift, d.cumulative_lift
        )
        .map_err(io)?;
    }
    if !quiet {
        writeln!(out, "feature importance:").map_err(io)?;
        for (f, v) in model.feature_importance.iter().take(10) {
            writeln!(out, "  {v:.3}  {f}").map_err(io)?;
        }
        writeln!(out, "rules (highest churn first):").map_err(io)?;
        for r in model.rules.iter().take(10) {
            writeln!(out, "  {r}").map_err(io)?;
        }
    }
    Ok(())
}
