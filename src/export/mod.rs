//! Consent-aware segment exports for marketers.
//!
//! - Input tables: `segments` (the last segmentation run), `dim_customer` (current rows: e-mail,
//!   name, consent flags), `customer_features`.
//! - Output: one file, CSV (UTF-8, a header row, no index column), Parquet, JSON (one array) or
//!   NDJSON; and a summary ([`ExportSummary`]) that the CLI prints on stderr.
//! - Parameters ([`ExportParams`]): the segment (a name, compared case-insensitively, or an id),
//!   the columns (default [`DEFAULT_COLUMNS`]), the consent channel required (default none), a
//!   suppression file (default none).
//!
//! Contract:
//! - With a consent channel, only customers whose opt-in for it is `true` are written; an
//!   unknown (NULL) opt-in counts as no consent.
//! - Nobody listed in the suppression file is written, whatever their consent: one customer id
//!   or e-mail per line, no header, blank lines ignored; a line with `@` is an e-mail, compared
//!   trimmed and case-insensitively with the customer's e-mail; any other line is a customer
//!   id, compared trimmed.
//! - Rows are ordered by customer id and columns as requested, so the same warehouse gives the
//!   same bytes.
//! - An unknown segment is an error that lists the segments there are.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::DataType;

use crate::cli::output::{self, Format};
use crate::error::{Error, Result};
use crate::olap::{self, EngineOptions};
use crate::segment::SEGMENTS_TABLE;
use crate::warehouse::Warehouse;

/// Columns exported when none are named.
pub const DEFAULT_COLUMNS: [&str; 6] = [
    "customer_id",
    "email",
    "name",
    "country",
    "segment_id",
    "segment_name",
];

/// Consent channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Channel {
    Email,
    Phone,
}

impl Channel {
    fn column(self) -> &'static str {
        match self {
            Channel::Email => "email_opt_in",
            Channel::Phone => "phone_opt_in",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportParams {
    /// A segment name (case-insensitive) or id.
    pub segment: String,
    pub format: Format,
    pub out: PathBuf,
    pub require_consent: Option<Channel>,
    pub suppress: Option<PathBuf>,
    /// None: [`DEFAULT_COLUMNS`].
    pub columns: Option<Vec<String>>,
}

/// Counts of an export, for the summary on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub segment_id: i64,
    pub segment_name: String,
    pub method: String,
    pub in_segment: u64,
    pub no_consent: u64,
    pub suppressed: u64,
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

fn text_column(b: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = b.column(b.schema().index_of(name)?);
    let col = cast(col, &DataType::Utf8)?;
    Ok(col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Internal(format!("{name} is not text")))?
        .clone())
}

/// Exports one segment (see the module doc for the contract).
pub fn export_segment(
    wh_root: &Path,
    p: &ExportParams,
    engine: &EngineOptions,
) -> Result<ExportSummary> {
    // The suppression list is read before any data, so a wrong path fails at once.
    let suppression = match &p.suppress {
        Some(f) => Suppression::read(f)?,
        None => Suppression::default(),
    };
    let wh = Warehouse::open(wh_root)?;
    if wh.table(SEGMENTS_TABLE).is_err() {
        return Err(Error::NotFound {
            what: "table",
            name: SEGMENTS_TABLE.into(),
            hint: ": run `ecrm segment` first".into(),
        });
    }
    let rt = crate::cli::runtime(engine.threads)?;
    rt.block_on(async {
        let ctx = olap::session(&wh, engine).await?;
        // Which segment.
        let (_, seg) = olap::sql(
            &ctx,
            "SELECT segment_id, segment_name, method, count(*) AS customers FROM segments \
             GROUP BY segment_id, segment_name, method ORDER BY segment_id",
        )
        .await?;
        let mut known = Vec::new();
        let mut chosen = None;
        let wanted = p.segment.trim();
        for b in &seg {
            let ids = cast(b.column(0), &DataType::Int64)?;
            let ids = ids
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .ok_or_else(|| Error::Internal("segment_id is not an integer".into()))?
                .clone();
            let names = text_column(b, "segment_name")?;
            let methods = text_column(b, "method")?;
            let counts = cast(b.column(3), &DataType::Int64)?;
            let counts = counts
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .ok_or_else(|| Error::Internal("count is not an integer".into()))?
                .clone();
            for i in 0..b.num_rows() {
                let (id, name) = (ids.value(i), names.value(i).to_string());
                known.push(format!("{id} {name:?} ({} customers)", counts.value(i)));
                if name.eq_ignore_ascii_case(wanted) || wanted.parse::<i64>() == Ok(id) {
                    chosen = Some((id, name, methods.value(i).to_string()));
                }
            }
        }
        let Some((segment_id, segment_name, method)) = chosen else {
            return Err(Error::NotFound {
                what: "segment",
                name: p.segment.clone(),
                hint: format!("; the segments are: {}", known.join(", ")),
            });
        };

        // Which columns, and from which table.
        let wanted_cols: Vec<String> = p
            .columns
            .clone()
            .unwrap_or_else(|| DEFAULT_COLUMNS.map(String::from).to_vec());
        let mut sources: Vec<(&str, Vec<String>)> = Vec::new();
        for (alias, table) in [
            ("s", SEGMENTS_TABLE),
            ("c", "dim_customer"),
            ("f", crate::features::TABLE),
        ] {
            if wh.table(table).is_ok() {
                let df = ctx.table(table).await?;
                let names = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| !matches!(n.as_str(), "customer_key" | "valid_from" | "valid_to" | "is_current" | "load_id"))
                    .collect();
                sources.push((alias, names));
            }
        }
        let mut select = Vec::new();
        for c in &wanted_cols {
            let Some((alias, _)) = sources.iter().find(|(_, cols)| cols.contains(c)) else {
                let mut all: Vec<&String> = sources.iter().flat_map(|(_, c)| c).collect();
                all.sort();
                all.dedup();
                return Err(Error::Usage {
                    arg: "--columns".into(),
                    message: format!(
                        "no column {c:?}; the columns are: {}",
                        all.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            };
            select.push(format!("{alias}.\"{c}\" AS \"{c}\""));
        }
        let has = |alias: &str| sources.iter().any(|(a, _)| *a == alias);
        let mut joins = String::new();
        if has("c") {
            joins.push_str(
                " LEFT JOIN (SELECT * FROM dim_customer WHERE is_current AND customer_id IS NOT NULL) c \
                 ON c.customer_id = s.customer_id",
            );
            select.push("c.email AS __email".into());
            select.push("c.email_opt_in AS __email_opt_in".into());
            select.push("c.phone_opt_in AS __phone_opt_in".into());
        } else {
            select.push("CAST(NULL AS VARCHAR) AS __email".into());
            select.push("CAST(NULL AS BOOLEAN) AS __email_opt_in".into());
            select.push("CAST(NULL AS BOOLEAN) AS __phone_opt_in".into());
        }
        if has("f") {
            joins.push_str(" LEFT JOIN customer_features f ON f.customer_id = s.customer_id");
        }
        select.push("s.customer_id AS __id".into());
        let sql = format!(
            "SELECT {} FROM segments s{joins} WHERE s.segment_id = {segment_id} ORDER BY s.customer_id",
            select.join(", ")
        );
        let (schema, batches) = olap::sql(&ctx, &sql).await?;

        let (mut in_segment, mut no_consent, mut suppressed) = (0u64, 0u64, 0u64);
        let mut kept = Vec::new();
        let n_out = wanted_cols.len();
        let out_schema = std::sync::Arc::new(schema.project(&(0..n_out).collect::<Vec<_>>())?);
        for b in &batches {
            let ids = text_column(b, "__id")?;
            let emails = text_column(b, "__email")?;
            let consent = match p.require_consent {
                Some(ch) => {
                    let col = b.column(b.schema().index_of(&format!("__{}", ch.column()))?);
                    Some(
                        col.as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or_else(|| Error::Internal("opt-in is not boolean".into()))?
                            .clone(),
                    )
                }
                None => None,
            };
            let mut mask = Vec::with_capacity(b.num_rows());
            for i in 0..b.num_rows() {
                in_segment += 1;
                if let Some(c) = &consent
                    && !(c.is_valid(i) && c.value(i))
                {
                    no_consent += 1;
                    mask.push(false);
                    continue;
                }
                let email = emails.is_valid(i).then(|| emails.value(i));
                if suppression.contains(ids.value(i), email) {
                    suppressed += 1;
                    mask.push(false);
                    continue;
                }
                mask.push(true);
            }
            let filtered = filter_record_batch(b, &BooleanArray::from(mask))?;
            kept.push(filtered.project(&(0..n_out).collect::<Vec<_>>())?);
        }
        let written = kept.iter().map(|b| b.num_rows() as u64).sum();
        output::write_file(&p.out, p.format, &out_schema, &kept)?;
        Ok(ExportSummary {
            segment_id,
            segment_name,
            method,
            in_segment,
            no_consent,
            suppressed,
            written,
        })
    })
}
