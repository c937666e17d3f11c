//! The command line: clap derive definitions and the dispatch to the library.
//!
//! Every subcommand's `///` doc is its help. Global options (`--warehouse`, `-q`,
//! `--log-format`) are accepted before or after the subcommand. Results go to stdout through
//! [`output`]; logs go to stderr through `tracing`.

mod basket;
pub mod output;
mod sql;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::churn;
use crate::error::{Error, Result};
use crate::export;
use crate::features;
use crate::ingest::{self, IngestOptions, contract::Contract};
use crate::olap;
use crate::pipeline;
use crate::segment;
use crate::synth::{self, SynthParams};
use crate::warehouse::Warehouse;
use output::Format;

/// ecrm: an analytical e-CRM warehouse and data-mining toolkit.
///
/// Load raw customer and order extracts into a Parquet star schema (ingest), ask SQL
/// questions over it (query), and, in later versions, segment, forecast churn and mine
/// baskets. Exit codes: 0 success, 1 a quality gate failed, 2 error.
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
    pub fn warehouse_or(&self, fallback: Option<&std::path::Path>) -> PathBuf {
        self.warehouse
            .clone()
            .or_else(|| fallback.map(std::path::Path::to_path_buf))
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
    Synth(SynthArgs),
    /// Load raw extracts into the warehouse as a source contract describes.
    Ingest(IngestArgs),
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
        action: Option<LoadsAction>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Answer SQL over the warehouse tables (DataFusion SQL); without -e or -f, read SQL
    /// from stdin, or open a prompt when stdin is a terminal.
    Query(QueryArgs),
    /// Answer OLAP questions from a cube model without writing SQL; without --rows, list the
    /// model's levels and measures.
    Cube(CubeArgs),
    /// Build the point-in-time customer feature mart (table customer_features) from the
    /// order lines before the as-of date.
    Features(FeaturesArgs),
    /// Segment customers (RFM, k-means, DBSCAN, Gaussian mixture) into tables segments and
    /// segment_profiles; or, with --input, cluster the rows of any Parquet or CSV file.
    Segment(SegmentArgs),
    /// Export customers for marketing tools.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
    /// Churn forecasting with decision trees: train a model with honest evaluation, score
    /// customers with it.
    Churn {
        #[command(subcommand)]
        action: ChurnAction,
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
    /// Check a pipeline file without touching data: keys, params, tables nothing produces,
    /// cycles. Prints the stages in run order with what each reads and writes.
    Check {
        /// The pipeline file (TOML).
        file: PathBuf,
    },
    /// Run a pipeline's stages in dependency order, with data tests after each; writes the
    /// run manifest <warehouse>/runs/<run id>.json and prints the run id as the last line.
    /// Exit 0: succeeded; 1: data tests or gates failed; 2: a stage failed or the run could
    /// not start (e.g. another run holds the warehouse).
    Run(RunArgs),
    /// Write the HTML report (one self-contained page with inline SVG charts) of a run to
    /// <out-dir>/<pipeline>/<as-of>/index.html and print its path.
    Report(ReportArgs),
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
        role: ClusterRole,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The roles of `ecrm cluster`.
#[cfg(feature = "distributed")]
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// Run a scheduler until stopped.
    Scheduler {
        /// Address to listen on (and to advertise): HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: std::net::SocketAddr,
        /// Seconds without a heartbeat after which an executor counts as lost; the jobs
        /// running then fail, naming it. Longer than the executors' heartbeat interval.
        #[arg(long, default_value_t = 60)]
        executor_timeout_seconds: u64,
    },
    /// Run an executor until stopped; it joins the scheduler of --scheduler.
    Executor {
        /// Address to listen on and advertise to the scheduler and the other executors.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Port for shuffle data (Arrow Flight).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Port for the executor's gRPC service.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks at a time. Default: the cores.
        #[arg(long)]
        vcores: Option<usize>,
        /// Memory for its tasks, e.g. 4GiB. Default: Ballista's share of the host's memory.
        #[arg(long, value_name = "SIZE")]
        memory_pool_size: Option<bytesize::ByteSize>,
        /// Folder for shuffle files. Default: a temporary folder.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<String>,
        /// Seconds between heartbeats to the scheduler (shorter than its
        /// --executor-timeout-seconds).
        #[arg(long, default_value_t = 10)]
        heartbeat_interval_seconds: u64,
    },
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
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where reports go.
    #[arg(long, default_value = "notebooks-out", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The run to report (its as-of date and stage timings). Default: the latest run; with
    /// no runs, the warehouse as of the day after its last order line.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// The churn model to show. Default: the run's churn-train model, else
    /// <warehouse>/models/churn.json.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// The run's point in time (YYYY-MM-DD): stages after ingest see order lines and contacts
    /// before it only. Default: the day after the last order line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Run only this stage; `STAGE+` also runs everything downstream of it. Repeatable.
    #[arg(long, value_name = "STAGE[+]")]
    pub select: Vec<String>,
    /// Ingest stages rebuild the warehouse from their files alone.
    #[arg(long)]
    pub full_refresh: bool,
    /// Continue run RUN_ID from the stages that did not succeed (same as-of date and
    /// selection; the pipeline file must be unchanged).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["as_of", "select", "full_refresh"])]
    pub resume: Option<String>,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder to write the extracts to (created if missing).
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Seed: the same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of customers.
    #[arg(long, default_value_t = 2_000)]
    pub customers: u64,
    /// Number of order lines (before planted defects and duplicates).
    #[arg(long, default_value_t = 50_000)]
    pub order_lines: u64,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The source contract (TOML).
    #[arg(long)]
    pub contract: PathBuf,
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
    /// Fail (exit 1, warehouse unchanged) when a file's share of rejected rows exceeds this,
    /// between 0 and 1. Default: no limit.
    #[arg(long)]
    pub max_reject_rate: Option<f64>,
    #[command(flatten)]
    pub format: FormatArgs,
}

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
pub struct FeaturesArgs {
    /// Use only order lines before this date (YYYY-MM-DD). Default: the day after the last
    /// order line.
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Rebuild the feature mart as of this date first (YYYY-MM-DD). Default: use the
    /// customer_features table (built as of the day after the last order line if missing).
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    /// The segmentation method.
    #[arg(long, value_enum, default_value_t = segment::Method::Kmeans)]
    pub method: segment::Method,
    /// Clusters: a number, `auto` (the best sampled silhouette over 2..=10) or auto:MIN-MAX.
    /// Default: auto for kmeans and gmm.
    #[arg(long, value_name = "N|auto")]
    pub k: Option<segment::K>,
    /// Columns to cluster (comma-separated). Default: recency_days, frequency, monetary,
    /// avg_order_value, distinct_products; with --input, every numeric column.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub features: Option<Vec<String>>,
    /// Scaling before clustering: log-standard (signed log of skewed columns, then
    /// standardise), standard, or none.
    #[arg(long, value_enum, default_value_t = segment::Scale::LogStandard)]
    pub scale: segment::Scale,
    /// k-means++ runs; the run with the lowest inertia is kept.
    #[arg(long, default_value_t = 10)]
    pub n_init: usize,
    /// Seed for initialisation and the silhouette sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// DBSCAN: neighbourhood radius in the scaled space.
    #[arg(long, default_value_t = 0.5)]
    pub eps: f64,
    /// DBSCAN: neighbours that make a core point.
    #[arg(long, default_value_t = 10)]
    pub min_points: usize,
    /// k-means: fit the scaling, k and centroids on a seeded sample of N rows, then label
    /// every row with its nearest centroid. Default: fit on every row.
    #[arg(long, value_name = "N")]
    pub train_sample: Option<usize>,
    /// Cluster this Parquet or CSV file instead of the warehouse's customers.
    #[arg(long, requires = "out")]
    pub input: Option<PathBuf>,
    /// With --input: write one `segment` label per input row, in input order, here
    /// (Parquet, CSV, JSON or NDJSON by extension).
    #[arg(long, requires = "input")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Subcommand)]
pub enum ChurnAction {
    /// Train a churn tree: on the warehouse (labels at a cutoff, trained one horizon earlier
    /// and measured at the cutoff), or on a customer-level table with --input (measured on a
    /// seeded stratified 20% hold-out or --test FILE); --cv K adds stratified K-fold
    /// cross-validation. Writes the model file and prints the evaluation.
    Train(ChurnTrainArgs),
    /// Score with a model: the warehouse's active customers into table churn_scores, or with
    /// --input/--out a table, one row per input row in input order. Rows carry the id,
    /// churn_probability, risk_band and reasons.
    Score(ChurnScoreArgs),
    /// Measure a model on labelled data: a warehouse model at --cutoff, a file model on
    /// --input; by default on the model's own held-out data. Prints the evaluation; --out
    /// stores it as JSON.
    Evaluate(ChurnEvaluateArgs),
}

#[derive(Debug, Args)]
pub struct ChurnTrainArgs {
    /// Warehouse: the cutoff whose labels measure the model (YYYY-MM-DD). Default: the
    /// latest whose whole horizon lies inside the data.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub cutoff: Option<String>,
    /// Warehouse: a customer counts when they bought in this many days before the cutoff.
    #[arg(long, default_value_t = churn::warehouse::DEFAULT_LOOKBACK_DAYS)]
    pub lookback_days: i64,
    /// Warehouse: a customer churns when they buy nothing in this many days from the cutoff.
    #[arg(long, default_value_t = churn::warehouse::DEFAULT_HORIZON_DAYS)]
    pub horizon_days: i64,
    /// Train on this customer-level table (Parquet or CSV) instead of the warehouse.
    #[arg(long, requires_all = ["label", "id"])]
    pub input: Option<PathBuf>,
    /// With --input: the label column (Yes/No, true/false or 1/0).
    #[arg(long, requires = "input")]
    pub label: Option<String>,
    /// With --input: the id column (not a feature; carried into scores).
    #[arg(long, requires = "input")]
    pub id: Option<String>,
    /// Deepest split level.
    #[arg(long, default_value_t = 6)]
    pub max_depth: usize,
    /// Fewest rows in a leaf.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    /// Fewest rows in a node to split it.
    #[arg(long, default_value_t = 2)]
    pub min_samples_split: usize,
    /// Smallest weighted impurity decrease a split must bring (scikit-learn's definition).
    #[arg(long, default_value_t = 0.0)]
    pub min_impurity_decrease: f64,
    /// Impurity measure.
    #[arg(long, value_enum, default_value_t = crate::churn::tree::Criterion::Gini)]
    pub criterion: crate::churn::tree::Criterion,
    /// Class weights: balanced weighs each class the same in total.
    #[arg(long, value_enum, default_value_t = crate::churn::tree::ClassWeight::None)]
    pub class_weight: crate::churn::tree::ClassWeight,
    /// Leaf probabilities: Laplace-corrected (a small pure leaf is not certain; better
    /// rankings) or the raw class shares (scikit-learn's).
    #[arg(long, value_enum, default_value_t = crate::churn::tree::LeafProbability::Laplace)]
    pub leaf_probability: crate::churn::tree::LeafProbability,
    /// Stratified cross-validation folds (2 or more).
    #[arg(long, value_name = "K")]
    pub cv: Option<usize>,
    /// Seed of the hold-out split, the folds and the training sample.
    #[arg(long, default_value_t = churn::DEFAULT_SEED)]
    pub seed: u64,
    /// Warehouse: train on a seeded stratified sample of about N of the labelled customers
    /// (the churn rate kept); the model is still measured on every customer at the cutoff.
    #[arg(long, value_name = "N", conflicts_with = "input")]
    pub train_sample: Option<usize>,
    /// With --input: measure the model on this labelled table (same columns) instead of a
    /// 20% hold-out; the model then trains on every input row.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub test: Option<PathBuf>,
    /// The model file to write (JSON).
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Debug, Args)]
pub struct ChurnScoreArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Warehouse: score the customers active as of this date (YYYY-MM-DD). Default: the day
    /// after the last order line.
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub as_of: Option<String>,
    /// Score this table instead (it must have the model's columns).
    #[arg(long, requires = "out")]
    pub input: Option<PathBuf>,
    /// With --input: where to write the scores (Parquet, CSV, JSON or NDJSON by extension).
    #[arg(long, requires = "input")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChurnEvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Warehouse model: the cutoff of the labels (YYYY-MM-DD); its whole horizon must lie
    /// inside the data. Default: the model's held-out cutoff (one horizon after training).
    #[arg(long, value_name = "DATE", conflicts_with = "input")]
    pub cutoff: Option<String>,
    /// File model: a labelled table with the model's columns and label. Default: the
    /// model's --test file, or the hold-out of its training file re-drawn with its seed.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Also write the evaluation here, as JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Export one segment's customers, filtered by consent and a suppression list; a summary
    /// goes to stderr.
    Segment(ExportSegmentArgs),
    /// Export customers from table churn_scores, riskiest first, filtered by risk band,
    /// probability, consent and a suppression list; a summary goes to stderr.
    Churn(ExportChurnArgs),
    /// Export table recommendations (from `ecrm basket recommend`) by customer and rank,
    /// filtered by consent and a suppression list; a summary goes to stderr.
    Recommendations(ExportRecommendationsArgs),
}

#[derive(Debug, Args)]
pub struct ExportRecommendationsArgs {
    /// Only recommendations up to this rank.
    #[arg(long, value_name = "N")]
    pub max_rank: Option<u32>,
    /// Columns, in order (comma-separated). Default: customer_id, email, name, rank,
    /// product_id (or category), score, rule.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub columns: Option<Vec<String>>,
    #[command(flatten)]
    pub to: ExportTo,
}

#[derive(Debug, Args)]
pub struct ExportSegmentArgs {
    /// The segment: a segment_name (case-insensitive) or segment_id from table segments.
    pub segment: String,
    /// Columns, in order (comma-separated). Default: customer_id, email, name, country,
    /// segment_id, segment_name.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub columns: Option<Vec<String>>,
    #[command(flatten)]
    pub to: ExportTo,
}

#[derive(Debug, Args)]
pub struct ExportChurnArgs {
    /// Only these risk bands (repeatable or comma-separated; high ≥ 0.6, medium ≥ 0.3, low
    /// below). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub risk: Vec<churn::RiskBand>,
    /// Only customers with at least this churn probability (0 to 1).
    #[arg(long, value_name = "P")]
    pub min_probability: Option<f64>,
    /// At most this many customers: the riskiest who pass consent and suppression.
    #[arg(long, value_name = "N")]
    pub top: Option<u64>,
    /// Columns, in order (comma-separated). Default: customer_id, email, name, country,
    /// churn_probability, risk_band, reasons.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub columns: Option<Vec<String>>,
    #[command(flatten)]
    pub to: ExportTo,
}

/// Where an export goes and who may be in it.
#[derive(Debug, Args)]
pub struct ExportTo {
    /// File format. Default: from the --out extension (csv when it says nothing).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Only customers who opted in to this channel.
    #[arg(long, value_enum)]
    pub require_consent: Option<export::Channel>,
    /// Never export anyone listed here: one customer id or e-mail per line, no header.
    #[arg(long, value_name = "FILE")]
    pub suppress: Option<PathBuf>,
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if cli.global.engine == Engine::Ballista {
        let url = cli
            .global
            .scheduler
            .as_deref()
            .ok_or_else(|| Error::Usage {
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
    }
    let wh_root = cli.global.warehouse_or(None);
    let quiet = cli.global.quiet;
    let engine = cli.global.engine();
    match cli.command {
        Command::Synth(a) => {
            let params = SynthParams {
                seed: a.seed,
                customers: a.customers,
                order_lines: a.order_lines,
            }
            .check()?;
            let report = synth::generate(&params, &a.out_dir)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "wrote {} customers, {} products, {} order lines, {} campaign contacts to {}",
                report.customers,
                report.products,
                report.order_lines,
                report.campaign_contacts,
                a.out_dir.display()
            )
            .map_err(|e| Error::io("<stdout>", e))?;
            Ok(())
        }
        Command::Ingest(a) => {
            // Checked before loading: a load must not succeed and then exit 2 on its summary.
            a.format.check_printable("ingest")?;
            if let Some(r) = a.max_reject_rate
                && !(0.0..=1.0).contains(&r)
            {
                return Err(Error::Usage {
                    arg: "--max-reject-rate".into(),
                    message: format!("{r} is not between 0 and 1"),
                });
            }
            let contract = Contract::load(&a.contract)?;
            let inputs = a
                .input
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((name, path)) if !name.is_empty() && !name.contains('/') => {
                        (Some(name.to_string()), PathBuf::from(path))
                    }
                    _ => (None, PathBuf::from(s)),
                })
                .collect();
            let opts = IngestOptions {
                inputs,
                full_refresh: a.full_refresh,
                replace: a.replace,
                max_reject_rate: a.max_reject_rate,
                chunk_rows: None,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let summary = ingest::ingest(&wh_root, &contract, &opts)?;
            let format = Format::resolve(a.format.format);
            let mut out = std::io::stdout().lock();
            if format == Format::Json {
                let text = serde_json::to_string_pretty(&summary)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                writeln!(out, "{text}").map_err(|e| Error::io("<stdout>", e))?;
                return Ok(());
            }
            let (schema, batch) = load_summary_batch(&summary)?;
            output::write_batches(&mut out, format, &schema, &[batch], None)?;
            if format == Format::Table {
                match summary.load_id {
                    Some(id) => writeln!(out, "load {id} committed to {}", wh_root.display()),
                    None => writeln!(out, "nothing new to load: every file was loaded before"),
                }
                .map_err(|e| Error::io("<stdout>", e))?;
            }
            Ok(())
        }
        Command::Tables(f) => {
            let wh = Warehouse::open(&wh_root)?;
            if wh.table_names().is_empty() {
                return Err(Error::Warehouse {
                    dir: wh_root,
                    message: "no tables: run `ecrm ingest` first".into(),
                });
            }
            let names: Vec<String> = wh.table_names();
            let rows: Vec<u64> = names
                .iter()
                .map(|n| wh.snapshot().tables[n].rows())
                .collect();
            let files: Vec<u64> = names
                .iter()
                .map(|n| wh.snapshot().tables[n].files.len() as u64)
                .collect();
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
            print(&f, &schema, &[batch])
        }
        Command::Describe { table, format } => {
            let wh = Warehouse::open(&wh_root)?;
            wh.table(&table)?;
            let rt = runtime(engine.threads)?;
            let schema = rt.block_on(async {
                let ctx = olap::session(&wh, &engine).await?;
                let df = ctx.table(table.as_str()).await?;
                Ok::<_, Error>(df.schema().as_arrow().clone())
            })?;
            let out_schema = Arc::new(Schema::new(vec![
                Field::new("column", DataType::Utf8, false),
                Field::new("type", DataType::Utf8, false),
                Field::new("nullable", DataType::Boolean, false),
            ]));
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.data_type().to_string())
                        .collect::<Vec<_>>(),
                )),
                Arc::new(BooleanArray::from(
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.is_nullable())
                        .collect::<Vec<_>>(),
                )),
            ];
            let batch = RecordBatch::try_new(out_schema.clone(), cols)?;
            print(&format, &out_schema, &[batch])
        }
        Command::Loads {
            action: Some(LoadsAction::Rollback { load_id }),
            format: _,
        } => {
            let r = ingest::rollback(&wh_root, load_id)?;
            let removed: Vec<String> = r.removed.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "rolled back load {}: removed rows: {}",
                r.load_id,
                removed.join(", ")
            )
            .map_err(|e| Error::io("<stdout>", e))
        }
        Command::Loads {
            action: None,
            format: f,
        } => {
            let wh = Warehouse::open(&wh_root)?;
            wh.table("loads")?;
            let rt = runtime(engine.threads)?;
            let (schema, batches) = rt.block_on(async {
                let ctx = olap::session(&wh, &engine).await?;
                olap::sql(
                    &ctx,
                    "SELECT load_id, source, file_name, rows_read, rows_loaded, rows_rejected, duplicates, \
                     sha256, started_at, finished_at FROM loads ORDER BY load_id, source, file_name",
                )
                .await
            })?;
            print(&f, &schema, &batches)
        }
        Command::Query(a) => sql::query(&a, &wh_root, &engine),
        Command::Cube(a) => sql::cube(&a, &wh_root, &engine),
        Command::Features(a) => {
            a.format.check_printable("features")?;
            let as_of = a
                .as_of
                .as_deref()
                .map(|d| features::parse_date("--as-of", d))
                .transpose()?;
            let mart = features::build(&wh_root, as_of, &engine)?;
            let schema = Arc::new(Schema::new(vec![
                Field::new("table", DataType::Utf8, false),
                Field::new("as_of", DataType::Utf8, false),
                Field::new("customers", DataType::UInt64, false),
                Field::new("returns_only_customers_left_out", DataType::UInt64, false),
                Field::new("guest_lines_left_out", DataType::UInt64, false),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec![features::TABLE])),
                    Arc::new(StringArray::from(vec![mart.as_of.to_string()])),
                    Arc::new(UInt64Array::from(vec![mart.customers])),
                    Arc::new(UInt64Array::from(vec![mart.returns_only])),
                    Arc::new(UInt64Array::from(vec![mart.guest_lines])),
                ],
            )?;
            print(&a.format, &schema, &[batch])
        }
        Command::Segment(a) => segment_command(a, &wh_root, quiet, &engine),
        Command::Export { what } => {
            let (selection, columns, to) = match what {
                ExportWhat::Segment(a) => (export::Selection::Segment(a.segment), a.columns, a.to),
                ExportWhat::Churn(a) => {
                    if let Some(p) = a.min_probability
                        && !(0.0..=1.0).contains(&p)
                    {
                        return Err(Error::Usage {
                            arg: "--min-probability".into(),
                            message: format!("{p} is not a probability; 0 to 1"),
                        });
                    }
                    let selection = export::Selection::Churn {
                        bands: a.risk,
                        min_probability: a.min_probability,
                        top: a.top,
                    };
                    (selection, a.columns, a.to)
                }
                ExportWhat::Recommendations(a) => (
                    export::Selection::Recommendations {
                        max_rank: a.max_rank,
                    },
                    a.columns,
                    a.to,
                ),
            };
            let params = export::ExportParams {
                selection,
                format: to.format.unwrap_or_else(|| Format::for_file(&to.out)),
                out: to.out,
                require_consent: to.require_consent,
                suppress: to.suppress,
                columns,
            };
            if params.format == Format::Table {
                return Err(Error::Usage {
                    arg: "--format".into(),
                    message: "an export is csv, parquet, json or ndjson".into(),
                });
            }
            let s = export::export(&wh_root, &params, &engine)?;
            let consent = match params.require_consent {
                Some(export::Channel::Email) => "no e-mail consent",
                Some(export::Channel::Phone) => "no phone consent",
                None => "no consent (not required)",
            };
            let (noun, top) = match &params.selection {
                export::Selection::Segment(_) => ("customers in the segment", String::new()),
                export::Selection::Churn { .. } => (
                    "customers selected",
                    format!(", {} beyond --top", s.beyond_top),
                ),
                export::Selection::Recommendations { .. } => ("rows selected", String::new()),
            };
            eprintln!(
                "{}: {} {noun}, {} dropped for {consent}, {} dropped as suppressed{top}, \
                 {} written to {}",
                s.selection,
                s.selected,
                s.no_consent,
                s.suppressed,
                s.written,
                params.out.display()
            );
            Ok(())
        }
        Command::Churn {
            action: ChurnAction::Train(a),
        } => churn_train(a, &wh_root, quiet, &engine),
        Command::Churn {
            action: ChurnAction::Score(a),
        } => {
            let as_of = a
                .as_of
                .as_deref()
                .map(|d| features::parse_date("--as-of", d))
                .transpose()?;
            let model = churn::ModelFile::read(&a.model)?;
            let (batch, notes, target) = match (&a.input, &a.out) {
                (Some(input), Some(out)) => {
                    let (schema, batch, notes) = churn::score_file(&model, input, &engine)?;
                    output::write_file(
                        out,
                        Format::for_file(out),
                        &schema,
                        std::slice::from_ref(&batch),
                    )?;
                    (batch, notes, out.display().to_string())
                }
                _ => {
                    let (as_of, batch, notes) =
                        churn::warehouse::score(&wh_root, &model, as_of, &engine)?;
                    let target = format!("table {} as of {as_of}", churn::warehouse::SCORES_TABLE);
                    (batch, notes, target)
                }
            };
            for n in &notes {
                tracing::warn!("{n}");
            }
            let bands = batch.column(2).as_any().downcast_ref::<StringArray>();
            let count =
                |band: &str| bands.map_or(0, |b| b.iter().filter(|v| *v == Some(band)).count());
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "scored {} rows ({} high, {} medium, {} low risk) to {target}",
                batch.num_rows(),
                count("high"),
                count("medium"),
                count("low")
            )
            .map_err(|e| Error::io("<stdout>", e))
        }
        Command::Churn {
            action: ChurnAction::Evaluate(a),
        } => {
            let cutoff = a
                .cutoff
                .as_deref()
                .map(|d| features::parse_date("--cutoff", d))
                .transpose()?;
            let model = churn::ModelFile::read(&a.model)?;
            if model.source.cutoff.is_none() && cutoff.is_some() {
                return Err(Error::Usage {
                    arg: "--cutoff".into(),
                    message: "this model was trained on a file, which has no cutoff; \
                              evaluate it on a labelled file with --input"
                        .into(),
                });
            }
            let e = if model.source.cutoff.is_some() && a.input.is_none() {
                churn::warehouse::evaluate(&wh_root, &model, cutoff, &engine)?
            } else {
                churn::evaluate_file(&model, a.input.as_deref(), &engine)?
            };
            for n in &e.notes {
                tracing::warn!("{n}");
            }
            if let Some(path) = &a.out {
                let json = serde_json::json!({
                    "model": a.model.display().to_string(),
                    "model_training_data_sha256": model.source.training_data_sha256,
                    "evaluation": e,
                    "feature_importance": model.feature_importance,
                    "rules": model.rules,
                });
                write_json(path, &json)?;
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "model {} measured on {}", a.model.display(), e.data)
                .map_err(|e| Error::io("<stdout>", e))?;
            print_evaluation(&mut out, "measured on", &e.metrics, &model, quiet)
        }
        Command::Basket { action } => basket::run(action, &wh_root, &engine),
        Command::Sequence(a) => basket::run_sequence(a, &wh_root, &engine),
        Command::Check { file } => {
            let p = pipeline::Pipeline::load(&file)?;
            let mut out = std::io::stdout().lock();
            pipeline_plan(&mut out, &p).map_err(|e| Error::io("<stdout>", e))
        }
        Command::Run(a) => run_pipeline(a, &cli.global, quiet, &engine),
        Command::Runs { last, format } => runs_table(&wh_root, last, &format),
        Command::Report(a) => {
            let run = match &a.run {
                Some(id) => Some(pipeline::manifest::Manifest::read(&wh_root, id)?),
                None => pipeline::manifest::Manifest::list(&wh_root, 1)?.pop(),
            };
            let r = crate::report::write(&crate::report::ReportParams {
                warehouse: &wh_root,
                out_dir: &a.out_dir,
                run: run.as_ref(),
                model: a.model,
                engine: &engine,
            })?;
            for m in &r.missing {
                tracing::warn!("left out: {m}");
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", r.path.display()).map_err(|e| Error::io("<stdout>", e))
        }
        #[cfg(feature = "distributed")]
        Command::Cluster { role } => match role {
            ClusterRole::Scheduler {
                bind,
                executor_timeout_seconds,
            } => olap::cluster::run_scheduler(&olap::cluster::SchedulerParams {
                bind,
                executor_timeout_seconds,
            }),
            ClusterRole::Executor {
                bind_host,
                port,
                grpc_port,
                vcores,
                memory_pool_size,
                work_dir,
                heartbeat_interval_seconds,
            } => {
                let scheduler = cli.global.scheduler.clone().ok_or_else(|| Error::Usage {
                    arg: "--scheduler".into(),
                    message: "an executor needs its scheduler: --scheduler df://HOST:PORT".into(),
                })?;
                olap::cluster::run_executor(&olap::cluster::ExecutorParams {
                    scheduler,
                    bind_host,
                    port,
                    grpc_port,
                    vcores,
                    memory_pool_size: memory_pool_size.map(|b| b.as_u64()),
                    work_dir,
                    heartbeat_interval_seconds,
                })
            }
        },
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ecrm", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// `ecrm churn train`: parameters checked first, then train, write the model, print the
/// evaluation.
fn churn_train(
    a: ChurnTrainArgs,
    wh_root: &std::path::Path,
    quiet: bool,
    engine: &olap::EngineOptions,
) -> Result<()> {
    use crate::churn::tree::{TreeParams, ValidTreeParams};
    use linfa::ParamGuard;
    let params = TreeParams(ValidTreeParams {
        max_depth: a.max_depth,
        min_samples_split: a.min_samples_split,
        min_samples_leaf: a.min_samples_leaf,
        min_impurity_decrease: a.min_impurity_decrease,
        criterion: a.criterion,
        class_weight: a.class_weight,
        max_bins: 255,
        leaf_probability: a.leaf_probability,
    })
    .check()?;
    churn::check_cv(a.cv)?;
    churn::check_train_sample(a.train_sample)?;
    let window = churn::warehouse::Window {
        lookback_days: a.lookback_days,
        horizon_days: a.horizon_days,
    };
    window.check()?;
    let cutoff = a
        .cutoff
        .as_deref()
        .map(|d| features::parse_date("--cutoff", d))
        .transpose()?;
    let (model, notes) = match (&a.input, &a.label, &a.id) {
        (Some(input), Some(label), Some(id)) => {
            let t = churn::TrainFile {
                input,
                label,
                id,
                params,
                cv: a.cv,
                seed: a.seed,
                test: a.test.as_deref(),
            };
            churn::train_file(&t, engine)?
        }
        _ => {
            let t = churn::warehouse::TrainWarehouse {
                cutoff,
                window,
                params,
                cv: a.cv,
                seed: a.seed,
                train_sample: a.train_sample,
            };
            churn::warehouse::train(wh_root, &t, engine)?
        }
    };
    for n in &notes {
        tracing::warn!("{n}");
    }
    write_json(&a.model, &model)?;
    let mut out = std::io::stdout().lock();
    let sample = match model.source.sampled_from {
        Some(n) => format!(" sampled from {n}"),
        None => String::new(),
    };
    writeln!(
        out,
        "model written to {} ({} rows{sample}, {} features, {} leaves, depth {})",
        a.model.display(),
        model.source.rows,
        model.feature_names.len(),
        model.tree.leaves(),
        model.tree.depth()
    )
    .map_err(|e| Error::io("<stdout>", e))?;
    print_evaluation(&mut out, "held out", &model.metrics, &model, quiet)
}

/// Writes a value as pretty JSON, atomically.
pub(crate) fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    output::write_atomic(path, |mut f| {
        f.write_all(json.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .map_err(|e| Error::io(path, e))
    })
}

/// Prints a model's metrics (row count after `rows`, "held out" or "measured on"; AUCs,
/// confusion at the threshold, cross-validation, gains by decile) and, unless quiet, its top
/// features and rules.
fn print_evaluation(
    out: &mut impl Write,
    rows: &str,
    m: &churn::Metrics,
    model: &churn::ModelFile,
    quiet: bool,
) -> Result<()> {
    let io = |e| Error::io("<stdout>", e);
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let c = &m.confusion;
    writeln!(
        out,
        "{rows} {} rows (churn rate {:.3}): ROC AUC {}  PR AUC {}  KS {:.4}",
        m.held_out_rows,
        m.base_rate,
        opt(m.roc_auc),
        opt(m.pr_auc),
        m.ks
    )
    .map_err(io)?;
    writeln!(
        out,
        "at threshold {}: accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  (TP {} FP {} TN {} FN {})",
        c.threshold, c.accuracy, c.precision, c.recall, c.f1,
        c.true_positives, c.false_positives, c.true_negatives, c.false_negatives
    )
    .map_err(io)?;
    if let (Some(k), Some(mean), Some(std)) = (m.cv_folds, m.cv_roc_auc_mean, m.cv_roc_auc_std) {
        writeln!(
            out,
            "{k}-fold stratified cross-validation: ROC AUC {mean:.4} ± {std:.4}"
        )
        .map_err(io)?;
    }
    writeln!(
        out,
        "decile  rows  churners  cumulative gain  lift  cumulative lift"
    )
    .map_err(io)?;
    for d in &m.gains {
        writeln!(
            out,
            "{:>6}  {:>4}  {:>8}  {:>15.3}  {:>4.2}  {:>15.2}",
            d.decile, d.rows, d.positives, d.cumulative_gain, d.lift, d.cumulative_lift
        )
        .map_err(io)?;
    }
    if !quiet {
        writeln!(out, "feature importance:").map_err(io)?;
        for (f, v) in model.feature_importance.iter().take(10) {
            writeln!(out, "  {v:.3}  {f}").map_err(io)?;
        }
        writeln!(out, "rules (highest churn first):").map_err(io)?;
        for r in model.rules.iter().take(10) {
            writeln!(out, "  {r}").map_err(io)?;
        }
    }
    Ok(())
}

/// `ecrm segment`: over the warehouse, or over a file with --input.
fn segment_command(
    a: SegmentArgs,
    wh_root: &std::path::Path,
    quiet: bool,
    engine: &olap::EngineOptions,
) -> Result<()> {
    if a.input.is_none() {
        a.format.check_printable("segment")?;
    }
    let params = segment::SegmentParams {
        method: a.method,
        k: a.k,
        features: a.features,
        scale: a.scale,
        n_init: a.n_init,
        seed: a.seed,
        eps: a.eps,
        min_points: a.min_points,
        train_sample: a.train_sample,
    }
    .check()?;
    let as_of = a
        .as_of
        .as_deref()
        .map(|d| features::parse_date("--as-of", d))
        .transpose()?;
    let report_k = |fit: &segment::Fit| {
        if quiet || fit.k_scores.is_empty() {
            return;
        }
        eprintln!("k  inertia  silhouette (sampled)");
        for s in &fit.k_scores {
            eprintln!("{:<2} {:.6e}  {:.4}", s.k, s.inertia, s.silhouette);
        }
        if let Some(why) = &fit.k_reason {
            eprintln!("{why}");
        }
    };
    let mut out = std::io::stdout().lock();
    let io = |e| Error::io("<stdout>", e);
    if let (Some(input), Some(file)) = (&a.input, &a.out) {
        let run = segment::cluster_file(input, file, &params, engine)?;
        report_k(&run.fit);
        let c = &run.fit.clustering;
        let logged: Vec<&str> = run
            .features
            .iter()
            .zip(&run.fit.scaler.logged)
            .filter(|(_, l)| **l)
            .map(|(f, _)| f.as_str())
            .collect();
        if !logged.is_empty() {
            tracing::info!("log-transformed (skewed): {}", logged.join(", "));
        }
        let fitted = match run.fit.trained_on {
            Some(n) => format!(" (fitted on a sample of {n})"),
            None => String::new(),
        };
        write!(
            out,
            "{} rows{fitted}, {} features, {} clusters written to {}",
            run.rows,
            run.features.len(),
            c.k,
            file.display()
        )
        .map_err(io)?;
        if let Some(inertia) = c.inertia {
            let space = if a.scale == segment::Scale::None {
                "in the original units (= the scaled space, --scale none)"
            } else {
                "in the scaled space"
            };
            write!(out, "; inertia {inertia:.6e} {space}").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
        return Ok(());
    }
    let run = segment::segment_warehouse(wh_root, as_of, &params, engine)?;
    if let Some(fit) = &run.fit {
        report_k(fit);
        if let Some(inertia) = fit.clustering.inertia
            && !quiet
        {
            let sample = match fit.trained_on {
                Some(n) => format!(
                    " (fitted on a sample of {n} of {} customers)",
                    fit.clustering.labels.len()
                ),
                None => String::new(),
            };
            eprintln!(
                "{} on {}: k={}, inertia {inertia:.6e} in the scaled space{sample}",
                run.method.name(),
                run.features.join(", "),
                fit.clustering.k
            );
        }
    }
    drop(out);
    let (schema, batches) = &run.profiles;
    print(&a.format, schema, batches)
}

fn print(f: &FormatArgs, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    output::write_batches(
        &mut out,
        Format::resolve(f.format),
        schema,
        batches,
        Some(f.max_rows),
    )
}

/// The async runtime for DataFusion, with `threads` workers (default: every core).
pub fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
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
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            f.iter().map(|x| x.source.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            f.iter().map(|x| x.file.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            f.iter().map(|x| x.status.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            f.iter().map(|x| x.rows_read).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            f.iter().map(|x| x.rows_loaded).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            f.iter().map(|x| x.rows_rejected).collect::<Vec<_>>(),
        )),
        Arc::new(UInt64Array::from(
            f.iter().map(|x| x.duplicates).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            f.iter()
                .map(|x| {
                    x.reasons
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>(),
        )),
    ];
    Ok((schema.clone(), RecordBatch::try_new(schema, cols)?))
}

/// `ecrm check`'s report: the stages in run order with what each reads and writes.
fn pipeline_plan(out: &mut impl Write, p: &pipeline::Pipeline) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: pipeline {:?} is valid: {} stages",
        p.file.display(),
        p.name,
        p.stages.len()
    )?;
    for (i, s) in p.stages.iter().enumerate() {
        let reads = if s.inputs.is_empty() {
            "files".to_string()
        } else {
            s.inputs.join(", ")
        };
        writeln!(out, "{:>3}. {} ({})", i + 1, s.name, s.kind)?;
        writeln!(out, "       reads  {reads}")?;
        writeln!(out, "       writes {}", s.outputs.join(", "))?;
        let checks: usize = s.tests.iter().map(|t| t.checks.len()).sum();
        if checks > 0 {
            writeln!(out, "       tests  {checks} checks")?;
        }
    }
    Ok(())
}

/// `ecrm run`.
fn run_pipeline(
    a: RunArgs,
    global: &GlobalArgs,
    quiet: bool,
    engine: &olap::EngineOptions,
) -> Result<()> {
    let p = pipeline::Pipeline::load(&a.file)?;
    let as_of = a
        .as_of
        .as_deref()
        .map(|d| features::parse_date("--as-of", d))
        .transpose()?;
    let opts = pipeline::run::RunOptions {
        warehouse: global.warehouse_or(p.warehouse.as_deref()),
        as_of,
        select: a.select,
        full_refresh: a.full_refresh,
        resume: a.resume,
        engine: engine.clone(),
        progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let outcome = pipeline::run::run(&p, &opts)?;
    let m = &outcome.manifest;
    let mut out = std::io::stdout().lock();
    let io = |e| Error::io("<stdout>", e);
    if !quiet {
        for s in &m.stages {
            let secs = s.seconds.map_or(String::new(), |t| format!("{t:>8.2} s"));
            let mem = s
                .peak_rss_mib
                .map_or(String::new(), |m| format!("{m:>7.0} MiB"));
            writeln!(out, "{:<14} {:<24} {secs} {mem}", s.status, s.name).map_err(io)?;
        }
        for s in m.stages.iter().filter(|s| s.kind == "report") {
            if let Some(file) = s.metrics.get("file").and_then(|f| f.as_str()) {
                writeln!(out, "report {file}").map_err(io)?;
            }
        }
        writeln!(
            out,
            "run {} {} (as of {}); manifest {}",
            m.status,
            m.pipeline,
            m.as_of.as_deref().unwrap_or("-"),
            outcome.path.display()
        )
        .map_err(io)?;
    }
    // The last line on stdout is the run id, for schedulers.
    writeln!(out, "{}", m.run_id).map_err(io)?;
    drop(out);
    match outcome.exit_code() {
        0 => Ok(()),
        1 => Err(Error::QualityGate(format!(
            "run {}: data tests or gates failed (see {})",
            m.run_id,
            outcome.path.display()
        ))),
        _ => Err(Error::Pipeline {
            run_id: m.run_id.clone(),
            message: m
                .stages
                .iter()
                .filter(|s| s.status == "failed")
                .map(|s| {
                    format!(
                        "stage {} failed: {}",
                        s.name,
                        s.error.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// `ecrm runs`: one row per run, newest first.
fn runs_table(wh_root: &std::path::Path, last: usize, f: &FormatArgs) -> Result<()> {
    let runs = pipeline::manifest::Manifest::list(wh_root, last)?;
    let text = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("as_of", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("exit_code", DataType::Utf8, false),
        Field::new("stages", DataType::Utf8, false),
        Field::new("started_at", DataType::Utf8, false),
        Field::new("seconds", DataType::Utf8, false),
        Field::new("resumed_from", DataType::Utf8, false),
    ]));
    let seconds = |m: &pipeline::manifest::Manifest| {
        let start = chrono::DateTime::parse_from_rfc3339(&m.started_at).ok();
        let end = m
            .finished_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        match (start, end) {
            (Some(s), Some(e)) => format!("{:.1}", (e - s).num_milliseconds() as f64 / 1000.0),
            _ => String::new(),
        }
    };
    let stages = |m: &pipeline::manifest::Manifest| {
        let ok = m
            .stages
            .iter()
            .filter(|s| matches!(s.status.as_str(), "succeeded" | "reused"))
            .count();
        let ran = m
            .stages
            .iter()
            .filter(|s| s.status != "not_selected")
            .count();
        format!("{ok}/{ran} ok")
    };
    let cols = vec![
        text(runs.iter().map(|m| m.run_id.clone()).collect()),
        text(runs.iter().map(|m| m.pipeline.clone()).collect()),
        text(
            runs.iter()
                .map(|m| m.as_of.clone().unwrap_or_default())
                .collect(),
        ),
        text(runs.iter().map(|m| m.status.clone()).collect()),
        text(
            runs.iter()
                .map(|m| m.exit_code.map_or(String::new(), |c| c.to_string()))
                .collect(),
        ),
        text(runs.iter().map(stages).collect()),
        text(runs.iter().map(|m| m.started_at.clone()).collect()),
        text(runs.iter().map(seconds).collect()),
        text(
            runs.iter()
                .map(|m| m.resumed_from.clone().unwrap_or_default())
                .collect(),
        ),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    print(f, &schema, &[batch])
}
