//! What each kind of stage does when it runs: one function per kind, each calling the
//! library as the matching `ecrm` command does and returning the metrics the run manifest
//! records. Around them, [`StageContext::run_stage`] records what the stage read and wrote
//! and runs its data tests.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use serde_json::{Value, json};

use super::{Action, Freshness, Stage};
use crate::basket::recommend::ValidRecommendParams;
use crate::campaign::results::CampaignReportParams;
use crate::campaign::uplift::UpliftTrainParams;
use crate::churn::ValidChurnTrainParams;
use crate::cohorts::triangle::CohortParams;
use crate::error::{Error, Result};
use crate::export::ValidExportParams;
use crate::features;
use crate::ingest::{self, IngestOptions, contract::Contract};
use crate::olap::{self, EngineOptions};
use crate::segment::ValidSegmentParams;
use crate::sequence::ValidSequenceParams;
use crate::value::jobs;
use crate::value::profit::ProfitParams;
use crate::value::score::ClvScoreParams;
use crate::value::train::ClvTrainParams;
use crate::warehouse::runs::{
    self as manifest, Manifest, StageRecord, TableRecord, TestResult, TestStatus,
};
use crate::warehouse::{Warehouse, WriterLock, files};
use crate::web::WebSessionsParams;

/// What every stage needs to run.
pub(super) struct StageContext<'a> {
    pub root: &'a Path,
    /// The run's manifest so far (for a report stage).
    pub run: Option<&'a Manifest>,
    /// With the run's as-of date (not for ingest).
    pub engine: &'a EngineOptions,
    /// Without it: data tests see whole tables.
    pub base_engine: &'a EngineOptions,
    pub as_of: Option<NaiveDate>,
    pub full_refresh: bool,
    pub progress: bool,
}

/// A stage's metrics for the manifest and, for exports, the rows written.
type Done = (Value, Option<u64>);

impl StageContext<'_> {
    /// Runs one stage into `rec`: inputs, the action, outputs, column descriptions, tests.
    pub async fn run_stage(&self, stage: &Stage, rec: &mut StageRecord) -> Result<()> {
        rec.inputs = self.records(&stage.inputs, None)?;
        let (metrics, written) = self.act(stage, rec).await?;
        rec.metrics = metrics;
        rec.outputs = self.records(&stage.outputs, written)?;
        if rec.tests.iter().any(|t| t.status == TestStatus::Fail) {
            // The ingest gate tripped before its commit: nothing new to test.
            return Ok(());
        }
        let results = self.tests(stage).await?;
        rec.tests.extend(results);
        Ok(())
    }

    /// Checks the stage's column descriptions against its outputs and runs its data tests.
    async fn tests(&self, stage: &Stage) -> Result<Vec<TestResult>> {
        let wh = Warehouse::open(self.root)?;
        let ctx = olap::session(&wh, self.base_engine).await?;
        for (table, column) in stage.columns.keys() {
            let df = ctx.table(table.as_str()).await?;
            if df.schema().field_with_unqualified_name(column).is_err() {
                return Err(Error::NotFound {
                    what: "described column",
                    name: format!("{table}.{column}"),
                    hint: format!(
                        " (stage {} describes it, but {table} has: {})",
                        stage.name,
                        olap::column_list(df.schema().as_arrow())
                    ),
                });
            }
        }
        let mut results = Vec::new();
        for t in &stage.tests {
            results.extend(t.run(&ctx).await?);
        }
        Ok(results)
    }

    /// Records of tables, models (`model:NAME`) and files (`file:PATH`, with `{as_of}`).
    fn records(&self, names: &[String], written: Option<u64>) -> Result<Vec<TableRecord>> {
        let wh = Warehouse::open(self.root)?;
        names
            .iter()
            .map(|n| {
                if let Some(model) = n.strip_prefix("model:") {
                    let path = crate::warehouse::model_path(self.root, model);
                    manifest::file_record(n, &path, None)
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

    /// Runs the stage's action.
    async fn act(&self, stage: &Stage, rec: &mut StageRecord) -> Result<Done> {
        match &stage.action {
            Action::Ingest {
                contract,
                max_reject_rate,
                freshness,
            } => self.ingest(contract, *max_reject_rate, *freshness, rec),
            Action::Sql { sql, output } => self.sql(&stage.name, sql, output).await,
            Action::Features => self.features().await,
            Action::Segment(params) => {
                rec.seed = Some(params.params().seed);
                self.segment(params).await
            }
            Action::ChurnTrain { model, params } => {
                rec.seed = Some(params.seed());
                self.churn_train(&stage.name, model, params).await
            }
            Action::ChurnScore { model } => self.churn_score(&stage.name, model).await,
            Action::ClvTrain { model, params } => self.clv_train(model, params).await,
            Action::ClvScore { model, params } => self.clv_score(model, params).await,
            Action::Profit(params) => self.profit(params).await,
            Action::CampaignReport(params) => self.campaign_report(params).await,
            Action::WebSessions(params) => self.web_sessions(params).await,
            Action::UpliftTrain {
                model,
                campaigns,
                window_days,
                params,
            } => {
                self.uplift_train(model, campaigns, *window_days, params)
                    .await
            }
            Action::UpliftScore { model } => self.uplift_score(model).await,
            Action::Cohorts(params) => self.cohorts(params).await,
            Action::Basket(params) => self.basket(params).await,
            Action::Sequence(params) => self.sequence(&stage.name, params).await,
            Action::Export(params) => self.export(params).await,
            Action::Report { out_dir } => self.report(out_dir).await,
        }
    }

    /// An ingest stage: the freshness gate, the load (its reject-rate gate as a failed test).
    fn ingest(
        &self,
        contract: &Contract,
        max_reject_rate: Option<f64>,
        freshness: Option<Freshness>,
        rec: &mut StageRecord,
    ) -> Result<Done> {
        if let Some(hours) = freshness.and_then(|f| f.max_age_hours)
            && let Some(stale) = stale_source(contract, hours)?
        {
            rec.tests
                .push(gate(format!("freshness(max_age_hours = {hours})"), stale));
            return Ok((Value::Null, None));
        }
        let opts = IngestOptions {
            full_refresh: self.full_refresh,
            max_reject_rate,
            progress: self.progress,
            ..IngestOptions::default()
        };
        // Ingest is polars, which blocks: off the async workers.
        let loaded = tokio::task::block_in_place(|| ingest::ingest(self.root, contract, &opts));
        let s = match loaded {
            Err(Error::QualityGate(message)) => {
                let rate = max_reject_rate.unwrap_or(1.0);
                rec.tests
                    .push(gate(format!("max_reject_rate({rate})"), message));
                return Ok((Value::Null, None));
            }
            other => other?,
        };
        let new_files = s
            .files
            .iter()
            .filter(|f| f.status == ingest::FileStatus::Loaded)
            .count();
        if freshness.is_some_and(|f| f.new_file) {
            rec.tests.push(new_file_gate(contract, &s, new_files));
        }
        Ok((ingest_metrics(&s, new_files), None))
    }

    /// A sql stage: one query's result becomes its output table.
    async fn sql(&self, stage: &str, sql: &str, output: &str) -> Result<Done> {
        let lock = WriterLock::acquire(self.root, &format!("sql stage {stage}"))?;
        let wh = Warehouse::open(self.root)?;
        let ctx = olap::session(&wh, self.engine).await?;
        let (schema, batches) = olap::sql(&ctx, sql).await?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let mut tx = wh.begin(&lock);
        let f = tx.write_arrow(output, &schema, &batches)?;
        tx.replace(output, vec![f]);
        Warehouse::commit(tx, &format!("sql stage {stage} into {output}"))?;
        Ok((
            json!({ "rows": rows, "columns": schema.fields().len() }),
            None,
        ))
    }

    /// A features stage: the mart as of the run's date.
    async fn features(&self) -> Result<Done> {
        let m = features::build(self.root, self.as_of, self.engine).await?;
        Ok((
            json!({
                "customers": m.customers,
                "returns_only_customers_left_out": m.returns_only,
                "guest_lines_left_out": m.guest_lines,
            }),
            None,
        ))
    }

    /// A segment stage.
    async fn segment(&self, params: &ValidSegmentParams) -> Result<Done> {
        let r = crate::segment::segment_warehouse(self.root, None, params, self.engine).await?;
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

    /// A churn-train stage: the model file `<warehouse>/models/MODEL.json`.
    async fn churn_train(
        &self,
        stage: &str,
        model: &str,
        params: &ValidChurnTrainParams,
    ) -> Result<Done> {
        let t = crate::churn::warehouse::TrainWarehouse {
            cutoff: None,
            params,
        };
        let (file, notes) = crate::churn::warehouse::train(self.root, &t, self.engine).await?;
        for n in &notes {
            n.log(Some(stage));
        }
        let path = crate::warehouse::model_path(self.root, model);
        files::write_json(&path, &file)?;
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

    /// A churn-score stage: `churn_scores` from the model the run trained (or an earlier one).
    async fn churn_score(&self, stage: &str, model: &str) -> Result<Done> {
        let path = crate::warehouse::model_path(self.root, model);
        let file = crate::churn::ModelFile::read(&path)?;
        let s = crate::churn::warehouse::score(self.root, &file, self.as_of, self.engine).await?;
        for n in &s.notes {
            n.log(Some(stage));
        }
        Ok((
            json!({
                "as_of": s.as_of.map(|d| d.to_string()),
                "scored": s.rows(),
                "high": s.band_count(crate::churn::RiskBand::High),
                "medium": s.band_count(crate::churn::RiskBand::Medium),
                "low": s.band_count(crate::churn::RiskBand::Low),
            }),
            None,
        ))
    }

    /// A clv-train stage: the model file `<warehouse>/models/MODEL.json`, fitted on every
    /// purchase before the run's as-of date.
    async fn clv_train(&self, model: &str, params: &ClvTrainParams) -> Result<Done> {
        let data = jobs::Data::Warehouse {
            root: self.root,
            as_of: self.as_of,
            calibration_end: None,
        };
        let file = jobs::train(&data, params, self.engine).await?;
        let path = crate::warehouse::model_path(self.root, model);
        files::write_json(&path, &file)?;
        Ok((
            json!({
                "model_file": path.display().to_string(),
                "method": file.purchases.method(),
                "params": file.purchases.params().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "log_likelihood": file.log_likelihood,
                "fit": file.fit,
                "spend": file.spend,
                "customers": file.source.customers,
                "repeat_buyers": file.source.repeat_buyers,
            }),
            None,
        ))
    }

    /// A clv-score stage: `customer_value` from the model the run trained (or an earlier one).
    async fn clv_score(&self, model: &str, params: &ClvScoreParams) -> Result<Done> {
        let path = crate::warehouse::model_path(self.root, model);
        let file = crate::value::model::ModelFile::read(&path)?;
        let data = jobs::Data::Warehouse {
            root: self.root,
            as_of: self.as_of,
            calibration_end: None,
        };
        let (scores, as_of) = jobs::score(&file, &data, params, self.engine).await?;
        Ok((
            json!({
                "as_of": as_of.map(|d| d.to_string()),
                "scored": scores.batch.num_rows(),
                "undefined": scores.undefined,
            }),
            None,
        ))
    }

    /// A profit stage: `customer_profit`.
    async fn profit(&self, params: &ProfitParams) -> Result<Done> {
        let (_, s) =
            crate::value::profit::build(self.root, params, self.as_of, self.engine).await?;
        Ok((
            json!({
                "as_of": s.as_of.to_string(),
                "customers": s.customers,
                "unknown_cost_of_goods": s.unknown_cost,
                "lines_without_cost": s.lines_without_cost,
                "uncosted_contacts": s.uncosted_contacts,
                "whale_curve_peak_share": s.peak_share,
                "whale_curve_peak_at": s.peak_at,
            }),
            None,
        ))
    }

    /// A web-sessions stage: `web_sessions` and `dim_visitor` from the events before the
    /// run's as-of date.
    async fn web_sessions(&self, params: &WebSessionsParams) -> Result<Done> {
        let s = crate::web::build_sessions(self.root, params, self.as_of, self.engine).await?;
        Ok((
            json!({
                "as_of": s.as_of.to_string(),
                "events": s.events,
                "sessions": s.sessions,
                "bounces": s.bounces,
                "converted": s.converted,
                "visitors": s.visitors,
                "linked_visitors": s.linked_visitors,
            }),
            None,
        ))
    }

    /// A campaign-report stage: `campaign_results`.
    async fn campaign_report(&self, params: &CampaignReportParams) -> Result<Done> {
        let (batch, as_of) =
            crate::campaign::results::build(self.root, params, self.as_of, self.engine).await?;
        let measurable = batch
            .column_by_name("measurable")
            .map(|c| datafusion::arrow::array::AsArray::as_boolean(c).true_count())
            .unwrap_or_default();
        Ok((
            json!({
                "as_of": as_of.to_string(),
                "rows": batch.num_rows(),
                "measurable": measurable,
            }),
            None,
        ))
    }

    /// An uplift-train stage: the model file `<warehouse>/models/MODEL.json`, from the
    /// campaigns' contacts whose window ended before the run's as-of date.
    async fn uplift_train(
        &self,
        model: &str,
        campaigns: &[String],
        window_days: Option<u32>,
        params: &UpliftTrainParams,
    ) -> Result<Done> {
        let t = crate::campaign::uplift_data::TrainCampaigns {
            campaigns,
            window_days,
            as_of: self.as_of,
        };
        let (file, notes) =
            crate::campaign::uplift_data::train_campaigns(self.root, &t, params, self.engine)
                .await?;
        for n in &notes {
            n.log(Some(model));
        }
        let path = crate::warehouse::model_path(self.root, model);
        files::write_json(&path, &file)?;
        let m = &file.metrics;
        Ok((
            json!({
                "model_file": path.display().to_string(),
                "method": file.method.name(),
                "rows": file.source.rows,
                "treated": file.source.treated,
                "test_rows": m.test_rows,
                "qini_auc": m.qini_auc,
                "uplift_auc": m.uplift_auc,
            }),
            None,
        ))
    }

    /// An uplift-score stage: `uplift_scores` from the model the run trained.
    async fn uplift_score(&self, model: &str) -> Result<Done> {
        let path = crate::warehouse::model_path(self.root, model);
        let file = crate::campaign::uplift::UpliftModelFile::read(&path)?;
        let (batch, as_of, notes) = crate::campaign::uplift_data::score_warehouse(
            self.root,
            &file,
            self.as_of,
            self.engine,
        )
        .await?;
        for n in &notes {
            n.log(Some(model));
        }
        let group = batch
            .column_by_name("group")
            .map(|c| olap::text_column(c))
            .transpose()?;
        let count = |g: &str| {
            group
                .as_ref()
                .map_or(0, |c| c.iter().filter(|v| *v == Some(g)).count())
        };
        Ok((
            json!({
                "as_of": as_of.to_string(),
                "scored": batch.num_rows(),
                "persuadable": count("persuadable"),
                "sleeping_dogs": count("sleeping dog"),
            }),
            None,
        ))
    }

    /// A cohorts stage: `cohort_retention`.
    async fn cohorts(&self, params: &CohortParams) -> Result<Done> {
        let (batch, as_of) =
            crate::cohorts::retention(self.root, params, self.as_of, self.engine).await?;
        Ok((
            json!({ "as_of": as_of.to_string(), "rows": batch.num_rows() }),
            None,
        ))
    }

    /// A basket stage: rules and recommendations.
    async fn basket(&self, params: &ValidRecommendParams) -> Result<Done> {
        let s = crate::basket::recommend::recommend(self.root, params, self.engine).await?;
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

    /// A sequence stage: `sequence_patterns` from every customer's invoices, or
    /// `web_sequence_patterns` from every web session's clicks.
    async fn sequence(&self, stage: &str, params: &ValidSequenceParams) -> Result<Done> {
        let source = params.warehouse(self.root);
        let table = params.table();
        let (seqs, note) = crate::sequence::load(&source, self.engine).await?;
        let sequences = seqs.len();
        let patterns = params.mining().fit(&DatasetBase::new(seqs, ()))?;
        tracing::info!(stage, "{note}; {} patterns", patterns.len());
        let (schema, batch) = crate::sequence::patterns_batch(&patterns)?;
        let lock = WriterLock::acquire(self.root, &format!("sequence stage {stage}"))?;
        let wh = Warehouse::open(self.root)?;
        let mut tx = wh.begin(&lock);
        let f = tx.write_arrow(table, &schema, std::slice::from_ref(&batch))?;
        tx.replace(table, vec![f]);
        Warehouse::commit(tx, &format!("{} sequential patterns", batch.num_rows()))?;
        Ok((
            json!({
                "sequences": sequences,
                "patterns": patterns.len(),
                "min_count": patterns.min_count(),
            }),
            None,
        ))
    }

    /// An export stage: the file, its `{as_of}` filled in.
    async fn export(&self, params: &ValidExportParams) -> Result<Done> {
        let out = self.resolve_out(params.out());
        if let Some(dir) = out.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let params = params.clone().with_out(out);
        let s = crate::export::export(self.root, &params, self.engine).await?;
        Ok((
            json!({
                "selection": s.selection,
                "file": params.out().display().to_string(),
                "selected": s.selected,
                "no_consent": s.no_consent,
                "suppressed": s.suppressed,
                "beyond_top": s.beyond_top,
                "written": s.written,
            }),
            Some(s.written),
        ))
    }

    /// A report stage: the run so far, as one page.
    async fn report(&self, out_dir: &Path) -> Result<Done> {
        let params = crate::report::ReportParams {
            warehouse: self.root,
            out_dir,
            run: self.run,
            model: None,
            engine: self.engine,
        };
        let r = crate::report::write(&params).await?;
        Ok((
            json!({
                "file": r.path.display().to_string(),
                "charts": r.charts,
                "missing": r.missing,
            }),
            None,
        ))
    }
}

/// An ingest's metrics: files and rows, in all and per input file.
fn ingest_metrics(s: &ingest::LoadSummary, new_files: usize) -> Value {
    let sum = |f: fn(&ingest::FileSummary) -> u64| s.files.iter().map(f).sum::<u64>();
    json!({
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
    })
}

/// The `freshness(new_file)` gate: passes when the load found a file not loaded before.
fn new_file_gate(contract: &Contract, s: &ingest::LoadSummary, new_files: usize) -> TestResult {
    if new_files > 0 {
        return TestResult {
            test: "freshness(new_file)".into(),
            status: TestStatus::Pass,
            failing: 0,
            message: String::new(),
        };
    }
    gate(
        "freshness(new_file)".into(),
        format!(
            "no new file arrived since the last load: all {} input files of {} were loaded \
             before",
            s.files.len(),
            contract.file.display()
        ),
    )
}

/// A failed ingest gate as a test result (exit code 1, like a failed data test).
fn gate(test: String, message: String) -> TestResult {
    TestResult {
        test,
        status: TestStatus::Fail,
        failing: 1,
        message,
    }
}

/// The first source of `contract` whose newest file is older than `hours`, as a message.
fn stale_source(contract: &Contract, hours: u64) -> Result<Option<String>> {
    // Checked to at most a century when the pipeline was read, so this does not overflow.
    let limit = std::time::Duration::from_secs(hours.saturating_mul(3600));
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
