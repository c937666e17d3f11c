//! `ecrm query` and `ecrm cube`: SQL and cube questions, printed or written to a file.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::output::{self, Format};
use super::{Context, FormatArgs};
use crate::error::{Error, Result};
use crate::olap::cube::{Cube, CubeQuery};
use crate::olap::sqltext::{ends_statement, split_statements};
use crate::olap::{self, EngineOptions};
use crate::warehouse::Warehouse;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// SQL to run; several statements separated by `;` print one result each.
    // SQL may start with a `--` comment.
    #[arg(
        short = 'e',
        long = "execute",
        conflicts_with = "file",
        allow_hyphen_values = true
    )]
    pub sql: Option<String>,
    /// A file of `;`-separated SQL statements.
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// Register a Parquet or CSV file or folder as an extra table: NAME=PATH. Repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub table: Vec<String>,
    /// Write the last statement's result to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct CubeArgs {
    /// The cube: a model file, or NAME for CUBES_DIR/NAME.toml.
    #[arg(long)]
    pub cube: String,
    /// Where models named by NAME live.
    #[arg(long, env = "ECRM_CUBES", default_value = "pipelines/cubes")]
    pub cubes_dir: PathBuf,
    /// Row levels, coarse to fine (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LEVEL[,LEVEL]")]
    pub rows: Vec<String>,
    /// A column level: one more grouping column, or with --pivot one column per member.
    #[arg(long, value_name = "LEVEL")]
    pub cols: Option<String>,
    /// Measures (comma-separated). Default: the model's `revenue`.
    #[arg(long, value_delimiter = ',', value_name = "M[,M]")]
    pub measures: Vec<String>,
    /// Keep one member of a level: LEVEL=VALUE. Repeatable.
    #[arg(long, value_name = "LEVEL=VALUE")]
    pub slice: Vec<String>,
    /// Keep some members of a level: LEVEL=V1,V2,... Repeatable.
    #[arg(long, value_name = "LEVEL=V1,V2")]
    pub dice: Vec<String>,
    /// Subtotals and a grand total; subtotal members read `All`.
    #[arg(long, value_enum)]
    pub subtotals: Option<olap::cube::Subtotals>,
    /// Go one level down this row level's hierarchy (year → year, quarter).
    #[arg(long, value_name = "LEVEL")]
    pub drill: Option<String>,
    /// Only the top N members of the last row level within each member of the levels before
    /// it, ranked by --by.
    #[arg(long, value_name = "N", requires = "by")]
    pub top: Option<usize>,
    /// The measure --top ranks by.
    #[arg(long, value_name = "MEASURE", requires = "top")]
    pub by: Option<String>,
    /// One column per member of the --cols level (`<member>`, or `<member>_<measure>` with
    /// several measures).
    #[arg(long)]
    pub pivot: bool,
    /// Period-over-period growth over the time level in --rows: `<m>_prev`, `<m>_growth`.
    #[arg(long, value_enum)]
    pub compare: Option<olap::cube::Compare>,
    /// Print the SQL on stderr before running it.
    #[arg(long)]
    pub show_sql: bool,
    /// Write the result to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// A session over the warehouse plus the `--table NAME=PATH` files; an error when there are
/// no tables at all.
async fn open_session(
    wh_root: &Path,
    tables: &[String],
    engine: &EngineOptions,
) -> Result<SessionContext> {
    let mut extra = Vec::new();
    for t in tables {
        let Some((name, path)) = t.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(Error::Usage {
                arg: "--table".into(),
                message: format!("{t:?} is not NAME=PATH"),
            });
        };
        extra.push((name.to_string(), PathBuf::from(path)));
    }
    let wh = Warehouse::open(wh_root)?;
    if wh.table_names().is_empty() && extra.is_empty() {
        return Err(Error::Warehouse {
            dir: wh_root.to_path_buf(),
            message: "no tables: run `ecrm ingest` first, or register files with --table NAME=PATH"
                .into(),
        });
    }
    let ctx = olap::session(&wh, engine).await?;
    for (name, path) in &extra {
        olap::register_path(&ctx, name, path).await?;
    }
    Ok(ctx)
}

/// Where results go: stdout in `format`, or the last result to `--out`.
pub(crate) struct Sink<'a> {
    format: Format,
    out: Option<&'a Path>,
    max_rows: usize,
    printed: usize,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(
        given: Option<Format>,
        out: Option<&'a Path>,
        max_rows: usize,
    ) -> Result<Self> {
        let format = match (given, out) {
            (Some(f), _) => f,
            (None, Some(path)) => Format::for_file(path),
            (None, None) => Format::resolve(None),
        };
        if format == Format::Parquet && out.is_none() {
            return Err(Error::Usage {
                arg: "--format parquet".into(),
                message: "writes a file: give --out FILE".into(),
            });
        }
        Ok(Sink {
            format,
            out,
            max_rows,
            printed: 0,
        })
    }

    /// Emits one result; `last` says whether it is the last statement's (the one `--out`
    /// takes).
    pub(crate) fn emit(
        &mut self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        last: bool,
    ) -> Result<()> {
        match self.out {
            Some(path) if last => return output::write_file(path, self.format, schema, batches),
            Some(_) => return Ok(()),
            None => {}
        }
        let mut out = std::io::stdout().lock();
        if self.printed > 0 && self.format == Format::Csv {
            writeln!(out).map_err(|e| Error::io("<stdout>", e))?;
        }
        self.printed += 1;
        output::write_batches(&mut out, self.format, schema, batches, Some(self.max_rows))
    }
}

/// `ecrm query`.
pub fn query(a: &QueryArgs, cx: &Context<'_>) -> Result<()> {
    let (wh_root, engine) = (cx.wh_root.as_path(), &cx.engine);
    let script = match (&a.sql, &a.file) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(f)) => Some(std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::io("<stdin>", e))?;
            Some(s)
        }
        (None, None) => None,
    };
    if script.is_none() && a.out.is_some() {
        return Err(Error::Usage {
            arg: "--out".into(),
            message: "the prompt prints its results: give the SQL with -e or -f to write a file"
                .into(),
        });
    }
    let mut sink = Sink::new(a.format.format, a.out.as_deref(), a.format.max_rows)?;
    cx.block(async {
        let ctx = open_session(wh_root, &a.table, engine).await?;
        let Some(script) = script else {
            return prompt(&ctx, &mut sink).await;
        };
        let statements = split_statements(&script);
        if statements.is_empty() {
            return Err(Error::Usage {
                arg: "query".into(),
                message: "no SQL statement given".into(),
            });
        }
        let last = statements.len() - 1;
        let running = olap::script(&ctx, &statements, engine);
        let mut results = std::pin::pin!(running);
        while let Some((i, result)) = results.next().await {
            let (schema, batches) = result.map_err(|e| match e {
                // Several statements: say which one failed.
                Error::Sql {
                    message,
                    line,
                    column,
                    pointer,
                } if last > 0 => Error::Sql {
                    message: format!("statement {} of {}: {message}", i + 1, last + 1),
                    line,
                    column,
                    pointer,
                },
                e => e,
            })?;
            sink.emit(&schema, &batches, i == last)?;
        }
        Ok(())
    })
}

/// The interactive prompt: statements end with `;`; history is kept in ~/.ecrm_history.
/// `\d` lists tables, `\d NAME` describes one, `\q` quits.
async fn prompt(ctx: &SessionContext, sink: &mut Sink<'_>) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new()
        .map_err(|e| Error::Internal(format!("cannot start the prompt: {e}")))?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ecrm_history"));
    if let Some(h) = &history {
        // A missing history file is the normal first run.
        let _ = rl.load_history(h);
    }
    eprintln!("ecrm SQL prompt: end statements with ';', \\d lists tables, \\q quits");
    let mut buffer = String::new();
    loop {
        let line = match rl.readline(if buffer.is_empty() {
            "ecrm> "
        } else {
            "  ... "
        }) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Internal(format!("prompt: {e}"))),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = rl.add_history_entry(trimmed);
            let statement = match trimmed.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["\\q"] => break,
                ["\\d"] => "SELECT table_name FROM information_schema.tables \
                              WHERE table_schema = 'public' ORDER BY table_name"
                    .to_string(),
                ["\\d", name] => format!("DESCRIBE {name}"),
                _ => {
                    eprintln!("commands: \\d, \\d TABLE, \\q");
                    continue;
                }
            };
            run_interactive(ctx, sink, &statement).await;
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !ends_statement(&buffer) {
            continue;
        }
        let _ = rl.add_history_entry(buffer.trim());
        for stmt in split_statements(&buffer) {
            run_interactive(ctx, sink, &stmt).await;
        }
        buffer.clear();
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// Runs one statement at the prompt: errors are printed, and the prompt goes on.
async fn run_interactive(ctx: &SessionContext, sink: &mut Sink<'_>, stmt: &str) {
    let result = match olap::sql(ctx, stmt).await {
        Ok((schema, batches)) => sink.emit(&schema, &batches, false),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
    }
}

/// Splits `LEVEL=VALUE`.
fn level_value<'s>(arg: &str, s: &'s str) -> Result<(String, &'s str)> {
    match s.split_once('=') {
        Some((l, v)) if !l.trim().is_empty() => Ok((l.trim().to_string(), v)),
        _ => Err(Error::Usage {
            arg: arg.into(),
            message: format!("{s:?} is not LEVEL=VALUE"),
        }),
    }
}

impl CubeArgs {
    /// The question these arguments ask.
    pub fn query(&self) -> Result<CubeQuery> {
        let mut q = CubeQuery {
            rows: self.rows.clone(),
            cols: self.cols.clone(),
            measures: if self.measures.is_empty() {
                vec!["revenue".to_string()]
            } else {
                self.measures.clone()
            },
            subtotals: self.subtotals,
            drill: self.drill.clone(),
            top: self.top.zip(self.by.clone()),
            pivot: self.pivot,
            compare: self.compare,
            ..Default::default()
        };
        for s in &self.slice {
            let (l, v) = level_value("--slice", s)?;
            q.slices.push((l, v.trim().to_string()));
        }
        for s in &self.dice {
            let (l, v) = level_value("--dice", s)?;
            // `country=a, b` means members "a" and "b": the space after a comma is not
            // part of a member.
            q.dices
                .push((l, v.split(',').map(|x| x.trim().to_string()).collect()));
        }
        Ok(q)
    }
}

/// `ecrm cube`.
pub fn cube(a: &CubeArgs, cx: &Context<'_>) -> Result<()> {
    let (wh_root, engine) = (cx.wh_root.as_path(), &cx.engine);
    let model = Cube::find(&a.cube, &a.cubes_dir)?;
    let mut sink = Sink::new(a.format.format, a.out.as_deref(), a.format.max_rows)?;
    if a.rows.is_empty() {
        let (schema, batch) = model_listing(&model)?;
        return sink.emit(&schema, &[batch], true);
    }
    let q = a.query()?;
    cx.block(async {
        let wh = Warehouse::open(wh_root)?;
        let ctx = olap::session(&wh, engine).await?;
        let sql = model.sql(&ctx, &q).await?;
        if a.show_sql {
            eprintln!("{sql};");
        }
        let (schema, batches) = olap::sql(&ctx, &sql).await?;
        sink.emit(&schema, &batches, true)
    })
}

/// A model's levels and measures, one row each.
fn model_listing(model: &Cube) -> Result<(SchemaRef, RecordBatch)> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let mut rows: Vec<[String; 5]> = Vec::new();
    for d in model.dimensions.values() {
        let mut levels: Vec<&crate::olap::cube::Level> = model
            .levels
            .values()
            .filter(|l| l.dimension == d.name)
            .collect();
        levels.sort_by_key(|l| (l.depth.is_none(), l.depth, l.name.clone()));
        for l in levels {
            rows.push([
                "level".into(),
                l.name.clone(),
                d.name.clone(),
                if l.depth.is_some() {
                    d.hierarchy.join(" › ")
                } else {
                    String::new()
                },
                l.description.clone().unwrap_or_default(),
            ]);
        }
    }
    for m in model.measures.values() {
        rows.push([
            "measure".into(),
            m.name.clone(),
            String::new(),
            String::new(),
            m.description.clone().unwrap_or_default(),
        ]);
    }
    let names = ["kind", "name", "dimension", "hierarchy", "description"];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    Ok((schema.clone(), RecordBatch::try_new(schema, cols)?))
}
