//! Cube models (TOML) and the SQL that answers a cube question.
//!
//! A model names a fact table, the tables joined to it, measures, and dimensions whose levels
//! form hierarchies (pipelines/cubes/sales.toml is the annotated example):
//!
//! ```text
//!  fact ──┬── customer (dim_customer)      levels: country › region › city, age_band, …
//!         ├── product  (dim_product)       levels: category › subcategory › product
//!         ├── calendar (dim_date)          levels: year › quarter › month › day (time = true)
//!         └── segment  (segments, optional: exists once `ecrm segment` ran)
//! ```
//!
//! - Expressions are DataFusion SQL over `alias.column`, where the alias is `fact` or a join
//!   name. A measure is an aggregate (`sum`, `count`, `count_distinct`, `min`, `max`, `avg`) of
//!   an expression, optionally under a `filter`, or a `formula` over other measures.
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use serde::Deserialize;

use super::sqltext::{self, ident, literal, replace_words};
use crate::error::{Error, Result};

/// The alias of the fact table in every expression.
pub const FACT: &str = "fact";

/// Members of a pivoted level beyond which the question is refused (slice or dice first).
pub const MAX_PIVOT_MEMBERS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CubeParams {
    #[serde(default)]
    description: Option<String>,
    fact: String,
    #[serde(default)]
    joins: BTreeMap<String, JoinParams>,
    measures: BTreeMap<String, MeasureParams>,
    dimensions: BTreeMap<String, DimensionParams>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinParams {
    table: String,
    /// The alias the join hangs from (default: the fact).
    #[serde(default)]
    from: Option<String>,
    /// `from` column = this table's column.
    on: BTreeMap<String, String>,
    /// A table that may not exist yet; levels using it are then unavailable.
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureParams {
    #[serde(default)]
    aggregate: Option<Aggregate>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    formula: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionParams {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    /// Levels from coarse to fine; drilling follows this order.
    #[serde(default)]
    hierarchy: Vec<String>,
    /// The time dimension: its levels carry period numbers for `--compare`.
    #[serde(default)]
    time: bool,
    levels: BTreeMap<String, LevelParams>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelParams {
    expr: String,
    #[serde(default)]
    description: Option<String>,
    /// Orders the members when their text does not (e.g. weekday names by day number).
    #[serde(default)]
    sort: Option<String>,
    /// Time levels: an integer numbering the periods consecutively (e.g. year * 12 + month).
    #[serde(default)]
    period: Option<String>,
    /// Time levels: periods in a year (1, 4, 12), for year-over-year comparisons.
    #[serde(default)]
    periods_per_year: Option<u32>,
}

/// A table joined to the fact.
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

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
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

    /// Checks model text; `file` names it in messages, its stem names the cube.
    pub fn parse(file: &Path, text: &str) -> Result<Cube> {
        let p: CubeParams = toml::from_str(text).map_err(|e| Error::toml(file, text, &e))?;
        let err = |key: String, message: String| Error::config(file, key, message);
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cube".into());
        if p.fact.trim().is_empty() {
            return Err(err("fact".into(), "give the fact table's name".into()));
        }

        // Joins: names are aliases; each hangs from the fact or an earlier-resolvable join.
        let mut joins = BTreeMap::new();
        for (alias, j) in &p.joins {
            let key = format!("joins.{alias}");
            if !is_identifier(alias) || alias == FACT {
                return Err(err(
                    key,
                    format!("a join name is a snake_case alias other than {FACT:?}"),
                ));
            }
            let from = j.from.clone().unwrap_or_else(|| FACT.to_string());
            if from != FACT && !p.joins.contains_key(&from) {
                return Err(err(
                    format!("{key}.from"),
                    format!(
                        "no join named {from:?}; joins: {}",
                        p.joins.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if j.on.is_empty() {
                return Err(err(
                    format!("{key}.on"),
                    "give the key columns: on = { from_column = \"table_column\" }".into(),
                ));
            }
            joins.insert(
                alias.clone(),
                Join {
                    alias: alias.clone(),
                    table: j.table.clone(),
                    from,
                    on: j.on.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
                    optional: j.optional,
                },
            );
        }
        for alias in joins.keys() {
            // Following `from` must reach the fact without a loop.
            let mut seen = BTreeSet::new();
            let mut at = alias.clone();
            while at != FACT {
                if !seen.insert(at.clone()) {
                    return Err(err(
                        format!("joins.{alias}.from"),
                        format!(
                            "the joins loop: {}",
                            seen.into_iter().collect::<Vec<_>>().join(" → ")
                        ),
                    ));
                }
                at = joins[&at].from.clone();
            }
        }
        let check_aliases = |key: &str, expr: &str| -> Result<()> {
            for a in aliases_in(expr) {
                if a != FACT && !joins.contains_key(&a) {
                    return Err(err(
                        key.to_string(),
                        format!(
                            "{a:?} in {expr:?} is neither {FACT:?} nor a join; joins: {}",
                            joins.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            Ok(())
        };

        // Measures.
        if p.measures.is_empty() {
            return Err(err(
                "measures".into(),
                "no measures: add at least one [measures.NAME]".into(),
            ));
        }
        let mut measures = BTreeMap::new();
        for (name, m) in &p.measures {
            let key = format!("measures.{name}");
            if !is_identifier(name) {
                return Err(err(key, "a measure name is snake_case".into()));
            }
            let def = match (m.aggregate, &m.formula) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        key,
                        "give either aggregate (with expr) or formula, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(err(
                        key,
                        "the measure has no aggregate: give aggregate = \"sum\" | \"count\" | \"count_distinct\" | \"min\" | \"max\" | \"avg\" with expr, or a formula over other measures".into(),
                    ));
                }
                (Some(aggregate), None) => {
                    if m.expr.is_none() && aggregate != Aggregate::Count {
                        return Err(err(
                            format!("{key}.expr"),
                            format!("aggregate {aggregate:?} needs an expr to aggregate"),
                        ));
                    }
                    for e in m.expr.iter().chain(m.filter.iter()) {
                        check_aliases(&key, e)?;
                    }
                    MeasureDef::Aggregate {
                        aggregate,
                        expr: m.expr.clone(),
                        filter: m.filter.clone(),
                    }
                }
                (None, Some(f)) => {
                    if m.expr.is_some() || m.filter.is_some() {
                        return Err(err(
                            key,
                            "a formula measure has no expr or filter: they belong to the measures it uses".into(),
                        ));
                    }
                    MeasureDef::Formula(f.clone())
                }
            };
            measures.insert(
                name.clone(),
                Measure {
                    name: name.clone(),
                    def,
                    description: m.description.clone(),
                },
            );
        }
        // Formulas use measures that exist, without loops.
        for name in measures.keys() {
            let mut stack = vec![(name.clone(), vec![name.clone()])];
            while let Some((at, path)) = stack.pop() {
                if let MeasureDef::Formula(f) = &measures[&at].def {
                    let used = measures_in(f, &measures);
                    if used.is_empty() && at == *name {
                        return Err(err(
                            format!("measures.{name}.formula"),
                            format!(
                                "{f:?} uses no measure; measures: {}",
                                measures.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    for u in used {
                        if path.contains(&u) {
                            return Err(err(
                                format!("measures.{name}.formula"),
                                format!("the formulas loop: {} → {u}", path.join(" → ")),
                            ));
                        }
                        let mut next = path.clone();
                        next.push(u.clone());
                        stack.push((u, next));
                    }
                }
            }
        }

        // Dimensions and levels: level names are unique across the model.
        let mut levels: BTreeMap<String, Level> = BTreeMap::new();
        let mut dimensions = BTreeMap::new();
        let mut time_dims = Vec::new();
        for (dname, d) in &p.dimensions {
            let key = format!("dimensions.{dname}");
            if d.levels.is_empty() {
                return Err(err(
                    key,
                    "no levels: add [dimensions.NAME.levels.LEVEL]".into(),
                ));
            }
            if d.time {
                time_dims.push(dname.clone());
            }
            for (lname, l) in &d.levels {
                let lkey = format!("{key}.levels.{lname}");
                if !is_identifier(lname) {
                    return Err(err(lkey, "a level name is snake_case".into()));
                }
                if let Some(other) = levels.get(lname) {
                    return Err(err(
                        lkey,
                        format!(
                            "level {lname:?} is also in dimension {:?}: level names are unique across the model",
                            other.dimension
                        ),
                    ));
                }
                if measures.contains_key(lname) {
                    return Err(err(
                        lkey,
                        format!(
                            "{lname:?} is also a measure: levels and measures name output columns, so they must differ"
                        ),
                    ));
                }
                check_aliases(&lkey, &l.expr)?;
                if let Some(sort) = &l.sort {
                    check_aliases(&lkey, sort)?;
                }
                let period = match (&l.period, l.periods_per_year) {
                    (Some(e), Some(n)) if n > 0 => {
                        if !d.time {
                            return Err(err(
                                format!("{lkey}.period"),
                                "periods belong to levels of the time dimension (time = true)"
                                    .into(),
                            ));
                        }
                        check_aliases(&lkey, e)?;
                        Some((e.clone(), n))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(err(
                            lkey,
                            "give both period (an integer numbering the periods) and periods_per_year (1, 4, 12, …)".into(),
                        ));
                    }
                };
                levels.insert(
                    lname.clone(),
                    Level {
                        name: lname.clone(),
                        dimension: dname.clone(),
                        expr: l.expr.clone(),
                        description: l.description.clone(),
                        sort: l.sort.clone(),
                        period,
                        depth: None,
                    },
                );
            }
            dimensions.insert(
                dname.clone(),
                Dimension {
                    name: dname.clone(),
                    hierarchy: d.hierarchy.clone(),
                    time: d.time,
                },
            );
        }
        if time_dims.len() > 1 {
            return Err(err(
                "dimensions".into(),
                format!(
                    "one time dimension at most; time = true in {}",
                    time_dims.join(", ")
                ),
            ));
        }
        // Hierarchies: levels of their own dimension, each in one hierarchy, once.
        let mut in_hierarchy: BTreeMap<String, String> = BTreeMap::new();
        for d in dimensions.values() {
            for (depth, lname) in d.hierarchy.iter().enumerate() {
                let key = format!("dimensions.{}.hierarchy", d.name);
                let Some(level) = levels.get_mut(lname) else {
                    return Err(err(
                        key,
                        format!(
                            "no level {lname:?}; levels of {}: {}",
                            d.name,
                            p.dimensions[&d.name]
                                .levels
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                if let Some(other) = in_hierarchy.get(lname) {
                    return Err(err(
                        key,
                        format!(
                            "level {lname:?} is in two hierarchies ({other} and {}): a level belongs to one hierarchy",
                            d.name
                        ),
                    ));
                }
                if level.dimension != d.name {
                    return Err(err(
                        key,
                        format!(
                            "level {lname:?} belongs to dimension {:?}: a hierarchy lists its own dimension's levels",
                            level.dimension
                        ),
                    ));
                }
                in_hierarchy.insert(lname.clone(), d.name.clone());
                level.depth = Some(depth);
            }
        }
        Ok(Cube {
            file: file.to_path_buf(),
            name,
            description: p.description,
            fact: p.fact,
            joins,
            measures,
            dimensions,
            levels,
        })
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

    /// The aliases an expression needs joined, with the joins they hang from.
    fn joins_for<'a>(&self, exprs: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
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
    fn sql_from(&self, aliases: &BTreeSet<String>) -> String {
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

    /// Every expression's key and text, for [`Cube::check_columns`].
    fn expressions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for m in self.measures.values() {
            if let MeasureDef::Aggregate { expr, filter, .. } = &m.def {
                let key = format!("measures.{}", m.name);
                if let Some(e) = expr {
                    out.push((format!("{key}.expr"), e.clone()));
                }
                if let Some(f) = filter {
                    out.push((format!("{key}.filter"), f.clone()));
                }
            }
        }
        for l in self.levels.values() {
            let key = format!("dimensions.{}.levels.{}", l.dimension, l.name);
            out.push((format!("{key}.expr"), l.expr.clone()));
            if let Some(sort) = &l.sort {
                out.push((format!("{key}.sort"), sort.clone()));
            }
            if let Some((p, _)) = &l.period {
                out.push((format!("{key}.period"), p.clone()));
            }
        }
        out
    }

    /// Tables the model needs that the session lacks: required ones are an error; optional
    /// ones are returned (levels and measures using them are unavailable).
    fn missing_tables(&self, ctx: &SessionContext) -> Result<BTreeSet<String>> {
        let has = |t: &str| ctx.table_exist(t).unwrap_or(false);
        let tables = || {
            let mut names: Vec<String> = ctx
                .catalog("datafusion")
                .and_then(|c| c.schema("public"))
                .map(|s| s.table_names())
                .unwrap_or_default();
            names.sort();
            names.join(", ")
        };
        if !has(&self.fact) {
            return Err(Error::config(
                &self.file,
                "fact",
                format!(
                    "no table {:?} in the warehouse; tables: {}",
                    self.fact,
                    tables()
                ),
            ));
        }
        let mut missing = BTreeSet::new();
        for j in self.joins.values() {
            if !has(&j.table) {
                if j.optional {
                    missing.insert(j.alias.clone());
                } else {
                    return Err(Error::config(
                        &self.file,
                        format!("joins.{}.table", j.alias),
                        format!(
                            "no table {:?} in the warehouse; tables: {}",
                            j.table,
                            tables()
                        ),
                    ));
                }
            }
        }
        Ok(missing)
    }

    /// Checks every expression and join key against the session's tables by planning it
    /// (no data is read); the first failure names its key. Returns the joins that are
    /// optional and absent.
    pub async fn check_columns(&self, ctx: &SessionContext) -> Result<BTreeSet<String>> {
        let missing = self.missing_tables(ctx)?;
        for (key, expr) in self.expressions() {
            let aliases = self.joins_for([expr.as_str()]);
            if aliases.iter().any(|a| missing.contains(a)) {
                continue;
            }
            let sql = format!("SELECT {expr} {} LIMIT 0", self.sql_from(&aliases));
            if let Err(e) = ctx.sql(&sql).await {
                return Err(Error::config(
                    &self.file,
                    key,
                    format!("{expr:?}: {}", e.strip_backtrace()),
                ));
            }
        }
        Ok(missing)
    }

    /// The SQL of measure `name`, aggregating only rows where `cond` holds (when given).
    pub fn measure_sql(&self, name: &str, cond: Option<&str>) -> String {
        match &self.measures[name].def {
            MeasureDef::Aggregate {
                aggregate,
                expr,
                filter,
            } => {
                let conds: Vec<&str> = cond.into_iter().chain(filter.as_deref()).collect();
                let value = expr.clone().unwrap_or_else(|| "1".into());
                let arg = if conds.is_empty() {
                    match (aggregate, expr) {
                        (Aggregate::Count, None) => "*".to_string(),
                        _ => value,
                    }
                } else {
                    let c: Vec<String> = conds.iter().map(|c| format!("({c})")).collect();
                    format!("CASE WHEN {} THEN {value} END", c.join(" AND "))
                };
                match aggregate {
                    Aggregate::Sum => format!("SUM({arg})"),
                    Aggregate::Count => format!("COUNT({arg})"),
                    Aggregate::CountDistinct => format!("COUNT(DISTINCT {arg})"),
                    Aggregate::Min => format!("MIN({arg})"),
                    Aggregate::Max => format!("MAX({arg})"),
                    Aggregate::Avg => format!("AVG({arg})"),
                }
            }
            MeasureDef::Formula(f) => replace_words(f, |w| {
                self.measures
                    .contains_key(w)
                    .then(|| format!("({})", self.measure_sql(w, cond)))
            }),
        }
    }

    /// Every expression a measure's SQL contains (for the joins it needs).
    fn measure_exprs(&self, name: &str) -> Vec<String> {
        match &self.measures[name].def {
            MeasureDef::Aggregate { expr, filter, .. } => {
                expr.iter().chain(filter.iter()).cloned().collect()
            }
            MeasureDef::Formula(f) => measures_in(f, &self.measures)
                .iter()
                .flat_map(|u| self.measure_exprs(u))
                .collect(),
        }
    }

    fn level(&self, name: &str, key: &str) -> Result<&Level> {
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
    fn check_query(&self, q: &CubeQuery, missing: &BTreeSet<String>) -> Result<Vec<String>> {
        let usage = |key: &str, message: String| Error::param(key, message);
        if q.rows.is_empty() {
            return Err(usage("rows", "give at least one level".into()));
        }
        if q.measures.is_empty() {
            return Err(usage("measures", "give at least one measure".into()));
        }
        let mut rows = q.rows.clone();
        if let Some(d) = &q.drill {
            let level = self.level(d, "drill")?;
            let Some(pos) = rows.iter().position(|r| r == d) else {
                return Err(usage(
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
                return Err(usage(
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
                return Err(usage("drill", format!("{next:?} is already in --rows")));
            }
            rows.insert(pos + 1, next.clone());
        }
        let mut seen = BTreeSet::new();
        let keyed = rows.iter().map(|r| ("rows", r));
        for (key, r) in keyed.chain(q.cols.iter().map(|c| ("cols", c))) {
            self.level(r, key)?;
            if !seen.insert(r.clone()) {
                return Err(usage(key, format!("level {r:?} is given twice")));
            }
        }
        for m in &q.measures {
            self.measure(m, "measures")?;
        }
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
        for a in self.joins_for(needed.iter().map(String::as_str)) {
            if missing.contains(&a) {
                return Err(usage(
                    "cube",
                    format!(
                        "this question needs table {:?} (join {a}), which the warehouse does not have yet{}",
                        self.joins[&a].table,
                        if self.joins[&a].table == "segments" {
                            ": run `ecrm segment` first"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        if let Some((n, by)) = &q.top {
            if *n == 0 {
                return Err(usage("top", "N must be at least 1".into()));
            }
            self.measure(by, "by")?;
            if q.subtotals.is_some() {
                return Err(usage(
                    "top",
                    "top-N ranks members; it does not combine with --subtotals".into(),
                ));
            }
        }
        if q.pivot && q.cols.is_none() {
            return Err(usage("pivot", "give the level to pivot with --cols".into()));
        }
        if q.pivot && q.top.is_some() {
            return Err(usage("pivot", "--pivot does not combine with --top".into()));
        }
        if let Some(c) = q.compare {
            if q.subtotals.is_some() || q.pivot || q.top.is_some() {
                return Err(usage(
                    "compare",
                    "a period comparison does not combine with --subtotals, --pivot or --top"
                        .into(),
                ));
            }
            let level = self.time_level(&rows).ok_or_else(|| {
                usage(
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
                return Err(usage(
                    "compare",
                    format!(
                        "mom compares months; the time level in --rows is {:?}",
                        level.name
                    ),
                ));
            }
        }
        Ok(rows)
    }

    /// The finest time level among `rows` (the one with periods and the deepest position).
    fn time_level(&self, rows: &[String]) -> Option<&Level> {
        rows.iter()
            .map(|r| &self.levels[r])
            .filter(|l| l.period.is_some())
            .max_by_key(|l| (l.depth.unwrap_or(0), l.period.as_ref().map(|p| p.1)))
    }

    /// WHERE for slices and dices (members compared as text, so `--slice year=2011` works
    /// for a number and a string alike).
    fn where_clause(&self, q: &CubeQuery) -> String {
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
    fn question_joins(&self, q: &CubeQuery, levels: &[String]) -> BTreeSet<String> {
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

    /// SQL for a question without pivot.
    fn grouped_sql(&self, q: &CubeQuery, rows: &[String]) -> String {
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
        let cells: Vec<(String, String)> = q
            .measures
            .iter()
            .map(|m| (self.measure_sql(m, None), m.clone()))
            .collect();
        let measures: Vec<String> = cells
            .iter()
            .map(|(sql, name)| format!("{sql} AS {}", ident(name)))
            .collect();
        let select: Vec<String> = levels
            .iter()
            .zip(&exprs)
            .map(|(l, e)| format!("{e} AS {}", ident(l)))
            .collect();
        let names: Vec<String> = levels.iter().map(|l| ident(l)).collect();

        if let Some((n, by)) = &q.top {
            // Rank the last row level's members within the levels before it.
            let last = rows.len() - 1;
            let partition: Vec<&str> = exprs[..last].to_vec();
            let over = format!(
                "{}ORDER BY {} DESC NULLS LAST, {}",
                if partition.is_empty() {
                    String::new()
                } else {
                    format!("PARTITION BY {} ", partition.join(", "))
                },
                self.measure_sql(by, None),
                exprs[last]
            );
            let outer: Vec<String> = names
                .iter()
                .cloned()
                .chain(q.measures.iter().map(|m| ident(m)))
                .chain(std::iter::once("\"rank\"".to_string()))
                .collect();
            let mut order: Vec<String> = names[..last].to_vec();
            order.push("\"rank\"".into());
            order.extend(names[rows.len()..].iter().cloned());
            return format!(
                "SELECT {}\nFROM (\n  SELECT {},\n    {},\n    ROW_NUMBER() OVER ({over}) AS \"rank\"\n  {}{}\n  GROUP BY {}\n) AS ranked\nWHERE \"rank\" <= {n}\nORDER BY {}",
                outer.join(", "),
                select.join(",\n    "),
                measures.join(",\n    "),
                from.replace('\n', "\n  "),
                filter.replace('\n', "\n  "),
                exprs.join(", "),
                order.join(", ")
            );
        }

        if let Some(c) = q.compare {
            let t = self.time_level(&levels).expect("checked");
            let (period, per_year) = t.period.clone().expect("checked");
            let steps = match c {
                Compare::Mom => 1,
                Compare::Yoy => per_year,
            };
            let others: Vec<String> = levels
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
            let mut outer: Vec<String> = names.clone();
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
            return format!(
                "SELECT {}\nFROM (\n  SELECT {},\n    {period} AS \"__period\",\n    {}\n  {}{}\n  GROUP BY {}, {period}\n) AS base\nORDER BY {}",
                outer.join(",\n  "),
                select.join(",\n    "),
                measures.join(",\n    "),
                from.replace('\n', "\n  "),
                filter.replace('\n', "\n  "),
                exprs.join(", "),
                names.join(", ")
            );
        }

        self.grouped(&levels, &cells, &from, &filter, q.subtotals)
    }

    /// A grouped question: the levels (under internal names inside, so an output name never
    /// clashes with a column of the same name) and the cells, ordered by the levels' values;
    /// with subtotals, subtotal members read `All` and sort after their members.
    fn grouped(
        &self,
        levels: &[String],
        cells: &[(String, String)],
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
                    format!("__s{i}, __l{i}")
                }
                None => format!("__l{i}"),
            };
            if subtotals.is_some() {
                inner.push(format!("GROUPING({e}) AS __g{i}"));
                outer.push(format!(
                    "CASE WHEN __g{i} = 1 THEN 'All' ELSE CAST(__l{i} AS VARCHAR) END AS {}",
                    ident(l)
                ));
                order.push(format!("__g{i}, {sort}"));
            } else {
                outer.push(format!("__l{i} AS {}", ident(l)));
                order.push(sort);
            }
        }
        for (sql, name) in cells {
            inner.push(format!("{sql} AS {}", ident(name)));
            outer.push(ident(name));
        }
        let group = match subtotals {
            None => exprs.join(", "),
            Some(Subtotals::Rollup) => format!("ROLLUP({})", exprs.join(", ")),
            Some(Subtotals::Cube) => format!("CUBE({})", exprs.join(", ")),
        };
        format!(
            "SELECT {}\nFROM (\n  SELECT {}\n  {}{}\n  GROUP BY {group}\n) AS cells\nORDER BY {}",
            outer.join(",\n  "),
            inner.join(",\n    "),
            from.replace('\n', "\n  "),
            filter.replace('\n', "\n  "),
            order.join(", ")
        )
    }

    /// SQL for a pivot once the members are known.
    fn pivot_sql(
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
                cells.push((self.measure_sql(m, Some(&cond)), name));
            }
        }
        Ok(self.grouped(rows, &cells, &from, &filter, q.subtotals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
