//! Cube models (TOML) and the SQL that answers a cube question.
//!
//! A model names a fact table, the tables joined to it, measures, and dimensions whose levels
//! form hierarchies (pipelines/cubes/sales.toml is the annotated example):
//!
//! ```text
//!  fact ──┬── customer (dim_customer)      levels: country › region › city, age_band, …
//!         ├── product  (dim_product)       levels: category › subcategory › product
//!         ├── calendar (dim_date)          levels: year › quarter › month › day (time = true)
//!         ├── segment  (segments, optional: exists once `ecrm segment` ran)
//!         └── value    (customer_value, optional: exists once `ecrm clv score` ran)
//! ```
//!
//! - Expressions are DataFusion SQL over `alias.column`, where the alias is `fact` or a join
//!   name. A measure is an aggregate (`sum`, `count`, `count_distinct`, `min`, `max`, `avg`) of
//!   an expression, optionally under a `filter`, or a `formula` over other measures.
//! - A measure with `per = "KEY"` aggregates once per distinct key in each cell rather than
//!   once per fact row: the customer value's `clv` is a customer's, so a cell's `clv` sums it
//!   over the cell's distinct customers, however many order lines each has there. Its SQL
//!   takes the expression's value per (cell, key) first (the expression must be the same on
//!   every row of one key, as a customer attribute is) and aggregates those, in a second
//!   grouped query joined to the cells on their members (`IS NOT DISTINCT FROM`, and on the
//!   subtotal flags), so subtotals, pivots and top-N hold; formulas and period comparisons
//!   do not take such measures.
//! - [`Cube::load`] checks the model without touching data: unknown keys, an unknown alias, a
//!   level name used twice, a level in two hierarchies, a measure with no aggregate, a formula
//!   naming an unknown measure or looping. [`Cube::check_columns`] then checks every
//!   expression against the warehouse's tables (unknown columns), naming the key at fault.
//! - [`Cube::plan`] turns a [`CubeQuery`] into SQL: slice and dice filter, `--subtotals`
//!   becomes ROLLUP or CUBE with subtotal members shown as `All` (from GROUPING(), never a NULL
//!   that could be mistaken for a missing value), drill inserts the next level of a
//!   hierarchy, top-N ranks with ROW_NUMBER(), pivot writes one conditional aggregate per
//!   member of the `--cols` level (DataFusion has no PIVOT), and period comparisons read the
//!   previous period with a RANGE window over the time level's period number, so a missing
//!   period gives NULL instead of the wrong neighbour.
//!
//! Only the joins a question needs are written into its SQL.
//!
//! Rooms: `model` (reading and checking a model), `query` (checking a question), `sql`
//! (writing its SQL); this file holds the types and plans a question.

mod model;
mod query;
mod sql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use serde::Deserialize;

use super::sqltext;
use crate::error::{Error, Result};

/// The alias of the fact table in every expression.
pub const FACT: &str = "fact";

/// Members of a pivoted level beyond which the question is refused (slice or dice first).
pub const MAX_PIVOT_MEMBERS: usize = 200;

/// Aggregate functions a measure may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Sum,
    Count,
    CountDistinct,
    Min,
    Max,
    Avg,
}

#[derive(Debug, Clone)]
pub struct Join {
    pub alias: String,
    pub table: String,
    pub from: String,
    pub on: Vec<(String, String)>,
    pub optional: bool,
}

/// A measure, checked.
#[derive(Debug, Clone)]
pub enum MeasureDef {
    Aggregate {
        aggregate: Aggregate,
        expr: Option<String>,
        filter: Option<String>,
        /// Aggregate once per distinct value of this expression in a cell (see the module
        /// doc), rather than once per fact row.
        per: Option<String>,
    },
    /// SQL over other measures' names.
    Formula(String),
}

#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub def: MeasureDef,
    pub description: Option<String>,
}

/// A level, checked.
#[derive(Debug, Clone)]
pub struct Level {
    pub name: String,
    pub dimension: String,
    pub expr: String,
    pub description: Option<String>,
    /// Orders the members (default: `expr`).
    pub sort: Option<String>,
    /// (period number expression, periods per year) for time levels.
    pub period: Option<(String, u32)>,
    /// Position in its dimension's hierarchy, when it is in one.
    pub depth: Option<usize>,
}

/// A dimension, checked.
#[derive(Debug, Clone)]
pub struct Dimension {
    pub name: String,
    pub hierarchy: Vec<String>,
    pub time: bool,
}

/// A checked cube model.
#[derive(Debug, Clone)]
pub struct Cube {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub fact: String,
    pub joins: BTreeMap<String, Join>,
    pub measures: BTreeMap<String, Measure>,
    pub dimensions: BTreeMap<String, Dimension>,
    pub levels: BTreeMap<String, Level>,
}

crate::choices! {
    /// Subtotals over the row levels.
    pub enum Subtotals {
        /// Subtotals for each prefix of the row levels, and a grand total (GROUP BY ROLLUP).
        Rollup = "rollup",
        /// Subtotals for every combination of the row levels (GROUP BY CUBE).
        Cube = "cube",
    }
}

crate::choices! {
    /// Period-over-period comparisons.
    pub enum Compare {
        /// Month over month: the time level in the rows must count months.
        Mom = "mom",
        /// Year over year: the same period one year earlier.
        Yoy = "yoy",
    }
}

/// A cube question.
#[derive(Debug, Clone, Default)]
pub struct CubeQuery {
    pub rows: Vec<String>,
    pub cols: Option<String>,
    pub measures: Vec<String>,
    /// `LEVEL = VALUE`: keep one member.
    pub slices: Vec<(String, String)>,
    /// `LEVEL IN (V1, V2, ...)`: keep some members.
    pub dices: Vec<(String, Vec<String>)>,
    pub subtotals: Option<Subtotals>,
    pub drill: Option<String>,
    /// (N, measure): the top N members of the last row level within the levels before it.
    pub top: Option<(usize, String)>,
    pub pivot: bool,
    pub compare: Option<Compare>,
}

/// A question's SQL: one statement, or a first statement listing the pivot members and a
/// function that writes the second from them.
pub enum Plan {
    Sql(String),
    Pivot {
        members_sql: String,
        query: Box<PivotPlan>,
    },
}

/// What a pivot needs once its members are known.
pub struct PivotPlan {
    cube: Cube,
    query: CubeQuery,
    rows: Vec<String>,
}

impl PivotPlan {
    /// The pivot SQL for the given members (text values of the `--cols` level; `None` for
    /// NULL).
    pub fn sql(&self, members: &[Option<String>]) -> Result<String> {
        if members.len() > MAX_PIVOT_MEMBERS {
            return Err(Error::param(
                "pivot",
                format!(
                    "level {} has {} members, more than {MAX_PIVOT_MEMBERS} columns: slice or dice it, or pivot a coarser level",
                    self.query.cols.as_deref().unwrap_or_default(),
                    members.len()
                ),
            ));
        }
        self.cube.pivot_sql(&self.query, &self.rows, members)
    }
}

/// The first column of `batches` as text (None for NULL).
fn text_values(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for b in batches {
        let text = crate::olap::text_column(b.column(0))?;
        out.extend(text.iter().map(|v| v.map(str::to_string)));
    }
    Ok(out)
}

/// The aliases an expression refers to (`alias.column`).
fn aliases_in(expr: &str) -> BTreeSet<String> {
    sqltext::words(expr)
        .into_iter()
        .filter(|w| w.before_period && !w.after_period)
        .map(|w| w.text)
        .collect()
}

/// The measures a formula names.
fn measures_in(formula: &str, measures: &BTreeMap<String, Measure>) -> Vec<String> {
    sqltext::words(formula)
        .into_iter()
        .filter(|w| !w.after_period && measures.contains_key(&w.text))
        .map(|w| w.text)
        .collect()
}

impl Cube {
    /// Reads and checks a model file.
    pub fn load(file: &Path) -> Result<Cube> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Self::parse(file, &text)
    }

    /// Finds a model: a path to a file, or NAME for `<dir>/NAME.toml`.
    pub fn find(name: &str, dir: &Path) -> Result<Cube> {
        let as_path = Path::new(name);
        if as_path.is_file() {
            return Cube::load(as_path);
        }
        let file = dir.join(format!("{name}.toml"));
        if file.is_file() {
            return Cube::load(&file);
        }
        let mut known: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        if p.extension()? != "toml" {
                            return None;
                        }
                        Some(p.file_stem()?.to_string_lossy().into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        Err(Error::NotFound {
            what: "cube",
            name: name.to_string(),
            hint: if known.is_empty() {
                format!(
                    " (no models in {}; give a model file's path)",
                    dir.display()
                )
            } else {
                format!(" (models in {}: {})", dir.display(), known.join(", "))
            },
        })
    }

    /// Plans a question: checks it and writes its SQL.
    pub async fn plan(&self, ctx: &SessionContext, q: &CubeQuery) -> Result<Plan> {
        let missing = self.check_columns(ctx).await?;
        let rows = self.check_query(q, &missing)?;
        if q.pivot {
            let col = q.cols.as_ref().expect("checked");
            let expr = &self.levels[col].expr;
            let mut levels = rows.clone();
            levels.push(col.clone());
            let from = self.sql_from(&self.question_joins(q, &levels));
            let members_sql = format!(
                "SELECT CAST({expr} AS VARCHAR) AS member\n{from}{}\nGROUP BY {expr}\nORDER BY {expr}",
                self.where_clause(q)
            );
            return Ok(Plan::Pivot {
                members_sql,
                query: Box::new(PivotPlan {
                    cube: self.clone(),
                    query: q.clone(),
                    rows,
                }),
            });
        }
        Ok(Plan::Sql(self.grouped_sql(q, &rows)))
    }

    /// The SQL that answers a question: for a pivot, the members of the `--cols` level are
    /// read first (after slices and dices) and become the columns.
    pub async fn sql(&self, ctx: &SessionContext, q: &CubeQuery) -> Result<String> {
        let plan = self.plan(ctx, q).await?;
        self.check_members(ctx, q).await?;
        match plan {
            Plan::Sql(sql) => Ok(sql),
            Plan::Pivot { members_sql, query } => {
                let (_, batches) = super::sql(ctx, &members_sql).await?;
                query.sql(&text_values(&batches)?)
            }
        }
    }

    /// Every sliced or diced member must exist: a member that does not would answer with
    /// no rows and no complaint; the error lists the members there are.
    async fn check_members(&self, ctx: &SessionContext, q: &CubeQuery) -> Result<()> {
        let slices = q
            .slices
            .iter()
            .map(|(l, v)| ("slice", l, std::slice::from_ref(v)));
        let dices = q.dices.iter().map(|(l, vs)| ("dice", l, vs.as_slice()));
        for (key, level, wanted) in slices.chain(dices) {
            let expr = &self.levels[level].expr;
            let from = self.sql_from(&self.joins_for([expr.as_str()]));
            let sql = format!(
                "SELECT DISTINCT CAST({expr} AS VARCHAR) AS member {from} ORDER BY 1 NULLS LAST"
            );
            let (_, batches) = super::sql(ctx, &sql).await?;
            let members = text_values(&batches)?;
            let Some(missing) = wanted
                .iter()
                .find(|w| !members.contains(&Some((*w).clone())))
            else {
                continue;
            };
            const SHOWN: usize = 20;
            let named: Vec<&str> = members.iter().flatten().map(String::as_str).collect();
            let more = if named.len() > SHOWN {
                format!(" … ({} in all)", named.len())
            } else {
                String::new()
            };
            return Err(Error::param(
                key,
                format!(
                    "level {level} has no member {missing:?}; its members: {}{more}",
                    named[..named.len().min(SHOWN)].join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::olap::sqltext::replace_words;

    const MODEL: &str = r#"
fact = "fact_sales"
[joins.customer]
table = "dim_customer"
on = { customer_key = "customer_key" }
[joins.calendar]
table = "dim_date"
on = { date_key = "date_key" }
[measures.revenue]
aggregate = "sum"
expr = "fact.revenue"
[measures.orders]
aggregate = "count_distinct"
expr = "fact.invoice_no"
[measures.aov]
formula = "revenue / orders"
[dimensions.customer]
hierarchy = ["country", "city"]
[dimensions.customer.levels.country]
expr = "customer.country"
[dimensions.customer.levels.city]
expr = "customer.city"
[dimensions.calendar]
time = true
hierarchy = ["year", "month"]
[dimensions.calendar.levels.year]
expr = "calendar.year"
period = "calendar.year"
periods_per_year = 1
[dimensions.calendar.levels.month]
expr = "calendar.month"
period = "calendar.year * 12 + calendar.month"
periods_per_year = 12
"#;

    fn parse(text: &str) -> Result<Cube> {
        Cube::parse(Path::new("cubes/sales.toml"), text)
    }

    /// The model with `from` replaced by `to`, which must be in it.
    fn edited(from: &str, to: &str) -> String {
        assert!(MODEL.contains(from), "{from}");
        MODEL.replacen(from, to, 1)
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_model_is_checked_before_any_data() {
        let c = parse(MODEL).unwrap();
        assert_eq!(c.name, "sales");
        assert_eq!(c.levels["month"].depth, Some(1));
        assert_eq!(c.levels["month"].period.as_ref().unwrap().1, 12);
        for (text, expected) in [
            (
                edited("expr = \"customer.city\"", "expr = \"client.city\""),
                "dimensions.customer.levels.city: \"client\" in \"client.city\" is neither \"fact\" nor a join",
            ),
            (
                edited("formula = \"revenue / orders\"", "formula = \"aov * 2\""),
                "measures.aov.formula: the formulas loop: aov → aov",
            ),
            (
                edited(
                    "aggregate = \"sum\"\nexpr = \"fact.revenue\"",
                    "expr = \"fact.revenue\"",
                ),
                "measures.revenue: the measure has no aggregate",
            ),
            (
                edited(
                    "hierarchy = [\"year\", \"month\"]",
                    "hierarchy = [\"year\", \"city\"]",
                ),
                "level \"city\" belongs to dimension \"customer\"",
            ),
            (
                edited(
                    "[dimensions.customer.levels.city]",
                    "[dimensions.customer.levels.year]",
                ),
                "level \"year\" is also in dimension",
            ),
            (edited("periods_per_year = 1\n", ""), "give both period"),
            (
                edited("[joins.calendar]", "[joins.calendar]\nfrom = \"nowhere\""),
                "joins.calendar.from: no join named \"nowhere\"",
            ),
            (
                edited(
                    "expr = \"fact.invoice_no\"",
                    "expr = \"fact.invoice_no\"\nper = \"fact.customer_id\"",
                ),
                "measures.aov.formula: orders aggregates per key",
            ),
            (
                edited(
                    "formula = \"revenue / orders\"",
                    "formula = \"revenue / orders\"\nper = \"fact.customer_id\"",
                ),
                "a formula measure has no expr, filter or per",
            ),
        ] {
            let e = error(&text);
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn questions_are_checked_against_the_model() {
        let c = parse(MODEL).unwrap();
        let none = BTreeSet::new();
        let q = |rows: &[&str]| CubeQuery {
            rows: rows.iter().map(|r| r.to_string()).collect(),
            measures: vec!["revenue".into()],
            ..Default::default()
        };
        // Drilling inserts the next level of the hierarchy.
        let mut drill = q(&["year", "country"]);
        drill.drill = Some("year".into());
        assert_eq!(
            c.check_query(&drill, &none).unwrap(),
            ["year", "month", "country"]
        );
        let key = |e: Error| match e {
            Error::Param { key, .. } => key,
            other => panic!("{other}"),
        };
        let mut finest = q(&["month"]);
        finest.drill = Some("month".into());
        assert_eq!(key(c.check_query(&finest, &none).unwrap_err()), "drill");
        assert_eq!(
            key(c.check_query(&q(&["colour"]), &none).unwrap_err()),
            "rows"
        );
        let mut twice = q(&["year"]);
        twice.cols = Some("year".into());
        assert_eq!(key(c.check_query(&twice, &none).unwrap_err()), "cols");
        let mut mom = q(&["year"]);
        mom.compare = Some(Compare::Mom);
        assert!(
            c.check_query(&mom, &none)
                .unwrap_err()
                .to_string()
                .contains("mom compares months")
        );
        // A measure aggregated per key has no period comparison.
        let per_key = parse(&edited(
            "[measures.aov]\nformula = \"revenue / orders\"",
            "[measures.buyers]\naggregate = \"count\"\nper = \"fact.customer_id\"",
        ))
        .unwrap();
        let mut yoy = q(&["month"]);
        yoy.measures = vec!["buyers".into()];
        yoy.compare = Some(Compare::Yoy);
        let e = per_key.check_query(&yoy, &none).unwrap_err().to_string();
        assert!(e.contains("measure buyers aggregates once per key"), "{e}");
        let mut pivot = q(&["year"]);
        pivot.pivot = true;
        assert_eq!(key(c.check_query(&pivot, &none).unwrap_err()), "pivot");
        // A question that needs an absent optional join says which table to build.
        let missing = BTreeSet::from(["customer".to_string()]);
        let e = c
            .check_query(&q(&["country"]), &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("needs table \"dim_customer\" (join customer)"),
            "{e}"
        );
    }

    #[test]
    fn formulas_expand_into_their_measures_sql() {
        let c = parse(MODEL).unwrap();
        assert_eq!(
            c.measure_sql("aov", None),
            "(SUM(fact.revenue)) / (COUNT(DISTINCT fact.invoice_no))"
        );
        assert_eq!(
            c.measure_sql("revenue", Some("fact.x = 1")),
            "SUM(CASE WHEN (fact.x = 1) THEN fact.revenue END)"
        );
    }

    #[test]
    fn aliases_ignore_literals_and_numbers() {
        let a = aliases_in("CASE WHEN customer.country = 'x.y' THEN fact.revenue * 1.5 END");
        assert_eq!(
            a,
            BTreeSet::from(["customer".to_string(), "fact".to_string()])
        );
    }

    #[test]
    fn formulas_replace_whole_words_only() {
        let out = replace_words("CAST(revenue AS DOUBLE) / orders_x + fact.orders", |w| {
            (w == "revenue" || w == "orders").then(|| format!("<{w}>"))
        });
        assert_eq!(out, "CAST(<revenue> AS DOUBLE) / orders_x + fact.orders");
    }
}
