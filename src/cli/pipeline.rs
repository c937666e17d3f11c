//! `ecrm check`, `ecrm run`, `ecrm runs`, `ecrm report`: pipelines, their runs and their
//! reports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::{Context, FormatArgs, date};
use crate::error::{Error, Result};
use crate::pipeline::{self, Kind};
use crate::warehouse::runs::{Manifest, StageStatus};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// The run's point in time (YYYY-MM-DD): stages after ingest see order lines and contacts
    /// before it only. Default: the day after the last order line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Run only this stage; `STAGE+` also runs everything downstream of it. Repeatable.
    #[arg(long, value_name = "STAGE[+]")]
    pub select: Vec<String>,
    /// Ingest stages rebuild the warehouse from their files alone.
    #[arg(long)]
    pub full_refresh: bool,
    /// Continue run RUN_ID from the stages that did not succeed (same as-of date and
    /// selection; the pipeline file must be unchanged).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["as_of", "select", "full_refresh"])]
    pub resume: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where reports go.
    #[arg(long, default_value = "notebooks-out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The run to report (its as-of date and stage timings). Default: the latest run; with
    /// no runs, the warehouse as of the day after its last order line.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// The churn model to show. Default: the run's churn-train model, else
    /// <warehouse>/models/churn.json.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

/// `ecrm check`: the stages in run order with what each reads and writes.
pub fn check(file: &Path) -> Result<()> {
    let p = pipeline::Pipeline::load(file)?;
    let mut out = std::io::stdout().lock();
    plan(&mut out, &p).map_err(|e| Error::io("<stdout>", e))
}

fn plan(out: &mut impl Write, p: &pipeline::Pipeline) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: pipeline {:?} is valid: {} stages",
        p.file.display(),
        p.name,
        p.stages.len()
    )?;
    for (i, s) in p.stages.iter().enumerate() {
        let mut reads: Vec<String> = s.inputs.clone();
        reads.extend(s.inputs_if_built.iter().map(|t| format!("{t} (if built)")));
        let reads = if s.inputs.is_empty() {
            "files".to_string()
        } else {
            reads.join(", ")
        };
        writeln!(out, "{:>3}. {} ({})", i + 1, s.name, s.kind)?;
        writeln!(out, "       reads  {reads}")?;
        writeln!(out, "       writes {}", s.outputs.join(", "))?;
        let checks: usize = s.tests.iter().map(|t| t.checks.len()).sum();
        if checks > 0 {
            writeln!(out, "       tests  {checks} checks")?;
        }
    }
    Ok(())
}

/// `ecrm run`: the run, each stage's status and time, the report's path, and the run id as
/// the last line; the exit code the run calls for.
pub fn run(a: RunArgs, cx: &Context<'_>) -> Result<()> {
    let p = pipeline::Pipeline::load(&a.file)?;
    let opts = pipeline::run::RunOptions {
        warehouse: cx.global.warehouse_or(p.warehouse.as_deref()),
        as_of: date("as_of", a.as_of.as_deref())?,
        select: a.select,
        full_refresh: a.full_refresh,
        resume: a.resume,
        engine: cx.engine.clone(),
        progress: cx.progress(),
    };
    let outcome = cx.block(pipeline::run::run(&p, &opts))?;
    let m = &outcome.manifest;
    let mut out = std::io::stdout().lock();
    let io = |e| Error::io("<stdout>", e);
    if !cx.quiet {
        for s in &m.stages {
            let secs = s.seconds.map_or(String::new(), |t| format!("{t:>8.2} s"));
            let mem = s
                .peak_rss_mib
                .map_or(String::new(), |m| format!("{m:>7.0} MiB"));
            writeln!(out, "{:<14} {:<24} {secs} {mem}", s.status, s.name).map_err(io)?;
        }
        for s in m.stages.iter().filter(|s| s.kind == Kind::Report.name()) {
            if let Some(file) = s.metrics.get("file").and_then(|f| f.as_str()) {
                writeln!(out, "report {file}").map_err(io)?;
            }
        }
        writeln!(
            out,
            "run {} {} (as of {}); manifest {}",
            m.status,
            m.pipeline,
            m.as_of.as_deref().unwrap_or("-"),
            outcome.path.display()
        )
        .map_err(io)?;
    }
    // The last line on stdout is the run id, for schedulers.
    writeln!(out, "{}", m.run_id).map_err(io)?;
    drop(out);
    match outcome.exit_code() {
        0 => Ok(()),
        1 => Err(Error::QualityGate(format!(
            "run {}: data tests or gates failed (see {})",
            m.run_id,
            outcome.path.display()
        ))),
        _ => Err(Error::Pipeline {
            run_id: m.run_id.clone(),
            message: m
                .stages
                .iter()
                .filter(|s| s.status == StageStatus::Failed)
                .map(|s| {
                    format!(
                        "stage {} failed: {}",
                        s.name,
                        s.error.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// `ecrm runs`: one row per run, newest first.
pub fn runs(last: usize, f: &FormatArgs, cx: &Context<'_>) -> Result<()> {
    let runs = Manifest::list(&cx.wh_root, last)?;
    let text = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let names = [
        "run_id",
        "pipeline",
        "as_of",
        "status",
        "exit_code",
        "stages",
        "started_at",
        "seconds",
        "resumed_from",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let column = |f: &dyn Fn(&Manifest) -> String| text(runs.iter().map(f).collect());
    let cols = vec![
        column(&|m| m.run_id.clone()),
        column(&|m| m.pipeline.clone()),
        column(&|m| m.as_of.clone().unwrap_or_default()),
        column(&|m| m.status.to_string()),
        column(&|m| m.exit_code.map_or(String::new(), |c| c.to_string())),
        column(&stages_ok),
        column(&|m| m.started_at.clone()),
        column(&seconds),
        column(&|m| m.resumed_from.clone().unwrap_or_default()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    f.print(&schema, &[batch])
}

/// `4/5 ok`: the stages that succeeded (or were reused) of those selected.
fn stages_ok(m: &Manifest) -> String {
    let ok = m.stages.iter().filter(|s| s.status.is_ok()).count();
    let ran = m
        .stages
        .iter()
        .filter(|s| s.status != StageStatus::NotSelected)
        .count();
    format!("{ok}/{ran} ok")
}

/// A run's length in seconds, when it finished.
fn seconds(m: &Manifest) -> String {
    let start = chrono::DateTime::parse_from_rfc3339(&m.started_at).ok();
    let end = m
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1}", (e - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    }
}

/// `ecrm report`: the page of a run (default: the latest), and its path on stdout.
pub fn report(a: ReportArgs, cx: &Context<'_>) -> Result<()> {
    let run = match &a.run {
        Some(id) => Some(Manifest::read(&cx.wh_root, id)?),
        None => Manifest::list(&cx.wh_root, 1)?.pop(),
    };
    let params = crate::report::ReportParams {
        warehouse: &cx.wh_root,
        out_dir: &a.out_dir,
        run: run.as_ref(),
        model: a.model,
        engine: &cx.engine,
    };
    let r = cx.block(crate::report::write(&params))?;
    for m in &r.missing {
        tracing::warn!("left out: {m}");
    }
    writeln!(std::io::stdout().lock(), "{}", r.path.display()).map_err(|e| Error::io("<stdout>", e))
}
