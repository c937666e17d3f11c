//! Campaigns on the command line: `ecrm campaign report`, every treatment arm of a
//! randomised test against its control arm, printed in any `--format`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Context, FormatArgs};
use crate::campaign::evaluate::{self, EvaluateParams, TestColumns};
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum CampaignAction {
    /// What a randomised test caused: per treatment arm and outcome (and per member of
    /// --by), both arms' sizes and means, rates with Wilson intervals, the difference with
    /// Newcombe's interval (rates) or Welch's (amounts), Welch's interval for either, the
    /// ratio, the two-sided p-value and the incremental responders or amount.
    Report(ReportArgs),
}

/// `ecrm campaign report`'s options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The test's table (Parquet or CSV), one row per customer in the test.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The column naming each row's arm.
    #[arg(long, value_name = "COL")]
    pub arm: String,
    /// The control arm's value in --arm; every other value is a treatment.
    #[arg(long, value_name = "VALUE")]
    pub control: String,
    /// Outcome columns, comma-separated: 0/1 columns are rates, others amounts.
    #[arg(long, value_name = "COL", value_delimiter = ',', required = true)]
    pub outcome: Vec<String>,
    /// Split the results by this column's values.
    #[arg(long, value_name = "COL")]
    pub by: Option<String>,
    #[command(flatten)]
    pub params: EvaluateParams,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn run(action: CampaignAction, cx: &Context<'_>) -> Result<()> {
    match action {
        CampaignAction::Report(a) => report(a, cx),
    }
}

fn report(a: ReportArgs, cx: &Context<'_>) -> Result<()> {
    a.format.check_printable("campaign report")?;
    let cols = TestColumns {
        arm: &a.arm,
        control: &a.control,
        outcomes: &a.outcome,
        by: a.by.as_deref(),
    };
    let rows = cx.block(evaluate::evaluate_file(
        &a.input, &cols, &a.params, &cx.engine,
    ))?;
    let batch = evaluate::to_batch(&rows, a.by.as_deref())?;
    a.format.print(&batch.schema(), &[batch])
}
