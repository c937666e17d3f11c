//! Trees as people read them: one if-then rule per leaf, and each leaf's reasons.
//!
//! A path from the root may split on one feature several times (`frequency > 2.5`, then
//! `frequency > 4.5`); its conditions on a feature are merged into one: an interval for a
//! number (`2.5 < frequency <= 7.5`), the one level for a category when the path knows it
//! (`Contract = Month-to-month`, which implies every `≠`), else the levels it is not
//! (`Contract not in (One year, Two year)`). A number whose missing values follow the path
//! (each split on it sends them the way the path goes) says so: `… or missing`. Thresholds
//! are printed as a person would write them ([`number`]: about four significant digits, no
//! trailing zeros); the model file keeps them at full precision.

use std::collections::BTreeMap;

use super::ModelFile;
use super::tree::FittedTree;
use crate::features::bridge::{Column, Encoder};

/// One split on a path: its feature, the side taken, the threshold, the split's impurity
/// decrease (which ranks reasons), and whether rows missing the feature take this side too.
#[derive(Debug, Clone, Copy)]
struct Step {
    feature: usize,
    right: bool,
    threshold: f64,
    decrease: f64,
    missing: bool,
}

/// What an encoded feature is: which input column, and how it was encoded.
enum Feature<'a> {
    Number(&'a str),
    Boolean(&'a str),
    Level { column: &'a str, level: &'a str },
}

/// The input column behind encoded feature `f`.
fn feature<'a>(encoder: &'a Encoder, names: &'a [String], f: usize) -> Feature<'a> {
    let mut at = 0;
    for c in &encoder.columns {
        let width = match c {
            Column::Category { levels, .. } => levels.len(),
            _ => 1,
        };
        if f < at + width {
            return match c {
                Column::Category { name, levels } => Feature::Level {
                    column: name,
                    level: &levels[f - at],
                },
                Column::Boolean { name } => Feature::Boolean(name),
                Column::Number { name } | Column::NumberText { name } => Feature::Number(name),
            };
        }
        at += width;
    }
    Feature::Number(names.get(f).map_or("?", String::as_str))
}

/// A threshold as a person writes it: about four significant digits (at least one
/// decimal), trailing zeros dropped: 1.0882352941176472 → `1.088`, 2.5 → `2.5`,
/// 1234.5 → `1234.5`, 100.0 → `100`.
pub fn number(t: f64) -> String {
    if t == 0.0 || !t.is_finite() {
        return format!("{t}");
    }
    let magnitude = t.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(1, 12) as usize;
    let text = format!("{t:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// A path's conditions, one per input column, in the order the path first splits on it,
/// each with the largest decrease among its splits.
fn conditions(encoder: &Encoder, names: &[String], steps: &[Step]) -> Vec<(f64, String)> {
    // Per column: (first position, largest decrease, steps).
    let mut by_column: BTreeMap<&str, (usize, f64, Vec<Step>)> = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        let column = match feature(encoder, names, s.feature) {
            Feature::Number(c) | Feature::Boolean(c) => c,
            Feature::Level { column, .. } => column,
        };
        let e = by_column
            .entry(column)
            .or_insert((i, s.decrease, Vec::new()));
        e.1 = e.1.max(s.decrease);
        e.2.push(*s);
    }
    let mut out: Vec<(usize, f64, String)> = by_column
        .into_iter()
        .map(|(column, (first, decrease, steps))| {
            (first, decrease, merged(encoder, names, column, &steps))
        })
        .collect();
    out.sort_by_key(|c| c.0);
    out.into_iter().map(|(_, d, t)| (d, t)).collect()
}

/// The splits of a path on one input column as one condition.
fn merged(encoder: &Encoder, names: &[String], column: &str, steps: &[Step]) -> String {
    let (mut low, mut high): (Option<f64>, Option<f64>) = (None, None);
    let (mut is, mut not) = (None, Vec::new());
    for s in steps {
        match feature(encoder, names, s.feature) {
            Feature::Number(_) if s.right => {
                low = Some(low.map_or(s.threshold, |l| l.max(s.threshold)));
            }
            Feature::Number(_) => high = Some(high.map_or(s.threshold, |h| h.min(s.threshold))),
            // A boolean splits once at most on a path (at 0.5): true on the right.
            Feature::Boolean(name) => {
                let or_missing = if s.missing { " or missing" } else { "" };
                return format!("{name} is {}{or_missing}", s.right);
            }
            Feature::Level { level, .. } if s.right => is = Some(level),
            Feature::Level { level, .. } => {
                if !not.contains(&level) {
                    not.push(level);
                }
            }
        }
    }
    if let Some(level) = is {
        return format!("{column} = {level}");
    }
    let or_missing = if steps.iter().all(|s| s.missing) {
        " or missing"
    } else {
        ""
    };
    match (not.len(), low, high) {
        (1, ..) => format!("{column} ≠ {}", not[0]),
        (n, ..) if n > 1 => format!("{column} not in ({})", not.join(", ")),
        (_, Some(l), Some(h)) => format!("{} < {column} <= {}{or_missing}", number(l), number(h)),
        (_, Some(l), None) => format!("{column} > {}{or_missing}", number(l)),
        (_, None, Some(h)) => format!("{column} <= {}{or_missing}", number(h)),
        _ => column.to_string(),
    }
}

/// Every leaf's path from the root (by node index; empty for inner nodes).
fn paths(tree: &FittedTree) -> Vec<Option<Vec<Step>>> {
    let mut out = vec![None; tree.nodes.len()];
    let mut stack: Vec<(usize, Vec<Step>)> = vec![(0, Vec::new())];
    while let Some((at, steps)) = stack.pop() {
        let n = &tree.nodes[at];
        let Some(f) = n.feature else {
            out[at] = Some(steps);
            continue;
        };
        for (child, right) in [(n.right, true), (n.left, false)] {
            let mut s = steps.clone();
            s.push(Step {
                feature: f,
                right,
                threshold: n.threshold,
                decrease: n.decrease,
                missing: n.missing_left != right,
            });
            stack.push((child, s));
        }
    }
    out
}

/// For every leaf (by node index; empty for inner nodes), the three conditions on its path
/// with the largest impurity decrease: the reasons of every row that lands there.
pub fn leaf_reasons(m: &ModelFile) -> Vec<String> {
    paths(&m.tree)
        .into_iter()
        .map(|steps| {
            let Some(steps) = steps else {
                return String::new();
            };
            let mut c = conditions(&m.encoder, &m.feature_names, &steps);
            c.sort_by(|a, b| b.0.total_cmp(&a.0));
            c.into_iter()
                .take(3)
                .map(|c| c.1)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

/// The tree as if-then rules, one per leaf, highest churn probability first (ties in the
/// tree's order, left before right).
pub fn rules(tree: &FittedTree, encoder: &Encoder, names: &[String]) -> Vec<String> {
    let mut out: Vec<(f64, usize, String)> = Vec::new();
    for (leaf, steps) in paths(tree).into_iter().enumerate() {
        let Some(steps) = steps else { continue };
        let conds: Vec<String> = conditions(encoder, names, &steps)
            .into_iter()
            .map(|c| c.1)
            .collect();
        let p = tree.proba(leaf).get(1).copied().unwrap_or(0.0);
        let rows: u64 = tree.nodes[leaf].counts.iter().sum();
        let when = if conds.is_empty() {
            "always".to_string()
        } else {
            conds.join(" AND ")
        };
        out.push((
            p,
            leaf,
            format!("IF {when} THEN churn probability {p:.3} ({rows} rows)"),
        ));
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|r| r.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_as_a_person_writes_them() {
        assert_eq!(number(1.0882352941176472), "1.088");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(16.5), "16.5");
        assert_eq!(number(1234.5), "1234.5");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(0.000123456), "0.0001235");
        assert_eq!(number(-3.25), "-3.25");
        assert_eq!(number(0.0), "0");
    }

    fn encoder() -> Encoder {
        Encoder {
            columns: vec![
                Column::Number {
                    name: "frequency".into(),
                },
                Column::Category {
                    name: "Contract".into(),
                    levels: vec!["Month".into(), "One year".into(), "Two year".into()],
                },
                Column::Boolean {
                    name: "opt_in".into(),
                },
            ],
            nulls: crate::features::bridge::Nulls::Missing,
        }
    }

    fn step(feature: usize, right: bool, threshold: f64, decrease: f64) -> Step {
        Step {
            feature,
            right,
            threshold,
            decrease,
            missing: false,
        }
    }

    /// Regression (issue 16, bug 15): rules repeated conditions on one feature and printed
    /// sixteen digits.
    #[test]
    fn conditions_on_one_feature_merge_into_an_interval() {
        let e = encoder();
        let names = e.feature_names();
        let steps = [
            step(0, true, 2.5, 0.1),
            step(0, true, 4.5, 0.05),
            step(0, false, 10.882352941176472, 0.2),
            step(4, true, 0.5, 0.01),
        ];
        let c: Vec<String> = conditions(&e, &names, &steps)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(c, ["4.5 < frequency <= 10.88", "opt_in is true"]);
        let levels = [step(2, false, 0.5, 0.1), step(3, false, 0.5, 0.1)];
        let c = conditions(&e, &names, &levels);
        assert_eq!(c[0].1, "Contract not in (One year, Two year)");
        let known = [step(2, false, 0.5, 0.1), step(1, true, 0.5, 0.3)];
        let c = conditions(&e, &names, &known);
        assert_eq!(c[0].1, "Contract = Month");
        assert_eq!(c[0].0, 0.3);
    }

    /// Issue 16, bug 18: a path that missing values follow says so.
    #[test]
    fn a_path_missing_values_follow_says_so() {
        let e = encoder();
        let names = e.feature_names();
        let mut a = step(0, false, 48.78, 0.1);
        a.missing = true;
        let mut b = step(0, true, 3.5, 0.1);
        b.missing = true;
        let c = conditions(&e, &names, &[a, b]);
        assert_eq!(c[0].1, "3.5 < frequency <= 48.78 or missing");
        // One split on the path sends them elsewhere: values only.
        b.missing = false;
        let c = conditions(&e, &names, &[a, b]);
        assert_eq!(c[0].1, "3.5 < frequency <= 48.78");
    }
}
