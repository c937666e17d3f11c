//! The right to be forgotten: `ecrm erase` removes customers' personal data from the
//! warehouse, in one commit, while revenue and counts stay.
//!
//! - Input: customer ids (`--customer ID`, repeatable, or `--file FILE`, one per line).
//! - What changes, file by file, only in files that hold the customers:
//!   - `fact_sales`, `fact_campaign_contact`, `fact_web_event`: their rows move to the unknown
//!     member (customer key 0, no customer id), as guest sales are, so every total stays
//!     what it was; web events of the visitors linked to them (by a login, a purchase of
//!     theirs, or `dim_visitor`) lose their visitor and session ids too, which are theirs;
//!   - every other table with a `customer_id` column (`dim_customer` with every version,
//!     `fact_consent`, the mart, segments, scores, recommendations, customer value and
//!     profit, uplift scores, web sessions and visitors, …): their rows, and those of their
//!     visitors, are removed;
//!   - `rejects`: the raw text and detail of rejected rows that hold one of their ids, e-mail
//!     addresses or names become `[erased]`;
//!   - run manifests (`runs/*.json`, whose data-test messages quote example rows): the same
//!     strings become `[erased]`.
//! - Then table `erasure_log` gains a row (when, how many customers, rows changed per table),
//!   which holds no personal data; and the files of the state before the erasure are deleted
//!   at once (a normal commit keeps them for readers that opened it), so no copy of the data
//!   is left in the warehouse folder.
//! - Ids the warehouse does not know are an error naming them; nothing is changed.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::warehouse::{DataFile, Owner, Warehouse, WriterLock, tables};

/// Facts whose rows stay, moved to the unknown member: they carry revenue and counts.
const KEPT_FACTS: [&str; 3] = [
    tables::FACT_SALES,
    tables::FACT_CAMPAIGN_CONTACT,
    tables::FACT_WEB_EVENT,
];

/// What stands where personal data was.
pub const ERASED: &str = "[erased]";

/// What an erasure changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erasure {
    pub customers: u64,
    /// Rows changed or removed per table.
    pub rows: BTreeMap<String, u64>,
    /// Run manifests in which text was replaced.
    pub manifests: u64,
}

/// Reads customer ids, one per line (blank lines ignored), from `path`.
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The personal strings of `ids`: the ids, and every e-mail and name their customer rows had.
fn personal_strings(wh: &Warehouse, ids: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = ids.to_vec();
    if let Some(dim) = wh.read_polars(tables::DIM_CUSTOMER)? {
        let hit =
            col("customer_id").is_in(lit(Series::new("ids".into(), ids)).implode(false), false);
        let rows = dim
            .lazy()
            .filter(hit)
            .select([col("email"), col("name")])
            .collect()?;
        for c in ["email", "name"] {
            for v in rows.column(c)?.str()?.iter().flatten() {
                if !v.trim().is_empty() && v != "Unknown" {
                    out.push(v.trim().to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Erases `ids` (see the module doc).
pub fn erase(root: &Path, ids: &[String]) -> Result<Erasure> {
    if ids.is_empty() {
        return Err(Error::param("customer", "give at least one customer id"));
    }
    let lock = WriterLock::acquire(root, "erase")?;
    let wh = Warehouse::open(root)?;
    check_known(&wh, ids)?;
    let visitors = linked_visitors(&wh, ids)?;
    let mut strings = personal_strings(&wh, ids)?;
    strings.extend(visitors.iter().cloned());
    let id_list = lit(Series::new("ids".into(), ids)).implode(false);
    let visitor_list = lit(Series::new("visitors".into(), visitors)).implode(false);
    let mut tx = wh.begin(&lock);
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for (table, t) in &wh.snapshot().tables {
        let mut files: Vec<DataFile> = Vec::with_capacity(t.files.len());
        let mut changed = 0u64;
        for f in &t.files {
            let path = root.join(&f.path);
            let df = crate::warehouse::read_polars_file(&path)?;
            match erased(table, df, (&id_list, &visitor_list), &strings)? {
                None => files.push(f.clone()),
                Some((mut df, n)) => {
                    changed += n;
                    let partition = partition_of(&f.path, table);
                    let owner = Owner {
                        load_id: f.load_id,
                        source_file: f.source_file.clone(),
                    };
                    files.push(tx.write_polars(table, partition.as_deref(), &mut df, &owner)?);
                }
            }
        }
        if changed > 0 {
            rows.insert(table.clone(), changed);
            tx.replace(table, files);
        }
    }
    let mut log = erasure_log_row(ids.len() as u64, &rows)?;
    let f = tx.write_polars(tables::ERASURE_LOG, None, &mut log, &Owner::default())?;
    tx.append(tables::ERASURE_LOG, vec![f]);
    let wh = Warehouse::commit(tx, &format!("erasure of {} customers", ids.len()))?;
    wh.forget_previous();
    let manifests = scrub_manifests(root, &strings)?;
    Ok(Erasure {
        customers: ids.len() as u64,
        rows,
        manifests,
    })
}

/// The web visitors of `ids`: those of their own web events, those whose purchase events
/// carry their orders' invoices, and those `dim_visitor` links to them.
fn linked_visitors(wh: &Warehouse, ids: &[String]) -> Result<Vec<String>> {
    let hit =
        || col("customer_id").is_in(lit(Series::new("ids".into(), ids)).implode(false), false);
    let mut out: Vec<String> = Vec::new();
    let mut take = |df: DataFrame| -> Result<()> {
        out.extend(
            df.column("visitor_id")?
                .str()?
                .iter()
                .flatten()
                .map(str::to_string),
        );
        Ok(())
    };
    if let Some(events) = wh.read_polars(tables::FACT_WEB_EVENT)? {
        let mut invoices: Vec<String> = Vec::new();
        if let Some(sales) = wh.read_polars(tables::FACT_SALES)? {
            let inv = sales
                .lazy()
                .filter(hit())
                .select([col("invoice_no")])
                .collect()?;
            invoices.extend(
                inv.column("invoice_no")?
                    .str()?
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        let theirs = hit().fill_null(lit(false)).or(col("invoice_no")
            .is_in(
                lit(Series::new("inv".into(), invoices)).implode(false),
                false,
            )
            .fill_null(lit(false)));
        take(
            events
                .lazy()
                .filter(theirs)
                .select([col("visitor_id")])
                .collect()?,
        )?;
    }
    if let Some(dim) = wh.read_polars(tables::DIM_VISITOR)? {
        take(
            dim.lazy()
                .filter(hit())
                .select([col("visitor_id")])
                .collect()?,
        )?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Ids that no customer row, fact or score holds are an error naming them.
fn check_known(wh: &Warehouse, ids: &[String]) -> Result<()> {
    let mut known = std::collections::BTreeSet::new();
    for table in [
        tables::DIM_CUSTOMER,
        tables::FACT_SALES,
        tables::FACT_WEB_EVENT,
    ] {
        if let Some(df) = wh.read_polars(table)? {
            let hit =
                col("customer_id").is_in(lit(Series::new("ids".into(), ids)).implode(false), false);
            let found = df
                .lazy()
                .filter(hit)
                .select([col("customer_id")])
                .unique(None, UniqueKeepStrategy::Any)
                .collect()?;
            known.extend(
                found
                    .column("customer_id")?
                    .str()?
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
    }
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|i| !known.contains(*i))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::param(
        "customer",
        format!(
            "no customer {} in the warehouse; nothing was erased",
            unknown.join(", ")
        ),
    ))
}

/// `month=2011-01` of `tables/fact_sales/month=2011-01/v…parquet`, or None.
fn partition_of(path: &str, table: &str) -> Option<String> {
    let rest = path.strip_prefix(&format!("tables/{table}/"))?;
    let (dir, _) = rest.rsplit_once('/')?;
    Some(dir.to_string())
}

/// One file's rows with the customers (and their visitors) erased, and how many rows
/// changed (None: untouched).
fn erased(
    table: &str,
    df: DataFrame,
    (ids, visitors): (&Expr, &Expr),
    strings: &[String],
) -> Result<Option<(DataFrame, u64)>> {
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let has = |c: &str| names.iter().any(|n| n == c);
    if has("customer_id") {
        let mut hit = col("customer_id")
            .is_in(ids.clone(), false)
            .fill_null(lit(false));
        if has("visitor_id") {
            hit = hit.or(col("visitor_id")
                .is_in(visitors.clone(), false)
                .fill_null(lit(false)));
        }
        let n = df
            .clone()
            .lazy()
            .filter(hit.clone())
            .select([len()])
            .collect()?
            .column("len")?
            .u32()?
            .get(0)
            .unwrap_or(0) as u64;
        if n == 0 {
            return Ok(None);
        }
        let out = if KEPT_FACTS.contains(&table) {
            let mut moved = vec![
                when(hit.clone())
                    .then(lit(NULL).cast(DataType::String))
                    .otherwise(col("customer_id"))
                    .alias("customer_id"),
            ];
            if has("customer_key") {
                moved.push(
                    when(hit.clone())
                        .then(lit(0i64))
                        .otherwise(col("customer_key"))
                        .alias("customer_key"),
                );
            }
            for c in ["visitor_id", "session_id"].into_iter().filter(|c| has(c)) {
                moved.push(
                    when(hit.clone())
                        .then(lit(NULL).cast(DataType::String))
                        .otherwise(col(c))
                        .alias(c),
                );
            }
            df.lazy().with_columns(moved).collect()?
        } else {
            df.lazy().filter(hit.not()).collect()?
        };
        return Ok(Some((out, n)));
    }
    if table == tables::REJECTS && has("raw") {
        let mentions = |c: &str| {
            strings
                .iter()
                .map(|s| {
                    col(c)
                        .str()
                        .contains_literal(lit(s.as_str()))
                        .fill_null(lit(false))
                })
                .reduce(|a, b| a.or(b))
                .unwrap_or(lit(false))
        };
        let hit = mentions("raw").or(mentions("detail"));
        let n = df.clone().lazy().filter(hit.clone()).collect()?.height() as u64;
        if n == 0 {
            return Ok(None);
        }
        let blank = |c: &str| {
            when(hit.clone())
                .then(lit(ERASED))
                .otherwise(col(c))
                .alias(c)
        };
        let out = df
            .lazy()
            .with_columns([blank("raw"), blank("detail")])
            .collect()?;
        return Ok(Some((out, n)));
    }
    Ok(None)
}

/// The `erasure_log` row: when, how many customers, rows changed per table (no ids).
fn erasure_log_row(customers: u64, rows: &BTreeMap<String, u64>) -> Result<DataFrame> {
    let per_table: Vec<String> = rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
    Ok(df!(
        "erased_at" => [chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)],
        "customers" => [customers as i64],
        "rows" => [rows.values().sum::<u64>() as i64],
        "tables" => [per_table.join(" ")],
    )?)
}

/// Replaces the personal strings in every text value of `v`; true when one changed.
fn scrub(v: &mut serde_json::Value, strings: &[String]) -> bool {
    match v {
        serde_json::Value::String(s) => {
            let before = s.clone();
            for p in strings {
                *s = s.replace(p.as_str(), ERASED);
            }
            *s != before
        }
        // Every item is scrubbed (no short circuit), then whether any changed.
        serde_json::Value::Array(items) => {
            items
                .iter_mut()
                .map(|i| scrub(i, strings))
                .filter(|&c| c)
                .count()
                > 0
        }
        serde_json::Value::Object(map) => {
            map.values_mut()
                .map(|i| scrub(i, strings))
                .filter(|&c| c)
                .count()
                > 0
        }
        _ => false,
    }
}

/// Replaces the personal strings in run manifests; returns how many files changed.
fn scrub_manifests(root: &Path, strings: &[String]) -> Result<u64> {
    let dir = root.join("runs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut changed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        // Only text values: an id that reads like a number elsewhere stays a number.
        if scrub(&mut json, strings) {
            crate::warehouse::files::write_json(&path, &json)?;
            changed += 1;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_lose_the_text_and_keep_their_numbers() {
        let mut v = serde_json::json!({
            "message": "customer_id '100006' breaks the rule",
            "rows": 100006,
            "examples": ["100006", "ann@example.com", "other"],
        });
        assert!(scrub(&mut v, &["100006".into(), "ann@example.com".into()]));
        assert_eq!(v["message"], "customer_id '[erased]' breaks the rule");
        assert_eq!(v["rows"], 100006);
        assert_eq!(
            v["examples"],
            serde_json::json!(["[erased]", "[erased]", "other"])
        );
        assert!(!scrub(&mut v, &["nobody".into()]));
    }

    #[test]
    fn a_rewritten_file_keeps_its_partition() {
        assert_eq!(
            partition_of(
                "tables/fact_sales/month=2011-01/v1-a-00001.parquet",
                "fact_sales"
            ),
            Some("month=2011-01".into())
        );
        assert_eq!(
            partition_of("tables/segments/v1-a-00001.parquet", "segments"),
            None
        );
    }
}
