//! # ecrm — an analytical e-CRM warehouse and data-mining toolkit
//!
//! One crate, one binary. Raw customer and order extracts become a Parquet star schema; SQL
//! and cube questions run over it with DataFusion; customers are profiled, segmented and
//! exported; churn is forecast with decision trees; baskets give rules and recommendations.
//!
//! ```text
//! raw extracts (CSV; one file, a folder of daily files, or a glob)
//!    │  ingest   scan (csv crate: encoding, record numbers, duplicates, ragged lines)
//!    │           → cleanse (polars: trim, types, rules → reason codes) → star-schema build
//!    ▼
//! warehouse/  tables/<name>/*.parquet (zstd), published atomically by one pointer file
//!    │          dim_customer · dim_product · dim_date · fact_sales · fact_campaign_contact
//!    │          rejects · loads
//!    │  olap     DataFusion session with every table registered by name;
//!    │           cube models (TOML) → GROUP BY ROLLUP / CUBE, pivots, top-N, period windows
//!    ▼
//! query and cube results (table, csv, json, ndjson, parquet)
//!
//! warehouse tables
//!    │  features  point-in-time customer feature mart (DataFusion SQL) → customer_features
//!    │  segment   RFM scores, k-means / DBSCAN / mixtures over the mart (Arrow → ndarray
//!    │            through features::bridge) → segments, segment_profiles
//!    │  churn     labels at a cutoff, CART trees, model files → churn_scores
//!    │  basket    invoices as baskets → FP-growth itemsets → rules → recommendations
//!    ▼
//! export segment | churn  consent and suppression applied → csv / parquet / json / ndjson
//! ```
//!
//! Modules: [`error`] (the one error type and exit codes), [`cli`] (clap commands and output
//! formats), [`ingest`] (contracts, scan, cleanse, build), [`warehouse`] (the table catalog and
//! atomic commits), [`olap`] (the DataFusion session, SQL, cube models), [`features`] (the
//! customer feature mart and the one Arrow→ndarray bridge), [`segment`] (RFM, clustering,
//! profiles), [`churn`] (decision trees, evaluation, scoring), [`basket`] (FP-growth, rules,
//! recommendations), [`sequence`] (PrefixSpan), [`export`] (segment and churn exports),
//! [`pipeline`] (pipeline files, runs, data tests, run manifests), [`report`] (the HTML
//! report), [`synth`] (the sample-data generator).

pub mod basket;
pub mod churn;
pub mod cli;
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
pub mod warehouse;

pub use error::{Error, Result};
