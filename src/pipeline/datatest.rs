//! Data tests declared beside a stage, run on its output after it commits.
//!
//! ```toml
//! [[stages.features.tests]]
//! table = "customer_features"            # default: the stage's first output table
//! description = "one row per customer"
//! not_null = ["customer_id", "recency_days"]
//! unique = ["customer_id"]               # "a, b" for a combination of columns
//! accepted_values = { rfm_segment = ["Champions", "Loyal", "At risk"] }
//! relationships = { customer_id = "dim_customer.customer_id" }
//! rows = { min = 1, max = 10_000_000 }
//! expect = ["monetary >= 0"]             # SQL conditions every row must meet
//! severity = "error"                     # or "warn": reported, never fails the run
//! ```
//!
//! Each check is one SQL query counting the rows that break it (up to three examples are
//! kept for the message). A failed `error` test fails its stage's tests: the stages
//! downstream do not run and the run exits with code 1. The maximum reject rate is the ingest
//! stage's `max_reject_rate`, checked before its load commits (so a bad delivery never lands).
//! Why SQL and not Rust over the batches: the checks then work on any table size through
//! DataFusion, with the same semantics a user's own query would have.

use std::collections::BTreeMap;

use datafusion::arrow::array::Array;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::olap;
use crate::olap::sqltext::{ident, literal};
use crate::warehouse::runs::{TestResult, TestStatus};

/// A test as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    table: Option<String>,
    description: Option<String>,
    #[serde(default)]
    not_null: Vec<String>,
    #[serde(default)]
    unique: Vec<String>,
    #[serde(default)]
    accepted_values: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    relationships: BTreeMap<String, String>,
    rows: Option<RowBounds>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    severity: Severity,
}

/// Bounds on a table's row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowBounds {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

/// Whether a failing test fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warn,
}

/// One check of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    NotNull(String),
    Unique(Vec<String>),
    AcceptedValues(String, Vec<String>),
    Relationship {
        column: String,
        table: String,
        to: String,
    },
    Rows(RowBounds),
    Expect(String),
}

/// A checked test: a table and its checks.
#[derive(Debug, Clone)]
pub struct DataTest {
    pub table: String,
    pub description: Option<String>,
    pub checks: Vec<Check>,
    pub severity: Severity,
    /// Tables the checks read besides `table` (relationships), as stage inputs.
    referenced: Vec<String>,
}

impl DataTest {
    /// Checks a test against the tables its stage writes; `err` words a message at the
    /// test's key.
    pub fn check(
        spec: TestSpec,
        stage_tables: &[&String],
        err: &dyn Fn(String) -> Error,
    ) -> Result<DataTest> {
        let table = match spec.table {
            Some(t) => t,
            None => match stage_tables.first() {
                Some(t) => (*t).clone(),
                None => return Err(err("this stage writes no table to test".into())),
            },
        };
        if !stage_tables.iter().any(|t| **t == table) {
            let names: Vec<&str> = stage_tables.iter().map(|s| s.as_str()).collect();
            return Err(err(format!(
                "table {table} is not written by this stage (it writes: {})",
                names.join(", ")
            )));
        }
        let mut checks = Vec::new();
        let mut referenced = Vec::new();
        checks.extend(spec.not_null.into_iter().map(Check::NotNull));
        for u in spec.unique {
            let cols: Vec<String> = u.split(',').map(|c| c.trim().to_string()).collect();
            if cols.iter().any(String::is_empty) {
                return Err(err(format!("unique: {u:?} has an empty column name")));
            }
            checks.push(Check::Unique(cols));
        }
        for (col, values) in spec.accepted_values {
            if values.is_empty() {
                return Err(err(format!("accepted_values.{col}: the list is empty")));
            }
            let texts = values
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    toml::Value::Boolean(b) => Ok(b.to_string()),
                    other => Err(err(format!(
                        "accepted_values.{col}: {other} is not text, a whole number or a boolean"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            checks.push(Check::AcceptedValues(col, texts));
        }
        for (col, target) in spec.relationships {
            let (t, c) = target.split_once('.').ok_or_else(|| {
                err(format!(
                    "relationships.{col}: {target:?} is not TABLE.COLUMN"
                ))
            })?;
            referenced.push(t.to_string());
            checks.push(Check::Relationship {
                column: col,
                table: t.to_string(),
                to: c.to_string(),
            });
        }
        if let Some(r) = spec.rows {
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                return Err(err(format!("rows: min {lo} is above max {hi}")));
            }
            if r.min.is_none() && r.max.is_none() {
                return Err(err("rows: give min, max or both".into()));
            }
            checks.push(Check::Rows(r));
        }
        for e in spec.expect {
            crate::olap::sqltext::check_expression(&e)
                .map_err(|x| err(format!("expect: {e:?} is not a SQL condition: {x}")))?;
            checks.push(Check::Expect(e));
        }
        if checks.is_empty() {
            return Err(err(
                "checks nothing: give not_null, unique, accepted_values, relationships, rows or expect"
                    .into(),
            ));
        }
        Ok(DataTest {
            table,
            description: spec.description,
            checks,
            severity: spec.severity,
            referenced,
        })
    }

    /// Tables the test reads besides its own (the stage depends on their producers).
    pub fn references(&self) -> impl Iterator<Item = &String> {
        self.referenced.iter()
    }

    /// Runs every check in `ctx` (which has the warehouse registered).
    pub async fn run(&self, ctx: &SessionContext) -> Result<Vec<TestResult>> {
        let mut out = Vec::new();
        for check in &self.checks {
            out.push(self.run_check(ctx, check).await?);
        }
        Ok(out)
    }

    async fn run_check(&self, ctx: &SessionContext, check: &Check) -> Result<TestResult> {
        let t = ident(&self.table);
        let (name, failing_rows, noun) = match check {
            Check::NotNull(c) => (
                format!("not_null({c})"),
                // Whole rows: the examples show which rows they are.
                format!("SELECT * FROM {t} WHERE {} IS NULL", ident(c)),
                format!("rows without {c}"),
            ),
            Check::Unique(cols) => {
                let list = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                (
                    format!("unique({})", cols.join(", ")),
                    format!("SELECT {list} FROM {t} GROUP BY {list} HAVING count(*) > 1"),
                    format!("values of {} that occur more than once", cols.join(", ")),
                )
            }
            Check::AcceptedValues(c, values) => {
                let list = values
                    .iter()
                    .map(|v| literal(v))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    format!("accepted_values({c})"),
                    format!(
                        "SELECT DISTINCT CAST({col} AS VARCHAR) FROM {t} WHERE {col} IS NOT NULL \
                         AND CAST({col} AS VARCHAR) NOT IN ({list})",
                        col = ident(c)
                    ),
                    format!(
                        "values of {c} not among the accepted ({})",
                        values.join(", ")
                    ),
                )
            }
            Check::Relationship { column, table, to } => (
                format!("relationships({column} → {table}.{to})"),
                format!(
                    "SELECT DISTINCT x.{c} FROM {t} x WHERE x.{c} IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM {o} y WHERE y.{to_col} = x.{c})",
                    c = ident(column),
                    o = ident(table),
                    to_col = ident(to)
                ),
                format!("values of {column} with no row in {table}.{to}"),
            ),
            Check::Expect(e) => (
                format!("expect({e})"),
                format!("SELECT * FROM {t} WHERE NOT coalesce(({e}), false)"),
                format!("rows that fail {e}"),
            ),
            Check::Rows(bounds) => {
                let rows = count(ctx, &format!("SELECT count(*) FROM {t}")).await?;
                let low = bounds.min.is_some_and(|m| rows < m);
                let high = bounds.max.is_some_and(|m| rows > m);
                let range = format!(
                    "{}..={}",
                    bounds.min.map_or(String::new(), |m| m.to_string()),
                    bounds.max.map_or(String::new(), |m| m.to_string())
                );
                let message = if low || high {
                    format!("{} has {rows} rows, outside {range}", self.table)
                } else {
                    String::new()
                };
                return Ok(self.result(format!("rows({range})"), rows, low || high, message));
            }
        };
        let failing = count(ctx, &format!("SELECT count(*) FROM ({failing_rows})")).await?;
        if failing == 0 {
            return Ok(self.result(name, 0, false, String::new()));
        }
        let (_, batches) = olap::sql(ctx, &format!("{failing_rows} LIMIT 3")).await?;
        let examples = examples(&batches)?;
        let message = format!(
            "{noun} in {}: {failing} (e.g. {})",
            self.table,
            examples.join("; ")
        );
        Ok(self.result(name, failing, true, message))
    }

    fn result(&self, check: String, failing: u64, failed: bool, message: String) -> TestResult {
        let status = match (failed, self.severity) {
            (false, _) => TestStatus::Pass,
            (true, Severity::Error) => TestStatus::Fail,
            (true, Severity::Warn) => TestStatus::Warn,
        };
        TestResult {
            test: format!("{check} on {}", self.table),
            status,
            failing,
            message,
        }
    }
}

/// The single integer a `SELECT count(*)` returns.
async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let (_, batches) = olap::sql(ctx, sql).await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Internal(format!("no row from {sql}")))?;
    let c = datafusion::arrow::compute::cast(
        b.column(0),
        &datafusion::arrow::datatypes::DataType::UInt64,
    )?;
    c.as_any()
        .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        .map(|a| a.value(0))
        .ok_or_else(|| Error::Internal(format!("count is not an integer: {sql}")))
}

/// Rows as text, columns joined by `, ` (for messages).
fn examples(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<Vec<String>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .take(4)
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join(", "));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<DataTest, String> {
        let spec: TestSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        let (a, b) = ("segments".to_string(), "profiles".to_string());
        DataTest::check(spec, &[&a, &b], &|m| Error::Internal(m)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_test_is_parsed_into_its_checks() {
        let t = check(
            "not_null = [\"id\"]\nunique = [\"a, b\"]\naccepted_values = { kind = [\"x\", 1, true] }\n\
             relationships = { id = \"dim.id\" }\nrows = { min = 1 }\nexpect = [\"a > 0\"]\nseverity = \"warn\"",
        )
        .unwrap();
        assert_eq!(t.table, "segments", "the stage's first table by default");
        assert_eq!(t.severity, Severity::Warn);
        assert_eq!(
            t.checks,
            [
                Check::NotNull("id".into()),
                Check::Unique(vec!["a".into(), "b".into()]),
                Check::AcceptedValues("kind".into(), vec!["x".into(), "1".into(), "true".into()]),
                Check::Relationship {
                    column: "id".into(),
                    table: "dim".into(),
                    to: "id".into()
                },
                Check::Rows(RowBounds {
                    min: Some(1),
                    max: None
                }),
                Check::Expect("a > 0".into()),
            ]
        );
        assert_eq!(t.references().collect::<Vec<_>>(), ["dim"]);
    }

    #[test]
    fn a_wrong_test_says_what_is_wrong() {
        for (text, expected) in [
            (
                "table = \"other\"\nnot_null = [\"x\"]",
                "table other is not written by this stage",
            ),
            ("unique = [\"a,\"]", "has an empty column name"),
            ("accepted_values = { k = [] }", "the list is empty"),
            (
                "accepted_values = { k = [1.5] }",
                "is not text, a whole number or a boolean",
            ),
            ("relationships = { id = \"dim\" }", "is not TABLE.COLUMN"),
            ("rows = { min = 5, max = 1 }", "min 5 is above max 1"),
            ("rows = {}", "give min, max or both"),
            ("expect = [\"x > 0 LIMIT 1\"]", "is not a SQL condition"),
            ("description = \"nothing\"", "checks nothing"),
        ] {
            let e = check(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
