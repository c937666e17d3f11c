//! OLAP: the DataFusion session over the warehouse, and SQL questions.
//!
//! - Input: every table of the warehouse snapshot, registered by name; extra tables from files.
//! - Output: Arrow record batches (printed by [`crate::cli::output`]).
//!
//! The session is created here and only here ([`session`]), so a distributed engine can
//! replace it later without the rest of the code knowing.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// Creates the session and registers every warehouse table that has files.
pub async fn session(wh: &Warehouse) -> Result<SessionContext> {
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    for name in wh.table_names() {
        let paths: Vec<String> = wh
            .table_paths(&name)?
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if paths.is_empty() {
            continue;
        }
        register_parquet_files(&ctx, &name, paths).await?;
    }
    Ok(ctx)
}

/// Registers an explicit list of Parquet files as one table.
async fn register_parquet_files(
    ctx: &SessionContext,
    name: &str,
    paths: Vec<String>,
) -> Result<()> {
    let df = ctx
        .read_parquet(paths, ParquetReadOptions::default())
        .await?;
    ctx.register_table(name, df.into_view())?;
    Ok(())
}

/// Registers a Parquet or CSV file or folder as table `name` (`--table NAME=PATH`).
pub async fn register_path(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    let p = path.to_string_lossy().into_owned();
    if !path.exists() {
        return Err(Error::input(path, "no such file or folder"));
    }
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        ctx.register_csv(name, &p, Default::default()).await?;
    } else {
        ctx.register_parquet(name, &p, ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}

/// Runs one SQL statement and collects its result.
pub async fn sql(ctx: &SessionContext, statement: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let df = ctx.sql(statement).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

/// Splits a SQL script into statements on `;` outside quotes and comments.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    // Line comment: skip to the end of the line.
                    for c2 in chars.by_ref() {
                        if c2 == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let s = "SELECT 'a;b'; -- c; d\nSELECT 2;\n\n";
        assert_eq!(split_statements(s), vec!["SELECT 'a;b'", "SELECT 2"]);
    }
}
