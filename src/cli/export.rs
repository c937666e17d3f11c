//! `ecrm export segment|churn|recommendations|value|uplift`: a selection and a destination, checked
//! together ([`ExportParams::check`]), then the file and a summary on stderr.

use clap::{Args, Subcommand};

use super::Context;
use crate::error::Result;
use crate::export::{
    self, ChurnSelection, Destination, ExportParams, RecommendationSelection, SegmentSelection,
    Selection, UpliftSelection, ValueSelection,
};

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Export one segment's customers, filtered by consent and a suppression list; a summary
    /// goes to stderr.
    Segment(ExportArgs<SegmentSelection>),
    /// Export customers from table churn_scores, riskiest first, filtered by risk band,
    /// probability, consent and a suppression list; a summary goes to stderr.
    Churn(ExportArgs<ChurnSelection>),
    /// Export table recommendations (from `ecrm basket recommend`) by customer and rank,
    /// filtered by consent and a suppression list; a summary goes to stderr.
    Recommendations(ExportArgs<RecommendationSelection>),
    /// Export table customer_value (from `ecrm clv score`), most valuable first, filtered by
    /// value decile, P(alive), consent and a suppression list; a summary goes to stderr.
    Value(ExportArgs<ValueSelection>),
    /// Export the persuadable customers of table uplift_scores (from `ecrm campaign uplift
    /// score`), most persuadable first, filtered by minimum uplift, consent and a
    /// suppression list; never a sleeping dog. A summary goes to stderr.
    Uplift(ExportArgs<UpliftSelection>),
}

/// What to select, and where it goes.
#[derive(Debug, Args)]
pub struct ExportArgs<S: Args> {
    #[command(flatten)]
    pub selection: S,
    #[command(flatten)]
    pub to: Destination,
    /// Consent as of this date (YYYY-MM-DD): events before it count. Default: every event.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
}

/// Runs one `ecrm export`.
pub fn run(what: ExportWhat, cx: &Context<'_>) -> Result<()> {
    let as_of = match &what {
        ExportWhat::Segment(a) => &a.as_of,
        ExportWhat::Churn(a) => &a.as_of,
        ExportWhat::Recommendations(a) => &a.as_of,
        ExportWhat::Value(a) => &a.as_of,
        ExportWhat::Uplift(a) => &a.as_of,
    };
    let engine = crate::olap::EngineOptions {
        as_of: super::date("as_of", as_of.as_deref())?.or(cx.engine.as_of),
        ..cx.engine.clone()
    };
    let params = match what {
        ExportWhat::Segment(a) => ExportParams {
            selection: Selection::Segment(a.selection),
            to: a.to,
        },
        ExportWhat::Churn(a) => ExportParams {
            selection: Selection::Churn(a.selection),
            to: a.to,
        },
        ExportWhat::Recommendations(a) => ExportParams {
            selection: Selection::Recommendations(a.selection),
            to: a.to,
        },
        ExportWhat::Value(a) => ExportParams {
            selection: Selection::Value(a.selection),
            to: a.to,
        },
        ExportWhat::Uplift(a) => ExportParams {
            selection: Selection::Uplift(a.selection),
            to: a.to,
        },
    }
    .check()?;
    let s = cx.block(export::export(&cx.wh_root, &params, &engine))?;
    let consent = match params.require_consent() {
        Some(export::Channel::Email) => "no e-mail consent",
        Some(export::Channel::Phone) => "no phone consent",
        None => "no consent (not required)",
    };
    let (noun, top) = match params.selection() {
        Selection::Segment(_) => ("customers in the segment", String::new()),
        Selection::Churn(_) => (
            "customers selected",
            format!(", {} beyond --top", s.beyond_top),
        ),
        Selection::Recommendations(_) => ("rows selected", String::new()),
        Selection::Value(_) | Selection::Uplift(_) => (
            "customers selected",
            format!(", {} beyond --top", s.beyond_top),
        ),
    };
    eprintln!(
        "{}: {} {noun}, {} dropped for {consent}, {} dropped as suppressed{top}, {} written to {}",
        s.selection,
        s.selected,
        s.no_consent,
        s.suppressed,
        s.written,
        params.out().display()
    );
    Ok(())
}
