//! The contract's rules, checked before any data is read: each mistake names the file, the
//! key (`sources.NAME.KEY`) and what is allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    Column, ColumnSpec, ColumnType, Contract, ContractParams, Encoding, Entity, Field, Format,
    FromSpec, Layout, Origin, RawColumn, Source, SourceParams,
};
use crate::error::{Error, Result};

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
                && s.entity.is_dimension()
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
        let mut layout = self.layout(&at)?;
        let header = self.header.unwrap_or(true);
        for (col, spec) in &self.columns {
            self.check_column(&at, col, spec)?;
        }
        self.check_required(&at)?;
        self.check_rules(&at)?;
        self.check_entity_options(&at)?;
        self.check_computed(&at)?;

        let entity = self.entity;
        let mut specs = self.columns;
        let mut columns = Vec::new();
        for (n, ty, _) in entity.columns() {
            if let Some(spec) = specs.remove(n) {
                let origin = origin(&at, n, &spec, self.format, header, &mut layout)?;
                columns.push(Column {
                    name: n.to_string(),
                    ty,
                    spec,
                    origin,
                });
            }
        }
        if let Layout::Fixed(_) = &layout {
            check_overlaps(&at, &columns)?;
        }
        Ok(Source {
            name: name.to_string(),
            entity,
            path,
            format: self.format,
            layout,
            header,
            encoding: self.encoding,
            null_tokens: self.null_tokens.unwrap_or_else(|| vec![String::new()]),
            exact_duplicates: self.exact_duplicates,
            dedupe_key: self.dedupe_key,
            cancellation_prefix: self.cancellation_prefix,
            negative_quantity: self.negative_quantity,
            service_code_pattern: self.service_code_pattern,
            basket: self.basket,
            columns,
            rules: self.rules,
        })
    }

    /// The keys of the file's layout fit its format: delimiter and quote for CSV, widths for
    /// fixed-width files, header for both, encoding for the text formats.
    fn layout(&self, at: &At<'_>) -> Result<Layout> {
        let text = matches!(self.format, Format::Csv | Format::Fixed);
        let given = [
            (
                "delimiter",
                self.delimiter.is_some(),
                self.format == Format::Csv,
            ),
            ("quote", self.quote.is_some(), self.format == Format::Csv),
            (
                "widths",
                self.widths.is_some(),
                self.format == Format::Fixed,
            ),
            ("header", self.header.is_some(), text),
            ("encoding", self.encoding != Encoding::Utf8, text),
        ];
        if let Some((k, _, _)) = given.iter().find(|(_, given, fits)| *given && !fits) {
            let which = match *k {
                "delimiter" | "quote" => "csv sources",
                "widths" => "fixed-width sources (format = \"fixed\")",
                _ => {
                    "csv and fixed-width sources; NDJSON and Parquet carry their own layout and encoding"
                }
            };
            return Err(at.err(k, format!("applies to {which}")));
        }
        match self.format {
            Format::Fixed => {
                let mut spans = Vec::new();
                let mut start = 0;
                for (i, w) in self.widths.iter().flatten().enumerate() {
                    if *w == 0 {
                        return Err(at.err("widths", format!("width {} is 0", i + 1)));
                    }
                    spans.push((start, *w));
                    start += w;
                }
                Ok(Layout::Fixed(spans))
            }
            _ if self.delimiter.as_deref() == Some("whitespace") => {
                if self.quote.is_some() {
                    return Err(at.err(
                        "quote",
                        "whitespace-separated fields have no quoting; leave quote out",
                    ));
                }
                Ok(Layout::Whitespace)
            }
            _ => Ok(Layout::Delimited {
                delimiter: one_byte(at.file, at.key("delimiter"), self.delimiter.clone(), b',')?,
                quote: one_byte(at.file, at.key("quote"), self.quote.clone(), b'"')?,
            }),
        }
    }

    /// A mapped column: a canonical name of the entity, one origin, and options that fit its
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
        check_type_options(at, &k, col, ty, spec)?;
        match &spec.value {
            Some(v) => check_value(at, &format!("{k}.value"), ty, spec, v),
            None => Ok(()),
        }
    }

    /// Every required column of the entity is mapped; an order line also needs its invoice
    /// number (unless a basket rule makes one) and its unit price or line total.
    fn check_required(&self, at: &At<'_>) -> Result<()> {
        let entity = self.entity;
        let has = |c: &str| self.columns.contains_key(c);
        let missing = entity
            .columns()
            .into_iter()
            .find(|(col, _, required)| *required && !has(col))
            .map(|(col, _, _)| col)
            .or_else(|| {
                let line = entity == Entity::OrderLine;
                (line && self.basket.is_none() && !has("invoice_no")).then_some("invoice_no")
            });
        if let Some(col) = missing {
            let hint = if col == "invoice_no" {
                " (or, for extracts without invoice numbers, basket = \"customer_day\")"
            } else {
                ""
            };
            return Err(at.err(
                "columns",
                format!(
                    "required column {col} of entity {} is not mapped (add {col} = {{ from = \"RAW HEADER\" }}){hint}",
                    entity.name()
                ),
            ));
        }
        let who = ["session_id", "visitor_id", "customer_id"];
        if entity == Entity::WebEvent && !who.iter().any(|c| has(c)) {
            return Err(at.err(
                "columns",
                "a web event needs to say whose it is: map session_id (the log's session), visitor_id (an anonymous cookie) or customer_id",
            ));
        }
        if entity == Entity::OrderLine && !has("unit_price") && !has("line_total") {
            return Err(at.err(
                "columns",
                "an order line needs its price: map unit_price (the price of one unit) or line_total (the line's amount)",
            ));
        }
        Ok(())
    }

    /// Computed order-line columns: a price and a cost are each given once (per unit or per
    /// line; the other is derived); a customer-day basket replaces invoice numbers and needs
    /// customers.
    fn check_computed(&self, at: &At<'_>) -> Result<()> {
        let has = |c: &str| self.columns.contains_key(c);
        for (unit, line) in [("unit_price", "line_total"), ("unit_cost", "line_cost")] {
            if has(unit) && has(line) {
                return Err(at.err(
                    &format!("columns.{line}"),
                    format!("give {unit} or {line}, not both: the other is derived from it and the quantity"),
                ));
            }
        }
        if self.basket.is_some() {
            if self.entity != Entity::OrderLine {
                return Err(at.err("basket", "applies to order_line sources"));
            }
            if has("invoice_no") {
                return Err(at.err(
                    "basket",
                    "this source maps invoice_no: its invoices are the baskets; leave basket out, or drop the invoice_no mapping",
                ));
            }
            if !has("customer_id") {
                return Err(at.err("basket", "customer_day baskets need customer_id mapped"));
            }
            if self.cancellation_prefix.is_some() {
                return Err(at.err(
                    "cancellation_prefix",
                    "needs invoice numbers; with basket = \"customer_day\" a return is a negative quantity (negative_quantity = \"return\")",
                ));
            }
        }
        Ok(())
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

/// Options that fit a column's type: formats for dates and timestamps (valid), case and
/// zero fractions for ids, true/false spellings for booleans.
fn check_type_options(
    at: &At<'_>,
    k: &str,
    col: &str,
    ty: ColumnType,
    spec: &ColumnSpec,
) -> Result<()> {
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
            k,
            format!(
                "case and strip_zero_fraction apply to id columns; {col} is {}",
                ty.name()
            ),
        ));
    }
    if !matches!(ty, ColumnType::Text | ColumnType::Id) && !spec.map.is_empty() {
        return Err(at.err(
            &format!("{k}.map"),
            format!("map applies to text and id columns; {col} is {}", ty.name()),
        ));
    }
    if ty != ColumnType::Bool && (spec.true_values.is_some() || spec.false_values.is_some()) {
        return Err(at.err(
            k,
            format!(
                "true_values and false_values apply to boolean columns; {col} is {}",
                ty.name()
            ),
        ));
    }
    Ok(())
}

/// A constant reads as its column's type, as cleansing would read it (else every row would
/// be rejected for it).
fn check_value(at: &At<'_>, k: &str, ty: ColumnType, spec: &ColumnSpec, v: &str) -> Result<()> {
    use crate::ingest::cleanse::{FALSE_VALUES, TRUE_VALUES};
    let t = v.trim();
    let spelled = |given: &Option<Vec<String>>, default: [&str; 4]| match given {
        Some(g) => g.iter().any(|s| s.eq_ignore_ascii_case(t)),
        None => default.iter().any(|s| s.eq_ignore_ascii_case(t)),
    };
    let fits = match ty {
        ColumnType::Text | ColumnType::Id => true,
        ColumnType::Int => t.parse::<i64>().is_ok(),
        ColumnType::Money => regex::Regex::new(crate::ingest::cleanse::MONEY_PATTERN)
            .map(|r| r.is_match(t))
            .unwrap_or(false),
        ColumnType::Bool => {
            spelled(&spec.true_values, TRUE_VALUES) || spelled(&spec.false_values, FALSE_VALUES)
        }
        ColumnType::Date => spec
            .formats
            .iter()
            .any(|f| chrono::NaiveDate::parse_from_str(t, f).is_ok()),
        ColumnType::Timestamp => spec.formats.iter().any(|f| {
            chrono::NaiveDateTime::parse_from_str(t, f).is_ok()
                || chrono::NaiveDate::parse_from_str(t, f).is_ok()
        }),
    };
    if fits {
        return Ok(());
    }
    Err(at.err(k, format!("{v:?} is not a valid {} value", ty.name())))
}

/// Where column `col` comes from: exactly one of `from`, `value`, or (fixed-width files)
/// `start` and `width`, which add the column's own span to the layout. Names need a header,
/// positions fit the layout, `join` needs several columns.
fn origin(
    at: &At<'_>,
    col: &str,
    spec: &ColumnSpec,
    format: Format,
    header: bool,
    layout: &mut Layout,
) -> Result<Origin> {
    let k = format!("columns.{col}");
    let span = spec.start.is_some() || spec.width.is_some();
    let given = [spec.from.is_some(), spec.value.is_some(), spec.record, span];
    if given.iter().filter(|g| **g).count() != 1 {
        let fixed = if format == Format::Fixed {
            ", or start and width"
        } else {
            ""
        };
        return Err(at.err(
            &k,
            format!("give the column's origin once: from (raw column), value (a constant), record (the record number){fixed}"),
        ));
    }
    if spec.join.is_some() && !matches!(spec.from, Some(FromSpec::Several(_))) {
        return Err(at.err(
            &format!("{k}.join"),
            "join applies to several raw columns (from = [\"A\", \"B\"])",
        ));
    }
    if let Some(v) = &spec.value {
        return Ok(Origin::Value(v.clone()));
    }
    if spec.record {
        return Ok(Origin::Record);
    }
    if span {
        return fixed_span(at, &k, spec, layout);
    }
    let raw = match spec.from.clone().expect("one origin is given") {
        FromSpec::One(r) => vec![r],
        FromSpec::Several(v) if v.is_empty() => {
            return Err(at.err(&format!("{k}.from"), "the list of raw columns is empty"));
        }
        FromSpec::Several(v) => v,
    };
    let mut fields = Vec::new();
    for r in raw {
        fields.push(field(at, &format!("{k}.from"), r, format, header, layout)?);
    }
    Ok(Origin::Fields {
        fields,
        join: spec.join.clone().unwrap_or_else(|| "|".into()),
    })
}

/// One raw column, checked: a name needs a header; a position is 1-based, only in text
/// files, and within a fixed-width layout.
fn field(
    at: &At<'_>,
    k: &str,
    raw: RawColumn,
    format: Format,
    header: bool,
    layout: &Layout,
) -> Result<Field> {
    match raw {
        RawColumn::Name(n) if n.trim().is_empty() => Err(at.err(k, "empty raw column name")),
        RawColumn::Name(_) if !header => Err(at.err(
            k,
            "the file has no header (header = false): name raw columns by 1-based position, e.g. from = 3",
        )),
        RawColumn::Name(n) => Ok(Field::Name(n.trim().to_string())),
        RawColumn::Position(_) if matches!(format, Format::Ndjson | Format::Parquet) => Err(at.err(
            k,
            "NDJSON and Parquet columns are named, not numbered: give the key or column name",
        )),
        RawColumn::Position(p) if p < 1 => Err(at.err(
            k,
            format!("position {p}: positions count from 1"),
        )),
        RawColumn::Position(p) => {
            if let Layout::Fixed(spans) = layout
                && p as usize > spans.len()
            {
                return Err(at.err(
                    k,
                    format!(
                        "position {p} is past the last column: widths has {} columns",
                        spans.len()
                    ),
                ));
            }
            Ok(Field::Position(p as usize - 1))
        }
    }
}

/// A fixed-width column's own `start` (1-based) and `width`, added to the layout.
fn fixed_span(at: &At<'_>, k: &str, spec: &ColumnSpec, layout: &mut Layout) -> Result<Origin> {
    let Layout::Fixed(spans) = layout else {
        return Err(at.err(
            k,
            "start and width apply to fixed-width sources (format = \"fixed\")",
        ));
    };
    let (Some(start), Some(width)) = (spec.start, spec.width) else {
        return Err(at.err(k, "give both start (1-based) and width"));
    };
    if start < 1 || width < 1 {
        return Err(at.err(
            k,
            format!("start {start} and width {width}: start counts from 1, width is at least 1"),
        ));
    }
    spans.push((start - 1, width));
    Ok(Origin::Fields {
        fields: vec![Field::Position(spans.len() - 1)],
        join: String::new(),
    })
}

/// Fixed-width columns given by `start` and `width` must not overlap one another.
fn check_overlaps(at: &At<'_>, columns: &[Column]) -> Result<()> {
    let own: Vec<(&str, usize, usize)> = columns
        .iter()
        .filter_map(|c| {
            let (Some(start), Some(width)) = (c.spec.start, c.spec.width) else {
                return None;
            };
            Some((c.name.as_str(), start - 1, width))
        })
        .collect();
    for (i, (a, sa, wa)) in own.iter().enumerate() {
        for (b, sb, wb) in &own[i + 1..] {
            if sa < &(sb + wb) && sb < &(sa + wa) {
                return Err(at.err(
                    &format!("columns.{b}"),
                    format!(
                        "bytes {}..{} overlap column {a} (bytes {}..{})",
                        sb + 1,
                        sb + wb,
                        sa + 1,
                        sa + wa
                    ),
                ));
            }
        }
    }
    Ok(())
}
