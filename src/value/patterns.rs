//! The likelihoods' input: customers with the same (x, t_x, T) folded into one weighted row.
//!
//! Why: a likelihood is a sum over customers, and customers with the same summary add the
//! same term. On day-stamped data most customers share their summary with others, so a fit
//! over a million customers evaluates far fewer rows. Rows are sorted by x, and the terms that
//! depend on x alone (ln Γ of x-shifted parameters) are computed once per distinct x.

use rayon::prelude::*;

/// Rows per parallel chunk; partial sums are added in chunk order, so a sum (and a fit) is
/// the same on every run and any number of threads.
const CHUNK: usize = 8192;

/// One customer's repeat-purchase summary in the model's time unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    /// Repeat purchases: purchase days after the first.
    pub x: u64,
    /// Time of the last repeat purchase since the first purchase (0 when x = 0).
    pub tx: f64,
    /// Age: time from the first purchase to the end of calibration.
    pub age: f64,
}

/// A distinct summary and how many customers have it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pattern {
    pub x: u64,
    pub tx: f64,
    pub age: f64,
    pub weight: f64,
    /// Index of its x in [`Patterns::xs`].
    pub group: usize,
    /// Indices of its t_x and T in [`Patterns::times`].
    pub tx_ix: usize,
    pub age_ix: usize,
}

/// Distinct summaries, sorted by (x, t_x, T), with their weights.
#[derive(Debug, Clone)]
pub struct Patterns {
    pub rows: Vec<Pattern>,
    /// The distinct x values, ascending.
    pub xs: Vec<u64>,
    /// The distinct t_x and T values, ascending: day-stamped data have few, so terms such as
    /// ln(α + T) are computed once per value, not once per row.
    pub times: Vec<f64>,
    /// Customers (the sum of the weights).
    pub customers: f64,
}

impl Patterns {
    /// Folds `rfm` into weighted distinct rows.
    pub fn new(rfm: impl IntoIterator<Item = Rfm>) -> Patterns {
        let mut all: Vec<Rfm> = rfm.into_iter().collect();
        let customers = all.len() as f64;
        all.sort_unstable_by(|a, b| {
            (a.x, a.tx.to_bits(), a.age.to_bits()).cmp(&(b.x, b.tx.to_bits(), b.age.to_bits()))
        });
        let mut rows: Vec<Pattern> = Vec::new();
        let mut xs: Vec<u64> = Vec::new();
        for r in all {
            match rows.last_mut() {
                Some(p) if p.x == r.x && p.tx == r.tx && p.age == r.age => p.weight += 1.0,
                _ => {
                    if xs.last() != Some(&r.x) {
                        xs.push(r.x);
                    }
                    rows.push(Pattern {
                        x: r.x,
                        tx: r.tx,
                        age: r.age,
                        weight: 1.0,
                        group: xs.len() - 1,
                        tx_ix: 0,
                        age_ix: 0,
                    });
                }
            }
        }
        let mut times: Vec<f64> = rows.iter().flat_map(|p| [p.tx, p.age]).collect();
        times.sort_unstable_by(f64::total_cmp);
        times.dedup();
        let at = |t: f64| times.partition_point(|v| *v < t);
        for p in &mut rows {
            (p.tx_ix, p.age_ix) = (at(p.tx), at(p.age));
        }
        Patterns {
            rows,
            xs,
            times,
            customers,
        }
    }

    /// `f` of every distinct time, in [`Patterns::times`]' order.
    pub fn per_time(&self, f: impl Fn(f64) -> f64 + Sync) -> Vec<f64> {
        self.times.par_iter().map(|&t| f(t)).collect()
    }

    /// Σ weight × `term(row)` / customers: a mean over customers, in a fixed order.
    pub fn mean(&self, term: impl Fn(&Pattern) -> f64 + Sync) -> f64 {
        let partial: Vec<f64> = self
            .rows
            .par_chunks(CHUNK)
            .map(|chunk| chunk.iter().map(|p| p.weight * term(p)).sum::<f64>())
            .collect();
        partial.iter().sum::<f64>() / self.customers
    }

    /// Mean x and mean T (for starting values).
    pub fn means(&self) -> (f64, f64) {
        let (x, t) = self.rows.iter().fold((0.0, 0.0), |(x, t), p| {
            (x + p.weight * p.x as f64, t + p.weight * p.age)
        });
        (x / self.customers, t / self.customers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_summaries_fold_into_one_weighted_row() {
        let r = |x, tx, age| Rfm { x, tx, age };
        let p = Patterns::new([
            r(2, 3.0, 9.0),
            r(0, 0.0, 9.0),
            r(2, 3.0, 9.0),
            r(0, 0.0, 5.0),
        ]);
        assert_eq!(p.customers, 4.0);
        assert_eq!(p.xs, vec![0, 2]);
        let rows: Vec<(u64, f64, f64, f64, usize)> = p
            .rows
            .iter()
            .map(|p| (p.x, p.tx, p.age, p.weight, p.group))
            .collect();
        assert_eq!(
            rows,
            vec![
                (0, 0.0, 5.0, 1.0, 0),
                (0, 0.0, 9.0, 1.0, 0),
                (2, 3.0, 9.0, 2.0, 1)
            ]
        );
        assert_eq!(p.mean(|q| q.x as f64), 1.0);
    }
}
