//! Campaigns on the command line: `ecrm campaign report`, what the warehouse's campaigns
//! caused against their control arms (into table campaign_results), or every treatment arm
//! of a randomised test in a file against its control arm; printed in any `--format`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use datafusion::arrow::array::RecordBatch;

use super::{Context, FormatArgs, date, say};
use crate::campaign::evaluate::{self, TestColumns};
use crate::campaign::results::{self, CampaignReportParams};
use crate::campaign::uplift::{UpliftModelFile, UpliftTrainParams};
use crate::campaign::uplift_data::{self, TestFile};
use crate::error::Result;
use crate::warehouse::files::{self, FileFormat};
use crate::warehouse::tables;

#[derive(Debug, Subcommand)]
pub enum CampaignAction {
    /// What campaigns caused, against their control arms. On the warehouse: per campaign
    /// (and member of --by) contacts, responses, buyers and revenue in each contact's window
    /// in both arms, cost and ROI, and the effect with its intervals, p-values and
    /// incremental buyers, revenue and ROI, into table campaign_results; prints its main
    /// columns. With --input: every treatment arm of a randomised test against the control,
    /// outcome by outcome.
    Report(ReportArgs),
    /// Uplift models: whom a campaign persuades.
    Uplift {
        #[command(subcommand)]
        action: UpliftAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpliftAction {
    /// Train an uplift model on a randomised test (two trees, or one on the transformed
    /// class) and measure it on held-out rows: Qini AUC and uplift AUC as scikit-uplift
    /// computes them, and uplift by decile. Writes the model file.
    Train(Box<UpliftTrainArgs>),
    /// Score rows with an uplift model: uplift, p_treated, p_control and the group
    /// (persuadable, sure thing, lost cause, sleeping dog).
    Score(UpliftScoreArgs),
}

/// `ecrm campaign uplift train`'s options.
#[derive(Debug, Args)]
pub struct UpliftTrainArgs {
    #[command(flatten)]
    pub params: UpliftTrainParams,
    /// Warehouse: the campaigns to learn from (comma-separated or repeated). Default: every
    /// campaign with a control arm.
    #[arg(
        long,
        value_name = "ID",
        value_delimiter = ',',
        conflicts_with = "input"
    )]
    pub campaign: Vec<String>,
    /// Warehouse: days after a contact in which a purchase is the outcome. Default: the
    /// campaign's response window, else 14.
    #[arg(long, value_name = "N", conflicts_with = "input")]
    pub window_days: Option<u32>,
    /// Warehouse: contacts whose window ended before this date (YYYY-MM-DD). Default: the
    /// day after the last order line.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    /// A randomised test's table (Parquet or CSV), one row per customer, instead of the
    /// warehouse's campaigns.
    #[arg(long, value_name = "FILE", requires_all = ["arm", "control", "outcome"])]
    pub input: Option<PathBuf>,
    /// With --input: the column naming each row's arm.
    #[arg(long, value_name = "COL", requires = "input")]
    pub arm: Option<String>,
    /// With --input: the control arm's value in --arm.
    #[arg(long, value_name = "VALUE", requires = "input")]
    pub control: Option<String>,
    /// With --input: the treatment arm's value; default every other value (with it, rows
    /// of other arms are left out).
    #[arg(long, value_name = "VALUE", requires = "input")]
    pub treatment: Option<String>,
    /// With --input: the binary outcome column (1/0, true/false, yes/no).
    #[arg(long, value_name = "COL", requires = "input")]
    pub outcome: Option<String>,
    /// With --input: feature columns, comma-separated; default every column but the arm,
    /// the outcome and the id. Name them when the table holds other outcomes: they would
    /// leak the answer.
    #[arg(long, value_name = "COL", value_delimiter = ',', requires = "input")]
    pub features: Option<Vec<String>>,
    /// With --input: an id column carried into scores. Default: customer_id when the table
    /// has it.
    #[arg(long, value_name = "COL", requires = "input")]
    pub id: Option<String>,
    /// With --input: measure on this table (same layout) instead of a hold-out.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub test: Option<PathBuf>,
    /// Where to write the model (JSON).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
}

/// `ecrm campaign uplift score`'s options.
#[derive(Debug, Args)]
pub struct UpliftScoreArgs {
    /// The model file.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// A table to score (the model's feature columns) instead of the warehouse's customers.
    #[arg(long, value_name = "FILE", requires = "out")]
    pub input: Option<PathBuf>,
    /// With --input: where to write the scores (format from the extension), one row per
    /// input row.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub out: Option<PathBuf>,
    /// Warehouse: score the feature mart as of this date (YYYY-MM-DD). Default: the day after
    /// the last order line.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
}

/// `ecrm erase`'s options.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// A customer id to erase (repeatable).
    #[arg(long, value_name = "ID", required_unless_present = "file")]
    pub customer: Vec<String>,
    /// A file of customer ids to erase, one per line.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `ecrm erase`: the erasure, then what changed on stdout.
pub fn erase(a: EraseArgs, cx: &Context<'_>) -> Result<()> {
    let mut ids = a.customer.clone();
    if let Some(f) = &a.file {
        ids.extend(crate::erase::read_ids(f)?);
    }
    let e = crate::erase::erase(&cx.wh_root, &ids)?;
    let mut out = std::io::stdout().lock();
    let per_table: Vec<String> = e.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    say(
        &mut out,
        format_args!(
            "erased {} customers: rows changed {}; {} run manifests scrubbed",
            e.customers,
            per_table.join(", "),
            e.manifests
        ),
    )
}

/// `ecrm consent`'s options.
#[derive(Debug, Args)]
pub struct ConsentArgs {
    /// Count events before this date (YYYY-MM-DD). Default: the day after the last order
    /// line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm consent`: consent per channel by month on stdout; the treatment contacts made
/// without consent at their time on stderr (none, for contacts ecrm exported).
pub fn consent(a: ConsentArgs, cx: &Context<'_>) -> Result<()> {
    a.format.check_printable("consent")?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let s = cx.block(async {
        let wh = crate::warehouse::Warehouse::open(&cx.wh_root)?;
        crate::campaign::consent::summary(&wh, &cx.engine, as_of).await
    })?;
    let n = s.contacted_without_consent.num_rows();
    eprintln!("{n} treatment contacts were made without consent on their channel at the time");
    if n > 0 {
        let mut err = std::io::stderr().lock();
        let shown = s.contacted_without_consent.slice(0, n.min(10));
        crate::cli::output::write_batches(
            &mut err,
            crate::cli::output::Format::Csv,
            &shown.schema(),
            std::slice::from_ref(&shown),
            None,
        )?;
    }
    a.format.print(&s.by_month.schema(), &[s.by_month])
}

/// `ecrm campaign report`'s options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub params: CampaignReportParams,
    /// Warehouse: contacts and order lines before this date (YYYY-MM-DD). Default: the day
    /// after the last order line.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    /// A randomised test's table (Parquet or CSV), one row per customer, instead of the
    /// warehouse's campaigns.
    #[arg(long, value_name = "FILE", requires_all = ["arm", "control", "outcome"],
          conflicts_with_all = ["campaign", "window_days"])]
    pub input: Option<PathBuf>,
    /// With --input: the column naming each row's arm.
    #[arg(long, value_name = "COL", requires = "input")]
    pub arm: Option<String>,
    /// With --input: the control arm's value in --arm; every other value is a treatment.
    #[arg(long, value_name = "VALUE", requires = "input")]
    pub control: Option<String>,
    /// With --input: outcome columns, comma-separated (0/1 columns are rates, others
    /// amounts).
    #[arg(long, value_name = "COL", value_delimiter = ',', requires = "input")]
    pub outcome: Vec<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn run(action: CampaignAction, cx: &Context<'_>) -> Result<()> {
    match action {
        CampaignAction::Report(a) => report(a, cx),
        CampaignAction::Uplift {
            action: UpliftAction::Train(a),
        } => uplift_train(*a, cx),
        CampaignAction::Uplift {
            action: UpliftAction::Score(a),
        } => uplift_score(a, cx),
    }
}

/// `ecrm campaign uplift train`: parameters checked, the model trained and written, its
/// measures printed.
fn uplift_train(a: UpliftTrainArgs, cx: &Context<'_>) -> Result<()> {
    a.params.check()?;
    let (model, notes) = match &a.input {
        Some(input) => {
            let f = TestFile {
                input,
                arm: a.arm.as_deref().unwrap_or_default(),
                control: a.control.as_deref().unwrap_or_default(),
                treatment: a.treatment.as_deref(),
                outcome: a.outcome.as_deref().unwrap_or_default(),
                features: a.features.as_deref(),
                id: a.id.as_deref(),
            };
            cx.block(uplift_data::train_file(
                &f,
                a.test.as_deref(),
                &a.params,
                &cx.engine,
            ))?
        }
        None => {
            let t = uplift_data::TrainCampaigns {
                campaigns: &a.campaign,
                window_days: a.window_days,
                as_of: date("as_of", a.as_of.as_deref())?,
            };
            cx.block(uplift_data::train_campaigns(
                &cx.wh_root,
                &t,
                &a.params,
                &cx.engine,
            ))?
        }
    };
    for n in &notes {
        n.log(None);
    }
    files::write_json(&a.model, &model)?;
    print_uplift(&model, &a.model)
}

/// The trained model's summary, measures and deciles on stdout.
fn print_uplift(model: &UpliftModelFile, path: &std::path::Path) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &model.source;
    let m = &model.metrics;
    let score = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.6}"));
    say(
        &mut out,
        format_args!(
            "model written to {} ({}, {} rows: {} treated, {} control; {} features)",
            path.display(),
            model.method,
            s.rows,
            s.treated,
            s.rows - s.treated,
            model.feature_names.len()
        ),
    )?;
    say(
        &mut out,
        format_args!(
            "on {} held-out rows: Qini AUC {}, uplift AUC {}",
            m.test_rows,
            score(m.qini_auc),
            score(m.uplift_auc)
        ),
    )?;
    say(
        &mut out,
        format_args!("decile  treated  control  treated rate  control rate  uplift   predicted"),
    )?;
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.4}", v));
    for d in &m.deciles {
        say(
            &mut out,
            format_args!(
                "{:>6}  {:>7}  {:>7}  {:>12}  {:>12}  {:>7}  {:>9.4}",
                d.decile,
                d.treated,
                d.control,
                pct(d.treated_rate),
                pct(d.control_rate),
                pct(d.uplift),
                d.mean_predicted_uplift
            ),
        )?;
    }
    Ok(())
}

/// `ecrm campaign uplift score`: one row of scores per input row, into a file.
fn uplift_score(a: UpliftScoreArgs, cx: &Context<'_>) -> Result<()> {
    let model = UpliftModelFile::read(&a.model)?;
    let (batch, notes, target) = match (&a.input, &a.out) {
        (Some(input), Some(out)) => {
            let (batch, notes) = cx.block(uplift_data::score_file(&model, input, &cx.engine))?;
            files::write_batches_file(
                out,
                FileFormat::for_path(out),
                &batch.schema(),
                std::slice::from_ref(&batch),
            )?;
            (batch, notes, out.display().to_string())
        }
        _ => {
            let as_of = date("as_of", a.as_of.as_deref())?;
            let (batch, as_of, notes) = cx.block(uplift_data::score_warehouse(
                &cx.wh_root,
                &model,
                as_of,
                &cx.engine,
            ))?;
            (
                batch,
                notes,
                format!("table {} as of {as_of}", tables::UPLIFT_SCORES),
            )
        }
    };
    for n in &notes {
        n.log(None);
    }
    let mut out = std::io::stdout().lock();
    say(
        &mut out,
        format_args!("{} rows scored into {target}", batch.num_rows()),
    )
}

/// The columns `ecrm campaign report` prints of the warehouse's results.
const PRINTED: [&str; 15] = [
    "contacted",
    "held_out",
    "response_rate",
    "buyer_rate",
    "control_buyer_rate",
    "buyer_rate_difference",
    "buyer_rate_difference_low",
    "buyer_rate_difference_high",
    "buyer_p_value",
    "incremental_buyers",
    "incremental_revenue",
    "cost",
    "roi",
    "incremental_roi",
    "note",
];

fn report(a: ReportArgs, cx: &Context<'_>) -> Result<()> {
    a.format.check_printable("campaign report")?;
    a.params.check()?;
    if let Some(input) = &a.input {
        let cols = TestColumns {
            arm: a.arm.as_deref().unwrap_or_default(),
            control: a.control.as_deref().unwrap_or_default(),
            outcomes: &a.outcome,
            by: a.params.by.as_deref(),
        };
        let rows = cx.block(evaluate::evaluate_file(input, &cols, &a.params, &cx.engine))?;
        let batch = evaluate::to_batch(&rows, a.params.by.as_deref())?;
        return a.format.print(&batch.schema(), &[batch]);
    }
    a.params.level()?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let (batch, as_of) = cx.block(results::build(&cx.wh_root, &a.params, as_of, &cx.engine))?;
    tracing::info!(rows = batch.num_rows(), %as_of, "table {} written", tables::CAMPAIGN_RESULTS);
    let printed = printed_columns(&batch, a.params.by.as_deref())?;
    a.format.print(&printed.schema(), &[printed])
}

/// The campaign, the split's member and the [`PRINTED`] columns of the results.
fn printed_columns(batch: &RecordBatch, by: Option<&str>) -> Result<RecordBatch> {
    let schema = batch.schema();
    let names = ["campaign_id"].into_iter().chain(by).chain(PRINTED);
    let indices = names
        .map(|n| schema.index_of(n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(batch.project(&indices)?)
}
