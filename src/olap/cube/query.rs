//! Checking a cube question against the model: its levels and measures exist, drilling
//! has a next level, the tables it needs are there, and its options combine.

use std::collections::BTreeSet;

use super::{Compare, Cube, CubeQuery, Level, Measure};
use crate::error::{Error, Result};
use crate::warehouse::tables;

impl Cube {
    /// The level `name`, or an error under `key` listing the levels.
    pub(super) fn level(&self, name: &str, key: &str) -> Result<&Level> {
        self.levels.get(name).ok_or_else(|| {
            Error::param(
                key,
                format!(
                    "no level {name:?} in cube {}; levels: {}",
                    self.name,
                    self.levels.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// The measure `name`, or an error under `key` listing the measures.
    fn measure(&self, name: &str, key: &str) -> Result<&Measure> {
        self.measures.get(name).ok_or_else(|| {
            Error::param(
                key,
                format!(
                    "no measure {name:?} in cube {}; measures: {}",
                    self.name,
                    self.measures.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Checks a question against the model and returns the row levels after `--drill`.
    pub(super) fn check_query(
        &self,
        q: &CubeQuery,
        missing: &BTreeSet<String>,
    ) -> Result<Vec<String>> {
        if q.rows.is_empty() {
            return Err(Error::param("rows", "give at least one level"));
        }
        if q.measures.is_empty() {
            return Err(Error::param("measures", "give at least one measure"));
        }
        let rows = self.drilled(q)?;
        let mut seen = BTreeSet::new();
        let keyed = rows.iter().map(|r| ("rows", r));
        for (key, r) in keyed.chain(q.cols.iter().map(|c| ("cols", c))) {
            self.level(r, key)?;
            if !seen.insert(r.clone()) {
                return Err(Error::param(key, format!("level {r:?} is given twice")));
            }
        }
        for m in &q.measures {
            self.measure(m, "measures")?;
        }
        self.check_tables(q, &rows, missing)?;
        self.check_options(q)?;
        if let Some(c) = q.compare {
            self.check_compare(c, &rows)?;
            if let Some(m) = q.measures.iter().find(|m| self.is_per_key(m)) {
                return Err(Error::param(
                    "compare",
                    format!(
                        "measure {m} aggregates once per key (per = ...), which a period comparison does not take; ask for it without --compare"
                    ),
                ));
            }
        }
        Ok(rows)
    }

    /// The row levels with `--drill`'s next level inserted after the drilled one.
    fn drilled(&self, q: &CubeQuery) -> Result<Vec<String>> {
        let mut rows = q.rows.clone();
        let Some(d) = &q.drill else {
            return Ok(rows);
        };
        let level = self.level(d, "drill")?;
        let Some(pos) = rows.iter().position(|r| r == d) else {
            return Err(Error::param(
                "drill",
                format!(
                    "{d:?} is not one of the --rows levels ({})",
                    rows.join(", ")
                ),
            ));
        };
        let dim = &self.dimensions[&level.dimension];
        let next = level.depth.and_then(|i| dim.hierarchy.get(i + 1));
        let Some(next) = next else {
            return Err(Error::param(
                "drill",
                match level.depth {
                    Some(_) => format!(
                        "{d:?} is the finest level of its hierarchy ({})",
                        dim.hierarchy.join(" › ")
                    ),
                    None => format!("{d:?} is in no hierarchy of dimension {}", dim.name),
                },
            ));
        };
        if rows.contains(next) {
            return Err(Error::param(
                "drill",
                format!("{next:?} is already in --rows"),
            ));
        }
        rows.insert(pos + 1, next.clone());
        Ok(rows)
    }

    /// Every table the question's levels, slices, dices and measures need is in the
    /// warehouse (`missing`: the optional joins whose table is not).
    fn check_tables(
        &self,
        q: &CubeQuery,
        rows: &[String],
        missing: &BTreeSet<String>,
    ) -> Result<()> {
        let mut needed: Vec<String> = rows
            .iter()
            .chain(q.cols.iter())
            .map(|l| self.levels[l].expr.clone())
            .collect();
        for (l, _) in &q.slices {
            needed.push(self.level(l, "slice")?.expr.clone());
        }
        for (l, _) in &q.dices {
            needed.push(self.level(l, "dice")?.expr.clone());
        }
        for m in &q.measures {
            needed.extend(self.measure_exprs(m));
        }
        let Some(a) = self
            .joins_for(needed.iter().map(String::as_str))
            .into_iter()
            .find(|a| missing.contains(a))
        else {
            return Ok(());
        };
        let table = &self.joins[&a].table;
        Err(Error::param(
            "cube",
            format!(
                "this question needs table {table:?} (join {a}), which the warehouse does not have yet{}",
                if table == tables::SEGMENTS {
                    ": run `ecrm segment` first"
                } else {
                    ""
                }
            ),
        ))
    }

    /// `--top`, `--pivot`, `--subtotals` and `--compare` in the combinations that make sense.
    fn check_options(&self, q: &CubeQuery) -> Result<()> {
        if let Some((n, by)) = &q.top {
            if *n == 0 {
                return Err(Error::param("top", "N must be at least 1"));
            }
            self.measure(by, "by")?;
            if q.subtotals.is_some() {
                return Err(Error::param(
                    "top",
                    "top-N ranks members; it does not combine with --subtotals",
                ));
            }
        }
        if q.pivot && q.cols.is_none() {
            return Err(Error::param("pivot", "give the level to pivot with --cols"));
        }
        if q.pivot && q.top.is_some() {
            return Err(Error::param("pivot", "--pivot does not combine with --top"));
        }
        if q.compare.is_some() && (q.subtotals.is_some() || q.pivot || q.top.is_some()) {
            return Err(Error::param(
                "compare",
                "a period comparison does not combine with --subtotals, --pivot or --top",
            ));
        }
        Ok(())
    }

    /// A comparison needs a time level with periods in the rows; month over month, months.
    fn check_compare(&self, c: Compare, rows: &[String]) -> Result<()> {
        let level = self.time_level(rows).ok_or_else(|| {
            Error::param(
                "compare",
                format!(
                    "--rows has no level of the time dimension with periods; time levels: {}",
                    self.levels
                        .values()
                        .filter(|l| l.period.is_some())
                        .map(|l| l.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let per_year = level.period.as_ref().map(|p| p.1).unwrap_or(0);
        if c == Compare::Mom && per_year != 12 {
            return Err(Error::param(
                "compare",
                format!(
                    "mom compares months; the time level in --rows is {:?}",
                    level.name
                ),
            ));
        }
        Ok(())
    }

    /// The finest time level among `rows` (the one with periods and the deepest position).
    pub(super) fn time_level(&self, rows: &[String]) -> Option<&Level> {
        rows.iter()
            .map(|r| &self.levels[r])
            .filter(|l| l.period.is_some())
            .max_by_key(|l| (l.depth.unwrap_or(0), l.period.as_ref().map(|p| p.1)))
    }
}
