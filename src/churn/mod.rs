//! Churn forecasting with decision trees: training with honest evaluation, versioned model
//! files, and scoring.
//!
//! - Input: the warehouse (labels at a cutoff from the point-in-time feature mart, see
//!   [`warehouse`]), or any customer-level Parquet or CSV table with a label column (Yes/No,
//!   true/false or 1/0) and an id column (`--input FILE --label COL --id COL`); the other
//!   columns are features, encoded by [`crate::features::bridge::Encoder`] (numbers,
//!   booleans, numbers stored as text, categories one-hot).
//! - Output: a model file (versioned JSON, [`ModelFile`]) and a printed report; scoring writes
//!   the table `churn_scores` (warehouse) or one row per input row, in input order (file):
//!   the id, `churn_probability`, `risk_band`, `reasons`.
//! - Parameters: the tree's ([`tree::TreeParams`]; defaults depth 6, leaves of 1 row, Gini,
//!   no class weights), the seed (default 42), cross-validation folds (default none), and on
//!   the warehouse a training sample (default none: every labelled customer; see
//!   [`warehouse`]).
//!
//! Evaluation: a seeded stratified 80/20 hold-out (each class split 80/20 on its own, so both
//! parts keep the churn rate); the model in the file is the one trained on the 80%, and its
//! metrics are measured on the 20% it never saw. With `--test FILE` (e.g. a later period),
//! the model trains on every input row and is measured on that file. `--cv K` adds stratified K-fold
//! cross-validation over all rows (`cv_roc_auc_mean`, `cv_roc_auc_std`, population standard
//! deviation as scikit-learn's `scores.std()`).
//!
//! Risk bands (documented cut-offs on the churn probability): `high` ≥ 0.6, `medium` ≥ 0.3,
//! `low` below. Reasons are the three conditions on the row's decision path with the largest
//! impurity decrease, e.g. `Contract = Month-to-month; tenure <= 16.5`.

pub mod explain;
pub mod metrics;
pub mod tree;
pub mod warehouse;

use std::path::Path;

use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::features::bridge::{Encoder, Note};
use crate::olap::{self, EngineOptions};
use tree::{FittedTree, ValidTreeParams};

/// The model file format's name and version. Version 2 keeps missing values missing (the
/// tree learns a side for them at each split); version 1 files, whose encoder read them as
/// 0, are still read and score as they did. Any other version is refused.
pub const MODEL_FORMAT: &str = "ecrm-churn-model";
pub const MODEL_VERSION: u32 = 2;

/// Probability cut-offs of the risk bands.
pub const HIGH_RISK: f64 = 0.6;
pub const MEDIUM_RISK: f64 = 0.3;

/// Churn training parameters: `ecrm churn train`'s options and a pipeline `churn-train`
/// stage's keys, one type for both. [`Default`] is the one place a default is written (the
/// tree's own come from [`tree::TreeParams`]); [`check`](ChurnTrainParams::check) gives the
/// [`ValidChurnTrainParams`] that training accepts.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnTrainParams {
    /// Warehouse: a customer counts when they bought in this many days before the cutoff.
    #[arg(long, default_value_t = ChurnTrainParams::default().lookback_days)]
    pub lookback_days: i64,
    /// Warehouse: a customer churns when they buy nothing in this many days from the cutoff.
    #[arg(long, default_value_t = ChurnTrainParams::default().horizon_days)]
    pub horizon_days: i64,
    /// Deepest split level.
    #[arg(long, default_value_t = ChurnTrainParams::default().max_depth)]
    pub max_depth: usize,
    /// Fewest rows in a leaf.
    #[arg(long, default_value_t = ChurnTrainParams::default().min_samples_leaf)]
    pub min_samples_leaf: usize,
    /// Fewest rows in a node to split it.
    #[arg(long, default_value_t = ChurnTrainParams::default().min_samples_split)]
    pub min_samples_split: usize,
    /// Smallest weighted impurity decrease a split must bring (scikit-learn's definition).
    #[arg(long, default_value_t = ChurnTrainParams::default().min_impurity_decrease)]
    pub min_impurity_decrease: f64,
    /// Impurity measure.
    #[arg(long, value_enum, default_value_t = ChurnTrainParams::default().criterion)]
    pub criterion: tree::Criterion,
    /// Class weights: balanced weighs each class the same in total.
    #[arg(long, value_enum, default_value_t = ChurnTrainParams::default().class_weight)]
    pub class_weight: tree::ClassWeight,
    /// Leaf probabilities: Laplace-corrected (a small pure leaf is not certain; better
    /// rankings) or the raw class shares (scikit-learn's).
    #[arg(long, value_enum, default_value_t = ChurnTrainParams::default().leaf_probability)]
    pub leaf_probability: tree::LeafProbability,
    /// Stratified cross-validation folds (2 or more).
    #[arg(long, value_name = "K")]
    pub cv: Option<usize>,
    /// Seed of the hold-out split, the folds and the training sample.
    #[arg(long, default_value_t = ChurnTrainParams::default().seed)]
    pub seed: u64,
    /// Warehouse: train on a seeded stratified sample of about N of the labelled customers
    /// (the churn rate kept); the model is still measured on every customer at the cutoff.
    #[arg(long, value_name = "N", conflicts_with = "input")]
    pub train_sample: Option<usize>,
}

impl Default for ChurnTrainParams {
    /// A look-back of a year and a horizon of 90 days, the tree's defaults
    /// ([`tree::TreeParams::default`]), no cross-validation, seed 42, no training sample.
    fn default() -> Self {
        let tree = tree::TreeParams::default().check_unwrap();
        ChurnTrainParams {
            lookback_days: 365,
            horizon_days: 90,
            max_depth: tree.max_depth(),
            min_samples_leaf: tree.min_samples_leaf(),
            min_samples_split: tree.min_samples_split(),
            min_impurity_decrease: tree.min_impurity_decrease(),
            criterion: tree.criterion(),
            class_weight: tree.class_weight(),
            leaf_probability: tree.leaf_probability(),
            cv: None,
            seed: 42,
            train_sample: None,
        }
    }
}

/// Checked churn training parameters: the only kind training accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidChurnTrainParams {
    window: warehouse::Window,
    tree: ValidTreeParams,
    cv: Option<usize>,
    seed: u64,
    train_sample: Option<usize>,
}

impl ChurnTrainParams {
    /// Checks each parameter; the first failure names its key and what is allowed.
    pub fn check(self) -> Result<ValidChurnTrainParams> {
        let window = warehouse::Window {
            lookback_days: self.lookback_days,
            horizon_days: self.horizon_days,
        };
        window.check()?;
        let tree = tree::TreeParams::default()
            .max_depth(self.max_depth)
            .min_samples_leaf(self.min_samples_leaf)
            .min_samples_split(self.min_samples_split)
            .min_impurity_decrease(self.min_impurity_decrease)
            .criterion(self.criterion)
            .class_weight(self.class_weight)
            .leaf_probability(self.leaf_probability)
            .check()?;
        if let Some(k) = self.cv
            && !(2..=100).contains(&k)
        {
            return Err(Error::param(
                "cv",
                format!("{k} is out of range; 2 to 100 folds"),
            ));
        }
        if let Some(n) = self.train_sample
            && n < 2
        {
            return Err(Error::param(
                "train_sample",
                format!("{n} is too few rows to train a tree; at least 2"),
            ));
        }
        Ok(ValidChurnTrainParams {
            window,
            tree,
            cv: self.cv,
            seed: self.seed,
            train_sample: self.train_sample,
        })
    }
}

impl ValidChurnTrainParams {
    /// The label windows (warehouse training).
    pub fn window(&self) -> warehouse::Window {
        self.window
    }
    pub fn tree(&self) -> &ValidTreeParams {
        &self.tree
    }
    pub fn cv(&self) -> Option<usize> {
        self.cv
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn train_sample(&self) -> Option<usize> {
        self.train_sample
    }
}

crate::choices! {
    /// Risk bands, by the cut-offs [`HIGH_RISK`] and [`MEDIUM_RISK`]; the names are those of
    /// `churn_scores.risk_band`.
    pub enum RiskBand {
        High = "high",
        Medium = "medium",
        Low = "low",
    }
}

impl RiskBand {
    /// The band of a churn probability.
    pub fn of(p: f64) -> RiskBand {
        if p >= HIGH_RISK {
            RiskBand::High
        } else if p >= MEDIUM_RISK {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }
}

/// The risk band of a churn probability, by name.
pub fn risk_band(p: f64) -> &'static str {
    RiskBand::of(p).name()
}

/// Held-out (and cross-validated) quality of a model. Scripts read `roc_auc`,
/// `cv_roc_auc_mean`, `cv_roc_auc_std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub held_out_rows: u64,
    pub base_rate: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub ks: f64,
    pub confusion: metrics::Confusion,
    pub gains: Vec<metrics::Decile>,
    /// (false positive rate, true positive rate) points for drawing (see
    /// [`metrics::roc_curve`]); absent in model files written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roc_curve: Vec<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv_folds: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv_roc_auc_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cv_roc_auc_std: Option<f64>,
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub input: String,
    pub id_column: String,
    pub label_column: String,
    pub rows: u64,
    /// SHA-256 of the encoded training matrix and labels.
    pub training_data_sha256: String,
    /// Warehouse models: the training cutoff and the label windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<chrono::NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_days: Option<i64>,
    /// File models trained with `--test FILE`: that file, which holds the held-out rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_input: Option<String>,
    /// Warehouse models trained with `--train-sample`: the labelled customers the stratified
    /// sample was drawn from (`rows` is the sample's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_from: Option<u64>,
}

/// The model file (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    pub ecrm_version: String,
    pub created_at: String,
    pub source: Source,
    pub encoder: Encoder,
    pub feature_names: Vec<String>,
    pub params: ValidTreeParams,
    pub seed: u64,
    pub threshold: f64,
    pub metrics: Metrics,
    /// (feature, share of the total impurity decrease), largest first.
    pub feature_importance: Vec<(String, f64)>,
    /// The tree as if-then rules, one per leaf, highest churn probability first.
    pub rules: Vec<String>,
    pub tree: FittedTree,
}

impl ModelFile {
    /// Reads and checks a model file.
    pub fn read(path: &Path) -> Result<ModelFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: ModelFile = serde_json::from_str(&text).map_err(|e| Error::Input {
            file: path.into(),
            message: format!("not an ecrm churn model file: {e}"),
        })?;
        if m.format != MODEL_FORMAT || !(1..=MODEL_VERSION).contains(&m.version) {
            return Err(Error::Input {
                file: path.into(),
                message: format!(
                    "model format {} version {}; this ecrm reads {MODEL_FORMAT} versions 1 to {MODEL_VERSION}",
                    m.format, m.version
                ),
            });
        }
        m.check().map_err(|message| Error::Input {
            file: path.into(),
            message: format!("not a valid churn model: {message}"),
        })?;
        Ok(m)
    }

    /// The checks a model file must pass before it scores anything, so that a hand-edited
    /// or damaged file is an error naming the field, never a panic or an endless walk: the
    /// tree's nodes ([`FittedTree::check`]), the encoder's columns, and that both describe
    /// the same features.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.encoder.check()?;
        let encoded = self.encoder.feature_names();
        if self.feature_names != encoded {
            return Err(format!(
                "feature_names ({} names) are not the encoder's features ({} names)",
                self.feature_names.len(),
                encoded.len()
            ));
        }
        if self.tree.n_features != encoded.len() {
            return Err(format!(
                "tree.n_features: {} is not the encoder's {} features",
                self.tree.n_features,
                encoded.len()
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "threshold: {} is not a probability",
                self.threshold
            ));
        }
        self.tree.check()
    }
}

/// Reads a label column: Yes/No, true/false, 1/0 (any case, trimmed).
pub(crate) fn labels(
    batches: &[RecordBatch],
    idx: usize,
    name: &str,
    source: &str,
) -> Result<Vec<bool>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(idx);
        // 1/0 and true/false columns as read, without a detour through text.
        if col.null_count() == 0 {
            if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                out.extend(a.values().iter());
                continue;
            }
            if let Some(a) = col.as_any().downcast_ref::<Int64Array>()
                && a.values().iter().all(|&v| v == 0 || v == 1)
            {
                out.extend(a.values().iter().map(|&v| v == 1));
                continue;
            }
        }
        let t = olap::text_column(col)?;
        for i in 0..t.len() {
            let v = if t.is_null(i) { "" } else { t.value(i).trim() };
            let is = |words: [&str; 4]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
            let l = match v {
                _ if is(["yes", "true", "1", "1.0"]) => true,
                _ if is(["no", "false", "0", "0.0"]) => false,
                _ => {
                    return Err(Error::Input {
                        file: source.into(),
                        message: format!(
                            "row {}: label column {name:?} is {v:?}; expected Yes/No, true/false or 1/0",
                            out.len() + 1
                        ),
                    });
                }
            };
            out.push(l);
        }
    }
    Ok(out)
}

/// Stratified assignment of rows to `k` folds: each class shuffled (seeded) and dealt out in
/// turn, so every fold keeps the class balance.
pub fn stratified_folds(y: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut fold = vec![0; y.len()];
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        idx.shuffle(&mut rng);
        for (n, i) in idx.into_iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}

/// A seeded stratified hold-out: true for the rows held out (`share` of each class, rounded).
pub fn stratified_holdout(y: &[bool], share: f64, seed: u64) -> Vec<bool> {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let mut out = vec![false; y.len()];
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        idx.shuffle(&mut rng);
        let take = (idx.len() as f64 * share).round() as usize;
        for &i in &idx[..take] {
            out[i] = true;
        }
    }
    out
}

fn select_rows(x: &Array2<f64>, rows: &[usize]) -> Array2<f64> {
    x.select(Axis(0), rows)
}

pub(crate) fn fit_tree(params: &ValidTreeParams, x: Array2<f64>, y: &[bool]) -> Result<FittedTree> {
    let targets = Array1::from(y.iter().map(|&b| usize::from(b)).collect::<Vec<_>>());
    params.fit(&DatasetBase::new(x, targets))
}

/// Churn probabilities (class 1) of `x`; a tree that saw only one class gives that class's.
pub fn churn_probability(tree: &FittedTree, x: &Array2<f64>) -> Vec<f64> {
    let p = tree.predict_proba(x);
    if p.ncols() < 2 {
        return vec![0.0; x.nrows()];
    }
    p.column(1).to_vec()
}

/// Everything a model is judged by, on labelled scores.
pub fn evaluate(scores: &[f64], y: &[bool], threshold: f64) -> Metrics {
    let pos = y.iter().filter(|&&l| l).count();
    Metrics {
        held_out_rows: y.len() as u64,
        base_rate: if y.is_empty() {
            0.0
        } else {
            pos as f64 / y.len() as f64
        },
        roc_auc: metrics::roc_auc(scores, y),
        pr_auc: metrics::pr_auc(scores, y),
        ks: metrics::ks(scores, y),
        confusion: metrics::confusion(scores, y, threshold),
        gains: metrics::gains(scores, y),
        roc_curve: metrics::roc_curve(scores, y),
        cv_folds: None,
        cv_roc_auc_mean: None,
        cv_roc_auc_std: None,
    }
}

/// Churn probability and reasons for every row of `x`: one leaf lookup per row (in
/// parallel), the texts computed once per leaf.
fn predict_rows(m: &ModelFile, x: &Array2<f64>) -> (Vec<f64>, Vec<String>) {
    use rayon::prelude::*;
    let texts = explain::leaf_reasons(m);
    let x = x.as_standard_layout();
    let leaves: Vec<usize> = (0..x.nrows())
        .into_par_iter()
        .map(|i| m.tree.leaf(x.row(i).as_slice().expect("standard layout")))
        .collect();
    let proba = |leaf: usize| m.tree.proba(leaf).get(1).copied().unwrap_or(0.0);
    (
        leaves.iter().map(|&l| proba(l)).collect(),
        leaves.iter().map(|&l| texts[l].clone()).collect(),
    )
}

fn sha256_of(x: &Array2<f64>, y: &[bool]) -> String {
    let mut h = Sha256::new();
    for v in x.iter() {
        h.update(v.to_le_bytes());
    }
    for &l in y {
        h.update([u8::from(l)]);
    }
    hex::encode(h.finalize())
}

/// What training a model on a file needs (its label windows and training sample are not
/// used: a file is labelled already, and small enough to train on whole).
#[derive(Debug, Clone)]
pub struct TrainFile<'a> {
    pub input: &'a Path,
    pub label: &'a str,
    pub id: &'a str,
    pub params: &'a ValidChurnTrainParams,
    /// Evaluate on this labelled file instead of a hold-out of the input.
    pub test: Option<&'a Path>,
}

/// Trains on a file (see the module doc): hold-out evaluation, optional cross-validation, the
/// model file contents. Returns the model and notes on the encoding.
pub async fn train_file(
    t: &TrainFile<'_>,
    engine: &EngineOptions,
) -> Result<(ModelFile, Vec<Note>)> {
    let source = t.input.display().to_string();
    let (schema, batches) = olap::read_in_order(t.input, None, engine).await?;
    for (key, col) in [("label", t.label), ("id", t.id)] {
        if schema.index_of(col).is_err() {
            return Err(Error::param(
                key,
                format!(
                    "{source} has no column {col:?}; its columns are: {}",
                    olap::column_list(&schema)
                ),
            ));
        }
    }
    let y = labels(&batches, schema.index_of(t.label)?, t.label, &source)?;
    let (encoder, mut notes) = Encoder::fit(&schema, &batches, &[t.id, t.label])?;
    let (x, more) = encoder.transform(&schema, &batches, &source)?;
    notes.extend(more);
    let names = encoder.feature_names();
    if names.is_empty() {
        return Err(Error::input(
            t.input,
            "no feature columns besides the id and the label",
        ));
    }

    let test = match t.test {
        // A separate test file (e.g. a later period): train on every input row.
        Some(test) => {
            let test_source = test.display().to_string();
            let (ts, tb) = olap::read_in_order(test, None, engine).await?;
            let label_idx = ts.index_of(t.label).map_err(|_| Error::Input {
                file: test.into(),
                message: format!("has no label column {:?}", t.label),
            })?;
            let y_test = labels(&tb, label_idx, t.label, &test_source)?;
            let (x_test, more) = encoder.transform(&ts, &tb, &test_source)?;
            notes.extend(more.into_iter().map(|n| n.about(&test_source)));
            Some((x_test, y_test))
        }
        None => None,
    };
    let p = t.params;
    let (model, metrics) = train_and_measure(p.tree(), &x, &y, test, p.cv(), p.seed())?;
    let source = Source {
        input: source,
        id_column: t.id.into(),
        label_column: t.label.into(),
        rows: y.len() as u64,
        training_data_sha256: sha256_of(&x, &y),
        cutoff: None,
        lookback_days: None,
        horizon_days: None,
        test_input: t.test.map(|p| p.display().to_string()),
        sampled_from: None,
    };
    Ok((
        model_file(source, encoder, model, p.tree(), p.seed(), metrics),
        notes,
    ))
}

/// A labelled file read and encoded the model's way: (features, labels, notes).
async fn labelled_file(
    model: &ModelFile,
    input: &Path,
    engine: &EngineOptions,
) -> Result<(Array2<f64>, Vec<bool>, Vec<Note>)> {
    let source = input.display().to_string();
    let (schema, batches) = olap::read_in_order(input, None, engine).await?;
    let label = &model.source.label_column;
    let idx = schema.index_of(label).map_err(|_| Error::Input {
        file: input.into(),
        message: format!(
            "has no label column {label:?} (the model's); its columns are: {}",
            olap::column_list(&schema)
        ),
    })?;
    let y = labels(&batches, idx, label, &source)?;
    let (x, notes) = model.encoder.transform(&schema, &batches, &source)?;
    Ok((x, y, notes))
}

/// Measures a file model on labelled data (see [`Evaluation`]): on `input`, or by default on
/// the model's own held-out data: its `--test` file, or the 20% hold-out of its training file,
/// re-drawn with the model's seed after checking that the file still hashes to the training
/// data's hash.
pub async fn evaluate_file(
    model: &ModelFile,
    input: Option<&Path>,
    engine: &EngineOptions,
) -> Result<Evaluation> {
    if model.source.cutoff.is_some() {
        return Err(Error::param(
            "input",
            "this model was trained on the warehouse; evaluate it at a --cutoff",
        ));
    }
    let given = input.map(Path::to_path_buf);
    let test = model
        .source
        .test_input
        .as_ref()
        .map(std::path::PathBuf::from);
    if let Some(file) = given.or(test) {
        let (x, y, notes) = labelled_file(model, &file, engine).await?;
        let p = predict_rows(model, &x).0;
        return Ok(Evaluation {
            data: format!("{} ({} rows)", file.display(), y.len()),
            cutoff: None,
            metrics: evaluate(&p, &y, model.threshold),
            notes,
        });
    }
    let train = Path::new(&model.source.input);
    if !train.exists() {
        return Err(Error::param(
            "input",
            format!(
                "the model's training file {} is not there to re-draw its hold-out from; \
                 name a labelled file",
                train.display()
            ),
        ));
    }
    let (x, y, notes) = labelled_file(model, train, engine).await?;
    if sha256_of(&x, &y) != model.source.training_data_sha256 {
        return Err(Error::Input {
            file: train.into(),
            message: "has changed since the model was trained (its data no longer hashes to \
                      the model's training_data_sha256), so its hold-out cannot be re-drawn; \
                      name a labelled file with --input"
                .into(),
        });
    }
    let held = stratified_holdout(&y, HOLD_OUT, model.seed);
    let rows: Vec<usize> = (0..y.len()).filter(|&i| held[i]).collect();
    let y_held: Vec<bool> = rows.iter().map(|&i| y[i]).collect();
    let p = predict_rows(model, &select_rows(&x, &rows)).0;
    Ok(Evaluation {
        data: format!(
            "the {} held-out rows of {} (seed {})",
            rows.len(),
            train.display(),
            model.seed
        ),
        cutoff: None,
        metrics: evaluate(&p, &y_held, model.threshold),
        notes,
    })
}

/// A model measured on labelled data: what `ecrm churn evaluate` prints and stores.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// What the model was measured on.
    pub data: String,
    /// Warehouse models: the cutoff of the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<chrono::NaiveDate>,
    pub metrics: Metrics,
    /// Notes on the encoding (missing values, unseen categories).
    pub notes: Vec<Note>,
}

/// The share of rows a file model holds out to measure itself.
const HOLD_OUT: f64 = 0.2;

/// The probability threshold of the confusion matrix and its rates.
const THRESHOLD: f64 = 0.5;

/// Trains on (x, y) and measures the model on `test`, or, without one, trains on a seeded
/// stratified 80% and measures on the other 20%; `cv` adds stratified K-fold
/// cross-validation over (x, y).
fn train_and_measure(
    params: &ValidTreeParams,
    x: &Array2<f64>,
    y: &[bool],
    test: Option<(Array2<f64>, Vec<bool>)>,
    cv: Option<usize>,
    seed: u64,
) -> Result<(FittedTree, Metrics)> {
    let (model, mut m) = match test {
        Some((x_test, y_test)) => {
            let model = fit_tree(params, x.clone(), y)?;
            let m = evaluate(&churn_probability(&model, &x_test), &y_test, THRESHOLD);
            (model, m)
        }
        None => {
            let held = stratified_holdout(y, HOLD_OUT, seed);
            let train_rows: Vec<usize> = (0..y.len()).filter(|&i| !held[i]).collect();
            let test_rows: Vec<usize> = (0..y.len()).filter(|&i| held[i]).collect();
            let y_train: Vec<bool> = train_rows.iter().map(|&i| y[i]).collect();
            let y_test: Vec<bool> = test_rows.iter().map(|&i| y[i]).collect();
            let model = fit_tree(params, select_rows(x, &train_rows), &y_train)?;
            let p = churn_probability(&model, &select_rows(x, &test_rows));
            (model, evaluate(&p, &y_test, THRESHOLD))
        }
    };
    if let Some(k) = cv {
        let folds = stratified_folds(y, k, seed);
        let mut aucs = Vec::with_capacity(k);
        for f in 0..k {
            let tr: Vec<usize> = (0..y.len()).filter(|&i| folds[i] != f).collect();
            let te: Vec<usize> = (0..y.len()).filter(|&i| folds[i] == f).collect();
            let ytr: Vec<bool> = tr.iter().map(|&i| y[i]).collect();
            let yte: Vec<bool> = te.iter().map(|&i| y[i]).collect();
            let fold_model = fit_tree(params, select_rows(x, &tr), &ytr)?;
            let auc = metrics::roc_auc(&churn_probability(&fold_model, &select_rows(x, &te)), &yte)
                .ok_or_else(|| Error::Mining {
                    algorithm: "cross-validation",
                    message: format!("fold {} has only one class; use fewer folds", f + 1),
                })?;
            aucs.push(auc);
        }
        let mean = aucs.iter().sum::<f64>() / k as f64;
        let std = (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / k as f64).sqrt();
        m.cv_folds = Some(k);
        m.cv_roc_auc_mean = Some(mean);
        m.cv_roc_auc_std = Some(std);
    }
    Ok((model, m))
}

/// Assembles a model file.
fn model_file(
    source: Source,
    encoder: Encoder,
    model: FittedTree,
    params: &ValidTreeParams,
    seed: u64,
    metrics: Metrics,
) -> ModelFile {
    let names = encoder.feature_names();
    let mut importance: Vec<(String, f64)> = names
        .iter()
        .cloned()
        .zip(model.feature_importance())
        .filter(|(_, v)| *v > 0.0)
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    ModelFile {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        ecrm_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        source,
        rules: explain::rules(&model, &encoder, &names),
        encoder,
        feature_names: names,
        params: params.clone(),
        seed,
        threshold: THRESHOLD,
        metrics,
        feature_importance: importance,
        tree: model,
    }
}

/// Scored rows and what the scoring noticed.
#[derive(Debug)]
pub struct Scores {
    /// The id, `churn_probability`, `risk_band` and `reasons`, one row per scored row.
    pub batch: RecordBatch,
    /// Warehouse scores: the date the customers were scored as of.
    pub as_of: Option<chrono::NaiveDate>,
    /// Notes on the encoding (missing values, unseen categories).
    pub notes: Vec<Note>,
    /// Rows per risk band, in [`RiskBand::ALL`] order.
    bands: [usize; 3],
}

impl Scores {
    /// Rows scored.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Rows in `band`.
    pub fn band_count(&self, band: RiskBand) -> usize {
        let i = RiskBand::ALL.iter().position(|b| *b == band).unwrap_or(0);
        self.bands[i]
    }
}

/// Scores a file with a model: one output row per input row, in input order.
pub async fn score_file(model: &ModelFile, input: &Path, engine: &EngineOptions) -> Result<Scores> {
    let source = input.display().to_string();
    // All columns: a missing one is then reported by the encoder, with every one missing.
    let (schema, batches) = olap::read_in_order(input, None, engine).await?;
    if schema.index_of(&model.source.id_column).is_err() {
        return Err(Error::Input {
            file: input.into(),
            message: format!(
                "has no id column {:?} (the model's)",
                model.source.id_column
            ),
        });
    }
    let (x, notes) = model.encoder.transform(&schema, &batches, &source)?;
    let id_idx = schema.index_of(&model.source.id_column)?;
    let ids: Vec<&dyn Array> = batches.iter().map(|b| b.column(id_idx).as_ref()).collect();
    let ids = datafusion::arrow::compute::concat(&ids)?;
    scores(model, &model.source.id_column, ids, &x, None, notes)
}

/// The scores of encoded rows `x`: the id column `id_name` (`ids`, one per row),
/// `churn_probability`, `risk_band` and `reasons`.
fn scores(
    model: &ModelFile,
    id_name: &str,
    ids: std::sync::Arc<dyn Array>,
    x: &Array2<f64>,
    as_of: Option<chrono::NaiveDate>,
    notes: Vec<Note>,
) -> Result<Scores> {
    let (p, reasons) = predict_rows(model, x);
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new(id_name, ids.data_type().clone(), true),
        Field::new("churn_probability", DataType::Float64, false),
        Field::new("risk_band", DataType::Utf8, false),
        Field::new("reasons", DataType::Utf8, false),
    ]));
    let mut counts = [0usize; 3];
    let bands: Vec<&str> = p
        .iter()
        .map(|&v| {
            let band = RiskBand::of(v);
            counts[RiskBand::ALL.iter().position(|b| *b == band).unwrap_or(0)] += 1;
            band.name()
        })
        .collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            ids,
            std::sync::Arc::new(Float64Array::from(p)),
            std::sync::Arc::new(StringArray::from(bands)),
            std::sync::Arc::new(StringArray::from(reasons)),
        ],
    )?;
    Ok(Scores {
        batch,
        as_of,
        notes,
        bands: counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::param_key as key;

    /// Labels read the same from numbers, booleans and text; anything else names its row.
    #[test]
    fn labels_from_numbers_booleans_and_text() {
        use std::sync::Arc;
        let one = |col: datafusion::arrow::array::ArrayRef| {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "y",
                col.data_type().clone(),
                true,
            )]));
            let b = RecordBatch::try_new(schema, vec![col]).unwrap();
            labels(&[b], 0, "y", "f.csv")
        };
        let want = vec![true, false, true];
        assert_eq!(
            one(Arc::new(Int64Array::from(vec![1, 0, 1]))).unwrap(),
            want
        );
        let b = BooleanArray::from(vec![true, false, true]);
        assert_eq!(one(Arc::new(b)).unwrap(), want);
        let t = StringArray::from(vec![" Yes", "no", "TRUE"]);
        assert_eq!(one(Arc::new(t)).unwrap(), want);
        let e = one(Arc::new(Int64Array::from(vec![1, 2]))).unwrap_err();
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("\"2\""),
            "{e}"
        );
        let e = one(Arc::new(BooleanArray::from(vec![Some(true), None]))).unwrap_err();
        assert!(e.to_string().contains("row 2"), "{e}");
    }

    #[test]
    fn churn_train_params_are_checked_under_their_keys() {
        assert!(ChurnTrainParams::default().check().is_ok());
        let with = |f: fn(&mut ChurnTrainParams)| {
            let mut p = ChurnTrainParams::default();
            f(&mut p);
            p.check()
        };
        assert_eq!(key(with(|p| p.lookback_days = 0)), "lookback_days");
        assert_eq!(key(with(|p| p.horizon_days = 5000)), "horizon_days");
        assert_eq!(key(with(|p| p.max_depth = 0)), "max_depth");
        assert_eq!(key(with(|p| p.min_samples_split = 1)), "min_samples_split");
        assert_eq!(key(with(|p| p.min_samples_leaf = 0)), "min_samples_leaf");
        assert_eq!(
            key(with(|p| p.min_impurity_decrease = -1.0)),
            "min_impurity_decrease"
        );
        assert_eq!(key(with(|p| p.cv = Some(1))), "cv");
        assert_eq!(key(with(|p| p.train_sample = Some(1))), "train_sample");
        // The defaults are the tree's own.
        let d = ChurnTrainParams::default().check().unwrap();
        assert_eq!(d.tree(), &tree::TreeParams::default().check().unwrap());
    }

    #[test]
    fn folds_and_holdout_keep_the_class_balance() {
        let y: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect(); // 25 positives
        let folds = stratified_folds(&y, 5, 1);
        for f in 0..5 {
            let pos = (0..100).filter(|&i| folds[i] == f && y[i]).count();
            let all = (0..100).filter(|&i| folds[i] == f).count();
            assert_eq!((pos, all), (5, 20));
        }
        let held = stratified_holdout(&y, 0.2, 1);
        assert_eq!(held.iter().filter(|&&h| h).count(), 20);
        assert_eq!((0..100).filter(|&i| held[i] && y[i]).count(), 5);
        assert_eq!(held, stratified_holdout(&y, 0.2, 1), "seeded");
    }

    #[test]
    fn risk_bands_follow_the_documented_cut_offs() {
        assert_eq!(risk_band(0.6), "high");
        assert_eq!(risk_band(0.59), "medium");
        assert_eq!(risk_band(0.3), "medium");
        assert_eq!(risk_band(0.29), "low");
    }
}
