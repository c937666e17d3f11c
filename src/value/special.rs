//! The special functions the value models need: ln Γ (libm's, musl's port), log-sum-exp
//! forms that never overflow, and the Gauss hypergeometric function ₂F₁ by its series.

/// ln Γ(x) for x > 0.
pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln(eᵃ + eᵇ) without overflow; −∞ when both are.
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// ln(eᵃ − eᵇ) for a ≥ b; −∞ when they are equal.
pub fn log_sub_exp(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a + (-(b - a).exp()).ln_1p()
}

/// Terms of a ₂F₁ series before it is given up as not converging (|z| near 1).
const MAX_TERMS: usize = 1_000_000;

/// ₂F₁(a, b; c; z) for 0 ≤ z < 1 and c > 0, summed term by term until a term no longer
/// changes the sum; `None` if it does not settle within a million terms.
///
/// Callers arrange small numerator parameters first (Euler's transformation, see
/// [`super::bgnbd`]) so that the terms do not grow with a customer's purchase count.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..MAX_TERMS {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() <= f64::EPSILON * 0.5 * sum.abs() {
            return Some(sum);
        }
        if !sum.is_finite() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z.
        for z in [0.1, 0.5, 0.9, 0.99] {
            let closed = -(1.0f64 - z).ln() / z;
            let series = hyp2f1(1.0, 1.0, 2.0, z).unwrap();
            assert!(
                (series - closed).abs() < 1e-12 * closed,
                "z {z}: {series} {closed}"
            );
        }
        // ₂F₁(a, b; b; z) = (1 − z)^−a.
        let series = hyp2f1(2.5, 3.0, 3.0, 0.4).unwrap();
        assert!((series - 0.6f64.powf(-2.5)).abs() < 1e-12);
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 0.0), Some(1.0));
    }

    #[test]
    fn log_sums_do_not_overflow() {
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(
            log_add_exp(f64::NEG_INFINITY, f64::NEG_INFINITY),
            f64::NEG_INFINITY
        );
        assert!(
            (log_sub_exp(1000.0, 1000.0 + (0.5f64).ln()) - (1000.0 + 0.5f64.ln())).abs() < 1e-9
        );
        assert_eq!(log_sub_exp(3.0, 3.0), f64::NEG_INFINITY);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-14);
    }
}
