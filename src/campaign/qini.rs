//! Uplift metrics as scikit-uplift 0.5.1 defines them (`sklift.metrics`), on binary outcomes
//! and treatment flags, written from its definitions:
//!
//! - Customers are ranked by predicted uplift, highest first; the curves have a point at the
//!   end of every run of equal scores (ties move together), and start at (0, 0).
//! - Qini curve: at the top n, `Y_t(n) − Y_c(n) · N_t(n) / N_c(n)` (responders among treated,
//!   minus control responders scaled to the treated count; 0 where no control is ranked yet).
//! - Uplift curve: `(Y_t(n) / N_t(n) − Y_c(n) / N_c(n)) · n` (a rate of 0 for an empty arm).
//! - Perfect curves: the Qini curve of the score y·t − y·(1 − t) (treated responders first,
//!   control responders last: "negative effects" kept, scikit-uplift's default); the uplift
//!   curve of 2·[y = t] + (y if control responders outnumber treated non-responders, else t).
//! - `qini_auc_score` / `uplift_auc_score`: (area under the curve − area under the random
//!   line from (0, 0) to the curve's end) / (the same for the perfect curve), trapezoids.
//!
//! The tests check these against values scikit-uplift itself printed.

/// Points (n, value) of a curve.
pub type Curve = Vec<(f64, f64)>;

/// The ranks' cumulative counts at the end of each run of equal scores: (n, treated,
/// treated responders, control responders).
fn thresholds(y: &[bool], score: &[f64], t: &[bool]) -> Vec<(f64, f64, f64, f64)> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut n_t, mut y_t, mut y_c) = (0.0, 0.0, 0.0);
    let mut out = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if t[i] {
            n_t += 1.0;
            y_t += f64::from(u8::from(y[i]));
        } else {
            y_c += f64::from(u8::from(y[i]));
        }
        let last_of_run = order.get(k + 1).is_none_or(|&j| score[j] != score[i]);
        if last_of_run {
            out.push(((k + 1) as f64, n_t, y_t, y_c));
        }
    }
    out
}

/// A curve from its per-threshold value, starting at (0, 0).
fn curve(points: Vec<(f64, f64, f64, f64)>, value: impl Fn(f64, f64, f64, f64) -> f64) -> Curve {
    let mut c: Curve = points
        .into_iter()
        .map(|(n, n_t, y_t, y_c)| (n, value(n, n_t, y_t, y_c)))
        .collect();
    if c.first().is_none_or(|p| *p != (0.0, 0.0)) {
        c.insert(0, (0.0, 0.0));
    }
    c
}

/// The Qini curve of `score`.
pub fn qini_curve(y: &[bool], score: &[f64], t: &[bool]) -> Curve {
    curve(thresholds(y, score, t), |n, n_t, y_t, y_c| {
        let n_c = n - n_t;
        y_t - if n_c > 0.0 { y_c * n_t / n_c } else { 0.0 }
    })
}

/// The uplift curve of `score`.
pub fn uplift_curve(y: &[bool], score: &[f64], t: &[bool]) -> Curve {
    curve(thresholds(y, score, t), |n, n_t, y_t, y_c| {
        let n_c = n - n_t;
        let rate = |r: f64, m: f64| if m > 0.0 { r / m } else { 0.0 };
        (rate(y_t, n_t) - rate(y_c, n_c)) * n
    })
}

/// The best possible Qini curve (negative effects kept).
pub fn perfect_qini_curve(y: &[bool], t: &[bool]) -> Curve {
    let score: Vec<f64> = y
        .iter()
        .zip(t)
        .map(|(&y, &t)| match (y, t) {
            (true, true) => 1.0,
            (true, false) => -1.0,
            _ => 0.0,
        })
        .collect();
    qini_curve(y, &score, t)
}

/// The best possible uplift curve.
pub fn perfect_uplift_curve(y: &[bool], t: &[bool]) -> Curve {
    let control_responders = y.iter().zip(t).filter(|(y, t)| **y && !**t).count();
    let treated_non_responders = y.iter().zip(t).filter(|(y, t)| !**y && **t).count();
    let by_outcome = control_responders > treated_non_responders;
    let score: Vec<f64> = y
        .iter()
        .zip(t)
        .map(|(&y, &t)| {
            let summand = if by_outcome { y } else { t };
            2.0 * f64::from(u8::from(y == t)) + f64::from(u8::from(summand))
        })
        .collect();
    uplift_curve(y, &score, t)
}

/// Trapezoidal area under a curve.
fn area(c: &Curve) -> f64 {
    c.windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// (area − random) / (perfect area − random), the random line joining (0, 0) to the perfect
/// curve's end. None when the perfect curve is no better than random (nothing to normalise by).
fn normalised(actual: &Curve, perfect: &Curve) -> Option<f64> {
    let &(x, v) = perfect.last()?;
    let random = x * v / 2.0;
    let best = area(perfect) - random;
    (best != 0.0).then(|| (area(actual) - random) / best)
}

/// scikit-uplift's `qini_auc_score` (negative effects kept).
pub fn qini_auc_score(y: &[bool], score: &[f64], t: &[bool]) -> Option<f64> {
    normalised(&qini_curve(y, score, t), &perfect_qini_curve(y, t))
}

/// scikit-uplift's `uplift_auc_score`.
pub fn uplift_auc_score(y: &[bool], score: &[f64], t: &[bool]) -> Option<f64> {
    normalised(&uplift_curve(y, score, t), &perfect_uplift_curve(y, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bools(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&b| b == 1).collect()
    }

    /// scikit-uplift's own test cases (`sklift/tests/test_metrics.py`).
    #[test]
    fn scikit_uplift_test_cases() {
        let (y, u, t) = (bools(&[0, 1]), [0.1, 0.3], bools(&[1, 0]));
        assert_eq!(qini_auc_score(&y, &u, &t), Some(1.0));
        assert_eq!(uplift_auc_score(&y, &u, &t), Some(0.0));
        let (y, t) = (bools(&[1, 0]), bools(&[0, 1]));
        assert_eq!(qini_auc_score(&y, &u, &t), Some(1.0));
        assert_eq!(uplift_auc_score(&y, &u, &t), Some(1.0));
    }

    /// 40 random rows with tied scores; the expected values are what scikit-uplift 0.5.1
    /// printed for them (`qini_curve`, `qini_auc_score`, `uplift_auc_score`).
    #[test]
    fn forty_random_rows_match_scikit_uplift() {
        let y = bools(&[
            1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0,
            1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1,
        ]);
        let t = bools(&[
            0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1,
            1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0,
        ]);
        let u = [
            -0.1, 0.1, 0.1, -1.2, 0.1, 1.4, -1.5, 0.9, 0.1, -0.6, 2.0, 0.8, -1.2, 0.1, 0.6, -0.2,
            0.7, -0.1, 0.7, 1.4, -0.7, 0.2, -0.5, 0.1, -1.2, -0.6, -0.2, 0.9, 1.1, -1.3, -0.8, 0.6,
            -2.0, -0.5, -0.1, 1.3, 0.7, -0.3, -0.4, -0.3,
        ];
        let c = qini_curve(&y, &u, &t);
        let xs: Vec<f64> = c.iter().map(|p| p.0).collect();
        assert_eq!(
            xs,
            [
                0., 1., 3., 4., 5., 7., 8., 11., 13., 14., 20., 23., 25., 27., 28., 30., 32., 33.,
                34., 37., 38., 39., 40.
            ]
        );
        let want = [
            0.0,
            0.0,
            1.0,
            0.0,
            -0.5,
            0.25,
            1.0,
            1.8,
            0.666666666667,
            1.0,
            2.545454545455,
            2.153846153846,
            2.285714285714,
            2.4,
            1.933333333333,
            1.882352941176,
            2.526315789474,
            2.15,
            2.7,
            3.380952380952,
            3.904761904762,
            3.5,
            4.0,
        ];
        for (p, w) in c.iter().zip(want) {
            assert!((p.1 - w).abs() < 1e-9, "{p:?} vs {w}");
        }
        let q = qini_auc_score(&y, &u, &t).unwrap();
        assert!((q - -0.028410341033).abs() < 1e-9, "{q}");
        let a = uplift_auc_score(&y, &u, &t).unwrap();
        assert!((a - -0.046468586146).abs() < 1e-9, "{a}");
    }
}
