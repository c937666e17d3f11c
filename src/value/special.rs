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

/// ₂F₁(a, b; c; z) for 0 ≤ z < 1; `None` if it cannot be summed.
///
/// Up to z = 0.9 the series, term by term until a term no longer changes the sum. Beyond, the
/// series converges like zᵏ (a hundred thousand terms near z = 0.9999, where a simplex
/// exploring the Pareto/NBD's parameters goes), so Abramowitz & Stegun 15.3.6 turns it into two
/// series in 1 − z, unless c − a − b is within 1e-6 of an integer, where that formula has poles
/// and the series is summed after all. Callers arrange small numerator parameters first
/// (Euler's transformation, see [`super::bgnbd`]) so that terms do not grow with a
/// customer's purchase count.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if z > 0.9
        && let Some(v) = near_one(a, b, c, z)
    {
        return Some(v);
    }
    series(a, b, c, z)
}

/// A&S 15.3.6: ₂F₁(a, b; c; z) = Γ(c)Γ(d)/(Γ(c−a)Γ(c−b)) ₂F₁(a, b; 1−d; 1−z)
/// + (1−z)ᵈ Γ(c)Γ(−d)/(Γ(a)Γ(b)) ₂F₁(c−a, c−b; 1+d; 1−z), with d = c − a − b.
fn near_one(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let d = c - a - b;
    if (d - d.round()).abs() < 1e-6 {
        return None;
    }
    let w = 1.0 - z;
    let first = gamma_ratio(&[c, d], &[c - a, c - b]) * series(a, b, 1.0 - d, w)?;
    let second = gamma_ratio(&[c, -d], &[a, b]) * w.powf(d) * series(c - a, c - b, 1.0 + d, w)?;
    let v = first + second;
    v.is_finite().then_some(v)
}

/// Π Γ(numerators) / Π Γ(denominators), signs kept; 0 when a denominator is a pole
/// (0, −1, −2, …), where 1/Γ is 0.
fn gamma_ratio(numerators: &[f64], denominators: &[f64]) -> f64 {
    if denominators.iter().any(|&x| x <= 0.0 && x.fract() == 0.0) {
        return 0.0;
    }
    let mut ln = 0.0;
    let mut sign = 1.0;
    for (&x, up) in numerators
        .iter()
        .map(|x| (x, true))
        .chain(denominators.iter().map(|x| (x, false)))
    {
        let (value, s) = libm::lgamma_r(x);
        ln += if up { value } else { -value };
        if s < 0 {
            sign = -sign;
        }
    }
    sign * ln.exp()
}

/// The Gauss series, until a term no longer changes the sum; `None` if it does not settle
/// within [`MAX_TERMS`] terms.
fn series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
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

    /// Near z = 1 the transformed sum agrees with the closed form and with the plain
    /// series (which still converges there, slowly).
    #[test]
    fn the_transformation_near_one_keeps_the_value() {
        for z in [0.95, 0.999, 0.999_99] {
            let closed = (1.0f64 - z).powf(-2.5);
            let near = near_one(2.5, 3.0, 3.0, z).unwrap();
            assert!(
                (near - closed).abs() < 1e-10 * closed,
                "z {z}: {near} {closed}"
            );
        }
        // The Pareto/NBD's shape: ₂F₁(r + s + x, s + 1; r + s + x + 1; z).
        let (a, b, c, z) = (3.2, 1.6, 4.2, 0.97);
        let near = near_one(a, b, c, z).unwrap();
        let plain = series(a, b, c, z).unwrap();
        assert!((near - plain).abs() < 1e-10 * plain, "{near} {plain}");
        // c − a − b an integer: the plain series.
        assert!(near_one(1.0, 1.0, 2.0, 0.95).is_none());
        let closed = -(0.05f64).ln() / 0.95;
        assert!((hyp2f1(1.0, 1.0, 2.0, 0.95).unwrap() - closed).abs() < 1e-12);
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
