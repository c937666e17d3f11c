//! Customer segmentation: RFM segments, clustering with a chosen k, profiles and names.
//!
//! - Input table: `customer_features` ([`crate::features`]); rebuilt in the same commit when
//!   `--as-of` is given or the table is missing. Or, with `--input FILE`, any Parquet or CSV
//!   file ([`cluster_file`]).
//! - Output tables (replaced together, in one commit, by each run over the warehouse):
//!   `segments` (customer_id, method, segment_id, segment_name) and `segment_profiles` (one
//!   row per segment: size, share, revenue share, mean and median of each profile feature in
//!   original units: [`PROFILE_FEATURES`], and [`WEB_PROFILE_FEATURES`] when the mart has
//!   web columns).
//! - Parameters ([`SegmentParams`], checked into [`ValidSegmentParams`]): method (default
//!   k-means), k (default auto over 2..=10), features (default [`DEFAULT_FEATURES`]), scaling
//!   (default log-standard), k-means runs (default 10), seed (default 42), the training
//!   sample (default none: every row), what a NULL does (default: refused, naming the row;
//!   or imputed with the column's median and a 0/1 indicator column clustered beside it,
//!   said on stderr), and for DBSCAN the radius (default 0.5, in the scaled space) and core
//!   size (default 10).
//!
//! Training on a sample (`--train-sample N`, k-means only): the scaling, the choice of k and
//! the k-means runs see a seeded uniform sample of N rows; then one pass labels every row
//! with its nearest centroid, and segment ids, sizes, names, profiles and the inertia are
//! the whole population's. The fit then costs N rows instead of all (it is the part that
//! grows with k × runs × iterations); the assignment is one distance pass. The README's
//! "Mining stays on one node" says when to use it and what it changes.
//!
//! Segment ids: RFM segments are numbered by their place in
//! [`crate::features::rfm::SEGMENTS`]; clusters are numbered 1..=k from the largest
//! ([`cluster`]), DBSCAN noise is segment 0 ("outliers").
//!
//! Names of clusters come from their profile compared with the whole population (quartiles
//! of all customers): median net revenue at or above the 95th percentile is "top-value", at or
//! above the 75th "high-value", at or below the 25th "low-value", else "mid-value"; a median
//! frequency of 1 is "one-time", at or above the 75th percentile "frequent", else "repeat"; a
//! median recency of at least twice the population's median is "lapsed", of at most half of
//! it "recent". E.g. "recent top-value frequent", "lapsed mid-value repeat", "one-time
//! low-value". Two clusters with the same name get their id appended, so every name picks
//! exactly one segment.

pub mod cluster;
pub mod kmeans;

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

pub use cluster::Scale;
use cluster::{Clustering, KScore, Scaler};

use crate::error::{Error, Result};
use crate::features::{self, bridge};
use crate::olap::{self, EngineOptions};
use crate::warehouse::files::{self, FileFormat};
use crate::warehouse::{Warehouse, WriterLock, tables};

/// Features clustered when none are named: recency, frequency, net revenue, order value and
/// breadth of the basket. On synth data these recover the planted customer groups (adjusted
/// Rand index 0.88 with k = 4, where adding tenure lowers it to 0.47: tenure repeats recency
/// for one-time buyers and splits them in two).
pub const DEFAULT_FEATURES: [&str; 5] = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "distinct_products",
];

/// Mart columns summarised in `segment_profiles` (mean and median each).
pub const PROFILE_FEATURES: [&str; 9] = [
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "avg_order_value",
    "distinct_products",
    "distinct_categories",
    "return_rate",
    "mean_days_between_orders",
];

crate::choices! {
    /// Segmentation methods.
    pub enum Method {
        /// RFM quintile scores and the named segments (see `rfm`).
        Rfm = "rfm",
        /// k-means (ours, in linfa's shape: greedy k-means++ seeding, parallel Lloyd
        /// iterations).
        Kmeans = "kmeans",
        /// DBSCAN (linfa-clustering): density clusters plus outliers.
        Dbscan = "dbscan",
        /// Gaussian mixture (linfa-clustering), full covariances.
        Gmm = "gmm",
    }
}

/// The number of clusters: fixed, or chosen in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum K {
    Fixed(usize),
    Auto { min: usize, max: usize },
}

impl K {
    /// `--k auto` and the default of k-means and mixtures: every k in 2..=10.
    pub const AUTO: K = K::Auto { min: 2, max: 10 };
}

impl std::str::FromStr for K {
    type Err = String;
    /// `N`, `auto` (2..=10) or `auto:MIN-MAX`.
    fn from_str(s: &str) -> std::result::Result<K, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(K::AUTO);
        }
        if let Some(r) = s.strip_prefix("auto:") {
            let (a, b) = r
                .split_once('-')
                .ok_or_else(|| format!("{s:?}: expected auto:MIN-MAX"))?;
            let p = |t: &str| {
                t.parse::<usize>()
                    .map_err(|_| format!("{t:?} is not a whole number"))
            };
            return Ok(K::Auto {
                min: p(a)?,
                max: p(b)?,
            });
        }
        s.parse::<usize>()
            .map(K::Fixed)
            .map_err(|_| format!("{s:?}: expected a whole number, auto, or auto:MIN-MAX"))
    }
}

impl<'de> serde::Deserialize<'de> for K {
    /// A whole number, or text: `"auto"`, `"auto:MIN-MAX"` or a number.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<K, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = K;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of clusters or \"auto\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<K, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<K, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<K, E> {
                Err(E::custom(format!("{v} is not a number or \"auto\"")))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<K, E> {
                Err(E::custom(format!("{v} is not a number or \"auto\"")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<K, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Segmentation parameters: `ecrm segment`'s options and a pipeline `segment` stage's keys,
/// one type for both. [`Default`] is the one place a default is written; [`check`] turns
/// them into the [`ValidSegmentParams`] that the runs accept.
///
/// [`check`]: SegmentParams::check
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentParams {
    /// The segmentation method.
    #[arg(long, value_enum, default_value_t = SegmentParams::default().method)]
    pub method: Method,
    /// Clusters: a number, `auto` (the best sampled silhouette over 2..=10) or auto:MIN-MAX.
    /// Default: auto for kmeans and gmm (not used by rfm and dbscan).
    #[arg(long, value_name = "N|auto")]
    pub k: Option<K>,
    /// Columns to cluster (comma-separated). Default: recency_days, frequency, monetary,
    /// avg_order_value, distinct_products; with --input, every numeric column.
    #[arg(long, value_delimiter = ',', value_name = "A,B,C")]
    pub features: Option<Vec<String>>,
    /// Scaling before clustering: log-standard (signed log of skewed columns, then
    /// standardise), standard, or none.
    #[arg(long, value_enum, default_value_t = SegmentParams::default().scale)]
    pub scale: Scale,
    /// k-means++ runs; the run with the lowest inertia is kept.
    #[arg(long, default_value_t = SegmentParams::default().n_init)]
    pub n_init: usize,
    /// Seed for initialisation, the silhouette sample and the training sample.
    #[arg(long, default_value_t = SegmentParams::default().seed)]
    pub seed: u64,
    /// DBSCAN: neighbourhood radius in the scaled space.
    #[arg(long, default_value_t = SegmentParams::default().eps)]
    pub eps: f64,
    /// DBSCAN: neighbours that make a core point.
    #[arg(long, default_value_t = SegmentParams::default().min_points)]
    pub min_points: usize,
    /// k-means: fit the scaling, k and centroids on a seeded sample of N rows, then label
    /// every row with its nearest centroid. Default: fit on every row.
    #[arg(long, value_name = "N")]
    pub train_sample: Option<usize>,
    /// A NULL in a clustered column: refuse (an error naming the row), or impute (the
    /// column's median, and a 0/1 column NAME_missing clustered beside it; said on stderr).
    #[arg(long, value_enum, default_value_t = SegmentParams::default().missing)]
    pub missing: bridge::Missing,
}

impl Default for SegmentParams {
    /// k-means, k auto (2..=10), the [`DEFAULT_FEATURES`], log-standard scaling, 10 runs,
    /// seed 42; DBSCAN radius 0.5 and core size 10; no training sample; a NULL refused.
    fn default() -> Self {
        SegmentParams {
            method: Method::Kmeans,
            k: None,
            features: None,
            scale: Scale::LogStandard,
            n_init: 10,
            seed: 42,
            eps: 0.5,
            min_points: 10,
            train_sample: None,
            missing: bridge::Missing::Refuse,
        }
    }
}

/// Checked parameters: the only kind the segmentation runs accept.
#[derive(Debug, Clone)]
pub struct ValidSegmentParams(SegmentParams);

impl SegmentParams {
    /// Checks each parameter; the first failure names its key and what is allowed.
    pub fn check(self) -> Result<ValidSegmentParams> {
        match (&self.k, self.method) {
            (Some(_), Method::Rfm | Method::Dbscan) => {
                return Err(Error::param(
                    "k",
                    format!(
                        "--method {} does not take a number of clusters",
                        self.method.name()
                    ),
                ));
            }
            (Some(K::Fixed(k)), _) if !(2..=1000).contains(k) => {
                return Err(Error::param("k", format!("{k} is out of range; 2 to 1000")));
            }
            (Some(K::Auto { min, max }), _) if *min < 2 || max < min || *max > 100 => {
                return Err(Error::param(
                    "k",
                    format!("auto:{min}-{max}: need 2 <= MIN <= MAX <= 100"),
                ));
            }
            _ => {}
        }
        if self.method == Method::Rfm && self.features.is_some() {
            return Err(Error::param(
                "features",
                "--method rfm scores recency, frequency and monetary; it takes no features",
            ));
        }
        if let Some(f) = &self.features
            && f.is_empty()
        {
            return Err(Error::param("features", "name at least one column"));
        }
        if !(1..=1000).contains(&self.n_init) {
            return Err(Error::param(
                "n_init",
                format!("{} is out of range; 1 to 1000", self.n_init),
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::param(
                "eps",
                format!("{} must be a positive number", self.eps),
            ));
        }
        if self.min_points == 0 {
            return Err(Error::param("min_points", "must be at least 1"));
        }
        if let Some(n) = self.train_sample {
            if self.method != Method::Kmeans {
                return Err(Error::param(
                    "train_sample",
                    format!(
                        "only k-means labels rows it was not fitted on (nearest centroid); \
                         --method {} fits on every row",
                        self.method.name()
                    ),
                ));
            }
            let least = match self.k.as_ref().unwrap_or(&K::AUTO) {
                K::Fixed(k) => *k,
                K::Auto { max, .. } => *max,
            };
            if n < least {
                return Err(Error::param(
                    "train_sample",
                    format!("{n} rows cannot hold {least} clusters; at least {least}"),
                ));
            }
        }
        Ok(ValidSegmentParams(self))
    }
}

impl ValidSegmentParams {
    pub fn params(&self) -> &SegmentParams {
        &self.0
    }
}

/// What a clustering run over a matrix found: the clustering and, with k auto, the scores of
/// each k and why one was chosen.
#[derive(Debug)]
pub struct Fit {
    pub clustering: Clustering,
    pub scaler: Scaler,
    pub k_scores: Vec<KScore>,
    pub k_reason: Option<String>,
    /// With `--train-sample`: the rows the scaling and k-means were fitted on (the
    /// clustering still labels every row). None: fitted on every row.
    pub trained_on: Option<usize>,
}

/// Scales `x` and clusters it by `params` (not RFM); with a training sample smaller than
/// `x`, fits on the sample and labels every row of `x` (see the module doc).
pub fn fit(x: &Array2<f64>, params: &ValidSegmentParams) -> Result<Fit> {
    let p = params.params();
    let sample = p.train_sample.filter(|&n| n < x.nrows()).map(|n| {
        let mut rng = Xoshiro256Plus::seed_from_u64(p.seed);
        let mut rows = rand::seq::index::sample(&mut rng, x.nrows(), n).into_vec();
        // In row order, so the sample is the same set of customers in the same order for
        // the same seed, whatever order the draw came in.
        rows.sort_unstable();
        x.select(Axis(0), &rows)
    });
    let train = sample.as_ref().unwrap_or(x);
    let scaler = Scaler::fit(train, p.scale);
    let z = scaler.transform(train);
    let k = p.k.clone().unwrap_or(K::AUTO);
    let (mut k_scores, mut k_reason) = (Vec::new(), None);
    let clustering = match (p.method, k) {
        (Method::Dbscan, _) => cluster::dbscan(&z, p.eps, p.min_points)?,
        (Method::Rfm, _) => return Err(Error::Internal("RFM has no clustering fit".into())),
        (Method::Kmeans, K::Fixed(k)) => cluster::kmeans(&z, k, p.n_init, p.seed)?,
        (_, K::Fixed(k)) => cluster::gmm(&z, k, p.n_init, p.seed)?,
        (m, K::Auto { min, max }) => {
            let (c, scores, why) = cluster::choose_k(&z, min..=max, p.n_init, p.seed)?;
            k_scores = scores;
            k_reason = Some(why);
            if m == Method::Gmm {
                // Mixtures take the k that k-means' silhouette chose.
                cluster::gmm(&z, c.k, p.n_init, p.seed)?
            } else {
                c
            }
        }
    };
    let (clustering, trained_on) = match &sample {
        None => (clustering, None),
        Some(s) => {
            let model = clustering.model.ok_or_else(|| {
                Error::Internal("a clustering fitted on a sample has no model to label with".into())
            })?;
            (
                cluster::assign(&scaler.transform(x), model),
                Some(s.nrows()),
            )
        }
    };
    Ok(Fit {
        clustering,
        scaler,
        k_scores,
        k_reason,
        trained_on,
    })
}

/// A segmentation run over the warehouse, as published.
#[derive(Debug)]
pub struct Run {
    pub as_of: NaiveDate,
    pub method: Method,
    pub features: Vec<String>,
    pub fit: Option<Fit>,
    pub profiles: (SchemaRef, Vec<RecordBatch>),
}

/// Percentile (nearest rank on sorted values) of `v`, which must be sorted.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Descriptive names for clusters 1..=k from recency, frequency and monetary of every
/// customer (the rule in the module doc). `labels[i]` is customer i's segment (0 = noise).
pub fn cluster_names(rfm: &Array2<f64>, labels: &[i64], k: usize) -> Vec<String> {
    let sorted = |j: usize| {
        let mut v: Vec<f64> = rfm.column(j).to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (r, f, m) = (sorted(0), sorted(1), sorted(2));
    let mut names: Vec<String> = (1..=k as i64)
        .map(|s| {
            let med = |j: usize| {
                median_of(
                    (0..labels.len())
                        .filter(|&i| labels[i] == s)
                        .map(|i| rfm[[i, j]])
                        .collect(),
                )
            };
            let (mr, mf, mm) = (med(0), med(1), med(2));
            let mut parts = Vec::new();
            let typical_recency = percentile(&r, 0.5);
            if mr >= 2.0 * typical_recency {
                parts.push("lapsed");
            } else if mr <= 0.5 * typical_recency {
                parts.push("recent");
            }
            if mf <= 1.0 {
                parts.push("one-time");
            }
            parts.push(if mm >= percentile(&m, 0.95) {
                "top-value"
            } else if mm >= percentile(&m, 0.75) {
                "high-value"
            } else if mm <= percentile(&m, 0.25) {
                "low-value"
            } else {
                "mid-value"
            });
            if mf > 1.0 {
                parts.push(if mf >= percentile(&f, 0.75) {
                    "frequent"
                } else {
                    "repeat"
                });
            }
            parts.join(" ")
        })
        .collect();
    let dup: Vec<bool> = names
        .iter()
        .map(|n| names.iter().filter(|o| *o == n).count() > 1)
        .collect();
    for (i, n) in names.iter_mut().enumerate() {
        if dup[i] {
            n.push_str(&format!(" {}", i + 1));
        }
    }
    names
}

/// The `segments` batch.
fn segments_batch(
    customer_ids: ArrayRef,
    method: Method,
    ids: Vec<i64>,
    names: Vec<String>,
) -> Result<(SchemaRef, RecordBatch)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", customer_ids.data_type().clone(), false),
        Field::new("method", DataType::Utf8, false),
        Field::new("segment_id", DataType::Int64, false),
        Field::new("segment_name", DataType::Utf8, false),
    ]));
    let n = ids.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            customer_ids,
            Arc::new(StringArray::from(vec![method.name(); n])),
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )?;
    Ok((schema, batch))
}

/// Web behaviour columns of the mart also summarised in `segment_profiles`, when the mart has
/// them (the warehouse has web events).
pub const WEB_PROFILE_FEATURES: [&str; 6] = [
    "web_sessions_90d",
    "web_page_views_90d",
    "days_since_last_visit",
    "pages_per_session",
    "cart_abandonment_rate",
    "visit_to_purchase_rate",
];

/// The profile SQL over tables `segments` and `customer_features` (whose schema is `mart`).
fn profiles_sql(mart: &Schema) -> String {
    let web = WEB_PROFILE_FEATURES
        .iter()
        .filter(|f| mart.index_of(f).is_ok());
    let mut cols = String::new();
    for f in PROFILE_FEATURES.iter().chain(web) {
        cols.push_str(&format!(
            ",\n  avg(CAST(f.{f} AS DOUBLE)) AS {f}_mean, median(CAST(f.{f} AS DOUBLE)) AS {f}_median"
        ));
    }
    format!(
        "SELECT s.method, s.segment_id, s.segment_name, count(*) AS customers,
  CAST(count(*) AS DOUBLE) / (SELECT count(*) FROM segments) AS share,
  CAST(sum(f.monetary) AS DOUBLE) / (SELECT CAST(sum(monetary) AS DOUBLE) FROM customer_features) AS revenue_share{cols}
FROM segments s JOIN customer_features f ON f.customer_id = s.customer_id
GROUP BY s.method, s.segment_id, s.segment_name
ORDER BY s.segment_id"
    )
}

/// Replaces a table of the session with in-memory batches.
fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    Ok(())
}

/// Segments the customers of the warehouse and publishes `segments` and `segment_profiles`
/// (and `customer_features` when it was rebuilt) in one commit.
pub async fn segment_warehouse(
    wh_root: &Path,
    as_of: Option<NaiveDate>,
    params: &ValidSegmentParams,
    engine: &EngineOptions,
) -> Result<Run> {
    let p = params.params();
    let lock = WriterLock::acquire(wh_root, "segment")?;
    let wh = Warehouse::open(wh_root)?;
    let rebuild = as_of.is_some() || wh.table(tables::CUSTOMER_FEATURES).is_err();
    let ctx = olap::session(&wh, engine).await?;
    let (mart_schema, mart, as_of) = if rebuild {
        let m = features::compute(&ctx, as_of).await?;
        tracing::info!(as_of = %m.as_of, customers = m.customers, "rebuilt {}", tables::CUSTOMER_FEATURES);
        (m.schema, m.batches, m.as_of)
    } else {
        stored_mart(&ctx).await?
    };
    let all = datafusion::arrow::compute::concat_batches(&mart_schema, &mart)?;
    let customer_ids = all.column(mart_schema.index_of("customer_id")?).clone();
    let a = assign(&all, params)?;
    let (seg_schema, seg_batch) = segments_batch(customer_ids, p.method, a.ids, a.names)?;

    // The profiles are SQL over the mart and this run's segments, both in memory here:
    // that SQL runs locally whatever the engine (a cluster cannot read them).
    let local = olap::empty_session(&engine.local())?;
    register_batches(
        &local,
        tables::CUSTOMER_FEATURES,
        mart_schema.clone(),
        mart.clone(),
    )?;
    register_batches(
        &local,
        tables::SEGMENTS,
        seg_schema.clone(),
        vec![seg_batch.clone()],
    )?;
    let profiles = olap::sql(&local, &profiles_sql(&mart_schema)).await?;

    let mut tx = wh.begin(&lock);
    if rebuild {
        let f = tx.write_arrow(tables::CUSTOMER_FEATURES, &mart_schema, &mart)?;
        tx.replace(tables::CUSTOMER_FEATURES, vec![f]);
    }
    let f = tx.write_arrow(tables::SEGMENTS, &seg_schema, &[seg_batch])?;
    tx.replace(tables::SEGMENTS, vec![f]);
    let f = tx.write_arrow(tables::SEGMENT_PROFILES, &profiles.0, &profiles.1)?;
    tx.replace(tables::SEGMENT_PROFILES, vec![f]);
    Warehouse::commit(tx, &format!("segment {} as of {as_of}", p.method.name()))?;
    Ok(Run {
        as_of,
        method: p.method,
        features: a.features,
        fit: a.fit,
        profiles,
    })
}

/// The stored `customer_features` in customer order, and the day it was computed as of.
async fn stored_mart(ctx: &SessionContext) -> Result<(SchemaRef, Vec<RecordBatch>, NaiveDate)> {
    // In customer order: the clustering's random choices pick rows by position, so the
    // same mart must always come in the same order.
    let table = tables::CUSTOMER_FEATURES;
    let (s, b) = olap::sql(ctx, &format!("SELECT * FROM {table} ORDER BY customer_id")).await?;
    let (_, d) = olap::sql(ctx, &format!("SELECT max(as_of) FROM {table}")).await?;
    let day = d.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        // max() of an empty mart is NULL, not day 0.
        let days = datafusion::arrow::array::cast::as_primitive_array::<
            datafusion::arrow::datatypes::Date32Type,
        >(b.column(0));
        days.is_valid(0).then(|| days.value_as_date(0)).flatten()
    });
    let day = day.ok_or_else(|| Error::NotFound {
        what: "customers in",
        name: table.into(),
        hint: ": run `ecrm features` first".into(),
    })?;
    Ok((s, b, day))
}

/// Each customer's segment.
struct Assigned {
    ids: Vec<i64>,
    names: Vec<String>,
    /// The clustering (k-means), or None (RFM segments come with the mart).
    fit: Option<Fit>,
    /// The features the segments are made of.
    features: Vec<String>,
}

/// Segments the mart's customers (one batch): RFM reads its segment column; k-means
/// clusters the chosen features, names each cluster by its RFM profile, and calls label 0
/// `outliers`.
fn assign(all: &RecordBatch, params: &ValidSegmentParams) -> Result<Assigned> {
    let p = params.params();
    let schema = all.schema();
    let rfm_cols = ["recency_days", "frequency", "monetary"].map(String::from);
    if p.method == Method::Rfm {
        let col = olap::text_column(all.column(schema.index_of("rfm_segment")?))?;
        let names: Vec<String> = (0..col.len()).map(|i| col.value(i).to_string()).collect();
        return Ok(Assigned {
            ids: names.iter().map(|n| features::rfm::segment_id(n)).collect(),
            names,
            fit: None,
            features: rfm_cols.to_vec(),
        });
    }
    let wanted: Vec<String> = p
        .features
        .clone()
        .unwrap_or_else(|| DEFAULT_FEATURES.map(String::from).to_vec());
    let batches = std::slice::from_ref(all);
    let (x, features, notes) = bridge::matrix_with(
        &schema,
        batches,
        &wanted,
        tables::CUSTOMER_FEATURES,
        p.missing,
    )?;
    for n in &notes {
        n.log(None);
    }
    let fit = fit(&x, params)?;
    let rfm_x = bridge::matrix(&schema, batches, &rfm_cols, tables::CUSTOMER_FEATURES)?;
    let c = &fit.clustering;
    let cluster_names = cluster_names(&rfm_x, &c.labels, c.k);
    let names = c
        .labels
        .iter()
        .map(|&l| match l {
            0 => "outliers".to_string(),
            l => cluster_names[l as usize - 1].clone(),
        })
        .collect();
    Ok(Assigned {
        ids: c.labels.clone(),
        names,
        fit: Some(fit),
        features,
    })
}

/// What clustering a file produced.
#[derive(Debug)]
pub struct FileRun {
    pub rows: usize,
    pub features: Vec<String>,
    pub fit: Fit,
}

/// Clusters the numeric columns `params.features` (default: every numeric column) of a
/// Parquet or CSV file and writes one `segment` label per input row, in input order, to
/// `out` (format from its extension).
pub async fn cluster_file(
    input: &Path,
    out: &Path,
    params: &ValidSegmentParams,
    engine: &EngineOptions,
) -> Result<FileRun> {
    let p = params.params();
    if p.method == Method::Rfm {
        return Err(Error::param(
            "method",
            "rfm needs the warehouse's feature mart; cluster a file with kmeans, dbscan or gmm",
        ));
    }
    let clock = std::time::Instant::now();
    let lap =
        |step: &str| tracing::debug!(step, ms = clock.elapsed().as_millis() as u64, "segment");
    let (schema, batches) = olap::read_in_order(input, p.features.as_deref(), engine).await?;
    let source = input.display().to_string();
    let feats = match &p.features {
        Some(f) => f.clone(),
        None => bridge::numeric_columns(&schema),
    };
    if feats.is_empty() {
        return Err(Error::input(input, "has no numeric columns to cluster"));
    }
    lap("read");
    let (x, feats, notes) = bridge::matrix_with(&schema, &batches, &feats, &source, p.missing)?;
    for n in &notes {
        n.log(None);
    }
    lap("matrix");
    let fit = fit(&x, params)?;
    lap("fit");
    let labels = Arc::new(Schema::new(vec![Field::new(
        "segment",
        DataType::Int64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        labels.clone(),
        vec![Arc::new(Int64Array::from(fit.clustering.labels.clone()))],
    )?;
    files::write_batches_file(out, FileFormat::for_path(out), &labels, &[batch])?;
    lap("write");
    Ok(FileRun {
        rows: x.nrows(),
        features: feats,
        fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::param_key as key;

    #[test]
    fn segment_params_are_checked_under_their_keys() {
        let p = SegmentParams::default;
        assert!(p().check().is_ok());
        let with = |f: fn(&mut SegmentParams)| {
            let mut x = p();
            f(&mut x);
            x.check()
        };
        assert_eq!(key(with(|x| x.k = Some(K::Fixed(1)))), "k");
        assert_eq!(key(with(|x| x.k = Some(K::Auto { min: 5, max: 3 }))), "k");
        assert_eq!(
            key(with(|x| {
                x.method = Method::Rfm;
                x.k = Some(K::Fixed(3));
            })),
            "k"
        );
        assert_eq!(key(with(|x| x.features = Some(vec![]))), "features");
        assert_eq!(key(with(|x| x.n_init = 0)), "n_init");
        assert_eq!(key(with(|x| x.eps = f64::NAN)), "eps");
        assert_eq!(key(with(|x| x.min_points = 0)), "min_points");
        assert_eq!(key(with(|x| x.train_sample = Some(3))), "train_sample");
        assert_eq!(
            key(with(|x| {
                x.method = Method::Dbscan;
                x.train_sample = Some(100);
            })),
            "train_sample"
        );
    }

    #[test]
    fn k_reads_numbers_and_auto_from_a_pipeline_file() {
        #[derive(serde::Deserialize)]
        struct T {
            k: K,
        }
        let k = |text: &str| toml::from_str::<T>(text).map(|t| t.k);
        assert_eq!(k("k = 4").unwrap(), K::Fixed(4));
        assert_eq!(k("k = \"auto\"").unwrap(), K::AUTO);
        assert_eq!(k("k = \"auto:3-6\"").unwrap(), K::Auto { min: 3, max: 6 });
        let e = k("k = 4.5").unwrap_err();
        assert!(
            e.message().contains("4.5 is not a number or \"auto\""),
            "{e}"
        );
        assert!(k("k = -3").is_err());
    }
}
