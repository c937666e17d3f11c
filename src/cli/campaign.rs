//! Campaigns on the command line: `ecrm campaign report`, what the warehouse's campaigns
//! caused against their control arms (into table campaign_results), or every treatment arm
//! of a randomised test in a file against its control arm; printed in any `--format`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use datafusion::arrow::array::RecordBatch;

use super::{Context, FormatArgs, date};
use crate::campaign::evaluate::{self, TestColumns};
use crate::campaign::results::{self, CampaignReportParams};
use crate::error::Result;
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
    }
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
