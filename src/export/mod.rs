//! Consent-aware customer exports for marketers: one segment, the customers most at risk of
//! churning, cross-sell recommendations, or the most valuable customers.
//!
//! - Input tables: `segments` (the last segmentation run), `churn_scores` (the last churn
//!   scoring), `recommendations` (the last `basket recommend`) or `customer_value` (the last
//!   `clv score`); `dim_customer` (current
//!   rows: e-mail, name, consent flags) and `customer_features` for more columns.
//! - Output: one file, CSV (UTF-8, a header row, no index column), Parquet, JSON (one array) or
//!   NDJSON; and a summary ([`ExportSummary`]) that the CLI prints on stderr.
//! - Parameters ([`ExportParams`]): the [`Selection`] (a segment by name, compared
//!   case-insensitively, or id; churn scores by risk band, minimum probability and a top N;
//!   recommendations up to a rank), the columns (default [`SEGMENT_COLUMNS`],
//!   [`CHURN_COLUMNS`], [`RECOMMENDATION_COLUMNS`]), the consent channel required (default
//!   none), a suppression file (default none).
//!
//! Contract:
//! - With a consent channel, only customers with consent on it at the export's as-of date
//!   (a pipeline run's, or `--as-of`; else now) are written: the latest consent event or
//!   change of the customer file's opt-in before it ([`crate::campaign::consent`]), so a
//!   withdrawal counts from its timestamp; no event at all counts as no consent.
//! - Nobody listed in the suppression file is written, whatever their consent: one customer id
//!   or e-mail per line, no header, blank lines ignored; a line with `@` is an e-mail, compared
//!   trimmed and case-insensitively with the customer's e-mail; any other line is a customer
//!   id, compared trimmed.
//! - Rows are ordered by customer id (segments), by descending churn probability, then
//!   customer id (churn), by customer id and rank (recommendations), or by value decile,
//!   descending CLV and expected purchases, then customer id (value), and columns as
//!   requested, so the same warehouse gives the same bytes.
//! - A churn or value export's `--top N` keeps the N riskiest (most valuable) customers who
//!   may be contacted: it applies after consent and suppression, so a call list is never
//!   short because someone at the top opted out.
//! - An unknown segment is an error that lists the segments there are.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, filter_record_batch, lexsort_to_indices,
    take_record_batch,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::churn::RiskBand;
use crate::error::{Error, Result};
use crate::olap::sqltext::{ident, literal};
use crate::olap::{self, EngineOptions};
use crate::warehouse::files::{self, FileFormat};
use crate::warehouse::{Warehouse, tables};

/// Columns of a segment export when none are named.
pub const SEGMENT_COLUMNS: [&str; 6] = [
    "customer_id",
    "email",
    "name",
    "country",
    "segment_id",
    "segment_name",
];

/// Columns of a churn export when none are named.
pub const CHURN_COLUMNS: [&str; 7] = [
    "customer_id",
    "email",
    "name",
    "country",
    "churn_probability",
    "risk_band",
    "reasons",
];

crate::choices! {
    /// Consent channels.
    pub enum Channel {
        Email = "email",
        Phone = "phone",
    }
}

impl Channel {
    fn column(self) -> &'static str {
        match self {
            Channel::Email => "email_opt_in",
            Channel::Phone => "phone_opt_in",
        }
    }
}

/// Columns of a recommendations export when none are named: the product by code and by
/// description, as a marketer reads it (`category`, without a description, replaces them
/// for category-level recommendations).
pub const RECOMMENDATION_COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "name",
    "rank",
    "product_id",
    "description",
    "score",
    "rule",
];

/// Columns of a value export when none are named.
pub const VALUE_COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "name",
    "country",
    "clv",
    "p_alive",
    "expected_purchases",
    "value_decile",
];

/// Columns of an uplift export when none are named.
pub const UPLIFT_COLUMNS: [&str; 8] = [
    "customer_id",
    "email",
    "name",
    "country",
    "uplift",
    "p_treated",
    "p_control",
    "group",
];

/// Which customers to export.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// One segment of table `segments`: a name (case-insensitive) or an id.
    Segment(SegmentSelection),
    /// Customers of table `churn_scores`, riskiest first.
    Churn(ChurnSelection),
    /// Rows of table `recommendations`, by customer and rank.
    Recommendations(RecommendationSelection),
    /// Customers of table `customer_value`, most valuable first.
    Value(ValueSelection),
    /// Persuadable customers of table `uplift_scores`, most persuadable first.
    Uplift(UpliftSelection),
}

impl Selection {
    /// What a pipeline's export stage calls it (`what = "..."`).
    pub fn what(&self) -> &'static str {
        match self {
            Selection::Segment(_) => "segment",
            Selection::Churn(_) => "churn",
            Selection::Recommendations(_) => "recommendations",
            Selection::Value(_) => "value",
            Selection::Uplift(_) => "uplift",
        }
    }

    /// The table it selects from, and the command that builds that table.
    pub fn table(&self) -> (&'static str, &'static str) {
        match self {
            Selection::Segment(_) => (tables::SEGMENTS, "ecrm segment"),
            Selection::Churn(_) => (tables::CHURN_SCORES, "ecrm churn score"),
            Selection::Recommendations(_) => (tables::RECOMMENDATIONS, "ecrm basket recommend"),
            Selection::Value(_) => (tables::CUSTOMER_VALUE, "ecrm clv score"),
            Selection::Uplift(_) => (tables::UPLIFT_SCORES, "ecrm campaign uplift score"),
        }
    }
}

/// A segment export's selection.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSelection {
    /// The segment: a segment_name (case-insensitive) or segment_id from table segments.
    pub segment: String,
}

/// A churn export's selection: the customers in one of `risk` (all bands when empty) with a
/// churn probability of at least `min_probability`, at most `top` of them written.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnSelection {
    /// Only these risk bands (repeatable or comma-separated; high ≥ 0.6, medium ≥ 0.3, low
    /// below). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub risk: Vec<RiskBand>,
    /// Only customers with at least this churn probability (0 to 1).
    #[arg(long, value_name = "P")]
    pub min_probability: Option<f64>,
    /// At most this many customers: the riskiest who pass consent and suppression.
    #[arg(long, value_name = "N")]
    pub top: Option<u64>,
}

/// A recommendations export's selection.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendationSelection {
    /// Only recommendations up to this rank.
    #[arg(long, value_name = "N")]
    pub max_rank: Option<u32>,
}

/// A value export's selection: customers of `customer_value` in one of `deciles` (all when
/// empty) at least `min_p_alive` likely to be alive, most valuable first, at most `top`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValueSelection {
    /// Only these value deciles (1 = the most valuable tenth; repeatable or
    /// comma-separated). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "D")]
    pub deciles: Vec<u8>,
    /// Only customers at least this likely to be alive (0 to 1).
    #[arg(long, value_name = "P")]
    pub min_p_alive: Option<f64>,
    /// At most this many customers: the most valuable who pass consent and suppression.
    #[arg(long, value_name = "N")]
    pub top: Option<u64>,
}

/// An uplift export's selection: the customers of `uplift_scores` a campaign is predicted to
/// persuade (group persuadable, uplift at least `min_uplift`), most persuadable first, at most
/// `top`. A sleeping dog (contact makes them buy less) is never written, whatever the options.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpliftSelection {
    /// Only customers with at least this predicted uplift (a difference of probabilities).
    #[arg(long, value_name = "U")]
    pub min_uplift: Option<f64>,
    /// At most this many customers: the most persuadable who pass consent and suppression.
    #[arg(long, value_name = "N")]
    pub top: Option<u64>,
}

/// Where an export goes and who may be in it: the parameters every export has.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// File format. Default: from the --out extension (csv when it says nothing).
    #[arg(long, value_enum)]
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// Only customers who opted in to this channel.
    #[arg(long, value_enum)]
    #[serde(default)]
    pub require_consent: Option<Channel>,
    /// Never export anyone listed here: one customer id or e-mail per line, no header.
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub suppress: Option<PathBuf>,
    /// Columns, in order (comma-separated). Default: the export's own (segment:
    /// customer_id, email, name, country, segment_id, segment_name; churn: customer_id,
    /// email, name, country, churn_probability, risk_band, reasons; recommendations:
    /// customer_id, email, name, rank, product_id and description or category, score, rule).
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

/// What to export: `ecrm export WHAT`'s options and a pipeline `export` stage's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportParams {
    pub selection: Selection,
    pub to: Destination,
}

impl ExportParams {
    /// Checks each parameter; the first failure names its key and what is allowed.
    pub fn check(self) -> Result<ValidExportParams> {
        if let Selection::Churn(c) = &self.selection
            && let Some(p) = c.min_probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(Error::param(
                "min_probability",
                format!("{p} is not a probability; 0 to 1"),
            ));
        }
        if let Selection::Value(v) = &self.selection {
            if let Some(p) = v.min_p_alive
                && !(0.0..=1.0).contains(&p)
            {
                return Err(Error::param(
                    "min_p_alive",
                    format!("{p} is not a probability; 0 to 1"),
                ));
            }
            if let Some(d) = v.deciles.iter().find(|d| !(1..=10).contains(*d)) {
                return Err(Error::param(
                    "deciles",
                    format!("{d} is not a decile; 1 to 10"),
                ));
            }
        }
        if let Some(p) = &self.to.suppress
            && !p.is_file()
        {
            return Err(Error::param(
                "suppress",
                format!("{}: no such file", p.display()),
            ));
        }
        if let Some(c) = &self.to.columns
            && c.is_empty()
        {
            return Err(Error::param("columns", "name at least one column"));
        }
        let format = self
            .to
            .format
            .unwrap_or_else(|| FileFormat::for_path(&self.to.out));
        Ok(ValidExportParams {
            selection: self.selection,
            format,
            to: self.to,
        })
    }
}

/// Checked export parameters: the only kind [`export`] accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidExportParams {
    selection: Selection,
    /// The format, resolved from the file name when not given.
    format: FileFormat,
    to: Destination,
}

impl ValidExportParams {
    pub fn selection(&self) -> &Selection {
        &self.selection
    }
    pub fn out(&self) -> &Path {
        &self.to.out
    }
    pub fn require_consent(&self) -> Option<Channel> {
        self.to.require_consent
    }
    /// The same export to another file (a pipeline's `{as_of}` filled in); the format stays
    /// the one checked.
    pub fn with_out(mut self, out: PathBuf) -> Self {
        self.to.out = out;
        self
    }
}

/// Counts of an export, for the summary on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// What was selected, e.g. `segment 3 "Champions" (rfm)`.
    pub selection: String,
    /// Customers selected, before consent and suppression.
    pub selected: u64,
    pub no_consent: u64,
    pub suppressed: u64,
    /// Contactable customers beyond a churn export's `top`.
    pub beyond_top: u64,
    pub written: u64,
}

/// A suppression list: customer ids and lower-cased e-mails.
#[derive(Debug, Default)]
pub struct Suppression {
    ids: HashSet<String>,
    emails: HashSet<String>,
}

impl Suppression {
    /// Reads a suppression file (the format in the module doc).
    pub fn read(path: &Path) -> Result<Suppression> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut s = Suppression::default();
        for line in text.trim_start_matches('\u{feff}').lines() {
            let v = line.trim();
            if v.is_empty() {
                continue;
            }
            if v.contains('@') {
                s.emails.insert(v.to_lowercase());
            } else {
                s.ids.insert(v.to_string());
            }
        }
        Ok(s)
    }

    /// Whether a customer with this id and e-mail is suppressed.
    pub fn contains(&self, id: &str, email: Option<&str>) -> bool {
        self.ids.contains(id.trim())
            || email.is_some_and(|e| self.emails.contains(&e.trim().to_lowercase()))
    }
}

/// Column `name` of `b` as text.
fn text_column(b: &RecordBatch, name: &str) -> Result<StringArray> {
    olap::text_column(b.column(b.schema().index_of(name)?))
}

/// The segment a name or id picks, as (id, name, method); an unknown one lists them all.
async fn find_segment(ctx: &SessionContext, wanted: &str) -> Result<(i64, String, String)> {
    let (_, seg) = olap::sql(
        ctx,
        "SELECT segment_id, segment_name, method, count(*) AS customers FROM segments \
         GROUP BY segment_id, segment_name, method ORDER BY segment_id",
    )
    .await?;
    let mut known = Vec::new();
    let mut chosen = None;
    let trimmed = wanted.trim();
    for b in &seg {
        let ids = int_column(b, "segment_id")?;
        let names = text_column(b, "segment_name")?;
        let methods = text_column(b, "method")?;
        let counts = int_column(b, "customers")?;
        for i in 0..b.num_rows() {
            let (id, name) = (ids.value(i), names.value(i).to_string());
            known.push(format!("{id} {name:?} ({} customers)", counts.value(i)));
            if name.eq_ignore_ascii_case(trimmed) || trimmed.parse::<i64>() == Ok(id) {
                chosen = Some((id, name, methods.value(i).to_string()));
            }
        }
    }
    chosen.ok_or_else(|| Error::NotFound {
        what: "segment",
        name: wanted.into(),
        hint: format!("; the segments are: {}", known.join(", ")),
    })
}

fn int_column(b: &RecordBatch, name: &str) -> Result<Int64Array> {
    let col = cast(b.column(b.schema().index_of(name)?), &DataType::Int64)?;
    Ok(col
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::Internal(format!("{name} is not an integer")))?
        .clone())
}

/// Exports the selected customers (see the module doc for the contract).
pub async fn export(
    wh_root: &Path,
    p: &ValidExportParams,
    engine: &EngineOptions,
) -> Result<ExportSummary> {
    // The suppression list is read before any data, so a wrong path fails at once.
    let suppression = match &p.to.suppress {
        Some(f) => Suppression::read(f)?,
        None => Suppression::default(),
    };
    let (table, command) = p.selection.table();
    let wh = Warehouse::open(wh_root)?;
    if wh.table(table).is_err() {
        return Err(Error::NotFound {
            what: "table",
            name: table.into(),
            hint: format!(": run `{command}` first"),
        });
    }
    let ctx = olap::session(&wh, engine).await?;
    let chosen = choose(&ctx, &p.selection).await?;
    let wanted: Vec<String> =
        p.to.columns
            .clone()
            .unwrap_or_else(|| chosen.defaults.iter().map(|c| c.to_string()).collect());
    let sources = column_sources(&wh, &ctx, table).await?;
    // Consent as of the run's date (a pipeline's, or `--as-of`), else now: a withdrawal
    // counts from its timestamp.
    let at = engine.as_of.map(|d| format!("{d} 00:00:00"));
    let consent = crate::campaign::consent::consent_sql(
        ctx.table_exist(tables::FACT_CONSENT)?,
        at.as_deref(),
    );
    let sql = selection_sql(table, &chosen, &wanted, &sources, &consent)?;
    let (schema, batches) = olap::sql(&ctx, &sql).await?;
    let rows = sorted(&concat_batches(&schema, &batches)?, chosen.order)?;

    let mut summary = ExportSummary {
        selection: chosen.selection,
        selected: 0,
        no_consent: 0,
        suppressed: 0,
        beyond_top: 0,
        written: 0,
    };
    let keep = contactable(&rows, p, &suppression, chosen.top, &mut summary)?;
    let out: Vec<usize> = (0..wanted.len()).collect();
    let kept = filter_record_batch(&rows, &keep)?.project(&out)?;
    let out_schema = std::sync::Arc::new(schema.project(&out)?);
    files::write_batches_file(&p.to.out, p.format, &out_schema, &[kept])?;
    Ok(summary)
}

/// (column of the selected table, descending) sort keys.
type Order = &'static [(&'static str, bool)];

/// What a selection picks from its table.
struct Chosen {
    /// What the summary calls it.
    selection: String,
    /// SQL condition over the selected table, aliased `s`.
    filter: String,
    order: Order,
    /// The columns written when none are named.
    defaults: Vec<&'static str>,
    /// Rows written at most (a churn export's `--top`), after consent and suppression.
    top: Option<u64>,
}

/// The rows, order and default columns of a selection.
async fn choose(ctx: &SessionContext, selection: &Selection) -> Result<Chosen> {
    Ok(match selection {
        Selection::Segment(SegmentSelection { segment: wanted }) => {
            let (id, name, method) = find_segment(ctx, wanted).await?;
            Chosen {
                selection: format!("segment {id} {name:?} ({method})"),
                filter: format!("s.segment_id = {id}"),
                order: &[("customer_id", false)],
                defaults: SEGMENT_COLUMNS.to_vec(),
                top: None,
            }
        }
        Selection::Churn(ChurnSelection {
            risk: bands,
            min_probability,
            top,
        }) => {
            let mut what = vec!["churn scores".to_string()];
            let mut filter = vec!["TRUE".to_string()];
            if !bands.is_empty() {
                let names: Vec<&str> = bands.iter().map(|b| b.name()).collect();
                what.push(format!("risk {}", names.join(" or ")));
                let list: Vec<String> = names.iter().map(|n| literal(n)).collect();
                filter.push(format!("s.risk_band IN ({})", list.join(", ")));
            }
            if let Some(min) = min_probability {
                what.push(format!("probability ≥ {min}"));
                // A literal with every digit, so the cut is the number given.
                filter.push(format!("s.churn_probability >= {min:?}"));
            }
            if let Some(n) = top {
                what.push(format!("top {n}"));
            }
            Chosen {
                selection: what.join(", "),
                filter: filter.join(" AND "),
                order: &[("churn_probability", true), ("customer_id", false)],
                defaults: CHURN_COLUMNS.to_vec(),
                top: *top,
            }
        }
        Selection::Value(ValueSelection {
            deciles,
            min_p_alive,
            top,
        }) => {
            let mut what = vec!["customer value".to_string()];
            let mut filter = vec!["TRUE".to_string()];
            if !deciles.is_empty() {
                let list: Vec<String> = deciles.iter().map(|d| d.to_string()).collect();
                what.push(format!("deciles {}", list.join(", ")));
                filter.push(format!("s.value_decile IN ({})", list.join(", ")));
            }
            if let Some(min) = min_p_alive {
                what.push(format!("P(alive) ≥ {min}"));
                filter.push(format!("s.p_alive >= {min:?}"));
            }
            if let Some(n) = top {
                what.push(format!("top {n}"));
            }
            Chosen {
                selection: what.join(", "),
                filter: filter.join(" AND "),
                // By decile first: a model without spend has no CLV but still ranks by
                // expected purchases.
                order: &[
                    ("value_decile", false),
                    ("clv", true),
                    ("expected_purchases", true),
                    ("customer_id", false),
                ],
                defaults: VALUE_COLUMNS.to_vec(),
                top: *top,
            }
        }
        Selection::Uplift(UpliftSelection { min_uplift, top }) => {
            let mut what = vec!["persuadable customers".to_string()];
            // Persuadables only: a sleeping dog, sure thing or lost cause is never sent.
            let mut filter = vec!["s.\"group\" = 'persuadable'".to_string()];
            if let Some(min) = min_uplift {
                what.push(format!("uplift ≥ {min}"));
                filter.push(format!("s.uplift >= {min:?}"));
            }
            if let Some(n) = top {
                what.push(format!("top {n}"));
            }
            Chosen {
                selection: what.join(", "),
                filter: filter.join(" AND "),
                order: &[("uplift", true), ("customer_id", false)],
                defaults: UPLIFT_COLUMNS.to_vec(),
                top: *top,
            }
        }
        Selection::Recommendations(RecommendationSelection { max_rank }) => {
            // Category-level recommendations name their item `category` and have no
            // product description.
            let recs = ctx.table(tables::RECOMMENDATIONS).await?;
            let has = |c: &str| recs.schema().has_column_with_unqualified_name(c);
            let mut cols = RECOMMENDATION_COLUMNS.to_vec();
            if !has("product_id") {
                cols[4] = "category";
            }
            cols.retain(|c| *c != "description" || has("description"));
            Chosen {
                selection: match max_rank {
                    Some(r) => format!("recommendations up to rank {r}"),
                    None => "recommendations".into(),
                },
                filter: max_rank.map_or("TRUE".into(), |r| format!("s.rank <= {r}")),
                order: &[("customer_id", false), ("rank", false)],
                defaults: cols,
                top: None,
            }
        }
    })
}

/// The tables an export may take columns from, by alias (`s`: the selected table, `c`: the
/// current customers, `f`: customer features), with their columns; tables not built yet
/// are left out.
async fn column_sources(
    wh: &Warehouse,
    ctx: &SessionContext,
    table: &'static str,
) -> Result<Vec<(&'static str, Vec<String>)>> {
    let mut sources = Vec::new();
    for (alias, t) in [
        ("s", table),
        ("c", tables::DIM_CUSTOMER),
        ("f", tables::CUSTOMER_FEATURES),
    ] {
        if wh.table(t).is_err() {
            continue;
        }
        let df = ctx.table(t).await?;
        let names = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| {
                !matches!(
                    n.as_str(),
                    "customer_key" | "valid_from" | "valid_to" | "is_current" | "load_id"
                )
            })
            .collect();
        sources.push((alias, names));
    }
    Ok(sources)
}

/// The query: the wanted columns (each from the first source that has it), then `__email`,
/// the opt-ins, `__id` and the sort keys `__o0`, `__o1`, …
///
/// The order is applied after the query: DataFusion 55 can drop a sort key it proves
/// constant from a filter (rank <= 1 when ranks start at 1) below a join, and then rejects
/// its own plan.
fn selection_sql(
    table: &str,
    chosen: &Chosen,
    wanted: &[String],
    sources: &[(&str, Vec<String>)],
    consent: &str,
) -> Result<String> {
    let mut select = Vec::new();
    for c in wanted {
        let Some((alias, _)) = sources.iter().find(|(_, cols)| cols.contains(c)) else {
            let mut all: Vec<&str> = sources
                .iter()
                .flat_map(|(_, c)| c.iter().map(String::as_str))
                .collect();
            all.sort();
            all.dedup();
            return Err(Error::param(
                "columns",
                format!("no column {c:?}; the columns are: {}", all.join(", ")),
            ));
        };
        select.push(format!("{alias}.{} AS {}", ident(c), ident(c)));
    }
    let mut joins = String::new();
    if sources.iter().any(|(a, _)| *a == "c") {
        joins.push_str(
            " LEFT JOIN (SELECT * FROM dim_customer WHERE is_current AND customer_id IS NOT NULL) c \
             ON c.customer_id = s.customer_id",
        );
        joins.push_str(&format!(
            " LEFT JOIN ({consent}) k ON k.customer_id = s.customer_id"
        ));
        select.push("c.email AS __email".into());
        select.push("k.email AS __email_opt_in".into());
        select.push("k.phone AS __phone_opt_in".into());
    } else {
        select.push("CAST(NULL AS VARCHAR) AS __email".into());
        select.push("CAST(NULL AS BOOLEAN) AS __email_opt_in".into());
        select.push("CAST(NULL AS BOOLEAN) AS __phone_opt_in".into());
    }
    if sources.iter().any(|(a, _)| *a == "f") {
        joins.push_str(" LEFT JOIN customer_features f ON f.customer_id = s.customer_id");
    }
    select.push("s.customer_id AS __id".into());
    for (k, (col, _)) in chosen.order.iter().enumerate() {
        select.push(format!("s.{} AS __o{k}", ident(col)));
    }
    Ok(format!(
        "SELECT {} FROM {table} s{joins} WHERE {}",
        select.join(", "),
        chosen.filter
    ))
}

/// The rows sorted by the `__o<k>` keys, nulls last.
fn sorted(all: &RecordBatch, order: Order) -> Result<RecordBatch> {
    let keys: Vec<SortColumn> = order
        .iter()
        .enumerate()
        .map(|(k, (_, descending))| {
            Ok(SortColumn {
                values: all
                    .column(all.schema().index_of(&format!("__o{k}"))?)
                    .clone(),
                options: Some(SortOptions {
                    descending: *descending,
                    nulls_first: false,
                }),
            })
        })
        .collect::<Result<_>>()?;
    Ok(take_record_batch(all, &lexsort_to_indices(&keys, None)?)?)
}

/// Which rows may be written, in order: consent first, then suppression, then `top`;
/// counts each row's fate in `s`.
fn contactable(
    rows: &RecordBatch,
    p: &ValidExportParams,
    suppression: &Suppression,
    top: Option<u64>,
    s: &mut ExportSummary,
) -> Result<BooleanArray> {
    let ids = text_column(rows, "__id")?;
    let emails = text_column(rows, "__email")?;
    let consent = match p.to.require_consent {
        Some(ch) => {
            let col = rows.column(rows.schema().index_of(&format!("__{}", ch.column()))?);
            Some(
                col.as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| Error::Internal("opt-in is not boolean".into()))?
                    .clone(),
            )
        }
        None => None,
    };
    let mut mask = Vec::with_capacity(rows.num_rows());
    for i in 0..rows.num_rows() {
        s.selected += 1;
        let keep = if consent
            .as_ref()
            .is_some_and(|c| !(c.is_valid(i) && c.value(i)))
        {
            s.no_consent += 1;
            false
        } else if suppression.contains(ids.value(i), emails.is_valid(i).then(|| emails.value(i))) {
            s.suppressed += 1;
            false
        } else if top.is_some_and(|n| s.written >= n) {
            s.beyond_top += 1;
            false
        } else {
            s.written += 1;
            true
        };
        mask.push(keep);
    }
    Ok(BooleanArray::from(mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::param_key as key;

    fn params(selection: Selection) -> ExportParams {
        ExportParams {
            selection,
            to: Destination {
                out: "calls.parquet".into(),
                format: None,
                require_consent: None,
                suppress: None,
                columns: None,
            },
        }
    }

    #[test]
    fn export_params_are_checked_and_the_format_follows_the_file() {
        let churn = |p: Option<f64>| {
            Selection::Churn(ChurnSelection {
                min_probability: p,
                ..ChurnSelection::default()
            })
        };
        let ok = params(churn(Some(0.5))).check().unwrap();
        assert_eq!(ok.format, FileFormat::Parquet);
        assert_eq!(key(params(churn(Some(7.0))).check()), "min_probability");
        let mut p = params(churn(None));
        p.to.suppress = Some("/no/such/suppression/list".into());
        assert_eq!(key(p.check()), "suppress");
        let mut p = params(churn(None));
        p.to.columns = Some(vec![]);
        assert_eq!(key(p.check()), "columns");
        // The target may change (a pipeline's `{as_of}`); the checked format stays.
        let moved = ok.with_out("x.csv".into());
        assert_eq!(
            (moved.out(), moved.format),
            (Path::new("x.csv"), FileFormat::Parquet)
        );
    }

    #[test]
    fn suppression_matches_ids_and_case_insensitive_emails() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.txt");
        std::fs::write(&f, "\u{feff}c1\n\n  Ann@Example.com \n").unwrap();
        let s = Suppression::read(&f).unwrap();
        assert!(s.contains("c1", None));
        assert!(s.contains(" c1 ", None));
        assert!(s.contains("c9", Some("ann@example.COM")));
        assert!(!s.contains("c9", Some("bob@example.com")));
    }
}
