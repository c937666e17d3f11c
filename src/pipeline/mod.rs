//! Pipeline files: parse, check, plan. The nightly batch as one TOML file.
//!
//! ```text
//! pipelines/nightly.toml ──parse + check (no data touched)──▶ Pipeline: stages in run order
//!                                                              │  ecrm run [--select ..]
//!                                                              ▼
//!            ingest → features → segment / churn-train → churn-score → basket → export …
//!            each stage: read tables by name → write tables by name (one commit) → data tests
//!                                                              │
//!                                              <warehouse>/runs/<run id>.json (manifest)
//! ```
//!
//! - Input: a pipeline file. Paths inside it (contracts, SQL files, suppression lists, export
//!   targets, `warehouse`) are relative to the file, so a scheduler may start anywhere.
//! - Output of [`Pipeline::load`]: the checked [`Pipeline`], its stages in dependency order
//!   (file order among independent stages), or the first mistake found, naming the file, the
//!   stage and the key. Nothing reads data or the warehouse; a whole check takes milliseconds.
//! - Top-level keys: `name` (default: the file name without `.toml`), `description`,
//!   `warehouse` (default: the `--warehouse` option), `external` (tables the pipeline reads
//!   but another process builds), `[stages.NAME]`.
//! - Every stage: `kind`, `description`, `after` (stages to wait for besides those producing
//!   its inputs), `column_descriptions` (`column` or `table.column` = text; checked
//!   against the output after the stage runs), `[[stages.NAME.tests]]` ([`datatest`]).
//! - Kinds and their keys (each key is the matching `ecrm` option with `_` for `-`, with the
//!   same default and the same checks):
//!
//! | kind | reads | writes | keys |
//! |---|---|---|---|
//! | `ingest` | the contract's files | the star schema, `rejects`, `loads` | `contract`, `max_reject_rate`, `freshness = { new_file = true, max_age_hours = N }` |
//! | `sql` | `inputs` | `output` | `sql` (inline) or `file`, `inputs`, `output` |
//! | `features` | order lines | `customer_features` | — |
//! | `segment` | `customer_features` | `segments`, `segment_profiles` | as `ecrm segment` |
//! | `churn-train` | order lines | model `model` (`<warehouse>/models/NAME.json`) | `model`, as `ecrm churn train` |
//! | `churn-score` | model `model`, order lines | `churn_scores` | `model` |
//! | `basket` | order lines | `basket_rules`, `recommendations` | as `ecrm basket recommend` |
//! | `sequence` | order lines | `sequence_patterns` | as `ecrm sequence` |
//! | `export` | the table of `what` | the file `out` (`{as_of}` is replaced) | `what` (segment, churn, recommendations), as `ecrm export WHAT` |
//! | `report` | whatever the stages before built | `out_dir/<pipeline>/<as-of>/index.html` | `out_dir`; runs after every other stage, also when some failed |
//!
//! Why one table-level dependency graph rather than an explicit stage order: a stage runs
//! once every table it reads is built, so `--select STAGE+` can find what lies downstream,
//! a failed stage stops exactly the stages that would have read its output, and a table that
//! nothing produces is a mistake caught before the run, not an hour into it.

pub mod datatest;
pub mod manifest;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use linfa::ParamGuard;
use serde::Deserialize;

use crate::basket::recommend::RecommendParams;
use crate::basket::{FpGrowthParams, Fraction, Level, RuleParams};
use crate::churn::tree::{TreeParams, ValidTreeParams};
use crate::error::{Error, Result};
use crate::export::{Channel, ExportParams, Selection};
use crate::ingest::contract::Contract;
use crate::segment::{SegmentParams, ValidSegmentParams};
use crate::sequence::{PrefixSpanParams, ValidPrefixSpanParams};
use datatest::DataTest;

/// The tables an ingest stage writes.
pub const INGEST_TABLES: [&str; 7] = [
    "dim_customer",
    "dim_product",
    "dim_date",
    "fact_sales",
    "fact_campaign_contact",
    "rejects",
    "loads",
];

/// What the order-line models read (the feature mart's tables).
const MART_INPUTS: [&str; 3] = ["fact_sales", "dim_product", "dim_customer"];

/// What a report reads when the pipeline builds it (see [`crate::report`]).
const REPORT_INPUTS: [&str; 7] = [
    "fact_sales",
    "loads",
    "rejects",
    "customer_features",
    "segment_profiles",
    "basket_rules",
    "model:churn",
];

/// The table `sequence` stages write.
pub const SEQUENCE_TABLE: &str = "sequence_patterns";

/// A checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file as given.
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// SHA-256 of the file's bytes (a resumed run must find the same file).
    pub sha256: String,
    /// `warehouse`, resolved against the file's folder.
    pub warehouse: Option<PathBuf>,
    pub external: Vec<String>,
    /// In run order: every stage after the stages it depends on.
    pub stages: Vec<Stage>,
}

/// One checked stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub kind: &'static str,
    pub description: Option<String>,
    /// Line of its `[stages.NAME]` header.
    pub line: usize,
    pub action: Action,
    /// Tables it reads (models as `model:NAME`).
    pub inputs: Vec<String>,
    /// Tables it writes (models as `model:NAME`, files as `file:PATH`).
    pub outputs: Vec<String>,
    /// Stages it depends on directly (producers of its inputs, and `after`).
    pub upstream: Vec<String>,
    pub tests: Vec<DataTest>,
    /// Column descriptions: (table, column) → text.
    pub columns: BTreeMap<(String, String), String>,
    /// The stage's keys as written, for the run manifest.
    pub params: serde_json::Value,
}

/// What a stage does, with checked parameters.
#[derive(Debug, Clone)]
pub enum Action {
    Ingest {
        contract: Box<Contract>,
        max_reject_rate: Option<f64>,
        freshness: Option<Freshness>,
    },
    Sql {
        sql: String,
        output: String,
    },
    Features,
    Segment(ValidSegmentParams),
    ChurnTrain {
        model: String,
        lookback_days: i64,
        horizon_days: i64,
        params: ValidTreeParams,
        cv: Option<usize>,
        seed: u64,
        train_sample: Option<usize>,
    },
    ChurnScore {
        model: String,
    },
    Basket(RecommendParams),
    Sequence {
        params: ValidPrefixSpanParams,
        level: Level,
    },
    /// `params.out` may hold `{as_of}`.
    Export(Box<ExportParams>),
    Report {
        out_dir: PathBuf,
    },
}

/// Source freshness: what an ingest stage must find, else the run fails with exit code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// A file not loaded before must be among the inputs.
    #[serde(default)]
    pub new_file: bool,
    /// Every source's newest file must be modified within this many hours.
    pub max_age_hours: Option<u64>,
}

/// The file as TOML, before the stages are checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    name: Option<String>,
    description: Option<String>,
    warehouse: Option<String>,
    #[serde(default)]
    external: Vec<String>,
    #[serde(default)]
    stages: BTreeMap<String, toml::Spanned<toml::Table>>,
}

/// Keys every stage may have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSpec {
    kind: String,
    description: Option<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    column_descriptions: BTreeMap<String, String>,
    #[serde(default)]
    tests: Vec<datatest::TestSpec>,
}

const COMMON_KEYS: [&str; 5] = [
    "kind",
    "description",
    "after",
    "column_descriptions",
    "tests",
];

/// The kinds, in the order the docs list them.
pub const KINDS: [&str; 10] = [
    "ingest",
    "sql",
    "features",
    "segment",
    "churn-train",
    "churn-score",
    "basket",
    "sequence",
    "export",
    "report",
];

/// A number or text that becomes an exact [`Fraction`] (`0.01`, `"1%"`, `"1/100"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FractionSpec {
    Int(i64),
    Float(f64),
    Text(String),
}

impl FractionSpec {
    fn text(&self) -> String {
        match self {
            FractionSpec::Int(i) => i.to_string(),
            // Rust prints the shortest decimal that reads back as the same double, which is
            // what the user wrote (0.005 → "0.005").
            FractionSpec::Float(f) => f.to_string(),
            FractionSpec::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestSpec {
    contract: String,
    max_reject_rate: Option<f64>,
    freshness: Option<Freshness>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    sql: Option<String>,
    file: Option<String>,
    #[serde(default)]
    inputs: Vec<String>,
    output: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeaturesSpec {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentSpec {
    method: Option<String>,
    k: Option<toml::Value>,
    features: Option<Vec<String>>,
    scale: Option<String>,
    n_init: Option<usize>,
    seed: Option<u64>,
    eps: Option<f64>,
    min_points: Option<usize>,
    train_sample: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChurnTrainSpec {
    model: String,
    lookback_days: Option<i64>,
    horizon_days: Option<i64>,
    max_depth: Option<usize>,
    min_samples_leaf: Option<usize>,
    min_samples_split: Option<usize>,
    min_impurity_decrease: Option<f64>,
    criterion: Option<String>,
    class_weight: Option<String>,
    leaf_probability: Option<String>,
    cv: Option<usize>,
    seed: Option<u64>,
    train_sample: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportSpec {
    out_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChurnScoreSpec {
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasketSpec {
    min_support: Option<FractionSpec>,
    max_len: Option<usize>,
    min_confidence: Option<FractionSpec>,
    min_lift: Option<FractionSpec>,
    top: Option<usize>,
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceSpec {
    min_support: FractionSpec,
    max_len: Option<usize>,
    max_gap_days: Option<i64>,
    max_patterns: Option<usize>,
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportSpec {
    what: String,
    segment: Option<String>,
    #[serde(default)]
    risk: Vec<String>,
    min_probability: Option<f64>,
    top: Option<u64>,
    max_rank: Option<u32>,
    columns: Option<Vec<String>>,
    out: String,
    format: Option<String>,
    require_consent: Option<String>,
    suppress: Option<String>,
}

/// Where a stage's keys are, for messages.
struct At<'a> {
    file: &'a Path,
    pipeline: &'a str,
    stage: &'a str,
    line: usize,
}

impl At<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> Error {
        let key = if key.is_empty() {
            format!("stages.{} (line {})", self.stage, self.line)
        } else {
            format!("stages.{}.{key} (stage at line {})", self.stage, self.line)
        };
        Error::config(self.file, key, message)
    }

    /// A library check's `--flag` error as this stage's `flag` key.
    fn rekey(&self, e: Error) -> Error {
        match e {
            Error::Usage { arg, message } => {
                let key = arg.trim_start_matches("--").replace('-', "_");
                self.err(&key, message)
            }
            other => other,
        }
    }

    /// One of a [`ValueEnum`]'s names.
    fn choice<T: ValueEnum>(&self, key: &str, given: &str) -> Result<T> {
        T::from_str(given, true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
                .collect();
            self.err(
                key,
                format!("{given:?} is not one of: {}", names.join(", ")),
            )
        })
    }

    fn fraction(&self, key: &str, f: &FractionSpec) -> Result<Fraction> {
        f.text()
            .parse::<Fraction>()
            .map_err(|m| self.err(key, m.to_string()))
    }

    /// A path relative to the pipeline file's folder.
    fn path(&self, text: &str) -> PathBuf {
        let base = self.file.parent().unwrap_or(Path::new("."));
        base.join(text)
    }
}

impl Pipeline {
    /// Reads and checks a pipeline file (see the module doc).
    pub fn load(file: &Path) -> Result<Pipeline> {
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Error::config(file, "file", "is not UTF-8 text"))?;
        let mut p = Self::parse(file, &text)?;
        p.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        Ok(p)
    }

    /// Checks pipeline text; `file` names it in messages and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Pipeline> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| Error::toml(file, text, &e))?;
        let name = spec.name.clone().unwrap_or_else(|| {
            file.file_stem()
                .map_or("pipeline".into(), |s| s.to_string_lossy().into_owned())
        });
        check_name(file, "name", &name)?;
        if spec.stages.is_empty() {
            return Err(Error::config(
                file,
                "stages",
                "no stages: add at least one [stages.NAME] table with a kind",
            ));
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let mut stages = Vec::new();
        // File order, so independent stages run in the order the file lists them.
        let mut specs: Vec<_> = spec.stages.into_iter().collect();
        specs.sort_by_key(|(_, t)| t.span().start);
        let mut after = BTreeMap::new();
        for (stage_name, table) in specs {
            let line = text[..table.span().start].matches('\n').count() + 1;
            let at = At {
                file,
                pipeline: &name,
                stage: &stage_name,
                line,
            };
            check_name(
                file,
                &format!("stages.{stage_name} (line {line})"),
                &stage_name,
            )?;
            let (stage, stage_after) = parse_stage(&at, table.into_inner())?;
            after.insert(stage_name.clone(), stage_after);
            stages.push(stage);
        }
        for t in &spec.external {
            check_name(file, "external", t)?;
        }
        let stages = plan(file, stages, &spec.external, &after)?;
        Ok(Pipeline {
            file: file.to_path_buf(),
            name,
            description: spec.description,
            sha256: String::new(),
            warehouse: spec.warehouse.map(|w| base.join(w)),
            external: spec.external,
            stages,
        })
    }

    /// The stages `--select` picks: `NAME` is that stage, `NAME+` it and every stage
    /// downstream of it. No selection is every stage. Returns names in run order.
    pub fn select(&self, selectors: &[String]) -> Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return Ok(self.stages.iter().map(|s| s.name.clone()).collect());
        }
        let mut picked = BTreeSet::new();
        for sel in selectors {
            let (name, downstream) = match sel.strip_suffix('+') {
                Some(n) => (n, true),
                None => (sel.as_str(), false),
            };
            if !self.stages.iter().any(|s| s.name == name) {
                let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::Usage {
                    arg: "--select".into(),
                    message: format!(
                        "{name:?} is not a stage of {} (stages: {})",
                        self.file.display(),
                        names.join(", ")
                    ),
                });
            }
            picked.insert(name.to_string());
            if downstream {
                for s in &self.stages {
                    if self.reaches(name, &s.name) {
                        picked.insert(s.name.clone());
                    }
                }
            }
        }
        Ok(picked)
    }

    /// True when `to` is `from` or lies downstream of it.
    fn reaches(&self, from: &str, to: &str) -> bool {
        if from == to {
            return true;
        }
        let Some(stage) = self.stages.iter().find(|s| s.name == to) else {
            return false;
        };
        stage.upstream.iter().any(|u| self.reaches(from, u))
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Names of stages and tables: they become file names and SQL identifiers.
fn check_name(file: &Path, key: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            file,
            key,
            format!(
                "{name:?} is not a valid name: lower-case letters, digits, _ and -, starting \
                 with a letter or _, at most 64 characters"
            ),
        ))
    }
}

/// Deserializes a stage's keys, naming the stage and the key in the message. Why through
/// text: a `toml::Value` forgets where a value was, while the text deserializer reports a
/// span, whose line starts with the key at fault.
fn keys<T: serde::de::DeserializeOwned>(at: &At<'_>, table: toml::Table) -> Result<T> {
    let text = toml::to_string(&table).map_err(|e| Error::Internal(e.to_string()))?;
    toml::from_str::<T>(&text).map_err(|e| {
        let key = e.span().and_then(|s| {
            let start = text[..s.start].rfind('\n').map_or(0, |i| i + 1);
            let line = text[start..].lines().next().unwrap_or("");
            line.split_once('=').map(|(k, _)| k.trim().to_string())
        });
        at.err(key.as_deref().unwrap_or(""), e.message().trim().to_string())
    })
}

/// Checks one stage's keys; returns the stage (without `upstream`) and its `after` list.
fn parse_stage(at: &At<'_>, mut table: toml::Table) -> Result<(Stage, Vec<String>)> {
    let params = serde_json::to_value(&table).map_err(|e| Error::Internal(e.to_string()))?;
    let mut common_table = toml::Table::new();
    for k in COMMON_KEYS {
        if let Some(v) = table.remove(k) {
            common_table.insert(k.to_string(), v);
        }
    }
    if !common_table.contains_key("kind") {
        return Err(at.err("kind", format!("missing; one of: {}", KINDS.join(", "))));
    }
    let common: CommonSpec = keys(at, common_table)?;
    let kind = KINDS
        .iter()
        .find(|k| **k == common.kind)
        .copied()
        .ok_or_else(|| {
            at.err(
                "kind",
                format!(
                    "{:?} is not a stage kind; one of: {}",
                    common.kind,
                    KINDS.join(", ")
                ),
            )
        })?;
    let (action, inputs, outputs) = match kind {
        "ingest" => ingest_stage(at, table)?,
        "sql" => sql_stage(at, table)?,
        "features" => features_stage(at, table)?,
        "segment" => segment_stage(at, table)?,
        "churn-train" => churn_train_stage(at, table)?,
        "churn-score" => churn_score_stage(at, table)?,
        "basket" => basket_stage(at, table)?,
        "sequence" => sequence_stage(at, table)?,
        "export" => export_stage(at, table)?,
        "report" => report_stage(at, table)?,
        _ => unreachable!("every kind in KINDS is matched"),
    };
    let tables: Vec<&String> = outputs.iter().filter(|o| !o.contains(':')).collect();
    let mut columns = BTreeMap::new();
    for (key, text) in &common.column_descriptions {
        let (table, column) = match key.split_once('.') {
            Some((t, c)) => (t.to_string(), c.to_string()),
            None => match tables.first() {
                Some(t) => ((*t).clone(), key.clone()),
                None => {
                    return Err(at.err(
                        "column_descriptions",
                        "this stage writes no table to describe",
                    ));
                }
            },
        };
        if !tables.iter().any(|t| **t == table) {
            return Err(at.err(
                &format!("column_descriptions.{key}"),
                format!(
                    "{table} is not a table this stage writes ({})",
                    join(&tables)
                ),
            ));
        }
        columns.insert((table, column), text.clone());
    }
    let mut tests = Vec::new();
    for (i, t) in common.tests.into_iter().enumerate() {
        tests.push(DataTest::check(t, &tables, &|m| {
            at.err(&format!("tests[{i}]"), m)
        })?);
    }
    let stage = Stage {
        name: at.stage.to_string(),
        kind,
        description: common.description,
        line: at.line,
        action,
        inputs,
        outputs,
        upstream: Vec::new(),
        tests,
        columns,
        params,
    };
    Ok((stage, common.after))
}

/// A stage's action, the tables it reads and the tables (models, files) it writes.
type Parsed = (Action, Vec<String>, Vec<String>);

/// Owned names.
fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An ingest stage: the contract (read and checked now), the reject-rate gate, freshness.
fn ingest_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: IngestSpec = keys(at, table)?;
    let path = at.path(&s.contract);
    if !path.is_file() {
        return Err(at.err("contract", format!("{}: no such file", path.display())));
    }
    let contract = Contract::load(&path)?;
    if let Some(r) = s.max_reject_rate
        && !(0.0..=1.0).contains(&r)
    {
        return Err(at.err("max_reject_rate", format!("{r} is not between 0 and 1")));
    }
    if let Some(f) = s.freshness
        && !f.new_file
        && f.max_age_hours.is_none()
    {
        return Err(at.err(
            "freshness",
            "says nothing: set new_file = true, max_age_hours = N, or both",
        ));
    }
    if s.freshness.and_then(|f| f.max_age_hours) == Some(0) {
        return Err(at.err("freshness.max_age_hours", "must be at least 1"));
    }
    let action = Action::Ingest {
        contract: Box::new(contract),
        max_reject_rate: s.max_reject_rate,
        freshness: s.freshness,
    };
    Ok((action, vec![], strs(&INGEST_TABLES)))
}

/// A sql stage: one query over its declared inputs, into `output`.
fn sql_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: SqlSpec = keys(at, table)?;
    let sql = match (&s.sql, &s.file) {
        (Some(sql), None) => sql.clone(),
        (None, Some(f)) => {
            let path = at.path(f);
            std::fs::read_to_string(&path)
                .map_err(|e| at.err("file", format!("{}: {e}", path.display())))?
        }
        _ => {
            return Err(at.err(
                "",
                "give the SQL inline (sql = \"...\") or in a file (file = \"x.sql\"), not both",
            ));
        }
    };
    check_name(at.file, &format!("stages.{}.output", at.stage), &s.output)?;
    check_sql(at, &sql, &s.inputs)?;
    let output = s.output.clone();
    Ok((Action::Sql { sql, output }, s.inputs, vec![s.output]))
}

/// A features stage (no keys: the as-of date is the run's).
fn features_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let _: FeaturesSpec = keys(at, table)?;
    Ok((
        Action::Features,
        strs(&MART_INPUTS),
        vec![crate::features::TABLE.to_string()],
    ))
}

/// A segment stage: `ecrm segment`'s options.
fn segment_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: SegmentSpec = keys(at, table)?;
    let d = SegmentParams::default();
    let k = match &s.k {
        None => None,
        Some(toml::Value::Integer(i)) => Some(i.to_string()),
        Some(toml::Value::String(t)) => Some(t.clone()),
        Some(other) => {
            return Err(at.err("k", format!("{other} is not a number or \"auto\"")));
        }
    };
    let params = SegmentParams {
        method: match &s.method {
            Some(m) => at.choice("method", m)?,
            None => d.method,
        },
        k: k.map(|k| k.parse().map_err(|m: String| at.err("k", m)))
            .transpose()?,
        features: s.features,
        scale: match &s.scale {
            Some(m) => at.choice("scale", m)?,
            None => d.scale,
        },
        n_init: s.n_init.unwrap_or(d.n_init),
        seed: s.seed.unwrap_or(d.seed),
        eps: s.eps.unwrap_or(d.eps),
        min_points: s.min_points.unwrap_or(d.min_points),
        train_sample: s.train_sample,
    }
    .check()
    .map_err(|e| at.rekey(e))?;
    Ok((
        Action::Segment(params),
        vec![crate::features::TABLE.to_string()],
        strs(&[
            crate::segment::SEGMENTS_TABLE,
            crate::segment::PROFILES_TABLE,
        ]),
    ))
}

/// A churn-train stage: `ecrm churn train`'s options and the model name.
fn churn_train_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: ChurnTrainSpec = keys(at, table)?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &s.model)?;
    let d = TreeParams::default().0;
    let params = TreeParams(ValidTreeParams {
        max_depth: s.max_depth.unwrap_or(d.max_depth),
        min_samples_split: s.min_samples_split.unwrap_or(d.min_samples_split),
        min_samples_leaf: s.min_samples_leaf.unwrap_or(d.min_samples_leaf),
        min_impurity_decrease: s.min_impurity_decrease.unwrap_or(d.min_impurity_decrease),
        criterion: match &s.criterion {
            Some(c) => at.choice("criterion", c)?,
            None => d.criterion,
        },
        class_weight: match &s.class_weight {
            Some(c) => at.choice("class_weight", c)?,
            None => d.class_weight,
        },
        max_bins: d.max_bins,
        leaf_probability: match &s.leaf_probability {
            Some(c) => at.choice("leaf_probability", c)?,
            None => d.leaf_probability,
        },
    });
    let params = params.check().map_err(|e| at.rekey(e))?;
    let window = crate::churn::warehouse::Window {
        lookback_days: s
            .lookback_days
            .unwrap_or(crate::churn::warehouse::DEFAULT_LOOKBACK_DAYS),
        horizon_days: s
            .horizon_days
            .unwrap_or(crate::churn::warehouse::DEFAULT_HORIZON_DAYS),
    };
    window.check().map_err(|e| at.rekey(e))?;
    crate::churn::check_cv(s.cv).map_err(|e| at.rekey(e))?;
    crate::churn::check_train_sample(s.train_sample).map_err(|e| at.rekey(e))?;
    let action = Action::ChurnTrain {
        model: s.model.clone(),
        lookback_days: window.lookback_days,
        horizon_days: window.horizon_days,
        params,
        cv: s.cv,
        seed: s.seed.unwrap_or(crate::churn::DEFAULT_SEED),
        train_sample: s.train_sample,
    };
    Ok((
        action,
        strs(&MART_INPUTS),
        vec![format!("model:{}", s.model)],
    ))
}

/// A churn-score stage: the model to score with.
fn churn_score_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: ChurnScoreSpec = keys(at, table)?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &s.model)?;
    let mut inputs = vec![format!("model:{}", s.model)];
    inputs.extend(strs(&MART_INPUTS));
    Ok((
        Action::ChurnScore { model: s.model },
        inputs,
        vec![crate::churn::warehouse::SCORES_TABLE.to_string()],
    ))
}

/// A basket stage: `ecrm basket recommend`'s options.
fn basket_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    use crate::basket::recommend as r;
    let s: BasketSpec = keys(at, table)?;
    let frac = |key: &str, v: &Option<FractionSpec>, default: &str| match v {
        Some(f) => at.fraction(key, f),
        None => Ok(default.parse::<Fraction>().expect("default parses")),
    };
    let level: Level = match &s.level {
        Some(l) => at.choice("level", l)?,
        None => Level::default(),
    };
    let top = s.top.unwrap_or(r::DEFAULT_TOP);
    if top == 0 {
        return Err(at.err("top", "must be at least 1"));
    }
    let p = RecommendParams {
        itemsets: FpGrowthParams::new(frac("min_support", &s.min_support, r::DEFAULT_MIN_SUPPORT)?)
            .max_len(Some(s.max_len.unwrap_or(r::DEFAULT_MAX_LEN)))
            .check()
            .map_err(|e| at.rekey(e))?,
        rules: RuleParams::default()
            .min_confidence(frac(
                "min_confidence",
                &s.min_confidence,
                r::DEFAULT_MIN_CONFIDENCE,
            )?)
            .min_lift(Some(frac("min_lift", &s.min_lift, r::DEFAULT_MIN_LIFT)?))
            .check()
            .map_err(|e| at.rekey(e))?,
        level,
        top,
    };
    Ok((
        Action::Basket(p),
        strs(&["fact_sales", "dim_product"]),
        strs(&[r::RULES_TABLE, r::TABLE]),
    ))
}

/// A sequence stage: `ecrm sequence`'s options.
fn sequence_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: SequenceSpec = keys(at, table)?;
    let mut p = PrefixSpanParams::new(at.fraction("min_support", &s.min_support)?)
        .max_len(s.max_len)
        .max_gap(s.max_gap_days);
    if let Some(n) = s.max_patterns {
        p = p.max_patterns(n);
    }
    let params = p.check().map_err(|e| at.rekey(e))?;
    let level = match &s.level {
        Some(l) => at.choice("level", l)?,
        None => Level::default(),
    };
    Ok((
        Action::Sequence { params, level },
        strs(&["fact_sales", "dim_product"]),
        vec![SEQUENCE_TABLE.to_string()],
    ))
}

/// An export stage: `ecrm export WHAT`'s options.
fn export_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: ExportSpec = keys(at, table)?;
    let (selection, table_in) = match s.what.as_str() {
        "segment" => {
            let seg = s.segment.clone().ok_or_else(|| {
                at.err(
                    "segment",
                    "missing: the segment_name or segment_id to export",
                )
            })?;
            (Selection::Segment(seg), crate::segment::SEGMENTS_TABLE)
        }
        "churn" => {
            if let Some(p) = s.min_probability
                && !(0.0..=1.0).contains(&p)
            {
                return Err(at.err(
                    "min_probability",
                    format!("{p} is not a probability; 0 to 1"),
                ));
            }
            let bands = s
                .risk
                .iter()
                .map(|b| at.choice("risk", b))
                .collect::<Result<Vec<_>>>()?;
            let sel = Selection::Churn {
                bands,
                min_probability: s.min_probability,
                top: s.top,
            };
            (sel, crate::churn::warehouse::SCORES_TABLE)
        }
        "recommendations" => (
            Selection::Recommendations {
                max_rank: s.max_rank,
            },
            crate::basket::recommend::TABLE,
        ),
        other => {
            return Err(at.err(
                "what",
                format!("{other:?} is not exportable; one of: segment, churn, recommendations"),
            ));
        }
    };
    let misplaced = [
        ("segment", s.segment.is_some() && s.what != "segment"),
        ("risk", !s.risk.is_empty() && s.what != "churn"),
        (
            "min_probability",
            s.min_probability.is_some() && s.what != "churn",
        ),
        ("top", s.top.is_some() && s.what != "churn"),
        (
            "max_rank",
            s.max_rank.is_some() && s.what != "recommendations",
        ),
    ];
    if let Some((key, _)) = misplaced.iter().find(|(_, bad)| *bad) {
        return Err(at.err(key, format!("does not apply to what = {:?}", s.what)));
    }
    let out = at.path(&s.out);
    let format = match &s.format {
        Some(f) => at.choice("format", f)?,
        None => crate::cli::output::Format::for_file(&out),
    };
    if format == crate::cli::output::Format::Table {
        return Err(at.err("format", "an export is csv, parquet, json or ndjson"));
    }
    let require_consent: Option<Channel> = match &s.require_consent {
        Some(c) => Some(at.choice("require_consent", c)?),
        None => None,
    };
    let suppress = s.suppress.as_deref().map(|p| at.path(p));
    if let Some(p) = &suppress
        && !p.is_file()
    {
        return Err(at.err("suppress", format!("{}: no such file", p.display())));
    }
    let params = ExportParams {
        selection,
        format,
        out,
        require_consent,
        suppress,
        columns: s.columns,
    };
    let mut inputs = vec![table_in.to_string(), "dim_customer".to_string()];
    if matches!(params.selection, Selection::Segment(_)) {
        inputs.push(crate::features::TABLE.to_string());
    }
    let file = format!("file:{}", params.out.display());
    Ok((Action::Export(Box::new(params)), inputs, vec![file]))
}

/// A report stage: where reports go.
fn report_stage(at: &At<'_>, table: toml::Table) -> Result<Parsed> {
    let s: ReportSpec = keys(at, table)?;
    let out_dir = at.path(&s.out_dir);
    let file = format!(
        "file:{}",
        out_dir
            .join(at.pipeline)
            .join("{as_of}/index.html")
            .display()
    );
    Ok((Action::Report { out_dir }, strs(&REPORT_INPUTS), vec![file]))
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A SQL stage's SQL must parse, be one query, and read only its declared inputs.
fn check_sql(at: &At<'_>, sql: &str, inputs: &[String]) -> Result<()> {
    let statements = datafusion::sql::parser::DFParser::parse_sql(sql)
        .map_err(|e| at.err("sql", format!("does not parse: {e}")))?;
    let is_query = |s: &datafusion::sql::parser::Statement| {
        matches!(s, datafusion::sql::parser::Statement::Statement(q)
            if matches!(**q, datafusion::sql::sqlparser::ast::Statement::Query(_)))
    };
    let what = match statements.len() {
        1 if is_query(&statements[0]) => None,
        1 => Some("is not a query".to_string()),
        n => Some(format!("holds {n} statements")),
    };
    if let Some(what) = what {
        return Err(at.err(
            "sql",
            format!(
                "{what}; a sql stage is one query (SELECT or WITH ... SELECT) whose result \
                 becomes the output table"
            ),
        ));
    }
    let (tables, _) = datafusion::sql::resolve::resolve_table_references(&statements[0], true)
        .map_err(|e| at.err("sql", e.to_string()))?;
    let undeclared: Vec<String> = tables
        .iter()
        .map(|t| t.table().to_string())
        .filter(|t| !inputs.contains(t))
        .collect();
    if !undeclared.is_empty() {
        return Err(at.err(
            "inputs",
            format!(
                "the SQL reads {} but inputs lists [{}]; list every table the SQL reads",
                undeclared.join(", "),
                inputs.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Links each stage to the producers of its inputs, checks that every input has one and
/// every table one producer, and orders the stages (Kahn's algorithm, file order among
/// ready stages); a cycle is reported with its path.
fn plan(
    file: &Path,
    mut stages: Vec<Stage>,
    external: &[String],
    after: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Stage>> {
    let mut producer: BTreeMap<String, String> = BTreeMap::new();
    for s in &stages {
        for o in &s.outputs {
            if external.contains(o) {
                return Err(Error::config(
                    file,
                    format!("stages.{} (line {})", s.name, s.line),
                    format!("writes {o}, which `external` says another process builds"),
                ));
            }
            if let Some(other) = producer.insert(o.clone(), s.name.clone()) {
                return Err(Error::config(
                    file,
                    format!("stages.{} (line {})", s.name, s.line),
                    format!("writes {o}, which stage {other} writes too; a table has one producer"),
                ));
            }
        }
    }
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    // A report reads what the pipeline builds of its tables, and comes last.
    for s in stages.iter_mut().filter(|s| s.kind == "report") {
        s.inputs
            .retain(|i| producer.contains_key(i.as_str()) || external.contains(i));
    }
    let mut upstream: Vec<Vec<String>> = Vec::new();
    for s in &stages {
        let mut up = BTreeSet::new();
        if s.kind == "report" {
            up.extend(names.iter().filter(|n| **n != s.name).cloned());
        }
        let mut reads: Vec<&String> = s.inputs.iter().collect();
        reads.extend(s.tests.iter().flat_map(|t| t.references()));
        for input in reads {
            match producer.get(input.as_str()) {
                Some(p) if *p != s.name => {
                    up.insert(p.to_string());
                }
                Some(_) => {}
                None if external.contains(input) => {}
                None => {
                    let what = if let Some(m) = input.strip_prefix("model:") {
                        format!("model {m:?}, which no churn-train stage writes")
                    } else {
                        format!(
                            "table {input}, which no stage writes; add the stage that builds \
                             it, or list it in `external` if another process does"
                        )
                    };
                    return Err(Error::config(
                        file,
                        format!("stages.{} (line {})", s.name, s.line),
                        format!("reads {what}"),
                    ));
                }
            }
        }
        for a in after.get(&s.name).into_iter().flatten() {
            if !names.contains(a) {
                return Err(Error::config(
                    file,
                    format!("stages.{}.after (line {})", s.name, s.line),
                    format!("{a:?} is not a stage (stages: {})", names.join(", ")),
                ));
            }
            up.insert(a.clone());
        }
        upstream.push(up.into_iter().collect());
    }
    for (s, up) in stages.iter_mut().zip(upstream) {
        s.upstream = up;
    }
    // Kahn's algorithm; among ready stages, the first in the file goes first.
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    let mut left = stages;
    while !left.is_empty() {
        let Some(i) = left
            .iter()
            .position(|s| s.upstream.iter().all(|u| done.contains(u)))
        else {
            let cycle = find_cycle(&left);
            return Err(Error::config(
                file,
                format!("stages.{}", cycle[0]),
                format!(
                    "the stages depend on each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            ));
        };
        let s = left.remove(i);
        done.insert(s.name.clone());
        order.push(s);
    }
    Ok(order)
}

/// A cycle among stages none of which can run: walk upstream from the first until a stage
/// repeats.
fn find_cycle(left: &[Stage]) -> Vec<String> {
    let mut path: Vec<String> = vec![left[0].name.clone()];
    loop {
        let current = left
            .iter()
            .find(|s| Some(&s.name) == path.last())
            .expect("the path holds stages that are left");
        let next = current
            .upstream
            .iter()
            .find(|u| left.iter().any(|s| &s.name == *u))
            .expect("a stage that cannot run waits for a stage that is left")
            .clone();
        if let Some(start) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[start..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        Pipeline::parse(Path::new("p.toml"), text)
    }

    const CHAIN: &str = r#"
        external = ["fact_sales", "dim_product", "dim_customer"]
        [stages.c]
        kind = "sql"
        sql = "SELECT * FROM b"
        inputs = ["b"]
        output = "c"
        [stages.a]
        kind = "sql"
        sql = "SELECT 1 AS x FROM fact_sales"
        inputs = ["fact_sales"]
        output = "a"
        [stages.b]
        kind = "sql"
        sql = "SELECT * FROM a"
        inputs = ["a"]
        output = "b"
        [stages.d]
        kind = "features"
    "#;

    #[test]
    fn stages_run_after_their_producers_and_in_file_order_otherwise() {
        let p = parse(CHAIN).unwrap();
        let order: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(p.stage("c").unwrap().upstream, ["b"]);
    }

    #[test]
    fn select_with_plus_takes_everything_downstream() {
        let p = parse(CHAIN).unwrap();
        let got: Vec<String> = p.select(&["b+".into()]).unwrap().into_iter().collect();
        assert_eq!(got, ["b", "c"]);
        let got: Vec<String> = p
            .select(&["a".into(), "d".into()])
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, ["a", "d"]);
        assert!(p.select(&["zz".into()]).is_err());
    }

    #[test]
    fn a_cycle_is_reported_with_its_path() {
        let text = r#"
            [stages.a]
            kind = "sql"
            sql = "SELECT * FROM b"
            inputs = ["b"]
            output = "a"
            [stages.b]
            kind = "sql"
            sql = "SELECT * FROM a"
            inputs = ["a"]
            output = "b"
        "#;
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("cycle: a → b → a") || e.contains("cycle: b → a → b"),
            "{e}"
        );
    }

    #[test]
    fn sql_that_reads_an_undeclared_table_is_refused() {
        let text = r#"
            external = ["fact_sales"]
            [stages.a]
            kind = "sql"
            sql = "WITH t AS (SELECT * FROM fact_sales) SELECT * FROM t JOIN dim_product USING (product_key)"
            inputs = ["fact_sales"]
            output = "a"
        "#;
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("reads dim_product but inputs lists [fact_sales]"),
            "{e}"
        );
    }
}
