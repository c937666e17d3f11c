//! The one bridge from Arrow record batches to ndarray matrices for the mining algorithms.
//!
//! Numeric columns (integers, floats, decimals, booleans as 0/1) become `f64` columns of an
//! `Array2`, rows in batch order. A missing column or a non-numeric column is an error naming
//! the source and the column. A NULL or NaN is never a silent zero: by default it is an error
//! naming the row (1-based); imputing is a modelling decision the caller makes on purpose
//! ([`Missing::Impute`]: the column's median, and a 0/1 indicator column beside it, so the
//! model still sees which rows had no value).
//!
//! [`Encoder`] is the other way in, for models over mixed tables (churn): numbers, booleans,
//! numbers stored as text, and categories one-hot encoded, with the encoding kept in the model
//! file. A NULL or blank number stays missing (NaN), for a model that handles missing
//! values (the churn tree learns where they go); every missing value and unseen category is
//! reported.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use ndarray::{Array2, ArrayViewMut2, Axis, ShapeBuilder, s};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Whether values of `dt` can be read as numbers.
pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

/// The names of `schema`'s numeric columns, in schema order.
pub fn numeric_columns(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| is_numeric(f.data_type()))
        .map(|f| f.name().clone())
        .collect()
}

crate::choices! {
    /// What a NULL (or NaN) in a column to cluster does.
    pub enum Missing {
        /// An error naming the row: choose other columns or fill them first.
        Refuse = "refuse",
        /// The column's median, and a 0/1 column `<name>_missing` clustered beside it.
        Impute = "impute",
    }
    default = Refuse;
}

/// `columns` of `batches` as an (rows × columns) matrix; a NULL is an error naming the row.
/// `source` names the table or file in errors.
pub fn matrix(
    schema: &Schema,
    batches: &[RecordBatch],
    columns: &[String],
    source: &str,
) -> Result<Array2<f64>> {
    Ok(matrix_with(schema, batches, columns, source, Missing::Refuse)?.0)
}

/// `columns` as a matrix, NULLs treated as `missing` says. Returns the matrix, its column
/// names (with imputing, the indicator columns come after the given ones, one per column
/// that had a NULL) and a note per imputed column saying what was done.
pub fn matrix_with(
    schema: &Schema,
    batches: &[RecordBatch],
    columns: &[String],
    source: &str,
    missing: Missing,
) -> Result<(Array2<f64>, Vec<String>, Vec<Note>)> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Column-major, so each column is written contiguously.
    let mut out = Array2::<f64>::zeros((rows, columns.len()).f());
    for (j, name) in columns.iter().enumerate() {
        let Ok(idx) = schema.index_of(name) else {
            return Err(Error::param(
                "features",
                format!(
                    "{source} has no column {name:?}; its numeric columns are: {}",
                    numeric_columns(schema).join(", ")
                ),
            ));
        };
        let dt = schema.field(idx).data_type();
        if !is_numeric(dt) {
            return Err(Error::param(
                "features",
                format!("{source}: column {name:?} is {dt}, not a number"),
            ));
        }
        let mut row = 0usize;
        for b in batches {
            let values = cast(b.column(idx), &DataType::Float64)?;
            let values = values
                .as_any()
                .downcast_ref::<datafusion::arrow::array::PrimitiveArray<Float64Type>>()
                .ok_or_else(|| {
                    Error::Internal(format!("cast of {name} to Float64 gave another type"))
                })?;
            let mut col = out.column_mut(j);
            let dest = col
                .as_slice_mut()
                .expect("a column of a column-major matrix is contiguous");
            for i in 0..values.len() {
                let v = values.value(i);
                if (values.is_null(i) || v.is_nan()) && missing == Missing::Refuse {
                    return Err(Error::Input {
                        file: source.into(),
                        message: format!(
                            "row {}: column {name:?} is {}; clustering needs a number in every row \
                             (choose other --features, fill the column, or impute it with \
                             --missing impute)",
                            row + i + 1,
                            if values.is_null(i) { "NULL" } else { "NaN" }
                        ),
                    });
                }
                dest[row + i] = if values.is_null(i) { f64::NAN } else { v };
            }
            row += b.num_rows();
        }
    }
    impute(out, columns, source)
}

/// Fills each column's NaNs with the median of its values and appends a 0/1 indicator
/// column per column that had any (see [`matrix_with`]).
fn impute(
    x: Array2<f64>,
    columns: &[String],
    source: &str,
) -> Result<(Array2<f64>, Vec<String>, Vec<Note>)> {
    let mut names = columns.to_vec();
    let mut notes = Vec::new();
    let mut indicators: Vec<ndarray::Array1<f64>> = Vec::new();
    let mut x = x;
    for (j, name) in columns.iter().enumerate() {
        let mut col = x.column_mut(j);
        let missing = col.iter().filter(|v| v.is_nan()).count();
        if missing == 0 {
            continue;
        }
        let mut present: Vec<f64> = col.iter().copied().filter(|v| !v.is_nan()).collect();
        if present.is_empty() {
            return Err(Error::input(
                source,
                format!("column {name:?} has no value at all: nothing to impute it from"),
            ));
        }
        present.sort_by(f64::total_cmp);
        let n = present.len();
        let median = if n % 2 == 1 {
            present[n / 2]
        } else {
            (present[n / 2 - 1] + present[n / 2]) / 2.0
        };
        indicators.push(col.mapv(|v| if v.is_nan() { 1.0 } else { 0.0 }));
        col.mapv_inplace(|v| if v.is_nan() { median } else { v });
        let indicator = format!("{name}_missing");
        notes.push(Note::info(format!(
            "{name}: {missing} NULLs imputed with its median {median}; clustered with the \
             indicator column {indicator}"
        )));
        names.push(indicator);
    }
    if indicators.is_empty() {
        return Ok((x, names, notes));
    }
    let views: Vec<ndarray::ArrayView2<f64>> = std::iter::once(x.view())
        .chain(
            indicators
                .iter()
                .map(|c| c.view().insert_axis(ndarray::Axis(1))),
        )
        .collect();
    let all = ndarray::concatenate(ndarray::Axis(1), &views)
        .map_err(|e| Error::Internal(format!("indicator columns: {e}")))?;
    Ok((all, names, notes))
}

/// Something encoding met that a person should hear of. A warning when it changed what a
/// model sees (NULLs read as 0 by an old model, categories unseen in training, columns left
/// out); information otherwise (missing values kept as missing for the model to handle,
/// values imputed as the user asked), so a nightly run does not warn about what it handles.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub text: String,
    pub warning: bool,
}

impl Note {
    fn warning(text: String) -> Note {
        Note {
            text,
            warning: true,
        }
    }

    fn info(text: String) -> Note {
        Note {
            text,
            warning: false,
        }
    }

    /// The same note about a named part of the data (`test at 2024-09-10: …`).
    pub fn about(self, what: &str) -> Note {
        Note {
            text: format!("{what}: {}", self.text),
            ..self
        }
    }

    /// Logs the note on stderr at its level, for `stage` when a pipeline runs one.
    pub fn log(&self, stage: Option<&str>) {
        match (self.warning, stage) {
            (true, Some(stage)) => tracing::warn!(stage, "{}", self.text),
            (true, None) => tracing::warn!("{}", self.text),
            (false, Some(stage)) => tracing::info!(stage, "{}", self.text),
            (false, None) => tracing::info!("{}", self.text),
        }
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Note {
    /// As its text: evaluation files list notes as sentences.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// How one input column becomes model features (kept in model files, so scoring encodes a
/// table exactly as training did).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Column {
    /// A numeric column: one feature; NULL is missing (reported).
    Number { name: String },
    /// A boolean column: one feature, 1 for true; NULL is missing (reported).
    Boolean { name: String },
    /// A text column whose every non-blank value is a number (like Telco's TotalCharges):
    /// one feature; a blank is missing (reported).
    NumberText { name: String },
    /// A text column of categories: one 0/1 feature per level seen in training, named
    /// `column=level`; a level not seen in training sets none of them (reported).
    Category { name: String, levels: Vec<String> },
}

impl Column {
    pub fn name(&self) -> &str {
        match self {
            Column::Number { name }
            | Column::Boolean { name }
            | Column::NumberText { name }
            | Column::Category { name, .. } => name,
        }
    }

    /// How many features it encodes into: one per level for a category, else one.
    fn width(&self) -> usize {
        match self {
            Column::Category { levels, .. } => levels.len(),
            _ => 1,
        }
    }
}

/// Categories beyond this many levels make a column look like an id or free text: it is
/// left out (reported) rather than blown up into thousands of features.
pub const MAX_LEVELS: usize = 100;

/// Turns a table with numeric, boolean and text columns into a feature matrix.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Encoder {
    pub columns: Vec<Column>,
    /// What a NULL or blank number becomes (model files of version 1 have no such field:
    /// they read it as 0).
    #[serde(default)]
    pub nulls: Nulls,
}

/// What a missing number becomes in the feature matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nulls {
    /// 0, as version 1 model files were trained (a customer with one order then looked like
    /// one who reorders the same day: the reason this changed).
    #[default]
    Zero,
    /// NaN: missing, for the model to handle (the churn tree learns a side per split).
    Missing,
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// What encoding one column met: values missing, and categories unseen in training with
/// their counts.
#[derive(Default)]
struct Met {
    missing: u64,
    unseen: std::collections::BTreeMap<String, u64>,
}

impl Met {
    fn add(&mut self, other: Met) {
        self.missing += other.missing;
        for (k, n) in other.unseen {
            *self.unseen.entry(k).or_default() += n;
        }
    }
}

impl Encoder {
    /// Chooses an encoding for every column of `schema` except `exclude` (ids, labels).
    /// Returns the encoder and notes on columns left out.
    pub fn fit(
        schema: &Schema,
        batches: &[RecordBatch],
        exclude: &[&str],
    ) -> Result<(Encoder, Vec<Note>)> {
        let mut columns = Vec::new();
        let mut notes = Vec::new();
        for (idx, f) in schema.fields().iter().enumerate() {
            let name = f.name().clone();
            if exclude.contains(&name.as_str()) {
                continue;
            }
            let dt = f.data_type();
            if matches!(dt, DataType::Boolean) {
                columns.push(Column::Boolean { name });
            } else if dt.is_numeric() {
                columns.push(Column::Number { name });
            } else {
                let mut levels = std::collections::BTreeSet::new();
                let mut all_numbers = true;
                let mut any_value = false;
                for b in batches {
                    let t = crate::olap::text_column(b.column(idx))?;
                    for i in 0..t.len() {
                        let v = if t.is_null(i) { "" } else { t.value(i).trim() };
                        if v.is_empty() {
                            continue;
                        }
                        any_value = true;
                        if all_numbers && parse_number(v).is_none() {
                            all_numbers = false;
                        }
                        if levels.len() <= MAX_LEVELS && !levels.contains(v) {
                            levels.insert(v.to_string());
                        }
                    }
                }
                if any_value && all_numbers {
                    columns.push(Column::NumberText { name });
                } else if levels.len() > MAX_LEVELS {
                    notes.push(Note::warning(format!(
                        "{name}: left out, more than {MAX_LEVELS} distinct values (an id or free text?)"
                    )));
                } else if levels.is_empty() {
                    notes.push(Note::warning(format!("{name}: left out, no values")));
                } else {
                    columns.push(Column::Category {
                        name,
                        levels: levels.into_iter().collect(),
                    });
                }
            }
        }
        let encoder = Encoder {
            columns,
            nulls: Nulls::Missing,
        };
        Ok((encoder, notes))
    }

    /// The columns must be usable as read from a model file: named, and a category's levels
    /// sorted and distinct (they are searched by bisection).
    pub fn check(&self) -> std::result::Result<(), String> {
        for (i, c) in self.columns.iter().enumerate() {
            if c.name().is_empty() {
                return Err(format!("encoder.columns[{i}].name: empty"));
            }
            if let Column::Category { name, levels } = c
                && levels.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(format!(
                    "encoder.columns[{i}].levels of {name:?}: not sorted and distinct"
                ));
            }
        }
        Ok(())
    }

    /// The feature names, in matrix column order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.columns {
            match c {
                Column::Category { name, levels } => {
                    out.extend(levels.iter().map(|l| format!("{name}={l}")))
                }
                other => out.push(other.name().to_string()),
            }
        }
        out
    }

    /// Encodes `batches` (which must have every encoded column; a missing one is an error
    /// naming the columns) as a rows × features matrix. Returns notes on NULLs, blanks and
    /// unseen categories.
    pub fn transform(
        &self,
        schema: &Schema,
        batches: &[RecordBatch],
        source: &str,
    ) -> Result<(Array2<f64>, Vec<Note>)> {
        let missing: Vec<&str> = self
            .columns
            .iter()
            .map(Column::name)
            .filter(|n| schema.index_of(n).is_err())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Input {
                file: source.into(),
                message: format!(
                    "the model needs columns {} that the table lacks; it has: {}",
                    missing.join(", "),
                    crate::olap::column_list(schema)
                ),
            });
        }
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut out = Array2::<f64>::zeros((rows, self.feature_names().len()));
        let idx = self
            .columns
            .iter()
            .map(|c| schema.index_of(c.name()))
            .collect::<std::result::Result<Vec<usize>, _>>()?;
        // Each batch fills its own block of rows, in parallel; errors and counts are then
        // taken in row order, so the outcome does not depend on the threads.
        let mut blocks = Vec::with_capacity(batches.len());
        let (mut rest, mut first_row) = (out.view_mut(), 0);
        for b in batches {
            let (block, tail) = rest.split_at(Axis(0), b.num_rows());
            blocks.push((first_row, block));
            (rest, first_row) = (tail, first_row + b.num_rows());
        }
        let met: Vec<Result<Vec<Met>>> = blocks
            .into_par_iter()
            .zip(batches)
            .map(|((first_row, mut block), b)| {
                let mut at = 0;
                let mut met = Vec::with_capacity(idx.len());
                for (c, &i) in self.columns.iter().zip(&idx) {
                    let cells = block.slice_mut(s![.., at..at + c.width()]);
                    met.push(Met::default());
                    let m = met.last_mut().expect("pushed");
                    self.encode(c, b.column(i), cells, first_row, m, source)?;
                    at += c.width();
                }
                Ok(met)
            })
            .collect();
        let mut total: Vec<Met> = self.columns.iter().map(|_| Met::default()).collect();
        for batch_met in met {
            for (t, m) in total.iter_mut().zip(batch_met?) {
                t.add(m);
            }
        }
        let notes = self
            .columns
            .iter()
            .zip(&total)
            .flat_map(|(c, m)| self.notes(c, m))
            .collect();
        Ok((out, notes))
    }

    /// Encodes one batch's values of column `c` into `cells` (its rows × the column's
    /// features; `first_row` numbers rows in messages), counting what it met.
    fn encode(
        &self,
        c: &Column,
        col: &dyn Array,
        mut cells: ArrayViewMut2<'_, f64>,
        first_row: usize,
        met: &mut Met,
        source: &str,
    ) -> Result<()> {
        let missing = match self.nulls {
            Nulls::Zero => 0.0,
            Nulls::Missing => f64::NAN,
        };
        match c {
            Column::Number { .. } | Column::Boolean { .. } => {
                let v = cast(col, &DataType::Float64)?;
                let v = v
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::PrimitiveArray<Float64Type>>()
                    .ok_or_else(|| Error::Internal("cast to Float64 gave another type".into()))?;
                for i in 0..v.len() {
                    if v.is_null(i) || v.value(i).is_nan() {
                        met.missing += 1;
                        cells[[i, 0]] = missing;
                    } else {
                        cells[[i, 0]] = v.value(i);
                    }
                }
            }
            Column::NumberText { name } => {
                let t = crate::olap::text_column(col)?;
                for i in 0..t.len() {
                    let s = if t.is_null(i) { "" } else { t.value(i).trim() };
                    if s.is_empty() {
                        met.missing += 1;
                        cells[[i, 0]] = missing;
                        continue;
                    }
                    cells[[i, 0]] = parse_number(s).ok_or_else(|| Error::Input {
                        file: source.into(),
                        message: format!(
                            "row {}: column {name:?} is {s:?}, not a number as in training",
                            first_row + i + 1
                        ),
                    })?;
                }
            }
            Column::Category { levels, .. } => {
                let t = crate::olap::text_column(col)?;
                for i in 0..t.len() {
                    let s = if t.is_null(i) { "" } else { t.value(i).trim() };
                    if s.is_empty() {
                        // Missing, not a category: none of the levels.
                        met.missing += 1;
                        continue;
                    }
                    match levels.binary_search_by(|l| l.as_str().cmp(s)) {
                        Ok(l) => cells[[i, l]] = 1.0,
                        Err(_) => *met.unseen.entry(s.to_string()).or_default() += 1,
                    }
                }
            }
        }
        Ok(())
    }

    /// Notes on the missing values and unseen categories column `c` met.
    fn notes(&self, c: &Column, met: &Met) -> Vec<Note> {
        let mut notes = Vec::new();
        if met.missing > 0 {
            let what = if matches!(c, Column::NumberText { .. }) {
                "blanks"
            } else {
                "NULLs"
            };
            let how = match self.nulls {
                Nulls::Zero => "read as 0",
                Nulls::Missing => "left missing",
            };
            let text = format!("{}: {} {what} {how}", c.name(), met.missing);
            notes.push(match self.nulls {
                Nulls::Zero => Note::warning(text),
                Nulls::Missing => Note::info(text),
            });
        }
        if !met.unseen.is_empty() {
            let total: u64 = met.unseen.values().sum();
            let list: Vec<String> = met
                .unseen
                .iter()
                .take(5)
                .map(|(k, n)| format!("{k:?} ×{n}"))
                .collect();
            notes.push(Note::warning(format!(
                "{}: {total} rows with categories not seen in training ({}), encoded as none of the known ones",
                c.name(),
                list.join(", ")
            )));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn numbers_become_a_matrix_and_bad_columns_are_named() {
        let b = batch();
        let m = matrix(&b.schema(), std::slice::from_ref(&b), &["a".into()], "t").unwrap();
        assert_eq!(m, ndarray::array![[1.0], [2.0]]);
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["b".into()], "t").unwrap_err();
        assert!(e.to_string().contains("row 2: column \"b\" is NULL"), "{e}");
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["s".into()], "t").unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = matrix(&b.schema(), std::slice::from_ref(&b), &["zz".into()], "t").unwrap_err();
        assert!(e.to_string().contains("numeric columns are: a, b"), "{e}");
    }
}
