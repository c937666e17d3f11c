//! # ecrm — an analytical e-CRM warehouse and data-mining toolkit
//!
//! One crate, one binary. Raw customer and order extracts become a Parquet star schema; SQL
//! and cube questions run over it with DataFusion; customers are profiled, segmented and
//! exported; churn is forecast with decision trees; baskets give rules and recommendations.
//!
//! ```text
//! raw extracts (CSV, whitespace-separated, fixed-width, NDJSON, Parquet; one file, a folder
//!    │           of daily files, or a glob)
//!    │  ingest   scan (encoding, record numbers, duplicates, ragged lines)
//!    │           → cleanse (polars: trim, types, rules → reason codes)
//!    │           → compute (unit prices from line totals, costs, customer-day baskets)
//!    │           → star-schema build
//!    ▼
//! warehouse/  tables/<name>/*.parquet (zstd), published atomically by one pointer file
//!    │          dim_customer · dim_product · dim_campaign · dim_date · fact_sales
//!    │          fact_campaign_contact · fact_consent · fact_web_event · rejects · loads
//!    │  olap     DataFusion session with every table registered by name (or a Ballista
//!    │           cluster); cube models (TOML) → GROUP BY ROLLUP / CUBE, pivots, top-N,
//!    │           period windows
//!    ▼
//! query and cube results (table, csv, json, ndjson, parquet)
//!
//! warehouse tables
//!    │  features  point-in-time customer feature mart (DataFusion SQL) → customer_features
//!    │  segment   RFM scores, k-means / DBSCAN / mixtures over the mart (Arrow → ndarray
//!    │            through features::bridge) → segments, segment_profiles
//!    │  churn     labels at a cutoff, CART trees, model files → churn_scores
//!    │  basket    invoices as baskets → FP-growth itemsets → rules → recommendations
//!    │  sequence  customers' purchase sequences → PrefixSpan → sequence_patterns
//!    │  value     repeat-purchase summaries → BG/NBD / Pareto/NBD, Gamma-Gamma → customer_value;
//!    │            costs and contacts → customer_profit
//!    │  cohorts   first-purchase cohorts → cohort_retention (sBG projections)
//!    │  campaign  contacts against their control arm → campaign_results (intervals);
//!    │            uplift trees over contacts and the mart as of each campaign → uplift_scores
//!    │  web       click-stream → sessions, visitors stitched to customers → web_sessions,
//!    │            dim_visitor; funnels and paths
//!    ▼
//! export segment | churn | recommendations | value | uplift   consent and suppression applied
//! report                                     one self-contained HTML page
//! ```
//!
//! ## Layers, one way down
//!
//! ```text
//! main → cli → pipeline → export, report → campaign → segment, churn, basket, sequence,
//!      cohorts → value
//!      → features → web → olap → warehouse → param, error   ingest → warehouse   synth (alone)
//! ```
//!
//! Nothing imports upward and nothing below [`cli`] imports it: the library speaks parameter
//! keys (`max_depth`), which the CLI renders as flags (`--max-depth`) and a pipeline file as
//! `stages.NAME.max_depth`. The core is async; `main` (and the pipeline runner it calls)
//! owns the one Tokio runtime of the process ([`olap::runtime`]).
//!
//! ## Modules
//!
//! - [`error`]: the one error type, what each error names, and exit codes.
//! - [`param`]: what every stage's parameters share: enums that read the same from a flag
//!   and a pipeline file ([`choices!`]), exact fractions, dates in a sane range.
//! - [`warehouse`]: the catalog, commits and rollback; [`warehouse::files`] (the one durable
//!   atomic writer and the export/report file formats), [`warehouse::runs`] (run manifests),
//!   [`warehouse::tables`] (every table's name), model file paths.
//! - [`ingest`]: contracts (`contract/`: the types, and the checks in `check`), scanning,
//!   cleansing, computed order-line columns ([`ingest::compute`]) and the star build
//!   (`build/`: dimensions, facts, loads); load history and rollback.
//! - [`olap`]: the runtime and session (local or Ballista), SQL statements
//!   ([`olap::sqltext`]: the one SQL tokenizer and quoting), cube models (`cube/`: model,
//!   query, SQL).
//! - [`features`]: the customer feature mart, RFM scoring ([`features::rfm`]) and the one
//!   Arrow→ndarray bridge ([`features::bridge`]).
//! - [`segment`]: RFM segments, k-means and other clusterings, segment profiles.
//! - [`churn`]: labels, the CART tree, model files, evaluation, scoring, readable rules
//!   ([`churn::explain`]).
//! - [`basket`]: baskets, FP-growth, rules, recommendations.
//! - [`sequence`]: purchase sequences and PrefixSpan.
//! - [`value`]: customer value: BG/NBD, Pareto/NBD and Gamma-Gamma fits, scores and their
//!   evaluation (`clv`), customer profitability and the whale curve ([`value::profit`]).
//! - [`cohorts`]: the cohort retention triangle ([`cohorts::triangle`]); the
//!   shifted-beta-geometric model of a survivor curve ([`cohorts::sbg`]).
//! - [`campaign`]: campaign evaluation against control arms (intervals and tests in
//!   [`campaign::stats`], randomised tests in files in [`campaign::evaluate`], the
//!   warehouse's campaigns in [`campaign::results`]), uplift models ([`campaign::uplift`],
//!   their data in [`campaign::uplift_data`], scikit-uplift's metrics in [`campaign::qini`]).
//! - [`web`]: web activity: sessions and identity stitching ([`web::sessions`]), funnels
//!   ([`web::funnel`]), paths ([`web::paths`]).
//! - [`export`]: consent-aware customer exports.
//! - [`erase`]: the right to be forgotten: customers' personal data out of every table.
//! - [`report`]: the HTML report.
//! - [`pipeline`]: pipeline files (`parse`), the stage graph (`plan`), runs (`run`, one
//!   function per stage kind in `stages`), data tests.
//! - [`cli`]: one file per command family, each owning its clap `Args` and its `run`.
//! - [`synth`]: the sample-data generator (`plan`: the world; `write`: its files).

pub mod basket;
pub mod campaign;
pub mod churn;
pub mod cli;
pub mod cohorts;
pub mod erase;
pub mod error;
pub mod export;
pub mod features;
pub mod ingest;
pub mod olap;
pub mod param;
pub mod pipeline;
pub mod report;
pub mod segment;
pub mod sequence;
pub mod synth;
pub mod value;
pub mod warehouse;
pub mod web;

pub use error::{Error, Result};
