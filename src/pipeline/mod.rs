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
//! - Kinds and their keys. A kind's keys are its parameter types' fields: the type the
//!   matching `ecrm` command flattens into its options (each key is the option with `_` for
//!   `-`), so a key and its option share one type, one default and one check:
//!
//! | kind | reads | writes | keys |
//! |---|---|---|---|
//! | `ingest` | the contract's files | the star schema, `rejects`, `loads` | `contract`, `max_reject_rate`, `freshness = { new_file = true, max_age_hours = N }` |
//! | `sql` | `inputs` | `output` | `sql` (inline) or `file`, `inputs`, `output` |
//! | `features` | order lines | `customer_features` | — |
//! | `segment` | `customer_features` | `segments`, `segment_profiles` | [`SegmentParams`](crate::segment::SegmentParams) |
//! | `churn-train` | order lines | model `model` (`<warehouse>/models/NAME.json`) | `model`, [`ChurnTrainParams`](crate::churn::ChurnTrainParams) |
//! | `churn-score` | model `model`, order lines | `churn_scores` | `model` |
//! | `clv-train` | order lines | model `model` | `model`, [`ClvTrainParams`](crate::value::train::ClvTrainParams) (fitted on every purchase before the run's as-of date) |
//! | `clv-score` | model `model`, order lines | `customer_value` | `model`, [`ClvScoreParams`](crate::value::score::ClvScoreParams) |
//! | `profit` | order lines, products, contacts | `customer_profit` | [`ProfitParams`](crate::value::profit::ProfitParams) |
//! | `cohorts` | order lines, customers, products | `cohort_retention` | [`CohortParams`](crate::cohorts::triangle::CohortParams) |
//! | `uplift-train` | contacts, campaigns, order lines | model `model` | `model`, `campaign` (ids; default every campaign with a control arm), `window_days`, [`UpliftTrainParams`](crate::campaign::uplift::UpliftTrainParams) |
//! | `uplift-score` | model `model`, order lines | `uplift_scores` | `model` |
//! | `campaign-report` | contacts, campaigns, order lines | `campaign_results` | [`CampaignReportParams`](crate::campaign::results::CampaignReportParams) (`by`: a level) |
//! | `web-sessions` | web events (and order lines when there are) | `web_sessions`, `dim_visitor` | [`WebSessionsParams`](crate::web::WebSessionsParams) (`idle_minutes`) |
//! | `basket` | order lines | `basket_rules`, `recommendations` | [`RecommendParams`](crate::basket::recommend::RecommendParams) |
//! | `sequence` | order lines (`source = "web"`: web events) | `sequence_patterns` (web: `web_sequence_patterns`) | [`SequenceParams`](crate::sequence::SequenceParams) |
//! | `export` | the table of `what` | the file `out` (`{as_of}` is replaced) | `what` (segment, churn, recommendations, value, uplift), the selection's keys and [`Destination`](crate::export::Destination) |
//! | `report` | whatever the stages before built | `out_dir/<pipeline>/<as-of>/index.html` | `out_dir`; runs after every other stage, also when some failed |
//!
//! The side that reads the file is `parse`, the dependency graph `plan`, the run
//! `run` with one function per stage kind in `stages`.
//!
//! Why one table-level dependency graph rather than an explicit stage order: a stage runs
//! once every table it reads is built, so `--select STAGE+` can find what lies downstream,
//! a failed stage stops exactly the stages that would have read its output, and a table that
//! nothing produces is a mistake caught before the run, not an hour into it.

pub mod datatest;
mod parse;
mod plan;
pub mod run;
mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::basket::recommend::ValidRecommendParams;
use crate::campaign::results::CampaignReportParams;
use crate::campaign::uplift::UpliftTrainParams;
use crate::churn::ValidChurnTrainParams;
use crate::cohorts::triangle::CohortParams;
use crate::error::{Error, Result};
use crate::export::ValidExportParams;
use crate::ingest::contract::Contract;
use crate::segment::ValidSegmentParams;
use crate::sequence::ValidSequenceParams;
use crate::value::profit::ProfitParams;
use crate::value::score::ClvScoreParams;
use crate::value::train::ClvTrainParams;
use crate::web::WebSessionsParams;
use datatest::DataTest;

crate::choices! {
    /// What a stage does: its `kind`.
    pub enum Kind {
        Ingest = "ingest",
        Sql = "sql",
        Features = "features",
        Segment = "segment",
        ChurnTrain = "churn-train",
        ChurnScore = "churn-score",
        ClvTrain = "clv-train",
        ClvScore = "clv-score",
        Profit = "profit",
        Cohorts = "cohorts",
        CampaignReport = "campaign-report",
        UpliftTrain = "uplift-train",
        UpliftScore = "uplift-score",
        WebSessions = "web-sessions",
        Basket = "basket",
        Sequence = "sequence",
        Export = "export",
        Report = "report",
    }
}

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
    pub kind: Kind,
    pub description: Option<String>,
    /// Line of its `[stages.NAME]` header.
    pub line: usize,
    pub action: Action,
    /// Tables it reads (models as `model:NAME`).
    pub inputs: Vec<String>,
    /// Tables it reads when the warehouse has them: when a stage of the pipeline writes one,
    /// this stage waits for it (the mart's web events).
    pub inputs_if_built: Vec<String>,
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
        params: ValidChurnTrainParams,
    },
    ChurnScore {
        model: String,
    },
    ClvTrain {
        model: String,
        params: ClvTrainParams,
    },
    ClvScore {
        model: String,
        params: ClvScoreParams,
    },
    Profit(ProfitParams),
    Cohorts(CohortParams),
    CampaignReport(CampaignReportParams),
    UpliftTrain {
        model: String,
        campaigns: Vec<String>,
        window_days: Option<u32>,
        params: UpliftTrainParams,
    },
    UpliftScore {
        model: String,
    },
    WebSessions(WebSessionsParams),
    Basket(ValidRecommendParams),
    Sequence(ValidSequenceParams),
    /// The target may hold `{as_of}`.
    Export(Box<ValidExportParams>),
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

impl Freshness {
    /// A century: a file older than that is a typing mistake, not a schedule.
    pub const MAX_AGE_HOURS: u64 = 100 * 366 * 24;
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
        parse::pipeline(file, text)
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}
