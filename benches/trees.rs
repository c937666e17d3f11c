//! Decision trees in-process: ecrm's CART against linfa-trees 0.8.1, on the same matrix.
//!
//! Data: `ml_sklearn.py gen DIR && ml_sklearn.py split DIR` (../shared/peers) writes
//! DIR/clf_train.parquet (800,000 rows) and DIR/clf_test.parquet (200,000 rows), 20 numeric
//! features `x0..x19` and `label`. Both trees get depth 8; the fit is timed alone (data
//! already in memory), and the held-out ROC AUC is computed from ecrm's probabilities and,
//! since linfa-trees gives none, from linfa's hard labels.
//!
//! Run (release settings; not run in CI, which only compiles it through clippy):
//!
//! ```sh
//! cargo bench --bench trees -- /tmp/ml 8
//! ```

use std::time::Instant;

use linfa::prelude::*;
use ndarray::Array1;

fn load(path: &std::path::Path) -> (ndarray::Array2<f64>, Vec<usize>) {
    let engine = ecrm::olap::EngineOptions::default();
    let rt = ecrm::olap::runtime(None).expect("runtime");
    let (schema, batches) = rt
        .block_on(ecrm::olap::read_in_order(path, None, &engine))
        .expect("read");
    let features: Vec<String> = (0..20).map(|i| format!("x{i}")).collect();
    let x = ecrm::features::bridge::matrix(&schema, &batches, &features, "bench").expect("x");
    let y = ecrm::features::bridge::matrix(&schema, &batches, &["label".into()], "bench")
        .expect("label");
    (
        x.as_standard_layout().to_owned(),
        y.column(0).iter().map(|&v| v as usize).collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = std::path::PathBuf::from(args.first().map_or("/tmp/ml", String::as_str));
    let depth: usize = args.get(1).and_then(|d| d.parse().ok()).unwrap_or(8);
    let (x, y) = load(&dir.join("clf_train.parquet"));
    let (xt, yt) = load(&dir.join("clf_test.parquet"));
    let labels: Vec<bool> = yt.iter().map(|&v| v == 1).collect();
    println!(
        "train {} × {}, test {}; depth {depth}",
        x.nrows(),
        x.ncols(),
        xt.nrows()
    );

    let params = ecrm::churn::tree::TreeParams::default()
        .max_depth(depth)
        .check()
        .expect("params");
    let data = DatasetBase::new(x.view(), Array1::from(y.clone()));
    let t = Instant::now();
    let ours = params.fit(&data).expect("fit");
    let fit_s = t.elapsed().as_secs_f64();
    let p1 = ecrm::churn::churn_probability(&ours, &xt);
    let auc = ecrm::churn::metrics::roc_auc(&p1, &labels).unwrap_or(f64::NAN);
    println!("ecrm CART      fit {fit_s:.2} s  held-out ROC AUC {auc:.4} (probabilities)");

    let data = DatasetBase::new(x.clone(), Array1::from(y));
    let t = Instant::now();
    let theirs = linfa_trees::DecisionTree::params()
        .max_depth(Some(depth))
        .fit(&data)
        .expect("linfa fit");
    let fit_s = t.elapsed().as_secs_f64();
    let hard: Vec<f64> = theirs.predict(&xt).iter().map(|&c| c as f64).collect();
    let auc = ecrm::churn::metrics::roc_auc(&hard, &labels).unwrap_or(f64::NAN);
    println!("linfa-trees    fit {fit_s:.2} s  held-out ROC AUC {auc:.4} (hard labels only)");
}
