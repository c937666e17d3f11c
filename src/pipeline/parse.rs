//! Reading a pipeline file: its TOML, every stage's keys into the stage kind's parameter
//! types (serde alone), and the checks that need no data.
//!
//! A stage's keys are shared out: the keys every stage has ([`COMMON_KEYS`]), then the keys
//! of the kind's own ([`Keys::own`]), then each parameter type of the kind takes its fields
//! ([`Keys::part`]); a key that nobody takes is an unknown key. Errors name the file, the
//! stage, the key and the line of the stage's table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::datatest::{self, DataTest};
use super::{Action, Freshness, Kind, Pipeline, Stage};
use crate::basket::recommend::RecommendParams;
use crate::campaign::results::CampaignReportParams;
use crate::campaign::uplift::UpliftTrainParams;
use crate::churn::ChurnTrainParams;
use crate::cohorts::triangle::CohortParams;
use crate::error::{Error, Result};
use crate::export::{
    ChurnSelection, Destination, ExportParams, RecommendationSelection, SegmentSelection,
    Selection, UpliftSelection, ValueSelection,
};
use crate::ingest::IngestParams;
use crate::ingest::contract::Contract;
use crate::segment::SegmentParams;
use crate::sequence::{SequenceParams, SequenceSource};
use crate::value::profit::ProfitParams;
use crate::value::score::ClvScoreParams;
use crate::value::train::ClvTrainParams;
use crate::warehouse::tables;
use crate::web::WebSessionsParams;

/// What a report reads when the pipeline builds it (see [`crate::report`]).
const REPORT_INPUTS: [&str; 7] = [
    tables::FACT_SALES,
    tables::LOADS,
    tables::REJECTS,
    tables::CUSTOMER_FEATURES,
    tables::SEGMENT_PROFILES,
    tables::BASKET_RULES,
    "model:churn",
];

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

/// Where a stage's keys are, for messages.
pub(super) struct At<'a> {
    pub file: &'a Path,
    pub pipeline: &'a str,
    pub stage: &'a str,
    pub line: usize,
}

impl At<'_> {
    /// An error at `key` of this stage (the whole stage when `key` is empty).
    fn err(&self, key: &str, message: impl Into<String>) -> Error {
        let key = if key.is_empty() {
            format!("stages.{} (line {})", self.stage, self.line)
        } else {
            format!("stages.{}.{key} (stage at line {})", self.stage, self.line)
        };
        Error::config(self.file, key, message)
    }

    /// A parameter error of a library check as this stage's key.
    fn rekey(&self, e: Error) -> Error {
        e.at_stage(self.file, self.stage, self.line)
    }

    /// A path relative to the pipeline file's folder.
    fn path(&self, text: &Path) -> PathBuf {
        let base = self.file.parent().unwrap_or(Path::new("."));
        base.join(text)
    }
}

/// Reads and checks pipeline text (see [`Pipeline::parse`]).
pub(super) fn pipeline(file: &Path, text: &str) -> Result<Pipeline> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| Error::toml(file, text, &e))?;
    let name = spec.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map_or("pipeline".into(), |s| s.to_string_lossy().into_owned())
    });
    check_pipeline_name(file, &name)?;
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
        let (stage, stage_after) = stage(&at, table.into_inner())?;
        after.insert(stage_name.clone(), stage_after);
        stages.push(stage);
    }
    for t in &spec.external {
        check_name(file, "external", t)?;
    }
    let stages = super::plan::order(file, stages, &spec.external, &after)?;
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

/// A pipeline's name: it names a folder of reports, so `-` may join words.
fn check_pipeline_name(file: &Path, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    Err(Error::config(
        file,
        "name",
        format!(
            "{name:?} is not a valid name: lower-case letters, digits, _ and -, starting with a \
             letter or _, at most 64 characters"
        ),
    ))
}

/// Names of stages and tables: they become file names and SQL identifiers, so they are
/// snake_case (a `-` would read as a minus in SQL).
pub(super) fn check_name(file: &Path, key: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            file,
            key,
            format!(
                "{name:?} is not a valid name: lower-case letters, digits and _, starting with \
                 a letter or _, at most 64 characters"
            ),
        ))
    }
}

/// Deserializes a table of keys, naming the stage and the key in the message. Why through
/// text: a `toml::Value` forgets where a value was, while the text deserializer reports a
/// span, whose line starts with the key at fault.
fn keys<T: DeserializeOwned>(at: &At<'_>, table: toml::Table) -> Result<T> {
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

/// A stage's keys being shared out among the kind's own keys and its parameter types.
struct Keys<'a> {
    at: &'a At<'a>,
    table: toml::Table,
    /// Every key taken so far, in order, for the message about an unknown one.
    known: Vec<&'static str>,
}

impl<'a> Keys<'a> {
    fn new(at: &'a At<'a>, table: toml::Table) -> Self {
        Keys {
            at,
            table,
            known: Vec::new(),
        }
    }

    /// One key of the kind's own, read as `T` (None when absent).
    fn own<T: DeserializeOwned>(&mut self, key: &'static str) -> Result<Option<T>> {
        self.known.push(key);
        let Some(value) = self.table.remove(key) else {
            return Ok(None);
        };
        let one: BTreeMap<String, T> =
            keys(self.at, toml::Table::from_iter([(key.to_string(), value)]))?;
        Ok(one.into_values().next())
    }

    /// A required key of the kind's own.
    fn required<T: DeserializeOwned>(&mut self, key: &'static str, what: &str) -> Result<T> {
        self.own(key)?
            .ok_or_else(|| self.at.err(key, format!("missing: {what}")))
    }

    /// Removes the keys of `T` that are present, without reading them.
    fn take_fields<T: DeserializeOwned>(&mut self) -> toml::Table {
        let fields = crate::param::fields::<T>();
        fields
            .iter()
            .filter_map(|f| self.table.remove(*f).map(|v| (f.to_string(), v)))
            .collect()
    }

    /// The parameter type `T`, read from its keys.
    fn part<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.known.extend(crate::param::fields::<T>());
        let mine = self.take_fields::<T>();
        keys(self.at, mine)
    }

    /// Refuses the keys nobody took, as serde words an unknown field.
    fn done(self) -> Result<()> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(k) => {
                let expected: Vec<String> = self.known.iter().map(|f| format!("`{f}`")).collect();
                Err(self.at.err(
                    k,
                    format!(
                        "unknown field `{k}`, expected one of {}",
                        expected.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Checks one stage's keys; returns the stage (without `upstream`) and its `after` list.
fn stage(at: &At<'_>, mut table: toml::Table) -> Result<(Stage, Vec<String>)> {
    let params = serde_json::to_value(&table).map_err(|e| Error::Internal(e.to_string()))?;
    let mut common_table = toml::Table::new();
    for k in COMMON_KEYS {
        if let Some(v) = table.remove(k) {
            common_table.insert(k.to_string(), v);
        }
    }
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let one_of = || format!("one of: {}", names.join(", "));
    if !common_table.contains_key("kind") {
        return Err(at.err("kind", format!("missing; {}", one_of())));
    }
    let common: CommonSpec = keys(at, common_table)?;
    let kind = Kind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == common.kind)
        .ok_or_else(|| {
            at.err(
                "kind",
                format!("{:?} is not a stage kind; {}", common.kind, one_of()),
            )
        })?;
    let mut keys = Keys::new(at, table);
    let (action, inputs, outputs) = match kind {
        Kind::Ingest => ingest_stage(&mut keys)?,
        Kind::Sql => sql_stage(&mut keys)?,
        Kind::Features => features_stage(),
        Kind::Segment => segment_stage(&mut keys)?,
        Kind::ChurnTrain => churn_train_stage(&mut keys)?,
        Kind::ChurnScore => churn_score_stage(&mut keys)?,
        Kind::ClvTrain => clv_train_stage(&mut keys)?,
        Kind::ClvScore => clv_score_stage(&mut keys)?,
        Kind::Profit => profit_stage(&mut keys)?,
        Kind::Cohorts => cohorts_stage(&mut keys)?,
        Kind::CampaignReport => campaign_report_stage(&mut keys)?,
        Kind::UpliftTrain => uplift_train_stage(&mut keys)?,
        Kind::UpliftScore => uplift_score_stage(&mut keys)?,
        Kind::WebSessions => web_sessions_stage(&mut keys)?,
        Kind::Basket => basket_stage(&mut keys)?,
        Kind::Sequence => sequence_stage(&mut keys)?,
        Kind::Export => export_stage(&mut keys)?,
        Kind::Report => report_stage(&mut keys)?,
    };
    keys.done()?;
    let tables: Vec<&String> = outputs.iter().filter(|o| !o.contains(':')).collect();
    let columns = column_descriptions(at, &common.column_descriptions, &tables)?;
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
        inputs_if_built: match kind {
            // The stages that build the customer mart.
            Kind::Features
            | Kind::ChurnTrain
            | Kind::ChurnScore
            | Kind::UpliftTrain
            | Kind::UpliftScore => strs(&tables::MART_INPUTS_IF_BUILT),
            _ => Vec::new(),
        },
        outputs,
        upstream: Vec::new(),
        tests,
        columns,
        params,
    };
    Ok((stage, common.after))
}

/// `column_descriptions`: `column` (of the stage's first table) or `table.column` = text.
fn column_descriptions(
    at: &At<'_>,
    given: &BTreeMap<String, String>,
    tables: &[&String],
) -> Result<BTreeMap<(String, String), String>> {
    let mut columns = BTreeMap::new();
    for (key, text) in given {
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
            let names: Vec<&str> = tables.iter().map(|s| s.as_str()).collect();
            return Err(at.err(
                &format!("column_descriptions.{key}"),
                format!(
                    "{table} is not a table this stage writes ({})",
                    names.join(", ")
                ),
            ));
        }
        columns.insert((table, column), text.clone());
    }
    Ok(columns)
}

/// A stage's action, the tables it reads and the tables (models, files) it writes.
type Parsed = (Action, Vec<String>, Vec<String>);

/// Owned names.
fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An ingest stage: the contract (read and checked now), the reject-rate gate, freshness.
fn ingest_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let mut p: IngestParams = keys.part()?;
    let freshness: Option<Freshness> = keys.own("freshness")?;
    p.contract = at.path(&p.contract);
    if !p.contract.is_file() {
        return Err(at.err(
            "contract",
            format!("{}: no such file", p.contract.display()),
        ));
    }
    let contract = Contract::load(&p.contract)?;
    p.check().map_err(|e| at.rekey(e))?;
    if let Some(f) = freshness {
        if !f.new_file && f.max_age_hours.is_none() {
            return Err(at.err(
                "freshness",
                "says nothing: set new_file = true, max_age_hours = N, or both",
            ));
        }
        match f.max_age_hours {
            Some(0) => return Err(at.err("freshness.max_age_hours", "must be at least 1")),
            Some(h) if h > Freshness::MAX_AGE_HOURS => {
                return Err(at.err(
                    "freshness.max_age_hours",
                    format!("{h} is out of range; 1 to {}", Freshness::MAX_AGE_HOURS),
                ));
            }
            _ => {}
        }
    }
    let action = Action::Ingest {
        contract: Box::new(contract),
        max_reject_rate: p.max_reject_rate,
        freshness,
    };
    Ok((action, vec![], strs(&tables::INGEST)))
}

/// A sql stage: one query over its declared inputs, into `output`.
fn sql_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let inline: Option<String> = keys.own("sql")?;
    let file: Option<PathBuf> = keys.own("file")?;
    let inputs: Vec<String> = keys.own("inputs")?.unwrap_or_default();
    let output: String = keys.required("output", "the table the query's result becomes")?;
    let sql = match (inline, file) {
        (Some(sql), None) => sql,
        (None, Some(f)) => {
            let path = at.path(&f);
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
    check_name(at.file, &format!("stages.{}.output", at.stage), &output)?;
    for t in &inputs {
        check_name(at.file, &format!("stages.{}.inputs", at.stage), t)?;
    }
    check_sql(at, &sql, &inputs)?;
    let outputs = vec![output.clone()];
    Ok((Action::Sql { sql, output }, inputs, outputs))
}

/// A features stage (no keys: the as-of date is the run's).
fn features_stage() -> Parsed {
    (
        Action::Features,
        strs(&tables::MART_INPUTS),
        vec![tables::CUSTOMER_FEATURES.to_string()],
    )
}

/// A segment stage: [`SegmentParams`].
fn segment_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let p: SegmentParams = keys.part()?;
    let params = p.check().map_err(|e| keys.at.rekey(e))?;
    Ok((
        Action::Segment(params),
        vec![tables::CUSTOMER_FEATURES.to_string()],
        strs(&[tables::SEGMENTS, tables::SEGMENT_PROFILES]),
    ))
}

/// A churn-train stage: the model's name and [`ChurnTrainParams`].
fn churn_train_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the model's name")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    let p: ChurnTrainParams = keys.part()?;
    let params = p.check().map_err(|e| at.rekey(e))?;
    let outputs = vec![format!("model:{model}")];
    Ok((
        Action::ChurnTrain { model, params },
        strs(&tables::MART_INPUTS),
        outputs,
    ))
}

/// A churn-score stage: the model to score with.
fn churn_score_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the name of the model to score with")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    let mut inputs = vec![format!("model:{model}")];
    inputs.extend(strs(&tables::MART_INPUTS));
    Ok((
        Action::ChurnScore { model },
        inputs,
        vec![tables::CHURN_SCORES.to_string()],
    ))
}

/// A clv-train stage: the model's name and [`ClvTrainParams`].
fn clv_train_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the model's name")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    let params: ClvTrainParams = keys.part()?;
    let outputs = vec![format!("model:{model}")];
    Ok((
        Action::ClvTrain { model, params },
        strs(&[tables::FACT_SALES]),
        outputs,
    ))
}

/// A clv-score stage: the model to score with and [`ClvScoreParams`].
fn clv_score_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the name of the model to score with")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    let params: ClvScoreParams = keys.part()?;
    params.check().map_err(|e| at.rekey(e))?;
    let inputs = vec![format!("model:{model}"), tables::FACT_SALES.to_string()];
    Ok((
        Action::ClvScore { model, params },
        inputs,
        strs(&[tables::CUSTOMER_VALUE]),
    ))
}

/// An uplift-train stage: the model's name, the campaigns, the window and
/// [`UpliftTrainParams`].
fn uplift_train_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the model's name")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    let campaigns: Vec<String> = keys.own("campaign")?.unwrap_or_default();
    let window_days: Option<u32> = keys.own("window_days")?;
    if window_days == Some(0) {
        return Err(at.err("window_days", "a window of 0 days holds nothing"));
    }
    let params: UpliftTrainParams = keys.part()?;
    params.check().map_err(|e| at.rekey(e))?;
    Ok((
        Action::UpliftTrain {
            model: model.clone(),
            campaigns,
            window_days,
            params,
        },
        strs(&[
            tables::FACT_CAMPAIGN_CONTACT,
            tables::DIM_CAMPAIGN,
            tables::FACT_SALES,
        ]),
        vec![format!("model:{model}")],
    ))
}

/// An uplift-score stage: the model to score the mart's customers with.
fn uplift_score_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let model: String = keys.required("model", "the name of the model to score with")?;
    check_name(at.file, &format!("stages.{}.model", at.stage), &model)?;
    Ok((
        Action::UpliftScore {
            model: model.clone(),
        },
        vec![format!("model:{model}"), tables::FACT_SALES.to_string()],
        strs(&[tables::UPLIFT_SCORES]),
    ))
}

/// A campaign-report stage: [`CampaignReportParams`], `by` a level; what `by` needs beside
/// the contacts (segments, the mart, customer value) is read too.
fn campaign_report_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let params: CampaignReportParams = keys.part()?;
    params.check().map_err(|e| keys.at.rekey(e))?;
    let by = params.level().map_err(|e| keys.at.rekey(e))?;
    let mut inputs = vec![
        tables::FACT_CAMPAIGN_CONTACT,
        tables::DIM_CAMPAIGN,
        tables::FACT_SALES,
        tables::DIM_CUSTOMER,
    ];
    use crate::campaign::results::ReportBy;
    match by {
        Some(ReportBy::Segment) => inputs.push(tables::SEGMENTS),
        Some(ReportBy::RfmSegment) => inputs.push(tables::CUSTOMER_FEATURES),
        Some(ReportBy::ValueDecile) => inputs.push(tables::CUSTOMER_VALUE),
        _ => {}
    }
    Ok((
        Action::CampaignReport(params),
        strs(&inputs),
        strs(&[tables::CAMPAIGN_RESULTS]),
    ))
}

/// A web-sessions stage: [`WebSessionsParams`]. Order lines are read when the warehouse has
/// them (purchase events' invoices), so they are not an input the graph must produce.
fn web_sessions_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let params: WebSessionsParams = keys.part()?;
    params.check().map_err(|e| keys.at.rekey(e))?;
    Ok((
        Action::WebSessions(params),
        strs(&[tables::FACT_WEB_EVENT]),
        strs(&[tables::WEB_SESSIONS, tables::DIM_VISITOR]),
    ))
}

/// A profit stage: [`ProfitParams`].
fn profit_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let params: ProfitParams = keys.part()?;
    params.check().map_err(|e| keys.at.rekey(e))?;
    Ok((
        Action::Profit(params),
        strs(&[
            tables::FACT_SALES,
            tables::DIM_PRODUCT,
            tables::FACT_CAMPAIGN_CONTACT,
        ]),
        strs(&[tables::CUSTOMER_PROFIT]),
    ))
}

/// A cohorts stage: [`CohortParams`].
fn cohorts_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let params: CohortParams = keys.part()?;
    Ok((
        Action::Cohorts(params),
        strs(&tables::MART_INPUTS),
        strs(&[tables::COHORT_RETENTION]),
    ))
}

/// A basket stage: [`RecommendParams`].
fn basket_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let p: RecommendParams = keys.part()?;
    let params = p.check().map_err(|e| keys.at.rekey(e))?;
    Ok((
        Action::Basket(params),
        strs(&[tables::FACT_SALES, tables::DIM_PRODUCT]),
        strs(&[tables::BASKET_RULES, tables::RECOMMENDATIONS]),
    ))
}

/// A sequence stage: [`SequenceParams`].
fn sequence_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let p: SequenceParams = keys.part()?;
    let params = p.check().map_err(|e| keys.at.rekey(e))?;
    let inputs = match params.source() {
        SequenceSource::Orders => strs(&[tables::FACT_SALES, tables::DIM_PRODUCT]),
        SequenceSource::Web => strs(&[tables::FACT_WEB_EVENT]),
    };
    let output = params.table().to_string();
    Ok((Action::Sequence(params), inputs, vec![output]))
}

/// An export stage: `what`, that selection's keys, and the [`Destination`].
fn export_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let what: String = keys.required("what", "segment, churn, recommendations, value or uplift")?;
    // Keys of the other selections do not apply to this one (unless it has them too, as
    // churn and value both have `top`).
    let selections = [
        ("segment", crate::param::fields::<SegmentSelection>()),
        ("churn", crate::param::fields::<ChurnSelection>()),
        (
            "recommendations",
            crate::param::fields::<RecommendationSelection>(),
        ),
        ("value", crate::param::fields::<ValueSelection>()),
        ("uplift", crate::param::fields::<UpliftSelection>()),
    ];
    let own: &[&str] = selections
        .iter()
        .find(|(name, _)| *name == what)
        .map_or(&[], |(_, fields)| fields);
    let mut misplaced: Vec<&str> = Vec::new();
    for (other, fields) in &selections {
        if *other != what {
            misplaced.extend(
                fields
                    .iter()
                    .copied()
                    .filter(|f| keys.table.contains_key(*f) && !own.contains(f)),
            );
        }
    }
    misplaced.dedup();
    let selection = match what.as_str() {
        "segment" => {
            if !keys.table.contains_key("segment") {
                return Err(at.err(
                    "segment",
                    "missing: the segment_name or segment_id to export",
                ));
            }
            Selection::Segment(keys.part::<SegmentSelection>()?)
        }
        "churn" => Selection::Churn(keys.part::<ChurnSelection>()?),
        "recommendations" => Selection::Recommendations(keys.part::<RecommendationSelection>()?),
        "value" => Selection::Value(keys.part::<ValueSelection>()?),
        "uplift" => Selection::Uplift(keys.part::<UpliftSelection>()?),
        other => {
            return Err(at.err(
                "what",
                format!(
                    "{other:?} is not exportable; one of: segment, churn, recommendations, value, uplift"
                ),
            ));
        }
    };
    if let Some(key) = misplaced.first() {
        return Err(at.err(key, format!("does not apply to what = {what:?}")));
    }
    let mut to: Destination = keys.part()?;
    to.out = at.path(&to.out);
    to.suppress = to.suppress.map(|p| at.path(p.as_path()));
    let (table_in, _) = selection.table();
    let mut inputs = vec![table_in.to_string(), tables::DIM_CUSTOMER.to_string()];
    if matches!(selection, Selection::Segment(_)) {
        inputs.push(tables::CUSTOMER_FEATURES.to_string());
    }
    let params = ExportParams { selection, to }
        .check()
        .map_err(|e| at.rekey(e))?;
    let file = format!("file:{}", params.out().display());
    Ok((Action::Export(Box::new(params)), inputs, vec![file]))
}

/// A report stage: where reports go.
fn report_stage(keys: &mut Keys<'_>) -> Result<Parsed> {
    let at = keys.at;
    let out_dir: PathBuf = keys.required("out_dir", "the folder reports go to")?;
    let out_dir = at.path(&out_dir);
    let file = format!(
        "file:{}",
        out_dir
            .join(at.pipeline)
            .join("{as_of}/index.html")
            .display()
    );
    Ok((Action::Report { out_dir }, strs(&REPORT_INPUTS), vec![file]))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<super::Pipeline, String> {
        super::pipeline(Path::new("p.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_stage_reads_its_parameter_types_and_no_other_keys() {
        let external = "external = [\"customer_features\", \"fact_sales\", \"dim_product\", \"dim_customer\"]\n";
        let p = parse(&format!(
            "{external}[stages.s]\nkind = \"segment\"\nk = 4\nscale = \"standard\"\n"
        ))
        .unwrap();
        let super::Action::Segment(v) = &p.stages[0].action else {
            panic!("a segment stage")
        };
        assert_eq!(v.params().k, Some(crate::segment::K::Fixed(4)));
        // An unknown key lists every key the kind has.
        let e = parse("[stages.s]\nkind = \"segment\"\nkk = 4\n").unwrap_err();
        assert!(
            e.contains(
                "stages.s.kk (stage at line 1): unknown field `kk`, expected one of `method`,"
            ),
            "{e}"
        );
        // A churn-train stage: its own `model` and two parameter types' keys.
        let p = parse(&format!(
            "{external}[stages.t]\nkind = \"churn-train\"\nmodel = \"m\"\nmax_depth = 3\nhorizon_days = 30\n"
        ))
        .unwrap();
        let super::Action::ChurnTrain { model, params } = &p.stages[0].action else {
            panic!("a churn-train stage")
        };
        assert_eq!(model, "m");
        assert_eq!(
            (params.tree().max_depth(), params.window().horizon_days),
            (3, 30)
        );
        let e = parse("[stages.t]\nkind = \"churn-train\"\nmax_depth = 3\n").unwrap_err();
        assert!(
            e.contains("stages.t.model (stage at line 1): missing"),
            "{e}"
        );
        // A parameter that a check refuses is named as the stage's key.
        let e = parse("[stages.t]\nkind = \"churn-train\"\nmodel = \"m\"\ncv = 1\n").unwrap_err();
        assert!(
            e.contains("stages.t.cv (stage at line 1): 1 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn an_export_takes_the_keys_of_what_it_exports() {
        let base = "[stages.x]\nkind = \"export\"\nout = \"x.csv\"\n";
        let p = parse(&format!(
            "external = [\"churn_scores\", \"dim_customer\"]\n{base}what = \"churn\"\ntop = 5\n"
        ))
        .unwrap();
        assert_eq!(p.stages[0].outputs, ["file:x.csv"]);
        let e = parse(&format!("{base}what = \"churn\"\nmax_rank = 1\n")).unwrap_err();
        assert!(
            e.contains("stages.x.max_rank (stage at line 1): does not apply to what = \"churn\""),
            "{e}"
        );
        let e = parse(&format!("{base}what = \"segment\"\n")).unwrap_err();
        assert!(
            e.contains("stages.x.segment (stage at line 1): missing"),
            "{e}"
        );
        let e = parse(&format!("{base}what = \"churn\"\ncolour = 1\n")).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }
}
