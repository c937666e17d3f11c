//! The one bridge from Arrow record batches to ndarray matrices for the mining algorithms.
//!
//! Numeric columns (integers, floats, decimals, booleans as 0/1) become `f64` columns of an
//! `Array2`, rows in batch order. A missing column, a non-numeric column, a NULL or a NaN is an
//! error naming the source, the column and the row (1-based), never a silent zero: imputing is
//! a modelling decision the caller must make on purpose.
//!
//! [`Encoder`] is the other way in, for models over mixed tables (churn): numbers, booleans,
//! numbers stored as text, and categories one-hot encoded, with the encoding kept in the model
//! file and every filled blank or unseen category reported.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Schema};
use ndarray::{Array2, ShapeBuilder};

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

/// `columns` of `batches` as an (rows × columns) matrix. `source` names the table or file in
/// errors.
pub fn matrix(
    schema: &Schema,
    batches: &[RecordBatch],
    columns: &[String],
    source: &str,
) -> Result<Array2<f64>> {
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
                if values.is_null(i) || v.is_nan() {
                    return Err(Error::Input {
                        file: source.into(),
                        message: format!(
                            "row {}: column {name:?} is {}; clustering needs a number in every row \
                             (choose other --features or fill the column)",
                            row + i + 1,
                            if values.is_null(i) { "NULL" } else { "NaN" }
                        ),
                    });
                }
                dest[row + i] = v;
            }
            row += b.num_rows();
        }
    }
    Ok(out)
}

/// How one input column becomes model features (kept in model files, so scoring encodes a
/// table exactly as training did).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Column {
    /// A numeric column: one feature. NULL reads as 0 (reported).
    Number { name: String },
    /// A boolean column: one feature, 1 for true. NULL reads as 0 (reported).
    Boolean { name: String },
    /// A text column whose every non-blank value is a number (like Telco's TotalCharges):
    /// one feature; blanks read as 0 (reported).
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
}

/// Categories beyond this many levels make a column look like an id or free text: it is
/// left out (reported) rather than blown up into thousands of features.
pub const MAX_LEVELS: usize = 100;

/// Turns a table with numeric, boolean and text columns into a feature matrix.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Encoder {
    pub columns: Vec<Column>,
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

impl Encoder {
    /// Chooses an encoding for every column of `schema` except `exclude` (ids, labels).
    /// Returns the encoder and notes on columns left out.
    pub fn fit(
        schema: &Schema,
        batches: &[RecordBatch],
        exclude: &[&str],
    ) -> Result<(Encoder, Vec<String>)> {
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
                        if levels.len() <= MAX_LEVELS {
                            levels.insert(v.to_string());
                        }
                    }
                }
                if any_value && all_numbers {
                    columns.push(Column::NumberText { name });
                } else if levels.len() > MAX_LEVELS {
                    notes.push(format!(
                        "{name}: left out, more than {MAX_LEVELS} distinct values (an id or free text?)"
                    ));
                } else if levels.is_empty() {
                    notes.push(format!("{name}: left out, no values"));
                } else {
                    columns.push(Column::Category {
                        name,
                        levels: levels.into_iter().collect(),
                    });
                }
            }
        }
        Ok((Encoder { columns }, notes))
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
    ) -> Result<(Array2<f64>, Vec<String>)> {
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
        let width = self.feature_names().len();
        let mut out = Array2::<f64>::zeros((rows, width));
        let mut notes = Vec::new();
        let mut at = 0usize;
        for c in &self.columns {
            let idx = schema.index_of(c.name())?;
            let (mut filled, mut unseen) = (0u64, std::collections::BTreeMap::<String, u64>::new());
            let mut row = 0usize;
            for b in batches {
                let col = b.column(idx);
                match c {
                    Column::Number { .. } | Column::Boolean { .. } => {
                        let v = cast(col, &DataType::Float64)?;
                        let v = v
                            .as_any()
                            .downcast_ref::<datafusion::arrow::array::PrimitiveArray<Float64Type>>()
                            .ok_or_else(|| {
                                Error::Internal("cast to Float64 gave another type".into())
                            })?;
                        for i in 0..v.len() {
                            if v.is_null(i) || v.value(i).is_nan() {
                                filled += 1;
                            } else {
                                out[[row + i, at]] = v.value(i);
                            }
                        }
                    }
                    Column::NumberText { name } => {
                        let t = crate::olap::text_column(col.as_ref())?;
                        for i in 0..t.len() {
                            let s = if t.is_null(i) { "" } else { t.value(i).trim() };
                            if s.is_empty() {
                                filled += 1;
                                continue;
                            }
                            out[[row + i, at]] = parse_number(s).ok_or_else(|| Error::Input {
                                file: source.into(),
                                message: format!(
                                    "row {}: column {name:?} is {s:?}, not a number as in training",
                                    row + i + 1
                                ),
                            })?;
                        }
                    }
                    Column::Category { levels, .. } => {
                        let t = crate::olap::text_column(col.as_ref())?;
                        for i in 0..t.len() {
                            let s = if t.is_null(i) { "" } else { t.value(i).trim() };
                            match levels.binary_search_by(|l| l.as_str().cmp(s)) {
                                Ok(l) => out[[row + i, at + l]] = 1.0,
                                Err(_) => *unseen.entry(s.to_string()).or_default() += 1,
                            }
                        }
                    }
                }
                row += b.num_rows();
            }
            if filled > 0 {
                let what = if matches!(c, Column::NumberText { .. }) {
                    "blanks"
                } else {
                    "NULLs"
                };
                notes.push(format!("{}: {filled} {what} read as 0", c.name()));
            }
            if !unseen.is_empty() {
                let total: u64 = unseen.values().sum();
                let list: Vec<String> = unseen
                    .iter()
                    .take(5)
                    .map(|(k, n)| format!("{k:?} ×{n}"))
                    .collect();
                notes.push(format!(
                    "{}: {total} rows with categories not seen in training ({}), encoded as none of the known ones",
                    c.name(),
                    list.join(", ")
                ));
            }
            at += match c {
                Column::Category { levels, .. } => levels.len(),
                _ => 1,
            };
        }
        Ok((out, notes))
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
