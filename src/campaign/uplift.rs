//! Uplift models: whom a campaign persuades, learnt from a randomised test with ecrm's own
//! trees ([`crate::churn::tree`]).
//!
//! - Input: rows of a randomised test, each with its arm (treatment or control), a binary
//!   outcome and features ([`TestRows`]): a file's columns (`--input`, categories one-hot
//!   encoded by [`Encoder`]), or a campaign's contacts with the feature mart as of the
//!   campaign (see `jobs`).
//! - Methods ([`UpliftMethod`]): **two-model** (default): one tree on the treated rows, one
//!   on the control rows; uplift = P(outcome | treated) − P(outcome | control). **Class
//!   transformation** (Jaskowski & Jaroszewicz 2012): one tree on z = [outcome = treated];
//!   uplift = 2·P(z) − 1, which holds when both arms are equally large, so the larger arm is
//!   subsampled (seeded) to the smaller's size before fitting.
//! - Evaluation on held-out rows (`--test FILE`, else a seeded 30 % hold-out stratified by arm
//!   and outcome): the Qini curve, `qini_auc_score` and `uplift_auc_score` as scikit-uplift
//!   computes them ([`super::qini`]), and uplift by decile of predicted uplift (treated and
//!   control rates in each tenth, highest predicted uplift first). The model in the file is
//!   the one measured: trained on the other rows (on every row with `--test`).
//! - Output: a versioned JSON model file ([`UpliftModelFile`]) with the encoder, the trees,
//!   the parameters, the source and the metrics; scores per row: uplift, p_treated,
//!   p_control and the group: **persuadable** (uplift above the margin), **sleeping dog**
//!   (below minus the margin), else **sure thing** (would buy anyway: p_control ≥ 0.5) or
//!   **lost cause**; a class-transformation model has no p_control, so its rows within the
//!   margin are **unmoved**.
//! - Parameters ([`UpliftTrainParams`]): method, max depth (5), min samples per leaf (1),
//!   seed (42), hold-out share (0.3), margin (0.01).

use std::borrow::Cow;
use std::path::Path;

use linfa::ParamGuard;
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use super::qini::{self, Curve};
use crate::churn::tree::{FittedTree, TreeParams, ValidTreeParams};
use crate::churn::{fit_tree, stratified_holdout};
use crate::error::{Error, Result};
use crate::features::bridge::Encoder;

pub const MODEL_FORMAT: &str = "ecrm-uplift-model";
pub const MODEL_VERSION: u32 = 1;

crate::choices! {
    /// How uplift is modelled.
    pub enum UpliftMethod {
        /// One tree per arm; uplift is the difference of their probabilities.
        TwoModel = "two-model",
        /// One tree on "outcome equals treatment" over balanced arms; uplift = 2·P − 1.
        ClassTransformation = "class-transformation",
    }
    default = TwoModel;
}

/// `ecrm campaign uplift train`'s options and an `uplift-train` stage's keys.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpliftTrainParams {
    #[arg(long, value_enum, default_value_t)]
    pub method: UpliftMethod,
    /// Maximum depth of each tree.
    #[arg(long, default_value_t = 5)]
    pub max_depth: usize,
    /// Fewest rows in a leaf.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    /// Seed of the hold-out and of class transformation's balancing.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the rows held out to measure the model (without --test).
    #[arg(long, default_value_t = 0.3)]
    pub test_share: f64,
    /// Uplift beyond which a customer is persuadable (or, below minus it, a sleeping dog).
    #[arg(long, default_value_t = 0.01)]
    pub margin: f64,
}

impl Default for UpliftTrainParams {
    fn default() -> Self {
        Self {
            method: UpliftMethod::TwoModel,
            max_depth: 5,
            min_samples_leaf: 1,
            seed: 42,
            test_share: 0.3,
            margin: 0.01,
        }
    }
}

impl UpliftTrainParams {
    /// The tree parameters, checked, and the other values' ranges.
    pub fn check(&self) -> Result<ValidTreeParams> {
        if !(self.test_share > 0.0 && self.test_share < 1.0) {
            return Err(Error::param(
                "test_share",
                format!("{} is not a share between 0 and 1", self.test_share),
            ));
        }
        if !(0.0..1.0).contains(&self.margin) {
            return Err(Error::param(
                "margin",
                format!("{} is not an uplift between 0 and 1", self.margin),
            ));
        }
        TreeParams::default()
            .max_depth(self.max_depth)
            .min_samples_leaf(self.min_samples_leaf)
            .check()
    }
}

/// A randomised test's rows, encoded.
#[derive(Debug, Clone)]
pub struct TestRows {
    pub x: Array2<f64>,
    pub treated: Vec<bool>,
    pub outcome: Vec<bool>,
}

impl TestRows {
    fn select(&self, rows: &[usize]) -> TestRows {
        TestRows {
            x: self.x.select(Axis(0), rows),
            treated: rows.iter().map(|&i| self.treated[i]).collect(),
            outcome: rows.iter().map(|&i| self.outcome[i]).collect(),
        }
    }

    /// The rows of one arm.
    fn arm(&self, treated: bool) -> TestRows {
        let rows: Vec<usize> = (0..self.treated.len())
            .filter(|&i| self.treated[i] == treated)
            .collect();
        self.select(&rows)
    }

    /// Checks there is something to learn from: both arms, both outcomes.
    pub fn check(&self, source: &str) -> Result<()> {
        let n_t = self.treated.iter().filter(|&&t| t).count();
        let n_c = self.treated.len() - n_t;
        if n_t == 0 || n_c == 0 {
            return Err(Error::input(
                source,
                format!(
                    "has {n_t} treated and {n_c} control rows; an uplift model needs both arms"
                ),
            ));
        }
        if self.outcome.iter().all(|&y| y) || !self.outcome.iter().any(|&y| y) {
            return Err(Error::input(
                source,
                "has one outcome on every row: nothing to learn",
            ));
        }
        Ok(())
    }
}

/// Uplift by decile of predicted uplift, highest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    pub decile: u32,
    pub treated: u64,
    pub control: u64,
    pub treated_rate: Option<f64>,
    pub control_rate: Option<f64>,
    pub uplift: Option<f64>,
    pub mean_predicted_uplift: f64,
}

/// How the model did on held-out rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub test_rows: u64,
    /// scikit-uplift's `qini_auc_score` (None when the perfect curve is no better than random).
    pub qini_auc: Option<f64>,
    pub uplift_auc: Option<f64>,
    pub deciles: Vec<Decile>,
    /// The Qini curve, at most 101 points (every point when there are that few).
    pub qini_curve: Curve,
}

/// Where the training rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `file` or `campaign`.
    pub kind: String,
    pub input: String,
    pub arm: String,
    pub control: String,
    pub treatment: Option<String>,
    pub outcome: String,
    /// The id column of a file, if any.
    pub id: Option<String>,
    pub rows: u64,
    pub treated: u64,
    /// Rows left out: another treatment arm's (a file with `--treatment`), or contacts of
    /// customers with no purchase before their campaign (not in the mart). Model files
    /// written before the field's rename call it `other_arms`.
    #[serde(alias = "other_arms")]
    pub left_out: u64,
    pub test_input: Option<String>,
    /// A campaign's as-of date (its features' point in time).
    pub as_of: Option<String>,
}

/// The model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpliftModelFile {
    pub format: String,
    pub version: u32,
    pub ecrm_version: String,
    pub created_at: String,
    pub method: UpliftMethod,
    pub params: UpliftTrainParams,
    pub source: Source,
    pub encoder: Encoder,
    pub feature_names: Vec<String>,
    pub metrics: Metrics,
    /// Two-model: [treated, control]; class transformation: [the z tree].
    pub trees: Vec<FittedTree>,
}

/// A customer's predicted effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub uplift: f64,
    pub p_treated: Option<f64>,
    pub p_control: Option<f64>,
}

/// The persuadable / sure thing / lost cause / sleeping dog (unmoved) group of a prediction.
pub fn group(p: &Prediction, margin: f64) -> &'static str {
    if p.uplift > margin {
        "persuadable"
    } else if p.uplift < -margin {
        "sleeping dog"
    } else {
        match p.p_control {
            Some(c) if c >= 0.5 => "sure thing",
            Some(_) => "lost cause",
            None => "unmoved",
        }
    }
}

/// Class 1 probabilities of a tree (0 when it saw only class 0).
fn positive(tree: &FittedTree, x: &Array2<f64>) -> Vec<f64> {
    crate::churn::churn_probability(tree, x)
}

impl UpliftModelFile {
    /// Predictions for encoded rows.
    pub fn predict(&self, x: &Array2<f64>) -> Vec<Prediction> {
        match self.method {
            UpliftMethod::TwoModel => {
                let (t, c) = (positive(&self.trees[0], x), positive(&self.trees[1], x));
                t.iter()
                    .zip(&c)
                    .map(|(&t, &c)| Prediction {
                        uplift: t - c,
                        p_treated: Some(t),
                        p_control: Some(c),
                    })
                    .collect()
            }
            UpliftMethod::ClassTransformation => positive(&self.trees[0], x)
                .into_iter()
                .map(|z| Prediction {
                    uplift: 2.0 * z - 1.0,
                    p_treated: None,
                    p_control: None,
                })
                .collect(),
        }
    }

    /// Reads and checks a model file: a damaged or hand-edited one is an error naming the
    /// field, never a panic.
    pub fn read(path: &Path) -> Result<UpliftModelFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: UpliftModelFile = serde_json::from_str(&text)
            .map_err(|e| Error::input(path, format!("not an ecrm uplift model file: {e}")))?;
        if m.format != MODEL_FORMAT || !(1..=MODEL_VERSION).contains(&m.version) {
            return Err(Error::input(
                path,
                format!(
                    "model format {} version {}; this ecrm reads {MODEL_FORMAT} versions 1 to {MODEL_VERSION}",
                    m.format, m.version
                ),
            ));
        }
        m.check()
            .map_err(|why| Error::input(path, format!("not a valid uplift model: {why}")))?;
        Ok(m)
    }

    fn check(&self) -> std::result::Result<(), String> {
        self.encoder.check()?;
        let names = self.encoder.feature_names();
        if names != self.feature_names {
            return Err("feature_names are not the encoder's features".into());
        }
        let want = match self.method {
            UpliftMethod::TwoModel => 2,
            UpliftMethod::ClassTransformation => 1,
        };
        if self.trees.len() != want {
            return Err(format!(
                "trees: {} trees; method {} has {want}",
                self.trees.len(),
                self.method
            ));
        }
        for (i, t) in self.trees.iter().enumerate() {
            if t.n_features != names.len() {
                return Err(format!(
                    "trees[{i}].n_features: {} is not the encoder's {} features",
                    t.n_features,
                    names.len()
                ));
            }
            t.check().map_err(|e| format!("trees[{i}]: {e}"))?;
        }
        Ok(())
    }
}

/// A seeded hold-out stratified by arm and outcome: true for the held-out rows.
fn holdout(rows: &TestRows, share: f64, seed: u64) -> Vec<bool> {
    let mut out = vec![false; rows.treated.len()];
    for (k, arm) in [false, true].into_iter().enumerate() {
        let idx: Vec<usize> = (0..out.len()).filter(|&i| rows.treated[i] == arm).collect();
        let y: Vec<bool> = idx.iter().map(|&i| rows.outcome[i]).collect();
        let held = stratified_holdout(&y, share, seed.wrapping_add(k as u64));
        for (j, &i) in idx.iter().enumerate() {
            out[i] = held[j];
        }
    }
    out
}

/// Fits the trees of `method` on `train`.
fn fit(
    method: UpliftMethod,
    tree: &ValidTreeParams,
    train: &TestRows,
    seed: u64,
) -> Result<Vec<FittedTree>> {
    match method {
        UpliftMethod::TwoModel => {
            // The two trees are independent: one per core.
            let (t, c) = rayon::join(
                || {
                    let t = train.arm(true);
                    fit_tree(tree, t.x, &t.outcome)
                },
                || {
                    let c = train.arm(false);
                    fit_tree(tree, c.x, &c.outcome)
                },
            );
            Ok(vec![t?, c?])
        }
        UpliftMethod::ClassTransformation => {
            // Equal arms: the larger one subsampled, seeded, to the smaller's size.
            let mut rng = Xoshiro256Plus::seed_from_u64(seed);
            let mut arms: Vec<Vec<usize>> = [true, false]
                .iter()
                .map(|&a| {
                    (0..train.treated.len())
                        .filter(|&i| train.treated[i] == a)
                        .collect()
                })
                .collect();
            let n = arms[0].len().min(arms[1].len());
            let mut rows = Vec::with_capacity(2 * n);
            for arm in &mut arms {
                arm.shuffle(&mut rng);
                arm.truncate(n);
                rows.extend(arm.iter().copied());
            }
            rows.sort_unstable();
            let balanced = train.select(&rows);
            let z: Vec<bool> = balanced
                .outcome
                .iter()
                .zip(&balanced.treated)
                .map(|(y, t)| y == t)
                .collect();
            Ok(vec![fit_tree(tree, balanced.x, &z)?])
        }
    }
}

/// Uplift by decile: rows ranked by predicted uplift (highest first), cut into ten parts of
/// equal size (the first parts one row larger when the count does not divide).
fn deciles(rows: &TestRows, uplift: &[f64]) -> Vec<Decile> {
    let mut order: Vec<usize> = (0..uplift.len()).collect();
    order.sort_by(|&a, &b| uplift[b].total_cmp(&uplift[a]));
    let n = order.len();
    let mut out = Vec::new();
    let mut start = 0;
    for d in 0..10 {
        let size = n / 10 + usize::from(d < n % 10);
        let part = &order[start..start + size];
        start += size;
        let count = |arm: bool| {
            let rows_of: Vec<&usize> = part.iter().filter(|&&i| rows.treated[i] == arm).collect();
            let buyers = rows_of.iter().filter(|&&&i| rows.outcome[i]).count();
            (rows_of.len() as u64, buyers as f64)
        };
        let ((nt, bt), (nc, bc)) = (count(true), count(false));
        let rate = |b: f64, m: u64| (m > 0).then(|| b / m as f64);
        let (tr, cr) = (rate(bt, nt), rate(bc, nc));
        out.push(Decile {
            decile: d as u32 + 1,
            treated: nt,
            control: nc,
            treated_rate: tr,
            control_rate: cr,
            uplift: tr.zip(cr).map(|(a, b)| a - b),
            mean_predicted_uplift: if size > 0 {
                part.iter().map(|&i| uplift[i]).sum::<f64>() / size as f64
            } else {
                0.0
            },
        });
    }
    out
}

/// At most `keep` points of a curve, evenly spaced by index, the last always kept.
fn thin(c: Curve, keep: usize) -> Curve {
    if c.len() <= keep {
        return c;
    }
    let step = (c.len() - 1) as f64 / (keep - 1) as f64;
    (0..keep)
        .map(|k| c[((k as f64 * step).round() as usize).min(c.len() - 1)])
        .collect()
}

/// How `trees` of `method` do on `test`.
fn measure(model: &UpliftModelFile, test: &TestRows) -> Metrics {
    let uplift: Vec<f64> = model.predict(&test.x).iter().map(|p| p.uplift).collect();
    let (y, t) = (&test.outcome, &test.treated);
    let ((qini_auc, uplift_auc), (deciles, qini_curve)) = rayon::join(
        || {
            rayon::join(
                || qini::qini_auc_score(y, &uplift, t),
                || qini::uplift_auc_score(y, &uplift, t),
            )
        },
        || {
            rayon::join(
                || deciles(test, &uplift),
                || thin(qini::qini_curve(y, &uplift, t), 101),
            )
        },
    );
    Metrics {
        test_rows: test.treated.len() as u64,
        qini_auc,
        uplift_auc,
        deciles,
        qini_curve,
    }
}

/// Trains on `rows` (held-out rows measured, unless `test` is given: then every row trains
/// and `test` measures) and returns the model file.
pub fn train(
    params: &UpliftTrainParams,
    encoder: Encoder,
    rows: &TestRows,
    test: Option<&TestRows>,
    source: Source,
) -> Result<UpliftModelFile> {
    let tree = params.check()?;
    rows.check(&source.input)?;
    let (train_rows, test_rows) = match test {
        Some(t) => (Cow::Borrowed(rows), Cow::Borrowed(t)),
        None => {
            let held = holdout(rows, params.test_share, params.seed);
            let pick = |want: bool| -> Vec<usize> {
                (0..held.len()).filter(|&i| held[i] == want).collect()
            };
            (
                Cow::Owned(rows.select(&pick(false))),
                Cow::Owned(rows.select(&pick(true))),
            )
        }
    };
    train_rows.check(&source.input)?;
    let trees = fit(params.method, &tree, &train_rows, params.seed)?;
    let mut model = UpliftModelFile {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        ecrm_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339(),
        method: params.method,
        params: params.clone(),
        source,
        feature_names: encoder.feature_names(),
        encoder,
        metrics: Metrics {
            test_rows: 0,
            qini_auc: None,
            uplift_auc: None,
            deciles: Vec::new(),
            qini_curve: Vec::new(),
        },
        trees,
    };
    model.metrics = measure(&model, &test_rows);
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model file written before `other_arms` became `left_out` still reads.
    #[test]
    fn an_older_source_field_name_still_reads() {
        let old = r#"{"kind":"file","input":"t.csv","arm":"segment","control":"No E-Mail",
            "treatment":null,"outcome":"visit","id":null,"rows":10,"treated":5,
            "other_arms":3,"test_input":null,"as_of":null}"#;
        let s: Source = serde_json::from_str(old).unwrap();
        assert_eq!(s.left_out, 3);
        let now = serde_json::to_value(&s).unwrap();
        assert_eq!(now["left_out"], 3);
        assert!(now.get("other_arms").is_none());
    }
}
