//! Reading and checking a cube model: the TOML's shape (unknown keys refused), then joins,
//! measures, dimensions and hierarchies in that order, each error naming the key at fault;
//! [`Cube::check_columns`] later checks every expression against the warehouse's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::Deserialize;

use super::{
    Aggregate, Cube, Dimension, FACT, Join, Level, Measure, MeasureDef, aliases_in, measures_in,
};
use crate::error::{Error, Result};

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
    /// Aggregate once per distinct value of this expression in a cell (e.g. a customer's
    /// value: once per customer, not once per order line).
    #[serde(default)]
    per: Option<String>,
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

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// "a, b, c": the names of a map's keys, for messages.
fn keys_of<V>(map: &BTreeMap<String, V>) -> String {
    map.keys().cloned().collect::<Vec<_>>().join(", ")
}

impl Cube {
    /// Checks model text; `file` names it in messages, its stem names the cube.
    pub fn parse(file: &Path, text: &str) -> Result<Cube> {
        let p: CubeParams = toml::from_str(text).map_err(|e| Error::toml(file, text, &e))?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cube".into());
        if p.fact.trim().is_empty() {
            return Err(Error::config(file, "fact", "give the fact table's name"));
        }
        let joins = parse_joins(file, &p.joins)?;
        let aliases = Aliases {
            file,
            joins: &joins,
        };
        let measures = parse_measures(file, &p.measures, &aliases)?;
        check_formulas(file, &measures)?;
        let (dimensions, mut levels) = parse_dimensions(file, &p.dimensions, &measures, &aliases)?;
        link_hierarchies(file, &p.dimensions, &dimensions, &mut levels)?;
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
    /// Every expression's key and text, for [`Cube::check_columns`].
    fn expressions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for m in self.measures.values() {
            if let MeasureDef::Aggregate {
                expr, filter, per, ..
            } = &m.def
            {
                let key = format!("measures.{}", m.name);
                let named = [("expr", expr), ("filter", filter), ("per", per)];
                for (what, e) in named {
                    if let Some(e) = e {
                        out.push((format!("{key}.{what}"), e.clone()));
                    }
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
}

/// Joins: names are aliases; each hangs from the fact or another join, and following `from`
/// reaches the fact without a loop.
fn parse_joins(
    file: &Path,
    params: &BTreeMap<String, JoinParams>,
) -> Result<BTreeMap<String, Join>> {
    let mut joins = BTreeMap::new();
    for (alias, j) in params {
        let key = format!("joins.{alias}");
        if !is_identifier(alias) || alias == FACT {
            return Err(Error::config(
                file,
                key,
                format!("a join name is a snake_case alias other than {FACT:?}"),
            ));
        }
        let from = j.from.clone().unwrap_or_else(|| FACT.to_string());
        if from != FACT && !params.contains_key(&from) {
            return Err(Error::config(
                file,
                format!("{key}.from"),
                format!("no join named {from:?}; joins: {}", keys_of(params)),
            ));
        }
        if j.on.is_empty() {
            return Err(Error::config(
                file,
                format!("{key}.on"),
                "give the key columns: on = { from_column = \"table_column\" }",
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
        let mut seen = BTreeSet::new();
        let mut at = alias.clone();
        while at != FACT {
            if !seen.insert(at.clone()) {
                return Err(Error::config(
                    file,
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
    Ok(joins)
}

/// Checks that expressions name only the fact and the model's joins.
struct Aliases<'a> {
    file: &'a Path,
    joins: &'a BTreeMap<String, Join>,
}

impl Aliases<'_> {
    fn check(&self, key: &str, expr: &str) -> Result<()> {
        match aliases_in(expr)
            .into_iter()
            .find(|a| a != FACT && !self.joins.contains_key(a))
        {
            None => Ok(()),
            Some(a) => Err(Error::config(
                self.file,
                key,
                format!(
                    "{a:?} in {expr:?} is neither {FACT:?} nor a join; joins: {}",
                    keys_of(self.joins)
                ),
            )),
        }
    }
}

/// Measures: an aggregate of an expression (optionally filtered) or a formula, not both.
fn parse_measures(
    file: &Path,
    params: &BTreeMap<String, MeasureParams>,
    aliases: &Aliases<'_>,
) -> Result<BTreeMap<String, Measure>> {
    if params.is_empty() {
        return Err(Error::config(
            file,
            "measures",
            "no measures: add at least one [measures.NAME]",
        ));
    }
    let mut measures = BTreeMap::new();
    for (name, m) in params {
        let key = format!("measures.{name}");
        if !is_identifier(name) {
            return Err(Error::config(file, key, "a measure name is snake_case"));
        }
        let def = match (m.aggregate, &m.formula) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    file,
                    key,
                    "give either aggregate (with expr) or formula, not both",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    file,
                    key,
                    "the measure has no aggregate: give aggregate = \"sum\" | \"count\" | \"count_distinct\" | \"min\" | \"max\" | \"avg\" with expr, or a formula over other measures",
                ));
            }
            (Some(aggregate), None) => {
                if m.expr.is_none() && aggregate != Aggregate::Count {
                    return Err(Error::config(
                        file,
                        format!("{key}.expr"),
                        format!("aggregate {aggregate:?} needs an expr to aggregate"),
                    ));
                }
                for e in m.expr.iter().chain(m.filter.iter()).chain(m.per.iter()) {
                    aliases.check(&key, e)?;
                }
                MeasureDef::Aggregate {
                    aggregate,
                    expr: m.expr.clone(),
                    filter: m.filter.clone(),
                    per: m.per.clone(),
                }
            }
            (None, Some(f)) => {
                if m.expr.is_some() || m.filter.is_some() || m.per.is_some() {
                    return Err(Error::config(
                        file,
                        key,
                        "a formula measure has no expr, filter or per: they belong to the measures it uses",
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
    Ok(measures)
}

/// Formulas use measures that exist, without loops.
fn check_formulas(file: &Path, measures: &BTreeMap<String, Measure>) -> Result<()> {
    for name in measures.keys() {
        let mut stack = vec![(name.clone(), vec![name.clone()])];
        while let Some((at, path)) = stack.pop() {
            let MeasureDef::Formula(f) = &measures[&at].def else {
                continue;
            };
            let used = measures_in(f, measures);
            if used.is_empty() && at == *name {
                return Err(Error::config(
                    file,
                    format!("measures.{name}.formula"),
                    format!("{f:?} uses no measure; measures: {}", keys_of(measures)),
                ));
            }
            for u in used {
                if let MeasureDef::Aggregate { per: Some(_), .. } = measures[&u].def {
                    return Err(Error::config(
                        file,
                        format!("measures.{name}.formula"),
                        format!(
                            "{u} aggregates per key (per = ...), and a formula cannot use such a measure; ask for {u} beside it instead"
                        ),
                    ));
                }
                if path.contains(&u) {
                    return Err(Error::config(
                        file,
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
    Ok(())
}

/// Dimensions and their levels: level names are unique across the model and differ from
/// measure names; one time dimension at most.
fn parse_dimensions(
    file: &Path,
    params: &BTreeMap<String, DimensionParams>,
    measures: &BTreeMap<String, Measure>,
    aliases: &Aliases<'_>,
) -> Result<(BTreeMap<String, Dimension>, BTreeMap<String, Level>)> {
    let mut levels: BTreeMap<String, Level> = BTreeMap::new();
    let mut dimensions = BTreeMap::new();
    for (dname, d) in params {
        let key = format!("dimensions.{dname}");
        if d.levels.is_empty() {
            return Err(Error::config(
                file,
                key,
                "no levels: add [dimensions.NAME.levels.LEVEL]",
            ));
        }
        for (lname, l) in &d.levels {
            let lkey = format!("{key}.levels.{lname}");
            if !is_identifier(lname) {
                return Err(Error::config(file, lkey, "a level name is snake_case"));
            }
            if let Some(other) = levels.get(lname) {
                return Err(Error::config(
                    file,
                    lkey,
                    format!(
                        "level {lname:?} is also in dimension {:?}: level names are unique across the model",
                        other.dimension
                    ),
                ));
            }
            if measures.contains_key(lname) {
                return Err(Error::config(
                    file,
                    lkey,
                    format!(
                        "{lname:?} is also a measure: levels and measures name output columns, so they must differ"
                    ),
                ));
            }
            let level = parse_level(&lkey, lname, dname, d.time, l, aliases)?;
            levels.insert(lname.clone(), level);
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
    let time: Vec<&str> = dimensions
        .values()
        .filter(|d| d.time)
        .map(|d| d.name.as_str())
        .collect();
    if time.len() > 1 {
        return Err(Error::config(
            file,
            "dimensions",
            format!(
                "one time dimension at most; time = true in {}",
                time.join(", ")
            ),
        ));
    }
    Ok((dimensions, levels))
}

/// One level under key `lkey`: its expressions name known aliases; periods only on the time
/// dimension, and both or neither of `period` and `periods_per_year`.
fn parse_level(
    lkey: &str,
    name: &str,
    dimension: &str,
    time: bool,
    l: &LevelParams,
    aliases: &Aliases<'_>,
) -> Result<Level> {
    let file = aliases.file;
    aliases.check(lkey, &l.expr)?;
    if let Some(sort) = &l.sort {
        aliases.check(lkey, sort)?;
    }
    let period = match (&l.period, l.periods_per_year) {
        (Some(e), Some(n)) if n > 0 => {
            if !time {
                return Err(Error::config(
                    file,
                    format!("{lkey}.period"),
                    "periods belong to levels of the time dimension (time = true)",
                ));
            }
            aliases.check(lkey, e)?;
            Some((e.clone(), n))
        }
        (None, None) => None,
        _ => {
            return Err(Error::config(
                file,
                lkey,
                "give both period (an integer numbering the periods) and periods_per_year (1, 4, 12, …)",
            ));
        }
    };
    Ok(Level {
        name: name.to_string(),
        dimension: dimension.to_string(),
        expr: l.expr.clone(),
        description: l.description.clone(),
        sort: l.sort.clone(),
        period,
        depth: None,
    })
}

/// Hierarchies: levels of their own dimension, each in one hierarchy, once; sets each
/// level's depth.
fn link_hierarchies(
    file: &Path,
    params: &BTreeMap<String, DimensionParams>,
    dimensions: &BTreeMap<String, Dimension>,
    levels: &mut BTreeMap<String, Level>,
) -> Result<()> {
    let mut in_hierarchy: BTreeMap<String, String> = BTreeMap::new();
    for d in dimensions.values() {
        let key = format!("dimensions.{}.hierarchy", d.name);
        for (depth, lname) in d.hierarchy.iter().enumerate() {
            let Some(level) = levels.get_mut(lname) else {
                return Err(Error::config(
                    file,
                    key,
                    format!(
                        "no level {lname:?}; levels of {}: {}",
                        d.name,
                        keys_of(&params[&d.name].levels)
                    ),
                ));
            };
            if let Some(other) = in_hierarchy.get(lname) {
                return Err(Error::config(
                    file,
                    key,
                    format!(
                        "level {lname:?} is in two hierarchies ({other} and {}): a level belongs to one hierarchy",
                        d.name
                    ),
                ));
            }
            if level.dimension != d.name {
                return Err(Error::config(
                    file,
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
    Ok(())
}
