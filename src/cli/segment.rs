//! `ecrm features` and `ecrm segment`: the customer feature mart and segmentation, over the
//! warehouse or, for segment, over any file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::{Context, FormatArgs, date};
use crate::error::{Error, Result};
use crate::features;
use crate::segment::{self, SegmentParams};
use crate::warehouse::tables;

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Use only order lines before this date (YYYY-MM-DD). Default: the day after the last
    /// order line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Rebuild the feature mart as of this date first (YYYY-MM-DD). Default: use the
    /// customer_features table (built as of the day after the last order line if missing).
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub params: SegmentParams,
    /// Cluster this Parquet or CSV file instead of the warehouse's customers.
    #[arg(long, requires = "out")]
    pub input: Option<PathBuf>,
    /// With --input: write one `segment` label per input row, in input order, here
    /// (Parquet, CSV, JSON or NDJSON by extension).
    #[arg(long, requires = "input")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `ecrm features`: the mart as of a date, and a one-row summary.
pub fn features(a: FeaturesArgs, cx: &Context<'_>) -> Result<()> {
    a.format.check_printable("features")?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    let mart = cx.block(features::build(&cx.wh_root, as_of, &cx.engine))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("as_of", DataType::Utf8, false),
        Field::new("customers", DataType::UInt64, false),
        Field::new("returns_only_customers_left_out", DataType::UInt64, false),
        Field::new("guest_lines_left_out", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![tables::CUSTOMER_FEATURES])),
            Arc::new(StringArray::from(vec![mart.as_of.to_string()])),
            Arc::new(UInt64Array::from(vec![mart.customers])),
            Arc::new(UInt64Array::from(vec![mart.returns_only])),
            Arc::new(UInt64Array::from(vec![mart.guest_lines])),
        ],
    )?;
    a.format.print(&schema, &[batch])
}

/// `ecrm segment`: over the warehouse, or over a file with --input.
pub fn segment(a: SegmentArgs, cx: &Context<'_>) -> Result<()> {
    if a.input.is_none() {
        a.format.check_printable("segment")?;
    }
    let params = a.params.check()?;
    let as_of = date("as_of", a.as_of.as_deref())?;
    if let (Some(input), Some(file)) = (&a.input, &a.out) {
        let run = cx.block(segment::cluster_file(input, file, &params, &cx.engine))?;
        report_k(&run.fit, cx.quiet);
        return say_file_run(&run, file, params.params().scale);
    }
    let run = cx.block(segment::segment_warehouse(
        &cx.wh_root,
        as_of,
        &params,
        &cx.engine,
    ))?;
    if let Some(fit) = &run.fit {
        report_k(fit, cx.quiet);
        if let Some(inertia) = fit.clustering.inertia
            && !cx.quiet
        {
            let sample = match fit.trained_on {
                Some(n) => format!(
                    " (fitted on a sample of {n} of {} customers)",
                    fit.clustering.labels.len()
                ),
                None => String::new(),
            };
            eprintln!(
                "{} on {}: k={}, inertia {inertia:.6e} in the scaled space{sample}",
                run.method.name(),
                run.features.join(", "),
                fit.clustering.k
            );
        }
    }
    let (schema, batches) = &run.profiles;
    a.format.print(schema, batches)
}

/// With k auto, each k's inertia and sampled silhouette, and why one was chosen (stderr).
fn report_k(fit: &segment::Fit, quiet: bool) {
    if quiet || fit.k_scores.is_empty() {
        return;
    }
    eprintln!("k  inertia  silhouette (sampled)");
    for s in &fit.k_scores {
        eprintln!("{:<2} {:.6e}  {:.4}", s.k, s.inertia, s.silhouette);
    }
    if let Some(why) = &fit.k_reason {
        eprintln!("{why}");
    }
}

/// What clustering a file did, on one line of stdout.
fn say_file_run(
    run: &segment::FileRun,
    file: &std::path::Path,
    scale: segment::Scale,
) -> Result<()> {
    let logged: Vec<&str> = run
        .features
        .iter()
        .zip(&run.fit.scaler.logged)
        .filter(|(_, l)| **l)
        .map(|(f, _)| f.as_str())
        .collect();
    if !logged.is_empty() {
        tracing::info!("log-transformed (skewed): {}", logged.join(", "));
    }
    let c = &run.fit.clustering;
    let fitted = match run.fit.trained_on {
        Some(n) => format!(" (fitted on a sample of {n})"),
        None => String::new(),
    };
    let mut line = format!(
        "{} rows{fitted}, {} features, {} clusters written to {}",
        run.rows,
        run.features.len(),
        c.k,
        file.display()
    );
    if let Some(inertia) = c.inertia {
        let space = if scale == segment::Scale::None {
            "in the original units (= the scaled space, --scale none)"
        } else {
            "in the scaled space"
        };
        line.push_str(&format!("; inertia {inertia:.6e} {space}"));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| Error::io("<stdout>", e))
}
