//! The command line: clap derive definitions and the dispatch to the library.
//!
//! The CLI parses arguments and prints; it owns no logic a pipeline stage also needs. Each
//! command's file owns its `Args` and its `run` (`warehouse`: synth, ingest, tables,
//! describe, loads; `sql`: query, cube; `segment`: features, segment; `churn`;
//! `export`; `basket`: basket, sequence; `value`: clv, cohorts; `pipeline`: check, run,
//! runs, report;
//! `cluster`). A stage's options are its library parameter type, flattened, so a CLI flag
//! and a pipeline key share one type, one default and one check.
//!
//! Every subcommand's `///` doc is its help. Global options (`--warehouse`, `-q`,
//! `--log-format`, the engine's bounds) are accepted before or after the subcommand. Results
//! go to stdout through `output`; logs go to stderr through `tracing`. Library calls are
//! `async` and run in the one runtime `main` makes.

mod basket;
mod campaign;
mod churn;
#[cfg(feature = "distributed")]
mod cluster;
mod export;
pub mod output;
mod pipeline;
mod segment;
mod sql;
mod value;
mod warehouse;
mod web;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::olap;
use output::Format;

/// ecrm: an analytical e-CRM warehouse and data-mining toolkit.
///
/// Load raw customer and order extracts into a Parquet star schema (ingest), ask SQL and cube
/// questions over it (query, cube), build the customer feature mart (features), segment
/// customers (segment), forecast churn (churn), mine baskets and sequences (basket,
/// sequence), export call lists for marketing tools (export), and run all of it as one
/// checked, scheduled pipeline with a manifest and an HTML report per run (check, run,
/// report). Exit codes: 0 success, 1 a quality gate failed, 2 error.
#[derive(Debug, Parser)]
#[command(name = "ecrm", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The warehouse folder. Default: ./warehouse, or for `ecrm run` the pipeline's
    /// `warehouse`.
    #[arg(long, global = true, env = "ECRM_WAREHOUSE", value_name = "DIR")]
    pub warehouse: Option<PathBuf>,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Threads per SQL query (each runs two partitions). Default: every core.
    #[arg(long, global = true, env = "ECRM_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Memory for sorts, aggregations and joins in SQL, e.g. 2GiB or 500MB; beyond it they
    /// spill to disk. Default: no limit.
    #[arg(long, global = true, env = "ECRM_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<bytesize::ByteSize>,
    /// Folder for SQL spill files. Default: the OS temporary folder.
    #[arg(long, global = true, env = "ECRM_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Where SQL over warehouse tables runs: here, or on a Ballista cluster (--scheduler).
    #[arg(long, global = true, env = "ECRM_ENGINE", value_enum, default_value_t = Engine::Local)]
    pub engine: Engine,
    /// The Ballista scheduler for --engine ballista: df://HOST:PORT.
    #[arg(long, global = true, env = "ECRM_SCHEDULER", value_name = "URL")]
    pub scheduler: Option<String>,
}

/// SQL engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// DataFusion in this process.
    Local,
    /// DataFusion Ballista: a scheduler and executors (see `ecrm cluster`).
    Ballista,
}

impl GlobalArgs {
    /// The warehouse folder: `--warehouse` (or `ECRM_WAREHOUSE`), else `fallback` (a
    /// pipeline's `warehouse`), else `./warehouse`.
    pub fn warehouse_or(&self, fallback: Option<&Path>) -> PathBuf {
        self.warehouse
            .clone()
            .or_else(|| fallback.map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("warehouse"))
    }

    /// The SQL engine's bounds from the command line.
    pub fn engine(&self) -> olap::EngineOptions {
        olap::EngineOptions {
            threads: self.threads.map(usize::from),
            memory_limit: self.memory_limit.map(|b| b.as_u64()),
            spill_dir: self.spill_dir.clone(),
            as_of: None,
            scheduler: match self.engine {
                Engine::Ballista => self.scheduler.clone(),
                Engine::Local => None,
            },
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write realistic, messy raw CRM extracts (customers, products, order lines, campaign
    /// contacts) and synth.json, which records what was planted.
    Synth(warehouse::SynthArgs),
    /// Load raw extracts into the warehouse as a source contract describes.
    Ingest(warehouse::IngestArgs),
    /// List the warehouse's tables with their row counts.
    Tables(FormatArgs),
    /// Show a table's columns and types.
    Describe {
        /// Table name.
        table: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// List the loads (one row per source file per load), or roll one back.
    Loads {
        #[command(subcommand)]
        action: Option<warehouse::LoadsAction>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Answer SQL over the warehouse tables (DataFusion SQL); without -e or -f, read SQL
    /// from stdin, or open a prompt when stdin is a terminal.
    Query(sql::QueryArgs),
    /// Answer OLAP questions from a cube model without writing SQL; without --rows, list the
    /// model's levels and measures.
    Cube(sql::CubeArgs),
    /// Build the point-in-time customer feature mart (table customer_features) from the
    /// order lines before the as-of date.
    Features(segment::FeaturesArgs),
    /// Segment customers (RFM, k-means, DBSCAN, Gaussian mixture) into tables segments and
    /// segment_profiles; or, with --input, cluster the rows of any Parquet or CSV file.
    Segment(segment::SegmentArgs),
    /// Export customers for marketing tools.
    Export {
        #[command(subcommand)]
        what: export::ExportWhat,
    },
    /// Churn forecasting with decision trees: train a model with honest evaluation, score
    /// customers with it.
    Churn {
        #[command(subcommand)]
        action: churn::ChurnAction,
    },
    /// Market-basket analysis: frequent itemsets (FP-growth), association rules with exact
    /// thresholds, cross-sell recommendations.
    Basket {
        #[command(subcommand)]
        action: basket::BasketAction,
    },
    /// Sequential patterns (PrefixSpan) over each customer's invoices in time order, or over
    /// a sequence file: "bought A, then B (within D days)".
    Sequence(basket::SequenceArgs),
    /// Customer lifetime value: fit purchase and spend models (BG/NBD, Pareto/NBD,
    /// Gamma-Gamma), score customers' P(alive), expected purchases and CLV, measure a model
    /// on a hold-out.
    Clv {
        #[command(subcommand)]
        action: value::ClvAction,
    },
    /// Customer profitability: revenue, cost of goods (NULL where unknown, never 0), returns,
    /// services and contact costs per customer into table customer_profit; prints the whale
    /// curve by profit decile.
    Profit(value::ProfitArgs),
    /// Erase customers' personal data (right to be forgotten) from every table, in one
    /// commit: their facts move to the unknown member so totals stay, every other row of
    /// theirs goes, rejected rows' text naming them is blanked, and the state before is
    /// deleted; table erasure_log records the erasure without ids.
    Erase(campaign::EraseArgs),
    /// Consent over time: customers with consent on each channel at each month's end,
    /// grants and withdrawals; warns of contacts made without consent at their time.
    Consent(campaign::ConsentArgs),
    /// Campaign evaluation against a control arm.
    Campaign {
        #[command(subcommand)]
        action: campaign::CampaignAction,
    },
    /// Web activity: sessions and identity stitching, funnels and paths over the
    /// click-stream.
    Web {
        #[command(subcommand)]
        action: web::WebAction,
    },
    /// Cohort retention: customers by the period of their first purchase and what each
    /// cohort did in each period since (table cohort_retention; periods not yet over are
    /// NULL); `cohorts sbg` fits and projects a survivor curve.
    Cohorts(value::CohortsArgs),
    /// Check a pipeline file without touching data: keys, params, tables nothing produces,
    /// cycles. Prints the stages in run order with what each reads and writes.
    Check {
        /// The pipeline file (TOML).
        file: PathBuf,
    },
    /// Run a pipeline's stages in dependency order, with data tests after each; writes the
    /// run manifest WAREHOUSE/runs/RUN_ID.json and prints the run id as the last line.
    /// Exit 0: succeeded; 1: data tests or gates failed; 2: a stage failed or the run could
    /// not start (e.g. another run holds the warehouse).
    Run(pipeline::RunArgs),
    /// Write the HTML report (one self-contained page with inline SVG charts) of a run to
    /// OUT_DIR/PIPELINE/AS_OF/index.html and print its path.
    Report(pipeline::ReportArgs),
    /// List recent pipeline runs, newest first.
    Runs {
        /// How many runs.
        #[arg(long, default_value_t = 10)]
        last: usize,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Run a node of a Ballista cluster for scale-out SQL (see --engine ballista): a
    /// scheduler, or an executor that joins the scheduler given by --scheduler.
    #[cfg(feature = "distributed")]
    Cluster {
        #[command(subcommand)]
        role: cluster::ClusterRole,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `--format` and `--max-rows` for commands that print rows.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Rows shown by the table format.
    #[arg(long, default_value_t = 40)]
    pub max_rows: usize,
}

impl FormatArgs {
    /// Refuses `--format parquet` for a command that prints a summary to stdout, before it
    /// does any work (a job must not succeed and then fail on printing).
    fn check_printable(&self, command: &str) -> Result<()> {
        if self.format == Some(Format::Parquet) {
            return Err(Error::Usage {
                arg: "--format".into(),
                message: format!("{command} prints its summary as table, csv, json or ndjson"),
            });
        }
        Ok(())
    }

    /// Prints batches in the chosen format.
    fn print(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let mut out = std::io::stdout().lock();
        output::write_batches(
            &mut out,
            Format::resolve(self.format),
            schema,
            batches,
            Some(self.max_rows),
        )
    }
}

/// What every command runs with.
pub(crate) struct Context<'a> {
    pub wh_root: PathBuf,
    pub quiet: bool,
    pub engine: olap::EngineOptions,
    pub global: &'a GlobalArgs,
    /// The process's one runtime (from `main`), for the library's async calls.
    pub rt: &'a Runtime,
}

impl Context<'_> {
    /// Runs a library call in the process's runtime.
    fn block<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(work)
    }

    /// Progress bars on stderr: when it is a terminal and `-q` is off.
    fn progress(&self) -> bool {
        !self.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

/// Writes a line to stdout; an error names stdout (a closed pipe is then success in `main`).
pub(crate) fn say(out: &mut impl Write, text: std::fmt::Arguments<'_>) -> Result<()> {
    out.write_fmt(text)
        .and_then(|_| out.write_all(b"\n"))
        .map_err(|e| Error::io("<stdout>", e))
}

/// A date option (`YYYY-MM-DD`) under its key.
fn date(key: &str, text: Option<&str>) -> Result<Option<chrono::NaiveDate>> {
    text.map(|d| crate::param::date(key, d)).transpose()
}

/// Runs a parsed command line in `rt`, the process's runtime.
pub fn run(cli: Cli, rt: &Runtime) -> Result<()> {
    check_engine(&cli.global)?;
    let cx = Context {
        wh_root: cli.global.warehouse_or(None),
        quiet: cli.global.quiet,
        engine: cli.global.engine(),
        global: &cli.global,
        rt,
    };
    match cli.command {
        Command::Synth(a) => warehouse::synth(a),
        Command::Ingest(a) => warehouse::ingest(a, &cx),
        Command::Tables(f) => warehouse::tables(&f, &cx),
        Command::Describe { table, format } => warehouse::describe(&table, &format, &cx),
        Command::Loads { action, format } => warehouse::loads(action, &format, &cx),
        Command::Query(a) => sql::query(&a, &cx),
        Command::Cube(a) => sql::cube(&a, &cx),
        Command::Features(a) => segment::features(a, &cx),
        Command::Segment(a) => segment::segment(a, &cx),
        Command::Export { what } => export::run(what, &cx),
        Command::Churn { action } => churn::run(action, &cx),
        Command::Basket { action } => basket::run(action, &cx),
        Command::Sequence(a) => basket::run_sequence(a, &cx),
        Command::Clv { action } => value::run(action, &cx),
        Command::Cohorts(a) => value::cohorts(a, &cx),
        Command::Profit(a) => value::profit(a, &cx),
        Command::Campaign { action } => campaign::run(action, &cx),
        Command::Consent(a) => campaign::consent(a, &cx),
        Command::Erase(a) => campaign::erase(a, &cx),
        Command::Web { action } => web::run(action, &cx),
        Command::Check { file } => pipeline::check(&file),
        Command::Run(a) => pipeline::run(a, &cx),
        Command::Runs { last, format } => pipeline::runs(last, &format, &cx),
        Command::Report(a) => pipeline::report(a, &cx),
        #[cfg(feature = "distributed")]
        Command::Cluster { role } => cluster::run(role, &cx),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails, and a pipe
            // closed early (`| head -1`) is success, not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ecrm", &mut script);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)
                .and_then(|_| out.flush())
                .map_err(|e| Error::io("<stdout>", e))
        }
    }
}

/// `--engine ballista` needs a scheduler (and a binary built with Ballista).
fn check_engine(global: &GlobalArgs) -> Result<()> {
    if global.engine != Engine::Ballista {
        return Ok(());
    }
    let url = global.scheduler.as_deref().ok_or_else(|| Error::Usage {
        arg: "--engine".into(),
        message: "ballista needs --scheduler df://HOST:PORT (or ECRM_SCHEDULER)".into(),
    })?;
    #[cfg(feature = "distributed")]
    olap::cluster::parse_scheduler(url)?;
    #[cfg(not(feature = "distributed"))]
    return Err(Error::Engine {
        scheduler: url.to_string(),
        message: "this ecrm was built without the `distributed` feature".into(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every choice a CLI option and a pipeline key share has one name on both faces.
    #[test]
    fn every_choice_has_the_same_name_for_clap_and_serde() {
        fn same<T: ValueEnum + serde::Serialize + serde::de::DeserializeOwned + PartialEq>() {
            for v in T::value_variants() {
                let clap_name = v
                    .to_possible_value()
                    .expect("a value")
                    .get_name()
                    .to_string();
                let serde_name = serde_json::to_value(v).expect("serializes");
                assert_eq!(serde_name, serde_json::Value::String(clap_name.clone()));
                let back: T = serde_json::from_value(serde_name).expect("reads back");
                assert!(back == *v, "{clap_name}");
            }
        }
        same::<crate::segment::Method>();
        same::<crate::segment::Scale>();
        same::<crate::churn::tree::Criterion>();
        same::<crate::churn::tree::ClassWeight>();
        same::<crate::churn::tree::LeafProbability>();
        same::<crate::churn::RiskBand>();
        same::<crate::basket::Level>();
        same::<crate::basket::BasketFormat>();
        same::<crate::sequence::SequenceFormat>();
        same::<crate::export::Channel>();
        same::<crate::value::model::Method>();
        same::<crate::value::model::SpendModel>();
        same::<crate::value::model::TimeUnit>();
        same::<crate::cohorts::triangle::Period>();
        same::<crate::cohorts::triangle::CohortBy>();
        same::<crate::cohorts::triangle::Measure>();
        same::<crate::warehouse::files::FileFormat>();
        same::<crate::olap::cube::Subtotals>();
        same::<crate::olap::cube::Compare>();
        same::<crate::web::funnel::Within>();
        same::<crate::web::funnel::FunnelBy>();
        same::<crate::web::paths::Show>();
        same::<crate::web::paths::PathLevel>();
        same::<output::Format>();
    }

    /// The CLI's definition is consistent (clap checks ids, conflicts and defaults).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
