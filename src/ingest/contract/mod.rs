//! Source contracts: how raw extracts map onto the canonical model.
//!
//! A contract is a TOML file with one `[sources.NAME]` table per source. It is parsed with
//! `deny_unknown_fields` and checked as a whole before any data is read ([`Contract::load`],
//! rules in [`check`]): every mistake is reported with the file, the key and what is allowed.
//!
//! ```toml
//! [sources.transactions]
//! entity = "order_line"          # customer | product | campaign | order_line |
//!                                # campaign_contact | consent_event | web_event
//! path = "../sample-data/transactions.csv"   # file, folder or glob, relative to this file;
//!                                # ${VAR} is replaced by an environment variable
//! format = "csv"                 # csv | fixed (fixed-width columns) | ndjson (one JSON
//!                                # object per line) | parquet
//! delimiter = ","                # csv: one byte, or "whitespace" (runs of spaces and tabs,
//!                                # leading and trailing ones ignored); default ","
//! quote = '"'                    # csv: one byte; default '"'
//! header = true                  # csv and fixed: the first line names the columns; with
//!                                # false, columns are taken by position (from = 3)
//! widths = [6, 9, 3]             # fixed: the columns' widths in bytes, left to right
//! encoding = "utf-8"             # utf-8 (default) | latin-1; a byte-order mark and CRLF
//!                                # line ends are handled in every text format
//! null_tokens = ["", "NULL"]     # default [""]; compared after trimming
//! exact_duplicates = "drop"      # drop (default): a record repeating an earlier one byte for
//!                                # byte is counted and dropped | keep: such records are real
//!                                # (a transaction log whose repeat orders look identical)
//! dedupe_key = ["invoice_no", "product_id"]  # optional: a later row with the same key is
//!                                # rejected as duplicate_key
//! cancellation_prefix = "C"      # order_line: invoice numbers of cancellations/returns
//! negative_quantity = "reject"   # order_line: a negative quantity outside a cancellation is
//!                                # rejected as stock_adjustment (reject) or is a return (return)
//! service_code_pattern = "^(POST|DOT)$"  # order_line/product: product codes that are services
//! basket = "customer_day"        # order_line without invoice numbers: a customer's lines of
//!                                # one day are one invoice (see below)
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
//! Where a column comes from:
//! - `from = "Header"` a raw column by its header; `from = 3` by its 1-based position (the
//!   only way without a header); `from = ["CUSTOMER_ID", "DATE"]` several raw columns, each
//!   trimmed, joined by `join` (default `"|"`) into one value;
//! - `value = "CD"` the same value on every row;
//! - `record = true` the record's number in its file (1, 2, …), for an extract without ids
//!   (keep `exact_duplicates = "keep"` then: two identical records are two customers);
//! - fixed-width files: a position in `widths`, or the column's own `start` (1-based byte)
//!   and `width`.
//!
//! Computed order-line columns:
//! - `line_total` instead of `unit_price`: the line's revenue is the line total exactly, and
//!   `unit_price = line_total / quantity` rounded half-to-even to the money type's 3
//!   decimals (revenue is never recomputed from the rounded price);
//! - `unit_cost` or `line_cost`: the cost of one unit or of the whole line (the other one is
//!   derived as for prices);
//! - `basket = "customer_day"`: `invoice_no` is the customer id and the day
//!   (`17850|2011-01-02`); a guest line (no customer) is a basket of its own;
//! - customer attributes (`age_band`, `region`, `city`, `gender`, … any canonical customer
//!   column; `country` is the line's) and product attributes (`category`, `subcategory`) on
//!   order lines feed the derived customers and products when the contract has no source for
//!   them: a customer's values are those of their latest line.
//!
//! The type of each column is the canonical model's ([`Entity::columns`]); the contract says
//! where it comes from and how to read it, not what it is.

mod check;

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

/// The canonical entities a source can feed, in processing order: dimensions before the
/// facts that refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Customer,
    Product,
    Campaign,
    OrderLine,
    CampaignContact,
    ConsentEvent,
    WebEvent,
}

/// A canonical column: name, type, required in every contract of its entity.
pub type CanonicalColumn = (&'static str, ColumnType, bool);

impl Entity {
    /// The entity's own canonical columns.
    fn own_columns(self) -> &'static [CanonicalColumn] {
        use ColumnType::*;
        match self {
            Entity::Customer => &[
                ("customer_id", Id, true),
                ("email", Text, false),
                ("name", Text, false),
                ("gender", Text, false),
                ("birth_date", Date, false),
                ("age_band", Text, false),
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
            // invoice_no (unless basket) and unit_price or line_total are required too: see
            // `check::required`.
            Entity::OrderLine => &[
                ("invoice_no", Id, false),
                ("invoice_ts", Timestamp, true),
                ("customer_id", Id, false),
                ("product_id", Id, true),
                ("description", Text, false),
                ("quantity", Int, true),
                ("unit_price", Money, false),
                ("line_total", Money, false),
                ("unit_cost", Money, false),
                ("line_cost", Money, false),
                ("channel", Text, false),
                ("country", Text, false),
                ("category", Text, false),
                ("subcategory", Text, false),
            ],
            Entity::Campaign => &[
                ("campaign_id", Id, true),
                ("name", Text, false),
                ("channel", Text, false),
                ("start_date", Date, false),
                ("end_date", Date, false),
                ("cost_per_contact", Money, false),
                ("fixed_cost", Money, false),
                ("offer", Text, false),
                ("response_window_days", Int, false),
            ],
            Entity::CampaignContact => &[
                ("campaign_id", Id, true),
                ("customer_id", Id, true),
                ("contact_ts", Timestamp, true),
                ("channel", Text, false),
                ("responded", Bool, false),
                ("response_ts", Timestamp, false),
                ("arm", Text, false),
                ("cost", Money, false),
            ],
            Entity::ConsentEvent => &[
                ("customer_id", Id, true),
                ("channel", Text, true),
                ("status", Text, true),
                ("event_ts", Timestamp, true),
                ("source", Text, false),
            ],
            // One of session_id, visitor_id and customer_id is required too: see
            // `check::required`.
            Entity::WebEvent => &[
                ("event_ts", Timestamp, true),
                ("event_type", Text, true),
                ("session_id", Id, false),
                ("visitor_id", Id, false),
                ("customer_id", Id, false),
                ("sequence", Int, false),
                ("page", Text, false),
                ("product_id", Id, false),
                ("category", Text, false),
                ("price", Money, false),
                ("referrer", Text, false),
                ("channel", Text, false),
                ("device", Text, false),
                ("country", Text, false),
                ("invoice_no", Id, false),
            ],
        }
    }

    /// The values a canonical text column may take (compared after trimming and the
    /// column's `map`; lower case), or None for free text. A row with another value is
    /// rejected as `not_accepted`.
    pub fn vocabulary(self, column: &str) -> Option<&'static [&'static str]> {
        match (self, column) {
            (Entity::CampaignContact, "arm") => Some(&["treatment", "control"]),
            (Entity::ConsentEvent, "channel") => Some(&["email", "phone", "sms", "post"]),
            (Entity::ConsentEvent, "status") => Some(&["granted", "withdrawn"]),
            _ => None,
        }
    }

    /// Whether the entity is a dimension (one source feeds it; its rows are history that
    /// `--replace` never rewrites).
    pub fn is_dimension(self) -> bool {
        matches!(self, Entity::Customer | Entity::Product | Entity::Campaign)
    }

    /// The entity's canonical columns, in canonical order: its own, then for order lines the
    /// customer attributes they may carry (every customer column the line has not itself,
    /// none of them required).
    pub fn columns(self) -> Vec<CanonicalColumn> {
        let own = self.own_columns();
        let mut all = own.to_vec();
        if self == Entity::OrderLine {
            all.extend(
                Entity::Customer
                    .own_columns()
                    .iter()
                    .filter(|(n, _, _)| !own.iter().any(|(o, _, _)| o == n))
                    .map(|(n, t, _)| (*n, *t, false)),
            );
        }
        all
    }

    /// The snake_case name used in contracts.
    pub fn name(self) -> &'static str {
        match self {
            Entity::Customer => "customer",
            Entity::Product => "product",
            Entity::Campaign => "campaign",
            Entity::OrderLine => "order_line",
            Entity::CampaignContact => "campaign_contact",
            Entity::ConsentEvent => "consent_event",
            Entity::WebEvent => "web_event",
        }
    }

    fn column_type(self, name: &str) -> Option<ColumnType> {
        self.columns()
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, t, _)| t)
    }

    fn column_names(self) -> String {
        self.columns()
            .into_iter()
            .map(|(n, _, _)| n)
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
    /// Fixed-width columns (`widths`, or each column's `start` and `width`).
    Fixed,
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

/// Whether records repeating an earlier record byte for byte are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExactDuplicates {
    /// Counted as duplicates and not loaded (an extract delivered twice over).
    #[default]
    Drop,
    /// Loaded: identical records are real (CDNOW's repeat orders of one day).
    Keep,
}

/// How order lines without invoice numbers make baskets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basket {
    /// A customer's lines of one day are one invoice; guest lines each their own.
    CustomerDay,
}

/// A raw column as a contract names it: by header or by 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a raw column must be a header name or a 1-based position"
)]
pub enum RawColumn {
    Position(i64),
    Name(String),
}

/// `from`: one raw column or several, joined.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "`from` must be a header name, a 1-based column position, or a list of them"
)]
pub enum FromSpec {
    One(RawColumn),
    Several(Vec<RawColumn>),
}

/// A column mapping as written in the contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The raw column(s): header names or 1-based positions.
    pub from: Option<FromSpec>,
    /// A constant instead of a raw column.
    pub value: Option<String>,
    /// The record's number in its file (1, 2, …) instead of a raw column: an id for extracts
    /// without one (sources reading the same file get the same numbers).
    #[serde(default)]
    pub record: bool,
    /// What joins several raw columns; default `"|"`.
    pub join: Option<String>,
    /// Fixed-width files: the column's first byte (1-based) and its width in bytes.
    pub start: Option<usize>,
    pub width: Option<usize>,
    /// Date / timestamp formats (chrono `strftime` syntax), tried in order.
    #[serde(default)]
    pub formats: Vec<String>,
    /// Upper- or lower-case an id.
    pub case: Option<Case>,
    /// Write `17850.0` as `17850` (ids exported through a float column).
    #[serde(default)]
    pub strip_zero_fraction: bool,
    /// Text and id columns: raw values (after trimming) replaced by others before any rule,
    /// e.g. `map = { "No E-Mail" = "control", "Mens E-Mail" = "treatment" }`; values not in
    /// the map are kept.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
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
    pub header: Option<bool>,
    pub widths: Option<Vec<usize>>,
    #[serde(default)]
    pub encoding: Encoding,
    pub null_tokens: Option<Vec<String>>,
    #[serde(default)]
    pub exact_duplicates: ExactDuplicates,
    #[serde(default)]
    pub dedupe_key: Vec<String>,
    pub cancellation_prefix: Option<String>,
    #[serde(default)]
    pub negative_quantity: NegativeQuantity,
    pub service_code_pattern: Option<String>,
    pub basket: Option<Basket>,
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

/// How a text file's lines split into fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// CSV: one delimiter byte, one quote byte.
    Delimited { delimiter: u8, quote: u8 },
    /// Runs of spaces and tabs separate fields; leading and trailing ones are ignored.
    Whitespace,
    /// Fixed-width fields: (0-based first byte, width) of each, in position order.
    Fixed(Vec<(usize, usize)>),
}

/// A raw field, checked: by header name or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name(String),
    Position(usize),
}

/// Where a checked column's raw text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Raw fields, each trimmed, joined by `join` when there are several.
    Fields { fields: Vec<Field>, join: String },
    /// The same text on every row.
    Value(String),
    /// The record's number in its file (1, 2, …): an id for extracts that have none.
    Record,
}

/// A mapped canonical column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub spec: ColumnSpec,
    pub origin: Origin,
}

impl Column {
    /// How the contract names the column's origin, for messages: `"Header"`, `3`,
    /// `["A", "B"]` or `value "CD"`.
    pub fn origin_text(&self) -> String {
        let field = |f: &Field| match f {
            Field::Name(n) => format!("{n:?}"),
            Field::Position(p) => (p + 1).to_string(),
        };
        match &self.origin {
            Origin::Value(v) => format!("value {v:?}"),
            Origin::Record => "the record number".into(),
            Origin::Fields { fields, .. } if fields.len() == 1 => field(&fields[0]),
            Origin::Fields { fields, .. } => {
                format!(
                    "[{}]",
                    fields.iter().map(field).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }
}

/// A checked source: the only kind ingest accepts.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub entity: Entity,
    /// The path after `${VAR}` expansion, resolved against the contract's folder.
    pub path: PathBuf,
    pub format: Format,
    /// Text formats (csv, fixed): how a line splits into fields.
    pub layout: Layout,
    /// Text formats: the first line is a header.
    pub header: bool,
    pub encoding: Encoding,
    pub null_tokens: Vec<String>,
    pub exact_duplicates: ExactDuplicates,
    pub dedupe_key: Vec<String>,
    pub cancellation_prefix: Option<String>,
    pub negative_quantity: NegativeQuantity,
    pub service_code_pattern: Option<String>,
    pub basket: Option<Basket>,
    /// Mapped canonical columns in the entity's canonical order.
    pub columns: Vec<Column>,
    pub rules: Rules,
}

impl Source {
    /// Whether canonical column `name` is mapped.
    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
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
