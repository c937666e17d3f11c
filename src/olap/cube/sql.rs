//! The SQL of a cube question: the FROM with only the joins it needs, measures (a formula
//! expands into its measures' SQL), WHERE for slices and dices, and the grouped, top-N,
//! period-comparison and pivot shapes. Measures aggregated per key (`per`) come from a
//! second grouped query per key, joined to the cells on their members.

use std::collections::BTreeSet;

use super::{
    Aggregate, Compare, Cube, CubeQuery, FACT, MeasureDef, Subtotals, aliases_in, measures_in,
};
use crate::error::{Error, Result};
use crate::olap::sqltext::{ident, literal, replace_words};

/// An asked measure's SQL.
#[derive(Debug, Clone)]
enum Cell {
    /// An aggregate over the fact rows.
    Rows(String),
    /// `aggregate` over each key's value in the cell; `value` is row-level SQL, NULL on
    /// the rows the measure's filter (or a pivot member's condition) leaves out.
    PerKey {
        key: String,
        value: String,
        aggregate: Aggregate,
    },
}

/// `AGGREGATE(arg)` in SQL.
fn aggregate_call(aggregate: Aggregate, arg: &str) -> String {
    match aggregate {
        Aggregate::Sum => format!("SUM({arg})"),
        Aggregate::Count => format!("COUNT({arg})"),
        Aggregate::CountDistinct => format!("COUNT(DISTINCT {arg})"),
        Aggregate::Min => format!("MIN({arg})"),
        Aggregate::Max => format!("MAX({arg})"),
        Aggregate::Avg => format!("AVG({arg})"),
    }
}

/// `value`, or `CASE WHEN (c1) AND (c2) … THEN value END` under conditions.
fn when(conds: &[&str], value: String) -> String {
    if conds.is_empty() {
        return value;
    }
    let c: Vec<String> = conds.iter().map(|c| format!("({c})")).collect();
    format!("CASE WHEN {} THEN {value} END", c.join(" AND "))
}

/// What every grouped shape is made of.
struct Parts<'a> {
    /// The row levels, then the `--cols` level.
    levels: Vec<String>,
    exprs: Vec<&'a str>,
    /// (cell, measure name) per asked measure.
    cells: Vec<(Cell, String)>,
    /// `EXPR AS "level"` per level.
    select: Vec<String>,
    /// The levels' quoted output names.
    names: Vec<String>,
    from: String,
    filter: String,
}

impl Cube {
    /// The aliases an expression needs joined, with the joins they hang from.
    pub(super) fn joins_for<'a>(
        &self,
        exprs: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        let mut need = BTreeSet::new();
        for e in exprs {
            for mut a in aliases_in(e) {
                while a != FACT && need.insert(a.clone()) {
                    a = self.joins[&a].from.clone();
                }
            }
        }
        need
    }

    /// `FROM fact LEFT JOIN …` with the joins `aliases` need, parents first.
    pub(super) fn sql_from(&self, aliases: &BTreeSet<String>) -> String {
        let mut sql = format!("FROM {} AS {FACT}", ident(&self.fact));
        let mut done: BTreeSet<String> = BTreeSet::from([FACT.to_string()]);
        while done.len() <= aliases.len() {
            let before = done.len();
            for a in aliases {
                let j = &self.joins[a];
                if done.contains(a) || !done.contains(&j.from) {
                    continue;
                }
                let on: Vec<String> =
                    j.on.iter()
                        .map(|(l, r)| format!("{}.{} = {}.{}", j.from, ident(l), a, ident(r)))
                        .collect();
                sql.push_str(&format!(
                    "\nLEFT JOIN {} AS {a} ON {}",
                    ident(&j.table),
                    on.join(" AND ")
                ));
                done.insert(a.clone());
            }
            if done.len() == before {
                break;
            }
        }
        sql
    }

    /// Whether measure `name` aggregates per key.
    pub(super) fn is_per_key(&self, name: &str) -> bool {
        matches!(
            self.measures[name].def,
            MeasureDef::Aggregate { per: Some(_), .. }
        )
    }

    /// Measure `name`'s cell, over the rows where `cond` holds (when given).
    fn cell(&self, name: &str, cond: Option<&str>) -> Cell {
        match &self.measures[name].def {
            MeasureDef::Aggregate {
                aggregate,
                expr,
                filter,
                per: Some(key),
            } => {
                let conds: Vec<&str> = cond.into_iter().chain(filter.as_deref()).collect();
                let value = expr.clone().unwrap_or_else(|| "1".into());
                Cell::PerKey {
                    key: key.clone(),
                    value: when(&conds, value),
                    aggregate: *aggregate,
                }
            }
            _ => Cell::Rows(self.measure_sql(name, cond)),
        }
    }

    /// The SQL of measure `name` aggregated over the fact rows where `cond` holds (when
    /// given). A measure aggregated per key has no such SQL ([`Cube::cell`] writes it);
    /// the model keeps it out of formulas.
    pub fn measure_sql(&self, name: &str, cond: Option<&str>) -> String {
        match &self.measures[name].def {
            MeasureDef::Aggregate {
                aggregate,
                expr,
                filter,
                ..
            } => {
                let conds: Vec<&str> = cond.into_iter().chain(filter.as_deref()).collect();
                let value = expr.clone().unwrap_or_else(|| "1".into());
                let arg = match (aggregate, expr, conds.is_empty()) {
                    (Aggregate::Count, None, true) => "*".to_string(),
                    _ => when(&conds, value),
                };
                aggregate_call(*aggregate, &arg)
            }
            MeasureDef::Formula(f) => replace_words(f, |w| {
                self.measures
                    .contains_key(w)
                    .then(|| format!("({})", self.measure_sql(w, cond)))
            }),
        }
    }

    /// Every expression a measure's SQL contains (for the joins it needs).
    pub(super) fn measure_exprs(&self, name: &str) -> Vec<String> {
        match &self.measures[name].def {
            MeasureDef::Aggregate {
                expr, filter, per, ..
            } => expr.iter().chain(filter).chain(per).cloned().collect(),
            MeasureDef::Formula(f) => measures_in(f, &self.measures)
                .iter()
                .flat_map(|u| self.measure_exprs(u))
                .collect(),
        }
    }

    /// WHERE for slices and dices (members compared as text, so `--slice year=2011` works
    /// for a number and a string alike).
    pub(super) fn where_clause(&self, q: &CubeQuery) -> String {
        let mut conds = Vec::new();
        for (l, v) in &q.slices {
            conds.push(format!(
                "CAST({} AS VARCHAR) = {}",
                self.levels[l].expr,
                literal(v)
            ));
        }
        for (l, vs) in &q.dices {
            let list: Vec<String> = vs.iter().map(|v| literal(v)).collect();
            conds.push(format!(
                "CAST({} AS VARCHAR) IN ({})",
                self.levels[l].expr,
                list.join(", ")
            ));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("\nWHERE {}", conds.join("\n  AND "))
        }
    }

    /// The joins a question needs.
    pub(super) fn question_joins(&self, q: &CubeQuery, levels: &[String]) -> BTreeSet<String> {
        let mut exprs: Vec<String> = levels
            .iter()
            .flat_map(|l| {
                let l = &self.levels[l];
                std::iter::once(l.expr.clone()).chain(l.sort.clone())
            })
            .collect();
        exprs.extend(q.slices.iter().map(|(l, _)| self.levels[l].expr.clone()));
        exprs.extend(q.dices.iter().map(|(l, _)| self.levels[l].expr.clone()));
        for m in q.measures.iter().chain(q.top.iter().map(|(_, m)| m)) {
            exprs.extend(self.measure_exprs(m));
        }
        if let Some(t) = self.time_level(levels)
            && q.compare.is_some()
            && let Some((p, _)) = &t.period
        {
            exprs.push(p.clone());
        }
        self.joins_for(exprs.iter().map(String::as_str))
    }

    /// SQL for a question without pivot.
    pub(super) fn grouped_sql(&self, q: &CubeQuery, rows: &[String]) -> String {
        let parts = self.parts(q, rows);
        if let Some((n, by)) = &q.top {
            return self.top_sql(q, rows.len(), *n, by, &parts);
        }
        if let Some(c) = q.compare {
            return self.compare_sql(q, c, &parts);
        }
        self.grouped(
            &parts.levels,
            &parts.cells,
            &parts.from,
            &parts.filter,
            q.subtotals,
        )
    }

    fn parts(&self, q: &CubeQuery, rows: &[String]) -> Parts<'_> {
        let mut levels: Vec<String> = rows.to_vec();
        if let Some(c) = &q.cols {
            levels.push(c.clone());
        }
        let from = self.sql_from(&self.question_joins(q, &levels));
        let filter = self.where_clause(q);
        let exprs: Vec<&str> = levels
            .iter()
            .map(|l| self.levels[l].expr.as_str())
            .collect();
        let cells = q
            .measures
            .iter()
            .map(|m| (self.cell(m, None), m.clone()))
            .collect();
        let select = levels
            .iter()
            .zip(&exprs)
            .map(|(l, e)| format!("{e} AS {}", ident(l)))
            .collect();
        let names = levels.iter().map(|l| ident(l)).collect();
        Parts {
            levels,
            exprs,
            cells,
            select,
            names,
            from,
            filter,
        }
    }

    /// Top N: ranks the last row level's members by `by` within the row levels before it,
    /// over the grouped cells (so a measure aggregated per key ranks like any other).
    fn top_sql(&self, q: &CubeQuery, rows: usize, n: usize, by: &str, p: &Parts<'_>) -> String {
        let last = rows - 1;
        let mut cells = p.cells.clone();
        let by_column = if q.measures.iter().any(|m| m == by) {
            ident(by)
        } else {
            cells.push((self.cell(by, None), "__by".into()));
            "\"__by\"".into()
        };
        let base = self.grouped(&p.levels, &cells, &p.from, &p.filter, None);
        let over = format!(
            "{}ORDER BY {by_column} DESC NULLS LAST, {}",
            if last == 0 {
                String::new()
            } else {
                format!("PARTITION BY {} ", p.names[..last].join(", "))
            },
            p.names[last]
        );
        let outer: Vec<String> = p
            .names
            .iter()
            .cloned()
            .chain(q.measures.iter().map(|m| ident(m)))
            .chain(std::iter::once("\"rank\"".to_string()))
            .collect();
        let mut order: Vec<String> = p.names[..last].to_vec();
        order.push("\"rank\"".into());
        order.extend(p.names[rows..].iter().cloned());
        format!(
            "SELECT {}\nFROM (\n  SELECT *, ROW_NUMBER() OVER ({over}) AS \"rank\"\n  FROM (\n    {}\n  ) AS grouped\n) AS ranked\nWHERE \"rank\" <= {n}\nORDER BY {}",
            outer.join(", "),
            base.replace('\n', "\n    "),
            order.join(", ")
        )
    }

    /// A period comparison: each measure with its value one step back (a month, or the
    /// periods of a year) and the growth; the step is a RANGE over the period number, so a
    /// missing period gives NULL rather than the wrong neighbour.
    fn compare_sql(&self, q: &CubeQuery, c: Compare, p: &Parts<'_>) -> String {
        let t = self.time_level(&p.levels).expect("checked");
        let (period, per_year) = t.period.clone().expect("checked");
        let steps = match c {
            Compare::Mom => 1,
            Compare::Yoy => per_year,
        };
        let others: Vec<String> = p
            .levels
            .iter()
            .filter(|l| self.levels[*l].dimension != t.dimension)
            .map(|l| ident(l))
            .collect();
        let over = format!(
            "({}ORDER BY \"__period\" RANGE BETWEEN {steps} PRECEDING AND {steps} PRECEDING)",
            if others.is_empty() {
                String::new()
            } else {
                format!("PARTITION BY {} ", others.join(", "))
            }
        );
        // check_query refuses measures aggregated per key here, so every cell is rows'.
        let measures: Vec<String> = q
            .measures
            .iter()
            .map(|m| format!("{} AS {}", self.measure_sql(m, None), ident(m)))
            .collect();
        let mut outer: Vec<String> = p.names.clone();
        for name in &q.measures {
            let m = ident(name);
            let prev = format!("FIRST_VALUE({m}) OVER {over}");
            let pm = ident(&format!("{name}_prev"));
            let gm = ident(&format!("{name}_growth"));
            outer.push(m.clone());
            outer.push(format!("{prev} AS {pm}"));
            outer.push(format!(
                "CAST({m} AS DOUBLE) / NULLIF(CAST({prev} AS DOUBLE), 0) - 1 AS {gm}"
            ));
        }
        format!(
            "SELECT {}\nFROM (\n  SELECT {},\n    {period} AS \"__period\",\n    {}\n  {}{}\n  GROUP BY {}, {period}\n) AS base\nORDER BY {}",
            outer.join(",\n  "),
            p.select.join(",\n    "),
            measures.join(",\n    "),
            p.from.replace('\n', "\n  "),
            p.filter.replace('\n', "\n  "),
            p.exprs.join(", "),
            p.names.join(", ")
        )
    }

    /// A grouped question: the levels (under internal names inside, so an output name never
    /// clashes with a column of the same name) and the cells, ordered by the levels' values;
    /// with subtotals, subtotal members read `All` and sort after their members. Cells
    /// aggregated per key come from [`Cube::per_key_join`]s.
    fn grouped(
        &self,
        levels: &[String],
        cells: &[(Cell, String)],
        from: &str,
        filter: &str,
        subtotals: Option<Subtotals>,
    ) -> String {
        let exprs: Vec<&str> = levels
            .iter()
            .map(|l| self.levels[l].expr.as_str())
            .collect();
        let mut inner = Vec::new();
        let mut outer = Vec::new();
        let mut order = Vec::new();
        for (i, (l, e)) in levels.iter().zip(&exprs).enumerate() {
            inner.push(format!("{e} AS __l{i}"));
            // A sort key is the same for every row of a member; MIN keeps it under ROLLUP.
            let sort = match &self.levels[l].sort {
                Some(key) => {
                    inner.push(format!("MIN({key}) AS __s{i}"));
                    format!("cells.__s{i}, cells.__l{i}")
                }
                None => format!("cells.__l{i}"),
            };
            if subtotals.is_some() {
                inner.push(format!("GROUPING({e}) AS __g{i}"));
                outer.push(format!(
                    "CASE WHEN cells.__g{i} = 1 THEN 'All' ELSE CAST(cells.__l{i} AS VARCHAR) END AS {}",
                    ident(l)
                ));
                order.push(format!("cells.__g{i}, {sort}"));
            } else {
                outer.push(format!("cells.__l{i} AS {}", ident(l)));
                order.push(sort);
            }
        }
        let mut keys: Vec<&str> = Vec::new();
        for (cell, name) in cells {
            match cell {
                Cell::Rows(sql) => {
                    inner.push(format!("{sql} AS {}", ident(name)));
                    outer.push(format!("cells.{}", ident(name)));
                }
                Cell::PerKey { key, .. } => {
                    let k = keys.iter().position(|k| k == key).unwrap_or_else(|| {
                        keys.push(key);
                        keys.len() - 1
                    });
                    outer.push(format!("per{k}.{}", ident(name)));
                }
            }
        }
        let joins: String = keys
            .iter()
            .enumerate()
            .map(|(k, key)| self.per_key_join(k, key, &exprs, cells, from, filter, subtotals))
            .collect();
        format!(
            "SELECT {}\nFROM (\n  SELECT {}\n  {}{}\n  GROUP BY {}\n) AS cells{joins}\nORDER BY {}",
            outer.join(",\n  "),
            inner.join(",\n    "),
            from.replace('\n', "\n  "),
            filter.replace('\n', "\n  "),
            group_by(&exprs, subtotals),
            order.join(", ")
        )
    }

    /// `LEFT JOIN (…) AS per{k} ON …`: the cells aggregated per `key`. Each key's value is
    /// taken once per cell (MAX over its rows: the value is the same on all of them, and
    /// MAX skips the NULLs of rows a filter left out), then aggregated per cell, with the
    /// same subtotals as the cells it joins.
    #[allow(clippy::too_many_arguments)]
    fn per_key_join(
        &self,
        k: usize,
        key: &str,
        exprs: &[&str],
        cells: &[(Cell, String)],
        from: &str,
        filter: &str,
        subtotals: Option<Subtotals>,
    ) -> String {
        let levels: Vec<String> = (0..exprs.len()).map(|i| format!("__l{i}")).collect();
        let mut keyed: Vec<String> = exprs
            .iter()
            .zip(&levels)
            .map(|(e, l)| format!("{e} AS {l}"))
            .collect();
        let mut per: Vec<String> = levels.clone();
        let mut on: Vec<String> = levels
            .iter()
            .map(|l| format!("(cells.{l} IS NOT DISTINCT FROM per{k}.{l})"))
            .collect();
        if subtotals.is_some() {
            for (i, l) in levels.iter().enumerate() {
                per.push(format!("GROUPING({l}) AS __g{i}"));
                on.push(format!("(cells.__g{i} = per{k}.__g{i})"));
            }
        }
        let mine = cells.iter().filter_map(|(c, name)| match c {
            Cell::PerKey {
                key: ck,
                value,
                aggregate,
            } if ck == key => Some((value, aggregate, name)),
            _ => None,
        });
        for (j, (value, aggregate, name)) in mine.enumerate() {
            keyed.push(format!("MAX({value}) AS __v{j}"));
            per.push(format!(
                "{} AS {}",
                aggregate_call(*aggregate, &format!("__v{j}")),
                ident(name)
            ));
        }
        let mut keyed_group: Vec<&str> = exprs.to_vec();
        keyed_group.push(key);
        format!(
            "\nLEFT JOIN (\n  SELECT {}\n  FROM (\n    SELECT {}\n    {}{}\n    GROUP BY {}\n  ) AS keyed\n  GROUP BY {}\n) AS per{k} ON {}",
            per.join(",\n    "),
            keyed.join(",\n      "),
            from.replace('\n', "\n    "),
            filter.replace('\n', "\n    "),
            keyed_group.join(", "),
            group_by(
                &levels.iter().map(String::as_str).collect::<Vec<_>>(),
                subtotals
            ),
            on.join(" AND ")
        )
    }

    /// SQL for a pivot once the members are known.
    pub(super) fn pivot_sql(
        &self,
        q: &CubeQuery,
        rows: &[String],
        members: &[Option<String>],
    ) -> Result<String> {
        let col = q.cols.as_ref().expect("checked");
        let col_expr = &self.levels[col].expr;
        let mut levels = rows.to_vec();
        levels.push(col.clone());
        let from = self.sql_from(&self.question_joins(q, &levels));
        let filter = self.where_clause(q);
        let mut names = BTreeSet::new();
        let mut cells = Vec::new();
        for member in members {
            let (cond, label) = match member {
                Some(m) => (
                    format!("CAST({col_expr} AS VARCHAR) = {}", literal(m)),
                    m.clone(),
                ),
                None => (format!("{col_expr} IS NULL"), "null".to_string()),
            };
            for m in &q.measures {
                let name = if q.measures.len() == 1 {
                    label.clone()
                } else {
                    format!("{label}_{m}")
                };
                if !names.insert(name.clone()) {
                    return Err(Error::param(
                        "pivot",
                        format!("two pivot columns would be named {name:?}"),
                    ));
                }
                cells.push((self.cell(m, Some(&cond)), name));
            }
        }
        Ok(self.grouped(rows, &cells, &from, &filter, q.subtotals))
    }
}

/// `GROUP BY`'s list: the expressions, under ROLLUP or CUBE with subtotals.
fn group_by(exprs: &[&str], subtotals: Option<Subtotals>) -> String {
    match subtotals {
        None => exprs.join(", "),
        Some(Subtotals::Rollup) => format!("ROLLUP({})", exprs.join(", ")),
        Some(Subtotals::Cube) => format!("CUBE({})", exprs.join(", ")),
    }
}
