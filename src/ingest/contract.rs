//! Source contracts: how raw extracts map onto the canonical model.
//!
//! A contract is a TOML file with one `[sources.NAME]` table per source. It is parsed with
//! `deny_unknown_fields` and checked as a whole before any data is read ([`Contract::load`]):
//! every mistake is reported with the file, the key and what is allowed.
//!
//! ```toml
//! [sources.transactions]
//! entity = "order_line"          # customer | product | order_line | campaign_contact
//! path = "../sample-data/transactions.csv"   # file, folder or glob, relative to this file;
//!                                # ${VAR} is replaced by an environment variable
//! format = "csv"                 # csv | ndjson (one JSON object per line) | parquet
//! delimiter = ","                # one byte; default ","
//! quote = '"'                    # one byte; default '"'
//! encoding = "utf-8"             # utf-8 (default) | latin-1
//! null_tokens = ["", "NULL"]     # default [""]; compared after trimming
//! dedupe_key = ["invoice_no", "product_id"]  # optional: a later row with the same key is
//!                                # rejected as duplicate_key
//! cancellation_prefix = "C"      # order_line: invoice numbers of cancellations/returns
//! negative_quantity = "reject"   # order_line: a negative quantity outside a cancellation is
//!                                # rejected as stock_adjustment (reject) or is a return (return)
//! service_code_pattern = "^(POST|DOT)$"  # order_line/product: product codes that are services
//!
//! [sources.transactions.columns]
//! invoice_no = { from = "InvoiceNo" }
//! invoice_ts = { from = "InvoiceDate", formats = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M"] }
//! customer_id = { from = "CustomerID", strip_zero_fraction = true }   # "17850.0" -> "17850"
//! product_id = { from = "StockCode", case = "upper" }
//!
//! [sources.transactions.rules]
//! not_null = ["invoice_no", "invoice_ts", "product_id", "quantity", "unit_price"]
//! range = { unit_price = { min = 0 } }
//! accepted_values = { channel = ["web", "store", "phone"] }
//! pattern = { invoice_no = "^[CA]?[0-9]{6}$" }
//! ```
//!
//! The type of each column is the canonical model's ([`Entity::columns`]); the contract says
//! where it comes from and how to read it, not what it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The canonical type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text, trimmed.
    Text,
    /// A natural id or code: trimmed; `case` and `strip_zero_fraction` apply.
    Id,
    /// A whole number (64-bit).
    Int,
    /// Money: a decimal with at most 3 fraction digits, stored exactly as decimal(18,3).
    Money,
    /// A calendar date.
    Date,
    /// A timestamp without time zone (microseconds).
    Timestamp,
    /// true/false from `true_values` / `false_values`.
    Bool,
}

impl ColumnType {
    fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Id => "id",
            ColumnType::Int => "integer",
            ColumnType::Money => "money",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Bool => "boolean",
        }
    }
}

/// The canonical entities a source can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Customer,
    Product,
    OrderLine,
    CampaignContact,
}

impl Entity {
    /// The entity's canonical columns: name, type, required in every contract.
    pub fn columns(self) -> &'static [(&'static str, ColumnType, bool)] {
        use ColumnType::*;
        match self {
            Entity::Customer => &[
                ("customer_id", Id, true),
                ("email", Text, false),
                ("name", Text, false),
                ("gender", Text, false),
                ("birth_date", Date, false),
                ("country", Text, false),
                ("region", Text, false),
                ("city", Text, false),
                ("signup_date", Date, false),
                ("acquisition_channel", Text, false),
                ("email_opt_in", Bool, false),
                ("phone_opt_in", Bool, false),
            ],
            Entity::Product => &[
                ("product_id", Id, true),
                ("description", Text, false),
                ("category", Text, false),
                ("subcategory", Text, false),
                ("unit_cost", Money, false),
                ("is_service", Bool, false),
            ],
            Entity::OrderLine => &[
                ("invoice_no", Id, true),
                ("invoice_ts", Timestamp, true),
                ("customer_id", Id, false),
                ("product_id", Id, true),
                ("description", Text, false),
                ("quantity", Int, true),
                ("unit_price", Money, true),
                ("channel", Text, false),
                ("country", Text, false),
            ],
            Entity::CampaignContact => &[
                ("campaign_id", Id, true),
                ("customer_id", Id, true),
                ("contact_ts", Timestamp, true),
                ("channel", Text, false),
                ("responded", Bool, false),
                ("response_ts", Timestamp, false),
            ],
        }
    }

    /// The snake_case name used in contracts.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Customer => "customer",
            Entity::Product => "product",
            Entity::OrderLine => "order_line",
            Entity::CampaignContact => "campaign_contact",
        }
    }

    fn column_type(self, name: &str) -> Option<ColumnType> {
        self.columns()
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, t, _)| *t)
    }

    fn column_names(self) -> String {
        self.columns()
            .iter()
            .map(|(n, _, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How a source's files are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// ISO-8859-1, decoded as its WHATWG superset windows-1252 (encoding_rs).
    #[serde(rename = "latin-1")]
    Latin1,
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Csv,
    /// One JSON object per line; `columns.X.from` names a top-level key.
    Ndjson,
    /// A Parquet file; values are read through their text form.
    Parquet,
}

/// Letter case applied to an id column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    Upper,
    Lower,
}

/// What a negative quantity on an order line outside a cancellation invoice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NegativeQuantity {
    /// Rejected with reason `stock_adjustment` (Online Retail: stock write-offs, no customer).
    #[default]
    Reject,
    /// A return.
    Return,
}

/// A column mapping as written in the contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The raw column's header.
    pub from: String,
    /// Date / timestamp formats (chrono `strftime` syntax), tried in order.
    #[serde(default)]
    pub formats: Vec<String>,
    /// Upper- or lower-case an id.
    pub case: Option<Case>,
    /// Write `17850.0` as `17850` (ids exported through a float column).
    #[serde(default)]
    pub strip_zero_fraction: bool,
    /// Raw values meaning true (compared case-insensitively); default true, yes, y, 1.
    pub true_values: Option<Vec<String>>,
    /// Raw values meaning false; default false, no, n, 0.
    pub false_values: Option<Vec<String>>,
    /// What the column means, for people.
    pub description: Option<String>,
}

/// A `range` rule: inclusive bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeRule {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Row rules; a row breaking one is rejected with the rule's reason code.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub not_null: Vec<String>,
    #[serde(default)]
    pub range: BTreeMap<String, RangeRule>,
    #[serde(default)]
    pub accepted_values: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub pattern: BTreeMap<String, String>,
}

/// A source as written in the contract (unchecked).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    pub entity: Entity,
    pub path: String,
    #[serde(default)]
    pub format: Format,
    pub delimiter: Option<String>,
    pub quote: Option<String>,
    #[serde(default)]
    pub encoding: Encoding,
    pub null_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub dedupe_key: Vec<String>,
    pub cancellation_prefix: Option<String>,
    #[serde(default)]
    pub negative_quantity: NegativeQuantity,
    pub service_code_pattern: Option<String>,
    pub description: Option<String>,
    pub columns: BTreeMap<String, ColumnSpec>,
    #[serde(default)]
    pub rules: Rules,
}

/// A contract as written (unchecked).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractParams {
    pub description: Option<String>,
    pub sources: BTreeMap<String, SourceParams>,
}

/// A checked source: the only kind ingest accepts.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub entity: Entity,
    /// The path after `${VAR}` expansion, resolved against the contract's folder.
    pub path: PathBuf,
    pub format: Format,
    pub delimiter: u8,
    pub quote: u8,
    pub encoding: Encoding,
    pub null_tokens: Vec<String>,
    pub dedupe_key: Vec<String>,
    pub cancellation_prefix: Option<String>,
    pub negative_quantity: NegativeQuantity,
    pub service_code_pattern: Option<String>,
    /// Mapped canonical columns in the entity's canonical order: (name, type, spec).
    pub columns: Vec<(String, ColumnType, ColumnSpec)>,
    pub rules: Rules,
}

/// A checked contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub file: PathBuf,
    /// Sources in processing order: customers and products before the order lines and
    /// contacts that refer to them.
    pub sources: Vec<Source>,
}

impl Contract {
    /// Reads and checks a contract file.
    pub fn load(file: &Path) -> Result<Contract> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Self::parse(file, &text)
    }

    /// Checks contract text; `file` names it in messages and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Contract> {
        Self::parse_with(file, text, &[])
    }

    /// Reads and checks a contract file whose sources' paths `inputs` replace (`--input
    /// [SOURCE=]PATH`; no source name: the contract's only source). A replaced path is not
    /// read at all, so one that names an unset environment variable is no error.
    pub fn load_with(file: &Path, inputs: &[(Option<String>, PathBuf)]) -> Result<Contract> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Self::parse_with(file, &text, inputs)
    }

    fn parse_with(
        file: &Path,
        text: &str,
        inputs: &[(Option<String>, PathBuf)],
    ) -> Result<Contract> {
        let params: ContractParams =
            toml::from_str(text).map_err(|e| Error::toml(file, text, &e))?;
        params.check(file, inputs)
    }
}

impl ContractParams {
    /// Checks every rule; the first failure wins. `inputs` replace sources' paths (see
    /// [`Contract::load_with`]).
    pub fn check(self, file: &Path, inputs: &[(Option<String>, PathBuf)]) -> Result<Contract> {
        if self.sources.is_empty() {
            return Err(Error::config(
                file,
                "sources",
                "no sources: add at least one [sources.NAME] table",
            ));
        }
        let base = file.parent().unwrap_or(Path::new("."));
        let only_one = self.sources.len() == 1;
        let mut sources = Vec::new();
        for (name, p) in self.sources {
            let input = inputs
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name.as_str()) || (n.is_none() && only_one))
                .map(|(_, path)| path.clone());
            sources.push(p.check(file, base, &name, input)?);
        }
        let mut seen = BTreeMap::new();
        for s in &sources {
            if let Some(other) = seen.insert(s.entity, s.name.clone())
                && s.entity != Entity::OrderLine
                && s.entity != Entity::CampaignContact
            {
                return Err(Error::config(
                    file,
                    format!("sources.{}.entity", s.name),
                    format!(
                        "entity {} is already fed by source {other}; one source per dimension",
                        s.entity.name()
                    ),
                ));
            }
        }
        sources.sort_by_key(|s| (s.entity, s.name.clone()));
        Ok(Contract {
            file: file.to_path_buf(),
            sources,
        })
    }
}

fn one_byte(file: &Path, key: String, value: Option<String>, default: u8) -> Result<u8> {
    match value {
        None => Ok(default),
        Some(v) if v == "\\t" || v == "\t" => Ok(b'\t'),
        Some(v) if v.len() == 1 && v.is_ascii() => Ok(v.as_bytes()[0]),
        Some(v) => Err(Error::config(
            file,
            key,
            format!("{v:?} is not one ASCII character (use \"\\t\" for tab)"),
        )),
    }
}

/// Replaces `${VAR}` with the environment variable's value.
fn expand_env(file: &Path, key: &str, s: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::config(file, key, format!("unclosed ${{ in {s:?}")))?;
        let var = &after[..end];
        let value = std::env::var(var).map_err(|_| {
            Error::config(
                file,
                key,
                format!("environment variable {var} is not set (used in {s:?})"),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where a source's keys are: `sources.NAME.KEY` of the contract file, for messages.
struct At<'a> {
    file: &'a Path,
    name: &'a str,
}

impl At<'_> {
    fn key(&self, k: &str) -> String {
        format!("sources.{}.{k}", self.name)
    }

    fn err(&self, k: &str, message: impl Into<String>) -> Error {
        Error::config(self.file, self.key(k), message)
    }
}

impl SourceParams {
    fn check(self, file: &Path, base: &Path, name: &str, input: Option<PathBuf>) -> Result<Source> {
        let at = At { file, name };
        let path = match input {
            Some(p) => p,
            None => base.join(expand_env(file, &at.key("path"), &self.path)?),
        };
        if self.format != Format::Csv {
            let csv_only = [
                ("delimiter", self.delimiter.is_some()),
                ("quote", self.quote.is_some()),
                ("encoding", self.encoding != Encoding::Utf8),
            ];
            if let Some((k, _)) = csv_only.iter().find(|(_, given)| *given) {
                return Err(at.err(
                    k,
                    "applies to csv sources; NDJSON and Parquet carry their own encoding and layout",
                ));
            }
        }
        let delimiter = one_byte(file, at.key("delimiter"), self.delimiter.clone(), b',')?;
        let quote = one_byte(file, at.key("quote"), self.quote.clone(), b'"')?;
        for (col, spec) in &self.columns {
            self.check_column(&at, col, spec)?;
        }
        self.check_required(&at)?;
        self.check_rules(&at)?;
        self.check_entity_options(&at)?;

        let entity = self.entity;
        let mut specs = self.columns;
        let columns = entity
            .columns()
            .iter()
            .filter_map(|(n, t, _)| specs.remove(*n).map(|s| (n.to_string(), *t, s)))
            .collect();
        Ok(Source {
            name: name.to_string(),
            entity,
            path,
            format: self.format,
            delimiter,
            quote,
            encoding: self.encoding,
            null_tokens: self.null_tokens.unwrap_or_else(|| vec![String::new()]),
            dedupe_key: self.dedupe_key,
            cancellation_prefix: self.cancellation_prefix,
            negative_quantity: self.negative_quantity,
            service_code_pattern: self.service_code_pattern,
            columns,
            rules: self.rules,
        })
    }

    /// A mapped column: a canonical name of the entity, a raw name, and options that fit its
    /// type (formats for dates and timestamps, case for ids, true/false values for booleans).
    fn check_column(&self, at: &At<'_>, col: &str, spec: &ColumnSpec) -> Result<()> {
        let entity = self.entity;
        let k = format!("columns.{col}");
        let Some(ty) = entity.column_type(col) else {
            return Err(at.err(
                &k,
                format!(
                    "unknown column for entity {}; allowed: {}",
                    entity.name(),
                    entity.column_names()
                ),
            ));
        };
        if spec.from.trim().is_empty() {
            return Err(at.err(&format!("{k}.from"), "empty raw column name"));
        }
        let is_time = matches!(ty, ColumnType::Date | ColumnType::Timestamp);
        if is_time && spec.formats.is_empty() {
            return Err(at.err(
                &format!("{k}.formats"),
                format!(
                    "a {} column needs at least one format, e.g. [\"%Y-%m-%d{}\"]",
                    ty.name(),
                    if ty == ColumnType::Timestamp {
                        " %H:%M:%S"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if !is_time && !spec.formats.is_empty() {
            return Err(at.err(
                &format!("{k}.formats"),
                format!(
                    "formats apply to date and timestamp columns; {col} is {}",
                    ty.name()
                ),
            ));
        }
        for f in &spec.formats {
            check_format(at.file, &at.key(&format!("{k}.formats")), f, ty)?;
        }
        if ty != ColumnType::Id && (spec.case.is_some() || spec.strip_zero_fraction) {
            return Err(at.err(
                &k,
                format!(
                    "case and strip_zero_fraction apply to id columns; {col} is {}",
                    ty.name()
                ),
            ));
        }
        if ty != ColumnType::Bool && (spec.true_values.is_some() || spec.false_values.is_some()) {
            return Err(at.err(
                &k,
                format!(
                    "true_values and false_values apply to boolean columns; {col} is {}",
                    ty.name()
                ),
            ));
        }
        Ok(())
    }

    /// Every required column of the entity is mapped.
    fn check_required(&self, at: &At<'_>) -> Result<()> {
        let entity = self.entity;
        match entity
            .columns()
            .iter()
            .find(|(col, _, required)| *required && !self.columns.contains_key(*col))
        {
            None => Ok(()),
            Some((col, _, _)) => Err(at.err(
                "columns",
                format!(
                    "required column {col} of entity {} is not mapped (add {col} = {{ from = \"RAW HEADER\" }})",
                    entity.name()
                ),
            )),
        }
    }

    /// `col` is a mapped column of this source (rules and keys name mapped columns only).
    fn mapped(&self, at: &At<'_>, k: &str, col: &str) -> Result<()> {
        if self.columns.contains_key(col) {
            return Ok(());
        }
        Err(at.err(
            k,
            format!(
                "{col} is not a mapped column of this source (mapped: {})",
                self.columns.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// Rules and the dedupe key name mapped columns, with settings that fit them.
    fn check_rules(&self, at: &At<'_>) -> Result<()> {
        for col in &self.rules.not_null {
            self.mapped(at, "rules.not_null", col)?;
        }
        for (col, r) in &self.rules.range {
            let k = format!("rules.range.{col}");
            self.mapped(at, &k, col)?;
            let ty = self
                .entity
                .column_type(col)
                .expect("mapped column is canonical");
            if !matches!(ty, ColumnType::Int | ColumnType::Money) {
                return Err(at.err(
                    &k,
                    format!(
                        "range applies to integer and money columns; {col} is {}",
                        ty.name()
                    ),
                ));
            }
            if r.min.is_none() && r.max.is_none() {
                return Err(at.err(&k, "give min, max or both"));
            }
            if let (Some(lo), Some(hi)) = (r.min, r.max)
                && lo > hi
            {
                return Err(at.err(&k, format!("min {lo} is greater than max {hi}")));
            }
        }
        for (col, values) in &self.rules.accepted_values {
            let k = format!("rules.accepted_values.{col}");
            self.mapped(at, &k, col)?;
            if values.is_empty() {
                return Err(at.err(&k, "the list of accepted values is empty"));
            }
        }
        for (col, pat) in &self.rules.pattern {
            let k = format!("rules.pattern.{col}");
            self.mapped(at, &k, col)?;
            regex_check(at.file, &at.key(&k), pat)?;
        }
        for col in &self.dedupe_key {
            self.mapped(at, "dedupe_key", col)?;
        }
        Ok(())
    }

    /// Options that belong to some entities: service codes (order lines and products) and
    /// the cancellation prefix (order lines, not empty).
    fn check_entity_options(&self, at: &At<'_>) -> Result<()> {
        if let Some(p) = &self.service_code_pattern {
            if !matches!(self.entity, Entity::OrderLine | Entity::Product) {
                return Err(at.err(
                    "service_code_pattern",
                    "applies to order_line and product sources",
                ));
            }
            regex_check(at.file, &at.key("service_code_pattern"), p)?;
        }
        if self.entity != Entity::OrderLine && self.cancellation_prefix.is_some() {
            return Err(at.err("cancellation_prefix", "applies to order_line sources"));
        }
        if let Some(p) = &self.cancellation_prefix
            && p.is_empty()
        {
            return Err(at.err(
                "cancellation_prefix",
                "empty prefix: leave the key out instead",
            ));
        }
        Ok(())
    }
}

/// Checks a strftime format by formatting a fixed date with it: chrono reports unknown
/// specifiers as a formatting error.
fn check_format(file: &Path, key: &str, format: &str, ty: ColumnType) -> Result<()> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(Error::config(
            file,
            key,
            format!("{format:?} is not a valid strftime format"),
        ));
    }
    if ty == ColumnType::Date && (format.contains("%H") || format.contains("%M")) {
        return Err(Error::config(
            file,
            key,
            format!("{format:?} has a time part; this column is a date"),
        ));
    }
    Ok(())
}

fn regex_check(file: &Path, key: &str, pat: &str) -> Result<()> {
    // The same engine polars uses for `str().contains`.
    regex::Regex::new(pat).map(|_| ()).map_err(|e| {
        Error::config(
            file,
            key,
            format!("{pat:?} is not a valid regular expression: {e}"),
        )
    })
}
