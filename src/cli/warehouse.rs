//! `ecrm synth`, `ecrm ingest`, `ecrm tables`, `ecrm describe`, `ecrm loads`: making,
//! loading and looking at the warehouse.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::output::Format;
use super::{Context, FormatArgs, output, say};
use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions, IngestParams, contract::Contract};
use crate::olap;
use crate::synth::{self, SynthParams};
use crate::warehouse::{Warehouse, tables};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder to write the extracts to (created if missing).
    #[arg(long)]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub params: SynthParams,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub params: IngestParams,
    /// Override a source's path with a file, folder or glob: PATH when the contract has one
    /// source, SOURCE=PATH otherwise. Repeatable.
    #[arg(long, value_name = "[SOURCE=]PATH")]
    pub input: Vec<String>,
    /// Rebuild the warehouse from these files alone.
    #[arg(long)]
    pub full_refresh: bool,
    /// Load a file whose name an earlier load used, with other content, in place of the
    /// earlier one: its fact rows and rejects are removed (order lines and contacts only).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Subcommand)]
pub enum LoadsAction {
    /// Remove one load: its fact rows, campaign contacts, rejects and `loads` rows, in one
    /// atomic commit. Dimension rows stay (they are history later facts may point to).
    Rollback {
        /// The load to remove (see `ecrm loads`).
        load_id: i64,
    },
}

/// `ecrm synth`.
pub fn synth(a: SynthArgs) -> Result<()> {
    let layout = a.params.layout;
    let params = a.params.check()?;
    let report = synth::generate(&params, &a.out_dir)?;
    let out = &mut std::io::stdout().lock();
    match layout {
        synth::SynthLayout::Flat => say(
            out,
            format_args!(
                "wrote {} order lines (flat layout) to {}",
                report.order_lines,
                a.out_dir.display()
            ),
        ),
        synth::SynthLayout::Normal => say(
            out,
            format_args!(
                "wrote {} customers, {} products, {} order lines, {} campaign contacts, {} web events to {}",
                report.customers,
                report.products,
                report.order_lines,
                report.campaign_contacts,
                report.web_events,
                a.out_dir.display()
            ),
        ),
    }
}

/// `ecrm ingest`: the contract and options checked before anything is loaded, the load, a
/// summary per file.
pub fn ingest(a: IngestArgs, cx: &Context<'_>) -> Result<()> {
    // Checked before loading: a load must not succeed and then exit 2 on its summary.
    a.format.check_printable("ingest")?;
    a.params.check()?;
    let inputs: Vec<(Option<String>, PathBuf)> = a
        .input
        .iter()
        .map(|s| match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => {
                (Some(name.to_string()), PathBuf::from(path))
            }
            _ => (None, PathBuf::from(s)),
        })
        .collect();
    let contract = Contract::load_with(&a.params.contract, &inputs)?;
    let opts = IngestOptions {
        inputs,
        full_refresh: a.full_refresh,
        replace: a.replace,
        max_reject_rate: a.params.max_reject_rate,
        chunk_rows: None,
        progress: cx.progress(),
    };
    let summary = ingest::ingest(&cx.wh_root, &contract, &opts)?;
    let format = Format::resolve(a.format.format);
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let text =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Internal(e.to_string()))?;
        return say(&mut out, format_args!("{text}"));
    }
    let (schema, batch) = load_summary_batch(&summary)?;
    output::write_batches(&mut out, format, &schema, &[batch], None)?;
    if format == Format::Table {
        match summary.load_id {
            Some(id) => say(
                &mut out,
                format_args!("load {id} committed to {}", cx.wh_root.display()),
            )?,
            None => say(
                &mut out,
                format_args!("nothing new to load: every file was loaded before"),
            )?,
        }
    }
    Ok(())
}

/// The load summary as one row per file.
fn load_summary_batch(s: &ingest::LoadSummary) -> Result<(SchemaRef, RecordBatch)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_read", DataType::UInt64, false),
        Field::new("loaded", DataType::UInt64, false),
        Field::new("rejected", DataType::UInt64, false),
        Field::new("duplicates", DataType::UInt64, false),
        Field::new("reasons", DataType::Utf8, false),
    ]));
    let f = &s.files;
    let text = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let count = |v: Vec<u64>| Arc::new(UInt64Array::from(v)) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        text(f.iter().map(|x| x.source.clone()).collect()),
        text(f.iter().map(|x| x.file.clone()).collect()),
        text(f.iter().map(|x| x.status.name().to_string()).collect()),
        count(f.iter().map(|x| x.rows_read).collect()),
        count(f.iter().map(|x| x.rows_loaded).collect()),
        count(f.iter().map(|x| x.rows_rejected).collect()),
        count(f.iter().map(|x| x.duplicates).collect()),
        text(
            f.iter()
                .map(|x| {
                    x.reasons
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect(),
        ),
    ];
    Ok((schema.clone(), RecordBatch::try_new(schema, cols)?))
}

/// `ecrm tables`: every table with its rows and files.
pub fn tables(f: &FormatArgs, cx: &Context<'_>) -> Result<()> {
    let wh = Warehouse::open(&cx.wh_root)?;
    if wh.table_names().is_empty() {
        return Err(Error::Warehouse {
            dir: cx.wh_root.clone(),
            message: "no tables: run `ecrm ingest` first".into(),
        });
    }
    let names: Vec<String> = wh.table_names();
    let tables = &wh.snapshot().tables;
    let rows: Vec<u64> = names.iter().map(|n| tables[n].rows()).collect();
    let files: Vec<u64> = names.iter().map(|n| tables[n].files.len() as u64).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("files", DataType::UInt64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(UInt64Array::from(rows)),
        Arc::new(UInt64Array::from(files)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    f.print(&schema, &[batch])
}

/// `ecrm describe TABLE`: its columns, types and nullability.
pub fn describe(table: &str, f: &FormatArgs, cx: &Context<'_>) -> Result<()> {
    let wh = Warehouse::open(&cx.wh_root)?;
    wh.table(table)?;
    let schema = cx.block(async {
        let ctx = olap::session(&wh, &cx.engine).await?;
        let df = ctx.table(table).await?;
        Ok::<_, Error>(df.schema().as_arrow().clone())
    })?;
    let out_schema = Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("nullable", DataType::Boolean, false),
    ]));
    let fields = schema.fields();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            fields.iter().map(|f| f.name().clone()),
        )),
        Arc::new(StringArray::from_iter_values(
            fields.iter().map(|f| f.data_type().to_string()),
        )),
        Arc::new(BooleanArray::from(
            fields.iter().map(|f| f.is_nullable()).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(out_schema.clone(), cols)?;
    f.print(&out_schema, &[batch])
}

/// `ecrm loads`: the loads table; `ecrm loads rollback ID`: remove one load.
pub fn loads(action: Option<LoadsAction>, f: &FormatArgs, cx: &Context<'_>) -> Result<()> {
    if let Some(LoadsAction::Rollback { load_id }) = action {
        let r = ingest::rollback(&cx.wh_root, load_id)?;
        let removed: Vec<String> = r.removed.iter().map(|(t, n)| format!("{t} {n}")).collect();
        return say(
            &mut std::io::stdout().lock(),
            format_args!(
                "rolled back load {}: removed rows: {}",
                r.load_id,
                removed.join(", ")
            ),
        );
    }
    let wh = Warehouse::open(&cx.wh_root)?;
    wh.table(tables::LOADS)?;
    let (schema, batches) = cx.block(async {
        let ctx = olap::session(&wh, &cx.engine).await?;
        olap::sql(
            &ctx,
            "SELECT load_id, source, file_name, rows_read, rows_loaded, rows_rejected, duplicates, \
             sha256, started_at, finished_at FROM loads ORDER BY load_id, source, file_name",
        )
        .await
    })?;
    f.print(&schema, &batches)
}
