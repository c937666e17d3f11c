//! The HTML report: one self-contained page for people, per pipeline and as-of date.
//!
//! - Input: the warehouse (as of the run's date), the run's manifest, the churn model file.
//! - Output: `<out-dir>/<pipeline>/<as-of>/index.html` (`ecrm report`, default out-dir
//!   `notebooks-out`; or a pipeline's `report` stage), written atomically.
//! - Sections: revenue by month; data quality (rows read, loaded, rejected and duplicated by
//!   source, rejects by reason); segment sizes and profiles; the RFM heat map (recency score ×
//!   frequency score); the churn model's ROC curve and cumulative gains on its held-out
//!   customers; customer value by decile, the value model's weekly tracking, the whale curve
//!   of profit and the cohort retention heat map (`value`); each campaign's effect against
//!   its control arm, the uplift model's Qini curve and consent over time (`campaign`); the
//!   web funnel, sessions by channel and device and the top paths (`web`); the top rules by
//!   lift; the run's stage timings and failed tests. A section
//!   whose table does not exist says which stage builds it instead of failing the report.
//!
//! Why one file with inline SVG and no script: it is mailed, archived and opened offline; a
//! Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch the
//! page might still try, so "no network" holds by construction (and a test checks it in a
//! real browser).

mod campaign;
pub mod charts;
mod value;
mod web;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::churn::ModelFile;
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
use crate::warehouse::runs::{Manifest, RunStatus, StageStatus, TestStatus};
use crate::warehouse::{Warehouse, tables};

/// The charts a full report holds, by their `data-chart` names (the browser test looks for
/// each).
pub const CHARTS: [&str; 16] = [
    "revenue-by-month",
    "rejects-by-reason",
    "segment-sizes",
    "rfm-heat-map",
    "churn-roc",
    "churn-gains",
    "value-deciles",
    "value-tracking",
    "whale-curve",
    "cohort-heat-map",
    "campaign-effects",
    "qini-curve",
    "consent-over-time",
    "web-funnel",
    "web-channels",
    "stage-timings",
];

/// What was written.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub pipeline: String,
    pub as_of: NaiveDate,
    /// `data-chart` names drawn.
    pub charts: Vec<&'static str>,
    /// Sections left out, with why.
    pub missing: Vec<String>,
}

/// What a report is made from.
#[derive(Debug, Clone)]
pub struct ReportParams<'a> {
    pub warehouse: &'a Path,
    pub out_dir: &'a Path,
    /// The run it reports (its pipeline, as-of date and stage timings); without one, the
    /// pipeline is called `warehouse` and the as-of date is the day after the last order line.
    pub run: Option<&'a Manifest>,
    /// The churn model file (default: the run's churn-train stage's, else
    /// `<warehouse>/models/churn.json` when it exists).
    pub model: Option<PathBuf>,
    pub engine: &'a EngineOptions,
}

/// Gathers the data and writes the page (see the module doc).
pub async fn write(p: &ReportParams<'_>) -> Result<Report> {
    let wh = Warehouse::open(p.warehouse)?;
    let run_as_of = p
        .run
        .and_then(|m| m.as_of.as_deref())
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| Error::Internal(format!("the run's as_of {d:?} is not a date")))
        })
        .transpose()?;
    let mut engine = p.engine.clone();
    engine.as_of = run_as_of;
    let mut page = Page::default();
    let ctx = olap::session(&wh, &engine).await?;
    let as_of = match run_as_of {
        Some(d) => d,
        None => {
            wh.table(tables::FACT_SALES)?;
            crate::features::default_as_of(&ctx).await?
        }
    };
    let has = |t: &str| wh.table(t).is_ok();
    let clock = std::time::Instant::now();
    let lap = |section: &str| {
        tracing::debug!(section, ms = clock.elapsed().as_millis() as u64, "report");
    };
    page.revenue(&ctx, has(tables::FACT_SALES)).await?;
    lap("revenue");
    page.quality(&ctx, has(tables::LOADS), has(tables::REJECTS))
        .await?;
    lap("quality");
    page.segments(&ctx, has(tables::SEGMENT_PROFILES)).await?;
    lap("segments");
    page.rfm(&ctx, has(tables::CUSTOMER_FEATURES)).await?;
    lap("rfm");
    let model = p
        .model
        .clone()
        .or_else(|| default_model(p.warehouse, p.run));
    page.churn(model.as_deref())?;
    page.value(&ctx, has(tables::CUSTOMER_VALUE)).await?;
    lap("value");
    let value_model = value_model(p.warehouse, p.run);
    page.tracking(value_model.as_deref(), p.warehouse, &engine)
        .await?;
    lap("tracking");
    page.whale(&ctx, has(tables::CUSTOMER_PROFIT)).await?;
    lap("whale");
    page.cohorts(&ctx, has(tables::COHORT_RETENTION)).await?;
    lap("cohorts");
    page.campaigns(&ctx, has(tables::CAMPAIGN_RESULTS)).await?;
    lap("campaigns");
    page.qini(uplift_model(p.warehouse, p.run).as_deref())?;
    page.consent(&wh, &engine, as_of, has(tables::DIM_CUSTOMER))
        .await?;
    lap("consent");
    page.web(&ctx, &wh, &engine, as_of, has(tables::WEB_SESSIONS))
        .await?;
    lap("web");
    page.rules(&ctx, has(tables::BASKET_RULES)).await?;
    lap("rules");
    page.timings(p.run)?;
    let pipeline = p
        .run
        .map_or("warehouse".to_string(), |m| m.pipeline.clone());
    let html = page.html(&pipeline, as_of, p.run, p.warehouse);
    let dir = p.out_dir.join(&pipeline).join(as_of.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join("index.html");
    crate::warehouse::files::write_bytes(&path, html.as_bytes())?;
    Ok(Report {
        path,
        pipeline,
        as_of,
        charts: page.charts,
        missing: page.missing,
    })
}

/// The run's churn-train model, else `<warehouse>/models/churn.json`.
fn default_model(warehouse: &Path, run: Option<&Manifest>) -> Option<PathBuf> {
    let from_run = run.and_then(|m| {
        m.stages
            .iter()
            .filter(|s| s.kind == "churn-train")
            .find_map(|s| s.metrics.get("model_file")?.as_str().map(PathBuf::from))
    });
    from_run
        .or_else(|| Some(crate::warehouse::model_path(warehouse, "churn")))
        .filter(|p| p.is_file())
}

/// The value model file: the run's clv-train stage's, else `<warehouse>/models/value.json`
/// when it exists.
fn value_model(warehouse: &Path, run: Option<&Manifest>) -> Option<PathBuf> {
    run_model(warehouse, run, "clv-train", "value")
}

/// The uplift model the run trained, else `<warehouse>/models/uplift.json` when it exists.
fn uplift_model(warehouse: &Path, run: Option<&Manifest>) -> Option<PathBuf> {
    run_model(warehouse, run, "uplift-train", "uplift")
}

/// The model file a run's stage of `kind` wrote, else the warehouse's model `name`.
fn run_model(warehouse: &Path, run: Option<&Manifest>, kind: &str, name: &str) -> Option<PathBuf> {
    let from_run = run.and_then(|m| {
        m.stages
            .iter()
            .filter(|s| s.kind == kind)
            .find_map(|s| s.metrics.get("model_file")?.as_str().map(PathBuf::from))
    });
    from_run
        .or_else(|| Some(crate::warehouse::model_path(warehouse, name)))
        .filter(|p| p.is_file())
}

/// The page being built: sections of HTML in order.
#[derive(Default)]
struct Page {
    sections: Vec<String>,
    charts: Vec<&'static str>,
    missing: Vec<String>,
}

impl Page {
    fn section(&mut self, id: &str, title: &str, body: String) {
        self.sections.push(format!(
            "<section id=\"{id}\">\n<h2>{}</h2>\n{body}</section>\n",
            esc(title)
        ));
    }

    fn figure(&mut self, name: &'static str, caption: &str, svg: String) -> String {
        self.charts.push(name);
        format!(
            "<figure data-chart=\"{name}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
            esc(caption)
        )
    }

    fn absent(&mut self, id: &str, title: &str, why: &str) {
        self.missing.push(format!("{title}: {why}"));
        self.section(id, title, format!("<p class=\"absent\">{}</p>\n", esc(why)));
    }

    async fn revenue(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Revenue by month";
        if !present {
            self.absent("revenue", title, "no order lines: run an ingest stage");
            return Ok(());
        }
        let rows = query(
            ctx,
            "SELECT to_char(date_trunc('month', invoice_ts), '%Y-%m') AS month,
                    CAST(sum(revenue) AS DOUBLE) AS net,
                    CAST(-coalesce(sum(revenue) FILTER (WHERE is_return), 0) AS DOUBLE) AS returned,
                    count(DISTINCT invoice_no) FILTER (WHERE NOT is_return) AS orders
             FROM fact_sales GROUP BY 1 ORDER BY 1",
        )
        .await?;
        let labels: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
        let net: Vec<f64> = rows.iter().map(|r| num(&r[1])).collect();
        let every = labels.len().div_ceil(12);
        let svg = charts::bars(&labels, &net, "net revenue", every, (900, 320))?;
        let total: f64 = net.iter().sum();
        let mut body = self.figure(
            "revenue-by-month",
            &format!(
                "Net revenue (returns subtracted) per month, {} months, {} in all.",
                labels.len(),
                charts::short_number(total)
            ),
            svg,
        );
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r[0].clone(), money(&r[1]), money(&r[2]), r[3].clone()])
            .collect();
        body.push_str(&details(
            "Monthly figures",
            &table(
                &["month", "net revenue", "returned", "orders"],
                &table_rows,
                None,
            ),
        ));
        self.section("revenue", title, body);
        Ok(())
    }

    async fn quality(&mut self, ctx: &SessionContext, loads: bool, rejects: bool) -> Result<()> {
        let title = "Data quality";
        if !loads {
            self.absent("quality", title, "no loads: run an ingest stage");
            return Ok(());
        }
        let by_source = query(
            ctx,
            "SELECT source, count(*) AS files, sum(rows_read), sum(rows_loaded),
                    sum(rows_rejected), sum(duplicates)
             FROM loads GROUP BY 1 ORDER BY 1",
        )
        .await?;
        let mut body = table(
            &[
                "source",
                "files",
                "rows read",
                "loaded",
                "rejected",
                "duplicates",
            ],
            &by_source,
            None,
        );
        let read: f64 = by_source.iter().map(|r| num(&r[2])).sum();
        let rejected: f64 = by_source.iter().map(|r| num(&r[4])).sum();
        let reasons = if rejects {
            query(
                ctx,
                "SELECT reason, count(*) AS n FROM rejects GROUP BY 1 ORDER BY 2 DESC, 1",
            )
            .await?
        } else {
            Vec::new()
        };
        if reasons.is_empty() {
            body.push_str("<p>No rejected rows.</p>\n");
        } else {
            let labels: Vec<String> = reasons.iter().map(|r| r[0].clone()).collect();
            let values: Vec<f64> = reasons.iter().map(|r| num(&r[1])).collect();
            let svg = charts::hbars(&labels, &values, &[], "rejected rows", 720)?;
            let share = if read > 0.0 { rejected / read } else { 0.0 };
            body.push_str(&self.figure(
                "rejects-by-reason",
                &format!(
                    "Rejected rows by reason code: {} of {} rows read ({:.2}%); every rejected \
                     row is in table rejects with its raw text.",
                    rejected,
                    read,
                    100.0 * share
                ),
                svg,
            ));
        }
        self.section("quality", title, body);
        Ok(())
    }

    async fn segments(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Segments";
        if !present {
            self.absent(
                "segments",
                title,
                "no segment_profiles: run a segment stage",
            );
            return Ok(());
        }
        let rows = query(
            ctx,
            "SELECT segment_name, method, customers, share, revenue_share, recency_days_median,
                    frequency_median, monetary_median
             FROM segment_profiles ORDER BY segment_id",
        )
        .await?;
        let labels: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
        let sizes: Vec<f64> = rows.iter().map(|r| num(&r[2])).collect();
        let svg = charts::hbars(&labels, &sizes, &[], "customers", 720)?;
        let method = rows.first().map_or(String::new(), |r| r[1].clone());
        let mut body = self.figure(
            "segment-sizes",
            &format!("Customers per segment ({method})."),
            svg,
        );
        let profile: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r[0].clone(),
                    r[2].clone(),
                    percent(&r[3]),
                    percent(&r[4]),
                    format!("{:.0}", num(&r[5])),
                    format!("{:.1}", num(&r[6])),
                    money(&r[7]),
                ]
            })
            .collect();
        body.push_str(&table(
            &[
                "segment",
                "customers",
                "share",
                "revenue share",
                "median recency (days)",
                "median orders",
                "median spend",
            ],
            &profile,
            None,
        ));
        self.section("segments", title, body);
        Ok(())
    }

    async fn rfm(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "RFM heat map";
        if !present {
            self.absent("rfm", title, "no customer_features: run a features stage");
            return Ok(());
        }
        let rows = query(
            ctx,
            "SELECT r_score, f_score, count(*) FROM customer_features GROUP BY 1, 2",
        )
        .await?;
        // Rows: recency score 5 (bought most recently) at the top; columns: frequency 1..5.
        let mut counts = vec![vec![0u64; 5]; 5];
        for r in &rows {
            let (rs, fs) = (num(&r[0]) as usize, num(&r[1]) as usize);
            if (1..=5).contains(&rs) && (1..=5).contains(&fs) {
                counts[5 - rs][fs - 1] = num(&r[2]) as u64;
            }
        }
        let row_labels: Vec<String> = (1..=5).rev().map(|s| s.to_string()).collect();
        let col_labels: Vec<String> = (1..=5).map(|s| s.to_string()).collect();
        let svg = charts::heat_map(
            &counts,
            &row_labels,
            &col_labels,
            "frequency score",
            "recency score",
        )?;
        let body = self.figure(
            "rfm-heat-map",
            "Customers by recency score (5 = bought most recently) and frequency score (5 = \
             most orders), quintiles of the feature mart.",
            svg,
        );
        self.section("rfm", title, body);
        Ok(())
    }

    fn churn(&mut self, model: Option<&Path>) -> Result<()> {
        let title = "Churn model";
        let Some(path) = model else {
            self.absent("churn", title, "no churn model: run a churn-train stage");
            return Ok(());
        };
        let m = ModelFile::read(path)?;
        let x = &m.metrics;
        let auc = x.roc_auc.map_or("n/a".to_string(), |a| format!("{a:.3}"));
        let mut body = format!(
            "<p>Held out: {} customers (churn rate {:.1}%): ROC AUC {auc}, KS {:.3}; tree of \
             depth {} with {} leaves, trained on {} customers at {}.</p>\n",
            x.held_out_rows,
            100.0 * x.base_rate,
            x.ks,
            m.tree.depth(),
            m.tree.leaves(),
            m.source.rows,
            m.source
                .cutoff
                .map_or_else(|| m.source.input.clone(), |d| d.to_string()),
        );
        body.push_str("<div class=\"pair\">\n");
        if x.roc_curve.is_empty() {
            self.missing
                .push("churn ROC curve: the model file predates stored curves".into());
        } else {
            let points: Vec<(f64, f64)> = x.roc_curve.iter().map(|p| (p[0], p[1])).collect();
            let svg = charts::unit_lines(
                &points,
                "false positive rate",
                "true positive rate",
                &format!("model, AUC {auc}"),
            )?;
            body.push_str(&self.figure("churn-roc", "ROC curve on the held-out customers.", svg));
        }
        let mut gains = vec![(0.0, 0.0)];
        gains.extend(
            x.gains
                .iter()
                .map(|d| (d.decile as f64 / 10.0, d.cumulative_gain)),
        );
        let svg = charts::unit_lines(
            &gains,
            "share of customers contacted (riskiest first)",
            "share of churners reached",
            "model",
        )?;
        let top = x.gains.first().map_or(0.0, |d| d.lift);
        body.push_str(&self.figure(
            "churn-gains",
            &format!("Cumulative gains by decile; the riskiest tenth holds {top:.2}× its share."),
            svg,
        ));
        body.push_str("</div>\n");
        self.section("churn", title, body);
        Ok(())
    }

    async fn rules(&mut self, ctx: &SessionContext, present: bool) -> Result<()> {
        let title = "Top rules by lift";
        let t = tables::BASKET_RULES;
        if !present {
            self.absent("rules", title, &format!("no {t}: run a basket stage"));
            return Ok(());
        }
        let rows = query(
            ctx,
            &format!(
                "SELECT antecedent, consequent, count, support, confidence, lift FROM {t}
                 ORDER BY lift DESC, antecedent, consequent LIMIT 15"
            ),
        )
        .await?;
        let total = query(ctx, &format!("SELECT count(*) FROM {t}")).await?;
        // Items by description as well as code: the codes alone say nothing to a reader.
        let descriptions = if ctx.table_exist(tables::DIM_PRODUCT)? {
            crate::basket::recommend::product_descriptions(ctx).await?
        } else {
            Default::default()
        };
        let described = |items: &str| {
            items
                .split(" | ")
                .map(|code| match descriptions.get(code) {
                    Some(d) => format!("{d} ({code})"),
                    None => code.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| {
                vec![
                    described(&r[0]),
                    described(&r[1]),
                    r[2].clone(),
                    percent(&r[3]),
                    format!("{:.3}", num(&r[4])),
                    format!("{:.2}", num(&r[5])),
                ]
            })
            .collect();
        let mut body = format!(
            "<p>The {} strongest of {} rules behind the cross-sell recommendations.</p>\n",
            rows.len(),
            total.first().map_or("0".to_string(), |r| r[0].clone())
        );
        body.push_str(&table(
            &[
                "if bought",
                "then also",
                "baskets",
                "support",
                "confidence",
                "lift",
            ],
            &rows,
            Some("top-rules"),
        ));
        self.section("rules", title, body);
        Ok(())
    }

    fn timings(&mut self, run: Option<&Manifest>) -> Result<()> {
        let title = "Run";
        let Some(m) = run else {
            self.absent("run", title, "not made by a pipeline run: no stage timings");
            return Ok(());
        };
        let ran: Vec<_> = m.stages.iter().filter(|s| s.seconds.is_some()).collect();
        let mut body = String::new();
        if !ran.is_empty() {
            let labels: Vec<String> = ran.iter().map(|s| s.name.clone()).collect();
            let secs: Vec<f64> = ran.iter().map(|s| s.seconds.unwrap_or(0.0)).collect();
            let failed: Vec<bool> = ran
                .iter()
                .map(|s| matches!(s.status, StageStatus::Failed | StageStatus::TestsFailed))
                .collect();
            let svg = charts::hbars(&labels, &secs, &failed, "seconds", 720)?;
            body.push_str(&self.figure(
                "stage-timings",
                &format!(
                    "Seconds per stage of run {} (red: failed or tests failed).",
                    m.run_id
                ),
                svg,
            ));
        }
        let rows: Vec<Vec<String>> = m
            .stages
            .iter()
            .map(|s| {
                let tests = s
                    .tests
                    .iter()
                    .filter(|t| t.status == TestStatus::Pass)
                    .count();
                vec![
                    s.name.clone(),
                    s.kind.clone(),
                    s.status.name().to_string(),
                    s.seconds.map_or(String::new(), |t| format!("{t:.2}")),
                    format!("{tests}/{}", s.tests.len()),
                ]
            })
            .collect();
        body.push_str(&table(
            &["stage", "kind", "status", "seconds", "tests passed"],
            &rows,
            None,
        ));
        let problems: Vec<String> = m
            .stages
            .iter()
            .flat_map(|s| {
                let tests = s
                    .tests
                    .iter()
                    .filter(|t| t.status != TestStatus::Pass)
                    .map(move |t| {
                        format!(
                            "{}: {} ({}): {}",
                            s.name,
                            t.test,
                            t.status.name(),
                            t.message
                        )
                    });
                tests.chain(s.error.iter().map(move |e| format!("{}: {e}", s.name)))
            })
            .collect();
        if !problems.is_empty() {
            body.push_str("<h3>Problems</h3>\n<ul class=\"problems\">\n");
            for p in problems {
                let _ = writeln!(body, "<li>{}</li>", esc(&p));
            }
            body.push_str("</ul>\n");
        }
        self.section("run", title, body);
        Ok(())
    }

    fn html(&self, pipeline: &str, as_of: NaiveDate, run: Option<&Manifest>, wh: &Path) -> String {
        // A report stage writes the page while its run is still going.
        let status = run.map_or(String::new(), |m| {
            let state = if m.status == RunStatus::Running {
                "(this report is one of its stages)".to_string()
            } else {
                esc(m.status.name())
            };
            format!(" · run <code>{}</code> {state}", esc(&m.run_id))
        });
        format!(
            "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>Warehouse <code>{wh}</code>{status} · made by ecrm {version} at {now}</p>
</header>
<main>
{sections}</main>
</body>
</html>
",
            title = esc(&format!("{pipeline} — as of {as_of}")),
            wh = esc(&wh.display().to_string()),
            version = env!("CARGO_PKG_VERSION"),
            now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            sections = self.sections.concat(),
        )
    }
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 0 auto; max-width: 960px; padding: 0 16px 48px; color: #222; }
header { border-bottom: 2px solid #3168ac; margin-bottom: 8px; }
h1 { font-size: 1.5em; margin: 20px 0 4px; }
h2 { font-size: 1.2em; margin-top: 32px; border-bottom: 1px solid #ddd; }
figure { margin: 12px 0; }
figcaption { color: #555; font-size: 0.9em; }
svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; }
.absent { color: #777; font-style: italic; }
.problems li { color: #b3261e; }
code { font-size: 0.95em; }
";

/// Runs a query and renders every cell as text (empty for NULL).
async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<String>>> {
    let (_, batches) = olap::sql(ctx, sql).await?;
    rows(&batches)
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        // Decimals and floats as plain numbers, so `num` reads them back.
        let cols: Vec<std::sync::Arc<dyn Array>> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Decimal128(..) | DataType::Decimal256(..) => {
                    datafusion::arrow::compute::cast(c, &DataType::Float64)
                }
                _ => Ok(c.clone()),
            })
            .collect::<std::result::Result<_, _>>()?;
        let fmts = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(out)
}

fn num(text: &str) -> f64 {
    text.parse().unwrap_or(0.0)
}

fn money(text: &str) -> String {
    format!("{:.2}", num(text))
}

fn percent(text: &str) -> String {
    format!("{:.1}%", 100.0 * num(text))
}

/// An HTML table; cells that read as numbers are right-aligned.
fn table(headers: &[&str], rows: &[Vec<String>], name: Option<&str>) -> String {
    let mut s = match name {
        Some(n) => format!("<table data-table=\"{n}\">\n<tr>"),
        None => "<table>\n<tr>".to_string(),
    };
    for h in headers {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let numeric = c.trim_end_matches('%').parse::<f64>().is_ok();
            let class = if numeric { " class=\"n\"" } else { "" };
            let _ = write!(s, "<td{class}>{}</td>", esc(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
    s
}

fn details(summary: &str, inner: &str) -> String {
    format!(
        "<details>\n<summary>{}</summary>\n{inner}</details>\n",
        esc(summary)
    )
}

/// Text for HTML content and attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_align_right() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let t = table(
            &["a", "b"],
            &[vec!["x<y".into(), "12.5%".into()]],
            Some("t"),
        );
        assert!(t.contains("<td>x&lt;y</td><td class=\"n\">12.5%</td>"));
        assert!(t.starts_with("<table data-table=\"t\">"));
    }
}
