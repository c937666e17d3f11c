//! Association rules X ⇒ Y from frequent itemsets, with exact thresholds.
//!
//! - Input: [`FrequentItemsets`] (every subset of a frequent itemset is in it, so every
//!   antecedent's count is known).
//! - Output: [`Rule`]s: for each frequent itemset S of two items or more and each consequent
//!   Y ⊂ S of 1 to `max_consequent` items, the rule (S \ Y) ⇒ Y when it passes the thresholds.
//! - Parameters ([`RuleParams`]): `min_confidence` (default 0.8, arules' default),
//!   `min_lift` (default none), `max_consequent` (default 1, the arules convention),
//!   an item the antecedent must contain, an item the consequent must contain.
//!
//! Exactness: for confidence num/den a rule is kept when `count(S) × den ≥ num × count(X)`,
//! and for lift num/den when `count(S) × baskets × den ≥ num × count(X) × count(Y)`, in 128-bit
//! integers, so a rule exactly on a threshold is neither lost nor invented by rounding. The
//! measures are then given as floating point: support = count(S) / baskets, confidence =
//! count(S) / count(X), lift = confidence / support(Y), leverage = support(S) − support(X) ×
//! support(Y), conviction = (1 − support(Y)) / (1 − confidence), infinite (None) when the
//! confidence is 1.
//!
//! # Example
//!
//! The rules of the four baskets of [`super::fpgrowth`]'s example at a confidence of
//! exactly 2/3: of the 3 baskets with bread, 2 have milk, so bread ⇒ milk is kept, on the
//! threshold (in doubles, 2/3 is not 0.667 and a float comparison could lose it).
//!
//! ```
//! use linfa::prelude::*;
//! use ecrm::basket::{Baskets, FpGrowthParams, RuleParams};
//! use ecrm::param::Fraction;
//!
//! let mut baskets = Baskets::default();
//! for b in [vec!["bread", "milk"], vec!["bread", "butter", "milk"], vec!["beer", "bread"], vec!["milk"]] {
//!     baskets.push(b);
//! }
//! let sets = FpGrowthParams::new(Fraction { num: 1, den: 2 })
//!     .check()?
//!     .fit(&DatasetBase::new(baskets, ()))?;
//! let rules = RuleParams::default()
//!     .min_confidence(Fraction { num: 2, den: 3 })
//!     .check()?
//!     .rules(&sets)?;
//! let text: Vec<String> = rules
//!     .iter()
//!     .map(|r| {
//!         let (x, y) = (sets.names_sorted(&r.antecedent), sets.names_sorted(&r.consequent));
//!         format!("{} => {}", x.join(" | "), y.join(" | "))
//!     })
//!     .collect();
//! assert_eq!(text, ["bread => milk", "milk => bread"]);
//! assert_eq!(rules[0].confidence(), 2.0 / 3.0);
//! # Ok::<(), ecrm::Error>(())
//! ```

use std::cmp::Ordering;
use std::collections::HashMap;

use linfa::ParamGuard;

use super::fpgrowth::FrequentItemsets;
use crate::error::{Error, Result};
use crate::param::Fraction;

/// Rule parameters as given.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleParams(ValidRuleParams);

/// Checked rule parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRuleParams {
    min_confidence: Fraction,
    min_lift: Option<Fraction>,
    max_consequent: usize,
    antecedent: Option<String>,
    consequent: Option<String>,
}

/// The least confidence a rule needs when none is given: 0.8, arules' default.
pub const DEFAULT_MIN_CONFIDENCE: Fraction = Fraction { num: 4, den: 5 };

impl Default for RuleParams {
    /// Confidence at least 0.8, no lift threshold, one-item consequents, no item filters.
    fn default() -> Self {
        RuleParams(ValidRuleParams {
            min_confidence: DEFAULT_MIN_CONFIDENCE,
            min_lift: None,
            max_consequent: 1,
            antecedent: None,
            consequent: None,
        })
    }
}

impl RuleParams {
    pub fn min_confidence(mut self, c: Fraction) -> Self {
        self.0.min_confidence = c;
        self
    }
    pub fn min_lift(mut self, l: Option<Fraction>) -> Self {
        self.0.min_lift = l;
        self
    }
    /// Consequents of 1 to `n` items.
    pub fn max_consequent(mut self, n: usize) -> Self {
        self.0.max_consequent = n;
        self
    }
    /// Only rules whose antecedent holds this item.
    pub fn antecedent(mut self, item: Option<String>) -> Self {
        self.0.antecedent = item;
        self
    }
    /// Only rules whose consequent holds this item.
    pub fn consequent(mut self, item: Option<String>) -> Self {
        self.0.consequent = item;
        self
    }
}

impl ParamGuard for RuleParams {
    type Checked = ValidRuleParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&ValidRuleParams> {
        let p = &self.0;
        if p.min_confidence.num > p.min_confidence.den {
            return Err(Error::param(
                "min_confidence",
                format!("{} is out of range; 0 to 1", p.min_confidence),
            ));
        }
        if p.max_consequent == 0 {
            return Err(Error::param("consequent_size", "must be at least 1"));
        }
        Ok(p)
    }

    fn check(self) -> Result<ValidRuleParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// One rule X ⇒ Y with the counts its measures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Item ids, ascending.
    pub antecedent: Vec<u32>,
    pub consequent: Vec<u32>,
    /// Baskets with X ∪ Y, with X, with Y.
    pub count: u32,
    pub antecedent_count: u32,
    pub consequent_count: u32,
}

impl Rule {
    pub fn support(&self, baskets: u64) -> f64 {
        f64::from(self.count) / baskets as f64
    }
    pub fn confidence(&self) -> f64 {
        f64::from(self.count) / f64::from(self.antecedent_count)
    }
    pub fn lift(&self, baskets: u64) -> f64 {
        f64::from(self.count) * baskets as f64
            / (f64::from(self.antecedent_count) * f64::from(self.consequent_count))
    }
    pub fn leverage(&self, baskets: u64) -> f64 {
        let n = baskets as f64;
        f64::from(self.count) / n
            - (f64::from(self.antecedent_count) / n) * (f64::from(self.consequent_count) / n)
    }
    /// None when infinite (confidence 1).
    pub fn conviction(&self, baskets: u64) -> Option<f64> {
        (self.count < self.antecedent_count).then(|| {
            (1.0 - f64::from(self.consequent_count) / baskets as f64) / (1.0 - self.confidence())
        })
    }
    /// Compares lifts exactly: count × n / (cX × cY), the n cancelling.
    pub fn cmp_lift(&self, other: &Rule) -> Ordering {
        let a = u128::from(self.count)
            * u128::from(other.antecedent_count)
            * u128::from(other.consequent_count);
        let b = u128::from(other.count)
            * u128::from(self.antecedent_count)
            * u128::from(self.consequent_count);
        a.cmp(&b)
    }
}

/// Every k-element subset of `items` (k ≥ 1), in lexicographic order of positions.
fn subsets(items: &[u32], k: usize, mut visit: impl FnMut(&[u32])) {
    let n = items.len();
    if k == 0 || k > n {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    let mut pick = Vec::with_capacity(k);
    loop {
        pick.clear();
        pick.extend(idx.iter().map(|&i| items[i]));
        visit(&pick);
        // The rightmost position that can still move right; the ones after it follow it.
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

impl ValidRuleParams {
    /// The rules of `sets`, sorted by descending lift, then antecedent and consequent text.
    /// An item filter naming no item of the baskets is an error.
    pub fn rules(&self, sets: &FrequentItemsets) -> Result<Vec<Rule>> {
        let counts: HashMap<&[u32], u32> = (0..sets.len())
            .map(|i| (sets.itemset(i), sets.count(i)))
            .collect();
        let n = u128::from(sets.baskets());
        let (cn, cd) = (
            u128::from(self.min_confidence.num),
            u128::from(self.min_confidence.den),
        );
        let id_of = |key: &str, name: &Option<String>| -> Result<Option<u32>> {
            name.as_ref()
                .map(|w| {
                    sets.id(w)
                        .ok_or_else(|| Error::param(key, format!("no item {w:?} in the baskets")))
                })
                .transpose()
        };
        let must_x = id_of("antecedent", &self.antecedent)?;
        let must_y = id_of("consequent", &self.consequent)?;
        let mut out = Vec::new();
        let mut x = Vec::new();
        for i in 0..sets.len() {
            let s = sets.itemset(i);
            if s.len() < 2 {
                continue;
            }
            let c = u128::from(sets.count(i));
            for k in 1..=self.max_consequent.min(s.len() - 1) {
                subsets(s, k, |y| {
                    if let Some(m) = must_y
                        && !y.contains(&m)
                    {
                        return;
                    }
                    x.clear();
                    x.extend(s.iter().filter(|v| !y.contains(v)));
                    if let Some(m) = must_x
                        && !x.contains(&m)
                    {
                        return;
                    }
                    let cx = u128::from(counts[x.as_slice()]);
                    if c * cd < cn * cx {
                        return;
                    }
                    let cy = u128::from(counts[y]);
                    if let Some(l) = self.min_lift
                        && c * n * u128::from(l.den) < u128::from(l.num) * cx * cy
                    {
                        return;
                    }
                    out.push(Rule {
                        antecedent: x.clone(),
                        consequent: y.to_vec(),
                        count: c as u32,
                        antecedent_count: cx as u32,
                        consequent_count: cy as u32,
                    });
                });
            }
        }
        let text = |ids: &[u32]| sets.names_sorted(ids).join(" | ");
        let mut keyed: Vec<(Rule, String, String)> = out
            .into_iter()
            .map(|r| {
                let (a, c) = (text(&r.antecedent), text(&r.consequent));
                (r, a, c)
            })
            .collect();
        keyed.sort_by(|a, b| {
            b.0.cmp_lift(&a.0)
                .then_with(|| a.1.cmp(&b.1))
                .then_with(|| a.2.cmp(&b.2))
        });
        Ok(keyed.into_iter().map(|k| k.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_visit_every_combination_once() {
        let mut seen = Vec::new();
        subsets(&[1, 2, 3, 4], 2, |s| seen.push(s.to_vec()));
        assert_eq!(
            seen,
            [[1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4]].map(|a| a.to_vec())
        );
        let mut all = 0;
        subsets(&[1, 2, 3], 3, |_| all += 1);
        assert_eq!(all, 1);
        subsets(&[1, 2], 3, |_| panic!("no 3-subsets of 2 items"));
    }

    #[test]
    fn measures_and_exact_lift_order() {
        // 10 baskets, X in 4, Y in 5, both in 2.
        let r = Rule {
            antecedent: vec![0],
            consequent: vec![1],
            count: 2,
            antecedent_count: 4,
            consequent_count: 5,
        };
        assert_eq!(r.support(10), 0.2);
        assert_eq!(r.confidence(), 0.5);
        assert_eq!(r.lift(10), 1.0);
        assert!((r.leverage(10) - 0.0).abs() < 1e-15);
        assert_eq!(r.conviction(10), Some(1.0));
        let sure = Rule {
            count: 4,
            ..r.clone()
        };
        assert_eq!(sure.conviction(10), None);
        assert_eq!(sure.cmp_lift(&r), Ordering::Greater);
        // Equal lifts from different counts compare equal: 2×10/(4×5) = 3×10/(6×5).
        let same = Rule {
            count: 3,
            antecedent_count: 6,
            ..r.clone()
        };
        assert_eq!(same.cmp_lift(&r), Ordering::Equal);
    }
}

#[cfg(test)]
mod consequents {
    use std::collections::BTreeSet;

    use linfa::dataset::DatasetBase;
    use linfa::traits::Fit;

    use super::*;
    use crate::basket::{Baskets, FpGrowthParams};

    /// Rules with consequents of up to two items equal an enumeration by definition: every
    /// split of every itemset counted straight from the baskets.
    #[test]
    fn consequents_of_two_items_equal_the_definition() {
        let db: [&[&str]; 6] = [
            &["a", "b", "c", "d"],
            &["a", "b", "c"],
            &["a", "b", "d"],
            &["b", "c", "d"],
            &["a", "c"],
            &["a", "b", "c", "d"],
        ];
        let mut b = Baskets::default();
        for basket in db {
            b.push(basket.iter().copied());
        }
        let sets = FpGrowthParams::new(Fraction { num: 1, den: 3 })
            .check()
            .unwrap()
            .fit(&DatasetBase::new(b, ()))
            .unwrap();
        let conf = Fraction { num: 2, den: 3 };
        let got: BTreeSet<(String, String)> = RuleParams::default()
            .min_confidence(conf)
            .max_consequent(2)
            .check()
            .unwrap()
            .rules(&sets)
            .unwrap()
            .iter()
            .map(|r| {
                (
                    sets.names_sorted(&r.antecedent).join(" | "),
                    sets.names_sorted(&r.consequent).join(" | "),
                )
            })
            .collect();
        let count = |items: &[&str]| {
            db.iter()
                .filter(|b| items.iter().all(|i| b.contains(i)))
                .count()
        };
        let letters = ["a", "b", "c", "d"];
        let mut want = BTreeSet::new();
        for s in 1u32..16 {
            let set: Vec<&str> = (0..4)
                .filter(|i| s & (1 << i) != 0)
                .map(|i| letters[i])
                .collect();
            if set.len() < 2 || count(&set) < 2 {
                continue;
            }
            for y in 1u32..16 {
                let cons: Vec<&str> = (0..4)
                    .filter(|i| y & (1 << i) != 0 && s & (1 << i) != 0)
                    .map(|i| letters[i])
                    .collect();
                if y & !s != 0 || cons.is_empty() || cons.len() > 2 || cons.len() == set.len() {
                    continue;
                }
                let ante: Vec<&str> = set.iter().copied().filter(|i| !cons.contains(i)).collect();
                // count(S) / count(X) ≥ 2/3, in integers.
                if 3 * count(&set) >= 2 * count(&ante) {
                    want.insert((ante.join(" | "), cons.join(" | ")));
                }
            }
        }
        assert_eq!(got, want);
        assert!(
            got.iter().any(|(_, c)| c.contains('|')),
            "some two-item consequents"
        );
    }
}
