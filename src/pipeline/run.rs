//! Running a checked pipeline: stages in order, a manifest after each, data tests, resume.
//!
//! Contract of a run:
//! - It takes the warehouse's run lock first; a second run exits at once (code 2) naming the
//!   run that holds it. Each stage then commits through the writer lock as the matching
//!   `ecrm` command does, so a stage that fails leaves every earlier stage's tables as they
//!   were committed, and a killed run leaves the last good snapshot readable.
//! - The as-of date (`--as-of`, default: the day after the last order line, fixed once the
//!   ingest stages are done) is the run's point in time: every stage after ingest sees the
//!   fact tables only before it ([`crate::olap::EngineOptions::as_of`]), so re-running an
//!   as-of date after more data arrived gives the same outputs.
//! - A stage whose data tests fail (`error` severity) or whose ingest gate (reject rate,
//!   freshness) trips is `tests_failed`; one that errors is `failed`, with the error (a
//!   parameter that does not fit the data names the stage's key, as `ecrm check` does).
//!   Stages that read from either are `skipped`; independent stages still run. Exit code: 2
//!   if any stage failed, else 1 if any tests failed, else 0.
//! - `--resume RUN_ID` re-runs, under a new run id, the stages of that run that did not
//!   succeed, with its as-of date and selection; its succeeded stages are `reused` (reports
//!   are always written again). The pipeline file must be unchanged (same SHA-256).
//!
//! What each kind of stage does is in `super::stages`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;

use super::stages::StageContext;
use super::{Kind, Pipeline, Stage};
use crate::error::{Error, Result};
use crate::features;
use crate::olap::{self, EngineOptions};
use crate::warehouse::runs::{
    self as manifest, Manifest, RunStatus, StageRecord, StageStatus, TestStatus,
};
use crate::warehouse::{RunLock, Warehouse, tables};

/// How to run a pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub warehouse: PathBuf,
    pub as_of: Option<NaiveDate>,
    /// `--select` as given: `STAGE` or `STAGE+`.
    pub select: Vec<String>,
    pub full_refresh: bool,
    pub resume: Option<String>,
    pub engine: EngineOptions,
    /// Progress on stderr (the CLI sets it when stderr is a terminal and `-q` is off): ingest's
    /// bars per file, a spinner with the elapsed time for the other stages.
    pub progress: bool,
}

/// A run's outcome: the manifest as last written, and where.
#[derive(Debug)]
pub struct Outcome {
    pub manifest: Manifest,
    pub path: PathBuf,
}

impl Outcome {
    /// The process exit code the run calls for.
    pub fn exit_code(&self) -> u8 {
        self.manifest.exit_code.unwrap_or(2)
    }
}

/// Runs `p` (see the module doc). An `Err` means the run did not start (bad selection, lock
/// held, resume refused); everything after the start is in the manifest.
pub async fn run(p: &Pipeline, o: &RunOptions) -> Result<Outcome> {
    let root = &o.warehouse;
    let previous = match &o.resume {
        Some(id) => Some(resumable(p, o, id)?),
        None => None,
    };
    let (select, as_of, full_refresh) = match &previous {
        Some(m) => (m.selected.clone(), manifest_as_of(o, m)?, m.full_refresh),
        None => (o.select.clone(), o.as_of, o.full_refresh),
    };
    let picked = p.select(&select)?;
    let run_id = manifest::new_run_id();
    let _lock = RunLock::acquire(root, &format!("run {run_id} of {}", p.file.display()))?;
    let mut m = new_manifest(p, &run_id, as_of, select, full_refresh, o, |s| {
        picked.contains(&s.name)
    });
    let path = m.write(root)?;
    tracing::info!(run_id = %run_id, pipeline = %p.name, "run started");
    let mut as_of = as_of;
    for (i, stage) in p.stages.iter().enumerate() {
        if m.stages[i].status == StageStatus::NotSelected {
            continue;
        }
        if reuse(previous.as_ref(), stage, &mut m.stages[i]) {
            continue;
        }
        if skip_if_blocked(&mut m, i, stage) {
            m.write(root)?;
            continue;
        }
        if as_of.is_none() && stage.kind != Kind::Ingest {
            match default_as_of(root, &o.engine).await {
                Ok(d) => {
                    as_of = Some(d);
                    m.as_of = Some(d.to_string());
                }
                Err(e) => {
                    fail(&mut m.stages[i], &e);
                    m.write(root)?;
                    continue;
                }
            }
        }
        run_one(p, o, &mut m, i, as_of, full_refresh).await?;
    }
    finish(&mut m);
    m.write(root)?;
    tracing::info!(run_id = %run_id, status = m.status.name(), "run finished");
    Ok(Outcome { manifest: m, path })
}

/// A new run's manifest: every stage `pending`, or `not_selected` when `picked` says so.
fn new_manifest(
    p: &Pipeline,
    run_id: &str,
    as_of: Option<NaiveDate>,
    selected: Vec<String>,
    full_refresh: bool,
    o: &RunOptions,
    picked: impl Fn(&Stage) -> bool,
) -> Manifest {
    Manifest {
        run_id: run_id.to_string(),
        pipeline: p.name.clone(),
        pipeline_file: p.file.display().to_string(),
        pipeline_sha256: p.sha256.clone(),
        ecrm_version: env!("CARGO_PKG_VERSION").to_string(),
        as_of: as_of.map(|d| d.to_string()),
        selected,
        full_refresh,
        resumed_from: o.resume.clone(),
        started_at: manifest::now(),
        finished_at: None,
        status: RunStatus::Running,
        exit_code: None,
        stages: p
            .stages
            .iter()
            .map(|s| StageRecord {
                name: s.name.clone(),
                kind: s.kind.to_string(),
                description: s.description.clone(),
                status: if picked(s) {
                    StageStatus::Pending
                } else {
                    StageStatus::NotSelected
                },
                started_at: None,
                finished_at: None,
                seconds: None,
                peak_rss_mib: None,
                inputs: Vec::new(),
                outputs: Vec::new(),
                params: s.params.clone(),
                seed: None,
                metrics: serde_json::Value::Null,
                tests: Vec::new(),
                error: None,
                reused_from: None,
            })
            .collect(),
    }
}

/// The as-of date a resumed run keeps.
fn manifest_as_of(o: &RunOptions, m: &Manifest) -> Result<Option<NaiveDate>> {
    m.as_of
        .as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                Error::input(
                    manifest::path(&o.warehouse, &m.run_id),
                    format!("as_of {d:?} is not a date"),
                )
            })
        })
        .transpose()
}

/// Takes over a stage that succeeded in the resumed run as `reused`; a report never is: it
/// must show the resumed run.
fn reuse(previous: Option<&Manifest>, stage: &Stage, rec: &mut StageRecord) -> bool {
    let Some(prev) = previous else {
        return false;
    };
    if stage.kind == Kind::Report {
        return false;
    }
    let Some(r) = prev
        .stages
        .iter()
        .find(|r| r.name == stage.name && r.status.is_ok())
    else {
        return false;
    };
    let mut r = r.clone();
    r.reused_from = Some(r.reused_from.clone().unwrap_or(prev.run_id.clone()));
    r.status = StageStatus::Reused;
    *rec = r;
    true
}

/// Marks stage `i` `skipped` when a stage it depends on did not succeed. A report shows
/// what there is, failures included: it is never skipped.
fn skip_if_blocked(m: &mut Manifest, i: usize, stage: &Stage) -> bool {
    let blocked: Vec<&str> = stage
        .upstream
        .iter()
        .filter(|u| m.stages.iter().any(|r| &r.name == *u && r.status.blocks()))
        .map(String::as_str)
        .collect();
    if blocked.is_empty() || stage.kind == Kind::Report {
        return false;
    }
    let why = format!("{} did not succeed", blocked.join(", "));
    tracing::warn!(stage = %stage.name, "skipped: {why}");
    m.stages[i].status = StageStatus::Skipped;
    m.stages[i].error = Some(format!("not run: {why}"));
    true
}

/// Runs stage `i` and records how it went: times, peak memory, status, tests.
async fn run_one(
    p: &Pipeline,
    o: &RunOptions,
    m: &mut Manifest,
    i: usize,
    as_of: Option<NaiveDate>,
    full_refresh: bool,
) -> Result<()> {
    let root = &o.warehouse;
    let stage = &p.stages[i];
    let mut engine = o.engine.clone();
    if stage.kind != Kind::Ingest {
        engine.as_of = as_of;
    }
    m.stages[i].status = StageStatus::Running;
    m.stages[i].started_at = Some(manifest::now());
    m.write(root)?;
    tracing::info!(stage = %stage.name, kind = stage.kind.name(), "stage started");
    let started = Instant::now();
    manifest::reset_peak_rss();
    let so_far = (stage.kind == Kind::Report).then(|| m.clone());
    let ctx = StageContext {
        root,
        run: so_far.as_ref(),
        engine: &engine,
        base_engine: &o.engine,
        as_of,
        full_refresh,
        progress: o.progress,
    };
    let spinner = spinner(o.progress, stage);
    let outcome = ctx.run_stage(stage, &mut m.stages[i]).await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let rec = &mut m.stages[i];
    rec.finished_at = Some(manifest::now());
    rec.seconds = Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
    rec.peak_rss_mib = manifest::peak_rss_mib();
    match outcome {
        Ok(()) if rec.tests.iter().any(|t| t.status == TestStatus::Fail) => {
            rec.status = StageStatus::TestsFailed;
            for t in rec.tests.iter().filter(|t| t.status == TestStatus::Fail) {
                tracing::error!(stage = %stage.name, test = %t.test, "{}", t.message);
            }
        }
        Ok(()) => rec.status = StageStatus::Succeeded,
        Err(e) => fail(rec, &e.at_stage(&p.file, &stage.name, stage.line)),
    }
    for t in rec.tests.iter().filter(|t| t.status == TestStatus::Warn) {
        tracing::warn!(stage = %stage.name, test = %t.test, "{}", t.message);
    }
    tracing::info!(
        stage = %stage.name,
        status = rec.status.name(),
        seconds = rec.seconds.unwrap_or(0.0),
        peak_rss_mib = rec.peak_rss_mib.unwrap_or(f64::NAN),
        "stage finished"
    );
    m.write(root).map(|_| ())
}

/// The run's status and exit code from its stages': 2 if any failed, else 1 if any tests
/// failed (or stages were skipped for them), else 0.
fn finish(m: &mut Manifest) {
    let any = |s: StageStatus| m.stages.iter().any(|r| r.status == s);
    let (status, code) = if any(StageStatus::Failed) {
        (RunStatus::Failed, 2)
    } else if any(StageStatus::TestsFailed) || any(StageStatus::Skipped) {
        (RunStatus::TestsFailed, 1)
    } else {
        (RunStatus::Succeeded, 0)
    };
    m.status = status;
    m.exit_code = Some(code);
    m.finished_at = Some(manifest::now());
}

/// A spinner with the stage's name and elapsed time on stderr, when progress is shown (a
/// terminal) and the stage has no bars of its own (ingest shows one per file).
fn spinner(show: bool, stage: &Stage) -> Option<indicatif::ProgressBar> {
    if !show || stage.kind == Kind::Ingest {
        return None;
    }
    let s = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        s.set_style(style);
    }
    s.set_message(format!("{} ({})", stage.name, stage.kind));
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(s)
}

/// Records a stage error (the message the user reads in the manifest and on stderr).
fn fail(rec: &mut StageRecord, e: &Error) {
    tracing::error!(stage = %rec.name, "{e}");
    rec.status = StageStatus::Failed;
    rec.error = Some(e.to_string());
}

/// The manifest of the run to resume, refused when it cannot be resumed.
fn resumable(p: &Pipeline, o: &RunOptions, id: &str) -> Result<Manifest> {
    let m = Manifest::read(&o.warehouse, id)?;
    let refuse = |message: String| Error::param("resume", message);
    if o.as_of.is_some() || !o.select.is_empty() || o.full_refresh {
        return Err(refuse(
            "a resumed run keeps the as-of date, selection and full refresh of the run it \
             resumes; drop --as-of, --select and --full-refresh"
                .into(),
        ));
    }
    if m.pipeline_sha256 != p.sha256 {
        return Err(refuse(format!(
            "run {id} ran another version of the pipeline file (SHA-256 {} then, {} now); \
             start a new run instead",
            short(&m.pipeline_sha256),
            short(&p.sha256)
        )));
    }
    if m.status == RunStatus::Succeeded {
        return Err(refuse(format!(
            "run {id} succeeded; there is nothing to resume"
        )));
    }
    if m.status == RunStatus::Running {
        // A run killed mid-way keeps `running`; one still alive holds the run lock, which
        // `run` takes next and reports.
        tracing::warn!("run {id} did not finish (killed?); resuming its unfinished stages");
    }
    Ok(m)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// The day after the last order line.
async fn default_as_of(root: &Path, engine: &EngineOptions) -> Result<NaiveDate> {
    let wh = Warehouse::open(root)?;
    wh.table(tables::FACT_SALES)?;
    let ctx = olap::session(&wh, engine).await?;
    features::default_as_of(&ctx).await
}
