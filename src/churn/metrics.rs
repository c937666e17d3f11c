//! Evaluation of a binary classifier from scores: ROC AUC, PR AUC (average precision), the
//! confusion matrix at a threshold, and the cumulative gains / lift table by decile with the
//! KS statistic.
//!
//! - Input: a score per row (higher = more likely positive) and the true label.
//! - Ties in scores are handled as a group everywhere, so a model that gives every row the
//!   same score has a ROC AUC of exactly 0.5 and a KS of 0.
//! - ROC AUC is the Mann–Whitney statistic with average ranks for ties; PR AUC is scikit-learn's
//!   average precision: Σ (Rₙ − Rₙ₋₁)·Pₙ over the distinct thresholds, highest first.
//! - Gains: rows sorted by descending score (equal scores keep input order) and cut into ten
//!   groups of ⌊n/10⌋ or ⌈n/10⌉ rows; per decile the positives captured, the cumulative share
//!   of all positives (the gain) and the lift over the base rate. KS is the largest gap
//!   between the cumulative shares of positives and negatives over every distinct threshold.

use serde::{Deserialize, Serialize};

/// Row order by descending score (stable: equal scores keep input order).
fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// ROC AUC with average ranks for ties; `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len();
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = n - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum += avg * idx[i..=j].iter().filter(|&&r| labels[r]).count() as f64;
        i = j + 1;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Most points a stored ROC curve keeps (enough to draw it; the AUC is computed exactly).
pub const ROC_POINTS: usize = 201;

/// The ROC curve: (false positive rate, true positive rate) after each distinct score,
/// highest first, from (0, 0) to (1, 1); tied scores make one diagonal step, so the
/// trapezoid area under the full curve is the ROC AUC. Longer curves keep every k-th point
/// and the last, at most [`ROC_POINTS`]. Empty without both classes.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<[f64; 2]> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return Vec::new();
    }
    let idx = by_score_desc(scores);
    let mut curve = vec![[0.0, 0.0]];
    let (mut tp, mut fp, mut i) = (0usize, 0usize, 0);
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.push([fp as f64 / neg as f64, tp as f64 / pos as f64]);
    }
    if curve.len() > ROC_POINTS {
        let step = curve.len().div_ceil(ROC_POINTS - 1);
        let last = *curve.last().expect("the curve has points");
        curve = curve.into_iter().step_by(step).collect();
        curve.push(last);
    }
    curve
}

/// Average precision (the area under the precision–recall curve as scikit-learn computes it);
/// `None` without positives.
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let idx = by_score_desc(scores);
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        // A threshold takes every row with the same score at once.
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let recall = tp as f64 / pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    Some(ap)
}

/// Counts and rates at one threshold (a row is predicted positive when its score ≥ threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub threshold: f64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The confusion matrix and its rates at `threshold` (precision and F1 are 0 when nothing is
/// predicted positive).
pub fn confusion(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Confusion {
        threshold,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fn_,
        accuracy: ratio(tp + tn, tp + fp + tn + fn_),
        precision,
        recall,
        f1,
    }
}

/// One decile of the gains table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    /// 1 = the highest scores.
    pub decile: u32,
    pub rows: u64,
    pub positives: u64,
    pub cumulative_positives: u64,
    /// Share of all positives found in deciles 1..=this one (the cumulative gain).
    pub cumulative_gain: f64,
    /// Positive rate of this decile over the base rate.
    pub lift: f64,
    /// Positive rate of deciles 1..=this one over the base rate.
    pub cumulative_lift: f64,
}

/// The cumulative gains / lift table by decile (fewer deciles when there are fewer than ten
/// rows).
pub fn gains(scores: &[f64], labels: &[bool]) -> Vec<Decile> {
    let n = scores.len();
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let base = if n == 0 { 0.0 } else { pos / n as f64 };
    let idx = by_score_desc(scores);
    let mut out = Vec::new();
    let (mut cum_rows, mut cum_pos) = (0u64, 0u64);
    for d in 0..10 {
        let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
        if hi == lo {
            continue;
        }
        let p = idx[lo..hi].iter().filter(|&&i| labels[i]).count() as u64;
        cum_rows += (hi - lo) as u64;
        cum_pos += p;
        let rate = |p: u64, r: u64| {
            if base > 0.0 {
                p as f64 / r as f64 / base
            } else {
                0.0
            }
        };
        out.push(Decile {
            decile: d as u32 + 1,
            rows: (hi - lo) as u64,
            positives: p,
            cumulative_positives: cum_pos,
            cumulative_gain: if pos > 0.0 { cum_pos as f64 / pos } else { 0.0 },
            lift: rate(p, (hi - lo) as u64),
            cumulative_lift: rate(cum_pos, cum_rows),
        });
    }
    out
}

/// The Kolmogorov–Smirnov statistic: the largest TPR − FPR over every distinct threshold.
pub fn ks(scores: &[f64], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.0;
    }
    let idx = by_score_desc(scores);
    let (mut tp, mut fp, mut best) = (0.0, 0.0, 0.0f64);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        best = best.max(tp / pos - fp / neg);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    // Scores and labels small enough to compute by hand:
    //   score 0.9 0.8 0.8 0.6 0.4 0.2
    //   label  1   1   0   1   0   0
    const S: [f64; 6] = [0.9, 0.8, 0.8, 0.6, 0.4, 0.2];
    const L: [bool; 6] = [true, true, false, true, false, false];

    #[test]
    fn the_roc_curves_area_is_the_auc_with_ties_as_diagonals() {
        let curve = roc_curve(&S, &L);
        assert_eq!(curve.first(), Some(&[0.0, 0.0]));
        assert_eq!(curve.last(), Some(&[1.0, 1.0]));
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0)
            .sum();
        assert!((area - roc_auc(&S, &L).unwrap()).abs() < 1e-12);
        assert!(roc_curve(&[0.1, 0.2], &[true, true]).is_empty());
        // A long curve is thinned to at most ROC_POINTS points, ending at (1, 1).
        let n = 10_000;
        let scores: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let long = roc_curve(&scores, &labels);
        assert!(long.len() <= ROC_POINTS && long.len() > 100);
        assert_eq!(long.last(), Some(&[1.0, 1.0]));
    }

    #[test]
    fn roc_auc_counts_ties_as_half() {
        // Pairs (positive, negative) ordered right: 0.9 beats all 3 negatives (3); 0.8 beats
        // 0.4 and 0.2 and ties 0.8 (2.5); 0.6 beats 0.4 and 0.2 (2). (3 + 2.5 + 2) / 9.
        assert!((roc_auc(&S, &L).unwrap() - 7.5 / 9.0).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.3; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn average_precision_takes_tied_scores_together() {
        // Thresholds 0.9: P=1, R=1/3; 0.8 (two rows): P=2/3, R=2/3; 0.6: P=3/4, R=1.
        let ap = 1.0 / 3.0 * 1.0 + 1.0 / 3.0 * (2.0 / 3.0) + 1.0 / 3.0 * 0.75;
        assert!((pr_auc(&S, &L).unwrap() - ap).abs() < 1e-12);
    }

    #[test]
    fn confusion_at_a_threshold() {
        let c = confusion(&S, &L, 0.7);
        assert_eq!(
            (
                c.true_positives,
                c.false_positives,
                c.true_negatives,
                c.false_negatives
            ),
            (2, 1, 2, 1)
        );
        assert!((c.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.accuracy - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn ks_and_gains_by_hand() {
        // TPR − FPR after each threshold: 1/3, 2/3−1/3, 1−1/3, 1−2/3, 1−1 → max 2/3.
        assert!((ks(&S, &L) - 2.0 / 3.0).abs() < 1e-12);
        let scores: Vec<f64> = (0..20).map(|i| 1.0 - i as f64 / 20.0).collect();
        let labels: Vec<bool> = (0..20).map(|i| i % 4 == 0).collect(); // 5 positives
        let g = gains(&scores, &labels);
        assert_eq!(g.len(), 10);
        assert_eq!(g[0].rows, 2);
        assert_eq!(g[0].positives, 1); // rows 0 and 1
        assert!((g[0].lift - 0.5 / 0.25).abs() < 1e-12);
        assert_eq!(g[9].cumulative_positives, 5);
        assert!((g[9].cumulative_gain - 1.0).abs() < 1e-12);
        assert!((g[9].cumulative_lift - 1.0).abs() < 1e-12);
    }
}
