//! SQL golden tests: every `tests/sql/*.slt` file runs against the warehouse built from the
//! committed sample data, in the sqllogictest format DataFusion uses for its own tests.
//!
//! Besides SQL, a record may ask a cube question: `CUBE <ecrm cube arguments>` runs exactly
//! what `ecrm cube` would (e.g. `CUBE --cube sales --rows year --subtotals rollup`).
//!
//! After an intended change, regenerate the expected results and review them as a diff:
//! `ECRM_SLT_COMPLETE=1 cargo test sql_golden`.
//!
//! The same files run through a Ballista cluster in `cluster.rs` ([`run_files`]).

use std::path::PathBuf;

use async_trait::async_trait;
use clap::Parser;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::support;

struct Db {
    ctx: SessionContext,
}

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

impl Db {
    /// The SQL of a `CUBE …` record, planned by the same code as `ecrm cube`.
    async fn cube_sql(&self, args: &str) -> Result<String, ecrm::error::Error> {
        let mut argv = vec!["ecrm".to_string(), "cube".to_string()];
        argv.extend(args.split_whitespace().map(String::from));
        let cli = ecrm::cli::Cli::try_parse_from(&argv).map_err(|e| ecrm::error::Error::Usage {
            arg: "CUBE".into(),
            message: e.to_string(),
        })?;
        let ecrm::cli::Command::Cube(a) = cli.command else {
            unreachable!("parsed as the cube command");
        };
        let cubes = support::repo().join("pipelines/cubes");
        let model = ecrm::olap::cube::Cube::find(&a.cube, &cubes)?;
        model.sql(&self.ctx, &a.query()?).await
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let err = |e: ecrm::error::Error| DbError(e.to_string());
        let sql = match sql.trim().strip_prefix("CUBE ") {
            Some(args) => self.cube_sql(args).await.map_err(err)?,
            None => sql.to_string(),
        };
        let (schema, batches) = ecrm::olap::sql(&self.ctx, &sql).await.map_err(err)?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                DataType::Float16
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(_, _) => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        let mut rows = support::rows(&batches);
        // Floats to 6 decimals: enough to review, and stable across summation orders.
        for row in rows.iter_mut() {
            for (cell, f) in row.iter_mut().zip(schema.fields()) {
                if matches!(f.data_type(), DataType::Float64 | DataType::Float32)
                    && let Ok(v) = cell.parse::<f64>()
                {
                    *cell = format!("{v:.6}");
                }
                if cell.is_empty() {
                    *cell = "(empty)".into();
                }
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

#[test]
fn sql_golden() {
    let complete = std::env::var_os("ECRM_SLT_COMPLETE").is_some();
    run_files(&ecrm::olap::EngineOptions::default(), complete);
}

/// The longest a `.slt` file may run (they take about a second each).
const FILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs every `tests/sql/*.slt` file on the sample warehouse with the engine of `engine`
/// (or, with `complete`, rewrites their expected results); panics listing the failures.
pub fn run_files(engine: &ecrm::olap::EngineOptions, complete: bool) {
    let wh = support::sample_warehouse();
    let dir = support::repo().join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let rt = ecrm::olap::runtime(None).expect("runtime");
    let mut failures = Vec::new();
    for file in &files {
        let wh = wh.to_path_buf();
        let engine = engine.clone();
        let result = rt.block_on(async {
            let make = move || {
                let (wh, engine) = (wh.clone(), engine.clone());
                async move {
                    let w = ecrm::warehouse::Warehouse::open(&wh)
                        .map_err(|e| DbError(e.to_string()))?;
                    let ctx = ecrm::olap::session(&w, &engine)
                        .await
                        .map_err(|e| DbError(e.to_string()))?;
                    Ok::<_, DbError>(Db { ctx })
                }
            };
            let mut runner = sqllogictest::Runner::new(make);
            if complete {
                runner
                    .update_test_file(
                        file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                // Bounded: a query that never ends (as Ballista jobs did, see
                // olap::cluster) fails the test instead of hanging CI.
                tokio::time::timeout(FILE_TIMEOUT, runner.run_file_async(file))
                    .await
                    .map_err(|_| format!("did not finish within {FILE_TIMEOUT:?}"))?
                    .map_err(|e| e.display(true).to_string())
            }
        });
        if let Err(e) = result {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
