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
//!   freshness) trips is `tests_failed`; one that errors is `failed`. Stages that read from
//!   either are `skipped`; independent stages still run. Exit code: 2 if any stage failed,
//!   else 1 if any tests failed, else 0.
//! - `--resume RUN_ID` re-runs, under a new run id, the stages of that run that did not
//!   succeed, with its as-of date and selection; its succeeded stages are `reused` (reports
//!   are always written again). The pipeline file must be unchanged (same SHA-256).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;

use super::manifest::{self, Manifest, StageRecord, TableRecord};
use super::{Action, Pipeline, Stage};
use crate::error::{Error, Result};
use crate::features;
use crate::ingest::{self, IngestOptions};
use crate::olap::{self, EngineOptions};
use crate::warehouse::{RunLock, Warehouse};

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

/// Where models live inside the warehouse.
pub const MODELS_DIR: &str = "models";

/// The file of model `name`.
pub fn model_path(warehouse: &Path, name: &str) -> PathBuf {
    warehouse.join(MODELS_DIR).join(format!("{name}.json"))
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
pub fn run(p: &Pipeline, o: &RunOptions) -> Result<Outcome> {
    let root = &o.warehouse;
    let previous = match &o.resume {
        Some(id) => Some(resumable(p, o, id)?),
        None => None,
    };
    let (select, as_of, full_refresh) = match &previous {
        Some(m) => (
            m.selected.clone(),
            m.as_of
                .as_deref()
                .map(|d| features::parse_date("as_of in the resumed manifest", d))
                .transpose()?,
            m.full_refresh,
        ),
        None => (o.select.clone(), o.as_of, o.full_refresh),
    };
    let picked = p.select(&select)?;
    let run_id = manifest::new_run_id();
    let _lock = RunLock::acquire(root, &format!("run {run_id} of {}", p.file.display()))?;
    let mut m = Manifest {
        run_id: run_id.clone(),
        pipeline: p.name.clone(),
        pipeline_file: p.file.display().to_string(),
        pipeline_sha256: p.sha256.clone(),
        ecrm_version: env!("CARGO_PKG_VERSION").to_string(),
        as_of: as_of.map(|d| d.to_string()),
        selected: select,
        full_refresh,
        resumed_from: o.resume.clone(),
        started_at: manifest::now(),
        finished_at: None,
        status: "running".into(),
        exit_code: None,
        stages: p
            .stages
            .iter()
            .map(|s| StageRecord {
                name: s.name.clone(),
                kind: s.kind.to_string(),
                description: s.description.clone(),
                status: if picked.contains(&s.name) {
                    "pending"
                } else {
                    "not_selected"
                }
                .into(),
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
    };
    let path = m.write(root)?;
    tracing::info!(run_id = %run_id, pipeline = %p.name, "run started");
    let mut as_of = as_of;
    for (i, stage) in p.stages.iter().enumerate() {
        if m.stages[i].status == "not_selected" {
            continue;
        }
        // A report is never reused: it must show the resumed run.
        if let Some(prev) = &previous
            && !matches!(stage.action, Action::Report { .. })
            && let Some(r) = prev.stages.iter().find(|r| r.name == stage.name)
            && matches!(r.status.as_str(), "succeeded" | "reused")
        {
            let mut r = r.clone();
            r.reused_from = Some(r.reused_from.clone().unwrap_or(prev.run_id.clone()));
            r.status = "reused".into();
            m.stages[i] = r;
            continue;
        }
        let blocked: Vec<&str> = stage
            .upstream
            .iter()
            .filter(|u| {
                m.stages.iter().any(|r| {
                    &r.name == *u
                        && matches!(r.status.as_str(), "failed" | "tests_failed" | "skipped")
                })
            })
            .map(String::as_str)
            .collect();
        // A report shows what there is, failures included: it is never skipped.
        if !blocked.is_empty() && !matches!(stage.action, Action::Report { .. }) {
            m.stages[i].status = "skipped".into();
            m.stages[i].error = Some(format!("not run: {} did not succeed", blocked.join(", ")));
            tracing::warn!(stage = %stage.name, "skipped: {} did not succeed", blocked.join(", "));
            m.write(root)?;
            continue;
        }
        if as_of.is_none() && !matches!(stage.action, Action::Ingest { .. }) {
            match default_as_of(root, &o.engine) {
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
        let mut engine = o.engine.clone();
        if !matches!(stage.action, Action::Ingest { .. }) {
            engine.as_of = as_of;
        }
        m.stages[i].status = "running".into();
        m.stages[i].started_at = Some(manifest::now());
        m.write(root)?;
        tracing::info!(stage = %stage.name, kind = stage.kind, "stage started");
        let started = Instant::now();
        manifest::reset_peak_rss();
        let so_far = matches!(stage.action, Action::Report { .. }).then(|| m.clone());
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
        let outcome = ctx.run_stage(stage, &mut m.stages[i]);
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        let rec = &mut m.stages[i];
        rec.finished_at = Some(manifest::now());
        rec.seconds = Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        rec.peak_rss_mib = manifest::peak_rss_mib();
        match outcome {
            Ok(()) if rec.tests.iter().any(|t| t.status == "fail") => {
                rec.status = "tests_failed".into();
                for t in rec.tests.iter().filter(|t| t.status == "fail") {
                    tracing::error!(stage = %stage.name, test = %t.test, "{}", t.message);
                }
            }
            Ok(()) => rec.status = "succeeded".into(),
            Err(e) => fail(rec, &e),
        }
        for t in rec.tests.iter().filter(|t| t.status == "warn") {
            tracing::warn!(stage = %stage.name, test = %t.test, "{}", t.message);
        }
        tracing::info!(
            stage = %stage.name,
            status = %rec.status,
            seconds = rec.seconds.unwrap_or(0.0),
            peak_rss_mib = rec.peak_rss_mib.unwrap_or(f64::NAN),
            "stage finished"
        );
        m.write(root)?;
    }
    let any = |s: &str| m.stages.iter().any(|r| r.status == s);
    let (status, code) = if any("failed") {
        ("failed", 2)
    } else if any("tests_failed") || any("skipped") {
        ("tests_failed", 1)
    } else {
        ("succeeded", 0)
    };
    m.status = status.into();
    m.exit_code = Some(code);
    m.finished_at = Some(manifest::now());
    m.write(root)?;
    tracing::info!(run_id = %run_id, status, "run finished");
    Ok(Outcome { manifest: m, path })
}

/// A spinner with the stage's name and elapsed time on stderr, when progress is shown (a
/// terminal) and the stage has no bars of its own (ingest shows one per file).
fn spinner(show: bool, stage: &Stage) -> Option<indicatif::ProgressBar> {
    if !show || matches!(stage.action, Action::Ingest { .. }) {
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
    rec.status = "failed".into();
    rec.error = Some(e.to_string());
}

/// The manifest of the run to resume, refused when it cannot be resumed.
fn resumable(p: &Pipeline, o: &RunOptions, id: &str) -> Result<Manifest> {
    let m = Manifest::read(&o.warehouse, id)?;
    let usage = |message: String| Error::Usage {
        arg: "--resume".into(),
        message,
    };
    if o.as_of.is_some() || !o.select.is_empty() || o.full_refresh {
        return Err(usage(
            "a resumed run keeps the as-of date, selection and full refresh of the run it \
             resumes; drop --as-of, --select and --full-refresh"
                .into(),
        ));
    }
    if m.pipeline_sha256 != p.sha256 {
        return Err(usage(format!(
            "run {id} ran another version of the pipeline file (SHA-256 {} then, {} now); \
             start a new run instead",
            short(&m.pipeline_sha256),
            short(&p.sha256)
        )));
    }
    if m.status == "succeeded" {
        return Err(usage(format!(
            "run {id} succeeded; there is nothing to resume"
        )));
    }
    if m.status == "running" {
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
fn default_as_of(root: &Path, engine: &EngineOptions) -> Result<NaiveDate> {
    let wh = Warehouse::open(root)?;
    wh.table("fact_sales")?;
    let rt = crate::cli::runtime(engine.threads)?;
    rt.block_on(async {
        let ctx = olap::session(&wh, engine).await?;
        features::default_as_of(&ctx).await
    })
}

/// What every stage needs to run.
struct StageContext<'a> {
    root: &'a Path,
    /// The run's manifest so far (for a report stage).
    run: Option<&'a Manifest>,
    /// With the run's as-of date (not for ingest).
    engine: &'a EngineOptions,
    /// Without it: data tests see whole tables.
    base_engine: &'a EngineOptions,
    as_of: Option<NaiveDate>,
    full_refresh: bool,
    progress: bool,
}

impl StageContext<'_> {
    /// Runs one stage into `rec`: inputs, the action, outputs, column descriptions, tests.
    fn run_stage(&self, stage: &Stage, rec: &mut StageRecord) -> Result<()> {
        rec.inputs = self.records(&stage.inputs, None)?;
        let (metrics, written) = self.act(stage, rec)?;
        rec.metrics = metrics;
        rec.outputs = self.records(&stage.outputs, written)?;
        if rec.tests.iter().any(|t| t.status == "fail") {
            // The ingest gate tripped before its commit: nothing new to test.
            return Ok(());
        }
        let wh = Warehouse::open(self.root)?;
        let rt = crate::cli::runtime(self.base_engine.threads)?;
        let results = rt.block_on(async {
            let ctx = olap::session(&wh, self.base_engine).await?;
            for (table, column) in stage.columns.keys() {
                let df = ctx.table(table.as_str()).await?;
                if df.schema().field_with_unqualified_name(column).is_err() {
                    let names: Vec<&str> = df
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    return Err(Error::NotFound {
                        what: "described column",
                        name: format!("{table}.{column}"),
                        hint: format!(
                            " (stage {} describes it, but {table} has: {})",
                            stage.name,
                            names.join(", ")
                        ),
                    });
                }
            }
            let mut results = Vec::new();
            for t in &stage.tests {
                results.extend(t.run(&ctx).await?);
            }
            Ok::<_, Error>(results)
        })?;
        rec.tests.extend(results);
        Ok(())
    }

    /// Records of tables, models (`model:NAME`) and files (`file:PATH`, with `{as_of}`).
    fn records(&self, names: &[String], written: Option<u64>) -> Result<Vec<TableRecord>> {
        let wh = Warehouse::open(self.root)?;
        names
            .iter()
            .map(|n| {
                if let Some(model) = n.strip_prefix("model:") {
                    manifest::file_record(n, &model_path(self.root, model), None)
                } else if let Some(file) = n.strip_prefix("file:") {
                    let path = self.resolve_out(Path::new(file));
                    manifest::file_record(&format!("file:{}", path.display()), &path, written)
                } else {
                    manifest::table_record(&wh, n)
                }
            })
            .collect()
    }

    /// An export target with `{as_of}` replaced.
    fn resolve_out(&self, path: &Path) -> PathBuf {
        let day = self.as_of.map_or("unknown".to_string(), |d| d.to_string());
        PathBuf::from(path.to_string_lossy().replace("{as_of}", &day))
    }

    /// Runs the stage's action; returns its metrics and, for exports, the rows written.
    fn act(
        &self,
        stage: &Stage,
        rec: &mut StageRecord,
    ) -> Result<(serde_json::Value, Option<u64>)> {
        use serde_json::json;
        let root = self.root;
        let engine = self.engine;
        match &stage.action {
            Action::Report { out_dir } => {
                let r = crate::report::write(&crate::report::ReportParams {
                    warehouse: root,
                    out_dir,
                    run: self.run,
                    model: None,
                    engine,
                })?;
                Ok((
                    json!({
                        "file": r.path.display().to_string(),
                        "charts": r.charts,
                        "missing": r.missing,
                    }),
                    None,
                ))
            }
            Action::Ingest {
                contract,
                max_reject_rate,
                freshness,
            } => {
                if let Some(hours) = freshness.and_then(|f| f.max_age_hours)
                    && let Some(stale) = stale_source(contract, hours)?
                {
                    rec.tests
                        .push(gate(format!("freshness(max_age_hours = {hours})"), stale));
                    return Ok((serde_json::Value::Null, None));
                }
                let opts = IngestOptions {
                    full_refresh: self.full_refresh,
                    max_reject_rate: *max_reject_rate,
                    progress: self.progress,
                    ..IngestOptions::default()
                };
                let s = match ingest::ingest(root, contract, &opts) {
                    Err(Error::QualityGate(message)) => {
                        let rate = max_reject_rate.unwrap_or(1.0);
                        rec.tests
                            .push(gate(format!("max_reject_rate({rate})"), message));
                        return Ok((serde_json::Value::Null, None));
                    }
                    other => other?,
                };
                let new_files = s.files.iter().filter(|f| f.status == "loaded").count();
                if freshness.is_some_and(|f| f.new_file) {
                    let message = if new_files == 0 {
                        format!(
                            "no new file arrived since the last load: all {} input files of \
                             {} were loaded before",
                            s.files.len(),
                            contract.file.display()
                        )
                    } else {
                        String::new()
                    };
                    let mut t = gate("freshness(new_file)".into(), message);
                    if new_files > 0 {
                        t.status = "pass".into();
                        t.failing = 0;
                    }
                    rec.tests.push(t);
                }
                let sum = |f: fn(&ingest::FileSummary) -> u64| s.files.iter().map(f).sum::<u64>();
                let metrics = json!({
                    "load_id": s.load_id,
                    "files": s.files.len(),
                    "new_files": new_files,
                    "rows_read": sum(|f| f.rows_read),
                    "rows_loaded": sum(|f| f.rows_loaded),
                    "rows_rejected": sum(|f| f.rows_rejected),
                    "duplicates": sum(|f| f.duplicates),
                    "input_files": s.files.iter().map(|f| json!({
                        "source": f.source, "file": f.file, "sha256": f.sha256,
                        "status": f.status, "rows_read": f.rows_read,
                        "rows_loaded": f.rows_loaded, "rows_rejected": f.rows_rejected,
                        "duplicates": f.duplicates, "reasons": f.reasons,
                    })).collect::<Vec<_>>(),
                });
                Ok((metrics, None))
            }
            Action::Sql { sql, output } => {
                let lock = crate::warehouse::WriterLock::acquire(
                    root,
                    &format!("sql stage {}", stage.name),
                )?;
                let wh = Warehouse::open(root)?;
                let rt = crate::cli::runtime(engine.threads)?;
                let (schema, batches) = rt.block_on(async {
                    let ctx = olap::session(&wh, engine).await?;
                    olap::sql(&ctx, sql).await
                })?;
                let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                let mut tx = wh.begin(&lock);
                let f = tx.write_arrow(output, &schema, &batches)?;
                tx.replace(output, vec![f]);
                Warehouse::commit(tx, &format!("sql stage {} into {output}", stage.name))?;
                Ok((
                    json!({ "rows": rows, "columns": schema.fields().len() }),
                    None,
                ))
            }
            Action::Features => {
                let m = features::build(root, self.as_of, engine)?;
                Ok((
                    json!({
                        "customers": m.customers,
                        "returns_only_customers_left_out": m.returns_only,
                        "guest_lines_left_out": m.guest_lines,
                    }),
                    None,
                ))
            }
            Action::Segment(params) => {
                rec.seed = Some(params.params().seed);
                let r = crate::segment::segment_warehouse(root, None, params, engine)?;
                let (k, inertia, silhouette, trained_on) = match &r.fit {
                    Some(f) => (
                        Some(f.clustering.k),
                        f.clustering.inertia,
                        f.k_scores
                            .iter()
                            .find(|s| s.k == f.clustering.k)
                            .map(|s| s.silhouette),
                        f.trained_on,
                    ),
                    None => (None, None, None, None),
                };
                Ok((
                    json!({
                        "method": r.method.name(),
                        "features": r.features,
                        "k": k,
                        "inertia": inertia,
                        "sampled_silhouette": silhouette,
                        "trained_on_sample": trained_on,
                        "features_as_of": r.as_of.to_string(),
                    }),
                    None,
                ))
            }
            Action::ChurnTrain {
                model,
                lookback_days,
                horizon_days,
                params,
                cv,
                seed,
                train_sample,
            } => {
                rec.seed = Some(*seed);
                let t = crate::churn::warehouse::TrainWarehouse {
                    cutoff: None,
                    window: crate::churn::warehouse::Window {
                        lookback_days: *lookback_days,
                        horizon_days: *horizon_days,
                    },
                    params: params.clone(),
                    cv: *cv,
                    seed: *seed,
                    train_sample: *train_sample,
                };
                let (file, notes) = crate::churn::warehouse::train(root, &t, engine)?;
                for n in &notes {
                    tracing::warn!(stage = %stage.name, "{n}");
                }
                let path = model_path(root, model);
                let dir = root.join(MODELS_DIR);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                crate::cli::write_json(&path, &file)?;
                Ok((
                    json!({
                        "model_file": path.display().to_string(),
                        "training_rows": file.source.rows,
                        "sampled_from": file.source.sampled_from,
                        "training_cutoff": file.source.cutoff.map(|d| d.to_string()),
                        "leaves": file.tree.leaves(),
                        "depth": file.tree.depth(),
                        "metrics": file.metrics,
                    }),
                    None,
                ))
            }
            Action::ChurnScore { model } => {
                let path = model_path(root, model);
                let file = crate::churn::ModelFile::read(&path)?;
                let (as_of, batch, notes) =
                    crate::churn::warehouse::score(root, &file, self.as_of, engine)?;
                for n in &notes {
                    tracing::warn!(stage = %stage.name, "{n}");
                }
                let bands = batch
                    .column(2)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>();
                let count =
                    |band: &str| bands.map_or(0, |b| b.iter().filter(|v| *v == Some(band)).count());
                Ok((
                    json!({
                        "as_of": as_of.to_string(),
                        "scored": batch.num_rows(),
                        "high": count("high"),
                        "medium": count("medium"),
                        "low": count("low"),
                    }),
                    None,
                ))
            }
            Action::Basket(p) => {
                let s = crate::basket::recommend::recommend(root, p, engine)?;
                Ok((
                    json!({
                        "baskets": s.baskets,
                        "itemsets": s.itemsets,
                        "rules": s.rules,
                        "customers": s.customers,
                        "customers_with_recommendations": s.with_recommendations,
                        "recommendations": s.rows,
                    }),
                    None,
                ))
            }
            Action::Sequence { params, level } => {
                let source = crate::sequence::Source::Warehouse {
                    root: root.to_path_buf(),
                    level: *level,
                };
                let (seqs, note) = crate::sequence::load(&source, engine)?;
                let sequences = seqs.len();
                let patterns = params.fit(&DatasetBase::new(seqs, ()))?;
                tracing::info!(stage = %stage.name, "{note}; {} patterns", patterns.len());
                let (schema, batch) = crate::sequence::patterns_batch(&patterns)?;
                let lock = crate::warehouse::WriterLock::acquire(
                    root,
                    &format!("sequence stage {}", stage.name),
                )?;
                let wh = Warehouse::open(root)?;
                let mut tx = wh.begin(&lock);
                let f =
                    tx.write_arrow(super::SEQUENCE_TABLE, &schema, std::slice::from_ref(&batch))?;
                tx.replace(super::SEQUENCE_TABLE, vec![f]);
                Warehouse::commit(tx, &format!("{} sequential patterns", batch.num_rows()))?;
                Ok((
                    json!({ "sequences": sequences, "patterns": patterns.len(), "min_count": patterns.min_count() }),
                    None,
                ))
            }
            Action::Export(params) => {
                let mut params = (**params).clone();
                params.out = self.resolve_out(&params.out);
                if let Some(dir) = params.out.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let s = crate::export::export(root, &params, engine)?;
                Ok((
                    json!({
                        "selection": s.selection,
                        "file": params.out.display().to_string(),
                        "selected": s.selected,
                        "no_consent": s.no_consent,
                        "suppressed": s.suppressed,
                        "beyond_top": s.beyond_top,
                        "written": s.written,
                    }),
                    Some(s.written),
                ))
            }
        }
    }
}

/// A failed ingest gate as a test result (exit code 1, like a failed data test).
fn gate(test: String, message: String) -> super::datatest::TestResult {
    super::datatest::TestResult {
        test,
        status: "fail".into(),
        failing: 1,
        message,
    }
}

/// The first source of `contract` whose newest file is older than `hours`, as a message.
fn stale_source(contract: &ingest::contract::Contract, hours: u64) -> Result<Option<String>> {
    let limit = std::time::Duration::from_secs(hours * 3600);
    let now = std::time::SystemTime::now();
    for s in &contract.sources {
        let files = ingest::resolve_files(&s.path)?;
        let newest = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .max();
        let age = newest.map(|t| now.duration_since(t).unwrap_or_default());
        match age {
            Some(a) if a <= limit => {}
            Some(a) => {
                return Ok(Some(format!(
                    "source {}: the newest file under {} is {:.1} hours old, more than {hours}",
                    s.name,
                    s.path.display(),
                    a.as_secs_f64() / 3600.0
                )));
            }
            None => {
                return Ok(Some(format!(
                    "source {}: no file under {}",
                    s.name,
                    s.path.display()
                )));
            }
        }
    }
    Ok(None)
}
