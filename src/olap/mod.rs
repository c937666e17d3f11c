//! OLAP: the async runtime, the DataFusion session over the warehouse, SQL questions, and
//! cubes.
//!
//! - Input: every table of the warehouse snapshot, registered by name; extra tables from files
//!   (`--table NAME=PATH`); cube models ([`cube`]).
//! - Output: Arrow record batches, for the layers above to print, write or mine.
//! - Parameters ([`EngineOptions`]): threads (default: every core), a memory limit for sorts,
//!   aggregations and joins, beyond which they spill (default: none), the spill folder
//!   (default: the OS temporary folder), the point in time, and a Ballista scheduler
//!   (default: none, the local engine).
//!
//! The session is created here and only here ([`session`]): it is the one place that decides
//! whether SQL runs in this process or on a Ballista cluster ([`cluster`]); the rest of ecrm
//! does not know which engine it has. Every library call that asks SQL questions is `async`
//! and runs in the one runtime a process makes with [`runtime`].

mod csvfile;
pub mod cube;
pub mod sqltext;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

#[cfg(feature = "distributed")]
pub mod cluster;

use crate::error::{Error, Result};
use crate::warehouse::{Warehouse, tables};

/// Bounds on DataFusion's parallelism and memory; the same wherever ecrm runs SQL.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Threads per query (default: the machine's cores); queries run in two partitions per
    /// thread.
    pub threads: Option<usize>,
    /// Bytes that sorts, aggregations and joins may hold before they spill to disk (default:
    /// no limit). Operators that cannot spill fail with a "resources exhausted" error naming
    /// the biggest consumers.
    pub memory_limit: Option<u64>,
    /// Folder for spill files (default: the OS temporary folder).
    pub spill_dir: Option<PathBuf>,
    /// Point in time: when set, the fact tables show only rows before this date (order lines
    /// by `invoice_ts`, campaign contacts by `contact_ts`), so every question and model of a
    /// pipeline run sees the warehouse as it was on its as-of date, whatever arrived since.
    pub as_of: Option<chrono::NaiveDate>,
    /// A Ballista scheduler (`df://HOST:PORT`): when set, SQL over warehouse tables runs on
    /// that cluster ([`cluster`]); SQL over in-memory results stays local.
    pub scheduler: Option<String>,
}

impl EngineOptions {
    /// The same bounds with the local engine (for SQL over in-memory mining results, which
    /// a cluster cannot read).
    pub fn local(&self) -> EngineOptions {
        EngineOptions {
            scheduler: None,
            ..self.clone()
        }
    }

    /// The threads a query gets: `threads`, else every core.
    pub fn threads_or_cores(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// The fact tables and the time column that places each row in time (see
/// [`EngineOptions::as_of`]).
const FACT_TIMES: [(&str, &str); 4] = [
    (tables::FACT_SALES, "invoice_ts"),
    (tables::FACT_CAMPAIGN_CONTACT, "contact_ts"),
    (tables::FACT_CONSENT, "event_ts"),
    (tables::FACT_WEB_EVENT, "event_ts"),
];

/// A local session with no tables, under `opts` (its `scheduler` is not used).
pub fn empty_session(opts: &EngineOptions) -> Result<SessionContext> {
    let config = session_config(opts);
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = opts.memory_limit {
        // A fair pool shares the limit among the spilling operators of a query, so one big
        // sort cannot starve an aggregation; the tracker names the top consumers on failure.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(limit as usize),
            std::num::NonZeroUsize::new(5).expect("non-zero"),
        );
        runtime = runtime.with_memory_pool(Arc::new(pool));
    }
    if let Some(dir) = &opts.spill_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        runtime = runtime.with_temp_file_path(dir);
    }
    Ok(SessionContext::new_with_config_rt(
        config,
        runtime.build_arc()?,
    ))
}

/// The session settings of every engine: partitions per thread, spans for error messages.
fn session_config(opts: &EngineOptions) -> SessionConfig {
    let threads = opts.threads_or_cores();
    // Two partitions per thread: while one partition waits on Parquet decoding or a skewed
    // hash bucket, the other keeps the thread busy. Measured on the five peer OLAP questions
    // with 2 threads: 0.30 s with 2 partitions, 0.24 s with 4, no better with 8.
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(2 * threads.max(1));
    // Spans let planning errors point at the offending SQL text.
    config.options_mut().sql_parser.collect_spans = true;
    config
}

/// Creates the session and registers every warehouse table that has files.
///
/// With `opts.scheduler` the session is a Ballista client and every query over these tables
/// runs on the cluster; this is the one place that decides (the rest of ecrm does not know
/// which engine it has). Files are registered by absolute path, which executors on other
/// machines must see too.
pub async fn session(wh: &Warehouse, opts: &EngineOptions) -> Result<SessionContext> {
    let ctx = match &opts.scheduler {
        None => empty_session(opts)?,
        #[cfg(feature = "distributed")]
        Some(url) => cluster::remote_session(url, session_config(opts)).await?,
        #[cfg(not(feature = "distributed"))]
        Some(url) => {
            return Err(Error::Engine {
                scheduler: url.clone(),
                message: "this ecrm was built without the `distributed` feature".into(),
            });
        }
    };
    for name in wh.table_names() {
        let paths: Vec<String> = wh
            .table_paths(&name)?
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if paths.is_empty() {
            continue;
        }
        let mut df = ctx
            .read_parquet(paths, ParquetReadOptions::default())
            .await?;
        if let (Some(day), Some((_, time))) =
            (opts.as_of, FACT_TIMES.iter().find(|(t, _)| *t == name))
        {
            let midnight = day.and_time(chrono::NaiveTime::MIN);
            let nanos = midnight.and_utc().timestamp_nanos_opt().ok_or_else(|| {
                Error::Internal(format!("as-of date {day} is out of the timestamp range"))
            })?;
            let cut = datafusion::prelude::lit(
                datafusion::scalar::ScalarValue::TimestampNanosecond(Some(nanos), None),
            );
            df = df.filter(datafusion::prelude::col(*time).lt(cut))?;
        }
        ctx.register_table(name.as_str(), df.into_view())?;
    }
    Ok(ctx)
}

/// Registers a Parquet or CSV file or folder as table `name` (`--table NAME=PATH`).
pub async fn register_path(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    let p = path.to_string_lossy().into_owned();
    if !path.exists() {
        return Err(Error::input(path, "no such file or folder"));
    }
    if has_extension(path, "csv") {
        ctx.register_csv(name, &p, Default::default()).await?;
    } else {
        ctx.register_parquet(name, &p, ParquetReadOptions::default())
            .await?;
    }
    Ok(())
}

/// Whether `path` ends in `.EXT`, in any case.
fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The process's async runtime, in which every SQL question and every library call that
/// asks one runs: `threads` workers (default: every core). `main` makes one per process.
pub fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all()
        // Ballista's planners recurse deeply on big plans (its own binaries use 32 MB too).
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// Reads a Parquet or CSV file (or a folder of them) with its rows in file order, which
/// outputs written "one row per input row" depend on. `columns`: read only these (a missing
/// one is an error naming the file's columns), or all.
///
/// A multi-partition DataFusion scan does not keep file order, even when its partitions are
/// collected in order (measured: 1M-row Parquet files came back permuted in 4 runs of 6).
/// So a Parquet file's row groups are decoded in parallel with the parquet crate and put back
/// in order, a CSV file's records likewise in pieces ([`csvfile`]); folders, and CSV files
/// that path declines, go through a one-partition scan.
pub async fn read_in_order(
    path: &Path,
    columns: Option<&[String]>,
    opts: &EngineOptions,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rayon::prelude::*;
    if path.is_file() && has_extension(path, "parquet") {
        let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
        let builder = ParquetRecordBatchReaderBuilder::try_new(open()?)?;
        if let Some(cols) = columns {
            check_columns(path, builder.schema(), cols)?;
        }
        let mask = match columns {
            Some(cols) => {
                let arrow = builder.schema();
                let mut idx: Vec<usize> =
                    cols.iter().filter_map(|c| arrow.index_of(c).ok()).collect();
                idx.sort_unstable();
                idx.dedup();
                ProjectionMask::roots(builder.parquet_schema(), idx)
            }
            None => ProjectionMask::all(),
        };
        let groups = builder.metadata().num_row_groups();
        let schema = {
            use datafusion::arrow::array::RecordBatchReader;
            let b = ParquetRecordBatchReaderBuilder::try_new(open()?)?
                .with_projection(mask.clone())
                .with_row_groups(vec![]);
            b.build()?.schema()
        };
        let parts: Vec<Vec<RecordBatch>> = (0..groups)
            .into_par_iter()
            .map(|g| {
                let reader = ParquetRecordBatchReaderBuilder::try_new(open()?)?
                    .with_projection(mask.clone())
                    .with_row_groups(vec![g])
                    .with_batch_size(64 * 1024)
                    .build()?;
                reader
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(Error::from)
            })
            .collect::<Result<_>>()?;
        return Ok((schema, parts.into_iter().flatten().collect()));
    }
    if path.is_file()
        && has_extension(path, "csv")
        && let Some(read) = csvfile::read(path, columns)?
    {
        return Ok(read);
    }
    let ctx = empty_session(opts)?;
    sql(&ctx, "SET datafusion.execution.target_partitions = 1").await?;
    register_path(&ctx, "input", path).await?;
    let df = ctx.table("input").await?;
    let df = match columns {
        Some(cols) => {
            check_columns(path, df.schema().as_arrow(), cols)?;
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            df.select_columns(&cols)?
        }
        None => df,
    };
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// Fails naming the file and its columns when one of `wanted` is not among them.
fn check_columns(
    path: &Path,
    schema: &datafusion::arrow::datatypes::Schema,
    wanted: &[String],
) -> Result<()> {
    if let Some(c) = wanted.iter().find(|c| schema.index_of(c).is_err()) {
        return Err(Error::input(
            path,
            format!(
                "has no column {c:?}; its columns are: {}",
                column_list(schema)
            ),
        ));
    }
    Ok(())
}

/// Any column as text (arrow's cast to Utf8, NULLs kept): the one way ids, items, labels
/// and members of any type are read as text.
pub fn text_column(
    col: &dyn datafusion::arrow::array::Array,
) -> Result<datafusion::arrow::array::StringArray> {
    use datafusion::arrow::array::StringArray;
    let text =
        datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)?;
    text.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| Error::Internal("a cast to Utf8 gave another type".into()))
}

/// The index of column `c` of the file `path` (given under option `key`), or an error naming
/// the option and listing the file's columns.
pub fn column_index(
    path: &Path,
    schema: &datafusion::arrow::datatypes::Schema,
    key: &str,
    c: &str,
) -> Result<usize> {
    schema.index_of(c).map_err(|_| {
        Error::param(
            key,
            format!(
                "{} has no column {c:?}; its columns are: {}",
                path.display(),
                column_list(schema)
            ),
        )
    })
}

/// A schema's column names, comma-separated, for messages that say what a table has.
pub fn column_list(schema: &datafusion::arrow::datatypes::Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

/// Runs one SQL statement and collects its result; an error says where in the statement it
/// is when DataFusion knows.
pub async fn sql(ctx: &SessionContext, statement: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let run = async {
        let df = ctx.sql(statement).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok::<_, datafusion::error::DataFusionError>((schema, batches))
    };
    run.await.map_err(|e| sql_error(statement, &e))
}

/// Runs a script's statements and yields each one's result in statement order, with its
/// index. Runs of consecutive queries (they only read: [`sqltext::is_query`]) go up to two
/// per thread at a time (`opts.threads`); any other statement (`SET`, `CREATE VIEW`, ...)
/// runs alone, after everything before it and before anything after it, as it may change
/// what they see. Under `opts.memory_limit` every statement runs alone: queries side by
/// side would share the limit, and one that fits alone could then fail.
///
/// Why: one query leaves cores idle in its serial steps (planning, the last merge and sort):
/// the five peer OLAP questions used 1.5 of 2 cores one after another and took 0.161 s
/// (medians of 21 whole processes, 2 threads); with one query per thread at a time 0.142 s,
/// with two 0.133–0.138 s. Dropping the stream stops the statements still running.
pub fn script(
    ctx: &SessionContext,
    statements: &[String],
    opts: &EngineOptions,
) -> impl futures::Stream<Item = (usize, Result<(SchemaRef, Vec<RecordBatch>)>)> + use<> {
    use futures::{FutureExt, StreamExt, stream};
    let mut groups: Vec<(bool, Vec<(usize, String)>)> = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let query = sqltext::is_query(s);
        match groups.last_mut() {
            Some((true, run)) if query => run.push((i, s.clone())),
            _ => groups.push((query, vec![(i, s.clone())])),
        }
    }
    let side_by_side = match opts.memory_limit {
        None => 2 * opts.threads_or_cores().max(1),
        Some(_) => 1,
    };
    let ctx = ctx.clone();
    stream::iter(groups).flat_map(move |(query, run)| {
        let width = if query { side_by_side } else { 1 };
        let ctx = ctx.clone();
        stream::iter(run)
            .map(move |(i, s)| {
                let ctx = ctx.clone();
                // Spawned, so that planning and the last steps of one query run beside
                // another's; the handle cancels the task when it is dropped.
                let (task, handle) = async move { sql(&ctx, &s).await }.remote_handle();
                tokio::spawn(task);
                handle.map(move |r| (i, r))
            })
            .buffered(width)
    })
}

/// The day after the latest `column` (a timestamp) of `table`: the default as-of date that
/// sees all of it; None when the table has no rows.
pub async fn day_after_last(
    ctx: &SessionContext,
    table: &str,
    column: &str,
) -> Result<Option<chrono::NaiveDate>> {
    use datafusion::arrow::array::{Array, AsArray};
    let (_, batches) = sql(
        ctx,
        &format!("SELECT CAST(max({column}) AS DATE) + INTERVAL '1 day' FROM {table}"),
    )
    .await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        // max() of no rows is NULL, whose slot reads as day 0 (1970-01-01): check it.
        let days = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        days.is_valid(0).then(|| days.value_as_date(0)).flatten()
    }))
}

/// Runs one SQL statement and hands its result to `each` batch by batch as they come, so a
/// result of millions of rows that is folded into something smaller (sequences, baskets,
/// histories) is never held whole.
pub async fn for_each_batch(
    ctx: &SessionContext,
    statement: &str,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    use futures::StreamExt;
    let mut stream = async { ctx.sql(statement).await?.execute_stream().await }
        .await
        .map_err(|e| sql_error(statement, &e))?;
    while let Some(batch) = stream.next().await {
        each(&batch.map_err(|e| sql_error(statement, &e))?)?;
    }
    Ok(())
}

/// Runs one SQL statement and folds its output partitions into one state per runtime thread
/// (`init(number of states)`, then `each` batch by batch), so that a consumer heavier than
/// the scan works on every core. The states come back in a fixed order. If one fails, the
/// others are stopped.
pub async fn fold_partitions<S: Send + 'static>(
    ctx: &SessionContext,
    statement: &str,
    init: impl Fn(usize) -> S,
    each: fn(&mut S, &RecordBatch) -> Result<()>,
) -> Result<Vec<S>> {
    use futures::StreamExt;
    let streams = async { ctx.sql(statement).await?.execute_stream_partitioned().await }
        .await
        .map_err(|e| sql_error(statement, &e))?;
    // One state per worker thread, each reading its share of the partitions one after
    // another (the scan decodes on the thread that pulls it).
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let n = streams.len().min(workers).max(1);
    let mut shares: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    for (k, stream) in streams.into_iter().enumerate() {
        shares[k % n].push(stream);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (k, share) in shares.into_iter().enumerate() {
        let (mut state, statement) = (init(n), statement.to_string());
        tasks.spawn(async move {
            for mut stream in share {
                while let Some(batch) = stream.next().await {
                    each(&mut state, &batch.map_err(|e| sql_error(&statement, &e))?)?;
                }
            }
            Ok::<_, Error>((k, state))
        });
    }
    let mut states = Vec::with_capacity(tasks.len());
    // (Dropping `tasks` on an early return aborts the rest.)
    while let Some(done) = tasks.join_next().await {
        states.push(done.map_err(|e| {
            Error::Internal(format!("a partition of `{statement}` stopped: {e}"))
        })??);
    }
    states.sort_unstable_by_key(|(k, _)| *k);
    Ok(states.into_iter().map(|(_, s)| s).collect())
}

/// The message of a DataFusion error as a person reads it: a syntax error's own text, not
/// the parser's Rust debug form, and without the position (the caller gives it once).
fn sql_message(e: &datafusion::error::DataFusionError) -> String {
    use datafusion::sql::sqlparser::parser::ParserError;
    let syntax = match e.find_root() {
        datafusion::error::DataFusionError::SQL(p, _) => match p.as_ref() {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => Some(m.clone()),
            ParserError::RecursionLimitExceeded => Some("the statement nests too deeply".into()),
        },
        _ => None,
    };
    match syntax {
        Some(m) => {
            let re = regex::Regex::new(r"\s*at Line: \d+, Column: \d+").expect("valid regex");
            format!("syntax error: {}", re.replace(&m, ""))
        }
        None => e.strip_backtrace(),
    }
}

/// A DataFusion error as [`Error::Sql`], with the line and column it points at: from the
/// planner's diagnostic span, or from the parser's "at Line: L, Column: C".
pub fn sql_error(statement: &str, e: &datafusion::error::DataFusionError) -> Error {
    let message = sql_message(e);
    let raw = e.strip_backtrace();
    let from_span = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| {
            let width = if s.end.line == s.start.line {
                (s.end.column.saturating_sub(s.start.column)).max(1)
            } else {
                1
            };
            (s.start.line, s.start.column, width)
        });
    let position = from_span.or_else(|| {
        let re = regex::Regex::new(r"at Line: (\d+), Column: (\d+)").expect("valid regex");
        let c = re.captures(&raw)?;
        Some((c[1].parse().ok()?, c[2].parse().ok()?, 1))
    });
    let (line, column, pointer) = match position {
        Some((line, column, width)) => {
            let text = statement.lines().nth(line as usize - 1).unwrap_or("");
            let pointer = format!(
                "\n  {text}\n  {}{}",
                " ".repeat(column.saturating_sub(1) as usize),
                "^".repeat(width as usize)
            );
            (Some(line), Some(column), pointer)
        }
        None => (None, None, String::new()),
    };
    Error::Sql {
        message,
        line,
        column,
        pointer,
    }
}
